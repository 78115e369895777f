//! Tests of the TiKVGroup rules: leaving and removed stores, scale-out and scale-in while PD
//! upgrades or is silent, the status, store addresses, and failover's view of Down stores.

use operator_api::conditions::reasons;
use operator_api::core::TiKVStatus;
use operator_runtime::group_reconcile::Effect;

use super::*;
use crate::scaling::{self, is_cancellable};

fn tikv(annotations: &[(&str, &str)], state: &str) -> TiKV {
    let mut tikv = TiKV::new(
        "tikv-a",
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"}, "subdomain": "tikv-tikv-peer", "version": "v8.5.2"
        }))
        .unwrap(),
    );
    tikv.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    tikv.status = Some(TiKVStatus {
        state: state.into(),
        ..TiKVStatus::default()
    });
    tikv
}

#[test]
fn a_marked_instance_counts_as_leaving_and_is_kept_until_its_store_is_removed() {
    let plain = tikv(&[], "Serving");
    assert!(!is_leaving(&plain) && !is_cancellable(&plain));
    let marked = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
    assert!(is_leaving(&marked) && is_cancellable(&marked));
    assert!(Rules::leaving(&marked));
    let removed = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removed");
    assert!(is_leaving(&removed) && !is_cancellable(&removed));
}

#[test]
fn spec_offline_counts_as_a_mark_and_is_kept_only_once_taken_over() {
    // Left by tidb-operator v2's scale-in: leaving, so no other store is picked; not yet
    // cancellable, since clearing the mark alone would not keep it.
    let mut left = tikv(&[], "Serving");
    left.spec.offline = Some(true);
    assert!(is_leaving(&left) && Rules::leaving(&left) && !is_cancellable(&left));
    // Taken over: the mark instead of the field, cancellable like any scale-in of ours.
    let mut taken = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
    taken.spec.offline = None;
    assert!(is_leaving(&taken) && is_cancellable(&taken));
    // `offline: false` is no request.
    let mut online = tikv(&[], "Serving");
    online.spec.offline = Some(false);
    assert!(!is_leaving(&online));
}

fn group() -> TiKVGroup {
    let mut group = TiKVGroup::new(
        "tikv",
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"}, "replicas": 3,
            "template": {"spec": {"version": "v8.5.2"}}
        }))
        .unwrap(),
    );
    group.metadata.namespace = Some("db".into());
    group.metadata.uid = Some("u".into());
    group
}

fn observed(gate: Result<(), String>, view: Option<Result<PdView, String>>) -> Observed {
    Observed {
        pd: None,
        view,
        gate,
        running: Some("v8.5.1".into()),
        unsupported: None,
    }
}

/// Runs `decide` over a view of `instances` with `observed`.
fn decide<T>(instances: &[TiKV], observed: &Observed, decide: impl FnOnce(&View<'_>) -> T) -> T {
    let group = group();
    let cluster = Cluster::new("c", Default::default());
    decide(&GroupView {
        group: &group,
        namespace: "db",
        cluster: &cluster,
        instances,
        update_revision: "tikv-r2",
        observed,
    })
}

fn effects(decision: Decision<TiKV>) -> Vec<Effect<TiKV>> {
    match decision {
        Decision::Act(effects) => effects,
        other => panic!("expected effects, got {other:?}"),
    }
}

#[test]
fn a_scale_out_keeps_a_store_being_removed_before_it_adds_one() {
    let marked = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
    let open = observed(Ok(()), None);
    let first = effects(
        decide(std::slice::from_ref(&marked), &open, |v| {
            Rules::create(v, "tikv-new", Topology::new(), 0)
        })
        .unwrap(),
    );
    assert!(
        matches!(&first[0], Effect::SetState { instance, key, value: None }
            if instance == "tikv-a" && *key == keys::ANNO_DEFER_DELETE),
        "{first:?}"
    );
    // The second create of the same reconcile has no store left to keep: it adds one.
    let second = effects(
        decide(std::slice::from_ref(&marked), &open, |v| {
            Rules::create(v, "tikv-new", Topology::new(), 1)
        })
        .unwrap(),
    );
    assert!(matches!(&second[..], [Effect::Create(t)] if t.name_any() == "tikv-new"));
}

#[test]
fn while_pd_upgrades_a_new_store_runs_the_running_version_or_waits() {
    let gated = observed(Err("PD first".into()), None);
    let mut running = tikv(&[], "Serving");
    running.spec.template.common.version = "v8.5.1".into();
    let made = effects(
        decide(std::slice::from_ref(&running), &gated, |v| {
            Rules::create(v, "tikv-new", Topology::new(), 0)
        })
        .unwrap(),
    );
    assert!(
        matches!(&made[..], [Effect::Create(t)] if t.spec.template.common.version == "v8.5.1"),
        "{made:?}"
    );
    // Nothing runs yet that a new store could copy: the create waits and counts as held.
    let held = decide(&[], &gated, |v| {
        Rules::create(v, "tikv-new", Topology::new(), 0)
    });
    assert!(matches!(held, Ok(Decision::Hold)));
    // Version updates wait for the gate.
    let update = decide(std::slice::from_ref(&running), &gated, |v| {
        Rules::update(v, &running)
    });
    assert!(matches!(update, Ok(Decision::Skip)));
}

#[test]
fn a_scale_in_without_a_pd_answer_is_refused_and_marks_nothing() {
    let victim = tikv(&[], "Serving");
    for (view, reason) in [
        (None, REASON_PD_NOT_FOUND),
        (Some(Err("timed out".to_string())), REASON_PD_UNREACHABLE),
    ] {
        let observed = observed(Ok(()), view);
        let decision = decide(std::slice::from_ref(&victim), &observed, |v| {
            Rules::delete(v, &victim)
        })
        .unwrap();
        assert!(
            matches!(&decision, Decision::Refuse { reason: r, .. } if *r == reason),
            "{decision:?}"
        );
    }
    // PD answers and has no store yet: the instance is marked.
    let empty = PdView {
        not_bootstrapped: true,
        ..PdView::default()
    };
    let observed = observed(Ok(()), Some(Ok(empty)));
    let marked = effects(
        decide(std::slice::from_ref(&victim), &observed, |v| {
            Rules::delete(v, &victim)
        })
        .unwrap(),
    );
    assert!(matches!(
        &marked[0],
        Effect::SetState { value: Some(_), .. }
    ));
}

#[test]
fn the_status_names_the_gate_held_stores_and_leaving_stores() {
    let gated = observed(Err("waiting for PDGroup pd".into()), None);
    let outcome = Outcome {
        held: 2,
        ..Outcome::default()
    };
    let (message, reason) = decide(&[], &gated, |v| Rules::progress(v, &outcome));
    assert_eq!(reason, Some(reasons::WAITING_FOR_DEPENDENCIES));
    assert!(message.is_some_and(|m| m.contains("2 new store(s) wait too")));
    let leaving = tikv(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
    let open = observed(Ok(()), None);
    let (message, reason) = decide(std::slice::from_ref(&leaving), &open, |v| {
        Rules::progress(v, &Outcome::default())
    });
    assert_eq!(reason, Some(REASON_SCALING_IN));
    assert!(message.is_some_and(|m| m.contains("tikv-a")));
    // A refusal speaks for itself: no "taking out" message over it.
    let blocked = Outcome {
        blocked: true,
        ..Outcome::default()
    };
    let (_, reason) = decide(std::slice::from_ref(&leaving), &open, |v| {
        Rules::progress(v, &blocked)
    });
    assert_eq!(reason, None);
}

#[test]
fn a_store_address_names_its_instance_in_either_form() {
    let mut group = TiKVGroup::new(
        "tikv",
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"}, "replicas": 3,
            "template": {"spec": {"version": "v8.5.2"}}
        }))
        .unwrap(),
    );
    group.metadata.namespace = Some("db".into());
    let short = Dns::default();
    let fqdn = Dns::fqdn("east.example");
    let at = |address: &str, labels: &[(&str, &str)], dns: &Dns| {
        let labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        let store: StoreInfo = serde_json::from_value(serde_json::json!({
            "store": {"id": 1, "address": address, "labels": labels},
            "status": {}
        }))
        .unwrap();
        instance_at(&group, &store, dns)
    };
    assert_eq!(
        at("tikv-a.tikv-tikv-peer.db:20160", &[], &short).as_deref(),
        Some("tikv-a")
    );
    assert_eq!(
        at(
            "tikv-a.tikv-tikv-peer.db.svc.east.example:20160",
            &[],
            &fqdn
        )
        .as_deref(),
        Some("tikv-a")
    );
    // Another group's store, or a name of the other form, is not this group's.
    assert_eq!(
        at("kv-a.kv-tikv-peer.db.svc.east.example:20160", &[], &fqdn),
        None
    );
    assert_eq!(at("tikv-a.tikv-tikv-peer.db:20160", &[], &fqdn), None);
    // A store of another Kubernetes cluster, even of a group and namespace of the same
    // names, is not this group's: its evict-leader scheduler is never removed from here.
    assert_eq!(
        at(
            "tikv-a.tikv-tikv-peer.db.svc.west.example:20160",
            &[],
            &fqdn
        ),
        None
    );
    // Under the Cluster's one headless Service (`ClusterSubdomain`), only a store labelled as
    // this group's is one of its instances.
    let ours = [("k/tikvgroup", "db.tikv")];
    assert_eq!(
        at("tikv-a.c-cluster.db:20160", &ours, &short).as_deref(),
        Some("tikv-a")
    );
    assert_eq!(
        at(
            "kv-a.c-cluster.db:20160",
            &[("k/tikvgroup", "db.kv")],
            &short
        ),
        None
    );
    assert_eq!(at("tikv-a.c-cluster.db:20160", &[], &short), None);
}

fn stores(states: &[(u64, &str)]) -> PdView {
    let stores = states
        .iter()
        .map(|(id, state)| {
            serde_json::from_value(serde_json::json!({
                "store": {"id": id, "address": format!("tikv-{id}.tikv-tikv-peer.db:20160"),
                          "state_name": state}
            }))
            .unwrap()
        })
        .collect();
    PdView {
        stores: pd_client::StoresInfo {
            count: i64::try_from(states.len()).unwrap(),
            stores,
        },
        ..PdView::default()
    }
}

fn with_id(id: &str) -> TiKV {
    let mut tikv = tikv(&[], "Serving");
    tikv.status.as_mut().unwrap().id = id.into();
    tikv
}

#[test]
fn a_store_fails_only_when_pd_says_down_by_its_recorded_id() {
    let pd = stores(&[(1, "Up"), (2, "Down"), (3, "Disconnected"), (4, "Offline")]);
    assert_eq!(
        scaling::store_health(Some(&Ok(pd.clone())), &with_id("1")),
        failover::Health::Healthy
    );
    assert_eq!(
        scaling::store_health(Some(&Ok(pd.clone())), &with_id("2")),
        failover::Health::Failing {
            why: "PD reports store 2 Down".into(),
            since: None
        }
    );
    // Between states, being removed, unlisted or never registered: cannot tell.
    for id in ["3", "4", "9", ""] {
        assert_eq!(
            scaling::store_health(Some(&Ok(pd.clone())), &with_id(id)),
            failover::Health::Unknown,
            "{id}"
        );
    }
    // Without a PD answer nothing is judged.
    for view in [None, Some(Err("timed out".to_string()))] {
        let observed = observed(Ok(()), view);
        let tikv = with_id("2");
        let health = decide(std::slice::from_ref(&tikv), &observed, |v| {
            Rules::health(v, &tikv)
        });
        assert_eq!(health, failover::Health::Unknown);
    }
}

#[test]
fn half_the_stores_silent_at_once_is_an_outage() {
    // Each engine counts its own stores: these are TiKV's, so TiFlash sees no outage.
    assert_eq!(
        scaling::stores_outage::<operator_api::core::TiFlash>(Some(&Ok(stores(&[(1, "Down")])))),
        None
    );
    assert_eq!(
        scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[(1, "Up"), (2, "Up"), (3, "Up")])))),
        None
    );
    assert_eq!(
        scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[(1, "Down"), (2, "Up"), (3, "Up")])))),
        None
    );
    // Tombstone and Offline stores do not count either way.
    assert_eq!(
        scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[
            (1, "Down"),
            (2, "Up"),
            (3, "Up"),
            (4, "Tombstone"),
            (5, "Offline")
        ])))),
        None
    );
    let outage = scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[
        (1, "Down"),
        (2, "Disconnected"),
        (3, "Up"),
    ]))));
    assert!(outage.is_some_and(|m| m.starts_with("2 of the cluster's 3 stores")),);
    assert!(
        scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[
            (1, "Down"),
            (2, "Down"),
            (3, "Up"),
            (4, "Up")
        ]))))
        .is_some()
    );
    assert!(scaling::stores_outage::<TiKV>(Some(&Ok(stores(&[(1, "Down")])))).is_some());
}

#[test]
fn remote_workers_are_named_as_not_acted_on_once_nothing_else_waits() {
    let mut observed = observed(Ok(()), None);
    observed.unsupported = Some("remoteWorkers is not supported".into());
    let (message, reason) = decide(&[], &observed, |view| {
        Rules::progress(view, &Outcome::default())
    });
    assert_eq!(reason, Some(REASON_REMOTE_WORKERS_NOT_SUPPORTED));
    assert!(message.is_some_and(|m| m.contains("remoteWorkers")));
    // A wait of the roll says what it waits for first.
    let waiting = Outcome {
        waiting: Some("rolling".into()),
        ..Outcome::default()
    };
    let (message, _) = decide(&[], &observed, |view| Rules::progress(view, &waiting));
    assert_eq!(message.as_deref(), Some("rolling"));
}
