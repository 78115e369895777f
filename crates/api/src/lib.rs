//! Custom resource types of the operator, wire-compatible with tidb-operator v2.
//!
//! `core` holds `core.pingcap.com/v1alpha1` (Cluster and the PD, TiKV and TiDB groups and
//! instances); `br` holds `br.pingcap.com/v1alpha1` (Backup, Restore, BackupSchedule). The label
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
        br::Backup::crd(),
        br::Restore::crd(),
        br::BackupSchedule::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                relax_overlay_pod_spec_schema(schema);
            }
        }
    }
    crds
}

fn relax_overlay_pod_spec_schema(schema: &mut JSONSchemaProps) {
    // JSONSchemaProps is a typed tree; going through JSON keeps the walk short. Both conversions
    // are of a value that was built from JSON a moment ago, so they cannot fail in practice; if
    // one did, the schema stays as generated (stricter, never looser).
    if let Ok(mut value) = serde_json::to_value(&*schema) {
        schema::relax_overlay_pod_spec(&mut value);
        if let Ok(relaxed) = serde_json::from_value(value) {
            *schema = relaxed;
        }
    }
}
