//! The PD instance rules: its ConfigMap, PVCs and Pod; a restart that hands PD leadership
//! over first; a leader on a cordoned Node that hands it over; removal from PD before the Pod
//! and PVCs go; and the instance's status from PD.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use operator_api::conditions::{self, Look, reasons};
use operator_api::core::{Cluster, PD, PDGroup, PDStatus, TlsSecret};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::instance::{self, PodRemoval};
use operator_runtime::instance_reconcile::{Blocked, Finished, InstanceRules, Prepared};
use operator_runtime::node::{self, PodNode};
use operator_runtime::online_config::{self, ConfigStep, Recorder, Settled};
use operator_runtime::pod::{is_ready, readiness, synced as pod_synced};
use operator_runtime::reconcile::{Error, Started};
use operator_runtime::tls::SecretMount;
use operator_runtime::{cache, duration};
use pd_client::PdClient;
use tracing::warn;

use crate::build::{self, Membership};
use crate::context::{Ctx, MANAGER};
use crate::group_exit;
use crate::member::{self, CordonStep, Observed, RestartStep};
use crate::online;
use crate::ready;
use crate::slot;

/// Reason of an instance waiting for the other first members before it starts.
pub const REASON_WAITING_FOR_MEMBERS: &str = "WaitingForInitialMembers";
/// Reason of an instance PD cannot be asked about.
pub const REASON_PD_UNREACHABLE: &str = "PDUnreachable";
/// `NodeCordoned` reason: leadership is being handed to a member on a schedulable Node.
pub const REASON_TRANSFERRING_LEADER: &str = "TransferringLeader";
/// `NodeCordoned` reason: the member does not lead PD; nothing to hand over.
pub const REASON_NOT_LEADER: &str = "NotLeader";
/// `NodeCordoned` reason (and Event): the member still leads after the hand-over's bound.
pub const REASON_TRANSFER_TIMED_OUT: &str = "LeaderTransferTimedOut";
/// `NodeCordoned` reason: the Pod is not on any Node (evicted, not scheduled yet).
pub const REASON_POD_NOT_ON_NODE: &str = "PodNotOnNode";
/// How long a leader on a cordoned Node keeps asking PD to hand its leadership over.
pub const CORDON_TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// The PD instance rules on the runtime's instance reconciler.
pub struct Rules;

impl InstanceRules for Rules {
    type Instance = PD;
    type Group = PDGroup;
    type Ctx = Ctx;
    type Inputs = Membership;

    const MANAGER: &'static str = MANAGER;
    const METRIC: &'static str = "pd";
    const KEPT: &'static str = "the instance and its PVCs";

    fn instances(ctx: &Ctx) -> &Store<PD> {
        &ctx.instances
    }

    fn groups(ctx: &Ctx) -> &Store<PDGroup> {
        &ctx.groups
    }

    async fn finalize(
        ctx: &Ctx,
        pd: &PD,
        start: &Started,
        alone: bool,
    ) -> Result<Finished<PDStatus>, Error> {
        let pd_api = ctx.pd(
            &start.namespace,
            &pd.spec.cluster.name,
            build::group_client_url(pd, &start.group, start.cluster.as_deref()),
        )?;
        let join = start
            .cluster
            .as_ref()
            .and_then(|c| c.spec.join.as_ref())
            .map(|j| j.pd_urls.as_slice())
            .unwrap_or_default();
        let leaving = leaving_members(ctx, pd, &start.namespace, &start.group);
        // A PDGroup deleted while other PDGroups keep the Cluster's PD (MultiPDGroup): its
        // members leave PD one at a time, as a scale-in, or PD would keep them as dead members
        // and lose its quorum.
        let exits = !alone && group_exit::group_exits(ctx, start);
        let turn = if exits {
            Some(cache::list(&ctx.instances, &start.namespace, |p| {
                p.labels().get(keys::LABEL_GROUP) == Some(&start.group)
            }))
        } else {
            None
        };
        let removal = Removal {
            join,
            leaving: &leaving,
            in_turn: turn
                .as_ref()
                .map(|t| t.iter().map(|p| p.name_any()).collect()),
        };
        finalize(pd, ctx, pd_api, removal, alone || exits).await
    }

    /// The first members bootstrap together and keep `initial-cluster` (PD ignores it once it
    /// has data, and a stable file means no rewrite when the group becomes bootstrapped); later
    /// members join the running cluster.
    async fn inputs(
        ctx: &Ctx,
        pd: &PD,
        cluster: &Cluster,
        group: Option<&PDGroup>,
        _pod: Option<&Pod>,
    ) -> Result<Result<Membership, Blocked>, Error> {
        let namespace = pd.namespace().unwrap_or_default();
        let group_name = pd
            .labels()
            .get(keys::LABEL_GROUP)
            .cloned()
            .unwrap_or_default();
        let dns = Dns::of_spec(&cluster.spec);
        // A joining Cluster's members join the PD cluster it names (PD's `join` takes several
        // URLs, comma separated); the URLs are fixed, so the config file stays the same.
        if let Some(join) = &cluster.spec.join {
            return Ok(Ok(Membership::Join(join.pd_urls.join(","))));
        }
        let Some(expected) = pd.annotations().get(keys::ANNO_INITIAL_CLUSTER_NUM) else {
            return Ok(Ok(Membership::Join(build::group_client_url(
                pd,
                &group_name,
                Some(cluster),
            ))));
        };
        let expected: usize = expected.parse().unwrap_or(1);
        let bootstrapping = group.is_some_and(|g| !g.spec.bootstrapped);
        let siblings = cache::list(&ctx.instances, &namespace, |s| {
            s.labels().get(keys::LABEL_GROUP) == Some(&group_name)
        });
        let initial: Vec<&PD> = siblings
            .iter()
            .filter(|s| s.annotations().contains_key(keys::ANNO_INITIAL_CLUSTER_NUM))
            .collect();
        if bootstrapping && initial.len() < expected {
            return Ok(Err(Blocked {
                reason: REASON_WAITING_FOR_MEMBERS,
                message: format!("{} of {expected} initial PD members exist", initial.len()),
                then: Action::requeue(Duration::from_secs(2)),
            }));
        }
        Ok(Ok(Membership::InitialCluster(build::initial_cluster(
            &initial, &dns,
        ))))
    }

    const CLUSTER_TLS_DIR: &'static str = build::CLUSTER_TLS_DIR;

    fn cluster_tls(pd: &PD) -> Option<&TlsSecret> {
        let security = pd.spec.template.security.as_ref()?;
        Some(&security.tls.as_ref()?.cluster.as_ref()?.secret)
    }

    fn config_map(
        pd: &PD,
        cluster: &Cluster,
        membership: &Membership,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError> {
        let dns = Dns::of_spec(&cluster.spec);
        build::config_map(pd, build::config(pd, &dns, membership, mounts)?)
    }

    fn pod(pd: &PD, _: &Membership) -> Result<Pod, BuildError> {
        build::pod(pd)
    }

    fn pod_inputs(_: &Membership) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn suspended(mut status: PDStatus) -> PDStatus {
        status.is_leader = false;
        status
    }

    async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<PDStatus>, Error> {
        act(ctx, prepared).await
    }
}

/// The Pod created, restarted (leadership handed over first) or sent its online config, and the
/// status observed from the Pod and PD.
async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<PDStatus>, Error> {
    let Prepared {
        instance: pd,
        namespace,
        cluster,
        desired: desired_pod,
        pod: existing_pod,
        ..
    } = prepared;
    let dns = Dns::of_spec(&cluster.spec);
    let name = pd.name_any();
    let cluster_name = &pd.spec.cluster.name;
    let group_name = pd
        .labels()
        .get(keys::LABEL_GROUP)
        .cloned()
        .unwrap_or_default();
    let pd_api = ctx.pd(
        namespace,
        cluster_name,
        build::group_client_url(pd, &group_name, Some(cluster)),
    )?;
    instance::create_pvcs(ctx, MANAGER, pd, build::pvcs(pd)?).await?;
    let mut observed = Observed::of(&pd_api).await;
    // With a ready-API gate, a serving member is Ready only once it says so itself.
    observed.not_ready = match ready::api(pd) {
        Some(v2) if existing_pod.as_ref().is_some_and(is_ready) && observed.healthy(&name) => {
            let member_api = ctx.pd(namespace, cluster_name, build::client_url(pd, &dns))?;
            let answer = member_api.ready(v2).await;
            ready::verdict(&answer, &pd.spec.template.common.version, v2)
        }
        _ => None,
    };
    let shared = shares_pd(ctx, pd, namespace, &group_name, &observed);
    let node = node::pod_node(&ctx.nodes, existing_pod.as_ref());
    let cordoned = cordoned_members(ctx, pd, namespace);
    let common = &pd.spec.template.common;
    let recorder = Recorder::new(&ctx.client, pd, &ctx.expectations);
    let config_step = match &existing_pod {
        // The cache does not show the last record yet: decide once it does.
        Some(_) if recorder.lagging(&ctx.caches.pods, namespace) => ConfigStep::Current,
        Some(pod) => {
            online_config::step(&common.update_strategy, pod, &common.config, online::value)
        }
        None => ConfigStep::Current,
    };
    let restart_for = match &config_step {
        ConfigStep::Restart(keys) => Some(keys.as_slice()),
        _ => None,
    };
    let mut config_change = None;
    let mut config_pending = None;
    let mut requeue = None;
    match &existing_pod {
        None => {
            instance::create_pod(ctx, MANAGER, pd, &desired_pod).await?;
            requeue = Some(Duration::from_secs(2));
        }
        Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
            requeue = Some(Duration::from_secs(2))
        }
        Some(pod) if !build::pod_is_current(pod, &desired_pod) || restart_for.is_some() => {
            requeue = Some(Duration::from_secs(2));
            if let Some(keys) = restart_for {
                config_change = Some(online_config::restart_status(keys, &common.config));
                config_pending = Some(online_config::restart_message(keys));
            }
            let mut step = member::restart_step(&observed, &name, is_ready(pod), &cordoned);
            // A serving member of a PD shared with another Kubernetes cluster restarts only while
            // it holds PD's restart slot: one member at a time across every side.
            if is_ready(pod)
                && !matches!(step, RestartStep::Wait { .. })
                && shared
                && let Some((reason, message)) = slot::acquire(&pd_api, &name).await
            {
                step = RestartStep::Wait { reason, message };
            }
            match step {
                RestartStep::Restart => instance::restart_pod(ctx, pd, pod, "").await?,
                RestartStep::TransferTo(successor) => {
                    pd_api
                        .transfer_leader(&successor)
                        .await
                        .map_err(Error::pd(pd_api.base()))?;
                    ctx.events
                        .normal(
                            pd,
                            "LeaderTransferred",
                            "Restart",
                            format!("PD leadership moves to {successor} before {name} restarts"),
                        )
                        .await;
                }
                RestartStep::Wait { reason, message } => {
                    // It still serves: `Ready` stays as observed, `Synced` says why it waits.
                    let mut status =
                        observe_status(pd, &existing_pod, &desired_pod, &observed, None);
                    if config_change.is_some() {
                        status.last_config_change = config_change;
                    }
                    let conditions = &mut status.common.conditions;
                    let look = Look::now(pd.metadata.generation);
                    look.set(conditions, conditions::SYNCED, false, reason, message);
                    return Ok(Finished::with(
                        status,
                        Action::requeue(Duration::from_secs(5)),
                    ));
                }
            }
        }
        Some(pod) => match &config_step {
            ConfigStep::Online(items) if is_ready(pod) && observed.healthy(&name) => {
                // Sent to this member: `log.level` is the member's own; the rest is PD's.
                let member_api = ctx.pd(namespace, cluster_name, build::client_url(pd, &dns))?;
                let answer = member_api.set_config(items).await;
                let settled = recorder
                    .settle(&ctx.events, pd, items, answer, online::refused)
                    .await?;
                match settled {
                    Settled::Applied(change) => config_change = Some(change),
                    Settled::Refused => requeue = Some(Duration::from_secs(1)),
                    Settled::Failed(source) => {
                        return Err(Error::Pd {
                            url: member_api.base().into(),
                            source,
                        });
                    }
                }
            }
            ConfigStep::Online(items) => {
                requeue = Some(Duration::from_secs(5));
                config_pending = Some(format!(
                    "{} change online once the member is ready and healthy",
                    online_config::key_list(items.keys())
                ));
            }
            ConfigStep::Record => recorder
                .record(&common.config)
                .await
                .map_err(Error::kube("recording the config on the Pod"))?,
            ConfigStep::Current | ConfigStep::Restart(_) => {}
        },
    }

    // A restart hands leadership over itself; otherwise a cordoned Node has it handed over.
    let restarting = existing_pod.as_ref().is_some_and(|p| {
        p.metadata.deletion_timestamp.is_none()
            && (!build::pod_is_current(p, &desired_pod) || restart_for.is_some())
    });
    let cordon = if restarting {
        None
    } else {
        cordon(ctx, pd, &pd_api, &observed, &node, &cordoned).await?
    };
    if !restarting && shared {
        // Serving, as Ready counts it: with a ready-API gate, its Regions loaded too.
        let serves = existing_pod.as_ref().is_some_and(is_ready)
            && observed.healthy(&name)
            && observed.not_ready.is_none();
        if let Err(e) = slot::settle(&pd_api, &name, serves).await {
            // Left for the next reconcile; an unrenewed claim ends on its own.
            warn!(pd = %name, error = %e, "cannot settle PD's restart slot");
        }
    }
    let mut status = observe_status(pd, &existing_pod, &desired_pod, &observed, config_pending);
    if config_change.is_some() {
        status.last_config_change = config_change;
    }
    if let Some((ok, reason, message, wait)) = cordon {
        let look = Look::now(pd.metadata.generation);
        let conditions = &mut status.common.conditions;
        look.set(conditions, conditions::NODE_CORDONED, ok, reason, message);
        requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait)));
    }
    let ready = conditions::is_true(&status.common.conditions, conditions::READY);
    let then = Action::requeue(requeue.unwrap_or(if ready {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }));
    Ok(Finished::with(status, then))
}

/// Whether PD lists a member that is not a PD instance of this group: one PD shared with another
/// Kubernetes cluster, whose operator rolls its members unseen, or with other PDGroups
/// (MultiPDGroup), which roll on their own. Either way the restart slot makes it one member at a
/// time across all of them.
fn shares_pd(ctx: &Ctx, pd: &PD, namespace: &str, group: &str, observed: &Observed) -> bool {
    let Some(members) = &observed.members else {
        return false;
    };
    let cluster = &pd.spec.cluster.name;
    let local: BTreeSet<String> = cache::list(&ctx.instances, namespace, |p| {
        &p.spec.cluster.name == cluster
            && p.labels().get(keys::LABEL_GROUP).map(String::as_str) == Some(group)
    })
    .iter()
    .map(|p| p.name_any())
    .collect();
    members.members.iter().any(|m| !local.contains(&m.name))
}

/// The PD members of `pd`'s Cluster whose Pods are on a cordoned Node, from the caches.
fn cordoned_members(ctx: &Ctx, pd: &PD, namespace: &str) -> BTreeSet<String> {
    let cluster = &pd.spec.cluster.name;
    cache::list(&ctx.instances, namespace, |p| {
        &p.spec.cluster.name == cluster
    })
    .iter()
    .map(|p| p.name_any())
    .filter(|name| {
        let pod = cache::get(&ctx.caches.pods, namespace, name);
        node::pod_node(&ctx.nodes, pod.as_ref()).is_cordoned()
    })
    .collect()
}

/// A `NodeCordoned` condition (status, reason, message) and when to look again.
type CordonCondition = (bool, &'static str, String, Duration);

/// A member on a cordoned Node hands PD leadership to a member on a schedulable Node, asking
/// again until [`CORDON_TRANSFER_TIMEOUT`] after the cordon was first seen. Returns the
/// `NodeCordoned` condition to set, if any: none for a member never on a cordoned Node.
async fn cordon(
    ctx: &Ctx,
    pd: &PD,
    pd_api: &PdClient,
    observed: &Observed,
    node: &PodNode,
    cordoned: &BTreeSet<String>,
) -> Result<Option<CordonCondition>, Error> {
    let name = pd.name_any();
    let existing = pd
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.common.conditions, conditions::NODE_CORDONED));
    let PodNode::Cordoned(node_name) = node else {
        // Uncordoned, or the Pod gone or elsewhere: the cordon is over for this member, and
        // the bound of a later one counts from then.
        return Ok(match (existing, node.name()) {
            (Some(c), Some(on)) if c.reason != reasons::NODE_SCHEDULABLE => Some((
                false,
                reasons::NODE_SCHEDULABLE,
                format!("the Pod runs on Node {on}, which is schedulable"),
                Duration::from_secs(30),
            )),
            (Some(c), None) if c.status == conditions::STATUS_TRUE => Some((
                false,
                REASON_POD_NOT_ON_NODE,
                "the Pod is not on a Node (gone, or not scheduled yet)".to_string(),
                Duration::from_secs(5),
            )),
            _ => None,
        });
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let since = existing
        .filter(|c| c.status == conditions::STATUS_TRUE)
        .map_or(now, |c| c.last_transition_time.0);
    let waited = Duration::from_millis(
        u64::try_from(now.as_millisecond() - since.as_millisecond()).unwrap_or(0),
    );
    let timeout = CORDON_TRANSFER_TIMEOUT;
    let step = member::cordon_step(observed, &name, cordoned, waited, timeout);
    let condition = match step {
        CordonStep::Unknown(error) => (
            true,
            REASON_PD_UNREACHABLE,
            format!(
                "Node {node_name} is cordoned; PD cannot tell whether {name} leads it ({error})"
            ),
            Duration::from_secs(5),
        ),
        CordonStep::NotLeader => (
            true,
            REASON_NOT_LEADER,
            format!(
                "Node {node_name} is cordoned; {name} does not lead PD, so it holds nothing to hand over"
            ),
            Duration::from_secs(10),
        ),
        CordonStep::TransferTo(successor) => {
            pd_api
                .transfer_leader(&successor)
                .await
                .map_err(Error::pd(pd_api.base()))?;
            let message = format!(
                "Node {node_name} is cordoned: PD leadership moves from {name} to {successor} (asked for at most {})",
                duration::format(timeout)
            );
            ctx.events
                .normal(pd, "LeaderTransferred", "NodeCordoned", message.clone())
                .await;
            (
                true,
                REASON_TRANSFERRING_LEADER,
                message,
                Duration::from_secs(2),
            )
        }
        CordonStep::NoSuccessor => (
            true,
            member::REASON_NO_SUCCESSOR,
            format!(
                "Node {node_name} is cordoned and {name} leads PD, but no other member is healthy on a schedulable Node to take over; it keeps leading"
            ),
            Duration::from_secs(5),
        ),
        CordonStep::TimedOut => {
            let message = format!(
                "Node {node_name} is cordoned and {name} still leads PD after {} of asking it to hand over; asked no more, and an eviction of the Pod is not held back",
                duration::format(timeout)
            );
            if existing.map(|c| c.reason.as_str()) != Some(REASON_TRANSFER_TIMED_OUT) {
                ctx.events
                    .warning(
                        pd,
                        REASON_TRANSFER_TIMED_OUT,
                        "NodeCordoned",
                        message.clone(),
                    )
                    .await;
            }
            (
                true,
                REASON_TRANSFER_TIMED_OUT,
                message,
                Duration::from_secs(30),
            )
        }
    };
    Ok(Some(condition))
}

/// The members of `pd`'s group that are leaving too, besides `pd` (being deleted, or all of
/// them when the group is scaled to 0, as in an exit): leadership goes to none of them.
fn leaving_members(ctx: &Ctx, pd: &PD, namespace: &str, group: &str) -> BTreeSet<String> {
    let to_zero = cache::get(&ctx.groups, namespace, group).is_none_or(|g| g.spec.replicas == 0);
    cache::list(&ctx.instances, namespace, |p| {
        p.labels().get(keys::LABEL_GROUP).map(String::as_str) == Some(group)
    })
    .iter()
    .filter(|p| to_zero || p.metadata.deletion_timestamp.is_some())
    .map(|p| p.name_any())
    .filter(|name| name != &pd.name_any())
    .collect()
}

/// PD as this member's removal asks it: through the local Service, or, when that does not
/// answer and the Cluster joins another's PD (`join`), through the URLs it joined, which reach
/// the members of the other Kubernetes clusters (the last local member may have left already).
async fn removal_pd(ctx: &Ctx, pd: &PD, local: PdClient, join: &[String]) -> (PdClient, Observed) {
    let observed = Observed::of(&local).await;
    if observed.error.is_none() || join.is_empty() {
        return (local, observed);
    }
    let namespace = pd.namespace().unwrap_or_default();
    for url in join {
        let remote = match ctx.pd_join(&namespace, &pd.spec.cluster.name, url) {
            Ok(remote) => remote,
            Err(error) => {
                warn!(%error, url, "cannot make a client of a PD this cluster joined");
                continue;
            }
        };
        let answer = Observed::of(&remote).await;
        if answer.error.is_none() {
            return (remote, answer);
        }
    }
    (local, observed)
}

/// How a removed member leaves PD.
struct Removal<'a> {
    /// The PD URLs a joining Cluster names (asked when the local Service does not answer).
    join: &'a [String],
    /// Members leaving too: leadership never goes to one of them.
    leaving: &'a BTreeSet<String>,
    /// When a whole PDGroup leaves (MultiPDGroup): its members, which leave one at a time.
    in_turn: Option<Vec<String>>,
}

/// Takes a removed instance out of PD (leadership first, to a member that stays: not one of
/// `leaving`), then deletes its Pod and PVCs, then lets the instance go. When the whole group
/// or cluster goes, PD is not asked and PVCs stay.
async fn finalize(
    pd: &PD,
    ctx: &Ctx,
    local: PdClient,
    removal: Removal<'_>,
    scale_in: bool,
) -> Result<Finished<PDStatus>, Error> {
    if !pd.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Finished::then(Action::await_change()));
    }
    let name = pd.name_any();
    let Removal {
        join,
        leaving,
        in_turn,
    } = removal;
    if scale_in {
        let (pd_api, observed) = removal_pd(ctx, pd, local, join).await;
        if let Some(error) = &observed.error {
            warn!(%error, "PD is unreachable; the member is removed once it answers");
            let blocked = Blocked {
                reason: REASON_PD_UNREACHABLE,
                message: format!("cannot remove {name} from PD: {error}"),
                then: Action::requeue(Duration::from_secs(5)),
            };
            return Ok(Finished::blocked(pd, blocked));
        }
        if let Some(message) = in_turn
            .as_deref()
            .and_then(|group| group_exit::exit_turn(&observed, &name, group))
        {
            let blocked = Blocked {
                reason: group_exit::REASON_LEAVING_IN_TURN,
                message,
                then: Action::requeue(Duration::from_secs(3)),
            };
            return Ok(Finished::blocked(pd, blocked));
        }
        if observed.is_member(&name) {
            if observed.is_leader(&name)
                && let Some(successor) = member::removal_successor(&observed, &name, leaving)
            {
                pd_api
                    .transfer_leader(&successor)
                    .await
                    .map_err(Error::pd(pd_api.base()))?;
                ctx.events
                    .normal(
                        pd,
                        "LeaderTransferred",
                        "ScaleIn",
                        format!("PD leadership moved to {successor} before removing {name}"),
                    )
                    .await;
                return Ok(Finished::then(Action::requeue(Duration::from_secs(2))));
            }
            pd_api
                .delete_member_by_name(&name)
                .await
                .map_err(Error::pd(pd_api.base()))?;
            ctx.events
                .normal(
                    pd,
                    "MemberDeleted",
                    "ScaleIn",
                    format!("{name} left the PD cluster"),
                )
                .await;
        }
        if instance::remove_pod(ctx, pd, "the member has left PD").await? != PodRemoval::Gone {
            return Ok(Finished::then(Action::requeue(Duration::from_secs(2))));
        }
        // The member is gone from PD and its Pod is gone: its data is no longer needed.
        instance::delete_pvcs(ctx, pd).await?;
    }
    Ok(Finished::then(instance::release(ctx, pd).await?))
}

/// The status from the Pod and what PD says.
/// `config_pending` says why a config change waits on a Pod that is otherwise current.
fn observe_status(
    pd: &PD,
    pod: &Option<Pod>,
    desired: &Pod,
    observed: &Observed,
    config_pending: Option<String>,
) -> PDStatus {
    let name = pd.name_any();
    let mut status = pd.status.clone().unwrap_or_default();
    let look = Look::now(pd.metadata.generation);
    let set = |status: &mut PDStatus, type_, ok, reason, message: String| {
        look.set(&mut status.common.conditions, type_, ok, reason, message);
    };
    if let Some(members) = &observed.members {
        if let Some(member) = members.member(&name) {
            status.id = member.member_id.to_string();
            set(
                &mut status,
                conditions::INITIALIZED,
                true,
                "Initialized",
                "the member joined the PD cluster".into(),
            );
        } else if !conditions::is_true(&status.common.conditions, conditions::INITIALIZED) {
            set(
                &mut status,
                conditions::INITIALIZED,
                false,
                "NotJoined",
                "the member has not joined the PD cluster yet".into(),
            );
        }
        status.is_leader = observed.is_leader(&name);
    }
    let (ready, reason, message) = match readiness(pod.as_ref()) {
        Some(verdict) => verdict,
        None => match &observed.error {
            Some(error) => (
                false,
                REASON_PD_UNREACHABLE,
                format!("PD cannot be asked about this member: {error}"),
            ),
            None if !observed.healthy(&name) => (
                false,
                reasons::INSTANCE_NOT_HEALTHY,
                "PD reports the member unhealthy".to_string(),
            ),
            None => match &observed.not_ready {
                Some((reason, message)) => (false, *reason, message.clone()),
                None => (true, reasons::READY, "the member is healthy".to_string()),
            },
        },
    };
    set(&mut status, conditions::READY, ready, reason, message);
    let current = pod
        .as_ref()
        .is_some_and(|p| build::pod_is_current(p, desired));
    let (synced, reason, message) = match (current, config_pending) {
        (true, Some(pending)) => (false, online_config::REASON_CONFIG_PENDING, pending),
        _ => pod_synced(pod.as_ref(), current),
    };
    set(&mut status, conditions::SYNCED, synced, reason, message);
    if conditions::find(&status.common.conditions, conditions::SUSPENDED).is_some() {
        set(
            &mut status,
            conditions::SUSPENDED,
            false,
            reasons::UNSUSPENDED,
            "the Pod runs again".to_string(),
        );
    }
    status.common.observed_generation = pd.metadata.generation.unwrap_or_default();
    status.common.current_revision = pd
        .labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default();
    status.common.update_revision = status.common.current_revision.clone();
    status
}

#[cfg(test)]
mod tests {
    use crate::member::fixture::observed;

    #[test]
    fn leadership_goes_to_a_healthy_other_member() {
        let o = observed("a", &["a", "c"]);
        assert!(o.is_leader("a"));
        assert_eq!(o.successor("a").as_deref(), Some("c"));
        assert_eq!(observed("a", &["a"]).successor("a"), None);
    }
}
