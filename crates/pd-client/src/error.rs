//! The error of every call this crate makes, with the URL it concerns.

/// What went wrong talking to PD, TiDB or TiKV.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or its answer not read: connection refused, DNS failure,
    /// TLS handshake failure, timeout.
    #[error("request to {url} failed: {}", chain(source))]
    Request {
        /// The URL requested.
        url: String,
        /// What the HTTP client reported.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status outside 2xx.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body (at most [`MAX_ERROR_BODY_CHARS`] characters).
        body: String,
    },
    /// The answer was not the JSON this crate expects.
    #[error("cannot decode the answer of {url}: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// What the JSON decoder reported.
        #[source]
        source: serde_json::Error,
    },
    /// A write not sent: the client's [`WriteGate`](crate::WriteGate) refused it (the
    /// controller replica's leadership may have ended).
    #[error("{url} not asked: this replica's leadership may have ended")]
    Fenced {
        /// The URL that would have been requested.
        url: String,
    },
    /// PD answered, but reports no leader (it is electing one).
    #[error("{url} reports no PD leader")]
    NoLeader {
        /// The URL requested.
        url: String,
    },
    /// The TLS material could not be used: a CA bundle, certificate or key that does not parse,
    /// or a certificate without its key.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// A base URL that is not an absolute `http` or `https` URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {}", chain(source))]
    Client {
        /// What the HTTP client reported.
        #[source]
        source: reqwest::Error,
    },
}

/// How many characters of a non-2xx answer's body [`Error::Status`] keeps.
pub const MAX_ERROR_BODY_CHARS: usize = 512;

/// The result of every call of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The server could not be reached: the connection failed or the request timed out.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Request { source, .. } => source.is_connect() || source.is_timeout(),
            _ => false,
        }
    }

    /// The request timed out (connecting, or waiting for the answer).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Request { source, .. } if source.is_timeout())
    }

    /// The HTTP status of a non-2xx answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The messages of an error and of all its causes, joined by ": ". The HTTP client's own
/// message ("error sending request") says little; the cause ("connection refused") is what an
/// operator needs to read.
fn chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = current.source();
    }
    message
}

/// `body` cut to at most [`MAX_ERROR_BODY_CHARS`] characters, on a character boundary, with
/// surrounding whitespace removed.
pub(crate) fn truncate_body(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(MAX_ERROR_BODY_CHARS) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bodies_are_kept_whole() {
        assert_eq!(
            truncate_body("  \"not found, pd: x\"\n"),
            "\"not found, pd: x\""
        );
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let body = "é".repeat(MAX_ERROR_BODY_CHARS + 10);
        let cut = truncate_body(&body);
        assert_eq!(cut.chars().count(), MAX_ERROR_BODY_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn status_errors_know_their_code() {
        let error = Error::Status {
            url: "http://pd:2379/pd/api/v1/store/9".into(),
            status: 404,
            body: "store 9 not found".into(),
        };
        assert!(error.is_not_found());
        assert!(!error.is_unreachable());
        assert_eq!(error.status(), Some(404));
        assert_eq!(
            error.to_string(),
            "http://pd:2379/pd/api/v1/store/9 answered HTTP 404: store 9 not found"
        );
    }
}
