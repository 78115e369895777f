//! tikv-controller: reconciles TiKVGroup and TiKV. Each TiKVGroup becomes TiKV instances; each
//! TiKV instance becomes its ConfigMap, PVCs and Pod, and a store in PD that the controller
//! tracks, labels, restarts safely (leader eviction first) and removes through PD.

mod build;
mod context;
mod error;
mod group;
mod instance;
mod pd;
mod store;

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use operator_api::core::{Cluster, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use operator_runtime::endpoints::Endpoints;
use operator_runtime::scope::{log_and_retry, of_cluster, scoped};
use operator_runtime::{CommonFlags, Context, RuntimeError};

use crate::context::{Ctx, MANAGER};
use crate::error::Error;

/// Command line of the tikv-controller.
#[derive(Debug, Parser)]
#[command(
    name = MANAGER,
    version,
    about = "Reconciles TiKVGroup and TiKV of core.pingcap.com/v1alpha1"
)]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,

    /// How long a restart waits for a store's leaders to leave (evict-leader scheduler) before it
    /// restarts the Pod anyway, e.g. `10m`, `90s`.
    #[arg(
        long,
        env = "LEADER_EVICTION_TIMEOUT",
        default_value = "10m",
        value_parser = operator_runtime::duration::parse_flag
    )]
    leader_eviction_timeout: Duration,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    operator_runtime::telemetry::init(cli.common.log_format, &cli.common.log_filter)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let timeout = cli.leader_eviction_timeout;
    runtime.block_on(operator_runtime::run(MANAGER, cli.common, move |ctx| {
        controllers(ctx, timeout)
    }))?;
    Ok(())
}

/// Runs the TiKVGroup and TiKV controllers until shutdown.
async fn controllers(ctx: Context, leader_eviction_timeout: Duration) -> Result<(), RuntimeError> {
    let namespace = ctx.flags.namespace.as_deref();
    let shared = Ctx::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        Endpoints::new(&ctx.flags.endpoint_overrides),
        leader_eviction_timeout,
    );
    let config = ControllerConfig::default().concurrency(ctx.flags.concurrency);
    let operands = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        keys::LABEL_COMPONENT,
        keys::COMPONENT_TIKV
    ));

    let groups = Controller::new(
        scoped::<TiKVGroup>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let group_store = groups.store();
    let pd_group_store = group_store.clone();
    let groups = groups
        .owns(
            scoped::<TiKV>(&ctx.client, namespace),
            watcher::Config::default(),
        )
        .watches(
            scoped::<Cluster>(&ctx.client, namespace),
            watcher::Config::default(),
            move |cluster| {
                of_cluster(
                    &group_store,
                    cluster.metadata.namespace.as_deref(),
                    cluster.metadata.name.as_deref().unwrap_or_default(),
                )
            },
        )
        // The upgrade gate opens when PD finishes its roll.
        .watches(
            scoped::<PDGroup>(&ctx.client, namespace),
            watcher::Config::default(),
            move |pd_group| {
                of_cluster(
                    &pd_group_store,
                    pd_group.metadata.namespace.as_deref(),
                    &pd_group.spec.cluster.name,
                )
            },
        )
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            group::reconcile,
            log_and_retry::<TiKVGroup, Error, Ctx>,
            shared.clone(),
        )
        .for_each(|_| async {});

    let instances = Controller::new(
        scoped::<TiKV>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let instance_store = instances.store();
    let instances = instances
        .owns(scoped::<Pod>(&ctx.client, namespace), operands.clone())
        .owns(scoped::<ConfigMap>(&ctx.client, namespace), operands)
        .watches(
            scoped::<Cluster>(&ctx.client, namespace),
            watcher::Config::default(),
            move |cluster| {
                of_cluster(
                    &instance_store,
                    cluster.metadata.namespace.as_deref(),
                    cluster.metadata.name.as_deref().unwrap_or_default(),
                )
            },
        )
        .with_config(config)
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            instance::reconcile,
            log_and_retry::<TiKV, Error, Ctx>,
            shared,
        )
        .for_each(|_| async {});

    ctx.readiness.set_synced(true);
    tokio::join!(groups, instances);
    Ok(())
}
