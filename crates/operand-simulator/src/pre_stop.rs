//! The kubelet's part in a Pod's preStop hook, for the hand-over hook of PD, TiKV and TiCDC Pods
//! (`tidb-handover`), which the kwok nodes cannot run. Opt-in (`--pre-stop-binary`).
//!
//! As a kubelet does, it keeps a deleted Pod's process running while the hook runs, then stops
//! it: the simulator adds a finalizer to each Pod with the hook when it first sees it; once the Pod
//! is deleted it runs the hook's command as a local process (the real binary, asking the
//! simulator's PD API instead of the Pod's own member), bounded by the Pod's grace period, then
//! counts the member as stopped and removes the finalizer so the Pod goes. A Pod deleted before
//! the finalizer was added goes without its hook, as one deleted before its container started
//! would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use operator_runtime::handover;

use crate::clock::Now;
use crate::http::{SharedSim, lock};
use crate::sim::PodObservation;

/// The finalizer that holds a deleted Pod while its hook runs.
pub const FINALIZER: &str = "simulator.pingcap.com/pre-stop";
/// The environment variable that points the hand-over at a PD URL of the simulator's.
pub const PD_URL_ENV: &str = "TIDB_HANDOVER_PD";
/// Likewise for the TiCDC server's own URL.
pub const TICDC_URL_ENV: &str = "TIDB_HANDOVER_TICDC";

/// Where each held Pod's hook is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    Running,
    Finished,
}

/// Runs the hand-over hooks of deleted Pods.
#[derive(Clone)]
pub struct PreStop {
    binary: PathBuf,
    base_url: String,
    client: Client,
    sim: SharedSim,
    hooks: Arc<Mutex<BTreeMap<String, Hook>>>,
}

/// The hand-over hook's command of a Pod: the preStop exec command of a container that runs
/// `tidb-handover`.
pub fn hook_command(pod: &Pod) -> Option<Vec<String>> {
    let spec = pod.spec.as_ref()?;
    spec.containers.iter().find_map(|c| {
        let command = handover::hook_of(spec, &c.name)?;
        command
            .first()
            .is_some_and(|program| program.ends_with(&format!("/{}", handover::BINARY)))
            .then_some(command)
    })
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

impl PreStop {
    /// Hooks run with `binary`, asking the PD API the simulator serves at `base_url`.
    pub fn new(binary: PathBuf, base_url: String, client: Client, sim: SharedSim) -> PreStop {
        PreStop {
            binary,
            base_url,
            client,
            sim,
            hooks: Arc::default(),
        }
    }

    fn hook(&self, uid: &str) -> Option<Hook> {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .copied()
    }

    fn set(&self, uid: &str, hook: Hook) {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string(), hook);
    }

    /// Looks at a Pod the watch saw; returns whether its process still runs although the Pod is
    /// being deleted (its hook holds it). Adds the finalizer to a Pod with the hook, and starts
    /// the hook of a deleted one.
    pub async fn on_pod(&self, pod: &Pod, observation: &PodObservation) -> bool {
        let Some(command) = hook_command(pod) else {
            return false;
        };
        let meta = &pod.metadata;
        let (Some(namespace), Some(name), Some(uid)) = (&meta.namespace, &meta.name, &meta.uid)
        else {
            return false;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        if meta.deletion_timestamp.is_none() {
            if !has_finalizer(pod) {
                let mut finalizers = meta.finalizers.clone().unwrap_or_default();
                finalizers.push(FINALIZER.to_string());
                let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
                if let Err(error) = api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(pod = %name, %error, "cannot add the pre-stop finalizer");
                }
            }
            return false;
        }
        if !has_finalizer(pod) {
            return false;
        }
        match self.hook(uid) {
            Some(Hook::Running) => true,
            Some(Hook::Finished) => false,
            None => {
                self.set(uid, Hook::Running);
                let grace = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30);
                let cluster_url = format!(
                    "{}/clusters/{namespace}/{}",
                    self.base_url, observation.cluster
                );
                // Where the hook's PD and its own TiCDC server answer here.
                let env = vec![
                    (PD_URL_ENV, cluster_url.clone()),
                    (
                        TICDC_URL_ENV,
                        format!("{cluster_url}/ticdc/{}", observation.instance),
                    ),
                ];
                let this = self.clone();
                let mut stopped = observation.clone();
                stopped.running = false;
                stopped.deleting = true;
                let (uid, name) = (uid.clone(), name.clone());
                tokio::spawn(async move {
                    this.run(&command, &env, grace, &name).await;
                    this.set(&uid, Hook::Finished);
                    // The kubelet stops the container once its hook returned.
                    lock(&this.sim).observe_pod(stopped, Now::real());
                    this.release(&api, &name).await;
                });
                true
            }
        }
    }

    async fn run(&self, command: &[String], env: &[(&str, String)], grace: i64, pod: &str) {
        let mut process = tokio::process::Command::new(&self.binary);
        process
            .args(command.iter().skip(1))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true);
        let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        match tokio::time::timeout(limit, process.output()).await {
            Ok(Ok(output)) => tracing::info!(
                pod,
                status = %output.status,
                output = %String::from_utf8_lossy(&output.stderr).trim(),
                "preStop hook finished"
            ),
            Ok(Err(error)) => tracing::warn!(pod, %error, "cannot run the preStop hook"),
            Err(_) => tracing::warn!(pod, grace, "preStop hook outlived the grace period"),
        }
    }

    /// Removes the finalizer, so the deleted Pod goes.
    async fn release(&self, api: &Api<Pod>, name: &str) {
        for _ in 0..5 {
            let pod = match api.get_opt(name).await {
                Ok(Some(pod)) => pod,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(pod = name, %error, "cannot read a Pod to release it");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let rest: Vec<String> = pod
                .metadata
                .finalizers
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": rest,
                "resourceVersion": pod.metadata.resource_version,
            }});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(pod = name, %error, "cannot remove the pre-stop finalizer");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hand_over_hook_is_run() {
        let pod = |command: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [
                    {"name": "sidecar"},
                    {"name": "pd", "lifecycle": {"preStop": {"exec": {"command": command}}}}
                ]}
            }))
            .unwrap()
        };
        assert_eq!(
            hook_command(&pod(serde_json::json!([
                "/var/lib/tidb-handover/tidb-handover",
                "pd",
                "--member=p"
            ]))),
            Some(vec![
                "/var/lib/tidb-handover/tidb-handover".to_string(),
                "pd".to_string(),
                "--member=p".to_string()
            ])
        );
        assert_eq!(
            hook_command(&pod(serde_json::json!(["/bin/sh", "-c", "sleep 5"]))),
            None
        );
        let plain: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [{"name": "pd"}]}
        }))
        .unwrap();
        assert_eq!(hook_command(&plain), None);
        assert!(!has_finalizer(&plain));
    }
}
