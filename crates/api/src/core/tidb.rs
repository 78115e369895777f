//! TiDBGroup and TiDB: the stateless SQL servers of a cluster.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClusterReference, CommonStatus, CommonTemplateSpec, ComponentGroupStatus, Failover, Feature,
    GROUP_NAME_MAX, INSTANCE_NAME_MAX, InternalTls, LocalObjectReference, ObjectMeta, Port,
    ResourceRequirements, SchedulePolicy, Tls, Topology, name_length_rule,
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
/// Seconds a TiDB server must have been Ready to count as available, when the group does not say.
pub const TIDB_DEFAULT_MIN_READY_SECONDS: i64 = 10;

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
    validation = name_length_rule(GROUP_NAME_MAX),
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
    /// Seconds a new server must have been Ready, without its containers crashing, to count as
    /// available. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i64>,
    /// How many instances above `replicas` a rolling update may create, so that no server is
    /// taken away before its replacement is Ready. At least 1; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_surge: Option<i32>,
    /// Overrides of the MySQL Service of the group; an extension of this operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TiDBService>,
    /// How servers are placed over topologies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub schedule_policies: Vec<SchedulePolicy>,
    /// Automatic failover of failed servers; an extension of this operator (docs/failover.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
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
    /// The keyspace this server serves (next-generation TiDB only). It can be set only with
    /// `mode: Normal`; a classic TiDB has no keyspace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyspace: String,
    /// `Normal` (the default) serves; `StandBy` waits to be given a keyspace (next-generation TiDB
    /// only).
    // Left out when Normal, so that the default the API server fills in does not change the
    // template's revision.
    #[serde(default, skip_serializing_if = "TiDBMode::is_normal")]
    #[schemars(extend("default" = "Normal"))]
    pub mode: TiDBMode,
}

/// The mode of a TiDB server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TiDBMode {
    /// Serves SQL.
    #[default]
    Normal,
    /// Waits to be activated with a keyspace.
    StandBy,
}

impl TiDBMode {
    /// True for the default mode.
    pub fn is_normal(&self) -> bool {
        *self == TiDBMode::Normal
    }
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
    /// Security enhanced mode (SEM), with its configuration in a ConfigMap (key `sem.json`);
    /// setting it sets `security.enable-sem = true`, which the config file can still turn off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sem: Option<TiDBSem>,
}

/// Security enhanced mode of TiDB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TiDBSem {
    /// The ConfigMap holding the SEM configuration.
    pub config: LocalObjectReference,
}

/// TLS of TiDB: its MySQL port and the links to the other components.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct TiDBTls {
    /// TLS for MySQL clients, with the server certificate by default in the Secret
    /// `<group>-tidb-server-secret`. It cannot be turned on or off after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("oldSelf == null || self.enabled == oldSelf.enabled").message("field .mysql.enabled is immutable"))]
    pub mysql: Option<Tls>,
    /// The Secrets used between the components when the cluster has TLS on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<InternalTls>,
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
    /// Default 10; a negative value counts as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].status"#),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(INSTANCE_NAME_MAX),
    doc = "TiDB: one TiDB server, made by its TiDBGroup."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = topology_set_at_creation(),
    // On the instance only, where the reference has it too.
    validation = Rule::new("!has(self.mode) || self.mode == 'Normal' || !has(self.keyspace) || self.keyspace.size() == 0").message("keyspace cannot be set if mode is StandBy")
)]
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
    /// Always 1: it lets a PodDisruptionBudget count the instance through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1), extend("default" = 1))]
    pub replicas: Option<i32>,
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
