//! The generated CRDs carry what users and kubectl rely on: subresources, printer columns, short
//! names, categories, selectable fields, schema bounds and every CEL rule of the reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

const SPEC: &str = "/properties/spec";
const TEMPLATE_SPEC: &str = "/properties/spec/properties/template/properties/spec";

/// The CRDs, generated once: building the Pod spec schemas is slow in a debug build.
fn all_crds() -> &'static [CustomResourceDefinition] {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(operator_api::crds)
}

fn crd(kind: &str) -> CustomResourceDefinition {
    all_crds()
        .iter()
        .find(|c| c.spec.names.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"))
}

fn schema(kind: &str) -> Value {
    let crd = crd(kind);
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Joins a path of property names into a JSON pointer into the schema.
fn at(base: &str, properties: &[&str]) -> String {
    properties
        .iter()
        .fold(base.to_string(), |p, name| format!("{p}/properties/{name}"))
}

/// Messages of the CEL rules at a place in the schema.
fn rule_messages(schema: &Value, pointer: &str) -> BTreeSet<String> {
    let node = schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no schema at {pointer}"));
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("message").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_rules(kind: &str, pointer: &str, expected: &[&str]) {
    let found = rule_messages(&schema(kind), pointer);
    for message in expected {
        assert!(
            found.contains(*message),
            "{kind} {pointer}: rule {message:?} missing; found {found:?}"
        );
    }
}

fn printer_columns(kind: &str) -> Vec<(String, String)> {
    crd(kind).spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.json_path))
        .collect()
}

const GROUPS: [&str; 3] = ["PDGroup", "TiKVGroup", "TiDBGroup"];
const INSTANCES: [&str; 3] = ["PD", "TiKV", "TiDB"];
const CORE: [&str; 7] = [
    "Cluster",
    "PDGroup",
    "PD",
    "TiKVGroup",
    "TiKV",
    "TiDBGroup",
    "TiDB",
];

#[test]
fn names_short_names_and_categories_match_the_reference() {
    let expected = [
        ("Cluster", "clusters", vec![], vec![]),
        ("PDGroup", "pdgroups", vec!["pdg"], vec!["group"]),
        ("PD", "pds", vec![], vec!["instance"]),
        ("TiKVGroup", "tikvgroups", vec!["kvg"], vec!["group"]),
        ("TiKV", "tikvs", vec![], vec!["instance"]),
        ("TiDBGroup", "tidbgroups", vec!["dbg"], vec!["group"]),
        ("TiDB", "tidbs", vec![], vec!["instance"]),
    ];
    for (kind, plural, short, categories) in expected {
        let crd = crd(kind);
        assert_eq!(crd.spec.group, "core.pingcap.com");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            short,
            "{kind}"
        );
        assert_eq!(
            crd.spec.names.categories.clone().unwrap_or_default(),
            categories,
            "{kind}"
        );
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
    }
}

#[test]
fn every_kind_has_a_status_subresource_and_groups_scale() {
    for kind in CORE {
        let sub = crd(kind).spec.versions[0].subresources.clone().unwrap();
        assert!(sub.status.is_some(), "{kind} has no status subresource");
        if GROUPS.contains(&kind) {
            let scale = sub
                .scale
                .unwrap_or_else(|| panic!("{kind} has no scale subresource"));
            assert_eq!(scale.spec_replicas_path, ".spec.replicas");
            assert_eq!(scale.status_replicas_path, ".status.replicas");
            assert_eq!(
                scale.label_selector_path.as_deref(),
                Some(".status.selector")
            );
        } else {
            assert!(sub.scale.is_none(), "{kind} should not scale");
        }
    }
}

#[test]
fn groups_and_instances_select_by_cluster_name() {
    for kind in GROUPS.iter().chain(INSTANCES.iter()) {
        let fields = crd(kind).spec.versions[0]
            .selectable_fields
            .clone()
            .unwrap_or_default();
        let paths: Vec<_> = fields.iter().map(|f| f.json_path.as_str()).collect();
        assert_eq!(paths, vec![".spec.cluster.name"], "{kind}");
    }
}

#[test]
fn printer_columns_match_the_reference() {
    let group_columns = [
        "Cluster",
        "Desired",
        "Ready",
        "Updated",
        "UpdateRevision",
        "CurrentRevision",
        "Synced",
        "Ready",
        "Age",
    ];
    for kind in GROUPS {
        let names: Vec<_> = printer_columns(kind).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, group_columns, "{kind}");
    }
    let names = |kind| {
        printer_columns(kind)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("PD"), ["Cluster", "Leader", "Synced", "Ready", "Age"]);
    assert_eq!(
        names("TiKV"),
        ["Cluster", "StoreID", "StoreState", "Synced", "Ready", "Age"]
    );
    assert_eq!(names("TiDB"), ["Cluster", "Synced", "Ready", "Age"]);
    assert_eq!(
        names("Cluster"),
        [
            "PD",
            "TiKV",
            "TiDB",
            "TiFlash",
            "TiProxy",
            "Available",
            "Age"
        ]
    );
    let columns = printer_columns("PDGroup");
    assert!(columns.contains(&(
        "Synced".into(),
        r#".status.conditions[?(@.type=="Synced")].status"#.into()
    )));
    let columns = printer_columns("Cluster");
    assert!(columns.contains(&(
        "TiKV".into(),
        r#".status.components[?(@.kind=="TiKV")].replicas"#.into()
    )));
}

#[test]
fn every_kind_limits_its_name_length() {
    for kind in CORE {
        assert_rules(kind, "", &["name must not exceed 30 characters"]);
    }
}

#[test]
fn cluster_rules() {
    assert_rules(
        "Cluster",
        SPEC,
        &[
            "bootstrapSQL can only be set at creation, can be unset, but cannot be changed to a different value",
        ],
    );
    assert_rules(
        "Cluster",
        &at(SPEC, &["featureGates"]),
        &[
            "can only enable FeatureModification if it's not enabled",
            "cannot disable FeatureModification",
        ],
    );
    assert_rules(
        "Cluster",
        &at(SPEC, &["tlsCluster"]),
        &["field .tlsCluster.enabled is immutable"],
    );
    let schema = schema("Cluster");
    let policy = schema
        .pointer(&at(SPEC, &["upgradePolicy", "enum"])[..].replace("/properties/enum", "/enum"))
        .unwrap();
    assert_eq!(policy, &serde_json::json!(["Default", "NoConstraints"]));
    assert_eq!(
        schema.pointer(&format!("{}/minimum", at(SPEC, &["revisionHistoryLimit"]))),
        Some(&Value::from(0.0))
    );
}

#[test]
fn group_rules() {
    for kind in GROUPS {
        assert_rules(
            kind,
            &at(SPEC, &["cluster", "name"]),
            &["cluster name is immutable"],
        );
        assert_rules(
            kind,
            TEMPLATE_SPEC,
            &["overlay volumeClaims names must exist in volumes"],
        );
        assert_rules(
            kind,
            &at(TEMPLATE_SPEC, &["overlay", "pod", "metadata"]),
            &["cannot overlay pod labels starting with 'pingcap.com/'"],
        );
        let schema = schema(kind);
        let replicas = schema.pointer(&at(SPEC, &["replicas"])).unwrap();
        assert_eq!(replicas["minimum"], Value::from(0.0), "{kind} replicas");
        let required = schema.pointer(&format!("{SPEC}/required")).unwrap();
        for field in ["cluster", "replicas", "template"] {
            assert!(
                required.as_array().unwrap().contains(&Value::from(field)),
                "{kind} requires {field}"
            );
        }
        let version = schema.pointer(&at(TEMPLATE_SPEC, &["version"])).unwrap();
        assert_eq!(
            version["pattern"],
            Value::from(operator_api::schema::VERSION_PATTERN)
        );
    }
    for kind in ["PDGroup", "TiKVGroup"] {
        assert_rules(kind, TEMPLATE_SPEC, &["data volume must be configured"]);
    }
    assert!(
        !rule_messages(&schema("TiDBGroup"), TEMPLATE_SPEC)
            .contains("data volume must be configured")
    );
    assert_rules(
        "PDGroup",
        SPEC,
        &["replicas cannot be changed when bootstrapped is false"],
    );
    assert_rules(
        "PDGroup",
        &at(SPEC, &["bootstrapped"]),
        &["bootstrapped cannot be changed from true to false"],
    );
    assert_rules(
        "PDGroup",
        TEMPLATE_SPEC,
        &["pd mode can only be set when creating now"],
    );
    assert_rules(
        "PDGroup",
        &at(TEMPLATE_SPEC, &["mode"]),
        &["pd mode is immutable now, it may be supported later"],
    );
    assert_rules(
        "TiDBGroup",
        &at(TEMPLATE_SPEC, &["server", "labels"]),
        &["labels cannot contain 'host', 'region', or 'zone' keys"],
    );
    assert_rules(
        "TiDBGroup",
        &at(TEMPLATE_SPEC, &["security", "tls", "mysql"]),
        &["field .mysql.enabled is immutable"],
    );
}

#[test]
fn instance_rules() {
    for kind in INSTANCES {
        assert_rules(
            kind,
            SPEC,
            &[
                "topology can only be set when creating",
                "overlay volumeClaims names must exist in volumes",
            ],
        );
        assert_rules(kind, &at(SPEC, &["topology"]), &["topology is immutable"]);
        assert_rules(kind, &at(SPEC, &["subdomain"]), &["subdomain is immutable"]);
        assert_rules(
            kind,
            &at(SPEC, &["cluster", "name"]),
            &["cluster name is immutable"],
        );
        let schema = schema(kind);
        assert_eq!(
            schema.pointer(&format!("{}/minProperties", at(SPEC, &["topology"]))),
            Some(&Value::from(1))
        );
    }
    for kind in ["PD", "TiKV"] {
        assert_rules(kind, SPEC, &["data volume must be configured"]);
    }
}

#[test]
fn no_unsigned_or_unknown_formats() {
    // The API server warns about formats it does not know, such as uint32.
    fn walk(value: &Value, path: &str, bad: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(format)) = map.get("format")
                    && !["int32", "int64", "date-time", "byte", "double"].contains(&format.as_str())
                {
                    bad.push(format!("{path}: {format}"));
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), bad);
                }
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &format!("{path}/{i}"), bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for crd in all_crds() {
        walk(
            &serde_json::to_value(crd).unwrap(),
            &crd.spec.names.kind,
            &mut bad,
        );
    }
    assert!(bad.is_empty(), "unexpected formats: {bad:?}");
}

#[test]
fn overlay_pod_spec_needs_no_containers() {
    for kind in GROUPS {
        let schema = schema(kind);
        let pod_spec = schema
            .pointer(&at(TEMPLATE_SPEC, &["overlay", "pod", "spec"]))
            .unwrap();
        assert!(
            pod_spec.get("required").is_none(),
            "{kind}: overlay pod spec still requires fields"
        );
        assert!(
            pod_spec.pointer("/properties/containers").is_some(),
            "{kind}: overlay pod spec lost containers"
        );
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    fn walk(value: &Value, path: &str, missing: &mut Vec<String>) {
        let Some(props) = value.get("properties").and_then(Value::as_object) else {
            if let Some(items) = value.get("items") {
                walk(items, path, missing);
            }
            return;
        };
        for (name, prop) in props {
            let child = format!("{path}.{name}");
            // Kubernetes' own types (metadata, Pod and PVC specs) carry their own docs.
            if name == "metadata" && path.is_empty() {
                continue;
            }
            if prop.get("description").is_none() {
                missing.push(child.clone());
            }
            walk(prop, &child, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in all_crds() {
        let kind = crd.spec.names.kind.clone();
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        walk(&schema, &kind, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn backup_kinds_match_the_reference() {
    for (kind, plural, short) in [
        ("Backup", "backups", "bk"),
        ("Restore", "restores", "rt"),
        ("BackupSchedule", "backupschedules", "bks"),
    ] {
        let crd = crd(kind);
        assert_eq!(crd.spec.group, "br.pingcap.com");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            vec![short]
        );
        assert_eq!(
            crd.spec.names.categories.clone().unwrap_or_default(),
            vec!["br"]
        );
        let sub = crd.spec.versions[0].subresources.clone().unwrap();
        assert!(sub.status.is_some(), "{kind} has no status subresource");
        assert!(sub.scale.is_none());
    }
    let names: Vec<_> = printer_columns("Backup")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "Type",
            "Mode",
            "Status",
            "BackupPath",
            "BackupSize",
            "CommitTS",
            "LogTruncateUntil",
            "Started",
            "Completed",
            "TimeTaken",
            "Age"
        ]
    );
    let message = "Field `logStop` is the old version field, please use `logSubcommand` instead";
    assert_rules("Backup", SPEC, &[message]);
    assert_rules(
        "BackupSchedule",
        &at(SPEC, &["logBackupTemplate"]),
        &[message],
    );
}
