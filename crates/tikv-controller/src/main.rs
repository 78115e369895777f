//! tikv-controller: reconciles TiKVGroup and TiKV. Each TiKVGroup becomes TiKV instances; each
//! TiKV instance becomes its ConfigMap, PVCs and Pod, and a store in PD that the controller
//! tracks, labels, restarts safely (leader eviction first), empties of leaders when its Node is
//! cordoned, and removes through PD. TiFlashGroup and TiFlash run beside them on the same
//! runtime ([`tiflash`]).

mod build;
mod context;
mod cordon;
mod group;
mod instance;
mod offline;
mod online;
mod pd;
mod ready;
mod scaling;
mod store;
mod tiflash;

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kube::runtime::watcher;
use operator_api::core::{PDGroup, TiFlashGroup};
use operator_api::keys;
use operator_runtime::cache;
use operator_runtime::component::{groups_of_cluster, run_controllers};
use operator_runtime::node;
use operator_runtime::scope::scoped;
use operator_runtime::{CommonFlags, Context, Readiness, RuntimeError};
use operator_runtime::{group_reconcile, instance_reconcile};
use pd_client::StatusClient;

use crate::context::{Ctx, MANAGER, STATUS_TIMEOUT};

/// Command line of the tikv-controller.
#[derive(Debug, Parser)]
#[command(
    name = MANAGER,
    version = operator_runtime::build_info::version(),
    about = "Reconciles TiKVGroup, TiKV, TiFlashGroup and TiFlash of core.pingcap.com/v1alpha1"
)]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,

    /// How long a restart waits for a store's leaders to leave (evict-leader scheduler) before it
    /// restarts the Pod anyway, and how long a store on a cordoned Node waits for them before it
    /// says they did not all leave, e.g. `10m`, `90s`.
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
    let timeout = cli.leader_eviction_timeout;
    operator_runtime::main(MANAGER, cli.common, move |ctx| controllers(ctx, timeout))
        .map_err(anyhow::Error::from_boxed)
}

/// Runs the TiKVGroup and TiKV controllers, and TiFlash's beside them, until shutdown.
async fn controllers(ctx: Context, leader_eviction_timeout: Duration) -> Result<(), RuntimeError> {
    // TiKV Pods install their preStop hand-over from the image this controller runs from.
    operator_runtime::build_info::discover_operator_image(&ctx.client).await;
    let status = match StatusClient::new(None, STATUS_TIMEOUT) {
        Ok(status) => status.gated(ctx.fence.gate()),
        Err(error) => {
            // Without it no online config change can be sent; stop rather than restart for them.
            tracing::error!(%error, "cannot start the TiKV controllers");
            return Ok(());
        }
    };
    let namespace = ctx.flags.namespace.as_deref();
    let pd_groups = scoped::<PDGroup>(&ctx.client, namespace);
    let nodes = node::cache(&ctx.client, &ctx.shutdown);
    let (node_cache, synced_nodes) = (nodes.clone(), nodes.clone());
    // TiKV's upgrade waits for the cluster's TiFlash groups: their cache, and a watch that wakes
    // the TiKV groups of a cluster when one of its TiFlash groups changes.
    let tiflash_groups = cache::reflect(
        scoped::<TiFlashGroup>(&ctx.client, namespace),
        watcher::Config::default(),
        &ctx.shutdown,
    );
    let (tiflash_group_cache, synced_tiflash_groups) =
        (tiflash_groups.clone(), tiflash_groups.clone());
    let tiflash_group_watch = scoped::<TiFlashGroup>(&ctx.client, namespace);
    let client = ctx.client.clone();
    // TiFlash reports its caches synced to a readiness of its own; this binary is ready once
    // both components are.
    let tiflash_synced = Readiness::new();
    let tiflash = tiflash::controllers(
        Context {
            readiness: tiflash_synced.clone(),
            ..ctx.clone()
        },
        nodes,
        status.clone(),
    );
    let tikv = run_controllers(
        ctx,
        keys::COMPONENT_TIKV,
        MANAGER,
        // The upgrade gate opens when PD and TiFlash finish their rolls.
        |groups, store| {
            groups
                .watches(
                    pd_groups,
                    watcher::Config::default(),
                    groups_of_cluster(store.clone()),
                )
                .watches(
                    tiflash_group_watch,
                    watcher::Config::default(),
                    groups_of_cluster(store),
                )
        },
        // A cordoned or uncordoned Node: its stores evict their leaders or take them back.
        move |instances, caches| node::wake_on_cordon(instances, &client, caches.pods.clone()),
        move |shared, groups, instances| {
            Ctx::new(
                shared,
                leader_eviction_timeout,
                groups,
                instances,
                node_cache,
                tiflash_group_cache,
                status,
            )
        },
        group_reconcile::reconcile::<group::Rules>,
        instance_reconcile::reconcile::<instance::Rules>,
        async move {
            cache::synced(&synced_nodes).await;
            cache::synced(&synced_tiflash_groups).await;
            while !tiflash_synced.is_synced() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    let (tikv, tiflash) = tokio::join!(tikv, tiflash);
    tikv.and(tiflash)
}
