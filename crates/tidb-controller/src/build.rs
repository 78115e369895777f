//! Pure builders of everything TiDB needs: instances from a group, the group's Services, and an
//! instance's config file, ConfigMap, PVCs and Pod. No client here; every function is tested on
//! plain values.

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, ExecAction, KeyToPath,
    Lifecycle, LifecycleHandler, PersistentVolumeClaim, Pod, PodSpec, Probe, SecretVolumeSource,
    Service, ServiceSpec, TCPSocketAction, Volume as PodVolume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_api::core::{
    Cluster, Feature, PD_DEFAULT_PORT_CLIENT, PDGroup, TIDB_DEFAULT_PORT_CLIENT,
    TIDB_DEFAULT_PORT_STATUS, TIDB_DEFAULT_PRE_STOP_SLEEP_SECONDS, TIDB_PORT_NAME_CLIENT,
    TIDB_PORT_NAME_STATUS, TIDB_SLOW_LOG_DEFAULT_PATH, TIDB_VOLUME_MOUNT_TYPE_SLOW_LOG, TiDB,
    TiDBGroup, TiDBMode, TiDBProbeType, TiDBSpec, TiDBTemplateSpec, Tls, Topology,
};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::dns::Dns;
use operator_runtime::tls::{self, SecretMount};

/// Name of the component label value and of the main container.
pub const COMPONENT: &str = keys::COMPONENT_TIDB;
/// Where the config file is mounted.
pub const CONFIG_DIR: &str = "/etc/tidb";
/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE: &str = "config.toml";
/// Default image when the template names none.
pub const DEFAULT_IMAGE: &str = "pingcap/tidb";
/// Key of the bootstrap SQL in the user's ConfigMap named by the Cluster's `bootstrapSQL`.
pub const BOOTSTRAP_SQL_KEY: &str = "bootstrap-sql";
/// Where the bootstrap SQL is mounted.
pub const BOOTSTRAP_SQL_DIR: &str = "/etc/tidb-bootstrap";
/// File name of the bootstrap SQL in [`BOOTSTRAP_SQL_DIR`].
pub const BOOTSTRAP_SQL_FILE: &str = "bootstrap.sql";
/// Where the SEM configuration (`security.sem`'s ConfigMap) is mounted, as the reference does.
pub const SEM_DIR: &str = "/etc/sem";
/// Key of the SEM configuration in its ConfigMap, and its file name in [`SEM_DIR`].
pub const SEM_FILE: &str = "sem.json";
/// Where the `tidb_auth_token` JWKs (`security.authToken`'s Secret) are mounted.
pub const AUTH_TOKEN_DIR: &str = "/var/lib/tidb-auth-token";
/// Key of the JWKs in their Secret, and their file name in [`AUTH_TOKEN_DIR`].
pub const AUTH_TOKEN_FILE: &str = "tidb_auth_token_jwks.json";
/// Where the certificate that signs session tokens is mounted (the `SessionTokenSigning`
/// feature), as the reference does.
pub const SESSION_TOKEN_DIR: &str = "/var/lib/tidb-session-token-signing-tls";
/// The config keys of that certificate and its key.
pub const SESSION_TOKEN_KEYS: [&str; 2] = [
    "security.session-token-signing-cert",
    "security.session-token-signing-key",
];
/// File name of the slow log in the slow-log directory.
pub const SLOW_LOG_FILE: &str = "slowlog";
/// Image of the slow-log sidecar when the template names none.
pub const DEFAULT_SLOW_LOG_IMAGE: &str = "busybox:1.37.0";
/// Seconds tidb-server waits for open transactions after SIGTERM (fixed in tidb-server).
pub const GRACEFUL_CLOSE_SECONDS: i64 = 15;
/// Extra seconds of the termination grace period beyond the preStop sleep and TiDB's close.
pub const TERMINATION_BUFFER_SECONDS: i64 = 5;
/// Seconds before the first readiness probe, as the reference operator waits.
const READINESS_INITIAL_DELAY_SECONDS: i32 = 10;

/// Pod volume names the operator uses itself; a template volume may not take them.
const CONFIG_VOLUME: &str = "config";
const BOOTSTRAP_SQL_VOLUME: &str = "bootstrap-sql";
const SLOW_LOG_VOLUME: &str = "slowlog";
const SEM_VOLUME: &str = "sem";
const SESSION_TOKEN_VOLUME: &str = "session-token-signing-tls";
const AUTH_TOKEN_VOLUME: &str = "tidb-auth-token";
/// Name of the slow-log sidecar container.
const SLOW_LOG_CONTAINER: &str = "slowlog";

/// Headless Service giving each server a stable DNS name.
pub fn peer_service_name(group: &str) -> String {
    format!("{group}-tidb-peer")
}

/// Service MySQL clients connect to.
pub fn client_service_name(group: &str) -> String {
    format!("{group}-tidb")
}

/// MySQL port of a template.
pub fn client_port(spec: &TiDBTemplateSpec) -> i32 {
    spec.server
        .ports
        .client
        .as_ref()
        .map_or(TIDB_DEFAULT_PORT_CLIENT, |p| p.port)
}

/// Status port of a template.
pub fn status_port(spec: &TiDBTemplateSpec) -> i32 {
    spec.server
        .ports
        .status
        .as_ref()
        .map_or(TIDB_DEFAULT_PORT_STATUS, |p| p.port)
}

/// Seconds the preStop hook sleeps before TiDB is told to stop.
pub fn pre_stop_sleep_seconds(spec: &TiDBTemplateSpec) -> i32 {
    spec.pre_stop
        .as_ref()
        .and_then(|p| p.sleep_seconds)
        .unwrap_or(TIDB_DEFAULT_PRE_STOP_SLEEP_SECONDS)
        .max(0)
}

/// The Pod's termination grace period: the preStop sleep, TiDB's own close, and a buffer.
pub fn termination_grace_period_seconds(spec: &TiDBTemplateSpec) -> i64 {
    i64::from(pre_stop_sleep_seconds(spec)) + GRACEFUL_CLOSE_SECONDS + TERMINATION_BUFFER_SECONDS
}

/// What new or updated instances are made from: the group's template at its update revision, or,
/// while a new version waits for its dependencies, the spec of an instance already running.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The revision label the instances get.
    pub revision: String,
    /// The instance spec fields.
    pub spec: TiDBTemplateSpec,
    /// The features.
    pub features: Vec<Feature>,
    /// The fingerprint of the MySQL server certificate, with MySQL TLS on
    /// ([`keys::ANNO_TLS_FINGERPRINT`]).
    pub tls_fingerprint: Option<String>,
}

impl Target {
    /// The group's own template, with the fingerprint of its MySQL certificate.
    pub fn of_group(group: &TiDBGroup, revision: &str, tls_fingerprint: Option<String>) -> Self {
        Target {
            revision: revision.to_string(),
            spec: group.spec.template.spec.clone(),
            features: group.spec.features.clone(),
            tls_fingerprint,
        }
    }

    /// What an existing instance runs, with its revision.
    pub fn of_instance(tidb: &TiDB) -> Self {
        Target {
            revision: revision_of(tidb),
            spec: tidb.spec.template.clone(),
            features: tidb.spec.features.clone(),
            tls_fingerprint: tls_fingerprint_of(tidb),
        }
    }
}

/// The MySQL certificate fingerprint an instance carries.
pub fn tls_fingerprint_of(tidb: &TiDB) -> Option<String> {
    tidb.annotations().get(keys::ANNO_TLS_FINGERPRINT).cloned()
}

/// Sets (or, with `None`, removes) the MySQL certificate fingerprint of an instance.
fn set_tls_fingerprint(tidb: &mut TiDB, fingerprint: Option<&String>) {
    match fingerprint {
        Some(f) => {
            tidb.annotations_mut()
                .insert(keys::ANNO_TLS_FINGERPRINT.to_string(), f.clone());
        }
        None => {
            tidb.annotations_mut().remove(keys::ANNO_TLS_FINGERPRINT);
        }
    }
}

/// The revision label of an instance.
pub fn revision_of(tidb: &TiDB) -> String {
    tidb.labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default()
}

/// A TiDB instance of a group, made from `target`.
pub fn instance(
    group: &TiDBGroup,
    name: &str,
    topology: Topology,
    target: &Target,
) -> Result<TiDB, BuildError> {
    let mut tidb = TiDB {
        metadata: build::instance_meta(group, name, &target.revision)?,
        spec: TiDBSpec {
            cluster: group.spec.cluster.clone(),
            features: target.features.clone(),
            topology,
            subdomain: build::new_instance_subdomain(
                &target.features,
                &group.spec.cluster.name,
                peer_service_name(&group.name_any()),
            ),
            replicas: None,
            template: target.spec.clone(),
        },
        status: None,
    };
    set_tls_fingerprint(&mut tidb, target.tls_fingerprint.as_ref());
    Ok(tidb)
}

/// Whether moving an instance to `target` leaves its Pod as it is (a change of the config with
/// the `HotReload` strategy, of labels or annotations): such an instance is updated in place.
pub fn update_keeps_pod(existing: &TiDB, target: &Target) -> bool {
    let mut updated = existing.clone();
    updated.spec.template = target.spec.clone();
    updated.spec.features = target.features.clone();
    set_tls_fingerprint(&mut updated, target.tls_fingerprint.as_ref());
    // Cluster TLS changes the Pod the same way before and after (it cannot change), so the
    // comparison leaves it out.
    match (pod(existing, None, false), pod(&updated, None, false)) {
        (Ok(before), Ok(after)) => pod_is_current(&before, &after),
        _ => false,
    }
}

/// The group's headless peer Service and its MySQL Service.
pub fn services(group: &TiDBGroup) -> Result<[Service; 2], BuildError> {
    let group_name = group.name_any();
    let spec = &group.spec.template.spec;
    let ports = vec![
        build::named_port(TIDB_PORT_NAME_CLIENT, client_port(spec)),
        build::named_port(TIDB_PORT_NAME_STATUS, status_port(spec)),
    ];
    let type_ = group
        .spec
        .service
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "ClusterIP".into());
    Ok([
        build::peer_service(group, peer_service_name(&group_name), ports.clone())?,
        build::group_service(
            group,
            client_service_name(&group_name),
            ServiceSpec {
                type_: Some(type_),
                ports: Some(ports),
                ..ServiceSpec::default()
            },
        )?,
    ])
}

/// DNS name of an instance through its peer Service, in the form `dns` asks for.
pub fn host(tidb: &TiDB, dns: &Dns) -> String {
    dns.instance_host(tidb)
}

/// In-cluster URL of an instance's status port.
pub fn status_url(tidb: &TiDB, dns: &Dns) -> String {
    format!(
        "{}://{}:{}",
        dns.scheme(),
        host(tidb, dns),
        status_port(&tidb.spec.template)
    )
}

/// TiDB's `path`: the PD endpoints as `host:port`, comma separated. From the Cluster's
/// `status.pd` URL(s) when set, else from PD's client Services (`(service, port)`, see
/// [`pd_services`]), named as `dns` asks. `None` when there is no PD to name.
pub fn pd_path(
    status_pd: &str,
    namespace: &str,
    pd_services: &[(String, i32)],
    dns: &Dns,
) -> Option<String> {
    let from_status: Vec<String> = status_pd
        .split(',')
        .map(|u| {
            u.trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string()
        })
        .filter(|u| !u.is_empty())
        .collect();
    if !from_status.is_empty() {
        return Some(from_status.join(","));
    }
    let mut groups: Vec<String> = pd_services
        .iter()
        .map(|(service, port)| {
            let host = dns.service_host(service, namespace);
            format!("{host}:{port}")
        })
        .collect();
    groups.sort();
    (!groups.is_empty()).then(|| groups.join(","))
}

/// PD's client Services of `cluster` when its status names none yet, with their ports: the
/// Cluster's PD Service under MultiPDGroup (when it has a PDGroup), else each PDGroup's own.
pub fn pd_services(cluster: &Cluster, pd_groups: &[PDGroup]) -> Vec<(String, i32)> {
    if let Some(service) = cluster.spec.pd_service(&cluster.name_any()) {
        return if pd_groups.is_empty() {
            Vec::new()
        } else {
            vec![(service, PD_DEFAULT_PORT_CLIENT)]
        };
    }
    pd_groups
        .iter()
        .map(|g| {
            (
                format!("{}-pd", g.name_any()),
                g.spec.template.spec.server.ports.client_port(),
            )
        })
        .collect()
}

/// Where the slow log goes: the mount of type `slowlog` (its path, or the default), or the
/// default directory when the slow-log sidecar is on without such a volume.
pub fn slow_log_dir(spec: &TiDBTemplateSpec) -> Option<String> {
    let mounted = spec
        .common
        .volumes
        .iter()
        .flat_map(|v| v.mounts.iter())
        .find(|m| m.type_ == TIDB_VOLUME_MOUNT_TYPE_SLOW_LOG)
        .map(|m| {
            if m.mount_path.is_empty() {
                TIDB_SLOW_LOG_DEFAULT_PATH.to_string()
            } else {
                m.mount_path.clone()
            }
        });
    mounted.or_else(|| {
        spec.slow_log
            .as_ref()
            .map(|_| TIDB_SLOW_LOG_DEFAULT_PATH.to_string())
    })
}

/// Where the cluster TLS Secret is mounted (tidb-operator v2's path).
pub const CLUSTER_TLS_DIR: &str = "/var/lib/tidb-tls";
/// TiDB's certificate keys of the links to PD and TiKV, written when the cluster has TLS.
pub const CLUSTER_SECURITY_KEYS: [&str; 3] = [
    "security.cluster-ssl-ca",
    "security.cluster-ssl-cert",
    "security.cluster-ssl-key",
];
/// TiDB's certificate keys of its MySQL port, written with MySQL TLS on (`ssl-ca` only when the
/// Secret carries a CA, which turns on the verification of client certificates).
pub const MYSQL_SECURITY_KEYS: [&str; 3] =
    ["security.ssl-ca", "security.ssl-cert", "security.ssl-key"];

/// Whether the template turns on TLS for MySQL clients.
pub fn mysql_tls(spec: &TiDBTemplateSpec) -> Option<&Tls> {
    spec.security
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .and_then(|t| t.mysql.as_ref())
        .filter(|m| m.enabled)
}

/// The config file: the user's TOML with the keys the operator owns set over it. `pd` is TiDB's
/// `path`; `bootstrap_sql` says whether the Cluster's bootstrap SQL is mounted; `dns` names the
/// advertised address; the certificate paths of the Secrets among `mounts` (cluster TLS,
/// MySQL TLS) are written, and refused in the user's TOML.
pub fn config(
    tidb: &TiDB,
    dns: &Dns,
    pd: &str,
    bootstrap_sql: bool,
    mounts: &[SecretMount],
) -> Result<String, BuildError> {
    let spec = &tidb.spec.template;
    let security = spec.security.as_ref();
    let sem = security.is_some_and(|s| s.sem.is_some());
    let auth_token = security.is_some_and(|s| s.auth_token.is_some());
    let mut managed: Vec<&str> = CLUSTER_SECURITY_KEYS
        .iter()
        .chain(MYSQL_SECURITY_KEYS.iter())
        .copied()
        .collect();
    if sem {
        managed.push("security.sem-config");
    }
    if auth_token {
        managed.push("security.auth-token-jwks");
    }
    if !spec.keyspace.is_empty() {
        managed.push("keyspace-name");
    }
    if spec.mode == TiDBMode::StandBy {
        managed.push("standby.standby-mode");
    }
    if signs_session_tokens(tidb) {
        managed.extend(SESSION_TOKEN_KEYS);
    }
    build::refuse_managed(&spec.common.config, &managed)?;
    let mut owned: Vec<(&str, toml::Value)> = vec![
        ("store", "tikv".into()),
        ("host", "::".into()),
        ("advertise-address", host(tidb, dns).into()),
        ("port", i64::from(client_port(spec)).into()),
        ("status.status-port", i64::from(status_port(spec)).into()),
        ("path", pd.into()),
    ];
    if let Some(dir) = slow_log_dir(spec) {
        owned.push((
            "log.slow-query-file",
            format!("{dir}/{SLOW_LOG_FILE}").into(),
        ));
    }
    for mount in mounts {
        let keys = match mount.volume.as_str() {
            tls::CLUSTER_TLS_VOLUME => CLUSTER_SECURITY_KEYS,
            tls::MYSQL_TLS_VOLUME => MYSQL_SECURITY_KEYS,
            SESSION_TOKEN_VOLUME => {
                let [cert, key] = SESSION_TOKEN_KEYS;
                owned.push((cert, mount.path(tls::CERT_KEY).into()));
                owned.push((key, mount.path(tls::KEY_KEY).into()));
                continue;
            }
            _ => continue,
        };
        let [ca, cert, key] = keys;
        if mount.has_ca {
            owned.push((ca, mount.path(tls::CA_KEY).into()));
        }
        owned.push((cert, mount.path(tls::CERT_KEY).into()));
        owned.push((key, mount.path(tls::KEY_KEY).into()));
    }
    if bootstrap_sql {
        owned.push((
            "initialize-sql-file",
            format!("{BOOTSTRAP_SQL_DIR}/{BOOTSTRAP_SQL_FILE}").into(),
        ));
    }
    if sem {
        owned.push((
            "security.sem-config",
            format!("{SEM_DIR}/{SEM_FILE}").into(),
        ));
        // On unless the config turns it off.
        if !build::config_sets(&spec.common.config, "security.enable-sem") {
            owned.push(("security.enable-sem", true.into()));
        }
    }
    if auth_token {
        owned.push((
            "security.auth-token-jwks",
            format!("{AUTH_TOKEN_DIR}/{AUTH_TOKEN_FILE}").into(),
        ));
    }
    // A standby server waits for its keyspace; it is given one when activated.
    if spec.mode == TiDBMode::StandBy {
        owned.push(("standby.standby-mode", true.into()));
    } else if !spec.keyspace.is_empty() {
        owned.push(("keyspace-name", spec.keyspace.clone().into()));
    }
    if !spec.server.labels.is_empty() {
        let labels: toml::Table = spec
            .server
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::from(v.clone())))
            .collect();
        owned.push(("labels", toml::Value::Table(labels)));
    }
    build::merge_config(&spec.common.config, &owned)
}

/// Hash of the user's config, the part that decides restarts (see the config-hash label).
pub fn config_hash(tidb: &TiDB) -> String {
    build::config_hash_of(tidb)
}

/// The ConfigMap holding the config file.
pub fn config_map(tidb: &TiDB, config: String) -> Result<ConfigMap, BuildError> {
    build::config_map_of(tidb, CONFIG_FILE, config)
}

/// The instance's PVCs: one per declared volume, none otherwise.
pub fn pvcs(tidb: &TiDB) -> Result<Vec<PersistentVolumeClaim>, BuildError> {
    build::pvcs_of(tidb)
}

/// The image to run: the template's image (tagged with the version unless it has a tag).
pub fn image(spec: &TiDBTemplateSpec) -> String {
    build::image_of(&spec.common, DEFAULT_IMAGE)
}

/// The readiness probe: a TCP connect to the MySQL port (the default), or with type `command`
/// a request to the status API's `/status` from inside the container.
fn readiness_probe(spec: &TiDBTemplateSpec, cluster_tls: bool) -> Probe {
    let kind = spec
        .probes
        .readiness
        .as_ref()
        .and_then(|r| r.type_)
        .unwrap_or(TiDBProbeType::Tcp);
    let mut probe = Probe {
        initial_delay_seconds: Some(READINESS_INITIAL_DELAY_SECONDS),
        ..Probe::default()
    };
    match kind {
        TiDBProbeType::Tcp => {
            probe.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(client_port(spec)),
                ..TCPSocketAction::default()
            });
        }
        TiDBProbeType::Command => {
            let scheme = tls::scheme(cluster_tls);
            let mut command = vec![
                "curl".into(),
                format!("{scheme}://127.0.0.1:{}/status", status_port(spec)),
                "--fail".into(),
                "--location".into(),
            ];
            // With cluster TLS the status port wants the group's certificate, as any client's.
            if cluster_tls {
                for (flag, key) in [
                    ("--cacert", tls::CA_KEY),
                    ("--cert", tls::CERT_KEY),
                    ("--key", tls::KEY_KEY),
                ] {
                    command.push(flag.into());
                    command.push(format!("{CLUSTER_TLS_DIR}/{key}"));
                }
            }
            probe.exec = Some(ExecAction {
                command: Some(command),
            });
        }
    }
    probe
}

/// The Pod of an instance. Its labels carry the hash of the Pod as built (and, with the
/// `Restart` config strategy, of the user's config), so a change shows as a different hash.
///
/// `bootstrap_sql` names the user's ConfigMap holding the Cluster's bootstrap SQL; it is mounted
/// at [`BOOTSTRAP_SQL_DIR`] but left out of the hash, so removing `bootstrapSQL` from the Cluster
/// after the first bootstrap restarts nothing. `cluster_tls`: the cluster has TLS between its
/// components (the readiness command calls the status port over https with the certificate).
pub fn pod(tidb: &TiDB, bootstrap_sql: Option<&str>, cluster_tls: bool) -> Result<Pod, BuildError> {
    let spec = &tidb.spec.template;
    let name = tidb.name_any();
    if let Some(volume) = spec.common.volumes.iter().find(|v| {
        [
            CONFIG_VOLUME,
            BOOTSTRAP_SQL_VOLUME,
            SLOW_LOG_VOLUME,
            SEM_VOLUME,
            AUTH_TOKEN_VOLUME,
            SESSION_TOKEN_VOLUME,
        ]
        .contains(&v.name.as_str())
    }) {
        return Err(BuildError::Missing(format!(
            "volume name {} is used by the operator; choose another",
            volume.name
        )));
    }
    let default_paths = [(TIDB_VOLUME_MOUNT_TYPE_SLOW_LOG, TIDB_SLOW_LOG_DEFAULT_PATH)];
    let (mut volumes, mut mounts) = build::volumes_of(tidb, CONFIG_DIR, &default_paths)?;
    let security = spec.security.as_ref();
    if let Some(sem) = security.and_then(|s| s.sem.as_ref()) {
        volumes.push(PodVolume {
            name: SEM_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: sem.config.name.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..PodVolume::default()
        });
        mounts.push(read_only_mount(SEM_VOLUME, SEM_DIR));
    }
    if let Some(token) = security.and_then(|s| s.auth_token.as_ref()) {
        volumes.push(PodVolume {
            name: AUTH_TOKEN_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(token.jwks.name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..PodVolume::default()
        });
        mounts.push(read_only_mount(AUTH_TOKEN_VOLUME, AUTH_TOKEN_DIR));
    }
    let slow_log_mount = spec
        .common
        .volumes
        .iter()
        .flat_map(|v| v.mounts.iter().map(move |m| (v, m)))
        .find(|(_, m)| m.type_ == TIDB_VOLUME_MOUNT_TYPE_SLOW_LOG)
        .map(|(v, m)| build::volume_mount(v, m, &default_paths))
        .transpose()?;
    let mut init_containers = Vec::new();
    if let Some(sidecar) = &spec.slow_log {
        let mount = match slow_log_mount {
            Some(mount) => mount,
            None => {
                // No volume for the slow log: a scratch directory shared with the sidecar.
                volumes.push(PodVolume {
                    name: SLOW_LOG_VOLUME.into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..PodVolume::default()
                });
                let mount = VolumeMount {
                    name: SLOW_LOG_VOLUME.into(),
                    mount_path: TIDB_SLOW_LOG_DEFAULT_PATH.into(),
                    ..VolumeMount::default()
                };
                mounts.push(mount.clone());
                mount
            }
        };
        let file = format!("{}/{SLOW_LOG_FILE}", mount.mount_path);
        init_containers.push(Container {
            name: SLOW_LOG_CONTAINER.into(),
            image: Some(
                sidecar
                    .image
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SLOW_LOG_IMAGE.into()),
            ),
            // A native sidecar: it starts before TiDB and runs beside it.
            restart_policy: Some("Always".into()),
            command: Some(build::log_tailer_command(&file, &tidb.spec.features)),
            volume_mounts: Some(vec![mount]),
            resources: build::resources(&sidecar.resources),
            ..Container::default()
        });
    }
    let sleep = pre_stop_sleep_seconds(spec);
    let container = Container {
        readiness_probe: Some(readiness_probe(spec, cluster_tls)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        format!("sleep {sleep}"),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..build::server_container(
            COMPONENT,
            image(spec),
            "/tidb-server",
            &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            &[
                (TIDB_PORT_NAME_CLIENT, client_port(spec)),
                (TIDB_PORT_NAME_STATUS, status_port(spec)),
            ],
            &spec.common.resources,
            mounts,
        )
    };
    let mut labels = build::labels_of(tidb);
    for (key, value) in tidb.labels() {
        if key != keys::LABEL_INSTANCE_REVISION_HASH {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let mut annotations = tidb.annotations().clone();
    annotations.insert("prometheus.io/scrape".into(), "true".into());
    annotations.insert("prometheus.io/port".into(), status_port(spec).to_string());
    annotations.insert("prometheus.io/path".into(), "/metrics".into());
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: tidb.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![build::controller_ref(tidb)?]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            hostname: Some(name.clone()),
            subdomain: Some(tidb.spec.subdomain.clone()),
            node_selector: (!tidb.spec.topology.is_empty()).then(|| tidb.spec.topology.clone()),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers: vec![container],
            volumes: Some(volumes),
            termination_grace_period_seconds: Some(termination_grace_period_seconds(spec)),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let mut pod = build::apply_pod_overlay(pod, spec.common.overlay.as_ref())?;
    build::stamp_hashes(&mut pod, &spec.common.update_strategy, config_hash(tidb));
    if let Some(config_map) = bootstrap_sql
        && let Some(spec) = pod.spec.as_mut()
    {
        spec.volumes.get_or_insert_with(Vec::new).push(PodVolume {
            name: BOOTSTRAP_SQL_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.to_string(),
                items: Some(vec![KeyToPath {
                    key: BOOTSTRAP_SQL_KEY.into(),
                    path: BOOTSTRAP_SQL_FILE.into(),
                    ..KeyToPath::default()
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..PodVolume::default()
        });
        if let Some(main) = spec.containers.iter_mut().find(|c| c.name == COMPONENT) {
            main.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(read_only_mount(BOOTSTRAP_SQL_VOLUME, BOOTSTRAP_SQL_DIR));
        }
    }
    Ok(pod)
}

/// Whether the TiDB signs session tokens (the `SessionTokenSigning` feature gate).
pub fn signs_session_tokens(tidb: &TiDB) -> bool {
    tidb.spec.features.contains(&Feature::SessionTokenSigning)
}

/// Whether `cluster` gives a certificate to sign session tokens with: its own
/// `security.sessionTokenSigningCertKeyPair`, else the cluster TLS certificate.
pub fn has_session_token_cert(cluster: &Cluster) -> bool {
    signing_key_pair(cluster).is_some() || tls::enabled(cluster)
}

fn signing_key_pair(cluster: &Cluster) -> Option<&str> {
    cluster
        .spec
        .security
        .as_ref()
        .and_then(|s| s.session_token_signing_cert_key_pair.as_ref())
        .map(|r| r.name.as_str())
}

/// The Secret whose `tls.crt` and `tls.key` sign the session tokens of a TiDB of `group` that
/// has the `SessionTokenSigning` feature: the Cluster's `sessionTokenSigningCertKeyPair`, else
/// (with TLS between components) the TiDB's cluster certificate, as in the reference.
pub fn session_token_secret(tidb: &TiDB, cluster: &Cluster, group: &str) -> Option<String> {
    if !signs_session_tokens(tidb) {
        return None;
    }
    if let Some(name) = signing_key_pair(cluster) {
        return Some(name.to_string());
    }
    tls::enabled(cluster).then(|| {
        let own = tidb
            .spec
            .template
            .security
            .as_ref()
            .and_then(|s| s.tls.as_ref())
            .and_then(|t| t.cluster.as_ref())
            .map(|c| &c.secret);
        SecretMount::cluster(group, COMPONENT, CLUSTER_TLS_DIR, own).cert_secret
    })
}

/// The mount of the session-token signing certificate in Secret `secret` (no CA).
pub fn session_token_mount(secret: &str) -> SecretMount {
    SecretMount {
        volume: SESSION_TOKEN_VOLUME.into(),
        dir: SESSION_TOKEN_DIR.into(),
        cert_secret: secret.to_string(),
        ca_secret: secret.to_string(),
        ca_required: false,
        has_ca: false,
        no_ca: true,
    }
}

/// A read-only mount of volume `name` at `path`.
fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

pub use operator_runtime::build::pod_is_current;

#[cfg(test)]
mod tests;
