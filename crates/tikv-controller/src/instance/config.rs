//! `updateStrategy.config: HotReload` for a TiKV: which step the running Pod needs for the
//! instance's `config`, and the online change through the store's status port once the store
//! serves. A change that needs a restart goes through the ordinary safe restart instead.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use operator_runtime::online_config::{self, ConfigStep, Recorder, Settled};
use operator_runtime::pod::is_ready;
use pd_client::StoreInfo;

use super::{Draft, Scope};
use crate::{build, online};
use operator_runtime::reconcile::Error;

/// The step the running `pod` needs; nothing while the Pod cache lags behind the last record.
pub(super) fn step(scope: &Scope<'_>, recorder: &Recorder<'_>, pod: Option<&Pod>) -> ConfigStep {
    let common = &scope.tikv.spec.template.common;
    match pod {
        Some(_) if recorder.lagging(&scope.ctx.caches.pods, &scope.namespace) => {
            ConfigStep::Current
        }
        Some(pod) => {
            online_config::step(&common.update_strategy, pod, &common.config, online::value)
        }
        None => ConfigStep::Current,
    }
}

/// Carries out `step` on a Pod that is otherwise up to date. `Some((when, message))` while the
/// change still waits: `Synced` is false with that message, and the instance looks again then.
pub(super) async fn apply(
    scope: &Scope<'_>,
    recorder: &Recorder<'_>,
    draft: &mut Draft,
    step: &ConfigStep,
    store: Option<&StoreInfo>,
    pod: &Pod,
) -> Result<Option<(Duration, String)>, Error> {
    let tikv = scope.tikv;
    let desired = &tikv.spec.template.common.config;
    match step {
        ConfigStep::Online(items) if is_ready(pod) && store.is_some_and(StoreInfo::is_up) => {
            let url = scope
                .ctx
                .status_url(tikv, build::status_url(tikv, &scope.dns));
            let answer = scope
                .ctx
                .status_of(tikv)?
                .tikv_set_config(&url, items)
                .await;
            let settled = recorder
                .settle(&scope.ctx.events, tikv, items, answer, online::refused)
                .await?;
            match settled {
                Settled::Applied(change) => {
                    draft.status.last_config_change = Some(change);
                    Ok(None)
                }
                Settled::Refused => Ok(Some((
                    Duration::from_secs(1),
                    format!(
                        "TiKV refused to change {} online; the Pod restarts",
                        online_config::key_list(items.keys())
                    ),
                ))),
                Settled::Failed(source) => Err(Error::Status { url, source }),
            }
        }
        ConfigStep::Online(items) => Ok(Some((
            Duration::from_secs(5),
            format!(
                "{} change online once the store is Up and its Pod ready",
                online_config::key_list(items.keys())
            ),
        ))),
        ConfigStep::Record => {
            recorder
                .record(desired)
                .await
                .map_err(Error::kube("recording the config on the Pod"))?;
            Ok(None)
        }
        ConfigStep::Current | ConfigStep::Restart(_) => Ok(None),
    }
}
