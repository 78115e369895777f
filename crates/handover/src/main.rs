//! `tidb-handover`: what a PD, TiKV or TiCDC Pod runs before its server stops, whoever deleted
//! the Pod (`kubectl delete pod`, an eviction, a drain, the operator). The kubelet runs the
//! preStop hook before it signals the server, so a member that leads PD hands leadership to a
//! healthy peer, a store moves its Region leaders to other stores, and a TiCDC capture hands its
//! ownership and tables to the others, instead of dropping them abruptly.
//!
//! - `tidb-handover install DEST`: copies this binary to `DEST`. The Pod's init container runs it
//!   from the operator's image (which has no shell), into a volume the server's container shares.
//! - `tidb-handover pd --pd URL --member NAME`: if `NAME` leads PD, asks PD to transfer
//!   leadership to the first healthy other member and waits until it has moved, bounded by
//!   `--timeout-seconds`. Exits 0 when the member does not lead (any more), 1 when it still does
//!   (no healthy peer, PD silent, the time ran out): the kubelet then records a
//!   `FailedPreStopHook` Event and stops the member anyway.
//! - `tidb-handover tikv --config FILE --store-host HOST`: asks the PD that TiKV's config file
//!   names (`pd.endpoints`, over TLS with its `security` paths), finds the store whose address
//!   is on `HOST` (the Pod's DNS name, with or without `.svc.<domain>`), puts it under PD's
//!   evict-leader scheduler and waits until it holds no leader, bounded by `--timeout-seconds`.
//!   The scheduler stays: the operator removes it once the store serves again. Exits 0 when the
//!   store holds no leader (or is not an Up store), 1 otherwise.
//! - `tidb-handover ticdc --ticdc URL`: the capture of the TiCDC server at `URL` (its own, from
//!   inside the Pod) resigns ownership if it is the owner, then hands its tables to the other
//!   captures (TiCDC's drain), bounded by `--timeout-seconds`; alone, it has no one to hand to.
//!   Exits 0 once it owns nothing and holds no table, 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};
use pd_client::{MemberHealth, MembersInfo, PdClient, TlsConfig};
use tokio::time::Instant;

/// Overrides `--pd`: PD's URL when the hook runs outside the Pod (the test world).
pub const PD_URL_ENV: &str = "TIDB_HANDOVER_PD";
/// Overrides `--ticdc`, likewise.
pub const TICDC_URL_ENV: &str = "TIDB_HANDOVER_TICDC";

/// How long one request to PD may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How often PD is asked again while leadership moves.
const POLL: Duration = Duration::from_millis(300);
/// How long a transfer request is given before it is asked for again.
const TRANSFER_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Parser)]
#[command(
    name = "tidb-handover",
    version,
    about = "The preStop step of PD, TiKV and TiCDC Pods"
)]
enum Cli {
    /// Copy this binary to DEST.
    Install {
        /// Where to put it.
        dest: PathBuf,
    },
    /// Hand PD leadership away from a member before it stops.
    Pd(PdArgs),
    /// Move a TiKV store's Region leaders away before it stops.
    Tikv(TikvArgs),
    /// Resign a TiCDC capture's ownership and drain its tables before it stops.
    Ticdc(TicdcArgs),
}

#[derive(Debug, Args)]
struct TicdcArgs {
    /// The TiCDC server's own URL. `TIDB_HANDOVER_TICDC` overrides it.
    #[arg(long)]
    ticdc: String,
    /// As for `pd`: the directory of the cluster certificate, used (and https) when it is there.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// How long to wait for the ownership and the tables to move.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
}

#[derive(Debug, Args)]
struct TikvArgs {
    /// TiKV's config file: PD's URL (`pd.endpoints`) and the certificate (`security.ca-path`,
    /// `cert-path`, `key-path`) come from it, so a change of either restarts nothing.
    /// `TIDB_HANDOVER_PD` overrides the URL.
    #[arg(long)]
    config: PathBuf,
    /// The host of the store's address: the Pod's DNS name.
    #[arg(long)]
    store_host: String,
    /// How long to wait for the leaders to leave.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

#[derive(Debug, Args)]
struct PdArgs {
    /// PD's client URL (the member's own, from inside its Pod). `TIDB_HANDOVER_PD` overrides it.
    #[arg(long)]
    pd: String,
    /// The member's name, as PD knows it.
    #[arg(long)]
    member: String,
    /// A directory with `ca.crt`, `tls.crt` and `tls.key`: when they are there, PD is asked over
    /// mutual TLS (and an `http://` URL becomes `https://`).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// How long to wait for leadership to move.
    #[arg(long, default_value_t = 20)]
    timeout_seconds: u64,
}

/// Why the hand-over could not run or did not finish.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot copy {from} to {to}: {source}")]
    Install {
        from: String,
        to: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Config { path: String, why: String },
    #[error("cannot make a PD client for {url}: {source}")]
    Client {
        url: String,
        source: pd_client::Error,
    },
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("{member} still leads PD: {why}")]
    StillLeads { member: String, why: String },
    #[error("the store on {host} still holds Region leaders: {why}")]
    StillHoldsLeaders { host: String, why: String },
    #[error("cannot make a TiCDC client: {0}")]
    TicdcClient(pd_client::Error),
    #[error("the TiCDC capture still owns or holds tables: {0}")]
    StillHoldsTables(String),
}

/// What to do next, from what PD says.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// The member does not lead: nothing to hand over.
    Done,
    /// Ask PD to move leadership to this member.
    Transfer(String),
    /// The member leads and no other member is healthy.
    NoSuccessor,
}

/// The next step for `member`, from PD's members and their health.
fn step(members: &MembersInfo, health: &[MemberHealth], member: &str) -> Step {
    if members.leader_name() != Some(member) {
        return Step::Done;
    }
    match members.successor(health, member, &|_| false) {
        Some(to) => Step::Transfer(to),
        None => Step::NoSuccessor,
    }
}

/// Whether a store's `host:port` address is on `host`: the same name, or that name fully
/// qualified (`<host>.svc.<domain>`).
fn on_host(address: &str, host: &str) -> bool {
    let name = address.rsplit_once(':').map_or(address, |(name, _)| name);
    name == host
        || name
            .strip_prefix(host)
            .is_some_and(|rest| rest.starts_with(".svc."))
}

/// What to do next for the store on `host`, from PD's stores.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StoreStep {
    /// Not an Up store PD lists, or it holds no leader: nothing to move.
    Done(String),
    /// Put it under the evict-leader scheduler (if it is not yet) and wait.
    Evict { id: u64, leaders: i64 },
    /// No other Up store can take its leaders.
    NoTaker(u64),
}

fn store_step(stores: &pd_client::StoresInfo, host: &str) -> StoreStep {
    let Some(store) = stores
        .stores
        .iter()
        .find(|s| on_host(&s.store.address, host))
    else {
        return StoreStep::Done(format!("PD lists no store on {host}"));
    };
    let id = store.store.id;
    if !store.is_up() {
        return StoreStep::Done(format!("store {id} is {}", store.store.state_name));
    }
    if store.status.leader_count == 0 {
        return StoreStep::Done(format!("store {id} holds no leader"));
    }
    let takers = stores
        .stores
        .iter()
        .filter(|s| s.store.id != id && s.is_up())
        .count();
    if takers == 0 {
        return StoreStep::NoTaker(id);
    }
    StoreStep::Evict {
        id,
        leaders: store.status.leader_count,
    }
}

/// The URL to ask: the override when set, with `https` when TLS is on.
fn endpoint_url(given: &str, override_url: Option<String>, tls: bool) -> String {
    let url = override_url
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| given.to_string());
    match url.strip_prefix("http://") {
        Some(rest) if tls => format!("https://{rest}"),
        _ => url,
    }
}

/// The client certificate in `dir`, when all three files are there.
fn tls_in(dir: Option<&Path>) -> Result<Option<TlsConfig>, Error> {
    let Some(dir) = dir else { return Ok(None) };
    let files = ["ca.crt", "tls.crt", "tls.key"].map(|f| dir.join(f));
    if !files.iter().all(|f| f.is_file()) {
        return Ok(None);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| Error::Tls {
            path: path.display().to_string(),
            source,
        })
    };
    Ok(Some(TlsConfig {
        ca_pem: read(&files[0])?,
        cert_pem: Some(read(&files[1])?),
        key_pem: Some(read(&files[2])?),
    }))
}

fn install(dest: &Path) -> Result<(), Error> {
    let failed = |from: &str, source| Error::Install {
        from: from.to_string(),
        to: dest.display().to_string(),
        source,
    };
    let me = std::env::current_exe().map_err(|e| failed("this binary", e))?;
    let from = me.display().to_string();
    // Copied next to DEST, then renamed: a half-written binary is never run.
    let partial = dest.with_extension("partial");
    std::fs::copy(&me, &partial).map_err(|e| failed(&from, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| failed(&from, e))?;
    }
    std::fs::rename(&partial, dest).map_err(|e| failed(&from, e))
}

/// A client of PD at `given` (or the override), over TLS when `tls_dir` holds the certificate.
fn client(given: &str, tls_dir: Option<&Path>) -> Result<PdClient, Error> {
    let tls = tls_in(tls_dir)?;
    let url = endpoint_url(given, std::env::var(PD_URL_ENV).ok(), tls.is_some());
    PdClient::new(&url, tls.as_ref(), REQUEST_TIMEOUT).map_err(|source| Error::Client {
        url: url.clone(),
        source,
    })
}

/// PD's URL and the client certificate from TiKV's config file.
fn from_tikv_config(text: &str) -> Result<(String, Option<[PathBuf; 3]>), String> {
    let table: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let pd = table
        .get("pd")
        .and_then(|pd| pd.get("endpoints"))
        .and_then(|e| e.as_array())
        .and_then(|e| e.first())
        .and_then(|e| e.as_str())
        .ok_or("no pd.endpoints")?;
    let pd = if pd.contains("://") {
        pd.to_string()
    } else {
        format!("http://{pd}")
    };
    let security = table.get("security");
    let path = |key: &str| {
        security
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let tls = match (path("ca-path"), path("cert-path"), path("key-path")) {
        (Some(ca), Some(cert), Some(key)) => Some([ca, cert, key]),
        _ => None,
    };
    Ok((pd, tls))
}

/// A client of the PD TiKV's config names; its URL overridden by `TIDB_HANDOVER_PD` when set
/// (then a missing config file is no error).
fn tikv_client(config: &Path) -> Result<PdClient, Error> {
    let override_url = std::env::var(PD_URL_ENV).ok().filter(|u| !u.is_empty());
    let failed = |why: String| Error::Config {
        path: config.display().to_string(),
        why,
    };
    let (url, tls) = match (std::fs::read_to_string(config), override_url) {
        (Ok(text), override_url) => {
            let (pd, files) = from_tikv_config(&text).map_err(failed)?;
            let tls = match files {
                Some(files) => {
                    let read = |path: &PathBuf| {
                        std::fs::read(path).map_err(|source| Error::Tls {
                            path: path.display().to_string(),
                            source,
                        })
                    };
                    Some(TlsConfig {
                        ca_pem: read(&files[0])?,
                        cert_pem: Some(read(&files[1])?),
                        key_pem: Some(read(&files[2])?),
                    })
                }
                None => None,
            };
            (override_url.unwrap_or(pd), tls)
        }
        (Err(_), Some(url)) => (url, None),
        (Err(e), None) => return Err(failed(e.to_string())),
    };
    PdClient::new(&url, tls.as_ref(), REQUEST_TIMEOUT).map_err(|source| Error::Client {
        url: url.clone(),
        source,
    })
}

async fn evict_leaders(args: &TikvArgs) -> Result<(), Error> {
    let pd = tikv_client(&args.config)?;
    let host = args.store_host.as_str();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut evicting = false;
    let mut why: String;
    loop {
        match pd.stores().await {
            Ok(stores) => match store_step(&stores, host) {
                StoreStep::Done(what) => {
                    eprintln!("{host}: {what}; nothing (more) to move");
                    return Ok(());
                }
                StoreStep::NoTaker(id) => {
                    why = format!("no other Up store can take the leaders of store {id}");
                }
                StoreStep::Evict { id, leaders } => {
                    why = format!("store {id} holds {leaders} leaders");
                    if !evicting {
                        eprintln!("{host}: store {id} holds {leaders} leaders; evicting them");
                        match pd.add_evict_leader_scheduler(id).await {
                            Ok(()) => evicting = true,
                            Err(e) => why = format!("adding the evict-leader scheduler: {e}"),
                        }
                    }
                }
            },
            Err(e) => why = format!("PD did not answer: {e}"),
        }
        if Instant::now() >= deadline {
            return Err(Error::StillHoldsLeaders {
                host: host.to_string(),
                why: format!("after {}s, {why}", args.timeout_seconds),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a capture does next, from its status and how many captures there are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CaptureStep {
    /// No other capture to hand anything to.
    Alone,
    /// It owns: resign first.
    Resign,
    /// Drain its tables.
    Drain(String),
}

fn capture_step(status: &pd_client::CaptureStatus, captures: usize) -> CaptureStep {
    if captures < 2 {
        CaptureStep::Alone
    } else if status.is_owner {
        CaptureStep::Resign
    } else {
        CaptureStep::Drain(status.id.clone())
    }
}

async fn drain_capture(args: &TicdcArgs) -> Result<(), Error> {
    let tls = tls_in(args.tls_dir.as_deref())?;
    let url = endpoint_url(
        &args.ticdc,
        std::env::var(TICDC_URL_ENV).ok(),
        tls.is_some(),
    );
    let ticdc =
        pd_client::StatusClient::new(tls.as_ref(), REQUEST_TIMEOUT).map_err(Error::TicdcClient)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut resigned = false;
    let mut why: String;
    loop {
        let asked = async {
            let status = ticdc.ticdc_status(&url).await?;
            let captures = ticdc.ticdc_captures(&url).await?.len();
            Ok::<_, pd_client::Error>((status, captures))
        };
        match asked.await {
            Ok((status, captures)) => match capture_step(&status, captures) {
                CaptureStep::Alone => {
                    eprintln!("the only capture: no one to hand its tables to");
                    return Ok(());
                }
                CaptureStep::Resign => {
                    why = format!("capture {} owns", status.id);
                    if !resigned {
                        eprintln!("capture {} is the owner; resigning", status.id);
                        match ticdc.ticdc_resign_owner(&url).await {
                            Ok(()) => resigned = true,
                            Err(e) => why = format!("resigning: {e}"),
                        }
                    }
                }
                CaptureStep::Drain(id) => match ticdc.ticdc_drain_capture(&url, &id).await {
                    Ok(0) => {
                        eprintln!("capture {id}: no table left");
                        return Ok(());
                    }
                    Ok(left) => why = format!("capture {id} holds {left} tables"),
                    Err(e) => why = format!("draining capture {id}: {e}"),
                },
            },
            Err(e) => why = format!("TiCDC did not answer: {e}"),
        }
        if Instant::now() >= deadline {
            return Err(Error::StillHoldsTables(format!(
                "after {}s, {why}",
                args.timeout_seconds
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn hand_over(args: &PdArgs) -> Result<(), Error> {
    let pd = client(&args.pd, args.tls_dir.as_deref())?;
    let member = args.member.as_str();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut asked: Option<(String, Instant)> = None;
    let mut why = String::from("no answer from PD yet");
    loop {
        match pd.members().await {
            Ok(members) => {
                let health = match pd.health().await {
                    Ok(health) => health,
                    Err(e) => {
                        why = format!("PD's health unknown: {e}");
                        Vec::new()
                    }
                };
                match step(&members, &health, member) {
                    Step::Done => {
                        match asked {
                            Some((to, _)) => {
                                eprintln!("{member}: PD leadership moved ({to} asked)")
                            }
                            None => eprintln!("{member}: does not lead PD; nothing to hand over"),
                        }
                        return Ok(());
                    }
                    Step::NoSuccessor => {
                        why = "no other member is healthy".to_string();
                    }
                    Step::Transfer(to) => {
                        let due = asked
                            .as_ref()
                            .is_none_or(|(_, at)| at.elapsed() >= TRANSFER_RETRY);
                        if due {
                            eprintln!("{member}: leads PD; asking PD to move leadership to {to}");
                            if let Err(e) = pd.transfer_leader(&to).await {
                                why = format!("transfer to {to}: {e}");
                                eprintln!("{member}: {why}");
                            }
                            asked = Some((to, Instant::now()));
                        }
                    }
                }
            }
            Err(e) => why = format!("PD did not answer: {e}"),
        }
        if Instant::now() >= deadline {
            return Err(Error::StillLeads {
                member: member.to_string(),
                why: format!("after {}s, {why}", args.timeout_seconds),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn block_on(work: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(source) => Err(Error::Runtime(source)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli {
        Cli::Install { dest } => install(&dest),
        Cli::Pd(args) => block_on(hand_over(&args)),
        Cli::Tikv(args) => block_on(evict_leaders(&args)),
        Cli::Ticdc(args) => block_on(drain_capture(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidb-handover: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use pd_client::Member;

    use super::*;

    fn members(names: &[&str], leader: Option<&str>) -> MembersInfo {
        let member = |name: &str| Member {
            name: name.to_string(),
            ..Member::default()
        };
        MembersInfo {
            members: names.iter().map(|n| member(n)).collect(),
            leader: leader.map(member),
            etcd_leader: None,
        }
    }

    fn health(healthy: &[&str]) -> Vec<MemberHealth> {
        healthy
            .iter()
            .map(|n| MemberHealth {
                name: n.to_string(),
                health: true,
                ..MemberHealth::default()
            })
            .collect()
    }

    #[test]
    fn a_leader_hands_over_to_the_first_healthy_peer_and_others_have_nothing_to_do() {
        let m = members(&["pd-a", "pd-b", "pd-c"], Some("pd-a"));
        assert_eq!(
            step(&m, &health(&["pd-a", "pd-c"]), "pd-a"),
            Step::Transfer("pd-c".into())
        );
        assert_eq!(step(&m, &health(&["pd-a", "pd-b"]), "pd-b"), Step::Done);
        assert_eq!(step(&m, &health(&["pd-a"]), "pd-a"), Step::NoSuccessor);
        // No leader elected: nothing this member could hand over.
        let none = members(&["pd-a", "pd-b"], None);
        assert_eq!(step(&none, &health(&["pd-a", "pd-b"]), "pd-a"), Step::Done);
    }

    fn stores(list: &[(u64, &str, &str, i64)]) -> pd_client::StoresInfo {
        let stores = list
            .iter()
            .map(|(id, address, state, leaders)| {
                serde_json::from_value(serde_json::json!({
                    "store": {"id": id, "address": address, "state_name": state},
                    "status": {"leader_count": leaders}
                }))
                .unwrap()
            })
            .collect();
        pd_client::StoresInfo { count: 0, stores }
    }

    #[test]
    fn a_store_with_leaders_evicts_them_and_one_without_has_nothing_to_do() {
        let host = "tikv-a.tikv-tikv-peer.db";
        let up = stores(&[
            (1, "tikv-a.tikv-tikv-peer.db:20160", "Up", 7),
            (2, "tikv-b.tikv-tikv-peer.db:20160", "Up", 3),
        ]);
        assert_eq!(
            store_step(&up, host),
            StoreStep::Evict { id: 1, leaders: 7 }
        );
        // Fully qualified names are the same host.
        let fqdn = stores(&[
            (
                1,
                "tikv-a.tikv-tikv-peer.db.svc.east.example:20160",
                "Up",
                7,
            ),
            (
                2,
                "tikv-b.tikv-tikv-peer.db.svc.east.example:20160",
                "Up",
                0,
            ),
        ]);
        assert_eq!(
            store_step(&fqdn, host),
            StoreStep::Evict { id: 1, leaders: 7 }
        );
        // A look-alike host is another store.
        let other = stores(&[(3, "tikv-a.tikv-tikv-peer.db2:20160", "Up", 7)]);
        assert!(matches!(store_step(&other, host), StoreStep::Done(_)));
        let drained = stores(&[
            (1, "tikv-a.tikv-tikv-peer.db:20160", "Up", 0),
            (2, "tikv-b.tikv-tikv-peer.db:20160", "Up", 10),
        ]);
        assert!(matches!(store_step(&drained, host), StoreStep::Done(_)));
        let offline = stores(&[(1, "tikv-a.tikv-tikv-peer.db:20160", "Offline", 2)]);
        assert!(matches!(store_step(&offline, host), StoreStep::Done(_)));
        let alone = stores(&[(1, "tikv-a.tikv-tikv-peer.db:20160", "Up", 9)]);
        assert_eq!(store_step(&alone, host), StoreStep::NoTaker(1));
    }

    #[test]
    fn a_capture_resigns_first_then_drains_and_alone_does_nothing() {
        let status = |id: &str, owner: bool| pd_client::CaptureStatus {
            id: id.into(),
            is_owner: owner,
            ..pd_client::CaptureStatus::default()
        };
        assert_eq!(capture_step(&status("a", true), 2), CaptureStep::Resign);
        assert_eq!(
            capture_step(&status("a", false), 2),
            CaptureStep::Drain("a".into())
        );
        assert_eq!(capture_step(&status("a", true), 1), CaptureStep::Alone);
    }

    #[test]
    fn pd_and_the_certificate_come_from_tikv_s_config() {
        let (pd, tls) = from_tikv_config(
            "[pd]\nendpoints = [\"https://pd-pd.db:2379\"]\n[security]\nca-path = \"/t/ca.crt\"\ncert-path = \"/t/tls.crt\"\nkey-path = \"/t/tls.key\"\n",
        )
        .unwrap();
        assert_eq!(pd, "https://pd-pd.db:2379");
        assert_eq!(tls.unwrap()[2], PathBuf::from("/t/tls.key"));
        let (pd, tls) = from_tikv_config("[pd]\nendpoints = [\"pd-pd.db:2379\"]\n").unwrap();
        assert_eq!(pd, "http://pd-pd.db:2379");
        assert!(tls.is_none());
        assert!(from_tikv_config("[server]\n").is_err());
    }

    #[test]
    fn the_url_takes_the_override_and_https_with_tls() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:2379", None, false),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:2379", None, true),
            "https://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url(
                "http://127.0.0.1:2379",
                Some("http://sim:7/clusters/ns/c".into()),
                false
            ),
            "http://sim:7/clusters/ns/c"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:2379", Some(String::new()), false),
            "http://127.0.0.1:2379"
        );
    }

    #[test]
    fn tls_is_used_only_when_all_three_files_are_there() {
        let dir = std::env::temp_dir().join(format!("handover-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(tls_in(Some(&dir)).unwrap().is_none());
        assert!(tls_in(None).unwrap().is_none());
        for file in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::write(dir.join(file), file).unwrap();
        }
        let tls = tls_in(Some(&dir)).unwrap().unwrap();
        assert_eq!(tls.ca_pem, b"ca.crt");
        assert_eq!(tls.key_pem.as_deref(), Some(&b"tls.key"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn install_copies_this_binary_executable() {
        let dir = std::env::temp_dir().join(format!("handover-install-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("tidb-handover");
        install(&dest).unwrap();
        let me = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
        let copy = std::fs::metadata(&dest).unwrap();
        assert_eq!(copy.len(), me.len());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(copy.permissions().mode() & 0o777, 0o755);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
