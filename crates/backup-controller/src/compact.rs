//! The CompactBackup reconcile: one Job that compacts a log backup's data between two TSs with
//! `tikv-ctl compact-log-backup`, run again after a failure while `maxRetryTimes` allows, with
//! the reference's backoff; the state, message and failed runs in status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::br::{
    CompactBackup, CompactRetryRecord, CompactSpec, CompactStatus, compact_state,
};
use operator_runtime::group::write_status_if_changed;
use tracing::{info, instrument};

use crate::backup::check_secret;
use crate::context::{Ctx, MANAGER};
use crate::error::Error;
use crate::job::{self, BR_BIN, JobRequest, PodSettings, Work};
use crate::observe::{Run, observe};
use crate::outcome::{FAKE_BR_ANNOTATION, RunResult, fake_mode};
use crate::status::Blocked;
use crate::storage::Storage;
use crate::target::{self, CLUSTER_NOT_READY};

/// Label on a CompactBackup's Jobs: its name.
pub const LABEL_COMPACT: &str = "br.pingcap.com/compact-backup";
/// Component label value of compaction Jobs.
pub const COMPONENT_COMPACT: &str = "compact";
/// Longest wait between two runs, as the reference caps it.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 60);

/// Reconciles one CompactBackup.
#[instrument(skip_all, fields(namespace = compact.namespace(), compact = compact.name_any()))]
pub async fn reconcile(compact: Arc<CompactBackup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(
        &ctx.metrics,
        "compact_backup",
        Box::pin(reconcile_inner(&compact, &ctx)),
    )
    .await
}

/// Name of the Job of run `attempt` (0: the first).
pub fn job_name(compact: &str, attempt: usize) -> String {
    if attempt == 0 {
        format!("compact-{compact}")
    } else {
        format!("compact-{compact}-retry-{attempt}")
    }
}

/// A TS as tikv-ctl takes it: a TSO as given, or a time (`2018-05-11 01:42:23`, UTC, or RFC
/// 3339) as the TSO of that millisecond.
pub fn parse_ts(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("TS {text:?} is out of range"));
    }
    let time = k8s_openapi::jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text)
        .ok()
        .and_then(|t| t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .or_else(|| text.parse::<Timestamp>().ok())
        .ok_or_else(|| {
            format!("{text:?} is neither a TSO nor a time such as '2018-05-11 01:42:23'")
        })?;
    let millis =
        u64::try_from(time.as_millisecond()).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(millis << 18)
}

/// What one run compacts, checked as the reference checks it before any Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First TSO.
    pub from: u64,
    /// Last TSO.
    pub until: u64,
    /// Parallel compaction tasks.
    pub concurrency: u32,
    /// Runs after the first at most.
    pub max_retries: usize,
}

/// The range and bounds of a spec, or why it cannot run at all (the CompactBackup fails).
pub fn check(spec: &CompactSpec) -> Result<Range, String> {
    if spec.start_ts.is_empty() {
        return Err("start-ts must be set".into());
    }
    if spec.end_ts.is_empty() {
        return Err("end-ts must be set".into());
    }
    let concurrency = spec.concurrency.unwrap_or(4);
    let concurrency = u32::try_from(concurrency)
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| "concurrency must be greater than 0".to_string())?;
    let max_retries = usize::try_from(spec.max_retry_times.unwrap_or(6))
        .map_err(|_| "maxRetryTimes must be greater than or equal to 0".to_string())?;
    let from = parse_ts(&spec.start_ts).map_err(|e| format!("startTs: {e}"))?;
    let until = parse_ts(&spec.end_ts).map_err(|e| format!("endTs: {e}"))?;
    if until < from {
        return Err(format!(
            "until-ts {until} must be greater than from-ts {from}"
        ));
    }
    if spec.br.as_ref().is_none_or(|br| br.cluster.is_empty()) {
        return Err(
            "spec.br.cluster is required: the Cluster whose TiKV version picks the images".into(),
        );
    }
    Ok(Range {
        from,
        until,
        concurrency,
        max_retries,
    })
}

/// The wait before the next run once `failures` runs have failed: none after the first failure,
/// then 10s × 2^(failures-1), at most 6 minutes (the reference's backoff).
pub fn backoff(failures: usize) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(16);
    Duration::from_secs(10)
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_BACKOFF)
}

/// What a failure does to the status: a record of it, then `RetryFailed` while retries are left,
/// else `Failed`. Returns the wait before the next run, `None` when none follows.
pub fn record_failure(
    status: &mut CompactStatus,
    reason: &str,
    max_retries: usize,
    now: Timestamp,
) -> Option<Duration> {
    let failures = status.retry_status.len();
    status.retry_status.push(CompactRetryRecord {
        retry_num: i64::try_from(failures).unwrap_or(i64::MAX),
        detect_failed_at: Some(Time(now)),
        retry_reason: reason.to_string(),
    });
    let failures = failures + 1;
    if failures > max_retries {
        status.state = compact_state::FAILED.into();
        status.message = format!(
            "{reason}; no retry left: {} of maxRetryTimes {max_retries} made",
            failures - 1
        );
        None
    } else {
        status.state = compact_state::RETRY_FAILED.into();
        status.message = format!("{reason}; retry {failures} of {max_retries} follows");
        Some(backoff(failures))
    }
}

fn api(ctx: &Ctx, compact: &CompactBackup) -> Api<CompactBackup> {
    Api::namespaced(ctx.client.clone(), &compact.namespace().unwrap_or_default())
}

fn jobs(ctx: &Ctx, compact: &CompactBackup) -> Api<Job> {
    Api::namespaced(ctx.client.clone(), &compact.namespace().unwrap_or_default())
}

async fn write(ctx: &Ctx, compact: &CompactBackup, status: &CompactStatus) -> Result<(), Error> {
    write_status_if_changed(&api(ctx, compact), compact, compact.status.as_ref(), status)
        .await
        .map_err(Error::kube("writing the CompactBackup status"))?;
    Ok(())
}

/// The runner's `run-compact` arguments: its flags, then `--` and BR's `operator base64ify`.
pub fn compact_args(range: &Range, storage: &Storage<'_>) -> Vec<String> {
    let mut args = vec![
        format!("--from={}", range.from),
        format!("--until={}", range.until),
        format!("--concurrency={}", range.concurrency),
        "--".to_string(),
        BR_BIN.to_string(),
        "operator".to_string(),
        "base64ify".to_string(),
    ];
    args.extend(storage.args());
    args
}

/// Builds the Job of run `attempt`, or says why it cannot be made now.
async fn prepare(
    compact: &CompactBackup,
    ctx: &Ctx,
    range: &Range,
    name: &str,
) -> Result<Result<Job, Blocked>, Error> {
    let namespace = compact.namespace().unwrap_or_default();
    let spec = &compact.spec;
    let blocked = |message: String| {
        Ok(Err(Blocked::new(
            operator_api::conditions::reasons::INVALID_SPEC,
            message,
        )))
    };
    if let Err(e) = job::check_job_name(name) {
        return blocked(e);
    }
    let storage = match Storage::of(&spec.storage) {
        Ok(storage) => storage,
        Err(e) => return blocked(e),
    };
    let Some(br) = spec.br.as_ref() else {
        return blocked("spec.br.cluster is required".into());
    };
    if let Some(blocked) = check_secret(&ctx.client, &namespace, &storage).await? {
        return Ok(Err(blocked));
    }
    let version = match target::version_of(&ctx.client, &namespace, br).await? {
        Ok((_, version)) => version,
        Err(blocked) => return Ok(Err(blocked)),
    };
    let (Some(br_image), Some(tikv_image)) = (
        job::br_image(&spec.tool_image, version.as_deref()),
        job::tikv_image(version.as_deref()),
    ) else {
        return Ok(Err(Blocked::new(
            CLUSTER_NOT_READY,
            format!(
                "the version of Cluster {} is not known (no TiKV or PD group with a version)",
                br.cluster
            ),
        )));
    };
    let fake = fake_mode(compact, FAKE_BR_ANNOTATION);
    Ok(Ok(job::build(
        &ctx.jobs,
        JobRequest {
            name: name.to_string(),
            namespace,
            owner: job::owner(compact),
            labels: job::labels(compact, LABEL_COMPACT, &br.cluster, COMPONENT_COMPACT),
            work: Work::Compact {
                br_image,
                tikv_image,
                args: compact_args(range, &storage),
            },
            env: storage.env(),
            storage_volume: storage.volume(),
            tls: None,
            pod: PodSettings::of_compact(spec),
            fake,
        },
    )))
}

/// Records a failed run (or a Job that could not be made) and says when to look again.
async fn failed(
    compact: &CompactBackup,
    ctx: &Ctx,
    mut status: CompactStatus,
    reason: &str,
    max_retries: usize,
) -> Result<Action, Error> {
    let wait = record_failure(&mut status, reason, max_retries, Timestamp::now());
    match wait {
        Some(_) => {
            ctx.events
                .warning(compact, "RetryScheduled", "Compact", status.message.clone())
                .await
        }
        None => {
            ctx.events
                .warning(compact, "CompactFailed", "Compact", status.message.clone())
                .await
        }
    }
    write(ctx, compact, &status).await?;
    Ok(match wait {
        Some(wait) => Action::requeue(wait + Duration::from_millis(200)),
        None => Action::await_change(),
    })
}

/// Fails a CompactBackup whose spec cannot be acted on; nothing is created.
async fn invalid(
    compact: &CompactBackup,
    ctx: &Ctx,
    mut status: CompactStatus,
    message: String,
) -> Result<Action, Error> {
    status.state = compact_state::FAILED.into();
    status.message = message.clone();
    ctx.events
        .warning(
            compact,
            operator_api::conditions::reasons::INVALID_SPEC,
            "Validate",
            message,
        )
        .await;
    write(ctx, compact, &status).await?;
    Ok(Action::await_change())
}

async fn reconcile_inner(compact: &CompactBackup, ctx: &Ctx) -> Result<Action, Error> {
    if compact.namespace().is_none() {
        return Err(Error::Invalid("CompactBackup has no namespace".into()));
    }
    // Its Jobs go with it through their owner references.
    if compact.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let mut status = compact.status.clone().unwrap_or_default();
    if status.state == compact_state::COMPLETE || status.state == compact_state::FAILED {
        return Ok(Action::await_change());
    }
    let range = match check(&compact.spec) {
        Ok(range) => range,
        Err(message) => return invalid(compact, ctx, status, message).await,
    };
    if status.state.is_empty() {
        status.state = compact_state::SCHEDULED.into();
    }
    let attempt = status.retry_status.len();
    let name = job_name(&compact.name_any(), attempt);
    let existing = jobs(ctx, compact)
        .get_opt(&name)
        .await
        .map_err(Error::kube("reading the compaction Job"))?;
    let Some(existing) = existing else {
        // The next run waits out its backoff.
        if let Some(last) = status.retry_status.last()
            && let Some(failed_at) = &last.detect_failed_at
        {
            let due = SignedDuration::try_from(backoff(attempt))
                .ok()
                .and_then(|wait| failed_at.0.checked_add(wait).ok())
                .unwrap_or(failed_at.0);
            let wait = due.duration_since(Timestamp::now());
            if wait.is_positive() {
                write(ctx, compact, &status).await?;
                let wait = Duration::try_from(wait).unwrap_or(Duration::from_secs(1));
                return Ok(Action::requeue(wait + Duration::from_millis(200)));
            }
        }
        let job = match prepare(compact, ctx, &range, &name).await? {
            Ok(job) => job,
            // A spec that cannot be built fails at once; what may appear later (the Cluster,
            // the Secret, a version) counts as a failed run, as the reference counts a Job it
            // could not create.
            Err(blocked) if !blocked.may_clear() => {
                return invalid(compact, ctx, status, blocked.message).await;
            }
            Err(blocked) => {
                let reason = format!("create job failed: {}", blocked.message);
                return failed(compact, ctx, status, &reason, range.max_retries).await;
            }
        };
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        match jobs(ctx, compact).create(&params, &job).await {
            Ok(_) => info!(job = name, "created Job"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::kube(format!("creating Job {name}"))(e)),
        }
        status.state = compact_state::PREPARE.into();
        let message = if attempt == 0 {
            format!("Job {name} compacts the log backup")
        } else {
            format!("Job {name} compacts the log backup again (retry {attempt})")
        };
        ctx.events
            .normal(compact, "JobCreated", "Compact", message)
            .await;
        write(ctx, compact, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    match observe(&ctx.client, &existing, ctx.jobs.fake_br).await? {
        Run::Active { running } => {
            if running {
                status.state = compact_state::RUNNING.into();
            } else if status.state == compact_state::SCHEDULED
                || status.state == compact_state::RETRY_FAILED
            {
                // What the pass that created the Job wrote, in case that write was lost.
                status.state = compact_state::PREPARE.into();
            }
            write(ctx, compact, &status).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Run::Done(result) if result.ok => {
            complete(compact, ctx, status, &result).await?;
            Ok(Action::await_change())
        }
        Run::Done(result) => {
            let reason = format!("the compaction Job {name} failed: {}", result.message);
            failed(compact, ctx, status, &reason, range.max_retries).await
        }
    }
}

async fn complete(
    compact: &CompactBackup,
    ctx: &Ctx,
    mut status: CompactStatus,
    result: &RunResult,
) -> Result<(), Error> {
    status.state = compact_state::COMPLETE.into();
    status.message = String::new();
    if let Some(progress) = &result.progress {
        status.progress = progress.clone();
    }
    ctx.events
        .normal(
            compact,
            "CompactComplete",
            "Compact",
            "the log backup data is compacted".into(),
        )
        .await;
    write(ctx, compact, &status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSettings;

    fn spec(value: serde_json::Value) -> CompactSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn times_become_tsos_and_tsos_stay() {
        assert_eq!(parse_ts("400036290571534337").unwrap(), 400036290571534337);
        // 2018-05-11 01:42:23 UTC is 1526002943000 ms.
        assert_eq!(
            parse_ts("2018-05-11 01:42:23").unwrap(),
            1_526_002_943_000u64 << 18
        );
        assert_eq!(
            parse_ts("2018-05-11T01:42:23Z").unwrap(),
            1_526_002_943_000u64 << 18
        );
        assert!(parse_ts("yesterday").unwrap_err().contains("neither a TSO"));
    }

    #[test]
    fn a_spec_is_checked_as_the_reference_checks_it() {
        let ok = spec(serde_json::json!({
            "startTs": "100", "endTs": "200", "br": {"cluster": "basic"}
        }));
        assert_eq!(
            check(&ok).unwrap(),
            Range {
                from: 100,
                until: 200,
                concurrency: 4,
                max_retries: 6
            }
        );
        let cases = [
            (
                serde_json::json!({"endTs": "2", "br": {"cluster": "c"}}),
                "start-ts must be set",
            ),
            (
                serde_json::json!({"startTs": "1", "br": {"cluster": "c"}}),
                "end-ts must be set",
            ),
            (
                serde_json::json!({"startTs": "1", "endTs": "2", "concurrency": 0, "br": {"cluster": "c"}}),
                "concurrency must be greater than 0",
            ),
            (
                serde_json::json!({"startTs": "1", "endTs": "2", "maxRetryTimes": -1, "br": {"cluster": "c"}}),
                "maxRetryTimes must be greater than or equal to 0",
            ),
            (
                serde_json::json!({"startTs": "9", "endTs": "2", "br": {"cluster": "c"}}),
                "until-ts 2 must be greater than from-ts 9",
            ),
            (
                serde_json::json!({"startTs": "1", "endTs": "2"}),
                "spec.br.cluster is required",
            ),
        ];
        for (value, message) in cases {
            let err = check(&spec(value.clone())).unwrap_err();
            assert!(err.contains(message), "{value}: {err}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_the_second_failure_up_to_six_minutes() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [0, 20, 40, 80, 160, 320, 360]);
    }

    #[test]
    fn failures_are_recorded_until_no_retry_is_left() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut status = CompactStatus::default();
        assert_eq!(
            record_failure(&mut status, "boom", 1, now),
            Some(Duration::ZERO)
        );
        assert_eq!(status.state, "RetryFailed");
        assert_eq!(status.retry_status[0].retry_num, 0);
        assert_eq!(record_failure(&mut status, "boom again", 1, now), None);
        assert_eq!(status.state, "Failed");
        assert!(
            status.message.contains("boom again")
                && status
                    .message
                    .contains("no retry left: 1 of maxRetryTimes 1"),
            "{}",
            status.message
        );
        assert_eq!(status.retry_status.len(), 2);
        assert_eq!(status.retry_status[1].retry_num, 1);

        let mut none = CompactStatus::default();
        assert_eq!(record_failure(&mut none, "boom", 0, now), None);
        assert_eq!(none.state, "Failed");
    }

    #[test]
    fn the_job_copies_br_and_tikv_ctl_and_runs_the_compaction() {
        let s = spec(serde_json::json!({
            "startTs": "100", "endTs": "200", "concurrency": 8, "br": {"cluster": "basic"},
            "s3": {"provider": "aws", "bucket": "b", "prefix": "log", "secretName": "creds"}
        }));
        let range = check(&s).unwrap();
        let storage = Storage::of(&s.storage).unwrap();
        let job = job::build(
            &JobSettings {
                runner_image: "runner:v1".into(),
                runner_command: "/backup-controller".into(),
                fake_br: false,
            },
            JobRequest {
                name: job_name("c", 0),
                namespace: "db".into(),
                owner: Default::default(),
                labels: Default::default(),
                work: Work::Compact {
                    br_image: "pingcap/br:v8.5.2".into(),
                    tikv_image: "pingcap/tikv:v8.5.2".into(),
                    args: compact_args(&range, &storage),
                },
                env: storage.env(),
                storage_volume: None,
                tls: None,
                pod: PodSettings::of_compact(&s),
                fake: None,
            },
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0), "retries are the controller's");
        let pod = spec.template.spec.unwrap();
        let images: Vec<_> = pod
            .init_containers
            .unwrap()
            .iter()
            .map(|c| c.image.clone().unwrap())
            .collect();
        assert_eq!(images, ["pingcap/br:v8.5.2", "pingcap/tikv:v8.5.2"]);
        assert_eq!(
            pod.containers[0].args.as_deref().unwrap(),
            [
                "run-compact",
                "--from=100",
                "--until=200",
                "--concurrency=8",
                "--",
                BR_BIN,
                "operator",
                "base64ify",
                "--storage=s3://b/log",
                "--s3.provider=aws",
            ]
        );
        assert_eq!(job_name("c", 2), "compact-c-retry-2");
    }
}
