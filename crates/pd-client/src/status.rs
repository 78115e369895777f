//! [`StatusClient`]: the health checks of TiDB's and TiKV's status ports.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;

use crate::error::Result;
use crate::tls::TlsConfig;
use crate::transport::{Transport, join, parse_base};
use crate::types::TidbStatus;

/// A client of TiDB and TiKV status ports; each call names the instance's status URL.
#[derive(Debug, Clone)]
pub struct StatusClient {
    transport: Transport,
}

impl StatusClient {
    /// `tls` gives the CA (and client certificate) for `https` status ports; `timeout` bounds
    /// connecting and each whole request.
    pub fn new(tls: Option<&TlsConfig>, timeout: Duration) -> Result<Self> {
        Ok(Self {
            transport: Transport::new(tls, timeout)?,
        })
    }

    /// `GET {base}/status` of a TiDB: a 2xx answer with TiDB's status JSON means it serves.
    /// `base` is the status URL, e.g. "http://basic-tidb-x.basic-tidb-peer.db:10080"; a path
    /// prefix is kept.
    pub async fn tidb_status(&self, base: &str) -> Result<TidbStatus> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["status"])?;
        self.transport
            .send(Method::GET, url, &[], None)
            .await?
            .json()
    }

    /// `GET {base}/status` of a TiKV: a 2xx answer means it serves. `base` is the status URL,
    /// e.g. "http://basic-tikv-x.basic-tikv-peer.db:20180".
    pub async fn tikv_status(&self, base: &str) -> Result<()> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["status"])?;
        self.transport
            .send(Method::GET, url, &[], None)
            .await
            .map(drop)
    }

    /// `POST {base}/config?persist=false` of a TiKV with `{"raftstore.messages-per-tick": 4096}`:
    /// changes these items online, without TiKV rewriting its config file (the file is a
    /// read-only ConfigMap that holds the new values already). Values are numbers, strings or
    /// booleans; an item TiKV cannot change online answers 400.
    pub async fn tikv_set_config(
        &self,
        base: &str,
        items: &BTreeMap<String, serde_json::Value>,
    ) -> Result<()> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["config"])?;
        let body = serde_json::json!(items);
        self.transport
            .send(Method::POST, url, &[("persist", "false")], Some(&body))
            .await
            .map(drop)
    }
}
