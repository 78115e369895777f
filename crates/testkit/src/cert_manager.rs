//! cert-manager for the TLS scenarios: its CRDs applied to the local control plane and its
//! controllers run as a child process, watching one test namespace. Both come from the tools
//! cache that `hack/build-tools.sh` fills (`cert-manager-controller` and, next to it, `crds/`),
//! from the same cert-manager module version. Only scenarios that issue certificates start it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::LocalCluster;
use crate::error::{Error, Result};
use crate::process::ControllerProcess;

/// Name of the controller binary in the tools cache.
pub const BINARY: &str = "cert-manager-controller";

/// cert-manager's controller, running. Dropping it stops the process; the CRDs stay installed
/// (other TLS scenarios use them too, and they are cluster-scoped).
pub struct CertManager {
    process: ControllerProcess,
}

impl CertManager {
    /// Applies the CRDs (server-side, so a second scenario's apply changes nothing), waits until
    /// they are established, then starts the controller on `namespace` with the admin identity
    /// (it reads and writes Secrets, Certificates and their requests there). Its log is
    /// `<tmp>/<cluster>.<namespace>.cert-manager.log` (two control planes may each run one on a
    /// namespace of the same name).
    pub async fn start(cluster: &LocalCluster, namespace: &str) -> Result<CertManager> {
        let binary = binary()?;
        let crds = binary
            .parent()
            .map(|dir| dir.join("crds"))
            .filter(|dir| dir.is_dir())
            .ok_or_else(|| Error::Command {
                command: BINARY.into(),
                message: format!(
                    "no crds/ next to {}; run hack/build-tools.sh",
                    binary.display()
                ),
            })?;
        let kubectl = cluster.kubectl();
        let dir = crds.display().to_string();
        kubectl.ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=testkit",
                "-f",
                &dir,
            ],
            None,
        )?;
        kubectl.ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                &dir,
            ],
            None,
        )?;
        let namespace_arg = format!("--namespace={namespace}");
        let kubeconfig_arg = format!("--kubeconfig={}", cluster.kubeconfig().display());
        let process = ControllerProcess::start_path(
            &binary,
            &format!("{}.{namespace}.cert-manager", cluster.name()),
            cluster.kubeconfig(),
            &[&kubeconfig_arg, &namespace_arg],
            &std::env::temp_dir(),
        )?;
        let mut manager = CertManager { process };
        // It exits at once when it cannot start (a CRD missing, the API unreachable).
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = manager.process.exited() {
            return Err(Error::Command {
                command: BINARY.into(),
                message: format!("exited with {status}:\n{}", manager.process.output()),
            });
        }
        Ok(manager)
    }

    /// The controller's log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// `$CERT_MANAGER_CONTROLLER`, else `cert-manager-controller` on `PATH`.
fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CERT_MANAGER_CONTROLLER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(BINARY))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::Command {
            command: BINARY.into(),
            message: "not found: set CERT_MANAGER_CONTROLLER or put the tools on PATH \
                      (eval \"$(hack/build-tools.sh)\"; export PATH=$TOOLS_PATH:$PATH)"
                .into(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
