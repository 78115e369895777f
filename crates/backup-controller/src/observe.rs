//! Reading how a Job went: its conditions, and the result the runner left in its Pod's
//! termination message.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::error::Error;
use crate::job::RUNNER_CONTAINER;
use crate::outcome::{FAKE_RESULT_ANNOTATION, RunResult, truncate};

/// Where a Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    /// Not finished; `running` once its Pod runs.
    Active {
        /// Whether a Pod of it is running.
        running: bool,
    },
    /// Finished with this result.
    Done(RunResult),
}

/// What the Job's conditions say.
enum JobEnd {
    Complete,
    Failed(String),
}

fn job_end(job: &Job) -> Option<JobEnd> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Some(JobEnd::Complete),
            "Failed" => {
                let message = c.message.clone().unwrap_or_default();
                let reason = c.reason.clone().unwrap_or_default();
                return Some(JobEnd::Failed(format!("Job failed ({reason}): {message}")));
            }
            _ => {}
        }
    }
    None
}

/// What the runner wrote, from a Pod: the termination message of its container, else (only
/// when `fake` is on, test tooling) the fake result annotation. `Err` holds a message that is
/// not a result (the log's tail of a crashed runner).
fn pod_result(pod: &Pod, fake: bool) -> Option<Result<RunResult, String>> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref();
    let message = statuses.and_then(|all| {
        all.iter()
            .filter(|s| s.name == RUNNER_CONTAINER)
            .find_map(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .or_else(|| s.last_state.as_ref().and_then(|st| st.terminated.as_ref()))
                    .and_then(|t| t.message.clone())
                    .filter(|m| !m.trim().is_empty())
            })
    });
    if let Some(message) = message {
        return Some(RunResult::parse(&message).ok_or(message));
    }
    if fake {
        let annotation = pod.annotations().get(FAKE_RESULT_ANNOTATION)?;
        return RunResult::parse(annotation).map(Ok);
    }
    None
}

/// The runner's result among a finished Job's Pods. A Job that retries its Pod (a Restore's
/// `backoffLimit`) has failed Pods next to the one that succeeded: a complete Job's result is
/// that of a Pod that succeeded, a failed Job's that of its newest Pod.
fn result_of(pods: &[Pod], end: &JobEnd, fake: bool) -> Option<Result<RunResult, String>> {
    let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone());
    match end {
        JobEnd::Complete => pods
            .iter()
            .filter(|p| phase(p).as_deref() == Some("Succeeded"))
            .chain(pods.iter())
            .find_map(|p| pod_result(p, fake)),
        JobEnd::Failed(_) => {
            let mut newest_first: Vec<&Pod> = pods.iter().collect();
            newest_first.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp()));
            newest_first.into_iter().find_map(|p| pod_result(p, fake))
        }
    }
}

/// How the Job went.
pub async fn observe(client: &kube::Client, job: &Job, fake: bool) -> Result<Run, Error> {
    let namespace = job.namespace().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(
            &ListParams::default()
                .labels(&format!("batch.kubernetes.io/job-name={}", job.name_any())),
        )
        .await
        .map_err(Error::kube("listing the Job's Pods"))?
        .items;
    let end = job_end(job);
    let Some(end) = end else {
        let running = pods.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        });
        return Ok(Run::Active { running });
    };
    let found = result_of(&pods, &end, fake);
    Ok(Run::Done(match (end, found) {
        (_, Some(Ok(result))) => result,
        (JobEnd::Complete, _) => RunResult {
            ok: true,
            ..RunResult::default()
        },
        (JobEnd::Failed(why), Some(Err(raw))) => RunResult {
            ok: false,
            message: format!("{why}; the runner left: {}", truncate(raw.trim(), 1500)),
            ..RunResult::default()
        },
        (JobEnd::Failed(why), None) => RunResult {
            ok: false,
            message: why,
            ..RunResult::default()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Pod of the Job in `phase`, created at second `at`, whose runner left `message`.
    fn pod(phase: &str, at: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p-{at}"), "creationTimestamp": format!("2024-05-01T00:00:{at}Z")},
            "status": {"phase": phase, "containerStatuses": [{
                "name": RUNNER_CONTAINER, "image": "i", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "message": message}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn a_retried_pod_that_succeeded_gives_a_complete_job_its_result() {
        let failed = pod("Failed", "01", r#"{"ok":false,"message":"first try"}"#);
        let succeeded = pod("Succeeded", "02", r#"{"ok":true,"commitTs":"42"}"#);
        let found = result_of(&[failed.clone(), succeeded], &JobEnd::Complete, false);
        let result = found.and_then(Result::ok).unwrap();
        assert!(result.ok, "the failed first try is not the result");
        assert_eq!(result.commit_ts.as_deref(), Some("42"));

        let again = pod("Failed", "03", r#"{"ok":false,"message":"last try"}"#);
        let found = result_of(&[failed, again], &JobEnd::Failed(String::new()), false);
        let result = found.and_then(Result::ok).unwrap();
        assert_eq!(
            result.message, "last try",
            "a failed Job reports its newest Pod"
        );
    }
}
