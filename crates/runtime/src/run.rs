//! The harness every controller binary's `main` calls: metrics, the Kubernetes client, the HTTP
//! server, leader election, and the controllers started only while this replica leads.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client;
use crate::error::RuntimeError;
use crate::fence::WriteFence;
use crate::flags::CommonFlags;
use crate::http::{HttpServer, Readiness};
use crate::leader::{LeaderConfig, LeaderElector, LeaseLoss, default_identity};
use crate::metrics::Metrics;

/// How long the controllers get to stop after a termination signal before they are aborted. The
/// Lease is released after that, well within Kubernetes' default 30 s grace period.
pub const CONTROLLER_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long releasing the Lease may take at shutdown before the harness gives up on it (the
/// Lease then expires on its own).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the controllers get from the harness.
///
/// The controllers must stop, and stop writing, when `shutdown` is cancelled: it is cancelled the
/// moment the Lease is lost (by the renewal task itself) and on a termination signal. After a
/// loss the harness also aborts the controllers' task and exits the process.
#[derive(Clone)]
pub struct Context {
    /// The client, counting every request in `metrics`.
    pub client: kube::Client,
    /// The binary's metrics.
    pub metrics: Metrics,
    /// Readiness for `/readyz`: call `readiness.set_synced(true)` once the controllers' caches
    /// have synced; until then a leading replica reports 503.
    pub readiness: Readiness,
    /// The command-line flags.
    pub flags: CommonFlags,
    /// Cancelled when the controllers must stop.
    pub shutdown: CancellationToken,
    /// Open while this replica leads ([`crate::fence`]): the client's writes, and those of the
    /// PD clients the controllers make, go only while it is.
    pub fence: WriteFence,
}

/// Everything [`run_with`] needs, for callers (tests) that build the client themselves.
#[derive(Clone)]
pub struct Setup {
    /// The binary's name: the default Lease name.
    pub binary: String,
    /// The command-line flags.
    pub flags: CommonFlags,
    /// The client; build it with [`client::fenced_client_from_config`] (with `fence`) so requests
    /// are counted and writes stop with leadership.
    pub client: kube::Client,
    /// The metrics the client counts into.
    pub metrics: Metrics,
    /// Leader-election timing.
    pub leader: LeaderConfig,
    /// The fence of `client`, which the elector keeps open while this replica leads.
    pub fence: WriteFence,
}

/// How [`run_with`] ended without an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Stopped on request (a termination signal) or the controllers finished; the Lease was
    /// released if held.
    Stopped,
    /// The Lease was lost; the controllers were cancelled and aborted.
    LeaseLost(LeaseLoss),
}

/// The whole `main` of a controller binary once its flags are parsed: logging as the flags say,
/// a multi-threaded Tokio runtime, and [`run`] on it until shutdown.
pub fn main<F, Fut>(
    binary: &'static str,
    flags: CommonFlags,
    controllers: F,
) -> Result<(), crate::error::BoxError>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), RuntimeError>> + Send + 'static,
{
    crate::telemetry::init(flags.log_format, &flags.log_filter)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Reconciles are deep futures; unoptimised builds need more than the default 2 MiB.
        .thread_stack_size(8 * 1024 * 1024)
        .build()?;
    runtime.block_on(run(binary, flags, controllers))?;
    Ok(())
}

/// Runs a controller binary until SIGTERM or SIGINT.
///
/// In order: builds the metrics and the client (from the Pod's service account or
/// `KUBECONFIG`), starts the HTTP server on `--http-address`, then stands by for the Lease
/// `--lease-name` (default: `binary`) in `--lease-namespace`. Once leading it sets the leader gauge
/// and calls `controllers`. Logging must already be initialised.
///
/// - On SIGTERM/SIGINT: cancels `Context::shutdown`, waits up to [`CONTROLLER_STOP_GRACE`] for
///   the controllers, releases the Lease, stops the server and returns `Ok(())`.
/// - When the Lease is lost: cancels and aborts the controllers, logs an error and exits the
///   process with status 1, so it restarts as a candidate.
/// - When the controllers return an error: logs it, releases the Lease, stops the server and
///   returns the error, so `main` exits non-zero.
pub async fn run<F, Fut>(
    binary: &'static str,
    flags: CommonFlags,
    controllers: F,
) -> Result<(), RuntimeError>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), RuntimeError>> + Send + 'static,
{
    // Listen for signals first, so one that arrives during start-up is handled, not fatal.
    let signals = Signals::install()?;
    let metrics = Metrics::new()?;
    let mut flags = flags;
    let identity = flags.identity.clone().unwrap_or_else(default_identity);
    flags.identity = Some(identity.clone());
    if let Some(image) = &flags.operator_image {
        crate::build_info::set_given_operator_image(image);
    }
    if let Some((name, value)) = &flags.test_pod_env {
        tracing::warn!("--test-pod-env: every Pod built gets {name}; this is test tooling");
        crate::build::set_test_pod_env(name, value);
    }
    let fence = WriteFence::new();
    let user_agent = format!("{binary}/{} ({identity})", crate::build_info::VERSION);
    let client = client::client(&metrics, &fence, &user_agent).await?;
    let setup = Setup {
        binary: binary.to_string(),
        flags,
        client,
        metrics,
        leader: LeaderConfig::default(),
        fence,
    };
    match run_with(setup, signals.received(), controllers).await? {
        RunOutcome::Stopped => Ok(()),
        RunOutcome::LeaseLost(loss) => {
            tracing::error!(
                reason = %loss,
                "lost leadership: controllers stopped; exiting so this replica restarts as a candidate"
            );
            std::process::exit(1)
        }
    }
}

/// [`run`] with an explicit client, timing and stop signal, returning instead of exiting when
/// the Lease is lost. `stop` resolving plays the part of SIGTERM.
pub async fn run_with<F, Fut, S>(
    setup: Setup,
    stop: S,
    controllers: F,
) -> Result<RunOutcome, RuntimeError>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), RuntimeError>> + Send + 'static,
    S: Future<Output = ()>,
{
    let Setup {
        binary,
        flags,
        client,
        metrics,
        leader,
        fence,
    } = setup;
    let lease = flags.lease_name_or(&binary).to_string();
    let identity = flags.identity.clone().unwrap_or_else(default_identity);
    let elector = LeaderElector::new(
        client.clone(),
        &flags.lease_namespace,
        &lease,
        identity,
        leader,
    )?
    .with_fence(fence.clone());
    metrics.set_leader(&lease, false);
    let readiness = Readiness::new();
    let server = HttpServer::start(flags.http_address, metrics.clone(), readiness.clone()).await?;
    tracing::info!(
        binary = %binary,
        lease = %lease,
        namespace = %flags.lease_namespace,
        identity = %elector.identity(),
        "standing by for leadership"
    );

    let mut stop = std::pin::pin!(stop);
    let leadership = tokio::select! {
        leadership = elector.acquire() => leadership,
        () = &mut stop => {
            tracing::info!("stopping while standing by");
            // The Lease may have been taken just as the signal came.
            release_bounded(&elector).await;
            server.stop().await?;
            return Ok(RunOutcome::Stopped);
        }
    };

    metrics.set_leader(&lease, true);
    readiness.set_leading(true);
    let shutdown = leadership.lost_token().child_token();
    let context = Context {
        client,
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        flags,
        shutdown: shutdown.clone(),
        fence,
    };
    let mut task = tokio::spawn(controllers(context));
    let step_down = |metrics: &Metrics, readiness: &Readiness| {
        metrics.set_leader(&lease, false);
        readiness.set_leading(false);
        readiness.set_synced(false);
    };

    let result = tokio::select! {
        biased;
        loss = leadership.lost() => {
            // The controllers saw `shutdown` cancelled already; make sure nothing runs on.
            shutdown.cancel();
            task.abort();
            step_down(&metrics, &readiness);
            let _ = server.stop().await;
            return Ok(RunOutcome::LeaseLost(loss));
        }
        () = &mut stop => {
            tracing::info!("stopping: waiting for the controllers");
            shutdown.cancel();
            let ended = tokio::select! {
                biased;
                loss = leadership.lost() => {
                    task.abort();
                    step_down(&metrics, &readiness);
                    let _ = server.stop().await;
                    return Ok(RunOutcome::LeaseLost(loss));
                }
                ended = tokio::time::timeout(CONTROLLER_STOP_GRACE, &mut task) => ended,
            };
            match ended {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the controllers failed while stopping"),
                Ok(Err(e)) => tracing::warn!(error = %e, "the controllers' task ended abnormally"),
                Err(_) => {
                    tracing::warn!(
                        grace = ?CONTROLLER_STOP_GRACE,
                        "the controllers did not stop in time; aborting them"
                    );
                    task.abort();
                    let _ = (&mut task).await;
                }
            }
            Ok(RunOutcome::Stopped)
        }
        ended = &mut task => {
            shutdown.cancel();
            // The controllers stop the moment leadership is lost, which can be just before the
            // loss is reported: a lost Lease is a loss, not a finish.
            if leadership.is_lost() {
                let loss = leadership.lost().await;
                step_down(&metrics, &readiness);
                let _ = server.stop().await;
                return Ok(RunOutcome::LeaseLost(loss));
            }
            match ended {
                Ok(Ok(())) => {
                    tracing::info!("the controllers finished");
                    Ok(RunOutcome::Stopped)
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the controllers failed");
                    Err(e)
                }
                Err(e) => {
                    tracing::error!(error = %e, "the controllers' task ended abnormally");
                    Err(RuntimeError::ControllerTask(e))
                }
            }
        }
    };

    // The controllers have stopped: hand the Lease over.
    step_down(&metrics, &readiness);
    match tokio::time::timeout(RELEASE_TIMEOUT, leadership.release()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the Lease; it will expire"),
        Err(_) => tracing::warn!("releasing the Lease timed out; it will expire"),
    }
    server.stop().await?;
    result
}

async fn release_bounded(elector: &LeaderElector) {
    match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the Lease; it will expire"),
        Err(_) => tracing::warn!("releasing the Lease timed out; it will expire"),
    }
}

/// SIGTERM and SIGINT, listened for from the moment they are installed.
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, RuntimeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                terminate: signal(SignalKind::terminate()).map_err(RuntimeError::Signal)?,
                interrupt: signal(SignalKind::interrupt()).map_err(RuntimeError::Signal)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Resolves at the first SIGTERM or SIGINT.
    async fn received(self) {
        #[cfg(unix)]
        {
            let Signals {
                mut terminate,
                mut interrupt,
            } = self;
            tokio::select! {
                _ = terminate.recv() => tracing::info!("received SIGTERM"),
                _ = interrupt.recv() => tracing::info!("received SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            let Signals {} = self;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("received Ctrl-C");
        }
    }
}
