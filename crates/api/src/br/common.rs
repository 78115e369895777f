//! Types Backup, Restore and BackupSchedule share: the BR settings and target cluster, what a
//! backup contains, clean-up and retry policies, and progress records.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a snapshot backup or restore covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupType {
    /// Every database of the cluster.
    #[serde(rename = "full")]
    Full,
    /// Raw key-value data.
    #[serde(rename = "raw")]
    Raw,
    /// One database, named in `tableFilter` (or the deprecated `br.db`).
    #[serde(rename = "db")]
    Db,
    /// One table, named in `tableFilter` (or the deprecated `br.db` and `br.table`).
    #[serde(rename = "table")]
    Table,
    /// Restores the TiFlash replicas that a failed restore by an older BR removed.
    #[serde(rename = "tiflash-replica")]
    TiFlashReplica,
}

/// Settings of BR and the cluster it works on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BRConfig {
    /// Name of the Cluster to back up or restore to.
    pub cluster: String,
    /// Namespace of the Cluster. Empty means the namespace of this object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_namespace: String,
    /// Database to back up or restore. Deprecated: use `tableFilter`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub db: String,
    /// Table to back up or restore, in `db`. Deprecated: use `tableFilter`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    /// BR's log level, for example `info` or `debug`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_level: String,
    /// Listen address of BR's status service; empty turns it off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_addr: String,
    /// Threads per TiKV node that run the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub concurrency: Option<i64>,
    /// Rate limit per TiKV node, in MB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rate_limit: Option<i64>,
    /// Back up the data as it was this long ago, for example `1m` or `1h`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_ago: String,
    /// Whether to verify checksums after the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<bool>,
    /// Whether BR checks the cluster's requirements before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_requirements: Option<bool>,
    /// Whether the storage credentials are passed on to TiKV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_cred_to_tikv: Option<bool>,
    /// Whether a restore runs online, leaving the cluster serving other traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_line: Option<bool>,
    /// Extra BR command-line arguments; they take precedence over everything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// What happens to the backup data when a Backup is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CleanPolicy {
    /// Keep the data.
    #[default]
    Retain,
    /// Delete the data only if the backup failed.
    OnFailure,
    /// Delete the data.
    Delete,
}

/// How the data of a deleted Backup is cleaned up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanOption {
    /// Objects deleted per page. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub page_size: Option<i64>,
    /// Retries inside the clean-up Pod when the clean-up fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 5))]
    pub retry_count: Option<i64>,
    /// Whether to back off when a delete call fails, for rate-limited stores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backoff_enabled: bool,
    /// Batch deletion settings.
    #[serde(flatten)]
    pub batch: BatchDeleteOption,
}

/// Batch deletion of objects during clean-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteOption {
    /// Delete objects one by one in parallel instead of with the batch-delete API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_batch_concurrency: bool,
    /// Batch deletions in parallel, where the store has a batch-delete API (S3). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub batch_concurrency: Option<i64>,
    /// Parallel single-object deletions. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub routine_concurrency: Option<i64>,
}

/// Retries of a failed snapshot backup job. The n-th retry waits `minRetryDuration` × 2^(n-1);
/// retries stop after `maxRetryTimes` or once `retryTimeout` has passed since the first failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackoffRetryPolicy {
    /// Wait before the first retry, a duration such as `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "300s"))]
    pub min_retry_duration: Option<String>,
    /// Maximum number of retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 2))]
    pub max_retry_times: Option<i64>,
    /// No retry starts once this long has passed since the first failure, a duration such as
    /// `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "30m"))]
    pub retry_timeout: Option<String>,
}

impl BackoffRetryPolicy {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.min_retry_duration.is_none()
            && self.max_retry_times.is_none()
            && self.retry_timeout.is_none()
    }
}

/// One retry of a failed backup job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackoffRetryRecord {
    /// Which retry this is, from 1.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retry_num: i32,
    /// When the failure was noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_failed_at: Option<Time>,
    /// When the retry is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_retry_at: Option<Time>,
    /// When the retry actually started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_retry_at: Option<Time>,
    /// Why the job is retried.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retry_reason: String,
    /// Why the job or its Pod failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub original_reason: String,
}

/// Progress of one step of a backup or restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Name of the step, for example `Full Backup`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// Percentage done, 0 to 100.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub progress: i32,
    /// When the progress was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

pub(crate) fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

pub(crate) fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}
