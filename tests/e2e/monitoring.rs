//! Monitoring end to end: a real Prometheus (built by hack/build-tools.sh) discovers the operand
//! Pods of a sample cluster through Kubernetes service discovery against the local API server,
//! with the selection and relabelling of the shipped PodMonitors (`manifests/monitoring`,
//! translated here the way the Prometheus Operator translates them, not written twice), scrapes
//! them and the controllers, and evaluates the shipped alert rules. A store fault must raise
//! `tidb_operator_abnormal_instance` for that TiKV and fire `TiDBClusterStoreDown`, read through
//! Prometheus' HTTP API; both clear once the store is back.
//!
//! Test world only, and nowhere else:
//! - the operand Pods run on kwok and serve nothing, so each target's address and path are
//!   rewritten to the operand simulator, which serves a small `/metrics` per operand
//!   (`/metrics/<namespace>/<cluster>/<component>/<instance>`);
//! - discovery is limited to the scenario's namespace (the PodMonitors select every namespace);
//! - the controllers run as processes, not Pods, so they are scraped from a static list (with
//!   their PodMonitors' `honorLabels`);
//! - the rules' `for` durations are dropped, so alerts fire at their first true evaluation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::core::{Cluster, PDGroup, TiCDCGroup, TiDBGroup, TiFlashGroup, TiKV, TiKVGroup};
use operator_api::keys;
use scenarios::{
    Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, free_port, http_get,
};
use serde::Deserialize as _;
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace, wait_until};

const CLUSTER: &str = "mon";
const CONVERGE: Duration = Duration::from_secs(150);
const CONTROLLERS: [&str; 3] = ["pd-controller", "tikv-controller", "tidb-controller"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$PROMETHEUS`, else `prometheus` on `PATH`; panics without one.
fn prometheus_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMETHEUS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
        .expect("prometheus not found: set PROMETHEUS or put it on PATH (hack/build-tools.sh)")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A Prometheus label name for a Kubernetes label, as service discovery names it.
fn sanitized(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// One relabeling of a PodMonitor (camelCase) as a Prometheus relabel_config (snake_case).
fn relabel_config(relabeling: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (from, to) in [
        ("sourceLabels", "source_labels"),
        ("separator", "separator"),
        ("targetLabel", "target_label"),
        ("regex", "regex"),
        ("modulus", "modulus"),
        ("replacement", "replacement"),
        ("action", "action"),
    ] {
        if let Some(value) = relabeling.get(from) {
            out.insert(to.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// The scrape configs the Prometheus Operator makes of the shipped operand PodMonitors (the
/// parts they use: label selector, named port, path, relabelings, and the operator's own
/// `namespace`, `pod`, `job` labels), followed by the test world's rewrite to the simulator.
fn operand_scrape_configs(kubeconfig: &Path, namespace: &str, simulator: &str) -> Vec<Value> {
    let monitors = documents(&repo().join("manifests/monitoring/operands.yaml"));
    assert_eq!(monitors.len(), 5, "a PodMonitor per operand");
    let simulator_host = simulator.trim_start_matches("http://").to_owned();
    let mut configs = Vec::new();
    for monitor in monitors {
        assert_eq!(monitor["kind"], "PodMonitor");
        let name = monitor["metadata"]["name"].as_str().unwrap();
        let monitor_ns = monitor["metadata"]["namespace"].as_str().unwrap();
        let spec = &monitor["spec"];
        for (i, endpoint) in spec["podMetricsEndpoints"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let mut relabel = Vec::new();
            for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
                let label = sanitized(key);
                relabel.push(json!({
                    "action": "keep",
                    "source_labels": [format!("__meta_kubernetes_pod_label_{label}"),
                                      format!("__meta_kubernetes_pod_labelpresent_{label}")],
                    "regex": format!("({});true", value.as_str().unwrap()),
                }));
            }
            let port = endpoint["port"].as_str().unwrap();
            relabel.push(json!({"action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port}));
            relabel.push(json!({"source_labels": ["__meta_kubernetes_namespace"],
                "target_label": "namespace"}));
            relabel.push(json!({"source_labels": ["__meta_kubernetes_pod_name"],
                "target_label": "pod"}));
            relabel.push(json!({"target_label": "job",
                "replacement": format!("{monitor_ns}/{name}")}));
            relabel.push(json!({"target_label": "endpoint", "replacement": port}));
            for relabeling in endpoint["relabelings"].as_array().into_iter().flatten() {
                relabel.push(relabel_config(relabeling));
            }
            // Test world: the simulator answers for the Pod's `path`.
            assert_eq!(endpoint["path"], "/metrics", "{name}");
            relabel.push(json!({
                "source_labels": ["__meta_kubernetes_namespace",
                    format!("__meta_kubernetes_pod_label_{}", sanitized(keys::LABEL_CLUSTER)),
                    format!("__meta_kubernetes_pod_label_{}", sanitized(keys::LABEL_COMPONENT)),
                    format!("__meta_kubernetes_pod_label_{}", sanitized(keys::LABEL_INSTANCE))],
                "separator": "/",
                "regex": "(.*)",
                "target_label": "__metrics_path__",
                "replacement": "/metrics/$1",
            }));
            relabel.push(json!({"target_label": "__address__", "replacement": simulator_host}));
            configs.push(json!({
                "job_name": format!("podMonitor/{monitor_ns}/{name}/{i}"),
                "kubernetes_sd_configs": [{
                    "role": "pod",
                    "kubeconfig_file": kubeconfig.display().to_string(),
                    "namespaces": {"names": [namespace]},
                }],
                "relabel_configs": relabel,
            }));
        }
    }
    configs
}

/// The shipped rule groups, with `for` dropped (test world: no waiting).
fn rule_groups() -> Value {
    let rule = documents(&repo().join("manifests/monitoring/alerts.yaml")).remove(0);
    let mut spec = rule["spec"].clone();
    for group in spec["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("for");
        }
    }
    spec
}

struct Prometheus {
    process: testkit::ControllerProcess,
    url: String,
}

impl Prometheus {
    async fn start(
        cluster: &LocalCluster,
        namespace: &str,
        simulator: &str,
        controllers: &[(String, u16)],
    ) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("{namespace}.prometheus"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rules.yaml"),
            serde_yaml::to_string(&rule_groups()).unwrap(),
        )
        .unwrap();
        let mut scrape = operand_scrape_configs(cluster.kubeconfig(), namespace, simulator);
        for (name, port) in controllers {
            // The controller's shipped PodMonitor says whether its own labels win.
            let monitor =
                documents(&repo().join(format!("manifests/controllers/{name}/podmonitor.yaml")))
                    .remove(0);
            let honor = monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] == true;
            scrape.push(json!({
                "job_name": format!("tidb-admin/{name}"),
                "honor_labels": honor,
                "static_configs": [{"targets": [format!("127.0.0.1:{port}")],
                                    "labels": {"namespace": "tidb-admin", "pod": name}}],
            }));
        }
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [dir.join("rules.yaml").display().to_string()],
            "scrape_configs": scrape,
        });
        std::fs::write(
            dir.join("prometheus.yaml"),
            serde_yaml::to_string(&config).unwrap(),
        )
        .unwrap();
        let port = free_port();
        let args = [
            format!("--config.file={}", dir.join("prometheus.yaml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = testkit::ControllerProcess::start_path(
            &prometheus_binary(),
            &format!("{namespace}.prometheus"),
            cluster.kubeconfig(),
            &args,
            &std::env::temp_dir(),
        )
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http_get(&format!("{url}/-/ready")).await.is_ok() {
                return Prometheus { process, url };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Prometheus did not become ready:\n{}", process.output());
    }

    /// The result vector of an instant query.
    async fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", query)],
        )
        .map_err(|e| e.to_string())?;
        let body: Value =
            serde_json::from_str(&http_get(url.as_str()).await?).map_err(|e| e.to_string())?;
        body["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{query}: {body}"))
    }

    /// The names of the alerts firing now, with their labels.
    async fn firing(&self) -> Result<Vec<Value>, String> {
        let body: Value =
            serde_json::from_str(&http_get(&format!("{}/api/v1/alerts", self.url)).await?)
                .map_err(|e| e.to_string())?;
        Ok(body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .cloned()
            .collect())
    }
}

async fn create(client: &Client, ns: &str) {
    let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
        "metadata": {"name": CLUSTER}, "spec": {}
    }))
    .unwrap();
    Api::<Cluster>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
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
    let pd: PDGroup = serde_json::from_value(group("PDGroup", "pd", 1, Some(&volumes))).unwrap();
    Api::<PDGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pd)
        .await
        .unwrap();
    let tikv: TiKVGroup =
        serde_json::from_value(group("TiKVGroup", "tikv", 3, Some(&volumes))).unwrap();
    Api::<TiKVGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &tikv)
        .await
        .unwrap();
    let tidb: TiDBGroup = serde_json::from_value(group("TiDBGroup", "tidb", 1, None)).unwrap();
    Api::<TiDBGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &tidb)
        .await
        .unwrap();
    let tiflash: TiFlashGroup =
        serde_json::from_value(group("TiFlashGroup", "tiflash", 1, Some(&volumes))).unwrap();
    Api::<TiFlashGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &tiflash)
        .await
        .unwrap();
    let ticdc: TiCDCGroup = serde_json::from_value(group("TiCDCGroup", "ticdc", 1, None)).unwrap();
    Api::<TiCDCGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ticdc)
        .await
        .unwrap();
}

fn label<'a>(sample: &'a Value, name: &str) -> &'a str {
    sample["metric"][name].as_str().unwrap_or_default()
}

#[tokio::test]
async fn prometheus_scrapes_every_controller_and_operand_and_a_store_fault_fires_and_clears() {
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    for binary in CONTROLLERS {
        apply_controller_identity(&cluster, binary).unwrap();
    }
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, "monitoring")
        .await
        .unwrap();
    let n = ns.name().to_owned();
    let simulator = Simulator::start(&cluster, &n).await.unwrap();
    let mut controllers = Vec::new();
    for binary in CONTROLLERS {
        let controller =
            Controller::start(&cluster, &client, binary, &n, 0, &simulator.overrides())
                .await
                .unwrap();
        controllers.push((binary.to_owned(), controller));
    }
    create(&client, &n).await;
    let ports: Vec<(String, u16)> = controllers
        .iter()
        .map(|(name, c)| (name.clone(), c.port))
        .collect();
    let prometheus = Prometheus::start(&cluster, &n, &simulator.url, &ports).await;
    let kubectl = cluster.kubectl();

    // Every controller and every operand Pod (1 PD, 3 TiKV, 1 TiDB, 1 TiFlash, 1 TiCDC) is a
    // target that is up, with the labels the dashboards filter on.
    let tidb_cluster = format!("{n}-{CLUSTER}");
    let seen = std::sync::Mutex::new(String::new());
    let up = wait_until(&kubectl, &n, "every target up", CONVERGE, || async {
        let samples = prometheus.query("up").await?;
        *seen.lock().unwrap() = format!("{samples:#?}");
        let operands: Vec<&Value> = samples
            .iter()
            .filter(|s| !label(s, "component").is_empty())
            .collect();
        let mut components = BTreeSet::new();
        for s in &operands {
            if label(s, "tidb_cluster") != tidb_cluster
                || label(s, "k8s_cluster").is_empty()
                || label(s, "namespace") != n
                || s["value"][1] != "1"
            {
                return Ok::<_, String>(false);
            }
            components.insert(format!("{}/{}", label(s, "component"), label(s, "pod")));
        }
        let controllers_up = samples
            .iter()
            .filter(|s| label(s, "job").ends_with("-controller") && s["value"][1] == "1")
            .count();
        // TiFlash's server and proxy are two targets of one Pod.
        Ok(operands.len() == 8 && components.len() == 7 && controllers_up == CONTROLLERS.len())
    })
    .await;
    if let Err(e) = up {
        panic!(
            "{e}\n--- up ---\n{}\n--- prometheus ---\n{}",
            seen.lock().unwrap(),
            prometheus.process.output()
        );
    }

    // A store goes down: the operator marks its instance not Ready, PD counts it down.
    let tikvs = Api::<TiKV>::namespaced(client.clone(), &n)
        .list(&ListParams::default())
        .await
        .unwrap();
    let victim = tikvs.items[0].name_any();
    simulator
        .set_fault(&n, CLUSTER, &format!("store-down/{victim}"))
        .await
        .unwrap();
    let abnormal = format!(
        "tidb_operator_abnormal_instance{{instance=\"{victim}\",condition=\"Ready\",namespace=\"{n}\",cluster=\"{CLUSTER}\",component=\"tikv\"}}"
    );
    let raised = wait_until(
        &kubectl,
        &n,
        "the store fault raised and alerted",
        CONVERGE,
        || async {
            let value = prometheus.query(&abnormal).await?;
            let alerts = prometheus.firing().await?;
            *seen.lock().unwrap() = format!("{value:#?}\n{alerts:#?}");
            let store_down = alerts.iter().any(|a| {
                a["labels"]["alertname"] == "TiDBClusterStoreDown"
                    && a["labels"]["tidb_cluster"] == tidb_cluster.as_str()
            });
            Ok::<_, String>(value.len() == 1 && value[0]["value"][1] == "1" && store_down)
        },
    )
    .await;
    if let Err(e) = raised {
        panic!("{e}\n{}", seen.lock().unwrap());
    }

    // The store is back: both clear.
    simulator
        .clear_fault(&n, CLUSTER, &format!("store-down/{victim}"))
        .await
        .unwrap();
    let cleared = wait_until(
        &kubectl,
        &n,
        "the store fault cleared",
        CONVERGE,
        || async {
            let value = prometheus.query(&abnormal).await?;
            let alerts = prometheus.firing().await?;
            *seen.lock().unwrap() = format!("{value:#?}\n{alerts:#?}");
            let store_down = alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == "TiDBClusterStoreDown");
            Ok::<_, String>(value.len() == 1 && value[0]["value"][1] == "0" && !store_down)
        },
    )
    .await;
    if let Err(e) = cleared {
        panic!("{e}\n{}", seen.lock().unwrap());
    }

    simulator
        .verdict(&n, CLUSTER, &Allowed::none())
        .await
        .unwrap();
}
