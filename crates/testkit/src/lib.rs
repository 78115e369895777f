//! Test-only support for tests that run against the local control plane (`hack/local-cluster.sh`):
//! connecting to it (starting it when asked), a namespace per test that is removed afterwards,
//! waits with deadlines that print the objects, conditions and Events they saw when they fail, and
//! controller binaries started as child processes under a ServiceAccount's identity, so tests run
//! under the RBAC that `manifests/` ships; cert-manager for the TLS scenarios ([`CertManager`]); and support for the unit tests of the components'
//! builders ([`builders`]).

pub mod builders;
mod cert_manager;
mod cluster;
mod error;
mod identity;
mod kubectl;
mod namespace;
mod process;
mod wait;

pub use cert_manager::CertManager;
pub use cluster::{LocalCluster, client_for};
pub use error::{Error, Result};
pub use identity::service_account_kubeconfig;
pub use kubectl::Kubectl;
pub use namespace::TestNamespace;
pub use process::{ControllerProcess, workspace_binary};
pub use wait::{diagnostics, wait_until};
