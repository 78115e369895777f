//! TiCDC, change data capture, in the tidb-controller: TiCDCGroup and TiCDC on the same
//! component runtime as TiDB. A TiCDC instance is a capture of the cluster's TiCDC; it rolls
//! with a surge like TiDB, and before its Pod goes its capture resigns ownership and hands its
//! tables to the other captures through TiCDC's HTTP API.

pub mod build;
pub mod group;
pub mod handover;
pub mod instance;
pub mod rbac;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use operator_api::core::{TiCDC, TiCDCGroup};
use operator_api::keys;
use operator_runtime::component::{Shared, run_controllers};
use operator_runtime::reconcile::Error;
use operator_runtime::{Context, RuntimeError};
use operator_runtime::{group_reconcile, instance_reconcile};
use pd_client::StatusClient;

use crate::context::MANAGER;

/// Timeout of each call to TiCDC's API.
pub const API_TIMEOUT: Duration = Duration::from_secs(3);

/// Shared state of the TiCDC reconciles.
pub struct Ctx {
    shared: Shared,
    /// Every TiCDCGroup of the scope (the group controller's own cache).
    pub groups: Store<TiCDCGroup>,
    /// Every TiCDC instance of the scope (the instance controller's own cache).
    pub instances: Store<TiCDC>,
    /// How long a capture may take to hand over before its Pod goes anyway.
    pub drain_timeout: Duration,
    status: StatusClient,
}

operator_runtime::derefs_to_shared!(Ctx);

impl Ctx {
    /// The client of `ticdc`'s API: with the operator's client certificate when its cluster has
    /// TLS, else the plain one.
    pub fn client_of(&self, ticdc: &TiCDC) -> Result<StatusClient, Error> {
        let namespace = ticdc.namespace().unwrap_or_default();
        let client = self
            .status_client(&namespace, &ticdc.spec.cluster.name, API_TIMEOUT)
            .map_err(|e| Error::Pd {
                url: e.url,
                source: e.source,
            })?;
        Ok(client.unwrap_or_else(|| self.status.clone()))
    }
}

/// Runs the TiCDCGroup and TiCDC controllers until shutdown, beside TiDB's in this binary.
/// `ctx` has a readiness of its own, which the TiDB controllers wait for before the binary
/// reports ready.
pub async fn controllers(
    ctx: Context,
    status: StatusClient,
    drain_timeout: Duration,
) -> Result<(), RuntimeError> {
    run_controllers(
        ctx,
        keys::COMPONENT_TICDC,
        MANAGER,
        // TiCDC waits for no other group: nothing more to watch.
        |groups, _| groups,
        |instances, _| instances,
        move |shared, groups, instances| {
            Arc::new(Ctx {
                shared,
                groups,
                instances,
                drain_timeout,
                status,
            })
        },
        group_reconcile::reconcile::<group::Rules>,
        instance_reconcile::reconcile::<instance::Rules>,
        async {},
    )
    .await
}
