//! One TiDB cluster across two Kubernetes clusters, stage one: the join. Two local control planes
//! stand for two Kubernetes clusters (domains `cluster-1.local` and `cluster-2.local`), each with
//! every controller as a process under its shipped RBAC, and one operand simulator watching both
//! (it is where the names of one resolve in the other). Cluster `one` comes up in the first;
//! Cluster `two` in the second names `one`'s PD members in `spec.join` and joins: one PD cluster of
//! 5 members and 6 stores, both Clusters Ready, each listing the members of both sides with its
//! own marked local. A third Cluster that names a PD that does not answer says so and creates
//! nothing. Each side is driven only through its own API server. The scenario ends with the
//! simulator's data-safety verdict of the whole TiDB cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{
    Cluster, JOIN_UNCHANGED_MESSAGE, PD, PDGroup, PdMemberStatus, TiDBGroup, TiKVGroup,
};
use operator_api::keys::LABEL_CLUSTER;
use scenarios::{Allowed, Controller, Simulator, apply_controller_identity, ensure_crds, http_get};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(240);
const DOMAIN_1: &str = "cluster-1.local";
const DOMAIN_2: &str = "cluster-2.local";
const BINARIES: [&str; 4] = [
    "cluster-controller",
    "pd-controller",
    "tikv-controller",
    "tidb-controller",
];

/// Every controller of one Kubernetes cluster, pointed at the simulator; the cluster-controller
/// looks at settled Clusters often, so members that join elsewhere show soon.
async fn controllers(
    cluster: &LocalCluster,
    client: &Client,
    n: &str,
    replica: usize,
    simulator: &Simulator,
) -> Vec<Controller> {
    let mut running = Vec::new();
    for binary in BINARIES {
        let mut extra = simulator.overrides();
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

/// Creates Cluster `name` (FQDN in `domain`, joining `join` when given) and its PD, TiKV and
/// TiDB groups (`<prefix>pd`, `<prefix>tikv`, `<prefix>tidb`) of the given sizes.
async fn create(
    client: &Client,
    n: &str,
    name: &str,
    domain: &str,
    join: Option<&[String]>,
    prefix: &str,
    sizes: [i32; 3],
) {
    let mut spec = json!({"dns": {"mode": "FQDN", "clusterDomain": domain}});
    if let Some(urls) = join {
        spec["join"] = json!({"pdURLs": urls});
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
        let mut template = json!({"version": "v8.5.2"});
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
    // The same namespace name on both sides: the simulator watches one namespace of each.
    let ns_1 = TestNamespace::create(&first, &client_1, "multicluster")
        .await
        .unwrap();
    let n = ns_1.name();
    let _ns_2 = TestNamespace::create_named(&second, &client_2, n, "multicluster")
        .await
        .unwrap();
    let simulator = Simulator::start_across(&first, DOMAIN_1, &second, DOMAIN_2, n)
        .await
        .unwrap();
    let _side_1 = controllers(&first, &client_1, n, 0, &simulator).await;
    let _side_2 = controllers(&second, &client_2, n, 1, &simulator).await;

    // Cluster one bootstraps the PD cluster in the first Kubernetes cluster.
    create(&client_1, n, "one", DOMAIN_1, None, "", [3, 3, 2]).await;
    let members = wait_ready(&first, &client_1, n, "one", [3, 3, 2], 3, 3).await;
    let join: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    for url in &join {
        assert!(
            url.ends_with(&format!(".{n}.svc.{DOMAIN_1}:2379")),
            "PD lists fully qualified client URLs: {url}"
        );
    }

    // Cluster two joins it from the second, through its own API server only.
    create(&client_2, n, "two", DOMAIN_2, Some(&join), "", [2, 3, 1]).await;
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
        Some(std::slice::from_ref(&nowhere)),
        "lost-",
        [1, 0, 0],
    )
    .await;
    let groups: Api<PDGroup> = Api::namespaced(client_2.clone(), n);
    wait_until(
        &second.kubectl(),
        n,
        "PDGroup lost-pd says the PD it joins does not answer",
        WAIT,
        || async {
            let g = groups.get("lost-pd").await?;
            Ok::<_, kube::Error>(
                g.conditions()
                    .iter()
                    .any(|c| c.reason == "JoinTargetUnreachable" && c.message.contains(&nowhere)),
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
        events.contains("JoinTargetUnreachable") && events.contains(&nowhere),
        "an Event says why: {events}"
    );
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}=lost"));
    assert!(
        Api::<PD>::namespaced(client_2.clone(), n)
            .list(&selector)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no PD instance of the lost Cluster"
    );
    assert!(
        Api::<Pod>::namespaced(client_2.clone(), n)
            .list(&selector)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no Pod of the lost Cluster"
    );
    let groups = groups.get("lost-pd").await.unwrap();
    assert!(
        !groups.spec.bootstrapped,
        "the lost group never counts as bootstrapped"
    );

    simulator
        .verdict(n, "one", &Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
