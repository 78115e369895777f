//! Tests of the TiFlash instance rules: readiness from PD and from TiFlash's store status.

use super::*;

fn up() -> ready::Verdict {
    Some((true, reasons::READY, "store 4 is Up".into()))
}

fn with_store_status(
    verdict: ready::Verdict,
    status: Option<Result<String, String>>,
    was_ready: bool,
) -> ready::Verdict {
    ready::correct(verdict, status.map(store_status_said), was_ready)
}

#[test]
fn a_store_up_in_pd_is_ready_only_once_tiflash_reports_it_running() {
    let running = with_store_status(up(), Some(Ok("Running".into())), false);
    assert_eq!(running.map(|v| v.0), Some(true));

    let (ready, reason, message) = with_store_status(up(), Some(Ok("Ready".into())), true).unwrap();
    assert!(!ready);
    assert_eq!(reason, REASON_STORE_NOT_RUNNING);
    assert!(message.contains("\"Ready\", not Running"), "{message}");

    // Unanswered: a Ready store stays as it was; one not yet Ready says why it is not.
    assert_eq!(
        with_store_status(up(), Some(Err("timed out".into())), true),
        None
    );
    let (ready, _, message) =
        with_store_status(up(), Some(Err("timed out".into())), false).unwrap();
    assert!(!ready && message.contains("timed out"), "{message}");

    // Not asked (the Pod is not ready or the store not Up): the Pod's and PD's verdict stands.
    let down = Some((false, "StoreNotServing", "store 4 is Down".to_string()));
    assert_eq!(with_store_status(down.clone(), None, true), down);
    assert_eq!(with_store_status(up(), None, false), up());
}
