//! One TiDB cluster across two Kubernetes clusters, stage one: the join. Two local control planes
//! stand for two Kubernetes clusters (domains `cluster-1.local` and `cluster-2.local`), each with
//! every controller as a process under its shipped RBAC, and one operand simulator watching both
//! (it is where the names of one resolve in the other). Cluster `one` comes up in the first;
//! Cluster `two` in the second names `one`'s PD members in `spec.join` and joins: one PD cluster of
//! 5 members and 6 stores, both Clusters Ready, each listing the members, stores and TiDB servers
//! of both sides with its own marked local. A third Cluster that names a PD that does not answer
//! //! says so and creates nothing. Then a new version is applied to every group of both sides at
//! once: the simulator's log shows one PD member down at a time across both sides, no TiKV Pod
//! stopped before the last PD member (of either side) ran the new version, and no TiDB Pod
//! stopped before the last store did. Each side is driven only through its own
//! API server. The scenario ends with the simulator's data-safety verdict of the whole TiDB
//! cluster.
//!
//! A second scenario takes a joined side out: every group of `two` scaled to 0 is refused while
//! the stores left would be fewer than `max-replicas`, then its stores go Tombstone through PD,
//! then its PD members leave (leadership handed to a member that stays), with its controllers
//! killed mid-way and their standbys finishing; once `two` is deleted PD lists nothing of it.
//!
//! A third joins over mutual TLS with one CA for both sides (its Secret copied), each side's
//! certificates naming its own domain; a Cluster whose certificates come from another CA is told
//! it cannot reach the PD it joins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{
    Cluster, JOIN_UNCHANGED_MESSAGE, PD, PDGroup, PdMemberStatus, TiDBGroup, TiKVGroup,
};
use operator_api::keys::LABEL_CLUSTER;
use scenarios::{
    Allowed, Controller, Simulator, TlsSimulator, apply_controller_identity, ensure_crds,
    event_seq, events_of, http_get,
};
use serde_json::json;
use testkit::{CertManager, LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(240);
/// A rolling upgrade of 5 PD members, 6 stores and 3 TiDB servers over both sides.
const UPGRADE_WAIT: Duration = Duration::from_secs(600);
const VERSION: &str = "v8.5.2";
const NEW_VERSION: &str = "v8.5.3";
const DOMAIN_1: &str = "cluster-1.local";
const DOMAIN_2: &str = "cluster-2.local";
const BINARIES: [&str; 4] = [
    "cluster-controller",
    "pd-controller",
    "tikv-controller",
    "tidb-controller",
];

/// Both local control planes, each with the CRDs and every controller's identity, their clients,
/// and a test namespace of the same name on each (the simulator watches one namespace of each).
struct Sides {
    first: LocalCluster,
    second: LocalCluster,
    client_1: Client,
    client_2: Client,
    ns_1: TestNamespace,
    ns_2: TestNamespace,
}

impl Sides {
    async fn start(prefix: &str) -> Sides {
        let first = LocalCluster::get().unwrap();
        let second = LocalCluster::second().unwrap();
        for cluster in [&first, &second] {
            ensure_crds(cluster).unwrap();
            for binary in BINARIES {
                apply_controller_identity(cluster, binary).unwrap();
            }
        }
        let client_1 = first.client().await.unwrap();
        let client_2 = second.client().await.unwrap();
        let ns_1 = TestNamespace::create(&first, &client_1, prefix)
            .await
            .unwrap();
        let ns_2 = TestNamespace::create_named(&second, &client_2, ns_1.name(), prefix)
            .await
            .unwrap();
        Sides {
            first,
            second,
            client_1,
            client_2,
            ns_1,
            ns_2,
        }
    }
}

/// Every controller of one Kubernetes cluster, pointed at the simulator; the cluster-controller
/// looks at settled Clusters often, so members that join elsewhere show soon.
async fn controllers(
    cluster: &LocalCluster,
    client: &Client,
    n: &str,
    replica: usize,
    overrides: &[String],
) -> Vec<Controller> {
    let mut running = Vec::new();
    for binary in BINARIES {
        let mut extra = overrides.to_vec();
        if binary == "cluster-controller" {
            extra.push("--settled-resync=2s".to_string());
        }
        running.push(
            Controller::start(cluster, client, binary, n, replica, &extra)
                .await
                .unwrap(),
        );
    }
    running
}

/// Creates Cluster `name` (FQDN in `domain`, with the fields of `extra` added to its spec:
/// `join`, `tlsCluster`) and its PD, TiKV and TiDB groups (`<prefix>pd`, `<prefix>tikv`,
/// `<prefix>tidb`) of the given sizes.
async fn create(
    client: &Client,
    n: &str,
    name: &str,
    domain: &str,
    extra: serde_json::Value,
    prefix: &str,
    sizes: [i32; 3],
) {
    let mut spec = json!({"dns": {"mode": "FQDN", "clusterDomain": domain}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let object: Cluster = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
        "spec": spec
    }))
    .unwrap();
    Api::<Cluster>::namespaced(client.clone(), n)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let data = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "1Gi"}]);
    let group = |kind: &str, group: &str, replicas: i32, with_data: bool| {
        let mut template = json!({"version": VERSION});
        if with_data {
            template["volumes"] = data.clone();
        }
        json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
            "metadata": {"name": format!("{prefix}{group}")},
            "spec": {"cluster": {"name": name}, "replicas": replicas, "template": {"spec": template}}
        })
    };
    let pp = PostParams::default();
    if sizes[0] > 0 {
        Api::<PDGroup>::namespaced(client.clone(), n)
            .create(
                &pp,
                &serde_json::from_value(group("PDGroup", "pd", sizes[0], true)).unwrap(),
            )
            .await
            .unwrap();
    }
    if sizes[1] > 0 {
        Api::<TiKVGroup>::namespaced(client.clone(), n)
            .create(
                &pp,
                &serde_json::from_value(group("TiKVGroup", "tikv", sizes[1], true)).unwrap(),
            )
            .await
            .unwrap();
    }
    if sizes[2] > 0 {
        Api::<TiDBGroup>::namespaced(client.clone(), n)
            .create(
                &pp,
                &serde_json::from_value(group("TiDBGroup", "tidb", sizes[2], false)).unwrap(),
            )
            .await
            .unwrap();
    }
}

/// Waits until Cluster `name` is Ready with these component replicas and its status lists
/// `members` PD members, `local` of them its own.
async fn wait_ready(
    cluster: &LocalCluster,
    client: &Client,
    n: &str,
    name: &str,
    sizes: [i32; 3],
    members: usize,
    local: usize,
) -> Vec<PdMemberStatus> {
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    wait_until(
        &cluster.kubectl(),
        n,
        &format!(
            "Cluster {name} Ready with {sizes:?}, listing {members} PD members, {local} local"
        ),
        WAIT,
        || async {
            let c = clusters.get(name).await?;
            let status = c.status.clone().unwrap_or_default();
            let found: Vec<i32> = status.components.iter().map(|p| p.replicas).collect();
            let locals = status.pd_members.iter().filter(|m| m.local).count();
            Ok::<_, kube::Error>(
                conditions::is_true(c.conditions(), conditions::READY)
                    && found == sizes
                    && status.pd_members.len() == members
                    && locals == local,
            )
        },
    )
    .await
    .unwrap();
    clusters.get(name).await.unwrap().status.unwrap().pd_members
}

#[tokio::test]
async fn a_cluster_in_a_second_kubernetes_cluster_joins_the_pd_of_the_first() {
    let Sides {
        first,
        second,
        client_1,
        client_2,
        ns_1,
        ns_2: _ns_2,
    } = Sides::start("multicluster").await;
    let n = ns_1.name();
    let simulator = Simulator::start_across(&first, DOMAIN_1, &second, DOMAIN_2, n)
        .await
        .unwrap();
    let _side_1 = controllers(&first, &client_1, n, 0, &simulator.overrides()).await;
    let _side_2 = controllers(&second, &client_2, n, 1, &simulator.overrides()).await;

    // Cluster one bootstraps the PD cluster in the first Kubernetes cluster.
    create(&client_1, n, "one", DOMAIN_1, json!({}), "", [3, 3, 2]).await;
    let members = wait_ready(&first, &client_1, n, "one", [3, 3, 2], 3, 3).await;
    let join: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    for url in &join {
        assert!(
            url.ends_with(&format!(".{n}.svc.{DOMAIN_1}:2379")),
            "PD lists fully qualified client URLs: {url}"
        );
    }

    // Cluster two joins it from the second, through its own API server only.
    create(
        &client_2,
        n,
        "two",
        DOMAIN_2,
        json!({"join": {"pdURLs": join}}),
        "",
        [2, 3, 1],
    )
    .await;
    let two = wait_ready(&second, &client_2, n, "two", [2, 3, 1], 5, 2).await;
    let one = wait_ready(&first, &client_1, n, "one", [3, 3, 2], 5, 3).await;
    // The same five members, each local on exactly one side, named after its own domain.
    assert_eq!(
        one.iter().map(|m| &m.name).collect::<Vec<_>>(),
        two.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    for (a, b) in one.iter().zip(&two) {
        assert_ne!(a.local, b.local, "{a:?} / {b:?}");
        let domain = if a.local { DOMAIN_1 } else { DOMAIN_2 };
        assert!(a.client_url.contains(&format!(".svc.{domain}:")), "{a:?}");
    }

    // Each side's status lists the six stores of the whole TiDB cluster, its own three local.
    for (cluster, client, name) in [(&first, &client_1, "one"), (&second, &client_2, "two")] {
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
        wait_until(
            &cluster.kubectl(),
            n,
            &format!("Cluster {name} lists 6 stores, 3 local"),
            WAIT,
            || async {
                let status = clusters.get(name).await?.status.unwrap_or_default();
                let local = status.stores.iter().filter(|s| s.local).count();
                Ok::<_, kube::Error>(status.stores.len() == 6 && local == 3)
            },
        )
        .await
        .unwrap();
        let status = clusters.get(name).await.unwrap().status.unwrap();
        let domain = if name == "one" { DOMAIN_1 } else { DOMAIN_2 };
        for store in &status.stores {
            assert_eq!(
                store.local,
                store.address.contains(&format!(".svc.{domain}:")),
                "{store:?}"
            );
            assert_eq!(store.state, "Up", "{store:?}");
        }
    }

    // And the three TiDB servers of both sides, as a TiDB of its own lists them, its own local.
    for (cluster, client, name, own) in [
        (&first, &client_1, "one", 2),
        (&second, &client_2, "two", 1),
    ] {
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
        wait_until(
            &cluster.kubectl(),
            n,
            &format!("Cluster {name} lists 3 TiDB servers, {own} local"),
            WAIT,
            || async {
                let status = clusters.get(name).await?.status.unwrap_or_default();
                let local = status.tidb_servers.iter().filter(|s| s.local).count();
                Ok::<_, kube::Error>(status.tidb_servers.len() == 3 && local == own)
            },
        )
        .await
        .unwrap();
        let status = clusters.get(name).await.unwrap().status.unwrap();
        let domain = if name == "one" { DOMAIN_1 } else { DOMAIN_2 };
        for server in &status.tidb_servers {
            assert_eq!(
                server.local,
                server.address.contains(&format!(".svc.{domain}:")),
                "{server:?}"
            );
            assert!(server.version.ends_with(VERSION), "{server:?}");
        }
    }

    // PD's own view, asked on either side: one PD cluster of 5 members and 6 stores.
    for name in ["one", "two"] {
        let pd = format!("{}/clusters/{n}/{name}/pd/api/v1", simulator.url);
        let members: serde_json::Value =
            serde_json::from_str(&http_get(&format!("{pd}/members")).await.unwrap()).unwrap();
        assert_eq!(members["members"].as_array().unwrap().len(), 5, "{members}");
        let stores: serde_json::Value =
            serde_json::from_str(&http_get(&format!("{pd}/stores")).await.unwrap()).unwrap();
        let stores = stores["stores"].as_array().unwrap();
        assert_eq!(stores.len(), 6);
        let remote = stores
            .iter()
            .filter(|s| {
                s["store"]["address"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&format!(".svc.{DOMAIN_2}:20160")))
            })
            .count();
        assert_eq!(remote, 3, "three stores of the second Kubernetes cluster");
    }

    // What the Cluster joins is fixed once it exists.
    let refused = Api::<Cluster>::namespaced(client_2.clone(), n)
        .patch(
            "two",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"join": {"pdURLs": [join[0].clone()]}}})),
        )
        .await
        .expect_err("changing join is refused");
    assert!(
        refused.to_string().contains(JOIN_UNCHANGED_MESSAGE),
        "{refused}"
    );

    // A Cluster that names a PD that does not answer says so and creates nothing that could
    // bootstrap a second PD cluster.
    let nowhere = format!("http://nowhere-pd.{n}.svc.{DOMAIN_1}:2379");
    create(
        &client_2,
        n,
        "lost",
        DOMAIN_2,
        json!({"join": {"pdURLs": [nowhere]}}),
        "lost-",
        [1, 0, 0],
    )
    .await;
    refused_join(&second, &client_2, n, "lost", &nowhere).await;

    upgrade_both_sides(&simulator, n, [(&first, &client_1), (&second, &client_2)]).await;

    simulator
        .verdict(n, "one", &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Cluster `name` (groups `<name>-...`), joining a PD it cannot reach at `url`: its PDGroup says
/// so in a condition and an Event, never counts as bootstrapped, and nothing of it is created
/// that could bootstrap a second PD cluster.
async fn refused_join(cluster: &LocalCluster, client: &Client, n: &str, name: &str, url: &str) {
    let group = format!("{name}-pd");
    let groups: Api<PDGroup> = Api::namespaced(client.clone(), n);
    wait_until(
        &cluster.kubectl(),
        n,
        &format!("PDGroup {group} says the PD it joins does not answer"),
        WAIT,
        || async {
            let g = groups.get(&group).await?;
            Ok::<_, kube::Error>(
                g.conditions()
                    .iter()
                    .any(|c| c.reason == "JoinTargetUnreachable" && c.message.contains(url)),
            )
        },
    )
    .await
    .unwrap();
    let events = cluster
        .kubectl()
        .ok(&["get", "events", "-n", n, "-o", "json"], None)
        .unwrap();
    assert!(
        events.contains("JoinTargetUnreachable") && events.contains(url),
        "an Event says why: {events}"
    );
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    assert!(
        Api::<PD>::namespaced(client.clone(), n)
            .list(&selector)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no PD instance of Cluster {name}"
    );
    assert!(
        Api::<Pod>::namespaced(client.clone(), n)
            .list(&selector)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no Pod of Cluster {name}"
    );
    assert!(
        !groups.get(&group).await.unwrap().spec.bootstrapped,
        "{group} never counts as bootstrapped"
    );
}

/// The new version applied to every group of both sides at once; checks the order from the
/// simulator's log and PD's view once every group runs it.
async fn upgrade_both_sides(simulator: &Simulator, n: &str, sides: [(&LocalCluster, &Client); 2]) {
    let start = simulator
        .events(n, "one")
        .await
        .unwrap()
        .iter()
        .map(event_seq)
        .max()
        .unwrap_or_default();
    let patch = Patch::Merge(json!({"spec": {"template": {"spec": {"version": NEW_VERSION}}}}));
    let pp = PatchParams::default();
    for (_, client) in sides {
        Api::<PDGroup>::namespaced(client.clone(), n)
            .patch("pd", &pp, &patch)
            .await
            .unwrap();
        Api::<TiKVGroup>::namespaced(client.clone(), n)
            .patch("tikv", &pp, &patch)
            .await
            .unwrap();
        Api::<TiDBGroup>::namespaced(client.clone(), n)
            .patch("tidb", &pp, &patch)
            .await
            .unwrap();
    }
    for (cluster, client) in sides {
        let pd: Api<PDGroup> = Api::namespaced(client.clone(), n);
        let tikv: Api<TiKVGroup> = Api::namespaced(client.clone(), n);
        let tidb: Api<TiDBGroup> = Api::namespaced(client.clone(), n);
        wait_until(
            &cluster.kubectl(),
            n,
            &format!("every group runs {NEW_VERSION}"),
            UPGRADE_WAIT,
            || async {
                let statuses = [
                    pd.get("pd").await?.status,
                    tikv.get("tikv").await?.status,
                    tidb.get("tidb").await?.status,
                ];
                Ok::<_, kube::Error>(statuses.iter().all(|status| {
                    status.as_ref().is_some_and(|s| {
                        s.group.version == NEW_VERSION
                            && s.group.updated_replicas == s.group.replicas
                            && s.group.ready_replicas == s.group.replicas
                    })
                }))
            },
        )
        .await
        .unwrap();
    }

    // The order, from what the simulator saw of the Pods of both sides (one PD cluster).
    let events: Vec<serde_json::Value> = simulator
        .events(n, "one")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .collect();
    let seqs = |kind: &str, component: &str| -> Vec<u64> {
        events_of(&events, kind, &[("component", component)])
            .into_iter()
            .map(event_seq)
            .collect()
    };
    let pd_started = seqs("pod_running", "pd");
    let tikv_stopped = seqs("pod_stopped", "tikv");
    let tikv_started = seqs("pod_running", "tikv");
    let tidb_stopped = seqs("pod_stopped", "tidb");
    assert_eq!(pd_started.len(), 5, "every PD member restarted once");
    assert_eq!(tikv_stopped.len(), 6, "every store restarted once");
    assert_eq!(tidb_stopped.len(), 3, "every TiDB server restarted once");
    // One PD member down at a time across both sides: each side's operator sees only its own
    // members; PD's restart slot orders them. A member is down from its Pod's stop until it
    // serves again, the simulator's start delay after its new Pod runs.
    let mut stopped_at = std::collections::BTreeMap::new();
    let mut down: Vec<(u64, u64, String)> = Vec::new();
    let mut pd_events: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["component"] == "pd").collect();
    pd_events.sort_by_key(|e| event_seq(e));
    for e in pd_events {
        let instance = e["instance"].as_str().unwrap_or_default().to_string();
        let at = e["unix_ms"].as_u64().unwrap_or_default();
        if e["kind"] == "pod_stopped" {
            stopped_at.insert(instance, at);
        } else if e["kind"] == "pod_running"
            && let Some(from) = stopped_at.remove(&instance)
        {
            down.push((from, at + scenarios::ACROSS_START_DELAY_MS, instance));
        }
    }
    assert_eq!(down.len(), 5, "every PD member went down once: {down:?}");
    down.sort();
    for pair in down.windows(2) {
        let ((_, a_end, a), (b_start, _, b)) = (&pair[0], &pair[1]);
        assert!(
            b_start >= a_end,
            "PD member {b} went down {} ms before {a} served again: a roll across Kubernetes clusters restarts one PD member at a time ({down:?})",
            a_end - b_start
        );
    }
    let last_pd = pd_started.iter().max().copied().unwrap_or_default();
    let first_tikv = tikv_stopped.iter().min().copied().unwrap_or_default();
    assert!(
        last_pd < first_tikv,
        "a TiKV Pod stopped (seq {first_tikv}) before the last PD member ran {NEW_VERSION} (seq {last_pd})"
    );
    let last_tikv = tikv_started.iter().max().copied().unwrap_or_default();
    let first_tidb = tidb_stopped.iter().min().copied().unwrap_or_default();
    assert!(
        last_tikv < first_tidb,
        "a TiDB Pod stopped (seq {first_tidb}) before the last store ran {NEW_VERSION} (seq {last_tikv})"
    );

    // The last member to restart gave PD's restart slot back: the next roll is not held.
    let slot = scenarios::http_send(
        reqwest::Method::POST,
        &format!("{}/clusters/{n}/one/v3/kv/range", simulator.url),
        // "/tidb-operator/pd-restart-slot" in base64, as etcd's gateway carries keys.
        &json!({"key": "L3RpZGItb3BlcmF0b3IvcGQtcmVzdGFydC1zbG90"}),
    )
    .await
    .unwrap();
    assert!(
        !slot.contains("\"kvs\""),
        "PD's restart slot is still held: {slot}"
    );

    // PD reports every member and store of both sides on the new version.
    let pd = format!("{}/clusters/{n}/one/pd/api/v1", simulator.url);
    let members: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/members")).await.unwrap()).unwrap();
    for m in members["members"].as_array().unwrap() {
        assert_eq!(m["binary_version"], NEW_VERSION, "{m}");
    }
    let stores: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/stores")).await.unwrap()).unwrap();
    for s in stores["stores"].as_array().unwrap() {
        assert_eq!(
            s["store"]["version"],
            NEW_VERSION.trim_start_matches('v'),
            "{s}"
        );
    }
}

/// The leading replica of `binary` among `running` (by each one's leader gauge for its Lease).
async fn leading(running: &[(String, Controller)], binary: &str, n: &str) -> Option<usize> {
    let lease = format!("{binary}-{n}");
    for (index, (name, controller)) in running.iter().enumerate() {
        if name == binary
            && controller
                .metric_sum("tidb_operator_leader", &[("lease", &lease)])
                .await
                .is_ok_and(|v| v == 1.0)
        {
            return Some(index);
        }
    }
    None
}

/// Simulator events of `kind` after `start` whose `field` is one of `names`, as that field's
/// values (one per event).
fn named(events: &[serde_json::Value], kind: &str, field: &str, names: &[String]) -> Vec<String> {
    events_of(events, kind, &[])
        .into_iter()
        .filter_map(|e| e[field].as_str().map(str::to_string))
        .filter(|v| names.contains(v))
        .collect()
}

/// The names of the instances of `kind` in `n` on one side.
async fn instance_names<K>(client: &Client, n: &str) -> Vec<String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    use kube::ResourceExt;
    Api::<K>::namespaced(client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

#[tokio::test]
async fn a_joined_kubernetes_cluster_exits_through_pd_and_leaves_nothing_behind() {
    use operator_api::core::TiKV;

    let Sides {
        first,
        second,
        client_1,
        client_2,
        ns_1,
        ns_2: _ns_2,
    } = Sides::start("mc-exit").await;
    let n = ns_1.name();
    let simulator = Simulator::start_across(&first, DOMAIN_1, &second, DOMAIN_2, n)
        .await
        .unwrap();
    let _side_1 = controllers(&first, &client_1, n, 0, &simulator.overrides()).await;
    // The side that exits runs a standby of the controllers that carry the exit out.
    let mut side_2: Vec<(String, Controller)> = BINARIES
        .iter()
        .map(|b| (*b).to_string())
        .zip(controllers(&second, &client_2, n, 1, &simulator.overrides()).await)
        .collect();
    for binary in ["pd-controller", "tikv-controller"] {
        let standby = Controller::start(&second, &client_2, binary, n, 2, &simulator.overrides())
            .await
            .unwrap();
        side_2.push((binary.to_string(), standby));
    }

    create(&client_1, n, "one", DOMAIN_1, json!({}), "", [3, 3, 1]).await;
    let members = wait_ready(&first, &client_1, n, "one", [3, 3, 1], 3, 3).await;
    let join: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    create(
        &client_2,
        n,
        "two",
        DOMAIN_2,
        json!({"join": {"pdURLs": join}}),
        "",
        [2, 2, 1],
    )
    .await;
    wait_ready(&second, &client_2, n, "two", [2, 2, 1], 5, 2).await;
    let pd_two = instance_names::<PD>(&client_2, n).await;
    let tikv_two = instance_names::<TiKV>(&client_2, n).await;
    assert_eq!((pd_two.len(), tikv_two.len()), (2, 2));

    // A member of the exiting side leads PD: its leadership must land on the first side.
    let pd = format!("{}/clusters/{n}/one/pd/api/v1", simulator.url);
    scenarios::http_send(
        reqwest::Method::POST,
        &format!("{pd}/leader/transfer/{}", pd_two[0]),
        &json!({}),
    )
    .await
    .unwrap();
    wait_until(
        &second.kubectl(),
        n,
        "a member of two leads PD",
        WAIT,
        || async {
            let leader: serde_json::Value =
                serde_json::from_str(&http_get(&format!("{pd}/leader")).await.unwrap_or_default())
                    .unwrap_or_default();
            Ok::<_, kube::Error>(leader["name"] == pd_two[0].as_str())
        },
    )
    .await
    .unwrap();

    // With max-replicas 4, the 3 stores left after the exit are too few: the exit is refused
    // before its first store goes, though one store alone could go (4 left).
    simulator
        .set_fault(n, "one", "max-replicas/4")
        .await
        .unwrap();
    let start = simulator
        .events(n, "one")
        .await
        .unwrap()
        .iter()
        .map(event_seq)
        .max()
        .unwrap_or_default();
    let to_zero = Patch::Merge(json!({"spec": {"replicas": 0}}));
    let pp = PatchParams::default();
    Api::<TiDBGroup>::namespaced(client_2.clone(), n)
        .patch("tidb", &pp, &to_zero)
        .await
        .unwrap();
    Api::<TiKVGroup>::namespaced(client_2.clone(), n)
        .patch("tikv", &pp, &to_zero)
        .await
        .unwrap();
    Api::<PDGroup>::namespaced(client_2.clone(), n)
        .patch("pd", &pp, &to_zero)
        .await
        .unwrap();
    let tikv_groups: Api<TiKVGroup> = Api::namespaced(client_2.clone(), n);
    wait_until(
        &second.kubectl(),
        n,
        "TiKVGroup tikv of two: the exit refused below max-replicas",
        WAIT,
        || async {
            let g = tikv_groups.get("tikv").await?;
            Ok::<_, kube::Error>(g.conditions().iter().any(|c| {
                c.type_ == conditions::SYNCED
                    && c.status == "False"
                    && c.reason == "ScaleInRefused"
                    && c.message.contains("max-replicas 4")
            }))
        },
    )
    .await
    .unwrap();
    let pd_groups: Api<PDGroup> = Api::namespaced(client_2.clone(), n);
    wait_until(
        &second.kubectl(),
        n,
        "PDGroup pd of two waits for its stores to leave PD",
        WAIT,
        || async {
            let g = pd_groups.get("pd").await?;
            Ok::<_, kube::Error>(
                g.conditions()
                    .iter()
                    .any(|c| c.reason == "ExitWaitingForStores"),
            )
        },
    )
    .await
    .unwrap();
    let events = second
        .kubectl()
        .ok(&["get", "events", "-n", n, "-o", "json"], None)
        .unwrap();
    assert!(
        events.contains("ScaleInRefused"),
        "a Warning Event says why: {events}"
    );
    let seen: Vec<serde_json::Value> = simulator
        .events(n, "one")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .collect();
    assert!(
        named(&seen, "store_deleted", "instance", &tikv_two).is_empty()
            && named(&seen, "member_deleted", "name", &pd_two).is_empty(),
        "nothing was taken offline: {seen:?}"
    );
    for tikv in Api::<TiKV>::namespaced(client_2.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        assert!(
            !kube::ResourceExt::annotations(&tikv)
                .contains_key(operator_api::keys::ANNO_DEFER_DELETE),
            "no store is marked for removal"
        );
    }

    // max-replicas back to 3: the exit goes on. The controllers that carry it out are killed
    // mid-way, each once its first step was taken; their standbys finish it.
    simulator
        .clear_fault(n, "one", "max-replicas")
        .await
        .unwrap();
    for (binary, kind, field, names) in [
        ("tikv-controller", "store_deleted", "instance", &tikv_two),
        ("pd-controller", "member_deleted", "name", &pd_two),
    ] {
        wait_until(
            &second.kubectl(),
            n,
            &format!("a {kind} of two"),
            UPGRADE_WAIT,
            || async {
                let events = simulator.events(n, "one").await.unwrap_or_default();
                Ok::<_, kube::Error>(!named(&events, kind, field, names).is_empty())
            },
        )
        .await
        .unwrap();
        let index = leading(&side_2, binary, n)
            .await
            .unwrap_or_else(|| panic!("no {binary} of two leads"));
        side_2[index].1.process.kill();
        eprintln!("killed the leading {binary} of two after its first {kind}");
    }

    // Two ends Ready and empty, listing the first side's three members only; one stays Ready.
    let left = wait_ready(&second, &client_2, n, "two", [0, 0, 0], 3, 0).await;
    assert!(
        left.iter().all(|m| m.client_url.contains(DOMAIN_1)),
        "{left:?}"
    );
    wait_ready(&first, &client_1, n, "one", [3, 3, 1], 3, 3).await;
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}=two"));
    wait_until(
        &second.kubectl(),
        n,
        "no Pod or PVC of two left",
        WAIT,
        || async {
            let pods = Api::<Pod>::namespaced(client_2.clone(), n)
                .list(&selector)
                .await?;
            let pvcs = Api::<PersistentVolumeClaim>::namespaced(client_2.clone(), n)
                .list(&selector)
                .await?;
            Ok::<_, kube::Error>(pods.items.is_empty() && pvcs.items.is_empty())
        },
    )
    .await
    .unwrap();
    let events: Vec<serde_json::Value> = simulator
        .events(n, "one")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| event_seq(e) > start)
        .collect();
    for store in &tikv_two {
        let deleted = named(
            &events,
            "store_deleted",
            "instance",
            std::slice::from_ref(store),
        );
        assert_eq!(deleted.len(), 1, "store of {store} taken offline once");
        let tombstone = named(
            &events,
            "store_tombstone",
            "instance",
            std::slice::from_ref(store),
        );
        assert_eq!(tombstone.len(), 1, "store of {store} went Tombstone once");
    }
    for member in &pd_two {
        let deleted = named(
            &events,
            "member_deleted",
            "name",
            std::slice::from_ref(member),
        );
        assert_eq!(deleted.len(), 1, "{member} left PD once");
    }
    // The PD members left after the stores, and leadership went to a member that stays.
    let last_tombstone = events_of(&events, "store_tombstone", &[])
        .into_iter()
        .map(event_seq)
        .max()
        .unwrap_or_default();
    let first_left = events_of(&events, "member_deleted", &[])
        .into_iter()
        .map(event_seq)
        .min()
        .unwrap_or_default();
    assert!(
        last_tombstone < first_left,
        "a PD member left (seq {first_left}) before the last store went Tombstone (seq {last_tombstone})"
    );
    let handed: Vec<&serde_json::Value> = events_of(&events, "leader_transferred", &[]);
    assert!(!handed.is_empty(), "leadership was handed over: {events:?}");
    for transfer in handed {
        let to = transfer["to"].as_str().unwrap_or_default();
        assert!(
            !pd_two.iter().any(|m| m == to),
            "leadership went to {to}, which leaves: {transfer}"
        );
    }

    let elected = named(&events, "leader_elected", "name", &pd_two);
    assert!(
        elected.is_empty(),
        "a leaving member was elected: {elected:?}"
    );

    // Two deleted: PD lists no member and no store of it; one stays Ready.
    Api::<TiDBGroup>::namespaced(client_2.clone(), n)
        .delete("tidb", &Default::default())
        .await
        .unwrap();
    tikv_groups
        .delete("tikv", &Default::default())
        .await
        .unwrap();
    pd_groups.delete("pd", &Default::default()).await.unwrap();
    let clusters_2: Api<Cluster> = Api::namespaced(client_2.clone(), n);
    clusters_2.delete("two", &Default::default()).await.unwrap();
    wait_until(&second.kubectl(), n, "Cluster two gone", WAIT, || async {
        Ok::<_, kube::Error>(clusters_2.get_opt("two").await?.is_none())
    })
    .await
    .unwrap();
    let members: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/members")).await.unwrap()).unwrap();
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(
        members.iter().all(|m| !m.to_string().contains(DOMAIN_2)),
        "no member of two: {members:?}"
    );
    let stores: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/stores")).await.unwrap()).unwrap();
    let stores = stores["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 3, "{stores:?}");
    assert!(
        stores
            .iter()
            .all(|s| s["store"]["state_name"] == "Up" && !s.to_string().contains(DOMAIN_2)),
        "only the first side's stores, Up: {stores:?}"
    );
    wait_ready(&first, &client_1, n, "one", [3, 3, 1], 3, 3).await;

    simulator
        .verdict(n, "one", &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// cert-manager objects applied to one side's namespace, as YAML documents.
fn apply_all(cluster: &LocalCluster, n: &str, docs: &[serde_json::Value]) {
    let yaml = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    cluster
        .kubectl()
        .ok(&["apply", "-n", n, "-f", "-"], Some(&yaml))
        .unwrap();
}

/// A Certificate issued by Issuer `issuer` into Secret `secret`.
fn certificate(secret: &str, issuer: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut spec = spec;
    spec["secretName"] = json!(secret);
    spec["subject"] = json!({"organizations": ["PingCAP"]});
    spec["issuerRef"] = json!({"name": issuer, "kind": "Issuer", "group": "cert-manager.io"});
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": secret}, "spec": spec})
}

/// A self-signed CA in Secret `secret` and Issuer `issuer` on it.
fn ca(secret: &str, issuer: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": format!("{issuer}-selfsigned")}, "spec": {"selfSigned": {}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": secret},
               "spec": {"secretName": secret, "commonName": "TiDB CA", "isCA": true,
                        "issuerRef": {"name": format!("{issuer}-selfsigned"), "kind": "Issuer"}}}),
        ca_issuer(secret, issuer),
    ]
}

fn ca_issuer(secret: &str, issuer: &str) -> serde_json::Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
           "metadata": {"name": issuer}, "spec": {"ca": {"secretName": secret}}})
}

/// The certificates of Cluster `cluster` (groups `pd`, `tikv`, `tidb`) in a Kubernetes cluster of
/// domain `domain`: each names the fully qualified Service and Pod addresses its members use
/// across clusters, and the operator's client certificate.
fn cluster_certificates(n: &str, cluster: &str, domain: &str) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    for component in ["pd", "tikv", "tidb"] {
        let mut names = Vec::new();
        for service in [
            format!("{component}-{component}"),
            format!("{component}-{component}-peer"),
        ] {
            names.push(format!("{service}.{n}.svc.{domain}"));
            names.push(format!("*.{service}.{n}.svc.{domain}"));
        }
        docs.push(certificate(
            &format!("{component}-{component}-cluster-secret"),
            "tls-issuer",
            json!({"commonName": "TiDB", "usages": ["server auth", "client auth"],
                   "dnsNames": names, "ipAddresses": ["127.0.0.1", "::1"]}),
        ));
    }
    docs.push(certificate(
        &format!("{cluster}-cluster-client-secret"),
        "tls-issuer",
        json!({"commonName": "TiDB", "usages": ["client auth"]}),
    ));
    docs
}

/// Waits until cert-manager wrote each Secret of `names` (`tls.crt`, `tls.key`, `ca.crt`).
async fn wait_issued(cluster: &LocalCluster, client: &Client, n: &str, names: &[String]) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    wait_until(
        &cluster.kubectl(),
        n,
        &format!("cert-manager issued {names:?}"),
        WAIT,
        || scenarios::issued(&secrets, names),
    )
    .await
    .unwrap();
}

/// The join over mutual TLS, as docs/tls.md tells it: one CA made in the first Kubernetes
/// cluster, its Secret copied to the second, each side's certificates from it with its own
/// domain's names. The second side's operator reaches the first side's PD with its own client
/// certificate and joins; a Cluster whose certificates come from another CA is told it cannot
/// reach the PD it joins and creates nothing.
#[tokio::test]
async fn a_cluster_joins_over_mutual_tls_with_certificates_of_one_ca() {
    let Sides {
        first,
        second,
        client_1,
        client_2,
        ns_1,
        ns_2: _ns_2,
    } = Sides::start("mc-tls").await;
    let n = ns_1.name();
    let _cert_manager_1 = CertManager::start(&first, n).await.unwrap();
    let _cert_manager_2 = CertManager::start(&second, n).await.unwrap();

    // The CA, made once in the first Kubernetes cluster; its Secret copied to the second.
    apply_all(&first, n, &ca("tls-ca-secret", "tls-issuer"));
    wait_issued(&first, &client_1, n, &["tls-ca-secret".to_string()]).await;
    let ca_secret = Api::<Secret>::namespaced(client_1.clone(), n)
        .get("tls-ca-secret")
        .await
        .unwrap();
    let copy = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("tls-ca-secret".into()),
            ..Default::default()
        },
        type_: ca_secret.type_.clone(),
        data: ca_secret.data.clone(),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client_2.clone(), n)
        .create(&PostParams::default(), &copy)
        .await
        .unwrap();
    apply_all(&second, n, &[ca_issuer("tls-ca-secret", "tls-issuer")]);
    // Each side's certificates, with the names of its own domain.
    apply_all(&first, n, &cluster_certificates(n, "one", DOMAIN_1));
    apply_all(&second, n, &cluster_certificates(n, "two", DOMAIN_2));
    let issued = |cluster: &str| {
        let mut names: Vec<String> = ["pd", "tikv", "tidb"]
            .iter()
            .map(|c| format!("{c}-{c}-cluster-secret"))
            .collect();
        names.push(format!("{cluster}-cluster-client-secret"));
        names
    };
    wait_issued(&first, &client_1, n, &issued("one")).await;
    wait_issued(&second, &client_2, n, &issued("two")).await;

    let simulator = TlsSimulator::start_across(&first, DOMAIN_1, &second, DOMAIN_2, n)
        .await
        .unwrap();
    let _side_1 = controllers(&first, &client_1, n, 0, &simulator.overrides()).await;
    let _side_2 = controllers(&second, &client_2, n, 1, &simulator.overrides()).await;

    // Two members in `one`: a second member added to a PD of one would leave it without a
    // majority until the new member serves, in etcd as in the simulator.
    let tls = json!({"tlsCluster": {"enabled": true}});
    create(&client_1, n, "one", DOMAIN_1, tls, "", [2, 2, 1]).await;
    let members = wait_ready(&first, &client_1, n, "one", [2, 2, 1], 2, 2).await;
    let join: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    create(
        &client_2,
        n,
        "two",
        DOMAIN_2,
        json!({"join": {"pdURLs": join}, "tlsCluster": {"enabled": true}}),
        "",
        [1, 1, 1],
    )
    .await;
    let two = wait_ready(&second, &client_2, n, "two", [1, 1, 1], 3, 1).await;
    wait_ready(&first, &client_1, n, "one", [2, 2, 1], 3, 2).await;
    // Every member advertises https on its fully qualified name, in its own side's domain.
    for member in &two {
        let domain = if member.local { DOMAIN_2 } else { DOMAIN_1 };
        assert!(
            member.client_url.starts_with("https://")
                && member
                    .client_url
                    .ends_with(&format!(".{n}.svc.{domain}:2379")),
            "{member:?}"
        );
    }
    // The second side's operator called PD with its own client certificate, and no handshake
    // failed: the certificates of both sides chain to the one CA.
    let client_2_secret = Api::<Secret>::namespaced(client_2.clone(), n)
        .get("two-cluster-client-secret")
        .await
        .unwrap();
    let leaf_2 = scenarios::leaf_hex(&client_2_secret.data.unwrap()["tls.crt"].0);
    let handshakes = simulator.handshakes().await.unwrap();
    let clients = handshakes["pd"]["clients"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        clients.iter().any(|c| c.as_str() == Some(leaf_2.as_str())),
        "no PD handshake with the second side's client certificate: {handshakes}"
    );
    assert_eq!(
        handshakes["pd"]["refused"].as_u64(),
        Some(0),
        "{handshakes}"
    );

    // A Cluster of the second side whose certificates come from a CA of its own (the copy
    // forgotten) cannot verify the first side's PD: it says so and creates nothing.
    apply_all(&second, n, &ca("other-ca-secret", "other-issuer"));
    apply_all(
        &second,
        n,
        &[certificate(
            "stray-cluster-client-secret",
            "other-issuer",
            json!({"commonName": "TiDB", "usages": ["client auth"]}),
        )],
    );
    wait_issued(
        &second,
        &client_2,
        n,
        &["stray-cluster-client-secret".to_string()],
    )
    .await;
    create(
        &client_2,
        n,
        "stray",
        DOMAIN_2,
        json!({"join": {"pdURLs": join}, "tlsCluster": {"enabled": true}}),
        "stray-",
        [1, 0, 0],
    )
    .await;
    refused_join(&second, &client_2, n, "stray", &join[0]).await;
    let pd = format!("{}/clusters/{n}/one/pd/api/v1", simulator.simulator.url);
    let members: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{pd}/members")).await.unwrap()).unwrap();
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "PD lists only the members of one and two: {members}"
    );

    simulator
        .simulator
        .verdict(n, "one", &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
