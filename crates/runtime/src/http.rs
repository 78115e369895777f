//! The HTTP server of a controller binary: `/metrics` for Prometheus, `/healthz` and `/readyz`
//! for the kubelet's probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;
use crate::metrics::Metrics;

/// Whether this replica is ready, as `/readyz` reports it: ready while standing by, and while
/// leading once the controllers' caches have synced.
///
/// Cloning is cheap; every clone shares one state. The harness sets `leading`; the controllers
/// call [`Readiness::set_synced`] once their watches have listed everything.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessState>,
}

#[derive(Debug, Default)]
struct ReadinessState {
    leading: AtomicBool,
    synced: AtomicBool,
}

impl Readiness {
    /// Standing by, nothing synced.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Records whether this replica holds the Lease.
    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::SeqCst);
    }

    /// Records whether the controllers' caches have synced.
    pub fn set_synced(&self, synced: bool) {
        self.inner.synced.store(synced, Ordering::SeqCst);
    }

    /// Whether this replica holds the Lease.
    pub fn is_leading(&self) -> bool {
        self.inner.leading.load(Ordering::SeqCst)
    }

    /// Whether the controllers' caches have synced (one binary running two components waits for
    /// both before it reports synced).
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::SeqCst)
    }

    /// Ready: standing by, or leading with synced caches.
    pub fn is_ready(&self) -> bool {
        !self.is_leading() || self.inner.synced.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The running HTTP server. It stops when [`HttpServer::stop`] is called or when it is dropped.
#[derive(Debug)]
pub struct HttpServer {
    address: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), RuntimeError>>>,
}

impl HttpServer {
    /// Binds `address` (port 0 picks a free port), logs the address actually bound, and serves
    /// `/metrics`, `/healthz` and `/readyz` in a task of its own.
    pub async fn start(
        address: SocketAddr,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<HttpServer, RuntimeError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| RuntimeError::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| RuntimeError::Bind { address, source })?;
        tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
        let app = router(metrics, readiness);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .map_err(|source| RuntimeError::Serve {
                    address: bound,
                    source,
                })
        });
        Ok(HttpServer {
            address: bound,
            stop,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the server.
    pub async fn stop(mut self) -> Result<(), RuntimeError> {
        self.stop.cancel();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "the HTTP server's task panicked");
                Ok(())
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ServerState { metrics, readiness })
}

async fn serve_metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "leading, waiting for the controllers' caches to sync\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A bare HTTP/1.0 GET, to keep the test free of an HTTP client.
    async fn fetch(address: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[test]
    fn readiness_follows_leadership_and_sync() {
        let readiness = Readiness::new();
        assert!(readiness.is_ready(), "standing by is ready");
        readiness.set_leading(true);
        assert!(!readiness.is_ready(), "leading without synced caches");
        readiness.set_synced(true);
        assert!(readiness.is_ready());
        readiness.set_leading(false);
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn serves_the_three_endpoints_on_a_free_port_and_stops() {
        let metrics = Metrics::new().unwrap();
        metrics.set_leader("test", false);
        let readiness = Readiness::new();
        let server = HttpServer::start(
            (Ipv4Addr::LOCALHOST, 0).into(),
            metrics.clone(),
            readiness.clone(),
        )
        .await
        .unwrap();
        let address = server.local_addr();
        assert_ne!(address.port(), 0);

        assert_eq!(fetch(address, "/healthz").await.0, 200);
        assert_eq!(fetch(address, "/readyz").await.0, 200);
        readiness.set_leading(true);
        assert_eq!(fetch(address, "/readyz").await.0, 503);
        readiness.set_synced(true);
        assert_eq!(fetch(address, "/readyz").await.0, 200);
        let (status, body) = fetch(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(r#"tidb_operator_leader{lease="test"} 0"#),
            "{body}"
        );
        assert_eq!(fetch(address, "/nothing").await.0, 404);

        server.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}
