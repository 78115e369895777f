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

/// A group or instance of one Cluster (`spec.cluster.name`, in its own namespace).
pub trait OfCluster {
    /// The name of its Cluster.
    fn cluster_name(&self) -> &str;
}

macro_rules! of_cluster {
    ($($kind:ty),*) => {
        $(impl OfCluster for $kind {
            fn cluster_name(&self) -> &str {
                &self.spec.cluster.name
            }
        })*
    };
}

of_cluster!(PDGroup, PD, TiKVGroup, TiKV, TiDBGroup, TiDB);

/// API group of the core kinds.
pub const GROUP: &str = "core.pingcap.com";
/// API version of the core kinds.
pub const VERSION: &str = "v1alpha1";
