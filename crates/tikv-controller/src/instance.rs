//! The TiKV instance rules: its ConfigMap, PVCs and Pod; the store it is in PD (ID, state,
//! labels from its Node); a restart that evicts the store's leaders first (bounded wait) and never
//! runs while another store has down peers; the leaders of a store on a cordoned Node evicted;
//! and removal through PD (Offline, then Tombstone) before the Pod, then the PVCs, then the
//! instance go.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, Look, reasons};
use operator_api::core::{Cluster, TiKV, TiKVGroup, TiKVStatus, TlsSecret};
use operator_api::keys;
use operator_runtime::apply::state_manager;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::instance_reconcile::{Blocked, Finished, InstanceRules, Prepared};
use operator_runtime::online_config::{self, ConfigStep, Recorder};
use operator_runtime::pod::is_ready;
use operator_runtime::reconcile::{Error, Started};
use operator_runtime::tls::SecretMount;
use operator_runtime::{expect, instance, node};
use pd_client::{PdClient, ReplicationConfig, StoreInfo};
use tracing::info;

mod config;
mod cordon;
mod removal;
mod restart;

use removal::{Finish, finalize, remove_store};
use restart::{finish_restart, restart};

use crate::build;
use crate::context::{Ctx, MANAGER};
use crate::cordon::{NeedInput, scheduler_need};
use crate::offline;
use crate::pd::{self, PdView};
use crate::ready;
use crate::store::{self, StoreLookup};

/// Annotation of a TiKV instance: when the leader-eviction wait of the current restart started
/// (RFC 3339). It is written before the evict-leader scheduler is added and removed after the
/// scheduler is, so a controller that restarts mid-way continues the same wait and finds every
/// scheduler it added.
pub const ANNO_EVICTION_STARTED: &str = "tikv.core.pingcap.com/leader-eviction-started-at";

/// Annotation of a TiKV instance: when the leader eviction for its cordoned Node started
/// (RFC 3339). Written before the evict-leader scheduler is added and removed after the
/// scheduler is, so the group's clean-up leaves that scheduler alone and a controller that
/// restarts finds it.
pub const ANNO_CORDON_EVICTION_STARTED: &str = "tikv.core.pingcap.com/cordon-eviction-started-at";

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
pub const REASON_STORE_NOT_SERVING: &str = store::STORE_NOT_SERVING;
/// Reason: after a restart, the store has not served again yet.
pub const REASON_WAITING_FOR_STORE: &str = "WaitingForStore";
/// `Offlined` reason: PD is moving the store's Regions away.
pub const REASON_STORE_REMOVING: &str = "StoreRemoving";
/// `Offlined` reason: PD removed the store (Tombstone).
pub const REASON_STORE_REMOVED: &str = "StoreRemoved";
/// `Offlined` reason: PD refused to take the store offline.
pub const REASON_STORE_REMOVAL_REFUSED: &str = "StoreRemovalRefused";
/// Event reason: the instance went with its group or Cluster; its store and PVCs stay.
pub const REASON_DATA_KEPT: &str = "DataKept";
/// `Offlined` reason: the removal was cancelled; the store is Up again.
pub const REASON_OFFLINE_CANCELLED: &str = "OfflineCancelled";

/// The TiKV instance rules on the runtime's instance reconciler.
pub struct Rules;

impl InstanceRules for Rules {
    type Instance = TiKV;
    type Group = TiKVGroup;
    type Ctx = Ctx;
    /// PD's URL.
    type Inputs = String;

    const MANAGER: &'static str = MANAGER;
    const METRIC: &'static str = "tikv";
    const KEPT: &'static str = "the instance and its PVCs";

    fn instances(ctx: &Ctx) -> &Store<TiKV> {
        &ctx.instances
    }

    fn groups(ctx: &Ctx) -> &Store<TiKVGroup> {
        &ctx.groups
    }

    async fn finalize(
        ctx: &Ctx,
        tikv: &TiKV,
        start: &Started,
        alone: bool,
    ) -> Result<Finished<TiKVStatus>, Error> {
        let cluster = start.cluster.as_deref();
        let pd_url = pd_url_of(ctx, tikv, cluster);
        finalize(tikv, ctx, pd_url, Dns::of(cluster), alone).await
    }

    async fn inputs(
        ctx: &Ctx,
        tikv: &TiKV,
        cluster: &Cluster,
        _: Option<&TiKVGroup>,
        _: Option<&Pod>,
    ) -> Result<Result<String, Blocked>, Error> {
        Ok(pd_url_of(ctx, tikv, Some(cluster)).ok_or_else(|| Blocked {
            reason: REASON_PD_NOT_FOUND,
            message: format!(
                "Cluster {} has no PD yet (no status.pd and no PDGroup); the store waits for one",
                tikv.spec.cluster.name
            ),
            then: Action::requeue(Duration::from_secs(15)),
        }))
    }

    const CLUSTER_TLS_DIR: &'static str = build::CLUSTER_TLS_DIR;

    fn cluster_tls(tikv: &TiKV) -> Option<&TlsSecret> {
        let security = tikv.spec.template.security.as_ref()?;
        Some(&security.tls.as_ref()?.cluster.as_ref()?.secret)
    }

    fn config_map(
        tikv: &TiKV,
        cluster: &Cluster,
        pd_url: &String,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError> {
        let dns = Dns::of_spec(&cluster.spec);
        build::config_map(tikv, build::config(tikv, &dns, pd_url, mounts)?)
    }

    fn pod(tikv: &TiKV, _: &String) -> Result<Pod, BuildError> {
        build::pod(tikv)
    }

    fn pod_inputs(_: &String) -> serde_json::Value {
        serde_json::Value::Null
    }

    async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiKVStatus>, Error> {
        act(ctx, prepared).await
    }
}

/// PD's URL for the instance: the Cluster's status, else its PD groups' client Services.
fn pd_url_of(ctx: &Ctx, tikv: &TiKV, cluster: Option<&Cluster>) -> Option<String> {
    let namespace = tikv.namespace().unwrap_or_default();
    let pd_groups = ctx.caches.pd_groups_of(&namespace, &tikv.spec.cluster.name);
    pd::pd_url(cluster, &pd_groups, &namespace)
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
        let look = Look {
            generation: self.generation,
            now: self.now,
        };
        look.set(
            &mut self.status.common.conditions,
            type_,
            ok,
            reason,
            message,
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
    /// How the Cluster names its hosts (the store's address in PD, its status URL).
    dns: Dns,
    /// The instance's resourceVersion after this reconcile's own annotation patches, so its
    /// status write is not refused as stale because of them.
    resource_version: Mutex<Option<String>>,
}

impl<'a> Scope<'a> {
    /// The scope of a reconcile of `tikv`, whose Cluster's PD is at `pd_url` and whose hosts
    /// are named as `dns` says.
    fn new(tikv: &'a TiKV, ctx: &'a Ctx, pd_url: String, dns: Dns) -> Result<Scope<'a>, Error> {
        let namespace = tikv.namespace().unwrap_or_default();
        Ok(Scope {
            pd: ctx.pd(&namespace, &tikv.spec.cluster.name, pd_url)?,
            dns,
            tikv,
            ctx,
            name: tikv.name_any(),
            namespace,
            resource_version: Mutex::new(None),
        })
    }

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

    /// The end of this reconcile: `status` written as of this reconcile's own patches, then
    /// `then`.
    fn finished(&self, status: TiKVStatus, then: Action) -> Finished<TiKVStatus> {
        let version = self.resource_version.lock().ok().and_then(|v| v.clone());
        Finished::with(status, then).as_of(version)
    }

    async fn remove_scheduler(&self, store_id: u64, why: &str, action: &str) -> Result<(), Error> {
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
                action,
                format!("store {store_id}: evict-leader scheduler removed ({why})"),
            )
            .await;
        Ok(())
    }

    async fn create_pod(&self, pod: &Pod) -> Result<(), Error> {
        instance::create_pod(self.ctx, MANAGER, self.tikv, pod).await
    }

    /// Deletes the PVCs of the instance; whether any was left.
    async fn delete_pvcs(&self) -> Result<bool, Error> {
        instance::delete_pvcs(self.ctx, self.tikv).await
    }
}

/// The store's removal when it is marked or PD removed it; otherwise the Pod created,
/// restarted safely or sent its online config, the store's labels kept in line with its Node,
/// and the status observed from the Pod and PD.
async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiKVStatus>, Error> {
    let Prepared {
        instance: tikv,
        cluster,
        inputs: pd_url,
        desired: desired_pod,
        pod: existing_pod,
        ..
    } = prepared;
    if tikv.spec.offline == Some(true) {
        // Taken over as this operator's mark first; the next look asks PD and removes the store.
        offline::take_over(ctx, tikv).await?;
        return Ok(Finished::then(Action::requeue(Duration::from_secs(1))));
    }
    let scope = Scope::new(tikv, ctx, pd_url, Dns::of_spec(&cluster.spec))?;
    let view = scope.ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tikv, &scope.dns, &view);
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
        return Ok(scope.finished(draft.finish(tikv), Action::requeue(Duration::from_secs(1))));
    }

    // The Pod: created, restarted safely when outdated (or for config keys that cannot change
    // online), the restart finished afterwards, and online config changes sent once it serves.
    let recorder = Recorder::new(&ctx.client, tikv, &ctx.expectations);
    let config_step = config::step(&scope, &recorder, existing_pod.as_ref());
    let restart_for = match &config_step {
        ConfigStep::Restart(keys) => Some(keys.as_slice()),
        _ => None,
    };
    // Who needs the store's evict-leader scheduler: the one answer that every step below which
    // could remove it follows.
    let node = node::pod_node(&ctx.nodes, existing_pod.as_ref());
    let live_pod = existing_pod
        .as_ref()
        .filter(|p| p.metadata.deletion_timestamp.is_none());
    let need = scheduler_need(&NeedInput {
        restart_recorded: tikv.annotations().contains_key(ANNO_EVICTION_STARTED),
        pod_outdated: live_pod
            .is_some_and(|p| !build::pod_is_current(p, &desired_pod) || restart_for.is_some()),
        cordon_recorded: tikv
            .annotations()
            .contains_key(ANNO_CORDON_EVICTION_STARTED),
        node: &node,
        serving: live_pod.is_some_and(|p| cordon::serving(store, p)),
    });
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
        Some(pod) if !build::pod_is_current(pod, &desired_pod) || restart_for.is_some() => {
            if let Some(keys) = restart_for {
                let change = online_config::restart_status(keys, &tikv.spec.template.common.config);
                draft.status.last_config_change = Some(change);
            }
            let (wait, reason, message) =
                restart(&scope, &mut draft, &view, lookup, pod, need).await?;
            requeue = Some(wait);
            (false, reason, message)
        }
        Some(pod) => {
            let (done, message) =
                finish_restart(&scope, &mut draft, &view, store, pod, need).await?;
            if !done {
                requeue = Some(Duration::from_secs(2));
                (false, REASON_WAITING_FOR_STORE, message)
            } else if let Some((wait, pending)) =
                config::apply(&scope, &recorder, &mut draft, &config_step, store, pod).await?
            {
                requeue = Some(wait);
                (false, online_config::REASON_CONFIG_PENDING, pending)
            } else {
                (true, reasons::SYNCED, message)
            }
        }
    };
    draft.set(conditions::SYNCED, synced.0, synced.1, synced.2);

    // A restart moves the leaders itself; otherwise a cordoned Node gets them moved.
    if !need.restart
        && let Some(wait) = cordon::cordon(&scope, &mut draft, &view, lookup, &node, need).await?
    {
        requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait)));
    }

    if let (Some(pod), Ok(view), Some(info)) = (&existing_pod, &view, store)
        && info.is_up()
        && is_ready(pod)
    {
        sync_labels(&scope, &view.replication, info, pod).await?;
    }

    // With `UseTiKVReadyAPI`, a ready Pod whose store is Up is asked whether it is ready.
    let ready_api = match (&existing_pod, store) {
        (Some(pod), Some(info)) if ready::tikv(tikv) && info.is_up() && is_ready(pod) => Some(
            ready::ready_api_said(ready_answer(&scope).await, ready::TIKV_PATH),
        ),
        _ => None,
    };
    set_ready(&mut draft, existing_pod.as_ref(), &view, lookup, ready_api);
    if conditions::find(&draft.status.common.conditions, conditions::SUSPENDED).is_some() {
        draft.set(
            conditions::SUSPENDED,
            false,
            reasons::UNSUSPENDED,
            "the Pod runs again",
        );
    }
    let ready = conditions::is_true(&draft.status.common.conditions, conditions::READY);
    let then = Action::requeue(requeue.unwrap_or(if ready {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }));
    Ok(scope.finished(draft.finish(tikv), then))
}

/// `GET /ready` of the instance's status port.
async fn ready_answer(scope: &Scope<'_>) -> Result<bool, String> {
    let tikv = scope.tikv;
    let url = scope
        .ctx
        .status_url(tikv, build::status_url(tikv, &scope.dns));
    let client = scope.ctx.status_of(tikv).map_err(|e| e.to_string())?;
    client
        .tikv_ready(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// What PD says of the instance's store: found by the store ID recorded in its status, or at
/// its address before one is recorded. `None` when PD could not be asked.
fn lookup<'a>(tikv: &TiKV, dns: &Dns, view: &'a Result<PdView, String>) -> Option<StoreLookup<'a>> {
    let recorded = store::recorded_id(tikv.status.as_ref().map_or("", |s| s.id.as_str()));
    let address = build::store_address(tikv, dns);
    view.as_ref()
        .ok()
        .map(|v| store::lookup(&v.stores, recorded, &address))
}

/// Creates the instance's PVCs that do not exist. Never for a store on its way out: its PVCs go
/// once the store is removed.
async fn ensure_pvcs(scope: &Scope<'_>) -> Result<(), Error> {
    instance::create_pvcs(scope.ctx, MANAGER, scope.tikv, build::pvcs(scope.tikv)?).await
}

/// Pushes the template's `server.labels`, the Node's location labels and the placement labels
/// (the group's, and `$k/exclusive` with `placement.exclusive`) to the store when they differ,
/// and deletes the exclusive label once the template stops asking for it.
async fn sync_labels(
    scope: &Scope<'_>,
    replication: &ReplicationConfig,
    info: &StoreInfo,
    pod: &Pod,
) -> Result<(), Error> {
    let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(());
    };
    let location = if replication.location_labels.is_empty() {
        BTreeMap::new()
    } else {
        // Without the Node the location is unknown; the user's labels wait for it too, so a
        // store never gets them with its location missing.
        let Some(node) = scope.ctx.nodes.get(&ObjectRef::new(&node_name)) else {
            return Ok(());
        };
        store::desired_labels(&replication.location_labels, node.labels())
    };
    let template = &scope.tikv.spec.template;
    let exclusive = template
        .placement
        .as_ref()
        .is_some_and(|p| p.exclusive == Some(true));
    let group = scope
        .tikv
        .labels()
        .get(keys::LABEL_GROUP)
        .map(String::as_str);
    let mut desired = store::store_labels(&template.server.labels, location);
    desired.extend(store::placement_labels(&scope.namespace, group, exclusive));
    let id = info.store.id;
    if store::stale_exclusive_label(info, exclusive) {
        let key = store::PLACEMENT_EXCLUSIVE_LABEL;
        scope
            .pd
            .delete_store_label(id, key)
            .await
            .map_err(scope.pd_error())?;
        scope.ctx.pd_changed(&scope.pd);
        info!(store_id = id, label = key, "deleted store label");
        scope
            .ctx
            .events
            .normal(
                scope.tikv,
                "StoreLabelDeleted",
                "Labels",
                format!("store {id}: label {key} deleted (placement.exclusive is off)"),
            )
            .await;
    }
    let missing = store::labels_to_set(info, &desired);
    if missing.is_empty() {
        return Ok(());
    }
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
            format!("store {id} labelled {text} (Node {node_name})"),
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
    ready_api: Option<ready::Said>,
) {
    let was_ready = conditions::is_true(&draft.status.common.conditions, conditions::READY);
    let verdict = ready::verdict(was_ready, pod, view, lookup, ready_api);
    if let Some((ready, reason, message)) = verdict {
        draft.set(conditions::READY, ready, reason, message);
    }
}
