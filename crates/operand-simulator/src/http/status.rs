//! TiDB, TiKV and TiFlash status endpoints, per instance:
//! `/clusters/{namespace}/{cluster}/tidb/{instance}/...`, `.../tikv/{instance}/...` and
//! `.../tiflash/{instance}/tiflash/store-status` and `.../tiflash/readyz`.
//! An instance whose Pod does not run, or that a fault marks unhealthy, answers 503.
//! `/metrics/{namespace}/{cluster}/{pd|tikv|tidb|tiflash|ticdc}/{instance}`: each operand's
//! `/metrics`, a small subset of the real one, for a Prometheus that scrapes the operand Pods.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{SharedSim, json, lock};
use crate::clock::Now;

pub(super) fn routes() -> Router<SharedSim> {
    Router::new()
        .route(
            "/clusters/{namespace}/{cluster}/tidb/{instance}/status",
            get(tidb_status),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tidb/{instance}/labels",
            get(tidb_labels).post(set_tidb_labels),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tidb/{instance}/info/all",
            get(tidb_all_servers),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tidb/{instance}/tidb-pool/status",
            get(tidb_pool_status),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tidb/{instance}/tidb-pool/activate",
            post(tidb_activate),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tikv/{instance}/status",
            get(tikv_status),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tikv/{instance}/ready",
            get(tikv_ready),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tikv/{instance}/metrics",
            get(tikv_metrics),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tikv/{instance}/config",
            post(set_tikv_config),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tiflash/{instance}/tiflash/store-status",
            get(tiflash_store_status),
        )
        .route(
            "/clusters/{namespace}/{cluster}/tiflash/{instance}/tiflash/readyz",
            get(tiflash_readyz),
        )
        // Every operand's /metrics under one prefix (PD's API owns every path under
        // `/clusters/{namespace}/{cluster}/pd/`): what a scrape of the operand's Pod gets.
        .route(
            "/metrics/{namespace}/{cluster}/pd/{instance}",
            get(pd_metrics),
        )
        .route(
            "/metrics/{namespace}/{cluster}/tikv/{instance}",
            get(tikv_metrics),
        )
        .route(
            "/metrics/{namespace}/{cluster}/tidb/{instance}",
            get(tidb_metrics),
        )
        .route(
            "/metrics/{namespace}/{cluster}/tiflash/{instance}",
            get(tiflash_metrics),
        )
        .route(
            "/metrics/{namespace}/{cluster}/ticdc/{instance}",
            get(ticdc_metrics),
        )
}

fn exposition(body: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

async fn pd_metrics(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.pd_metrics(&p.instance, Now::real()))
    {
        Some(body) => exposition(body),
        None => unavailable(&format!("PD {}", p.instance)),
    }
}

async fn tidb_metrics(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tidb_metrics(&p.instance))
    {
        Some(body) => exposition(body),
        None => unavailable(&format!("TiDB {}", p.instance)),
    }
}

#[derive(Deserialize)]
struct InstancePath {
    namespace: String,
    cluster: String,
    instance: String,
}

fn unavailable(what: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{what} is not running or is marked unhealthy (simulated)\n"),
    )
        .into_response()
}

async fn tidb_status(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tidb_status(&p.instance))
    {
        Some(status) => json(StatusCode::OK, &status),
        None => unavailable(&format!("TiDB {}", p.instance)),
    }
}

async fn tidb_labels(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    let Some(cluster) = sim.cluster(&p.namespace, &p.cluster) else {
        return unavailable(&format!("TiDB {}", p.instance));
    };
    if cluster.tidb_status(&p.instance).is_none() {
        return unavailable(&format!("TiDB {}", p.instance));
    }
    json(StatusCode::OK, &cluster.tidb_labels(&p.instance))
}

async fn set_tidb_labels(
    State(sim): State<SharedSim>,
    Path(p): Path<InstancePath>,
    body: Bytes,
) -> Response {
    let labels: BTreeMap<String, String> = match serde_json::from_slice(&body) {
        Ok(labels) => labels,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let mut sim = lock(&sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return unavailable(&format!("TiDB {}", p.instance));
    };
    if cluster.tidb_status(&p.instance).is_none() {
        return unavailable(&format!("TiDB {}", p.instance));
    }
    cluster.set_tidb_labels(&p.instance, labels);
    json(StatusCode::OK, &cluster.tidb_labels(&p.instance))
}

async fn tidb_all_servers(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tidb_all_servers(&p.instance))
    {
        Some(servers) => json(StatusCode::OK, &servers),
        None => unavailable(&format!("TiDB {}", p.instance)),
    }
}

async fn tidb_pool_status(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tidb_pool_state(&p.instance))
    {
        Some(Some(state)) => json(StatusCode::OK, &serde_json::json!({ "state": state })),
        // A server not started in standby mode has no such path.
        Some(None) => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
        None => unavailable(&format!("TiDB {}", p.instance)),
    }
}

async fn tidb_activate(
    State(sim): State<SharedSim>,
    Path(p): Path<InstancePath>,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct Activate {
        keyspace_name: String,
    }
    let request: Activate = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let mut sim = lock(&sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return unavailable(&format!("TiDB {}", p.instance));
    };
    match cluster.activate_tidb(&p.instance, &request.keyspace_name, Now::real()) {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({})),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn tikv_status(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tikv_status(&p.instance))
    {
        Some(_) => json(StatusCode::OK, &serde_json::json!({})),
        None => unavailable(&format!("TiKV {}", p.instance)),
    }
}

/// `POST /config?persist=false`: an online config change of one TiKV (see `sim::config`).
async fn set_tikv_config(
    State(sim): State<SharedSim>,
    Path(p): Path<InstancePath>,
    body: Bytes,
) -> Response {
    let items: BTreeMap<String, serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(items) => items,
        Err(err) => {
            let message = format!("failed to decode, error: {err}");
            return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
        }
    };
    let mut sim = lock(&sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return unavailable(&format!("TiKV {}", p.instance));
    };
    if cluster.tikv_status(&p.instance).is_none() {
        return unavailable(&format!("TiKV {}", p.instance));
    }
    match cluster.set_tikv_config(&p.instance, &items, Now::real()) {
        Ok(()) => StatusCode::OK.into_response(),
        // TiKV answers its errors as plain text, not as a JSON string as PD does.
        Err(err) => {
            let status =
                StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, err.message).into_response()
        }
    }
}

/// `GET /tiflash/store-status` on a TiFlash's proxy status port: the store's status as plain
/// text (`Idle`, `Ready`, `Running`), as TiFlash answers it.
async fn tiflash_store_status(
    State(sim): State<SharedSim>,
    Path(p): Path<InstancePath>,
) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tiflash_store_status(&p.instance))
    {
        Some(status) => (StatusCode::OK, status).into_response(),
        None => unavailable(&format!("TiFlash {}", p.instance)),
    }
}

/// `GET /tiflash/readyz` on a TiFlash's proxy status port: 200 once its store is `Running`,
/// 500 while it is not yet (it starts, or its storage does not serve).
async fn tiflash_readyz(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tiflash_store_status(&p.instance))
    {
        Some("Running") => (StatusCode::OK, "ok").into_response(),
        Some(status) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store status is {status}"),
        )
            .into_response(),
        None => unavailable(&format!("TiFlash {}", p.instance)),
    }
}

/// `GET /ready` on a TiKV's status port: 200 once it serves, 500 while it says it is not ready.
async fn tikv_ready(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tikv_ready(&p.instance))
    {
        Some(true) => (StatusCode::OK, "ok").into_response(),
        Some(false) => (StatusCode::INTERNAL_SERVER_ERROR, "not ready").into_response(),
        None => unavailable(&format!("TiKV {}", p.instance)),
    }
}

/// A TiFlash server's and its proxy's `/metrics` (both ports answer the same here): the region
/// count its proxy reports, learners included.
async fn tiflash_metrics(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    let Some(status) = sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tiflash_status(&p.instance))
    else {
        return unavailable(&format!("TiFlash {}", p.instance));
    };
    exposition(format!(
        "# HELP tiflash_proxy_tikv_raftstore_region_count Number of regions (simulated).\n\
         # TYPE tiflash_proxy_tikv_raftstore_region_count gauge\n\
         tiflash_proxy_tikv_raftstore_region_count{{type=\"region\"}} {}\n",
        status.region_count
    ))
}

/// A TiCDC server's `/metrics` while its capture runs: only a Go runtime gauge, as every Go
/// server exports it.
async fn ticdc_metrics(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    if sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.capture_status(&p.instance))
        .is_none()
    {
        return unavailable(&format!("TiCDC {}", p.instance));
    }
    exposition(
        "# HELP go_goroutines Number of goroutines that currently exist (simulated).\n\
         # TYPE go_goroutines gauge\n\
         go_goroutines 64\n"
            .to_owned(),
    )
}

/// The two TiKV metrics the operator reads, in Prometheus text format.
async fn tikv_metrics(State(sim): State<SharedSim>, Path(p): Path<InstancePath>) -> Response {
    let sim = lock(&sim);
    let Some(status) = sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.tikv_status(&p.instance))
    else {
        return unavailable(&format!("TiKV {}", p.instance));
    };
    exposition(format!(
        "# HELP tikv_raftstore_region_count Number of regions (simulated).\n\
         # TYPE tikv_raftstore_region_count gauge\n\
         tikv_raftstore_region_count{{type=\"leader\"}} {}\n\
         tikv_raftstore_region_count{{type=\"region\"}} {}\n",
        status.leader_count, status.region_count
    ))
}
