//! The ready APIs of TiKV (`/ready` on its status port, from v9.0.0) and TiFlash
//! (`/tiflash/readyz` on its proxy status port), behind the `UseTiKVReadyAPI` and
//! `UseTiFlashReadyAPI` feature gates: with a gate, the Pod's readiness probe asks the server
//! itself, and so does the instance's `Ready` condition, so a roll does not go on past a store
//! PD lists Up that does not yet say it is ready.

use k8s_openapi::api::core::v1::Pod;
use operator_api::core::{Feature, TiFlash, TiKV};
use operator_runtime::pod::readiness;
use operator_runtime::upgrade;

use crate::pd::PdView;
use crate::store::{self, StoreLookup};

/// The first TiKV version with `/ready` (tidb-operator v2's compatibility table says so).
pub const TIKV_FIRST_VERSION: &str = "v9.0.0";
/// TiKV's ready API, on its status port.
pub const TIKV_PATH: &str = "/ready";
/// TiFlash's ready API, on its proxy status port.
pub const TIFLASH_PATH: &str = "/tiflash/readyz";
/// Reason: the server's ready API says it is not ready yet.
pub const REASON_NOT_READY: &str = "StoreNotReady";
/// Reason: the server's ready API did not answer as it should.
pub const REASON_READY_API_FAILED: &str = "ReadyAPIUnanswered";

/// A `Ready` verdict: whether, the reason and the message; `None` keeps the condition as it is.
pub type Verdict = Option<(bool, &'static str, String)>;

/// Whether a TiKV asks its ready API: the gate is on and the version has the path. An older TiKV
/// answers 404, which would hold its Pod unready for good, so it keeps the TCP probe.
pub fn tikv(tikv: &TiKV) -> bool {
    tikv.spec.features.contains(&Feature::UseTiKVReadyAPI)
        && !upgrade::is_lower(&tikv.spec.template.common.version, TIKV_FIRST_VERSION)
}

/// Whether a TiFlash asks its ready API (the gate is on).
pub fn tiflash(tiflash: &TiFlash) -> bool {
    tiflash.spec.features.contains(&Feature::UseTiFlashReadyAPI)
}

/// What a server said of itself when asked: ready (`Ok(None)`), not ready (the reason and
/// message to show), or nothing (`Err`, the reason and message to show if that matters).
pub type Said = Result<Option<(&'static str, String)>, (&'static str, String)>;

/// What a ready API's answer says: 200 ready, 500 not ready yet, anything else unanswered.
pub fn ready_api_said(answer: Result<bool, String>, path: &str) -> Said {
    match answer {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some((
            REASON_NOT_READY,
            format!("the store is Up in PD, but its ready API ({path}) says it is not ready yet"),
        ))),
        Err(error) => Err((
            REASON_READY_API_FAILED,
            format!("the store's ready API ({path}) did not answer: {error}"),
        )),
    }
}

/// The `Ready` verdict of a store's instance (TiKV or TiFlash): its Pod's readiness, else PD's word
/// on its store ([`store::ready_verdict`]), corrected by what the server said of itself.
pub fn verdict(
    was_ready: bool,
    pod: Option<&Pod>,
    view: &Result<PdView, String>,
    lookup: Option<StoreLookup<'_>>,
    said: Option<Said>,
) -> Verdict {
    let verdict = match readiness(pod) {
        Some(verdict) => Some(verdict),
        None => {
            let pd = match view {
                Ok(_) => Ok(lookup.unwrap_or(StoreLookup::NeverRegistered)),
                Err(error) => Err(error.as_str()),
            };
            store::ready_verdict(pd, was_ready)
        }
    };
    correct(verdict, said, was_ready)
}

/// The verdict from the Pod and PD, corrected by what the server said of itself (asked only of
/// a store whose verdict is Ready): not ready makes it not Ready; no answer makes it not Ready
/// unless it was Ready already, since one unanswered call does not take a serving store out.
pub fn correct(verdict: Verdict, said: Option<Said>, was_ready: bool) -> Verdict {
    match (verdict, said) {
        (Some((true, _, _)), Some(Ok(Some((reason, message))))) => Some((false, reason, message)),
        (Some((true, _, _)), Some(Err(_))) if was_ready => None,
        (Some((true, _, _)), Some(Err((reason, message)))) => Some((false, reason, message)),
        (verdict, _) => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Verdict {
        Some((true, "Ready", "store 1 is Up".into()))
    }

    #[test]
    fn the_ready_api_holds_a_store_pd_lists_up() {
        let said = |answer: Result<bool, &str>, path| {
            Some(ready_api_said(answer.map_err(str::to_owned), path))
        };
        assert_eq!(correct(ready(), said(Ok(true), TIKV_PATH), false), ready());
        assert_eq!(correct(ready(), None, false), ready());
        let (ok, reason, message) = correct(ready(), said(Ok(false), TIKV_PATH), true).unwrap();
        assert!(!ok);
        assert_eq!(reason, REASON_NOT_READY);
        assert!(message.contains("(/ready)"), "{message}");
        // One unanswered call keeps a Ready store Ready; a store not Ready yet says why it waits.
        assert_eq!(
            correct(ready(), said(Err("timed out"), TIFLASH_PATH), true),
            None
        );
        let (ok, reason, message) =
            correct(ready(), said(Err("timed out"), TIFLASH_PATH), false).unwrap();
        assert_eq!((ok, reason), (false, REASON_READY_API_FAILED));
        assert!(message.contains("timed out"), "{message}");
        // A store PD does not list Up stays as PD says, whatever the server answered.
        let down = Some((false, "StoreNotServing", "store 1 is Down".into()));
        assert_eq!(
            correct(down.clone(), said(Ok(true), TIKV_PATH), false),
            down
        );
    }

    #[test]
    fn tikv_asks_from_v9_only_and_tiflash_whenever_the_gate_is_on() {
        let mut kv = TiKV::new(
            "kv-a",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "kv-tikv-peer", "version": "v9.0.0",
                "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "1Gi"}]
            }))
            .unwrap(),
        );
        assert!(!tikv(&kv));
        kv.spec.features = vec![Feature::UseTiKVReadyAPI];
        assert!(tikv(&kv));
        kv.spec.template.common.version = "v8.5.2".into();
        assert!(!tikv(&kv));

        let mut flash = TiFlash::new(
            "flash-a",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "f-tiflash-peer", "version": "v8.5.2",
                "volumes": [{"name": "data", "mounts": [{"type": "data"}], "storage": "1Gi"}]
            }))
            .unwrap(),
        );
        assert!(!tiflash(&flash));
        flash.spec.features = vec![Feature::UseTiFlashReadyAPI];
        assert!(tiflash(&flash));
    }
}
