//! TiDBGroup and TiDB: the stateless SQL servers of a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, Feature, ObjectMeta,
    Port, ResourceRequirements, SchedulePolicy, Tls, Topology, name_length_rule,
    overlay_claims_in_volumes, topology_set_at_creation,
};
use crate::schema::min_1_property;

/// Mount type of TiDB's slow-log directory.
pub const TIDB_VOLUME_MOUNT_TYPE_SLOW_LOG: &str = "slowlog";
/// Default mount path of TiDB's slow log.
pub const TIDB_SLOW_LOG_DEFAULT_PATH: &str = "/var/log/tidb";
/// Name of TiDB's MySQL port.
pub const TIDB_PORT_NAME_CLIENT: &str = "mysql-client";
/// Name of TiDB's status port.
pub const TIDB_PORT_NAME_STATUS: &str = "status";
/// Default MySQL port of TiDB.
pub const TIDB_DEFAULT_PORT_CLIENT: i32 = 4000;
/// Default status port of TiDB.
pub const TIDB_DEFAULT_PORT_STATUS: i32 = 10080;
/// Default seconds a TiDB Pod waits in preStop before it is told to stop.
pub const TIDB_DEFAULT_PRE_STOP_SLEEP_SECONDS: i32 = 10;
/// Default number of extra TiDB instances a rolling update may create.
pub const TIDB_DEFAULT_MAX_SURGE: i32 = 1;

/// A group of TiDB servers made from one template.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiDBGroup",
    namespaced,
    status = "ComponentGroupStatus",
    shortname = "dbg",
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
    doc = "TiDBGroup: a group of TiDB servers made from one template."
)]
#[serde(rename_all = "camelCase")]
pub struct TiDBGroupSpec {
    /// The Cluster this group belongs to.
    pub cluster: ClusterReference,
    /// Features turned on for this group; the Cluster's feature gates are copied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Number of TiDB servers.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How many instances above `replicas` a rolling update may create, so that no server is
    /// taken away before its replacement is Ready. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_surge: Option<i32>,
    /// Overrides of the MySQL Service of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TiDBService>,
    /// How servers are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// The template every server is made from.
    pub template: TiDBTemplate,
}

/// Overrides of the MySQL Service of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBService {
    /// Service type: ClusterIP (the default), NodePort, LoadBalancer or ExternalName.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Template of the TiDB servers of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBTemplate {
    /// Labels and annotations of the TiDB instances and their Pods.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// The TiDB instance spec.
    pub spec: TiDBTemplateSpec,
}

/// What every TiDB server of a group runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = overlay_claims_in_volumes())]
pub struct TiDBTemplateSpec {
    /// Version, image, resources, configuration, volumes and overlay.
    #[serde(flatten)]
    pub common: CommonTemplateSpec,
    /// Listen ports and server labels.
    #[serde(default, skip_serializing_if = "TiDBServer::is_empty")]
    pub server: TiDBServer,
    /// Readiness probe of the server.
    #[serde(default, skip_serializing_if = "TiDBProbes::is_empty")]
    pub probes: TiDBProbes,
    /// TLS for MySQL clients and token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<TiDBSecurity>,
    /// A sidecar that prints the slow log to its stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_log: Option<TiDBSlowLog>,
    /// The wait before the server is told to stop, so it leaves load balancers first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<TiDBPreStop>,
}

/// Server settings of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct TiDBServer {
    /// Ports TiDB listens on.
    #[serde(default, skip_serializing_if = "TiDBPorts::is_empty")]
    pub ports: TiDBPorts,
    /// Server labels of TiDB, in place of `labels` in its config file. `host`, `region` and `zone`
    /// are set by the operator from the node's topology.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('host' in self) && !('region' in self) && !('zone' in self)").message("labels cannot contain 'host', 'region', or 'zone' keys"))]
    pub labels: BTreeMap<String, String>,
}

impl TiDBServer {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.labels.is_empty()
    }
}

/// Ports of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBPorts {
    /// MySQL port. Default 4000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Port>,
    /// Status (HTTP) port. Default 10080.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Port>,
}

impl TiDBPorts {
    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.status.is_none()
    }
}

/// Probes of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBProbes {
    /// Readiness probe. Default: a TCP check of the MySQL port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<TiDBProbe>,
}

impl TiDBProbes {
    /// True when no probe is set.
    pub fn is_empty(&self) -> bool {
        self.readiness.is_none()
    }
}

/// How a TiDB probe checks the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TiDBProbeType {
    /// Connect to the MySQL port.
    #[serde(rename = "tcp")]
    Tcp,
    /// Ask the status API whether the server is healthy.
    #[serde(rename = "command")]
    Command,
}

/// One probe of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBProbe {
    /// `tcp` connects to the MySQL port; `command` asks the status API.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<TiDBProbeType>,
}

/// Security settings of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TiDBSecurity {
    /// TLS between MySQL clients and TiDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TiDBTls>,
    /// The `tidb_auth_token` authentication method. Its JWKs are read from the named Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<TiDBAuthToken>,
}

/// TLS of TiDB's MySQL port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct TiDBTls {
    /// TLS for MySQL clients, with the server certificate in the Secret
    /// `<group>-tidb-server-secret`. It cannot be turned on or off after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("oldSelf == null || self.enabled == oldSelf.enabled").message("field .mysql.enabled is immutable"))]
    pub mysql: Option<Tls>,
}

/// Token authentication of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBAuthToken {
    /// The Secret holding the JWKs.
    pub jwks: LocalObjectReference,
}

/// The slow-log sidecar of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBSlowLog {
    /// Image of the sidecar. Default `busybox:1.37.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory of the sidecar.
    #[serde(default, skip_serializing_if = "ResourceRequirements::is_empty")]
    pub resources: ResourceRequirements,
}

/// The graceful stop of a TiDB server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TiDBPreStop {
    /// Seconds to wait before the server gets SIGTERM, so that it leaves the Service endpoints and
    /// load balancers first. The Pod's termination grace period is this plus 20 seconds.
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub sleep_seconds: Option<i32>,
}

/// One TiDB server.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "TiDB",
    plural = "tidbs",
    namespaced,
    status = "TiDBStatus",
    category = "instance",
    selectable = ".spec.cluster.name",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(),
    doc = "TiDB: one TiDB server, made by its TiDBGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = topology_set_at_creation())]
pub struct TiDBSpec {
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
    /// The template fields, copied from the group.
    #[serde(flatten)]
    pub template: TiDBTemplateSpec,
}

/// Status of a TiDB server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
