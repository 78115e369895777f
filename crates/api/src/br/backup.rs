//! Backup: a snapshot backup, or the control of a log backup task, of one cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{
    BRConfig, BackoffRetryPolicy, BackoffRetryRecord, BackupType, CleanOption, CleanPolicy,
    Progress, is_zero_i64,
};
use super::storage::StorageProvider;

/// A backup of a cluster: a snapshot (full, one database or one table) or a log backup task that
/// is started, paused, stopped or truncated through `logSubcommand` and `logTruncateUntil`.
// The printer columns repeat `type_` values, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "br.pingcap.com",
    version = "v1alpha1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    shortname = "bk",
    category = "br",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.backupType",
        description = "What a snapshot backup covers: full, db or table"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.backupMode",
        description = "snapshot or log"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Phase of the backup"
    ),
    printcolumn(
        name = "BackupPath",
        type_ = "string",
        json_path = ".status.backupPath",
        description = "Where the backup data is"
    ),
    printcolumn(
        name = "BackupSize",
        type_ = "string",
        json_path = ".status.backupSizeReadable",
        description = "Size of the backup data"
    ),
    printcolumn(
        name = "CommitTS",
        type_ = "string",
        json_path = ".status.commitTs",
        description = "Snapshot TS of a snapshot backup, start TS of a log backup"
    ),
    printcolumn(
        name = "LogTruncateUntil",
        type_ = "string",
        json_path = ".status.logSuccessTruncateUntil",
        description = "TS up to which the log backup has been truncated"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.timeStarted",
        description = "When the backup started",
        priority = 1
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.timeCompleted",
        description = "When the backup completed",
        priority = 1
    ),
    printcolumn(
        name = "TimeTaken",
        type_ = "string",
        json_path = ".status.timeTaken",
        description = "How long the backup took"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "Backup: a snapshot backup of a TiDB cluster, or the control of its log backup task."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.logSubcommand) ? !has(self.logStop) : true").message("Field `logStop` is the old version field, please use `logSubcommand` instead"),
    validation = Rule::new("has(self.logStop) ? !has(self.logSubcommand) : true").message("Field `logStop` is the old version field, please use `logSubcommand` instead")
)]
pub struct BackupSpec {
    /// CPU and memory of the backup job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Environment variables of the backup job's container. They override the variables the
    /// operator sets for the storage (for example `AWS_REGION` or `GCS_PROJECT_ID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// What a snapshot backup covers: `full`, `db` or `table` (with `tableFilter`), `raw`.
    #[serde(
        rename = "backupType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<BackupType>,
    /// `snapshot` (the default) for a consistent copy at one point in time, or `log` for a
    /// continuous log backup.
    #[serde(
        rename = "backupMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = "snapshot"))]
    pub mode: Option<BackupMode>,
    /// GC life time kept on TiKV while the backup runs, a duration such as `72h`.
    #[serde(
        rename = "tikvGCLifeTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tikv_gc_life_time: Option<String>,
    /// Where the data goes: `s3`, `gcs`, `azblob` or `local`. Only a Backup made by a
    /// BackupSchedule may leave it to the schedule.
    #[serde(flatten)]
    pub storage: StorageProvider,
    /// StorageClass of the scratch volume of the backup job. Empty means the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of the scratch volume of the backup job, for example `100Gi`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_size: String,
    /// BR settings and the cluster to back up. Only a Backup made by a BackupSchedule may leave
    /// it to the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<BRConfig>,
    /// Snapshot TS of a snapshot backup or start TS of a log backup, as a TSO
    /// (`400036290571534337`) or a time (`2018-05-11 01:42:23`). Empty means now.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_ts: String,
    /// What to do with the log backup task: `log-start`, `log-pause`, `log-resume`, `log-stop`,
    /// or `log-truncate` (with `logTruncateUntil`). `log-resume` and `log-truncate` keep the task
    /// running as `log-start` does; truncation follows `logTruncateUntil` whatever the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "log_subcommand_schema")]
    pub log_subcommand: Option<LogSubCommandType>,
    /// Delete log backup data older than this TS, as a TSO or a time (`2018-05-11 01:42:23`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_truncate_until: String,
    /// Stops the log backup task. Deprecated: use `logSubcommand: log-stop`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_stop: bool,
    /// Tolerations of the backup job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Image of BR, for example `pingcap/br:v8.5.0`. Without a tag, the cluster's TiKV version is
    /// the tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_image: String,
    /// Secrets for pulling the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Table filters (`db.table` patterns, for example `db1.*`) of what to back up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_filter: Vec<String>,
    /// Affinity of the backup job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Whether the storage secrets are encrypted with AWS KMS and must be decrypted first.
    #[serde(rename = "useKMS", default, skip_serializing_if = "std::ops::Not::not")]
    pub use_kms: bool,
    /// ServiceAccount of the backup job's Pod, for example one bound to a cloud identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// What happens to the data when this Backup is deleted: `Retain` (the default), `OnFailure`
    /// or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Retain"))]
    pub clean_policy: Option<CleanPolicy>,
    /// How the data is deleted when the clean policy says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_option: Option<CleanOption>,
    /// Security context of the backup job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// PriorityClass of the backup job's Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// Retries of a failed snapshot backup job.
    #[serde(default, skip_serializing_if = "BackoffRetryPolicy::is_empty")]
    pub backoff_retry_policy: BackoffRetryPolicy,
    /// Extra volumes of the backup job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volumes: Vec<Volume>,
    /// Where the extra volumes are mounted in the backup job's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volume_mounts: Vec<VolumeMount>,
    /// Deadline in seconds of the initialising job of a volume backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 600))]
    pub volume_backup_init_job_max_active_seconds: Option<i64>,
}

/// How a backup is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupMode {
    /// A consistent copy of the data at one TS.
    #[default]
    #[serde(rename = "snapshot")]
    Snapshot,
    /// A continuous backup of the change log, for point-in-time recovery.
    #[serde(rename = "log")]
    Log,
}

/// A command of a log backup task. The spec accepts `log-start`, `log-stop`, `log-pause`,
/// `log-resume` and `log-truncate`; status also records `log-unknown`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum LogSubCommandType {
    /// Start (or resume) the log backup task.
    #[serde(rename = "log-start")]
    LogStart,
    /// Delete log data older than `logTruncateUntil`.
    #[serde(rename = "log-truncate")]
    LogTruncate,
    /// Stop the task and remove it.
    #[serde(rename = "log-stop")]
    LogStop,
    /// Pause the task; `log-start` resumes it.
    #[serde(rename = "log-pause")]
    LogPause,
    /// Resume a paused task.
    #[serde(rename = "log-resume")]
    LogResume,
    /// A command that could not be determined.
    #[serde(rename = "log-unknown")]
    LogUnknown,
}

impl LogSubCommandType {
    /// The command as written in manifests and status, for example `log-start`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LogStart => "log-start",
            Self::LogTruncate => "log-truncate",
            Self::LogStop => "log-stop",
            Self::LogPause => "log-pause",
            Self::LogResume => "log-resume",
            Self::LogUnknown => "log-unknown",
        }
    }
}

/// The commands a user may set in `spec.logSubcommand`.
fn log_subcommand_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["log-start", "log-stop", "log-pause", "log-resume", "log-truncate"],
    })
}

/// The phase of a Backup, and the types of its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupConditionType {
    /// The backup job has been created.
    Scheduled,
    /// The backup is running.
    Running,
    /// The backup finished and its data is in the storage.
    Complete,
    /// The job cleaning the backup data has been created.
    Clean,
    /// A log backup command finished; another can be run.
    Repeatable,
    /// The backup failed.
    Failed,
    /// The backup failed and will be retried.
    RetryFailed,
    /// Cleaning the backup data failed.
    CleanFailed,
    /// The Backup is not valid.
    Invalid,
    /// The backup is being prepared.
    Prepare,
    /// The log backup task is paused.
    Paused,
    /// The log backup task is stopped.
    Stopped,
    /// The snapshot backup was restarted.
    Restart,
}

impl BackupConditionType {
    /// The name of the phase or condition type, for example `Complete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Running => "Running",
            Self::Complete => "Complete",
            Self::Clean => "Clean",
            Self::Repeatable => "Repeatable",
            Self::Failed => "Failed",
            Self::RetryFailed => "RetryFailed",
            Self::CleanFailed => "CleanFailed",
            Self::Invalid => "Invalid",
            Self::Prepare => "Prepare",
            Self::Paused => "Paused",
            Self::Stopped => "Stopped",
            Self::Restart => "Restart",
        }
    }
}

/// Observed state of a Backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Full path of the backup data, for example `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_path: String,
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<Time>,
    /// When the backup completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<Time>,
    /// How long the backup took, for example `2m3s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_taken: String,
    /// Size of the backup data, human-readable, for example `1.2 GB`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_size_readable: String,
    /// Size of the backup data in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub backup_size: i64,
    /// Snapshot TS of a snapshot backup, or start TS of a log backup.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_ts: String,
    /// TS up to which log data has been truncated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_success_truncate_until: String,
    /// Checkpoint TS of the log backup task: everything before it is backed up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_checkpoint_ts: String,
    /// Phase of the backup, the latest of its conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupConditionType>,
    /// The latest observations of the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// State of the last run of each log backup command, by command (`log-start`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_sub_command_statuses: BTreeMap<String, LogSubCommandStatus>,
    /// Progress of the backup's steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progresses: Vec<Progress>,
    /// Retries of the backup job after failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff_retry_status: Vec<BackoffRetryRecord>,
}

/// State of the last run of one log backup command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogSubCommandStatus {
    /// The command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<LogSubCommandType>,
    /// When the command started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<Time>,
    /// When the command completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<Time>,
    /// The truncate TS a `log-truncate` command is working towards.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_truncating_until: String,
    /// Phase of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupConditionType>,
    /// The latest observations of the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<BackupCondition>,
}

/// A condition of a log backup command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupCondition {
    /// The command the condition is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<LogSubCommandType>,
    /// Type, status, reason, message and time of the condition.
    #[serde(flatten)]
    pub condition: Condition,
}
