//! Reflector caches of the Kubernetes objects a controller reads, fed by watches: a reconcile
//! reads its Cluster, groups, instances, Pods, ConfigMaps and Services from them and makes no GET
//! or LIST of an object its controller watches. `/readyz` waits until every cache has listed.

use std::fmt::Debug;
use std::hash::Hash;

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use operator_api::core::{Cluster, PDGroup};
use operator_api::keys;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::scope::scoped;

/// The caches every component controller reads: the Clusters and PDGroups of its scope, and the
/// Pods, PVCs, ConfigMaps and Services the operator made for its component.
#[derive(Clone)]
pub struct Caches {
    /// Clusters.
    pub clusters: Store<Cluster>,
    /// PDGroups (where PD is, and the upgrade gate).
    pub pd_groups: Store<PDGroup>,
    /// The component's Pods.
    pub pods: Store<Pod>,
    /// The component's PVCs.
    pub pvcs: Store<PersistentVolumeClaim>,
    /// The component's ConfigMaps.
    pub config_maps: Store<ConfigMap>,
    /// The component's Services.
    pub services: Store<Service>,
    /// The component's PodDisruptionBudgets (one per group).
    pub disruption_budgets: Store<PodDisruptionBudget>,
}

impl Caches {
    /// Starts the reflectors in `namespace` (or every namespace), for `component`'s objects.
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
        component: &str,
        shutdown: &CancellationToken,
    ) -> Caches {
        let all = watcher::Config::default;
        let operands = || watcher::Config::default().labels(&operand_selector(component));
        Caches {
            clusters: reflect(scoped(client, namespace), all(), shutdown),
            pd_groups: reflect(scoped(client, namespace), all(), shutdown),
            pods: reflect(scoped(client, namespace), operands(), shutdown),
            pvcs: reflect(scoped(client, namespace), operands(), shutdown),
            config_maps: reflect(scoped(client, namespace), operands(), shutdown),
            services: reflect(scoped(client, namespace), operands(), shutdown),
            disruption_budgets: reflect(scoped(client, namespace), operands(), shutdown),
        }
    }

    /// Waits until every cache has listed once.
    pub async fn synced(&self) {
        synced(&self.clusters).await;
        synced(&self.pd_groups).await;
        synced(&self.pods).await;
        synced(&self.pvcs).await;
        synced(&self.config_maps).await;
        synced(&self.services).await;
        synced(&self.disruption_budgets).await;
    }

    /// The PDGroups of Cluster `cluster`, by name.
    pub fn pd_groups_of(&self, namespace: &str, cluster: &str) -> Vec<PDGroup> {
        list(&self.pd_groups, namespace, |g| {
            g.spec.cluster.name == cluster
        })
    }
}

/// The label selector of the objects the operator makes for `component`.
pub fn operand_selector(component: &str) -> String {
    format!(
        "{}={},{}={component}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        keys::LABEL_COMPONENT
    )
}

/// Starts a reflector of `api` (objects selected by `config`) that runs until `shutdown`, and
/// returns its store. Cached objects leave out their managed fields, which no reconcile reads
/// from these caches and which take a good part of an object's memory.
pub fn reflect<K>(api: Api<K>, config: watcher::Config, shutdown: &CancellationToken) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    reflect_trimmed(api, config, shutdown, |_| {})
}

/// [`reflect`], with `trim` also taking out of each cached object what no reconcile reads of it.
pub fn reflect_trimmed<K>(
    api: Api<K>,
    config: watcher::Config,
    shutdown: &CancellationToken,
    trim: impl Fn(&mut K) + Send + Sync + 'static,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let objects = watcher(api, config).default_backoff().modify(move |o| {
        o.meta_mut().managed_fields = None;
        trim(o);
    });
    let stream = reflector::reflector(writer, objects)
        .applied_objects()
        .for_each(|_| futures::future::ready(()));
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stream => {}
            () = shutdown.cancelled() => {}
        }
    });
    store
}

/// Waits until `store` has listed its objects once.
pub async fn synced<K>(store: &Store<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    // An error means the writer is gone (shutdown): nothing more to wait for.
    let _ = store.wait_until_ready().await;
}

/// The cached object `namespace/name`, if there is one.
pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|object| (*object).clone())
}

/// The cached objects of `namespace` that `select` keeps, by name.
pub fn list<K>(store: &Store<K>, namespace: &str, select: impl Fn(&K) -> bool) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let mut objects: Vec<K> = store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace) && select(o))
        .map(|o| (*o).clone())
        .collect();
    objects.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    objects
}

/// Whether `object` carries every label of `labels`.
pub fn has_labels<K: Resource>(object: &K, labels: &BTreeMap<String, String>) -> bool {
    let have = object.meta().labels.as_ref();
    labels
        .iter()
        .all(|(k, v)| have.and_then(|l| l.get(k)) == Some(v))
}

/// Answers of a component's API (PD's view of a cluster, say) kept for a short while, so the
/// reconciles of every instance and group of a cluster that run together share one poll. A
/// controller forgets an answer as soon as it changed what the answer describes.
pub struct Recent<V> {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, V)>>,
}

impl<V: Clone> Recent<V> {
    /// Answers younger than `ttl` are reused.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer for `key` if it is recent, else what `fetch` answers (kept when it is `Ok`).
    pub async fn get_or_fetch<E, F>(&self, key: &str, fetch: F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        let now = std::time::Instant::now();
        if let Some((at, value)) = self.entries().get(key)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(value.clone());
        }
        let value = fetch.await?;
        let mut entries = self.entries();
        entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        entries.insert(key.to_string(), (now, value.clone()));
        Ok(value)
    }

    /// Forgets the answer for `key`: the next read asks again.
    pub fn forget(&self, key: &str) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;

    use super::*;

    fn config_map(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[tokio::test]
    async fn recent_answers_are_shared_until_forgotten() {
        let recent = Recent::new(std::time::Duration::from_secs(60));
        let calls = std::sync::atomic::AtomicU32::new(0);
        let fetch =
            || async { Ok::<_, String>(calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) };
        assert_eq!(recent.get_or_fetch("pd-a", fetch()).await, Ok(0));
        assert_eq!(recent.get_or_fetch("pd-a", fetch()).await, Ok(0));
        assert_eq!(recent.get_or_fetch("pd-b", fetch()).await, Ok(1));
        recent.forget("pd-a");
        assert_eq!(recent.get_or_fetch("pd-a", fetch()).await, Ok(2));
        // A failure is not kept.
        let failing = Recent::<u32>::new(std::time::Duration::from_secs(60));
        assert!(
            failing
                .get_or_fetch("x", async { Err("down") })
                .await
                .is_err()
        );
        assert_eq!(
            failing.get_or_fetch("x", async { Ok::<_, &str>(7) }).await,
            Ok(7)
        );
    }

    #[test]
    fn lookups_read_one_namespace_in_name_order() {
        let (store, mut writer) = reflector::store();
        for object in [
            config_map("a", "z", &[("c", "1")]),
            config_map("a", "y", &[("c", "2")]),
            config_map("b", "x", &[("c", "1")]),
        ] {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        assert!(get(&store, "a", "z").is_some());
        assert!(get(&store, "b", "z").is_none());
        let names: Vec<String> = list(&store, "a", |_| true)
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert_eq!(names, ["y", "z"]);
        let wanted = BTreeMap::from([("c".to_string(), "1".to_string())]);
        let one = list(&store, "a", |c| has_labels(c, &wanted));
        assert_eq!(one.len(), 1);
    }
}
