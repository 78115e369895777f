//! Automatic failover end to end: the pd-, tikv- and tidb-controllers run as processes under
//! their shipped RBAC with the operand simulator. A TiKV store forced Down past the group's
//! failover period gets a replacement store while its instance, Pod and PVC stay; Regions are
//! fully replicated again; a second failure finds the cap; the failed store, once back, leaves
//! through PD; a failed store whose Node is gone for good is removed by deleting its instance —
//! also when that Node is really lost and its Pod can never be confirmed gone. Crash-looping
//! stores get no more than `maxReplacements` replacements at once.
//! Every store Down at once is an outage and replaces nothing. A TiDB server not Ready past the
//! period is replaced and goes only once its replacement serves, the MySQL Service never empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PD, PDGroup, TiDB, TiDBGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, NodePool, Simulator, apply_controller_identity, ensure_crds, event_seq,
    events_of, ready_endpoints,
};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
const CLUSTER: &str = "fo";
/// The failover period of the scenarios: short, so that CI stays cheap.
const PERIOD_SECONDS: u64 = 3;

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<Controller>,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        Scene::start_with(prefix, &[]).await
    }

    /// A scene whose simulator runs with `simulator_flags`.
    async fn start_with(prefix: &str, simulator_flags: &[&str]) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let binaries = ["pd-controller", "tikv-controller", "tidb-controller"];
        for binary in binaries {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start_with(&cluster, ns.name(), "200ms", simulator_flags)
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
            controllers,
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

    async fn create<K>(&self, value: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(value).unwrap();
        self.api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }

    /// The Cluster and one PD member.
    async fn create_cluster(&self) {
        self.create_cluster_with_pd(1).await;
    }

    /// The Cluster and a PDGroup of `members`, failing over after the period.
    async fn create_cluster_with_pd(&self, members: i32) {
        self.create::<Cluster>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {}
        }))
        .await;
        self.create::<PDGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": members, "minReadySeconds": 0,
                     "failover": {"period": format!("{PERIOD_SECONDS}s")},
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes()}}}
        }))
        .await;
    }

    async fn pds(&self) -> Vec<PD> {
        self.api::<PD>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// Waits until the PDGroup has exactly `members` instances, all Ready, none leaving.
    async fn wait_pd_ready(&self, members: usize, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let pds = self.pds().await;
                Ok::<_, kube::Error>(
                    pds.len() == members
                        && pds.iter().all(|p| {
                            p.metadata.deletion_timestamp.is_none()
                                && conditions::is_true(p.conditions(), conditions::READY)
                        }),
                )
            },
        )
        .await
        .unwrap();
    }

    async fn create_tikv(&self, replicas: i32, max_replacements: i32) {
        self.create_tikv_with(replicas, max_replacements, json!({}))
            .await;
    }

    /// A TiKVGroup whose template has `overlay`.
    async fn create_tikv_with(&self, replicas: i32, max_replacements: i32, overlay: Value) {
        self.create::<TiKVGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas, "minReadySeconds": 0,
                     "failover": {"period": format!("{PERIOD_SECONDS}s"),
                                  "maxReplacements": max_replacements},
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes(),
                                           "overlay": overlay}}}
        }))
        .await;
    }

    async fn tikvs(&self) -> Vec<TiKV> {
        self.api::<TiKV>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    async fn tikv(&self, name: &str) -> Option<TiKV> {
        self.api::<TiKV>().get_opt(name).await.unwrap()
    }

    /// The store ID each instance recorded.
    async fn recorded_ids(&self) -> BTreeMap<String, String> {
        self.tikvs()
            .await
            .iter()
            .map(|t| (t.name_any(), t.status.clone().unwrap_or_default().id))
            .collect()
    }

    /// Waits until the TiKVGroup has exactly `replicas` instances, all Ready and Synced.
    async fn wait_tikv_ready(&self, replicas: usize, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let group = self.api::<TiKVGroup>().get("tikv").await?;
                let tikvs = self.tikvs().await;
                Ok::<_, kube::Error>(
                    group
                        .status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas as usize == replicas)
                        && tikvs.len() == replicas
                        && tikvs.iter().all(|t| {
                            conditions::is_true(t.conditions(), conditions::READY)
                                && conditions::is_true(t.conditions(), conditions::SYNCED)
                        }),
                )
            },
        )
        .await
        .unwrap();
    }

    async fn wait_tikv_group(&self, what: &str, check: impl Fn(&TiKVGroup) -> bool) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let group = self.api::<TiKVGroup>().get("tikv").await?;
                Ok::<_, kube::Error>(check(&group))
            },
        )
        .await
        .unwrap();
    }

    async fn fault(&self, fault: &str, on: bool) {
        if on {
            self.simulator
                .set_fault(self.n(), CLUSTER, fault)
                .await
                .unwrap();
        } else {
            self.simulator
                .clear_fault(self.n(), CLUSTER, fault)
                .await
                .unwrap();
        }
    }

    /// The simulator's Region summary.
    async fn regions(&self) -> Value {
        self.simulator.state(self.n(), CLUSTER).await.unwrap()["regions"].clone()
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

    /// Follows the removal of `instance` (store `id`) until the instance is gone: while PD does
    /// not report the store Tombstone, its Pod and PVC must be there at every look. Then checks
    /// from the simulator's log that the store went offline through PD and was Tombstone before
    /// the Pod was deleted.
    async fn follow_removal(&self, instance: &str, id: &str) {
        let deadline = Instant::now() + CONVERGE;
        while self.tikv(instance).await.is_some() {
            // The store's state after the objects: a Tombstone seen after a deletion proves
            // nothing, one not yet Tombstone then means the deletion came too early.
            let (pod, pvc) = self.keeps_pod_and_pvc(instance).await;
            let state = self.store_state(id).await;
            if state != "Tombstone" {
                assert!(
                    pod && pvc,
                    "{instance}: Pod kept {pod}, PVC kept {pvc} while PD reports store {id} {state}"
                );
            }
            assert!(Instant::now() < deadline, "{instance} was not removed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events = self.simulator.events(self.n(), CLUSTER).await.unwrap();
        let seq = |kind: &str| {
            events_of(&events, kind, &[("store_id", id)])
                .first()
                .map(|e| event_seq(e))
                .unwrap_or_else(|| panic!("no {kind} event for store {id}"))
        };
        let (offline, tombstone) = (seq("store_deleted"), seq("store_tombstone"));
        let pod_gone = events_of(&events, "pod_deleted", &[("instance", instance)])
            .last()
            .map(|e| event_seq(e))
            .expect("Pod deleted");
        assert!(
            offline < tombstone && tombstone < pod_gone,
            "store {id}: offline #{offline}, Tombstone #{tombstone}, Pod of {instance} deleted #{pod_gone}"
        );
    }

    /// `tidb_operator_failovers_total` of `component`'s controller for `event`.
    async fn failovers(&self, component: &str, event: &str) -> f64 {
        self.controller(component)
            .metric_sum("tidb_operator_failovers_total", &[("event", event)])
            .await
            .unwrap()
    }

    /// `tidb_operator_failed_instances` of `component`'s controller.
    async fn failed_instances(&self, component: &str) -> f64 {
        self.controller(component)
            .metric_sum("tidb_operator_failed_instances", &[])
            .await
            .unwrap()
    }

    fn controller(&self, component: &str) -> &Controller {
        let index = ["pd", "tikv", "tidb"]
            .iter()
            .position(|c| *c == component)
            .unwrap();
        &self.controllers[index]
    }

    /// The messages of the Events with `reason` in the namespace.
    async fn events(&self, reason: &str) -> Vec<String> {
        self.api::<Event>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.message)
            .collect()
    }
}

fn volumes() -> Value {
    json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}])
}

fn annotated(tikv: &TiKV, key: &str) -> bool {
    tikv.annotations().contains_key(key)
}

/// Whether the instance is leaving its group (deleted, or marked for removal by a scale-in).
fn leaving(tikv: &TiKV) -> bool {
    tikv.metadata.deletion_timestamp.is_some() || annotated(tikv, keys::ANNO_DEFER_DELETE)
}

fn synced_reason(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    conditions::find(conditions, conditions::SYNCED)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_down_store_is_replaced_kept_and_taken_out_through_pd_once_it_is_back_or_deleted() {
    let scene = Scene::start("e2e-failover").await;
    scene.create_cluster().await;
    scene.create_tikv(4, 1).await;
    scene.wait_tikv_ready(4, "four serving stores").await;
    let ids = scene.recorded_ids().await;
    let names: Vec<String> = ids.keys().cloned().collect();
    let (a, b, c) = (&names[0], &names[1], &names[2]);

    // Store a goes Down: after the period it gets a replacement; it stays, Pod and PVC too,
    // and says why.
    scene.fault(&format!("store-down/{a}"), true).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a replacement store serving and the failed one marked",
        CONVERGE,
        || async {
            let tikvs = scene.tikvs().await;
            let failed = tikvs.iter().find(|t| &t.name_any() == a);
            let marked = failed.is_some_and(|t| {
                annotated(t, keys::ANNO_FAILED_OVER)
                    && conditions::is_true(t.conditions(), "FailedOver")
            });
            let serving = tikvs
                .iter()
                .filter(|t| !ids.contains_key(&t.name_any()))
                .filter(|t| conditions::is_true(t.conditions(), conditions::READY))
                .count();
            Ok::<_, kube::Error>(marked && serving == 1 && tikvs.len() == 5)
        },
    )
    .await
    .unwrap();
    assert_eq!(scene.keeps_pod_and_pvc(a).await, (true, true));
    let failed = scene.tikv(a).await.unwrap();
    let condition = conditions::find(failed.conditions(), "FailedOver").unwrap();
    let id_a = &ids[a];
    assert!(
        condition
            .message
            .contains(&format!("PD reports store {id_a} Down since")),
        "{}",
        condition.message
    );
    let started = scene.events("FailoverStarted").await;
    assert!(
        started
            .iter()
            .any(|m| m.contains(a.as_str()) && m.contains(&format!("store {id_a} Down"))),
        "{started:?}"
    );
    // With the new store, PD puts every Region back at full replication.
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "every Region fully replicated on Up stores",
        CONVERGE,
        || async {
            let regions = scene.regions().await;
            Ok::<_, kube::Error>(regions["with_down_peers"] == 0 && regions["missing_peers"] == 0)
        },
    )
    .await
    .unwrap();
    assert_eq!(scene.failovers("tikv", "started").await, 1.0);
    assert_eq!(scene.failed_instances("tikv").await, 1.0);
    let replacement = scene
        .tikvs()
        .await
        .iter()
        .map(|t| t.name_any())
        .find(|n| !ids.contains_key(n))
        .unwrap();

    // A second store fails while the cap (1) is taken: no replacement, a condition naming it.
    scene.fault(&format!("store-down/{b}"), true).await;
    scene
        .wait_tikv_group("failover refused at the cap", |g| {
            conditions::find(g.conditions(), conditions::SYNCED)
                .is_some_and(|c| c.reason == "FailoverExhausted" && c.message.contains(b.as_str()))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3 * PERIOD_SECONDS)).await;
    let tikvs = scene.tikvs().await;
    assert_eq!(tikvs.len(), 5, "no second replacement");
    assert!(
        tikvs
            .iter()
            .find(|t| &t.name_any() == b)
            .is_some_and(|t| !annotated(t, keys::ANNO_FAILED_OVER))
    );
    // It recovers before anything was done: its failover state is forgotten.
    scene.fault(&format!("store-down/{b}"), false).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the recovered store's failover state forgotten",
        CONVERGE,
        || async {
            let group = scene.api::<TiKVGroup>().get("tikv").await?;
            let b = scene.tikv(b).await.unwrap();
            Ok::<_, kube::Error>(
                !annotated(&b, keys::ANNO_FAILING_SINCE)
                    && conditions::find(b.conditions(), "FailedOver").is_none()
                    && synced_reason(group.conditions()) != "FailoverExhausted",
            )
        },
    )
    .await
    .unwrap();

    // Store a comes back: it leaves through PD (it is nearly empty), its replacement stays.
    scene.fault(&format!("store-down/{a}"), false).await;
    scene.follow_removal(a, id_a).await;
    assert_eq!(scene.failovers("tikv", "completed").await, 1.0);
    scene
        .wait_tikv_ready(4, "four stores after the recovery")
        .await;
    let names_now: BTreeSet<String> = scene.tikvs().await.iter().map(|t| t.name_any()).collect();
    assert!(names_now.contains(&replacement), "{names_now:?}");
    assert!(!names_now.contains(a.as_str()));

    // Store c's Node is gone for good: it is replaced, then the user deletes its instance and
    // its store is removed through PD without coming back.
    scene.fault(&format!("store-down/{c}"), true).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "store c replaced",
        CONVERGE,
        || async {
            let tikvs = scene.tikvs().await;
            let marked = tikvs
                .iter()
                .any(|t| &t.name_any() == c && annotated(t, keys::ANNO_FAILED_OVER));
            let ready = tikvs
                .iter()
                .filter(|t| conditions::is_true(t.conditions(), conditions::READY))
                .count();
            Ok::<_, kube::Error>(marked && tikvs.len() == 5 && ready == 4)
        },
    )
    .await
    .unwrap();
    scene
        .api::<TiKV>()
        .delete(c, &DeleteParams::default())
        .await
        .unwrap();
    scene.follow_removal(c, &ids[c]).await;
    scene
        .wait_tikv_ready(4, "four stores after the deletion")
        .await;

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_store_on_a_lost_node_is_replaced_and_one_delete_takes_it_out_through_pd() {
    let scene = Scene::start("e2e-failover-node").await;
    // Four Nodes of the test's own: three stores, one per Node, and room for a replacement.
    let pool = NodePool::create(
        &scene.client,
        scene.cluster.kubectl(),
        scene.n(),
        &[false; 4],
    )
    .await
    .unwrap();
    scene.create_cluster().await;
    let mut overlay = NodePool::overlay(scene.n(), CLUSTER, "tikv");
    // A short grace period: the removal below waits for it to pass before it calls the Pod stuck.
    overlay["pod"]["spec"]["terminationGracePeriodSeconds"] = json!(2);
    scene.create_tikv_with(3, 1, overlay).await;
    scene.wait_tikv_ready(3, "three serving stores").await;
    let ids = scene.recorded_ids().await;
    let lost = ids.keys().next().unwrap().clone();
    let id = ids[&lost].clone();
    let node_of = |pod: &Pod| pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let pods = scene.api::<Pod>();
    let node = node_of(&pods.get(&lost).await.unwrap()).unwrap();

    // The Node dies: kwok stops running it and the simulator sees nothing on it run.
    pool.lose(&scene.client, &node).await.unwrap();
    scene.fault(&format!("node-lost/{node}"), true).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a replacement store serving on another Node and the lost one marked",
        CONVERGE,
        || async {
            let tikvs = scene.tikvs().await;
            let marked = tikvs
                .iter()
                .any(|t| t.name_any() == lost && conditions::is_true(t.conditions(), "FailedOver"));
            let serving = tikvs
                .iter()
                .filter(|t| !ids.contains_key(&t.name_any()))
                .filter(|t| conditions::is_true(t.conditions(), conditions::READY))
                .count();
            Ok::<_, kube::Error>(marked && serving == 1 && tikvs.len() == 4)
        },
    )
    .await
    .unwrap();
    let replacement = scene
        .tikvs()
        .await
        .iter()
        .map(|t| t.name_any())
        .find(|n| !ids.contains_key(n))
        .unwrap();
    assert_ne!(
        node_of(&pods.get(&replacement).await.unwrap()).as_deref(),
        Some(node.as_str())
    );
    assert_eq!(scene.keeps_pod_and_pvc(&lost).await, (true, true));
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "every Region fully replicated on the stores that are left",
        CONVERGE,
        || async {
            let regions = scene.regions().await;
            Ok::<_, kube::Error>(regions["with_down_peers"] == 0 && regions["missing_peers"] == 0)
        },
    )
    .await
    .unwrap();

    // The Node is not coming back. One command: the store goes Offline, then Tombstone, and
    // only then its Pod (which no kubelet will ever confirm gone), PVC and instance.
    scene
        .api::<TiKV>()
        .delete(&lost, &DeleteParams::default())
        .await
        .unwrap();
    scene.follow_removal(&lost, &id).await;
    let forced = scene.events("PodForceDeleted").await;
    assert!(
        forced
            .iter()
            .any(|m| m.contains(&node) && m.contains(&format!("store {id} is Tombstone"))),
        "{forced:?}"
    );
    assert_eq!(scene.keeps_pod_and_pvc(&lost).await, (false, false));
    scene
        .wait_tikv_ready(3, "three stores without the lost one")
        .await;
    assert_eq!(scene.store_state(&id).await, "Tombstone");
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

#[tokio::test]
async fn crash_looping_stores_get_no_more_than_max_replacements_at_once() {
    // Each crash-looping store is Down, then Up for a while. Down for long enough that both are
    // seen failed past the period in the same down phase: a serving store's state is looked at
    // every 30 s.
    let scene = Scene::start_with("e2e-failover-flap", &["--flap-down=36s", "--flap-up=4s"]).await;
    scene.create_cluster().await;
    // Five stores: two of them silent at once is not an outage.
    scene.create_tikv(5, 1).await;
    scene.wait_tikv_ready(5, "five serving stores").await;
    let ids = scene.recorded_ids().await;
    let names: Vec<String> = ids.keys().cloned().collect();
    let (a, b) = (&names[0], &names[1]);
    scene.fault(&format!("store-flap/{a}"), true).await;
    scene.fault(&format!("store-flap/{b}"), true).await;

    // Over several crash cycles: never more than one replacement outstanding, nor more than one
    // instance above `replicas` staying; the store that finds the cap taken is named.
    let until = Instant::now() + Duration::from_secs(44);
    let mut refused = false;
    while Instant::now() < until {
        let tikvs = scene.tikvs().await;
        let staying: Vec<&TiKV> = tikvs.iter().filter(|t| !leaving(t)).collect();
        let outstanding = staying
            .iter()
            .filter(|t| annotated(t, keys::ANNO_FAILED_OVER))
            .count();
        assert!(
            outstanding <= 1 && staying.len() <= 6,
            "{outstanding} replacements outstanding, {} instances staying",
            staying.len()
        );
        let group = scene.api::<TiKVGroup>().get("tikv").await.unwrap();
        refused |= conditions::find(group.conditions(), conditions::SYNCED).is_some_and(|c| {
            c.reason == "FailoverExhausted"
                && (c.message.contains(a.as_str()) || c.message.contains(b.as_str()))
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The condition may be overtaken by another reason meanwhile; the Warning Event stays.
    let exhausted = scene.events("FailoverExhausted").await;
    refused |= exhausted
        .iter()
        .any(|m| m.contains(a.as_str()) || m.contains(b.as_str()));
    assert!(refused, "the cap was never reported");
    let started = scene.failovers("tikv", "started").await;
    assert!(
        (1.0..=2.0).contains(&started),
        "{started} replacements begun for two crash-looping stores"
    );

    // The crash loops end: the group returns to five Ready stores; a replaced store that came
    // back left through PD, the replacements stay.
    scene.fault(&format!("store-flap/{a}"), false).await;
    scene.fault(&format!("store-flap/{b}"), false).await;
    scene
        .wait_tikv_ready(5, "five stores once the crash loops end")
        .await;
    scene
        .wait_tikv_group("no failover condition left", |g| {
            !synced_reason(g.conditions()).starts_with("Failover")
        })
        .await;
    // A store whose crash loop ended just as it was marked failed over leaves through PD (and is
    // replaced) only after the group has looked at it again: wait for that, not only for five
    // Ready stores, which such a store can briefly make.
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "no store marked failed over, five Ready",
        CONVERGE,
        || async {
            let tikvs = scene.tikvs().await;
            Ok::<_, kube::Error>(
                tikvs.len() == 5
                    && tikvs.iter().all(|t| {
                        !annotated(t, keys::ANNO_FAILED_OVER)
                            && conditions::is_true(t.conditions(), conditions::READY)
                    }),
            )
        },
    )
    .await
    .unwrap();
    // Two of five stores down at once take some Regions' majority with them (the world's
    // outage, not the operator's); nothing may be lost.
    scene
        .simulator
        .verdict(
            scene.n(),
            CLUSTER,
            &Allowed::none().regions_without_leader(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_store_down_at_once_is_an_outage_and_nothing_is_replaced() {
    let scene = Scene::start("e2e-failover-outage").await;
    scene.create_cluster().await;
    scene.create_tikv(3, 3).await;
    scene.wait_tikv_ready(3, "three serving stores").await;
    let names: Vec<String> = scene.recorded_ids().await.into_keys().collect();
    for name in &names {
        scene.fault(&format!("store-down/{name}"), true).await;
    }
    scene
        .wait_tikv_group("failover held as an outage", |g| {
            conditions::find(g.conditions(), conditions::SYNCED).is_some_and(|c| {
                c.reason == "FailoverOutage" && c.message.contains("3 of the cluster's 3 stores")
            })
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3 * PERIOD_SECONDS)).await;
    let tikvs = scene.tikvs().await;
    assert_eq!(tikvs.len(), 3, "nothing added in an outage");
    assert!(tikvs.iter().all(|t| !annotated(t, keys::ANNO_FAILED_OVER)));
    for name in &names {
        scene.fault(&format!("store-down/{name}"), false).await;
    }
    scene.wait_tikv_ready(3, "the stores back").await;
    scene
        .wait_tikv_group("the outage condition gone", |g| {
            synced_reason(g.conditions()) != "FailoverOutage"
        })
        .await;
    // The stores were down: Regions had no leader meanwhile; nothing was lost.
    scene
        .simulator
        .verdict(
            scene.n(),
            CLUSTER,
            &Allowed::none().regions_without_leader(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tidb_server_not_ready_past_the_period_is_replaced_before_it_goes() {
    let scene = Scene::start("e2e-failover-tidb").await;
    scene.create_cluster().await;
    scene
        .create::<TiDBGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiDBGroup",
            "metadata": {"name": "db"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 2, "minReadySeconds": 0,
                     "failover": {"period": format!("{PERIOD_SECONDS}s")},
                     "template": {"spec": {"version": "v8.5.2"}}}
        }))
        .await;
    let ready_servers = || async {
        scene
            .api::<TiDB>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    };
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "two TiDB servers Ready",
        CONVERGE,
        || async {
            let servers = ready_servers().await;
            let endpoints = ready_endpoints(&scene.client, scene.n(), "db-tidb").await?;
            Ok::<_, kube::Error>(
                servers.len() == 2
                    && servers
                        .iter()
                        .all(|s| conditions::is_true(s.conditions(), conditions::READY))
                    && endpoints.len() == 2,
            )
        },
    )
    .await
    .unwrap();
    let first: BTreeSet<String> = ready_servers().await.iter().map(|s| s.name_any()).collect();
    let failed = first.iter().next().unwrap().clone();
    scene.fault(&format!("tidb-unhealthy/{failed}"), true).await;

    // Until the failed server is gone and the group has two Ready again: the MySQL Service
    // always has a ready endpoint, and the failed server goes only once its replacement is Ready.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let servers = ready_servers().await;
        let endpoints = ready_endpoints(&scene.client, scene.n(), "db-tidb")
            .await
            .unwrap();
        assert!(
            !endpoints.is_empty(),
            "the MySQL Service had no ready endpoint"
        );
        let replacements_ready = servers
            .iter()
            .filter(|s| !first.contains(&s.name_any()))
            .filter(|s| conditions::is_true(s.conditions(), conditions::READY))
            .count();
        let failed_now = servers.iter().find(|s| s.name_any() == failed);
        if failed_now.is_none_or(|s| s.metadata.deletion_timestamp.is_some()) {
            assert_eq!(
                replacements_ready, 1,
                "{failed} went before its replacement was Ready"
            );
        }
        let ready = servers
            .iter()
            .filter(|s| conditions::is_true(s.conditions(), conditions::READY))
            .count();
        if failed_now.is_none() && servers.len() == 2 && ready == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{failed} was not replaced: {:?}",
            servers.iter().map(|s| s.name_any()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = scene.events("FailoverStarted").await;
    assert!(
        started.iter().any(|m| m.contains(failed.as_str())),
        "{started:?}"
    );
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unhealthy_pd_member_leaves_the_pd_cluster_before_its_replacement_joins() {
    let scene = Scene::start("e2e-failover-pd").await;
    scene.create_cluster_with_pd(3).await;
    scene.wait_pd_ready(3, "three PD members").await;
    let first: BTreeSet<String> = scene.pds().await.iter().map(|p| p.name_any()).collect();
    let failed = scene
        .pds()
        .await
        .into_iter()
        .find(|p| !p.status.as_ref().is_some_and(|s| s.is_leader))
        .map(|p| p.name_any())
        .unwrap();
    scene.fault(&format!("pd-member-down/{failed}"), true).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the failed member replaced",
        CONVERGE,
        || async {
            let pds = scene.pds().await;
            let names: BTreeSet<String> = pds.iter().map(|p| p.name_any()).collect();
            Ok::<_, kube::Error>(
                !names.contains(&failed)
                    && names.len() == 3
                    && pds
                        .iter()
                        .all(|p| conditions::is_true(p.conditions(), conditions::READY)),
            )
        },
    )
    .await
    .unwrap();
    let joined: Vec<String> = scene
        .pds()
        .await
        .iter()
        .map(|p| p.name_any())
        .filter(|n| !first.contains(n))
        .collect();
    assert_eq!(joined.len(), 1, "{joined:?}");
    // PD removed the failed member before the new one first ran.
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let deleted = events_of(&events, "member_deleted", &[("name", failed.as_str())])
        .first()
        .map(|e| event_seq(e))
        .expect("the failed member removed through PD");
    let added = events_of(&events, "member_added", &[("name", joined[0].as_str())])
        .first()
        .map(|e| event_seq(e))
        .expect("the new member added");
    assert!(
        deleted < added,
        "member {failed} removed #{deleted}, {} added #{added}",
        joined[0]
    );
    let started = scene.events("FailoverStarted").await;
    assert!(
        started.iter().any(|m| m.contains(failed.as_str())),
        "{started:?}"
    );
    scene
        .fault(&format!("pd-member-down/{failed}"), false)
        .await;
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

#[tokio::test]
async fn two_of_three_pd_members_down_is_no_failover_and_pd_comes_back_whole() {
    let scene = Scene::start("e2e-failover-pdq").await;
    scene.create_cluster_with_pd(3).await;
    scene.wait_pd_ready(3, "three PD members").await;
    let names: Vec<String> = scene.pds().await.iter().map(|p| p.name_any()).collect();
    for name in &names[..2] {
        scene.fault(&format!("pd-member-down/{name}"), true).await;
    }
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "failover held: no majority",
        CONVERGE,
        || async {
            let group = scene.api::<PDGroup>().get("pd").await?;
            Ok::<_, kube::Error>(
                conditions::find(group.conditions(), conditions::SYNCED)
                    .is_some_and(|c| c.reason == "FailoverOutage"),
            )
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3 * PERIOD_SECONDS)).await;
    let now: Vec<String> = scene.pds().await.iter().map(|p| p.name_any()).collect();
    assert_eq!(now, names, "no member removed or added without a majority");
    assert!(
        scene
            .pds()
            .await
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none())
    );
    for name in &names[..2] {
        scene.fault(&format!("pd-member-down/{name}"), false).await;
    }
    scene.wait_pd_ready(3, "the members back").await;
    let now: Vec<String> = scene.pds().await.iter().map(|p| p.name_any()).collect();
    assert_eq!(now, names);
    // PD had no quorum while two members were down; nothing was lost.
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none().pd_quorum_loss())
        .await
        .unwrap();
}
