//! PD end to end: the pd-controller runs as processes under its shipped RBAC against the local
//! control plane, with the operand simulator standing in for PD. Each scenario drives it the way a
//! user would (apply, patch, scale) and watches the result through the API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PD, PDGroup};
use operator_api::keys;
use scenarios::{Controller, Simulator, apply_controller_identity, ensure_crds};
use serde_json::{Value, json};
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

/// A running test: namespace, simulator and pd-controller replicas.
struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    controllers: Vec<Controller>,
}

impl Scene {
    async fn start(prefix: &str, replicas: usize) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        apply_controller_identity(&cluster, "pd-controller").unwrap();
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start(&cluster, ns.name()).await.unwrap();
        let mut controllers = Vec::new();
        for replica in 0..replicas {
            controllers.push(
                Controller::start(
                    &cluster,
                    &client,
                    "pd-controller",
                    ns.name(),
                    replica,
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

    fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    fn groups(&self) -> Api<PDGroup> {
        Api::namespaced(self.client.clone(), self.n())
    }

    fn pds(&self) -> Api<PD> {
        Api::namespaced(self.client.clone(), self.n())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.n())
    }

    async fn create_cluster(&self, name: &str) {
        self.create_cluster_with(name, json!({})).await;
    }

    /// A Cluster `name` with this `spec`.
    async fn create_cluster_with(&self, name: &str, spec: Value) {
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        Api::<Cluster>::namespaced(self.client.clone(), self.n())
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
    }

    async fn create_group(&self, cluster: &str, replicas: i32, template: Value) {
        self.create_group_with(cluster, replicas, template, json!({}))
            .await;
    }

    /// [`Scene::create_group`], with the fields of `extra` added to the group's spec.
    async fn create_group_with(&self, cluster: &str, replicas: i32, template: Value, extra: Value) {
        let mut spec = json!({
            "version": "v8.5.2",
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}],
            "config": "[log]\nlevel = \"info\"\n"
        });
        if let (Some(base), Some(extra)) = (spec.as_object_mut(), template.as_object()) {
            base.extend(extra.clone());
        }
        let mut group = json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": {"name": "pd"},
            "spec": {
                "cluster": {"name": cluster}, "replicas": replicas,
                "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                "schedulePolicies": [{"type": "EvenlySpread", "evenlySpread": {"topologies": [
                    {"topology": {"topology.kubernetes.io/zone": "zone-a"}},
                    {"topology": {"topology.kubernetes.io/zone": "zone-b"}},
                    {"topology": {"topology.kubernetes.io/zone": "zone-c"}}
                ]}}],
                "template": {"spec": spec}
            }
        });
        if let (Some(spec), Some(extra)) = (group["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let group: PDGroup = serde_json::from_value(group).unwrap();
        self.groups()
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
    }

    async fn patch_group(&self, patch: Value) {
        self.groups()
            .patch("pd", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Waits until the group has `replicas` PD instances, all Ready and on `version`, the group is
    /// Ready and Synced, and PD has exactly one leader among them.
    async fn wait_converged(&self, replicas: usize, version: &str, timeout: Duration) {
        let what = format!("PDGroup pd with {replicas} ready members on {version} and one leader");
        wait_until(&self.kubectl(), self.n(), &what, timeout, || async {
            let group = self.groups().get("pd").await?;
            let pds = self.pds().list(&ListParams::default()).await?.items;
            let status = group.status.clone().unwrap_or_default();
            let members_ready = pds.len() == replicas
                && pds
                    .iter()
                    .all(|pd| conditions::is_true(pd.conditions(), conditions::READY))
                && pds
                    .iter()
                    .all(|pd| pd.spec.template.common.version == version);
            let leaders = pds
                .iter()
                .filter(|pd| pd.status.as_ref().is_some_and(|s| s.is_leader))
                .count();
            Ok::<_, kube::Error>(
                members_ready
                    && leaders == 1
                    && conditions::is_true(group.conditions(), conditions::READY)
                    && conditions::is_true(group.conditions(), conditions::SYNCED)
                    && status.group.version == version
                    && usize::try_from(status.group.ready_replicas).unwrap_or(0) == replicas,
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
    }

    /// Members PD (the simulator) reports for the cluster.
    async fn members(&self, cluster: &str) -> BTreeSet<String> {
        let state = self
            .simulator
            .state(self.n(), cluster)
            .await
            .unwrap_or_default();
        state
            .get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// UIDs of the PD Pods by name.
    async fn pod_uids(&self) -> BTreeMap<String, String> {
        self.pods()
            .list(&ListParams::default().labels("pingcap.com/component=pd"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.controllers.iter().enumerate() {
            let log = c.process.output();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- pd-controller-{i} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

const CONVERGE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn three_members_come_up_then_scale_out_and_in_through_pd() {
    let scene = Scene::start("pd-scale", 1).await;
    scene.create_cluster("basic").await;
    scene.create_group("basic", 3, json!({})).await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    assert_eq!(
        scene.members("basic").await.len(),
        3,
        "PD reports three members"
    );

    // Idle: a reconcile with nothing to change makes no write.
    let controller = &scene.controllers[0];
    let writes = |text: &str| {
        ["create", "update", "patch", "delete"]
            .iter()
            .map(|verb| {
                // The leader-election Lease is renewed every few seconds; it is not the
                // reconcile's doing.
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
    // Touch every object so each is reconciled again, without changing anything it acts on.
    scene
        .patch_group(json!({"metadata": {"annotations": {"test/touch": "1"}}}))
        .await;
    for pd in scene.pds().list(&ListParams::default()).await.unwrap() {
        scene
            .pds()
            .patch(
                &pd.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"test/touch": "1"}}})),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = controller.metrics().await.unwrap();
    let reconciles_after = scenarios::metric_sum(&after, "tidb_operator_reconcile_total", &[]);
    assert!(
        reconciles_after >= reconciles_before + 4.0,
        "the touched objects were reconciled"
    );
    assert_eq!(
        writes(&after),
        writes(&before),
        "idle reconciles wrote something:\n{after}"
    );

    // Scale out: two members join.
    scene
        .kubectl()
        .ok(
            &["scale", "-n", scene.n(), "pdgroup/pd", "--replicas=5"],
            None,
        )
        .unwrap();
    scene.wait_converged(5, "v8.5.2", CONVERGE).await;
    assert_eq!(scene.members("basic").await.len(), 5);
    let five: BTreeSet<String> = scene
        .pds()
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();

    // Scale in: two members leave PD, then their instances, Pods and PVCs go.
    scene
        .kubectl()
        .ok(
            &["scale", "-n", scene.n(), "pdgroup/pd", "--replicas=3"],
            None,
        )
        .unwrap();
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let three: BTreeSet<String> = scene
        .pds()
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();
    let removed: Vec<&String> = five.difference(&three).collect();
    assert_eq!(removed.len(), 2);
    let members = scene.members("basic").await;
    assert_eq!(
        members, three,
        "PD's members are exactly the remaining instances"
    );
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "removed members' Pods and PVCs gone",
        Duration::from_secs(60),
        || async {
            let pods = scene.pod_uids().await;
            let claims = Api::<PersistentVolumeClaim>::namespaced(scene.client.clone(), scene.n())
                .list(&ListParams::default())
                .await?
                .items;
            let leftover = removed.iter().any(|r| {
                pods.contains_key(*r) || claims.iter().any(|c| c.name_any() == format!("data-{r}"))
            });
            Ok::<_, kube::Error>(!leftover && claims.len() == 3)
        },
    )
    .await
    .unwrap();
    scene
        .simulator
        .verdict(scene.n(), "basic", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The template changed again in the middle of a roll (a version, then a config change while the
/// first member restarts): the roll moves on to the newest template, never two members down at
/// once; a member already moved restarts once more, the others go straight to the newest; every
/// member ends on the new version with the new config.
#[tokio::test]
async fn a_template_changed_mid_roll_rolls_on_to_the_newest_one_member_at_a_time() {
    let scene = Scene::start("pd-midroll", 1).await;
    scene.create_cluster("mid").await;
    scene.create_group("mid", 3, json!({})).await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let before = scene.pod_uids().await;
    let start = last_seq(&scene.simulator.events(scene.n(), "mid").await.unwrap());

    scene
        .patch_group(json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}}))
        .await;
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "the first PD Pod replaced",
        CONVERGE,
        || async {
            let now = scene.pod_uids().await;
            Ok::<_, kube::Error>(before.iter().any(|(name, uid)| now.get(name) != Some(uid)))
        },
    )
    .await
    .unwrap();
    let midway = scene.pod_uids().await;
    assert!(
        before
            .iter()
            .filter(|(n, u)| midway.get(*n) != Some(*u))
            .count()
            < 3,
        "the roll finished before the template could change again"
    );
    scene
        .patch_group(
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    scene.wait_converged(3, "v8.5.3", CONVERGE).await;

    // Every member runs the newest template: the new version and the new config.
    let config_maps: Api<ConfigMap> = Api::namespaced(scene.client.clone(), scene.n());
    for name in before.keys() {
        let text = config_maps
            .get(name)
            .await
            .unwrap()
            .data
            .unwrap_or_default()
            .remove("config.toml")
            .unwrap_or_default();
        assert!(text.contains("level = \"warn\""), "{name}:\n{text}");
    }
    // The simulator sees the Pods the API shows before its log is read.
    let after = scene.pod_uids().await;
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "the simulator sees the new PD Pods running",
        Duration::from_secs(30),
        || async {
            let events = scene.simulator.events(scene.n(), "mid").await?;
            Ok::<_, String>(after.values().all(|uid| {
                events.iter().any(|e| {
                    e.get("kind").and_then(Value::as_str) == Some("pod_running")
                        && e.get("uid").and_then(Value::as_str) == Some(uid.as_str())
                })
            }))
        },
    )
    .await
    .unwrap();
    let events = scene.simulator.events(scene.n(), "mid").await.unwrap();
    let history = pod_history(&events, start);
    assert_eq!(
        history.max_down_at_once, 1,
        "more than one PD member was down at once: {:?}",
        history.stopped
    );
    for name in before.keys() {
        let runs = history.uids.get(name).map_or(0, BTreeSet::len);
        assert!(
            (2..=3).contains(&runs),
            "{name} ran with {runs} UIDs: recreated once, or twice when it had moved to the first change"
        );
    }
    scene
        .simulator
        .verdict(scene.n(), "mid", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn hot_reload_updates_the_config_map_and_restarts_nothing() {
    let scene = Scene::start("pd-hot", 1).await;
    scene.create_cluster("hot").await;
    scene
        .create_group("hot", 3, json!({"updateStrategy": {"config": "HotReload"}}))
        .await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let uids = scene.pod_uids().await;
    assert_eq!(uids.len(), 3);

    scene
        .patch_group(
            json!({"spec": {"template": {"spec": {"config": "[log]\nlevel = \"warn\"\n"}}}}),
        )
        .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(scene.client.clone(), scene.n());
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "every ConfigMap has the new log level",
        CONVERGE,
        || async {
            let mut updated = 0;
            for name in uids.keys() {
                let cm = config_maps.get(name).await?;
                let text = cm
                    .data
                    .unwrap_or_default()
                    .get("config.toml")
                    .cloned()
                    .unwrap_or_default();
                if text.contains("level = \"warn\"") {
                    updated += 1;
                }
            }
            Ok::<_, kube::Error>(updated == 3)
        },
    )
    .await
    .unwrap();
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        scene.pod_uids().await,
        uids,
        "a HotReload config change restarted a Pod"
    );
    scene
        .simulator
        .verdict(scene.n(), "hot", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// With the `UsePDReadyAPI` gate, every PD Pod's readiness probe asks PD's ready API on the
/// member's own port, and a member is Ready only while that API says so: while PD answers 500
/// (Regions not loaded) every member says `RegionsNotLoaded` and the group is not Ready, though
/// PD reports them healthy; once it answers 200 they are Ready again. Nothing restarts.
#[tokio::test]
async fn with_the_ready_api_gate_a_member_is_ready_only_when_pd_says_so() {
    let scene = Scene::start("pd-ready", 1).await;
    scene
        .create_cluster_with(
            "ready",
            json!({"featureGates": [{"name": "UsePDReadyAPI"}]}),
        )
        .await;
    scene
        .create_group_with(
            "ready",
            3,
            json!({}),
            json!({"features": ["UsePDReadyAPI"]}),
        )
        .await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let uids = scene.pod_uids().await;
    for pod in scene.pods().list(&ListParams::default()).await.unwrap() {
        let probe = pod.spec.unwrap().containers[0]
            .readiness_probe
            .clone()
            .unwrap();
        let command = probe.exec.and_then(|e| e.command).unwrap_or_default();
        assert!(
            command
                .iter()
                .any(|c| c.contains("127.0.0.1:2379/pd/api/v2/ready")),
            "{command:?}"
        );
    }

    scene
        .simulator
        .set_fault(scene.n(), "ready", "pd-regions-not-loaded")
        .await
        .unwrap();
    let pds = scene.pds();
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "every PD member RegionsNotLoaded",
        CONVERGE,
        || async {
            let list = pds.list(&ListParams::default()).await?;
            Ok::<_, kube::Error>(
                list.items.len() == 3
                    && list.items.iter().all(|pd| {
                        conditions::find(pd.conditions(), conditions::READY)
                            .is_some_and(|c| c.status == "False" && c.reason == "RegionsNotLoaded")
                    }),
            )
        },
    )
    .await
    .unwrap();
    let groups = scene.groups();
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "PDGroup pd not Ready",
        CONVERGE,
        || async {
            let group = groups.get("pd").await?;
            Ok::<_, kube::Error>(!conditions::is_true(group.conditions(), conditions::READY))
        },
    )
    .await
    .unwrap();

    scene
        .simulator
        .clear_fault(scene.n(), "ready", "pd-regions-not-loaded")
        .await
        .unwrap();
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    assert_eq!(scene.pod_uids().await, uids, "nothing restarted");
    scene
        .simulator
        .verdict(scene.n(), "ready", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until PDGroup `group` is `Synced=False` for `reason` with a message containing `says`,
/// and checks that a Warning Event gives that reason too.
async fn wait_group_refused(scene: &Scene, group: &str, reason: &str, says: &str) {
    wait_until(
        &scene.kubectl(),
        scene.n(),
        &format!("PDGroup {group} Synced=False {reason}"),
        Duration::from_secs(30),
        || async {
            let group = scene.groups().get(group).await?;
            Ok::<_, kube::Error>(
                conditions::find(group.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.status == "False" && c.reason == reason && c.message.contains(says)
                }),
            )
        },
    )
    .await
    .unwrap();
    let events = scene
        .kubectl()
        .ok(&["get", "events", "-n", scene.n(), "-o", "json"], None)
        .unwrap();
    assert!(events.contains(reason), "an Event says why: {events}");
}

#[tokio::test]
async fn a_group_of_a_missing_cluster_and_a_second_pd_group_of_one_cluster_say_so() {
    let scene = Scene::start("pd-orphan", 1).await;
    scene.create_group("nowhere", 3, json!({})).await;
    wait_group_refused(&scene, "pd", "ClusterNotFound", "nowhere").await;
    assert!(
        scene
            .pds()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no instance without a Cluster"
    );
    // Creating the Cluster lets it proceed.
    scene.create_cluster("nowhere").await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;

    // A second PDGroup of the same Cluster (first by name, created later) would bootstrap a
    // second PD cluster: it is held, says which group owns the Cluster's PD, and creates nothing.
    let mut second = scene.groups().get("pd").await.unwrap();
    second.metadata = kube::api::ObjectMeta {
        name: Some("aa-pd".into()),
        ..Default::default()
    };
    second.spec.bootstrapped = false;
    second.status = None;
    scene
        .groups()
        .create(&PostParams::default(), &second)
        .await
        .unwrap();
    wait_group_refused(
        &scene,
        "aa-pd",
        "AnotherPDGroup",
        "PDGroup pd owns the PD of Cluster nowhere",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pds = scene
        .pds()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        pds.iter()
            .all(|pd| pd.labels().get(keys::LABEL_GROUP).map(String::as_str) == Some("pd")),
        "the held group created no member: {:?}",
        pds.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
    );
    assert!(
        !scene.groups().get("aa-pd").await.unwrap().spec.bootstrapped,
        "the held group never counts as bootstrapped"
    );
    // Deleting it loses nothing: the first group's members serve on.
    scene
        .groups()
        .delete("aa-pd", &Default::default())
        .await
        .unwrap();
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;

    // PD's microservice mode, which this operator does not run: the group says so, and PD
    // serves on in the normal mode, no member restarted; removing it clears the condition.
    let before = scene.pod_uids().await;
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"mode": "ms"}}}}))
        .await;
    wait_group_refused(&scene, "pd", "PDModeNotSupported", "mode: ms").await;
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"mode": null}}}}))
        .await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    assert_eq!(scene.pod_uids().await, before, "no PD Pod restarted");
    scene
        .simulator
        .verdict(scene.n(), "nowhere", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// An image that can never be pulled (its registry host is under `.invalid`; the local cluster's
/// kwok leaves such a Pod Pending in `ImagePullBackOff`, as a kubelet would): the roll stops at the
/// first member, which says why, the group names it, the other members keep running, and fixing
/// the image lets the roll finish.
#[tokio::test]
async fn an_image_that_never_gets_ready_stops_the_roll_and_says_why() {
    let mut scene = Scene::start("pd-image", 1).await;
    scene.create_cluster("img").await;
    scene.create_group("img", 3, json!({})).await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let before = scene.pod_uids().await;

    let bad = "registry.invalid/pingcap/pd";
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"image": bad}}}}))
        .await;
    let stuck_name = std::sync::Mutex::new(String::new());
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "one PD Ready=False PodNotReady with ImagePullBackOff, named by the PDGroup",
        Duration::from_secs(90),
        || async {
            let group = scene.groups().get("pd").await?;
            let pds = scene.pds().list(&ListParams::default()).await?.items;
            let stuck: Vec<&PD> = pds
                .iter()
                .filter(|pd| {
                    conditions::find(pd.conditions(), conditions::READY).is_some_and(|c| {
                        c.status == "False"
                            && c.reason == "PodNotReady"
                            && c.message.contains("ImagePullBackOff")
                            && c.message.contains(&format!("{bad}:v8.5.2"))
                    })
                })
                .collect();
            let [pd] = stuck.as_slice() else {
                return Ok::<_, kube::Error>(false);
            };
            let named = conditions::find(group.conditions(), conditions::READY).is_some_and(|c| {
                c.status == "False"
                    && c.message.contains(&pd.name_any())
                    && c.message.contains("ImagePullBackOff")
            });
            if named {
                *stuck_name.lock().unwrap() = pd.name_any();
            }
            Ok(named)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n(a local cluster started before its kwok had the ImagePullBackOff stage lacks it: \
             hack/local-cluster.sh down, then up)\n{}",
            scene.logs()
        )
    });

    // Not a hang nor a loop: for a while nothing more is replaced, the stuck Pod is not
    // recreated again and again, the other members keep their Pods and stay Ready, and the
    // controller keeps running.
    let stuck = scene.pod_uids().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let later = scene.pod_uids().await;
    assert_eq!(
        later, stuck,
        "no Pod was replaced while the image cannot start"
    );
    let replaced: Vec<&String> = before
        .iter()
        .filter(|(name, uid)| later.get(*name) != Some(*uid))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(replaced.len(), 1, "exactly one member rolled: {replaced:?}");
    let pds = scene
        .pds()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let ready: Vec<String> = pds
        .iter()
        .filter(|pd| conditions::is_true(pd.conditions(), conditions::READY))
        .map(ResourceExt::name_any)
        .collect();
    let stuck_name = stuck_name.lock().unwrap().clone();
    assert_eq!(
        ready.len(),
        2,
        "the two other members stay Ready: {ready:?}"
    );
    assert!(!ready.contains(&stuck_name));
    assert!(
        scene.controllers[0].process.exited().is_none(),
        "the controller keeps running\n{}",
        scene.logs()
    );

    // Fixing the image lets the roll finish.
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"image": null}}}}))
        .await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    scene
        .simulator
        .verdict(scene.n(), "img", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Pods that stopped, in order, and the UIDs each PD Pod ran with, from the simulator's log.
struct PodHistory {
    stopped: Vec<(String, u64)>,
    uids: BTreeMap<String, BTreeSet<String>>,
    transfers: Vec<(Option<String>, String, u64)>,
    max_down_at_once: usize,
}

fn pod_history(events: &[Value], since: u64) -> PodHistory {
    let mut history = PodHistory {
        stopped: Vec::new(),
        uids: BTreeMap::new(),
        transfers: Vec::new(),
        max_down_at_once: 0,
    };
    let mut down: BTreeSet<String> = BTreeSet::new();
    for event in events {
        let seq = event
            .get("seq")
            .or_else(|| event.get("sequence"))
            .and_then(Value::as_u64)
            .unwrap_or_default();
        let kind = event
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let pod = event
            .get("pod")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let is_pd = event.get("component").and_then(Value::as_str) == Some("pd");
        match kind {
            "pod_running" if is_pd => {
                let uid = event
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                history.uids.entry(pod.clone()).or_default().insert(uid);
                down.remove(&pod);
            }
            "pod_stopped" if is_pd && seq >= since => {
                history.stopped.push((pod.clone(), seq));
                down.insert(pod);
                history.max_down_at_once = history.max_down_at_once.max(down.len());
            }
            "leader_transferred" if seq >= since => {
                let from = event
                    .get("from")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let to = event
                    .get("to")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                history.transfers.push((from, to, seq));
            }
            _ => {}
        }
    }
    history
}

fn last_seq(events: &[Value]) -> u64 {
    events
        .iter()
        .filter_map(|e| {
            e.get("seq")
                .or_else(|| e.get("sequence"))
                .and_then(Value::as_u64)
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn upgrade_rolls_one_member_at_a_time_leader_last_and_survives_a_killed_controller() {
    let mut scene = Scene::start("pd-upgrade", 2).await;
    scene.create_cluster("up").await;
    scene.create_group("up", 3, json!({})).await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;

    // Exactly one replica leads, and each one's /metrics says which.
    let lease = format!("pd-controller-{}", scene.n());
    let mut leading = Vec::new();
    for controller in &scene.controllers {
        leading.push(
            controller
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
    assert_eq!(
        leading.iter().filter(|v| **v == 0.0).count(),
        1,
        "one standby: {leading:?}"
    );
    let leader_index = leading.iter().position(|v| *v == 1.0).unwrap();

    let pd_leader = scene
        .pds()
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .find(|pd| pd.status.as_ref().is_some_and(|s| s.is_leader))
        .map(|pd| pd.name_any())
        .unwrap();
    let before = scene.pod_uids().await;
    let start = last_seq(&scene.simulator.events(scene.n(), "up").await.unwrap());

    scene
        .patch_group(json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}}))
        .await;

    // Kill the leading controller as soon as the roll has started.
    let replaced_at_kill = loop {
        let now = scene.pod_uids().await;
        let replaced = before
            .iter()
            .filter(|(name, uid)| now.get(*name) != Some(*uid))
            .count();
        if replaced > 0 {
            scene.controllers[leader_index].process.kill();
            break replaced;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        replaced_at_kill < 3,
        "the roll finished before the controller could be killed"
    );

    // The standby takes over once the Lease expires, and finishes the roll.
    let standby = &scene.controllers[1 - leader_index];
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "the standby leads",
        Duration::from_secs(60),
        || async {
            standby
                .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                .await
                .map(|v| v == 1.0)
        },
    )
    .await
    .unwrap();
    scene
        .wait_converged(3, "v8.5.3", Duration::from_secs(240))
        .await;

    // The simulator watches Pods on its own; let it catch up with what the API shows.
    let after = scene.pod_uids().await;
    let current: BTreeSet<String> = after.values().cloned().collect();
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "the simulator sees the new PD Pods running",
        Duration::from_secs(30),
        || async {
            let state = scene.simulator.state(scene.n(), "up").await?;
            let running: BTreeSet<String> = state
                .get("members")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(|m| m.get("uid").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Ok::<_, String>(running == current)
        },
    )
    .await
    .unwrap();
    let events = scene.simulator.events(scene.n(), "up").await.unwrap();
    let history = pod_history(&events, start);
    for (name, uid) in &before {
        if after.get(name) == Some(uid) {
            let pds = scene
                .kubectl()
                .ok(&["get", "pd", "-n", scene.n(), "-o", "yaml"], None)
                .unwrap_or_default();
            panic!(
                "{name} was not recreated\n{pds}\n{}\n{}",
                testkit::diagnostics(&scene.kubectl(), scene.n()),
                scene.logs()
            );
        }
        let seen: Vec<&Value> = events
            .iter()
            .filter(|e| e.get("pod").and_then(Value::as_str) == Some(name))
            .collect();
        assert_eq!(
            history.uids.get(name).map(BTreeSet::len),
            Some(2),
            "{name} must run with exactly two UIDs (recreated once): {seen:#?}\nstate: {:#}\npods now: {after:?}",
            scene
                .simulator
                .state(scene.n(), "up")
                .await
                .unwrap_or_default()
        );
    }
    assert_eq!(
        history.stopped.len(),
        3,
        "each Pod stopped once: {:?}",
        history.stopped
    );
    assert_eq!(
        history.max_down_at_once, 1,
        "more than one PD member was down at once"
    );
    let (last_pod, last_stop) = history.stopped.last().cloned().unwrap();
    assert_eq!(last_pod, pd_leader, "the PD leader must be restarted last");
    assert!(
        history
            .transfers
            .iter()
            .any(|(from, _, seq)| from.as_deref() == Some(pd_leader.as_str()) && *seq < last_stop),
        "leadership must move away from {pd_leader} before its Pod goes: {:?}",
        history.transfers
    );
    let group = scene.groups().get("pd").await.unwrap();
    assert_eq!(group.status.unwrap().group.version, "v8.5.3");
    drop(scene.controllers.remove(leader_index));
    scene
        .simulator
        .verdict(scene.n(), "up", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_frozen_leader_that_wakes_after_its_standby_took_over_writes_nothing() {
    let mut scene = Scene::start("pd-frozen", 2).await;
    scene.create_cluster("fz").await;
    scene.create_group("fz", 3, json!({})).await;
    scene.wait_converged(3, "v8.5.2", CONVERGE).await;
    let lease = format!("pd-controller-{}", scene.n());
    let mut leader_index = None;
    for (index, controller) in scene.controllers.iter().enumerate() {
        let leading = controller
            .metric_sum("tidb_operator_leader", &[("lease", &lease)])
            .await
            .unwrap();
        if leading == 1.0 {
            leader_index = Some(index);
        }
    }
    let leader_index = leader_index.expect("no replica leads");
    let leader = format!("pd-controller-{leader_index}");
    let standby = format!("pd-controller-{}", 1 - leader_index);
    let before = scene.pod_uids().await;

    // Freeze the leader in the middle of a roll, as a paused container or a stalled machine is:
    // its Lease runs out while it stands still.
    scene
        .patch_group(json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}}))
        .await;
    loop {
        let now = scene.pod_uids().await;
        if before.iter().any(|(name, uid)| now.get(name) != Some(uid)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scene.controllers[leader_index].process.pause().unwrap();
    wait_until(
        &scene.kubectl(),
        scene.n(),
        "the standby leads",
        Duration::from_secs(60),
        || async {
            scene.controllers[1 - leader_index]
                .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                .await
                .map(|v| v == 1.0)
        },
    )
    .await
    .unwrap();
    // The new leader carries on with the roll; then the old one wakes up, with its reconciles and
    // its renewal all due at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    scene.controllers[leader_index].process.resume().unwrap();
    // It finds its Lease gone and exits; the fence keeps it from writing in between.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = scene.controllers[leader_index].process.exited() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the woken replica did not exit\n{}",
            scene.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status.code(), Some(1), "{}", scene.logs());
    assert!(
        scene.controllers[leader_index]
            .process
            .output()
            .contains("lost the leader-election Lease"),
        "{}",
        scene.logs()
    );
    scene
        .wait_converged(3, "v8.5.3", Duration::from_secs(240))
        .await;

    // No two writers: every write of the frozen replica reached the API server before the first
    // write of the one that took over.
    let writes = scenarios::audit::writes_in(&scene.cluster.audit_log(), scene.n()).unwrap();
    let old: Vec<_> = writes.iter().filter(|w| w.by(&leader)).collect();
    let new: Vec<_> = writes.iter().filter(|w| w.by(&standby)).collect();
    assert!(
        !old.is_empty(),
        "the first leader wrote nothing: {writes:#?}"
    );
    assert!(!new.is_empty(), "the new leader wrote nothing: {writes:#?}");
    let last_old = old.iter().map(|w| &w.received).max().unwrap();
    let first_new = new.iter().map(|w| &w.received).min().unwrap();
    assert!(
        last_old < first_new,
        "{leader} wrote at {last_old}, after {standby} began writing at {first_new}: {:#?}",
        writes
            .iter()
            .filter(|w| &w.received >= first_new && w.by(&leader))
            .collect::<Vec<_>>()
    );
    scene
        .simulator
        .verdict(scene.n(), "fz", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
