//! The generated CRDs carry what users and kubectl rely on: subresources, printer columns, short
//! names, categories, selectable fields, schema bounds and every CEL rule of the reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
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

const GROUPS: [&str; 5] = [
    "PDGroup",
    "TiKVGroup",
    "TiDBGroup",
    "TiFlashGroup",
    "TiCDCGroup",
];
const INSTANCES: [&str; 5] = ["PD", "TiKV", "TiDB", "TiFlash", "TiCDC"];
const CORE: [&str; 11] = [
    "Cluster",
    "PDGroup",
    "PD",
    "TiKVGroup",
    "TiKV",
    "TiDBGroup",
    "TiDB",
    "TiFlashGroup",
    "TiFlash",
    "TiCDCGroup",
    "TiCDC",
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
        ("TiFlashGroup", "tiflashgroups", vec!["fg"], vec!["group"]),
        ("TiFlash", "tiflashes", vec![], vec!["instance"]),
        ("TiCDCGroup", "ticdcgroups", vec!["cg"], vec!["group"]),
        ("TiCDC", "ticdcs", vec![], vec!["instance"]),
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
fn every_kind_has_a_status_subresource_and_groups_and_instances_scale() {
    for kind in CORE {
        let sub = crd(kind).spec.versions[0].subresources.clone().unwrap();
        assert!(sub.status.is_some(), "{kind} has no status subresource");
        if kind == "Cluster" {
            assert!(sub.scale.is_none(), "{kind} should not scale");
            continue;
        }
        let scale = sub
            .scale
            .unwrap_or_else(|| panic!("{kind} has no scale subresource"));
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        // Groups select their instances; an instance (always one replica, for
        // PodDisruptionBudgets) has no selector, as in the reference.
        let selector = GROUPS.contains(&kind).then_some(".status.selector");
        assert_eq!(scale.label_selector_path.as_deref(), selector, "{kind}");
    }
    for kind in INSTANCES {
        let replicas = schema(kind)
            .pointer(&at(SPEC, &["replicas"]))
            .cloned()
            .unwrap_or_else(|| panic!("{kind} has no spec.replicas"));
        assert_eq!(replicas["minimum"], Value::from(1.0), "{kind}");
        assert_eq!(replicas["maximum"], Value::from(1.0), "{kind}");
        assert_eq!(replicas["default"], Value::from(1), "{kind}");
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
        // The reference's TiCDCGroup has no Synced column.
        let expected: Vec<_> = group_columns
            .iter()
            .filter(|c| kind != "TiCDCGroup" || **c != "Synced")
            .copied()
            .collect();
        assert_eq!(names, expected, "{kind}");
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
        [
            "Cluster",
            "StoreID",
            "StoreState",
            "Offline",
            "Synced",
            "Ready",
            "Age"
        ]
    );
    assert_eq!(names("TiFlash"), names("TiKV"));
    assert_eq!(names("TiDB"), ["Cluster", "Synced", "Ready", "Age"]);
    assert_eq!(names("TiCDC"), ["Cluster", "Synced", "Ready", "Age"]);
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
fn every_kind_limits_its_name_length_as_the_reference_does() {
    let limits = [
        ("Cluster", 37),
        ("PDGroup", 40),
        ("TiKVGroup", 40),
        ("TiDBGroup", 40),
        ("TiFlashGroup", 40),
        ("TiCDCGroup", 40),
        ("PD", 47),
        ("TiKV", 47),
        ("TiDB", 47),
        ("TiFlash", 47),
        ("TiCDC", 47),
    ];
    for (kind, limit) in limits {
        let rules = rule_messages(&schema(kind), "");
        assert_eq!(
            rules,
            BTreeSet::from([format!("name must not exceed {limit} characters")]),
            "{kind}"
        );
    }
}

/// Every CEL rule of a kind by where it sits (a dotted path below the schema root, `[]` for list
/// items), as the reference places them: a rule on another field fires in other cases (a rule on
/// `tlsCluster` does not see the field added or removed).
fn rules_by_path(kind: &str) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(node: &Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let messages = rules
                .iter()
                .map(|r| r["message"].as_str().unwrap().to_string())
                .collect();
            out.insert(path.to_string(), messages);
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                walk(child, &format!("{path}.{name}"), out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&schema(kind), "", &mut out);
    out
}

/// The rule messages expected at each path of a kind.
type Rules = Vec<(&'static str, &'static [&'static str])>;

fn expected_rules(entries: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    entries
        .iter()
        .map(|(path, messages)| {
            (
                path.to_string(),
                messages.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect()
}

const OVERLAY_CLAIMS: &str = "overlay volumeClaims names must exist in volumes";
const DATA_VOLUME: &str = "data volume must be configured";
const VAC: &str = "VolumeAttributesClassName cannot be changed from non-nil to nil";
/// Ours, not the reference's CRD rules (it ships a ValidatingAdmissionPolicy with both): a
/// volume cannot shrink, and its size must be above 0 (the policy's message).
const NO_SHRINK: &str =
    "storage cannot be made smaller: a volume cannot shrink (grow it, or keep its size)";
const ABOVE_ZERO: &str = "Volume storage must be greater than 0 for all volumes";
const POD_LABELS: &str = "cannot overlay pod labels starting with 'pingcap.com/'";
const CLUSTER_NAME: &str = "cluster name is immutable";
const SERVER_LABELS: &str = "labels cannot contain 'host', 'region', or 'zone' keys";
const PLACEMENT_LABELS: &str = "labels cannot contain keys with 'k/' or '$k/' prefix";

#[test]
fn cel_rules_sit_where_the_reference_has_them() {
    let cases: Vec<(&str, Rules)> = vec![
        (
            "Cluster",
            vec![
                ("", &["name must not exceed 37 characters"]),
                (
                    ".spec",
                    &[
                        "bootstrapSQL can only be set at creation, can be unset, but cannot be changed to a different value",
                        // Ours, not the reference's: the names are fixed once PD holds them
                        // (docs/dns.md).
                        "dns.mode and dns.clusterDomain cannot change once the cluster exists: PD keeps its members' peer URLs in its data",
                        // Ours: the PD cluster a Cluster joined is fixed (docs/multi-cluster.md).
                        "join cannot be set, removed or changed once the cluster exists: its PD members joined that PD cluster",
                        "tlsCluster is immutable",
                    ],
                ),
                (
                    ".spec.join.pdURLs",
                    &[
                        "each of join.pdURLs is a PD client URL: http(s)://host:port, without a path",
                    ],
                ),
                (
                    ".spec.featureGates",
                    &[
                        "can only enable FeatureModification if it's not enabled",
                        "cannot disable FeatureModification",
                    ],
                ),
            ],
        ),
        (
            "PDGroup",
            vec![
                ("", &["name must not exceed 40 characters"]),
                (
                    ".spec",
                    &["replicas cannot be changed when bootstrapped is false"],
                ),
                (
                    ".spec.bootstrapped",
                    &["bootstrapped cannot be changed from true to false"],
                ),
                (".spec.cluster.name", &[CLUSTER_NAME]),
                (".spec.template.spec", &[OVERLAY_CLAIMS, DATA_VOLUME]),
                (".spec.template.spec.overlay.pod.metadata", &[POD_LABELS]),
                (
                    ".spec.template.spec.volumes[]",
                    &[VAC, NO_SHRINK, ABOVE_ZERO],
                ),
            ],
        ),
        (
            "TiKVGroup",
            vec![
                ("", &["name must not exceed 40 characters"]),
                (".spec.cluster.name", &[CLUSTER_NAME]),
                (".spec.template.spec", &[OVERLAY_CLAIMS, DATA_VOLUME]),
                (".spec.template.spec.overlay.pod.metadata", &[POD_LABELS]),
                (
                    ".spec.template.spec.server.labels",
                    &[SERVER_LABELS, PLACEMENT_LABELS],
                ),
                (
                    ".spec.template.spec.volumes[]",
                    &[VAC, NO_SHRINK, ABOVE_ZERO],
                ),
            ],
        ),
        (
            "TiDBGroup",
            vec![
                ("", &["name must not exceed 40 characters"]),
                (".spec.cluster.name", &[CLUSTER_NAME]),
                (".spec.template.spec", &[OVERLAY_CLAIMS]),
                (".spec.template.spec.overlay.pod.metadata", &[POD_LABELS]),
                (
                    ".spec.template.spec.security.tls.mysql",
                    &["field .mysql.enabled is immutable"],
                ),
                (".spec.template.spec.server.labels", &[SERVER_LABELS]),
                (
                    ".spec.template.spec.volumes[]",
                    &[VAC, NO_SHRINK, ABOVE_ZERO],
                ),
            ],
        ),
        (
            "TiFlashGroup",
            vec![
                ("", &["name must not exceed 40 characters"]),
                (".spec.cluster.name", &[CLUSTER_NAME]),
                (".spec.template.spec", &[OVERLAY_CLAIMS, DATA_VOLUME]),
                (".spec.template.spec.overlay.pod.metadata", &[POD_LABELS]),
                (
                    ".spec.template.spec.server.labels",
                    &[SERVER_LABELS, PLACEMENT_LABELS],
                ),
                (
                    ".spec.template.spec.volumes[]",
                    &[VAC, NO_SHRINK, ABOVE_ZERO],
                ),
            ],
        ),
        (
            "TiCDCGroup",
            vec![
                ("", &["name must not exceed 40 characters"]),
                (".spec.cluster.name", &[CLUSTER_NAME]),
                (".spec.template.spec", &[OVERLAY_CLAIMS]),
                (".spec.template.spec.overlay.pod.metadata", &[POD_LABELS]),
                (
                    ".spec.template.spec.volumes[]",
                    &[VAC, NO_SHRINK, ABOVE_ZERO],
                ),
            ],
        ),
    ];
    let instance = |kind: &str, spec: &'static [&'static str], extra: Rules| {
        let mut entries: Rules = vec![
            ("", &["name must not exceed 47 characters"]),
            (".spec", spec),
            (".spec.cluster.name", &[CLUSTER_NAME]),
            (".spec.overlay.pod.metadata", &[POD_LABELS]),
            (".spec.subdomain", &["subdomain is immutable"]),
            (".spec.topology", &["topology is immutable"]),
            (".spec.volumes[]", &[VAC, NO_SHRINK, ABOVE_ZERO]),
        ];
        entries.extend(extra);
        (kind.to_string(), entries)
    };
    let instances = vec![
        instance(
            "PD",
            &[
                OVERLAY_CLAIMS,
                "topology can only be set when creating",
                DATA_VOLUME,
            ],
            vec![],
        ),
        instance(
            "TiKV",
            &[
                OVERLAY_CLAIMS,
                "topology can only be set when creating",
                DATA_VOLUME,
            ],
            vec![(".spec.server.labels", &[SERVER_LABELS, PLACEMENT_LABELS])],
        ),
        instance(
            "TiDB",
            &[
                OVERLAY_CLAIMS,
                "topology can only be set when creating",
                "keyspace cannot be set if mode is StandBy",
            ],
            vec![
                (
                    ".spec.security.tls.mysql",
                    &["field .mysql.enabled is immutable"],
                ),
                (".spec.server.labels", &[SERVER_LABELS]),
            ],
        ),
        instance(
            "TiFlash",
            &[
                OVERLAY_CLAIMS,
                "topology can only be set when creating",
                DATA_VOLUME,
            ],
            vec![(".spec.server.labels", &[SERVER_LABELS, PLACEMENT_LABELS])],
        ),
        instance(
            "TiCDC",
            &[OVERLAY_CLAIMS, "topology can only be set when creating"],
            vec![],
        ),
    ];
    let mut failures = Vec::new();
    let all = cases
        .into_iter()
        .map(|(k, e)| (k.to_string(), e))
        .chain(instances);
    for (kind, entries) in all {
        let found = rules_by_path(&kind);
        let want = expected_rules(&entries);
        if found != want {
            failures.push(format!("{kind}:\n  found {found:#?}\n  want {want:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bounds_defaults_and_required_fields_match_the_reference() {
    for kind in GROUPS {
        let schema = schema(kind);
        let min_ready = schema
            .pointer(&at(SPEC, &["minReadySeconds"]))
            .unwrap_or_else(|| panic!("{kind} has no minReadySeconds"));
        assert_eq!(min_ready["minimum"], Value::from(0.0), "{kind}");
        assert_eq!(min_ready["format"], Value::from("int64"), "{kind}");
        let storage = schema
            .pointer(&at(TEMPLATE_SPEC, &["volumes"]))
            .and_then(|v| v.pointer("/items/properties/storage"))
            .unwrap();
        assert_eq!(
            storage["pattern"],
            Value::from(operator_api::schema::QUANTITY_PATTERN),
            "{kind}"
        );
        // A mount without a type is a custom mount.
        let mount = schema
            .pointer(&at(TEMPLATE_SPEC, &["volumes"]))
            .and_then(|v| v.pointer("/items/properties/mounts/items"))
            .unwrap();
        assert!(mount.get("required").is_none(), "{kind}: {mount}");
    }
    for kind in ["PDGroup", "TiKVGroup", "TiFlashGroup"] {
        let required = schema(kind)
            .pointer(&format!("{TEMPLATE_SPEC}/required"))
            .cloned()
            .unwrap();
        assert_eq!(
            required,
            serde_json::json!(["version", "volumes"]),
            "{kind}"
        );
    }
    let ticdc = schema("TiCDCGroup");
    assert_eq!(
        ticdc.pointer(&format!("{TEMPLATE_SPEC}/required")),
        Some(&serde_json::json!(["version"]))
    );
    assert_eq!(
        schema("TiCDC").pointer("/properties/status/required"),
        Some(&serde_json::json!(["id", "isOwner"]))
    );
    assert_eq!(
        schema("TiFlashGroup").pointer(&format!("{}/maxItems", at(TEMPLATE_SPEC, &["volumes"]))),
        Some(&Value::from(256))
    );
    let tidb = schema("TiDBGroup");
    assert_eq!(
        tidb.pointer(&format!("{}/minimum", at(SPEC, &["maxSurge"]))),
        Some(&Value::from(1.0))
    );
    assert_eq!(
        tidb.pointer(&at(TEMPLATE_SPEC, &["mode"])).unwrap()["default"],
        Value::from("Normal")
    );
    let mysql = tidb
        .pointer(&at(TEMPLATE_SPEC, &["security", "tls", "mysql"]))
        .unwrap();
    assert_eq!(mysql["required"], serde_json::json!(["enabled"]));
    assert!(mysql.pointer("/properties/enabled/default").is_none());
    let cluster = schema("Cluster");
    let dns = cluster.pointer(&at(SPEC, &["dns"])).unwrap();
    assert_eq!(dns["required"], serde_json::json!(["mode"]));
    assert_eq!(
        dns.pointer("/properties/mode/enum"),
        Some(&serde_json::json!(["FQDN", "InCluster"]))
    );
    assert_eq!(
        dns.pointer("/properties/mode/default"),
        Some(&Value::from("InCluster"))
    );
    assert_eq!(
        dns.pointer("/properties/clusterDomain/default"),
        Some(&Value::from("cluster.local"))
    );
    // A Cluster may leave out its spec.
    assert!(cluster.get("required").is_none(), "{cluster}");
    let features = cluster
        .pointer(&at(SPEC, &["featureGates"]))
        .and_then(|f| f.pointer("/items/properties/name/enum"))
        .unwrap();
    assert_eq!(features.as_array().unwrap().len(), 15, "{features}");
    assert!(
        schema("PDGroup")
            .pointer(&at("/properties/status", &["mode"]))
            .is_some()
    );
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
    assert_rules("Cluster", SPEC, &["tlsCluster is immutable"]);
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
    for kind in ["PDGroup", "TiKVGroup", "TiFlashGroup"] {
        assert_rules(kind, TEMPLATE_SPEC, &["data volume must be configured"]);
    }
    for kind in ["TiDBGroup", "TiCDCGroup"] {
        assert!(
            !rule_messages(&schema(kind), TEMPLATE_SPEC).contains("data volume must be configured"),
            "{kind}"
        );
    }
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
    for kind in ["PD", "TiKV", "TiFlash"] {
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
        ("CompactBackup", "compactbackups", "cpbk"),
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
