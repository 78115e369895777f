//! Where the PD of a cluster is, and what the TiKV controllers read from it in one go: the
//! stores, the stores under the evict-leader scheduler and the replication settings.

use kube::ResourceExt;
use operator_api::core::{Cluster, PD_DEFAULT_PORT_CLIENT, PDGroup};
use operator_runtime::dns::Dns;
use pd_client::{PdClient, ReplicationConfig, StoresInfo};

use crate::build;

/// The in-cluster URL of a cluster's PD: `status.pd` of the Cluster when it is set, else the
/// Cluster's PD Service under MultiPDGroup, else the client Service of its (first, by name)
/// PDGroup, named as the Cluster's `spec.dns` asks.
pub fn pd_url(cluster: Option<&Cluster>, groups: &[PDGroup], namespace: &str) -> Option<String> {
    if let Some(url) = cluster
        .and_then(|c| c.status.as_ref())
        .map(|s| s.pd.clone())
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    let dns = Dns::of(cluster);
    // Under MultiPDGroup no PDGroup has a client Service: the Cluster's PD Service serves.
    if let Some(service) = cluster.and_then(|c| c.spec.pd_service(&c.name_any()))
        && !groups.is_empty()
    {
        let host = dns.service_host(&service, namespace);
        return Some(format!(
            "{}://{host}:{PD_DEFAULT_PORT_CLIENT}",
            dns.scheme()
        ));
    }
    groups.first().map(|g| {
        let port = g.spec.template.spec.server.ports.client_port();
        build::pd_group_url(namespace, &g.name_any(), port, &dns)
    })
}

/// PD's answer before the first store joined: its store and scheduler paths fail until then.
pub fn not_bootstrapped(error: &pd_client::Error) -> bool {
    error.status() == Some(500) && error.to_string().contains("not bootstrapped")
}

/// The stores and the evicted stores, or why PD could not be asked.
#[derive(Clone, Debug, Default)]
pub struct PdView {
    /// Every store, Tombstones included.
    pub stores: StoresInfo,
    /// Stores whose leaders PD is evicting.
    pub evicting: Vec<u64>,
    /// PD's replication settings (`max-replicas`, `location-labels`).
    pub replication: ReplicationConfig,
    /// PD has no store yet (not bootstrapped).
    pub not_bootstrapped: bool,
}

impl PdView {
    /// Reads them from PD. A PD not bootstrapped yet has no stores and no evictions.
    pub async fn read(pd: &PdClient) -> Result<PdView, String> {
        let replication = pd.replication_config().await.map_err(|e| e.to_string())?;
        let stores = match pd.stores().await {
            Ok(stores) => stores,
            Err(e) if not_bootstrapped(&e) => {
                return Ok(PdView {
                    replication,
                    not_bootstrapped: true,
                    ..PdView::default()
                });
            }
            Err(e) => return Err(e.to_string()),
        };
        let evicting = match pd.evict_leader_store_ids().await {
            Ok(ids) => ids,
            Err(e) if not_bootstrapped(&e) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        Ok(PdView {
            stores,
            evicting,
            replication,
            not_bootstrapped: false,
        })
    }

    /// Whether the store is under the evict-leader scheduler.
    pub fn is_evicting(&self, store_id: u64) -> bool {
        self.evicting.contains(&store_id)
    }
}

#[cfg(test)]
mod tests {
    use operator_api::core::{ClusterStatus, PDGroupSpec};

    use super::*;

    fn pd_group(name: &str, port: Option<i32>) -> PDGroup {
        let mut template = serde_json::json!({"version": "v8.5.2"});
        if let Some(port) = port {
            template["server"] = serde_json::json!({"ports": {"client": {"port": port}}});
        }
        let spec: PDGroupSpec = serde_json::from_value(serde_json::json!({
            "cluster": {"name": "basic"}, "replicas": 3, "template": {"spec": template}
        }))
        .unwrap();
        PDGroup::new(name, spec)
    }

    #[test]
    fn the_clusters_pd_url_wins_over_the_pd_groups_service() {
        let groups = [pd_group("pd", Some(3379)), pd_group("pd2", None)];
        assert_eq!(
            pd_url(None, &groups, "db").as_deref(),
            Some("http://pd-pd.db:3379")
        );
        let mut cluster = Cluster::new("basic", Default::default());
        cluster.status = Some(ClusterStatus {
            pd: "https://pd.example:2379".into(),
            ..ClusterStatus::default()
        });
        assert_eq!(
            pd_url(Some(&cluster), &groups, "db").as_deref(),
            Some("https://pd.example:2379")
        );
        assert_eq!(pd_url(None, &[], "db"), None);
        cluster.status = None;
        cluster.spec.feature_gates =
            serde_json::from_value(serde_json::json!([{"name": "MultiPDGroup"}])).unwrap();
        assert_eq!(
            pd_url(Some(&cluster), &groups, "db").as_deref(),
            Some("http://basic-pd.db:2379")
        );
    }
}
