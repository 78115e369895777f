//! The local control plane does what the end-to-end scenarios rely on: fake Nodes over three
//! zones, Pods that become Running and Ready and are garbage-collected with their owner, Jobs that
//! complete, and controller identities that get exactly the RBAC `manifests/` ships.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use scenarios::{
    api_resource, apply_controller_identity, ensure_crds, free_port, http_get, metric_sum,
};
use serde_json::json;
use testkit::{
    ControllerProcess, LocalCluster, TestNamespace, client_for, service_account_kubeconfig,
    wait_until,
};

async fn setup(prefix: &str) -> (LocalCluster, Client, TestNamespace) {
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, prefix)
        .await
        .unwrap();
    (cluster, client, ns)
}

fn pod(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            // Test namespaces enforce the "restricted" Pod Security Standard.
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": "example.com/main:1",
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}}}]
        }
    })
}

#[tokio::test]
async fn six_ready_nodes_over_three_zones() {
    let (_cluster, client, _ns) = setup("nodes").await;
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let ready: Vec<&Node> = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    assert!(ready.len() >= 6, "{} ready nodes", ready.len());
    let zones: std::collections::BTreeSet<_> = ready
        .iter()
        .filter_map(|n| {
            n.metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    assert!(zones.len() >= 3, "zones: {zones:?}");
    for node in ready {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert!(
            labels.contains_key("kubernetes.io/hostname"),
            "{:?} has no hostname label",
            node.metadata.name
        );
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        for resource in ["cpu", "memory", "pods"] {
            assert!(
                allocatable.contains_key(resource),
                "{:?} has no allocatable {resource}",
                node.metadata.name
            );
        }
    }
}

#[tokio::test]
async fn an_owned_pod_runs_and_is_collected_with_its_owner() {
    let (cluster, client, ns) = setup("pods").await;
    let kubectl = cluster.kubectl();
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns.name());
    let pods = Api::<Pod>::namespaced(client.clone(), ns.name());
    let owner = configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let mut value = pod("owned");
    value["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap()
    }]);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(value).unwrap(),
    )
    .await
    .unwrap();

    wait_until(
        &kubectl,
        ns.name(),
        "pod owned Running and Ready on a fake node",
        Duration::from_secs(30),
        || async {
            let pod = pods.get("owned").await?;
            let status = pod.status.unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let on_node = pod.spec.and_then(|s| s.node_name).is_some();
            Ok::<_, kube::Error>(status.phase.as_deref() == Some("Running") && ready && on_node)
        },
    )
    .await
    .unwrap();

    configmaps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_until(
        &kubectl,
        ns.name(),
        "pod owned garbage-collected",
        Duration::from_secs(60),
        || async { Ok::<_, kube::Error>(pods.get_opt("owned").await?.is_none()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_job_completes() {
    let (cluster, client, ns) = setup("jobs").await;
    let jobs = Api::<Job>::namespaced(client.clone(), ns.name());
    let mut spec = pod("once")["spec"].clone();
    spec["restartPolicy"] = json!("Never");
    let job = json!({
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}}
    });
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job).unwrap(),
    )
    .await
    .unwrap();
    wait_until(
        &cluster.kubectl(),
        ns.name(),
        "job once Complete",
        Duration::from_secs(90),
        || async {
            let job = jobs.get("once").await?;
            let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
            Ok::<_, kube::Error>(
                conditions
                    .iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True"),
            )
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_test_namespace_refuses_a_pod_that_is_not_restricted() {
    let (_cluster, client, ns) = setup("restricted").await;
    let pods = Api::<Pod>::namespaced(client, ns.name());
    let root = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "main", "image": "example.com/main:1"}]}
    });
    let refused = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(root).unwrap(),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s))
            if s.code == 403 && s.message.contains("violates PodSecurity \"restricted:latest\"")),
        "{refused:?}"
    );
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod("restricted")).unwrap(),
    )
    .await
    .unwrap();
}

fn is_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref s)) if s.code == 403)
}

#[tokio::test]
async fn a_controller_identity_gets_exactly_its_rbac() {
    let (cluster, admin, ns) = setup("rbac").await;
    apply_controller_identity(&cluster, "pd-controller").unwrap();
    apply_controller_identity(&cluster, "backup-controller").unwrap();
    let dir = std::env::temp_dir();
    let pd_config = service_account_kubeconfig(
        &admin,
        cluster.kubeconfig(),
        "tidb-admin",
        "pd-controller",
        &dir,
    )
    .await
    .unwrap();
    let pd = client_for(&pd_config).await.unwrap();
    let n = ns.name();

    // Allowed: what the pd-controller uses.
    let pd_groups = Api::<kube::api::DynamicObject>::namespaced_with(
        pd.clone(),
        n,
        &api_resource("PDGroup").unwrap(),
    );
    pd_groups
        .list(&ListParams::default())
        .await
        .expect("pd-controller may list PDGroups");
    Api::<Pod>::namespaced(pd.clone(), n)
        .list(&ListParams::default())
        .await
        .expect("pd-controller may list Pods");
    let lease = Api::<Lease>::namespaced(pd.clone(), "tidb-admin")
        .get_opt("pd-controller")
        .await;
    assert!(lease.is_ok(), "pd-controller may read its Lease: {lease:?}");

    // Forbidden: what it has no business with.
    assert!(is_forbidden(
        Api::<Secret>::namespaced(pd.clone(), n)
            .list(&ListParams::default())
            .await
    ));
    let tikv_groups = Api::<kube::api::DynamicObject>::namespaced_with(
        pd.clone(),
        n,
        &api_resource("TiKVGroup").unwrap(),
    );
    assert!(is_forbidden(tikv_groups.list(&ListParams::default()).await));
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    assert!(is_forbidden(
        Api::<Deployment>::namespaced(pd.clone(), n)
            .create(&PostParams::default(), &deployment)
            .await
    ));
    assert!(is_forbidden(
        Api::<Lease>::namespaced(pd.clone(), n)
            .list(&ListParams::default())
            .await
    ));

    // The backup-controller may check that a Secret exists, never list them.
    let backup_config = service_account_kubeconfig(
        &admin,
        cluster.kubeconfig(),
        "tidb-admin",
        "backup-controller",
        &dir,
    )
    .await
    .unwrap();
    let backup = client_for(&backup_config).await.unwrap();
    let secret = Api::<Secret>::namespaced(backup.clone(), n)
        .get_opt("s3-credentials")
        .await;
    assert!(
        matches!(secret, Ok(None)),
        "backup-controller may get a Secret: {secret:?}"
    );
    assert!(is_forbidden(
        Api::<Secret>::namespaced(backup, n)
            .list(&ListParams::default())
            .await
    ));

    // A controller binary runs as a child process under that identity: it takes its Lease and
    // serves /metrics, and nothing it does is forbidden.
    let port = free_port();
    let lease = format!("pd-controller-{n}");
    let args = [
        format!("--namespace={n}"),
        "--lease-namespace=tidb-admin".to_string(),
        format!("--lease-name={lease}"),
        format!("--http-address=127.0.0.1:{port}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = ControllerProcess::start(
        "pd-controller",
        "pd-controller-rbac",
        &pd_config,
        &args,
        &dir,
    )
    .unwrap();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    wait_until(
        &cluster.kubectl(),
        n,
        "pd-controller leading under its ServiceAccount",
        Duration::from_secs(60),
        || async {
            let text = http_get(&metrics).await.unwrap_or_default();
            Ok::<_, String>(metric_sum(&text, "tidb_operator_leader", &[("lease", &lease)]) == 1.0)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", process.output()));
    let log = process.output();
    assert!(
        !log.contains("Forbidden") && !log.contains("forbidden"),
        "pd-controller was refused something:\n{log}"
    );
}
