//! Tests of the Cluster status: components, conditions, pausing and PD unavailability.

use operator_api::conditions::NewCondition;
use operator_api::core::{ClusterSpec, ComponentGroupStatus};

use super::*;

fn group(kind: ComponentKind, name: &str, replicas: i32, ready: i32, settled: bool) -> GroupView {
    let mut status = ComponentGroupStatus::default();
    status.common.observed_generation = 1;
    status.group.ready_replicas = ready;
    for type_ in [conditions::READY, conditions::SYNCED] {
        conditions::set(
            &mut status.common.conditions,
            NewCondition {
                type_,
                status: settled,
                reason: "r",
                message: String::new(),
                observed_generation: Some(1),
            },
            Timestamp::now(),
        );
    }
    GroupView {
        kind,
        name: name.into(),
        replicas,
        generation: Some(1),
        status: Some(status),
        features: vec![],
        deleting: false,
    }
}

fn cluster() -> Cluster {
    let mut c = Cluster::new("basic", ClusterSpec::default());
    c.metadata.namespace = Some("db".into());
    c.metadata.generation = Some(3);
    c
}

fn condition(status: &ClusterStatus, type_: &str) -> (String, String) {
    let c = conditions::find(&status.conditions, type_).unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_settled_cluster_is_available_ready_and_not_progressing() {
    let groups = [
        group(ComponentKind::PD, "pd", 3, 3, true),
        group(ComponentKind::TiKV, "tikv", 3, 3, true),
        group(ComponentKind::TiDB, "tidb", 2, 2, true),
    ];
    let status = cluster_status(
        &cluster(),
        &groups,
        Some("http://pd-pd.db:2379".into()),
        "7".into(),
        None,
        Timestamp::now(),
    );
    assert_eq!(
        status
            .components
            .iter()
            .map(|c| (c.kind, c.replicas))
            .collect::<Vec<_>>(),
        [
            (ComponentKind::PD, 3),
            (ComponentKind::TiKV, 3),
            (ComponentKind::TiDB, 2)
        ]
    );
    assert_eq!(status.pd, "http://pd-pd.db:2379");
    assert_eq!(status.observed_generation, 3);
    assert_eq!(condition(&status, conditions::AVAILABLE).0, "True");
    assert_eq!(condition(&status, conditions::PROGRESSING).0, "False");
    assert_eq!(condition(&status, conditions::READY).0, "True");
    assert_eq!(condition(&status, conditions::SYNCED).0, "True");
}

#[test]
fn tiflash_and_ticdc_groups_are_listed_and_an_unready_one_keeps_the_cluster_unready() {
    let groups = [
        group(ComponentKind::PD, "pd", 3, 3, true),
        group(ComponentKind::TiKV, "tikv", 3, 3, true),
        group(ComponentKind::TiDB, "tidb", 2, 2, true),
        group(ComponentKind::TiFlash, "tiflash", 2, 2, true),
        group(ComponentKind::TiCDC, "ticdc", 2, 0, false),
    ];
    let status = cluster_status(
        &cluster(),
        &groups,
        Some("http://pd-pd.db:2379".into()),
        "7".into(),
        None,
        Timestamp::now(),
    );
    assert_eq!(
        status
            .components
            .iter()
            .map(|c| (c.kind, c.replicas))
            .collect::<Vec<_>>(),
        [
            (ComponentKind::PD, 3),
            (ComponentKind::TiKV, 3),
            (ComponentKind::TiDB, 2),
            (ComponentKind::TiFlash, 2),
            (ComponentKind::TiCDC, 2)
        ]
    );
    // SQL is served; a TiCDC group that is not Ready keeps the Cluster unready, like any group.
    assert_eq!(condition(&status, conditions::AVAILABLE).0, "True");
    assert_eq!(condition(&status, conditions::READY).0, "False");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .unwrap();
    assert!(ready.message.contains("ticdc"), "{}", ready.message);
}

#[test]
fn a_scaling_group_makes_the_cluster_progress() {
    let groups = [
        group(ComponentKind::PD, "pd", 3, 3, true),
        group(ComponentKind::TiKV, "tikv", 5, 3, false),
    ];
    let status = cluster_status(
        &cluster(),
        &groups,
        None,
        String::new(),
        None,
        Timestamp::now(),
    );
    assert_eq!(
        condition(&status, conditions::PROGRESSING),
        ("True".into(), "Progressing".into())
    );
    assert_eq!(
        condition(&status, conditions::AVAILABLE).0,
        "True",
        "a TiKV-only cluster with ready stores is available"
    );
}

#[test]
fn a_pd_that_does_not_answer_makes_the_cluster_unavailable_and_says_so() {
    let groups = [
        group(ComponentKind::PD, "pd", 3, 3, true),
        group(ComponentKind::TiKV, "tikv", 3, 3, true),
        group(ComponentKind::TiDB, "tidb", 2, 2, true),
    ];
    let status = cluster_status(
        &cluster(),
        &groups,
        Some("http://pd-pd.db:2379".into()),
        "7".into(),
        Some("HTTP 503: no leader"),
        Timestamp::now(),
    );
    let available = conditions::find(&status.conditions, conditions::AVAILABLE).unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", reasons::PD_UNAVAILABLE)
    );
    assert!(
        available.message.contains("no leader"),
        "{}",
        available.message
    );
}

#[test]
fn paused_says_so() {
    let mut paused = cluster();
    paused.spec.paused = true;
    let status = cluster_status(
        &paused,
        &[group(ComponentKind::PD, "pd", 3, 3, true)],
        None,
        String::new(),
        None,
        Timestamp::now(),
    );
    assert_eq!(
        condition(&status, conditions::SYNCED),
        ("False".into(), reasons::PAUSED.into())
    );
}

#[test]
fn the_pd_url_follows_the_clusters_dns() {
    let spec = |dns: serde_json::Value| -> ClusterSpec {
        serde_json::from_value(serde_json::json!({ "dns": dns })).unwrap()
    };
    // The form every existing cluster has: unchanged by `InCluster`, whatever the domain.
    for dns in [
        Dns::default(),
        Dns::of_spec(&spec(
            serde_json::json!({"mode": "InCluster", "clusterDomain": "x.example"}),
        )),
    ] {
        assert_eq!(pd_url(&dns, "db", "pd-pd"), "http://pd-pd.db:2379");
    }
    let fqdn = Dns::of_spec(&spec(
        serde_json::json!({"mode": "FQDN", "clusterDomain": "east.example"}),
    ));
    assert_eq!(
        pd_url(&fqdn, "db", "pd-pd"),
        "http://pd-pd.db.svc.east.example:2379"
    );
}

#[test]
fn pd_members_of_other_kubernetes_clusters_are_listed_and_not_marked_local() {
    let member = |name: &str, domain: &str| pd_client::Member {
        name: name.into(),
        client_urls: vec![format!("http://{name}.pd-pd-peer.db.svc.{domain}:2379")],
        ..Default::default()
    };
    let info = pd_client::MembersInfo {
        members: vec![
            member("pd-x", "two.local"),
            member("pd-a", "one.local"),
            // Same namespace and group name, but another domain: not ours.
            member("pd-b", "one.local"),
        ],
        ..Default::default()
    };
    let groups = [group(ComponentKind::PD, "pd", 2, 2, true)];
    let listed = members_status(&Dns::fqdn("one.local"), "db", "basic", &groups, &info);
    let seen: Vec<(&str, bool)> = listed.iter().map(|m| (m.name.as_str(), m.local)).collect();
    assert_eq!(seen, [("pd-a", true), ("pd-b", true), ("pd-x", false)]);
    assert!(listed[2].client_url.ends_with(".svc.two.local:2379"));
}

#[test]
fn stores_of_other_kubernetes_clusters_are_listed_and_not_marked_local() {
    let store = |id: u64, name: &str, domain: &str, state: &str| pd_client::StoreInfo {
        store: pd_client::Store {
            id,
            address: format!("{name}.tikv-tikv-peer.db.svc.{domain}:20160"),
            state_name: state.into(),
            version: "8.5.2".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let info = pd_client::StoresInfo {
        count: 5,
        stores: vec![
            store(11, "tikv-x", "two.local", "Up"),
            store(2, "tikv-a", "one.local", "Up"),
            store(3, "tikv-b", "one.local", "Tombstone"),
            // Same namespace and group name, but another domain: not ours.
            store(5, "tikv-a", "two.local", "Offline"),
            // A TiFlash store of this Cluster's TiFlash group is ours too.
            pd_client::StoreInfo {
                store: pd_client::Store {
                    id: 7,
                    address: "tiflash-a.tiflash-tiflash-peer.db.svc.one.local:20170".into(),
                    state_name: "Up".into(),
                    version: "8.5.2".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        ],
    };
    let groups = [
        group(ComponentKind::TiKV, "tikv", 2, 2, true),
        group(ComponentKind::TiFlash, "tiflash", 1, 1, true),
    ];
    let listed = stores_status(&Dns::fqdn("one.local"), "db", "basic", &groups, &info);
    let seen: Vec<(&str, &str, bool)> = listed
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str(), s.local))
        .collect();
    assert_eq!(
        seen,
        [
            ("2", "Up", true),
            ("5", "Offline", false),
            ("7", "Up", true),
            ("11", "Up", false)
        ]
    );
    assert_eq!(listed[0].version, "8.5.2");
}

#[test]
fn tidb_servers_of_other_kubernetes_clusters_are_listed_and_not_marked_local() {
    let server = |name: &str, domain: &str| pd_client::TidbServerInfo {
        version: "8.0.11-TiDB-v8.5.2".into(),
        ip: format!("{name}.db-tidb-peer.ns.svc.{domain}"),
        listening_port: 4000,
        status_port: 10080,
    };
    let servers = pd_client::TidbServers {
        all_servers_info: [
            ("id-1".to_string(), server("db-b", "one.local")),
            ("id-2".to_string(), server("db-x", "two.local")),
            ("id-3".to_string(), server("db-a", "one.local")),
        ]
        .into_iter()
        .collect(),
    };
    let groups = [group(ComponentKind::TiDB, "db", 2, 2, true)];
    let listed = tidb_servers(&Dns::fqdn("one.local"), "ns", "basic", &groups, &servers);
    let seen: Vec<(&str, bool)> = listed
        .iter()
        .map(|s| (s.address.as_str(), s.local))
        .collect();
    assert_eq!(
        seen,
        [
            ("db-a.db-tidb-peer.ns.svc.one.local:4000", true),
            ("db-b.db-tidb-peer.ns.svc.one.local:4000", true),
            ("db-x.db-tidb-peer.ns.svc.two.local:4000", false),
        ]
    );
    assert_eq!(listed[0].version, "8.0.11-TiDB-v8.5.2");
}
