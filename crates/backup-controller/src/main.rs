//! backup-controller: reconciles Backup, Restore, BackupSchedule and CompactBackup
//! (`br.pingcap.com/v1alpha1`) into Jobs that run BR (or tikv-ctl), and reports their results in
//! status.
//!
//! The same binary is the runner inside those Jobs: `backup-controller run-br -- <br> <args>`
//! runs BR and leaves the result in the Pod's termination message, `run-compact` does the same for
//! a compaction, and `backup-controller clean`
//! deletes a backup's data.

mod backup;
mod cadence;
mod command;
mod compact;
mod context;
mod error;
mod job;
mod observe;
mod outcome;
mod restore;
mod retry;
mod runner;
mod schedule;
mod status;
mod storage;
mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use operator_api::br::{BRConfig, Backup, BackupSchedule, CompactBackup, Restore};
use operator_api::core::Cluster;
use operator_api::keys;
use operator_runtime::{CommonFlags, Context, RuntimeError};

use crate::context::{CleanSettings, Ctx};
use crate::error::Error;
use crate::job::JobSettings;

/// Name of the binary, its Lease, its field manager and its Events' reporter.
const NAME: &str = "backup-controller";

/// Command line of the backup-controller.
#[derive(Debug, Parser)]
#[command(
    name = NAME,
    version = operator_runtime::build_info::version(),
    about = "Reconciles Backup, Restore, BackupSchedule and CompactBackup of br.pingcap.com/v1alpha1"
)]
struct Cli {
    /// Without a subcommand: run the controllers.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    controller: ControllerFlags,
}

/// The runner's subcommands, run inside the Jobs.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run BR (the arguments after `--`), write its result to the termination message and exit
    /// with its code.
    RunBr(runner::RunBrArgs),
    /// Compact log backup data with tikv-ctl (the storage encoded by the BR binary after `--`),
    /// write the result to the termination message and exit with its code.
    RunCompact(runner::RunCompactArgs),
    /// Delete a backup's data.
    Clean(runner::CleanArgs),
}

/// Flags of the controllers.
#[derive(Debug, Args)]
struct ControllerFlags {
    /// Image of the runner in the Jobs: this binary's image (the released one by default; set
    /// it when the image comes from another registry).
    #[arg(
        long,
        env = "RUNNER_IMAGE",
        default_value = operator_runtime::build_info::IMAGE
    )]
    runner_image: String,
    /// Path of this binary in the runner image.
    #[arg(long, env = "RUNNER_COMMAND", default_value = "/backup-controller")]
    runner_command: String,
    /// Test tooling, never for production: Jobs run a fake BR (per object, annotation
    /// `tidb-operator.test/fake-br`: `success[:size=N,commit-ts=T]` or `fail[:message]`), and the
    /// result is also read from the Pod annotation `tidb-operator.test/fake-result`, for control
    /// planes that never run containers.
    #[arg(long)]
    fake_br: bool,
    /// Clean-up Jobs tried at most for a deleted Backup before it is let go with a Warning.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    clean_max_attempts: u16,
    /// Wait between a failed clean-up Job and the next.
    #[arg(long, default_value = "10s", value_parser = operator_runtime::duration::parse_flag)]
    clean_retry_wait: Duration,
    /// Time after a Backup's deletion after which it is let go even if its clean-up has not
    /// succeeded.
    #[arg(long, default_value = "10m", value_parser = operator_runtime::duration::parse_flag)]
    clean_timeout: Duration,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::RunBr(args)) => std::process::exit(runner::run_br(args)),
        Some(Command::RunCompact(args)) => std::process::exit(runner::run_compact(args)),
        Some(Command::Clean(args)) => std::process::exit(runner::clean(args)),
        None => {}
    }
    let flags = cli.controller;
    operator_runtime::main(NAME, cli.common, move |ctx| controllers(ctx, flags))
        .map_err(anyhow::Error::from_boxed)
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Whether a Backup or Restore in `namespace` with `br` targets `cluster` (its `clusterNamespace`,
/// or its own namespace when that is empty).
fn targets(br: Option<&BRConfig>, namespace: Option<&str>, cluster: &Cluster) -> bool {
    let cluster_ns = cluster.metadata.namespace.as_deref().unwrap_or_default();
    br.is_some_and(|br| {
        Some(br.cluster.as_str()) == cluster.metadata.name.as_deref()
            && (br.cluster_namespace == cluster_ns
                || (br.cluster_namespace.is_empty() && namespace == Some(cluster_ns)))
    })
}

/// Runs the Backup, Restore, BackupSchedule and CompactBackup controllers until shutdown.
async fn controllers(ctx: Context, flags: ControllerFlags) -> Result<(), RuntimeError> {
    if flags.fake_br {
        tracing::warn!("--fake-br: Jobs run a fake BR; this is test tooling, not for production");
    }
    let namespace = ctx.flags.namespace.as_deref();
    let shared = Ctx::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        JobSettings {
            runner_image: flags.runner_image,
            runner_command: flags.runner_command,
            fake_br: flags.fake_br,
        },
        CleanSettings {
            max_attempts: usize::from(flags.clean_max_attempts),
            retry_wait: flags.clean_retry_wait,
            timeout: flags.clean_timeout,
        },
    );
    let config = ctx.flags.controller_config();
    let backup_jobs = watcher::Config::default().labels(&format!(
        "{}={},{}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        backup::LABEL_BACKUP
    ));
    let restore_jobs = watcher::Config::default().labels(&format!(
        "{}={},{}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        restore::LABEL_RESTORE
    ));

    let compact_jobs = watcher::Config::default().labels(&format!(
        "{}={},{}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        compact::LABEL_COMPACT
    ));

    let backups = Controller::new(
        api::<Backup>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let backup_store = backups.store();
    let backups = backups
        .owns(api::<Job>(&ctx.client, namespace), backup_jobs)
        .watches(
            api::<Cluster>(&ctx.client, namespace),
            watcher::Config::default(),
            move |cluster| {
                backup_store
                    .state()
                    .into_iter()
                    .filter(|b| {
                        targets(
                            b.spec.br.as_ref(),
                            b.metadata.namespace.as_deref(),
                            &cluster,
                        )
                    })
                    .map(|b| ObjectRef::from_obj(&*b))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(backup::reconcile, error_policy::<Backup>, shared.clone())
        .for_each(|_| async {});

    let restores = Controller::new(
        api::<Restore>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let restore_store = restores.store();
    let restores = restores
        .owns(api::<Job>(&ctx.client, namespace), restore_jobs)
        .watches(
            api::<Cluster>(&ctx.client, namespace),
            watcher::Config::default(),
            move |cluster| {
                restore_store
                    .state()
                    .into_iter()
                    .filter(|r| {
                        targets(
                            r.spec.br.as_ref(),
                            r.metadata.namespace.as_deref(),
                            &cluster,
                        )
                    })
                    .map(|r| ObjectRef::from_obj(&*r))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(restore::reconcile, error_policy::<Restore>, shared.clone())
        .for_each(|_| async {});

    let compacts = Controller::new(
        api::<CompactBackup>(&ctx.client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Job>(&ctx.client, namespace), compact_jobs)
    .with_config(config.clone())
    .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
    .run(
        compact::reconcile,
        error_policy::<CompactBackup>,
        shared.clone(),
    )
    .for_each(|_| async {});

    let schedules = Controller::new(
        api::<BackupSchedule>(&ctx.client, namespace),
        watcher::Config::default(),
    )
    .owns(
        api::<Backup>(&ctx.client, namespace),
        watcher::Config::default().labels(schedule::LABEL_SCHEDULE),
    )
    .with_config(config)
    .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
    .run(schedule::reconcile, error_policy::<BackupSchedule>, shared)
    .for_each(|_| async {});

    ctx.readiness.set_synced(true);
    tokio::join!(backups, restores, compacts, schedules);
    Ok(())
}

/// Logs a failed reconcile and retries with a delay.
fn error_policy<K>(object: Arc<K>, error: &Error, _ctx: Arc<Ctx>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    tracing::warn!(
        kind = %K::kind(&()),
        name = object.meta().name.as_deref().unwrap_or_default(),
        namespace = object.meta().namespace.as_deref().unwrap_or_default(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_targets_its_cluster_in_its_own_or_the_named_namespace() {
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "db"}, "spec": {}
        }))
        .unwrap();
        let br = |cluster: &str, namespace: &str| BRConfig {
            cluster: cluster.into(),
            cluster_namespace: namespace.into(),
            ..BRConfig::default()
        };
        assert!(targets(Some(&br("c", "")), Some("db"), &cluster));
        assert!(targets(Some(&br("c", "db")), Some("ops"), &cluster));
        assert!(!targets(Some(&br("c", "")), Some("ops"), &cluster));
        assert!(!targets(Some(&br("d", "db")), Some("db"), &cluster));
        assert!(!targets(None, Some("db"), &cluster));
    }

    #[test]
    fn the_runner_takes_brs_arguments_after_a_double_dash() {
        let cli = Cli::try_parse_from([
            NAME,
            "run-br",
            "--fake-br=fail:boom",
            "--",
            "/var/lib/br-bin/br",
            "backup",
            "full",
            "--pd=x:2379",
        ])
        .unwrap();
        let Some(Command::RunBr(args)) = cli.command else {
            panic!("not run-br")
        };
        assert_eq!(
            args.command,
            ["/var/lib/br-bin/br", "backup", "full", "--pd=x:2379"]
        );
        assert!(args.fake_br.is_some());
    }

    #[test]
    fn the_controller_flags_have_defaults() {
        let cli = Cli::try_parse_from([NAME, "--fake-br", "--clean-retry-wait=2s"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.controller.fake_br);
        assert_eq!(cli.controller.clean_retry_wait, Duration::from_secs(2));
        assert_eq!(cli.controller.clean_max_attempts, 3);
    }
}
