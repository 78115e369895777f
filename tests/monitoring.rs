//! Checks of the monitoring component (`manifests/monitoring`), offline (no cluster needed):
//! - it builds into an install (beside the dev overlay) without warnings, with a PodMonitor per
//!   operand that selects the operand Pods by the operator's labels, scrapes their named metrics
//!   port and labels the series `tidb_cluster` and `k8s_cluster`;
//! - `promtool check rules` and `promtool test rules` pass on the shipped PrometheusRule's groups
//!   (extracted from it, not written twice), with a unit test where each alert fires and one
//!   where it stays quiet (`tests/data/monitoring/alerts-test.yaml`);
//! - every query of the operator's Grafana dashboard parses (promtool checks it as a recording
//!   rule) and names only metrics the controllers export ([`operator_runtime::metrics::NAMES`]);
//! - `hack/tidb-dashboards.sh` wraps TiDB's dashboards in ConfigMaps for Grafana's sidecar (offline,
//!   from `tests/data/monitoring/dashboards`).
//!
//! `kubectl` comes from `$KUBECTL` or `PATH`, `promtool` from `$PROMTOOL` or `PATH`
//! (hack/build-tools.sh builds it); without them these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use operator_api::core::{
    PD_PORT_NAME_CLIENT, TICDC_PORT_NAME, TIDB_PORT_NAME_STATUS, TIFLASH_PORT_NAME_METRICS,
    TIFLASH_PORT_NAME_PROXY_STATUS, TIKV_PORT_NAME_STATUS,
};
use operator_api::keys;
use serde::Deserialize as _;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$NAME` when set, else `binary` found on `PATH`. Panics when there is none: these tests must
/// not pass without having run it.
fn tool(var: &str, binary: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{binary} not found: set {var} or put it on PATH (hack/build-tools.sh builds it)"
            )
        })
}

fn run(program: &Path, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        output.status
    );
    stdout
}

/// A fresh scratch directory under the target directory, for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("monitoring-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `to` relative to `from` (kustomize refuses absolute paths to bases).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (from.canonicalize().unwrap(), to.canonicalize().unwrap());
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    to[common..].iter().for_each(|c| out.push(c));
    out
}

fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The dev overlay with the monitoring component, as a user adds it, built by kustomize.
fn install_with_monitoring() -> Vec<Value> {
    let dir = scratch("install");
    let manifests = repo().join("manifests");
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
         components:\n  - {}\n",
        relative_path(&dir, &manifests.join("overlays/dev")).display(),
        relative_path(&dir, &manifests.join("monitoring")).display(),
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization).unwrap();
    let kubectl = tool("KUBECTL", "kubectl");
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("running kubectl kustomize");
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(output.status.success(), "kustomize failed: {stderr}");
    assert!(!stderr.contains("warning"), "kustomize warned: {stderr}");
    parse_documents(&String::from_utf8(output.stdout).unwrap())
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The shipped PrometheusRule, read from its file.
fn shipped_rule() -> Value {
    let path = repo().join("manifests/monitoring/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut docs = parse_documents(&text);
    assert_eq!(docs.len(), 1, "{} holds one PrometheusRule", path.display());
    docs.remove(0)
}

fn alert_names(rule: &Value) -> BTreeSet<String> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_component_adds_a_pod_monitor_per_operand_the_rules_and_the_dashboard() {
    let objects = install_with_monitoring();
    let monitors = of_kind(&objects, "PodMonitor");
    for (component, ports) in [
        (keys::COMPONENT_PD, &[PD_PORT_NAME_CLIENT][..]),
        (keys::COMPONENT_TIKV, &[TIKV_PORT_NAME_STATUS]),
        (keys::COMPONENT_TIDB, &[TIDB_PORT_NAME_STATUS]),
        (
            keys::COMPONENT_TIFLASH,
            &[TIFLASH_PORT_NAME_METRICS, TIFLASH_PORT_NAME_PROXY_STATUS],
        ),
        (keys::COMPONENT_TICDC, &[TICDC_PORT_NAME]),
    ] {
        let monitor = monitors
            .iter()
            .find(|m| m["spec"]["selector"]["matchLabels"][keys::LABEL_COMPONENT] == component)
            .unwrap_or_else(|| panic!("no PodMonitor selects {component} Pods"));
        let spec = &monitor["spec"];
        assert_eq!(spec["namespaceSelector"]["any"], true, "{component}");
        assert_eq!(
            spec["selector"]["matchLabels"][keys::LABEL_MANAGED_BY],
            keys::MANAGED_BY,
            "{component}"
        );
        let endpoints = spec["podMetricsEndpoints"].as_array().unwrap();
        let named: Vec<&str> = endpoints
            .iter()
            .filter_map(|e| e["port"].as_str())
            .collect();
        assert_eq!(named, ports, "{component}");
        for endpoint in endpoints {
            assert_eq!(endpoint["path"], "/metrics", "{component}");
            let relabelings = endpoint["relabelings"].as_array().unwrap();
            let target = |label: &str| {
                relabelings
                    .iter()
                    .find(|r| r["targetLabel"] == label)
                    .unwrap_or_else(|| panic!("{component}: no relabeling sets {label}"))
            };
            let cluster = target("tidb_cluster");
            assert_eq!(
                cluster["sourceLabels"],
                serde_json::json!([
                    "__meta_kubernetes_namespace",
                    "__meta_kubernetes_pod_label_pingcap_com_cluster"
                ]),
                "{component}: tidb_cluster is <namespace>-<cluster>"
            );
            assert_eq!(cluster["separator"], "-");
            assert!(target("k8s_cluster")["replacement"].is_string());
            assert_eq!(
                target("component")["sourceLabels"][0],
                "__meta_kubernetes_pod_label_pingcap_com_component"
            );
        }
    }
    // The pod label the relabelings read is the operator's cluster label.
    assert_eq!(keys::LABEL_CLUSTER, "pingcap.com/cluster");
    let rules = of_kind(&objects, "PrometheusRule");
    assert_eq!(rules.len(), 1);
    assert_eq!(alert_names(rules[0]), alert_names(&shipped_rule()));
    let dashboards = of_kind(&objects, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .count();
    assert_eq!(
        dashboards, 1,
        "one dashboard ConfigMap for Grafana's sidecar"
    );
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_every_alert_has_a_unit_test_both_ways() {
    let promtool = tool("PROMTOOL", "promtool");
    let dir = scratch("rules");
    // The rule file promtool reads is the PrometheusRule's spec, as the Prometheus Operator
    // hands it to Prometheus.
    let rule = shipped_rule();
    std::fs::write(
        dir.join("rules.yaml"),
        serde_yaml::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let tests = repo().join("tests/data/monitoring/alerts-test.yaml");
    std::fs::copy(&tests, dir.join("alerts-test.yaml")).unwrap();
    run(&promtool, &["check", "rules", "rules.yaml"], &dir);
    run(&promtool, &["test", "rules", "alerts-test.yaml"], &dir);

    let cases: Value = serde_yaml::from_str(&std::fs::read_to_string(&tests).unwrap()).unwrap();
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for case in cases["tests"].as_array().unwrap() {
        for check in case["alert_rule_test"].as_array().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_owned();
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let alerts = alert_names(&rule);
    assert!(alerts.len() >= 7, "{alerts:?}");
    for alert in &alerts {
        assert!(fires.contains(alert), "no unit test where {alert} fires");
        assert!(
            quiet.contains(alert),
            "no unit test where {alert} stays quiet"
        );
    }
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            assert!(
                r["annotations"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.len() > 40),
                "{} says what to do in its summary",
                r["alert"]
            );
            assert!(r["labels"]["severity"].is_string(), "{}", r["alert"]);
        }
    }
}

/// Every PromQL expression of a Grafana dashboard: its panels' (and rows' panels') targets.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The metric names a query mentions that are the operator's (`tidb_operator_...`), with a
/// histogram's `_bucket`, `_sum` and `_count` taken off.
fn operator_metrics(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("tidb_operator_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        out.push(base.to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_dashboard_query_parses_and_names_only_metrics_the_controllers_export() {
    let promtool = tool("PROMTOOL", "promtool");
    let path = repo().join("manifests/monitoring/dashboard.yaml");
    let config_map = parse_documents(&std::fs::read_to_string(&path).unwrap()).remove(0);
    let data = config_map["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "one dashboard");
    let (_, json) = data.iter().next().unwrap();
    let dashboard: Value = serde_json::from_str(json.as_str().unwrap()).expect("dashboard JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 8, "{queries:?}");

    let exported: BTreeSet<&str> = operator_runtime::metrics::NAMES.into_iter().collect();
    let mut rules = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let names = operator_metrics(query);
        assert!(!names.is_empty(), "{query}: names no operator metric");
        for name in names {
            assert!(
                exported.contains(name.as_str()),
                "{query}: {name} is not a metric the controllers export ({exported:?})"
            );
        }
        // Grafana's interval variable, as Grafana would fill it in.
        let expr = query.replace("$__rate_interval", "5m");
        assert!(
            !expr.contains('$'),
            "{query}: a variable promtool cannot check"
        );
        rules.push(serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}));
    }
    let dir = scratch("dashboard");
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(
        dir.join("queries.yaml"),
        serde_yaml::to_string(&file).unwrap(),
    )
    .unwrap();
    run(&promtool, &["check", "rules", "queries.yaml"], &dir);
}

#[test]
fn a_query_on_a_metric_that_does_not_exist_is_caught() {
    let names = operator_metrics(
        "histogram_quantile(0.9, rate(tidb_operator_reconcile_duration_seconds_bucket[5m])) \
         / tidb_operator_no_such_thing",
    );
    assert_eq!(
        names,
        [
            "tidb_operator_reconcile_duration_seconds",
            "tidb_operator_no_such_thing"
        ]
    );
    assert!(!operator_runtime::metrics::NAMES.contains(&"tidb_operator_no_such_thing"));
}

#[test]
fn the_dashboard_script_wraps_tidbs_dashboards_in_configmaps_for_the_sidecar() {
    let output = Command::new("bash")
        .arg(repo().join("hack/tidb-dashboards.sh"))
        .args(["--from", "tests/data/monitoring/dashboards"])
        .args(["--datasource", "prom-main", "--namespace", "monitoring"])
        .current_dir(repo())
        .output()
        .expect("running hack/tidb-dashboards.sh (needs bash and jq)");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let maps = parse_documents(&stdout);
    assert_eq!(maps.len(), 1, "{stdout}");
    let map = &maps[0];
    assert_eq!(map["kind"], "ConfigMap");
    assert_eq!(map["metadata"]["name"], "tidb-dashboard-tikv-summary");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(map["data"]["tikv_summary.json"].as_str().unwrap()).unwrap();
    assert!(dashboard.get("__inputs").is_none());
    assert_eq!(dashboard["panels"][0]["datasource"], "prom-main");
    // The filters on the labels the operand PodMonitors set are kept.
    let expr = dashboard["panels"][0]["targets"][0]["expr"]
        .as_str()
        .unwrap();
    assert!(expr.contains(r#"tidb_cluster="$tidb_cluster""#), "{expr}");
    assert!(!stdout.contains("DS_TEST-CLUSTER"), "{stdout}");
}
