//! The Jobs this controller creates: BR runs for Backups and Restores, compactions of log
//! backup data, and clean-ups of backup data. Pure builders.
//!
//! A Job's Pod has two containers: an init container from the BR image (`pingcap/br:<version>`)
//! that copies the `br` binary into a shared `emptyDir`, and the runner (this binary's image,
//! `backup-controller run-br -- <br> <args>`) that runs it and writes the result to its
//! termination message. A compaction adds a second init container from the TiKV image that
//! copies `tikv-ctl`, and the runner's `run-compact` encodes the storage with
//! `br operator base64ify` and then runs `tikv-ctl compact-log-backup`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements,
    SecretProjection, Toleration, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use operator_api::br::{BackupSpec, CompactSpec, RestoreSpec};
use operator_api::keys;

use operator_runtime::tls::{CA_KEY, CERT_KEY, KEY_KEY};

use crate::outcome::{FAKE_RESULT_ANNOTATION, FakeMode};
use crate::storage::merge_env;
use crate::target::ClientCert;

/// A controller owner reference to `object`, so what it makes (its Jobs, a schedule's Backups)
/// goes with it.
pub fn owner<K: Resource<DynamicType = ()>>(object: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of a Job run for `object` against `cluster`: the operator's, and `key` naming the
/// object, so its Jobs can be listed.
pub fn labels<K: Resource>(
    object: &K,
    key: &str,
    cluster: &str,
    component: &str,
) -> BTreeMap<String, String> {
    let name = object.name_any();
    [
        (keys::LABEL_APP_NAME, keys::APP_NAME),
        (keys::LABEL_APP_INSTANCE, cluster),
        (keys::LABEL_APP_COMPONENT, component),
        (keys::LABEL_APP_MANAGED_BY, keys::MANAGED_BY),
        (keys::LABEL_MANAGED_BY, keys::MANAGED_BY),
        (keys::LABEL_CLUSTER, cluster),
        (key, name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Where the init container puts `br`, and the runner's scratch space.
pub const BR_BIN_DIR: &str = "/var/lib/br-bin";
/// Path of `br` in the runner container.
pub const BR_BIN: &str = "/var/lib/br-bin/br";
/// Path of `tikv-ctl` in the runner container of a compaction.
pub const TIKV_CTL_BIN: &str = "/var/lib/br-bin/tikv-ctl";
/// Name of the runner container, whose termination message carries the result.
pub const RUNNER_CONTAINER: &str = "br";
const BR_BIN_VOLUME: &str = "br-bin";
/// The volume of the Cluster's client certificate (TLS clusters).
const CLIENT_TLS_VOLUME: &str = "cluster-client-tls";

/// Longest Job name: the Job controller puts it in a label of the Job's Pods.
pub const MAX_JOB_NAME: usize = 63;

/// Why a Job name cannot be used, if it cannot.
pub fn check_job_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_JOB_NAME {
        return Err(format!(
            "the Job name {name:?} would be {} characters, more than {MAX_JOB_NAME}; use a shorter name for this object",
            name.len()
        ));
    }
    Ok(())
}

/// How Jobs are made, from the controller's flags.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// Image of the runner: this binary's image.
    pub runner_image: String,
    /// Path of this binary in that image.
    pub runner_command: String,
    /// Test tooling: runs get `--fake-br` instead of running BR, and their Pods carry the fake
    /// result (see [`FAKE_RESULT_ANNOTATION`]).
    pub fake_br: bool,
}

/// The Pod settings a Backup or Restore spec gives its Job.
#[derive(Clone, Debug, Default)]
pub struct PodSettings {
    /// Container resources.
    pub resources: Option<ResourceRequirements>,
    /// The user's environment, which overrides the operator's.
    pub env: Vec<EnvVar>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Affinity.
    pub affinity: Option<Affinity>,
    /// Image pull secrets.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// ServiceAccount of the Pod (for a cloud identity); empty: none mounted.
    pub service_account: String,
    /// Pod security context.
    pub pod_security_context: Option<PodSecurityContext>,
    /// PriorityClass.
    pub priority_class_name: String,
    /// Extra volumes.
    pub volumes: Vec<Volume>,
    /// Where the extra volumes are mounted.
    pub volume_mounts: Vec<VolumeMount>,
    /// How often Kubernetes runs a new Pod after one fails (the Job's `backoffLimit`).
    pub pod_retries: i32,
}

/// The Pod settings of a BR kind's spec: every kind names these fields alike.
macro_rules! pod_settings {
    ($spec:expr, $retries:expr) => {
        PodSettings {
            resources: $spec.resources.clone(),
            env: $spec.env.clone(),
            tolerations: $spec.tolerations.clone(),
            affinity: $spec.affinity.clone(),
            image_pull_secrets: $spec.image_pull_secrets.clone(),
            service_account: $spec.service_account.clone(),
            pod_security_context: $spec.pod_security_context.clone(),
            priority_class_name: $spec.priority_class_name.clone(),
            volumes: $spec.additional_volumes.clone(),
            volume_mounts: $spec.additional_volume_mounts.clone(),
            pod_retries: $retries,
        }
    };
}

impl PodSettings {
    /// The Pod settings of a Backup. Its retries are the controller's, per backoffRetryPolicy.
    pub fn of_backup(spec: &BackupSpec) -> PodSettings {
        pod_settings!(spec, 0)
    }

    /// The Pod settings of a Restore. As the reference: the restore Job retries its Pod itself,
    /// `backoffLimit` times.
    pub fn of_restore(spec: &RestoreSpec) -> PodSettings {
        pod_settings!(spec, spec.backoff_limit.max(0))
    }

    /// The Pod settings of a CompactBackup. Retries are the controller's: a new Job per retry.
    pub fn of_compact(spec: &CompactSpec) -> PodSettings {
        pod_settings!(spec, 0)
    }
}

/// What one Job runs.
#[derive(Clone, Debug)]
pub enum Work {
    /// BR, from this image, with these arguments.
    Br {
        /// The BR image.
        image: String,
        /// BR's arguments.
        args: Vec<String>,
    },
    /// A compaction of log backup data: `br` from one image and `tikv-ctl` from another.
    Compact {
        /// The BR image.
        br_image: String,
        /// The TiKV image, which holds `tikv-ctl`.
        tikv_image: String,
        /// The runner's `run-compact` flags, then `--` and BR's `operator base64ify` arguments.
        args: Vec<String>,
    },
    /// Deleting the data under a storage URI (no BR needed).
    Clean {
        /// The runner's `clean` arguments (`--storage=...`).
        args: Vec<String>,
    },
}

/// Everything one Job is made from.
#[derive(Clone, Debug)]
pub struct JobRequest {
    /// The Job's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The Backup or Restore that owns it.
    pub owner: OwnerReference,
    /// Labels of the Job and its Pod.
    pub labels: BTreeMap<String, String>,
    /// What it runs.
    pub work: Work,
    /// The storage's environment (credentials as Secret references).
    pub env: Vec<EnvVar>,
    /// The storage's volume, for local storage.
    pub storage_volume: Option<(Volume, VolumeMount)>,
    /// The Cluster's client certificate, mounted read-only at [`crate::target::CLIENT_TLS_DIR`]
    /// for BR (a Cluster with TLS between components).
    pub tls: Option<ClientCert>,
    /// Pod settings from the spec.
    pub pod: PodSettings,
    /// Test tooling: the fake mode's text and value, used only when [`JobSettings::fake_br`].
    pub fake: Option<(String, FakeMode)>,
}

/// The client certificate as one directory: the key pair from its Secret, `ca.crt` from the CA's
/// (the same Secret unless the Cluster names two).
fn client_tls_volume(tls: ClientCert) -> Volume {
    let source = |secret: String, keys: &[&str]| VolumeProjection {
        secret: Some(SecretProjection {
            name: secret,
            items: Some(
                keys.iter()
                    .map(|k| KeyToPath {
                        key: (*k).to_string(),
                        path: (*k).to_string(),
                        ..KeyToPath::default()
                    })
                    .collect(),
            ),
            ..SecretProjection::default()
        }),
        ..VolumeProjection::default()
    };
    Volume {
        name: CLIENT_TLS_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                source(tls.cert, &[CERT_KEY, KEY_KEY]),
                source(tls.ca, &[CA_KEY]),
            ]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The Job of a request.
pub fn build(settings: &JobSettings, request: JobRequest) -> Job {
    let JobRequest {
        name,
        namespace,
        owner,
        labels,
        work,
        env,
        storage_volume,
        tls,
        pod,
        fake,
    } = request;
    let fake = fake.filter(|_| settings.fake_br);
    let bin_mount = VolumeMount {
        name: BR_BIN_VOLUME.into(),
        mount_path: BR_BIN_DIR.into(),
        ..VolumeMount::default()
    };
    let mut volumes = vec![Volume {
        name: BR_BIN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![bin_mount.clone()];
    if let Some((volume, mount)) = storage_volume {
        volumes.push(volume);
        mounts.push(mount);
    }
    if let Some(tls) = tls {
        volumes.push(client_tls_volume(tls));
        mounts.push(VolumeMount {
            name: CLIENT_TLS_VOLUME.into(),
            mount_path: crate::target::CLIENT_TLS_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    volumes.extend(pod.volumes);
    mounts.extend(pod.volume_mounts);

    let fake_flag = fake.as_ref().map(|(text, _)| format!("--fake-br={text}"));
    let copy = |name: &str, image: String, from: &str, to: &str| Container {
        name: name.into(),
        image: Some(image),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("cp {from} {to}"),
        ]),
        volume_mounts: Some(vec![bin_mount.clone()]),
        ..Container::default()
    };
    let (init_containers, args) = match work {
        Work::Br {
            image,
            args: br_args,
        } => {
            let init = copy("br-bin", image, "/br", BR_BIN);
            let mut args = vec!["run-br".to_string()];
            args.extend(fake_flag);
            args.push("--".into());
            args.push(BR_BIN.into());
            args.extend(br_args);
            (Some(vec![init]), args)
        }
        Work::Compact {
            br_image,
            tikv_image,
            args: compact_args,
        } => {
            let init = vec![
                copy("br-bin", br_image, "/br", BR_BIN),
                copy("tikv-ctl-bin", tikv_image, "/tikv-ctl", TIKV_CTL_BIN),
            ];
            let mut args = vec!["run-compact".to_string()];
            args.extend(fake_flag);
            args.extend(compact_args);
            (Some(init), args)
        }
        Work::Clean { args: clean_args } => {
            let mut args = vec!["clean".to_string()];
            args.extend(fake_flag);
            args.extend(clean_args);
            (None, args)
        }
    };

    let env = merge_env(env, &pod.env);
    let runner = Container {
        name: RUNNER_CONTAINER.into(),
        image: Some(settings.runner_image.clone()),
        command: Some(vec![settings.runner_command.clone()]),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        resources: pod.resources,
        volume_mounts: Some(mounts),
        // The runner writes its result there; a crash before that leaves the log's tail.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let mut annotations = BTreeMap::new();
    if let Some((_, mode)) = &fake {
        annotations.insert(
            FAKE_RESULT_ANNOTATION.to_string(),
            mode.result().to_message(),
        );
    }
    let has_account = !pod.service_account.is_empty();
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(pod.pod_retries),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(restricted(PodSpec {
                    restart_policy: Some("Never".into()),
                    init_containers,
                    containers: vec![runner],
                    volumes: Some(volumes),
                    service_account_name: has_account.then_some(pod.service_account),
                    // The runner needs no API access; a ServiceAccount given for a cloud
                    // identity keeps its own token settings.
                    automount_service_account_token: (!has_account).then_some(false),
                    tolerations: (!pod.tolerations.is_empty()).then_some(pod.tolerations),
                    affinity: pod.affinity,
                    image_pull_secrets: (!pod.image_pull_secrets.is_empty())
                        .then_some(pod.image_pull_secrets),
                    security_context: pod.pod_security_context,
                    priority_class_name: (!pod.priority_class_name.is_empty())
                        .then_some(pod.priority_class_name),
                    ..PodSpec::default()
                })),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The BR image: `toolImage` as given when it has a tag, `toolImage:<version>` when it has none,
/// else `pingcap/br:<version>`. `None` when a version is needed and unknown.
pub fn br_image(tool_image: &str, version: Option<&str>) -> Option<String> {
    image_of("pingcap/br", tool_image, version)
}

/// The TiKV image `tikv-ctl` is copied from: `pingcap/tikv:<version>`, the version of the
/// cluster's TiKV, as BR's own tag is.
pub fn tikv_image(version: Option<&str>) -> Option<String> {
    image_of("pingcap/tikv", "", version)
}

/// `image` as given when it has a tag, `image:<version>` when it has none, else
/// `<repository>:<version>`.
fn image_of(repository: &str, image: &str, version: Option<&str>) -> Option<String> {
    let has_tag = |image: &str| {
        let last = image.rsplit('/').next().unwrap_or(image);
        last.contains(':') || last.contains('@')
    };
    if !image.is_empty() && has_tag(image) {
        return Some(image.to_string());
    }
    let version = version.filter(|v| !v.is_empty())?;
    let version = if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    };
    let repository = if image.is_empty() { repository } else { image };
    Some(format!("{repository}:{version}"))
}

/// `spec` with the restricted security defaults every operator Pod gets; what the Backup's or
/// Restore's `podSecurityContext` sets is kept.
fn restricted(mut spec: PodSpec) -> PodSpec {
    operator_runtime::security::restrict(&mut spec);
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn settings(fake_br: bool) -> JobSettings {
        JobSettings {
            runner_image: "tidb-operator/backup-controller:v0.1.0".into(),
            runner_command: "/backup-controller".into(),
            fake_br,
        }
    }

    fn request(fake: Option<&str>) -> JobRequest {
        let provider = serde_json::from_value(serde_json::json!({"s3": {
            "provider": "aws", "bucket": "b", "secretName": "creds"}}))
        .unwrap();
        let storage = Storage::of(&provider).unwrap();
        JobRequest {
            name: "backup-b1".into(),
            namespace: "db".into(),
            owner: OwnerReference {
                api_version: "br.pingcap.com/v1alpha1".into(),
                kind: "Backup".into(),
                name: "b1".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            labels: [("a".to_string(), "b".to_string())].into(),
            work: Work::Br {
                image: "pingcap/br:v8.5.2".into(),
                args: vec!["backup".into(), "full".into()],
            },
            env: storage.env(),
            storage_volume: None,
            tls: None,
            pod: PodSettings {
                env: vec![EnvVar {
                    name: "EXTRA".into(),
                    value: Some("1".into()),
                    value_from: None,
                }],
                ..PodSettings::default()
            },
            fake: fake.map(|f| (f.to_string(), f.parse().unwrap())),
        }
    }

    #[test]
    fn a_br_job_copies_br_and_runs_it_through_the_runner() {
        let job = build(&settings(false), request(Some("success")));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let init = &pod.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("pingcap/br:v8.5.2"));
        let runner = &pod.containers[0];
        assert_eq!(
            runner.args.as_deref().unwrap(),
            ["run-br", "--", BR_BIN, "backup", "full"],
            "no fake flag unless the controller runs with --fake-br"
        );
        let env = runner.env.as_ref().unwrap();
        assert_eq!(env.len(), 3);
        assert!(env[..2].iter().all(|e| e.value.is_none()));
        assert!(
            spec.template
                .metadata
                .unwrap()
                .annotations
                .is_none_or(|a| !a.contains_key(FAKE_RESULT_ANNOTATION))
        );
    }

    #[test]
    fn a_restore_job_retries_its_pod_backoff_limit_times_and_a_backup_job_never() {
        let restore = |extra: serde_json::Value| -> RestoreSpec {
            let mut spec = serde_json::json!({"br": {"cluster": "basic"}});
            if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                spec.extend(extra.clone());
            }
            serde_json::from_value(spec).unwrap()
        };
        let limit_of = |pod: PodSettings| {
            let mut req = request(None);
            req.pod = pod;
            build(&settings(false), req).spec.unwrap().backoff_limit
        };
        let cases = [
            (serde_json::json!({"backoffLimit": 3}), Some(3)),
            (serde_json::json!({}), Some(0)),
            (serde_json::json!({"backoffLimit": -1}), Some(0)),
        ];
        for (extra, want) in cases {
            let pod = PodSettings::of_restore(&restore(extra.clone()));
            assert_eq!(limit_of(pod), want, "restore spec {extra}");
        }
        let backup: BackupSpec =
            serde_json::from_value(serde_json::json!({"br": {"cluster": "basic"}})).unwrap();
        assert_eq!(limit_of(PodSettings::of_backup(&backup)), Some(0));
    }

    #[test]
    fn a_fake_run_says_so_and_carries_its_result() {
        let job = build(&settings(true), request(Some("fail:boom")));
        let template = job.spec.unwrap().template;
        let runner = &template.spec.unwrap().containers[0];
        assert_eq!(
            &runner.args.as_deref().unwrap()[..3],
            ["run-br", "--fake-br=fail:boom", "--"]
        );
        let annotation =
            template.metadata.unwrap().annotations.unwrap()[FAKE_RESULT_ANNOTATION].clone();
        let result = crate::outcome::RunResult::parse(&annotation).unwrap();
        assert!(!result.ok && result.message.contains("boom"));
    }

    #[test]
    fn job_names_fit_in_a_label() {
        assert!(check_job_name(&"a".repeat(63)).is_ok());
        assert!(
            check_job_name(&"a".repeat(64))
                .unwrap_err()
                .contains("64 characters")
        );
    }

    #[test]
    fn images_follow_the_tool_image_and_version() {
        assert_eq!(br_image("", Some("v8.5.2")).unwrap(), "pingcap/br:v8.5.2");
        assert_eq!(br_image("", Some("8.5.2")).unwrap(), "pingcap/br:v8.5.2");
        assert_eq!(
            br_image("registry:5000/br", Some("v8.5.2")).unwrap(),
            "registry:5000/br:v8.5.2"
        );
        assert_eq!(
            br_image("registry:5000/br:v7.5.0", None).unwrap(),
            "registry:5000/br:v7.5.0"
        );
        assert_eq!(br_image("", None), None);
        assert_eq!(tikv_image(Some("8.5.2")).unwrap(), "pingcap/tikv:v8.5.2");
    }

    #[test]
    fn a_tls_cluster_s_client_certificate_is_one_read_only_directory_from_its_two_secrets() {
        let mut with_tls = request(None);
        with_tls.tls = Some(ClientCert {
            cert: "client-pair".into(),
            ca: "client-ca".into(),
        });
        let job = build(&settings(false), with_tls);
        let spec = job.spec.unwrap().template.spec.unwrap();
        let volume = spec
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == CLIENT_TLS_VOLUME)
            .unwrap();
        let sources: Vec<(String, Vec<String>)> = volume
            .projected
            .unwrap()
            .sources
            .unwrap()
            .into_iter()
            .map(|p| {
                let secret = p.secret.unwrap();
                let keys = secret.items.unwrap().into_iter().map(|i| i.path);
                (secret.name, keys.collect())
            })
            .collect();
        assert_eq!(
            sources,
            [
                (
                    "client-pair".to_string(),
                    vec!["tls.crt".to_string(), "tls.key".to_string()]
                ),
                ("client-ca".to_string(), vec!["ca.crt".to_string()]),
            ]
        );
        let mount = spec.containers[0]
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == CLIENT_TLS_VOLUME)
            .unwrap();
        assert_eq!(mount.mount_path, crate::target::CLIENT_TLS_DIR);
        assert_eq!(mount.read_only, Some(true));
        // Without TLS, no such volume.
        let plain = build(&settings(false), request(None))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(
            plain
                .volumes
                .unwrap_or_default()
                .iter()
                .all(|v| v.name != CLIENT_TLS_VOLUME)
        );
    }
}
