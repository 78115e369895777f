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

/// Error policy of every controller: log the failed reconcile and retry after a short delay.
pub fn log_and_retry<K, E, C>(object: Arc<K>, error: &E, _ctx: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    E: Display,
{
    tracing::warn!(
        kind = %K::kind(&()),
        name = object.meta().name.as_deref().unwrap_or_default(),
        namespace = object.meta().namespace.as_deref().unwrap_or_default(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(5))
}
