//! What removing an object shares: the operator's finalizer put on or taken off, and the PVCs of
//! a removed instance deleted.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use operator_api::keys;
use serde::de::DeserializeOwned;

/// Puts the operator's finalizer on `object` or takes it off, keeping any other. The patch
/// carries the object's `resourceVersion`, so it never drops a finalizer someone added since.
/// Returns whether it wrote: not when the object already is as asked, nor when it is gone.
pub async fn set_finalizer<K>(api: &Api<K>, object: &K, present: bool) -> Result<bool, kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let has = object.finalizers().iter().any(|f| f == keys::FINALIZER);
    if has == present {
        return Ok(false);
    }
    let mut finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != keys::FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(keys::FINALIZER.to_string());
    }
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": object.resource_version(),
    }});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the PVCs of instance `instance` of `component` (by their labels). Returns whether any
/// was still there, being deleted or not.
pub async fn delete_pvcs(
    api: &Api<PersistentVolumeClaim>,
    instance: &str,
    component: &str,
) -> Result<bool, kube::Error> {
    let selector = format!(
        "{}={instance},{}={component}",
        keys::LABEL_INSTANCE,
        keys::LABEL_COMPONENT
    );
    let left = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    for pvc in &left {
        if pvc.metadata.deletion_timestamp.is_none() {
            api.delete(&pvc.name_any(), &DeleteParams::default())
                .await?;
            tracing::info!(
                pvc = pvc.name_any(),
                "deleted the PVC of a removed instance"
            );
        }
    }
    Ok(!left.is_empty())
}
