//! What every controller binary's wiring shares: the API of a kind in the watched scope, the
//! objects of one Cluster to reconcile when something of that Cluster changes, and the error
//! policy of a reconcile.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use operator_api::core::OfCluster;
use serde::de::DeserializeOwned;

/// The API of a namespaced kind in `--namespace`, or in every namespace.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The cached objects of Cluster `cluster` in `namespace`: what to reconcile when that Cluster,
/// or another object of it, changes.
pub fn of_cluster<K>(store: &Store<K>, namespace: Option<&str>, cluster: &str) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + OfCluster + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == namespace && o.cluster_name() == cluster)
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// First retry after a failed reconcile.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between retries of an object that keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Per-object exponential backoff of failed reconciles: about 1 s, doubling with each failure
/// that follows the previous retry, up to 5 min. An object whose last failure is older than
/// twice its current delay starts again at 1 s (it has reconciled fine since, or changed).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl Backoff {
    /// How long to wait before retrying `key` after a failure at `now`.
    pub fn next(&self, key: &str, now: std::time::Instant) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget objects that stopped failing long ago, so the map stays small.
        failures.retain(|_, (count, at)| now.duration_since(*at) <= delay(*count) * 2);
        let count = failures
            .get(key)
            .map_or(1, |(count, _)| count.saturating_add(1));
        failures.insert(key.to_string(), (count, now));
        delay(count)
    }
}

/// The delay after `count` failures in a row.
fn delay(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// The backoff shared by every controller of this process.
fn backoff() -> &'static Backoff {
    static BACKOFF: std::sync::OnceLock<Backoff> = std::sync::OnceLock::new();
    BACKOFF.get_or_init(Backoff::default)
}

/// Error policy of every controller: log the failed reconcile and retry it with per-object
/// exponential backoff ([`Backoff`]).
pub fn log_and_retry<K, E, C>(object: Arc<K>, error: &E, _ctx: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    E: Display,
{
    let kind = K::kind(&());
    let name = object.meta().name.as_deref().unwrap_or_default();
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    let retry = backoff().next(
        &format!("{kind}/{namespace}/{name}"),
        std::time::Instant::now(),
    );
    tracing::warn!(
        kind = %kind,
        name,
        namespace,
        %error,
        retry_in = %crate::duration::format(retry),
        "reconcile failed; retrying"
    );
    Action::requeue(retry)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn retries_double_per_object_up_to_five_minutes_and_start_over_once_it_recovers() {
        let backoff = Backoff::default();
        let start = Instant::now();
        let mut at = start;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let d = backoff.next("TiKV/ns/a", at);
            delays.push(d.as_secs());
            at += d;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Another object has its own count.
        assert_eq!(backoff.next("TiKV/ns/b", at), Duration::from_secs(1));
        // Quiet for longer than twice the delay: back to the start.
        assert_eq!(
            backoff.next("TiKV/ns/a", at + Duration::from_secs(601)),
            Duration::from_secs(1)
        );
    }
}
