//! The upgrade order: PD, then TiKV, then TiDB. A group starts a new version only when every
//! group it depends on runs that version with all replicas updated and ready, unless the
//! Cluster's `upgradePolicy` is `NoConstraints`. Across Kubernetes clusters the gate also asks
//! PD: TiKV waits until every PD member PD lists runs the version, TiDB until every store does,
//! whichever Kubernetes cluster runs them.

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

/// Whether moving to `version` is gated at all: not under `NoConstraints`, and only for a group
/// whose instances run another version (`running`; `None` when it has none yet).
pub fn is_gated(policy: Option<UpgradePolicy>, version: &str, running: Option<&str>) -> bool {
    policy != Some(UpgradePolicy::NoConstraints)
        && running.is_some_and(|current| !same_version(current, version))
}

/// One PD member or store as PD reports it: its name (member name or store address) and the
/// version it says it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    /// Member name or store address.
    pub name: String,
    /// The version PD reports for it; empty when PD does not say.
    pub version: String,
}

/// `Ok` when PD reports every one of `reported` (its `what`s: "PD member", "store") running
/// `version`, else why the group waits. `reported` is `Err` when PD did not answer: silence is
/// no answer, so the group waits. A `version` that is no release number (`nightly`, a custom
/// tag) cannot be matched against what binaries report; then only the groups' own status gates
/// (see [`may_upgrade`]).
pub fn pd_runs(
    version: &str,
    what: &str,
    reported: Result<&[Reported], &str>,
) -> Result<(), String> {
    if semver::Version::parse(version.trim_start_matches('v')).is_err() {
        return Ok(());
    }
    let reported = reported.map_err(|error| {
        format!("waiting to upgrade to {version}: PD did not say which version each {what} runs: {error}")
    })?;
    let behind: Vec<String> = reported
        .iter()
        .filter(|r| !same_version(&r.version, version))
        .map(|r| {
            let runs = if r.version.is_empty() {
                "an unknown version"
            } else {
                r.version.as_str()
            };
            format!("{what} {} runs {runs}", r.name)
        })
        .collect();
    if behind.is_empty() {
        return Ok(());
    }
    let shown = behind
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let more = behind.len().saturating_sub(3);
    Err(format!(
        "waiting to upgrade to {version}: PD reports {} of {} {what}s not on it yet ({shown}{})",
        behind.len(),
        reported.len(),
        if more > 0 {
            format!("; {more} more")
        } else {
            String::new()
        }
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
    if !is_gated(policy, version, running) {
        return Ok(());
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

    fn reported(items: &[(&str, &str)]) -> Vec<Reported> {
        items
            .iter()
            .map(|(name, version)| Reported {
                name: (*name).into(),
                version: (*version).into(),
            })
            .collect()
    }

    #[test]
    fn waits_until_pd_reports_every_member_or_store_on_the_version() {
        // A remote member still on the old version holds the gate, whoever runs it.
        let members = reported(&[("pd-a", "v8.5.3"), ("pd-remote", "v8.5.2"), ("pd-b", "")]);
        let err = pd_runs("v8.5.3", "PD member", Ok(&members)).unwrap_err();
        assert!(
            err.contains("PD reports 2 of 3 PD members not on it yet"),
            "{err}"
        );
        assert!(err.contains("PD member pd-remote runs v8.5.2"), "{err}");
        assert!(err.contains("pd-b runs an unknown version"), "{err}");
        // Stores report versions without the leading v.
        let stores = reported(&[("tikv-a:20160", "8.5.3"), ("tikv-b:20160", "8.5.3")]);
        assert!(pd_runs("v8.5.3", "store", Ok(&stores)).is_ok());
        assert!(pd_runs("v8.5.3", "store", Ok(&[])).is_ok());
    }

    #[test]
    fn a_silent_pd_means_wait() {
        let err = pd_runs("v8.5.3", "store", Err("connection refused")).unwrap_err();
        assert!(err.contains("PD did not say") && err.contains("connection refused"));
    }

    #[test]
    fn a_version_that_is_no_release_number_is_not_matched_against_pd() {
        let stores = reported(&[("tikv-a:20160", "9.0.0-alpha")]);
        assert!(pd_runs("nightly", "store", Ok(&stores)).is_ok());
        assert!(pd_runs("nightly", "store", Err("silent")).is_ok());
    }

    #[test]
    fn only_a_version_change_is_gated() {
        assert!(is_gated(None, "v8.5.3", Some("v8.5.2")));
        assert!(!is_gated(None, "v8.5.3", Some("8.5.3")));
        assert!(!is_gated(None, "v8.5.3", None));
        assert!(!is_gated(
            Some(UpgradePolicy::NoConstraints),
            "v8.5.3",
            Some("v8.5.2")
        ));
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
