//! What every reconcile of this binary shares: the client, Events, metrics, endpoints, one PD
//! client per PD URL, and the restart settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use operator_runtime::endpoints::{EndpointFor, Endpoints};
use operator_runtime::events::Events;
use operator_runtime::metrics::Metrics;
use pd_client::PdClient;

use crate::error::Error;

/// Field manager of every write this binary makes, and the name it signs Events with.
pub const MANAGER: &str = "tikv-controller";
/// Timeout of each call to PD.
const PD_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of the reconciles.
pub struct Ctx {
    /// Kubernetes client.
    pub client: Client,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// How long a restart waits for a store's leaders to leave before it goes ahead anyway.
    pub leader_eviction_timeout: Duration,
    endpoints: Endpoints,
    pd_clients: Mutex<HashMap<String, PdClient>>,
}

impl Ctx {
    /// The shared state.
    pub fn new(
        client: Client,
        metrics: Metrics,
        endpoints: Endpoints,
        leader_eviction_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Events::new(client.clone(), MANAGER),
            client,
            metrics,
            leader_eviction_timeout,
            endpoints,
            pd_clients: Mutex::new(HashMap::new()),
        })
    }

    /// A client of the PD of a cluster, reached at `in_cluster_url` (or the endpoint override).
    pub fn pd(
        &self,
        namespace: &str,
        cluster: &str,
        in_cluster_url: String,
    ) -> Result<PdClient, Error> {
        let url = self.endpoints.resolve(
            EndpointFor {
                component: "pd",
                namespace,
                cluster,
                instance: "",
            },
            in_cluster_url,
        );
        let mut clients = self
            .pd_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&url) {
            return Ok(client.clone());
        }
        let client = PdClient::new(&url, None, PD_TIMEOUT).map_err(|source| Error::Pd {
            url: url.clone(),
            source,
        })?;
        clients.insert(url, client.clone());
        Ok(client)
    }
}
