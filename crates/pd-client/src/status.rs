//! [`StatusClient`]: the health checks of TiDB's, TiKV's and TiFlash's status ports, and
//! TiCDC's HTTP API (tiflow `cdc/api/v1`, `cdc/api/v2`) on its one port.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;

use crate::error::Result;
use crate::tls::TlsConfig;
use crate::transport::{Transport, WriteGate, join, parse_base};
use crate::types::{CaptureInfo, CaptureStatus, TidbServers, TidbStatus};

/// [`StatusClient::tidb_pool_state`] of a TiDB that serves its keyspace.
pub const TIDB_POOL_ACTIVATED: &str = "activated";
/// [`StatusClient::tidb_pool_state`] of a TiDB that waits for its keyspace.
pub const TIDB_POOL_STANDBY: &str = "standby";

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

    /// The same client, asking `gate` before every write ([`WriteGate`]): an online config
    /// change, an owner resignation, a drain.
    pub fn gated(mut self, gate: WriteGate) -> Self {
        self.transport = self.transport.gated(gate);
        self
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

    /// `GET {base}/info/all` of a TiDB: every TiDB server of the cluster, as it knows them.
    pub async fn tidb_servers(&self, base: &str) -> Result<TidbServers> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["info", "all"])?;
        self.transport
            .send(Method::GET, url, &[], None)
            .await?
            .json()
    }

    /// `GET {base}/tidb-pool/status` of a TiDB: `standby` while a server started in standby mode
    /// waits for its keyspace, `activated` after. A server that was not started in standby mode
    /// has no such path (404): it is activated.
    pub async fn tidb_pool_state(&self, base: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Pool {
            state: String,
        }
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["tidb-pool", "status"])?;
        match self.transport.send(Method::GET, url, &[], None).await {
            Ok(answer) => answer.json::<Pool>().map(|p| p.state),
            Err(e) if e.status() == Some(404) => Ok(TIDB_POOL_ACTIVATED.to_string()),
            Err(e) => Err(e),
        }
    }

    /// `POST {base}/tidb-pool/activate`: a standby TiDB serves `keyspace` from now on (with DDL
    /// and auto-analyze on, as the reference operator asks).
    pub async fn tidb_activate(&self, base: &str, keyspace: &str) -> Result<()> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["tidb-pool", "activate"])?;
        let body = serde_json::json!({
            "keyspace_name": keyspace,
            "run_auto_analyze": true,
            "tidb_enable_ddl": true,
        });
        self.transport
            .send(Method::POST, url, &[], Some(&body))
            .await
            .map(drop)
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

    /// `GET {base}/tiflash/store-status` of a TiFlash (`base` is its proxy status URL, e.g.
    /// "http://basic-tiflash-x.basic-tiflash-peer.db:20292"): the store's status in plain text,
    /// `Idle`, `Ready`, `Running`, `Stopping` or `Terminated`; it serves only when `Running`.
    pub async fn tiflash_store_status(&self, base: &str) -> Result<String> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["tiflash", "store-status"])?;
        Ok(self
            .transport
            .send(Method::GET, url, &[], None)
            .await?
            .text())
    }

    /// `GET {base}/ready` of a TiKV (its status URL; TiKV v9.0.0 on): `true` when it answers
    /// 200, `false` on 500 (not ready yet). Any other answer is the error, a 404 from an older
    /// TiKV included.
    pub async fn tikv_ready(&self, base: &str) -> Result<bool> {
        self.ready_at(base, &["ready"]).await
    }

    /// `GET {base}/tiflash/readyz` of a TiFlash (its proxy status URL): as
    /// [`StatusClient::tikv_ready`].
    pub async fn tiflash_readyz(&self, base: &str) -> Result<bool> {
        self.ready_at(base, &["tiflash", "readyz"]).await
    }

    async fn ready_at(&self, base: &str, path: &[&str]) -> Result<bool> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, path)?;
        match self.transport.send(Method::GET, url, &[], None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(500) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET {base}/status` of a TiCDC server: its capture ID and whether it is the owner.
    pub async fn ticdc_status(&self, base: &str) -> Result<CaptureStatus> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["status"])?;
        self.transport
            .send(Method::GET, url, &[], None)
            .await?
            .json()
    }

    /// `GET {base}/api/v2/captures`: every capture of the TiCDC cluster, as the server at
    /// `base` knows them.
    pub async fn ticdc_captures(&self, base: &str) -> Result<Vec<CaptureInfo>> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["api", "v2", "captures"])?;
        self.transport
            .send(Method::GET, url, &[], None)
            .await?
            .json()
    }

    /// `POST {base}/api/v2/owner/resign`: the owner (whichever server is asked) steps down and
    /// another capture is elected.
    pub async fn ticdc_resign_owner(&self, base: &str) -> Result<()> {
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["api", "v2", "owner", "resign"])?;
        self.transport
            .send(Method::POST, url, &[], None)
            .await
            .map(drop)
    }

    /// `PUT {base}/api/v1/captures/drain` with `{"capture_id"}`: the capture takes no new
    /// tables and hands its own to the others; answers how many it still holds.
    pub async fn ticdc_drain_capture(&self, base: &str, capture_id: &str) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Drain {
            #[serde(default)]
            current_table_count: u64,
        }
        let (_, base_url) = parse_base(base)?;
        let url = join(&base_url, &["api", "v1", "captures", "drain"])?;
        let body = serde_json::json!({ "capture_id": capture_id });
        let drain: Drain = self
            .transport
            .send(Method::PUT, url, &[], Some(&body))
            .await?
            .json()?;
        Ok(drain.current_table_count)
    }
}
