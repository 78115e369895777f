//! A log backup: a task in the cluster that Jobs start, pause, resume, stop and truncate as the
//! Backup's spec says.

use super::*;

/// The log backup command the spec asks for, given what the task last did (the phase).
pub(super) fn log_action(backup: &Backup, phase: Option<Phase>) -> Option<BackupAction> {
    let desired = if backup.spec.log_stop {
        LogSubCommandType::LogStop
    } else {
        backup
            .spec
            .log_subcommand
            .unwrap_or(LogSubCommandType::LogStart)
    };
    match (desired, phase) {
        (LogSubCommandType::LogStop, Some(Phase::Stopped)) => None,
        (LogSubCommandType::LogStop, _) => Some(BackupAction::LogStop),
        (LogSubCommandType::LogPause, Some(Phase::Paused)) => None,
        (LogSubCommandType::LogPause, _) => Some(BackupAction::LogPause),
        (_, Some(Phase::Running)) => None,
        (_, Some(Phase::Paused)) => Some(BackupAction::LogResume),
        _ => Some(BackupAction::LogStart),
    }
}

pub(super) fn log_command(action: &BackupAction) -> LogSubCommandType {
    match action {
        BackupAction::LogStop => LogSubCommandType::LogStop,
        BackupAction::LogPause => LogSubCommandType::LogPause,
        BackupAction::LogResume => LogSubCommandType::LogResume,
        BackupAction::LogTruncate { .. } => LogSubCommandType::LogTruncate,
        _ => LogSubCommandType::LogStart,
    }
}

/// The phase of a log backup once a command succeeded.
pub(super) fn phase_after(action: &BackupAction) -> Option<Phase> {
    match action {
        BackupAction::LogStart | BackupAction::LogResume => Some(Phase::Running),
        BackupAction::LogPause => Some(Phase::Paused),
        BackupAction::LogStop => Some(Phase::Stopped),
        _ => None,
    }
}

/// Name of the Job of a log backup command; one per spec generation (or truncate TS), so a
/// command is run once for each change the user makes.
pub(super) fn log_job_name(backup: &str, action: &BackupAction, generation: i64) -> String {
    match action {
        BackupAction::LogTruncate { until } => format!(
            "backup-{backup}-log-truncate-{:08x}",
            operator_runtime::revision::fnv1a64(until.as_bytes()) & 0xffff_ffff
        ),
        other => format!("backup-{backup}-{}-g{generation}", other.name()),
    }
}

pub(super) async fn log_backup(backup: &Backup, ctx: &Ctx) -> Result<Action, Error> {
    let mut status = backup.status.clone().unwrap_or_default();
    let generation = backup.metadata.generation.unwrap_or_default();
    let name = backup.name_any();
    let main = log_action(backup, status.phase);
    let truncate = (!backup.spec.log_truncate_until.is_empty()
        && backup.spec.log_truncate_until != status.log_success_truncate_until
        && status.phase != Some(Phase::Stopped))
    .then(|| BackupAction::LogTruncate {
        until: backup.spec.log_truncate_until.clone(),
    });
    // The task's own command first; a truncation once the task is settled.
    let Some(action) = main.or(truncate) else {
        return Ok(Action::await_change());
    };
    let job_name = log_job_name(&name, &action, generation);
    let command = log_command(&action);
    let key = command.as_str().to_string();
    let existing = jobs(ctx, backup)
        .get_opt(&job_name)
        .await
        .map_err(Error::kube("reading the log backup Job"))?;
    let Some(existing) = existing else {
        let (job, uri) = match prepare(backup, ctx, &action, &job_name).await? {
            Ok(prepared) => prepared,
            Err(blocked) => return write_blocked(backup, ctx, status, blocked).await,
        };
        clear_invalid(backup, &mut status);
        create_job(ctx, backup, &job).await?;
        let entry = status.log_sub_command_statuses.entry(key).or_default();
        entry.command = Some(command);
        entry.time_started = Some(now_time());
        entry.time_completed = None;
        entry.phase = Some(Phase::Scheduled);
        if let BackupAction::LogTruncate { until } = &action {
            entry.log_truncating_until = until.clone();
        }
        status.backup_path = uri;
        if status.phase.is_none() || status.phase == Some(Phase::Invalid) {
            status.phase = Some(Phase::Scheduled);
        }
        if status.time_started.is_none() {
            status.time_started = Some(now_time());
        }
        let message = format!("Job {job_name} runs br {}", action.name().replace('-', " "));
        mark(
            &mut status.conditions,
            Phase::Scheduled.as_str(),
            true,
            status::JOB_CREATED,
            message.clone(),
            Some(generation),
        );
        ctx.events
            .normal(backup, status::JOB_CREATED, "LogBackup", message)
            .await;
        write(ctx, backup, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    // What the pass that created the Job wrote, again, in case that write was lost.
    let entry = status
        .log_sub_command_statuses
        .entry(key.clone())
        .or_default();
    if entry.time_started.is_none() {
        entry.command = Some(command);
        entry.time_started = existing.metadata.creation_timestamp.clone();
        entry.phase = entry.phase.or(Some(Phase::Scheduled));
    }
    record_path(backup, &mut status);
    let Run::Done(result) = observe(&ctx.client, &existing, ctx.jobs.fake_br).await? else {
        write(ctx, backup, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let entry = status.log_sub_command_statuses.entry(key).or_default();
    if entry.phase == Some(Phase::Failed) {
        // Recorded already; the user changes the spec to try again.
        return Ok(Action::await_change());
    }
    entry.command = Some(command);
    entry.time_completed = Some(now_time());
    if result.ok {
        entry.phase = Some(Phase::Complete);
        if let BackupAction::LogTruncate { until } = &action {
            status.log_success_truncate_until = until.clone();
        } else if let Some(phase) = phase_after(&action) {
            status.phase = Some(phase);
            if matches!(action, BackupAction::LogStart)
                && let Some(ts) = &result.commit_ts
            {
                status.commit_ts = ts.clone();
            }
            mark(
                &mut status.conditions,
                phase.as_str(),
                true,
                status::SUCCEEDED,
                format!("br {} succeeded", action.name().replace('-', " ")),
                Some(generation),
            );
        }
        ctx.events
            .normal(
                backup,
                "LogCommandComplete",
                "LogBackup",
                format!("br {} succeeded", action.name().replace('-', " ")),
            )
            .await;
    } else {
        entry.phase = Some(Phase::Failed);
        let message = format!(
            "br {} failed: {}",
            action.name().replace('-', " "),
            result.message
        );
        if !matches!(action, BackupAction::LogTruncate { .. }) {
            status.phase = Some(Phase::Failed);
        }
        mark(
            &mut status.conditions,
            Phase::Failed.as_str(),
            true,
            status::FAILED,
            message.clone(),
            Some(generation),
        );
        ctx.events
            .warning(backup, "LogCommandFailed", "LogBackup", message)
            .await;
    }
    write(ctx, backup, &status).await?;
    Ok(Action::requeue(Duration::from_secs(2)))
}
