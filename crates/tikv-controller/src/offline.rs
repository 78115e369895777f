//! `spec.offline` of a TiKV or TiFlash instance. tidb-operator v2's group controller scales in by
//! setting it on the instances it takes out; this operator marks them instead
//! ([`keys::ANNO_DEFER_DELETE`]). An instance found with `offline: true` (a scale-in that operator
//! started, or a user's request) is taken over: its mark replaces the field in one write, so the
//! same store goes out through PD, no other, and a scale-out can still keep it.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use operator_api::keys;
use operator_runtime::apply::state_manager;
use operator_runtime::expect;
use operator_runtime::reconcile::Error;
use serde::Serialize;
use serde::de::DeserializeOwned;

use operator_runtime::component::Shared;

use crate::context::MANAGER;
use crate::scaling::StoreInstance;

/// Event reason: `spec.offline` was taken over as this operator's removal mark.
pub const REASON_OFFLINE_REQUESTED: &str = "OfflineRequested";

/// The patch that replaces `spec.offline` with the removal mark: one write, so the instance is
/// never seen with neither.
pub fn takeover_patch() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"annotations": {keys::ANNO_DEFER_DELETE: keys::ANNO_TRUE}},
        "spec": {"offline": null},
    })
}

/// Takes `spec.offline: true` over on `instance` and says so in an Event.
pub async fn take_over<I>(ctx: &Shared, instance: &I) -> Result<(), Error>
where
    I: StoreInstance
        + Resource<Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let patched = Api::<I>::namespaced(ctx.client.clone(), &namespace)
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(state_manager(MANAGER)),
                ..PatchParams::default()
            },
            &Patch::Merge(&takeover_patch()),
        )
        .await
        .map_err(Error::kube(format!(
            "taking over spec.offline of {} {name}",
            I::KIND
        )))?;
    ctx.expectations.wrote(&expect::key_of(instance), &patched);
    ctx.events
        .normal(
            instance,
            REASON_OFFLINE_REQUESTED,
            "ScaleIn",
            format!(
                "spec.offline is true: the store of {} {name} is taken out through PD as in a scale-in, and the instance goes once PD reports it Tombstone (its group makes a new one if its replicas still count it)",
                I::KIND
            ),
        )
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_takeover_sets_the_mark_and_clears_the_field_in_one_patch() {
        let patch = takeover_patch();
        assert_eq!(
            patch["metadata"]["annotations"][keys::ANNO_DEFER_DELETE],
            keys::ANNO_TRUE
        );
        assert!(patch["spec"]["offline"].is_null());
        assert!(patch["spec"].as_object().unwrap().contains_key("offline"));
    }
}
