//! What a binary was built from: the workspace version, the git commit and the build date, for
//! `--version` and the `tidb_operator_build_info` metric.
//!
//! The commit and the date are passed in by the build (`hack/build-image.sh` sets
//! `TIDB_OPERATOR_GIT_COMMIT` and `TIDB_OPERATOR_BUILD_DATE`) rather than read from git by a build
//! script: a value read from git would rebuild every crate downstream of this one at each commit,
//! and Cargo already rebuilds when an `option_env!` variable changes. A plain `cargo build` says
//! `unknown` for both.

use std::sync::LazyLock;

use prometheus::{IntGaugeVec, Opts, Registry};

use crate::error::RuntimeError;

/// Name of the build information gauge: always 1, labelled `version`, `git_commit` and
/// `build_date`.
pub const BUILD_INFO: &str = "tidb_operator_build_info";

/// The workspace version (`[workspace.package] version`), which a release tags as `v<VERSION>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or `unknown`.
pub const GIT_COMMIT: &str = match option_env!("TIDB_OPERATOR_GIT_COMMIT") {
    Some(commit) if !commit.is_empty() => commit,
    _ => "unknown",
};

/// When the binary was built (RFC 3339, UTC), or `unknown`. Release builds use the commit's time
/// (`SOURCE_DATE_EPOCH`), so that the same commit builds the same binaries.
pub const BUILD_DATE: &str = match option_env!("TIDB_OPERATOR_BUILD_DATE") {
    Some(date) if !date.is_empty() => date,
    _ => "unknown",
};

/// The image a release publishes, holding every controller binary; the backup-controller runs
/// its Jobs from it unless told otherwise.
pub const IMAGE: &str = concat!(
    "ghcr.io/tidb-operator-rs/tidb-operator:v",
    env!("CARGO_PKG_VERSION")
);

/// What `--version` prints after the binary's name: `0.1.0 (commit abc…, built 2025-…)`.
pub fn version() -> &'static str {
    static LINE: LazyLock<String> =
        LazyLock::new(|| format!("{VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE})"));
    LINE.as_str()
}

/// Registers the build information gauge, set to 1, in `registry`.
pub(crate) fn register(registry: &Registry) -> Result<(), RuntimeError> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            BUILD_INFO,
            "Always 1; the labels say which version, commit and build date this binary is.",
        ),
        &["version", "git_commit", "build_date"],
    )
    .map_err(|source| RuntimeError::Metrics {
        name: BUILD_INFO,
        source,
    })?;
    registry
        .register(Box::new(gauge.clone()))
        .map_err(|source| RuntimeError::Metrics {
            name: BUILD_INFO,
            source,
        })?;
    gauge
        .with_label_values(&[VERSION, GIT_COMMIT, BUILD_DATE])
        .set(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_and_the_metric_name_the_same_build() {
        assert!(version().starts_with(VERSION));
        assert!(version().contains(&format!("commit {GIT_COMMIT}")));
        let metrics = crate::Metrics::new().unwrap();
        let text = metrics.render();
        let sample = format!(
            r#"{BUILD_INFO}{{build_date="{BUILD_DATE}",git_commit="{GIT_COMMIT}",version="{VERSION}"}} 1"#
        );
        assert!(text.contains(&sample), "{text}");
    }

    #[test]
    fn the_published_image_is_tagged_with_the_version() {
        assert!(IMAGE.ends_with(&format!(":v{VERSION}")));
    }
}
