//! The Kubernetes client of a controller binary, which counts every API request it makes in
//! [`Metrics`] by verb, resource and status code, and (as a leader's client) sends no write once
//! its leadership may have ended ([`crate::fence`]).

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::error::RuntimeError;
use crate::fence::{FenceLayer, WriteFence};
use crate::metrics::Metrics;

/// A leader's client from the environment: the in-cluster service account when running in a
/// Pod, else `KUBECONFIG` (or `~/.kube/config`). Every request it makes is counted in `metrics`;
/// writes go only while `fence` is open; `user_agent` is sent with every request, so the API
/// server's audit log tells the replicas apart.
pub async fn client(
    metrics: &Metrics,
    fence: &WriteFence,
    user_agent: &str,
) -> Result<kube::Client, RuntimeError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| RuntimeError::Config(Box::new(e)))?;
    fenced_client_from_config(config, metrics, fence, user_agent)
}

/// [`client`] for an explicit configuration.
pub fn fenced_client_from_config(
    mut config: kube::Config,
    metrics: &Metrics,
    fence: &WriteFence,
    user_agent: &str,
) -> Result<kube::Client, RuntimeError> {
    let agent =
        http::HeaderValue::from_str(user_agent).map_err(|source| RuntimeError::UserAgent {
            agent: user_agent.to_string(),
            source,
        })?;
    config.headers.push((http::header::USER_AGENT, agent));
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| RuntimeError::Client(Box::new(e)))?;
    // The fence sits outside the counter: a refused write never reached the API server.
    Ok(builder
        .with_layer(&ApiRequestCounter::new(metrics.clone()))
        .with_layer(&FenceLayer::new(fence.clone(), metrics.clone()))
        .build())
}

/// A client for an explicit configuration, counting every request in `metrics`.
pub fn client_from_config(
    config: kube::Config,
    metrics: &Metrics,
) -> Result<kube::Client, RuntimeError> {
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| RuntimeError::Client(Box::new(e)))?;
    Ok(builder
        .with_layer(&ApiRequestCounter::new(metrics.clone()))
        .build())
}

/// What one API request does, as the labels of
/// [`API_REQUESTS_TOTAL`](crate::metrics::API_REQUESTS_TOTAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or the
    /// lower-case HTTP method for anything else.
    pub verb: String,
    /// The resource's plural, without its group, with the subresource after a slash
    /// (`pods`, `pds/status`, `pods/eviction`). A path outside the resource API (`/version`) is
    /// kept as it is.
    pub resource: String,
}

/// Reads the verb and resource from a request's method, path and query, the way the API server
/// does (a sketch of its `RequestInfo`).
pub fn request_labels(method: &Method, path: &str, query: Option<&str>) -> RequestLabels {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => {
            return RequestLabels {
                verb: method.as_str().to_ascii_lowercase(),
                resource: path.to_string(),
            };
        }
    };
    if rest.is_empty() {
        // Discovery of a group version.
        return RequestLabels {
            verb: method.as_str().to_ascii_lowercase(),
            resource: path.to_string(),
        };
    }
    // The old `/watch/` prefix.
    let (mut watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    watch |= query.is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    });
    // `namespaces/<ns>/<resource>...` is scoped to a namespace, except the namespace's own
    // subresources (`namespaces/<ns>/status`, `namespaces/<ns>/finalize`).
    let rest = match rest {
        ["namespaces", _namespace, next, ..] if !matches!(*next, "status" | "finalize") => {
            &rest[2..]
        }
        _ => rest,
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource, ..] => (*resource, Some(*name), Some(*subresource)),
        [] => ("", None, None),
    };
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if name.is_some() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        ref other => {
            return RequestLabels {
                verb: other.as_str().to_ascii_lowercase(),
                resource: resource_label(resource, subresource),
            };
        }
    };
    RequestLabels {
        verb: verb.to_string(),
        resource: resource_label(resource, subresource),
    }
}

fn resource_label(resource: &str, subresource: Option<&str>) -> String {
    match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    }
}

/// A tower layer that counts each request in [`Metrics`] once, when its response headers arrive
/// (so a watch counts once, when it starts, however long it then streams). It sits outside the
/// client's retries, so a retried request counts once, with its final status.
#[derive(Clone, Debug)]
pub struct ApiRequestCounter {
    metrics: Metrics,
}

impl ApiRequestCounter {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Metrics) -> ApiRequestCounter {
        ApiRequestCounter { metrics }
    }
}

impl<S> Layer<S> for ApiRequestCounter {
    type Service = CountedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountedService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ApiRequestCounter`] wraps around the client's stack.
#[derive(Clone, Debug)]
pub struct CountedService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CountedService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let labels = request_labels(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            metrics.api_request(&labels.verb, &labels.resource, &code);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, path_and_query: &str) -> (String, String) {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let l = request_labels(&method, path, query);
        (l.verb, l.resource)
    }

    fn pair(verb: &str, resource: &str) -> (String, String) {
        (verb.to_string(), resource.to_string())
    }

    #[test]
    fn core_resources() {
        assert_eq!(
            labels(Method::GET, "/api/v1/namespaces/x/pods/name"),
            pair("get", "pods")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/namespaces/x/pods"),
            pair("list", "pods")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/pods?labelSelector=a%3Db"),
            pair("list", "pods")
        );
        assert_eq!(
            labels(Method::POST, "/api/v1/namespaces/x/pods"),
            pair("create", "pods")
        );
        assert_eq!(
            labels(Method::DELETE, "/api/v1/namespaces/x/pods/name"),
            pair("delete", "pods")
        );
        assert_eq!(
            labels(Method::DELETE, "/api/v1/namespaces/x/pods?labelSelector=a"),
            pair("deletecollection", "pods")
        );
        assert_eq!(
            labels(Method::POST, "/api/v1/namespaces/x/pods/name/eviction"),
            pair("create", "pods/eviction")
        );
    }

    #[test]
    fn group_resources_and_subresources() {
        assert_eq!(
            labels(
                Method::PATCH,
                "/apis/core.pingcap.com/v1alpha1/namespaces/x/pdgroups/name/status?fieldManager=pd"
            ),
            pair("patch", "pdgroups/status")
        );
        assert_eq!(
            labels(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/tidb-admin/leases/pd-controller"
            ),
            pair("update", "leases")
        );
        assert_eq!(
            labels(Method::GET, "/apis/core.pingcap.com/v1alpha1/pds"),
            pair("list", "pds")
        );
    }

    #[test]
    fn cluster_scoped_resources() {
        assert_eq!(
            labels(Method::GET, "/api/v1/nodes/kwok-0"),
            pair("get", "nodes")
        );
        assert_eq!(labels(Method::GET, "/api/v1/nodes"), pair("list", "nodes"));
        assert_eq!(
            labels(Method::GET, "/api/v1/namespaces/x"),
            pair("get", "namespaces")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/namespaces"),
            pair("list", "namespaces")
        );
        assert_eq!(
            labels(Method::PUT, "/api/v1/namespaces/x/finalize"),
            pair("update", "namespaces/finalize")
        );
        assert_eq!(
            labels(
                Method::PATCH,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pds.core.pingcap.com"
            ),
            pair("patch", "customresourcedefinitions")
        );
    }

    #[test]
    fn watches() {
        assert_eq!(
            labels(
                Method::GET,
                "/apis/core.pingcap.com/v1alpha1/namespaces/x/pds?watch=true&resourceVersion=5&timeoutSeconds=290"
            ),
            pair("watch", "pds")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/pods?allowWatchBookmarks=true&watch=1"),
            pair("watch", "pods")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/watch/namespaces/x/pods"),
            pair("watch", "pods")
        );
        // `watch=false` and look-alike parameters are not watches.
        assert_eq!(
            labels(
                Method::GET,
                "/api/v1/pods?watch=false&allowWatchBookmarks=true"
            ),
            pair("list", "pods")
        );
    }

    #[test]
    fn paths_outside_the_resource_api_are_kept() {
        assert_eq!(labels(Method::GET, "/version"), pair("get", "/version"));
        assert_eq!(
            labels(Method::GET, "/apis/core.pingcap.com/v1alpha1"),
            pair("get", "/apis/core.pingcap.com/v1alpha1")
        );
    }

    #[tokio::test]
    async fn the_layer_counts_once_with_the_status_code() {
        use tower::ServiceExt;
        let metrics = Metrics::new().unwrap();
        let inner = tower::service_fn(|request: Request<()>| async move {
            let status = if request.method() == Method::POST {
                409
            } else {
                200
            };
            Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
        });
        let service = ApiRequestCounter::new(metrics.clone()).layer(inner);
        let get = Request::get("/api/v1/namespaces/x/pods/a")
            .body(())
            .unwrap();
        service.clone().oneshot(get).await.unwrap();
        let create = Request::post("/apis/core.pingcap.com/v1alpha1/namespaces/x/pds")
            .body(())
            .unwrap();
        service.oneshot(create).await.unwrap();
        assert_eq!(metrics.api_requests("get"), 1);
        assert_eq!(metrics.api_requests_on("create", "pds"), 1);
        assert!(
            metrics.render().contains(
                r#"tidb_operator_api_requests_total{code="409",resource="pds",verb="create"} 1"#
            ),
            "{}",
            metrics.render()
        );
    }
}
