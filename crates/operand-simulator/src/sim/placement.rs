//! The simulation step: PD leader election, store heartbeats and state changes, and the region
//! scheduling PD would do — bootstrap, leader elections, evict-leader, draining Offline stores,
//! replica repair, region and leader balance. Deterministic: ties go to the lowest store ID.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::cluster::{ClusterState, Liveness, MemberView, Peer, Region, StoreState, Transfer};
use super::events::EventKind;
use super::faults::SLOW_DRAIN_TICKS;
use crate::clock::Now;

/// What a store may do this tick.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Class {
    /// Heartbeats (Pod running, not forced Down, not Tombstone).
    pub alive: bool,
    /// Alive and Up: may receive new peers.
    pub placeable: bool,
    /// Placeable and not under evict-leader: may receive leaders.
    pub leader_ok: bool,
    /// Up in PD but silent past max-store-down-time (or its data gone): PD replaces its peers.
    pub down: bool,
}

pub(super) type Classes = BTreeMap<u64, Class>;

impl ClusterState {
    /// One simulation step.
    pub fn tick(&mut self, now: Now) {
        self.ticks += 1;
        self.flap_stores(now);
        self.finish_starting(now);
        self.admit_waiting_members(now);
        self.retry_stores(now);
        self.elect_pd_leader(now);
        for id in self.stores.keys().copied().collect::<Vec<_>>() {
            let alive = self
                .stores
                .get(&id)
                .is_some_and(|s| self.liveness(s, now) == Liveness::Alive);
            if alive && let Some(store) = self.stores.get_mut(&id) {
                store.last_heartbeat = now.wall;
            }
        }
        let classes = self.classify(now);
        self.bootstrap_regions(&classes, now);
        self.elect_region_leaders(&classes);
        self.check_region_loss(now);
        let budget = self.settings.moves_per_tick;
        self.evict_leaders(&classes, budget);
        let used = self.drain_offline(&classes, budget);
        self.place_learners(&classes, budget);
        self.repair_replicas(&classes);
        if self.schedulers.contains("balance-region-scheduler") {
            self.balance_regions(&classes, budget.saturating_sub(used));
        }
        if self.schedulers.contains("balance-leader-scheduler") {
            self.balance_leaders(&classes, budget);
        }
        self.tombstone_empty_offline(now);
        self.report_drained(now);
        self.apply_capture_faults(now);
        self.tick_captures(now);
        self.report_state_changes(now);
        self.record_safety(now);
    }

    /// The leader, while it is a serving member and a majority of the members serves.
    pub(super) fn current_leader(&self) -> Option<String> {
        let leader = self.leader.as_deref()?;
        let member = self.members.get(leader)?;
        (self.member_up(member) && self.quorum()).then(|| member.name.clone())
    }

    /// A transfer in progress steps the leader down on one tick and installs the target on
    /// the next; without a leader, a majority elects the first serving member by name (healthy
    /// ones first) on the next tick.
    fn elect_pd_leader(&mut self, now: Now) {
        if let Some(transfer) = self.transfer.take() {
            if !transfer.stepped_down {
                self.leader = None;
                self.transfer = Some(Transfer {
                    stepped_down: true,
                    ..transfer
                });
                return;
            }
            let target_up = self
                .members
                .get(&transfer.to)
                .is_some_and(|m| self.member_up(m));
            if target_up && self.quorum() {
                self.leader = Some(transfer.to.clone());
                self.log(
                    now,
                    EventKind::LeaderTransferred {
                        from: transfer.from,
                        to: transfer.to,
                    },
                );
                return;
            }
        }
        if !self.quorum() {
            // Without a majority the leader steps down (etcd's check-quorum): once a majority
            // is back, an election takes a tick.
            self.leader = None;
            return;
        }
        if self.current_leader().is_some() {
            return;
        }
        let up: Vec<MemberView> = self
            .members()
            .into_iter()
            .filter(|m| self.member_up(m))
            .collect();
        let next = up
            .iter()
            .find(|m| !self.faults.unhealthy_members.contains(&m.name))
            .or(up.first())
            .map(|m| m.name.clone());
        let previous = self.leader.take();
        if let Some(name) = next {
            self.leader = Some(name.clone());
            self.log(now, EventKind::LeaderElected { name, previous });
        }
    }

    pub(super) fn classify(&self, now: Now) -> Classes {
        self.stores
            .values()
            .map(|s| {
                let alive = s.state != StoreState::Tombstone
                    && !s.data_lost
                    && self.liveness(s, now) == Liveness::Alive;
                // TiFlash stores hold learners only (placed by `place_learners`): no voter or
                // leader is ever placed on them.
                let placeable = alive && s.state == StoreState::Up && !s.is_tiflash();
                let leader_ok = placeable && !self.evict_leader.contains(&s.id);
                let down = s.state == StoreState::Up && self.liveness(s, now) == Liveness::Down;
                (
                    s.id,
                    Class {
                        alive,
                        placeable,
                        leader_ok,
                        down,
                    },
                )
            })
            .collect()
    }

    /// Regions per store, learners included (as PD counts them).
    pub(super) fn region_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = self.learner_counts();
        for region in &self.regions {
            for peer in &region.peers {
                *counts.entry(peer.store).or_default() += 1;
            }
        }
        counts
    }

    /// Leaders per store.
    pub(super) fn leader_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for region in &self.regions {
            if let Some(leader) = region.leader {
                *counts.entry(leader).or_default() += 1;
            }
        }
        counts
    }

    /// The first time a store can take peers, the cluster's regions are created on the
    /// placeable stores, spread round-robin, each led by its first peer.
    fn bootstrap_regions(&mut self, classes: &Classes, now: Now) {
        if self.bootstrapped_at.is_some() {
            return;
        }
        let placeable: Vec<u64> = classes
            .iter()
            .filter(|(_, c)| c.placeable)
            .map(|(id, _)| *id)
            .collect();
        if placeable.is_empty() {
            return;
        }
        let n = placeable.len();
        let replicas = usize::try_from(self.max_replicas())
            .unwrap_or(n)
            .clamp(1, n);
        for index in 0..self.settings.regions {
            let id = self.alloc_id();
            let mut peers = Vec::with_capacity(replicas);
            for k in 0..replicas {
                let store = placeable[(index + k) % n];
                let peer_id = self.alloc_id();
                peers.push(Peer { id: peer_id, store });
            }
            let leader = peers.first().map(|p| p.store);
            self.regions.push(Region {
                id,
                index,
                peers,
                learners: Vec::new(),
                leader,
                conf_ver: replicas as u64,
                version: 1,
                waited: false,
                lost: false,
            });
        }
        self.bootstrapped_at = Some(now);
    }

    /// The best store for region `i`'s leader: an eligible peer with the fewest leaders, else
    /// any alive peer (Raft elects whoever is up), never `exclude`.
    fn best_leader(&self, i: usize, classes: &Classes, exclude: Option<u64>) -> Option<u64> {
        let counts = self.leader_counts();
        let region = self.regions.get(i)?;
        let candidates = || {
            region
                .peers
                .iter()
                .map(|p| p.store)
                .filter(move |s| Some(*s) != exclude)
        };
        candidates()
            .filter(|s| classes.get(s).is_some_and(|c| c.leader_ok))
            .min_by_key(|s| (counts.get(s).copied().unwrap_or(0), *s))
            .or_else(|| candidates().find(|s| classes.get(s).is_some_and(|c| c.alive)))
    }

    /// Raft: a region keeps its leader while the leader's store heartbeats and a majority of
    /// its replicas' stores is alive; without one, it elects a live peer one tick later, and
    /// only with a live majority.
    fn elect_region_leaders(&mut self, classes: &Classes) {
        let alive = |s: u64| classes.get(&s).is_some_and(|c| c.alive);
        for i in 0..self.regions.len() {
            let region = &self.regions[i];
            let live = region.peers.iter().filter(|p| alive(p.store)).count();
            let majority = live * 2 > region.peers.len();
            let healthy = region
                .leader
                .is_some_and(|l| region.has_peer_on(l) && alive(l));
            if region.leader.is_some() && healthy && majority {
                continue;
            }
            if region.leader.is_some() {
                // The leader is lost: an election takes the next tick.
                let region = &mut self.regions[i];
                region.leader = None;
                region.waited = true;
                continue;
            }
            if majority && region.waited {
                let next = self.best_leader(i, classes, None);
                let region = &mut self.regions[i];
                region.leader = next;
                region.waited = next.is_none();
            } else {
                self.regions[i].waited = true;
            }
        }
    }

    /// The evict-leader scheduler moves up to `budget` leaders off each evicted store (one
    /// per [`SLOW_DRAIN_TICKS`] under `slow-drain`).
    fn evict_leaders(&mut self, classes: &Classes, budget: usize) {
        let evicting: Vec<u64> = self.evict_leader.iter().copied().collect();
        for store in evicting {
            let never = self
                .stores
                .get(&store)
                .is_none_or(|s| self.faults.leaders_never_drain(s.id, &s.instance));
            if never {
                continue;
            }
            let slow = self
                .stores
                .get(&store)
                .is_some_and(|s| self.faults.slow_drain(s.id, &s.instance));
            let budget = match (slow, self.ticks.is_multiple_of(SLOW_DRAIN_TICKS)) {
                (false, _) => budget,
                (true, true) => 1,
                (true, false) => 0,
            };
            let mut moved = 0;
            for i in 0..self.regions.len() {
                if moved >= budget {
                    break;
                }
                if self.regions[i].leader != Some(store) {
                    continue;
                }
                if let Some(target) = self
                    .best_leader(i, classes, Some(store))
                    .filter(|t| classes.get(t).is_some_and(|c| c.leader_ok))
                {
                    self.regions[i].leader = Some(target);
                    moved += 1;
                }
            }
        }
    }

    /// A placeable store without a peer of region `i`: first one sharing the first location
    /// label (e.g. the zone) with as few of the region's other peers as possible (`leaving` is
    /// the peer being replaced), then the one with the fewest regions.
    fn pick_target(&self, i: usize, classes: &Classes, leaving: Option<u64>) -> Option<u64> {
        let counts = self.region_counts();
        let region = self.regions.get(i)?;
        let label = self.replication.location_labels.first();
        let value_of = |store: u64| {
            let key = label?;
            self.stores.get(&store)?.labels.get(key).cloned()
        };
        let staying: Vec<Option<String>> = region
            .peers
            .iter()
            .filter(|p| Some(p.store) != leaving)
            .map(|p| value_of(p.store))
            .collect();
        let shared = |store: u64| match value_of(store) {
            Some(v) => staying.iter().filter(|s| s.as_ref() == Some(&v)).count(),
            None => 0,
        };
        classes
            .iter()
            .filter(|(id, c)| c.placeable && !region.has_peer_on(**id))
            .map(|(id, _)| *id)
            .min_by_key(|id| (shared(*id), counts.get(id).copied().unwrap_or(0), *id))
    }

    /// Replaces region `i`'s peer on `from` by a new peer on `to`.
    fn move_peer(&mut self, i: usize, from: u64, to: u64, classes: &Classes) {
        let peer_id = self.alloc_id();
        let Some(region) = self.regions.get_mut(i) else {
            return;
        };
        if let Some(peer) = region.peers.iter_mut().find(|p| p.store == from) {
            *peer = Peer {
                id: peer_id,
                store: to,
            };
            region.conf_ver += 1;
        }
        if region.leader == Some(from) {
            let next = self.best_leader(i, classes, Some(from));
            if let Some(region) = self.regions.get_mut(i) {
                region.leader = next;
            }
        }
    }

    /// Peers leave Offline stores, `budget` per tick, wherever a placeable store can take them.
    /// With too few such stores the store stays Offline, as in PD. Returns the moves made.
    fn drain_offline(&mut self, classes: &Classes, budget: usize) -> usize {
        let offline: Vec<u64> = self
            .stores
            .values()
            .filter(|s| s.state == StoreState::Offline)
            .map(|s| s.id)
            .collect();
        let mut used = 0;
        for store in offline {
            for i in 0..self.regions.len() {
                if used >= budget {
                    return used;
                }
                // A conf change needs the region's leader.
                if !self.regions[i].has_peer_on(store) || self.regions[i].leader.is_none() {
                    continue;
                }
                if let Some(target) = self.pick_target(i, classes, Some(store)) {
                    self.move_peer(i, store, target, classes);
                    used += 1;
                }
            }
        }
        used
    }

    /// A peer on a Down store is replaced by one on a placeable store (PD's replica checker,
    /// `ReplaceDownPeer`); regions with more peers than max-replicas lose the extras; regions
    /// with fewer get peers on placeable stores. All at once (the simulated regions hold no
    /// data).
    fn repair_replicas(&mut self, classes: &Classes) {
        let want = usize::try_from(self.max_replicas()).unwrap_or(usize::MAX);
        for i in 0..self.regions.len() {
            // A conf change needs the region's leader.
            if self.regions[i].leader.is_none() {
                continue;
            }
            let down: Vec<u64> = self.regions[i]
                .peers
                .iter()
                .map(|p| p.store)
                .filter(|s| classes.get(s).is_some_and(|c| c.down))
                .collect();
            for store in down {
                let Some(target) = self.pick_target(i, classes, Some(store)) else {
                    break;
                };
                self.move_peer(i, store, target, classes);
            }
            while self.regions[i].peers.len() > want.max(1) {
                let counts = self.region_counts();
                let region = &self.regions[i];
                let victim = region.peers.iter().map(|p| p.store).min_by_key(|s| {
                    let class = classes.get(s).copied().unwrap_or_default();
                    (
                        class.alive,
                        class.placeable,
                        region.leader == Some(*s),
                        Reverse(counts.get(s).copied().unwrap_or(0)),
                        Reverse(*s),
                    )
                });
                let Some(victim) = victim else { break };
                let was_leader = region.leader == Some(victim);
                let region = &mut self.regions[i];
                region.peers.retain(|p| p.store != victim);
                region.conf_ver += 1;
                if was_leader {
                    let next = self.best_leader(i, classes, None);
                    self.regions[i].leader = next;
                }
            }
            while self.regions[i].peers.len() < want {
                let Some(target) = self.pick_target(i, classes, None) else {
                    break;
                };
                let peer_id = self.alloc_id();
                let region = &mut self.regions[i];
                region.peers.push(Peer {
                    id: peer_id,
                    store: target,
                });
                region.conf_ver += 1;
            }
        }
    }

    /// Moves peers from the placeable store with the most regions to the one with the fewest,
    /// while they differ by more than one.
    fn balance_regions(&mut self, classes: &Classes, budget: usize) {
        for _ in 0..budget {
            let counts = self.region_counts();
            let stores: Vec<(u64, usize)> = classes
                .iter()
                .filter(|(_, c)| c.placeable)
                .map(|(id, _)| (*id, counts.get(id).copied().unwrap_or(0)))
                .collect();
            let Some(&(max_id, max)) = stores.iter().max_by_key(|(id, n)| (*n, Reverse(*id)))
            else {
                return;
            };
            let Some(&(min_id, min)) = stores.iter().min_by_key(|(id, n)| (*n, *id)) else {
                return;
            };
            if max <= min + 1 {
                return;
            }
            let Some(i) = self.regions.iter().position(|r| {
                r.leader.is_some() && r.has_peer_on(max_id) && !r.has_peer_on(min_id)
            }) else {
                return;
            };
            self.move_peer(i, max_id, min_id, classes);
        }
    }

    /// Moves leaders from the eligible store with the most to the one with the fewest, while
    /// they differ by more than one.
    fn balance_leaders(&mut self, classes: &Classes, budget: usize) {
        for _ in 0..budget {
            let counts = self.leader_counts();
            let stores: Vec<(u64, usize)> = classes
                .iter()
                .filter(|(_, c)| c.leader_ok)
                .map(|(id, _)| (*id, counts.get(id).copied().unwrap_or(0)))
                .collect();
            let Some(&(max_id, max)) = stores.iter().max_by_key(|(id, n)| (*n, Reverse(*id)))
            else {
                return;
            };
            let Some(&(min_id, min)) = stores.iter().min_by_key(|(id, n)| (*n, *id)) else {
                return;
            };
            if max <= min + 1 {
                return;
            }
            let Some(region) = self
                .regions
                .iter_mut()
                .find(|r| r.leader == Some(max_id) && r.has_peer_on(min_id))
            else {
                return;
            };
            region.leader = Some(min_id);
        }
    }

    /// Offline stores without regions become Tombstone.
    fn tombstone_empty_offline(&mut self, now: Now) {
        let counts = self.region_counts();
        let empty: Vec<u64> = self
            .stores
            .values()
            .filter(|s| s.state == StoreState::Offline && !counts.contains_key(&s.id))
            .map(|s| s.id)
            .collect();
        for id in empty {
            if let Some(store) = self.stores.get_mut(&id) {
                store.state = StoreState::Tombstone;
                let instance = store.instance.clone();
                self.log(
                    now,
                    EventKind::StoreTombstone {
                        store_id: id,
                        instance,
                    },
                );
            }
        }
    }

    fn report_drained(&mut self, now: Now) {
        let counts = self.leader_counts();
        let evicting: Vec<u64> = self.evict_leader.iter().copied().collect();
        for id in evicting {
            let drained = !counts.contains_key(&id);
            let Some(store) = self.stores.get_mut(&id) else {
                continue;
            };
            if drained && !store.drained_reported {
                store.drained_reported = true;
                let instance = store.instance.clone();
                self.log(
                    now,
                    EventKind::LeadersDrained {
                        store_id: id,
                        instance,
                    },
                );
            }
        }
    }

    fn report_state_changes(&mut self, now: Now) {
        let changes: Vec<(u64, String, String, String)> = self
            .stores
            .values()
            .filter_map(|s| {
                let name = self.state_name(s, now);
                (name != s.last_state_name).then(|| {
                    (
                        s.id,
                        s.instance.clone(),
                        s.last_state_name.clone(),
                        name.to_owned(),
                    )
                })
            })
            .collect();
        for (id, instance, from, to) in changes {
            if let Some(store) = self.stores.get_mut(&id) {
                store.last_state_name = to.clone();
            }
            self.log(
                now,
                EventKind::StoreStateChanged {
                    store_id: id,
                    instance,
                    from,
                    to,
                },
            );
        }
    }
}
