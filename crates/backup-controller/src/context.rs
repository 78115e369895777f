//! What every reconcile of this binary shares: the client, Events, metrics, and how Jobs and
//! clean-ups are made.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use operator_runtime::events::Events;
use operator_runtime::metrics::Metrics;

use crate::job::JobSettings;

/// Field manager and Event reporter of every write this binary makes.
pub const MANAGER: &str = "backup-controller";

/// Bounds of the clean-up of a deleted Backup's data.
#[derive(Clone, Copy, Debug)]
pub struct CleanSettings {
    /// Clean-up Jobs tried at most before the Backup is let go with a Warning.
    pub max_attempts: usize,
    /// Wait between a failed clean-up Job and the next.
    pub retry_wait: Duration,
    /// Time after the deletion request after which the Backup is let go regardless.
    pub timeout: Duration,
}

/// Shared state of the reconciles.
pub struct Ctx {
    /// Kubernetes client.
    pub client: Client,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// How Jobs are made.
    pub jobs: JobSettings,
    /// How clean-ups are bounded.
    pub clean: CleanSettings,
}

impl Ctx {
    /// The shared state.
    pub fn new(
        client: Client,
        metrics: Metrics,
        jobs: JobSettings,
        clean: CleanSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Events::new(client.clone(), MANAGER),
            client,
            metrics,
            jobs,
            clean,
        })
    }
}
