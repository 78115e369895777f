//! Unit tests of the simulation: members and leader, stores and their states, eviction, store
//! deletion, down peers, labels, faults, events, and isolation between clusters.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::clock::Now;

mod learners;

const NS: &str = "db";
const CL: &str = "basic";

fn pod(component: Component, instance: &str, uid: &str) -> PodObservation {
    let (client, peer) = match component {
        Component::Pd => (2379, 2380),
        Component::Tikv => (20160, 20180),
        Component::Tidb => (4000, 10080),
        Component::Tiflash => (20170, 20292),
        Component::Ticdc => (8300, 8301),
    };
    PodObservation {
        namespace: NS.to_owned(),
        name: instance.to_owned(),
        uid: uid.to_owned(),
        cluster: CL.to_owned(),
        component,
        instance: instance.to_owned(),
        running: true,
        deleting: false,
        hostname: Some(instance.to_owned()),
        subdomain: Some(format!("{CL}-peer")),
        ports: BTreeMap::from([
            ("client".to_owned(), client),
            (
                match component {
                    Component::Tikv => "status",
                    Component::Tiflash => "proxy-metrics",
                    _ => "peer",
                }
                .to_owned(),
                peer,
            ),
            ("proxy".to_owned(), client),
        ]),
        image: Some("pingcap/x:v8.5.1".to_owned()),
        node: Some(format!("node-{instance}")),
        data_claim: Some(format!("data-{instance}")),
        data_volume: None,
        config_map: None,
        advertised: BTreeMap::new(),
        standby: false,
        join: None,
        domain: None,
    }
}

/// A simulation with a hand-driven clock.
struct World {
    sim: Sim,
    now: Now,
}

impl World {
    fn new() -> Self {
        Self::with(SimConfig::default())
    }

    fn with(config: SimConfig) -> Self {
        Self {
            sim: Sim::new(config),
            now: Now::real(),
        }
    }

    fn run(&mut self, pod: PodObservation) {
        self.sim.observe_pod(pod, self.now);
    }

    fn pd(&mut self, names: &[&str]) {
        for n in names {
            self.run(pod(Component::Pd, n, &format!("uid-{n}")));
        }
    }

    fn tikv(&mut self, names: &[&str]) {
        for n in names {
            self.run(pod(Component::Tikv, n, &format!("uid-{n}")));
        }
    }

    fn stop(&mut self, component: Component, name: &str) {
        let mut p = pod(component, name, &format!("uid-{name}"));
        p.running = false;
        self.run(p);
    }

    fn tick(&mut self) {
        self.now = self.now.after(Duration::from_millis(500));
        self.sim.tick(self.now);
    }

    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    fn c(&mut self) -> &mut ClusterState {
        self.sim
            .cluster_mut(NS, CL)
            .expect("the cluster has been seen")
    }

    fn store(&mut self, id: u64) -> crate::wire::StoreInfo {
        let now = self.now;
        self.c().store_info(id, now).expect("store exists")
    }

    fn kinds(&mut self) -> Vec<String> {
        self.c()
            .events()
            .since(0)
            .map(|e| {
                serde_json::to_value(e).expect("serializable")["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

/// PD, three TiKV stores, ticked until regions exist.
fn basic_cluster(stores: &[&str]) -> World {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tikv(stores);
    w.tick();
    w
}

// ------------------------------------------------------------------------ members and leader

#[test]
fn members_come_from_running_pd_pods_and_a_leader_is_elected_on_the_first_tick() {
    let mut w = World::new();
    w.pd(&["pd-b", "pd-a", "pd-c"]);
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    assert_eq!(w.c().leader(), None);

    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-a"));
    let info = w.c().members_info();
    let names: Vec<&str> = info.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["pd-a", "pd-b", "pd-c"]);
    assert_eq!(info.leader.as_ref().map(|m| m.name.as_str()), Some("pd-a"));
    assert_eq!(info.etcd_leader, info.leader);
    assert_eq!(info.header.cluster_id, w.c().cluster_id());
    let a = &info.members[0];
    assert_eq!(a.client_urls, ["http://pd-a.basic-peer.db:2379"]);
    assert_eq!(a.peer_urls, ["http://pd-a.basic-peer.db:2380"]);
    assert_eq!(a.binary_version, "v8.5.1");
    assert_eq!(a.member_id, stable_id(&[NS, CL, "pd-a"]));
    assert!(w.c().health().iter().all(|h| h.health));
    assert!(w.c().pd_available().is_ok());
}

#[test]
fn the_first_remaining_member_becomes_leader_one_tick_after_the_leader_stops() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tick();
    w.stop(Component::Pd, "pd-a");
    // Until the next tick there is no leader: PD answers 503.
    assert_eq!(w.c().leader(), None);
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    let kinds = w.kinds();
    let stopped = kinds.iter().position(|k| k == "pod_stopped");
    let elected = kinds.iter().rposition(|k| k == "leader_elected");
    assert!(stopped < elected, "{kinds:?}");
}

#[test]
fn leader_transfer_moves_leadership_and_refuses_unknown_members() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b"]);
    w.tick();
    let now = w.now;
    assert!(w.c().transfer_leader("pd-b", now).is_ok());
    // Answered at once; the leader steps down on the next tick, the target leads after.
    assert_eq!(w.c().leader().as_deref(), Some("pd-a"));
    w.tick();
    assert_eq!(w.c().leader(), None);
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    assert_eq!(w.c().leader_info().map(|m| m.name), Some("pd-b".to_owned()));
    let err = w
        .c()
        .transfer_leader("pd-z", now)
        .expect_err("unknown member");
    assert_eq!(err.status, 500);
    // Ticks keep a valid leader.
    w.ticks(3);
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    assert!(w.c().resign_leader(now).is_ok());
    w.ticks(2);
    assert_eq!(w.c().leader().as_deref(), Some("pd-a"));
    let kinds = w.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "leader_transferred").count(),
        2
    );
    assert!(kinds.contains(&"request_rejected".to_owned()));
}

#[test]
fn a_deleted_member_stays_out_until_a_new_pod_of_that_name_runs() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tick();
    let now = w.now;
    assert_eq!(
        w.c().delete_member_by_name("pd-a", now),
        Ok("removed, pd: pd-a".to_owned())
    );
    let names = |w: &mut World| -> Vec<String> {
        w.c()
            .members_info()
            .members
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    assert_eq!(names(&mut w), ["pd-b", "pd-c"]);
    // The removed leader stepped down; the next tick elects another.
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    // The same Pod observed again stays removed.
    w.pd(&["pd-a"]);
    w.tick();
    assert_eq!(names(&mut w), ["pd-b", "pd-c"]);
    // A new Pod (another UID) of that name joins as a new member.
    w.run(pod(Component::Pd, "pd-a", "uid-pd-a-2"));
    assert_eq!(names(&mut w), ["pd-a", "pd-b", "pd-c"]);

    let id = stable_id(&[NS, CL, "pd-c"]);
    assert!(w.c().delete_member_by_id(id, now).is_ok());
    assert_eq!(names(&mut w), ["pd-a", "pd-b"]);
    assert_eq!(
        w.c()
            .delete_member_by_name("pd-x", now)
            .map_err(|e| e.status),
        Err(404)
    );
    assert_eq!(
        w.c().delete_member_by_id(42, now).map_err(|e| e.status),
        Err(500)
    );
}

#[test]
fn pd_is_unreachable_without_pd_pods_or_with_the_fault() {
    let mut w = World::new();
    w.tikv(&["kv-1"]);
    w.tick();
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    w.pd(&["pd-a"]);
    w.tick();
    assert!(w.c().pd_available().is_ok());
    let now = w.now;
    w.c().set_fault(&Fault::PdUnreachable, now);
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    w.c().clear_fault(&Fault::PdUnreachable, now);
    assert!(w.c().pd_available().is_ok());
    w.c().set_fault(&Fault::MemberUnhealthy("pd-a".into()), now);
    assert!(!w.c().health()[0].health);
}

// ------------------------------------------------------------------------ stores

#[test]
fn stores_register_with_ids_from_one_and_keep_them_per_instance() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let s1 = w.store(1);
    assert_eq!(s1.store.address, "kv-a.basic-peer.db:20160");
    assert_eq!(s1.store.status_address, "kv-a.basic-peer.db:20180");
    assert_eq!(s1.store.state_name, "Up");
    assert_eq!(s1.store.state, 0);
    assert_eq!(s1.store.node_state, 1);
    assert_eq!(s1.store.version, "8.5.1");
    assert_eq!(w.store(3).store.address, "kv-c.basic-peer.db:20160");

    // A recreated Pod of the same instance keeps its store.
    w.stop(Component::Tikv, "kv-b");
    w.run(pod(Component::Tikv, "kv-b", "uid-kv-b-2"));
    w.tick();
    assert_eq!(w.store(2).store.state_name, "Up");
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1], now).count, 3);
}

#[test]
fn pd_metrics_report_the_leader_and_the_stores_by_state_on_the_leader_only() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let leader = w.c().leader_info().unwrap().name;
    let follower = ["pd-a", "pd-b", "pd-c"]
        .into_iter()
        .find(|m| *m != leader)
        .unwrap();
    let text = w.c().pd_metrics(&leader, now).unwrap();
    assert!(
        text.contains("service_member_role{service=\"PD\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("pd_cluster_status{type=\"store_up_count\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("pd_cluster_status{type=\"store_down_count\"} 0\n"),
        "{text}"
    );
    let text = w.c().pd_metrics(follower, now).unwrap();
    assert!(
        text.contains("service_member_role{service=\"PD\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("pd_cluster_status"), "{text}");
    assert!(w.c().pd_metrics("pd-z", now).is_none());

    w.c()
        .set_fault(&Fault::StoreDown(StoreRef::Instance("kv-a".into())), now);
    let text = w.c().pd_metrics(&leader, now).unwrap();
    assert!(
        text.contains("pd_cluster_status{type=\"store_down_count\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("pd_cluster_status{type=\"store_up_count\"} 2\n"),
        "{text}"
    );
}

#[test]
fn a_stopped_store_is_disconnected_then_down_then_up_again() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    w.stop(Component::Tikv, "kv-a");
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Disconnected");
    w.advance(Duration::from_secs(10));
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Down");
    // Its leaders moved to live peers at once.
    assert_eq!(w.store(1).status.leader_count, 0);
    assert_eq!(w.store(1).status.region_count, 30);
    w.tikv(&["kv-a"]);
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Up");
    let changes: Vec<(String, String)> = w
        .c()
        .events()
        .since(0)
        .filter_map(|e| match &e.kind {
            EventKind::StoreStateChanged { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("Up".into(), "Disconnected".into()),
            ("Disconnected".into(), "Down".into()),
            ("Down".into(), "Up".into())
        ]
    );
    // Leaders come back over ticks.
    w.ticks(10);
    let leaders: Vec<usize> = (1..=3).map(|id| w.store(id).status.leader_count).collect();
    assert_eq!(leaders.iter().sum::<usize>(), 30);
    assert!(leaders.iter().all(|n| (9..=11).contains(n)), "{leaders:?}");
}

#[test]
fn regions_and_leaders_spread_over_stores_and_rebalance_to_a_new_store() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    for id in 1..=3 {
        let s = w.store(id);
        assert_eq!(s.status.region_count, 30);
        assert_eq!(s.status.leader_count, 10);
    }
    w.tikv(&["kv-d"]);
    w.tick();
    let first = w.store(4).status.region_count;
    assert!(
        first > 0 && first <= 3,
        "a few regions per tick, got {first}"
    );
    w.ticks(20);
    let regions: Vec<usize> = (1..=4).map(|id| w.store(id).status.region_count).collect();
    assert_eq!(regions.iter().sum::<usize>(), 90);
    assert!(regions.iter().all(|n| (22..=23).contains(n)), "{regions:?}");
    let leaders: Vec<usize> = (1..=4).map(|id| w.store(id).status.leader_count).collect();
    assert_eq!(leaders.iter().sum::<usize>(), 30);
    assert!(leaders.iter().all(|n| (7..=8).contains(n)), "{leaders:?}");
}

#[test]
fn the_simulation_is_deterministic() {
    let run = || {
        let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
        w.tikv(&["kv-d"]);
        w.ticks(3);
        let now = w.now;
        w.c().regions_info(now)
    };
    assert_eq!(run(), run());
}

// ------------------------------------------------------------------------ evict-leader

#[test]
fn evict_leader_drains_a_store_over_a_few_ticks_and_leaders_come_back_after() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    assert!(w.c().add_scheduler(EVICT_LEADER, Some(2), now).is_ok());
    assert_eq!(
        w.c().schedulers().last().map(String::as_str),
        Some(EVICT_LEADER)
    );
    let config = w.c().evict_leader_config().expect("scheduler exists");
    assert!(config.store_id_ranges.contains_key("2"));

    let mut seen = vec![w.store(2).status.leader_count];
    for _ in 0..6 {
        w.tick();
        seen.push(w.store(2).status.leader_count);
    }
    assert_eq!(seen[0], 10);
    assert!(
        seen[1] < 10 && seen[1] > 0,
        "drains a few per tick: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&0), "{seen:?}");
    assert!(w.kinds().contains(&"leaders_drained".to_owned()));

    assert_eq!(
        w.c().remove_scheduler("evict-leader-scheduler-2", now),
        Ok(true)
    );
    assert!(w.c().evict_leader_config().is_none());
    assert!(!w.c().schedulers().contains(&EVICT_LEADER.to_owned()));
    w.ticks(10);
    assert!(w.store(2).status.leader_count >= 9);
    assert_eq!(
        w.c()
            .remove_scheduler("evict-leader-scheduler-2", now)
            .map_err(|e| e.status),
        Err(404)
    );
}

#[test]
fn leaders_never_drain_keeps_them_on_the_evicted_store() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    w.c().set_fault(
        &Fault::LeadersNeverDrain(StoreRef::Instance("kv-a".into())),
        now,
    );
    assert!(w.c().add_scheduler(EVICT_LEADER, Some(1), now).is_ok());
    w.ticks(10);
    assert_eq!(w.store(1).status.leader_count, 10);
    // Clearing the fault lets them drain.
    w.c().clear_all_faults(now);
    w.ticks(6);
    assert_eq!(w.store(1).status.leader_count, 0);
}

#[test]
fn scheduler_requests_are_checked_like_pd() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let status = |r: Result<(), ApiError>| r.map_err(|e| e.status);
    assert_eq!(
        status(w.c().add_scheduler(EVICT_LEADER, None, now)),
        Err(400)
    );
    assert_eq!(
        status(w.c().add_scheduler(EVICT_LEADER, Some(9), now)),
        Err(500)
    );
    assert_eq!(status(w.c().add_scheduler("nope", None, now)), Err(400));
    assert_eq!(
        status(w.c().add_scheduler("balance-leader-scheduler", None, now)),
        Err(500)
    );
    // Adding the same store twice is fine, as in PD.
    assert_eq!(
        status(w.c().add_scheduler(EVICT_LEADER, Some(1), now)),
        Ok(())
    );
    assert_eq!(
        status(w.c().add_scheduler(EVICT_LEADER, Some(1), now)),
        Ok(())
    );
    assert_eq!(
        status(w.c().add_scheduler(EVICT_LEADER, Some(3), now)),
        Ok(())
    );
    assert_eq!(
        w.c().remove_scheduler("evict-leader-scheduler-1", now),
        Ok(false)
    );
    assert_eq!(w.c().remove_scheduler(EVICT_LEADER, now), Ok(true));
    assert_eq!(w.c().evicted_stores().count(), 0);
}

// ------------------------------------------------------------------------ store deletion

#[test]
fn a_deleted_store_goes_offline_drains_and_becomes_tombstone() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c", "kv-d"]);
    w.ticks(20);
    let now = w.now;
    assert!(w.c().delete_store(4, now).is_ok());
    assert_eq!(w.store(4).store.state_name, "Offline");
    assert_eq!(w.store(4).store.state, 1);
    assert_eq!(w.store(4).store.node_state, 2);
    // Deleting again is fine while Offline.
    assert!(w.c().delete_store(4, now).is_ok());
    w.tick();
    let after_one = w.store(4).status.region_count;
    assert!(after_one > 0, "moves a few regions per tick");
    w.ticks(20);
    let s = w.store(4);
    assert_eq!(s.store.state_name, "Tombstone");
    assert_eq!(s.store.node_state, 3);
    assert_eq!(s.status.region_count, 0);
    for id in 1..=3 {
        assert_eq!(w.store(id).status.region_count, 30);
    }
    // Tombstone stores are listed only when asked for.
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1], now).count, 3);
    assert_eq!(w.c().stores_info(&[2], now).count, 1);
    assert_eq!(w.c().delete_store(4, now).map_err(|e| e.status), Err(410));
    assert_eq!(
        w.c().set_store_state(4, "Up", now).map_err(|e| e.status),
        Err(410)
    );
    assert_eq!(w.c().delete_store(99, now).map_err(|e| e.status), Err(404));
    let kinds = w.kinds();
    let deleted = kinds.iter().position(|k| k == "store_deleted");
    let tombstone = kinds.iter().position(|k| k == "store_tombstone");
    assert!(deleted.is_some() && deleted < tombstone, "{kinds:?}");
}

#[test]
fn a_tiflash_store_registers_with_its_engine_label_holds_no_region_and_leaves_through_tombstone() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    w.run(pod(Component::Tiflash, "flash-a", "uid-flash-a"));
    w.ticks(20);
    let flash = w.store(4);
    assert_eq!(flash.store.state_name, "Up");
    assert_eq!(flash.store.address, format!("flash-a.{CL}-peer.{NS}:20170"));
    assert!(
        flash
            .store
            .labels
            .iter()
            .any(|l| l.key == "engine" && l.value == "tiflash"),
        "{:?}",
        flash.store.labels
    );
    assert_eq!(flash.status.region_count, 0);
    assert_eq!(flash.status.leader_count, 0);
    // The operator cannot take the engine label away or set it.
    let now = w.now;
    let refused = w.c().set_store_labels(
        4,
        BTreeMap::from([("engine".to_owned(), "tikv".to_owned())]),
        false,
        now,
    );
    assert_eq!(refused.map_err(|e| e.status), Err(400));
    assert!(w.c().delete_store(4, now).is_ok());
    assert_eq!(w.store(4).store.state_name, "Offline");
    w.tick();
    assert_eq!(w.store(4).store.state_name, "Tombstone");
    for id in 1..=3 {
        assert_eq!(w.store(id).status.region_count, 30);
    }
}

#[test]
fn a_recreated_instance_after_tombstone_registers_a_new_store() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c", "kv-d"]);
    let now = w.now;
    assert!(w.c().delete_store(4, now).is_ok());
    w.ticks(30);
    assert_eq!(w.store(4).store.state_name, "Tombstone");
    w.run(pod(Component::Tikv, "kv-d", "uid-kv-d-2"));
    assert_eq!(w.store(5).store.state_name, "Up");
    assert_eq!(w.store(4).store.state_name, "Tombstone");
}

#[test]
fn cancelling_a_deletion_brings_the_store_back_up() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c", "kv-d"]);
    w.ticks(20);
    let now = w.now;
    assert!(w.c().delete_store(2, now).is_ok());
    w.tick();
    assert!(w.c().set_store_state(2, "Up", now).is_ok());
    assert_eq!(w.store(2).store.state_name, "Up");
    assert!(w.kinds().contains(&"store_delete_cancelled".to_owned()));
    // It takes regions again.
    w.ticks(20);
    assert!(w.store(2).status.region_count >= 22);
    assert_eq!(
        w.c().set_store_state(2, "Bogus", now).map_err(|e| e.status),
        Err(400)
    );
}

#[test]
fn deletion_below_max_replicas_is_refused_and_an_offline_store_without_targets_stays_offline() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let err = w.c().delete_store(1, now).expect_err("refused");
    assert_eq!(err.status, 400);
    assert!(
        err.message
            .contains("the number of up stores would be 2 while need 3"),
        "{}",
        err.message
    );
    assert_eq!(w.store(1).store.state_name, "Up");

    // With a fourth store the deletion is accepted, but if another store goes down meanwhile,
    // the regions have nowhere to go and the store stays Offline.
    w.tikv(&["kv-d"]);
    w.ticks(20);
    let now = w.now;
    assert!(w.c().delete_store(4, now).is_ok());
    w.stop(Component::Tikv, "kv-a");
    w.ticks(20);
    let s = w.store(4);
    assert_eq!(s.store.state_name, "Offline");
    assert!(s.status.region_count > 0);
    // Back up: it drains.
    w.tikv(&["kv-a"]);
    w.ticks(20);
    assert_eq!(w.store(4).store.state_name, "Tombstone");
}

#[test]
fn the_max_replicas_fault_overrides_the_config() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c", "kv-d"]);
    let now = w.now;
    w.c().set_fault(&Fault::MaxReplicas(4), now);
    assert_eq!(w.c().replication_config().max_replicas, 4);
    assert_eq!(w.c().cluster_meta().max_peer_count, 4);
    assert_eq!(w.c().delete_store(1, now).map_err(|e| e.status), Err(400));
    w.tick();
    for id in 1..=4 {
        assert_eq!(w.store(id).status.region_count, 30);
    }
    w.c().clear_fault(&Fault::MaxReplicas(0), now);
    assert_eq!(w.c().replication_config().max_replicas, 3);
    w.tick();
    let now = w.now;
    assert_eq!(
        w.c().regions_check("extra-peer", now).map(|r| r.count),
        Some(0)
    );
}

// ------------------------------------------------------------------------ down peers, labels

#[test]
fn down_peers_come_from_down_stores_and_the_down_peers_fault() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let down = |w: &mut World| {
        let now = w.now;
        w.c().regions_check("down-peer", now).map(|r| r.count)
    };
    assert_eq!(down(&mut w), Some(0));
    w.c().set_fault(&Fault::DownPeers(StoreRef::Id(2)), now);
    assert_eq!(down(&mut w), Some(30));
    assert_eq!(w.store(2).store.state_name, "Up");
    w.c().clear_fault(&Fault::DownPeers(StoreRef::Id(2)), now);
    assert_eq!(down(&mut w), Some(0));

    // A stopped store has down peers only once Down.
    w.stop(Component::Tikv, "kv-c");
    w.tick();
    assert_eq!(down(&mut w), Some(0));
    w.advance(Duration::from_secs(11));
    w.tick();
    assert_eq!(down(&mut w), Some(30));
    let now = w.now;
    let info = w.c().regions_check("down-peer", now).expect("known kind");
    let peer = &info.regions[0].down_peers[0];
    assert_eq!(peer.peer.store_id, 3);
    assert!(peer.down_seconds >= 11);

    // The store-down fault forces Down whatever the Pod does.
    w.tikv(&["kv-c"]);
    w.tick();
    assert_eq!(down(&mut w), Some(0));
    w.c()
        .set_fault(&Fault::StoreDown(StoreRef::Instance("kv-a".into())), now);
    assert_eq!(w.store(1).store.state_name, "Down");
    assert_eq!(down(&mut w), Some(30));
    assert!(w.c().tikv_status("kv-a").is_none());
    assert!(w.c().tikv_status("kv-b").is_some());
    assert!(w.c().regions_check("no-such-check", now).is_none());
}

#[test]
fn peers_on_a_down_store_are_replaced_on_a_spare_store_and_not_while_only_disconnected() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c", "kv-d"]);
    let peers_on =
        |w: &mut World, id: u64| w.c().regions.iter().filter(|r| r.has_peer_on(id)).count();
    assert!(peers_on(&mut w, 4) > 0);
    w.stop(Component::Tikv, "kv-d");
    w.tick();
    // Disconnected: PD waits for max-store-down-time before it replaces anything.
    assert_eq!(w.store(4).store.state_name, "Disconnected");
    assert!(peers_on(&mut w, 4) > 0);
    w.advance(Duration::from_secs(11));
    w.tick();
    assert_eq!(w.store(4).store.state_name, "Down");
    assert_eq!(
        peers_on(&mut w, 4),
        0,
        "every peer moved off the Down store"
    );
    let now = w.now;
    assert_eq!(
        w.c().regions_check("down-peer", now).map(|r| r.count),
        Some(0)
    );
    assert_eq!(
        w.c().regions_check("miss-peer", now).map(|r| r.count),
        Some(0)
    );

    // With no spare store, the down peers stay until one comes.
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    w.c()
        .set_fault(&Fault::StoreDown(StoreRef::Instance("kv-a".into())), now);
    w.tick();
    assert_eq!(peers_on(&mut w, 1), 30);
    w.tikv(&["kv-a", "kv-b", "kv-c", "kv-e"]);
    w.tick();
    assert_eq!(peers_on(&mut w, 1), 0, "the new store took the down peers");
}

#[test]
fn store_address_changed_reports_another_address_under_the_same_id() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let before = w.store(1).store;
    assert_eq!(before.address, "kv-a.basic-peer.db:20160");
    let fault = Fault::StoreAddressChanged(StoreRef::Instance("kv-a".into()));
    w.c().set_fault(&fault, now);
    let moved = w.store(1).store;
    assert_eq!(moved.id, 1);
    assert_eq!(moved.address, "kv-a.basic-peer.db-moved:20160");
    assert_eq!(moved.peer_address, moved.address);
    assert_eq!(moved.status_address, "kv-a.basic-peer.db-moved:20180");
    assert_eq!(moved.state_name, "Up");
    let listed = w.c().stores_info(&[0, 1], now);
    assert!(
        listed
            .stores
            .iter()
            .any(|s| s.store.address == moved.address)
    );
    assert_eq!(w.store(2).store.address, "kv-b.basic-peer.db:20160");
    // The Pod keeps running: a restart on the same instance keeps the store and the fault.
    w.tikv(&["kv-a"]);
    w.tick();
    assert_eq!(w.c().stores_info(&[0, 1, 2], now).count, 3);
    assert_eq!(w.store(1).store.address, moved.address);
    w.c().clear_fault(&fault, now);
    assert_eq!(w.store(1).store.address, before.address);
    let kinds = w.kinds();
    assert!(kinds.contains(&"fault_set".to_owned()), "{kinds:?}");
}

#[test]
fn store_labels_merge_and_are_validated() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert!(
        w.c()
            .set_store_labels(1, labels(&[("zone", "a"), ("host", "h1")]), false, now)
            .is_ok()
    );
    assert!(
        w.c()
            .set_store_labels(1, labels(&[("zone", "b")]), false, now)
            .is_ok()
    );
    let got: Vec<(String, String)> = w
        .store(1)
        .store
        .labels
        .into_iter()
        .map(|l| (l.key, l.value))
        .collect();
    assert_eq!(
        got,
        [("host".into(), "h1".into()), ("zone".into(), "b".into())]
    );
    assert!(
        w.c()
            .set_store_labels(1, labels(&[("rack", "r")]), true, now)
            .is_ok()
    );
    assert_eq!(w.store(1).store.labels.len(), 1);
    let status = |r: Result<(), ApiError>| r.map_err(|e| e.status);
    assert_eq!(
        status(
            w.c()
                .set_store_labels(1, labels(&[("engine", "tiflash")]), false, now)
        ),
        Err(400)
    );
    assert_eq!(
        status(
            w.c()
                .set_store_labels(1, labels(&[("-bad", "x")]), false, now)
        ),
        Err(400)
    );
    assert_eq!(
        status(
            w.c()
                .set_store_labels(7, labels(&[("zone", "a")]), false, now)
        ),
        Err(500)
    );
    assert!(w.kinds().contains(&"store_labels_set".to_owned()));
    assert!(w.c().delete_store_label(1, "rack", now).is_ok());
    assert!(w.store(1).store.labels.is_empty());
    assert_eq!(status(w.c().delete_store_label(1, "rack", now)), Err(500));
    assert_eq!(status(w.c().delete_store_label(1, "-bad", now)), Err(400));
}

// ------------------------------------------------------------------------ TiDB, TiKV status

#[test]
fn tidb_status_reports_the_image_version_and_honours_the_fault() {
    let mut w = World::new();
    let mut p = pod(Component::Tidb, "db-0", "uid-db-0");
    p.image = Some("registry:5000/pingcap/tidb:v8.5.2@sha256:abc".into());
    w.run(p);
    let status = w.c().tidb_status("db-0").expect("running");
    assert_eq!(status.version, "8.0.11-TiDB-v8.5.2");
    assert_eq!(status.connections, 0);
    let now = w.now;
    w.c().set_fault(&Fault::TidbUnhealthy("db-0".into()), now);
    assert!(w.c().tidb_status("db-0").is_none());
    w.c().clear_fault(&Fault::TidbUnhealthy("db-0".into()), now);
    assert!(w.c().tidb_status("db-0").is_some());
    w.stop(Component::Tidb, "db-0");
    assert!(w.c().tidb_status("db-0").is_none());
    assert!(w.c().tidb_status("db-9").is_none());
}

#[test]
fn a_standby_tidb_is_activated_once_with_one_keyspace() {
    let mut w = World::new();
    let mut standby = pod(Component::Tidb, "db-0", "uid-db-0");
    standby.standby = true;
    w.run(standby);
    w.run(pod(Component::Tidb, "db-1", "uid-db-1"));
    let now = w.now;
    assert_eq!(w.c().tidb_pool_state("db-0"), Some(Some("standby")));
    assert_eq!(
        w.c().tidb_pool_state("db-1"),
        Some(None),
        "no pool API: 404"
    );
    assert!(w.c().activate_tidb("db-1", "ks1", now).is_err());
    w.c().activate_tidb("db-0", "ks1", now).unwrap();
    assert_eq!(w.c().tidb_pool_state("db-0"), Some(Some("activated")));
    w.c().activate_tidb("db-0", "ks1", now).unwrap();
    assert!(
        w.c().activate_tidb("db-0", "ks2", now).is_err(),
        "one keyspace"
    );
    let activations = w
        .c()
        .events()
        .since(0)
        .filter(|e| matches!(e.kind, EventKind::TidbActivated { .. }))
        .count();
    assert_eq!(activations, 1);
    w.stop(Component::Tidb, "db-0");
    assert_eq!(w.c().tidb_pool_state("db-0"), None);
}

#[test]
fn standby_mode_is_read_from_the_config_file() {
    let read = advertised_in("[standby]\nstandby-mode = true\n");
    assert_eq!(read.get(STANDBY_KEY).map(String::as_str), Some("true"));
    assert!(!advertised_in("keyspace-name = \"ks1\"\n").contains_key(STANDBY_KEY));
}

#[test]
fn image_tags_are_read_without_registry_ports_or_digests() {
    assert_eq!(image_tag("pingcap/pd:v8.5.2"), Some("v8.5.2"));
    assert_eq!(image_tag("reg:5000/pingcap/pd:v8.1.0"), Some("v8.1.0"));
    assert_eq!(image_tag("reg:5000/pingcap/pd"), None);
    assert_eq!(image_tag("pingcap/pd@sha256:abc"), None);
}

// ------------------------------------------------------------------------ many clusters, events

#[test]
fn clusters_are_isolated() {
    let mut w = World::new();
    for (ns, cluster) in [("ns-1", "basic"), ("ns-2", "basic"), ("ns-1", "other")] {
        for (component, name) in [
            (Component::Pd, "pd-0"),
            (Component::Tikv, "kv-0"),
            (Component::Tikv, "kv-1"),
            (Component::Tikv, "kv-2"),
        ] {
            let mut p = pod(component, name, &format!("{ns}-{cluster}-{name}"));
            // Pod names are unique per namespace; instance names may repeat across clusters.
            p.name = format!("{cluster}-{name}");
            p.namespace = ns.into();
            p.cluster = cluster.into();
            w.run(p);
        }
    }
    w.tick();
    let now = w.now;
    let ids: Vec<u64> = w.sim.clusters().map(ClusterState::cluster_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    for c in w.sim.clusters() {
        assert_eq!(c.stores_info(&[0], now).count, 3, "store IDs per cluster");
        assert!(c.store_info(1, now).is_some());
        assert_eq!(c.leader().as_deref(), Some("pd-0"));
    }
    let one = w.sim.cluster_mut("ns-1", "basic").expect("seen");
    one.set_fault(&Fault::PdUnreachable, now);
    assert!(one.delete_store(9, now).is_err());
    assert!(
        w.sim
            .cluster("ns-2", "basic")
            .is_some_and(|c| c.pd_available().is_ok())
    );
    assert!(
        w.sim
            .cluster("ns-1", "other")
            .is_some_and(|c| c.pd_available().is_ok())
    );
    assert!(
        w.sim
            .cluster("ns-1", "basic")
            .is_some_and(|c| c.pd_available().is_err())
    );
    let events = |ns: &str, c: &str| {
        w.sim
            .cluster(ns, c)
            .map(|c| c.events().last_seq())
            .unwrap_or_default()
    };
    assert!(events("ns-1", "basic") > events("ns-2", "basic"));
}

#[test]
fn events_are_ordered_and_pods_gone_from_a_resync_are_deleted() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let seqs: Vec<u64> = w.c().events().since(0).map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|p| p[0] + 1 == p[1]));
    let last = w.c().events().last_seq();
    assert_eq!(w.c().events().since(last).count(), 0);

    // A watch restart lists everything but kv-c.
    w.sim.begin_resync();
    for name in ["pd-a", "pd-b", "pd-c"] {
        w.run(pod(Component::Pd, name, &format!("uid-{name}")));
    }
    w.tikv(&["kv-a", "kv-b"]);
    let now = w.now;
    w.sim.end_resync(now);
    let after: Vec<EventKind> = w.c().events().since(last).map(|e| e.kind.clone()).collect();
    assert_eq!(
        after,
        [
            EventKind::PodStopped {
                component: Component::Tikv,
                instance: "kv-c".into(),
                pod: "kv-c".into(),
                uid: "uid-kv-c".into(),
                reason: StopReason::Deleted,
                // Deleted without a hand-over: its leaders are lost with it.
                leaders: Some(10),
            },
            EventKind::PodDeleted {
                component: Component::Tikv,
                instance: "kv-c".into(),
                pod: "kv-c".into(),
                uid: "uid-kv-c".into(),
            },
        ]
    );
    w.tick();
    assert_eq!(w.store(3).store.state_name, "Disconnected");
}

#[test]
fn a_deleting_pod_is_reported_with_its_reason() {
    let mut w = World::new();
    w.pd(&["pd-a"]);
    let mut p = pod(Component::Pd, "pd-a", "uid-pd-a");
    p.running = false;
    p.deleting = true;
    w.run(p);
    let last = w.c().events().since(0).last().map(|e| e.kind.clone());
    assert!(matches!(
        last,
        Some(EventKind::PodStopped {
            reason: StopReason::Deleting,
            ..
        })
    ));
}

// ------------------------------------------------------------------------ the harsher world

impl World {
    fn pvc(&mut self, name: &str, uid: &str, deleted: bool) {
        let pvc = PvcObservation {
            namespace: NS.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            deleted,
        };
        self.sim.observe_pvc(pvc, self.now);
    }

    /// A Pod of `instance` with UID `uid` on the claim `data-{instance}` (UID `volume`).
    fn on_volume(&mut self, component: Component, instance: &str, uid: &str, volume: &str) {
        self.pvc(&format!("data-{instance}"), volume, false);
        self.run(pod(component, instance, uid));
    }

    fn safety(&mut self) -> serde_json::Value {
        let now = self.now;
        serde_json::to_value(self.c().safety(now)).expect("serializable")
    }

    fn health(&mut self) -> Vec<(String, bool)> {
        self.c()
            .health()
            .into_iter()
            .map(|h| (h.name, h.health))
            .collect()
    }
}

#[test]
fn pd_members_stay_listed_and_a_leader_needs_a_healthy_majority() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tick();
    w.stop(Component::Pd, "pd-b");
    w.tick();
    // Still listed, unhealthy; two of three serve: pd-a still leads.
    assert_eq!(w.c().members_info().members.len(), 3);
    assert_eq!(
        w.health(),
        [
            ("pd-a".into(), true),
            ("pd-b".into(), false),
            ("pd-c".into(), true)
        ]
    );
    assert_eq!(w.c().leader().as_deref(), Some("pd-a"));
    // One of three: no leader, every PD path answers 503 "no leader".
    w.stop(Component::Pd, "pd-c");
    assert_eq!(w.c().leader(), None);
    w.ticks(3);
    let err = w.c().pd_available().expect_err("no quorum");
    assert_eq!((err.status, err.message.as_str()), (503, "no leader"));
    assert_eq!(w.c().members_info().members.len(), 3);
    let safety = w.safety();
    let spans = safety["pd_without_leader"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(spans.len(), 1, "{safety:#}");
    assert_eq!(spans[0]["ongoing"], true);
    assert_eq!(spans[0]["ticks"], 3);
    // A member back: a majority again, a leader on the next tick.
    w.pd(&["pd-c"]);
    assert_eq!(w.c().leader(), None);
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-a"));
    let safety = w.safety();
    assert_eq!(safety["pd_without_leader"][0]["ongoing"], false);
    assert_eq!(safety["pd_without_leader"][0]["ticks"], 4);
    assert!(safety["data_loss"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn a_stopped_leader_is_replaced_after_one_tick_without_a_leader() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tick();
    w.stop(Component::Pd, "pd-a");
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    let safety = w.safety();
    let span = &safety["pd_without_leader"][0];
    assert_eq!(
        (span["ongoing"].clone(), span["ticks"].clone()),
        (false.into(), 1.into())
    );
}

#[test]
fn the_member_faults_take_a_member_out_or_the_whole_quorum() {
    let mut w = World::new();
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tick();
    let now = w.now;
    w.c().set_fault(&Fault::PdMemberDown("pd-a".into()), now);
    assert_eq!(
        w.c().leader(),
        None,
        "a member that does not serve does not lead"
    );
    w.tick();
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    assert_eq!(w.health()[0], ("pd-a".into(), false));
    let err = w.c().transfer_leader("pd-a", now).expect_err("not serving");
    assert_eq!(err.status, 500);
    w.c().set_fault(&Fault::PdMemberDown("pd-c".into()), now);
    w.tick();
    assert_eq!(w.c().leader(), None, "one of three");
    w.c().clear_all_faults(now);
    w.tick();
    assert!(w.c().leader().is_some());
    w.c().set_fault(&Fault::PdQuorumLost, now);
    w.ticks(2);
    assert_eq!(w.c().pd_available().map_err(|e| e.status), Err(503));
    w.c().clear_fault(&Fault::PdQuorumLost, now);
    w.tick();
    assert!(w.c().pd_available().is_ok());
    // `member-unhealthy` only reports it: the member still votes and may lead.
    w.c().set_fault(&Fault::MemberUnhealthy("pd-b".into()), now);
    w.c().set_fault(&Fault::MemberUnhealthy("pd-c".into()), now);
    w.tick();
    assert!(w.c().pd_available().is_ok());
}

#[test]
fn a_removed_member_rejoins_only_on_a_fresh_volume() {
    let mut w = World::new();
    w.on_volume(Component::Pd, "pd-a", "uid-pd-a", "vol-a");
    w.on_volume(Component::Pd, "pd-b", "uid-pd-b", "vol-b");
    w.on_volume(Component::Pd, "pd-c", "uid-pd-c", "vol-c");
    w.tick();
    let now = w.now;
    assert!(w.c().delete_member_by_name("pd-c", now).is_ok());
    // A new Pod on the old volume: etcd refuses the removed member's data.
    w.stop(Component::Pd, "pd-c");
    w.run(pod(Component::Pd, "pd-c", "uid-pd-c-2"));
    w.ticks(2);
    assert_eq!(w.c().members_info().members.len(), 2);
    // Its PVC deleted after the removal: not a data loss. A fresh volume: a new member.
    w.pvc("data-pd-c", "vol-c", true);
    w.pvc("data-pd-c", "vol-c-2", false);
    w.run(pod(Component::Pd, "pd-c", "uid-pd-c-3"));
    assert_eq!(w.c().members_info().members.len(), 3);
    assert!(w.kinds().contains(&"member_added".to_owned()));
    assert!(
        w.safety()["data_loss"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    // Deleting a listed member's volume is a data loss; the member never serves again.
    w.pvc("data-pd-b", "vol-b", true);
    let safety = w.safety();
    assert_eq!(
        safety["data_loss"][0]["kind"], "pd_member_volume_deleted",
        "{safety:#}"
    );
    assert_eq!(safety["data_loss"][0]["name"], "pd-b");
    assert_eq!(w.health()[1], ("pd-b".into(), false));
}

#[test]
fn a_store_is_its_volume_a_new_volume_at_its_address_is_refused() {
    let mut w = World::new();
    w.pd(&["pd-a"]);
    for (kv, vol) in [("kv-a", "v-a"), ("kv-b", "v-b"), ("kv-c", "v-c")] {
        w.on_volume(Component::Tikv, kv, &format!("uid-{kv}"), vol);
    }
    w.tick();
    // A new Pod on the same volume is the same store.
    w.stop(Component::Tikv, "kv-a");
    w.run(pod(Component::Tikv, "kv-a", "uid-kv-a-2"));
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Up");
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1, 2], now).count, 3);
    // Its PVC deleted by hand with its Pod: the data is gone; the Pod on a new PVC is refused.
    let mut gone = pod(Component::Tikv, "kv-a", "uid-kv-a-2");
    gone.running = false;
    gone.deleting = true;
    w.run(gone);
    w.pvc("data-kv-a", "v-a", true);
    w.sim.pod_gone(NS, "kv-a", w.now);
    w.on_volume(Component::Tikv, "kv-a", "uid-kv-a-3", "v-a-2");
    w.tick();
    let now = w.now;
    assert_eq!(
        w.c().stores_info(&[0, 1, 2], now).count,
        3,
        "registers nothing"
    );
    assert_eq!(w.store(1).store.state_name, "Down");
    assert!(w.c().tikv_status("kv-a").is_none());
    let kinds = w.kinds();
    assert!(kinds.contains(&"store_refused".to_owned()), "{kinds:?}");
    let safety = w.safety();
    let loss = &safety["data_loss"][0];
    assert_eq!(loss["kind"], "store_volume_deleted", "{safety:#}");
    assert_eq!(loss["store_id"], 1);
    assert_eq!(loss["claim"], "data-kv-a");
    // One replica of three lost: the regions keep a leader, nothing else is lost.
    w.ticks(2);
    assert_eq!(w.safety()["data_loss"].as_array().map(Vec::len), Some(1));
    // A second store's data gone: every region lost a majority for good.
    w.pvc("data-kv-b", "v-b", true);
    w.tick();
    let safety = w.safety();
    let losses = safety["data_loss"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        losses.iter().filter(|l| l["kind"] == "region_lost").count(),
        30,
        "{safety:#}"
    );
    assert_eq!(w.c().state(now).regions.without_leader, 30);
}

#[test]
fn the_volume_of_a_tombstone_store_may_go() {
    let mut w = World::new();
    w.pd(&["pd-a"]);
    for (kv, vol) in [
        ("kv-a", "v-a"),
        ("kv-b", "v-b"),
        ("kv-c", "v-c"),
        ("kv-d", "v-d"),
    ] {
        w.on_volume(Component::Tikv, kv, &format!("uid-{kv}"), vol);
    }
    w.tick();
    let now = w.now;
    assert!(w.c().delete_store(4, now).is_ok());
    w.ticks(30);
    assert_eq!(w.store(4).store.state_name, "Tombstone");
    w.pvc("data-kv-d", "v-d", true);
    assert!(
        w.safety()["data_loss"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn regions_lose_their_leader_without_a_majority_and_elect_one_a_tick_later() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    // One store of three: its regions are without a leader for one tick.
    w.stop(Component::Tikv, "kv-a");
    let now = w.now;
    assert_eq!(w.c().state(now).regions.without_leader, 10);
    w.tick();
    assert_eq!(w.store(1).status.leader_count, 0);
    w.tick();
    let now = w.now;
    assert_eq!(w.c().state(now).regions.without_leader, 0);
    let safety = w.safety();
    let spans = safety["regions_without_leader"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(spans.len(), 10, "{safety:#}");
    assert!(
        spans
            .iter()
            .all(|s| s["ticks"] == 2 && s["ongoing"] == false),
        "{safety:#}"
    );
    // Two of three: no region has a leader until one comes back.
    w.stop(Component::Tikv, "kv-b");
    w.ticks(5);
    let now = w.now;
    assert_eq!(w.c().state(now).regions.without_leader, 30);
    let regions = w.c().regions_info(now);
    assert!(regions.regions.iter().all(|r| r.leader.store_id == 0));
    w.tikv(&["kv-b"]);
    w.ticks(2);
    let now = w.now;
    assert_eq!(w.c().state(now).regions.without_leader, 0);
    let safety = w.safety();
    let long = safety["regions_without_leader"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["ticks"].as_u64() >= Some(5)).count());
    assert_eq!(long, Some(30), "{safety:#}");
    assert!(safety["data_loss"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn a_lost_node_stops_every_pod_on_it_until_it_is_back() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    // The test Pods run on `node-{instance}`.
    w.c().set_fault(&Fault::NodeLost("node-kv-b".into()), now);
    w.c().set_fault(&Fault::NodeLost("node-pd-a".into()), now);
    assert!(w.c().tikv_status("kv-b").is_none());
    w.tick();
    assert_eq!(w.store(2).store.state_name, "Disconnected");
    assert_eq!(w.c().leader().as_deref(), Some("pd-b"));
    w.c().clear_fault(&Fault::NodeLost("node-kv-b".into()), now);
    w.tick();
    assert_eq!(w.store(2).store.state_name, "Up");
    assert!(w.c().tikv_status("kv-b").is_some());
}

#[test]
fn slow_drain_moves_one_leader_per_few_ticks() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let now = w.now;
    w.c()
        .set_fault(&Fault::SlowDrain(StoreRef::Instance("kv-b".into())), now);
    assert!(w.c().add_scheduler(EVICT_LEADER, Some(2), now).is_ok());
    let before = w.store(2).status.leader_count;
    w.ticks(usize::try_from(SLOW_DRAIN_TICKS * 3).unwrap_or(15));
    let after = w.store(2).status.leader_count;
    assert_eq!(before - after, 3, "{before} → {after}");
}

#[test]
fn with_a_start_delay_pods_serve_only_after_it() {
    let mut w = World::with(SimConfig {
        start_delay: Duration::from_secs(2),
        ..SimConfig::default()
    });
    w.pd(&["pd-a", "pd-b", "pd-c"]);
    w.tikv(&["kv-a", "kv-b", "kv-c"]);
    w.tick();
    assert_eq!(w.c().leader(), None, "members listed, none serving yet");
    assert_eq!(w.c().members_info().members.len(), 3);
    assert!(w.c().tikv_status("kv-a").is_none());
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1, 2], now).count, 0);
    w.advance(Duration::from_secs(2));
    w.ticks(2);
    assert!(w.c().leader().is_some());
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1, 2], now).count, 3);
    // A restarted store is Disconnected until it has run for the delay again.
    w.stop(Component::Tikv, "kv-a");
    w.run(pod(Component::Tikv, "kv-a", "uid-kv-a-2"));
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Disconnected");
    w.advance(Duration::from_secs(2));
    w.tick();
    assert_eq!(w.store(1).store.state_name, "Up");
}

#[test]
fn a_replaced_peer_goes_to_a_zone_the_region_does_not_use_yet() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    w.tikv(&["kv-d", "kv-e"]);
    // Balancing spreads the regions over the five stores first.
    w.ticks(30);
    let now = w.now;
    let zones = [(1, "z1"), (2, "z2"), (3, "z3"), (4, "z1"), (5, "z4")];
    for (id, zone) in zones {
        let labels = BTreeMap::from([("zone".to_owned(), zone.to_owned())]);
        assert!(w.c().set_store_labels(id, labels, false, now).is_ok());
    }
    assert!(
        w.c()
            .remove_scheduler("balance-region-scheduler", now)
            .is_ok()
    );
    let zone_of = |id: u64| zones.iter().find(|(s, _)| *s == id).map(|(_, z)| *z);
    let shared_zones = |w: &mut World| {
        let now = w.now;
        w.c()
            .regions_info(now)
            .regions
            .iter()
            .filter(|r| {
                let mut used: Vec<&str> =
                    r.peers.iter().filter_map(|p| zone_of(p.store_id)).collect();
                used.sort_unstable();
                let n = used.len();
                used.dedup();
                used.len() < n
            })
            .count()
    };
    let before = shared_zones(&mut w);
    assert!(w.c().delete_store(3, now).is_ok());
    w.ticks(40);
    assert_eq!(w.store(3).store.state_name, "Tombstone");
    // Peers leaving z3 went to z4 (store 5) rather than into z1 next to a peer already there.
    assert_eq!(shared_zones(&mut w), before);
}

/// `pod` with its config in the ConfigMap of its name, advertising `host` (the real component's
/// keys and forms).
fn configured(component: Component, instance: &str, host: &str) -> (PodObservation, String) {
    let mut p = pod(component, instance, &format!("uid-{instance}"));
    p.config_map = Some(instance.to_owned());
    let config = match component {
        Component::Pd => format!(
            "name = \"{instance}\"\nadvertise-client-urls = \"http://{host}:2379\"\nadvertise-peer-urls = \"http://{host}:2380\"\n"
        ),
        Component::Tikv => format!(
            "[server]\nadvertise-addr = \"{host}:20160\"\nadvertise-status-addr = \"{host}:20180\"\n"
        ),
        Component::Tidb => format!("advertise-address = \"{host}\"\n"),
        Component::Tiflash => format!(
            "[flash.proxy]\nadvertise-addr = \"{host}:20170\"\nadvertise-status-addr = \"{host}:20292\"\n"
        ),
        Component::Ticdc => format!("advertise-addr = \"{host}:8300\"\n"),
    };
    (p, config)
}

fn fqdn_world(domain: &str) -> World {
    World::with(SimConfig {
        cluster_domain: domain.to_owned(),
        ..SimConfig::default()
    })
}

#[test]
fn members_and_stores_are_listed_at_the_addresses_their_config_advertises() {
    let mut w = fqdn_world("east.example");
    for (component, names) in [
        (Component::Pd, ["pd-a", "pd-b", "pd-c"]),
        (Component::Tikv, ["kv-a", "kv-b", "kv-c"]),
    ] {
        for n in names {
            let host = format!("{n}.{CL}-peer.{NS}.svc.east.example");
            let (p, config) = configured(component, n, &host);
            let now = w.now;
            w.sim.observe_config(NS, n, advertised_in(&config), now);
            w.run(p);
        }
    }
    w.ticks(2);
    assert!(w.c().leader().is_some());
    let members = w.c().members_info().members;
    assert_eq!(members.len(), 3);
    for m in &members {
        let host = format!("{}.{CL}-peer.{NS}.svc.east.example", m.name);
        assert_eq!(m.client_urls, [format!("http://{host}:2379")]);
        assert_eq!(m.peer_urls, [format!("http://{host}:2380")]);
    }
    let now = w.now;
    let stores = w.c().stores_info(&[0, 1, 2], now).stores;
    assert_eq!(stores.len(), 3);
    for s in &stores {
        assert!(
            s.store
                .address
                .ends_with(".basic-peer.db.svc.east.example:20160"),
            "{}",
            s.store.address
        );
        assert!(s.store.status_address.ends_with(".svc.east.example:20180"));
    }
}

#[test]
fn a_pod_runs_only_once_its_config_map_is_seen() {
    let mut w = fqdn_world("east.example");
    let (p, config) = configured(Component::Pd, "pd-a", "pd-a.basic-peer.db");
    w.run(p);
    w.tick();
    assert!(w.c().members_info().members.is_empty(), "no config yet");
    let now = w.now;
    w.sim
        .observe_config(NS, "pd-a", advertised_in(&config), now);
    w.tick();
    let members = w.c().members_info().members;
    assert_eq!(members.len(), 1);
    // The short form resolves in any domain.
    assert_eq!(members[0].client_urls, ["http://pd-a.basic-peer.db:2379"]);
}

#[test]
fn an_address_in_another_cluster_domain_serves_no_one() {
    let mut w = fqdn_world("east.example");
    let (p, config) = configured(
        Component::Tikv,
        "kv-a",
        "kv-a.basic-peer.db.svc.west.example",
    );
    let now = w.now;
    w.sim
        .observe_config(NS, "kv-a", advertised_in(&config), now);
    w.run(p);
    w.pd(&["pd-a"]);
    w.ticks(2);
    let now = w.now;
    assert_eq!(w.c().stores_info(&[0, 1, 2], now).count, 0);
    assert!(w.kinds().contains(&"address_unresolvable".to_owned()));
}

#[test]
fn advertised_addresses_are_read_from_each_components_config() {
    let pd = advertised_in(
        "advertise-client-urls = \"http://a:2379\"\nadvertise-peer-urls = \"http://a:2380\"\n[log]\nlevel = \"info\"\n",
    );
    assert_eq!(pd["advertise-client-urls"], "http://a:2379");
    assert_eq!(pd["advertise-peer-urls"], "http://a:2380");
    let tikv = advertised_in("[server]\nadvertise-addr = \"b:20160\"\n");
    assert_eq!(tikv["server.advertise-addr"], "b:20160");
    assert_eq!(tikv.len(), 1);
    assert_eq!(
        advertised_in("advertise-address = \"c\"\n")["advertise-address"],
        "c"
    );
    assert!(advertised_in("not toml = = =").is_empty());
    assert_eq!(host_of_address("http://a.b.svc.x:2379"), "a.b.svc.x");
    assert_eq!(host_of_address("a.b:20160"), "a.b");
}

#[test]
fn a_flapping_store_is_down_then_up_over_and_over_until_cleared() {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    let flap = Fault::StoreFlap(StoreRef::Instance("kv-a".into()));
    let now = w.now;
    w.c().set_fault(&flap, now);
    // Down at once, for the down time (8 s by default), then Up for the up time (3 s).
    assert_eq!(w.store(1).store.state_name, "Down");
    assert!(w.c().tikv_status("kv-a").is_none());
    w.ticks(15);
    assert_eq!(w.store(1).store.state_name, "Down");
    w.ticks(2);
    assert_eq!(w.store(1).store.state_name, "Up");
    assert!(w.c().tikv_status("kv-a").is_some());
    w.ticks(6);
    assert_eq!(w.store(1).store.state_name, "Down");
    let flapped = w.kinds().iter().filter(|k| *k == "store_flapped").count();
    assert_eq!(flapped, 2, "one event per change of phase");
    // Cleared: Up for good, and the other stores never flapped.
    let now = w.now;
    w.c().clear_fault(&flap, now);
    w.ticks(30);
    assert_eq!(w.store(1).store.state_name, "Up");
    assert_eq!(w.store(2).store.state_name, "Up");
    assert_eq!(
        Fault::parse("store-flap", Some("kv-a")).expect("parses"),
        flap
    );
}

/// A Pod of the second Kubernetes cluster (namespace `db2`, cluster `east`, domain
/// `cluster-2.local`), its config advertising its fully qualified host, with `join` for PD.
fn remote(component: Component, instance: &str, join: Option<&str>) -> (PodObservation, String) {
    let host = format!("{instance}.east-peer.db2.svc.cluster-2.local");
    let (mut p, mut config) = configured(component, instance, &host);
    p.namespace = "db2".to_owned();
    p.cluster = "east".to_owned();
    p.subdomain = Some("east-peer".to_owned());
    p.domain = Some("cluster-2.local".to_owned());
    if let Some(join) = join {
        config.push_str(&format!("join = \"{join}\"\n"));
    }
    (p, config)
}

/// The first cluster (`db/basic`, domain `cluster-1.local`): PD a, b, c and TiKV a, b, c.
fn first_cluster() -> World {
    let mut w = fqdn_world("cluster-1.local");
    for (component, names) in [
        (Component::Pd, ["pd-a", "pd-b", "pd-c"]),
        (Component::Tikv, ["kv-a", "kv-b", "kv-c"]),
    ] {
        for n in names {
            let host = format!("{n}.{CL}-peer.{NS}.svc.cluster-1.local");
            let (p, config) = configured(component, n, &host);
            let now = w.now;
            w.sim.observe_config(NS, n, advertised_in(&config), now);
            w.run(p);
        }
    }
    w.ticks(2);
    w
}

#[test]
fn a_pd_member_joining_another_kubernetes_clusters_pd_makes_one_pd_cluster() {
    let mut w = first_cluster();
    let join = "http://pd-a.basic-peer.db.svc.cluster-1.local:2379";
    // TiDB of the joining side may run before its PD: it moves into the one PD cluster.
    let (tidb, config) = remote(Component::Tidb, "db-x", None);
    let now = w.now;
    w.sim
        .observe_config("db2", "db-x", advertised_in(&config), now);
    w.run(tidb);
    for (component, name, join) in [
        (Component::Pd, "pd-x", Some(join)),
        (Component::Pd, "pd-y", Some(join)),
        (Component::Tikv, "kv-x", None),
    ] {
        let (p, config) = remote(component, name, join);
        let now = w.now;
        w.sim
            .observe_config("db2", name, advertised_in(&config), now);
        w.run(p);
    }
    w.ticks(2);
    // Both sides' API is the same PD cluster: 5 members, 4 stores.
    let members = w.c().members_info().members;
    assert_eq!(members.len(), 5, "{members:?}");
    let now = w.now;
    let joined = w.sim.cluster_mut("db2", "east").expect("aliased");
    assert_eq!(joined.key(), &ClusterKey::new(NS, CL));
    assert_eq!(joined.members_info().members.len(), 5);
    assert_eq!(joined.stores_info(&[0, 1, 2], now).count, 4);
    assert!(joined.raw_pods.contains_key("db-x"), "TiDB moved along");
    // A client Service name of the other cluster resolves as well (the test Pods' peer
    // Service is `basic-peer`, so their client Service is `basic`), in its own domain only.
    assert_eq!(
        w.sim.cluster_of_host("basic.db.svc.cluster-1.local"),
        Some(ClusterKey::new(NS, CL))
    );
    assert_eq!(w.sim.cluster_of_host("basic.db.svc.cluster-2.local"), None);
}

#[test]
fn a_join_that_names_no_pd_is_refused() {
    let mut w = first_cluster();
    let (p, config) = remote(
        Component::Pd,
        "pd-x",
        Some("http://nowhere-pd.db.svc.cluster-9.local:2379"),
    );
    let now = w.now;
    w.sim
        .observe_config("db2", "pd-x", advertised_in(&config), now);
    w.run(p.clone());
    w.ticks(2);
    assert_eq!(
        w.sim.join_target(&PodObservation {
            join: Some("http://nowhere-pd.db.svc.cluster-9.local:2379".to_owned()),
            ..p
        }),
        JoinTarget::Nothing("http://nowhere-pd.db.svc.cluster-9.local:2379".to_owned())
    );
    // Not a member anywhere: the first cluster keeps its 3, and no second PD cluster formed.
    assert_eq!(w.c().members_info().members.len(), 3);
    let alone = w.sim.cluster("db2", "east");
    assert!(alone.is_none_or(|c| c.members_info().members.is_empty()));
}

#[test]
fn every_running_tidb_is_listed_by_any_of_them() {
    let mut w = World::new();
    w.run(pod(Component::Tidb, "db-0", "uid-db-0"));
    w.run(pod(Component::Tidb, "db-1", "uid-db-1"));
    let all = w.c().tidb_all_servers("db-1").expect("it serves");
    assert_eq!(all.servers_num, 2);
    assert!(all.is_all_server_version_consistent);
    let hosts: Vec<&str> = all
        .all_servers_info
        .values()
        .map(|s| s.ip.as_str())
        .collect();
    assert_eq!(hosts.len(), 2);
    assert!(
        all.all_servers_info
            .values()
            .all(|s| s.listening_port == 4000)
    );
    w.stop(Component::Tidb, "db-0");
    assert_eq!(
        w.c().tidb_all_servers("db-1").map(|a| a.servers_num),
        Some(1)
    );
    assert!(w.c().tidb_all_servers("db-0").is_none());
}
