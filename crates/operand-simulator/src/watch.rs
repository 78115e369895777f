//! Watches the operand Pods and their ConfigMaps (`pingcap.com/managed-by=tidb-operator`)
//! through the Kubernetes API and feeds what it sees into the simulation. The translation of a
//! Pod or ConfigMap is a pure function.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use operator_api::keys::{
    LABEL_CLUSTER, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY,
};

use operator_runtime::build::CONFIG_VOLUME;

use crate::clock::Now;
use crate::http::{SharedSim, lock};
use crate::pre_stop::PreStop;
use crate::sim::{Component, PodObservation, advertised_in};

/// The label selector of the operand Pods.
pub fn label_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// What the simulator needs of a Pod; `None` unless it carries the cluster, component (pd, tikv,
/// tidb) and instance labels.
pub fn observe(pod: &Pod) -> Option<PodObservation> {
    let meta = &pod.metadata;
    let labels = meta.labels.as_ref()?;
    let component = Component::from_label(labels.get(LABEL_COMPONENT)?)?;
    let cluster = labels.get(LABEL_CLUSTER)?.clone();
    let instance = labels.get(LABEL_INSTANCE)?.clone();
    let deleting = meta.deletion_timestamp.is_some();
    let phase_running = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running");
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let mut ports = BTreeMap::new();
    for port in containers.iter().flat_map(|c| c.ports.iter().flatten()) {
        if let (Some(name), Ok(number)) = (&port.name, u16::try_from(port.container_port)) {
            ports.entry(name.clone()).or_insert(number);
        }
    }
    let component_name = match component {
        Component::Pd => "pd",
        Component::Tikv => "tikv",
        Component::Tidb => "tidb",
        Component::Tiflash => "tiflash",
        Component::Ticdc => "ticdc",
    };
    let image = containers
        .iter()
        .find(|c| c.name == component_name)
        .or(containers.first())
        .and_then(|c| c.image.clone());
    // The data volume is the store's (or member's) identity: the volume named `data`, as the
    // instance builders name it, else the first PVC.
    let claims: Vec<(&str, &str)> = spec
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let claim = v.persistent_volume_claim.as_ref()?;
            Some((v.name.as_str(), claim.claim_name.as_str()))
        })
        .collect();
    let data_claim = claims
        .iter()
        .find(|(name, _)| *name == "data")
        .or(claims.first())
        .map(|(_, claim)| (*claim).to_owned());
    // The config file comes from the operator's config volume (other ConfigMap volumes, such
    // as TiDB's bootstrap SQL, are the user's).
    let config_map = spec
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter(|v| v.name == CONFIG_VOLUME)
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()));
    Some(PodObservation {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        cluster,
        component,
        instance,
        running: phase_running && !deleting,
        deleting,
        hostname: spec.and_then(|s| s.hostname.clone()),
        subdomain: spec.and_then(|s| s.subdomain.clone()),
        ports,
        image,
        node: spec.and_then(|s| s.node_name.clone()),
        data_claim,
        data_volume: None,
        config_map,
        advertised: BTreeMap::new(),
        standby: false,
        join: None,
        domain: None,
    })
}

/// The namespace, name and advertised addresses of an operand ConfigMap: those its config files
/// set (every data value is read as a config file; the operator writes one).
pub fn observe_config_map(cm: &ConfigMap) -> Option<(String, String, BTreeMap<String, String>)> {
    let meta = &cm.metadata;
    let advertised = cm
        .data
        .iter()
        .flatten()
        .flat_map(|(_, text)| advertised_in(text))
        .collect();
    Some((meta.namespace.clone()?, meta.name.clone()?, advertised))
}

/// Watches the operand ConfigMaps (in `namespace`, or all namespaces) until the stream ends,
/// which it does not: errors are logged and the watch retried with backoff.
pub async fn run_config_maps(client: Client, namespace: Option<String>, sim: SharedSim) {
    let api: Api<ConfigMap> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let config = watcher::Config::default().labels(&label_selector());
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitApply(cm) | watcher::Event::Apply(cm)) => {
                if let Some((namespace, name, advertised)) = observe_config_map(&cm) {
                    lock(&sim).observe_config(&namespace, &name, advertised, Now::real());
                }
            }
            // Kept when deleted: a running process keeps the config it started with.
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "config map watch failed; retrying"),
        }
    }
}

/// Watches Pods (in `namespace`, or all namespaces) until the stream ends, which it does not:
/// errors are logged and the watch retried with backoff.
/// `domain` is the cluster domain of the API server `client` talks to, given to every Pod seen
/// (`None`: the simulator's own `--cluster-domain`). With `pre_stop`, a deleted Pod's process runs
/// on while its preStop hook does.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    domain: Option<String>,
    sim: SharedSim,
    pre_stop: Option<PreStop>,
) {
    let api: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let config = watcher::Config::default().labels(&label_selector());
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let now = Now::real();
        match event {
            Ok(watcher::Event::Init) => lock(&sim).begin_resync(),
            Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod)) => {
                if let Some(mut obs) = observe(&pod) {
                    obs.domain.clone_from(&domain);
                    if let Some(pre_stop) = &pre_stop
                        && pre_stop.on_pod(&pod, &obs).await
                    {
                        // Deleted, but its hook runs: the process has not been told to stop.
                        obs.deleting = false;
                        obs.running = pod
                            .status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .is_some_and(|p| p == "Running");
                    }
                    tracing::debug!(pod = %obs.name, running = obs.running, "pod observed");
                    lock(&sim).observe_pod(obs, now);
                }
            }
            Ok(watcher::Event::InitDone) => {
                lock(&sim).end_resync(now);
                tracing::info!("pod list synced");
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
                    lock(&sim).pod_gone(ns, name, now);
                }
            }
            Err(err) => tracing::warn!(error = %err, "pod watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("valid pod")
    }

    #[test]
    fn translates_an_operand_pod() {
        let p = pod(serde_json::json!({
            "metadata": {
                "name": "basic-tikv-abc", "namespace": "db", "uid": "u1",
                "labels": {
                    "pingcap.com/managed-by": "tidb-operator",
                    "pingcap.com/cluster": "basic",
                    "pingcap.com/component": "tikv",
                    "pingcap.com/group": "tikv",
                    "pingcap.com/instance": "basic-tikv-abc"
                }
            },
            "spec": {
                "hostname": "basic-tikv-abc", "subdomain": "basic-tikv-peer", "nodeName": "n1",
                "volumes": [
                    {"name": "config", "configMap": {"name": "c"}},
                    {"name": "raft", "persistentVolumeClaim": {"claimName": "raft-basic-tikv-abc"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-basic-tikv-abc"}}
                ],
                "containers": [{
                    "name": "tikv", "image": "pingcap/tikv:v8.5.1",
                    "ports": [{"name": "client", "containerPort": 20160}, {"name": "status", "containerPort": 20180}]
                }]
            },
            "status": {"phase": "Running"}
        }));
        let obs = observe(&p).expect("observed");
        assert_eq!(obs.component, Component::Tikv);
        assert_eq!(obs.cluster, "basic");
        assert!(obs.running);
        assert_eq!(obs.host(), "basic-tikv-abc.basic-tikv-peer.db");
        assert_eq!(obs.port("client", 1), 20160);
        assert_eq!(obs.version(), "v8.5.1");
        assert_eq!(obs.node.as_deref(), Some("n1"));
        assert_eq!(obs.data_claim.as_deref(), Some("data-basic-tikv-abc"));
        assert_eq!(obs.config_map.as_deref(), Some("c"));
    }

    #[test]
    fn the_config_comes_from_the_config_volume_only() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "t", "namespace": "db", "uid": "u3", "labels": {
                "pingcap.com/cluster": "basic", "pingcap.com/component": "tidb",
                "pingcap.com/instance": "t"
            }},
            "spec": {"volumes": [
                {"name": "bootstrap-sql", "configMap": {"name": "users-sql"}},
                {"name": "config", "configMap": {"name": "t"}}
            ], "containers": [{"name": "tidb"}]}
        }));
        assert_eq!(
            observe(&p).expect("observed").config_map.as_deref(),
            Some("t")
        );
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "t", "namespace": "db"},
            "data": {"config.toml": "advertise-address = \"t.db-tidb-peer.db.svc.east.example\"\n"}
        }))
        .expect("valid config map");
        let (ns, name, advertised) = observe_config_map(&cm).expect("observed");
        assert_eq!((ns.as_str(), name.as_str()), ("db", "t"));
        assert_eq!(
            advertised["advertise-address"],
            "t.db-tidb-peer.db.svc.east.example"
        );
    }

    #[test]
    fn a_deleting_pod_is_not_running_and_unlabelled_pods_are_ignored() {
        let p = pod(serde_json::json!({
            "metadata": {
                "name": "p", "namespace": "db", "uid": "u1",
                "deletionTimestamp": "2025-01-01T00:00:00Z",
                "labels": {
                    "pingcap.com/cluster": "basic",
                    "pingcap.com/component": "pd",
                    "pingcap.com/instance": "basic-pd-0"
                }
            },
            "spec": {"containers": [{"name": "pd"}]},
            "status": {"phase": "Running"}
        }));
        let obs = observe(&p).expect("observed");
        assert!(!obs.running);
        assert!(obs.deleting);

        let other = pod(serde_json::json!({
            "metadata": {"name": "x", "namespace": "db", "uid": "u2",
                         "labels": {"pingcap.com/component": "dm", "pingcap.com/cluster": "c", "pingcap.com/instance": "i"}},
            "spec": {"containers": []}
        }));
        assert!(observe(&other).is_none());
    }
}
