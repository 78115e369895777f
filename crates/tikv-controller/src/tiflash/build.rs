//! Pure builders of everything TiFlash needs: instances from a group, the group's peer Service,
//! and an instance's ConfigMap (the server config and the proxy config), PVCs and Pod, with the
//! two log-tailer sidecars. No client here; every function is tested on plain values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, PodSpec, Service, VolumeMount,
};
use kube::ResourceExt;
use operator_api::core::{
    TIFLASH_DATA_DEFAULT_PATH, TIFLASH_DEFAULT_PORT_FLASH, TIFLASH_DEFAULT_PORT_METRICS,
    TIFLASH_DEFAULT_PORT_PROXY, TIFLASH_DEFAULT_PORT_PROXY_STATUS, TIFLASH_PORT_NAME_FLASH,
    TIFLASH_PORT_NAME_METRICS, TIFLASH_PORT_NAME_PROXY, TIFLASH_PORT_NAME_PROXY_STATUS,
    TIFLASH_VOLUME_MOUNT_TYPE_DATA, TiFlash, TiFlashGroup, TiFlashSpec, TiFlashTemplateSpec,
    Topology,
};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::dns::Dns;
use operator_runtime::tls::{self, SecretMount};

use crate::ready;

/// Name of the component label value and of the container.
pub const COMPONENT: &str = keys::COMPONENT_TIFLASH;
/// Where the config files are mounted (tidb-operator v2's path).
pub const CONFIG_DIR: &str = "/etc/tiflash";
/// Key of the server config file in the ConfigMap.
pub const CONFIG_FILE: &str = "config.toml";
/// Key of the proxy config file in the ConfigMap.
pub const PROXY_CONFIG_FILE: &str = "proxy.toml";
/// Default image when the template names none.
pub const DEFAULT_IMAGE: &str = "pingcap/tiflash";
/// Default image of the log tailers.
pub const DEFAULT_LOG_TAILER_IMAGE: &str = "busybox:1.37.0";
/// Name of the sidecar that prints the server log.
pub const SERVER_LOG_CONTAINER: &str = "ti-serverlog";
/// Name of the sidecar that prints the error log.
pub const ERROR_LOG_CONTAINER: &str = "ti-errorlog";
/// Where the cluster TLS Secret is mounted (tidb-operator v2's path).
pub const CLUSTER_TLS_DIR: &str = "/var/lib/tiflash-tls";
/// Termination grace period of the Pod.
pub const POD_TERMINATION_GRACE_SECONDS: i64 = 30;
/// Proxy log level when the user's proxy config sets none (the reference's default).
const DEFAULT_PROXY_LOG_LEVEL: &str = "info";

/// Keys of the server config the operator writes, refused in the user's config (the
/// reference's list; `storage.main.dir`, `storage.raft.dir` and `flash.proxy.data-dir` are
/// refused only when they differ from what the operator writes).
pub const MANAGED_KEYS: [&str; 14] = [
    "security.ca_path",
    "security.cert_path",
    "security.key_path",
    "tmp_path",
    "flash.service_addr",
    "flash.proxy.config",
    "flash.proxy.addr",
    "flash.proxy.advertise-addr",
    "flash.proxy.advertise-status-addr",
    "raft.pd_addr",
    "logger.log",
    "logger.errorlog",
    "status.metrics_port",
    "flash.proxy.status-addr",
];

/// Keys of the proxy config the operator writes, refused in the user's proxy config.
pub const MANAGED_PROXY_KEYS: [&str; 4] = [
    "security.ca-path",
    "security.cert-path",
    "security.key-path",
    "server.status-addr",
];

/// Headless Service giving each store a stable DNS name.
pub fn peer_service_name(group: &str) -> String {
    format!("{group}-tiflash-peer")
}

fn port(value: Option<&operator_api::core::Port>, default: i32) -> i32 {
    value.map_or(default, |p| p.port)
}

/// Flash (coprocessor) port of a template.
pub fn flash_port(spec: &TiFlashTemplateSpec) -> i32 {
    port(spec.server.ports.flash.as_ref(), TIFLASH_DEFAULT_PORT_FLASH)
}

/// Proxy (Raft) port of a template: the store's address in PD.
pub fn proxy_port(spec: &TiFlashTemplateSpec) -> i32 {
    port(spec.server.ports.proxy.as_ref(), TIFLASH_DEFAULT_PORT_PROXY)
}

/// Metrics port of a template.
pub fn metrics_port(spec: &TiFlashTemplateSpec) -> i32 {
    port(
        spec.server.ports.metrics.as_ref(),
        TIFLASH_DEFAULT_PORT_METRICS,
    )
}

/// Proxy status port of a template.
pub fn proxy_status_port(spec: &TiFlashTemplateSpec) -> i32 {
    port(
        spec.server.ports.proxy_status.as_ref(),
        TIFLASH_DEFAULT_PORT_PROXY_STATUS,
    )
}

fn named_ports(spec: &TiFlashTemplateSpec) -> [(&'static str, i32); 4] {
    [
        (TIFLASH_PORT_NAME_FLASH, flash_port(spec)),
        (TIFLASH_PORT_NAME_METRICS, metrics_port(spec)),
        (TIFLASH_PORT_NAME_PROXY, proxy_port(spec)),
        (TIFLASH_PORT_NAME_PROXY_STATUS, proxy_status_port(spec)),
    ]
}

/// A TiFlash instance of a group at the group's current template.
pub fn instance(
    group: &TiFlashGroup,
    name: &str,
    topology: Topology,
    revision: &str,
) -> Result<TiFlash, BuildError> {
    Ok(TiFlash {
        metadata: build::instance_meta(group, name, revision)?,
        spec: TiFlashSpec {
            cluster: group.spec.cluster.clone(),
            features: group.spec.features.clone(),
            topology,
            subdomain: build::new_instance_subdomain(
                &group.spec.features,
                &group.spec.cluster.name,
                peer_service_name(&group.name_any()),
            ),
            offline: None,
            replicas: None,
            template: group.spec.template.spec.clone(),
        },
        status: None,
    })
}

/// A TiFlash instance of a group that runs what `source` runs (its template, features and
/// revision): a new store added while the group's version change waits for PD.
pub fn instance_like(
    group: &TiFlashGroup,
    name: &str,
    topology: Topology,
    source: &TiFlash,
) -> Result<TiFlash, BuildError> {
    let revision = source
        .labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default();
    let mut tiflash = instance(group, name, topology, &revision)?;
    tiflash.spec.template = source.spec.template.clone();
    tiflash.spec.features = source.spec.features.clone();
    Ok(tiflash)
}

/// The group's headless peer Service: every store's DNS name is
/// `<instance>.<group>-tiflash-peer.<namespace>`.
pub fn peer_service(group: &TiFlashGroup) -> Result<Service, BuildError> {
    let ports = named_ports(&group.spec.template.spec)
        .iter()
        .map(|(name, port)| build::named_port(name, *port))
        .collect();
    build::peer_service(group, peer_service_name(&group.name_any()), ports)
}

/// DNS name of an instance through its peer Service, in the form `dns` asks for.
pub fn host(tiflash: &TiFlash, dns: &Dns) -> String {
    dns.instance_host(tiflash)
}

/// The in-cluster URL of the instance's proxy status port, where TiFlash answers
/// `/tiflash/store-status` (the port the reference asks too).
pub fn status_url(tiflash: &TiFlash, dns: &Dns) -> String {
    format!(
        "{}://{}:{}",
        dns.scheme(),
        host(tiflash, dns),
        proxy_status_port(&tiflash.spec.template)
    )
}

/// The address the store advertises to PD, `host:proxy-port`; the instance's store is found in
/// PD by it the first time.
pub fn store_address(tiflash: &TiFlash, dns: &Dns) -> String {
    format!(
        "{}:{}",
        host(tiflash, dns),
        proxy_port(&tiflash.spec.template)
    )
}

/// Where the `data` volume is mounted.
pub fn data_mount_path(spec: &TiFlashTemplateSpec) -> String {
    build::mount_path_of(
        &spec.common,
        TIFLASH_VOLUME_MOUNT_TYPE_DATA,
        TIFLASH_DATA_DEFAULT_PATH,
    )
}

/// The server log file, under the data directory.
pub fn server_log(data_dir: &str) -> String {
    format!("{data_dir}/logs/server.log")
}

/// The error log file, under the data directory.
pub fn error_log(data_dir: &str) -> String {
    format!("{data_dir}/logs/error.log")
}

/// Refuses a user config that sets any of `managed`, or sets a directory key to another value
/// than the operator's: the message names each key.
fn refuse(
    file: &str,
    user: &str,
    managed: &[&str],
    fixed: &[(&str, toml::Value)],
) -> Result<(), BuildError> {
    if user.trim().is_empty() {
        return Ok(());
    }
    let table: toml::Table = user
        .parse()
        .map_err(|e: toml::de::Error| BuildError::InvalidConfig(e.message().to_string()))?;
    let at = |path: &str| {
        let mut parts = path.split('.');
        let mut node = parts.next().and_then(|first| table.get(first));
        for part in parts {
            node = node.and_then(|n| n.get(part));
        }
        node.cloned()
    };
    let mut set: Vec<&str> = managed
        .iter()
        .copied()
        .filter(|k| at(k).is_some())
        .collect();
    set.extend(
        fixed
            .iter()
            .filter(|(k, v)| at(k).is_some_and(|found| found != *v))
            .map(|(k, _)| *k),
    );
    if set.is_empty() {
        return Ok(());
    }
    Err(BuildError::ManagedKeys(format!(
        "{file} sets {}, which the operator manages (addresses, ports, directories, PD, certificate paths); remove them",
        set.join(", ")
    )))
}

/// The server config file: the user's TOML with the keys the operator owns set over it; any of
/// them in the user's TOML is refused. With the cluster TLS Secret among `mounts`, the
/// certificate paths are set.
pub fn config(
    tiflash: &TiFlash,
    dns: &Dns,
    pd_url: &str,
    mounts: &[SecretMount],
) -> Result<String, BuildError> {
    let spec = &tiflash.spec.template;
    let data = data_mount_path(spec);
    let dirs: [(&str, toml::Value); 3] = [
        (
            "storage.main.dir",
            toml::Value::Array(vec![format!("{data}/db").into()]),
        ),
        (
            "storage.raft.dir",
            toml::Value::Array(vec![format!("{data}/kvstore").into()]),
        ),
        ("flash.proxy.data-dir", format!("{data}/proxy").into()),
    ];
    refuse(CONFIG_FILE, &spec.common.config, &MANAGED_KEYS, &dirs)?;
    let host = host(tiflash, dns);
    let mut owned: Vec<(&str, toml::Value)> = vec![
        ("tmp_path", format!("{data}/tmp").into()),
        (
            "flash.service_addr",
            format!("{host}:{}", flash_port(spec)).into(),
        ),
        (
            "flash.proxy.config",
            format!("{CONFIG_DIR}/{PROXY_CONFIG_FILE}").into(),
        ),
        (
            "flash.proxy.addr",
            format!("0.0.0.0:{}", proxy_port(spec)).into(),
        ),
        (
            "flash.proxy.advertise-addr",
            format!("{host}:{}", proxy_port(spec)).into(),
        ),
        (
            "flash.proxy.advertise-status-addr",
            format!("{host}:{}", proxy_status_port(spec)).into(),
        ),
        ("raft.pd_addr", pd_url.to_string().into()),
        ("logger.log", server_log(&data).into()),
        ("logger.errorlog", error_log(&data).into()),
        ("status.metrics_port", i64::from(metrics_port(spec)).into()),
    ];
    owned.extend(dirs);
    if let Some(tls) = mounts.iter().find(|m| m.volume == tls::CLUSTER_TLS_VOLUME) {
        for (key, file) in [
            "security.ca_path",
            "security.cert_path",
            "security.key_path",
        ]
        .iter()
        .zip([tls::CA_KEY, tls::CERT_KEY, tls::KEY_KEY])
        {
            owned.push((key, tls.path(file).into()));
        }
    }
    build::merge_config(&spec.common.config, &owned)
}

/// The proxy config file: the user's proxy TOML with the status address (and, with the cluster
/// TLS Secret among `mounts`, the certificate paths) set over it; any of them in the user's
/// TOML is refused. The log level is `info` unless the user sets one.
pub fn proxy_config(tiflash: &TiFlash, mounts: &[SecretMount]) -> Result<String, BuildError> {
    let spec = &tiflash.spec.template;
    refuse(
        PROXY_CONFIG_FILE,
        &spec.proxy_config,
        &MANAGED_PROXY_KEYS,
        &[],
    )?;
    let mut owned: Vec<(&str, toml::Value)> = vec![(
        "server.status-addr",
        format!("0.0.0.0:{}", proxy_status_port(spec)).into(),
    )];
    let has_level = spec
        .proxy_config
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("log-level"));
    if !has_level {
        owned.push(("log-level", DEFAULT_PROXY_LOG_LEVEL.into()));
    }
    if let Some(tls) = mounts.iter().find(|m| m.volume == tls::CLUSTER_TLS_VOLUME) {
        for (key, file) in
            MANAGED_PROXY_KEYS[..3]
                .iter()
                .zip([tls::CA_KEY, tls::CERT_KEY, tls::KEY_KEY])
        {
            owned.push((key, tls.path(file).into()));
        }
    }
    build::merge_config(&spec.proxy_config, &owned)
}

/// The ConfigMap holding both config files.
pub fn config_map(
    tiflash: &TiFlash,
    config: String,
    proxy_config: String,
) -> Result<ConfigMap, BuildError> {
    let mut map = build::config_map_of(tiflash, CONFIG_FILE, config)?;
    map.data
        .get_or_insert_with(BTreeMap::new)
        .insert(PROXY_CONFIG_FILE.to_string(), proxy_config);
    Ok(map)
}

/// The instance's PVCs (no owner reference: they outlive the Pod and go only after the store is
/// removed from PD).
pub fn pvcs(tiflash: &TiFlash) -> Result<Vec<PersistentVolumeClaim>, BuildError> {
    build::pvcs_of(tiflash)
}

/// The image to run: the template's image (tagged with the version unless it has a tag).
pub fn image(spec: &TiFlashTemplateSpec) -> String {
    build::image_of(&spec.common, DEFAULT_IMAGE)
}

/// The hash of both config files as the user wrote them: a change of either restarts the Pod
/// (unless config changes are hot-reloaded).
pub fn config_hash(tiflash: &TiFlash) -> String {
    let spec = &tiflash.spec.template;
    operator_runtime::revision::hash_of(&(&spec.common.config, &spec.proxy_config))
}

/// A sidecar printing `file` (on the data volume, mounted as `mount`) to its stdout; a native
/// sidecar, started before TiFlash and running beside it.
fn log_tailer(tiflash: &TiFlash, name: &str, file: &str, mount: &VolumeMount) -> Container {
    let tailer = tiflash.spec.template.log_tailer.as_ref();
    Container {
        name: name.into(),
        image: Some(
            tailer
                .and_then(|t| t.image.clone())
                .unwrap_or_else(|| DEFAULT_LOG_TAILER_IMAGE.into()),
        ),
        restart_policy: Some("Always".into()),
        command: Some(build::log_tailer_command(file, &tiflash.spec.features)),
        volume_mounts: Some(vec![mount.clone()]),
        resources: tailer.and_then(|t| build::resources(&t.resources)),
        ..Container::default()
    }
}

/// The Pod of an instance: TiFlash (`/tiflash/tiflash server --config-file ...`) with its four
/// ports, and two log tailers on the data volume. Its labels carry the hash of the Pod as built
/// and of both config files, so a change shows as a different hash.
pub fn pod(tiflash: &TiFlash) -> Result<Pod, BuildError> {
    let spec = &tiflash.spec.template;
    let default_paths = [(TIFLASH_VOLUME_MOUNT_TYPE_DATA, TIFLASH_DATA_DEFAULT_PATH)];
    let (volumes, mounts) = build::volumes_of(tiflash, CONFIG_DIR, &default_paths)?;
    let data_dir = data_mount_path(spec);
    let data_mount = spec
        .common
        .volumes
        .iter()
        .flat_map(|v| v.mounts.iter().map(move |m| (v, m)))
        .find(|(_, m)| m.type_ == TIFLASH_VOLUME_MOUNT_TYPE_DATA)
        .map(|(v, m)| build::volume_mount(v, m, &default_paths))
        .transpose()?
        .ok_or_else(|| BuildError::Missing("a volume with a mount of type data".into()))?;
    let mut container = build::server_container(
        COMPONENT,
        image(spec),
        "/tiflash/tiflash",
        &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        &named_ports(spec),
        &spec.common.resources,
        mounts,
    );
    container.command = Some(vec![
        "/tiflash/tiflash".into(),
        "server".into(),
        "--config-file".into(),
        format!("{CONFIG_DIR}/{CONFIG_FILE}"),
    ]);
    // With `UseTiFlashReadyAPI`, the proxy's `/tiflash/readyz` decides, as in tidb-operator v2.
    container.readiness_probe = Some(if ready::tiflash(tiflash) {
        build::ready_api_probe(
            proxy_status_port(spec),
            ready::TIFLASH_PATH,
            CLUSTER_TLS_DIR,
        )
    } else {
        build::tcp_readiness(TIFLASH_PORT_NAME_FLASH)
    });
    let init = vec![
        log_tailer(
            tiflash,
            SERVER_LOG_CONTAINER,
            &server_log(&data_dir),
            &data_mount,
        ),
        log_tailer(
            tiflash,
            ERROR_LOG_CONTAINER,
            &error_log(&data_dir),
            &data_mount,
        ),
    ];
    let spec = PodSpec {
        init_containers: Some(init),
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(POD_TERMINATION_GRACE_SECONDS),
        ..PodSpec::default()
    };
    build::pod_of(tiflash, spec, config_hash(tiflash))
}

pub use operator_runtime::build::pod_is_current;

#[cfg(test)]
mod tests {
    use testkit::builders;

    use super::*;

    fn group(template: serde_json::Value) -> TiFlashGroup {
        builders::group_of_template("tiflash", template).unwrap()
    }

    fn default_group() -> TiFlashGroup {
        group(serde_json::json!({
            "version": "v8.5.2",
            "config": "mark_cache_size = 1073741824\n",
            "proxyConfig": "[raftstore]\napply-pool-size = 4\n",
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "100Gi"}]
        }))
    }

    fn instance_of(group: &TiFlashGroup) -> TiFlash {
        let zone: Topology = [("topology.kubernetes.io/zone".to_string(), "a".to_string())].into();
        let mut tiflash = instance(group, "tiflash-abcde", zone, "tiflash-rev1").unwrap();
        tiflash.metadata.uid = Some("uid-2".into());
        tiflash
    }

    #[test]
    fn an_instance_carries_the_template_labels_owner_and_finalizer() {
        let tiflash = instance_of(&default_group());
        assert_eq!(tiflash.spec.subdomain, "tiflash-tiflash-peer");
        assert_eq!(tiflash.labels()[keys::LABEL_COMPONENT], "tiflash");
        assert_eq!(tiflash.labels()[keys::LABEL_GROUP], "tiflash");
        assert_eq!(tiflash.finalizers(), [keys::FINALIZER.to_string()]);
        assert_eq!(
            tiflash.spec.template.proxy_config,
            "[raftstore]\napply-pool-size = 4\n"
        );
    }

    #[test]
    fn both_config_files_have_the_operator_keys_over_the_users() {
        let tiflash = instance_of(&default_group());
        let text = config(&tiflash, &Dns::default(), "http://pd-pd.db:2379", &[]).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let host = "tiflash-abcde.tiflash-tiflash-peer.db";
        let proxy = &table["flash"]["proxy"];
        assert_eq!(
            proxy["advertise-addr"].as_str(),
            Some(format!("{host}:20170").as_str())
        );
        assert_eq!(proxy["addr"].as_str(), Some("0.0.0.0:20170"));
        assert_eq!(
            proxy["advertise-status-addr"].as_str(),
            Some(format!("{host}:20292").as_str())
        );
        assert_eq!(proxy["config"].as_str(), Some("/etc/tiflash/proxy.toml"));
        assert_eq!(proxy["data-dir"].as_str(), Some("/var/lib/tiflash/proxy"));
        assert_eq!(
            table["flash"]["service_addr"].as_str(),
            Some(format!("{host}:3930").as_str())
        );
        assert_eq!(
            table["raft"]["pd_addr"].as_str(),
            Some("http://pd-pd.db:2379")
        );
        assert_eq!(table["status"]["metrics_port"].as_integer(), Some(8234));
        assert_eq!(
            table["logger"]["log"].as_str(),
            Some("/var/lib/tiflash/logs/server.log")
        );
        assert_eq!(table["mark_cache_size"].as_integer(), Some(1_073_741_824));
        assert_eq!(
            store_address(&tiflash, &Dns::default()),
            format!("{host}:20170")
        );
        let proxy: toml::Table = proxy_config(&tiflash, &[]).unwrap().parse().unwrap();
        assert_eq!(
            proxy["server"]["status-addr"].as_str(),
            Some("0.0.0.0:20292")
        );
        assert_eq!(proxy["log-level"].as_str(), Some("info"));
        assert_eq!(proxy["raftstore"]["apply-pool-size"].as_integer(), Some(4));
        let map = config_map(&tiflash, text, "x".into()).unwrap();
        let data = map.data.unwrap();
        assert!(data.contains_key(CONFIG_FILE) && data.contains_key(PROXY_CONFIG_FILE));
    }

    #[test]
    fn managed_keys_in_either_file_are_refused_by_name() {
        let mut tiflash = instance_of(&default_group());
        tiflash.spec.template.common.config =
            "[flash.proxy]\nadvertise-addr = \"x:1\"\n[raft]\npd_addr = \"y\"\n".into();
        let err = config(&tiflash, &Dns::default(), "http://pd", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("flash.proxy.advertise-addr"), "{text}");
        assert!(text.contains("raft.pd_addr"), "{text}");
        assert!(matches!(err, BuildError::ManagedKeys(_)));
        // A directory the operator would write anyway is accepted; another one is not.
        tiflash.spec.template.common.config =
            "[storage.main]\ndir = [\"/var/lib/tiflash/db\"]\n".into();
        assert!(config(&tiflash, &Dns::default(), "http://pd", &[]).is_ok());
        tiflash.spec.template.common.config = "[storage.main]\ndir = [\"/elsewhere\"]\n".into();
        assert!(config(&tiflash, &Dns::default(), "http://pd", &[]).is_err());
        tiflash.spec.template.proxy_config = "[server]\nstatus-addr = \"0.0.0.0:1\"\n".into();
        let err = proxy_config(&tiflash, &[]).unwrap_err();
        assert!(err.to_string().contains("server.status-addr"), "{err}");
    }

    #[test]
    fn the_pod_runs_tiflash_with_its_ports_and_two_log_tailers() {
        let tiflash = instance_of(&default_group());
        let pod = pod(&tiflash).unwrap();
        let facts = builders::pod_facts(&pod);
        assert_eq!(facts.image, "pingcap/tiflash:v8.5.2");
        assert_eq!(
            facts.command,
            [
                "/tiflash/tiflash",
                "server",
                "--config-file",
                "/etc/tiflash/config.toml"
            ]
        );
        let spec = pod.spec.as_ref().unwrap();
        let ports: Vec<(String, i32)> = spec.containers[0]
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                ("tiflash".to_string(), 3930),
                ("metrics".to_string(), 8234),
                ("proxy".to_string(), 20170),
                ("proxy-metrics".to_string(), 20292)
            ]
        );
        let init = spec.init_containers.as_ref().unwrap();
        let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [SERVER_LOG_CONTAINER, ERROR_LOG_CONTAINER]);
        assert!(init[0].command.as_ref().unwrap()[2].contains("/var/lib/tiflash/logs/server.log"));
        assert_eq!(init[0].image.as_deref(), Some(DEFAULT_LOG_TAILER_IMAGE));
        // A change of the proxy config alone makes the Pod outdated.
        let mut changed = tiflash.clone();
        changed.spec.template.proxy_config = "log-level = \"debug\"\n".into();
        assert!(!build::pod_is_current(&pod, &self::pod(&changed).unwrap()));
        assert!(build::pod_is_current(&pod, &self::pod(&tiflash).unwrap()));
    }
}
