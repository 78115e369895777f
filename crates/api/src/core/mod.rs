//! `core.pingcap.com/v1alpha1`: Cluster, and the PD, TiKV, TiDB, TiFlash and TiCDC groups and
//! instances.

mod cluster;
mod common;
mod pd;
mod ticdc;
mod tidb;
mod tiflash;
mod tikv;

pub use cluster::*;
pub use common::*;
pub use pd::*;
pub use ticdc::*;
pub use tidb::*;
pub use tiflash::*;
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

of_cluster!(
    PDGroup,
    PD,
    TiKVGroup,
    TiKV,
    TiDBGroup,
    TiDB,
    TiFlashGroup,
    TiFlash,
    TiCDCGroup,
    TiCDC
);

/// An instance of a component (PD, TiKV, TiDB): what every instance has, whatever its component.
pub trait Instance: OfCluster {
    /// The `pingcap.com/component` value of its objects (`pd`, `tikv`, `tidb`).
    const COMPONENT: &'static str;
    /// The template fields every component has.
    fn common(&self) -> &CommonTemplateSpec;
    /// The same, to change.
    fn common_mut(&mut self) -> &mut CommonTemplateSpec;
    /// The headless Service its Pod's hostname lives under.
    fn subdomain(&self) -> &str;
    /// The same, to change (only ever to keep an existing instance's: it is immutable).
    fn subdomain_mut(&mut self) -> &mut String;
    /// The Node labels its Pod must run on.
    fn topology(&self) -> &Topology;
    /// The generation its status last saw (0 before it has a status).
    fn observed_generation(&self) -> i64;
}

macro_rules! instance {
    ($($kind:ty => $component:expr),*) => {
        $(impl Instance for $kind {
            const COMPONENT: &'static str = $component;
            fn common(&self) -> &CommonTemplateSpec {
                &self.spec.template.common
            }
            fn common_mut(&mut self) -> &mut CommonTemplateSpec {
                &mut self.spec.template.common
            }
            fn subdomain(&self) -> &str {
                &self.spec.subdomain
            }
            fn subdomain_mut(&mut self) -> &mut String {
                &mut self.spec.subdomain
            }
            fn topology(&self) -> &Topology {
                &self.spec.topology
            }
            fn observed_generation(&self) -> i64 {
                self.status.as_ref().map_or(0, |s| s.common.observed_generation)
            }
        })*
    };
}

instance!(
    PD => crate::keys::COMPONENT_PD,
    TiKV => crate::keys::COMPONENT_TIKV,
    TiDB => crate::keys::COMPONENT_TIDB,
    TiFlash => crate::keys::COMPONENT_TIFLASH,
    TiCDC => crate::keys::COMPONENT_TICDC
);

/// A group of instances of a component (PDGroup, TiKVGroup, TiDBGroup): what every group has,
/// whatever its component.
pub trait Group: OfCluster {
    /// The `pingcap.com/component` value of its instances.
    const COMPONENT: &'static str;
    /// How many instances it asks for.
    fn replicas(&self) -> i32;
    /// The template fields every component has.
    fn common(&self) -> &CommonTemplateSpec;
    /// How its instances are spread over topologies.
    fn schedule_policies(&self) -> &[SchedulePolicy];
    /// What its revision covers: the template and the features.
    fn revision_input(&self) -> serde_json::Value;
    /// The features turned on for it (the Cluster's feature gates, copied in).
    fn features(&self) -> &[Feature];
    /// The labels and annotations its template gives its instances.
    fn template_metadata(&self) -> &ObjectMeta;
    /// Seconds a new instance must have been Ready to count as available: `spec.minReadySeconds`,
    /// else the component's default (PD and TiKV 5, TiDB 10, as in the reference).
    fn min_ready_seconds(&self) -> i64;
}

macro_rules! group {
    ($($kind:ty => $component:expr, $min_ready:expr);*) => {
        $(impl Group for $kind {
            const COMPONENT: &'static str = $component;
            fn replicas(&self) -> i32 {
                self.spec.replicas
            }
            fn common(&self) -> &CommonTemplateSpec {
                &self.spec.template.spec.common
            }
            fn schedule_policies(&self) -> &[SchedulePolicy] {
                &self.spec.schedule_policies
            }
            fn revision_input(&self) -> serde_json::Value {
                serde_json::json!({"template": self.spec.template, "features": self.spec.features})
            }
            fn features(&self) -> &[Feature] {
                &self.spec.features
            }
            fn template_metadata(&self) -> &ObjectMeta {
                &self.spec.template.metadata
            }
            fn min_ready_seconds(&self) -> i64 {
                self.spec.min_ready_seconds.unwrap_or($min_ready)
            }
        })*
    };
}

group!(
    PDGroup => crate::keys::COMPONENT_PD, PD_DEFAULT_MIN_READY_SECONDS;
    TiKVGroup => crate::keys::COMPONENT_TIKV, TIKV_DEFAULT_MIN_READY_SECONDS;
    TiDBGroup => crate::keys::COMPONENT_TIDB, TIDB_DEFAULT_MIN_READY_SECONDS;
    TiFlashGroup => crate::keys::COMPONENT_TIFLASH, TIFLASH_DEFAULT_MIN_READY_SECONDS;
    TiCDCGroup => crate::keys::COMPONENT_TICDC, TICDC_DEFAULT_MIN_READY_SECONDS
);

/// API group of the core kinds.
pub const GROUP: &str = "core.pingcap.com";
/// API version of the core kinds.
pub const VERSION: &str = "v1alpha1";
