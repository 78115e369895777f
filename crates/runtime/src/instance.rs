//! What every instance reconcile (PD, TiKV, TiDB) shares besides its component's rules and the
//! status writes of [`crate::reconcile`]: suspending its Pod when the Cluster suspends compute,
//! deleting an outdated Pod so that it is recreated from the spec, and the end of a removal
//! (PVCs deleted, finalizer released); and writing its ConfigMap and creating its PVCs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, NewCondition, reasons};
use operator_api::core::Instance;
use operator_api::keys;

use crate::cache;
use crate::component::Shared;
use crate::pod;
use crate::reconcile::{Error, StatusKind};

/// Suspended compute: deletes the running Pod (the instance, its ConfigMap and PVCs stay, and the
/// same instance comes back on them when the Cluster resumes). Returns the instance's status with
/// `Suspended` and `Ready` saying where that stands, for the caller to adjust and write, and when
/// to look again.
pub async fn suspend<K: StatusKind>(
    shared: &Shared,
    instance: &K,
    pod: Option<&Pod>,
    kept: &str,
) -> Result<(K::StatusOf, Action), Error> {
    if let Some(pod) = pod
        && pod.metadata.deletion_timestamp.is_none()
    {
        let namespace = instance.namespace().unwrap_or_default();
        Api::<Pod>::namespaced(shared.client.clone(), &namespace)
            .delete(&pod.name_any(), &DeleteParams::default())
            .await
            .map_err(Error::kube("deleting the Pod to suspend"))?;
        let note = format!("the Cluster suspends compute: removing the Pod, keeping {kept}");
        shared
            .events
            .normal(instance, reasons::SUSPENDING, "Suspend", note)
            .await;
    }
    let gone = pod.is_none();
    let (reason, message) = if gone {
        (
            reasons::SUSPENDED,
            format!("the Pod is removed; kept: {kept}"),
        )
    } else {
        (reasons::SUSPENDING, "the Pod is being removed".to_string())
    };
    let mut copy = instance.clone();
    let now = Timestamp::now();
    for (type_, value) in [(conditions::SUSPENDED, gone), (conditions::READY, false)] {
        conditions::set(
            copy.conditions_mut(),
            NewCondition {
                type_,
                status: value,
                reason,
                message: message.clone(),
                observed_generation: instance.meta().generation,
            },
            now,
        );
    }
    let status = copy.status().cloned().unwrap_or_default();
    let then = if gone {
        crate::reconcile::wait_for_cluster()
    } else {
        Action::requeue(Duration::from_secs(2))
    };
    Ok((status, then))
}

/// Deletes an outdated Pod, only the one seen (by UID), so that it is recreated from the spec;
/// `note` ends the `PodRestarted` Event's message.
pub async fn restart_pod<K: StatusKind>(
    shared: &Shared,
    instance: &K,
    pod: &Pod,
    note: &str,
) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let namespace = instance.namespace().unwrap_or_default();
    Api::<Pod>::namespaced(shared.client.clone(), &namespace)
        .delete(&pod.name_any(), &params)
        .await
        .map_err(Error::kube("deleting the outdated Pod"))?;
    let message = format!("recreating the Pod with the new template{note}");
    shared
        .events
        .normal(instance, "PodRestarted", "Restart", message)
        .await;
    tracing::info!(pod = pod.name_any(), "deleted the outdated Pod");
    Ok(())
}

/// Deletes the instance's PVCs (its data is no longer needed); whether any was left.
pub async fn delete_pvcs<K>(shared: &Shared, instance: &K) -> Result<bool, Error>
where
    K: StatusKind + Instance,
{
    let namespace = instance.namespace().unwrap_or_default();
    crate::finalize::delete_pvcs(
        &Api::namespaced(shared.client.clone(), &namespace),
        &instance.name_any(),
        K::COMPONENT,
    )
    .await
    .map_err(Error::kube("deleting the PVCs"))
}

/// Takes the operator's finalizer off a deleted instance, which lets it go.
pub async fn release<K: StatusKind>(shared: &Shared, instance: &K) -> Result<Action, Error> {
    let namespace = instance.namespace().unwrap_or_default();
    crate::finalize::set_finalizer(
        &Api::<K>::namespaced(shared.client.clone(), &namespace),
        instance,
        false,
    )
    .await
    .map_err(Error::kube("removing the finalizer"))?;
    tracing::info!(instance = instance.name_any(), "instance released");
    Ok(Action::await_change())
}

/// Writes the instance's ConfigMap (server-side apply under `manager`) when the cached one
/// differs from `config_map`.
pub async fn apply_config_map<K>(
    shared: &Shared,
    manager: &str,
    instance: &K,
    config_map: ConfigMap,
) -> Result<(), Error>
where
    K: StatusKind,
{
    let namespace = instance.namespace().unwrap_or_default();
    let existing = cache::get(&shared.caches.config_maps, &namespace, &instance.name_any());
    crate::apply::apply_if_changed(
        &Api::<ConfigMap>::namespaced(shared.client.clone(), &namespace),
        manager,
        existing.as_ref(),
        config_map,
    )
    .await?;
    Ok(())
}

/// Creates the instance's PVCs that its cache does not show, and asks for more storage on those
/// whose volume grew ([`grow_pvc`]); nothing else of an existing PVC is changed.
pub async fn create_pvcs<K>(
    shared: &Shared,
    manager: &str,
    instance: &K,
    pvcs: Vec<PersistentVolumeClaim>,
) -> Result<(), Error>
where
    K: StatusKind,
{
    let namespace = instance.namespace().unwrap_or_default();
    let api = Api::<PersistentVolumeClaim>::namespaced(shared.client.clone(), &namespace);
    for desired in &pvcs {
        if let Some(existing) = cache::get(&shared.caches.pvcs, &namespace, &desired.name_any()) {
            grow_pvc(shared, &api, instance, &existing, desired).await?;
        }
    }
    crate::apply::create_missing(&api, manager, pvcs, |pvc| {
        cache::get(&shared.caches.pvcs, &namespace, &pvc.name_any()).is_some()
    })
    .await
    .map_err(Error::kube("creating the PVCs"))?;
    Ok(())
}

/// The storage a PVC asks for.
fn requested(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// Asks for more storage on `existing` when the template's volume grew (`desired` asks for more),
/// without touching the Pod: the storage provider expands the volume, online where it can. A
/// StorageClass that does not allow expansion makes the API server refuse: a Warning Event says
/// so, and the PVC is marked so that the same size is not asked for again. A smaller size is
/// never asked for (admission refuses a shrink; an older PVC that is larger stays as it is).
async fn grow_pvc<K: StatusKind>(
    shared: &Shared,
    api: &Api<PersistentVolumeClaim>,
    instance: &K,
    existing: &PersistentVolumeClaim,
    desired: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let (Some(want), Some(has)) = (requested(desired), requested(existing)) else {
        return Ok(());
    };
    let larger = matches!(
        (crate::quantity::bytes(want), crate::quantity::bytes(has)),
        (Some(want), Some(has)) if want > has
    );
    let refused_before = existing.annotations().get(keys::ANNO_RESIZE_REFUSED) == Some(&want.0);
    if !larger || refused_before || existing.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let name = existing.name_any();
    let patch = serde_json::json!({
        "metadata": {"annotations": {keys::ANNO_RESIZE_REFUSED: null}},
        "spec": {"resources": {"requests": {"storage": want}}}
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            let message = format!(
                "PVC {name}: storage {} → {}; the storage provider expands the volume, the Pod keeps running",
                has.0, want.0
            );
            shared
                .events
                .normal(instance, "VolumeExpanding", "Resize", message)
                .await;
            Ok(())
        }
        // Forbidden (the StorageClass does not allow expansion) or invalid: say so once.
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
            let message = format!(
                "PVC {name} cannot grow from {} to {}: {}; it keeps its size (its StorageClass must set allowVolumeExpansion)",
                has.0, want.0, s.message
            );
            shared
                .events
                .warning(instance, "VolumeNotExpandable", "Resize", message)
                .await;
            let mark = serde_json::json!({
                "metadata": {"annotations": {keys::ANNO_RESIZE_REFUSED: want.0}}
            });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
                .await
                .map_err(Error::kube("marking a PVC whose expansion was refused"))?;
            Ok(())
        }
        Err(error) => Err(Error::kube("expanding a PVC")(error)),
    }
}

/// Creates the instance's Pod (under `manager`).
pub async fn create_pod<K>(
    shared: &Shared,
    manager: &str,
    instance: &K,
    pod: &Pod,
) -> Result<(), Error>
where
    K: StatusKind + Instance,
{
    let namespace = instance.namespace().unwrap_or_default();
    let params = kube::api::PostParams {
        field_manager: Some(manager.into()),
        ..kube::api::PostParams::default()
    };
    match Api::<Pod>::namespaced(shared.client.clone(), &namespace)
        .create(&params, pod)
        .await
    {
        Ok(_) => {}
        // The Pod cache has not shown this controller's own earlier create yet (a reconcile woken
        // by another change in between). The Pod is there; its watch event reconciles again.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            tracing::debug!(
                instance = instance.name_any(),
                component = K::COMPONENT,
                "the Pod exists already; waiting for the cache to show it"
            );
            return Ok(());
        }
        Err(e) => return Err(Error::kube("creating the Pod")(e)),
    }
    tracing::info!(
        instance = instance.name_any(),
        component = K::COMPONENT,
        "created Pod"
    );
    Ok(())
}

/// Where the Pod of an instance that is being removed stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodRemoval {
    /// No Pod is left.
    Gone,
    /// The Pod was asked to go just now.
    Deleted,
    /// The Pod is terminating.
    Terminating,
}

/// Deletes the instance's Pod (as the cache shows it) unless it is already terminating; a Pod
/// stuck terminating is removed from the API ([`force_delete_stuck_pod`], `left` saying why that
/// is safe for this component).
pub async fn remove_pod<K>(shared: &Shared, instance: &K, left: &str) -> Result<PodRemoval, Error>
where
    K: StatusKind,
{
    let namespace = instance.namespace().unwrap_or_default();
    let name = instance.name_any();
    let Some(pod) = cache::get(&shared.caches.pods, &namespace, &name) else {
        return Ok(PodRemoval::Gone);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        force_delete_stuck_pod(shared, instance, &pod, left).await?;
        return Ok(PodRemoval::Terminating);
    }
    Api::<Pod>::namespaced(shared.client.clone(), &namespace)
        .delete(&name, &DeleteParams::default())
        .await
        .map_err(Error::kube("deleting the Pod"))?;
    Ok(PodRemoval::Deleted)
}

/// Removes from the API a Pod of a removed instance that is stuck terminating
/// ([`pod::stuck_terminating`]): its Node is lost or cut off and will never confirm its end, so
/// without this the instance, its PVCs and whatever waits for them would wait for ever. Called
/// only once the member has left its cluster (`left` says how, for the Event): a Pod that comes
/// back to life on a returning Node cannot rejoin, and its kubelet stops it once the API no
/// longer has it. Returns whether it removed it.
pub async fn force_delete_stuck_pod<K: StatusKind>(
    shared: &Shared,
    instance: &K,
    pod: &Pod,
    left: &str,
) -> Result<bool, Error> {
    let Some(past) = pod::stuck_terminating(pod, Timestamp::now()) else {
        return Ok(false);
    };
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let namespace = instance.namespace().unwrap_or_default();
    match Api::<Pod>::namespaced(shared.client.clone(), &namespace)
        .delete(&pod.name_any(), &params)
        .await
    {
        Ok(_) => {}
        // Gone meanwhile, or another Pod of that name: nothing of this one to remove.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(false),
        Err(error) => return Err(Error::kube("force-deleting a stuck Pod")(error)),
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("its Node");
    let message = format!(
        "the Pod was still terminating {}s after its grace period ended: {node} does not confirm (lost or cut off); {left}, so the Pod is removed from the API",
        past.as_secs()
    );
    shared
        .events
        .warning(instance, "PodForceDeleted", "Remove", message)
        .await;
    tracing::warn!(
        pod = pod.name_any(),
        node,
        "force-deleted a stuck Pod of a removed instance"
    );
    Ok(true)
}
