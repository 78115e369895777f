//! Custom resource types of the operator, wire-compatible with tidb-operator v2.
//!
//! `core` holds `core.pingcap.com/v1alpha1` (Cluster and the PD, TiKV, TiDB, TiFlash and TiCDC
//! groups and instances); `br` holds `br.pingcap.com/v1alpha1` (Backup, Restore, BackupSchedule,
//! CompactBackup). The label
//! and annotation keys, condition types and reasons every controller uses live in `keys` and
//! `conditions`, so that no controller spells them on its own.

pub mod br;
pub mod conditions;
pub mod core;
pub mod keys;
pub mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// Every CustomResourceDefinition the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        core::Cluster::crd(),
        core::PDGroup::crd(),
        core::PD::crd(),
        core::TiKVGroup::crd(),
        core::TiKV::crd(),
        core::TiDBGroup::crd(),
        core::TiDB::crd(),
        core::TiFlashGroup::crd(),
        core::TiFlash::crd(),
        core::TiCDCGroup::crd(),
        core::TiCDC::crd(),
        br::Backup::crd(),
        br::Restore::crd(),
        br::BackupSchedule::crd(),
        br::CompactBackup::crd(),
    ];
    for crd in &mut crds {
        let kind = crd.spec.names.kind.clone();
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                adjust_schema(schema, &kind);
            }
        }
    }
    crds
}

fn adjust_schema(schema: &mut JSONSchemaProps, kind: &str) {
    // JSONSchemaProps is a typed tree; going through JSON keeps the walk short. Both conversions
    // are of a value that was built from JSON a moment ago, so they cannot fail in practice; if
    // one did, the schema stays as generated (stricter, never looser).
    if let Ok(mut value) = serde_json::to_value(&*schema) {
        schema::relax_overlay_pod_spec(&mut value);
        match kind {
            "Cluster" => schema::optional_spec(&mut value),
            "PDGroup" => schema::pd_group_status_mode(&mut value),
            _ => {}
        }
        if let Ok(adjusted) = serde_json::from_value(value) {
            *schema = adjusted;
        }
    }
}
