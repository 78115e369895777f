//! The Cluster reconcile: the cluster's status from its groups (components, PD URL, PD's cluster
//! ID, `Available`, `Progressing`, `Ready`, `Synced`, `Suspended`, feature gates), the feature
//! gates carried into every group, and deletion in reverse dependency order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use operator_api::br::{Backup, Restore};
use operator_api::conditions::HasConditions;
use operator_api::conditions::{self, reasons};
use operator_api::core::{
    Cluster, ClusterStatus, ComponentKind, Feature, PDGroup, TIDB_DEFAULT_PORT_STATUS, TiCDCGroup,
    TiDB, TiDBGroup, TiFlashGroup, TiKVGroup, TidbServerStatus,
};
use operator_api::keys;
use operator_runtime::dns::Dns;
use operator_runtime::endpoints::{EndpointFor, Endpoints};
use operator_runtime::events::Events;
use operator_runtime::finalize;
use operator_runtime::group::write_status_if_changed;
use operator_runtime::metrics::Metrics;
use pd_client::PdClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

mod br;
mod pd_service;
mod status;
mod subdomain;
pub use status::*;

/// Field manager and Event reporter of this binary.
pub const MANAGER: &str = "cluster-controller";

/// Shared state of the reconciles.
pub struct Ctx {
    /// Kubernetes client.
    pub client: Client,
    /// Events.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// Endpoint overrides.
    pub endpoints: Endpoints,
    /// The groups of every Cluster of the scope.
    pub groups: GroupCaches,
    /// The operator's client certificate of each TLS cluster, for its PD calls.
    pub client_tls: operator_runtime::tls::ClientTls,
    /// How long a settled Cluster waits before it is looked at again.
    pub settled_resync: Duration,
    /// The namespace the controller is scoped to, if any (where it looks for Backups and
    /// Restores of a Cluster being deleted).
    pub scope: Option<String>,
}

/// The caches of the groups a Cluster is made of.
#[derive(Clone)]
pub struct GroupCaches {
    /// PDGroups.
    pub pd: Store<PDGroup>,
    /// TiKVGroups.
    pub tikv: Store<TiKVGroup>,
    /// TiDBGroups.
    pub tidb: Store<TiDBGroup>,
    /// TiFlashGroups.
    pub tiflash: Store<TiFlashGroup>,
    /// TiCDCGroups.
    pub ticdc: Store<TiCDCGroup>,
}

/// Why a Cluster reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// An object could not be built from the Cluster.
    #[error("building an object of the Cluster: {0}")]
    Build(#[from] operator_runtime::build::BuildError),
}

impl Error {
    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }
}

impl operator_runtime::reconcile::Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::Build(_) => "build",
        }
    }
}

/// Reconciles one Cluster.
#[instrument(skip_all, fields(namespace = cluster.namespace(), cluster = cluster.name_any()))]
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(&ctx.metrics, "cluster", reconcile_inner(&cluster, &ctx))
        .await
}

async fn reconcile_inner(cluster: &Cluster, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let groups = list_groups(&ctx.groups, &namespace, &name);

    if cluster.metadata.deletion_timestamp.is_some() {
        return delete_in_order(cluster, ctx, &groups).await;
    }
    if finalize::set_finalizer(
        &Api::<Cluster>::namespaced(ctx.client.clone(), &namespace),
        cluster,
        true,
    )
    .await
    .map_err(Error::kube("adding the Cluster's finalizer"))?
    {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    if cluster.spec.paused {
        let says_so = cluster
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, conditions::SYNCED))
            .is_some_and(|c| c.reason == reasons::PAUSED);
        if says_so {
            // A paused cluster gets no writes at all, its own status included.
            return Ok(Action::await_change());
        }
    } else {
        carry_feature_gates(cluster, ctx, &groups).await?;
        subdomain::ensure(cluster, ctx).await?;
        pd_service::ensure(cluster, ctx).await?;
    }

    // Under MultiPDGroup, the Cluster's PD Service once a PDGroup exists; else the client
    // Service of the PDGroup that owns the Cluster's PD: with two, the one the pd-controller
    // lets go ahead.
    let pd_groups =
        operator_runtime::cache::list(&ctx.groups.pd, &namespace, |g| g.spec.cluster.name == name);
    let dns = Dns::of_spec(&cluster.spec);
    let pd_url = operator_runtime::group::pd_owner(&pd_groups).map(|g| {
        let service = cluster
            .spec
            .pd_service(&name)
            .unwrap_or_else(|| format!("{}-pd", g.name_any()));
        pd_url(&dns, &namespace, &service)
    });
    let mut cluster_id = cluster
        .status
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    // PD is asked on every reconcile: its ID the first time, whether it answers always.
    let mut pd_error = None;
    let mut pd_members = None;
    let mut stores = None;
    let mut tidb_servers = None;
    if let Some(url) = &pd_url {
        let url = ctx.endpoints.resolve(
            EndpointFor {
                component: "pd",
                namespace: &namespace,
                cluster: &name,
                instance: "",
            },
            url.clone(),
        );
        ctx.client_tls
            .refresh(&ctx.client, cluster)
            .await
            .map_err(Error::kube("reading the client certificate Secrets"))?;
        let tls = match ctx.client_tls.get(&namespace, &name) {
            None => Ok(None),
            Some(tls) => tls.map(Some),
        };
        let client = match &tls {
            Ok(tls) => PdClient::new(&url, tls.as_ref(), Duration::from_secs(3)),
            Err(e) => Err(pd_client::Error::Tls(e.to_string())),
        };
        match client {
            Ok(pd) => match pd.cluster_id().await {
                Ok(id) => {
                    cluster_id = id.to_string();
                    // Best effort: the list stays as last written when PD does not answer.
                    let dns = Dns::of_spec(&cluster.spec);
                    if let Ok(info) = pd.members().await {
                        pd_members = Some(members_status(&dns, &namespace, &name, &groups, &info));
                    }
                    // Across Kubernetes clusters, the TiDB servers of every side, as one of ours
                    // lists them.
                    let joined = pd_members
                        .as_ref()
                        .is_some_and(|m| m.iter().any(|m| !m.local));
                    if joined && let Ok(tls) = &tls {
                        tidb_servers =
                            tidb_servers_status(ctx, cluster, &groups, tls.as_ref()).await?;
                    }
                    // PD without a store yet answers an error: the list stays as it was.
                    if let Ok(info) = pd.stores().await {
                        stores = Some(stores_status(&dns, &namespace, &name, &groups, &info));
                    }
                }
                // Before the first member runs there is no PD to be unavailable.
                Err(e) if !cluster_id.is_empty() => pd_error = Some(e.to_string()),
                Err(_) => {}
            },
            Err(e) => pd_error = Some(e.to_string()),
        }
    }
    let mut status = cluster_status(
        cluster,
        &groups,
        pd_url,
        cluster_id,
        pd_error.as_deref(),
        Timestamp::now(),
    );
    if let Some(members) = pd_members {
        status.pd_members = members;
    }
    if let Some(stores) = stores {
        status.stores = stores;
    }
    if let Some(servers) = tidb_servers {
        status.tidb_servers = servers;
    }
    let api = Api::<Cluster>::namespaced(ctx.client.clone(), &namespace);
    if let Some(before) = &cluster.status {
        announce_transitions(cluster, ctx, before, &status).await;
    }
    write_status_if_changed(&api, cluster, cluster.status.as_ref(), &status)
        .await
        .map_err(Error::kube("writing the Cluster status"))?;
    let settled = conditions::is_true(&status.conditions, conditions::READY)
        && !status.id.is_empty()
        && pd_error.is_none();
    Ok(Action::requeue(if settled {
        ctx.settled_resync
    } else {
        Duration::from_secs(10)
    }))
}

/// `status.tidbServers`: every TiDB server of the whole TiDB cluster as the first Ready TiDB of
/// this Cluster lists them (`/info/all`), each marked local when its address is a host under one
/// of this Cluster's TiDB peer Services. `None` (the list stays as last written) when no TiDB of
/// this Cluster answers.
async fn tidb_servers_status(
    ctx: &Ctx,
    cluster: &Cluster,
    groups: &[GroupView],
    tls: Option<&pd_client::TlsConfig>,
) -> Result<Option<Vec<TidbServerStatus>>, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let tidbs = Api::<TiDB>::namespaced(ctx.client.clone(), &namespace)
        .list(&Default::default())
        .await
        .map_err(Error::kube("listing the TiDB instances"))?;
    let Ok(client) = pd_client::StatusClient::new(tls, Duration::from_secs(3)) else {
        return Ok(None);
    };
    let dns = Dns::of(Some(cluster));
    let ready = tidbs.items.iter().filter(|t| {
        t.spec.cluster.name == name && conditions::is_true(t.conditions(), conditions::READY)
    });
    for tidb in ready {
        let port = tidb
            .spec
            .template
            .server
            .ports
            .status
            .as_ref()
            .map_or(TIDB_DEFAULT_PORT_STATUS, |p| p.port);
        let url = format!("{}://{}:{port}", dns.scheme(), dns.instance_host(tidb));
        let url = ctx.endpoints.resolve(
            EndpointFor {
                component: keys::COMPONENT_TIDB,
                namespace: &namespace,
                cluster: &name,
                instance: &tidb.name_any(),
            },
            url,
        );
        if let Ok(servers) = client.tidb_servers(&url).await {
            return Ok(Some(tidb_servers(
                &dns, &namespace, &name, groups, &servers,
            )));
        }
    }
    Ok(None)
}

/// Events for the transitions a user wants to see in `kubectl describe`.
async fn announce_transitions(
    cluster: &Cluster,
    ctx: &Ctx,
    before: &ClusterStatus,
    after: &ClusterStatus,
) {
    for type_ in [
        conditions::AVAILABLE,
        conditions::PROGRESSING,
        conditions::SUSPENDED,
    ] {
        let was = conditions::find(&before.conditions, type_).map(|c| c.status.clone());
        if let Some(now) = conditions::find(&after.conditions, type_)
            && was.as_deref() != Some(now.status.as_str())
        {
            let note = format!("{type_}={}: {}", now.status, now.message);
            ctx.events.normal(cluster, &now.reason, type_, note).await;
        }
    }
}

/// Copies the Cluster's feature gates into every group's `spec.features`, where they differ.
async fn carry_feature_gates(
    cluster: &Cluster,
    ctx: &Ctx,
    groups: &[GroupView],
) -> Result<(), Error> {
    let wanted: Vec<Feature> = cluster
        .spec
        .feature_gates
        .iter()
        .map(|g| g.name)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let namespace = cluster.namespace().unwrap_or_default();
    for group in groups.iter().filter(|g| !g.deleting) {
        let have: Vec<Feature> = group
            .features
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if have == wanted {
            continue;
        }
        let patch = serde_json::json!({"spec": {"features": wanted}});
        let params = PatchParams::default();
        let result = match group.kind {
            ComponentKind::PD => {
                patch_group::<PDGroup>(&ctx.client, &namespace, &group.name, &params, &patch).await
            }
            ComponentKind::TiKV => {
                patch_group::<TiKVGroup>(&ctx.client, &namespace, &group.name, &params, &patch)
                    .await
            }
            ComponentKind::TiDB => {
                patch_group::<TiDBGroup>(&ctx.client, &namespace, &group.name, &params, &patch)
                    .await
            }
            ComponentKind::TiFlash => {
                patch_group::<TiFlashGroup>(&ctx.client, &namespace, &group.name, &params, &patch)
                    .await
            }
            ComponentKind::TiCDC => {
                patch_group::<TiCDCGroup>(&ctx.client, &namespace, &group.name, &params, &patch)
                    .await
            }
            _ => Ok(()),
        };
        result.map_err(Error::kube(format!(
            "setting the features of {}",
            group.label()
        )))?;
        info!(
            group = group.label(),
            "carried the Cluster's feature gates into the group"
        );
    }
    Ok(())
}

async fn patch_group<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    params: &PatchParams,
    patch: &serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Serialize,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(name, params, &Patch::Merge(patch))
        .await
        .map(|_| ())
}

/// Deletes the groups TiDB and TiCDC first, then TiFlash, then TiKV, then PD, each once the ones
/// before are gone (a TiFlash store needs TiKV's Regions and PD to leave cleanly); then
/// releases the Cluster. PVCs stay: the instance controllers keep them when the whole group goes.
/// Nothing is deleted while a Backup or Restore runs its BR Job against the Cluster
/// ([`br`]): a backup cut off half-way would be lost.
async fn delete_in_order(
    cluster: &Cluster,
    ctx: &Ctx,
    groups: &[GroupView],
) -> Result<Action, Error> {
    if !cluster.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let running = running_br(ctx, &namespace, &cluster.name_any()).await?;
    if !running.is_empty() {
        hold_deletion(cluster, ctx, &running).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let order: [&[ComponentKind]; 4] = [
        &[ComponentKind::TiDB, ComponentKind::TiCDC],
        &[ComponentKind::TiFlash],
        &[ComponentKind::TiKV],
        &[ComponentKind::PD],
    ];
    for kinds in order {
        let of_kind: Vec<&GroupView> = groups.iter().filter(|g| kinds.contains(&g.kind)).collect();
        if of_kind.is_empty() {
            continue;
        }
        for group in of_kind.iter().filter(|g| !g.deleting) {
            let params = DeleteParams::background();
            let result = match group.kind {
                ComponentKind::PD => Api::<PDGroup>::namespaced(ctx.client.clone(), &namespace)
                    .delete(&group.name, &params)
                    .await
                    .map(|_| ()),
                ComponentKind::TiKV => Api::<TiKVGroup>::namespaced(ctx.client.clone(), &namespace)
                    .delete(&group.name, &params)
                    .await
                    .map(|_| ()),
                ComponentKind::TiFlash => {
                    Api::<TiFlashGroup>::namespaced(ctx.client.clone(), &namespace)
                        .delete(&group.name, &params)
                        .await
                        .map(|_| ())
                }
                ComponentKind::TiCDC => {
                    Api::<TiCDCGroup>::namespaced(ctx.client.clone(), &namespace)
                        .delete(&group.name, &params)
                        .await
                        .map(|_| ())
                }
                _ => Api::<TiDBGroup>::namespaced(ctx.client.clone(), &namespace)
                    .delete(&group.name, &params)
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(Error::kube(format!("deleting {}", group.label()))(e)),
            }
            ctx.events
                .normal(
                    cluster,
                    reasons::CLUSTER_DELETION,
                    "Delete",
                    format!("deleting {}", group.label()),
                )
                .await;
        }
        // The next kind waits until these are gone.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    finalize::set_finalizer(
        &Api::<Cluster>::namespaced(ctx.client.clone(), &namespace),
        cluster,
        false,
    )
    .await
    .map_err(Error::kube("removing the Cluster's finalizer"))?;
    Ok(Action::await_change())
}

/// The Backups and Restores (`Backup ns/name`) whose BR Job runs against the Cluster `name`.
async fn running_br(ctx: &Ctx, namespace: &str, name: &str) -> Result<Vec<String>, Error> {
    let backups = list_br::<Backup>(ctx, "Backup").await?;
    let restores = list_br::<Restore>(ctx, "Restore").await?;
    let label = |kind: &str, meta: &kube::api::ObjectMeta| {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        format!("{kind} {namespace}/{name}")
    };
    let mut running: Vec<String> = backups
        .iter()
        .filter(|b| br::backup_holds(b, namespace, name))
        .map(|b| label("Backup", &b.metadata))
        .collect();
    running.extend(
        restores
            .iter()
            .filter(|r| br::restore_holds(r, namespace, name))
            .map(|r| label("Restore", &r.metadata)),
    );
    Ok(running)
}

/// Every object of a backup kind in the controller's scope; none when its CRD is not installed.
async fn list_br<K>(ctx: &Ctx, kind: &str) -> Result<Vec<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    match operator_runtime::scope::scoped::<K>(&ctx.client, ctx.scope.as_deref())
        .list(&Default::default())
        .await
    {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
        Err(e) => Err(Error::kube(format!(
            "listing {kind}s of a Cluster being deleted"
        ))(e)),
    }
}

/// Says that the deletion waits for `running`: `Synced=False`, reason
/// [`DELETION_WAITING_FOR_BR`](reasons::DELETION_WAITING_FOR_BR), and a Warning Event when that
/// is news.
async fn hold_deletion(cluster: &Cluster, ctx: &Ctx, running: &[String]) -> Result<(), Error> {
    let message = br::waiting_message(running);
    let before = cluster.status.clone().unwrap_or_default();
    let news = conditions::find(&before.conditions, conditions::SYNCED)
        .is_none_or(|c| c.reason != reasons::DELETION_WAITING_FOR_BR || c.message != message);
    if !news {
        return Ok(());
    }
    let mut status = before.clone();
    conditions::Look::now(cluster.metadata.generation).set(
        &mut status.conditions,
        conditions::SYNCED,
        false,
        reasons::DELETION_WAITING_FOR_BR,
        message.clone(),
    );
    ctx.events
        .warning(cluster, reasons::DELETION_WAITING_FOR_BR, "Delete", message)
        .await;
    let api =
        Api::<Cluster>::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    write_status_if_changed(&api, cluster, Some(&before), &status)
        .await
        .map_err(Error::kube("writing the Cluster status"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
