//! TiCDCGroup and TiCDC: the change-data-capture servers of a cluster, which replicate row
//! changes to Kafka, MySQL or storage.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, Feature,
    GROUP_NAME_MAX, INSTANCE_NAME_MAX, ObjectMeta, Port, SchedulePolicy, Security, Topology,
    name_length_rule, overlay_claims_in_volumes, topology_set_at_creation,
};
use crate::schema::{min_1_property, require_id_and_is_owner};

/// Name of TiCDC's port.
pub const TICDC_PORT_NAME: &str = "ticdc";
/// Default port of TiCDC.
pub const TICDC_DEFAULT_PORT: i32 = 8300;
/// Seconds a TiCDC server must have been Ready to count as available, when the group does not
/// say.
pub const TICDC_DEFAULT_MIN_READY_SECONDS: i64 = 5;

/// A group of TiCDC servers made from one template.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiCDCGroup",
    namespaced,
    status = "ComponentGroupStatus",
    shortname = "cg",
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
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(GROUP_NAME_MAX),
    doc = "TiCDCGroup: a group of TiCDC servers made from one template."
)]
#[serde(rename_all = "camelCase")]
pub struct TiCDCGroupSpec {
    /// The Cluster this group belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this group; the Cluster's feature gates are copied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Number of TiCDC servers.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How servers are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// Seconds a new server must have been Ready, without its containers crashing, to count as
    /// available. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i64>,
    /// The template every server is made from.
    pub template: TiCDCTemplate,
}

/// Template of the TiCDC servers of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiCDCTemplate {
    /// Labels and annotations of the TiCDC instances and their Pods.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// The TiCDC instance spec.
    pub spec: TiCDCTemplateSpec,
}

/// What every TiCDC server of a group runs. Volumes are optional: TiCDC keeps only its sort
/// files on disk, and an ephemeral volume in the overlay serves as well.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = overlay_claims_in_volumes())]
pub struct TiCDCTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// Listen port.
    #[serde(default, skip_serializing_if = "TiCDCServer::is_empty")]
    pub server: TiCDCServer,
    /// Security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// The check run before a TiCDC container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<TiCDCPreStop>,
    /// The sidecar that keeps labelled Secrets (sink certificates, say) as files in the Pod, under
    /// the `TiCDCDynamicSecretSyncer` feature gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncer: Option<TiCDCSyncer>,
}

/// Server settings of TiCDC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiCDCServer {
    /// Ports TiCDC listens on.
    #[serde(default, skip_serializing_if = "TiCDCPorts::is_empty")]
    pub ports: TiCDCPorts,
}

impl TiCDCServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Ports of TiCDC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiCDCPorts {
    /// The one port of TiCDC, for its HTTP API and its peers. Default 8300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
}

impl TiCDCPorts {
    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.port.is_none()
    }
}

/// The pre-stop checker of TiCDC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiCDCPreStop {
    /// Image of the pre-stop checker. Default `pingcap/prestop-checker:latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The resource syncer sidecar of TiCDC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiCDCSyncer {
    /// Image of the syncer, which runs its `/tidb-secret-syncer`. Default: this operator's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Labels a Secret must carry, besides the operator's own (`pingcap.com/managed-by`,
    /// `pingcap.com/component: ticdc`, `pingcap.com/cluster`), to be kept in the Pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One TiCDC server.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiCDC",
    plural = "ticdcs",
    namespaced,
    status = "TiCDCStatus",
    category = "instance",
    selectable = ".spec.cluster.name",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(INSTANCE_NAME_MAX),
    doc = "TiCDC: one TiCDC server, made by its TiCDCGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = topology_set_at_creation())]
pub struct TiCDCSpec {
    /// The Cluster this server belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Where this server runs; it becomes the Pod's node selector and cannot change.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    #[schemars(transform = min_1_property)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topology is immutable"))]
    pub topology: Topology,
    /// Subdomain of the server's DNS name (the group's peer Service); the same for every server.
    #[x_kube(validation = Rule::new("self == oldSelf").message("subdomain is immutable"))]
    pub subdomain: String,
    /// Always 1: it lets a PodDisruptionBudget count the instance through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1), extend("default" = 1))]
    pub replicas: Option<i32>,
    /// The template fields, copied from the group.
    #[serde(flatten)]
    pub template: TiCDCTemplateSpec,
}

/// Status of a TiCDC server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_id_and_is_owner)]
pub struct TiCDCStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The capture ID of this server.
    #[serde(default)]
    pub id: String,
    /// True while this server is the owner of the TiCDC cluster.
    #[serde(default)]
    pub is_owner: bool,
}
