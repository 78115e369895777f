//! `kubectl tidb`: a kubectl plugin to see, diagnose and operate the TiDB clusters the operator
//! runs. It reads through the user's kubeconfig and writes only what a command says it changes.

mod diagnose;
mod error;
mod ops;
mod render;
mod snapshot;
mod view;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use operator_api::core::{Cluster, PDGroup, TiCDCGroup, TiDBGroup, TiFlashGroup, TiKVGroup};
use serde::Serialize;

use crate::error::{EXIT_NOT_HEALTHY, EXIT_OK, Error, Result};
use crate::render::Style;

/// See, diagnose and operate TiDB clusters.
///
/// Exit codes: 0 success (for `status`, a healthy cluster); 1 error; 2 wrong command line;
/// 3 `status`: the cluster is not healthy, `watch --until-settled`: not settled in time;
/// 4 the API server refused a change (RBAC forbids it, or it is invalid).
#[derive(Debug, Parser)]
#[command(name = "kubectl-tidb", bin_name = "kubectl tidb", version)]
struct Cli {
    /// Path of the kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Every namespace (`list` only).
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Text for people (a table or a tree).
    Table,
    /// JSON, for scripts.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every TiDB cluster in the namespace (or every namespace with -A).
    List,
    /// The whole cluster at a glance; exit 3 when it is not healthy.
    Status {
        /// The Cluster's name.
        cluster: String,
        /// Keep watching (the same as `watch`).
        #[arg(long)]
        watch: bool,
        /// Add PD's own view (members, stores with leader and Region counts), read through the
        /// API server's service proxy.
        #[arg(long)]
        pd: bool,
    },
    /// A live view of each group's progress and what its roll waits for.
    Watch {
        /// The Cluster's name.
        cluster: String,
        /// Seconds between looks.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Exit 0 once every group is updated, ready and healthy.
        #[arg(long)]
        until_settled: bool,
        /// Give up after this many seconds (exit 3 with --until-settled).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Write a tar.gz archive with the cluster's objects (Secret values redacted), Events and a
    /// summary of what looks wrong.
    Diagnose {
        /// The Cluster's name.
        cluster: String,
        /// The archive to write (default: tidb-diagnose-<namespace>-<cluster>-<time>.tar.gz).
        #[arg(long, conflicts_with = "dir", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Write a directory instead of an archive.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Namespace of the operator's controllers, whose Pods, logs and metrics are included.
        #[arg(long, default_value = "tidb-admin")]
        operator_namespace: String,
    },
    /// Set VERSION on every group of the cluster; the operator upgrades them in order.
    Upgrade {
        /// The Cluster's name.
        cluster: String,
        /// The version, for example v8.5.3.
        version: String,
    },
    /// Stop the operator from changing anything of the cluster.
    Pause {
        /// The Cluster's name.
        cluster: String,
    },
    /// Let the operator act on the cluster again.
    Resume {
        /// The Cluster's name.
        cluster: String,
    },
    /// Restart a group (every instance, one at a time) or one instance, gracefully.
    Restart {
        /// The Cluster's name.
        cluster: String,
        /// A group's name, or an instance's name.
        target: String,
    },
}

/// A client and the namespace to use, from the kubeconfig and the flags.
async fn connect(cli: &Cli) -> Result<(Client, String)> {
    let kubeconfig = match &cli.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok((client, namespace))
}

fn emit<T: Serialize>(output: Output, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    let out = match output {
        Output::Table => text(),
        Output::Json => {
            let mut s =
                serde_json::to_string_pretty(value).map_err(|e| Error::Encode(e.to_string()))?;
            s.push('\n');
            s
        }
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| Error::Encode(e.to_string()))?,
    };
    print!("{out}");
    Ok(())
}

fn style() -> Style {
    Style {
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

async fn list(cli: &Cli, client: &Client, namespace: &str) -> Result<i32> {
    let ns = (!cli.all_namespaces).then_some(namespace);
    let clusters: Vec<Cluster> = snapshot::list(client, ns, None).await?;
    let pd: Vec<PDGroup> = snapshot::list(client, ns, None).await?;
    let tikv: Vec<TiKVGroup> = snapshot::list(client, ns, None).await?;
    let tidb: Vec<TiDBGroup> = snapshot::list(client, ns, None).await?;
    let tiflash: Vec<TiFlashGroup> = snapshot::list_optional(client, ns).await?;
    let ticdc: Vec<TiCDCGroup> = snapshot::list_optional(client, ns).await?;
    let now = Timestamp::now();
    let mut rows: Vec<view::ClusterRow> = clusters
        .iter()
        .map(|c| view::cluster_row(c, &pd, &tikv, &tidb, &tiflash, &ticdc, now))
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    emit(cli.output, &rows, || {
        render::list(&rows, cli.all_namespaces)
    })?;
    Ok(EXIT_OK)
}

async fn status(
    cli: &Cli,
    client: &Client,
    namespace: &str,
    cluster: &str,
    pd: bool,
) -> Result<i32> {
    let snapshot = snapshot::fetch(client, namespace, cluster).await?;
    let mut view = view::status_view(&snapshot);
    if pd {
        match snapshot::pd_view(client, &snapshot).await {
            Ok(pd) => view.pd_view = Some(pd),
            Err(e) => view.pd_view_error = Some(e),
        }
    }
    emit(cli.output, &view, || render::status(style(), &view))?;
    Ok(if view.healthy {
        EXIT_OK
    } else {
        EXIT_NOT_HEALTHY
    })
}

struct WatchOptions {
    interval: Duration,
    until_settled: bool,
    timeout: Option<Duration>,
}

async fn watch(
    client: &Client,
    namespace: &str,
    cluster: &str,
    options: WatchOptions,
) -> Result<i32> {
    let tty = std::io::stdout().is_terminal();
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        match snapshot::fetch(client, namespace, cluster).await {
            Ok(snapshot) => {
                let view = view::status_view(&snapshot);
                if tty {
                    print!("\x1b[2J\x1b[H{}", render::watch_screen(style(), &view));
                } else {
                    let time = Timestamp::now().strftime("%H:%M:%S");
                    for group in &view.groups {
                        let line = view::progress_line(group);
                        let key = format!("{}/{}", group.kind, group.name);
                        if last.get(&key) != Some(&line) {
                            println!("{time} {line}");
                            last.insert(key, line);
                        }
                    }
                }
                if options.until_settled && view::settled(&view) {
                    println!("cluster {namespace}/{cluster} settled");
                    return Ok(EXIT_OK);
                }
            }
            // Gone is final; anything else (an API server restart) is looked at again.
            Err(e @ Error::NotFound(_)) => return Err(e),
            Err(e) => eprintln!("{e}"),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(if options.until_settled {
                EXIT_NOT_HEALTHY
            } else {
                EXIT_OK
            });
        }
        tokio::time::sleep(options.interval).await;
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::Usage(format!("{flag} must be a non-negative number of seconds")))
}

fn print_changes(output: Output, changes: &[ops::Change]) -> Result<()> {
    emit(output, &changes, || {
        changes.iter().map(|c| format!("{c}\n")).collect()
    })
}

async fn run(cli: Cli) -> Result<i32> {
    if cli.all_namespaces && !matches!(cli.command, Command::List) {
        return Err(Error::Usage(
            "-A/--all-namespaces applies to `list` only; name the namespace with -n".into(),
        ));
    }
    let (client, namespace) = connect(&cli).await?;
    let ns = namespace.as_str();
    match &cli.command {
        Command::List => list(&cli, &client, ns).await,
        Command::Status {
            cluster,
            watch: false,
            pd,
        } => status(&cli, &client, ns, cluster, *pd).await,
        Command::Status {
            cluster,
            watch: true,
            ..
        } => {
            let options = WatchOptions {
                interval: Duration::from_secs(2),
                until_settled: false,
                timeout: None,
            };
            watch(&client, ns, cluster, options).await
        }
        Command::Watch {
            cluster,
            interval,
            until_settled,
            timeout,
        } => {
            let options = WatchOptions {
                interval: seconds(*interval, "--interval")?,
                until_settled: *until_settled,
                timeout: timeout.map(|t| seconds(t, "--timeout")).transpose()?,
            };
            watch(&client, ns, cluster, options).await
        }
        Command::Diagnose {
            cluster,
            file,
            dir,
            operator_namespace,
        } => {
            let snapshot = snapshot::fetch(&client, ns, cluster).await?;
            let bundle = diagnose::diagnose(&client, &snapshot, operator_namespace).await?;
            let top = format!(
                "tidb-diagnose-{ns}-{cluster}-{}",
                Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
            );
            let (count, path) = match (dir, file) {
                (Some(dir), _) => (bundle.write_dir(dir)?, dir.clone()),
                (None, file) => {
                    let path = file
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(format!("{top}.tar.gz")));
                    (bundle.write_archive(&path, &top)?, path)
                }
            };
            println!("wrote {count} files to {}", path.display());
            Ok(EXIT_OK)
        }
        Command::Upgrade { cluster, version } => {
            let snapshot = snapshot::fetch(&client, ns, cluster).await?;
            let changes = ops::upgrade(&client, &snapshot, version).await?;
            print_changes(cli.output, &changes)?;
            Ok(EXIT_OK)
        }
        Command::Pause { cluster } | Command::Resume { cluster } => {
            let paused = matches!(cli.command, Command::Pause { .. });
            let snapshot = snapshot::fetch(&client, ns, cluster).await?;
            let change = ops::set_paused(&client, &snapshot.cluster, paused).await?;
            print_changes(cli.output, std::slice::from_ref(&change))?;
            Ok(EXIT_OK)
        }
        Command::Restart { cluster, target } => {
            let snapshot = snapshot::fetch(&client, ns, cluster).await?;
            let at = Timestamp::now().to_string();
            let change = ops::restart(&client, &snapshot, target, &at).await?;
            print_changes(cli.output, std::slice::from_ref(&change))?;
            Ok(EXIT_OK)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
