//! TiFlash, the columnar store, in the tikv-controller: TiFlashGroup and TiFlash on the same
//! component runtime as TiKV. A TiFlash instance is a store in PD (label `engine=tiflash`),
//! tracked by its store ID and taken out through PD's two-step removal like a TiKV store; its
//! Pod runs TiFlash with two config files (server and proxy) and two log tailers.

pub mod build;
pub mod group;
pub mod instance;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use operator_api::core::{PDGroup, TiFlash, TiFlashGroup};
use operator_api::keys;
use operator_runtime::cache::Recent;
use operator_runtime::component::{PdClientError, Shared, groups_of_cluster, run_controllers};
use operator_runtime::scope::scoped;
use operator_runtime::{Context, RuntimeError};
use operator_runtime::{group_reconcile, instance_reconcile};
use pd_client::{PdClient, StatusClient};

use crate::context::{MANAGER, STATUS_TIMEOUT};
use crate::pd::PdView;

/// How long one poll of PD's view is shared by the TiFlash reconciles of a cluster.
const PD_VIEW_TTL: Duration = Duration::from_secs(1);

/// Shared state of the TiFlash reconciles.
pub struct Ctx {
    shared: Shared,
    /// Every TiFlashGroup of the scope (the group controller's own cache).
    pub groups: Store<TiFlashGroup>,
    /// Every TiFlash instance of the scope (the instance controller's own cache).
    pub instances: Store<TiFlash>,
    /// The Nodes, for store labels.
    pub nodes: Store<Node>,
    pd_views: Recent<PdView>,
    /// The client of the stores' proxy status ports (`/tiflash/store-status`).
    status: StatusClient,
}

operator_runtime::derefs_to_shared!(Ctx);

impl Ctx {
    /// PD's view of the stores of a cluster, polled at most once per [`PD_VIEW_TTL`] for every
    /// TiFlash instance and group of that cluster.
    pub async fn pd_view(&self, pd: &PdClient) -> Result<PdView, String> {
        self.pd_views
            .get_or_fetch(pd.base(), PdView::read(pd))
            .await
    }

    /// Forgets PD's view after this controller changed it (a store taken offline, labels set).
    pub fn pd_changed(&self, pd: &PdClient) {
        self.pd_views.forget(pd.base());
    }

    /// The client of `tiflash`'s proxy status port: with the operator's client certificate when
    /// its cluster has TLS, else the plain one.
    pub fn status_of(&self, tiflash: &TiFlash) -> Result<StatusClient, PdClientError> {
        let namespace = tiflash.metadata.namespace.as_deref().unwrap_or_default();
        Ok(self
            .status_client(namespace, &tiflash.spec.cluster.name, STATUS_TIMEOUT)?
            .unwrap_or_else(|| self.status.clone()))
    }
}

/// Runs the TiFlashGroup and TiFlash controllers until shutdown, beside TiKV's in this binary.
/// `ctx` has a readiness of its own, which the TiKV controllers wait for before the binary
/// reports ready.
pub async fn controllers(
    ctx: Context,
    nodes: Store<Node>,
    status: StatusClient,
) -> Result<(), RuntimeError> {
    let namespace = ctx.flags.namespace.as_deref();
    let pd_groups = scoped::<PDGroup>(&ctx.client, namespace);
    run_controllers(
        ctx,
        keys::COMPONENT_TIFLASH,
        MANAGER,
        // The upgrade gate opens when PD finishes its roll.
        |groups, store| {
            groups.watches(
                pd_groups,
                watcher::Config::default(),
                groups_of_cluster(store),
            )
        },
        |instances, _| instances,
        move |shared, groups, instances| {
            Arc::new(Ctx {
                shared,
                groups,
                instances,
                nodes,
                pd_views: Recent::new(PD_VIEW_TTL),
                status,
            })
        },
        group_reconcile::reconcile::<group::Rules>,
        instance_reconcile::reconcile::<instance::Rules>,
        // The Node cache is TiKV's too; the TiKV controllers wait for it.
        async {},
    )
    .await
}
