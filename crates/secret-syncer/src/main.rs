//! `tidb-secret-syncer`: the sidecar of a TiCDC Pod under the `TiCDCDynamicSecretSyncer` feature
//! gate. It watches the Secrets of its namespace that carry the given labels and keeps each as
//! files under `<base-dir>/<secret-dir-name>/<secret>/`, so a changefeed can name a sink's
//! certificates by path and see them renewed without a restart. `/healthz` answers 200 once the
//! first list has been written (the Pod's startup probe waits for it). Flags are tidb-operator
//! v2's resource-syncer's.

mod files;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::files::Files;

/// Keeps labelled Secrets of a namespace as files.
#[derive(Debug, Parser)]
#[command(name = "tidb-secret-syncer", version)]
struct Args {
    /// The namespace whose Secrets are kept.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The directory the Secrets go under.
    #[arg(short = 'd', long)]
    base_dir: PathBuf,
    /// The subdirectory of `base-dir` for the Secrets.
    #[arg(long, default_value = "secrets")]
    secret_dir_name: String,
    /// The labels a Secret must carry, `key=value` comma separated.
    #[arg(
        short = 'l',
        long,
        default_value = "pingcap.com/managed-by=tidb-operator"
    )]
    labels: String,
    /// Where `/healthz` is served; `:8081` means every address.
    #[arg(long, default_value = ":8081")]
    health_probe_bind_address: String,
}

/// `:port` (Go's form) or `host:port`.
fn bind_address(given: &str) -> anyhow::Result<SocketAddr> {
    let full = if given.starts_with(':') {
        format!("0.0.0.0{given}")
    } else {
        given.to_string()
    };
    full.parse()
        .with_context(|| format!("health-probe-bind-address {given:?} is not host:port"))
}

/// The label selector of `key=value,...`, checked to be that.
fn selector(labels: &str) -> anyhow::Result<String> {
    let pairs: Vec<&str> = labels
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for pair in &pairs {
        let (key, _) = pair
            .split_once('=')
            .with_context(|| format!("label {pair:?} is not key=value"))?;
        anyhow::ensure!(!key.is_empty(), "label {pair:?} has no key");
    }
    Ok(pairs.join(","))
}

/// A Secret's data as bytes by key.
fn data_of(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let selector = selector(&args.labels)?;
    let dir = args.base_dir.join(&args.secret_dir_name);
    let files = Files::new(dir.clone()).with_context(|| format!("creating {}", dir.display()))?;
    let synced = Arc::new(AtomicBool::new(false));

    let address = bind_address(&args.health_probe_bind_address)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    let health = synced.clone();
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let health = health.clone();
            async move {
                if health.load(Ordering::Relaxed) {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "waiting for the first sync",
                    )
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the health endpoint stopped");
        }
    });

    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;
    let api: Api<Secret> = Api::namespaced(client, &args.namespace);
    tracing::info!(namespace = %args.namespace, %selector, dir = %dir.display(), "keeping Secrets as files");
    let config = watcher::Config::default().labels(&selector);
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed = BTreeSet::new();
    while let Some(event) = stream.next().await {
        let result = match event {
            Ok(watcher::Event::Init) => {
                listed.clear();
                Ok(())
            }
            Ok(watcher::Event::InitApply(secret)) => {
                listed.insert(secret.name_any());
                write(&files, &secret)
            }
            Ok(watcher::Event::InitDone) => {
                let kept = files.retain(&listed).context("removing deleted Secrets");
                if kept.is_ok() && !synced.swap(true, Ordering::Relaxed) {
                    tracing::info!(secrets = listed.len(), "first sync done");
                }
                kept
            }
            Ok(watcher::Event::Apply(secret)) => write(&files, &secret),
            Ok(watcher::Event::Delete(secret)) => {
                let name = secret.name_any();
                tracing::info!(secret = %name, "removed");
                files
                    .remove(&name)
                    .with_context(|| format!("removing Secret {name}"))
            }
            Err(error) => {
                tracing::warn!(%error, "watching Secrets failed; retrying");
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot keep a Secret as files"
            );
        }
    }
    Ok(())
}

/// Writes `secret`'s files when its version is new.
fn write(files: &Files, secret: &Secret) -> anyhow::Result<()> {
    let name = secret.name_any();
    let version = secret.resource_version().unwrap_or_default();
    if files
        .write(&name, &version, &data_of(secret))
        .with_context(|| format!("writing Secret {name}"))?
    {
        tracing::info!(secret = %name, %version, "written");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flags_read_as_tidb_operator_v2_writes_them() {
        assert_eq!(
            bind_address(":8081").unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
        assert!(bind_address("nowhere").is_err());
        assert_eq!(
            selector("pingcap.com/cluster=basic, pingcap.com/component=ticdc").unwrap(),
            "pingcap.com/cluster=basic,pingcap.com/component=ticdc"
        );
        assert!(selector("nokey").is_err());
        let args = Args::try_parse_from([
            "tidb-secret-syncer",
            "-d",
            "/var/lib/kube-resource",
            "-n",
            "db",
            "-l",
            "a=b",
        ])
        .unwrap();
        assert_eq!(args.namespace, "db");
        assert_eq!(args.secret_dir_name, "secrets");
    }

    #[test]
    fn a_secrets_data_is_its_bytes() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}
        }))
        .unwrap();
        assert_eq!(data_of(&secret)["k"], b"value");
    }
}
