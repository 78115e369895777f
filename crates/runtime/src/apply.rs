//! Writing owned objects: server-side apply with one field manager per controller, skipped
//! entirely when the object already carries the hash of what would be applied, so a reconcile
//! that changes nothing makes no request that writes.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
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

/// Creates each of `objects` that does not exist yet and leaves existing ones as they are: for
/// objects written once, such as PVCs, whose specs the API server does not let change freely.
pub async fn create_missing<K>(
    api: &Api<K>,
    manager: &str,
    objects: Vec<K>,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let params = PostParams {
        field_manager: Some(manager.to_string()),
        ..PostParams::default()
    };
    for object in objects {
        if api.get_opt(&object.name_any()).await?.is_none() {
            api.create(&params, &object).await?;
        }
    }
    Ok(())
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
}
