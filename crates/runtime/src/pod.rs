//! What the instance controllers read off a Pod: whether it is ready, and if not, why, in words
//! for a condition message; the `Ready` and `Synced` conditions as far as the Pod decides them;
//! and whether a terminating Pod is stuck because its Node no longer confirms anything.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use operator_api::conditions::reasons;

/// How long past the end of its grace period a terminating Pod may stay before it counts as
/// stuck. A kubelet confirms a Pod's end within seconds of its grace period; one that has not
/// after this long is on a Node that is lost or cut off.
pub const STUCK_AFTER_GRACE: Duration = Duration::from_secs(20);

/// How long `pod` has been terminating past its grace period plus [`STUCK_AFTER_GRACE`] at
/// `now` (its `deletionTimestamp` is when the grace period ends), if it has: nothing will
/// confirm its end. `None` for a Pod that is not terminating or not stuck yet.
pub fn stuck_terminating(pod: &Pod, now: Timestamp) -> Option<Duration> {
    let grace_ends = pod.metadata.deletion_timestamp.as_ref()?.0;
    let past = Duration::try_from(now.duration_since(grace_ends)).ok()?;
    (past >= STUCK_AFTER_GRACE).then_some(past)
}

/// A condition's status, reason and message.
pub type Verdict = (bool, &'static str, String);

/// `Ready` as far as the Pod decides it: false while it is missing, terminating or not ready;
/// `None` once it is ready, when the component's own health decides.
pub fn readiness(pod: Option<&Pod>) -> Option<Verdict> {
    match pod {
        None => Some((
            false,
            reasons::POD_NOT_CREATED,
            "the Pod does not exist yet".to_string(),
        )),
        Some(p) if p.metadata.deletion_timestamp.is_some() => Some((
            false,
            reasons::POD_TERMINATING,
            "the Pod is terminating".to_string(),
        )),
        Some(p) if !is_ready(p) => Some(match unschedulable(p) {
            Some(why) if VOLUME_NODE_AFFINITY.iter().any(|words| why.contains(words)) => (
                false,
                reasons::VOLUME_PINNED_TO_UNAVAILABLE_NODE,
                format!(
                    "the Pod cannot be scheduled: a PersistentVolume it needs is pinned to a Node \
                     it cannot run on (cordoned, not ready or gone); wait for that Node, or \
                     replace the instance (docs/node-maintenance.md). The scheduler: {why}"
                ),
            ),
            Some(why) => (
                false,
                reasons::POD_UNSCHEDULABLE,
                format!("the scheduler finds no Node for the Pod: {why}"),
            ),
            None => (false, reasons::POD_NOT_READY, not_ready_message(p)),
        }),
        Some(_) => None,
    }
}

/// The scheduler's words for a PersistentVolume whose node affinity no candidate Node meets
/// (Kubernetes 1.33 and later, and before).
const VOLUME_NODE_AFFINITY: [&str; 2] = [
    "didn't match PersistentVolume's node affinity",
    "volume node affinity conflict",
];

/// The scheduler's message when it found no Node for the Pod (`PodScheduled` False, reason
/// `Unschedulable`).
pub fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

/// `Synced` as far as the Pod decides it: whether it is `current` (built from the instance's
/// spec as it is now), missing, or being recreated.
pub fn synced(pod: Option<&Pod>, current: bool) -> Verdict {
    if current {
        (true, reasons::SYNCED, "the Pod is up to date".to_string())
    } else if pod.is_none() {
        (
            false,
            reasons::POD_NOT_CREATED,
            "the Pod does not exist yet".to_string(),
        )
    } else {
        (
            false,
            reasons::POD_NOT_UP_TO_DATE,
            "the Pod is being recreated with the new template".to_string(),
        )
    }
}

/// Whether the Pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a Pod is not ready, from its containers' waiting states (an image that cannot be pulled,
/// a crash loop), else from its phase.
pub fn not_ready_message(pod: &Pod) -> String {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let reasons: Vec<String> = statuses
        .iter()
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "container {} is waiting: {}{}",
                c.name,
                waiting.reason.clone().unwrap_or_default(),
                waiting
                    .message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ))
        })
        .collect();
    if reasons.is_empty() {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        format!("the Pod is {phase} and not ready")
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };

    use super::*;

    fn pod(status: PodStatus) -> Pod {
        Pod {
            status: Some(status),
            ..Pod::default()
        }
    }

    #[test]
    fn readiness_comes_from_the_ready_condition() {
        let ready = pod(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        assert!(is_ready(&ready));
        assert!(!is_ready(&Pod::default()));

        // The Pod decides `Ready` only while it is missing, terminating or not ready.
        assert!(readiness(Some(&ready)).is_none());
        let reason = |pod: Option<&Pod>| readiness(pod).map(|(_, reason, _)| reason);
        assert_eq!(reason(None), Some(reasons::POD_NOT_CREATED));
        assert_eq!(reason(Some(&Pod::default())), Some(reasons::POD_NOT_READY));
        let mut terminating = ready.clone();
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(reason(Some(&terminating)), Some(reasons::POD_TERMINATING));
    }

    #[test]
    fn an_unschedulable_pod_says_why_and_a_pinned_volume_is_named() {
        let pending = |message: &str| {
            pod(PodStatus {
                phase: Some("Pending".into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    message: Some(message.into()),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            })
        };
        let pinned = pending(
            "0/4 nodes are available: 1 node(s) were unschedulable, 3 node(s) had volume node affinity conflict.",
        );
        let (ready, reason, message) = readiness(Some(&pinned)).unwrap();
        assert!(!ready);
        assert_eq!(reason, reasons::VOLUME_PINNED_TO_UNAVAILABLE_NODE);
        assert!(
            message.contains("3 node(s) had volume node affinity conflict"),
            "{message}"
        );
        let newer = pending(
            "0/9 nodes are available: 3 node(s) didn't match PersistentVolume's node affinity, 6 node(s) didn't match Pod's node affinity/selector.",
        );
        assert_eq!(
            readiness(Some(&newer)).unwrap().1,
            reasons::VOLUME_PINNED_TO_UNAVAILABLE_NODE
        );
        let full = pending("0/4 nodes are available: 4 Insufficient cpu.");
        let (_, reason, message) = readiness(Some(&full)).unwrap();
        assert_eq!(reason, reasons::POD_UNSCHEDULABLE);
        assert!(message.ends_with("4 Insufficient cpu."), "{message}");
    }

    #[test]
    fn synced_says_whether_the_pod_is_current_missing_or_being_recreated() {
        assert_eq!(synced(None, false).1, reasons::POD_NOT_CREATED);
        assert_eq!(
            synced(Some(&Pod::default()), false).1,
            reasons::POD_NOT_UP_TO_DATE
        );
        assert!(synced(Some(&Pod::default()), true).0);
    }

    #[test]
    fn the_message_names_a_waiting_container_or_the_phase() {
        let waiting = pod(PodStatus {
            phase: Some("Pending".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "tikv".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ImagePullBackOff".into()),
                        message: Some("not found".into()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        assert_eq!(
            not_ready_message(&waiting),
            "container tikv is waiting: ImagePullBackOff (not found)"
        );
        assert_eq!(
            not_ready_message(&Pod::default()),
            "the Pod is Pending and not ready"
        );
    }

    #[test]
    fn a_pod_is_stuck_only_well_past_the_end_of_its_grace_period() {
        let grace_ends = Timestamp::from_second(1_000).unwrap();
        let mut terminating = Pod::default();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(grace_ends),
        );
        let at = |seconds: i64| Timestamp::from_second(seconds).unwrap();
        // Still in its grace period, or just past it: the kubelet has time to confirm.
        assert_eq!(stuck_terminating(&terminating, at(990)), None);
        assert_eq!(stuck_terminating(&terminating, at(1_019)), None);
        assert_eq!(
            stuck_terminating(&terminating, at(1_020)),
            Some(STUCK_AFTER_GRACE)
        );
        // A Pod that is not terminating is never stuck.
        assert_eq!(stuck_terminating(&Pod::default(), at(5_000)), None);
    }
}
