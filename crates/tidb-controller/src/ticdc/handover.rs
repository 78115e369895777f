//! Before a TiCDC Pod goes (a restart, a roll, a scale-in), its capture hands over what it
//! does: if it is the owner, it resigns so that another capture takes over; then it is drained,
//! its tables moved to the other captures. Skipped with fewer than two captures (nowhere to
//! move them), bounded in time, and reported in the instance's `CaptureDrained` condition. The
//! decisions are pure ([`decide`], [`after_drain`]); [`hand_over`] asks TiCDC and acts on them.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use operator_api::conditions::{self, reasons};
use pd_client::{CaptureInfo, CaptureStatus, StatusClient};

/// What TiCDC said about the capture and its peers, asked through the capture itself.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The capture's own `GET /status`, or why it did not answer.
    pub this: Result<CaptureStatus, String>,
    /// `GET /api/v2/captures`, or why it did not answer.
    pub captures: Result<Vec<CaptureInfo>, String>,
}

/// The next step of a hand-over.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The Pod may go; `CaptureDrained` true for this reason.
    Go {
        /// Reason of the condition.
        reason: &'static str,
        /// What the user reads.
        message: String,
    },
    /// Ask the owner to resign.
    Resign,
    /// Ask TiCDC to drain this capture.
    Drain {
        /// The capture.
        capture_id: String,
    },
    /// Look again; `CaptureDrained` false for this reason.
    Wait {
        /// Reason of the condition.
        reason: &'static str,
        /// What the user reads.
        message: String,
    },
}

/// The step before the Pod goes. `seen` is `None` when the server does not run (no Pod, or
/// one that is not ready): nothing can be handed over. `elapsed` is how long the hand-over has
/// gone on; past `timeout` the Pod goes anyway.
pub fn decide(seen: Option<&Seen>, elapsed: Duration, timeout: Duration) -> Step {
    if elapsed >= timeout {
        return Step::Go {
            reason: reasons::DRAIN_TIMED_OUT,
            message: format!(
                "the capture did not hand over its ownership and tables within {}; the Pod goes anyway",
                operator_runtime::duration::format(timeout)
            ),
        };
    }
    let Some(seen) = seen else {
        return Step::Go {
            reason: reasons::DRAIN_SKIPPED,
            message: "the TiCDC server does not run; it has nothing to hand over".into(),
        };
    };
    let (this, captures) = match (&seen.this, &seen.captures) {
        (Ok(this), Ok(captures)) => (this, captures),
        (Err(error), _) | (_, Err(error)) => {
            return Step::Wait {
                reason: reasons::TICDC_UNREACHABLE,
                message: format!("TiCDC's API does not answer: {error}"),
            };
        }
    };
    if captures.len() < 2 {
        return Step::Go {
            reason: reasons::DRAIN_SKIPPED,
            message: format!(
                "{} capture(s) in the TiCDC cluster: no other capture to hand the tables to",
                captures.len()
            ),
        };
    }
    let Some(listed) = captures.iter().find(|c| c.id == this.id) else {
        return Step::Go {
            reason: reasons::DRAIN_SKIPPED,
            message: format!(
                "capture {} is not registered in the TiCDC cluster; it holds no table",
                this.id
            ),
        };
    };
    if listed.is_owner || this.is_owner {
        return Step::Resign;
    }
    Step::Drain {
        capture_id: this.id.clone(),
    }
}

/// The step after TiCDC answered a drain request with the tables the capture still holds.
pub fn after_drain(answer: Result<u64, String>) -> Step {
    match answer {
        Ok(0) => Step::Go {
            reason: reasons::DRAINED,
            message: "the capture holds no table; its Pod may go".into(),
        },
        Ok(tables) => Step::Wait {
            reason: reasons::DRAINING_TABLES,
            message: format!("the capture hands its tables to other captures; {tables} left"),
        },
        Err(error) => Step::Wait {
            reason: reasons::DRAINING_TABLES,
            message: format!("TiCDC did not accept the drain: {error}"),
        },
    }
}

/// The step after the owner was asked to resign.
pub fn after_resign(answer: Result<(), String>) -> Step {
    Step::Wait {
        reason: reasons::RESIGNING_OWNER,
        message: match answer {
            Ok(()) => "the capture is the owner and was asked to resign; waiting for another capture to take over".into(),
            Err(error) => format!("the capture is the owner; TiCDC did not accept its resignation: {error}"),
        },
    }
}

/// How long the hand-over has gone on: since `CaptureDrained` turned false (it stays false
/// while the steps change), or nothing yet.
pub fn elapsed(conditions: &[Condition], now: Timestamp) -> Duration {
    conditions::find(conditions, conditions::CAPTURE_DRAINED)
        .filter(|c| c.status == conditions::STATUS_FALSE)
        .and_then(|c| now.duration_since(c.last_transition_time.0).try_into().ok())
        .unwrap_or_default()
}

/// Asks TiCDC at `url` what the step needs and carries out resign and drain; returns the step
/// that ends this look: [`Step::Go`] or [`Step::Wait`]. `running` says whether the server runs.
pub async fn hand_over(
    client: &StatusClient,
    url: &str,
    running: bool,
    elapsed: Duration,
    timeout: Duration,
) -> Step {
    let seen = if running {
        let (this, captures) = tokio::join!(client.ticdc_status(url), client.ticdc_captures(url));
        Some(Seen {
            this: this.map_err(|e| e.to_string()),
            captures: captures.map_err(|e| e.to_string()),
        })
    } else {
        None
    };
    match decide(seen.as_ref(), elapsed, timeout) {
        Step::Resign => {
            let answer = client.ticdc_resign_owner(url).await;
            after_resign(answer.map_err(|e| e.to_string()))
        }
        Step::Drain { capture_id } => {
            let answer = client.ticdc_drain_capture(url, &capture_id).await;
            after_drain(answer.map_err(|e| e.to_string()))
        }
        step => step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(300);

    fn capture(id: &str, owner: bool) -> CaptureInfo {
        CaptureInfo {
            id: id.into(),
            is_owner: owner,
            address: format!("{id}:8300"),
        }
    }

    fn seen(this: &str, captures: &[(&str, bool)]) -> Seen {
        let owner = captures.iter().any(|(id, o)| *id == this && *o);
        Seen {
            this: Ok(CaptureStatus {
                version: "v8.5.2".into(),
                id: this.into(),
                is_owner: owner,
            }),
            captures: Ok(captures.iter().map(|(id, o)| capture(id, *o)).collect()),
        }
    }

    fn reason(step: &Step) -> &'static str {
        match step {
            Step::Go { reason, .. } | Step::Wait { reason, .. } => reason,
            Step::Resign => "Resign",
            Step::Drain { .. } => "Drain",
        }
    }

    #[test]
    fn the_owner_resigns_first_then_a_non_owner_is_drained() {
        let owner = seen("a", &[("a", true), ("b", false)]);
        assert_eq!(decide(Some(&owner), Duration::ZERO, TIMEOUT), Step::Resign);
        let other = seen("b", &[("a", true), ("b", false)]);
        assert_eq!(
            decide(Some(&other), Duration::from_secs(10), TIMEOUT),
            Step::Drain {
                capture_id: "b".into()
            }
        );
    }

    #[test]
    fn nothing_is_handed_over_alone_unregistered_or_not_running() {
        let alone = seen("a", &[("a", true)]);
        assert_eq!(
            reason(&decide(Some(&alone), Duration::ZERO, TIMEOUT)),
            reasons::DRAIN_SKIPPED
        );
        let unlisted = seen("x", &[("a", true), ("b", false)]);
        assert_eq!(
            reason(&decide(Some(&unlisted), Duration::ZERO, TIMEOUT)),
            reasons::DRAIN_SKIPPED
        );
        assert_eq!(
            reason(&decide(None, Duration::ZERO, TIMEOUT)),
            reasons::DRAIN_SKIPPED
        );
    }

    #[test]
    fn silence_waits_until_the_timeout_and_then_the_pod_goes() {
        let mut silent = seen("a", &[("a", false), ("b", true)]);
        silent.captures = Err("connection refused".into());
        let step = decide(Some(&silent), Duration::from_secs(10), TIMEOUT);
        assert_eq!(reason(&step), reasons::TICDC_UNREACHABLE);
        let step = decide(Some(&silent), TIMEOUT, TIMEOUT);
        assert_eq!(reason(&step), reasons::DRAIN_TIMED_OUT);
        // The timeout holds whatever TiCDC says.
        let draining = seen("a", &[("a", false), ("b", true)]);
        assert_eq!(
            reason(&decide(Some(&draining), TIMEOUT * 2, TIMEOUT)),
            reasons::DRAIN_TIMED_OUT
        );
    }

    #[test]
    fn a_drain_goes_on_until_no_table_is_left() {
        assert_eq!(reason(&after_drain(Ok(3))), reasons::DRAINING_TABLES);
        assert!(
            matches!(after_drain(Ok(3)), Step::Wait { message, .. } if message.contains("3 left"))
        );
        assert_eq!(reason(&after_drain(Ok(0))), reasons::DRAINED);
        assert_eq!(
            reason(&after_drain(Err("400".into()))),
            reasons::DRAINING_TABLES
        );
        assert_eq!(reason(&after_resign(Ok(()))), reasons::RESIGNING_OWNER);
    }

    #[test]
    fn the_hand_over_is_timed_from_when_the_condition_turned_false() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-01-01T00:01:30Z".parse().unwrap();
        let mut list = Vec::new();
        conditions::set(
            &mut list,
            conditions::NewCondition {
                type_: conditions::CAPTURE_DRAINED,
                status: false,
                reason: reasons::RESIGNING_OWNER,
                message: String::new(),
                observed_generation: None,
            },
            start,
        );
        assert_eq!(elapsed(&list, now), Duration::from_secs(90));
        assert_eq!(elapsed(&[], now), Duration::ZERO);
    }
}
