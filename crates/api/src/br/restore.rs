//! Restore: loading a snapshot backup, optionally followed by log backup data up to a point in
//! time, into a cluster.

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{BRConfig, BackupType, Progress};
use super::storage::StorageProvider;

/// A restore of backup data into a cluster.
// The printer columns repeat `type_` values, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "br.pingcap.com",
    version = "v1alpha1",
    kind = "Restore",
    namespaced,
    status = "RestoreStatus",
    shortname = "rt",
    category = "br",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Phase of the restore"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.timeStarted",
        description = "When the restore started",
        priority = 1
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.timeCompleted",
        description = "When the restore completed",
        priority = 1
    ),
    printcolumn(
        name = "TimeTaken",
        type_ = "string",
        json_path = ".status.timeTaken",
        description = "How long the restore took"
    ),
    printcolumn(
        name = "CommitTS",
        type_ = "string",
        json_path = ".status.commitTs",
        description = "TS the cluster was restored to"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "Restore: loads a backup of a TiDB cluster, optionally up to a point in time, into a cluster."
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// CPU and memory of the restore job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Environment variables of the restore job's container. They override the variables the
    /// operator sets for the storage (for example `AWS_REGION` or `GCS_PROJECT_ID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// What a snapshot restore covers: `full`, `db` or `table` (with `tableFilter`), `raw`.
    #[serde(
        rename = "backupType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<BackupType>,
    /// `snapshot` (the default) restores a snapshot backup; `pitr` restores a snapshot backup
    /// (`pitrFullBackupStorageProvider`) and then the log backup up to `pitrRestoredTs`.
    #[serde(
        rename = "restoreMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = "snapshot"))]
    pub mode: Option<RestoreMode>,
    /// The point in time a `pitr` restore stops at, as a TSO (`400036290571534337`) or a time
    /// (`2018-05-11 01:42:23`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pitr_restored_ts: String,
    /// The TS the log restore starts from, as a TSO or a time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_restore_start_ts: String,
    /// GC life time kept on TiKV while the restore runs, a duration such as `72h`.
    #[serde(
        rename = "tikvGCLifeTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tikv_gc_life_time: Option<String>,
    /// Where the data comes from: `s3`, `gcs`, `azblob` or `local`. For `pitr`, the log backup.
    #[serde(flatten)]
    pub storage: StorageProvider,
    /// Where the snapshot backup a `pitr` restore starts from is.
    #[serde(default, skip_serializing_if = "StorageProvider::is_empty")]
    pub pitr_full_backup_storage_provider: StorageProvider,
    /// StorageClass of the scratch volume of the restore job. Empty means the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of the scratch volume of the restore job, for example `100Gi`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_size: String,
    /// BR settings and the cluster to restore to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<BRConfig>,
    /// Tolerations of the restore job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the restore job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Whether the storage secrets are encrypted with AWS KMS and must be decrypted first.
    #[serde(rename = "useKMS", default, skip_serializing_if = "std::ops::Not::not")]
    pub use_kms: bool,
    /// ServiceAccount of the restore job's Pod, for example one bound to a cloud identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// Image of BR, for example `pingcap/br:v8.5.0`. Without a tag, the cluster's TiKV version is
    /// the tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_image: String,
    /// Secrets for pulling the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Table filters (`db.table` patterns, for example `db1.*`) of what to restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_filter: Vec<String>,
    /// Security context of the restore job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// PriorityClass of the restore job's Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// Extra volumes of the restore job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volumes: Vec<Volume>,
    /// Where the extra volumes are mounted in the restore job's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volume_mounts: Vec<VolumeMount>,
    /// Whether the restore goes on when one TiKV store fails, as long as no data is lost.
    #[serde(
        rename = "tolerateSingleTiKVOutage",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    #[schemars(extend("default" = false))]
    pub tolerate_single_tikv_outage: bool,
    /// Retries of the restore Job's Pod by Kubernetes: the Job's `backoffLimit`. 0 (the default)
    /// runs the restore once, with no retry.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(extend("default" = 0))]
    pub backoff_limit: i32,
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

/// How a restore is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreMode {
    /// Restore a snapshot backup.
    #[default]
    #[serde(rename = "snapshot")]
    Snapshot,
    /// Point-in-time recovery: a snapshot backup, then the log backup up to a TS.
    #[serde(rename = "pitr")]
    Pitr,
}

/// The phase of a Restore, and the types of its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreConditionType {
    /// The restore job has been created.
    Scheduled,
    /// The restore is running.
    Running,
    /// The restore finished and the data is in the cluster.
    Complete,
    /// The restore failed.
    Failed,
    /// The restore failed and will be retried.
    RetryFailed,
    /// The Restore is not valid.
    Invalid,
}

impl RestoreConditionType {
    /// The name of the phase or condition type, for example `Complete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Running => "Running",
            Self::Complete => "Complete",
            Self::Failed => "Failed",
            Self::RetryFailed => "RetryFailed",
            Self::Invalid => "Invalid",
        }
    }
}

/// Observed state of a Restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<Time>,
    /// When the restore completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<Time>,
    /// How long the restore took, for example `2m3s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_taken: String,
    /// The TS the cluster was restored to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_ts: String,
    /// Phase of the restore, the latest of its conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestoreConditionType>,
    /// The latest observations of the restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Progress of the restore's steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progresses: Vec<Progress>,
}
