//! A stand-in volume provisioner (test tooling): the local control plane has no storage, so for
//! each pending PVC of the operands it creates a PersistentVolume already bound to that claim
//! (Kubernetes' own PV controller completes the binding), and removes such volumes once their
//! claim is gone; the claims of generic ephemeral volumes of operand Pods (TiCDC's sort
//! directory in the reference's example) get one too. No data is stored anywhere. The same watch tells the simulation which claims
//! exist (a store's identity is its data volume) and which were deleted (their data is gone).
//!
//! A claim of a StorageClass whose `volumeBindingMode` is `WaitForFirstConsumer` stands for a
//! node-local volume: it gets its volume only once the scheduler has picked a Node for the Pod
//! (the claim's `volume.kubernetes.io/selected-node`), and that volume is pinned to the Node
//! (required node affinity on `kubernetes.io/hostname`), as a local-volume provisioner's is.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::clock::Now;
use crate::http::{SharedSim, lock};
use crate::sim::PvcObservation;

/// Label on the volumes this module creates.
pub const FAKE_VOLUME_LABEL: &str = "operand-simulator.test/fake-volume";

/// The annotation by which the scheduler tells a provisioner the Node of a delayed-binding claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// The volume that satisfies a claim, or `None` if the claim needs none (bound, or going away)
/// or none yet: a node-local claim (`local`: its class binds on first consumer) waits for the
/// scheduler's Node, and its volume is pinned there.
pub fn volume_for(pvc: &PersistentVolumeClaim, local: bool) -> Option<PersistentVolume> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let spec = pvc.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let node = pvc.annotations().get(SELECTED_NODE).cloned();
    if local && node.is_none() {
        return None;
    }
    let node_affinity = node.filter(|_| local).map(|node| VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec![node]),
                }]),
                ..NodeSelectorTerm::default()
            }],
        }),
    });
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
            node_affinity,
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

/// Whether a claim is the operator's (labelled as its objects are): the simulation tracks it.
pub fn is_operand_claim(pvc: &PersistentVolumeClaim) -> bool {
    pvc.labels()
        .get(operator_api::keys::LABEL_MANAGED_BY)
        .map(String::as_str)
        == Some(operator_api::keys::MANAGED_BY)
}

/// Whether a claim was made by Kubernetes for a generic ephemeral volume of a Pod (owned by
/// that Pod): it needs a volume like the operator's claims, but holds no data the simulation
/// tracks.
pub fn is_ephemeral_claim(pvc: &PersistentVolumeClaim) -> bool {
    pvc.owner_references()
        .iter()
        .any(|o| o.kind == "Pod" && o.controller == Some(true))
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

/// Watches the claims of the namespace (or every namespace) and feeds the operator's into the
/// simulation; each operator or ephemeral claim seen applied goes to `on_apply` too (the
/// provisioner).
async fn watch_claims<F, Fut>(claims: Api<PersistentVolumeClaim>, sim: SharedSim, on_apply: F)
where
    F: Fn(PersistentVolumeClaim) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut stream = watcher(claims, watcher::Config::default())
        .default_backoff()
        .boxed();
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
        let operand = is_operand_claim(&pvc);
        if !operand && !is_ephemeral_claim(&pvc) {
            continue;
        }
        if operand && let Some(obs) = observe(&pvc, gone) {
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
    let client_for_classes = client.clone();
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
    let classes: &Api<StorageClass> = &Api::all(client_for_classes);
    watch_claims(claims, sim, |pvc| async move {
        let local = match pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
        {
            Some(class) if !class.is_empty() => match classes.get_opt(class).await {
                Ok(found) => {
                    found.and_then(|c| c.volume_binding_mode).as_deref()
                        == Some("WaitForFirstConsumer")
                }
                Err(error) => {
                    tracing::warn!(%error, class, "cannot read a StorageClass");
                    return;
                }
            },
            _ => false,
        };
        let Some(volume) = volume_for(&pvc, local) else {
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
        let volume = volume_for(&claim(None), false).unwrap();
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
        assert!(volume_for(&claim(Some("pv-1")), false).is_none());
    }

    #[test]
    fn a_node_local_claim_waits_for_its_node_and_is_pinned_there() {
        let mut pending = claim(None);
        assert!(volume_for(&pending, true).is_none(), "no Node chosen yet");
        pending
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(SELECTED_NODE.into(), "node-2".into());
        let spec = volume_for(&pending, true).unwrap().spec.unwrap();
        let term = &spec
            .node_affinity
            .unwrap()
            .required
            .unwrap()
            .node_selector_terms[0];
        let requirement = &term.match_expressions.as_ref().unwrap()[0];
        assert_eq!(requirement.key, "kubernetes.io/hostname");
        assert_eq!(
            requirement.values.as_deref(),
            Some(&["node-2".to_string()][..])
        );
        // A claim of an ordinary class is not pinned, whatever the annotation says.
        assert!(
            volume_for(&pending, false)
                .unwrap()
                .spec
                .unwrap()
                .node_affinity
                .is_none()
        );
    }

    #[test]
    fn operator_claims_are_tracked_and_ephemeral_claims_of_pods_only_provisioned() {
        let mut operand = claim(None);
        operand.metadata.labels = Some(BTreeMap::from([(
            operator_api::keys::LABEL_MANAGED_BY.to_string(),
            operator_api::keys::MANAGED_BY.to_string(),
        )]));
        assert!(is_operand_claim(&operand) && !is_ephemeral_claim(&operand));
        let mut ephemeral = claim(None);
        ephemeral.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: "ticdc-abcde".into(),
                uid: "p1".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        assert!(!is_operand_claim(&ephemeral) && is_ephemeral_claim(&ephemeral));
        let other = claim(None);
        assert!(!is_operand_claim(&other) && !is_ephemeral_claim(&other));
    }
}
