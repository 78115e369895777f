//! TiFlash learner replicas, placed as PD places them by its placement rules. The simulated
//! Regions stand for every table, so each follows the most demanding table: it keeps as many
//! learners, one per store, on Up TiFlash stores as the largest `count` of the `tiflash` group's
//! learner rules. Learners leave an Offline TiFlash store only for another TiFlash store that can
//! take them, so with too few the store stays Offline, as PD leaves it; a lowered count drops the
//! extras, those on stores that are not Up first. Not modelled: a learner on a Down TiFlash store
//! is not replaced, and learners hold no data of their own (losing one loses nothing TiKV has).

use std::collections::BTreeMap;

use super::cluster::{ClusterState, Peer, StoreState};
use super::placement::Classes;

impl ClusterState {
    /// How many learners each Region keeps: the largest TiFlash learner rule count.
    fn wanted_learners(&self) -> usize {
        usize::try_from(self.rules.max_learners("tiflash")).unwrap_or(usize::MAX)
    }

    /// Learners per store.
    pub(super) fn learner_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for region in &self.regions {
            for learner in &region.learners {
                *counts.entry(learner.store).or_default() += 1;
            }
        }
        counts
    }

    /// One step of PD's TiFlash placement: learners of stores that are gone are forgotten, extras
    /// dropped, those on Offline stores moved and missing ones added, at most `budget` moves and
    /// additions per tick, each to the Up TiFlash store with the fewest learners (ties to the
    /// lowest ID) that does not hold one of that Region yet.
    pub(super) fn place_learners(&mut self, classes: &Classes, budget: usize) {
        let want = self.wanted_learners();
        let targets: Vec<u64> = self
            .stores
            .values()
            .filter(|s| s.is_tiflash() && s.state == StoreState::Up)
            .filter(|s| classes.get(&s.id).is_some_and(|c| c.alive))
            .map(|s| s.id)
            .collect();
        let gone = |state: &ClusterState, store: u64| {
            state
                .stores
                .get(&store)
                .is_none_or(|s| s.state == StoreState::Tombstone || s.data_lost)
        };
        let offline = |state: &ClusterState, store: u64| {
            state
                .stores
                .get(&store)
                .is_some_and(|s| s.state == StoreState::Offline)
        };
        let mut counts = self.learner_counts();
        let mut used = 0;
        for i in 0..self.regions.len() {
            let before = self.regions[i].learners.len();
            let kept: Vec<Peer> = self.regions[i]
                .learners
                .iter()
                .filter(|l| !gone(self, l.store))
                .cloned()
                .collect();
            let mut learners = kept;
            // Extras go from stores that are not Up targets first, then the highest ID.
            while learners.len() > want {
                let at = learners
                    .iter()
                    .position(|l| !targets.contains(&l.store))
                    .unwrap_or(learners.len() - 1);
                let dropped = learners.remove(at);
                if let Some(n) = counts.get_mut(&dropped.store) {
                    *n = n.saturating_sub(1);
                }
            }
            let mut changed = learners.len() != before;
            let pick = |learners: &[Peer], counts: &BTreeMap<u64, usize>| {
                targets
                    .iter()
                    .filter(|t| !learners.iter().any(|l| l.store == **t))
                    .min_by_key(|t| (counts.get(*t).copied().unwrap_or(0), **t))
                    .copied()
            };
            // A learner leaves an Offline store only when another store takes it.
            for k in 0..learners.len() {
                if used >= budget || !offline(self, learners[k].store) {
                    continue;
                }
                if let Some(target) = pick(&learners, &counts) {
                    if let Some(n) = counts.get_mut(&learners[k].store) {
                        *n = n.saturating_sub(1);
                    }
                    *counts.entry(target).or_default() += 1;
                    learners[k] = Peer {
                        id: self.alloc_id(),
                        store: target,
                    };
                    used += 1;
                    changed = true;
                }
            }
            while learners.len() < want && used < budget {
                let Some(target) = pick(&learners, &counts) else {
                    break;
                };
                *counts.entry(target).or_default() += 1;
                learners.push(Peer {
                    id: self.alloc_id(),
                    store: target,
                });
                used += 1;
                changed = true;
            }
            let region = &mut self.regions[i];
            if changed {
                region.conf_ver += 1;
            }
            region.learners = learners;
        }
    }
}
