//! TiCDC on the tidb-controller: the cluster-, pd-, tikv- and tidb-controllers run as processes
//! under their shipped RBAC with the operand simulator, whose TiCDC Pods are captures of one
//! changefeed. The reference's basic TiCDCGroup (two servers) is applied as written beside PD,
//! TiKV and TiDB; one capture is the owner and its instance says so. A version bump rolls every
//! TiCDC Pod exactly once, with a surge, and before each old Pod stops its capture resigned
//! ownership (if it had it) and was drained of every table; a scale 2→1 drains the capture before
//! its Pod goes. A drain that never finishes holds the scale-in until the drain timeout, with the
//! step in the instance's condition, and then the Pod goes. Each scenario ends with the
//! simulator's data-safety verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PDGroup, TiCDC, TiCDCGroup, TiDBGroup, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, api_resource, apply_controller_identity, ensure_crds,
    event_seq, events_of, last_seq, load_manifests, replaced_exactly_once,
};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CONVERGE: Duration = Duration::from_secs(150);
/// The cluster the reference's basic example names.
const CLUSTER: &str = "basic";
/// The TiCDCGroup of the reference's example.
const GROUP: &str = "ticdc";

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    _controllers: Vec<Controller>,
}

impl Scene {
    /// Starts the simulator and the controllers; `tidb_flags` go to the tidb-controller.
    async fn start(prefix: &str, tidb_flags: &[&str]) -> Scene {
        Self::start_with(prefix, tidb_flags, &[]).await
    }

    /// [`Scene::start`] with extra simulator flags.
    async fn start_with(prefix: &str, tidb_flags: &[&str], simulator_flags: &[&str]) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let binaries = [
            "cluster-controller",
            "pd-controller",
            "tikv-controller",
            "tidb-controller",
        ];
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
            let mut flags = simulator.overrides();
            if binary == "tidb-controller" {
                flags.extend(tidb_flags.iter().map(|f| (*f).to_string()));
            }
            controllers.push(
                Controller::start(&cluster, &client, binary, ns.name(), 0, &flags)
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

    async fn create_object<K>(&self, value: Value)
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

    /// A Cluster with one PD, three TiKV stores and one TiDB, and the reference's basic
    /// TiCDCGroup as written.
    async fn create_cluster(&self) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        self.create_object::<Cluster>(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {}
        }))
        .await;
        let group = |kind: &str, name: &str, replicas: i32, volumes: Option<&Value>| {
            let mut spec = json!({"version": "v8.5.2"});
            if let Some(volumes) = volumes {
                spec["volumes"] = volumes.clone();
            }
            json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
                "metadata": {"name": name},
                "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas,
                         "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                         "template": {"spec": spec}}
            })
        };
        self.create_object::<PDGroup>(group("PDGroup", "pd", 1, Some(&volumes)))
            .await;
        self.create_object::<TiKVGroup>(group("TiKVGroup", "tikv", 3, Some(&volumes)))
            .await;
        self.create_object::<TiDBGroup>(group("TiDBGroup", "tidb", 1, None))
            .await;
        let manifests = load_manifests(&["tests/fixtures/reference"]).unwrap();
        let ticdc = manifests
            .iter()
            .find(|m| m.kind() == "TiCDCGroup" && m.label().contains("basic-tiflash-ticdc"))
            .expect("the basic example's TiCDCGroup")
            .value
            .clone();
        let object: DynamicObject = serde_json::from_value(ticdc).unwrap();
        Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            self.n(),
            &api_resource("TiCDCGroup").unwrap(),
        )
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    }

    async fn ticdcs(&self) -> Vec<TiCDC> {
        let mut all = self
            .api::<TiCDC>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        all.sort_by_key(ResourceExt::name_any);
        all
    }

    async fn patch_group(&self, patch: Value) {
        self.api::<TiCDCGroup>()
            .patch(GROUP, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Waits until the TiCDCGroup has `replicas` instances, all Ready and Synced at `version`,
    /// the group says so and is Available, and exactly one instance says it is the owner.
    async fn wait_ready(&self, replicas: usize, version: &str, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async {
                let group = self.api::<TiCDCGroup>().get(GROUP).await?;
                let ticdcs = self
                    .api::<TiCDC>()
                    .list(&ListParams::default())
                    .await?
                    .items;
                let settled = group.status.as_ref().is_some_and(|s| {
                    usize::try_from(s.group.ready_replicas).ok() == Some(replicas)
                        && usize::try_from(s.group.updated_replicas).ok() == Some(replicas)
                        && usize::try_from(s.group.replicas).ok() == Some(replicas)
                }) && conditions::is_true(group.conditions(), conditions::AVAILABLE);
                let instances = ticdcs.len() == replicas
                    && ticdcs.iter().all(|t| {
                        t.spec.template.common.version == version
                            && conditions::is_true(t.conditions(), conditions::READY)
                            && conditions::is_true(t.conditions(), conditions::SYNCED)
                    });
                let owners = ticdcs
                    .iter()
                    .filter(|t| t.status.as_ref().is_some_and(|s| s.is_owner))
                    .count();
                Ok::<_, kube::Error>(settled && instances && owners == 1)
            },
        )
        .await
        .unwrap();
    }

    /// Creates the cluster, waits for the basic example's two TiCDC servers with one owner, and
    /// puts the simulator fault `fault` on the server that is not the owner (the one a scale-in
    /// takes); its name.
    async fn non_owner_under(&self, fault: &str) -> String {
        self.create_cluster().await;
        self.wait_ready(
            2,
            "v8.5.2",
            "the basic example's two TiCDC servers, one owner",
        )
        .await;
        let name = self
            .ticdcs()
            .await
            .into_iter()
            .find(|t| !t.status.as_ref().is_some_and(|s| s.is_owner))
            .map(|t| t.name_any())
            .unwrap();
        self.simulator
            .set_fault(self.n(), CLUSTER, &format!("{fault}/{name}"))
            .await
            .unwrap();
        name
    }

    /// Waits until the TiCDC instance `name` is gone.
    async fn wait_gone(&self, name: &str, what: &str) {
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            what,
            CONVERGE,
            || async { Ok::<_, kube::Error>(self.api::<TiCDC>().get_opt(name).await?.is_none()) },
        )
        .await
        .unwrap();
    }

    async fn events(&self) -> Vec<Value> {
        self.simulator.events(self.n(), CLUSTER).await.unwrap()
    }

    /// The TiCDC Pods.
    async fn pods(&self) -> Result<Vec<Pod>, kube::Error> {
        Ok(self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!(
                "{}={}",
                keys::LABEL_COMPONENT,
                keys::COMPONENT_TICDC
            )))
            .await?
            .items)
    }

    /// The UIDs of the TiCDC Pods.
    async fn pod_uids(&self) -> BTreeSet<String> {
        self.pods()
            .await
            .unwrap()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect()
    }
}

/// The owner the simulator's events name last before event `seq`: elected, or resigned to.
fn owner_before(events: &[Value], seq: u64) -> Option<String> {
    events
        .iter()
        .filter(|e| event_seq(e) < seq)
        .rev()
        .find_map(|e| match e["kind"].as_str() {
            Some("capture_owner_elected") => e["instance"].as_str(),
            Some("capture_owner_resigned") => e["to"].as_str(),
            _ => None,
        })
        .map(str::to_string)
}

/// Checks, from the simulator's events after `start`, that the Pod `uid` stopped once its
/// capture had handed over: had it been the owner, ownership moved away before; it was drained;
/// and it held no table when it stopped.
fn handed_over_before_stop(events: &[Value], start: u64, uid: &str) {
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    let running = events_of(events, "pod_running", &[("uid", uid)]);
    let instance = running
        .first()
        .and_then(|e| e["instance"].as_str())
        .unwrap_or_else(|| panic!("no pod_running for {uid}"))
        .to_string();
    let stopped = events_of(&since, "pod_stopped", &[("uid", uid)]);
    let stop = stopped
        .first()
        .map(|e| event_seq(e))
        .unwrap_or_else(|| panic!("{instance}'s Pod {uid} never stopped"));
    assert_eq!(stopped.len(), 1, "{instance}'s Pod stopped more than once");
    // Whoever owned at the start: ownership left this capture before its Pod stopped.
    let owner_then = owner_before(events, stop);
    assert_ne!(
        owner_then.as_deref(),
        Some(instance.as_str()),
        "{instance} was still the owner when its Pod stopped"
    );
    let drained: Vec<u64> = events_of(
        &since,
        "capture_drain_requested",
        &[("instance", &instance)],
    )
    .iter()
    .map(|e| event_seq(e))
    .collect();
    assert!(
        drained.first().is_some_and(|seq| *seq < stop),
        "{instance} was not drained before its Pod stopped (drain requests at {drained:?}, stop at {stop})"
    );
    let gone = events_of(&since, "capture_gone", &[("instance", &instance)]);
    assert!(
        gone.iter().all(|e| e["tables"].as_u64() == Some(0)),
        "{instance}'s capture still held tables when it stopped: {gone:?}"
    );
}

#[tokio::test]
async fn ticdc_rolls_and_scales_in_after_resigning_and_draining_each_capture() {
    let scene = Scene::start("e2e-ticdc", &[]).await;
    scene.create_cluster().await;
    scene
        .wait_ready(
            2,
            "v8.5.2",
            "the basic example's two TiCDC servers, one owner",
        )
        .await;

    // The owner the instances report is the simulator's owner.
    let state_owner = owner_before(&scene.events().await, u64::MAX);
    let owner = scene
        .ticdcs()
        .await
        .into_iter()
        .find(|t| t.status.as_ref().is_some_and(|s| s.is_owner))
        .map(|t| t.name_any());
    assert_eq!(owner, state_owner);
    for t in scene.ticdcs().await {
        let id = t.status.clone().unwrap_or_default().id;
        assert_eq!(id.len(), 36, "{}: capture ID {id:?}", t.name_any());
    }

    // The config the operator writes: the advertised address and the data directory.
    let name = scene.ticdcs().await[0].name_any();
    let config_map = scene.api::<ConfigMap>().get(&name).await.unwrap();
    let config: toml::Table = config_map.data.unwrap_or_default()["config.toml"]
        .parse()
        .unwrap();
    assert_eq!(
        config["advertise-addr"].as_str().map(str::to_string),
        Some(format!("{name}.ticdc-ticdc-peer.{}:8300", scene.n()))
    );

    // A key the operator owns, set in the user's config, is refused by name on the new
    // instance the roll creates, with a Warning Event; no running server is touched, and
    // taking the key out again removes the refused instance.
    let running = scene.pod_uids().await;
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"config": "addr = \"0.0.0.0:1\"\n"}}}}))
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the managed key refused on the new instance",
        CONVERGE,
        || async {
            let refused = scene.ticdcs().await.into_iter().any(|t| {
                conditions::find(t.conditions(), conditions::SYNCED)
                    .is_some_and(|c| c.reason == "InvalidSpec" && c.message.contains("addr"))
            });
            Ok::<_, kube::Error>(refused)
        },
    )
    .await
    .unwrap();
    let warned = scene
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some("InvalidSpec") && e.type_.as_deref() == Some("Warning")
        });
    assert!(warned, "no Warning Event for the refused config");
    assert_eq!(
        scene.pod_uids().await,
        running,
        "a running TiCDC Pod was touched"
    );
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"config": null}}}}))
        .await;
    scene
        .wait_ready(
            2,
            "v8.5.2",
            "the refused instance gone once the key is taken out",
        )
        .await;
    assert_eq!(
        scene.pod_uids().await,
        running,
        "a running TiCDC Pod was touched"
    );

    // The Cluster counts the TiCDC group and is Ready with it.
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the Cluster Ready with its TiCDC group",
        CONVERGE,
        || async {
            let cluster = scene.api::<Cluster>().get(CLUSTER).await?;
            let counted = cluster.status.as_ref().is_some_and(|s| {
                s.components
                    .iter()
                    .any(|c| format!("{:?}", c.kind) == "TiCDC" && c.replicas == 2)
            });
            Ok::<_, kube::Error>(
                counted && conditions::is_true(cluster.conditions(), conditions::READY),
            )
        },
    )
    .await
    .unwrap();

    // A version bump rolls every Pod once, each after its capture handed over.
    let before = scene.pod_uids().await;
    let start = last_seq(&scene.events().await);
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}}))
        .await;
    scene
        .wait_ready(2, "v8.5.3", "every TiCDC server at v8.5.3")
        .await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the old TiCDC Pods gone",
        CONVERGE,
        || async {
            let now = scene.pod_uids().await;
            Ok::<_, kube::Error>(now.is_disjoint(&before) && now.len() == 2)
        },
    )
    .await
    .unwrap();
    let events = scene.events().await;
    replaced_exactly_once(&events, start, &before, &["ticdc"]).unwrap();
    for uid in &before {
        handed_over_before_stop(&events, start, uid);
    }
    let resigned = events_of(&events, "capture_owner_resigned", &[])
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .count();
    assert!(resigned >= 1, "the owner was replaced without resigning");

    // Scale 2 → 1: the capture that goes is drained first.
    let before = scene.pod_uids().await;
    let start = last_seq(&scene.events().await);
    scene.patch_group(json!({"spec": {"replicas": 1}})).await;
    scene.wait_ready(1, "v8.5.3", "one TiCDC server left").await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the scaled-in TiCDC Pod gone",
        CONVERGE,
        || async { Ok::<_, kube::Error>(scene.pod_uids().await.len() == 1) },
    )
    .await
    .unwrap();
    let after = scene.pod_uids().await;
    let events = scene.events().await;
    for uid in before.difference(&after) {
        handed_over_before_stop(&events, start, uid);
    }

    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_drain_that_never_finishes_holds_the_scale_in_until_the_timeout() {
    let scene = Scene::start("e2e-ticdc-stuck", &["--ticdc-drain-timeout=8s"]).await;
    // The server that is not the owner is the one a scale-in takes; its drain never ends.
    let victim = scene.non_owner_under("ticdc-drain-stuck").await;
    let start = last_seq(&scene.events().await);
    scene.patch_group(json!({"spec": {"replicas": 1}})).await;

    // While the drain goes on, the Pod stays and the instance says so.
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the victim draining",
        CONVERGE,
        || async {
            let t = scene.api::<TiCDC>().get(&victim).await?;
            Ok::<_, kube::Error>(
                conditions::find(t.conditions(), conditions::CAPTURE_DRAINED).is_some_and(|c| {
                    c.status == "False"
                        && c.reason == "DrainingTables"
                        && c.message.contains("left")
                }),
            )
        },
    )
    .await
    .unwrap();
    let pod = scene.api::<Pod>().get(&victim).await.unwrap();
    assert!(
        pod.metadata.deletion_timestamp.is_none(),
        "the Pod went while its capture drained"
    );

    // After the timeout the Pod goes anyway, with a Warning Event naming the timeout.
    scene
        .wait_gone(&victim, "the victim gone after the drain timeout")
        .await;
    let warned = scene
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("DrainTimedOut")
                && e.involved_object.name.as_deref() == Some(victim.as_str())
        });
    assert!(warned, "no DrainTimedOut Event for {victim}");
    let events = scene.events().await;
    let since: Vec<Value> = events
        .iter()
        .filter(|e| event_seq(e) > start)
        .cloned()
        .collect();
    assert_eq!(
        events_of(&since, "capture_drain_requested", &[("instance", &victim)]).len(),
        1
    );
    let gone = events_of(&since, "capture_gone", &[("instance", &victim)]);
    assert!(
        gone.iter()
            .any(|e| e["tables"].as_u64().unwrap_or_default() > 0),
        "the stuck capture should still have held tables when its Pod stopped: {gone:?}"
    );
    scene.wait_ready(1, "v8.5.2", "one TiCDC server left").await;
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A capture that lost its session while its Pod runs (the simulator's `ticdc-down`): its
/// instance is not Ready and the other capture owns every table; the group stays Available. A
/// scale-in that takes it cannot hand anything over: the instance says TiCDC does not answer and
/// keeps its Pod until the drain timeout, then the Pod goes.
#[tokio::test]
async fn a_capture_that_lost_its_session_is_not_ready_and_its_scale_in_waits_for_the_timeout() {
    let scene = Scene::start("e2e-ticdc-down", &["--ticdc-drain-timeout=8s"]).await;
    let down = scene.non_owner_under("ticdc-down").await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the capture without a session not Ready, the group still Available",
        CONVERGE,
        || async {
            let group = scene.api::<TiCDCGroup>().get(GROUP).await?;
            let all = scene.ticdcs().await;
            let not_ready = all.iter().any(|t| {
                t.name_any() == down && !conditions::is_true(t.conditions(), conditions::READY)
            });
            let owner_elsewhere = all
                .iter()
                .any(|t| t.name_any() != down && t.status.as_ref().is_some_and(|s| s.is_owner));
            Ok::<_, kube::Error>(
                not_ready
                    && owner_elsewhere
                    && conditions::is_true(group.conditions(), conditions::AVAILABLE),
            )
        },
    )
    .await
    .unwrap();

    scene.patch_group(json!({"spec": {"replicas": 1}})).await;
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the scale-in waiting for TiCDC to answer",
        CONVERGE,
        || async {
            let t = scene.api::<TiCDC>().get(&down).await?;
            Ok::<_, kube::Error>(
                conditions::find(t.conditions(), conditions::CAPTURE_DRAINED)
                    .is_some_and(|c| c.status == "False" && c.reason == "TiCDCUnreachable"),
            )
        },
    )
    .await
    .unwrap();
    let pod = scene.api::<Pod>().get(&down).await.unwrap();
    assert!(
        pod.metadata.deletion_timestamp.is_none(),
        "the Pod went while TiCDC could still answer"
    );
    scene
        .wait_gone(&down, "the capture's instance gone after the drain timeout")
        .await;
    scene.wait_ready(1, "v8.5.2", "one TiCDC server left").await;
    scene
        .simulator
        .verdict(scene.n(), CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A TiCDC Pod deleted by hand, as `kubectl delete pod` does, with no drain by the operator
/// before it: its preStop hand-over (the simulator playing the kubelet) resigns the owner and
/// drains its tables before the server stops.
#[tokio::test]
async fn a_ticdc_owner_deleted_by_hand_hands_over_before_it_stops() {
    let handover = testkit::workspace_binary("tidb-handover").unwrap();
    let flag = format!("--pre-stop-binary={}", handover.display());
    let scene = Scene::start_with("e2e-ticdc-hand", &[], &[flag.as_str()]).await;
    scene.create_cluster().await;
    scene
        .wait_ready(
            2,
            "v8.5.2",
            "the basic example's two TiCDC servers, one owner",
        )
        .await;
    let owner = scene
        .ticdcs()
        .await
        .into_iter()
        .find(|t| t.status.as_ref().is_some_and(|s| s.is_owner))
        .map(|t| t.name_any())
        .unwrap();
    let pod = scene.api::<Pod>().get(&owner).await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let start = last_seq(&scene.events().await);
    scene
        .api::<Pod>()
        .delete(&owner, &Default::default())
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        scene.n(),
        "the owner's Pod replaced",
        CONVERGE,
        || async { Ok::<_, String>(!scene.pod_uids().await.contains(&uid)) },
    )
    .await
    .unwrap();
    scene
        .wait_ready(2, "v8.5.2", "two TiCDC servers again")
        .await;
    handed_over_before_stop(&scene.events().await, start, &uid);
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

/// Kills the child process when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `TiCDCDynamicSecretSyncer` feature gate. Turned on, the TiCDC Pods roll onto a Pod with the
/// secret-syncer sidecar and its volume, and the group's Pods' ServiceAccount is bound to the
/// shipped Secret-reader ClusterRole (before, it may not list Secrets). Nothing runs inside the
/// test world's Pods, so the syncer binary runs here as that ServiceAccount (impersonated), with
/// the command line the Pod gives it: a Secret with the labels becomes files, follows its
/// changes and goes when deleted; a Secret without them never appears.
#[tokio::test]
async fn under_the_secret_syncer_gate_ticdc_pods_keep_their_labelled_secrets_as_files() {
    let scene = Scene::start("e2e-ticdc-secrets", &[]).await;
    let n = scene.n().to_string();
    let kubectl = scene.cluster.kubectl();
    scene.create_cluster().await;
    scene
        .wait_ready(2, "v8.5.2", "the basic example's two TiCDC servers")
        .await;
    let account = format!("system:serviceaccount:{n}:default");
    let can_list = || {
        kubectl
            .ok(
                &[
                    "auth", "can-i", "list", "secrets", "-n", &n, "--as", &account,
                ],
                None,
            )
            .is_ok_and(|out| out.trim() == "yes")
    };
    assert!(!can_list(), "before the gate the Pods may not list Secrets");
    let before = scene.pod_uids().await;

    let clusters = scene.api::<Cluster>();
    for gates in [
        json!([{"name": "FeatureModification"}]),
        json!([{"name": "FeatureModification"}, {"name": "TiCDCDynamicSecretSyncer"}]),
    ] {
        clusters
            .patch(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"featureGates": gates}})),
            )
            .await
            .unwrap();
    }
    scene
        .patch_group(
            json!({"spec": {"template": {"spec": {"syncer": {"labels": {"sink": "kafka"}}}}}}),
        )
        .await;
    wait_until(
        &kubectl,
        &n,
        "every TiCDC Pod replaced by one with the secret syncer",
        CONVERGE,
        || async {
            let pods = scene.pods().await?;
            Ok::<_, kube::Error>(
                pods.len() == 2
                    && pods.iter().all(|p| {
                        !before.contains(&p.uid().unwrap_or_default())
                            && p.spec.as_ref().is_some_and(|s| {
                                s.init_containers
                                    .iter()
                                    .flatten()
                                    .any(|c| c.name == "ti-resource-syncer")
                            })
                    }),
            )
        },
    )
    .await
    .unwrap();
    scene
        .wait_ready(2, "v8.5.2", "two TiCDC servers with the syncer")
        .await;
    assert!(can_list(), "the Pods' ServiceAccount may list Secrets now");
    let binding = scene
        .api::<k8s_openapi::api::rbac::v1::RoleBinding>()
        .get("ticdc-ticdc")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "tidb-operator:ticdc-secret-reader");
    assert_eq!(binding.owner_references()[0].kind, "TiCDCGroup");

    // The syncer as the Pod runs it, as the Pod's ServiceAccount.
    let pod = scene.pods().await.unwrap().remove(0);
    let sidecar = pod
        .spec
        .unwrap()
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "ti-resource-syncer")
        .unwrap();
    let command = sidecar.command.unwrap();
    assert_eq!(command[0], "/tidb-secret-syncer");
    let labels = command.last().unwrap().clone();
    assert_eq!(
        labels,
        "pingcap.com/cluster=basic,pingcap.com/component=ticdc,pingcap.com/managed-by=tidb-operator,sink=kafka"
    );
    let scratch = std::env::temp_dir().join(format!("secret-syncer-{n}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(scene.cluster.kubeconfig()).unwrap())
            .unwrap();
    for user in config["users"].as_sequence_mut().unwrap() {
        user["user"]["as"] = serde_yaml::Value::String(account.clone());
    }
    let kubeconfig = scratch.join("kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
    let port = scenarios::free_port();
    let files = scratch.join("files");
    let _syncer = Running(
        std::process::Command::new(testkit::workspace_binary("tidb-secret-syncer").unwrap())
            .args(["-d", &files.to_string_lossy(), "-n", &n, "-l", &labels])
            .arg(format!("--health-probe-bind-address=127.0.0.1:{port}"))
            .env("KUBECONFIG", &kubeconfig)
            .spawn()
            .unwrap(),
    );
    let secrets = scene.api::<k8s_openapi::api::core::v1::Secret>();
    let secret = |name: &str, labelled: bool, value: &str| {
        let mut labels = json!({"pingcap.com/managed-by": "tidb-operator",
            "pingcap.com/component": "ticdc", "pingcap.com/cluster": CLUSTER});
        if labelled {
            labels["sink"] = json!("kafka");
        }
        serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json!({
            "metadata": {"name": name, "labels": labels},
            "stringData": {"ca.crt": value}
        }))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &secret("sink-tls", true, "first"))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("unrelated", false, "x"))
        .await
        .unwrap();
    let read =
        |name: &str| std::fs::read_to_string(files.join("secrets").join(name).join("ca.crt")).ok();
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    wait_until(
        &kubectl,
        &n,
        "the labelled Secret as a file, the syncer healthy",
        CONVERGE,
        || async {
            let healthy = reqwest::get(&healthz)
                .await
                .is_ok_and(|r| r.status().is_success());
            Ok::<_, String>(healthy && read("sink-tls").as_deref() == Some("first"))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        read("unrelated"),
        None,
        "a Secret without the labels is not kept"
    );
    secrets
        .patch(
            "sink-tls",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"ca.crt": "renewed"}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        &n,
        "the renewed Secret's file",
        CONVERGE,
        || async { Ok::<_, String>(read("sink-tls").as_deref() == Some("renewed")) },
    )
    .await
    .unwrap();
    secrets
        .delete("sink-tls", &Default::default())
        .await
        .unwrap();
    wait_until(
        &kubectl,
        &n,
        "the deleted Secret's files gone",
        CONVERGE,
        || async { Ok::<_, String>(!files.join("secrets/sink-tls").exists()) },
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    scene
        .simulator
        .verdict(&n, CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
