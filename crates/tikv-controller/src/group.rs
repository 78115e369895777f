//! The TiKVGroup reconcile: the group's peer Service; its TiKV instances, created over the
//! schedule policy's topologies, updated one store at a time once PD runs the new version, and
//! taken out on scale-in through PD (marked, never below PD's `max-replicas`, cancelled by a
//! scale-out); evict-leader schedulers no restart or cordoned Node needs any more; and the
//! group's status.

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use operator_api::conditions::reasons;
use operator_api::core::{Cluster, STORE_STATE_REMOVED, TiKV, TiKVGroup, Topology};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::failover;
use operator_runtime::group_reconcile::{
    Decision, Effect, GroupRules, GroupView, Outcome, revision_of,
};
use operator_runtime::reconcile::Error;
use operator_runtime::upgrade::{self, Dependency};
use pd_client::PdClient;
use tracing::{info, warn};

use crate::build;
use crate::context::{Ctx, MANAGER};
use crate::instance::{
    ANNO_CORDON_EVICTION_STARTED, ANNO_EVICTION_STARTED, REASON_PD_NOT_FOUND, REASON_PD_UNREACHABLE,
};
use crate::pd::{self, PdView};
use crate::store;

/// Reason of a scale-in refused because it would leave fewer Up stores than PD's `max-replicas`.
pub const REASON_SCALE_IN_REFUSED: &str = "ScaleInRefused";
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

/// The TiKV component's group rules.
pub struct Rules;

/// What a TiKVGroup's rules learn of PD and of the upgrade each reconcile.
pub struct Observed {
    /// The Cluster's PD, when it has one.
    pd: Option<PdClient>,
    /// PD's view of the stores, or why PD did not answer.
    view: Option<Result<PdView, String>>,
    /// The upgrade gate: a new version only once every PDGroup of the Cluster runs it.
    gate: Result<(), String>,
    /// The version the staying instances run while the gate is closed.
    running: Option<String>,
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
        match &view.observed.view {
            Some(Ok(pd)) if !pd.not_bootstrapped => store_health(pd, tikv),
            _ => failover::Health::Unknown,
        }
    }

    fn outage(view: &View<'_>) -> Option<String> {
        match &view.observed.view {
            Some(Ok(pd)) => stores_outage(pd),
            _ => None,
        }
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
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        let pd_groups = ctx
            .caches
            .pd_groups_of(&namespace, &group.spec.cluster.name);
        let pd = match pd::pd_url(Some(cluster), &pd_groups, &namespace) {
            Some(url) => Some(ctx.pd(&namespace, &group.spec.cluster.name, url)?),
            None => None,
        };
        let view = match &pd {
            Some(pd) => Some(ctx.pd_view(pd).await),
            None => None,
        };
        if let (Some(pd), Some(Ok(view))) = (&pd, &view)
            && !view.evicting.is_empty()
        {
            let dns = Dns::of_spec(&cluster.spec);
            clean_up_schedulers(group, ctx, pd, view, instances, &dns).await;
        }
        let version = &group.spec.template.spec.common.version;
        let running = instances
            .iter()
            .filter(|i| !is_leaving(i))
            .map(|i| i.spec.template.common.version.as_str())
            .find(|v| !upgrade::same_version(v, version))
            .or_else(|| (!instances.is_empty()).then_some(version.as_str()));
        let dependencies: Vec<Dependency<'_>> = pd_groups.iter().map(Dependency::of).collect();
        let gate =
            upgrade::may_upgrade(cluster.spec.upgrade_policy, version, running, &dependencies);
        Ok(Observed {
            pd,
            view,
            gate,
            running: running.map(str::to_string),
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
        // Scale-in in progress: keep a store being removed instead of adding a new one.
        let cancellable = view.instances.iter().filter(|i| is_cancellable(i));
        if let Some(kept) = cancellable.rev().nth(ordinal) {
            let kept = kept.name_any();
            return Ok(Decision::Act(vec![
                Effect::SetState {
                    instance: kept.clone(),
                    key: keys::ANNO_DEFER_DELETE,
                    value: None,
                },
                Effect::event(
                    "ScaleInCancelled",
                    "ScaleOut",
                    format!(
                        "keeping TiKV {kept}: its store was being removed and is kept instead of adding a new one"
                    ),
                ),
            ]));
        }
        let observed = view.observed;
        if observed.gate.is_ok() {
            let tikv = build::instance(view.group, name, topology, view.update_revision)?;
            return Ok(Decision::Act(vec![Effect::Create(tikv)]));
        }
        // The version change waits for PD; the store count does not: the new store runs what
        // the others run until the gate opens.
        let source = view.instances.iter().filter(|i| !is_leaving(i)).find(|i| {
            observed
                .running
                .as_deref()
                .is_some_and(|v| upgrade::same_version(&i.spec.template.common.version, v))
        });
        match source {
            Some(source) => {
                let tikv = build::instance_like(view.group, name, topology, source)?;
                Ok(Decision::Act(vec![Effect::Create(tikv)]))
            }
            None => Ok(Decision::Hold),
        }
    }

    fn update(view: &View<'_>, existing: &TiKV) -> Result<Decision<TiKV>, BuildError> {
        if view.observed.gate.is_err() {
            return Ok(Decision::Skip);
        }
        Ok(Decision::Act(vec![Effect::Update(Self::rebuilt(
            view, existing,
        )?)]))
    }

    fn delete(view: &View<'_>, victim: &TiKV) -> Result<Decision<TiKV>, BuildError> {
        let name = victim.name_any();
        Ok(
            match scale_in_refusal(
                view.observed.view.as_ref(),
                victim,
                &Dns::of_spec(&view.cluster.spec),
            ) {
                Err((reason, message)) => Decision::Refuse {
                    reason,
                    action: "ScaleIn",
                    message,
                },
                Ok(()) => Decision::Act(vec![
                    Effect::SetState {
                        instance: name.clone(),
                        key: keys::ANNO_DEFER_DELETE,
                        value: Some(keys::ANNO_TRUE.to_string()),
                    },
                    Effect::event(
                        "ScaleIn",
                        "ScaleIn",
                        format!(
                            "removing TiKV {name}: its store is taken offline through PD first"
                        ),
                    ),
                ]),
            },
        )
    }

    fn progress(view: &View<'_>, outcome: &Outcome) -> (Option<String>, Option<&'static str>) {
        let outdated = view
            .instances
            .iter()
            .filter(|i| !is_leaving(i))
            .any(|i| revision_of(i) != view.update_revision);
        if let Err(message) = &view.observed.gate
            && (outdated || outcome.held > 0)
        {
            let message = if outcome.held > 0 {
                format!("{message}; {} new store(s) wait too", outcome.held)
            } else {
                message.clone()
            };
            return (Some(message), Some(reasons::WAITING_FOR_DEPENDENCIES));
        }
        let leaving: Vec<String> = view
            .instances
            .iter()
            .filter(|i| is_leaving(i))
            .map(|i| i.name_any())
            .collect();
        if !leaving.is_empty() && !outcome.blocked {
            let message = format!(
                "taking out the store(s) of {} through PD",
                leaving.join(", ")
            );
            return (Some(message), Some(REASON_SCALING_IN));
        }
        (outcome.waiting.clone(), None)
    }
}

/// The instance of `group` whose store advertises `address`, `None` for a store of another
/// group: `<instance>.<group>-tikv-peer.<namespace>:<port>`, with `.svc.<domain>` before the
/// port when the Cluster's names are fully qualified.
fn instance_at(group: &TiKVGroup, address: &str, dns: &Dns) -> Option<String> {
    let namespace = group.namespace().unwrap_or_default();
    let peer_service = build::peer_service_name(&group.name_any());
    let suffix = format!(".{}:", dns.service_host(&peer_service, &namespace));
    let at = address.find(&suffix)?;
    Some(address[..at].to_string())
}

/// Removes evict-leader schedulers of this group's stores that neither a restart nor a cordoned
/// Node needs: the store's instance is gone or records neither a restart's nor a cordon's leader
/// eviction (each records it before adding the scheduler). Best effort: a failure is logged and
/// tried again on the next reconcile.
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
            let instance = instance_at(group, &info.store.address, dns)?;
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
                            "store {id} of {instance}: evict-leader scheduler removed; no restart or cordon of it is in progress"
                        ),
                    )
                    .await;
            }
            Err(error) => warn!(%error, store_id = id, "cannot remove an evict-leader scheduler"),
        }
    }
}

/// How a store is doing, by PD's view of its recorded ID: failing only when PD says Down; a
/// store PD does not list, or lists as Disconnected, Offline or Tombstone, cannot be judged.
fn store_health(pd: &PdView, tikv: &TiKV) -> failover::Health {
    let Some(id) = store::recorded_id(tikv.status.as_ref().map_or("", |s| s.id.as_str())) else {
        return failover::Health::Unknown;
    };
    match pd.stores.by_id(id) {
        Some(info) if info.is_up() => failover::Health::Healthy,
        Some(info) if info.is_down() => failover::Health::Failing {
            why: format!("PD reports store {id} Down"),
            since: None,
        },
        _ => failover::Health::Unknown,
    }
}

/// Half or more of the cluster's stores silent at once is an outage (a zone, the network, PD's
/// own view), which new stores would not mend: Regions without a majority cannot be re-placed.
fn stores_outage(pd: &PdView) -> Option<String> {
    let live = pd
        .stores
        .stores
        .iter()
        .filter(|s| s.is_up() || s.is_disconnected() || s.is_down());
    let (total, silent) = live.fold((0, 0), |(total, silent), s| {
        (total + 1, silent + usize::from(!s.is_up()))
    });
    (silent > 0 && silent * 2 >= total).then(|| {
        format!(
            "{silent} of the cluster's {total} stores are Down or Disconnected at once: an outage, not the failure of one store"
        )
    })
}

/// `Ok` when `victim` may be taken out, else the reason and message of the refusal.
fn scale_in_refusal(
    view: Option<&Result<PdView, String>>,
    victim: &TiKV,
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
    match store::scale_in_refusal(&view.stores, victim_store, view.replication.max_replicas) {
        Some(message) => Err((REASON_SCALE_IN_REFUSED, message)),
        None => Ok(()),
    }
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
        assert!(Rules::leaving(&marked));
        let removed = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removed");
        assert!(is_leaving(&removed) && !is_cancellable(&removed));
    }

    fn group() -> TiKVGroup {
        let mut group = TiKVGroup::new(
            "tikv",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "replicas": 3,
                "template": {"spec": {"version": "v8.5.2"}}
            }))
            .unwrap(),
        );
        group.metadata.namespace = Some("db".into());
        group.metadata.uid = Some("u".into());
        group
    }

    fn observed(gate: Result<(), String>, view: Option<Result<PdView, String>>) -> Observed {
        Observed {
            pd: None,
            view,
            gate,
            running: Some("v8.5.1".into()),
        }
    }

    /// Runs `decide` over a view of `instances` with `observed`.
    fn decide<T>(
        instances: &[TiKV],
        observed: &Observed,
        decide: impl FnOnce(&View<'_>) -> T,
    ) -> T {
        let group = group();
        let cluster = Cluster::new("c", Default::default());
        decide(&GroupView {
            group: &group,
            namespace: "db",
            cluster: &cluster,
            instances,
            update_revision: "tikv-r2",
            observed,
        })
    }

    fn effects(decision: Decision<TiKV>) -> Vec<Effect<TiKV>> {
        match decision {
            Decision::Act(effects) => effects,
            other => panic!("expected effects, got {other:?}"),
        }
    }

    #[test]
    fn a_scale_out_keeps_a_store_being_removed_before_it_adds_one() {
        let marked = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
        let open = observed(Ok(()), None);
        let first = effects(
            decide(std::slice::from_ref(&marked), &open, |v| {
                Rules::create(v, "tikv-new", Topology::new(), 0)
            })
            .unwrap(),
        );
        assert!(
            matches!(&first[0], Effect::SetState { instance, key, value: None }
                if instance == "tikv-a" && *key == keys::ANNO_DEFER_DELETE),
            "{first:?}"
        );
        // The second create of the same reconcile has no store left to keep: it adds one.
        let second = effects(
            decide(std::slice::from_ref(&marked), &open, |v| {
                Rules::create(v, "tikv-new", Topology::new(), 1)
            })
            .unwrap(),
        );
        assert!(matches!(&second[..], [Effect::Create(t)] if t.name_any() == "tikv-new"));
    }

    #[test]
    fn while_pd_upgrades_a_new_store_runs_the_running_version_or_waits() {
        let gated = observed(Err("PD first".into()), None);
        let mut running = tikv(&[], "Serving");
        running.spec.template.common.version = "v8.5.1".into();
        let made = effects(
            decide(std::slice::from_ref(&running), &gated, |v| {
                Rules::create(v, "tikv-new", Topology::new(), 0)
            })
            .unwrap(),
        );
        assert!(
            matches!(&made[..], [Effect::Create(t)] if t.spec.template.common.version == "v8.5.1"),
            "{made:?}"
        );
        // Nothing runs yet that a new store could copy: the create waits and counts as held.
        let held = decide(&[], &gated, |v| {
            Rules::create(v, "tikv-new", Topology::new(), 0)
        });
        assert!(matches!(held, Ok(Decision::Hold)));
        // Version updates wait for the gate.
        let update = decide(std::slice::from_ref(&running), &gated, |v| {
            Rules::update(v, &running)
        });
        assert!(matches!(update, Ok(Decision::Skip)));
    }

    #[test]
    fn a_scale_in_without_a_pd_answer_is_refused_and_marks_nothing() {
        let victim = tikv(&[], "Serving");
        for (view, reason) in [
            (None, REASON_PD_NOT_FOUND),
            (Some(Err("timed out".to_string())), REASON_PD_UNREACHABLE),
        ] {
            let observed = observed(Ok(()), view);
            let decision = decide(std::slice::from_ref(&victim), &observed, |v| {
                Rules::delete(v, &victim)
            })
            .unwrap();
            assert!(
                matches!(&decision, Decision::Refuse { reason: r, .. } if *r == reason),
                "{decision:?}"
            );
        }
        // PD answers and has no store yet: the instance is marked.
        let empty = PdView {
            not_bootstrapped: true,
            ..PdView::default()
        };
        let observed = observed(Ok(()), Some(Ok(empty)));
        let marked = effects(
            decide(std::slice::from_ref(&victim), &observed, |v| {
                Rules::delete(v, &victim)
            })
            .unwrap(),
        );
        assert!(matches!(
            &marked[0],
            Effect::SetState { value: Some(_), .. }
        ));
    }

    #[test]
    fn the_status_names_the_gate_held_stores_and_leaving_stores() {
        let gated = observed(Err("waiting for PDGroup pd".into()), None);
        let outcome = Outcome {
            held: 2,
            ..Outcome::default()
        };
        let (message, reason) = decide(&[], &gated, |v| Rules::progress(v, &outcome));
        assert_eq!(reason, Some(reasons::WAITING_FOR_DEPENDENCIES));
        assert!(message.is_some_and(|m| m.contains("2 new store(s) wait too")));
        let leaving = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
        let open = observed(Ok(()), None);
        let (message, reason) = decide(std::slice::from_ref(&leaving), &open, |v| {
            Rules::progress(v, &Outcome::default())
        });
        assert_eq!(reason, Some(REASON_SCALING_IN));
        assert!(message.is_some_and(|m| m.contains("tikv-a")));
        // A refusal speaks for itself: no "taking out" message over it.
        let blocked = Outcome {
            blocked: true,
            ..Outcome::default()
        };
        let (_, reason) = decide(std::slice::from_ref(&leaving), &open, |v| {
            Rules::progress(v, &blocked)
        });
        assert_eq!(reason, None);
    }

    #[test]
    fn a_store_address_names_its_instance_in_either_form() {
        let mut group = TiKVGroup::new(
            "tikv",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "replicas": 3,
                "template": {"spec": {"version": "v8.5.2"}}
            }))
            .unwrap(),
        );
        group.metadata.namespace = Some("db".into());
        let short = Dns::default();
        let fqdn = Dns::fqdn("east.example");
        assert_eq!(
            instance_at(&group, "tikv-a.tikv-tikv-peer.db:20160", &short).as_deref(),
            Some("tikv-a")
        );
        assert_eq!(
            instance_at(
                &group,
                "tikv-a.tikv-tikv-peer.db.svc.east.example:20160",
                &fqdn
            )
            .as_deref(),
            Some("tikv-a")
        );
        // Another group's store, or a name of the other form, is not this group's.
        assert_eq!(
            instance_at(&group, "kv-a.kv-tikv-peer.db.svc.east.example:20160", &fqdn),
            None
        );
        assert_eq!(
            instance_at(&group, "tikv-a.tikv-tikv-peer.db:20160", &fqdn),
            None
        );
    }

    fn stores(states: &[(u64, &str)]) -> PdView {
        let stores = states
            .iter()
            .map(|(id, state)| {
                serde_json::from_value(serde_json::json!({
                    "store": {"id": id, "address": format!("tikv-{id}.tikv-tikv-peer.db:20160"),
                              "state_name": state}
                }))
                .unwrap()
            })
            .collect();
        PdView {
            stores: pd_client::StoresInfo {
                count: i64::try_from(states.len()).unwrap(),
                stores,
            },
            ..PdView::default()
        }
    }

    fn with_id(id: &str) -> TiKV {
        let mut tikv = tikv(&[], "Serving");
        tikv.status.as_mut().unwrap().id = id.into();
        tikv
    }

    #[test]
    fn a_store_fails_only_when_pd_says_down_by_its_recorded_id() {
        let pd = stores(&[(1, "Up"), (2, "Down"), (3, "Disconnected"), (4, "Offline")]);
        assert_eq!(store_health(&pd, &with_id("1")), failover::Health::Healthy);
        assert_eq!(
            store_health(&pd, &with_id("2")),
            failover::Health::Failing {
                why: "PD reports store 2 Down".into(),
                since: None
            }
        );
        // Between states, being removed, unlisted or never registered: cannot tell.
        for id in ["3", "4", "9", ""] {
            assert_eq!(
                store_health(&pd, &with_id(id)),
                failover::Health::Unknown,
                "{id}"
            );
        }
        // Without a PD answer nothing is judged.
        for view in [None, Some(Err("timed out".to_string()))] {
            let observed = observed(Ok(()), view);
            let tikv = with_id("2");
            let health = decide(std::slice::from_ref(&tikv), &observed, |v| {
                Rules::health(v, &tikv)
            });
            assert_eq!(health, failover::Health::Unknown);
        }
    }

    #[test]
    fn half_the_stores_silent_at_once_is_an_outage() {
        assert_eq!(
            stores_outage(&stores(&[(1, "Up"), (2, "Up"), (3, "Up")])),
            None
        );
        assert_eq!(
            stores_outage(&stores(&[(1, "Down"), (2, "Up"), (3, "Up")])),
            None
        );
        // Tombstone and Offline stores do not count either way.
        assert_eq!(
            stores_outage(&stores(&[
                (1, "Down"),
                (2, "Up"),
                (3, "Up"),
                (4, "Tombstone"),
                (5, "Offline")
            ])),
            None
        );
        let outage = stores_outage(&stores(&[(1, "Down"), (2, "Disconnected"), (3, "Up")]));
        assert!(outage.is_some_and(|m| m.starts_with("2 of the cluster's 3 stores")),);
        assert!(
            stores_outage(&stores(&[(1, "Down"), (2, "Down"), (3, "Up"), (4, "Up")])).is_some()
        );
        assert!(stores_outage(&stores(&[(1, "Down")])).is_some());
    }
}
