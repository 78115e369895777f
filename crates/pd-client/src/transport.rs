//! The HTTP plumbing PD and the status ports share: one client, URL joining, status checks,
//! JSON decoding and debug logging.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, truncate_body};
use crate::tls::{TlsConfig, client_config};

/// Asked before every request that changes something (any method but GET): `false` refuses it
/// unsent, with [`Error::Fenced`]. A controller replica gives its leadership here, so a replica
/// whose leadership may have ended changes nothing in PD, TiKV or TiCDC.
pub type WriteGate = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Default)]
struct Gate(Option<WriteGate>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Gate" } else { "None" })
    }
}

/// A `reqwest` client whose every request has the same timeout, TLS configuration and write
/// gate.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    gate: Gate,
}

/// A 2xx answer, read whole.
pub(crate) struct Reply {
    url: String,
    body: Vec<u8>,
}

impl Reply {
    /// The body decoded as JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            url: self.url.clone(),
            source,
        })
    }

    /// The body as text, lossily decoded and trimmed (an answer in plain text).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

impl Transport {
    /// A client with `timeout` on connecting and on each whole request.
    pub(crate) fn new(tls: Option<&TlsConfig>, timeout: Duration) -> Result<Self> {
        let config = client_config(tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(timeout)
            .connect_timeout(timeout)
            // The operator talks to cluster-internal endpoints: a proxy from the environment
            // would only get in the way.
            .no_proxy()
            .build()
            .map_err(|source| Error::Client { source })?;
        Ok(Self {
            http,
            gate: Gate::default(),
        })
    }

    /// The same transport, asking `gate` before every write ([`WriteGate`]).
    pub(crate) fn gated(mut self, gate: WriteGate) -> Self {
        self.gate = Gate(Some(gate));
        self
    }

    /// [`Error::Fenced`] for a write to `url` the gate refuses now.
    fn check_gate(&self, method: &Method, url: &Url) -> Result<()> {
        match &self.gate.0 {
            Some(gate) if *method != Method::GET && !gate() => Err(Error::Fenced {
                url: url.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Sends one request; a non-2xx answer becomes [`Error::Status`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply> {
        self.check_gate(&method, &url)?;
        let mut shown = url.clone();
        if !query.is_empty() {
            shown.query_pairs_mut().extend_pairs(query);
        }
        let shown = shown.to_string();
        let started = Instant::now();

        let mut request = self.http.request(method.clone(), url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let failed = |source: reqwest::Error| Error::Request {
            url: shown.clone(),
            source: source.without_url(),
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        tracing::debug!(
            %method,
            url = %shown,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "HTTP request"
        );

        if !status.is_success() {
            return Err(Error::Status {
                url: shown,
                status: status.as_u16(),
                body: truncate_body(&String::from_utf8_lossy(&bytes)),
            });
        }
        Ok(Reply {
            url: shown,
            body: bytes.to_vec(),
        })
    }
}

/// Parses a base URL: absolute, `http` or `https`, without query or fragment. A trailing `/` is
/// dropped, so that paths appended to it keep any prefix it has.
pub(crate) fn parse_base(base: &str) -> Result<(String, Url)> {
    let trimmed = base.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| Error::InvalidUrl(format!("{base:?}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidUrl(format!(
            "{base:?}: the scheme must be http or https"
        )));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::InvalidUrl(format!("{base:?}: no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidUrl(format!(
            "{base:?}: a base URL has no query or fragment"
        )));
    }
    Ok((trimmed.to_owned(), url))
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::InvalidUrl(format!("{base}: cannot append a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_keeps_the_base_path_prefix() -> Result<()> {
        let (base, url) = parse_base("http://127.0.0.1:7777/clusters/db/basic/")?;
        assert_eq!(base, "http://127.0.0.1:7777/clusters/db/basic");
        let joined = join(&url, &["pd", "api", "v1", "members"])?;
        assert_eq!(
            joined.as_str(),
            "http://127.0.0.1:7777/clusters/db/basic/pd/api/v1/members"
        );
        Ok(())
    }

    #[test]
    fn joining_onto_a_bare_host() -> Result<()> {
        let (base, url) = parse_base("https://basic-pd.db:2379")?;
        assert_eq!(base, "https://basic-pd.db:2379");
        assert_eq!(
            join(&url, &["pd", "api", "v1", "health"])?.as_str(),
            "https://basic-pd.db:2379/pd/api/v1/health"
        );
        Ok(())
    }

    #[test]
    fn segments_are_encoded() -> Result<()> {
        let (_, url) = parse_base("http://pd:2379")?;
        let joined = join(&url, &["members", "name", "a/b c"])?;
        assert_eq!(joined.as_str(), "http://pd:2379/members/name/a%2Fb%20c");
        Ok(())
    }

    #[test]
    fn bad_bases_are_refused() {
        for base in [
            "basic-pd:2379",
            "ftp://pd:2379",
            "http://pd:2379/?a=b",
            "not a url",
            "",
        ] {
            assert!(
                matches!(parse_base(base), Err(Error::InvalidUrl(_))),
                "{base:?} should be refused"
            );
        }
    }
}
