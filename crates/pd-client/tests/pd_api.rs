//! Every PD and status call against an in-process HTTP server on loopback: the method, path
//! (under a base path prefix), query and body each call sends, how answers decode, which
//! failures are tolerated, timeouts, and errors that carry the answer's body.

// Helpers outside `#[test]` functions may panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use pd_client::{Error, PdClient, StatusClient};

/// Where the simulated PD answers, as the operand simulator does.
const PREFIX: &str = "/clusters/db/basic";

/// One request the server received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: Method,
    path: String,
    query: Option<String>,
    body: String,
}

/// A canned answer for one method and path.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<HashMap<(Method, String), Answer>>,
}

impl Server {
    /// Serves `answers` (method, path under [`PREFIX`], status, body) on 127.0.0.1:0; anything
    /// else answers 404 like PD's router. Returns the server and its base URL with the prefix.
    async fn start(answers: &[(Method, &str, u16, &str)]) -> (Self, String) {
        let answers = answers
            .iter()
            .map(|(method, path, status, body)| {
                let answer = Answer {
                    status: *status,
                    body: (*body).to_owned(),
                    delay: Duration::ZERO,
                };
                ((method.clone(), format!("{PREFIX}{path}")), answer)
            })
            .collect();
        Self::start_with(answers).await
    }

    async fn start_with(answers: HashMap<(Method, String), Answer>) -> (Self, String) {
        let server = Server {
            seen: Arc::default(),
            answers: Arc::new(answers),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().fallback(answer).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, format!("http://{address}{PREFIX}"))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("no request was received")
    }
}

async fn answer(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    body: String,
) -> impl IntoResponse {
    server.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body,
    });
    let found = server
        .answers
        .get(&(method, uri.path().to_owned()))
        .cloned();
    let answer = found.unwrap_or(Answer {
        status: 404,
        body: "404 page not found\n".into(),
        delay: Duration::ZERO,
    });
    tokio::time::sleep(answer.delay).await;
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        answer.body,
    )
}

fn client(base: &str) -> PdClient {
    PdClient::new(base, None, Duration::from_secs(5)).unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

const MEMBERS: &str = r#"{
  "header": {"cluster_id": 7391120398815293420},
  "members": [
    {"name": "basic-pd-0", "member_id": 15342110392711018732,
     "peer_urls": ["http://basic-pd-0:2380"], "client_urls": ["http://basic-pd-0:2379"]},
    {"name": "basic-pd-1", "member_id": 42,
     "peer_urls": ["http://basic-pd-1:2380"], "client_urls": ["http://basic-pd-1:2379"]}
  ],
  "leader": {"name": "basic-pd-1", "member_id": 42,
             "peer_urls": ["http://basic-pd-1:2380"], "client_urls": ["http://basic-pd-1:2379"]},
  "etcd_leader": {"name": "basic-pd-1", "member_id": 42}
}"#;

const STORES: &str = r#"{"count": 2, "stores": [
  {"store": {"id": 1, "address": "kv-0:20160", "version": "8.5.0", "node_state": 1,
             "labels": [{"key": "zone", "value": "a"}], "state_name": "Up"},
   "status": {"leader_count": 3, "region_count": 9, "last_heartbeat_ts": "2025-01-01T00:00:00Z"}},
  {"store": {"id": 2, "address": "kv-1:20160", "state": 2, "node_state": 3,
             "state_name": "Tombstone"},
   "status": {"leader_count": 0, "region_count": 0}}
]}"#;

#[tokio::test]
async fn reads_send_the_right_paths_and_decode() {
    let (server, base) = Server::start(&[
        (
            Method::GET,
            "/pd/api/v1/health",
            200,
            r#"[{"name": "basic-pd-0", "member_id": 15342110392711018732,
                  "client_urls": ["http://basic-pd-0:2379"], "health": true}]"#,
        ),
        (Method::GET, "/pd/api/v1/members", 200, MEMBERS),
        (
            Method::GET,
            "/pd/api/v1/leader",
            200,
            r#"{"name": "basic-pd-1", "member_id": 42, "client_urls": ["http://basic-pd-1:2379"]}"#,
        ),
        (
            Method::GET,
            "/pd/api/v1/cluster",
            200,
            r#"{"id": 12818309996638325969, "max_peer_count": 3}"#,
        ),
        (
            Method::GET,
            "/pd/api/v1/config/replicate",
            200,
            r#"{"max-replicas": 3, "location-labels": "zone,host",
                "strictly-match-label": "false", "enable-placement-rules": "true",
                "isolation-level": ""}"#,
        ),
        (Method::GET, "/pd/api/v1/stores", 200, STORES),
        (
            Method::GET,
            "/pd/api/v1/store/1",
            200,
            r#"{"store": {"id": 1, "address": "kv-0:20160", "state_name": "Up"},
                "status": {"leader_count": 3, "region_count": 9}}"#,
        ),
        (
            Method::GET,
            "/pd/api/v1/schedulers",
            200,
            r#"["balance-hot-region-scheduler", "balance-leader-scheduler", "evict-leader-scheduler"]"#,
        ),
        (
            Method::GET,
            "/pd/api/v1/regions/check/down-peer",
            200,
            r#"{"count": 1, "regions": [{"id": 8, "start_key": "", "end_key": "",
                "down_peers": [{"peer": {"id": 10, "store_id": 2, "role_name": "Voter"},
                                "down_seconds": 700}]}]}"#,
        ),
    ])
    .await;
    let pd = client(&format!("{base}/"));
    assert_eq!(pd.base(), base);

    let health = pd.health().await.unwrap();
    assert_eq!(health[0].member_id, 15_342_110_392_711_018_732);
    assert!(health[0].health);
    assert_eq!(server.last().path, format!("{PREFIX}/pd/api/v1/health"));

    let members = pd.members().await.unwrap();
    assert_eq!(members.members.len(), 2);
    assert_eq!(members.leader_name(), Some("basic-pd-1"));
    assert_eq!(server.last().method, Method::GET);

    assert_eq!(pd.leader().await.unwrap().name, "basic-pd-1");
    assert_eq!(pd.cluster_id().await.unwrap(), 12_818_309_996_638_325_969);

    let replication = pd.replication_config().await.unwrap();
    assert_eq!(replication.max_replicas, 3);
    assert_eq!(replication.location_labels, ["zone", "host"]);
    assert_eq!(
        server.last().path,
        format!("{PREFIX}/pd/api/v1/config/replicate")
    );

    let stores = pd.stores().await.unwrap();
    assert_eq!(stores.count, 2);
    assert!(stores.by_id(1).unwrap().is_up());
    assert!(stores.by_id(2).unwrap().is_tombstone());
    let seen = server.last();
    assert_eq!(seen.path, format!("{PREFIX}/pd/api/v1/stores"));
    // Without the states by number PD leaves Tombstone stores out.
    assert_eq!(seen.query.as_deref(), Some("state=0&state=1&state=2"));

    let store = pd.store(1).await.unwrap();
    assert_eq!(store.status.region_count, 9);
    assert_eq!(server.last().path, format!("{PREFIX}/pd/api/v1/store/1"));

    assert_eq!(pd.schedulers().await.unwrap().len(), 3);

    let regions = pd.down_peer_regions().await.unwrap();
    assert_eq!(regions.stores_with_down_peers(), [2]);
    assert_eq!(regions.regions[0].down_peers[0].down_seconds, 700);
    assert_eq!(
        server.last().path,
        format!("{PREFIX}/pd/api/v1/regions/check/down-peer")
    );

    // Reads send no body and no query (but for /stores).
    for seen in server.seen() {
        assert_eq!(seen.method, Method::GET);
        assert_eq!(seen.body, "");
        if !seen.path.ends_with("/stores") {
            assert_eq!(seen.query, None, "{}", seen.path);
        }
    }
}

#[tokio::test]
async fn writes_send_the_right_method_path_query_and_body() {
    let submitted = r#""The transfer command is submitted.""#;
    let (server, base) = Server::start(&[
        (
            Method::POST,
            "/pd/api/v1/leader/transfer/basic-pd-2",
            200,
            submitted,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/members/name/basic-pd-0",
            200,
            r#""removed, pd: basic-pd-0""#,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/store/4",
            200,
            r#""The store is set as Offline.""#,
        ),
        (
            Method::POST,
            "/pd/api/v1/store/4/state",
            200,
            r#""The store's state is updated.""#,
        ),
        (
            Method::POST,
            "/pd/api/v1/store/4/label",
            200,
            r#""The store's label is updated.""#,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/store/4/label",
            200,
            r#""The label $k/exclusive is deleted for store 4.""#,
        ),
        (
            Method::POST,
            "/pd/api/v1/schedulers",
            200,
            r#""The scheduler is created.""#,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/schedulers/evict-leader-scheduler-4",
            200,
            "null",
        ),
    ])
    .await;
    let pd = client(&base);

    pd.transfer_leader("basic-pd-2").await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (
            Method::POST,
            format!("{PREFIX}/pd/api/v1/leader/transfer/basic-pd-2")
        )
    );

    pd.delete_member_by_name("basic-pd-0").await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (
            Method::DELETE,
            format!("{PREFIX}/pd/api/v1/members/name/basic-pd-0")
        )
    );

    pd.delete_store(4).await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path, seen.query),
        (Method::DELETE, format!("{PREFIX}/pd/api/v1/store/4"), None)
    );

    pd.cancel_delete_store(4).await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path, seen.query.as_deref()),
        (
            Method::POST,
            format!("{PREFIX}/pd/api/v1/store/4/state"),
            Some("state=Up")
        )
    );

    let labels = BTreeMap::from([
        ("zone".to_owned(), "z1".to_owned()),
        ("host".to_owned(), "node-7".to_owned()),
    ]);
    pd.set_store_labels(4, &labels).await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (Method::POST, format!("{PREFIX}/pd/api/v1/store/4/label"))
    );
    assert_eq!(
        json(&seen.body),
        json(r#"{"zone": "z1", "host": "node-7"}"#)
    );

    pd.delete_store_label(4, "$k/exclusive").await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (Method::DELETE, format!("{PREFIX}/pd/api/v1/store/4/label"))
    );
    assert_eq!(json(&seen.body), json(r#""$k/exclusive""#));

    pd.add_evict_leader_scheduler(4).await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (Method::POST, format!("{PREFIX}/pd/api/v1/schedulers"))
    );
    assert_eq!(
        json(&seen.body),
        json(r#"{"name": "evict-leader-scheduler", "store_id": 4}"#)
    );

    pd.remove_evict_leader_scheduler(4).await.unwrap();
    let seen = server.last();
    assert_eq!(
        (seen.method, seen.path),
        (
            Method::DELETE,
            format!("{PREFIX}/pd/api/v1/schedulers/evict-leader-scheduler-4")
        )
    );
    assert_eq!(server.seen().len(), 8);
}

#[tokio::test]
async fn removals_of_what_is_already_gone_succeed() {
    let (server, base) = Server::start(&[
        (
            Method::DELETE,
            "/pd/api/v1/members/name/basic-pd-9",
            404,
            r#""not found, pd: basic-pd-9""#,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/schedulers/evict-leader-scheduler-5",
            404,
            "null",
        ),
        (
            Method::DELETE,
            "/pd/api/v1/store/6",
            410,
            r#""[PD:core:ErrStoreRemoved]store 6 has been removed""#,
        ),
    ])
    .await;
    let pd = client(&base);
    pd.delete_member_by_name("basic-pd-9").await.unwrap();
    pd.remove_evict_leader_scheduler(5).await.unwrap();
    pd.delete_store(6).await.unwrap();
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn deleting_an_unknown_store_is_an_error() {
    let (_server, base) = Server::start(&[(
        Method::DELETE,
        "/pd/api/v1/store/77",
        404,
        r#""[PD:core:ErrStoreNotFound]store id 77 not found""#,
    )])
    .await;
    let error = client(&base).delete_store(77).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

#[tokio::test]
async fn evicted_stores_come_from_the_scheduler_config() {
    let (server, base) = Server::start(&[(
        Method::GET,
        "/pd/api/v1/scheduler-config/evict-leader-scheduler/list",
        200,
        r#"{"store-id-ranges": {"14": [{"start-key": "", "end-key": ""}],
                                 "3": [{"start-key": "", "end-key": ""}]}, "batch": 3}"#,
    )])
    .await;
    assert_eq!(
        client(&base).evict_leader_store_ids().await.unwrap(),
        [3, 14]
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn no_evict_leader_scheduler_means_no_evicted_store() {
    // The config path answers 404 when the scheduler does not run; the scheduler list is read
    // then, where PD before 4.0 named one scheduler per store.
    let (server, base) = Server::start(&[(
        Method::GET,
        "/pd/api/v1/schedulers",
        200,
        r#"["balance-leader-scheduler", "evict-leader-scheduler-8"]"#,
    )])
    .await;
    assert_eq!(client(&base).evict_leader_store_ids().await.unwrap(), [8]);
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            format!("{PREFIX}/pd/api/v1/scheduler-config/evict-leader-scheduler/list"),
            format!("{PREFIX}/pd/api/v1/schedulers"),
        ]
    );

    let (_server, base) =
        Server::start(&[(Method::GET, "/pd/api/v1/schedulers", 200, "null")]).await;
    assert!(
        client(&base)
            .evict_leader_store_ids()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_evict_leader_removal_answered_500_is_checked_against_the_config() {
    let failed = r#""[PD:scheduler:ErrSchedulerNotFound]scheduler not found""#;
    let config = r#"{"store-id-ranges": {"2": []}, "batch": 3}"#;
    let (_server, base) = Server::start(&[
        (
            Method::DELETE,
            "/pd/api/v1/schedulers/evict-leader-scheduler-5",
            500,
            failed,
        ),
        (
            Method::DELETE,
            "/pd/api/v1/schedulers/evict-leader-scheduler-2",
            500,
            r#""etcd is unavailable""#,
        ),
        (
            Method::GET,
            "/pd/api/v1/scheduler-config/evict-leader-scheduler/list",
            200,
            config,
        ),
    ])
    .await;
    let pd = client(&base);
    // Store 5 is not evicted any more: done.
    pd.remove_evict_leader_scheduler(5).await.unwrap();
    // Store 2 still is: the removal failed.
    let error = pd.remove_evict_leader_scheduler(2).await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert!(error.to_string().contains("etcd is unavailable"), "{error}");
}

#[tokio::test]
async fn a_non_2xx_answer_carries_its_status_url_and_body() {
    let (_server, base) = Server::start(&[(
        Method::GET,
        "/pd/api/v1/cluster",
        500,
        r#""[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first""#,
    )])
    .await;
    let error = client(&base).cluster_id().await.unwrap_err();
    match &error {
        Error::Status { url, status, body } => {
            assert_eq!(*status, 500);
            assert_eq!(url, &format!("{base}/pd/api/v1/cluster"));
            assert!(body.contains("not bootstrapped"), "{body}");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(!error.is_not_found() && !error.is_unreachable());
    assert!(error.to_string().contains("HTTP 500"), "{error}");

    let long = "x".repeat(5000);
    let (_server, base) = Server::start(&[(Method::GET, "/pd/api/v1/members", 503, &long)]).await;
    match client(&base).members().await.unwrap_err() {
        Error::Status { body, status, .. } => {
            assert_eq!(status, 503);
            assert!(body.chars().count() <= pd_client::MAX_ERROR_BODY_CHARS + 1);
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_paths_are_not_found_and_bad_json_does_not_decode() {
    let (_server, base) =
        Server::start(&[(Method::GET, "/pd/api/v1/members", 200, "<html>")]).await;
    let pd = client(&base);
    assert!(pd.store(3).await.unwrap_err().is_not_found());
    let error = pd.members().await.unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
}

#[tokio::test]
async fn a_pd_without_a_leader_says_so() {
    let (_server, base) = Server::start(&[(Method::GET, "/pd/api/v1/leader", 200, "null")]).await;
    let error = client(&base).leader().await.unwrap_err();
    assert!(matches!(error, Error::NoLeader { .. }), "{error:?}");
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let answers = HashMap::from([(
        (Method::GET, format!("{PREFIX}/pd/api/v1/members")),
        Answer {
            status: 200,
            body: MEMBERS.into(),
            delay: Duration::from_secs(10),
        },
    )]);
    let (_server, base) = Server::start_with(answers).await;
    let pd = PdClient::new(&base, None, Duration::from_millis(200)).unwrap();
    let started = std::time::Instant::now();
    let error = pd.members().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.is_timeout() && error.is_unreachable(), "{error:?}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let pd = PdClient::new(&format!("http://{address}"), None, Duration::from_secs(2)).unwrap();
    let error = pd.health().await.unwrap_err();
    assert!(error.is_unreachable() && !error.is_timeout(), "{error:?}");
    assert!(
        error.to_string().contains(&address.to_string()),
        "the message names the URL: {error}"
    );
}

#[test]
fn bad_base_urls_are_refused() {
    for base in ["basic-pd.db:2379", "tcp://pd:2379", "http://pd:2379?x=1"] {
        let error = PdClient::new(base, None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, Error::InvalidUrl(_)), "{base}: {error:?}");
    }
}

#[tokio::test]
async fn status_ports_are_checked_under_their_prefix() {
    let (server, base) = Server::start(&[
        (
            Method::GET,
            "/tidb-0/status",
            200,
            r#"{"connections": 4, "version": "8.0.11-TiDB-v8.5.0", "git_hash": "abc"}"#,
        ),
        (Method::GET, "/tikv-0/status", 200, ""),
        (Method::GET, "/tikv-1/status", 503, "starting"),
        (
            Method::GET,
            "/tiflash-0/tiflash/store-status",
            200,
            "Running\n",
        ),
        (Method::GET, "/tikv-0/ready", 200, ""),
        (Method::GET, "/tikv-1/ready", 500, "not ready"),
        (Method::GET, "/tikv-2/ready", 404, "not found"),
        (Method::GET, "/tiflash-0/tiflash/readyz", 500, "Idle"),
    ])
    .await;
    let status = StatusClient::new(None, Duration::from_secs(5)).unwrap();

    let tidb = status.tidb_status(&format!("{base}/tidb-0")).await.unwrap();
    assert_eq!(tidb.connections, 4);
    assert_eq!(tidb.version, "8.0.11-TiDB-v8.5.0");
    assert_eq!(server.last().path, format!("{PREFIX}/tidb-0/status"));

    status
        .tikv_status(&format!("{base}/tikv-0/"))
        .await
        .unwrap();
    assert_eq!(server.last().path, format!("{PREFIX}/tikv-0/status"));

    let error = status
        .tikv_status(&format!("{base}/tikv-1"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503));

    let tiflash = status
        .tiflash_store_status(&format!("{base}/tiflash-0"))
        .await
        .unwrap();
    assert_eq!(tiflash, "Running");
    assert_eq!(
        server.last().path,
        format!("{PREFIX}/tiflash-0/tiflash/store-status")
    );

    assert!(status.tikv_ready(&format!("{base}/tikv-0")).await.unwrap());
    assert_eq!(server.last().path, format!("{PREFIX}/tikv-0/ready"));
    assert!(!status.tikv_ready(&format!("{base}/tikv-1")).await.unwrap());
    let error = status
        .tikv_ready(&format!("{base}/tikv-2"))
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(
        !status
            .tiflash_readyz(&format!("{base}/tiflash-0"))
            .await
            .unwrap()
    );
    assert_eq!(
        server.last().path,
        format!("{PREFIX}/tiflash-0/tiflash/readyz")
    );

    let error = status.tidb_status("not a url").await.unwrap_err();
    assert!(matches!(error, Error::InvalidUrl(_)), "{error:?}");
}

#[tokio::test]
async fn an_observer_is_told_each_request_by_method_endpoint_and_outcome() {
    let (_server, base) = Server::start(&[
        (Method::GET, "/pd/api/v1/members", 200, MEMBERS),
        (Method::DELETE, "/pd/api/v1/store/77", 500, "boom"),
    ])
    .await;
    let told: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&told);
    let pd = client(&base).observed(Arc::new(move |method, endpoint, outcome| {
        record
            .lock()
            .unwrap()
            .push(format!("{method} {endpoint} {outcome}"));
    }));
    pd.members().await.unwrap();
    pd.delete_store(77).await.unwrap_err();
    // Nothing listens on port 9 of loopback.
    let gone = client("http://127.0.0.1:9").observed(Arc::new({
        let record = Arc::clone(&told);
        move |method, endpoint, outcome| {
            record
                .lock()
                .unwrap()
                .push(format!("{method} {endpoint} {outcome}"));
        }
    }));
    gone.stores().await.unwrap_err();
    assert_eq!(
        *told.lock().unwrap(),
        [
            "GET members success",
            "DELETE store status",
            "GET stores unreachable"
        ]
    );
    assert!(PdClient::OUTCOMES.contains(&"unreachable"));
}

#[tokio::test]
async fn the_tiflash_replica_count_is_the_largest_tiflash_learner_rule() {
    let rules = r#"[
        {"group_id": "tiflash", "id": "table-45-r", "role": "learner", "count": 2,
         "label_constraints": [{"key": "engine", "op": "in", "values": ["tiflash"]}]},
        {"group_id": "tiflash", "id": "table-46-r", "role": "learner", "count": 3,
         "label_constraints": [{"key": "engine", "op": "in", "values": ["tiflash"]}]},
        {"group_id": "tiflash", "id": "odd", "role": "voter", "count": 9}
    ]"#;
    let (_server, base) = Server::start(&[(
        Method::GET,
        "/pd/api/v1/config/rules/group/tiflash",
        200,
        rules,
    )])
    .await;
    assert_eq!(client(&base).tiflash_replicas().await.unwrap(), 3);
    // A PD that knows no such group (404) has no TiFlash replica to keep.
    let (_server, base) = Server::start(&[]).await;
    assert_eq!(client(&base).tiflash_replicas().await.unwrap(), 0);
}

#[tokio::test]
async fn a_closed_gate_refuses_writes_unsent_and_lets_reads_through() {
    let (server, base) = Server::start(&[
        (Method::GET, "/pd/api/v1/leader", 200, r#"{"name": "pd-a"}"#),
        (Method::DELETE, "/pd/api/v1/store/6", 200, "null"),
    ])
    .await;
    let open = Arc::new(Mutex::new(false));
    let gate = {
        let open = open.clone();
        Arc::new(move || *open.lock().unwrap())
    };
    let pd = client(&base).gated(gate);
    assert_eq!(pd.leader().await.unwrap().name, "pd-a");
    let refused = pd.delete_store(6).await.unwrap_err();
    assert!(matches!(refused, Error::Fenced { .. }), "{refused}");
    assert_eq!(server.seen().len(), 1, "the refused write was not sent");
    *open.lock().unwrap() = true;
    pd.delete_store(6).await.unwrap();
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_closed_gate_stops_the_status_clients_writes_too() {
    let (server, base) = Server::start(&[
        (Method::GET, "/tikv-0/status", 200, ""),
        (Method::POST, "/tikv-0/config", 200, ""),
        (Method::POST, "/cdc-0/api/v2/owner/resign", 200, ""),
        (
            Method::PUT,
            "/cdc-0/api/v1/captures/drain",
            200,
            r#"{"current_table_count": 2}"#,
        ),
    ])
    .await;
    let open = Arc::new(Mutex::new(false));
    let gate = {
        let open = open.clone();
        Arc::new(move || *open.lock().unwrap())
    };
    let status = StatusClient::new(None, Duration::from_secs(5))
        .unwrap()
        .gated(gate);
    let (tikv, cdc) = (format!("{base}/tikv-0"), format!("{base}/cdc-0"));
    let items = BTreeMap::from([("raftstore.messages-per-tick".to_string(), json("4096"))]);

    status.tikv_status(&tikv).await.unwrap();
    for refused in [
        status.tikv_set_config(&tikv, &items).await.unwrap_err(),
        status.ticdc_resign_owner(&cdc).await.unwrap_err(),
        status.ticdc_drain_capture(&cdc, "c-1").await.unwrap_err(),
    ] {
        assert!(matches!(refused, Error::Fenced { .. }), "{refused}");
    }
    assert_eq!(server.seen().len(), 1, "no refused write was sent");

    *open.lock().unwrap() = true;
    status.tikv_set_config(&tikv, &items).await.unwrap();
    status.ticdc_resign_owner(&cdc).await.unwrap();
    assert_eq!(status.ticdc_drain_capture(&cdc, "c-1").await.unwrap(), 2);
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn etcd_keys_are_read_and_swapped_through_the_gateway() {
    // "/k" is "L2s=", "held" is "aGVsZA==" in base64, as etcd's gateway carries them.
    let (server, base) = Server::start(&[
        (
            Method::POST,
            "/v3/kv/range",
            200,
            r#"{"header":{"revision":"9"},"kvs":[{"key":"L2s=","create_revision":"7","mod_revision":"8","version":"2","value":"aGVsZA=="}],"count":"1"}"#,
        ),
        // A lost compare: etcd leaves `succeeded` out.
        (Method::POST, "/v3/kv/txn", 200, r#"{"header":{"revision":"9"}}"#),
    ])
    .await;
    let pd = client(&base);
    let entry = pd.etcd_get("/k").await.unwrap().unwrap();
    assert_eq!(entry.value, b"held");
    assert_eq!(entry.mod_revision, 8);
    assert_eq!(json(&server.last().body), json(r#"{"key":"L2s="}"#));

    assert!(!pd.etcd_put_if("/k", b"mine", Some(8)).await.unwrap());
    assert_eq!(server.last().path, format!("{PREFIX}/v3/kv/txn"));
    assert_eq!(
        json(&server.last().body),
        json(
            r#"{"compare":[{"key":"L2s=","target":"MOD","result":"EQUAL","mod_revision":"8"}],
                "success":[{"request_put":{"key":"L2s=","value":"bWluZQ=="}}]}"#
        )
    );
    assert!(!pd.etcd_put_if("/k", b"mine", None).await.unwrap());
    assert_eq!(
        json(&server.last().body)["compare"][0],
        json(r#"{"key":"L2s=","target":"CREATE","result":"EQUAL","create_revision":"0"}"#)
    );
    assert!(!pd.etcd_delete_if("/k", 8).await.unwrap());
    assert_eq!(
        json(&server.last().body)["success"][0],
        json(r#"{"request_delete_range":{"key":"L2s="}}"#)
    );

    // A won compare, and a key that does not exist (no `kvs`).
    let (_, base) = Server::start(&[
        (
            Method::POST,
            "/v3/kv/range",
            200,
            r#"{"header":{"revision":"9"}}"#,
        ),
        (
            Method::POST,
            "/v3/kv/txn",
            200,
            r#"{"header":{"revision":"10"},"succeeded":true}"#,
        ),
    ])
    .await;
    let pd = client(&base);
    assert_eq!(pd.etcd_get("/k").await.unwrap(), None);
    assert!(pd.etcd_put_if("/k", b"mine", None).await.unwrap());
}

#[tokio::test]
async fn a_members_ready_api_says_ready_not_yet_or_not_there() {
    let (server, base) = Server::start(&[
        (Method::GET, "/pd/api/v2/ready", 200, ""),
        (Method::GET, "/pd/api/v2/readyz", 500, "regions not loaded"),
    ])
    .await;
    let pd = client(&base);
    assert!(pd.ready(false).await.unwrap());
    assert_eq!(server.last().path, format!("{PREFIX}/pd/api/v2/ready"));
    assert!(!pd.ready(true).await.unwrap(), "500 while Regions load");
    assert_eq!(server.last().path, format!("{PREFIX}/pd/api/v2/readyz"));
    // A PD without the path: the 404 is the caller's to weigh against the version.
    let (_, base) = Server::start(&[]).await;
    assert!(client(&base).ready(false).await.unwrap_err().is_not_found());
}
