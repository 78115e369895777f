//! Types every component shares: the cluster reference, the instance template, volumes, overlays,
//! schedule policies and the common and group status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use kube::core::Rule;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{
    CLUSTER_NAME_PATTERN, DURATION_PATTERN, VERSION_PATTERN, atomic_map, max_512_properties,
    min_1_property, quantity, require_enabled,
};

/// Longest name of a Cluster: its name is the prefix of Secrets and Services of the cluster.
pub const CLUSTER_NAME_MAX: usize = 37;
/// Longest name of a group: an instance is named `<group>-<suffix>`, and the group's Services
/// `<group>-<component>-peer` must stay DNS labels.
pub const GROUP_NAME_MAX: usize = 40;
/// Longest name of an instance: its Pod's hostname and label values stay within 63 characters.
pub const INSTANCE_NAME_MAX: usize = 47;

/// Automatic failover of a group's failed instances; an extension of this operator
/// (docs/failover.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// Whether failed instances are replaced. Default true. Turning it off stops new
    /// replacements; the replacements already made stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long an instance must have been failed before it is replaced (a TiKV store: Down in
    /// PD; a PD member or a TiDB server: not Ready). A Go duration (`90s`, `5m`). Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub period: Option<String>,
    /// The most failed instances whose replacements are outstanding at once; at the cap, a
    /// further failure is reported and not replaced. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_replacements: Option<i32>,
}

/// Default of [`Failover::period`].
pub const FAILOVER_DEFAULT_PERIOD: &str = "5m";
/// Default of [`Failover::max_replacements`].
pub const FAILOVER_DEFAULT_MAX_REPLACEMENTS: i32 = 3;

/// A reference to an object in the same namespace by name; the whole reference is replaced when
/// it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = atomic_map)]
pub struct LocalObjectReference {
    /// Name of the object.
    #[serde(default)]
    #[schemars(extend("default" = ""))]
    pub name: String,
}

/// A reference to the Cluster an object belongs to, in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct ClusterReference {
    /// Name of the Cluster. It cannot be changed once set.
    #[schemars(regex(pattern = CLUSTER_NAME_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster name is immutable"))]
    pub name: String,
}

/// Labels and annotations of a template; the only metadata a template may carry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectMeta {
    /// Name of the object. Only meaningful where the template says so; usually left empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Labels added to the objects made from this template (at most 512).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = max_512_properties)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the objects made from this template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// True when neither a name, labels nor annotations are set.
    pub fn is_empty(&self) -> bool {
        self.name.is_empty() && self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// Where an instance runs: node labels and their values, for example
/// `topology.kubernetes.io/zone: us-west-1a`. It becomes the Pod's node selector and cannot be
/// changed once the instance exists.
pub type Topology = BTreeMap<String, String>;

/// A listen port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Port {
    /// The port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Compute resources of the main container. Each is used as both request and limit; use
/// `overlay.pod.spec` for anything more particular.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRequirements {
    /// CPU, for example `4` or `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = quantity)]
    pub cpu: Option<Quantity>,
    /// Memory, for example `16Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = quantity)]
    pub memory: Option<Quantity>,
}

impl ResourceRequirements {
    /// True when neither CPU nor memory is set.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// How a configuration change reaches running instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConfigUpdateStrategy {
    /// Restart the instances, one at a time, to apply the new configuration.
    #[default]
    Restart,
    /// Update the configuration file in place without restarting; the component reloads what it can.
    HotReload,
}

/// How the instance's last change of `config` reached its running process, under
/// `updateStrategy.config: HotReload`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChangeStatus {
    /// `Online`: every changed key was applied through the component's online-config API and
    /// nothing restarted. `Restart`: a key cannot change online (or the component refused it), so
    /// the Pod restarts to read the new file.
    pub method: String,
    /// The keys applied online, dotted (`log.level`).
    // Always written, empty too: status is written as a merge patch, where an omitted list
    // would keep the previous change's keys.
    #[serde(default)]
    pub online_keys: Vec<String>,
    /// The keys that needed the restart, dotted; a key removed from `config` is one of them.
    #[serde(default)]
    pub restart_keys: Vec<String>,
    /// Hash of the `config` this change led to (the Pod's `pingcap.com/config-hash`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_hash: String,
}

/// How changes of the template reach running instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateStrategy {
    /// How a configuration change is applied: `Restart` (the default) or `HotReload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Restart"))]
    pub config: Option<ConfigUpdateStrategy>,
}

impl UpdateStrategy {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.config.is_none()
    }
}

/// What a volume mount is for. The component defines the known types (`data` for PD and TiKV,
/// `slowlog` for TiDB); other values, and an empty type, are mounts without built-in meaning and
/// need an explicit `mountPath`.
pub type VolumeMountType = String;

/// One place a volume is mounted in the main container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// What the mount is for, for example `data`. Empty means a mount without built-in meaning.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: VolumeMountType,
    /// Where to mount it. Empty means the default path of the type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_path: String,
    /// The path inside the volume to mount instead of its root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
}

/// A persistent volume of every instance: one PVC per instance, mounted at one or more places.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.volumeAttributesClassName) || has(self.volumeAttributesClassName)").message("VolumeAttributesClassName cannot be changed from non-nil to nil"))]
#[x_kube(validation = Rule::new("quantity(string(self.storage)).compareTo(quantity(string(oldSelf.storage))) >= 0").message("storage cannot be made smaller: a volume cannot shrink (grow it, or keep its size)"))]
#[x_kube(validation = Rule::new("quantity(string(self.storage)).compareTo(quantity('0')) > 0").message("Volume storage must be greater than 0 for all volumes"))]
pub struct Volume {
    /// Name of the volume, unique in the template. PD and TiKV need one named `data`.
    pub name: String,
    /// Where the volume is mounted.
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub mounts: Vec<VolumeMount>,
    /// Requested size, for example `100Gi`. It can grow (existing PVCs are expanded where their
    /// StorageClass allows it) but not shrink.
    #[schemars(transform = crate::schema::storage_quantity)]
    pub storage: Quantity,
    /// StorageClass of the PVCs. Changing it affects only PVCs created afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// VolumeAttributesClass of the PVCs; changing it modifies existing volumes where the cluster
    /// supports it. Once set it can be changed but not removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_attributes_class_name: Option<String>,
}

/// Patches applied to the Kubernetes objects the operator builds for an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overlay {
    /// Patch of the Pod: its metadata and any Pod spec fields, merged over what the operator builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverlay>,
    /// Patches of the PVCs, by volume name. Each name must be one of the template's volumes.
    #[serde(
        rename = "volumeClaims",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub persistent_volume_claims: Vec<NamedPersistentVolumeClaimOverlay>,
}

/// Patch of an instance's Pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct PodOverlay {
    /// Labels and annotations added to the Pod. Labels under `pingcap.com/` are the operator's.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    #[x_kube(validation = Rule::new("!has(self.labels) || self.labels.all(key, !key.startsWith('pingcap.com/'))").message("cannot overlay pod labels starting with 'pingcap.com/'"))]
    pub metadata: ObjectMeta,
    /// Pod spec fields merged over the Pod the operator builds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "overlay_pod_spec"
    )]
    pub spec: Option<PodSpec>,
}

/// Writes an overlay's Pod spec as the user wrote it. `PodSpec` always writes `containers`, so an
/// overlay that names no container (only sysctls, say) would come back with `containers: []`
/// added in every object the operator writes from it.
fn overlay_pod_spec<S: serde::Serializer>(
    spec: &Option<PodSpec>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(spec).map_err(serde::ser::Error::custom)?;
    if let Some(map) = value.as_object_mut()
        && map
            .get("containers")
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        map.remove("containers");
    }
    value.serialize(serializer)
}

/// Patch of the PVC of one volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedPersistentVolumeClaimOverlay {
    /// Name of the volume in the template.
    pub name: String,
    /// The patch.
    pub volume_claim: PersistentVolumeClaimOverlay,
}

/// Patch of a PVC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PersistentVolumeClaimOverlay {
    /// Labels and annotations added to the PVC.
    #[serde(default, skip_serializing_if = "ObjectMeta::is_empty")]
    pub metadata: ObjectMeta,
    /// PVC spec fields merged over the PVC the operator builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PersistentVolumeClaimSpec>,
}

/// The kind of a schedule policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulePolicyType {
    /// Spread the group's instances over the listed topologies, in proportion to their weights.
    #[default]
    EvenlySpread,
}

/// How the instances of a group are placed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicy {
    /// The policy kind: `EvenlySpread`.
    #[serde(rename = "type")]
    pub type_: SchedulePolicyType,
    /// Topologies to spread over, for `EvenlySpread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evenly_spread: Option<SchedulePolicyEvenlySpread>,
}

/// The topologies of an `EvenlySpread` policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchedulePolicyEvenlySpread {
    /// Every instance of the group lands in one of these; counts follow the weights.
    pub topologies: Vec<ScheduleTopology>,
}

/// One topology of a spread, with its weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleTopology {
    /// Node labels that make up this topology, for example one zone.
    #[schemars(transform = min_1_property)]
    pub topology: Topology,
    /// Share of the instances placed here relative to the other topologies. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub weight: Option<i32>,
}

/// Optional features of a cluster that the user turns on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Feature {
    /// Allows changing the feature gates after the cluster is created (cannot be turned off).
    FeatureModification,
    /// Volumes are modified through their VolumeAttributesClass.
    VolumeAttributesClass,
    /// PD Pods get no TCP readiness probe on the client port.
    DisablePDDefaultReadinessProbe,
    /// PD's readiness uses its `/ready` API (PD v8.5.2 or later).
    UsePDReadyAPI,
    /// TiDB always gets the session-token signing certificate and key (needed by TiProxy).
    SessionTokenSigning,
    /// Every instance of the cluster uses one headless Service as its subdomain.
    ClusterSubdomain,
    /// A log-tailing sidecar exits as soon as the main container has exited.
    TerminableLogTailer,
    /// TSO Pods are ready by their `/health` API (PD microservices).
    UseTSOReadyAPI,
    /// Scheduling Pods are ready by their `/health` API (PD microservices).
    UseSchedulingReadyAPI,
    /// TiKV's readiness uses its `/ready` API.
    UseTiKVReadyAPI,
    /// PD's readiness uses its `/readyz` API.
    UsePDReadyAPIV2,
    /// TiFlash's readiness uses its `/readyz` API.
    UseTiFlashReadyAPI,
    /// More than one PDGroup per cluster, behind one PD Service.
    MultiPDGroup,
    /// TiCDC Pods load labelled Secrets while they run.
    TiCDCDynamicSecretSyncer,
    /// TiKV's `kvengine.remote-worker-addr` follows the default worker instead of the coprocessor
    /// worker (next-generation TiKV).
    IndependentKVEngineWorker,
}

/// Maturity of a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FeatureStage {
    /// Early; may change or go.
    #[serde(rename = "ALPHA")]
    Alpha,
    /// Tested; on its way to stable.
    #[serde(rename = "BETA")]
    Beta,
    /// Stable.
    #[serde(rename = "STABLE")]
    Stable,
    /// On its way out.
    #[serde(rename = "DEPRECATED")]
    Deprecated,
}

/// A feature turned on for a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureGate {
    /// The feature.
    pub name: Feature,
}

/// A feature in force for a cluster, with its stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureGateStatus {
    /// The feature.
    pub name: Feature,
    /// Its maturity.
    pub stage: FeatureStage,
}

/// A Secret named by a TLS setting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretName {
    /// Name of the Secret, in the object's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The Secrets of a TLS setting: the CA and the certificate with its key may live in different
/// Secrets, so that a CA can be rotated on its own. Each defaults to the Secret named for the
/// setting (see each field that carries them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecret {
    /// The Secret holding `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretName>,
    /// The Secret holding `tls.crt` and `tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key_pair: Option<SecretName>,
}

/// TLS of a server, on or off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_enabled)]
pub struct Tls {
    /// Whether TLS is on.
    // Always written: the API requires it.
    #[serde(default)]
    pub enabled: bool,
    /// Whether clients need a certificate: `NoClientCert` (no CA needed) or
    /// `VerifyClientCertIfNeed` (the default; the CA is needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
    /// The Secrets of the server certificate and the CA.
    #[serde(flatten)]
    pub secret: TlsSecret,
}

/// TLS between the components of a cluster, as one component sees it; it is on or off for the
/// whole cluster (`Cluster.spec.tlsCluster`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InternalTls {
    /// The Secrets of this group's certificate and the CA. Default: both in
    /// `<group>-<component>-cluster-secret`.
    #[serde(flatten)]
    pub secret: TlsSecret,
}

/// The certificate the operator uses to reach the components.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalClientTls {
    /// Skip verifying the servers' certificates; the CA may then be left out.
    #[serde(
        rename = "insecureSkipTLSVerify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    /// The Secrets of the client certificate and the CA. Default: both in
    /// `<cluster>-cluster-client-secret`.
    #[serde(flatten)]
    pub secret: TlsSecret,
}

/// TLS settings of a component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentTlsConfig {
    /// The Secrets used between the components when the cluster has TLS on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<InternalTls>,
}

/// Security settings of PD and TiKV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Security {
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ComponentTlsConfig>,
}

/// Template fields every component shares: what runs, with which resources, configuration and
/// volumes. A group's template and each of its instances carry them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonTemplateSpec {
    /// Version of the component, a semantic version with or without a `v` prefix, for example
    /// `v8.5.0`. It is the image tag unless `image` names one.
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub version: String,
    /// Image of the component, for example `pingcap/pd`. Without a tag, `version` is the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory of the main container.
    #[serde(default, skip_serializing_if = "ResourceRequirements::is_empty")]
    pub resources: ResourceRequirements,
    /// How changes reach running instances.
    #[serde(default, skip_serializing_if = "UpdateStrategy::is_empty")]
    pub update_strategy: UpdateStrategy,
    /// The component's configuration file, in TOML. The operator sets the keys it must own
    /// (names, addresses, data directory) over it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    /// Persistent volumes of each instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub volumes: Vec<Volume>,
    /// Patches of the Pod and PVCs the operator builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<Overlay>,
}

/// Status fields of every group and instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The latest observations of the object's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the controller last acted on.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    /// The generation of the Cluster the controller last computed status against.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_cluster_generation: i64,
    /// The revision the current instances were made from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    /// The revision instances are being updated to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    /// Count of hash collisions of revisions, to keep revision names unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

/// Status fields of every group, on top of [`CommonStatus`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// The version every instance runs. It equals `spec.template.spec.version` only once all are
    /// updated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Label selector of the group's instances, for the scale subresource.
    #[serde(default)]
    pub selector: String,
    /// Instances that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Instances that are Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Instances made from `currentRevision`.
    #[serde(default)]
    pub current_replicas: i32,
    /// Instances made from `updateRevision`.
    #[serde(default)]
    pub updated_replicas: i32,
}

/// Status of a PD, TiKV or TiDB group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentGroupStatus {
    /// Conditions, generations and revisions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Versions and replica counts.
    #[serde(flatten)]
    pub group: GroupStatus,
}

fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}

/// CEL rule of a template: every overlay claim names a volume of the template.
pub(crate) fn overlay_claims_in_volumes() -> Rule {
    Rule::new(
        "!has(self.overlay) || !has(self.overlay.volumeClaims) || (has(self.volumes) && self.overlay.volumeClaims.all(vc, vc.name in self.volumes.map(v, v.name)))",
    )
    .message("overlay volumeClaims names must exist in volumes")
}

/// CEL rule of a PD or TiKV template: a `data` volume exists.
pub(crate) fn data_volume_required() -> Rule {
    Rule::new("has(self.volumes) && ('data' in self.volumes.map(v, v.name))")
        .message("data volume must be configured")
}

/// CEL rule of every kind: the name fits what the names derived from it leave room for
/// ([`CLUSTER_NAME_MAX`], [`GROUP_NAME_MAX`], [`INSTANCE_NAME_MAX`]).
pub(crate) fn name_length_rule(max: usize) -> Rule {
    Rule::new(format!("size(self.metadata.name) <= {max}"))
        .message(format!("name must not exceed {max} characters").as_str())
}

/// CEL rule of an instance: a topology can be neither added nor removed after creation.
pub(crate) fn topology_set_at_creation() -> Rule {
    Rule::new("(!has(oldSelf.topology) && !has(self.topology)) || (has(oldSelf.topology) && has(self.topology))")
        .field_path(".topology")
        .message("topology can only be set when creating")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::PodOverlay;

    #[test]
    fn an_overlay_without_containers_is_written_back_without_them() {
        let written = json!({"spec": {
            "terminationGracePeriodSeconds": 120,
            "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "300"}]}
        }});
        let overlay: PodOverlay = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(serde_json::to_value(&overlay).unwrap(), written);
    }

    #[test]
    fn an_overlay_with_containers_keeps_them() {
        let written =
            json!({"spec": {"containers": [{"name": "pd", "env": [{"name": "A", "value": "1"}]}]}});
        let overlay: PodOverlay = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(serde_json::to_value(&overlay).unwrap(), written);
    }
}
