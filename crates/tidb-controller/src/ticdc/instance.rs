//! The TiCDC instance rules: its ConfigMap, PVCs and Pod; before the Pod is deleted for a
//! restart or for the instance's removal, the capture hands over its ownership and tables
//! ([`super::handover`]); and the instance's status from its Pod and TiCDC's `/status` (the
//! capture ID and whether it is the owner).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use operator_api::conditions::{self, Look, reasons};
use operator_api::core::{Cluster, TiCDC, TiCDCGroup, TiCDCStatus, TlsSecret};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::instance::{self, PodRemoval};
use operator_runtime::instance_reconcile::{Blocked, Finished, InstanceRules, Prepared};
use operator_runtime::pod::{is_ready, readiness, synced as pod_synced};
use operator_runtime::reconcile::{Error, Started};
use operator_runtime::tls::SecretMount;
use pd_client::CaptureStatus;

use super::Ctx;
use super::build;
use super::handover::{self, Step};
use crate::context::MANAGER;
use crate::instance::REASON_NO_PD;

/// How often a Ready instance's `/status` is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How often an instance that is not Ready, or whose capture hands over, is looked at again.
const SHORT_INTERVAL: Duration = Duration::from_secs(2);

/// What a TiCDC's objects are built from besides the instance.
pub struct Inputs {
    /// TiCDC's `--pd`.
    pd_urls: String,
}

/// The TiCDC instance rules on the runtime's instance reconciler.
pub struct Rules;

impl InstanceRules for Rules {
    type Instance = TiCDC;
    type Group = TiCDCGroup;
    type Ctx = Ctx;
    type Inputs = Inputs;

    const MANAGER: &'static str = MANAGER;
    const METRIC: &'static str = "ticdc";
    const KEPT: &'static str = "the instance and its ConfigMap";
    const CLUSTER_TLS_DIR: &'static str = build::CLUSTER_TLS_DIR;

    fn instances(ctx: &Ctx) -> &Store<TiCDC> {
        &ctx.instances
    }

    fn groups(ctx: &Ctx) -> &Store<TiCDCGroup> {
        &ctx.groups
    }

    async fn finalize(
        ctx: &Ctx,
        ticdc: &TiCDC,
        start: &Started,
        alone: bool,
    ) -> Result<Finished<TiCDCStatus>, Error> {
        finalize(ctx, ticdc, start.cluster.as_deref(), alone).await
    }

    async fn inputs(
        ctx: &Ctx,
        ticdc: &TiCDC,
        cluster: &Cluster,
        _: Option<&TiCDCGroup>,
        _: Option<&Pod>,
    ) -> Result<Result<Inputs, Blocked>, Error> {
        let namespace = ticdc.namespace().unwrap_or_default();
        let status_pd = cluster
            .status
            .as_ref()
            .map(|s| s.pd.clone())
            .unwrap_or_default();
        let pd_services = crate::build::pd_services(
            cluster,
            &ctx.caches
                .pd_groups_of(&namespace, &ticdc.spec.cluster.name),
        );
        let dns = Dns::of_spec(&cluster.spec);
        let Some(pd_path) = crate::build::pd_path(&status_pd, &namespace, &pd_services, &dns)
        else {
            return Ok(Err(Blocked {
                reason: REASON_NO_PD,
                message: format!(
                    "Cluster {} has no status.pd and no PDGroup; TiCDC needs PD to start",
                    ticdc.spec.cluster.name
                ),
                then: Action::requeue(Duration::from_secs(15)),
            }));
        };
        Ok(Ok(Inputs {
            pd_urls: build::pd_urls(&pd_path, &dns),
        }))
    }

    fn cluster_tls(ticdc: &TiCDC) -> Option<&TlsSecret> {
        let security = ticdc.spec.template.security.as_ref()?;
        Some(&security.tls.as_ref()?.cluster.as_ref()?.secret)
    }

    fn config_map(
        ticdc: &TiCDC,
        cluster: &Cluster,
        _: &Inputs,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError> {
        let config = build::config(ticdc, &Dns::of_spec(&cluster.spec), mounts)?;
        build::config_map(ticdc, config)
    }

    fn pod(ticdc: &TiCDC, inputs: &Inputs) -> Result<Pod, BuildError> {
        build::pod(ticdc, &inputs.pd_urls)
    }

    fn pod_inputs(inputs: &Inputs) -> serde_json::Value {
        serde_json::json!(inputs.pd_urls)
    }

    async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiCDCStatus>, Error> {
        act(ctx, prepared).await
    }
}

/// The URL of the instance's TiCDC API (or its endpoint override).
fn api_url(ctx: &Ctx, ticdc: &TiCDC, cluster: Option<&Cluster>) -> String {
    ctx.status_url(ticdc, build::api_url(ticdc, &Dns::of(cluster)))
}

/// Whether the Pod runs a server that can be asked: not terminating, and ready.
fn serving(pod: Option<&Pod>) -> bool {
    pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
}

/// One look of the hand-over before the Pod goes: the step, with the `CaptureDrained`
/// condition set on `status` (and an Event when the step is news).
async fn look_before_pod_goes(
    ctx: &Ctx,
    ticdc: &TiCDC,
    cluster: Option<&Cluster>,
    pod: Option<&Pod>,
    status: &mut TiCDCStatus,
) -> Result<Step, Error> {
    let url = api_url(ctx, ticdc, cluster);
    let client = ctx.client_of(ticdc)?;
    let now = Timestamp::now();
    let elapsed = handover::elapsed(&status.common.conditions, now);
    let step = handover::hand_over(&client, &url, serving(pod), elapsed, ctx.drain_timeout).await;
    let (holds, reason, message) = match &step {
        Step::Go { reason, message } => (true, *reason, message.clone()),
        Step::Wait { reason, message } => (false, *reason, message.clone()),
        // hand_over resolves these into Wait.
        Step::Resign | Step::Drain { .. } => return Ok(step),
    };
    let known = conditions::find(&status.common.conditions, conditions::CAPTURE_DRAINED)
        .is_some_and(|c| c.reason == reason);
    if !known {
        let action = "HandOver";
        if reason == reasons::DRAIN_TIMED_OUT || reason == reasons::TICDC_UNREACHABLE {
            ctx.events
                .warning(ticdc, reason, action, message.clone())
                .await;
        } else {
            ctx.events
                .normal(ticdc, reason, action, message.clone())
                .await;
        }
    }
    Look::now(ticdc.metadata.generation).set(
        &mut status.common.conditions,
        conditions::CAPTURE_DRAINED,
        holds,
        reason,
        message,
    );
    Ok(step)
}

/// The Pod created, or (after the hand-over) restarted when outdated, and the status observed
/// from the Pod and TiCDC's `/status`.
async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiCDCStatus>, Error> {
    let Prepared {
        instance: ticdc,
        cluster,
        desired,
        pod,
        ..
    } = prepared;
    instance::create_pvcs(ctx, MANAGER, ticdc, build::pvcs(ticdc)?).await?;
    let mut status = ticdc.status.clone().unwrap_or_default();
    let mut requeue = None;
    match &pod {
        None => {
            instance::create_pod(ctx, MANAGER, ticdc, &desired).await?;
            requeue = Some(SHORT_INTERVAL);
        }
        Some(p) if p.metadata.deletion_timestamp.is_some() => requeue = Some(SHORT_INTERVAL),
        Some(p) if !build::pod_is_current(p, &desired) => {
            let step =
                look_before_pod_goes(ctx, ticdc, Some(cluster), pod.as_ref(), &mut status).await?;
            if matches!(step, Step::Go { .. }) {
                let note = "; its capture handed over its ownership and tables first";
                instance::restart_pod(ctx, ticdc, p, note).await?;
            }
            requeue = Some(SHORT_INTERVAL);
        }
        Some(_) => {}
    }
    let health = if serving(pod.as_ref()) {
        let url = api_url(ctx, ticdc, Some(cluster));
        let answer = match ctx.client_of(ticdc) {
            Ok(client) => client.ticdc_status(&url).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        Some(
            answer
                .map_err(|error| format!("TiCDC's /status does not answer (asked {url}): {error}")),
        )
    } else {
        None
    };
    let status = observe_status(ticdc, status, pod.as_ref(), &desired, health);
    let ready = conditions::is_true(&status.common.conditions, conditions::READY);
    let then = requeue.unwrap_or(if ready {
        HEALTH_INTERVAL
    } else {
        SHORT_INTERVAL
    });
    Ok(Finished::with(status, Action::requeue(then)))
}

/// A removed instance: the capture hands over (when only it goes, not its group or Cluster),
/// then its Pod is deleted, then its PVCs; then the instance lets go.
async fn finalize(
    ctx: &Ctx,
    ticdc: &TiCDC,
    cluster: Option<&Cluster>,
    alone: bool,
) -> Result<Finished<TiCDCStatus>, Error> {
    if !ticdc.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Finished::then(Action::await_change()));
    }
    let namespace = ticdc.namespace().unwrap_or_default();
    let pod = operator_runtime::cache::get(&ctx.caches.pods, &namespace, &ticdc.name_any());
    let mut status = ticdc.status.clone().unwrap_or_default();
    let before = status.clone();
    if alone
        && pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
    {
        let step = look_before_pod_goes(ctx, ticdc, cluster, pod.as_ref(), &mut status).await?;
        if !matches!(step, Step::Go { .. }) {
            return Ok(Finished::with(status, Action::requeue(SHORT_INTERVAL)));
        }
    }
    let written = |then: Action| {
        if status == before {
            Finished::then(then)
        } else {
            Finished::with(status.clone(), then)
        }
    };
    match instance::remove_pod(ctx, ticdc, "a TiCDC server keeps no data").await? {
        PodRemoval::Gone => {}
        PodRemoval::Deleted | PodRemoval::Terminating => {
            return Ok(written(Action::requeue(SHORT_INTERVAL)));
        }
    }
    instance::delete_pvcs(ctx, ticdc).await?;
    instance::release(ctx, ticdc).await?;
    Ok(Finished::then(Action::await_change()))
}

/// The status from the Pod and what TiCDC's `/status` said (`None`: not asked, the Pod is
/// missing, terminating or not ready). A current, running Pod clears the last hand-over.
fn observe_status(
    ticdc: &TiCDC,
    mut status: TiCDCStatus,
    pod: Option<&Pod>,
    desired: &Pod,
    health: Option<Result<CaptureStatus, String>>,
) -> TiCDCStatus {
    let generation = ticdc.metadata.generation;
    let look = Look::now(generation);
    let (ready, reason, message) = match readiness(pod) {
        Some(verdict) => verdict,
        None => match &health {
            Some(Ok(capture)) => (
                true,
                reasons::READY,
                format!("TiCDC {} serves capture {}", capture.version, capture.id),
            ),
            Some(Err(error)) => (false, reasons::INSTANCE_NOT_HEALTHY, error.clone()),
            None => (false, reasons::POD_NOT_READY, "the Pod is not ready".into()),
        },
    };
    match &health {
        Some(Ok(capture)) => {
            status.id = capture.id.clone();
            status.is_owner = capture.is_owner;
        }
        // An owner that does not answer is not known to lead.
        _ => status.is_owner = false,
    }
    let conditions = &mut status.common.conditions;
    look.set(conditions, conditions::READY, ready, reason, message);
    let current = pod.is_some_and(|p| build::pod_is_current(p, desired));
    let (synced, reason, message) = pod_synced(pod, current);
    look.set(conditions, conditions::SYNCED, synced, reason, message);
    if current && ready {
        conditions.retain(|c| c.type_ != conditions::CAPTURE_DRAINED);
    }
    if conditions::find(conditions, conditions::SUSPENDED).is_some() {
        let message = "the Pod runs again";
        look.set(
            conditions,
            conditions::SUSPENDED,
            false,
            reasons::UNSUSPENDED,
            message,
        );
    }
    status.common.observed_generation = generation.unwrap_or_default();
    status.common.current_revision = build::revision_of(ticdc);
    status.common.update_revision = status.common.current_revision.clone();
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use operator_api::core::Topology;
    use testkit::builders;

    use super::*;

    fn ticdc() -> TiCDC {
        let group: TiCDCGroup =
            builders::group_of_template("cdc", serde_json::json!({"version": "v8.5.2"})).unwrap();
        let mut t = build::instance(&group, "cdc-abcde", Topology::default(), "r1").unwrap();
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("u".into());
        t.metadata.generation = Some(2);
        t
    }

    fn ready_pod(t: &TiCDC) -> Pod {
        let mut pod = build::pod(t, "http://pd:2379").unwrap();
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }

    fn capture(owner: bool) -> CaptureStatus {
        CaptureStatus {
            version: "v8.5.2".into(),
            id: "c-1".into(),
            is_owner: owner,
        }
    }

    #[test]
    fn the_status_names_the_capture_and_whether_it_is_the_owner() {
        let t = ticdc();
        let pod = ready_pod(&t);
        let status = observe_status(
            &t,
            TiCDCStatus::default(),
            Some(&pod),
            &pod,
            Some(Ok(capture(true))),
        );
        assert_eq!((status.id.as_str(), status.is_owner), ("c-1", true));
        assert!(conditions::is_true(
            &status.common.conditions,
            conditions::READY
        ));
        assert!(conditions::is_true(
            &status.common.conditions,
            conditions::SYNCED
        ));
        assert_eq!(status.common.observed_generation, 2);

        let silent = observe_status(&t, status, Some(&pod), &pod, Some(Err("refused".into())));
        assert!(
            !silent.is_owner,
            "an owner that does not answer is not known to lead"
        );
        assert_eq!(silent.id, "c-1");
        assert!(!conditions::is_true(
            &silent.common.conditions,
            conditions::READY
        ));
    }

    #[test]
    fn a_current_ready_pod_clears_the_last_hand_over_but_an_outdated_one_keeps_it() {
        let t = ticdc();
        let pod = ready_pod(&t);
        let mut status = TiCDCStatus::default();
        Look::now(None).set(
            &mut status.common.conditions,
            conditions::CAPTURE_DRAINED,
            false,
            reasons::DRAINING_TABLES,
            "3 left",
        );
        let mut newer = t.clone();
        newer.spec.template.common.version = "v8.5.3".into();
        let desired = build::pod(&newer, "http://pd:2379").unwrap();
        let kept = observe_status(
            &newer,
            status.clone(),
            Some(&pod),
            &desired,
            Some(Ok(capture(false))),
        );
        assert!(conditions::find(&kept.common.conditions, conditions::CAPTURE_DRAINED).is_some());
        let cleared = observe_status(&t, status, Some(&pod), &pod, Some(Ok(capture(false))));
        assert!(
            conditions::find(&cleared.common.conditions, conditions::CAPTURE_DRAINED).is_none()
        );
    }
}
