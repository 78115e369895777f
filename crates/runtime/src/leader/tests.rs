//! Unit tests of the Lease rules: expiry, who may acquire, the specs written, the renew deadline.

use super::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn spec(holder: Option<&str>, renewed: Option<i64>, duration: Option<i32>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_string),
        renew_time: renewed.map(|s| MicroTime(at(s))),
        lease_duration_seconds: duration,
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    }
}

const FIFTEEN: Duration = Duration::from_secs(15);

#[test]
fn a_lease_expires_after_its_duration_from_the_last_renewal() {
    let s = spec(Some("a"), Some(0), Some(15));
    assert!(!lease_expired(&s, at(10), FIFTEEN));
    assert!(
        !lease_expired(&s, at(15), FIFTEEN),
        "expiry is strictly after"
    );
    assert!(lease_expired(&s, at(16), FIFTEEN));
    // Never renewed: expired.
    assert!(lease_expired(
        &spec(Some("a"), None, Some(15)),
        at(0),
        FIFTEEN
    ));
    // No duration: the default applies.
    let s = spec(Some("a"), Some(0), None);
    assert!(!lease_expired(&s, at(14), FIFTEEN));
    assert!(lease_expired(&s, at(16), FIFTEEN));
    // A released Lease's one-second duration.
    let s = spec(None, Some(0), Some(1));
    assert!(lease_expired(&s, at(2), FIFTEEN));
}

#[test]
fn a_candidate_may_take_a_released_expired_or_own_lease_only() {
    let held = spec(Some("a"), Some(0), Some(15));
    assert!(!may_acquire(&held, "b", at(5), FIFTEEN));
    assert!(may_acquire(&held, "a", at(5), FIFTEEN), "own Lease");
    assert!(may_acquire(&held, "b", at(16), FIFTEEN), "expired");
    assert!(may_acquire(
        &spec(None, Some(0), Some(15)),
        "b",
        at(1),
        FIFTEEN
    ));
    assert!(may_acquire(
        &spec(Some(""), Some(0), Some(15)),
        "b",
        at(1),
        FIFTEEN
    ));
}

#[test]
fn the_renew_deadline_counts_from_the_last_renewal() {
    let renewed = Instant::now();
    let deadline = Duration::from_secs(10);
    assert!(!renew_deadline_passed(renewed, renewed, deadline));
    assert!(!renew_deadline_passed(
        renewed,
        renewed + Duration::from_millis(9_999),
        deadline
    ));
    assert!(renew_deadline_passed(renewed, renewed + deadline, deadline));
    assert!(renew_deadline_passed(
        renewed,
        renewed + Duration::from_secs(60),
        deadline
    ));
}

#[test]
fn taking_over_counts_a_transition_and_renewing_ones_own_does_not() {
    let config = LeaderConfig::default();
    let fresh = acquired_spec(None, "a", at(0), &config);
    assert_eq!(fresh.holder_identity.as_deref(), Some("a"));
    assert_eq!(fresh.lease_transitions, Some(0));
    assert_eq!(fresh.lease_duration_seconds, Some(15));
    assert_eq!(fresh.acquire_time, Some(MicroTime(at(0))));

    let previous = spec(Some("a"), Some(0), Some(15));
    let takeover = acquired_spec(Some(&previous), "b", at(20), &config);
    assert_eq!(takeover.holder_identity.as_deref(), Some("b"));
    assert_eq!(takeover.lease_transitions, Some(4));
    assert_eq!(takeover.acquire_time, Some(MicroTime(at(20))));
    assert_eq!(takeover.renew_time, Some(MicroTime(at(20))));

    let mut own = previous.clone();
    own.acquire_time = Some(MicroTime(at(-100)));
    let again = acquired_spec(Some(&own), "a", at(5), &config);
    assert_eq!(again.lease_transitions, Some(3));
    assert_eq!(again.acquire_time, Some(MicroTime(at(-100))));

    let released = released_spec(&previous, at(30));
    assert_eq!(lease_holder(&released), None);
    assert_eq!(released.lease_duration_seconds, Some(1));
    assert_eq!(released.lease_transitions, Some(3));
    let after_release = acquired_spec(Some(&released), "b", at(31), &config);
    assert_eq!(after_release.lease_transitions, Some(4));
}

#[test]
fn timing_must_leave_the_old_leader_time_to_stop() {
    assert!(LeaderConfig::default().validate().is_ok());
    let bad = LeaderConfig {
        renew_deadline: Duration::from_secs(15),
        ..LeaderConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = LeaderConfig {
        renew_period: Duration::from_secs(10),
        ..LeaderConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = LeaderConfig {
        lease_duration: Duration::from_millis(900),
        renew_deadline: Duration::from_millis(500),
        renew_period: Duration::from_millis(100),
        retry_period: Duration::from_millis(100),
    };
    assert!(bad.validate().is_err());
}

#[test]
fn default_identities_differ_per_call() {
    let a = default_identity();
    let b = default_identity();
    assert_ne!(a, b);
    assert!(a.len() > 9, "{a}");
}
