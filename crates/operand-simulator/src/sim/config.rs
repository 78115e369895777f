//! Online configuration changes: PD's `POST /pd/api/v1/config` (tikv/pd `server/api/config.go`,
//! `SetConfig` and `updateConfig`) and TiKV's `POST /config` on its status port (tikv
//! `status_server`, `update_config`). Each accepted change is recorded in the event log, so a
//! test sees which items reached which process without a restart.
//!
//! PD: the item's first segment decides (`schedule`, `replication`, `pd-server`,
//! `replication-mode.<x>`, `log.level`, `cluster-version`); anything else answers 400 `config
//! prefix … not found`. The item names inside a section are not checked (the real PD knows them;
//! the simulator does not). `replication.max-replicas` and `replication.location-labels` change
//! the replication config the rest of the simulation uses.
//!
//! TiKV: values must be booleans, numbers or strings; an item outside the modules TiKV changes
//! while it runs, or one its config marks as fixed (directories, paths, `max-open-files`,
//! `create-if-missing`, `wal-recovery-mode`), fails the whole change with 500 `failed to
//! update`, as the real status server answers a refusal of its config controller.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Component;
use super::cluster::{ApiError, ClusterState};
use super::events::EventKind;
use crate::clock::Now;

impl ClusterState {
    /// `POST /pd/api/v1/config` with dotted items. Applied item by item in key order; the first
    /// refusal answers 400 and leaves the items before it applied, as PD does.
    pub fn set_pd_config(
        &mut self,
        items: &BTreeMap<String, Value>,
        now: Now,
    ) -> Result<(), ApiError> {
        let mut applied = BTreeMap::new();
        for (key, value) in items {
            if let Err(err) = self.set_pd_item(key, value, now) {
                self.record_config(Component::Pd, None, applied, now);
                return Err(self.reject(now, "POST /config".to_owned(), err));
            }
            applied.insert(key.clone(), value.clone());
        }
        self.record_config(Component::Pd, None, applied, now);
        Ok(())
    }

    fn set_pd_item(&mut self, key: &str, value: &Value, now: Now) -> Result<(), ApiError> {
        let Some((prefix, rest)) = key.split_once('.') else {
            return Err(ApiError::new(400, format!("config item {key} not found")));
        };
        match prefix {
            "schedule" | "pd-server" => Ok(()),
            "replication" => match rest {
                "max-replicas" => {
                    let n = value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                        ApiError::new(400, format!("max-replicas should be positive, got {value}"))
                    })?;
                    self.set_replication(Some(n), None, now)
                }
                "location-labels" => {
                    let labels = value
                        .as_str()
                        .ok_or_else(|| {
                            ApiError::new(
                                400,
                                format!("location-labels must be a string, got {value}"),
                            )
                        })?
                        .split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                    self.set_replication(None, Some(labels), now)
                }
                _ => Ok(()),
            },
            "replication-mode" if !rest.is_empty() => Ok(()),
            "log" if rest != "level" => Err(ApiError::new(400, "only support changing log level")),
            "log" | "cluster-version" if value.is_string() => Ok(()),
            "log" | "cluster-version" => Err(ApiError::new(
                400,
                format!("input value {value} is illegal"),
            )),
            _ => Err(ApiError::new(
                400,
                format!("config prefix {prefix} not found"),
            )),
        }
    }

    /// `POST /config` on the status port of TiKV `instance`: all items or none.
    pub fn set_tikv_config(
        &mut self,
        instance: &str,
        items: &BTreeMap<String, Value>,
        now: Now,
    ) -> Result<(), ApiError> {
        let operation = format!("POST /config of TiKV {instance}");
        if let Some((key, _)) = items
            .iter()
            .find(|(_, v)| !(v.is_boolean() || v.is_number() || v.is_string()))
        {
            let err = ApiError::new(
                500,
                format!("failed to decode, error: {key}: value can only be bool, number or string"),
            );
            return Err(self.reject(now, operation, err));
        }
        if let Some(key) = items.keys().find(|k| !tikv_changes_online(k)) {
            let err = ApiError::new(
                500,
                format!("failed to update, error: config {key} can not be changed online"),
            );
            return Err(self.reject(now, operation, err));
        }
        self.record_config(Component::Tikv, Some(instance), items.clone(), now);
        Ok(())
    }

    fn record_config(
        &mut self,
        component: Component,
        instance: Option<&str>,
        items: BTreeMap<String, Value>,
        now: Now,
    ) {
        if items.is_empty() {
            return;
        }
        self.log(
            now,
            EventKind::ConfigChanged {
                component,
                instance: instance.map(str::to_owned),
                items,
            },
        );
    }
}

/// Whether TiKV's config controller changes `key` while it runs.
fn tikv_changes_online(key: &str) -> bool {
    let Some((module, item)) = key.split_once('.') else {
        return false;
    };
    let fixed = item.ends_with("-dir")
        || item.ends_with("-path")
        || item.ends_with("max-open-files")
        || item.ends_with("create-if-missing")
        || item.ends_with("wal-recovery-mode");
    let online = match module {
        "raftstore" | "coprocessor" | "split" | "rocksdb" | "raftdb" | "gc" | "pessimistic-txn"
        | "readpool" | "backup" | "log-backup" | "cdc" | "resolved-ts" | "quota" => true,
        "storage" => ["block-cache.", "flow-control.", "io-rate-limit."]
            .iter()
            .any(|section| item.starts_with(section)),
        "server" => matches!(
            item,
            "grpc-memory-pool-quota"
                | "max-grpc-send-msg-len"
                | "raft-msg-max-batch-size"
                | "simplify-metrics"
        ),
        "log" => item == "level",
        _ => false,
    };
    online && !fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tikv_items() {
        for key in [
            "raftstore.messages-per-tick",
            "storage.block-cache.capacity",
            "server.grpc-memory-pool-quota",
            "log.level",
        ] {
            assert!(tikv_changes_online(key), "{key}");
        }
        for key in [
            "rocksdb.max-open-files",
            "rocksdb.wal-dir",
            "raftstore.raftdb-path",
            "storage.reserve-space",
            "server.grpc-concurrency",
            "log.file.filename",
            "level",
        ] {
            assert!(!tikv_changes_online(key), "{key}");
        }
    }
}
