//! What the TiKVGroup and TiFlashGroup rules share, written once over the instances that hold a
//! store: which instances are leaving, a scale-out that keeps a store being removed instead of
//! adding one, a new store at the running version while the upgrade gate is closed, updates only
//! through the gate, marking a store for removal, the group's progress message, and what
//! failover sees of a store (its health by PD, an outage of the engine's stores).

use kube::{Resource, ResourceExt};
use operator_api::conditions::reasons;
use operator_api::core::{Instance, STORE_STATE_REMOVED, TiFlash, TiKV};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::failover;
use operator_runtime::group_reconcile::{Decision, Effect, Outcome, revision_of};
use operator_runtime::upgrade;

use crate::group::REASON_SCALING_IN;
use crate::pd::PdView;
use crate::store;

/// An instance that holds a store in PD: TiKV or TiFlash.
pub trait StoreInstance: Instance + Resource<DynamicType = ()> + Clone {
    /// Its kind, as Events name it.
    const KIND: &'static str;
    /// Whether its stores are TiFlash's (`engine=tiflash` in PD).
    const TIFLASH: bool;
    /// The state of its store as the instance last reported it.
    fn store_state(&self) -> Option<&str>;
    /// The store ID it recorded (empty before it learned one).
    fn recorded_store(&self) -> &str;
    /// Its `spec.offline` asks for its store to be taken out ([`crate::offline`]).
    fn offline(&self) -> bool;
}

impl StoreInstance for TiKV {
    const KIND: &'static str = "TiKV";
    const TIFLASH: bool = false;
    fn store_state(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.state.as_str())
    }
    fn recorded_store(&self) -> &str {
        self.status.as_ref().map_or("", |s| s.id.as_str())
    }
    fn offline(&self) -> bool {
        self.spec.offline == Some(true)
    }
}

impl StoreInstance for TiFlash {
    const KIND: &'static str = "TiFlash";
    const TIFLASH: bool = true;
    fn store_state(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.state.as_str())
    }
    fn recorded_store(&self) -> &str {
        self.status.as_ref().map_or("", |s| s.id.as_str())
    }
    fn offline(&self) -> bool {
        self.spec.offline == Some(true)
    }
}

/// How an instance's store is doing, for failover, by PD's view of its recorded ID: failing only
/// when PD says Down; a store PD does not list, or lists as Disconnected, Offline or Tombstone,
/// cannot be judged; nothing can while PD has not answered or is not bootstrapped.
pub fn store_health<I: StoreInstance>(
    view: Option<&Result<PdView, String>>,
    instance: &I,
) -> failover::Health {
    let Some(Ok(pd)) = view.filter(|v| v.as_ref().is_ok_and(|pd| !pd.not_bootstrapped)) else {
        return failover::Health::Unknown;
    };
    let Some(id) = store::recorded_id(instance.recorded_store()) else {
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

/// Half or more of the cluster's stores of `I`'s engine silent at once is an outage (a zone, the
/// network, PD's own view), which new stores would not mend: for TiKV, Regions without a
/// majority cannot be re-placed.
pub fn stores_outage<I: StoreInstance>(view: Option<&Result<PdView, String>>) -> Option<String> {
    let Some(Ok(pd)) = view else {
        return None;
    };
    let live = pd
        .stores
        .stores
        .iter()
        .filter(|s| store::is_tiflash(s) == I::TIFLASH)
        .filter(|s| s.is_up() || s.is_disconnected() || s.is_down());
    let (total, silent) = live.fold((0, 0), |(total, silent), s| {
        (total + 1, silent + usize::from(!s.is_up()))
    });
    // TiKV's wording is the one docs and alerts quote; TiFlash's says which stores it counts.
    let engine = if I::TIFLASH { "TiFlash " } else { "" };
    (silent > 0 && silent * 2 >= total).then(|| {
        format!(
            "{silent} of the cluster's {total} {engine}stores are Down or Disconnected at once: an outage, not the failure of one store"
        )
    })
}

/// Whether an instance is marked for removal (scale-in in progress): by this operator's mark, or
/// by `spec.offline` not taken over yet.
pub fn is_marked<I: StoreInstance>(instance: &I) -> bool {
    instance.annotations().contains_key(keys::ANNO_DEFER_DELETE) || instance.offline()
}

/// Whether an instance is leaving the group: deleted, or marked for removal.
pub fn is_leaving<I: StoreInstance>(instance: &I) -> bool {
    instance.meta().deletion_timestamp.is_some() || is_marked(instance)
}

/// Whether a scale-in is due: more instances stay than `replicas` asks for. A group then reads
/// PD's view afresh instead of the one shared for a second: its stores and `max-replicas` decide
/// the scale-in, and a `max-replicas` raised a moment ago must hold a store that would leave too
/// few.
pub fn scaling_in<I: StoreInstance>(instances: &[I], replicas: i32) -> bool {
    instances.iter().filter(|i| !is_leaving(*i)).count() > usize::try_from(replicas).unwrap_or(0)
}

/// Whether a marked instance can still be kept: its store is not removed yet, and its
/// `spec.offline` is taken over (until then clearing the mark would not keep it).
pub fn is_cancellable<I: StoreInstance>(instance: &I) -> bool {
    instance.annotations().contains_key(keys::ANNO_DEFER_DELETE)
        && !instance.offline()
        && instance.meta().deletion_timestamp.is_none()
        && instance.store_state() != Some(STORE_STATE_REMOVED)
}

/// The version the staying instances still run while the group asks for `version`: one that
/// differs from it, else `version` itself; `None` for a group without instances.
pub fn running<'a, I: StoreInstance>(instances: &'a [I], version: &'a str) -> Option<&'a str> {
    instances
        .iter()
        .filter(|i| !is_leaving(*i))
        .map(|i| i.common().version.as_str())
        .find(|v| !upgrade::same_version(v, version))
        .or_else(|| (!instances.is_empty()).then_some(version))
}

/// A scale-out's `ordinal`-th new store: a store being removed is kept instead (the newest
/// first); else `fresh` when the upgrade gate is open; else, since the version change waits
/// but the store count does not, a copy (`like`) of a staying instance on the `running`
/// version; held when there is none.
pub fn create<I: StoreInstance>(
    instances: &[I],
    ordinal: usize,
    gate_open: bool,
    running: Option<&str>,
    fresh: impl FnOnce() -> Result<I, BuildError>,
    like: impl FnOnce(&I) -> Result<I, BuildError>,
) -> Result<Decision<I>, BuildError> {
    let cancellable = instances.iter().filter(|i| is_cancellable(*i));
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
                    "keeping {} {kept}: its store was being removed and is kept instead of adding a new one",
                    I::KIND
                ),
            ),
        ]));
    }
    if gate_open {
        return Ok(Decision::Act(vec![Effect::Create(fresh()?)]));
    }
    let source = instances
        .iter()
        .filter(|i| !is_leaving(*i))
        .find(|i| running.is_some_and(|v| upgrade::same_version(&i.common().version, v)));
    match source {
        Some(source) => Ok(Decision::Act(vec![Effect::Create(like(source)?)])),
        None => Ok(Decision::Hold),
    }
}

/// An update of an instance to the group's template: skipped while the upgrade gate is closed.
pub fn update<I: StoreInstance>(
    gate_open: bool,
    rebuilt: impl FnOnce() -> Result<I, BuildError>,
) -> Result<Decision<I>, BuildError> {
    if !gate_open {
        return Ok(Decision::Skip);
    }
    Ok(Decision::Act(vec![Effect::Update(rebuilt()?)]))
}

/// A scale-in of `victim`: refused with the reason and message, or the instance marked, so its
/// store is taken offline through PD before anything of it goes.
pub fn remove<I: StoreInstance>(
    victim: &I,
    refusal: Result<(), (&'static str, String)>,
) -> Decision<I> {
    let name = victim.name_any();
    match refusal {
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
                    "removing {} {name}: its store is taken offline through PD first",
                    I::KIND
                ),
            ),
        ]),
    }
}

/// The group's progress: waiting for its dependencies while the gate holds an update or a new
/// store, taking out the stores of leaving instances, or what the reconcile is waiting for.
pub fn progress<I: StoreInstance>(
    instances: &[I],
    update_revision: &str,
    gate: &Result<(), String>,
    outcome: &Outcome,
) -> (Option<String>, Option<&'static str>) {
    let outdated = instances
        .iter()
        .filter(|i| !is_leaving(*i))
        .any(|i| revision_of(i) != update_revision);
    if let Err(message) = gate
        && (outdated || outcome.held > 0)
    {
        let message = if outcome.held > 0 {
            format!("{message}; {} new store(s) wait too", outcome.held)
        } else {
            message.clone()
        };
        return (Some(message), Some(reasons::WAITING_FOR_DEPENDENCIES));
    }
    let leaving: Vec<String> = instances
        .iter()
        .filter(|i| is_leaving(*i))
        .map(ResourceExt::name_any)
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
