//! Pure builders of everything TiCDC needs: instances from a group, the group's headless
//! Service, and an instance's config file, ConfigMap, PVCs and Pod (`/cdc server`). No client
//! here; every function is tested on plain values.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EmptyDirVolumeSource, HTTPGetAction, PersistentVolumeClaim, Pod, PodSpec,
    Probe, Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_api::core::{
    Feature, TICDC_DEFAULT_PORT, TICDC_PORT_NAME, TiCDC, TiCDCGroup, TiCDCSpec, TiCDCTemplateSpec,
    Topology,
};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::dns::Dns;
use operator_runtime::handover;
use operator_runtime::tls::{self, SecretMount};

/// Name of the component label value and of the container.
pub const COMPONENT: &str = keys::COMPONENT_TICDC;
/// Where the config file is mounted (tidb-operator v2's path).
pub const CONFIG_DIR: &str = "/etc/ticdc";
/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE: &str = "config.toml";
/// Default image when the template names none.
pub const DEFAULT_IMAGE: &str = "pingcap/ticdc";
/// Where the cluster TLS Secret is mounted (tidb-operator v2's path).
pub const CLUSTER_TLS_DIR: &str = "/var/lib/ticdc-tls";
/// TiCDC's data directory (its sort files), where the reference's examples mount a volume.
pub const DATA_DIR: &str = "/var/lib/ticdc";
/// How long the preStop hand-over waits for the capture's ownership and tables to move.
const HANDOVER_TIMEOUT_SECONDS: i64 = 60;
/// Seconds TiCDC is given to stop: the hand-over's wait, then the reference's 30 s.
pub const GRACE_SECONDS: i64 = HANDOVER_TIMEOUT_SECONDS + 30;

/// Keys the operator writes into the config file, refused in the user's config (the
/// reference's list, and the data directory the command line sets).
pub const MANAGED_KEYS: [&str; 6] = [
    "addr",
    "advertise-addr",
    "data-dir",
    "security.ca-path",
    "security.cert-path",
    "security.key-path",
];

/// The sidecar keeping labelled Secrets as files (`TiCDCDynamicSecretSyncer`; tidb-operator v2's
/// container name).
pub const SECRET_SYNCER: &str = build::SECRET_SYNCER_CONTAINER;
/// The volume the sidecar writes and TiCDC reads (tidb-operator v2's name and path).
pub const SECRET_SYNCER_VOLUME: &str = "ti-kube-resource";
/// Where that volume is mounted; the Secrets are under `secrets/<name>/<key>`.
pub const SECRET_SYNCER_DIR: &str = "/var/lib/kube-resource";
/// The sidecar's health port (its startup probe waits for the first sync).
const SECRET_SYNCER_HEALTH_PORT: i32 = 8081;

/// Headless Service giving each server a stable DNS name.
pub fn peer_service_name(group: &str) -> String {
    format!("{group}-ticdc-peer")
}

/// The port of a template.
pub fn port(spec: &TiCDCTemplateSpec) -> i32 {
    spec.server
        .ports
        .port
        .as_ref()
        .map_or(TICDC_DEFAULT_PORT, |p| p.port)
}

/// The revision label of an instance.
pub fn revision_of(ticdc: &TiCDC) -> String {
    ticdc
        .labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default()
}

/// A TiCDC instance of a group at the group's template, with revision `revision`.
pub fn instance(
    group: &TiCDCGroup,
    name: &str,
    topology: Topology,
    revision: &str,
) -> Result<TiCDC, BuildError> {
    Ok(TiCDC {
        metadata: build::instance_meta(group, name, revision)?,
        spec: TiCDCSpec {
            cluster: group.spec.cluster.clone(),
            features: group.spec.features.clone(),
            topology,
            subdomain: build::new_instance_subdomain(
                &group.spec.features,
                &group.spec.cluster.name,
                peer_service_name(&group.name_any()),
            ),
            replicas: None,
            template: group.spec.template.spec.clone(),
        },
        status: None,
    })
}

/// The group's headless Service, as the reference has it (no client Service: TiCDC is reached
/// per server).
pub fn peer_service(group: &TiCDCGroup) -> Result<Service, BuildError> {
    let ports = vec![build::named_port(
        TICDC_PORT_NAME,
        port(&group.spec.template.spec),
    )];
    build::peer_service(group, peer_service_name(&group.name_any()), ports)
}

/// The address a server advertises: `host:port` through the peer Service.
pub fn advertise_address(ticdc: &TiCDC, dns: &Dns) -> String {
    format!(
        "{}:{}",
        dns.instance_host(ticdc),
        port(&ticdc.spec.template)
    )
}

/// The in-cluster URL of a server's API.
pub fn api_url(ticdc: &TiCDC, dns: &Dns) -> String {
    format!("{}://{}", dns.scheme(), advertise_address(ticdc, dns))
}

/// TiCDC's `--pd`: the PD URLs, comma separated, from PD's `host:port` list `pd_path` (see
/// [`crate::build::pd_path`]), with the cluster's scheme.
pub fn pd_urls(pd_path: &str, dns: &Dns) -> String {
    pd_path
        .split(',')
        .map(|host| format!("{}://{host}", dns.scheme()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The config file: the user's TOML with the keys the operator owns set over it (the listen
/// and advertised address, the data directory, and with cluster TLS the certificate paths of
/// the mounted Secret); those keys are refused in the user's TOML.
pub fn config(ticdc: &TiCDC, dns: &Dns, mounts: &[SecretMount]) -> Result<String, BuildError> {
    let spec = &ticdc.spec.template;
    build::refuse_managed(&spec.common.config, &MANAGED_KEYS)?;
    let mut owned: Vec<(&str, toml::Value)> = vec![
        ("addr", format!("[::]:{}", port(spec)).into()),
        ("advertise-addr", advertise_address(ticdc, dns).into()),
        ("data-dir", DATA_DIR.into()),
    ];
    if let Some(mount) = mounts
        .iter()
        .find(|m| m.volume.as_str() == tls::CLUSTER_TLS_VOLUME)
    {
        if mount.has_ca {
            owned.push(("security.ca-path", mount.path(tls::CA_KEY).into()));
        }
        owned.push(("security.cert-path", mount.path(tls::CERT_KEY).into()));
        owned.push(("security.key-path", mount.path(tls::KEY_KEY).into()));
    }
    build::merge_config(&spec.common.config, &owned)
}

/// The ConfigMap holding the config file.
pub fn config_map(ticdc: &TiCDC, config: String) -> Result<ConfigMap, BuildError> {
    build::config_map_of(ticdc, CONFIG_FILE, config)
}

/// The instance's PVCs: one per declared volume, none otherwise.
pub fn pvcs(ticdc: &TiCDC) -> Result<Vec<PersistentVolumeClaim>, BuildError> {
    build::pvcs_of(ticdc)
}

/// The Pod: `/cdc server --pd=<PD URLs> --config=<file>` on its one port, ready when the port
/// accepts connections. Its labels carry the hash of the Pod as built and of the user's config,
/// so a change shows as a different hash.
pub fn pod(ticdc: &TiCDC, pd_urls: &str) -> Result<Pod, BuildError> {
    let spec = &ticdc.spec.template;
    let (volumes, mounts) = build::volumes_of(ticdc, CONFIG_DIR, &[])?;
    let config = format!("{CONFIG_DIR}/{CONFIG_FILE}");
    let mut container = build::server_container(
        COMPONENT,
        build::image_of(&spec.common, DEFAULT_IMAGE),
        "/cdc",
        &config,
        &[(TICDC_PORT_NAME, port(spec))],
        &spec.common.resources,
        mounts,
    );
    container.command = Some(vec![
        "/cdc".into(),
        "server".into(),
        format!("--pd={pd_urls}"),
        format!("--config={config}"),
    ]);
    container.readiness_probe = Some(build::tcp_readiness(TICDC_PORT_NAME));
    let own_port = port(spec);
    let mut pod_spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(GRACE_SECONDS),
        ..PodSpec::default()
    };
    // Whoever deletes the Pod (the operator drains first, a hand deletion does not), the capture
    // resigns ownership and hands its tables to the others before the kubelet stops TiCDC.
    handover::add(
        &mut pod_spec,
        COMPONENT,
        operator_runtime::build_info::operator_image(),
        vec![
            "ticdc".into(),
            format!("--ticdc=http://127.0.0.1:{own_port}"),
            format!("--tls-dir={CLUSTER_TLS_DIR}"),
            format!("--timeout-seconds={HANDOVER_TIMEOUT_SECONDS}"),
        ],
    );
    if ticdc
        .spec
        .features
        .contains(&Feature::TiCDCDynamicSecretSyncer)
    {
        add_secret_syncer(&mut pod_spec, ticdc);
    }
    build::pod_of(ticdc, pod_spec, build::config_hash_of(ticdc))
}

/// The labels a Secret carries to be kept in the Pods: the operator's, of TiCDC of this
/// Cluster, and the template's `syncer.labels`, as `key=value` sorted and comma separated.
pub fn secret_syncer_labels(ticdc: &TiCDC) -> String {
    let mut labels = vec![
        format!("{}={}", keys::LABEL_MANAGED_BY, keys::MANAGED_BY),
        format!("{}={COMPONENT}", keys::LABEL_COMPONENT),
        format!("{}={}", keys::LABEL_CLUSTER, ticdc.spec.cluster.name),
    ];
    if let Some(syncer) = &ticdc.spec.template.syncer {
        labels.extend(syncer.labels.iter().map(|(k, v)| format!("{k}={v}")));
    }
    labels.sort();
    labels.join(",")
}

/// The secret syncer as a native sidecar (an init container that keeps running), started before
/// TiCDC and Ready once it has written the Secrets, with the volume both share. Its image is
/// `syncer.image`, else this operator's (its `/tidb-secret-syncer`); the image does not count
/// in the Pod's hash, so an operator upgrade restarts no TiCDC Pod.
fn add_secret_syncer(spec: &mut PodSpec, ticdc: &TiCDC) {
    let image = ticdc
        .spec
        .template
        .syncer
        .as_ref()
        .and_then(|s| s.image.clone())
        .unwrap_or_else(|| operator_runtime::build_info::operator_image().to_string());
    let mount = VolumeMount {
        name: SECRET_SYNCER_VOLUME.into(),
        mount_path: SECRET_SYNCER_DIR.into(),
        ..VolumeMount::default()
    };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: SECRET_SYNCER_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    if let Some(server) = spec.containers.iter_mut().find(|c| c.name == COMPONENT) {
        server
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount.clone());
    }
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .push(Container {
            name: SECRET_SYNCER.into(),
            image: Some(image),
            restart_policy: Some("Always".into()),
            command: Some(vec![
                "/tidb-secret-syncer".into(),
                "-d".into(),
                SECRET_SYNCER_DIR.into(),
                "-n".into(),
                ticdc.namespace().unwrap_or_default(),
                "-l".into(),
                secret_syncer_labels(ticdc),
            ]),
            volume_mounts: Some(vec![mount]),
            startup_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/healthz".into()),
                    port: IntOrString::Int(SECRET_SYNCER_HEALTH_PORT),
                    ..HTTPGetAction::default()
                }),
                period_seconds: Some(2),
                failure_threshold: Some(60),
                ..Probe::default()
            }),
            ..Container::default()
        });
}

pub use operator_runtime::build::pod_is_current;

#[cfg(test)]
mod tests {
    use testkit::builders;

    use super::*;

    fn group() -> TiCDCGroup {
        builders::group_of_template(
            "cdc",
            serde_json::json!({"version": "v8.5.2", "config": "[sorter]\nmax-memory-percentage = 30\n"}),
        )
        .unwrap()
    }

    fn ticdc() -> TiCDC {
        let mut t = instance(&group(), "cdc-abcde", Topology::default(), "r1").unwrap();
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("u".into());
        t
    }

    #[test]
    fn under_the_secret_syncer_gate_a_sidecar_keeps_the_labelled_secrets_in_the_pod() {
        let mut t = ticdc();
        let plain = pod(&t, "http://db-pd.ns:2379").unwrap();
        assert!(
            plain
                .spec
                .unwrap()
                .init_containers
                .unwrap_or_default()
                .iter()
                .all(|c| c.name != SECRET_SYNCER)
        );
        t.spec.features = vec![Feature::TiCDCDynamicSecretSyncer];
        t.spec.template.syncer =
            Some(serde_json::from_value(serde_json::json!({"labels": {"sink": "kafka"}})).unwrap());
        let spec = pod(&t, "http://db-pd.ns:2379").unwrap().spec.unwrap();
        let sidecar = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == SECRET_SYNCER)
            .unwrap();
        assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            sidecar.command.as_deref().unwrap(),
            [
                "/tidb-secret-syncer",
                "-d",
                "/var/lib/kube-resource",
                "-n",
                "ns",
                "-l",
                "pingcap.com/cluster=basic,pingcap.com/component=ticdc,pingcap.com/managed-by=tidb-operator,sink=kafka"
            ]
        );
        let server = spec
            .containers
            .iter()
            .find(|c| c.name == COMPONENT)
            .unwrap();
        assert!(
            server
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == SECRET_SYNCER_VOLUME && m.mount_path == SECRET_SYNCER_DIR)
        );
    }

    #[test]
    fn the_pod_runs_cdc_server_with_pd_and_its_config_on_its_port() {
        let t = ticdc();
        let pod = pod(&t, "http://db-pd.ns:2379").unwrap();
        let spec = pod.spec.unwrap();
        let main = &spec.containers[0];
        assert_eq!(main.name, "ticdc");
        assert_eq!(main.image.as_deref(), Some("pingcap/ticdc:v8.5.2"));
        assert_eq!(
            main.command.clone().unwrap(),
            [
                "/cdc",
                "server",
                "--pd=http://db-pd.ns:2379",
                "--config=/etc/ticdc/config.toml"
            ]
        );
        let ports = main.ports.clone().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].container_port),
            (Some("ticdc"), 8300)
        );
        assert_eq!(spec.subdomain.as_deref(), Some("cdc-ticdc-peer"));
        // The hand-over hook asks the server itself, within the grace period.
        assert_eq!(
            operator_runtime::handover::hook_of(&spec, "ticdc").unwrap(),
            [
                "/var/lib/tidb-handover/tidb-handover",
                "ticdc",
                "--ticdc=http://127.0.0.1:8300",
                "--tls-dir=/var/lib/ticdc-tls",
                "--timeout-seconds=60"
            ]
        );
        assert_eq!(spec.termination_grace_period_seconds, Some(90));
    }

    #[test]
    fn the_config_sets_the_addresses_and_data_dir_and_refuses_them_from_the_user() {
        let t = ticdc();
        let dns = Dns::default();
        let written = config(&t, &dns, &[]).unwrap();
        let table: toml::Table = written.parse().unwrap();
        assert_eq!(table["addr"].as_str(), Some("[::]:8300"));
        assert_eq!(
            table["advertise-addr"].as_str(),
            Some("cdc-abcde.cdc-ticdc-peer.ns:8300")
        );
        assert_eq!(table["data-dir"].as_str(), Some(DATA_DIR));
        assert_eq!(
            table["sorter"]["max-memory-percentage"].as_integer(),
            Some(30)
        );
        assert!(table.get("security").is_none());

        let mut bad = t.clone();
        bad.spec.template.common.config = "advertise-addr = \"x:1\"\n".into();
        let error = config(&bad, &dns, &[]).unwrap_err().to_string();
        assert!(error.contains("advertise-addr"), "{error}");
    }

    #[test]
    fn with_cluster_tls_the_config_names_the_mounted_certificate_and_urls_are_https() {
        let t = ticdc();
        let mount = SecretMount::cluster("cdc", COMPONENT, CLUSTER_TLS_DIR, None);
        let dns = Dns::default().with_tls(true);
        let table: toml::Table = config(&t, &dns, &[mount]).unwrap().parse().unwrap();
        assert_eq!(
            table["security"]["cert-path"].as_str(),
            Some("/var/lib/ticdc-tls/tls.crt")
        );
        assert_eq!(
            api_url(&t, &dns),
            "https://cdc-abcde.cdc-ticdc-peer.ns:8300"
        );
        assert_eq!(
            pd_urls("a:2379,b:2379", &dns),
            "https://a:2379,https://b:2379"
        );
    }

    #[test]
    fn the_headless_service_publishes_every_server() {
        let service = peer_service(&group()).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("cdc-ticdc-peer"));
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports.unwrap()[0].port, 8300);
    }
}
