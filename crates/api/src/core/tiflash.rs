//! TiFlashGroup and TiFlash: the columnar stores of a cluster, which keep learner replicas of
//! tables for analytical queries.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, Failover, Feature,
    GROUP_NAME_MAX, INSTANCE_NAME_MAX, ObjectMeta, Port, ResourceRequirements, SchedulePolicy,
    Security, Topology, data_volume_required, name_length_rule, overlay_claims_in_volumes,
    topology_set_at_creation,
};
use crate::schema::{min_1_property, require_volumes};

/// Mount type of TiFlash's data directory.
pub const TIFLASH_VOLUME_MOUNT_TYPE_DATA: &str = "data";
/// Default mount path of TiFlash's data directory.
pub const TIFLASH_DATA_DEFAULT_PATH: &str = "/var/lib/tiflash";
/// Name of TiFlash's flash (coprocessor) port.
pub const TIFLASH_PORT_NAME_FLASH: &str = "tiflash";
/// Name of TiFlash's proxy (Raft) port.
pub const TIFLASH_PORT_NAME_PROXY: &str = "proxy";
/// Name of TiFlash's metrics port.
pub const TIFLASH_PORT_NAME_METRICS: &str = "metrics";
/// Name of TiFlash's proxy status port, which serves both metrics and status.
pub const TIFLASH_PORT_NAME_PROXY_STATUS: &str = "proxy-metrics";
/// Default flash port of TiFlash.
pub const TIFLASH_DEFAULT_PORT_FLASH: i32 = 3930;
/// Default proxy port of TiFlash: the address PD knows the store by.
pub const TIFLASH_DEFAULT_PORT_PROXY: i32 = 20170;
/// Default metrics port of TiFlash.
pub const TIFLASH_DEFAULT_PORT_METRICS: i32 = 8234;
/// Default proxy status port of TiFlash.
pub const TIFLASH_DEFAULT_PORT_PROXY_STATUS: i32 = 20292;
/// Seconds a TiFlash store must have been Ready to count as available, when the group does not
/// say.
pub const TIFLASH_DEFAULT_MIN_READY_SECONDS: i64 = 5;

/// A group of TiFlash stores made from one template.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiFlashGroup",
    namespaced,
    status = "ComponentGroupStatus",
    shortname = "fg",
    category = "group",
    selectable = ".spec.cluster.name",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Desired", type_ = "string", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.readyReplicas"),
    printcolumn(name = "Updated", type_ = "string", json_path = ".status.updatedReplicas"),
    printcolumn(name = "UpdateRevision", type_ = "string", json_path = ".status.updateRevision"),
    printcolumn(name = "CurrentRevision", type_ = "string", json_path = ".status.currentRevision"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(GROUP_NAME_MAX),
    doc = "TiFlashGroup: a group of TiFlash stores made from one template."
)]
#[serde(rename_all = "camelCase")]
pub struct TiFlashGroupSpec {
    /// The Cluster this group belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this group; the Cluster's feature gates are copied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Number of TiFlash stores.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How stores are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// Seconds a new store must have been Ready, without its containers crashing, to count as
    /// available. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i64>,
    /// Automatic failover of failed stores; an extension of this operator (docs/failover.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
    /// The template every store is made from.
    pub template: TiFlashTemplate,
}

/// Template of the TiFlash stores of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiFlashTemplate {
    /// Labels and annotations of the TiFlash instances and their Pods.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// The TiFlash instance spec.
    pub spec: TiFlashTemplateSpec,
}

/// What every TiFlash store of a group runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_volumes)]
#[x_kube(validation = overlay_claims_in_volumes(), validation = data_volume_required())]
pub struct TiFlashTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// Listen ports and store labels.
    #[serde(default, skip_serializing_if = "TiFlashServer::is_empty")]
    pub server: TiFlashServer,
    /// The configuration file of TiFlash's proxy (its embedded TiKV), in TOML. The operator sets
    /// the keys it must own (addresses, data directory) over it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy_config: String,
    /// Security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// The sidecars that print TiFlash's log files to their stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tailer: Option<TiFlashLogTailer>,
}

/// Server settings of TiFlash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct TiFlashServer {
    /// Ports TiFlash listens on.
    #[serde(default, skip_serializing_if = "TiFlashPorts::is_empty")]
    pub ports: TiFlashPorts,
    /// Store labels of TiFlash, set through PD. `host`, `region`, `zone` and keys under `k/` or
    /// `$k/` are the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = Rule::new("!('host' in self) && !('region' in self) && !('zone' in self)").message("labels cannot contain 'host', 'region', or 'zone' keys"),
        validation = Rule::new("self.all(k, !k.startsWith('k/') && !k.startsWith('$k/'))").message("labels cannot contain keys with 'k/' or '$k/' prefix")
    )]
    pub labels: BTreeMap<String, String>,
}

impl TiFlashServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.labels.is_empty()
    }
}

/// Ports of TiFlash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TiFlashPorts {
    /// Flash (coprocessor) port. Default 3930.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash: Option<Port>,
    /// Metrics port of TiFlash. Default 8234.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Port>,
    /// Proxy (Raft) port, the store's address in PD. Default 20170.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Port>,
    /// Proxy status port, serving metrics and status. Default 20292.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_status: Option<Port>,
}

impl TiFlashPorts {
    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.flash.is_none()
            && self.metrics.is_none()
            && self.proxy.is_none()
            && self.proxy_status.is_none()
    }
}

/// The log-tailer sidecars of TiFlash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiFlashLogTailer {
    /// Image of the sidecars. Default `busybox:1.37.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory of each sidecar.
    #[serde(default, skip_serializing_if = "ResourceRequirements::is_empty")]
    pub resources: ResourceRequirements,
}

/// One TiFlash store.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiFlash",
    plural = "tiflashes",
    namespaced,
    status = "TiFlashStatus",
    category = "instance",
    selectable = ".spec.cluster.name",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "StoreID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "StoreState", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Offline", type_ = "boolean", json_path = ".spec.offline"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(INSTANCE_NAME_MAX),
    doc = "TiFlash: one TiFlash store, made by its TiFlashGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = topology_set_at_creation())]
pub struct TiFlashSpec {
    /// The Cluster this store belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Where this store runs; it becomes the Pod's node selector and cannot change.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    #[schemars(transform = min_1_property)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topology is immutable"))]
    pub topology: Topology,
    /// Subdomain of the store's DNS name (the group's peer Service); the same for every store.
    #[x_kube(validation = Rule::new("self == oldSelf").message("subdomain is immutable"))]
    pub subdomain: String,
    /// True takes the store out through PD, as tidb-operator v2's group does when it scales in:
    /// this operator replaces the field with its own removal mark, and the instance goes once PD
    /// reports the store Tombstone. False or unset asks nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// Always 1: it lets a PodDisruptionBudget count the instance through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1), extend("default" = 1))]
    pub replicas: Option<i32>,
    /// The template fields, copied from the group.
    #[serde(flatten)]
    pub template: TiFlashTemplateSpec,
}

/// Status of a TiFlash store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiFlashStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// PD's store ID of this instance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Store state: Preparing, Serving, Removing or Removed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
}
