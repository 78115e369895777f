//! Secret access of TiCDC Pods under the `TiCDCDynamicSecretSyncer` feature gate: a RoleBinding
//! `<group>-ticdc` in the group's namespace binds the Pods' ServiceAccount to the shipped
//! ClusterRole [`SECRET_READER`] (Secrets: get, list, watch), so the syncer sidecar can read the
//! labelled Secrets. The reference makes a Role of its own per group; binding one shipped
//! ClusterRole instead means the controller needs only `bind` on that ClusterRole, never Secret
//! access of its own.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use operator_api::core::TiCDCGroup;
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::reconcile::Error;
use tracing::info;

/// The ClusterRole the TiCDC Pods are bound to (manifests/controllers/tidb-controller/rbac.yaml).
pub const SECRET_READER: &str = "tidb-operator:ticdc-secret-reader";

/// The RoleBinding's name: tidb-operator v2's name of its Role and RoleBinding.
pub fn name(group: &str) -> String {
    format!("{group}-ticdc")
}

/// The ServiceAccount the group's Pods run as: the overlay's, else `default`.
pub fn service_account(group: &TiCDCGroup) -> String {
    group
        .spec
        .template
        .spec
        .common
        .overlay
        .as_ref()
        .and_then(|o| o.pod.as_ref())
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// The RoleBinding of `group`, owned by it.
pub fn role_binding(group: &TiCDCGroup) -> Result<RoleBinding, BuildError> {
    let labels = BTreeMap::from([
        (
            keys::LABEL_MANAGED_BY.to_string(),
            keys::MANAGED_BY.to_string(),
        ),
        (keys::LABEL_COMPONENT.to_string(), "ticdc".to_string()),
        (
            keys::LABEL_CLUSTER.to_string(),
            group.spec.cluster.name.clone(),
        ),
        (keys::LABEL_GROUP.to_string(), group.name_any()),
    ]);
    Ok(RoleBinding {
        metadata: ObjectMeta {
            name: Some(name(&group.name_any())),
            namespace: group.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![build::controller_ref(group)?]),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: SECRET_READER.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: service_account(group),
            namespace: group.namespace(),
            ..Subject::default()
        }]),
    })
}

/// Under the gate, creates the group's RoleBinding, or points an existing one at the Pods'
/// ServiceAccount again. Without the gate nothing is done: a RoleBinding made before stays
/// until the group goes (its owner) or it is deleted by hand.
pub async fn ensure(client: &kube::Client, group: &TiCDCGroup) -> Result<(), Error> {
    let desired = role_binding(group)?;
    let namespace = group.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
    match api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading RoleBinding {name}")))?
    {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                info!(rolebinding = name, "TiCDC Pods may read Secrets now");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(format!("creating RoleBinding {name}"))(e)),
        },
        Some(existing) if existing.subjects == desired.subjects => Ok(()),
        Some(_) => {
            let patch = serde_json::json!({"subjects": desired.subjects});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube(format!("updating RoleBinding {name}")))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use testkit::builders;

    use super::*;

    #[test]
    fn the_binding_names_the_pods_service_account_and_the_shipped_role() {
        let mut group: TiCDCGroup =
            builders::group_of_template("cdc", serde_json::json!({"version": "v8.5.2"})).unwrap();
        group.metadata.namespace = Some("db".into());
        group.metadata.uid = Some("u".into());
        let binding = role_binding(&group).unwrap();
        assert_eq!(binding.name_any(), "cdc-ticdc");
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, SECRET_READER);
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("default", Some("db"))
        );
        group.spec.template.spec.common.overlay = Some(
            serde_json::from_value(
                serde_json::json!({"pod": {"spec": {"serviceAccountName": "cdc-sa"}}}),
            )
            .unwrap(),
        );
        assert_eq!(service_account(&group), "cdc-sa");
        assert_eq!(
            binding.metadata.owner_references.unwrap()[0].kind,
            "TiCDCGroup"
        );
    }
}
