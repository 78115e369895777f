//! Status writes against the local control plane: a status computed from a stale copy of an
//! object never overwrites the newer one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use operator_api::br::{Restore, RestoreConditionType, RestoreStatus};
use operator_runtime::group::write_status_if_changed;
use testkit::{LocalCluster, TestNamespace, wait_until};

#[tokio::test]
async fn a_status_from_a_stale_copy_does_not_overwrite_a_newer_one() {
    let cluster = LocalCluster::get().unwrap();
    let client = cluster.client().await.unwrap();
    // The Restore CRD as this tree defines it.
    let crd = operator_api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Restore")
        .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("status-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let namespace = TestNamespace::create(&cluster, &client, "status")
        .await
        .unwrap();
    let api = Api::<Restore>::namespaced(client.clone(), namespace.name());
    let restore: Restore = serde_json::from_value(serde_json::json!({
        "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Restore",
        "metadata": {"name": "r"},
        "spec": {"br": {"cluster": "c"}, "local": {"prefix": "p", "volume": {"name": "v"}, "volumeMount": {"name": "v", "mountPath": "/b"}}}
    }))
    .unwrap();
    // Right after an update the CRD may briefly refuse objects; retry until it takes one.
    let kubectl = cluster.kubectl();
    wait_until(
        &kubectl,
        namespace.name(),
        "the Restore is created",
        Duration::from_secs(30),
        || async {
            Ok::<_, kube::Error>(api.create(&PostParams::default(), &restore).await.is_ok())
        },
    )
    .await
    .unwrap();
    let created = api.get("r").await.unwrap();

    let status = |phase| RestoreStatus {
        phase: Some(phase),
        ..RestoreStatus::default()
    };
    let scheduled = status(RestoreConditionType::Scheduled);
    let failed = status(RestoreConditionType::Failed);
    assert!(
        write_status_if_changed(&api, &created, None, &scheduled)
            .await
            .unwrap()
    );
    // `created` is now stale: its write is refused and the newer status stays.
    assert!(
        !write_status_if_changed(&api, &created, None, &failed)
            .await
            .unwrap()
    );
    let fresh = api.get("r").await.unwrap();
    assert_eq!(fresh.status.as_ref(), Some(&scheduled));
    // From the fresh copy it goes through.
    assert!(
        write_status_if_changed(&api, &fresh, fresh.status.as_ref(), &failed)
            .await
            .unwrap()
    );
    assert_eq!(api.get("r").await.unwrap().status, Some(failed));
}
