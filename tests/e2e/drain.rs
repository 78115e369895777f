//! Node maintenance end to end: the pd- and tikv-controllers run as processes under their
//! shipped RBAC with the operand simulator, on fake Nodes of the test's own (tainted, so no
//! other test's Pods land there and a drain touches only this test's). A Node holding a TiKV
//! store and the PD leader is cordoned and drained with the real `kubectl`: PD leadership and the
//! store's leaders must leave before its Pods are evicted, the Pods come back on another Node,
//! every group is Ready again, no evict-leader scheduler is left, and nothing is lost. A plain
//! drain, not cordoned first, is not held back and is as safe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions, reasons};
use operator_api::core::{Cluster, PD, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, NodePool, Simulator, apply_controller_identity, ensure_crds, event_seq,
    events_of, http_send,
};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
const CLUSTER: &str = "maint";
struct Scene {
    cluster: LocalCluster,
    client: Client,
    simulator: Simulator,
    _controllers: Vec<Controller>,
    pool: NodePool,
    ns: TestNamespace,
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
        // Three Nodes and a cordoned spare.
        let pool = NodePool::create(
            &client,
            cluster.kubectl(),
            ns.name(),
            &[false, false, false, true],
        )
        .await
        .unwrap();
        // One leader leaves an evicted store per tick, so a drain of its leaders is seen.
        let simulator =
            Simulator::start_with(&cluster, ns.name(), "200ms", &["--moves-per-tick=1"])
                .await
                .unwrap();
        let mut flags = simulator.overrides();
        flags.push("--leader-eviction-timeout=60s".into());
        let mut controllers = Vec::new();
        for binary in binaries {
            let flags: Vec<String> = flags
                .iter()
                .filter(|f| binary == "tikv-controller" || !f.starts_with("--leader-eviction"))
                .cloned()
                .collect();
            controllers.push(
                Controller::start(&cluster, &client, binary, ns.name(), 0, &flags)
                    .await
                    .unwrap(),
            );
        }
        Scene {
            cluster,
            client,
            simulator,
            _controllers: controllers,
            pool,
            ns,
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

    fn kubectl(&self, args: &[&str]) -> String {
        self.cluster
            .kubectl()
            .ok(args, None)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    /// A Cluster with three PD members and three stores, kept on the pool's Nodes, one member
    /// of each group per Node.
    async fn create(&self) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let overlay = |component: &str| NodePool::overlay(self.n(), CLUSTER, component);
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
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 3,
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes,
                                           "overlay": overlay("pd")}}}
        }))
        .unwrap();
        self.api::<PDGroup>()
            .create(&PostParams::default(), &pd)
            .await
            .unwrap();
        let tikv: TiKVGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 3,
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes,
                                           "overlay": overlay("tikv")}}}
        }))
        .unwrap();
        self.api::<TiKVGroup>()
            .create(&PostParams::default(), &tikv)
            .await
            .unwrap();
    }

    /// Waits until both groups have three Ready members, every instance Ready and Synced, and
    /// every Pod running on a Node that is not `avoid`.
    async fn wait_ready(&self, what: &str, avoid: Option<&str>) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let pd = self.api::<PDGroup>().get("pd").await?;
                let tikv = self.api::<TiKVGroup>().get("tikv").await?;
                let pds = self.api::<PD>().list(&ListParams::default()).await?.items;
                let tikvs = self.api::<TiKV>().list(&ListParams::default()).await?.items;
                let pods = self.api::<Pod>().list(&ListParams::default()).await?.items;
                let ok = |c: &[_]| {
                    conditions::is_true(c, conditions::READY)
                        && conditions::is_true(c, conditions::SYNCED)
                };
                Ok::<_, kube::Error>(
                    pd.status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas == 3)
                        && tikv
                            .status
                            .as_ref()
                            .is_some_and(|s| s.group.ready_replicas == 3)
                        && pds.len() == 3
                        && tikvs.len() == 3
                        && pds.iter().all(|p| ok(p.conditions()))
                        && tikvs.iter().all(|t| ok(t.conditions()))
                        && pods.len() == 6
                        && pods.iter().all(|p| {
                            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
                            node.is_some() && node != avoid
                        }),
                )
            },
        )
        .await
        .unwrap();
    }

    /// The Node a Pod runs on.
    async fn node_of(&self, pod: &str) -> String {
        let pod = self.api::<Pod>().get(pod).await.unwrap();
        pod.spec.and_then(|s| s.node_name).unwrap_or_default()
    }

    /// The Pods of `component` on `node`.
    async fn pods_on(&self, node: &str, component: &str) -> Vec<String> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(&format!("{}={component}", keys::LABEL_COMPONENT)))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .map(|p| p.name_any())
            .collect()
    }

    async fn state(&self) -> Value {
        self.simulator.state(self.n(), CLUSTER).await.unwrap()
    }

    /// The store ID of a TiKV instance, from the simulator.
    async fn store_id(&self, instance: &str) -> u64 {
        self.state().await["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["instance"] == instance)
            .and_then(|s| s["id"].as_u64())
            .unwrap_or_else(|| panic!("no store for {instance}"))
    }

    /// The stores PD evicts leaders from.
    async fn evicted(&self) -> Vec<u64> {
        self.state().await["evict_leader_stores"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    }

    /// The `NodeCordoned` condition of an instance, as (status, reason).
    async fn cordon_condition<K>(&self, name: &str) -> Option<(String, String)>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + HasConditions,
    {
        let object = self.api::<K>().get(name).await.ok()?;
        conditions::find(object.conditions(), conditions::NODE_CORDONED)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    /// Waits until instance `name` says `NodeCordoned` `status` with `reason`.
    async fn wait_cordon<K>(&self, name: &str, status: &str, reason: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + HasConditions,
    {
        let want = Some((status.to_string(), reason.to_string()));
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            &format!("{name}: NodeCordoned={status} ({reason})"),
            CONVERGE,
            || async { Ok::<_, String>(self.cordon_condition::<K>(name).await == want) },
        )
        .await
        .unwrap();
    }
}

/// Asserts from the simulator's log that no two members of a group were down at once.
fn one_down_at_a_time(events: &[Value]) {
    for component in ["pd", "tikv"] {
        let mut down = BTreeSet::new();
        for e in events.iter().filter(|e| e["component"] == component) {
            let pod = e["pod"].as_str().unwrap_or_default().to_string();
            match e["kind"].as_str() {
                Some("pod_stopped") => {
                    down.insert(pod);
                    assert!(
                        down.len() <= 1,
                        "two {component} members down at once: {down:?}"
                    );
                }
                Some("pod_running") => {
                    down.remove(&pod);
                }
                _ => {}
            }
        }
    }
}

/// The `seq` of the simulator's last event so far.
async fn last_seq(scene: &Scene) -> u64 {
    scene
        .simulator
        .events(scene.n(), CLUSTER)
        .await
        .unwrap()
        .iter()
        .map(event_seq)
        .max()
        .unwrap_or_default()
}

fn single(names: Vec<String>, what: &str) -> String {
    assert_eq!(names.len(), 1, "one {what} expected: {names:?}");
    names.into_iter().next().unwrap_or_default()
}

/// Drains a Node that holds a store and the PD leader: leadership and the store's leaders leave
/// at the cordon, before `kubectl drain` evicts the Pods; the Pods come back on the spare Node,
/// the evict-leader scheduler goes once the store serves there, and a cordon that is taken back
/// before any drain gives the store its leaders back. Then a plain drain of another Node.
#[tokio::test]
async fn draining_a_node_moves_pd_leadership_and_the_stores_leaders_before_its_pods_go() {
    let scene = Scene::start("drain").await;
    scene.create().await;
    scene
        .wait_ready("the cluster on the pool's Nodes", None)
        .await;
    let target = scene.pool.node(0).to_string();
    let spare = scene.pool.node(3).to_string();
    let pd_member = single(scene.pods_on(&target, "pd").await, "PD member on the Node");
    let store_instance = single(scene.pods_on(&target, "tikv").await, "store on the Node");
    let store = scene.store_id(&store_instance).await;

    // The PD leader is put on the Node to drain, as `pd-ctl member leader transfer` would.
    let leader = scene.state().await["leader"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if leader != pd_member {
        let url = format!(
            "{}/clusters/{}/{CLUSTER}/pd/api/v1/leader/transfer/{pd_member}",
            scene.simulator.url,
            scene.n()
        );
        http_send(reqwest::Method::POST, &url, &json!({}))
            .await
            .unwrap();
    }
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the PD leader on the Node",
        CONVERGE,
        || async { Ok::<_, String>(scene.state().await["leader"] == pd_member.as_str()) },
    )
    .await
    .unwrap();

    // A cordon taken back before any drain: the leaders leave, then the scheduler goes at the
    // uncordon and the store takes leaders again.
    let before_cordon = last_seq(&scene).await;
    scene.kubectl(&["cordon", &target]);
    scene
        .wait_cordon::<TiKV>(&store_instance, conditions::STATUS_TRUE, "LeadersEvicted")
        .await;
    scene
        .wait_cordon::<PD>(&pd_member, conditions::STATUS_TRUE, "NotLeader")
        .await;
    assert_eq!(
        scene.evicted().await,
        [store],
        "the store is evicted while cordoned"
    );
    scene.kubectl(&["uncordon", &target]);
    scene
        .wait_cordon::<TiKV>(
            &store_instance,
            conditions::STATUS_FALSE,
            reasons::NODE_SCHEDULABLE,
        )
        .await;
    scene
        .wait_cordon::<PD>(
            &pd_member,
            conditions::STATUS_FALSE,
            reasons::NODE_SCHEDULABLE,
        )
        .await;
    assert!(
        scene.evicted().await.is_empty(),
        "the scheduler goes at the uncordon"
    );
    let events: Vec<Value> = scene
        .simulator
        .events(scene.n(), CLUSTER)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > before_cordon)
        .collect();
    assert!(
        events_of(&events, "pod_stopped", &[]).is_empty(),
        "a cordon alone stops nothing: {:?}",
        events_of(&events, "pod_stopped", &[])
    );

    // The drain: leadership back on the Node first, then the spare Node opens.
    let url = format!(
        "{}/clusters/{}/{CLUSTER}/pd/api/v1/leader/transfer/{pd_member}",
        scene.simulator.url,
        scene.n()
    );
    http_send(reqwest::Method::POST, &url, &json!({}))
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the PD leader back on the Node",
        CONVERGE,
        || async { Ok::<_, String>(scene.state().await["leader"] == pd_member.as_str()) },
    )
    .await
    .unwrap();
    let start = last_seq(&scene).await;
    scene.kubectl(&["uncordon", &spare]);
    // As the runbook says: cordon, wait for the conditions, then drain.
    scene.kubectl(&["cordon", &target]);
    scene
        .wait_cordon::<TiKV>(&store_instance, conditions::STATUS_TRUE, "LeadersEvicted")
        .await;
    scene
        .wait_cordon::<PD>(&pd_member, conditions::STATUS_TRUE, "NotLeader")
        .await;
    scene.kubectl(&[
        "drain",
        &target,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    scene
        .wait_ready("every member back, on the spare Node", Some(&target))
        .await;
    assert_eq!(scene.node_of(&pd_member).await, spare);
    assert_eq!(scene.node_of(&store_instance).await, spare);
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "no evicted store left",
        CONVERGE,
        || async { Ok::<_, String>(scene.evicted().await.is_empty()) },
    )
    .await
    .unwrap();
    scene
        .wait_cordon::<TiKV>(
            &store_instance,
            conditions::STATUS_FALSE,
            reasons::NODE_SCHEDULABLE,
        )
        .await;
    scene.kubectl(&["uncordon", &target]);
    scene
        .wait_cordon::<PD>(
            &pd_member,
            conditions::STATUS_FALSE,
            reasons::NODE_SCHEDULABLE,
        )
        .await;
    assert!(
        scene.evicted().await.is_empty(),
        "no scheduler after the uncordon"
    );

    // The order, from the simulator's log.
    let events: Vec<Value> = scene
        .simulator
        .events(scene.n(), CLUSTER)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .collect();
    let seq = |kind: &str, fields: &[(&str, &str)]| -> Vec<u64> {
        events_of(&events, kind, fields)
            .iter()
            .map(|e| event_seq(e))
            .collect()
    };
    let pd_stopped = seq(
        "pod_stopped",
        &[("component", "pd"), ("instance", &pd_member)],
    );
    let transferred = seq("leader_transferred", &[("from", &pd_member)]);
    assert_eq!(
        pd_stopped.len(),
        1,
        "the PD member stopped once: {events:#?}"
    );
    assert!(
        transferred.first().is_some_and(|t| *t < pd_stopped[0]),
        "PD leadership left {pd_member} (at {transferred:?}) before its Pod stopped (at {pd_stopped:?})"
    );
    let id = store.to_string();
    let store_stopped = seq(
        "pod_stopped",
        &[("component", "tikv"), ("instance", &store_instance)],
    );
    let added = seq("scheduler_added", &[("store_id", &id)]);
    let drained = seq("leaders_drained", &[("store_id", &id)]);
    let removed = seq("scheduler_removed", &[("store_id", &id)]);
    let back = seq(
        "pod_running",
        &[("component", "tikv"), ("instance", &store_instance)],
    );
    assert_eq!(
        store_stopped.len(),
        1,
        "the store's Pod stopped once: {events:#?}"
    );
    let stop = store_stopped[0];
    assert!(
        added.first().is_some_and(|a| *a < stop) && drained.first().is_some_and(|d| *d < stop),
        "store {id}'s leaders were evicted (added {added:?}, drained {drained:?}) before its Pod stopped ({stop})"
    );
    assert!(
        removed.len() == added.len() && removed.iter().all(|r| back.iter().any(|b| b < r)),
        "the scheduler of store {id} was removed only once its Pod ran again (added {added:?}, removed {removed:?}, running {back:?})"
    );
    one_down_at_a_time(&events);

    // A plain drain, the Node not cordoned first: the operator holds no eviction back, and the
    // budgets still take one member of each group at a time; nothing is left evicted after.
    let other = scene.pool.node(1).to_string();
    let start = last_seq(&scene).await;
    scene.kubectl(&[
        "drain",
        &other,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    scene
        .wait_ready("every member back after a plain drain", Some(&other))
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "no evicted store left after a plain drain",
        CONVERGE,
        || async { Ok::<_, String>(scene.evicted().await.is_empty()) },
    )
    .await
    .unwrap();
    let events: Vec<Value> = scene
        .simulator
        .events(scene.n(), CLUSTER)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .collect();
    assert_eq!(
        events_of(&events, "pod_stopped", &[]).len(),
        2,
        "the drain stopped the Node's PD member and store once each: {events:#?}"
    );
    one_down_at_a_time(&events);
    scene.kubectl(&["uncordon", &other]);

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}
