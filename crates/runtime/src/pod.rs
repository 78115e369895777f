//! What the instance controllers read off a Pod: whether it is ready, and if not, why, in words
//! for a condition message.

use k8s_openapi::api::core::v1::Pod;

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
