//! The views on plain objects: what `list`, `status` and `watch` show of a cluster.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::render::{self, Style};

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn meta(name: &str, labels: Value) -> Value {
    json!({"name": name, "namespace": "db", "labels": labels,
           "creationTimestamp": "2026-01-01T00:00:00Z"})
}

fn labels(group: &str, component: &str, instance: Option<&str>, revision: Option<&str>) -> Value {
    let mut l = json!({"pingcap.com/cluster": "basic", "pingcap.com/group": group,
                       "pingcap.com/component": component});
    if let Some(i) = instance {
        l["pingcap.com/instance"] = json!(i);
    }
    if let Some(r) = revision {
        l["pingcap.com/instance-revision-hash"] = json!(r);
    }
    l
}

fn group_status(
    version: &str,
    replicas: i32,
    ready: i32,
    updated: i32,
    conditions: Vec<Value>,
) -> Value {
    json!({"version": version, "selector": "", "replicas": replicas, "readyReplicas": ready,
           "currentReplicas": updated, "updatedReplicas": updated, "updateRevision": "r2",
           "currentRevision": "r1", "conditions": conditions})
}

fn template(version: &str) -> Value {
    json!({"spec": {"version": version}})
}

/// A cluster in the middle of a TiKV upgrade: PD done, one TiKV store evicting its leaders.
fn snapshot() -> Snapshot {
    let ok = || {
        vec![
            condition("Ready", "True", "Ready", ""),
            condition("Synced", "True", "Synced", ""),
        ]
    };
    Snapshot {
        cluster: from(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": meta("basic", json!({})), "spec": {},
            "status": {"pd": "http://pd-pd.db:2379", "id": "7300", "conditions": [
                condition("Available", "True", "ClusterAvailable", ""),
                condition("Ready", "True", "Ready", ""),
                condition("Progressing", "True", "ClusterProgressing", "TiKVGroup tikv is rolling")]}
        })),
        pd_groups: vec![from(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PDGroup",
            "metadata": meta("pd", json!({})),
            "spec": {"cluster": {"name": "basic"}, "replicas": 1, "template": template("v8.5.3")},
            "status": group_status("v8.5.3", 1, 1, 1, ok())
        }))],
        tikv_groups: vec![from(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKVGroup",
            "metadata": meta("tikv", json!({})),
            "spec": {"cluster": {"name": "basic"}, "replicas": 2, "template": template("v8.5.3")},
            "status": group_status("v8.5.2", 2, 2, 1, vec![
                condition("Ready", "True", "Ready", ""),
                condition("Synced", "False", "NotAllInstancesUpToDate", "1 of 2 instances outdated")])
        }))],
        tidb_groups: vec![],
        pds: vec![from(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PD",
            "metadata": meta("pd-pd-aaa", labels("pd", "pd", None, Some("r2"))),
            "spec": {"cluster": {"name": "basic"}, "subdomain": "pd-pd-peer", "version": "v8.5.3"},
            "status": {"conditions": ok(), "id": "11", "isLeader": true, "updateRevision": "r2"}
        }))],
        tikvs: vec![
            from(json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKV",
                "metadata": meta("tikv-tikv-aaa", labels("tikv", "tikv", None, Some("r2"))),
                "spec": {"cluster": {"name": "basic"}, "subdomain": "tikv-tikv-peer", "version": "v8.5.3"},
                "status": {"conditions": ok(), "id": "1", "state": "Serving"}
            })),
            from(json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": "TiKV",
                "metadata": meta("tikv-tikv-bbb", labels("tikv", "tikv", None, Some("r1"))),
                "spec": {"cluster": {"name": "basic"}, "subdomain": "tikv-tikv-peer", "version": "v8.5.2"},
                "status": {"conditions": [
                    condition("Ready", "True", "Ready", ""),
                    condition("LeadersEvicted", "True", "Evicting", "12 leaders left on store 4")],
                    "id": "4", "state": "Serving"}
            })),
        ],
        tidbs: vec![],
        pods: vec![from(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": meta("tikv-tikv-aaa", labels("tikv", "tikv", Some("tikv-tikv-aaa"), None)),
            "spec": {"nodeName": "node-a-0", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "tikv", "image": "x", "imageID": "",
                           "ready": true, "restartCount": 2}]}
        }))],
        pvcs: vec![from(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": meta("data-tikv-tikv-aaa", labels("tikv", "tikv", Some("tikv-tikv-aaa"), None)),
            "spec": {"resources": {"requests": {"storage": "100Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "100Gi"}}
        }))],
        events: vec![
            from(json!({
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "db"},
                "type": "Warning", "reason": "EvictLeaderSlow", "message": "store 4 still has leaders",
                "involvedObject": {"kind": "TiKV", "name": "tikv-tikv-bbb"}, "count": 3,
                "lastTimestamp": "2026-01-01T00:05:00Z"
            })),
            from(json!({
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2", "namespace": "db"},
                "type": "Warning", "reason": "Other", "message": "of another cluster",
                "involvedObject": {"kind": "Pod", "name": "somebody-else"},
                "lastTimestamp": "2026-01-01T00:06:00Z"
            })),
        ],
        unreadable: vec![],
    }
}

#[test]
fn status_is_a_tree_of_groups_instances_pods_and_volumes() {
    let view = status_view(&snapshot());
    assert_eq!(view.pd, "http://pd-pd.db:2379");
    let names: Vec<(&str, Vec<&str>)> = view
        .groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.instances.iter().map(|i| i.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("pd", vec!["pd-pd-aaa"]),
            ("tikv", vec!["tikv-tikv-aaa", "tikv-tikv-bbb"])
        ]
    );
    let pd = &view.groups[0].instances[0];
    assert_eq!(pd.pd_leader, Some(true));
    assert_eq!(pd.id.as_deref(), Some("11"));
    let tikv = &view.groups[1];
    assert_eq!(
        (tikv.version.as_str(), tikv.target_version.as_str()),
        ("v8.5.2", "v8.5.3")
    );
    assert!(tikv.instances[0].up_to_date);
    assert!(!tikv.instances[1].up_to_date, "made from the old revision");
    assert_eq!(tikv.instances[0].store_state.as_deref(), Some("Serving"));
    let pod = tikv.instances[0].pod.as_ref().unwrap();
    assert_eq!(
        (pod.node.as_str(), pod.restarts, pod.ready),
        ("node-a-0", 2, true)
    );
    assert_eq!(tikv.instances[0].volumes[0].size, "100Gi");
    assert!(tikv.instances[1].pod.is_none());
}

#[test]
fn status_lists_every_condition_out_of_order_and_only_the_clusters_warnings() {
    let view = status_view(&snapshot());
    let problems: Vec<(&str, &str)> = view
        .problems
        .iter()
        .map(|p| (p.object.as_str(), p.condition.type_.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("Cluster/basic", "Progressing"),
            ("TiKVGroup/tikv", "Synced"),
            ("TiKV/tikv-tikv-bbb", "LeadersEvicted")
        ]
    );
    assert!(!view.healthy);
    assert_eq!(
        view.events.len(),
        1,
        "the other cluster's Event is left out"
    );
    assert_eq!(view.events[0].object, "TiKV/tikv-tikv-bbb");
    assert_eq!(view.events[0].count, 3);
}

#[test]
fn a_settled_cluster_is_healthy_and_says_so() {
    let mut snapshot = snapshot();
    snapshot.tikv_groups.clear();
    snapshot.tikvs.clear();
    if let Some(status) = snapshot.cluster.status.as_mut() {
        status.conditions.retain(|c| c.type_ != "Progressing");
    }
    let view = status_view(&snapshot);
    assert!(view.healthy, "{:?}", view.problems);
    assert!(settled(&view));
    // A spec its controller has not acted on yet (a restart just asked for) is not settled, even
    // if the counts of the older spec say so.
    snapshot.pd_groups[0].metadata.generation = Some(2);
    let view = status_view(&snapshot);
    assert!(!view.groups[0].observed);
    assert!(!settled(&view));
    let text = render::status(Style::PLAIN, &view);
    assert!(text.contains("Cluster db/basic  healthy"), "{text}");
    assert!(text.contains("No condition is out of order."), "{text}");
}

#[test]
fn the_status_text_names_the_failing_instance_with_its_message() {
    let text = render::status(Style::PLAIN, &status_view(&snapshot()));
    assert!(text.contains("NOT HEALTHY"), "{text}");
    assert!(
        text.contains(
            "TiKV/tikv-tikv-bbb LeadersEvicted=True Evicting: 12 leaders left on store 4"
        ),
        "{text}"
    );
    assert!(
        text.contains("pd-pd-aaa  v8.5.3  Ready  up-to-date  leader  member 11"),
        "{text}"
    );
    assert!(
        text.contains("Pod tikv-tikv-aaa Running on node-a-0  restarts 2"),
        "{text}"
    );
    assert!(
        text.contains("PVC data-tikv-tikv-aaa 100Gi Bound"),
        "{text}"
    );
    assert!(text.contains("Pod missing"), "{text}");
    assert!(
        text.contains("EvictLeaderSlow (x3): store 4 still has leaders"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour when not asked for");
    let coloured = render::status(Style { colour: true }, &status_view(&snapshot()));
    assert!(coloured.contains("\x1b[31mNOT HEALTHY\x1b[0m"));
}

#[test]
fn progress_says_what_the_roll_waits_for() {
    let view = status_view(&snapshot());
    assert_eq!(
        progress_line(&view.groups[0]),
        "pd/pd v8.5.3 updated 1/1 ready 1/1 settled"
    );
    assert_eq!(
        progress_line(&view.groups[1]),
        "tikv/tikv v8.5.2 -> v8.5.3 updated 1/2 ready 2/2 waiting: \
         TiKV/tikv-tikv-bbb LeadersEvicted=True (Evicting): 12 leaders left on store 4"
    );
    assert!(!settled(&view));
    let screen = render::watch_screen(Style::PLAIN, &view);
    assert!(
        screen.contains("upgrade order: PD, then TiKV, then TiDB"),
        "{screen}"
    );
    assert!(screen.contains("[##########..........] 1/2"), "{screen}");
}

#[test]
fn list_rows_sum_components_and_keep_other_clusters_groups_out() {
    let s = snapshot();
    let mut other: PDGroup = s.pd_groups[0].clone();
    other.spec.cluster.name = "other".into();
    other.spec.replicas = 5;
    let pd = vec![s.pd_groups[0].clone(), other];
    let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    let row = cluster_row(&s.cluster, &pd, &s.tikv_groups, &[], &[], &[], now);
    assert_eq!(row.versions, ["v8.5.2", "v8.5.3"]);
    let counts: Vec<(&str, i32, i32)> = row
        .components
        .iter()
        .map(|c| (c.component.as_str(), c.ready, c.desired))
        .collect();
    assert_eq!(counts, [("pd", 1, 1), ("tikv", 2, 2)]);
    assert_eq!(
        (row.available.as_str(), row.progressing.as_str()),
        ("True", "True")
    );
    assert_eq!(row.age_seconds, 3600);
    let text = render::list(&[row], true);
    assert_eq!(
        text,
        "NAMESPACE  NAME   VERSION        COMPONENTS       AVAILABLE  READY  PROGRESSING  AGE\n\
         db         basic  v8.5.2,v8.5.3  pd 1/1 tikv 2/2  True       True   True         60m\n"
    );
}

#[test]
fn json_output_has_camel_case_fields_a_script_can_read() {
    let value = serde_json::to_value(status_view(&snapshot())).unwrap();
    assert_eq!(value["groups"][1]["instances"][1]["storeState"], "Serving");
    assert_eq!(value["groups"][0]["instances"][0]["pdLeader"], true);
    assert_eq!(value["problems"][2]["type"], "LeadersEvicted");
    assert_eq!(value["healthy"], false);
}

#[test]
fn upgrade_plans_every_group_and_restart_finds_groups_before_instances() {
    let s = snapshot();
    let plan = crate::ops::upgrade_plan(&s, "v8.5.3");
    let text: Vec<String> = plan.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "PDGroup/pd: spec.template.spec.version already v8.5.3 (unchanged)",
            "TiKVGroup/tikv: spec.template.spec.version already v8.5.3 (unchanged)"
        ]
    );
    let plan = crate::ops::upgrade_plan(&s, "v8.5.4");
    assert!(plan.iter().all(|c| c.changed));
    assert_eq!(
        crate::ops::restart_target(&s, "tikv"),
        Some(crate::ops::RestartTarget::Group {
            kind: "TiKVGroup",
            previous: String::new()
        })
    );
    assert_eq!(
        crate::ops::restart_target(&s, "tikv-tikv-bbb"),
        Some(crate::ops::RestartTarget::Instance {
            kind: "TiKV",
            previous: String::new()
        })
    );
    assert_eq!(crate::ops::restart_target(&s, "nope"), None);
    assert_eq!(
        crate::ops::restart_group_patch("t"),
        json!({"spec": {"template": {"metadata": {"annotations": {"pingcap.com/restartedAt": "t"}}}}})
    );
}

#[test]
fn diagnose_redacts_every_secret_value_and_keeps_the_keys() {
    let secret: k8s_openapi::api::core::v1::Secret = from(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "basic-cluster-client-secret", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"tls.key\":\"c2VjcmV0\"}}"}},
        "data": {"tls.key": "c2VjcmV0"}, "stringData": {"password": "hunter2"}
    }));
    let redacted = crate::diagnose::redact(&secret);
    let text = serde_yaml::to_string(&redacted).unwrap();
    assert!(
        !text.contains("c2VjcmV0") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("tls.key"), "{text}");
    assert!(crate::diagnose::secret_of_cluster(&secret, "basic", &[]));
    assert!(!crate::diagnose::secret_of_cluster(
        &secret,
        "other",
        &["tidb".into()]
    ));
}

#[test]
fn pds_own_view_is_read_through_the_service_proxy_and_shown_with_counts() {
    assert_eq!(
        pd_proxy_path("db", "http://basic-pd.db:2379").as_deref(),
        Some("/api/v1/namespaces/db/services/basic-pd:2379/proxy")
    );
    assert_eq!(
        pd_proxy_path("db", "https://basic-pd.db.svc.cluster.local:2379/").as_deref(),
        Some("/api/v1/namespaces/db/services/https:basic-pd:2379/proxy")
    );
    assert_eq!(pd_proxy_path("db", ""), None);
    // PD's answers, in the shapes of GET /pd/api/v1/members and /pd/api/v1/stores.
    let members: pd_client::MembersInfo = from(json!({
        "members": [{"name": "pd-a", "member_id": 1}, {"name": "pd-b", "member_id": 2}],
        "leader": {"name": "pd-b", "member_id": 2}
    }));
    let stores: pd_client::StoresInfo = from(json!({"count": 2, "stores": [
        {"store": {"id": 5, "address": "tikv-b:20160", "state_name": "Down"},
         "status": {"leader_count": 0, "region_count": 12}},
        {"store": {"id": 1, "address": "tikv-a:20160", "state_name": "Up"},
         "status": {"leader_count": 12, "region_count": 12}}
    ]}));
    let pd = pd_view(&members, &stores);
    assert_eq!(pd.leader, "pd-b");
    assert_eq!(pd.stores.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 5]);
    let mut view = status_view(&snapshot());
    view.pd_view = Some(pd);
    let text = render::status(Style::PLAIN, &view);
    assert!(text.contains("leader: pd-b  members: pd-a, pd-b"), "{text}");
    assert!(
        text.contains("store 5 tikv-b:20160 Down  leaders 0  regions 12"),
        "{text}"
    );
    view.pd_view = None;
    view.pd_view_error = Some("503".into());
    assert!(render::status(Style::PLAIN, &view).contains("PD's own view: not readable: 503"));
}

#[test]
fn list_rows_count_tiflash_and_ticdc_groups_too() {
    let s = snapshot();
    // A TiKV group's fields read as a TiFlash and a TiCDC group's: the same cluster, replicas
    // and status.
    let as_json = serde_json::to_value(&s.tikv_groups[0]).unwrap();
    let tiflash: operator_api::core::TiFlashGroup =
        serde_json::from_value(as_json.clone()).unwrap();
    let ticdc: operator_api::core::TiCDCGroup = serde_json::from_value(as_json).unwrap();
    let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    let row = cluster_row(
        &s.cluster,
        &s.pd_groups,
        &s.tikv_groups,
        &[],
        std::slice::from_ref(&tiflash),
        std::slice::from_ref(&ticdc),
        now,
    );
    let components: Vec<&str> = row
        .components
        .iter()
        .map(|c| c.component.as_str())
        .collect();
    assert_eq!(components, ["pd", "tikv", "tiflash", "ticdc"]);
}
