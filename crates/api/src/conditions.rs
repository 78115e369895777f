//! Condition types and reasons, and helpers to read and set conditions on any of the kinds.
//!
//! Setting a condition keeps its `lastTransitionTime` unless its status changes, so a controller
//! that writes the same observation twice changes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::core::{
    Cluster, ClusterStatus, PD, PDGroup, PDStatus, TiDB, TiDBGroup, TiDBStatus, TiKV,
};
use crate::core::{
    ComponentGroupStatus, TiCDC, TiCDCGroup, TiCDCStatus, TiFlash, TiFlashGroup, TiFlashStatus,
    TiKVGroup, TiKVStatus,
};

/// All managed objects are ready (not necessarily up to date).
pub const READY: &str = "Ready";
/// Every managed object matches the spec; only status may still change.
pub const SYNCED: &str = "Synced";
/// The object's Pods are suspended (removed) or being suspended.
pub const SUSPENDED: &str = "Suspended";
/// Cluster: it can serve clients (a TiDB group is available, or the stores of a TiKV-only cluster).
pub const AVAILABLE: &str = "Available";
/// Cluster: a group is being created, rolled or scaled.
pub const PROGRESSING: &str = "Progressing";
/// PD: the member has joined the PD cluster.
pub const INITIALIZED: &str = "Initialized";
/// TiKV: the store's leaders are evicted before a restart.
pub const LEADERS_EVICTED: &str = "LeadersEvicted";
/// PD and TiKV: the instance's Pod is on a cordoned Node (`spec.unschedulable`); the reason says
/// what the operator did about it (leaders evicted, PD leadership handed over).
pub const NODE_CORDONED: &str = "NodeCordoned";
/// TiKV: the store is offline (being removed, or removed).
pub const OFFLINED: &str = "Offlined";
/// Condition of an instance that failed: False while failing, True once the group replaced it
/// (docs/failover.md).
pub const FAILED_OVER: &str = "FailedOver";
/// TiCDC instance: before its Pod goes, its capture gave up ownership and handed its tables to
/// other captures (false while that goes on; true once done, skipped or timed out).
pub const CAPTURE_DRAINED: &str = "CaptureDrained";

/// Condition status `True`.
pub const STATUS_TRUE: &str = "True";
/// Condition status `False`.
pub const STATUS_FALSE: &str = "False";
/// Condition status `Unknown`.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Reasons, shared by the conditions above.
pub mod reasons {
    /// Ready.
    pub const READY: &str = "Ready";
    /// Not ready.
    pub const UNREADY: &str = "Unready";
    /// Group `Available`: at least one instance is Ready (TiDB groups, as in the reference).
    pub const AVAILABLE: &str = "Available";
    /// Group `Available` false: no instance is Ready.
    pub const UNAVAILABLE: &str = "Unavailable";
    /// PD does not answer (no leader, no quorum, unreachable): nothing is changed until it does.
    pub const PD_UNAVAILABLE: &str = "PDUnavailable";
    /// Group: some instances are not ready.
    pub const NOT_ALL_INSTANCES_READY: &str = "NotAllInstancesReady";
    /// Instance: its Pod does not exist yet.
    pub const POD_NOT_CREATED: &str = "PodNotCreated";
    /// Instance: its Pod is not ready.
    pub const POD_NOT_READY: &str = "PodNotReady";
    /// Instance: its Pod is terminating.
    pub const POD_TERMINATING: &str = "PodTerminating";
    /// Instance: the scheduler finds no Node for its Pod (the message is the scheduler's).
    pub const POD_UNSCHEDULABLE: &str = "PodUnschedulable";
    /// Instance: its Pod cannot be scheduled because a volume is pinned to a Node it cannot run
    /// on (a node-local volume whose Node is cordoned, unready or gone).
    pub const VOLUME_PINNED_TO_UNAVAILABLE_NODE: &str = "VolumePinnedToUnavailableNode";
    /// Instance: the component reports itself unhealthy.
    pub const INSTANCE_NOT_HEALTHY: &str = "InstanceNotHealthy";
    /// Synced.
    pub const SYNCED: &str = "Synced";
    /// Not synced.
    pub const UNSYNCED: &str = "Unsynced";
    /// Group: some instances are outdated.
    pub const NOT_ALL_INSTANCES_UP_TO_DATE: &str = "NotAllInstancesUpToDate";
    /// Instance: its Pod is outdated.
    pub const POD_NOT_UP_TO_DATE: &str = "PodNotUpToDate";
    /// Instance: its Pod still exists though it should not.
    pub const POD_NOT_DELETED: &str = "PodNotDeleted";
    /// Suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// Being suspended.
    pub const SUSPENDING: &str = "Suspending";
    /// Not suspended.
    pub const UNSUSPENDED: &str = "Unsuspended";
    /// The Cluster is paused; nothing is changed.
    pub const PAUSED: &str = "Paused";
    /// The Cluster the object points at does not exist.
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    /// The spec cannot be acted on; the message says why.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A TLS Secret an instance mounts is missing or lacks a key; it waits for it.
    pub const TLS_SECRET_MISSING: &str = "TLSSecretMissing";
    /// The group waits for the groups it depends on to run the new version.
    pub const WAITING_FOR_DEPENDENCIES: &str = "WaitingForDependencies";
    /// The group's version is lower than one its instances run: nothing is rolled.
    pub const DOWNGRADE_REFUSED: &str = "DowngradeRefused";
    /// Cluster: being created.
    pub const CLUSTER_CREATION: &str = "ClusterCreation";
    /// Cluster: being deleted.
    pub const CLUSTER_DELETION: &str = "ClusterDeletion";
    /// Cluster: its deletion waits for the Backups and Restores whose BR Jobs run against it.
    pub const DELETION_WAITING_FOR_BR: &str = "DeletionWaitingForBackups";
    /// Backup, Restore: no BR Job starts against a Cluster that is being deleted.
    pub const CLUSTER_DELETING: &str = "ClusterDeleting";
    /// Cluster: available.
    pub const CLUSTER_AVAILABLE: &str = "ClusterAvailable";
    /// Cluster: suspended.
    pub const CLUSTER_SUSPEND: &str = "ClusterSuspend";
    /// `NodeCordoned` false: the Pod runs on a Node that takes new Pods again.
    pub const NODE_SCHEDULABLE: &str = "NodeSchedulable";
    /// `CaptureDrained` false: the capture is the owner and was asked to resign.
    pub const RESIGNING_OWNER: &str = "ResigningOwner";
    /// `CaptureDrained` false: the capture hands its tables to other captures.
    pub const DRAINING_TABLES: &str = "DrainingTables";
    /// `CaptureDrained` false: TiCDC's API did not answer; asked again until the timeout.
    pub const TICDC_UNREACHABLE: &str = "TiCDCUnreachable";
    /// `CaptureDrained` true: the capture holds no table.
    pub const DRAINED: &str = "Drained";
    /// `CaptureDrained` true: nothing to hand over (fewer than two captures, or the server does
    /// not run or is not registered).
    pub const DRAIN_SKIPPED: &str = "DrainSkipped";
    /// `CaptureDrained` true: the hand-over did not finish in time; the Pod goes anyway.
    pub const DRAIN_TIMED_OUT: &str = "DrainTimedOut";
}

/// The condition of a type in a list, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == STATUS_TRUE)
}

/// A condition to set: everything but the transition time, which [`set`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition<'a> {
    /// Condition type, for example [`READY`].
    pub type_: &'a str,
    /// Whether it holds.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Message for people.
    pub message: String,
    /// Generation of the spec the observation is based on.
    pub observed_generation: Option<i64>,
}

/// One look at an object: every condition a reconcile sets on it carries the same
/// `observedGeneration` and, where it changes, the same transition time.
#[derive(Clone, Copy, Debug)]
pub struct Look {
    /// The generation the look is based on.
    pub generation: Option<i64>,
    /// When it was taken.
    pub now: Timestamp,
}

impl Look {
    /// A look now at generation `generation`.
    pub fn now(generation: Option<i64>) -> Self {
        Look {
            generation,
            now: Timestamp::now(),
        }
    }

    /// Sets condition `type_` in `conditions` ([`set`]); whether anything changed.
    pub fn set(
        &self,
        conditions: &mut Vec<Condition>,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> bool {
        let new = NewCondition {
            type_,
            status,
            reason,
            message: message.into(),
            observed_generation: self.generation,
        };
        set(conditions, new, self.now)
    }
}

/// Sets a condition in the list. `lastTransitionTime` becomes `now` only when the status changes
/// (or the condition is new). Returns whether anything changed.
pub fn set(conditions: &mut Vec<Condition>, new: NewCondition<'_>, now: Timestamp) -> bool {
    let status = if new.status {
        STATUS_TRUE
    } else {
        STATUS_FALSE
    };
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let before = existing.clone();
            if existing.status != status {
                existing.status = status.to_string();
                existing.last_transition_time = Time(now);
            }
            existing.reason = new.reason.to_string();
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
            *existing != before
        }
        None => {
            conditions.push(Condition {
                type_: new.type_.to_string(),
                status: status.to_string(),
                reason: new.reason.to_string(),
                message: new.message,
                observed_generation: new.observed_generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// Any object with conditions in its status.
pub trait HasConditions {
    /// The conditions, empty when there is no status yet.
    fn conditions(&self) -> &[Condition];
    /// The conditions to change, creating an empty status when there is none.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

macro_rules! has_conditions {
    ($kind:ty, $status:ty, |$s:ident| $path:expr) => {
        impl HasConditions for $kind {
            fn conditions(&self) -> &[Condition] {
                match &self.status {
                    Some($s) => &$path,
                    None => &[],
                }
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                let $s: &mut $status = self.status.get_or_insert_with(Default::default);
                &mut $path
            }
        }
    };
}

has_conditions!(Cluster, ClusterStatus, |s| s.conditions);
has_conditions!(PDGroup, ComponentGroupStatus, |s| s.common.conditions);
has_conditions!(TiKVGroup, ComponentGroupStatus, |s| s.common.conditions);
has_conditions!(TiDBGroup, ComponentGroupStatus, |s| s.common.conditions);
has_conditions!(PD, PDStatus, |s| s.common.conditions);
has_conditions!(TiKV, TiKVStatus, |s| s.common.conditions);
has_conditions!(TiDB, TiDBStatus, |s| s.common.conditions);
has_conditions!(TiFlashGroup, ComponentGroupStatus, |s| s.common.conditions);
has_conditions!(TiFlash, TiFlashStatus, |s| s.common.conditions);
has_conditions!(TiCDCGroup, ComponentGroupStatus, |s| s.common.conditions);
has_conditions!(TiCDC, TiCDCStatus, |s| s.common.conditions);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn ready(status: bool, reason: &str) -> NewCondition<'_> {
        NewCondition {
            type_: READY,
            status,
            reason,
            message: format!("{reason} message"),
            observed_generation: Some(3),
        }
    }

    #[test]
    fn a_new_condition_gets_the_current_time() {
        let mut conditions = Vec::new();
        assert!(set(&mut conditions, ready(true, reasons::READY), at(100)));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, STATUS_TRUE);
        assert_eq!(conditions[0].last_transition_time, Time(at(100)));
        assert_eq!(conditions[0].observed_generation, Some(3));
    }

    #[test]
    fn the_same_observation_changes_nothing() {
        let mut conditions = Vec::new();
        set(&mut conditions, ready(true, reasons::READY), at(100));
        let before = conditions.clone();
        assert!(!set(&mut conditions, ready(true, reasons::READY), at(200)));
        assert_eq!(conditions, before);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready(false, reasons::POD_NOT_READY),
            at(100),
        );
        assert!(set(
            &mut conditions,
            ready(false, reasons::POD_NOT_CREATED),
            at(200)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(at(100)));
        assert_eq!(conditions[0].reason, reasons::POD_NOT_CREATED);
        assert!(set(&mut conditions, ready(true, reasons::READY), at(300)));
        assert_eq!(conditions[0].last_transition_time, Time(at(300)));
        assert!(is_true(&conditions, READY));
        assert!(!is_true(&conditions, SYNCED));
    }

    #[test]
    fn kinds_without_status_get_one_when_a_condition_is_set() {
        let mut pd = PD::new(
            "basic-pd-0",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "basic"},
                "subdomain": "basic-pd-peer",
                "version": "v8.5.0",
                "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "20Gi"}]
            }))
            .unwrap(),
        );
        assert!(pd.conditions().is_empty());
        set(pd.conditions_mut(), ready(true, reasons::READY), at(1));
        assert!(is_true(pd.conditions(), READY));
        assert!(pd.status.is_some());
    }
}
