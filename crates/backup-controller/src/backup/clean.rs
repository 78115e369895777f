//! A deleted Backup: its data removed first when its `cleanPolicy` says so (a clean-up Job), then
//! its finalizer released.

use super::*;

/// Name of the clean-up Job of attempt `attempt` for a Backup.
pub(super) fn clean_job_name(backup: &str, attempt: usize) -> String {
    format!("clean-{backup}-{attempt}")
}

/// Whether a deleted Backup's data is to be removed.
pub(super) fn needs_clean(backup: &Backup) -> bool {
    let status = backup.status.clone().unwrap_or_default();
    let has_data = !status.backup_path.is_empty();
    match backup.spec.clean_policy.unwrap_or_default() {
        CleanPolicy::Retain => false,
        CleanPolicy::Delete => has_data,
        CleanPolicy::OnFailure => has_data && status.phase == Some(Phase::Failed),
    }
}

pub(super) async fn release(backup: &Backup, ctx: &Ctx) -> Result<Action, Error> {
    finalize::set_finalizer(&api(ctx, backup), backup, false)
        .await
        .map_err(Error::kube("removing the Backup's finalizer"))?;
    Ok(Action::await_change())
}

pub(super) async fn abandon(backup: &Backup, ctx: &Ctx, why: String) -> Result<Action, Error> {
    let message = format!(
        "the Backup is released without its data deleted: {why}; delete {} by hand",
        backup
            .status
            .as_ref()
            .map(|s| s.backup_path.as_str())
            .unwrap_or("the data")
    );
    ctx.events
        .warning(backup, status::CLEAN_ABANDONED, "Clean", message)
        .await;
    release(backup, ctx).await
}

/// A deleted Backup: remove its data through clean-up Jobs when its policy says so (bounded
/// attempts and time), then let it go.
pub(super) async fn finalize(backup: &Backup, ctx: &Ctx) -> Result<Action, Error> {
    if !has_finalizer(backup) {
        return Ok(Action::await_change());
    }
    if !needs_clean(backup) {
        return release(backup, ctx).await;
    }
    let namespace = backup.namespace().unwrap_or_default();
    let name = backup.name_any();
    let storage = match Storage::of(&backup.spec.storage) {
        Ok(storage) => storage,
        Err(e) => return abandon(backup, ctx, format!("its storage cannot be used: {e}")).await,
    };
    let deleted_at = backup
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let timed_out = Timestamp::now().duration_since(deleted_at)
        >= k8s_openapi::jiff::SignedDuration::try_from(ctx.clean.timeout)
            .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);

    let mut attempts = Vec::new();
    for attempt in 0..ctx.clean.max_attempts {
        let job = jobs(ctx, backup)
            .get_opt(&clean_job_name(&name, attempt))
            .await
            .map_err(Error::kube("reading a clean-up Job"))?;
        match job {
            Some(job) => attempts.push(job),
            None => break,
        }
    }
    let mut status = backup.status.clone().unwrap_or_default();
    let mut last_failure = None;
    if let Some(last) = attempts.last() {
        match observe(&ctx.client, last, ctx.jobs.fake_br).await? {
            Run::Active { .. } => {
                if timed_out {
                    return abandon(backup, ctx, "the clean-up did not finish in time".into())
                        .await;
                }
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Run::Done(result) if result.ok => {
                ctx.events
                    .normal(
                        backup,
                        status::CLEANED,
                        "Clean",
                        format!("deleted the backup data in {}", storage.uri()),
                    )
                    .await;
                return release(backup, ctx).await;
            }
            Run::Done(result) => {
                let message = format!(
                    "clean-up attempt {} of {} failed: {}",
                    attempts.len(),
                    ctx.clean.max_attempts,
                    result.message
                );
                if mark(
                    &mut status.conditions,
                    Phase::CleanFailed.as_str(),
                    true,
                    status::CLEAN_FAILED,
                    message.clone(),
                    backup.metadata.generation,
                ) {
                    status.phase = Some(Phase::CleanFailed);
                    ctx.events
                        .warning(backup, status::CLEAN_FAILED, "Clean", message.clone())
                        .await;
                    write(ctx, backup, &status).await?;
                    // The write made this copy stale; the next pass retries or gives up.
                    return Ok(Action::requeue(Duration::from_millis(500)));
                }
                last_failure = Some((message, last.clone()));
            }
        }
    }
    if let Some((message, _)) = &last_failure
        && (attempts.len() >= ctx.clean.max_attempts || timed_out)
    {
        return abandon(backup, ctx, message.clone()).await;
    }
    if timed_out {
        return abandon(backup, ctx, "the clean-up did not finish in time".into()).await;
    }
    if let Some((_, job)) = &last_failure {
        let finished = job
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone().or(s.start_time.clone()))
            .map_or(deleted_at, |t| t.0);
        let wait = k8s_openapi::jiff::SignedDuration::try_from(ctx.clean.retry_wait)
            .unwrap_or_default()
            - Timestamp::now().duration_since(finished);
        if wait.is_positive() {
            return Ok(Action::requeue(
                Duration::try_from(wait).unwrap_or(ctx.clean.retry_wait),
            ));
        }
    }

    let attempt = attempts.len();
    let job_name = clean_job_name(&name, attempt);
    let cluster = backup
        .spec
        .br
        .as_ref()
        .map(|b| b.cluster.clone())
        .unwrap_or_default();
    let job = job::build(
        &ctx.jobs,
        JobRequest {
            name: job_name.clone(),
            namespace: namespace.clone(),
            owner: job::owner(backup),
            labels: job::labels(backup, LABEL_BACKUP, &cluster, COMPONENT_CLEAN),
            work: Work::Clean {
                args: vec![format!("--storage={}", storage.uri())],
            },
            env: storage.env(),
            storage_volume: storage.volume(),
            tls: None,
            pod: PodSettings::of_backup(&backup.spec),
            fake: fake_mode(backup, FAKE_CLEAN_ANNOTATION),
        },
    );
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match jobs(ctx, backup).create(&params, &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        // A namespace being deleted accepts no new objects: nothing can clean up any more.
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("terminat") => {
            return abandon(
                backup,
                ctx,
                format!("namespace {namespace} is being deleted, so no clean-up Job can run"),
            )
            .await;
        }
        Err(e) => return Err(Error::kube(format!("creating clean-up Job {job_name}"))(e)),
    }
    let message = format!(
        "Job {job_name} deletes the backup data in {} (attempt {} of {})",
        storage.uri(),
        attempt + 1,
        ctx.clean.max_attempts
    );
    mark(
        &mut status.conditions,
        Phase::Clean.as_str(),
        true,
        status::CLEAN_JOB_CREATED,
        message.clone(),
        backup.metadata.generation,
    );
    ctx.events
        .normal(backup, status::CLEAN_JOB_CREATED, "Clean", message)
        .await;
    write(ctx, backup, &status).await?;
    Ok(Action::requeue(Duration::from_secs(5)))
}
