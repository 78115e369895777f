//! What every group controller shares besides the update engine: instance names, when an
//! instance counts as available, the group's status from its instances, the status of a blocked
//! or paused object, and writing a status only when it changed (and not from a stale copy).

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Api, Client, Resource};
use operator_api::conditions::{self, HasConditions, NewCondition, reasons};
use operator_api::core::{ComponentGroupStatus, Instance};
use operator_api::keys;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events::Events;
use crate::revision::fnv1a64;

/// A new instance name: the group's name and five characters that differ per call.
pub fn instance_name(group: &str, group_uid: &str, index: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = fnv1a64(format!("{group_uid}/{group}/{nanos}/{index}").as_bytes());
    // No vowels: no words by accident. No characters that read alike.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let base = ALPHABET.len() as u64;
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(n % base) as usize] as char;
            n /= base;
            c
        })
        .collect();
    format!("{group}-{suffix}")
}

/// Ready by a status that has seen the instance's current spec, with its Pod up to date: right
/// after the group changes an instance, its old `Ready` must not let the next one go.
pub fn is_available(
    conditions: &[Condition],
    observed_generation: i64,
    generation: Option<i64>,
) -> bool {
    Some(observed_generation) == generation
        && conditions::is_true(conditions, conditions::READY)
        && conditions::is_true(conditions, conditions::SYNCED)
}

/// One instance as the group's status counts it.
#[derive(Clone, Debug)]
pub struct InstanceSummary {
    /// Its revision label.
    pub revision: String,
    /// See [`is_available`].
    pub available: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Why it is not ready, as its own `Ready` condition says, named: see [`not_ready_note`].
    pub not_ready: Option<String>,
}

/// `name: message` of an instance whose `Ready` condition is false, so a group that is not ready
/// says which instance holds it back and why (a Pod waiting on `ImagePullBackOff`, say).
pub fn not_ready_note(name: &str, conditions: &[Condition]) -> Option<String> {
    conditions::find(conditions, conditions::READY)
        .filter(|c| c.status == "False")
        .map(|c| format!("{name}: {}", c.message))
}

/// Why the group does not move, if it does not.
#[derive(Clone, Debug, Default)]
pub struct Progress<'a> {
    /// A refusal, with its reason and message (for example a scale-in refused).
    pub blocked: Option<(&'a str, String)>,
    /// A wait of the update engine or the component, as a message.
    pub waiting: Option<String>,
    /// A reason that overrides `NotAllInstancesUpToDate` while waiting (for example
    /// `Bootstrapping`).
    pub waiting_reason: Option<&'a str>,
    /// Whether this reconcile changed instances.
    pub acted: bool,
}

/// The group's status from its instances: counts, revisions, the version once every instance
/// runs it, and `Ready`/`Synced`. `noun` names the instances in messages ("PD members").
#[allow(clippy::too_many_arguments)]
pub fn group_status(
    previous: Option<&ComponentGroupStatus>,
    generation: Option<i64>,
    desired: i32,
    version: &str,
    instances: &[InstanceSummary],
    update_revision: &str,
    selector: &str,
    noun: &str,
    progress: &Progress<'_>,
) -> ComponentGroupStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let active: Vec<&InstanceSummary> = instances.iter().filter(|i| !i.deleting).collect();
    let desired_count = usize::try_from(desired.max(0)).unwrap_or_default();
    let ready = active.iter().filter(|i| i.available).count();
    let updated = active
        .iter()
        .filter(|i| i.revision == update_revision)
        .count();
    if status.common.current_revision.is_empty() {
        status.common.current_revision = update_revision.to_string();
    }
    if updated == desired_count && active.len() == desired_count && ready == desired_count {
        status.common.current_revision = update_revision.to_string();
        status.group.version = version.to_string();
    }
    let current = active
        .iter()
        .filter(|i| i.revision == status.common.current_revision)
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.common.update_revision = update_revision.to_string();
    status.common.observed_generation = generation.unwrap_or_default();
    status.group.selector = selector.to_string();
    status.group.replicas = count(active.len());
    status.group.ready_replicas = count(ready);
    status.group.updated_replicas = count(updated);
    status.group.current_replicas = count(current);

    let now = Timestamp::now();
    let all_ready = ready == desired_count && active.len() == desired_count;
    conditions::set(
        &mut status.common.conditions,
        NewCondition {
            type_: conditions::READY,
            status: all_ready,
            reason: if all_ready {
                reasons::READY
            } else {
                reasons::NOT_ALL_INSTANCES_READY
            },
            message: if all_ready {
                format!("all {desired_count} {noun} are ready")
            } else {
                // The first reason is enough to act on; the instances hold the rest.
                match active.iter().find_map(|i| i.not_ready.as_ref()) {
                    Some(why) => format!("{ready} of {desired_count} {noun} are ready; {why}"),
                    None => format!("{ready} of {desired_count} {noun} are ready"),
                }
            },
            observed_generation: generation,
        },
        now,
    );
    let up_to_date = updated == desired_count && active.len() == desired_count;
    let synced = match (&progress.blocked, &progress.waiting) {
        (Some((reason, message)), _) => NewCondition {
            type_: conditions::SYNCED,
            status: false,
            reason,
            message: message.clone(),
            observed_generation: generation,
        },
        (None, waiting) if up_to_date && !progress.acted && progress.waiting_reason.is_none() => {
            NewCondition {
                type_: conditions::SYNCED,
                status: true,
                reason: reasons::SYNCED,
                message: match waiting {
                    Some(w) => format!("all {desired_count} {noun} are up to date; {w}"),
                    None => format!("all {desired_count} {noun} are up to date"),
                },
                observed_generation: generation,
            }
        }
        (None, waiting) => NewCondition {
            type_: conditions::SYNCED,
            status: false,
            reason: progress
                .waiting_reason
                .unwrap_or(reasons::NOT_ALL_INSTANCES_UP_TO_DATE),
            message: match waiting {
                Some(w) => format!("{updated} of {desired_count} {noun} are up to date; {w}"),
                None => format!("{updated} of {desired_count} {noun} are up to date"),
            },
            observed_generation: generation,
        },
    };
    conditions::set(&mut status.common.conditions, synced, now);
    status
}

/// Sets the group's `Available` condition, as the reference does for its TiDB groups: true while
/// at least one of its `ready` instances is Ready, whatever the others do (a roll, a scale-in),
/// so that a client of the group can tell "degraded" from "down". `minReadySeconds` does not
/// count here: a Ready server serves.
pub fn with_available(
    mut status: ComponentGroupStatus,
    ready: usize,
    noun: &str,
) -> ComponentGroupStatus {
    let generation = Some(status.common.observed_generation);
    let (value, reason, message) = match ready {
        0 => (
            false,
            reasons::UNAVAILABLE,
            format!("none of the {noun} is Ready"),
        ),
        n => (
            true,
            reasons::AVAILABLE,
            format!("{n} of the {noun} are Ready"),
        ),
    };
    conditions::set(
        &mut status.common.conditions,
        NewCondition {
            type_: conditions::AVAILABLE,
            status: value,
            reason,
            message,
            observed_generation: generation,
        },
        Timestamp::now(),
    );
    status
}

/// Sets the group's `Suspended` condition: true once every instance reports its Pod suspended
/// while the Cluster suspends compute; false (`Unsuspended`) afterwards.
pub fn with_suspended(
    mut status: ComponentGroupStatus,
    suspending: bool,
    instances: &[&[Condition]],
) -> ComponentGroupStatus {
    let done = instances
        .iter()
        .filter(|c| conditions::is_true(c, conditions::SUSPENDED))
        .count();
    let (value, reason, message) = if suspending {
        if done == instances.len() {
            (
                true,
                reasons::SUSPENDED,
                format!("all {} instances are suspended", instances.len()),
            )
        } else {
            (
                false,
                reasons::SUSPENDING,
                format!("{done} of {} instances are suspended", instances.len()),
            )
        }
    } else if conditions::find(&status.common.conditions, conditions::SUSPENDED).is_some() {
        (
            false,
            reasons::UNSUSPENDED,
            "the group is not suspended".to_string(),
        )
    } else {
        return status;
    };
    let generation = Some(status.common.observed_generation);
    conditions::set(
        &mut status.common.conditions,
        NewCondition {
            type_: conditions::SUSPENDED,
            status: value,
            reason,
            message,
            observed_generation: generation,
        },
        Timestamp::now(),
    );
    status
}

/// Sets `Ready` and `Synced` false with one reason, for a group or instance that cannot proceed.
pub fn blocked_conditions(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> bool {
    let now = Timestamp::now();
    let mut changed = false;
    for type_ in [conditions::READY, conditions::SYNCED] {
        changed |= conditions::set(
            conditions,
            NewCondition {
                type_,
                status: false,
                reason,
                message: message.to_string(),
                observed_generation: generation,
            },
            now,
        );
    }
    changed
}

/// The message of `Synced=False`, reason `Paused`, on everything of a paused Cluster.
pub fn paused_message(cluster: &str) -> String {
    format!("Cluster {cluster} is paused; nothing changes until spec.paused is false")
}

/// The object's status with `Ready` and `Synced` false for `reason` (see [`blocked_conditions`]).
pub fn status_blocked<K>(object: &K, reason: &str, message: &str) -> K::Status
where
    K: HasStatus + HasConditions + Resource + Clone,
    K::Status: Clone + Default,
{
    blocked(object, reason, message).0
}

/// Of the PDGroups of one Cluster, the one that owns the Cluster's PD (whose Service is the
/// Cluster's `status.pd`, and the only one that may bootstrap a PD cluster): a group not being
/// deleted before one that is, then one that bootstrapped, then the oldest, then the first by
/// name, so that of two groups created together exactly one goes ahead.
pub fn pd_owner<'a>(
    groups: impl IntoIterator<Item = &'a operator_api::core::PDGroup>,
) -> Option<&'a operator_api::core::PDGroup> {
    groups.into_iter().min_by_key(|g| {
        (
            g.metadata.deletion_timestamp.is_some(),
            !g.spec.bootstrapped,
            g.metadata.creation_timestamp.clone().map(|t| t.0),
            g.metadata.name.clone().unwrap_or_default(),
        )
    })
}

/// A refusal of a group: a Warning Event when `reason` is news (its `Synced` does not give it
/// yet), and the reason and message for its status.
pub async fn refusal<K>(
    events: &crate::events::Events,
    group: &K,
    reason: &'static str,
    action: &str,
    message: String,
) -> (&'static str, String)
where
    K: Resource<DynamicType = ()> + HasConditions,
{
    if !synced_reason_is(group, reason) {
        events.warning(group, reason, action, message.clone()).await;
    }
    (reason, message)
}

/// While PD does not answer (`silence` says why), a group adds and removes nothing: of `actions`
/// only the updates stay (each instance's restart waits for PD on its own), and the refusal,
/// with its Event, names what waits (`what`: "member", "store"). Returns the actions to carry out
/// and the refusal, if any.
pub async fn hold_scaling<K>(
    events: &crate::events::Events,
    group: &K,
    actions: Vec<crate::update::Action>,
    silence: Option<&str>,
    what: &str,
) -> (Vec<crate::update::Action>, Option<(&'static str, String)>)
where
    K: Resource<DynamicType = ()> + HasConditions,
{
    let is_update = |a: &crate::update::Action| matches!(a, crate::update::Action::Update { .. });
    let Some(error) = silence.filter(|_| actions.iter().any(|a| !is_update(a))) else {
        return (actions, None);
    };
    let message =
        format!("PD does not answer ({error}); no {what} is added or removed until it does");
    let refused = refusal(events, group, reasons::PD_UNAVAILABLE, "Scale", message).await;
    (
        actions.into_iter().filter(is_update).collect(),
        Some(refused),
    )
}

/// [`status_blocked`], and whether the conditions changed.
fn blocked<K>(object: &K, reason: &str, message: &str) -> (K::Status, bool)
where
    K: HasStatus + HasConditions + Resource + Clone,
    K::Status: Clone + Default,
{
    let mut copy = object.clone();
    let changed = blocked_conditions(
        copy.conditions_mut(),
        reason,
        message,
        object.meta().generation,
    );
    (copy.status().cloned().unwrap_or_default(), changed)
}

/// A group's refusal of a downgrade ([`crate::upgrade::downgrade_refusal`] of its template's
/// `version` over what its instances are at), for its status, with a Warning Event when it is
/// news. While it holds, the group creates, updates and removes no instance.
pub async fn downgrade_hold<G, I>(
    events: &Events,
    group: &G,
    version: &str,
    instances: &[I],
) -> Option<(&'static str, String)>
where
    G: Resource<DynamicType = ()> + HasConditions,
    I: Instance + Resource,
{
    let allowed = group
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::ANNO_ALLOW_DOWNGRADE))
        .is_some_and(|v| v == "true");
    let running = instances
        .iter()
        .filter(|i| i.meta().deletion_timestamp.is_none())
        .map(|i| i.common().version.as_str());
    let message = crate::upgrade::downgrade_refusal(version, running, allowed)?;
    Some(
        refusal(
            events,
            group,
            reasons::DOWNGRADE_REFUSED,
            "Upgrade",
            message,
        )
        .await,
    )
}

/// Whether the object's `Synced` condition gives `reason`.
pub fn synced_reason_is(object: &impl HasConditions, reason: &str) -> bool {
    conditions::find(object.conditions(), conditions::SYNCED).is_some_and(|c| c.reason == reason)
}

/// Why a group's plan waits right after a pause, if it does: instances still say `Paused`
/// instead of how they are, and the update engine would take them all for unavailable and pick
/// the wrong one to remove (TiDB and TiCDC wait for them in `before_plan`).
pub fn unobserved_after_pause<I: HasConditions>(instances: &[I]) -> Option<String> {
    let unobserved = instances
        .iter()
        .filter(|i| synced_reason_is(*i, reasons::PAUSED))
        .count();
    (unobserved > 0).then(|| {
        format!("waiting for {unobserved} instance(s) to report their state after the pause")
    })
}

/// Records on `object` (a group) why it cannot proceed ([`status_blocked`]), with a Warning Event
/// when that is news. Returns whether it wrote.
pub async fn write_blocked<K>(
    client: &Client,
    events: &Events,
    object: &K,
    reason: &str,
    message: String,
) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + HasStatus
        + HasConditions
        + Clone
        + Debug
        + DeserializeOwned,
    K::Status: Clone + Default + PartialEq + Serialize,
{
    let (status, changed) = blocked(object, reason, &message);
    if changed {
        events.warning(object, reason, "Reconcile", message).await;
    }
    write_own_status(client, object, &status).await
}

/// The object's status with `Synced=False`, reason `Paused`; `Ready` keeps what was last seen,
/// since what runs keeps running.
pub fn status_paused<K>(object: &K, cluster: &str) -> K::Status
where
    K: HasStatus + HasConditions + Resource + Clone,
    K::Status: Clone + Default,
{
    let mut copy = object.clone();
    conditions::set(
        copy.conditions_mut(),
        NewCondition {
            type_: conditions::SYNCED,
            status: false,
            reason: reasons::PAUSED,
            message: paused_message(cluster),
            observed_generation: object.meta().generation,
        },
        Timestamp::now(),
    );
    copy.status().cloned().unwrap_or_default()
}

/// Writes `desired` as the status of `object` (a namespaced custom resource) unless it is what
/// the object has; see [`write_status_if_changed`].
pub async fn write_own_status<K>(
    client: &Client,
    object: &K,
    desired: &K::Status,
) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + HasStatus
        + Clone
        + Debug
        + DeserializeOwned,
    K::Status: PartialEq + Serialize,
{
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    write_status_if_changed(&api, object, object.status(), desired).await
}

/// Writes `desired` as the object's status unless it equals `current`. Returns whether it wrote.
///
/// The write carries the object's `resourceVersion`, so a status computed from a stale cached copy
/// never overwrites a newer one (a Backup's retry history, say). A conflict is not an error: the
/// object changed since it was read, so its newer version is reconciled next and recomputes what
/// this write would have said.
pub async fn write_status_if_changed<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
    S: PartialEq + Serialize,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let name = object.meta().name.as_deref().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": object.meta().resource_version},
        "status": desired,
    });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(
                name,
                "status not written: the object changed since it was read"
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(revision: &str, available: bool) -> InstanceSummary {
        InstanceSummary {
            revision: revision.into(),
            available,
            deleting: false,
            not_ready: None,
        }
    }

    #[test]
    fn names_differ_per_call() {
        let a = instance_name("tikv", "uid", 0);
        let b = instance_name("tikv", "uid", 1);
        assert_ne!(a, b);
        assert!(
            a.starts_with("tikv-") && a.len() == "tikv-".len() + 5,
            "{a}"
        );
    }

    #[test]
    fn the_version_moves_only_when_every_instance_runs_it() {
        let progress = Progress::default();
        let partial = group_status(
            None,
            Some(2),
            3,
            "v2",
            &[
                summary("new", true),
                summary("old", true),
                summary("old", true),
            ],
            "new",
            "sel",
            "stores",
            &progress,
        );
        assert_eq!(partial.group.version, "");
        assert_eq!(partial.group.updated_replicas, 1);
        assert!(!conditions::is_true(
            &partial.common.conditions,
            conditions::SYNCED
        ));
        let done = group_status(
            Some(&partial),
            Some(2),
            3,
            "v2",
            &[
                summary("new", true),
                summary("new", true),
                summary("new", true),
            ],
            "new",
            "sel",
            "stores",
            &progress,
        );
        assert_eq!(done.group.version, "v2");
        assert_eq!(done.common.current_revision, "new");
        assert!(conditions::is_true(
            &done.common.conditions,
            conditions::SYNCED
        ));
        assert!(conditions::is_true(
            &done.common.conditions,
            conditions::READY
        ));
    }

    #[test]
    fn a_refusal_shows_in_synced() {
        let progress = Progress {
            blocked: Some(("ScaleInRefused", "too few stores".into())),
            ..Progress::default()
        };
        let status = group_status(
            None,
            Some(1),
            3,
            "v1",
            &[summary("r", true), summary("r", true), summary("r", true)],
            "r",
            "sel",
            "stores",
            &progress,
        );
        let synced = conditions::find(&status.common.conditions, conditions::SYNCED).unwrap();
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "ScaleInRefused")
        );
    }

    #[test]
    fn paused_keeps_ready_and_blocked_clears_it() {
        let mut pd: operator_api::core::PD = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "PD",
            "metadata": {"name": "pd-x", "generation": 4},
            "spec": {"cluster": {"name": "c"}, "version": "v8.5.2", "subdomain": "pd-peer"}
        }))
        .unwrap();
        conditions::set(
            pd.conditions_mut(),
            NewCondition {
                type_: conditions::READY,
                status: true,
                reason: reasons::READY,
                message: "ready".into(),
                observed_generation: Some(4),
            },
            Timestamp::now(),
        );
        let paused = status_paused(&pd, "c");
        let c = &paused.common.conditions;
        assert!(conditions::is_true(c, conditions::READY));
        let synced = conditions::find(c, conditions::SYNCED).unwrap();
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", reasons::PAUSED)
        );
        assert_eq!(synced.message, paused_message("c"));
        assert_eq!(synced.observed_generation, Some(4));

        let blocked = status_blocked(&pd, "ClusterNotFound", "no Cluster c");
        for type_ in [conditions::READY, conditions::SYNCED] {
            let c = conditions::find(&blocked.common.conditions, type_).unwrap();
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", "ClusterNotFound")
            );
        }
        // The object itself is left as it was.
        assert!(conditions::is_true(pd.conditions(), conditions::READY));
    }

    #[test]
    fn a_group_that_is_not_ready_names_the_instance_and_why() {
        let mut stuck = Vec::new();
        conditions::set(
            &mut stuck,
            NewCondition {
                type_: conditions::READY,
                status: false,
                reason: "PodNotReady",
                message: "container pd is waiting: ImagePullBackOff".into(),
                observed_generation: Some(1),
            },
            Timestamp::now(),
        );
        let mut waiting = summary("r", false);
        waiting.not_ready = not_ready_note("pd-x", &stuck);
        // An instance without a Ready=False condition has no note.
        assert_eq!(not_ready_note("pd-y", &[]), None);
        let status = group_status(
            None,
            Some(1),
            3,
            "v1",
            &[summary("r", true), waiting, summary("r", true)],
            "r",
            "sel",
            "PD members",
            &Progress::default(),
        );
        let ready = conditions::find(&status.common.conditions, conditions::READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message,
            "2 of 3 PD members are ready; pd-x: container pd is waiting: ImagePullBackOff"
        );
    }

    #[test]
    fn a_group_is_available_while_one_instance_is_ready() {
        // (Ready instances) -> (Available, reason, message)
        let cases = [
            (
                0,
                "False",
                reasons::UNAVAILABLE,
                "none of the TiDB servers is Ready",
            ),
            (
                1,
                "True",
                reasons::AVAILABLE,
                "1 of the TiDB servers are Ready",
            ),
            (
                3,
                "True",
                reasons::AVAILABLE,
                "3 of the TiDB servers are Ready",
            ),
        ];
        for (ready, status, reason, message) in cases {
            let status_of = with_available(ComponentGroupStatus::default(), ready, "TiDB servers");
            let available =
                conditions::find(&status_of.common.conditions, conditions::AVAILABLE).unwrap();
            assert_eq!(
                (
                    available.status.as_str(),
                    available.reason.as_str(),
                    available.message.as_str()
                ),
                (status, reason, message),
                "{ready} ready"
            );
        }
    }

    #[test]
    fn availability_needs_a_status_of_the_current_generation() {
        let mut conds = Vec::new();
        conditions::set(
            &mut conds,
            NewCondition {
                type_: conditions::READY,
                status: true,
                reason: "Ready",
                message: String::new(),
                observed_generation: None,
            },
            Timestamp::now(),
        );
        conditions::set(
            &mut conds,
            NewCondition {
                type_: conditions::SYNCED,
                status: true,
                reason: "Synced",
                message: String::new(),
                observed_generation: None,
            },
            Timestamp::now(),
        );
        assert!(is_available(&conds, 3, Some(3)));
        assert!(!is_available(&conds, 2, Some(3)));
    }
}
