//! Pure decisions about one TiKV store, from what PD reports: which store an instance is, the
//! state to show, the labels it should carry, the steps of a safe restart (leader eviction with a
//! bounded wait, no restart while another store has down peers), how long a restarting Pod may
//! take to stop, and whether a scale-in would leave too few stores.

use std::collections::BTreeMap;
use std::time::Duration;

use operator_api::core::{
    STORE_STATE_PREPARING, STORE_STATE_REMOVED, STORE_STATE_REMOVING, STORE_STATE_SERVING,
};
use pd_client::{StoreInfo, StoresInfo};

/// Node label holding the zone.
pub const NODE_LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Node label holding the region.
pub const NODE_LABEL_REGION: &str = "topology.kubernetes.io/region";
/// Node label holding the host name.
pub const NODE_LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Store label key PD reserves for itself.
const RESERVED_LABEL: &str = "engine";

/// Shortest grace period a restarting TiKV Pod gets, in seconds.
pub const MIN_GRACE_SECONDS: i64 = 30;
/// Longest grace period a restarting TiKV Pod gets, in seconds.
pub const MAX_GRACE_SECONDS: i64 = 600;
/// Regions per extra second of grace period.
pub const REGIONS_PER_GRACE_SECOND: i64 = 100;

/// The store of an instance: the one PD lists at the instance's advertised address. When several
/// stores had that address (a store removed, then a new one), the one not removed wins, else
/// the newest.
pub fn find_store<'a>(stores: &'a StoresInfo, address: &str) -> Option<&'a StoreInfo> {
    stores
        .stores
        .iter()
        .filter(|s| s.store.address == address)
        .max_by_key(|s| (!s.is_tombstone(), s.store.id))
}

/// The instance's `status.state`: PD's node state (Preparing, Serving, Removing, Removed) when PD
/// reports one, else derived from the store state. PD leaves the node state out while it is
/// Preparing (0).
pub fn instance_state(info: &StoreInfo) -> &'static str {
    match info.store.node_state.as_deref() {
        Some("Preparing") => STORE_STATE_PREPARING,
        Some("Serving") => STORE_STATE_SERVING,
        Some("Removing") => STORE_STATE_REMOVING,
        Some("Removed") => STORE_STATE_REMOVED,
        _ if info.is_tombstone() => STORE_STATE_REMOVED,
        _ if info.is_offline() => STORE_STATE_REMOVING,
        _ => STORE_STATE_PREPARING,
    }
}

/// Whether the store is being taken out (Offline) but not gone yet.
pub fn is_removing(info: &StoreInfo) -> bool {
    info.is_offline() || info.store.node_state.as_deref() == Some("Removing")
}

/// Whether PD has removed the store for good (Tombstone).
pub fn is_removed(info: &StoreInfo) -> bool {
    info.is_tombstone() || info.store.node_state.as_deref() == Some("Removed")
}

/// The labels a store should carry: for each of PD's `location-labels`, the value from the Node
/// its Pod runs on. `zone`, `region` and `host` come from the well-known Kubernetes labels
/// (`topology.kubernetes.io/zone`, `topology.kubernetes.io/region`, `kubernetes.io/hostname`);
/// any location label (these three included, when the well-known label is missing) is also read
/// from a Node label of exactly that key.
pub fn desired_labels(
    location_labels: &[String],
    node_labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    location_labels
        .iter()
        .filter(|key| key.as_str() != RESERVED_LABEL)
        .filter_map(|key| {
            let well_known = match key.as_str() {
                "zone" => Some(NODE_LABEL_ZONE),
                "region" => Some(NODE_LABEL_REGION),
                "host" => Some(NODE_LABEL_HOSTNAME),
                _ => None,
            };
            well_known
                .and_then(|k| node_labels.get(k))
                .or_else(|| node_labels.get(key))
                .map(|value| (key.clone(), value.clone()))
        })
        .collect()
}

/// The desired labels the store lacks or has with another value; empty when nothing to push.
pub fn labels_to_set(
    info: &StoreInfo,
    desired: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(key, value)| info.store.label(key) != Some(value.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Grace period of a restarting Pod, in seconds: 30 s, plus 1 s per 100 Regions the store holds
/// (TiKV flushes and hands its Regions over as it stops), at most 600 s; never less than the
/// Pod's own `terminationGracePeriodSeconds`.
pub fn restart_grace_period(region_count: i64, pod_grace: Option<i64>) -> i64 {
    let by_regions =
        (MIN_GRACE_SECONDS + region_count.max(0) / REGIONS_PER_GRACE_SECOND).min(MAX_GRACE_SECONDS);
    by_regions.max(pod_grace.unwrap_or(0))
}

/// What a restart of an outdated Pod sees.
#[derive(Clone, Debug)]
pub struct RestartInput<'a> {
    /// The instance's store, if PD knows it.
    pub store: Option<&'a StoreInfo>,
    /// The store is in the evict-leader scheduler.
    pub evicting: bool,
    /// Stores PD reports with down peers.
    pub down_peer_stores: &'a [u64],
    /// When the leader-eviction wait of this restart started (ms since the epoch), if it did.
    pub eviction_started_ms: Option<i64>,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// How long the wait for leaders may last.
    pub timeout: Duration,
}

/// Why a restart goes ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartCause {
    /// The store does not serve (not registered, disconnected, down): it has no leaders to move.
    NotServing(String),
    /// Its leaders are gone.
    LeadersEvicted,
    /// The wait for its leaders passed the timeout with this many leaders left.
    TimedOut {
        /// Leaders still on the store.
        leaders: i64,
    },
}

/// The next step of a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// Delete the Pod now.
    Restart(RestartCause),
    /// Other stores have down peers: restarting this one could cost a Region its quorum. Hold,
    /// without evicting.
    BlockedByDownPeers(Vec<u64>),
    /// Record when the wait starts (before the scheduler is added, so a restarted controller
    /// finds the record of any scheduler it added).
    StartEviction,
    /// Add the evict-leader scheduler for the store.
    AddScheduler,
    /// Leaders are still on the store; wait.
    WaitForLeaders {
        /// Leaders left.
        leaders: i64,
        /// How long the wait has lasted.
        waited: Duration,
    },
}

/// Decides the next step of restarting an outdated Pod.
pub fn restart_step(input: &RestartInput<'_>) -> RestartStep {
    let Some(store) = input.store else {
        return RestartStep::Restart(RestartCause::NotServing(
            "the store is not registered in PD".into(),
        ));
    };
    if !store.is_up() {
        return RestartStep::Restart(RestartCause::NotServing(format!(
            "store {} is {}",
            store.store.id, store.store.state_name
        )));
    }
    let elsewhere: Vec<u64> = input
        .down_peer_stores
        .iter()
        .copied()
        .filter(|id| *id != store.store.id)
        .collect();
    if !elsewhere.is_empty() {
        return RestartStep::BlockedByDownPeers(elsewhere);
    }
    let Some(started) = input.eviction_started_ms else {
        return RestartStep::StartEviction;
    };
    if !input.evicting {
        return RestartStep::AddScheduler;
    }
    let leaders = store.status.leader_count;
    if leaders <= 0 {
        return RestartStep::Restart(RestartCause::LeadersEvicted);
    }
    let waited = Duration::from_millis(u64::try_from(input.now_ms - started).unwrap_or(0));
    if waited >= input.timeout {
        return RestartStep::Restart(RestartCause::TimedOut { leaders });
    }
    RestartStep::WaitForLeaders { leaders, waited }
}

/// Why removing the store `victim` now would leave fewer Up stores than PD's `max-replicas`, if
/// it would. A victim that is not Up does not lower the count and may always go.
pub fn scale_in_refusal(
    stores: &StoresInfo,
    victim: Option<&StoreInfo>,
    max_replicas: u64,
) -> Option<String> {
    let victim = victim.filter(|v| v.is_up())?;
    let up = stores.stores.iter().filter(|s| s.is_up()).count();
    let after = up.saturating_sub(1);
    (u64::try_from(after).unwrap_or(u64::MAX) < max_replicas).then(|| {
        format!(
            "removing store {} would leave {after} Up stores, fewer than PD's max-replicas {max_replicas}; nothing is taken offline",
            victim.store.id
        )
    })
}

/// Names stores for a message: `3 (tikv-x.tikv-tikv-peer.db:20160)`.
pub fn describe_stores(ids: &[u64], stores: Option<&StoresInfo>) -> String {
    ids.iter()
        .map(|id| match stores.and_then(|s| s.by_id(*id)) {
            Some(info) => format!("{id} ({})", info.store.address),
            None => id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use pd_client::{Store, StoreLabel, StoreStatus};

    use super::*;

    fn store(id: u64, address: &str, state: &str, leaders: i64) -> StoreInfo {
        StoreInfo {
            store: Store {
                id,
                address: address.into(),
                state_name: state.into(),
                node_state: Some(
                    match state {
                        "Offline" => "Removing",
                        "Tombstone" => "Removed",
                        _ => "Serving",
                    }
                    .into(),
                ),
                ..Store::default()
            },
            status: StoreStatus {
                leader_count: leaders,
                region_count: 20,
                ..StoreStatus::default()
            },
        }
    }

    fn input<'a>(store: Option<&'a StoreInfo>, down: &'a [u64]) -> RestartInput<'a> {
        RestartInput {
            store,
            evicting: false,
            down_peer_stores: down,
            eviction_started_ms: None,
            now_ms: 100_000,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_live_store_at_the_address_wins_over_a_removed_one() {
        let stores = StoresInfo {
            count: 3,
            stores: vec![
                store(1, "a:20160", "Tombstone", 0),
                store(4, "a:20160", "Up", 3),
                store(2, "b:20160", "Up", 3),
            ],
        };
        assert_eq!(find_store(&stores, "a:20160").unwrap().store.id, 4);
        assert!(find_store(&stores, "c:20160").is_none());
    }

    #[test]
    fn states_follow_the_node_state_or_the_store_state() {
        assert_eq!(instance_state(&store(1, "a", "Up", 0)), "Serving");
        assert_eq!(instance_state(&store(1, "a", "Offline", 0)), "Removing");
        assert_eq!(instance_state(&store(1, "a", "Tombstone", 0)), "Removed");
        let mut preparing = store(1, "a", "Up", 0);
        preparing.store.node_state = None;
        assert_eq!(instance_state(&preparing), "Preparing");
        preparing.store.state_name = "Tombstone".into();
        assert_eq!(instance_state(&preparing), "Removed");
        assert!(is_removed(&preparing));
    }

    #[test]
    fn labels_come_from_the_node_for_pds_location_labels() {
        let node: BTreeMap<String, String> = [
            (NODE_LABEL_ZONE, "zone-a"),
            (NODE_LABEL_HOSTNAME, "node-1"),
            ("rack", "r7"),
            ("unrelated", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let keys: Vec<String> = ["zone", "rack", "host", "region", "engine"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let desired = desired_labels(&keys, &node);
        assert_eq!(
            desired,
            [("host", "node-1"), ("rack", "r7"), ("zone", "zone-a")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        let mut info = store(1, "a", "Up", 0);
        info.store.labels = vec![
            StoreLabel {
                key: "zone".into(),
                value: "zone-a".into(),
            },
            StoreLabel {
                key: "host".into(),
                value: "old".into(),
            },
        ];
        let missing = labels_to_set(&info, &desired);
        assert_eq!(missing.keys().collect::<Vec<_>>(), ["host", "rack"]);
        assert_eq!(missing["host"], "node-1");
    }

    #[test]
    fn the_grace_period_grows_with_regions_within_bounds() {
        assert_eq!(restart_grace_period(0, None), 30);
        assert_eq!(restart_grace_period(5_000, Some(30)), 80);
        assert_eq!(restart_grace_period(10_000_000, None), 600);
        assert_eq!(restart_grace_period(100, Some(120)), 120);
        assert_eq!(restart_grace_period(-5, None), 30);
    }

    #[test]
    fn a_restart_evicts_then_waits_then_goes() {
        let up = store(2, "a", "Up", 5);
        assert_eq!(
            restart_step(&input(Some(&up), &[])),
            RestartStep::StartEviction
        );
        let mut started = input(Some(&up), &[]);
        started.eviction_started_ms = Some(95_000);
        assert_eq!(restart_step(&started), RestartStep::AddScheduler);
        started.evicting = true;
        assert_eq!(
            restart_step(&started),
            RestartStep::WaitForLeaders {
                leaders: 5,
                waited: Duration::from_secs(5)
            }
        );
        let drained = store(2, "a", "Up", 0);
        started.store = Some(&drained);
        assert_eq!(
            restart_step(&started),
            RestartStep::Restart(RestartCause::LeadersEvicted)
        );
    }

    #[test]
    fn a_wait_for_leaders_never_lasts_past_the_timeout() {
        let stuck = store(2, "a", "Up", 7);
        let mut waiting = input(Some(&stuck), &[]);
        waiting.evicting = true;
        waiting.eviction_started_ms = Some(90_000);
        assert_eq!(
            restart_step(&waiting),
            RestartStep::Restart(RestartCause::TimedOut { leaders: 7 })
        );
    }

    #[test]
    fn down_peers_elsewhere_block_without_a_timeout_but_our_own_do_not() {
        let up = store(2, "a", "Up", 5);
        let mut blocked = input(Some(&up), &[2, 3]);
        blocked.evicting = true;
        blocked.eviction_started_ms = Some(0);
        assert_eq!(
            restart_step(&blocked),
            RestartStep::BlockedByDownPeers(vec![3])
        );
        assert_eq!(
            restart_step(&input(Some(&up), &[2])),
            RestartStep::StartEviction
        );
    }

    #[test]
    fn a_store_that_does_not_serve_restarts_at_once() {
        assert!(matches!(
            restart_step(&input(None, &[3])),
            RestartStep::Restart(RestartCause::NotServing(_))
        ));
        let down = store(2, "a", "Disconnected", 4);
        assert!(matches!(
            restart_step(&input(Some(&down), &[3])),
            RestartStep::Restart(RestartCause::NotServing(m)) if m.contains("Disconnected")
        ));
    }

    #[test]
    fn scale_in_never_leaves_fewer_up_stores_than_max_replicas() {
        let stores = StoresInfo {
            count: 4,
            stores: vec![
                store(1, "a", "Up", 0),
                store(2, "b", "Up", 0),
                store(3, "c", "Up", 0),
                store(4, "d", "Down", 0),
            ],
        };
        let refusal = scale_in_refusal(&stores, stores.by_id(3), 3).unwrap();
        assert!(
            refusal.contains("leave 2 Up stores") && refusal.contains("max-replicas 3"),
            "{refusal}"
        );
        assert!(scale_in_refusal(&stores, stores.by_id(3), 2).is_none());
        // A store that is down already does not lower the count.
        assert!(scale_in_refusal(&stores, stores.by_id(4), 3).is_none());
        assert!(scale_in_refusal(&stores, None, 3).is_none());
        assert_eq!(describe_stores(&[2, 9], Some(&stores)), "2 (b), 9");
    }
}
