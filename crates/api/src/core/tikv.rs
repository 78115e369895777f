//! TiKVGroup and TiKV: the storage nodes (stores) of a cluster.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, ConfigChangeStatus,
    Failover, Feature, GROUP_NAME_MAX, INSTANCE_NAME_MAX, LocalObjectReference, ObjectMeta, Port,
    SchedulePolicy, Security, Topology, data_volume_required, name_length_rule,
    overlay_claims_in_volumes, topology_set_at_creation,
};
use crate::schema::{min_1_property, require_volumes};

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
/// Seconds a TiKV store must have been Ready to count as available, when the group does not say.
pub const TIKV_DEFAULT_MIN_READY_SECONDS: i64 = 5;

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
    validation = name_length_rule(GROUP_NAME_MAX),
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
    /// Seconds a new store must have been Ready, without its containers crashing, to count as
    /// available. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i64>,
    /// Automatic failover of failed stores; an extension of this operator (docs/failover.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
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
#[schemars(transform = require_volumes)]
#[x_kube(validation = overlay_claims_in_volumes(), validation = data_volume_required())]
pub struct TiKVTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// Listen ports and store labels.
    #[serde(default, skip_serializing_if = "TiKVServer::is_empty")]
    pub server: TiKVServer,
    /// Placement labels the operator gives the stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<TiKVStorePlacement>,
    /// Security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// The check run before a TiKV container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<TiKVPreStop>,
    /// The TiKV workers this TiKV hands work to (next-generation TiKV only). This operator runs
    /// no workers: with it set the group says so (`RemoteWorkersNotSupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_workers: Option<TiKVRemoteWorkers>,
}

/// Placement labels the operator gives TiKV stores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVStorePlacement {
    /// Gives the group's stores an extra, exclusive placement label besides the group's one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
}

/// The TiKV workers of a next-generation TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVRemoteWorkers {
    /// The default worker; required once remote workers are used.
    pub worker: LocalObjectReference,
    /// The coprocessor worker. Default: `worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coprocessor: Option<LocalObjectReference>,
    /// The compactor worker. Default: `worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compactor: Option<LocalObjectReference>,
}

/// The pre-stop checker of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVPreStop {
    /// Image of the pre-stop checker. Default `pingcap/prestop-checker:latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Server settings of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct TiKVServer {
    /// Ports TiKV listens on.
    #[serde(default, skip_serializing_if = "TiKVPorts::is_empty")]
    pub ports: TiKVPorts,
    /// Store labels of TiKV, set through PD. `host`, `region`, `zone` and keys under `k/` or `$k/`
    /// are the operator's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = Rule::new("!('host' in self) && !('region' in self) && !('zone' in self)").message("labels cannot contain 'host', 'region', or 'zone' keys"),
        validation = Rule::new("self.all(k, !k.startsWith('k/') && !k.startsWith('$k/'))").message("labels cannot contain keys with 'k/' or '$k/' prefix")
    )]
    pub labels: BTreeMap<String, String>,
}

impl TiKVServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.labels.is_empty()
    }
}

/// Ports of TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiKVPorts {
    /// Client (gRPC) port. Default 20160.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Port>,
    /// Status (HTTP) port under a name of its own; an extension of this operator. `status` wins
    /// when both it and `peer` are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Port>,
    /// Status (HTTP) port, under the name the reference gives it. Default 20180.
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
