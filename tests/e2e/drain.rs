//! Node maintenance end to end: the pd- and tikv-controllers run as processes under their
//! shipped RBAC with the operand simulator, on fake Nodes of the test's own (tainted, so no
//! other test's Pods land there and a drain touches only this test's). A Node holding a TiKV
//! store and the PD leader is cordoned and drained with the real `kubectl`: PD leadership and the
//! store's leaders must leave before its Pods are evicted, the Pods come back on another Node,
//! every group is Ready again, no evict-leader scheduler is left, and nothing is lost. A plain
//! drain, not cordoned first, is not held back and is as safe; two drains at once never have two
//! PD members or two stores down together. A PD or TiKV Pod deleted by hand runs its preStop
//! hand-over (the simulator playing the kubelet): leadership and leaders leave before it stops.

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
        Self::start_with(prefix, &[false, false, false, true]).await
    }

    /// A scene whose pool has one Node per entry of `cordoned` (whether it starts cordoned).
    async fn start_with(prefix: &str, cordoned: &[bool]) -> Scene {
        Self::start_full(prefix, cordoned, false).await
    }

    /// With `pre_stop`, the simulator runs the Pods' preStop hand-over as a kubelet would.
    async fn start_full(prefix: &str, cordoned: &[bool], pre_stop: bool) -> Scene {
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
        let pool = NodePool::create(&client, cluster.kubectl(), ns.name(), cordoned)
            .await
            .unwrap();
        // One leader leaves an evicted store per tick, so a drain of its leaders is seen.
        let handover = testkit::workspace_binary("tidb-handover").unwrap();
        let pre_stop_flag = format!("--pre-stop-binary={}", handover.display());
        let mut simulator_flags = vec!["--moves-per-tick=1"];
        if pre_stop {
            simulator_flags.push(pre_stop_flag.as_str());
        }
        let simulator = Simulator::start_with(&cluster, ns.name(), "200ms", &simulator_flags)
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
        self.create_with(None).await;
    }

    /// [`Scene::create`], the stores' volumes of StorageClass `tikv_class` (when given) and
    /// their failover after 5 s.
    async fn create_with(&self, tikv_class: Option<&str>) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let mut tikv_volumes = volumes.clone();
        if let Some(class) = tikv_class {
            tikv_volumes[0]["storageClassName"] = class.into();
        }
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
                     "failover": {"period": "5s"},
                     "template": {"spec": {"version": "v8.5.2", "volumes": tikv_volumes,
                                           "overlay": overlay("tikv")}}}
        }))
        .unwrap();
        self.api::<TiKVGroup>()
            .create(&PostParams::default(), &tikv)
            .await
            .unwrap();
    }

    /// Waits until both groups have three Ready members, every instance Ready and Synced, and
    /// every Pod running on a Node that is not one of `avoid`.
    async fn wait_ready(&self, what: &str, avoid: &[&str]) {
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
                            node.is_some_and(|n| !avoid.contains(&n))
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

    /// Waits until PD evicts leaders from no store.
    async fn wait_no_evicted(&self, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async { Ok::<_, String>(self.evicted().await.is_empty()) },
        )
        .await
        .unwrap();
    }

    /// The simulator's events after `start`.
    async fn events_since(&self, start: u64) -> Vec<Value> {
        self.simulator
            .events(self.n(), CLUSTER)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| event_seq(e) > start)
            .collect()
    }

    /// The UIDs of the namespace's PVCs.
    async fn claim_uids(&self) -> BTreeSet<String> {
        self.api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.uid())
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
        .wait_ready("the cluster on the pool's Nodes", &[])
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
        .wait_ready("every member back, on the spare Node", &[&target])
        .await;
    assert_eq!(scene.node_of(&pd_member).await, spare);
    assert_eq!(scene.node_of(&store_instance).await, spare);
    scene.wait_no_evicted("no evicted store left").await;
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
    let events = scene.events_since(start).await;
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
        .wait_ready("every member back after a plain drain", &[&other])
        .await;
    scene
        .wait_no_evicted("no evicted store left after a plain drain")
        .await;
    let events = scene.events_since(start).await;
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

/// Two `kubectl drain` at once, of two Nodes that each hold a PD member and a store: the budgets
/// and the operator take one member of each group at a time, the Pods come back on the spares on
/// their own PVCs, and no Region loses its leader for longer than a restart.
#[tokio::test]
async fn two_drains_at_once_never_take_two_members_of_a_group_down_together() {
    let scene = Scene::start_with("drain-two", &[false, false, false, true, true]).await;
    scene.create().await;
    scene
        .wait_ready("the cluster on the pool's first three Nodes", &[])
        .await;
    let claims = scene.claim_uids().await;
    let (first, second) = (
        scene.pool.node(0).to_string(),
        scene.pool.node(1).to_string(),
    );
    for node in [&first, &second] {
        assert_eq!(scene.pods_on(node, "pd").await.len(), 1);
        assert_eq!(scene.pods_on(node, "tikv").await.len(), 1);
    }
    scene.kubectl(&["uncordon", scene.pool.node(3), scene.pool.node(4)]);
    let start = last_seq(&scene).await;
    let drains: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|node| {
            let kubectl = scene.cluster.kubectl();
            tokio::task::spawn_blocking(move || {
                kubectl.ok(
                    &[
                        "drain",
                        &node,
                        "--ignore-daemonsets",
                        "--delete-emptydir-data",
                        "--timeout=180s",
                    ],
                    None,
                )
            })
        })
        .collect();
    for drain in drains {
        drain
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("kubectl drain: {e}"));
    }
    scene
        .wait_ready(
            "every member back, off both drained Nodes",
            &[&first, &second],
        )
        .await;
    scene
        .wait_no_evicted("no evicted store left after the drains")
        .await;
    let events = scene.events_since(start).await;
    assert_eq!(
        events_of(&events, "pod_stopped", &[]).len(),
        4,
        "the drains stopped two PD members and two stores, once each: {events:#?}"
    );
    one_down_at_a_time(&events);
    let after = scene.claim_uids().await;
    assert_eq!(after, claims, "the Pods came back on their own PVCs");
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

/// Waits for the simulator's `pod_stopped` of `pod` after `start` and returns it.
async fn stopped(scene: &Scene, start: u64, pod: &str) -> Value {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let events = scene.events_since(start).await;
        if let Some(stop) = events_of(&events, "pod_stopped", &[("pod", pod)]).first() {
            return (*stop).clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pod} never stopped: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running store holding at least two Region leaders: (instance, store ID).
async fn store_with_leaders(scene: &Scene) -> (String, u64) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let state = scene.state().await;
        let found = state["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["pod_running"] == true && s["leader_count"].as_u64().unwrap_or(0) >= 2);
        if let Some(store) = found {
            return (
                store["instance"].as_str().unwrap_or_default().to_string(),
                store["id"].as_u64().unwrap_or_default(),
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no store holds leaders: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn pods_deleted_by_hand_hand_over_before_they_stop() {
    let scene = Scene::start_full("handover", &[false, false, false], true).await;
    scene.create().await;
    scene.wait_ready("PD and TiKV Ready", &[]).await;

    // A store with Region leaders, deleted as `kubectl delete pod` does.
    let (tikv, store) = store_with_leaders(&scene).await;
    let start = last_seq(&scene).await;
    scene
        .api::<Pod>()
        .delete(&tikv, &Default::default())
        .await
        .unwrap();
    let stop = stopped(&scene, start, &tikv).await;
    assert_eq!(
        stop["leaders"], 0,
        "{tikv} stopped holding Region leaders: {stop}"
    );
    let events = scene.events_since(start).await;
    let added = events_of(
        &events,
        "scheduler_added",
        &[("store_id", &store.to_string())],
    );
    assert!(
        added
            .first()
            .is_some_and(|a| event_seq(a) < event_seq(&stop)),
        "the leaders of store {store} were not evicted before {tikv} stopped: {events:#?}"
    );
    scene.wait_ready("TiKV back on its PVC", &[]).await;
    scene
        .wait_no_evicted("the hand-over's scheduler removed once the store serves again")
        .await;

    // The PD leader, deleted the same way.
    let leader = scene
        .api::<PD>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .find(|pd| pd.status.as_ref().is_some_and(|s| s.is_leader))
        .map(|pd| pd.name_any())
        .unwrap();
    let start = last_seq(&scene).await;
    scene
        .api::<Pod>()
        .delete(&leader, &Default::default())
        .await
        .unwrap();
    let stop = stopped(&scene, start, &leader).await;
    let events = scene.events_since(start).await;
    let moved = events_of(&events, "leader_transferred", &[("from", &leader)]);
    assert!(
        moved
            .first()
            .is_some_and(|m| event_seq(m) < event_seq(&stop)),
        "PD leadership did not leave {leader} before it stopped: {events:#?}"
    );
    scene.wait_ready("PD back", &[]).await;
    one_down_at_a_time(&scene.events_since(0).await);
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Scene {
        simulator,
        client,
        ns,
        ..
    } = scene;
    simulator
        .stop_releasing_pods(&client, ns.name())
        .await
        .unwrap();
}

/// A store on a node-local volume (a StorageClass that binds on first consumer, so the volume is
/// pinned to the Node its Pod first ran on) whose Node is drained and deleted: the instance says
/// its volume is pinned to an unavailable Node, failover adds a store elsewhere, and the one
/// documented step, deleting the instance, takes the old store out through PD.
#[tokio::test]
async fn a_store_whose_node_local_volume_lost_its_node_is_replaced_by_deleting_its_instance() {
    use k8s_openapi::api::storage::v1::StorageClass;
    let scene = Scene::start_with("local-volume", &[false, false, false, false]).await;
    let class = format!("local-{}", scene.n());
    let classes: Api<StorageClass> = Api::all(scene.client.clone());
    let storage_class: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": class},
        "provisioner": "operand-simulator.test/local",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain"
    }))
    .unwrap();
    classes
        .create(&PostParams::default(), &storage_class)
        .await
        .unwrap();
    scene.create_with(Some(&class)).await;
    scene
        .wait_ready("the cluster on node-local store volumes", &[])
        .await;
    let stores: Vec<String> = scene
        .api::<TiKV>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.name_any())
        .collect();
    let lost = stores[0].clone();
    let store = scene.store_id(&lost).await;
    let target = scene.node_of(&lost).await;
    let start = last_seq(&scene).await;

    // The Node is drained, then goes for good with the store's volume.
    scene.kubectl(&[
        "drain",
        &target,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    scene.kubectl(&["delete", "node", &target]);
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        &format!("{lost}: Ready=False, VolumePinnedToUnavailableNode"),
        CONVERGE,
        || async {
            let tikv = scene.api::<TiKV>().get(&lost).await?;
            Ok::<_, kube::Error>(
                conditions::find(tikv.conditions(), conditions::READY).is_some_and(|c| {
                    c.status == conditions::STATUS_FALSE
                        && c.reason == reasons::VOLUME_PINNED_TO_UNAVAILABLE_NODE
                }),
            )
        },
    )
    .await
    .unwrap();

    // Failover adds a store on another Node; then the documented step.
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a replacement store Ready",
        CONVERGE,
        || async {
            let tikvs = scene
                .api::<TiKV>()
                .list(&ListParams::default())
                .await?
                .items;
            Ok::<_, kube::Error>(tikvs.iter().any(|t| {
                !stores.contains(&t.name_any())
                    && conditions::is_true(t.conditions(), conditions::READY)
            }))
        },
    )
    .await
    .unwrap();
    scene.kubectl(&["delete", "tikv", "-n", scene.n(), &lost, "--wait=false"]);
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        &format!("{lost} gone and its store Tombstone"),
        CONVERGE,
        || async {
            let gone = scene.api::<TiKV>().get_opt(&lost).await?.is_none();
            let state = scene.state().await;
            let tombstone = state["stores"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["id"] == store && s["state_name"] == "Tombstone");
            Ok::<_, kube::Error>(gone && tombstone)
        },
    )
    .await
    .unwrap();
    scene.wait_ready("three stores again", &[&target]).await;
    one_down_at_a_time(&scene.events_since(start).await);
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = classes.delete(&class, &Default::default()).await;
}
