//! How a run of BR ends and how the controller learns it: the runner writes a small JSON record
//! to the container's termination message (`/dev/termination-log`), the kubelet copies it into
//! the Pod's status, and the controller reads it from there. No API access from the Job.
//!
//! Also here: reading BR's summary line for the size and TS, and the fake BR of the tests.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most of the 4096 bytes the kubelet keeps of a termination message.
pub const MAX_MESSAGE: usize = 3000;

/// Pod annotation carrying the record a fake run would write, so that a control plane that never
/// runs containers (kwok) still yields one. Read only when the controller runs with `--fake-br`.
pub const FAKE_RESULT_ANNOTATION: &str = "tidb-operator.test/fake-result";
/// Annotation on a Backup or Restore choosing what the fake BR of its runs does (test tooling).
pub const FAKE_BR_ANNOTATION: &str = "tidb-operator.test/fake-br";
/// Annotation on a Backup choosing what the fake clean-up of its data does (test tooling).
pub const FAKE_CLEAN_ANNOTATION: &str = "tidb-operator.test/fake-clean";

/// The end of one run, as the runner reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// Whether BR (or the clean-up) succeeded.
    pub ok: bool,
    /// Size of the data in bytes, when BR reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Snapshot TS (backup) or restored TS, when BR reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// Why it failed: BR's error lines, or its exit code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A compaction's last progress line, as the reference words it:
    /// `[READ_META(done/total),COMPACT_WORK(bytes done/bytes total)]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

impl RunResult {
    /// The record as the termination message: JSON, the message cut to fit.
    pub fn to_message(&self) -> String {
        let mut record = self.clone();
        record.message = truncate(&record.message, MAX_MESSAGE);
        serde_json::to_string(&record).unwrap_or_else(|_| String::from("{\"ok\":false}"))
    }

    /// Reads a termination message; `None` when it is not one of ours.
    pub fn parse(message: &str) -> Option<RunResult> {
        serde_json::from_str(message.trim()).ok()
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, keeping the end (BR's last
/// lines say the most).
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// What BR's output said: its summary's `Size` and `BackupTS`, and its error lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `[Size=N]` of the success summary.
    pub size: Option<i64>,
    /// `[BackupTS=N]` of the summary.
    pub backup_ts: Option<String>,
    /// Lines that carry `[ERROR]` or `Error:`, and tikv-ctl's JSON errors.
    pub errors: Vec<String>,
    /// tikv-ctl's last `Finishing compaction.` progress.
    pub progress: Option<String>,
}

/// One JSON log line of `tikv-ctl --log-format json`, with the fields a compaction reports.
#[derive(Debug, Default, Deserialize)]
struct CtlLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    err: Option<String>,
    #[serde(default)]
    meta_completed: Option<u64>,
    #[serde(default)]
    meta_total: Option<u64>,
    #[serde(default)]
    bytes_to_compact: Option<u64>,
    #[serde(default)]
    bytes_compacted: Option<u64>,
}

impl Summary {
    /// Takes in one line of BR's output.
    pub fn scan(&mut self, line: &str) {
        if let Some(size) = field(line, "Size").and_then(|v| v.parse().ok()) {
            self.size = Some(size);
        }
        if let Some(ts) = field(line, "BackupTS") {
            self.backup_ts = Some(ts.to_string());
        }
        if line.trim_start().starts_with('{')
            && let Ok(ctl) = serde_json::from_str::<CtlLine>(line.trim())
        {
            self.scan_ctl(ctl);
            return;
        }
        if line.contains("[ERROR]") || line.starts_with("Error:") {
            self.errors.push(line.trim().to_string());
            if self.errors.len() > 20 {
                self.errors.remove(0);
            }
        }
    }

    /// Takes in one JSON line of tikv-ctl: progress, an aborted compaction, an error.
    fn scan_ctl(&mut self, line: CtlLine) {
        match line.message.as_str() {
            "Finishing compaction." => {
                self.progress = Some(format!(
                    "[READ_META({}/{}),COMPACT_WORK({}/{})]",
                    line.meta_completed.unwrap_or_default(),
                    line.meta_total.unwrap_or_default(),
                    line.bytes_compacted.unwrap_or_default(),
                    line.bytes_to_compact.unwrap_or_default()
                ));
            }
            "Compaction aborted." => {
                let err = line.err.unwrap_or_default();
                self.errors.push(format!("compaction aborted: {err}"));
            }
            _ if line.level.eq_ignore_ascii_case("ERROR") => {
                let err = line.err.map(|e| format!(": {e}")).unwrap_or_default();
                self.errors.push(format!("{}{err}", line.message));
            }
            _ => {}
        }
        if self.errors.len() > 20 {
            self.errors.remove(0);
        }
    }

    /// The record of a run of `program` (named in the message) that exited with `code` (`None`:
    /// killed by a signal).
    pub fn result_of(&self, program: &str, code: Option<i32>) -> RunResult {
        let ok = code == Some(0);
        RunResult {
            ok,
            size: self.size,
            commit_ts: self.backup_ts.clone(),
            progress: self.progress.clone(),
            message: if ok {
                String::new()
            } else {
                let status = match code {
                    Some(c) => format!("{program} exited with code {c}"),
                    None => format!("{program} was killed by a signal"),
                };
                if self.errors.is_empty() {
                    status
                } else {
                    format!("{status}: {}", self.errors.join("\n"))
                }
            },
        }
    }
}

/// The value of `[key=value]` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("[{key}="))? + key.len() + 2;
    let end = line[start..].find(']')? + start;
    Some(&line[start..end])
}

/// Test tooling: the fake mode an annotation of `object` asks for (default: success), with the
/// annotation's text.
pub fn fake_mode<K: kube::ResourceExt>(object: &K, annotation: &str) -> Option<(String, FakeMode)> {
    let text = object
        .annotations()
        .get(annotation)
        .cloned()
        .unwrap_or_else(|| "success".to_string());
    text.parse().ok().map(|mode| (text, mode))
}

/// What the fake BR of the tests does instead of running BR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeMode {
    /// Succeeds, reporting this size and TS.
    Success {
        /// Reported size in bytes.
        size: i64,
        /// Reported TS.
        commit_ts: String,
    },
    /// Fails with this message.
    Fail {
        /// The failure message.
        message: String,
    },
}

/// Size the fake BR reports unless told otherwise.
pub const FAKE_SIZE: i64 = 1_048_576;
/// TS the fake BR reports unless told otherwise.
pub const FAKE_COMMIT_TS: &str = "449000000000000000";

impl FromStr for FakeMode {
    type Err = String;

    /// `success`, `success:size=N,commit-ts=T`, `fail` or `fail:<message>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "success" => {
                let mut size = FAKE_SIZE;
                let mut commit_ts = FAKE_COMMIT_TS.to_string();
                for pair in rest.split(',').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("size", v)) => {
                            size = v.parse().map_err(|_| format!("bad fake size {v:?}"))?;
                        }
                        Some(("commit-ts", v)) => commit_ts = v.to_string(),
                        _ => return Err(format!("unknown fake success setting {pair:?}")),
                    }
                }
                Ok(FakeMode::Success { size, commit_ts })
            }
            "fail" => Ok(FakeMode::Fail {
                message: if rest.is_empty() {
                    "fake BR failure".to_string()
                } else {
                    rest.to_string()
                },
            }),
            other => Err(format!(
                "unknown fake BR mode {other:?}: use success[:size=N,commit-ts=T] or fail[:message]"
            )),
        }
    }
}

impl FakeMode {
    /// The record the fake run writes.
    pub fn result(&self) -> RunResult {
        match self {
            FakeMode::Success { size, commit_ts } => RunResult {
                ok: true,
                size: Some(*size),
                commit_ts: Some(commit_ts.clone()),
                message: String::new(),
                progress: None,
            },
            FakeMode::Fail { message } => RunResult {
                ok: false,
                size: None,
                commit_ts: None,
                message: format!("BR exited with code 1: [ERROR] {message}"),
                progress: None,
            },
        }
    }
}

/// A size as people read it, in SI units as BR prints them: `1.0 MB`.
pub fn readable_size(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tikv_ctl_progress_and_errors_are_read_from_its_json_lines() {
        let mut summary = Summary::default();
        summary.scan(r#"{"level":"INFO","message":"Spawning compaction.","input_max_ts":7}"#);
        summary.scan(
            r#"{"level":"INFO","message":"Finishing compaction.","meta_completed":3,"meta_total":5,"bytes_to_compact":4096,"bytes_compacted":1024}"#,
        );
        let done = summary.result_of("BR", Some(0));
        assert!(done.ok);
        assert_eq!(
            done.progress.as_deref(),
            Some("[READ_META(3/5),COMPACT_WORK(1024/4096)]")
        );
        summary.scan(
            r#"{"level":"WARN","message":"Compaction aborted.","err":"storage unreachable"}"#,
        );
        let failed = summary.result_of("BR", Some(1));
        assert!(!failed.ok);
        assert!(
            failed
                .message
                .contains("compaction aborted: storage unreachable"),
            "{}",
            failed.message
        );
    }

    #[test]
    fn br_summary_gives_size_and_ts() {
        let mut summary = Summary::default();
        summary.scan(r#"[2024/02/04 22:55:12.429 -05:00] [INFO] [collector.go:77] ["Full Backup success summary"] [total-ranges=19] [backup-data-size(after-compressed)=102.5kB] [Size=102451] [BackupTS=447518343168000000]"#);
        let result = summary.result_of("BR", Some(0));
        assert_eq!(
            result,
            RunResult {
                ok: true,
                size: Some(102451),
                commit_ts: Some("447518343168000000".into()),
                message: String::new(),
                progress: None,
            }
        );
    }

    #[test]
    fn a_failure_carries_brs_error_lines() {
        let mut summary = Summary::default();
        summary.scan("[2024/02/04] [INFO] starting");
        summary.scan("[2024/02/04] [ERROR] [backup.go:1] [\"failed to connect to PD\"]");
        let result = summary.result_of("BR", Some(2));
        assert!(!result.ok);
        assert!(result.message.starts_with("BR exited with code 2: "));
        assert!(result.message.contains("failed to connect to PD"));
        assert!(!result.message.contains("starting"));
        assert!(summary.result_of("BR", None).message.contains("signal"));
    }

    #[test]
    fn the_termination_message_round_trips_and_fits() {
        let result = RunResult {
            ok: false,
            size: None,
            commit_ts: None,
            message: "é".repeat(4000),
            progress: None,
        };
        let message = result.to_message();
        assert!(message.len() < 4096, "{}", message.len());
        let back = RunResult::parse(&message).unwrap();
        assert!(!back.ok);
        assert!(back.message.starts_with('…'));
        assert!(RunResult::parse("plain text from something else").is_none());
    }

    #[test]
    fn fake_modes_parse() {
        assert_eq!(
            "success".parse::<FakeMode>().unwrap().result().size,
            Some(FAKE_SIZE)
        );
        let custom: FakeMode = "success:size=42,commit-ts=7".parse().unwrap();
        assert_eq!(
            custom.result(),
            RunResult {
                ok: true,
                size: Some(42),
                commit_ts: Some("7".into()),
                message: String::new(),
                progress: None,
            }
        );
        let fail: FakeMode = "fail:disk full".parse().unwrap();
        assert!(!fail.result().ok);
        assert!(fail.result().message.contains("disk full"));
        assert!("explode".parse::<FakeMode>().is_err());
        assert!("success:size=x".parse::<FakeMode>().is_err());
    }

    #[test]
    fn sizes_read_like_br() {
        assert_eq!(readable_size(512), "512 B");
        assert_eq!(readable_size(1_048_576), "1.0 MB");
        assert_eq!(readable_size(102_451), "102.5 kB");
    }
}
