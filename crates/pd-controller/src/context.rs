//! What every reconcile of this binary shares: the component runtime's shared state and the
//! caches of the groups, instances and Nodes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use operator_api::core::{PD, PDGroup};
use operator_runtime::component::Shared;

/// Field manager of every write this binary makes.
pub const MANAGER: &str = "pd-controller";

/// Shared state of the reconciles.
pub struct Ctx {
    shared: Shared,
    /// Every PDGroup of the scope (the group controller's own cache).
    pub groups: Store<PDGroup>,
    /// Every PD instance of the scope (the instance controller's own cache).
    pub instances: Store<PD>,
    /// The Nodes, to tell which members run on a cordoned one.
    pub nodes: Store<Node>,
}

operator_runtime::derefs_to_shared!(Ctx);

impl Ctx {
    /// The shared state.
    pub fn new(
        shared: Shared,
        groups: Store<PDGroup>,
        instances: Store<PD>,
        nodes: Store<Node>,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared,
            groups,
            instances,
            nodes,
        })
    }
}
