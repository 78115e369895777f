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

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CustomResourceDefinition the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        core::PDGroup::crd(),
        core::PD::crd(),
    ]
}
