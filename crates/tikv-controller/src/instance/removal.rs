//! Taking a TiKV store out, for a scale-in and for a user's deletion of the instance alike: as
//! [`store::removal_step`] decides, through PD (Offline, then Tombstone) before the Pod, then the
//! PVCs, then the instance go; with the group or Cluster going, PD is not asked.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions;
use operator_api::core::{TiKV, TiKVStatus};
use operator_api::keys;
use operator_runtime::dns::Dns;
use operator_runtime::instance_reconcile::{Blocked, Finished};
use operator_runtime::{cache, instance};
use tracing::info;

use super::{
    ANNO_CORDON_EVICTION_STARTED, ANNO_EVICTION_STARTED, Draft, REASON_DATA_KEPT,
    REASON_PD_NOT_FOUND, REASON_STORE_REMOVAL_REFUSED, REASON_STORE_REMOVED, REASON_STORE_REMOVING,
    Scope, lookup,
};
use crate::build;
use crate::context::Ctx;
use crate::pd::PdView;
use crate::store::{self, PodPresence, RemovalInput, RemovalStep, StoreLookup};
use operator_runtime::reconcile::Error;

/// How a removal ends once the store, its Pod and its PVCs are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Finish {
    /// Scale-in: the instance is deleted.
    DeleteInstance,
    /// The instance is being deleted: its finalizer is released.
    ReleaseFinalizer,
}

/// Removes an instance's store: for a scale-in (the instance is marked, or PD removed its store)
/// and for a user's deletion of the instance alike, as [`store::removal_step`] decides. The
/// store is taken offline through PD; only once PD reports its recorded ID Tombstone do the Pod,
/// then the PVCs, then the instance go. Anything else PD says, or does not say, keeps them.
pub(super) async fn remove_store(
    scope: &Scope<'_>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    pod: Option<&Pod>,
    desired_pod: Option<&Pod>,
    finish: Finish,
) -> Result<Finished<TiKVStatus>, Error> {
    let tikv = scope.tikv;
    let mut draft = Draft::new(tikv);
    draft.store(lookup.and_then(|l| l.info()));
    // A store taken out needs no restart or cordon eviction: its leaders leave with it.
    for key in [ANNO_EVICTION_STARTED, ANNO_CORDON_EVICTION_STARTED] {
        if tikv.annotations().contains_key(key) {
            scope.set_annotation(key, None).await?;
        }
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
            Ok(scope.finished(draft.finish(tikv), Action::requeue(Duration::from_secs(5))))
        }
        RemovalStep::RemoveScheduler(id) => {
            scope
                .remove_scheduler(id, "the store is being removed", "Remove")
                .await?;
            Ok(Finished::then(Action::requeue(Duration::from_secs(1))))
        }
        RemovalStep::TakeOffline(id) => {
            let regions = lookup
                .and_then(|l| l.info())
                .map(|s| s.status.region_count)
                .unwrap_or_default();
            let deleted = scope.pd.delete_store(id).await;
            scope.ctx.pd_changed(&scope.pd);
            let refused =
                matches!(&deleted, Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)));
            if deleted.is_ok() || refused {
                scope
                    .ctx
                    .metrics
                    .store_removal(keys::COMPONENT_TIKV, deleted.is_ok());
            }
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
                    Ok(scope.finished(draft.finish(tikv), Action::requeue(Duration::from_secs(2))))
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
                    Ok(
                        scope
                            .finished(draft.finish(tikv), Action::requeue(Duration::from_secs(15))),
                    )
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
            Ok(scope.finished(draft.finish(tikv), Action::requeue(Duration::from_secs(2))))
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
                // The status says so first; the Pod, the PVCs and the instance go from the next
                // look on (the last of them takes the status with it).
                return Ok(
                    scope.finished(draft.finish(tikv), Action::requeue(Duration::from_secs(1)))
                );
            }
            if finish == Finish::DeleteInstance
                && !tikv.annotations().contains_key(keys::ANNO_DEFER_DELETE)
            {
                // PD removed the store by other means: the instance is on its way out for good
                // (and the group, seeing the store Removed, does not take the mark back).
                scope
                    .set_annotation(keys::ANNO_DEFER_DELETE, Some(keys::ANNO_TRUE.into()))
                    .await?;
            }
            let later = Action::requeue(Duration::from_secs(2));
            match step {
                RemovalStep::DeletePod => {
                    scope
                        .pods()
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the Pod of a removed store"))?;
                    info!("deleted the Pod of a removed store");
                    return Ok(Finished::then(later));
                }
                RemovalStep::WaitForPod => {
                    // A Pod whose Node is lost never finishes terminating; the store is
                    // Tombstone, so nothing of it can come back.
                    if let Some(pod) = pod {
                        let left = if id.is_empty() {
                            "the store never registered with PD".to_string()
                        } else {
                            format!("store {id} is Tombstone in PD")
                        };
                        instance::force_delete_stuck_pod(scope.ctx, tikv, pod, &left).await?;
                    }
                    return Ok(Finished::then(later));
                }
                _ => {}
            }
            if scope.delete_pvcs().await? {
                return Ok(Finished::then(later));
            }
            match finish {
                Finish::DeleteInstance => {
                    Api::<TiKV>::namespaced(scope.ctx.client.clone(), &scope.namespace)
                        .delete(&scope.name, &DeleteParams::default())
                        .await
                        .map_err(Error::kube("deleting the instance of a removed store"))?;
                    info!("store removed; instance deleted");
                    Ok(Finished::then(Action::requeue(Duration::from_secs(1))))
                }
                Finish::ReleaseFinalizer => {
                    Ok(Finished::then(instance::release(scope.ctx, tikv).await?))
                }
            }
        }
    }
}

/// A deleted instance: its store is removed as in a scale-in ([`remove_store`]) when only it
/// goes (a user deleted it); with its group or Cluster going, PD is not asked and the PVCs stay.
/// Any evict-leader scheduler for its store goes either way.
pub(super) async fn finalize(
    tikv: &TiKV,
    ctx: &Ctx,
    pd_url: Option<String>,
    dns: Dns,
    only_this: bool,
) -> Result<Finished<TiKVStatus>, Error> {
    if !tikv.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Finished::then(Action::await_change()));
    }
    let namespace = tikv.namespace().unwrap_or_default();
    let Some(pd_url) = pd_url else {
        if !only_this {
            kept(ctx, tikv).await;
            return Ok(Finished::then(instance::release(ctx, tikv).await?));
        }
        let blocked = Blocked {
            reason: REASON_PD_NOT_FOUND,
            message: "cannot take the store out: the Cluster has no PD".to_string(),
            then: Action::requeue(Duration::from_secs(15)),
        };
        return Ok(Finished::blocked(tikv, blocked));
    };
    let scope = Scope::new(tikv, ctx, pd_url, dns)?;
    let view = scope.ctx.pd_view(&scope.pd).await;
    let lookup = lookup(tikv, &scope.dns, &view);
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
            .remove_scheduler(info.store.id, "its group or Cluster is deleted", "Remove")
            .await?;
    }
    kept(ctx, tikv).await;
    Ok(Finished::then(instance::release(ctx, tikv).await?))
}

/// Says what an instance leaves behind when its group or Cluster goes: its store as PD has it
/// (a removal under way carries on in PD) and its PVCs.
async fn kept(ctx: &Ctx, tikv: &TiKV) {
    let store = tikv.status.as_ref().map(|s| s.id.as_str()).unwrap_or("");
    let store = if store.is_empty() {
        "its store (never registered)".to_string()
    } else {
        format!("store {store}")
    };
    ctx.events
        .normal(
            tikv,
            REASON_DATA_KEPT,
            "Delete",
            format!(
                "its group or Cluster is deleted: {store} is left in PD as it is, and its PVCs are kept"
            ),
        )
        .await;
}
