//! The TiFlash instance rules: its ConfigMap (server and proxy config), PVCs and Pod; the store
//! it is in PD (found by the store ID it recorded, by its proxy address only the first time;
//! labels from its Node); an outdated Pod recreated only while no other store has down peers;
//! and removal through PD (Offline, then Tombstone) before the Pod, then the PVCs, then the
//! instance go. A TiFlash store holds learner replicas and no leaders, so no leader is evicted.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, Look, reasons};
use operator_api::core::{Cluster, TiFlash, TiFlashGroup, TiFlashStatus, TlsSecret};
use operator_api::keys;
use operator_runtime::apply::state_manager;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::instance_reconcile::{Blocked, Finished, InstanceRules, Prepared};
use operator_runtime::pod::is_ready;
use operator_runtime::reconcile::{Error, Started};
use operator_runtime::tls::SecretMount;
use operator_runtime::{cache, expect, instance};
use pd_client::{PdClient, StatusClient, StoreInfo};
use tracing::info;

use super::{Ctx, build};
use crate::context::MANAGER;
use crate::instance::{
    REASON_DOWN_PEERS_ELSEWHERE, REASON_OFFLINE_CANCELLED, REASON_PD_NOT_FOUND,
    REASON_STORE_REMOVAL_REFUSED, REASON_STORE_REMOVED, REASON_STORE_REMOVING,
};
use crate::offline;
use crate::pd::{self, PdView};
use crate::ready;
use crate::store::{self, PodPresence, RemovalInput, RemovalStep, StoreLookup};

/// `Ready` is false: PD lists the store Up, but TiFlash does not report its store `Running`.
pub const REASON_STORE_NOT_RUNNING: &str = "StoreNotRunning";

/// The TiFlash instance rules on the runtime's instance reconciler.
pub struct Rules;

impl InstanceRules for Rules {
    type Instance = TiFlash;
    type Group = TiFlashGroup;
    type Ctx = Ctx;
    /// PD's URL.
    type Inputs = String;

    const MANAGER: &'static str = MANAGER;
    const METRIC: &'static str = "tiflash";
    const KEPT: &'static str = "the instance and its PVCs";

    fn instances(ctx: &Ctx) -> &Store<TiFlash> {
        &ctx.instances
    }

    fn groups(ctx: &Ctx) -> &Store<TiFlashGroup> {
        &ctx.groups
    }

    async fn finalize(
        ctx: &Ctx,
        tiflash: &TiFlash,
        start: &Started,
        alone: bool,
    ) -> Result<Finished<TiFlashStatus>, Error> {
        let cluster = start.cluster.as_deref();
        let pd_url = pd_url_of(ctx, tiflash, cluster);
        finalize(tiflash, ctx, pd_url, Dns::of(cluster), alone).await
    }

    async fn inputs(
        ctx: &Ctx,
        tiflash: &TiFlash,
        cluster: &Cluster,
        _: Option<&TiFlashGroup>,
        _: Option<&Pod>,
    ) -> Result<Result<String, Blocked>, Error> {
        Ok(pd_url_of(ctx, tiflash, Some(cluster)).ok_or_else(|| Blocked {
            reason: REASON_PD_NOT_FOUND,
            message: format!(
                "Cluster {} has no PD yet (no status.pd and no PDGroup); the store waits for one",
                tiflash.spec.cluster.name
            ),
            then: Action::requeue(Duration::from_secs(15)),
        }))
    }

    const CLUSTER_TLS_DIR: &'static str = build::CLUSTER_TLS_DIR;

    fn cluster_tls(tiflash: &TiFlash) -> Option<&TlsSecret> {
        let security = tiflash.spec.template.security.as_ref()?;
        Some(&security.tls.as_ref()?.cluster.as_ref()?.secret)
    }

    fn config_map(
        tiflash: &TiFlash,
        cluster: &Cluster,
        pd_url: &String,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError> {
        let dns = Dns::of_spec(&cluster.spec);
        build::config_map(
            tiflash,
            build::config(tiflash, &dns, pd_url, mounts)?,
            build::proxy_config(tiflash, mounts)?,
        )
    }

    fn pod(tiflash: &TiFlash, _: &String) -> Result<Pod, BuildError> {
        build::pod(tiflash)
    }

    fn pod_inputs(_: &String) -> serde_json::Value {
        serde_json::Value::Null
    }

    async fn act(
        ctx: &Ctx,
        prepared: Prepared<'_, Rules>,
    ) -> Result<Finished<TiFlashStatus>, Error> {
        act(ctx, prepared).await
    }
}

/// PD's URL for the instance: the Cluster's status, else its PD groups' client Services.
fn pd_url_of(ctx: &Ctx, tiflash: &TiFlash, cluster: Option<&Cluster>) -> Option<String> {
    let namespace = tiflash.namespace().unwrap_or_default();
    let pd_groups = ctx
        .caches
        .pd_groups_of(&namespace, &tiflash.spec.cluster.name);
    pd::pd_url(cluster, &pd_groups, &namespace)
}

/// The instance's status as this reconcile builds it.
struct Draft {
    status: TiFlashStatus,
    generation: Option<i64>,
    now: Timestamp,
}

impl Draft {
    fn new(tiflash: &TiFlash) -> Self {
        Draft {
            status: tiflash.status.clone().unwrap_or_default(),
            generation: tiflash.metadata.generation,
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

    fn finish(mut self, tiflash: &TiFlash) -> TiFlashStatus {
        self.status.common.observed_generation = self.generation.unwrap_or_default();
        self.status.common.current_revision = tiflash
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
    tiflash: &'a TiFlash,
    ctx: &'a Ctx,
    namespace: String,
    name: String,
    pd: PdClient,
    dns: Dns,
}

impl<'a> Scope<'a> {
    fn new(tiflash: &'a TiFlash, ctx: &'a Ctx, pd_url: String, dns: Dns) -> Result<Self, Error> {
        let namespace = tiflash.namespace().unwrap_or_default();
        Ok(Scope {
            pd: ctx.pd(&namespace, &tiflash.spec.cluster.name, pd_url)?,
            dns,
            tiflash,
            ctx,
            name: tiflash.name_any(),
            namespace,
        })
    }

    fn pd_error(&self) -> impl FnOnce(pd_client::Error) -> Error + '_ {
        Error::pd(self.pd.base())
    }

    /// Marks the instance for removal (PD removed its store by other means).
    async fn mark(&self) -> Result<(), Error> {
        let patch = serde_json::json!({"metadata": {"annotations": {keys::ANNO_DEFER_DELETE: keys::ANNO_TRUE}}});
        let patched = Api::<TiFlash>::namespaced(self.ctx.client.clone(), &self.namespace)
            .patch(
                &self.name,
                &PatchParams {
                    field_manager: Some(state_manager(MANAGER)),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::kube(format!("annotating TiFlash {}", self.name)))?;
        self.ctx
            .expectations
            .wrote(&expect::key_of(self.tiflash), &patched);
        Ok(())
    }
}

/// What PD says of the instance's store: found by the store ID recorded in its status, or at
/// its proxy address before one is recorded. `None` when PD could not be asked.
fn lookup<'a>(
    tiflash: &TiFlash,
    dns: &Dns,
    view: &'a Result<PdView, String>,
) -> Option<StoreLookup<'a>> {
    let recorded = store::recorded_id(tiflash.status.as_ref().map_or("", |s| s.id.as_str()));
    let address = build::store_address(tiflash, dns);
    view.as_ref()
        .ok()
        .map(|v| store::lookup(&v.stores, recorded, &address))
}

/// The store's removal when it is marked or PD removed it; otherwise the PVCs and the Pod
/// created, an outdated Pod recreated when no other store has down peers, the store's labels
/// kept in line with its Node, and the status observed from the Pod and PD.
async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiFlashStatus>, Error> {
    let Prepared {
        instance: tiflash,
        cluster,
        inputs: pd_url,
        desired: desired_pod,
        pod: existing_pod,
        ..
    } = prepared;
    if tiflash.spec.offline == Some(true) {
        // Taken over as this operator's mark first; the next look asks PD and removes the store.
        offline::take_over(ctx, tiflash).await?;
        return Ok(Finished::then(Action::requeue(Duration::from_secs(1))));
    }
    let scope = Scope::new(tiflash, ctx, pd_url, Dns::of_spec(&cluster.spec))?;
    let view = ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tiflash, &scope.dns, &view);
    let store = lookup.and_then(|l| l.info());
    let marked = tiflash.annotations().contains_key(keys::ANNO_DEFER_DELETE);
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
    instance::create_pvcs(ctx, MANAGER, tiflash, build::pvcs(tiflash)?).await?;

    let mut draft = Draft::new(tiflash);
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
        ctx.pd_changed(&scope.pd);
        ctx.events
            .normal(
                tiflash,
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
        return Ok(Finished::with(
            draft.finish(tiflash),
            Action::requeue(Duration::from_secs(1)),
        ));
    }

    let mut requeue = None;
    let synced: (bool, &str, String) = match &existing_pod {
        None => {
            instance::create_pod(ctx, MANAGER, tiflash, &desired_pod).await?;
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
            let (wait, reason, message) = restart(&scope, store, pod).await?;
            if reason == REASON_DOWN_PEERS_ELSEWHERE
                && draft.reason(conditions::SYNCED).as_deref() != Some(reason)
            {
                ctx.events
                    .warning(tiflash, reason, "Restart", message.clone())
                    .await;
            }
            requeue = Some(wait);
            (false, reason, message)
        }
        Some(_) => (true, reasons::SYNCED, "the Pod is up to date".into()),
    };
    draft.set(conditions::SYNCED, synced.0, synced.1, synced.2);

    if let (Some(pod), Ok(view), Some(info)) = (&existing_pod, &view, store)
        && info.is_up()
        && is_ready(pod)
    {
        sync_labels(&scope, &view.replication.location_labels, info, pod).await?;
    }

    // As the reference does, a TiFlash is Ready only once TiFlash itself says so: PD lists the
    // store Up as soon as its proxy registers, before its storage serves. It is asked its store
    // status (`Running`), or with `UseTiFlashReadyAPI` its ready API.
    let said = match (&existing_pod, store) {
        (Some(pod), Some(info)) if info.is_up() && is_ready(pod) => {
            Some(if ready::tiflash(tiflash) {
                ready::ready_api_said(ready_answer(&scope).await, ready::TIFLASH_PATH)
            } else {
                store_status_said(store_status(&scope).await)
            })
        }
        _ => None,
    };
    set_ready(&mut draft, existing_pod.as_ref(), &view, lookup, said);
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
    Ok(Finished::with(draft.finish(tiflash), then))
}

/// Recreates an outdated Pod, unless PD reports down peers on another store: a restart then
/// could cost a Region a replica it needs. A store PD does not list by its recorded ID is not
/// restarted either (whether it serves is unknown).
async fn restart(
    scope: &Scope<'_>,
    store: Option<&StoreInfo>,
    pod: &Pod,
) -> Result<(Duration, &'static str, String), Error> {
    if let Some(info) = store
        && info.is_up()
    {
        let regions = scope
            .pd
            .down_peer_regions()
            .await
            .map_err(scope.pd_error())?;
        let elsewhere: Vec<u64> = regions
            .stores_with_down_peers()
            .into_iter()
            .filter(|id| *id != info.store.id)
            .collect();
        if !elsewhere.is_empty() {
            let view = scope.ctx.pd_view(&scope.pd).await.ok();
            return Ok((
                Duration::from_secs(5),
                REASON_DOWN_PEERS_ELSEWHERE,
                format!(
                    "the restart waits: store(s) {} have down peers",
                    store::describe_stores(&elsewhere, view.as_ref().map(|v| &v.stores))
                ),
            ));
        }
    }
    instance::restart_pod(scope.ctx, scope.tiflash, pod, "").await?;
    Ok((
        Duration::from_secs(2),
        reasons::POD_TERMINATING,
        "the outdated Pod is being recreated".into(),
    ))
}

/// Pushes the template's `server.labels` and the Node's location labels to the store when they
/// differ (never `engine`, which TiFlash sets itself).
async fn sync_labels(
    scope: &Scope<'_>,
    location_labels: &[String],
    info: &StoreInfo,
    pod: &Pod,
) -> Result<(), Error> {
    let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(());
    };
    let location = if location_labels.is_empty() {
        BTreeMap::new()
    } else {
        let Some(node) = scope.ctx.nodes.get(&ObjectRef::new(&node_name)) else {
            return Ok(());
        };
        store::desired_labels(location_labels, node.labels())
    };
    let desired = store::store_labels(&scope.tiflash.spec.template.server.labels, location);
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
            scope.tiflash,
            "StoreLabelsSet",
            "Labels",
            format!("store {id} labelled {text} (Node {node_name})"),
        )
        .await;
    Ok(())
}

/// The client and URL of the instance's proxy status port.
fn status_endpoint(scope: &Scope<'_>) -> Result<(StatusClient, String), String> {
    let tiflash = scope.tiflash;
    let url = scope
        .ctx
        .status_url(tiflash, build::status_url(tiflash, &scope.dns));
    let client = scope.ctx.status_of(tiflash).map_err(|e| e.to_string())?;
    Ok((client, url))
}

/// `GET /tiflash/store-status` of the instance's proxy status port: `Running`, `Idle`, ...
async fn store_status(scope: &Scope<'_>) -> Result<String, String> {
    let (client, url) = status_endpoint(scope)?;
    client
        .tiflash_store_status(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// `GET /tiflash/readyz` of the instance's proxy status port.
async fn ready_answer(scope: &Scope<'_>) -> Result<bool, String> {
    let (client, url) = status_endpoint(scope)?;
    client
        .tiflash_readyz(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// `Ready`: the Pod is ready, the store is Up in PD and TiFlash says it serves: its store status
/// `Running`, or its ready API 200 with `UseTiFlashReadyAPI`.
fn set_ready(
    draft: &mut Draft,
    pod: Option<&Pod>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    said: Option<ready::Said>,
) {
    let was_ready = conditions::is_true(&draft.status.common.conditions, conditions::READY);
    let verdict = ready::verdict(was_ready, pod, view, lookup, said);
    if let Some((ready, reason, message)) = verdict {
        draft.set(conditions::READY, ready, reason, message);
    }
}

/// What TiFlash's store status says: only `Running` serves.
fn store_status_said(status: Result<String, String>) -> ready::Said {
    match status {
        Ok(status) if status == "Running" => Ok(None),
        Ok(status) => Ok(Some((
            REASON_STORE_NOT_RUNNING,
            format!(
                "the store is Up in PD, but TiFlash reports its store status {status:?}, not Running"
            ),
        ))),
        Err(error) => Err((
            REASON_STORE_NOT_RUNNING,
            format!("TiFlash's store status cannot be read: {error}"),
        )),
    }
}

/// How a removal ends once the store, its Pod and its PVCs are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finish {
    /// Scale-in: the instance is deleted.
    DeleteInstance,
    /// The instance is being deleted: its finalizer is released.
    ReleaseFinalizer,
}

/// Removes an instance's store, as [`store::removal_step`] decides (the same machine as TiKV's):
/// the store is taken offline through PD; only once PD reports its recorded ID Tombstone do the
/// Pod, then the PVCs, then the instance go. Anything else PD says, or does not say, keeps them.
async fn remove_store(
    scope: &Scope<'_>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    pod: Option<&Pod>,
    desired_pod: Option<&Pod>,
    finish: Finish,
) -> Result<Finished<TiFlashStatus>, Error> {
    let tiflash = scope.tiflash;
    let ctx = scope.ctx;
    let mut draft = Draft::new(tiflash);
    draft.store(lookup.and_then(|l| l.info()));
    let pd = match (view, lookup) {
        (Ok(_), Some(lookup)) => Ok(lookup),
        (Err(error), _) => Err(error.as_str()),
        (Ok(_), None) => Err("no answer"),
    };
    let recorded_removed = tiflash
        .status
        .as_ref()
        .is_some_and(|s| s.state == operator_api::core::STORE_STATE_REMOVED);
    let step = store::removal_step(&RemovalInput {
        pd,
        recorded_removed,
        // TiFlash stores hold no leaders: no evict-leader scheduler is ever added for them.
        evicting: false,
        pod: PodPresence::of(pod),
    });
    let topic = match finish {
        Finish::DeleteInstance => "ScaleIn",
        Finish::ReleaseFinalizer => "Delete",
    };
    let later = |secs| Action::requeue(Duration::from_secs(secs));
    match step {
        RemovalStep::Hold { reason, message } => {
            if draft.reason(conditions::OFFLINED).as_deref() != Some(reason) {
                ctx.events
                    .warning(tiflash, reason, topic, message.clone())
                    .await;
            }
            draft.set(conditions::OFFLINED, false, reason, &message);
            draft.set(conditions::SYNCED, false, reason, message);
            Ok(Finished::with(draft.finish(tiflash), later(5)))
        }
        RemovalStep::RemoveScheduler(_) => Ok(Finished::then(later(1))),
        RemovalStep::TakeOffline(id) => {
            let deleted = scope.pd.delete_store(id).await;
            ctx.pd_changed(&scope.pd);
            let refused =
                matches!(&deleted, Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)));
            if deleted.is_ok() || refused {
                ctx.metrics
                    .store_removal(keys::COMPONENT_TIFLASH, deleted.is_ok());
            }
            match deleted {
                Ok(()) => {
                    ctx.events
                        .normal(
                            tiflash,
                            REASON_STORE_REMOVING,
                            topic,
                            format!("store {id} taken offline through PD; its replicas move to other TiFlash stores"),
                        )
                        .await;
                    let message = format!("store {id} is being removed");
                    draft.set(conditions::OFFLINED, false, REASON_STORE_REMOVING, &message);
                    draft.set(conditions::SYNCED, false, REASON_STORE_REMOVING, message);
                    Ok(Finished::with(draft.finish(tiflash), later(2)))
                }
                Err(error) if refused => {
                    let message = format!("PD refuses to take store {id} offline: {error}");
                    if draft.reason(conditions::OFFLINED).as_deref()
                        != Some(REASON_STORE_REMOVAL_REFUSED)
                    {
                        ctx.events
                            .warning(
                                tiflash,
                                REASON_STORE_REMOVAL_REFUSED,
                                topic,
                                message.clone(),
                            )
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
                    Ok(Finished::with(draft.finish(tiflash), later(15)))
                }
                Err(error) => Err(scope.pd_error()(error)),
            }
        }
        RemovalStep::WaitForTombstone { id, regions } => {
            // Keep the store's Pod while its replicas move away.
            if let (None, Some(desired)) = (pod, desired_pod) {
                instance::create_pod(ctx, MANAGER, tiflash, desired).await?;
            }
            let message = format!("store {id} is being removed; {regions} Regions left on it");
            draft.set(conditions::OFFLINED, false, REASON_STORE_REMOVING, &message);
            draft.set(conditions::READY, false, REASON_STORE_REMOVING, &message);
            draft.set(conditions::SYNCED, false, REASON_STORE_REMOVING, message);
            Ok(Finished::with(draft.finish(tiflash), later(2)))
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
                ctx.events
                    .normal(tiflash, REASON_STORE_REMOVED, topic, message)
                    .await;
                // The status says so first; the Pod, the PVCs and the instance go from the next
                // look on.
                return Ok(Finished::with(draft.finish(tiflash), later(1)));
            }
            if finish == Finish::DeleteInstance
                && !tiflash.annotations().contains_key(keys::ANNO_DEFER_DELETE)
            {
                // PD removed the store by other means: the instance is on its way out for good.
                scope.mark().await?;
            }
            match step {
                RemovalStep::DeletePod => {
                    Api::<Pod>::namespaced(ctx.client.clone(), &scope.namespace)
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the Pod of a removed store"))?;
                    info!("deleted the Pod of a removed TiFlash store");
                    return Ok(Finished::then(later(2)));
                }
                RemovalStep::WaitForPod => {
                    if let Some(pod) = pod {
                        let left = if id.is_empty() {
                            "the store never registered with PD".to_string()
                        } else {
                            format!("store {id} is Tombstone in PD")
                        };
                        instance::force_delete_stuck_pod(ctx, tiflash, pod, &left).await?;
                    }
                    return Ok(Finished::then(later(2)));
                }
                _ => {}
            }
            if instance::delete_pvcs(ctx, tiflash).await? {
                return Ok(Finished::then(later(2)));
            }
            match finish {
                Finish::DeleteInstance => {
                    Api::<TiFlash>::namespaced(ctx.client.clone(), &scope.namespace)
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the instance of a removed store"))?;
                    info!("TiFlash store removed; instance deleted");
                    Ok(Finished::then(later(1)))
                }
                Finish::ReleaseFinalizer => {
                    Ok(Finished::then(instance::release(ctx, tiflash).await?))
                }
            }
        }
    }
}

/// A deleted instance: its store is removed as in a scale-in ([`remove_store`]) when only it
/// goes (a user deleted it); with its group or Cluster going, PD is not asked and the PVCs stay.
async fn finalize(
    tiflash: &TiFlash,
    ctx: &Ctx,
    pd_url: Option<String>,
    dns: Dns,
    only_this: bool,
) -> Result<Finished<TiFlashStatus>, Error> {
    if !tiflash.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Finished::then(Action::await_change()));
    }
    if !only_this {
        return Ok(Finished::then(instance::release(ctx, tiflash).await?));
    }
    let Some(pd_url) = pd_url else {
        let blocked = Blocked {
            reason: REASON_PD_NOT_FOUND,
            message: "cannot take the store out: the Cluster has no PD".to_string(),
            then: Action::requeue(Duration::from_secs(15)),
        };
        return Ok(Finished::blocked(tiflash, blocked));
    };
    let namespace = tiflash.namespace().unwrap_or_default();
    let scope = Scope::new(tiflash, ctx, pd_url, dns)?;
    let view = ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tiflash, &scope.dns, &view);
    let pod = cache::get(&ctx.caches.pods, &namespace, &scope.name);
    let desired = build::pod(tiflash).ok();
    remove_store(
        &scope,
        &view,
        lookup,
        pod.as_ref(),
        desired.as_ref(),
        Finish::ReleaseFinalizer,
    )
    .await
}

#[cfg(test)]
mod tests;
