//! PDGroup and PD: the placement driver members of a cluster.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{min_1_property, require_volumes};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, ConfigChangeStatus,
    Failover, Feature, GROUP_NAME_MAX, INSTANCE_NAME_MAX, ObjectMeta, Port, SchedulePolicy,
    Security, Topology, data_volume_required, name_length_rule, overlay_claims_in_volumes,
    topology_set_at_creation,
};

/// Mount type of PD's data directory.
pub const PD_VOLUME_MOUNT_TYPE_DATA: &str = "data";
/// Default mount path of PD's data directory.
pub const PD_DATA_DEFAULT_PATH: &str = "/var/lib/pd";
/// Name of PD's client port.
pub const PD_PORT_NAME_CLIENT: &str = "client";
/// Name of PD's peer port.
pub const PD_PORT_NAME_PEER: &str = "peer";
/// Default client port of PD.
pub const PD_DEFAULT_PORT_CLIENT: i32 = 2379;
/// Default peer port of PD.
pub const PD_DEFAULT_PORT_PEER: i32 = 2380;
/// Seconds a PD member must have been Ready to count as available, when the group does not say.
pub const PD_DEFAULT_MIN_READY_SECONDS: i64 = 5;

/// A group of PD members made from one template.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "PDGroup",
    namespaced,
    status = "ComponentGroupStatus",
    shortname = "pdg",
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
    doc = "PDGroup: a group of PD members made from one template."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.bootstrapped || (self.replicas == oldSelf.replicas)").message("replicas cannot be changed when bootstrapped is false"))]
pub struct PDGroupSpec {
    /// The Cluster this group belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this group; the Cluster's feature gates are copied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Number of PD members.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Whether the PD cluster has been bootstrapped; new members then join it instead of forming a
    /// new one. The operator sets it; once true it cannot go back to false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[x_kube(validation = Rule::new("!oldSelf || self").message("bootstrapped cannot be changed from true to false"))]
    pub bootstrapped: bool,
    /// How members are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// Seconds a new member must have been Ready, without its containers crashing, to count as
    /// available. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i64>,
    /// Automatic failover of failed members; an extension of this operator (docs/failover.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
    /// The template every member is made from.
    pub template: PDTemplate,
}

/// Template of the PD members of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PDTemplate {
    /// Labels and annotations of the PD instances and their Pods.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// The PD instance spec.
    pub spec: PDTemplateSpec,
}

/// What every PD member of a group runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_volumes)]
#[x_kube(
    validation = overlay_claims_in_volumes(),
    validation = data_volume_required()
)]
pub struct PDTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// PD's mode: empty for a normal PD, `ms` for microservices (TSO and scheduling served
    /// apart). This operator runs PD in the normal mode only: with `ms` the group says so
    /// (`PDModeNotSupported`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Listen ports.
    #[serde(default, skip_serializing_if = "PDServer::is_empty")]
    pub server: PDServer,
    /// Security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

/// Server settings of PD.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PDServer {
    /// Ports PD listens on.
    #[serde(default, skip_serializing_if = "PDPorts::is_empty")]
    pub ports: PDPorts,
}

impl PDServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Ports of PD.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PDPorts {
    /// Client port (API and clients). Default 2379.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Port>,
    /// Peer port (member to member). Default 2380.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Port>,
}

impl PDPorts {
    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.peer.is_none()
    }

    /// The client port: the one set, else 2379.
    pub fn client_port(&self) -> i32 {
        self.client
            .as_ref()
            .map_or(PD_DEFAULT_PORT_CLIENT, |p| p.port)
    }

    /// The peer port: the one set, else 2380.
    pub fn peer_port(&self) -> i32 {
        self.peer.as_ref().map_or(PD_DEFAULT_PORT_PEER, |p| p.port)
    }
}

/// One PD member.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "PD",
    plural = "pds",
    namespaced,
    status = "PDStatus",
    category = "instance",
    selectable = ".spec.cluster.name",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.isLeader"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(INSTANCE_NAME_MAX),
    doc = "PD: one PD member, made by its PDGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = topology_set_at_creation())]
pub struct PDSpec {
    /// The Cluster this member belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Where this member runs; it becomes the Pod's node selector and cannot change.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    #[schemars(transform = min_1_property)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topology is immutable"))]
    pub topology: Topology,
    /// Subdomain of the member's DNS name (the group's peer Service); the same for every member.
    #[x_kube(validation = Rule::new("self == oldSelf").message("subdomain is immutable"))]
    pub subdomain: String,
    /// Always 1: it lets a PodDisruptionBudget count the instance through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1), extend("default" = 1))]
    pub replicas: Option<i32>,
    /// The template fields, copied from the group.
    #[serde(flatten)]
    pub template: PDTemplateSpec,
}

/// Status of a PD member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PDStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// PD's member ID of this instance.
    #[serde(default)]
    pub id: String,
    /// Whether this member was PD's leader when last observed.
    #[serde(default)]
    pub is_leader: bool,
    /// How the last change of `config` reached the running process (`HotReload` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_config_change: Option<ConfigChangeStatus>,
}
