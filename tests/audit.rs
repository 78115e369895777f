//! The API server's audit log as a test reads it: which replica of which controller wrote what,
//! and when the API server received it.

use std::path::Path;

use serde_json::Value;

/// One write a controller sent, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditedWrite {
    /// The client's user agent: `<binary>/<version> (<identity>)` for the operator's controllers.
    pub user_agent: String,
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// The resource, with its subresource after a slash.
    pub resource: String,
    /// The object's name, when the request named one.
    pub name: String,
    /// When the API server received it (RFC 3339 with microseconds, so strings order in time).
    pub received: String,
    /// The response's status code.
    pub code: i64,
}

impl AuditedWrite {
    /// Whether the replica `identity` sent it.
    pub fn by(&self, identity: &str) -> bool {
        self.user_agent.ends_with(&format!("({identity})"))
    }
}

/// The writes in `namespace` recorded in the audit log at `path`, oldest first. An error when the
/// log is missing: the control plane was created without the audit policy (recreate it with
/// `hack/local-cluster.sh down NAME` and `up NAME`).
pub fn writes_in(path: &Path, namespace: &str) -> Result<Vec<AuditedWrite>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the audit log {}: {e} (a control plane created before the audit policy \
             was added has none: recreate it with hack/local-cluster.sh down and up)",
            path.display()
        )
    })?;
    let mut writes: Vec<AuditedWrite> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["stage"] == "ResponseComplete")
        .filter(|event| event["objectRef"]["namespace"] == namespace)
        .map(|event| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let object = &event["objectRef"];
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", text(&object["resource"])),
                None => text(&object["resource"]),
            };
            AuditedWrite {
                user_agent: text(&event["userAgent"]),
                verb: text(&event["verb"]),
                resource,
                name: text(&object["name"]),
                received: text(&event["requestReceivedTimestamp"]),
                code: event["responseStatus"]["code"].as_i64().unwrap_or_default(),
            }
        })
        .collect();
    writes.sort_by(|a, b| a.received.cmp(&b.received));
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_writes_of_one_namespace_in_order_of_arrival() {
        let dir = std::env::temp_dir().join(format!("audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let event = |ns: &str, at: &str, agent: &str, sub: Option<&str>| {
            let mut object = serde_json::json!({"resource": "pds", "namespace": ns, "name": "a"});
            if let Some(sub) = sub {
                object["subresource"] = sub.into();
            }
            serde_json::json!({
                "stage": "ResponseComplete", "verb": "patch", "userAgent": agent,
                "objectRef": object, "requestReceivedTimestamp": at,
                "responseStatus": {"code": 200}
            })
            .to_string()
        };
        let lines = [
            event(
                "x",
                "2026-01-01T00:00:02.000001Z",
                "pd-controller/0.1.0 (pd-controller-1)",
                None,
            ),
            event(
                "y",
                "2026-01-01T00:00:00.000000Z",
                "pd-controller/0.1.0 (pd-controller-0)",
                None,
            ),
            event(
                "x",
                "2026-01-01T00:00:01.000000Z",
                "pd-controller/0.1.0 (pd-controller-0)",
                Some("status"),
            ),
            "not json".to_string(),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let writes = writes_in(&path, "x").unwrap();
        assert_eq!(writes.len(), 2);
        assert!(writes[0].by("pd-controller-0"));
        assert_eq!(writes[0].resource, "pds/status");
        assert!(writes[1].by("pd-controller-1"));
        assert!(!writes[1].by("pd-controller-0"));
        assert!(writes_in(&dir.join("missing.log"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
