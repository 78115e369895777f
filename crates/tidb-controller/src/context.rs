//! What every reconcile of this binary shares: the component runtime's shared state, the caches
//! of the groups, instances and TiKV groups, and the client of TiDB's status port.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;
use operator_api::core::{TiDB, TiDBGroup, TiKVGroup};
use operator_runtime::component::Shared;
use pd_client::{StatusClient, TidbStatus};

/// Field manager of every write this binary makes, and the name its Events carry.
pub const MANAGER: &str = "tidb-controller";
/// Timeout of each call to a TiDB status port.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Shared state of the reconciles.
pub struct Ctx {
    shared: Shared,
    /// Every TiDBGroup of the scope (the group controller's own cache).
    pub groups: Store<TiDBGroup>,
    /// Every TiDB instance of the scope (the instance controller's own cache).
    pub instances: Store<TiDB>,
    /// The TiKVGroups a new TiDB version waits for.
    pub tikv_groups: Store<TiKVGroup>,
    status: StatusClient,
}

operator_runtime::derefs_to_shared!(Ctx);

impl Ctx {
    /// The shared state.
    pub fn new(
        shared: Shared,
        groups: Store<TiDBGroup>,
        instances: Store<TiDB>,
        tikv_groups: Store<TiKVGroup>,
        status: StatusClient,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared,
            groups,
            instances,
            tikv_groups,
            status,
        })
    }

    /// `GET {url}/status` of `tidb`: with the operator's client certificate when its cluster
    /// has TLS.
    pub async fn tidb_status(
        &self,
        tidb: &TiDB,
        url: &str,
    ) -> Result<TidbStatus, pd_client::Error> {
        let namespace = tidb.metadata.namespace.as_deref().unwrap_or_default();
        let client = self
            .status_client(namespace, &tidb.spec.cluster.name, STATUS_TIMEOUT)
            .map_err(|e| e.source)?;
        match client {
            Some(client) => client.tidb_status(url).await,
            None => self.status.tidb_status(url).await,
        }
    }

    /// Activates `tidb` (at status URL `url`) with its keyspace when it waits in standby mode;
    /// whether it was activated now.
    pub async fn activate_tidb(&self, tidb: &TiDB, url: &str) -> Result<bool, pd_client::Error> {
        let namespace = tidb.metadata.namespace.as_deref().unwrap_or_default();
        let client = self
            .status_client(namespace, &tidb.spec.cluster.name, STATUS_TIMEOUT)
            .map_err(|e| e.source)?;
        let client = client.as_ref().unwrap_or(&self.status);
        if client.tidb_pool_state(url).await? != pd_client::TIDB_POOL_STANDBY {
            return Ok(false);
        }
        client
            .tidb_activate(url, &tidb.spec.template.keyspace)
            .await?;
        Ok(true)
    }
}
