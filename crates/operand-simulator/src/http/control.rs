//! The control API, for tests: read a cluster's whole simulated state and ordered event log,
//! and set or clear faults. Everything under `/control`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::{ClusterPath, SharedSim, json, lock, query_pairs};
use crate::clock::Now;
use crate::sim::{ClusterKey, Event, Fault, Faults};

const C: &str = "/control/clusters/{namespace}/{cluster}";

pub(super) fn routes() -> Router<SharedSim> {
    Router::new()
        .route("/control/clusters", get(list))
        .route(&format!("{C}/state"), get(state))
        .route(&format!("{C}/events"), get(events))
        .route(&format!("{C}/safety"), get(safety))
        .route(&format!("{C}/faults"), get(faults).delete(clear_faults))
        .route(
            &format!("{C}/faults/{{fault}}"),
            put(set_fault).delete(clear_fault),
        )
        .route(
            &format!("{C}/faults/{{fault}}/{{target}}"),
            put(set_fault).delete(clear_fault),
        )
}

#[derive(Serialize)]
struct ClusterSummary {
    namespace: String,
    cluster: String,
    pd_available: bool,
    leader: Option<String>,
    last_event_seq: u64,
}

#[derive(Serialize)]
struct ControlError<'a> {
    error: &'a str,
}

fn not_found(p: &ClusterPath) -> Response {
    json(
        StatusCode::NOT_FOUND,
        &ControlError {
            error: &format!(
                "no Pod of cluster {}/{} has been seen and no fault was set on it",
                p.namespace, p.cluster
            ),
        },
    )
}

async fn list(State(sim): State<SharedSim>) -> Response {
    let sim = lock(&sim);
    let clusters: Vec<ClusterSummary> = sim
        .clusters()
        .map(|c| ClusterSummary {
            namespace: c.key().namespace.clone(),
            cluster: c.key().cluster.clone(),
            pd_available: c.pd_available().is_ok(),
            leader: c.leader(),
            last_event_seq: c.events().last_seq(),
        })
        .collect();
    json(StatusCode::OK, &clusters)
}

async fn state(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    let sim = lock(&sim);
    match sim.cluster(&p.namespace, &p.cluster) {
        Some(c) => json(StatusCode::OK, &c.state(Now::real())),
        None => not_found(&p),
    }
}

async fn safety(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    let sim = lock(&sim);
    match sim.cluster(&p.namespace, &p.cluster) {
        Some(c) => json(StatusCode::OK, &c.safety(Now::real())),
        None => not_found(&p),
    }
}

async fn events(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>, uri: Uri) -> Response {
    let since = query_pairs(&uri)
        .into_iter()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.parse::<u64>());
    let since = match since {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return json(
                StatusCode::BAD_REQUEST,
                &ControlError {
                    error: "since must be a sequence number",
                },
            );
        }
    };
    let sim = lock(&sim);
    match sim.cluster(&p.namespace, &p.cluster) {
        Some(c) => {
            let events: Vec<&Event> = c.events().since(since).collect();
            json(StatusCode::OK, &events)
        }
        None => not_found(&p),
    }
}

async fn faults(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    let sim = lock(&sim);
    match sim.cluster(&p.namespace, &p.cluster) {
        Some(c) => json(StatusCode::OK, c.faults()),
        None => json(StatusCode::OK, &Faults::default()),
    }
}

async fn clear_faults(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>) -> Response {
    let now = Now::real();
    let mut sim = lock(&sim);
    match sim.cluster_mut(&p.namespace, &p.cluster) {
        Some(c) => {
            c.clear_all_faults(now);
            json(StatusCode::OK, c.faults())
        }
        None => json(StatusCode::OK, &Faults::default()),
    }
}

#[derive(Deserialize)]
struct FaultPath {
    fault: String,
    #[serde(default)]
    target: Option<String>,
}

/// The fault of a URL; the message of a 400 if it names none.
fn parse_fault(f: &FaultPath, setting: bool) -> Result<Fault, String> {
    if setting && f.fault == "max-replicas" && f.target.is_none() {
        return Err("set max-replicas with PUT .../faults/max-replicas/{n}".to_owned());
    }
    let fault = Fault::parse(&f.fault, f.target.as_deref())?;
    if setting && fault == Fault::MaxReplicas(0) {
        return Err("max-replicas must be at least 1".to_owned());
    }
    Ok(fault)
}

fn bad_request(error: &str) -> Response {
    json(StatusCode::BAD_REQUEST, &ControlError { error })
}

async fn set_fault(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(f): Path<FaultPath>,
) -> Response {
    let fault = match parse_fault(&f, true) {
        Ok(fault) => fault,
        Err(error) => return bad_request(&error),
    };
    let now = Now::real();
    let mut sim = lock(&sim);
    let cluster = sim.cluster_entry(ClusterKey::new(&p.namespace, &p.cluster), now);
    cluster.set_fault(&fault, now);
    json(StatusCode::OK, cluster.faults())
}

async fn clear_fault(
    State(sim): State<SharedSim>,
    Path(p): Path<ClusterPath>,
    Path(f): Path<FaultPath>,
) -> Response {
    let fault = match parse_fault(&f, false) {
        Ok(fault) => fault,
        Err(error) => return bad_request(&error),
    };
    let now = Now::real();
    let mut sim = lock(&sim);
    match sim.cluster_mut(&p.namespace, &p.cluster) {
        Some(cluster) => {
            cluster.clear_fault(&fault, now);
            json(StatusCode::OK, cluster.faults())
        }
        None => json(StatusCode::OK, &Faults::default()),
    }
}
