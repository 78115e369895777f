//! Cluster: one TiDB (or TiKV-only) cluster, the object every group points at.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CLUSTER_NAME_MAX, Feature, FeatureGate, FeatureGateStatus, InternalClientTls,
    LocalObjectReference, name_length_rule,
};

/// A TiDB cluster: its cluster-wide settings. The PD, TiKV and TiDB groups that make it up point
/// at it by name.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "core.pingcap.com",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    printcolumn(name = "PD", type_ = "integer", json_path = r#".status.components[?(@.kind=="PD")].replicas"#),
    printcolumn(name = "TiKV", type_ = "integer", json_path = r#".status.components[?(@.kind=="TiKV")].replicas"#),
    printcolumn(name = "TiDB", type_ = "integer", json_path = r#".status.components[?(@.kind=="TiDB")].replicas"#),
    printcolumn(name = "TiFlash", type_ = "integer", json_path = r#".status.components[?(@.kind=="TiFlash")].replicas"#),
    printcolumn(name = "TiProxy", type_ = "integer", json_path = r#".status.components[?(@.kind=="TiProxy")].replicas"#),
    printcolumn(name = "Available", type_ = "string", json_path = r#".status.conditions[?(@.type=="Available")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = name_length_rule(CLUSTER_NAME_MAX),
    doc = "Cluster: one TiDB or TiKV-only cluster; its PD, TiKV and TiDB groups point at it by name."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("oldSelf == null || !has(self.bootstrapSQL) || (has(oldSelf.bootstrapSQL) && self.bootstrapSQL.name == oldSelf.bootstrapSQL.name)").message("bootstrapSQL can only be set at creation, can be unset, but cannot be changed to a different value"),
    // On the spec, not on `tlsCluster`: adding or removing the whole field is a change too.
    validation = Rule::new("oldSelf == null || (has(oldSelf.tlsCluster) == has(self.tlsCluster)) && (!has(self.tlsCluster) || self.tlsCluster.enabled == oldSelf.tlsCluster.enabled)").message("tlsCluster is immutable"),
    // Ours, not the reference's: PD keeps each member's peer URLs in its own data, so the names
    // cannot change under a running cluster. Compared as they take effect: no `dns` is
    // `InCluster`, and the domain counts only for `FQDN`.
    validation = Rule::new(DNS_UNCHANGED_RULE).message(DNS_UNCHANGED_MESSAGE).field_path(".dns"),
    // Ours too: which PD cluster the members join is decided once; PD keeps it in its data.
    validation = Rule::new(JOIN_UNCHANGED_RULE).message(JOIN_UNCHANGED_MESSAGE).field_path(".join")
)]
pub struct ClusterSpec {
    /// What to suspend: with `suspendCompute`, every Pod is removed while instances, PVCs and data
    /// stay, and the same instances come back on the same PVCs when it is turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_action: Option<SuspendAction>,
    /// Mutual TLS between the components. It cannot be turned on or off, added or removed after
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cluster: Option<TlsCluster>,
    /// A ConfigMap whose key `bootstrap-sql` holds SQL run once, when TiDB first bootstraps the
    /// cluster (TiDB v6.5.1 and later). It can be set at creation or removed, never changed.
    #[serde(
        rename = "bootstrapSQL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_sql: Option<LocalObjectReference>,
    /// Upgrade order: `Default` upgrades PD, then TiKV, then TiDB, each only once the one before
    /// runs the new version everywhere; `NoConstraints` upgrades all groups at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_policy: Option<UpgradePolicy>,
    /// Stops every controller from changing anything of this cluster until it is false again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Revisions kept in each group's history. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,
    /// Features turned on for the whole cluster. Changing them later needs `FeatureModification`,
    /// which cannot be turned off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("oldSelf.exists(fg, fg.name == 'FeatureModification') || self.filter(fg, fg.name != 'FeatureModification') == oldSelf").message("can only enable FeatureModification if it's not enabled"),
        validation = Rule::new("self.exists(fg, fg.name == 'FeatureModification') || !oldSelf.exists(fg, fg.name == 'FeatureModification')").message("cannot disable FeatureModification")
    )]
    pub feature_gates: Vec<FeatureGate>,
    /// Name of the PD Service shared by every PDGroup under the `MultiPDGroup` feature (default
    /// `<cluster>-pd`); naming a PDGroup's own client Service (`<group>-pd`) keeps the PD URL
    /// every component was given when the feature is turned on. Without the feature it does
    /// nothing.
    #[serde(
        rename = "customizedPDServiceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub customized_pd_service_name: Option<String>,
    /// How components name each other in DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<ClusterDns>,
    /// Security settings of the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<ClusterSecurity>,
    /// An extension (not in the reference API): the PD cluster this Cluster joins, run by another
    /// Kubernetes cluster. Its PD members join that PD cluster instead of bootstrapping one.
    /// Fixed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<ClusterJoin>,
}

/// The PD cluster a Cluster joins, across Kubernetes clusters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterJoin {
    /// Client URLs of members of the existing PD cluster, reachable from this Kubernetes
    /// cluster's Pods, for example
    /// `http://basic-pd-abc.basic-pd-peer.db.svc.cluster-1.local:2379`.
    #[serde(rename = "pdURLs")]
    // Bounded items keep the CEL rule within the API server's cost budget.
    #[schemars(length(min = 1, max = 16), inner(length(max = 300)))]
    #[x_kube(validation = Rule::new(JOIN_URLS_RULE).message(JOIN_URLS_MESSAGE))]
    pub pd_urls: Vec<String>,
}

/// The CEL rule each join URL passes: `http://` or `https://`, a host and a port, no path.
pub const JOIN_URLS_RULE: &str =
    "self.all(u, u.matches('^https?://[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?:[0-9]{1,5}$'))";

/// Why a join URL is refused.
pub const JOIN_URLS_MESSAGE: &str =
    "each of join.pdURLs is a PD client URL: http(s)://host:port, without a path";

/// The CEL rule that keeps `spec.join` once the Cluster exists: set or not, and the same URLs.
pub const JOIN_UNCHANGED_RULE: &str = "oldSelf == null || has(self.join) == has(oldSelf.join) && \
(!has(self.join) || self.join.pdURLs == oldSelf.join.pdURLs)";

/// Why `spec.join` cannot change.
pub const JOIN_UNCHANGED_MESSAGE: &str = "join cannot be set, removed or changed once the cluster exists: its PD members joined that PD cluster";

/// Security settings of a whole cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecurity {
    /// TLS settings of the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTlsConfig>,
    /// The Secret (`tls.crt`, `tls.key`) TiDB signs session tokens with, under the
    /// `SessionTokenSigning` feature. Default: the cluster TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_signing_cert_key_pair: Option<LocalObjectReference>,
}

/// TLS settings of a whole cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterTlsConfig {
    /// The certificate the operator uses to reach the components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<InternalClientTls>,
}

/// What a suspended cluster gives up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspendAction {
    /// Delete every Pod of the cluster but keep its instances, PVCs and data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend_compute: bool,
}

/// Mutual TLS between the components of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TlsCluster {
    /// Turn on mutual TLS for every component. Each group needs the Secret
    /// `<group>-<component>-cluster-secret` (keys `tls.crt`, `tls.key`, `ca.crt`), and clients the
    /// Secret `<cluster>-cluster-client-secret`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
}

/// The order in which groups take a new version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpgradePolicy {
    /// PD first, then TiKV, then TiDB; each waits for the one before.
    #[default]
    Default,
    /// Every group upgrades at once.
    NoConstraints,
}

/// The CEL rule that keeps `spec.dns` as it takes effect once the Cluster exists.
pub const DNS_UNCHANGED_RULE: &str = "oldSelf == null || \
(has(self.dns) ? self.dns.mode : 'InCluster') == (has(oldSelf.dns) ? oldSelf.dns.mode : 'InCluster') && \
((has(self.dns) ? self.dns.mode : 'InCluster') == 'InCluster' || \
(has(self.dns.clusterDomain) ? self.dns.clusterDomain : 'cluster.local') == \
(has(oldSelf.dns.clusterDomain) ? oldSelf.dns.clusterDomain : 'cluster.local'))";

/// Why `spec.dns` cannot change.
pub const DNS_UNCHANGED_MESSAGE: &str = "dns.mode and dns.clusterDomain cannot change once the cluster exists: PD keeps its members' peer URLs in its data";

/// DNS names of the components.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::require_mode)]
pub struct ClusterDns {
    /// How addresses are formed: `InCluster` (the default) for `<pod>.<service>.<namespace>`,
    /// `FQDN` for `<pod>.<service>.<namespace>.svc.<clusterDomain>`. Fixed once the cluster
    /// exists.
    // Always written: the API requires it (and defaults it when a manifest leaves it out).
    #[serde(default)]
    #[schemars(extend("default" = "InCluster"))]
    pub mode: DnsMode,
    /// The Kubernetes cluster domain, used by `FQDN`. Default `cluster.local`. Fixed once an
    /// `FQDN` cluster exists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("default" = "cluster.local"))]
    pub cluster_domain: String,
}

/// The form of the components' DNS names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DnsMode {
    /// `<pod>.<service>.<namespace>.svc.<clusterDomain>`.
    #[serde(rename = "FQDN")]
    Fqdn,
    /// `<pod>.<service>.<namespace>`.
    #[default]
    InCluster,
}

/// The kind of a component in `status.components`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ComponentKind {
    /// PD.
    PD,
    /// TiKV.
    TiKV,
    /// TiDB.
    TiDB,
    /// TiFlash.
    TiFlash,
    /// TiCDC.
    TiCDC,
    /// TiProxy.
    TiProxy,
    /// TiKV workers (next-generation TiKV).
    TiKVWorker,
}

/// Replicas of one component of a cluster, summed over its groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentStatus {
    /// The component.
    pub kind: ComponentKind,
    /// Desired replicas over all groups of the component.
    pub replicas: i32,
}

/// Observed state of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The generation of the spec the controller last acted on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    /// Replicas of each component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["kind".into()]))]
    pub components: Vec<ComponentStatus>,
    /// `Available`, `Progressing`, `Ready`, `Synced`, `Suspended`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// PD's cluster ID.
    #[serde(default)]
    pub id: String,
    /// URL of the PD service the other controllers use, for example `http://basic-pd.db:2379`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pd: String,
    /// Feature gates in force, with their stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub feature_gates: Vec<FeatureGateStatus>,
    /// An extension (not in the reference API): the PD members of the whole TiDB cluster as PD
    /// lists them, those of this Cluster marked `local`. Written when the Cluster joins another
    /// (`spec.join`) or is joined.
    #[serde(rename = "pdMembers", default, skip_serializing_if = "Vec::is_empty")]
    pub pd_members: Vec<PdMemberStatus>,
    /// An extension (not in the reference API): the stores of the whole TiDB cluster as PD lists
    /// them (Tombstones left out), those of this Cluster marked `local`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<StoreMemberStatus>,
    /// An extension (not in the reference API): the TiDB servers of the whole TiDB cluster as a
    /// TiDB server of this Cluster lists them (`/info/all`), those of this Cluster marked
    /// `local`. Written while PD lists members of another Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tidb_servers: Vec<TidbServerStatus>,
}

/// One TiDB server of the whole TiDB cluster, as the Cluster's status shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TidbServerStatus {
    /// The address it serves MySQL clients on, `host:port`.
    pub address: String,
    /// The version it reports.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Whether it is an instance of this Cluster (else it runs in another Kubernetes cluster).
    #[serde(default)]
    pub local: bool,
}

/// One store of the whole TiDB cluster, as the Cluster's status shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreMemberStatus {
    /// The store ID in PD.
    pub id: String,
    /// The address the store advertises, `host:port`.
    pub address: String,
    /// Its state as PD names it: Up, Offline, Disconnected, Down.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// The version PD reports for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Whether it is an instance of this Cluster (else it runs in another Kubernetes cluster).
    #[serde(default)]
    pub local: bool,
}

/// One PD member of the whole TiDB cluster, as the Cluster's status shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdMemberStatus {
    /// The member's name in PD.
    pub name: String,
    /// Its client URL as PD lists it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_url: String,
    /// Whether it is an instance of this Cluster (else it runs in another Kubernetes cluster).
    #[serde(default)]
    pub local: bool,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl ClusterSpec {
    /// Whether the feature gate `feature` is on.
    pub fn enables(&self, feature: Feature) -> bool {
        self.feature_gates.iter().any(|g| g.name == feature)
    }

    /// The Service every PDGroup of the Cluster is reached through under the `MultiPDGroup`
    /// gate: `customizedPDServiceName`, else `<cluster>-pd` (tidb-operator v2's names). `None`
    /// without the gate: each PDGroup then has a client Service of its own.
    pub fn pd_service(&self, cluster: &str) -> Option<String> {
        self.enables(Feature::MultiPDGroup).then(|| {
            self.customized_pd_service_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{cluster}-pd"))
        })
    }

    /// Whether the Cluster suspends compute (every Pod deleted, instances and PVCs kept).
    pub fn suspends_compute(&self) -> bool {
        self.suspend_action
            .as_ref()
            .is_some_and(|s| s.suspend_compute)
    }
}
