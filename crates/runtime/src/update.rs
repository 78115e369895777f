//! The group update engine, the same for every component: from the desired replicas, the update
//! revision and what each instance looks like, it decides which instance to create, update in
//! place or delete next — unhealthy ones first, the component's "last" one (the PD leader) last,
//! spread over the schedule policy's topologies — within `maxSurge` and `maxUnavailable`.
//!
//! An instance counts as available only once it has been Ready for the group's
//! `minReadySeconds` ([`availability`]); until then it holds the roll like an unready one, and
//! the plan says when to look again ([`Plan::recheck_after`]).
//!
//! It is a pure function: the controllers observe, call [`plan`], and carry out the actions.

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use operator_api::core::{SchedulePolicy, Topology};

/// What the engine needs to know of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceView {
    /// Instance name.
    pub name: String,
    /// The revision it was made from (its revision label).
    pub revision: String,
    /// Ready and healthy.
    pub ready: bool,
    /// Ready, but not yet for the group's `minReadySeconds`: the time still to go.
    pub settling: Option<Duration>,
    /// Being deleted (deletion requested, finalizers still running).
    pub deleting: bool,
    /// Where it runs.
    pub topology: Topology,
    /// The component wants it handled after the others (the PD leader).
    pub last: bool,
}

impl InstanceView {
    /// Ready for at least `minReadySeconds`: only then does the roll go on past it.
    pub fn available(&self) -> bool {
        self.ready && self.settling.is_none()
    }
}

/// Whether an instance that is Ready counts as available yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Ready for at least `minReadySeconds`.
    Available,
    /// Ready, for less than `minReadySeconds`: available after this much more.
    Settling(Duration),
}

/// Whether an instance Ready since `ready_since` (its `Ready` condition's
/// `lastTransitionTime`) counts as available at `now` under `minReadySeconds`. A transition time
/// in the future (clocks apart) waits no longer than `minReadySeconds` from `now`.
pub fn availability(
    ready_since: Timestamp,
    min_ready_seconds: i64,
    now: Timestamp,
) -> Availability {
    let min = SignedDuration::from_secs(min_ready_seconds.max(0));
    let held = now.duration_since(ready_since).max(SignedDuration::ZERO);
    match Duration::try_from(min - held) {
        Ok(left) if !left.is_zero() => Availability::Settling(left),
        _ => Availability::Available,
    }
}

/// What the group asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Desired instances.
    pub replicas: i32,
    /// The revision every instance should have.
    pub update_revision: String,
    /// Extra instances a rolling update may create (TiDB); 0 updates in place.
    pub max_surge: i32,
    /// Instances that may be unavailable at once during a rolling update.
    pub max_unavailable: i32,
    /// Topologies to spread over, with weights; empty means no constraint.
    pub topologies: Vec<(Topology, i32)>,
}

/// One step of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create an instance of the update revision in this topology.
    Create {
        /// Where it goes.
        topology: Topology,
    },
    /// Update this instance in place to the update revision.
    Update {
        /// Which.
        name: String,
    },
    /// Delete this instance.
    Delete {
        /// Which.
        name: String,
    },
}

/// The engine's decision: actions to take now, and why it waits if it does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions to carry out now.
    pub actions: Vec<Action>,
    /// Why nothing (more) is done now, for a condition.
    pub waiting: Option<String>,
    /// When the wait ends by itself (an instance reaches `minReadySeconds`) rather than with a
    /// change the watches see: look again after this long.
    pub recheck_after: Option<Duration>,
}

impl Plan {
    fn wait(reason: String) -> Self {
        Plan {
            actions: Vec::new(),
            waiting: Some(reason),
            recheck_after: None,
        }
    }

    fn act(actions: Vec<Action>) -> Self {
        Plan {
            actions,
            waiting: None,
            recheck_after: None,
        }
    }
}

/// The topologies of a group's schedule policies, with their weights (default 1).
pub fn topologies(policies: &[SchedulePolicy]) -> Vec<(Topology, i32)> {
    policies
        .iter()
        .filter_map(|p| p.evenly_spread.as_ref())
        .flat_map(|spread| spread.topologies.iter())
        .map(|t| (t.topology.clone(), t.weight.unwrap_or(1).max(1)))
        .collect()
}

/// Decides the next steps for a group. When it waits for an instance to reach
/// `minReadySeconds`, [`Plan::recheck_after`] says when that will be.
pub fn plan(policy: &Policy, instances: &[InstanceView]) -> Plan {
    let mut plan = decide(policy, instances);
    if plan.waiting.is_some() {
        plan.recheck_after = instances
            .iter()
            .filter(|i| !i.deleting && i.ready)
            .filter_map(|i| i.settling)
            .min();
    }
    plan
}

fn decide(policy: &Policy, instances: &[InstanceView]) -> Plan {
    let active: Vec<&InstanceView> = instances.iter().filter(|i| !i.deleting).collect();
    let deleting = instances.len() - active.len();
    let replicas = usize::try_from(policy.replicas.max(0)).unwrap_or(0);
    let outdated: Vec<&InstanceView> = active
        .iter()
        .copied()
        .filter(|i| i.revision != policy.update_revision)
        .collect();
    let not_ready = active.iter().filter(|i| !i.ready).count();
    // Ready but not yet for minReadySeconds counts as unavailable: the roll does not go on past it.
    let unavailable: Vec<&InstanceView> =
        active.iter().copied().filter(|i| !i.available()).collect();
    let updated_unavailable: Vec<&InstanceView> = unavailable
        .iter()
        .copied()
        .filter(|i| i.revision == policy.update_revision)
        .collect();

    if active.len() < replicas {
        let mut counts = topology_counts(policy, &active);
        let actions = (active.len()..replicas)
            .map(|_| {
                let topology = choose_topology_for_create(policy, &mut counts);
                Action::Create { topology }
            })
            .collect();
        return Plan::act(actions);
    }

    if active.len() > replicas {
        if deleting > 0 {
            return Plan::wait(format!("waiting for {deleting} instance(s) being removed"));
        }
        let Some(victim) = choose_victim(policy, &active) else {
            return Plan::default();
        };
        // Surplus from a surge: keep the old instance until its replacements are available.
        if victim.ready && !updated_unavailable.is_empty() && !outdated.is_empty() {
            return Plan::wait(format!(
                "waiting for {}",
                unavailable_note(&updated_unavailable, 0)
            ));
        }
        return Plan::act(vec![Action::Delete {
            name: victim.name.clone(),
        }]);
    }

    if outdated.is_empty() {
        return match not_ready {
            0 => Plan::default(),
            n => Plan::wait(format!("waiting for {n} instance(s) to become ready")),
        };
    }

    if policy.max_surge > 0 {
        if !unavailable.is_empty() || deleting > 0 {
            return Plan::wait(format!(
                "waiting for {}",
                unavailable_note(&unavailable, deleting)
            ));
        }
        let mut counts = topology_counts(policy, &active);
        let surge = usize::try_from(policy.max_surge)
            .unwrap_or(1)
            .min(outdated.len());
        let actions = (0..surge)
            .map(|_| Action::Create {
                topology: choose_topology_for_create(policy, &mut counts),
            })
            .collect();
        return Plan::act(actions);
    }

    let mut candidates = outdated;
    candidates.sort_by(|a, b| update_order(a, b));
    let Some(next) = candidates.first() else {
        return Plan::default();
    };
    let budget = usize::try_from(policy.max_unavailable.max(1)).unwrap_or(1);
    // An outdated instance that is not Ready is down already: updating it costs nothing more.
    if !next.ready || unavailable.len() + deleting < budget {
        return Plan::act(vec![Action::Update {
            name: next.name.clone(),
        }]);
    }
    Plan::wait(format!(
        "waiting for {} before updating {}",
        unavailable_note(&unavailable, deleting),
        next.name
    ))
}

/// What a wait is for, for the group's condition: instances to become ready, instances Ready
/// for less than `minReadySeconds` (named; the time to go is left out so that the message, and
/// the status, stay the same while the wait lasts), instances being removed.
fn unavailable_note(unavailable: &[&InstanceView], deleting: usize) -> String {
    let not_ready = unavailable.iter().filter(|i| !i.ready).count();
    let settling: Vec<&str> = unavailable
        .iter()
        .filter(|i| i.ready && i.settling.is_some())
        .map(|i| i.name.as_str())
        .collect();
    let mut parts = Vec::new();
    if not_ready > 0 {
        parts.push(format!("{not_ready} instance(s) to become ready"));
    }
    if !settling.is_empty() {
        parts.push(format!(
            "{} to be Ready for minReadySeconds",
            settling.join(", ")
        ));
    }
    if deleting > 0 {
        parts.push(format!("{deleting} instance(s) being removed"));
    }
    parts.join(" and ")
}

/// Unhealthy first, then not-last, then by name for a stable order.
fn update_order(a: &InstanceView, b: &InstanceView) -> Ordering {
    a.ready
        .cmp(&b.ready)
        .then(a.last.cmp(&b.last))
        .then(a.name.cmp(&b.name))
}

fn topology_counts(policy: &Policy, active: &[&InstanceView]) -> Vec<usize> {
    policy
        .topologies
        .iter()
        .map(|(t, _)| active.iter().filter(|i| &i.topology == t).count())
        .collect()
}

/// The topology with the lowest filling relative to its weight; counts are updated so several
/// creations in one plan spread too.
fn choose_topology_for_create(policy: &Policy, counts: &mut [usize]) -> Topology {
    let best = policy
        .topologies
        .iter()
        .zip(counts.iter())
        .enumerate()
        .min_by(|(_, ((_, wa), ca)), (_, ((_, wb), cb))| {
            ratio(**ca + 1, *wa).total_cmp(&ratio(**cb + 1, *wb))
        })
        .map(|(index, _)| index);
    match best {
        Some(index) => {
            counts[index] += 1;
            policy.topologies[index].0.clone()
        }
        None => Topology::new(),
    }
}

fn ratio(count: usize, weight: i32) -> f64 {
    count as f64 / f64::from(weight.max(1))
}

/// The instance to remove on scale-in: outdated first (which also ends a surge), not ready next,
/// the "last" one never
/// before the others, then from the most over-filled topology, then the newest name.
fn choose_victim<'a>(policy: &Policy, active: &[&'a InstanceView]) -> Option<&'a InstanceView> {
    let counts = topology_counts(policy, active);
    let filling = |i: &InstanceView| {
        policy
            .topologies
            .iter()
            .position(|(t, _)| *t == i.topology)
            .map(|index| ratio(counts[index], policy.topologies[index].1))
            // An instance outside every topology is the first to go.
            .unwrap_or(if policy.topologies.is_empty() {
                0.0
            } else {
                f64::MAX
            })
    };
    active.iter().copied().min_by(|a, b| {
        (a.revision == policy.update_revision)
            .cmp(&(b.revision == policy.update_revision))
            .then(a.ready.cmp(&b.ready))
            .then(a.last.cmp(&b.last))
            .then(filling(b).total_cmp(&filling(a)))
            .then(b.name.cmp(&a.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(z: &str) -> Topology {
        [("topology.kubernetes.io/zone".to_string(), z.to_string())].into()
    }

    fn inst(name: &str, revision: &str, ready: bool, z: &str) -> InstanceView {
        InstanceView {
            name: name.into(),
            revision: revision.into(),
            ready,
            settling: None,
            deleting: false,
            topology: zone(z),
            last: false,
        }
    }

    /// Ready, with `left` seconds to go before `minReadySeconds`.
    fn settling(name: &str, revision: &str, z: &str, left: u64) -> InstanceView {
        InstanceView {
            settling: Some(Duration::from_secs(left)),
            ..inst(name, revision, true, z)
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn an_instance_is_available_once_ready_for_min_ready_seconds() {
        use Availability::{Available, Settling};
        let ms = Duration::from_millis;
        // (Ready since, minReadySeconds, now) -> availability
        let cases = [
            (at(100), 0, at(100), Available),
            (at(100), 5, at(100), Settling(ms(5000))),
            (at(100), 5, at(103), Settling(ms(2000))),
            (
                at(100),
                5,
                at(104) + SignedDuration::from_millis(250),
                Settling(ms(750)),
            ),
            (at(100), 5, at(105), Available),
            (at(100), 5, at(400), Available),
            (at(100), 10, at(109), Settling(ms(1000))),
            // A transition time ahead of this clock waits no more than minReadySeconds.
            (at(110), 5, at(100), Settling(ms(5000))),
            // A negative minReadySeconds (refused at admission) counts as 0.
            (at(100), -3, at(100), Available),
        ];
        for (since, min_ready, now, expected) in cases {
            assert_eq!(
                availability(since, min_ready, now),
                expected,
                "Ready since {since}, minReadySeconds {min_ready}, now {now}"
            );
        }
    }

    #[test]
    fn in_place_update_waits_until_the_updated_instance_has_been_ready_for_min_ready_seconds() {
        let instances = vec![
            settling("pd-a", "new", "a", 3),
            inst("pd-b", "old", true, "b"),
            inst("pd-c", "old", true, "c"),
        ];
        let p = plan(&policy(3, 0), &instances);
        assert!(p.actions.is_empty(), "{p:?}");
        let waiting = p.waiting.unwrap_or_default();
        assert!(
            waiting.contains("pd-a to be Ready for minReadySeconds before updating pd-b"),
            "{waiting}"
        );
        assert_eq!(p.recheck_after, Some(Duration::from_secs(3)));

        // Once it counts as available the next one goes, and nothing is rechecked on a timer.
        let instances = vec![
            inst("pd-a", "new", true, "a"),
            inst("pd-b", "old", true, "b"),
            inst("pd-c", "old", true, "c"),
        ];
        let p = plan(&policy(3, 0), &instances);
        assert_eq!(
            p.actions,
            vec![Action::Update {
                name: "pd-b".into()
            }]
        );
        assert_eq!(p.recheck_after, None);
    }

    #[test]
    fn a_settling_outdated_instance_is_not_taken_for_a_down_one() {
        // pd-b came back Ready a moment ago: restarting it now would take a second member down
        // while pd-c is still settling after its update.
        let instances = vec![
            inst("pd-a", "old", true, "a"),
            settling("pd-b", "old", "b", 2),
            settling("pd-c", "new", "c", 4),
        ];
        let p = plan(&policy(3, 0), &instances);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.recheck_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn surge_keeps_the_old_instance_until_the_new_one_has_been_ready_for_min_ready_seconds() {
        let instances = vec![
            inst("db-a", "old", true, "a"),
            inst("db-b", "old", true, "b"),
            settling("db-c", "new", "c", 7),
        ];
        let p = plan(&policy(2, 1), &instances);
        assert!(p.actions.is_empty(), "{p:?}");
        assert!(
            p.waiting
                .unwrap_or_default()
                .contains("db-c to be Ready for minReadySeconds"),
            "the wait names the new instance"
        );
        assert_eq!(p.recheck_after, Some(Duration::from_secs(7)));

        // The next surge waits for the replacement of the first old one, too.
        let instances = vec![
            inst("db-b", "old", true, "b"),
            settling("db-c", "new", "c", 1),
        ];
        let p = plan(&policy(2, 1), &instances);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.recheck_after, Some(Duration::from_secs(1)));
        let instances = vec![
            inst("db-b", "old", true, "b"),
            inst("db-c", "new", true, "c"),
        ];
        assert!(matches!(
            plan(&policy(2, 1), &instances).actions.as_slice(),
            [Action::Create { .. }]
        ));
    }

    #[test]
    fn scaling_out_does_not_wait_for_min_ready_seconds() {
        let instances = vec![settling("db-a", "new", "a", 9)];
        let p = plan(&policy(2, 0), &instances);
        assert!(
            matches!(p.actions.as_slice(), [Action::Create { .. }]),
            "{p:?}"
        );
        assert_eq!(p.recheck_after, None);
    }

    fn policy(replicas: i32, surge: i32) -> Policy {
        Policy {
            replicas,
            update_revision: "new".into(),
            max_surge: surge,
            max_unavailable: 1,
            topologies: vec![(zone("a"), 1), (zone("b"), 1), (zone("c"), 1)],
        }
    }

    #[test]
    fn creates_spread_over_topologies() {
        let plan = plan(&policy(3, 0), &[]);
        let zones: Vec<_> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::Create { topology } => topology["topology.kubernetes.io/zone"].clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(zones, ["a", "b", "c"]);
    }

    #[test]
    fn weights_shape_the_spread() {
        let mut p = policy(4, 0);
        p.topologies = vec![(zone("a"), 1), (zone("b"), 3)];
        let plan = plan(&p, &[]);
        let in_b = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Create { topology } if *topology == zone("b")))
            .count();
        assert_eq!(in_b, 3);
    }

    #[test]
    fn scale_in_removes_the_unhealthy_then_the_overfilled_and_never_the_last_first() {
        let mut leader = inst("pd-a", "new", true, "a");
        leader.last = true;
        let instances = vec![
            leader.clone(),
            inst("pd-b", "new", true, "a"),
            inst("pd-c", "new", true, "b"),
        ];
        assert_eq!(
            plan(&policy(2, 0), &instances).actions,
            vec![Action::Delete {
                name: "pd-b".into()
            }]
        );

        let instances = vec![
            leader,
            inst("pd-b", "new", true, "a"),
            inst("pd-c", "new", false, "b"),
        ];
        assert_eq!(
            plan(&policy(2, 0), &instances).actions,
            vec![Action::Delete {
                name: "pd-c".into()
            }]
        );
    }

    #[test]
    fn scale_in_is_one_at_a_time() {
        let mut gone = inst("pd-d", "new", true, "c");
        gone.deleting = true;
        let instances = vec![
            inst("pd-a", "new", true, "a"),
            inst("pd-b", "new", true, "b"),
            inst("pd-c", "new", true, "c"),
            gone,
        ];
        let plan = plan(&policy(2, 0), &instances);
        assert!(plan.actions.is_empty());
        assert!(plan.waiting.unwrap().contains("being removed"));
    }

    #[test]
    fn in_place_updates_one_at_a_time_unhealthy_first_last_last() {
        let mut leader = inst("pd-a", "old", true, "a");
        leader.last = true;
        let instances = vec![
            leader.clone(),
            inst("pd-b", "old", true, "b"),
            inst("pd-c", "old", true, "c"),
        ];
        assert_eq!(
            plan(&policy(3, 0), &instances).actions,
            vec![Action::Update {
                name: "pd-b".into()
            }]
        );

        // pd-b is updated but not ready yet: nothing else moves.
        let instances = vec![
            leader.clone(),
            inst("pd-b", "new", false, "b"),
            inst("pd-c", "old", true, "c"),
        ];
        let p = plan(&policy(3, 0), &instances);
        assert!(p.actions.is_empty(), "{p:?}");

        // An unhealthy outdated instance is updated even then: it is unavailable already.
        let instances = vec![
            leader.clone(),
            inst("pd-b", "new", false, "b"),
            inst("pd-c", "old", false, "c"),
        ];
        assert_eq!(
            plan(&policy(3, 0), &instances).actions,
            vec![Action::Update {
                name: "pd-c".into()
            }]
        );

        // The leader goes last.
        let instances = vec![
            leader,
            inst("pd-b", "new", true, "b"),
            inst("pd-c", "new", true, "c"),
        ];
        assert_eq!(
            plan(&policy(3, 0), &instances).actions,
            vec![Action::Update {
                name: "pd-a".into()
            }]
        );
    }

    #[test]
    fn surge_creates_first_and_removes_the_old_once_the_new_is_ready() {
        let old = vec![
            inst("db-a", "old", true, "a"),
            inst("db-b", "old", true, "b"),
        ];
        let p = plan(&policy(2, 1), &old);
        assert!(
            matches!(p.actions.as_slice(), [Action::Create { .. }]),
            "{p:?}"
        );

        let mut with_new = old.clone();
        with_new.push(inst("db-c", "new", false, "c"));
        let p = plan(&policy(2, 1), &with_new);
        assert!(
            p.actions.is_empty(),
            "the old one stays until the new one is ready: {p:?}"
        );

        with_new[2].ready = true;
        assert_eq!(
            plan(&policy(2, 1), &with_new).actions,
            vec![Action::Delete {
                name: "db-b".into()
            }]
        );
    }

    #[test]
    fn nothing_to_do_when_everything_is_current_and_ready() {
        let instances = vec![inst("a", "new", true, "a"), inst("b", "new", true, "b")];
        assert_eq!(plan(&policy(2, 0), &instances), Plan::default());
    }
}
