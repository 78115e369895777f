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

impl<'a> Dependency<'a> {
    /// What the gate needs of `group`.
    pub fn of<G>(group: &'a G) -> Self
    where
        G: operator_api::core::Group
            + kube::Resource<DynamicType = ()>
            + kube::core::object::HasStatus<Status = ComponentGroupStatus>,
    {
        Dependency {
            label: format!(
                "{} {}",
                G::kind(&()),
                group.meta().name.as_deref().unwrap_or_default()
            ),
            replicas: group.replicas(),
            generation: group.meta().generation,
            status: group.status(),
        }
    }
}

/// Versions compare without a leading `v`.
pub fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// Whether `a` is a lower version than `b` by SemVer (a leading `v` ignored). A version that
/// does not parse compares as neither lower nor higher: the refusal below never fires on a guess.
pub fn is_lower(a: &str, b: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

/// Why moving to `version` is refused: the highest of `running` (the versions the group's
/// instances are at) when it is above `version`, unless `allowed` (the group's
/// `core.pingcap.com/allow-downgrade` annotation). `None` when it is no downgrade.
pub fn downgrade_refusal<'a>(
    version: &str,
    running: impl IntoIterator<Item = &'a str>,
    allowed: bool,
) -> Option<String> {
    if allowed {
        return None;
    }
    let highest = running
        .into_iter()
        .filter(|r| is_lower(version, r))
        .reduce(|a, b| if is_lower(a, b) { b } else { a })?;
    Some(format!(
        "version {version} is lower than {highest}, which instances of this group run: TiDB \
         components support no downgrade, patch versions included, so nothing is rolled. Set \
         spec.template.spec.version back to {highest} or higher, or, if you know these versions \
         are compatible, annotate the group {}=true",
        operator_api::keys::ANNO_ALLOW_DOWNGRADE
    ))
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

    #[test]
    fn a_lower_version_than_one_running_is_refused_unless_allowed() {
        let cases: &[(&str, &[&str], bool, Option<&str>)] = &[
            ("v8.5.2", &["v8.5.2"], false, None),
            ("v8.5.3", &["v8.5.2"], false, None),
            ("v7.1.0", &["v8.5.2"], false, Some("v8.5.2")),
            ("v8.5.1", &["v8.5.2", "v8.5.1"], false, Some("v8.5.2")),
            (
                "8.5.1",
                &["v8.1.0", "v8.5.2", "v8.4.0"],
                false,
                Some("v8.5.2"),
            ),
            ("v8.5.0", &["v8.5.0-alpha"], false, None),
            ("v8.5.0-alpha", &["v8.5.0"], false, Some("v8.5.0")),
            ("v7.1.0", &["v8.5.2"], true, None),
            ("nightly", &["v8.5.2"], false, None),
            ("v7.1.0", &[], false, None),
        ];
        for (version, running, allowed, want) in cases {
            let got = downgrade_refusal(version, running.iter().copied(), *allowed);
            match want {
                None => assert_eq!(got, None, "{version} over {running:?}"),
                Some(highest) => {
                    let message = got.unwrap_or_default();
                    assert!(
                        message.contains(&format!("lower than {highest},")),
                        "{version} over {running:?}: {message}"
                    );
                    assert!(message.contains("core.pingcap.com/allow-downgrade=true"));
                }
            }
        }
    }
}
