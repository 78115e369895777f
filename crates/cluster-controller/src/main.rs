//! cluster-controller: reconciles Cluster. It reads every group of a cluster (and PD) and writes
//! the Cluster's status, carries its feature gates into the groups, and deletes the groups in
//! reverse dependency order when the Cluster goes.

mod cluster;

use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use futures::StreamExt;
use kube::Resource;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use operator_api::core::{Cluster, PD, PDGroup, TiCDCGroup, TiDBGroup, TiFlashGroup, TiKVGroup};
use operator_runtime::cache;
use operator_runtime::component::after_sync;
use operator_runtime::endpoints::Endpoints;
use operator_runtime::events::Events;
use operator_runtime::scope::{log_and_retry, scoped};
use operator_runtime::{CommonFlags, Context, RuntimeError};

use crate::cluster::{Ctx, Error, GroupCaches, MANAGER};

/// Command line of the cluster-controller.
#[derive(Debug, Parser)]
#[command(name = MANAGER, version = operator_runtime::build_info::version(), about = "Reconciles Cluster of core.pingcap.com/v1alpha1")]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
    /// How often a settled Cluster is looked at again (PD's ID and members, among them those
    /// of other Kubernetes clusters that joined).
    #[arg(long, env = "SETTLED_RESYNC", default_value = "300s", value_parser = operator_runtime::duration::parse_flag)]
    settled_resync: std::time::Duration,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let settled_resync = cli.settled_resync;
    operator_runtime::main(MANAGER, cli.common, move |ctx| {
        controllers(ctx, settled_resync)
    })
    .map_err(anyhow::Error::from_boxed)
}

/// The Cluster a group points at.
fn cluster_of<K: Resource<DynamicType = ()>>(
    group: &K,
    cluster: &str,
) -> Option<ObjectRef<Cluster>> {
    let namespace = group.meta().namespace.as_deref()?;
    Some(ObjectRef::new(cluster).within(namespace))
}

/// Runs the Cluster controller until shutdown.
async fn controllers(
    ctx: Context,
    settled_resync: std::time::Duration,
) -> Result<(), RuntimeError> {
    let namespace = ctx.flags.namespace.as_deref();
    let all = watcher::Config::default();
    let groups = GroupCaches {
        pd: cache::reflect(scoped(&ctx.client, namespace), all.clone(), &ctx.shutdown),
        tikv: cache::reflect(scoped(&ctx.client, namespace), all.clone(), &ctx.shutdown),
        tidb: cache::reflect(scoped(&ctx.client, namespace), all.clone(), &ctx.shutdown),
        tiflash: cache::reflect(scoped(&ctx.client, namespace), all.clone(), &ctx.shutdown),
        ticdc: cache::reflect(scoped(&ctx.client, namespace), all.clone(), &ctx.shutdown),
    };
    let shared = Arc::new(Ctx {
        events: Events::new(ctx.client.clone(), MANAGER),
        client: ctx.client.clone(),
        metrics: ctx.metrics.clone(),
        endpoints: Endpoints::new(&ctx.flags.endpoint_overrides),
        groups: groups.clone(),
        client_tls: Default::default(),
        settled_resync,
        scope: ctx.flags.namespace.clone(),
    });
    let clusters = Controller::new(scoped::<Cluster>(&ctx.client, namespace), all.clone());
    let cluster_store = clusters.store();
    let readiness = ctx.readiness.clone();
    let synced_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = synced_flag.clone();
    let synced = async move {
        cache::synced(&groups.pd).await;
        cache::synced(&groups.tikv).await;
        cache::synced(&groups.tidb).await;
        cache::synced(&groups.tiflash).await;
        cache::synced(&groups.ticdc).await;
        cache::synced(&cluster_store).await;
        synced_flag.store(true, std::sync::atomic::Ordering::Release);
        readiness.set_synced(true);
    };
    let clusters = clusters
        .watches(
            scoped::<PDGroup>(&ctx.client, namespace),
            all.clone(),
            |g| cluster_of(&g, &g.spec.cluster.name),
        )
        .watches(
            scoped::<TiKVGroup>(&ctx.client, namespace),
            all.clone(),
            |g| cluster_of(&g, &g.spec.cluster.name),
        )
        .watches(
            scoped::<TiDBGroup>(&ctx.client, namespace),
            all.clone(),
            |g| cluster_of(&g, &g.spec.cluster.name),
        )
        .watches(
            scoped::<TiFlashGroup>(&ctx.client, namespace),
            all.clone(),
            |g| cluster_of(&g, &g.spec.cluster.name),
        )
        .watches(
            scoped::<TiCDCGroup>(&ctx.client, namespace),
            all.clone(),
            |g| cluster_of(&g, &g.spec.cluster.name),
        )
        // PD's membership changes with its instances (one joins, one leaves through PD before
        // its instance goes), not always with a group: `status.pdMembers` follows them at once
        // instead of at the next settled resync.
        .watches(scoped::<PD>(&ctx.client, namespace), all, |pd| {
            cluster_of(&pd, &pd.spec.cluster.name)
        })
        .with_config(ctx.flags.controller_config())
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(
            // Before the group caches have listed, a Cluster would look as if it had none.
            after_sync(gate, cluster::reconcile),
            log_and_retry::<Cluster, Error, Ctx>,
            shared,
        )
        .for_each(|_| async {});
    tokio::join!(clusters, synced);
    Ok(())
}
