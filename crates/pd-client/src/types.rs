//! The JSON shapes PD, TiDB and TiKV answer with, decoded leniently: fields PD leaves out
//! (`omitempty`) or sets to `null` take their default, fields this crate does not know are
//! ignored.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PD member as `/pd/api/v1/members` and `/pd/api/v1/leader` give it (`pdpb.Member`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    /// The member's name (PD's `--name`).
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// The etcd member ID; often above `i64::MAX`.
    #[serde(deserialize_with = "null_as_default")]
    pub member_id: u64,
    /// The URLs peers reach it on.
    #[serde(deserialize_with = "null_as_default")]
    pub peer_urls: Vec<String>,
    /// The URLs clients reach it on.
    #[serde(deserialize_with = "null_as_default")]
    pub client_urls: Vec<String>,
    /// The version the member's binary reports, e.g. `v8.5.2` (empty when PD does not say).
    #[serde(deserialize_with = "null_as_default")]
    pub binary_version: String,
}

/// The answer of `GET /pd/api/v1/members` (`pdpb.GetMembersResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembersInfo {
    /// Every member of the PD cluster.
    #[serde(deserialize_with = "null_as_default")]
    pub members: Vec<Member>,
    /// The PD leader (the member serving TSO and scheduling), if one is elected.
    pub leader: Option<Member>,
    /// The leader of PD's embedded etcd, if one is elected.
    pub etcd_leader: Option<Member>,
}

impl MembersInfo {
    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The name of the PD leader, if there is one.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader
            .as_ref()
            .map(|m| m.name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// A member to hand leadership to when `name` goes: the first, in PD's order, that `health`
    /// reports healthy, other than `name` and none of `avoid`.
    pub fn successor(
        &self,
        health: &[MemberHealth],
        name: &str,
        avoid: &dyn Fn(&str) -> bool,
    ) -> Option<String> {
        self.members
            .iter()
            .map(|m| m.name.as_str())
            .find(|m| *m != name && !avoid(m) && health.iter().any(|h| h.name == *m && h.health))
            .map(str::to_string)
    }
}

/// One entry of `GET /pd/api/v1/health`: whether PD could reach that member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberHealth {
    /// The member's name.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// The etcd member ID.
    #[serde(deserialize_with = "null_as_default")]
    pub member_id: u64,
    /// The URLs clients reach it on.
    #[serde(deserialize_with = "null_as_default")]
    pub client_urls: Vec<String>,
    /// Whether the member answered PD's health check.
    #[serde(deserialize_with = "null_as_default")]
    pub health: bool,
}

/// The answer of `GET /pd/api/v1/stores`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoresInfo {
    /// How many stores `stores` holds.
    #[serde(deserialize_with = "null_as_default")]
    pub count: i64,
    /// The stores.
    #[serde(deserialize_with = "null_as_default")]
    pub stores: Vec<StoreInfo>,
}

impl StoresInfo {
    /// The store with ID `id`.
    pub fn by_id(&self, id: u64) -> Option<&StoreInfo> {
        self.stores.iter().find(|s| s.store.id == id)
    }

    /// The store whose address (TiKV's advertised `host:port`) is `address`.
    pub fn by_address(&self, address: &str) -> Option<&StoreInfo> {
        self.stores.iter().find(|s| s.store.address == address)
    }
}

/// A store and its status, as `GET /pd/api/v1/store/{id}` and each entry of `/stores` give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreInfo {
    /// The store's metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub store: Store,
    /// The store's last reported status.
    #[serde(deserialize_with = "null_as_default")]
    pub status: StoreStatus,
}

/// [`Store::state_name`] of a store that serves.
pub const STATE_UP: &str = "Up";
/// [`Store::state_name`] of a store being taken out (`DELETE /store/{id}`), moving its data away.
pub const STATE_OFFLINE: &str = "Offline";
/// [`Store::state_name`] of a store that has been removed for good.
pub const STATE_TOMBSTONE: &str = "Tombstone";
/// [`Store::state_name`] of an Up store that has not sent a heartbeat for more than 20 seconds.
pub const STATE_DISCONNECTED: &str = "Disconnected";
/// [`Store::state_name`] of an Up store silent for longer than PD's `max-store-down-time`.
pub const STATE_DOWN: &str = "Down";

impl StoreInfo {
    /// The store is Up and heartbeating (`state_name` "Up").
    pub fn is_up(&self) -> bool {
        self.store.state_name == STATE_UP
    }

    /// The store is being taken out (`state_name` "Offline").
    pub fn is_offline(&self) -> bool {
        self.store.state_name == STATE_OFFLINE
    }

    /// The store has been removed (`state_name` "Tombstone").
    pub fn is_tombstone(&self) -> bool {
        self.store.state_name == STATE_TOMBSTONE
    }

    /// The store is Up but has missed heartbeats for a short while (`state_name` "Disconnected").
    pub fn is_disconnected(&self) -> bool {
        self.store.state_name == STATE_DISCONNECTED
    }

    /// The store is Up but has been silent longer than `max-store-down-time` (`state_name` "Down").
    pub fn is_down(&self) -> bool {
        self.store.state_name == STATE_DOWN
    }
}

/// A store's metadata (PD's `metapb.Store` plus `state_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Store {
    /// The store ID.
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    /// The address TiKV advertises, `host:port`.
    #[serde(deserialize_with = "null_as_default")]
    pub address: String,
    /// "Up", "Offline" or "Tombstone"; an Up store that misses heartbeats shows "Disconnected",
    /// then "Down".
    #[serde(deserialize_with = "null_as_default")]
    pub state_name: String,
    /// The node state of PD 5.3 and later: "Preparing", "Serving", "Removing" or "Removed". PD
    /// writes it as a number and leaves it out when it is 0 (Preparing), so `None` means either
    /// Preparing or a PD without node states; this crate turns the numbers into those names.
    #[serde(deserialize_with = "node_state_name")]
    pub node_state: Option<String>,
    /// The store's labels.
    #[serde(deserialize_with = "null_as_default")]
    pub labels: Vec<StoreLabel>,
    /// The TiKV (or TiFlash) version the store runs.
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    /// When the store's current process started, in seconds since the Unix epoch, as its
    /// heartbeats report it (0 when PD does not say).
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_timestamp: i64,
}

impl Store {
    /// The value of the label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }
}

/// A store label.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreLabel {
    /// The label's key, e.g. "zone".
    #[serde(deserialize_with = "null_as_default")]
    pub key: String,
    /// The label's value.
    #[serde(deserialize_with = "null_as_default")]
    pub value: String,
}

/// A store's last reported status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStatus {
    /// How many Region leaders the store holds.
    #[serde(deserialize_with = "null_as_default")]
    pub leader_count: i64,
    /// How many Region peers the store holds.
    #[serde(deserialize_with = "null_as_default")]
    pub region_count: i64,
    /// When PD last heard from the store (RFC 3339), absent before the first heartbeat.
    pub last_heartbeat_ts: Option<String>,
}

/// One placement rule (`GET /pd/api/v1/config/rules/group/{group}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlacementRule {
    /// The rule's group (`tiflash` for TiFlash replicas).
    #[serde(deserialize_with = "null_as_default")]
    pub group_id: String,
    /// Its ID (TiDB writes `table-<id>-r`).
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// `voter`, `leader`, `follower` or `learner`.
    #[serde(deserialize_with = "null_as_default")]
    pub role: String,
    /// How many replicas the rule places.
    #[serde(deserialize_with = "null_as_default")]
    pub count: u64,
    /// Which stores the replicas may go to.
    #[serde(deserialize_with = "null_as_default")]
    pub label_constraints: Vec<LabelConstraint>,
}

/// A placement rule's constraint on store labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabelConstraint {
    /// The label.
    #[serde(deserialize_with = "null_as_default")]
    pub key: String,
    /// `in`, `notIn`, `exists` or `notExists`.
    #[serde(deserialize_with = "null_as_default")]
    pub op: String,
    /// The values.
    #[serde(deserialize_with = "null_as_default")]
    pub values: Vec<String>,
}

/// The answer of `GET /pd/api/v1/config/replicate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationConfig {
    /// How many replicas each Region has.
    #[serde(rename = "max-replicas", deserialize_with = "null_as_default")]
    pub max_replicas: u64,
    /// The label keys that place replicas apart, most significant first. PD writes them as one
    /// comma-separated string ("zone,host"); a JSON list is accepted too.
    #[serde(
        rename = "location-labels",
        serialize_with = "comma_joined",
        deserialize_with = "comma_separated_or_list"
    )]
    pub location_labels: Vec<String>,
}

/// The answer of `GET /pd/api/v1/regions/check/down-peer` and the other Region checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionsInfo {
    /// How many Regions `regions` holds.
    #[serde(deserialize_with = "null_as_default")]
    pub count: i64,
    /// The Regions.
    #[serde(deserialize_with = "null_as_default")]
    pub regions: Vec<RegionInfo>,
}

impl RegionsInfo {
    /// The IDs of the stores that hold at least one down peer, sorted, without repeats.
    pub fn stores_with_down_peers(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .regions
            .iter()
            .flat_map(|r| r.down_peers.iter().map(|p| p.peer.store_id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// A Region, with the fields the operator reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionInfo {
    /// The Region ID.
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    /// The Region's peers that have not answered their leader for a while.
    #[serde(deserialize_with = "null_as_default")]
    pub down_peers: Vec<PeerStats>,
}

/// A down peer and for how long it has been down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerStats {
    /// The peer.
    #[serde(deserialize_with = "null_as_default")]
    pub peer: Peer,
    /// Seconds since the peer last answered.
    #[serde(deserialize_with = "null_as_default")]
    pub down_seconds: u64,
}

/// A Region peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peer {
    /// The peer ID.
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    /// The store the peer lives on.
    #[serde(deserialize_with = "null_as_default")]
    pub store_id: u64,
}

/// The answer of `GET /pd/api/v1/cluster` (`metapb.Cluster`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    /// The cluster ID PD chose at bootstrap.
    #[serde(deserialize_with = "null_as_default")]
    pub id: u64,
    /// The replica count stored with the cluster's metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub max_peer_count: u64,
}

/// The answer of TiDB's `GET /info/all` (tidb `ClusterServerInfo`): every TiDB server of the
/// cluster, by its DDL ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TidbServers {
    /// The servers, by DDL ID.
    #[serde(deserialize_with = "null_as_default")]
    pub all_servers_info: std::collections::BTreeMap<String, TidbServerInfo>,
}

/// One TiDB server in [`TidbServers`] (tidb `infosync.ServerInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TidbServerInfo {
    /// The version it reports, e.g. "8.0.11-TiDB-v8.5.2".
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    /// The address it advertises (its `advertise-address`).
    #[serde(deserialize_with = "null_as_default")]
    pub ip: String,
    /// Its MySQL port.
    #[serde(deserialize_with = "null_as_default")]
    pub listening_port: u64,
    /// Its status port.
    #[serde(deserialize_with = "null_as_default")]
    pub status_port: u64,
}

/// The answer of TiDB's `GET /status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TidbStatus {
    /// Open client connections.
    #[serde(deserialize_with = "null_as_default")]
    pub connections: i64,
    /// The MySQL-compatible version string, e.g. "8.0.11-TiDB-v8.1.0".
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    /// The commit TiDB was built from.
    #[serde(deserialize_with = "null_as_default")]
    pub git_hash: String,
}

/// The answer of TiCDC's `GET /status` (tiflow `cdc/model`, `ServerStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureStatus {
    /// The version, e.g. "v8.5.2".
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    /// The capture ID of this server.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// Whether this server is the owner.
    #[serde(deserialize_with = "null_as_default")]
    pub is_owner: bool,
}

/// One capture of TiCDC's `GET /api/v2/captures` (tiflow `cdc/api/v2`, `Capture`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureInfo {
    /// Capture ID.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// Whether it is the owner.
    #[serde(deserialize_with = "null_as_default")]
    pub is_owner: bool,
    /// Its advertised address.
    #[serde(deserialize_with = "null_as_default")]
    pub address: String,
}

/// The config of PD's evict-leader scheduler
/// (`GET /pd/api/v1/scheduler-config/evict-leader-scheduler/list`): one scheduler for all
/// evicted stores, keyed by store ID (a JSON object, so the IDs are strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EvictLeaderConfig {
    #[serde(rename = "store-id-ranges", deserialize_with = "null_as_default")]
    pub(crate) store_id_ranges: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Decodes `null` as the type's default, as Go writes nil slices and pointers.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes PD's comma-separated string (`typeutil.StringSlice`) or a list of strings.
fn comma_separated_or_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Labels {
        Joined(String),
        List(Vec<String>),
    }
    Ok(match Option::<Labels>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Labels::List(list)) => list,
        Some(Labels::Joined(joined)) => joined
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Encodes labels the way PD does: one comma-separated string.
fn comma_joined<S: Serializer>(labels: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&labels.join(","))
}

/// Decodes `metapb.NodeState`, a number in PD's JSON, into its name; a string is kept as is.
fn node_state_name<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NodeState {
        Number(i64),
        Name(String),
    }
    Ok(
        Option::<NodeState>::deserialize(deserializer)?.map(|state| match state {
            NodeState::Name(name) => name,
            NodeState::Number(0) => "Preparing".to_owned(),
            NodeState::Number(1) => "Serving".to_owned(),
            NodeState::Number(2) => "Removing".to_owned(),
            NodeState::Number(3) => "Removed".to_owned(),
            NodeState::Number(other) => other.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests;
