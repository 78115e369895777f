//! The TiKVGroup reconcile: the group's peer Service; its TiKV instances, created over the
//! schedule policy's topologies, updated one store at a time once PD runs the new version, and
//! taken out on scale-in through PD (marked, never below PD's `max-replicas`, cancelled by a
//! scale-out); evict-leader schedulers no restart needs any more; and the group's status.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions::{HasConditions, reasons};
use operator_api::core::{STORE_STATE_REMOVED, TiKV, TiKVGroup};
use operator_api::keys;
use operator_runtime::apply::apply_if_changed;
use operator_runtime::build as shared;
use operator_runtime::cache;
use operator_runtime::component::InstanceWriter;
use operator_runtime::group::{self as shared_group, InstanceSummary, Progress};
use operator_runtime::revision::revision_name;
use operator_runtime::update::{self, InstanceView, Policy};
use operator_runtime::upgrade::{self, Dependency};
use pd_client::PdClient;
use tracing::{info, instrument, warn};

use crate::build;
use crate::context::{Ctx, MANAGER};
use crate::instance::{ANNO_EVICTION_STARTED, REASON_PD_NOT_FOUND, REASON_PD_UNREACHABLE};
use crate::pd::{self, PdView};
use crate::store;
use operator_runtime::reconcile::{self, Error, GroupStart};

/// Reason of a scale-in refused because it would leave fewer Up stores than PD's `max-replicas`.
pub const REASON_SCALE_IN_REFUSED: &str = "ScaleInRefused";
/// Reason of a group whose stores are being taken out.
pub const REASON_SCALING_IN: &str = "ScalingIn";

/// Annotations of a TiKV instance that are operator state, not template: written with merge
/// patches under their own field manager, never removed by the group's apply.
const STATE_ANNOTATIONS: &[&str] = &[keys::ANNO_DEFER_DELETE, ANNO_EVICTION_STARTED];

/// Reconciles one TiKVGroup.
#[instrument(skip_all, fields(namespace = group.namespace(), group = group.name_any(), cluster = group.spec.cluster.name))]
pub async fn reconcile(group: Arc<TiKVGroup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(&ctx.metrics, "tikvgroup", reconcile_inner(&group, &ctx))
        .await
}

/// Whether an instance is marked for removal (scale-in in progress).
pub fn is_marked(tikv: &TiKV) -> bool {
    tikv.annotations().contains_key(keys::ANNO_DEFER_DELETE)
}

/// Whether an instance is leaving the group: deleted, or marked for removal.
fn is_leaving(tikv: &TiKV) -> bool {
    tikv.metadata.deletion_timestamp.is_some() || is_marked(tikv)
}

/// Whether a marked instance can still be kept: its store is not removed yet.
fn is_cancellable(tikv: &TiKV) -> bool {
    is_marked(tikv)
        && tikv.metadata.deletion_timestamp.is_none()
        && tikv.status.as_ref().map(|s| s.state.as_str()) != Some(STORE_STATE_REMOVED)
}

async fn reconcile_inner(group: &TiKVGroup, ctx: &Ctx) -> Result<Action, Error> {
    let (namespace, cluster) = match reconcile::group_start(ctx, group).await? {
        GroupStart::Go { namespace, cluster } => (namespace, cluster),
        GroupStart::Done(then) => return Ok(then),
    };
    let name = group.name_any();
    let cluster_name = &group.spec.cluster.name;

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let service = build::peer_service(group)?;
    let existing = cache::get(&ctx.caches.services, &namespace, &service.name_any());
    apply_if_changed(&services, MANAGER, existing.as_ref(), service).await?;

    let pd_groups = ctx.caches.pd_groups_of(&namespace, cluster_name);
    let pd_api = match pd::pd_url(Some(&cluster), &pd_groups, &namespace) {
        Some(url) => Some(ctx.pd(&namespace, cluster_name, url)?),
        None => None,
    };
    let pd_view = match &pd_api {
        Some(pd) => Some(ctx.pd_view(pd).await),
        None => None,
    };
    let evicting = match &pd_view {
        Some(Ok(view)) => view.evicting.clone(),
        _ => Vec::new(),
    };

    let writer = InstanceWriter::new(ctx, group, MANAGER, STATE_ANNOTATIONS);
    if let Some(wait) = writer.wait_for_cache(&ctx.instances) {
        return Ok(wait);
    }
    let owner = build::owner(&namespace, cluster_name, &name);
    let selector = shared::group_selector(owner);
    let labels = shared::group_labels(owner);
    let instances = cache::list(&ctx.instances, &namespace, |i| {
        cache::has_labels(i, &labels)
    });
    if let (Some(pd), Some(Ok(view))) = (&pd_api, &pd_view)
        && !evicting.is_empty()
    {
        clean_up_schedulers(group, ctx, pd, view, &instances).await;
    }
    let update_revision = revision_name(&name, &build::revision_input(group));
    // Instances created before server-side apply become wholly the template's, in place.
    writer
        .adopt_all(&instances, |tikv| {
            (revision_of(tikv) == update_revision)
                .then(|| {
                    let topology = tikv.spec.topology.clone();
                    build::instance(group, &tikv.name_any(), topology, &update_revision).ok()
                })
                .flatten()
        })
        .await?;
    let version = &group.spec.template.spec.common.version;

    // The upgrade gate: a new version only once every PDGroup of the Cluster runs it.
    let running = instances
        .iter()
        .filter(|i| !is_leaving(i))
        .map(|i| i.spec.template.common.version.as_str())
        .find(|v| !upgrade::same_version(v, version))
        .or_else(|| (!instances.is_empty()).then_some(version.as_str()));
    let dependencies: Vec<Dependency<'_>> = pd_groups
        .iter()
        .map(|g| Dependency {
            label: format!("PDGroup {}", g.name_any()),
            replicas: g.spec.replicas,
            generation: g.metadata.generation,
            status: g.status.as_ref(),
        })
        .collect();
    let gate = upgrade::may_upgrade(cluster.spec.upgrade_policy, version, running, &dependencies);

    let suspended = cluster
        .spec
        .suspend_action
        .as_ref()
        .is_some_and(|s| s.suspend_compute);
    let views: Vec<InstanceView> = instances.iter().map(view).collect();
    let policy = Policy {
        replicas: group.spec.replicas,
        update_revision: update_revision.clone(),
        max_surge: 0,
        max_unavailable: 1,
        topologies: update::topologies(&group.spec.schedule_policies),
    };
    let plan = update::plan(&policy, &views);
    let mut waiting = plan.waiting.clone();
    let mut waiting_reason = None;
    let mut blocked: Option<(&str, String)> = None;
    let mut acted = false;
    let mut held = 0usize;
    let mut cancellable: Vec<&TiKV> = instances.iter().filter(|i| is_cancellable(i)).collect();
    // Stores are added or removed only while PD answers; updates go on (each restart waits for
    // PD on its own). PD's view is shared for a second, so a scale asks PD afresh: a view from
    // before an outage must not let a store be added during it.
    let scales = plan
        .actions
        .iter()
        .any(|a| !matches!(a, update::Action::Update { .. }));
    let silence = match (&pd_api, &pd_view) {
        (Some(pd), Some(Ok(_))) if scales => {
            ctx.pd_changed(pd);
            ctx.pd_view(pd).await.err()
        }
        (_, Some(Err(error))) => Some(error.clone()),
        _ => None,
    };
    if suspended {
        // Nothing is created, updated or removed while the Pods are suspended.
        waiting = Some("the Cluster suspends compute".to_string());
    } else if let Some(refusal) =
        shared_group::downgrade_hold(&ctx.events, group, version, &instances).await
    {
        blocked = Some(refusal);
    } else {
        let (actions, hold) = shared_group::hold_scaling(
            &ctx.events,
            group,
            plan.actions,
            silence.as_deref(),
            "store",
        )
        .await;
        if hold.is_some() {
            blocked = hold;
        }
        for (index, action) in actions.into_iter().enumerate() {
            match action {
                update::Action::Create { topology } => {
                    if let Some(kept) = cancellable.pop() {
                        // Scale-in in progress: keep that store instead of adding a new one.
                        let kept_name = kept.name_any();
                        set_mark(&writer, &kept_name, false).await?;
                        ctx.events
                            .normal(
                                group,
                                "ScaleInCancelled",
                                "ScaleOut",
                                format!(
                                    "keeping TiKV {kept_name}: its store was being removed and is kept instead of adding a new one"
                                ),
                            )
                            .await;
                        info!(instance = kept_name, "scale-in cancelled");
                        acted = true;
                        continue;
                    }
                    let name = new_name(group, index);
                    let tikv = if gate.is_ok() {
                        build::instance(group, &name, topology, &update_revision)?
                    } else {
                        // The version change waits for PD; the store count does not: the new
                        // store runs what the others run until the gate opens.
                        match instances.iter().filter(|i| !is_leaving(i)).find(|i| {
                            running.is_some_and(|v| {
                                upgrade::same_version(&i.spec.template.common.version, v)
                            })
                        }) {
                            Some(source) => build::instance_like(group, &name, topology, source)?,
                            None => {
                                held += 1;
                                continue;
                            }
                        }
                    };
                    create_instance(&writer, &tikv).await?;
                    acted = true;
                }
                update::Action::Update { name: instance } => {
                    if gate.is_err() {
                        continue;
                    }
                    let Some(existing) = instances.iter().find(|i| i.name_any() == instance) else {
                        continue;
                    };
                    let desired = build::instance(
                        group,
                        &instance,
                        existing.spec.topology.clone(),
                        &update_revision,
                    )?;
                    writer.apply(Some(existing), &desired).await?;
                    info!(
                        instance,
                        revision = update_revision,
                        "updating TiKV instance"
                    );
                    acted = true;
                }
                update::Action::Delete { name: instance } => {
                    let Some(victim) = instances.iter().find(|i| i.name_any() == instance) else {
                        continue;
                    };
                    match scale_in_refusal(pd_view.as_ref(), victim) {
                        Err((reason, message)) => {
                            blocked = Some(
                                shared_group::refusal(
                                    &ctx.events,
                                    group,
                                    reason,
                                    "ScaleIn",
                                    message,
                                )
                                .await,
                            );
                        }
                        Ok(()) => {
                            set_mark(&writer, &instance, true).await?;
                            ctx.events
                                .normal(
                                    group,
                                    "ScaleIn",
                                    "ScaleIn",
                                    format!(
                                        "removing TiKV {instance}: its store is taken offline through PD first"
                                    ),
                                )
                                .await;
                            info!(instance, "marked for removal");
                            acted = true;
                        }
                    }
                }
            }
        }
    }
    let outdated = instances
        .iter()
        .filter(|i| !is_leaving(i))
        .any(|i| revision_of(i) != update_revision);
    if let Err(message) = &gate
        && (outdated || held > 0)
    {
        waiting = Some(if held > 0 {
            format!("{message}; {held} new store(s) wait too")
        } else {
            message.clone()
        });
        waiting_reason = Some(reasons::WAITING_FOR_DEPENDENCIES);
    } else {
        let leaving: Vec<String> = instances
            .iter()
            .filter(|i| is_leaving(i))
            .map(|i| i.name_any())
            .collect();
        if !leaving.is_empty() && blocked.is_none() {
            waiting = Some(format!(
                "taking out the store(s) of {} through PD",
                leaving.join(", ")
            ));
            waiting_reason = Some(REASON_SCALING_IN);
        }
    }

    let summaries: Vec<InstanceSummary> = instances
        .iter()
        .map(|tikv| InstanceSummary {
            revision: revision_of(tikv),
            available: is_available(tikv),
            deleting: is_leaving(tikv),
            not_ready: shared_group::not_ready_note(&tikv.name_any(), tikv.conditions()),
        })
        .collect();
    let progress = Progress {
        blocked: blocked.clone(),
        waiting: waiting.clone(),
        waiting_reason,
        acted,
    };
    let status = shared_group::group_status(
        group.status.as_ref(),
        group.metadata.generation,
        group.spec.replicas,
        version,
        &summaries,
        &update_revision,
        &selector,
        "TiKV stores",
        &progress,
    );
    let waiting = waiting.is_some() || blocked.is_some();
    reconcile::finish_group(ctx, group, status, suspended, &instances, (acted, waiting)).await
}

/// Removes evict-leader schedulers of this group's stores that no restart needs: the store's
/// instance is gone or has no record of a restart in progress. Best effort: a failure is
/// logged and tried again on the next reconcile.
async fn clean_up_schedulers(
    group: &TiKVGroup,
    ctx: &Ctx,
    pd: &PdClient,
    view: &PdView,
    instances: &[TiKV],
) {
    let namespace = group.namespace().unwrap_or_default();
    let suffix = format!(
        ".{}.{namespace}:",
        build::peer_service_name(&group.name_any())
    );
    let restarting = |i: &TiKV| i.annotations().contains_key(ANNO_EVICTION_STARTED);
    let suspects: Vec<(u64, String)> = view
        .evicting
        .iter()
        .filter_map(|id| {
            let info = view.stores.by_id(*id)?;
            // Only stores of this group: `<instance>.<group>-tikv-peer.<namespace>:<port>`.
            let at = info.store.address.find(&suffix)?;
            let instance = info.store.address[..at].to_string();
            let known = instances.iter().find(|i| i.name_any() == instance);
            (!known.is_some_and(restarting)).then_some((*id, instance))
        })
        .collect();
    if suspects.is_empty() {
        return;
    }
    // The cached instances may lag behind an instance that just recorded its restart and added
    // its scheduler: confirm with PD and the API server before removing anything.
    let still = match pd.evict_leader_store_ids().await {
        Ok(ids) => ids,
        Err(error) => {
            warn!(%error, "cannot read the evicted stores to clean up schedulers");
            return;
        }
    };
    let api: Api<TiKV> = Api::namespaced(ctx.client.clone(), &namespace);
    for (id, instance) in suspects.iter().filter(|(id, _)| still.contains(id)) {
        match api.get_opt(instance).await {
            Ok(Some(current)) if restarting(&current) => continue,
            Ok(_) => {}
            Err(error) => {
                warn!(%error, instance, "cannot read an instance to clean up its scheduler");
                continue;
            }
        }
        let removed = pd.remove_evict_leader_scheduler(*id).await;
        ctx.pd_changed(pd);
        match removed {
            Ok(()) => {
                info!(
                    store_id = id,
                    instance, "removed a leftover evict-leader scheduler"
                );
                ctx.events
                    .normal(
                        group,
                        "EvictLeaderSchedulerRemoved",
                        "Restart",
                        format!(
                            "store {id} of {instance}: evict-leader scheduler removed; no restart of it is in progress"
                        ),
                    )
                    .await;
            }
            Err(error) => warn!(%error, store_id = id, "cannot remove an evict-leader scheduler"),
        }
    }
}

/// `Ok` when `victim` may be taken out, else the reason and message of the refusal.
fn scale_in_refusal(
    view: Option<&Result<PdView, String>>,
    victim: &TiKV,
) -> Result<(), (&'static str, String)> {
    let view = match view {
        None => {
            return Err((
                REASON_PD_NOT_FOUND,
                "cannot check PD's max-replicas: the Cluster has no PD".to_string(),
            ));
        }
        Some(Err(e)) => {
            return Err((
                REASON_PD_UNREACHABLE,
                format!("cannot check PD's max-replicas before a scale-in: {e}"),
            ));
        }
        Some(Ok(view)) if view.not_bootstrapped => return Ok(()),
        Some(Ok(view)) => view,
    };
    let recorded = store::recorded_id(victim.status.as_ref().map_or("", |s| s.id.as_str()));
    let victim_store = store::lookup(&view.stores, recorded, &build::store_address(victim));
    match store::scale_in_refusal(&view.stores, victim_store, view.replication.max_replicas) {
        Some(message) => Err((REASON_SCALE_IN_REFUSED, message)),
        None => Ok(()),
    }
}

/// Marks an instance for removal, or takes the mark back.
async fn set_mark(
    writer: &InstanceWriter<'_, TiKV>,
    name: &str,
    marked: bool,
) -> Result<(), Error> {
    writer
        .set_state(
            name,
            keys::ANNO_DEFER_DELETE,
            marked.then_some(keys::ANNO_TRUE),
        )
        .await
        .map_err(Error::kube(format!("marking TiKV {name}")))?;
    Ok(())
}

/// How the update engine sees a TiKV instance. A marked instance counts as being removed, so a
/// scale-in goes one store at a time and a scale-out finds it to keep.
fn view(tikv: &TiKV) -> InstanceView {
    InstanceView {
        name: tikv.name_any(),
        revision: revision_of(tikv),
        ready: is_available(tikv),
        deleting: is_leaving(tikv),
        topology: tikv.spec.topology.clone(),
        last: false,
    }
}

/// See [`shared_group::is_available`].
fn is_available(tikv: &TiKV) -> bool {
    let observed = tikv
        .status
        .as_ref()
        .map(|s| s.common.observed_generation)
        .unwrap_or_default();
    shared_group::is_available(tikv.conditions(), observed, tikv.metadata.generation)
}

fn revision_of(tikv: &TiKV) -> String {
    tikv.labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default()
}

fn new_name(group: &TiKVGroup, index: usize) -> String {
    shared_group::instance_name(&group.name_any(), &group.uid().unwrap_or_default(), index)
}

async fn create_instance(writer: &InstanceWriter<'_, TiKV>, tikv: &TiKV) -> Result<(), Error> {
    writer.apply(None, tikv).await?;
    info!(instance = tikv.name_any(), "created TiKV instance");
    Ok(())
}

#[cfg(test)]
mod tests {
    use operator_api::core::TiKVStatus;

    use super::*;

    fn tikv(annotations: &[(&str, &str)], state: &str) -> TiKV {
        let mut tikv = TiKV::new(
            "tikv-a",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "tikv-tikv-peer", "version": "v8.5.2"
            }))
            .unwrap(),
        );
        tikv.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        tikv.status = Some(TiKVStatus {
            state: state.into(),
            ..TiKVStatus::default()
        });
        tikv
    }

    #[test]
    fn a_marked_instance_counts_as_leaving_and_is_kept_until_its_store_is_removed() {
        let plain = tikv(&[], "Serving");
        assert!(!is_leaving(&plain) && !is_cancellable(&plain));
        let marked = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
        assert!(is_leaving(&marked) && is_cancellable(&marked));
        assert!(view(&marked).deleting);
        let removed = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removed");
        assert!(is_leaving(&removed) && !is_cancellable(&removed));
    }
}
