//! Volume sizes end to end: the pd- and tikv-controllers run as processes under their shipped
//! RBAC with the operand simulator. A TiKV group's volume cannot shrink (admission says why); grown,
//! every PVC asks for the new size while the Pods keep running; a PD group's volume on a
//! StorageClass that does not allow expansion keeps its size and the operator says so once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{PD, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{Allowed, Controller, Simulator, apply_controller_identity, ensure_crds};
use serde_json::json;
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(150);
const CLUSTER: &str = "vol";

/// The test's StorageClasses, `<ns>-expandable` and `<ns>-fixed`, deleted when it ends.
struct Classes {
    kubectl: Kubectl,
    names: [String; 2],
}

impl Classes {
    async fn create(client: &Client, kubectl: Kubectl, ns: &str) -> Classes {
        let names = [format!("{ns}-expandable"), format!("{ns}-fixed")];
        let api = Api::<StorageClass>::all(client.clone());
        for (name, expandable) in names.iter().zip([true, false]) {
            let class: StorageClass = serde_json::from_value(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name},
                "provisioner": "example.com/none",
                "allowVolumeExpansion": expandable
            }))
            .unwrap();
            api.create(&PostParams::default(), &class).await.unwrap();
        }
        Classes { kubectl, names }
    }
}

impl Drop for Classes {
    fn drop(&mut self) {
        let mut args = vec![
            "delete",
            "storageclass",
            "--wait=false",
            "--ignore-not-found",
        ];
        args.extend(self.names.iter().map(String::as_str));
        let _ = self.kubectl.run(&args, None);
    }
}

fn volumes(class: &str, storage: &str) -> serde_json::Value {
    json!([{"name": "data", "mounts": [{"type": "data"}], "storage": storage,
            "storageClassName": class}])
}

/// The storage each PVC of `component` asks for, by PVC name.
async fn requested(pvcs: &Api<PersistentVolumeClaim>, component: &str) -> BTreeMap<String, String> {
    let selector = format!("{}={component}", keys::LABEL_COMPONENT);
    pvcs.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let storage = p
                .spec
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").cloned())
                .map(|q| q.0)
                .unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), storage)
        })
        .collect()
}

/// Pod UIDs by name.
async fn pod_uids(pods: &Api<Pod>) -> BTreeMap<String, String> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_volume_grows_in_place_and_never_shrinks() {
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    let binaries = ["pd-controller", "tikv-controller"];
    for binary in binaries {
        apply_controller_identity(&cluster, binary).unwrap();
    }
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, "e2e-volumes")
        .await
        .unwrap();
    let n = ns.name();
    let classes = Classes::create(&client, cluster.kubectl(), n).await;
    let [expandable, fixed] = &classes.names;
    let simulator = Simulator::start_with(&cluster, n, "200ms", &[])
        .await
        .unwrap();
    let mut controllers = Vec::new();
    for binary in binaries {
        controllers.push(
            Controller::start(&cluster, &client, binary, n, 0, &simulator.overrides())
                .await
                .unwrap(),
        );
    }
    let create = |value: serde_json::Value| {
        let client = client.clone();
        async move {
            let kind = value["kind"].as_str().unwrap().to_string();
            let ar = scenarios::api_resource(&kind).unwrap();
            let api = Api::<kube::api::DynamicObject>::namespaced_with(client, n, &ar);
            let object: kube::api::DynamicObject = serde_json::from_value(value).unwrap();
            api.create(&PostParams::default(), &object).await.unwrap();
        }
    };
    create(
        json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
                  "metadata": {"name": CLUSTER}, "spec": {}}),
    )
    .await;
    create(
        json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
        "metadata": {"name": "pd"},
        "spec": {"cluster": {"name": CLUSTER}, "replicas": 1, "minReadySeconds": 0,
                 "template": {"spec": {"version": "v8.5.2", "volumes": volumes(fixed, "10Gi")}}}}),
    )
    .await;
    create(
        json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
        "metadata": {"name": "tikv"},
        "spec": {"cluster": {"name": CLUSTER}, "replicas": 3, "minReadySeconds": 0,
                 "template": {"spec": {"version": "v8.5.2",
                                       "volumes": volumes(expandable, "10Gi")}}}}),
    )
    .await;
    let tikvs = Api::<TiKV>::namespaced(client.clone(), n);
    let pds = Api::<PD>::namespaced(client.clone(), n);
    wait_until(
        &cluster.kubectl(),
        n,
        "PD and three stores Ready",
        WAIT,
        || async {
            let ready = |c: &[_]| conditions::is_true(c, conditions::READY);
            let kv = tikvs.list(&ListParams::default()).await?.items;
            let pd = pds.list(&ListParams::default()).await?.items;
            Ok::<_, kube::Error>(
                kv.len() == 3
                    && kv.iter().all(|t| ready(t.conditions()))
                    && pd.len() == 1
                    && pd.iter().all(|p| ready(p.conditions())),
            )
        },
    )
    .await
    .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), n);
    let uids = pod_uids(&pods).await;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), n);

    // Shrinking is refused at admission, with the reason; nothing changes.
    let groups = Api::<TiKVGroup>::namespaced(client.clone(), n);
    let resize = |storage: &str| json!({"spec": {"template": {"spec": {"volumes": volumes(expandable, storage)}}}});
    let refused = groups
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(&resize("5Gi")),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s))
            if s.code == 422 && s.message.contains("storage cannot be made smaller")),
        "{refused:?}"
    );

    // Grown: every TiKV PVC asks for 20Gi, and no Pod restarts.
    groups
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(&resize("20Gi")),
        )
        .await
        .unwrap();
    wait_until(
        &cluster.kubectl(),
        n,
        "every TiKV PVC at 20Gi",
        WAIT,
        || async {
            let sizes = requested(&pvcs, "tikv").await;
            Ok::<_, kube::Error>(sizes.len() == 3 && sizes.values().all(|s| s == "20Gi"))
        },
    )
    .await
    .unwrap();

    // PD's StorageClass does not allow expansion: its PVC keeps its size and the operator says
    // so, once.
    Api::<PDGroup>::namespaced(client.clone(), n)
        .patch(
            "pd",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {
                "volumes": volumes(fixed, "20Gi")}}}})),
        )
        .await
        .unwrap();
    let events = Api::<Event>::namespaced(client.clone(), n);
    wait_until(
        &cluster.kubectl(),
        n,
        "the refused expansion reported",
        WAIT,
        || async {
            let refused = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("VolumeNotExpandable"))
                .filter_map(|e| e.message)
                .any(|m| {
                    m.contains("cannot grow from 10Gi to 20Gi")
                        && m.contains("allowVolumeExpansion")
                });
            let marked = pvcs
                .list(&ListParams::default().labels(&format!("{}=pd", keys::LABEL_COMPONENT)))
                .await?
                .items
                .iter()
                .all(|p| {
                    p.annotations()
                        .get(keys::ANNO_RESIZE_REFUSED)
                        .map(String::as_str)
                        == Some("20Gi")
                });
            Ok::<_, kube::Error>(refused && marked)
        },
    )
    .await
    .unwrap();
    let pd_sizes = requested(&pvcs, "pd").await;
    assert!(pd_sizes.values().all(|s| s == "10Gi"), "{pd_sizes:?}");
    // A few more looks: the refusal is not asked again (one Event, counted once).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refusals: i32 = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("VolumeNotExpandable"))
        .map(|e| {
            e.count
                .unwrap_or(1)
                .max(e.series.as_ref().and_then(|s| s.count).unwrap_or(1))
        })
        .sum();
    assert_eq!(refusals, 1, "the refused size is asked for once");
    assert_eq!(
        pod_uids(&pods).await,
        uids,
        "no Pod restarted for a volume size"
    );

    simulator
        .verdict(n, CLUSTER, &Allowed::none())
        .await
        .unwrap();
    drop(controllers);
    drop(classes);
}
