//! `updateStrategy.config: HotReload` for components with an online-config API (PD, TiKV): the
//! Pod records the `config` its process has; a new `config` is compared with that record key by
//! key, and the decision says which keys change online and whether the Pod must restart instead.
//! Each component supplies which keys it can change online and how it encodes their values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use operator_api::core::{ConfigChangeStatus, ConfigUpdateStrategy, UpdateStrategy};
use operator_api::keys;
use serde_json::Value;

use crate::events::Events;
use crate::expect::{self, Expectations};
use crate::revision::hash_of;

/// A component's online-config rule: the JSON value to send for `key` set to `value`, or `None`
/// when the key cannot change while the process runs.
pub type OnlineRule = fn(key: &str, value: &toml::Value) -> Option<Value>;

/// `Online` in [`ConfigChangeStatus::method`].
pub const METHOD_ONLINE: &str = "Online";
/// `Restart` in [`ConfigChangeStatus::method`].
pub const METHOD_RESTART: &str = "Restart";
/// Reason of `Synced=False` while changed keys wait to be applied online.
pub const REASON_CONFIG_PENDING: &str = "ConfigChangePending";

/// What a running Pod needs for the instance's `config`.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigStep {
    /// Nothing: the process has this config, or the strategy is `Restart` (whose config-hash
    /// label decides restarts).
    Current,
    /// Only record it on the Pod: the Pod predates records, or only comments and layout changed.
    Record,
    /// Send these keys (dotted) with these values to the online-config API.
    Online(BTreeMap<String, Value>),
    /// Restart the Pod: these keys cannot change online (or the component refused the change).
    Restart(Vec<String>),
}

/// Writes the config a Pod starts with on the Pod being built.
pub fn stamp(pod: &mut Pod, config: &str) {
    pod.annotations_mut()
        .insert(keys::ANNO_APPLIED_CONFIG.to_string(), config.to_string());
}

/// The hash of a `config`, as the config-hash label and [`ConfigChangeStatus`] carry it.
pub fn config_hash(config: &str) -> String {
    hash_of(&config)
}

/// The step for a running Pod whose instance asks for `desired`.
pub fn step(strategy: &UpdateStrategy, pod: &Pod, desired: &str, rule: OnlineRule) -> ConfigStep {
    if strategy.config != Some(ConfigUpdateStrategy::HotReload) {
        return ConfigStep::Current;
    }
    let Some(applied) = pod.annotations().get(keys::ANNO_APPLIED_CONFIG) else {
        // Made before Pods carried their config: what it runs is unknown, and restarting every
        // member to find out is worse than trusting the file it was last given.
        return ConfigStep::Record;
    };
    if applied == desired {
        return ConfigStep::Current;
    }
    let rejected = pod.annotations().get(keys::ANNO_CONFIG_REJECTED);
    let change = diff(applied, desired, rule);
    if rejected.is_some_and(|h| *h == config_hash(desired)) {
        let mut all: Vec<String> = change.online.into_keys().collect();
        all.extend(change.restart);
        all.sort();
        return ConfigStep::Restart(all);
    }
    if !change.restart.is_empty() {
        ConfigStep::Restart(change.restart)
    } else if change.online.is_empty() {
        ConfigStep::Record
    } else {
        ConfigStep::Online(change.online)
    }
}

/// The keys that differ between two configs, split by the rule.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    /// Changed or added keys the component takes online, with the value to send.
    pub online: BTreeMap<String, Value>,
    /// Changed, added or removed keys that need a restart, sorted.
    pub restart: Vec<String>,
}

/// Compares two configs key by key. A key removed cannot be unset online, so it restarts; a
/// config that does not parse (never applied: the instance is blocked first) restarts as a whole.
pub fn diff(applied: &str, desired: &str, rule: OnlineRule) -> Change {
    let (Ok(before), Ok(after)) = (
        applied.parse::<toml::Table>(),
        desired.parse::<toml::Table>(),
    ) else {
        return Change {
            online: BTreeMap::new(),
            restart: vec!["(the whole config)".to_string()],
        };
    };
    let before = flatten(&before);
    let after = flatten(&after);
    let mut change = Change::default();
    for (key, value) in &after {
        if before.get(key) == Some(value) {
            continue;
        }
        match rule(key, value) {
            Some(encoded) => {
                change.online.insert(key.clone(), encoded);
            }
            None => change.restart.push(key.clone()),
        }
    }
    change
        .restart
        .extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    change.restart.sort();
    change
}

/// Leaves of a TOML table by dotted key; arrays (of tables too) are leaves.
fn flatten(table: &toml::Table) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                leaf => {
                    out.insert(path, leaf.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// A scalar TOML value as JSON (`None` for arrays, tables and dates, which no online-config API
/// here takes).
pub fn scalar(value: &toml::Value) -> Option<Value> {
    match value {
        toml::Value::String(s) => Some(Value::String(s.clone())),
        toml::Value::Integer(i) => Some(Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
        toml::Value::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

/// Whether `key` is one of `prefixes`: equal to one, or under one that ends in a dot.
pub fn key_matches(key: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        if p.ends_with('.') {
            key.starts_with(p)
        } else {
            key == *p
        }
    })
}

/// The status an online change leaves.
pub fn online_status(keys: &BTreeMap<String, Value>, desired: &str) -> ConfigChangeStatus {
    ConfigChangeStatus {
        method: METHOD_ONLINE.to_string(),
        online_keys: keys.keys().cloned().collect(),
        restart_keys: Vec::new(),
        config_hash: config_hash(desired),
    }
}

/// The status a restart for `keys` leaves.
pub fn restart_status(keys: &[String], desired: &str) -> ConfigChangeStatus {
    ConfigChangeStatus {
        method: METHOD_RESTART.to_string(),
        online_keys: Vec::new(),
        restart_keys: keys.to_vec(),
        config_hash: config_hash(desired),
    }
}

/// `Synced`'s message while the Pod restarts for keys that cannot change online.
pub fn restart_message(keys: &[String]) -> String {
    format!(
        "the Pod restarts to apply {}, which cannot change online",
        key_list(keys)
    )
}

/// A short list of keys for messages: the first few and a count of the rest.
pub fn key_list<'a>(keys: impl IntoIterator<Item = &'a String>) -> String {
    let keys: Vec<&String> = keys.into_iter().collect();
    let shown: Vec<&str> = keys.iter().take(5).map(|k| k.as_str()).collect();
    match keys.len().saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// What came of sending a change to a component's online-config API.
#[derive(Debug)]
pub enum Settled {
    /// Taken: the Pod records the new config.
    Applied(ConfigChangeStatus),
    /// Refused: the Pod records the refusal, so the change restarts it next.
    Refused,
    /// No answer, or an error that is not a refusal: nothing is recorded and the change is sent
    /// again.
    Failed(pd_client::Error),
}

/// Whether a component's answer refuses the change itself (rather than failing to answer).
pub type Refusal = fn(&pd_client::Error) -> bool;

/// Records on an instance's Pod (named as the instance) what its process runs, and remembers
/// each patch until the Pod cache shows it, so the next reconcile does not send the same change
/// again from an older copy.
pub struct Recorder<'a> {
    pods: Api<Pod>,
    pod: String,
    expectations: &'a Expectations,
    key: String,
}

impl<'a> Recorder<'a> {
    /// The recorder of `instance`'s Pod.
    pub fn new<K: Resource<DynamicType = ()>>(
        client: &Client,
        instance: &K,
        expectations: &'a Expectations,
    ) -> Self {
        let namespace = instance.meta().namespace.clone().unwrap_or_default();
        Self {
            pods: Api::namespaced(client.clone(), &namespace),
            pod: instance.meta().name.clone().unwrap_or_default(),
            expectations,
            key: format!("{}/config", expect::key_of(instance)),
        }
    }

    /// Whether the Pod cache does not show this recorder's last patch yet.
    pub fn lagging(&self, pods: &Store<Pod>, namespace: &str) -> bool {
        self.expectations
            .lagging(&self.key, pods, namespace)
            .is_some()
    }

    /// Records what the component's answer to `items` (the online part of `instance`'s config)
    /// means, and says so in an Event on `instance`.
    pub async fn settle<K>(
        &self,
        events: &Events,
        instance: &K,
        items: &BTreeMap<String, Value>,
        answer: pd_client::Result<()>,
        refused: Refusal,
    ) -> Result<Settled, crate::reconcile::Error>
    where
        K: Resource<DynamicType = ()> + operator_api::core::Instance,
    {
        let recording = || crate::reconcile::Error::kube("recording the applied config on the Pod");
        let desired = instance.common().config.as_str();
        let keys = key_list(items.keys());
        match answer {
            Ok(()) => {
                self.record(desired).await.map_err(recording())?;
                let note = format!("applied online, without a restart: {keys}");
                events
                    .normal(instance, "ConfigApplied", "HotReload", note)
                    .await;
                Ok(Settled::Applied(online_status(items, desired)))
            }
            Err(error) if refused(&error) => {
                let hash = config_hash(desired);
                self.patch(serde_json::json!({ keys::ANNO_CONFIG_REJECTED: hash }))
                    .await
                    .map_err(recording())?;
                let note = format!(
                    "the online change of {keys} was refused ({error}); the Pod restarts to read it from its file"
                );
                events
                    .warning(instance, "ConfigRejected", "HotReload", note)
                    .await;
                Ok(Settled::Refused)
            }
            Err(error) => Ok(Settled::Failed(error)),
        }
    }

    /// Records that the process has `desired` (and forgets an older refusal).
    pub async fn record(&self, desired: &str) -> Result<(), kube::Error> {
        self.patch(serde_json::json!({
            keys::ANNO_APPLIED_CONFIG: desired,
            keys::ANNO_CONFIG_REJECTED: Value::Null,
        }))
        .await
    }

    async fn patch(&self, annotations: Value) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"metadata": {"annotations": annotations}});
        let patched = self
            .pods
            .patch(&self.pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.expectations.wrote(&self.key, &patched);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(key: &str, value: &toml::Value) -> Option<Value> {
        key_matches(key, &["log.level", "schedule."])
            .then(|| scalar(value))
            .flatten()
    }

    fn hot() -> UpdateStrategy {
        UpdateStrategy {
            config: Some(ConfigUpdateStrategy::HotReload),
        }
    }

    fn pod_with(applied: Option<&str>, rejected: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        if let Some(a) = applied {
            stamp(&mut pod, a);
        }
        if let Some(r) = rejected {
            pod.annotations_mut()
                .insert(keys::ANNO_CONFIG_REJECTED.into(), config_hash(r));
        }
        pod
    }

    const BEFORE: &str = "[log]\nlevel = \"info\"\n[schedule]\nleader-schedule-limit = 4\n";

    #[test]
    fn steps() {
        let online = "[log]\nlevel = \"warn\"\n[schedule]\nleader-schedule-limit = 8\n";
        let restart =
            "[log]\nlevel = \"warn\"\nfile = \"x\"\n[schedule]\nleader-schedule-limit = 4\n";
        let removed = "[log]\nlevel = \"info\"\n";
        let reformatted = "log.level = \"info\"\nschedule.leader-schedule-limit = 4\n";
        let cases: Vec<(&str, UpdateStrategy, Pod, &str, ConfigStep)> = vec![
            (
                "the Restart strategy leaves it to the hash label",
                UpdateStrategy::default(),
                pod_with(Some(BEFORE), None),
                online,
                ConfigStep::Current,
            ),
            (
                "same config",
                hot(),
                pod_with(Some(BEFORE), None),
                BEFORE,
                ConfigStep::Current,
            ),
            (
                "a Pod without a record is recorded, not restarted",
                hot(),
                pod_with(None, None),
                online,
                ConfigStep::Record,
            ),
            (
                "only the layout changed",
                hot(),
                pod_with(Some(BEFORE), None),
                reformatted,
                ConfigStep::Record,
            ),
            (
                "online keys",
                hot(),
                pod_with(Some(BEFORE), None),
                online,
                ConfigStep::Online(BTreeMap::from([
                    ("log.level".into(), Value::from("warn")),
                    ("schedule.leader-schedule-limit".into(), Value::from(8)),
                ])),
            ),
            (
                "one key that cannot change online restarts",
                hot(),
                pod_with(Some(BEFORE), None),
                restart,
                ConfigStep::Restart(vec!["log.file".into()]),
            ),
            (
                "a removed key restarts",
                hot(),
                pod_with(Some(BEFORE), None),
                removed,
                ConfigStep::Restart(vec!["schedule.leader-schedule-limit".into()]),
            ),
            (
                "a change the component refused restarts, all keys named",
                hot(),
                pod_with(Some(BEFORE), Some(online)),
                online,
                ConfigStep::Restart(vec![
                    "log.level".into(),
                    "schedule.leader-schedule-limit".into(),
                ]),
            ),
            (
                "a refusal of an older change does not count",
                hot(),
                pod_with(Some(BEFORE), Some(restart)),
                online,
                ConfigStep::Online(BTreeMap::from([
                    ("log.level".into(), Value::from("warn")),
                    ("schedule.leader-schedule-limit".into(), Value::from(8)),
                ])),
            ),
            (
                "an unreadable record restarts",
                hot(),
                pod_with(Some("not = [toml"), None),
                online,
                ConfigStep::Restart(vec!["(the whole config)".into()]),
            ),
        ];
        for (name, strategy, pod, desired, want) in cases {
            assert_eq!(step(&strategy, &pod, desired, rule), want, "{name}");
        }
    }

    #[test]
    fn values_and_keys() {
        assert_eq!(scalar(&toml::Value::Boolean(true)), Some(Value::Bool(true)));
        assert_eq!(scalar(&toml::Value::Array(vec![])), None);
        assert!(key_matches("schedule.x", &["schedule."]));
        assert!(!key_matches("schedules", &["schedule."]));
        assert!(!key_matches("log.file", &["log.level"]));
        let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        assert_eq!(key_list(&keys), "k0, k1, k2, k3, k4 and 2 more");
    }
}
