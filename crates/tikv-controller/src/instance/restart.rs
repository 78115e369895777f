//! Restarting an outdated TiKV Pod safely: no restart while another store has down peers, the
//! store's leaders evicted first (a bounded wait, recorded so that a new controller leader
//! continues it), and the evict-leader scheduler removed once the store serves again.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions};
use operator_api::conditions::{self, reasons};
use operator_api::keys;
use operator_runtime::duration;
use operator_runtime::pod::is_ready;
use pd_client::StoreInfo;
use tracing::info;

use super::{
    ANNO_CORDON_EVICTION_STARTED, ANNO_EVICTION_STARTED, Draft, REASON_DOWN_PEERS_ELSEWHERE,
    REASON_EVICTED, REASON_EVICTING, REASON_EVICTION_TIMED_OUT, REASON_NOT_EVICTING,
    REASON_PD_UNREACHABLE, Scope,
};
use crate::cordon::{self, SchedulerNeed};
use crate::pd::PdView;
use crate::store::{self, RestartCause, RestartInput, RestartStep, StoreLookup};
use operator_runtime::reconcile::Error;

/// One step of restarting an outdated Pod; returns when to look again and the `Synced` reason
/// and message.
pub(super) async fn restart(
    scope: &Scope<'_>,
    draft: &mut Draft,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    pod: &Pod,
    need: SchedulerNeed,
) -> Result<(Duration, &'static str, String), Error> {
    let (view, lookup) = match (view, lookup) {
        (Ok(view), Some(lookup)) => (view, lookup),
        _ => {
            let error = view.as_ref().err().map_or("no answer", String::as_str);
            return Ok((
                Duration::from_secs(5),
                REASON_PD_UNREACHABLE,
                format!(
                    "the Pod is outdated but cannot be restarted safely: PD is unreachable: {error}"
                ),
            ));
        }
    };
    let store = lookup.info();
    let down_peer_stores = if store.is_some_and(|s| s.is_up()) {
        match scope.pd.down_peer_regions().await {
            Ok(regions) => regions.stores_with_down_peers(),
            Err(error) => {
                return Ok((
                    Duration::from_secs(5),
                    REASON_PD_UNREACHABLE,
                    format!(
                        "the Pod is outdated but PD cannot tell which stores have down peers: {error}"
                    ),
                ));
            }
        }
    } else {
        Vec::new()
    };
    let started = scope.tikv.annotations().get(ANNO_EVICTION_STARTED);
    let started_ms = started
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.as_millisecond());
    let evicting = store.is_some_and(|s| view.is_evicting(s.store.id));
    let timeout = scope.ctx.leader_eviction_timeout;
    let mut input = RestartInput {
        store: lookup,
        evicting,
        down_peer_stores: &down_peer_stores,
        other_up_stores: view
            .stores
            .stores
            .iter()
            .filter(|s| s.is_up() && Some(s.store.id) != store.map(|m| m.store.id))
            .count(),
        eviction_started_ms: started_ms,
        now_ms: draft.now.as_millisecond(),
        timeout,
    };
    let mut step = store::restart_step(&input);
    let id = store.map(|s| s.store.id).unwrap_or_default();
    if step == RestartStep::StartEviction {
        let now = draft.now;
        scope
            .set_annotation(ANNO_EVICTION_STARTED, Some(now.to_string()))
            .await?;
        input.eviction_started_ms = Some(now.as_millisecond());
        step = store::restart_step(&input);
    }
    match step {
        RestartStep::StartEviction => Err(Error::Invalid(
            "the leader-eviction start was not recorded".into(),
        )),
        RestartStep::StoreNotFound(id) => Ok((
            Duration::from_secs(5),
            store::HOLD_STORE_NOT_FOUND,
            format!(
                "the Pod is outdated but PD does not list store {id}, the store this instance recorded; it is not restarted until PD reports the store again"
            ),
        )),
        RestartStep::BlockedByDownPeers(others) => {
            // Hold without evicting: the store keeps serving while it waits. A cordoned Node
            // keeps its leaders away all the same.
            let cordon_recorded = scope
                .tikv
                .annotations()
                .contains_key(ANNO_CORDON_EVICTION_STARTED);
            if evicting && cordon::restart_may_remove(need, cordon_recorded) {
                scope
                    .remove_scheduler(id, "the restart waits for down peers elsewhere", "Restart")
                    .await?;
            }
            if started.is_some() {
                scope.set_annotation(ANNO_EVICTION_STARTED, None).await?;
            }
            let message = format!(
                "stores {} have down peers; restarting store {id} now could leave Regions without a quorum. The restart waits (no timeout) until they recover",
                store::describe_stores(&others, Some(&view.stores))
            );
            if draft.reason(conditions::SYNCED).as_deref() != Some(REASON_DOWN_PEERS_ELSEWHERE) {
                scope
                    .ctx
                    .events
                    .warning(
                        scope.tikv,
                        REASON_DOWN_PEERS_ELSEWHERE,
                        "Restart",
                        message.clone(),
                    )
                    .await;
            }
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_NOT_EVICTING,
                "the restart waits for down peers on other stores before evicting",
            );
            Ok((Duration::from_secs(5), REASON_DOWN_PEERS_ELSEWHERE, message))
        }
        RestartStep::AddScheduler => {
            scope
                .pd
                .add_evict_leader_scheduler(id)
                .await
                .map_err(scope.pd_error())?;
            scope.ctx.pd_changed(&scope.pd);
            let leaders = store.map(|s| s.status.leader_count).unwrap_or_default();
            scope
                .ctx
                .events
                .normal(
                    scope.tikv,
                    REASON_EVICTING,
                    "Restart",
                    format!(
                        "evicting {leaders} leaders from store {id} before restarting its Pod (at most {})",
                        duration::format(timeout)
                    ),
                )
                .await;
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_EVICTING,
                format!(
                    "evicting the leaders of store {id} before the restart; waiting at most {}",
                    duration::format(timeout)
                ),
            );
            Ok((
                Duration::from_secs(1),
                reasons::POD_NOT_UP_TO_DATE,
                "evicting the store's leaders before restarting the Pod".into(),
            ))
        }
        RestartStep::WaitForLeaders { leaders, waited } => {
            draft.set(
                conditions::LEADERS_EVICTED,
                false,
                REASON_EVICTING,
                format!(
                    "{leaders} leaders left on store {id}; the restart waits for them at most {} (since {})",
                    duration::format(timeout),
                    started.cloned().unwrap_or_default()
                ),
            );
            let left = timeout.saturating_sub(waited);
            Ok((
                left.clamp(Duration::from_millis(200), Duration::from_secs(1)),
                reasons::POD_NOT_UP_TO_DATE,
                "waiting for the store's leaders to move away before restarting the Pod".into(),
            ))
        }
        RestartStep::Restart(cause) => {
            let regions = store.map(|s| s.status.region_count).unwrap_or_default();
            let pod_grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds);
            let grace = store::restart_grace_period(regions, pod_grace);
            match &cause {
                RestartCause::LeadersEvicted => scope
                    .ctx
                    .metrics
                    .leader_eviction_finished(keys::COMPONENT_TIKV, false),
                RestartCause::TimedOut { .. } => scope
                    .ctx
                    .metrics
                    .leader_eviction_finished(keys::COMPONENT_TIKV, true),
                RestartCause::NotServing(_) | RestartCause::NoOtherStore => {}
            }
            let why = match &cause {
                RestartCause::LeadersEvicted => {
                    draft.set(
                        conditions::LEADERS_EVICTED,
                        true,
                        REASON_EVICTED,
                        format!("every leader left store {id}; the Pod restarts"),
                    );
                    "its leaders were evicted".to_string()
                }
                RestartCause::TimedOut { leaders } => {
                    let message = format!(
                        "{leaders} leaders were still on store {id} after {}; the Pod restarts anyway",
                        duration::format(timeout)
                    );
                    scope
                        .ctx
                        .events
                        .warning(
                            scope.tikv,
                            REASON_EVICTION_TIMED_OUT,
                            "Restart",
                            message.clone(),
                        )
                        .await;
                    draft.set(
                        conditions::LEADERS_EVICTED,
                        false,
                        REASON_EVICTION_TIMED_OUT,
                        message,
                    );
                    format!("the leader-eviction wait timed out with {leaders} leaders left")
                }
                RestartCause::NotServing(state) => {
                    format!("{state}, so it has no leaders to evict")
                }
                RestartCause::NoOtherStore => {
                    "no other store is Up to take its leaders, so none are evicted".to_string()
                }
            };
            let params = DeleteParams {
                grace_period_seconds: u32::try_from(grace).ok(),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match scope.pods().delete(&pod.name_any(), &params).await {
                // Gone already (the cache had not caught up): nothing left to delete.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                other => {
                    other.map_err(Error::kube("deleting the outdated Pod"))?;
                }
            }
            info!(grace, why, "deleted outdated TiKV Pod");
            scope
                .ctx
                .events
                .normal(
                    scope.tikv,
                    "PodRestarted",
                    "Restart",
                    format!(
                        "recreating the Pod with the new template: {why}; grace period {grace}s for {regions} Regions"
                    ),
                )
                .await;
            Ok((
                Duration::from_secs(2),
                reasons::POD_NOT_UP_TO_DATE,
                "the Pod is being recreated with the new template".into(),
            ))
        }
    }
}

/// With a current Pod: once it is ready and its store serves, any evict-leader scheduler for the
/// store goes (the restart is over, whoever started it) unless the cordon of its Node needs it,
/// and so does the record of the wait.
/// Returns whether nothing is left to do, and a message.
pub(super) async fn finish_restart(
    scope: &Scope<'_>,
    draft: &mut Draft,
    view: &Result<PdView, String>,
    store: Option<&StoreInfo>,
    pod: &Pod,
    need: SchedulerNeed,
) -> Result<(bool, String), Error> {
    let recorded = scope.tikv.annotations().contains_key(ANNO_EVICTION_STARTED);
    let view = match view {
        Ok(view) => view,
        Err(error) if recorded => {
            return Ok((
                false,
                format!(
                    "the Pod was restarted; PD is unreachable, so the evict-leader scheduler stays until it answers: {error}"
                ),
            ));
        }
        Err(_) => return Ok((true, "the Pod is up to date".into())),
    };
    let evicting = store.is_some_and(|s| view.is_evicting(s.store.id));
    let cordon_recorded = scope
        .tikv
        .annotations()
        .contains_key(ANNO_CORDON_EVICTION_STARTED);
    let restart_removes = cordon::restart_may_remove(need, cordon_recorded);
    // A scheduler without a restart's record that the cordon owns is none of the restart's.
    if !recorded && (!evicting || !restart_removes) {
        return Ok((true, "the Pod is up to date".into()));
    }
    let serving = store.is_some_and(|s| s.is_up() && started_in(s, pod)) && is_ready(pod);
    if !serving {
        return Ok((
            false,
            "the Pod was restarted; waiting for the store to serve again before leaders may return"
                .into(),
        ));
    }
    let id = store.map(|s| s.store.id).unwrap_or_default();
    // The cordon of the Pod's Node may still need the scheduler: it removes it itself.
    if evicting && restart_removes {
        scope
            .remove_scheduler(id, "the store serves again after its restart", "Restart")
            .await?;
    }
    if recorded {
        scope.set_annotation(ANNO_EVICTION_STARTED, None).await?;
    }
    let last = if draft.reason(conditions::LEADERS_EVICTED).as_deref()
        == Some(REASON_EVICTION_TIMED_OUT)
    {
        " (the last restart went ahead after the leader-eviction timeout)"
    } else {
        ""
    };
    let message = if restart_removes {
        format!("store {id} serves again and takes leaders{last}")
    } else {
        format!("store {id} serves again; the cordon of its Node keeps its leaders away{last}")
    };
    draft.set(
        conditions::LEADERS_EVICTED,
        false,
        REASON_NOT_EVICTING,
        message,
    );
    Ok((true, "the Pod is up to date".into()))
}

/// Whether the store PD reports is the process of this Pod: it started no earlier than the Pod.
/// Right after a restart, PD (or this controller's shared view of it) can still show the old
/// process Up while the new Pod is already ready. Without a start time on either side, this says
/// yes, as before such times were compared.
pub(super) fn started_in(store: &StoreInfo, pod: &Pod) -> bool {
    let pod_started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.as_second());
    match (store.store.start_timestamp, pod_started) {
        (store_started, Some(pod_started)) if store_started > 0 => store_started >= pod_started,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use pd_client::Store;

    use super::*;

    fn store(started: i64) -> StoreInfo {
        StoreInfo {
            store: Store {
                start_timestamp: started,
                ..Store::default()
            },
            ..StoreInfo::default()
        }
    }

    fn pod(started: Option<i64>) -> Pod {
        Pod {
            status: Some(PodStatus {
                start_time: started
                    .map(|s| Time(Timestamp::from_second(s).expect("a valid second"))),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn the_store_serves_from_this_pod_only_once_it_started_after_it() {
        let cases = [
            (
                "the old process, still reported",
                store(100),
                pod(Some(200)),
                false,
            ),
            ("the new process", store(200), pod(Some(200)), true),
            ("a later start", store(250), pod(Some(200)), true),
            ("PD gives no start time", store(0), pod(Some(200)), true),
            ("the Pod has no start time yet", store(100), pod(None), true),
        ];
        for (name, store, pod, want) in cases {
            assert_eq!(started_in(&store, &pod), want, "{name}");
        }
    }
}
