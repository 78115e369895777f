//! What every reconcile of this binary shares: the component runtime's shared state, the
//! caches of the groups, instances and Nodes, PD's view of each cluster, the restart settings
//! and the client of the stores' status ports.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use operator_api::core::{TiFlashGroup, TiKV, TiKVGroup};
use operator_runtime::cache::Recent;
use operator_runtime::component::{PdClientError, Shared};
use pd_client::{PdClient, StatusClient};

use crate::pd::PdView;

/// Field manager of every write this binary makes, and the name it signs Events with.
pub const MANAGER: &str = "tikv-controller";
/// Timeout of each call to a TiKV status port.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one poll of PD's view is shared by the reconciles of a cluster.
const PD_VIEW_TTL: Duration = Duration::from_secs(1);

/// Shared state of the reconciles.
pub struct Ctx {
    shared: Shared,
    /// How long a restart waits for a store's leaders to leave before it goes ahead anyway.
    pub leader_eviction_timeout: Duration,
    /// Every TiKVGroup of the scope (the group controller's own cache).
    pub groups: Store<TiKVGroup>,
    /// Every TiKV instance of the scope (the instance controller's own cache).
    pub instances: Store<TiKV>,
    /// The Nodes, for store labels and to tell a store on a cordoned Node.
    pub nodes: Store<Node>,
    /// Every TiFlashGroup of the scope: a new TiKV version waits for them, as in the reference.
    pub tiflash_groups: Store<TiFlashGroup>,
    pd_views: Recent<PdView>,
    /// The client of the stores' status ports (online config changes).
    pub status: StatusClient,
}

operator_runtime::derefs_to_shared!(Ctx);

impl Ctx {
    /// The shared state.
    pub fn new(
        shared: Shared,
        leader_eviction_timeout: Duration,
        groups: Store<TiKVGroup>,
        instances: Store<TiKV>,
        nodes: Store<Node>,
        tiflash_groups: Store<TiFlashGroup>,
        status: StatusClient,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared,
            leader_eviction_timeout,
            groups,
            instances,
            nodes,
            tiflash_groups,
            pd_views: Recent::new(PD_VIEW_TTL),
            status,
        })
    }

    /// The client of `tikv`'s status port: with the operator's client certificate when its
    /// cluster has TLS, else the plain one.
    pub fn status_of(&self, tikv: &TiKV) -> Result<StatusClient, PdClientError> {
        let namespace = tikv.metadata.namespace.as_deref().unwrap_or_default();
        Ok(self
            .status_client(namespace, &tikv.spec.cluster.name, STATUS_TIMEOUT)?
            .unwrap_or_else(|| self.status.clone()))
    }

    /// PD's view of the stores of a cluster, polled at most once per [`PD_VIEW_TTL`] for every
    /// instance and group of that cluster.
    pub async fn pd_view(&self, pd: &PdClient) -> Result<PdView, String> {
        self.pd_views
            .get_or_fetch(pd.base(), PdView::read(pd))
            .await
    }

    /// Forgets PD's view after this controller changed it (a store taken offline, a scheduler
    /// added or removed, labels set), so the next reconcile sees the change.
    pub fn pd_changed(&self, pd: &PdClient) {
        self.pd_views.forget(pd.base());
    }
}
