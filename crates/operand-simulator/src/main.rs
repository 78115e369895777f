//! `operand-simulator`: TEST TOOLING that stands in for PD, TiKV and TiDB on loopback for the
//! operator's tests and local runs. Modelled on the tikv/pd source; never a substitute for the
//! real API's contract.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use operand_simulator::clock::Now;
use operand_simulator::http::{self, lock};
use operand_simulator::sim::{Sim, SimConfig};
use operand_simulator::watch;
use operator_runtime::duration::parse_flag as parse_duration;

/// TEST TOOLING ONLY — a loopback stand-in for PD, TiKV and TiDB, for the operator's tests.
///
/// Watches the operand Pods (label pingcap.com/managed-by=tidb-operator) through the Kubernetes
/// API (KUBECONFIG, or the in-cluster config) and answers, for many clusters at once:
/// PD's HTTP API at http://ADDR/clusters/{namespace}/{cluster}/pd/api/v1/...,
/// TiDB status at http://ADDR/clusters/{namespace}/{cluster}/tidb/{instance}/status,
/// TiKV status at http://ADDR/clusters/{namespace}/{cluster}/tikv/{instance}/status,
/// and a control API for faults and an event log at http://ADDR/control/clusters/....
///
/// Modelled on the tikv/pd source, not checked against a running pd-server; never a substitute
/// for the real API's contract. See docs/operand-simulator.md.
#[derive(Debug, Parser)]
#[command(name = "operand-simulator", version = operator_runtime::build_info::version())]
struct Args {
    /// Address to serve on; loopback only. Port 0 picks a free port. The first line on stdout
    /// is `listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Also write the bound ADDR (host:port) to this file once listening.
    #[arg(long, value_name = "PATH")]
    address_file: Option<PathBuf>,

    /// Simulation step: elections, leader eviction, region moves.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    tick: Duration,

    /// PD's replication.max-replicas for every cluster (until changed through the API).
    #[arg(long, default_value_t = 3)]
    max_replicas: u64,

    /// PD's replication.location-labels, comma-separated.
    #[arg(long, default_value = "zone,host")]
    location_labels: String,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,

    /// How long a store whose Pod stopped stays Disconnected before it is Down.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    down_after: Duration,

    /// How long a PD or TiKV Pod runs before it serves (process start, joining, log replay):
    /// until then a PD member does not vote or lead and a TiKV Pod does not register or
    /// heartbeat. 0 serves at once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    start_delay: Duration,

    /// How long a crash-looping store (the `store-flap` fault) is Down in each cycle.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    flap_down: Duration,

    /// How long a crash-looping store is Up in each cycle.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    flap_up: Duration,

    /// Regions per cluster.
    #[arg(long, default_value_t = 30)]
    regions: usize,

    /// Do not create stand-in PersistentVolumes for the operands' pending PVCs (the local control
    /// plane has no storage; without them, Pods with volumes are never scheduled).
    #[arg(long)]
    no_volumes: bool,

    /// Leaders moved off each evicted store, and region peers moved per cluster, per tick.
    #[arg(long, default_value_t = 3)]
    moves_per_tick: usize,

    /// Also serve PD, TiKV, TiDB, TiCDC and TiFlash over mutual TLS, for clusters with
    /// `tlsCluster` on: one loopback listener per component, with the certificates of the
    /// namespace's TLS Secrets (see docs/operand-simulator.md). Their addresses are written to
    /// this file, one `component=ADDR` line each; the record of their handshakes is at
    /// /control/tls.
    #[arg(long, value_name = "PATH")]
    tls_address_file: Option<PathBuf>,

    /// The DNS domain of the Kubernetes cluster (the kubelet's `--cluster-domain`): a Pod is
    /// reachable at `<hostname>.<subdomain>.<namespace>`, with `.svc` and `.svc.<domain>`.
    #[arg(long, default_value = operand_simulator::sim::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,

    /// Also watch the API server of this kubeconfig, a second Kubernetes cluster whose DNS
    /// domain is DOMAIN: its operand Pods are simulated too, and a PD Pod of either whose `join`
    /// names a member of the other (by its fully qualified name) makes them one PD cluster.
    /// Namespace and cluster names must not repeat across the two.
    #[arg(long, value_name = "KUBECONFIG=DOMAIN")]
    remote: Option<String>,

    /// Run the hand-over preStop hook of deleted PD Pods with this `tidb-handover` binary, as a
    /// kubelet would, holding each Pod (by a finalizer) until its hook has returned.
    #[arg(long, value_name = "PATH")]
    pre_stop_binary: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen {} is not a loopback address: the simulator is test tooling and serves only on loopback",
            args.listen
        );
    }
    if args.tick.is_zero() {
        bail!("--tick must be longer than zero");
    }
    if args.max_replicas == 0 {
        bail!("--max-replicas must be at least 1");
    }

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster config)")?;

    let config = SimConfig {
        max_replicas: args.max_replicas,
        location_labels: args
            .location_labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        regions: args.regions,
        down_after: args.down_after,
        start_delay: args.start_delay,
        flap_down: args.flap_down,
        flap_up: args.flap_up,
        moves_per_tick: args.moves_per_tick.max(1),
        tick: args.tick,
        cluster_domain: args.cluster_domain.clone(),
    };
    let sim = Arc::new(Mutex::new(Sim::new(config)));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}").context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
    if let Some(path) = &args.address_file {
        // Written whole, then renamed, so a reader never sees a partial address.
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, addr.to_string())
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    }
    tracing::info!(%addr, "operand simulator (test tooling) serving");

    let tls_record = operand_simulator::tls::TlsRecord::default();
    if let Some(path) = &args.tls_address_file {
        let mut lines = String::new();
        for component in ["pd", "tikv", "tidb", "ticdc", "tiflash"] {
            let tcp = tokio::net::TcpListener::bind((args.listen.ip(), 0))
                .await
                .with_context(|| format!("binding the TLS listener of {component}"))?;
            let tls_addr = tcp.local_addr().context("reading the bound address")?;
            lines.push_str(&format!("{component}={tls_addr}\n"));
            let listener = operand_simulator::tls::Listener::new(
                tcp,
                client.clone(),
                args.namespace.clone(),
                component,
                tls_record.clone(),
            );
            let router = http::router(sim.clone());
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(component, "TLS listener stopped: {err}");
                }
            });
        }
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, lines)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    }

    let pre_stop = args.pre_stop_binary.clone().map(|binary| {
        operand_simulator::pre_stop::PreStop::new(
            binary,
            format!("http://{addr}"),
            client.clone(),
            sim.clone(),
        )
    });
    tokio::spawn(watch::run(
        client.clone(),
        args.namespace.clone(),
        None,
        sim.clone(),
        pre_stop,
    ));
    if let Some(remote) = &args.remote {
        let (path, domain) = remote
            .split_once('=')
            .with_context(|| format!("--remote {remote}: expected KUBECONFIG=DOMAIN"))?;
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading the kubeconfig {path}"))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .with_context(|| format!("loading the kubeconfig {path}"))?;
        let remote_client = kube::Client::try_from(config)
            .with_context(|| format!("connecting to the API server of {path}"))?;
        tokio::spawn(watch::run(
            remote_client.clone(),
            args.namespace.clone(),
            Some(domain.to_owned()),
            sim.clone(),
            None,
        ));
        tokio::spawn(watch::run_config_maps(
            remote_client.clone(),
            args.namespace.clone(),
            sim.clone(),
        ));
        if args.no_volumes {
            tokio::spawn(operand_simulator::volumes::watch_only(
                remote_client,
                args.namespace.clone(),
                sim.clone(),
            ));
        } else {
            tokio::spawn(operand_simulator::volumes::run(
                remote_client,
                args.namespace.clone(),
                sim.clone(),
            ));
        }
        tracing::info!(kubeconfig = %path, %domain, "also watching a second Kubernetes cluster");
    }
    tokio::spawn(watch::run_config_maps(
        client.clone(),
        args.namespace.clone(),
        sim.clone(),
    ));
    if !args.no_volumes {
        tokio::spawn(operand_simulator::volumes::run(
            client,
            args.namespace.clone(),
            sim.clone(),
        ));
    } else {
        tokio::spawn(operand_simulator::volumes::watch_only(
            client,
            args.namespace.clone(),
            sim.clone(),
        ));
    }

    let ticker_sim = sim.clone();
    let tick = args.tick;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            lock(&ticker_sim).tick(Now::real());
        }
    });

    let record = tls_record.clone();
    let control = axum::Router::new().route(
        "/control/tls",
        axum::routing::get(move || async move {
            let record = record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let body = serde_json::to_string(&record).unwrap_or_default();
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }),
    );
    axum::serve(listener, http::router(sim).merge(control))
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
