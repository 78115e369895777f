//! Operand simulator — TEST TOOLING ONLY. It stands in for PD, TiKV and TiDB on loopback, for
//! many clusters at once, where the real servers cannot run (the kwok nodes of the local control
//! plane). It watches the operand Pods and PVCs through the Kubernetes API and answers PD's HTTP
//! API (`/pd/api/v1/...`, in the JSON shapes of the real PD) and the TiDB/TiKV status endpoints,
//! and it has a control API to inject faults, read an ordered event log and read each cluster's
//! availability and data-safety record.
//!
//! Its answers are modelled on the tikv/pd source (docs/operand-simulator.md names the file
//! each one follows); they are not checked against a running pd-server, which cannot be built
//! here. Where the operator's safety depends on it, it is as strict as PD, etcd and Raft: PD
//! members stay listed until removed and need a majority for a leader, a store is its data
//! volume, a Region keeps a leader only with a live majority of its replicas.
//!
//! Layout: [`sim`] is the pure simulation (Pods, PVCs and API calls in, PD-shaped views out,
//! `tick` to advance), [`wire`] the PD JSON types, [`http`] the axum router, [`watch`] the Pod
//! watcher, [`volumes`] the PVC watcher and a stand-in volume provisioner for the operands' PVCs,
//! [`tls`] the mutual-TLS listeners of clusters with TLS on, [`pre_stop`] the kubelet's part in
//! the hand-over hook of PD Pods.

pub mod clock;
pub mod http;
pub mod pre_stop;
pub mod sim;
pub mod tls;
pub mod volumes;
pub mod watch;
pub mod wire;
