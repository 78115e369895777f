//! `kubectl tidb` end to end: the built plugin binary run as a user runs it, against a cluster
//! brought up by the PD, TiKV, TiDB and cluster controllers with the operand simulator. `list`
//! and `status` show the cluster (table and JSON); `status` names an instance the simulator makes
//! unhealthy; `pause`/`resume`, `restart` and `upgrade` do what they print, and `watch` shows
//! each group's progress; a read-only identity may look but its changes are refused; `diagnose`
//! writes the objects without any Secret value. Ends with the simulator's data-safety verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PDGroup, TiDB, TiDBGroup, TiKV, TiKVGroup};
use scenarios::{Allowed, Controller, Simulator, apply_controller_identity, ensure_crds};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(150);
const CLUSTER: &str = "basic";

/// The plugin binary of this build: `target/<profile>/kubectl-tidb`, found the way testkit finds
/// the controllers (next to the test executable, or the directory above its `deps/`).
fn plugin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("kubectl-tidb"))
        .find(|p| p.is_file())
        .expect("kubectl-tidb not built: run `cargo build --workspace --bins` first")
}

/// Runs the plugin with `kubeconfig` in namespace `ns`; stdout is not a terminal.
fn run(kubeconfig: &Path, ns: &str, args: &[&str]) -> Output {
    Command::new(plugin_binary())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(output)))
}

async fn pod_uids(client: &Client, ns: &str) -> BTreeMap<String, String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

async fn create<K>(client: &Client, ns: &str, value: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

fn group(kind: &str, name: &str, replicas: i32, volume: bool) -> Value {
    let mut spec = json!({"version": "v8.5.2"});
    if volume {
        spec["volumes"] =
            json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
    }
    json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name},
        "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas,
                 "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                 "template": {"spec": spec}}
    })
}

/// A ServiceAccount that may get, list and watch the cluster's kinds, Pods, PVCs and Events, and
/// change nothing; returns a kubeconfig acting as it.
async fn read_only_kubeconfig(cluster: &LocalCluster, client: &Client, ns: &str) -> PathBuf {
    let manifest = format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: viewer, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: viewer, namespace: {ns}}}
rules:
- apiGroups: [core.pingcap.com]
  resources: ["*"]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods, persistentvolumeclaims, events]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: viewer, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}}
subjects: [{{kind: ServiceAccount, name: viewer, namespace: {ns}}}]
"#
    );
    cluster
        .kubectl()
        .ok(&["apply", "--server-side", "-f", "-"], Some(&manifest))
        .unwrap();
    testkit::service_account_kubeconfig(
        client,
        cluster.kubeconfig(),
        ns,
        "viewer",
        &std::env::temp_dir(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_plugin_shows_operates_and_diagnoses_a_cluster() {
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
    let ns = TestNamespace::create(&cluster, &client, "plugin")
        .await
        .unwrap();
    let n = ns.name().to_string();
    let kubectl = cluster.kubectl();
    let admin = cluster.kubeconfig().to_path_buf();
    let simulator = Simulator::start(&cluster, &n).await.unwrap();
    let mut controllers = Vec::new();
    for binary in binaries {
        controllers.push(
            Controller::start(&cluster, &client, binary, &n, 0, &simulator.overrides())
                .await
                .unwrap(),
        );
    }

    create::<Cluster>(
        &client,
        &n,
        json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
               "metadata": {"name": CLUSTER}, "spec": {}}),
    )
    .await;
    create::<PDGroup>(&client, &n, group("PDGroup", "pd", 1, true)).await;
    create::<TiKVGroup>(&client, &n, group("TiKVGroup", "tikv", 3, true)).await;
    create::<TiDBGroup>(&client, &n, group("TiDBGroup", "tidb", 1, false)).await;

    // `status` exits 0 once the cluster is healthy: that is what a script waits on.
    wait_until(&kubectl, &n, "`kubectl tidb status` exits 0", WAIT, || {
        let admin = admin.clone();
        let n = n.clone();
        async move {
            Ok::<_, String>(run(&admin, &n, &["status", CLUSTER]).status.code() == Some(0))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", show(&run(&admin, &n, &["status", CLUSTER]))));

    // list: the cluster with each component's ready/desired, in table and JSON.
    let listed = run(&admin, &n, &["list", "-o", "json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", show(&listed));
    let rows = json_of(&listed);
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows:#}");
    assert_eq!(rows[0]["name"], CLUSTER);
    assert_eq!(rows[0]["namespace"], n.as_str());
    assert_eq!(rows[0]["versions"], json!(["v8.5.2"]));
    assert_eq!(
        rows[0]["components"],
        json!([{"component": "pd", "ready": 1, "desired": 1},
               {"component": "tikv", "ready": 3, "desired": 3},
               {"component": "tidb", "ready": 1, "desired": 1}])
    );
    assert_eq!(
        (
            &rows[0]["available"],
            &rows[0]["ready"],
            &rows[0]["progressing"]
        ),
        (&json!("True"), &json!("True"), &json!("False"))
    );
    let table = run(&admin, &n, &["list"]);
    let table_text = text(&table.stdout);
    assert!(
        table_text.starts_with("NAME ") && table_text.contains("pd 1/1 tikv 3/3 tidb 1/1"),
        "{}",
        show(&table)
    );
    assert!(!table_text.contains('\x1b'), "no colour on a pipe");

    // status -o json: the tree as the operator reports it.
    let status = run(&admin, &n, &["status", CLUSTER, "-o", "json"]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    let view = json_of(&status);
    assert_eq!(view["healthy"], true, "{view:#}");
    assert_eq!(view["problems"], json!([]));
    assert_eq!(view["pd"], format!("http://pd-pd.{n}:2379"));
    let groups = view["groups"].as_array().unwrap();
    let shape: Vec<(String, usize)> = groups
        .iter()
        .map(|g| {
            (
                g["kind"].as_str().unwrap().to_string(),
                g["instances"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("PDGroup".to_string(), 1),
            ("TiKVGroup".to_string(), 3),
            ("TiDBGroup".to_string(), 1)
        ]
    );
    assert_eq!(groups[0]["instances"][0]["pdLeader"], true, "{view:#}");
    for store in groups[1]["instances"].as_array().unwrap() {
        assert_eq!(store["storeState"], "Serving", "{store:#}");
        assert!(
            store["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{store:#}"
        );
        assert_eq!(store["upToDate"], true);
        assert_eq!(store["pod"]["phase"], "Running");
        assert_eq!(store["pod"]["ready"], true);
        assert_eq!(store["volumes"][0]["size"], "10Gi", "{store:#}");
    }
    let tidb_name = groups[2]["instances"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // A TiDB server the simulator makes unhealthy: `status` exits 3 and names it with its reason.
    simulator
        .set_fault(&n, CLUSTER, &format!("tidb-unhealthy/{tidb_name}"))
        .await
        .unwrap();
    let tidbs: Api<TiDB> = Api::namespaced(client.clone(), &n);
    wait_until(
        &kubectl,
        &n,
        "the TiDB instance is not Ready",
        WAIT,
        || async {
            let t = tidbs.get(&tidb_name).await?;
            Ok::<_, kube::Error>(
                conditions::find(t.conditions(), conditions::READY)
                    .is_some_and(|c| c.reason == "InstanceNotHealthy"),
            )
        },
    )
    .await
    .unwrap();
    let failing = run(&admin, &n, &["status", CLUSTER]);
    assert_eq!(failing.status.code(), Some(3), "{}", show(&failing));
    let failing_text = text(&failing.stdout);
    assert!(failing_text.contains("NOT HEALTHY"), "{}", show(&failing));
    assert!(
        failing_text.contains(&format!(
            "TiDB/{tidb_name} Ready=False InstanceNotHealthy: "
        )),
        "{}",
        show(&failing)
    );
    simulator
        .clear_fault(&n, CLUSTER, &format!("tidb-unhealthy/{tidb_name}"))
        .await
        .unwrap();
    wait_until(&kubectl, &n, "`status` healthy again", WAIT, || {
        let admin = admin.clone();
        let n = n.clone();
        async move {
            Ok::<_, String>(run(&admin, &n, &["status", CLUSTER]).status.code() == Some(0))
        }
    })
    .await
    .unwrap();

    // A read-only identity sees everything and changes nothing: each change exits 4 and says why.
    // The Cluster's own conditions follow its groups' a moment later (the cluster-controller may
    // still be looking at the fault's last report): it too is healthy once they settle.
    let viewer = read_only_kubeconfig(&cluster, &client, &n).await;
    wait_until(
        &kubectl,
        &n,
        "`status` healthy for the read-only identity",
        WAIT,
        || {
            let viewer = viewer.clone();
            let n = n.clone();
            async move {
                Ok::<_, String>(run(&viewer, &n, &["status", CLUSTER]).status.code() == Some(0))
            }
        },
    )
    .await
    .unwrap();
    let seen = run(&viewer, &n, &["status", CLUSTER, "-o", "json"]);
    assert_eq!(seen.status.code(), Some(0), "{}", show(&seen));
    assert_eq!(json_of(&seen)["healthy"], true);
    // PD's own view needs services/proxy, which it does not have: said, and not a failure.
    let without_pd = run(&viewer, &n, &["status", CLUSTER, "--pd"]);
    assert_eq!(without_pd.status.code(), Some(0), "{}", show(&without_pd));
    let without_pd = text(&without_pd.stdout);
    assert!(
        without_pd.contains("PD's own view: not readable: ") && without_pd.contains("forbidden"),
        "{without_pd}"
    );
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &n);
    for args in [
        vec!["pause", CLUSTER],
        vec!["upgrade", CLUSTER, "v8.5.3"],
        vec!["restart", CLUSTER, "tikv"],
    ] {
        let refused = run(&viewer, &n, &args);
        assert_eq!(
            refused.status.code(),
            Some(4),
            "{args:?}: {}",
            show(&refused)
        );
        let stderr = text(&refused.stderr);
        assert!(
            stderr.contains("refused by the API server (403 Forbidden)")
                && stderr.contains("system:serviceaccount:"),
            "{args:?}: {}",
            show(&refused)
        );
    }
    assert!(!clusters.get(CLUSTER).await.unwrap().spec.paused);
    // diagnose with what it may read: the kinds it may not are named, not fatal.
    let partial = std::env::temp_dir().join(format!("{n}.viewer-diagnose"));
    let _ = std::fs::remove_dir_all(&partial);
    let diagnosed = run(
        &viewer,
        &n,
        &["diagnose", CLUSTER, "--dir", &partial.to_string_lossy()],
    );
    assert_eq!(diagnosed.status.code(), Some(0), "{}", show(&diagnosed));
    let summary = std::fs::read_to_string(partial.join("summary.txt")).unwrap();
    assert!(
        summary.contains("not allowed to list secrets: not included"),
        "{summary}"
    );
    assert!(partial.join("objects/cluster/basic.yaml").is_file());
    assert!(!partial.join("objects/secrets").exists());
    let _ = std::fs::remove_dir_all(&partial);
    let tikv_groups: Api<TiKVGroup> = Api::namespaced(client.clone(), &n);
    assert_eq!(
        tikv_groups
            .get("tikv")
            .await
            .unwrap()
            .spec
            .template
            .spec
            .common
            .version,
        "v8.5.2"
    );

    // pause / resume flip spec.paused and say so; a second pause changes nothing.
    let paused = run(&admin, &n, &["pause", CLUSTER]);
    assert_eq!(paused.status.code(), Some(0), "{}", show(&paused));
    assert_eq!(
        text(&paused.stdout),
        "Cluster/basic: spec.paused false -> true\n"
    );
    assert!(clusters.get(CLUSTER).await.unwrap().spec.paused);
    let again = run(&admin, &n, &["pause", CLUSTER]);
    assert_eq!(
        text(&again.stdout),
        "Cluster/basic: spec.paused already true (unchanged)\n"
    );
    let resumed = run(&admin, &n, &["resume", CLUSTER]);
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    assert!(!clusters.get(CLUSTER).await.unwrap().spec.paused);

    // restart of one TiKV instance: its Pod is recreated, no other.
    let tikvs: Api<TiKV> = Api::namespaced(client.clone(), &n);
    let store = tikvs.list(&ListParams::default()).await.unwrap().items[0].name_any();
    let before = pod_uids(&client, &n).await;
    let restarted = run(&admin, &n, &["restart", CLUSTER, &store]);
    assert_eq!(restarted.status.code(), Some(0), "{}", show(&restarted));
    assert!(
        text(&restarted.stdout).starts_with(&format!(
            "TiKV/{store}: metadata.annotations[pingcap.com/restartedAt] (unset) -> "
        )),
        "{}",
        show(&restarted)
    );
    wait_until(
        &kubectl,
        &n,
        "the restarted store's Pod is new and Ready",
        WAIT,
        || {
            let (client, n, store, before, admin) = (
                client.clone(),
                n.clone(),
                store.clone(),
                before.clone(),
                admin.clone(),
            );
            async move {
                let now = pod_uids(&client, &n).await;
                Ok::<_, String>(
                    now.get(&store)
                        .is_some_and(|uid| Some(uid) != before.get(&store))
                        && run(&admin, &n, &["status", CLUSTER]).status.code() == Some(0),
                )
            }
        },
    )
    .await
    .unwrap();
    let after = pod_uids(&client, &n).await;
    for (pod, uid) in &before {
        if pod != &store {
            assert_eq!(after.get(pod), Some(uid), "{pod} was not asked to restart");
        }
    }

    // restart of a group: its instance's Pod is recreated (one at a time in the roll), no other.
    let before = pod_uids(&client, &n).await;
    let pd_pods: Vec<String> = Api::<Pod>::namespaced(client.clone(), &n)
        .list(&ListParams::default().labels("pingcap.com/component=pd"))
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(pd_pods.len(), 1, "{pd_pods:?}");
    let restarted = run(&admin, &n, &["restart", CLUSTER, "pd"]);
    assert_eq!(restarted.status.code(), Some(0), "{}", show(&restarted));
    assert!(
        text(&restarted.stdout).starts_with(
            "PDGroup/pd: spec.template.metadata.annotations[pingcap.com/restartedAt] (unset) -> "
        ),
        "{}",
        show(&restarted)
    );
    wait_until(
        &kubectl,
        &n,
        "the PD Pod is new and the cluster healthy",
        WAIT,
        || {
            let (client, n, pd, before, admin) = (
                client.clone(),
                n.clone(),
                pd_pods[0].clone(),
                before.clone(),
                admin.clone(),
            );
            async move {
                let now = pod_uids(&client, &n).await;
                Ok::<_, String>(
                    now.get(&pd).is_some_and(|uid| Some(uid) != before.get(&pd))
                        && run(&admin, &n, &["status", CLUSTER]).status.code() == Some(0),
                )
            }
        },
    )
    .await
    .unwrap();
    let after = pod_uids(&client, &n).await;
    for (pod, uid) in &before {
        if pod != &pd_pods[0] {
            assert_eq!(after.get(pod), Some(uid), "{pod} is not of the PD group");
        }
    }

    // An invalid version is refused by the API's validation, with its message.
    let invalid = run(&admin, &n, &["upgrade", CLUSTER, "latest"]);
    assert_eq!(invalid.status.code(), Some(4), "{}", show(&invalid));
    assert!(text(&invalid.stderr).contains("422"), "{}", show(&invalid));

    // upgrade: every group asks for the new version; `watch` prints each group's progress, one
    // line per change, until the roll is done.
    let upgraded = run(&admin, &n, &["upgrade", CLUSTER, "v8.5.3"]);
    assert_eq!(upgraded.status.code(), Some(0), "{}", show(&upgraded));
    assert_eq!(
        text(&upgraded.stdout),
        "PDGroup/pd: spec.template.spec.version v8.5.2 -> v8.5.3\n\
         TiKVGroup/tikv: spec.template.spec.version v8.5.2 -> v8.5.3\n\
         TiDBGroup/tidb: spec.template.spec.version v8.5.2 -> v8.5.3\n"
    );
    // Right after the change the groups ask for a version they do not run yet, so the watch
    // cannot take the state before it for settled.
    let watcher = Command::new(plugin_binary())
        .arg("--kubeconfig")
        .arg(&admin)
        .args([
            "-n",
            &n,
            "watch",
            CLUSTER,
            "--interval",
            "0.3",
            "--until-settled",
        ])
        .args(["--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watched = tokio::task::spawn_blocking(move || watcher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(watched.status.code(), Some(0), "{}", show(&watched));
    let lines = text(&watched.stdout);
    for component in ["pd/pd", "tikv/tikv", "tidb/tidb"] {
        assert!(
            lines.contains(&format!(" {component} v8.5.2 -> v8.5.3 updated ")),
            "{component} progress: {lines}"
        );
        assert!(
            lines.contains(&format!(" {component} v8.5.3 updated")),
            "{component} done: {lines}"
        );
    }
    assert!(
        lines.contains(" waiting: "),
        "what the roll waits for: {lines}"
    );
    assert!(
        lines.ends_with(&format!("cluster {n}/{CLUSTER} settled\n")),
        "{lines}"
    );
    let done = json_of(&run(&admin, &n, &["status", CLUSTER, "-o", "json"]));
    for g in done["groups"].as_array().unwrap() {
        assert_eq!(g["version"], "v8.5.3", "{g:#}");
        for i in g["instances"].as_array().unwrap() {
            assert_eq!(i["upToDate"], true, "{i:#}");
        }
    }

    // diagnose: the objects, Events, status and summary; the Secret's keys but not its value.
    kubectl
        .ok(
            &[
                "create",
                "secret",
                "generic",
                "-n",
                &n,
                "basic-cluster-client-secret",
                "--from-literal=tls.key=do-not-leak-this-key",
            ],
            None,
        )
        .unwrap();
    let unpacked = std::env::temp_dir().join(format!("{n}.diagnose"));
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked).unwrap();
    let archive = unpacked.join("diagnosis.tar.gz");
    let current_tidb = tidbs.list(&ListParams::default()).await.unwrap().items[0].name_any();
    let diagnosed = run(
        &admin,
        &n,
        &["diagnose", CLUSTER, "--file", &archive.to_string_lossy()],
    );
    assert_eq!(diagnosed.status.code(), Some(0), "{}", show(&diagnosed));
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(untar.status.success(), "{}", show(&untar));
    std::fs::remove_file(&archive).unwrap();
    // One top directory, named after the namespace and the cluster.
    let tops: Vec<PathBuf> = std::fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tops.len(), 1, "{tops:?}");
    let dir = tops[0].clone();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("tidb-diagnose-{n}-{CLUSTER}-")),
        "{}",
        dir.display()
    );
    for file in [
        "objects/cluster/basic.yaml",
        "objects/pdgroups/pd.yaml",
        "objects/tikvgroups/tikv.yaml",
        "objects/tidbgroups/tidb.yaml",
        &format!("objects/tidbs/{current_tidb}.yaml"),
        &format!("objects/pods/{store}.yaml"),
        "objects/secrets/basic-cluster-client-secret.yaml",
        "events.yaml",
        "status.txt",
        "status.json",
        "summary.txt",
    ] {
        assert!(dir.join(file).is_file(), "{file} in {}", dir.display());
    }
    let secret =
        std::fs::read_to_string(dir.join("objects/secrets/basic-cluster-client-secret.yaml"))
            .unwrap();
    assert!(secret.contains("tls.key"), "{secret}");
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read(&path).unwrap();
                let content = String::from_utf8_lossy(&content);
                assert!(
                    !content.contains("do-not-leak-this-key")
                        && !content.contains("ZG8tbm90LWxlYWstdGhpcy1rZXk"),
                    "{} holds the Secret's value",
                    path.display()
                );
            }
        }
    }
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(
        summary.starts_with(&format!("Cluster {n}/basic: healthy")),
        "{summary}"
    );
    // PD runs nowhere the API server can proxy to here (its Pods are kwok's): said, not fatal.
    assert!(
        summary.contains("PD's own view: not readable: "),
        "{summary}"
    );
    // The controllers run here as processes, not Pods: the summary says what it did not find.
    assert!(
        summary.contains(
            "operator: no Pod with app.kubernetes.io/part-of=tidb-operator in namespace tidb-admin"
        ),
        "{summary}"
    );
    let events: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("events.yaml")).unwrap()).unwrap();
    assert!(events.is_sequence(), "{events:?}");

    let _ = std::fs::remove_dir_all(&unpacked);

    // The cluster has one PD member, restarted twice on purpose (`restart basic pd`, then the
    // upgrade): PD has no leader while it restarts. Those two gaps, each short, are all that is
    // allowed of PD; the rest of the verdict holds as for any scenario.
    let record = simulator.safety(&n, CLUSTER).await.unwrap();
    let gaps = record["pd_without_leader"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        gaps.len() <= 2
            && gaps
                .iter()
                .all(|g| g["duration_ms"].as_u64().unwrap_or(u64::MAX) < 10_000),
        "PD without a leader beyond its two restarts: {record:#}"
    );
    simulator
        .verdict(&n, CLUSTER, &Allowed::none().pd_quorum_loss())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(controllers);
}
