//! A stand-in volume provisioner (test tooling): the local control plane has no storage, so for
//! each pending PVC of the operands it creates a PersistentVolume already bound to that claim
//! (Kubernetes' own PV controller completes the binding), and removes such volumes once their
//! claim is gone. No data is stored anywhere. The same watch tells the simulation which claims
//! exist (a store's identity is its data volume) and which were deleted (their data is gone).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::clock::Now;
use crate::http::{SharedSim, lock};
use crate::sim::PvcObservation;

/// Label on the volumes this module creates.
pub const FAKE_VOLUME_LABEL: &str = "operand-simulator.test/fake-volume";

/// The volume that satisfies a claim, or `None` if the claim needs none (bound, or going away).
pub fn volume_for(pvc: &PersistentVolumeClaim) -> Option<PersistentVolume> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let spec = pvc.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let namespace = pvc.namespace()?;
    let name = pvc.name_any();
    let storage = spec
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?
        .clone();
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(
                &namespace,
                &name,
                &pvc.uid().unwrap_or_default(),
            )),
            labels: Some(BTreeMap::from([(
                FAKE_VOLUME_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), storage)])),
            access_modes: spec.access_modes.clone(),
            volume_mode: spec.volume_mode.clone(),
            storage_class_name: Some(spec.storage_class_name.clone().unwrap_or_default()),
            persistent_volume_reclaim_policy: Some("Retain".to_string()),
            host_path: Some(HostPathVolumeSource {
                path: format!("/var/lib/operand-simulator/{namespace}/{name}"),
                type_: None,
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(namespace),
                name: Some(name),
                uid: pvc.uid(),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    })
}

/// Name of the volume of a claim: unique per claim (a claim deleted and created again under the
/// same name gets a new volume while the old one may still await clean-up), within the name
/// length limit.
pub fn volume_name(namespace: &str, claim: &str, uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let mut name = format!("fake-{namespace}-{claim}");
    if short.is_empty() {
        name.truncate(253);
        return name;
    }
    name.truncate(253 - short.len() - 1);
    format!("{name}-{}", short.to_ascii_lowercase())
}

/// What the simulation takes from a claim; `deleted` when it disappeared or is being deleted.
pub fn observe(pvc: &PersistentVolumeClaim, gone: bool) -> Option<PvcObservation> {
    Some(PvcObservation {
        namespace: pvc.namespace()?,
        name: pvc.metadata.name.clone()?,
        uid: pvc.uid()?,
        deleted: gone || pvc.metadata.deletion_timestamp.is_some(),
    })
}

fn claims_api(client: Client, namespace: Option<&str>) -> Api<PersistentVolumeClaim> {
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Watches the operands' claims and feeds them into the simulation; each claim seen applied
/// goes to `on_apply` too (the provisioner).
async fn watch_claims<F, Fut>(claims: Api<PersistentVolumeClaim>, sim: SharedSim, on_apply: F)
where
    F: Fn(PersistentVolumeClaim) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = watcher::Config::default().labels(&crate::watch::label_selector());
    let mut stream = watcher(claims, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let (pvc, gone) = match event {
            Ok(watcher::Event::InitApply(pvc) | watcher::Event::Apply(pvc)) => (pvc, false),
            Ok(watcher::Event::Delete(pvc)) => (pvc, true),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%error, "watching claims");
                continue;
            }
        };
        if let Some(obs) = observe(&pvc, gone) {
            lock(&sim).observe_pvc(obs, Now::real());
        }
        if !gone {
            on_apply(pvc).await;
        }
    }
}

/// Feeds the operands' claims into the simulation without provisioning volumes.
pub async fn watch_only(client: Client, namespace: Option<String>, sim: SharedSim) {
    let claims = claims_api(client, namespace.as_deref());
    watch_claims(claims, sim, |_| async {}).await;
}

/// Provisions volumes for the operands' claims, and feeds the claims into the simulation,
/// until the process ends.
pub async fn run(client: Client, namespace: Option<String>, sim: SharedSim) {
    let claims = claims_api(client.clone(), namespace.as_deref());
    let volumes: Api<PersistentVolume> = Api::all(client);
    let cleanup_volumes = volumes.clone();
    let cleanup_namespace = namespace.clone();
    tokio::spawn(async move {
        loop {
            remove_released(&cleanup_volumes, cleanup_namespace.as_deref()).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    });
    let volumes = &volumes;
    watch_claims(claims, sim, |pvc| async move {
        let Some(volume) = volume_for(&pvc) else {
            return;
        };
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => tracing::info!(claim = pvc.name_any(), "provisioned a stand-in volume"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(error) => {
                tracing::warn!(%error, claim = pvc.name_any(), "could not create a volume")
            }
        }
    })
    .await;
}

/// Deletes stand-in volumes whose claim is gone (phase Released).
async fn remove_released(volumes: &Api<PersistentVolume>, namespace: Option<&str>) {
    let list = match volumes
        .list(&ListParams::default().labels(&format!("{FAKE_VOLUME_LABEL}=true")))
        .await
    {
        Ok(list) => list,
        Err(error) => {
            tracing::warn!(%error, "listing stand-in volumes");
            return;
        }
    };
    for volume in list {
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let ours = namespace.is_none_or(|ns| {
            volume
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.as_deref())
                == Some(ns)
        });
        if released && ours {
            let _ = volumes
                .delete(&volume.name_any(), &DeleteParams::default())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn claim(volume_name: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-pd-abcde".into()),
                namespace: Some("db".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity("20Gi".into()),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                volume_name: volume_name.map(str::to_string),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    }

    #[test]
    fn a_pending_claim_gets_a_volume_bound_to_it() {
        let volume = volume_for(&claim(None)).unwrap();
        let spec = volume.spec.unwrap();
        assert_eq!(
            volume.metadata.name.as_deref(),
            Some("fake-db-data-pd-abcde-u1")
        );
        assert_eq!(spec.capacity.unwrap()["storage"], Quantity("20Gi".into()));
        let claim_ref = spec.claim_ref.unwrap();
        assert_eq!(claim_ref.uid.as_deref(), Some("u1"));
        assert_eq!(claim_ref.namespace.as_deref(), Some("db"));
        assert_eq!(spec.storage_class_name.as_deref(), Some(""));
    }

    #[test]
    fn a_bound_claim_needs_nothing() {
        assert!(volume_for(&claim(Some("pv-1"))).is_none());
    }
}
