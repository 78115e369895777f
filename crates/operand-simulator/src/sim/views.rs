//! What a cluster looks like from outside: the PD API's JSON (see [`crate::wire`]), the TiKV and
//! TiDB status answers, and the control API's whole-state view.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cluster::{
    ClusterState, DEFAULT_SCHEDULERS, EVICT_LEADER, Liveness, MemberView, Region, Store, StoreState,
};
use super::faults::Faults;
use super::safety::SafetyView;
use super::{Component, DEFAULT_VERSION};
use operator_runtime::duration::format as go_duration;

use crate::clock::{Now, rfc3339, unix_nanos, unix_seconds};
use crate::wire::{
    ClusterMeta, EvictLeaderConfig, Health, KeyRange, Member, MembersInfo, MetaPeer, MetaStore,
    PeerStats, RegionEpoch, RegionInfo, RegionsInfo, ReplicationConfig, ResponseHeader, StoreInfo,
    StoreLabel, StoreStatus, StoresInfo, TidbAllServers, TidbServerBody, TidbStatusBody,
};

/// Git hash the simulated servers report.
pub const GIT_HASH: &str = "0000000000000000000000000000000000000000";

/// Down seconds reported for a peer that is down because of the `down-peers` fault.
const FAULT_DOWN_SECONDS: u64 = 600;

/// A TiKV instance's status, when it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TikvStatus {
    /// Its store, if it registered.
    pub store_id: Option<u64>,
    /// Leaders on its store.
    pub leader_count: usize,
    /// Regions on its store.
    pub region_count: usize,
}

/// A TiDB instance's status, when it answers.
pub type TidbStatus = TidbStatusBody;

/// A member in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct MemberStateView {
    /// Name (`pingcap.com/instance`).
    pub name: String,
    /// Member ID.
    pub member_id: u64,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub uid: String,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// As `/health` reports it.
    pub health: bool,
    /// Serving: its Pod runs, its data is there, no `pd-member-down`.
    pub up: bool,
    /// UID of its data volume, once known.
    pub volume_uid: Option<String>,
    /// Whether it is the leader.
    pub leader: bool,
}

/// A store in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStateView {
    /// Store ID.
    pub id: u64,
    /// TiKV instance.
    pub instance: String,
    /// Pod name (the last one seen).
    pub pod: String,
    /// Pod UID (the last one seen).
    pub uid: String,
    /// Address, as PD reports it (see the `store-address-changed` fault).
    pub address: String,
    /// Status address, as PD reports it.
    pub status_address: String,
    /// As PD reports it.
    pub state_name: String,
    /// Serving, Removing or Removed.
    pub node_state: String,
    /// Whether its Pod runs.
    pub pod_running: bool,
    /// UID of its data volume, once known.
    pub volume_uid: Option<String>,
    /// Its data volume was deleted.
    pub data_lost: bool,
    /// Regions on it.
    pub region_count: usize,
    /// Leaders on it.
    pub leader_count: usize,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Under the evict-leader scheduler.
    pub evicting_leaders: bool,
}

/// A TiDB instance in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct TidbStateView {
    /// Instance.
    pub instance: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub uid: String,
    /// Whether its Pod runs.
    pub running: bool,
    /// Whether `/status` answers 200.
    pub healthy: bool,
    /// Labels set through `POST /labels`.
    pub labels: BTreeMap<String, String>,
}

/// A Pod in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct PodStateView {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Component.
    pub component: Component,
    /// Instance.
    pub instance: String,
    /// Phase Running and not being deleted.
    pub running: bool,
}

/// Replication settings in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicationStateView {
    /// In effect (the fault override if set).
    pub max_replicas: u64,
    /// As configured (flag or `POST /config/replicate`).
    pub configured_max_replicas: u64,
    /// Location labels.
    pub location_labels: Vec<String>,
}

/// Region totals in the control state view.
#[derive(Clone, Debug, Serialize)]
pub struct RegionSummaryView {
    /// Regions.
    pub count: usize,
    /// Regions with a down peer.
    pub with_down_peers: usize,
    /// Regions with fewer peers than max-replicas.
    pub missing_peers: usize,
    /// Regions with more peers than max-replicas.
    pub extra_peers: usize,
    /// Regions without a working leader.
    pub without_leader: usize,
    /// Regions that lost a majority of their replicas for good.
    pub lost: usize,
}

/// `GET /control/clusters/{ns}/{cluster}/state`.
#[derive(Clone, Debug, Serialize)]
pub struct StateView {
    /// Namespace.
    pub namespace: String,
    /// Cluster.
    pub cluster: String,
    /// PD's cluster ID.
    pub cluster_id: u64,
    /// Whether PD paths answer (else 503).
    pub pd_available: bool,
    /// Why not.
    pub pd_unavailable_reason: Option<String>,
    /// The PD leader.
    pub leader: Option<String>,
    /// PD members.
    pub members: Vec<MemberStateView>,
    /// Members removed through the API: name → UID of the Pod that ran then.
    pub removed_members: BTreeMap<String, String>,
    /// The same members: name → UID of their data volume then, when it was known.
    pub removed_member_volumes: BTreeMap<String, String>,
    /// Whether a majority of the members serves.
    pub pd_quorum: bool,
    /// Replication.
    pub replication: ReplicationStateView,
    /// Stores, Tombstone ones included.
    pub stores: Vec<StoreStateView>,
    /// As `GET /schedulers` lists them.
    pub schedulers: Vec<String>,
    /// Stores under evict-leader.
    pub evict_leader_stores: Vec<u64>,
    /// Region totals.
    pub regions: RegionSummaryView,
    /// TiDB instances.
    pub tidb: Vec<TidbStateView>,
    /// Every Pod of the cluster.
    pub pods: Vec<PodStateView>,
    /// Faults set.
    pub faults: Faults,
    /// The last event's sequence number.
    pub last_event_seq: u64,
}

fn region_key(index: usize) -> String {
    format!("t{index:08}")
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn voter(id: u64, store_id: u64) -> MetaPeer {
    MetaPeer {
        id,
        store_id,
        role: 0,
        role_name: "Voter".to_owned(),
        is_learner: false,
    }
}

fn learner(id: u64, store_id: u64) -> MetaPeer {
    MetaPeer {
        id,
        store_id,
        role: 1,
        role_name: "Learner".to_owned(),
        is_learner: true,
    }
}

impl ClusterState {
    fn member_json(m: &MemberView) -> Member {
        Member {
            name: m.name.clone(),
            member_id: m.member_id,
            peer_urls: vec![m.peer_url.clone()],
            client_urls: vec![m.client_url.clone()],
            leader_priority: 0,
            deploy_path: "/".to_owned(),
            binary_version: m.version.clone(),
            git_hash: GIT_HASH.to_owned(),
        }
    }

    /// `GET /members`.
    pub fn members_info(&self) -> MembersInfo {
        let members = self.members();
        let leader_name = self.current_leader();
        let leader = members
            .iter()
            .find(|m| Some(&m.name) == leader_name.as_ref())
            .map(Self::member_json);
        MembersInfo {
            header: ResponseHeader {
                cluster_id: self.id,
            },
            members: members.iter().map(Self::member_json).collect(),
            etcd_leader: leader.clone(),
            leader,
        }
    }

    /// `GET /leader`.
    pub fn leader_info(&self) -> Option<Member> {
        self.members_info().leader
    }

    /// `GET /health`.
    pub fn health(&self) -> Vec<Health> {
        self.members()
            .into_iter()
            .map(|m| Health {
                health: self.member_healthy(&m),
                name: m.name,
                member_id: m.member_id,
                client_urls: vec![m.client_url],
            })
            .collect()
    }

    /// `GET /cluster`.
    pub fn cluster_meta(&self) -> ClusterMeta {
        ClusterMeta {
            id: self.id,
            max_peer_count: u32::try_from(self.max_replicas()).unwrap_or(u32::MAX),
        }
    }

    /// `GET /config/replicate`.
    pub fn replication_config(&self) -> ReplicationConfig {
        ReplicationConfig {
            isolation_level: String::new(),
            location_labels: self.replication.location_labels.join(","),
            max_replicas: self.max_replicas(),
            strictly_match_label: "false".to_owned(),
            enable_placement_rules: "true".to_owned(),
            enable_placement_rules_cache: "false".to_owned(),
        }
    }

    /// The version PD reports: the leader's image tag.
    pub fn pd_version(&self) -> String {
        self.leader_info()
            .map(|m| m.binary_version)
            .unwrap_or_else(|| DEFAULT_VERSION.to_owned())
    }

    /// When the regions were created, and whether every region has its replicas
    /// (`GET /cluster/status`).
    pub fn bootstrap_status(&self) -> (Option<Now>, bool) {
        let want = usize::try_from(self.max_replicas()).unwrap_or(usize::MAX);
        let complete =
            self.bootstrapped_at.is_some() && self.regions.iter().all(|r| r.peers.len() >= want);
        (self.bootstrapped_at, complete)
    }

    /// When the simulator first saw the cluster, Unix seconds (`GET /status`).
    pub fn start_timestamp(&self) -> i64 {
        unix_seconds(self.created.wall)
    }

    /// `GET /config`: the replication and schedule sections, with the settings the operator
    /// reads.
    pub fn pd_config(&self) -> serde_json::Value {
        let schedulers_payload: serde_json::Map<String, serde_json::Value> = self
            .schedulers()
            .into_iter()
            .map(|s| (s, serde_json::Value::Null))
            .collect();
        serde_json::json!({
            "cluster-version": self.pd_version().trim_start_matches('v'),
            "replication": self.replication_config(),
            "schedule": {
                "max-store-down-time": go_duration(self.settings.down_after),
                "leader-schedule-limit": 4,
                "region-schedule-limit": 2048,
                "replica-schedule-limit": 64,
                "max-snapshot-count": 64,
                "max-pending-peer-count": 64,
                "schedulers-payload": schedulers_payload,
            },
            "pd-server": {
                "use-region-storage": "true",
                "key-type": "table",
            },
        })
    }

    /// The address and status address PD reports for a store: its Pod's, or under the
    /// `store-address-changed` fault the host with a `-moved` suffix (same ports, same ID).
    pub(super) fn reported_addresses(&self, store: &Store) -> (String, String) {
        if !self.faults.address_changed(store.id, &store.instance) {
            return (store.address.clone(), store.status_address.clone());
        }
        let moved = |address: &str| match address.rsplit_once(':') {
            Some((host, port)) => format!("{host}-moved:{port}"),
            None => format!("{address}-moved"),
        };
        (moved(&store.address), moved(&store.status_address))
    }

    fn store_json(&self, store: &Store, counts: (usize, usize), now: Now) -> StoreInfo {
        let (region_count, leader_count) = counts;
        let (address, status_address) = self.reported_addresses(store);
        let uptime = store
            .last_heartbeat
            .duration_since(store.started)
            .unwrap_or_default();
        let used = if region_count == 0 {
            "0B".to_owned()
        } else {
            format!("{region_count}MiB")
        };
        StoreInfo {
            store: MetaStore {
                id: store.id,
                address: address.clone(),
                state: store.state.code(),
                labels: store
                    .labels
                    .iter()
                    .map(|(k, v)| StoreLabel {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                version: store.version.clone(),
                peer_address: address,
                status_address,
                git_hash: GIT_HASH.to_owned(),
                start_timestamp: unix_seconds(store.started),
                deploy_path: "/".to_owned(),
                last_heartbeat: unix_nanos(store.last_heartbeat),
                node_state: store.state.node_state(),
                state_name: self.state_name(store, now).to_owned(),
            },
            status: StoreStatus {
                capacity: "100GiB".to_owned(),
                available: "99GiB".to_owned(),
                used_size: used,
                leader_count,
                leader_weight: 1.0,
                leader_score: leader_count as f64,
                leader_size: i64::try_from(leader_count).unwrap_or(i64::MAX),
                region_count,
                region_weight: 1.0,
                region_score: region_count as f64,
                region_size: i64::try_from(region_count).unwrap_or(i64::MAX),
                start_ts: Some(rfc3339(store.started)),
                last_heartbeat_ts: Some(rfc3339(store.last_heartbeat)),
                uptime: (!uptime.is_zero()).then(|| go_duration(uptime)),
            },
        }
    }

    fn counts_of(&self, id: u64) -> (usize, usize) {
        let regions = self.regions.iter().filter(|r| r.has_replica_on(id)).count();
        let leaders = self.regions.iter().filter(|r| r.leader == Some(id)).count();
        (regions, leaders)
    }

    /// `GET /store/{id}`.
    pub fn store_info(&self, id: u64, now: Now) -> Option<StoreInfo> {
        let store = self.stores.get(&id)?;
        Some(self.store_json(store, self.counts_of(id), now))
    }

    /// `GET /stores?state=..`: stores whose meta state (`0` Up, `1` Offline, `2` Tombstone) is
    /// in `states`. Disconnected and Down stores are Up in their meta state.
    pub fn stores_info(&self, states: &[i32], now: Now) -> StoresInfo {
        let regions = self.region_counts();
        let leaders = self.leader_counts();
        let stores: Vec<StoreInfo> = self
            .stores
            .values()
            .filter(|s| states.contains(&s.state.code()))
            .map(|s| {
                let counts = (
                    regions.get(&s.id).copied().unwrap_or(0),
                    leaders.get(&s.id).copied().unwrap_or(0),
                );
                self.store_json(s, counts, now)
            })
            .collect();
        StoresInfo {
            count: stores.len(),
            stores,
        }
    }

    /// `GET /schedulers`: one `evict-leader-scheduler` whatever the number of evicted stores,
    /// as PD does since 4.0.
    pub fn schedulers(&self) -> Vec<String> {
        let mut names: Vec<String> = DEFAULT_SCHEDULERS
            .iter()
            .filter(|s| self.schedulers.contains(**s))
            .map(|s| (*s).to_owned())
            .collect();
        if !self.evict_leader.is_empty() {
            names.push(EVICT_LEADER.to_owned());
        }
        names
    }

    /// `GET /scheduler-config/evict-leader-scheduler/list`, if the scheduler exists.
    pub fn evict_leader_config(&self) -> Option<EvictLeaderConfig> {
        if self.evict_leader.is_empty() {
            return None;
        }
        Some(EvictLeaderConfig {
            store_id_ranges: self
                .evict_leader
                .iter()
                .map(|id| {
                    (
                        id.to_string(),
                        vec![KeyRange {
                            start_key: String::new(),
                            end_key: String::new(),
                        }],
                    )
                })
                .collect(),
            batch: 3,
        })
    }

    /// Down peers of a region: peers on Down stores and on stores with the `down-peers` fault.
    fn down_peers(&self, region: &Region, now: Now) -> Vec<PeerStats> {
        region
            .peers
            .iter()
            .filter_map(|p| {
                let store = self.stores.get(&p.store)?;
                let seconds = if self.liveness(store, now) == Liveness::Down {
                    store
                        .stopped_at
                        .map(|at| now.instant.saturating_duration_since(at).as_secs())
                        .unwrap_or(FAULT_DOWN_SECONDS)
                        .max(1)
                } else if self.faults.down_peers(store.id, &store.instance) {
                    FAULT_DOWN_SECONDS
                } else {
                    return None;
                };
                Some(PeerStats {
                    peer: voter(p.id, p.store),
                    down_seconds: seconds,
                })
            })
            .collect()
    }

    fn region_json(&self, region: &Region, now: Now) -> RegionInfo {
        let last = self.settings.regions.saturating_sub(1);
        let leader = region
            .leader
            .and_then(|s| region.peers.iter().find(|p| p.store == s))
            .map(|p| voter(p.id, p.store))
            .unwrap_or_default();
        RegionInfo {
            id: region.id,
            start_key: if region.index == 0 {
                String::new()
            } else {
                region_key(region.index)
            },
            end_key: if region.index >= last {
                String::new()
            } else {
                region_key(region.index + 1)
            },
            epoch: Some(RegionEpoch {
                conf_ver: region.conf_ver,
                version: region.version,
            }),
            peers: region
                .peers
                .iter()
                .map(|p| voter(p.id, p.store))
                .chain(region.learners.iter().map(|p| learner(p.id, p.store)))
                .collect(),
            leader,
            down_peers: self.down_peers(region, now),
            pending_peers: Vec::new(),
            cpu_usage: 0,
            written_bytes: 0,
            read_bytes: 0,
            written_keys: 0,
            read_keys: 0,
            approximate_size: 1,
            approximate_keys: 1000,
            approximate_kv_size: 1,
            approximate_columnar_kv_size: 0,
        }
    }

    fn regions_where(&self, now: Now, keep: impl Fn(&Region, &RegionInfo) -> bool) -> RegionsInfo {
        let regions: Vec<RegionInfo> = self
            .regions
            .iter()
            .filter_map(|r| {
                let json = self.region_json(r, now);
                keep(r, &json).then_some(json)
            })
            .collect();
        RegionsInfo {
            count: regions.len(),
            regions,
        }
    }

    /// `GET /regions`.
    pub fn regions_info(&self, now: Now) -> RegionsInfo {
        self.regions_where(now, |_, _| true)
    }

    /// `GET /regions/check/{kind}`; `None` for kinds the simulator does not know.
    pub fn regions_check(&self, kind: &str, now: Now) -> Option<RegionsInfo> {
        let want = usize::try_from(self.max_replicas()).unwrap_or(usize::MAX);
        let offline = |r: &Region| {
            r.peers.iter().chain(&r.learners).any(|p| {
                self.stores
                    .get(&p.store)
                    .is_some_and(|s| s.state == StoreState::Offline)
            })
        };
        Some(match kind {
            "down-peer" => self.regions_where(now, |_, j| !j.down_peers.is_empty()),
            "miss-peer" => self.regions_where(now, |r, _| r.peers.len() < want),
            "extra-peer" => self.regions_where(now, |r, _| r.peers.len() > want),
            "offline-peer" => self.regions_where(now, |r, _| offline(r)),
            "learner-peer" => self.regions_where(now, |r, _| !r.learners.is_empty()),
            "pending-peer" | "empty-region" | "oversized-region" | "undersized-region" => {
                self.regions_where(now, |_, _| false)
            }
            _ => return None,
        })
    }

    /// A TiKV instance's status endpoint: `None` (503) unless its Pod runs and its store is not
    /// forced Down.
    pub fn tikv_status(&self, instance: &str) -> Option<TikvStatus> {
        self.store_server_status(Component::Tikv, instance)
    }

    /// A TiFlash instance's status (its proxy's): as [`ClusterState::tikv_status`], its region
    /// count counting learners.
    pub fn tiflash_status(&self, instance: &str) -> Option<TikvStatus> {
        self.store_server_status(Component::Tiflash, instance)
    }

    /// What a TiFlash instance's `/tiflash/store-status` answers: `Idle` while its Pod starts,
    /// `Ready` under the `tiflash-not-running` fault (the server runs, its storage does not
    /// serve), `Running` once it serves; `None` (503) when its Pod does not run or its store is
    /// forced Down.
    pub fn tiflash_store_status(&self, instance: &str) -> Option<&'static str> {
        if self.tiflash_status(instance).is_some() {
            return Some(if self.faults.tiflash_not_running.contains(instance) {
                "Ready"
            } else {
                "Running"
            });
        }
        let starting = self.pods.values().any(|p| {
            p.component == Component::Tiflash
                && p.instance == instance
                && p.running
                && !self.refused_pods.contains(&p.uid)
                && self.starting.contains_key(&p.uid)
        });
        starting.then_some("Idle")
    }

    /// What a TiKV instance's `/ready` answers: `Some(true)` (200) once it serves, `Some(false)`
    /// (500) under the `tikv-not-ready` fault, `None` (503) when its Pod does not run or its
    /// store is forced Down.
    pub fn tikv_ready(&self, instance: &str) -> Option<bool> {
        self.tikv_status(instance)
            .map(|_| !self.faults.tikv_not_ready.contains(instance))
    }

    fn store_server_status(&self, component: Component, instance: &str) -> Option<TikvStatus> {
        let running = self.pods.values().any(|p| {
            p.component == component
                && p.instance == instance
                && p.running
                && !self.refused_pods.contains(&p.uid)
                && !self.starting.contains_key(&p.uid)
        });
        if !running {
            return None;
        }
        let store_id = self.store_by_instance.get(instance).copied();
        let (region_count, leader_count) = match store_id {
            Some(id) => {
                if self.faults.store_down(id, instance) {
                    return None;
                }
                self.counts_of(id)
            }
            None if self.faults.store_down(0, instance) => return None,
            None => (0, 0),
        };
        Some(TikvStatus {
            store_id,
            leader_count,
            region_count,
        })
    }

    /// A PD member's `/metrics`, a small subset of the real one: `service_member_role` (1 on
    /// the leader) and, on the leader only as in PD, `pd_cluster_status` with the store counts
    /// by `state_name`. `None` (503) unless the member is up.
    pub fn pd_metrics(&self, instance: &str, now: Now) -> Option<String> {
        let member = self.members().into_iter().find(|m| m.name == instance)?;
        if !self.member_up(&member) {
            return None;
        }
        let leader = self.current_leader().as_deref() == Some(instance);
        let mut text = String::from(
            "# HELP service_member_role The role of this member (simulated).\n\
             # TYPE service_member_role gauge\n",
        );
        text.push_str(&format!(
            "service_member_role{{service=\"PD\"}} {}\n",
            u8::from(leader)
        ));
        if leader {
            let mut counts: BTreeMap<&str, usize> = [
                ("Up", 0),
                ("Disconnected", 0),
                ("Down", 0),
                ("Offline", 0),
                ("Tombstone", 0),
            ]
            .into_iter()
            .collect();
            for store in self.stores.values() {
                *counts.entry(self.state_name(store, now)).or_default() += 1;
            }
            text.push_str(
                "# HELP pd_cluster_status Status of the cluster (simulated: store counts).\n\
                 # TYPE pd_cluster_status gauge\n",
            );
            for (state, count) in counts {
                text.push_str(&format!(
                    "pd_cluster_status{{type=\"store_{}_count\"}} {count}\n",
                    state.to_lowercase()
                ));
            }
        }
        Some(text)
    }

    /// A TiDB instance's `/metrics`, a small subset of the real one: `None` (503) when its
    /// `/status` would be.
    pub fn tidb_metrics(&self, instance: &str) -> Option<String> {
        let status = self.tidb_status(instance)?;
        Some(format!(
            "# HELP tidb_server_connections Number of connections (simulated).\n\
             # TYPE tidb_server_connections gauge\n\
             tidb_server_connections {}\n",
            status.connections
        ))
    }

    /// A TiDB instance's `/status`: `None` (503) unless its Pod runs and it is not faulted.
    pub fn tidb_status(&self, instance: &str) -> Option<TidbStatus> {
        let pod = self
            .pods
            .values()
            .find(|p| p.component == Component::Tidb && p.instance == instance && p.running)?;
        if self.faults.unhealthy_tidb.contains(instance) {
            return None;
        }
        Some(TidbStatusBody {
            connections: 0,
            version: format!("8.0.11-TiDB-{}", pod.version()),
            git_hash: GIT_HASH.to_owned(),
        })
    }

    /// A TiDB instance's `/info/all`: every running TiDB of the PD cluster (of every Kubernetes
    /// cluster that joined it), the first by name being the DDL owner. `None` (503) unless
    /// `instance` itself serves.
    pub fn tidb_all_servers(&self, instance: &str) -> Option<TidbAllServers> {
        self.tidb_status(instance)?;
        let servers: BTreeMap<String, TidbServerBody> = self
            .pods
            .values()
            .filter(|p| p.component == Component::Tidb && p.running)
            .map(|p| {
                let ip = p
                    .advertised
                    .get("advertise-address")
                    .cloned()
                    .unwrap_or_else(|| p.host());
                let server = TidbServerBody {
                    version: format!("8.0.11-TiDB-{}", p.version()),
                    git_hash: GIT_HASH.to_owned(),
                    ddl_id: p.uid.clone(),
                    ip,
                    listening_port: p.ports.get("mysql-client").copied().unwrap_or(4000),
                    status_port: p.ports.get("status").copied().unwrap_or(10080),
                    lease: "45s".to_owned(),
                    start_timestamp: 0,
                    labels: self.tidb_labels(&p.instance),
                };
                (p.uid.clone(), server)
            })
            .collect();
        let versions: std::collections::BTreeSet<&str> =
            servers.values().map(|s| s.version.as_str()).collect();
        Some(TidbAllServers {
            servers_num: servers.len(),
            owner_id: servers.keys().next().cloned().unwrap_or_default(),
            is_all_server_version_consistent: versions.len() <= 1,
            all_servers_info: servers,
        })
    }

    /// `GET /control/clusters/{ns}/{cluster}/safety`: the availability and data-safety record.
    pub fn safety(&self, now: Now) -> SafetyView {
        let parts = self.safety.view(now, self.ticks);
        SafetyView {
            namespace: self.key.namespace.clone(),
            cluster: self.key.cluster.clone(),
            ticks: self.ticks,
            tick_ms: u64::try_from(self.settings.tick.as_millis()).unwrap_or(u64::MAX),
            pd_leader: self.current_leader().is_some(),
            pd_without_leader: parts.pd,
            pd_spans_dropped: parts.pd_dropped,
            regions_without_leader: parts.regions,
            region_spans_dropped: parts.region_dropped,
            data_loss: parts.data_loss,
            data_loss_dropped: parts.data_loss_dropped,
        }
    }

    /// Labels set on a TiDB instance through `POST /labels`.
    pub fn tidb_labels(&self, instance: &str) -> BTreeMap<String, String> {
        self.tidb_labels.get(instance).cloned().unwrap_or_default()
    }

    /// The whole simulated state.
    pub fn state(&self, now: Now) -> StateView {
        let leader = self.current_leader();
        let regions = self.region_counts();
        let leaders = self.leader_counts();
        let want = usize::try_from(self.max_replicas()).unwrap_or(usize::MAX);
        StateView {
            namespace: self.key.namespace.clone(),
            cluster: self.key.cluster.clone(),
            cluster_id: self.id,
            pd_available: self.pd_available().is_ok(),
            pd_unavailable_reason: self.pd_available().err().map(|e| e.message),
            leader: leader.clone(),
            members: self
                .members()
                .into_iter()
                .map(|m| MemberStateView {
                    health: self.member_healthy(&m),
                    up: self.member_up(&m),
                    volume_uid: m.volume.clone(),
                    leader: Some(&m.name) == leader.as_ref(),
                    name: m.name,
                    member_id: m.member_id,
                    pod: m.pod,
                    uid: m.uid,
                    client_urls: vec![m.client_url],
                    peer_urls: vec![m.peer_url],
                })
                .collect(),
            removed_members: self
                .removed_members
                .iter()
                .map(|(n, r)| (n.clone(), r.uid.clone()))
                .collect(),
            removed_member_volumes: self
                .removed_members
                .iter()
                .filter_map(|(n, r)| Some((n.clone(), r.volume.clone()?)))
                .collect(),
            pd_quorum: self.quorum(),
            replication: ReplicationStateView {
                max_replicas: self.max_replicas(),
                configured_max_replicas: self.replication.max_replicas,
                location_labels: self.replication.location_labels.clone(),
            },
            stores: self
                .stores
                .values()
                .map(|s| StoreStateView {
                    id: s.id,
                    instance: s.instance.clone(),
                    pod: s.pod.clone(),
                    uid: s.uid.clone(),
                    address: self.reported_addresses(s).0,
                    status_address: self.reported_addresses(s).1,
                    state_name: self.state_name(s, now).to_owned(),
                    node_state: s.state.node_state_name().to_owned(),
                    pod_running: s.pod_running,
                    volume_uid: s.volume.clone(),
                    data_lost: s.data_lost,
                    region_count: regions.get(&s.id).copied().unwrap_or(0),
                    leader_count: leaders.get(&s.id).copied().unwrap_or(0),
                    labels: s.labels.clone(),
                    evicting_leaders: self.evict_leader.contains(&s.id),
                })
                .collect(),
            schedulers: self.schedulers(),
            evict_leader_stores: self.evict_leader.iter().copied().collect(),
            regions: RegionSummaryView {
                count: self.regions.len(),
                with_down_peers: self
                    .regions
                    .iter()
                    .filter(|r| !self.down_peers(r, now).is_empty())
                    .count(),
                missing_peers: self.regions.iter().filter(|r| r.peers.len() < want).count(),
                extra_peers: self.regions.iter().filter(|r| r.peers.len() > want).count(),
                without_leader: self.leaderless_regions(now).len(),
                lost: self.regions.iter().filter(|r| r.lost).count(),
            },
            tidb: self
                .pods
                .values()
                .filter(|p| p.component == Component::Tidb)
                .map(|p| TidbStateView {
                    instance: p.instance.clone(),
                    pod: p.name.clone(),
                    uid: p.uid.clone(),
                    running: p.running,
                    healthy: p.running && !self.faults.unhealthy_tidb.contains(&p.instance),
                    labels: self.tidb_labels(&p.instance),
                })
                .collect(),
            pods: self
                .pods
                .values()
                .map(|p| PodStateView {
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    component: p.component,
                    instance: p.instance.clone(),
                    running: p.running,
                })
                .collect(),
            faults: self.faults.clone(),
            last_event_seq: self.events.last_seq(),
        }
    }
}
