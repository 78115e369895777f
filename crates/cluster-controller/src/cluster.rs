//! The Cluster reconcile: the cluster's status from its groups (components, PD URL, PD's cluster
//! ID, `Available`, `Progressing`, `Ready`, `Synced`, `Suspended`, feature gates), the feature
//! gates carried into every group, and deletion in reverse dependency order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use operator_api::conditions::{self, reasons};
use operator_api::core::{
    Cluster, ClusterStatus, ComponentGroupStatus, ComponentKind, ComponentStatus, Feature,
    FeatureGateStatus, FeatureStage, PD_DEFAULT_PORT_CLIENT, PDGroup, PdMemberStatus, TiDBGroup,
    TiKVGroup,
};
use operator_api::keys;
use operator_runtime::cache;
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
}

impl Error {
    fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }
}

impl operator_runtime::reconcile::Categorized for Error {
    fn category(&self) -> &'static str {
        "kube_api"
    }
}

/// One group of the cluster, as the Cluster's status needs it.
#[derive(Clone, Debug)]
pub struct GroupView {
    /// Which component.
    pub kind: ComponentKind,
    /// Group name.
    pub name: String,
    /// Desired replicas.
    pub replicas: i32,
    /// Generation.
    pub generation: Option<i64>,
    /// Status.
    pub status: Option<ComponentGroupStatus>,
    /// Features in its spec.
    pub features: Vec<Feature>,
    /// Being deleted.
    pub deleting: bool,
}

impl GroupView {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.common.conditions.as_slice())
            .unwrap_or_default()
    }

    fn ready_replicas(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.group.ready_replicas)
    }

    /// Settled: observed its spec, Ready and Synced.
    fn settled(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.common.observed_generation == self.generation.unwrap_or_default())
            && conditions::is_true(self.conditions(), conditions::READY)
            && conditions::is_true(self.conditions(), conditions::SYNCED)
    }

    fn label(&self) -> String {
        format!("{:?}Group {}", self.kind, self.name)
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
    }

    let pd_url = groups
        .iter()
        .find(|g| g.kind == ComponentKind::PD)
        .map(|g| pd_url(&Dns::of_spec(&cluster.spec), &namespace, &g.name));
    let mut cluster_id = cluster
        .status
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    // PD is asked on every reconcile: its ID the first time, whether it answers always.
    let mut pd_error = None;
    let mut pd_members = None;
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
        let client = match tls {
            Ok(tls) => PdClient::new(&url, tls.as_ref(), Duration::from_secs(3)),
            Err(e) => Err(pd_client::Error::Tls(e.to_string())),
        };
        match client {
            Ok(pd) => match pd.cluster_id().await {
                Ok(id) => {
                    cluster_id = id.to_string();
                    // Best effort: the list stays as last written when PD does not answer.
                    if let Ok(info) = pd.members().await {
                        let dns = Dns::of_spec(&cluster.spec);
                        pd_members = Some(members_status(&dns, &namespace, &groups, &info));
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

/// Every PD, TiKV and TiDB group that points at the cluster.
pub fn list_groups(caches: &GroupCaches, namespace: &str, cluster: &str) -> Vec<GroupView> {
    let mut views = Vec::new();
    for group in cache::list(&caches.pd, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::PD,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.tikv, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::TiKV,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.tidb, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::TiDB,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    views.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    views
}

fn view<K: Resource>(
    kind: ComponentKind,
    group: &K,
    replicas: i32,
    status: Option<ComponentGroupStatus>,
    features: Vec<Feature>,
) -> GroupView {
    GroupView {
        kind,
        name: group.meta().name.clone().unwrap_or_default(),
        replicas,
        generation: group.meta().generation,
        status,
        features,
        deleting: group.meta().deletion_timestamp.is_some(),
    }
}

/// `status.pd`: the URL of the client Service of the PD group `group`, named as the Cluster's
/// `spec.dns` asks.
pub fn pd_url(dns: &Dns, namespace: &str, group: &str) -> String {
    let host = dns.service_host(&format!("{group}-pd"), namespace);
    format!("{}://{host}:{PD_DEFAULT_PORT_CLIENT}", dns.scheme())
}

/// `status.pdMembers`: PD's members by name, each marked local when its client URL is a host
/// under the peer Service of one of this Cluster's PD groups (as this Cluster's DNS names it);
/// the members of other Kubernetes clusters have other hosts.
pub fn members_status(
    dns: &Dns,
    namespace: &str,
    groups: &[GroupView],
    info: &pd_client::MembersInfo,
) -> Vec<PdMemberStatus> {
    let suffixes: Vec<String> = groups
        .iter()
        .filter(|g| g.kind == ComponentKind::PD)
        .map(|g| {
            format!(
                ".{}",
                dns.service_host(&format!("{}-pd-peer", g.name), namespace)
            )
        })
        .collect();
    let mut members: Vec<PdMemberStatus> = info
        .members
        .iter()
        .map(|m| {
            let client_url = m.client_urls.first().cloned().unwrap_or_default();
            let host = client_url
                .split_once("://")
                .map_or(client_url.as_str(), |(_, rest)| rest)
                .split(':')
                .next()
                .unwrap_or_default();
            PdMemberStatus {
                name: m.name.clone(),
                local: suffixes.iter().any(|s| host.ends_with(s.as_str())),
                client_url,
            }
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

/// The Cluster's status from its groups (pure).
pub fn cluster_status(
    cluster: &Cluster,
    groups: &[GroupView],
    pd_url: Option<String>,
    cluster_id: String,
    pd_error: Option<&str>,
    now: Timestamp,
) -> ClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    status.observed_generation = generation.unwrap_or_default();
    status.components = [ComponentKind::PD, ComponentKind::TiKV, ComponentKind::TiDB]
        .into_iter()
        .filter(|kind| groups.iter().any(|g| g.kind == *kind))
        .map(|kind| ComponentStatus {
            kind,
            replicas: groups
                .iter()
                .filter(|g| g.kind == kind)
                .map(|g| g.replicas)
                .sum(),
        })
        .collect();
    status.pd = pd_url.unwrap_or_default();
    status.id = cluster_id;
    status.feature_gates = cluster
        .spec
        .feature_gates
        .iter()
        .map(|g| FeatureGateStatus {
            name: g.name,
            stage: FeatureStage::Alpha,
        })
        .collect();

    let look = conditions::Look { generation, now };
    let set = |status: &mut ClusterStatus, type_, ok: bool, reason, message: String| {
        look.set(&mut status.conditions, type_, ok, reason, message);
    };
    let has = |kind| groups.iter().any(|g| g.kind == kind);
    // Available: SQL is served (a TiDB group with a ready server), or, without TiDB, the stores
    // and PD answer (a TiKV-only cluster).
    let (available, available_message) = if has(ComponentKind::TiDB) {
        let serving: Vec<String> = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::TiDB && g.ready_replicas() > 0)
            .map(GroupView::label)
            .collect();
        (
            !serving.is_empty(),
            if serving.is_empty() {
                "no TiDB server is ready".to_string()
            } else {
                format!("{} serve SQL", serving.join(", "))
            },
        )
    } else if has(ComponentKind::TiKV) && has(ComponentKind::PD) {
        let kv = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::TiKV)
            .all(|g| g.ready_replicas() > 0);
        let pd = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::PD)
            .any(|g| g.ready_replicas() > 0);
        (
            kv && pd,
            if kv && pd {
                "PD and the TiKV stores are ready (TiKV-only cluster)".into()
            } else {
                "PD or the TiKV stores are not ready".into()
            },
        )
    } else {
        (
            false,
            "the cluster has no TiDB group, and not both a PD and a TiKV group".to_string(),
        )
    };
    // Without PD nothing is served, whatever the groups last said.
    let (available, reason, available_message) = match pd_error {
        Some(error) => (
            false,
            reasons::PD_UNAVAILABLE,
            format!("PD does not answer ({error}); no data is served until it does"),
        ),
        None if available => (true, reasons::CLUSTER_AVAILABLE, available_message),
        None => (false, reasons::UNREADY, available_message),
    };
    set(
        &mut status,
        conditions::AVAILABLE,
        available,
        reason,
        available_message,
    );

    let unsettled: Vec<String> = groups
        .iter()
        .filter(|g| !g.settled())
        .map(GroupView::label)
        .collect();
    let progressing = !unsettled.is_empty() || groups.is_empty();
    set(
        &mut status,
        conditions::PROGRESSING,
        progressing,
        if groups.is_empty() {
            reasons::CLUSTER_CREATION
        } else if progressing {
            "Progressing"
        } else {
            reasons::SYNCED
        },
        if groups.is_empty() {
            "no group points at this cluster yet".to_string()
        } else if progressing {
            format!("rolling, scaling or starting: {}", unsettled.join(", "))
        } else {
            "every group is up to date and ready".to_string()
        },
    );
    let not_ready: Vec<String> = groups
        .iter()
        .filter(|g| !conditions::is_true(g.conditions(), conditions::READY))
        .map(GroupView::label)
        .collect();
    let ready = !groups.is_empty() && not_ready.is_empty();
    set(
        &mut status,
        conditions::READY,
        ready,
        if ready {
            reasons::READY
        } else {
            reasons::UNREADY
        },
        if ready {
            "every group is ready".into()
        } else if groups.is_empty() {
            "no groups".into()
        } else {
            format!("not ready: {}", not_ready.join(", "))
        },
    );
    let unsynced: Vec<String> = groups
        .iter()
        .filter(|g| !conditions::is_true(g.conditions(), conditions::SYNCED))
        .map(GroupView::label)
        .collect();
    let (synced, synced_reason, synced_message) = if cluster.spec.paused {
        (
            false,
            reasons::PAUSED,
            "the cluster is paused: no controller changes anything until spec.paused is false"
                .to_string(),
        )
    } else if groups.is_empty() || !unsynced.is_empty() {
        (
            false,
            reasons::UNSYNCED,
            if groups.is_empty() {
                "no groups".into()
            } else {
                format!("not synced: {}", unsynced.join(", "))
            },
        )
    } else {
        (true, reasons::SYNCED, "every group is synced".to_string())
    };
    set(
        &mut status,
        conditions::SYNCED,
        synced,
        synced_reason,
        synced_message,
    );
    let suspend = cluster.spec.suspends_compute();
    let suspended_groups: Vec<&GroupView> = groups
        .iter()
        .filter(|g| conditions::is_true(g.conditions(), conditions::SUSPENDED))
        .collect();
    let (suspended, reason, message) = match (
        suspend,
        suspended_groups.len() == groups.len() && !groups.is_empty(),
    ) {
        (true, true) => (
            true,
            reasons::SUSPENDED,
            "every group's Pods are removed; instances, PVCs and data are kept".to_string(),
        ),
        (true, false) => (
            false,
            reasons::SUSPENDING,
            format!(
                "{} of {} groups suspended",
                suspended_groups.len(),
                groups.len()
            ),
        ),
        (false, _) => (
            false,
            reasons::UNSUSPENDED,
            "the cluster is not suspended".to_string(),
        ),
    };
    set(
        &mut status,
        conditions::SUSPENDED,
        suspended,
        reason,
        message,
    );
    status
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

/// Deletes the groups TiDB first, then TiKV, then PD, each once the ones before are gone; then
/// releases the Cluster. PVCs stay: the instance controllers keep them when the whole group goes.
async fn delete_in_order(
    cluster: &Cluster,
    ctx: &Ctx,
    groups: &[GroupView],
) -> Result<Action, Error> {
    if !cluster.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    for kind in [ComponentKind::TiDB, ComponentKind::TiKV, ComponentKind::PD] {
        let of_kind: Vec<&GroupView> = groups.iter().filter(|g| g.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        for group in of_kind.iter().filter(|g| !g.deleting) {
            let params = DeleteParams::background();
            let result = match kind {
                ComponentKind::PD => Api::<PDGroup>::namespaced(ctx.client.clone(), &namespace)
                    .delete(&group.name, &params)
                    .await
                    .map(|_| ()),
                ComponentKind::TiKV => Api::<TiKVGroup>::namespaced(ctx.client.clone(), &namespace)
                    .delete(&group.name, &params)
                    .await
                    .map(|_| ()),
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

#[cfg(test)]
mod tests;
