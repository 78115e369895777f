//! Decoding answers shaped as PD, TiDB and TiKV write them (field names, `omitempty` fields left
//! out, numbers above `i64::MAX`, enums as numbers, comma-joined label lists).

use super::*;

type TestResult = std::result::Result<(), serde_json::Error>;

/// `pdpb.GetMembersResponse` as `server/api/member.go` renders it, with the fields the members
/// handler fills in (`binary_version`, `deploy_path`, `git_hash`, `leader_priority`).
const MEMBERS: &str = r#"{
  "header": { "cluster_id": 7391120398815293420 },
  "members": [
    {
      "name": "basic-pd-x1k2",
      "member_id": 15342110392711018732,
      "peer_urls": ["http://basic-pd-x1k2.basic-pd-peer.db:2380"],
      "client_urls": ["http://basic-pd-x1k2.basic-pd-peer.db:2379"],
      "deploy_path": "/",
      "binary_version": "v8.5.0",
      "git_hash": "0a1b2c3d"
    },
    {
      "name": "basic-pd-q7w8",
      "member_id": 2051330912735105521,
      "peer_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2380"],
      "client_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2379"],
      "leader_priority": 1,
      "binary_version": "v8.5.0"
    }
  ],
  "leader": {
    "name": "basic-pd-q7w8",
    "member_id": 2051330912735105521,
    "peer_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2380"],
    "client_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2379"]
  },
  "etcd_leader": {
    "name": "basic-pd-q7w8",
    "member_id": 2051330912735105521,
    "peer_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2380"],
    "client_urls": ["http://basic-pd-q7w8.basic-pd-peer.db:2379"]
  }
}"#;

#[test]
fn members_decode_with_ids_above_i64() -> TestResult {
    let info: MembersInfo = serde_json::from_str(MEMBERS)?;
    assert_eq!(info.members.len(), 2);
    assert_eq!(info.members[0].member_id, 15_342_110_392_711_018_732);
    assert_eq!(
        info.members[0].peer_urls,
        ["http://basic-pd-x1k2.basic-pd-peer.db:2380"]
    );
    assert_eq!(info.leader_name(), Some("basic-pd-q7w8"));
    assert_eq!(
        info.etcd_leader.as_ref().map(|m| m.member_id),
        Some(2_051_330_912_735_105_521)
    );
    assert!(info.member("basic-pd-x1k2").is_some());
    Ok(())
}

#[test]
fn members_without_a_leader_decode() -> TestResult {
    // While an election runs, pdpb leaves the leaders out (omitempty).
    let info: MembersInfo = serde_json::from_str(r#"{"header":{},"members":[{"name":"a"}]}"#)?;
    assert_eq!(info.leader, None);
    assert_eq!(info.leader_name(), None);
    assert_eq!(info.members[0].member_id, 0);
    assert!(info.members[0].client_urls.is_empty());
    Ok(())
}

/// `[]Health` of `server/api/health.go`: no omitempty, so nil slices come as `null`.
const HEALTH: &str = r#"[
  {"name": "basic-pd-x1k2", "member_id": 15342110392711018732,
   "client_urls": ["http://basic-pd-x1k2.basic-pd-peer.db:2379"], "health": true},
  {"name": "basic-pd-q7w8", "member_id": 2051330912735105521, "client_urls": null, "health": false}
]"#;

#[test]
fn health_decodes() -> TestResult {
    let health: Vec<MemberHealth> = serde_json::from_str(HEALTH)?;
    assert_eq!(health.len(), 2);
    assert!(health[0].health);
    assert_eq!(health[0].member_id, 15_342_110_392_711_018_732);
    assert!(!health[1].health);
    assert!(health[1].client_urls.is_empty());
    Ok(())
}

/// `response.StoresInfo`: `metapb.Store` is embedded with `state_name` beside it; `state` and
/// `node_state` are protobuf enums, written as numbers and left out when 0 (Up, Preparing).
const STORES: &str = r#"{
  "count": 4,
  "stores": [
    {
      "store": {
        "id": 1,
        "address": "basic-tikv-a1.basic-tikv-peer.db:20160",
        "labels": [{"key": "zone", "value": "z1"}, {"key": "host", "value": "n1"}],
        "version": "8.5.0",
        "peer_address": "basic-tikv-a1.basic-tikv-peer.db:20160",
        "status_address": "basic-tikv-a1.basic-tikv-peer.db:20180",
        "git_hash": "9f8e7d",
        "start_timestamp": 1735095903,
        "deploy_path": "/",
        "last_heartbeat": 1735098083480549971,
        "node_state": 1,
        "state_name": "Up"
      },
      "status": {
        "capacity": "100GiB", "available": "80GiB", "used_size": "300MiB",
        "leader_count": 17, "leader_weight": 1, "leader_score": 17, "leader_size": 17,
        "region_count": 60, "region_weight": 1, "region_score": 127.4, "region_size": 60,
        "slow_score": 1,
        "slow_trend": {"cause_value": 250054.4, "cause_rate": 0, "result_value": 10, "result_rate": 0},
        "start_ts": "2024-12-25T03:05:03Z",
        "last_heartbeat_ts": "2024-12-25T03:41:23.480549971Z",
        "uptime": "36m20.480549971s"
      }
    },
    {
      "store": {
        "id": 4, "address": "basic-tikv-b2.basic-tikv-peer.db:20160", "state": 1,
        "version": "8.5.0", "node_state": 2, "state_name": "Offline"
      },
      "status": {"capacity": "0B", "available": "0B", "leader_count": 0, "region_count": 12,
                 "last_heartbeat_ts": "2024-12-25T03:41:20Z"}
    },
    {
      "store": {
        "id": 5, "address": "basic-tikv-c3.basic-tikv-peer.db:20160", "state": 2,
        "version": "8.4.0", "node_state": 3, "state_name": "Tombstone",
        "physically_destroyed": true
      },
      "status": {"capacity": "0B", "available": "0B", "leader_count": 0, "region_count": 0}
    },
    {
      "store": {
        "id": 7, "address": "basic-tikv-d4.basic-tikv-peer.db:20160",
        "version": "8.5.0", "state_name": "Disconnected"
      },
      "status": {"leader_count": 3, "region_count": 9}
    }
  ]
}"#;

#[test]
fn stores_decode_in_every_state() -> TestResult {
    let info: StoresInfo = serde_json::from_str(STORES)?;
    assert_eq!(info.count, 4);
    assert_eq!(info.stores.len(), 4);

    let up = &info.stores[0];
    assert!(up.is_up() && !up.is_offline() && !up.is_tombstone());
    assert_eq!(up.store.id, 1);
    assert_eq!(up.store.address, "basic-tikv-a1.basic-tikv-peer.db:20160");
    assert_eq!(up.store.node_state.as_deref(), Some("Serving"));
    assert_eq!(up.store.label("zone"), Some("z1"));
    assert_eq!(up.store.version, "8.5.0");
    assert_eq!(up.status.leader_count, 17);
    assert_eq!(up.status.region_count, 60);
    assert_eq!(
        up.status.last_heartbeat_ts.as_deref(),
        Some("2024-12-25T03:41:23.480549971Z")
    );

    let offline = info.by_id(4).ok_or_else(|| missing("store 4"))?;
    assert!(offline.is_offline());
    assert_eq!(offline.store.node_state.as_deref(), Some("Removing"));
    assert!(offline.store.labels.is_empty());

    let tombstone = info.by_id(5).ok_or_else(|| missing("store 5"))?;
    assert!(tombstone.is_tombstone());
    assert_eq!(tombstone.store.node_state.as_deref(), Some("Removed"));
    assert_eq!(tombstone.status.last_heartbeat_ts, None);

    let disconnected = info
        .by_address("basic-tikv-d4.basic-tikv-peer.db:20160")
        .ok_or_else(|| missing("store 7"))?;
    assert!(disconnected.is_disconnected() && !disconnected.is_up());
    assert_eq!(disconnected.store.node_state, None);
    Ok(())
}

#[test]
fn a_single_store_decodes() -> TestResult {
    let store: StoreInfo = serde_json::from_str(
        r#"{"store": {"id": 9, "address": "t:20160", "state_name": "Down", "node_state": "Serving"},
            "status": {"leader_count": 0, "region_count": 4}}"#,
    )?;
    assert!(store.is_down());
    assert_eq!(store.store.node_state.as_deref(), Some("Serving"));
    Ok(())
}

/// `sc.ReplicationConfig`: `location-labels` is a `typeutil.StringSlice` (one comma-joined
/// string) and the booleans carry Go's `,string` option.
const REPLICATION: &str = r#"{
  "max-replicas": 3,
  "location-labels": "zone,rack,host",
  "strictly-match-label": "false",
  "enable-placement-rules": "true",
  "enable-placement-rules-cache": "false",
  "isolation-level": ""
}"#;

#[test]
fn replication_config_decodes_pd_comma_string() -> TestResult {
    let config: ReplicationConfig = serde_json::from_str(REPLICATION)?;
    assert_eq!(config.max_replicas, 3);
    assert_eq!(config.location_labels, ["zone", "rack", "host"]);
    Ok(())
}

#[test]
fn replication_config_accepts_empty_and_list_labels() -> TestResult {
    let empty: ReplicationConfig =
        serde_json::from_str(r#"{"max-replicas": 5, "location-labels": ""}"#)?;
    assert_eq!(empty.max_replicas, 5);
    assert!(empty.location_labels.is_empty());
    let list: ReplicationConfig =
        serde_json::from_str(r#"{"max-replicas": 1, "location-labels": ["zone", "host"]}"#)?;
    assert_eq!(list.location_labels, ["zone", "host"]);
    Ok(())
}

#[test]
fn replication_config_encodes_like_pd() -> TestResult {
    let config = ReplicationConfig {
        max_replicas: 3,
        location_labels: vec!["zone".into(), "host".into()],
    };
    let value = serde_json::to_value(&config)?;
    assert_eq!(
        value,
        serde_json::json!({"max-replicas": 3, "location-labels": "zone,host"})
    );
    assert_eq!(serde_json::from_value::<ReplicationConfig>(value)?, config);
    Ok(())
}

/// `response.RegionsInfo` of `/regions/check/down-peer`: `PDPeerStats` embeds `pdpb.PeerStats`
/// (`down_seconds`) and shadows its `peer` with a `MetaPeer` (`role_name`, `is_learner`).
const DOWN_PEER_REGIONS: &str = r#"{
  "count": 2,
  "regions": [
    {
      "id": 128,
      "start_key": "7480000000000000FF0500000000000000F8",
      "end_key": "",
      "epoch": {"conf_ver": 5, "version": 8},
      "peers": [
        {"id": 129, "store_id": 1, "role_name": "Voter"},
        {"id": 130, "store_id": 4, "role_name": "Voter"},
        {"id": 131, "store_id": 5, "role_name": "Voter"}
      ],
      "leader": {"id": 129, "store_id": 1, "role_name": "Voter"},
      "down_peers": [{"peer": {"id": 131, "store_id": 5, "role_name": "Voter"}, "down_seconds": 612}],
      "written_bytes": 0, "read_bytes": 0, "written_keys": 0, "read_keys": 0,
      "approximate_size": 1, "approximate_keys": 0
    },
    {
      "id": 200,
      "start_key": "", "end_key": "",
      "down_peers": [
        {"peer": {"id": 201, "store_id": 5, "role": 1, "role_name": "Learner", "is_learner": true}},
        {"peer": {"id": 202, "store_id": 4, "role_name": "Voter"}, "down_seconds": 30}
      ]
    }
  ]
}"#;

#[test]
fn down_peer_regions_decode() -> TestResult {
    let info: RegionsInfo = serde_json::from_str(DOWN_PEER_REGIONS)?;
    assert_eq!(info.count, 2);
    assert_eq!(info.regions[0].id, 128);
    assert_eq!(
        info.regions[0].down_peers,
        [PeerStats {
            peer: Peer {
                id: 131,
                store_id: 5
            },
            down_seconds: 612
        }]
    );
    // `down_seconds` is omitempty.
    assert_eq!(info.regions[1].down_peers[0].down_seconds, 0);
    assert_eq!(info.stores_with_down_peers(), [4, 5]);
    Ok(())
}

#[test]
fn no_down_peers_decode() -> TestResult {
    let info: RegionsInfo = serde_json::from_str(r#"{"count": 0, "regions": []}"#)?;
    assert!(info.regions.is_empty());
    assert!(info.stores_with_down_peers().is_empty());
    Ok(())
}

#[test]
fn cluster_decodes() -> TestResult {
    let cluster: ClusterInfo =
        serde_json::from_str(r#"{"id": 12818309996638325969, "max_peer_count": 3}"#)?;
    assert_eq!(cluster.id, 12_818_309_996_638_325_969);
    assert_eq!(cluster.max_peer_count, 3);
    Ok(())
}

#[test]
fn evict_leader_config_decodes() -> TestResult {
    let config: EvictLeaderConfig = serde_json::from_str(
        r#"{"store-id-ranges": {"1": [{"start-key": "", "end-key": ""}], "14": []}, "batch": 3}"#,
    )?;
    let keys: Vec<&str> = config.store_id_ranges.keys().map(String::as_str).collect();
    assert_eq!(keys, ["1", "14"]);
    Ok(())
}

#[test]
fn tidb_status_decodes() -> TestResult {
    let status: TidbStatus = serde_json::from_str(
        r#"{"connections": 2, "version": "8.0.11-TiDB-v8.5.0", "git_hash": "d1e2f3"}"#,
    )?;
    assert_eq!(status.connections, 2);
    assert_eq!(status.version, "8.0.11-TiDB-v8.5.0");
    assert_eq!(status.git_hash, "d1e2f3");
    Ok(())
}

#[test]
fn tidb_servers_decode() -> TestResult {
    // tidb's ClusterServerInfo, as `GET /info/all` writes it.
    let servers: TidbServers = serde_json::from_str(
        r#"{"servers_num": 2, "owner_id": "a1", "is_all_server_version_consistent": true,
            "all_servers_info": {
              "a1": {"version": "8.0.11-TiDB-v8.5.2", "git_hash": "x", "ddl_id": "a1",
                     "ip": "db-a.db-tidb-peer.ns", "listening_port": 4000, "status_port": 10080,
                     "lease": "45s", "binlog_status": "Off", "start_timestamp": 1700000000,
                     "labels": {}, "server_id": 12},
              "b2": {"version": "8.0.11-TiDB-v8.5.2", "ddl_id": "b2", "ip": "db-b.db-tidb-peer.ns",
                     "listening_port": 4001, "status_port": 10081}
            }}"#,
    )?;
    let b = servers
        .all_servers_info
        .get("b2")
        .ok_or_else(|| missing("b2"))?;
    assert_eq!(b.ip, "db-b.db-tidb-peer.ns");
    assert_eq!((b.listening_port, b.status_port), (4001, 10081));
    assert_eq!(servers.all_servers_info.len(), 2);
    Ok(())
}

fn missing(what: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!("{what} is missing"))
}
