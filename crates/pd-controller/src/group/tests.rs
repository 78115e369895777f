//! Unit tests of the PDGroup rules: scale-in, quorum, exits and the upgrade gate.

use operator_api::conditions::NewCondition;

use super::*;

fn group(bootstrapped: bool) -> PDGroup {
    let mut group = PDGroup::new(
        "pd",
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"}, "replicas": 3, "bootstrapped": bootstrapped,
            "template": {"spec": {"version": "v8.5.2"}}
        }))
        .unwrap(),
    );
    group.metadata.namespace = Some("db".into());
    group.metadata.uid = Some("u".into());
    group
}

/// `bootstrap` of `group` over `instances`.
fn bootstrap_of(group: &PDGroup, instances: &[PD]) -> BeforePlan<PD> {
    let cluster = Cluster::new("c", Default::default());
    bootstrap_in(group, &cluster, instances, &Observed::default())
}

/// `bootstrap` of `group` of `cluster` over `instances`, having `observed`.
fn bootstrap_in(
    group: &PDGroup,
    cluster: &Cluster,
    instances: &[PD],
    observed: &Observed,
) -> BeforePlan<PD> {
    bootstrap(&GroupView {
        group,
        namespace: "db",
        cluster,
        instances,
        update_revision: "pd-r1",
        observed,
    })
    .unwrap()
}

#[test]
fn the_first_members_are_created_together_then_the_group_is_marked_bootstrapped() {
    let fresh = group(false);
    let first = bootstrap_of(&fresh, &[]);
    assert!(first.skip_plan);
    let created: Vec<&PD> = first
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Create(pd) => Some(pd),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(|pd| initial_cluster_num(pd) == Some(3)));

    // Members exist, none initialized: wait, create nothing more.
    let mut member = created[0].clone();
    let waiting = bootstrap_of(&fresh, std::slice::from_ref(&member));
    assert!(waiting.skip_plan && waiting.effects.is_empty() && waiting.waiting.is_some());

    // One is initialized: the group is marked bootstrapped.
    let mut conditions = Vec::new();
    conditions::set(
        &mut conditions,
        NewCondition {
            type_: conditions::INITIALIZED,
            status: true,
            reason: "Initialized",
            message: String::new(),
            observed_generation: None,
        },
        Default::default(),
    );
    member.status = Some(Default::default());
    *member.conditions_mut() = conditions;
    let marked = bootstrap_of(&fresh, std::slice::from_ref(&member));
    assert!(
        matches!(&marked.effects[0], Effect::PatchGroup(p) if p["spec"]["bootstrapped"] == true)
    );

    // Bootstrapped: the update engine plans as for any group.
    let done = bootstrap_of(&group(true), std::slice::from_ref(&member));
    assert!(!done.skip_plan && done.effects.is_empty());
}

#[test]
fn a_joining_group_creates_nothing_until_the_pd_it_joins_answers_then_never_bootstraps() {
    let fresh = group(false);
    let cluster: Cluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {"join": {"pdURLs": ["http://pd-a.pd-pd-peer.db.svc.one.local:2379"]}}
    }))
    .unwrap();
    let before = |join: Option<Result<(), String>>| {
        let observed = Observed {
            join,
            ..Observed::default()
        };
        bootstrap_in(&fresh, &cluster, &[], &observed)
    };
    let creates = |b: &BeforePlan<PD>| b.effects.iter().any(|e| matches!(e, Effect::Create(_)));

    // PD does not answer: nothing is created, and the group says why.
    let silent = before(Some(Err("no PD answers at http://pd-a...".into())));
    assert!(silent.skip_plan && !creates(&silent));
    assert!(silent.waiting.is_some_and(|w| w.contains("no PD answers")));
    let unasked = before(None);
    assert!(unasked.skip_plan && !creates(&unasked));

    // It answers: the group counts as bootstrapped, and no first member with
    // `initial-cluster` is ever made; members are created by the plan, each joining.
    let answered = before(Some(Ok(())));
    assert!(!creates(&answered));
    assert!(
        matches!(&answered.effects[0], Effect::PatchGroup(p) if p["spec"]["bootstrapped"] == true)
    );
}

#[test]
fn of_two_pd_groups_of_one_cluster_only_one_bootstraps_and_the_other_creates_nothing() {
    let named = |name: &str, bootstrapped: bool, created: &str| {
        let mut g = group(bootstrapped);
        g.metadata.name = Some(name.into());
        g.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            created.parse().unwrap(),
        ));
        g
    };
    let older = named("pd-b", false, "2026-01-01T00:00:00Z");
    let newer = named("pd-a", false, "2026-01-01T00:00:05Z");
    let twin = named("pd-c", false, "2026-01-01T00:00:00Z");
    // The oldest goes ahead; created in the same second, the first by name.
    assert_eq!(owner_of_pd(&older, std::slice::from_ref(&newer)), None);
    assert_eq!(
        owner_of_pd(&newer, std::slice::from_ref(&older)).as_deref(),
        Some("pd-b")
    );
    assert_eq!(
        owner_of_pd(&twin, std::slice::from_ref(&older)).as_deref(),
        Some("pd-b")
    );
    assert_eq!(owner_of_pd(&older, std::slice::from_ref(&twin)), None);
    // One that bootstrapped owns PD, however young.
    let bootstrapped = named("pd-z", true, "2026-01-02T00:00:00Z");
    assert_eq!(
        owner_of_pd(&older, &[newer.clone(), bootstrapped.clone()]).as_deref(),
        Some("pd-z")
    );
    // A group being deleted owns nothing.
    let mut leaving = older.clone();
    leaving.metadata.deletion_timestamp = newer.metadata.creation_timestamp.clone();
    assert_eq!(owner_of_pd(&newer, &[leaving]), None);

    // Held: the plan is skipped and nothing is created.
    let cluster = Cluster::new("c", Default::default());
    let observed = Observed {
        held_by: Some("PDGroup pd-b owns the PD of Cluster c".into()),
        ..Observed::default()
    };
    let held = bootstrap_in(&newer, &cluster, &[], &observed);
    assert!(held.skip_plan && held.effects.is_empty());
    assert!(held.waiting.is_some_and(|w| w.contains("pd-b")));
}

#[test]
fn under_multi_pd_group_a_second_group_joins_the_clusters_pd_instead_of_bootstrapping() {
    let second = group(false);
    let cluster: Cluster = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c", "namespace": "db"},
        "spec": {"featureGates": [{"name": "MultiPDGroup"}], "customizedPDServiceName": "pd0-pd"}
    }))
    .unwrap();
    let before = |join: Option<Result<(), String>>| {
        let observed = Observed {
            join,
            ..Observed::default()
        };
        bootstrap_in(&second, &cluster, &[], &observed)
    };
    // PD answers at the Cluster's PD Service: the group counts as bootstrapped (its members
    // join) and no first member with `initial-cluster` is made.
    let joins = before(Some(Ok(())));
    assert!(joins.skip_plan);
    assert!(matches!(
        &joins.effects[..],
        [Effect::PatchGroup(p), Effect::Event { message, .. }]
            if p["spec"]["bootstrapped"] == true && message.contains("http://pd0-pd.db:2379")
    ));
    // It does not answer: nothing is made.
    let waits = before(Some(Err("no leader".into())));
    assert!(waits.effects.is_empty() && waits.waiting.as_deref() == Some("no leader"));
    // The owner group (nothing to join) bootstraps as ever.
    let owner = before(None);
    assert!(matches!(&owner.effects[..], [Effect::Create(_), ..]));
}

#[test]
fn a_group_goes_to_zero_only_where_other_groups_keep_pd() {
    let health = |entries: &[(&str, bool)]| -> BTreeMap<String, bool> {
        entries
            .iter()
            .map(|(n, h)| ((*n).to_string(), *h))
            .collect()
    };
    let last = [view("a", true)];
    let others = health(&[("a", true), ("b1", true), ("b2", true)]);
    assert!(scale_in_refusal(&last, "a", Some(&others), true).is_none());
    let refusal = scale_in_refusal(&last, "a", Some(&others), false).unwrap();
    assert!(refusal.contains("MultiPDGroup"), "{refusal}");
    let sick = health(&[("a", true), ("b1", true), ("b2", false)]);
    assert!(
        scale_in_refusal(&last, "a", Some(&sick), true).is_some_and(|r| r.contains("no quorum"))
    );
}

fn view(name: &str, ready: bool) -> InstanceView {
    InstanceView {
        name: name.into(),
        revision: "r".into(),
        ready,
        settling: None,
        deleting: false,
        topology: Default::default(),
        last: false,
    }
}

#[test]
fn never_below_one_member() {
    let refusal = scale_in_refusal(&[view("a", true)], "a", None, false).unwrap();
    assert!(refusal.contains("below one member"), "{refusal}");
}

#[test]
fn only_a_joining_cluster_leaves_with_its_last_member_and_only_to_a_quorum_elsewhere() {
    let health = |entries: &[(&str, bool)]| -> BTreeMap<String, bool> {
        entries
            .iter()
            .map(|(n, h)| ((*n).to_string(), *h))
            .collect()
    };
    let last = [view("a", true)];
    // The Cluster that bootstrapped PD never goes to 0, whatever the others.
    let three_up = health(&[("a", true), ("r1", true), ("r2", true), ("r3", true)]);
    let refusal = scale_in_refusal(&last, "a", Some(&three_up), false).unwrap();
    assert!(refusal.contains("spec.join"), "{refusal}");
    // A joining one leaves when the other side's members keep a quorum.
    assert!(scale_in_refusal(&last, "a", Some(&three_up), true).is_none());
    let one_of_three = health(&[("a", true), ("r1", true), ("r2", false), ("r3", false)]);
    let refusal = scale_in_refusal(&last, "a", Some(&one_of_three), true).unwrap();
    assert!(
        refusal.contains("1 healthy of 3") && refusal.contains("no quorum"),
        "{refusal}"
    );
    // Without PD's view of the others, or with none, the last member stays.
    assert!(scale_in_refusal(&last, "a", None, true).is_some_and(|r| r.contains("not asked")));
    let alone = health(&[("a", true)]);
    assert!(scale_in_refusal(&last, "a", Some(&alone), true).is_some());
}

#[test]
fn an_exit_waits_until_pd_lists_no_store_of_this_side_but_tombstones() {
    let store = |id: u64, address: &str, state: &str| pd_client::StoreInfo {
        store: pd_client::Store {
            id,
            address: address.into(),
            state_name: state.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let suffix = local_store_suffix("db", &Dns::fqdn("two.local"));
    assert_eq!(suffix, ".db.svc.two.local");
    let info = pd_client::StoresInfo {
        count: 4,
        stores: vec![
            store(1, "t-a.tikv-tikv-peer.db.svc.one.local:20160", "Up"),
            store(4, "t-x.tikv-tikv-peer.db.svc.two.local:20160", "Offline"),
            store(5, "t-y.tikv-tikv-peer.db.svc.two.local:20160", "Tombstone"),
            store(6, "t-z.tikv-tikv-peer.db.svc.two.local:20160", "Up"),
        ],
    };
    let live = live_stores_under(&info, &suffix);
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live[0].starts_with("4 (") && live[1].starts_with("6 ("));
    let message = exit_wait(Some(&Ok(live))).unwrap();
    assert!(message.contains("2 of them not Tombstone"), "{message}");
    assert!(exit_wait(Some(&Err("no leader".into()))).is_some_and(|m| m.contains("no leader")));
    assert_eq!(exit_wait(Some(&Ok(Vec::new()))), None);
    assert_eq!(exit_wait(None), None);
    // Only a joining Cluster's group at 0 is an exit.
    let mut at_zero = group(true);
    at_zero.spec.replicas = 0;
    let joining: Cluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": {"join": {"pdURLs": ["http://pd-a.pd-pd-peer.db.svc.one.local:2379"]}}
    }))
    .unwrap();
    assert!(exiting(&at_zero, &joining));
    assert!(!exiting(&at_zero, &Cluster::new("c", Default::default())));
    assert!(!exiting(&group(true), &joining));
}

#[test]
fn quorum_counts_the_members_of_other_kubernetes_clusters() {
    let health = |entries: &[(&str, bool)]| -> BTreeMap<String, bool> {
        entries
            .iter()
            .map(|(n, h)| ((*n).to_string(), *h))
            .collect()
    };
    let views = [view("a", true), view("b", true)];
    // 2 → 1 here with one of two remote members down: 2 healthy of 3 left, fine.
    let one_down = health(&[("a", true), ("b", true), ("r1", true), ("r2", false)]);
    assert!(scale_in_refusal(&views, "b", Some(&one_down), false).is_none());
    // One more remote member, down too: 2 healthy of 4, no quorum.
    let three_down = health(&[
        ("a", true),
        ("b", true),
        ("r1", true),
        ("r2", false),
        ("r3", false),
    ]);
    let refusal = scale_in_refusal(&views, "b", Some(&three_down), false).unwrap();
    assert!(
        refusal.contains("2 healthy of 4")
            && refusal.contains("3 in other Kubernetes clusters")
            && refusal.contains("r3"),
        "{refusal}"
    );
    // Healthy remote members carry the quorum that the local ones alone would not.
    let local = [view("a", true), view("b", false), view("c", true)];
    assert!(scale_in_refusal(&local, "c", None, false).is_some());
    let remote_up = health(&[
        ("a", true),
        ("b", false),
        ("c", true),
        ("r1", true),
        ("r2", true),
    ]);
    assert!(scale_in_refusal(&local, "c", Some(&remote_up), false).is_none());
}

#[test]
fn scale_in_keeps_a_healthy_majority() {
    // 3 → 2 with one other member down: 1 healthy of 2 is no quorum.
    let views = [view("a", true), view("b", false), view("c", true)];
    let refusal = scale_in_refusal(&views, "c", None, false).unwrap();
    assert!(
        refusal.contains("no quorum") && refusal.contains('b'),
        "{refusal}"
    );
    // Removing the unhealthy one itself is fine.
    assert!(scale_in_refusal(&views, "b", None, false).is_none());
    // All healthy: fine.
    assert!(
        scale_in_refusal(
            &[view("a", true), view("b", true), view("c", true)],
            "c",
            None,
            false
        )
        .is_none()
    );
}

fn member(name: &str, ready: Option<bool>) -> PD {
    let mut pd = PD::new(
        name,
        serde_json::from_value(serde_json::json!({
            "cluster": {"name": "c"}, "subdomain": "pd-pd-peer", "version": "v8.5.2"
        }))
        .unwrap(),
    );
    if let Some(ready) = ready {
        let mut list = Vec::new();
        conditions::set(
            &mut list,
            NewCondition {
                type_: conditions::READY,
                status: ready,
                reason: "R",
                message: String::new(),
                observed_generation: None,
            },
            Timestamp::UNIX_EPOCH,
        );
        *pd.conditions_mut() = list;
    }
    pd
}

#[test]
fn a_member_is_failed_over_only_while_a_majority_is_healthy() {
    let pods = |names: &[&str]| -> BTreeMap<String, Timestamp> {
        names
            .iter()
            .map(|n| (n.to_string(), Timestamp::UNIX_EPOCH))
            .collect()
    };
    let all = pods(&["a", "b", "c"]);
    let one_down = [
        member("a", Some(false)),
        member("b", Some(true)),
        member("c", Some(true)),
    ];
    assert_eq!(members_outage(&one_down, &all, None), None);
    let two_down = [
        member("a", Some(false)),
        member("b", Some(false)),
        member("c", Some(true)),
    ];
    assert!(
        members_outage(&two_down, &all, None)
            .is_some_and(|m| m.starts_with("only 1 of the 3 PD members"))
    );
    // PD's own answer counts: a member its instance still shows Ready but that PD reports
    // unhealthy is not healthy, and a PD that does not answer is an outage.
    let pd = |healthy: &[&str]| -> Result<BTreeMap<String, bool>, String> {
        Ok(["a", "b", "c"]
            .iter()
            .map(|n| (n.to_string(), healthy.contains(n)))
            .collect())
    };
    assert_eq!(
        members_outage(&one_down, &all, Some(&pd(&["b", "c"]))),
        None
    );
    assert!(
        members_outage(&one_down, &all, Some(&pd(&["c"])))
            .is_some_and(|m| m.starts_with("only 1 of the 3 PD members"))
    );
    let silent: Result<BTreeMap<String, bool>, String> = Err("no leader".into());
    assert!(
        members_outage(&one_down, &all, Some(&silent))
            .is_some_and(|m| m.starts_with("PD does not answer (no leader)"))
    );
    // A member that cannot be judged is not counted healthy.
    let unknown = [
        member("a", Some(false)),
        member("b", None),
        member("c", Some(true)),
    ];
    assert!(members_outage(&unknown, &all, None).is_some());
    // The only member is never replaced.
    assert!(members_outage(&[member("a", Some(false))], &pods(&["a"]), None).is_some());
}

#[test]
fn a_new_member_waits_until_a_leaving_one_has_left() {
    let view = |name: &str, deleting: bool| InstanceView {
        name: name.into(),
        revision: "r".into(),
        ready: !deleting,
        settling: None,
        deleting,
        topology: Topology::new(),
        last: false,
    };
    let policy = Policy {
        replicas: 3,
        update_revision: "r".into(),
        max_surge: 0,
        max_unavailable: 1,
        topologies: Vec::new(),
    };
    let views = [view("a", true), view("b", false), view("c", false)];
    let plan = Rules::plan(&policy, &views);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(
        plan.waiting
            .is_some_and(|w| w.contains("waiting for a to leave"))
    );
    let views = [view("b", false), view("c", false)];
    let plan = Rules::plan(&policy, &views);
    assert!(matches!(&plan.actions[..], [update::Action::Create { .. }]));
}

#[test]
fn mode_ms_is_named_as_not_acted_on_once_nothing_else_waits() {
    let group = group(true);
    let cluster = Cluster::new("c", Default::default());
    let observed = Observed {
        unsupported: Some("mode: ms (PD microservices) is not supported".into()),
        ..Observed::default()
    };
    let view = GroupView {
        group: &group,
        namespace: "db",
        cluster: &cluster,
        instances: &[],
        update_revision: "pd-r1",
        observed: &observed,
    };
    let (message, reason) = Rules::progress(&view, &Outcome::default());
    assert_eq!(reason, Some(REASON_MODE_NOT_SUPPORTED));
    assert!(message.is_some_and(|m| m.contains("mode: ms")));
    let waiting = Outcome {
        waiting: Some("rolling".into()),
        ..Outcome::default()
    };
    assert_eq!(
        Rules::progress(&view, &waiting).0.as_deref(),
        Some("rolling")
    );
}
