//! tidb-controller: reconciles TiDBGroup and TiDB, and TiCDCGroup and TiCDC. Each TiDBGroup
//! becomes TiDB instances and a MySQL Service; each TiDB instance becomes its ConfigMap, PVCs and
//! Pod, watched through TiDB's status port. TiCDC (see [`ticdc`]) runs beside it the same way.
//! Rolling updates surge: a new server is Ready before an old one leaves.

mod build;
mod context;
mod group;
mod instance;
mod ticdc;

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kube::runtime::watcher;
use operator_api::core::{PDGroup, TiKVGroup};
use operator_api::keys;
use operator_runtime::cache;
use operator_runtime::component::{groups_of_cluster, run_controllers};
use operator_runtime::scope::scoped;
use operator_runtime::{CommonFlags, Context, Readiness, RuntimeError};
use operator_runtime::{group_reconcile, instance_reconcile};
use pd_client::StatusClient;

use crate::context::{Ctx, STATUS_TIMEOUT};

/// Name of the binary, its Lease and its field manager.
const NAME: &str = "tidb-controller";

/// Command line of the tidb-controller.
#[derive(Debug, Parser)]
#[command(
    name = NAME,
    version = operator_runtime::build_info::version(),
    about = "Reconciles TiDBGroup and TiDB of core.pingcap.com/v1alpha1"
)]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,

    /// How long a TiCDC capture may take to resign ownership and hand its tables to other
    /// captures before its Pod is deleted anyway, e.g. `10m`, `90s`.
    #[arg(
        long,
        env = "TICDC_DRAIN_TIMEOUT",
        default_value = "10m",
        value_parser = operator_runtime::duration::parse_flag
    )]
    ticdc_drain_timeout: Duration,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let drain_timeout = cli.ticdc_drain_timeout;
    operator_runtime::main(NAME, cli.common, move |ctx| controllers(ctx, drain_timeout))
        .map_err(anyhow::Error::from_boxed)
}

/// Runs the TiDBGroup and TiDB controllers, and TiCDC's beside them, until shutdown.
async fn controllers(ctx: Context, drain_timeout: Duration) -> Result<(), RuntimeError> {
    // TiCDC Pods install their preStop hand-over from the image this controller runs from.
    operator_runtime::build_info::discover_operator_image(&ctx.client).await;
    let status = match StatusClient::new(None, STATUS_TIMEOUT) {
        Ok(status) => status.gated(ctx.fence.gate()),
        Err(error) => {
            // Without the status client no instance can be judged; stop rather than guess.
            tracing::error!(%error, "cannot start the TiDB controllers");
            return Ok(());
        }
    };
    let namespace = ctx.flags.namespace.as_deref();
    let (pd_groups, tikv_groups) = (
        scoped::<PDGroup>(&ctx.client, namespace),
        scoped::<TiKVGroup>(&ctx.client, namespace),
    );
    let tikv_cache = cache::reflect(
        tikv_groups.clone(),
        watcher::Config::default(),
        &ctx.shutdown,
    );
    let (tikv_groups_read, synced_tikv) = (tikv_cache.clone(), tikv_cache);
    // TiCDC reports its caches synced to a readiness of its own; this binary is ready once both
    // components are.
    let ticdc_synced = Readiness::new();
    let ticdc = ticdc::controllers(
        Context {
            readiness: ticdc_synced.clone(),
            ..ctx.clone()
        },
        status.clone(),
        drain_timeout,
    );
    let tidb = run_controllers(
        ctx,
        keys::COMPONENT_TIDB,
        NAME,
        // The upgrade order: a PD or TiKV group reaching a version may let a TiDB group move.
        |groups, store| {
            groups
                .watches(
                    pd_groups,
                    watcher::Config::default(),
                    groups_of_cluster(store.clone()),
                )
                .watches(
                    tikv_groups,
                    watcher::Config::default(),
                    groups_of_cluster(store),
                )
        },
        |instances, _| instances,
        move |shared, groups, instances| {
            Ctx::new(shared, groups, instances, tikv_groups_read, status)
        },
        group_reconcile::reconcile::<group::Rules>,
        instance_reconcile::reconcile::<instance::Rules>,
        async move {
            cache::synced(&synced_tikv).await;
            while !ticdc_synced.is_synced() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    let (tidb, ticdc) = tokio::join!(tidb, ticdc);
    tidb.and(ticdc)
}
