//! The Cluster's status, computed from its groups and PD's answers: components, PD members,
//! stores and the conditions. Pure: the reconcile in the parent module reads and writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use operator_api::conditions::{self, reasons};
use operator_api::core::{
    Cluster, ClusterStatus, ComponentGroupStatus, ComponentKind, ComponentStatus, Feature,
    FeatureGateStatus, FeatureStage, PD_DEFAULT_PORT_CLIENT, PdMemberStatus, StoreMemberStatus,
    TidbServerStatus,
};
use operator_runtime::dns::Dns;
use operator_runtime::{build, cache};

use super::GroupCaches;

/// One group of the cluster, as the Cluster's status needs it.
#[derive(Clone, Debug)]
pub struct GroupView {
    /// Which component.
    pub kind: ComponentKind,
    /// Group name.
    pub name: String,
    /// Desired replicas.
    pub replicas: i32,
    /// Generation.
    pub generation: Option<i64>,
    /// Status.
    pub status: Option<ComponentGroupStatus>,
    /// Features in its spec.
    pub features: Vec<Feature>,
    /// Being deleted.
    pub deleting: bool,
}

impl GroupView {
    pub(crate) fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.common.conditions.as_slice())
            .unwrap_or_default()
    }

    pub(crate) fn ready_replicas(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.group.ready_replicas)
    }

    /// Settled: observed its spec, Ready and Synced.
    pub(crate) fn settled(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.common.observed_generation == self.generation.unwrap_or_default())
            && conditions::is_true(self.conditions(), conditions::READY)
            && conditions::is_true(self.conditions(), conditions::SYNCED)
    }

    pub(crate) fn label(&self) -> String {
        format!("{:?}Group {}", self.kind, self.name)
    }
}

/// Every PD, TiKV, TiDB, TiFlash and TiCDC group that points at the cluster.
pub fn list_groups(caches: &GroupCaches, namespace: &str, cluster: &str) -> Vec<GroupView> {
    let mut views = Vec::new();
    for group in cache::list(&caches.pd, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::PD,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.tikv, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::TiKV,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.tidb, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::TiDB,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.tiflash, namespace, |g| {
        g.spec.cluster.name == cluster
    }) {
        views.push(view(
            ComponentKind::TiFlash,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    for group in cache::list(&caches.ticdc, namespace, |g| g.spec.cluster.name == cluster) {
        views.push(view(
            ComponentKind::TiCDC,
            &group,
            group.spec.replicas,
            group.status.clone(),
            group.spec.features.clone(),
        ));
    }
    views.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    views
}

fn view<K: Resource>(
    kind: ComponentKind,
    group: &K,
    replicas: i32,
    status: Option<ComponentGroupStatus>,
    features: Vec<Feature>,
) -> GroupView {
    GroupView {
        kind,
        name: group.meta().name.clone().unwrap_or_default(),
        replicas,
        generation: group.meta().generation,
        status,
        features,
        deleting: group.meta().deletion_timestamp.is_some(),
    }
}

/// `status.pd`: the URL of PD's client Service `service` (a PDGroup's `<group>-pd`, or the
/// Cluster's under MultiPDGroup), named as the Cluster's `spec.dns` asks.
pub fn pd_url(dns: &Dns, namespace: &str, service: &str) -> String {
    let host = dns.service_host(service, namespace);
    format!("{}://{host}:{PD_DEFAULT_PORT_CLIENT}", dns.scheme())
}

/// The host suffixes (`.<group>-<component>-peer.<namespace>...`, as this Cluster's DNS names
/// them) of the peer Services of this Cluster's groups of the `kinds` given with their component
/// names, and of the Cluster's own headless Service (`ClusterSubdomain`): a member or store whose
/// host ends with one runs in this Kubernetes cluster; those of other Kubernetes clusters have
/// other hosts.
fn peer_suffixes(
    dns: &Dns,
    namespace: &str,
    cluster: &str,
    groups: &[GroupView],
    kinds: &[(ComponentKind, &str)],
) -> Vec<String> {
    let cluster_service = build::cluster_subdomain(cluster);
    groups
        .iter()
        .filter_map(|g| {
            let (_, component) = kinds.iter().find(|(kind, _)| *kind == g.kind)?;
            Some(format!("{}-{component}-peer", g.name))
        })
        .chain(std::iter::once(cluster_service))
        .map(|service| format!(".{}", dns.service_host(&service, namespace)))
        .collect()
}

/// The host of a URL or `host:port` address.
fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.rsplit_once(':').map_or(rest, |(host, _)| host)
}

/// `status.pdMembers`: PD's members by name, each marked local when its client URL is a host
/// under the peer Service of one of this Cluster's PD groups.
pub fn members_status(
    dns: &Dns,
    namespace: &str,
    cluster: &str,
    groups: &[GroupView],
    info: &pd_client::MembersInfo,
) -> Vec<PdMemberStatus> {
    let suffixes = peer_suffixes(
        dns,
        namespace,
        cluster,
        groups,
        &[(ComponentKind::PD, "pd")],
    );
    let mut members: Vec<PdMemberStatus> = info
        .members
        .iter()
        .map(|m| {
            let client_url = m.client_urls.first().cloned().unwrap_or_default();
            let host = host_of(&client_url);
            PdMemberStatus {
                name: m.name.clone(),
                local: suffixes.iter().any(|s| host.ends_with(s.as_str())),
                client_url,
            }
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

/// `status.tidbServers`: the TiDB servers a TiDB lists, by address, each marked local when its
/// address is a host under the peer Service of one of this Cluster's TiDB groups.
pub fn tidb_servers(
    dns: &Dns,
    namespace: &str,
    cluster: &str,
    groups: &[GroupView],
    servers: &pd_client::TidbServers,
) -> Vec<TidbServerStatus> {
    let suffixes = peer_suffixes(
        dns,
        namespace,
        cluster,
        groups,
        &[(ComponentKind::TiDB, "tidb")],
    );
    let mut list: Vec<TidbServerStatus> = servers
        .all_servers_info
        .values()
        .map(|s| TidbServerStatus {
            address: format!("{}:{}", s.ip, s.listening_port),
            version: s.version.clone(),
            local: suffixes
                .iter()
                .any(|suffix| s.ip.ends_with(suffix.as_str())),
        })
        .collect();
    list.sort_by(|a, b| a.address.cmp(&b.address));
    list
}

/// `status.stores`: PD's stores but Tombstones, by ID, each marked local when its address is a
/// host under the peer Service of one of this Cluster's TiKV or TiFlash groups.
pub fn stores_status(
    dns: &Dns,
    namespace: &str,
    cluster: &str,
    groups: &[GroupView],
    info: &pd_client::StoresInfo,
) -> Vec<StoreMemberStatus> {
    let suffixes = peer_suffixes(
        dns,
        namespace,
        cluster,
        groups,
        &[
            (ComponentKind::TiKV, "tikv"),
            (ComponentKind::TiFlash, "tiflash"),
        ],
    );
    let mut stores: Vec<StoreMemberStatus> = info
        .stores
        .iter()
        .filter(|s| !s.is_tombstone())
        .map(|s| {
            let host = host_of(&s.store.address);
            StoreMemberStatus {
                id: s.store.id.to_string(),
                address: s.store.address.clone(),
                state: s.store.state_name.clone(),
                version: s.store.version.clone(),
                local: suffixes.iter().any(|x| host.ends_with(x.as_str())),
            }
        })
        .collect();
    stores.sort_by_key(|s| s.id.parse::<u64>().unwrap_or(u64::MAX));
    stores
}

/// The Cluster's status from its groups (pure).
pub fn cluster_status(
    cluster: &Cluster,
    groups: &[GroupView],
    pd_url: Option<String>,
    cluster_id: String,
    pd_error: Option<&str>,
    now: Timestamp,
) -> ClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    status.observed_generation = generation.unwrap_or_default();
    status.components = [
        ComponentKind::PD,
        ComponentKind::TiKV,
        ComponentKind::TiDB,
        ComponentKind::TiFlash,
        ComponentKind::TiCDC,
    ]
    .into_iter()
    .filter(|kind| groups.iter().any(|g| g.kind == *kind))
    .map(|kind| ComponentStatus {
        kind,
        replicas: groups
            .iter()
            .filter(|g| g.kind == kind)
            .map(|g| g.replicas)
            .sum(),
    })
    .collect();
    status.pd = pd_url.unwrap_or_default();
    status.id = cluster_id;
    status.feature_gates = cluster
        .spec
        .feature_gates
        .iter()
        .map(|g| FeatureGateStatus {
            name: g.name,
            stage: FeatureStage::Alpha,
        })
        .collect();

    let look = conditions::Look { generation, now };
    let set = |status: &mut ClusterStatus, type_, ok: bool, reason, message: String| {
        look.set(&mut status.conditions, type_, ok, reason, message);
    };
    let has = |kind| groups.iter().any(|g| g.kind == kind);
    // Available: SQL is served (a TiDB group with a ready server), or, without TiDB, the stores
    // and PD answer (a TiKV-only cluster).
    let (available, available_message) = if has(ComponentKind::TiDB) {
        let serving: Vec<String> = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::TiDB && g.ready_replicas() > 0)
            .map(GroupView::label)
            .collect();
        (
            !serving.is_empty(),
            if serving.is_empty() {
                "no TiDB server is ready".to_string()
            } else {
                format!("{} serve SQL", serving.join(", "))
            },
        )
    } else if has(ComponentKind::TiKV) && has(ComponentKind::PD) {
        let kv = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::TiKV)
            .all(|g| g.ready_replicas() > 0);
        let pd = groups
            .iter()
            .filter(|g| g.kind == ComponentKind::PD)
            .any(|g| g.ready_replicas() > 0);
        (
            kv && pd,
            if kv && pd {
                "PD and the TiKV stores are ready (TiKV-only cluster)".into()
            } else {
                "PD or the TiKV stores are not ready".into()
            },
        )
    } else {
        (
            false,
            "the cluster has no TiDB group, and not both a PD and a TiKV group".to_string(),
        )
    };
    // Without PD nothing is served, whatever the groups last said.
    let (available, reason, available_message) = match pd_error {
        Some(error) => (
            false,
            reasons::PD_UNAVAILABLE,
            format!("PD does not answer ({error}); no data is served until it does"),
        ),
        None if available => (true, reasons::CLUSTER_AVAILABLE, available_message),
        None => (false, reasons::UNREADY, available_message),
    };
    set(
        &mut status,
        conditions::AVAILABLE,
        available,
        reason,
        available_message,
    );

    let unsettled: Vec<String> = groups
        .iter()
        .filter(|g| !g.settled())
        .map(GroupView::label)
        .collect();
    let progressing = !unsettled.is_empty() || groups.is_empty();
    set(
        &mut status,
        conditions::PROGRESSING,
        progressing,
        if groups.is_empty() {
            reasons::CLUSTER_CREATION
        } else if progressing {
            "Progressing"
        } else {
            reasons::SYNCED
        },
        if groups.is_empty() {
            "no group points at this cluster yet".to_string()
        } else if progressing {
            format!("rolling, scaling or starting: {}", unsettled.join(", "))
        } else {
            "every group is up to date and ready".to_string()
        },
    );
    let not_ready: Vec<String> = groups
        .iter()
        .filter(|g| !conditions::is_true(g.conditions(), conditions::READY))
        .map(GroupView::label)
        .collect();
    let ready = !groups.is_empty() && not_ready.is_empty();
    set(
        &mut status,
        conditions::READY,
        ready,
        if ready {
            reasons::READY
        } else {
            reasons::UNREADY
        },
        if ready {
            "every group is ready".into()
        } else if groups.is_empty() {
            "no groups".into()
        } else {
            format!("not ready: {}", not_ready.join(", "))
        },
    );
    let unsynced: Vec<String> = groups
        .iter()
        .filter(|g| !conditions::is_true(g.conditions(), conditions::SYNCED))
        .map(GroupView::label)
        .collect();
    let (synced, synced_reason, synced_message) = if cluster.spec.paused {
        (
            false,
            reasons::PAUSED,
            "the cluster is paused: no controller changes anything until spec.paused is false"
                .to_string(),
        )
    } else if groups.is_empty() || !unsynced.is_empty() {
        (
            false,
            reasons::UNSYNCED,
            if groups.is_empty() {
                "no groups".into()
            } else {
                format!("not synced: {}", unsynced.join(", "))
            },
        )
    } else {
        (true, reasons::SYNCED, "every group is synced".to_string())
    };
    set(
        &mut status,
        conditions::SYNCED,
        synced,
        synced_reason,
        synced_message,
    );
    let suspend = cluster.spec.suspends_compute();
    let suspended_groups: Vec<&GroupView> = groups
        .iter()
        .filter(|g| conditions::is_true(g.conditions(), conditions::SUSPENDED))
        .collect();
    let (suspended, reason, message) = match (
        suspend,
        suspended_groups.len() == groups.len() && !groups.is_empty(),
    ) {
        (true, true) => (
            true,
            reasons::SUSPENDED,
            "every group's Pods are removed; instances, PVCs and data are kept".to_string(),
        ),
        (true, false) => (
            false,
            reasons::SUSPENDING,
            format!(
                "{} of {} groups suspended",
                suspended_groups.len(),
                groups.len()
            ),
        ),
        (false, _) => (
            false,
            reasons::UNSUSPENDED,
            "the cluster is not suspended".to_string(),
        ),
    };
    set(
        &mut status,
        conditions::SUSPENDED,
        suspended,
        reason,
        message,
    );
    status
}
