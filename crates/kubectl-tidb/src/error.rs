//! The plugin's errors and the exit code each one gives, so scripts can tell them apart.

use std::fmt;

/// Exit code: success (and, for `status`, a healthy cluster).
pub const EXIT_OK: i32 = 0;
/// Exit code: an error (API unreachable, object not found, file not writable).
pub const EXIT_ERROR: i32 = 1;
/// Exit code: the command line is wrong (clap uses it too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `status` and `watch --until-settled`: the cluster is not healthy / not settled.
pub const EXIT_NOT_HEALTHY: i32 = 3;
/// Exit code: the API server refused a change (forbidden by RBAC, or invalid).
pub const EXIT_REFUSED: i32 = 4;

/// What went wrong, with what the plugin was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// An object the command needs does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The API server refused a change: RBAC forbids it (403) or it is invalid (422, 400).
    #[error("{doing}: refused by the API server ({code} {reason}): {message}")]
    Refused {
        /// What the plugin was doing.
        doing: String,
        /// HTTP status code.
        code: u16,
        /// The API's reason, for example `Forbidden` or `Invalid`.
        reason: String,
        /// The API's message, naming the rule or the missing permission.
        message: String,
    },
    /// Any other API failure.
    #[error("{doing}: {source}")]
    Api {
        /// What the plugin was doing.
        doing: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
    /// A local file could not be written.
    #[error("{doing}: {source}")]
    Io {
        /// What the plugin was doing.
        doing: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Output could not be encoded.
    #[error("encoding the output: {0}")]
    Encode(String),
}

impl Error {
    /// An API error while `doing` something: a refusal (403, 422, 400, 409) is told apart.
    pub fn api(doing: impl fmt::Display) -> impl FnOnce(kube::Error) -> Error {
        let doing = doing.to_string();
        move |source| match source {
            kube::Error::Api(status) if matches!(status.code, 400 | 403 | 409 | 422) => {
                Error::Refused {
                    doing,
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                }
            }
            source => Error::Api { doing, source },
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Refused { .. } => EXIT_REFUSED,
            _ => EXIT_ERROR,
        }
    }
}

/// The plugin's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: "not allowed".into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn refusals_get_their_own_exit_code_and_other_api_errors_do_not() {
        let forbidden = Error::api("patching PDGroup pd")(status(403, "Forbidden"));
        assert_eq!(forbidden.exit_code(), EXIT_REFUSED);
        assert_eq!(
            forbidden.to_string(),
            "patching PDGroup pd: refused by the API server (403 Forbidden): not allowed"
        );
        let invalid = Error::api("x")(status(422, "Invalid"));
        assert_eq!(invalid.exit_code(), EXIT_REFUSED);
        let unavailable = Error::api("x")(status(503, "ServiceUnavailable"));
        assert_eq!(unavailable.exit_code(), EXIT_ERROR);
        assert_eq!(Error::Usage("bad".into()).exit_code(), EXIT_USAGE);
    }
}
