//! PD's ready API (`/pd/api/v2/ready`, and `/pd/api/v2/readyz` of newer PD), behind the
//! `UsePDReadyAPI` and `UsePDReadyAPIV2` feature gates: a member counts as ready only once it
//! says so (its Regions loaded), in its Pod's readiness probe and in the instance's `Ready`
//! condition, so a roll does not go on past a member that serves but has not loaded its Regions.

use k8s_openapi::api::core::v1::Probe;
use operator_api::core::{Feature, PD};
use operator_runtime::{build, upgrade};

use crate::build::{CLUSTER_TLS_DIR, client_port};

/// The first PD version with `/pd/api/v2/ready` (tidb-operator v2 asks for it from here on).
pub const FIRST_VERSION: &str = "v8.5.2";
/// Reason: PD's ready API says the member is not ready yet.
pub const REASON_NOT_READY: &str = "RegionsNotLoaded";
/// Reason: PD's ready API did not answer as it should.
pub const REASON_READY_API_FAILED: &str = "ReadyAPIUnanswered";

/// Which ready API the instance's gates ask for: `Some(false)` for `/pd/api/v2/ready`,
/// `Some(true)` for `/pd/api/v2/readyz`, `None` for none. `UsePDReadyAPIV2` wins; `UsePDReadyAPI`
/// counts only from [`FIRST_VERSION`] on (an older PD has no such path).
pub fn api(pd: &PD) -> Option<bool> {
    let features = &pd.spec.features;
    if features.contains(&Feature::UsePDReadyAPIV2) {
        return Some(true);
    }
    let version = &pd.spec.template.common.version;
    (features.contains(&Feature::UsePDReadyAPI) && !upgrade::is_lower(version, FIRST_VERSION))
        .then_some(false)
}

/// The path of the ready API, `v2` or not.
pub fn path(v2: bool) -> &'static str {
    if v2 {
        "/pd/api/v2/readyz"
    } else {
        "/pd/api/v2/ready"
    }
}

/// The readiness probe that asks the member's ready API on its own client port (over `https`
/// with the member's certificate when one is mounted).
pub fn probe(pd: &PD, v2: bool) -> Probe {
    build::ready_api_probe(client_port(&pd.spec.template), path(v2), CLUSTER_TLS_DIR)
}

/// What the ready API's answer means for the `Ready` condition: `None` when the member is ready,
/// else the reason and message. A 404 from a PD before [`FIRST_VERSION`] means it has no such
/// path: ready, as tidb-operator v2 takes it.
pub fn verdict(
    answer: &Result<bool, pd_client::Error>,
    version: &str,
    v2: bool,
) -> Option<(&'static str, String)> {
    match answer {
        Ok(true) => None,
        Ok(false) => Some((
            REASON_NOT_READY,
            format!(
                "PD's ready API ({}) says the member has not loaded its Regions yet",
                path(v2)
            ),
        )),
        Err(e) if e.is_not_found() && upgrade::is_lower(version, FIRST_VERSION) => None,
        Err(e) => Some((
            REASON_READY_API_FAILED,
            format!("PD's ready API ({}) did not answer: {e}", path(v2)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(version: &str, features: &[Feature]) -> PD {
        let mut pd = PD::new(
            "pd-a",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "pd-pd-peer", "version": version
            }))
            .unwrap(),
        );
        pd.spec.features = features.to_vec();
        pd
    }

    #[test]
    fn the_gates_choose_the_ready_api_and_an_old_pd_keeps_none() {
        assert_eq!(api(&pd("v8.5.2", &[])), None);
        assert_eq!(api(&pd("v8.5.2", &[Feature::UsePDReadyAPI])), Some(false));
        assert_eq!(api(&pd("v9.0.0", &[Feature::UsePDReadyAPI])), Some(false));
        assert_eq!(api(&pd("v8.5.1", &[Feature::UsePDReadyAPI])), None);
        assert_eq!(
            api(&pd(
                "v8.5.1",
                &[Feature::UsePDReadyAPI, Feature::UsePDReadyAPIV2]
            )),
            Some(true)
        );
    }

    #[test]
    fn the_probe_calls_the_members_own_port_with_its_certificate_when_there_is_one() {
        let probe = probe(&pd("v8.5.2", &[Feature::UsePDReadyAPI]), false);
        let command = probe.exec.unwrap().command.unwrap();
        assert_eq!(command[..2], ["sh".to_string(), "-c".to_string()]);
        let script = &command[2];
        assert!(
            script.contains("https://127.0.0.1:2379/pd/api/v2/ready;"),
            "{script}"
        );
        assert!(
            script.contains("--cert /var/lib/pd-tls/tls.crt"),
            "{script}"
        );
        assert!(
            script.contains("http://127.0.0.1:2379/pd/api/v2/ready;"),
            "{script}"
        );
        assert!(script.contains("--fail"), "{script}");
        let v2 = probe_script(&pd("v9.0.0", &[Feature::UsePDReadyAPIV2]));
        assert!(v2.contains("/pd/api/v2/readyz"), "{v2}");
    }

    fn probe_script(pd: &PD) -> String {
        let v2 = api(pd).unwrap();
        probe(pd, v2).exec.unwrap().command.unwrap().remove(2)
    }

    #[test]
    fn a_member_is_ready_when_the_api_says_so_or_an_old_pd_has_no_such_path() {
        let not_found = || pd_client::Error::Status {
            url: "u".into(),
            status: 404,
            body: "404 page not found".into(),
        };
        assert_eq!(verdict(&Ok(true), "v8.5.2", false), None);
        assert_eq!(
            verdict(&Ok(false), "v8.5.2", false).map(|v| v.0),
            Some(REASON_NOT_READY)
        );
        assert_eq!(verdict(&Err(not_found()), "v8.5.1", true), None);
        assert_eq!(
            verdict(&Err(not_found()), "v8.5.2", false).map(|v| v.0),
            Some(REASON_READY_API_FAILED)
        );
    }
}
