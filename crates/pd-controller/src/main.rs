//! pd-controller: reconciles PDGroup and PD. Each PDGroup becomes PD instances; each PD instance
//! becomes its ConfigMap, PVCs and Pod, joined to or removed from PD through PD's API.

mod build;
mod context;
mod error;
mod group;
mod instance;

use anyhow::Result;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use operator_api::core::{Cluster, PD, PDGroup};
use operator_api::keys;
use operator_runtime::endpoints::Endpoints;
use operator_runtime::scope::{log_and_retry, of_cluster, scoped};
use operator_runtime::{CommonFlags, Context, RuntimeError};

use crate::context::Ctx;
use crate::error::Error;

/// Name of the binary, its Lease and its field manager.
const NAME: &str = "pd-controller";

/// Command line of the pd-controller.
#[derive(Debug, Parser)]
#[command(name = NAME, version, about = "Reconciles PDGroup and PD of core.pingcap.com/v1alpha1")]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    operator_runtime::telemetry::init(cli.common.log_format, &cli.common.log_filter)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(operator_runtime::run(NAME, cli.common, controllers))?;
    Ok(())
}

/// Runs the PDGroup and PD controllers until shutdown.
async fn controllers(ctx: Context) -> Result<(), RuntimeError> {
    let namespace = ctx.flags.namespace.as_deref();
    let shared = Ctx::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        Endpoints::new(&ctx.flags.endpoint_overrides),
    );
    let config = ControllerConfig::default().concurrency(ctx.flags.concurrency);
    let operands = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        keys::LABEL_COMPONENT,
        keys::COMPONENT_PD
    ));

    let groups = Controller::new(
        scoped::<PDGroup>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let group_store = groups.store();
    let groups = groups
        .owns(
            scoped::<PD>(&ctx.client, namespace),
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
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            group::reconcile,
            log_and_retry::<PDGroup, Error, Ctx>,
            shared.clone(),
        )
        .for_each(|_| async {});

    let instances = Controller::new(
        scoped::<PD>(&ctx.client, namespace),
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
        .run(instance::reconcile, log_and_retry::<PD, Error, Ctx>, shared)
        .for_each(|_| async {});

    ctx.readiness.set_synced(true);
    tokio::join!(groups, instances);
    Ok(())
}
