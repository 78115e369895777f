//! Pure builders of everything PD needs: instances from a group, the group's Services, and an
//! instance's ConfigMap, PVCs and Pod. No client here; every function is tested on plain values.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, Service, ServiceSpec};
use kube::ResourceExt;
use operator_api::core::{
    Cluster, Feature, PD, PD_DATA_DEFAULT_PATH, PD_DEFAULT_PORT_CLIENT, PD_PORT_NAME_CLIENT,
    PD_PORT_NAME_PEER, PD_VOLUME_MOUNT_TYPE_DATA, PDGroup, PDSpec, PDTemplateSpec, Topology,
};
use operator_api::keys;
use operator_runtime::build::{self, BuildError};
use operator_runtime::dns::Dns;
use operator_runtime::handover;
use operator_runtime::tls::{self, SecretMount};

use crate::ready;

/// Name of the component label value and of the container.
pub const COMPONENT: &str = keys::COMPONENT_PD;
/// Where the config file is mounted.
pub const CONFIG_DIR: &str = "/etc/pd";
/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE: &str = "config.toml";
/// Default image when the template names none.
pub const DEFAULT_IMAGE: &str = "pingcap/pd";
/// Where the cluster TLS Secret is mounted (tidb-operator v2's path).
pub const CLUSTER_TLS_DIR: &str = "/var/lib/pd-tls";
/// PD's certificate keys, which the operator writes when the cluster has TLS and refuses in the
/// user's config.
pub const SECURITY_KEYS: [&str; 3] = [
    "security.cacert-path",
    "security.cert-path",
    "security.key-path",
];

/// How long the preStop hook waits for PD leadership to move. The grace period leaves the server
/// ten seconds more to stop after it.
const HANDOVER_TIMEOUT_SECONDS: i64 = 20;
/// The Pod's termination grace period.
const GRACE_SECONDS: i64 = HANDOVER_TIMEOUT_SECONDS + 10;

/// Headless Service giving each member a stable DNS name.
pub fn peer_service_name(group: &str) -> String {
    format!("{group}-pd-peer")
}

/// Service clients use to reach any member.
pub fn client_service_name(group: &str) -> String {
    format!("{group}-pd")
}

/// Client port of a template.
pub fn client_port(spec: &PDTemplateSpec) -> i32 {
    spec.server.ports.client_port()
}

/// Peer port of a template.
pub fn peer_port(spec: &PDTemplateSpec) -> i32 {
    spec.server.ports.peer_port()
}

/// A PD instance of a group at the group's current template.
pub fn instance(
    group: &PDGroup,
    name: &str,
    topology: Topology,
    revision: &str,
    initial_cluster_num: Option<i32>,
) -> Result<PD, BuildError> {
    let mut metadata = build::instance_meta(group, name, revision)?;
    if let Some(count) = initial_cluster_num {
        metadata.annotations.get_or_insert_default().insert(
            keys::ANNO_INITIAL_CLUSTER_NUM.to_string(),
            count.to_string(),
        );
    }
    let pd = PD {
        metadata,
        spec: PDSpec {
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
    };
    Ok(pd)
}

/// The group's headless peer Service and its client Service. Under `MultiPDGroup` PD is
/// reached through the Cluster's PD Service instead, and the group makes no client Service (one
/// made before stays, for the clients that still use it, unless the Cluster adopts it).
pub fn services(group: &PDGroup) -> Result<Vec<Service>, BuildError> {
    let group_name = group.name_any();
    let spec = &group.spec.template.spec;
    let client = build::named_port(PD_PORT_NAME_CLIENT, client_port(spec));
    let peer = build::named_port(PD_PORT_NAME_PEER, peer_port(spec));
    let mut services = vec![build::peer_service(
        group,
        peer_service_name(&group_name),
        vec![client.clone(), peer],
    )?];
    if !group.spec.features.contains(&Feature::MultiPDGroup) {
        services.push(build::group_service(
            group,
            client_service_name(&group_name),
            ServiceSpec {
                ports: Some(vec![client]),
                ..ServiceSpec::default()
            },
        )?);
    }
    Ok(services)
}

/// DNS name of an instance through its peer Service, in the form `dns` asks for.
pub fn host(pd: &PD, dns: &Dns) -> String {
    dns.instance_host(pd)
}

/// Client URL of an instance.
pub fn client_url(pd: &PD, dns: &Dns) -> String {
    format!(
        "{}://{}:{}",
        dns.scheme(),
        host(pd, dns),
        client_port(&pd.spec.template)
    )
}

/// Peer URL of an instance.
pub fn peer_url(pd: &PD, dns: &Dns) -> String {
    format!(
        "{}://{}:{}",
        dns.scheme(),
        host(pd, dns),
        peer_port(&pd.spec.template)
    )
}

/// The URL of the client Service of the PD group `group` in `namespace`.
pub fn client_service_url(namespace: &str, group: &str, port: i32, dns: &Dns) -> String {
    let host = dns.service_host(&client_service_name(group), namespace);
    format!("{}://{host}:{port}", dns.scheme())
}

/// Where `group`'s rules, its members' `join` and the operator's calls reach PD: the Cluster's
/// PD Service under `MultiPDGroup` (PD's default client port, which it maps to each member's
/// own), else the group's client Service.
pub fn pd_service_url(cluster: &Cluster, namespace: &str, group: &str, port: i32) -> String {
    let dns = Dns::of_spec(&cluster.spec);
    match cluster.spec.pd_service(&cluster.name_any()) {
        Some(service) => format!(
            "{}://{}:{PD_DEFAULT_PORT_CLIENT}",
            dns.scheme(),
            dns.service_host(&service, namespace)
        ),
        None => client_service_url(namespace, group, port, &dns),
    }
}

/// [`pd_service_url`] for `pd` of `group` (whose client port it uses); without its Cluster, the
/// group's client Service.
pub fn group_client_url(pd: &PD, group: &str, cluster: Option<&Cluster>) -> String {
    let namespace = pd.namespace().unwrap_or_default();
    let port = client_port(&pd.spec.template);
    match cluster {
        Some(cluster) => pd_service_url(cluster, &namespace, group, port),
        None => client_service_url(&namespace, group, port, &Dns::default()),
    }
}

/// PD's `initial-cluster`: `name=peer-url` of each first member, sorted, comma separated.
pub fn initial_cluster(members: &[&PD], dns: &Dns) -> String {
    let mut members: Vec<String> = members
        .iter()
        .map(|m| format!("{}={}", m.name_any(), peer_url(m, dns)))
        .collect();
    members.sort();
    members.join(",")
}

/// How a new member finds the PD cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Bootstrap a new cluster with these members (`name=peer-url`, comma separated).
    InitialCluster(String),
    /// Join the running cluster through this client URL.
    Join(String),
}

/// The config file: the user's TOML with the keys the operator owns; with the cluster TLS
/// Secret among `mounts`, its certificate paths (which the user's TOML may not set).
pub fn config(
    pd: &PD,
    dns: &Dns,
    membership: &Membership,
    mounts: &[SecretMount],
) -> Result<String, BuildError> {
    let spec = &pd.spec.template;
    build::refuse_managed(&spec.common.config, &SECURITY_KEYS)?;
    let data_dir = data_mount_path(spec);
    let scheme = dns.scheme();
    let mut owned: Vec<(&str, toml::Value)> = vec![
        ("name", pd.name_any().into()),
        ("data-dir", format!("{data_dir}/data").into()),
        (
            "client-urls",
            format!("{scheme}://0.0.0.0:{}", client_port(spec)).into(),
        ),
        ("advertise-client-urls", client_url(pd, dns).into()),
        (
            "peer-urls",
            format!("{scheme}://0.0.0.0:{}", peer_port(spec)).into(),
        ),
        ("advertise-peer-urls", peer_url(pd, dns).into()),
    ];
    if let Some(tls) = mounts.iter().find(|m| m.volume == tls::CLUSTER_TLS_VOLUME) {
        for (key, file) in SECURITY_KEYS
            .iter()
            .zip([tls::CA_KEY, tls::CERT_KEY, tls::KEY_KEY])
        {
            owned.push((key, tls.path(file).into()));
        }
    }
    match membership {
        Membership::InitialCluster(members) => {
            owned.push(("initial-cluster", members.clone().into()))
        }
        Membership::Join(url) => owned.push(("join", url.clone().into())),
    }
    build::merge_config(&spec.common.config, &owned)
}

/// Where the `data` volume is mounted.
pub fn data_mount_path(spec: &PDTemplateSpec) -> String {
    build::mount_path_of(
        &spec.common,
        PD_VOLUME_MOUNT_TYPE_DATA,
        PD_DATA_DEFAULT_PATH,
    )
}

/// The ConfigMap holding the config file.
pub fn config_map(pd: &PD, config: String) -> Result<ConfigMap, BuildError> {
    build::config_map_of(pd, CONFIG_FILE, config)
}

/// The instance's PVCs.
pub fn pvcs(pd: &PD) -> Result<Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim>, BuildError> {
    build::pvcs_of(pd)
}

/// The image to run: the template's image (tagged with the version unless it has a tag).
pub fn image(spec: &PDTemplateSpec) -> String {
    build::image_of(&spec.common, DEFAULT_IMAGE)
}

/// The Pod of an instance. Its labels carry the hash of the Pod as built (and, with the
/// `Restart` config strategy, of the config), so a change shows as a different hash.
pub fn pod(pd: &PD) -> Result<Pod, BuildError> {
    let spec = &pd.spec.template;
    let default_paths = [(PD_VOLUME_MOUNT_TYPE_DATA, PD_DATA_DEFAULT_PATH)];
    let (volumes, mounts) = build::volumes_of(pd, CONFIG_DIR, &default_paths)?;
    let readiness = match ready::api(pd) {
        Some(v2) => Some(ready::probe(pd, v2)),
        None => (!pd
            .spec
            .features
            .contains(&Feature::DisablePDDefaultReadinessProbe))
        .then(|| build::tcp_readiness(PD_PORT_NAME_CLIENT)),
    };
    let container = Container {
        readiness_probe: readiness,
        ..build::server_container(
            COMPONENT,
            image(spec),
            "/pd-server",
            &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            &[
                (PD_PORT_NAME_CLIENT, client_port(spec)),
                (PD_PORT_NAME_PEER, peer_port(spec)),
            ],
            &spec.common.resources,
            mounts,
        )
    };
    let client_port = client_port(spec);
    let mut spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(GRACE_SECONDS),
        ..PodSpec::default()
    };
    // Whoever deletes the Pod, a member that leads PD hands leadership to a healthy peer before
    // the kubelet stops it. The hook asks its own member (so it works while the Service's other
    // endpoints are unreachable), over mutual TLS when the cluster certificate is mounted.
    handover::add(
        &mut spec,
        COMPONENT,
        operator_runtime::build_info::operator_image(),
        vec![
            "pd".into(),
            format!("--pd=http://127.0.0.1:{client_port}"),
            format!("--member={}", pd.name_any()),
            format!("--tls-dir={CLUSTER_TLS_DIR}"),
            format!("--timeout-seconds={HANDOVER_TIMEOUT_SECONDS}"),
        ],
    );
    build::pod_of(pd, spec, build::config_hash_of(pd))
}

pub use operator_runtime::build::pod_is_current;

#[cfg(test)]
mod tests {
    use testkit::builders::{self, PodFacts};

    use super::*;

    fn group(template: serde_json::Value) -> PDGroup {
        builders::group_of_template("pd", template).unwrap()
    }

    fn default_group() -> PDGroup {
        group(serde_json::json!({
            "version": "v8.5.2",
            "config": "[log]\nlevel = \"info\"\n",
            "resources": {"cpu": "1", "memory": "2Gi"},
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "20Gi"}]
        }))
    }

    fn instance_of(group: &PDGroup) -> PD {
        let mut pd = instance(group, "pd-abcde", Topology::new(), "pd-rev1", Some(3)).unwrap();
        pd.metadata.uid = Some("uid-2".into());
        pd
    }

    #[test]
    fn an_instance_carries_the_template_labels_owner_and_finalizer() {
        let group = default_group();
        let pd = instance_of(&group);
        assert_eq!(pd.spec.subdomain, "pd-pd-peer");
        assert_eq!(pd.labels()[keys::LABEL_INSTANCE_REVISION_HASH], "pd-rev1");
        assert_eq!(pd.labels()[keys::LABEL_GROUP], "pd");
        assert_eq!(pd.annotations()[keys::ANNO_INITIAL_CLUSTER_NUM], "3");
        assert_eq!(pd.finalizers(), [keys::FINALIZER.to_string()]);
        assert_eq!(pd.owner_references()[0].uid, "uid-1");
        assert_eq!(pd.spec.template.common.version, "v8.5.2");
    }

    #[test]
    fn config_has_the_operator_keys_over_the_users() {
        let pd = instance_of(&default_group());
        let text = config(
            &pd,
            &Dns::default(),
            &Membership::InitialCluster("pd-abcde=http://x:2380".into()),
            &[],
        )
        .unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["name"].as_str(), Some("pd-abcde"));
        assert_eq!(
            table["advertise-client-urls"].as_str(),
            Some("http://pd-abcde.pd-pd-peer.db:2379")
        );
        assert_eq!(
            table["initial-cluster"].as_str(),
            Some("pd-abcde=http://x:2380")
        );
        assert_eq!(table["data-dir"].as_str(), Some("/var/lib/pd/data"));
        assert_eq!(table["log"]["level"].as_str(), Some("info"));
        let joined: toml::Table = config(
            &pd,
            &Dns::default(),
            &Membership::Join("http://pd-pd.db:2379".into()),
            &[],
        )
        .unwrap()
        .parse()
        .unwrap();
        assert!(joined.get("initial-cluster").is_none());
        assert_eq!(joined["join"].as_str(), Some("http://pd-pd.db:2379"));
    }

    #[test]
    fn the_pod_runs_pd_with_its_volumes_ports_and_resources() {
        let pd = instance_of(&default_group());
        assert_eq!(
            builders::pod_facts(&pod(&pd).unwrap()),
            PodFacts {
                image: "pingcap/pd:v8.5.2".into(),
                command: vec!["/pd-server".into(), "--config=/etc/pd/config.toml".into()],
                host: ("pd-abcde".into(), "pd-pd-peer".into()),
                ports: vec![("client".into(), 2379), ("peer".into(), 2380)],
                mounts: vec![
                    "/etc/pd".into(),
                    "/var/lib/pd".into(),
                    "/var/lib/tidb-handover".into()
                ],
                claims: vec!["data-pd-abcde".into()],
                memory: Some("2Gi".into()),
                hashed: true,
                owner: Some("uid-2".into()),
            }
        );
    }

    #[test]
    fn the_pod_hands_pd_leadership_over_before_it_stops() {
        let pd = instance_of(&default_group());
        let pod = pod(&pd).unwrap();
        let spec = pod.spec.unwrap();
        let init = &spec.init_containers.unwrap()[0];
        assert_eq!(init.name, handover::INIT_CONTAINER);
        assert_eq!(
            init.image.as_deref(),
            Some(operator_runtime::build_info::operator_image())
        );
        assert_eq!(
            init.command.as_deref().unwrap(),
            [
                "/tidb-handover",
                "install",
                "/var/lib/tidb-handover/tidb-handover"
            ]
        );
        let hook = spec.containers[0]
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
            .unwrap();
        assert_eq!(
            hook,
            [
                "/var/lib/tidb-handover/tidb-handover",
                "pd",
                "--pd=http://127.0.0.1:2379",
                "--member=pd-abcde",
                "--tls-dir=/var/lib/pd-tls",
                "--timeout-seconds=20"
            ]
        );
        // The hook's wait fits in the grace period, with time left for the server to stop.
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
    }

    #[test]
    fn restarts_follow_the_config_strategy_and_the_version() {
        let base = instance_of(&default_group());
        builders::assert_restarts_follow_the_strategy(&base, |pd| pod(pd).unwrap());
        let mut newer = base.clone();
        newer.spec.template.common.version = "v8.5.3".into();
        let image = builders::pod_facts(&pod(&newer).unwrap()).image;
        assert_eq!(image, "pingcap/pd:v8.5.3");
    }

    #[test]
    fn the_overlay_lands_on_the_pod() {
        let group = group(serde_json::json!({
            "version": "v8.5.2",
            "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "20Gi"}],
            "overlay": {"pod": {
                "metadata": {"labels": {"team": "db"}},
                "spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}],
                         "containers": [{"name": "pd", "env": [{"name": "TZ", "value": "UTC"}]}]}
            }}
        }));
        let pod = pod(&instance_of(&group)).unwrap();
        assert_eq!(pod.labels()["team"], "db");
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.tolerations.unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].env.as_ref().unwrap()[0].name, "TZ");
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some("pingcap/pd:v8.5.2")
        );
    }

    #[test]
    fn services_select_the_group() {
        let [peer, client]: [Service; 2] = services(&default_group()).unwrap().try_into().unwrap();
        assert_eq!(peer.metadata.name.as_deref(), Some("pd-pd-peer"));
        assert_eq!(
            peer.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
        assert_eq!(client.metadata.name.as_deref(), Some("pd-pd"));
        assert_eq!(
            client.spec.as_ref().unwrap().selector.as_ref().unwrap()[keys::LABEL_GROUP],
            "pd"
        );
    }

    #[test]
    fn under_multi_pd_group_pd_is_reached_through_the_clusters_service() {
        let cluster = |spec: serde_json::Value| -> Cluster {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "basic", "namespace": "db"}, "spec": spec
            }))
            .unwrap()
        };
        let plain = cluster(serde_json::json!({}));
        assert_eq!(
            pd_service_url(&plain, "db", "pd", 2381),
            "http://pd-pd.db:2381"
        );
        let gated = cluster(serde_json::json!({"featureGates": [{"name": "MultiPDGroup"}]}));
        assert_eq!(
            pd_service_url(&gated, "db", "pd", 2381),
            "http://basic-pd.db:2379"
        );
        let mut group = default_group();
        assert_eq!(services(&group).unwrap().len(), 2);
        group.spec.features = vec![Feature::MultiPDGroup];
        let only = services(&group).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name_any(), "pd-pd-peer");
    }

    #[test]
    fn the_disruption_budget_takes_one_member_of_the_group_at_a_time() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let group = default_group();
        let budget = operator_runtime::build::disruption_budget(&group).unwrap();
        assert_eq!(budget.metadata.name.as_deref(), Some("pd-pd"));
        assert_eq!(budget.owner_references()[0].kind, "PDGroup");
        let spec = budget.spec.unwrap();
        // Three members: two stay, one may be evicted.
        assert_eq!(spec.min_available, Some(IntOrString::Int(2)));
        assert_eq!(spec.max_unavailable, None);
        assert_eq!(
            spec.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );
        let selector = spec.selector.unwrap().match_labels.unwrap();
        // The same labels as the Pods of the group's instances, and only this group's.
        let pod = pod(&instance_of(&group)).unwrap();
        for (key, value) in &selector {
            assert_eq!(pod.labels().get(key), Some(value), "{key}");
        }
        assert_eq!(selector[keys::LABEL_GROUP], "pd");
        let mut single = default_group();
        single.spec.replicas = 1;
        let budget = operator_runtime::build::disruption_budget(&single).unwrap();
        assert_eq!(
            budget.spec.unwrap().min_available,
            Some(IntOrString::Int(0))
        );
    }

    #[test]
    fn images_keep_explicit_tags() {
        let mut spec = default_group().spec.template.spec;
        spec.common.image = Some("registry:5000/pingcap/pd".into());
        assert_eq!(image(&spec), "registry:5000/pingcap/pd:v8.5.2");
        spec.common.image = Some("pingcap/pd:nightly".into());
        assert_eq!(image(&spec), "pingcap/pd:nightly");
    }

    /// Everything the builders write with an address in it, under `dns`.
    fn addressed_objects(pd: &PD, dns: &Dns) -> serde_json::Value {
        let initial = Membership::InitialCluster(initial_cluster(&[pd], dns));
        let joining = Membership::Join(client_service_url("db", "pd", 2379, dns));
        serde_json::json!({
            "initial": config_map(pd, config(pd, dns, &initial, &[]).unwrap()).unwrap(),
            "joining": config_map(pd, config(pd, dns, &joining, &[]).unwrap()).unwrap(),
            "pod": pod(pd).unwrap(),
            "clientUrl": client_url(pd, dns),
        })
    }

    #[test]
    fn in_cluster_names_leave_every_object_as_it_was() {
        // Built before `spec.dns` was read: no Pod or ConfigMap of an existing cluster changes.
        let before: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/in-cluster.json")).unwrap();
        let pd = instance_of(&default_group());
        let spec = |dns: serde_json::Value| -> operator_api::core::ClusterSpec {
            serde_json::from_value(serde_json::json!({ "dns": dns })).unwrap()
        };
        for dns in [
            Dns::default(),
            Dns::of_spec(&spec(serde_json::json!({"mode": "InCluster"}))),
            Dns::of_spec(&spec(
                serde_json::json!({"mode": "InCluster", "clusterDomain": "east.example"}),
            )),
        ] {
            assert_eq!(addressed_objects(&pd, &dns), before);
        }
    }

    #[test]
    fn with_tls_every_url_is_https_and_the_certificate_paths_are_written_and_refused() {
        let pd = instance_of(&default_group());
        let dns = Dns::default().with_tls(true);
        let mounts = [SecretMount::cluster("pd", "pd", CLUSTER_TLS_DIR, None)];
        let initial = Membership::InitialCluster(initial_cluster(&[&pd], &dns));
        let table: toml::Table = config(&pd, &dns, &initial, &mounts)
            .unwrap()
            .parse()
            .unwrap();
        for key in [
            "client-urls",
            "advertise-client-urls",
            "peer-urls",
            "advertise-peer-urls",
        ] {
            let url = table[key].as_str().unwrap();
            assert!(url.starts_with("https://"), "{key} = {url}");
        }
        assert!(
            table["initial-cluster"]
                .as_str()
                .unwrap()
                .contains("=https://")
        );
        assert_eq!(
            table["security"]["cacert-path"].as_str(),
            Some("/var/lib/pd-tls/ca.crt")
        );
        assert_eq!(
            table["security"]["cert-path"].as_str(),
            Some("/var/lib/pd-tls/tls.crt")
        );
        assert_eq!(
            table["security"]["key-path"].as_str(),
            Some("/var/lib/pd-tls/tls.key")
        );
        assert!(client_service_url("db", "pd", 2379, &dns).starts_with("https://"));
        // Without TLS no security key is written, and the user may never set one.
        let plain: toml::Table = config(&pd, &Dns::default(), &initial, &[])
            .unwrap()
            .parse()
            .unwrap();
        assert!(plain.get("security").is_none());
        let mut manual = pd.clone();
        manual.spec.template.common.config = "[security]\ncert-path = \"/mine\"\n".into();
        let error = config(&manual, &dns, &initial, &mounts).unwrap_err();
        assert!(error.to_string().contains("security.cert-path"), "{error}");
    }

    #[test]
    fn fqdn_names_qualify_every_address_and_keep_the_member_name() {
        let pd = instance_of(&default_group());
        let dns = Dns::fqdn("east.example");
        let host = "pd-abcde.pd-pd-peer.db.svc.east.example";
        assert_eq!(super::host(&pd, &dns), host);
        let initial = Membership::InitialCluster(initial_cluster(&[&pd], &dns));
        let table: toml::Table = config(&pd, &dns, &initial, &[]).unwrap().parse().unwrap();
        assert_eq!(table["name"].as_str(), Some("pd-abcde"));
        assert_eq!(
            table["advertise-client-urls"].as_str(),
            Some(format!("http://{host}:2379").as_str())
        );
        assert_eq!(
            table["advertise-peer-urls"].as_str(),
            Some(format!("http://{host}:2380").as_str())
        );
        assert_eq!(
            table["initial-cluster"].as_str(),
            Some(format!("pd-abcde=http://{host}:2380").as_str())
        );
        assert_eq!(
            client_service_url("db", "pd", 2379, &dns),
            "http://pd-pd.db.svc.east.example:2379"
        );
        // The Pod names no address: it reads them from its ConfigMap.
        assert_eq!(
            serde_json::to_value(pod(&pd).unwrap()).unwrap(),
            addressed_objects(&pd, &Dns::default())["pod"]
        );
    }
}
