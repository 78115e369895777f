//! The upgrade order: PD, then TiKV, then TiDB. A group starts a new version only when every
//! group it depends on runs that version with all replicas updated and ready, unless the
//! Cluster's `upgradePolicy` is `NoConstraints`.

use operator_api::core::{ComponentGroupStatus, UpgradePolicy};

/// What the gate needs of a group this one depends on.
#[derive(Clone, Debug)]
pub struct Dependency<'a> {
    /// Kind and name for messages, e.g. `PDGroup pd`.
    pub label: String,
    /// Its desired replicas.
    pub replicas: i32,
    /// Its generation.
    pub generation: Option<i64>,
    /// Its status.
    pub status: Option<&'a ComponentGroupStatus>,
}

/// Versions compare without a leading `v`.
pub fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// `Ok` when the group may move to `version`, else why it waits (for a condition message).
/// `running` is the version the group's instances run now: a group that already runs `version`
/// (or has no instances yet) never waits.
pub fn may_upgrade(
    policy: Option<UpgradePolicy>,
    version: &str,
    running: Option<&str>,
    dependencies: &[Dependency<'_>],
) -> Result<(), String> {
    if policy == Some(UpgradePolicy::NoConstraints) {
        return Ok(());
    }
    match running {
        None => return Ok(()),
        Some(current) if same_version(current, version) => return Ok(()),
        Some(_) => {}
    }
    let waiting: Vec<String> = dependencies
        .iter()
        .filter_map(|dep| {
            let Some(status) = dep.status else {
                return Some(format!("{} has no status yet", dep.label));
            };
            let settled = status.common.observed_generation == dep.generation.unwrap_or_default()
                && same_version(&status.group.version, version)
                && status.group.updated_replicas == dep.replicas
                && status.group.ready_replicas == dep.replicas;
            (!settled).then(|| {
                format!(
                    "{} runs {} ({} of {} updated, {} ready)",
                    dep.label,
                    if status.group.version.is_empty() {
                        "an unknown version"
                    } else {
                        &status.group.version
                    },
                    status.group.updated_replicas,
                    dep.replicas,
                    status.group.ready_replicas
                )
            })
        })
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "waiting to upgrade to {version}: {}",
            waiting.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(version: &str, updated: i32, ready: i32) -> ComponentGroupStatus {
        let mut s = ComponentGroupStatus::default();
        s.common.observed_generation = 2;
        s.group.version = version.into();
        s.group.updated_replicas = updated;
        s.group.ready_replicas = ready;
        s
    }

    fn dep(status: &ComponentGroupStatus) -> Dependency<'_> {
        Dependency {
            label: "PDGroup pd".into(),
            replicas: 3,
            generation: Some(2),
            status: Some(status),
        }
    }

    #[test]
    fn waits_until_the_dependency_runs_the_version_everywhere() {
        let rolling = status("v8.5.2", 2, 3);
        let err = may_upgrade(None, "v8.5.3", Some("v8.5.2"), &[dep(&rolling)]).unwrap_err();
        assert!(
            err.contains("PDGroup pd runs v8.5.2 (2 of 3 updated, 3 ready)"),
            "{err}"
        );
        let done = status("8.5.3", 3, 3);
        assert!(may_upgrade(None, "v8.5.3", Some("v8.5.2"), &[dep(&done)]).is_ok());
    }

    #[test]
    fn no_constraints_new_groups_and_current_versions_never_wait() {
        let rolling = status("v8.5.2", 0, 3);
        assert!(
            may_upgrade(
                Some(UpgradePolicy::NoConstraints),
                "v8.5.3",
                Some("v8.5.2"),
                &[dep(&rolling)]
            )
            .is_ok()
        );
        assert!(may_upgrade(None, "v8.5.3", None, &[dep(&rolling)]).is_ok());
        assert!(may_upgrade(None, "v8.5.3", Some("v8.5.3"), &[dep(&rolling)]).is_ok());
    }
}
