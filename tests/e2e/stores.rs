//! TiKV stores known by their ID: the pd- and tikv-controllers run as processes under their
//! shipped RBAC with the operand simulator, which here reports every store under another address
//! than its Pod's (as after a port or DNS-name change) while keeping its ID. The operator must
//! keep finding each store by the ID it recorded, and take a store out (scale-in, or a user's
//! deletion of the instance) only through PD: no Pod or PVC goes before PD reports that store ID
//! Tombstone, and nothing at all while PD cannot be asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions, reasons};
use operator_api::core::{Cluster, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, event_seq, events_of,
};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
const CLUSTER: &str = "ids";

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    _controllers: Vec<Controller>,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let binaries = ["pd-controller", "tikv-controller"];
        for binary in binaries {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        // One Region peer moves per tick, so a store stays Offline long enough to be watched.
        let simulator =
            Simulator::start_with(&cluster, ns.name(), "200ms", &["--moves-per-tick=1"])
                .await
                .unwrap();
        let mut controllers = Vec::new();
        for binary in binaries {
            controllers.push(
                Controller::start(
                    &cluster,
                    &client,
                    binary,
                    ns.name(),
                    0,
                    &simulator.overrides(),
                )
                .await
                .unwrap(),
            );
        }
        Scene {
            cluster,
            client,
            ns,
            simulator,
            _controllers: controllers,
        }
    }

    fn n(&self) -> &str {
        self.ns.name()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), self.n())
    }

    async fn create(&self, tikv_replicas: i32) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {}
        }))
        .unwrap();
        self.api::<Cluster>()
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        let pd: PDGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 1,
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}
        }))
        .unwrap();
        self.api::<PDGroup>()
            .create(&PostParams::default(), &pd)
            .await
            .unwrap();
        let tikv: TiKVGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": tikv_replicas,
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}
        }))
        .unwrap();
        self.api::<TiKVGroup>()
            .create(&PostParams::default(), &tikv)
            .await
            .unwrap();
    }

    async fn tikvs(&self) -> Vec<TiKV> {
        self.api::<TiKV>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// The store ID each instance recorded.
    async fn recorded_ids(&self) -> BTreeMap<String, String> {
        self.tikvs()
            .await
            .iter()
            .map(|t| (t.name_any(), t.status.clone().unwrap_or_default().id))
            .collect()
    }

    /// Waits until the TiKVGroup has `replicas` ready stores, all Synced.
    async fn wait_ready(&self, replicas: i32, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let group = self.api::<TiKVGroup>().get("tikv").await?;
                let tikvs = self.tikvs().await;
                let ready = group
                    .status
                    .as_ref()
                    .is_some_and(|s| s.group.ready_replicas == replicas)
                    && tikvs.len() == usize::try_from(replicas).unwrap_or_default()
                    && tikvs.iter().all(|t| {
                        conditions::is_true(t.conditions(), conditions::READY)
                            && conditions::is_true(t.conditions(), conditions::SYNCED)
                    });
                Ok::<_, kube::Error>(ready)
            },
        )
        .await
        .unwrap();
    }

    /// The simulator's state name of store `id`.
    async fn store_state(&self, id: &str) -> String {
        self.simulator
            .store_state(self.n(), CLUSTER, id)
            .await
            .unwrap()
    }

    /// Whether the Pod and the PVC of `instance` exist and are not being deleted.
    async fn keeps_pod_and_pvc(&self, instance: &str) -> (bool, bool) {
        scenarios::keeps_pod_and_pvc(&self.client, self.n(), instance)
            .await
            .unwrap()
    }

    /// Follows the removal of `instance` (store `id`) until the instance is gone: at every look
    /// while PD does not report the store Tombstone, its Pod and PVC must be there. Returns the
    /// `Offlined` messages seen.
    async fn follow_removal(&self, instance: &str, id: &str) -> Vec<String> {
        let deadline = Instant::now() + CONVERGE;
        let mut messages = Vec::new();
        loop {
            let Some(tikv) = self.api::<TiKV>().get_opt(instance).await.unwrap() else {
                return messages;
            };
            if let Some(c) = conditions::find(tikv.conditions(), conditions::OFFLINED)
                && !messages.contains(&c.message)
            {
                messages.push(c.message.clone());
            }
            // Read the store's state after the objects: a Tombstone seen after a deletion
            // proves nothing, one not yet Tombstone then means the deletion came too early.
            let (pod, pvc) = self.keeps_pod_and_pvc(instance).await;
            let state = self.store_state(id).await;
            if state != "Tombstone" {
                assert!(
                    pod && pvc,
                    "{instance}: Pod kept {pod}, PVC kept {pvc} while PD reports store {id} {state}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "{instance} was not removed; {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Checks from the simulator's event log that store `id` was taken offline through PD and
    /// became Tombstone before the Pod of `instance` was deleted.
    async fn check_order(&self, instance: &str, id: &str) {
        let events = self.simulator.events(self.n(), CLUSTER).await.unwrap();
        let seq = |kind: &str, fields: &[(&str, &str)]| {
            events_of(&events, kind, fields)
                .first()
                .map(|e| event_seq(e))
        };
        let offline = seq("store_deleted", &[("store_id", id)]).expect("store taken offline");
        let tombstone = seq("store_tombstone", &[("store_id", id)]).expect("store Tombstone");
        let pod_gone = events_of(&events, "pod_deleted", &[("instance", instance)])
            .last()
            .map(|e| event_seq(e))
            .expect("Pod deleted");
        assert!(
            offline < tombstone && tombstone < pod_gone,
            "store {id}: offline #{offline}, Tombstone #{tombstone}, Pod of {instance} deleted #{pod_gone}"
        );
    }
}

#[tokio::test]
async fn a_store_pd_lists_under_another_address_leaves_only_through_tombstone() {
    let scene = Scene::start("e2e-stores").await;
    scene.create(4).await;
    scene.wait_ready(4, "four serving stores").await;
    let ids = scene.recorded_ids().await;
    assert!(ids.values().all(|id| !id.is_empty()), "{ids:?}");

    // PD now lists every store under another address; each instance still knows its store.
    for name in ids.keys() {
        scene
            .simulator
            .set_fault(scene.n(), CLUSTER, &format!("store-address-changed/{name}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    scene
        .wait_ready(4, "every store still found by its ID")
        .await;
    assert_eq!(scene.recorded_ids().await, ids);

    // While PD cannot be asked, a scale-in does nothing at all.
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, "pd-unreachable")
        .await
        .unwrap();
    scene
        .api::<TiKVGroup>()
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the scale-in held while PD is unreachable",
        CONVERGE,
        || async {
            let group = scene.api::<TiKVGroup>().get("tikv").await?;
            Ok::<_, kube::Error>(
                conditions::find(group.conditions(), conditions::SYNCED)
                    .is_some_and(|c| c.reason == reasons::PD_UNAVAILABLE),
            )
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let marked: Vec<String> = scene
        .tikvs()
        .await
        .iter()
        .filter(|t| t.annotations().contains_key(keys::ANNO_DEFER_DELETE))
        .map(|t| t.name_any())
        .collect();
    assert!(
        marked.is_empty(),
        "marked while PD could not be asked: {marked:?}"
    );
    for name in ids.keys() {
        assert_eq!(scene.keeps_pod_and_pvc(name).await, (true, true), "{name}");
    }
    scene
        .simulator
        .clear_fault(scene.n(), CLUSTER, "pd-unreachable")
        .await
        .unwrap();

    // PD answers again: the scale-in takes one store out through PD, by its ID.
    let victim = {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let marked = scene
                .tikvs()
                .await
                .into_iter()
                .find(|t| t.annotations().contains_key(keys::ANNO_DEFER_DELETE));
            if let Some(victim) = marked {
                break victim.name_any();
            }
            assert!(
                Instant::now() < deadline,
                "no store was chosen for the scale-in"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let id = ids[&victim].clone();
    let messages = scene.follow_removal(&victim, &id).await;
    assert!(
        messages.iter().any(|m| m.contains(&format!("store {id}"))),
        "no Offlined message named store {id}: {messages:?}"
    );
    scene.check_order(&victim, &id).await;
    scene.wait_ready(3, "three stores after the scale-in").await;

    // A user deletes an instance: the same removal, through PD, before its finalizer goes.
    // PD's max-replicas is lowered so that it lets a third store go.
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, "max-replicas/2")
        .await
        .unwrap();
    let deleted = scene.tikvs().await[0].name_any();
    let id = ids[&deleted].clone();
    scene
        .api::<TiKV>()
        .delete(&deleted, &DeleteParams::default())
        .await
        .unwrap();
    let messages = scene.follow_removal(&deleted, &id).await;
    assert!(
        messages.iter().any(|m| m.contains(&format!("store {id}"))),
        "no Offlined message named store {id}: {messages:?}"
    );
    scene.check_order(&deleted, &id).await;
    // The group replaces it with a new store.
    scene.wait_ready(3, "three stores after the deletion").await;

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}
