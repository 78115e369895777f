//! A store whose Pod's Node is cordoned: its leaders evicted (the same evict-leader scheduler a
//! restart uses, recorded first so that nothing removes it behind the cordon's back), the wait
//! bounded by the leader-eviction timeout, and the scheduler removed once the store serves from
//! a schedulable Node again; all of it told in the `NodeCordoned` condition, as
//! [`cordon::cordon_step`] decides.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use operator_api::conditions::{self, reasons};
use operator_runtime::duration;
use operator_runtime::node::PodNode;
use operator_runtime::reconcile::Error;
use pd_client::StoreInfo;

use super::{
    ANNO_CORDON_EVICTION_STARTED, Draft, REASON_EVICTED, REASON_EVICTING,
    REASON_EVICTION_TIMED_OUT, REASON_PD_UNREACHABLE, REASON_STORE_NOT_SERVING,
    REASON_WAITING_FOR_STORE, Scope,
};
use crate::cordon::{self, CordonInput, CordonStep, Held, SchedulerNeed};
use crate::pd::PdView;
use crate::store::StoreLookup;

/// `NodeCordoned` reason (and Event): the leaders stay, for the reason the message gives.
pub const REASON_EVICTION_HELD: &str = "LeaderEvictionHeld";
/// Event action of everything done because of a cordoned Node.
const ACTION: &str = "NodeCordoned";

/// One cordon step of the store; returns when to look again, if sooner than usual.
pub(super) async fn cordon(
    scope: &Scope<'_>,
    draft: &mut Draft,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    node: &PodNode,
    need: SchedulerNeed,
) -> Result<Option<Duration>, Error> {
    let recorded = scope
        .tikv
        .annotations()
        .get(ANNO_CORDON_EVICTION_STARTED)
        .cloned();
    let (view, lookup) = match (view, lookup) {
        (Ok(view), Some(lookup)) => (view, lookup),
        (Err(error), _) if node.is_cordoned() || recorded.is_some() => {
            let node_name = node.name().unwrap_or("?");
            draft.set(
                conditions::NODE_CORDONED,
                node.is_cordoned(),
                REASON_PD_UNREACHABLE,
                format!(
                    "Node {node_name}: PD cannot be asked about the store's leaders ({error}); nothing is changed until it answers"
                ),
            );
            return Ok(Some(Duration::from_secs(5)));
        }
        _ => return Ok(None),
    };
    let info = lookup.info();
    let id = info.map(|s| s.store.id).unwrap_or_default();
    let evicting = info.is_some_and(|s| view.is_evicting(s.store.id));
    let timeout = scope.ctx.leader_eviction_timeout;
    let mut input = CordonInput {
        store: lookup,
        evicting,
        node,
        recorded_ms: recorded
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|t| t.as_millisecond()),
        need,
        evicted_elsewhere: view.evicting.iter().filter(|e| **e != id).count(),
        takers: view
            .stores
            .stores
            .iter()
            .filter(|s| s.is_up() && s.store.id != id && !view.is_evicting(s.store.id))
            .count(),
        max_replicas: view.replication.max_replicas,
        now_ms: draft.now.as_millisecond(),
        timeout,
    };
    let mut step = cordon::cordon_step(&input);
    if step == CordonStep::Record {
        let now = draft.now;
        scope
            .set_annotation(ANNO_CORDON_EVICTION_STARTED, Some(now.to_string()))
            .await?;
        input.recorded_ms = Some(now.as_millisecond());
        step = cordon::cordon_step(&input);
    }
    let node_name = node.name().unwrap_or("?");
    let leaders = info.map(|s| s.status.leader_count).unwrap_or_default();
    let since = recorded.unwrap_or_else(|| draft.now.to_string());
    let previous = draft.reason(conditions::NODE_CORDONED);
    let changed = |reason: &str| previous.as_deref() != Some(reason);
    match step {
        CordonStep::Idle => {
            if conditions::is_true(&draft.status.common.conditions, conditions::NODE_CORDONED) {
                draft.set(
                    conditions::NODE_CORDONED,
                    false,
                    reasons::NODE_SCHEDULABLE,
                    "the Pod is not on a cordoned Node",
                );
            }
            Ok(None)
        }
        CordonStep::Record => Err(Error::Invalid(
            "the start of the cordon's leader eviction was not recorded".into(),
        )),
        CordonStep::AddScheduler => {
            scope
                .pd
                .add_evict_leader_scheduler(id)
                .await
                .map_err(scope.pd_error())?;
            scope.ctx.pd_changed(&scope.pd);
            let message = format!(
                "Node {node_name} is cordoned: evicting the {leaders} leaders of store {id} (waiting at most {})",
                duration::format(timeout)
            );
            scope
                .ctx
                .events
                .normal(scope.tikv, REASON_EVICTING, ACTION, message.clone())
                .await;
            draft.set(conditions::NODE_CORDONED, true, REASON_EVICTING, message);
            Ok(Some(Duration::from_secs(1)))
        }
        CordonStep::Evicting { leaders, waited } => {
            draft.set(
                conditions::NODE_CORDONED,
                true,
                REASON_EVICTING,
                format!(
                    "Node {node_name} is cordoned: {leaders} leaders left on store {id}, waiting at most {} (since {since})",
                    duration::format(timeout)
                ),
            );
            let left = timeout.saturating_sub(waited);
            Ok(Some(
                left.clamp(Duration::from_millis(200), Duration::from_secs(1)),
            ))
        }
        CordonStep::Evicted => {
            let message = format!(
                "Node {node_name} is cordoned: store {id} holds no leaders; its Pod is cheap to stop"
            );
            if changed(REASON_EVICTED) {
                scope
                    .ctx
                    .events
                    .normal(scope.tikv, REASON_EVICTED, ACTION, message.clone())
                    .await;
            }
            draft.set(conditions::NODE_CORDONED, true, REASON_EVICTED, message);
            Ok(Some(Duration::from_secs(10)))
        }
        CordonStep::TimedOut { leaders } => {
            let message = format!(
                "Node {node_name} is cordoned: {leaders} leaders were still on store {id} after {}; the evict-leader scheduler stays while the Node is cordoned, and an eviction of the Pod is not held back",
                duration::format(timeout)
            );
            if changed(REASON_EVICTION_TIMED_OUT) {
                scope
                    .ctx
                    .events
                    .warning(
                        scope.tikv,
                        REASON_EVICTION_TIMED_OUT,
                        ACTION,
                        message.clone(),
                    )
                    .await;
            }
            draft.set(
                conditions::NODE_CORDONED,
                true,
                REASON_EVICTION_TIMED_OUT,
                message,
            );
            Ok(Some(Duration::from_secs(10)))
        }
        CordonStep::Held(held) => {
            let why = match held {
                Held::NoTaker => {
                    "no other Up store outside the evict-leader scheduler can take them".to_string()
                }
                Held::TooManyEvicted {
                    evicted,
                    max_replicas,
                } => format!(
                    "{evicted} other stores are already evicted, and with {max_replicas} replicas per Region (max-replicas) a Region could have every replica on an evicted store"
                ),
            };
            let message = format!(
                "Node {node_name} is cordoned, but the {leaders} leaders of store {id} stay for now: {why}"
            );
            if changed(REASON_EVICTION_HELD) {
                scope
                    .ctx
                    .events
                    .warning(scope.tikv, REASON_EVICTION_HELD, ACTION, message.clone())
                    .await;
            }
            draft.set(
                conditions::NODE_CORDONED,
                true,
                REASON_EVICTION_HELD,
                message,
            );
            Ok(Some(Duration::from_secs(5)))
        }
        CordonStep::NotServing => {
            let state = match lookup {
                StoreLookup::Listed(info) => info.store.state_name.clone(),
                StoreLookup::NeverRegistered => "not registered".to_string(),
                StoreLookup::Unlisted(id) => format!("{id}, not listed by PD"),
            };
            draft.set(
                conditions::NODE_CORDONED,
                true,
                REASON_STORE_NOT_SERVING,
                format!(
                    "Node {node_name} is cordoned; the store ({state}) holds no leaders to move"
                ),
            );
            Ok(Some(Duration::from_secs(5)))
        }
        CordonStep::WaitForStore => {
            draft.set(
                conditions::NODE_CORDONED,
                false,
                REASON_WAITING_FOR_STORE,
                format!(
                    "the Pod is no longer on a cordoned Node; store {id} keeps its evict-leader scheduler until it serves again from a schedulable Node"
                ),
            );
            Ok(Some(Duration::from_secs(2)))
        }
        CordonStep::Release { remove_scheduler } => {
            if remove_scheduler {
                scope
                    .remove_scheduler(id, "the store serves again from a schedulable Node", ACTION)
                    .await?;
            }
            scope
                .set_annotation(ANNO_CORDON_EVICTION_STARTED, None)
                .await?;
            draft.set(
                conditions::NODE_CORDONED,
                false,
                reasons::NODE_SCHEDULABLE,
                format!(
                    "store {id} serves from Node {node_name}, which is schedulable; it takes leaders again"
                ),
            );
            Ok(None)
        }
    }
}

/// Whether the store serves from `pod`: the Pod is ready and PD reports the store Up from a
/// process that started no earlier than the Pod.
pub(super) fn serving(store: Option<&StoreInfo>, pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    store.is_some_and(|s| s.is_up() && super::restart::started_in(s, pod))
        && operator_runtime::pod::is_ready(pod)
}
