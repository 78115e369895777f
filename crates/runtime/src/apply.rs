//! Writing owned objects: server-side apply with one field manager per controller, skipped
//! entirely when the object already carries the hash of what would be applied, so a reconcile
//! that changes nothing makes no request that writes.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::revision::hash_of;

/// Annotation holding the hash of the object as the controller last applied it.
pub const APPLIED_HASH: &str = "core.pingcap.com/applied-hash";

/// Errors of applying an object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or failed the request.
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Api {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        source: kube::Error,
    },
}

/// Stamps `desired` with the hash of its content (annotation [`APPLIED_HASH`]) and returns it.
pub fn with_applied_hash<K: Resource + Serialize>(mut desired: K) -> K {
    desired.annotations_mut().remove(APPLIED_HASH);
    let hash = hash_of(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH.to_string(), hash);
    desired
}

/// Whether `existing` already is what `desired` (stamped by [`with_applied_hash`]) describes.
pub fn is_current<K: Resource>(existing: &K, desired: &K) -> bool {
    let want = desired.annotations().get(APPLIED_HASH);
    want.is_some() && existing.annotations().get(APPLIED_HASH) == want
}

/// Applies `desired` (server-side, forced, as `manager`) unless `existing` already matches it.
/// Returns the object as it now is, and whether a request was made.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    manager: &str,
    existing: Option<&K>,
    desired: K,
) -> Result<(K, bool), ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let desired = with_applied_hash(desired);
    if let Some(existing) = existing
        && is_current(existing, &desired)
    {
        return Ok((existing.clone(), false));
    }
    let name = desired.name_any();
    let params = PatchParams::apply(manager).force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| ApplyError::Api {
            kind: K::kind(&K::DynamicType::default()).into_owned(),
            namespace: desired.namespace().unwrap_or_default(),
            name: name.clone(),
            source,
        })?;
    Ok((applied, true))
}

/// Creates each of `objects` that `exists` (a cache lookup) does not know, and leaves existing
/// ones as they are: for objects written once, such as PVCs, whose specs the API server does not
/// let change freely. One the cache has not seen yet but the API server has is left alone too.
pub async fn create_missing<K>(
    api: &Api<K>,
    manager: &str,
    objects: Vec<K>,
    exists: impl Fn(&K) -> bool,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let params = PostParams {
        field_manager: Some(manager.to_string()),
        ..PostParams::default()
    };
    for object in objects.into_iter().filter(|o| !exists(o)) {
        match api.create(&params, &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Field manager of the state annotations a controller writes on its own objects with merge
/// patches (a scale-in mark, the start of a leader eviction): a manager of their own, so a
/// server-side apply by `manager`, which never carries them, leaves them alone.
pub fn state_manager(manager: &str) -> String {
    format!("{manager}-state")
}

/// Server-side applies `desired` as `manager` (forced) and creates it when it does not exist, so
/// what `desired` no longer carries leaves the object. An object this controller created or
/// patched before as `manager` (POST, merge patch) is adopted first ([`adopted_managed_fields`]):
/// without that, the API server keeps those fields under their own (manager, Update) entry and no
/// apply ever removes them. `state_annotations` are the annotation keys that are operator state
/// rather than template; they move to [`state_manager`] instead.
pub async fn apply_owned<K>(
    api: &Api<K>,
    manager: &str,
    existing: Option<&K>,
    desired: &K,
    state_annotations: &[&str],
) -> Result<K, ApplyError>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = desired.name_any();
    let error = |source| ApplyError::Api {
        kind: K::kind(&K::DynamicType::default()).into_owned(),
        namespace: desired.namespace().unwrap_or_default(),
        name: name.clone(),
        source,
    };
    if let Some(existing) = existing
        && let Some(entries) =
            adopted_managed_fields(existing.managed_fields(), manager, state_annotations)
    {
        // A merge patch replaces the whole list; the resourceVersion makes it fail rather than
        // overwrite ownership that changed since `existing` was read.
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": existing.resource_version(),
            "managedFields": entries,
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(error)?;
        tracing::info!(
            object = name,
            manager,
            "adopted fields written before server-side apply"
        );
    }
    api.patch(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(desired),
    )
    .await
    .map_err(error)
}

/// Adopts every object of `objects` that still has fields `manager` wrote before server-side
/// apply (see [`apply_owned`]), applying what `desired` builds for it: the same content it has,
/// so nothing changes but ownership and no Pod restarts. `desired` answers `None` for objects
/// that are not up to date; their next update adopts them. Returns the objects adopted, as
/// written.
pub async fn adopt_all<K>(
    api: &Api<K>,
    manager: &str,
    objects: &[K],
    state_annotations: &[&str],
    desired: impl Fn(&K) -> Option<K>,
) -> Result<Vec<K>, ApplyError>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let mut adopted = Vec::new();
    for object in objects {
        if object.meta().deletion_timestamp.is_some()
            || adopted_managed_fields(object.managed_fields(), manager, state_annotations).is_none()
        {
            continue;
        }
        if let Some(desired) = desired(object) {
            adopted
                .push(apply_owned(api, manager, Some(object), &desired, state_annotations).await?);
        }
    }
    Ok(adopted)
}

/// The managed fields of an object once what `manager` owns through updates (POST, PUT, merge
/// patches; the status subresource aside) belongs to its apply entry, except the annotations in
/// `state_annotations`, which go to [`state_manager`]. `None` when there is nothing to adopt.
pub fn adopted_managed_fields(
    entries: &[ManagedFieldsEntry],
    manager: &str,
    state_annotations: &[&str],
) -> Option<Vec<ManagedFieldsEntry>> {
    let is_update = |e: &ManagedFieldsEntry| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Update")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    };
    let updates: Vec<&ManagedFieldsEntry> = entries.iter().filter(|e| is_update(e)).collect();
    let first = updates.first()?;
    let mut owned = serde_json::Value::Object(serde_json::Map::new());
    for entry in &updates {
        if let Some(fields) = &entry.fields_v1 {
            merge_fields(&mut owned, &fields.0);
        }
    }
    // Split off the state annotations.
    let mut state = serde_json::Map::new();
    if let Some(annotations) = owned
        .get_mut("f:metadata")
        .and_then(|m| m.get_mut("f:annotations"))
        .and_then(serde_json::Value::as_object_mut)
    {
        for key in state_annotations {
            if let Some(value) = annotations.remove(&format!("f:{key}")) {
                state.insert(format!("f:{key}"), value);
            }
        }
    }
    let state_manager = state_manager(manager);
    let mut out: Vec<ManagedFieldsEntry> =
        entries.iter().filter(|e| !is_update(e)).cloned().collect();
    match out
        .iter_mut()
        .find(|e| e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply"))
    {
        Some(apply) => {
            let mut fields = apply
                .fields_v1
                .take()
                .map(|f| f.0)
                .unwrap_or_else(|| serde_json::json!({}));
            merge_fields(&mut fields, &owned);
            apply.fields_v1 = Some(FieldsV1(fields));
        }
        None => out.push(ManagedFieldsEntry {
            manager: Some(manager.to_string()),
            operation: Some("Apply".to_string()),
            fields_v1: Some(FieldsV1(owned)),
            ..(*first).clone()
        }),
    }
    if !state.is_empty() {
        let fields = serde_json::json!({"f:metadata": {"f:annotations": state}});
        match out.iter_mut().find(|e| {
            e.manager.as_deref() == Some(state_manager.as_str())
                && e.operation.as_deref() == Some("Update")
        }) {
            Some(entry) => {
                let mut merged = entry
                    .fields_v1
                    .take()
                    .map(|f| f.0)
                    .unwrap_or_else(|| serde_json::json!({}));
                merge_fields(&mut merged, &fields);
                entry.fields_v1 = Some(FieldsV1(merged));
            }
            None => out.push(ManagedFieldsEntry {
                manager: Some(state_manager),
                operation: Some("Update".to_string()),
                fields_v1: Some(FieldsV1(fields)),
                ..(*first).clone()
            }),
        }
    }
    Some(out)
}

/// Adds every field of the field set `from` to `into` (both in the `FieldsV1` JSON form).
fn merge_fields(into: &mut serde_json::Value, from: &serde_json::Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (key, value) in from {
        match into.get_mut(key) {
            Some(existing) => merge_fields(existing, value),
            None => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn config_map(data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("cm".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some([("config.toml".to_string(), data.to_string())].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn an_object_with_the_same_content_is_current() {
        let applied = with_applied_hash(config_map("a = 1"));
        // What the server returns has more metadata, but the same annotation.
        let mut existing = applied.clone();
        existing.metadata.resource_version = Some("42".into());
        assert!(is_current(
            &existing,
            &with_applied_hash(config_map("a = 1"))
        ));
        assert!(!is_current(
            &existing,
            &with_applied_hash(config_map("a = 2"))
        ));
    }

    #[test]
    fn an_object_never_applied_is_not_current() {
        let plain = config_map("a = 1");
        assert!(!is_current(&plain, &with_applied_hash(config_map("a = 1"))));
        assert!(!is_current(&plain, &plain));
    }

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            api_version: Some("core.pingcap.com/v1alpha1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn fields_written_by_post_and_patches_move_to_the_apply_entry_state_aside() {
        let entries = vec![
            entry(
                "tikv-controller",
                "Update",
                serde_json::json!({"f:metadata": {
                    "f:labels": {"f:a": {}},
                    "f:annotations": {"f:core.pingcap.com/defer-delete": {}, "f:note": {}},
                }, "f:spec": {"f:overlay": {"f:pod": {}}}}),
            ),
            entry(
                "tikv-controller",
                "Apply",
                serde_json::json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:version": {}}}),
            ),
            entry(
                "kubectl",
                "Update",
                serde_json::json!({"f:metadata": {"f:labels": {"f:c": {}}}}),
            ),
            ManagedFieldsEntry {
                subresource: Some("status".into()),
                ..entry(
                    "tikv-controller",
                    "Update",
                    serde_json::json!({"f:status": {}}),
                )
            },
        ];
        let adopted = adopted_managed_fields(
            &entries,
            "tikv-controller",
            &["core.pingcap.com/defer-delete"],
        )
        .unwrap();
        let find = |manager: &str, operation: &str| {
            adopted
                .iter()
                .filter(|e| {
                    e.manager.as_deref() == Some(manager)
                        && e.operation.as_deref() == Some(operation)
                        && e.subresource.is_none()
                })
                .map(|e| e.fields_v1.clone().unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            find("tikv-controller", "Apply"),
            [serde_json::json!({"f:metadata": {
                "f:labels": {"f:a": {}, "f:b": {}},
                "f:annotations": {"f:note": {}},
            }, "f:spec": {"f:version": {}, "f:overlay": {"f:pod": {}}}})]
        );
        assert!(find("tikv-controller", "Update").is_empty());
        assert_eq!(
            find("tikv-controller-state", "Update"),
            [
                serde_json::json!({"f:metadata": {"f:annotations": {"f:core.pingcap.com/defer-delete": {}}}})
            ]
        );
        // Other managers and the status entry are untouched.
        assert_eq!(find("kubectl", "Update").len(), 1);
        assert_eq!(adopted.len(), 4);
        // Once adopted, there is nothing left to adopt.
        assert!(adopted_managed_fields(&adopted, "tikv-controller", &[]).is_none());
    }

    #[test]
    fn an_object_created_by_post_alone_gets_an_apply_entry() {
        let entries = vec![entry(
            "pd-controller",
            "Update",
            serde_json::json!({"f:spec": {"f:replicas": {}}}),
        )];
        let adopted = adopted_managed_fields(&entries, "pd-controller", &[]).unwrap();
        assert_eq!(adopted.len(), 1);
        assert_eq!(adopted[0].operation.as_deref(), Some("Apply"));
        assert_eq!(
            adopted[0].api_version.as_deref(),
            Some("core.pingcap.com/v1alpha1")
        );
    }
}
