//! The Restore reconcile: one BR Job that loads a snapshot backup (or a snapshot and the log
//! backup up to a point in time) into a Cluster, and the result in status. A Restore into a
//! Cluster that does not exist creates nothing and says so.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::br::{Restore, RestoreConditionType as Phase, RestoreMode, RestoreStatus};
use operator_api::conditions::{self, reasons};
use operator_runtime::group::write_status_if_changed;
use tracing::{info, instrument};

use crate::backup::check_secret;
use crate::command;
use crate::context::{Ctx, MANAGER};
use crate::error::Error;
use crate::job::{self, JobRequest, PodSettings, Work};
use crate::observe::{Run, observe};
use crate::outcome::{FAKE_BR_ANNOTATION, RunResult, fake_mode};
use crate::status::{self, Blocked, mark};
use crate::storage::Storage;
use crate::target::{self, CLUSTER_NOT_READY};
use operator_runtime::duration;

/// Label on a Restore's Job: the Restore's name.
pub const LABEL_RESTORE: &str = "br.pingcap.com/restore";
/// Component label value of restore Jobs.
pub const COMPONENT_RESTORE: &str = "restore";

/// Name of a Restore's Job.
pub fn job_name(restore: &str) -> String {
    format!("restore-{restore}")
}

/// Reconciles one Restore.
#[instrument(skip_all, fields(namespace = restore.namespace(), restore = restore.name_any()))]
pub async fn reconcile(restore: Arc<Restore>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(
        &ctx.metrics,
        "restore",
        Box::pin(reconcile_inner(&restore, &ctx)),
    )
    .await
}

fn jobs(ctx: &Ctx, restore: &Restore) -> Api<Job> {
    Api::namespaced(ctx.client.clone(), &restore.namespace().unwrap_or_default())
}

async fn write(ctx: &Ctx, restore: &Restore, status: &RestoreStatus) -> Result<(), Error> {
    let api =
        Api::<Restore>::namespaced(ctx.client.clone(), &restore.namespace().unwrap_or_default());
    write_status_if_changed(&api, restore, restore.status.as_ref(), status)
        .await
        .map_err(Error::kube("writing the Restore status"))?;
    Ok(())
}

/// Builds the Restore's Job, or says why it cannot run.
async fn prepare(restore: &Restore, ctx: &Ctx) -> Result<Result<Job, Blocked>, Error> {
    let namespace = restore.namespace().unwrap_or_default();
    let spec = &restore.spec;
    let invalid = |message: String| Ok(Err(Blocked::new(reasons::INVALID_SPEC, message)));
    if let Err(e) = job::check_job_name(&job_name(&restore.name_any())) {
        return invalid(e);
    }
    let Some(br) = spec.br.as_ref().filter(|br| !br.cluster.is_empty()) else {
        return invalid("spec.br.cluster is required: the Cluster to restore to".into());
    };
    let storage = match Storage::of(&spec.storage) {
        Ok(storage) => storage,
        Err(e) => return invalid(e),
    };
    let pitr = spec.mode.unwrap_or_default() == RestoreMode::Pitr;
    let full_backup = if pitr && !spec.pitr_full_backup_storage_provider.is_empty() {
        match Storage::of(&spec.pitr_full_backup_storage_provider) {
            Ok(storage) => Some(storage),
            Err(e) => return invalid(format!("pitrFullBackupStorageProvider: {e}")),
        }
    } else {
        None
    };
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
    let mut args = match command::restore(spec, br, &storage, full_backup.as_ref(), &target.pd) {
        Ok(args) => args,
        Err(e) => return invalid(e),
    };
    if target.tls.is_some() {
        command::add_tls(&mut args);
    }
    let fake = fake_mode(restore, FAKE_BR_ANNOTATION);
    Ok(Ok(job::build(
        &ctx.jobs,
        JobRequest {
            name: job_name(&restore.name_any()),
            namespace,
            owner: job::owner(restore),
            labels: job::labels(restore, LABEL_RESTORE, &target.name, COMPONENT_RESTORE),
            work: Work::Br { image, args },
            env: storage.env(),
            storage_volume: storage.volume(),
            tls: target.tls.clone(),
            pod: PodSettings::of_restore(spec),
            fake,
        },
    )))
}

async fn reconcile_inner(restore: &Restore, ctx: &Ctx) -> Result<Action, Error> {
    if restore.namespace().is_none() {
        return Err(Error::Invalid("Restore has no namespace".into()));
    }
    if restore.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let mut status = restore.status.clone().unwrap_or_default();
    if matches!(status.phase, Some(Phase::Complete) | Some(Phase::Failed)) {
        return Ok(Action::await_change());
    }
    let generation = restore.metadata.generation;
    let name = job_name(&restore.name_any());
    let existing = jobs(ctx, restore)
        .get_opt(&name)
        .await
        .map_err(Error::kube("reading the restore Job"))?;
    let Some(existing) = existing else {
        let job = match prepare(restore, ctx).await? {
            Ok(job) => job,
            Err(blocked) => {
                let changed = mark(
                    &mut status.conditions,
                    Phase::Invalid.as_str(),
                    true,
                    &blocked.reason,
                    blocked.message.clone(),
                    generation,
                );
                status.phase = Some(Phase::Invalid);
                if changed {
                    ctx.events
                        .warning(
                            restore,
                            &blocked.reason,
                            "Validate",
                            blocked.message.clone(),
                        )
                        .await;
                }
                write(ctx, restore, &status).await?;
                return Ok(if blocked.may_clear() {
                    Action::requeue(Duration::from_secs(15))
                } else {
                    Action::await_change()
                });
            }
        };
        if conditions::is_true(&status.conditions, Phase::Invalid.as_str()) {
            mark(
                &mut status.conditions,
                Phase::Invalid.as_str(),
                false,
                status::VALID,
                "the Restore passed its checks".into(),
                generation,
            );
        }
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        match jobs(ctx, restore).create(&params, &job).await {
            Ok(_) => info!(job = name, "created Job"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::kube(format!("creating Job {name}"))(e)),
        }
        status.phase = Some(Phase::Scheduled);
        status.time_started = Some(Time(Timestamp::now()));
        let message = format!("Job {name} runs BR");
        mark(
            &mut status.conditions,
            Phase::Scheduled.as_str(),
            true,
            status::JOB_CREATED,
            message.clone(),
            generation,
        );
        ctx.events
            .normal(restore, status::JOB_CREATED, "Restore", message)
            .await;
        write(ctx, restore, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    // What the pass that created the Job wrote, again, in case that write was lost.
    if status.time_started.is_none() {
        status.time_started = existing.metadata.creation_timestamp.clone();
    }
    if matches!(status.phase, None | Some(Phase::Invalid)) {
        status.phase = Some(Phase::Scheduled);
    }
    match observe(&ctx.client, &existing, ctx.jobs.fake_br).await? {
        Run::Active { running } => {
            if running && status.phase != Some(Phase::Running) {
                status.phase = Some(Phase::Running);
                mark(
                    &mut status.conditions,
                    Phase::Running.as_str(),
                    true,
                    status::JOB_RUNNING,
                    format!("Job {name} is running BR"),
                    generation,
                );
            }
            write(ctx, restore, &status).await?;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Run::Done(result) => {
            finish(restore, ctx, status, &result).await?;
            Ok(Action::await_change())
        }
    }
}

async fn finish(
    restore: &Restore,
    ctx: &Ctx,
    mut status: RestoreStatus,
    result: &RunResult,
) -> Result<(), Error> {
    let now = Timestamp::now();
    let generation = restore.metadata.generation;
    if result.ok {
        status.phase = Some(Phase::Complete);
        status.time_completed = Some(Time(now));
        if let Some(started) = &status.time_started {
            let taken = now.duration_since(started.0);
            status.time_taken = duration::format(Duration::try_from(taken).unwrap_or_default());
        }
        if let Some(ts) = &result.commit_ts {
            status.commit_ts = ts.clone();
        }
        let message = match &result.commit_ts {
            Some(ts) => format!("the cluster holds the data as of TS {ts}"),
            None => "the restore finished".to_string(),
        };
        mark(
            &mut status.conditions,
            Phase::Complete.as_str(),
            true,
            status::SUCCEEDED,
            message.clone(),
            generation,
        );
        ctx.events
            .normal(restore, "RestoreComplete", "Restore", message)
            .await;
    } else {
        status.phase = Some(Phase::Failed);
        let message = format!("BR failed: {}", result.message);
        mark(
            &mut status.conditions,
            Phase::Failed.as_str(),
            true,
            status::FAILED,
            message.clone(),
            generation,
        );
        ctx.events
            .warning(restore, "RestoreFailed", "Restore", message)
            .await;
    }
    write(ctx, restore, &status).await
}
