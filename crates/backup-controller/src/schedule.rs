//! The BackupSchedule reconcile: a Backup from `backupTemplate` each time the cron schedule
//! fires (unless paused), retention by `maxReservedTime` or `maxBackups` (each removed Backup's
//! own `cleanPolicy` decides what happens to its data), and a log backup kept alongside when
//! `logBackupTemplate` is set.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::br::{Backup, BackupMode, BackupSchedule, BackupSpec, LogSubCommandType};
use operator_runtime::group::write_status_if_changed;
use tracing::{info, instrument};

use crate::cadence::{self, Made, Schedule};
use crate::context::{Ctx, MANAGER};
use crate::error::Error;
use crate::job;
use crate::outcome::FAKE_BR_ANNOTATION;
use crate::storage::Storage;
use operator_runtime::duration;

/// Label on the Backups a schedule makes: the schedule's name.
pub const LABEL_SCHEDULE: &str = "br.pingcap.com/backup-schedule";
/// Reason (Event and `Ready` condition): the schedule does not parse.
pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
/// Reason (Event and `Ready` condition): the templates cannot make a valid Backup.
pub const INVALID_TEMPLATE: &str = "InvalidTemplate";
/// Longest wait between two looks at a schedule.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Reconciles one BackupSchedule.
#[instrument(skip_all, fields(namespace = schedule.namespace(), schedule = schedule.name_any()))]
pub async fn reconcile(schedule: Arc<BackupSchedule>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(
        &ctx.metrics,
        "backupschedule",
        Box::pin(reconcile_inner(&schedule, &ctx)),
    )
    .await
}

/// Name of the log Backup a schedule keeps.
pub fn log_backup_name(schedule: &str) -> String {
    format!("{schedule}-log")
}

/// A template completed with the schedule's defaults: storage, BR settings, scratch volume and
/// pull secrets the template leaves empty.
pub fn backup_spec(schedule: &BackupSchedule, template: &BackupSpec) -> BackupSpec {
    let mut spec = template.clone();
    if spec.storage.is_empty() {
        spec.storage = schedule.spec.storage.clone();
    }
    if spec.br.is_none() {
        spec.br = schedule.spec.br.clone();
    }
    if spec.storage_class_name.is_none() {
        spec.storage_class_name = schedule.spec.storage_class_name.clone();
    }
    if spec.storage_size.is_empty() {
        spec.storage_size = schedule.spec.storage_size.clone();
    }
    if spec.image_pull_secrets.is_empty() {
        spec.image_pull_secrets = schedule.spec.image_pull_secrets.clone();
    }
    spec
}

fn new_backup(schedule: &BackupSchedule, name: String, spec: BackupSpec) -> Backup {
    let mut annotations = std::collections::BTreeMap::new();
    // Test tooling passes down to the Backups.
    if let Some(fake) = schedule.annotations().get(FAKE_BR_ANNOTATION) {
        annotations.insert(FAKE_BR_ANNOTATION.to_string(), fake.clone());
    }
    Backup {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: schedule.namespace(),
            labels: Some([(LABEL_SCHEDULE.to_string(), schedule.name_any())].into()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![job::owner(schedule)]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

async fn reconcile_inner(schedule: &BackupSchedule, ctx: &Ctx) -> Result<Action, Error> {
    let Some(namespace) = schedule.namespace() else {
        return Err(Error::Invalid("BackupSchedule has no namespace".into()));
    };
    if schedule.metadata.deletion_timestamp.is_some() {
        // Its Backups go with it (owner references); each one's cleanPolicy applies.
        return Ok(Action::await_change());
    }
    let name = schedule.name_any();
    let cron = match Schedule::parse(&schedule.spec.schedule) {
        Ok(cron) => cron,
        Err(message) => {
            ctx.events
                .warning(
                    schedule,
                    INVALID_SCHEDULE,
                    "Schedule",
                    format!("{message}; no Backup is made until it is fixed"),
                )
                .await;
            write_ready(
                schedule,
                ctx,
                Some((
                    INVALID_SCHEDULE,
                    format!("schedule {:?}: {message}", schedule.spec.schedule),
                )),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let template = backup_spec(schedule, &schedule.spec.backup_template);
    if let Err(e) = Storage::of(&template.storage) {
        ctx.events
            .warning(
                schedule,
                INVALID_TEMPLATE,
                "Schedule",
                format!("backupTemplate: {e}; no Backup is made until it is fixed"),
            )
            .await;
        write_ready(
            schedule,
            ctx,
            Some((INVALID_TEMPLATE, format!("backupTemplate: {e}"))),
        )
        .await?;
        return Ok(Action::await_change());
    }
    let max_reserved = match schedule.spec.max_reserved_time.as_deref() {
        Some(text) => match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                ctx.events
                    .warning(
                        schedule,
                        INVALID_TEMPLATE,
                        "Schedule",
                        format!("maxReservedTime: {e}; retention by age is off until it is fixed"),
                    )
                    .await;
                None
            }
        },
        None => None,
    };

    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = schedule.status.clone().unwrap_or_default();
    let now = Timestamp::now();

    // A Backup when the schedule fired since the last one.
    if !schedule.spec.pause {
        let last = status
            .last_backup_time
            .as_ref()
            .or(schedule.metadata.creation_timestamp.as_ref())
            .map_or(now, |t| t.0);
        if let Some(at) = cron.due(last, now) {
            let backup_name = cadence::backup_name(&name, at);
            let backup = new_backup(schedule, backup_name.clone(), template.clone());
            let params = PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            };
            match backups.create(&params, &backup).await {
                Ok(_) => {
                    info!(backup = backup_name, "created scheduled Backup");
                    ctx.events
                        .normal(
                            schedule,
                            "BackupCreated",
                            "Schedule",
                            format!("created Backup {backup_name} for the run at {at}"),
                        )
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::kube(format!("creating Backup {backup_name}"))(e)),
            }
            status.last_backup = backup_name;
            status.last_backup_time = Some(Time(at));
        }
    }

    // Retention over the snapshot Backups this schedule made.
    let made: Vec<Made> = backups
        .list(&ListParams::default().labels(&format!("{LABEL_SCHEDULE}={name}")))
        .await
        .map_err(Error::kube("listing the schedule's Backups"))?
        .items
        .into_iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter(|b| b.spec.mode.unwrap_or_default() == BackupMode::Snapshot)
        .map(|b| Made {
            created: b.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
            name: b.name_any(),
        })
        .collect();
    for old in cadence::to_remove(&made, schedule.spec.max_backups, max_reserved, now) {
        match backups.delete(&old, &DeleteParams::background()).await {
            Ok(_) => {
                info!(backup = old, "removed Backup past retention");
                ctx.events
                    .normal(
                        schedule,
                        "BackupRemoved",
                        "Retention",
                        format!("removed Backup {old}: past the schedule's retention"),
                    )
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("removing Backup {old}"))(e)),
        }
    }

    // The log backup alongside.
    if let Some(log_template) = &schedule.spec.log_backup_template {
        let log_name = log_backup_name(&name);
        let mut spec = backup_spec(schedule, log_template);
        spec.mode = Some(BackupMode::Log);
        let wanted = if schedule.spec.pause {
            LogSubCommandType::LogPause
        } else {
            LogSubCommandType::LogStart
        };
        match backups
            .get_opt(&log_name)
            .await
            .map_err(Error::kube("reading the log Backup"))?
        {
            None => {
                spec.log_subcommand = Some(wanted);
                let backup = new_backup(schedule, log_name.clone(), spec);
                let params = PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..PostParams::default()
                };
                match backups.create(&params, &backup).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(Error::kube("creating the log Backup")(e)),
                }
                status.log_backup_start_ts = Some(Time(now));
            }
            Some(existing) => {
                let current = existing
                    .spec
                    .log_subcommand
                    .unwrap_or(LogSubCommandType::LogStart);
                let stopped = existing.spec.log_stop || current == LogSubCommandType::LogStop;
                if !stopped && current != wanted {
                    let patch = serde_json::json!({"spec": {"logSubcommand": wanted.as_str()}});
                    backups
                        .patch(&log_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(Error::kube("pausing or resuming the log Backup"))?;
                }
            }
        }
        status.log_backup = Some(log_name);
    }

    set_ready(&mut status, schedule.metadata.generation, None);
    write_status_if_changed(
        &Api::<BackupSchedule>::namespaced(ctx.client.clone(), &namespace),
        schedule,
        schedule.status.as_ref(),
        &status,
    )
    .await
    .map_err(Error::kube("writing the BackupSchedule status"))?;

    Ok(next_look(&cron, schedule.spec.pause, Timestamp::now()))
}

/// When to look at the schedule again: just after its next run, at most [`MAX_WAIT`] away.
fn next_look(cron: &Schedule, paused: bool, now: Timestamp) -> Action {
    if paused {
        return Action::requeue(MAX_WAIT);
    }
    let wait = cron
        .next_after(now)
        .map(|next| next.duration_since(now))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(MAX_WAIT);
    Action::requeue(wait.min(MAX_WAIT) + Duration::from_millis(300))
}

/// Records on the schedule why it cannot be acted on (`Ready=False`), or that it can.
async fn write_ready(
    schedule: &BackupSchedule,
    ctx: &Ctx,
    problem: Option<(&str, String)>,
) -> Result<(), Error> {
    let mut status = schedule.status.clone().unwrap_or_default();
    set_ready(&mut status, schedule.metadata.generation, problem);
    write_status_if_changed(
        &Api::<BackupSchedule>::namespaced(
            ctx.client.clone(),
            &schedule.namespace().unwrap_or_default(),
        ),
        schedule,
        schedule.status.as_ref(),
        &status,
    )
    .await
    .map_err(Error::kube("writing the BackupSchedule status"))?;
    Ok(())
}

fn set_ready(
    status: &mut operator_api::br::BackupScheduleStatus,
    generation: Option<i64>,
    problem: Option<(&str, String)>,
) {
    let (ok, reason, message) = match problem {
        Some((reason, message)) => (false, reason.to_string(), message),
        None => (
            true,
            "Scheduling".to_string(),
            "the schedule and its templates are valid".to_string(),
        ),
    };
    operator_api::conditions::set(
        &mut status.conditions,
        operator_api::conditions::NewCondition {
            type_: operator_api::conditions::READY,
            status: ok,
            reason: &reason,
            message,
            observed_generation: generation,
        },
        Timestamp::now(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_schedules_defaults() {
        let schedule: BackupSchedule = serde_json::from_value(serde_json::json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": "nightly", "namespace": "db"},
            "spec": {
                "schedule": "0 2 * * *",
                "br": {"cluster": "basic"},
                "s3": {"provider": "aws", "bucket": "b"},
                "storageSize": "10Gi",
                "backupTemplate": {"cleanPolicy": "Delete"}
            }
        }))
        .unwrap();
        let spec = backup_spec(&schedule, &schedule.spec.backup_template);
        assert_eq!(spec.br.unwrap().cluster, "basic");
        assert_eq!(spec.storage.s3.unwrap().bucket, "b");
        assert_eq!(spec.storage_size, "10Gi");
        let backup = new_backup(
            &schedule,
            "nightly-x".into(),
            schedule.spec.backup_template.clone(),
        );
        assert_eq!(backup.labels()[LABEL_SCHEDULE], "nightly");
        assert_eq!(backup.owner_references()[0].kind, "BackupSchedule");
    }
}
