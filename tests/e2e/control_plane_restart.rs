//! The control plane restarted under the operator: etcd, kube-apiserver, the controller manager,
//! the scheduler and kwok all stop (as a crash would) and start again on the same state, twice in
//! the middle of an upgrade of PD, TiKV and TiDB (while PD rolls, and while a store's leaders are
//! evicted) and once in the middle of a TiKV scale-in. The controllers lose their Leases and
//! exit, as they do in production, and are started again as a Deployment's container would be.
//! Each operation completes once: every Pod of the old version replaced exactly once, the removed
//! store Tombstone before its Pod and PVC go, no evict-leader scheduler left, the verdict clean. It runs on a control plane of its own (`<TESTKIT_CLUSTER>-restart`): the restart would
//! disturb any test running beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{PD, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, event_seq, events_of,
};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(240);
const CLUSTER: &str = "cp";
const BINARIES: [&str; 3] = ["pd-controller", "tikv-controller", "tidb-controller"];
/// The version the upgrade goes to (from v8.5.2).
const NEW: &str = "v8.5.3";
/// Each group's name and kind, and its replicas through the upgrade.
const GROUPS: [(&str, &str, i64); 3] = [
    ("PDGroup", "pd", 3),
    ("TiKVGroup", "tikv", 4),
    ("TiDBGroup", "tidb", 2),
];

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<Controller>,
}

impl Scene {
    fn n(&self) -> &str {
        self.ns.name()
    }

    async fn start_controllers(&mut self) {
        self.controllers.clear();
        for binary in BINARIES {
            self.controllers.push(
                Controller::start(
                    &self.cluster,
                    &self.client,
                    binary,
                    self.ns.name(),
                    0,
                    &self.simulator.overrides(),
                )
                .await
                .unwrap(),
            );
        }
    }

    /// Restarts the control plane, then the controllers that exited meanwhile (having lost
    /// their Leases), as the kubelet restarts a Deployment's container.
    async fn restart_control_plane(&mut self) {
        let script = scenarios::repo_root().join("hack/local-cluster.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .args(["restart", self.cluster.name()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.client = self.cluster.client().await.unwrap();
        self.start_controllers().await;
    }

    async fn stores(&self) -> Vec<Value> {
        self.simulator.state(self.n(), CLUSTER).await.unwrap()["stores"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The UIDs of every PD, TiKV and TiDB Pod.
    async fn pod_uids(&self) -> BTreeSet<String> {
        let selector = format!("{} in (pd,tikv,tidb)", keys::LABEL_COMPONENT);
        Api::<Pod>::namespaced(self.client.clone(), self.n())
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.uid())
            .collect()
    }

    /// Waits until every group runs `version` on all its replicas, Ready and Synced, with one
    /// revision.
    async fn wait_upgraded(&self, version: &str) {
        let what = format!("PD, TiKV and TiDB upgraded to {version}");
        wait_until(&self.cluster.kubectl(), self.n(), &what, WAIT, || async {
            for (kind, name, replicas) in GROUPS {
                let ar = scenarios::api_resource(kind).unwrap();
                let group = Api::<kube::api::DynamicObject>::namespaced_with(
                    self.client.clone(),
                    self.n(),
                    &ar,
                )
                .get(name)
                .await?;
                let status = &group.data["status"];
                let condition = |kind: &str| {
                    status["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c["type"].as_str() == Some(kind) && c["status"].as_str() == Some("True")
                        })
                };
                let done = status["version"].as_str() == Some(version)
                    && status["readyReplicas"].as_i64() == Some(replicas)
                    && status["currentRevision"] == status["updateRevision"]
                    && condition(conditions::READY)
                    && condition(conditions::SYNCED);
                if !done {
                    return Ok::<_, kube::Error>(false);
                }
            }
            Ok(true)
        })
        .await
        .unwrap();
    }

    /// Waits until the TiKVGroup has `replicas` instances, all Ready and Synced, and no store
    /// is being evicted.
    async fn wait_settled(&self, replicas: usize, what: &str) {
        wait_until(&self.cluster.kubectl(), self.n(), what, WAIT, || async {
            let tikvs = Api::<TiKV>::namespaced(self.client.clone(), self.n())
                .list(&ListParams::default())
                .await?
                .items;
            let group = Api::<TiKVGroup>::namespaced(self.client.clone(), self.n())
                .get("tikv")
                .await?;
            let evicting = self
                .stores()
                .await
                .iter()
                .any(|s| s["evicting_leaders"].as_bool() == Some(true));
            Ok::<_, kube::Error>(
                tikvs.len() == replicas
                    && !evicting
                    && conditions::is_true(group.conditions(), conditions::READY)
                    && conditions::is_true(group.conditions(), conditions::SYNCED)
                    && tikvs.iter().all(|t| {
                        conditions::is_true(t.conditions(), conditions::READY)
                            && conditions::is_true(t.conditions(), conditions::SYNCED)
                    }),
            )
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn an_upgrade_and_a_scale_in_finish_once_across_control_plane_restarts() {
    let cluster = LocalCluster::dedicated("restart").unwrap();
    ensure_crds(&cluster).unwrap();
    for binary in BINARIES {
        apply_controller_identity(&cluster, binary).unwrap();
    }
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, "e2e-cp-restart")
        .await
        .unwrap();
    let simulator = Simulator::start_with(&cluster, ns.name(), "300ms", &["--moves-per-tick=1"])
        .await
        .unwrap();
    let mut scene = Scene {
        cluster,
        client,
        ns,
        simulator,
        controllers: Vec::new(),
    };
    scene.start_controllers().await;
    let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
    for (kind, value) in [
        (
            "Cluster",
            json!({"metadata": {"name": CLUSTER}, "spec": {}}),
        ),
        (
            "PDGroup",
            json!({"metadata": {"name": "pd"}, "spec": {
            "cluster": {"name": CLUSTER}, "replicas": 3, "minReadySeconds": 1,
            "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}}),
        ),
        (
            "TiKVGroup",
            json!({"metadata": {"name": "tikv"}, "spec": {
            "cluster": {"name": CLUSTER}, "replicas": 4, "minReadySeconds": 1,
            "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}}),
        ),
        (
            "TiDBGroup",
            json!({"metadata": {"name": "tidb"}, "spec": {
            "cluster": {"name": CLUSTER}, "replicas": 2, "minReadySeconds": 1,
            "template": {"spec": {"version": "v8.5.2"}}}}),
        ),
    ] {
        let ar = scenarios::api_resource(kind).unwrap();
        let mut value = value;
        value["apiVersion"] = json!(format!("{}/{}", ar.group, ar.version));
        value["kind"] = json!(kind);
        Api::<kube::api::DynamicObject>::namespaced_with(scene.client.clone(), scene.n(), &ar)
            .create(
                &PostParams::default(),
                &serde_json::from_value(value).unwrap(),
            )
            .await
            .unwrap();
    }
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "three PD members Ready",
        WAIT,
        || async {
            let pds = Api::<PD>::namespaced(scene.client.clone(), scene.n())
                .list(&ListParams::default())
                .await?
                .items;
            Ok::<_, kube::Error>(
                pds.len() == 3
                    && pds
                        .iter()
                        .all(|p| conditions::is_true(p.conditions(), conditions::READY)),
            )
        },
    )
    .await
    .unwrap();
    scene.wait_settled(4, "four stores Ready").await;
    scene.wait_upgraded("v8.5.2").await;

    // Mid-upgrade: PD, TiKV and TiDB get a new version at once, and the control plane goes
    // twice: while PD rolls, and again while a store's leaders are being evicted.
    let before = scene.pod_uids().await;
    let start = scene
        .simulator
        .events(scene.n(), CLUSTER)
        .await
        .unwrap()
        .iter()
        .map(event_seq)
        .max()
        .unwrap_or(0);
    for (kind, name) in [
        ("TiDBGroup", "tidb"),
        ("TiKVGroup", "tikv"),
        ("PDGroup", "pd"),
    ] {
        let ar = scenarios::api_resource(kind).unwrap();
        Api::<kube::api::DynamicObject>::namespaced_with(scene.client.clone(), scene.n(), &ar)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"template": {"spec": {"version": NEW}}}})),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
        let pd_restarted = events_of(&events, "pod_deleted", &[("component", "pd")])
            .iter()
            .any(|e| event_seq(e) > start);
        if pd_restarted {
            break;
        }
        assert!(Instant::now() < deadline, "PD's roll did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scene.restart_control_plane().await;
    // Then again once TiKV's part has begun: a store's leaders being evicted (or, on a slow
    // machine that missed that moment, the first store restarted; three more are to go). PD's
    // roll has to finish first, after a control plane restart and with every controller started
    // again. (It used to take minutes: the restarted kwok waited for its earlier self's Node
    // Leases to expire before it started any Pod; `hack/local-cluster.sh restart` now releases
    // them, as a restarted kubelet keeps its identity.)
    let deadline = Instant::now() + 2 * WAIT;
    loop {
        let evicting = scene
            .stores()
            .await
            .iter()
            .any(|s| s["evicting_leaders"].as_bool() == Some(true));
        let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
        let tikv_restarted = events_of(&events, "pod_deleted", &[("component", "tikv")])
            .iter()
            .any(|e| event_seq(e) > start);
        if evicting || tikv_restarted {
            break;
        }
        assert!(Instant::now() < deadline, "TiKV's roll did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scene.restart_control_plane().await;
    scene.wait_upgraded(NEW).await;
    scene
        .wait_settled(4, "the upgrade finished after the restarts")
        .await;
    // Exactly once each: every Pod of the old version replaced, none restarted twice.
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    scenarios::replaced_exactly_once(&events, start, &before, &["pd", "tikv", "tidb"])
        .unwrap_or_else(|e| panic!("{e}"));

    // Mid-scale-in: the control plane goes right after the store went offline.
    let start = events.iter().map(event_seq).max().unwrap_or(0);
    Api::<TiKVGroup>::namespaced(scene.client.clone(), scene.n())
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let offline = loop {
        let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
        if let Some(e) = events_of(&events, "store_deleted", &[])
            .into_iter()
            .find(|e| event_seq(e) > start)
        {
            break e["store_id"].as_u64().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "no store went offline");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    scene.restart_control_plane().await;
    scene
        .wait_settled(3, "the scale-in finished after the restart")
        .await;
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let seq = |kind: &str, filter: &[(&str, &str)]| {
        events_of(&events, kind, filter)
            .iter()
            .filter(|e| event_seq(e) > start)
            .map(|e| event_seq(e))
            .min()
            .unwrap_or_else(|| panic!("no {kind} {filter:?}"))
    };
    let tombstone = seq("store_tombstone", &[("store_id", &offline)]);
    let pod_gone = seq("pod_deleted", &[("component", "tikv")]);
    assert!(
        tombstone < pod_gone,
        "store {offline}: Tombstone #{tombstone}, a TiKV Pod deleted #{pod_gone}"
    );
    let offlined = events_of(&events, "store_deleted", &[])
        .iter()
        .filter(|e| event_seq(e) > start)
        .count();
    assert_eq!(offlined, 1, "one store taken offline, once");
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(scene.client.clone(), scene.n())
        .list(&ListParams::default().labels(&format!("{}=tikv", keys::LABEL_COMPONENT)))
        .await
        .unwrap()
        .items;
    assert_eq!(pvcs.len(), 3, "the removed store's PVC only is gone");
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}
