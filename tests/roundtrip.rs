//! Round trip of v2-style manifests: each fixture and example deserializes into our types and
//! serializes back to the same JSON, so nothing a user writes is lost or reshaped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use operator_api::{br, core};
use scenarios::{Manifest, load_manifests};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn round_trip<T: DeserializeOwned + Serialize>(manifest: &Manifest) -> Result<Value, String> {
    let typed: T = serde_json::from_value(manifest.value.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn round_trip_by_kind(manifest: &Manifest) -> Result<Value, String> {
    match manifest.kind() {
        "Cluster" => round_trip::<core::Cluster>(manifest),
        "PDGroup" => round_trip::<core::PDGroup>(manifest),
        "PD" => round_trip::<core::PD>(manifest),
        "TiKVGroup" => round_trip::<core::TiKVGroup>(manifest),
        "TiKV" => round_trip::<core::TiKV>(manifest),
        "TiDBGroup" => round_trip::<core::TiDBGroup>(manifest),
        "TiDB" => round_trip::<core::TiDB>(manifest),
        "TiFlashGroup" => round_trip::<core::TiFlashGroup>(manifest),
        "TiFlash" => round_trip::<core::TiFlash>(manifest),
        "TiCDCGroup" => round_trip::<core::TiCDCGroup>(manifest),
        "TiCDC" => round_trip::<core::TiCDC>(manifest),
        "Backup" => round_trip::<br::Backup>(manifest),
        "Restore" => round_trip::<br::Restore>(manifest),
        "BackupSchedule" => round_trip::<br::BackupSchedule>(manifest),
        "CompactBackup" => round_trip::<br::CompactBackup>(manifest),
        // The Kubernetes objects an example carries beside the cluster (bootstrap SQL, a Secret).
        "ConfigMap" => round_trip::<k8s_openapi::api::core::v1::ConfigMap>(manifest),
        "Secret" => round_trip::<k8s_openapi::api::core::v1::Secret>(manifest),
        other => Err(format!("no type for kind {other:?}")),
    }
}

/// Paths where two JSON values differ, for a readable failure.
fn differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            for key in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
                let child = format!("{path}/{key}");
                match (l.get(key), r.get(key)) {
                    (Some(a), Some(b)) => differences(&child, a, b, out),
                    (Some(a), None) => out.push(format!("{child}: dropped (was {a})")),
                    (None, Some(b)) => out.push(format!("{child}: added ({b})")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                differences(&format!("{path}/{i}"), a, b, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} became {b}")),
        _ => {}
    }
}

#[test]
fn every_fixture_and_example_round_trips() {
    let manifests = load_manifests(&["tests/fixtures", "examples"]).unwrap();
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for manifest in &manifests {
        kinds.insert(manifest.kind().to_string());
        match round_trip_by_kind(manifest) {
            Ok(back) => {
                let mut diff = Vec::new();
                differences("", &manifest.value, &back, &mut diff);
                if !diff.is_empty() {
                    failures.push(format!(
                        "{}:\n    {}",
                        manifest.label(),
                        diff.join("\n    ")
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", manifest.label())),
        }
    }
    assert!(
        failures.is_empty(),
        "manifests that do not round-trip:\n{}",
        failures.join("\n")
    );
    for kind in [
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
    ] {
        assert!(kinds.contains(kind), "no fixture of kind {kind}");
    }
}

#[test]
fn a_dropped_field_is_caught() {
    // The harness itself must fail on a field our types do not know.
    let mut manifests = load_manifests(&["tests/fixtures/core"]).unwrap();
    let pd_group = manifests
        .iter_mut()
        .find(|m| m.kind() == "PDGroup")
        .unwrap();
    pd_group.value["spec"]["template"]["spec"]["notAField"] = Value::from(1);
    let back = round_trip_by_kind(pd_group).unwrap();
    let mut diff = Vec::new();
    differences("", &pd_group.value, &back, &mut diff);
    assert_eq!(
        diff,
        vec!["/spec/template/spec/notAField: dropped (was 1)".to_string()]
    );
}

#[test]
fn group_template_reads_into_the_shared_fields() {
    let manifests = load_manifests(&["tests/fixtures/core"]).unwrap();
    let manifest = manifests.iter().find(|m| m.kind() == "PDGroup").unwrap();
    let group: core::PDGroup = serde_json::from_value(manifest.value.clone()).unwrap();
    let template = &group.spec.template.spec;
    assert_eq!(template.common.version, "v8.5.2");
    assert_eq!(template.common.volumes[0].name, "data");
    assert_eq!(
        template.common.update_strategy.config,
        Some(core::ConfigUpdateStrategy::HotReload)
    );
    assert!(template.common.config.contains("max-replicas = 3"));
    let overlay = template.common.overlay.as_ref().unwrap();
    assert_eq!(overlay.persistent_volume_claims[0].name, "data");
    assert_eq!(
        group.spec.schedule_policies[0]
            .evenly_spread
            .as_ref()
            .unwrap()
            .topologies
            .len(),
        3
    );
    let status = group.status.unwrap();
    assert_eq!(status.group.updated_replicas, 1);
    assert!(operator_api::conditions::is_true(
        &status.common.conditions,
        "Ready"
    ));
}
