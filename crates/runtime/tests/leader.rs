//! Leader election and the run harness against the local control plane: one leader at a time,
//! hand-over on release, take-over after expiry, and a leader that loses its Lease stopping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use operator_runtime::client::fenced_client_from_config;
use operator_runtime::fence::{FenceLayer, WriteFence};
use operator_runtime::leader::lease_holder;
use operator_runtime::{
    CommonFlags, LeaderConfig, LeaderElector, Leadership, LeaseLoss, Metrics, RunOutcome, Setup,
    run_with,
};
use testkit::{LocalCluster, TestNamespace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Short timing, so the tests wait seconds rather than the production 15 s.
const FAST: LeaderConfig = LeaderConfig {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    renew_period: Duration::from_millis(500),
    retry_period: Duration::from_millis(500),
};

async fn setup(prefix: &str) -> (LocalCluster, Client, TestNamespace) {
    let cluster = LocalCluster::get().unwrap();
    let client = cluster.client().await.unwrap();
    let namespace = TestNamespace::create(&cluster, &client, prefix)
        .await
        .unwrap();
    (cluster, client, namespace)
}

fn elector(client: &Client, namespace: &str, lease: &str, identity: &str) -> LeaderElector {
    LeaderElector::new(client.clone(), namespace, lease, identity, FAST).unwrap()
}

async fn lease(client: &Client, namespace: &str, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap()
}

async fn holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    lease(client, namespace, name)
        .await
        .spec
        .as_ref()
        .and_then(lease_holder)
        .map(str::to_string)
}

/// Writes `thief` as the holder, as another replica (or a person) would.
async fn steal(client: &Client, namespace: &str, name: &str) {
    let patch = serde_json::json!({
        "spec": {
            "holderIdentity": "thief",
            "renewTime": MicroTime(Timestamp::now()),
            "leaseDurationSeconds": 3,
        }
    });
    Api::<Lease>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn exactly_one_leads_and_a_release_hands_over_at_once() {
    let (_cluster, client, ns) = setup("leader-handover").await;
    let ns = ns.name().to_string();
    let a = elector(&client, &ns, "ctl", "replica-a");
    let b = elector(&client, &ns, "ctl", "replica-b");
    let mut ta = tokio::spawn({
        let a = a.clone();
        async move { a.acquire().await }
    });
    let mut tb = tokio::spawn({
        let b = b.clone();
        async move { b.acquire().await }
    });

    let (first, mut waiting): (Leadership, _) =
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                l = &mut ta => (l.unwrap(), tb),
                l = &mut tb => (l.unwrap(), ta),
            }
        })
        .await
        .expect("nobody took the Lease");
    let leader_id = first.elector().identity().to_string();
    assert_eq!(
        holder(&client, &ns, "ctl").await.as_deref(),
        Some(leader_id.as_str())
    );

    // Longer than the lease duration: the leader renews, the other keeps standing by.
    tokio::time::sleep(FAST.lease_duration + Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "two leaders at once");
    assert!(!first.is_lost());
    assert_eq!(
        holder(&client, &ns, "ctl").await.as_deref(),
        Some(leader_id.as_str())
    );
    let transitions_before = lease(&client, &ns, "ctl")
        .await
        .spec
        .and_then(|s| s.lease_transitions)
        .unwrap_or_default();

    let released_at = Instant::now();
    assert!(first.release().await.unwrap(), "the leader held the Lease");
    let second = tokio::time::timeout(Duration::from_secs(3), &mut waiting)
        .await
        .expect("the standby did not take over within 3 s of the release")
        .unwrap();
    let took = released_at.elapsed();
    let second_id = second.elector().identity().to_string();
    assert_ne!(second_id, leader_id);
    let spec = lease(&client, &ns, "ctl").await.spec.unwrap();
    assert_eq!(lease_holder(&spec), Some(second_id.as_str()));
    assert_eq!(spec.lease_transitions, Some(transitions_before + 1));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    eprintln!("hand-over after release took {took:?}");
    assert!(second.release().await.unwrap());
    assert_eq!(holder(&client, &ns, "ctl").await, None);
}

#[tokio::test]
async fn a_leader_stopped_without_release_is_replaced_after_expiry() {
    let (_cluster, client, ns) = setup("leader-expiry").await;
    let ns = ns.name().to_string();
    let a = elector(&client, &ns, "ctl", "replica-a");
    let b = elector(&client, &ns, "ctl", "replica-b");
    let leadership = tokio::time::timeout(Duration::from_secs(10), a.acquire())
        .await
        .unwrap();
    // Renew at least once, then vanish as a crashed process would.
    tokio::time::sleep(FAST.renew_period * 2).await;
    drop(leadership);
    let stopped_at = Instant::now();
    let taken = tokio::time::timeout(Duration::from_secs(10), b.acquire())
        .await
        .expect("the standby never took the expired Lease");
    let took = stopped_at.elapsed();
    eprintln!("take-over after a crash took {took:?}");
    // The Lease was renewed at most one renew period before the crash, and holds for the lease
    // duration after its last renewal; the standby looks every retry period.
    assert!(
        took >= FAST.lease_duration - FAST.renew_period - Duration::from_millis(200),
        "took over after {took:?}, before the Lease expired"
    );
    assert!(
        took <= FAST.lease_duration + FAST.retry_period * 2 + Duration::from_secs(1),
        "took over only after {took:?}"
    );
    assert_eq!(
        holder(&client, &ns, "ctl").await.as_deref(),
        Some("replica-b")
    );
    assert!(taken.release().await.unwrap());
}

#[tokio::test]
async fn a_leader_whose_lease_is_stolen_stops_within_one_renew_period() {
    let (_cluster, client, ns) = setup("leader-stolen").await;
    let ns = ns.name().to_string();
    let a = elector(&client, &ns, "ctl", "replica-a");
    let leadership = tokio::time::timeout(Duration::from_secs(10), a.acquire())
        .await
        .unwrap();
    let token = leadership.lost_token();
    tokio::time::sleep(FAST.renew_period).await;
    assert!(!token.is_cancelled());

    steal(&client, &ns, "ctl").await;
    let stolen_at = Instant::now();
    let loss = tokio::time::timeout(FAST.renew_period * 3, leadership.lost())
        .await
        .expect("the leader did not notice");
    let took = stolen_at.elapsed();
    eprintln!("noticed the stolen Lease after {took:?}");
    assert_eq!(loss, LeaseLoss::TakenBy("thief".into()));
    assert!(token.is_cancelled());
    assert!(
        took <= FAST.renew_period + Duration::from_millis(500),
        "noticed only after {took:?}"
    );
    // Having lost, it neither renews nor releases over the new holder.
    tokio::time::sleep(FAST.renew_period * 2).await;
    assert_eq!(holder(&client, &ns, "ctl").await.as_deref(), Some("thief"));
    assert!(!leadership.release().await.unwrap());
    assert_eq!(holder(&client, &ns, "ctl").await.as_deref(), Some("thief"));
}

/// A client layer that, once cut, leaves every request unanswered: a network partition between
/// the leader and the API server (or, with `only_leases`, renewals alone blocked).
#[derive(Clone)]
struct Partition {
    cut: Arc<AtomicBool>,
    only_leases: bool,
}

impl<S> tower::Layer<S> for Partition {
    type Service = PartitionedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PartitionedService {
            inner,
            cut: self.cut.clone(),
            only_leases: self.only_leases,
        }
    }
}

#[derive(Clone)]
struct PartitionedService<S> {
    inner: S,
    cut: Arc<AtomicBool>,
    only_leases: bool,
}

impl<S, B> tower::Service<http::Request<B>> for PartitionedService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let blocked = !self.only_leases || request.uri().path().contains("/leases");
        if self.cut.load(Ordering::SeqCst) && blocked {
            Box::pin(futures::future::pending())
        } else {
            Box::pin(self.inner.call(request))
        }
    }
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_gives_up_before_its_lease_expires() {
    let (cluster, client, ns) = setup("leader-partition").await;
    let ns = ns.name().to_string();
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let partitioned = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&Partition {
            cut: cut.clone(),
            only_leases: false,
        })
        .build();
    let a = elector(&partitioned, &ns, "ctl", "replica-a");
    let b = elector(&client, &ns, "ctl", "replica-b");
    let leadership = tokio::time::timeout(Duration::from_secs(10), a.acquire())
        .await
        .unwrap();
    tokio::time::sleep(FAST.renew_period * 2).await;
    assert!(!leadership.is_lost());

    cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    let mut standby = tokio::spawn(async move { b.acquire().await });
    let loss = tokio::time::timeout(
        FAST.renew_deadline + Duration::from_secs(1),
        leadership.lost(),
    )
    .await
    .expect("the cut-off leader never gave up");
    let gave_up_after = cut_at.elapsed();
    assert_eq!(loss, LeaseLoss::RenewDeadline(FAST.renew_deadline));
    assert!(leadership.lost_token().is_cancelled());
    assert!(
        !standby.is_finished(),
        "the standby took over before the old leader gave up"
    );
    eprintln!("the cut-off leader gave up after {gave_up_after:?}");

    // The Lease expires a lease duration after the last renewal; only then does the standby lead.
    let taken = tokio::time::timeout(Duration::from_secs(10), &mut standby)
        .await
        .expect("the standby never took over")
        .unwrap();
    let took = cut_at.elapsed();
    eprintln!("the standby took over {took:?} after the cut");
    assert!(took > gave_up_after);
    assert_eq!(
        holder(&client, &ns, "ctl").await.as_deref(),
        Some("replica-b")
    );
    assert!(taken.release().await.unwrap());
}

#[tokio::test]
async fn a_leader_whose_renewals_are_blocked_writes_nothing_once_the_standby_may_lead() {
    let (cluster, client, ns) = setup("leader-fence").await;
    let ns = ns.name().to_string();
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    // Replica A's client as a binary builds it, with its Lease requests blockable underneath.
    let cut = Arc::new(AtomicBool::new(false));
    let fence = WriteFence::new();
    let metrics = Metrics::new().unwrap();
    let client_a = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&Partition {
            cut: cut.clone(),
            only_leases: true,
        })
        .with_layer(&FenceLayer::new(fence.clone(), metrics.clone()))
        .build();
    let a = elector(&client_a, &ns, "ctl", "replica-a").with_fence(fence.clone());
    let leadership = tokio::time::timeout(Duration::from_secs(10), a.acquire())
        .await
        .unwrap();

    // Work that escapes the controllers' cancellation (a write already on its way when the loss
    // is noticed, or a process paused and woken up): it keeps writing as long as it may.
    let config_maps = Api::<ConfigMap>::namespaced(client_a.clone(), &ns);
    let writes: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let log = writes.clone();
    let stray = tokio::spawn(async move {
        for seq in 0u64.. {
            let patch = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "writer"},
                "data": {"writer": "replica-a", "seq": seq.to_string()},
            });
            let ok = config_maps
                .patch("writer", &PatchParams::apply("a"), &Patch::Apply(&patch))
                .await
                .is_ok();
            log.lock().unwrap().push((Instant::now(), ok));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tokio::time::sleep(FAST.renew_period * 2).await;

    cut.store(true, Ordering::SeqCst);
    let b = elector(&client, &ns, "ctl", "replica-b");
    let standby = tokio::spawn(async move { b.acquire().await });
    tokio::time::timeout(
        FAST.renew_deadline + Duration::from_secs(1),
        leadership.lost(),
    )
    .await
    .expect("the leader whose renewals were blocked never gave up");
    let taken = tokio::time::timeout(Duration::from_secs(10), standby)
        .await
        .expect("the standby never took over")
        .unwrap();
    let taken_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stray.abort();

    let writes = writes.lock().unwrap().clone();
    let sent: Vec<Instant> = writes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(at, _)| *at)
        .collect();
    assert!(!sent.is_empty(), "the leader wrote nothing while it led");
    let last = sent.iter().max().copied().unwrap();
    assert!(
        last < taken_at,
        "replica A's write completed {:?} after replica B took the Lease",
        last - taken_at
    );
    assert!(
        metrics.fenced_writes() > 0,
        "the fence refused nothing: the stray writer kept writing"
    );
    assert_eq!(
        holder(&client, &ns, "ctl").await.as_deref(),
        Some("replica-b")
    );
    assert!(taken.release().await.unwrap());
}

// --- the run harness ---

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap()
}

async fn fetch(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// What a replica's controllers report to the test.
#[derive(Debug, PartialEq)]
enum Event {
    Started(String),
    Stopped(String),
}

struct Replica {
    identity: String,
    address: SocketAddr,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<Result<RunOutcome, operator_runtime::RuntimeError>>,
}

async fn start_replica(
    cluster: &LocalCluster,
    namespace: &str,
    identity: &str,
    events: mpsc::UnboundedSender<Event>,
) -> Replica {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let metrics = Metrics::new().unwrap();
    let fence = WriteFence::new();
    let client = fenced_client_from_config(config, &metrics, &fence, "harness/test").unwrap();
    let address = free_port();
    let flags = Cli::try_parse_from([
        "test".to_string(),
        format!("--http-address={address}"),
        format!("--lease-namespace={namespace}"),
        format!("--identity={identity}"),
    ])
    .unwrap()
    .common;
    let setup = Setup {
        binary: "harness-controller".into(),
        flags,
        client,
        metrics: metrics.clone(),
        leader: FAST,
        fence,
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let id = identity.to_string();
    let run = tokio::spawn(run_with(
        setup,
        async move {
            let _ = stop_rx.await;
        },
        move |ctx| async move {
            ctx.readiness.set_synced(true);
            let _ = events.send(Event::Started(id.clone()));
            ctx.shutdown.cancelled().await;
            let _ = events.send(Event::Stopped(id));
            Ok(())
        },
    ));
    Replica {
        identity: identity.to_string(),
        address,
        metrics,
        stop: Some(stop_tx),
        run,
    }
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>, within: Duration) -> Event {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("no event in time")
        .expect("event channel closed")
}

#[tokio::test]
async fn the_harness_leads_serves_health_and_metrics_and_hands_over() {
    let (cluster, client, ns) = setup("leader-harness").await;
    let ns = ns.name().to_string();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut one = start_replica(&cluster, &ns, "replica-one", events_tx.clone()).await;
    let Event::Started(first) = next_event(&mut events, Duration::from_secs(10)).await else {
        panic!("controllers stopped before starting");
    };
    assert_eq!(first, "replica-one");
    let mut two = start_replica(&cluster, &ns, "replica-two", events_tx.clone()).await;

    // Let the standby start and look at the Lease, and the leader renew a few times.
    tokio::time::sleep(FAST.renew_period * 4).await;
    assert_eq!(fetch(one.address, "/healthz").await.0, 200);
    assert_eq!(
        fetch(one.address, "/readyz").await.0,
        200,
        "leading and synced"
    );
    assert_eq!(fetch(two.address, "/readyz").await.0, 200, "standing by");
    let (status, body) = fetch(one.address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"tidb_operator_leader{lease="harness-controller"} 1"#),
        "{body}"
    );
    let (_, body) = fetch(two.address, "/metrics").await;
    assert!(
        body.contains(r#"tidb_operator_leader{lease="harness-controller"} 0"#),
        "{body}"
    );
    // Requests are counted by the client: the leader renews with updates, the standby only reads.
    assert!(one.metrics.api_requests_on("update", "leases") >= 2);
    assert!(body.contains(r#"verb="get""#), "{body}");
    assert_eq!(two.metrics.api_writes(), 0, "{body}");

    // SIGTERM (here: the stop future) on the leader: controllers stop, the Lease is released,
    // the standby takes over within a retry period or so.
    if let Some(stop) = one.stop.take() {
        let _ = stop.send(());
    }
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        Event::Stopped("replica-one".into())
    );
    let outcome = tokio::time::timeout(Duration::from_secs(10), &mut one.run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Stopped);
    let released_at = Instant::now();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(3)).await,
        Event::Started("replica-two".into())
    );
    eprintln!("harness hand-over took {:?}", released_at.elapsed());
    assert!(
        tokio::net::TcpStream::connect(one.address).await.is_err(),
        "the stopped replica's server still listens"
    );
    assert!(two.metrics.leader("harness-controller"));

    // The Lease is stolen from the new leader: its controllers are cancelled at once and the
    // harness reports the loss (the binary would exit 1).
    steal(&client, &ns, "harness-controller").await;
    assert_eq!(
        next_event(&mut events, FAST.renew_period * 3).await,
        Event::Stopped(two.identity.clone())
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), &mut two.run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        RunOutcome::LeaseLost(LeaseLoss::TakenBy("thief".into()))
    );
    assert!(!two.metrics.leader("harness-controller"));
    assert_eq!(
        holder(&client, &ns, "harness-controller").await.as_deref(),
        Some("thief")
    );
    drop(two.stop.take());
}
