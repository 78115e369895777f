//! The Cluster's one headless Service of the `ClusterSubdomain` feature gate, `<cluster>-cluster`:
//! every instance made under the gate lives under it (`<instance>.<cluster>-cluster.<namespace>`),
//! whatever its component, as tidb-operator v2 names them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use operator_api::core::{Cluster, Feature};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use tracing::info;

use super::{Ctx, Error};

/// Whether the Cluster's feature gates ask for the Service.
pub fn wanted(cluster: &Cluster) -> bool {
    cluster
        .spec
        .feature_gates
        .iter()
        .any(|g| g.name == Feature::ClusterSubdomain)
}

/// The Service: headless, selecting every Pod this operator runs for the Cluster, publishing
/// addresses before they are ready (members and stores find each other while they start), owned
/// by the Cluster so it goes with it.
pub fn service(cluster: &Cluster) -> Result<Service, BuildError> {
    let name = cluster.name_any();
    let selector = BTreeMap::from([
        (
            keys::LABEL_MANAGED_BY.to_string(),
            keys::MANAGED_BY.to_string(),
        ),
        (keys::LABEL_CLUSTER.to_string(), name.clone()),
    ]);
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(build::cluster_subdomain(&name)),
            namespace: cluster.namespace(),
            labels: Some(selector.clone()),
            owner_references: Some(vec![build::controller_ref(cluster)?]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Creates the Service when the gate is on and it does not exist. It is never updated or
/// deleted here: instances made under the gate keep their names after it is turned off, and the
/// Service goes with the Cluster.
pub async fn ensure(cluster: &Cluster, ctx: &Ctx) -> Result<(), Error> {
    if !wanted(cluster) {
        return Ok(());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let api = Api::<Service>::namespaced(ctx.client.clone(), &namespace);
    let name = build::cluster_subdomain(&cluster.name_any());
    if api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading Service {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let service = service(cluster)?;
    match api.create(&PostParams::default(), &service).await {
        Ok(_) => {
            info!(service = name, "created the Cluster's headless Service");
            Ok(())
        }
        // Another replica (or an earlier attempt) made it meanwhile.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("creating Service {name}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_selects_every_pod_of_the_cluster_and_is_headless() {
        let mut cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "basic", "namespace": "db", "uid": "u-1"},
            "spec": {"featureGates": [{"name": "ClusterSubdomain"}]}
        }))
        .unwrap();
        assert!(wanted(&cluster));
        let service = service(&cluster).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("basic-cluster"));
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let selector = spec.selector.unwrap();
        assert_eq!(selector[keys::LABEL_CLUSTER], "basic");
        assert_eq!(selector.len(), 2);
        assert_eq!(service.metadata.owner_references.unwrap()[0].name, "basic");
        cluster.spec.feature_gates.clear();
        assert!(!wanted(&cluster));
    }
}
