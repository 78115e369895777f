//! TiKVGroup and TiKV: the storage nodes (stores) of a cluster.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, ConfigChangeStatus,
    Feature, ObjectMeta, Port, SchedulePolicy, Topology, data_volume_required, name_length_rule,
    overlay_claims_in_volumes, topology_set_at_creation,
};
use crate::schema::min_1_property;

/// Mount type of TiKV's data directory.
pub const TIKV_VOLUME_MOUNT_TYPE_DATA: &str = "data";
/// Default mount path of TiKV's data directory.
pub const TIKV_DATA_DEFAULT_PATH: &str = "/var/lib/tikv";
/// Name of TiKV's client port.
pub const TIKV_PORT_NAME_CLIENT: &str = "client";
/// Name of TiKV's status port.
pub const TIKV_PORT_NAME_STATUS: &str = "status";
/// Default client (gRPC) port of TiKV.
pub const TIKV_DEFAULT_PORT_CLIENT: i32 = 20160;
/// Default status port of TiKV.
pub const TIKV_DEFAULT_PORT_STATUS: i32 = 20180;

/// Store state: registered, no regions yet; ready to serve.
pub const STORE_STATE_PREPARING: &str = "Preparing";
/// Store state: holds its share of regions and serves.
pub const STORE_STATE_SERVING: &str = "Serving";
/// Store state: being taken offline; its regions move away.
pub const STORE_STATE_REMOVING: &str = "Removing";
/// Store state: offline for good (tombstone); its data is no longer needed.
pub const STORE_STATE_REMOVED: &str = "Removed";

/// A group of TiKV stores made from one template.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiKVGroup",
    namespaced,
    status = "ComponentGroupStatus",
    shortname = "kvg",
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
    validation = name_length_rule(),
    doc = "TiKVGroup: a group of TiKV stores made from one template."
)]
#[serde(rename_all = "camelCase")]
pub struct TiKVGroupSpec {
    /// The Cluster this group belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this group; the Cluster's feature gates are copied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Number of TiKV stores.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How stores are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// The template every store is made from.
    pub template: TiKVTemplate,
}

/// Template of the TiKV stores of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVTemplate {
    /// Labels and annotations of the TiKV instances and their Pods.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// The TiKV instance spec.
    pub spec: TiKVTemplateSpec,
}

/// What every TiKV store of a group runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = overlay_claims_in_volumes(), validation = data_volume_required())]
pub struct TiKVTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// Listen ports.
    #[serde(default, skip_serializing_if = "TiKVServer::is_empty")]
    pub server: TiKVServer,
    /// The check run before a TiKV container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<TiKVPreStop>,
}

/// The pre-stop checker of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVPreStop {
    /// Image of the pre-stop checker. Default `pingcap/prestop-checker:latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Server settings of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVServer {
    /// Ports TiKV listens on.
    #[serde(default, skip_serializing_if = "TiKVPorts::is_empty")]
    pub ports: TiKVPorts,
}

impl TiKVServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Ports of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVPorts {
    /// Client (gRPC) port. Default 20160.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Port>,
    /// Status (HTTP) port. Default 20180.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Port>,
    /// The status port under the name some reference releases gave it; `status` wins when both
    /// are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Port>,
}

impl TiKVPorts {
    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.status.is_none() && self.peer.is_none()
    }

    /// The status port the user asked for, under either of its names.
    pub fn status_port(&self) -> Option<&Port> {
        self.status.as_ref().or(self.peer.as_ref())
    }
}

/// One TiKV store.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiKV",
    plural = "tikvs",
    namespaced,
    status = "TiKVStatus",
    category = "instance",
    selectable = ".spec.cluster.name",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "StoreID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "StoreState", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(),
    doc = "TiKV: one TiKV store, made by its TiKVGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = topology_set_at_creation())]
pub struct TiKVSpec {
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
    /// The template fields, copied from the group.
    #[serde(flatten)]
    pub template: TiKVTemplateSpec,
}

/// Status of a TiKV store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// PD's store ID of this instance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Store state: Preparing, Serving, Removing or Removed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// How the last change of `config` reached the running process (`HotReload` only).
    #[serde(
        default,
        rename = "lastConfigChange",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_config_change: Option<ConfigChangeStatus>,
}
