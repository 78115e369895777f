//! Bounded waits that, when they fail, print what the test could see.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kubectl::Kubectl;

/// Polls `check` every half second until it returns `Ok(true)` or `timeout` passes. On timeout it
/// prints [`diagnostics`] of the namespace and returns [`Error::Timeout`]. An `Err` from `check`
/// counts as "not yet" (the API may be briefly unavailable) and its last one is printed.
pub async fn wait_until<F, Fut, E>(
    kubectl: &Kubectl,
    namespace: &str,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<bool, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            eprintln!("\n=== timed out waiting for {what} ===");
            if let Some(e) = last_error {
                eprintln!("last error: {e}");
            }
            eprintln!("{}", diagnostics(kubectl, namespace));
            return Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The objects of a namespace (the operator's kinds, Pods, PVCs, Jobs), their conditions, and
/// the namespace's Events, as text for a failing test's output.
pub fn diagnostics(kubectl: &Kubectl, namespace: &str) -> String {
    let mut out = String::new();
    let sections: [(&str, Vec<&str>); 3] = [
        (
            "objects",
            vec![
                "get",
                "-n",
                namespace,
                "-o",
                "wide",
                "clusters,pdgroups,pds,tikvgroups,tikvs,tidbgroups,tidbs,pods,persistentvolumeclaims,jobs",
            ],
        ),
        (
            "conditions",
            vec![
                "get",
                "-n",
                namespace,
                "clusters,pdgroups,pds,tikvgroups,tikvs,tidbgroups,tidbs",
                "-o",
                r#"jsonpath={range .items[*]}{.kind}/{.metadata.name}:{range .status.conditions[*]} {.type}={.status}({.reason}: {.message}){end}{"\n"}{end}"#,
            ],
        ),
        (
            "events",
            vec!["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"],
        ),
    ];
    for (title, args) in sections {
        out.push_str(&format!("--- {title} in {namespace} ---\n"));
        match kubectl.run(&args, None) {
            Ok(o) => {
                out.push_str(&o.stdout);
                out.push_str(&o.stderr);
            }
            Err(e) => out.push_str(&format!("{e}\n")),
        }
    }
    out
}
