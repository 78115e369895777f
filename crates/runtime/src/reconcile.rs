//! The reconcile error every component controller returns (PD, TiKV, TiDB groups and instances),
//! with a short category for the error metric.

use crate::apply::ApplyError;
use crate::build::BuildError;
use crate::component::PdClientError;

/// Why a reconcile of a group or an instance failed; the controller logs it and retries with
/// backoff.
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
    /// PD's API failed.
    #[error("PD at {url}: {source}")]
    Pd {
        /// Which PD.
        url: String,
        /// The client's error.
        source: pd_client::Error,
    },
    /// A component's status port failed (a TiKV's online config change, say).
    #[error("status port at {url}: {source}")]
    Status {
        /// Which status port.
        url: String,
        /// The client's error.
        source: pd_client::Error,
    },
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

    /// Wraps a PD error with the PD it came from.
    pub fn pd(url: &str) -> impl FnOnce(pd_client::Error) -> Error + '_ {
        move |source| Error::Pd {
            url: url.to_string(),
            source,
        }
    }

    /// Short category for `tidb_operator_reconcile_errors_total{error}`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::Apply(_) => "apply",
            Error::Build(_) => "build",
            Error::Pd { .. } => "pd_api",
            Error::Status { .. } => "status_api",
            Error::Invalid(_) => "invalid",
        }
    }
}

impl From<PdClientError> for Error {
    fn from(error: PdClientError) -> Self {
        Error::Pd {
            url: error.url,
            source: error.source,
        }
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Error::Apply(Box::new(error))
    }
}
