//! Pure builders every component shares: the labels the operator puts on what it creates, owner
//! references, PVCs of a template's volumes, container resources, the config-file merge, the
//! restricted security and the overlay applied over a built Pod, and an instance's ConfigMap,
//! volumes and Pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume as PodVolume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use operator_api::core::{self as api, Feature, Overlay, Volume};
use operator_api::keys;

/// Errors of the pure builders: what the user wrote cannot be turned into objects.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is not valid TOML.
    #[error("config is not valid TOML: {0}")]
    InvalidConfig(String),
    /// The config sets keys the operator manages.
    #[error("{0}")]
    ManagedKeys(String),
    /// The overlay cannot be merged into the Pod.
    #[error("overlay cannot be applied: {0}")]
    InvalidOverlay(String),
    /// An object lacks something the builder needs.
    #[error("{0}")]
    Missing(String),
}

/// Identity of the object a builder works for.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Cluster name.
    pub cluster: &'a str,
    /// Component label value: pd, tikv, tidb.
    pub component: &'a str,
    /// Group name.
    pub group: &'a str,
}

impl<'a> Owner<'a> {
    /// The owner identity of a group's objects.
    pub fn of_group<G>(group: &'a G) -> Self
    where
        G: api::Group + Resource,
    {
        Owner {
            namespace: group.meta().namespace.as_deref().unwrap_or_default(),
            cluster: group.cluster_name(),
            component: G::COMPONENT,
            group: group.meta().name.as_deref().unwrap_or_default(),
        }
    }
}

/// The metadata of instance `name` of `group` at `revision`: the instance labels, the template's
/// labels and annotations, the revision label, the group as controller owner, the finalizer.
pub fn instance_meta<G>(group: &G, name: &str, revision: &str) -> Result<ObjectMeta, BuildError>
where
    G: api::Group + Resource<DynamicType = ()>,
{
    let template = group.template_metadata();
    let mut labels = instance_labels(Owner::of_group(group), name);
    labels.extend(template.labels.clone());
    labels.insert(
        keys::LABEL_INSTANCE_REVISION_HASH.to_string(),
        revision.to_string(),
    );
    let annotations = template.annotations.clone();
    Ok(ObjectMeta {
        name: Some(name.to_string()),
        namespace: group.meta().namespace.clone(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![controller_ref(group)?]),
        finalizers: Some(vec![keys::FINALIZER.to_string()]),
        ..ObjectMeta::default()
    })
}

/// A Service port named `name` that targets the container port of the same name.
pub fn named_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::String(name.to_string())),
        ..ServicePort::default()
    }
}

/// A Service `name` of `group` over all its instances: `spec` with the group's selector, the
/// group's labels and the group as controller owner.
pub fn group_service<G>(group: &G, name: String, spec: ServiceSpec) -> Result<Service, BuildError>
where
    G: api::Group + Resource<DynamicType = ()>,
{
    let selector = group_labels(Owner::of_group(group));
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: group.meta().namespace.clone(),
            labels: Some(selector.clone()),
            owner_references: Some(vec![controller_ref(group)?]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ..spec
        }),
        ..Service::default()
    })
}

/// The PodDisruptionBudget of `group`, named after the group and its component: all but one of
/// its `replicas` must stay available, so a drain, a cluster autoscaler or a node upgrade evicts
/// one member and waits for it to be ready again before the next. `minAvailable` is an integer
/// because the disruption controller can count the Pods only that way: their controller (the
/// instance) has no scale subresource, so a `maxUnavailable` budget would refuse every eviction.
/// A group of one may be drained (there is no second member to wait for). A Pod that is not
/// ready may always be evicted (it serves nothing), so one broken member does not block a drain
/// of the others' nodes forever; a healthy one waits while another is down. The operator's own
/// restarts delete Pods rather than evict them, so the budget never holds a roll.
pub fn disruption_budget<G>(group: &G) -> Result<PodDisruptionBudget, BuildError>
where
    G: api::Group + Resource<DynamicType = ()>,
{
    let owner = Owner::of_group(group);
    let labels = group_labels(owner);
    Ok(PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", owner.group, owner.component)),
            namespace: group.meta().namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_ref(group)?]),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int((group.replicas() - 1).max(0))),
            selector: Some(LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// The headless peer Service `name` of `group`: every instance's DNS name lives under it, from
/// before the instance is ready (members and stores find each other before they serve).
pub fn peer_service<G>(
    group: &G,
    name: String,
    ports: Vec<ServicePort>,
) -> Result<Service, BuildError>
where
    G: api::Group + Resource<DynamicType = ()>,
{
    let spec = ServiceSpec {
        cluster_ip: Some("None".into()),
        publish_not_ready_addresses: Some(true),
        ports: Some(ports),
        ..ServiceSpec::default()
    };
    group_service(group, name, spec)
}

/// Labels of every object of a group, and its selector.
pub fn group_labels(owner: Owner<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            keys::LABEL_MANAGED_BY.to_string(),
            keys::MANAGED_BY.to_string(),
        ),
        (keys::LABEL_CLUSTER.to_string(), owner.cluster.to_string()),
        (
            keys::LABEL_COMPONENT.to_string(),
            owner.component.to_string(),
        ),
        (keys::LABEL_GROUP.to_string(), owner.group.to_string()),
    ])
}

/// The label selector of a group's instances, as a string for `status.selector`.
pub fn group_selector(owner: Owner<'_>) -> String {
    group_labels(owner)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every object of an instance: the group's, the instance's, and the
/// `app.kubernetes.io` ones.
pub fn instance_labels(owner: Owner<'_>, instance: &str) -> BTreeMap<String, String> {
    let mut labels = group_labels(owner);
    labels.insert(keys::LABEL_INSTANCE.to_string(), instance.to_string());
    labels.insert(keys::LABEL_APP_NAME.to_string(), keys::APP_NAME.to_string());
    labels.insert(
        keys::LABEL_APP_INSTANCE.to_string(),
        owner.cluster.to_string(),
    );
    labels.insert(
        keys::LABEL_APP_COMPONENT.to_string(),
        owner.component.to_string(),
    );
    labels.insert(
        keys::LABEL_APP_MANAGED_BY.to_string(),
        keys::MANAGED_BY.to_string(),
    );
    labels
}

/// A controller owner reference to `object`, so its dependents are collected with it.
pub fn controller_ref<K: Resource<DynamicType = ()>>(
    object: &K,
) -> Result<OwnerReference, BuildError> {
    object.controller_owner_ref(&()).ok_or_else(|| {
        BuildError::Missing(format!(
            "{} {} has no uid yet",
            K::kind(&()),
            object.name_any()
        ))
    })
}

/// Requests equal to limits for the CPU and memory the template asks for.
pub fn resources(requirements: &api::ResourceRequirements) -> Option<ResourceRequirements> {
    let mut values = BTreeMap::new();
    if let Some(cpu) = &requirements.cpu {
        values.insert("cpu".to_string(), cpu.clone());
    }
    if let Some(memory) = &requirements.memory {
        values.insert("memory".to_string(), memory.clone());
    }
    (!values.is_empty()).then(|| ResourceRequirements {
        requests: Some(values.clone()),
        limits: Some(values),
        ..ResourceRequirements::default()
    })
}

/// Name of the PVC of a volume of an instance.
pub fn pvc_name(volume: &str, instance: &str) -> String {
    format!("{volume}-{instance}")
}

/// The PVCs of an instance, one per template volume, with the overlay's claim patches applied.
/// They carry no owner reference: their data outlives the Pod and is removed only by the
/// instance's finalizer once it is no longer needed.
pub fn pvcs(
    owner: Owner<'_>,
    instance: &str,
    volumes: &[Volume],
    overlay: Option<&Overlay>,
) -> Result<Vec<PersistentVolumeClaim>, BuildError> {
    volumes
        .iter()
        .map(|volume| {
            let mut labels = instance_labels(owner, instance);
            labels.insert(keys::LABEL_VOLUME_NAME.to_string(), volume.name.clone());
            let mut pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(pvc_name(&volume.name, instance)),
                    namespace: Some(owner.namespace.to_string()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            volume.storage.clone(),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    storage_class_name: volume.storage_class_name.clone(),
                    volume_attributes_class_name: volume.volume_attributes_class_name.clone(),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            };
            let patch = overlay
                .into_iter()
                .flat_map(|o| o.persistent_volume_claims.iter())
                .find(|c| c.name == volume.name);
            if let Some(patch) = patch {
                let mut value = serde_json::to_value(&pvc)
                    .map_err(|e| BuildError::InvalidOverlay(e.to_string()))?;
                let mut overlay_value = serde_json::json!({});
                if !patch.volume_claim.metadata.is_empty() {
                    overlay_value["metadata"] = serde_json::json!({
                        "labels": patch.volume_claim.metadata.labels,
                        "annotations": patch.volume_claim.metadata.annotations,
                    });
                }
                if let Some(spec) = &patch.volume_claim.spec {
                    overlay_value["spec"] = serde_json::to_value(spec)
                        .map_err(|e| BuildError::InvalidOverlay(e.to_string()))?;
                }
                crate::overlay::merge(&mut value, &overlay_value);
                pvc = serde_json::from_value(value)
                    .map_err(|e| BuildError::InvalidOverlay(e.to_string()))?;
            }
            Ok(pvc)
        })
        .collect()
}

/// Gives a built Pod the restricted security defaults ([`crate::security::restrict`]), then
/// applies the template's Pod overlay (metadata and spec) over it: what the overlay names wins.
pub fn apply_pod_overlay(mut pod: Pod, overlay: Option<&Overlay>) -> Result<Pod, BuildError> {
    if let Some(spec) = pod.spec.as_mut() {
        crate::security::restrict(spec);
    }
    let Some(patch) = overlay.and_then(|o| o.pod.as_ref()) else {
        return Ok(pod);
    };
    let mut value =
        serde_json::to_value(&pod).map_err(|e| BuildError::InvalidOverlay(e.to_string()))?;
    let mut overlay_value = serde_json::json!({});
    if !patch.metadata.is_empty() {
        overlay_value["metadata"] = serde_json::json!({"labels": patch.metadata.labels, "annotations": patch.metadata.annotations});
    }
    if let Some(spec) = &patch.spec {
        let mut spec =
            serde_json::to_value(spec).map_err(|e| BuildError::InvalidOverlay(e.to_string()))?;
        // k8s-openapi writes `containers: []` for an overlay that names none: that is not a wish
        // to remove every container.
        if spec
            .get("containers")
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty)
            && let Some(map) = spec.as_object_mut()
        {
            map.remove("containers");
        }
        overlay_value["spec"] = spec;
    }
    crate::overlay::merge(&mut value, &overlay_value);
    serde_json::from_value(value).map_err(|e| BuildError::InvalidOverlay(e.to_string()))
}

/// The user's TOML with the keys the operator owns set over it. `owned` maps dotted paths
/// (`security.cacert-path`) to values.
pub fn merge_config(user: &str, owned: &[(&str, toml::Value)]) -> Result<String, BuildError> {
    let mut table: toml::Table = if user.trim().is_empty() {
        toml::Table::new()
    } else {
        user.parse()
            .map_err(|e: toml::de::Error| BuildError::InvalidConfig(e.message().to_string()))?
    };
    for (path, value) in owned {
        let mut node = &mut table;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_string(), value.clone());
                break;
            }
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            match entry.as_table_mut() {
                Some(next) => node = next,
                None => return Err(BuildError::InvalidConfig(format!("{path} is not a table"))),
            }
        }
    }
    toml::to_string(&table).map_err(|e| BuildError::InvalidConfig(e.to_string()))
}

/// The hash of a Pod's spec and of its restart annotations ([`RESTART_ANNOTATIONS`]). Only a Pod
/// with an annotation hashes it, so Pods without one keep their hash (and are not restarted by an
/// operator upgrade).
fn pod_hash(pod: &Pod) -> String {
    let spec = hashed_spec(pod);
    let annotations = pod.annotations();
    match (
        annotations.get(keys::ANNO_RESTARTED_AT),
        annotations.get(keys::ANNO_TLS_FINGERPRINT),
    ) {
        (None, None) => crate::revision::hash_of(&spec),
        (Some(at), None) => crate::revision::hash_of(&(&spec, at)),
        (at, Some(fingerprint)) => crate::revision::hash_of(&(&spec, at, fingerprint)),
    }
}

/// The TiCDC sidecar keeping labelled Secrets as files (`TiCDCDynamicSecretSyncer`), which runs
/// from the operator's image by default (tidb-operator v2's container name).
pub const SECRET_SYNCER_CONTAINER: &str = "ti-resource-syncer";

/// A Pod's spec as its hash covers it: without the images of the hand-over installer and the
/// secret syncer, which follow the operator's own image. A new operator image then restarts no
/// PD, TiKV or TiCDC Pod; each gets the new image when it restarts for a reason of its own.
fn hashed_spec(pod: &Pod) -> Option<PodSpec> {
    let mut spec = pod.spec.clone();
    let installers = spec
        .as_mut()
        .and_then(|s| s.init_containers.as_mut())
        .into_iter()
        .flatten()
        .filter(|c| c.name == crate::handover::INIT_CONTAINER || c.name == SECRET_SYNCER_CONTAINER);
    for installer in installers {
        installer.image = None;
    }
    spec
}

/// The annotations an instance passes on to its Pod, whose change restarts it.
pub const RESTART_ANNOTATIONS: [&str; 2] = [keys::ANNO_RESTARTED_AT, keys::ANNO_TLS_FINGERPRINT];

/// Labels a built Pod with the hash of its spec (and of its restart annotation, when it has one)
/// and, unless config changes are hot-reloaded, with `config_hash` (of the user's config as
/// written), so [`pod_is_current`] tells when it must be recreated.
pub fn stamp_hashes(pod: &mut Pod, strategy: &api::UpdateStrategy, config_hash: String) {
    let pod_hash = pod_hash(pod);
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(keys::LABEL_POD_SPEC_HASH.to_string(), pod_hash);
    if strategy.config != Some(api::ConfigUpdateStrategy::HotReload) {
        labels.insert(keys::LABEL_CONFIG_HASH.to_string(), config_hash);
    }
}

/// Refuses a user config that sets any of `managed`, dotted keys the operator writes itself
/// (the certificate paths of TLS): the message names each key and says why.
pub fn refuse_managed(user: &str, managed: &[&str]) -> Result<(), BuildError> {
    if user.trim().is_empty() {
        return Ok(());
    }
    let table: toml::Table = user
        .parse()
        .map_err(|e: toml::de::Error| BuildError::InvalidConfig(e.message().to_string()))?;
    let set: Vec<&str> = managed
        .iter()
        .copied()
        .filter(|path| table_sets(&table, path))
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(BuildError::ManagedKeys(format!(
        "config sets {}, which the operator manages (the certificate paths of the TLS Secrets it mounts); remove them from the config",
        set.join(", ")
    )))
}

/// Whether `table` sets the dotted key `path`.
fn table_sets(table: &toml::Table, path: &str) -> bool {
    let mut parts = path.split('.');
    let mut node = parts.next().and_then(|first| table.get(first));
    for part in parts {
        node = node.and_then(|n| n.get(part));
    }
    node.is_some()
}

/// Whether the user's config (TOML) sets the dotted key `path`; a config that does not parse
/// sets nothing (it is refused where it is merged).
pub fn config_sets(user: &str, path: &str) -> bool {
    user.parse::<toml::Table>()
        .is_ok_and(|table| table_sets(&table, path))
}

/// Stamps `pod` with the hash of its spec again, after the runtime added to it what the
/// component's builder does not know of (its TLS Secrets), keeping the rest of
/// [`stamp_hashes`].
pub fn rehash_pod_spec(pod: &mut Pod) {
    let pod_hash = pod_hash(pod);
    pod.labels_mut()
        .insert(keys::LABEL_POD_SPEC_HASH.to_string(), pod_hash);
}

/// Whether a running Pod is what the instance asks for: same Pod spec hash and, with the
/// `Restart` strategy, the same config hash (the labels the instance builders stamp); or, built
/// differently, built from the same inputs ([`LABEL_POD_INPUTS_HASH`](keys::LABEL_POD_INPUTS_HASH)
/// on both). The latter is an operator version that renders Pods its own way: what the user asked
/// for has not changed, so the Pod is not restarted for it; it gets the new rendering when it
/// restarts for a reason of its own.
pub fn pod_is_current(existing: &Pod, desired: &Pod) -> bool {
    let get = |pod: &Pod, key: &str| pod.labels().get(key).cloned();
    let same = |key: &str| get(existing, key) == get(desired, key);
    if same(keys::LABEL_POD_SPEC_HASH) && same(keys::LABEL_CONFIG_HASH) {
        return true;
    }
    matches!(
        (get(existing, keys::LABEL_POD_INPUTS_HASH), get(desired, keys::LABEL_POD_INPUTS_HASH)),
        (Some(was), Some(now)) if was == now
    )
}

/// Labels a built Pod with `hash`, the hash of everything it was built from (see
/// [`pod_is_current`]).
pub fn stamp_inputs_hash(pod: &mut Pod, hash: String) {
    pod.labels_mut()
        .insert(keys::LABEL_POD_INPUTS_HASH.to_string(), hash);
}

static TEST_POD_ENV: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Test tooling (`--test-pod-env`): records `NAME=VALUE`, which [`add_test_env`] adds to every
/// component container, as an operator version that renders Pods differently would.
pub fn set_test_pod_env(name: &str, value: &str) {
    let _ = TEST_POD_ENV.set((name.to_string(), value.to_string()));
}

/// Adds the variable of [`set_test_pod_env`], when one is set, to every container of `pod` (not
/// its init containers) and stamps the spec hash again.
pub fn add_test_env(pod: &mut Pod) {
    let Some((name, value)) = TEST_POD_ENV.get() else {
        return;
    };
    for container in pod.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
        container.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            ..EnvVar::default()
        });
    }
    rehash_pod_spec(pod);
}

/// A storage quantity as given (for messages).
pub fn quantity_text(q: &Quantity) -> &str {
    &q.0
}

/// The image to run: `image` (or `default`) tagged with `version`, unless it has a tag or digest.
pub fn image(image: Option<&str>, default: &str, version: &str) -> String {
    let base = image.unwrap_or(default);
    let last = base.rsplit('/').next().unwrap_or(base);
    if last.contains(':') || base.contains('@') {
        base.to_string()
    } else {
        format!("{base}:{version}")
    }
}

/// The image an instance runs: its template's image (tagged with the version unless it has a
/// tag), else `default` at the version.
pub fn image_of(common: &api::CommonTemplateSpec, default: &str) -> String {
    image(common.image.as_deref(), default, &common.version)
}

/// Where the mount of type `type_` of a template goes: its path, else `default`.
pub fn mount_path_of(common: &api::CommonTemplateSpec, type_: &str, default: &str) -> String {
    common
        .volumes
        .iter()
        .flat_map(|v| v.mounts.iter())
        .find(|m| m.type_ == type_ && !m.mount_path.is_empty())
        .map_or_else(|| default.to_string(), |m| m.mount_path.clone())
}

/// A readiness probe that the named port accepts TCP connections, every 5 s.
pub fn tcp_readiness(port: &str) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.to_string()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

/// The Cluster's one headless Service that every instance lives under with the
/// `ClusterSubdomain` feature gate, `<cluster>-cluster` (tidb-operator v2's name).
pub fn cluster_subdomain(cluster: &str) -> String {
    format!("{cluster}-cluster")
}

/// The subdomain of a new instance: its group's peer Service `peer_service`, or with the
/// `ClusterSubdomain` gate the Cluster's headless Service. An existing instance keeps its own
/// (the field is immutable), so turning the gate on or off renames no member or store.
pub fn new_instance_subdomain(features: &[Feature], cluster: &str, peer_service: String) -> String {
    if features.contains(&Feature::ClusterSubdomain) {
        cluster_subdomain(cluster)
    } else {
        peer_service
    }
}

/// The command of a log-tailer sidecar that follows `file` (created if missing) on its
/// stdout. With `TerminableLogTailer` it stops on SIGTERM, 3 s later so the last lines are out
/// (tidb-operator v2's form); without it, it runs until killed at the end of the grace period.
pub fn log_tailer_command(file: &str, features: &[Feature]) -> Vec<String> {
    let script = if features.contains(&Feature::TerminableLogTailer) {
        format!(r#"trap "sleep 3; exit 0" TERM; touch {file}; tail -n0 -F {file} & wait $!"#)
    } else {
        format!("touch {file}; tail -n0 -F {file};")
    };
    vec!["sh".into(), "-c".into(), script]
}

/// A readiness probe that asks a server's own ready API, `path` on `port` of the Pod itself, with
/// `curl --fail` (so a 500 fails it). Whether the cluster has TLS is told by a certificate mounted
/// in `tls_dir`: with one, the probe calls `https` with the server's own certificate, as mutual
/// TLS requires.
pub fn ready_api_probe(port: i32, path: &str, tls_dir: &str) -> Probe {
    let dir = tls_dir;
    let script = format!(
        "if [ -f {dir}/tls.crt ]; then \
         exec curl --fail -sS --location --cacert {dir}/ca.crt --cert {dir}/tls.crt --key {dir}/tls.key https://127.0.0.1:{port}{path}; \
         else exec curl --fail -sS --location http://127.0.0.1:{port}{path}; fi"
    );
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script]),
        }),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

/// The hash of the instance's config as the user wrote it (the `pingcap.com/config-hash` label).
pub fn config_hash_of<I: api::Instance>(instance: &I) -> String {
    crate::revision::hash_of(&instance.common().config)
}

/// Runs `f` with the identity of an instance's objects (for the label and PVC builders).
fn with_owner<I, R>(instance: &I, f: impl FnOnce(Owner<'_>) -> R) -> R
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    let namespace = instance.namespace().unwrap_or_default();
    let group = instance
        .labels()
        .get(keys::LABEL_GROUP)
        .cloned()
        .unwrap_or_default();
    f(Owner {
        namespace: &namespace,
        cluster: instance.cluster_name(),
        component: I::COMPONENT,
        group: &group,
    })
}

/// The labels of an instance's own objects (ConfigMap, Pod, PVCs): see [`instance_labels`].
pub fn labels_of<I>(instance: &I) -> BTreeMap<String, String>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    with_owner(instance, |owner| {
        instance_labels(owner, &instance.name_any())
    })
}

/// The instance's ConfigMap, holding its config as `file`, owned by the instance.
pub fn config_map_of<I>(instance: &I, file: &str, config: String) -> Result<ConfigMap, BuildError>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(instance.name_any()),
            namespace: instance.namespace(),
            labels: Some(labels_of(instance)),
            owner_references: Some(vec![controller_ref(instance)?]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(file.to_string(), config)])),
        ..ConfigMap::default()
    })
}

/// The instance's PVCs: see [`pvcs`].
pub fn pvcs_of<I>(instance: &I) -> Result<Vec<PersistentVolumeClaim>, BuildError>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    let common = instance.common();
    with_owner(instance, |owner| {
        pvcs(
            owner,
            &instance.name_any(),
            &common.volumes,
            common.overlay.as_ref(),
        )
    })
}

/// Where a template volume's mount goes: its `mountPath`, or the default path of its type from
/// `default_paths`; a mount without either is an error naming the volume.
pub fn volume_mount(
    volume: &Volume,
    mount: &api::VolumeMount,
    default_paths: &[(&str, &str)],
) -> Result<VolumeMount, BuildError> {
    let path = if !mount.mount_path.is_empty() {
        mount.mount_path.clone()
    } else if let Some((_, path)) = default_paths.iter().find(|(t, _)| *t == mount.type_) {
        (*path).to_string()
    } else {
        return Err(BuildError::Missing(format!(
            "volume {} mount of type {} needs a mountPath",
            volume.name, mount.type_
        )));
    };
    Ok(VolumeMount {
        name: volume.name.clone(),
        mount_path: path,
        sub_path: (!mount.sub_path.is_empty()).then(|| mount.sub_path.clone()),
        ..VolumeMount::default()
    })
}

/// An instance's Pod volumes and its container's mounts: the instance's ConfigMap, read only at
/// `config_dir` (volume `config`), then each template volume as the instance's PVC, mounted
/// where its mounts say ([`volume_mount`]).
pub fn volumes_of<I>(
    instance: &I,
    config_dir: &str,
    default_paths: &[(&str, &str)],
) -> Result<(Vec<PodVolume>, Vec<VolumeMount>), BuildError>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    let name = instance.name_any();
    let mut mounts = vec![VolumeMount {
        name: CONFIG_VOLUME.into(),
        mount_path: config_dir.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![PodVolume {
        name: CONFIG_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.clone(),
            ..ConfigMapVolumeSource::default()
        }),
        ..PodVolume::default()
    }];
    for volume in &instance.common().volumes {
        for mount in &volume.mounts {
            mounts.push(volume_mount(volume, mount, default_paths)?);
        }
        volumes.push(PodVolume {
            name: volume.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(&volume.name, &name),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..PodVolume::default()
        });
    }
    Ok((volumes, mounts))
}

/// The container of a component's server: named as the component, running
/// `<binary> --config=<config>`, with its named ports, the template's resources and `mounts`.
pub fn server_container(
    component: &str,
    image: String,
    binary: &str,
    config: &str,
    ports: &[(&str, i32)],
    resources: &api::ResourceRequirements,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: component.into(),
        image: Some(image),
        command: Some(vec![binary.into(), format!("--config={config}")]),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| ContainerPort {
                    name: Some((*name).into()),
                    container_port: *port,
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: self::resources(resources),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The name of the volume of an instance's ConfigMap.
pub const CONFIG_VOLUME: &str = "config";

/// The Pod of a one-container server: `container` with `volumes`, given `grace_seconds` to stop
/// ([`pod_of`], with the instance's config hash).
pub fn server_pod<I>(
    instance: &I,
    container: Container,
    volumes: Vec<PodVolume>,
    grace_seconds: i64,
) -> Result<Pod, BuildError>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(grace_seconds),
        ..PodSpec::default()
    };
    pod_of(instance, spec, config_hash_of(instance))
}

/// The Pod of a PD or TiKV instance around `spec` (its containers, volumes and grace period):
/// named as the instance, with its hostname, subdomain and topology, the instance's labels and
/// the overlay's, owned by the instance; then the overlay, the hashes that tell when it must be
/// recreated ([`stamp_hashes`]) and the config it starts with ([`crate::online_config::stamp`]).
pub fn pod_of<I>(instance: &I, spec: PodSpec, config_hash: String) -> Result<Pod, BuildError>
where
    I: api::Instance + Resource<DynamicType = ()>,
{
    let common = instance.common();
    let mut labels = labels_of(instance);
    labels.extend(
        common
            .overlay
            .as_ref()
            .and_then(|o| o.pod.as_ref())
            .map(|p| p.metadata.labels.clone())
            .unwrap_or_default(),
    );
    let name = instance.name_any();
    let topology = instance.topology();
    let restart: BTreeMap<String, String> = RESTART_ANNOTATIONS
        .iter()
        .filter_map(|key| {
            let value = instance.annotations().get(*key)?;
            Some(((*key).to_string(), value.clone()))
        })
        .collect();
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: instance.namespace(),
            labels: Some(labels),
            annotations: (!restart.is_empty()).then_some(restart),
            owner_references: Some(vec![controller_ref(instance)?]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            hostname: Some(name),
            subdomain: Some(instance.subdomain().to_string()),
            node_selector: (!topology.is_empty()).then(|| topology.clone()),
            ..spec
        }),
        ..Pod::default()
    };
    let mut pod = apply_pod_overlay(pod, common.overlay.as_ref())?;
    stamp_hashes(&mut pod, &common.update_strategy, config_hash);
    crate::online_config::stamp(&mut pod, &common.config);
    Ok(pod)
}

#[cfg(test)]
mod refuse_tests {
    use super::*;

    #[test]
    fn a_managed_key_in_the_user_config_is_refused_by_name() {
        let managed = ["security.cacert-path", "security.key-path"];
        assert!(refuse_managed("", &managed).is_ok());
        assert!(refuse_managed("[security]\nredact-info-log = true\n", &managed).is_ok());
        let error = refuse_managed("[security]\ncacert-path = \"/x\"\n", &managed).unwrap_err();
        assert!(
            error.to_string().contains("security.cacert-path"),
            "{error}"
        );
        assert!(!error.to_string().contains("key-path"), "{error}");
    }
}

#[cfg(test)]
mod tests {
    use operator_api::core::{
        NamedPersistentVolumeClaimOverlay, PersistentVolumeClaimOverlay, VolumeMount,
    };

    use super::*;

    const OWNER: Owner<'static> = Owner {
        namespace: "db",
        cluster: "basic",
        component: "pd",
        group: "pd",
    };

    #[test]
    fn a_log_tailer_stops_on_sigterm_only_with_its_gate() {
        let plain = log_tailer_command("/var/log/slow.log", &[]);
        assert_eq!(
            plain,
            [
                "sh",
                "-c",
                "touch /var/log/slow.log; tail -n0 -F /var/log/slow.log;"
            ]
        );
        let terminable = log_tailer_command("/l", &[Feature::TerminableLogTailer]);
        assert_eq!(
            terminable[2],
            r#"trap "sleep 3; exit 0" TERM; touch /l; tail -n0 -F /l & wait $!"#
        );
    }

    #[test]
    fn ready_api_probes_fail_on_an_error_answer_and_use_tls_when_mounted() {
        let probe = ready_api_probe(20180, "/ready", "/var/lib/tikv-tls");
        let script = probe
            .exec
            .and_then(|e| e.command)
            .unwrap_or_default()
            .join(" ");
        assert!(script.contains("--fail"), "{script}");
        assert!(
            script.contains("[ -f /var/lib/tikv-tls/tls.crt ]"),
            "{script}"
        );
        assert!(
            script.contains("https://127.0.0.1:20180/ready;"),
            "{script}"
        );
        assert!(script.contains("http://127.0.0.1:20180/ready;"), "{script}");
    }

    #[test]
    fn operator_keys_win_over_the_users_and_the_rest_is_kept() {
        let user = "name = \"mine\"\n[log]\nlevel = \"debug\"\n[replication]\nmax-replicas = 5\n";
        let merged = merge_config(
            user,
            &[
                ("name", "pd-abc".into()),
                ("log.file.filename", "/var/log/pd.log".into()),
            ],
        )
        .unwrap();
        let table: toml::Table = merged.parse().unwrap();
        assert_eq!(table["name"].as_str(), Some("pd-abc"));
        assert_eq!(table["log"]["level"].as_str(), Some("debug"));
        assert_eq!(
            table["log"]["file"]["filename"].as_str(),
            Some("/var/log/pd.log")
        );
        assert_eq!(table["replication"]["max-replicas"].as_integer(), Some(5));
    }

    #[test]
    fn a_restart_annotation_changes_the_pod_hash_and_its_absence_keeps_the_old_one() {
        let spec = PodSpec {
            hostname: Some("pd-abc".into()),
            ..PodSpec::default()
        };
        let stamped = |restarted_at: Option<&str>| {
            let mut pod = Pod {
                metadata: ObjectMeta {
                    annotations: restarted_at.map(|at| {
                        BTreeMap::from([(keys::ANNO_RESTARTED_AT.to_string(), at.to_string())])
                    }),
                    ..ObjectMeta::default()
                },
                spec: Some(spec.clone()),
                ..Pod::default()
            };
            stamp_hashes(&mut pod, &api::UpdateStrategy::default(), "c".into());
            pod
        };
        let plain = stamped(None);
        // What Pods were stamped with before the annotation existed: no restart on upgrade.
        assert_eq!(
            plain.labels()[keys::LABEL_POD_SPEC_HASH],
            crate::revision::hash_of(&Some(spec.clone()))
        );
        let first = stamped(Some("2026-01-01T00:00:00Z"));
        let second = stamped(Some("2026-01-02T00:00:00Z"));
        assert!(!pod_is_current(&plain, &first));
        assert!(!pod_is_current(&first, &second));
        assert!(pod_is_current(
            &first,
            &stamped(Some("2026-01-01T00:00:00Z"))
        ));
    }

    #[test]
    fn a_pod_built_differently_from_the_same_inputs_stays_and_one_from_other_inputs_restarts() {
        let built = |variable: &str, inputs: Option<&str>| {
            let mut pod = Pod {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "pd".into(),
                        env: Some(vec![EnvVar {
                            name: variable.into(),
                            ..EnvVar::default()
                        }]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
                ..Pod::default()
            };
            stamp_hashes(&mut pod, &api::UpdateStrategy::default(), "c".into());
            if let Some(inputs) = inputs {
                stamp_inputs_hash(&mut pod, inputs.into());
            }
            pod
        };
        let running = built("A", Some("i1"));
        assert!(
            pod_is_current(&running, &built("B", Some("i1"))),
            "only the operator's rendering changed"
        );
        assert!(
            !pod_is_current(&running, &built("B", Some("i2"))),
            "the inputs changed and so did the Pod"
        );
        assert!(
            pod_is_current(&running, &built("A", Some("i2"))),
            "other inputs that build the same Pod"
        );
        // A Pod from before the inputs hash: only how it was built tells.
        let unlabelled = built("A", None);
        assert!(!pod_is_current(&unlabelled, &built("B", Some("i1"))));
        assert!(pod_is_current(&unlabelled, &built("A", Some("i1"))));
    }

    #[test]
    fn a_new_operator_image_in_the_hand_over_installer_keeps_the_pod_current() {
        let built = |installer_image: &str, server_image: &str| {
            let mut spec = PodSpec {
                containers: vec![Container {
                    name: "pd".into(),
                    image: Some(server_image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            };
            crate::handover::add(&mut spec, "pd", installer_image, vec!["pd".into()]);
            let mut pod = Pod {
                spec: Some(spec),
                ..Pod::default()
            };
            stamp_hashes(&mut pod, &api::UpdateStrategy::default(), "c".into());
            pod
        };
        let running = built("example.com/tidb-operator:v0.1.0", "pingcap/pd:v8.5.2");
        // The operator upgraded: its installer image is new, the Pod stays.
        assert!(pod_is_current(
            &running,
            &built("example.com/tidb-operator:v0.2.0", "pingcap/pd:v8.5.2")
        ));
        // The server's own image still restarts it.
        assert!(!pod_is_current(
            &running,
            &built("example.com/tidb-operator:v0.1.0", "pingcap/pd:v8.5.3")
        ));
    }

    #[test]
    fn invalid_toml_is_an_error_with_a_reason() {
        let err = merge_config("[log\nlevel = 1", &[]).unwrap_err();
        assert!(
            err.to_string().starts_with("config is not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn pvcs_follow_the_volumes_and_their_overlays() {
        let volumes = vec![Volume {
            name: "data".into(),
            mounts: vec![VolumeMount {
                type_: "data".into(),
                ..VolumeMount::default()
            }],
            storage: Quantity("20Gi".into()),
            storage_class_name: Some("fast".into()),
            volume_attributes_class_name: None,
        }];
        let overlay = Overlay {
            pod: None,
            persistent_volume_claims: vec![NamedPersistentVolumeClaimOverlay {
                name: "data".into(),
                volume_claim: PersistentVolumeClaimOverlay {
                    metadata: api::ObjectMeta {
                        annotations: [("backup".to_string(), "daily".to_string())].into(),
                        ..api::ObjectMeta::default()
                    },
                    spec: None,
                },
            }],
        };
        let pvcs = pvcs(OWNER, "pd-abc", &volumes, Some(&overlay)).unwrap();
        assert_eq!(pvcs.len(), 1);
        let pvc = &pvcs[0];
        assert_eq!(pvc.metadata.name.as_deref(), Some("data-pd-abc"));
        assert!(
            pvc.metadata.owner_references.is_none(),
            "PVCs must not be garbage-collected with the Pod"
        );
        assert_eq!(pvc.labels()[keys::LABEL_VOLUME_NAME], "data");
        assert_eq!(pvc.annotations()["backup"], "daily");
        let spec = pvc.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            Quantity("20Gi".into())
        );
    }

    #[test]
    fn selectors_name_cluster_component_and_group() {
        assert_eq!(
            group_selector(OWNER),
            "pingcap.com/cluster=basic,pingcap.com/component=pd,pingcap.com/group=pd,pingcap.com/managed-by=tidb-operator"
        );
    }

    #[test]
    fn mounts_go_to_their_path_or_their_types_default_and_say_when_they_have_neither() {
        let volume: Volume = serde_json::from_value(serde_json::json!({
            "name": "data", "storage": "1Gi",
            "mounts": [{"type": "data"}, {"type": "log", "mountPath": "/log", "subPath": "l"},
                       {"type": "other"}]
        }))
        .unwrap();
        let defaults = [("data", "/var/lib/x")];
        let mount = |i: usize| volume_mount(&volume, &volume.mounts[i], &defaults);
        assert_eq!(mount(0).unwrap().mount_path, "/var/lib/x");
        let log = mount(1).unwrap();
        assert_eq!(
            (log.mount_path.as_str(), log.sub_path.as_deref()),
            ("/log", Some("l"))
        );
        assert_eq!(
            mount(2).unwrap_err().to_string(),
            "volume data mount of type other needs a mountPath"
        );
    }
}
