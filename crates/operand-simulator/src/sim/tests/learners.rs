//! TiFlash learners: placed by the largest TiFlash rule count, moved off an Offline TiFlash store
//! before it goes Tombstone, and kept on it while no other TiFlash store can take them.

use super::*;

fn rule(id: &str, count: u64) -> serde_json::Value {
    serde_json::json!({"group_id": "tiflash", "id": id, "role": "learner", "count": count,
                       "label_constraints": [{"key": "engine", "op": "in", "values": ["tiflash"]}]})
}

/// Three TiKV stores (IDs 1 to 3) and the TiFlash stores `flash` (IDs from 4 on), ticked until
/// Regions exist.
fn with_tiflash(flash: &[&str]) -> World {
    let mut w = basic_cluster(&["kv-a", "kv-b", "kv-c"]);
    for name in flash {
        w.run(pod(Component::Tiflash, name, &format!("uid-{name}")));
    }
    w.ticks(5);
    w
}

/// The learners of every Region, by Region: the stores they are on.
fn learners(w: &mut World) -> Vec<Vec<u64>> {
    let now = w.now;
    w.c()
        .regions_info(now)
        .regions
        .iter()
        .map(|r| {
            r.peers
                .iter()
                .filter(|p| p.is_learner)
                .map(|p| p.store_id)
                .collect()
        })
        .collect()
}

#[test]
fn learners_follow_the_largest_rule_count_and_leave_an_offline_store_before_its_tombstone() {
    let mut w = with_tiflash(&["flash-a", "flash-b", "flash-c"]);
    assert!(
        learners(&mut w).iter().all(Vec::is_empty),
        "no rule, no learner"
    );
    w.c().set_rule(rule("table-1-r", 1)).unwrap();
    w.c().set_rule(rule("table-2-r", 2)).unwrap();
    w.ticks(40);
    let placed = learners(&mut w);
    assert!(!placed.is_empty());
    for stores in &placed {
        let distinct: std::collections::BTreeSet<&u64> = stores.iter().collect();
        assert_eq!((stores.len(), distinct.len()), (2, 2), "{stores:?}");
        assert!(stores.iter().all(|s| (4..=6).contains(s)), "{stores:?}");
    }
    let total = placed.len() * 2;
    let counts: Vec<usize> = (4..=6).map(|id| w.store(id).status.region_count).collect();
    assert_eq!(counts.iter().sum::<usize>(), total, "{counts:?}");
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    // TiKV's voters are where they were.
    for id in 1..=3 {
        assert_eq!(w.store(id).status.region_count, placed.len());
    }

    let now = w.now;
    w.c().delete_store(4, now).unwrap();
    assert_eq!(w.store(4).store.state_name, "Offline");
    w.ticks(40);
    assert_eq!(w.store(4).store.state_name, "Tombstone");
    assert!(
        learners(&mut w)
            .iter()
            .all(|s| s.len() == 2 && !s.contains(&4)),
        "every Region kept its two learners on the stores that stay"
    );
}

#[test]
fn an_offline_tiflash_store_whose_learners_have_nowhere_to_go_stays_offline_until_the_count_drops()
{
    let mut w = with_tiflash(&["flash-a", "flash-b"]);
    w.c().set_rule(rule("table-1-r", 2)).unwrap();
    w.ticks(40);
    let regions = learners(&mut w).len();
    assert_eq!(w.store(4).status.region_count, regions);
    let now = w.now;
    w.c().delete_store(4, now).unwrap();
    w.ticks(40);
    // PD cannot place a second learner anywhere else: the removal hangs, as in PD.
    assert_eq!(w.store(4).store.state_name, "Offline");
    assert_eq!(w.store(4).status.region_count, regions);
    w.c().set_rule(rule("table-1-r", 1)).unwrap();
    w.ticks(3);
    assert_eq!(w.store(4).store.state_name, "Tombstone");
    assert!(learners(&mut w).iter().all(|s| s == &[5]));
}

#[test]
fn tiflash_reports_its_store_idle_while_it_starts_running_once_it_serves_and_ready_under_the_fault()
{
    let mut w = World::with(SimConfig {
        start_delay: Duration::from_secs(2),
        ..SimConfig::default()
    });
    w.run(pod(Component::Tiflash, "flash-a", "uid-flash-a"));
    w.tick();
    assert_eq!(w.c().tiflash_store_status("flash-a"), Some("Idle"));
    w.advance(Duration::from_secs(2));
    w.ticks(2);
    assert_eq!(w.c().tiflash_store_status("flash-a"), Some("Running"));

    let fault = Fault::parse("tiflash-not-running", Some("flash-a")).expect("parses");
    let now = w.now;
    w.c().set_fault(&fault, now);
    assert_eq!(w.c().tiflash_store_status("flash-a"), Some("Ready"));
    w.c().clear_fault(&fault, now);
    assert_eq!(w.c().tiflash_store_status("flash-a"), Some("Running"));

    w.stop(Component::Tiflash, "flash-a");
    assert_eq!(w.c().tiflash_store_status("flash-a"), None);
    assert_eq!(w.c().tiflash_store_status("flash-unknown"), None);
}
