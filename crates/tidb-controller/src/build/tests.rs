//! Tests of the TiDB builders: instances, config, Pods, Services and in-place updates.

use operator_api::core::ConfigUpdateStrategy;
use testkit::builders;

use super::*;

fn group(extra: serde_json::Value) -> TiDBGroup {
    let mut spec = serde_json::json!({
        "cluster": {"name": "basic"},
        "replicas": 2,
        "template": {"spec": {
            "version": "v8.5.2",
            "config": "[log]\nlevel = \"info\"\n",
            "resources": {"cpu": "1", "memory": "2Gi"}
        }}
    });
    merge(&mut spec, &extra);
    builders::group("db", "ns", spec).unwrap()
}

fn merge(base: &mut serde_json::Value, extra: &serde_json::Value) {
    operator_runtime::overlay::merge(base, extra);
}

fn instance_of(group: &TiDBGroup) -> TiDB {
    let target = Target::of_group(group, "db-rev1", None);
    let mut tidb = instance(group, "db-abcde", Topology::new(), &target).unwrap();
    tidb.metadata.uid = Some("uid-2".into());
    tidb
}

#[test]
fn an_instance_carries_the_template_labels_owner_and_finalizer() {
    let group = group(serde_json::json!({"template": {"metadata": {"labels": {"team": "a"}}}}));
    let tidb = instance_of(&group);
    assert_eq!(tidb.spec.subdomain, "db-tidb-peer");
    assert_eq!(tidb.labels()[keys::LABEL_INSTANCE_REVISION_HASH], "db-rev1");
    assert_eq!(tidb.labels()[keys::LABEL_GROUP], "db");
    assert_eq!(tidb.labels()[keys::LABEL_COMPONENT], "tidb");
    assert_eq!(tidb.labels()["team"], "a");
    assert_eq!(tidb.finalizers(), [keys::FINALIZER.to_string()]);
    assert_eq!(tidb.owner_references()[0].uid, "uid-1");
    assert_eq!(tidb.spec.template.common.version, "v8.5.2");
}

#[test]
fn config_has_the_operator_keys_over_the_users() {
    let group = group(serde_json::json!({"template": {"spec": {
        "config": "host = \"1.2.3.4\"\npath = \"mine:2379\"\n[log]\nlevel = \"info\"\n[status]\nreport-status = true\n",
        "server": {"ports": {"client": {"port": 4001}}, "labels": {"rack": "r1"}}
    }}}));
    let tidb = instance_of(&group);
    let text = config(&tidb, &Dns::default(), "basic-pd.ns:2379", false, &[]).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(table["store"].as_str(), Some("tikv"));
    assert_eq!(table["host"].as_str(), Some("::"));
    assert_eq!(
        table["advertise-address"].as_str(),
        Some("db-abcde.db-tidb-peer.ns")
    );
    assert_eq!(table["port"].as_integer(), Some(4001));
    assert_eq!(table["status"]["status-port"].as_integer(), Some(10080));
    assert_eq!(table["status"]["report-status"].as_bool(), Some(true));
    assert_eq!(table["path"].as_str(), Some("basic-pd.ns:2379"));
    assert_eq!(table["log"]["level"].as_str(), Some("info"));
    assert_eq!(table["labels"]["rack"].as_str(), Some("r1"));
    assert!(table.get("initialize-sql-file").is_none());
    assert!(table["log"].get("slow-query-file").is_none());

    let with_sql: toml::Table = config(&tidb, &Dns::default(), "x:2379", true, &[])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        with_sql["initialize-sql-file"].as_str(),
        Some("/etc/tidb-bootstrap/bootstrap.sql")
    );
}

#[test]
fn invalid_toml_is_an_error_with_a_reason() {
    let group = group(serde_json::json!({"template": {"spec": {"config": "[log\n"}}}));
    let err = config(&instance_of(&group), &Dns::default(), "x:2379", false, &[]).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");
}

#[test]
fn pd_path_prefers_the_cluster_status_then_the_pd_groups() {
    assert_eq!(
        pd_path(
            "http://basic-pd.ns:2379",
            "ns",
            &[("pd".into(), 2379)],
            &Dns::default()
        )
        .as_deref(),
        Some("basic-pd.ns:2379")
    );
    assert_eq!(
        pd_path("https://a:2379/,https://b:2379", "ns", &[], &Dns::default()).as_deref(),
        Some("a:2379,b:2379")
    );
    assert_eq!(
        pd_path(
            "",
            "ns",
            &[("pd-pd".into(), 2379), ("pd2-pd".into(), 3379)],
            &Dns::default()
        )
        .as_deref(),
        Some("pd-pd.ns:2379,pd2-pd.ns:3379")
    );
    assert_eq!(pd_path("", "ns", &[], &Dns::default()), None);
}

#[test]
fn pd_services_are_the_groups_or_the_clusters_under_multi_pd_group() {
    let group: operator_api::core::PDGroup = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pd", "namespace": "ns"},
        "spec": {"cluster": {"name": "basic"}, "replicas": 1, "template": {"spec": {
            "version": "v8.5.2", "server": {"ports": {"client": {"port": 3379}}}
        }}}
    }))
    .unwrap();
    let mut cluster: Cluster = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "basic", "namespace": "ns"}, "spec": {}
    }))
    .unwrap();
    let groups = [group];
    assert_eq!(
        pd_services(&cluster, &groups),
        vec![("pd-pd".to_string(), 3379)]
    );
    cluster.spec.feature_gates =
        serde_json::from_value(serde_json::json!([{"name": "MultiPDGroup"}])).unwrap();
    assert_eq!(
        pd_services(&cluster, &groups),
        vec![("basic-pd".to_string(), 2379)]
    );
    assert!(pd_services(&cluster, &[]).is_empty());
}

#[test]
fn the_pod_runs_tidb_with_ports_probe_and_a_graceful_stop() {
    let tidb = instance_of(&group(serde_json::json!({})));
    let pod = pod(&tidb, None, false).unwrap();
    let facts = builders::pod_facts(&pod);
    assert_eq!(facts.image, "pingcap/tidb:v8.5.2");
    assert_eq!(
        facts.command,
        ["/tidb-server", "--config=/etc/tidb/config.toml"]
    );
    assert_eq!(
        facts.ports,
        [("mysql-client".into(), 4000), ("status".into(), 10080)]
    );
    assert_eq!(facts.host, ("db-abcde".into(), "db-tidb-peer".into()));
    let spec = pod.spec.as_ref().unwrap();
    let container = &spec.containers[0];
    let probe = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        probe.tcp_socket.as_ref().unwrap().port,
        IntOrString::Int(4000)
    );
    let pre_stop = container
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap();
    assert_eq!(
        pre_stop.exec.as_ref().unwrap().command.as_ref().unwrap()[2],
        "sleep 10"
    );
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.volumes.as_ref().unwrap().len(), 1, "only the config");
    assert!(pod.labels().contains_key(keys::LABEL_POD_SPEC_HASH));
    assert!(pod.labels().contains_key(keys::LABEL_CONFIG_HASH));
    assert!(
        !pod.labels()
            .contains_key(keys::LABEL_INSTANCE_REVISION_HASH)
    );
    assert_eq!(pod.labels()[keys::LABEL_INSTANCE], "db-abcde");
    assert_eq!(pod.owner_references()[0].uid, "uid-2");
}

#[test]
fn pre_stop_and_grace_period_follow_the_template() {
    let group = group(serde_json::json!({"template": {"spec": {
        "preStop": {"sleepSeconds": 25},
        "probes": {"readiness": {"type": "command"}}
    }}}));
    let pod = pod(&instance_of(&group), None, false).unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    let container = &spec.containers[0];
    let exec = container.readiness_probe.as_ref().unwrap().exec.as_ref();
    assert_eq!(
        exec.unwrap().command.as_ref().unwrap()[1],
        "http://127.0.0.1:10080/status"
    );
}

#[test]
fn pvcs_only_for_declared_volumes_and_the_slow_log_mount() {
    let plain = instance_of(&group(serde_json::json!({})));
    assert!(pvcs(&plain).unwrap().is_empty());

    let group = group(serde_json::json!({"template": {"spec": {
        "volumes": [{"name": "log", "mounts": [{"type": "slowlog"}], "storage": "5Gi"}],
        "slowLog": {}
    }}}));
    let tidb = instance_of(&group);
    let claims = pvcs(&tidb).unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name.as_deref(), Some("log-db-abcde"));
    let pod = pod(&tidb, None, false).unwrap();
    let spec = pod.spec.unwrap();
    let mounts: Vec<_> = spec.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("config".to_string(), "/etc/tidb".to_string()),
            ("log".to_string(), "/var/log/tidb".to_string())
        ]
    );
    let sidecar = &spec.init_containers.unwrap()[0];
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.image.as_deref(), Some("busybox:1.37.0"));
    let table: toml::Table = config(&tidb, &Dns::default(), "x:2379", false, &[])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        table["log"]["slow-query-file"].as_str(),
        Some("/var/log/tidb/slowlog")
    );
}

#[test]
fn the_slow_log_sidecar_without_a_volume_gets_a_scratch_directory() {
    let group = group(serde_json::json!({"template": {"spec": {"slowLog": {"image": "alpine"}}}}));
    let pod = pod(&instance_of(&group), None, false).unwrap();
    let spec = pod.spec.unwrap();
    let volumes = spec.volumes.unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "slowlog" && v.empty_dir.is_some())
    );
    assert_eq!(
        spec.init_containers.unwrap()[0].image.as_deref(),
        Some("alpine")
    );
}

#[test]
fn the_bootstrap_sql_is_mounted_but_does_not_decide_restarts() {
    let tidb = instance_of(&group(serde_json::json!({})));
    let with = pod(&tidb, Some("init-sql"), false).unwrap();
    let without = pod(&tidb, None, false).unwrap();
    assert!(pod_is_current(&with, &without));
    let spec = with.spec.unwrap();
    let volume = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "bootstrap-sql")
        .unwrap();
    let source = volume.config_map.unwrap();
    assert_eq!(source.name, "init-sql");
    assert_eq!(source.items.unwrap()[0].key, "bootstrap-sql");
    assert!(
        spec.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/etc/tidb-bootstrap")
    );
}

#[test]
fn reserved_volume_names_are_refused() {
    let group = group(serde_json::json!({"template": {"spec": {
        "volumes": [{"name": "config", "mounts": [{"type": "slowlog"}], "storage": "1Gi"}]
    }}}));
    let err = pod(&instance_of(&group), None, false).unwrap_err();
    assert!(err.to_string().contains("used by the operator"), "{err}");
}

#[test]
fn a_version_change_restarts_and_a_hot_reload_config_change_does_not() {
    let base = instance_of(&group(serde_json::json!({})));
    builders::assert_restarts_follow_the_strategy(&base, |tidb| pod(tidb, None, false).unwrap());
    let mut newer = Target::of_instance(&base);
    newer.spec.common.version = "v8.5.3".into();
    assert!(!update_keeps_pod(&base, &newer));

    let mut config = Target::of_instance(&base);
    config.spec.common.config = "[log]\nlevel = \"warn\"\n".into();
    assert!(!update_keeps_pod(&base, &config), "Restart strategy");

    let mut hot = instance_of(&group(serde_json::json!({})));
    hot.spec.template.common.update_strategy.config = Some(ConfigUpdateStrategy::HotReload);
    let mut hot_config = Target::of_instance(&hot);
    hot_config.spec.common.config = "[log]\nlevel = \"warn\"\n".into();
    assert!(update_keeps_pod(&hot, &hot_config));
}

#[test]
fn a_renewed_mysql_certificate_restarts_the_pod_and_none_leaves_pods_as_they_were() {
    let group = group(serde_json::json!({}));
    let plain = instance_of(&group);
    let plain_pod = pod(&plain, None, false).unwrap();
    // No fingerprint: no annotation, the Pod hash of before (no restart at an operator upgrade).
    assert!(tls_fingerprint_of(&plain).is_none());
    assert!(
        plain_pod
            .annotations()
            .get(keys::ANNO_TLS_FINGERPRINT)
            .is_none()
    );

    let mut first = instance(
        &group,
        "db-abcde",
        Topology::new(),
        &Target::of_group(&group, "db-rev2", Some("f1".into())),
    )
    .unwrap();
    first.metadata.uid = plain.metadata.uid.clone();
    assert_eq!(tls_fingerprint_of(&first).as_deref(), Some("f1"));
    let first_pod = pod(&first, None, false).unwrap();
    assert_eq!(first_pod.annotations()[keys::ANNO_TLS_FINGERPRINT], "f1");
    assert!(!pod_is_current(&plain_pod, &first_pod));

    // The same certificate keeps the Pod; a renewed one restarts it.
    assert!(update_keeps_pod(&first, &Target::of_instance(&first)));
    let mut renewed = Target::of_instance(&first);
    renewed.tls_fingerprint = Some("f2".into());
    assert!(!update_keeps_pod(&first, &renewed));
}

#[test]
fn services_select_the_group_and_honour_the_type() {
    let [peer, mysql] = services(&group(serde_json::json!({}))).unwrap();
    assert_eq!(peer.metadata.name.as_deref(), Some("db-tidb-peer"));
    let peer_spec = peer.spec.unwrap();
    assert_eq!(peer_spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peer_spec.publish_not_ready_addresses, Some(true));
    assert_eq!(mysql.metadata.name.as_deref(), Some("db-tidb"));
    let spec = mysql.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let selector = spec.selector.unwrap();
    assert_eq!(selector[keys::LABEL_GROUP], "db");
    assert_eq!(selector[keys::LABEL_COMPONENT], "tidb");
    assert_eq!(selector[keys::LABEL_CLUSTER], "basic");
    let ports: Vec<_> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("mysql-client".into(), 4000), ("status".into(), 10080)]
    );

    let [_, node_port] =
        services(&group(serde_json::json!({"service": {"type": "NodePort"}}))).unwrap();
    assert_eq!(node_port.spec.unwrap().type_.as_deref(), Some("NodePort"));
}

#[test]
fn images_keep_explicit_tags() {
    let mut spec = group(serde_json::json!({})).spec.template.spec;
    spec.common.image = Some("registry:5000/pingcap/tidb".into());
    assert_eq!(image(&spec), "registry:5000/pingcap/tidb:v8.5.2");
    spec.common.image = Some("pingcap/tidb:nightly".into());
    assert_eq!(image(&spec), "pingcap/tidb:nightly");
}

/// Everything the builders write with an address in it, under `dns`.
fn addressed_objects(tidb: &TiDB, dns: &Dns) -> serde_json::Value {
    let path = pd_path("", "ns", &[("pd-pd".to_string(), 2379)], dns).unwrap();
    serde_json::json!({
        "configMap": config_map(tidb, config(tidb, dns, &path, false, &[]).unwrap()).unwrap(),
        "pod": pod(tidb, None, false).unwrap(),
        "statusUrl": status_url(tidb, dns),
    })
}

fn dns_of(dns: serde_json::Value) -> Dns {
    Dns::of_spec(&serde_json::from_value(serde_json::json!({ "dns": dns })).unwrap())
}

#[test]
fn in_cluster_names_leave_every_object_as_it_was() {
    // Built before `spec.dns` was read: no Pod or ConfigMap of an existing cluster changes.
    let before: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/in-cluster.json")).unwrap();
    let tidb = instance_of(&group(serde_json::json!({})));
    for dns in [
        Dns::default(),
        dns_of(serde_json::json!({"mode": "InCluster"})),
        dns_of(serde_json::json!({"mode": "InCluster", "clusterDomain": "east.example"})),
    ] {
        assert_eq!(addressed_objects(&tidb, &dns), before);
    }
}

#[test]
fn fqdn_names_qualify_the_advertised_address_and_pd() {
    let tidb = instance_of(&group(serde_json::json!({})));
    let dns = dns_of(serde_json::json!({"mode": "FQDN", "clusterDomain": "east.example"}));
    let objects = addressed_objects(&tidb, &dns);
    let host = "db-abcde.db-tidb-peer.ns.svc.east.example";
    assert_eq!(objects["statusUrl"], format!("http://{host}:10080"));
    let text = objects["configMap"]["data"][CONFIG_FILE].as_str().unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(table["advertise-address"].as_str(), Some(host));
    assert_eq!(
        table["path"].as_str(),
        Some("pd-pd.ns.svc.east.example:2379")
    );
    // `status.pd`, once the Cluster has it, is taken as it is (it is written in the same form).
    assert_eq!(
        pd_path("http://pd-pd.ns.svc.east.example:2379", "ns", &[], &dns).as_deref(),
        Some("pd-pd.ns.svc.east.example:2379")
    );
}

#[test]
fn tls_writes_the_cluster_and_mysql_certificate_paths_and_refuses_them_in_the_config() {
    let group = group(serde_json::json!({"template": {"spec": {
        "security": {"tls": {"mysql": {"enabled": true}}}
    }}}));
    let tidb = instance_of(&group);
    assert!(mysql_tls(&tidb.spec.template).is_some());
    let dns = Dns::default().with_tls(true);
    assert!(status_url(&tidb, &dns).starts_with("https://"));
    let mut mysql = SecretMount::mysql("db", None, None);
    let cluster = SecretMount::cluster("db", "tidb", CLUSTER_TLS_DIR, None);
    let table = |mounts: &[SecretMount]| -> toml::Table {
        config(&tidb, &dns, "x:2379", false, mounts)
            .unwrap()
            .parse()
            .unwrap()
    };
    // Without a CA in the server Secret, clients are not asked for certificates.
    let without_ca = table(&[cluster.clone(), mysql.clone()]);
    let security = &without_ca["security"];
    assert_eq!(
        security["cluster-ssl-ca"].as_str(),
        Some("/var/lib/tidb-tls/ca.crt")
    );
    assert_eq!(
        security["cluster-ssl-cert"].as_str(),
        Some("/var/lib/tidb-tls/tls.crt")
    );
    assert_eq!(
        security["cluster-ssl-key"].as_str(),
        Some("/var/lib/tidb-tls/tls.key")
    );
    assert_eq!(
        security["ssl-cert"].as_str(),
        Some("/var/lib/tidb-sql-tls/tls.crt")
    );
    assert_eq!(
        security["ssl-key"].as_str(),
        Some("/var/lib/tidb-sql-tls/tls.key")
    );
    assert!(security.get("ssl-ca").is_none());
    mysql.has_ca = true;
    let with_ca = table(&[cluster, mysql]);
    assert_eq!(
        with_ca["security"]["ssl-ca"].as_str(),
        Some("/var/lib/tidb-sql-tls/ca.crt")
    );
    // A readiness command calls the status port as any client does.
    let mut probed = tidb.clone();
    probed.spec.template.probes.readiness =
        serde_json::from_value(serde_json::json!({"type": "command"})).unwrap();
    let command = pod(&probed, None, true).unwrap().spec.unwrap().containers[0]
        .readiness_probe
        .clone()
        .unwrap()
        .exec
        .unwrap()
        .command
        .unwrap();
    assert!(command[1].starts_with("https://127.0.0.1:"), "{command:?}");
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--cert", "/var/lib/tidb-tls/tls.crt"]),
        "{command:?}"
    );
    let mut manual = tidb.clone();
    manual.spec.template.common.config = "[security]\ncluster-ssl-key = \"/k\"\n".into();
    let error = config(&manual, &dns, "x:2379", false, &[]).unwrap_err();
    assert!(
        error.to_string().contains("security.cluster-ssl-key"),
        "{error}"
    );
}

#[test]
fn sem_auth_token_and_keyspace_are_written_mounted_and_refused_in_the_config() {
    let secure = group(serde_json::json!({"template": {"spec": {
        "keyspace": "ks1",
        "security": {
            "sem": {"config": {"name": "sem-rules"}},
            "authToken": {"jwks": {"name": "jwks"}}
        }
    }}}));
    let tidb = instance_of(&secure);
    let table: toml::Table = config(&tidb, &Dns::default(), "x:2379", false, &[])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        table["security"]["sem-config"].as_str(),
        Some("/etc/sem/sem.json")
    );
    assert_eq!(table["security"]["enable-sem"].as_bool(), Some(true));
    assert_eq!(
        table["security"]["auth-token-jwks"].as_str(),
        Some("/var/lib/tidb-auth-token/tidb_auth_token_jwks.json")
    );
    assert_eq!(table["keyspace-name"].as_str(), Some("ks1"));
    assert!(table.get("standby").is_none());
    let pod = pod(&tidb, None, false).unwrap();
    let spec = pod.spec.unwrap();
    let volume = |name: &str| {
        spec.volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .cloned()
    };
    assert_eq!(
        volume("sem").and_then(|v| v.config_map).map(|c| c.name),
        Some("sem-rules".to_string())
    );
    assert_eq!(
        volume("tidb-auth-token")
            .and_then(|v| v.secret)
            .and_then(|s| s.secret_name),
        Some("jwks".to_string())
    );
    let mounts: Vec<String> = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    assert!(mounts.contains(&"/etc/sem".to_string()));
    assert!(mounts.contains(&"/var/lib/tidb-auth-token".to_string()));

    // SEM stays off when the config says so; the paths it owns are refused.
    let off = group(serde_json::json!({"template": {"spec": {
        "config": "[security]\nenable-sem = false\n",
        "security": {"sem": {"config": {"name": "sem-rules"}}}
    }}}));
    let table: toml::Table = config(&instance_of(&off), &Dns::default(), "x:2379", false, &[])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(table["security"]["enable-sem"].as_bool(), Some(false));
    let owned = group(serde_json::json!({"template": {"spec": {
        "config": "keyspace-name = \"mine\"\n[security]\nsem-config = \"/x\"\n",
        "keyspace": "ks1",
        "security": {"sem": {"config": {"name": "sem-rules"}}}
    }}}));
    let error = config(&instance_of(&owned), &Dns::default(), "x:2379", false, &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("security.sem-config") && error.contains("keyspace-name"),
        "{error}"
    );

    // A standby server gets no keyspace until it is activated.
    let standby = group(serde_json::json!({"template": {"spec": {"mode": "StandBy"}}}));
    let table: toml::Table = config(
        &instance_of(&standby),
        &Dns::default(),
        "x:2379",
        false,
        &[],
    )
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(table["standby"]["standby-mode"].as_bool(), Some(true));
    assert!(table.get("keyspace-name").is_none());
}

#[test]
fn standby_to_normal_with_a_keyspace_keeps_the_pod() {
    let standby = instance_of(&group(
        serde_json::json!({"template": {"spec": {"mode": "StandBy"}}}),
    ));
    let active = instance_of(&group(
        serde_json::json!({"template": {"spec": {"keyspace": "ks1"}}}),
    ));
    // Only the config file differs: TiDB is activated in place.
    assert!(pod_is_current(
        &pod(&standby, None, false).unwrap(),
        &pod(&active, None, false).unwrap()
    ));
}

#[test]
fn session_tokens_are_signed_with_the_named_key_pair_else_the_cluster_certificate() {
    let signing = instance_of(&group(
        serde_json::json!({"features": ["SessionTokenSigning"]}),
    ));
    let plain = instance_of(&group(serde_json::json!({})));
    let cluster = |spec: serde_json::Value| -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "basic", "namespace": "ns"}, "spec": spec
        }))
        .unwrap()
    };
    let named = cluster(serde_json::json!({
        "security": {"sessionTokenSigningCertKeyPair": {"name": "signer"}}
    }));
    let with_tls = cluster(serde_json::json!({"tlsCluster": {"enabled": true}}));
    let bare = cluster(serde_json::json!({}));
    assert!(signs_session_tokens(&signing) && !signs_session_tokens(&plain));
    assert_eq!(
        session_token_secret(&signing, &named, "db").as_deref(),
        Some("signer")
    );
    assert_eq!(
        session_token_secret(&signing, &with_tls, "db").as_deref(),
        Some("db-tidb-cluster-secret")
    );
    assert_eq!(session_token_secret(&signing, &bare, "db"), None);
    assert!(!has_session_token_cert(&bare) && has_session_token_cert(&named));
    assert_eq!(session_token_secret(&plain, &named, "db"), None);

    let mounts = [session_token_mount("signer")];
    let table: toml::Table = config(&signing, &Dns::default(), "x:2379", false, &mounts)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        table["security"]["session-token-signing-cert"].as_str(),
        Some("/var/lib/tidb-session-token-signing-tls/tls.crt")
    );
    assert_eq!(
        table["security"]["session-token-signing-key"].as_str(),
        Some("/var/lib/tidb-session-token-signing-tls/tls.key")
    );
    let owned = instance_of(&group(serde_json::json!({
        "features": ["SessionTokenSigning"],
        "template": {"spec": {"config": "[security]\nsession-token-signing-key = \"/k\"\n"}}
    })));
    assert!(
        config(&owned, &Dns::default(), "x:2379", false, &mounts)
            .unwrap_err()
            .to_string()
            .contains("security.session-token-signing-key")
    );
}
