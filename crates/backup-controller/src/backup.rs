//! The Backup reconcile. A snapshot backup is one BR Job, run again per `backoffRetryPolicy`
//! when it fails; a log backup is a task in the cluster that Jobs start, pause, resume, stop and
//! truncate as the spec says; a deleted Backup's data is removed first when its `cleanPolicy`
//! says so.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::br::{
    BackoffRetryRecord, Backup, BackupConditionType as Phase, BackupMode, BackupStatus,
    CleanPolicy, LogSubCommandType,
};
use operator_api::conditions::reasons;
use operator_api::keys;
use operator_runtime::finalize;
use operator_runtime::group::write_status_if_changed;
use tracing::{info, instrument};

use crate::command::{self, BackupAction};
use crate::context::{Ctx, MANAGER};
use crate::error::Error;
use crate::job::{self, JobRequest, PodSettings, Work};
use crate::observe::{Run, observe};
use crate::outcome::{
    FAKE_BR_ANNOTATION, FAKE_CLEAN_ANNOTATION, RunResult, fake_mode, readable_size,
};
use crate::retry::{self, Decision, RetryPolicy};
use crate::status::{self, Blocked, mark};
use crate::storage::Storage;
use crate::target::{self, CLUSTER_NOT_READY};
use operator_runtime::duration;

mod clean;
mod log;

use clean::finalize;
use log::log_backup;

/// Label on a Backup's Jobs: the Backup's name.
pub const LABEL_BACKUP: &str = "br.pingcap.com/backup";
/// Component label value of backup Jobs.
pub const COMPONENT_BACKUP: &str = "backup";
/// Component label value of clean-up Jobs.
pub const COMPONENT_CLEAN: &str = "clean";

/// Reconciles one Backup.
#[instrument(skip_all, fields(namespace = backup.namespace(), backup = backup.name_any()))]
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(
        &ctx.metrics,
        "backup",
        Box::pin(reconcile_inner(&backup, &ctx)),
    )
    .await
}

fn needs_finalizer(backup: &Backup) -> bool {
    matches!(
        backup.spec.clean_policy,
        Some(CleanPolicy::Delete) | Some(CleanPolicy::OnFailure)
    )
}

fn has_finalizer(backup: &Backup) -> bool {
    backup.finalizers().iter().any(|f| f == keys::FINALIZER)
}

async fn reconcile_inner(backup: &Backup, ctx: &Ctx) -> Result<Action, Error> {
    if backup.namespace().is_none() {
        return Err(Error::Invalid("Backup has no namespace".into()));
    }
    if backup.metadata.deletion_timestamp.is_some() {
        return Box::pin(finalize(backup, ctx)).await;
    }
    if finalize::set_finalizer(&api(ctx, backup), backup, needs_finalizer(backup))
        .await
        .map_err(Error::kube("updating the Backup's finalizers"))?
    {
        // The patch made this copy stale; its event brings the next pass.
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    match backup.spec.mode.unwrap_or_default() {
        BackupMode::Snapshot => Box::pin(snapshot(backup, ctx)).await,
        BackupMode::Log => Box::pin(log_backup(backup, ctx)).await,
    }
}

fn api(ctx: &Ctx, backup: &Backup) -> Api<Backup> {
    Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default())
}

fn jobs(ctx: &Ctx, backup: &Backup) -> Api<Job> {
    Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default())
}

async fn write(ctx: &Ctx, backup: &Backup, status: &BackupStatus) -> Result<(), Error> {
    write_status_if_changed(&api(ctx, backup), backup, backup.status.as_ref(), status)
        .await
        .map_err(Error::kube("writing the Backup status"))?;
    Ok(())
}

/// Name of the Job of attempt `attempt` (0: the first run) of a snapshot backup.
pub fn snapshot_job_name(backup: &str, attempt: usize) -> String {
    if attempt == 0 {
        format!("backup-{backup}")
    } else {
        format!("backup-{backup}-retry-{attempt}")
    }
}

/// Checks that the Secret exists with the keys the storage reads. Only names are looked at.
pub async fn check_secret(
    client: &kube::Client,
    namespace: &str,
    storage: &Storage<'_>,
) -> Result<Option<Blocked>, Error> {
    let Some(need) = storage.secret() else {
        return Ok(None);
    };
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&need.name)
        .await
        .map_err(Error::kube("reading the storage Secret"))?;
    let Some(secret) = secret else {
        return Ok(Some(Blocked::new(
            status::SECRET_NOT_FOUND,
            format!(
                "Secret {} with the storage credentials does not exist in namespace {namespace}",
                need.name
            ),
        )));
    };
    let present = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key))
    };
    let missing: Vec<&str> = need.keys.iter().copied().filter(|k| !present(k)).collect();
    Ok((!missing.is_empty()).then(|| {
        Blocked::new(
            status::SECRET_KEY_MISSING,
            format!("Secret {} lacks key(s) {}", need.name, missing.join(", ")),
        )
    }))
}

/// Builds the Job of one BR action of the Backup, or says why it cannot be run.
async fn prepare(
    backup: &Backup,
    ctx: &Ctx,
    action: &BackupAction,
    job_name: &str,
) -> Result<Result<(Job, String), Blocked>, Error> {
    let namespace = backup.namespace().unwrap_or_default();
    let spec = &backup.spec;
    let invalid = |message: String| Ok(Err(Blocked::new(reasons::INVALID_SPEC, message)));
    if let Err(e) = job::check_job_name(job_name) {
        return invalid(e);
    }
    let Some(br) = spec.br.as_ref().filter(|br| !br.cluster.is_empty()) else {
        return invalid("spec.br.cluster is required: the Cluster to back up".into());
    };
    let storage = match Storage::of(&spec.storage) {
        Ok(storage) => storage,
        Err(e) => return invalid(e),
    };
    if let Err(e) = RetryPolicy::of(&spec.backoff_retry_policy) {
        return invalid(e);
    }
    if let Some(blocked) = check_secret(&ctx.client, &namespace, &storage).await? {
        return Ok(Err(blocked));
    }
    let target = match target::resolve(&ctx.client, &namespace, br).await? {
        Ok(target) => target,
        Err(blocked) => return Ok(Err(blocked)),
    };
    let Some(image) = job::br_image(&spec.tool_image, target.version.as_deref()) else {
        return Ok(Err(Blocked::new(
            CLUSTER_NOT_READY,
            format!(
                "the version of Cluster {} is not known (no TiKV or PD group with a version); set spec.toolImage with a tag",
                target.name
            ),
        )));
    };
    let mut args = match command::backup(&backup.name_any(), spec, br, &storage, &target.pd, action)
    {
        Ok(args) => args,
        Err(e) => return invalid(e),
    };
    if target.tls.is_some() {
        command::add_tls(&mut args);
    }
    let job = job::build(
        &ctx.jobs,
        JobRequest {
            name: job_name.to_string(),
            namespace,
            owner: job::owner(backup),
            labels: job::labels(backup, LABEL_BACKUP, &target.name, COMPONENT_BACKUP),
            work: Work::Br { image, args },
            env: storage.env(),
            storage_volume: storage.volume(),
            tls: target.tls.clone(),
            pod: PodSettings::of_backup(spec),
            fake: fake_mode(backup, FAKE_BR_ANNOTATION),
        },
    );
    Ok(Ok((job, storage.uri())))
}

/// Records why the Backup cannot proceed, with a Warning Event when that is news.
async fn write_blocked(
    backup: &Backup,
    ctx: &Ctx,
    mut status: BackupStatus,
    blocked: Blocked,
) -> Result<Action, Error> {
    let changed = mark(
        &mut status.conditions,
        Phase::Invalid.as_str(),
        true,
        &blocked.reason,
        blocked.message.clone(),
        backup.metadata.generation,
    );
    if status.phase.is_none() || status.phase == Some(Phase::Invalid) {
        status.phase = Some(Phase::Invalid);
    }
    if changed {
        ctx.events
            .warning(backup, &blocked.reason, "Validate", blocked.message.clone())
            .await;
    }
    write(ctx, backup, &status).await?;
    Ok(if blocked.may_clear() {
        Action::requeue(Duration::from_secs(15))
    } else {
        Action::await_change()
    })
}

fn clear_invalid(backup: &Backup, status: &mut BackupStatus) {
    if operator_api::conditions::is_true(&status.conditions, Phase::Invalid.as_str()) {
        mark(
            &mut status.conditions,
            Phase::Invalid.as_str(),
            false,
            status::VALID,
            "the Backup passed its checks".into(),
            backup.metadata.generation,
        );
    }
}

async fn create_job(ctx: &Ctx, backup: &Backup, job: &Job) -> Result<(), Error> {
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match jobs(ctx, backup).create(&params, job).await {
        Ok(_) => {
            info!(job = job.name_any(), "created Job");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("creating Job {}", job.name_any()))(e)),
    }
}

fn now_time() -> Time {
    Time(Timestamp::now())
}

async fn snapshot(backup: &Backup, ctx: &Ctx) -> Result<Action, Error> {
    let mut status = backup.status.clone().unwrap_or_default();
    if matches!(status.phase, Some(Phase::Complete) | Some(Phase::Failed)) {
        return Ok(Action::await_change());
    }
    let generation = backup.metadata.generation;
    let attempt = status.backoff_retry_status.len();
    let job_name = snapshot_job_name(&backup.name_any(), attempt);
    let existing = jobs(ctx, backup)
        .get_opt(&job_name)
        .await
        .map_err(Error::kube("reading the backup Job"))?;

    let Some(existing) = existing else {
        // A retry waits for its time.
        if let Some(last) = status.backoff_retry_status.last()
            && last.real_retry_at.is_none()
            && let Some(due) = &last.expected_retry_at
        {
            let wait = due.0.duration_since(Timestamp::now());
            if wait.is_positive() {
                let wait = Duration::try_from(wait).unwrap_or(Duration::from_secs(1));
                return Ok(Action::requeue(wait + Duration::from_millis(200)));
            }
        }
        let (job, uri) = match prepare(backup, ctx, &BackupAction::Snapshot, &job_name).await? {
            Ok(prepared) => prepared,
            Err(blocked) => return write_blocked(backup, ctx, status, blocked).await,
        };
        clear_invalid(backup, &mut status);
        create_job(ctx, backup, &job).await?;
        if let Some(last) = status.backoff_retry_status.last_mut()
            && last.real_retry_at.is_none()
        {
            last.real_retry_at = Some(now_time());
        }
        if status.time_started.is_none() {
            status.time_started = Some(now_time());
        }
        status.backup_path = uri;
        status.phase = Some(Phase::Scheduled);
        let message = if attempt == 0 {
            format!("Job {job_name} runs BR")
        } else {
            format!("Job {job_name} runs BR again (retry {attempt})")
        };
        mark(
            &mut status.conditions,
            Phase::Scheduled.as_str(),
            true,
            status::JOB_CREATED,
            message.clone(),
            generation,
        );
        ctx.events
            .normal(backup, status::JOB_CREATED, "Backup", message)
            .await;
        write(ctx, backup, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };

    record_start(backup, &mut status, &existing);
    match observe(&ctx.client, &existing, ctx.jobs.fake_br).await? {
        Run::Active { running } => {
            if running && status.phase != Some(Phase::Running) {
                status.phase = Some(Phase::Running);
                mark(
                    &mut status.conditions,
                    Phase::Running.as_str(),
                    true,
                    status::JOB_RUNNING,
                    format!("Job {job_name} is running BR"),
                    generation,
                );
            }
            write(ctx, backup, &status).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Run::Done(result) if result.ok => {
            complete(backup, ctx, status, &result).await?;
            Ok(Action::await_change())
        }
        Run::Done(result) => failed_attempt(backup, ctx, status, &result).await,
    }
}

/// What the pass that created `job` wrote about it, written again from the Job itself when that
/// write was lost (a conflict with a newer copy of the Backup).
fn record_start(backup: &Backup, status: &mut BackupStatus, job: &Job) {
    let created = job
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(now_time);
    if let Some(last) = status.backoff_retry_status.last_mut()
        && last.real_retry_at.is_none()
    {
        last.real_retry_at = Some(created.clone());
    }
    if status.time_started.is_none() {
        status.time_started = Some(created);
    }
    record_path(backup, status);
    if matches!(status.phase, None | Some(Phase::Invalid)) {
        status.phase = Some(Phase::Scheduled);
    }
}

/// The backup's location, as the pass that created its Job wrote it.
fn record_path(backup: &Backup, status: &mut BackupStatus) {
    if status.backup_path.is_empty()
        && let Ok(storage) = Storage::of(&backup.spec.storage)
    {
        status.backup_path = storage.uri();
    }
}

async fn complete(
    backup: &Backup,
    ctx: &Ctx,
    mut status: BackupStatus,
    result: &RunResult,
) -> Result<(), Error> {
    let now = Timestamp::now();
    status.phase = Some(Phase::Complete);
    status.time_completed = Some(Time(now));
    if let Some(started) = &status.time_started {
        let taken = now.duration_since(started.0);
        status.time_taken = duration::format(Duration::try_from(taken).unwrap_or_default());
    }
    if let Some(size) = result.size {
        status.backup_size = size;
        status.backup_size_readable = readable_size(size);
    }
    if let Some(ts) = &result.commit_ts {
        status.commit_ts = ts.clone();
    }
    let message = match (result.size, &result.commit_ts) {
        (Some(size), Some(ts)) => {
            format!(
                "backup of {} at TS {ts} is in {}",
                readable_size(size),
                status.backup_path
            )
        }
        _ => format!("backup is in {}", status.backup_path),
    };
    mark(
        &mut status.conditions,
        Phase::Complete.as_str(),
        true,
        status::SUCCEEDED,
        message.clone(),
        backup.metadata.generation,
    );
    ctx.events
        .normal(backup, "BackupComplete", "Backup", message)
        .await;
    write(ctx, backup, &status).await
}

async fn failed_attempt(
    backup: &Backup,
    ctx: &Ctx,
    mut status: BackupStatus,
    result: &RunResult,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    // The policy was checked before the first Job; an unreadable one here means no retry.
    let policy = RetryPolicy::of(&backup.spec.backoff_retry_policy).unwrap_or(RetryPolicy {
        min_retry: retry::DEFAULT_MIN_RETRY,
        max_retries: 0,
        timeout: retry::DEFAULT_RETRY_TIMEOUT,
    });
    let first_failure = status
        .backoff_retry_status
        .first()
        .and_then(|r| r.detect_failed_at.as_ref())
        .map_or(now, |t| t.0);
    let done = u32::try_from(status.backoff_retry_status.len()).unwrap_or(u32::MAX);
    let generation = backup.metadata.generation;
    match retry::decide(&policy, done, first_failure, now) {
        Decision::Retry { number, at } => {
            status.backoff_retry_status.push(BackoffRetryRecord {
                retry_num: i32::try_from(number).unwrap_or(i32::MAX),
                detect_failed_at: Some(Time(now)),
                expected_retry_at: Some(Time(at)),
                real_retry_at: None,
                retry_reason: "the backup Job failed".into(),
                original_reason: result.message.clone(),
            });
            status.phase = Some(Phase::RetryFailed);
            let message = format!(
                "BR failed: {}; retry {number} of {} at {at}",
                result.message, policy.max_retries
            );
            mark(
                &mut status.conditions,
                Phase::RetryFailed.as_str(),
                true,
                status::RETRY_SCHEDULED,
                message.clone(),
                generation,
            );
            ctx.events
                .warning(backup, status::RETRY_SCHEDULED, "Backup", message)
                .await;
            write(ctx, backup, &status).await?;
            let wait = at.duration_since(now);
            Ok(Action::requeue(
                Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(200),
            ))
        }
        Decision::GiveUp(why) => {
            status.phase = Some(Phase::Failed);
            let message = format!("BR failed: {}; {why}", result.message);
            mark(
                &mut status.conditions,
                Phase::Failed.as_str(),
                true,
                status::FAILED,
                message.clone(),
                generation,
            );
            ctx.events
                .warning(backup, "BackupFailed", "Backup", message)
                .await;
            write(ctx, backup, &status).await?;
            Ok(Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests {
    use operator_api::br::BackupSpec;

    use super::clean::{clean_job_name, needs_clean};
    use super::log::{log_action, log_job_name};
    use super::*;

    fn backup(spec: serde_json::Value) -> Backup {
        let spec: BackupSpec = serde_json::from_value(spec).unwrap();
        Backup::new("b", spec)
    }

    #[test]
    fn a_lost_start_write_is_recovered_from_the_job() {
        let b = backup(serde_json::json!({"local": {
            "prefix": "p",
            "volume": {"name": "v"},
            "volumeMount": {"name": "v", "mountPath": "/b"}
        }}));
        let mut status = BackupStatus {
            backoff_retry_status: vec![BackoffRetryRecord {
                retry_num: 1,
                ..BackoffRetryRecord::default()
            }],
            ..BackupStatus::default()
        };
        let created = Time(Timestamp::from_second(1_700_000_000).unwrap());
        let mut job = Job::default();
        job.metadata.creation_timestamp = Some(created.clone());
        record_start(&b, &mut status, &job);
        assert_eq!(
            status.backoff_retry_status[0].real_retry_at,
            Some(created.clone())
        );
        assert_eq!(status.time_started, Some(created));
        assert_eq!(status.phase, Some(Phase::Scheduled));
        assert!(!status.backup_path.is_empty());
        // What was recorded stays as it was.
        let again = status.clone();
        let mut later = Job::default();
        later.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(1_800_000_000).unwrap()));
        record_start(&b, &mut status, &later);
        assert_eq!(status, again);
    }

    #[test]
    fn log_commands_follow_the_spec_and_the_task_state() {
        let start = backup(serde_json::json!({"backupMode": "log"}));
        assert_eq!(log_action(&start, None), Some(BackupAction::LogStart));
        assert_eq!(log_action(&start, Some(Phase::Running)), None);
        assert_eq!(
            log_action(&start, Some(Phase::Paused)),
            Some(BackupAction::LogResume)
        );
        let pause = backup(serde_json::json!({"backupMode": "log", "logSubcommand": "log-pause"}));
        assert_eq!(
            log_action(&pause, Some(Phase::Running)),
            Some(BackupAction::LogPause)
        );
        assert_eq!(log_action(&pause, Some(Phase::Paused)), None);
        let stop = backup(serde_json::json!({"backupMode": "log", "logStop": true}));
        assert_eq!(
            log_action(&stop, Some(Phase::Running)),
            Some(BackupAction::LogStop)
        );
        assert_eq!(log_action(&stop, Some(Phase::Stopped)), None);
    }

    #[test]
    fn job_names_are_per_attempt_and_per_change() {
        assert_eq!(snapshot_job_name("b", 0), "backup-b");
        assert_eq!(snapshot_job_name("b", 2), "backup-b-retry-2");
        assert_eq!(
            log_job_name("l", &BackupAction::LogStart, 3),
            "backup-l-log-start-g3"
        );
        let a = log_job_name("l", &BackupAction::LogTruncate { until: "1".into() }, 1);
        let b = log_job_name("l", &BackupAction::LogTruncate { until: "2".into() }, 1);
        assert_ne!(a, b);
        assert_eq!(
            a,
            log_job_name("l", &BackupAction::LogTruncate { until: "1".into() }, 9)
        );
        assert_eq!(clean_job_name("b", 1), "clean-b-1");
    }

    #[test]
    fn clean_policy_decides_what_is_deleted() {
        let mut b = backup(serde_json::json!({"cleanPolicy": "Delete"}));
        assert!(!needs_clean(&b), "never ran: no data");
        b.status = Some(BackupStatus {
            backup_path: "s3://b/p".into(),
            phase: Some(Phase::Complete),
            ..BackupStatus::default()
        });
        assert!(needs_clean(&b));
        b.spec.clean_policy = Some(CleanPolicy::OnFailure);
        assert!(!needs_clean(&b));
        b.status.as_mut().unwrap().phase = Some(Phase::Failed);
        assert!(needs_clean(&b));
        b.spec.clean_policy = Some(CleanPolicy::Retain);
        assert!(!needs_clean(&b));
        assert!(needs_finalizer(&backup(
            serde_json::json!({"cleanPolicy": "OnFailure"})
        )));
        assert!(!needs_finalizer(&backup(serde_json::json!({}))));
    }
}
