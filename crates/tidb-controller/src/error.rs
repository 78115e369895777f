//! The reconcile error of the TiDB controllers, with a short category for the error metric.

use operator_runtime::apply::ApplyError;
use operator_runtime::build::BuildError;

/// Why a reconcile of a TiDBGroup or TiDB failed; the controller logs it and retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client's error (boxed: it is large).
        source: Box<kube::Error>,
    },
    /// Applying an owned object failed.
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// The objects could not be built from the spec.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An object lacks a field the reconcile needs.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }

    /// Short category for `tidb_operator_reconcile_errors_total{error}`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::Apply(_) => "apply",
            Error::Build(_) => "build",
            Error::Invalid(_) => "invalid",
        }
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Error::Apply(Box::new(error))
    }
}
