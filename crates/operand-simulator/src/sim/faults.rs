//! Faults a test injects into one simulated cluster through the control endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

/// Under `slow-drain`, one leader leaves the evicted store per this many ticks.
pub const SLOW_DRAIN_TICKS: u64 = 5;

/// A store named by its ID or by the `pingcap.com/instance` label of its TiKV Pod, so a fault
/// can be set before the store exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreRef {
    /// A store ID.
    Id(u64),
    /// A TiKV instance name.
    Instance(String),
}

impl StoreRef {
    /// All digits: a store ID; anything else: an instance name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<u64>() {
            Ok(id) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Self::Id(id),
            _ => Self::Instance(s.to_owned()),
        }
    }

    /// Whether this names the store `id` of TiKV instance `instance`.
    pub fn matches(&self, id: u64, instance: &str) -> bool {
        match self {
            Self::Id(i) => *i == id,
            Self::Instance(name) => name == instance,
        }
    }
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Instance(name) => f.write_str(name),
        }
    }
}

impl Serialize for StoreRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One fault, as set or cleared through `/control/clusters/{ns}/{cluster}/faults/...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every PD path of the cluster answers 503.
    PdUnreachable,
    /// The member reports `health: false` in `/health`.
    MemberUnhealthy(String),
    /// The store is Down whatever its Pod does; its TiKV status answers 503.
    StoreDown(StoreRef),
    /// Every region with a peer on the store reports that peer as down.
    DownPeers(StoreRef),
    /// The evict-leader scheduler never moves the store's leaders away.
    LeadersNeverDrain(StoreRef),
    /// The TiDB instance's status answers 503.
    TidbUnhealthy(String),
    /// PD reports and uses this `max-replicas` instead of the configured one (ignored on clear).
    MaxReplicas(u64),
    /// PD reports the store under another address (its host with a `-moved` suffix) than the
    /// one its Pod has, with the same ID: the operator can no longer find it by address.
    StoreAddressChanged(StoreRef),
    /// The PD member is unhealthy and does not serve: it neither votes nor leads.
    PdMemberDown(String),
    /// PD has no leader, whatever its members do.
    PdQuorumLost,
    /// PD's ready API (`/pd/api/v2/ready`, `readyz`) answers 500, as a member still loading its
    /// Regions does; everything else serves.
    PdRegionsNotLoaded,
    /// Every Pod of the cluster on this Node is treated as not running.
    NodeLost(String),
    /// The evict-leader scheduler moves one leader off the store per [`SLOW_DRAIN_TICKS`].
    SlowDrain(StoreRef),
    /// A crash-looping TiKV: the store is forced Down (as under `store-down`) for the flap's
    /// down time, then Up for its up time, over and over, starting Down.
    StoreFlap(StoreRef),
    /// A drained TiCDC capture (by instance) never hands over a table.
    TicdcDrainStuck(String),
    /// A TiCDC server (by instance) whose Pod runs but whose capture lost its session: gone
    /// from TiCDC's view, its API unanswered, back as a capture once cleared.
    TicdcDown(String),
    /// A TiFlash server (by instance) that runs and whose store PD may report Up, but whose
    /// storage layer is not serving: `/tiflash/store-status` answers `Ready`, not `Running`.
    TiflashNotRunning(String),
    /// A TiKV server (by instance) that runs and whose store PD lists Up, but that says it is
    /// not ready yet (its Regions still catching up): its `/ready` answers 500.
    TikvNotReady(String),
}

impl Fault {
    /// The fault's name in the control URL.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PdUnreachable => "pd-unreachable",
            Self::MemberUnhealthy(_) => "member-unhealthy",
            Self::StoreDown(_) => "store-down",
            Self::DownPeers(_) => "down-peers",
            Self::LeadersNeverDrain(_) => "leaders-never-drain",
            Self::TidbUnhealthy(_) => "tidb-unhealthy",
            Self::MaxReplicas(_) => "max-replicas",
            Self::StoreAddressChanged(_) => "store-address-changed",
            Self::PdMemberDown(_) => "pd-member-down",
            Self::PdQuorumLost => "pd-quorum-lost",
            Self::PdRegionsNotLoaded => "pd-regions-not-loaded",
            Self::NodeLost(_) => "node-lost",
            Self::SlowDrain(_) => "slow-drain",
            Self::StoreFlap(_) => "store-flap",
            Self::TicdcDrainStuck(_) => "ticdc-drain-stuck",
            Self::TicdcDown(_) => "ticdc-down",
            Self::TiflashNotRunning(_) => "tiflash-not-running",
            Self::TikvNotReady(_) => "tikv-not-ready",
        }
    }

    /// What the fault applies to, if it takes a target.
    pub fn target(&self) -> Option<String> {
        match self {
            Self::PdUnreachable | Self::PdQuorumLost | Self::PdRegionsNotLoaded => None,
            Self::MemberUnhealthy(n)
            | Self::TidbUnhealthy(n)
            | Self::PdMemberDown(n)
            | Self::NodeLost(n)
            | Self::TicdcDrainStuck(n)
            | Self::TicdcDown(n)
            | Self::TiflashNotRunning(n)
            | Self::TikvNotReady(n) => Some(n.clone()),
            Self::StoreDown(s)
            | Self::DownPeers(s)
            | Self::LeadersNeverDrain(s)
            | Self::StoreAddressChanged(s)
            | Self::SlowDrain(s)
            | Self::StoreFlap(s) => Some(s.to_string()),
            Self::MaxReplicas(n) => Some(n.to_string()),
        }
    }

    /// Parses `{name}` or `{name}/{target}` from a control URL.
    pub fn parse(name: &str, target: Option<&str>) -> Result<Self, String> {
        let need = |t: Option<&str>| {
            t.filter(|t| !t.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("fault {name} needs a target: .../faults/{name}/{{target}}"))
        };
        Ok(match name {
            "pd-unreachable" => Self::PdUnreachable,
            "member-unhealthy" => Self::MemberUnhealthy(need(target)?),
            "store-down" => Self::StoreDown(StoreRef::parse(&need(target)?)),
            "down-peers" => Self::DownPeers(StoreRef::parse(&need(target)?)),
            "leaders-never-drain" => Self::LeadersNeverDrain(StoreRef::parse(&need(target)?)),
            "tidb-unhealthy" => Self::TidbUnhealthy(need(target)?),
            "store-address-changed" => Self::StoreAddressChanged(StoreRef::parse(&need(target)?)),
            "pd-member-down" => Self::PdMemberDown(need(target)?),
            "pd-quorum-lost" => Self::PdQuorumLost,
            "pd-regions-not-loaded" => Self::PdRegionsNotLoaded,
            "node-lost" => Self::NodeLost(need(target)?),
            "slow-drain" => Self::SlowDrain(StoreRef::parse(&need(target)?)),
            "store-flap" => Self::StoreFlap(StoreRef::parse(&need(target)?)),
            "ticdc-drain-stuck" => Self::TicdcDrainStuck(need(target)?),
            "ticdc-down" => Self::TicdcDown(need(target)?),
            "tiflash-not-running" => Self::TiflashNotRunning(need(target)?),
            "tikv-not-ready" => Self::TikvNotReady(need(target)?),
            "max-replicas" => {
                // On clear the value does not matter; on set it must be a positive number.
                let value = target.unwrap_or("0");
                Self::MaxReplicas(
                    value
                        .parse()
                        .map_err(|_| format!("max-replicas needs a number, got {value:?}"))?,
                )
            }
            other => return Err(format!("unknown fault {other:?}")),
        })
    }
}

/// The faults currently set on a cluster.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Faults {
    /// Every PD path answers 503.
    pub pd_unreachable: bool,
    /// Members reported unhealthy, by name.
    pub unhealthy_members: BTreeSet<String>,
    /// Stores forced Down.
    pub down_stores: BTreeSet<StoreRef>,
    /// Stores whose peers are reported down.
    pub down_peer_stores: BTreeSet<StoreRef>,
    /// Stores whose leaders never drain.
    pub leaders_never_drain: BTreeSet<StoreRef>,
    /// TiDB instances whose status answers 503.
    pub unhealthy_tidb: BTreeSet<String>,
    /// The `max-replicas` override.
    pub max_replicas: Option<u64>,
    /// Stores PD reports under a changed address.
    pub moved_stores: BTreeSet<StoreRef>,
    /// PD members that neither vote nor lead.
    pub down_members: BTreeSet<String>,
    /// PD has no leader.
    pub pd_quorum_lost: bool,
    /// PD's ready API answers 500.
    pub pd_regions_not_loaded: bool,
    /// Nodes whose Pods are treated as not running.
    pub lost_nodes: BTreeSet<String>,
    /// Stores whose leaders drain slowly.
    pub slow_drain_stores: BTreeSet<StoreRef>,
    /// Crash-looping stores, with when the fault was set (their phase counts from it).
    #[serde(serialize_with = "keys_only")]
    pub flapping_stores: BTreeMap<StoreRef, Instant>,
    /// TiCDC instances whose drained capture never hands over a table.
    pub stuck_drains: BTreeSet<String>,
    /// TiCDC instances whose capture lost its session while the Pod runs.
    pub down_captures: BTreeSet<String>,
    /// TiFlash instances whose storage layer does not serve (`/tiflash/store-status` Ready).
    pub tiflash_not_running: BTreeSet<String>,
    /// TiKV instances whose `/ready` answers 500.
    pub tikv_not_ready: BTreeSet<String>,
    /// The flapping stores in their down phase as of the last [`Faults::flap`].
    #[serde(skip)]
    flapped_down: BTreeSet<StoreRef>,
}

fn keys_only<S: Serializer>(map: &BTreeMap<StoreRef, Instant>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.keys())
}

fn any_matches(set: &BTreeSet<StoreRef>, id: u64, instance: &str) -> bool {
    set.iter().any(|r| r.matches(id, instance))
}

impl Faults {
    /// Sets a fault at `now`; whether anything changed.
    pub fn set(&mut self, fault: &Fault, now: Instant) -> bool {
        match fault {
            Fault::PdUnreachable => !std::mem::replace(&mut self.pd_unreachable, true),
            Fault::MemberUnhealthy(n) => self.unhealthy_members.insert(n.clone()),
            Fault::StoreDown(s) => self.down_stores.insert(s.clone()),
            Fault::DownPeers(s) => self.down_peer_stores.insert(s.clone()),
            Fault::LeadersNeverDrain(s) => self.leaders_never_drain.insert(s.clone()),
            Fault::TidbUnhealthy(n) => self.unhealthy_tidb.insert(n.clone()),
            Fault::MaxReplicas(n) => self.max_replicas.replace(*n) != Some(*n),
            Fault::StoreAddressChanged(s) => self.moved_stores.insert(s.clone()),
            Fault::PdMemberDown(n) => self.down_members.insert(n.clone()),
            Fault::PdQuorumLost => !std::mem::replace(&mut self.pd_quorum_lost, true),
            Fault::PdRegionsNotLoaded => !std::mem::replace(&mut self.pd_regions_not_loaded, true),
            Fault::NodeLost(n) => self.lost_nodes.insert(n.clone()),
            Fault::SlowDrain(s) => self.slow_drain_stores.insert(s.clone()),
            Fault::StoreFlap(s) => {
                let new = !self.flapping_stores.contains_key(s);
                if new {
                    // Down at once, as a crash does; the phase is counted from now.
                    self.flapping_stores.insert(s.clone(), now);
                    self.flapped_down.insert(s.clone());
                }
                new
            }
            Fault::TicdcDrainStuck(n) => self.stuck_drains.insert(n.clone()),
            Fault::TicdcDown(n) => self.down_captures.insert(n.clone()),
            Fault::TiflashNotRunning(n) => self.tiflash_not_running.insert(n.clone()),
            Fault::TikvNotReady(n) => self.tikv_not_ready.insert(n.clone()),
        }
    }

    /// Clears a fault; whether anything changed.
    pub fn clear(&mut self, fault: &Fault) -> bool {
        match fault {
            Fault::PdUnreachable => std::mem::replace(&mut self.pd_unreachable, false),
            Fault::MemberUnhealthy(n) => self.unhealthy_members.remove(n),
            Fault::StoreDown(s) => self.down_stores.remove(s),
            Fault::DownPeers(s) => self.down_peer_stores.remove(s),
            Fault::LeadersNeverDrain(s) => self.leaders_never_drain.remove(s),
            Fault::TidbUnhealthy(n) => self.unhealthy_tidb.remove(n),
            Fault::MaxReplicas(_) => self.max_replicas.take().is_some(),
            Fault::StoreAddressChanged(s) => self.moved_stores.remove(s),
            Fault::PdMemberDown(n) => self.down_members.remove(n),
            Fault::PdQuorumLost => std::mem::replace(&mut self.pd_quorum_lost, false),
            Fault::PdRegionsNotLoaded => std::mem::replace(&mut self.pd_regions_not_loaded, false),
            Fault::NodeLost(n) => self.lost_nodes.remove(n),
            Fault::SlowDrain(s) => self.slow_drain_stores.remove(s),
            Fault::StoreFlap(s) => {
                self.flapped_down.remove(s);
                self.flapping_stores.remove(s).is_some()
            }
            Fault::TicdcDrainStuck(n) => self.stuck_drains.remove(n),
            Fault::TicdcDown(n) => self.down_captures.remove(n),
            Fault::TiflashNotRunning(n) => self.tiflash_not_running.remove(n),
            Fault::TikvNotReady(n) => self.tikv_not_ready.remove(n),
        }
    }

    /// Moves each flapping store to its phase at `now` (Down for `down`, then Up for `up`, from
    /// when the fault was set); the stores that changed phase, with whether they are Down now.
    pub fn flap(&mut self, now: Instant, down: Duration, up: Duration) -> Vec<(StoreRef, bool)> {
        let cycle = (down + up).as_millis().max(1);
        let mut changed = Vec::new();
        for (store, since) in &self.flapping_stores {
            let into = now.saturating_duration_since(*since).as_millis() % cycle;
            let is_down = into < down.as_millis();
            if is_down != self.flapped_down.contains(store) {
                changed.push((store.clone(), is_down));
            }
        }
        for (store, is_down) in &changed {
            if *is_down {
                self.flapped_down.insert(store.clone());
            } else {
                self.flapped_down.remove(store);
            }
        }
        changed
    }

    /// Every fault set, one [`Fault`] each.
    pub fn all(&self) -> Vec<Fault> {
        let mut all = Vec::new();
        if self.pd_unreachable {
            all.push(Fault::PdUnreachable);
        }
        if self.pd_quorum_lost {
            all.push(Fault::PdQuorumLost);
        }
        all.extend(
            self.unhealthy_members
                .iter()
                .cloned()
                .map(Fault::MemberUnhealthy),
        );
        all.extend(self.down_members.iter().cloned().map(Fault::PdMemberDown));
        all.extend(self.down_stores.iter().cloned().map(Fault::StoreDown));
        all.extend(self.down_peer_stores.iter().cloned().map(Fault::DownPeers));
        all.extend(
            self.leaders_never_drain
                .iter()
                .cloned()
                .map(Fault::LeadersNeverDrain),
        );
        all.extend(self.slow_drain_stores.iter().cloned().map(Fault::SlowDrain));
        all.extend(self.flapping_stores.keys().cloned().map(Fault::StoreFlap));
        all.extend(
            self.stuck_drains
                .iter()
                .cloned()
                .map(Fault::TicdcDrainStuck),
        );
        all.extend(self.down_captures.iter().cloned().map(Fault::TicdcDown));
        all.extend(
            self.tiflash_not_running
                .iter()
                .cloned()
                .map(Fault::TiflashNotRunning),
        );
        all.extend(self.tikv_not_ready.iter().cloned().map(Fault::TikvNotReady));
        all.extend(
            self.moved_stores
                .iter()
                .cloned()
                .map(Fault::StoreAddressChanged),
        );
        all.extend(self.lost_nodes.iter().cloned().map(Fault::NodeLost));
        all.extend(
            self.unhealthy_tidb
                .iter()
                .cloned()
                .map(Fault::TidbUnhealthy),
        );
        all.extend(self.max_replicas.map(Fault::MaxReplicas));
        all
    }

    /// Whether the store is forced Down.
    pub fn store_down(&self, id: u64, instance: &str) -> bool {
        any_matches(&self.down_stores, id, instance)
            || any_matches(&self.flapped_down, id, instance)
    }

    /// Whether the store's peers are reported down.
    pub fn down_peers(&self, id: u64, instance: &str) -> bool {
        any_matches(&self.down_peer_stores, id, instance)
    }

    /// Whether PD reports the store under a changed address.
    pub fn address_changed(&self, id: u64, instance: &str) -> bool {
        any_matches(&self.moved_stores, id, instance)
    }

    /// Whether the store's leaders drain slowly.
    pub fn slow_drain(&self, id: u64, instance: &str) -> bool {
        any_matches(&self.slow_drain_stores, id, instance)
    }

    /// Whether the store's leaders never drain.
    pub fn leaders_never_drain(&self, id: u64, instance: &str) -> bool {
        any_matches(&self.leaders_never_drain, id, instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refs_parse_ids_and_instance_names() {
        assert_eq!(StoreRef::parse("12"), StoreRef::Id(12));
        assert_eq!(
            StoreRef::parse("basic-tikv-x1"),
            StoreRef::Instance("basic-tikv-x1".into())
        );
        assert!(StoreRef::parse("4").matches(4, "any"));
        assert!(StoreRef::parse("t-1").matches(9, "t-1"));
        assert!(!StoreRef::parse("t-1").matches(9, "t-2"));
    }

    #[test]
    fn faults_parse_from_urls() {
        assert_eq!(
            Fault::parse("pd-unreachable", None),
            Ok(Fault::PdUnreachable)
        );
        assert_eq!(
            Fault::parse("store-down", Some("3")),
            Ok(Fault::StoreDown(StoreRef::Id(3)))
        );
        assert!(Fault::parse("store-down", None).is_err());
        assert_eq!(
            Fault::parse("store-address-changed", Some("basic-tikv-a")),
            Ok(Fault::StoreAddressChanged(StoreRef::Instance(
                "basic-tikv-a".into()
            )))
        );
        assert!(Fault::parse("max-replicas", Some("x")).is_err());
        assert_eq!(
            Fault::parse("pd-quorum-lost", None),
            Ok(Fault::PdQuorumLost)
        );
        assert_eq!(
            Fault::parse("node-lost", Some("n1")),
            Ok(Fault::NodeLost("n1".into()))
        );
        assert_eq!(
            Fault::parse("slow-drain", Some("2")),
            Ok(Fault::SlowDrain(StoreRef::Id(2)))
        );
        assert!(Fault::parse("pd-member-down", None).is_err());
        assert!(Fault::parse("nope", None).is_err());
    }
}
