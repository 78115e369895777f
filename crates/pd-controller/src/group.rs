//! The PDGroup reconcile: the group's Services, its PD instances (created, updated one at a time,
//! removed on scale-in with PD's quorum in mind), `bootstrapped`, and the group's status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, Feature, PD, PDGroup, Topology};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::failover;
use operator_runtime::group as shared_group;
use operator_runtime::group_reconcile::{
    BeforePlan, Decision, Effect, GroupRules, GroupView, Outcome,
};
use operator_runtime::reconcile::Error;
use operator_runtime::update::{self, InstanceView, Policy};

use crate::build;
use crate::context::{Ctx, MANAGER};

/// Reason of a scale-in PD refuses because it would break quorum or empty the cluster.
pub const REASON_SCALE_IN_REFUSED: &str = "ScaleInRefused";
/// Reason of a group waiting for its first members to form the PD cluster.
pub const REASON_BOOTSTRAPPING: &str = "Bootstrapping";
/// Reason of a joining group (`Cluster.spec.join`) whose named PD does not answer: it creates
/// nothing, so nothing can bootstrap a second PD cluster.
pub const REASON_JOIN_UNREACHABLE: &str = "JoinTargetUnreachable";
/// Reason of a joining group scaled to 0 (an exit) whose last members wait until PD lists no
/// store of this Kubernetes cluster but Tombstones: the stores leave through PD first.
pub const REASON_EXIT_WAITING_FOR_STORES: &str = "ExitWaitingForStores";

/// Reason of a PDGroup held because another PDGroup of its Cluster owns the Cluster's PD: a
/// second group would bootstrap a second PD cluster for one TiDB cluster.
pub const REASON_ANOTHER_PD_GROUP: &str = "AnotherPDGroup";

/// Reason of a group whose template sets `mode: ms`, which this operator does not act on.
pub const REASON_MODE_NOT_SUPPORTED: &str = "PDModeNotSupported";
/// PD's microservice mode.
const PD_MODE_MS: &str = "ms";

/// The PD component's group rules.
pub struct Rules;

impl GroupRules for Rules {
    type Group = PDGroup;
    type Instance = PD;
    type Observed = Observed;
    type Ctx = Ctx;

    const MANAGER: &'static str = MANAGER;
    const NOUN: &'static str = "PD members";
    const UNIT: &'static str = "member";
    const HALT_WHILE_CLUSTER_DELETING: bool = true;
    const RETIRE: failover::Retire = failover::Retire::First;

    fn instances(ctx: &Ctx) -> &Store<PD> {
        &ctx.instances
    }

    fn failover(group: &PDGroup) -> Option<failover::Settings> {
        Some(failover::Settings::of(group.spec.failover.as_ref()))
    }

    // A member PD itself reports healthy is not failed, whatever its instance's `Ready`
    // (written at its last look, which may be a while ago) says.
    fn health(view: &View<'_>, pd: &PD) -> failover::Health {
        let name = pd.name_any();
        if let Some(Ok(health)) = &view.observed.pd_health
            && health.get(&name) == Some(&true)
        {
            return failover::Health::Healthy;
        }
        failover::by_readiness(pd.conditions(), view.observed.pods_created.get(&name))
    }

    fn outage(view: &View<'_>) -> Option<String> {
        members_outage(
            view.instances,
            &view.observed.pods_created,
            view.observed.pd_health.as_ref(),
        )
    }

    /// A new member joins only once a leaving one has left the PD cluster: adding it first
    /// would raise the quorum while the leaving member still counts and the new one is not up.
    fn plan(policy: &Policy, views: &[InstanceView]) -> update::Plan {
        let mut plan = update::plan(policy, views);
        let leaving: Vec<&str> = views
            .iter()
            .filter(|v| v.deleting)
            .map(|v| v.name.as_str())
            .collect();
        let creates = |a: &update::Action| matches!(a, update::Action::Create { .. });
        if !leaving.is_empty() && plan.actions.iter().any(creates) {
            plan.actions.retain(|a| !creates(a));
            plan.waiting = Some(format!(
                "waiting for {} to leave the PD cluster before a new member joins",
                leaving.join(", ")
            ));
        }
        plan
    }

    fn services(group: &PDGroup) -> Result<Vec<Service>, BuildError> {
        build::services(group)
    }

    async fn observe(
        ctx: &Ctx,
        group: &PDGroup,
        cluster: &Cluster,
        instances: &[PD],
        _update_revision: &str,
        _revision_extra: Option<&str>,
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        // Failover decides from PD's own view of its members now, not from instance conditions
        // that lag by up to a health check: asked only where failover may act.
        let settings = failover::Settings::of(group.spec.failover.as_ref());
        // A scale-in counts the whole PD cluster's members against quorum, so it asks too.
        let scaling_in = instances
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .count()
            > usize::try_from(operator_api::core::Group::replicas(group)).unwrap_or_default();
        let pd_health = if group.spec.bootstrapped && (settings.enabled || scaling_in) {
            let url = build::pd_service_url(
                cluster,
                &namespace,
                &group.name_any(),
                build::client_port(&group.spec.template.spec),
            );
            Some(match ctx.pd(&namespace, &group.spec.cluster.name, url) {
                Ok(pd) => pd
                    .health()
                    .await
                    .map(|members| {
                        members
                            .into_iter()
                            .map(|m| (m.name, m.health))
                            .collect::<BTreeMap<String, bool>>()
                    })
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            })
        } else {
            None
        };
        // Under MultiPDGroup a group that does not own the Cluster's PD joins it, through the
        // Cluster's PD Service; without the gate it is held (`held_by`).
        let others = operator_runtime::cache::list(&ctx.groups, &namespace, |g| {
            g.spec.cluster.name == group.spec.cluster.name && g.name_any() != group.name_any()
        });
        let owner = (!group.spec.bootstrapped && instances.is_empty())
            .then(|| owner_of_pd(group, &others))
            .flatten();
        let multi = multi_pd_group(cluster);
        // A joining group asks the PD it joins before its first member exists; once a member
        // is in, the local Service reaches the whole PD cluster.
        let join = match (&cluster.spec.join, group.spec.bootstrapped) {
            (None, false) if multi && owner.is_some() => {
                let url = build::pd_service_url(
                    cluster,
                    &namespace,
                    &group.name_any(),
                    build::client_port(&group.spec.template.spec),
                );
                let answer = match ctx.pd(&namespace, &group.spec.cluster.name, url.clone()) {
                    Ok(pd) => pd.leader().await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                Some(answer.map_err(|error| {
                    format!(
                        "the PD of Cluster {} does not answer at {url} yet: {error}; this group's members join it once it does",
                        group.spec.cluster.name
                    )
                }))
            }
            (Some(join), false) => {
                let probe = probe_join(ctx, &namespace, &group.spec.cluster.name, &join.pd_urls)
                    .await
                    .map_err(|error| {
                        format!(
                            "the PD this cluster joins does not answer at {}: {error}; no PD member is created until it does",
                            join.pd_urls.join(", ")
                        )
                    });
                if let Err(message) = &probe {
                    shared_group::refusal(
                        &ctx.events,
                        group,
                        REASON_JOIN_UNREACHABLE,
                        "Join",
                        message.clone(),
                    )
                    .await;
                }
                Some(probe)
            }
            _ => None,
        };
        // An exit (a joining Cluster's PD scaled to 0) waits for this side's stores to leave
        // PD, which only PD itself can say.
        let local_stores = if scaling_in && exiting(group, cluster) {
            let url = build::pd_service_url(
                cluster,
                &namespace,
                &group.name_any(),
                build::client_port(&group.spec.template.spec),
            );
            let suffix = local_store_suffix(&namespace, &Dns::of_spec(&cluster.spec));
            Some(match ctx.pd(&namespace, &group.spec.cluster.name, url) {
                Ok(pd) => pd
                    .stores()
                    .await
                    .map(|info| live_stores_under(&info, &suffix))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            })
        } else {
            None
        };
        // A second PDGroup of one Cluster would bootstrap a PD cluster of its own: it is held
        // before it creates anything, and says which group owns the Cluster's PD.
        let held_by = owner.filter(|_| !multi).map(|owner| {
            format!(
                "PDGroup {owner} owns the PD of Cluster {}: a second PDGroup would bootstrap a second PD cluster, so this one creates nothing; turn on the Cluster's MultiPDGroup feature gate for several PDGroups to make one PD, or delete this group, or scale {owner}",
                group.spec.cluster.name
            )
        });
        if let Some(message) = &held_by {
            shared_group::refusal(
                &ctx.events,
                group,
                REASON_ANOTHER_PD_GROUP,
                "Bootstrap",
                message.clone(),
            )
            .await;
        }
        let unsupported = (group.spec.template.spec.mode == PD_MODE_MS).then(|| {
            "mode: ms (PD microservices) is not supported: this operator runs no TSO or scheduling servers, so PD keeps serving them itself in the normal mode; remove mode to clear this".to_string()
        });
        if let Some(message) = &unsupported {
            shared_group::refusal(
                &ctx.events,
                group,
                REASON_MODE_NOT_SUPPORTED,
                "Spec",
                message.clone(),
            )
            .await;
        }
        Ok(Observed {
            pods_created: failover::pods_created(&ctx.caches.pods, &namespace, instances),
            pd_health,
            join,
            local_stores,
            held_by,
            unsupported,
        })
    }

    // A member is added or removed only while PD answers: without a quorum a new member cannot
    // join and an old one cannot leave, and the attempt only adds to the outage.
    async fn silence(ctx: &Ctx, view: &View<'_>) -> Option<String> {
        let group = view.group;
        let url = build::pd_service_url(
            view.cluster,
            view.namespace,
            &group.name_any(),
            build::client_port(&group.spec.template.spec),
        );
        let local = match ctx.pd(view.namespace, &group.spec.cluster.name, url) {
            Ok(pd) => pd.members().await.err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        // A joining Cluster's first member has no local PD to ask: the PD it joins answers
        // for the PD cluster.
        match (local, &view.cluster.spec.join) {
            (Some(error), Some(join)) => {
                probe_join(ctx, view.namespace, &group.spec.cluster.name, &join.pd_urls)
                    .await
                    .err()
                    .map(|join_error| format!("{error}; and the PD it joins: {join_error}"))
            }
            (local, _) => local,
        }
    }

    fn rebuilt(view: &View<'_>, existing: &PD) -> Result<PD, BuildError> {
        build::instance(
            view.group,
            &existing.name_any(),
            existing.spec.topology.clone(),
            view.update_revision,
            initial_cluster_num(existing),
        )
    }

    fn last(pd: &PD) -> bool {
        pd.status.as_ref().is_some_and(|s| s.is_leader)
    }

    fn before_plan(view: &View<'_>) -> Result<BeforePlan<PD>, BuildError> {
        bootstrap(view)
    }

    fn create(
        view: &View<'_>,
        name: &str,
        topology: Topology,
        _ordinal: usize,
    ) -> Result<Decision<PD>, BuildError> {
        let pd = build::instance(view.group, name, topology, view.update_revision, None)?;
        Ok(Decision::Act(vec![Effect::Create(pd)]))
    }

    fn delete(view: &View<'_>, victim: &PD) -> Result<Decision<PD>, BuildError> {
        let name = victim.name_any();
        let pd_health = view
            .observed
            .pd_health
            .as_ref()
            .and_then(|h| h.as_ref().ok());
        // PD lives on in other Kubernetes clusters (a join) or other PDGroups (MultiPDGroup).
        let elsewhere = view.cluster.spec.join.is_some() || multi_pd_group(view.cluster);
        if let Some(message) = scale_in_refusal(&view.views(), &name, pd_health, elsewhere) {
            return Ok(Decision::Refuse {
                reason: REASON_SCALE_IN_REFUSED,
                action: "ScaleIn",
                message,
            });
        }
        if exiting(view.group, view.cluster)
            && exit_wait(view.observed.local_stores.as_ref()).is_some()
        {
            return Ok(Decision::Hold);
        }
        Ok(Decision::Act(vec![
            Effect::Delete(name.clone()),
            Effect::event(
                "ScaleIn",
                "ScaleIn",
                format!("removing PD {name}; it leaves the PD cluster first"),
            ),
        ]))
    }

    fn progress(view: &View<'_>, outcome: &Outcome) -> (Option<String>, Option<&'static str>) {
        if let Some(message) = &view.observed.held_by {
            return (Some(message.clone()), Some(REASON_ANOTHER_PD_GROUP));
        }
        if let Some(Err(message)) = &view.observed.join {
            return (Some(message.clone()), Some(REASON_JOIN_UNREACHABLE));
        }
        if outcome.held > 0
            && let Some(message) = exit_wait(view.observed.local_stores.as_ref())
        {
            return (Some(message), Some(REASON_EXIT_WAITING_FOR_STORES));
        }
        if outcome.waiting.is_none()
            && let Some(message) = &view.observed.unsupported
        {
            return (Some(message.clone()), Some(REASON_MODE_NOT_SUPPORTED));
        }
        let reason = (!view.group.spec.bootstrapped).then_some(REASON_BOOTSTRAPPING);
        (outcome.waiting.clone(), reason)
    }
}

/// What a PDGroup's rules see.
type View<'a> = GroupView<'a, Rules>;

/// What a PDGroup's rules learn each reconcile.
#[derive(Default)]
pub struct Observed {
    /// When each member's Pod was created, from the cache: a member is not failed for longer
    /// than its Pod has existed.
    pods_created: BTreeMap<String, Timestamp>,
    /// PD's health of each member by name (`/health`), or why PD did not answer; `None` where
    /// it was not asked (failover off, or PD not bootstrapped).
    pd_health: Option<Result<BTreeMap<String, bool>, String>>,
    /// For a group of a joining Cluster not yet in the PD cluster: whether the PD it joins
    /// answers (with a leader), or the message saying it does not.
    join: Option<Result<(), String>>,
    /// During an exit: the stores PD lists under this Kubernetes cluster's names that are not
    /// Tombstone (`id (address, state)`), or why PD did not answer; `None` when not exiting.
    local_stores: Option<Result<Vec<String>, String>>,
    /// For a group that has created nothing yet: why another PDGroup of its Cluster owns the
    /// Cluster's PD, which holds this one.
    held_by: Option<String>,
    /// Why a field the group sets is not acted on (`mode: ms`), if one is.
    unsupported: Option<String>,
}

/// The PDGroup among `others` (the other PDGroups of `group`'s Cluster) that owns the Cluster's
/// PD instead of `group` ([`shared_group::pd_owner`]).
fn owner_of_pd(group: &PDGroup, others: &[PDGroup]) -> Option<String> {
    let owner = shared_group::pd_owner(others.iter().chain(std::iter::once(group)))?;
    (owner.name_any() != group.name_any()).then(|| owner.name_any())
}

/// Whether several PDGroups of `cluster` make one PD (the `MultiPDGroup` gate).
fn multi_pd_group(cluster: &Cluster) -> bool {
    cluster.spec.enables(Feature::MultiPDGroup)
}

/// Whether `group` is leaving the PD cluster altogether: scaled to 0 in a Cluster that joins
/// another's PD (only such a group may go to 0; the PD cluster lives on elsewhere).
fn exiting(group: &PDGroup, cluster: &Cluster) -> bool {
    group.spec.replicas == 0 && cluster.spec.join.is_some()
}

/// What the addresses of this Kubernetes cluster's stores end with before the port:
/// `.<namespace>.svc.<domain>` (or `.<namespace>` in the short form). Every store of this side
/// is an instance host under a peer Service of this namespace; another side's names differ by
/// its cluster domain.
fn local_store_suffix(namespace: &str, dns: &Dns) -> String {
    let host = dns.service_host("x", namespace);
    host.strip_prefix('x').unwrap_or(&host).to_string()
}

/// The stores of `info` whose address host ends with `suffix` and that are not Tombstone.
fn live_stores_under(info: &pd_client::StoresInfo, suffix: &str) -> Vec<String> {
    info.stores
        .iter()
        .filter(|s| !s.is_tombstone())
        .filter(|s| {
            let host = s
                .store
                .address
                .rsplit_once(':')
                .map_or(s.store.address.as_str(), |(h, _)| h);
            host.ends_with(suffix)
        })
        .map(|s| {
            format!(
                "{} ({}, {})",
                s.store.id, s.store.address, s.store.state_name
            )
        })
        .collect()
}

/// Why the last PD members of an exiting group wait, if they do: PD still lists stores of
/// this Kubernetes cluster that are not Tombstone (they need PD to leave), or PD cannot say.
fn exit_wait(local_stores: Option<&Result<Vec<String>, String>>) -> Option<String> {
    match local_stores? {
        Ok(stores) if stores.is_empty() => None,
        Ok(stores) => Some(format!(
            "the PD members of this cluster leave once its stores have left PD; PD still lists {} of them not Tombstone: {}",
            stores.len(),
            stores.join(", ")
        )),
        Err(error) => Some(format!(
            "the PD members of this cluster leave once its stores have left PD, and PD cannot say whether they have: {error}"
        )),
    }
}

/// Asks each URL a joining Cluster names for PD's leader; `Ok` once one answers with one (a
/// member joins only through a PD with a quorum), else the last error.
async fn probe_join(
    ctx: &Ctx,
    namespace: &str,
    cluster: &str,
    urls: &[String],
) -> Result<(), String> {
    let mut last = "no URL given".to_string();
    for url in urls {
        match ctx.pd_join(namespace, cluster, url) {
            Ok(pd) => match pd.leader().await {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{url}: {e}"),
            },
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// A member is replaced only while a majority of the members is healthy, so that PD can remove
/// it (a change of membership needs a quorum) and the members left keep one. Healthy means
/// `Ready` and, where PD was asked (`pd_health`), healthy in PD's own answer now; a PD that does
/// not answer has no quorum to change its membership with.
fn members_outage(
    instances: &[PD],
    pods: &BTreeMap<String, Timestamp>,
    pd_health: Option<&Result<BTreeMap<String, bool>, String>>,
) -> Option<String> {
    if let Some(Err(error)) = pd_health {
        return Some(format!(
            "PD does not answer ({error}): without a quorum it cannot change its membership, and the members are waited for"
        ));
    }
    let staying: Vec<&PD> = instances
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .collect();
    let healthy = staying
        .iter()
        .filter(|i| {
            let name = i.name_any();
            failover::by_readiness(i.conditions(), pods.get(&name)) == failover::Health::Healthy
                && pd_health.is_none_or(|h| h.as_ref().is_ok_and(|h| h.get(&name) == Some(&true)))
        })
        .count();
    (healthy * 2 <= staying.len()).then(|| {
        format!(
            "only {healthy} of the {} PD members are healthy, no majority: PD cannot change its membership safely, and the members are waited for",
            staying.len()
        )
    })
}

/// Until the PD cluster is bootstrapped, the plan waits: the first members are created together
/// (each waits for all of them), and once one of them is initialized the group is marked
/// `bootstrapped`, after which new members join the cluster instead of forming one.
fn bootstrap(view: &View<'_>) -> Result<BeforePlan<PD>, BuildError> {
    let group = view.group;
    if group.spec.bootstrapped {
        return Ok(BeforePlan::default());
    }
    if let Some(message) = &view.observed.held_by {
        return Ok(BeforePlan {
            waiting: Some(message.clone()),
            skip_plan: true,
            ..BeforePlan::default()
        });
    }
    let mut before = BeforePlan {
        skip_plan: true,
        ..BeforePlan::default()
    };
    // A joining Cluster never bootstraps: once the PD it names answers, the group counts as
    // bootstrapped (the PD cluster exists) and its members are created one by one, each
    // joining it. Until then nothing is created.
    // Under MultiPDGroup a group that does not own the Cluster's PD joins it the same way.
    let joins = match &view.cluster.spec.join {
        Some(join) => Some(join.pd_urls.join(", ")),
        None if view.observed.join.is_some() => Some(build::pd_service_url(
            view.cluster,
            view.namespace,
            &group.name_any(),
            build::client_port(&group.spec.template.spec),
        )),
        None => None,
    };
    if let Some(urls) = joins {
        match &view.observed.join {
            Some(Ok(())) => {
                before.effects = vec![
                    Effect::PatchGroup(serde_json::json!({"spec": {"bootstrapped": true}})),
                    Effect::event(
                        "Joining",
                        "Join",
                        format!("the PD cluster at {urls} answers; the members join it"),
                    ),
                ];
            }
            Some(Err(message)) => before.waiting = Some(message.clone()),
            None => before.waiting = Some("asking the PD this cluster joins".to_string()),
        }
        return Ok(before);
    }
    if view.instances.is_empty() {
        let replicas = group.spec.replicas.max(1);
        let policy = Policy {
            replicas,
            update_revision: view.update_revision.to_string(),
            max_surge: 0,
            max_unavailable: 1,
            topologies: update::topologies(&group.spec.schedule_policies),
        };
        let uid = group.uid().unwrap_or_default();
        for (index, action) in update::plan(&policy, &[]).actions.into_iter().enumerate() {
            if let update::Action::Create { topology } = action {
                let name = shared_group::instance_name(&group.name_any(), &uid, index);
                let pd =
                    build::instance(group, &name, topology, view.update_revision, Some(replicas))?;
                before.effects.push(Effect::Create(pd));
            }
        }
        before.waiting = Some("creating the first PD members".to_string());
    } else if view
        .instances
        .iter()
        .any(|pd| conditions::is_true(pd.conditions(), conditions::INITIALIZED))
    {
        before.effects = vec![
            Effect::PatchGroup(serde_json::json!({"spec": {"bootstrapped": true}})),
            Effect::event(
                "Bootstrapped",
                "Bootstrap",
                "the PD cluster is up; new members join it".into(),
            ),
        ];
    } else {
        before.waiting = Some("waiting for the first PD members to form the cluster".to_string());
    }
    Ok(before)
}

/// How many first members `pd` bootstrapped with, when it is one: a first member stays one, so
/// its config keeps `initial-cluster`.
fn initial_cluster_num(pd: &PD) -> Option<i32> {
    pd.annotations()
        .get(keys::ANNO_INITIAL_CLUSTER_NUM)
        .and_then(|n| n.parse().ok())
}

/// Why removing `victim` now would hurt the PD cluster, if it would: never while the members
/// left would not have a healthy majority, and never below one member of this group unless PD
/// lives on `elsewhere` (the Cluster joins another's PD, or several PDGroups make one PD under
/// MultiPDGroup): then the last member of the group may go once the others alone keep a
/// quorum. Quorum counts the whole PD cluster: `pd_health` (PD's `/health`, when asked) lists
/// every member, and those that are no instance of this group (members of another Kubernetes
/// cluster or PDGroup) count with the health PD reports for them.
fn scale_in_refusal(
    views: &[InstanceView],
    victim: &str,
    pd_health: Option<&BTreeMap<String, bool>>,
    elsewhere: bool,
) -> Option<String> {
    let active: Vec<&InstanceView> = views.iter().filter(|v| !v.deleting).collect();
    let local_remaining = active.len().saturating_sub(1);
    if local_remaining == 0 && !elsewhere {
        return Some(
            "PD cannot be scaled below one member: this group is the Cluster's whole PD (only a Cluster that joins another's PD, spec.join, or one with several PDGroups under MultiPDGroup may scale a PDGroup to 0)"
                .to_string(),
        );
    }
    let others: Vec<(&str, bool)> = pd_health
        .into_iter()
        .flatten()
        .filter(|(name, _)| !views.iter().any(|v| &v.name == *name))
        .map(|(name, healthy)| (name.as_str(), *healthy))
        .collect();
    if local_remaining == 0 && others.is_empty() {
        return Some(format!(
            "removing {victim}, the last PD member of this group, needs members of other PDGroups or Kubernetes clusters to keep PD going, and PD lists none{}",
            if pd_health.is_none() {
                " (PD was not asked)"
            } else {
                ""
            }
        ));
    }
    let mut unhealthy: Vec<&str> = active
        .iter()
        .filter(|v| v.name != victim && !v.ready)
        .map(|v| v.name.as_str())
        .collect();
    unhealthy.extend(others.iter().filter(|(_, h)| !h).map(|(name, _)| *name));
    let remaining = local_remaining + others.len();
    let healthy_after = remaining - unhealthy.len();
    if healthy_after * 2 <= remaining {
        return Some(format!(
            "removing {victim} would leave {healthy_after} healthy of {remaining} PD members of the whole PD cluster ({} in other Kubernetes clusters), no quorum; unhealthy: {}",
            others.len(),
            unhealthy.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests;
