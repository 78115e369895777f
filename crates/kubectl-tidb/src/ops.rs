//! The operations: `upgrade`, `pause`/`resume` and `restart`, each a merge patch of the field the
//! controllers act on, built by pure functions and sent under the field manager `kubectl-tidb`.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use operator_api::core::{Cluster, PD, PDGroup, TiDB, TiDBGroup, TiKV, TiKVGroup};
use operator_api::keys;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::snapshot::Snapshot;

/// The field manager of the plugin's writes.
pub const FIELD_MANAGER: &str = "kubectl-tidb";

/// One change made (or found already made), for the output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `Kind/name`.
    pub object: String,
    /// The field, as a JSON path.
    pub field: String,
    /// Its value before.
    pub from: String,
    /// Its value after.
    pub to: String,
    /// Whether a write was needed.
    pub changed: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changed {
            let from = if self.from.is_empty() {
                "(unset)"
            } else {
                &self.from
            };
            write!(f, "{}: {} {} -> {}", self.object, self.field, from, self.to)
        } else {
            write!(
                f,
                "{}: {} already {} (unchanged)",
                self.object, self.field, self.to
            )
        }
    }
}

/// The patch of a group's version.
pub fn version_patch(version: &str) -> Value {
    json!({"spec": {"template": {"spec": {"version": version}}}})
}

/// The patch of a Cluster's `spec.paused`.
pub fn paused_patch(paused: bool) -> Value {
    json!({"spec": {"paused": paused}})
}

/// The patch that restarts every instance of a group, one at a time, in the group's roll order:
/// a new value of the restart annotation on its template (a new revision).
pub fn restart_group_patch(at: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {keys::ANNO_RESTARTED_AT: at}}}}})
}

/// The patch that restarts one instance: the restart annotation on the instance itself.
pub fn restart_instance_patch(at: &str) -> Value {
    json!({"metadata": {"annotations": {keys::ANNO_RESTARTED_AT: at}}})
}

async fn patch<K>(client: &Client, namespace: &str, name: &str, body: &Value) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(body))
        .await
        .map_err(Error::api(format!(
            "patching {} {namespace}/{name}",
            K::kind(&())
        )))?;
    Ok(())
}

/// The version changes `upgrade` makes: one per group whose template asks for another version.
pub fn upgrade_plan(snapshot: &Snapshot, version: &str) -> Vec<Change> {
    let mut out = Vec::new();
    let mut add = |kind: &str, name: String, current: &str| {
        out.push(Change {
            object: format!("{kind}/{name}"),
            field: "spec.template.spec.version".into(),
            from: current.to_string(),
            to: version.to_string(),
            changed: current != version,
        });
    };
    for g in &snapshot.pd_groups {
        add(
            "PDGroup",
            g.name_any(),
            &g.spec.template.spec.common.version,
        );
    }
    for g in &snapshot.tikv_groups {
        add(
            "TiKVGroup",
            g.name_any(),
            &g.spec.template.spec.common.version,
        );
    }
    for g in &snapshot.tidb_groups {
        add(
            "TiDBGroup",
            g.name_any(),
            &g.spec.template.spec.common.version,
        );
    }
    out
}

/// Sets `version` on every group of the snapshot's cluster; the operator orders the roll.
pub async fn upgrade(client: &Client, snapshot: &Snapshot, version: &str) -> Result<Vec<Change>> {
    let namespace = snapshot.cluster.namespace().unwrap_or_default();
    let plan = upgrade_plan(snapshot, version);
    if plan.is_empty() {
        return Err(Error::NotFound(format!(
            "Cluster {namespace}/{} has no groups to upgrade",
            snapshot.cluster.name_any()
        )));
    }
    let body = version_patch(version);
    let mut done: Vec<&Change> = Vec::new();
    for change in plan.iter().filter(|c| c.changed) {
        let (kind, name) = change.object.split_once('/').unwrap_or_default();
        let sent = match kind {
            "PDGroup" => patch::<PDGroup>(client, &namespace, name, &body).await,
            "TiKVGroup" => patch::<TiKVGroup>(client, &namespace, name, &body).await,
            _ => patch::<TiDBGroup>(client, &namespace, name, &body).await,
        };
        if let Err(e) = sent {
            // A refusal half-way leaves the groups before it changed: say which.
            for change in done {
                eprintln!("changed before the failure: {change}");
            }
            return Err(e);
        }
        done.push(change);
    }
    Ok(plan)
}

/// Sets the Cluster's `spec.paused`.
pub async fn set_paused(client: &Client, cluster: &Cluster, paused: bool) -> Result<Change> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let change = Change {
        object: format!("Cluster/{name}"),
        field: "spec.paused".into(),
        from: cluster.spec.paused.to_string(),
        to: paused.to_string(),
        changed: cluster.spec.paused != paused,
    };
    if change.changed {
        patch::<Cluster>(client, &namespace, &name, &paused_patch(paused)).await?;
    }
    Ok(change)
}

/// What `restart TARGET` patches: a group of the cluster by name, else an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartTarget {
    /// A group: every instance, one at a time.
    Group {
        /// `PDGroup`, `TiKVGroup`, `TiDBGroup`.
        kind: &'static str,
        /// Its current restart annotation.
        previous: String,
    },
    /// One instance.
    Instance {
        /// `PD`, `TiKV`, `TiDB`.
        kind: &'static str,
        /// Its current restart annotation.
        previous: String,
    },
}

fn annotation<K: ResourceExt>(object: &K) -> String {
    object
        .annotations()
        .get(keys::ANNO_RESTARTED_AT)
        .cloned()
        .unwrap_or_default()
}

/// Finds `name` among the snapshot's groups, then its instances.
pub fn restart_target(snapshot: &Snapshot, name: &str) -> Option<RestartTarget> {
    let group = |kind, previous: Option<String>| {
        previous.map(|previous| RestartTarget::Group { kind, previous })
    };
    let template = |m: &operator_api::core::ObjectMeta| {
        m.annotations
            .get(keys::ANNO_RESTARTED_AT)
            .cloned()
            .unwrap_or_default()
    };
    let instance = |kind, previous: Option<String>| {
        previous.map(|previous| RestartTarget::Instance { kind, previous })
    };
    let named = |n: String| n == name;
    group(
        "PDGroup",
        snapshot
            .pd_groups
            .iter()
            .find(|g| named(g.name_any()))
            .map(|g| template(&g.spec.template.metadata)),
    )
    .or_else(|| {
        group(
            "TiKVGroup",
            snapshot
                .tikv_groups
                .iter()
                .find(|g| named(g.name_any()))
                .map(|g| template(&g.spec.template.metadata)),
        )
    })
    .or_else(|| {
        group(
            "TiDBGroup",
            snapshot
                .tidb_groups
                .iter()
                .find(|g| named(g.name_any()))
                .map(|g| template(&g.spec.template.metadata)),
        )
    })
    .or_else(|| {
        instance(
            "PD",
            snapshot
                .pds
                .iter()
                .find(|i| named(i.name_any()))
                .map(annotation),
        )
    })
    .or_else(|| {
        instance(
            "TiKV",
            snapshot
                .tikvs
                .iter()
                .find(|i| named(i.name_any()))
                .map(annotation),
        )
    })
    .or_else(|| {
        instance(
            "TiDB",
            snapshot
                .tidbs
                .iter()
                .find(|i| named(i.name_any()))
                .map(annotation),
        )
    })
}

/// Restarts a group (rolling, in the group's order) or one instance of the snapshot's cluster,
/// stamping `at` as the restart annotation.
pub async fn restart(client: &Client, snapshot: &Snapshot, name: &str, at: &str) -> Result<Change> {
    let namespace = snapshot.cluster.namespace().unwrap_or_default();
    let target = restart_target(snapshot, name).ok_or_else(|| {
        Error::NotFound(format!(
            "Cluster {namespace}/{} has no group or instance named {name}",
            snapshot.cluster.name_any()
        ))
    })?;
    let (kind, previous, field) = match &target {
        RestartTarget::Group { kind, previous } => (
            *kind,
            previous.clone(),
            format!(
                "spec.template.metadata.annotations[{}]",
                keys::ANNO_RESTARTED_AT
            ),
        ),
        RestartTarget::Instance { kind, previous } => (
            *kind,
            previous.clone(),
            format!("metadata.annotations[{}]", keys::ANNO_RESTARTED_AT),
        ),
    };
    match target {
        RestartTarget::Group { kind, .. } => {
            let body = restart_group_patch(at);
            match kind {
                "PDGroup" => patch::<PDGroup>(client, &namespace, name, &body).await?,
                "TiKVGroup" => patch::<TiKVGroup>(client, &namespace, name, &body).await?,
                _ => patch::<TiDBGroup>(client, &namespace, name, &body).await?,
            }
        }
        RestartTarget::Instance { kind, .. } => {
            let body = restart_instance_patch(at);
            match kind {
                "PD" => patch::<PD>(client, &namespace, name, &body).await?,
                "TiKV" => patch::<TiKV>(client, &namespace, name, &body).await?,
                _ => patch::<TiDB>(client, &namespace, name, &body).await?,
            }
        }
    }
    Ok(Change {
        object: format!("{kind}/{name}"),
        field,
        from: previous,
        to: at.to_string(),
        changed: true,
    })
}
