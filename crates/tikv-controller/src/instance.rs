//! The TiKV instance reconcile: its ConfigMap, PVCs and Pod; the store it is in PD (ID, state,
//! labels from its Node); a restart that evicts the store's leaders first (bounded wait) and never
//! runs while another store has down peers; and removal through PD (Offline, then Tombstone)
//! before the Pod, then the PVCs, then the instance go.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, NewCondition, reasons};
use operator_api::core::{TiKV, TiKVStatus};
use operator_api::keys;
use operator_runtime::apply::{apply_if_changed, create_missing, state_manager};
use operator_runtime::component::CACHE_LAG_RETRY;
use operator_runtime::group as shared_group;
use operator_runtime::pod::{is_ready, not_ready_message};
use operator_runtime::{cache, duration, expect, finalize};
use pd_client::{PdClient, ReplicationConfig, StoreInfo};
use tracing::{info, instrument};

use crate::build;
use crate::context::{Ctx, MANAGER};
use crate::error::Error;
use crate::pd::{self, PdView};
use crate::store::{
    self, PodPresence, RemovalInput, RemovalStep, RestartCause, RestartInput, RestartStep,
    StoreLookup,
};

/// Annotation of a TiKV instance: when the leader-eviction wait of the current restart started
/// (RFC 3339). It is written before the evict-leader scheduler is added and removed after the
/// scheduler is, so a controller that restarts mid-way continues the same wait and finds every
/// scheduler it added.
pub const ANNO_EVICTION_STARTED: &str = "tikv.core.pingcap.com/leader-eviction-started-at";

/// Reason: PD cannot be asked.
pub const REASON_PD_UNREACHABLE: &str = "PDUnreachable";
/// Reason: the Cluster has no PD to register with.
pub const REASON_PD_NOT_FOUND: &str = "PDNotFound";
/// Reason: a restart waits because other stores have down peers.
pub const REASON_DOWN_PEERS_ELSEWHERE: &str = "DownPeersElsewhere";
/// `LeadersEvicted` reason: the evict-leader scheduler is moving the store's leaders away.
pub const REASON_EVICTING: &str = "EvictingLeaders";
/// `LeadersEvicted` reason: every leader left the store.
pub const REASON_EVICTED: &str = "LeadersEvicted";
/// `LeadersEvicted` reason (and Event): the wait for the leaders passed the timeout.
pub const REASON_EVICTION_TIMED_OUT: &str = "LeaderEvictionTimedOut";
/// `LeadersEvicted` reason: no eviction is going on.
pub const REASON_NOT_EVICTING: &str = "NotEvicting";
/// Reason: the store does not serve (not registered, disconnected, down).
pub const REASON_STORE_NOT_SERVING: &str = "StoreNotServing";
/// Reason: after a restart, the store has not served again yet.
pub const REASON_WAITING_FOR_STORE: &str = "WaitingForStore";
/// `Offlined` reason: PD is moving the store's Regions away.
pub const REASON_STORE_REMOVING: &str = "StoreRemoving";
/// `Offlined` reason: PD removed the store (Tombstone).
pub const REASON_STORE_REMOVED: &str = "StoreRemoved";
/// `Offlined` reason: PD refused to take the store offline.
pub const REASON_STORE_REMOVAL_REFUSED: &str = "StoreRemovalRefused";
/// `Offlined` reason: the removal was cancelled; the store is Up again.
pub const REASON_OFFLINE_CANCELLED: &str = "OfflineCancelled";

/// Reconciles one TiKV instance.
#[instrument(skip_all, fields(namespace = tikv.namespace(), instance = tikv.name_any(), cluster = tikv.spec.cluster.name))]
pub async fn reconcile(tikv: Arc<TiKV>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile_started("tikv");
    // The cached copy may not show this controller's own last annotation patch yet; the status
    // built here carries on from it, so wait for it.
    let result = match ctx.expectations.lagging(
        &expect::key_of(tikv.as_ref()),
        &ctx.instances,
        tikv.namespace().as_deref().unwrap_or_default(),
    ) {
        Some(_) => Ok(Action::requeue(CACHE_LAG_RETRY)),
        None => reconcile_inner(&tikv, &ctx).await,
    };
    match &result {
        Ok(_) => timer.finish(Ok(())),
        Err(e) => timer.finish_error(e.category()),
    }
    result
}

/// The instance's status as this reconcile builds it.
struct Draft {
    status: TiKVStatus,
    generation: Option<i64>,
    now: Timestamp,
}

impl Draft {
    fn new(tikv: &TiKV) -> Self {
        Draft {
            status: tikv.status.clone().unwrap_or_default(),
            generation: tikv.metadata.generation,
            now: Timestamp::now(),
        }
    }

    fn set(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        conditions::set(
            &mut self.status.common.conditions,
            NewCondition {
                type_,
                status: ok,
                reason,
                message: message.into(),
                observed_generation: self.generation,
            },
            self.now,
        );
    }

    fn reason(&self, type_: &str) -> Option<String> {
        conditions::find(&self.status.common.conditions, type_).map(|c| c.reason.clone())
    }

    fn store(&mut self, info: Option<&StoreInfo>) {
        if let Some(info) = info {
            self.status.id = info.store.id.to_string();
            self.status.state = store::instance_state(info).to_string();
        }
    }

    fn finish(mut self, tikv: &TiKV) -> TiKVStatus {
        self.status.common.observed_generation = self.generation.unwrap_or_default();
        self.status.common.current_revision = tikv
            .labels()
            .get(keys::LABEL_INSTANCE_REVISION_HASH)
            .cloned()
            .unwrap_or_default();
        self.status.common.update_revision = self.status.common.current_revision.clone();
        self.status
    }
}

/// Everything one reconcile works with.
struct Scope<'a> {
    tikv: &'a TiKV,
    ctx: &'a Ctx,
    namespace: String,
    name: String,
    pd: PdClient,
    /// The instance's resourceVersion after this reconcile's own annotation patches, so its
    /// status write is not refused as stale because of them.
    resource_version: Mutex<Option<String>>,
}

impl Scope<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn pd_error(&self) -> impl FnOnce(pd_client::Error) -> Error + '_ {
        Error::pd(self.pd.base())
    }

    async fn set_annotation(&self, key: &str, value: Option<String>) -> Result<(), Error> {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        let patched = Api::<TiKV>::namespaced(self.ctx.client.clone(), &self.namespace)
            .patch(
                &self.name,
                &PatchParams {
                    field_manager: Some(state_manager(MANAGER)),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::kube(format!("annotating TiKV {}", self.name)))?;
        self.ctx
            .expectations
            .wrote(&expect::key_of(self.tikv), &patched);
        if let Ok(mut version) = self.resource_version.lock() {
            *version = patched.metadata.resource_version;
        }
        Ok(())
    }

    /// Records why the instance cannot proceed (`Ready` and `Synced` false for `reason`).
    async fn write_blocked(&self, reason: &str, message: &str) -> Result<(), Error> {
        self.write_status(shared_group::status_blocked(self.tikv, reason, message))
            .await
    }

    /// Writes the instance's status, as of this reconcile's own patches.
    async fn write_status(&self, status: TiKVStatus) -> Result<(), Error> {
        let mut current = self.tikv.clone();
        if let Some(version) = self.resource_version.lock().ok().and_then(|v| v.clone()) {
            current.metadata.resource_version = Some(version);
        }
        write_status(&current, self.ctx, status).await
    }

    async fn remove_scheduler(&self, store_id: u64, why: &str) -> Result<(), Error> {
        self.pd
            .remove_evict_leader_scheduler(store_id)
            .await
            .map_err(self.pd_error())?;
        self.ctx.pd_changed(&self.pd);
        info!(store_id, why, "removed the evict-leader scheduler");
        self.ctx
            .events
            .normal(
                self.tikv,
                "EvictLeaderSchedulerRemoved",
                "Restart",
                format!("store {store_id}: evict-leader scheduler removed ({why})"),
            )
            .await;
        Ok(())
    }

    async fn create_pod(&self, pod: &Pod) -> Result<(), Error> {
        self.pods()
            .create(
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..PostParams::default()
                },
                pod,
            )
            .await
            .map_err(Error::kube("creating the Pod"))?;
        info!("created TiKV Pod");
        Ok(())
    }

    /// Deletes the PVCs of the instance; whether any was left.
    async fn delete_pvcs(&self) -> Result<bool, Error> {
        finalize::delete_pvcs(
            &Api::namespaced(self.ctx.client.clone(), &self.namespace),
            &self.name,
            build::COMPONENT,
        )
        .await
        .map_err(Error::kube("deleting the PVCs"))
    }
}

async fn reconcile_inner(tikv: &TiKV, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = tikv
        .namespace()
        .ok_or_else(|| Error::Invalid("TiKV has no namespace".into()))?;
    let name = tikv.name_any();
    let cluster_name = &tikv.spec.cluster.name;
    let group_name = tikv
        .labels()
        .get(keys::LABEL_GROUP)
        .cloned()
        .unwrap_or_default();
    let cluster = cache::get(&ctx.caches.clusters, &namespace, cluster_name);
    if let Some(cluster) = &cluster
        && cluster.spec.paused
    {
        let mut draft = Draft::new(tikv);
        draft.set(
            conditions::SYNCED,
            false,
            reasons::PAUSED,
            shared_group::paused_message(cluster_name),
        );
        write_status(tikv, ctx, draft.finish(tikv)).await?;
        return Ok(Action::await_change());
    }
    let pd_groups = ctx.caches.pd_groups_of(&namespace, cluster_name);
    let pd_url = pd::pd_url(cluster.as_ref(), &pd_groups, &namespace);

    if tikv.metadata.deletion_timestamp.is_some() {
        let group = cache::get(&ctx.groups, &namespace, &group_name);
        let leaving_only_this = group
            .as_ref()
            .is_some_and(|g| g.metadata.deletion_timestamp.is_none())
            && cluster
                .as_ref()
                .is_some_and(|c| c.metadata.deletion_timestamp.is_none());
        return finalize(tikv, ctx, pd_url, leaving_only_this).await;
    }
    let Some(cluster) = cluster else {
        let message = format!("Cluster {cluster_name} does not exist in namespace {namespace}");
        write_status(
            tikv,
            ctx,
            shared_group::status_blocked(tikv, reasons::CLUSTER_NOT_FOUND, &message),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let Some(pd_url) = pd_url else {
        let message = format!(
            "Cluster {cluster_name} has no PD yet (no status.pd and no PDGroup); the store waits for one"
        );
        write_status(
            tikv,
            ctx,
            shared_group::status_blocked(tikv, REASON_PD_NOT_FOUND, &message),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    let scope = Scope {
        tikv,
        ctx,
        namespace: namespace.clone(),
        name: name.clone(),
        pd: ctx.pd(&namespace, cluster_name, pd_url.clone())?,
        resource_version: Mutex::new(None),
    };

    let config = match build::config(tikv, &pd_url) {
        Ok(config) => config,
        Err(e) => {
            let message = e.to_string();
            scope.write_blocked(reasons::INVALID_SPEC, &message).await?;
            return Ok(Action::await_change());
        }
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = cache::get(&ctx.caches.config_maps, &namespace, &name);
    apply_if_changed(
        &config_maps,
        MANAGER,
        existing.as_ref(),
        build::config_map(tikv, config)?,
    )
    .await?;

    let desired_pod = match build::pod(tikv) {
        Ok(pod) => pod,
        Err(e) => {
            let message = e.to_string();
            scope.write_blocked(reasons::INVALID_SPEC, &message).await?;
            return Ok(Action::await_change());
        }
    };
    let existing_pod = cache::get(&ctx.caches.pods, &namespace, &name);
    if cluster
        .spec
        .suspend_action
        .as_ref()
        .is_some_and(|s| s.suspend_compute)
    {
        return suspend(&scope, existing_pod.as_ref()).await;
    }

    let view = scope.ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tikv, &view);
    let store = lookup.and_then(|l| l.info());
    let marked = tikv.annotations().contains_key(keys::ANNO_DEFER_DELETE);
    if marked || store.is_some_and(store::is_removed) {
        return remove_store(
            &scope,
            &view,
            lookup,
            existing_pod.as_ref(),
            Some(&desired_pod),
            Finish::DeleteInstance,
        )
        .await;
    }
    ensure_pvcs(&scope).await?;

    let mut draft = Draft::new(tikv);
    draft.store(store);
    if let Some(info) = store
        && store::is_removing(info)
    {
        // Scaled back out before PD finished taking the store out: keep it.
        let id = info.store.id;
        scope
            .pd
            .cancel_delete_store(id)
            .await
            .map_err(scope.pd_error())?;
        scope.ctx.pd_changed(&scope.pd);
        ctx.events
            .normal(
                tikv,
                REASON_OFFLINE_CANCELLED,
                "ScaleOut",
                format!("store {id} is kept: its removal was cancelled and it is Up again"),
            )
            .await;
        draft.set(
            conditions::OFFLINED,
            false,
            REASON_OFFLINE_CANCELLED,
            format!("the removal of store {id} was cancelled; the store stays"),
        );
        scope.write_status(draft.finish(tikv)).await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }

    // The Pod: created, restarted safely when outdated, and the restart finished afterwards.
    let mut requeue = None;
    let synced: (bool, &str, String) = match &existing_pod {
        None => {
            scope.create_pod(&desired_pod).await?;
            requeue = Some(Duration::from_secs(2));
            (
                false,
                reasons::POD_NOT_CREATED,
                "the Pod is being created".into(),
            )
        }
        Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
            requeue = Some(Duration::from_secs(2));
            (
                false,
                reasons::POD_TERMINATING,
                "the Pod is terminating; it is recreated once gone".into(),
            )
        }
        Some(pod) if !build::pod_is_current(pod, &desired_pod) => {
            let (wait, reason, message) = restart(&scope, &mut draft, &view, lookup, pod).await?;
            requeue = Some(wait);
            (false, reason, message)
        }
        Some(pod) => {
            let (done, message) = finish_restart(&scope, &mut draft, &view, store, pod).await?;
            if done {
                (true, reasons::SYNCED, message)
            } else {
                requeue = Some(Duration::from_secs(2));
                (false, REASON_WAITING_FOR_STORE, message)
            }
        }
    };
    draft.set(conditions::SYNCED, synced.0, synced.1, synced.2);

    if let (Some(pod), Ok(view), Some(info)) = (&existing_pod, &view, store)
        && info.is_up()
        && is_ready(pod)
    {
        sync_labels(&scope, &view.replication, info, pod).await?;
    }

    set_ready(&mut draft, existing_pod.as_ref(), &view, lookup);
    if conditions::find(&draft.status.common.conditions, conditions::SUSPENDED).is_some() {
        draft.set(
            conditions::SUSPENDED,
            false,
            reasons::UNSUSPENDED,
            "the Pod runs again",
        );
    }
    let ready = conditions::is_true(&draft.status.common.conditions, conditions::READY);
    scope.write_status(draft.finish(tikv)).await?;
    Ok(Action::requeue(requeue.unwrap_or(if ready {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    })))
}

/// What PD says of the instance's store: found by the store ID recorded in its status, or at
/// its address before one is recorded. `None` when PD could not be asked.
fn lookup<'a>(tikv: &TiKV, view: &'a Result<PdView, String>) -> Option<StoreLookup<'a>> {
    let recorded = store::recorded_id(tikv.status.as_ref().map_or("", |s| s.id.as_str()));
    let address = build::store_address(tikv);
    view.as_ref()
        .ok()
        .map(|v| store::lookup(&v.stores, recorded, &address))
}

/// Creates the instance's PVCs that do not exist. Never for a store on its way out: its PVCs go
/// once the store is removed.
async fn ensure_pvcs(scope: &Scope<'_>) -> Result<(), Error> {
    let cached = &scope.ctx.caches.pvcs;
    create_missing(
        &Api::<PersistentVolumeClaim>::namespaced(scope.ctx.client.clone(), &scope.namespace),
        MANAGER,
        build::pvcs(scope.tikv)?,
        |pvc| cache::get(cached, &scope.namespace, &pvc.name_any()).is_some(),
    )
    .await
    .map_err(Error::kube("creating the PVCs"))?;
    Ok(())
}

/// One step of restarting an outdated Pod; returns when to look again and the `Synced` reason
/// and message.
async fn restart(
    scope: &Scope<'_>,
    draft: &mut Draft,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    pod: &Pod,
) -> Result<(Duration, &'static str, String), Error> {
    let (view, lookup) = match (view, lookup) {
        (Ok(view), Some(lookup)) => (view, lookup),
        _ => {
            let error = view.as_ref().err().map_or("no answer", String::as_str);
            return Ok((
                Duration::from_secs(5),
                REASON_PD_UNREACHABLE,
                format!(
                    "the Pod is outdated but cannot be restarted safely: PD is unreachable: {error}"
                ),
            ));
        }
    };
    let store = lookup.info();
    let down_peer_stores = if store.is_some_and(|s| s.is_up()) {
        match scope.pd.down_peer_regions().await {
            Ok(regions) => regions.stores_with_down_peers(),
            Err(error) => {
                return Ok((
                    Duration::from_secs(5),
                    REASON_PD_UNREACHABLE,
                    format!(
                        "the Pod is outdated but PD cannot tell which stores have down peers: {error}"
                    ),
                ));
            }
        }
    } else {
        Vec::new()
    };
    let started = scope.tikv.annotations().get(ANNO_EVICTION_STARTED);
    let started_ms = started
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.as_millisecond());
    let evicting = store.is_some_and(|s| view.is_evicting(s.store.id));
    let timeout = scope.ctx.leader_eviction_timeout;
    let mut input = RestartInput {
        store: lookup,
        evicting,
        down_peer_stores: &down_peer_stores,
        other_up_stores: view
            .stores
            .stores
            .iter()
            .filter(|s| s.is_up() && Some(s.store.id) != store.map(|m| m.store.id))
            .count(),
        eviction_started_ms: started_ms,
        now_ms: draft.now.as_millisecond(),
        timeout,
    };
    let mut step = store::restart_step(&input);
    let id = store.map(|s| s.store.id).unwrap_or_default();
    if step == RestartStep::StartEviction {
        let now = draft.now;
        scope
            .set_annotation(ANNO_EVICTION_STARTED, Some(now.to_string()))
            .await?;
        input.eviction_started_ms = Some(now.as_millisecond());
        step = store::restart_step(&input);
    }
    match step {
        RestartStep::StartEviction => Err(Error::Invalid(
            "the leader-eviction start was not recorded".into(),
        )),
        RestartStep::StoreNotFound(id) => Ok((
            Duration::from_secs(5),
            store::HOLD_STORE_NOT_FOUND,
            format!(
                "the Pod is outdated but PD does not list store {id}, the store this instance recorded; it is not restarted until PD reports the store again"
            ),
        )),
        RestartStep::BlockedByDownPeers(others) => {
            // Hold without evicting: the store keeps serving while it waits.
            if evicting {
                scope
                    .remove_scheduler(id, "the restart waits for down peers elsewhere")
                    .await?;
            }
            if started.is_some() {
                scope.set_annotation(ANNO_EVICTION_STARTED, None).await?;
            }
            let message = format!(
                "stores {} have down peers; restarting store {id} now could leave Regions without a quorum. The restart waits (no timeout) until they recover",
                store::describe_stores(&others, Some(&view.stores))
            );
            if draft.reason(conditions::SYNCED).as_deref() != Some(REASON_DOWN_PEERS_ELSEWHERE) {
                scope
                    .ctx
                    .events
                    .warning(
                        scope.tikv,
                        REASON_DOWN_PEERS_ELSEWHERE,
                        "Restart",
                        message.clone(),
                    )
                    .await;
            }
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_NOT_EVICTING,
                "the restart waits for down peers on other stores before evicting",
            );
            Ok((Duration::from_secs(5), REASON_DOWN_PEERS_ELSEWHERE, message))
        }
        RestartStep::AddScheduler => {
            scope
                .pd
                .add_evict_leader_scheduler(id)
                .await
                .map_err(scope.pd_error())?;
            scope.ctx.pd_changed(&scope.pd);
            let leaders = store.map(|s| s.status.leader_count).unwrap_or_default();
            scope
                .ctx
                .events
                .normal(
                    scope.tikv,
                    REASON_EVICTING,
                    "Restart",
                    format!(
                        "evicting {leaders} leaders from store {id} before restarting its Pod (at most {})",
                        duration::format(timeout)
                    ),
                )
                .await;
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_EVICTING,
                format!(
                    "evicting the leaders of store {id} before the restart; waiting at most {}",
                    duration::format(timeout)
                ),
            );
            Ok((
                Duration::from_secs(1),
                reasons::POD_NOT_UP_TO_DATE,
                "evicting the store's leaders before restarting the Pod".into(),
            ))
        }
        RestartStep::WaitForLeaders { leaders, waited } => {
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_EVICTING,
                format!(
                    "{leaders} leaders left on store {id}; the restart waits for them at most {} (since {})",
                    duration::format(timeout),
                    started.cloned().unwrap_or_default()
                ),
            );
            let left = timeout.saturating_sub(waited);
            Ok((
                left.clamp(Duration::from_millis(200), Duration::from_secs(1)),
                reasons::POD_NOT_UP_TO_DATE,
                "waiting for the store's leaders to move away before restarting the Pod".into(),
            ))
        }
        RestartStep::Restart(cause) => {
            let regions = store.map(|s| s.status.region_count).unwrap_or_default();
            let pod_grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds);
            let grace = store::restart_grace_period(regions, pod_grace);
            let why = match &cause {
                RestartCause::LeadersEvicted => {
                    draft.set(
                        conditions::LEADERS_EVICTED,
                        true,
                        REASON_EVICTED,
                        format!("every leader left store {id}; the Pod restarts"),
                    );
                    "its leaders were evicted".to_string()
                }
                RestartCause::TimedOut { leaders } => {
                    let message = format!(
                        "{leaders} leaders were still on store {id} after {}; the Pod restarts anyway",
                        duration::format(timeout)
                    );
                    scope
                        .ctx
                        .events
                        .warning(
                            scope.tikv,
                            REASON_EVICTION_TIMED_OUT,
                            "Restart",
                            message.clone(),
                        )
                        .await;
                    draft.set(
                        conditions::LEADERS_EVICTED,
                        false,
                        REASON_EVICTION_TIMED_OUT,
                        message,
                    );
                    format!("the leader-eviction wait timed out with {leaders} leaders left")
                }
                RestartCause::NotServing(state) => {
                    format!("{state}, so it has no leaders to evict")
                }
                RestartCause::NoOtherStore => {
                    "no other store is Up to take its leaders, so none are evicted".to_string()
                }
            };
            let params = DeleteParams {
                grace_period_seconds: u32::try_from(grace).ok(),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            scope
                .pods()
                .delete(&pod.name_any(), &params)
                .await
                .map_err(Error::kube("deleting the outdated Pod"))?;
            info!(grace, why, "deleted outdated TiKV Pod");
            scope
                .ctx
                .events
                .normal(
                    scope.tikv,
                    "PodRestarted",
                    "Restart",
                    format!(
                        "recreating the Pod with the new template: {why}; grace period {grace}s for {regions} Regions"
                    ),
                )
                .await;
            Ok((
                Duration::from_secs(2),
                reasons::POD_NOT_UP_TO_DATE,
                "the Pod is being recreated with the new template".into(),
            ))
        }
    }
}

/// With a current Pod: once it is ready and its store serves, any evict-leader scheduler for the
/// store goes (the restart is over, whoever started it) and so does the record of the wait.
/// Returns whether nothing is left to do, and a message.
async fn finish_restart(
    scope: &Scope<'_>,
    draft: &mut Draft,
    view: &Result<PdView, String>,
    store: Option<&StoreInfo>,
    pod: &Pod,
) -> Result<(bool, String), Error> {
    let recorded = scope.tikv.annotations().contains_key(ANNO_EVICTION_STARTED);
    let view = match view {
        Ok(view) => view,
        Err(error) if recorded => {
            return Ok((
                false,
                format!(
                    "the Pod was restarted; PD is unreachable, so the evict-leader scheduler stays until it answers: {error}"
                ),
            ));
        }
        Err(_) => return Ok((true, "the Pod is up to date".into())),
    };
    let evicting = store.is_some_and(|s| view.is_evicting(s.store.id));
    if !recorded && !evicting {
        return Ok((true, "the Pod is up to date".into()));
    }
    let serving = store.is_some_and(StoreInfo::is_up) && is_ready(pod);
    if !serving {
        return Ok((
            false,
            "the Pod was restarted; waiting for the store to serve again before leaders may return"
                .into(),
        ));
    }
    let id = store.map(|s| s.store.id).unwrap_or_default();
    if evicting {
        scope
            .remove_scheduler(id, "the store serves again after its restart")
            .await?;
    }
    if recorded {
        scope.set_annotation(ANNO_EVICTION_STARTED, None).await?;
    }
    let last = if draft.reason(conditions::LEADERS_EVICTED).as_deref()
        == Some(REASON_EVICTION_TIMED_OUT)
    {
        " (the last restart went ahead after the leader-eviction timeout)"
    } else {
        ""
    };
    draft.set(
        conditions::LEADERS_EVICTED,
        false,
        REASON_NOT_EVICTING,
        format!("store {id} serves again and takes leaders{last}"),
    );
    Ok((true, "the Pod is up to date".into()))
}

/// Pushes the Node's location labels to the store when they differ.
async fn sync_labels(
    scope: &Scope<'_>,
    replication: &ReplicationConfig,
    info: &StoreInfo,
    pod: &Pod,
) -> Result<(), Error> {
    let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(());
    };
    if replication.location_labels.is_empty() {
        return Ok(());
    }
    let Some(node) = scope.ctx.nodes.get(&ObjectRef::new(&node_name)) else {
        return Ok(());
    };
    let desired = store::desired_labels(&replication.location_labels, node.labels());
    let missing = store::labels_to_set(info, &desired);
    if missing.is_empty() {
        return Ok(());
    }
    let id = info.store.id;
    scope
        .pd
        .set_store_labels(id, &missing)
        .await
        .map_err(scope.pd_error())?;
    scope.ctx.pd_changed(&scope.pd);
    let text = missing
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    info!(store_id = id, labels = text, "set store labels");
    scope
        .ctx
        .events
        .normal(
            scope.tikv,
            "StoreLabelsSet",
            "Labels",
            format!("store {id} labelled {text} from Node {node_name}"),
        )
        .await;
    Ok(())
}

/// `Ready`: the Pod is ready and the store is Up in PD.
fn set_ready(
    draft: &mut Draft,
    pod: Option<&Pod>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
) {
    let (ready, reason, message) = match pod {
        None => (
            false,
            reasons::POD_NOT_CREATED,
            "the Pod does not exist yet".to_string(),
        ),
        Some(p) if p.metadata.deletion_timestamp.is_some() => (
            false,
            reasons::POD_TERMINATING,
            "the Pod is terminating".into(),
        ),
        Some(p) if !is_ready(p) => (false, reasons::POD_NOT_READY, not_ready_message(p)),
        Some(_) => match (view, lookup.unwrap_or(StoreLookup::NeverRegistered)) {
            // A PD that cannot be asked for a moment does not make a ready store unready.
            (Err(_), _)
                if conditions::is_true(&draft.status.common.conditions, conditions::READY) =>
            {
                return;
            }
            (Err(error), _) => (
                false,
                REASON_PD_UNREACHABLE,
                format!("PD cannot be asked about this store: {error}"),
            ),
            (Ok(_), StoreLookup::NeverRegistered) => (
                false,
                REASON_STORE_NOT_SERVING,
                "the store has not registered with PD yet".to_string(),
            ),
            (Ok(_), StoreLookup::Unlisted(id)) => (
                false,
                store::HOLD_STORE_NOT_FOUND,
                format!("PD does not list store {id}, the store this instance recorded"),
            ),
            (Ok(_), StoreLookup::Listed(info)) if !info.is_up() => (
                false,
                REASON_STORE_NOT_SERVING,
                format!("store {} is {}", info.store.id, info.store.state_name),
            ),
            (Ok(_), StoreLookup::Listed(info)) => (
                true,
                reasons::READY,
                format!("store {} is Up", info.store.id),
            ),
        },
    };
    draft.set(conditions::READY, ready, reason, message);
}

/// How a removal ends once the store, its Pod and its PVCs are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finish {
    /// Scale-in: the instance is deleted.
    DeleteInstance,
    /// The instance is being deleted: its finalizer is released.
    ReleaseFinalizer,
}

/// Removes an instance's store: for a scale-in (the instance is marked, or PD removed its store)
/// and for a user's deletion of the instance alike, as [`store::removal_step`] decides. The
/// store is taken offline through PD; only once PD reports its recorded ID Tombstone do the Pod,
/// then the PVCs, then the instance go. Anything else PD says, or does not say, keeps them.
async fn remove_store(
    scope: &Scope<'_>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    pod: Option<&Pod>,
    desired_pod: Option<&Pod>,
    finish: Finish,
) -> Result<Action, Error> {
    let tikv = scope.tikv;
    let mut draft = Draft::new(tikv);
    draft.store(lookup.and_then(|l| l.info()));
    if tikv.annotations().contains_key(ANNO_EVICTION_STARTED) {
        scope.set_annotation(ANNO_EVICTION_STARTED, None).await?;
    }
    let pd = match (view, lookup) {
        (Ok(_), Some(lookup)) => Ok(lookup),
        (Err(error), _) => Err(error.as_str()),
        (Ok(_), None) => Err("no answer"),
    };
    let evicting = match (view, lookup.and_then(|l| l.info())) {
        (Ok(view), Some(info)) => view.is_evicting(info.store.id),
        _ => false,
    };
    let recorded_removed = tikv
        .status
        .as_ref()
        .is_some_and(|s| s.state == operator_api::core::STORE_STATE_REMOVED);
    let step = store::removal_step(&RemovalInput {
        pd,
        recorded_removed,
        evicting,
        pod: PodPresence::of(pod),
    });
    let topic = match finish {
        Finish::DeleteInstance => "ScaleIn",
        Finish::ReleaseFinalizer => "Delete",
    };
    match step {
        RemovalStep::Hold { reason, message } => {
            if draft.reason(conditions::OFFLINED).as_deref() != Some(reason) {
                scope
                    .ctx
                    .events
                    .warning(tikv, reason, topic, message.clone())
                    .await;
            }
            draft.set(conditions::OFFLINED, false, reason, &message);
            draft.set(conditions::SYNCED, false, reason, message);
            scope.write_status(draft.finish(tikv)).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        RemovalStep::RemoveScheduler(id) => {
            scope
                .remove_scheduler(id, "the store is being removed")
                .await?;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        RemovalStep::TakeOffline(id) => {
            let regions = lookup
                .and_then(|l| l.info())
                .map(|s| s.status.region_count)
                .unwrap_or_default();
            let deleted = scope.pd.delete_store(id).await;
            scope.ctx.pd_changed(&scope.pd);
            match deleted {
                Ok(()) => {
                    scope
                        .ctx
                        .events
                        .normal(
                            tikv,
                            REASON_STORE_REMOVING,
                            topic,
                            format!(
                                "store {id} taken offline through PD; its {regions} Regions move to other stores"
                            ),
                        )
                        .await;
                    let message =
                        format!("store {id} is being removed; {regions} Regions left on it");
                    draft.set(conditions::OFFLINED, false, REASON_STORE_REMOVING, &message);
                    draft.set(conditions::SYNCED, false, REASON_STORE_REMOVING, message);
                    scope.write_status(draft.finish(tikv)).await?;
                    Ok(Action::requeue(Duration::from_secs(2)))
                }
                Err(error) if error.status().is_some_and(|s| (400..500).contains(&s)) => {
                    let message = format!("PD refuses to take store {id} offline: {error}");
                    if draft.reason(conditions::OFFLINED).as_deref()
                        != Some(REASON_STORE_REMOVAL_REFUSED)
                    {
                        scope
                            .ctx
                            .events
                            .warning(tikv, REASON_STORE_REMOVAL_REFUSED, topic, message.clone())
                            .await;
                    }
                    draft.set(
                        conditions::OFFLINED,
                        false,
                        REASON_STORE_REMOVAL_REFUSED,
                        &message,
                    );
                    draft.set(
                        conditions::SYNCED,
                        false,
                        REASON_STORE_REMOVAL_REFUSED,
                        message,
                    );
                    scope.write_status(draft.finish(tikv)).await?;
                    Ok(Action::requeue(Duration::from_secs(15)))
                }
                Err(error) => Err(scope.pd_error()(error)),
            }
        }
        RemovalStep::WaitForTombstone { id, regions } => {
            // Keep the store's Pod while its Regions move away.
            if let (None, Some(desired)) = (pod, desired_pod) {
                scope.create_pod(desired).await?;
            }
            let message = format!("store {id} is being removed; {regions} Regions left on it");
            draft.set(conditions::OFFLINED, false, REASON_STORE_REMOVING, &message);
            draft.set(conditions::READY, false, REASON_STORE_REMOVING, &message);
            draft.set(conditions::SYNCED, false, REASON_STORE_REMOVING, message);
            scope.write_status(draft.finish(tikv)).await?;
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        RemovalStep::DeletePod | RemovalStep::WaitForPod | RemovalStep::DeletePvcs => {
            let id = draft.status.id.clone();
            let was_removed =
                draft.reason(conditions::OFFLINED).as_deref() == Some(REASON_STORE_REMOVED);
            let message = if id.is_empty() {
                "the store never registered with PD; its Pod, PVCs and instance go".to_string()
            } else {
                format!("store {id} is removed from PD (Tombstone); its Pod, PVCs and instance go")
            };
            draft.set(conditions::OFFLINED, true, REASON_STORE_REMOVED, &message);
            draft.set(conditions::READY, false, REASON_STORE_REMOVED, &message);
            draft.set(conditions::SYNCED, false, REASON_STORE_REMOVED, &message);
            if !was_removed {
                scope
                    .ctx
                    .events
                    .normal(tikv, REASON_STORE_REMOVED, topic, message)
                    .await;
            }
            scope.write_status(draft.finish(tikv)).await?;
            if finish == Finish::DeleteInstance
                && !tikv.annotations().contains_key(keys::ANNO_DEFER_DELETE)
            {
                // PD removed the store by other means: the instance is on its way out for good
                // (and the group, seeing the store Removed, does not take the mark back).
                scope
                    .set_annotation(keys::ANNO_DEFER_DELETE, Some(keys::ANNO_TRUE.into()))
                    .await?;
            }
            match step {
                RemovalStep::DeletePod => {
                    scope
                        .pods()
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the Pod of a removed store"))?;
                    info!("deleted the Pod of a removed store");
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
                RemovalStep::WaitForPod => return Ok(Action::requeue(Duration::from_secs(2))),
                _ => {}
            }
            if scope.delete_pvcs().await? {
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            match finish {
                Finish::DeleteInstance => {
                    Api::<TiKV>::namespaced(scope.ctx.client.clone(), &scope.namespace)
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the instance of a removed store"))?;
                    info!("store removed; instance deleted");
                    Ok(Action::requeue(Duration::from_secs(1)))
                }
                Finish::ReleaseFinalizer => release(tikv, scope.ctx).await,
            }
        }
    }
}

/// A deleted instance: its store is removed as in a scale-in ([`remove_store`]) when only it
/// goes (a user deleted it); with its group or Cluster going, PD is not asked and the PVCs stay.
/// Any evict-leader scheduler for its store goes either way.
async fn finalize(
    tikv: &TiKV,
    ctx: &Ctx,
    pd_url: Option<String>,
    only_this: bool,
) -> Result<Action, Error> {
    if !tikv.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = tikv.namespace().unwrap_or_default();
    let Some(pd_url) = pd_url else {
        if !only_this {
            return release(tikv, ctx).await;
        }
        let message = "cannot take the store out: the Cluster has no PD".to_string();
        write_status(
            tikv,
            ctx,
            shared_group::status_blocked(tikv, REASON_PD_NOT_FOUND, &message),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    let scope = Scope {
        tikv,
        ctx,
        namespace: namespace.clone(),
        name: tikv.name_any(),
        pd: ctx.pd(&namespace, &tikv.spec.cluster.name, pd_url)?,
        resource_version: Mutex::new(None),
    };
    let view = scope.ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tikv, &view);
    if only_this {
        let pod = cache::get(&ctx.caches.pods, &namespace, &scope.name);
        let desired = build::pod(tikv).ok();
        return remove_store(
            &scope,
            &view,
            lookup,
            pod.as_ref(),
            desired.as_ref(),
            Finish::ReleaseFinalizer,
        )
        .await;
    }
    if let (Ok(view), Some(info)) = (&view, lookup.and_then(|l| l.info()))
        && view.is_evicting(info.store.id)
    {
        scope
            .remove_scheduler(info.store.id, "its group or Cluster is deleted")
            .await?;
    }
    release(tikv, ctx).await
}

/// Takes the operator's finalizer off a deleted instance.
async fn release(tikv: &TiKV, ctx: &Ctx) -> Result<Action, Error> {
    finalize::set_finalizer(
        &Api::<TiKV>::namespaced(ctx.client.clone(), &tikv.namespace().unwrap_or_default()),
        tikv,
        false,
    )
    .await
    .map_err(Error::kube("removing the finalizer"))?;
    info!("TiKV instance released");
    Ok(Action::await_change())
}

/// Suspended compute: the Pod goes (the whole cluster stops, so no leaders are evicted), the
/// instance, its ConfigMap and PVCs stay, and the same store comes back when the Cluster resumes.
async fn suspend(scope: &Scope<'_>, pod: Option<&Pod>) -> Result<Action, Error> {
    let tikv = scope.tikv;
    if let Some(pod) = pod
        && pod.metadata.deletion_timestamp.is_none()
    {
        scope
            .pods()
            .delete(&pod.name_any(), &DeleteParams::default())
            .await
            .map_err(Error::kube("deleting the Pod to suspend"))?;
        scope
            .ctx
            .events
            .normal(
                tikv,
                reasons::SUSPENDING,
                "Suspend",
                "the Cluster suspends compute: removing the Pod, keeping its PVCs".into(),
            )
            .await;
    }
    let mut draft = Draft::new(tikv);
    let gone = pod.is_none();
    let (reason, message) = if gone {
        (
            reasons::SUSPENDED,
            "the Pod is removed; the instance and its PVCs are kept",
        )
    } else {
        (reasons::SUSPENDING, "the Pod is being removed")
    };
    draft.set(conditions::SUSPENDED, gone, reason, message);
    draft.set(conditions::READY, false, reason, message);
    scope.write_status(draft.finish(tikv)).await?;
    Ok(if gone {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(2))
    })
}

async fn write_status(tikv: &TiKV, ctx: &Ctx, status: TiKVStatus) -> Result<(), Error> {
    shared_group::write_own_status(&ctx.client, tikv, &status)
        .await
        .map_err(Error::kube("writing the TiKV status"))?;
    Ok(())
}
