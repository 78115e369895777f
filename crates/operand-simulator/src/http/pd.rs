//! PD's HTTP API, per cluster, under `/clusters/{namespace}/{cluster}`: the paths and answers
//! of the real PD (tikv/pd `server/api/router.go`). Every path of a cluster answers 503 while
//! its PD is unreachable: no PD Pod running, the `pd-unreachable` fault, or no leader yet.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, delete, get, post};
use serde::Deserialize;
use serde_json::Value;

use super::{ClusterPath, SharedSim, api_error, json, lock, query_pairs};
use crate::clock::{Now, rfc3339};
use crate::sim::{ApiError, ClusterState, DEFAULT_VERSION};

const P: &str = "/clusters/{namespace}/{cluster}/pd/api/v1";

pub(super) fn routes() -> Router<SharedSim> {
    let r = |path: &str| format!("{P}{path}");
    Router::new()
        .route(&r("/members"), get(members))
        .route(&r("/members/name/{name}"), delete(delete_member_by_name))
        .route(&r("/members/id/{id}"), delete(delete_member_by_id))
        .route(&r("/leader"), get(leader))
        .route(&r("/leader/transfer/{name}"), post(transfer_leader))
        .route(&r("/leader/resign"), post(resign_leader))
        .route(&r("/health"), get(health))
        .route(&r("/ping"), get(ping))
        .route(&r("/cluster"), get(cluster))
        .route(&r("/cluster/status"), get(cluster_status))
        .route(&r("/status"), get(status))
        .route(&r("/version"), get(version))
        .route(&r("/config"), get(config).post(set_config))
        .route(
            &r("/config/replicate"),
            get(replication).post(set_replication),
        )
        .route(&r("/config/rule"), post(set_rule))
        .route(&r("/config/rule/{group}/{id}"), delete(delete_rule))
        .route(&r("/config/rules/group/{group}"), get(rules_of_group))
        .route(&r("/stores"), get(stores))
        .route(&r("/store/{id}"), get(store).delete(delete_store))
        .route(&r("/store/{id}/state"), post(set_store_state))
        .route(
            &r("/store/{id}/label"),
            post(set_store_labels).delete(delete_store_label),
        )
        .route(&r("/schedulers"), get(schedulers).post(add_scheduler))
        .route(&r("/schedulers/{name}"), delete(remove_scheduler))
        .route(
            &r("/scheduler-config/evict-leader-scheduler/list"),
            get(evict_leader_list),
        )
        .route(
            &r("/scheduler-config/evict-leader-scheduler/config"),
            post(evict_leader_add),
        )
        .route(
            &r("/scheduler-config/evict-leader-scheduler/delete/{id}"),
            delete(evict_leader_delete),
        )
        .route(&r("/regions"), get(regions))
        .route(&r("/regions/check/{kind}"), get(regions_check))
        .route(
            "/clusters/{namespace}/{cluster}/pd/api/v2/ready",
            get(ready),
        )
        .route(
            "/clusters/{namespace}/{cluster}/pd/api/v2/readyz",
            get(ready),
        )
        .route("/clusters/{namespace}/{cluster}/pd/{*rest}", any(unknown))
}

/// Runs `f` on the cluster if its PD answers; 503 otherwise.
pub(super) fn with_pd(
    sim: &SharedSim,
    p: &ClusterPath,
    f: impl FnOnce(&mut ClusterState, Now) -> Result<Response, ApiError>,
) -> Response {
    let now = Now::real();
    let mut sim = lock(sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return api_error(&ApiError::new(
            503,
            "no Pod of this cluster has been seen: PD is unreachable",
        ));
    };
    if let Err(err) = cluster.pd_available() {
        return api_error(&err);
    }
    f(cluster, now).unwrap_or_else(|err| api_error(&err))
}

/// Like [`with_pd`], for the paths PD serves only once its raft cluster is bootstrapped (a TiKV
/// store joined): stores, regions, schedulers.
fn with_raft(
    sim: &SharedSim,
    p: &ClusterPath,
    f: impl FnOnce(&mut ClusterState, Now) -> Result<Response, ApiError>,
) -> Response {
    with_pd(sim, p, |c, now| {
        c.raft_bootstrapped()?;
        f(c, now)
    })
}

pub(super) fn ok<T: serde::Serialize + ?Sized>(body: &T) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, body))
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|err| {
        ApiError::new(
            400,
            format!("[PD:apiutil:ErrInvalidInput]invalid input {raw:?}: {err}"),
        )
    })
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::new(400, err.to_string()))
}

#[derive(Deserialize)]
struct NamePath {
    name: String,
}

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

#[derive(Deserialize)]
struct KindPath {
    kind: String,
}

async fn members(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.members_info()))
}

async fn delete_member_by_name(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(n): Path<NamePath>,
) -> Response {
    with_pd(&sim, &p, |c, now| {
        ok(&c.delete_member_by_name(&n.name, now)?)
    })
}

async fn delete_member_by_id(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
) -> Response {
    with_pd(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        ok(&c.delete_member_by_id(id, now)?)
    })
}

async fn leader(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.leader_info()))
}

async fn transfer_leader(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(n): Path<NamePath>,
) -> Response {
    with_pd(&sim, &p, |c, now| {
        c.transfer_leader(&n.name, now)?;
        ok("The transfer command is submitted.")
    })
}

async fn resign_leader(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, now| {
        c.resign_leader(now)?;
        ok("The resign command is submitted.")
    })
}

async fn health(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.health()))
}

async fn ping(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |_, _| {
        Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
    })
}

async fn cluster(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.cluster_meta()))
}

async fn cluster_status(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| {
        let (bootstrap, initialized) = c.bootstrap_status();
        ok(&serde_json::json!({
            "raft_bootstrap_time": bootstrap.map(|n| rfc3339(n.wall)).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned()),
            "is_initialized": initialized,
        }))
    })
}

async fn status(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| {
        ok(&serde_json::json!({
            "build_ts": "",
            "version": c.pd_version(),
            "git_hash": crate::sim::GIT_HASH,
            "start_timestamp": c.start_timestamp(),
        }))
    })
}

async fn version(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| {
        ok(&serde_json::json!({ "version": c.pd_version() }))
    })
}

async fn config(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.pd_config()))
}

async fn set_config(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    body: Bytes,
) -> Response {
    with_pd(&sim, &p, |c, now| {
        let items: BTreeMap<String, Value> = parse_body(&body)?;
        c.set_pd_config(&items, now)?;
        ok("The config is updated.")
    })
}

async fn set_rule(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    body: Bytes,
) -> Response {
    with_pd(&sim, &p, |c, _| {
        let rule: Value = parse_body(&body)?;
        c.set_rule(rule)?;
        ok("Update rule successfully.")
    })
}

#[derive(Deserialize)]
struct RulePath {
    namespace: String,
    cluster: String,
    group: String,
    id: String,
}

async fn delete_rule(State(sim): State<SharedSim>, Path(p): Path<RulePath>) -> Response {
    let cluster = ClusterPath {
        namespace: p.namespace,
        cluster: p.cluster,
    };
    with_pd(&sim, &cluster, |c, _| {
        c.delete_rule(&p.group, &p.id);
        ok("Delete rule successfully.")
    })
}

#[derive(Deserialize)]
struct GroupPath {
    namespace: String,
    cluster: String,
    group: String,
}

async fn rules_of_group(State(sim): State<SharedSim>, Path(p): Path<GroupPath>) -> Response {
    let cluster = ClusterPath {
        namespace: p.namespace,
        cluster: p.cluster,
    };
    with_pd(&sim, &cluster, |c, _| ok(&c.rules_of_group(&p.group)))
}

async fn replication(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| ok(&c.replication_config()))
}

async fn set_replication(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    body: Bytes,
) -> Response {
    with_pd(&sim, &p, |c, now| {
        let input: BTreeMap<String, Value> = parse_body(&body)?;
        let max_replicas = match input.get("max-replicas") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::new(
                    400,
                    format!("max-replicas must be a positive integer, got {v}"),
                )
            })?),
        };
        let location_labels = match input.get("location-labels") {
            None => None,
            Some(Value::String(s)) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
            ),
            Some(other) => {
                return Err(ApiError::new(
                    400,
                    format!("location-labels must be a string, got {other}"),
                ));
            }
        };
        c.set_replication(max_replicas, location_labels, now)?;
        ok("The config is updated.")
    })
}

async fn stores(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>, uri: Uri) -> Response {
    with_raft(&sim, &p, |c, now| {
        let mut states = Vec::new();
        for (key, value) in query_pairs(&uri) {
            if key != "state" {
                continue;
            }
            let state: i32 = value.parse().map_err(|_| {
                ApiError::new(
                    500,
                    format!("strconv.Atoi: parsing {value:?}: invalid syntax"),
                )
            })?;
            if !(0..=2).contains(&state) {
                return Err(ApiError::new(500, format!("unknown StoreState: {state}")));
            }
            states.push(state);
        }
        if states.is_empty() {
            // Up and Offline by default, as PD does.
            states = vec![0, 1];
        }
        ok(&c.stores_info(&states, now))
    })
}

async fn store(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        match c.store_info(id, now) {
            Some(info) => ok(&info),
            None => Err(ApiError::new(
                404,
                format!("[PD:core:ErrStoreNotFound]store {id} not found"),
            )),
        }
    })
}

async fn delete_store(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        c.delete_store(id, now)?;
        ok("The store is set as Offline.")
    })
}

async fn set_store_state(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
    uri: Uri,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        let state = query_pairs(&uri)
            .into_iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v)
            .unwrap_or_default();
        c.set_store_state(id, &state, now)?;
        ok("The store's state is updated.")
    })
}

async fn set_store_labels(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
    uri: Uri,
    body: Bytes,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        let labels: BTreeMap<String, String> = parse_body(&body)?;
        let force = query_pairs(&uri).iter().any(|(k, _)| k == "force");
        c.set_store_labels(id, labels, force, now)?;
        ok("The store's label is updated.")
    })
}

/// `DELETE /store/{id}/label` with the label key as a JSON string, as PD reads it.
async fn delete_store_label(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
    body: Bytes,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        let key: String = parse_body(&body)?;
        c.delete_store_label(id, &key, now)?;
        ok(&format!("The label {key} is deleted for store {id}."))
    })
}

async fn schedulers(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_raft(&sim, &p, |c, _| ok(&c.schedulers()))
}

/// `store_id` of a scheduler request: a JSON number, as PD reads it.
fn store_id_of(input: &BTreeMap<String, Value>) -> Result<Option<u64>, ApiError> {
    match input.get("store_id") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| ApiError::new(400, "please input a right store id")),
    }
}

async fn add_scheduler(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    body: Bytes,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let input: BTreeMap<String, Value> = parse_body(&body)?;
        let Some(name) = input.get("name").and_then(Value::as_str) else {
            return Err(ApiError::new(400, "missing scheduler name"));
        };
        let store_id = store_id_of(&input)?;
        c.add_scheduler(name, store_id, now)?;
        ok("The scheduler is created.")
    })
}

async fn remove_scheduler(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(n): Path<NamePath>,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        c.remove_scheduler(&n.name, now)?;
        ok("The scheduler is removed.")
    })
}

async fn evict_leader_list(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_raft(&sim, &p, |c, _| match c.evict_leader_config() {
        Some(config) => ok(&config),
        None => Err(ApiError::new(
            404,
            "[PD:scheduler:ErrSchedulerNotFound]scheduler not found",
        )),
    })
}

async fn evict_leader_add(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    body: Bytes,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        if c.evict_leader_config().is_none() {
            return Err(ApiError::new(
                404,
                "[PD:scheduler:ErrSchedulerNotFound]scheduler not found",
            ));
        }
        let input: BTreeMap<String, Value> = parse_body(&body)?;
        if let Some(id) = store_id_of(&input)? {
            c.add_scheduler(crate::sim::EVICT_LEADER, Some(id), now)?;
        }
        ok("The scheduler has been applied to the store.")
    })
}

async fn evict_leader_delete(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(i): Path<IdPath>,
) -> Response {
    with_raft(&sim, &p, |c, now| {
        let id = parse_id(&i.id)?;
        let last = c.remove_scheduler(&format!("{}-{id}", crate::sim::EVICT_LEADER), now)?;
        if last {
            ok("The last store has been deleted")
        } else {
            ok(&Value::Null)
        }
    })
}

async fn regions(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_raft(&sim, &p, |c, now| ok(&c.regions_info(now)))
}

async fn regions_check(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(k): Path<KindPath>,
) -> Response {
    with_raft(&sim, &p, |c, now| match c.regions_check(&k.kind, now) {
        Some(info) => ok(&info),
        None => Err(ApiError::new(404, "404 page not found")),
    })
}

async fn ready(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |c, _| {
        if c.faults().pd_regions_not_loaded {
            // PD's handler answers 500 until its region storage is loaded.
            return Err(ApiError::new(500, "regions not loaded"));
        }
        ok(&Value::Null)
    })
}

async fn unknown(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    with_pd(&sim, &p, |_, _| {
        Err(ApiError::new(
            404,
            format!(
                "404 page not found (the simulator does not serve this path; PD {DEFAULT_VERSION} may)"
            ),
        ))
    })
}
