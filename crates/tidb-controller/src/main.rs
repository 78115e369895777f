//! tidb-controller: reconciles TiDBGroup and TiDB. Each TiDBGroup becomes TiDB instances and a
//! MySQL Service; each TiDB instance becomes its ConfigMap, PVCs and Pod, watched through TiDB's
//! status port. Rolling updates surge: a new server is Ready before an old one leaves.

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
use operator_api::core::{Cluster, PDGroup, TiDB, TiDBGroup, TiKVGroup};
use operator_api::keys;
use operator_runtime::endpoints::Endpoints;
use operator_runtime::scope::{log_and_retry, of_cluster, scoped};
use operator_runtime::{CommonFlags, Context, RuntimeError};

use crate::context::Ctx;
use crate::error::Error;

/// Name of the binary, its Lease and its field manager.
const NAME: &str = "tidb-controller";

/// Command line of the tidb-controller.
#[derive(Debug, Parser)]
#[command(
    name = NAME,
    version,
    about = "Reconciles TiDBGroup and TiDB of core.pingcap.com/v1alpha1"
)]
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

/// Runs the TiDBGroup and TiDB controllers until shutdown.
async fn controllers(ctx: Context) -> Result<(), RuntimeError> {
    let namespace = ctx.flags.namespace.as_deref();
    let shared = match Ctx::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
        Endpoints::new(&ctx.flags.endpoint_overrides),
    ) {
        Ok(shared) => shared,
        Err(error) => {
            // Without the status client no instance can be judged; stop rather than guess.
            tracing::error!(%error, "cannot start the TiDB controllers");
            return Ok(());
        }
    };
    let config = ControllerConfig::default().concurrency(ctx.flags.concurrency);
    let operands = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        keys::LABEL_MANAGED_BY,
        keys::MANAGED_BY,
        keys::LABEL_COMPONENT,
        keys::COMPONENT_TIDB
    ));

    let groups = Controller::new(
        scoped::<TiDBGroup>(&ctx.client, namespace),
        watcher::Config::default(),
    );
    let store = groups.store();
    let (by_cluster, by_pd, by_tikv) = (store.clone(), store.clone(), store);
    let groups = groups
        .owns(
            scoped::<TiDB>(&ctx.client, namespace),
            watcher::Config::default(),
        )
        .watches(
            scoped::<Cluster>(&ctx.client, namespace),
            watcher::Config::default(),
            move |cluster| {
                let name = cluster.metadata.name.clone().unwrap_or_default();
                of_cluster(&by_cluster, cluster.metadata.namespace.as_deref(), &name)
            },
        )
        // The upgrade order: a PD or TiKV group reaching a version may let a TiDB group move.
        .watches(
            scoped::<PDGroup>(&ctx.client, namespace),
            watcher::Config::default(),
            move |pd| {
                of_cluster(
                    &by_pd,
                    pd.metadata.namespace.as_deref(),
                    &pd.spec.cluster.name,
                )
            },
        )
        .watches(
            scoped::<TiKVGroup>(&ctx.client, namespace),
            watcher::Config::default(),
            move |tikv| {
                of_cluster(
                    &by_tikv,
                    tikv.metadata.namespace.as_deref(),
                    &tikv.spec.cluster.name,
                )
            },
        )
        .with_config(config.clone())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            group::reconcile,
            log_and_retry::<TiDBGroup, Error, Ctx>,
            shared.clone(),
        )
        .for_each(|_| async {});

    let instances = Controller::new(
        scoped::<TiDB>(&ctx.client, namespace),
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
            log_and_retry::<TiDB, Error, Ctx>,
            shared,
        )
        .for_each(|_| async {});

    ctx.readiness.set_synced(true);
    tokio::join!(groups, instances);
    Ok(())
}
