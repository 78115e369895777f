//! Support for the unit tests of the components' pure builders: a group from a few lines of
//! JSON, the facts of a built Pod in one comparable value, and the checks every component's Pod
//! must pass (a config change restarts it unless the strategy is `HotReload`; a version change
//! restarts it).

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use operator_api::core::{ConfigUpdateStrategy, Instance};
use operator_api::keys;
use serde::de::DeserializeOwned;

/// A group `name` in namespace `namespace` with uid `uid-1` and `spec`; an error when `spec` is
/// not a valid spec of `G`.
pub fn group<G>(name: &str, namespace: &str, spec: serde_json::Value) -> serde_json::Result<G>
where
    G: Resource<DynamicType = ()> + DeserializeOwned,
{
    serde_json::from_value(serde_json::json!({
        "apiVersion": G::api_version(&()),
        "kind": G::kind(&()),
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1"},
        "spec": spec,
    }))
}

/// A group `name` of Cluster `basic` in namespace `db` with 3 replicas of `template`.
pub fn group_of_template<G>(name: &str, template: serde_json::Value) -> serde_json::Result<G>
where
    G: Resource<DynamicType = ()> + DeserializeOwned,
{
    let spec = serde_json::json!({
        "cluster": {"name": "basic"},
        "replicas": 3,
        "template": {"spec": template}
    });
    group(name, "db", spec)
}

/// What a test reads off a built Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodFacts {
    /// The main container's image.
    pub image: String,
    /// The main container's command.
    pub command: Vec<String>,
    /// The Pod's hostname and subdomain.
    pub host: (String, String),
    /// The main container's ports, by name.
    pub ports: Vec<(String, i32)>,
    /// The main container's mount paths.
    pub mounts: Vec<String>,
    /// The PVCs the Pod mounts.
    pub claims: Vec<String>,
    /// The main container's memory limit.
    pub memory: Option<String>,
    /// Whether the Pod carries the spec and config hash labels.
    pub hashed: bool,
    /// The uid of the Pod's owner.
    pub owner: Option<String>,
}

/// The facts of `pod`.
pub fn pod_facts(pod: &Pod) -> PodFacts {
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec.containers.first().cloned().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    PodFacts {
        image: container.image.unwrap_or_default(),
        command: container.command.unwrap_or_default(),
        host: (
            spec.hostname.unwrap_or_default(),
            spec.subdomain.unwrap_or_default(),
        ),
        ports: container
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.container_port))
            .collect(),
        mounts: container
            .volume_mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.mount_path)
            .collect(),
        claims: spec
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
            .collect(),
        memory: container
            .resources
            .and_then(|r| r.limits)
            .and_then(|l| l.get("memory").map(|q| q.0.clone())),
        hashed: labels.contains_key(keys::LABEL_POD_SPEC_HASH)
            && labels.contains_key(keys::LABEL_CONFIG_HASH),
        owner: pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map(|o| o.uid.clone()),
    }
}

/// Checks what every component's Pod builder must do: the same instance gives the same Pod; a
/// new version or config gives a new Pod; a config change under `HotReload` keeps the Pod.
///
/// # Panics
/// When a check fails.
pub fn assert_restarts_follow_the_strategy<K>(base: &K, pod: impl Fn(&K) -> Pod)
where
    K: Instance + Clone,
{
    let current = |a: &K, b: &K| pod_current(&pod(a), &pod(b));
    assert!(
        current(base, base),
        "the same instance must give the same Pod"
    );

    let mut newer = base.clone();
    newer.common_mut().version = "v99.0.0".into();
    assert!(!current(base, &newer), "a version change must restart");

    let mut changed = base.clone();
    changed.common_mut().config = "[log]\nlevel = \"warn\"\n".into();
    assert!(!current(base, &changed), "a config change must restart");

    let mut hot = base.clone();
    hot.common_mut().update_strategy.config = Some(ConfigUpdateStrategy::HotReload);
    let mut hot_changed = hot.clone();
    hot_changed.common_mut().config = "[log]\nlevel = \"warn\"\n".into();
    assert!(
        current(&hot, &hot_changed),
        "a config change under HotReload must not restart"
    );
}

/// Whether two Pods carry the same spec and config hashes.
fn pod_current(a: &Pod, b: &Pod) -> bool {
    let hashes = |pod: &Pod| {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        (
            labels.get(keys::LABEL_POD_SPEC_HASH).cloned(),
            labels.get(keys::LABEL_CONFIG_HASH).cloned(),
        )
    };
    hashes(a) == hashes(b)
}
