//! The examples under `examples/` end to end: each is applied unchanged, as its docs say
//! (`kubectl apply --server-side -k`), to a namespace of its own with the PD, TiKV, TiDB and
//! cluster controllers and the operand simulator, and becomes Available and Ready; then what the
//! example sets is checked on the Pods a user would look at, and the scenario ends with the
//! simulator's data-safety verdict. `examples/basic` is covered by `cluster.rs`. The reference's
//! own basic example, with its TiFlash and TiCDC groups, is applied as upstream writes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::Cluster;
use operator_api::keys::LABEL_COMPONENT;
use scenarios::{Allowed, Controller, Simulator, apply_controller_identity, ensure_crds};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(180);

/// The Node label the examples spread over.
const ZONE: &str = "topology.kubernetes.io/zone";

/// One example applied in its own namespace, with the controllers that bring it up.
struct Applied {
    client: Client,
    simulator: Simulator,
    ns: TestNamespace,
    cluster: String,
    // Kept alive for the whole scenario; they stop when dropped.
    _controllers: Vec<Controller>,
}

impl Applied {
    fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The Pods of one component (`pd`, `tikv`, `tidb`), by name.
    async fn pods(&self, component: &str) -> Vec<Pod> {
        let mut pods = Api::<Pod>::namespaced(self.client.clone(), self.ns())
            .list(&ListParams::default().labels(&format!("{LABEL_COMPONENT}={component}")))
            .await
            .unwrap()
            .items;
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    /// The data-safety verdict, with nothing allowed.
    async fn verdict(&self) {
        self.simulator
            .verdict(self.ns(), &self.cluster, &Allowed::none())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Applies `examples/<example>` and waits until its Cluster `cluster` is Available and Ready, with
/// the PD, TiKV and TiDB replicas `replicas` (in that order).
async fn apply_example(example: &str, cluster_name: &str, replicas: [i32; 3]) -> Applied {
    let dir = scenarios::repo_root().join("examples").join(example);
    apply_dir(&dir, &format!("example-{example}"), cluster_name, &replicas).await
}

/// Applies the Kustomize directory `dir` in a namespace named after `prefix` and waits until its
/// Cluster `cluster` is Available and Ready, with its components' replicas `replicas` in the
/// order the Cluster lists them (PD, TiKV, TiDB, TiFlash, TiCDC).
async fn apply_dir(
    dir: &std::path::Path,
    prefix: &str,
    cluster_name: &str,
    replicas: &[i32],
) -> Applied {
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
    let n = ns.name().to_string();
    let simulator = Simulator::start(&cluster, &n).await.unwrap();
    let mut controllers = Vec::new();
    for binary in binaries {
        controllers.push(
            Controller::start(&cluster, &client, binary, &n, 0, &simulator.overrides())
                .await
                .unwrap(),
        );
    }

    let kubectl = cluster.kubectl();
    kubectl
        .ok(
            &[
                "apply",
                "-n",
                &n,
                "--server-side",
                "-k",
                &dir.to_string_lossy(),
            ],
            None,
        )
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &n);
    wait_until(
        &kubectl,
        &n,
        &format!("Cluster {cluster_name} Available and Ready with replicas {replicas:?}"),
        WAIT,
        || async {
            let c = clusters.get(cluster_name).await?;
            let found: Vec<i32> = c
                .status
                .as_ref()
                .map(|s| s.components.iter().map(|p| p.replicas).collect())
                .unwrap_or_default();
            Ok::<_, kube::Error>(
                conditions::is_true(c.conditions(), conditions::AVAILABLE)
                    && conditions::is_true(c.conditions(), conditions::READY)
                    && found == replicas,
            )
        },
    )
    .await
    .unwrap();
    Applied {
        client,
        simulator,
        ns,
        cluster: cluster_name.to_string(),
        _controllers: controllers,
    }
}

#[tokio::test]
async fn bootstrap_sql_example_gives_tidb_the_sql_file() {
    let applied = apply_example("bootstrap-sql", "bsql", [3, 3, 1]).await;

    // The simulator runs no SQL, so what is checked is what TiDB is given: the user's ConfigMap
    // key mounted as the file its config names.
    let tidb = applied.pods("tidb").await;
    assert_eq!(tidb.len(), 1, "one TiDB Pod");
    let pod = &tidb[0];
    let spec = pod.spec.as_ref().unwrap();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let sql = volumes
        .iter()
        .find(|v| v.config_map.as_ref().is_some_and(|c| c.name == "bsql"))
        .unwrap_or_else(|| {
            let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
            panic!("{}: no volume of ConfigMap bsql: {names:?}", pod.name_any())
        });
    let items = sql.config_map.as_ref().unwrap().items.clone().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect::<Vec<_>>(),
        [("bootstrap-sql", "bootstrap.sql")]
    );
    let container = spec.containers.iter().find(|c| c.name == "tidb").unwrap();
    let mount = container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.name == sql.name)
        .unwrap_or_else(|| panic!("the tidb container does not mount {}", sql.name));
    assert_eq!(mount.mount_path, "/etc/tidb-bootstrap");
    assert_eq!(mount.read_only, Some(true));

    // The server's config file tells TiDB to run it.
    let config_map = volumes
        .iter()
        .find(|v| v.name == operator_runtime::build::CONFIG_VOLUME)
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .unwrap_or_else(|| panic!("{}: no config volume", pod.name_any()));
    let config = Api::<ConfigMap>::namespaced(applied.client.clone(), applied.ns())
        .get(&config_map)
        .await
        .unwrap();
    let toml = config
        .data
        .unwrap_or_default()
        .remove("config.toml")
        .unwrap_or_default();
    assert!(
        toml.lines()
            .any(|l| l == r#"initialize-sql-file = "/etc/tidb-bootstrap/bootstrap.sql""#),
        "config.toml of {}:\n{toml}",
        pod.name_any()
    );
    // Neither PD nor TiKV is given the file.
    for component in ["pd", "tikv"] {
        for pod in applied.pods(component).await {
            let volumes = pod.spec.clone().unwrap().volumes.unwrap_or_default();
            assert!(
                !volumes
                    .iter()
                    .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == "bsql")),
                "{} mounts the bootstrap SQL",
                pod.name_any()
            );
        }
    }
    applied.verdict().await;
}

#[tokio::test]
async fn overlay_example_reaches_the_pd_and_tidb_pods() {
    let applied = apply_example("overlay", "overlay", [3, 3, 2]).await;

    let pd = applied.pods("pd").await;
    assert_eq!(pd.len(), 3, "three PD Pods");
    for pod in &pd {
        let spec = pod.spec.as_ref().unwrap();
        let container = spec.containers.iter().find(|c| c.name == "pd").unwrap();
        let env = container.env.as_deref().unwrap_or_default();
        let variable = env
            .iter()
            .find(|e| e.name == "DASHBOARD_SESSION_SECRET")
            .unwrap_or_else(|| panic!("{}: no DASHBOARD_SESSION_SECRET: {env:?}", pod.name_any()));
        // The value is read from the Secret, never copied into the Pod.
        assert_eq!(variable.value, None, "{}", pod.name_any());
        let secret = variable
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{}: not from a Secret: {variable:?}", pod.name_any()));
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("dashboard-session-secret", "encryption_key"),
            "{}",
            pod.name_any()
        );
        // The overlay adds to the operator's Pod, it does not replace it.
        assert!(
            container
                .volume_mounts
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|m| m.name == "data"),
            "{} keeps its data volume",
            pod.name_any()
        );
        // TiDB's overlay stays on TiDB.
        assert!(
            spec.security_context
                .as_ref()
                .and_then(|s| s.sysctls.as_ref())
                .is_none_or(Vec::is_empty),
            "{} has sysctls",
            pod.name_any()
        );
        assert_ne!(
            spec.termination_grace_period_seconds,
            Some(120),
            "{}",
            pod.name_any()
        );
    }

    let tidb = applied.pods("tidb").await;
    assert_eq!(tidb.len(), 2, "two TiDB Pods");
    for pod in &tidb {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.termination_grace_period_seconds,
            Some(120),
            "{}",
            pod.name_any()
        );
        let sysctls: BTreeMap<String, String> = spec
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect();
        assert_eq!(
            sysctls,
            BTreeMap::from([
                ("net.ipv4.tcp_keepalive_intvl".to_string(), "75".to_string()),
                ("net.ipv4.tcp_keepalive_time".to_string(), "300".to_string()),
            ]),
            "{}",
            pod.name_any()
        );
        // The TiDB containers are not given PD's Secret.
        let container = spec.containers.iter().find(|c| c.name == "tidb").unwrap();
        assert!(
            container
                .env
                .as_deref()
                .unwrap_or_default()
                .iter()
                .all(|e| e.name != "DASHBOARD_SESSION_SECRET"),
            "{}",
            pod.name_any()
        );
    }
    applied.verdict().await;
}

#[tokio::test]
async fn schedule_policy_example_puts_one_instance_of_each_group_in_each_zone() {
    let applied = apply_example("schedule-policy", "schedule", [3, 3, 3]).await;

    let zone_of: BTreeMap<String, String> = Api::<Node>::all(applied.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|node| {
            let zone = node.labels().get(ZONE)?.clone();
            Some((node.name_any(), zone))
        })
        .collect();
    let all_zones: BTreeSet<&str> = ["zone-a", "zone-b", "zone-c"].into();
    for component in ["pd", "tikv", "tidb"] {
        let pods = applied.pods(component).await;
        let mut zones = Vec::new();
        for pod in &pods {
            let spec = pod.spec.as_ref().unwrap();
            let node = spec
                .node_name
                .as_deref()
                .unwrap_or_else(|| panic!("{} is not scheduled", pod.name_any()));
            let zone = zone_of
                .get(node)
                .unwrap_or_else(|| panic!("Node {node} of {} has no zone", pod.name_any()));
            // The zone is the Pod's own constraint, not where the scheduler happened to put it.
            assert_eq!(
                spec.node_selector
                    .as_ref()
                    .and_then(|s| s.get(ZONE))
                    .map(String::as_str),
                Some(zone.as_str()),
                "{} on {node}",
                pod.name_any()
            );
            zones.push(zone.as_str());
        }
        zones.sort_unstable();
        assert_eq!(
            zones,
            all_zones.iter().copied().collect::<Vec<_>>(),
            "{component}: one Pod in each zone"
        );
    }
    applied.verdict().await;
}

/// The reference's `examples/basic` as upstream writes it, TiFlash and TiCDC included: PD 1,
/// TiKV 3, TiDB 2, TiFlash 1 and TiCDC 2 become Available, `kubectl get` shows every group and
/// instance Ready, the TiFlash server has its config and a store serving in PD, one TiCDC capture
/// owns the changefeeds and each keeps its sort directory on the example's ephemeral volume.
#[tokio::test]
async fn the_reference_basic_example_with_tiflash_and_ticdc_becomes_available() {
    let dir = scenarios::repo_root().join("tests/data/reference-basic");
    let applied = apply_dir(&dir, "example-reference", "basic", &[1, 3, 2, 1, 2]).await;
    let n = applied.ns();
    let kubectl = LocalCluster::get().unwrap().kubectl();

    // What a user looks at: every group and instance Ready in `kubectl get`.
    for (kinds, names) in [
        ("tiflashgroup,ticdcgroup", vec!["tiflash", "ticdc"]),
        ("tiflash,ticdc", vec!["tiflash-", "ticdc-", "ticdc-"]),
    ] {
        let printed = kubectl
            .ok(&["get", "-n", n, kinds, "--no-headers"], None)
            .unwrap();
        let rows: Vec<&str> = printed.lines().collect();
        assert_eq!(rows.len(), names.len(), "kubectl get {kinds}:\n{printed}");
        for (row, name) in rows.iter().zip(&names) {
            let columns: Vec<&str> = row.split_whitespace().collect();
            assert!(
                columns.first().is_some_and(|c| c.contains(name)),
                "kubectl get {kinds}: {row}"
            );
            assert!(
                columns.contains(&"True") && !columns.contains(&"False"),
                "kubectl get {kinds} shows {name} Ready: {row}"
            );
        }
    }
    let printed = kubectl
        .ok(&["get", "-n", n, "cluster", "basic", "--no-headers"], None)
        .unwrap();
    let row: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["basic", "1", "3", "2", "1"],
        "kubectl get cluster shows PD, TiKV, TiDB and TiFlash: {printed}"
    );

    // TiFlash: the example's config reaches the server, and its store serves (Up in PD).
    let tiflash: Vec<operator_api::core::TiFlash> = Api::namespaced(applied.client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(tiflash.len(), 1);
    let store = tiflash[0]
        .status
        .as_ref()
        .map(|s| (s.id.clone(), s.state.clone()));
    assert!(
        store
            .as_ref()
            .is_some_and(|(id, state)| !id.is_empty() && state == "Serving"),
        "the TiFlash store as its instance reports it: {store:?}"
    );
    let configs = Api::<ConfigMap>::namespaced(applied.client.clone(), n)
        .get(&tiflash[0].name_any())
        .await
        .unwrap();
    assert!(
        configs
            .data
            .unwrap_or_default()
            .values()
            .any(|text| text.contains("mark_cache_size = 1073741824")),
        "the TiFlash server config keeps the example's key"
    );

    // TiCDC: one owner, and each capture's sort directory is the example's ephemeral volume.
    let ticdc: Vec<operator_api::core::TiCDC> = Api::namespaced(applied.client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let owners = ticdc
        .iter()
        .filter(|t| t.status.as_ref().is_some_and(|s| s.is_owner))
        .count();
    assert_eq!((ticdc.len(), owners), (2, 1), "TiCDC captures and owners");
    for pod in applied.pods("ticdc").await {
        let spec = pod.spec.clone().unwrap_or_default();
        let ephemeral = spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == "data" && v.ephemeral.is_some());
        let mounted = spec.containers.iter().any(|c| {
            c.name == "ticdc"
                && c.volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| m.name == "data" && m.mount_path == "/var/lib/ticdc")
        });
        assert!(ephemeral && mounted, "{}: {spec:?}", pod.name_any());
    }

    upgrade_every_group_at_once(&applied).await;
    // The example runs one PD member: while it restarts PD has no leader (the example's own
    // outage, not the operator's); nothing may be lost, and every Region keeps its leader.
    applied
        .simulator
        .verdict(n, &applied.cluster, &Allowed::none().pd_quorum_loss())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A new version applied to every group of the example at once rolls them in the reference's
/// order, read from the simulator's log: PD first; TiFlash once every PD Pod runs the new
/// version; TiKV once TiFlash does; TiDB once TiKV does. TiCDC waits for nothing, so its place
/// is not checked.
async fn upgrade_every_group_at_once(applied: &Applied) {
    let n = applied.ns();
    let kubectl = LocalCluster::get().unwrap().kubectl();
    let start = scenarios::last_seq(&applied.simulator.events(n, &applied.cluster).await.unwrap());
    let components = ["pd", "tikv", "tidb", "tiflash", "ticdc"];
    // TiDB and TiCDC first, PD last: each group must wait for what it depends on by itself.
    for (kind, group) in [
        ("tidbgroup", "tidb"),
        ("ticdcgroup", "ticdc"),
        ("tikvgroup", "tikv"),
        ("tiflashgroup", "tiflash"),
        ("pdgroup", "pd"),
    ] {
        kubectl
            .ok(
                &[
                    "patch",
                    "-n",
                    n,
                    kind,
                    group,
                    "--type",
                    "merge",
                    "-p",
                    r#"{"spec":{"template":{"spec":{"version":"v8.5.3"}}}}"#,
                ],
                None,
            )
            .unwrap();
    }
    let clusters = Api::<Cluster>::namespaced(applied.client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "every Pod on v8.5.3, the Cluster Available and Ready",
        WAIT,
        || async {
            let mut upgraded = true;
            for component in components {
                let pods = applied.pods(component).await;
                upgraded &= !pods.is_empty()
                    && pods.iter().all(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.spec.iter().flat_map(|s| &s.containers).any(|c| {
                                c.name == component
                                    && c.image.as_deref().is_some_and(|i| i.ends_with(":v8.5.3"))
                            })
                    });
            }
            let c = clusters.get(&applied.cluster).await?;
            Ok::<_, kube::Error>(
                upgraded
                    && conditions::is_true(c.conditions(), conditions::AVAILABLE)
                    && conditions::is_true(c.conditions(), conditions::READY),
            )
        },
    )
    .await
    .unwrap();

    // The simulator runs every new Pod before its log is read.
    let mut new_uids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for component in components {
        new_uids.insert(
            component,
            applied
                .pods(component)
                .await
                .iter()
                .map(|p| p.uid().unwrap_or_default())
                .collect(),
        );
    }
    wait_until(
        &kubectl,
        n,
        "the simulator sees every new Pod running",
        WAIT,
        || async {
            let all = applied.simulator.events(n, &applied.cluster).await?;
            let seen = new_uids.values().flatten().all(|uid| {
                !scenarios::events_of(&all, "pod_running", &[("uid", uid.as_str())]).is_empty()
            });
            Ok::<_, String>(seen)
        },
    )
    .await
    .unwrap();
    let since: Vec<serde_json::Value> = applied
        .simulator
        .events(n, &applied.cluster)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| scenarios::event_seq(e) > start)
        .collect();
    // The last new Pod of `component` running, and the first Pod of it touched in the roll (an
    // old one stopped, or a new one running: TiDB rolls with a surge).
    let last_new = |component: &str| {
        new_uids[component]
            .iter()
            .flat_map(|uid| scenarios::events_of(&since, "pod_running", &[("uid", uid.as_str())]))
            .map(scenarios::event_seq)
            .max()
            .unwrap_or_default()
    };
    let first_touched = |component: &str| {
        ["pod_stopped", "pod_running"]
            .iter()
            .flat_map(|kind| scenarios::events_of(&since, kind, &[("component", component)]))
            .map(scenarios::event_seq)
            .min()
            .unwrap_or_default()
    };
    for (before, after) in [("pd", "tiflash"), ("tiflash", "tikv"), ("tikv", "tidb")] {
        assert!(
            last_new(before) < first_touched(after),
            "{after} was touched (seq {}) before the last new {before} Pod ran (seq {})",
            first_touched(after),
            last_new(before)
        );
    }
}

/// The PVCs of the namespace that outlive Pods (a TiCDC Pod's ephemeral volume goes with it), by
/// name, with their UIDs.
async fn lasting_claims(applied: &Applied) -> BTreeMap<String, String> {
    Api::<PersistentVolumeClaim>::namespaced(applied.client.clone(), applied.ns())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| !c.owner_references().iter().any(|o| o.kind == "Pod"))
        .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
        .collect()
}

/// The instance names of the TiFlash and TiCDC groups.
async fn tiflash_and_ticdc(applied: &Applied) -> BTreeSet<String> {
    let mut names: BTreeSet<String> =
        Api::<operator_api::core::TiFlash>::namespaced(applied.client.clone(), applied.ns())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
    names.extend(
        Api::<operator_api::core::TiCDC>::namespaced(applied.client.clone(), applied.ns())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any),
    );
    names
}

/// Suspending compute of the reference's basic cluster removes the TiFlash and TiCDC Pods with the
/// others and keeps every instance and volume; resuming brings the same instances back on the same
/// volumes. Pausing it holds a TiFlash config change and a TiCDC scale-out, the groups saying
/// `Paused`, until it is unpaused.
#[tokio::test]
async fn suspending_and_pausing_the_reference_basic_cluster_cover_tiflash_and_ticdc() {
    let dir = scenarios::repo_root().join("tests/data/reference-basic");
    let replicas = [1, 3, 2, 1, 2];
    let applied = apply_dir(&dir, "example-suspend", "basic", &replicas).await;
    let n = applied.ns();
    let kubectl = LocalCluster::get().unwrap().kubectl();
    let clusters = Api::<Cluster>::namespaced(applied.client.clone(), n);
    let pods = Api::<Pod>::namespaced(applied.client.clone(), n);
    let claims = lasting_claims(&applied).await;
    let instances = tiflash_and_ticdc(&applied).await;
    assert_eq!(instances.len(), 3, "{instances:?}");

    let suspend = |on: bool| json!({"spec": {"suspendAction": {"suspendCompute": on}}});
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(suspend(true)),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster basic Suspended with no Pod left",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            let left = pods.list(&ListParams::default()).await?.items.len();
            Ok::<_, kube::Error>(
                left == 0 && conditions::is_true(c.conditions(), conditions::SUSPENDED),
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(
        lasting_claims(&applied).await,
        claims,
        "suspending touched a PVC"
    );
    assert_eq!(
        tiflash_and_ticdc(&applied).await,
        instances,
        "suspending removed an instance"
    );

    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(suspend(false)),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster basic resumed: Available and Ready with every Pod back",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            let running = pods.list(&ListParams::default()).await?.items.len();
            Ok::<_, kube::Error>(
                running == 9
                    && !conditions::is_true(c.conditions(), conditions::SUSPENDED)
                    && conditions::is_true(c.conditions(), conditions::AVAILABLE)
                    && conditions::is_true(c.conditions(), conditions::READY),
            )
        },
    )
    .await
    .unwrap();
    for component in ["tiflash", "ticdc"] {
        let back: BTreeSet<String> = applied
            .pods(component)
            .await
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert!(
            back.iter().all(|name| instances.contains(name)) && !back.is_empty(),
            "{component} came back as other instances: {back:?}, before {instances:?}"
        );
    }
    assert_eq!(
        lasting_claims(&applied).await,
        claims,
        "resuming used other PVCs"
    );

    // Paused: a TiFlash config change and one more TiCDC server wait, and the groups say why.
    let uids =
        |pods: Vec<Pod>| -> BTreeSet<String> { pods.iter().filter_map(ResourceExt::uid).collect() };
    let before = (
        uids(applied.pods("tiflash").await),
        uids(applied.pods("ticdc").await),
    );
    let pause = |on: bool| json!({"spec": {"paused": on}});
    clusters
        .patch("basic", &PatchParams::default(), &Patch::Merge(pause(true)))
        .await
        .unwrap();
    let (tiflash_groups, ticdc_groups) = (
        Api::<operator_api::core::TiFlashGroup>::namespaced(applied.client.clone(), n),
        Api::<operator_api::core::TiCDCGroup>::namespaced(applied.client.clone(), n),
    );
    let paused = |c: &[Condition]| {
        conditions::find(c, conditions::SYNCED).is_some_and(|c| c.reason == "Paused")
    };
    wait_until(
        &kubectl,
        n,
        "the TiFlash and TiCDC groups say Paused",
        WAIT,
        || async {
            let tiflash = tiflash_groups.get("tiflash").await?;
            let ticdc = ticdc_groups.get("ticdc").await?;
            Ok::<_, kube::Error>(paused(tiflash.conditions()) && paused(ticdc.conditions()))
        },
    )
    .await
    .unwrap();
    tiflash_groups
        .patch(
            "tiflash",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"spec": {"config": "mark_cache_size = 2147483648\n"}}}}),
            ),
        )
        .await
        .unwrap();
    ticdc_groups
        .patch(
            "ticdc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    // Two looks of a paused group (10 s each) would show a change that slipped through.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let held = (
        uids(applied.pods("tiflash").await),
        uids(applied.pods("ticdc").await),
    );
    assert_eq!(held, before, "a TiFlash or TiCDC Pod changed while paused");
    assert_eq!(
        tiflash_and_ticdc(&applied).await,
        instances,
        "an instance came or went while paused"
    );
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(pause(false)),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "unpaused: TiFlash restarted with its new config and three TiCDC servers, the Cluster Ready",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            let tiflash = tiflash_groups.get("tiflash").await?;
            let ticdc = ticdc_groups.get("ticdc").await?;
            let rolled = tiflash.status.as_ref().is_some_and(|s| {
                s.common.current_revision == s.common.update_revision && s.group.ready_replicas == 1
            }) && applied
                .pods("tiflash")
                .await
                .iter()
                .all(|p| !before.0.contains(&p.uid().unwrap_or_default()));
            let scaled = ticdc
                .status
                .as_ref()
                .is_some_and(|s| s.group.ready_replicas == 3);
            Ok::<_, kube::Error>(
                rolled && scaled && conditions::is_true(c.conditions(), conditions::READY),
            )
        },
    )
    .await
    .unwrap();
    // Suspending compute stops every PD Pod and store on purpose.
    applied
        .simulator
        .verdict(
            n,
            "basic",
            &Allowed::none().pd_quorum_loss().regions_without_leader(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
