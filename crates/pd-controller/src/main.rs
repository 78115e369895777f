//! pd-controller: reconciles PDGroup and PD. Each PDGroup becomes PD instances; each PD instance
//! becomes its ConfigMap, PVCs and Pod, joined to or removed from PD through PD's API.

mod build;
mod context;
mod group;
mod group_exit;
mod instance;
mod member;
mod online;
mod ready;
mod slot;

use anyhow::Result;
use clap::Parser;
use operator_api::keys;
use operator_runtime::component::run_controllers;
use operator_runtime::{CommonFlags, Context, RuntimeError};
use operator_runtime::{cache, node};
use operator_runtime::{group_reconcile, instance_reconcile};

use crate::context::Ctx;

/// Name of the binary, its Lease and its field manager.
const NAME: &str = "pd-controller";

/// Command line of the pd-controller.
#[derive(Debug, Parser)]
#[command(name = NAME, version = operator_runtime::build_info::version(), about = "Reconciles PDGroup and PD of core.pingcap.com/v1alpha1")]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    operator_runtime::main(NAME, cli.common, controllers).map_err(anyhow::Error::from_boxed)
}

/// Runs the PDGroup and PD controllers until shutdown.
async fn controllers(ctx: Context) -> Result<(), RuntimeError> {
    // PD Pods install their preStop hand-over from the image this controller runs from.
    operator_runtime::build_info::discover_operator_image(&ctx.client).await;
    let nodes = node::cache(&ctx.client, &ctx.shutdown);
    let (node_cache, synced_nodes) = (nodes.clone(), nodes);
    let client = ctx.client.clone();
    run_controllers(
        ctx,
        keys::COMPONENT_PD,
        NAME,
        |groups, _| groups,
        // A cordoned Node: the PD leader on it hands its leadership over.
        move |instances, caches| node::wake_on_cordon(instances, &client, caches.pods.clone()),
        move |shared, groups, instances| Ctx::new(shared, groups, instances, node_cache),
        group_reconcile::reconcile::<group::Rules>,
        instance_reconcile::reconcile::<instance::Rules>,
        async move { cache::synced(&synced_nodes).await },
    )
    .await
}
