//! The error of the controller harness: building the client, serving HTTP, holding the Lease, and
//! whatever the controllers themselves return.

use std::net::SocketAddr;

/// A boxed error from a controller, kept as the source of [`RuntimeError::Controller`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can stop a controller binary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Neither an in-cluster service account nor a kubeconfig was usable.
    #[error("cannot find a Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Config(#[source] Box<kube::config::InferConfigError>),

    /// The Kubernetes client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] Box<kube::Error>),

    /// The identity makes a user agent HTTP cannot carry.
    #[error("cannot send the user agent {agent:?} (from the binary and --identity): {source}")]
    UserAgent {
        /// The user agent.
        agent: String,
        /// Why it is not a header value.
        source: http::header::InvalidHeaderValue,
    },

    /// A metric could not be registered.
    #[error("cannot register metric {name}: {source}")]
    Metrics {
        /// The metric's name.
        name: &'static str,
        /// Why the registry refused it.
        source: prometheus::Error,
    },

    /// The HTTP server could not listen on its address.
    #[error("cannot listen on {address} for /metrics, /healthz and /readyz: {source}")]
    Bind {
        /// The address from `--http-address`.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The HTTP server failed while serving.
    #[error("the HTTP server on {address} failed: {source}")]
    Serve {
        /// The address it was bound to.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A call on the leader-election Lease failed.
    #[error("{action} Lease {namespace}/{name}: {source}")]
    Lease {
        /// What was being done, for example "releasing".
        action: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The client's error.
        source: Box<kube::Error>,
    },

    /// The leader-election settings contradict each other.
    #[error("invalid leader election settings: {0}")]
    LeaderConfig(String),

    /// The termination signal handlers could not be installed.
    #[error("cannot listen for termination signals: {0}")]
    Signal(#[source] std::io::Error),

    /// A controller failed.
    #[error("controller {controller} failed: {source}")]
    Controller {
        /// The controller's name.
        controller: String,
        /// What went wrong.
        source: BoxError,
    },

    /// The controllers' task panicked or was cancelled by the runtime.
    #[error("the controllers' task ended abnormally: {0}")]
    ControllerTask(#[source] tokio::task::JoinError),
}

impl RuntimeError {
    /// Wraps a controller's own error, naming the controller.
    pub fn controller(controller: impl Into<String>, source: impl Into<BoxError>) -> RuntimeError {
        RuntimeError::Controller {
            controller: controller.into(),
            source: source.into(),
        }
    }
}
