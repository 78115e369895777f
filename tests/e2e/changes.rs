//! Changes of a group's template that the operator carries out, or refuses, end to end: the pd-
//! and tikv-controllers run as processes under their shipped RBAC with the operand simulator.
//! - `updateStrategy.config: HotReload`: a config change whose keys PD and TiKV take online
//!   reaches every process through their online-config APIs without a restart; a key that cannot
//!   change online, or one the component refuses, restarts the Pods one at a time through the
//!   ordinary safe restart. Each instance's status says which happened.
//! - A version lower than the one a group runs is refused, and nothing is touched, until the
//!   version is set back or the group carries the documented override.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{ConfigChangeStatus, PD, PDGroup, TiKV, TiKVGroup};
use scenarios::{Controller, Simulator, apply_controller_identity, ensure_crds, events_of};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(180);
const CLUSTER: &str = "hot";

const PD_BEFORE: &str = "[log]\nlevel = \"info\"\n[schedule]\nleader-schedule-limit = 4\n";
const PD_ONLINE: &str = "[log]\nlevel = \"warn\"\n[schedule]\nleader-schedule-limit = 8\n";
/// `lease` is read only at start.
const PD_RESTART: &str =
    "lease = 5\n[log]\nlevel = \"warn\"\n[schedule]\nleader-schedule-limit = 8\n";

const TIKV_BEFORE: &str = "[log]\nlevel = \"info\"\n[raftstore]\nmessages-per-tick = 1024\n";
const TIKV_ONLINE: &str = "[log]\nlevel = \"warn\"\n[raftstore]\nmessages-per-tick = 4096\n";
/// `rocksdb` changes online, but TiKV refuses `max-open-files` (fixed at start).
const TIKV_REFUSED: &str = "[log]\nlevel = \"warn\"\n[raftstore]\nmessages-per-tick = 4096\n[rocksdb]\nmax-open-files = 20000\n";

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
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start(&cluster, ns.name()).await.unwrap();
        let mut controllers = Vec::new();
        for binary in ["pd-controller", "tikv-controller"] {
            apply_controller_identity(&cluster, binary).unwrap();
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
            controllers.push(controller);
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

    async fn create(&self, object: Value) {
        let kind = object["kind"].as_str().unwrap().to_string();
        let resource = scenarios::api_resource(&kind).unwrap();
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        Api::<DynamicObject>::namespaced_with(self.client.clone(), self.n(), &resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }

    async fn patch_template(&self, kind: &str, name: &str, spec: Value) {
        let resource = scenarios::api_resource(kind).unwrap();
        let patch = json!({"spec": {"template": {"spec": spec}}});
        Api::<DynamicObject>::namespaced_with(self.client.clone(), self.n(), &resource)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn set_config(&self, kind: &str, name: &str, config: &str) {
        self.patch_template(kind, name, json!({ "config": config }))
            .await;
    }

    /// The Cluster, a PDGroup `pd` and a TiKVGroup `tikv` of three each with these configs,
    /// once every instance is Ready and Synced.
    async fn create_cluster(&self, pd_config: &str, tikv_config: &str) {
        self.create(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {}
        }))
        .await;
        self.create(group("PDGroup", "pd", pd_config)).await;
        self.create(group("TiKVGroup", "tikv", tikv_config)).await;
        self.wait_changes(
            "every PD and TiKV Ready and Synced",
            &[("pd", None), ("tikv", None)],
        )
        .await;
    }

    /// Pod UIDs of a component, by Pod name.
    async fn pod_uids(&self, component: &str) -> BTreeMap<String, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.n());
        let selector = format!("pingcap.com/component={component}");
        pods.list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    /// Waits until every PD and TiKV instance has seen its spec, is Ready and Synced, and
    /// reports the last config change `want` gives for its component.
    async fn wait_changes(&self, what: &str, want: &[(&str, Option<ConfigChangeStatus>)]) {
        let pds: Api<PD> = Api::namespaced(self.client.clone(), self.n());
        let tikvs: Api<TiKV> = Api::namespaced(self.client.clone(), self.n());
        let last = std::sync::Mutex::new(Vec::new());
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let mut seen: Vec<(String, bool, Option<ConfigChangeStatus>)> = Vec::new();
                for pd in pds.list(&ListParams::default()).await?.items {
                    let status = pd.status.clone().unwrap_or_default();
                    let settled = settled(&pd, status.common.observed_generation);
                    seen.push(("pd".into(), settled, status.last_config_change));
                }
                for tikv in tikvs.list(&ListParams::default()).await?.items {
                    let status = tikv.status.clone().unwrap_or_default();
                    let settled = settled(&tikv, status.common.observed_generation);
                    seen.push(("tikv".into(), settled, status.last_config_change));
                }
                let done = seen.len() == 6
                    && seen.iter().all(|(component, settled, change)| {
                        *settled && want.iter().any(|(c, w)| c == component && change == w)
                    });
                *last.lock().unwrap() = seen;
                Ok::<_, kube::Error>(done)
            },
        )
        .await
        .unwrap_or_else(|e| {
            let seen = last.lock().unwrap();
            panic!("{e}; wanted {want:?}, last seen (component, settled, change) {seen:?}")
        });
    }

    /// The simulator's online config changes of a component, as `(instance, items)`.
    async fn config_changes(&self, component: &str) -> Vec<(String, BTreeMap<String, Value>)> {
        let events = self.simulator.events(self.n(), CLUSTER).await.unwrap();
        events_of(&events, "config_changed", &[("component", component)])
            .into_iter()
            .map(|e| {
                let instance = e["instance"].as_str().unwrap_or_default().to_string();
                let items = serde_json::from_value(e["items"].clone()).unwrap();
                (instance, items)
            })
            .collect()
    }

    /// Kubernetes Events of `reason` on objects of `kind`.
    async fn events(&self, kind: &str, reason: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.n());
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some(kind))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    /// The most Pods of `component` not running at once, from the simulator's record.
    async fn most_down_at_once(&self, component: &str) -> usize {
        let events = self.simulator.events(self.n(), CLUSTER).await.unwrap();
        let mut down: BTreeSet<String> = BTreeSet::new();
        let mut running: BTreeSet<String> = BTreeSet::new();
        let mut most = 0;
        for event in &events {
            if event["component"].as_str() != Some(component) {
                continue;
            }
            let instance = event["instance"].as_str().unwrap_or_default().to_string();
            match event["kind"].as_str() {
                Some("pod_running") => {
                    down.remove(&instance);
                    running.insert(instance);
                }
                Some("pod_stopped") if running.contains(&instance) => {
                    down.insert(instance);
                }
                _ => {}
            }
            most = most.max(down.len());
        }
        most
    }
}

/// Ready and Synced by a status that has seen the current spec.
fn settled<K: HasConditions + ResourceExt>(object: &K, observed: i64) -> bool {
    object.meta().generation == Some(observed)
        && conditions::is_true(object.conditions(), conditions::READY)
        && conditions::is_true(object.conditions(), conditions::SYNCED)
}

fn change(method: &str, online: &[&str], restart: &[&str], config: &str) -> ConfigChangeStatus {
    ConfigChangeStatus {
        method: method.into(),
        online_keys: online.iter().map(|k| k.to_string()).collect(),
        restart_keys: restart.iter().map(|k| k.to_string()).collect(),
        config_hash: operator_runtime::online_config::config_hash(config),
    }
}

fn group(kind: &str, name: &str, config: &str) -> Value {
    json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "cluster": {"name": CLUSTER}, "replicas": 3,
            "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
            "template": {"spec": {
                "version": "v8.5.2",
                "config": config,
                "updateStrategy": {"config": "HotReload"},
                "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
            }}
        }
    })
}

#[tokio::test]
async fn online_keys_change_without_a_restart_and_the_rest_restart_one_at_a_time() {
    let scene = Scene::start("hot-reload").await;
    scene.create_cluster(PD_BEFORE, TIKV_BEFORE).await;
    let pods_before = (scene.pod_uids("pd").await, scene.pod_uids("tikv").await);

    // Keys both components take online: no Pod restarts, every process gets them.
    scene.set_config("PDGroup", "pd", PD_ONLINE).await;
    scene.set_config("TiKVGroup", "tikv", TIKV_ONLINE).await;
    let pd_online = change(
        "Online",
        &["log.level", "schedule.leader-schedule-limit"],
        &[],
        PD_ONLINE,
    );
    let tikv_online = change(
        "Online",
        &["log.level", "raftstore.messages-per-tick"],
        &[],
        TIKV_ONLINE,
    );
    scene
        .wait_changes(
            "every PD and TiKV reports an Online config change",
            &[("pd", Some(pd_online)), ("tikv", Some(tikv_online))],
        )
        .await;
    assert_eq!(
        (scene.pod_uids("pd").await, scene.pod_uids("tikv").await),
        pods_before,
        "a change of online keys restarted a Pod"
    );
    let pd_changes = scene.config_changes("pd").await;
    assert!(
        pd_changes.iter().any(|(_, items)| {
            items.get("schedule.leader-schedule-limit") == Some(&json!(8))
                && items.get("log.level") == Some(&json!("warn"))
        }),
        "PD never got the change online: {pd_changes:?}"
    );
    let tikv_changes = scene.config_changes("tikv").await;
    let reached: BTreeSet<&str> = tikv_changes
        .iter()
        .filter(|(_, items)| items.get("raftstore.messages-per-tick") == Some(&json!(4096)))
        .map(|(instance, _)| instance.as_str())
        .collect();
    let tikv_names: BTreeSet<&str> = pods_before.1.keys().map(String::as_str).collect();
    assert_eq!(reached, tikv_names, "every TiKV gets the change online");
    assert!(!scene.events("TiKV", "ConfigApplied").await.is_empty());

    // A key PD reads only at start, and one TiKV refuses online: each Pod restarts once, one
    // store or member at a time.
    scene.set_config("PDGroup", "pd", PD_RESTART).await;
    scene.set_config("TiKVGroup", "tikv", TIKV_REFUSED).await;
    let pd_restart = change("Restart", &[], &["lease"], PD_RESTART);
    let tikv_restart = change("Restart", &[], &["rocksdb.max-open-files"], TIKV_REFUSED);
    scene
        .wait_changes(
            "every PD and TiKV restarted for its config",
            &[("pd", Some(pd_restart)), ("tikv", Some(tikv_restart))],
        )
        .await;
    let pods_after = (scene.pod_uids("pd").await, scene.pod_uids("tikv").await);
    for (before, after) in [
        (&pods_before.0, &pods_after.0),
        (&pods_before.1, &pods_after.1),
    ] {
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>()
        );
        for (name, uid) in before {
            assert_ne!(after.get(name), Some(uid), "{name} was not restarted");
        }
    }
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    for component in ["pd", "tikv"] {
        let stops = events_of(&events, "pod_stopped", &[("component", component)]).len();
        assert_eq!(stops, 3, "each {component} Pod stopped exactly once");
        assert_eq!(
            scene.most_down_at_once(component).await,
            1,
            "two {component} Pods were down at once"
        );
    }
    let told: BTreeSet<String> = scene
        .events("TiKV", "ConfigRejected")
        .await
        .into_iter()
        .filter_map(|e| e.involved_object.name)
        .collect();
    let tikv_names: BTreeSet<String> = pods_before.1.keys().cloned().collect();
    assert_eq!(told, tikv_names, "each TiKV's refusal is told in an Event");
    assert!(
        !scene
            .config_changes("tikv")
            .await
            .iter()
            .any(|(_, items)| items.contains_key("rocksdb.max-open-files")),
        "TiKV took a key it refuses"
    );

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A group's `Synced` reason and message.
fn synced<K: HasConditions>(object: &K) -> (String, String) {
    conditions::find(object.conditions(), conditions::SYNCED)
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_lower_version_is_refused_and_touches_nothing_until_allowed() {
    let scene = Scene::start("downgrade").await;
    scene.create_cluster("", "").await;
    let pods_before = (scene.pod_uids("pd").await, scene.pod_uids("tikv").await);
    let pd_groups: Api<PDGroup> = Api::namespaced(scene.client.clone(), scene.n());
    let tikv_groups: Api<TiKVGroup> = Api::namespaced(scene.client.clone(), scene.n());

    // Lower than what runs, a patch version included: both groups refuse and say why.
    scene
        .patch_template("PDGroup", "pd", json!({"version": "v7.1.0"}))
        .await;
    scene
        .patch_template("TiKVGroup", "tikv", json!({"version": "v8.5.1"}))
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "both groups Synced=False DowngradeRefused",
        CONVERGE,
        || async {
            let pd = synced(&pd_groups.get("pd").await?);
            let tikv = synced(&tikv_groups.get("tikv").await?);
            Ok::<_, kube::Error>(pd.0 == "DowngradeRefused" && tikv.0 == "DowngradeRefused")
        },
    )
    .await
    .unwrap();
    let (_, message) = synced(&pd_groups.get("pd").await.unwrap());
    assert!(
        message.contains("v7.1.0 is lower than v8.5.2")
            && message.contains("core.pingcap.com/allow-downgrade=true"),
        "{message}"
    );
    for kind in ["PDGroup", "TiKVGroup"] {
        let events = scene.events(kind, "DowngradeRefused").await;
        assert!(
            events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
            "no Warning Event on the {kind}"
        );
    }
    let pd_group = pd_groups.get("pd").await.unwrap();
    assert!(
        conditions::is_true(pd_group.conditions(), conditions::READY),
        "the members keep serving, so the group stays Ready"
    );
    // Nothing is touched while refused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        (scene.pod_uids("pd").await, scene.pod_uids("tikv").await),
        pods_before,
        "a refused downgrade restarted a Pod"
    );
    let pds: Api<PD> = Api::namespaced(scene.client.clone(), scene.n());
    let tikvs: Api<TiKV> = Api::namespaced(scene.client.clone(), scene.n());
    let mut versions: Vec<String> = Vec::new();
    for pd in pds.list(&ListParams::default()).await.unwrap().items {
        versions.push(pd.spec.template.common.version);
    }
    for tikv in tikvs.list(&ListParams::default()).await.unwrap().items {
        versions.push(tikv.spec.template.common.version);
    }
    assert!(
        versions.iter().all(|v| v == "v8.5.2"),
        "an instance moved to the lower version: {versions:?}"
    );

    // The override lets PD go down; TiKV set back to what it runs is Synced again untouched.
    let annotate =
        json!({"metadata": {"annotations": {"core.pingcap.com/allow-downgrade": "true"}}});
    pd_groups
        .patch("pd", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    scene
        .patch_template("TiKVGroup", "tikv", json!({"version": "v8.5.2"}))
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "PD at v7.1.0 and both groups Synced",
        CONVERGE,
        || async {
            let pd = pd_groups.get("pd").await?;
            let tikv = tikv_groups.get("tikv").await?;
            let pd_version = pd.status.as_ref().map(|s| s.group.version.clone());
            Ok::<_, kube::Error>(
                pd_version.as_deref() == Some("v7.1.0")
                    && synced(&pd).0 == "Synced"
                    && synced(&tikv).0 == "Synced",
            )
        },
    )
    .await
    .unwrap();
    let pods_after = (scene.pod_uids("pd").await, scene.pod_uids("tikv").await);
    assert_eq!(pods_after.1, pods_before.1, "TiKV restarted");
    for (name, uid) in &pods_before.0 {
        assert_ne!(
            pods_after.0.get(name),
            Some(uid),
            "{name} was not rolled down"
        );
    }

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
