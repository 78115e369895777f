//! What every group and instance reconcile of the component controllers shares: the reconcile
//! error (with a category for the error metric) and the timing, the status writes and the
//! answer to a paused Cluster, the first steps of a group or instance reconcile and the end of a
//! group's.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use operator_api::conditions::{HasConditions, reasons};
use operator_api::core::{Cluster, ComponentGroupStatus, OfCluster};
use operator_api::keys;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::ApplyError;
use crate::build::BuildError;
use crate::cache;
use crate::component::{PdClientError, Shared};
use crate::group;
use crate::metrics::Metrics;

/// Why a reconcile of a group or an instance failed; the controller logs it and retries with
/// backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client's error (boxed: it is large).
        source: Box<kube::Error>,
    },
    /// Applying an owned object failed.
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// The objects could not be built from the spec.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// PD's API failed.
    #[error("PD at {url}: {source}")]
    Pd {
        /// Which PD.
        url: String,
        /// The client's error.
        source: pd_client::Error,
    },
    /// A component's status port failed (a TiKV's online config change, say).
    #[error("status port at {url}: {source}")]
    Status {
        /// Which status port.
        url: String,
        /// The client's error.
        source: pd_client::Error,
    },
    /// An object lacks a field the reconcile needs.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }

    /// Wraps a PD error with the PD it came from.
    pub fn pd(url: &str) -> impl FnOnce(pd_client::Error) -> Error + '_ {
        move |source| Error::Pd {
            url: url.to_string(),
            source,
        }
    }
}

impl From<PdClientError> for Error {
    fn from(error: PdClientError) -> Self {
        Error::Pd {
            url: error.url,
            source: error.source,
        }
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Error::Apply(Box::new(error))
    }
}

/// The bounds of every kind whose status a controller writes (groups and instances).
pub trait StatusKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + HasStatus<Status = Self::StatusOf>
    + HasConditions
    + Clone
    + Debug
    + DeserializeOwned
{
    /// Its status type.
    type StatusOf: Clone + Default + PartialEq + Serialize;
}

impl<K, S> StatusKind for K
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + HasStatus<Status = S>
        + HasConditions
        + Clone
        + Debug
        + DeserializeOwned,
    S: Clone + Default + PartialEq + Serialize,
{
    type StatusOf = S;
}

fn writing<K: StatusKind>() -> String {
    format!("writing the {} status", K::kind(&()))
}

/// Writes the object's status unless it is what the object has (and not from a stale copy).
pub async fn write_status<K: StatusKind>(
    shared: &Shared,
    object: &K,
    status: &K::StatusOf,
) -> Result<(), Error> {
    group::write_own_status(&shared.client, object, status)
        .await
        .map_err(Error::kube(writing::<K>()))?;
    Ok(())
}

/// Records why a group cannot proceed (both conditions false with the same reason), with a
/// Warning Event when that is news.
pub async fn write_blocked<K: StatusKind>(
    shared: &Shared,
    group: &K,
    reason: &str,
    message: String,
) -> Result<(), Error>
where
    K::StatusOf: Clone,
{
    group::write_blocked(&shared.client, &shared.events, group, reason, message)
        .await
        .map_err(Error::kube(writing::<K>()))?;
    Ok(())
}

/// An error with a short category for `tidb_operator_reconcile_errors_total{error}`.
pub trait Categorized {
    /// The category.
    fn category(&self) -> &'static str;
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::Apply(_) => "apply",
            Error::Build(_) => "build",
            Error::Pd { .. } => "pd_api",
            Error::Status { .. } => "status_api",
            Error::Invalid(_) => "invalid",
        }
    }
}

/// Runs one reconcile of `controller` (a metric label: `pd`, `tikvgroup`), timing it and
/// counting its error by category.
pub async fn measured<E: Categorized>(
    metrics: &Metrics,
    controller: &str,
    run: impl Future<Output = Result<Action, E>>,
) -> Result<Action, E> {
    let timer = metrics.reconcile_started(controller);
    let result = run.await;
    match &result {
        Ok(_) => timer.finish(Ok(())),
        Err(e) => timer.finish_error(e.category()),
    }
    result
}

/// How long a reconcile that waits on its Cluster (paused, compute suspended) waits before it
/// looks again on its own. The Cluster watch that wakes it and the cache it reads the Cluster
/// from are separate watches: when the watch runs ahead, the reconcile it starts still reads the
/// old Cluster, and without a look of its own it would wait for a change that already came.
pub const CLUSTER_RECHECK: Duration = Duration::from_secs(10);

/// The answer of a reconcile that waits for its Cluster to change: see [`CLUSTER_RECHECK`].
pub fn wait_for_cluster() -> Action {
    Action::requeue(CLUSTER_RECHECK)
}

/// A paused Cluster: `Synced=False`, reason `Paused`, on `object` (written only when it does not
/// say so yet: a paused Cluster gets no writes at all), and a wait for the Cluster to change.
pub async fn paused<K: StatusKind>(
    shared: &Shared,
    object: &K,
    cluster: &str,
) -> Result<Action, Error>
where
    K::StatusOf: Clone,
{
    // Once it says so, nothing more is written, not even a newer observedGeneration.
    if !group::synced_reason_is(object, reasons::PAUSED) {
        write_status(shared, object, &group::status_paused(object, cluster)).await?;
    }
    Ok(wait_for_cluster())
}

/// How a group's reconcile begins, the same for every component.
pub enum GroupStart {
    /// Go on with the group's rules: its namespace and its Cluster.
    Go {
        /// The group's namespace.
        namespace: String,
        /// Its Cluster, from the cache.
        cluster: Box<Cluster>,
    },
    /// Nothing more to do now; answer this.
    Done(Action),
}

/// The first steps of every group's reconcile: a group being deleted is left to its owner
/// references and finalizers; a group whose Cluster does not exist says so (`ClusterNotFound`,
/// with an Event) and looks again in 30 s; a paused Cluster's group says so and waits.
pub async fn group_start<G>(shared: &Shared, group: &G) -> Result<GroupStart, Error>
where
    G: StatusKind + OfCluster,
    G::StatusOf: Clone,
{
    if group.meta().deletion_timestamp.is_some() {
        return Ok(GroupStart::Done(Action::await_change()));
    }
    let namespace = group
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::Invalid(format!("{} has no namespace", G::kind(&()))))?;
    let cluster_name = group.cluster_name();
    let Some(cluster) = cache::get(&shared.caches.clusters, &namespace, cluster_name) else {
        let message = format!("Cluster {cluster_name} does not exist in namespace {namespace}");
        write_blocked(shared, group, reasons::CLUSTER_NOT_FOUND, message).await?;
        return Ok(GroupStart::Done(Action::requeue(Duration::from_secs(30))));
    };
    if cluster.spec.paused {
        return paused(shared, group, cluster_name)
            .await
            .map(GroupStart::Done);
    }
    refresh_client_tls(shared, &cluster).await?;
    Ok(GroupStart::Go {
        namespace,
        cluster: Box::new(cluster),
    })
}

/// When a group looks again after a reconcile: soon after it acted (to see the result), in a
/// while when it waits or is blocked, and every 30 s when all is done. Its watches wake it on
/// every change of its instances, but the watch that wakes it and the cache it reads the
/// instances from are separate: when the watch runs ahead, the group sees the old instance, and
/// only a look of its own catches up. A look reads caches only; it sends no request unless
/// something changed.
///
/// A wait that ends by itself (`recheck`: an instance reaches its group's `minReadySeconds`)
/// sees no watch event when it ends, so the group looks again then if that is sooner.
pub fn group_requeue(acted: bool, waiting: bool, recheck: Option<Duration>) -> Action {
    let then = if acted {
        Duration::from_secs(2)
    } else if waiting {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(30)
    };
    Action::requeue(recheck.map_or(then, |r| r.min(then)))
}

/// The end of every group's reconcile: `status` with `Suspended` from its instances
/// (see [`group::with_suspended`]) written, and when to look again ([`group_requeue`]).
pub async fn finish_group<G, I>(
    shared: &Shared,
    group: &G,
    status: ComponentGroupStatus,
    suspending: bool,
    instances: &[I],
    (acted, waiting, recheck): (bool, bool, Option<Duration>),
) -> Result<Action, Error>
where
    G: StatusKind<StatusOf = ComponentGroupStatus>,
    I: HasConditions,
{
    let conditions: Vec<_> = instances.iter().map(|i| i.conditions()).collect();
    let status = group::with_suspended(status, suspending, &conditions);
    write_status(shared, group, &status).await?;
    Ok(group_requeue(acted, waiting, recheck))
}

/// How an instance's reconcile begins, the same for every component.
pub enum InstanceStart {
    /// Go on with the component's rules.
    Go(Started),
    /// The Cluster is paused: answer this.
    Done(Action),
}

/// What the first steps of an instance's reconcile found.
pub struct Started {
    /// The instance's namespace.
    pub namespace: String,
    /// Its group (the `pingcap.com/group` label).
    pub group: String,
    /// Its Cluster from the cache; `None` when it does not exist.
    pub cluster: Option<Box<Cluster>>,
}

impl Started {
    /// Whether the instance leaves on its own (a scale-in, a deleted instance) rather than with
    /// its `group` or Cluster, which both still exist and are not being deleted.
    pub fn leaves_alone<G: Resource>(&self, group: Option<&G>) -> bool {
        group.is_some_and(|g| g.meta().deletion_timestamp.is_none())
            && self
                .cluster
                .as_ref()
                .is_some_and(|c| c.metadata.deletion_timestamp.is_none())
    }
}

/// The first steps of every instance's reconcile: its namespace, group and Cluster, and a paused
/// Cluster's answer ([`paused`]).
pub async fn instance_start<K>(shared: &Shared, instance: &K) -> Result<InstanceStart, Error>
where
    K: StatusKind + OfCluster,
    K::StatusOf: Clone,
{
    let namespace = instance
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::Invalid(format!("{} has no namespace", K::kind(&()))))?;
    let group = instance
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::LABEL_GROUP))
        .cloned()
        .unwrap_or_default();
    let cluster_name = instance.cluster_name();
    let cluster = cache::get(&shared.caches.clusters, &namespace, cluster_name);
    if cluster.as_ref().is_some_and(|c| c.spec.paused) {
        return paused(shared, instance, cluster_name)
            .await
            .map(InstanceStart::Done);
    }
    if let Some(cluster) = &cluster {
        refresh_client_tls(shared, cluster).await?;
    }
    Ok(InstanceStart::Go(Started {
        namespace,
        group,
        cluster: cluster.map(Box::new),
    }))
}

/// Reads the operator's client certificate of a TLS cluster again when it is due (see
/// [`crate::tls::ClientTls`]), so the PD and status clients of this reconcile use the current one.
async fn refresh_client_tls(shared: &Shared, cluster: &Cluster) -> Result<(), Error> {
    shared
        .client_tls
        .refresh(&shared.client, cluster)
        .await
        .map_err(Error::kube(format!(
            "reading the client certificate Secrets of Cluster {}",
            cluster.metadata.name.as_deref().unwrap_or_default()
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_that_ends_by_itself_is_looked_at_when_it_ends() {
        let secs = Duration::from_secs;
        // (acted, waiting, recheck) -> look again after
        let cases = [
            (false, false, None, secs(30)),
            (false, true, None, secs(10)),
            (true, false, None, secs(2)),
            (false, true, Some(secs(4)), secs(4)),
            (
                false,
                true,
                Some(Duration::from_millis(1500)),
                Duration::from_millis(1500),
            ),
            // Never later than without it.
            (false, true, Some(secs(25)), secs(10)),
            (true, true, Some(secs(7)), secs(2)),
        ];
        for (acted, waiting, recheck, expected) in cases {
            assert_eq!(
                group_requeue(acted, waiting, recheck),
                Action::requeue(expected),
                "acted {acted}, waiting {waiting}, recheck {recheck:?}"
            );
        }
    }
}
