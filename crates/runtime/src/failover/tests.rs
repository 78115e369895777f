//! Failover decisions as tables: every branch of [`plan`] and the condition it leads to.

use std::collections::BTreeMap;

use super::*;

const T0: &str = "2026-01-01T00:00:00Z";

fn at(seconds: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + k8s_openapi::jiff::SignedDuration::from_secs(seconds)
}

fn settings() -> Settings {
    Settings {
        enabled: true,
        period: Duration::from_secs(300),
        max_replacements: 2,
    }
}

fn down() -> Health {
    Health::Failing {
        why: "x".into(),
        since: None,
    }
}

fn member(name: &str, health: Health) -> Member<'_> {
    Member {
        name,
        health,
        failing_since: None,
        failed_over: false,
        leaving: false,
    }
}

fn failing(name: &str, since: i64) -> Member<'_> {
    Member {
        failing_since: Some(at(since)),
        ..member(
            name,
            Health::Failing {
                why: "PD reports store 5 Down".into(),
                since: None,
            },
        )
    }
}

fn replaced(name: &str, health: Health) -> Member<'_> {
    Member {
        failing_since: Some(at(0)),
        failed_over: true,
        ..member(name, health)
    }
}

fn keys(plan: &FailoverPlan) -> Vec<(String, &'static str, bool)> {
    plan.marks
        .iter()
        .map(|m| (m.instance.clone(), m.key, m.value.is_some()))
        .collect()
}

#[test]
fn a_member_seen_failing_for_the_first_time_is_recorded_and_looked_at_after_the_period() {
    let members = [member(
        "a",
        Health::Failing {
            why: "why".into(),
            since: None,
        },
    )];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(10),
    );
    assert_eq!(
        keys(&plan),
        [
            ("a".into(), ANNO_FAILING_SINCE, true),
            ("a".into(), ANNO_FAILURE, true)
        ]
    );
    assert_eq!(plan.marks[0].value.as_deref(), Some("2026-01-01T00:00:10Z"));
    assert_eq!(plan.recheck_after, Some(Duration::from_secs(300)));
    assert_eq!(plan.extra_replicas, 0);
    assert!(plan.acts());
}

#[test]
fn a_member_failing_for_less_than_the_period_waits_for_the_rest_of_it() {
    let plan = plan(
        &settings(),
        &[failing("a", 0)],
        None,
        true,
        Retire::OnRecovery,
        at(100),
    );
    assert!(!plan.acts());
    assert_eq!(plan.recheck_after, Some(Duration::from_secs(200)));
    assert_eq!(plan.extra_replicas, 0);
}

#[test]
fn a_member_failing_past_the_period_is_replaced_with_an_event_naming_why_and_since() {
    let plan = plan(
        &settings(),
        &[failing("a", 0)],
        None,
        true,
        Retire::OnRecovery,
        at(300),
    );
    assert_eq!(keys(&plan), [("a".into(), ANNO_FAILED_OVER, true)]);
    assert_eq!(plan.extra_replicas, 1);
    let (reason, message) = &plan.events[0];
    assert_eq!(*reason, "FailoverStarted");
    assert!(
        message.contains("PD reports store 5 Down since 2026-01-01T00:00:00Z"),
        "{message}"
    );
    assert!(message.contains("5m0s"), "{message}");
    assert_eq!(plan.refusal, None);
}

#[test]
fn an_outage_replaces_nothing_and_says_why() {
    let plan = plan(
        &settings(),
        &[failing("a", 0), failing("b", 0)],
        Some("2 of 3 stores are Down"),
        true,
        Retire::OnRecovery,
        at(400),
    );
    assert!(!plan.acts());
    assert_eq!(plan.extra_replicas, 0);
    let (reason, message) = plan.refusal.unwrap();
    assert_eq!(reason, REASON_FAILOVER_OUTAGE);
    assert!(message.contains("2 of 3 stores are Down"), "{message}");
}

#[test]
fn replacements_stop_at_the_cap_with_a_refusal() {
    let members = [replaced("a", down()), failing("b", 0), failing("c", 0)];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(400),
    );
    // b takes the second place; c finds the cap reached.
    assert_eq!(keys(&plan), [("b".into(), ANNO_FAILED_OVER, true)]);
    assert_eq!(plan.extra_replicas, 2);
    let (reason, message) = plan.refusal.unwrap();
    assert_eq!(reason, REASON_FAILOVER_EXHAUSTED);
    assert!(message.starts_with("c failed"), "{message}");
    assert!(message.contains("maxReplacements is 2"), "{message}");
}

#[test]
fn a_cap_of_zero_replaces_nothing() {
    let settings = Settings {
        max_replacements: 0,
        ..settings()
    };
    let plan = plan(
        &settings,
        &[failing("a", 0)],
        None,
        true,
        Retire::OnRecovery,
        at(400),
    );
    assert!(!plan.acts());
    assert_eq!(plan.refusal.unwrap().0, REASON_FAILOVER_EXHAUSTED);
}

#[test]
fn failover_off_records_and_replaces_nothing_new_but_keeps_the_replacements_made() {
    let settings = Settings {
        enabled: false,
        ..settings()
    };
    let members = [replaced("a", down()), failing("b", 0), member("c", down())];
    let plan = plan(&settings, &members, None, true, Retire::OnRecovery, at(400));
    assert!(!plan.acts());
    assert_eq!(plan.extra_replicas, 1);
    assert_eq!(plan.refusal, None);
}

#[test]
fn a_member_that_works_again_before_it_was_replaced_is_forgotten() {
    let members = [Member {
        health: Health::Healthy,
        ..failing("a", 0)
    }];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(100),
    );
    assert_eq!(
        keys(&plan),
        [
            ("a".into(), ANNO_FAILING_SINCE, false),
            ("a".into(), ANNO_FAILURE, false)
        ]
    );
    assert_eq!(plan.extra_replicas, 0);
}

#[test]
fn a_healthy_member_without_failover_state_writes_nothing() {
    let plan = plan(
        &settings(),
        &[member("a", Health::Healthy)],
        None,
        true,
        Retire::OnRecovery,
        at(100),
    );
    assert_eq!(plan, FailoverPlan::default());
}

#[test]
fn nothing_changes_while_the_component_cannot_tell() {
    let members = [
        Member {
            health: Health::Unknown,
            ..failing("a", 0)
        },
        replaced("b", Health::Unknown),
    ];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(1000),
    );
    assert!(!plan.acts());
    assert_eq!(plan.extra_replicas, 1, "the replacement stays counted");
}

#[test]
fn a_replaced_store_that_recovers_leaves_and_its_replacement_stays() {
    let members = [replaced("a", Health::Healthy), member("b", Health::Healthy)];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(1000),
    );
    assert_eq!(plan.retire, ["a"]);
    assert!(plan.marks.is_empty());
    assert_eq!(plan.extra_replicas, 0);
    assert_eq!(plan.events[0].0, "FailoverRecovered");
}

#[test]
fn a_replaced_store_still_failing_stays() {
    let members = [replaced("a", down())];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(1000),
    );
    assert!(!plan.acts());
    assert_eq!(plan.extra_replicas, 1);
}

#[test]
fn a_replaced_server_leaves_once_the_group_is_ready_without_it() {
    let members = [replaced("a", down())];
    let waiting = plan(
        &settings(),
        &members,
        None,
        false,
        Retire::OnReplacementReady,
        at(1000),
    );
    assert!(waiting.retire.is_empty());
    assert_eq!(waiting.extra_replicas, 1);
    let ready = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnReplacementReady,
        at(1000),
    );
    assert_eq!(ready.retire, ["a"]);
    assert_eq!(ready.extra_replicas, 0);
}

#[test]
fn a_replaced_server_that_recovers_first_is_forgotten_and_the_surplus_goes_by_scale_in() {
    let members = [replaced("a", Health::Healthy)];
    let plan = plan(
        &settings(),
        &members,
        None,
        false,
        Retire::OnReplacementReady,
        at(1000),
    );
    assert!(plan.retire.is_empty());
    assert_eq!(
        keys(&plan),
        [
            ("a".into(), ANNO_FAILING_SINCE, false),
            ("a".into(), ANNO_FAILURE, false),
            ("a".into(), ANNO_FAILED_OVER, false)
        ]
    );
    assert_eq!(plan.extra_replicas, 0);
}

#[test]
fn members_leaving_the_group_are_left_alone_and_not_counted() {
    let members = [
        Member {
            leaving: true,
            ..replaced("a", Health::Healthy)
        },
        Member {
            leaving: true,
            ..failing("b", 0)
        },
    ];
    let plan = plan(
        &settings(),
        &members,
        None,
        true,
        Retire::OnRecovery,
        at(1000),
    );
    assert_eq!(plan, FailoverPlan::default());
}

#[test]
fn settings_default_to_on_five_minutes_and_three() {
    assert_eq!(
        Settings::of(None),
        Settings {
            enabled: true,
            period: Duration::from_secs(300),
            max_replacements: 3
        }
    );
    let spec = Failover {
        enabled: Some(false),
        period: Some("90s".into()),
        max_replacements: Some(1),
    };
    assert_eq!(
        Settings::of(Some(&spec)),
        Settings {
            enabled: false,
            period: Duration::from_secs(90),
            max_replacements: 1
        }
    );
}

#[test]
fn the_condition_says_failing_then_replaced_and_nothing_without_state() {
    let mut annotations = BTreeMap::new();
    assert_eq!(condition(Some(&annotations)), None);
    assert_eq!(condition(None), None);
    annotations.insert(ANNO_FAILING_SINCE.to_string(), T0.to_string());
    annotations.insert(
        ANNO_FAILURE.to_string(),
        "PD reports store 5 Down".to_string(),
    );
    let (status, reason, message) = condition(Some(&annotations)).unwrap();
    assert!(!status);
    assert_eq!(reason, REASON_FAILING);
    assert!(message.starts_with("PD reports store 5 Down since 2026-01-01T00:00:00Z"));
    annotations.insert(
        ANNO_FAILED_OVER.to_string(),
        "2026-01-01T00:05:00Z".to_string(),
    );
    let (status, reason, message) = condition(Some(&annotations)).unwrap();
    assert!(status);
    assert_eq!(reason, REASON_REPLACED);
    assert!(message.contains("replaced by the group's failover at 2026-01-01T00:05:00Z"));
}

#[test]
fn a_failure_whose_start_the_component_knows_writes_nothing_until_it_is_replaced() {
    let known = |since| Health::Failing {
        why: "not Ready".into(),
        since: Some(at(since)),
    };
    let early = plan(
        &settings(),
        &[member("a", known(0))],
        None,
        true,
        Retire::OnReplacementReady,
        at(100),
    );
    assert!(!early.acts());
    assert_eq!(early.recheck_after, Some(Duration::from_secs(200)));
    let late = plan(
        &settings(),
        &[member("a", known(0))],
        None,
        true,
        Retire::OnReplacementReady,
        at(300),
    );
    assert_eq!(
        keys(&late),
        [
            ("a".into(), ANNO_FAILING_SINCE, true),
            ("a".into(), ANNO_FAILURE, true),
            ("a".into(), ANNO_FAILED_OVER, true)
        ]
    );
    assert_eq!(late.marks[0].value.as_deref(), Some(T0));
    assert_eq!(late.extra_replicas, 1);
}

fn known(since: i64) -> Health {
    Health::Failing {
        why: "not Ready".into(),
        since: Some(at(since)),
    }
}

#[test]
fn a_member_that_leaves_first_goes_after_the_period_one_at_a_time_and_counts() {
    let members = [
        member("a", known(0)),
        member("b", known(0)),
        member("c", Health::Healthy),
    ];
    let early = plan_first(&settings(), &members, None, 0, at(100));
    assert!(!early.acts());
    assert_eq!(early.recheck_after, Some(Duration::from_secs(200)));
    let late = plan_first(&settings(), &members, None, 0, at(300));
    assert_eq!(late.retire, ["a"], "one at a time");
    assert_eq!(late.replaced, Some(1));
    assert!(
        late.events[0]
            .1
            .contains("leaves first, then a new member joins")
    );
    assert!(late.marks.is_empty());
    assert_eq!(late.extra_replicas, 0);
}

#[test]
fn nothing_leaves_first_while_another_member_is_leaving_in_an_outage_or_at_the_cap() {
    let leaving = [
        Member {
            leaving: true,
            ..member("a", known(0))
        },
        member("b", known(0)),
    ];
    assert!(!plan_first(&settings(), &leaving, None, 0, at(400)).acts());
    let members = [member("b", known(0)), member("c", Health::Healthy)];
    let outage = plan_first(&settings(), &members, Some("no majority"), 0, at(400));
    assert!(outage.retire.is_empty());
    assert_eq!(outage.refusal.unwrap().0, REASON_FAILOVER_OUTAGE);
    let capped = plan_first(&settings(), &members, None, 2, at(400));
    assert!(capped.retire.is_empty());
    let (reason, message) = capped.refusal.unwrap();
    assert_eq!(reason, REASON_FAILOVER_EXHAUSTED);
    assert!(message.contains("2 replacement(s) were made"), "{message}");
    let off = Settings {
        enabled: false,
        ..settings()
    };
    assert!(!plan_first(&off, &members, None, 0, at(400)).acts());
}

#[test]
fn the_count_of_replacements_resets_once_every_member_is_healthy() {
    let healthy = [member("a", Health::Healthy), member("b", Health::Healthy)];
    assert_eq!(
        plan_first(&settings(), &healthy, None, 2, at(0)).replaced,
        Some(0)
    );
    assert_eq!(
        plan_first(&settings(), &healthy, None, 0, at(0)),
        FailoverPlan::default()
    );
    let starting = [member("a", Health::Healthy), member("b", Health::Unknown)];
    assert_eq!(
        plan_first(&settings(), &starting, None, 2, at(0)).replaced,
        None
    );
}

#[test]
fn readiness_counts_from_the_later_of_the_condition_and_the_pod() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let ready = |status: &str| Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: "R".into(),
        message: "m".into(),
        observed_generation: None,
        last_transition_time: Time(at(100)),
    };
    assert_eq!(
        by_readiness(&[ready("True")], Some(&at(0))),
        Health::Healthy
    );
    assert_eq!(
        by_readiness(&[ready("False")], Some(&at(0))),
        Health::Failing {
            why: "not Ready (R: m)".into(),
            since: Some(at(100))
        }
    );
    assert_eq!(
        by_readiness(&[ready("False")], Some(&at(200))),
        Health::Failing {
            why: "not Ready (R: m)".into(),
            since: Some(at(200))
        }
    );
    assert_eq!(by_readiness(&[ready("False")], None), Health::Unknown);
    assert_eq!(by_readiness(&[], Some(&at(0))), Health::Unknown);
}
