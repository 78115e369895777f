//! Which TiKV config items change online (`POST /config` on the status port) and how their values
//! are sent.

use operator_runtime::online_config::{key_matches, scalar};
use serde_json::Value;

/// The modules TiKV's config controller changes while it runs, and the single items of
/// modules it otherwise reads only at start (`server`, `storage`, `log`).
const ONLINE: &[&str] = &[
    "raftstore.",
    "coprocessor.",
    "split.",
    "rocksdb.",
    "raftdb.",
    "gc.",
    "pessimistic-txn.",
    "readpool.",
    "backup.",
    "log-backup.",
    "cdc.",
    "resolved-ts.",
    "quota.",
    "storage.block-cache.",
    "storage.flow-control.",
    "storage.io-rate-limit.",
    "server.grpc-memory-pool-quota",
    "server.max-grpc-send-msg-len",
    "server.raft-msg-max-batch-size",
    "server.simplify-metrics",
    "log.level",
];

/// The value to send for `key`, or `None` when the key needs a restart. TiKV takes numbers,
/// strings and booleans only; a directory or path never changes online. An item of an online
/// module that TiKV still refuses answers 400, and the instance restarts for it.
pub fn value(key: &str, value: &toml::Value) -> Option<Value> {
    if !key_matches(key, ONLINE) || key.ends_with("-dir") || key.ends_with("-path") {
        return None;
    }
    scalar(value)
}

/// TiKV's status server answers a change its config controller refuses with 500 `failed to
/// update, error: …` (and a value it cannot read with `failed to decode`): a refusal, not an
/// outage. Any other error is no answer about the change.
pub fn refused(error: &pd_client::Error) -> bool {
    match error {
        pd_client::Error::Status { status: 400, .. } => true,
        pd_client::Error::Status {
            status: 500, body, ..
        } => body.contains("failed to update") || body.contains("failed to decode"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_items_and_their_values() {
        let cases: &[(&str, toml::Value, Option<Value>)] = &[
            (
                "raftstore.messages-per-tick",
                4096.into(),
                Some(4096.into()),
            ),
            ("raftstore.raftdb-path", "/x".into(), None),
            ("rocksdb.wal-dir", "/x".into(), None),
            (
                "storage.block-cache.capacity",
                "4GiB".into(),
                Some("4GiB".into()),
            ),
            ("storage.reserve-space", "1GiB".into(), None),
            ("server.grpc-concurrency", 8.into(), None),
            ("log.level", "warn".into(), Some("warn".into())),
            ("split.qps-threshold", 1000.into(), Some(1000.into())),
            (
                "rocksdb.defaultcf.compression-per-level",
                toml::Value::Array(vec!["no".into()]),
                None,
            ),
        ];
        for (key, input, want) in cases {
            assert_eq!(&value(key, input), want, "{key}");
        }
    }

    #[test]
    fn refusals_are_told_from_outages() {
        let status = |status, body: &str| pd_client::Error::Status {
            url: "http://tikv-0:20180/config".into(),
            status,
            body: body.into(),
        };
        assert!(refused(&status(
            500,
            "failed to update, error: not allowed"
        )));
        assert!(refused(&status(400, "bad")));
        assert!(!refused(&status(500, "internal")));
        assert!(!refused(&status(503, "failed to update")));
        assert!(!refused(&pd_client::Error::NoLeader { url: "x".into() }));
    }
}
