//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas of a
//! controller binary exactly one writes, and a replica that loses the Lease stops at once.
//!
//! The protocol is the one client-go's `leaderelection` package uses, written on the Lease API
//! with optimistic concurrency (every write carries the `resourceVersion` it read):
//! - a candidate creates the Lease when it is missing, and takes it over when it is released
//!   (no `holderIdentity`) or expired (`renewTime + leaseDurationSeconds < now`), incrementing
//!   `leaseTransitions` when the holder changes;
//! - the leader renews `renewTime` every [`LeaderConfig::renew_period`];
//! - a leader that cannot renew within [`LeaderConfig::renew_deadline`] of its last renewal, or
//!   finds another holder (or the Lease deleted), has lost: [`Leadership::lost`] resolves and the
//!   token of [`Leadership::lost_token`] is cancelled at that moment;
//! - a leader that stops releases the Lease (empty holder, `leaseDurationSeconds: 1`), so a
//!   candidate takes over within one retry period instead of waiting for expiry.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;
use crate::fence::WriteFence;

/// Timing of leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// How long a Lease holds after its last renewal, written as `leaseDurationSeconds` (whole
    /// seconds, at least one). Candidates take over an unreleased Lease only after this.
    /// Default 15 s.
    pub lease_duration: Duration,
    /// How long after its last successful renewal a leader that cannot renew gives up. Shorter
    /// than the lease duration, so the old leader has stopped before anyone may take over; the
    /// difference absorbs clock skew between nodes. Default 10 s.
    pub renew_deadline: Duration,
    /// How often the leader renews. Default 2 s.
    pub renew_period: Duration,
    /// How often a standby candidate looks at the Lease, and how soon a failed renewal is
    /// retried. Default 2 s.
    pub retry_period: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_period: Duration::from_secs(2),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderConfig {
    /// `leaseDurationSeconds` as written in the Lease.
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Checks `0 < renew_period < renew_deadline < lease_duration`, a lease duration of at least
    /// one second, and a non-zero retry period.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let whole = Duration::from_secs(self.lease_duration.as_secs());
        let problem = if whole.is_zero() {
            Some("the lease duration must be at least one second".to_string())
        } else if self.renew_period.is_zero() || self.retry_period.is_zero() {
            Some("the renew and retry periods must not be zero".to_string())
        } else if self.renew_period >= self.renew_deadline {
            Some(format!(
                "the renew period ({:?}) must be shorter than the renew deadline ({:?})",
                self.renew_period, self.renew_deadline
            ))
        } else if self.renew_deadline >= whole {
            Some(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({whole:?})",
                self.renew_deadline
            ))
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(RuntimeError::LeaderConfig(p)))
    }
}

/// The identity of this replica when none is configured: the host name (in a Pod, its name) and
/// a random suffix, so two processes on one host never share an identity.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".to_string());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{}-{:08x}", host.trim(), hasher.finish() as u32)
}

/// The Lease's holder, when it has one (an empty `holderIdentity` means released).
pub fn lease_holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// Whether the Lease has expired at `now`: `renewTime + leaseDurationSeconds < now`. A Lease
/// never renewed counts as expired; a missing duration counts as `default_duration`.
pub fn lease_expired(spec: &LeaseSpec, now: Timestamp, default_duration: Duration) -> bool {
    let Some(renewed) = &spec.renew_time else {
        return true;
    };
    let seconds = spec
        .lease_duration_seconds
        .map(|s| i64::from(s.max(0)))
        .unwrap_or_else(|| i64::try_from(default_duration.as_secs()).unwrap_or(i64::MAX));
    match renewed.0.checked_add(SignedDuration::from_secs(seconds)) {
        Ok(expiry) => expiry < now,
        // A renewal time at the end of representable time never expires.
        Err(_) => false,
    }
}

/// Whether `identity` may write itself as the holder at `now`: the Lease is released, expired,
/// or already held by `identity`.
pub fn may_acquire(
    spec: &LeaseSpec,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> bool {
    match lease_holder(spec) {
        None => true,
        Some(holder) if holder == identity => true,
        Some(_) => lease_expired(spec, now, default_duration),
    }
}

/// Whether a leader that last renewed at `last_renewed` must give up at `now`.
pub fn renew_deadline_passed(
    last_renewed: Instant,
    now: Instant,
    renew_deadline: Duration,
) -> bool {
    now.saturating_duration_since(last_renewed) >= renew_deadline
}

/// The spec `identity` writes to take the Lease (or to re-take it after a restart): holder,
/// renewal and duration; a new acquire time and one more transition when the holder changes.
pub fn acquired_spec(
    previous: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    config: &LeaderConfig,
) -> LeaseSpec {
    let previous_holder = previous.and_then(lease_holder);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    let same_holder = previous_holder == Some(identity);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(config.lease_duration_seconds()),
        acquire_time: if same_holder {
            previous
                .and_then(|p| p.acquire_time.clone())
                .or(Some(MicroTime(now)))
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(match previous {
            // A new Lease starts at zero transitions.
            None => 0,
            Some(_) if same_holder => transitions,
            Some(_) => transitions.saturating_add(1),
        }),
        ..previous.cloned().unwrap_or_default()
    }
}

/// The spec a leader writes to release the Lease: no holder, a one-second duration, the
/// transition count kept.
pub fn released_spec(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..previous.clone()
    }
}

/// Why a leader no longer leads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLoss {
    /// Another replica (or a person) wrote itself as the holder.
    #[error("the Lease is now held by {0:?}")]
    TakenBy(String),
    /// Someone cleared the holder.
    #[error("the Lease was released by someone else")]
    Released,
    /// The Lease was deleted.
    #[error("the Lease was deleted")]
    Deleted,
    /// No renewal succeeded within the renew deadline.
    #[error("no renewal succeeded within the renew deadline of {0:?}")]
    RenewDeadline(Duration),
    /// The renewal task ended unexpectedly (it panicked or was aborted).
    #[error("the Lease renewal stopped unexpectedly")]
    RenewalStopped,
}

/// The result of one attempt to take the Lease.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// This replica now holds the Lease; `sent_at` is when the winning request was sent, the
    /// moment the renew deadline counts from.
    Acquired {
        /// The Lease as written.
        lease: Box<Lease>,
        /// When the request that took it was sent.
        sent_at: Instant,
    },
    /// Another replica holds the Lease and it has not expired.
    Held {
        /// The holder's identity.
        holder: String,
    },
    /// Another candidate wrote the Lease between our read and our write.
    Contended,
}

enum Renewal {
    Renewed(Box<Lease>),
    Lost(LeaseLoss),
}

/// One replica's side of the election on one Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    config: LeaderConfig,
    fence: WriteFence,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl LeaderElector {
    /// An elector for the Lease `namespace/name` under `identity`. Fails when `config` is
    /// inconsistent.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        config: LeaderConfig,
    ) -> Result<LeaderElector, RuntimeError> {
        config.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.into(),
            config,
            fence: WriteFence::new(),
        })
    }

    /// The elector keeping `fence` open while it leads: until the renew deadline of each
    /// successful renewal, closed the moment leadership is lost or given up. Pass the fence of the
    /// client the controllers write with.
    pub fn with_fence(mut self, fence: WriteFence) -> LeaderElector {
        self.fence = fence;
        self
    }

    /// This replica's identity, as written in `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The Lease's name.
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// The Lease's namespace.
    pub fn lease_namespace(&self) -> &str {
        &self.namespace
    }

    /// The timing in use.
    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    fn lease_error(&self, action: &'static str) -> impl FnOnce(kube::Error) -> RuntimeError {
        let namespace = self.namespace.clone();
        let name = self.name.clone();
        move |source| RuntimeError::Lease {
            action,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// One attempt to take the Lease: create it when missing, take it when released, expired or
    /// already ours.
    pub async fn try_acquire(&self) -> Result<Attempt, RuntimeError> {
        let sent_at = Instant::now();
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(self.lease_error("reading"))?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(acquired_spec(None, &self.identity, now, &self.config)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(lease) => Ok(Attempt::Acquired {
                    lease: Box::new(lease),
                    sent_at,
                }),
                Err(e) if is_status(&e, 409) => Ok(Attempt::Contended),
                Err(e) => Err(self.lease_error("creating")(e)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        if !may_acquire(&spec, &self.identity, now, self.config.lease_duration) {
            return Ok(Attempt::Held {
                holder: lease_holder(&spec).unwrap_or_default().to_string(),
            });
        }
        let mut desired = current;
        desired.spec = Some(acquired_spec(
            Some(&spec),
            &self.identity,
            now,
            &self.config,
        ));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &desired)
            .await
        {
            Ok(lease) => Ok(Attempt::Acquired {
                lease: Box::new(lease),
                sent_at,
            }),
            Err(e) if is_status(&e, 409) => Ok(Attempt::Contended),
            Err(e) => Err(self.lease_error("taking")(e)),
        }
    }

    /// Waits, standing by, until this replica holds the Lease, then renews it in the background.
    /// API errors while standing by are logged and retried. Dropping the future stops waiting; if
    /// that happened just after a successful write, the Lease may name this replica, so call
    /// [`LeaderElector::release`] when stopping.
    pub async fn acquire(&self) -> Leadership {
        let mut reported: Option<String> = None;
        loop {
            match self.try_acquire().await {
                Ok(Attempt::Acquired { lease, sent_at }) => {
                    tracing::info!(
                        lease = %self.name,
                        namespace = %self.namespace,
                        identity = %self.identity,
                        "acquired the leader-election Lease; leading"
                    );
                    return self.lead(*lease, sent_at);
                }
                Ok(Attempt::Held { holder }) => {
                    if reported.as_deref() != Some(holder.as_str()) {
                        tracing::info!(
                            lease = %self.name,
                            namespace = %self.namespace,
                            identity = %self.identity,
                            leader = %holder,
                            "standing by: another replica leads"
                        );
                        reported = Some(holder);
                    }
                }
                Ok(Attempt::Contended) => {
                    tracing::debug!(lease = %self.name, "another candidate wrote the Lease first");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the leader-election Lease; retrying");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    fn lead(&self, lease: Lease, sent_at: Instant) -> Leadership {
        self.fence.open_until(sent_at + self.config.renew_deadline);
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let (loss_tx, loss_rx) = watch::channel(None);
        let task = tokio::spawn(self.clone().renew_loop(
            lease,
            sent_at,
            stop.clone(),
            lost.clone(),
            loss_tx,
        ));
        Leadership {
            elector: self.clone(),
            lost,
            stop,
            loss: loss_rx,
            task: Some(task),
        }
    }

    async fn renew_loop(
        self,
        mut lease: Lease,
        mut last_renewed: Instant,
        stop: CancellationToken,
        lost: CancellationToken,
        loss_tx: watch::Sender<Option<LeaseLoss>>,
    ) {
        let give_up = |loss: LeaseLoss| {
            // Fence and cancel first: whoever writes under this leadership stops now.
            self.fence.close();
            lost.cancel();
            tracing::error!(
                lease = %self.name,
                namespace = %self.namespace,
                identity = %self.identity,
                reason = %loss,
                "lost the leader-election Lease"
            );
            let _ = loss_tx.send(Some(loss));
        };
        let mut next = last_renewed + self.config.renew_period;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            let deadline = last_renewed + self.config.renew_deadline;
            let sent_at = Instant::now();
            if renew_deadline_passed(last_renewed, sent_at, self.config.renew_deadline) {
                // Too late to renew: another replica may take the Lease before this write lands.
                return give_up(LeaseLoss::RenewDeadline(self.config.renew_deadline));
            }
            let attempt = tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout_at(deadline, self.renew(&lease)) => r,
            };
            match attempt {
                Ok(Ok(Renewal::Renewed(renewed))) => {
                    lease = *renewed;
                    last_renewed = sent_at;
                    self.fence.open_until(sent_at + self.config.renew_deadline);
                    next = sent_at + self.config.renew_period;
                }
                Ok(Ok(Renewal::Lost(loss))) => return give_up(loss),
                Ok(Err(e)) => {
                    let now = Instant::now();
                    if renew_deadline_passed(last_renewed, now, self.config.renew_deadline) {
                        return give_up(LeaseLoss::RenewDeadline(self.config.renew_deadline));
                    }
                    tracing::warn!(
                        error = %e,
                        lease = %self.name,
                        "cannot renew the leader-election Lease; retrying"
                    );
                    // Retry, at the latest right at the deadline, which then gives up.
                    next = (now + self.config.retry_period).min(deadline);
                }
                Err(_elapsed) => {
                    return give_up(LeaseLoss::RenewDeadline(self.config.renew_deadline));
                }
            }
        }
    }

    /// One renewal: writes a new `renewTime` over the version last seen. On a conflict the Lease
    /// is read again: if it still names us, the write is repeated on the new version; otherwise
    /// leadership is lost.
    async fn renew(&self, last: &Lease) -> Result<Renewal, RuntimeError> {
        let mut current = last.clone();
        for _ in 0..3 {
            let mut desired = current.clone();
            let spec = desired.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            spec.lease_duration_seconds = Some(self.config.lease_duration_seconds());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &desired)
                .await
            {
                Ok(lease) => return Ok(Renewal::Renewed(Box::new(lease))),
                Err(e) if is_status(&e, 404) => return Ok(Renewal::Lost(LeaseLoss::Deleted)),
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(self.lease_error("renewing")(e)),
            }
            let Some(fresh) = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(self.lease_error("reading"))?
            else {
                return Ok(Renewal::Lost(LeaseLoss::Deleted));
            };
            match fresh.spec.as_ref().and_then(lease_holder) {
                Some(holder) if holder == self.identity => current = fresh,
                Some(holder) => return Ok(Renewal::Lost(LeaseLoss::TakenBy(holder.to_string()))),
                None => return Ok(Renewal::Lost(LeaseLoss::Released)),
            }
        }
        Err(RuntimeError::LeaderConfig(format!(
            "Lease {}/{} kept changing under renewal",
            self.namespace, self.name
        )))
    }

    /// Releases the Lease if it names this replica: clears the holder and sets a one-second
    /// duration, so a standby takes over at its next look. Returns whether it released anything.
    /// Harmless when this replica does not hold the Lease.
    pub async fn release(&self) -> Result<bool, RuntimeError> {
        for _ in 0..3 {
            let Some(current) = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(self.lease_error("reading"))?
            else {
                return Ok(false);
            };
            let spec = current.spec.clone().unwrap_or_default();
            if lease_holder(&spec) != Some(self.identity.as_str()) {
                return Ok(false);
            }
            let mut desired = current;
            desired.spec = Some(released_spec(&spec, Timestamp::now()));
            match self
                .api
                .replace(&self.name, &PostParams::default(), &desired)
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        lease = %self.name,
                        namespace = %self.namespace,
                        identity = %self.identity,
                        "released the leader-election Lease"
                    );
                    return Ok(true);
                }
                Err(e) if is_status(&e, 409) => continue,
                Err(e) => return Err(self.lease_error("releasing")(e)),
            }
        }
        Ok(false)
    }
}

/// Held while this replica leads. Renewal runs in a task of its own until
/// [`Leadership::release`], or until leadership is lost.
///
/// Dropping it stops renewing without releasing (as a crash would): candidates take over when
/// the Lease expires.
#[derive(Debug)]
pub struct Leadership {
    elector: LeaderElector,
    lost: CancellationToken,
    stop: CancellationToken,
    loss: watch::Receiver<Option<LeaseLoss>>,
    task: Option<JoinHandle<()>>,
}

impl Leadership {
    /// A token cancelled the moment leadership is lost (by the renewal task itself, before
    /// anything else happens). Give the controllers a child of it to stop their writes at once.
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Waits until leadership is lost and says why. Never resolves while renewal succeeds.
    pub async fn lost(&self) -> LeaseLoss {
        let mut loss = self.loss.clone();
        match loss.wait_for(Option::is_some).await {
            Ok(value) => value.clone().unwrap_or(LeaseLoss::RenewalStopped),
            Err(_) => {
                // The renewal task ended without reporting a loss: it panicked or was aborted,
                // and nobody renews any more.
                self.lost.cancel();
                LeaseLoss::RenewalStopped
            }
        }
    }

    /// Whether leadership has been lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// The elector this leadership came from.
    pub fn elector(&self) -> &LeaderElector {
        &self.elector
    }

    /// Stops renewing and releases the Lease, unless leadership was already lost. Returns whether
    /// the Lease was released.
    pub async fn release(mut self) -> Result<bool, RuntimeError> {
        // Nothing is written under this leadership once it is handed back.
        self.elector.fence.close();
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            // The task stops at its next await; a renewal in flight is abandoned (its write, if
            // it lands, carries an old resourceVersion or precedes our read below).
            task.abort();
            let _ = task.await;
        }
        if self.lost.is_cancelled() {
            return Ok(false);
        }
        self.elector.release().await
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.elector.fence.close();
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
