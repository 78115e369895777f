//! The one error type of the test kit.

use std::path::PathBuf;

/// What can go wrong while setting up or observing a test.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local control plane could not be started or reached.
    #[error("local control plane {name}: {message}")]
    Cluster {
        /// Cluster name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A kubeconfig could not be read or written.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The client's error.
        source: kube::Error,
    },
    /// A command (kubectl, a controller binary) failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output or why it could not run.
        message: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline in seconds.
        seconds: u64,
    },
}

/// Result of the test kit.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a client error with what was being done.
    pub fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Api { action, source }
    }
}
