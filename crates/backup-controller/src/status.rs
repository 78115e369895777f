//! Status bookkeeping shared by Backup and Restore: why an object cannot proceed, the reasons
//! its conditions carry, and setting a phase's condition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use operator_api::conditions::{self, NewCondition};

/// Reason: the Job running BR was created.
pub const JOB_CREATED: &str = "JobCreated";
/// Reason: the Job's Pod runs.
pub const JOB_RUNNING: &str = "JobRunning";
/// Reason: BR succeeded.
pub const SUCCEEDED: &str = "Succeeded";
/// Reason: BR failed and no retry is left.
pub const FAILED: &str = "Failed";
/// Reason: BR failed and a retry is scheduled.
pub const RETRY_SCHEDULED: &str = "RetryScheduled";
/// Reason: the Secret a storage names does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// Reason: the Secret a storage names lacks a key.
pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
/// Reason of `Invalid=False`: the object passed its checks.
pub const VALID: &str = "Valid";
/// Reason: the clean-up Job of a deleted Backup was created.
pub const CLEAN_JOB_CREATED: &str = "CleanJobCreated";
/// Reason: a clean-up Job failed.
pub const CLEAN_FAILED: &str = "CleanFailed";
/// Reason (Event): the Backup was let go without its data deleted.
pub const CLEAN_ABANDONED: &str = "CleanAbandoned";
/// Reason (Event): the data of a deleted Backup was deleted.
pub const CLEANED: &str = "Cleaned";

/// Why an object cannot proceed: a reason and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

impl Blocked {
    /// A blocked state.
    pub fn new(reason: &str, message: impl Into<String>) -> Blocked {
        Blocked {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// Whether it can go away without a spec change (a missing Secret or Cluster may appear).
    pub fn may_clear(&self) -> bool {
        self.reason != operator_api::conditions::reasons::INVALID_SPEC
    }
}

/// Sets condition `type_` to `status` with a reason and message. Returns whether it changed.
pub fn mark(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> bool {
    conditions::set(
        conditions,
        NewCondition {
            type_,
            status,
            reason,
            message,
            observed_generation: generation,
        },
        Timestamp::now(),
    )
}
