//! What every reconcile of this binary shares: the client, Events, metrics, the endpoint
//! overrides, and the client of TiDB's status port.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use operator_runtime::endpoints::{EndpointFor, Endpoints};
use operator_runtime::events::Events;
use operator_runtime::metrics::Metrics;
use pd_client::{StatusClient, TidbStatus};

use crate::error::Error;

/// Field manager of every write this binary makes, and the name its Events carry.
pub const MANAGER: &str = "tidb-controller";
/// Timeout of each call to a TiDB status port.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Shared state of the reconciles.
pub struct Ctx {
    /// Kubernetes client.
    pub client: Client,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    endpoints: Endpoints,
    status: StatusClient,
}

impl Ctx {
    /// The shared state.
    pub fn new(client: Client, metrics: Metrics, endpoints: Endpoints) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Self {
            events: Events::new(client.clone(), MANAGER),
            client,
            metrics,
            endpoints,
            status: StatusClient::new(None, STATUS_TIMEOUT).map_err(Error::StatusClient)?,
        }))
    }

    /// The status URL of a TiDB instance: its in-cluster address, or the endpoint override of
    /// component `tidb` (its template may name `{instance}`).
    pub fn status_url(
        &self,
        namespace: &str,
        cluster: &str,
        instance: &str,
        in_cluster: String,
    ) -> String {
        self.endpoints.resolve(
            EndpointFor {
                component: "tidb",
                namespace,
                cluster,
                instance,
            },
            in_cluster,
        )
    }

    /// `GET {url}/status` of a TiDB.
    pub async fn tidb_status(&self, url: &str) -> Result<TidbStatus, pd_client::Error> {
        self.status.tidb_status(url).await
    }
}
