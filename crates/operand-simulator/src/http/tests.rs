//! HTTP-level tests: the router in process, driven with `tower::ServiceExt::oneshot`; checks
//! paths, status codes and the JSON shapes on the wire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{SharedSim, lock, router};
use crate::clock::Now;
use crate::sim::{Component, PodObservation, Sim, SimConfig};
use crate::wire::{MembersInfo, StoresInfo};

const PD: &str = "/clusters/db/basic/pd/api/v1";

fn pod(component: Component, name: &str) -> PodObservation {
    let ports = match component {
        Component::Pd => vec![("client", 2379), ("peer", 2380)],
        Component::Tikv => vec![("client", 20160), ("status", 20180)],
        Component::Tidb => vec![("mysql", 4000), ("status", 10080)],
        Component::Tiflash => vec![("proxy", 20170), ("proxy-metrics", 20292)],
        Component::Ticdc => vec![("ticdc", 8300)],
    };
    PodObservation {
        namespace: "db".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        cluster: "basic".into(),
        component,
        instance: name.into(),
        running: true,
        deleting: false,
        hostname: Some(name.into()),
        subdomain: Some("basic-peer".into()),
        ports: ports
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<BTreeMap<_, _>>(),
        image: Some("pingcap/x:v8.5.2".into()),
        node: None,
        data_claim: Some(format!("data-{name}")),
        data_volume: None,
        config_map: None,
        advertised: BTreeMap::new(),
        standby: false,
        join: None,
        domain: None,
    }
}

/// A simulation with one cluster `db/basic`: 3 PD, 3 TiKV, 1 TiDB, ticked once.
fn setup() -> (SharedSim, Router) {
    let sim: SharedSim = Arc::new(Mutex::new(Sim::new(SimConfig::default())));
    {
        let mut s = lock(&sim);
        let now = Now::real();
        for name in ["basic-pd-a", "basic-pd-b", "basic-pd-c"] {
            s.observe_pod(pod(Component::Pd, name), now);
        }
        for name in ["basic-tikv-a", "basic-tikv-b", "basic-tikv-c"] {
            s.observe_pod(pod(Component::Tikv, name), now);
        }
        s.observe_pod(pod(Component::Tidb, "basic-tidb-a"), now);
        s.tick(now);
    }
    let app = router(sim.clone());
    (sim, app)
}

/// Runs `n` ticks of the simulation, 500 ms apart.
fn ticks(sim: &SharedSim, n: u32) {
    let mut s = lock(sim);
    let start = Now::real();
    for i in 1..=n {
        s.tick(start.after(std::time::Duration::from_millis(500) * i));
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .expect("valid request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    // PD's renderer ends JSON with a newline; compare without it.
    let text = String::from_utf8_lossy(&bytes);
    (status, text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, body) = call(app, Method::GET, uri, None).await;
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

#[tokio::test]
async fn pd_paths_answer_503_for_unknown_clusters_and_clusters_without_pd() {
    let (sim, app) = setup();
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/nope/pd/api/v1/members",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    {
        let mut s = lock(&sim);
        let mut p = pod(Component::Tikv, "lonely-tikv");
        p.cluster = "lonely".into();
        s.observe_pod(p, Now::real());
    }
    for path in ["/members", "/stores", "/health", "/no/such/path"] {
        let (status, _) = call(
            &app,
            Method::GET,
            &format!("/clusters/db/lonely/pd/api/v1{path}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
}

#[tokio::test]
async fn store_region_and_scheduler_paths_need_a_bootstrapped_cluster() {
    let (sim, app) = setup();
    {
        let mut s = lock(&sim);
        let mut p = pod(Component::Pd, "fresh-pd");
        p.cluster = "fresh".into();
        s.observe_pod(p, Now::real());
        s.tick(Now::real());
    }
    let base = "/clusters/db/fresh/pd/api/v1";
    for path in [
        "/stores",
        "/store/1",
        "/schedulers",
        "/regions/check/down-peer",
    ] {
        let request = Request::builder()
            .uri(format!("{base}{path}"))
            .body(Body::empty())
            .expect("valid request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        // tidb-operator recognises this answer by its exact ending.
        assert!(
            bytes.ends_with(b"TiKV cluster not bootstrapped, please start TiKV first\"\n"),
            "{path}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    for path in ["/members", "/cluster", "/config/replicate", "/health"] {
        let (status, _) = call(&app, Method::GET, &format!("{base}{path}"), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn members_leader_health_cluster_and_config_have_pds_shapes() {
    let (_, app) = setup();
    let (status, body) = call(&app, Method::GET, &format!("{PD}/members"), None).await;
    assert_eq!(status, StatusCode::OK);
    let members: MembersInfo = serde_json::from_str(&body).expect("MembersInfo");
    assert_eq!(members.members.len(), 3);
    assert_eq!(
        members.leader.as_ref().map(|m| m.name.as_str()),
        Some("basic-pd-a")
    );
    let raw: Value = serde_json::from_str(&body).expect("json");
    assert!(raw["header"]["cluster_id"].as_u64().is_some());
    assert_eq!(
        raw["members"][0]["client_urls"],
        json!(["http://basic-pd-a.basic-peer.db:2379"])
    );
    assert!(raw["members"][0].get("leader_priority").is_none());

    let (_, leader) = get_json(&app, &format!("{PD}/leader")).await;
    assert_eq!(leader["name"], "basic-pd-a");
    let (_, health) = get_json(&app, &format!("{PD}/health")).await;
    assert_eq!(health.as_array().map(Vec::len), Some(3));
    assert_eq!(health[0]["health"], true);
    assert!(health[0]["member_id"].as_u64().is_some());
    let (_, cluster) = get_json(&app, &format!("{PD}/cluster")).await;
    assert!(cluster["id"].as_u64().is_some_and(|id| id > 0));
    assert_eq!(cluster["max_peer_count"], 3);
    let (_, replicate) = get_json(&app, &format!("{PD}/config/replicate")).await;
    assert_eq!(
        replicate,
        json!({
            "isolation-level": "",
            "location-labels": "zone,host",
            "max-replicas": 3,
            "strictly-match-label": "false",
            "enable-placement-rules": "true",
            "enable-placement-rules-cache": "false"
        })
    );
    let (_, config) = get_json(&app, &format!("{PD}/config")).await;
    assert_eq!(config["replication"]["max-replicas"], 3);
    assert_eq!(config["schedule"]["max-store-down-time"], "10s");
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/pd/api/v2/ready",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, Method::GET, &format!("{PD}/no/such/path"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{PD}/config/replicate"),
        Some(json!({"max-replicas": 5, "location-labels": "zone,rack,host"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, replicate) = get_json(&app, &format!("{PD}/config/replicate")).await;
    assert_eq!(replicate["max-replicas"], 5);
    assert_eq!(replicate["location-labels"], "zone,rack,host");
}

#[tokio::test]
async fn leader_transfer_and_member_deletion() {
    let (sim, app) = setup();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{PD}/leader/transfer/basic-pd-c"),
        None,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "\"The transfer command is submitted.\"")
    );
    // Asynchronous: the leader steps down on the next tick, the target leads on the one after.
    let (_, leader) = get_json(&app, &format!("{PD}/leader")).await;
    assert_eq!(leader["name"], "basic-pd-a");
    ticks(&sim, 1);
    let (status, body) = get_json(&app, &format!("{PD}/leader")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, "no leader");
    ticks(&sim, 1);
    let (_, leader) = get_json(&app, &format!("{PD}/leader")).await;
    assert_eq!(leader["name"], "basic-pd-c");
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{PD}/leader/transfer/zzz"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("{PD}/members/name/basic-pd-b"),
        None,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "\"removed, pd: basic-pd-b\"")
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{PD}/members/name/basic-pd-b"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, members) = get_json(&app, &format!("{PD}/members")).await;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn stores_labels_and_deletion() {
    let (_, app) = setup();
    let (status, body) = call(&app, Method::GET, &format!("{PD}/stores"), None).await;
    assert_eq!(status, StatusCode::OK);
    let stores: StoresInfo = serde_json::from_str(&body).expect("StoresInfo");
    assert_eq!(stores.count, 3);
    let raw: Value = serde_json::from_str(&body).expect("json");
    let first = &raw["stores"][0];
    assert_eq!(first["store"]["id"], 1);
    assert_eq!(
        first["store"]["address"],
        "basic-tikv-a.basic-peer.db:20160"
    );
    assert_eq!(
        first["store"]["status_address"],
        "basic-tikv-a.basic-peer.db:20180"
    );
    assert_eq!(first["store"]["state_name"], "Up");
    assert_eq!(first["store"]["node_state"], 1);
    assert!(first["store"].get("state").is_none(), "Up (0) is omitted");
    assert!(first["store"].get("labels").is_none(), "no labels: omitted");
    assert_eq!(first["status"]["region_count"], 30);
    assert_eq!(first["status"]["leader_count"], 10);
    assert_eq!(first["status"]["capacity"], "100GiB");

    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{PD}/store/1/label"),
        Some(json!({"zone": "a", "host": "h1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, store) = get_json(&app, &format!("{PD}/store/1")).await;
    assert_eq!(
        store["store"]["labels"],
        json!([{"key": "host", "value": "h1"}, {"key": "zone", "value": "a"}])
    );
    let (status, body) = call(&app, Method::GET, &format!("{PD}/store/99"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "\"[PD:core:ErrStoreNotFound]store 99 not found\"");

    let (status, body) = call(&app, Method::DELETE, &format!("{PD}/store/1"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("ErrStoresNotEnough"), "{body}");
    let (_, tomb) = get_json(&app, &format!("{PD}/stores?state=2")).await;
    assert_eq!(tomb["count"], 0);
    let (_, all) = get_json(&app, &format!("{PD}/stores?state=0&state=1&state=2")).await;
    assert_eq!(all["count"], 3);
    let (status, _) = call(&app, Method::GET, &format!("{PD}/stores?state=x"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{PD}/store/1/state?state=Up"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn evict_leader_scheduler_in_both_views() {
    let (_, app) = setup();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{PD}/schedulers"),
        Some(json!({"name": "evict-leader-scheduler", "store_id": 1})),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "\"The scheduler is created.\"")
    );
    let (_, list) = get_json(&app, &format!("{PD}/schedulers")).await;
    let names: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(names.contains(&"evict-leader-scheduler"), "{names:?}");
    assert!(names.contains(&"balance-leader-scheduler"), "{names:?}");
    let (status, config) = get_json(
        &app,
        &format!("{PD}/scheduler-config/evict-leader-scheduler/list"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        config,
        json!({"store-id-ranges": {"1": [{"start-key": "", "end-key": ""}]}, "batch": 3})
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{PD}/schedulers"),
        Some(json!({"name": "evict-leader-scheduler"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{PD}/schedulers/evict-leader-scheduler-1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("{PD}/scheduler-config/evict-leader-scheduler/list"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{PD}/schedulers/evict-leader-scheduler-1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn faults_through_the_control_api() {
    let (sim, app) = setup();
    let (status, faults) = get_json(&app, "/control/clusters/db/basic/faults/pd-unreachable").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{faults}");
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/pd-unreachable",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/members", "/no/such/path"] {
        let (status, _) = call(&app, Method::GET, &format!("{PD}{path}"), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
    let (_, state) = get_json(&app, "/control/clusters/db/basic/state").await;
    assert_eq!(state["pd_available"], false);
    assert_eq!(state["faults"]["pd_unreachable"], true);
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/control/clusters/db/basic/faults/pd-unreachable",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, Method::GET, &format!("{PD}/members"), None).await;
    assert_eq!(status, StatusCode::OK);

    // Down peers and store-down by instance name.
    let (status, faults) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/down-peers/2",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    let (_, check) = get_json(&app, &format!("{PD}/regions/check/down-peer")).await;
    assert_eq!(check["count"], 30);
    assert_eq!(check["regions"][0]["down_peers"][0]["peer"]["store_id"], 2);
    assert_eq!(
        check["regions"][0]["down_peers"][0]["peer"]["role_name"],
        "Voter"
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/store-down/basic-tikv-c",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, store) = get_json(&app, &format!("{PD}/store/3")).await;
    assert_eq!(store["store"]["state_name"], "Down");
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tikv/basic-tikv-c/status",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // max-replicas override.
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/max-replicas/5",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, replicate) = get_json(&app, &format!("{PD}/config/replicate")).await;
    assert_eq!(replicate["max-replicas"], 5);
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/max-replicas",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/bogus",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Clear everything.
    let (status, faults) = get_json(&app, "/control/clusters/db/basic/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["max_replicas"], 5);
    assert_eq!(faults["down_stores"], json!(["basic-tikv-c"]));
    let (_, faults) = call(
        &app,
        Method::DELETE,
        "/control/clusters/db/basic/faults",
        None,
    )
    .await;
    let faults: Value = serde_json::from_str(&faults).expect("json");
    assert_eq!(faults["max_replicas"], Value::Null);
    assert!(
        lock(&sim)
            .cluster("db", "basic")
            .is_some_and(|c| *c.faults() == Default::default())
    );

    // Faults may be set before a cluster's Pods exist.
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/later/faults/pd-unreachable",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn store_address_changed_through_the_control_api() {
    let (_, app) = setup();
    let (status, faults) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/store-address-changed/basic-tikv-a",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    let faults: Value = serde_json::from_str(&faults).expect("json");
    assert_eq!(faults["moved_stores"], json!(["basic-tikv-a"]));
    let (status, store) = get_json(&app, &format!("{PD}/store/1")).await;
    assert_eq!(status, StatusCode::OK, "{store}");
    assert_eq!(store["store"]["id"], 1);
    assert_eq!(
        store["store"]["address"],
        "basic-tikv-a.basic-peer.db-moved:20160"
    );
    let (_, state) = get_json(&app, "/control/clusters/db/basic/state").await;
    assert_eq!(
        state["stores"][0]["address"],
        "basic-tikv-a.basic-peer.db-moved:20160"
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/control/clusters/db/basic/faults/store-address-changed/basic-tikv-a",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, store) = get_json(&app, &format!("{PD}/store/1")).await;
    assert_eq!(
        store["store"]["address"],
        "basic-tikv-a.basic-peer.db:20160"
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/store-address-changed",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_safety_record_and_the_new_faults_through_the_control_api() {
    let (sim, app) = setup();
    let (status, safety) = get_json(&app, "/control/clusters/db/basic/safety").await;
    assert_eq!(status, StatusCode::OK, "{safety}");
    assert_eq!(safety["pd_leader"], true);
    assert_eq!(safety["tick_ms"], 500);
    assert_eq!(safety["pd_without_leader"], json!([]));
    assert_eq!(safety["data_loss"], json!([]));
    let (status, _) = get_json(&app, "/control/clusters/db/nope/safety").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for fault in [
        "pd-quorum-lost",
        "pd-member-down/basic-pd-b",
        "node-lost/node-1",
        "slow-drain/basic-tikv-a",
    ] {
        let (status, body) = call(
            &app,
            Method::PUT,
            &format!("/control/clusters/db/basic/faults/{fault}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{fault}: {body}");
    }
    let (_, faults) = get_json(&app, "/control/clusters/db/basic/faults").await;
    assert_eq!(faults["pd_quorum_lost"], true);
    assert_eq!(faults["down_members"], json!(["basic-pd-b"]));
    assert_eq!(faults["lost_nodes"], json!(["node-1"]));
    assert_eq!(faults["slow_drain_stores"], json!(["basic-tikv-a"]));
    let (status, body) = get_json(&app, &format!("{PD}/members")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, "no leader");
    ticks(&sim, 3);
    let (_, safety) = get_json(&app, "/control/clusters/db/basic/safety").await;
    assert_eq!(safety["pd_leader"], false);
    assert_eq!(safety["pd_without_leader"][0]["ongoing"], true, "{safety}");
    assert_eq!(safety["pd_without_leader"][0]["ticks"], 3, "{safety}");
    let (_, state) = get_json(&app, "/control/clusters/db/basic/state").await;
    assert_eq!(state["pd_quorum"], false);
    assert_eq!(state["members"][1]["up"], false);
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/control/clusters/db/basic/faults",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    ticks(&sim, 1);
    let (status, _) = get_json(&app, &format!("{PD}/members")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tidb_and_tikv_status_endpoints() {
    let (_, app) = setup();
    let (status, body) = get_json(&app, "/clusters/db/basic/tidb/basic-tidb-a/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], "8.0.11-TiDB-v8.5.2");
    assert_eq!(body["connections"], 0);
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tidb/nope/status",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    call(
        &app,
        Method::PUT,
        "/control/clusters/db/basic/faults/tidb-unhealthy/basic-tidb-a",
        None,
    )
    .await;
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tidb/basic-tidb-a/status",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (status, body) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tikv/basic-tikv-a/status",
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
    let (status, body) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tikv/basic-tikv-a/metrics",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("tikv_raftstore_region_count{type=\"leader\"} 10"),
        "{body}"
    );
    let (status, _) = call(
        &app,
        Method::GET,
        "/clusters/db/basic/tikv/nope/status",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn online_config_changes_of_pd_and_tikv() {
    let (sim, app) = setup();
    ticks(&sim, 2);
    let items = json!({"schedule.leader-schedule-limit": 8, "log.level": "warn",
        "replication.max-replicas": 5});
    let (status, body) = call(&app, Method::POST, &format!("{PD}/config"), Some(items)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, replication) = get_json(&app, &format!("{PD}/config/replicate")).await;
    assert_eq!(replication["max-replicas"], 5);
    for (item, answer) in [
        (
            json!({"log.file.max-days": 3}),
            "only support changing log level",
        ),
        (json!({"lease": 5}), "config item lease not found"),
        (
            json!({"security.cacert-path": "/x"}),
            "config prefix security not found",
        ),
    ] {
        let (status, body) = call(&app, Method::POST, &format!("{PD}/config"), Some(item)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains(answer), "{body}");
    }

    let tikv = "/clusters/db/basic/tikv/basic-tikv-a/config?persist=false";
    let (status, _) = call(
        &app,
        Method::POST,
        tikv,
        Some(json!({"raftstore.messages-per-tick": 4096})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for item in [
        json!({"rocksdb.max-open-files": 20000}),
        json!({"server.grpc-concurrency": 8}),
        json!({"raftstore.messages-per-tick": [1]}),
    ] {
        let (status, body) = call(&app, Method::POST, tikv, Some(item)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.starts_with("failed to"), "{body}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        "/clusters/db/basic/tikv/nope/config",
        Some(json!({"log.level": "warn"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (_, events) = get_json(&app, "/control/clusters/db/basic/events").await;
    let changes: Vec<&Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "config_changed")
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["component"], "pd");
    assert_eq!(changes[0]["items"]["schedule.leader-schedule-limit"], 8);
    assert!(changes[0].get("instance").is_none());
    assert_eq!(changes[1]["component"], "tikv");
    assert_eq!(changes[1]["instance"], "basic-tikv-a");
    assert_eq!(changes[1]["items"]["raftstore.messages-per-tick"], 4096);
}

#[tokio::test]
async fn state_and_events_for_tests() {
    let (sim, app) = setup();
    let (status, clusters) = get_json(&app, "/control/clusters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clusters[0]["namespace"], "db");
    assert_eq!(clusters[0]["cluster"], "basic");
    let (status, _) = call(&app, Method::GET, "/control/clusters/db/nope/state", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    call(
        &app,
        Method::POST,
        &format!("{PD}/leader/transfer/basic-pd-b"),
        None,
    )
    .await;
    ticks(&sim, 2);
    let (_, state) = get_json(&app, "/control/clusters/db/basic/state").await;
    assert_eq!(state["leader"], "basic-pd-b");
    assert_eq!(state["stores"].as_array().map(Vec::len), Some(3));
    assert_eq!(state["stores"][0]["leader_count"], 10);
    assert_eq!(state["replication"]["max_replicas"], 3);
    assert_eq!(state["regions"]["count"], 30);

    let (status, events) = get_json(&app, "/control/clusters/db/basic/events").await;
    assert_eq!(status, StatusCode::OK);
    let events = events.as_array().cloned().unwrap_or_default();
    assert!(events.len() > 8);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["kind"], "pod_running");
    assert_eq!(events[0]["component"], "pd");
    assert!(events[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let last = &events[events.len() - 1];
    assert_eq!(last["kind"], "leader_transferred");
    assert_eq!(last["from"], "basic-pd-a");
    assert_eq!(last["to"], "basic-pd-b");
    let since = last["seq"].as_u64().unwrap_or_default() - 1;
    let (_, tail) = get_json(
        &app,
        &format!("/control/clusters/db/basic/events?since={since}"),
    )
    .await;
    assert_eq!(tail.as_array().map(Vec::len), Some(1));
    let (status, _) = call(
        &app,
        Method::GET,
        "/control/clusters/db/basic/events?since=x",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn query_strings_are_split_and_decoded() {
    let uri: axum::http::Uri = "/x?state=0&state=1&name=a%2Fb+c&flag".parse().expect("uri");
    assert_eq!(
        super::query_pairs(&uri),
        [
            ("state".to_owned(), "0".to_owned()),
            ("state".to_owned(), "1".to_owned()),
            ("name".to_owned(), "a/b c".to_owned()),
            ("flag".to_owned(), String::new()),
        ]
    );
}

#[tokio::test]
async fn ticdc_captures_status_resign_drain_and_health_have_tiflows_shapes() {
    let (sim, app) = setup();
    {
        let mut s = lock(&sim);
        let now = Now::real();
        s.observe_pod(pod(Component::Ticdc, "basic-cdc-a"), now);
        s.observe_pod(pod(Component::Ticdc, "basic-cdc-b"), now);
    }
    ticks(&sim, 20);
    let base = "/clusters/db/basic/ticdc";
    let (status, captures) = get_json(&app, &format!("{base}/basic-cdc-b/api/v2/captures")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(captures.as_array().map(Vec::len), Some(2));
    assert_eq!(captures[0]["is_owner"], true);
    assert_eq!(captures[0]["address"], "basic-cdc-a.basic-peer.db:8300");
    let (_, me) = get_json(&app, &format!("{base}/basic-cdc-b/status")).await;
    assert_eq!(me["is_owner"], false);
    assert_eq!(me["version"], "v8.5.2");
    let (status, _) = get_json(&app, &format!("{base}/basic-cdc-a/api/v2/health")).await;
    assert_eq!(status, StatusCode::OK);

    // The owner cannot be drained; resign moves it, then the drain is accepted.
    let owner_id = captures[0]["id"].as_str().unwrap_or_default().to_owned();
    let drain = |capture: &str| json!({"capture_id": capture});
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("{base}/basic-cdc-a/api/v1/captures/drain"),
        Some(drain(&owner_id)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("error_msg"), "{body}");
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{base}/basic-cdc-a/api/v2/owner/resign"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, a) = get_json(&app, &format!("{base}/basic-cdc-a/status")).await;
    assert_eq!(a["is_owner"], false);
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("{base}/basic-cdc-b/api/v1/captures/drain"),
        Some(drain(&owner_id)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, r#"{"current_table_count":6}"#);

    // A capture whose Pod does not run does not answer.
    let (status, _) = get_json(&app, &format!("{base}/basic-cdc-x/status")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn tiflash_and_ticdc_serve_metrics_while_they_run() {
    let (sim, app) = setup();
    {
        let mut s = lock(&sim);
        let now = Now::real();
        s.observe_pod(pod(Component::Tiflash, "basic-flash-a"), now);
        s.observe_pod(pod(Component::Ticdc, "basic-cdc-a"), now);
        s.tick(now);
    }
    ticks(&sim, 2);
    let (status, body) = call(
        &app,
        Method::GET,
        "/metrics/db/basic/tiflash/basic-flash-a",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("tiflash_proxy_tikv_raftstore_region_count{type=\"region\"} 0"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::GET,
        "/metrics/db/basic/ticdc/basic-cdc-a",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("go_goroutines"), "{body}");
    for missing in ["tiflash/basic-flash-z", "ticdc/basic-cdc-z"] {
        let (status, _) = call(
            &app,
            Method::GET,
            &format!("/metrics/db/basic/{missing}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{missing}");
    }
}

#[tokio::test]
async fn tikv_ready_and_tiflash_readyz_answer_as_their_servers_do() {
    let (sim, app) = setup();
    {
        let mut s = lock(&sim);
        let now = Now::real();
        s.observe_pod(pod(Component::Tikv, "basic-kv-a"), now);
        s.observe_pod(pod(Component::Tiflash, "basic-flash-a"), now);
        s.tick(now);
    }
    ticks(&sim, 2);
    let get = |path: &'static str| {
        let app = app.clone();
        async move { call(&app, Method::GET, path, None).await.0 }
    };
    let kv = "/clusters/db/basic/tikv/basic-kv-a/ready";
    let flash = "/clusters/db/basic/tiflash/basic-flash-a/tiflash/readyz";
    assert_eq!(get(kv).await, StatusCode::OK);
    assert_eq!(get(flash).await, StatusCode::OK);
    for (fault, path) in [
        ("tikv-not-ready/basic-kv-a", kv),
        ("tiflash-not-running/basic-flash-a", flash),
    ] {
        let control = format!("/control/clusters/db/basic/faults/{fault}");
        assert_eq!(
            call(&app, Method::PUT, &control, None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(path).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{fault}"
        );
        assert_eq!(
            call(&app, Method::DELETE, &control, None).await.0,
            StatusCode::OK
        );
        assert_eq!(get(path).await, StatusCode::OK, "{fault} cleared");
    }
    assert_eq!(
        get("/clusters/db/basic/tikv/basic-kv-z/ready").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn pds_etcd_gateway_swaps_a_key_only_against_its_revision() {
    let (_sim, app) = setup();
    let kv = "/clusters/db/basic/v3/kv";
    let post = |path: &'static str, body: Value| {
        let app = app.clone();
        async move {
            let (status, text) =
                call(&app, Method::POST, &format!("{kv}/{path}"), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {text}");
            serde_json::from_str::<Value>(&text).expect("JSON")
        }
    };
    // "k" and "v1", "v2" in base64, as the gateway carries keys and values.
    let (key, v1, v2) = ("aw==", "djE=", "djI=");
    let absent = json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"});
    let put = |value: &str| json!([{"request_put": {"key": key, "value": value}}]);
    let won = post("txn", json!({"compare": [absent], "success": put(v1)})).await;
    assert_eq!(won["succeeded"], true, "{won}");
    // A second put-if-absent fails; `succeeded` is left out at its default, as etcd writes it.
    let lost = post(
        "txn",
        json!({"compare": [absent], "success": put(v2), "failure": [{"request_range": {"key": key}}]}),
    )
    .await;
    assert!(lost.get("succeeded").is_none(), "{lost}");
    let kvs = &lost["responses"][0]["response_range"]["kvs"][0];
    assert_eq!(kvs["value"], v1);
    let revision = kvs["mod_revision"]
        .as_str()
        .expect("revisions are strings")
        .to_owned();
    // A swap against that revision wins, a second one against it loses.
    let current = json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": revision});
    assert_eq!(
        post("txn", json!({"compare": [current], "success": put(v2)})).await["succeeded"],
        true
    );
    assert!(
        post("txn", json!({"compare": [current], "success": put(v1)}))
            .await
            .get("succeeded")
            .is_none()
    );
    let read = post("range", json!({"key": key})).await;
    assert_eq!(read["kvs"][0]["value"], v2, "{read}");
    // A delete; the key reads absent: no `kvs`.
    let deleted = post(
        "txn",
        json!({"success": [{"request_delete_range": {"key": key}}]}),
    )
    .await;
    assert_eq!(
        deleted["responses"][0]["response_delete_range"]["deleted"],
        "1"
    );
    assert!(
        post("range", json!({"key": key}))
            .await
            .get("kvs")
            .is_none()
    );
    // Prefix ranges are not modelled: refused, not answered wrongly.
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{kv}/range"),
        Some(json!({"key": key, "range_end": "bA=="})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // No PD, no etcd.
    let (status, _) = call(
        &app,
        Method::POST,
        "/clusters/db/nothing/v3/kv/range",
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
