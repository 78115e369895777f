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
/// Store label naming a TiKV store's group, `<namespace>.<group>` (tidb-operator v2's key, which
/// its placement policies select stores by).
pub const PLACEMENT_GROUP_LABEL: &str = "k/tikvgroup";
/// Store label marking the stores of a group with `placement.exclusive` (value `true`).
pub const PLACEMENT_EXCLUSIVE_LABEL: &str = "$k/exclusive";

/// Shortest grace period a restarting TiKV Pod gets, in seconds.
pub const MIN_GRACE_SECONDS: i64 = 30;
/// Longest grace period a restarting TiKV Pod gets, in seconds.
pub const MAX_GRACE_SECONDS: i64 = 600;
/// Regions per extra second of grace period.
pub const REGIONS_PER_GRACE_SECOND: i64 = 100;

/// The store PD lists at `address`, used only to learn an instance's store ID the first time.
/// When several stores had that address (a store removed, then a new one), the one not removed
/// wins, else the newest.
pub fn find_store<'a>(stores: &'a StoresInfo, address: &str) -> Option<&'a StoreInfo> {
    stores
        .stores
        .iter()
        .filter(|s| s.store.address == address)
        .max_by_key(|s| (!s.is_tombstone(), s.store.id))
}

/// What PD's store list says of an instance's store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StoreLookup<'a> {
    /// PD lists it: by the ID the instance recorded or, before one was recorded, at its address.
    Listed(&'a StoreInfo),
    /// No ID is recorded and PD lists no store at the instance's address: it never registered.
    NeverRegistered,
    /// PD's answer does not list the store ID the instance recorded. That is silence, not
    /// removal: nothing is decided on it.
    Unlisted(u64),
}

impl<'a> StoreLookup<'a> {
    /// The store, when PD lists it.
    pub fn info(&self) -> Option<&'a StoreInfo> {
        match self {
            StoreLookup::Listed(info) => Some(info),
            _ => None,
        }
    }
}

/// Finds an instance's store: by its recorded ID when it has one (whatever address PD now
/// shows for it), else at its address.
pub fn lookup<'a>(stores: &'a StoresInfo, recorded: Option<u64>, address: &str) -> StoreLookup<'a> {
    match recorded {
        Some(id) => stores
            .by_id(id)
            .map_or(StoreLookup::Unlisted(id), StoreLookup::Listed),
        None => {
            find_store(stores, address).map_or(StoreLookup::NeverRegistered, StoreLookup::Listed)
        }
    }
}

/// The store ID an instance recorded in its status, if any.
pub fn recorded_id(status_id: &str) -> Option<u64> {
    status_id.parse().ok().filter(|id| *id > 0)
}

/// The Pod of an instance, as the removal sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPresence {
    /// No Pod.
    Absent,
    /// Being deleted.
    Terminating,
    /// Phase Running.
    Running,
    /// Exists, not running (pending, failed).
    NotRunning,
}

impl PodPresence {
    /// How `pod` stands.
    pub fn of(pod: Option<&k8s_openapi::api::core::v1::Pod>) -> PodPresence {
        match pod {
            None => PodPresence::Absent,
            Some(p) if p.metadata.deletion_timestamp.is_some() => PodPresence::Terminating,
            Some(p) if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") => {
                PodPresence::Running
            }
            Some(_) => PodPresence::NotRunning,
        }
    }
}

/// What the removal of a store sees.
#[derive(Clone, Debug)]
pub struct RemovalInput<'a> {
    /// PD's answer about the store, or why PD could not be asked.
    pub pd: Result<StoreLookup<'a>, &'a str>,
    /// The instance recorded that PD reported its store Removed (Tombstone) before.
    pub recorded_removed: bool,
    /// The store is in the evict-leader scheduler.
    pub evicting: bool,
    /// The instance's Pod.
    pub pod: PodPresence,
}

/// The next step of removing a store and its instance. Only PD saying Tombstone for the
/// recorded store ID (or an instance that never registered a store) lets the Pod and the
/// PVCs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovalStep {
    /// Nothing may be deleted now; the condition says why.
    Hold {
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
    /// Remove the store from the evict-leader scheduler first.
    RemoveScheduler(u64),
    /// Ask PD to take the store offline.
    TakeOffline(u64),
    /// PD moves the store's Regions away; its Pod stays (or comes back) meanwhile.
    WaitForTombstone {
        /// The store.
        id: u64,
        /// Regions left on it.
        regions: i64,
    },
    /// The store is removed: delete the Pod.
    DeletePod,
    /// The Pod is going; wait for it.
    WaitForPod,
    /// The Pod is gone: delete the PVCs; once none is left, the instance goes.
    DeletePvcs,
}

/// Reason: PD cannot be asked about the store.
pub const HOLD_PD_UNREACHABLE: &str = "PDUnreachable";
/// Reason: PD's answer does not list the recorded store.
pub const HOLD_STORE_NOT_FOUND: &str = "StoreNotFound";
/// Reason: the Pod runs but its store has not registered yet.
pub const HOLD_WAITING_FOR_STORE: &str = "WaitingForStore";

/// Decides the next step of removing an instance's store (scale-in and deletion alike).
pub fn removal_step(input: &RemovalInput<'_>) -> RemovalStep {
    let lookup = match input.pd {
        Ok(lookup) => lookup,
        Err(error) => {
            return RemovalStep::Hold {
                reason: HOLD_PD_UNREACHABLE,
                message: format!(
                    "cannot take the store out: PD cannot be asked ({error}); the Pod and PVCs are kept until it answers"
                ),
            };
        }
    };
    let removed = match lookup {
        StoreLookup::Listed(info) if input.evicting => {
            return RemovalStep::RemoveScheduler(info.store.id);
        }
        StoreLookup::Listed(info) if is_removed(info) => true,
        StoreLookup::Listed(info) if is_removing(info) => {
            return RemovalStep::WaitForTombstone {
                id: info.store.id,
                regions: info.status.region_count,
            };
        }
        StoreLookup::Listed(info) => return RemovalStep::TakeOffline(info.store.id),
        StoreLookup::Unlisted(_) if input.recorded_removed => true,
        StoreLookup::Unlisted(id) => {
            return RemovalStep::Hold {
                reason: HOLD_STORE_NOT_FOUND,
                message: format!(
                    "PD does not list store {id}, the store this instance recorded; nothing is taken offline or deleted until PD reports store {id} Tombstone"
                ),
            };
        }
        StoreLookup::NeverRegistered => input.pod != PodPresence::Running,
    };
    if !removed {
        return RemovalStep::Hold {
            reason: HOLD_WAITING_FOR_STORE,
            message: "waiting for the store to register with PD before taking it out".into(),
        };
    }
    match input.pod {
        PodPresence::Running | PodPresence::NotRunning => RemovalStep::DeletePod,
        PodPresence::Terminating => RemovalStep::WaitForPod,
        PodPresence::Absent => RemovalStep::DeletePvcs,
    }
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

/// Whether PD labels the store a TiFlash store (`engine=tiflash`). It holds learner replicas
/// only: it never counts as a place for TiKV's replicas.
pub fn is_tiflash(info: &StoreInfo) -> bool {
    info.store.label(RESERVED_LABEL) == Some("tiflash")
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

/// The labels a store should carry in all: the template's `server.labels`, then the Node's
/// location labels from [`desired_labels`], which win on a key both set (the reference's
/// precedence: where the store runs is not the user's to override). `engine` is never set from
/// `server.labels`: PD reads it to tell TiFlash stores from TiKV ones.
pub fn store_labels(
    server_labels: &BTreeMap<String, String>,
    location: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = server_labels
        .iter()
        .filter(|(key, _)| key.as_str() != RESERVED_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(location);
    labels
}

/// The placement labels of a TiKV store of `group` in `namespace`: the group's label always,
/// the exclusive one when the template asks for it. A store of no group gets neither.
pub fn placement_labels(
    namespace: &str,
    group: Option<&str>,
    exclusive: bool,
) -> BTreeMap<String, String> {
    let Some(group) = group.filter(|g| !g.is_empty()) else {
        return BTreeMap::new();
    };
    let mut labels = BTreeMap::from([(
        PLACEMENT_GROUP_LABEL.to_owned(),
        format!("{namespace}.{group}"),
    )]);
    if exclusive {
        labels.insert(PLACEMENT_EXCLUSIVE_LABEL.to_owned(), "true".to_owned());
    }
    labels
}

/// Whether the store still carries the exclusive label its template no longer asks for. Setting
/// labels only adds or overwrites in PD, so this one must be deleted on its own.
pub fn stale_exclusive_label(info: &StoreInfo, exclusive: bool) -> bool {
    !exclusive && info.store.label(PLACEMENT_EXCLUSIVE_LABEL).is_some()
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
    /// What PD says of the instance's store.
    pub store: StoreLookup<'a>,
    /// The store is in the evict-leader scheduler.
    pub evicting: bool,
    /// Stores PD reports with down peers.
    pub down_peer_stores: &'a [u64],
    /// Up stores besides this one, which could take its leaders.
    pub other_up_stores: usize,
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
    /// No other store is Up to take its leaders: evicting them could never finish.
    NoOtherStore,
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
    /// PD's answer does not list the recorded store: whether it serves is unknown, so the Pod
    /// is not restarted.
    StoreNotFound(u64),
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
    let store = match input.store {
        StoreLookup::Listed(store) => store,
        StoreLookup::NeverRegistered => {
            return RestartStep::Restart(RestartCause::NotServing(
                "the store is not registered in PD".into(),
            ));
        }
        StoreLookup::Unlisted(id) => return RestartStep::StoreNotFound(id),
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
    if input.other_up_stores == 0 {
        return RestartStep::Restart(RestartCause::NoOtherStore);
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
/// it would. `after_it` more stores of the same scale-in are still to go after this one (a
/// group scaled from 5 to 2 takes out 3, an exit to 0 all of its stores): they count as leaving
/// too, so a scale-in that could not finish is refused before its first store goes offline,
/// not halfway. A victim that is not Up does not lower the count and may always go, and one
/// that never registered has nothing to remove; a victim whose recorded store PD does not list
/// cannot be checked, so it is refused.
pub fn scale_in_refusal(
    stores: &StoresInfo,
    victim: StoreLookup<'_>,
    after_it: usize,
    max_replicas: u64,
) -> Option<String> {
    let victim = match victim {
        StoreLookup::Listed(info) if info.is_up() => info,
        StoreLookup::Listed(_) | StoreLookup::NeverRegistered => return None,
        StoreLookup::Unlisted(id) => {
            return Some(format!(
                "PD does not list store {id}, the store of this instance, so the scale-in cannot be checked against max-replicas; nothing is taken offline"
            ));
        }
    };
    // TiFlash stores hold learners only: they are no place for the replicas max-replicas counts.
    let up = stores
        .stores
        .iter()
        .filter(|s| s.is_up() && !is_tiflash(s))
        .count();
    let leaving = 1 + after_it;
    let after = up.saturating_sub(leaving);
    (u64::try_from(after).unwrap_or(u64::MAX) < max_replicas).then(|| {
        let what = if leaving == 1 {
            format!("removing store {}", victim.store.id)
        } else {
            format!(
                "taking out the {leaving} stores of this scale-in (store {} first)",
                victim.store.id
            )
        };
        format!(
            "{what} would leave {after} Up stores in the whole TiDB cluster, fewer than PD's max-replicas {max_replicas}; nothing is taken offline"
        )
    })
}

/// Reason: the store does not serve (not registered, disconnected, down).
pub const STORE_NOT_SERVING: &str = "StoreNotServing";

/// `Ready` of a store's instance (TiKV or TiFlash) as far as PD decides it, once its Pod is
/// ready: the store is Up by its recorded ID. `pd` is PD's answer about the store, or why PD
/// could not be asked; `None` keeps the condition as it is, for a store that was ready when PD
/// cannot be asked for a moment (silence does not make a store unready).
pub fn ready_verdict(
    pd: Result<StoreLookup<'_>, &str>,
    was_ready: bool,
) -> Option<(bool, &'static str, String)> {
    Some(match pd {
        Err(_) if was_ready => return None,
        Err(error) => (
            false,
            HOLD_PD_UNREACHABLE,
            format!("PD cannot be asked about this store: {error}"),
        ),
        Ok(StoreLookup::NeverRegistered) => (
            false,
            STORE_NOT_SERVING,
            "the store has not registered with PD yet".to_string(),
        ),
        Ok(StoreLookup::Unlisted(id)) => (
            false,
            HOLD_STORE_NOT_FOUND,
            format!("PD does not list store {id}, the store this instance recorded"),
        ),
        Ok(StoreLookup::Listed(info)) if !info.is_up() => (
            false,
            STORE_NOT_SERVING,
            format!("store {} is {}", info.store.id, info.store.state_name),
        ),
        Ok(StoreLookup::Listed(info)) => (
            true,
            operator_api::conditions::reasons::READY,
            format!("store {} is Up", info.store.id),
        ),
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
mod tests;
