//! Command-line flags common to every controller binary, parsed the same way everywhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One `--endpoint-override` value: where to reach a component instead of its in-cluster DNS
/// name, for running out of the cluster (development, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointOverride {
    /// What the override applies to: `pd`, `tikv`, `tidb`, optionally narrowed to one cluster as
    /// `<namespace>/<cluster>/pd`.
    pub target: String,
    /// The URL to use, for example `http://127.0.0.1:2379`.
    pub url: String,
}

impl FromStr for EndpointOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, url) = s
            .split_once('=')
            .ok_or_else(|| format!("expected TARGET=URL, got {s:?}"))?;
        if target.is_empty() {
            return Err(format!("empty target in {s:?}"));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "URL of {target} must start with http:// or https://, got {url:?}"
            ));
        }
        Ok(Self {
            target: target.to_string(),
            url: url.trim_end_matches('/').to_string(),
        })
    }
}

/// Flags every controller binary takes. Each binary flattens this into its own parser, so the
/// names, defaults and environment variables are the same everywhere.
#[derive(Clone, Debug, Args)]
pub struct CommonFlags {
    /// Watch only this namespace. Default: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,

    /// Name of the Lease used for leader election. Default: the binary's name.
    #[arg(long, env = "LEASE_NAME")]
    pub lease_name: Option<String>,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tidb-admin")]
    pub lease_namespace: String,

    /// Identity of this replica in the Lease. Default: the Pod name, else the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` env-filter syntax (for example `info,kube=warn`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Objects reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Wait this long after the last change to an object before reconciling it, so a burst of
    /// changes (a Pod created, scheduled, started and ready; the instances of a group turning
    /// ready one after another) is answered once, with one status write, instead of once per
    /// change. `0` reconciles on every change.
    #[arg(long, env = "DEBOUNCE", default_value = "200ms", value_parser = crate::duration::parse_flag)]
    pub debounce: std::time::Duration,

    /// The operator's image as this installation pulls it (a mirror, a digest), which PD, TiKV
    /// and TiCDC Pods take their hand-over binary from. Default: the image of this controller's
    /// own Pod, else the release's.
    #[arg(long, env = "OPERATOR_IMAGE")]
    pub operator_image: Option<String>,

    /// Test tooling: adds NAME=VALUE to the environment of every component container, as an
    /// operator version that renders Pods differently would; Pods already running are kept.
    #[arg(long = "test-pod-env", value_name = "NAME=VALUE", hide = true, value_parser = parse_env)]
    pub test_pod_env: Option<(String, String)>,

    /// Reach a component at a URL instead of its in-cluster DNS name, as TARGET=URL (repeatable).
    #[arg(long = "endpoint-override", value_name = "TARGET=URL")]
    pub endpoint_overrides: Vec<EndpointOverride>,
}

/// `NAME=VALUE`, with a NAME.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

impl CommonFlags {
    /// The Lease name: the flag, or the binary's name.
    pub fn lease_name_or<'a>(&'a self, binary: &'a str) -> &'a str {
        self.lease_name.as_deref().unwrap_or(binary)
    }

    /// How every controller of the binary schedules its reconciles.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default()
            .concurrency(self.concurrency)
            .debounce(self.debounce)
    }

    /// The overrides by target; a later flag wins over an earlier one for the same target.
    pub fn endpoint_override_map(&self) -> BTreeMap<&str, &str> {
        self.endpoint_overrides
            .iter()
            .map(|o| (o.target.as_str(), o.url.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonFlags,
    }

    fn parse(args: &[&str]) -> Result<CommonFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|c| c.common)
    }

    #[test]
    fn defaults_watch_everything_and_serve_on_8080() {
        let flags = parse(&[]).unwrap();
        assert_eq!(flags.namespace, None);
        assert_eq!(flags.http_address.port(), 8080);
        assert_eq!(flags.lease_name_or("pd-controller"), "pd-controller");
        assert_eq!(flags.concurrency, 4);
        assert_eq!(flags.debounce, std::time::Duration::from_millis(200));
        assert!(flags.endpoint_overrides.is_empty());
    }

    #[test]
    fn overrides_parse_and_the_last_wins() {
        let flags = parse(&[
            "--endpoint-override=pd=http://127.0.0.1:2379/",
            "--endpoint-override",
            "db/basic/pd=https://127.0.0.1:12379",
            "--endpoint-override=pd=http://127.0.0.1:3379",
        ])
        .unwrap();
        let map = flags.endpoint_override_map();
        assert_eq!(map.get("pd"), Some(&"http://127.0.0.1:3379"));
        assert_eq!(map.get("db/basic/pd"), Some(&"https://127.0.0.1:12379"));
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        let err = parse(&["--endpoint-override=pd"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("expected TARGET=URL"), "{err}");
        let err = parse(&["--endpoint-override=pd=127.0.0.1:2379"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("must start with http://"), "{err}");
        assert!(parse(&["--concurrency=0"]).is_err());
        assert!(parse(&["--log-format=xml"]).is_err());
    }
}
