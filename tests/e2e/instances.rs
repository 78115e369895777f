//! Instances as their group's template makes them: the pd-, tikv- and tidb-controllers run as
//! processes under the shipped RBAC with the operand simulator, and a user edits each group's
//! template. What the template no longer asks for must leave every instance, its Pod and its
//! ConfigMap, and instances written before server-side apply (by POST) are adopted in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PDGroup, TiDBGroup, TiKVGroup};
use scenarios::{Controller, Simulator, apply_controller_identity, ensure_crds};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
/// A label of each group's instance template (on the instance objects).
const TEMPLATE_LABEL: &str = "example.com/team";
/// A label of each group's Pod overlay (on the Pods).
const POD_LABEL: &str = "example.com/tier";
/// A node selector of each group's Pod overlay (every fake Node has it).
const NODE_SELECTOR: &str = "kubernetes.io/os";

/// The three groups of the scenario: kind of the group, kind of its instances, controller.
const COMPONENTS: [(&str, &str, &str); 3] = [
    ("PDGroup", "PD", "pd-controller"),
    ("TiKVGroup", "TiKV", "tikv-controller"),
    ("TiDBGroup", "TiDB", "tidb-controller"),
];

fn resource(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("core.pingcap.com", "v1alpha1", kind),
        &plural,
    )
}

fn group_name(kind: &str) -> String {
    kind.trim_end_matches("Group").to_lowercase()
}

/// A group of one replica whose template carries a label, a Pod overlay (label and node
/// selector) and a config key.
fn group(kind: &str, cluster: &str) -> Value {
    let mut template = json!({
        "metadata": {"labels": {TEMPLATE_LABEL: "db"}},
        "spec": {
            "version": "v8.5.2",
            "config": "[log]\nlevel = \"info\"\n",
            "overlay": {"pod": {
                "metadata": {"labels": {POD_LABEL: "gold"}},
                "spec": {"nodeSelector": {NODE_SELECTOR: "linux"}}
            }}
        }
    });
    if kind != "TiDBGroup" {
        template["spec"]["volumes"] =
            json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
    }
    json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
        "metadata": {"name": group_name(kind)},
        "spec": {
            "cluster": {"name": cluster}, "replicas": 1,
            "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
            "template": template
        }
    })
}

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<Controller>,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        for (_, _, binary) in COMPONENTS {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start(&cluster, ns.name()).await.unwrap();
        let mut scene = Scene {
            cluster,
            client,
            ns,
            simulator,
            controllers: Vec::new(),
        };
        scene.start_controllers().await;
        scene
    }

    async fn start_controllers(&mut self) {
        for (_, _, binary) in COMPONENTS {
            let controller = Controller::start(
                &self.cluster,
                &self.client,
                binary,
                self.ns.name(),
                0,
                &self.simulator.overrides(),
            )
            .await
            .unwrap();
            self.controllers.push(controller);
        }
    }

    fn stop_controllers(&mut self) {
        for mut controller in self.controllers.drain(..) {
            controller.process.kill();
        }
    }

    fn n(&self) -> &str {
        self.ns.name()
    }

    fn dynamic(&self, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), self.n(), &resource(kind))
    }

    async fn instances(&self, kind: &str) -> Vec<DynamicObject> {
        self.dynamic(kind)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    async fn pods(&self) -> BTreeMap<String, Pod> {
        Api::<Pod>::namespaced(self.client.clone(), self.n())
            .list(&ListParams::default().labels("pingcap.com/managed-by=tidb-operator"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p))
            .collect()
    }

    /// Waits until every group is Ready and Synced for its current generation, with every
    /// instance at the group's revision.
    async fn wait_converged(&self, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let pd = Api::<PDGroup>::namespaced(self.client.clone(), self.n());
                let tikv = Api::<TiKVGroup>::namespaced(self.client.clone(), self.n());
                let tidb = Api::<TiDBGroup>::namespaced(self.client.clone(), self.n());
                let pd = pd.get("pd").await?;
                let tikv = tikv.get("tikv").await?;
                let tidb = tidb.get("tidb").await?;
                let settled = |generation: Option<i64>, observed: i64, c: &[_], updated: i32| {
                    generation == Some(observed)
                        && conditions::is_true(c, conditions::READY)
                        && conditions::is_true(c, conditions::SYNCED)
                        && updated == 1
                };
                let status = |s: Option<&operator_api::core::ComponentGroupStatus>| {
                    s.map(|s| (s.common.observed_generation, s.group.updated_replicas))
                        .unwrap_or_default()
                };
                let (pd_seen, pd_updated) = status(pd.status.as_ref());
                let (tikv_seen, tikv_updated) = status(tikv.status.as_ref());
                let (tidb_seen, tidb_updated) = status(tidb.status.as_ref());
                Ok::<_, kube::Error>(
                    settled(pd.metadata.generation, pd_seen, pd.conditions(), pd_updated)
                        && settled(
                            tikv.metadata.generation,
                            tikv_seen,
                            tikv.conditions(),
                            tikv_updated,
                        )
                        && settled(
                            tidb.metadata.generation,
                            tidb_seen,
                            tidb.conditions(),
                            tidb_updated,
                        ),
                )
            },
        )
        .await
        .unwrap();
    }
}

/// The managed-fields entries of an object as (manager, operation), the status subresource's
/// aside.
fn owners(object: &DynamicObject) -> Vec<(String, String)> {
    object
        .managed_fields()
        .iter()
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fields_removed_from_a_template_leave_every_instance_its_pod_and_config_map() {
    let mut scene = Scene::start("e2e-instances").await;
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "basic"}, "spec": {}
    }))
    .unwrap();
    Api::<Cluster>::namespaced(scene.client.clone(), scene.n())
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    for (kind, _, _) in COMPONENTS {
        let object: DynamicObject = serde_json::from_value(group(kind, "basic")).unwrap();
        scene
            .dynamic(kind)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    scene
        .wait_converged("every group Ready with its instance")
        .await;

    // What the template asks for is there: on each instance, its Pod and its ConfigMap.
    let pods = scene.pods().await;
    let config_maps = Api::<ConfigMap>::namespaced(scene.client.clone(), scene.n());
    for (_, instance_kind, _) in COMPONENTS {
        for instance in scene.instances(instance_kind).await {
            let name = instance.name_any();
            assert_eq!(
                instance.labels().get(TEMPLATE_LABEL).map(String::as_str),
                Some("db")
            );
            let pod = &pods[&name];
            assert_eq!(
                pod.labels().get(POD_LABEL).map(String::as_str),
                Some("gold")
            );
            let selector = pod.spec.as_ref().and_then(|s| s.node_selector.clone());
            assert!(
                selector.unwrap_or_default().contains_key(NODE_SELECTOR),
                "{name}"
            );
            let config = config_maps.get(&name).await.unwrap();
            assert!(
                config
                    .data
                    .unwrap_or_default()
                    .values()
                    .any(|c| c.contains("level"))
            );
        }
    }

    // Make the instances look as the controllers of an earlier release left them: created by
    // POST, so every field the controller wrote sits under an Update entry of its manager.
    scene.stop_controllers();
    for (_, instance_kind, manager) in COMPONENTS {
        for instance in scene.instances(instance_kind).await {
            let entries: Vec<Value> = instance
                .managed_fields()
                .iter()
                .map(|e| {
                    let mut e = serde_json::to_value(e).unwrap();
                    if e["manager"] == manager && e["operation"] == "Apply" {
                        e["operation"] = json!("Update");
                    }
                    e
                })
                .collect();
            let patch = json!({"metadata": {
                "resourceVersion": instance.resource_version(),
                "managedFields": entries,
            }});
            scene
                .dynamic(instance_kind)
                .patch(
                    &instance.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .unwrap();
            let written = scene
                .dynamic(instance_kind)
                .get(&instance.name_any())
                .await
                .unwrap();
            assert!(
                owners(&written).contains(&(manager.to_string(), "Update".to_string())),
                "{:?}",
                owners(&written)
            );
        }
    }
    let before: BTreeMap<String, String> = scene
        .pods()
        .await
        .into_iter()
        .map(|(name, pod)| (name, pod.uid().unwrap_or_default()))
        .collect();

    // The restarted controllers adopt them: their fields move to the apply entry, in place.
    scene.start_controllers().await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "every instance adopted by its controller's apply entry",
        CONVERGE,
        || async {
            for (_, instance_kind, manager) in COMPONENTS {
                for instance in scene.instances(instance_kind).await {
                    let owners = owners(&instance);
                    if owners.contains(&(manager.to_string(), "Update".to_string()))
                        || !owners.contains(&(manager.to_string(), "Apply".to_string()))
                    {
                        return Ok::<_, kube::Error>(false);
                    }
                }
            }
            Ok(true)
        },
    )
    .await
    .unwrap();
    scene
        .wait_converged("every group Ready after the adoption")
        .await;
    let after: BTreeMap<String, String> = scene
        .pods()
        .await
        .into_iter()
        .map(|(name, pod)| (name, pod.uid().unwrap_or_default()))
        .collect();
    assert_eq!(before, after, "adoption restarted a Pod");

    // The user drops the label, the Pod overlay and the config key from every template.
    for (kind, _, _) in COMPONENTS {
        let patch = json!({"spec": {"template": {
            "metadata": {"labels": null},
            "spec": {"overlay": null, "config": "[log]\n"}
        }}});
        scene
            .dynamic(kind)
            .patch(
                &group_name(kind),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }
    scene
        .wait_converged("every group Synced at the new template")
        .await;

    // By the time the groups say Synced, nothing of what was removed is left on any instance
    // that stays (a replaced TiDB server may still be draining on its way out).
    let pods = scene.pods().await;
    for (_, instance_kind, _) in COMPONENTS {
        let instances: Vec<DynamicObject> = scene
            .instances(instance_kind)
            .await
            .into_iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .collect();
        assert_eq!(instances.len(), 1, "{instance_kind}");
        for instance in instances {
            let name = instance.name_any();
            assert!(
                !instance.labels().contains_key(TEMPLATE_LABEL),
                "{name} keeps the template label: {:?}",
                instance.labels()
            );
            assert!(
                instance.data["spec"].get("overlay").is_none(),
                "{name} keeps the overlay: {}",
                instance.data["spec"]
            );
            let pod = &pods[&name];
            assert!(
                !pod.labels().contains_key(POD_LABEL),
                "{name}: {:?}",
                pod.labels()
            );
            let selector = pod.spec.as_ref().and_then(|s| s.node_selector.clone());
            assert!(
                !selector
                    .clone()
                    .unwrap_or_default()
                    .contains_key(NODE_SELECTOR),
                "{name}: {selector:?}"
            );
            let config = config_maps.get(&name).await.unwrap();
            let text: Vec<String> = config.data.unwrap_or_default().into_values().collect();
            assert!(
                !text.iter().any(|c| c.contains("level")),
                "{name}: {text:?}"
            );
        }
    }

    // Each group has one member, so every restart of the roll is an outage by nature: PD has
    // no peer to lead while its only member restarts, and the only store holds every Region.
    // What this scenario must keep is the data.
    scene
        .simulator
        .verdict(
            scene.n(),
            "basic",
            &scenarios::Allowed::none()
                .pd_quorum_loss()
                .regions_without_leader(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
