//! `core.pingcap.com/v1alpha1`: Cluster, and the PD, TiKV and TiDB groups and instances.

mod cluster;
mod common;
mod pd;
mod tidb;
mod tikv;

pub use cluster::*;
pub use common::*;
pub use pd::*;
pub use tidb::*;
pub use tikv::*;

/// API group of the core kinds.
pub const GROUP: &str = "core.pingcap.com";
/// API version of the core kinds.
pub const VERSION: &str = "v1alpha1";
