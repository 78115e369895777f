//! TiCDC captures of a cluster: each running TiCDC Pod is a capture with an ID (new each time the
//! process starts, as TiCDC's is), one capture is the owner (the first registered still alive),
//! and the changefeed's tables are spread over the captures. Modelled on tiflow's `cdc/api/v1`
//! and `cdc/api/v2` (captures, owner resign, capture drain) and its scheduler's drain: a drained
//! capture gets no new tables and hands its own to the others a few per tick.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cluster::ClusterState;
use super::events::EventKind;
use super::{ApiError, PodObservation, stable_id};
use crate::clock::Now;

/// Tables of the one simulated changefeed of a cluster with TiCDC.
pub const CDC_TABLES: usize = 12;
/// Tables a drained capture hands over, and unowned tables the owner places, per tick.
pub const TABLES_MOVED_PER_TICK: usize = 2;

/// One capture: a running TiCDC process.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    /// Its ID, new for every process (Pod UID).
    pub id: String,
    /// The TiCDC instance.
    pub instance: String,
    /// The address it advertises.
    pub address: String,
    /// The version it runs.
    pub version: String,
    /// Registration order: the lowest alive is the owner unless ownership moved.
    pub registered: u64,
    /// Tables it replicates.
    pub tables: usize,
    /// A drain was asked: it takes no tables and hands its own over.
    pub draining: bool,
}

/// The TiCDC side of a cluster.
#[derive(Clone, Debug, Default)]
pub struct Captures {
    /// Alive captures by instance.
    by_instance: BTreeMap<String, Capture>,
    /// The owner's instance.
    owner: Option<String>,
    /// Registrations so far.
    registrations: u64,
    /// Whether the changefeed exists (from the first capture on).
    changefeed: bool,
    /// Instances whose capture the `ticdc-down` fault took away while their Pod ran.
    downed: std::collections::BTreeSet<String>,
}

/// A capture as `GET /api/v2/captures` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaptureInfo {
    /// Capture ID.
    pub id: String,
    /// Whether it is the owner.
    pub is_owner: bool,
    /// Its advertised address.
    pub address: String,
    /// TiCDC's cluster ID (`default`).
    pub cluster_id: String,
}

/// `GET /status` of a capture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaptureStatus {
    /// Version.
    pub version: String,
    /// Git hash.
    pub git_hash: String,
    /// Capture ID.
    pub id: String,
    /// Process ID.
    pub pid: u32,
    /// Whether it is the owner.
    pub is_owner: bool,
    /// 0 alive, 1 stopping.
    pub liveness: i32,
}

/// What `GET /api/v2/captures` and the state view show of a capture, with its tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaptureView {
    /// The TiCDC instance.
    pub instance: String,
    /// Capture ID.
    pub id: String,
    /// Whether it is the owner.
    pub is_owner: bool,
    /// Tables it replicates.
    pub tables: usize,
    /// Whether a drain was asked.
    pub draining: bool,
}

/// A capture ID in TiCDC's UUID form, from the Pod's UID.
fn capture_id(uid: &str) -> String {
    let a = stable_id(&["capture", uid]);
    let b = stable_id(&["capture-tail", uid]);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

impl Captures {
    /// The owner, if any.
    fn owner(&self) -> Option<&Capture> {
        self.owner.as_ref().and_then(|o| self.by_instance.get(o))
    }

    /// Tables no alive capture holds.
    fn unowned(&self) -> usize {
        if !self.changefeed {
            return 0;
        }
        CDC_TABLES.saturating_sub(self.by_instance.values().map(|c| c.tables).sum())
    }

    /// The alive captures in registration order.
    fn ordered(&self) -> Vec<&Capture> {
        let mut all: Vec<&Capture> = self.by_instance.values().collect();
        all.sort_by_key(|c| c.registered);
        all
    }

    /// The capture that takes the next table: not draining, fewest tables, first registered.
    fn receiver(&self, except: &str) -> Option<String> {
        self.ordered()
            .into_iter()
            .filter(|c| !c.draining && c.instance != except)
            .min_by_key(|c| (c.tables, c.registered))
            .map(|c| c.instance.clone())
    }
}

impl ClusterState {
    /// A TiCDC Pod runs: it registers a capture; the first alive capture becomes the owner.
    pub(super) fn capture_started(&mut self, pod: &PodObservation, now: Now) {
        if !self.reachable(pod, now) {
            return;
        }
        let cdc = &mut self.cdc;
        cdc.registrations += 1;
        cdc.changefeed = true;
        let capture = Capture {
            id: capture_id(&pod.uid),
            instance: pod.instance.clone(),
            address: pod.address("advertise-addr", "", pod.port("ticdc", 8300)),
            version: pod.version(),
            registered: cdc.registrations,
            tables: 0,
            draining: false,
        };
        let (id, address) = (capture.id.clone(), capture.address.clone());
        cdc.by_instance.insert(pod.instance.clone(), capture);
        self.log(
            now,
            EventKind::CaptureRegistered {
                instance: pod.instance.clone(),
                capture_id: id,
                address,
            },
        );
        if self.cdc.owner().is_none() {
            self.elect_cdc_owner(now);
        }
    }

    /// A TiCDC Pod stopped: its capture is gone; tables it held wait for the owner to place
    /// them again (logged, a gap in replication); an owner is elected if it was the owner.
    pub(super) fn capture_stopped(&mut self, pod: &PodObservation, now: Now) {
        let Some(capture) = self.cdc.by_instance.get(&pod.instance) else {
            return;
        };
        if capture.id != capture_id(&pod.uid) {
            return;
        }
        let Some(capture) = self.cdc.by_instance.remove(&pod.instance) else {
            return;
        };
        self.log(
            now,
            EventKind::CaptureGone {
                instance: capture.instance.clone(),
                capture_id: capture.id.clone(),
                tables: capture.tables,
            },
        );
        if self.cdc.owner.as_deref() == Some(capture.instance.as_str()) {
            self.cdc.owner = None;
            self.elect_cdc_owner(now);
        }
    }

    /// `ticdc-down`: the capture of a running TiCDC Pod under the fault loses its session and is
    /// gone from TiCDC's view (as [`ClusterState::capture_stopped`]: the owner is elected again,
    /// its tables placed again); once the fault is cleared it registers again.
    pub(super) fn apply_capture_faults(&mut self, now: Now) {
        let pods: Vec<PodObservation> = self
            .pods
            .values()
            .filter(|p| p.component == super::Component::Ticdc && p.running && !p.deleting)
            .cloned()
            .collect();
        for pod in pods {
            let down = self.faults.down_captures.contains(&pod.instance);
            let registered = self
                .cdc
                .by_instance
                .get(&pod.instance)
                .is_some_and(|c| c.id == capture_id(&pod.uid));
            if down && registered {
                self.capture_stopped(&pod, now);
                self.cdc.downed.insert(pod.instance.clone());
            } else if !down && self.cdc.downed.remove(&pod.instance) && !registered {
                self.capture_started(&pod, now);
            }
        }
    }

    /// The first registered alive capture becomes the owner.
    fn elect_cdc_owner(&mut self, now: Now) {
        let next = self.cdc.ordered().first().map(|c| c.instance.clone());
        let previous = self.cdc.owner.take();
        self.cdc.owner = next.clone();
        if let Some(instance) = next {
            self.log(now, EventKind::CaptureOwnerElected { instance, previous });
        }
    }

    /// The captures as `GET /api/v2/captures` lists them, from capture `instance`'s point of
    /// view; `None` when that capture does not run.
    pub fn captures(&self, instance: &str) -> Option<Vec<CaptureInfo>> {
        self.cdc.by_instance.get(instance)?;
        let owner = self.cdc.owner.as_deref();
        Some(
            self.cdc
                .ordered()
                .into_iter()
                .map(|c| CaptureInfo {
                    id: c.id.clone(),
                    is_owner: owner == Some(c.instance.as_str()),
                    address: c.address.clone(),
                    cluster_id: "default".to_owned(),
                })
                .collect(),
        )
    }

    /// Every capture with its tables, for the state view and tests.
    pub fn capture_views(&self) -> Vec<CaptureView> {
        let owner = self.cdc.owner.as_deref();
        self.cdc
            .ordered()
            .into_iter()
            .map(|c| CaptureView {
                instance: c.instance.clone(),
                id: c.id.clone(),
                is_owner: owner == Some(c.instance.as_str()),
                tables: c.tables,
                draining: c.draining,
            })
            .collect()
    }

    /// `GET /status` of capture `instance`; `None` when it does not run.
    pub fn capture_status(&self, instance: &str) -> Option<CaptureStatus> {
        let capture = self.cdc.by_instance.get(instance)?;
        Some(CaptureStatus {
            version: capture.version.clone(),
            git_hash: super::GIT_HASH.to_owned(),
            id: capture.id.clone(),
            pid: 1,
            is_owner: self.cdc.owner.as_deref() == Some(instance),
            liveness: 0,
        })
    }

    /// `GET /api/v2/health` through capture `instance`: healthy while there is an owner.
    pub fn cdc_health(&self, instance: &str) -> Option<Result<(), ApiError>> {
        self.cdc.by_instance.get(instance)?;
        Some(match self.cdc.owner() {
            Some(_) => Ok(()),
            None => Err(ApiError::new(500, "owner not found")),
        })
    }

    /// `POST /api/v2/owner/resign` through any capture: the owner steps down and the first
    /// registered other capture (not draining, if one is not) becomes the owner. With one
    /// capture, it is elected again.
    pub fn resign_cdc_owner(&mut self, through: &str, now: Now) -> Result<(), ApiError> {
        if !self.cdc.by_instance.contains_key(through) {
            return Err(ApiError::new(
                503,
                format!("capture {through} is not running"),
            ));
        }
        let Some(from) = self.cdc.owner.clone() else {
            return Err(ApiError::new(500, "owner not found"));
        };
        let others: Vec<&Capture> = self
            .cdc
            .ordered()
            .into_iter()
            .filter(|c| c.instance != from)
            .collect();
        let to = others
            .iter()
            .find(|c| !c.draining)
            .or(others.first())
            .map_or_else(|| from.clone(), |c| c.instance.clone());
        self.cdc.owner = Some(to.clone());
        self.log(now, EventKind::CaptureOwnerResigned { from, to });
        Ok(())
    }

    /// `PUT /api/v1/captures/drain` through capture `through`: capture `capture_id` takes no
    /// more tables and hands its own to the others; answers the tables it still holds. As
    /// TiCDC, refused for an unknown capture, for the owner, and with a single capture.
    pub fn drain_capture(
        &mut self,
        through: &str,
        capture_id: &str,
        now: Now,
    ) -> Result<usize, ApiError> {
        if !self.cdc.by_instance.contains_key(through) {
            return Err(ApiError::new(
                503,
                format!("capture {through} is not running"),
            ));
        }
        let operation = format!("PUT /api/v1/captures/drain {capture_id}");
        if self.cdc.by_instance.len() < 2 {
            let err = ApiError::new(400, "only one capture alive, cannot drain it");
            return Err(self.reject(now, operation, err));
        }
        let Some(target) = self
            .cdc
            .by_instance
            .values()
            .find(|c| c.id == capture_id)
            .map(|c| c.instance.clone())
        else {
            let err = ApiError::new(400, format!("capture {capture_id} not found"));
            return Err(self.reject(now, operation, err));
        };
        if self.cdc.owner.as_deref() == Some(target.as_str()) {
            let err = ApiError::new(400, "the owner cannot be drained; resign it first");
            return Err(self.reject(now, operation, err));
        }
        let Some(capture) = self.cdc.by_instance.get_mut(&target) else {
            return Err(ApiError::new(
                400,
                format!("capture {capture_id} not found"),
            ));
        };
        let tables = capture.tables;
        if !capture.draining {
            capture.draining = true;
            self.log(
                now,
                EventKind::CaptureDrainRequested {
                    instance: target,
                    capture_id: capture_id.to_owned(),
                    tables,
                },
            );
        }
        Ok(tables)
    }

    /// One step of TiCDC's scheduler, by the owner: unowned tables are placed, drained captures
    /// hand tables over, and otherwise one table moves toward balance.
    pub(super) fn tick_captures(&mut self, now: Now) {
        if self.cdc.owner().is_none() {
            return;
        }
        let mut budget = TABLES_MOVED_PER_TICK;
        while budget > 0 && self.cdc.unowned() > 0 {
            let Some(to) = self.cdc.receiver("") else {
                break;
            };
            if let Some(c) = self.cdc.by_instance.get_mut(&to) {
                c.tables += 1;
            }
            budget -= 1;
        }
        let draining: Vec<String> = self
            .cdc
            .ordered()
            .into_iter()
            .filter(|c| c.draining && c.tables > 0)
            .filter(|c| !self.faults.stuck_drains.contains(&c.instance))
            .map(|c| c.instance.clone())
            .collect();
        for from in draining {
            while budget > 0 {
                let Some(to) = self.cdc.receiver(&from) else {
                    break;
                };
                let Some(capture) = self.cdc.by_instance.get_mut(&from) else {
                    break;
                };
                capture.tables -= 1;
                let (left, id) = (capture.tables, capture.id.clone());
                if let Some(c) = self.cdc.by_instance.get_mut(&to) {
                    c.tables += 1;
                }
                budget -= 1;
                if left == 0 {
                    self.log(
                        now,
                        EventKind::CaptureDrained {
                            instance: from.clone(),
                            capture_id: id,
                        },
                    );
                    break;
                }
            }
        }
        if budget == TABLES_MOVED_PER_TICK {
            self.balance_tables();
        }
    }

    /// Moves one table from the fullest to the emptiest capture that is not draining, when
    /// they differ by more than one.
    fn balance_tables(&mut self) {
        let open: Vec<&Capture> = self
            .cdc
            .ordered()
            .into_iter()
            .filter(|c| !c.draining)
            .collect();
        let (Some(full), Some(empty)) = (
            open.iter()
                .max_by_key(|c| (c.tables, std::cmp::Reverse(c.registered))),
            open.iter().min_by_key(|c| (c.tables, c.registered)),
        ) else {
            return;
        };
        if full.tables <= empty.tables + 1 {
            return;
        }
        let (from, to) = (full.instance.clone(), empty.instance.clone());
        if let Some(c) = self.cdc.by_instance.get_mut(&from) {
            c.tables -= 1;
        }
        if let Some(c) = self.cdc.by_instance.get_mut(&to) {
            c.tables += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::sim::{Component, EventKind, Sim, SimConfig};

    fn capture_pod(instance: &str, uid: &str, running: bool) -> PodObservation {
        PodObservation {
            namespace: "ns".into(),
            name: instance.into(),
            uid: uid.into(),
            cluster: "c".into(),
            component: Component::Ticdc,
            instance: instance.into(),
            running,
            deleting: false,
            hostname: Some(instance.into()),
            subdomain: Some("cdc-ticdc-peer".into()),
            ports: BTreeMap::from([("ticdc".to_owned(), 8300)]),
            image: Some("pingcap/ticdc:v8.5.2".into()),
            node: None,
            data_claim: None,
            data_volume: None,
            config_map: None,
            advertised: BTreeMap::new(),
            standby: false,
            join: None,
            domain: None,
        }
    }

    struct World {
        sim: Sim,
        now: Now,
    }

    impl World {
        fn new() -> Self {
            Self {
                sim: Sim::new(SimConfig::default()),
                now: Now::real(),
            }
        }
        fn run(&mut self, instance: &str, uid: &str) {
            self.sim
                .observe_pod(capture_pod(instance, uid, true), self.now);
        }
        fn stop(&mut self, instance: &str, uid: &str) {
            self.sim
                .observe_pod(capture_pod(instance, uid, false), self.now);
        }
        fn ticks(&mut self, n: usize) {
            for _ in 0..n {
                self.now = self.now.after(Duration::from_millis(500));
                self.sim.tick(self.now);
            }
        }
        fn cluster(&mut self) -> &mut ClusterState {
            self.sim.cluster_mut("ns", "c").unwrap()
        }
        fn views(&mut self) -> Vec<CaptureView> {
            self.cluster().capture_views()
        }
        fn owner(&mut self) -> String {
            self.views()
                .into_iter()
                .find(|c| c.is_owner)
                .map(|c| c.instance)
                .unwrap()
        }
        fn id_of(&mut self, instance: &str) -> String {
            self.cluster().capture_status(instance).unwrap().id
        }
        fn kinds(&mut self) -> Vec<EventKind> {
            self.cluster()
                .events()
                .since(0)
                .map(|e| e.kind.clone())
                .collect()
        }
    }

    #[test]
    fn capture_ids_look_like_uuids_and_differ_per_process() {
        let a = capture_id("uid-1");
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, capture_id("uid-2"));
        assert_eq!(a, capture_id("uid-1"));
    }

    #[test]
    fn the_first_capture_up_is_the_owner_and_tables_spread_over_the_captures() {
        let mut w = World::new();
        w.run("cdc-b", "u-b");
        w.run("cdc-a", "u-a");
        assert_eq!(w.owner(), "cdc-b");
        let listed = w.cluster().captures("cdc-a").unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].is_owner && !listed[1].is_owner);
        assert_eq!(listed[0].address, "cdc-b.cdc-ticdc-peer.ns:8300");
        assert!(w.cluster().capture_status("cdc-b").unwrap().is_owner);
        assert!(w.cluster().captures("cdc-x").is_none());
        w.ticks(20);
        let tables: Vec<usize> = w.views().iter().map(|c| c.tables).collect();
        assert_eq!(tables, [6, 6]);
    }

    #[test]
    fn resign_moves_ownership_to_another_capture() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        w.run("cdc-b", "u-b");
        let now = w.now;
        w.cluster().resign_cdc_owner("cdc-b", now).unwrap();
        assert_eq!(w.owner(), "cdc-b");
        assert!(w.kinds().contains(&EventKind::CaptureOwnerResigned {
            from: "cdc-a".into(),
            to: "cdc-b".into()
        }));
    }

    #[test]
    fn a_drain_hands_the_tables_over_a_few_ticks_and_reports_what_is_left() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        w.run("cdc-b", "u-b");
        w.ticks(20);
        let id = w.id_of("cdc-b");
        let now = w.now;
        assert_eq!(w.cluster().drain_capture("cdc-b", &id, now).unwrap(), 6);
        w.ticks(1);
        let now = w.now;
        let left = w.cluster().drain_capture("cdc-b", &id, now).unwrap();
        assert_eq!(left, 6 - TABLES_MOVED_PER_TICK);
        w.ticks(3);
        let now = w.now;
        assert_eq!(w.cluster().drain_capture("cdc-b", &id, now).unwrap(), 0);
        let kinds = w.kinds();
        let requested = kinds
            .iter()
            .filter(|k| matches!(k, EventKind::CaptureDrainRequested { .. }))
            .count();
        assert_eq!(requested, 1, "logged once: {kinds:?}");
        assert!(kinds.contains(&EventKind::CaptureDrained {
            instance: "cdc-b".into(),
            capture_id: id.clone()
        }));
        // A drained capture gets nothing back while it runs.
        w.ticks(10);
        assert_eq!(w.views()[1].tables, 0);
        // Its Pod stops holding no table: nothing waits for a new capture.
        w.stop("cdc-b", "u-b");
        assert!(w.kinds().contains(&EventKind::CaptureGone {
            instance: "cdc-b".into(),
            capture_id: id,
            tables: 0
        }));
    }

    #[test]
    fn under_ticdc_drain_stuck_a_drained_capture_keeps_its_tables() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        w.run("cdc-b", "u-b");
        w.ticks(20);
        let now = w.now;
        w.cluster()
            .set_fault(&crate::sim::Fault::TicdcDrainStuck("cdc-b".into()), now);
        let id = w.id_of("cdc-b");
        assert_eq!(w.cluster().drain_capture("cdc-b", &id, now).unwrap(), 6);
        w.ticks(10);
        let now = w.now;
        assert_eq!(w.cluster().drain_capture("cdc-b", &id, now).unwrap(), 6);
        w.cluster()
            .clear_fault(&crate::sim::Fault::TicdcDrainStuck("cdc-b".into()), now);
        w.ticks(5);
        let now = w.now;
        assert_eq!(w.cluster().drain_capture("cdc-b", &id, now).unwrap(), 0);
    }

    #[test]
    fn under_ticdc_down_a_running_capture_is_gone_and_comes_back_once_cleared() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        w.run("cdc-b", "u-b");
        w.ticks(20);
        assert_eq!(w.owner(), "cdc-a");
        let now = w.now;
        let fault = crate::sim::Fault::TicdcDown("cdc-a".into());
        w.cluster().set_fault(&fault, now);
        w.ticks(10);
        // Its API does not answer, the other capture owns and holds every table.
        assert!(w.cluster().capture_status("cdc-a").is_none());
        assert!(w.cluster().captures("cdc-a").is_none());
        assert_eq!(w.owner(), "cdc-b");
        let views = w.views();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].tables, CDC_TABLES);
        let now = w.now;
        w.cluster().clear_fault(&fault, now);
        w.ticks(20);
        assert!(w.cluster().capture_status("cdc-a").is_some());
        assert_eq!(w.owner(), "cdc-b", "ownership stays where it moved");
        assert_eq!(w.views().len(), 2);
    }

    #[test]
    fn the_owner_an_unknown_capture_and_a_lone_capture_cannot_be_drained() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        let owner = w.id_of("cdc-a");
        let now = w.now;
        let lone = w.cluster().drain_capture("cdc-a", &owner, now).unwrap_err();
        assert_eq!(lone.status, 400);
        w.run("cdc-b", "u-b");
        let refused = w.cluster().drain_capture("cdc-b", &owner, now).unwrap_err();
        assert!(refused.message.contains("owner"), "{}", refused.message);
        let unknown = w.cluster().drain_capture("cdc-b", "nope", now).unwrap_err();
        assert!(unknown.message.contains("not found"));
        let absent = w.cluster().drain_capture("cdc-x", &owner, now).unwrap_err();
        assert_eq!(absent.status, 503);
    }

    #[test]
    fn a_stopped_owner_is_replaced_and_its_tables_are_placed_again() {
        let mut w = World::new();
        w.run("cdc-a", "u-a");
        w.run("cdc-b", "u-b");
        w.ticks(20);
        w.stop("cdc-a", "u-a");
        assert_eq!(w.owner(), "cdc-b");
        assert!(w.kinds().contains(&EventKind::CaptureGone {
            instance: "cdc-a".into(),
            capture_id: capture_id("u-a"),
            tables: 6
        }));
        w.ticks(5);
        assert_eq!(w.views()[0].tables, CDC_TABLES);
        // The same instance back on a new Pod is a new capture, and not the owner.
        w.run("cdc-a", "u-a2");
        assert_eq!(w.owner(), "cdc-b");
        assert_eq!(w.id_of("cdc-a"), capture_id("u-a2"));
    }
}
