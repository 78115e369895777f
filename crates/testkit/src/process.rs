//! A controller binary run as a child process of the test, with its output kept in a file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::error::{Error, Result};

/// A running controller. Dropping it kills the process.
pub struct ControllerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts `binary` (a workspace binary name, found next to the test executable in the target
    /// directory) with `KUBECONFIG=kubeconfig` and the arguments; its output goes to
    /// `<log_dir>/<name>.log`.
    pub fn start(
        binary: &str,
        name: &str,
        kubeconfig: &Path,
        args: &[&str],
        log_dir: &Path,
    ) -> Result<Self> {
        Self::start_path(&workspace_binary(binary)?, name, kubeconfig, args, log_dir)
    }

    /// [`ControllerProcess::start`] with the binary at `path`, for example one taken out of the
    /// operator image.
    pub fn start_path(
        path: &Path,
        name: &str,
        kubeconfig: &Path,
        args: &[&str],
        log_dir: &Path,
    ) -> Result<Self> {
        let binary = path.display().to_string();
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).map_err(|e| Error::Command {
            command: binary.clone(),
            message: format!("cannot create {}: {e}", log.display()),
        })?;
        let err_file = file.try_clone().map_err(|e| Error::Command {
            command: binary.clone(),
            message: e.to_string(),
        })?;
        let child = Command::new(path)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| Error::Command {
                command: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// The process ID, to read its resource use from `/proc`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        self.child.wait().map_err(|e| Error::Command {
            command: self.name.clone(),
            message: e.to_string(),
        })
    }

    /// How the process ended, if it has: `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Freezes the process (SIGSTOP), as a paused container or a stalled machine would: its
    /// timers, connections and tasks all stand still until [`ControllerProcess::resume`].
    pub fn pause(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .map_err(|e| Error::Command {
                command: format!("kill {signal} ({})", self.name),
                message: e.to_string(),
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Command {
                command: format!("kill {signal} ({})", self.name),
                message: status.to_string(),
            })
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of a workspace binary: `target/<profile>/<name>`, next to the running executable or the
/// directory above its `deps/`.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::Command {
        command: name.to_string(),
        message: e.to_string(),
    })?;
    // Test executables live in target/<profile>/deps, tools in target/<profile>.
    let candidate = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    candidate.ok_or_else(|| Error::Command {
        command: name.to_string(),
        message: format!(
            "binary not found next to {}; run `cargo build --bins` first",
            exe.display()
        ),
    })
}
