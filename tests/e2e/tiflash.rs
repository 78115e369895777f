//! TiFlash on the tikv-controller: the pd- and tikv-controllers run as processes under their
//! shipped RBAC with the operand simulator. The reference's basic TiFlashGroup is applied as
//! written and converges; the group scales 1→2→3→2. Every TiFlash store registers with PD as
//! `engine=tiflash` and is known by its ID; the scale-in takes one store out through PD, and no
//! Pod or PVC of it goes before PD reports that store Tombstone. The TiKV stores are untouched.
//! The scenario ends with the simulator's data-safety verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PDGroup, TiFlash, TiFlashGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, api_resource, apply_controller_identity, ensure_crds,
    event_seq, events_of, load_manifests,
};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
/// The cluster the reference's basic example names.
const CLUSTER: &str = "basic";

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
        let simulator = Simulator::start_with(&cluster, ns.name(), "200ms", &[])
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

    /// A Cluster with one PD and three TiKV stores, and the reference's basic TiFlashGroup as
    /// written (one store, an empty proxy config).
    async fn create(&self) {
        self.create_with("v8.5.2", &[]).await;
    }

    /// As [`Scene::create`], with every group at `version`, and these `features` as the Cluster's
    /// feature gates and in every group (as the cluster-controller copies them, which does not
    /// run here).
    async fn create_with(&self, version: &str, features: &[&str]) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER},
            "spec": {"featureGates": features.iter().map(|f| json!({"name": f})).collect::<Vec<_>>()}
        }))
        .unwrap();
        self.api::<Cluster>()
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        let pd: PDGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 1, "features": features,
                     "template": {"spec": {"version": version, "volumes": volumes}}}
        }))
        .unwrap();
        self.api::<PDGroup>()
            .create(&PostParams::default(), &pd)
            .await
            .unwrap();
        let tikv: TiKVGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": "tikv"},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": 3, "features": features,
                     "template": {"spec": {"version": version, "volumes": volumes}}}
        }))
        .unwrap();
        self.api::<TiKVGroup>()
            .create(&PostParams::default(), &tikv)
            .await
            .unwrap();
        let manifests = load_manifests(&["tests/fixtures/reference"]).unwrap();
        let mut tiflash = manifests
            .iter()
            .find(|m| m.kind() == "TiFlashGroup" && m.label().contains("basic-tiflash-ticdc"))
            .expect("the basic example's TiFlashGroup")
            .value
            .clone();
        // As the example writes it (the fixture leaves the empty proxy config out).
        tiflash["spec"]["template"]["spec"]["proxyConfig"] = json!("");
        tiflash["spec"]["template"]["spec"]["version"] = json!(version);
        tiflash["spec"]["features"] = json!(features);
        let object: DynamicObject = serde_json::from_value(tiflash).unwrap();
        Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            self.n(),
            &api_resource("TiFlashGroup").unwrap(),
        )
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    }

    async fn tiflashes(&self) -> Vec<TiFlash> {
        self.api::<TiFlash>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    async fn scale(&self, replicas: i32) {
        self.api::<TiFlashGroup>()
            .patch(
                "tiflash",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
    }

    /// Sets the TiFlashGroup template's server `config`.
    async fn set_config(&self, config: &str) {
        self.api::<TiFlashGroup>()
            .patch(
                "tiflash",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"template": {"spec": {"config": config}}}})),
            )
            .await
            .unwrap();
    }

    /// The store ID each TiFlash instance recorded.
    async fn recorded_ids(&self) -> BTreeMap<String, String> {
        self.tiflashes()
            .await
            .iter()
            .map(|t| (t.name_any(), t.status.clone().unwrap_or_default().id))
            .collect()
    }

    /// Waits until the TiFlashGroup has `replicas` ready stores, all Synced, and the three TiKV
    /// stores are ready too.
    async fn wait_ready(&self, replicas: i32, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let group = self.api::<TiFlashGroup>().get("tiflash").await?;
                let tiflashes = self.tiflashes().await;
                let tikvs = self.api::<TiKV>().list(&ListParams::default()).await?.items;
                let ready = group
                    .status
                    .as_ref()
                    .is_some_and(|s| s.group.ready_replicas == replicas)
                    && tiflashes.len() == usize::try_from(replicas).unwrap_or_default()
                    && tiflashes.iter().all(|t| {
                        conditions::is_true(t.conditions(), conditions::READY)
                            && conditions::is_true(t.conditions(), conditions::SYNCED)
                    })
                    && tikvs.len() == 3
                    && tikvs
                        .iter()
                        .all(|t| conditions::is_true(t.conditions(), conditions::READY));
                Ok::<_, kube::Error>(ready)
            },
        )
        .await
        .unwrap();
    }

    /// The simulator's view of every store: ID → (state name, labels).
    async fn stores(&self) -> BTreeMap<String, (String, serde_json::Value)> {
        self.store_fields(|s| {
            (
                s["state_name"].as_str().unwrap_or_default().to_string(),
                s["labels"].clone(),
            )
        })
        .await
    }

    /// The Regions each store holds, learners included, by store ID (as PD counts them).
    async fn region_counts(&self) -> BTreeMap<String, u64> {
        self.store_fields(|s| s["region_count"].as_u64().unwrap_or_default())
            .await
    }

    /// `field` of every store of the simulator's view, by store ID.
    async fn store_fields<T>(
        &self,
        field: impl Fn(&serde_json::Value) -> T,
    ) -> BTreeMap<String, T> {
        let state = self.simulator.state(self.n(), CLUSTER).await.unwrap();
        state["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["id"].as_u64().unwrap_or_default().to_string(), field(s)))
            .collect()
    }

    /// Follows the removal of `instance` (store `id`) until the instance is gone: at every look
    /// while PD does not report the store Tombstone, its Pod and PVC must be there.
    async fn follow_removal(&self, instance: &str, id: &str) -> Vec<String> {
        let deadline = Instant::now() + CONVERGE;
        let mut messages = Vec::new();
        loop {
            let Some(tiflash) = self.api::<TiFlash>().get_opt(instance).await.unwrap() else {
                return messages;
            };
            if let Some(c) = conditions::find(tiflash.conditions(), conditions::OFFLINED)
                && !messages.contains(&c.message)
            {
                messages.push(c.message.clone());
            }
            // The store's state is read after the objects: one not yet Tombstone then means a
            // deletion came too early.
            let (pod, pvc) = scenarios::keeps_pod_and_pvc(&self.client, self.n(), instance)
                .await
                .unwrap();
            let state = self
                .simulator
                .store_state(self.n(), CLUSTER, id)
                .await
                .unwrap();
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
}

#[tokio::test]
async fn tiflash_scales_out_and_in_through_tombstone() {
    let scene = Scene::start("e2e-tiflash").await;
    scene.create().await;
    scene
        .wait_ready(1, "the basic example's TiFlash store serving")
        .await;

    // Both config files, with the addresses the operator owns.
    let name = scene.tiflashes().await[0].name_any();
    let config_map = scene.api::<ConfigMap>().get(&name).await.unwrap();
    let data = config_map.data.unwrap_or_default();
    let config: toml::Table = data["config.toml"].parse().unwrap();
    assert_eq!(
        scenarios::toml_value(&config, "flash.proxy.advertise-addr"),
        Some(format!("{name}.tiflash-tiflash-peer.{}:20170", scene.n()))
    );
    assert_eq!(
        config["mark_cache_size"].as_integer(),
        Some(1_073_741_824),
        "the user's key is kept"
    );
    let proxy: toml::Table = data["proxy.toml"].parse().unwrap();
    assert_eq!(
        scenarios::toml_value(&proxy, "server.status-addr").as_deref(),
        Some("0.0.0.0:20292")
    );

    // A key the operator owns, set in the user's config, is refused by name; the running Pod
    // and its config files are kept.
    let uids = tiflash_pod_uids(&scene).await;
    let original = scene.api::<TiFlashGroup>().get("tiflash").await.unwrap();
    let original_config = original.spec.template.spec.common.config.clone();
    scene
        .set_config("[raft]\npd_addr = \"http://elsewhere:2379\"\n")
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the managed key refused on the instance",
        CONVERGE,
        || async {
            let t = scene.api::<TiFlash>().get(&name).await?;
            Ok::<_, kube::Error>(
                conditions::find(t.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.reason == "InvalidSpec" && c.message.contains("raft.pd_addr")
                }),
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(tiflash_pod_uids(&scene).await, uids, "the Pod is kept");
    let kept = scene.api::<ConfigMap>().get(&name).await.unwrap();
    assert_eq!(
        kept.data.unwrap_or_default()["config.toml"],
        data["config.toml"],
        "the config file is kept"
    );
    scene.set_config(&original_config).await;
    scene
        .wait_ready(1, "the store synced again once the key is gone")
        .await;

    scene.scale(2).await;
    scene.wait_ready(2, "two TiFlash stores").await;
    scene.scale(3).await;
    scene.wait_ready(3, "three TiFlash stores").await;
    let ids = scene.recorded_ids().await;
    assert!(ids.values().all(|id| !id.is_empty()), "{ids:?}");
    let stores = scene.stores().await;
    for id in ids.values() {
        let (state, labels) = &stores[id];
        assert_eq!(state, "Up", "store {id}");
        assert_eq!(labels["engine"], "tiflash", "store {id}: {labels}");
    }
    let tikv_ids: Vec<String> = scene
        .api::<TiKV>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|t| t.status.clone().unwrap_or_default().id)
        .collect();
    for id in &tikv_ids {
        assert!(stores[id].1.get("engine").is_none(), "TiKV store {id}");
    }

    // A table keeps three TiFlash replicas (the placement rule TiDB writes for
    // `ALTER TABLE ... SET TIFLASH REPLICA 3`): 3 → 2 is refused, and nothing is marked.
    let rule_url = format!(
        "{}/clusters/{}/{CLUSTER}/pd/api/v1/config/rule",
        scene.simulator.url,
        scene.n()
    );
    let rule = |count: u64| {
        json!({"group_id": "tiflash", "id": "table-45-r", "role": "learner", "count": count,
               "label_constraints": [{"key": "engine", "op": "in", "values": ["tiflash"]}]})
    };
    scenarios::http_send(reqwest::Method::POST, &rule_url, &rule(3))
        .await
        .unwrap();
    // PD places a learner of every Region on each of the three TiFlash stores.
    let regions = scene.region_counts().await[&tikv_ids[0]];
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a learner of every Region on each TiFlash store",
        CONVERGE,
        || async {
            let counts = scene.region_counts().await;
            Ok::<_, kube::Error>(ids.values().all(|id| counts.get(id) == Some(&regions)))
        },
    )
    .await
    .unwrap();
    scene.scale(2).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the scale-in refused: tables keep 3 TiFlash replicas",
        CONVERGE,
        || async {
            let group = scene.api::<TiFlashGroup>().get("tiflash").await?;
            Ok::<_, kube::Error>(
                conditions::find(group.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.reason == "ScaleInRefused" && c.message.contains("keep 3 TiFlash replicas")
                }),
            )
        },
    )
    .await
    .unwrap();
    assert!(
        scene
            .tiflashes()
            .await
            .iter()
            .all(|t| !t.annotations().contains_key(keys::ANNO_DEFER_DELETE)),
        "a refused scale-in marks no store"
    );

    // Two replicas: one store is marked and taken out through PD, by its ID.
    scenarios::http_send(reqwest::Method::POST, &rule_url, &rule(2))
        .await
        .unwrap();
    let victim = {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let marked = scene
                .tiflashes()
                .await
                .into_iter()
                .find(|t| t.annotations().contains_key(keys::ANNO_DEFER_DELETE));
            if let Some(victim) = marked {
                break victim.name_any();
            }
            assert!(
                Instant::now() < deadline,
                "no TiFlash store was chosen for the scale-in"
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
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let seq = |kind: &str| {
        events_of(&events, kind, &[("store_id", id.as_str())])
            .first()
            .map(|e| event_seq(e))
    };
    let offline = seq("store_deleted").expect("store taken offline");
    let tombstone = seq("store_tombstone").expect("store Tombstone");
    let pod_gone = events_of(&events, "pod_deleted", &[("instance", victim.as_str())])
        .last()
        .map(|e| event_seq(e))
        .expect("Pod deleted");
    assert!(
        offline < tombstone && tombstone < pod_gone,
        "store {id}: offline #{offline}, Tombstone #{tombstone}, Pod of {victim} deleted #{pod_gone}"
    );
    scene
        .wait_ready(2, "two TiFlash stores after the scale-in")
        .await;
    // Its learners were moved before its Tombstone: the two that stay hold one of every Region.
    let counts = scene.region_counts().await;
    for (instance, staying) in ids.iter().filter(|(i, _)| **i != victim) {
        assert_eq!(
            counts.get(staying),
            Some(&regions),
            "{instance} (store {staying})"
        );
    }
    // The TiKV stores were never touched.
    let stores = scene.stores().await;
    for tikv in &tikv_ids {
        assert_eq!(stores[tikv].0, "Up", "TiKV store {tikv}");
    }
    assert!(
        events_of(&events, "store_deleted", &[])
            .iter()
            .all(|e| e["store_id"].as_u64().map(|n| n.to_string()) == Some(id.clone())),
        "only the TiFlash victim was taken offline"
    );

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

/// UIDs of the TiFlash Pods, by instance.
async fn tiflash_pod_uids(scene: &Scene) -> BTreeMap<String, String> {
    let params = ListParams::default().labels(&format!(
        "{}={}",
        keys::LABEL_COMPONENT,
        keys::COMPONENT_TIFLASH
    ));
    pod_uids(scene, &params).await
}

/// UIDs of the Pods `params` selects, by name.
async fn pod_uids(scene: &Scene, params: &ListParams) -> BTreeMap<String, String> {
    scene
        .api::<Pod>()
        .list(params)
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_tiflash_roll_goes_one_store_at_a_time_and_waits_for_down_peers_elsewhere() {
    let scene = Scene::start("e2e-tiflash-roll").await;
    scene.create().await;
    scene.scale(3).await;
    scene.wait_ready(3, "three TiFlash stores").await;

    // A TiKV store has down peers: no TiFlash Pod may restart meanwhile.
    let tikv = scene
        .api::<TiKV>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .clone();
    let down = tikv.name_any();
    let down_id = tikv.status.clone().unwrap_or_default().id;
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, &format!("down-peers/{down}"))
        .await
        .unwrap();
    let before = tiflash_pod_uids(&scene).await;
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let start = events.iter().map(event_seq).max().unwrap_or_default();

    // A config change restarts every TiFlash store.
    scene.set_config("mark_cache_size = 2147483648\n").await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a TiFlash restart held by down peers on the TiKV store",
        CONVERGE,
        || async {
            let held = scene.tiflashes().await.iter().any(|t| {
                conditions::find(t.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.reason == "DownPeersElsewhere" && c.message.contains(&down_id)
                })
            });
            Ok::<_, kube::Error>(held)
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        tiflash_pod_uids(&scene).await,
        before,
        "a TiFlash Pod was recreated while another store had down peers"
    );

    // The peers recover: every store restarts, one at a time.
    scene
        .simulator
        .clear_fault(scene.n(), CLUSTER, &format!("down-peers/{down}"))
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "every TiFlash Pod recreated and the group ready again",
        CONVERGE,
        || async {
            let after = tiflash_pod_uids(&scene).await;
            let group = scene.api::<TiFlashGroup>().get("tiflash").await?;
            let done = after.len() == 3
                && after
                    .iter()
                    .all(|(name, uid)| before.get(name) != Some(uid))
                && group
                    .status
                    .as_ref()
                    .is_some_and(|s| s.group.ready_replicas == 3 && s.group.updated_replicas == 3);
            Ok::<_, kube::Error>(done)
        },
    )
    .await
    .unwrap();
    scene
        .wait_ready(3, "three TiFlash stores after the roll")
        .await;

    // From the simulator's log: never two TiFlash Pods down at once, each restarted once.
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let mut down_now: Vec<String> = Vec::new();
    let mut restarts: BTreeMap<String, usize> = BTreeMap::new();
    for event in events.iter().filter(|e| event_seq(e) > start) {
        if event["component"] != "tiflash" {
            continue;
        }
        let instance = event["instance"].as_str().unwrap_or_default().to_string();
        match event["kind"].as_str() {
            Some("pod_stopped") if !down_now.contains(&instance) => {
                down_now.push(instance.clone());
                *restarts.entry(instance).or_default() += 1;
                assert!(
                    down_now.len() <= 1,
                    "two TiFlash Pods down at once: {down_now:?}"
                );
            }
            Some("pod_running") => down_now.retain(|i| *i != instance),
            _ => {}
        }
    }
    assert_eq!(
        restarts.keys().cloned().collect::<Vec<_>>(),
        before.keys().cloned().collect::<Vec<_>>(),
        "every TiFlash store restarted"
    );
    assert!(restarts.values().all(|n| *n == 1), "{restarts:?}");

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

/// TiFlash is Ready only once it reports its store `Running` (`/tiflash/store-status`, as the
/// reference asks): PD lists a store Up as soon as its proxy registers, before its storage
/// serves. A store Up in PD that TiFlash reports `Ready` is not Ready, says why, and a roll
/// does not go past it; once it runs, the roll finishes.
#[tokio::test]
async fn a_store_tiflash_does_not_report_running_is_not_ready_and_holds_the_roll() {
    let scene = Scene::start("e2e-tiflash-running").await;
    scene.create().await;
    scene.scale(2).await;
    scene.wait_ready(2, "two TiFlash stores").await;
    let ids = scene.recorded_ids().await;
    let names: Vec<String> = ids.keys().cloned().collect();
    let (stuck, other) = (names[0].clone(), names[1].clone());
    let fault = format!("tiflash-not-running/{stuck}");
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, &fault)
        .await
        .unwrap();

    let not_running = |t: &TiFlash| {
        conditions::find(t.conditions(), conditions::READY).is_some_and(|c| {
            c.status == "False"
                && c.reason == "StoreNotRunning"
                && c.message.contains("\"Ready\", not Running")
        })
    };
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the store TiFlash reports Ready not Ready, the group one store short",
        CONVERGE,
        || async {
            let stuck_now = scene.api::<TiFlash>().get(&stuck).await?;
            let group = scene.api::<TiFlashGroup>().get("tiflash").await?;
            Ok::<_, kube::Error>(
                not_running(&stuck_now)
                    && group
                        .status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas == 1),
            )
        },
    )
    .await
    .unwrap();
    // PD still lists the store Up: the readiness is TiFlash's own answer.
    let (state, _) = scene.stores().await[&ids[&stuck]].clone();
    assert_eq!(state, "Up", "PD's view of store {}", ids[&stuck]);

    // A config change: the store that does not serve restarts first (it is down already), and
    // the roll waits for it before the other store.
    let before = tiflash_pod_uids(&scene).await;
    scene.set_config("mark_cache_size = 2147483648\n").await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the roll waiting for the restarted store before the other",
        CONVERGE,
        || async {
            let group = scene.api::<TiFlashGroup>().get("tiflash").await?;
            let waiting = conditions::find(group.conditions(), conditions::SYNCED)
                .is_some_and(|c| c.message.contains(&format!("before updating {other}")));
            let now = tiflash_pod_uids(&scene).await;
            Ok::<_, kube::Error>(waiting && now.get(&stuck) != before.get(&stuck))
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let now = tiflash_pod_uids(&scene).await;
    assert_eq!(
        now.get(&other),
        before.get(&other),
        "{other} restarted while {stuck} did not serve"
    );
    let stuck_now = scene.api::<TiFlash>().get(&stuck).await.unwrap();
    assert!(
        not_running(&stuck_now),
        "{stuck} after its restart: {:?}",
        conditions::find(stuck_now.conditions(), conditions::READY)
    );

    // TiFlash runs the store again: the roll finishes.
    scene
        .simulator
        .clear_fault(scene.n(), CLUSTER, &fault)
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "both TiFlash Pods recreated",
        CONVERGE,
        || async {
            let now = tiflash_pod_uids(&scene).await;
            Ok::<_, kube::Error>(
                now.len() == 2 && now.iter().all(|(name, uid)| before.get(name) != Some(uid)),
            )
        },
    )
    .await
    .unwrap();
    scene
        .wait_ready(2, "two TiFlash stores after the roll")
        .await;
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

/// With `UseTiKVReadyAPI` and `UseTiFlashReadyAPI`, every TiKV and TiFlash Pod's readiness
/// probe asks the server's own ready API, and so does the instance's `Ready`: a store PD lists Up
/// whose ready API answers 500 is not Ready (`StoreNotReady`) and its group is one short; once it
/// answers 200 it is Ready again, with nothing restarted.
#[tokio::test]
async fn with_the_ready_api_gates_a_store_is_ready_only_when_it_says_so() {
    let scene = Scene::start("e2e-store-ready").await;
    let features = [
        "UseTiKVReadyAPI",
        "UseTiFlashReadyAPI",
        "TerminableLogTailer",
    ];
    scene.create_with("v9.0.0", &features).await;
    scene
        .wait_ready(1, "one TiFlash store and three TiKV stores")
        .await;
    let pods = scene
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let uids = pod_uids(&scene, &ListParams::default()).await;
    for pod in &pods.items {
        let component = pod.labels().get(keys::LABEL_COMPONENT).cloned();
        let path = match component.as_deref() {
            Some("tikv") => "127.0.0.1:20180/ready",
            Some("tiflash") => "127.0.0.1:20292/tiflash/readyz",
            _ => continue,
        };
        let probe = pod.spec.as_ref().unwrap().containers[0]
            .readiness_probe
            .clone()
            .unwrap();
        let command = probe.exec.and_then(|e| e.command).unwrap_or_default();
        assert!(
            command.iter().any(|c| c.contains(path)),
            "{}: {command:?}",
            pod.name_any()
        );
        // `TerminableLogTailer`: TiFlash's log tailers stop on SIGTERM.
        for tailer in pod.spec.as_ref().unwrap().init_containers.iter().flatten() {
            let command = tailer.command.clone().unwrap_or_default().join(" ");
            if command.contains("tail -n0 -F") {
                assert!(command.contains("trap"), "{}: {command}", tailer.name);
            }
        }
    }

    let kv = scene
        .api::<TiKV>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .name_any();
    let flash = scene.tiflashes().await[0].name_any();
    let faults = [
        format!("tikv-not-ready/{kv}"),
        format!("tiflash-not-running/{flash}"),
    ];
    for fault in &faults {
        scene
            .simulator
            .set_fault(scene.n(), CLUSTER, fault)
            .await
            .unwrap();
    }
    let not_ready = |conds: &[Condition], path: &str| {
        conditions::find(conds, conditions::READY).is_some_and(|c| {
            c.status == "False" && c.reason == "StoreNotReady" && c.message.contains(path)
        })
    };
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the TiKV and the TiFlash whose ready API answers 500 not Ready, each group one short",
        CONVERGE,
        || async {
            let tikv = scene.api::<TiKV>().get(&kv).await?;
            let tiflash = scene.api::<TiFlash>().get(&flash).await?;
            let kv_group = scene.api::<TiKVGroup>().get("tikv").await?;
            let flash_group = scene.api::<TiFlashGroup>().get("tiflash").await?;
            Ok::<_, kube::Error>(
                not_ready(tikv.conditions(), "(/ready)")
                    && not_ready(tiflash.conditions(), "(/tiflash/readyz)")
                    && kv_group
                        .status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas == 2)
                    && flash_group
                        .status
                        .as_ref()
                        .is_some_and(|s| s.group.ready_replicas == 0),
            )
        },
    )
    .await
    .unwrap();
    // PD still lists both stores Up: the readiness is the servers' own answer.
    let states: Vec<String> = scene.stores().await.into_values().map(|(s, _)| s).collect();
    assert!(states.iter().all(|s| s == "Up"), "{states:?}");

    for fault in &faults {
        scene
            .simulator
            .clear_fault(scene.n(), CLUSTER, fault)
            .await
            .unwrap();
    }
    scene.wait_ready(1, "every store Ready again").await;
    let now = pod_uids(&scene, &ListParams::default()).await;
    assert_eq!(now, uids, "nothing restarted");
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}

/// A new version applied to PD, TiKV and TiFlash at once rolls them in the reference's order:
/// PD, then TiFlash, then TiKV (TiKV waits for PD and TiFlash), from the simulator's log; a
/// TiFlash roll that cannot finish holds TiKV's.
#[tokio::test]
async fn a_version_bump_of_every_group_at_once_rolls_pd_then_tiflash_then_tikv() {
    let scene = Scene::start("e2e-tiflash-order").await;
    scene.create().await;
    scene.wait_ready(1, "one TiFlash store").await;
    let start = scenarios::last_seq(&scene.simulator.events(scene.n(), CLUSTER).await.unwrap());

    // TiFlash's new Pod gets an image that is never pulled, so TiFlash cannot finish: TiKV must
    // not start meanwhile.
    let upgrade = json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}});
    let stuck = json!({"spec": {"template": {"spec": {
        "version": "v8.5.3", "image": "registry.invalid/pingcap/tiflash"}}}});
    let params = PatchParams::default();
    scene
        .api::<TiKVGroup>()
        .patch("tikv", &params, &Patch::Merge(&upgrade))
        .await
        .unwrap();
    scene
        .api::<TiFlashGroup>()
        .patch("tiflash", &params, &Patch::Merge(&stuck))
        .await
        .unwrap();
    scene
        .api::<PDGroup>()
        .patch("pd", &params, &Patch::Merge(&upgrade))
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "TiFlash's Pod restarted onto the image that is never pulled",
        CONVERGE,
        || async { Ok::<_, kube::Error>(stopped_since(&scene, start, "tiflash").await) },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !stopped_since(&scene, start, "tikv").await,
        "a TiKV store restarted while TiFlash had not finished its upgrade"
    );
    let fixed = json!({"spec": {"template": {"spec": {"image": null}}}});
    scene
        .api::<TiFlashGroup>()
        .patch("tiflash", &params, &Patch::Merge(&fixed))
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "PD, TiKV and TiFlash on v8.5.3",
        CONVERGE,
        || async {
            let on_new = |status: Option<&operator_api::core::ComponentGroupStatus>, n: i32| {
                status.is_some_and(|s| {
                    s.group.version == "v8.5.3"
                        && s.group.ready_replicas == n
                        && s.common.current_revision == s.common.update_revision
                })
            };
            let pd = scene.api::<PDGroup>().get("pd").await?;
            let tikv = scene.api::<TiKVGroup>().get("tikv").await?;
            let tiflash = scene.api::<TiFlashGroup>().get("tiflash").await?;
            Ok::<_, kube::Error>(
                on_new(pd.status.as_ref(), 1)
                    && on_new(tikv.status.as_ref(), 3)
                    && on_new(tiflash.status.as_ref(), 1),
            )
        },
    )
    .await
    .unwrap();

    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    let seqs = |kind: &str, component: &str| -> Vec<u64> {
        scenarios::events_of(&events, kind, &[("component", component)])
            .iter()
            .map(|e| scenarios::event_seq(e))
            .filter(|s| *s > start)
            .collect()
    };
    let last = |v: Vec<u64>| v.into_iter().max().unwrap_or_default();
    let first = |v: Vec<u64>| v.into_iter().min().unwrap_or(u64::MAX);
    let (pd_back, tiflash_stopped) = (
        last(seqs("pod_running", "pd")),
        first(seqs("pod_stopped", "tiflash")),
    );
    let (tiflash_back, tikv_stopped) = (
        last(seqs("pod_running", "tiflash")),
        first(seqs("pod_stopped", "tikv")),
    );
    assert!(
        pd_back > 0 && pd_back < tiflash_stopped,
        "TiFlash stopped (#{tiflash_stopped}) before PD ran the new version (#{pd_back})"
    );
    assert!(
        tiflash_back > 0 && tiflash_back < tikv_stopped && tikv_stopped != u64::MAX,
        "a TiKV store stopped (#{tikv_stopped}) before TiFlash ran the new version (#{tiflash_back})"
    );
    // The scene's PD has one member: while it restarts onto the new version PD has no leader
    // by nature, for as long as the restart takes on a loaded machine. What must hold is the data
    // and the Regions' leaders.
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none().pd_quorum_loss())
        .await
        .unwrap();
}

/// Whether a Pod of `component` stopped after simulator event `start`.
async fn stopped_since(scene: &Scene, start: u64, component: &str) -> bool {
    let events = scene.simulator.events(scene.n(), CLUSTER).await.unwrap();
    events_of(&events, "pod_stopped", &[("component", component)])
        .iter()
        .any(|e| event_seq(e) > start)
}

/// A TiFlash store that PD reports Down past the failover period gets a replacement; the failed
/// instance keeps its Pod and PVC and says why; once its store is Up again it leaves through PD
/// (Offline, then Tombstone, before its Pod and PVC go) and the replacement stays.
#[tokio::test]
async fn a_down_tiflash_store_is_replaced_and_leaves_through_pd_once_it_is_back() {
    let scene = Scene::start("e2e-tiflash-failover").await;
    scene.create().await;
    scene
        .wait_ready(1, "the basic example's TiFlash store serving")
        .await;
    // Three stores, so that one Down is a failure, not an outage of TiFlash.
    scene
        .api::<TiFlashGroup>()
        .patch(
            "tiflash",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3, "failover": {"period": "3s"}}})),
        )
        .await
        .unwrap();
    scene.wait_ready(3, "three TiFlash stores").await;
    let ids = scene.recorded_ids().await;
    let failed = ids.keys().next().unwrap().clone();
    let fault = format!("store-down/{failed}");
    scene
        .simulator
        .set_fault(scene.n(), CLUSTER, &fault)
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "a replacement TiFlash store serving and the failed one marked",
        CONVERGE,
        || async {
            let all = scene.tiflashes().await;
            let marked = all.iter().any(|t| {
                t.name_any() == failed
                    && t.annotations().contains_key(keys::ANNO_FAILED_OVER)
                    && conditions::is_true(t.conditions(), "FailedOver")
            });
            let serving = all
                .iter()
                .filter(|t| !ids.contains_key(&t.name_any()))
                .filter(|t| conditions::is_true(t.conditions(), conditions::READY))
                .count();
            Ok::<_, kube::Error>(marked && serving == 1 && all.len() == 4)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        scenarios::keeps_pod_and_pvc(&scene.client, scene.n(), &failed)
            .await
            .unwrap(),
        (true, true),
        "the failed store keeps its Pod and PVC"
    );
    let replacement = scene
        .tiflashes()
        .await
        .iter()
        .map(ResourceExt::name_any)
        .find(|n| !ids.contains_key(n))
        .unwrap();

    // Back Up: it leaves through PD, the replacement stays.
    scene
        .simulator
        .clear_fault(scene.n(), CLUSTER, &fault)
        .await
        .unwrap();
    scene.follow_removal(&failed, &ids[&failed]).await;
    scene
        .wait_ready(3, "three TiFlash stores after the recovery")
        .await;
    let names: Vec<String> = scene
        .tiflashes()
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(
        names.contains(&replacement) && !names.contains(&failed),
        "{names:?}"
    );
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap();
}
