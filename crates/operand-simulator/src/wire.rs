//! JSON shapes of PD's `pd/api/v1` responses, as the real PD emits them (field names, which
//! fields are omitted when empty, enums as numbers plus a name). Sources, in tikv/pd:
//! `pkg/response/store.go` (StoreInfo), `pkg/response/region.go` (RegionInfo),
//! `server/api/health.go` (Health), `server/api/member.go` (pdpb.GetMembersResponse),
//! `pkg/schedule/config/config.go` (ReplicationConfig), `pkg/schedule/schedulers/evict_leader.go`
//! (the evict-leader config); kvproto's `metapb`/`pdpb` for the embedded protobuf messages.
//!
//! Every type also deserializes, so tests (here and elsewhere) can read the simulator's answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `pdpb.ResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// PD's cluster ID.
    #[serde(default)]
    pub cluster_id: u64,
}

/// `pdpb.Member`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Member name.
    #[serde(default)]
    pub name: String,
    /// Member ID.
    #[serde(default)]
    pub member_id: u64,
    /// Peer URLs.
    #[serde(default)]
    pub peer_urls: Vec<String>,
    /// Client URLs.
    #[serde(default)]
    pub client_urls: Vec<String>,
    /// Leader priority (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub leader_priority: i32,
    /// Deploy path.
    #[serde(default)]
    pub deploy_path: String,
    /// Binary version, e.g. `v8.5.2`.
    #[serde(default)]
    pub binary_version: String,
    /// Git hash.
    #[serde(default)]
    pub git_hash: String,
}

/// `pdpb.GetMembersResponse`, the answer of `GET /members`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MembersInfo {
    /// Header with the cluster ID.
    #[serde(default)]
    pub header: ResponseHeader,
    /// Members.
    #[serde(default)]
    pub members: Vec<Member>,
    /// The PD leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<Member>,
    /// The etcd leader (the same member here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_leader: Option<Member>,
}

/// One entry of `GET /health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Member name.
    pub name: String,
    /// Member ID.
    pub member_id: u64,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Whether the member answers.
    pub health: bool,
}

/// `metapb.Cluster`, the answer of `GET /cluster`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Cluster ID.
    pub id: u64,
    /// Max peers per region.
    #[serde(default)]
    pub max_peer_count: u32,
}

/// `ReplicationConfig`, the answer of `GET /config/replicate`. Booleans are strings and
/// `location-labels` is one comma-joined string, as PD encodes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicationConfig {
    /// Isolation level.
    #[serde(rename = "isolation-level")]
    pub isolation_level: String,
    /// Comma-joined location labels.
    #[serde(rename = "location-labels")]
    pub location_labels: String,
    /// Replicas per region.
    #[serde(rename = "max-replicas")]
    pub max_replicas: u64,
    /// `"true"` / `"false"`.
    #[serde(rename = "strictly-match-label")]
    pub strictly_match_label: String,
    /// `"true"` / `"false"`.
    #[serde(rename = "enable-placement-rules")]
    pub enable_placement_rules: String,
    /// `"true"` / `"false"`.
    #[serde(rename = "enable-placement-rules-cache")]
    pub enable_placement_rules_cache: String,
}

/// `metapb.StoreLabel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreLabel {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `response.MetaStore`: `metapb.Store` plus `state_name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaStore {
    /// Store ID.
    #[serde(default)]
    pub id: u64,
    /// Client address.
    #[serde(default)]
    pub address: String,
    /// `metapb.StoreState`: 0 Up (omitted), 1 Offline, 2 Tombstone.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub state: i32,
    /// Labels (omitted when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<StoreLabel>,
    /// Version, e.g. `8.5.2`.
    #[serde(default)]
    pub version: String,
    /// Peer address.
    #[serde(default)]
    pub peer_address: String,
    /// Status address.
    #[serde(default)]
    pub status_address: String,
    /// Git hash.
    #[serde(default)]
    pub git_hash: String,
    /// Start time, Unix seconds.
    #[serde(default)]
    pub start_timestamp: i64,
    /// Deploy path.
    #[serde(default)]
    pub deploy_path: String,
    /// Last heartbeat, Unix nanoseconds.
    #[serde(default)]
    pub last_heartbeat: i64,
    /// `metapb.NodeState`: 0 Preparing (omitted), 1 Serving, 2 Removing, 3 Removed.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub node_state: i32,
    /// Up, Disconnected, Down, Offline or Tombstone.
    #[serde(default)]
    pub state_name: String,
}

/// `response.StoreStatus` (the fields the simulator fills).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Capacity, e.g. `100GiB`.
    #[serde(default)]
    pub capacity: String,
    /// Available space.
    #[serde(default)]
    pub available: String,
    /// Used space.
    #[serde(default)]
    pub used_size: String,
    /// Region leaders on the store.
    #[serde(default)]
    pub leader_count: usize,
    /// Leader weight.
    #[serde(default)]
    pub leader_weight: f64,
    /// Leader score.
    #[serde(default)]
    pub leader_score: f64,
    /// Leader size (MiB).
    #[serde(default)]
    pub leader_size: i64,
    /// Region peers on the store.
    #[serde(default)]
    pub region_count: usize,
    /// Region weight.
    #[serde(default)]
    pub region_weight: f64,
    /// Region score.
    #[serde(default)]
    pub region_score: f64,
    /// Region size (MiB).
    #[serde(default)]
    pub region_size: i64,
    /// Start time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ts: Option<String>,
    /// Last heartbeat, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_ts: Option<String>,
    /// Uptime, Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<String>,
}

/// `response.StoreInfo`, the answer of `GET /store/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// Meta.
    pub store: MetaStore,
    /// Status.
    pub status: StoreStatus,
}

/// `response.StoresInfo`, the answer of `GET /stores`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoresInfo {
    /// Number of stores.
    pub count: usize,
    /// Stores.
    pub stores: Vec<StoreInfo>,
}

/// `response.MetaPeer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaPeer {
    /// Peer ID (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub id: u64,
    /// Store ID (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub store_id: u64,
    /// `metapb.PeerRole` (0 Voter, omitted).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub role: i32,
    /// `Voter`, `Learner`, ...
    #[serde(default)]
    pub role_name: String,
    /// Whether it is a learner (omitted when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// `response.PDPeerStats`: a down peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    /// The peer.
    pub peer: MetaPeer,
    /// Seconds it has been down (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub down_seconds: u64,
}

/// `metapb.RegionEpoch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionEpoch {
    /// Conf change version.
    #[serde(default)]
    pub conf_ver: u64,
    /// Split/merge version.
    #[serde(default)]
    pub version: u64,
}

/// `response.RegionInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionInfo {
    /// Region ID.
    pub id: u64,
    /// Start key, hex.
    pub start_key: String,
    /// End key, hex.
    pub end_key: String,
    /// Epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<RegionEpoch>,
    /// Peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<MetaPeer>,
    /// Leader peer (empty when none).
    #[serde(default)]
    pub leader: MetaPeer,
    /// Down peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down_peers: Vec<PeerStats>,
    /// Pending peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_peers: Vec<MetaPeer>,
    /// CPU usage.
    #[serde(default)]
    pub cpu_usage: u64,
    /// Bytes written.
    #[serde(default)]
    pub written_bytes: u64,
    /// Bytes read.
    #[serde(default)]
    pub read_bytes: u64,
    /// Keys written.
    #[serde(default)]
    pub written_keys: u64,
    /// Keys read.
    #[serde(default)]
    pub read_keys: u64,
    /// Approximate size (MiB).
    #[serde(default)]
    pub approximate_size: i64,
    /// Approximate keys.
    #[serde(default)]
    pub approximate_keys: i64,
    /// Approximate KV size.
    #[serde(default)]
    pub approximate_kv_size: i64,
    /// Approximate columnar KV size.
    #[serde(default)]
    pub approximate_columnar_kv_size: i64,
}

/// `response.RegionsInfo`, the answer of `GET /regions` and `GET /regions/check/...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionsInfo {
    /// Number of regions.
    pub count: usize,
    /// Regions.
    pub regions: Vec<RegionInfo>,
}

/// `keyutil.KeyRange` as the evict-leader config prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRange {
    /// Start key, hex (empty: the start).
    #[serde(rename = "start-key")]
    pub start_key: String,
    /// End key, hex (empty: the end).
    #[serde(rename = "end-key")]
    pub end_key: String,
}

/// `evictLeaderSchedulerConfig`, the answer of
/// `GET /scheduler-config/evict-leader-scheduler/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvictLeaderConfig {
    /// Evicted stores (keys are store IDs) and their key ranges.
    #[serde(rename = "store-id-ranges")]
    pub store_id_ranges: BTreeMap<String, Vec<KeyRange>>,
    /// Leaders moved per scheduling round.
    pub batch: u32,
}

/// TiDB's `GET /info/all` (tidb `ClusterServerInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TidbAllServers {
    /// How many servers.
    pub servers_num: usize,
    /// The DDL ID of the DDL owner.
    pub owner_id: String,
    /// Whether every server runs the same version.
    pub is_all_server_version_consistent: bool,
    /// The servers by DDL ID.
    pub all_servers_info: BTreeMap<String, TidbServerBody>,
}

/// One server of [`TidbAllServers`] (tidb `infosync.ServerInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TidbServerBody {
    /// `8.0.11-TiDB-{tag}`.
    pub version: String,
    /// Git hash.
    pub git_hash: String,
    /// Its DDL ID.
    pub ddl_id: String,
    /// Its `advertise-address`.
    pub ip: String,
    /// Its MySQL port.
    pub listening_port: u16,
    /// Its status port.
    pub status_port: u16,
    /// Its schema lease, as a Go duration.
    pub lease: String,
    /// When it started, Unix seconds.
    pub start_timestamp: i64,
    /// Its server labels.
    pub labels: BTreeMap<String, String>,
}

/// TiDB's `GET /status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TidbStatusBody {
    /// Open connections.
    pub connections: u64,
    /// `8.0.11-TiDB-{tag}`.
    pub version: String,
    /// Git hash.
    pub git_hash: String,
}
