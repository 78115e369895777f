//! `cargo xtask bench`: measures the operator on the local control plane. For each N, fresh
//! controller processes (one replica each, under their shipped ServiceAccounts) and the operand
//! simulator run against N sample clusters (PD 3, TiKV 3, TiDB 2) applied at once; it reports the
//! time until all are Ready, the API requests the controllers made, each controller's peak memory
//! and CPU time, the requests made while idle, and the time for a version upgrade of every
//! cluster. It prints a table and writes JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator_api::conditions;
use operator_api::core::{Cluster, PD, PDGroup, TiDB, TiDBGroup, TiKV, TiKVGroup};
use scenarios::{
    Simulator, api_resource, apply_controller_identity, ensure_crds, free_port, http_get,
    load_manifests, metric_sum,
};
use serde::Serialize;
use testkit::{ControllerProcess, LocalCluster, TestNamespace, service_account_kubeconfig};

/// Every controller binary.
pub const CONTROLLERS: [&str; 5] = [
    "cluster-controller",
    "pd-controller",
    "tikv-controller",
    "tidb-controller",
    "backup-controller",
];

/// Options of one benchmark run.
pub struct Options {
    /// Cluster counts, one round each.
    pub clusters: Vec<usize>,
    /// Seconds of idleness measured after convergence.
    pub idle: u64,
    /// Deadline of each wait.
    pub timeout: Duration,
    /// Where the JSON goes.
    pub json: PathBuf,
    /// Name of the local control plane.
    pub control_plane: String,
    /// The controllers to run.
    pub controllers: Vec<String>,
    /// Where the controller binaries are, when not next to this tool.
    pub bin_dir: Option<PathBuf>,
}

/// Figures of one controller in one round.
#[derive(Debug, Serialize)]
struct ControllerFigures {
    /// Peak resident memory, in MiB.
    peak_rss_mib: f64,
    /// CPU time (user + system), in seconds.
    cpu_seconds: f64,
    /// Requests to the Kubernetes API until every cluster was Ready.
    requests_to_ready: f64,
    /// Requests while idle.
    idle_requests: f64,
    /// Writes (create, update, patch, delete; Lease renewals left out) while idle.
    idle_writes: f64,
    /// Requests during the upgrade.
    requests_during_upgrade: f64,
    /// Reads (get, list, watch; Leases left out) until every cluster was Ready.
    reads_to_ready: f64,
    /// Reads while idle.
    idle_reads: f64,
    /// Reads during the upgrade.
    reads_during_upgrade: f64,
    /// Writes until every cluster was Ready.
    writes_to_ready: f64,
    /// Writes during the upgrade.
    writes_during_upgrade: f64,
    /// Writes until every cluster was Ready, by `<verb> <resource>`.
    writes_to_ready_by_kind: BTreeMap<String, f64>,
    /// Writes during the upgrade, by `<verb> <resource>`.
    writes_during_upgrade_by_kind: BTreeMap<String, f64>,
}

/// Figures of one round.
#[derive(Debug, Serialize)]
struct Round {
    clusters: usize,
    seconds_to_ready: f64,
    requests_to_ready: f64,
    idle_seconds: u64,
    idle_requests: f64,
    idle_writes: f64,
    seconds_to_upgrade: f64,
    requests_during_upgrade: f64,
    reads_to_ready: f64,
    idle_reads: f64,
    reads_during_upgrade: f64,
    writes_to_ready: f64,
    writes_during_upgrade: f64,
    controllers: BTreeMap<String, ControllerFigures>,
}

struct Running {
    name: String,
    process: ControllerProcess,
    port: u16,
}

impl Running {
    async fn metrics(&self) -> Result<String> {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .map_err(anyhow::Error::msg)
    }
}

fn requests(metrics: &str) -> f64 {
    metric_sum(metrics, "tidb_operator_api_requests_total", &[])
}

fn writes(metrics: &str) -> f64 {
    verbs_without_leases(metrics, &["create", "update", "patch", "delete"])
}

fn reads(metrics: &str) -> f64 {
    verbs_without_leases(metrics, &["get", "list", "watch"])
}

/// Requests of `verbs`, leader-election Leases left out.
fn verbs_without_leases(metrics: &str, verbs: &[&str]) -> f64 {
    verbs
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

/// Writes (Leases left out) by `<verb> <resource>`, from the request counter's samples.
fn writes_by_kind(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("tidb_operator_api_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| {
                pair.strip_prefix(name)
                    .and_then(|v| v.strip_prefix("=\""))
                    .map(|v| v.trim_end_matches('"'))
            })
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
            continue;
        };
        if resource == "leases" || !["create", "update", "patch", "delete"].contains(&verb) {
            continue;
        }
        *out.entry(format!("{verb} {resource}")).or_insert(0.0) +=
            value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// What `writes_by_kind` counted between two snapshots of one controller; kinds without writes
/// left out.
fn writes_by_kind_between(before: Option<&String>, after: &str) -> BTreeMap<String, f64> {
    let earlier = before.map(|t| writes_by_kind(t)).unwrap_or_default();
    writes_by_kind(after)
        .into_iter()
        .map(|(kind, n)| {
            let d = n - earlier.get(&kind).copied().unwrap_or(0.0);
            (kind, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// Peak RSS (MiB) and CPU seconds of a process, from /proc.
fn resource_use(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command.
    let clock_ticks = 100.0;
    (peak_kib / 1024.0, (ticks(11) + ticks(12)) / clock_ticks)
}

async fn snapshot(running: &[Running]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for r in running {
        out.insert(r.name.clone(), r.metrics().await?);
    }
    Ok(out)
}

fn delta(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    f: fn(&str) -> f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, text)| {
            (
                name.clone(),
                f(text) - before.get(name).map(|t| f(t)).unwrap_or(0.0),
            )
        })
        .collect()
}

/// Zones of the local control plane's fake Nodes (`hack/local-cluster.sh`).
const ZONES: f64 = 3.0;
/// Allocatable CPUs of each fake Node (`hack/local-cluster.sh`).
const NODE_CPUS: f64 = 32.0;

/// The CPUs one copy of `manifests` requests: each group's replicas and one more (a surge or a
/// replacement during a rolling update), times its template's CPU request.
fn cpus_requested(manifests: &[scenarios::Manifest]) -> f64 {
    manifests
        .iter()
        .map(|m| {
            let spec = &m.value["spec"];
            let replicas = spec["replicas"].as_f64().unwrap_or(0.0);
            let cpu = spec["template"]["spec"]["resources"]["cpu"]
                .as_str()
                .map_or(0.0, cpu_quantity);
            if replicas > 0.0 {
                (replicas + 1.0) * cpu
            } else {
                0.0
            }
        })
        .sum()
}

/// A CPU quantity (`2`, `500m`, `1.5`) in CPUs; 0 when it does not parse.
fn cpu_quantity(text: &str) -> f64 {
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map_or(0.0, |m| m / 1000.0),
        None => text.parse().unwrap_or(0.0),
    }
}

/// The allocatable CPUs of every Node.
async fn node_cpus(client: &Client) -> Result<f64> {
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing the Nodes")?;
    Ok(nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("cpu"))
        .map(|q| cpu_quantity(&q.0))
        .sum())
}

/// Runs every round and writes the report.
pub async fn run(options: Options) -> Result<()> {
    let mut manifests = load_manifests(&["examples/basic"]).map_err(anyhow::Error::msg)?;
    // minReadySeconds paces a roll by what the user asked for (PD and TiKV 5 s, TiDB 10 s per
    // instance by default); at 0 the upgrade measures the operator, and rounds stay comparable
    // with builds from before it was counted.
    for manifest in &mut manifests {
        if manifest.kind().ends_with("Group")
            && let Some(spec) = manifest
                .value
                .get_mut("spec")
                .and_then(|s| s.as_object_mut())
        {
            spec.insert("minReadySeconds".into(), 0.into());
        }
    }
    // The largest round must fit on the fake Nodes, or its Pods stay Pending for lack of CPU and
    // the round measures the scheduler instead of the operator.
    let largest = options.clusters.iter().copied().max().unwrap_or(1);
    let needed = cpus_requested(&manifests) * largest as f64;
    let per_zone = (needed / (ZONES * NODE_CPUS)).ceil().max(2.0);
    let cluster = LocalCluster::named_with(
        &options.control_plane,
        &[("LOCAL_CLUSTER_NODES_PER_ZONE", format!("{per_zone}"))],
    )
    .context("starting the local control plane")?;
    ensure_crds(&cluster).map_err(anyhow::Error::msg)?;
    for controller in &options.controllers {
        apply_controller_identity(&cluster, controller).map_err(anyhow::Error::msg)?;
    }
    let client = cluster.client().await?;
    let have = node_cpus(&client).await?;
    if have < needed {
        bail!(
            "{largest} sample clusters request {needed} CPUs (a rolling update's extra servers \
             included), and the Nodes of control plane {name} have {have}: run \
             `hack/local-cluster.sh down {name}` and the benchmark starts it with enough Nodes",
            name = options.control_plane
        );
    }
    let mut rounds = Vec::new();
    for &n in &options.clusters {
        eprintln!("==> {n} cluster(s)");
        rounds.push(round(&cluster, &client, &manifests, n, &options).await?);
    }
    print_table(&rounds);
    if let Some(dir) = options.json.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&options.json, serde_json::to_string_pretty(&rounds)?)
        .with_context(|| format!("writing {}", options.json.display()))?;
    println!("wrote {}", options.json.display());
    Ok(())
}

async fn round(
    cluster: &LocalCluster,
    client: &Client,
    manifests: &[scenarios::Manifest],
    n: usize,
    options: &Options,
) -> Result<Round> {
    let mut namespaces = Vec::new();
    for i in 0..n {
        namespaces.push(TestNamespace::create(cluster, client, &format!("bench{n}-{i}")).await?);
    }
    let dir = std::env::temp_dir();
    let simulator = Simulator::start(cluster, "")
        .await
        .map_err(anyhow::Error::msg)
        .context("starting the simulator")?;
    let mut running = Vec::new();
    for controller in options.controllers.iter().map(String::as_str) {
        let kubeconfig = service_account_kubeconfig(
            client,
            cluster.kubeconfig(),
            "tidb-admin",
            controller,
            &dir,
        )
        .await?;
        let port = free_port();
        let mut args = vec![
            format!("--http-address=127.0.0.1:{port}"),
            "--lease-namespace=tidb-admin".to_string(),
            format!("--lease-name={controller}-bench"),
            "--log-filter=warn".to_string(),
        ];
        args.extend(simulator.overrides());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log_name = format!("bench-{controller}");
        let process = match &options.bin_dir {
            None => ControllerProcess::start(controller, &log_name, &kubeconfig, &args, &dir)?,
            Some(bin_dir) => ControllerProcess::start_path(
                &bin_dir.join(controller),
                &log_name,
                &kubeconfig,
                &args,
                &dir,
            )?,
        };
        running.push(Running {
            name: controller.to_string(),
            process,
            port,
        });
    }
    wait_for(
        options.timeout,
        "every controller serving /metrics",
        || async {
            Ok(
                futures::future::join_all(running.iter().map(|r| r.metrics()))
                    .await
                    .iter()
                    .all(|m| m.is_ok()),
            )
        },
    )
    .await?;

    let start_metrics = snapshot(&running).await?;
    let started = Instant::now();
    for ns in &namespaces {
        for manifest in manifests {
            let resource = api_resource(manifest.kind()).context("a sample of an unknown kind")?;
            let object: DynamicObject = serde_json::from_value(manifest.value.clone())?;
            Api::<DynamicObject>::namespaced_with(client.clone(), ns.name(), &resource)
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {} in {}", manifest.label(), ns.name()))?;
        }
    }
    wait_for(options.timeout, "every Cluster Ready", || {
        all_ready(client, &namespaces, None)
    })
    .await?;
    let seconds_to_ready = started.elapsed().as_secs_f64();
    let ready_metrics = snapshot(&running).await?;
    // Said as soon as it is known, so a round that fails later still reports it.
    eprintln!(
        "    every Cluster Ready after {seconds_to_ready:.1} s; reads {}, writes {}",
        delta(&start_metrics, &ready_metrics, reads)
            .values()
            .sum::<f64>(),
        delta(&start_metrics, &ready_metrics, writes)
            .values()
            .sum::<f64>(),
    );

    tokio::time::sleep(Duration::from_secs(options.idle)).await;
    let idle_metrics = snapshot(&running).await?;
    eprintln!(
        "    idle {} s: reads {}, writes {}",
        options.idle,
        delta(&ready_metrics, &idle_metrics, reads)
            .values()
            .sum::<f64>(),
        delta(&ready_metrics, &idle_metrics, writes)
            .values()
            .sum::<f64>(),
    );

    let upgrade_started = Instant::now();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"version": "v8.5.3"}}}});
    for ns in &namespaces {
        let params = PatchParams::default();
        Api::<PDGroup>::namespaced(client.clone(), ns.name())
            .patch("pd", &params, &Patch::Merge(&patch))
            .await?;
        Api::<TiKVGroup>::namespaced(client.clone(), ns.name())
            .patch("tikv", &params, &Patch::Merge(&patch))
            .await?;
        Api::<TiDBGroup>::namespaced(client.clone(), ns.name())
            .patch("tidb", &params, &Patch::Merge(&patch))
            .await?;
    }
    wait_for(
        options.timeout,
        "every group on v8.5.3 and every Cluster Ready",
        || all_ready(client, &namespaces, Some("v8.5.3")),
    )
    .await?;
    let seconds_to_upgrade = upgrade_started.elapsed().as_secs_f64();
    eprintln!("    every group upgraded after {seconds_to_upgrade:.1} s");
    let upgraded_metrics = snapshot(&running).await?;

    let to_ready = delta(&start_metrics, &ready_metrics, requests);
    let idle = delta(&ready_metrics, &idle_metrics, requests);
    let idle_w = delta(&ready_metrics, &idle_metrics, writes);
    let upgrade = delta(&idle_metrics, &upgraded_metrics, requests);
    let reads_ready = delta(&start_metrics, &ready_metrics, reads);
    let reads_idle = delta(&ready_metrics, &idle_metrics, reads);
    let reads_upgrade = delta(&idle_metrics, &upgraded_metrics, reads);
    let writes_ready = delta(&start_metrics, &ready_metrics, writes);
    let writes_upgrade = delta(&idle_metrics, &upgraded_metrics, writes);
    let mut controllers = BTreeMap::new();
    for r in &running {
        let (peak_rss_mib, cpu_seconds) = resource_use(r.process.id());
        controllers.insert(
            r.name.clone(),
            ControllerFigures {
                peak_rss_mib,
                cpu_seconds,
                requests_to_ready: to_ready[&r.name],
                idle_requests: idle[&r.name],
                idle_writes: idle_w[&r.name],
                requests_during_upgrade: upgrade[&r.name],
                reads_to_ready: reads_ready[&r.name],
                idle_reads: reads_idle[&r.name],
                reads_during_upgrade: reads_upgrade[&r.name],
                writes_to_ready: writes_ready[&r.name],
                writes_during_upgrade: writes_upgrade[&r.name],
                writes_to_ready_by_kind: writes_by_kind_between(
                    start_metrics.get(&r.name),
                    &ready_metrics[&r.name],
                ),
                writes_during_upgrade_by_kind: writes_by_kind_between(
                    idle_metrics.get(&r.name),
                    &upgraded_metrics[&r.name],
                ),
            },
        );
    }
    for ns in &namespaces {
        let _ = Api::<Cluster>::namespaced(client.clone(), ns.name())
            .delete("basic", &DeleteParams::default())
            .await;
    }
    // The controllers stay until the Clusters and every instance are gone: their finalizers need
    // them, and a removal left to the next round's controllers would count among its writes.
    wait_for(
        options.timeout,
        "every Cluster and instance deleted",
        || async {
            for ns in &namespaces {
                let n = ns.name();
                let left = Api::<Cluster>::namespaced(client.clone(), n)
                    .get_opt("basic")
                    .await?
                    .is_some()
                    || !Api::<PD>::namespaced(client.clone(), n)
                        .list(&ListParams::default())
                        .await?
                        .items
                        .is_empty()
                    || !Api::<TiKV>::namespaced(client.clone(), n)
                        .list(&ListParams::default())
                        .await?
                        .items
                        .is_empty()
                    || !Api::<TiDB>::namespaced(client.clone(), n)
                        .list(&ListParams::default())
                        .await?
                        .items
                        .is_empty();
                if left {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    drop(running);
    drop(simulator);
    Ok(Round {
        clusters: n,
        seconds_to_ready,
        requests_to_ready: to_ready.values().sum(),
        idle_seconds: options.idle,
        idle_requests: idle.values().sum(),
        idle_writes: idle_w.values().sum(),
        seconds_to_upgrade,
        requests_during_upgrade: upgrade.values().sum(),
        reads_to_ready: reads_ready.values().sum(),
        idle_reads: reads_idle.values().sum(),
        reads_during_upgrade: reads_upgrade.values().sum(),
        writes_to_ready: writes_ready.values().sum(),
        writes_during_upgrade: writes_upgrade.values().sum(),
        controllers,
    })
}

/// Whether every Cluster is Ready (and, with a version, every group reports it).
async fn all_ready(
    client: &Client,
    namespaces: &[TestNamespace],
    version: Option<&str>,
) -> Result<bool> {
    for ns in namespaces {
        let Some(cluster) = Api::<Cluster>::namespaced(client.clone(), ns.name())
            .get_opt("basic")
            .await?
        else {
            return Ok(false);
        };
        let ready = cluster
            .status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY));
        if !ready {
            return Ok(false);
        }
        if let Some(version) = version {
            let params = ListParams::default();
            let pd = Api::<PDGroup>::namespaced(client.clone(), ns.name())
                .list(&params)
                .await?;
            let kv = Api::<TiKVGroup>::namespaced(client.clone(), ns.name())
                .list(&params)
                .await?;
            let db = Api::<TiDBGroup>::namespaced(client.clone(), ns.name())
                .list(&params)
                .await?;
            let versions = pd
                .iter()
                .map(|g| g.status.as_ref().map(|s| s.group.version.clone()))
                .chain(
                    kv.iter()
                        .map(|g| g.status.as_ref().map(|s| s.group.version.clone())),
                )
                .chain(
                    db.iter()
                        .map(|g| g.status.as_ref().map(|s| s.group.version.clone())),
                );
            if versions.into_iter().any(|v| v.as_deref() != Some(version)) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_table(rounds: &[Round]) {
    println!(
        "\n{:>8} {:>10} {:>9} {:>9} {:>10} {:>11} {:>12} {:>13} {:>14}",
        "clusters",
        "ready (s)",
        "reads",
        "writes",
        "idle reads",
        "idle writes",
        "upgrade (s)",
        "upgrade reads",
        "upgrade writes"
    );
    for r in rounds {
        println!(
            "{:>8} {:>10.1} {:>9.0} {:>9.0} {:>10.0} {:>11.0} {:>12.1} {:>13.0} {:>14.0}",
            r.clusters,
            r.seconds_to_ready,
            r.reads_to_ready,
            r.writes_to_ready,
            r.idle_reads,
            r.idle_writes,
            r.seconds_to_upgrade,
            r.reads_during_upgrade,
            r.writes_during_upgrade
        );
    }
    println!(
        "\n{:>8} {:<20} {:>9} {:>8} {:>9} {:>9} {:>10} {:>9}",
        "clusters",
        "controller",
        "peak MiB",
        "CPU (s)",
        "reads",
        "writes",
        "idle reads",
        "requests"
    );
    for r in rounds {
        for (name, c) in &r.controllers {
            println!(
                "{:>8} {:<20} {:>9.1} {:>8.2} {:>9.0} {:>9.0} {:>10.0} {:>9.0}",
                r.clusters,
                name,
                c.peak_rss_mib,
                c.cpu_seconds,
                c.reads_to_ready,
                c.writes_to_ready,
                c.idle_reads,
                c.requests_to_ready
            );
        }
    }
}

/// Default path of the JSON report.
pub fn default_json(root: &Path) -> PathBuf {
    root.join("target/bench/bench.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_by_verb_and_resource_without_reads_and_leases() {
        let before =
            "tidb_operator_api_requests_total{code=\"201\",resource=\"pods\",verb=\"create\"} 2\n"
                .to_string();
        let after = [
            r#"tidb_operator_api_requests_total{code="201",resource="pods",verb="create"} 5"#,
            r#"tidb_operator_api_requests_total{code="200",resource="pds/status",verb="patch"} 3"#,
            r#"tidb_operator_api_requests_total{code="409",resource="pds/status",verb="patch"} 1"#,
            r#"tidb_operator_api_requests_total{code="200",resource="pods",verb="get"} 9"#,
            r#"tidb_operator_api_requests_total{code="200",resource="leases",verb="update"} 7"#,
            r#"tidb_operator_api_requests_total{code="200",resource="services",verb="patch"} 0"#,
        ]
        .join("\n");
        let by_kind = writes_by_kind_between(Some(&before), &after);
        assert_eq!(
            by_kind,
            BTreeMap::from([
                ("create pods".to_string(), 3.0),
                ("patch pds/status".to_string(), 4.0),
            ])
        );
    }

    #[test]
    fn the_sample_cluster_requests_its_cpus_and_one_more_server_per_group() {
        let manifests = load_manifests(&["examples/basic"]).unwrap();
        // PD (3 + 1) × 1, TiKV (3 + 1) × 2, TiDB (2 + 1) × 2; the Cluster requests nothing.
        assert_eq!(cpus_requested(&manifests), 4.0 + 8.0 + 6.0);
        assert_eq!(cpu_quantity("500m"), 0.5);
        assert_eq!(cpu_quantity("2"), 2.0);
        assert_eq!(cpu_quantity("lots"), 0.0);
    }
}
