//! BackupSchedule: Backups made on a cron schedule and pruned by count or age, with an optional
//! log backup and compaction of its data.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::BackupSpec;
use super::common::BRConfig;
use super::compact_backup::CompactSpec;
use super::storage::StorageProvider;

/// Backups of a cluster made on a schedule.
// The printer columns repeat `type_` values, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "br.pingcap.com",
    version = "v1alpha1",
    kind = "BackupSchedule",
    namespaced,
    status = "BackupScheduleStatus",
    shortname = "bks",
    category = "br",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.schedule",
        description = "Cron schedule of the backups"
    ),
    printcolumn(
        name = "MaxBackups",
        type_ = "integer",
        json_path = ".spec.maxBackups",
        description = "How many backups are kept"
    ),
    printcolumn(
        name = "MaxReservedTime",
        type_ = "string",
        json_path = ".spec.maxReservedTime",
        description = "How long backups are kept"
    ),
    printcolumn(
        name = "LastBackup",
        type_ = "string",
        json_path = ".status.lastBackup",
        description = "Name of the last Backup",
        priority = 1
    ),
    printcolumn(
        name = "LastBackupTime",
        type_ = "date",
        json_path = ".status.lastBackupTime",
        description = "When the last Backup was created",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "BackupSchedule: backups of a TiDB cluster made on a cron schedule and pruned by count or age."
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// When to take a backup, in cron format, for example `0 2 * * *`.
    pub schedule: String,
    /// Stops making new backups while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// How many backups to keep; older ones are deleted. 0 keeps all. Ignored when
    /// `maxReservedTime` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i32>,
    /// How long to keep backups, a duration such as `72h`; older ones are deleted. Takes
    /// precedence over `maxBackups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reserved_time: Option<String>,
    /// How often the log backup data is compacted, a duration such as `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_span: Option<String>,
    /// The spec of each snapshot Backup made by the schedule.
    pub backup_template: BackupSpec,
    /// The spec of the log Backup that runs alongside the snapshots, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_backup_template: Option<BackupSpec>,
    /// The spec of the compaction of the log backup data, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_backup_template: Option<CompactSpec>,
    /// StorageClass of the scratch volumes of Backups that set none. Empty means the cluster's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of the scratch volume of each backup job, for example `100Gi`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_size: String,
    /// Secrets for pulling the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// BR settings and the cluster, for templates that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<BRConfig>,
    /// Storage for templates that set none: `s3`, `gcs`, `azblob` or `local`.
    #[serde(flatten)]
    pub storage: StorageProvider,
}

/// Observed state of a BackupSchedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// Name of the last Backup made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_backup: String,
    /// Name of the last compaction made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_compact: String,
    /// Name of the log Backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_backup: Option<String>,
    /// When the log backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_backup_start_ts: Option<Time>,
    /// When the last Backup was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Time>,
    /// End TS of the last compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_compact_ts: Option<Time>,
    /// End TS of the next compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_compact_end_ts: Option<Time>,
    /// When the data of every Backup was cleaned up, after the schedule was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_backup_clean_time: Option<Time>,
    /// Extension (not in the reference): `Ready` is `False` with the reason and message while the
    /// schedule or its templates cannot be acted on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}
