//! The group update engine, the same for every component: from the desired replicas, the update
//! revision and what each instance looks like, it decides which instance to create, update in
//! place or delete next — unhealthy ones first, the component's "last" one (the PD leader) last,
//! spread over the schedule policy's topologies — within `maxSurge` and `maxUnavailable`.
//!
//! It is a pure function: the controllers observe, call [`plan`], and carry out the actions.

use std::cmp::Ordering;

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
    /// Being deleted (deletion requested, finalizers still running).
    pub deleting: bool,
    /// Where it runs.
    pub topology: Topology,
    /// The component wants it handled after the others (the PD leader).
    pub last: bool,
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
}

impl Plan {
    fn wait(reason: String) -> Self {
        Plan {
            actions: Vec::new(),
            waiting: Some(reason),
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

/// Decides the next steps for a group.
pub fn plan(policy: &Policy, instances: &[InstanceView]) -> Plan {
    let active: Vec<&InstanceView> = instances.iter().filter(|i| !i.deleting).collect();
    let deleting = instances.len() - active.len();
    let replicas = usize::try_from(policy.replicas.max(0)).unwrap_or(0);
    let outdated: Vec<&InstanceView> = active
        .iter()
        .copied()
        .filter(|i| i.revision != policy.update_revision)
        .collect();
    let not_ready = active.iter().filter(|i| !i.ready).count();
    let updated_not_ready = active
        .iter()
        .filter(|i| i.revision == policy.update_revision && !i.ready)
        .count();

    if active.len() < replicas {
        let mut counts = topology_counts(policy, &active);
        let actions = (active.len()..replicas)
            .map(|_| {
                let topology = choose_topology_for_create(policy, &mut counts);
                Action::Create { topology }
            })
            .collect();
        return Plan {
            actions,
            waiting: None,
        };
    }

    if active.len() > replicas {
        if deleting > 0 {
            return Plan::wait(format!("waiting for {deleting} instance(s) being removed"));
        }
        let Some(victim) = choose_victim(policy, &active) else {
            return Plan::default();
        };
        // Surplus from a surge: keep the old instance until its replacements are ready.
        if victim.ready && updated_not_ready > 0 && !outdated.is_empty() {
            return Plan::wait(format!(
                "waiting for {updated_not_ready} new instance(s) to become ready"
            ));
        }
        return Plan {
            actions: vec![Action::Delete {
                name: victim.name.clone(),
            }],
            waiting: None,
        };
    }

    if outdated.is_empty() {
        return match not_ready {
            0 => Plan::default(),
            n => Plan::wait(format!("waiting for {n} instance(s) to become ready")),
        };
    }

    if policy.max_surge > 0 {
        if not_ready > 0 || deleting > 0 {
            return Plan::wait(format!(
                "waiting for {} instance(s) to become ready",
                not_ready + deleting
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
        return Plan {
            actions,
            waiting: None,
        };
    }

    let mut candidates = outdated;
    candidates.sort_by(|a, b| update_order(a, b));
    let Some(next) = candidates.first() else {
        return Plan::default();
    };
    let unavailable = not_ready + deleting;
    let budget = usize::try_from(policy.max_unavailable.max(1)).unwrap_or(1);
    if !next.ready || unavailable < budget {
        return Plan {
            actions: vec![Action::Update {
                name: next.name.clone(),
            }],
            waiting: None,
        };
    }
    Plan::wait(format!(
        "waiting for {unavailable} instance(s) to become ready before updating {}",
        next.name
    ))
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
            deleting: false,
            topology: zone(z),
            last: false,
        }
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
