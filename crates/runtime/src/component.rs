//! The component runtime's wiring: what the reconciles of one component controller share (the
//! client, Events, metrics, the caches of the watched objects, the endpoint overrides, one PD
//! client per PD URL), and the one way a component binary runs its group and instance
//! controllers. Each controller's context wraps [`Shared`] and adds its component's settings.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use operator_api::core::{Cluster, OfCluster};
use pd_client::{PdClient, StatusClient, TlsConfig};
use serde::de::DeserializeOwned;

use crate::apply::{ApplyError, adopt_all, apply_owned, state_manager};
use crate::cache::{Caches, operand_selector};
use crate::endpoints::{EndpointFor, Endpoints};
use crate::events::Events;
use crate::expect::Expectations;
use crate::fence::WriteFence;
use crate::metrics::Metrics;
use crate::scope::{log_and_retry, of_cluster, scoped};
use crate::tls::ClientTls;

/// Timeout of each call to PD.
pub const PD_TIMEOUT: Duration = Duration::from_secs(5);
/// When a group whose cache does not show its last write looks again (the watch event that
/// brings it usually comes first).
pub const CACHE_LAG_RETRY: Duration = Duration::from_millis(200);

/// A PD client could not be made for a URL.
#[derive(Debug, thiserror::Error)]
#[error("PD at {url}: {source}")]
pub struct PdClientError {
    /// The URL.
    pub url: String,
    /// Why.
    pub source: pd_client::Error,
}

/// The shared state of a component controller's reconciles.
pub struct Shared {
    /// Kubernetes client.
    pub client: Client,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// What reconciles read of the watched objects.
    pub caches: Caches,
    /// The writes a reconcile waits to see in the caches before it decides again.
    pub expectations: Expectations,
    /// Every cache has listed its objects once; before that no reconcile decides anything (a
    /// group that saw no instances yet would create them again).
    synced: Arc<std::sync::atomic::AtomicBool>,
    endpoints: Endpoints,
    pd_clients: Mutex<HashMap<String, (Option<TlsConfig>, PdClient)>>,
    /// The operator's client certificate of each TLS cluster.
    pub client_tls: ClientTls,
    status_clients: Mutex<HashMap<(String, String), (TlsConfig, StatusClient)>>,
    /// The replica's leadership fence; the PD and status clients ask it before every write.
    fence: Option<WriteFence>,
}

impl Shared {
    /// The shared state of the controller `manager` (the name its Events carry).
    pub fn new(
        client: Client,
        metrics: Metrics,
        endpoints: Endpoints,
        caches: Caches,
        manager: &str,
    ) -> Self {
        Self {
            events: Events::new(client.clone(), manager),
            client,
            metrics,
            caches,
            expectations: Expectations::default(),
            synced: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            endpoints,
            pd_clients: Mutex::new(HashMap::new()),
            client_tls: ClientTls::default(),
            status_clients: Mutex::new(HashMap::new()),
            fence: None,
        }
    }

    /// The same state, its PD and status clients changing nothing once `fence` closes (the
    /// replica's leadership may have ended).
    pub fn with_fence(mut self, fence: WriteFence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// The client certificate of a cluster with TLS (as last read, see [`ClientTls`]); `None`
    /// for a cluster without TLS.
    fn tls_of(&self, namespace: &str, cluster: &str) -> Result<Option<TlsConfig>, PdClientError> {
        match self.client_tls.get(namespace, cluster) {
            None => Ok(None),
            Some(Ok(tls)) => Ok(Some(tls)),
            Some(Err(error)) => Err(PdClientError {
                url: format!("Cluster {namespace}/{cluster}"),
                source: pd_client::Error::Tls(error.to_string()),
            }),
        }
    }

    /// The client of the status ports of a TLS cluster's TiKV and TiDB instances, with the
    /// operator's client certificate as last read (a new client when it changed); `None` for a
    /// cluster without TLS, whose status ports the controller's plain client reaches.
    pub fn status_client(
        &self,
        namespace: &str,
        cluster: &str,
        timeout: Duration,
    ) -> Result<Option<StatusClient>, PdClientError> {
        let Some(tls) = self.tls_of(namespace, cluster)? else {
            return Ok(None);
        };
        let key = (namespace.to_string(), cluster.to_string());
        let mut clients = self
            .status_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((used, client)) = clients.get(&key)
            && *used == tls
        {
            return Ok(Some(client.clone()));
        }
        let client = StatusClient::new(Some(&tls), timeout).map_err(|source| PdClientError {
            url: format!("Cluster {namespace}/{cluster}"),
            source,
        })?;
        let client = match &self.fence {
            Some(fence) => client.gated(fence.gate()),
            None => client,
        };
        clients.insert(key, (tls, client.clone()));
        Ok(Some(client))
    }

    /// Where `component`'s endpoint of `instance` is: `in_cluster`, or its endpoint override.
    pub fn endpoint(&self, of: EndpointFor<'_>, in_cluster: String) -> String {
        self.endpoints.resolve(of, in_cluster)
    }

    /// The status-port URL of `instance`, a `K` instance: `in_cluster`, or the endpoint override
    /// of its component (whose template may name `{instance}`).
    pub fn status_url<K>(&self, instance: &K, in_cluster: String) -> String
    where
        K: operator_api::core::Instance + Resource,
    {
        let namespace = instance.meta().namespace.clone().unwrap_or_default();
        let name = instance.meta().name.clone().unwrap_or_default();
        self.endpoint(
            EndpointFor {
                component: K::COMPONENT,
                namespace: &namespace,
                cluster: instance.cluster_name(),
                instance: &name,
            },
            in_cluster,
        )
    }

    /// A client of a PD member of another Kubernetes cluster, which a joining cluster names by
    /// its client URL `url`. The endpoint override of target `pd-join` (its `{instance}` is the
    /// URL's `host:port`) stands in for cross-cluster DNS where the controller runs outside.
    pub fn pd_join(
        &self,
        namespace: &str,
        cluster: &str,
        url: &str,
    ) -> Result<PdClient, PdClientError> {
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/');
        let resolved = self.endpoints.resolve(
            EndpointFor {
                component: "pd-join",
                namespace,
                cluster,
                instance: authority,
            },
            url.to_string(),
        );
        self.pd_client(namespace, cluster, resolved)
    }

    /// A client of the PD of a cluster, reached at `in_cluster_url` (or the endpoint override),
    /// made once per URL, and again when the operator's client certificate of a TLS cluster
    /// changed (see [`ClientTls`]).
    pub fn pd(
        &self,
        namespace: &str,
        cluster: &str,
        in_cluster_url: String,
    ) -> Result<PdClient, PdClientError> {
        let url = self.endpoints.resolve(
            EndpointFor {
                component: "pd",
                namespace,
                cluster,
                instance: "",
            },
            in_cluster_url,
        );
        self.pd_client(namespace, cluster, url)
    }

    /// The client of the PD at `url` for a cluster, made once per URL, and again when the
    /// operator's client certificate of a TLS cluster changed.
    fn pd_client(
        &self,
        namespace: &str,
        cluster: &str,
        url: String,
    ) -> Result<PdClient, PdClientError> {
        let tls = self.tls_of(namespace, cluster)?;
        let mut clients = self
            .pd_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((used, client)) = clients.get(&url)
            && *used == tls
        {
            return Ok(client.clone());
        }
        let client = PdClient::new(&url, tls.as_ref(), PD_TIMEOUT)
            .map_err(|source| PdClientError {
                url: url.clone(),
                source,
            })?
            .observed(self.metrics.pd_observer());
        let client = match &self.fence {
            Some(fence) => client.gated(fence.gate()),
            None => client,
        };
        clients.insert(url, (tls, client.clone()));
        Ok(client)
    }
}

/// Lets a controller's context (a struct with a `shared: Shared` field) be used as the
/// [`Shared`] state it wraps.
#[macro_export]
macro_rules! derefs_to_shared {
    ($ctx:ty) => {
        impl std::ops::Deref for $ctx {
            type Target = $crate::component::Shared;

            fn deref(&self) -> &$crate::component::Shared {
                &self.shared
            }
        }
    };
}

/// Runs a component's group and instance controllers until shutdown, the way every component
/// binary wires them:
/// - the group controller reconciles `G`, owns the instances `I` and looks again when their
///   Cluster changes (plus what `group_watches` adds, such as the groups an upgrade waits for);
/// - the instance controller reconciles `I`, owns their Pods and ConfigMaps and looks again when
///   their Cluster changes (plus what `instance_watches` adds, such as the Nodes their Pods run
///   on, given the component's caches);
/// - the caches of the component's objects ([`Caches`]) start, and `/readyz` turns ready once
///   they, both controllers' own caches and `more_synced` have listed.
///
/// `make_ctx` builds the reconciles' context from the shared state and the two controllers'
/// caches.
#[allow(clippy::too_many_arguments)]
pub async fn run_controllers<G, I, C, E, GR, GFut, IR, IFut>(
    ctx: crate::Context,
    component: &str,
    manager: &str,
    group_watches: impl FnOnce(Controller<G>, Store<G>) -> Controller<G>,
    instance_watches: impl FnOnce(Controller<I>, &Caches) -> Controller<I>,
    make_ctx: impl FnOnce(Shared, Store<G>, Store<I>) -> Arc<C>,
    group_reconcile: GR,
    instance_reconcile: IR,
    more_synced: impl Future<Output = ()>,
) -> Result<(), crate::RuntimeError>
where
    G: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + OfCluster
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
    I: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + OfCluster
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
    C: Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    GR: FnMut(Arc<G>, Arc<C>) -> GFut,
    GFut: Future<Output = Result<Action, E>> + Send + 'static,
    IR: FnMut(Arc<I>, Arc<C>) -> IFut,
    IFut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let namespace = ctx.flags.namespace.as_deref();
    let config = ctx.flags.controller_config();
    let operands = watcher::Config::default().labels(&operand_selector(component));
    let all = watcher::Config::default;

    let groups = Controller::new(scoped::<G>(&ctx.client, namespace), all());
    let instances = Controller::new(scoped::<I>(&ctx.client, namespace), all());
    let caches = Caches::start(&ctx.client, namespace, component, &ctx.shutdown);
    let state = Shared::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        Endpoints::new(&ctx.flags.endpoint_overrides),
        caches.clone(),
        manager,
    )
    .with_fence(ctx.fence.clone());
    let synced_flag = state.synced.clone();
    let shared = make_ctx(state, groups.store(), instances.store());
    let (group_store, instance_store) = (groups.store(), instances.store());

    let groups = group_watches(groups, group_store.clone())
        .owns(scoped::<I>(&ctx.client, namespace), all())
        .watches(
            scoped::<Cluster>(&ctx.client, namespace),
            all(),
            objects_of(group_store.clone()),
        )
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            after_sync(synced_flag.clone(), group_reconcile),
            log_and_retry::<G, E, C>,
            shared.clone(),
        )
        .for_each(|_| async {});

    let instances = instance_watches(instances, &caches)
        .owns(scoped::<Pod>(&ctx.client, namespace), operands.clone())
        .owns(scoped::<ConfigMap>(&ctx.client, namespace), operands)
        .watches(
            scoped::<Cluster>(&ctx.client, namespace),
            all(),
            objects_of(instance_store.clone()),
        )
        .with_config(config)
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            after_sync(synced_flag.clone(), instance_reconcile),
            log_and_retry::<I, E, C>,
            shared,
        )
        .for_each(|_| async {});

    let readiness = ctx.readiness.clone();
    let synced = async move {
        caches.synced().await;
        crate::cache::synced(&group_store).await;
        crate::cache::synced(&instance_store).await;
        more_synced.await;
        synced_flag.store(true, std::sync::atomic::Ordering::Release);
        readiness.set_synced(true);
    };
    tokio::join!(groups, instances, synced);
    Ok(())
}

/// A reconcile that either waits for the caches or runs.
pub type Gated<Fut, E> = futures::future::Either<futures::future::Ready<Result<Action, E>>, Fut>;

/// `reconcile`, run only once every cache has listed its objects: before that, a group that saw
/// no instances yet would create them again, and an instance would judge from missing objects.
pub fn after_sync<K, C, E, R, Fut>(
    synced: Arc<std::sync::atomic::AtomicBool>,
    mut reconcile: R,
) -> impl FnMut(Arc<K>, Arc<C>) -> Gated<Fut, E>
where
    R: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
{
    move |object, ctx| {
        if synced.load(std::sync::atomic::Ordering::Acquire) {
            futures::future::Either::Right(reconcile(object, ctx))
        } else {
            futures::future::Either::Left(futures::future::ready(Ok(Action::requeue(
                CACHE_LAG_RETRY,
            ))))
        }
    }
}

/// Maps a change of a Cluster to the cached objects of that Cluster.
fn objects_of<K>(store: Store<K>) -> impl Fn(Cluster) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + OfCluster + Clone + 'static,
{
    move |cluster| {
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        of_cluster(&store, cluster.metadata.namespace.as_deref(), name)
    }
}

/// Maps a change of `dependency` (a group the component's groups wait for, such as a PDGroup)
/// to the groups of the same Cluster: for `group_watches`.
pub fn groups_of_cluster<G, D>(groups: Store<G>) -> impl Fn(D) -> Vec<ObjectRef<G>>
where
    G: Resource<DynamicType = ()> + OfCluster + Clone + 'static,
    D: Resource + OfCluster,
{
    move |dependency| {
        of_cluster(
            &groups,
            dependency.meta().namespace.as_deref(),
            dependency.cluster_name(),
        )
    }
}

/// How a group writes its instances: server-side apply as the controller's field manager
/// ([`apply_owned`]), deletes, and state patches, each recorded in the expectations so that the
/// next reconcile of the group waits until its cache shows them ([`InstanceWriter::lagging`]).
pub struct InstanceWriter<'a, K> {
    api: kube::Api<K>,
    manager: &'a str,
    state_annotations: &'a [&'a str],
    expectations: &'a Expectations,
    owner: String,
    namespace: String,
}

impl<'a, K> InstanceWriter<'a, K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + serde::Serialize
        + DeserializeOwned
        + 'static,
{
    /// The writer of `group`'s instances, in its namespace.
    pub fn new<G: Resource<DynamicType = ()>>(
        shared: &'a Shared,
        group: &G,
        manager: &'a str,
        state_annotations: &'a [&'a str],
    ) -> Self {
        let namespace = group.meta().namespace.clone().unwrap_or_default();
        Self {
            api: kube::Api::namespaced(shared.client.clone(), &namespace),
            manager,
            state_annotations,
            expectations: &shared.expectations,
            owner: crate::expect::key_of(group),
            namespace,
        }
    }

    /// The API of the instances.
    pub fn api(&self) -> &kube::Api<K> {
        &self.api
    }

    /// When to look again if `store` does not show every instance this group wrote yet: the
    /// group must not decide from that cache until it does.
    pub fn wait_for_cache(&self, store: &Store<K>) -> Option<Action> {
        let instance = self
            .expectations
            .lagging(&self.owner, store, &self.namespace)?;
        tracing::debug!(instance, "waiting for the cache to show the last write");
        Some(Action::requeue(CACHE_LAG_RETRY))
    }

    /// Creates or updates an instance.
    pub async fn apply(&self, existing: Option<&K>, desired: &K) -> Result<K, ApplyError> {
        let written = apply_owned(
            &self.api,
            self.manager,
            existing,
            desired,
            self.state_annotations,
        )
        .await?;
        self.expectations.wrote(&self.owner, &written);
        Ok(written)
    }

    /// Adopts the up-to-date instances written before server-side apply ([`adopt_all`]).
    pub async fn adopt_all(
        &self,
        objects: &[K],
        desired: impl Fn(&K) -> Option<K>,
    ) -> Result<(), ApplyError> {
        let adopted = adopt_all(
            &self.api,
            self.manager,
            objects,
            self.state_annotations,
            desired,
        )
        .await?;
        for object in &adopted {
            self.expectations.wrote(&self.owner, object);
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) a state annotation of instance `name` with a merge patch
    /// under the state manager.
    pub async fn set_state(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<K, kube::Error> {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        let params = kube::api::PatchParams {
            field_manager: Some(state_manager(self.manager)),
            ..kube::api::PatchParams::default()
        };
        let written = self
            .api
            .patch(name, &params, &kube::api::Patch::Merge(&patch))
            .await?;
        self.expectations.wrote(&self.owner, &written);
        Ok(written)
    }

    /// Deletes instance `name`.
    pub async fn delete(&self, name: &str) -> Result<(), kube::Error> {
        self.api
            .delete(name, &kube::api::DeleteParams::default())
            .await?;
        self.expectations.deleted(&self.owner, name);
        Ok(())
    }
}
