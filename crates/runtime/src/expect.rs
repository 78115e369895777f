//! Expectations of a controller's own writes: a reconcile reads from a cache that may not yet
//! show what the previous reconcile wrote (an instance it created, one it deleted), and acting on
//! that older picture creates a second instance or removes the wrong one. A group controller
//! records each write here and, until its cache shows them all, waits instead of deciding.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// How long a write may take to show in the cache before it is no longer waited for.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Wanted {
    /// The object at this resourceVersion or later.
    Version(String),
    /// The object being deleted, or gone.
    Deleting,
}

#[derive(Clone, Debug)]
struct Expected {
    name: String,
    wanted: Wanted,
    since: Instant,
}

/// The writes each owner (a group, by key) made that its cache has not shown yet.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Vec<Expected>>>,
}

/// The key of an owner: `Kind/namespace/name`.
pub fn key_of<K: Resource<DynamicType = ()>>(owner: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        owner.meta().namespace.as_deref().unwrap_or_default(),
        owner.meta().name.as_deref().unwrap_or_default()
    )
}

impl Expectations {
    fn record(&self, owner: &str, name: &str, wanted: Wanted) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = pending.entry(owner.to_string()).or_default();
        list.retain(|e| e.name != name);
        list.push(Expected {
            name: name.to_string(),
            wanted,
            since: Instant::now(),
        });
    }

    /// `owner` wrote `object` (created, updated or patched it): its cache should show this
    /// version or a later one.
    pub fn wrote<K: Resource>(&self, owner: &str, object: &K) {
        if let (Some(name), Some(version)) = (
            object.meta().name.as_deref(),
            object.meta().resource_version.as_deref(),
        ) {
            self.record(owner, name, Wanted::Version(version.to_string()));
        }
    }

    /// `owner` deleted object `name`: its cache should show it deleting or gone.
    pub fn deleted(&self, owner: &str, name: &str) {
        self.record(owner, name, Wanted::Deleting);
    }

    /// The first of `owner`'s writes that the cache of `namespace` does not show yet, if any;
    /// the writes it shows (or waited for too long) are forgotten.
    pub fn lagging<K>(&self, owner: &str, store: &Store<K>, namespace: &str) -> Option<String>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = pending.get_mut(owner)?;
        let now = Instant::now();
        list.retain(|e| {
            let cached = store.get(&ObjectRef::new(&e.name).within(namespace));
            let shown = match (&e.wanted, cached) {
                (Wanted::Deleting, None) => true,
                (Wanted::Deleting, Some(o)) => o.meta().deletion_timestamp.is_some(),
                (Wanted::Version(_), None) => false,
                (Wanted::Version(v), Some(o)) => o
                    .meta()
                    .resource_version
                    .as_deref()
                    .is_some_and(|c| at_least(c, v)),
            };
            if !shown && now.duration_since(e.since) > EXPECTATION_TIMEOUT {
                tracing::warn!(owner, object = e.name, "a write never showed in the cache");
                return false;
            }
            !shown
        });
        let first = list.first().map(|e| e.name.clone());
        if list.is_empty() {
            pending.remove(owner);
        }
        first
    }
}

/// Whether resourceVersion `cached` is `wanted` or later. The API server's versions are etcd
/// revisions, which only grow; one that does not parse is compared for equality.
fn at_least(cached: &str, wanted: &str) -> bool {
    match (cached.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => cached == wanted,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn object(name: &str, version: &str, deleting: bool) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                deletion_timestamp: deleting.then_some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn a_group_waits_until_its_cache_shows_its_writes() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let expectations = Expectations::default();
        expectations.wrote("G/ns/g", &object("a", "10", false));
        expectations.deleted("G/ns/g", "b");
        writer.apply_watcher_event(&Event::Apply(object("b", "5", false)));
        // Neither the creation nor the deletion is in the cache yet.
        assert_eq!(
            expectations.lagging("G/ns/g", &store, "ns").as_deref(),
            Some("a")
        );
        writer.apply_watcher_event(&Event::Apply(object("a", "9", false)));
        assert_eq!(
            expectations.lagging("G/ns/g", &store, "ns").as_deref(),
            Some("a")
        );
        writer.apply_watcher_event(&Event::Apply(object("a", "11", false)));
        assert_eq!(
            expectations.lagging("G/ns/g", &store, "ns").as_deref(),
            Some("b")
        );
        writer.apply_watcher_event(&Event::Apply(object("b", "12", true)));
        assert_eq!(expectations.lagging("G/ns/g", &store, "ns"), None);
        // Other owners are unaffected.
        assert_eq!(expectations.lagging("G/ns/other", &store, "ns"), None);
    }
}
