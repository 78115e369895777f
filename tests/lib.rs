//! Shared helpers of the project-level tests: the repository layout and the fixture manifests.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod audit;

/// How long after they run the PD and TiKV Pods of a simulator across two Kubernetes clusters
/// serve ([`Simulator::start_across`]).
pub const ACROSS_START_DELAY_MS: u64 = 2000;

/// `spec.minReadySeconds` of the groups of scenarios whose subject it is not: every step of a
/// roll still waits for it, but not the defaults (PD and TiKV 5 s, TiDB 10 s) that would add
/// minutes to the suite.
pub const SHORT_MIN_READY_SECONDS: i64 = 1;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Every example under `examples/`, one kustomization directory each, sorted.
pub fn example_dirs() -> Result<Vec<PathBuf>, String> {
    let root = repo_root().join("examples");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))? {
        let path = entry
            .map_err(|e| format!("{}: {e}", root.display()))?
            .path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from, relative to the repository root.
    pub file: String,
    /// Its position in the file (0-based).
    pub index: usize,
    /// The document.
    pub value: Value,
}

impl Manifest {
    /// The object's `kind`.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A short label for messages: `file#index (Kind/name)`.
    pub fn label(&self) -> String {
        let name = self
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        format!("{}#{} ({}/{})", self.file, self.index, self.kind(), name)
    }
}

/// Every YAML document of every `.yaml` file below the given folders (relative to the repository
/// root), in a stable order. Kustomization files are skipped: they are not objects.
pub fn load_manifests(folders: &[&str]) -> Result<Vec<Manifest>, String> {
    let root = repo_root();
    let mut files = Vec::new();
    for folder in folders {
        collect_yaml(&root.join(folder), &mut files)?;
    }
    files.sort();
    let mut manifests = Vec::new();
    for path in files {
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| format!("{file}#{index}: {e}"))?;
            if value.is_null() {
                continue;
            }
            manifests.push(Manifest {
                file: file.clone(),
                index,
                value,
            });
        }
    }
    Ok(manifests)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Installs the CRDs of this checkout (`manifests/crd`) into the local control plane, once per
/// test process and control plane, so tests never run against CRDs from an older build, and
/// waits until they are Established.
pub fn ensure_crds(cluster: &testkit::LocalCluster) -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    static SECOND: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    // The first control plane a process asks for is the test run's own; any other is the
    // second one of the multi-cluster scenarios.
    let own = testkit::LocalCluster::get().is_ok_and(|c| c.kubeconfig() == cluster.kubeconfig());
    let once = if own { &DONE } else { &SECOND };
    once.get_or_init(|| {
        let kubectl = cluster.kubectl();
        let dir = repo_root().join("manifests/crd");
        let dir = dir.to_string_lossy();
        kubectl
            .ok(
                &["apply", "--server-side", "--force-conflicts", "-k", &dir],
                None,
            )
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = operator_api::crds()
            .iter()
            .filter_map(|crd| crd.metadata.name.as_ref().map(|n| format!("crd/{n}")))
            .collect();
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        args.extend(names.iter().map(String::as_str));
        kubectl.ok(&args, None).map_err(|e| e.to_string())?;
        Ok(())
    })
    .clone()
}

/// The API resource of one of the operator's kinds, or of a Kubernetes kind the examples carry
/// beside them, by kind name.
pub fn api_resource(kind: &str) -> Option<kube::core::ApiResource> {
    use kube::core::ApiResource;
    use operator_api::{br, core};
    Some(match kind {
        "Cluster" => ApiResource::erase::<core::Cluster>(&()),
        "PDGroup" => ApiResource::erase::<core::PDGroup>(&()),
        "PD" => ApiResource::erase::<core::PD>(&()),
        "TiKVGroup" => ApiResource::erase::<core::TiKVGroup>(&()),
        "TiKV" => ApiResource::erase::<core::TiKV>(&()),
        "TiDBGroup" => ApiResource::erase::<core::TiDBGroup>(&()),
        "TiDB" => ApiResource::erase::<core::TiDB>(&()),
        "TiFlashGroup" => ApiResource::erase::<core::TiFlashGroup>(&()),
        "TiFlash" => ApiResource::erase::<core::TiFlash>(&()),
        "TiCDCGroup" => ApiResource::erase::<core::TiCDCGroup>(&()),
        "TiCDC" => ApiResource::erase::<core::TiCDC>(&()),
        "Backup" => ApiResource::erase::<br::Backup>(&()),
        "Restore" => ApiResource::erase::<br::Restore>(&()),
        "BackupSchedule" => ApiResource::erase::<br::BackupSchedule>(&()),
        "CompactBackup" => ApiResource::erase::<br::CompactBackup>(&()),
        "ConfigMap" => ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        "Secret" => ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
        _ => return None,
    })
}

/// A free TCP port on loopback, for a child process's HTTP server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Plain HTTP GET returning the body; errors become strings for test messages.
pub async fn http_get(url: &str) -> Result<String, String> {
    let response = reqwest::get(url)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

/// Plain HTTP request with a JSON body.
pub async fn http_send(
    method: reqwest::Method,
    url: &str,
    body: &serde_json::Value,
) -> Result<String, String> {
    let response = reqwest::Client::new()
        .request(method, url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{url}: {status}: {text}"))
    }
}

/// The finalizer by which the simulator holds a deleted Pod while its preStop hook runs.
pub const PRE_STOP_FINALIZER: &str = "simulator.pingcap.com/pre-stop";

/// The operand simulator, scoped to one test namespace, as a child process.
pub struct Simulator {
    process: testkit::ControllerProcess,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Simulator {
    /// Starts it with the admin identity (it only reads Pods) and waits for its address.
    pub async fn start(
        cluster: &testkit::LocalCluster,
        namespace: &str,
    ) -> Result<Simulator, String> {
        Self::start_with(cluster, namespace, "200ms", &[]).await
    }

    /// Stops the simulator, then takes its pre-stop finalizer off every Pod of `namespace`, so
    /// that nothing it held stays behind (a simulator started with `--pre-stop-binary` holds
    /// the Pods whose preStop hook it runs).
    pub async fn stop_releasing_pods(
        mut self,
        client: &kube::Client,
        namespace: &str,
    ) -> Result<(), String> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{ListParams, Patch, PatchParams};
        self.process.kill();
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        for pod in list.items {
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let finalizers = pod.metadata.finalizers.unwrap_or_default();
            if !finalizers.iter().any(|f| f == PRE_STOP_FINALIZER) {
                continue;
            }
            let rest: Vec<&String> = finalizers
                .iter()
                .filter(|f| *f != PRE_STOP_FINALIZER)
                .collect();
            let patch = serde_json::json!({"metadata": {"finalizers": rest}});
            pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("releasing Pod {name}: {e}"))?;
        }
        Ok(())
    }

    /// The endpoint overrides that send a controller's PD, TiKV, TiDB, TiCDC and TiFlash calls
    /// here.
    pub fn overrides(&self) -> Vec<String> {
        vec![
            format!(
                "--endpoint-override=pd={}/clusters/{{namespace}}/{{cluster}}",
                self.url
            ),
            format!(
                "--endpoint-override=tikv={}/clusters/{{namespace}}/{{cluster}}/tikv/{{instance}}",
                self.url
            ),
            format!(
                "--endpoint-override=tidb={}/clusters/{{namespace}}/{{cluster}}/tidb/{{instance}}",
                self.url
            ),
            format!(
                "--endpoint-override=ticdc={}/clusters/{{namespace}}/{{cluster}}/ticdc/{{instance}}",
                self.url
            ),
            format!(
                "--endpoint-override=tiflash={}/clusters/{{namespace}}/{{cluster}}/tiflash/{{instance}}",
                self.url
            ),
            // The PD a joining Cluster names, by host: the simulator resolves it as DNS across
            // Kubernetes clusters would.
            format!(
                "--endpoint-override=pd-join={}/hosts/{{instance}}",
                self.url
            ),
        ]
    }

    /// One simulator for two local control planes standing for two Kubernetes clusters, of
    /// cluster domains `domain` and `remote_domain`, scoped to `namespace` in both: the PD Pods
    /// of a Cluster in one that joins a Cluster in the other are one PD cluster. PD and TiKV Pods
    /// serve [`ACROSS_START_DELAY_MS`] after they run, so a restart leaves a member down long
    /// enough for another side's restart to overlap it if nothing orders them.
    pub async fn start_across(
        cluster: &testkit::LocalCluster,
        domain: &str,
        remote: &testkit::LocalCluster,
        remote_domain: &str,
        namespace: &str,
    ) -> Result<Simulator, String> {
        let args = across_args(domain, remote, remote_domain);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_with(cluster, namespace, "200ms", &args).await
    }

    /// What the simulator saw happen in a cluster, in order.
    pub async fn events(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let body = http_get(&format!(
            "{}/control/clusters/{namespace}/{cluster}/events",
            self.url
        ))
        .await?;
        let value: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        Ok(match value {
            serde_json::Value::Array(items) => items,
            other => other
                .get("events")
                .and_then(|e| e.as_array())
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The simulated state of a cluster.
    pub async fn state(&self, namespace: &str, cluster: &str) -> Result<serde_json::Value, String> {
        let body = http_get(&format!(
            "{}/control/clusters/{namespace}/{cluster}/state",
            self.url
        ))
        .await?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    /// Its log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// One replica of a controller binary, under its shipped ServiceAccount, scoped to a namespace.
pub struct Controller {
    /// The process.
    pub process: testkit::ControllerProcess,
    /// Port of its /metrics, /healthz and /readyz.
    pub port: u16,
}

impl Controller {
    /// Starts replica `replica` of `binary` watching `namespace`, with its Lease named after the
    /// namespace in `tidb-admin` (so tests do not share a Lease) and the given extra flags.
    pub async fn start(
        cluster: &testkit::LocalCluster,
        admin: &kube::Client,
        binary: &str,
        namespace: &str,
        replica: usize,
        extra: &[String],
    ) -> Result<Controller, String> {
        Self::start_from(cluster, admin, None, binary, namespace, replica, extra).await
    }

    /// [`Controller::start`] with the binary found in `bin_dir` (for example the root of the
    /// unpacked operator image) instead of the workspace's target directory.
    pub async fn start_from(
        cluster: &testkit::LocalCluster,
        admin: &kube::Client,
        bin_dir: Option<&Path>,
        binary: &str,
        namespace: &str,
        replica: usize,
        extra: &[String],
    ) -> Result<Controller, String> {
        let dir = std::env::temp_dir();
        let kubeconfig = testkit::service_account_kubeconfig(
            admin,
            cluster.kubeconfig(),
            "tidb-admin",
            binary,
            &dir,
        )
        .await
        .map_err(|e| e.to_string())?;
        let port = free_port();
        let mut args = vec![
            format!("--namespace={namespace}"),
            format!("--http-address=127.0.0.1:{port}"),
            "--lease-namespace=tidb-admin".to_string(),
            format!("--lease-name={binary}-{namespace}"),
            format!("--identity={binary}-{replica}"),
            "--log-filter=info,kube=warn".to_string(),
        ];
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log_name = format!("{namespace}.{binary}-{replica}");
        let process = match bin_dir {
            None => testkit::ControllerProcess::start(binary, &log_name, &kubeconfig, &args, &dir),
            Some(bin_dir) => testkit::ControllerProcess::start_path(
                &bin_dir.join(binary),
                &log_name,
                &kubeconfig,
                &args,
                &dir,
            ),
        }
        .map_err(|e| e.to_string())?;
        Ok(Controller { process, port })
    }

    /// Its /metrics text.
    pub async fn metrics(&self) -> Result<String, String> {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .map_err(|e| {
                let log = self.process.output();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!(
                    "{e}\n--- controller log (last lines) ---\n{}",
                    tail.join("\n")
                )
            })
    }

    /// Sum of a metric's samples whose labels contain every given `key="value"` pair.
    pub async fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        Ok(metric_sum(&self.metrics().await?, name, labels))
    }
}

/// Sums the samples of `name` in a Prometheus text exposition that carry all `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Applies the ServiceAccount and RBAC (not the Deployment) of a controller's Kustomize base, so
/// a test runs the controller under exactly what `manifests/` grants.
pub fn apply_controller_identity(
    cluster: &testkit::LocalCluster,
    controller: &str,
) -> Result<(), String> {
    let kubectl = cluster.kubectl();
    let root = repo_root();
    let namespace_base = root.join("manifests/controllers/namespace");
    kubectl
        .ok(
            &[
                "apply",
                "--server-side",
                "-k",
                &namespace_base.to_string_lossy(),
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
    let rendered = kubectl
        .ok(
            &[
                "kustomize",
                &root
                    .join("manifests/controllers")
                    .join(controller)
                    .to_string_lossy(),
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
    let wanted = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let documents: Vec<&str> = rendered
        .split("\n---\n")
        .filter(|doc| {
            serde_yaml::from_str::<serde_yaml::Value>(doc)
                .ok()
                .and_then(|v| {
                    v.get("kind")
                        .and_then(|k| k.as_str())
                        .map(|k| wanted.contains(&k))
                })
                .unwrap_or(false)
        })
        .collect();
    // Every kind at least once (a base may ship a ClusterRole for operand Pods too).
    let kind_of = |doc: &&str| {
        serde_yaml::from_str::<serde_yaml::Value>(doc)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
    };
    let kinds: Vec<String> = documents.iter().filter_map(kind_of).collect();
    if let Some(missing) = wanted.iter().find(|w| !kinds.iter().any(|k| k == *w)) {
        return Err(format!("{controller}: its base has no {missing}"));
    }
    kubectl
        .ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&documents.join("\n---\n")),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

impl Simulator {
    /// Sets a fault of a cluster through the control API, e.g. `tidb-unhealthy/basic-tidb-x`.
    pub async fn set_fault(
        &self,
        namespace: &str,
        cluster: &str,
        fault: &str,
    ) -> Result<(), String> {
        let url = format!(
            "{}/control/clusters/{namespace}/{cluster}/faults/{fault}",
            self.url
        );
        http_send(reqwest::Method::PUT, &url, &serde_json::json!({}))
            .await
            .map(drop)
    }

    /// Clears one fault of a cluster (the same path as [`Simulator::set_fault`]).
    pub async fn clear_fault(
        &self,
        namespace: &str,
        cluster: &str,
        fault: &str,
    ) -> Result<(), String> {
        let url = format!(
            "{}/control/clusters/{namespace}/{cluster}/faults/{fault}",
            self.url
        );
        http_send(reqwest::Method::DELETE, &url, &serde_json::json!({}))
            .await
            .map(drop)
    }
}

/// Whether the Pod and the PVCs of `instance` exist and are not being deleted: `(pod, pvcs)`.
pub async fn keeps_pod_and_pvc(
    client: &kube::Client,
    namespace: &str,
    instance: &str,
) -> Result<(bool, bool), kube::Error> {
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
    let pod = kube::Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(instance)
        .await?;
    let selector = format!("{}={instance}", operator_api::keys::LABEL_INSTANCE);
    let pvcs = kube::Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items;
    Ok((
        pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        !pvcs.is_empty() && pvcs.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
    ))
}

impl Simulator {
    /// The `state_name` PD reports for store `id` of a cluster (empty when it lists none).
    pub async fn store_state(
        &self,
        namespace: &str,
        cluster: &str,
        id: &str,
    ) -> Result<String, String> {
        let state = self.state(namespace, cluster).await?;
        Ok(state["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            .and_then(|s| s["state_name"].as_str())
            .unwrap_or_default()
            .to_string())
    }
}

/// The string at a dotted key of a TOML table (`server.advertise-addr`); arrays are joined with
/// commas.
pub fn toml_value(table: &toml::Table, key: &str) -> Option<String> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// Label and taint key of a test's own fake Nodes ([`NodePool`]).
pub const POOL: &str = "test.pingcap.com/pool";

/// A test's own fake Nodes `<ns>-a`, `-b`, … (kwok runs them), labelled and tainted with the pool
/// so that no other test's Pods land there, each in a zone of its own; deleted when the test ends
/// however it ends.
pub struct NodePool {
    kubectl: testkit::Kubectl,
    names: Vec<String>,
}

impl NodePool {
    /// One Node per entry of `cordoned` (whether it starts unschedulable).
    pub async fn create(
        client: &kube::Client,
        kubectl: testkit::Kubectl,
        ns: &str,
        cordoned: &[bool],
    ) -> Result<NodePool, kube::Error> {
        use k8s_openapi::api::core::v1::Node;
        let api = kube::Api::<Node>::all(client.clone());
        let mut pool = NodePool {
            kubectl,
            names: Vec::new(),
        };
        for (index, cordoned) in cordoned.iter().enumerate() {
            let suffix = char::from(b'a' + u8::try_from(index).unwrap_or(25).min(25));
            let name = format!("{ns}-{suffix}");
            let resources = serde_json::json!(
                {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
            );
            let node: Node = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {KWOK_NODE: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                        "kubernetes.io/hostname": name, "topology.kubernetes.io/region": "local",
                        "topology.kubernetes.io/zone": name, POOL: ns
                    }
                },
                "spec": {
                    "unschedulable": cordoned,
                    "taints": [{"key": POOL, "value": ns, "effect": "NoSchedule"}]
                },
                "status": {"allocatable": resources, "capacity": resources,
                           "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"}}
            }))
            .map_err(kube::Error::SerdeError)?;
            api.create(&kube::api::PostParams::default(), &node).await?;
            pool.names.push(name);
        }
        Ok(pool)
    }

    /// The name of the `index`th Node.
    pub fn node(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// A group template's `overlay` that keeps `component`'s Pods of `cluster` on the pool's
    /// Nodes, one per Node.
    pub fn overlay(ns: &str, cluster: &str, component: &str) -> Value {
        use operator_api::keys;
        serde_json::json!({"pod": {"spec": {
            "nodeSelector": {POOL: ns},
            "tolerations": [{"key": POOL, "operator": "Equal", "value": ns, "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {
                    keys::LABEL_CLUSTER: cluster, keys::LABEL_COMPONENT: component
                }}
            }]}}
        }}})
    }

    /// Loses Node `name` for good, as a machine that died: no kubelet confirms anything of the
    /// Pods there (each gets [`LOST_NODE_POD`], which the local control plane's kwok honours: a
    /// deleted one stays terminating), and the Node is tainted unreachable as the node lifecycle
    /// controller does once its lease expires (so the scheduler places nothing new there).
    pub async fn lose(&self, client: &kube::Client, name: &str) -> Result<(), kube::Error> {
        use k8s_openapi::api::core::v1::{Node, Pod};
        let pods = kube::Api::<Pod>::all(client.clone());
        let on_node = kube::api::ListParams::default().fields(&format!("spec.nodeName={name}"));
        for pod in pods.list(&on_node).await?.items {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let patch = serde_json::json!({"metadata": {"annotations": {LOST_NODE_POD: "true"}}});
            kube::Api::<Pod>::namespaced(client.clone(), &namespace)
                .patch(
                    &pod.metadata.name.clone().unwrap_or_default(),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await?;
        }
        let api = kube::Api::<Node>::all(client.clone());
        let node = api.get(name).await?;
        let mut taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        taints.push(k8s_openapi::api::core::v1::Taint {
            key: "node.kubernetes.io/unreachable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints}
        });
        api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map(drop)
    }
}

/// The annotation by which kwok runs a fake Node.
const KWOK_NODE: &str = "kwok.x-k8s.io/node";

/// The annotation of a Pod on a lost Node: the local control plane's kwok never confirms its
/// deletion (`hack/local-cluster.sh`, `ON_LOST_NODE`).
pub const LOST_NODE_POD: &str = "test.pingcap.com/node-lost";

impl Drop for NodePool {
    fn drop(&mut self) {
        let mut args = vec!["delete", "node", "--wait=false", "--ignore-not-found"];
        args.extend(self.names.iter().map(String::as_str));
        let _ = self.kubectl.run(&args, None);
    }
}

/// The endpoints of a Service that its EndpointSlices mark `ready`, by the name of the Pod they
/// point at (or the address when they name none).
pub async fn ready_endpoints(
    client: &kube::Client,
    namespace: &str,
    service: &str,
) -> Result<std::collections::BTreeSet<String>, kube::Error> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let slices = kube::Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("kubernetes.io/service-name={service}")),
        )
        .await?
        .items;
    Ok(slices
        .iter()
        .flat_map(|slice| slice.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .map(|e| {
            e.target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| e.addresses.join(","))
        })
        .collect())
}

impl Simulator {
    /// [`Simulator::start`] with other simulation settings: `tick` (e.g. `500ms`) and extra flags
    /// such as `--moves-per-tick=1` or `--regions=60`, for scenarios that need a slower cluster
    /// (a store removal that takes long enough to be cancelled).
    pub async fn start_with(
        cluster: &testkit::LocalCluster,
        namespace: &str,
        tick: &str,
        extra: &[&str],
    ) -> Result<Simulator, String> {
        let dir = std::env::temp_dir();
        let address_file = dir.join(format!("{namespace}.simulator.address"));
        let _ = std::fs::remove_file(&address_file);
        let address_arg = format!("--address-file={}", address_file.display());
        let namespace_arg = format!("--namespace={namespace}");
        let tick_arg = format!("--tick={tick}");
        let mut args = vec![
            "--listen=127.0.0.1:0",
            address_arg.as_str(),
            namespace_arg.as_str(),
            tick_arg.as_str(),
        ];
        args.extend_from_slice(extra);
        let process = testkit::ControllerProcess::start(
            "operand-simulator",
            &format!("{namespace}.simulator"),
            cluster.kubeconfig(),
            &args,
            &dir,
        )
        .map_err(|e| e.to_string())?;
        for _ in 0..100 {
            if let Ok(address) = std::fs::read_to_string(&address_file)
                && !address.trim().is_empty()
            {
                let address = address.trim();
                let url = if address.starts_with("http") {
                    address.to_string()
                } else {
                    format!("http://{address}")
                };
                return Ok(Simulator { process, url });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(format!(
            "the simulator did not report its address:\n{}",
            process.output()
        ))
    }
}

/// The operand simulator with its mutual-TLS listeners (`--tls-address-file`), for clusters
/// with `tlsCluster` on.
pub struct TlsSimulator {
    /// The simulator; its control API stays plain HTTP.
    pub simulator: Simulator,
    /// `https://ADDR` of the TLS listener of each component (`pd`, `tikv`, `tidb`, `ticdc`).
    pub urls: std::collections::BTreeMap<String, String>,
}

impl TlsSimulator {
    /// Starts the simulator on `namespace` with its TLS listeners and waits for their addresses.
    pub async fn start(
        cluster: &testkit::LocalCluster,
        namespace: &str,
    ) -> Result<TlsSimulator, String> {
        Self::start_with(cluster, namespace, &[]).await
    }

    /// [`TlsSimulator::start`] watching a second Kubernetes cluster too, as
    /// [`Simulator::start_across`]. The TLS listeners serve the certificates of the first
    /// cluster's namespace and trust the CAs found there: a second side's certificates verify
    /// only when they come from the same CA.
    pub async fn start_across(
        cluster: &testkit::LocalCluster,
        domain: &str,
        remote: &testkit::LocalCluster,
        remote_domain: &str,
        namespace: &str,
    ) -> Result<TlsSimulator, String> {
        let args = across_args(domain, remote, remote_domain);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_with(cluster, namespace, &args).await
    }

    async fn start_with(
        cluster: &testkit::LocalCluster,
        namespace: &str,
        extra: &[&str],
    ) -> Result<TlsSimulator, String> {
        let file = std::env::temp_dir().join(format!("{namespace}.simulator.tls"));
        let _ = std::fs::remove_file(&file);
        let arg = format!("--tls-address-file={}", file.display());
        let mut args = vec![arg.as_str()];
        args.extend_from_slice(extra);
        let simulator = Simulator::start_with(cluster, namespace, "200ms", &args).await?;
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let urls: std::collections::BTreeMap<String, String> = text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(c, a)| (c.to_string(), format!("https://{a}")))
                    .collect();
                if urls.len() == 5 {
                    return Ok(TlsSimulator { simulator, urls });
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(format!(
            "the simulator did not report its TLS listeners:\n{}",
            simulator.output()
        ))
    }

    /// The endpoint overrides that send a controller's PD, TiKV, TiDB, TiCDC and TiFlash calls to
    /// the TLS listeners.
    pub fn overrides(&self) -> Vec<String> {
        let url = |c: &str| self.urls.get(c).cloned().unwrap_or_default();
        vec![
            format!(
                "--endpoint-override=pd={}/clusters/{{namespace}}/{{cluster}}",
                url("pd")
            ),
            format!(
                "--endpoint-override=tikv={}/clusters/{{namespace}}/{{cluster}}/tikv/{{instance}}",
                url("tikv")
            ),
            format!(
                "--endpoint-override=tidb={}/clusters/{{namespace}}/{{cluster}}/tidb/{{instance}}",
                url("tidb")
            ),
            format!(
                "--endpoint-override=ticdc={}/clusters/{{namespace}}/{{cluster}}/ticdc/{{instance}}",
                url("ticdc")
            ),
            format!(
                "--endpoint-override=tiflash={}/clusters/{{namespace}}/{{cluster}}/tiflash/{{instance}}",
                url("tiflash")
            ),
            format!(
                "--endpoint-override=pd-join={}/hosts/{{instance}}",
                url("pd")
            ),
        ]
    }

    /// The record of the TLS handshakes, by component: `accepted`, `refused`, `last_refusal`.
    pub async fn handshakes(&self) -> Result<serde_json::Value, String> {
        let body = http_get(&format!("{}/control/tls", self.simulator.url)).await?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }
}

/// The `seq` of a simulator event (0 when it has none).
pub fn event_seq(event: &serde_json::Value) -> u64 {
    event
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default()
}

/// Checks, from the simulator's events after `start`, that an operation replaced every Pod of
/// `before` (their UIDs) exactly once: no Pod of `components` deleted twice, none created during
/// the operation deleted again, none of `before` left running.
pub fn replaced_exactly_once(
    events: &[serde_json::Value],
    start: u64,
    before: &std::collections::BTreeSet<String>,
    components: &[&str],
) -> Result<(), String> {
    let mut deleted: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for component in components {
        for event in events_of(events, "pod_deleted", &[("component", component)]) {
            if event_seq(event) > start {
                let uid = event.get("uid").and_then(serde_json::Value::as_str);
                *deleted.entry(uid.unwrap_or_default()).or_default() += 1;
            }
        }
    }
    let twice: Vec<&str> = deleted
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(u, _)| *u)
        .collect();
    if !twice.is_empty() {
        return Err(format!("Pods deleted more than once: {twice:?}"));
    }
    let again: Vec<&str> = deleted
        .keys()
        .copied()
        .filter(|u| !before.contains(*u))
        .collect();
    if !again.is_empty() {
        return Err(format!("Pods of the operation restarted again: {again:?}"));
    }
    let left: Vec<&String> = before
        .iter()
        .filter(|u| !deleted.contains_key(u.as_str()))
        .collect();
    if !left.is_empty() {
        return Err(format!("Pods never replaced: {left:?}"));
    }
    Ok(())
}

/// The `seq` of the last of the simulator's `events` (0 when there is none).
pub fn last_seq(events: &[serde_json::Value]) -> u64 {
    events.iter().map(event_seq).max().unwrap_or_default()
}

/// The simulator events of `kind` whose fields include every `(key, value)` given (values
/// compared as strings, so `("store_id", "3")` matches the number 3).
pub fn events_of<'a>(
    events: &'a [serde_json::Value],
    kind: &str,
    fields: &[(&str, &str)],
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e.get("kind").and_then(serde_json::Value::as_str) == Some(kind))
        .filter(|e| {
            fields.iter().all(|(key, value)| match e.get(*key) {
                Some(serde_json::Value::String(s)) => s == value,
                Some(other) => value
                    .parse::<serde_json::Value>()
                    .is_ok_and(|v| v == *other),
                None => false,
            })
        })
        .collect()
}

/// The longest span without a PD leader the verdict accepts, in simulation ticks: an election
/// after the leader's Pod stopped takes one or two ticks, a leader transfer one.
pub const PD_WITHOUT_LEADER_TICKS: u64 = 5;

/// The longest span of a Region without a leader the verdict accepts, in simulation ticks: a
/// TiKV restart that keeps a majority of a Region's replicas up costs it two (the leader lost,
/// then a re-election), so ten (two seconds at the scenarios' 200 ms tick) is generous.
pub const REGION_WITHOUT_LEADER_TICKS: u64 = 10;

/// What a scenario injected on purpose, so the data-safety verdict does not hold it against the
/// operator. [`Allowed::none`] for a scenario that injected nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// PD may be without a leader longer than an election takes (quorum lost, every PD Pod gone).
    pub pd_without_leader: bool,
    /// Regions may be without a leader longer than a restart takes (a majority of stores down).
    pub regions_without_leader: bool,
    /// Data may be lost (a PVC deleted by the scenario, a cluster deleted).
    pub data_loss: bool,
}

impl Allowed {
    /// Nothing: the operator alone must keep PD and every Region led and lose no data.
    pub fn none() -> Self {
        Self::default()
    }

    /// PD may lose its quorum (or all its Pods) for longer than an election.
    pub fn pd_quorum_loss(mut self) -> Self {
        self.pd_without_leader = true;
        self
    }

    /// Regions may be without a leader for longer than a restart.
    pub fn regions_without_leader(mut self) -> Self {
        self.regions_without_leader = true;
        self
    }

    /// Data may be lost.
    pub fn data_loss(mut self) -> Self {
        self.data_loss = true;
        self
    }
}

/// What breaks the verdict in a safety record (`GET /control/clusters/{ns}/{cluster}/safety`),
/// one line each; empty when it holds.
pub fn verdict_findings(record: &serde_json::Value, allowed: &Allowed) -> Vec<String> {
    let spans = |key: &str| {
        record
            .get(key)
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let ticks = |span: &serde_json::Value| {
        span.get("ticks")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let mut findings = Vec::new();
    if !allowed.pd_without_leader {
        for span in spans("pd_without_leader") {
            if ticks(&span) > PD_WITHOUT_LEADER_TICKS {
                findings.push(format!(
                    "PD without a leader for {} ticks (more than {PD_WITHOUT_LEADER_TICKS}): {span}",
                    ticks(&span)
                ));
            }
        }
    }
    if !allowed.regions_without_leader {
        let long: Vec<serde_json::Value> = spans("regions_without_leader")
            .into_iter()
            .filter(|s| ticks(s) > REGION_WITHOUT_LEADER_TICKS)
            .collect();
        if !long.is_empty() {
            let regions: std::collections::BTreeSet<u64> = long
                .iter()
                .filter_map(|s| s.get("region_id").and_then(serde_json::Value::as_u64))
                .collect();
            let longest = long.iter().map(ticks).max().unwrap_or(0);
            findings.push(format!(
                "{} Regions without a leader for more than {REGION_WITHOUT_LEADER_TICKS} ticks (longest {longest}): {regions:?}",
                regions.len()
            ));
        }
    }
    if !allowed.data_loss {
        for loss in spans("data_loss") {
            findings.push(format!("data loss: {loss}"));
        }
    }
    findings
}

impl Simulator {
    /// The availability and data-safety record of a cluster.
    pub async fn safety(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<serde_json::Value, String> {
        let body = http_get(&format!(
            "{}/control/clusters/{namespace}/{cluster}/safety",
            self.url
        ))
        .await?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    /// The data-safety verdict every end-to-end scenario checks at its end: no data lost, PD
    /// never without a leader for more than [`PD_WITHOUT_LEADER_TICKS`], no Region without a
    /// leader for more than [`REGION_WITHOUT_LEADER_TICKS`], except what `allowed` names. The
    /// error prints what broke it and the whole record.
    pub async fn verdict(
        &self,
        namespace: &str,
        cluster: &str,
        allowed: &Allowed,
    ) -> Result<(), String> {
        let record = self.safety(namespace, cluster).await?;
        let findings = verdict_findings(&record, allowed);
        if findings.is_empty() {
            return Ok(());
        }
        Err(format!(
            "data-safety verdict for {namespace}/{cluster} failed (allowed: {allowed:?}):\n- {}\n--- safety record ---\n{record:#}",
            findings.join("\n- ")
        ))
    }
}

/// The simulator's arguments for two Kubernetes clusters ([`Simulator::start_across`]).
fn across_args(domain: &str, remote: &testkit::LocalCluster, remote_domain: &str) -> Vec<String> {
    vec![
        format!("--cluster-domain={domain}"),
        format!("--remote={}={remote_domain}", remote.kubeconfig().display()),
        format!("--start-delay={ACROSS_START_DELAY_MS}ms"),
    ]
}

/// Whether cert-manager has written each Secret of `names` whole (`tls.crt`, `tls.key`,
/// `ca.crt`): the check a scenario waits on after applying its Certificates.
pub async fn issued(
    secrets: &kube::Api<k8s_openapi::api::core::v1::Secret>,
    names: &[String],
) -> Result<bool, kube::Error> {
    for name in names {
        let Some(secret) = secrets.get_opt(name).await? else {
            return Ok(false);
        };
        let data = secret.data.unwrap_or_default();
        if !["tls.crt", "tls.key", "ca.crt"]
            .iter()
            .all(|k| data.contains_key(*k))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The leaf certificate of a PEM chain, as hex DER (how the TLS simulator names the client
/// certificates it accepted, [`TlsSimulator::handshakes`]).
pub fn leaf_hex(pem: &[u8]) -> String {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .and_then(Result::ok)
        .map(|leaf| leaf.as_ref().iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod verdict_tests {
    use super::{Allowed, verdict_findings};

    #[test]
    fn the_verdict_holds_short_spans_against_nobody_and_names_the_rest() {
        let record = serde_json::json!({
            "pd_without_leader": [{"ticks": 2, "ongoing": false}, {"ticks": 9, "ongoing": true}],
            "regions_without_leader": [
                {"region_id": 7, "ticks": 2}, {"region_id": 8, "ticks": 11}, {"region_id": 9, "ticks": 40}
            ],
            "data_loss": [{"kind": "store_volume_deleted", "store_id": 3}]
        });
        let findings = verdict_findings(&record, &Allowed::none());
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert!(findings[0].contains("PD without a leader for 9 ticks"));
        assert!(findings[1].contains("2 Regions") && findings[1].contains("{8, 9}"));
        assert!(findings[2].contains("store_volume_deleted"));
        let all = Allowed::none()
            .pd_quorum_loss()
            .regions_without_leader()
            .data_loss();
        assert!(verdict_findings(&record, &all).is_empty());
        assert!(verdict_findings(&serde_json::json!({}), &Allowed::none()).is_empty());
    }
}
