//! TiDB end to end: the tidb-controller (with the pd-controller, and the tikv-controller for the
//! whole-cluster scenario) runs as processes under the shipped RBAC against the local control
//! plane, with the operand simulator answering TiDB's `/status`. Each scenario drives it as a user
//! would and watches what a user watches: objects, conditions, Events, and the ready endpoints of
//! the MySQL Service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PDGroup, TiDB, TiDBGroup, TiKVGroup};
use scenarios::{
    Controller, Simulator, apply_controller_identity, ensure_crds, last_seq, metric_sum,
    ready_endpoints,
};
use serde_json::{Value, json};
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

/// Name of the TiDBGroup of every scenario, and so of its MySQL Service `db-tidb`.
const GROUP: &str = "db";
const SERVICE: &str = "db-tidb";
const CONVERGE: Duration = Duration::from_secs(120);
/// A finalizer the tests put on old TiDB Pods so that their deletion lasts until the MySQL
/// Service lists them as terminating: kwok otherwise removes a deleted Pod at once, before the
/// endpoint controller publishes the drain.
const DRAIN_HOLD: &str = "test.tidb.pingcap.com/drain";

/// A running scenario: namespace, simulator, and the controllers.
struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<(String, Controller)>,
}

impl Scene {
    /// Starts the simulator, one pd-controller, `tidb_replicas` tidb-controllers and, with
    /// `with_tikv`, one tikv-controller.
    async fn start(prefix: &str, tidb_replicas: usize, with_tikv: bool) -> Scene {
        let mut binaries = vec![("pd-controller", 1), ("tidb-controller", tidb_replicas)];
        if with_tikv {
            binaries.push(("tikv-controller", 1));
        }
        Self::launch(prefix, &binaries, None).await
    }

    /// One of each controller, the cluster-controller too, run from the binaries in `bin_dir`.
    async fn start_from(prefix: &str, bin_dir: &std::path::Path) -> Scene {
        let binaries = [
            ("pd-controller", 1),
            ("tidb-controller", 1),
            ("tikv-controller", 1),
            ("cluster-controller", 1),
        ];
        Self::launch(prefix, &binaries, Some(bin_dir)).await
    }

    /// Starts the simulator and `replicas` of each binary, from `bin_dir` if given.
    async fn launch(
        prefix: &str,
        binaries: &[(&str, usize)],
        bin_dir: Option<&std::path::Path>,
    ) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        for (binary, _) in binaries {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start(&cluster, ns.name()).await.unwrap();
        let mut controllers = Vec::new();
        for &(binary, replicas) in binaries {
            for replica in 0..replicas {
                let controller = Controller::start_from(
                    &cluster,
                    &client,
                    bin_dir,
                    binary,
                    ns.name(),
                    replica,
                    &simulator.overrides(),
                )
                .await
                .unwrap();
                controllers.push((format!("{binary}-{replica}"), controller));
            }
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

    /// Kills every controller at once, waits `down`, and starts each again (as the Deployments'
    /// Pods would be).
    async fn restart_every_controller(&mut self, down: Duration) {
        self.restart_every_controller_with(down, &[]).await;
    }

    /// [`Scene::restart_every_controller`], the controllers started again with `extra` flags
    /// too (another `--operator-image`, as an upgrade of the operator brings).
    async fn restart_every_controller_with(&mut self, down: Duration, extra: &[String]) {
        let names: Vec<String> = self.controllers.iter().map(|(n, _)| n.clone()).collect();
        for (_, controller) in &mut self.controllers {
            controller.process.kill();
        }
        tokio::time::sleep(down).await;
        self.controllers.clear();
        for name in names {
            let (binary, replica) = name.rsplit_once('-').unwrap();
            let mut flags = self.simulator.overrides();
            flags.extend(extra.iter().cloned());
            let controller = Controller::start(
                &self.cluster,
                &self.client,
                binary,
                self.ns.name(),
                replica.parse().unwrap(),
                &flags,
            )
            .await
            .unwrap();
            self.controllers.push((name, controller));
        }
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

    async fn create_cluster(&self, name: &str, spec: Value) {
        self.create::<Cluster>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name}, "spec": spec
        }))
        .await;
    }

    fn spread() -> Value {
        json!([{"type": "EvenlySpread", "evenlySpread": {"topologies": [
            {"topology": {"topology.kubernetes.io/zone": "zone-a"}},
            {"topology": {"topology.kubernetes.io/zone": "zone-b"}},
            {"topology": {"topology.kubernetes.io/zone": "zone-c"}}
        ]}}])
    }

    async fn create_pd(&self, cluster: &str, replicas: i32, version: &str) {
        self.create::<PDGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": Self::spread(),
                "template": {"spec": {
                    "version": version,
                    "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
                }}
            }
        }))
        .await;
    }

    async fn create_tikv(&self, cluster: &str, replicas: i32, version: &str) {
        self.create::<TiKVGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": Self::spread(),
                "template": {"spec": {
                    "version": version,
                    "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
                }}
            }
        }))
        .await;
    }

    async fn create_tidb(&self, cluster: &str, replicas: i32, version: &str) {
        self.create::<TiDBGroup>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiDBGroup",
            "metadata": {"name": GROUP},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": Self::spread(),
                "template": {"spec": {
                    "version": version,
                    "config": "[log]\nlevel = \"info\"\n"
                }}
            }
        }))
        .await;
    }

    async fn patch<K>(&self, name: &str, patch: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn tidbs(&self) -> Vec<TiDB> {
        self.api::<TiDB>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// UIDs of the TiDB Pods by name.
    async fn tidb_pods(&self) -> BTreeMap<String, String> {
        self.api::<Pod>()
            .list(&ListParams::default().labels("pingcap.com/component=tidb"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    /// Waits until a PD or TiKV group has `replicas` ready members on `version`.
    async fn wait_group<K>(&self, name: &str, replicas: i32, version: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + HasConditions,
        K: serde::Serialize,
    {
        let what = format!("{} {name}: {replicas} ready on {version}", K::kind(&()));
        wait_until(&self.kubectl(), self.n(), &what, CONVERGE, || async {
            let group = serde_json::to_value(self.api::<K>().get(name).await?).unwrap();
            let status = &group["status"];
            let conds = group_conditions(&group);
            Ok::<_, kube::Error>(
                conds.get("Ready").map(String::as_str) == Some("True")
                    && conds.get("Synced").map(String::as_str) == Some("True")
                    && status["version"] == version
                    && status["readyReplicas"] == replicas
                    && status["replicas"] == replicas,
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
    }

    /// Waits until the TiDBGroup has `replicas` Ready servers on `version`, is Ready and Synced,
    /// and the MySQL Service has exactly those servers' Pods as ready endpoints.
    async fn wait_tidb(&self, replicas: usize, version: &str) {
        let what = format!(
            "TiDBGroup {GROUP}: {replicas} ready servers on {version}, as many ready endpoints"
        );
        wait_until(&self.kubectl(), self.n(), &what, CONVERGE, || async {
            let group = self.api::<TiDBGroup>().get(GROUP).await?;
            let status = group.status.clone().unwrap_or_default();
            let tidbs = self.tidbs().await;
            let names: BTreeSet<String> = tidbs.iter().map(|t| t.name_any()).collect();
            let endpoints = ready_endpoints(&self.client, self.n(), SERVICE).await?;
            Ok::<_, kube::Error>(
                tidbs.len() == replicas
                    && tidbs.iter().all(|t| {
                        conditions::is_true(t.conditions(), conditions::READY)
                            && t.spec.template.common.version == version
                            && t.metadata.deletion_timestamp.is_none()
                    })
                    && conditions::is_true(group.conditions(), conditions::READY)
                    && conditions::is_true(group.conditions(), conditions::SYNCED)
                    && status.group.version == version
                    && status.common.current_revision == status.common.update_revision
                    && usize::try_from(status.group.ready_replicas).unwrap_or(0) == replicas
                    && endpoints == names,
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
    }

    /// Waits for a condition of the TiDBGroup.
    async fn wait_group_condition(&self, what: &str, check: impl Fn(&TiDBGroup) -> bool) {
        wait_until(
            &self.kubectl(),
            self.n(),
            what,
            Duration::from_secs(60),
            || async {
                let group = self.api::<TiDBGroup>().get(GROUP).await?;
                Ok::<_, kube::Error>(check(&group))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
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

    fn controller(&self, name: &str) -> &Controller {
        &self
            .controllers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no controller {name}"))
            .1
    }
}

/// Writes a controller made, leaving out its leader-election Lease renewals.
fn writes(metrics: &str) -> f64 {
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|verb| {
            metric_sum(
                metrics,
                "tidb_operator_api_requests_total",
                &[("verb", verb)],
            ) - metric_sum(
                metrics,
                "tidb_operator_api_requests_total",
                &[("verb", verb), ("resource", "leases")],
            )
        })
        .sum()
}

fn group_conditions(object: &Value) -> BTreeMap<String, String> {
    object["status"]["conditions"]
        .as_array()
        .map(|conds| {
            conds
                .iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or_default().to_string(),
                        c["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn condition(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (String, String, String) {
    conditions::find(conds, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

fn seq(event: &Value) -> u64 {
    event["seq"].as_u64().unwrap_or_default()
}

/// Simulator events of one kind and component after `since`.
fn events_of<'a>(events: &'a [Value], since: u64, kind: &str, component: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| seq(e) > since && e["kind"] == kind && e["component"] == component)
        .collect()
}

/// What a background poller saw while a roll ran: the fewest and most ready endpoints of the
/// MySQL Service, the endpoints it listed as terminating (and any of those marked ready), every
/// TiDB instance (name → UIDs), and the group's `Synced` reasons.
#[derive(Default, Debug)]
struct Watched {
    samples: usize,
    min_ready: Option<usize>,
    max_ready: usize,
    instances: BTreeMap<String, BTreeSet<String>>,
    synced_reasons: BTreeSet<String>,
    terminating: BTreeSet<String>,
    terminating_but_ready: Vec<String>,
    drained: BTreeSet<String>,
}

/// Polls every 100 ms until `stop` is set.
fn watch_roll(
    client: Client,
    namespace: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Watched>>, tokio::task::JoinHandle<()>) {
    let watched = Arc::new(Mutex::new(Watched::default()));
    let out = watched.clone();
    let handle = tokio::spawn(async move {
        let tidbs: Api<TiDB> = Api::namespaced(client.clone(), &namespace);
        let groups: Api<TiDBGroup> = Api::namespaced(client.clone(), &namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let of_service =
            ListParams::default().labels(&format!("kubernetes.io/service-name={SERVICE}"));
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let endpoints = slices.list(&of_service).await;
            let instances = tidbs.list(&ListParams::default()).await;
            let group = groups.get(GROUP).await;
            {
                let mut w = out.lock().unwrap();
                if let Ok(slices) = &endpoints {
                    let all: Vec<_> = slices
                        .items
                        .iter()
                        .flat_map(|s| s.endpoints.iter())
                        .collect();
                    let name = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
                        e.target_ref
                            .as_ref()
                            .and_then(|r| r.name.clone())
                            .unwrap_or_default()
                    };
                    let ready: BTreeSet<String> = all
                        .iter()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                        .map(name)
                        .collect();
                    w.samples += 1;
                    w.min_ready = Some(w.min_ready.map_or(ready.len(), |m| m.min(ready.len())));
                    w.max_ready = w.max_ready.max(ready.len());
                    for e in &all {
                        let c = e.conditions.clone().unwrap_or_default();
                        if c.terminating == Some(true) {
                            w.terminating.insert(name(e));
                            if c.ready == Some(true) {
                                w.terminating_but_ready.push(name(e));
                            }
                        }
                    }
                }
                if let Ok(instances) = instances {
                    for t in instances.items {
                        w.instances
                            .entry(t.name_any())
                            .or_default()
                            .insert(t.uid().unwrap_or_default());
                    }
                }
                if let Ok(group) = group
                    && let Some(c) = conditions::find(group.conditions(), conditions::SYNCED)
                {
                    w.synced_reasons.insert(c.reason.clone());
                }
            }
            // A Pod held by DRAIN_HOLD stays Terminating, as a real one does through its preStop
            // sleep; it is let go once the Service lists it as terminating and not ready.
            let held = pods
                .list(&ListParams::default().labels("pingcap.com/component=tidb"))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for pod in held.iter().filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && p.finalizers().iter().any(|f| f == DRAIN_HOLD)
            }) {
                let name = pod.name_any();
                let seen = out.lock().unwrap().terminating.contains(&name);
                if seen {
                    let rest: Vec<String> = pod
                        .finalizers()
                        .iter()
                        .filter(|f| *f != DRAIN_HOLD)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {"finalizers": rest}});
                    if pods
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok()
                    {
                        out.lock().unwrap().drained.insert(name);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (watched, handle)
}

#[tokio::test]
async fn a_full_cluster_serves_mysql_and_upgrades_pd_then_tikv_then_tidb_without_losing_an_endpoint()
 {
    let scene = Scene::start("tidb-full", 1, true).await;
    let n = scene.n().to_string();
    // Bootstrap SQL from a ConfigMap, as a user sets it at creation.
    scene
        .create::<ConfigMap>(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "init-sql"},
            "data": {"bootstrap-sql": "CREATE DATABASE app;"}
        }))
        .await;
    scene
        .create_cluster("full", json!({"bootstrapSQL": {"name": "init-sql"}}))
        .await;
    scene.create_pd("full", 3, "v8.5.2").await;
    scene.create_tikv("full", 3, "v8.5.2").await;
    scene.create_tidb("full", 2, "v8.5.2").await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;

    // The MySQL Service: the group's Pods only, both ports.
    let service = scene.api::<Service>().get(SERVICE).await.unwrap();
    let spec = service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("mysql-client".into(), 4000), ("status".into(), 10080)]
    );
    assert_eq!(spec.selector.unwrap()["pingcap.com/group"], GROUP);
    let peer = scene.api::<Service>().get("db-tidb-peer").await.unwrap();
    assert_eq!(peer.spec.unwrap().cluster_ip.as_deref(), Some("None"));

    // What one server runs: the config keys the operator owns, the bootstrap SQL, the graceful stop.
    let tidb = &scene.tidbs().await[0];
    let name = tidb.name_any();
    let config_map = scene.api::<ConfigMap>().get(&name).await.unwrap();
    let config = config_map.data.unwrap()["config.toml"].clone();
    for line in [
        format!("path = \"pd-pd.{n}:2379\""),
        format!("advertise-address = \"{name}.db-tidb-peer.{n}\""),
        "store = \"tikv\"".to_string(),
        "port = 4000".to_string(),
        "status-port = 10080".to_string(),
        "level = \"info\"".to_string(),
        "initialize-sql-file = \"/etc/tidb-bootstrap/bootstrap.sql\"".to_string(),
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "config.toml lacks {line}:\n{config}"
        );
    }
    let pod = scene.api::<Pod>().get(&name).await.unwrap();
    let pod_spec = pod.spec.unwrap();
    assert_eq!(pod_spec.termination_grace_period_seconds, Some(30));
    let container = &pod_spec.containers[0];
    assert_eq!(
        container.command.as_ref().unwrap(),
        &["/tidb-server", "--config=/etc/tidb/config.toml"]
    );
    let pre_stop = container
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap();
    assert_eq!(
        pre_stop.exec.as_ref().unwrap().command.as_ref().unwrap()[2],
        "sleep 10"
    );
    let bootstrap = pod_spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.config_map.as_ref().is_some_and(|c| c.name == "init-sql"))
        .expect("the bootstrap SQL ConfigMap is mounted");
    assert!(
        container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == bootstrap.name && m.mount_path == "/etc/tidb-bootstrap")
    );

    // Upgrade every group at once. PD goes first, then TiKV, then TiDB.
    let pods = |component: &'static str| {
        let api = scene.api::<Pod>();
        async move {
            api.list(&ListParams::default().labels(&format!("pingcap.com/component={component}")))
                .await
                .unwrap()
                .items
        }
    };
    let old_tidb: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();
    for pod in &old_tidb {
        scene
            .patch::<Pod>(pod, json!({"metadata": {"finalizers": [DRAIN_HOLD]}}))
            .await;
    }
    let start = last_seq(&scene.simulator.events(&n, "full").await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watched, poller) = watch_roll(scene.client.clone(), n.clone(), stop.clone());
    let upgrade = json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}});
    scene.patch::<TiDBGroup>(GROUP, upgrade.clone()).await;
    scene.patch::<TiKVGroup>("tikv", upgrade.clone()).await;
    scene.patch::<PDGroup>("pd", upgrade).await;

    // While PD and TiKV roll, TiDB says what it waits for.
    scene
        .wait_group_condition("TiDBGroup Synced=False WaitingForDependencies", |g| {
            let (status, reason, message) = condition(g.conditions(), conditions::SYNCED);
            status == "False"
                && reason == "WaitingForDependencies"
                && message.contains("v8.5.3")
                && (message.contains("PDGroup pd") || message.contains("TiKVGroup tikv"))
        })
        .await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.3").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.3").await;
    scene.wait_tidb(2, "v8.5.3").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let watched = std::mem::take(&mut *watched.lock().unwrap());

    // Never fewer than two servers in the MySQL Service; the surge shows as a third.
    assert!(watched.samples > 50, "the poller ran: {watched:?}");
    assert_eq!(
        watched.min_ready,
        Some(2),
        "ready endpoints dropped below two: {watched:?}"
    );
    assert!(
        watched.terminating_but_ready.is_empty(),
        "a terminating Pod was a ready endpoint: {watched:?}"
    );
    assert_eq!(
        watched.drained, old_tidb,
        "each old server was seen draining: terminating and not ready in the Service: {watched:?}"
    );
    let new_tidb: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();
    assert!(
        new_tidb.is_disjoint(&old_tidb),
        "each server was replaced by a new one"
    );
    assert_eq!(
        watched.instances.len(),
        4,
        "two old and two new TiDB instances, no more: {:?}",
        watched.instances
    );

    // The order, from what the simulator saw happen to the Pods.
    let events = scene.simulator.events(&n, "full").await.unwrap();
    let pd_running = events_of(&events, start, "pod_running", "pd");
    let tikv_stopped = events_of(&events, start, "pod_stopped", "tikv");
    let tikv_running = events_of(&events, start, "pod_running", "tikv");
    let tidb_running = events_of(&events, start, "pod_running", "tidb");
    let tidb_stopped = events_of(&events, start, "pod_stopped", "tidb");
    assert_eq!(
        events_of(&events, start, "pod_stopped", "pd").len(),
        3,
        "every PD restarted"
    );
    assert_eq!(pd_running.len(), 3);
    assert_eq!(tikv_stopped.len(), 3, "every TiKV restarted");
    assert_eq!(tikv_running.len(), 3);
    assert_eq!(tidb_running.len(), 2, "two new TiDB servers");
    assert_eq!(tidb_stopped.len(), 2, "two old TiDB servers stopped");
    // A surge: each old server stopped only after one more new server ran.
    for (n_stopped, stop) in tidb_stopped.iter().enumerate() {
        let started_before = tidb_running.iter().filter(|e| seq(e) < seq(stop)).count();
        assert!(
            started_before > n_stopped,
            "an old server stopped before its replacement ran: {events:#?}"
        );
    }
    let last_pd = pd_running.iter().map(|e| seq(e)).max().unwrap();
    let first_tikv = tikv_stopped.iter().map(|e| seq(e)).min().unwrap();
    let last_tikv = tikv_running.iter().map(|e| seq(e)).max().unwrap();
    let first_tidb = tidb_running
        .iter()
        .chain(tidb_stopped.iter())
        .map(|e| seq(e))
        .min()
        .unwrap();
    assert!(
        last_pd < first_tikv,
        "TiKV started before PD finished: {events:#?}"
    );
    assert!(
        last_tikv < first_tidb,
        "TiDB started before TiKV finished: {events:#?}"
    );
    // The same order in the Pods' creation times.
    let created = |pods: Vec<Pod>| -> Vec<k8s_openapi::jiff::Timestamp> {
        pods.iter()
            .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .collect()
    };
    let (pd_created, tikv_created, tidb_created) = (
        created(pods("pd").await),
        created(pods("tikv").await),
        created(pods("tidb").await),
    );
    assert!(pd_created.iter().max() <= tikv_created.iter().min());
    assert!(tikv_created.iter().max() <= tidb_created.iter().min());
    assert!(
        watched.synced_reasons.contains("WaitingForDependencies"),
        "{watched:?}"
    );
    scene
        .simulator
        .verdict(scene.n(), "full", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn scaling_out_and_in_removes_an_unhealthy_server_first_and_waits_while_paused() {
    let scene = Scene::start("tidb-scale", 1, false).await;
    let n = scene.n().to_string();
    scene.create_cluster("scale", json!({})).await;
    scene.create_pd("scale", 1, "v8.5.2").await;
    scene.create_tidb("scale", 2, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;

    scene
        .kubectl()
        .ok(&["scale", "-n", &n, "tidbgroup/db", "--replicas=4"], None)
        .unwrap();
    scene.wait_tidb(4, "v8.5.2").await;

    // The server the engine would remove last on its own: alone in its zone, first by name.
    let tidbs = scene.tidbs().await;
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tidbs {
        *per_zone
            .entry(t.spec.topology["topology.kubernetes.io/zone"].clone())
            .or_default() += 1;
    }
    assert_eq!(
        per_zone.len(),
        3,
        "four servers spread over three zones: {per_zone:?}"
    );
    let sick = tidbs
        .iter()
        .filter(|t| per_zone[&t.spec.topology["topology.kubernetes.io/zone"]] == 1)
        .map(|t| t.name_any())
        .min()
        .unwrap();
    scene
        .simulator
        .set_fault(&n, "scale", &format!("tidb-unhealthy/{sick}"))
        .await
        .unwrap();
    wait_until(
        &scene.kubectl(),
        &n,
        "the faulty server is not Ready",
        CONVERGE,
        || async {
            let t = scene.api::<TiDB>().get(&sick).await?;
            Ok::<_, kube::Error>(
                condition(t.conditions(), conditions::READY).1 == "InstanceNotHealthy",
            )
        },
    )
    .await
    .unwrap();

    // Paused: a scale-in waits, and the group says why.
    scene
        .patch::<Cluster>("scale", json!({"spec": {"paused": true}}))
        .await;
    scene
        .wait_group_condition("TiDBGroup Synced=False Paused", |g| {
            condition(g.conditions(), conditions::SYNCED).1 == "Paused"
        })
        .await;
    scene
        .kubectl()
        .ok(&["scale", "-n", &n, "tidbgroup/db", "--replicas=1"], None)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = scene.tidbs().await;
    assert_eq!(
        held.len(),
        4,
        "nothing is removed while the Cluster is paused"
    );
    assert!(held.iter().all(|t| t.metadata.deletion_timestamp.is_none()));

    let since = last_seq(&scene.simulator.events(&n, "scale").await.unwrap());
    scene
        .patch::<Cluster>("scale", json!({"spec": {"paused": false}}))
        .await;
    scene.wait_tidb(1, "v8.5.2").await;
    let left = scene.tidbs().await;
    assert_ne!(left[0].name_any(), sick);

    let events = scene.simulator.events(&n, "scale").await.unwrap();
    let stopped: Vec<String> = events_of(&events, since, "pod_stopped", "tidb")
        .iter()
        .map(|e| e["instance"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stopped.len(), 3, "three servers removed: {stopped:?}");
    assert_eq!(
        stopped[0], sick,
        "the unhealthy server goes first: {stopped:?}"
    );
    let endpoints = ready_endpoints(&scene.client, &n, SERVICE).await.unwrap();
    assert_eq!(endpoints, BTreeSet::from([left[0].name_any()]));
    scene
        .simulator
        .verdict(scene.n(), "scale", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until the one TiDB instance is held (`Ready=False`) for `reason` with a message
/// containing `says`, and checks that it has no Pod and that a Warning Event says so.
async fn wait_held(scene: &Scene, reason: &str, says: &str) {
    wait_until(
        &scene.kubectl(),
        scene.n(),
        &format!("the TiDB instance held: {reason}, {says}"),
        Duration::from_secs(60),
        || async {
            let tidbs = scene.tidbs().await;
            Ok::<_, kube::Error>(
                tidbs.len() == 1
                    && tidbs.iter().all(|t| {
                        conditions::find(t.conditions(), conditions::READY).is_some_and(|c| {
                            c.status == "False" && c.reason == reason && c.message.contains(says)
                        })
                    }),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", scene.logs()));
    assert!(
        scene.tidb_pods().await.is_empty(),
        "no TiDB Pod without the files it reads"
    );
    let events = scene
        .kubectl()
        .ok(&["get", "events", "-n", scene.n(), "-o", "json"], None)
        .unwrap();
    assert!(
        events.contains(reason) && events.contains(says),
        "a Warning Event says why: {events}"
    );
}

/// The files a TiDB Pod would read from objects it names, each missing in turn: a
/// session-token signing certificate the `SessionTokenSigning` feature needs and the Cluster does
/// not name, the Cluster's `bootstrapSQL` ConfigMap (absent, then without its key), the
/// `security.sem` ConfigMap, the `security.authToken` JWKs Secret, the signing certificate's
/// Secret. No TiDB Pod is created meanwhile (it could not mount the file, and TiDB would
/// bootstrap without the SQL); the instance names the object and what is wrong, with a Warning
/// Event. Once all are there the server starts with each mounted and named in its config.
#[tokio::test]
async fn a_missing_bootstrap_sql_sem_or_jwks_source_holds_tidb_and_says_which() {
    let scene = Scene::start("tidb-bsql", 1, false).await;
    scene
        .create_cluster(
            "bsql",
            json!({"bootstrapSQL": {"name": "init-sql"},
                   "featureGates": [{"name": "SessionTokenSigning"}]}),
        )
        .await;
    scene.create_pd("bsql", 1, "v8.5.2").await;
    scene.create_tidb("bsql", 1, "v8.5.2").await;
    // The group's features are not yet the Cluster's gate (no cluster-controller runs here to
    // copy it): the group makes nothing and says why.
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "TiDBGroup Synced=False FeatureGatesNotSynced, no instance",
        Duration::from_secs(60),
        || async {
            let group = scene.api::<TiDBGroup>().get(GROUP).await?;
            let waits = conditions::find(group.conditions(), conditions::SYNCED).is_some_and(|c| {
                c.status == "False"
                    && c.reason == "FeatureGatesNotSynced"
                    && c.message.contains("SessionTokenSigning")
            });
            Ok::<_, kube::Error>(waits && scene.tidbs().await.is_empty())
        },
    )
    .await
    .unwrap();
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {
                "features": ["SessionTokenSigning"],
                "template": {"spec": {"security": {
                    "sem": {"config": {"name": "sem-rules"}},
                    "authToken": {"jwks": {"name": "jwks"}}
                }}}
            }}),
        )
        .await;
    wait_held(
        &scene,
        "SessionTokenSigningCertNotSet",
        "set Cluster bsql spec.security.sessionTokenSigningCertKeyPair",
    )
    .await;
    scene
        .patch::<Cluster>(
            "bsql",
            json!({"spec": {"security": {"sessionTokenSigningCertKeyPair": {"name": "signer"}}}}),
        )
        .await;
    wait_held(
        &scene,
        "BootstrapSQLNotFound",
        "ConfigMap init-sql named by Cluster bsql spec.bootstrapSQL does not exist",
    )
    .await;

    let config_maps = scene.api::<ConfigMap>();
    let create = |value: Value| {
        let config_maps = config_maps.clone();
        async move {
            let map: ConfigMap = serde_json::from_value(value).unwrap();
            config_maps
                .create(&PostParams::default(), &map)
                .await
                .unwrap();
        }
    };
    create(json!({
        "metadata": {"name": "init-sql"},
        "data": {"bootstrap.sql": "CREATE DATABASE app;"}
    }))
    .await;
    wait_held(&scene, "BootstrapSQLNotFound", "has no key bootstrap-sql").await;
    config_maps
        .patch(
            "init-sql",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"bootstrap-sql": "CREATE DATABASE app;"}})),
        )
        .await
        .unwrap();
    wait_held(
        &scene,
        "SEMConfigNotFound",
        "ConfigMap sem-rules named by security.sem does not exist",
    )
    .await;
    create(json!({"metadata": {"name": "sem-rules"}, "data": {"sem.json": "{}"}})).await;
    wait_held(
        &scene,
        "AuthTokenJWKSNotFound",
        "Secret jwks named by security.authToken.jwks does not exist",
    )
    .await;
    let secrets = scene.api::<k8s_openapi::api::core::v1::Secret>();
    let create_secret = |value: Value| {
        let secrets = secrets.clone();
        async move {
            let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(value).unwrap();
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
    };
    create_secret(json!({
        "metadata": {"name": "jwks"},
        "stringData": {"tidb_auth_token_jwks.json": "{\"keys\": []}"}
    }))
    .await;
    wait_held(&scene, "TLSSecretMissing", "signer").await;
    create_secret(json!({
        "metadata": {"name": "signer"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "cert", "tls.key": "key"}
    }))
    .await;
    scene.wait_tidb(1, "v8.5.2").await;

    // Each file mounted where the config says.
    let pod = scene
        .api::<Pod>()
        .list(&ListParams::default().labels("pingcap.com/component=tidb"))
        .await
        .unwrap()
        .items
        .remove(0);
    let mounts: BTreeSet<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.volume_mounts.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_path)
        .collect();
    for dir in [
        "/etc/tidb-bootstrap",
        "/etc/sem",
        "/var/lib/tidb-auth-token",
        "/var/lib/tidb-session-token-signing-tls",
    ] {
        assert!(mounts.contains(dir), "{dir} not mounted: {mounts:?}");
    }
    let config = config_maps.get(&pod.name_any()).await.unwrap();
    let text = &config.data.unwrap()["config.toml"];
    let table: toml::Table = text.parse().unwrap();
    let security = &table["security"];
    assert_eq!(security["sem-config"].as_str(), Some("/etc/sem/sem.json"));
    assert_eq!(security["enable-sem"].as_bool(), Some(true));
    assert_eq!(
        security["auth-token-jwks"].as_str(),
        Some("/var/lib/tidb-auth-token/tidb_auth_token_jwks.json")
    );
    assert_eq!(
        security["session-token-signing-key"].as_str(),
        Some("/var/lib/tidb-session-token-signing-tls/tls.key")
    );
    scene
        .simulator
        .verdict(scene.n(), "bsql", &scenarios::Allowed::none())
        .await
        .unwrap();
}

/// A TiDB started in standby mode (`mode: StandBy`: next-generation TiDB waiting for a keyspace)
/// is given one by changing its group to `mode: Normal` with a `keyspace`: its Pod is kept, the
/// server is activated with that keyspace once through its status port, and its config file
/// names the keyspace for its next start.
#[tokio::test]
async fn a_standby_server_given_a_keyspace_is_activated_in_place() {
    let scene = Scene::start("tidb-standby", 1, false).await;
    let n = scene.n().to_string();
    scene.create_cluster("pool", json!({})).await;
    scene.create_pd("pool", 1, "v8.5.2").await;
    scene.create_tidb("pool", 1, "v8.5.2").await;
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"mode": "StandBy"}}}}),
        )
        .await;
    scene.wait_tidb(1, "v8.5.2").await;
    let maps = scene.api::<ConfigMap>();
    let config = |name: String| {
        let maps = maps.clone();
        async move {
            let map = maps.get(&name).await.unwrap();
            map.data.unwrap()["config.toml"]
                .parse::<toml::Table>()
                .unwrap()
        }
    };
    let tidb = scene.tidbs().await.remove(0).name_any();
    let standby = config(tidb.clone()).await;
    assert_eq!(standby["standby"]["standby-mode"].as_bool(), Some(true));
    assert!(standby.get("keyspace-name").is_none());
    let pods = scene.tidb_pods().await;
    let start = last_seq(&scene.simulator.events(&n, "pool").await.unwrap());

    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"mode": "Normal", "keyspace": "ks1"}}}}),
        )
        .await;
    wait_until(
        &scene.kubectl(),
        &n,
        "the standby server activated with keyspace ks1",
        CONVERGE,
        || async {
            let events = scene.simulator.events(&n, "pool").await.unwrap();
            Ok::<_, kube::Error>(
                events.iter().any(|e| {
                    seq(e) > start && e["kind"] == "tidb_activated" && e["keyspace"] == "ks1"
                }),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", scene.logs()));
    scene.wait_tidb(1, "v8.5.2").await;
    assert_eq!(scene.tidb_pods().await, pods, "the Pod was kept");
    let active = config(tidb.clone()).await;
    assert_eq!(active["keyspace-name"].as_str(), Some("ks1"));
    assert!(active.get("standby").is_none());
    // Once: later health checks find it activated.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let events = scene.simulator.events(&n, "pool").await.unwrap();
    let activations = events
        .iter()
        .filter(|e| seq(e) > start && e["kind"] == "tidb_activated")
        .count();
    assert_eq!(activations, 1);
    let k8s_events = scene
        .kubectl()
        .ok(&["get", "events", "-n", &n, "-o", "json"], None)
        .unwrap();
    assert!(
        k8s_events.contains("activated with keyspace ks1"),
        "an Event says so: {k8s_events}"
    );
    scene
        .simulator
        .verdict(&n, "pool", &scenarios::Allowed::none())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unhealthy_server_makes_its_instance_and_group_not_ready_until_it_recovers() {
    let scene = Scene::start("tidb-health", 1, false).await;
    let n = scene.n().to_string();
    scene.create_cluster("health", json!({})).await;
    scene.create_pd("health", 1, "v8.5.2").await;
    scene.create_tidb("health", 2, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    let pods = scene.tidb_pods().await;
    let sick = scene.tidbs().await[0].name_any();

    // Idle: reconciles that change nothing, health checks included, write nothing.
    let controller = scene.controller("tidb-controller-0");
    let before = controller.metrics().await.unwrap();
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"metadata": {"annotations": {"test/touch": "1"}}}),
        )
        .await;
    for t in scene.tidbs().await {
        scene
            .patch::<TiDB>(
                &t.name_any(),
                json!({"metadata": {"annotations": {"test/touch": "1"}}}),
            )
            .await;
    }
    // Longer than the health check interval of a Ready server.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = controller.metrics().await.unwrap();
    let reconciles = |text: &str| metric_sum(text, "tidb_operator_reconcile_total", &[]);
    assert!(
        reconciles(&after) >= reconciles(&before) + 5.0,
        "the touched objects were reconciled, and the servers checked again"
    );
    assert_eq!(
        writes(&after),
        writes(&before),
        "idle reconciles wrote something:\n{after}"
    );

    scene
        .simulator
        .set_fault(&n, "health", &format!("tidb-unhealthy/{sick}"))
        .await
        .unwrap();
    wait_until(
        &scene.kubectl(),
        &n,
        "the instance and the group are not Ready",
        CONVERGE,
        || async {
            let t = scene.api::<TiDB>().get(&sick).await?;
            let g = scene.api::<TiDBGroup>().get(GROUP).await?;
            let (status, reason, message) = condition(t.conditions(), conditions::READY);
            let (g_status, g_reason, g_message) = condition(g.conditions(), conditions::READY);
            Ok::<_, kube::Error>(
                status == "False"
                    && reason == "InstanceNotHealthy"
                    && message.contains("/status")
                    && message.contains("503")
                    && g_status == "False"
                    && g_reason == "NotAllInstancesReady"
                    && g_message.contains("1 of 2")
                    && g.status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas == 1),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", scene.logs()));

    scene
        .simulator
        .clear_fault(&n, "health", &format!("tidb-unhealthy/{sick}"))
        .await
        .unwrap();
    scene.wait_tidb(2, "v8.5.2").await;
    assert_eq!(
        scene.tidb_pods().await,
        pods,
        "an unhealthy server is reported, not restarted or replaced"
    );

    // A roll does not wait for an unhealthy outdated server: it is replaced first.
    let other = scene
        .tidbs()
        .await
        .into_iter()
        .map(|t| t.name_any())
        .find(|name| *name != sick)
        .unwrap();
    scene
        .simulator
        .set_fault(&n, "health", &format!("tidb-unhealthy/{sick}"))
        .await
        .unwrap();
    wait_until(
        &scene.kubectl(),
        &n,
        "the server is unhealthy again",
        CONVERGE,
        || async {
            let t = scene.api::<TiDB>().get(&sick).await?;
            Ok::<_, kube::Error>(
                condition(t.conditions(), conditions::READY).1 == "InstanceNotHealthy",
            )
        },
    )
    .await
    .unwrap();
    let since = last_seq(&scene.simulator.events(&n, "health").await.unwrap());
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    scene.wait_tidb(2, "v8.5.2").await;
    let events = scene.simulator.events(&n, "health").await.unwrap();
    let stopped: Vec<String> = events_of(&events, since, "pod_stopped", "tidb")
        .iter()
        .map(|e| e["instance"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        stopped,
        [sick, other],
        "the unhealthy server goes first, then the other"
    );
    scene
        .simulator
        .verdict(scene.n(), "health", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_roll_interrupted_by_a_killed_controller_is_finished_once_by_the_standby() {
    let mut scene = Scene::start("tidb-kill", 2, false).await;
    let n = scene.n().to_string();
    scene.create_cluster("kill", json!({})).await;
    scene.create_pd("kill", 1, "v8.5.2").await;
    scene.create_tidb("kill", 2, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;

    let lease = format!("tidb-controller-{n}");
    let mut leading = Vec::new();
    for name in ["tidb-controller-0", "tidb-controller-1"] {
        leading.push(
            scene
                .controller(name)
                .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        leading.iter().filter(|v| **v == 1.0).count(),
        1,
        "one leader: {leading:?}"
    );
    let leader = format!(
        "tidb-controller-{}",
        leading.iter().position(|v| *v == 1.0).unwrap()
    );
    let standby = if leader.ends_with('0') {
        "tidb-controller-1"
    } else {
        "tidb-controller-0"
    };

    let old: BTreeMap<String, String> = scene.tidb_pods().await;
    let start = last_seq(&scene.simulator.events(&n, "kill").await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watched, poller) = watch_roll(scene.client.clone(), n.clone(), stop.clone());
    // A config change (Restart strategy): every server is replaced, a surge at a time.
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;

    // Kill the leader as soon as the first replacement exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();
        if names.iter().any(|name| !old.contains_key(name)) {
            let index = scene
                .controllers
                .iter()
                .position(|(n, _)| *n == leader)
                .unwrap();
            scene.controllers[index].1.process.kill();
            assert!(
                old.keys().all(|o| names.contains(o)),
                "the roll had gone past its first step before the kill: {names:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no replacement was created\n{}",
            scene.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    wait_until(
        &scene.kubectl(),
        &n,
        "the standby leads",
        Duration::from_secs(60),
        || async {
            scene
                .controller(standby)
                .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                .await
                .map(|v| v == 1.0)
        },
    )
    .await
    .unwrap();
    scene.wait_tidb(2, "v8.5.2").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let watched = std::mem::take(&mut *watched.lock().unwrap());

    let now = scene.tidbs().await;
    for t in &now {
        let config = scene.api::<ConfigMap>().get(&t.name_any()).await.unwrap();
        assert!(
            config.data.unwrap()["config.toml"].contains("level = \"warn\""),
            "{} runs the new config",
            t.name_any()
        );
    }
    let new: BTreeSet<String> = now.iter().map(|t| t.name_any()).collect();
    assert!(
        new.iter().all(|name| !old.contains_key(name)),
        "both servers replaced: {new:?}"
    );
    // Exactly one replacement per server: four instances ever, each created once.
    assert_eq!(
        watched.instances.len(),
        4,
        "no instance created twice for a slot: {:?}",
        watched.instances
    );
    assert!(
        watched.instances.values().all(|uids| uids.len() == 1),
        "no instance name reused: {:?}",
        watched.instances
    );
    assert_eq!(watched.min_ready, Some(2), "{watched:?}");

    // Every old Pod stopped once; every new Pod started once.
    let events = scene.simulator.events(&n, "kill").await.unwrap();
    let stopped: Vec<String> = events_of(&events, start, "pod_stopped", "tidb")
        .iter()
        .map(|e| e["pod"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut expected_stopped: Vec<String> = old.keys().cloned().collect();
    let mut sorted = stopped.clone();
    sorted.sort();
    expected_stopped.sort();
    assert_eq!(
        sorted, expected_stopped,
        "each old Pod stopped exactly once"
    );
    let mut started: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events_of(&events, start, "pod_running", "tidb") {
        started
            .entry(e["pod"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(e["uid"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(started.keys().cloned().collect::<BTreeSet<_>>(), new);
    assert!(started.values().all(|uids| uids.len() == 1), "{started:?}");
    scene
        .simulator
        .verdict(scene.n(), "kill", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn suspending_compute_removes_the_pods_and_resuming_brings_the_same_servers_back() {
    let scene = Scene::start("tidb-suspend", 1, false).await;
    let n = scene.n().to_string();
    scene.create_cluster("sus", json!({})).await;
    scene.create_pd("sus", 1, "v8.5.2").await;
    scene.create_tidb("sus", 2, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    let names: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();

    scene
        .patch::<Cluster>(
            "sus",
            json!({"spec": {"suspendAction": {"suspendCompute": true}}}),
        )
        .await;
    wait_until(
        &scene.kubectl(),
        &n,
        "TiDB Pods gone, instances suspended, the group not Available",
        CONVERGE,
        || async {
            let tidbs = scene.tidbs().await;
            let group = scene.api::<TiDBGroup>().get(GROUP).await?;
            let (available, reason, _) = condition(group.conditions(), conditions::AVAILABLE);
            Ok::<_, kube::Error>(
                scene.tidb_pods().await.is_empty()
                    && tidbs.iter().map(|t| t.name_any()).collect::<BTreeSet<_>>() == names
                    && tidbs
                        .iter()
                        .all(|t| conditions::is_true(t.conditions(), conditions::SUSPENDED))
                    && conditions::is_true(group.conditions(), conditions::SUSPENDED)
                    && available == "False"
                    && reason == "Unavailable",
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", scene.logs()));

    scene
        .patch::<Cluster>(
            "sus",
            json!({"spec": {"suspendAction": {"suspendCompute": false}}}),
        )
        .await;
    scene.wait_tidb(2, "v8.5.2").await;
    let back: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();
    assert_eq!(back, names, "the same servers come back");
    let group = scene.api::<TiDBGroup>().get(GROUP).await.unwrap();
    assert_eq!(
        condition(group.conditions(), conditions::SUSPENDED).0,
        "False",
        "the group is no longer suspended"
    );
    let (available, reason, message) = condition(group.conditions(), conditions::AVAILABLE);
    assert_eq!(
        (available.as_str(), reason.as_str()),
        ("True", "Available"),
        "the group is Available again: {message}"
    );
    // Suspending compute stops the PD Pod too, on purpose: PD is without a leader meanwhile.
    scene
        .simulator
        .verdict(
            scene.n(),
            "sus",
            &scenarios::Allowed::none().pd_quorum_loss(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_roll_replaces_the_next_server_only_once_the_last_replacement_was_ready_for_min_ready_seconds()
 {
    const MIN_READY: i64 = 4;
    let scene = Scene::start("tidb-minready", 1, false).await;
    scene.create_cluster("mr", json!({})).await;
    scene.create_pd("mr", 1, "v8.5.2").await;
    scene.create_tidb("mr", 2, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    let old: BTreeSet<String> = scene.tidbs().await.iter().map(|t| t.name_any()).collect();

    // minReadySeconds is not part of the template: setting it restarts nothing by itself.
    scene
        .patch::<TiDBGroup>(GROUP, json!({"spec": {"minReadySeconds": MIN_READY}}))
        .await;
    // A config change (Restart strategy): each server is replaced, a surge at a time.
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    scene
        .wait_group_condition(
            "TiDBGroup Synced=False while a replacement is Ready for less than minReadySeconds",
            |g| {
                let (status, _, message) = condition(g.conditions(), conditions::SYNCED);
                status == "False" && message.contains("to be Ready for minReadySeconds")
            },
        )
        .await;
    scene.wait_tidb(2, "v8.5.2").await;

    // What a user reads off the objects: when each replacement's Pod was created, and since when
    // each replacement has been Ready.
    let mut replacements = Vec::new();
    for tidb in scene.tidbs().await {
        let name = tidb.name_any();
        assert!(!old.contains(&name), "{name} was not replaced");
        let pod = scene.api::<Pod>().get(&name).await.unwrap();
        let created = pod.metadata.creation_timestamp.unwrap().0.as_second();
        let ready_since = conditions::find(tidb.conditions(), conditions::READY)
            .filter(|c| c.status == "True")
            .map(|c| c.last_transition_time.0.as_second())
            .unwrap_or_else(|| panic!("{name} is not Ready"));
        replacements.push((created, ready_since, name));
    }
    replacements.sort();
    let [(_, first_ready, first), (second_created, _, second)] = replacements.as_slice() else {
        panic!("two replacements: {replacements:?}");
    };
    assert!(
        *second_created >= first_ready + MIN_READY,
        "{second}'s Pod was created at {second_created}, before {first} (Ready since \
         {first_ready}) had been Ready for {MIN_READY}s"
    );
    scene
        .simulator
        .verdict(scene.n(), "mr", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn every_controller_killed_at_once_mid_upgrade_finishes_it_once_when_they_start_again() {
    let mut scene = Scene::start("tidb-allkill", 1, true).await;
    let n = scene.n().to_string();
    scene.create_cluster("allkill", json!({})).await;
    scene.create_pd("allkill", 3, "v8.5.2").await;
    scene.create_tikv("allkill", 3, "v8.5.2").await;
    scene.create_tidb("allkill", 2, "v8.5.2").await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    let before: BTreeSet<String> = scene
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    let start = last_seq(&scene.simulator.events(&n, "allkill").await.unwrap());

    let upgrade = json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}});
    scene.patch::<TiDBGroup>(GROUP, upgrade.clone()).await;
    scene.patch::<TiKVGroup>("tikv", upgrade.clone()).await;
    scene.patch::<PDGroup>("pd", upgrade).await;

    // Once the upgrade is under way (the first PD member restarted), every controller dies at
    // once; a few seconds later all start again.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let events = scene.simulator.events(&n, "allkill").await.unwrap();
        if !events_of(&events, start, "pod_deleted", "pd").is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the upgrade did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scene.restart_every_controller(Duration::from_secs(3)).await;

    scene.wait_group::<PDGroup>("pd", 3, "v8.5.3").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.3").await;
    scene.wait_tidb(2, "v8.5.3").await;
    // Every Pod that ran before was replaced exactly once; no Pod made during the upgrade was
    // deleted again (nothing restarted twice).
    let events = scene.simulator.events(&n, "allkill").await.unwrap();
    scenarios::replaced_exactly_once(&events, start, &before, &["pd", "tikv", "tidb"])
        .unwrap_or_else(|e| panic!("{e}"));
    let state = scene.simulator.state(&n, "allkill").await.unwrap();
    let evicting: Vec<&Value> = state["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["evicting_leaders"].as_bool() == Some(true))
        .collect();
    assert!(
        evicting.is_empty(),
        "evict-leader schedulers left: {evicting:?}"
    );
    scene
        .simulator
        .verdict(&n, "allkill", &scenarios::Allowed::none())
        .await
        .unwrap();
}

/// What a restart of the operator may not change, of every object it writes: the Pods,
/// ConfigMaps, PVCs, Services and PodDisruptionBudgets by resourceVersion (any write moves it),
/// the budgets and the groups and instances by everything but their status (which others write).
async fn written_state(scene: &Scene) -> BTreeMap<String, String> {
    use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let mut state = BTreeMap::new();
    let lp = ListParams::default();
    let mut by_version = |kind: &str, items: Vec<(String, Option<String>)>| {
        for (name, version) in items {
            state.insert(format!("{kind}/{name}"), version.unwrap_or_default());
        }
    };
    let pods = scene.api::<Pod>().list(&lp).await.unwrap().items;
    by_version(
        "Pod",
        pods.iter()
            .map(|o| (o.name_any(), o.resource_version()))
            .collect(),
    );
    let maps = scene.api::<ConfigMap>().list(&lp).await.unwrap().items;
    by_version(
        "ConfigMap",
        maps.iter()
            .map(|o| (o.name_any(), o.resource_version()))
            .collect(),
    );
    let claims = scene
        .api::<PersistentVolumeClaim>()
        .list(&lp)
        .await
        .unwrap()
        .items;
    by_version(
        "PVC",
        claims
            .iter()
            .map(|o| (o.name_any(), o.resource_version()))
            .collect(),
    );
    let services = scene.api::<Service>().list(&lp).await.unwrap().items;
    by_version(
        "Service",
        services
            .iter()
            .map(|o| (o.name_any(), o.resource_version()))
            .collect(),
    );
    // A budget's status is the disruption controller's: its spec and metadata are compared.
    let budgets = scene
        .api::<PodDisruptionBudget>()
        .list(&lp)
        .await
        .unwrap()
        .items;
    by_version(
        "PodDisruptionBudget",
        budgets
            .iter()
            .map(|o| {
                let mut meta = o.metadata.clone();
                meta.resource_version = None;
                meta.managed_fields = None;
                (o.name_any(), serde_json::to_string(&(meta, &o.spec)).ok())
            })
            .collect(),
    );
    for kind in [
        "Cluster",
        "PDGroup",
        "PD",
        "TiKVGroup",
        "TiKV",
        "TiDBGroup",
        "TiDB",
    ] {
        let ar = scenarios::api_resource(kind).unwrap();
        let objects =
            Api::<kube::api::DynamicObject>::namespaced_with(scene.client.clone(), scene.n(), &ar)
                .list(&lp)
                .await
                .unwrap()
                .items;
        for object in objects {
            let mut meta = object.metadata.clone();
            meta.resource_version = None;
            meta.managed_fields = None;
            let mut data = object.data.clone();
            data.as_object_mut().map(|o| o.remove("status"));
            state.insert(
                format!("{kind}/{}", object.name_any()),
                serde_json::to_string(&(meta, data)).unwrap(),
            );
        }
    }
    state
}

/// Waits until the restarted controllers have listed, reconciled every object and looked again,
/// then asserts that nothing of [`written_state`] changed from `settled` and that no Pod of
/// `cluster` was deleted since the simulator's event `start`.
async fn assert_restarted_operator_changed_nothing(
    scene: &Scene,
    cluster: &str,
    settled: &BTreeMap<String, String>,
    start: u64,
) {
    tokio::time::sleep(Duration::from_secs(40)).await;
    let after = written_state(scene).await;
    let changed: Vec<&String> = settled
        .iter()
        .filter(|(key, value)| after.get(*key) != Some(*value))
        .map(|(key, _)| key)
        .chain(after.keys().filter(|k| !settled.contains_key(*k)))
        .collect();
    assert!(
        changed.is_empty(),
        "rewritten by the restarted operator: {changed:?}"
    );
    let events = scene.simulator.events(scene.n(), cluster).await.unwrap();
    let deleted = events
        .iter()
        .filter(|e| seq(e) > start && e["kind"] == "pod_deleted")
        .count();
    assert_eq!(deleted, 0, "a Pod was restarted");
}

/// The operator upgraded under a converged cluster: every controller built from the previous
/// commit (hack/build-previous.sh; there is no release yet) stopped, then this commit's started.
/// No Pod restarted, and nothing rewritten but status.
#[tokio::test]
async fn upgrading_the_operator_from_the_previous_commit_restarts_nothing() {
    let bin_dir = match std::env::var("TIDB_OPERATOR_PREVIOUS_BIN") {
        Ok(dir) if dir.starts_with("none:") => {
            eprintln!("NOT RUN: no previous commit to build ({dir})");
            return;
        }
        Ok(dir) => std::path::PathBuf::from(dir),
        Err(_) => panic!(
            "TIDB_OPERATOR_PREVIOUS_BIN is not set: run hack/test.sh, or eval \"$(hack/build-previous.sh)\" and export it"
        ),
    };
    let mut scene = Scene::start_from("tidb-upgrade", &bin_dir).await;
    let n = scene.n().to_string();
    scene.create_cluster("older", json!({})).await;
    scene.create_pd("older", 3, "v8.5.2").await;
    scene.create_tikv("older", 3, "v8.5.2").await;
    scene.create_tidb("older", 2, "v8.5.2").await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    // The controllers that built it are the previous commit's (hack/build-previous.sh records it).
    let commit = std::fs::read_to_string(bin_dir.join("../commit")).unwrap();
    for (name, controller) in &scene.controllers {
        let metrics = controller.metrics().await.unwrap();
        assert!(
            metrics.contains(&format!("git_commit=\"{}\"", commit.trim())),
            "{name} does not run commit {commit}"
        );
    }
    let settled = written_state(&scene).await;
    let start = last_seq(&scene.simulator.events(&n, "older").await.unwrap());

    // This commit's controllers, as the Deployments' new Pods run them.
    scene.restart_every_controller(Duration::from_secs(1)).await;
    assert_restarted_operator_changed_nothing(&scene, "older", &settled, start).await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    scene
        .simulator
        .verdict(&n, "older", &scenarios::Allowed::none())
        .await
        .unwrap();
}

/// The variable `--test-pod-env` adds to every container.
const RENDERING: &str = "TIDB_OPERATOR_TEST_RENDERING";

/// The operator restarted under a converged cluster (every controller stopped, then started
/// again from another operator image and rendering every Pod differently, as an upgrade of the
/// operator may): no Pod restarted, and no Pod, ConfigMap, PVC, Service, budget, group or instance
/// rewritten; only status may be written. A Pod is restarted when what it is built from changes,
/// not when the operator builds it another way; a Pod that restarts for a reason of its own gets
/// the new way.
#[tokio::test]
async fn restarting_the_operator_under_a_converged_cluster_rewrites_nothing() {
    let mut scene = Scene::start("tidb-restart", 1, true).await;
    let n = scene.n().to_string();
    scene.create_cluster("still", json!({})).await;
    scene.create_pd("still", 3, "v8.5.2").await;
    scene.create_tikv("still", 3, "v8.5.2").await;
    scene.create_tidb("still", 2, "v8.5.2").await;
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;
    scene.wait_group::<TiKVGroup>("tikv", 3, "v8.5.2").await;
    scene.wait_tidb(2, "v8.5.2").await;
    // Settled: two looks of a settled group (30 s each) would show any late write.
    let settled = written_state(&scene).await;
    let start = last_seq(&scene.simulator.events(&n, "still").await.unwrap());

    scene
        .restart_every_controller_with(
            Duration::from_secs(1),
            &[
                "--operator-image=registry.example.com/tidb-operator:next".to_string(),
                // A stand-in for a version that builds Pods differently: every container gets it.
                format!("--test-pod-env={RENDERING}=next"),
            ],
        )
        .await;
    assert_restarted_operator_changed_nothing(&scene, "still", &settled, start).await;

    // A PD Pod deleted by hand comes back with the new operator image's installer, and built
    // the new way.
    let pods: Api<Pod> = Api::namespaced(scene.client.clone(), &n);
    let rendered_anew = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.env.as_ref())
            .is_some_and(|env| {
                env.iter()
                    .any(|e| e.name == RENDERING && e.value.as_deref() == Some("next"))
            })
    };
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    assert!(
        all.iter().all(|p| !rendered_anew(p)),
        "a running Pod was rebuilt the new way"
    );
    let installer = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.name == "handover-install")
            .and_then(|c| c.image.clone())
    };
    let victim = pods
        .list(&ListParams::default().labels("pingcap.com/component=pd"))
        .await
        .unwrap()
        .items
        .remove(0);
    let (name, uid) = (victim.name_any(), victim.uid());
    assert_ne!(
        installer(&victim).as_deref(),
        Some("registry.example.com/tidb-operator:next")
    );
    pods.delete(&name, &Default::default()).await.unwrap();
    wait_until(
        &scene.kubectl(),
        &n,
        "the deleted PD Pod back with the new installer",
        CONVERGE,
        || async {
            let pod = pods.get_opt(&name).await?;
            Ok::<_, kube::Error>(pod.is_some_and(|p| {
                p.uid() != uid
                    && installer(&p).as_deref() == Some("registry.example.com/tidb-operator:next")
                    && rendered_anew(&p)
            }))
        },
    )
    .await
    .unwrap();
    scene.wait_group::<PDGroup>("pd", 3, "v8.5.2").await;

    // What the TiDB Pods are built from changes (their config): they restart, built the new way.
    let before = scene.tidb_pods().await;
    scene
        .patch::<TiDBGroup>(
            GROUP,
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    wait_until(
        &scene.kubectl(),
        &n,
        "every TiDB Pod replaced and built the new way",
        CONVERGE,
        || async {
            let tidb = pods
                .list(&ListParams::default().labels("pingcap.com/component=tidb"))
                .await?
                .items;
            Ok::<_, kube::Error>(
                tidb.len() == before.len()
                    && tidb
                        .iter()
                        .all(|p| rendered_anew(p) && before.get(&p.name_any()) != p.uid().as_ref()),
            )
        },
    )
    .await
    .unwrap();
    scene.wait_tidb(2, "v8.5.2").await;
    scene
        .simulator
        .verdict(&n, "still", &scenarios::Allowed::none())
        .await
        .unwrap();
}
