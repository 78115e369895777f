//! Single keys of PD's embedded etcd, through the JSON gateway etcd serves on PD's client URL
//! (`/v3/kv/range`, `/v3/kv/txn`): a read, and writes that happen only when the key is still as it
//! was read (compare-and-swap on its mod revision). The gateway carries keys and values in
//! base64 and 64-bit numbers as strings, and leaves out fields at their default.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::pd::PdClient;
use crate::transport::join;

/// One key's value and the revision of its last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdEntry {
    /// The value.
    pub value: Vec<u8>,
    /// The store revision of the key's last write: what [`PdClient::etcd_put_if`] and
    /// [`PdClient::etcd_delete_if`] compare against.
    pub mod_revision: i64,
}

impl PdClient {
    /// `POST /v3/kv/range`: the value of `key`, `None` when it does not exist.
    pub async fn etcd_get(&self, key: &str) -> Result<Option<EtcdEntry>> {
        let answer = self
            .etcd("range", &json!({"key": STANDARD.encode(key)}))
            .await?;
        self.first_entry(&answer)
    }

    /// `POST /v3/kv/txn`: writes `value` under `key` only if the key is as it was read: absent
    /// (`expected` is `None`) or last written at mod revision `expected`. `true` when written;
    /// `false` when someone else wrote (or removed) it first.
    pub async fn etcd_put_if(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<i64>,
    ) -> Result<bool> {
        let txn = json!({
            "compare": [unchanged(key, expected)],
            "success": [{"request_put": {"key": STANDARD.encode(key), "value": STANDARD.encode(value)}}],
        });
        Ok(succeeded(&self.etcd("txn", &txn).await?))
    }

    /// `POST /v3/kv/txn`: removes `key` only if it was last written at mod revision `expected`.
    /// `true` when removed; `false` when it changed or was removed meanwhile.
    pub async fn etcd_delete_if(&self, key: &str, expected: i64) -> Result<bool> {
        let txn = json!({
            "compare": [unchanged(key, Some(expected))],
            "success": [{"request_delete_range": {"key": STANDARD.encode(key)}}],
        });
        Ok(succeeded(&self.etcd("txn", &txn).await?))
    }

    async fn etcd(&self, op: &str, body: &Value) -> Result<Value> {
        let url = join(self.base_url(), &["v3", "kv", op])?;
        self.send_url(Method::POST, url, "etcd", &[], Some(body))
            .await?
            .json()
    }

    fn first_entry(&self, answer: &Value) -> Result<Option<EtcdEntry>> {
        let Some(kv) = answer.get("kvs").and_then(|k| k.get(0)) else {
            return Ok(None);
        };
        let malformed = |what: String| Error::Decode {
            url: format!("{}/v3/kv/range", self.base()),
            source: serde::de::Error::custom(what),
        };
        let value = match kv.get("value").and_then(Value::as_str) {
            None => Vec::new(),
            Some(text) => STANDARD
                .decode(text)
                .map_err(|e| malformed(format!("the value is not base64: {e}")))?,
        };
        let mod_revision = match kv.get("mod_revision") {
            Some(Value::String(s)) => s.parse().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| malformed(format!("no mod_revision in {kv}")))?;
        Ok(Some(EtcdEntry {
            value,
            mod_revision,
        }))
    }
}

/// The comparison that holds while `key` is as read: absent (created at revision 0) or last
/// written at `expected`.
fn unchanged(key: &str, expected: Option<i64>) -> Value {
    let key = STANDARD.encode(key);
    match expected {
        None => json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
        Some(revision) => {
            json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()})
        }
    }
}

/// etcd's gateway leaves `succeeded` out when it is false.
fn succeeded(answer: &Value) -> bool {
    answer.get("succeeded").and_then(Value::as_bool) == Some(true)
}
