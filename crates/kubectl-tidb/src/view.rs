//! What the plugin shows, computed from fetched objects by pure functions: a row per cluster for
//! `list`, the tree of `status` with what is not as it should be, and the progress of `watch`.
//! Nothing here talks to the API, so every view is unit-tested on plain objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{
    Cluster, CommonStatus, ComponentGroupStatus, PD, PDGroup, TiCDCGroup, TiDB, TiDBGroup,
    TiFlashGroup, TiKV, TiKVGroup, UpgradePolicy,
};
use operator_api::keys;
use serde::Serialize;

use crate::snapshot::Snapshot;

/// How many recent Warning Events `status` shows.
pub const RECENT_EVENTS: usize = 10;

/// One condition as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
}

impl From<&Condition> for ConditionView {
    fn from(c: &Condition) -> Self {
        ConditionView {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }
}

/// Ready out of desired for one component of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCount {
    /// `pd`, `tikv`, `tidb`.
    pub component: String,
    /// Ready instances over the component's groups.
    pub ready: i32,
    /// Desired instances over the component's groups.
    pub desired: i32,
}

/// One line of `list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The versions its groups run (status), else ask for.
    pub versions: Vec<String>,
    /// Ready/desired per component.
    pub components: Vec<ComponentCount>,
    /// Status of `Available`, `Ready`, `Progressing` (empty when not reported yet).
    pub available: String,
    /// See `available`.
    pub ready: String,
    /// See `available`.
    pub progressing: String,
    /// Whether `spec.paused` is set.
    pub paused: bool,
    /// Seconds since creation.
    pub age_seconds: i64,
}

/// A Pod as shown under its instance.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    /// Name.
    pub name: String,
    /// Phase (`Running`, `Pending`, ...), or `Terminating`.
    pub phase: String,
    /// Its `Ready` condition is true.
    pub ready: bool,
    /// The Node it runs on.
    pub node: String,
    /// Container restarts, summed.
    pub restarts: i32,
}

/// A PVC as shown under its instance.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    /// The PVC's name.
    pub name: String,
    /// Capacity, else the size asked for.
    pub size: String,
    /// Phase (`Bound`, `Pending`).
    pub phase: String,
}

/// One instance (PD member, TiKV store, TiDB server).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// `PD`, `TiKV`, `TiDB`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// The version its spec asks for.
    pub version: String,
    /// Made from the group's update revision.
    pub up_to_date: bool,
    /// Its `Ready` condition is true.
    pub ready: bool,
    /// PD: the leader when last observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_leader: Option<bool>,
    /// PD member ID or TiKV store ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// TiKV: the store state (Preparing, Serving, Removing, Removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_state: Option<String>,
    /// Its conditions.
    pub conditions: Vec<ConditionView>,
    /// Its Pod, when there is one.
    pub pod: Option<PodView>,
    /// Its PVCs.
    pub volumes: Vec<VolumeView>,
}

/// One group and its instances.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// `PDGroup`, `TiKVGroup`, `TiDBGroup`.
    pub kind: String,
    /// `pd`, `tikv`, `tidb`.
    pub component: String,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Instances that exist.
    pub replicas: i32,
    /// Ready instances.
    pub ready: i32,
    /// Instances of the update revision.
    pub updated: i32,
    /// The version every instance runs (status).
    pub version: String,
    /// The version asked for (spec).
    pub target_version: String,
    /// The revision instances are updated to.
    pub update_revision: String,
    /// Its controller has acted on its current spec (`status.observedGeneration` caught up), so
    /// the counts above are about what the spec asks now.
    pub observed: bool,
    /// Its conditions.
    pub conditions: Vec<ConditionView>,
    /// Its instances.
    pub instances: Vec<InstanceView>,
}

/// A condition that is not as it should be, on a named object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `Kind/name` of the object.
    pub object: String,
    /// The condition.
    #[serde(flatten)]
    pub condition: ConditionView,
}

/// A Warning Event of one of the cluster's objects.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// `Kind/name` of the object.
    pub object: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// How many times it happened.
    pub count: i32,
    /// When it last happened (RFC 3339), empty when unknown.
    pub last_seen: String,
}

/// The whole of `status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// No condition anywhere is as it should not be.
    pub healthy: bool,
    /// `spec.paused`.
    pub paused: bool,
    /// The order groups take a new version.
    pub upgrade_order: String,
    /// PD's URL, from the Cluster's status.
    pub pd: String,
    /// PD's cluster ID.
    pub cluster_id: String,
    /// The Cluster's conditions.
    pub conditions: Vec<ConditionView>,
    /// Groups (PD, TiKV, TiDB), each with its instances.
    pub groups: Vec<GroupView>,
    /// Every condition not as it should be, with its message.
    pub problems: Vec<Problem>,
    /// Recent Warning Events of the cluster's objects, newest last.
    pub events: Vec<EventView>,
    /// Kinds the user may not read, so not shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// With `--pd`: PD's own view of its members and stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_view: Option<PdView>,
    /// With `--pd`: why PD's own view could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_view_error: Option<String>,
}

/// PD's own view, as PD answers it (`--pd`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdView {
    /// The PD leader's member name, empty without one.
    pub leader: String,
    /// Every member's name.
    pub members: Vec<String>,
    /// Every store PD knows, by ID.
    pub stores: Vec<PdStoreView>,
}

/// One store as PD reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdStoreView {
    /// Store ID.
    pub id: u64,
    /// Its address.
    pub address: String,
    /// `Up`, `Disconnected`, `Down`, `Offline`, `Tombstone`.
    pub state: String,
    /// Region leaders on it.
    pub leader_count: i64,
    /// Region peers on it.
    pub region_count: i64,
}

/// PD's members and stores answers as a [`PdView`].
pub fn pd_view(members: &pd_client::MembersInfo, stores: &pd_client::StoresInfo) -> PdView {
    let mut stores: Vec<PdStoreView> = stores
        .stores
        .iter()
        .map(|s| PdStoreView {
            id: s.store.id,
            address: s.store.address.clone(),
            state: s.store.state_name.clone(),
            leader_count: s.status.leader_count,
            region_count: s.status.region_count,
        })
        .collect();
    stores.sort_by_key(|s| s.id);
    PdView {
        leader: members.leader_name().unwrap_or_default().to_string(),
        members: members.members.iter().map(|m| m.name.clone()).collect(),
        stores,
    }
}

/// The API server's service-proxy path of PD's API at `pd_url` (the Cluster's `status.pd`, for
/// example `http://basic-pd.db:2379`) in `namespace`: the Service is the host's first label.
pub fn pd_proxy_path(namespace: &str, pd_url: &str) -> Option<String> {
    let (scheme, rest) = pd_url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let service = host.split('.').next().filter(|s| !s.is_empty())?;
    let prefix = if scheme == "https" { "https:" } else { "" };
    Some(format!(
        "/api/v1/namespaces/{namespace}/services/{prefix}{service}:{port}/proxy"
    ))
}

/// The status a condition type has when all is well; `None` for types that say nothing wrong
/// whatever their status.
pub fn expected_status(type_: &str) -> Option<&'static str> {
    match type_ {
        conditions::READY
        | conditions::SYNCED
        | conditions::AVAILABLE
        | conditions::INITIALIZED => Some(conditions::STATUS_TRUE),
        conditions::PROGRESSING
        | conditions::SUSPENDED
        | conditions::LEADERS_EVICTED
        | conditions::NODE_CORDONED
        | conditions::FAILED_OVER
        | conditions::OFFLINED => Some(conditions::STATUS_FALSE),
        _ => None,
    }
}

/// The conditions of `list` that are not as they should be, as problems of `object`.
fn problems_of(object: &str, list: &[Condition]) -> Vec<Problem> {
    list.iter()
        .filter(|c| expected_status(&c.type_).is_some_and(|want| c.status != want))
        .map(|c| Problem {
            object: object.to_string(),
            condition: c.into(),
        })
        .collect()
}

fn condition_status(list: &[Condition], type_: &str) -> String {
    conditions::find(list, type_)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// The fields every group kind has, to build a [`GroupView`] whatever the kind.
struct GroupFacts<'a> {
    kind: &'static str,
    component: &'static str,
    name: String,
    desired: i32,
    generation: i64,
    target_version: &'a str,
    status: Option<&'a ComponentGroupStatus>,
}

macro_rules! group_facts {
    ($($kind:ty => $name:literal, $component:expr);*) => {$(
        impl<'a> From<&'a $kind> for GroupFacts<'a> {
            fn from(g: &'a $kind) -> Self {
                GroupFacts {
                    kind: $name,
                    component: $component,
                    name: g.name_any(),
                    desired: g.spec.replicas,
                    generation: g.metadata.generation.unwrap_or_default(),
                    target_version: &g.spec.template.spec.common.version,
                    status: g.status.as_ref(),
                }
            }
        }
    )*};
}

group_facts!(
    PDGroup => "PDGroup", keys::COMPONENT_PD;
    TiKVGroup => "TiKVGroup", keys::COMPONENT_TIKV;
    TiDBGroup => "TiDBGroup", keys::COMPONENT_TIDB;
    TiFlashGroup => "TiFlashGroup", keys::COMPONENT_TIFLASH;
    TiCDCGroup => "TiCDCGroup", keys::COMPONENT_TICDC
);

/// The fields every instance kind has, and the component's own.
struct InstanceFacts<'a> {
    kind: &'static str,
    name: String,
    labels: &'a BTreeMap<String, String>,
    version: &'a str,
    status: Option<&'a CommonStatus>,
    pd_leader: Option<bool>,
    id: Option<String>,
    store_state: Option<String>,
}

impl<'a> From<&'a PD> for InstanceFacts<'a> {
    fn from(i: &'a PD) -> Self {
        InstanceFacts {
            kind: "PD",
            name: i.name_any(),
            labels: i.labels(),
            version: &i.spec.template.common.version,
            status: i.status.as_ref().map(|s| &s.common),
            pd_leader: Some(i.status.as_ref().is_some_and(|s| s.is_leader)),
            id: i
                .status
                .as_ref()
                .map(|s| s.id.clone())
                .filter(|s| !s.is_empty()),
            store_state: None,
        }
    }
}

impl<'a> From<&'a TiKV> for InstanceFacts<'a> {
    fn from(i: &'a TiKV) -> Self {
        InstanceFacts {
            kind: "TiKV",
            name: i.name_any(),
            labels: i.labels(),
            version: &i.spec.template.common.version,
            status: i.status.as_ref().map(|s| &s.common),
            pd_leader: None,
            id: i
                .status
                .as_ref()
                .map(|s| s.id.clone())
                .filter(|s| !s.is_empty()),
            store_state: i
                .status
                .as_ref()
                .map(|s| s.state.clone())
                .filter(|s| !s.is_empty()),
        }
    }
}

impl<'a> From<&'a TiDB> for InstanceFacts<'a> {
    fn from(i: &'a TiDB) -> Self {
        InstanceFacts {
            kind: "TiDB",
            name: i.name_any(),
            labels: i.labels(),
            version: &i.spec.template.common.version,
            status: i.status.as_ref().map(|s| &s.common),
            pd_leader: None,
            id: None,
            store_state: None,
        }
    }
}

/// A Pod as shown.
pub fn pod_view(pod: &Pod) -> PodView {
    let status = pod.status.as_ref();
    let phase = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        status.and_then(|s| s.phase.clone()).unwrap_or_default()
    };
    PodView {
        name: pod.name_any(),
        phase,
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        restarts: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c.iter().map(|c| c.restart_count).sum())
            .unwrap_or_default(),
    }
}

/// A PVC as shown: its capacity once bound, else the size it asks for.
pub fn volume_view(pvc: &PersistentVolumeClaim) -> VolumeView {
    let capacity = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone());
    let requested = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    VolumeView {
        name: pvc.name_any(),
        size: capacity.or(requested).unwrap_or_default(),
        phase: pvc
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
    }
}

fn instance_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(keys::LABEL_INSTANCE).map(String::as_str)
}

fn instance_view(
    facts: InstanceFacts<'_>,
    update_revision: &str,
    snapshot: &Snapshot,
) -> InstanceView {
    let conditions: &[Condition] = facts.status.map(|s| &s.conditions[..]).unwrap_or(&[]);
    let revision = facts
        .labels
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .map(String::as_str)
        .unwrap_or_default();
    let name = facts.name;
    InstanceView {
        kind: facts.kind.to_string(),
        up_to_date: !update_revision.is_empty() && revision == update_revision,
        ready: conditions::is_true(conditions, conditions::READY),
        version: facts.version.to_string(),
        pd_leader: facts.pd_leader,
        id: facts.id,
        store_state: facts.store_state,
        conditions: conditions.iter().map(ConditionView::from).collect(),
        pod: snapshot
            .pods
            .iter()
            .find(|p| instance_of(p.labels()) == Some(name.as_str()))
            .map(pod_view),
        volumes: snapshot
            .pvcs
            .iter()
            .filter(|p| instance_of(p.labels()) == Some(name.as_str()))
            .map(volume_view)
            .collect(),
        name,
    }
}

fn group_view<'a>(
    facts: GroupFacts<'a>,
    instances: impl Iterator<Item = InstanceFacts<'a>>,
    snapshot: &Snapshot,
) -> GroupView {
    let status = facts.status.cloned().unwrap_or_default();
    let update_revision = status.common.update_revision.clone();
    let instances = instances
        .filter(|i| i.labels.get(keys::LABEL_GROUP) == Some(&facts.name))
        .map(|i| instance_view(i, &update_revision, snapshot))
        .collect();
    GroupView {
        kind: facts.kind.to_string(),
        component: facts.component.to_string(),
        desired: facts.desired,
        replicas: status.group.replicas,
        ready: status.group.ready_replicas,
        updated: status.group.updated_replicas,
        version: status.group.version.clone(),
        target_version: facts.target_version.to_string(),
        update_revision,
        observed: status.common.observed_generation >= facts.generation,
        conditions: status
            .common
            .conditions
            .iter()
            .map(ConditionView::from)
            .collect(),
        instances,
        name: facts.name,
    }
}

/// Every group of a snapshot, PD first, then TiKV, then TiDB (the default upgrade order).
pub fn groups(snapshot: &Snapshot) -> Vec<GroupView> {
    let mut out = Vec::new();
    for g in &snapshot.pd_groups {
        out.push(group_view(
            g.into(),
            snapshot.pds.iter().map(Into::into),
            snapshot,
        ));
    }
    for g in &snapshot.tikv_groups {
        out.push(group_view(
            g.into(),
            snapshot.tikvs.iter().map(Into::into),
            snapshot,
        ));
    }
    for g in &snapshot.tidb_groups {
        out.push(group_view(
            g.into(),
            snapshot.tidbs.iter().map(Into::into),
            snapshot,
        ));
    }
    out
}

/// The order groups take a new version under the Cluster's upgrade policy.
pub fn upgrade_order(cluster: &Cluster) -> String {
    match cluster.spec.upgrade_policy.unwrap_or_default() {
        UpgradePolicy::Default => "PD, then TiKV, then TiDB".to_string(),
        UpgradePolicy::NoConstraints => "all groups at once".to_string(),
    }
}

fn event_time(event: &Event) -> Option<Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The Warning Events of the snapshot's objects, newest last, at most `limit`.
pub fn recent_events(snapshot: &Snapshot, limit: usize) -> Vec<EventView> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    names.insert(snapshot.cluster.name_any());
    names.extend(snapshot.pd_groups.iter().map(ResourceExt::name_any));
    names.extend(snapshot.tikv_groups.iter().map(ResourceExt::name_any));
    names.extend(snapshot.tidb_groups.iter().map(ResourceExt::name_any));
    names.extend(snapshot.pds.iter().map(ResourceExt::name_any));
    names.extend(snapshot.tikvs.iter().map(ResourceExt::name_any));
    names.extend(snapshot.tidbs.iter().map(ResourceExt::name_any));
    names.extend(snapshot.pods.iter().map(ResourceExt::name_any));
    names.extend(snapshot.pvcs.iter().map(ResourceExt::name_any));
    let mut events: Vec<&Event> = snapshot
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.involved_object
                .name
                .as_ref()
                .is_some_and(|n| names.contains(n))
        })
        .collect();
    events.sort_by_key(|e| event_time(e));
    let skip = events.len().saturating_sub(limit);
    events
        .into_iter()
        .skip(skip)
        .map(|e| EventView {
            object: format!(
                "{}/{}",
                e.involved_object.kind.as_deref().unwrap_or_default(),
                e.involved_object.name.as_deref().unwrap_or_default()
            ),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
            last_seen: event_time(e).map(|t| t.to_string()).unwrap_or_default(),
        })
        .collect()
}

/// The whole `status` view of a snapshot.
pub fn status_view(snapshot: &Snapshot) -> StatusView {
    let cluster = &snapshot.cluster;
    let groups = groups(snapshot);
    let mut problems = problems_of(
        &format!("Cluster/{}", cluster.name_any()),
        cluster.conditions(),
    );
    for group in &groups {
        let object = format!("{}/{}", group.kind, group.name);
        problems.extend(problems_of_views(&object, &group.conditions));
        for instance in &group.instances {
            let object = format!("{}/{}", instance.kind, instance.name);
            problems.extend(problems_of_views(&object, &instance.conditions));
        }
    }
    let status = cluster.status.clone().unwrap_or_default();
    StatusView {
        namespace: cluster.namespace().unwrap_or_default(),
        name: cluster.name_any(),
        healthy: problems.is_empty()
            && conditions::is_true(cluster.conditions(), conditions::READY),
        paused: cluster.spec.paused,
        upgrade_order: upgrade_order(cluster),
        pd: status.pd,
        cluster_id: status.id,
        conditions: cluster
            .conditions()
            .iter()
            .map(ConditionView::from)
            .collect(),
        groups,
        problems,
        events: recent_events(snapshot, RECENT_EVENTS),
        unreadable: snapshot.unreadable.clone(),
        pd_view: None,
        pd_view_error: None,
    }
}

fn problems_of_views(object: &str, list: &[ConditionView]) -> Vec<Problem> {
    list.iter()
        .filter(|c| expected_status(&c.type_).is_some_and(|want| c.status != want))
        .map(|c| Problem {
            object: object.to_string(),
            condition: c.clone(),
        })
        .collect()
}

/// The `list` row of `cluster`, with the groups of its namespace (any cluster's: filtered here).
pub fn cluster_row(
    cluster: &Cluster,
    pd: &[PDGroup],
    tikv: &[TiKVGroup],
    tidb: &[TiDBGroup],
    tiflash: &[TiFlashGroup],
    ticdc: &[TiCDCGroup],
    now: Timestamp,
) -> ClusterRow {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let mine =
        |ns: Option<String>, of: &str| ns.as_deref() == Some(namespace.as_str()) && of == name;
    let mut facts: Vec<GroupFacts<'_>> = Vec::new();
    for g in pd {
        let f = GroupFacts::from(g);
        if mine(g.namespace(), &g.spec.cluster.name) {
            facts.push(f);
        }
    }
    for g in tikv {
        let f = GroupFacts::from(g);
        if mine(g.namespace(), &g.spec.cluster.name) {
            facts.push(f);
        }
    }
    for g in tidb {
        let f = GroupFacts::from(g);
        if mine(g.namespace(), &g.spec.cluster.name) {
            facts.push(f);
        }
    }
    for g in tiflash {
        let f = GroupFacts::from(g);
        if mine(g.namespace(), &g.spec.cluster.name) {
            facts.push(f);
        }
    }
    for g in ticdc {
        let f = GroupFacts::from(g);
        if mine(g.namespace(), &g.spec.cluster.name) {
            facts.push(f);
        }
    }
    let mut components: Vec<ComponentCount> = Vec::new();
    let mut versions: BTreeSet<String> = BTreeSet::new();
    for f in &facts {
        let status = f.status.map(|s| &s.group);
        let version = status
            .map(|s| s.version.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| f.target_version.to_string());
        versions.insert(version);
        let ready = status.map_or(0, |s| s.ready_replicas);
        match components.iter_mut().find(|c| c.component == f.component) {
            Some(c) => {
                c.ready += ready;
                c.desired += f.desired;
            }
            None => components.push(ComponentCount {
                component: f.component.to_string(),
                ready,
                desired: f.desired,
            }),
        }
    }
    let list = cluster.conditions();
    ClusterRow {
        versions: versions.into_iter().collect(),
        components,
        available: condition_status(list, conditions::AVAILABLE),
        ready: condition_status(list, conditions::READY),
        progressing: condition_status(list, conditions::PROGRESSING),
        paused: cluster.spec.paused,
        age_seconds: cluster
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| now.as_second() - t.0.as_second()),
        namespace,
        name,
    }
}

/// What a group's roll waits for now, in one phrase: the first instance condition not as it
/// should be (the most specific), else the group's own.
pub fn waiting_for(group: &GroupView) -> Option<String> {
    let instance = group.instances.iter().find_map(|i| {
        problems_of_views(&format!("{}/{}", i.kind, i.name), &i.conditions)
            .into_iter()
            .next()
    });
    let problem = instance.or_else(|| {
        problems_of_views(&format!("{}/{}", group.kind, group.name), &group.conditions)
            .into_iter()
            .next()
    })?;
    let c = &problem.condition;
    Some(if c.message.is_empty() {
        format!("{} {}={} ({})", problem.object, c.type_, c.status, c.reason)
    } else {
        format!(
            "{} {}={} ({}): {}",
            problem.object, c.type_, c.status, c.reason, c.message
        )
    })
}

/// A group's progress in one line, the unit of `watch`'s output when it is not on a terminal.
pub fn progress_line(group: &GroupView) -> String {
    let version = if group.version == group.target_version || group.version.is_empty() {
        group.target_version.clone()
    } else {
        format!("{} -> {}", group.version, group.target_version)
    };
    let mut line = format!(
        "{}/{} {} updated {}/{} ready {}/{}",
        group.component,
        group.name,
        version,
        group.updated,
        group.desired,
        group.ready,
        group.desired
    );
    match waiting_for(group) {
        Some(wait) => {
            line.push_str(" waiting: ");
            line.push_str(&wait);
        }
        None => line.push_str(" settled"),
    }
    line
}

/// Whether every group's controller has acted on its current spec and the group has its desired
/// instances, all updated and ready, at the version asked for, with nothing not as it should be.
pub fn settled(view: &StatusView) -> bool {
    view.healthy
        && view.groups.iter().all(|g| {
            g.observed
                && g.updated == g.desired
                && g.ready == g.desired
                && g.replicas == g.desired
                && g.version == g.target_version
        })
}

#[cfg(test)]
mod tests;
