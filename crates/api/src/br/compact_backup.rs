//! CompactBackup: one compaction of a log backup's data between two TSs, run as a Job with
//! `tikv-ctl compact-log-backup`; its spec is also the template a BackupSchedule compacts with.

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::BRConfig;
use super::storage::StorageProvider;

/// A compaction of log backup data between two TSs.
// The printer columns repeat `type_` values, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "br.pingcap.com",
    version = "v1alpha1",
    kind = "CompactBackup",
    namespaced,
    status = "CompactStatus",
    shortname = "cpbk",
    category = "br",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.state",
        description = "State of the compaction"
    ),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.progress",
        description = "Progress of the compaction"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        description = "Why the compaction failed, or what it waits for"
    ),
    doc = "CompactBackup: compacts the log backup data of a TiDB cluster between two TSs into fewer, larger files that restore faster."
)]
#[serde(rename_all = "camelCase")]
pub struct CompactSpec {
    /// CPU and memory of the compaction job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Environment variables of the compaction job's container. They override the variables the
    /// operator sets for the storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Where the log backup data is: `s3`, `gcs`, `azblob` or `local`. May be left to the
    /// schedule.
    #[serde(flatten)]
    pub storage: StorageProvider,
    /// TS to compact from, as a TSO (`400036290571534337`) or a time (`2018-05-11 01:42:23`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_ts: String,
    /// TS to compact up to, as a TSO or a time. Empty means now.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_ts: String,
    /// Parallel compaction tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 4))]
    pub concurrency: Option<i64>,
    /// Tolerations of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Image of BR, for example `pingcap/br:v8.5.0`. Without a tag, the cluster's TiKV version is
    /// the tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_image: String,
    /// BR settings and the cluster. May be left to the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<BRConfig>,
    /// Secrets for pulling the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Affinity of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Whether the storage secrets are encrypted with AWS KMS and must be decrypted first.
    #[serde(rename = "useKMS", default, skip_serializing_if = "std::ops::Not::not")]
    pub use_kms: bool,
    /// ServiceAccount of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// Security context of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// PriorityClass of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// Retries of a failed compaction job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 6))]
    pub max_retry_times: Option<i64>,
    /// Extra volumes of the compaction job's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volumes: Vec<Volume>,
    /// Where the extra volumes are mounted in the compaction job's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_volume_mounts: Vec<VolumeMount>,
}

/// The states a CompactBackup's `status.state` takes, in the order a run goes through them.
pub mod compact_state {
    /// Checked and waiting for its Job.
    pub const SCHEDULED: &str = "Scheduled";
    /// The Job was created.
    pub const PREPARE: &str = "Prepare";
    /// The Job's Pod runs the compaction.
    pub const RUNNING: &str = "Running";
    /// A run failed; another Job follows after the backoff.
    pub const RETRY_FAILED: &str = "RetryFailed";
    /// The compaction finished.
    pub const COMPLETE: &str = "Complete";
    /// The compaction failed and no retry is left, or the spec cannot be acted on.
    pub const FAILED: &str = "Failed";
}

/// One failed run of a CompactBackup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactRetryRecord {
    /// How many failures were recorded before this one (0 for the first).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub retry_num: i64,
    /// When the failure was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_failed_at: Option<Time>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retry_reason: String,
}

fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}

/// Observed state of a CompactBackup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactStatus {
    /// State of the compaction: `Scheduled`, `Prepare`, `Running`, `RetryFailed`, `Complete` or
    /// `Failed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Progress of the compaction.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub progress: String,
    /// Why the compaction failed, or what it waits for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The failed runs, oldest first; one more Job runs after each while `maxRetryTimes` allows.
    #[serde(
        rename = "backoffRetryStatus",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub retry_status: Vec<CompactRetryRecord>,
}
