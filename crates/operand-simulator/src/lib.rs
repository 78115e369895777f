//! Operand simulator — TEST TOOLING ONLY. It stands in for PD, TiKV and TiDB on loopback, for
//! many clusters at once, where the real servers cannot run (the kwok nodes of the local control
//! plane). It watches the operand Pods through the Kubernetes API and answers PD's HTTP API
//! (`/pd/api/v1/...`, in the JSON shapes of the real PD) and the TiDB/TiKV status endpoints, and
//! it has a control API to inject faults and read an ordered event log.
//!
//! It reproduces the PD behaviour the operator depends on; it is never a substitute for the
//! real API's contract, which is checked against a real pd-server.
//!
//! Layout: [`sim`] is the pure simulation (Pods and API calls in, PD-shaped views out, `tick`
//! to advance), [`wire`] the PD JSON types, [`http`] the axum router, [`watch`] the Pod watcher,
//! [`volumes`] a stand-in volume provisioner for the operands' PVCs.

pub mod clock;
pub mod http;
pub mod sim;
pub mod volumes;
pub mod watch;
pub mod wire;
