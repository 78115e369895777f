//! Fully qualified names end to end: a Cluster with `dns.mode: FQDN` and its own
//! `clusterDomain`, with every controller as a process under its shipped RBAC and the operand
//! simulator standing in for a Kubernetes cluster of that domain. The Cluster comes Ready, and
//! every address in the config files, the Pods, the status and PD's view carries
//! `.svc.<clusterDomain>`; the mode of the running cluster cannot be changed; the scenario ends
//! with the simulator's data-safety verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, DNS_UNCHANGED_MESSAGE, PDGroup, TiDBGroup, TiKVGroup};
use operator_api::keys::LABEL_MANAGED_BY;
use scenarios::{Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, http_get};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(180);
const DOMAIN: &str = "east.example";
const CLUSTER: &str = "east";

/// The hosts in an address or a list of them: URLs, `host:port`, `name=url` (PD's
/// `initial-cluster`), comma separated.
fn hosts(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| a.rsplit_once('=').map_or(a, |(_, url)| url))
        .map(|a| a.split_once("://").map_or(a, |(_, rest)| rest))
        .map(|a| a.split('/').next().unwrap_or(a))
        .map(|a| a.rsplit_once(':').map_or(a, |(host, _)| host).to_string())
        .collect()
}

/// Asserts every host in `value` (found at `what`) is `<name>.<namespace>.svc.<DOMAIN>`.
fn assert_fqdn(what: &str, value: &str, ns: &str) {
    let hosts = hosts(value);
    assert!(!hosts.is_empty(), "{what}: no address in {value:?}");
    for host in hosts {
        assert!(
            host.ends_with(&format!(".{ns}.svc.{DOMAIN}")),
            "{what}: {host} is not fully qualified in {DOMAIN} (in {value:?})"
        );
    }
}

#[tokio::test]
async fn fqdn_names_are_written_everywhere_and_cannot_change() {
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
    let ns = TestNamespace::create(&cluster, &client, "dns")
        .await
        .unwrap();
    let n = ns.name();
    let kubectl = cluster.kubectl();
    // The simulator stands in for a Kubernetes cluster whose domain is DOMAIN: only names in it
    // (or the short form) resolve to a Pod.
    let domain_arg = format!("--cluster-domain={DOMAIN}");
    let simulator = Simulator::start_with(&cluster, n, "200ms", &[domain_arg.as_str()])
        .await
        .unwrap();
    let mut controllers = Vec::new();
    for binary in binaries {
        controllers.push(
            Controller::start(&cluster, &client, binary, n, 0, &simulator.overrides())
                .await
                .unwrap(),
        );
    }

    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    let object: Cluster = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": CLUSTER},
        "spec": {"dns": {"mode": "FQDN", "clusterDomain": DOMAIN}}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let data = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "1Gi"}]);
    let template = |with_data: bool| {
        let mut spec = json!({"version": "v8.5.2"});
        if with_data {
            spec["volumes"] = data.clone();
        }
        spec
    };
    let group = |kind: &str, name: &str, replicas: i32, spec: serde_json::Value| {
        json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas, "template": {"spec": spec}}
        })
    };
    Api::<PDGroup>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &serde_json::from_value(group("PDGroup", "pd", 3, template(true))).unwrap(),
        )
        .await
        .unwrap();
    Api::<TiKVGroup>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &serde_json::from_value(group("TiKVGroup", "tikv", 3, template(true))).unwrap(),
        )
        .await
        .unwrap();
    Api::<TiDBGroup>::namespaced(client.clone(), n)
        .create(
            &PostParams::default(),
            &serde_json::from_value(group("TiDBGroup", "tidb", 1, template(false))).unwrap(),
        )
        .await
        .unwrap();

    wait_until(
        &kubectl,
        n,
        "Cluster east Available and Ready with PD 3, TiKV 3, TiDB 1",
        WAIT,
        || async {
            let c = clusters.get(CLUSTER).await?;
            let found: Vec<i32> = c
                .status
                .as_ref()
                .map(|s| s.components.iter().map(|p| p.replicas).collect())
                .unwrap_or_default();
            Ok::<_, kube::Error>(
                conditions::is_true(c.conditions(), conditions::AVAILABLE)
                    && conditions::is_true(c.conditions(), conditions::READY)
                    && found == [3, 3, 1],
            )
        },
    )
    .await
    .unwrap();

    // The Cluster's status.pd, which TiKV, TiDB and BR Jobs are given.
    let status = clusters.get(CLUSTER).await.unwrap().status.unwrap();
    assert_eq!(status.pd, format!("http://pd-pd.{n}.svc.{DOMAIN}:2379"));

    // Every address key the operator owns, in every operand's config file.
    let owned: &[(&str, &[&str])] = &[
        (
            "pd",
            &[
                "advertise-client-urls",
                "advertise-peer-urls",
                "initial-cluster",
            ],
        ),
        (
            "tikv",
            &[
                "server.advertise-addr",
                "server.advertise-status-addr",
                "pd.endpoints",
            ],
        ),
        ("tidb", &["advertise-address", "path"]),
    ];
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), n)
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=tidb-operator")))
        .await
        .unwrap()
        .items;
    let mut checked = 0;
    for cm in &config_maps {
        let component = cm.labels().get("pingcap.com/component").cloned();
        let Some((_, keys)) = owned.iter().find(|(c, _)| Some(c.to_string()) == component) else {
            continue;
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get("config.toml"))
            .unwrap_or_else(|| panic!("ConfigMap {} has no config.toml", cm.name_any()));
        let table: toml::Table = text.parse().unwrap();
        for key in *keys {
            let value = scenarios::toml_value(&table, key)
                .unwrap_or_else(|| panic!("{}: no {key} in\n{text}", cm.name_any()));
            assert_fqdn(&format!("ConfigMap {} {key}", cm.name_any()), &value, n);
        }
        checked += 1;
    }
    assert_eq!(
        checked, 7,
        "one config file per instance (3 PD, 3 TiKV, 1 TiDB)"
    );

    // The Pods name no address the config does not: any name in their namespace that shows in
    // their command, args or env is fully qualified.
    let pods = Api::<Pod>::namespaced(client.clone(), n)
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=tidb-operator")))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 7);
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        for container in &spec.containers {
            let env = container
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.clone());
            let words = container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten())
                .cloned()
                .chain(env);
            for word in words.filter(|w| w.contains(&format!(".{n}"))) {
                assert_fqdn(
                    &format!("Pod {} {}", pod.name_any(), container.name),
                    &word,
                    n,
                );
            }
        }
    }

    // PD's view: the members' URLs and the stores' addresses, as the operands advertised them.
    let pd = format!("{}/clusters/{n}/{CLUSTER}/pd/api/v1", simulator.url);
    let members: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/members")).await.unwrap()).unwrap();
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        let name = m["name"].as_str().unwrap();
        for field in ["client_urls", "peer_urls"] {
            let urls: Vec<&str> = m[field]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|u| u.as_str())
                .collect();
            assert_fqdn(&format!("PD member {name} {field}"), &urls.join(","), n);
        }
    }
    let stores: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/stores")).await.unwrap()).unwrap();
    let stores = stores["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 3);
    for s in stores {
        let store = &s["store"];
        let id = &store["id"];
        for field in ["address", "status_address"] {
            assert_fqdn(
                &format!("store {id} {field}"),
                store[field].as_str().unwrap(),
                n,
            );
        }
    }

    // The names of a running cluster cannot change: PD keeps its members' peer URLs.
    let refused = clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"dns": {"mode": "InCluster"}}})),
        )
        .await
        .expect_err("changing the DNS mode of a running cluster is refused");
    assert!(
        refused.to_string().contains(DNS_UNCHANGED_MESSAGE),
        "{refused}"
    );

    simulator
        .verdict(n, CLUSTER, &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
