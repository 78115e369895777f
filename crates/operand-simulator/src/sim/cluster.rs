//! One simulated cluster: its Pods, PD members and leader, stores, regions, schedulers, faults
//! and event log, and the PD API operations that change them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use super::events::{EventKind, EventLog, StopReason};
use super::faults::{Fault, Faults};
use super::safety::{DataLoss, Safety};
use super::{ClusterKey, Component, PodObservation, SimConfig, stable_id};
use crate::clock::Now;

/// PD's name of the evict-leader scheduler.
pub const EVICT_LEADER: &str = "evict-leader-scheduler";

/// The schedulers a fresh PD runs (PD 8.5 `DefaultSchedulers`).
pub const DEFAULT_SCHEDULERS: [&str; 4] = [
    "balance-region-scheduler",
    "balance-leader-scheduler",
    "balance-hot-region-scheduler",
    "evict-slow-store-scheduler",
];

/// PD's answer on its cluster paths before the first TiKV joined (`errs.ErrNotBootstrapped`).
pub const NOT_BOOTSTRAPPED: &str =
    "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first";

/// A PD API call that failed: the status and message PD answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Message (PD sends it as a JSON string).
    pub message: String,
}

impl ClusterState {
    /// `POST /config/rule`.
    pub fn set_rule(&mut self, rule: serde_json::Value) -> Result<(), ApiError> {
        self.rules.set(rule)
    }

    /// `DELETE /config/rule/{group}/{id}`.
    pub fn delete_rule(&mut self, group: &str, id: &str) {
        self.rules.delete(group, id);
    }

    /// `GET /config/rules/group/{group}`.
    pub fn rules_of_group(&self, group: &str) -> Vec<serde_json::Value> {
        self.rules.of_group(group)
    }
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// `metapb.StoreState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreState {
    /// 0; node state Serving.
    Up,
    /// 1; node state Removing.
    Offline,
    /// 2; node state Removed.
    Tombstone,
}

impl StoreState {
    /// The protobuf number (`state` in the JSON).
    pub fn code(self) -> i32 {
        match self {
            Self::Up => 0,
            Self::Offline => 1,
            Self::Tombstone => 2,
        }
    }

    /// `metapb.NodeState` number: Preparing 0, Serving 1, Removing 2, Removed 3.
    pub fn node_state(self) -> i32 {
        match self {
            Self::Up => 1,
            Self::Offline => 2,
            Self::Tombstone => 3,
        }
    }

    /// `metapb.NodeState` name.
    pub fn node_state_name(self) -> &'static str {
        match self {
            Self::Up => "Serving",
            Self::Offline => "Removing",
            Self::Tombstone => "Removed",
        }
    }
}

/// Whether a store heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Liveness {
    Alive,
    Disconnected,
    Down,
}

/// The store label that tells a TiFlash store from a TiKV one.
pub(super) const ENGINE_LABEL: &str = "engine";
/// Its value on a TiFlash store.
pub(super) const TIFLASH_ENGINE: &str = "tiflash";

/// A TiKV or TiFlash store.
#[derive(Clone, Debug)]
pub(super) struct Store {
    pub id: u64,
    pub instance: String,
    pub pod: String,
    pub uid: String,
    pub address: String,
    pub status_address: String,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub state: StoreState,
    pub pod_running: bool,
    /// When its Pod stopped running, while it is not running.
    pub stopped_at: Option<Instant>,
    pub started: SystemTime,
    pub last_heartbeat: SystemTime,
    /// The `state_name` last reported in an event.
    pub last_state_name: String,
    /// Whether `leaders_drained` was logged for the current eviction.
    pub drained_reported: bool,
    /// Its data volume: claim name and UID (`None` while unknown).
    pub claim: Option<String>,
    pub volume: Option<String>,
    /// Its PVC was deleted: the store never heartbeats again.
    pub data_lost: bool,
}

impl Store {
    /// Whether it is a TiFlash store (`engine=tiflash`).
    pub(super) fn is_tiflash(&self) -> bool {
        self.labels.get(ENGINE_LABEL).map(String::as_str) == Some(TIFLASH_ENGINE)
    }
}

/// A peer of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Peer {
    pub id: u64,
    pub store: u64,
}

/// A region: its peers and which store holds its leader.
#[derive(Clone, Debug)]
pub(super) struct Region {
    pub id: u64,
    pub index: usize,
    pub peers: Vec<Peer>,
    /// Learners on TiFlash stores ([`super::learners`]); never voters or leaders.
    pub learners: Vec<Peer>,
    pub leader: Option<u64>,
    pub conf_ver: u64,
    pub version: u64,
    /// Without a leader since at least the last tick: it may elect one on this tick.
    pub waited: bool,
    /// A majority of its replicas is gone for good (recorded once).
    pub lost: bool,
}

impl Region {
    pub fn has_peer_on(&self, store: u64) -> bool {
        self.peers.iter().any(|p| p.store == store)
    }

    /// Whether a voter or a learner of it is on `store`.
    pub fn has_replica_on(&self, store: u64) -> bool {
        self.has_peer_on(store) || self.learners.iter().any(|p| p.store == store)
    }
}

/// The replication config (`/config/replicate`).
#[derive(Clone, Debug)]
pub(super) struct Replication {
    pub max_replicas: u64,
    pub location_labels: Vec<String>,
}

/// A PD member, as etcd lists it: added when a PD Pod of that name first runs, listed until
/// removed through the API, whether its Pod runs or not.
#[derive(Clone, Debug)]
pub(super) struct MemberView {
    pub name: String,
    pub member_id: u64,
    /// The Pod that last ran as this member.
    pub pod: String,
    pub uid: String,
    pub client_url: String,
    pub peer_url: String,
    pub version: String,
    /// Its data volume: claim name and UID, once known.
    pub claim: Option<String>,
    pub volume: Option<String>,
    /// Its PVC was deleted while it was a member: it never serves again.
    pub data_lost: bool,
}

/// A member removed through the API: what it ran on then, to tell a fresh join from a rejoin.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RemovedMember {
    /// UID of the Pod that ran as the member.
    pub uid: String,
    /// UID of its data volume, if known.
    pub volume: Option<String>,
}

/// `POST /leader/transfer/{name}` in progress: the leader steps down on the next tick and the
/// target leads on the one after.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub from: Option<String>,
    pub to: String,
    pub stepped_down: bool,
}

/// One simulated cluster.
#[derive(Clone, Debug)]
pub struct ClusterState {
    pub(super) key: ClusterKey,
    pub(super) id: u64,
    pub(super) settings: SimConfig,
    pub(super) created: Now,
    /// Every Pod of the cluster the API holds, by name, as the simulation treats it (not
    /// running on a lost Node).
    pub(super) pods: BTreeMap<String, PodObservation>,
    /// The same Pods as observed.
    pub(super) raw_pods: BTreeMap<String, PodObservation>,
    /// UIDs of TiKV Pods PD refused (a new volume at a live store's address).
    pub(super) refused_pods: BTreeSet<String>,
    /// UIDs of Pods whose config advertises an address that does not resolve to them (already
    /// logged): nobody reaches them there, so they serve no one.
    pub(super) unresolvable_pods: BTreeSet<String>,
    /// PD and TiKV Pods that run but do not serve yet (`start_delay`), by UID: since when.
    pub(super) starting: BTreeMap<String, (Instant, Component)>,
    pub(super) leader: Option<String>,
    /// PD's members by name.
    pub(super) members: BTreeMap<String, MemberView>,
    /// Members removed through the API, by name.
    pub(super) removed_members: BTreeMap<String, RemovedMember>,
    pub(super) transfer: Option<Transfer>,
    /// Ticks so far.
    pub(super) ticks: u64,
    pub(super) safety: Safety,
    pub(super) stores: BTreeMap<u64, Store>,
    /// The current store of each TiKV instance.
    pub(super) store_by_instance: BTreeMap<String, u64>,
    pub(super) next_store_id: u64,
    pub(super) regions: Vec<Region>,
    pub(super) next_id: u64,
    pub(super) bootstrapped_at: Option<Now>,
    pub(super) schedulers: BTreeSet<String>,
    pub(super) evict_leader: BTreeSet<u64>,
    pub(super) replication: Replication,
    pub(super) faults: Faults,
    pub(super) events: EventLog,
    pub(super) tidb_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The keyspace each standby TiDB was activated with, by Pod UID (a restarted Pod reads its
    /// config again).
    pub(super) tidb_activated: BTreeMap<String, String>,
    /// The TiCDC captures and their tables.
    pub(super) cdc: super::cdc::Captures,
    /// PD's placement rules, as written.
    pub(super) rules: super::rules::Rules,
    /// The keys written to PD's embedded etcd.
    pub kv: super::kv::Kv,
}

impl ClusterState {
    /// An empty cluster.
    pub fn new(key: ClusterKey, settings: SimConfig, now: Now) -> Self {
        let id = stable_id(&[&key.namespace, &key.cluster]);
        let replication = Replication {
            max_replicas: settings.max_replicas,
            location_labels: settings.location_labels.clone(),
        };
        Self {
            key,
            id,
            settings,
            created: now,
            pods: BTreeMap::new(),
            raw_pods: BTreeMap::new(),
            refused_pods: BTreeSet::new(),
            unresolvable_pods: BTreeSet::new(),
            starting: BTreeMap::new(),
            leader: None,
            members: BTreeMap::new(),
            removed_members: BTreeMap::new(),
            transfer: None,
            ticks: 0,
            safety: Safety::default(),
            stores: BTreeMap::new(),
            store_by_instance: BTreeMap::new(),
            next_store_id: 1,
            regions: Vec::new(),
            next_id: 1000,
            bootstrapped_at: None,
            schedulers: DEFAULT_SCHEDULERS.iter().map(|s| (*s).to_owned()).collect(),
            evict_leader: BTreeSet::new(),
            replication,
            faults: Faults::default(),
            events: EventLog::default(),
            tidb_labels: BTreeMap::new(),
            kv: super::kv::Kv::default(),
            tidb_activated: BTreeMap::new(),
            cdc: super::cdc::Captures::default(),
            rules: super::rules::Rules::default(),
        }
    }

    /// Namespace and name.
    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    /// PD's cluster ID.
    pub fn cluster_id(&self) -> u64 {
        self.id
    }

    /// The event log.
    pub fn events(&self) -> &super::events::EventLog {
        &self.events
    }

    /// The faults set.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The `max-replicas` in effect (the fault override, else the config).
    pub fn max_replicas(&self) -> u64 {
        self.faults
            .max_replicas
            .unwrap_or(self.replication.max_replicas)
    }

    pub(super) fn log(&mut self, now: Now, kind: EventKind) {
        self.events.push(now, kind);
    }

    pub(super) fn reject(&mut self, now: Now, operation: String, err: ApiError) -> ApiError {
        self.log(
            now,
            EventKind::RequestRejected {
                operation,
                status: err.status,
                message: err.message.clone(),
            },
        );
        err
    }

    pub(super) fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ---------------------------------------------------------------- Pod observations

    /// A Pod of this cluster was added or changed.
    pub fn observe_pod(&mut self, pod: PodObservation, now: Now) {
        self.raw_pods.insert(pod.name.clone(), pod.clone());
        let effective = self.effective(pod);
        self.apply_pod(effective, now);
        self.record_safety(now);
    }

    /// The Pod as the simulation treats it: not running on a lost Node.
    fn effective(&self, mut pod: PodObservation) -> PodObservation {
        if pod
            .node
            .as_ref()
            .is_some_and(|n| self.faults.lost_nodes.contains(n))
        {
            pod.running = false;
        }
        pod
    }

    fn apply_pod(&mut self, pod: PodObservation, now: Now) {
        let previous = self.pods.insert(pod.name.clone(), pod.clone());
        let mut was_running = false;
        if let Some(prev) = previous {
            if prev.uid == pod.uid {
                was_running = prev.running;
            } else if prev.running {
                // Another Pod of the same name replaced it without our seeing it stop.
                self.pod_stopped(&prev, StopReason::Replaced, now);
            }
        }
        match (was_running, pod.running) {
            (false, true) => self.pod_started(&pod, now),
            (true, false) => {
                let reason = if pod.deleting {
                    StopReason::Deleting
                } else {
                    StopReason::NotRunning
                };
                self.pod_stopped(&pod, reason, now);
            }
            _ => {}
        }
    }

    /// Every Pod on `node` is observed again (its Node was lost or came back).
    fn reapply_node(&mut self, node: &str, now: Now) {
        let on_node: Vec<PodObservation> = self
            .raw_pods
            .values()
            .filter(|p| p.node.as_deref() == Some(node))
            .cloned()
            .collect();
        for pod in on_node {
            let effective = self.effective(pod);
            self.apply_pod(effective, now);
        }
        self.record_safety(now);
    }

    /// A Pod of this cluster disappeared from the API.
    pub fn pod_gone(&mut self, name: &str, now: Now) {
        self.raw_pods.remove(name);
        let Some(pod) = self.pods.remove(name) else {
            return;
        };
        self.refused_pods.remove(&pod.uid);
        self.unresolvable_pods.remove(&pod.uid);
        if pod.running {
            self.pod_stopped(&pod, StopReason::Deleted, now);
        }
        self.log(
            now,
            EventKind::PodDeleted {
                component: pod.component,
                instance: pod.instance.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
            },
        );
        self.record_safety(now);
    }

    fn pod_started(&mut self, pod: &PodObservation, now: Now) {
        self.log(
            now,
            EventKind::PodRunning {
                component: pod.component,
                instance: pod.instance.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
            },
        );
        let delayed = !self.settings.start_delay.is_zero()
            && !matches!(pod.component, Component::Tidb | Component::Ticdc);
        if delayed {
            self.starting
                .insert(pod.uid.clone(), (now.instant, pod.component));
        }
        match pod.component {
            Component::Tikv | Component::Tiflash if !delayed => self.tikv_started(pod, now),
            Component::Pd => self.admit_member(pod, now),
            Component::Tidb => {
                // Only said: TiDB's status port answers the operator through the simulator's
                // own URL, whatever name TiDB advertises.
                self.reachable(pod, now);
            }
            Component::Ticdc => self.capture_started(pod, now),
            Component::Tikv | Component::Tiflash => {}
        }
    }

    /// Whether every address the Pod's config advertises resolves to the Pod in this
    /// Kubernetes cluster's DNS (its domain is `cluster_domain`). One that does not is logged
    /// once (`address_unresolvable`), and the Pod serves no one: peers and PD cannot reach it.
    pub(super) fn reachable(&mut self, pod: &PodObservation, now: Now) -> bool {
        let domain = pod
            .domain
            .clone()
            .unwrap_or_else(|| self.settings.cluster_domain.clone());
        let Some(address) = pod.unresolvable(&domain) else {
            return true;
        };
        if self.unresolvable_pods.insert(pod.uid.clone()) {
            tracing::warn!(
                namespace = %self.key.namespace,
                cluster = %self.key.cluster,
                pod = %pod.name,
                %address,
                %domain,
                "the Pod advertises an address that does not resolve to it; it serves no one"
            );
            self.log(
                now,
                EventKind::AddressUnresolvable {
                    component: pod.component,
                    instance: pod.instance.clone(),
                    pod: pod.name.clone(),
                    address,
                },
            );
        }
        false
    }

    /// Pods that have run for `start_delay` serve: a TiKV Pod registers (or rejoins its store),
    /// a PD member may vote and lead.
    pub(super) fn finish_starting(&mut self, now: Now) {
        let delay = self.settings.start_delay;
        let ready: Vec<(String, Component)> = self
            .starting
            .iter()
            .filter(|(_, (since, _))| now.instant.saturating_duration_since(*since) >= delay)
            .map(|(uid, (_, component))| (uid.clone(), *component))
            .collect();
        for (uid, component) in ready {
            self.starting.remove(&uid);
            if matches!(component, Component::Tikv | Component::Tiflash)
                && let Some(pod) = self
                    .pods
                    .values()
                    .find(|p| p.uid == uid && p.running)
                    .cloned()
            {
                self.tikv_started(&pod, now);
            }
        }
    }

    fn pod_stopped(&mut self, pod: &PodObservation, reason: StopReason, now: Now) {
        self.starting.remove(&pod.uid);
        let leaders = matches!(pod.component, Component::Tikv | Component::Tiflash)
            .then(|| self.store_by_instance.get(&pod.instance).copied())
            .flatten()
            .filter(|id| self.stores.get(id).is_some_and(|s| s.uid == pod.uid))
            .map(|id| self.leader_counts().get(&id).copied().unwrap_or(0));
        self.log(
            now,
            EventKind::PodStopped {
                component: pod.component,
                instance: pod.instance.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                reason,
                leaders,
            },
        );
        if pod.component == Component::Ticdc {
            self.capture_stopped(pod, now);
        }
        if matches!(pod.component, Component::Tikv | Component::Tiflash)
            && let Some(id) = self.store_by_instance.get(&pod.instance).copied()
            && let Some(store) = self.stores.get_mut(&id)
            && store.uid == pod.uid
            && store.pod_running
        {
            store.pod_running = false;
            store.stopped_at = Some(now.instant);
        }
    }

    /// A PD Pod runs: the member of its name, if listed, runs again (whatever its Pod UID: on
    /// the same data it is the same etcd member). A name removed through the API joins again
    /// only on a fresh data volume (without a known volume: a new Pod), as etcd refuses a
    /// removed member's data; until then it stays out.
    fn admit_member(&mut self, pod: &PodObservation, now: Now) {
        if !self.reachable(pod, now) {
            return;
        }
        let name = pod.instance.clone();
        let client_url = pod.address("advertise-client-urls", "http://", pod.port("client", 2379));
        let peer_url = pod.address("advertise-peer-urls", "http://", pod.port("peer", 2380));
        if let Some(m) = self.members.get_mut(&name) {
            m.pod = pod.name.clone();
            m.uid = pod.uid.clone();
            m.client_url = client_url;
            m.peer_url = peer_url;
            m.version = pod.version();
            if m.volume.is_none() {
                m.claim = pod.data_claim.clone();
                m.volume = pod.data_volume.clone();
            }
            return;
        }
        if let Some(removed) = self.removed_members.get(&name) {
            let fresh = match (&removed.volume, &pod.data_volume) {
                (Some(old), Some(new)) => old != new,
                // Its volume is not known yet: wait (the next tick asks again).
                (Some(_), None) => false,
                (None, _) => removed.uid != pod.uid,
            };
            if !fresh {
                return;
            }
            self.removed_members.remove(&name);
        }
        let member_id = stable_id(&[&self.key.namespace, &self.key.cluster, &name]);
        self.members.insert(
            name.clone(),
            MemberView {
                name: name.clone(),
                member_id,
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                client_url,
                peer_url,
                version: pod.version(),
                claim: pod.data_claim.clone(),
                volume: pod.data_volume.clone(),
                data_lost: false,
            },
        );
        self.log(now, EventKind::MemberAdded { name, member_id });
    }

    /// PD Pods that run but are not members (a removed name whose volume was not known yet).
    pub(super) fn admit_waiting_members(&mut self, now: Now) {
        let waiting: Vec<PodObservation> = self
            .pods
            .values()
            .filter(|p| p.component == Component::Pd && p.running)
            .filter(|p| !self.members.contains_key(&p.instance))
            .cloned()
            .collect();
        for pod in waiting {
            self.admit_member(&pod, now);
        }
    }

    /// The duplicated-address check PD runs when a store registers: a Pod at the address of a
    /// store that is not Tombstone, on another data volume than that store's (or after that
    /// store's data was deleted), is not that store and registers nothing.
    fn refuse_store(&mut self, pod: &PodObservation, id: u64, address: &str, now: Now) {
        if !self.refused_pods.insert(pod.uid.clone()) {
            return;
        }
        let reason = format!(
            "duplicated store address: {address} is store {id}'s, which is not Tombstone, and Pod {} (uid {}) does not run on that store's data volume",
            pod.name, pod.uid
        );
        tracing::warn!(
            namespace = %self.key.namespace,
            cluster = %self.key.cluster,
            store_id = id,
            %reason,
            "store registration refused"
        );
        self.log(
            now,
            EventKind::StoreRefused {
                store_id: id,
                instance: pod.instance.clone(),
                pod: pod.name.clone(),
                address: address.to_owned(),
                reason,
            },
        );
    }

    fn tikv_started(&mut self, pod: &PodObservation, now: Now) {
        if !self.reachable(pod, now) {
            return;
        }
        // A TiFlash store is known to PD by its proxy's addresses.
        let tiflash = pod.component == Component::Tiflash;
        let (address, status_address) = if tiflash {
            (
                pod.address("flash.proxy.advertise-addr", "", pod.port("proxy", 20170)),
                pod.address(
                    "flash.proxy.advertise-status-addr",
                    "",
                    pod.port("proxy-metrics", 20292),
                ),
            )
        } else {
            (
                pod.address("server.advertise-addr", "", pod.port("client", 20160)),
                pod.address(
                    "server.advertise-status-addr",
                    "",
                    pod.port("status", 20180),
                ),
            )
        };
        let version = pod.version().trim_start_matches('v').to_owned();
        let existing = self
            .store_by_instance
            .get(&pod.instance)
            .copied()
            .or_else(|| {
                self.stores
                    .values()
                    .find(|s| s.address == address && s.state != StoreState::Tombstone)
                    .map(|s| s.id)
            });
        if let Some(id) = existing
            && let Some(store) = self.stores.get(&id)
            && store.state != StoreState::Tombstone
        {
            let same_volume = match (&store.volume, &pod.data_volume) {
                (Some(a), Some(b)) => a == b,
                // Not known yet: a Pod of the same instance is taken for the same store.
                _ => true,
            };
            if !same_volume || store.data_lost {
                self.refuse_store(pod, id, &address, now);
                return;
            }
            if let Some(store) = self.stores.get_mut(&id) {
                // The same data again (a restart or a recreated Pod): it keeps its store.
                store.pod = pod.name.clone();
                if store.uid != pod.uid {
                    store.uid = pod.uid.clone();
                    store.started = now.wall;
                }
                if store.volume.is_none() {
                    store.claim = pod.data_claim.clone();
                    store.volume = pod.data_volume.clone();
                }
                store.address = address;
                store.status_address = status_address;
                store.version = version;
                store.pod_running = true;
                store.stopped_at = None;
                store.last_heartbeat = now.wall;
            }
            return;
        }
        if existing
            .and_then(|id| self.stores.get(&id))
            .is_some_and(|s| s.uid == pod.uid)
        {
            // A tombstone store's own Pod running again: it stays a tombstone.
            return;
        }
        let id = self.next_store_id;
        self.next_store_id += 1;
        self.stores.insert(
            id,
            Store {
                id,
                instance: pod.instance.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                address: address.clone(),
                status_address,
                version,
                // TiFlash registers with `engine=tiflash`, the label PD tells it apart by.
                labels: if tiflash {
                    BTreeMap::from([(ENGINE_LABEL.to_owned(), TIFLASH_ENGINE.to_owned())])
                } else {
                    BTreeMap::new()
                },
                state: StoreState::Up,
                pod_running: true,
                stopped_at: None,
                started: now.wall,
                last_heartbeat: now.wall,
                last_state_name: "Up".to_owned(),
                drained_reported: false,
                claim: pod.data_claim.clone(),
                volume: pod.data_volume.clone(),
                data_lost: false,
            },
        );
        self.store_by_instance.insert(pod.instance.clone(), id);
        self.log(
            now,
            EventKind::StoreRegistered {
                store_id: id,
                instance: pod.instance.clone(),
                address,
            },
        );
    }

    /// Once a tick: volumes learnt late are taken as the store's, and refused Pods try again
    /// (TiKV restarts until it registers) once the store holding their address is Tombstone.
    pub(super) fn retry_stores(&mut self, now: Now) {
        for store in self.stores.values_mut() {
            if store.volume.is_none()
                && let Some(pod) = self.pods.values().find(|p| p.uid == store.uid)
            {
                store.claim = pod.data_claim.clone();
                store.volume = pod.data_volume.clone();
            }
        }
        for member in self.members.values_mut() {
            if member.volume.is_none()
                && let Some(pod) = self.pods.values().find(|p| p.uid == member.uid)
            {
                member.claim = pod.data_claim.clone();
                member.volume = pod.data_volume.clone();
            }
        }
        let retry: Vec<PodObservation> = self
            .pods
            .values()
            .filter(|p| {
                p.running
                    && self.refused_pods.contains(&p.uid)
                    && !self.starting.contains_key(&p.uid)
            })
            .filter(|p| {
                self.store_by_instance
                    .get(&p.instance)
                    .and_then(|id| self.stores.get(id))
                    .is_none_or(|s| s.state == StoreState::Tombstone)
            })
            .cloned()
            .collect();
        for pod in retry {
            self.refused_pods.remove(&pod.uid);
            self.tikv_started(&pod, now);
        }
    }

    /// A claim of the cluster's namespace was seen (its UID) or deleted (its data is gone).
    pub fn observe_volume(&mut self, claim: &str, uid: &str, deleted: bool, now: Now) {
        if !deleted {
            for pod in self.raw_pods.values_mut().chain(self.pods.values_mut()) {
                if pod.data_claim.as_deref() == Some(claim) && pod.data_volume.is_none() {
                    pod.data_volume = Some(uid.to_owned());
                }
            }
            return;
        }
        let time = now.rfc3339();
        let stores: Vec<u64> = self
            .stores
            .values()
            .filter(|s| s.volume.as_deref() == Some(uid) && !s.data_lost)
            .map(|s| s.id)
            .collect();
        for id in stores {
            let Some(store) = self.stores.get(&id) else {
                continue;
            };
            let state = self.state_name(store, now).to_owned();
            let instance = store.instance.clone();
            let tombstone = store.state == StoreState::Tombstone;
            if let Some(store) = self.stores.get_mut(&id) {
                store.data_lost = true;
            }
            if tombstone {
                continue;
            }
            tracing::warn!(namespace = %self.key.namespace, cluster = %self.key.cluster,
                store_id = id, claim, "data loss: the PVC of a store that is not Tombstone was deleted");
            let loss = DataLoss::StoreVolumeDeleted {
                time: time.clone(),
                store_id: id,
                instance,
                claim: claim.to_owned(),
                store_state: state,
            };
            self.data_lost(loss, now);
        }
        let members: Vec<String> = self
            .members
            .values()
            .filter(|m| m.volume.as_deref() == Some(uid) && !m.data_lost)
            .map(|m| m.name.clone())
            .collect();
        for name in members {
            if let Some(m) = self.members.get_mut(&name) {
                m.data_lost = true;
            }
            tracing::warn!(namespace = %self.key.namespace, cluster = %self.key.cluster,
                member = %name, claim, "data loss: the PVC of a voting PD member was deleted");
            let loss = DataLoss::PdMemberVolumeDeleted {
                time: time.clone(),
                name,
                claim: claim.to_owned(),
            };
            self.data_lost(loss, now);
        }
        self.check_region_loss(now);
        self.record_safety(now);
    }

    fn data_lost(&mut self, loss: DataLoss, now: Now) {
        self.log(now, EventKind::DataLost { loss: loss.clone() });
        self.safety.lost(loss);
    }

    /// Regions with a majority of their replicas on stores whose data is gone are lost.
    pub(super) fn check_region_loss(&mut self, now: Now) {
        let gone: BTreeSet<u64> = self
            .stores
            .values()
            .filter(|s| s.data_lost)
            .map(|s| s.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        let time = now.rfc3339();
        let mut losses = Vec::new();
        for region in self.regions.iter_mut().filter(|r| !r.lost) {
            let lost: Vec<u64> = region
                .peers
                .iter()
                .map(|p| p.store)
                .filter(|s| gone.contains(s))
                .collect();
            if lost.len() * 2 > region.peers.len() {
                region.lost = true;
                losses.push(DataLoss::RegionLost {
                    time: time.clone(),
                    region_id: region.id,
                    peer_stores: region.peers.iter().map(|p| p.store).collect(),
                    lost_stores: lost,
                });
            }
        }
        for loss in losses {
            self.data_lost(loss, now);
        }
    }

    /// Regions without a working leader: none, or one whose store does not heartbeat, or
    /// without a live majority of replicas (it cannot keep its lease).
    pub(super) fn leaderless_regions(&self, now: Now) -> BTreeSet<u64> {
        let classes = self.classify(now);
        let alive = |s: &u64| classes.get(s).is_some_and(|c| c.alive);
        self.regions
            .iter()
            .filter(|r| {
                let live = r.peers.iter().filter(|p| alive(&p.store)).count();
                !r.leader.is_some_and(|l| alive(&l)) || live * 2 <= r.peers.len()
            })
            .map(|r| r.id)
            .collect()
    }

    /// Brings the safety record up to date with `now`.
    pub(super) fn record_safety(&mut self, now: Now) {
        let leaderless = self.leaderless_regions(now);
        let pd_leader = self.current_leader().is_some();
        self.safety.observe(now, self.ticks, pd_leader, &leaderless);
    }

    /// Whether any PD Pod of the cluster runs.
    pub fn any_pd_running(&self) -> bool {
        self.pods
            .values()
            .any(|p| p.component == Component::Pd && p.running)
    }

    /// Whether PD answers at all; if not, the 503 message.
    pub fn pd_available(&self) -> Result<(), ApiError> {
        if self.faults.pd_unreachable {
            return Err(ApiError::new(
                503,
                "PD is unreachable (simulated fault pd-unreachable)",
            ));
        }
        if !self.any_pd_running() {
            return Err(ApiError::new(503, "no PD Pod of this cluster is running"));
        }
        if self.current_leader().is_none() {
            // What PD's redirector answers while no member leads.
            return Err(ApiError::new(503, "no leader"));
        }
        Ok(())
    }

    /// Whether PD's raft cluster is bootstrapped: a TiKV store has joined. Before that, PD's
    /// store, region and scheduler paths answer 500 with [`NOT_BOOTSTRAPPED`].
    pub fn raft_bootstrapped(&self) -> Result<(), ApiError> {
        if self.stores.is_empty() {
            return Err(ApiError::new(500, NOT_BOOTSTRAPPED));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- PD members

    /// The members, ordered by name, whether they run or not.
    pub(super) fn members(&self) -> Vec<MemberView> {
        self.members.values().cloned().collect()
    }

    /// Whether a member serves: its Pod runs, its data is there, no `pd-member-down`.
    pub(super) fn member_up(&self, m: &MemberView) -> bool {
        !m.data_lost
            && !self.faults.down_members.contains(&m.name)
            && !self.starting.contains_key(&m.uid)
            && self.pods.values().any(|p| {
                p.component == Component::Pd && p.instance == m.name && p.uid == m.uid && p.running
            })
    }

    /// `health` in `/health`: serving and not marked unhealthy.
    pub(super) fn member_healthy(&self, m: &MemberView) -> bool {
        self.member_up(m) && !self.faults.unhealthy_members.contains(&m.name)
    }

    /// Whether a majority of the listed members serves (and `pd-quorum-lost` is not set).
    pub(super) fn quorum(&self) -> bool {
        let listed = self.members.len();
        let up = self.members.values().filter(|m| self.member_up(m)).count();
        listed > 0 && up * 2 > listed && !self.faults.pd_quorum_lost
    }

    /// The current leader's name, if any (a leader that stopped being a member is none).
    pub fn leader(&self) -> Option<String> {
        self.current_leader()
    }

    /// `POST /leader/transfer/{name}`: answered at once; the leader steps down on the next tick
    /// and the target leads on the one after.
    pub fn transfer_leader(&mut self, to: &str, now: Now) -> Result<(), ApiError> {
        let valid = self.members.get(to).is_some_and(|m| self.member_up(m));
        if !valid {
            let err = ApiError::new(500, "no valid pd to transfer etcd leader");
            return Err(self.reject(now, format!("POST /leader/transfer/{to}"), err));
        }
        if self.current_leader().as_deref() == Some(to) && self.transfer.is_none() {
            return Ok(());
        }
        let from = self.leader.clone();
        self.log(
            now,
            EventKind::LeaderTransferRequested {
                from: from.clone(),
                to: to.to_owned(),
            },
        );
        self.transfer = Some(Transfer {
            from,
            to: to.to_owned(),
            stepped_down: false,
        });
        Ok(())
    }

    /// `POST /leader/resign`: leadership goes to another serving member, the first by name.
    pub fn resign_leader(&mut self, now: Now) -> Result<(), ApiError> {
        let members = self.members();
        let next = members
            .iter()
            .filter(|m| self.member_up(m))
            .find(|m| Some(m.name.as_str()) != self.leader.as_deref());
        match next {
            Some(m) => {
                let to = m.name.clone();
                self.transfer_leader(&to, now)
            }
            // PD does nothing when it is the only member.
            None if members.len() == 1 => Ok(()),
            None => {
                let err = ApiError::new(500, "no valid pd to transfer etcd leader");
                Err(self.reject(now, "POST /leader/resign".to_owned(), err))
            }
        }
    }

    /// `DELETE /members/name/{name}`.
    pub fn delete_member_by_name(&mut self, name: &str, now: Now) -> Result<String, ApiError> {
        let Some(member) = self.members.get(name).cloned() else {
            let err = ApiError::new(404, format!("not found, pd: {name}"));
            return Err(self.reject(now, format!("DELETE /members/name/{name}"), err));
        };
        self.remove_member(&member, now);
        Ok(format!("removed, pd: {name}"))
    }

    /// `DELETE /members/id/{id}`.
    pub fn delete_member_by_id(&mut self, id: u64, now: Now) -> Result<String, ApiError> {
        let Some(member) = self.members.values().find(|m| m.member_id == id).cloned() else {
            let err = ApiError::new(500, "etcdserver: member not found");
            return Err(self.reject(now, format!("DELETE /members/id/{id}"), err));
        };
        self.remove_member(&member, now);
        Ok(format!("removed, pd: {id}"))
    }

    fn remove_member(&mut self, member: &MemberView, now: Now) {
        self.members.remove(&member.name);
        self.removed_members.insert(
            member.name.clone(),
            RemovedMember {
                uid: member.uid.clone(),
                volume: member.volume.clone(),
            },
        );
        if self.leader.as_deref() == Some(member.name.as_str()) {
            // The removed leader steps down; an election follows on the next tick.
            self.leader = None;
        }
        if self.transfer.as_ref().is_some_and(|t| t.to == member.name) {
            self.transfer = None;
        }
        self.log(
            now,
            EventKind::MemberDeleted {
                name: member.name.clone(),
                member_id: member.member_id,
            },
        );
        self.record_safety(now);
    }

    // ---------------------------------------------------------------- replication config

    /// `POST /config/replicate` with `max-replicas` and/or `location-labels`.
    pub fn set_replication(
        &mut self,
        max_replicas: Option<u64>,
        location_labels: Option<Vec<String>>,
        now: Now,
    ) -> Result<(), ApiError> {
        if max_replicas == Some(0) {
            let err = ApiError::new(
                400,
                "[PD:config:ErrConfigItem]max-replicas should be positive",
            );
            return Err(self.reject(now, "POST /config/replicate".to_owned(), err));
        }
        if let Some(n) = max_replicas {
            self.replication.max_replicas = n;
        }
        if let Some(labels) = location_labels {
            self.replication.location_labels = labels;
        }
        self.log(
            now,
            EventKind::ReplicationConfigSet {
                max_replicas: self.replication.max_replicas,
                location_labels: self.replication.location_labels.clone(),
            },
        );
        Ok(())
    }

    // ---------------------------------------------------------------- stores

    fn store_not_found(id: u64) -> ApiError {
        ApiError::new(
            404,
            format!("[PD:core:ErrStoreNotFound]store {id} not found"),
        )
    }

    /// Stores whose meta state is Up (Serving), whatever their heartbeats: PD's `getUpStores`.
    fn up_store_count(&self) -> usize {
        self.stores
            .values()
            .filter(|s| s.state == StoreState::Up)
            .count()
    }

    /// `DELETE /store/{id}`: the store goes Offline, its regions move away, then Tombstone.
    pub fn delete_store(&mut self, id: u64, now: Now) -> Result<(), ApiError> {
        let op = format!("DELETE /store/{id}");
        let Some(store) = self.stores.get(&id) else {
            return Err(self.reject(now, op, Self::store_not_found(id)));
        };
        match store.state {
            StoreState::Offline => Ok(()),
            StoreState::Tombstone => {
                let err = ApiError::new(
                    410,
                    format!("[PD:core:ErrStoreRemoved]store {id} has been removed"),
                );
                Err(self.reject(now, op, err))
            }
            StoreState::Up => {
                let remaining = self.up_store_count().saturating_sub(1);
                let need = self.max_replicas();
                if (remaining as u64) < need {
                    let err = ApiError::new(
                        400,
                        format!(
                            "[PD:core:ErrStoresNotEnough]can not remove store {id} since the number of up stores would be {remaining} while need {need}"
                        ),
                    );
                    return Err(self.reject(now, op, err));
                }
                let instance = store.instance.clone();
                if let Some(store) = self.stores.get_mut(&id) {
                    store.state = StoreState::Offline;
                }
                self.log(
                    now,
                    EventKind::StoreDeleted {
                        store_id: id,
                        instance,
                    },
                );
                Ok(())
            }
        }
    }

    /// `POST /store/{id}/state?state=Up|Offline`.
    pub fn set_store_state(&mut self, id: u64, state: &str, now: Now) -> Result<(), ApiError> {
        if state.eq_ignore_ascii_case("offline") {
            return self.delete_store(id, now);
        }
        let op = format!("POST /store/{id}/state?state={state}");
        if !state.eq_ignore_ascii_case("up") {
            let err = ApiError::new(400, format!("invalid state {state}"));
            return Err(self.reject(now, op, err));
        }
        let Some(store) = self.stores.get_mut(&id) else {
            return Err(self.reject(now, op, Self::store_not_found(id)));
        };
        match store.state {
            StoreState::Up => Ok(()),
            StoreState::Tombstone => {
                let err = ApiError::new(
                    410,
                    format!("[PD:core:ErrStoreRemoved]store {id} has been removed"),
                );
                Err(self.reject(now, op, err))
            }
            StoreState::Offline => {
                store.state = StoreState::Up;
                let instance = store.instance.clone();
                self.log(
                    now,
                    EventKind::StoreDeleteCancelled {
                        store_id: id,
                        instance,
                    },
                );
                Ok(())
            }
        }
    }

    /// `POST /store/{id}/label`: merged into the store's labels (replaced with `force`).
    pub fn set_store_labels(
        &mut self,
        id: u64,
        labels: BTreeMap<String, String>,
        force: bool,
        now: Now,
    ) -> Result<(), ApiError> {
        let op = format!("POST /store/{id}/label");
        if labels.contains_key(ENGINE_LABEL) {
            let err = ApiError::new(400, "label key \"engine\" is reserved");
            return Err(self.reject(now, op, err));
        }
        if let Some(bad) = labels.keys().find(|k| !valid_label_key(k)) {
            return Err(self.reject(now, op, invalid_label_key(bad)));
        }
        let Some(store) = self.stores.get_mut(&id) else {
            return Err(self.reject(now, op, invalid_store_id(id)));
        };
        if force {
            store.labels = labels;
        } else {
            store.labels.extend(labels);
        }
        self.log_labels(id, now);
        Ok(())
    }

    /// Logs the labels store `id` has after a change of them.
    fn log_labels(&mut self, id: u64, now: Now) {
        let Some(store) = self.stores.get(&id) else {
            return;
        };
        let (instance, labels) = (store.instance.clone(), store.labels.clone());
        self.log(
            now,
            EventKind::StoreLabelsSet {
                store_id: id,
                instance,
                labels,
            },
        );
    }

    /// `DELETE /store/{id}/label`: removes one label key; PD answers 500 when the store has no
    /// such label.
    pub fn delete_store_label(&mut self, id: u64, key: &str, now: Now) -> Result<(), ApiError> {
        let op = format!("DELETE /store/{id}/label");
        if !valid_label_key(key) {
            return Err(self.reject(now, op, invalid_label_key(key)));
        }
        let Some(store) = self.stores.get_mut(&id) else {
            return Err(self.reject(now, op, invalid_store_id(id)));
        };
        if store.labels.remove(key).is_none() {
            let err = ApiError::new(500, format!("Label {key} not found"));
            return Err(self.reject(now, op, err));
        }
        self.log_labels(id, now);
        Ok(())
    }

    // ---------------------------------------------------------------- schedulers

    /// `POST /schedulers` (and `POST /scheduler-config/evict-leader-scheduler/config`).
    pub fn add_scheduler(
        &mut self,
        name: &str,
        store_id: Option<u64>,
        now: Now,
    ) -> Result<(), ApiError> {
        let op = "POST /schedulers".to_owned();
        if name == EVICT_LEADER {
            let Some(id) = store_id else {
                return Err(self.reject(now, op, ApiError::new(400, "missing store id")));
            };
            if !self.stores.contains_key(&id) {
                let err = ApiError::new(
                    500,
                    format!("[PD:core:ErrStoreNotFound]store {id} not found"),
                );
                return Err(self.reject(now, op, err));
            }
            if self.evict_leader.insert(id) {
                if let Some(store) = self.stores.get_mut(&id) {
                    store.drained_reported = false;
                }
                self.log(
                    now,
                    EventKind::SchedulerAdded {
                        name: format!("{EVICT_LEADER}-{id}"),
                        store_id: Some(id),
                    },
                );
            }
            return Ok(());
        }
        if !DEFAULT_SCHEDULERS.contains(&name) {
            return Err(self.reject(now, op, ApiError::new(400, "unknown scheduler")));
        }
        if !self.schedulers.insert(name.to_owned()) {
            let err = ApiError::new(500, "[PD:scheduler:ErrSchedulerExisted]scheduler existed");
            return Err(self.reject(now, op, err));
        }
        self.log(
            now,
            EventKind::SchedulerAdded {
                name: name.to_owned(),
                store_id: None,
            },
        );
        Ok(())
    }

    /// `DELETE /schedulers/{name}`: `evict-leader-scheduler-{id}` removes one store,
    /// `evict-leader-scheduler` all of them. Whether the evict-leader scheduler is gone after.
    pub fn remove_scheduler(&mut self, name: &str, now: Now) -> Result<bool, ApiError> {
        let op = format!("DELETE /schedulers/{name}");
        let not_found = || {
            ApiError::new(
                404,
                "[PD:scheduler:ErrSchedulerNotFound]scheduler not found",
            )
        };
        if name == EVICT_LEADER {
            if self.evict_leader.is_empty() {
                return Err(self.reject(now, op, not_found()));
            }
            for id in std::mem::take(&mut self.evict_leader) {
                self.log(
                    now,
                    EventKind::SchedulerRemoved {
                        name: format!("{EVICT_LEADER}-{id}"),
                        store_id: Some(id),
                    },
                );
            }
            return Ok(true);
        }
        if let Some(suffix) = name
            .strip_prefix(EVICT_LEADER)
            .and_then(|s| s.strip_prefix('-'))
        {
            // PD takes the text after the last '-' as the store ID.
            let last = suffix.rsplit('-').next().unwrap_or(suffix);
            let removed = last
                .parse::<u64>()
                .ok()
                .filter(|id| self.evict_leader.remove(id));
            let Some(id) = removed else {
                return Err(self.reject(now, op, not_found()));
            };
            self.log(
                now,
                EventKind::SchedulerRemoved {
                    name: format!("{EVICT_LEADER}-{id}"),
                    store_id: Some(id),
                },
            );
            return Ok(self.evict_leader.is_empty());
        }
        if !self.schedulers.remove(name) {
            return Err(self.reject(now, op, not_found()));
        }
        self.log(
            now,
            EventKind::SchedulerRemoved {
                name: name.to_owned(),
                store_id: None,
            },
        );
        Ok(false)
    }

    /// Stores under the evict-leader scheduler.
    pub fn evicted_stores(&self) -> impl Iterator<Item = u64> + '_ {
        self.evict_leader.iter().copied()
    }

    // ---------------------------------------------------------------- TiDB

    /// `POST /labels` of a TiDB instance.
    pub fn set_tidb_labels(&mut self, instance: &str, labels: BTreeMap<String, String>) {
        self.tidb_labels
            .entry(instance.to_owned())
            .or_default()
            .extend(labels);
    }

    /// The running, healthy TiDB Pod of `instance`.
    fn serving_tidb(&self, instance: &str) -> Option<&PodObservation> {
        if self.faults.unhealthy_tidb.contains(instance) {
            return None;
        }
        self.pods
            .values()
            .find(|p| p.component == Component::Tidb && p.instance == instance && p.running)
    }

    /// `GET /tidb-pool/status` of a TiDB: `None` (503) unless it serves; `Some(None)` (404) for
    /// a server not started in standby mode; else `standby` or `activated`.
    pub fn tidb_pool_state(&self, instance: &str) -> Option<Option<&'static str>> {
        let pod = self.serving_tidb(instance)?;
        Some(pod.standby.then(|| {
            if self.tidb_activated.contains_key(&pod.uid) {
                "activated"
            } else {
                "standby"
            }
        }))
    }

    /// `POST /tidb-pool/activate`: a standby TiDB serves `keyspace` from now on. `Err` says why
    /// not (it does not serve, was not started in standby mode, or serves another keyspace).
    pub fn activate_tidb(
        &mut self,
        instance: &str,
        keyspace: &str,
        now: Now,
    ) -> Result<(), String> {
        let pod = self
            .serving_tidb(instance)
            .ok_or_else(|| format!("TiDB {instance} does not serve"))?;
        if !pod.standby {
            return Err(format!("TiDB {instance} was not started in standby mode"));
        }
        let uid = pod.uid.clone();
        match self.tidb_activated.get(&uid) {
            Some(serving) if serving != keyspace => {
                Err(format!("TiDB {instance} serves keyspace {serving} already"))
            }
            Some(_) => Ok(()),
            None => {
                self.tidb_activated.insert(uid, keyspace.to_owned());
                self.log(
                    now,
                    EventKind::TidbActivated {
                        instance: instance.to_owned(),
                        keyspace: keyspace.to_owned(),
                    },
                );
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- faults

    /// Sets a fault.
    pub fn set_fault(&mut self, fault: &Fault, now: Now) {
        if self.faults.set(fault, now.instant) {
            self.log(
                now,
                EventKind::FaultSet {
                    fault: fault.name().to_owned(),
                    target: fault.target(),
                },
            );
            if let Fault::NodeLost(node) = fault {
                self.reapply_node(node, now);
            }
            self.record_safety(now);
        }
    }

    /// Clears a fault.
    pub fn clear_fault(&mut self, fault: &Fault, now: Now) {
        if self.faults.clear(fault) {
            let target = match fault {
                Fault::MaxReplicas(_) => None,
                other => other.target(),
            };
            self.log(
                now,
                EventKind::FaultCleared {
                    fault: fault.name().to_owned(),
                    target,
                },
            );
            if let Fault::NodeLost(node) = fault {
                self.reapply_node(node, now);
            }
            self.record_safety(now);
        }
    }

    /// Moves crash-looping stores (`store-flap`) to their phase now, logging each change.
    pub(super) fn flap_stores(&mut self, now: Now) {
        let (down, up) = (self.settings.flap_down, self.settings.flap_up);
        for (store, down) in self.faults.flap(now.instant, down, up) {
            self.log(
                now,
                EventKind::StoreFlapped {
                    store: store.to_string(),
                    down,
                },
            );
        }
    }

    /// Clears every fault.
    pub fn clear_all_faults(&mut self, now: Now) {
        for fault in self.faults.all() {
            self.clear_fault(&fault, now);
        }
    }

    // ---------------------------------------------------------------- store liveness

    pub(super) fn liveness(&self, store: &Store, now: Now) -> Liveness {
        if store.data_lost || self.faults.store_down(store.id, &store.instance) {
            return Liveness::Down;
        }
        if store.pod_running {
            return Liveness::Alive;
        }
        match store.stopped_at {
            Some(at) if now.instant.saturating_duration_since(at) < self.settings.down_after => {
                Liveness::Disconnected
            }
            _ => Liveness::Down,
        }
    }

    /// `state_name` as PD reports it.
    pub(super) fn state_name(&self, store: &Store, now: Now) -> &'static str {
        match store.state {
            StoreState::Tombstone => "Tombstone",
            StoreState::Offline => "Offline",
            StoreState::Up => match self.liveness(store, now) {
                Liveness::Alive => "Up",
                Liveness::Disconnected => "Disconnected",
                Liveness::Down => "Down",
            },
        }
    }
}

/// PD's label key rule: letters, digits and `-_./`, starting and ending with a letter or digit
/// (an optional leading `$` marks an internal label).
/// PD's answer to a label key it does not accept.
fn invalid_label_key(key: &str) -> ApiError {
    ApiError::new(
        400,
        format!("[PD:config:ErrInvalidLabel]invalid label key: {key:?}"),
    )
}

/// PD's answer to a store ID it does not know, in a label call.
fn invalid_store_id(id: u64) -> ApiError {
    ApiError::new(
        500,
        format!("[PD:cluster:ErrInvalidStoreID]invalid store ID {id}, not found"),
    )
}

fn valid_label_key(key: &str) -> bool {
    let key = key.strip_prefix('$').unwrap_or(key);
    let bytes = key.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(b))
}
