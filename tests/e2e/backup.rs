//! Backup and restore end to end: the backup-controller runs as a process under its shipped RBAC
//! against the local control plane, scoped to the test's namespace. kwok completes Job Pods
//! without running them, so the controller runs with `--fake-br` (test tooling): each Job still
//! carries the real BR command line, which the tests assert, and the result a fake BR would
//! report rides on the Pod as an annotation the controller reads in that mode only.
//!
//! The target is a Cluster object with a plausible `status.pd` written by the test and an inert
//! TiKVGroup that gives the version (no PD or TiKV runs); one scenario adds inert TiFlash and
//! TiCDC groups, which change nothing for a backup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::br::{Backup, BackupSchedule, CompactBackup, Restore};
use operator_api::conditions;
use operator_api::core::{Cluster, TiKVGroup};
use scenarios::{Controller, apply_controller_identity, ensure_crds};
use serde_json::{Value, json};
use testkit::{Kubectl, LocalCluster, TestNamespace, wait_until};

/// The storage credentials of the tests; none of them may show up anywhere but the Secret.
const ACCESS_KEY: &str = "AKIAE2EACCESSKEY7Q93";
const SECRET_KEY: &str = "e2e-s3cr3t-Value-zX81pq";

const WAIT: Duration = Duration::from_secs(90);

struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    controller: Controller,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        apply_controller_identity(&cluster, "backup-controller").unwrap();
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let controller = Controller::start(
            &cluster,
            &client,
            "backup-controller",
            ns.name(),
            0,
            &[
                "--fake-br".to_string(),
                "--clean-retry-wait=1s".to_string(),
                "--clean-timeout=2m".to_string(),
            ],
        )
        .await
        .unwrap();
        Scene {
            cluster,
            client,
            ns,
            controller,
        }
    }

    fn n(&self) -> &str {
        self.ns.name()
    }

    fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    fn backups(&self) -> Api<Backup> {
        Api::namespaced(self.client.clone(), self.n())
    }

    fn restores(&self) -> Api<Restore> {
        Api::namespaced(self.client.clone(), self.n())
    }

    fn schedules(&self) -> Api<BackupSchedule> {
        Api::namespaced(self.client.clone(), self.n())
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), self.n())
    }

    /// A Cluster with a PD URL in its status, and an inert TiKVGroup on v8.5.2.
    async fn create_target(&self, name: &str) {
        self.create_target_with(name, json!({})).await;
    }

    /// [`Scene::create_target`] with the Cluster's `spec`.
    async fn create_target_with(&self, name: &str, spec: Value) {
        let clusters = Api::<Cluster>::namespaced(self.client.clone(), self.n());
        let cluster: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        clusters
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        let pd = format!("http://{name}-pd.{}:2379", self.n());
        clusters
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"pd": pd}})),
            )
            .await
            .unwrap();
        let group: TiKVGroup = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": {"name": format!("{name}-tikv")},
            "spec": {
                "cluster": {"name": name}, "replicas": 3,
                "template": {"spec": {
                    "version": "v8.5.2",
                    "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]
                }}
            }
        }))
        .unwrap();
        Api::<TiKVGroup>::namespaced(self.client.clone(), self.n())
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
    }

    /// An inert TiFlashGroup and TiCDCGroup in Cluster `name` (no controller runs them): a
    /// cluster with the analytical store and change data capture, as most production ones have.
    async fn add_tiflash_and_ticdc(&self, name: &str) {
        let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
        for (kind, group, spec) in [
            (
                "TiFlashGroup",
                "tiflash",
                json!({"version": "v8.5.2", "volumes": volumes}),
            ),
            ("TiCDCGroup", "ticdc", json!({"version": "v8.5.2"})),
        ] {
            let object: kube::api::DynamicObject = serde_json::from_value(json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
                "metadata": {"name": format!("{name}-{group}")},
                "spec": {"cluster": {"name": name}, "replicas": 1, "template": {"spec": spec}}
            }))
            .unwrap();
            Api::<kube::api::DynamicObject>::namespaced_with(
                self.client.clone(),
                self.n(),
                &scenarios::api_resource(kind).unwrap(),
            )
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        }
    }

    async fn create_secret(&self, name: &str) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), self.n())
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    async fn create_backup(&self, manifest: Value) -> Backup {
        let mut manifest = manifest;
        manifest["apiVersion"] = json!("br.pingcap.com/v1alpha1");
        manifest["kind"] = json!("Backup");
        let backup: Backup = serde_json::from_value(manifest).unwrap();
        self.backups()
            .create(&PostParams::default(), &backup)
            .await
            .unwrap()
    }

    /// Creates a Restore from `manifest` (its apiVersion and kind filled in).
    async fn create_restore(&self, manifest: Value) {
        let mut manifest = manifest;
        manifest["apiVersion"] = json!("br.pingcap.com/v1alpha1");
        manifest["kind"] = json!("Restore");
        let restore: Restore = serde_json::from_value(manifest).unwrap();
        self.restores()
            .create(&PostParams::default(), &restore)
            .await
            .unwrap();
    }

    /// Waits until Restore `name` is Complete.
    async fn wait_restore_complete(&self, name: &str) {
        self.wait(&format!("Restore {name} Complete"), WAIT, || async {
            let r = self.restores().get(name).await?;
            Ok(phase_of(&r.status.as_ref().and_then(|s| s.phase)) == "Complete")
        })
        .await;
    }

    async fn backup(&self, name: &str) -> Result<Backup, kube::Error> {
        self.backups().get(name).await
    }

    /// What the test saw, for a failing wait: the BR objects, Jobs, Events and the controller's
    /// log.
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        let sections: [(&str, Vec<&str>); 2] = [
            (
                "br objects and jobs",
                vec![
                    "get",
                    "-n",
                    self.n(),
                    "backups,restores,backupschedules,compactbackups,jobs",
                    "-o",
                    "yaml",
                ],
            ),
            (
                "events",
                vec!["get", "events", "-n", self.n(), "--sort-by=.lastTimestamp"],
            ),
        ];
        for (title, args) in sections {
            out.push_str(&format!("--- {title} ---\n"));
            match self.kubectl().run(&args, None) {
                Ok(o) => {
                    out.push_str(&o.stdout);
                    out.push_str(&o.stderr);
                }
                Err(e) => out.push_str(&format!("{e}\n")),
            }
        }
        let log = self.controller.process.output();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        out.push_str("--- backup-controller (last lines) ---\n");
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Waits for `check`, and on timeout fails with [`Scene::diagnostics`].
    async fn wait<F, Fut>(&self, what: &str, timeout: Duration, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, kube::Error>>,
    {
        if let Err(e) = wait_until(&self.kubectl(), self.n(), what, timeout, check).await {
            panic!("{e}\n{}", self.diagnostics());
        }
    }

    async fn wait_backup_phase(&self, name: &str, phase: &str, timeout: Duration) -> Backup {
        self.wait(
            &format!("Backup {name} in phase {phase}"),
            timeout,
            || async {
                let b = self.backup(name).await?;
                Ok(phase_of(&b.status.as_ref().and_then(|s| s.phase)) == phase)
            },
        )
        .await;
        self.backup(name).await.unwrap()
    }

    async fn events_of(&self, name: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), self.n())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect()
    }

    async fn job_names(&self, selector: &str) -> BTreeSet<String> {
        self.jobs()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .iter()
            .map(|j| j.name_any())
            .collect()
    }
}

fn phase_of<T: serde::Serialize>(phase: &Option<T>) -> String {
    phase
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn reasons(events: &[Event]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e.reason.clone()).collect()
}

/// The runner container's arguments of a Job.
fn runner_args(job: &Job) -> Vec<String> {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap()
}

/// The arguments after `--`: BR's command line.
fn br_command(job: &Job) -> Vec<String> {
    let args = runner_args(job);
    let dash = args
        .iter()
        .position(|a| a == "--")
        .expect("a -- in the args");
    args[dash + 1..].to_vec()
}

fn s3(prefix: &str, secret: Option<&str>) -> Value {
    let mut s3 = json!({
        "provider": "ceph", "bucket": "backups", "prefix": prefix,
        "endpoint": "http://minio.storage:9000"
    });
    if let Some(secret) = secret {
        s3["secretName"] = json!(secret);
    }
    s3
}

#[tokio::test]
async fn a_backup_to_s3_completes_with_its_result_and_shows_no_credential() {
    let scene = Scene::start("bk-s3").await;
    scene.create_target("basic").await;
    // TiFlash and TiCDC in the cluster change nothing for a backup.
    scene.add_tiflash_and_ticdc("basic").await;
    scene.create_secret("s3-secret").await;
    scene
        .create_backup(json!({
            "metadata": {"name": "full", "annotations": {
                "tidb-operator.test/fake-br": "success:size=2048000,commit-ts=450000000000000001"
            }},
            "spec": {
                "br": {"cluster": "basic", "sendCredToTikv": true},
                "s3": s3("full", Some("s3-secret"))
            }
        }))
        .await;
    let backup = scene.wait_backup_phase("full", "Complete", WAIT).await;

    // Status: the result of the run.
    let status = backup.status.clone().unwrap();
    assert_eq!(status.backup_path, "s3://backups/full");
    assert_eq!(status.backup_size, 2_048_000);
    assert_eq!(status.backup_size_readable, "2.0 MB");
    assert_eq!(status.commit_ts, "450000000000000001");
    assert!(status.time_started.is_some() && status.time_completed.is_some());
    assert!(!status.time_taken.is_empty());
    assert!(conditions::is_true(&status.conditions, "Complete"));
    assert!(conditions::is_true(&status.conditions, "Scheduled"));
    assert!(!conditions::is_true(&status.conditions, "Failed"));
    assert!(status.backoff_retry_status.is_empty(), "no retry happened");

    // The Job: BR's exact command line, from the BR image of the cluster's version.
    let job = scene.jobs().get("backup-full").await.unwrap();
    let pd = format!("--pd=basic-pd.{}:2379", scene.n());
    assert_eq!(
        br_command(&job),
        [
            "/var/lib/br-bin/br",
            "backup",
            "full",
            pd.as_str(),
            "--send-credentials-to-tikv=true",
            "--storage=s3://backups/full",
            "--s3.provider=ceph",
            "--s3.endpoint=http://minio.storage:9000",
        ]
    );
    let pod_spec = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    assert_eq!(
        pod_spec.init_containers.as_ref().unwrap()[0]
            .image
            .as_deref(),
        Some("pingcap/br:v8.5.2")
    );
    assert_eq!(pod_spec.automount_service_account_token, Some(false));
    // Credentials only as references to the Secret.
    let env = pod_spec.containers[0].env.clone().unwrap();
    let refs: BTreeSet<(String, String, String)> = env
        .iter()
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.clone(), r.name.clone(), r.key.clone()))
        })
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from([
            (
                "AWS_ACCESS_KEY_ID".into(),
                "s3-secret".into(),
                "access_key".into()
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                "s3-secret".into(),
                "secret_key".into()
            ),
        ])
    );
    assert!(env.iter().all(|e| e.value.is_none()), "{env:?}");

    // No credential anywhere: status, Events, the Job, its Pods, the controller's log.
    let events = scene.events_of("full").await;
    assert!(
        reasons(&events).is_superset(&BTreeSet::from([
            "JobCreated".to_string(),
            "BackupComplete".to_string()
        ])),
        "{:?}",
        reasons(&events)
    );
    let pods = Api::<Pod>::namespaced(scene.client.clone(), scene.n())
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=backup-full"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 1);
    let log = scene.controller.process.output();
    assert!(log.contains("created Job"), "the log is the controller's");
    let places = [
        ("Backup", serde_json::to_string(&backup).unwrap()),
        ("Events", serde_json::to_string(&events).unwrap()),
        ("Job", serde_json::to_string(&job).unwrap()),
        ("Pods", serde_json::to_string(&pods).unwrap()),
        ("controller log", log),
    ];
    for (place, text) in &places {
        for value in [ACCESS_KEY, SECRET_KEY] {
            assert!(!text.contains(value), "a credential appears in the {place}");
        }
    }
}

#[tokio::test]
async fn a_failing_backup_is_retried_then_fails_with_the_reason() {
    let scene = Scene::start("bk-fail").await;
    scene.create_target("basic").await;
    scene.create_secret("s3-secret").await;
    scene
        .create_backup(json!({
            "metadata": {"name": "broken", "annotations": {
                "tidb-operator.test/fake-br": "fail:cannot reach the storage endpoint"
            }},
            "spec": {
                "br": {"cluster": "basic"},
                "s3": s3("broken", Some("s3-secret")),
                "backoffRetryPolicy": {
                    "minRetryDuration": "2s", "maxRetryTimes": 2, "retryTimeout": "5m"
                }
            }
        }))
        .await;
    // First a retry is scheduled...
    scene
        .wait("Backup broken RetryFailed", WAIT, || async {
            let b = scene.backup("broken").await?;
            Ok(b.status.as_ref().is_some_and(|s| {
                conditions::is_true(&s.conditions, "RetryFailed")
                    && !s.backoff_retry_status.is_empty()
            }))
        })
        .await;
    // ...and after the second retry fails too, the Backup fails.
    let backup = scene
        .wait_backup_phase("broken", "Failed", Duration::from_secs(120))
        .await;
    let status = backup.status.clone().unwrap();
    let failed = conditions::find(&status.conditions, "Failed").unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason, "Failed");
    assert!(
        failed.message.contains("cannot reach the storage endpoint")
            && failed.message.contains("maxRetryTimes 2"),
        "{}",
        failed.message
    );
    let records = &status.backoff_retry_status;
    assert_eq!(records.len(), 2, "{records:?}");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.retry_num, i32::try_from(i + 1).unwrap());
        assert!(
            record
                .original_reason
                .contains("cannot reach the storage endpoint")
        );
        let expected = record.expected_retry_at.as_ref().unwrap().0;
        let real = record.real_retry_at.as_ref().expect("the retry ran").0;
        assert!(real >= expected, "retry {} ran before it was due", i + 1);
    }
    // The second wait doubles the first.
    let gap = |r: &operator_api::br::BackoffRetryRecord| {
        r.expected_retry_at
            .as_ref()
            .unwrap()
            .0
            .duration_since(r.detect_failed_at.as_ref().unwrap().0)
            .as_secs()
    };
    assert_eq!((gap(&records[0]), gap(&records[1])), (2, 4));
    let events = scene.events_of("broken").await;
    assert!(reasons(&events).contains("BackupFailed"));

    // Exactly the first run and two retries; nothing more comes.
    let expected: BTreeSet<String> = [
        "backup-broken",
        "backup-broken-retry-1",
        "backup-broken-retry-2",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        scene.job_names("br.pingcap.com/backup=broken").await,
        expected
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        scene.job_names("br.pingcap.com/backup=broken").await,
        expected,
        "a Job after the Backup failed"
    );
    assert_eq!(
        phase_of(
            &scene
                .backup("broken")
                .await
                .unwrap()
                .status
                .and_then(|s| s.phase)
        ),
        "Failed"
    );
}

#[tokio::test]
async fn a_schedule_makes_backups_keeps_max_backups_and_stops_when_paused() {
    let scene = Scene::start("bk-sched").await;
    scene.create_target("basic").await;
    // The cron parser takes an optional seconds field: every 10 s keeps the test short.
    let schedule: BackupSchedule = serde_json::from_value(json!({
        "apiVersion": "br.pingcap.com/v1alpha1", "kind": "BackupSchedule",
        "metadata": {"name": "often"},
        "spec": {
            "schedule": "*/10 * * * * *",
            "maxBackups": 2,
            "br": {"cluster": "basic"},
            "s3": s3("often", None),
            "backupTemplate": {},
            "logBackupTemplate": {"s3": s3("often-log", None)}
        }
    }))
    .unwrap();
    scene
        .schedules()
        .create(&PostParams::default(), &schedule)
        .await
        .unwrap();
    let selector = "br.pingcap.com/backup-schedule=often";
    let seen = std::sync::Mutex::new(BTreeSet::<String>::new());
    let most = std::sync::atomic::AtomicUsize::new(0);
    scene
        .wait(
            "four scheduled Backups made, two kept",
            Duration::from_secs(100),
            || async {
                let live: Vec<Backup> = scene
                    .backups()
                    .list(&ListParams::default().labels(selector))
                    .await?
                    .items
                    .into_iter()
                    .filter(|b| b.metadata.deletion_timestamp.is_none())
                    .filter(|b| b.name_any() != "often-log")
                    .collect();
                most.fetch_max(live.len(), std::sync::atomic::Ordering::Relaxed);
                let mut seen = seen.lock().unwrap();
                seen.extend(live.iter().map(|b| b.name_any()));
                Ok(seen.len() >= 4 && live.len() == 2)
            },
        )
        .await;
    // Creation and retention happen in one reconcile: a third may show for a moment, never more.
    let most = most.load(std::sync::atomic::Ordering::Relaxed);
    assert!(most <= 3, "{most} Backups at once with maxBackups 2");
    let seen = seen.into_inner().unwrap();
    for name in &seen {
        assert!(
            name.starts_with("often-") && name.len() == "often-2024-01-01t00-00-00".len(),
            "{name}"
        );
    }
    // The two kept are the newest, and they complete.
    let newest: Vec<String> = seen.iter().rev().take(2).cloned().collect();
    let status = scene
        .schedules()
        .get("often")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(newest.contains(&status.last_backup), "{status:?}");
    assert!(status.last_backup_time.is_some());
    for name in &newest {
        scene.wait_backup_phase(name, "Complete", WAIT).await;
    }
    let live: BTreeSet<String> = scene
        .backups()
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .map(|b| b.name_any())
        .filter(|name| name != "often-log")
        .collect();
    assert!(live.len() <= 2, "{live:?}");
    // The log backup runs alongside, untouched by retention.
    assert_eq!(status.log_backup.as_deref(), Some("often-log"));
    let log = scene.wait_backup_phase("often-log", "Running", WAIT).await;
    assert_eq!(log.labels()["br.pingcap.com/backup-schedule"], "often");
    let log_job = scene
        .jobs()
        .get(&format!(
            "backup-often-log-log-start-g{}",
            log.metadata.generation.unwrap()
        ))
        .await
        .unwrap();
    assert!(br_command(&log_job).contains(&"--storage=s3://backups/often-log".to_string()));

    // Paused: no new Backup.
    scene
        .schedules()
        .patch(
            "often",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"pause": true}})),
        )
        .await
        .unwrap();
    // A run may have been on its way when the patch landed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = scene
        .schedules()
        .get("often")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_backup;
    let names_before: BTreeSet<String> = scene
        .backups()
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = scene
        .schedules()
        .get("often")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_backup;
    let names_after: BTreeSet<String> = scene
        .backups()
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    assert_eq!(after, before, "a Backup was made while paused");
    // The log backup is paused with the schedule.
    let log = scene.wait_backup_phase("often-log", "Paused", WAIT).await;
    assert_eq!(
        log.spec.log_subcommand,
        Some(operator_api::br::LogSubCommandType::LogPause)
    );
    assert!(
        names_after.is_subset(&names_before),
        "new Backups while paused: {:?}",
        names_after.difference(&names_before).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn deleting_a_backup_cleans_its_data_only_when_its_policy_says_so() {
    let scene = Scene::start("bk-clean").await;
    scene.create_target("basic").await;
    for (name, policy, fake_clean) in [
        ("keep", "Retain", None),
        ("drop", "Delete", None),
        ("stuck", "Delete", Some("fail:access denied")),
    ] {
        let mut annotations = json!({});
        if let Some(mode) = fake_clean {
            annotations["tidb-operator.test/fake-clean"] = json!(mode);
        }
        scene
            .create_backup(json!({
                "metadata": {"name": name, "annotations": annotations},
                "spec": {
                    "br": {"cluster": "basic"},
                    "s3": s3(name, None),
                    "cleanPolicy": policy
                }
            }))
            .await;
    }
    for name in ["keep", "drop", "stuck"] {
        scene.wait_backup_phase(name, "Complete", WAIT).await;
    }
    assert!(
        scene.backup("keep").await.unwrap().finalizers().is_empty(),
        "Retain needs no finalizer"
    );
    assert_eq!(
        scene.backup("drop").await.unwrap().finalizers(),
        ["core.pingcap.com/finalizer"]
    );

    // Retain: gone at once, no clean-up Job.
    scene
        .backups()
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    scene
        .wait("Backup keep gone", Duration::from_secs(30), || async {
            Ok(scene.backups().get_opt("keep").await?.is_none())
        })
        .await;

    // Delete: the clean-up Job runs while the Backup waits for it.
    scene
        .backups()
        .delete("drop", &DeleteParams::default())
        .await
        .unwrap();
    scene
        .wait(
            "the clean-up Job of drop, before drop is gone",
            WAIT,
            || async {
                let job = scene.jobs().get_opt("clean-drop-0").await?;
                let backup = scene.backups().get_opt("drop").await?;
                Ok(job.is_some() && backup.is_some())
            },
        )
        .await;
    let job = scene.jobs().get("clean-drop-0").await.unwrap();
    assert_eq!(
        runner_args(&job),
        ["clean", "--fake-br=success", "--storage=s3://backups/drop"]
    );
    let pod = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    assert!(pod.init_containers.is_none(), "clean-up needs no BR");
    scene
        .wait("Backup drop gone after its clean-up", WAIT, || async {
            Ok(scene.backups().get_opt("drop").await?.is_none())
        })
        .await;
    let events = reasons(&scene.events_of("drop").await);
    assert!(
        events.contains("CleanJobCreated") && events.contains("Cleaned"),
        "{events:?}"
    );
    let keep_events = reasons(&scene.events_of("keep").await);
    assert!(
        !keep_events.contains("CleanJobCreated") && !keep_events.contains("Cleaned"),
        "a clean-up for a Retain Backup: {keep_events:?}"
    );

    // A clean-up that keeps failing is reported, then the Backup is let go.
    scene
        .backups()
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    scene
        .wait("Backup stuck reports CleanFailed", WAIT, || async {
            Ok(scene.backups().get_opt("stuck").await?.is_some_and(|b| {
                b.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, "CleanFailed")
                        .is_some_and(|c| c.status == "True" && c.message.contains("access denied"))
                })
            }))
        })
        .await;
    scene
        .wait(
            "Backup stuck let go after its clean-up attempts",
            Duration::from_secs(120),
            || async { Ok(scene.backups().get_opt("stuck").await?.is_none()) },
        )
        .await;
    let stuck = scene.events_of("stuck").await;
    let stuck_reasons = reasons(&stuck);
    assert!(
        stuck_reasons.contains("CleanFailed") && stuck_reasons.contains("CleanAbandoned"),
        "{stuck_reasons:?}"
    );
    let abandoned = stuck
        .iter()
        .find(|e| e.reason.as_deref() == Some("CleanAbandoned"))
        .unwrap();
    assert_eq!(abandoned.type_.as_deref(), Some("Warning"));
    assert!(
        abandoned
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("s3://backups/stuck"),
        "{abandoned:?}"
    );
    let created = stuck
        .iter()
        .filter(|e| e.reason.as_deref() == Some("CleanJobCreated"))
        .map(|e| e.count.unwrap_or(1).max(1))
        .sum::<i32>();
    assert!(
        (1..=3).contains(&created),
        "{created} clean-up Jobs, at most 3 allowed"
    );
}

#[tokio::test]
async fn a_restore_completes_and_one_into_a_missing_cluster_says_so() {
    let scene = Scene::start("bk-restore").await;
    scene.create_target("basic").await;
    scene.create_secret("s3-secret").await;
    for (name, cluster) in [("back", "basic"), ("lost", "nowhere")] {
        scene
            .create_restore(json!({
                "metadata": {"name": name, "annotations": {
                    "tidb-operator.test/fake-br": "success:size=10,commit-ts=450000000000000777"
                }},
                "spec": {
                    "br": {"cluster": cluster},
                    "s3": s3("full", Some("s3-secret")),
                    "backoffLimit": 2
                }
            }))
            .await;
    }
    scene.wait_restore_complete("back").await;
    let status = scene.restores().get("back").await.unwrap().status.unwrap();
    assert_eq!(status.commit_ts, "450000000000000777");
    assert!(status.time_started.is_some() && status.time_completed.is_some());
    assert!(conditions::is_true(&status.conditions, "Complete"));
    let job = scene.jobs().get("restore-back").await.unwrap();
    let job_spec = job.spec.as_ref().unwrap();
    assert_eq!(
        job_spec.backoff_limit,
        Some(2),
        "Kubernetes retries the restore's Pod backoffLimit times"
    );
    let pd = format!("--pd=basic-pd.{}:2379", scene.n());
    assert_eq!(
        br_command(&job),
        [
            "/var/lib/br-bin/br",
            "restore",
            "full",
            pd.as_str(),
            "--storage=s3://backups/full",
            "--s3.provider=ceph",
            "--s3.endpoint=http://minio.storage:9000",
        ]
    );
    assert!(reasons(&scene.events_of("back").await).contains("RestoreComplete"));

    scene
        .wait("Restore lost says ClusterNotFound", WAIT, || async {
            let r = scene.restores().get("lost").await?;
            Ok(r.status.as_ref().is_some_and(|s| {
                conditions::find(&s.conditions, "Invalid").is_some_and(|c| {
                    c.status == "True"
                        && c.reason == "ClusterNotFound"
                        && c.message.contains("nowhere")
                })
            }))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        scene
            .job_names("br.pingcap.com/restore=lost")
            .await
            .is_empty(),
        "a Job for a Restore into a missing Cluster"
    );
    let lost = scene.restores().get("lost").await.unwrap();
    assert_eq!(phase_of(&lost.status.and_then(|s| s.phase)), "Invalid");
}

/// The Pod spec of a Job.
fn pod_spec(job: &Job) -> k8s_openapi::api::core::v1::PodSpec {
    job.spec.as_ref().unwrap().template.spec.clone().unwrap()
}

/// Checks that a Job of a TLS cluster mounts the client certificate Secret read-only where BR's
/// flags point, and passes those flags right after `--pd`.
fn assert_client_tls(job: &Job, secret: &str, pd: &str) {
    let dir = "/var/lib/cluster-client-tls";
    let command = br_command(job);
    let at = command
        .iter()
        .position(|a| a == pd)
        .expect("--pd in BR's command");
    assert_eq!(
        command[at + 1..at + 4],
        [
            format!("--ca={dir}/ca.crt"),
            format!("--cert={dir}/tls.crt"),
            format!("--key={dir}/tls.key"),
        ],
        "BR's TLS flags: {command:?}"
    );
    let spec = pod_spec(job);
    let volume = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "cluster-client-tls")
        .expect("a volume of the client certificate");
    let sources: Vec<(String, Vec<String>)> = volume
        .projected
        .and_then(|p| p.sources)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.secret)
        .map(|s| {
            let keys = s.items.unwrap_or_default().into_iter().map(|i| i.key);
            (s.name, keys.collect())
        })
        .collect();
    assert_eq!(
        sources,
        [
            (
                secret.to_string(),
                vec!["tls.crt".to_string(), "tls.key".to_string()]
            ),
            (secret.to_string(), vec!["ca.crt".to_string()]),
        ],
        "the key pair and the CA, from the client certificate Secret"
    );
    let mount = spec.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.name == volume.name)
        .expect("the runner mounts the client certificate");
    assert_eq!(mount.mount_path, dir);
    assert_eq!(mount.read_only, Some(true));
}

#[tokio::test]
async fn a_backup_and_a_restore_of_a_tls_cluster_present_its_client_certificate() {
    let scene = Scene::start("bk-tls").await;
    scene
        .create_target_with("secure", json!({"tlsCluster": {"enabled": true}}))
        .await;
    scene.create_secret("s3-secret").await;
    let fake = "success:size=10,commit-ts=450000000000000042";

    // Without the client certificate Secret in the Backup's namespace: Invalid, naming it, and
    // no Job (its Pod would wait for the Secret, saying nothing).
    scene
        .create_backup(json!({
            "metadata": {"name": "full", "annotations": {"tidb-operator.test/fake-br": fake}},
            "spec": {"br": {"cluster": "secure"}, "s3": s3("full", Some("s3-secret"))}
        }))
        .await;
    let secret = "secure-cluster-client-secret";
    scene
        .wait(
            "Backup full says the client Secret is missing",
            WAIT,
            || async {
                let b = scene.backup("full").await?;
                Ok(b.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, "Invalid").is_some_and(|c| {
                        c.status == "True"
                            && c.reason == "SecretNotFound"
                            && c.message.contains(secret)
                    })
                }))
            },
        )
        .await;
    assert!(
        scene
            .job_names("br.pingcap.com/backup=full")
            .await
            .is_empty(),
        "a Job before the client certificate exists"
    );
    assert!(reasons(&scene.events_of("full").await).contains("SecretNotFound"));

    // The Secret appears (as cert-manager would write it): the backup runs with it.
    let tls: Secret = serde_json::from_value(json!({
        "metadata": {"name": secret},
        "type": "kubernetes.io/tls",
        "stringData": {"ca.crt": "ca", "tls.crt": "cert", "tls.key": "key"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(scene.client.clone(), scene.n())
        .create(&PostParams::default(), &tls)
        .await
        .unwrap();
    scene
        .wait_backup_phase("full", "Complete", Duration::from_secs(120))
        .await;
    let pd = format!("--pd=secure-pd.{}:2379", scene.n());
    assert_client_tls(&scene.jobs().get("backup-full").await.unwrap(), secret, &pd);

    // A restore into the same cluster presents the same certificate.
    scene
        .create_restore(json!({
            "metadata": {"name": "back", "annotations": {"tidb-operator.test/fake-br": fake}},
            "spec": {"br": {"cluster": "secure"}, "s3": s3("full", Some("s3-secret"))}
        }))
        .await;
    scene.wait_restore_complete("back").await;
    assert_client_tls(
        &scene.jobs().get("restore-back").await.unwrap(),
        secret,
        &pd,
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_creates_nothing() {
    let scene = Scene::start("bk-bad").await;
    scene.create_target("basic").await;

    // A storage provider the API does not know is refused at admission.
    let manifest = format!(
        r#"apiVersion: br.pingcap.com/v1alpha1
kind: Backup
metadata:
  name: oss
  namespace: {}
spec:
  br:
    cluster: basic
  oss:
    bucket: backups
"#,
        scene.n()
    );
    let out = scene
        .kubectl()
        .run(&["apply", "-f", "-"], Some(&manifest))
        .unwrap();
    assert!(!out.success, "an unknown provider was accepted");
    assert!(out.stderr.contains("unknown field"), "{}", out.stderr);

    // No storage at all: a condition that says what to set.
    scene
        .create_backup(json!({
            "metadata": {"name": "nowhere"},
            "spec": {"br": {"cluster": "basic"}}
        }))
        .await;
    // A Secret that does not exist.
    scene
        .create_backup(json!({
            "metadata": {"name": "nosecret"},
            "spec": {"br": {"cluster": "basic"}, "s3": s3("x", Some("absent"))}
        }))
        .await;
    for (name, reason, words) in [
        ("nowhere", "InvalidSpec", "no storage provider"),
        ("nosecret", "SecretNotFound", "Secret absent"),
    ] {
        scene
            .wait(&format!("Backup {name} Invalid/{reason}"), WAIT, || async {
                let b = scene.backup(name).await?;
                Ok(b.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, "Invalid").is_some_and(|c| {
                        c.status == "True" && c.reason == reason && c.message.contains(words)
                    })
                }))
            })
            .await;
        let events = scene.events_of(name).await;
        assert!(
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some("Warning")),
            "{name}: no Warning {reason}"
        );
    }

    // A schedule that does not parse.
    let schedule: BackupSchedule = serde_json::from_value(json!({
        "apiVersion": "br.pingcap.com/v1alpha1", "kind": "BackupSchedule",
        "metadata": {"name": "garbled"},
        "spec": {
            "schedule": "every day at noon",
            "br": {"cluster": "basic"},
            "s3": s3("garbled", None),
            "backupTemplate": {}
        }
    }))
    .unwrap();
    scene
        .schedules()
        .create(&PostParams::default(), &schedule)
        .await
        .unwrap();
    scene
        .wait("a Warning InvalidSchedule on garbled", WAIT, || async {
            let events = scene.events_of("garbled").await;
            Ok(events.iter().any(|e| {
                e.reason.as_deref() == Some("InvalidSchedule")
                    && e.type_.as_deref() == Some("Warning")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("not a cron expression"))
            }))
        })
        .await;
    scene
        .wait(
            "garbled says Ready=False InvalidSchedule in its status",
            WAIT,
            || async {
                let schedule = scene.schedules().get("garbled").await?;
                let conditions = schedule.status.map(|s| s.conditions).unwrap_or_default();
                Ok(operator_api::conditions::find(&conditions, "Ready")
                    .is_some_and(|c| c.status == "False" && c.reason == "InvalidSchedule"))
            },
        )
        .await;

    // Nothing was created for any of them, even after a while.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        scene
            .jobs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let made = scene
        .backups()
        .list(&ListParams::default().labels("br.pingcap.com/backup-schedule=garbled"))
        .await
        .unwrap()
        .items;
    assert!(made.is_empty(), "a Backup from an unparsable schedule");
    assert!(
        scene
            .schedules()
            .get("garbled")
            .await
            .unwrap()
            .status
            .is_none_or(|s| s.last_backup.is_empty())
    );
    // Once the Secret exists, the Backup goes ahead.
    scene
        .kubectl()
        .ok(
            &[
                "create",
                "secret",
                "generic",
                "absent",
                "-n",
                scene.n(),
                "--from-literal=access_key=a",
                "--from-literal=secret_key=b",
            ],
            None,
        )
        .unwrap();
    let backup = scene.wait_backup_phase("nosecret", "Complete", WAIT).await;
    let invalid = conditions::find(&backup.status.unwrap().conditions, "Invalid").cloned();
    assert_eq!(invalid.map(|c| c.status), Some("False".to_string()));
}

#[tokio::test]
async fn a_log_backup_starts_pauses_resumes_truncates_and_stops() {
    let scene = Scene::start("bk-log").await;
    scene.create_target("basic").await;
    scene.create_secret("s3-secret").await;
    scene
        .create_backup(json!({
            "metadata": {"name": "pitr", "annotations": {
                "tidb-operator.test/fake-br": "success:size=1,commit-ts=451000000000000000"
            }},
            "spec": {
                "backupMode": "log",
                "commitTs": "450999999999999999",
                "br": {"cluster": "basic"},
                "s3": s3("log", Some("s3-secret"))
            }
        }))
        .await;
    let backup = scene.wait_backup_phase("pitr", "Running", WAIT).await;
    let generation = backup.metadata.generation.unwrap();
    let start = scene
        .jobs()
        .get(&format!("backup-pitr-log-start-g{generation}"))
        .await
        .unwrap();
    let pd = format!("--pd=basic-pd.{}:2379", scene.n());
    assert_eq!(
        br_command(&start),
        [
            "/var/lib/br-bin/br",
            "log",
            "start",
            "--task-name=pitr",
            pd.as_str(),
            "--storage=s3://backups/log",
            "--s3.provider=ceph",
            "--s3.endpoint=http://minio.storage:9000",
            "--start-ts=450999999999999999",
        ]
    );
    let status = backup.status.unwrap();
    assert_eq!(status.commit_ts, "451000000000000000");
    assert_eq!(
        phase_of(&status.log_sub_command_statuses["log-start"].phase),
        "Complete"
    );
    // Nothing more runs while the spec stays the same.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scene.job_names("br.pingcap.com/backup=pitr").await.len(), 1);

    let this = &scene;
    let set = |patch: Value| async move {
        this.backups()
            .patch("pitr", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap()
    };
    let paused = set(json!({"spec": {"logSubcommand": "log-pause"}})).await;
    scene.wait_backup_phase("pitr", "Paused", WAIT).await;
    let pause = scene
        .jobs()
        .get(&format!(
            "backup-pitr-log-pause-g{}",
            paused.metadata.generation.unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(
        &br_command(&pause)[1..4],
        ["log", "pause", "--task-name=pitr"]
    );

    let resumed = set(json!({"spec": {"logSubcommand": "log-start"}})).await;
    scene.wait_backup_phase("pitr", "Running", WAIT).await;
    let resume = scene
        .jobs()
        .get(&format!(
            "backup-pitr-log-resume-g{}",
            resumed.metadata.generation.unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(
        &br_command(&resume)[1..4],
        ["log", "resume", "--task-name=pitr"]
    );

    set(json!({"spec": {"logTruncateUntil": "2024-05-01 00:00:00"}})).await;
    scene
        .wait("log truncated", WAIT, || async {
            let b = scene.backup("pitr").await?;
            Ok(b.status
                .is_some_and(|s| s.log_success_truncate_until == "2024-05-01 00:00:00"))
        })
        .await;
    let truncate_jobs: Vec<Job> = scene
        .jobs()
        .list(&ListParams::default().labels("br.pingcap.com/backup=pitr"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.name_any().starts_with("backup-pitr-log-truncate-"))
        .collect();
    assert_eq!(truncate_jobs.len(), 1);
    assert_eq!(
        &br_command(&truncate_jobs[0])[1..5],
        ["log", "truncate", "--until=2024-05-01 00:00:00", "--yes"]
    );

    set(json!({"spec": {"logSubcommand": "log-stop"}})).await;
    let stopped = scene.wait_backup_phase("pitr", "Stopped", WAIT).await;
    let statuses = stopped.status.unwrap().log_sub_command_statuses;
    for command in [
        "log-start",
        "log-pause",
        "log-resume",
        "log-truncate",
        "log-stop",
    ] {
        assert_eq!(
            phase_of(&statuses[command].phase),
            "Complete",
            "{command}: {statuses:?}"
        );
    }
    // Five commands, five Jobs: none ran twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scene.job_names("br.pingcap.com/backup=pitr").await.len(), 5);
}

/// The init containers' images of a Job.
fn init_images(job: &Job) -> Vec<String> {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.image.clone().unwrap())
        .collect()
}

// Like every scenario in this file, no PD or TiKV runs (a compaction touches only the storage),
// so there is no simulator and no data-safety verdict to check.
#[tokio::test]
async fn a_compaction_completes_or_fails_after_its_retries_and_leaves_no_job_behind() {
    let scene = Scene::start("bk-compact").await;
    scene.create_target("basic").await;
    scene.create_secret("s3-secret").await;
    let compacts = Api::<CompactBackup>::namespaced(scene.client.clone(), scene.n());
    let create = |name: &str, annotations: Value, extra: Value| {
        let mut spec = json!({
            "br": {"cluster": "basic"},
            "s3": s3("log", Some("s3-secret")),
            "startTs": "450000000000000000",
            "endTs": "451000000000000000"
        });
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                // A null leaves the field out.
                if v.is_null() {
                    spec.as_object_mut().unwrap().remove(&k);
                } else {
                    spec[k] = v;
                }
            }
        }
        let compact: CompactBackup = serde_json::from_value(json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "CompactBackup",
            "metadata": {"name": name, "annotations": annotations},
            "spec": spec
        }))
        .unwrap();
        let compacts = compacts.clone();
        async move {
            compacts
                .create(&PostParams::default(), &compact)
                .await
                .unwrap()
        }
    };
    let wait_state = |name: &'static str, state: &'static str| {
        let compacts = compacts.clone();
        let scene = &scene;
        async move {
            scene
                .wait(
                    &format!("CompactBackup {name} in state {state}"),
                    WAIT,
                    || async {
                        let c = compacts.get(name).await?;
                        Ok(c.status.is_some_and(|s| s.state == state))
                    },
                )
                .await;
            compacts.get(name).await.unwrap()
        }
    };

    create("good", json!({}), json!({})).await;
    create(
        "broken",
        json!({"tidb-operator.test/fake-br": "fail:the log backup data is unreadable"}),
        json!({"maxRetryTimes": 1}),
    )
    .await;

    // A spec the reference's controller refuses fails at once, and makes no Job.
    create("no-end", json!({}), json!({"endTs": null})).await;

    // A success: its one Job compacts the range with the cluster's BR and tikv-ctl.
    let good = wait_state("good", "Complete").await;
    let status = good.status.unwrap();
    assert!(status.retry_status.is_empty(), "{:?}", status.retry_status);
    let job = scene.jobs().get("compact-good").await.unwrap();
    assert_eq!(
        init_images(&job),
        ["pingcap/br:v8.5.2", "pingcap/tikv:v8.5.2"]
    );
    let args = runner_args(&job);
    assert_eq!(
        &args[..5],
        [
            "run-compact",
            "--fake-br=success",
            "--from=450000000000000000",
            "--until=451000000000000000",
            "--concurrency=4"
        ]
    );
    let base64ify = br_command(&job);
    assert_eq!(
        &base64ify[..4],
        [
            "/var/lib/br-bin/br",
            "operator",
            "base64ify",
            "--storage=s3://backups/log"
        ]
    );
    assert!(base64ify.contains(&"--s3.endpoint=http://minio.storage:9000".to_string()));
    assert!(reasons(&scene.events_of("good").await).contains("CompactComplete"));

    // A failure: one retry (maxRetryTimes 1), then Failed with the reason; no third Job.
    let broken = wait_state("broken", "Failed").await;
    let status = broken.status.unwrap();
    assert!(
        status.message.contains("the log backup data is unreadable")
            && status.message.contains("maxRetryTimes 1"),
        "{}",
        status.message
    );
    let records: Vec<i64> = status.retry_status.iter().map(|r| r.retry_num).collect();
    assert_eq!(records, [0, 1]);
    assert!(
        status
            .retry_status
            .iter()
            .all(|r| r.retry_reason.contains("unreadable") && r.detect_failed_at.is_some())
    );
    let expected: BTreeSet<String> = ["compact-broken", "compact-broken-retry-1"]
        .into_iter()
        .map(String::from)
        .collect();
    let selector = "br.pingcap.com/compact-backup=broken";
    assert_eq!(scene.job_names(selector).await, expected);
    let events = reasons(&scene.events_of("broken").await);
    assert!(
        events.contains("RetryScheduled") && events.contains("CompactFailed"),
        "{events:?}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        scene.job_names(selector).await,
        expected,
        "a Job after the CompactBackup failed"
    );

    let no_end = wait_state("no-end", "Failed").await;
    assert_eq!(no_end.status.unwrap().message, "end-ts must be set");
    assert!(
        scene
            .job_names("br.pingcap.com/compact-backup=no-end")
            .await
            .is_empty()
    );
    assert!(reasons(&scene.events_of("no-end").await).contains("InvalidSpec"));

    // Deleting a CompactBackup takes its Jobs and their Pods with it.
    for name in ["good", "broken", "no-end"] {
        compacts
            .delete(name, &DeleteParams::foreground())
            .await
            .unwrap();
    }
    scene
        .wait(
            "the CompactBackups, their Jobs and Pods gone",
            WAIT,
            || async {
                let jobs = scene
                    .jobs()
                    .list(&ListParams::default().labels("br.pingcap.com/compact-backup"))
                    .await?;
                let pods = Api::<Pod>::namespaced(scene.client.clone(), scene.n())
                    .list(&ListParams::default().labels("br.pingcap.com/compact-backup"))
                    .await?;
                // A foreground deletion removes the owner only after the garbage collector has
                // seen its dependents go, which can lag behind them.
                let owners = compacts.list(&ListParams::default()).await?;
                Ok(jobs.items.is_empty() && pods.items.is_empty() && owners.items.is_empty())
            },
        )
        .await;
}
