//! What the instance controllers read off a Pod: whether it is ready, and if not, why, in words
//! for a condition message; and the `Ready` and `Synced` conditions as far as the Pod decides them.

use k8s_openapi::api::core::v1::Pod;
use operator_api::conditions::reasons;

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
        Some(p) if !is_ready(p) => Some((false, reasons::POD_NOT_READY, not_ready_message(p))),
        Some(_) => None,
    }
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
}
