//! Which PD config items change online (`POST /pd/api/v1/config`) and how their values are sent.

use operator_runtime::online_config::{key_matches, scalar};
use serde_json::Value;

/// What PD's config API changes without a restart: the sections it keeps for the whole cluster
/// (`schedule`, `replication`, `replication-mode`, `pd-server`) and the member's `log.level`.
/// Everything else (ports, names, directories, `lease`, `security`, the rest of `log`) is read
/// only at start.
const ONLINE: &[&str] = &[
    "schedule.",
    "replication.",
    "replication-mode.",
    "pd-server.",
    "log.level",
];

/// The value to send for `key`, or `None` when the key needs a restart. PD takes a list of
/// strings (`replication.location-labels`) as one comma-separated string.
pub fn value(key: &str, value: &toml::Value) -> Option<Value> {
    if !key_matches(key, ONLINE) {
        return None;
    }
    match value {
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .map(|list| Value::String(list.join(","))),
        other => scalar(other),
    }
}

/// PD answers 400 to an item it does not know or cannot change (`config prefix … not found`,
/// `only support changing log level`); anything else is no answer about the change.
pub fn refused(error: &pd_client::Error) -> bool {
    error.status() == Some(400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_items_and_their_values() {
        let cases: &[(&str, toml::Value, Option<Value>)] = &[
            ("log.level", "warn".into(), Some("warn".into())),
            ("log.file.filename", "x".into(), None),
            ("lease", 5.into(), None),
            ("schedule.leader-schedule-limit", 8.into(), Some(8.into())),
            ("schedules.x", 8.into(), None),
            (
                "replication.location-labels",
                toml::Value::Array(vec!["zone".into(), "host".into()]),
                Some("zone,host".into()),
            ),
            (
                "schedule.schedulers-v2",
                toml::Value::Array(vec![toml::Value::Table(toml::Table::new())]),
                None,
            ),
            (
                "pd-server.use-region-storage",
                true.into(),
                Some(true.into()),
            ),
        ];
        for (key, input, want) in cases {
            assert_eq!(&value(key, input), want, "{key}");
        }
    }
}
