//! `br.pingcap.com/v1alpha1`: Backup, Restore, BackupSchedule and CompactBackup, the backup and
//! restore kinds.
//!
//! Every field of tidb-operator v2's Backup, Restore, BackupSchedule and CompactBackup is here,
//! with v2's names, JSON shapes, defaults and CEL rules. Left out are the fields that early v2
//! snapshots carried over from v1 and v2 has since dropped: EBS volume-snapshot backup and restore
//! (`backupMode`/`restoreMode: volume-snapshot`, `calcSizeLevel`, `federalVolumeBackupPhase`,
//! `resumeGcSchedule`, `federalVolumeRestorePhase`, `volumeAZ`, `warmup`, `warmupImage`,
//! `warmupStrategy`, `incrementalBackupSize`), Dumpling (`dumpling`) and direct TiDB access
//! (`from`, `to`).

mod backup;
mod backup_schedule;
mod common;
mod compact_backup;
mod restore;
mod storage;

pub use backup::*;
pub use backup_schedule::*;
pub use common::*;
pub use compact_backup::*;
pub use restore::*;
pub use storage::*;

/// API group of the backup and restore kinds.
pub const GROUP: &str = "br.pingcap.com";
/// API version of the backup and restore kinds.
pub const VERSION: &str = "v1alpha1";

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use super::{Backup, BackupSchedule, CompactBackup, Restore};

    fn roundtrip<T: Serialize + DeserializeOwned>(doc: &Value) -> Value {
        let typed: T = serde_json::from_value(doc.clone()).unwrap();
        serde_json::to_value(typed).unwrap()
    }

    /// Every fixture under tests/fixtures/br reads into its type and writes back unchanged.
    #[test]
    fn fixtures_roundtrip() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/br");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for de in serde_yaml::Deserializer::from_str(&text) {
                let doc = Value::deserialize(de).unwrap();
                let back = match doc["kind"].as_str() {
                    Some("Backup") => roundtrip::<Backup>(&doc),
                    Some("Restore") => roundtrip::<Restore>(&doc),
                    Some("BackupSchedule") => roundtrip::<BackupSchedule>(&doc),
                    Some("CompactBackup") => roundtrip::<CompactBackup>(&doc),
                    other => panic!("{}: unexpected kind {other:?}", path.display()),
                };
                assert_eq!(back, doc, "{} does not round-trip", path.display());
                count += 1;
            }
        }
        assert!(count >= 10, "only {count} fixtures found");
    }

    /// The reference's BR integers are Go `int`, `uint` and `uint64`, and the API server does not
    /// enforce a width: a value past 32 bits must still read, or one object would stop the watch
    /// of its whole kind.
    #[test]
    fn integers_wider_than_32_bits_read() {
        let big = 5_000_000_000_i64;
        let backup: Backup = serde_json::from_value(serde_json::json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b"},
            "spec": {
                "br": {"cluster": "c", "rateLimit": big, "concurrency": big},
                "cleanOption": {"retryCount": big, "batchConcurrency": big, "routineConcurrency": big},
                "backoffRetryPolicy": {"maxRetryTimes": big},
                "volumeBackupInitJobMaxActiveSeconds": big
            }
        }))
        .unwrap();
        assert_eq!(backup.spec.br.and_then(|b| b.rate_limit), Some(big));
        let compact: CompactBackup = serde_json::from_value(serde_json::json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "CompactBackup",
            "metadata": {"name": "c"},
            "spec": {"concurrency": big, "maxRetryTimes": big}
        }))
        .unwrap();
        assert_eq!(compact.spec.concurrency, Some(big));
    }
}
