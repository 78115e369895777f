//! TiKV end to end: the tikv-controller (with the pd-controller, and the cluster-controller for
//! the TiKV-only cluster) runs as processes under its shipped RBAC against the local control
//! plane, with the operand simulator standing in for PD and the stores. Each scenario drives the
//! cluster the way a user would (apply, patch, scale) and checks what the user would look at
//! (objects, status, conditions, Events) and, from the simulator's ordered event log, what must
//! not happen: a store restarted before PD runs the new version, a restart without its leaders
//! evicted first, two stores down at once, a Pod restarted twice, a PVC deleted while its store
//! is still needed, an evict-leader scheduler left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PD, PDGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Controller, Simulator, apply_controller_identity, ensure_crds, event_seq, events_of,
};
use serde_json::{Value, json};
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

/// How long a cluster may take to come up or settle.
const CONVERGE: Duration = Duration::from_secs(150);

/// What a scenario runs.
struct Options<'a> {
    prefix: &'a str,
    /// tikv-controller replicas.
    tikv_replicas: usize,
    /// Extra tikv-controller flags.
    tikv_flags: &'a [&'a str],
    /// Simulator tick and extra flags.
    tick: &'a str,
    simulator_flags: &'a [&'a str],
    /// Also run the cluster-controller.
    cluster_controller: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            prefix: "tikv",
            tikv_replicas: 1,
            tikv_flags: &[],
            tick: "200ms",
            simulator_flags: &[],
            cluster_controller: false,
        }
    }
}

/// A running test: namespace, simulator and controllers.
struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    /// (binary, replica) → process.
    controllers: Vec<(String, Controller)>,
    tikv_flags: Vec<String>,
}

impl Scene {
    /// Waits until the PodDisruptionBudget `name` keeps `min_available` Pods.
    async fn wait_budget_min(&self, name: &str, min_available: i32) {
        let budgets = self.api::<PodDisruptionBudget>();
        self.wait(
            "scale",
            &format!("PodDisruptionBudget {name} at minAvailable {min_available}"),
            Duration::from_secs(60),
            || async {
                let budget = budgets.get(name).await.map_err(|e| e.to_string())?;
                Ok(budget.spec.and_then(|s| s.min_available)
                    == Some(IntOrString::Int(min_available)))
            },
        )
        .await;
    }

    /// Waits until the PodDisruptionBudget `name` allows a disruption (every Pod it covers is
    /// ready again, as the disruption controller sees them).
    async fn wait_disruption_allowed(&self, name: &str) {
        let budgets = self.api::<PodDisruptionBudget>();
        self.wait(
            "kv",
            &format!("PodDisruptionBudget {name} allows a disruption"),
            Duration::from_secs(60),
            || async {
                let budget = budgets.get(name).await.map_err(|e| e.to_string())?;
                Ok(budget.status.is_some_and(|s| s.disruptions_allowed == 1))
            },
        )
        .await;
    }
    async fn start(options: Options<'_>) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let mut binaries = vec!["pd-controller", "tikv-controller"];
        if options.cluster_controller {
            binaries.push("cluster-controller");
        }
        for binary in &binaries {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, options.prefix)
            .await
            .unwrap();
        let simulator =
            Simulator::start_with(&cluster, ns.name(), options.tick, options.simulator_flags)
                .await
                .unwrap();
        let mut tikv_flags = simulator.overrides();
        tikv_flags.extend(options.tikv_flags.iter().map(|f| f.to_string()));
        let mut scene = Scene {
            cluster,
            client,
            ns,
            simulator,
            controllers: Vec::new(),
            tikv_flags,
        };
        scene.start_controller("pd-controller", 0).await;
        for replica in 0..options.tikv_replicas {
            scene.start_controller("tikv-controller", replica).await;
        }
        if options.cluster_controller {
            scene.start_controller("cluster-controller", 0).await;
        }
        scene
    }

    async fn start_controller(&mut self, binary: &str, replica: usize) {
        let flags = if binary == "tikv-controller" {
            self.tikv_flags.clone()
        } else {
            self.simulator.overrides()
        };
        let controller = Controller::start(
            &self.cluster,
            &self.client,
            binary,
            self.ns.name(),
            replica,
            &flags,
        )
        .await
        .unwrap();
        self.controllers
            .push((format!("{binary}-{replica}"), controller));
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

    /// Fails the test with what it saw: the namespace's objects, conditions and Events, the
    /// simulator's state and the controllers' logs.
    async fn fail(&self, cluster: &str, message: &str) -> ! {
        let state = self
            .simulator
            .state(self.n(), cluster)
            .await
            .unwrap_or_default();
        panic!(
            "{message}\n{}\n--- simulator state ---\n{state:#}\n{}",
            testkit::diagnostics(&self.kubectl(), self.n()),
            self.logs()
        );
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, c) in &self.controllers {
            let log = c.process.output();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- {name} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    async fn create_cluster(&self, name: &str) {
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name}, "spec": {}
        }))
        .unwrap();
        self.api::<Cluster>()
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
    }

    fn spread() -> Value {
        json!([{"type": "EvenlySpread", "evenlySpread": {"topologies": [
            {"topology": {"topology.kubernetes.io/zone": "zone-a"}},
            {"topology": {"topology.kubernetes.io/zone": "zone-b"}},
            {"topology": {"topology.kubernetes.io/zone": "zone-c"}}
        ]}}])
    }

    async fn create_pd(&self, cluster: &str, replicas: i32) {
        let group: PDGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": Self::spread(),
                "template": {"spec": {
                    "version": "v8.5.2",
                    "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
                }}
            }
        }))
        .unwrap();
        self.api::<PDGroup>()
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
    }

    async fn create_tikv(&self, cluster: &str, replicas: i32) {
        let group: TiKVGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": Self::spread(),
                "template": {"spec": {
                    "version": "v8.5.2",
                    "config": "[log]\nlevel = \"info\"\n",
                    "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
                }}
            }
        }))
        .unwrap();
        self.api::<TiKVGroup>()
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
    }

    async fn patch_group<K>(&self, name: &str, patch: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A scene whose Regions move one per 500 ms tick, with `cluster` of PD 3 and TiKV 4 up:
    /// a store taken out stays Offline long enough to act on it meanwhile.
    async fn four_slow_stores(prefix: &str, cluster: &str) -> Scene {
        Scene::four_stores(
            Options {
                prefix,
                tick: "500ms",
                simulator_flags: &["--moves-per-tick=1"],
                ..Options::default()
            },
            cluster,
        )
        .await
    }

    /// A scene with Cluster `cluster` up: 3 PD members and 4 stores, all Ready.
    async fn four_stores(options: Options<'_>, cluster: &str) -> Scene {
        let scene = Scene::start(options).await;
        scene.create_cluster(cluster).await;
        scene.create_pd(cluster, 3).await;
        scene.create_tikv(cluster, 4).await;
        scene.wait_pd(cluster, 3, "v8.5.2").await;
        scene.wait_tikv(cluster, 4, "v8.5.2").await;
        scene
    }

    /// Waits until the instance a scale-in marked has its store `Removing` (Offline in PD), and
    /// names it.
    async fn wait_store_removing(&self, cluster: &str) -> String {
        let victim: RefCell<Option<String>> = RefCell::new(None);
        self.wait(
            cluster,
            "a store taken offline (Removing)",
            Duration::from_secs(60),
            || async {
                let marked = self.tikvs().await.into_iter().find(|t| {
                    t.annotations().contains_key(keys::ANNO_DEFER_DELETE)
                        && t.status.as_ref().is_some_and(|s| s.state == "Removing")
                });
                let found = marked.is_some();
                *victim.borrow_mut() = marked.map(|t| t.name_any());
                Ok(found)
            },
        )
        .await;
        victim.into_inner().unwrap_or_default()
    }

    fn scale_tikv(&self, replicas: i32) {
        self.kubectl()
            .ok(
                &[
                    "scale",
                    "-n",
                    self.n(),
                    "tikvgroup/tikv",
                    &format!("--replicas={replicas}"),
                ],
                None,
            )
            .unwrap();
    }

    async fn tikvs(&self) -> Vec<TiKV> {
        self.api::<TiKV>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    async fn tikv_names(&self) -> BTreeSet<String> {
        self.tikvs().await.iter().map(|t| t.name_any()).collect()
    }

    /// UIDs of the Pods of a component, by name.
    async fn pod_uids(&self, component: &str) -> BTreeMap<String, String> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(&format!("{}={component}", keys::LABEL_COMPONENT)))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    /// The simulator's stores of a cluster.
    async fn stores(&self, cluster: &str) -> Vec<Value> {
        self.simulator
            .state(self.n(), cluster)
            .await
            .ok()
            .and_then(|s| s.get("stores").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// Store ID of each TiKV instance, from the simulator.
    async fn store_ids(&self, cluster: &str) -> BTreeMap<String, u64> {
        self.stores(cluster)
            .await
            .iter()
            .filter(|s| s["state_name"] != "Tombstone")
            .map(|s| {
                (
                    s["instance"].as_str().unwrap_or_default().to_string(),
                    s["id"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn evicted_stores(&self, cluster: &str) -> Vec<u64> {
        self.simulator
            .state(self.n(), cluster)
            .await
            .ok()
            .and_then(|s| {
                s.get("evict_leader_stores")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
            })
            .unwrap_or_default()
    }

    async fn events(&self, cluster: &str) -> Vec<Value> {
        self.simulator.events(self.n(), cluster).await.unwrap()
    }

    /// The simulator's events of `cluster` after sequence number `start`.
    async fn events_since(&self, cluster: &str, start: u64) -> Vec<Value> {
        let mut events = self.events(cluster).await;
        events.retain(|e| event_seq(e) > start);
        events
    }

    async fn last_seq(&self, cluster: &str) -> u64 {
        self.events(cluster)
            .await
            .iter()
            .map(event_seq)
            .max()
            .unwrap_or(0)
    }

    /// Waits until PD has `replicas` ready members on `version`.
    async fn wait_pd(&self, cluster: &str, replicas: usize, version: &str) {
        let what = format!("PDGroup pd with {replicas} ready members on {version}");
        let result = wait_until(&self.kubectl(), self.n(), &what, CONVERGE, || async {
            let group = self.api::<PDGroup>().get("pd").await?;
            let pds = self.api::<PD>().list(&ListParams::default()).await?.items;
            let status = group.status.clone().unwrap_or_default();
            Ok::<_, kube::Error>(
                pds.len() == replicas
                    && pds
                        .iter()
                        .all(|pd| conditions::is_true(pd.conditions(), conditions::READY))
                    && conditions::is_true(group.conditions(), conditions::READY)
                    && conditions::is_true(group.conditions(), conditions::SYNCED)
                    && status.group.version == version,
            )
        })
        .await;
        if result.is_err() {
            self.fail(cluster, &format!("timed out waiting for {what}"))
                .await;
        }
    }

    /// Waits until the TiKVGroup has `replicas` instances, every one Ready with its store
    /// Serving and none marked for removal, the group Ready and Synced on `version`, and the
    /// simulator has exactly those stores Up.
    async fn wait_tikv(&self, cluster: &str, replicas: usize, version: &str) {
        let what =
            format!("TiKVGroup tikv with {replicas} ready stores serving on {version}, Synced");
        let result = wait_until(&self.kubectl(), self.n(), &what, CONVERGE, || async {
            let group = self.api::<TiKVGroup>().get("tikv").await?;
            let tikvs = self.tikvs().await;
            let status = group.status.clone().unwrap_or_default();
            let stores = self.stores(cluster).await;
            let up: BTreeSet<String> = stores
                .iter()
                .filter(|s| s["state_name"] == "Up")
                .filter_map(|s| s["instance"].as_str().map(str::to_string))
                .collect();
            let names: BTreeSet<String> = tikvs.iter().map(|t| t.name_any()).collect();
            Ok::<_, kube::Error>(
                tikvs.len() == replicas
                    && tikvs.iter().all(|t| {
                        conditions::is_true(t.conditions(), conditions::READY)
                            && conditions::is_true(t.conditions(), conditions::SYNCED)
                            && t.status.as_ref().is_some_and(|s| s.state == "Serving")
                            && !t.annotations().contains_key(keys::ANNO_DEFER_DELETE)
                            && t.spec.template.common.version == version
                    })
                    && conditions::is_true(group.conditions(), conditions::READY)
                    && conditions::is_true(group.conditions(), conditions::SYNCED)
                    && status.group.version == version
                    && usize::try_from(status.group.ready_replicas).unwrap_or(0) == replicas
                    && up == names,
            )
        })
        .await;
        if result.is_err() {
            self.fail(cluster, &format!("timed out waiting for {what}"))
                .await;
        }
    }

    /// Waits for `check` with a deadline, failing with diagnostics.
    async fn wait<F, Fut>(&self, cluster: &str, what: &str, timeout: Duration, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, String>>,
    {
        if wait_until(&self.kubectl(), self.n(), what, timeout, check)
            .await
            .is_err()
        {
            self.fail(cluster, &format!("timed out waiting for {what}"))
                .await;
        }
    }

    /// Sets (or clears) a simulator fault of a cluster, e.g. `down-peers/<store>`.
    async fn fault(&self, cluster: &str, fault: &str, on: bool) {
        let url = format!(
            "{}/control/clusters/{}/{cluster}/faults/{fault}",
            self.simulator.url,
            self.n()
        );
        let method = if on {
            reqwest::Method::PUT
        } else {
            reqwest::Method::DELETE
        };
        scenarios::http_send(method, &url, &json!({}))
            .await
            .unwrap();
    }

    /// Kubernetes Events of the namespace as (object name, reason, message).
    async fn k8s_events(&self) -> Vec<(String, String, String)> {
        let text = self
            .kubectl()
            .ok(&["get", "events", "-n", self.n(), "-o", "json"], None)
            .unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        value["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["involvedObject"]["name"]
                        .as_str()
                        .or_else(|| e["regarding"]["name"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["message"]
                        .as_str()
                        .or_else(|| e["note"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// Which tikv-controller replica leads, by the leader gauge of each one still running.
    async fn tikv_leader(&self) -> Option<usize> {
        let lease = format!("tikv-controller-{}", self.n());
        for (index, (name, controller)) in self.controllers.iter().enumerate() {
            if name.starts_with("tikv-controller")
                && controller
                    .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                    .await
                    .is_ok_and(|v| v == 1.0)
            {
                return Some(index);
            }
        }
        None
    }

    /// Kills the leading tikv-controller and waits until another replica leads.
    async fn kill_tikv_leader(&mut self, cluster: &str) -> String {
        let Some(index) = self.tikv_leader().await else {
            self.fail(cluster, "no tikv-controller replica leads").await;
        };
        let name = self.controllers[index].0.clone();
        self.controllers[index].1.process.kill();
        let lease = format!("tikv-controller-{}", self.n());
        let standbys: Vec<usize> = (0..self.controllers.len())
            .filter(|i| *i != index && self.controllers[*i].0.starts_with("tikv-controller"))
            .collect();
        let controllers = &self.controllers;
        self.wait(
            cluster,
            "another tikv-controller replica to lead",
            Duration::from_secs(60),
            || async {
                for i in &standbys {
                    if controllers[*i]
                        .1
                        .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                        .await
                        .is_ok_and(|v| v == 1.0)
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            },
        )
        .await;
        name
    }
}

/// Records every condition the TiKVGroup and the TiKV instances show, from watches, so a test can
/// assert on states that pass quickly (a wait that timed out, a blocked restart): every status
/// written is seen, however soon the next one follows.
struct ConditionLog {
    seen: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// `Kind/name Type=Status Reason: message` for each condition of `object`.
fn condition_lines<K: HasConditions + ResourceExt>(kind: &str, object: &K) -> Vec<String> {
    object
        .conditions()
        .iter()
        .map(|c| {
            format!(
                "{kind}/{} {}={} {}: {}",
                object.name_any(),
                c.type_,
                c.status,
                c.reason,
                c.message
            )
        })
        .collect()
}

impl ConditionLog {
    fn start(client: &Client, namespace: &str) -> ConditionLog {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};

        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let groups: Api<TiKVGroup> = Api::namespaced(client.clone(), namespace);
        let tikvs: Api<TiKV> = Api::namespaced(client.clone(), namespace);
        let groups = watcher(groups, watcher::Config::default())
            .applied_objects()
            .map(|g| {
                g.map(|g| condition_lines("TiKVGroup", &g))
                    .unwrap_or_default()
            });
        let tikvs = watcher(tikvs, watcher::Config::default())
            .applied_objects()
            .map(|t| t.map(|t| condition_lines("TiKV", &t)).unwrap_or_default());
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut all = futures::stream::select(groups.boxed(), tikvs.boxed());
            while let Some(lines) = all.next().await {
                sink.lock().unwrap().extend(lines);
            }
        });
        ConditionLog { seen, task }
    }

    /// The recorded lines that contain every one of `parts`.
    fn matching(&self, parts: &[&str]) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .cloned()
            .collect()
    }
}

impl Drop for ConditionLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn first_seq(events: &[&Value]) -> Option<u64> {
    events.iter().map(|e| event_seq(e)).min()
}

/// Checks a rolling restart of the TiKV Pods from the simulator's log since `start`: every Pod in
/// `before` was recreated exactly once, never two at a time, each after the evict-leader
/// scheduler was added for its store (and, unless it is in `timed_out`, after its leaders
/// drained), and the scheduler was removed once the new Pod ran.
fn check_rolling_restart(
    events: &[Value],
    start: u64,
    before: &BTreeMap<String, String>,
    store_ids: &BTreeMap<String, u64>,
    timed_out: &[String],
) -> Result<(), String> {
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    let mut down = BTreeSet::new();
    let mut max_down = 0;
    for e in &since {
        if e["component"] != "tikv" {
            continue;
        }
        let pod = e["pod"].as_str().unwrap_or_default().to_string();
        match e["kind"].as_str() {
            Some("pod_stopped") => {
                down.insert(pod);
                max_down = max_down.max(down.len());
            }
            Some("pod_running") => {
                down.remove(&pod);
            }
            _ => {}
        }
    }
    if max_down > 1 {
        return Err(format!("{max_down} TiKV Pods were down at once"));
    }
    for (name, old_uid) in before {
        let id = store_ids
            .get(name)
            .ok_or_else(|| format!("no store for {name}"))?
            .to_string();
        let stops = events_of(
            &since,
            "pod_stopped",
            &[("component", "tikv"), ("pod", name)],
        );
        if stops.len() != 1 {
            return Err(format!(
                "{name} stopped {} times, expected once: {stops:?}",
                stops.len()
            ));
        }
        if stops[0]["uid"] != old_uid.as_str() {
            return Err(format!("{name}: the Pod that stopped is not the old one"));
        }
        let stop = event_seq(stops[0]);
        let runs: Vec<&Value> = events_of(&since, "pod_running", &[("pod", name)])
            .into_iter()
            .filter(|e| e["uid"] != old_uid.as_str())
            .collect();
        if runs.len() != 1 {
            return Err(format!(
                "{name} ran with {} new Pods, expected one: {runs:?}",
                runs.len()
            ));
        }
        let running = event_seq(runs[0]);
        let added = first_seq(&events_of(&since, "scheduler_added", &[("store_id", &id)]))
            .ok_or_else(|| format!("{name}: no evict-leader scheduler was added for store {id}"))?;
        if added > stop {
            return Err(format!(
                "{name}: the scheduler was added (seq {added}) after the Pod stopped (seq {stop})"
            ));
        }
        let drained: Vec<u64> = events_of(&since, "leaders_drained", &[("store_id", &id)])
            .iter()
            .map(|e| event_seq(e))
            .filter(|seq| *seq > added && *seq < stop)
            .collect();
        if timed_out.contains(name) {
            if !drained.is_empty() {
                return Err(format!("{name}: leaders drained though they never should"));
            }
        } else if drained.is_empty() {
            return Err(format!(
                "{name}: the Pod stopped (seq {stop}) before store {id}'s leaders drained"
            ));
        }
        let removed: Vec<u64> = events_of(&since, "scheduler_removed", &[("store_id", &id)])
            .iter()
            .map(|e| event_seq(e))
            .collect();
        if !removed.iter().any(|seq| *seq > running) {
            return Err(format!(
                "{name}: the scheduler of store {id} was not removed after the new Pod ran (seq {running}): {removed:?}"
            ));
        }
        let added_count = events_of(&since, "scheduler_added", &[("store_id", &id)]).len();
        if removed.len() != added_count {
            return Err(format!(
                "{name}: store {id}'s scheduler added {added_count} times, removed {} times",
                removed.len()
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_tikv_only_cluster_comes_up_with_serving_stores_labelled_by_their_nodes() {
    let scene = Scene::start(Options {
        prefix: "tikv-only",
        cluster_controller: true,
        ..Options::default()
    })
    .await;
    // The example, as a user applies it.
    let manifests = scenarios::load_manifests(&["examples/tikv-only"]).unwrap();
    assert_eq!(manifests.len(), 3, "Cluster, PDGroup and TiKVGroup");
    for manifest in &manifests {
        let params = PostParams::default();
        let mut value = manifest.value.clone();
        if manifest.kind() == "TiKVGroup" {
            // Store labels of the user's, next to the Node's zone and host.
            value["spec"]["template"]["spec"]["server"]["labels"] = json!({"disk": "nvme"});
        }
        match manifest.kind() {
            "Cluster" => drop(
                scene
                    .api::<Cluster>()
                    .create(&params, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "PDGroup" => drop(
                scene
                    .api::<PDGroup>()
                    .create(&params, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "TiKVGroup" => drop(
                scene
                    .api::<TiKVGroup>()
                    .create(&params, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            other => panic!("unexpected {other} in examples/tikv-only"),
        }
    }
    let cluster = "kv";
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    scene
        .wait(
            cluster,
            "Cluster kv Ready and Available (TiKV-only)",
            CONVERGE,
            || async {
                let c = scene
                    .api::<Cluster>()
                    .get(cluster)
                    .await
                    .map_err(|e| e.to_string())?;
                let conds = c
                    .status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default();
                Ok(conditions::is_true(&conds, conditions::READY)
                    && conditions::is_true(&conds, conditions::AVAILABLE))
            },
        )
        .await;

    // Three stores, one per instance, with the IDs PD gave them.
    let tikvs = scene.tikvs().await;
    let ids = scene.store_ids(cluster).await;
    assert_eq!(ids.len(), 3, "three stores: {ids:?}");
    for tikv in &tikvs {
        let status = tikv.status.clone().unwrap();
        assert_eq!(status.state, "Serving");
        assert_eq!(
            status.id,
            ids[&tikv.name_any()].to_string(),
            "status.id is PD's store ID"
        );
        // The config carries the operator's keys over the user's.
        let cm = scene
            .api::<ConfigMap>()
            .get(&tikv.name_any())
            .await
            .unwrap();
        let config = cm.data.unwrap()["config.toml"].clone();
        for line in [
            format!(
                "advertise-addr = \"{}.tikv-tikv-peer.{}:20160\"",
                tikv.name_any(),
                scene.n()
            ),
            format!("endpoints = [\"http://pd-pd.{}:2379\"]", scene.n()),
            "api-version = 2".to_string(),
        ] {
            assert!(config.contains(&line), "{line} in the config:\n{config}");
        }
        // Its PVC exists and is not owned by anything (its data outlives the Pod).
        let pvc = scene
            .api::<PersistentVolumeClaim>()
            .get(&format!("data-{}", tikv.name_any()))
            .await
            .unwrap();
        assert!(pvc.owner_references().is_empty());
    }

    // Store labels: the zone and host of the Node each Pod landed on, and the group's placement
    // label (`<namespace>.<group>`, tidb-operator v2's).
    let group_label = format!("{}.tikv", scene.n());
    let nodes: Api<Node> = Api::all(scene.client.clone());
    let labels_match = || async {
        let stores = scene.stores(cluster).await;
        for tikv in &tikvs {
            let pod = scene
                .api::<Pod>()
                .get(&tikv.name_any())
                .await
                .map_err(|e| e.to_string())?;
            let node_name = pod.spec.unwrap().node_name.unwrap_or_default();
            let node = nodes.get(&node_name).await.map_err(|e| e.to_string())?;
            let zone = node.labels()["topology.kubernetes.io/zone"].clone();
            let store = stores
                .iter()
                .find(|s| s["instance"] == tikv.name_any().as_str())
                .cloned()
                .unwrap_or_default();
            if store["labels"]["zone"] != zone.as_str()
                || store["labels"]["host"] != node_name.as_str()
                || store["labels"]["disk"] != "nvme"
                || store["labels"]["k/tikvgroup"] != group_label.as_str()
            {
                return Ok(false);
            }
        }
        Ok(true)
    };
    scene
        .wait(
            cluster,
            "store labels equal to the zone and host of each Pod's Node, and server.labels",
            Duration::from_secs(60),
            labels_match,
        )
        .await;

    // Idle: reconciles that change nothing write nothing (not even labels again).
    let leader = scene.tikv_leader().await.unwrap();
    let controller = &scene.controllers[leader].1;
    let writes = |text: &str| {
        ["create", "update", "patch", "delete"]
            .iter()
            .map(|verb| {
                scenarios::metric_sum(text, "tidb_operator_api_requests_total", &[("verb", verb)])
                    - scenarios::metric_sum(
                        text,
                        "tidb_operator_api_requests_total",
                        &[("verb", verb), ("resource", "leases")],
                    )
            })
            .sum::<f64>()
    };
    let before = controller.metrics().await.unwrap();
    let reconciles_before = scenarios::metric_sum(&before, "tidb_operator_reconcile_total", &[]);
    let labels_before = events_of(&scene.events(cluster).await, "store_labels_set", &[]).len();
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"metadata": {"annotations": {"test/touch": "1"}}}),
        )
        .await;
    for tikv in &tikvs {
        scene
            .patch_group::<TiKV>(
                &tikv.name_any(),
                json!({"metadata": {"annotations": {"test/touch": "1"}}}),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = controller.metrics().await.unwrap();
    assert!(
        scenarios::metric_sum(&after, "tidb_operator_reconcile_total", &[])
            >= reconciles_before + 4.0,
        "the touched objects were reconciled"
    );
    assert_eq!(
        writes(&after),
        writes(&before),
        "idle reconciles wrote something:\n{after}"
    );
    assert_eq!(
        events_of(&scene.events(cluster).await, "store_labels_set", &[]).len(),
        labels_before,
        "labels that already match are not set again"
    );

    // `placement.exclusive` marks every store `$k/exclusive=true` through PD, restarting nothing;
    // turned off again, the label is deleted (setting labels in PD never removes one).
    let uids = scene.pod_uids("tikv").await;
    let exclusive_is = |want: Option<&'static str>| {
        let (scene, tikvs, group_label) = (&scene, &tikvs, &group_label);
        async move {
            let stores = scene.stores(cluster).await;
            Ok(tikvs.iter().all(|tikv| {
                stores
                    .iter()
                    .find(|s| s["instance"] == tikv.name_any().as_str())
                    .is_some_and(|s| {
                        s["labels"]["$k/exclusive"].as_str() == want
                            && s["labels"]["k/tikvgroup"] == group_label.as_str()
                    })
            }))
        }
    };
    let placement = |exclusive: bool| json!({"spec": {"template": {"spec": {"placement": {"exclusive": exclusive}}}}});
    scene
        .patch_group::<TiKVGroup>("tikv", placement(true))
        .await;
    scene
        .wait(
            cluster,
            "every store labelled $k/exclusive=true",
            Duration::from_secs(60),
            || exclusive_is(Some("true")),
        )
        .await;
    scene
        .patch_group::<TiKVGroup>("tikv", placement(false))
        .await;
    scene
        .wait(
            cluster,
            "the $k/exclusive label deleted from every store",
            Duration::from_secs(60),
            || exclusive_is(None),
        )
        .await;
    assert_eq!(
        scene.pod_uids("tikv").await,
        uids,
        "a placement change restarts no TiKV Pod"
    );
    scene
        .wait(
            cluster,
            "a StoreLabelDeleted Event for each store",
            Duration::from_secs(30),
            || async {
                let deleted: BTreeSet<String> = scene
                    .k8s_events()
                    .await
                    .into_iter()
                    .filter(|(_, reason, _)| reason == "StoreLabelDeleted")
                    .map(|(object, _, _)| object)
                    .collect();
                Ok(deleted.len() == 3)
            },
        )
        .await;

    // `remoteWorkers` (next-generation TiKV's workers, which this operator does not run): the
    // group says so and the stores serve on, nothing restarted; removed, the group is Synced.
    let group_synced_reason = || async {
        let group = scene.api::<TiKVGroup>().get("tikv").await.unwrap();
        conditions::find(group.conditions(), conditions::SYNCED)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"spec": {"template": {"spec": {"remoteWorkers": {"worker": {"name": "w"}}}}}}),
        )
        .await;
    scene
        .wait(
            cluster,
            "TiKVGroup tikv Synced=False RemoteWorkersNotSupported, with an Event",
            Duration::from_secs(60),
            || async {
                let said = group_synced_reason().await.is_some_and(|(s, r, m)| {
                    s == "False" && r == "RemoteWorkersNotSupported" && m.contains("remoteWorkers")
                });
                let evented = scene
                    .k8s_events()
                    .await
                    .iter()
                    .any(|(_, reason, _)| reason == "RemoteWorkersNotSupported");
                Ok(said && evented)
            },
        )
        .await;
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"spec": {"template": {"spec": {"remoteWorkers": null}}}}),
        )
        .await;
    scene
        .wait(
            cluster,
            "TiKVGroup tikv Synced again",
            Duration::from_secs(60),
            || async {
                Ok(group_synced_reason()
                    .await
                    .is_some_and(|(s, _, _)| s == "True"))
            },
        )
        .await;
    assert_eq!(
        scene.pod_uids("tikv").await,
        uids,
        "remoteWorkers set and removed restarts no TiKV Pod"
    );

    // Disruption budgets: one per group, owned by it and selecting its Pods. A drain (the
    // Eviction API) takes one TiKV Pod, is refused every other while that store is away, and
    // takes the next once the first is back.
    for group in ["pd", "tikv"] {
        let budget = scene
            .api::<PodDisruptionBudget>()
            .get(&format!("{group}-{group}"))
            .await
            .unwrap();
        let spec = budget.spec.clone().unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::Int(2)), "{group}");
        assert_eq!(budget.owner_references()[0].name, group);
        let selector = spec.selector.unwrap().match_labels.unwrap();
        assert_eq!(selector[keys::LABEL_GROUP], group);
    }
    // The evictions run while the Cluster is paused, so the operator leaves an evicted Pod gone
    // (here a recreated Pod is ready within a second, as on no real node) and the budget's
    // refusal of a second member can be seen; resumed, the member comes back and the budget
    // allows the next eviction again.
    scene.wait_disruption_allowed("tikv-tikv").await;
    scene
        .patch_group::<Cluster>(cluster, json!({"spec": {"paused": true}}))
        .await;
    scene
        .wait(
            cluster,
            "every TiKV instance Paused",
            Duration::from_secs(60),
            || async {
                let tikvs = scene.tikvs().await;
                Ok(tikvs.iter().all(|t| {
                    conditions::find(t.conditions(), conditions::SYNCED)
                        .is_some_and(|c| c.reason == "Paused")
                }))
            },
        )
        .await;
    // Without the client's retries, a refused eviction (429) is seen at once instead of after
    // minutes of backoff.
    let pods: Api<Pod> = Api::namespaced(
        scene.cluster.client_without_retries().await.unwrap(),
        scene.n(),
    );
    let names: Vec<String> = tikvs.iter().map(|t| t.name_any()).collect();
    pods.evict(&names[0], &EvictParams::default())
        .await
        .unwrap_or_else(|e| panic!("evicting {}: {e}", names[0]));
    for refused in &names[1..] {
        match pods.evict(refused, &EvictParams::default()).await {
            Err(kube::Error::Api(status)) if status.code == 429 => {}
            other => panic!("evicting {refused} while {} is away: {other:?}", names[0]),
        }
    }
    scene
        .patch_group::<Cluster>(cluster, json!({"spec": {"paused": false}}))
        .await;
    scene.wait_disruption_allowed("tikv-tikv").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    pods.evict(&names[1], &EvictParams::default())
        .await
        .unwrap_or_else(|e| panic!("evicting {} once {} is back: {e}", names[1], names[0]));
    scene.wait_disruption_allowed("tikv-tikv").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    scene
        .simulator
        .verdict(scene.n(), "kv", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn pd_and_tikv_upgraded_together_roll_pd_first_then_one_evicted_store_at_a_time() {
    let scene = Scene::start(Options {
        prefix: "tikv-upgrade",
        ..Options::default()
    })
    .await;
    let cluster = "up";
    scene.create_cluster(cluster).await;
    scene.create_pd(cluster, 3).await;
    scene.create_tikv(cluster, 3).await;
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;

    let tikv_before = scene.pod_uids("tikv").await;
    let pd_before: BTreeSet<String> = scene.pod_uids("pd").await.into_values().collect();
    let store_ids = scene.store_ids(cluster).await;
    let start = scene.last_seq(cluster).await;
    let log = ConditionLog::start(&scene.client, scene.n());

    // Both at once, TiKV first: the TiKV group must still wait for PD.
    let upgrade = json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}});
    scene
        .patch_group::<TiKVGroup>("tikv", upgrade.clone())
        .await;
    scene.patch_group::<PDGroup>("pd", upgrade).await;

    scene
        .wait(
            cluster,
            "TiKVGroup Synced=False WaitingForDependencies while PD rolls",
            Duration::from_secs(60),
            || async {
                Ok(!log
                    .matching(&[
                        "TiKVGroup/tikv Synced=False WaitingForDependencies",
                        "PDGroup pd",
                    ])
                    .is_empty())
            },
        )
        .await;
    scene.wait_pd(cluster, 3, "v8.5.3").await;
    scene.wait_tikv(cluster, 3, "v8.5.3").await;
    scene
        .wait(
            cluster,
            "the simulator to see the new TiKV Pods and no evict-leader scheduler",
            Duration::from_secs(30),
            || async {
                let events = scene.events(cluster).await;
                let now = scene.pod_uids("tikv").await;
                let running = now.values().all(|uid| {
                    !events_of(&events, "pod_running", &[("uid", uid.as_str())]).is_empty()
                });
                Ok(running
                    && scene.evicted_stores(cluster).await.is_empty()
                    && events_of(&events, "scheduler_removed", &[]).len() >= 3)
            },
        )
        .await;

    let events = scene.events(cluster).await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    // PD first: no TiKV Pod stopped before the last new PD Pod ran.
    let new_pd_runs: Vec<u64> = events_of(&since, "pod_running", &[("component", "pd")])
        .iter()
        .filter(|e| !pd_before.contains(e["uid"].as_str().unwrap_or_default()))
        .map(|e| event_seq(e))
        .collect();
    assert_eq!(
        new_pd_runs.len(),
        3,
        "three new PD Pods ran: {new_pd_runs:?}"
    );
    let last_pd = new_pd_runs.iter().max().copied().unwrap();
    let first_tikv_stop =
        first_seq(&events_of(&since, "pod_stopped", &[("component", "tikv")])).unwrap();
    if first_tikv_stop < last_pd {
        scene
            .fail(
                cluster,
                &format!(
                    "a TiKV Pod stopped (seq {first_tikv_stop}) before the last new PD Pod ran (seq {last_pd})"
                ),
            )
            .await;
    }
    if let Err(e) = check_rolling_restart(&events, start, &tikv_before, &store_ids, &[]) {
        scene.fail(cluster, &e).await;
    }
    // Nothing timed out, nothing was blocked.
    assert!(
        log.matching(&["LeadersEvicted=False", "LeaderEvictionTimedOut"])
            .is_empty(),
        "no eviction timed out: {:?}",
        log.matching(&["LeaderEvictionTimedOut"])
    );
    assert!(
        events_of(&since, "request_rejected", &[]).is_empty(),
        "PD refused nothing: {:?}",
        events_of(&since, "request_rejected", &[])
    );
    let k8s_events = scene.k8s_events().await;
    for name in tikv_before.keys() {
        assert!(
            k8s_events
                .iter()
                .any(|(object, reason, _)| object == name && reason == "EvictingLeaders"),
            "an Event says {name}'s leaders were evicted: {k8s_events:?}"
        );
    }
    let stores_after = scene.store_ids(cluster).await;
    assert_eq!(stores_after, store_ids, "every store kept its ID");
    scene
        .simulator
        .verdict(scene.n(), "up", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_restart_waits_for_down_peers_elsewhere_and_gives_up_on_leaders_that_never_drain() {
    let scene = Scene::start(Options {
        prefix: "tikv-faults",
        tikv_flags: &["--leader-eviction-timeout=5s"],
        ..Options::default()
    })
    .await;
    let cluster = "faults";
    scene.create_cluster(cluster).await;
    scene.create_pd(cluster, 3).await;
    scene.create_tikv(cluster, 3).await;
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;

    // Stores restart in name order: the first is blocked by down peers on the last, the
    // second's leaders never leave.
    let names: Vec<String> = scene.tikv_names().await.into_iter().collect();
    let (first, stuck, down) = (names[0].clone(), names[1].clone(), names[2].clone());
    let store_ids = scene.store_ids(cluster).await;
    let down_id = store_ids[&down];
    scene
        .fault(cluster, &format!("down-peers/{down}"), true)
        .await;
    scene
        .fault(cluster, &format!("leaders-never-drain/{stuck}"), true)
        .await;
    let before = scene.pod_uids("tikv").await;
    let start = scene.last_seq(cluster).await;
    let log = ConditionLog::start(&scene.client, scene.n());

    // A config change restarts every store (no PD upgrade involved).
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    let blocked = format!("TiKV/{first} Synced=False DownPeersElsewhere");
    let store_text = format!("stores {down_id} (");
    scene
        .wait(
            cluster,
            "the first restart blocked by down peers elsewhere",
            Duration::from_secs(60),
            || async { Ok(!log.matching(&[&blocked, &store_text]).is_empty()) },
        )
        .await;
    // It stays blocked: nothing restarts, nothing is evicted, however long it takes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let events = scene.events(cluster).await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    assert!(
        events_of(&since, "pod_stopped", &[("component", "tikv")]).is_empty(),
        "a TiKV Pod stopped while another store had down peers"
    );
    assert!(
        scene.evicted_stores(cluster).await.is_empty(),
        "no leaders are evicted while the restart is blocked"
    );
    let tikv = scene.api::<TiKV>().get(&first).await.unwrap();
    let synced = conditions::find(tikv.conditions(), conditions::SYNCED).unwrap();
    assert_eq!(
        synced.reason, "DownPeersElsewhere",
        "still blocked after the eviction timeout"
    );
    assert!(
        scene.k8s_events().await.iter().any(|(o, r, m)| *o == first
            && r == "DownPeersElsewhere"
            && m.contains(&down_id.to_string())),
        "a Warning Event names the store with down peers"
    );

    // The peers recover: the roll proceeds; the stuck store waits out the timeout.
    scene
        .fault(cluster, &format!("down-peers/{down}"), false)
        .await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    scene
        .wait(
            cluster,
            "every new TiKV Pod seen running and no scheduler left",
            Duration::from_secs(30),
            || async {
                let events = scene.events(cluster).await;
                let now = scene.pod_uids("tikv").await;
                Ok(now.values().all(|uid| {
                    !events_of(&events, "pod_running", &[("uid", uid.as_str())]).is_empty()
                }) && scene.evicted_stores(cluster).await.is_empty())
            },
        )
        .await;
    let events = scene.events(cluster).await;
    if let Err(e) = check_rolling_restart(
        &events,
        start,
        &before,
        &store_ids,
        std::slice::from_ref(&stuck),
    ) {
        scene.fail(cluster, &e).await;
    }
    // The stuck store's wait lasted the timeout, then it restarted anyway, and said so.
    let stuck_id = store_ids[&stuck].to_string();
    let added = events_of(&events, "scheduler_added", &[("store_id", &stuck_id)])
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .map(|e| e["unix_ms"].as_u64().unwrap_or_default())
        .min()
        .unwrap();
    let stopped = events_of(&events, "pod_stopped", &[("pod", &stuck)])
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .map(|e| e["unix_ms"].as_u64().unwrap_or_default())
        .min()
        .unwrap();
    assert!(
        stopped >= added + 4_500,
        "the stuck store waited {} ms, less than the 5 s timeout",
        stopped - added
    );
    assert!(
        stopped < added + 30_000,
        "the stuck store waited {} ms: the timeout did not end the wait",
        stopped - added
    );
    assert!(
        !log.matching(&[
            &format!("TiKV/{stuck} LeadersEvicted=False LeaderEvictionTimedOut"),
            "after 5s"
        ])
        .is_empty(),
        "the condition said the wait timed out: {:?}",
        log.matching(&[&format!("TiKV/{stuck} LeadersEvicted")])
    );
    assert!(
        scene
            .k8s_events()
            .await
            .iter()
            .any(|(o, r, _)| *o == stuck && r == "LeaderEvictionTimedOut"),
        "a Warning Event says the eviction timed out"
    );
    let tikv = scene.api::<TiKV>().get(&stuck).await.unwrap();
    let evicted = conditions::find(tikv.conditions(), conditions::LEADERS_EVICTED).unwrap();
    assert!(
        evicted.message.contains("leader-eviction timeout"),
        "the condition keeps saying the last restart timed out: {evicted:?}"
    );
    // The others drained normally: no timeout for them.
    for other in [&first, &down] {
        assert!(
            log.matching(&[&format!(
                "TiKV/{other} LeadersEvicted=False LeaderEvictionTimedOut"
            )])
            .is_empty(),
            "{other} did not time out"
        );
    }
    scene
        .simulator
        .verdict(scene.n(), "faults", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn scale_out_and_in_through_tombstone_and_refused_below_max_replicas() {
    let scene = Scene::start(Options {
        prefix: "tikv-scale",
        ..Options::default()
    })
    .await;
    let cluster = "scale";
    scene.create_cluster(cluster).await;
    scene.create_pd(cluster, 3).await;
    scene.create_tikv(cluster, 3).await;
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    let start = scene.last_seq(cluster).await;

    // 3 → 2 with max-replicas 3: refused, nothing goes offline.
    scene.scale_tikv(2);
    scene
        .wait(
            cluster,
            "TiKVGroup Synced=False ScaleInRefused",
            Duration::from_secs(60),
            || async {
                let group = scene
                    .api::<TiKVGroup>()
                    .get("tikv")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(
                    conditions::find(group.conditions(), conditions::SYNCED).is_some_and(|c| {
                        c.status == "False"
                            && c.reason == "ScaleInRefused"
                            && c.message.contains("max-replicas 3")
                    }),
                )
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let tikvs = scene.tikvs().await;
    assert_eq!(tikvs.len(), 3);
    assert!(
        tikvs
            .iter()
            .all(|t| !t.annotations().contains_key(keys::ANNO_DEFER_DELETE)),
        "no instance is marked for removal"
    );
    let events = scene.events(cluster).await;
    assert!(
        events_of(&events, "store_deleted", &[]).is_empty(),
        "no store went offline"
    );
    assert!(
        scene
            .k8s_events()
            .await
            .iter()
            .any(|(o, r, _)| o == "tikv" && r == "ScaleInRefused"),
        "a Warning Event says the scale-in was refused"
    );
    scene.scale_tikv(3);
    scene.wait_tikv(cluster, 3, "v8.5.2").await;

    // 3 → 5; the disruption budget follows: all but one.
    scene.wait_budget_min("tikv-tikv", 2).await;
    scene.scale_tikv(5);
    scene.wait_tikv(cluster, 5, "v8.5.2").await;
    scene.wait_budget_min("tikv-tikv", 4).await;
    let five = scene.tikv_names().await;
    let uids = scene.pod_uids("tikv").await;
    let store_ids = scene.store_ids(cluster).await;
    let start = start.max(scene.last_seq(cluster).await);

    // 5 → 4: one store goes offline, becomes tombstone, then its Pod, PVC and instance go.
    scene.scale_tikv(4);
    let gone: RefCell<BTreeMap<(String, &str), u64>> = RefCell::new(BTreeMap::new());
    let deadline = Instant::now() + CONVERGE;
    loop {
        let pods = scene.pod_uids("tikv").await;
        let claims: BTreeSet<String> = scene
            .api::<PersistentVolumeClaim>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        let instances = scene.tikv_names().await;
        let t = now_ms();
        for name in &five {
            let mut gone = gone.borrow_mut();
            if !pods.contains_key(name) {
                gone.entry((name.clone(), "pod")).or_insert(t);
            }
            if !claims.contains(&format!("data-{name}")) {
                gone.entry((name.clone(), "pvc")).or_insert(t);
            }
            if !instances.contains(name) {
                gone.entry((name.clone(), "instance")).or_insert(t);
            }
        }
        if instances.len() == 4 && gone.borrow().len() == 3 {
            break;
        }
        if Instant::now() > deadline {
            scene
                .fail(cluster, &format!("scale-in to 4 did not finish: {gone:?}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scene.wait_tikv(cluster, 4, "v8.5.2").await;
    scene.wait_budget_min("tikv-tikv", 3).await;
    let four = scene.tikv_names().await;
    let removed: Vec<&String> = five.difference(&four).collect();
    assert_eq!(removed.len(), 1);
    let victim = removed[0].clone();
    let id = store_ids[&victim].to_string();
    let gone = gone.into_inner();
    let (pod_gone, pvc_gone) = (
        gone[&(victim.clone(), "pod")],
        gone[&(victim.clone(), "pvc")],
    );
    assert!(
        pvc_gone >= pod_gone,
        "the PVC went ({pvc_gone}) before the Pod ({pod_gone})"
    );
    let events = scene.events(cluster).await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    let deleted = events_of(&since, "store_deleted", &[("store_id", &id)]);
    let tombstone = events_of(&since, "store_tombstone", &[("store_id", &id)]);
    let stopped = events_of(&since, "pod_stopped", &[("pod", &victim)]);
    assert_eq!(deleted.len(), 1, "the store was taken offline once");
    assert_eq!(tombstone.len(), 1, "the store became tombstone once");
    assert_eq!(stopped.len(), 1, "its Pod stopped once");
    assert!(
        event_seq(deleted[0]) < event_seq(tombstone[0])
            && event_seq(tombstone[0]) < event_seq(stopped[0]),
        "offline, then tombstone, then the Pod stops"
    );
    let tombstone_ms = tombstone[0]["unix_ms"].as_u64().unwrap_or_default();
    assert!(
        pvc_gone > tombstone_ms,
        "the PVC went before the store was tombstone"
    );
    assert_eq!(
        events_of(&since, "store_deleted", &[]).len(),
        1,
        "no other store went offline"
    );
    let others_stopped: Vec<&Value> = events_of(&since, "pod_stopped", &[("component", "tikv")])
        .into_iter()
        .filter(|e| e["pod"] != victim.as_str())
        .collect();
    assert!(
        others_stopped.is_empty(),
        "no other TiKV Pod stopped: {others_stopped:?}"
    );
    let now = scene.pod_uids("tikv").await;
    for name in &four {
        assert_eq!(now[name], uids[name], "{name} was not restarted");
    }
    scene
        .simulator
        .verdict(scene.n(), "scale", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_scale_in_cancelled_by_scaling_out_keeps_the_store() {
    // Regions move slowly here, so the store is still Offline when the scale-out comes.
    let cluster = "cancel";
    let scene = Scene::four_slow_stores("tikv-cancel", cluster).await;
    let names = scene.tikv_names().await;
    let uids = scene.pod_uids("tikv").await;
    let store_ids = scene.store_ids(cluster).await;
    let start = scene.last_seq(cluster).await;
    let log = ConditionLog::start(&scene.client, scene.n());

    scene.scale_tikv(3);
    let victim = scene.wait_store_removing(cluster).await;
    let id = store_ids[&victim];
    scene.scale_tikv(4);
    scene.wait_tikv(cluster, 4, "v8.5.2").await;

    assert_eq!(scene.tikv_names().await, names, "no new instance was made");
    let tikv = scene.api::<TiKV>().get(&victim).await.unwrap();
    assert_eq!(
        tikv.status.as_ref().unwrap().id,
        id.to_string(),
        "same store ID"
    );
    assert_eq!(tikv.status.as_ref().unwrap().state, "Serving");
    let offlined = conditions::find(tikv.conditions(), conditions::OFFLINED).unwrap();
    assert_eq!(offlined.reason, "OfflineCancelled");
    assert!(
        !log.matching(&[&format!("TiKV/{victim} Offlined=False StoreRemoving")])
            .is_empty(),
        "the store was seen being removed"
    );
    let events = scene.events(cluster).await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    let id_text = id.to_string();
    assert_eq!(
        events_of(&since, "store_deleted", &[("store_id", &id_text)]).len(),
        1
    );
    assert_eq!(
        events_of(&since, "store_delete_cancelled", &[("store_id", &id_text)]).len(),
        1,
        "the removal was cancelled through PD"
    );
    assert!(
        events_of(&since, "store_tombstone", &[]).is_empty(),
        "no store became tombstone"
    );
    assert!(
        events_of(&since, "store_registered", &[]).is_empty(),
        "no new store registered"
    );
    assert!(
        events_of(&since, "pod_stopped", &[("component", "tikv")]).is_empty(),
        "no TiKV Pod stopped"
    );
    assert_eq!(scene.pod_uids("tikv").await, uids, "same Pods");
    scene
        .api::<PersistentVolumeClaim>()
        .get(&format!("data-{victim}"))
        .await
        .expect("the store's PVC is kept");
    assert_eq!(scene.store_ids(cluster).await, store_ids);
    scene
        .simulator
        .verdict(scene.n(), "cancel", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// An instance left mid-scale-in by tidb-operator v2 when this operator takes over: its group's
/// replicas lowered and the instance marked `spec.offline: true`, the way that operator scales in.
/// The same store goes out through PD and no other (not the one this operator's own scale-in
/// would have picked), the field becomes this operator's mark (Event `OfflineRequested`), and the
/// group ends Ready with the three other stores, their Pods untouched.
#[tokio::test]
async fn a_scale_in_left_as_spec_offline_takes_out_that_store_and_no_other() {
    let cluster = "left";
    let options = Options {
        prefix: "tikv-left",
        ..Options::default()
    };
    let mut scene = Scene::four_stores(options, cluster).await;
    let names = scene.tikv_names().await;
    let uids = scene.pod_uids("tikv").await;
    let store_ids = scene.store_ids(cluster).await;
    let start = scene.last_seq(cluster).await;
    // This operator's scale-in takes the newest name; the other operator chose the oldest.
    let chosen = names.iter().next().cloned().unwrap();

    // The swap: no tikv-controller runs while the other operator's state is written.
    let index = scene
        .controllers
        .iter()
        .position(|(name, _)| name == "tikv-controller-0")
        .unwrap();
    let (_, mut stopped) = scene.controllers.remove(index);
    stopped.process.kill();
    scene.scale_tikv(3);
    scene
        .api::<TiKV>()
        .patch(
            &chosen,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"offline": true}})),
        )
        .await
        .unwrap();
    scene.start_controller("tikv-controller", 0).await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;

    let left: BTreeSet<String> = names.iter().filter(|n| **n != chosen).cloned().collect();
    assert_eq!(scene.tikv_names().await, left, "{chosen} went, no other");
    let id = store_ids[&chosen].to_string();
    let since = scene.events_since(cluster, start).await;
    assert_eq!(
        events_of(&since, "store_deleted", &[]).len(),
        1,
        "one store taken offline"
    );
    assert_eq!(
        events_of(&since, "store_deleted", &[("store_id", &id)]).len(),
        1,
        "the chosen one: store {id}"
    );
    assert_eq!(
        events_of(&since, "store_tombstone", &[("store_id", &id)]).len(),
        1
    );
    let mut kept = uids.clone();
    kept.remove(&chosen);
    let mut now = scene.pod_uids("tikv").await;
    now.retain(|name, _| *name != chosen);
    assert_eq!(now, kept, "the other stores' Pods are the same Pods");
    assert!(
        scene
            .k8s_events()
            .await
            .iter()
            .any(|(object, reason, _)| *object == chosen && reason == "OfflineRequested"),
        "an Event says spec.offline was taken over"
    );
    scene
        .simulator
        .verdict(scene.n(), cluster, &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A TiKVGroup deleted while one of its stores is being taken out (bad-input row 62): the
/// deletion wins. Every instance and Pod goes, PD is asked nothing more (the store under removal
/// stays Offline, no store turns Tombstone), every PVC stays, and each instance says so.
#[tokio::test]
async fn a_group_deleted_mid_scale_in_takes_its_instances_and_keeps_every_pvc() {
    let cluster = "gone";
    let scene = Scene::four_slow_stores("tikv-gone", cluster).await;
    let names = scene.tikv_names().await;
    let claims = || async {
        scene
            .api::<PersistentVolumeClaim>()
            .list(&ListParams::default().labels("pingcap.com/component=tikv"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect::<BTreeMap<_, _>>()
    };
    let before = claims().await;
    assert_eq!(before.len(), 4);
    let start = scene.last_seq(cluster).await;

    scene.scale_tikv(3);
    scene.wait_store_removing(cluster).await;
    scene
        .api::<TiKVGroup>()
        .delete("tikv", &Default::default())
        .await
        .unwrap();
    scene
        .wait(
            cluster,
            "the TiKVGroup, its instances and their Pods gone",
            Duration::from_secs(60),
            || async {
                let pods = scene.pod_uids("tikv").await;
                let group = scene
                    .api::<TiKVGroup>()
                    .get_opt("tikv")
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(group.is_none() && scene.tikvs().await.is_empty() && pods.is_empty())
            },
        )
        .await;

    assert_eq!(claims().await, before, "every PVC is kept, the same ones");
    let since = scene.events_since(cluster, start).await;
    assert_eq!(
        events_of(&since, "store_deleted", &[]).len(),
        1,
        "PD was asked to remove only the store of the scale-in"
    );
    assert!(
        events_of(&since, "store_tombstone", &[]).is_empty(),
        "no store turned Tombstone"
    );
    assert!(
        scene.evicted_stores(cluster).await.is_empty(),
        "no evict-leader scheduler left"
    );
    let kept: BTreeSet<String> = scene
        .k8s_events()
        .await
        .into_iter()
        .filter(|(_, reason, message)| {
            reason == "DataKept" && message.contains("its PVCs are kept")
        })
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(kept, names, "each instance says what it left behind");
    scene
        .simulator
        .verdict(
            scene.n(),
            cluster,
            &scenarios::Allowed::none().regions_without_leader(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_killed_controller_hands_over_mid_upgrade_and_mid_scale_in() {
    let mut scene = Scene::start(Options {
        prefix: "tikv-ha",
        tikv_replicas: 2,
        tick: "300ms",
        simulator_flags: &["--moves-per-tick=1"],
        ..Options::default()
    })
    .await;
    let cluster = "ha";
    scene.create_cluster(cluster).await;
    scene.create_pd(cluster, 3).await;
    scene.create_tikv(cluster, 4).await;
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 4, "v8.5.2").await;
    let before = scene.pod_uids("tikv").await;
    let store_ids = scene.store_ids(cluster).await;
    let start = scene.last_seq(cluster).await;

    // Mid-upgrade: kill the leader while a store's leaders are being evicted.
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    // A store with leaders still to move (one per 300 ms tick), so the eviction cannot end
    // before the kill lands; a store that had none restarts at once and does not count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let evicted_at_kill: Vec<u64> = loop {
        let state = scene
            .simulator
            .state(scene.n(), cluster)
            .await
            .unwrap_or_default();
        let draining: Vec<u64> = state
            .get("stores")
            .and_then(Value::as_array)
            .map(|stores| {
                stores
                    .iter()
                    .filter(|s| {
                        s["evicting_leaders"].as_bool() == Some(true)
                            && s["pod_running"].as_bool() == Some(true)
                            && s["leader_count"].as_u64().unwrap_or_default() >= 2
                    })
                    .filter_map(|s| s["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        if !draining.is_empty() {
            break draining;
        }
        if Instant::now() > deadline {
            scene
                .fail(cluster, "no store with leaders was evicted")
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let killed_at = now_ms();
    let killed = scene.kill_tikv_leader(cluster).await;
    eprintln!("killed {killed} while evicting {evicted_at_kill:?}");
    scene.wait_tikv(cluster, 4, "v8.5.2").await;
    scene
        .wait(
            cluster,
            "every new TiKV Pod seen running and no scheduler left",
            Duration::from_secs(30),
            || async {
                let events = scene.events(cluster).await;
                let now = scene.pod_uids("tikv").await;
                Ok(now.values().all(|uid| {
                    !events_of(&events, "pod_running", &[("uid", uid.as_str())]).is_empty()
                }) && scene.evicted_stores(cluster).await.is_empty())
            },
        )
        .await;
    let events = scene.events(cluster).await;
    if let Err(e) = check_rolling_restart(&events, start, &before, &store_ids, &[]) {
        scene.fail(cluster, &e).await;
    }
    // The store being evicted when the leader died was restarted by the new leader.
    let interrupted = store_ids
        .iter()
        .find(|(_, id)| evicted_at_kill.contains(id))
        .map(|(name, _)| name.clone())
        .unwrap();
    let stopped_at = events_of(&events, "pod_stopped", &[("pod", &interrupted)])
        .iter()
        .filter(|e| event_seq(e) > start)
        .map(|e| e["unix_ms"].as_u64().unwrap_or_default())
        .max()
        .unwrap();
    assert!(
        stopped_at > killed_at,
        "{interrupted}'s restart was finished by the new leader, after the kill"
    );

    // A new standby, then mid-scale-in: kill the leader right after the store went offline.
    scene
        .start_controller("tikv-controller", scene.controllers.len())
        .await;
    let uids = scene.pod_uids("tikv").await;
    let names = scene.tikv_names().await;
    let start = scene.last_seq(cluster).await;
    scene.scale_tikv(3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = scene.events(cluster).await;
        if events_of(&events, "store_deleted", &[])
            .iter()
            .any(|e| event_seq(e) > start)
        {
            break;
        }
        if Instant::now() > deadline {
            scene.fail(cluster, "no store went offline").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let marked: Vec<String> = scene
        .tikvs()
        .await
        .iter()
        .filter(|t| t.annotations().contains_key(keys::ANNO_DEFER_DELETE))
        .map(|t| t.name_any())
        .collect();
    assert_eq!(marked.len(), 1, "one instance is being removed: {marked:?}");
    let killed_at = now_ms();
    let killed = scene.kill_tikv_leader(cluster).await;
    eprintln!("killed {killed} while removing {marked:?}");
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    let victim = marked[0].clone();
    let id = store_ids[&victim].to_string();
    scene
        .wait(
            cluster,
            "the removed store's PVC gone",
            Duration::from_secs(30),
            || async {
                Ok(scene
                    .api::<PersistentVolumeClaim>()
                    .get_opt(&format!("data-{victim}"))
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none())
            },
        )
        .await;
    let events = scene.events(cluster).await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    assert_eq!(
        events_of(&since, "store_deleted", &[]).len(),
        1,
        "one store was taken offline, once"
    );
    assert_eq!(
        events_of(&since, "store_tombstone", &[("store_id", &id)]).len(),
        1
    );
    let stops = events_of(&since, "pod_stopped", &[("component", "tikv")]);
    assert_eq!(stops.len(), 1, "only the removed store's Pod stopped");
    assert!(
        stops[0]["unix_ms"].as_u64().unwrap_or_default() > killed_at,
        "the new leader finished the removal (its Pod stopped after the kill)"
    );
    let remaining = scene.tikv_names().await;
    assert_eq!(
        names.difference(&remaining).cloned().collect::<Vec<_>>(),
        vec![victim.clone()]
    );
    let now = scene.pod_uids("tikv").await;
    for name in &remaining {
        assert_eq!(now[name], uids[name], "{name} was not restarted");
    }
    assert!(scene.evicted_stores(cluster).await.is_empty());
    scene
        .simulator
        .verdict(scene.n(), "ha", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_roll_holds_every_pod_while_pd_cannot_be_asked_and_resumes_once_it_answers() {
    let scene = Scene::start(Options {
        prefix: "tikv-pd-away",
        tick: "300ms",
        simulator_flags: &["--moves-per-tick=1"],
        ..Options::default()
    })
    .await;
    let cluster = "away";
    scene.create_cluster(cluster).await;
    scene.create_pd(cluster, 3).await;
    scene.create_tikv(cluster, 3).await;
    scene.wait_pd(cluster, 3, "v8.5.2").await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    let before = scene.pod_uids("tikv").await;
    let store_ids = scene.store_ids(cluster).await;
    let start = scene.last_seq(cluster).await;
    let conditions = ConditionLog::start(&scene.client, scene.n());

    // A roll, caught while a store's leaders are being evicted.
    scene
        .patch_group::<TiKVGroup>(
            "tikv",
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let evicting = scene.stores(cluster).await.iter().any(|s| {
            s["evicting_leaders"].as_bool() == Some(true)
                && s["leader_count"].as_u64().unwrap_or_default() >= 2
        });
        if evicting {
            break;
        }
        if Instant::now() > deadline {
            scene.fail(cluster, "no store's leaders were evicted").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // PD cannot be asked for a minute: no TiKV Pod goes, since nothing can confirm a store's
    // leaders are gone; the instances say why.
    scene.fault(cluster, "pd-unreachable", true).await;
    let pods = scene.api::<Pod>();
    let selector = format!("{}=tikv", keys::LABEL_COMPONENT);
    let live = |list: Vec<Pod>| -> BTreeMap<String, String> {
        list.into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    };
    let held = live(
        pods.list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items,
    );
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let now = live(
            pods.list(&ListParams::default().labels(&selector))
                .await
                .unwrap()
                .items,
        );
        for (name, uid) in &held {
            assert_eq!(
                now.get(name),
                Some(uid),
                "{name} was deleted while PD could not be asked"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let said = conditions.matching(&["TiKV/", "PDUnreachable"]);
    assert!(!said.is_empty(), "no instance said PD cannot be asked");

    // PD answers again: the roll finishes, one evicted store at a time, and nothing is left.
    scene.fault(cluster, "pd-unreachable", false).await;
    scene.wait_tikv(cluster, 3, "v8.5.2").await;
    scene
        .wait(
            cluster,
            "every TiKV Pod recreated and no scheduler left",
            Duration::from_secs(60),
            || async {
                let now = scene.pod_uids("tikv").await;
                Ok(now.iter().all(|(name, uid)| before.get(name) != Some(uid))
                    && scene.evicted_stores(cluster).await.is_empty())
            },
        )
        .await;
    let events = scene.events(cluster).await;
    if let Err(e) = check_rolling_restart(&events, start, &before, &store_ids, &[]) {
        scene.fail(cluster, &e).await;
    }
    scene
        .simulator
        .verdict(scene.n(), cluster, &scenarios::Allowed::none())
        .await
        .unwrap();
}
