//! Pure builders of everything TiKV needs: instances from a group, the group's peer Service, and
//! an instance's ConfigMap, PVCs and Pod. No client here; every function is tested on plain
//! values.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, PodSpec, Service,
};
use kube::ResourceExt;
use operator_api::core::{
    TIKV_DATA_DEFAULT_PATH, TIKV_DEFAULT_PORT_CLIENT, TIKV_DEFAULT_PORT_STATUS,
    TIKV_PORT_NAME_CLIENT, TIKV_PORT_NAME_STATUS, TIKV_VOLUME_MOUNT_TYPE_DATA, TiKV, TiKVGroup,
    TiKVSpec, TiKVTemplateSpec, Topology,
};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::dns::Dns;
use operator_runtime::handover;
use operator_runtime::tls::{self, SecretMount};

use crate::ready;

/// Name of the component label value and of the container.
pub const COMPONENT: &str = keys::COMPONENT_TIKV;
/// Where the config file is mounted.
pub const CONFIG_DIR: &str = "/etc/tikv";
/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE: &str = "config.toml";
/// Default image when the template names none.
pub const DEFAULT_IMAGE: &str = "pingcap/tikv";
/// How long the preStop hook waits for the store's leaders to leave.
const HANDOVER_TIMEOUT_SECONDS: i64 = 30;
/// Termination grace period of the Pod as built: the hook's wait, then 30 s for TiKV to stop; a
/// restart may give more (see [`crate::store::restart_grace_period`]).
pub const POD_TERMINATION_GRACE_SECONDS: i64 = HANDOVER_TIMEOUT_SECONDS + 30;

/// Headless Service giving each store a stable DNS name.
pub fn peer_service_name(group: &str) -> String {
    format!("{group}-tikv-peer")
}

/// Client (gRPC) port of a template.
pub fn client_port(spec: &TiKVTemplateSpec) -> i32 {
    spec.server
        .ports
        .client
        .as_ref()
        .map_or(TIKV_DEFAULT_PORT_CLIENT, |p| p.port)
}

/// Status (HTTP) port of a template.
pub fn status_port(spec: &TiKVTemplateSpec) -> i32 {
    spec.server
        .ports
        .status_port()
        .map_or(TIKV_DEFAULT_PORT_STATUS, |p| p.port)
}

/// A TiKV instance of a group at the group's current template.
pub fn instance(
    group: &TiKVGroup,
    name: &str,
    topology: Topology,
    revision: &str,
) -> Result<TiKV, BuildError> {
    let tikv = TiKV {
        metadata: build::instance_meta(group, name, revision)?,
        spec: TiKVSpec {
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
    };
    Ok(tikv)
}

/// A TiKV instance of a group that runs what `source` runs (its template, features and
/// revision): a new store added while the group's version change waits for PD. The next update,
/// once the gate opens, brings it to the group's template like every other store.
pub fn instance_like(
    group: &TiKVGroup,
    name: &str,
    topology: Topology,
    source: &TiKV,
) -> Result<TiKV, BuildError> {
    let revision = source
        .labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default();
    let mut tikv = instance(group, name, topology, &revision)?;
    tikv.spec.template = source.spec.template.clone();
    tikv.spec.features = source.spec.features.clone();
    Ok(tikv)
}

/// The group's headless peer Service: every store's DNS name is
/// `<instance>.<group>-tikv-peer.<namespace>`.
pub fn peer_service(group: &TiKVGroup) -> Result<Service, BuildError> {
    let spec = &group.spec.template.spec;
    let ports = vec![
        build::named_port(TIKV_PORT_NAME_CLIENT, client_port(spec)),
        build::named_port(TIKV_PORT_NAME_STATUS, status_port(spec)),
    ];
    build::peer_service(group, peer_service_name(&group.name_any()), ports)
}

/// DNS name of an instance through its peer Service, in the form `dns` asks for.
pub fn host(tikv: &TiKV, dns: &Dns) -> String {
    dns.instance_host(tikv)
}

/// The address the store advertises to PD, `host:client-port`; the instance's store is found in
/// PD by it.
pub fn store_address(tikv: &TiKV, dns: &Dns) -> String {
    format!("{}:{}", host(tikv, dns), client_port(&tikv.spec.template))
}

/// The in-cluster URL of the instance's status port.
pub fn status_url(tikv: &TiKV, dns: &Dns) -> String {
    format!(
        "{}://{}:{}",
        dns.scheme(),
        host(tikv, dns),
        status_port(&tikv.spec.template)
    )
}

/// Where the cluster TLS Secret is mounted (tidb-operator v2's path).
pub const CLUSTER_TLS_DIR: &str = "/var/lib/tikv-tls";
/// TiKV's certificate keys, which the operator writes when the cluster has TLS and refuses in
/// the user's config.
pub const SECURITY_KEYS: [&str; 3] = [
    "security.ca-path",
    "security.cert-path",
    "security.key-path",
];

/// The URL of a PDGroup's client Service (`<group>-pd`).
pub fn pd_group_url(namespace: &str, pd_group: &str, port: i32, dns: &Dns) -> String {
    let host = dns.service_host(&format!("{pd_group}-pd"), namespace);
    format!("{}://{host}:{port}", dns.scheme())
}

/// The config file: the user's TOML with the keys the operator owns (addresses, data directory,
/// PD endpoints) set over it; with the cluster TLS Secret among `mounts`, its certificate paths
/// (which the user's TOML may not set).
pub fn config(
    tikv: &TiKV,
    dns: &Dns,
    pd_url: &str,
    mounts: &[SecretMount],
) -> Result<String, BuildError> {
    let spec = &tikv.spec.template;
    build::refuse_managed(&spec.common.config, &SECURITY_KEYS)?;
    let host = host(tikv, dns);
    let mut owned: Vec<(&str, toml::Value)> = vec![
        (
            "server.addr",
            format!("0.0.0.0:{}", client_port(spec)).into(),
        ),
        (
            "server.advertise-addr",
            format!("{host}:{}", client_port(spec)).into(),
        ),
        (
            "server.status-addr",
            format!("0.0.0.0:{}", status_port(spec)).into(),
        ),
        (
            "server.advertise-status-addr",
            format!("{host}:{}", status_port(spec)).into(),
        ),
        ("storage.data-dir", data_mount_path(spec).into()),
        (
            "pd.endpoints",
            toml::Value::Array(vec![pd_url.to_string().into()]),
        ),
    ];
    if let Some(tls) = mounts.iter().find(|m| m.volume == tls::CLUSTER_TLS_VOLUME) {
        for (key, file) in SECURITY_KEYS
            .iter()
            .zip([tls::CA_KEY, tls::CERT_KEY, tls::KEY_KEY])
        {
            owned.push((key, tls.path(file).into()));
        }
    }
    build::merge_config(&spec.common.config, &owned)
}

/// Where the `data` volume is mounted.
pub fn data_mount_path(spec: &TiKVTemplateSpec) -> String {
    build::mount_path_of(
        &spec.common,
        TIKV_VOLUME_MOUNT_TYPE_DATA,
        TIKV_DATA_DEFAULT_PATH,
    )
}

/// The ConfigMap holding the config file.
pub fn config_map(tikv: &TiKV, config: String) -> Result<ConfigMap, BuildError> {
    build::config_map_of(tikv, CONFIG_FILE, config)
}

/// The instance's PVCs (no owner reference: they outlive the Pod and go only after the store is
/// removed from PD).
pub fn pvcs(tikv: &TiKV) -> Result<Vec<PersistentVolumeClaim>, BuildError> {
    build::pvcs_of(tikv)
}

/// The image to run: the template's image (tagged with the version unless it has a tag).
pub fn image(spec: &TiKVTemplateSpec) -> String {
    build::image_of(&spec.common, DEFAULT_IMAGE)
}

/// The Pod of an instance. Its labels carry the hash of the Pod as built (and, with the
/// `Restart` config strategy, of the user's config), so a change shows as a different hash.
pub fn pod(tikv: &TiKV) -> Result<Pod, BuildError> {
    let spec = &tikv.spec.template;
    let default_paths = [(TIKV_VOLUME_MOUNT_TYPE_DATA, TIKV_DATA_DEFAULT_PATH)];
    let (volumes, mounts) = build::volumes_of(tikv, CONFIG_DIR, &default_paths)?;
    // With `UseTiKVReadyAPI`, TiKV's own `/ready` decides, as in tidb-operator v2.
    let readiness = if ready::tikv(tikv) {
        build::ready_api_probe(status_port(spec), ready::TIKV_PATH, CLUSTER_TLS_DIR)
    } else {
        build::tcp_readiness(TIKV_PORT_NAME_CLIENT)
    };
    let container = Container {
        readiness_probe: Some(readiness),
        ..build::server_container(
            COMPONENT,
            image(spec),
            "/tikv-server",
            &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            &[
                (TIKV_PORT_NAME_CLIENT, client_port(spec)),
                (TIKV_PORT_NAME_STATUS, status_port(spec)),
            ],
            &spec.common.resources,
            mounts,
        )
    };
    let mut pod_spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(POD_TERMINATION_GRACE_SECONDS),
        ..PodSpec::default()
    };
    // Whoever deletes the Pod, the store's leaders move to other stores before the kubelet
    // stops TiKV. PD's URL and the certificate come from TiKV's own config file, so changing
    // either restarts nothing; the store is the one on the Pod's DNS name.
    let host = format!(
        "{}.{}.{}",
        tikv.name_any(),
        tikv.spec.subdomain,
        tikv.namespace().unwrap_or_default()
    );
    handover::add(
        &mut pod_spec,
        COMPONENT,
        operator_runtime::build_info::operator_image(),
        vec![
            "tikv".into(),
            format!("--config={CONFIG_DIR}/{CONFIG_FILE}"),
            format!("--store-host={host}"),
            format!("--timeout-seconds={HANDOVER_TIMEOUT_SECONDS}"),
        ],
    );
    build::pod_of(tikv, pod_spec, build::config_hash_of(tikv))
}

pub use operator_runtime::build::pod_is_current;

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use testkit::builders::{self, PodFacts};

    use super::*;

    fn group(template: serde_json::Value) -> TiKVGroup {
        builders::group_of_template("tikv", template).unwrap()
    }

    fn default_group() -> TiKVGroup {
        group(serde_json::json!({
            "version": "v8.5.2",
            "config": "[log]\nlevel = \"info\"\n[server]\ngrpc-concurrency = 8\n",
            "resources": {"cpu": "2", "memory": "4Gi"},
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "100Gi"}]
        }))
    }

    fn instance_of(group: &TiKVGroup) -> TiKV {
        let zone: Topology = [("topology.kubernetes.io/zone".to_string(), "a".to_string())].into();
        let mut tikv = instance(group, "tikv-abcde", zone, "tikv-rev1").unwrap();
        tikv.metadata.uid = Some("uid-2".into());
        tikv
    }

    #[test]
    fn a_store_added_while_the_version_waits_runs_what_the_others_run() {
        let mut group = default_group();
        let running = instance(&group, "tikv-a", Topology::new(), "tikv-old").unwrap();
        group.spec.template.spec.common.version = "v8.5.3".into();
        let added = instance_like(&group, "tikv-b", Topology::new(), &running).unwrap();
        assert_eq!(
            added.spec.template.common.version,
            running.spec.template.common.version
        );
        assert_eq!(
            added.labels()[keys::LABEL_INSTANCE_REVISION_HASH],
            "tikv-old"
        );
        assert_eq!(added.name_any(), "tikv-b");
        assert_eq!(added.finalizers(), [keys::FINALIZER.to_string()]);
    }

    #[test]
    fn an_instance_carries_the_template_labels_owner_and_finalizer() {
        let tikv = instance_of(&default_group());
        assert_eq!(tikv.spec.subdomain, "tikv-tikv-peer");
        assert_eq!(
            tikv.labels()[keys::LABEL_INSTANCE_REVISION_HASH],
            "tikv-rev1"
        );
        assert_eq!(tikv.labels()[keys::LABEL_GROUP], "tikv");
        assert_eq!(tikv.labels()[keys::LABEL_COMPONENT], "tikv");
        assert_eq!(tikv.finalizers(), [keys::FINALIZER.to_string()]);
        assert_eq!(tikv.owner_references()[0].uid, "uid-1");
        assert_eq!(tikv.spec.template.common.version, "v8.5.2");
    }

    #[test]
    fn config_has_the_operator_keys_over_the_users() {
        let tikv = instance_of(&default_group());
        let text = config(&tikv, &Dns::default(), "http://pd-pd.db:2379", &[]).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let server = &table["server"];
        assert_eq!(server["addr"].as_str(), Some("0.0.0.0:20160"));
        assert_eq!(
            server["advertise-addr"].as_str(),
            Some("tikv-abcde.tikv-tikv-peer.db:20160")
        );
        assert_eq!(server["status-addr"].as_str(), Some("0.0.0.0:20180"));
        assert_eq!(
            server["advertise-status-addr"].as_str(),
            Some("tikv-abcde.tikv-tikv-peer.db:20180")
        );
        assert_eq!(server["grpc-concurrency"].as_integer(), Some(8));
        assert_eq!(table["storage"]["data-dir"].as_str(), Some("/var/lib/tikv"));
        let endpoints = table["pd"]["endpoints"].as_array().unwrap();
        assert_eq!(endpoints[0].as_str(), Some("http://pd-pd.db:2379"));
        assert_eq!(table["log"]["level"].as_str(), Some("info"));
        assert_eq!(
            store_address(&tikv, &Dns::default()),
            "tikv-abcde.tikv-tikv-peer.db:20160"
        );
    }

    #[test]
    fn custom_ports_and_data_paths_are_followed() {
        let group = group(serde_json::json!({
            "version": "v8.5.2",
            "server": {"ports": {"client": {"port": 30160}, "peer": {"port": 30180}}},
            "volumes": [{"name": "data", "mounts": [{"type": "data", "mountPath": "/data"}], "storage": "1Gi"}]
        }));
        let tikv = instance_of(&group);
        let table: toml::Table = config(&tikv, &Dns::default(), "http://pd:2379", &[])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            table["server"]["advertise-status-addr"].as_str(),
            Some("tikv-abcde.tikv-tikv-peer.db:30180")
        );
        assert_eq!(table["storage"]["data-dir"].as_str(), Some("/data"));
        assert_eq!(
            store_address(&tikv, &Dns::default()),
            "tikv-abcde.tikv-tikv-peer.db:30160"
        );
    }

    #[test]
    fn the_pod_runs_tikv_with_its_volumes_ports_probe_and_placement() {
        let tikv = instance_of(&default_group());
        let pod = pod(&tikv).unwrap();
        assert_eq!(
            builders::pod_facts(&pod),
            PodFacts {
                image: "pingcap/tikv:v8.5.2".into(),
                command: vec![
                    "/tikv-server".into(),
                    "--config=/etc/tikv/config.toml".into()
                ],
                host: ("tikv-abcde".into(), "tikv-tikv-peer".into()),
                ports: vec![("client".into(), 20160), ("status".into(), 20180)],
                mounts: vec![
                    "/etc/tikv".into(),
                    "/var/lib/tikv".into(),
                    "/var/lib/tidb-handover".into()
                ],
                claims: vec!["data-tikv-abcde".into()],
                memory: Some("4Gi".into()),
                hashed: true,
                owner: Some("uid-2".into()),
            }
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["topology.kubernetes.io/zone"],
            "a"
        );
        let probe = spec.containers[0].readiness_probe.as_ref().unwrap();
        assert_eq!(
            probe.tcp_socket.as_ref().unwrap().port,
            IntOrString::String("client".into())
        );
    }

    #[test]
    fn restarts_follow_the_config_strategy_and_the_version() {
        builders::assert_restarts_follow_the_strategy(&instance_of(&default_group()), |tikv| {
            pod(tikv).unwrap()
        });
    }

    #[test]
    fn the_overlay_lands_on_the_pod_and_pvcs_have_no_owner() {
        let group = group(serde_json::json!({
            "version": "v8.5.2",
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "20Gi"}],
            "overlay": {"pod": {
                "metadata": {"labels": {"team": "kv"}},
                "spec": {"containers": [{"name": "tikv", "env": [{"name": "TZ", "value": "UTC"}]}]}
            }}
        }));
        let tikv = instance_of(&group);
        let pod = pod(&tikv).unwrap();
        assert_eq!(pod.labels()["team"], "kv");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].env.as_ref().unwrap()[0].name, "TZ");
        let claims = pvcs(&tikv).unwrap();
        assert_eq!(claims.len(), 1);
        assert!(claims[0].metadata.owner_references.is_none());
        assert_eq!(claims[0].labels()[keys::LABEL_INSTANCE], "tikv-abcde");
    }

    #[test]
    fn the_peer_service_is_headless_and_selects_the_group() {
        let service = peer_service(&default_group()).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("tikv-tikv-peer"));
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector.unwrap()[keys::LABEL_GROUP], "tikv");
        assert_eq!(
            pd_group_url("db", "pd", 2379, &Dns::default()),
            "http://pd-pd.db:2379"
        );
    }

    /// Everything the builders write with an address in it, under the Cluster `spec`.
    fn addressed_objects(tikv: &TiKV, spec: operator_api::core::ClusterSpec) -> serde_json::Value {
        let cluster = operator_api::core::Cluster::new("basic", spec);
        let pd_group: operator_api::core::PDGroup =
            builders::group_of_template("pd", serde_json::json!({"version": "v8.5.2"})).unwrap();
        let pd_url = crate::pd::pd_url(Some(&cluster), &[pd_group], "db").unwrap();
        let dns = Dns::of(Some(&cluster));
        serde_json::json!({
            "configMap": config_map(tikv, config(tikv, &dns, &pd_url, &[]).unwrap()).unwrap(),
            "pod": pod(tikv).unwrap(),
            "storeAddress": store_address(tikv, &dns),
            "statusUrl": status_url(tikv, &dns),
        })
    }

    fn spec_with(dns: serde_json::Value) -> operator_api::core::ClusterSpec {
        serde_json::from_value(serde_json::json!({ "dns": dns })).unwrap()
    }

    #[test]
    fn in_cluster_names_leave_every_object_as_it_was() {
        // Built before `spec.dns` was read: no Pod or ConfigMap of an existing cluster changes.
        let before: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/in-cluster.json")).unwrap();
        let tikv = instance_of(&default_group());
        for spec in [
            operator_api::core::ClusterSpec::default(),
            spec_with(serde_json::json!({"mode": "InCluster"})),
            spec_with(serde_json::json!({"mode": "InCluster", "clusterDomain": "east.example"})),
        ] {
            assert_eq!(addressed_objects(&tikv, spec), before);
        }
    }

    #[test]
    fn fqdn_names_qualify_the_store_and_pd_addresses() {
        let tikv = instance_of(&default_group());
        let objects = addressed_objects(
            &tikv,
            spec_with(serde_json::json!({"mode": "FQDN", "clusterDomain": "east.example"})),
        );
        let host = "tikv-abcde.tikv-tikv-peer.db.svc.east.example";
        assert_eq!(objects["storeAddress"], format!("{host}:20160"));
        assert_eq!(objects["statusUrl"], format!("http://{host}:20180"));
        let text = objects["configMap"]["data"][CONFIG_FILE].as_str().unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(
            table["server"]["advertise-addr"].as_str(),
            Some(format!("{host}:20160").as_str())
        );
        assert_eq!(
            table["server"]["advertise-status-addr"].as_str(),
            Some(format!("{host}:20180").as_str())
        );
        assert_eq!(
            table["pd"]["endpoints"][0].as_str(),
            Some("http://pd-pd.db.svc.east.example:2379")
        );
        // FQDN without a domain: the Kubernetes default.
        let default_domain =
            addressed_objects(&tikv, spec_with(serde_json::json!({"mode": "FQDN"})));
        assert_eq!(
            default_domain["storeAddress"],
            "tikv-abcde.tikv-tikv-peer.db.svc.cluster.local:20160"
        );
    }
}
