//! Automatic failover, the same for every component: a member failed for longer than the group's
//! period gets a replacement (one instance more than `replicas`), at most `maxReplacements` at
//! once, never when the failures look like an outage; the failed instance and its volumes are
//! kept until it recovers or a person deletes it. The component says what "failed" means and
//! when a failed instance goes; [`plan`] is pure and decides the rest.
//!
//! The state lives in three operator-state annotations on the instance (`failing-since`,
//! `failure`, `failed-over`), so a restarted controller carries on where it was.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use operator_api::core::{FAILOVER_DEFAULT_MAX_REPLACEMENTS, FAILOVER_DEFAULT_PERIOD, Failover};
use operator_api::keys::{ANNO_FAILED_OVER, ANNO_FAILING_SINCE, ANNO_FAILURE};

use crate::duration;

/// The operator-state annotations of failover, for a component's `STATE_ANNOTATIONS`.
pub const STATE_ANNOTATIONS: &[&str] = &[ANNO_FAILING_SINCE, ANNO_FAILURE, ANNO_FAILED_OVER];

/// Reason of the Event of a replacement begun.
pub const EVENT_STARTED: &str = "FailoverStarted";

/// Reason of a group whose failed instance is not replaced because `maxReplacements` are
/// outstanding.
pub const REASON_FAILOVER_EXHAUSTED: &str = "FailoverExhausted";
/// Reason of a group whose failed instances are not replaced because too many failed at once.
pub const REASON_FAILOVER_OUTAGE: &str = "FailoverOutage";
/// Condition of an instance that failed: False while it is failing, True once it is replaced.
pub const CONDITION_FAILED_OVER: &str = operator_api::conditions::FAILED_OVER;
/// Reason of `FailedOver=False`: failing, not replaced yet.
pub const REASON_FAILING: &str = "Failing";
/// Reason of `FailedOver=True`: replaced.
pub const REASON_REPLACED: &str = "Replaced";

/// A group's failover settings, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// New replacements are made.
    pub enabled: bool,
    /// How long a member must be failed before it is replaced.
    pub period: Duration,
    /// The most replacements outstanding at once.
    pub max_replacements: usize,
}

impl Settings {
    /// The settings of a group's `spec.failover`. A period the schema let through but that
    /// does not parse falls back to the default (and says so in the log).
    pub fn of(spec: Option<&Failover>) -> Settings {
        let default_period = duration::parse(FAILOVER_DEFAULT_PERIOD).unwrap_or_default();
        let period = match spec.and_then(|f| f.period.as_deref()) {
            Some(text) => duration::parse(text).unwrap_or_else(|error| {
                tracing::warn!(%error, "failover period; using the default");
                default_period
            }),
            None => default_period,
        };
        let max = spec
            .and_then(|f| f.max_replacements)
            .unwrap_or(FAILOVER_DEFAULT_MAX_REPLACEMENTS);
        Settings {
            enabled: spec.and_then(|f| f.enabled).unwrap_or(true),
            period,
            max_replacements: usize::try_from(max.max(0)).unwrap_or(0),
        }
    }
}

/// How a member is doing, as its component sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Healthy,
    /// Failed.
    Failing {
        /// Why (for the annotation, the Event and the condition).
        why: String,
        /// Since when, if the component knows (a condition's transition time); otherwise the
        /// group records when it first saw the failure.
        since: Option<Timestamp>,
    },
    /// Cannot tell now (PD did not answer, the store is between states): nothing changes.
    Unknown,
}

/// When a replaced instance leaves the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retire {
    /// Once it works again (TiKV: its store is Up): it is the cheaper one to remove, since PD
    /// has already moved its Regions to the replacement.
    OnRecovery,
    /// Once the group has `replicas` ready members without it (TiDB: the replacement is Ready),
    /// whether it recovered or not.
    OnReplacementReady,
    /// Before its replacement exists ([`plan_first`]): a PD member leaves the PD cluster, then
    /// the group adds a new one, in etcd's order (adding first would raise the quorum while the
    /// new member is not yet up).
    First,
}

/// One instance of the group, as failover sees it.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// Its name.
    pub name: &'a str,
    /// How it is doing.
    pub health: Health,
    /// When the group first saw it failing (its annotation).
    pub failing_since: Option<Timestamp>,
    /// Whether it has been replaced (its annotation).
    pub failed_over: bool,
    /// Leaving the group already (deleted, or being taken out).
    pub leaving: bool,
}

impl<'a> Member<'a> {
    /// A member named `name` with these annotations.
    pub fn of(
        name: &'a str,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
        health: Health,
        leaving: bool,
    ) -> Self {
        let get = |key: &str| annotations.and_then(|a| a.get(key));
        Member {
            name,
            health,
            failing_since: get(ANNO_FAILING_SINCE).and_then(|t| t.parse().ok()),
            failed_over: get(ANNO_FAILED_OVER).is_some(),
            leaving,
        }
    }
}

/// One annotation to set (`Some`) or remove (`None`) on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The instance.
    pub instance: String,
    /// The annotation.
    pub key: &'static str,
    /// Its value.
    pub value: Option<String>,
}

/// What failover decides for a group this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverPlan {
    /// Annotations to write.
    pub marks: Vec<Mark>,
    /// Normal Events on the group: reason and message.
    pub events: Vec<(&'static str, String)>,
    /// Replaced instances that leave now, through the component's own removal.
    pub retire: Vec<String>,
    /// Instances the group keeps above `replicas`: one per replaced member still in it.
    pub extra_replicas: i32,
    /// Why a failed member is not replaced: the reason and message of the group's conditions.
    pub refusal: Option<(&'static str, String)>,
    /// When a failing member's period ends.
    pub recheck_after: Option<Duration>,
    /// The group's new count of replacements made since it was last wholly healthy
    /// ([`Retire::First`] only), when it changes.
    pub replaced: Option<usize>,
    /// Members failed for at least the period, or replaced and not recovered: the group's
    /// failed-instance count.
    pub failed: usize,
}

impl FailoverPlan {
    /// Whether it writes anything: the update engine then waits for the next reconcile, which
    /// sees the writes.
    pub fn acts(&self) -> bool {
        !self.marks.is_empty() || !self.retire.is_empty() || self.replaced.is_some()
    }

    /// How long a member failing since `since` has failed at `now`, once that is the period or
    /// more (it then counts as failed); before that, `None`, and the plan looks again when the
    /// period ends.
    fn past_period(
        &mut self,
        settings: &Settings,
        since: Timestamp,
        now: Timestamp,
    ) -> Option<Duration> {
        let failed_for = Duration::try_from(now.duration_since(since)).unwrap_or_default();
        if failed_for < settings.period {
            self.recheck_after = earliest(self.recheck_after, settings.period - failed_for);
            return None;
        }
        self.failed += 1;
        Some(failed_for)
    }

    /// Refuses to replace `name` in an outage or at the cap (`count` replacements, which
    /// `counted` describes); whether it did.
    fn refused(
        &mut self,
        name: &str,
        why: &str,
        outage: Option<&str>,
        (count, counted): (usize, &str),
        settings: &Settings,
    ) -> bool {
        self.refusal = if let Some(outage) = outage {
            Some((
                REASON_FAILOVER_OUTAGE,
                format!("{name} is not replaced: {outage}"),
            ))
        } else if count >= settings.max_replacements {
            Some((
                REASON_FAILOVER_EXHAUSTED,
                format!(
                    "{name} failed ({why}) and is not replaced: {count} replacement(s) {counted}, the group's failover.maxReplacements is {}; recover or delete a failed instance",
                    settings.max_replacements
                ),
            ))
        } else {
            return false;
        };
        true
    }

    /// The Event of a replacement of `name` begun: what failed, since when, for how long, and
    /// what becomes of it (`then`).
    fn started(
        &mut self,
        name: &str,
        (why, since, failed_for): (&str, Timestamp, Duration),
        settings: &Settings,
        then: &str,
    ) {
        self.events.push((
            EVENT_STARTED,
            format!(
                "replacing {name}: {why} since {since} ({} ≥ the failover period {}); {then}",
                duration::format(failed_for),
                duration::format(settings.period)
            ),
        ));
    }
}

fn mark(instance: &str, key: &'static str, value: Option<String>) -> Mark {
    Mark {
        instance: instance.to_string(),
        key,
        value,
    }
}

/// Removes the failover state of `instance`.
fn forget(marks: &mut Vec<Mark>, member: &Member<'_>) {
    if member.failing_since.is_some() {
        marks.push(mark(member.name, ANNO_FAILING_SINCE, None));
        marks.push(mark(member.name, ANNO_FAILURE, None));
    }
    if member.failed_over {
        marks.push(mark(member.name, ANNO_FAILED_OVER, None));
    }
}

/// Decides failover for a group at `now`. `outage` says why the failures now are an outage
/// (nothing is replaced then); `replaced_ready` whether the group has `replicas` ready members
/// besides its replaced ones.
pub fn plan(
    settings: &Settings,
    members: &[Member<'_>],
    outage: Option<&str>,
    replaced_ready: bool,
    retire: Retire,
    now: Timestamp,
) -> FailoverPlan {
    let mut plan = FailoverPlan::default();
    let staying: Vec<&Member<'_>> = members.iter().filter(|m| !m.leaving).collect();
    let mut outstanding = staying.iter().filter(|m| m.failed_over).count();
    let mut retired = 0;
    for member in &staying {
        if member.failed_over && member.health != Health::Healthy {
            plan.failed += 1;
        }
        match (&member.health, member.failed_over) {
            (Health::Unknown, _) => {}
            (Health::Healthy, false) => forget(&mut plan.marks, member),
            (Health::Healthy, true) => match retire {
                Retire::OnRecovery => {
                    plan.retire.push(member.name.to_string());
                    retired += 1;
                    plan.events.push((
                        "FailoverRecovered",
                        format!(
                            "{} works again; it leaves the group, its replacement stays",
                            member.name
                        ),
                    ));
                }
                Retire::OnReplacementReady | Retire::First => {
                    forget(&mut plan.marks, member);
                    retired += 1;
                    plan.events.push((
                        "FailoverRecovered",
                        format!(
                            "{} works again before its replacement was ready; the group returns to its replicas",
                            member.name
                        ),
                    ));
                }
            },
            (Health::Failing { .. }, true) => {
                if retire == Retire::OnReplacementReady && replaced_ready {
                    plan.retire.push(member.name.to_string());
                    retired += 1;
                }
            }
            (Health::Failing { .. }, false) if !settings.enabled => {}
            (Health::Failing { why, since: known }, false) => {
                let Some(since) = known.or(member.failing_since) else {
                    plan.marks
                        .push(mark(member.name, ANNO_FAILING_SINCE, Some(now.to_string())));
                    plan.marks
                        .push(mark(member.name, ANNO_FAILURE, Some(why.clone())));
                    plan.recheck_after = earliest(plan.recheck_after, settings.period);
                    continue;
                };
                let Some(failed_for) = plan.past_period(settings, since, now) else {
                    continue;
                };
                let cap = (outstanding, "are outstanding");
                if plan.refused(member.name, why, outage, cap, settings) {
                    continue;
                }
                outstanding += 1;
                if member.failing_since.is_none() {
                    plan.marks.push(mark(
                        member.name,
                        ANNO_FAILING_SINCE,
                        Some(since.to_string()),
                    ));
                    plan.marks
                        .push(mark(member.name, ANNO_FAILURE, Some(why.clone())));
                }
                plan.marks
                    .push(mark(member.name, ANNO_FAILED_OVER, Some(now.to_string())));
                plan.started(
                    member.name,
                    (why, since, failed_for),
                    settings,
                    "it is kept, with its volumes, until it recovers or is deleted",
                );
            }
        }
    }
    plan.extra_replicas = i32::try_from(outstanding.saturating_sub(retired)).unwrap_or(0);
    plan
}

/// Decides failover at `now` for a component whose failed members leave before their
/// replacement comes ([`Retire::First`]): one member at a time, none while another is leaving,
/// none in an outage; `replaced` counts the replacements made since the group was last wholly
/// healthy, and at `maxReplacements` the group stops and says so (a replacement that never
/// becomes healthy is not replaced for ever).
pub fn plan_first(
    settings: &Settings,
    members: &[Member<'_>],
    outage: Option<&str>,
    replaced: usize,
    now: Timestamp,
) -> FailoverPlan {
    let mut plan = FailoverPlan::default();
    let leaving = members.iter().any(|m| m.leaving);
    let healthy = members
        .iter()
        .all(|m| !m.leaving && m.health == Health::Healthy);
    if healthy && replaced > 0 {
        plan.replaced = Some(0);
    }
    for member in members.iter().filter(|m| !m.leaving) {
        let Health::Failing { why, since } = &member.health else {
            continue;
        };
        let Some(since) = since.or(member.failing_since) else {
            continue;
        };
        let Some(failed_for) = plan.past_period(settings, since, now) else {
            continue;
        };
        if !settings.enabled || leaving || !plan.retire.is_empty() {
            continue;
        }
        let cap = (replaced, "were made since the group was last healthy");
        if plan.refused(member.name, why, outage, cap, settings) {
            continue;
        }
        plan.retire.push(member.name.to_string());
        plan.replaced = Some(replaced + 1);
        plan.started(
            member.name,
            (why, since, failed_for),
            settings,
            "it leaves first, then a new member joins",
        );
    }
    plan
}

fn earliest(current: Option<Duration>, next: Duration) -> Option<Duration> {
    // At least a second: a period of zero must not spin.
    let next = next.max(Duration::from_secs(1));
    Some(current.map_or(next, |c| c.min(next)))
}

/// How a member is doing by its own `Ready` condition, since that turned false or its Pod was
/// created, whichever is later (a restarted Pod, or compute resumed, starts the clock again). A
/// member without a Pod (being made, or compute suspended) or without a `Ready` condition cannot
/// be judged.
pub fn by_readiness(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    pod_created: Option<&Timestamp>,
) -> Health {
    use operator_api::conditions as c;
    let Some(pod_created) = pod_created else {
        return Health::Unknown;
    };
    match c::find(conditions, c::READY) {
        Some(ready) if ready.status == c::STATUS_TRUE => Health::Healthy,
        Some(ready) => Health::Failing {
            why: format!("not Ready ({}: {})", ready.reason, ready.message),
            since: Some(ready.last_transition_time.0.max(*pod_created)),
        },
        None => Health::Unknown,
    }
}

/// When the Pod of each of `instances` was created, from the Pod cache, by instance name.
pub fn pods_created<I: kube::Resource>(
    pods: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>,
    namespace: &str,
    instances: &[I],
) -> std::collections::BTreeMap<String, Timestamp> {
    instances
        .iter()
        .filter_map(|i| {
            let name = i.meta().name.clone()?;
            let pod = crate::cache::get(pods, namespace, &name)?;
            Some((name, pod.metadata.creation_timestamp?.0))
        })
        .collect()
}

/// The `FailedOver` condition an instance with these annotations carries: `None` when it has
/// no failover state.
pub fn condition(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<(bool, &'static str, String)> {
    let annotations = annotations?;
    let why = annotations
        .get(ANNO_FAILURE)
        .map_or("failed", String::as_str);
    let since = annotations.get(ANNO_FAILING_SINCE);
    let since = since.map_or(String::new(), |s| format!(" since {s}"));
    if let Some(at) = annotations.get(ANNO_FAILED_OVER) {
        return Some((
            true,
            REASON_REPLACED,
            format!(
                "{why}{since}; replaced by the group's failover at {at}; kept, with its volumes, until it recovers or is deleted"
            ),
        ));
    }
    annotations.contains_key(ANNO_FAILING_SINCE).then(|| {
        (
            false,
            REASON_FAILING,
            format!("{why}{since}; replaced once the group's failover period has passed"),
        )
    })
}

#[cfg(test)]
mod tests;
