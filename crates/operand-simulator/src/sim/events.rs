//! The per-cluster event log: every state-changing API call and every Pod observation, in order,
//! with a sequence number, so tests can assert orderings ("leader transferred before its Pod was
//! deleted").

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::Component;
use super::safety::DataLoss;
use crate::clock::Now;

/// How many events a cluster keeps; older ones are dropped (sequence numbers keep counting).
pub const EVENT_LOG_CAPACITY: usize = 20_000;

/// Why a Pod stopped counting as running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Its phase left Running.
    NotRunning,
    /// It got a deletionTimestamp.
    Deleting,
    /// It disappeared from the API while still running.
    Deleted,
    /// A Pod of the same name with another UID took its place.
    Replaced,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A Pod started counting as running (phase Running, no deletionTimestamp).
    PodRunning {
        /// pd, tikv or tidb.
        component: Component,
        /// `pingcap.com/instance`.
        instance: String,
        /// Pod name.
        pod: String,
        /// Pod UID.
        uid: String,
    },
    /// A Pod stopped counting as running.
    PodStopped {
        /// pd, tikv or tidb.
        component: Component,
        /// `pingcap.com/instance`.
        instance: String,
        /// Pod name.
        pod: String,
        /// Pod UID.
        uid: String,
        /// Why.
        reason: StopReason,
        /// For a store's Pod: the Region leaders the store held as its process stopped (each
        /// loses its leader until the Region elects another).
        #[serde(skip_serializing_if = "Option::is_none")]
        leaders: Option<usize>,
    },
    /// A Pod disappeared from the API.
    PodDeleted {
        /// pd, tikv or tidb.
        component: Component,
        /// `pingcap.com/instance`.
        instance: String,
        /// Pod name.
        pod: String,
        /// Pod UID.
        uid: String,
    },
    /// PD elected a leader on its own (start, or the leader went away).
    LeaderElected {
        /// The new leader.
        name: String,
        /// The leader before, if any.
        previous: Option<String>,
    },
    /// The target of `POST /leader/transfer/{name}` or `/leader/resign` leads.
    LeaderTransferred {
        /// The leader before.
        from: Option<String>,
        /// The new leader.
        to: String,
    },
    /// A PD Pod ran for the first time under its name (or anew on a fresh volume after its
    /// member was removed): a new member.
    MemberAdded {
        /// Member name.
        name: String,
        /// Member ID.
        member_id: u64,
    },
    /// `POST /leader/transfer/{name}` or `/leader/resign` was accepted; `leader_transferred`
    /// follows once the target leads.
    LeaderTransferRequested {
        /// The leader then.
        from: Option<String>,
        /// The target.
        to: String,
    },
    /// A TiKV Pod at the address of a store that is not Tombstone, but not on its data volume,
    /// was refused (PD's duplicated-address check); it registers nothing.
    StoreRefused {
        /// The store holding the address.
        store_id: u64,
        /// TiKV instance.
        instance: String,
        /// The refused Pod.
        pod: String,
        /// The address.
        address: String,
        /// Why, in words.
        reason: String,
    },
    /// A Pod's config advertises an address whose host does not resolve to the Pod in this
    /// Kubernetes cluster's DNS (another cluster domain, say): the Pod serves no one.
    AddressUnresolvable {
        /// pd, tikv or tidb.
        component: Component,
        /// `pingcap.com/instance`.
        instance: String,
        /// Pod name.
        pod: String,
        /// The address.
        address: String,
    },
    /// Data is gone for good (also in the safety record).
    DataLost {
        /// What was lost.
        loss: DataLoss,
    },
    /// `DELETE /members/name/{name}` or `/members/id/{id}` removed a member.
    MemberDeleted {
        /// Member name.
        name: String,
        /// Member ID.
        member_id: u64,
    },
    /// A TiKV Pod ran for the first time (or anew after its store became Tombstone): new store.
    StoreRegistered {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
        /// Store address.
        address: String,
    },
    /// The store's `state_name` changed (Up, Disconnected, Down, Offline, Tombstone).
    StoreStateChanged {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
        /// Previous state name.
        from: String,
        /// New state name.
        to: String,
    },
    /// `DELETE /store/{id}` set the store Offline.
    StoreDeleted {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
    },
    /// `POST /store/{id}/state?state=Up` brought an Offline store back.
    StoreDeleteCancelled {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
    },
    /// The Offline store has no region left and became Tombstone.
    StoreTombstone {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
    },
    /// `POST /store/{id}/label` set labels, or `DELETE /store/{id}/label` removed one.
    StoreLabelsSet {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
        /// All labels after the call.
        labels: BTreeMap<String, String>,
    },
    /// A scheduler was added (for evict-leader: a store was added to it).
    SchedulerAdded {
        /// As `GET /schedulers` names it per store: `evict-leader-scheduler-{id}`.
        name: String,
        /// The store, for per-store schedulers.
        store_id: Option<u64>,
    },
    /// A scheduler was removed (for evict-leader: a store was removed from it).
    SchedulerRemoved {
        /// As added.
        name: String,
        /// The store, for per-store schedulers.
        store_id: Option<u64>,
    },
    /// The leaders of an evicted store reached 0.
    LeadersDrained {
        /// Store ID.
        store_id: u64,
        /// TiKV instance.
        instance: String,
    },
    /// An online config change was accepted: PD's `POST /config` (no instance: PD keeps these
    /// items for the whole cluster) or TiKV's `POST /config` on an instance's status port.
    ConfigChanged {
        /// pd or tikv.
        component: Component,
        /// The TiKV instance.
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// The items, dotted, with the values sent.
        items: BTreeMap<String, serde_json::Value>,
    },
    /// `POST /config/replicate` changed the replication config.
    ReplicationConfigSet {
        /// New max-replicas.
        max_replicas: u64,
        /// New location labels.
        location_labels: Vec<String>,
    },
    /// A state-changing PD call was refused.
    RequestRejected {
        /// Which call, e.g. `DELETE /store/3`.
        operation: String,
        /// The HTTP status answered.
        status: u16,
        /// The message answered.
        message: String,
    },
    /// A fault was set through the control API.
    FaultSet {
        /// Fault name.
        fault: String,
        /// Its target, if any.
        target: Option<String>,
    },
    /// A crash-looping store (`store-flap`) changed phase.
    StoreFlapped {
        /// The fault's target: store ID or instance name.
        store: String,
        /// Down now (else Up).
        down: bool,
    },
    /// A TiCDC Pod runs: a new capture registered.
    CaptureRegistered {
        /// TiCDC instance.
        instance: String,
        /// Capture ID.
        capture_id: String,
        /// Advertised address.
        address: String,
    },
    /// A capture became the owner on its own (the first capture, or the owner went away).
    CaptureOwnerElected {
        /// TiCDC instance of the new owner.
        instance: String,
        /// The owner before, if any.
        previous: Option<String>,
    },
    /// `POST /tidb-pool/activate` gave a standby TiDB its keyspace.
    TidbActivated {
        /// TiDB instance.
        instance: String,
        /// The keyspace it serves now.
        keyspace: String,
    },
    /// `POST /api/v2/owner/resign` moved ownership.
    CaptureOwnerResigned {
        /// TiCDC instance of the owner before.
        from: String,
        /// TiCDC instance of the new owner.
        to: String,
    },
    /// `PUT /api/v1/captures/drain` was accepted for a capture (logged once per capture).
    CaptureDrainRequested {
        /// TiCDC instance.
        instance: String,
        /// Capture ID.
        capture_id: String,
        /// Tables it held then.
        tables: usize,
    },
    /// A drained capture handed over its last table.
    CaptureDrained {
        /// TiCDC instance.
        instance: String,
        /// Capture ID.
        capture_id: String,
    },
    /// A capture stopped (its Pod stopped); `tables` it still held wait for the owner to place
    /// them elsewhere: replication of those tables paused.
    CaptureGone {
        /// TiCDC instance.
        instance: String,
        /// Capture ID.
        capture_id: String,
        /// Tables it still held.
        tables: usize,
    },
    /// A fault was cleared through the control API.
    FaultCleared {
        /// Fault name.
        fault: String,
        /// Its target, if any.
        target: Option<String>,
    },
}

/// One entry of the log.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Monotonic per cluster, from 1.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A bounded, ordered log.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    last_seq: u64,
    events: VecDeque<Event>,
}

impl EventLog {
    /// Appends an event.
    pub fn push(&mut self, now: Now, kind: EventKind) {
        self.last_seq += 1;
        if self.events.len() == EVENT_LOG_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.last_seq,
            time: now.rfc3339(),
            unix_ms: now.unix_ms(),
            kind,
        });
    }

    /// Events with a sequence number above `after`, oldest first.
    pub fn since(&self, after: u64) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.seq > after)
    }

    /// The sequence number of the last event (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}
