//! Pure decisions about a store whose Pod's Node is cordoned: who needs the store's
//! evict-leader scheduler (the one answer every place that could remove it follows), and the
//! next step of evicting the leaders of a store on a cordoned Node and of taking the scheduler
//! away once the store serves from a schedulable Node again.

use std::time::Duration;

use operator_runtime::node::PodNode;

use crate::store::StoreLookup;

/// Who needs a store's evict-leader scheduler. The scheduler may go only when nobody does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerNeed {
    /// A restart of the store's Pod: the Pod is outdated, or a restart recorded its leader
    /// eviction and the new Pod does not serve yet.
    pub restart: bool,
    /// The cordon: the Pod's Node is cordoned, or a cordon recorded its leader eviction and the
    /// store does not serve from a schedulable Node yet.
    pub cordon: bool,
}

/// What decides who needs a store's scheduler.
#[derive(Clone, Debug)]
pub struct NeedInput<'a> {
    /// The restart recorded the start of its leader eviction (its annotation).
    pub restart_recorded: bool,
    /// The Pod exists, is not being deleted and is outdated: a restart is due.
    pub pod_outdated: bool,
    /// A cordon recorded the start of its leader eviction (its annotation).
    pub cordon_recorded: bool,
    /// Where the Pod runs.
    pub node: &'a PodNode,
    /// The Pod is ready and the store serves from it (Up, started no earlier than the Pod).
    pub serving: bool,
}

/// The one owner of the decision whether a store's evict-leader scheduler stays: the restart,
/// the cordon, both or neither need it. Every place that would remove it (the end of a restart,
/// a restart held by down peers, the end of a cordon, the group's clean-up through the
/// annotations) asks this first.
pub fn scheduler_need(input: &NeedInput<'_>) -> SchedulerNeed {
    let restart = input.pod_outdated || (input.restart_recorded && !input.serving);
    let back = input.serving && matches!(input.node, PodNode::Schedulable(_));
    let cordon = input.node.is_cordoned() || (input.cordon_recorded && !back);
    SchedulerNeed { restart, cordon }
}

/// Whether the end of a restart (or a restart held by down peers) removes the store's
/// scheduler itself. Not while the cordon needs it, nor once the cordon recorded its eviction:
/// then the cordon's release removes it, in the same reconcile, so one place says why.
pub fn restart_may_remove(need: SchedulerNeed, cordon_recorded: bool) -> bool {
    !need.cordon && !cordon_recorded
}

/// What the cordon step of a store sees.
#[derive(Clone, Debug)]
pub struct CordonInput<'a> {
    /// What PD says of the store.
    pub store: StoreLookup<'a>,
    /// The store is under the evict-leader scheduler.
    pub evicting: bool,
    /// Where the store's Pod runs.
    pub node: &'a PodNode,
    /// When the cordon's leader eviction was recorded (ms since the epoch), if it was.
    pub recorded_ms: Option<i64>,
    /// Who needs the scheduler ([`scheduler_need`]).
    pub need: SchedulerNeed,
    /// Other stores under the evict-leader scheduler.
    pub evicted_elsewhere: usize,
    /// Other Up stores not under the scheduler: those that can take the leaders.
    pub takers: usize,
    /// PD's `max-replicas`.
    pub max_replicas: u64,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// How long the operator waits for the leaders before it says they did not all leave.
    pub timeout: Duration,
}

/// Why the leaders of a store on a cordoned Node are not evicted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// No other Up store outside the scheduler could take them.
    NoTaker,
    /// As many stores as `max-replicas` would be evicted: a Region could have every replica on
    /// an evicted store, and its leader nowhere to go.
    TooManyEvicted {
        /// Stores already evicted.
        evicted: usize,
        /// PD's `max-replicas`.
        max_replicas: u64,
    },
}

/// The next step for a store and its Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CordonStep {
    /// No cordon and nothing recorded: nothing to do.
    Idle,
    /// Record the start of the eviction (the annotation), before the scheduler is added, so a
    /// controller that restarts, and the group's clean-up, know who added it.
    Record,
    /// Add the evict-leader scheduler.
    AddScheduler,
    /// The leaders are leaving.
    Evicting {
        /// Leaders left.
        leaders: i64,
        /// How long the eviction has lasted.
        waited: Duration,
    },
    /// No leader is left on the store: its Pod is cheap to stop.
    Evicted,
    /// Leaders are still there after the timeout. The scheduler stays while the Node is
    /// cordoned; the operator only stops waiting.
    TimedOut {
        /// Leaders left.
        leaders: i64,
    },
    /// The leaders are not evicted now; looked at again.
    Held(Held),
    /// The store does not serve (not registered, Disconnected, Down) or PD does not list it:
    /// it holds no leaders to move.
    NotServing,
    /// The Node is no longer cordoned (or the Pod is gone or elsewhere) but the store does not
    /// serve from a schedulable Node yet: the scheduler stays.
    WaitForStore,
    /// The store serves from a schedulable Node: the scheduler goes (unless a restart needs
    /// it), then the record.
    Release {
        /// Whether to remove the scheduler.
        remove_scheduler: bool,
    },
}

/// Decides the next cordon step of a store.
pub fn cordon_step(input: &CordonInput<'_>) -> CordonStep {
    if !input.node.is_cordoned() {
        return match input.recorded_ms {
            None => CordonStep::Idle,
            Some(_) if input.need.cordon => CordonStep::WaitForStore,
            Some(_) => CordonStep::Release {
                remove_scheduler: input.evicting && !input.need.restart,
            },
        };
    }
    let store = match input.store {
        StoreLookup::Listed(store) if store.is_up() => store,
        _ => return CordonStep::NotServing,
    };
    if !input.evicting {
        if input.takers == 0 {
            return CordonStep::Held(Held::NoTaker);
        }
        // With fewer evicted stores than replicas, every Region keeps a replica on a store that
        // takes leaders.
        let evicted = input.evicted_elsewhere + 1;
        if u64::try_from(evicted).unwrap_or(u64::MAX) >= input.max_replicas {
            return CordonStep::Held(Held::TooManyEvicted {
                evicted: input.evicted_elsewhere,
                max_replicas: input.max_replicas,
            });
        }
    }
    let Some(started) = input.recorded_ms else {
        return CordonStep::Record;
    };
    if !input.evicting {
        return CordonStep::AddScheduler;
    }
    let leaders = store.status.leader_count;
    if leaders <= 0 {
        return CordonStep::Evicted;
    }
    let waited = Duration::from_millis(u64::try_from(input.now_ms - started).unwrap_or(0));
    if waited >= input.timeout {
        return CordonStep::TimedOut { leaders };
    }
    CordonStep::Evicting { leaders, waited }
}

#[cfg(test)]
mod tests {
    use pd_client::{Store, StoreInfo, StoreStatus};

    use super::*;

    fn cordoned() -> PodNode {
        PodNode::Cordoned("n1".into())
    }

    fn schedulable() -> PodNode {
        PodNode::Schedulable("n2".into())
    }

    /// Who needs the scheduler, as a table: restart recorded, Pod outdated, cordon recorded,
    /// Node, serving → (restart, cordon).
    #[test]
    fn the_scheduler_stays_while_a_restart_or_a_cordon_needs_it() {
        let (c, s, u) = (cordoned(), schedulable(), PodNode::Unknown);
        type Row<'a> = (&'a str, bool, bool, bool, &'a PodNode, bool, (bool, bool));
        let table: [Row<'_>; 12] = [
            (
                "nothing going on",
                false,
                false,
                false,
                &s,
                true,
                (false, false),
            ),
            (
                "a hand-added scheduler",
                false,
                false,
                false,
                &s,
                false,
                (false, false),
            ),
            (
                "an outdated Pod",
                false,
                true,
                false,
                &s,
                true,
                (true, false),
            ),
            (
                "a restart waiting for the new Pod",
                true,
                false,
                false,
                &u,
                false,
                (true, false),
            ),
            (
                "a restart whose new Pod serves",
                true,
                false,
                false,
                &s,
                true,
                (false, false),
            ),
            (
                "a cordoned Node, nothing recorded yet",
                false,
                false,
                false,
                &c,
                true,
                (false, true),
            ),
            (
                "a cordoned Node",
                false,
                false,
                true,
                &c,
                true,
                (false, true),
            ),
            (
                "evicted, Pod gone",
                false,
                false,
                true,
                &u,
                false,
                (false, true),
            ),
            (
                "back elsewhere, not serving yet",
                false,
                false,
                true,
                &s,
                false,
                (false, true),
            ),
            (
                "back elsewhere and serving",
                false,
                false,
                true,
                &s,
                true,
                (false, false),
            ),
            (
                "restart and cordon at once",
                true,
                true,
                true,
                &c,
                true,
                (true, true),
            ),
            (
                "serving but Node unknown",
                false,
                false,
                true,
                &u,
                true,
                (false, true),
            ),
        ];
        for (case, restart_recorded, pod_outdated, cordon_recorded, node, serving, want) in table {
            let need = scheduler_need(&NeedInput {
                restart_recorded,
                pod_outdated,
                cordon_recorded,
                node,
                serving,
            });
            assert_eq!((need.restart, need.cordon), want, "{case}");
        }
    }

    #[test]
    fn a_restart_leaves_a_scheduler_the_cordon_recorded_to_the_cordon() {
        let nobody = SchedulerNeed::default();
        let cordon = SchedulerNeed {
            restart: false,
            cordon: true,
        };
        assert!(restart_may_remove(nobody, false));
        assert!(!restart_may_remove(nobody, true), "the cordon releases it");
        assert!(!restart_may_remove(cordon, false), "the cordon needs it");
        assert!(!restart_may_remove(cordon, true));
    }

    fn store(state: &str, leaders: i64) -> StoreInfo {
        StoreInfo {
            store: Store {
                id: 1,
                state_name: state.into(),
                ..Store::default()
            },
            status: StoreStatus {
                leader_count: leaders,
                ..StoreStatus::default()
            },
        }
    }

    /// Every branch of the cordon step, as a table.
    #[test]
    fn a_cordoned_store_evicts_its_leaders_when_others_can_take_them_and_releases_them_once_back() {
        let up = store("Up", 7);
        let drained = store("Up", 0);
        let down = store("Disconnected", 7);
        let (c, s, u) = (cordoned(), schedulable(), PodNode::Unknown);
        let cordon = SchedulerNeed {
            restart: false,
            cordon: true,
        };
        let both = SchedulerNeed {
            restart: true,
            cordon: true,
        };
        let nobody = SchedulerNeed::default();
        let restart_only = SchedulerNeed {
            restart: true,
            cordon: false,
        };
        let base = CordonInput {
            store: StoreLookup::Listed(&up),
            evicting: false,
            node: &c,
            recorded_ms: None,
            need: cordon,
            evicted_elsewhere: 0,
            takers: 2,
            max_replicas: 3,
            now_ms: 100_000,
            timeout: Duration::from_secs(60),
        };
        let cases: Vec<(&str, CordonInput<'_>, CordonStep)> = vec![
            ("cordoned, nothing yet", base.clone(), CordonStep::Record),
            (
                "recorded, no scheduler yet",
                CordonInput {
                    recorded_ms: Some(90_000),
                    ..base.clone()
                },
                CordonStep::AddScheduler,
            ),
            (
                "evicting",
                CordonInput {
                    recorded_ms: Some(90_000),
                    evicting: true,
                    ..base.clone()
                },
                CordonStep::Evicting {
                    leaders: 7,
                    waited: Duration::from_secs(10),
                },
            ),
            (
                "drained",
                CordonInput {
                    store: StoreLookup::Listed(&drained),
                    recorded_ms: Some(90_000),
                    evicting: true,
                    ..base.clone()
                },
                CordonStep::Evicted,
            ),
            (
                "past the timeout",
                CordonInput {
                    recorded_ms: Some(10_000),
                    evicting: true,
                    ..base.clone()
                },
                CordonStep::TimedOut { leaders: 7 },
            ),
            (
                "a restart's scheduler already there",
                CordonInput {
                    recorded_ms: Some(90_000),
                    evicting: true,
                    need: both,
                    evicted_elsewhere: 2,
                    ..base.clone()
                },
                CordonStep::Evicting {
                    leaders: 7,
                    waited: Duration::from_secs(10),
                },
            ),
            (
                "a second store of the Node, max-replicas 3",
                CordonInput {
                    evicted_elsewhere: 1,
                    ..base.clone()
                },
                CordonStep::Record,
            ),
            (
                "a third store evicted at once, max-replicas 3",
                CordonInput {
                    evicted_elsewhere: 2,
                    ..base.clone()
                },
                CordonStep::Held(Held::TooManyEvicted {
                    evicted: 2,
                    max_replicas: 3,
                }),
            ),
            (
                "max-replicas 1: no other replica to lead",
                CordonInput {
                    max_replicas: 1,
                    ..base.clone()
                },
                CordonStep::Held(Held::TooManyEvicted {
                    evicted: 0,
                    max_replicas: 1,
                }),
            ),
            (
                "no other store takes leaders",
                CordonInput {
                    takers: 0,
                    recorded_ms: Some(90_000),
                    ..base.clone()
                },
                CordonStep::Held(Held::NoTaker),
            ),
            (
                "a store that does not serve",
                CordonInput {
                    store: StoreLookup::Listed(&down),
                    ..base.clone()
                },
                CordonStep::NotServing,
            ),
            (
                "PD does not list the store",
                CordonInput {
                    store: StoreLookup::Unlisted(1),
                    ..base.clone()
                },
                CordonStep::NotServing,
            ),
            (
                "no cordon, nothing recorded",
                CordonInput {
                    node: &s,
                    need: nobody,
                    ..base.clone()
                },
                CordonStep::Idle,
            ),
            (
                "Pod gone after the eviction",
                CordonInput {
                    node: &u,
                    recorded_ms: Some(90_000),
                    evicting: true,
                    ..base.clone()
                },
                CordonStep::WaitForStore,
            ),
            (
                "back and serving",
                CordonInput {
                    node: &s,
                    recorded_ms: Some(90_000),
                    evicting: true,
                    need: nobody,
                    ..base.clone()
                },
                CordonStep::Release {
                    remove_scheduler: true,
                },
            ),
            (
                "back and serving, a restart still needs the scheduler",
                CordonInput {
                    node: &s,
                    recorded_ms: Some(90_000),
                    evicting: true,
                    need: restart_only,
                    ..base.clone()
                },
                CordonStep::Release {
                    remove_scheduler: false,
                },
            ),
            (
                "back, the scheduler already gone",
                CordonInput {
                    node: &s,
                    recorded_ms: Some(90_000),
                    need: nobody,
                    ..base.clone()
                },
                CordonStep::Release {
                    remove_scheduler: false,
                },
            ),
        ];
        for (case, input, want) in cases {
            assert_eq!(cordon_step(&input), want, "{case}");
        }
    }
}
