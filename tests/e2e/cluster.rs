//! Cluster end to end: the cluster-controller and pd-controller as processes under their shipped
//! RBAC, with the operand simulator. The Cluster's conditions follow a scale-out; a paused Cluster
//! gets no writes; suspending compute keeps instances and PVCs; deleting the Cluster waits for a
//! running backup, then removes its groups and keeps the data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::br::Backup;
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PD, PDGroup, TiKV, TiKVGroup};
use scenarios::{Controller, Simulator, apply_controller_identity, ensure_crds, metric_sum};
use serde_json::json;
use testkit::{LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(240);

fn condition(cluster: &Cluster, type_: &str) -> Option<(String, String)> {
    conditions::find(cluster.conditions(), type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Writes a controller made, leaving out its leader-election Lease renewals.
fn writes(metrics: &str) -> f64 {
    ["create", "update", "patch", "delete"]
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

async fn pvc_uids(client: &Client, ns: &str) -> BTreeMap<String, String> {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn cluster_follows_scale_pause_suspend_and_delete() {
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    apply_controller_identity(&cluster, "pd-controller").unwrap();
    apply_controller_identity(&cluster, "cluster-controller").unwrap();
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, "cluster")
        .await
        .unwrap();
    let n = ns.name();
    let kubectl = cluster.kubectl();
    let simulator = Simulator::start(&cluster, n).await.unwrap();
    let pd_controller = Controller::start(
        &cluster,
        &client,
        "pd-controller",
        n,
        0,
        &simulator.overrides(),
    )
    .await
    .unwrap();
    let cluster_controller = Controller::start(
        &cluster,
        &client,
        "cluster-controller",
        n,
        0,
        &simulator.overrides(),
    )
    .await
    .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    let groups: Api<PDGroup> = Api::namespaced(client.clone(), n);
    let instances: Api<PD> = Api::namespaced(client.clone(), n);
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);

    let object: Cluster = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": "basic"},
        "spec": {"featureGates": [{"name": "FeatureModification"}, {"name": "VolumeAttributesClass"}]}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let group: PDGroup = serde_json::from_value(json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup", "metadata": {"name": "pd"},
        "spec": {"cluster": {"name": "basic"}, "replicas": 3, "template": {"spec": {
            "version": "v8.5.2",
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
        }}}
    }))
    .unwrap();
    groups.create(&PostParams::default(), &group).await.unwrap();

    let settled = |replicas: i32| {
        let clusters = clusters.clone();
        move || {
            let clusters = clusters.clone();
            async move {
                let c = clusters.get("basic").await?;
                let status = c.status.clone().unwrap_or_default();
                Ok::<_, kube::Error>(
                    condition(&c, conditions::READY).is_some_and(|(s, _)| s == "True")
                        && condition(&c, conditions::PROGRESSING)
                            .is_some_and(|(s, _)| s == "False")
                        && status
                            .components
                            .first()
                            .is_some_and(|p| p.replicas == replicas)
                        && !status.id.is_empty(),
                )
            }
        }
    };
    wait_until(
        &kubectl,
        n,
        "Cluster basic Ready, not Progressing, with PD's ID",
        WAIT,
        settled(3),
    )
    .await
    .unwrap();
    let status = clusters.get("basic").await.unwrap().status.unwrap();
    assert_eq!(status.pd, format!("http://pd-pd.{n}:2379"));
    // The Cluster's feature gates are carried into the group, and reported with their stage.
    let features = groups.get("pd").await.unwrap().spec.features;
    assert_eq!(
        features,
        [
            operator_api::core::Feature::FeatureModification,
            operator_api::core::Feature::VolumeAttributesClass
        ]
    );
    assert_eq!(status.feature_gates.len(), 2);
    assert_eq!(
        condition(&clusters.get("basic").await.unwrap(), conditions::AVAILABLE).map(|(s, _)| s),
        Some("False".to_string()),
        "a cluster with PD only serves nothing"
    );

    // A scale-out shows as Progressing, then settles again. The state can pass in well under a
    // second, so it is seen through a watch, which gets every status written.
    let progressed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let (seen, first) = (progressed.clone(), listed.clone());
        let stream = watcher(
            clusters.clone(),
            watcher::Config::default().fields("metadata.name=basic"),
        )
        .applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(cluster)) = stream.next().await {
                first.store(true, std::sync::atomic::Ordering::SeqCst);
                if condition(&cluster, conditions::PROGRESSING).is_some_and(|(s, _)| s == "True") {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    // Watching before the change, so no state written after it is missed.
    wait_until(&kubectl, n, "the Cluster watch started", WAIT, || async {
        Ok::<_, kube::Error>(listed.load(std::sync::atomic::Ordering::SeqCst))
    })
    .await
    .unwrap();
    groups
        .patch(
            "pd",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    wait_until(&kubectl, n, "Cluster basic Progressing", WAIT, || async {
        Ok::<_, kube::Error>(progressed.load(std::sync::atomic::Ordering::SeqCst))
    })
    .await
    .unwrap();
    watch.abort();
    wait_until(
        &kubectl,
        n,
        "Cluster basic settled at 5 PD members",
        WAIT,
        settled(5),
    )
    .await
    .unwrap();

    // Paused: every controller says so and writes nothing, even when the spec changes.
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster and PDGroup say Paused",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            let g = groups.get("pd").await?;
            Ok::<_, kube::Error>(
                condition(&c, conditions::SYNCED).is_some_and(|(_, r)| r == "Paused")
                    && conditions::find(g.conditions(), conditions::SYNCED)
                        .is_some_and(|c| c.reason == "Paused"),
            )
        },
    )
    .await
    .unwrap();
    // The members keep serving: the group stays Ready while paused.
    let g = groups.get("pd").await.unwrap();
    assert!(
        conditions::is_true(g.conditions(), conditions::READY),
        "a paused PDGroup keeps Ready: {:?}",
        g.conditions()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = (
        writes(&pd_controller.metrics().await.unwrap()),
        writes(&cluster_controller.metrics().await.unwrap()),
    );
    groups
        .patch(
            "pd",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = (
        writes(&pd_controller.metrics().await.unwrap()),
        writes(&cluster_controller.metrics().await.unwrap()),
    );
    assert_eq!(
        after, before,
        "a controller wrote while the Cluster was paused"
    );
    assert_eq!(
        instances
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        5,
        "nothing was scaled in while paused"
    );

    // Unpaused: the scale-in that waited happens.
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster basic settled at 4 PD members after unpausing, the fifth member's PVC gone",
        WAIT,
        || async {
            let count = instances.list(&ListParams::default()).await?.items.len();
            // The removed member's PVC goes after its instance: wait for it, or the snapshot
            // below would catch it mid-deletion.
            let claims = pvc_uids(&client, n).await.len();
            Ok::<_, kube::Error>(count == 4 && claims == 4 && settled(4)().await?)
        },
    )
    .await
    .unwrap();

    // The group's disruption budget follows the scale-in: all members but one.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "PodDisruptionBudget pd-pd at minAvailable 3",
        WAIT,
        || async {
            let budget = budgets.get("pd-pd").await?;
            Ok::<_, kube::Error>(
                budget.spec.and_then(|s| s.min_available)
                    == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(3)),
            )
        },
    )
    .await
    .unwrap();

    // Suspended compute: Pods go, instances and PVCs stay; resuming brings the same instances
    // back on the same PVCs.
    let claims = pvc_uids(&client, n).await;
    let members: Vec<String> = instances
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspendAction": {"suspendCompute": true}}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster basic Suspended with no PD Pods",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            let left = pods
                .list(&ListParams::default().labels("pingcap.com/component=pd"))
                .await?
                .items
                .len();
            Ok::<_, kube::Error>(
                left == 0 && condition(&c, conditions::SUSPENDED).is_some_and(|(s, _)| s == "True"),
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pvc_uids(&client, n).await,
        claims,
        "suspending touched the PVCs"
    );
    let still: Vec<String> = instances
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(still, members, "suspending removed instances");
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspendAction": {"suspendCompute": false}}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster basic resumed and settled",
        WAIT,
        settled(4),
    )
    .await
    .unwrap();
    let back: Vec<String> = pods
        .list(&ListParams::default().labels("pingcap.com/component=pd"))
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();
    let mut expected = members.clone();
    expected.sort();
    let mut back_sorted = back.clone();
    back_sorted.sort();
    assert_eq!(back_sorted, expected, "the same instances came back");
    assert_eq!(
        pvc_uids(&client, n).await,
        claims,
        "resuming used other PVCs"
    );

    // A backup whose BR Job runs (its image is never pulled, so it runs until it is deleted)
    // holds the Cluster's deletion: nothing is deleted, the Cluster says why.
    apply_controller_identity(&cluster, "backup-controller").unwrap();
    let _backup_controller = Controller::start(
        &cluster,
        &client,
        "backup-controller",
        n,
        0,
        &["--fake-br".to_string()],
    )
    .await
    .unwrap();
    let backups: Api<Backup> = Api::namespaced(client.clone(), n);
    let jobs: Api<Job> = Api::namespaced(client.clone(), n);
    let backup = |name: &str| -> Backup {
        serde_json::from_value(json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Backup",
            "metadata": {"name": name},
            "spec": {
                "br": {"cluster": "basic"},
                "toolImage": "br.invalid/br:v8.5.2",
                "s3": {"provider": "ceph", "bucket": "backups", "prefix": name,
                       "endpoint": "http://minio.storage:9000"}
            }
        }))
        .unwrap()
    };
    backups
        .create(&PostParams::default(), &backup("final"))
        .await
        .unwrap();
    let phase = |name: &'static str| {
        let backups = backups.clone();
        move || {
            let backups = backups.clone();
            async move {
                let b = backups.get(name).await?;
                Ok::<_, kube::Error>(b.status.and_then(|s| s.phase).map(|p| p.as_str()))
            }
        }
    };
    wait_until(&kubectl, n, "Backup final's Job scheduled", WAIT, || {
        let phase = phase("final");
        async move { Ok::<_, kube::Error>(phase().await? == Some("Scheduled")) }
    })
    .await
    .unwrap();
    clusters
        .delete("basic", &DeleteParams::default())
        .await
        .unwrap();
    let waiting = format!(
        "the groups are deleted once Backup {n}/final has finished; deleting it stops its BR Job"
    );
    wait_until(
        &kubectl,
        n,
        "Cluster basic: deletion waiting for Backup final",
        WAIT,
        || async {
            let c = clusters.get("basic").await?;
            Ok::<_, kube::Error>(
                conditions::find(c.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.status == "False"
                        && c.reason == "DeletionWaitingForBackups"
                        && c.message == waiting
                }),
            )
        },
    )
    .await
    .unwrap();
    let warned = Api::<Event>::namespaced(client.clone(), n)
        .list(&ListParams::default().fields(
            "involvedObject.kind=Cluster,involvedObject.name=basic,reason=DeletionWaitingForBackups,type=Warning",
        ))
        .await
        .unwrap()
        .items;
    assert!(
        warned
            .iter()
            .any(|e| e.message.as_deref() == Some(waiting.as_str())),
        "no Warning Event on the Cluster says why: {warned:?}"
    );
    // A backup asked for now does not start: it would hold the deletion longer.
    backups
        .create(&PostParams::default(), &backup("late"))
        .await
        .unwrap();
    wait_until(&kubectl, n, "Backup late refused", WAIT, || async {
        let b = backups.get("late").await?;
        let refused = b.status.as_ref().is_some_and(|s| {
            conditions::find(&s.conditions, "Invalid")
                .is_some_and(|c| c.status == "True" && c.reason == "ClusterDeleting")
        });
        Ok::<_, kube::Error>(refused)
    })
    .await
    .unwrap();
    let job_names: Vec<String> = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert!(
        job_names.iter().all(|j| !j.contains("late")),
        "a Job started against a Cluster being deleted: {job_names:?}"
    );
    let group = groups.get("pd").await.unwrap();
    assert!(
        group.metadata.deletion_timestamp.is_none(),
        "the PDGroup was deleted while a backup ran"
    );
    assert_eq!(pvc_uids(&client, n).await, claims);

    // Deleting the backup stops its Job; then the Cluster's deletion goes on: it removes its
    // groups and instances, and keeps the PVCs.
    backups
        .delete("final", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "Cluster, PDGroup and PD instances gone",
        WAIT,
        || async {
            let left = clusters.get_opt("basic").await?.is_none()
                && groups.list(&ListParams::default()).await?.items.is_empty()
                && instances
                    .list(&ListParams::default())
                    .await?
                    .items
                    .is_empty();
            Ok::<_, kube::Error>(left)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pvc_uids(&client, n).await,
        claims,
        "deleting the Cluster deleted PVCs"
    );
    // The group's disruption budget went with it (its owner).
    wait_until(
        &kubectl,
        n,
        "the PDGroup's PodDisruptionBudget gone",
        WAIT,
        || async {
            let left = budgets.list(&ListParams::default()).await?.items;
            Ok::<_, kube::Error>(left.is_empty())
        },
    )
    .await
    .unwrap();
    // Suspending compute removes every PD and TiKV Pod on purpose.
    simulator
        .verdict(
            n,
            "basic",
            &scenarios::Allowed::none()
                .pd_quorum_loss()
                .regions_without_leader(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A namespace with the simulator and the cluster-, pd-, tikv- and tidb-controllers running in it.
struct Whole {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    simulator: Simulator,
    _running: Vec<Controller>,
}

impl Whole {
    async fn start(prefix: &str) -> Whole {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        let controllers = [
            "cluster-controller",
            "pd-controller",
            "tikv-controller",
            "tidb-controller",
        ];
        for controller in controllers {
            apply_controller_identity(&cluster, controller).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let simulator = Simulator::start(&cluster, ns.name()).await.unwrap();
        let mut running = Vec::new();
        for controller in controllers {
            running.push(
                Controller::start(
                    &cluster,
                    &client,
                    controller,
                    ns.name(),
                    0,
                    &simulator.overrides(),
                )
                .await
                .unwrap(),
            );
        }
        Whole {
            cluster,
            client,
            ns,
            simulator,
            _running: running,
        }
    }

    /// Applies Cluster `basic` with the feature gates `gates`, a PDGroup of 3 for each name in
    /// `pd_groups`, 3 TiKV stores and 1 TiDB, at once as `kubectl apply` does.
    fn apply_basic(&self, gates: &[&str], pd_groups: &[&str]) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        let gates: Vec<serde_json::Value> = gates.iter().map(|g| json!({"name": g})).collect();
        let group = |kind: &str, name: &str, replicas: i32, volumes: Option<&serde_json::Value>| {
            let mut spec = json!({"version": "v8.5.2"});
            if let Some(volumes) = volumes {
                spec["volumes"] = volumes.clone();
            }
            json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name},
                   "spec": {"cluster": {"name": "basic"}, "replicas": replicas,
                            "template": {"spec": spec}}})
        };
        let mut objects = vec![
            json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
               "metadata": {"name": "basic"}, "spec": {"featureGates": gates}}),
        ];
        objects.extend(
            pd_groups
                .iter()
                .map(|name| group("PDGroup", name, 3, Some(&volumes))),
        );
        objects.push(group("TiKVGroup", "tikv", 3, Some(&volumes)));
        objects.push(group("TiDBGroup", "tidb", 1, None));
        let manifest = objects
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("\n---\n");
        self.cluster
            .kubectl()
            .ok(&["apply", "-n", self.ns.name(), "-f", "-"], Some(&manifest))
            .unwrap();
    }
}

#[tokio::test]
async fn the_basic_example_converges_into_an_available_cluster() {
    let whole = Whole::start("basic").await;
    let (cluster, client, simulator) = (&whole.cluster, &whole.client, &whole.simulator);
    let n = whole.ns.name();
    // Applied as a user would, from the v2-style example manifests.
    let kubectl = cluster.kubectl();
    let dir = scenarios::repo_root().join("examples/basic");
    kubectl
        .ok(
            &[
                "apply",
                "-n",
                n,
                "--server-side",
                "-k",
                &dir.to_string_lossy(),
            ],
            None,
        )
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "Cluster basic Available and Ready with PD 3, TiKV 3, TiDB 2",
        Duration::from_secs(180),
        || async {
            let c = clusters.get("basic").await?;
            let components: Vec<(String, i32)> = c
                .status
                .as_ref()
                .map(|s| {
                    s.components
                        .iter()
                        .map(|p| (format!("{:?}", p.kind), p.replicas))
                        .collect()
                })
                .unwrap_or_default();
            Ok::<_, kube::Error>(
                condition(&c, conditions::AVAILABLE).is_some_and(|(s, _)| s == "True")
                    && condition(&c, conditions::READY).is_some_and(|(s, _)| s == "True")
                    && condition(&c, conditions::PROGRESSING).is_some_and(|(s, _)| s == "False")
                    && components
                        == [
                            ("PD".to_string(), 3),
                            ("TiKV".to_string(), 3),
                            ("TiDB".to_string(), 2),
                        ],
            )
        },
    )
    .await
    .unwrap();
    let printed = kubectl
        .ok(&["get", "-n", n, "cluster", "basic"], None)
        .unwrap();
    let row: Vec<&str> = printed.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["basic", "3", "3", "2"],
        "kubectl get cluster shows the replicas: {printed}"
    );
    assert!(
        printed.contains("True"),
        "kubectl get cluster shows Available: {printed}"
    );
    simulator
        .verdict(n, "basic", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `ClusterSubdomain` feature gate: the cluster-controller makes the Cluster's one headless
/// Service `<cluster>-cluster`, every PD, TiKV and TiDB instance lives under it, and PD knows
/// members and stores by those names. Turned off later, the existing instances keep their names
/// (the field is immutable; nothing restarts) and a new store lives under its group's Service.
#[tokio::test]
async fn under_the_cluster_subdomain_gate_every_instance_lives_under_one_headless_service() {
    let whole = Whole::start("subdomain").await;
    let (client, simulator) = (&whole.client, &whole.simulator);
    let n = whole.ns.name();
    let kubectl = whole.cluster.kubectl();
    whole.apply_basic(&["FeatureModification", "ClusterSubdomain"], &["pd"]);
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    let available = || async {
        let c = clusters.get("basic").await?;
        Ok::<_, kube::Error>(
            condition(&c, conditions::AVAILABLE).is_some_and(|(s, _)| s == "True")
                && condition(&c, conditions::READY).is_some_and(|(s, _)| s == "True"),
        )
    };
    wait_until(
        &kubectl,
        n,
        "Cluster basic Available and Ready",
        WAIT,
        available,
    )
    .await
    .unwrap();

    let service = Api::<Service>::namespaced(client.clone(), n)
        .get("basic-cluster")
        .await
        .unwrap();
    let spec = service.spec.clone().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(service.owner_references()[0].name, "basic");
    let pods = Api::<Pod>::namespaced(client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 7, "3 PD, 3 TiKV, 1 TiDB");
    for pod in &pods {
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()),
            Some("basic-cluster"),
            "{}",
            pod.name_any()
        );
    }
    let state = simulator.state(n, "basic").await.unwrap();
    let addresses: Vec<String> = state["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["address"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    let suffix = format!(".basic-cluster.{n}:20160");
    assert!(
        addresses.iter().all(|a| a.ends_with(&suffix)),
        "{addresses:?}"
    );
    // The Cluster counts them as its own (not another Kubernetes cluster's).
    let status = clusters.get("basic").await.unwrap().status.unwrap();
    assert!(status.stores.iter().all(|s| s.local), "{:?}", status.stores);
    assert!(
        status.pd_members.len() == 3 && status.pd_members.iter().all(|m| m.local),
        "{:?}",
        status.pd_members
    );

    // The gate off: nothing moves; a new store lives under its group's Service.
    let tikvs: Api<TiKV> = Api::namespaced(client.clone(), n);
    let uids: BTreeMap<String, String> = pods
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"featureGates": [{"name": "FeatureModification"}]}})),
        )
        .await
        .unwrap();
    Api::<TiKVGroup>::namespaced(client.clone(), n)
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "four TiKV stores, all at the group's new revision, the new one under tikv-tikv-peer, Cluster Ready",
        WAIT,
        || async {
            // The gate is in the revision: every instance is updated to it, keeping its name.
            let group = Api::<TiKVGroup>::namespaced(client.clone(), n)
                .get("tikv")
                .await?;
            let updated = group
                .status
                .as_ref()
                .is_some_and(|s| s.group.updated_replicas == 4);
            let list = tikvs.list(&ListParams::default()).await?.items;
            let new_one = list
                .iter()
                .filter(|t| !uids.contains_key(&t.name_any()))
                .all(|t| t.spec.subdomain == "tikv-tikv-peer");
            Ok::<_, kube::Error>(
                updated
                    && list.len() == 4
                    && new_one
                    && list
                        .iter()
                        .all(|t| conditions::is_true(t.conditions(), conditions::READY))
                    && available().await?,
            )
        },
    )
    .await
    .unwrap();
    let now: BTreeMap<String, String> = Api::<Pod>::namespaced(client.clone(), n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| uids.contains_key(&p.name_any()))
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    assert_eq!(now, uids, "turning the gate off restarts nothing");
    for tikv in tikvs.list(&ListParams::default()).await.unwrap().items {
        if uids.contains_key(&tikv.name_any()) {
            assert_eq!(tikv.spec.subdomain, "basic-cluster", "{}", tikv.name_any());
        }
    }
    simulator
        .verdict(n, "basic", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `MultiPDGroup` feature gate, turned on under a running cluster as tidb-operator v2's own
/// scenario does: the Cluster's PD Service takes the first group's client Service name
/// (`customizedPDServiceName`), so no component is given a new PD URL; a second PDGroup joins
/// the one PD instead of bootstrapping its own; the first group is then deleted and its members
/// leave PD one at a time, PD keeping its quorum throughout. Nothing but PD restarts.
#[tokio::test]
async fn under_multi_pd_group_a_second_pd_group_joins_and_the_first_can_be_deleted() {
    let whole = Whole::start("multipd").await;
    let (client, simulator) = (&whole.client, &whole.simulator);
    let n = whole.ns.name();
    let kubectl = whole.cluster.kubectl();
    whole.apply_basic(&["FeatureModification"], &["pd"]);
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    let ready_with = |members: usize| {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("basic").await?;
            let pd_members = c.status.as_ref().map_or(0, |s| s.pd_members.len());
            Ok::<_, kube::Error>(
                condition(&c, conditions::AVAILABLE).is_some_and(|(s, _)| s == "True")
                    && condition(&c, conditions::READY).is_some_and(|(s, _)| s == "True")
                    && pd_members == members,
            )
        }
    };
    wait_until(
        &kubectl,
        n,
        "Cluster basic Available and Ready with 3 PD members",
        WAIT,
        || ready_with(3),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    let others = |pods: Vec<Pod>| -> BTreeMap<String, String> {
        pods.into_iter()
            .filter(|p| p.labels().get("pingcap.com/component").map(String::as_str) != Some("pd"))
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    };
    let before = others(pods.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(before.len(), 4, "3 TiKV, 1 TiDB: {before:?}");
    let pd_url = format!("http://pd-pd.{n}:2379");
    let status_pd = |c: &Cluster| c.status.as_ref().map(|s| s.pd.clone()).unwrap_or_default();
    assert_eq!(status_pd(&clusters.get("basic").await.unwrap()), pd_url);

    // The gate on, keeping the PD Service's name: the Cluster takes the group's Service over.
    clusters
        .patch(
            "basic",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "featureGates": [{"name": "FeatureModification"}, {"name": "MultiPDGroup"}],
                "customizedPDServiceName": "pd-pd"
            }})),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "Service pd-pd belongs to the Cluster and selects every PD Pod of it",
        WAIT,
        || async {
            let s = services.get("pd-pd").await?;
            let selector = s
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            Ok::<_, kube::Error>(
                s.owner_references().len() == 1
                    && s.owner_references()[0].kind == "Cluster"
                    && !selector.contains_key("pingcap.com/group")
                    && selector.get("pingcap.com/component").map(String::as_str) == Some("pd"),
            )
        },
    )
    .await
    .unwrap();

    // A second group joins the one PD (applied again with it; the rest is unchanged).
    whole.apply_basic(&["FeatureModification", "MultiPDGroup"], &["pd", "second"]);
    wait_until(
        &kubectl,
        n,
        "PD has 6 members, the second group's 3 of them Ready, Cluster Ready",
        WAIT,
        || async {
            let pds = Api::<PD>::namespaced(client.clone(), n)
                .list(&ListParams::default().labels("pingcap.com/group=second"))
                .await?
                .items;
            Ok::<_, kube::Error>(
                pds.len() == 3
                    && pds
                        .iter()
                        .all(|p| conditions::is_true(p.conditions(), conditions::READY))
                    && ready_with(6).await?,
            )
        },
    )
    .await
    .unwrap();
    let second = Api::<PDGroup>::namespaced(client.clone(), n)
        .get("second")
        .await
        .unwrap();
    assert!(
        second.spec.bootstrapped,
        "the second group joined: bootstrapped"
    );
    let state = simulator.state(n, "basic").await.unwrap();
    assert_eq!(
        state["members"].as_array().map(Vec::len),
        Some(6),
        "{state}"
    );
    // Its members were told to join through the Cluster's PD Service, not to bootstrap.
    let configs: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), n);
    for pd in Api::<PD>::namespaced(client.clone(), n)
        .list(&ListParams::default().labels("pingcap.com/group=second"))
        .await
        .unwrap()
        .items
    {
        let cm = configs.get(&pd.name_any()).await.unwrap();
        let text = cm
            .data
            .unwrap_or_default()
            .into_values()
            .collect::<String>();
        assert!(
            text.contains(&format!("join = \"{pd_url}\"")) && !text.contains("initial-cluster ="),
            "{}: {text}",
            pd.name_any()
        );
    }

    // The first group deleted: its members leave PD one at a time; PD keeps a leader.
    Api::<PDGroup>::namespaced(client.clone(), n)
        .delete("pd", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        &kubectl,
        n,
        "the first group's PD members gone, PD at 3 members, Cluster Ready",
        WAIT,
        || async {
            let left = Api::<PD>::namespaced(client.clone(), n)
                .list(&ListParams::default().labels("pingcap.com/group=pd"))
                .await?
                .items;
            Ok::<_, kube::Error>(left.is_empty() && ready_with(3).await?)
        },
    )
    .await
    .unwrap();
    let state = simulator.state(n, "basic").await.unwrap();
    let removed = state["removed_members"]
        .as_object()
        .map(|m| m.keys().filter(|k| k.starts_with("pd-")).count());
    assert_eq!(removed, Some(3), "they left PD through its API: {state}");
    let status = clusters.get("basic").await.unwrap();
    assert_eq!(status_pd(&status), pd_url, "status.pd never changed");
    let service = services.get("pd-pd").await.unwrap();
    assert_eq!(
        service.owner_references()[0].name,
        "basic",
        "kept with the Cluster"
    );
    let after = others(pods.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(after, before, "no TiKV or TiDB Pod restarted");
    simulator
        .verdict(n, "basic", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
