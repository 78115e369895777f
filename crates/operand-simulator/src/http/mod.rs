//! The HTTP face of the simulator: one axum router over the shared simulation, serving PD's API
//! per cluster (`/clusters/{namespace}/{cluster}/pd/...`) and its embedded etcd's gateway
//! (`.../v3/kv/...`), the TiDB/TiKV status endpoints per instance, TiCDC's API per capture, and
//! the control API (`/control/...`). Handlers lock the simulation, call it, and serialize what it
//! returns; no simulation logic lives here.

mod cdc;
mod control;
mod etcd;
mod pd;
mod status;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::sim::{ApiError, Sim};

/// The simulation shared by the handlers, the watcher and the ticker.
pub type SharedSim = Arc<Mutex<Sim>>;

/// Locks the simulation; a panic elsewhere while it was locked does not make it unusable.
pub fn lock(sim: &SharedSim) -> MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The whole router.
pub fn router(sim: SharedSim) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(pd::routes())
        .merge(etcd::routes())
        .merge(status::routes())
        .merge(cdc::routes())
        .merge(control::routes())
        .route("/hosts/{authority}/{*rest}", axum::routing::any(by_host))
        .with_state(sim)
}

/// `/hosts/{host:port}/...`: what a client in another Kubernetes cluster reaches at a PD URL
/// (a member's or a client Service's host, fully qualified in that cluster's domain). The
/// simulator resolves the name as cross-cluster DNS would and redirects to that cluster's PD
/// API; a name that resolves to no simulated PD does not answer (503).
async fn by_host(
    axum::extract::State(sim): axum::extract::State<SharedSim>,
    axum::extract::Path((authority, rest)): axum::extract::Path<(String, String)>,
    uri: Uri,
) -> Response {
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(h, _)| h);
    let key = lock(&sim).cluster_of_host(host);
    match key {
        Some(key) => {
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            let location = format!("/clusters/{}/{}/{rest}{query}", key.namespace, key.cluster);
            match HeaderValue::from_str(&location) {
                Ok(location) => (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response(),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }
        None => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no PD answers at {authority}: the name resolves to no simulated PD member"),
        ),
    }
}

/// `{namespace}` and `{cluster}` of a path.
#[derive(Debug, Deserialize)]
struct ClusterPath {
    namespace: String,
    cluster: String,
}

const JSON: &str = "application/json; charset=UTF-8";

/// A JSON response, ending in a newline as PD's renderer writes it.
fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))];
            (status, content_type, bytes).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// An error as PD sends it: the message as a JSON string.
fn api_error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &err.message)
}

/// Query parameters in order, percent-decoded; repeated keys stay repeated.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
