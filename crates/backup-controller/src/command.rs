//! BR's command lines: what the Job runs for a snapshot backup, a log backup command and a
//! restore. Pure functions of the spec, the storage and the PD address; the arguments are those
//! that follow the `br` binary.

use operator_api::br::{BRConfig, BackupSpec, BackupType, RestoreMode, RestoreSpec};
use operator_runtime::tls::{CA_KEY, CERT_KEY, KEY_KEY};

use crate::storage::Storage;
use crate::target::CLIENT_TLS_DIR;

/// What a Backup's Job asks BR to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupAction {
    /// A snapshot backup (`br backup full|db|table|raw`).
    Snapshot,
    /// Start the log backup task (`br log start`).
    LogStart,
    /// Stop and remove the log backup task (`br log stop`).
    LogStop,
    /// Pause the log backup task (`br log pause`).
    LogPause,
    /// Resume a paused log backup task (`br log resume`).
    LogResume,
    /// Delete log backup data older than a TS (`br log truncate --until`).
    LogTruncate {
        /// The TS, as a TSO or a time.
        until: String,
    },
}

impl BackupAction {
    /// Short name, used in Job names and messages: `snapshot`, `log-start`, ...
    pub fn name(&self) -> &'static str {
        match self {
            BackupAction::Snapshot => "snapshot",
            BackupAction::LogStart => "log-start",
            BackupAction::LogStop => "log-stop",
            BackupAction::LogPause => "log-pause",
            BackupAction::LogResume => "log-resume",
            BackupAction::LogTruncate { .. } => "log-truncate",
        }
    }
}

/// `--pd` and BR's global settings, in the order BR's own help lists them.
fn global(pd: &str, br: &BRConfig) -> Vec<String> {
    let mut args = vec![format!("--pd={pd}")];
    if !br.log_level.is_empty() {
        args.push(format!("--log-level={}", br.log_level));
    }
    if !br.status_addr.is_empty() {
        args.push(format!("--status-addr={}", br.status_addr));
    }
    if let Some(send) = br.send_cred_to_tikv {
        args.push(format!("--send-credentials-to-tikv={send}"));
    }
    args
}

/// Adds BR's TLS flags (the client certificate mounted at [`CLIENT_TLS_DIR`]) right after `--pd`,
/// for a Cluster with TLS between components: BR then speaks TLS to PD and TiKV.
pub fn add_tls(args: &mut Vec<String>) {
    let at = args
        .iter()
        .position(|a| a.starts_with("--pd="))
        .map_or(args.len(), |i| i + 1);
    let flags = [("ca", CA_KEY), ("cert", CERT_KEY), ("key", KEY_KEY)]
        .map(|(flag, key)| format!("--{flag}={CLIENT_TLS_DIR}/{key}"));
    args.splice(at..at, flags);
}

/// What a snapshot covers: table filters, else the deprecated `db`/`table`. Checks that `db` and
/// `table` types name what they cover.
fn coverage(
    type_: BackupType,
    br: &BRConfig,
    table_filter: &[String],
) -> Result<Vec<String>, String> {
    if !table_filter.is_empty() {
        return Ok(table_filter
            .iter()
            .map(|f| format!("--filter={f}"))
            .collect());
    }
    let mut args = Vec::new();
    match type_ {
        BackupType::Db => {
            if br.db.is_empty() {
                return Err("backupType db needs tableFilter or br.db".into());
            }
            args.push(format!("--db={}", br.db));
        }
        BackupType::Table => {
            if br.db.is_empty() || br.table.is_empty() {
                return Err("backupType table needs tableFilter or br.db and br.table".into());
            }
            args.push(format!("--db={}", br.db));
            args.push(format!("--table={}", br.table));
        }
        _ => {}
    }
    Ok(args)
}

/// Tuning flags every command takes, then the user's own options (last, so they win).
fn tuning(br: &BRConfig, with_time_ago: bool) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = br.concurrency {
        args.push(format!("--concurrency={c}"));
    }
    if let Some(r) = br.rate_limit {
        args.push(format!("--ratelimit={r}"));
    }
    if with_time_ago && !br.time_ago.is_empty() {
        args.push(format!("--timeago={}", br.time_ago));
    }
    if let Some(c) = br.checksum {
        args.push(format!("--checksum={c}"));
    }
    if let Some(c) = br.check_requirements {
        args.push(format!("--check-requirements={c}"));
    }
    args.extend(br.options.iter().cloned());
    args
}

fn type_name(type_: BackupType) -> &'static str {
    match type_ {
        BackupType::Full => "full",
        BackupType::Raw => "raw",
        BackupType::Db => "db",
        BackupType::Table => "table",
        BackupType::TiFlashReplica => "tiflash-replica",
    }
}

/// BR's arguments for one action of a Backup named `name`.
pub fn backup(
    name: &str,
    spec: &BackupSpec,
    br: &BRConfig,
    storage: &Storage<'_>,
    pd: &str,
    action: &BackupAction,
) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = Vec::new();
    match action {
        BackupAction::Snapshot => {
            let type_ = spec.type_.unwrap_or(BackupType::Full);
            if type_ == BackupType::TiFlashReplica {
                return Err("backupType tiflash-replica is for restores only".into());
            }
            args.extend(["backup".to_string(), type_name(type_).to_string()]);
            args.extend(global(pd, br));
            args.extend(storage.args());
            args.extend(coverage(type_, br, &spec.table_filter)?);
            if !spec.commit_ts.is_empty() {
                args.push(format!("--backupts={}", spec.commit_ts));
            }
            args.extend(tuning(br, true));
        }
        BackupAction::LogStart => {
            args.extend(["log", "start"].map(String::from));
            args.push(format!("--task-name={name}"));
            args.extend(global(pd, br));
            args.extend(storage.args());
            if !spec.commit_ts.is_empty() && spec.commit_ts != "0" {
                args.push(format!("--start-ts={}", spec.commit_ts));
            }
            args.extend(tuning(br, false));
        }
        BackupAction::LogStop | BackupAction::LogPause | BackupAction::LogResume => {
            let verb = match action {
                BackupAction::LogStop => "stop",
                BackupAction::LogPause => "pause",
                _ => "resume",
            };
            args.extend(["log".to_string(), verb.to_string()]);
            args.push(format!("--task-name={name}"));
            args.extend(global(pd, br));
            args.extend(storage.args());
            args.extend(tuning(br, false));
        }
        BackupAction::LogTruncate { until } => {
            if until.is_empty() || until == "0" {
                return Err(format!("logTruncateUntil {until:?} is not a TS"));
            }
            args.extend(["log", "truncate"].map(String::from));
            args.push(format!("--until={until}"));
            // BR asks for confirmation before deleting; nobody is there to answer in a Job.
            args.push("--yes".to_string());
            args.extend(global(pd, br));
            args.extend(storage.args());
            args.extend(tuning(br, false));
        }
    }
    Ok(args)
}

/// BR's arguments for a restore. `full_backup` is the snapshot a point-in-time restore starts
/// from.
pub fn restore(
    spec: &RestoreSpec,
    br: &BRConfig,
    storage: &Storage<'_>,
    full_backup: Option<&Storage<'_>>,
    pd: &str,
) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = Vec::new();
    match spec.mode.unwrap_or_default() {
        RestoreMode::Snapshot => {
            let type_ = spec.type_.unwrap_or(BackupType::Full);
            args.extend(["restore".to_string(), type_name(type_).to_string()]);
            args.extend(global(pd, br));
            args.extend(storage.args());
            args.extend(coverage(type_, br, &spec.table_filter)?);
        }
        RestoreMode::Pitr => {
            args.extend(["restore", "point"].map(String::from));
            args.extend(global(pd, br));
            args.extend(storage.args());
            if let Some(full) = full_backup {
                args.push(format!("--full-backup-storage={}", full.uri()));
            }
            if !spec.pitr_restored_ts.is_empty() {
                args.push(format!("--restored-ts={}", spec.pitr_restored_ts));
            }
            if !spec.log_restore_start_ts.is_empty() {
                args.push(format!("--start-ts={}", spec.log_restore_start_ts));
            }
            args.extend(spec.table_filter.iter().map(|f| format!("--filter={f}")));
        }
    }
    if br.on_line == Some(true) {
        args.push("--online=true".to_string());
    }
    args.extend(tuning(br, false));
    Ok(args)
}

#[cfg(test)]
mod tests {
    use operator_api::br::StorageProvider;
    use serde_json::json;

    use super::*;

    fn s3() -> StorageProvider {
        serde_json::from_value(json!({"s3": {
            "provider": "ceph", "bucket": "backups", "prefix": "b1",
            "endpoint": "http://minio.storage:9000", "secretName": "s3-secret"
        }}))
        .unwrap()
    }

    fn spec(value: serde_json::Value) -> BackupSpec {
        serde_json::from_value(value).unwrap()
    }

    fn br(value: serde_json::Value) -> BRConfig {
        serde_json::from_value(value).unwrap()
    }

    const PD: &str = "basic-pd.db:2379";

    #[test]
    fn full_snapshot_backup_to_s3() {
        let provider = s3();
        let storage = Storage::of(&provider).unwrap();
        let br = br(
            json!({"cluster": "basic", "sendCredToTikv": true, "concurrency": 4,
            "rateLimit": 64, "checksum": true, "options": ["--ignore-stats=true"]}),
        );
        let args = backup(
            "b1",
            &spec(json!({})),
            &br,
            &storage,
            PD,
            &BackupAction::Snapshot,
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "backup",
                "full",
                "--pd=basic-pd.db:2379",
                "--send-credentials-to-tikv=true",
                "--storage=s3://backups/b1",
                "--s3.provider=ceph",
                "--s3.endpoint=http://minio.storage:9000",
                "--concurrency=4",
                "--ratelimit=64",
                "--checksum=true",
                "--ignore-stats=true",
            ]
        );
    }

    #[test]
    fn db_and_table_backups_name_what_they_cover() {
        let provider = s3();
        let storage = Storage::of(&provider).unwrap();
        let db = backup(
            "b",
            &spec(json!({"backupType": "db"})),
            &br(json!({"cluster": "c", "db": "shop"})),
            &storage,
            PD,
            &BackupAction::Snapshot,
        )
        .unwrap();
        assert_eq!(&db[..2], ["backup", "db"]);
        assert!(db.contains(&"--db=shop".to_string()));

        let table = backup(
            "b",
            &spec(json!({"backupType": "table", "commitTs": "400036290571534337"})),
            &br(json!({"cluster": "c", "db": "shop", "table": "orders", "timeAgo": "1m"})),
            &storage,
            PD,
            &BackupAction::Snapshot,
        )
        .unwrap();
        assert_eq!(&table[..2], ["backup", "table"]);
        for want in [
            "--db=shop",
            "--table=orders",
            "--backupts=400036290571534337",
            "--timeago=1m",
        ] {
            assert!(table.contains(&want.to_string()), "{want} in {table:?}");
        }

        // Table filters take precedence over db/table.
        let filtered = backup(
            "b",
            &spec(json!({"backupType": "db", "tableFilter": ["shop.*", "!shop.tmp"]})),
            &br(json!({"cluster": "c", "db": "ignored"})),
            &storage,
            PD,
            &BackupAction::Snapshot,
        )
        .unwrap();
        assert!(filtered.contains(&"--filter=shop.*".to_string()));
        assert!(filtered.contains(&"--filter=!shop.tmp".to_string()));
        assert!(!filtered.iter().any(|a| a.starts_with("--db")));

        let missing = backup(
            "b",
            &spec(json!({"backupType": "table"})),
            &br(json!({"cluster": "c", "db": "shop"})),
            &storage,
            PD,
            &BackupAction::Snapshot,
        );
        assert!(missing.unwrap_err().contains("br.table"));
    }

    #[test]
    fn log_backup_commands() {
        let provider = s3();
        let storage = Storage::of(&provider).unwrap();
        let br = br(json!({"cluster": "basic"}));
        let log = spec(json!({"backupMode": "log", "commitTs": "433333"}));
        let start = backup("log1", &log, &br, &storage, PD, &BackupAction::LogStart).unwrap();
        assert_eq!(
            start,
            [
                "log",
                "start",
                "--task-name=log1",
                "--pd=basic-pd.db:2379",
                "--storage=s3://backups/b1",
                "--s3.provider=ceph",
                "--s3.endpoint=http://minio.storage:9000",
                "--start-ts=433333",
            ]
        );
        let stop = backup("log1", &log, &br, &storage, PD, &BackupAction::LogStop).unwrap();
        assert_eq!(&stop[..3], ["log", "stop", "--task-name=log1"]);
        let pause = backup("log1", &log, &br, &storage, PD, &BackupAction::LogPause).unwrap();
        assert_eq!(&pause[..2], ["log", "pause"]);
        let resume = backup("log1", &log, &br, &storage, PD, &BackupAction::LogResume).unwrap();
        assert_eq!(&resume[..2], ["log", "resume"]);
        let truncate = backup(
            "log1",
            &log,
            &br,
            &storage,
            PD,
            &BackupAction::LogTruncate {
                until: "2024-01-02 03:04:05".into(),
            },
        )
        .unwrap();
        assert_eq!(
            &truncate[..4],
            ["log", "truncate", "--until=2024-01-02 03:04:05", "--yes"]
        );
        assert!(
            backup(
                "log1",
                &log,
                &br,
                &storage,
                PD,
                &BackupAction::LogTruncate { until: "0".into() }
            )
            .is_err()
        );
    }

    #[test]
    fn snapshot_and_point_in_time_restores() {
        let provider = s3();
        let storage = Storage::of(&provider).unwrap();
        let br = br(json!({"cluster": "basic", "checkRequirements": false}));
        let snapshot: RestoreSpec =
            serde_json::from_value(json!({"br": {"cluster": "basic"}})).unwrap();
        assert_eq!(
            restore(&snapshot, &br, &storage, None, PD).unwrap(),
            [
                "restore",
                "full",
                "--pd=basic-pd.db:2379",
                "--storage=s3://backups/b1",
                "--s3.provider=ceph",
                "--s3.endpoint=http://minio.storage:9000",
                "--check-requirements=false",
            ]
        );

        let full: StorageProvider = serde_json::from_value(json!({"s3": {
            "provider": "ceph", "bucket": "backups", "prefix": "snap"}}))
        .unwrap();
        let full = Storage::of(&full).unwrap();
        let pitr: RestoreSpec = serde_json::from_value(json!({
            "restoreMode": "pitr", "pitrRestoredTs": "2024-01-02 03:04:05+0000"
        }))
        .unwrap();
        let args = restore(&pitr, &br, &storage, Some(&full), PD).unwrap();
        assert_eq!(&args[..2], ["restore", "point"]);
        assert!(args.contains(&"--full-backup-storage=s3://backups/snap".to_string()));
        assert!(args.contains(&"--restored-ts=2024-01-02 03:04:05+0000".to_string()));
    }

    #[test]
    fn tls_flags_follow_pd() {
        let mut args = vec![
            "backup".into(),
            "full".into(),
            format!("--pd={PD}"),
            "--storage=s3://b/p".into(),
        ];
        add_tls(&mut args);
        assert_eq!(
            args,
            [
                "backup",
                "full",
                "--pd=basic-pd.db:2379",
                "--ca=/var/lib/cluster-client-tls/ca.crt",
                "--cert=/var/lib/cluster-client-tls/tls.crt",
                "--key=/var/lib/cluster-client-tls/tls.key",
                "--storage=s3://b/p",
            ]
        );
    }
}
