//! The local control plane a test runs against.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Error, Result};
use crate::kubectl::Kubectl;

/// Name of the cluster tests use unless `TESTKIT_CLUSTER` says otherwise.
pub const DEFAULT_CLUSTER: &str = "tidb-test";

/// A running local control plane: its name and admin kubeconfig.
#[derive(Clone, Debug)]
pub struct LocalCluster {
    name: String,
    kubeconfig: PathBuf,
}

impl LocalCluster {
    /// The cluster of this test run: `TESTKIT_CLUSTER` (default `tidb-test`). When it is not up, it
    /// is started with `hack/local-cluster.sh up` (once per test process). When `KUBECONFIG_TEST`
    /// is set, that kubeconfig is used as it is and nothing is started.
    pub fn get() -> Result<LocalCluster> {
        static CLUSTER: OnceLock<std::result::Result<LocalCluster, String>> = OnceLock::new();
        CLUSTER
            .get_or_init(|| Self::connect().map_err(|e| e.to_string()))
            .clone()
            .map_err(|message| Error::Cluster {
                name: cluster_name(),
                message,
            })
    }

    fn connect() -> Result<LocalCluster> {
        Self::named(&cluster_name())
    }

    /// The second local control plane, standing for another Kubernetes cluster:
    /// `TESTKIT_CLUSTER_2`, default `<TESTKIT_CLUSTER>-2`; started when it is not running. Only
    /// tests of one TiDB cluster across Kubernetes clusters ask for it.
    pub fn second() -> Result<LocalCluster> {
        let name =
            std::env::var("TESTKIT_CLUSTER_2").unwrap_or_else(|_| format!("{}-2", cluster_name()));
        Self::named(&name)
    }

    /// A local control plane of one test binary's own, `<TESTKIT_CLUSTER>-<purpose>`, started when it
    /// is not running: for a scenario that would disturb tests running beside it (one that
    /// restarts the control plane, say).
    pub fn dedicated(purpose: &str) -> Result<LocalCluster> {
        Self::named(&format!("{}-{purpose}", cluster_name()))
    }

    /// The local control plane called `name`, started with `hack/local-cluster.sh up` when it is
    /// not running (or `KUBECONFIG_TEST` as it is, when set).
    pub fn named(name: &str) -> Result<LocalCluster> {
        Self::named_with(name, &[])
    }

    /// [`LocalCluster::named`], started (when it is not running) with `env` set for
    /// `hack/local-cluster.sh up` (its size: `LOCAL_CLUSTER_NODES_PER_ZONE`, say).
    pub fn named_with(name: &str, env: &[(&str, String)]) -> Result<LocalCluster> {
        let name = name.to_string();
        if let Some(path) = std::env::var_os("KUBECONFIG_TEST") {
            return Ok(LocalCluster {
                name,
                kubeconfig: PathBuf::from(path),
            });
        }
        let script = repo_root().join("hack/local-cluster.sh");
        let status = Command::new(&script).args(["status", &name]).output();
        let up = status.as_ref().is_ok_and(|o| o.status.success());
        if !up {
            eprintln!(
                "testkit: starting local control plane {name} (hack/local-cluster.sh up {name})"
            );
            let out = Command::new(&script)
                .args(["up", &name])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .output()
                .map_err(|e| Error::Cluster {
                    name: name.clone(),
                    message: format!("cannot run {}: {e}", script.display()),
                })?;
            if !out.status.success() {
                return Err(Error::Cluster {
                    name,
                    message: format!(
                        "`hack/local-cluster.sh up` failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ),
                });
            }
        }
        let out = Command::new(&script)
            .args(["kubeconfig", &name])
            .output()
            .map_err(|e| Error::Cluster {
                name: name.clone(),
                message: format!("cannot run {}: {e}", script.display()),
            })?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || path.is_empty() {
            return Err(Error::Cluster {
                name,
                message: "no kubeconfig path from hack/local-cluster.sh".into(),
            });
        }
        Ok(LocalCluster {
            name,
            kubeconfig: PathBuf::from(path),
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's audit log: the writes of the operator's controllers, one JSON event per
    /// line (the policy in `hack/local-cluster.sh`), next to the kubeconfig in the cluster's
    /// directory.
    pub fn audit_log(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .map(|dir| dir.join("logs").join("audit.log"))
            .unwrap_or_else(|| PathBuf::from("audit.log"))
    }

    /// A new admin client. Each test makes its own: a client belongs to the runtime it was made in.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// A new admin client that does not retry `429 Too Many Requests` (nor 503 and 504): for a
    /// test that expects such an answer, as a PodDisruptionBudget refusing an eviction gives. The
    /// usual client retries those up to 15 times with a growing delay, for minutes.
    pub async fn client_without_retries(&self) -> Result<Client> {
        let mut config = config_for(&self.kubeconfig).await?;
        config.default_retry = false;
        Client::try_from(config).map_err(Error::api("building a client"))
    }

    /// kubectl with the admin identity.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig)
    }
}

/// A client for a kubeconfig file.
pub async fn client_for(path: &Path) -> Result<Client> {
    let config = config_for(path).await?;
    Client::try_from(config).map_err(Error::api("building a client"))
}

/// The client configuration of a kubeconfig file.
async fn config_for(path: &Path) -> Result<Config> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn cluster_name() -> String {
    std::env::var("TESTKIT_CLUSTER").unwrap_or_else(|_| DEFAULT_CLUSTER.to_string())
}

/// The repository root (this crate lives in crates/testkit).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
