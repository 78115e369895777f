//! The runner: what runs inside a Job's Pod. `run-br` starts BR, passes its output through,
//! reads its summary, writes the result to the termination message and exits with BR's code.
//! `run-compact` does the same for `tikv-ctl compact-log-backup`, after encoding the storage with
//! `br operator base64ify`. `clean` deletes a backup's data. Neither talks to the Kubernetes API: the controller reads
//! the result from the Pod's status, so the Pod needs no ServiceAccount token.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use clap::Args;

use crate::outcome::{FakeMode, RunResult, Summary};
use crate::storage::GCS_JSON_KEY_ENV;

/// Flags of `backup-controller run-br`.
#[derive(Debug, Args)]
pub struct RunBrArgs {
    /// Test tooling: do not run BR; succeed or fail as told (`success[:size=N,commit-ts=T]`,
    /// `fail[:message]`).
    #[arg(long, env = "FAKE_BR")]
    pub fake_br: Option<FakeMode>,
    /// Where the result goes; the kubelet copies it into the Pod's status.
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
    /// Scratch directory (for a GCS credentials file).
    #[arg(long, default_value = crate::job::BR_BIN_DIR)]
    pub work_dir: PathBuf,
    /// The BR binary and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Flags of `backup-controller run-compact`.
#[derive(Debug, Args)]
pub struct RunCompactArgs {
    /// Test tooling: do not run anything; succeed or fail as told.
    #[arg(long, env = "FAKE_BR")]
    pub fake_br: Option<FakeMode>,
    /// Where the result goes.
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
    /// Scratch directory (for a GCS credentials file).
    #[arg(long, default_value = crate::job::BR_BIN_DIR)]
    pub work_dir: PathBuf,
    /// The `tikv-ctl` binary.
    #[arg(long, default_value = crate::job::TIKV_CTL_BIN)]
    pub tikv_ctl: String,
    /// First TSO of the data compacted.
    #[arg(long)]
    pub from: u64,
    /// Last TSO of the data compacted.
    #[arg(long)]
    pub until: u64,
    /// Parallel compaction tasks.
    #[arg(long)]
    pub concurrency: u32,
    /// The BR binary and its `operator base64ify` arguments, which print the storage encoded.
    #[arg(last = true, required = true, num_args = 1..)]
    pub base64ify: Vec<String>,
}

/// Flags of `backup-controller clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Test tooling: do not delete anything; succeed or fail as told.
    #[arg(long, env = "FAKE_BR")]
    pub fake_br: Option<FakeMode>,
    /// Where the result goes.
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
    /// The storage URI whose data is deleted, for example `local:///backup/prefix`.
    #[arg(long)]
    pub storage: String,
}

fn report(path: &Path, result: &RunResult) {
    let message = result.to_message();
    if let Err(e) = std::fs::write(path, &message) {
        eprintln!("runner: cannot write the result to {}: {e}", path.display());
    }
    println!("runner: result {message}");
}

fn exit_code(result: &RunResult, code: Option<i32>) -> i32 {
    match code {
        Some(c) if c != 0 => c,
        _ if result.ok => 0,
        _ => 1,
    }
}

/// Runs `run-br`; returns the process's exit code.
pub fn run_br(args: RunBrArgs) -> i32 {
    if let Some(mode) = &args.fake_br {
        println!(
            "runner: fake BR (test tooling) instead of {:?}",
            args.command
        );
        let result = mode.result();
        report(&args.termination_log, &result);
        return exit_code(&result, None);
    }
    let (result, code) = execute("BR", &args.command, &args.work_dir);
    report(&args.termination_log, &result);
    exit_code(&result, code)
}

/// Runs `run-compact`; returns the process's exit code.
pub fn run_compact(args: RunCompactArgs) -> i32 {
    let command = compact_command(&args, "<storage>");
    if let Some(mode) = &args.fake_br {
        println!(
            "runner: fake compaction (test tooling) instead of {:?} and {command:?}",
            args.base64ify
        );
        let result = mode.result();
        report(&args.termination_log, &result);
        return exit_code(&result, None);
    }
    let storage = match base64ify(&args.base64ify) {
        Ok(storage) => storage,
        Err(message) => {
            let result = RunResult {
                message,
                ..RunResult::default()
            };
            report(&args.termination_log, &result);
            return 1;
        }
    };
    let (result, code) = execute(
        "tikv-ctl",
        &compact_command(&args, &storage),
        &args.work_dir,
    );
    report(&args.termination_log, &result);
    exit_code(&result, code)
}

/// `tikv-ctl`'s command line for a compaction of the storage `storage` (base64). The log settings
/// are those tikv-ctl's JSON progress lines come in.
fn compact_command(args: &RunCompactArgs, storage: &str) -> Vec<String> {
    [
        args.tikv_ctl.as_str(),
        "--log-level",
        "INFO",
        "--log-format",
        "json",
        "compact-log-backup",
        "--storage-base64",
        storage,
        "--from",
        &args.from.to_string(),
        "--until",
        &args.until.to_string(),
        "-N",
        &args.concurrency.to_string(),
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Runs `br operator base64ify` and returns what it printed, trimmed.
fn base64ify(command: &[String]) -> Result<String, String> {
    let Some((program, br_args)) = command.split_first() else {
        return Err("no base64ify command given".into());
    };
    println!("runner: starting {program} {}", br_args.join(" "));
    let output = Command::new(program)
        .args(br_args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let _ = std::io::stderr().write_all(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "br operator base64ify exited with {}: {}",
            output.status,
            crate::outcome::truncate(String::from_utf8_lossy(&output.stderr).trim(), 1500)
        ));
    }
    let encoded = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if encoded.is_empty() {
        return Err("br operator base64ify printed nothing".into());
    }
    Ok(encoded)
}

/// Runs a command (`program` names it in messages), passing its output through and reading its
/// summary from it; returns the result and the exit code.
fn execute(
    program_name: &str,
    command_line: &[String],
    work_dir: &Path,
) -> (RunResult, Option<i32>) {
    let failed = |message: String| {
        (
            RunResult {
                message,
                ..RunResult::default()
            },
            Some(1),
        )
    };
    let Some((program, br_args)) = command_line.split_first() else {
        return failed("no BR command given".into());
    };
    let mut command = Command::new(program);
    command
        .args(br_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // BR reads a GCS key from a file; the key comes in through the environment (a Secret
    // reference) and goes to a file only this Pod sees.
    if let Ok(key) = std::env::var(GCS_JSON_KEY_ENV)
        && std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_none()
    {
        let file = work_dir.join("gcs-credentials.json");
        if let Err(e) = std::fs::write(&file, key) {
            return failed(format!("cannot write the GCS credentials file: {e}"));
        }
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &file);
    }
    println!("runner: starting {program} {}", br_args.join(" "));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start {program}: {e}")),
    };
    let summary = Arc::new(Mutex::new(Summary::default()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(pass_through(out, summary.clone(), false));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pass_through(err, summary.clone(), true));
    }
    let status = child.wait();
    for reader in readers {
        let _ = reader.join();
    }
    let code = match status {
        Ok(status) => status.code(),
        Err(e) => {
            eprintln!("runner: waiting for BR: {e}");
            None
        }
    };
    let result = summary
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .result_of(program_name, code);
    (result, code)
}

/// Copies a stream of BR's output to ours line by line, reading the summary from it.
fn pass_through<R: Read + Send + 'static>(
    stream: R,
    summary: Arc<Mutex<Summary>>,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            summary
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .scan(&line);
            if to_stderr {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
        }
    })
}

/// Runs `clean`; returns the process's exit code.
pub fn clean(args: CleanArgs) -> i32 {
    if let Some(mode) = &args.fake_br {
        println!(
            "runner: fake clean-up (test tooling) instead of deleting {}",
            args.storage
        );
        let result = mode.result();
        report(&args.termination_log, &result);
        return exit_code(&result, None);
    }
    let result = match delete_data(&args.storage) {
        Ok(message) => {
            println!("runner: {message}");
            RunResult {
                ok: true,
                ..RunResult::default()
            }
        }
        Err(message) => RunResult {
            message,
            ..RunResult::default()
        },
    };
    report(&args.termination_log, &result);
    exit_code(&result, None)
}

/// Deletes the data under a storage URI.
fn delete_data(uri: &str) -> Result<String, String> {
    if let Some(path) = uri.strip_prefix("local://") {
        let path = Path::new(path);
        if path.parent().is_none() {
            return Err(format!("refusing to delete {uri}: it is a root directory"));
        }
        return match std::fs::remove_dir_all(path) {
            Ok(()) => Ok(format!("deleted {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("{} is already gone", path.display()))
            }
            Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
        };
    }
    let scheme = uri.split("://").next().unwrap_or(uri);
    Err(format!(
        "deleting backup data from {scheme} storage is not supported by this operator yet; delete {uri} with the storage's own tools"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_command_reports_its_summary_and_code() {
        let dir = std::env::temp_dir().join(format!("runner-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("termination-log");
        let code = run_br(RunBrArgs {
            fake_br: None,
            termination_log: log.clone(),
            work_dir: dir.clone(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo '[INFO] [\"Full Backup success summary\"] [Size=77] [BackupTS=42]'".into(),
            ],
        });
        assert_eq!(code, 0);
        let result = RunResult::parse(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert_eq!(result.size, Some(77));
        assert_eq!(result.commit_ts.as_deref(), Some("42"));

        let code = run_br(RunBrArgs {
            fake_br: None,
            termination_log: log.clone(),
            work_dir: dir.clone(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo '[ERROR] cannot reach PD' >&2; exit 3".into(),
            ],
        });
        assert_eq!(code, 3);
        let result = RunResult::parse(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert!(!result.ok);
        assert!(result.message.contains("code 3") && result.message.contains("cannot reach PD"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_compaction_encodes_the_storage_then_runs_tikv_ctl_with_it() {
        let dir = std::env::temp_dir().join(format!("runner-compact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("termination-log");
        // A stand-in tikv-ctl that fails unless it gets the encoded storage and the TS range.
        let ctl = dir.join("tikv-ctl");
        std::fs::write(
            &ctl,
            "#!/bin/sh\ncase \"$*\" in *'--storage-base64 ZW5jb2RlZA== --from 10 --until 20 -N 4'*) exit 0;; esac\necho \"bad args: $*\" >&2; exit 5\n",
        )
        .unwrap();
        let args = |base64ify: &str| RunCompactArgs {
            fake_br: None,
            termination_log: log.clone(),
            work_dir: dir.clone(),
            tikv_ctl: ctl.display().to_string(),
            from: 10,
            until: 20,
            concurrency: 4,
            base64ify: vec!["/bin/sh".into(), "-c".into(), base64ify.into()],
        };
        std::process::Command::new("chmod")
            .args(["+x", &ctl.display().to_string()])
            .status()
            .unwrap();
        assert_eq!(run_compact(args("echo ZW5jb2RlZA==")), 0);
        assert!(
            RunResult::parse(&std::fs::read_to_string(&log).unwrap())
                .unwrap()
                .ok
        );

        // tikv-ctl's own failure is named as such, with its exit code.
        assert_eq!(run_compact(args("echo b3RoZXI=")), 5);
        let result = RunResult::parse(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert!(
            result.message.starts_with("tikv-ctl exited with code 5"),
            "{}",
            result.message
        );

        assert_eq!(run_compact(args("echo no credentials >&2; exit 2")), 1);
        let result = RunResult::parse(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert!(!result.ok);
        assert!(
            result.message.contains("no credentials"),
            "{}",
            result.message
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn local_data_is_deleted_and_object_stores_say_they_are_not_supported() {
        let dir = std::env::temp_dir().join(format!("runner-clean-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("prefix/sub")).unwrap();
        std::fs::write(dir.join("prefix/sub/file"), "x").unwrap();
        let uri = format!("local://{}", dir.join("prefix").display());
        assert!(delete_data(&uri).is_ok());
        assert!(!dir.join("prefix").exists());
        assert!(delete_data(&uri).unwrap().contains("already gone"));
        assert!(delete_data("local:///").is_err());
        assert!(
            delete_data("s3://bucket/prefix")
                .unwrap_err()
                .contains("not supported")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
