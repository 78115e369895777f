//! The simulation itself, free of I/O: Pod and PVC observations and PD API operations go in,
//! PD-shaped views and a safety record come out, and `tick` advances elections, leader eviction
//! and region movement. Every method takes the current [`Now`], so tests drive time by hand.
//!
//! Test tooling only: it models the PD, etcd and Raft rules the operator's safety depends on,
//! not PD.

mod cdc;
mod cluster;
mod config;
mod events;
mod faults;
pub mod kv;
mod learners;
mod placement;
mod rules;
mod safety;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

pub use cdc::{CDC_TABLES, CaptureInfo, CaptureStatus, CaptureView, TABLES_MOVED_PER_TICK};
pub use cluster::{
    ApiError, ClusterState, DEFAULT_SCHEDULERS, EVICT_LEADER, NOT_BOOTSTRAPPED, StoreState,
};
pub use events::{Event, EventKind, StopReason};
pub use faults::{Fault, Faults, SLOW_DRAIN_TICKS, StoreRef};
pub use safety::{DataLoss, RegionSpan, SafetyView, Span};
pub use views::{GIT_HASH, StateView, TidbStatus, TikvStatus};

use crate::clock::Now;

/// The cluster domain when none is given, as in Kubernetes.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Version reported when a Pod's image has no tag.
pub const DEFAULT_VERSION: &str = "v8.5.2";

/// Simulation settings, from the command line.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// `replication.max-replicas` of every cluster until changed.
    pub max_replicas: u64,
    /// `replication.location-labels` of every cluster until changed.
    pub location_labels: Vec<String>,
    /// Regions per cluster.
    pub regions: usize,
    /// How long a store whose Pod stopped stays Disconnected before it is Down.
    pub down_after: Duration,
    /// How long a PD or TiKV Pod runs before it serves.
    pub start_delay: Duration,
    /// How long a crash-looping store (`store-flap`) is Down in each cycle.
    pub flap_down: Duration,
    /// How long a crash-looping store is Up in each cycle.
    pub flap_up: Duration,
    /// Leader transfers per evicted store, and region moves per cluster, per tick.
    pub moves_per_tick: usize,
    /// The tick's length, reported with the safety record (the ticker runs outside the sim).
    pub tick: Duration,
    /// The DNS domain of the Kubernetes cluster the simulator stands in for: a Pod's fully
    /// qualified name ends in `.svc.<domain>`, and no other domain resolves to it.
    pub cluster_domain: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            max_replicas: 3,
            location_labels: vec!["zone".to_owned(), "host".to_owned()],
            regions: 30,
            down_after: Duration::from_secs(10),
            start_delay: Duration::ZERO,
            flap_down: Duration::from_secs(8),
            flap_up: Duration::from_secs(3),
            moves_per_tick: 3,
            tick: Duration::from_millis(500),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
        }
    }
}

/// A cluster: namespace and `pingcap.com/cluster` label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClusterKey {
    /// Namespace.
    pub namespace: String,
    /// Cluster name.
    pub cluster: String,
}

impl ClusterKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            cluster: cluster.into(),
        }
    }
}

/// Which operand a Pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// PD.
    Pd,
    /// TiKV.
    Tikv,
    /// TiDB.
    Tidb,
    /// TiFlash: a store like TiKV's, labelled `engine=tiflash`, that holds no Region replicas
    /// here (its learners are not simulated) and so is never a place for them.
    Tiflash,
    /// TiCDC: a capture of the cluster's changefeed (see `cdc`).
    Ticdc,
}

impl Component {
    /// From the `pingcap.com/component` label value.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            operator_api::keys::COMPONENT_PD => Some(Self::Pd),
            operator_api::keys::COMPONENT_TIKV => Some(Self::Tikv),
            operator_api::keys::COMPONENT_TIDB => Some(Self::Tidb),
            operator_api::keys::COMPONENT_TIFLASH => Some(Self::Tiflash),
            operator_api::keys::COMPONENT_TICDC => Some(Self::Ticdc),
            _ => None,
        }
    }
}

/// What the simulator takes from an operand Pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodObservation {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// `pingcap.com/cluster`.
    pub cluster: String,
    /// `pingcap.com/component`.
    pub component: Component,
    /// `pingcap.com/instance`.
    pub instance: String,
    /// Phase Running and no deletionTimestamp.
    pub running: bool,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// Named container ports.
    pub ports: BTreeMap<String, u16>,
    /// The first container's image.
    pub image: Option<String>,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// The claim of its data volume: the PVC of the volume named `data`, else the first PVC.
    pub data_claim: Option<String>,
    /// That claim's UID, filled in by [`Sim`] from the PVCs it saw (`None` while unknown).
    pub data_volume: Option<String>,
    /// The ConfigMap its config volume mounts, if it has one.
    pub config_map: Option<String>,
    /// The addresses its config file advertises, by config key (see [`advertised_keys`]),
    /// filled in by [`Sim`] from the ConfigMaps it saw.
    pub advertised: BTreeMap<String, String>,
    /// A PD Pod's `join` (client URLs, comma separated), filled in by [`Sim`] from its config.
    pub join: Option<String>,
    /// A TiDB started in standby mode (`standby.standby-mode = true` in its config): it waits
    /// to be activated with a keyspace. Filled in by [`Sim`] from its config.
    pub standby: bool,
    /// The cluster domain of the Kubernetes cluster (API server) the Pod was seen in; `None`
    /// means the simulator's own `cluster_domain`.
    pub domain: Option<String>,
}

/// The config key of a PD member's `join` URLs, read with the advertised addresses.
pub const JOIN_KEY: &str = "join";
/// The config key of TiDB's standby mode, read with the advertised addresses (`"true"` when on).
pub const STANDBY_KEY: &str = "standby.standby-mode";

/// The config keys whose addresses the simulator takes from an operand's config file: what PD
/// lists for a member (`advertise-client-urls`, `advertise-peer-urls`) and for a store
/// (`server.advertise-addr`, `server.advertise-status-addr`), TiDB's `advertise-address` and
/// TiCDC's `advertise-addr`.
pub fn advertised_keys(component: Component) -> &'static [&'static str] {
    match component {
        Component::Pd => &["advertise-client-urls", "advertise-peer-urls"],
        Component::Tikv => &["server.advertise-addr", "server.advertise-status-addr"],
        Component::Tidb => &["advertise-address"],
        Component::Tiflash => &[
            "flash.proxy.advertise-addr",
            "flash.proxy.advertise-status-addr",
        ],
        Component::Ticdc => &["advertise-addr"],
    }
}

/// The advertised addresses in a config file (TOML), by the keys of [`advertised_keys`] of
/// every component; keys it does not set are left out, and a file that is not TOML has none.
pub fn advertised_in(config: &str) -> BTreeMap<String, String> {
    let Ok(table) = config.parse::<toml::Table>() else {
        return BTreeMap::new();
    };
    [
        Component::Pd,
        Component::Tikv,
        Component::Tidb,
        Component::Tiflash,
        Component::Ticdc,
    ]
    .iter()
    .flat_map(|c| advertised_keys(*c).iter())
    .chain([&JOIN_KEY, &STANDBY_KEY])
    .filter_map(|key| {
        let mut value = None::<&toml::Value>;
        for (i, part) in key.split('.').enumerate() {
            value = if i == 0 {
                table.get(part)
            } else {
                value.and_then(|v| v.get(part))
            };
        }
        let text = match value? {
            toml::Value::Boolean(on) => on.to_string(),
            other => other.as_str()?.to_owned(),
        };
        Some(((*key).to_owned(), text))
    })
    .collect()
}

/// `host` without `.svc.<domain>` or `.svc` at its end.
fn strip_domain<'a>(host: &'a str, domain: &str) -> &'a str {
    let domain = domain.trim_end_matches('.');
    host.strip_suffix(domain)
        .and_then(|h| h.strip_suffix(".svc."))
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host)
}

/// The host of an address: `http://h:2379` and `h:20160` both give `h`.
pub fn host_of_address(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    rest.rsplit_once(':').map_or(rest, |(host, _)| host)
}

/// What the simulator takes from an operand PVC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvcObservation {
    /// Namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Claim UID.
    pub uid: String,
    /// Has a deletionTimestamp, or disappeared: its data is gone.
    pub deleted: bool,
}

impl PodObservation {
    /// The cluster the Pod belongs to.
    pub fn key(&self) -> ClusterKey {
        ClusterKey::new(&self.namespace, &self.cluster)
    }

    /// `{hostname}.{subdomain}.{namespace}`, as the operand advertises itself.
    pub fn host(&self) -> String {
        let hostname = self.hostname.as_deref().unwrap_or(&self.name);
        match self.subdomain.as_deref() {
            Some(sub) if !sub.is_empty() => format!("{hostname}.{sub}.{}", self.namespace),
            _ => format!("{hostname}.{}", self.namespace),
        }
    }

    /// The names that resolve to the Pod (through its headless Service) in a Kubernetes
    /// cluster of domain `domain`: `{hostname}.{subdomain}.{namespace}`, with `.svc` and with
    /// `.svc.{domain}` after it (a trailing dot is the same name).
    pub fn resolves(&self, host: &str, domain: &str) -> bool {
        let short = self.host();
        let host = host.trim_end_matches('.');
        host == short
            || host == format!("{short}.svc")
            || host == format!("{short}.svc.{}", domain.trim_end_matches('.'))
    }

    /// The first address the Pod's config advertises whose host does not resolve to the Pod in
    /// a cluster of domain `domain`, if any (a comma-separated list counts each URL).
    pub fn unresolvable(&self, domain: &str) -> Option<String> {
        self.advertised
            .values()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .find(|a| !self.resolves(host_of_address(a), domain))
            .map(str::to_owned)
    }

    /// The address advertised under `key`, else `{host}:{port}`; `scheme` prefixes the derived
    /// form (PD's URLs).
    pub fn address(&self, key: &str, scheme: &str, port: u16) -> String {
        self.advertised
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("{scheme}{}:{port}", self.host()))
    }

    /// The named container port, or `default`.
    pub fn port(&self, name: &str, default: u16) -> u16 {
        self.ports.get(name).copied().unwrap_or(default)
    }

    /// The image tag (`v8.5.2` of `pingcap/tikv:v8.5.2`), or [`DEFAULT_VERSION`].
    pub fn version(&self) -> String {
        self.image
            .as_deref()
            .and_then(image_tag)
            .unwrap_or(DEFAULT_VERSION)
            .to_owned()
    }
}

/// The tag of an image reference, without digest: `reg:5000/pingcap/pd:v8.5.2@sha256:..` → `v8.5.2`.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last_segment
        .split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

/// Stable 64-bit FNV-1a hash, for member and cluster IDs that survive restarts.
pub fn stable_id(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= u64::from(b'/');
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Real IDs are never 0; keep them in the positive i64 range too, for strict JSON readers.
    (h & (u64::MAX >> 1)).max(1)
}

/// Every simulated cluster.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    clusters: BTreeMap<ClusterKey, ClusterState>,
    /// Which cluster each known Pod (namespace, name) belongs to.
    pod_index: BTreeMap<(String, String), ClusterKey>,
    /// Pods seen since the watch restarted, until the restart's list is complete.
    resync_seen: Option<BTreeSet<(String, String)>>,
    /// UIDs of the live operand PVCs by (namespace, name).
    pvcs: BTreeMap<(String, String), String>,
    /// The advertised addresses of each operand ConfigMap seen, by (namespace, name). Kept
    /// after the ConfigMap goes: a running process keeps the config it started with.
    configs: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Pods (as observed) that wait for their config ConfigMap, by (namespace, name).
    awaiting_config: BTreeMap<(String, String), PodObservation>,
    /// Clusters whose PD joined another simulated cluster (by a member's `join` URLs), and the
    /// cluster they are one PD cluster with: their Pods and PD API are that cluster's.
    aliases: BTreeMap<ClusterKey, ClusterKey>,
    /// UIDs of PD Pods whose `join` named no simulated PD (already logged).
    refused_joins: BTreeSet<String>,
}

/// What a PD Pod's `join` URLs name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// Its own cluster (a Service or member of its own namespace), as a scale-out does.
    Own,
    /// A member or the client Service of another simulated cluster.
    Other(ClusterKey),
    /// Nothing the simulator knows: this URL, the first one.
    Nothing(String),
}

impl Sim {
    /// An empty simulation.
    pub fn new(config: SimConfig) -> Self {
        Self {
            config,
            clusters: BTreeMap::new(),
            pod_index: BTreeMap::new(),
            resync_seen: None,
            pvcs: BTreeMap::new(),
            configs: BTreeMap::new(),
            awaiting_config: BTreeMap::new(),
            aliases: BTreeMap::new(),
            refused_joins: BTreeSet::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// A Pod was added or changed. A Pod whose config ConfigMap was not seen yet does not run
    /// yet, as the kubelet starts no container before its ConfigMap volume can be mounted; once
    /// it runs, it advertises the addresses of that config.
    pub fn observe_pod(&mut self, mut pod: PodObservation, now: Now) {
        let id = (pod.namespace.clone(), pod.name.clone());
        pod.data_volume = pod
            .data_claim
            .as_ref()
            .and_then(|c| self.pvcs.get(&(pod.namespace.clone(), c.clone())))
            .cloned();
        self.awaiting_config.remove(&id);
        if let Some(config_map) = &pod.config_map {
            match self
                .configs
                .get(&(pod.namespace.clone(), config_map.clone()))
            {
                Some(advertised) => {
                    pod.advertised = advertised.clone();
                    pod.join = pod.advertised.remove(JOIN_KEY);
                    pod.standby = pod.advertised.remove(STANDBY_KEY).as_deref() == Some("true");
                }
                None => {
                    self.awaiting_config.insert(id.clone(), pod.clone());
                    pod.running = false;
                }
            }
        }
        if let Some(seen) = &mut self.resync_seen {
            seen.insert(id.clone());
        }
        let mut key = self.root(&pod.key());
        if pod.component == Component::Pd && pod.running && pod.join.is_some() {
            match self.join_target(&pod) {
                JoinTarget::Own => {}
                JoinTarget::Other(target) => {
                    if self.aliases.get(&pod.key()) != Some(&target) {
                        tracing::info!(
                            namespace = %pod.namespace, cluster = %pod.cluster, pod = %pod.name,
                            into_namespace = %target.namespace, into_cluster = %target.cluster,
                            "a PD member joins another simulated cluster: both are one PD cluster now"
                        );
                        self.aliases.insert(pod.key(), target.clone());
                        // Pods of the joining cluster seen before (TiDB starts with PD) move
                        // into the one PD cluster; what ran alone there served no one else.
                        if let Some(alone) = self.clusters.remove(&pod.key()) {
                            for earlier in alone.raw_pods.into_values() {
                                if earlier.name != pod.name {
                                    self.observe_pod(earlier, now);
                                }
                            }
                        }
                    }
                    key = target;
                }
                JoinTarget::Nothing(url) => {
                    if self.refused_joins.insert(pod.uid.clone()) {
                        tracing::warn!(
                            namespace = %pod.namespace, cluster = %pod.cluster, pod = %pod.name,
                            %url, "the PD member's join URLs name no PD; it does not join (as PD refuses)"
                        );
                    }
                    pod.running = false;
                }
            }
        }
        if let Some(old) = self.pod_index.get(&id)
            && *old != key
            && let Some(cluster) = self.clusters.get_mut(old)
        {
            // Its cluster label changed: it left the old cluster.
            cluster.pod_gone(&pod.name, now);
        }
        self.pod_index.insert(id, key.clone());
        self.cluster_entry(key, now).observe_pod(pod, now);
    }

    /// An operand ConfigMap was added or changed: the addresses its config file advertises.
    /// Pods that waited for it are observed again.
    pub fn observe_config(
        &mut self,
        namespace: &str,
        name: &str,
        advertised: BTreeMap<String, String>,
        now: Now,
    ) {
        self.configs
            .insert((namespace.to_owned(), name.to_owned()), advertised);
        // A process reads its config when it starts: Pods already running keep what they
        // advertise until they restart.
        let waiting: Vec<PodObservation> = self
            .awaiting_config
            .values()
            .filter(|p| p.namespace == namespace && p.config_map.as_deref() == Some(name))
            .cloned()
            .collect();
        for pod in waiting {
            self.observe_pod(pod, now);
        }
    }

    /// The cluster `key` is one PD cluster with: itself, or the cluster it joined.
    pub fn root(&self, key: &ClusterKey) -> ClusterKey {
        let mut key = key.clone();
        // Bounded: a chain of joins is short, and a cycle must not hang the simulator.
        for _ in 0..8 {
            match self.aliases.get(&key) {
                Some(next) if *next != key => key = next.clone(),
                _ => break,
            }
        }
        key
    }

    /// What the `join` URLs of PD Pod `pod` name: a host in its own namespace (and Kubernetes
    /// cluster) is its own cluster, as a scale-out joins through the client Service; any other
    /// host must resolve, in the domain of the API server it names, to a PD member or to the
    /// client Service (`<group>-pd`, whose peer Service is `<group>-pd-peer`) of a simulated
    /// cluster, or the join names nothing.
    pub fn join_target(&self, pod: &PodObservation) -> JoinTarget {
        let own_domain = pod.domain.as_deref().unwrap_or(&self.config.cluster_domain);
        let own = self.root(&pod.key());
        let urls: Vec<&str> = pod
            .join
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let mut nothing = None;
        for url in &urls {
            let host = host_of_address(url).trim_end_matches('.');
            let local = strip_domain(host, own_domain);
            if local.rsplit('.').next() == Some(pod.namespace.as_str()) && local.contains('.') {
                return JoinTarget::Own;
            }
            match self.cluster_of_host(host) {
                Some(key) if key == own => return JoinTarget::Own,
                Some(key) => return JoinTarget::Other(key),
                None => {
                    nothing.get_or_insert_with(|| (*url).to_owned());
                }
            }
        }
        JoinTarget::Nothing(nothing.unwrap_or_default())
    }

    /// The simulated cluster whose PD `host` names, fully qualified in the domain of the API
    /// server the cluster's Pods were seen in: a PD member's host, or its group's client
    /// Service.
    pub fn cluster_of_host(&self, host: &str) -> Option<ClusterKey> {
        let host = host.trim_end_matches('.');
        self.clusters.values().find_map(|cluster| {
            cluster
                .raw_pods
                .values()
                .filter(|p| p.component == Component::Pd && !self.refused_joins.contains(&p.uid))
                .find(|p| {
                    let domain = p.domain.as_deref().unwrap_or(&self.config.cluster_domain);
                    if p.resolves(host, domain) {
                        return true;
                    }
                    // `<group>-pd.<namespace>.svc.<domain>`, the client Service.
                    let service = strip_domain(host, domain);
                    let peer = p.subdomain.as_deref().unwrap_or_default();
                    service.split_once('.').is_some_and(|(name, ns)| {
                        ns == p.namespace && format!("{name}-peer") == peer
                    })
                })
                .map(|_| cluster.key().clone())
        })
    }

    /// A Pod disappeared from the API.
    pub fn pod_gone(&mut self, namespace: &str, name: &str, now: Now) {
        self.awaiting_config
            .remove(&(namespace.to_owned(), name.to_owned()));
        if let Some(key) = self
            .pod_index
            .remove(&(namespace.to_owned(), name.to_owned()))
            && let Some(cluster) = self.clusters.get_mut(&key)
        {
            cluster.pod_gone(name, now);
        }
    }

    /// A PVC was added, changed or deleted. A deleted claim's data is gone: the clusters of its
    /// namespace record data loss if a store or PD member still needed it.
    pub fn observe_pvc(&mut self, pvc: PvcObservation, now: Now) {
        let id = (pvc.namespace.clone(), pvc.name.clone());
        if pvc.deleted {
            if self.pvcs.get(&id) == Some(&pvc.uid) {
                self.pvcs.remove(&id);
            }
        } else {
            self.pvcs.insert(id, pvc.uid.clone());
        }
        // A cluster another joined holds Pods (and claims) of the joining cluster's namespace.
        let joined: BTreeSet<ClusterKey> = self
            .aliases
            .keys()
            .filter(|k| k.namespace == pvc.namespace)
            .map(|k| self.root(k))
            .collect();
        for cluster in self
            .clusters
            .values_mut()
            .filter(|c| c.key().namespace == pvc.namespace || joined.contains(c.key()))
        {
            cluster.observe_volume(&pvc.name, &pvc.uid, pvc.deleted, now);
        }
    }

    /// The watch restarted: a full list follows.
    pub fn begin_resync(&mut self) {
        self.resync_seen = Some(BTreeSet::new());
    }

    /// The full list is complete: Pods it did not hold are gone.
    pub fn end_resync(&mut self, now: Now) {
        let Some(seen) = self.resync_seen.take() else {
            return;
        };
        let gone: Vec<(String, String)> = self
            .pod_index
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for (namespace, name) in gone {
            self.pod_gone(&namespace, &name, now);
        }
    }

    /// One simulation step for every cluster.
    pub fn tick(&mut self, now: Now) {
        for cluster in self.clusters.values_mut() {
            cluster.tick(now);
        }
    }

    /// A cluster, if it was ever seen (the cluster it joined, for one that joined another).
    pub fn cluster(&self, namespace: &str, cluster: &str) -> Option<&ClusterState> {
        self.clusters
            .get(&self.root(&ClusterKey::new(namespace, cluster)))
    }

    /// A cluster, if it was ever seen (the cluster it joined, for one that joined another).
    pub fn cluster_mut(&mut self, namespace: &str, cluster: &str) -> Option<&mut ClusterState> {
        let key = self.root(&ClusterKey::new(namespace, cluster));
        self.clusters.get_mut(&key)
    }

    /// A cluster, created empty if it was never seen (faults may be set before its Pods exist).
    pub fn cluster_entry(&mut self, key: ClusterKey, now: Now) -> &mut ClusterState {
        let key = self.root(&key);
        let config = &self.config;
        self.clusters
            .entry(key.clone())
            .or_insert_with(|| ClusterState::new(key, config.clone(), now))
    }

    /// Every cluster, ordered by namespace and name.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterState> {
        self.clusters.values()
    }
}

#[cfg(test)]
mod tests;
