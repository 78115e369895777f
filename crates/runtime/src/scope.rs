//! What every controller binary's wiring shares: the API of a kind in the watched scope, and the
//! error policy of a reconcile.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};
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
