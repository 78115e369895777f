//! The Cluster's PD Service of the `MultiPDGroup` feature gate (`customizedPDServiceName`, else
//! `<cluster>-pd`): one client Service over the PD members of every PDGroup of the Cluster, which
//! every component and the operator reach PD through, so that no PDGroup is the one PD lives in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use operator_api::core::{Cluster, PD_DEFAULT_PORT_CLIENT, PD_PORT_NAME_CLIENT};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use tracing::info;

use super::{Ctx, Error};

/// Reason of the Warning Event when the Service name is taken by a Service this Cluster cannot
/// adopt.
pub const REASON_CONFLICT: &str = "PDServiceConflict";

/// The labels and selector: every PD Pod of the Cluster, whatever its group.
fn selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            keys::LABEL_MANAGED_BY.to_string(),
            keys::MANAGED_BY.to_string(),
        ),
        (keys::LABEL_COMPONENT.to_string(), "pd".to_string()),
        (keys::LABEL_CLUSTER.to_string(), cluster.to_string()),
    ])
}

/// The Service named `name`: PD's client port 2379 over every PD Pod of the Cluster (to each
/// Pod's own client port, by name), owned by the Cluster so it outlives every PDGroup.
pub fn service(cluster: &Cluster, name: &str) -> Result<Service, BuildError> {
    let selector = selector(&cluster.name_any());
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cluster.namespace(),
            labels: Some(selector.clone()),
            owner_references: Some(vec![build::controller_ref(cluster)?]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![build::named_port(
                PD_PORT_NAME_CLIENT,
                PD_DEFAULT_PORT_CLIENT,
            )]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// What to do about an existing Service of the name.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    /// It is the Cluster's already.
    Ours,
    /// It is a PDGroup's client Service of this Cluster (the name kept from before the gate):
    /// it becomes the Cluster's, selecting every PD Pod.
    Adopt,
    /// Something else holds the name; why.
    Conflict(String),
}

/// Decides about `existing`, named as the Cluster's PD Service.
pub fn judge(cluster: &Cluster, existing: &Service) -> Existing {
    let owner = existing
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    match owner {
        Some(o) if o.kind == "Cluster" && Some(&o.uid) == cluster.uid().as_ref() => Existing::Ours,
        Some(o)
            if o.kind == "PDGroup"
                && existing.labels().get(keys::LABEL_CLUSTER) == Some(&cluster.name_any())
                && existing
                    .labels()
                    .get(keys::LABEL_MANAGED_BY)
                    .map(String::as_str)
                    == Some(keys::MANAGED_BY) =>
        {
            Existing::Adopt
        }
        Some(o) => Existing::Conflict(format!(
            "Service {} exists and belongs to {} {}, not to a PDGroup of Cluster {}: the Cluster's PD Service (MultiPDGroup) cannot take its name; delete it or set customizedPDServiceName to a free name",
            existing.name_any(),
            o.kind,
            o.name,
            cluster.name_any()
        )),
        None => Existing::Conflict(format!(
            "Service {} exists and is not managed by this operator: the Cluster's PD Service (MultiPDGroup) cannot take its name; delete it or set customizedPDServiceName to a free name",
            existing.name_any()
        )),
    }
}

/// Creates the Service under the gate, or adopts a PDGroup's client Service of the name. It is
/// never deleted here: it goes with the Cluster, and clients may still use it after the gate
/// is turned off. A name held by anything else is left alone, with a Warning Event.
pub async fn ensure(cluster: &Cluster, ctx: &Ctx) -> Result<(), Error> {
    let Some(name) = cluster.spec.pd_service(&cluster.name_any()) else {
        return Ok(());
    };
    let namespace = cluster.namespace().unwrap_or_default();
    let api = Api::<Service>::namespaced(ctx.client.clone(), &namespace);
    let desired = service(cluster, &name)?;
    let existing = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading Service {name}")))?;
    let Some(existing) = existing else {
        return match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                info!(service = name, "created the Cluster's PD Service");
                Ok(())
            }
            // Another replica (or an earlier attempt) made it meanwhile.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(format!("creating Service {name}"))(e)),
        };
    };
    match judge(cluster, &existing) {
        Existing::Ours => Ok(()),
        Existing::Adopt => {
            // A merge patch replaces the owner list and drops the group from the labels and the
            // selector (null removes a key); the port becomes PD's default, as status.pd says.
            let group_key = keys::LABEL_GROUP;
            let patch = serde_json::json!({
                "metadata": {
                    "ownerReferences": desired.metadata.owner_references,
                    "labels": {group_key: null},
                    "resourceVersion": existing.resource_version(),
                },
                "spec": {
                    "selector": {group_key: null},
                    "ports": desired.spec.as_ref().and_then(|s| s.ports.clone()),
                },
            });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube(format!("adopting Service {name}")))?;
            info!(
                service = name,
                "the Cluster's PD Service took over a PDGroup's client Service of its name"
            );
            ctx.events
                .normal(
                    cluster,
                    "PDServiceAdopted",
                    "MultiPDGroup",
                    format!(
                        "Service {name} now selects the PD members of every PDGroup of the Cluster and belongs to the Cluster"
                    ),
                )
                .await;
            Ok(())
        }
        Existing::Conflict(message) => {
            ctx.events
                .warning(cluster, REASON_CONFLICT, "MultiPDGroup", message)
                .await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(spec: serde_json::Value) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "basic", "namespace": "db", "uid": "u-1"},
            "spec": spec
        }))
        .unwrap()
    }

    fn existing(owner_kind: &str, owner_uid: &str, managed: bool) -> Service {
        let mut labels = serde_json::json!({"pingcap.com/cluster": "basic"});
        if managed {
            labels["pingcap.com/managed-by"] = keys::MANAGED_BY.into();
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pd-pd", "namespace": "db", "labels": labels,
                "ownerReferences": [{"apiVersion": "core.pingcap.com/v1alpha1", "kind": owner_kind,
                    "name": "pd", "uid": owner_uid, "controller": true}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_name_follows_the_gate_and_the_customized_name() {
        assert_eq!(
            cluster(serde_json::json!({})).spec.pd_service("basic"),
            None
        );
        let gated = cluster(serde_json::json!({"featureGates": [{"name": "MultiPDGroup"}]}));
        assert_eq!(gated.spec.pd_service("basic").as_deref(), Some("basic-pd"));
        let named = cluster(serde_json::json!({
            "featureGates": [{"name": "MultiPDGroup"}], "customizedPDServiceName": "pd-pd"
        }));
        assert_eq!(named.spec.pd_service("basic").as_deref(), Some("pd-pd"));
    }

    #[test]
    fn the_service_selects_every_pd_pod_of_the_cluster() {
        let c = cluster(serde_json::json!({"featureGates": [{"name": "MultiPDGroup"}]}));
        let s = service(&c, "basic-pd").unwrap();
        let spec = s.spec.unwrap();
        let selector = spec.selector.unwrap();
        assert_eq!(selector[keys::LABEL_COMPONENT], "pd");
        assert_eq!(selector[keys::LABEL_CLUSTER], "basic");
        assert!(!selector.contains_key(keys::LABEL_GROUP));
        assert_eq!(spec.ports.unwrap()[0].port, 2379);
        assert_eq!(s.metadata.owner_references.unwrap()[0].kind, "Cluster");
    }

    #[test]
    fn a_groups_service_is_adopted_and_anything_else_is_left_alone() {
        let c = cluster(serde_json::json!({"featureGates": [{"name": "MultiPDGroup"}]}));
        assert_eq!(judge(&c, &existing("Cluster", "u-1", true)), Existing::Ours);
        assert_eq!(
            judge(&c, &existing("PDGroup", "g-1", true)),
            Existing::Adopt
        );
        assert!(matches!(
            judge(&c, &existing("PDGroup", "g-1", false)),
            Existing::Conflict(m) if m.contains("not to a PDGroup of Cluster basic")
        ));
        assert!(matches!(
            judge(&c, &existing("Cluster", "u-2", true)),
            Existing::Conflict(_)
        ));
    }
}
