//! Tests of the store decisions: lookups, restarts, removals and the scale-in guard, as tables.

use pd_client::{Store, StoreLabel, StoreStatus};

use super::*;

fn store(id: u64, address: &str, state: &str, leaders: i64) -> StoreInfo {
    StoreInfo {
        store: Store {
            id,
            address: address.into(),
            state_name: state.into(),
            node_state: Some(
                match state {
                    "Offline" => "Removing",
                    "Tombstone" => "Removed",
                    _ => "Serving",
                }
                .into(),
            ),
            ..Store::default()
        },
        status: StoreStatus {
            leader_count: leaders,
            region_count: 20,
            ..StoreStatus::default()
        },
    }
}

fn input<'a>(store: Option<&'a StoreInfo>, down: &'a [u64]) -> RestartInput<'a> {
    RestartInput {
        store: store.map_or(StoreLookup::NeverRegistered, StoreLookup::Listed),
        evicting: false,
        down_peer_stores: down,
        other_up_stores: 2,
        eviction_started_ms: None,
        now_ms: 100_000,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn the_live_store_at_the_address_wins_over_a_removed_one() {
    let stores = StoresInfo {
        count: 3,
        stores: vec![
            store(1, "a:20160", "Tombstone", 0),
            store(4, "a:20160", "Up", 3),
            store(2, "b:20160", "Up", 3),
        ],
    };
    assert_eq!(find_store(&stores, "a:20160").unwrap().store.id, 4);
    assert!(find_store(&stores, "c:20160").is_none());
}

#[test]
fn states_follow_the_node_state_or_the_store_state() {
    assert_eq!(instance_state(&store(1, "a", "Up", 0)), "Serving");
    assert_eq!(instance_state(&store(1, "a", "Offline", 0)), "Removing");
    assert_eq!(instance_state(&store(1, "a", "Tombstone", 0)), "Removed");
    let mut preparing = store(1, "a", "Up", 0);
    preparing.store.node_state = None;
    assert_eq!(instance_state(&preparing), "Preparing");
    preparing.store.state_name = "Tombstone".into();
    assert_eq!(instance_state(&preparing), "Removed");
    assert!(is_removed(&preparing));
}

#[test]
fn labels_come_from_the_node_for_pds_location_labels() {
    let node: BTreeMap<String, String> = [
        (NODE_LABEL_ZONE, "zone-a"),
        (NODE_LABEL_HOSTNAME, "node-1"),
        ("rack", "r7"),
        ("unrelated", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let keys: Vec<String> = ["zone", "rack", "host", "region", "engine"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let desired = desired_labels(&keys, &node);
    assert_eq!(
        desired,
        [("host", "node-1"), ("rack", "r7"), ("zone", "zone-a")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    );
    let mut info = store(1, "a", "Up", 0);
    info.store.labels = vec![
        StoreLabel {
            key: "zone".into(),
            value: "zone-a".into(),
        },
        StoreLabel {
            key: "host".into(),
            value: "old".into(),
        },
    ];
    let missing = labels_to_set(&info, &desired);
    assert_eq!(missing.keys().collect::<Vec<_>>(), ["host", "rack"]);
    assert_eq!(missing["host"], "node-1");
}

#[test]
fn placement_labels_name_the_group_and_mark_exclusive_stores() {
    let plain = placement_labels("ns", Some("kv"), false);
    assert_eq!(
        plain.into_iter().collect::<Vec<_>>(),
        [("k/tikvgroup".to_owned(), "ns.kv".to_owned())]
    );
    let exclusive = placement_labels("ns", Some("kv"), true);
    assert_eq!(
        exclusive.get("$k/exclusive").map(String::as_str),
        Some("true")
    );
    assert_eq!(exclusive.len(), 2);
    assert!(placement_labels("ns", None, true).is_empty());
    assert!(placement_labels("ns", Some(""), true).is_empty());

    let mut info = store(1, "kv-0:20160", "Up", 0);
    assert!(!stale_exclusive_label(&info, false));
    info.store.labels = vec![StoreLabel {
        key: "$k/exclusive".into(),
        value: "true".into(),
    }];
    assert!(stale_exclusive_label(&info, false));
    assert!(!stale_exclusive_label(&info, true));
}

#[test]
fn the_grace_period_grows_with_regions_within_bounds() {
    assert_eq!(restart_grace_period(0, None), 30);
    assert_eq!(restart_grace_period(5_000, Some(30)), 80);
    assert_eq!(restart_grace_period(10_000_000, None), 600);
    assert_eq!(restart_grace_period(100, Some(120)), 120);
    assert_eq!(restart_grace_period(-5, None), 30);
}

#[test]
fn a_restart_evicts_then_waits_then_goes() {
    let up = store(2, "a", "Up", 5);
    assert_eq!(
        restart_step(&input(Some(&up), &[])),
        RestartStep::StartEviction
    );
    let mut started = input(Some(&up), &[]);
    started.eviction_started_ms = Some(95_000);
    assert_eq!(restart_step(&started), RestartStep::AddScheduler);
    started.evicting = true;
    assert_eq!(
        restart_step(&started),
        RestartStep::WaitForLeaders {
            leaders: 5,
            waited: Duration::from_secs(5)
        }
    );
    let drained = store(2, "a", "Up", 0);
    started.store = StoreLookup::Listed(&drained);
    assert_eq!(
        restart_step(&started),
        RestartStep::Restart(RestartCause::LeadersEvicted)
    );
}

#[test]
fn a_store_alone_restarts_without_an_eviction_that_could_never_finish() {
    let up = store(1, "a", "Up", 30);
    let mut alone = input(Some(&up), &[]);
    alone.other_up_stores = 0;
    assert_eq!(
        restart_step(&alone),
        RestartStep::Restart(RestartCause::NoOtherStore)
    );
    // Down peers elsewhere still come first.
    let mut blocked = alone.clone();
    blocked.down_peer_stores = &[2];
    assert_eq!(
        restart_step(&blocked),
        RestartStep::BlockedByDownPeers(vec![2])
    );
}

#[test]
fn a_wait_for_leaders_never_lasts_past_the_timeout() {
    let stuck = store(2, "a", "Up", 7);
    let mut waiting = input(Some(&stuck), &[]);
    waiting.evicting = true;
    waiting.eviction_started_ms = Some(90_000);
    assert_eq!(
        restart_step(&waiting),
        RestartStep::Restart(RestartCause::TimedOut { leaders: 7 })
    );
}

#[test]
fn down_peers_elsewhere_block_without_a_timeout_but_our_own_do_not() {
    let up = store(2, "a", "Up", 5);
    let mut blocked = input(Some(&up), &[2, 3]);
    blocked.evicting = true;
    blocked.eviction_started_ms = Some(0);
    assert_eq!(
        restart_step(&blocked),
        RestartStep::BlockedByDownPeers(vec![3])
    );
    assert_eq!(
        restart_step(&input(Some(&up), &[2])),
        RestartStep::StartEviction
    );
}

#[test]
fn a_store_that_does_not_serve_restarts_at_once_and_one_pd_does_not_list_never_does() {
    assert!(matches!(
        restart_step(&input(None, &[3])),
        RestartStep::Restart(RestartCause::NotServing(_))
    ));
    let mut unlisted = input(None, &[]);
    unlisted.store = StoreLookup::Unlisted(2);
    assert_eq!(restart_step(&unlisted), RestartStep::StoreNotFound(2));
    let down = store(2, "a", "Disconnected", 4);
    assert!(matches!(
        restart_step(&input(Some(&down), &[3])),
        RestartStep::Restart(RestartCause::NotServing(m)) if m.contains("Disconnected")
    ));
}

#[test]
fn scale_in_never_leaves_fewer_up_stores_than_max_replicas() {
    let stores = StoresInfo {
        count: 4,
        stores: vec![
            store(1, "a", "Up", 0),
            store(2, "b", "Up", 0),
            store(3, "c", "Up", 0),
            store(4, "d", "Down", 0),
        ],
    };
    let listed = |id| StoreLookup::Listed(stores.by_id(id).unwrap());
    let refusal = scale_in_refusal(&stores, listed(3), 0, 3).unwrap();
    assert!(
        refusal.contains("leave 2 Up stores") && refusal.contains("max-replicas 3"),
        "{refusal}"
    );
    // Up TiFlash stores do not make up for a TiKV store taken out.
    let mut with_tiflash = stores.clone();
    let mut tiflash = store(7, "f:20170", "Up", 0);
    tiflash.store.labels = vec![StoreLabel {
        key: "engine".into(),
        value: "tiflash".into(),
    }];
    with_tiflash.stores.push(tiflash.clone());
    let listed_in = |id| StoreLookup::Listed(with_tiflash.by_id(id).unwrap());
    assert!(scale_in_refusal(&with_tiflash, listed_in(3), 0, 3).is_some());
    assert!(is_tiflash(&tiflash) && !is_tiflash(stores.by_id(3).unwrap()));
    assert!(scale_in_refusal(&stores, listed(3), 0, 2).is_none());
    // A store that is down already does not lower the count.
    assert!(scale_in_refusal(&stores, listed(4), 0, 3).is_none());
    assert!(scale_in_refusal(&stores, StoreLookup::NeverRegistered, 0, 3).is_none());
    // A store PD does not list is never waved through.
    let refusal = scale_in_refusal(&stores, StoreLookup::Unlisted(9), 0, 1).unwrap();
    assert!(refusal.contains("store 9"), "{refusal}");
    assert_eq!(describe_stores(&[2, 9], Some(&stores)), "2 (b), 9");
}

#[test]
fn a_scale_in_that_could_not_finish_is_refused_before_its_first_store_goes() {
    // Six Up stores, three of them (4, 5, 6) of a side that exits: 3 left, max-replicas 3.
    let stores = StoresInfo {
        count: 6,
        stores: (1..=6)
            .map(|id| store(id, &format!("s{id}"), "Up", 0))
            .collect(),
    };
    let listed = |id| StoreLookup::Listed(stores.by_id(id).unwrap());
    assert!(scale_in_refusal(&stores, listed(4), 2, 3).is_none());
    // With max-replicas 4 the whole exit would leave 3: refused at its first store, though
    // that store alone could go (5 left).
    assert!(scale_in_refusal(&stores, listed(4), 0, 4).is_none());
    let refusal = scale_in_refusal(&stores, listed(4), 2, 4).unwrap();
    assert!(
        refusal.contains("the 3 stores of this scale-in")
            && refusal.contains("leave 3 Up stores")
            && refusal.contains("max-replicas 4"),
        "{refusal}"
    );
}

#[test]
fn a_store_is_found_by_its_recorded_id_whatever_its_address() {
    let stores = StoresInfo {
        count: 2,
        stores: vec![
            store(1, "moved:20160", "Up", 0),
            store(2, "b:20160", "Up", 0),
        ],
    };
    assert_eq!(
        lookup(&stores, Some(1), "a:20160")
            .info()
            .map(|s| s.store.id),
        Some(1)
    );
    // The address is used only while no ID is recorded.
    assert_eq!(
        lookup(&stores, None, "b:20160").info().map(|s| s.store.id),
        Some(2)
    );
    assert_eq!(
        lookup(&stores, None, "a:20160"),
        StoreLookup::NeverRegistered
    );
    // A recorded ID PD does not list is silence, even when another store has the address.
    assert_eq!(
        lookup(&stores, Some(7), "b:20160"),
        StoreLookup::Unlisted(7)
    );
    assert_eq!(recorded_id("12"), Some(12));
    assert_eq!(recorded_id(""), None);
    assert_eq!(recorded_id("0"), None);
}

/// A row of the removal table: name, PD's answer, Tombstone seen before, evicting, the Pod,
/// and the step wanted (`Err(reason)`: hold).
type Row<'a> = (
    &'static str,
    Result<StoreLookup<'a>, &'static str>,
    bool,
    bool,
    PodPresence,
    Result<RemovalStep, &'static str>,
);

/// Every branch of the removal machine, as a table: PD's answer, the record of a Tombstone
/// seen before, the evict-leader scheduler and the Pod in; the step out (`Err(reason)`: hold).
#[test]
fn removal_deletes_nothing_until_pd_says_tombstone_for_the_recorded_id() {
    use PodPresence::*;
    use RemovalStep::*;
    let up = store(3, "c", "Up", 2);
    let down = store(3, "c", "Down", 0);
    let offline = store(3, "c", "Offline", 0);
    let tombstone = store(3, "c", "Tombstone", 0);
    let listed = StoreLookup::Listed;
    let table: [Row<'_>; 16] = [
        (
            "PD unreachable",
            Err("refused"),
            false,
            false,
            Running,
            Err(HOLD_PD_UNREACHABLE),
        ),
        (
            "PD unreachable, Pod gone",
            Err("503"),
            true,
            false,
            Absent,
            Err(HOLD_PD_UNREACHABLE),
        ),
        (
            "recorded ID not listed",
            Ok(StoreLookup::Unlisted(3)),
            false,
            false,
            Running,
            Err(HOLD_STORE_NOT_FOUND),
        ),
        (
            "recorded ID not listed, Pod gone",
            Ok(StoreLookup::Unlisted(3)),
            false,
            false,
            Absent,
            Err(HOLD_STORE_NOT_FOUND),
        ),
        (
            "Tombstone seen before, forgotten since",
            Ok(StoreLookup::Unlisted(3)),
            true,
            false,
            Absent,
            Ok(DeletePvcs),
        ),
        (
            "evicting first",
            Ok(listed(&up)),
            false,
            true,
            Running,
            Ok(RemoveScheduler(3)),
        ),
        (
            "Up store",
            Ok(listed(&up)),
            false,
            false,
            Running,
            Ok(TakeOffline(3)),
        ),
        (
            "Down store",
            Ok(listed(&down)),
            false,
            false,
            Absent,
            Ok(TakeOffline(3)),
        ),
        (
            "Offline store",
            Ok(listed(&offline)),
            false,
            false,
            Absent,
            Ok(WaitForTombstone { id: 3, regions: 20 }),
        ),
        (
            "Tombstone, Pod runs",
            Ok(listed(&tombstone)),
            false,
            false,
            Running,
            Ok(DeletePod),
        ),
        (
            "Tombstone, Pod pending",
            Ok(listed(&tombstone)),
            false,
            false,
            NotRunning,
            Ok(DeletePod),
        ),
        (
            "Tombstone, Pod terminating",
            Ok(listed(&tombstone)),
            false,
            false,
            Terminating,
            Ok(WaitForPod),
        ),
        (
            "Tombstone, Pod gone",
            Ok(listed(&tombstone)),
            false,
            false,
            Absent,
            Ok(DeletePvcs),
        ),
        (
            "never registered, Pod runs",
            Ok(StoreLookup::NeverRegistered),
            false,
            false,
            Running,
            Err(HOLD_WAITING_FOR_STORE),
        ),
        (
            "never registered, Pod pending",
            Ok(StoreLookup::NeverRegistered),
            false,
            false,
            NotRunning,
            Ok(DeletePod),
        ),
        (
            "never registered, Pod gone",
            Ok(StoreLookup::NeverRegistered),
            false,
            false,
            Absent,
            Ok(DeletePvcs),
        ),
    ];
    for (name, pd, recorded_removed, evicting, pod, want) in table {
        let step = removal_step(&RemovalInput {
            pd,
            recorded_removed,
            evicting,
            pod,
        });
        let ok = match (&want, &step) {
            (Err(reason), Hold { reason: got, .. }) => reason == got,
            (Ok(want), step) => want == step,
            _ => false,
        };
        assert!(ok, "{name}: want {want:?}, got {step:?}");
    }
}

#[test]
fn server_labels_join_the_location_labels_which_win_on_a_shared_key() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let server = map(&[
        ("disk", "nvme"),
        ("rack", "user-rack"),
        ("engine", "tiflash"),
    ]);
    let location = map(&[("zone", "zone-a"), ("rack", "r7")]);
    assert_eq!(
        store_labels(&server, location.clone()),
        map(&[("disk", "nvme"), ("rack", "r7"), ("zone", "zone-a")]),
        "the Node's rack wins; engine is never taken from server.labels"
    );
    assert_eq!(store_labels(&BTreeMap::new(), location.clone()), location);
    assert_eq!(
        store_labels(&map(&[("disk", "nvme")]), BTreeMap::new()),
        map(&[("disk", "nvme")]),
        "without location labels in PD the user's labels are still set"
    );
}

#[test]
fn ready_comes_from_pd_by_the_recorded_id_and_silence_changes_nothing() {
    let stores = StoresInfo {
        count: 2,
        stores: vec![store(1, "a:20160", "Up", 0), store(2, "b:20160", "Down", 0)],
    };
    let listed = |id| Ok(StoreLookup::Listed(stores.by_id(id).unwrap()));
    type Case<'a> = (
        Result<StoreLookup<'a>, &'a str>,
        bool,
        Option<(bool, &'a str)>,
    );
    let cases: [Case<'_>; 7] = [
        (listed(1), false, Some((true, "Ready"))),
        (listed(2), true, Some((false, STORE_NOT_SERVING))),
        (
            Ok(StoreLookup::NeverRegistered),
            false,
            Some((false, STORE_NOT_SERVING)),
        ),
        (
            Ok(StoreLookup::Unlisted(9)),
            true,
            Some((false, HOLD_STORE_NOT_FOUND)),
        ),
        // PD silent: a ready store stays as it was, one that was not says why.
        (Err("timed out"), true, None),
        (Err("timed out"), false, Some((false, HOLD_PD_UNREACHABLE))),
        (listed(1), true, Some((true, "Ready"))),
    ];
    for (pd, was_ready, want) in cases {
        let got = ready_verdict(pd, was_ready);
        assert_eq!(
            got.as_ref().map(|(ok, reason, _)| (*ok, *reason)),
            want,
            "{pd:?} was_ready={was_ready}: {got:?}"
        );
    }
}
