//! kubectl as a user would run it, pointed at one kubeconfig.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// kubectl with a fixed kubeconfig. The binary is `$KUBECTL`, else `kubectl` on PATH.
#[derive(Clone, Debug)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

/// What a kubectl run printed.
#[derive(Clone, Debug)]
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Kubectl {
    /// kubectl for the given kubeconfig.
    pub fn new(kubeconfig: &Path) -> Self {
        let binary = std::env::var_os("KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| "kubectl".into());
        Self {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs kubectl with the arguments and optional standard input; never fails on a non-zero exit
    /// (the caller decides), only when kubectl cannot run.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let command_line = format!("kubectl {}", args.join(" "));
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Command {
                command: command_line.clone(),
                message: format!(
                    "cannot run {}: {e} (set KUBECTL or put kubectl on PATH)",
                    self.binary.display()
                ),
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(|e| Error::Command {
                    command: command_line.clone(),
                    message: e.to_string(),
                })?;
        }
        let out = child.wait_with_output().map_err(|e| Error::Command {
            command: command_line,
            message: e.to_string(),
        })?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and returns its standard output, failing with its error output on a non-zero
    /// exit.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run(args, stdin)?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(Error::Command {
                command: format!("kubectl {}", args.join(" ")),
                message: out.stderr,
            })
        }
    }
}
