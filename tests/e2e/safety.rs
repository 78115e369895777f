//! Data safety end to end: what a user does by hand to a running cluster (Pods and PVCs deleted
//! with kubectl) and what the operand simulator's safety record and verdict say about it. The
//! pd-, tikv- and cluster-controllers run as processes under their shipped RBAC against the
//! local control plane; the simulator runs with a short tick, so the verdict's bounds (counted
//! in ticks) are short in seconds and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions, reasons};
use operator_api::core::{Cluster, PD, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, events_of,
};
use serde_json::{Value, json};
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

/// How long a cluster may take to come up or settle.
const CONVERGE: Duration = Duration::from_secs(150);

/// The simulator's tick: the verdict's bounds are ticks, so a short tick makes a restart of a
/// few seconds clearly longer than an election or a re-election.
const TICK: &str = "100ms";

/// A PD or TiKV Pod serves this long after it runs, as a real server takes to start: a Pod
/// recreated on kwok runs within a fraction of a second, faster than any real restart.
const START_DELAY: &str = "--start-delay=4s";

const CLUSTER: &str = "safe";

/// A running test: namespace, simulator and controllers.
struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<(String, Controller)>,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let binaries = ["pd-controller", "tikv-controller", "cluster-controller"];
        for binary in binaries {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator =
            Simulator::start_with(&cluster, ns.name(), TICK, &["--down-after=3s", START_DELAY])
                .await
                .unwrap();
        let mut controllers = Vec::new();
        for binary in binaries {
            let controller = Controller::start(
                &cluster,
                &client,
                binary,
                ns.name(),
                0,
                &simulator.overrides(),
            )
            .await
            .unwrap();
            controllers.push((binary.to_string(), controller));
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

    fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), self.n())
    }

    /// Fails the test with what it saw: objects, conditions, Events, the simulator's state and
    /// safety record, the controllers' logs.
    async fn fail(&self, message: &str) -> ! {
        let state = self
            .simulator
            .state(self.n(), CLUSTER)
            .await
            .unwrap_or_default();
        let safety = self
            .simulator
            .safety(self.n(), CLUSTER)
            .await
            .unwrap_or_default();
        let mut logs = String::new();
        for (name, c) in &self.controllers {
            let log = c.process.output();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            logs.push_str(&format!("--- {name} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                logs.push_str(line);
                logs.push('\n');
            }
        }
        panic!(
            "{message}\n{}\n--- simulator state ---\n{state:#}\n--- safety ---\n{safety:#}\n{logs}",
            testkit::diagnostics(&self.kubectl(), self.n()),
        );
    }

    /// Waits for `check` with a deadline, failing with diagnostics.
    async fn wait<F, Fut>(&self, what: &str, timeout: Duration, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, String>>,
    {
        if wait_until(&self.kubectl(), self.n(), what, timeout, check)
            .await
            .is_err()
        {
            self.fail(&format!("timed out waiting for {what}")).await;
        }
    }

    async fn create(&self, pd: i32, tikv: i32) {
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {}
        }))
        .unwrap();
        self.api::<Cluster>()
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let group: PDGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": pd,
                     "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}
        }))
        .unwrap();
        self.api::<PDGroup>()
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
        if tikv > 0 {
            let group: TiKVGroup = serde_json::from_value(json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
                "metadata": {"name": "tikv"},
                "spec": {"cluster": {"name": CLUSTER}, "replicas": tikv,
                         "template": {"spec": {"version": "v8.5.2", "volumes": volumes}}}
            }))
            .unwrap();
            self.api::<TiKVGroup>()
                .create(&PostParams::default(), &group)
                .await
                .unwrap();
        }
    }

    /// The simulated state of the cluster.
    async fn state(&self) -> Value {
        self.simulator
            .state(self.n(), CLUSTER)
            .await
            .unwrap_or_default()
    }

    /// Waits until PD has `pd` serving members with a leader and the simulator has `tikv`
    /// stores Up with regions, and the groups are Ready.
    async fn wait_settled(&self, pd: usize, tikv: usize) {
        let what = format!("{pd} PD members serving with a leader, {tikv} stores Up, groups Ready");
        self.wait(&what, CONVERGE, || async {
            let state = self.state().await;
            let members = state["members"].as_array().cloned().unwrap_or_default();
            let serving = members.iter().filter(|m| m["up"] == true).count();
            let stores = state["stores"].as_array().cloned().unwrap_or_default();
            let up = stores.iter().filter(|s| s["state_name"] == "Up").count();
            let pd_group = self
                .api::<PDGroup>()
                .get("pd")
                .await
                .map_err(|e| e.to_string())?;
            let mut ready = conditions::is_true(pd_group.conditions(), conditions::READY);
            if tikv > 0 {
                let group = self
                    .api::<TiKVGroup>()
                    .get("tikv")
                    .await
                    .map_err(|e| e.to_string())?;
                ready &= conditions::is_true(group.conditions(), conditions::READY);
            }
            Ok(members.len() == pd
                && serving == pd
                && state["leader"].is_string()
                && up == tikv
                && (tikv == 0 || state["regions"]["count"].as_u64() > Some(0))
                && state["regions"]["without_leader"] == 0
                && ready)
        })
        .await;
    }

    /// Pods of a component, by name → UID.
    async fn pods(&self, component: &str) -> BTreeMap<String, String> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(&format!("{}={component}", keys::LABEL_COMPONENT)))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    async fn delete_pod(&self, name: &str) {
        self.api::<Pod>()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Status and reason of each condition of the Cluster and the PDGroup, one line.
    async fn conditions_line(&self) -> String {
        let mut parts = Vec::new();
        if let Ok(c) = self.api::<Cluster>().get(CLUSTER).await {
            for cond in c.status.map(|s| s.conditions).unwrap_or_default() {
                parts.push(format!(
                    "Cluster {}={} ({}: {})",
                    cond.type_, cond.status, cond.reason, cond.message
                ));
            }
        }
        if let Ok(g) = self.api::<PDGroup>().get("pd").await {
            for cond in g.conditions() {
                parts.push(format!(
                    "PDGroup {}={} ({}: {})",
                    cond.type_, cond.status, cond.reason, cond.message
                ));
            }
        }
        parts.join("; ")
    }
}

#[tokio::test]
async fn two_tikv_pods_deleted_at_once_leave_regions_without_a_leader_and_the_verdict_names_them() {
    let scene = Scene::start("safety-kv2").await;
    scene.create(3, 3).await;
    scene.wait_settled(3, 3).await;
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("a fresh cluster is safe: {e}"));

    // Two of three stores' Pods deleted by hand at once: every Region that has peers on both
    // loses its Raft majority until the Pods are back.
    let before = scene.pods("tikv").await;
    let victims: Vec<String> = before.keys().take(2).cloned().collect();
    for name in &victims {
        scene.delete_pod(name).await;
    }
    scene
        .wait(
            "the simulator to see Regions without a leader",
            Duration::from_secs(30),
            || async { Ok(scene.state().await["regions"]["without_leader"].as_u64() > Some(0)) },
        )
        .await;
    // The operator recreates the Pods on the same PVCs: the same stores come back.
    scene
        .wait(
            "both Pods recreated and every Region led again",
            CONVERGE,
            || async {
                let now = scene.pods("tikv").await;
                let recreated = victims
                    .iter()
                    .all(|v| now.get(v).is_some_and(|uid| Some(uid) != before.get(v)));
                let state = scene.state().await;
                let stores = state["stores"].as_array().cloned().unwrap_or_default();
                Ok(recreated
                    && stores.len() == 3
                    && stores.iter().all(|s| s["state_name"] == "Up")
                    && state["regions"]["without_leader"] == 0)
            },
        )
        .await;

    let verdict = scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await;
    let Err(message) = verdict else {
        scene
            .fail("the verdict must report the Regions that were without a leader")
            .await;
    };
    assert!(
        message.contains("Regions without a leader for more than"),
        "{message}"
    );
    assert!(
        !message.contains("data loss"),
        "no data was lost: {message}"
    );
    let safety = scene.simulator.safety(scene.n(), CLUSTER).await.unwrap();
    let spans = safety["regions_without_leader"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        spans
            .iter()
            .any(|s| s["ticks"].as_u64() > Some(scenarios::REGION_WITHOUT_LEADER_TICKS)),
        "{safety:#}"
    );
    assert!(
        spans.iter().all(|s| s["ongoing"] == false),
        "all closed: {safety:#}"
    );
    // What the scenario did on purpose is all there is.
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
async fn a_tikv_pvc_deleted_by_hand_loses_the_store_and_the_verdict_reports_the_data_loss() {
    let scene = Scene::start("safety-pvc").await;
    scene.create(3, 3).await;
    scene.wait_settled(3, 3).await;

    let tikvs = scene
        .api::<TiKV>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let victim = tikvs.items[0].name_any();
    let claim = format!("data-{victim}");
    let pvcs = scene.api::<PersistentVolumeClaim>();
    let old_uid = pvcs.get(&claim).await.unwrap().uid().unwrap_or_default();
    let ids: BTreeMap<String, u64> = scene.state().await["stores"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["instance"].as_str().unwrap_or_default().to_string(),
                s["id"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let store_id = ids[&victim];

    // The PVC, then its Pod, deleted by hand: the claim goes once the Pod is gone.
    pvcs.delete(&claim, &DeleteParams::default()).await.unwrap();
    scene.delete_pod(&victim).await;

    // The operator recreates both; PD refuses the new, empty store at the old address.
    scene
        .wait(
            "a new PVC and a Pod refused as a duplicated address",
            CONVERGE,
            || async {
                let new_uid = pvcs
                    .get_opt(&claim)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|p| p.uid());
                let events = scene
                    .simulator
                    .events(scene.n(), CLUSTER)
                    .await
                    .unwrap_or_default();
                let refused =
                    !events_of(&events, "store_refused", &[("instance", victim.as_str())])
                        .is_empty();
                Ok(new_uid.is_some_and(|u| u != old_uid) && refused)
            },
        )
        .await;
    scene
        .wait("the old store Down", Duration::from_secs(30), || async {
            let state = scene.state().await;
            let stores = state["stores"].as_array().cloned().unwrap_or_default();
            Ok(stores
                .iter()
                .any(|s| s["id"] == store_id && s["state_name"] == "Down")
                && stores.len() == 3)
        })
        .await;

    let message = match scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
    {
        Ok(()) => scene.fail("the verdict must report the data loss").await,
        Err(message) => message,
    };
    assert!(message.contains("data loss"), "{message}");
    assert!(message.contains("store_volume_deleted"), "{message}");
    assert!(message.contains(&claim), "{message}");
    let safety = scene.simulator.safety(scene.n(), CLUSTER).await.unwrap();
    let losses = safety["data_loss"].as_array().cloned().unwrap_or_default();
    assert_eq!(losses.len(), 1, "one store, no Region lost: {safety:#}");
    assert_eq!(losses[0]["store_id"], store_id);
    // One replica of three is gone: the Regions keep their leaders.
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none().data_loss())
        .await
        .unwrap();
}

#[tokio::test]
async fn two_of_three_pd_pods_deleted_lose_the_quorum_and_the_verdict_reports_the_span() {
    let scene = Scene::start("safety-pd").await;
    // With stores, so that the Cluster is Available before PD loses its quorum.
    scene.create(3, 3).await;
    scene.wait_settled(3, 3).await;
    let pd_url = format!(
        "{}/clusters/{}/{CLUSTER}/pd/api/v1/members",
        scene.simulator.url,
        scene.n()
    );
    assert!(scenarios::http_get(&pd_url).await.is_ok());

    let before = scene.pods("pd").await;
    let stores_before = scene.pods("tikv").await;
    let victims: Vec<String> = before.keys().take(2).cloned().collect();
    for name in &victims {
        scene.delete_pod(name).await;
    }
    // The members come back within seconds; the quorum-lost fault keeps PD without a leader
    // meanwhile, long enough to ask for a scale step in the middle of the outage.
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, "pd-quorum-lost")
        .await
        .unwrap();
    scene
        .wait("the Cluster saying PD is unavailable", CONVERGE, || async {
            let cluster = scene
                .api::<Cluster>()
                .get(CLUSTER)
                .await
                .map_err(|e| e.to_string())?;
            let conditions = cluster.status.map(|s| s.conditions).unwrap_or_default();
            Ok(conditions::find(&conditions, conditions::AVAILABLE)
                .is_some_and(|c| c.status == "False" && c.reason == reasons::PD_UNAVAILABLE))
        })
        .await;
    for kind in ["pdgroups", "tikvgroups"] {
        let name = if kind == "pdgroups" { "pd" } else { "tikv" };
        scene
            .kubectl()
            .ok(
                &[
                    "scale",
                    "-n",
                    scene.n(),
                    &format!("{kind}/{name}"),
                    "--replicas=4",
                ],
                None,
            )
            .unwrap();
    }
    scene
        .wait(
            "both groups refusing to scale while PD is unavailable",
            CONVERGE,
            || async {
                let pd = scene
                    .api::<PDGroup>()
                    .get("pd")
                    .await
                    .map_err(|e| e.to_string())?;
                let kv = scene
                    .api::<TiKVGroup>()
                    .get("tikv")
                    .await
                    .map_err(|e| e.to_string())?;
                let says = |c: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
                    conditions::find(c, conditions::SYNCED)
                        .is_some_and(|c| c.status == "False" && c.reason == reasons::PD_UNAVAILABLE)
                };
                Ok(says(pd.conditions()) && says(kv.conditions()))
            },
        )
        .await;
    // While it lasts nothing is added, removed or restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        scene
            .api::<PD>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        scene
            .api::<TiKV>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        scene.pods("tikv").await,
        stores_before,
        "a store was restarted"
    );
    let survivors: BTreeMap<String, String> = before
        .iter()
        .filter(|(name, _)| !victims.contains(name))
        .map(|(n, u)| (n.clone(), u.clone()))
        .collect();
    let now = scene.pods("pd").await;
    for (name, uid) in &survivors {
        assert_eq!(
            now.get(name),
            Some(uid),
            "the surviving PD member {name} was restarted"
        );
    }
    scene
        .simulator
        .clear_fault(scene.n(), CLUSTER, "pd-quorum-lost")
        .await
        .unwrap();

    // PD has no leader: every PD path answers 503, as a PD without quorum does.
    let mut unavailable = true;
    let mut seen_conditions: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        match scenarios::http_get(&pd_url).await {
            Err(e) if e.contains("503") => unavailable = true,
            Err(e) => scene.fail(&format!("unexpected PD answer: {e}")).await,
            Ok(_) if unavailable => break,
            Ok(_) => {}
        }
        let line = scene.conditions_line().await;
        if seen_conditions.last() != Some(&line) {
            seen_conditions.push(line);
        }
        if std::time::Instant::now() > deadline {
            scene.fail("PD did not lose and regain its leader").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("Cluster and PDGroup conditions while PD was without a leader, in order:");
    for line in &seen_conditions {
        println!("  {line}");
    }
    assert!(
        unavailable,
        "PD answered 503 while two of three members were down"
    );
    // Once PD answers again, the scale step asked for during the outage goes ahead.
    scene.wait_settled(4, 4).await;

    let message = match scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
    {
        Ok(()) => scene.fail("the verdict must report the quorum loss").await,
        Err(message) => message,
    };
    assert!(message.contains("PD without a leader"), "{message}");
    let safety = scene.simulator.safety(scene.n(), CLUSTER).await.unwrap();
    let spans = safety["pd_without_leader"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        spans.iter().any(|s| s["ongoing"] == false
            && s["ticks"].as_u64() > Some(scenarios::PD_WITHOUT_LEADER_TICKS)),
        "{safety:#}"
    );
    // The members came back on their own volumes: no data lost.
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none().pd_quorum_loss())
        .await
        .unwrap();
}
