//! The write fence: the client sends no write once this replica's leadership may have ended.
//!
//! Losing the Lease cancels the controllers, but a cancelled task only stops at its next await,
//! and a process that was paused (SIGSTOP, a frozen VM, a long GC-like stall) wakes up with its
//! reconciles and its renewal timer all due at once: a reconcile may send a write before the
//! renewal task has noticed that the Lease is gone, while another replica already leads. The
//! fence closes that gap. The elector opens it until the renew deadline of its last successful
//! renewal (counted on the monotonic clock from when that renewal was sent), and every write the
//! client would send after that instant is refused before it leaves the process. Another replica
//! takes over only once the Lease has expired, `lease_duration` after the renewal, later than the
//! renew deadline by the margin the configuration keeps for clock skew and requests in flight.
//!
//! The elector's own Lease requests pass: they are how leadership is taken and kept.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use crate::client::request_labels;
use crate::metrics::Metrics;

/// When writes are allowed: until an instant, or not at all. Shared by the elector, which moves
/// it, and the client, which reads it.
#[derive(Clone, Debug, Default)]
pub struct WriteFence {
    open_until: Arc<Mutex<Option<Instant>>>,
}

impl WriteFence {
    /// A closed fence: nothing may be written until leadership opens it.
    pub fn new() -> WriteFence {
        WriteFence::default()
    }

    /// Allows writes until `until`.
    pub fn open_until(&self, until: Instant) {
        if let Ok(mut open) = self.open_until.lock() {
            *open = Some(until);
        }
    }

    /// Refuses every write from now on, until opened again.
    pub fn close(&self) {
        if let Ok(mut open) = self.open_until.lock() {
            *open = None;
        }
    }

    /// Whether a write may be sent at `now`.
    pub fn permits(&self, now: Instant) -> bool {
        self.open_until
            .lock()
            .map(|open| open.is_some_and(|until| now < until))
            .unwrap_or(false)
    }

    /// This fence as the write gate of the clients of PD, TiKV and TiCDC: what they would change
    /// is refused unsent while it is closed.
    pub fn gate(&self) -> pd_client::WriteGate {
        let fence = self.clone();
        Arc::new(move || fence.permits(Instant::now()))
    }
}

/// Why a write was not sent.
#[derive(Debug, thiserror::Error)]
#[error(
    "{verb} {resource} not sent: this replica's leadership may have ended (no Lease renewal within the renew deadline)"
)]
pub struct Fenced {
    /// The request's verb.
    pub verb: String,
    /// The request's resource.
    pub resource: String,
}

/// Whether a request writes, and is not one of the elector's Lease requests.
pub fn is_fenced_write(method: &Method, path: &str) -> bool {
    let writes = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    writes && !path.starts_with("/apis/coordination.k8s.io/")
}

/// A tower layer that refuses writes while its [`WriteFence`] is closed, counting each refusal
/// in [`Metrics`].
#[derive(Clone, Debug)]
pub struct FenceLayer {
    fence: WriteFence,
    metrics: Metrics,
}

impl FenceLayer {
    /// A layer reading `fence`.
    pub fn new(fence: WriteFence, metrics: Metrics) -> FenceLayer {
        FenceLayer { fence, metrics }
    }
}

impl<S> Layer<S> for FenceLayer {
    type Service = FencedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FencedService {
            inner,
            fence: self.fence.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`FenceLayer`] wraps around the client's stack.
#[derive(Clone, Debug)]
pub struct FencedService<S> {
    inner: S,
    fence: WriteFence,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FencedService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Checked when the request is handed to the client, right before it is sent.
        if is_fenced_write(request.method(), request.uri().path())
            && !self.fence.permits(Instant::now())
        {
            let labels = request_labels(
                request.method(),
                request.uri().path(),
                request.uri().query(),
            );
            self.metrics.fenced_write(&labels.verb, &labels.resource);
            let refused = Fenced {
                verb: labels.verb,
                resource: labels.resource,
            };
            tracing::warn!(error = %refused, "write refused by the leadership fence");
            return Box::pin(async move { Err(BoxError::from(refused)) });
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    fn service(
        fence: &WriteFence,
        metrics: &Metrics,
    ) -> impl Service<
        Request<()>,
        Response = Response<()>,
        Error = BoxError,
        Future = BoxFuture<'static, Result<Response<()>, BoxError>>,
    > + Clone {
        let inner = tower::service_fn(|_: Request<()>| async move {
            Ok::<_, std::convert::Infallible>(Response::new(()))
        });
        FenceLayer::new(fence.clone(), metrics.clone()).layer(inner)
    }

    async fn send(fence: &WriteFence, metrics: &Metrics, method: Method, path: &str) -> bool {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        service(fence, metrics).oneshot(request).await.is_ok()
    }

    const PDS: &str = "/apis/core.pingcap.com/v1alpha1/namespaces/x/pds/a";
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/tidb-admin/leases/pd-controller";

    #[tokio::test]
    async fn writes_pass_only_until_the_fence_closes_and_leases_and_reads_always_pass() {
        let metrics = Metrics::new().unwrap();
        let fence = WriteFence::new();
        // Closed before leadership: no write, but the elector's Lease requests and reads go.
        assert!(!send(&fence, &metrics, Method::PATCH, PDS).await);
        assert!(send(&fence, &metrics, Method::PUT, LEASE).await);
        assert!(send(&fence, &metrics, Method::POST, LEASE).await);
        assert!(send(&fence, &metrics, Method::GET, PDS).await);

        fence.open_until(Instant::now() + Duration::from_secs(10));
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(send(&fence, &metrics, method, PDS).await);
        }
        // Past the renew deadline without a renewal, as after a pause: refused.
        fence.open_until(Instant::now() - Duration::from_millis(1));
        assert!(!send(&fence, &metrics, Method::DELETE, PDS).await);
        assert!(send(&fence, &metrics, Method::GET, PDS).await);

        // A renewal moves the deadline; a loss closes it at once.
        fence.open_until(Instant::now() + Duration::from_secs(10));
        assert!(send(&fence, &metrics, Method::PATCH, PDS).await);
        fence.close();
        assert!(!send(&fence, &metrics, Method::PATCH, PDS).await);

        assert_eq!(metrics.fenced_writes(), 3);
        let later = Instant::now() + Duration::from_secs(1);
        fence.open_until(later);
        assert!(fence.permits(later - Duration::from_millis(1)));
        assert!(!fence.permits(later), "the deadline itself is past");
        assert!(
            metrics
                .render()
                .contains(r#"tidb_operator_fenced_writes_total{resource="pds",verb="delete"} 1"#),
            "{}",
            metrics.render()
        );
    }
}
