//! What a binary was built from: the workspace version, the git commit and the build date, for
//! `--version` and the `tidb_operator_build_info` metric.
//!
//! The commit and the date are passed in by the build (`hack/build-image.sh` sets
//! `TIDB_OPERATOR_GIT_COMMIT` and `TIDB_OPERATOR_BUILD_DATE`) rather than read from git by a build
//! script: a value read from git would rebuild every crate downstream of this one at each commit,
//! and Cargo already rebuilds when an `option_env!` variable changes. A plain `cargo build` says
//! `unknown` for both.

use std::sync::{LazyLock, OnceLock};

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

static GIVEN_IMAGE: OnceLock<String> = OnceLock::new();
static DISCOVERED_IMAGE: OnceLock<String> = OnceLock::new();

/// Records the image `--operator-image` (`OPERATOR_IMAGE`) names; it wins over the discovered
/// one. Blank is no image.
pub fn set_given_operator_image(image: &str) {
    if !image.trim().is_empty() {
        let _ = GIVEN_IMAGE.set(image.trim().to_string());
    }
}

/// Records the image this controller runs from, as its own Pod names it (see
/// [`discover_operator_image`]); the first recorded wins.
pub fn set_operator_image(image: String) {
    let _ = DISCOVERED_IMAGE.set(image);
}

/// The operator's image, which operand Pods take helper binaries from: the one
/// `--operator-image` gives, else the image of this controller's own Pod when it was found,
/// else the release's [`IMAGE`].
pub fn operator_image() -> &'static str {
    GIVEN_IMAGE
        .get()
        .or(DISCOVERED_IMAGE.get())
        .map_or(IMAGE, String::as_str)
}

/// Finds the image of this controller's own Pod (`POD_NAME` in `POD_NAMESPACE`, as the
/// Deployments set them; the first container's), so an installation that mirrors or pins the
/// image hands the same one to operand Pods. Outside a Pod, or when the Pod cannot be read,
/// nothing is recorded and [`operator_image`] falls back.
pub async fn discover_operator_image(client: &kube::Client) {
    let (Ok(name), Ok(namespace)) = (std::env::var("POD_NAME"), std::env::var("POD_NAMESPACE"))
    else {
        return;
    };
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &namespace);
    match pods.get_opt(&name).await {
        Ok(Some(pod)) => {
            let image = pod
                .spec
                .and_then(|spec| spec.containers.into_iter().next())
                .and_then(|container| container.image);
            if let Some(image) = image {
                tracing::info!(%image, "the operator's image, from this controller's Pod");
                set_operator_image(image);
            }
        }
        Ok(None) => tracing::warn!(pod = %name, "this controller's Pod is not found"),
        Err(error) => tracing::warn!(%error, "cannot read this controller's Pod for its image"),
    }
}

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
