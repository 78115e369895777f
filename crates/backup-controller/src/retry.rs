//! When a failed snapshot backup runs again: `backoffRetryPolicy` read with the reference's
//! defaults, and the decision after each failure. Pure.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use operator_api::br::BackoffRetryPolicy;

use operator_runtime::duration;

/// Wait before the first retry unless the spec says otherwise.
pub const DEFAULT_MIN_RETRY: Duration = Duration::from_secs(300);
/// Retries unless the spec says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Time after the first failure after which no retry starts, unless the spec says otherwise.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `backoffRetryPolicy` with its defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry; the n-th waits this × 2^(n-1).
    pub min_retry: Duration,
    /// Retries at most.
    pub max_retries: u32,
    /// No retry starts once this long has passed since the first failure.
    pub timeout: Duration,
}

impl RetryPolicy {
    /// The policy of a spec, or why it cannot be read.
    pub fn of(spec: &BackoffRetryPolicy) -> Result<RetryPolicy, String> {
        let read = |value: &Option<String>, default: Duration, field: &str| match value {
            Some(text) => {
                duration::parse(text).map_err(|e| format!("backoffRetryPolicy.{field}: {e}"))
            }
            None => Ok(default),
        };
        Ok(RetryPolicy {
            min_retry: read(
                &spec.min_retry_duration,
                DEFAULT_MIN_RETRY,
                "minRetryDuration",
            )?,
            max_retries: match spec.max_retry_times {
                Some(n) => u32::try_from(n)
                    .map_err(|_| format!("backoffRetryPolicy.maxRetryTimes {n} is negative"))?,
                None => DEFAULT_MAX_RETRIES,
            },
            timeout: read(&spec.retry_timeout, DEFAULT_RETRY_TIMEOUT, "retryTimeout")?,
        })
    }
}

/// What to do after a failed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run again at this time; it is retry number `number` (from 1).
    Retry {
        /// Which retry.
        number: u32,
        /// When.
        at: Timestamp,
    },
    /// Stop: the backup has failed; the text says why no retry is left.
    GiveUp(String),
}

/// The decision after a failure noticed at `now`, with `retries_done` retries already made and
/// the first failure at `first_failure`.
pub fn decide(
    policy: &RetryPolicy,
    retries_done: u32,
    first_failure: Timestamp,
    now: Timestamp,
) -> Decision {
    let number = retries_done + 1;
    if number > policy.max_retries {
        return Decision::GiveUp(format!(
            "no retry left: {retries_done} of maxRetryTimes {} made",
            policy.max_retries
        ));
    }
    let elapsed = now.duration_since(first_failure);
    let timeout = SignedDuration::try_from(policy.timeout).unwrap_or(SignedDuration::MAX);
    if elapsed >= timeout {
        return Decision::GiveUp(format!(
            "no retry left: retryTimeout {} has passed since the first failure",
            duration::format(policy.timeout)
        ));
    }
    let factor = 2u32.saturating_pow(number - 1);
    let wait = policy.min_retry.saturating_mul(factor);
    let at = SignedDuration::try_from(wait)
        .ok()
        .and_then(|w| now.checked_add(w).ok())
        .unwrap_or(Timestamp::MAX);
    Decision::Retry { number, at }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn defaults_are_the_references() {
        let policy = RetryPolicy::of(&BackoffRetryPolicy::default()).unwrap();
        assert_eq!(
            policy,
            RetryPolicy {
                min_retry: Duration::from_secs(300),
                max_retries: 2,
                timeout: Duration::from_secs(1800)
            }
        );
    }

    #[test]
    fn waits_double_and_retries_stop_at_the_maximum() {
        let policy = RetryPolicy::of(&BackoffRetryPolicy {
            min_retry_duration: Some("2s".into()),
            max_retry_times: Some(3),
            retry_timeout: Some("10m".into()),
        })
        .unwrap();
        assert_eq!(
            decide(&policy, 0, at(1000), at(1000)),
            Decision::Retry {
                number: 1,
                at: at(1002)
            }
        );
        assert_eq!(
            decide(&policy, 1, at(1000), at(1010)),
            Decision::Retry {
                number: 2,
                at: at(1014)
            }
        );
        assert_eq!(
            decide(&policy, 2, at(1000), at(1020)),
            Decision::Retry {
                number: 3,
                at: at(1028)
            }
        );
        let Decision::GiveUp(why) = decide(&policy, 3, at(1000), at(1030)) else {
            panic!("a fourth retry")
        };
        assert!(why.contains("maxRetryTimes 3"), "{why}");
    }

    #[test]
    fn no_retry_after_the_timeout() {
        let policy = RetryPolicy::of(&BackoffRetryPolicy {
            min_retry_duration: Some("1s".into()),
            max_retry_times: Some(10),
            retry_timeout: Some("1m".into()),
        })
        .unwrap();
        assert!(matches!(
            decide(&policy, 1, at(0), at(59)),
            Decision::Retry { .. }
        ));
        let Decision::GiveUp(why) = decide(&policy, 1, at(0), at(60)) else {
            panic!("a retry after the timeout")
        };
        assert!(why.contains("retryTimeout 1m0s"), "{why}");
    }

    #[test]
    fn zero_retries_fail_at_once() {
        let policy = RetryPolicy::of(&BackoffRetryPolicy {
            max_retry_times: Some(0),
            ..BackoffRetryPolicy::default()
        })
        .unwrap();
        assert!(matches!(
            decide(&policy, 0, at(0), at(0)),
            Decision::GiveUp(_)
        ));
    }

    #[test]
    fn bad_policies_are_refused() {
        let bad = BackoffRetryPolicy {
            min_retry_duration: Some("soon".into()),
            ..BackoffRetryPolicy::default()
        };
        assert!(
            RetryPolicy::of(&bad)
                .unwrap_err()
                .contains("minRetryDuration")
        );
        let negative = BackoffRetryPolicy {
            max_retry_times: Some(-1),
            ..BackoffRetryPolicy::default()
        };
        assert!(RetryPolicy::of(&negative).unwrap_err().contains("negative"));
    }
}
