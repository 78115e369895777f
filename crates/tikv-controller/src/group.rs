//! The TiKVGroup reconcile: the group's peer Service; its TiKV instances, created over the
//! schedule policy's topologies, updated one store at a time once PD runs the new version, and
//! taken out on scale-in through PD (marked, never below PD's `max-replicas`, cancelled by a
//! scale-out); evict-leader schedulers no restart or cordoned Node needs any more; and the
//! group's status.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use operator_api::core::{Cluster, TiKV, TiKVGroup, Topology};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::cache;
use operator_runtime::dns::Dns;
use operator_runtime::failover;
use operator_runtime::group as shared_group;
use operator_runtime::group_reconcile::{Decision, GroupRules, GroupView, Outcome};
use operator_runtime::pod::is_ready;
use operator_runtime::reconcile::Error;
use operator_runtime::upgrade::{self, Dependency};
use pd_client::{PdClient, StoreInfo};
use tracing::{info, warn};

use crate::build;
use crate::context::{Ctx, MANAGER};
use crate::instance::{
    ANNO_CORDON_EVICTION_STARTED, ANNO_EVICTION_STARTED, REASON_PD_NOT_FOUND, REASON_PD_UNREACHABLE,
};
use crate::pd::{self, PdView};
use crate::scaling::{self, is_leaving};
use crate::store;

/// Reason of a scale-in refused because it would leave fewer Up stores than PD's `max-replicas`.
pub const REASON_SCALE_IN_REFUSED: &str = "ScaleInRefused";
/// Reason of a group whose template sets `remoteWorkers`, which this operator does not act on.
pub const REASON_REMOTE_WORKERS_NOT_SUPPORTED: &str = "RemoteWorkersNotSupported";
/// Reason of a group whose stores are being taken out.
pub const REASON_SCALING_IN: &str = "ScalingIn";

/// Annotations of a TiKV instance that are operator state, not template: written with merge
/// patches under their own field manager, never removed by the group's apply.
const STATE_ANNOTATIONS: &[&str] = &[
    keys::ANNO_DEFER_DELETE,
    ANNO_EVICTION_STARTED,
    ANNO_CORDON_EVICTION_STARTED,
    keys::ANNO_FAILING_SINCE,
    keys::ANNO_FAILURE,
    keys::ANNO_FAILED_OVER,
];

/// The TiKV component's group rules.
pub struct Rules;

/// What a TiKVGroup's rules learn of PD and of the upgrade each reconcile.
pub struct Observed {
    /// The Cluster's PD, when it has one.
    pd: Option<PdClient>,
    /// PD's view of the stores, or why PD did not answer.
    view: Option<Result<PdView, String>>,
    /// The upgrade gate: a new version only once every PDGroup of the Cluster runs it and PD
    /// reports every member (of every Kubernetes cluster) on it.
    gate: Result<(), String>,
    /// The version the staying instances run while the gate is closed.
    running: Option<String>,
    /// Why a field the group sets is not acted on (`remoteWorkers`), if one is.
    unsupported: Option<String>,
}

/// What a TiKVGroup's rules see.
type View<'a> = GroupView<'a, Rules>;

impl GroupRules for Rules {
    type Group = TiKVGroup;
    type Instance = TiKV;
    type Observed = Observed;
    type Ctx = Ctx;

    const MANAGER: &'static str = MANAGER;
    const NOUN: &'static str = "TiKV stores";
    const UNIT: &'static str = "store";
    const STATE_ANNOTATIONS: &'static [&'static str] = STATE_ANNOTATIONS;

    fn instances(ctx: &Ctx) -> &Store<TiKV> {
        &ctx.instances
    }

    fn failover(group: &TiKVGroup) -> Option<failover::Settings> {
        Some(failover::Settings::of(group.spec.failover.as_ref()))
    }

    fn health(view: &View<'_>, tikv: &TiKV) -> failover::Health {
        scaling::store_health(view.observed.view.as_ref(), tikv)
    }

    fn outage(view: &View<'_>) -> Option<String> {
        scaling::stores_outage::<TiKV>(view.observed.view.as_ref())
    }

    fn services(group: &TiKVGroup) -> Result<Vec<Service>, BuildError> {
        Ok(vec![build::peer_service(group)?])
    }

    async fn observe(
        ctx: &Ctx,
        group: &TiKVGroup,
        cluster: &Cluster,
        instances: &[TiKV],
        _update_revision: &str,
        _revision_extra: Option<&str>,
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        let pd_groups = ctx
            .caches
            .pd_groups_of(&namespace, &group.spec.cluster.name);
        let pd = match pd::pd_url(Some(cluster), &pd_groups, &namespace) {
            Some(url) => Some(ctx.pd(&namespace, &group.spec.cluster.name, url)?),
            None => None,
        };
        let scaling_in = scaling::scaling_in(instances, group.spec.replicas);
        let view = match &pd {
            Some(pd) => {
                if scaling_in {
                    ctx.pd_changed(pd);
                }
                Some(ctx.pd_view(pd).await)
            }
            None => None,
        };
        if let (Some(pd), Some(Ok(view))) = (&pd, &view)
            && !view.evicting.is_empty()
        {
            let dns = Dns::of_spec(&cluster.spec);
            clean_up_schedulers(group, ctx, pd, view, instances, &dns).await;
        }
        let version = &group.spec.template.spec.common.version;
        let running = scaling::running(instances, version);
        // As in the reference, TiKV waits for PD and TiFlash.
        let tiflash_groups = cache::list(&ctx.tiflash_groups, &namespace, |g| {
            g.spec.cluster.name == group.spec.cluster.name
        });
        let mut dependencies: Vec<Dependency<'_>> = pd_groups.iter().map(Dependency::of).collect();
        dependencies.extend(tiflash_groups.iter().map(Dependency::of));
        let mut gate =
            upgrade::may_upgrade(cluster.spec.upgrade_policy, version, running, &dependencies);
        // The PDGroups here may be settled while PD members of another Kubernetes cluster still
        // roll: what PD reports of every member decides.
        if gate.is_ok() && upgrade::is_gated(cluster.spec.upgrade_policy, version, running) {
            gate = pd_members_run(pd.as_ref(), version).await;
        }
        let unsupported = group.spec.template.spec.remote_workers.as_ref().map(|_| {
            "remoteWorkers is not supported: this operator runs no TiKV workers (next-generation TiKV), so the stores run without remote workers; remove remoteWorkers to clear this".to_string()
        });
        if let Some(message) = &unsupported {
            shared_group::refusal(
                &ctx.events,
                group,
                REASON_REMOTE_WORKERS_NOT_SUPPORTED,
                "Spec",
                message.clone(),
            )
            .await;
        }
        Ok(Observed {
            pd,
            view,
            gate,
            running: running.map(str::to_string),
            unsupported,
        })
    }

    // Stores are added or removed only while PD answers; updates go on (each restart waits for
    // PD on its own). PD's view is shared for a second, so a scale asks PD afresh: a view from
    // before an outage must not let a store be added during it.
    async fn silence(ctx: &Ctx, view: &View<'_>) -> Option<String> {
        match (&view.observed.pd, &view.observed.view) {
            (Some(pd), Some(Ok(_))) => {
                ctx.pd_changed(pd);
                ctx.pd_view(pd).await.err()
            }
            (_, Some(Err(error))) => Some(error.clone()),
            _ => None,
        }
    }

    fn rebuilt(view: &View<'_>, existing: &TiKV) -> Result<TiKV, BuildError> {
        build::instance(
            view.group,
            &existing.name_any(),
            existing.spec.topology.clone(),
            view.update_revision,
        )
    }

    /// A marked instance counts as being removed, so a scale-in goes one store at a time and a
    /// scale-out finds it to keep.
    fn leaving(tikv: &TiKV) -> bool {
        is_leaving(tikv)
    }

    fn create(
        view: &View<'_>,
        name: &str,
        topology: Topology,
        ordinal: usize,
    ) -> Result<Decision<TiKV>, BuildError> {
        scaling::create(
            view.instances,
            ordinal,
            view.observed.gate.is_ok(),
            view.observed.running.as_deref(),
            || build::instance(view.group, name, topology.clone(), view.update_revision),
            |source| build::instance_like(view.group, name, topology.clone(), source),
        )
    }

    fn update(view: &View<'_>, existing: &TiKV) -> Result<Decision<TiKV>, BuildError> {
        scaling::update(view.observed.gate.is_ok(), || Self::rebuilt(view, existing))
    }

    fn delete(view: &View<'_>, victim: &TiKV) -> Result<Decision<TiKV>, BuildError> {
        let refusal = scale_in_refusal(
            view.observed.view.as_ref(),
            victim,
            still_to_go(view),
            &Dns::of_spec(&view.cluster.spec),
        );
        Ok(scaling::remove(victim, refusal))
    }

    fn progress(view: &View<'_>, outcome: &Outcome) -> (Option<String>, Option<&'static str>) {
        let progress = scaling::progress(
            view.instances,
            view.update_revision,
            &view.observed.gate,
            outcome,
        );
        match (&progress.0, &view.observed.unsupported) {
            (None, Some(message)) => (
                Some(message.clone()),
                Some(REASON_REMOTE_WORKERS_NOT_SUPPORTED),
            ),
            _ => progress,
        }
    }
}

/// The instance of `group` that `store` is, `None` for a store of another group: its address is
/// `<instance>.<group>-tikv-peer.<namespace>:<port>` (with `.svc.<domain>` before the port when
/// the Cluster's names are fully qualified), or, for an instance made under the
/// `ClusterSubdomain` gate, `<instance>.<cluster>-cluster.<namespace>:<port>` on a store labelled
/// as this group's (`k/tikvgroup`), since every group shares that Service.
fn instance_at(group: &TiKVGroup, store: &StoreInfo, dns: &Dns) -> Option<String> {
    let namespace = group.namespace().unwrap_or_default();
    let address = store.store.address.as_str();
    let host_prefix = |service: &str| {
        let suffix = format!(".{}:", dns.service_host(service, &namespace));
        address.find(&suffix).map(|at| address[..at].to_string())
    };
    let ours = store::placement_labels(&namespace, Some(&group.name_any()), false);
    let labelled_ours = ours
        .iter()
        .all(|(key, value)| store.store.label(key) == Some(value.as_str()));
    host_prefix(&build::peer_service_name(&group.name_any())).or_else(|| {
        labelled_ours
            .then(|| {
                host_prefix(&operator_runtime::build::cluster_subdomain(
                    &group.spec.cluster.name,
                ))
            })
            .flatten()
    })
}

/// Removes evict-leader schedulers of this group's stores that neither a restart nor a cordoned
/// Node needs: the store's instance is gone, or it records neither a restart's nor a cordon's
/// leader eviction (each records it before adding the scheduler) and its store is Up on a ready
/// Pod that is not being deleted (a deleted Pod's preStop hand-over adds the scheduler too). Best effort: a
/// failure is logged and tried again on the next reconcile.
async fn clean_up_schedulers(
    group: &TiKVGroup,
    ctx: &Ctx,
    pd: &PdClient,
    view: &PdView,
    instances: &[TiKV],
    dns: &Dns,
) {
    let namespace = group.namespace().unwrap_or_default();
    let restarting = |i: &TiKV| {
        i.annotations().contains_key(ANNO_EVICTION_STARTED)
            || i.annotations().contains_key(ANNO_CORDON_EVICTION_STARTED)
    };
    let suspects: Vec<(u64, String)> = view
        .evicting
        .iter()
        .filter_map(|id| {
            let info = view.stores.by_id(*id)?;
            let instance = instance_at(group, info, dns)?;
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
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    for (id, instance) in suspects.iter().filter(|(id, _)| still.contains(id)) {
        let exists = match api.get_opt(instance).await {
            Ok(Some(current)) if restarting(&current) => continue,
            Ok(current) => current.is_some(),
            Err(error) => {
                warn!(%error, instance, "cannot read an instance to clean up its scheduler");
                continue;
            }
        };
        // A Pod being deleted runs its preStop hand-over, which puts the store under the
        // scheduler: an instance's scheduler is left behind only once its store serves from a
        // ready Pod again.
        if exists {
            match pods.get_opt(instance).await {
                Ok(Some(pod)) if pod.metadata.deletion_timestamp.is_none() && is_ready(&pod) => {}
                Ok(_) => continue,
                Err(error) => {
                    warn!(%error, instance, "cannot read a Pod to clean up its store's scheduler");
                    continue;
                }
            }
            if !view.stores.by_id(*id).is_some_and(|s| s.is_up()) {
                continue;
            }
        }
        // The instance may have finished its own restart, and removed its scheduler, between
        // the first read of PD and the read of the instance: ask PD once more, so the removal
        // is not sent twice.
        match pd.evict_leader_store_ids().await {
            Ok(ids) if ids.contains(id) => {}
            Ok(_) => continue,
            Err(error) => {
                warn!(%error, "cannot read the evicted stores to clean up schedulers");
                return;
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
                            "store {id} of {instance}: evict-leader scheduler removed; no restart or cordon of it is in progress"
                        ),
                    )
                    .await;
            }
            Err(error) => warn!(%error, store_id = id, "cannot remove an evict-leader scheduler"),
        }
    }
}

/// How many stores of the group's scale-in are still to go after the one now taken out: the
/// staying instances beyond `replicas`, less that one.
fn still_to_go(view: &View<'_>) -> usize {
    let staying = view.instances.iter().filter(|i| !is_leaving(*i)).count();
    let replicas = usize::try_from(view.group.spec.replicas).unwrap_or_default();
    staying.saturating_sub(replicas).saturating_sub(1)
}

/// `Ok` when `victim` may be taken out, with `after_it` more stores of the scale-in to go after
/// it, else the reason and message of the refusal.
fn scale_in_refusal(
    view: Option<&Result<PdView, String>>,
    victim: &TiKV,
    after_it: usize,
    dns: &Dns,
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
    let victim_store = store::lookup(&view.stores, recorded, &build::store_address(victim, dns));
    match store::scale_in_refusal(
        &view.stores,
        victim_store,
        after_it,
        view.replication.max_replicas,
    ) {
        Some(message) => Err((REASON_SCALE_IN_REFUSED, message)),
        None => Ok(()),
    }
}

/// Whether PD reports every one of its members running `version`; a PD that does not answer
/// (or is not known yet) holds the gate.
async fn pd_members_run(pd: Option<&PdClient>, version: &str) -> Result<(), String> {
    let reported = match pd {
        Some(pd) => pd
            .members()
            .await
            .map(|info| {
                info.members
                    .into_iter()
                    .map(|m| upgrade::Reported {
                        name: m.name,
                        version: m.binary_version,
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string()),
        None => Err("the Cluster has no PD URL yet".to_string()),
    };
    upgrade::pd_runs(
        version,
        "PD member",
        reported.as_deref().map_err(String::as_str),
    )
}

#[cfg(test)]
mod tests;
