//! Unit tests of the metrics: families, labels, and the series kept per instance.

use super::*;

#[test]
fn reconciles_are_counted_by_result_and_category() {
    let metrics = Metrics::new().unwrap();
    metrics.reconcile_started("pd").finish(Ok(()));
    metrics.reconcile_started("pd").finish_error("pd_api");
    metrics.reconcile_started("pd").finish(Err("pd_api"));
    drop(metrics.reconcile_started("pd"));
    let text = metrics.render();
    assert!(
        text.contains(r#"tidb_operator_reconcile_total{controller="pd",result="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tidb_operator_reconcile_total{controller="pd",result="error"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tidb_operator_reconcile_errors_total{controller="pd",error="pd_api"} 2"#),
        "{text}"
    );
    // The dropped guard adds a duration sample but no result.
    assert!(
        text.contains(r#"tidb_operator_reconcile_duration_seconds_count{controller="pd"} 4"#),
        "{text}"
    );
}

#[test]
fn api_requests_sum_over_labels() {
    let metrics = Metrics::new().unwrap();
    metrics.api_request("get", "pods", "200");
    metrics.api_request("get", "pods", "404");
    metrics.api_request("patch", "pds/status", "200");
    metrics.api_request("patch", "pds", "409");
    metrics.api_request("watch", "pds", "200");
    assert_eq!(metrics.api_requests("get"), 2);
    assert_eq!(metrics.api_requests("patch"), 2);
    assert_eq!(metrics.api_requests_on("patch", "pds/status"), 1);
    assert_eq!(metrics.api_requests("delete"), 0);
    assert_eq!(metrics.api_writes(), 2);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"tidb_operator_api_requests_total{code="200",resource="pds/status",verb="patch"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn gauges_render_with_their_labels() {
    let metrics = Metrics::new().unwrap();
    metrics.set_leader("pd-controller", true);
    assert!(metrics.leader("pd-controller"));
    metrics.set_instances("PD", "Ready", "True", 3);
    let text = metrics.render();
    assert!(
        text.contains(r#"tidb_operator_leader{lease="pd-controller"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tidb_operator_instances{condition="Ready",kind="PD",status="True"} 3"#),
        "{text}"
    );
    metrics.set_leader("pd-controller", false);
    assert!(!metrics.leader("pd-controller"));
}

const WHO: InstanceLabels<'static> = InstanceLabels {
    namespace: "db",
    cluster: "basic",
    component: "tikv",
    group: "tikv",
    instance: "tikv-abc",
};

#[test]
fn abnormal_instance_is_one_per_false_condition_with_the_reference_labels() {
    let metrics = Metrics::new().unwrap();
    metrics.observe_instance(&WHO, |c| c == "Ready");
    assert_eq!(metrics.abnormal(&WHO, "Ready"), Some(1));
    assert_eq!(metrics.abnormal(&WHO, "Synced"), Some(0));
    let text = metrics.render();
    assert!(
        text.contains(
            r#"tidb_operator_abnormal_instance{cluster="basic",component="tikv",condition="Ready",group="tikv",instance="tikv-abc",namespace="db"} 1"#
        ),
        "{text}"
    );
    metrics.observe_instance(&WHO, |_| false);
    assert_eq!(metrics.abnormal(&WHO, "Ready"), Some(0));
}

#[test]
fn a_forgotten_or_relabelled_instance_leaves_no_series_behind() {
    let metrics = Metrics::new().unwrap();
    metrics.observe_instance(&WHO, |_| true);
    let moved = InstanceLabels {
        group: "tikv-b",
        ..WHO
    };
    metrics.observe_instance(&moved, |_| true);
    assert_eq!(metrics.abnormal(&WHO, "Ready"), None);
    assert_eq!(metrics.abnormal(&moved, "Ready"), Some(1));
    assert_eq!(
        metrics
            .render()
            .matches("tidb_operator_abnormal_instance{")
            .count(),
        2
    );
    metrics.forget_instance("db", "tikv", "tikv-abc");
    assert_eq!(metrics.abnormal(&moved, "Ready"), None);
    assert!(
        !metrics
            .render()
            .contains("tidb_operator_abnormal_instance{"),
        "{}",
        metrics.render()
    );
}

#[test]
fn pd_requests_are_counted_through_the_observer() {
    let metrics = Metrics::new().unwrap();
    let observer = metrics.pd_observer();
    observer("GET", "stores", "success");
    observer("GET", "stores", "unreachable");
    observer("DELETE", "store", "status");
    let text = metrics.render();
    for line in [
        r#"tidb_operator_pd_requests_total{endpoint="stores",method="GET",result="success"} 1"#,
        r#"tidb_operator_pd_requests_total{endpoint="stores",method="GET",result="unreachable"} 1"#,
        r#"tidb_operator_pd_requests_total{endpoint="store",method="DELETE",result="status"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[test]
fn a_group_has_one_outdated_series_until_it_goes() {
    let metrics = Metrics::new().unwrap();
    metrics.observe_group("db", "basic", "tikv", "tikv", Some(2));
    let line = r#"tidb_operator_group_outdated_replicas{cluster="basic",component="tikv",group="tikv",namespace="db"}"#;
    assert!(metrics.render().contains(&format!("{line} 2")));
    metrics.observe_group("db", "basic", "tikv", "tikv", Some(0));
    assert!(metrics.render().contains(&format!("{line} 0")));
    metrics.observe_group("db", "other", "tikv", "tikv", Some(1));
    let text = metrics.render();
    assert!(!text.contains(line), "{text}");
    assert_eq!(
        text.matches("tidb_operator_group_outdated_replicas{")
            .count(),
        1
    );
    metrics.observe_group("db", "other", "tikv", "tikv", None);
    assert!(
        !metrics
            .render()
            .contains("tidb_operator_group_outdated_replicas{")
    );
}

#[test]
fn evictions_and_removals_are_counted_by_outcome() {
    let metrics = Metrics::new().unwrap();
    metrics.leader_eviction_finished("tikv", false);
    metrics.leader_eviction_finished("tikv", false);
    metrics.leader_eviction_finished("tikv", true);
    metrics.store_removal("tikv", true);
    metrics.store_removal("tikv", false);
    let text = metrics.render();
    for line in [
        r#"tidb_operator_leader_eviction_waits_total{component="tikv",outcome="evicted"} 2"#,
        r#"tidb_operator_leader_eviction_waits_total{component="tikv",outcome="timed_out"} 1"#,
        r#"tidb_operator_store_removals_total{component="tikv",result="started"} 1"#,
        r#"tidb_operator_store_removals_total{component="tikv",result="refused"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[test]
fn every_metric_exported_is_listed_and_named_by_the_conventions() {
    let metrics = Metrics::new().unwrap();
    // One sample in each family, so that every family is rendered.
    metrics.reconcile_started("pd").finish_error("pd_api");
    metrics.api_request("get", "pods", "200");
    metrics.fenced_write("patch", "pds");
    metrics.set_leader("pd-controller", true);
    metrics.set_instances("PD", "Ready", "True", 1);
    metrics.observe_instance(&WHO, |_| false);
    metrics.pd_request("GET", "members", "success");
    metrics.leader_eviction_finished("tikv", true);
    metrics.store_removal("tikv", false);
    metrics.observe_group("db", "basic", "tikv", "tikv", Some(0));
    metrics.failover("tikv", "started");
    metrics.observe_failed(["db", "basic", "tikv", "tikv"], Some(1));
    let families = metrics.registry().gather();
    let exported: BTreeSet<&str> = families.iter().map(|f| f.name()).collect();
    assert_eq!(
        exported,
        NAMES.into_iter().collect(),
        "NAMES lists every family"
    );
    for name in NAMES {
        assert!(name.starts_with("tidb_operator_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }
    for family in &families {
        let counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
        assert_eq!(
            counter,
            family.name().ends_with("_total"),
            "{}",
            family.name()
        );
    }
}

#[test]
fn clones_share_one_registry() {
    let metrics = Metrics::new().unwrap();
    metrics.clone().api_request("create", "pds", "201");
    assert_eq!(metrics.api_requests("create"), 1);
}

#[test]
fn failovers_are_counted_and_failed_instances_gauged_per_group() {
    let metrics = Metrics::new().unwrap();
    metrics.failover("tikv", "started");
    metrics.failover("tikv", "started");
    metrics.failover("tikv", "completed");
    metrics.observe_failed(["db", "basic", "tikv", "tikv"], Some(1));
    let text = metrics.render();
    for line in [
        r#"tidb_operator_failovers_total{component="tikv",event="started"} 2"#,
        r#"tidb_operator_failovers_total{component="tikv",event="completed"} 1"#,
        r#"tidb_operator_failed_instances{cluster="basic",component="tikv",group="tikv",namespace="db"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    metrics.observe_failed(["db", "basic", "tikv", "tikv"], None);
    assert!(!metrics.render().contains("tidb_operator_failed_instances{"));
}
