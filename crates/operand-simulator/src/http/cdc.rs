//! TiCDC's HTTP API, per capture: `/clusters/{namespace}/{cluster}/ticdc/{instance}/...` serves
//! what the TiCDC server of that instance serves on its port (tiflow `cdc/api/v1`, `cdc/api/v2`):
//! `GET /status`, `GET /api/v{1,2}/captures`, `POST /api/v{1,2}/owner/resign`,
//! `PUT /api/v1/captures/drain` and `GET /api/v{1,2}/health`. A capture whose Pod does not run
//! answers 503. Errors come as TiCDC's `{"error_msg", "error_code"}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::{SharedSim, json, lock};
use crate::clock::Now;
use crate::sim::ApiError;

pub(super) fn routes() -> Router<SharedSim> {
    const BASE: &str = "/clusters/{namespace}/{cluster}/ticdc/{instance}";
    Router::new()
        .route(&format!("{BASE}/status"), get(status))
        .route(&format!("{BASE}/api/v1/captures"), get(captures))
        .route(&format!("{BASE}/api/v2/captures"), get(captures))
        .route(&format!("{BASE}/api/v1/owner/resign"), post(resign_v1))
        .route(&format!("{BASE}/api/v2/owner/resign"), post(resign_v2))
        .route(&format!("{BASE}/api/v1/captures/drain"), put(drain))
        .route(&format!("{BASE}/api/v1/health"), get(health))
        .route(&format!("{BASE}/api/v2/health"), get(health))
}

#[derive(Deserialize)]
struct CapturePath {
    namespace: String,
    cluster: String,
    instance: String,
}

fn not_running(instance: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("TiCDC {instance} is not running (simulated)\n"),
    )
        .into_response()
}

/// An error as TiCDC's API answers it.
fn cdc_error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &serde_json::json!({
            "error_msg": err.message,
            "error_code": "CDC:ErrSchedulerRequestFailed",
        }),
    )
}

async fn status(State(sim): State<SharedSim>, Path(p): Path<CapturePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.capture_status(&p.instance))
    {
        Some(status) => json(StatusCode::OK, &status),
        None => not_running(&p.instance),
    }
}

async fn captures(State(sim): State<SharedSim>, Path(p): Path<CapturePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.captures(&p.instance))
    {
        Some(captures) => json(StatusCode::OK, &captures),
        None => not_running(&p.instance),
    }
}

async fn health(State(sim): State<SharedSim>, Path(p): Path<CapturePath>) -> Response {
    let sim = lock(&sim);
    match sim
        .cluster(&p.namespace, &p.cluster)
        .and_then(|c| c.cdc_health(&p.instance))
    {
        Some(Ok(())) => json(StatusCode::OK, &serde_json::json!({})),
        Some(Err(err)) => cdc_error(&err),
        None => not_running(&p.instance),
    }
}

/// Resign through v1 answers 202 with no body, v2 200 with `{}`.
async fn resign(sim: &SharedSim, p: &CapturePath, ok: Response) -> Response {
    let mut sim = lock(sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return not_running(&p.instance);
    };
    match cluster.resign_cdc_owner(&p.instance, Now::real()) {
        Ok(()) => ok,
        Err(err) if err.status == 503 => not_running(&p.instance),
        Err(err) => cdc_error(&err),
    }
}

async fn resign_v1(State(sim): State<SharedSim>, Path(p): Path<CapturePath>) -> Response {
    resign(&sim, &p, StatusCode::ACCEPTED.into_response()).await
}

async fn resign_v2(State(sim): State<SharedSim>, Path(p): Path<CapturePath>) -> Response {
    resign(&sim, &p, json(StatusCode::OK, &serde_json::json!({}))).await
}

#[derive(Deserialize)]
struct DrainRequest {
    capture_id: String,
}

async fn drain(State(sim): State<SharedSim>, Path(p): Path<CapturePath>, body: Bytes) -> Response {
    let request: DrainRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return cdc_error(&ApiError::new(400, err.to_string())),
    };
    let mut sim = lock(&sim);
    let Some(cluster) = sim.cluster_mut(&p.namespace, &p.cluster) else {
        return not_running(&p.instance);
    };
    match cluster.drain_capture(&p.instance, &request.capture_id, Now::real()) {
        Ok(tables) => json(
            StatusCode::ACCEPTED,
            &serde_json::json!({"current_table_count": tables}),
        ),
        Err(err) if err.status == 503 => not_running(&p.instance),
        Err(err) => cdc_error(&err),
    }
}
