//! The reconcile error of the backup controllers, with a short category for the error metric.

use operator_runtime::reconcile::Categorized;

/// Why a reconcile of a Backup, Restore or BackupSchedule failed; the controller logs it and
/// retries. Problems with the spec are not errors: they are conditions or Events on the object.
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
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::Invalid(_) => "invalid",
        }
    }
}
