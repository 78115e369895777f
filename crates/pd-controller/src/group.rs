//! The PDGroup reconcile: the group's Services, its PD instances (created, updated one at a time,
//! removed on scale-in with PD's quorum in mind), `bootstrapped`, and the group's status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, PD, PDGroup, Topology};
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
        Ok(build::services(group)?.into())
    }

    async fn observe(
        ctx: &Ctx,
        group: &PDGroup,
        cluster: &Cluster,
        instances: &[PD],
        _update_revision: &str,
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        // Failover decides from PD's own view of its members now, not from instance conditions
        // that lag by up to a health check: asked only where failover may act.
        let settings = failover::Settings::of(group.spec.failover.as_ref());
        let pd_health = if group.spec.bootstrapped && settings.enabled {
            let url = build::client_service_url(
                &namespace,
                &group.name_any(),
                build::client_port(&group.spec.template.spec),
                &Dns::of_spec(&cluster.spec),
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
        // A joining group asks the PD it joins before its first member exists; once a member
        // is in, the local Service reaches the whole PD cluster.
        let join = match (&cluster.spec.join, group.spec.bootstrapped) {
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
        Ok(Observed {
            pods_created: failover::pods_created(&ctx.caches.pods, &namespace, instances),
            pd_health,
            join,
        })
    }

    // A member is added or removed only while PD answers: without a quorum a new member cannot
    // join and an old one cannot leave, and the attempt only adds to the outage.
    async fn silence(ctx: &Ctx, view: &View<'_>) -> Option<String> {
        let group = view.group;
        let url = build::client_service_url(
            view.namespace,
            &group.name_any(),
            build::client_port(&group.spec.template.spec),
            &Dns::of_spec(&view.cluster.spec),
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
        if let Some(message) = scale_in_refusal(&view.views(), &name) {
            return Ok(Decision::Refuse {
                reason: REASON_SCALE_IN_REFUSED,
                action: "ScaleIn",
                message,
            });
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
        if let Some(Err(message)) = &view.observed.join {
            return (Some(message.clone()), Some(REASON_JOIN_UNREACHABLE));
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
    let mut before = BeforePlan {
        skip_plan: true,
        ..BeforePlan::default()
    };
    // A joining Cluster never bootstraps: once the PD it names answers, the group counts as
    // bootstrapped (the PD cluster exists) and its members are created one by one, each
    // joining it. Until then nothing is created.
    if let Some(join) = &view.cluster.spec.join {
        match &view.observed.join {
            Some(Ok(())) => {
                before.effects = vec![
                    Effect::PatchGroup(serde_json::json!({"spec": {"bootstrapped": true}})),
                    Effect::event(
                        "Joining",
                        "Join",
                        format!(
                            "the PD cluster at {} answers; the members join it",
                            join.pd_urls.join(", ")
                        ),
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

/// Why removing `victim` now would hurt the PD cluster, if it would: never below one member, and
/// never while the members left would not have a healthy majority.
fn scale_in_refusal(views: &[InstanceView], victim: &str) -> Option<String> {
    let active: Vec<&InstanceView> = views.iter().filter(|v| !v.deleting).collect();
    let remaining = active.len().saturating_sub(1);
    if remaining == 0 {
        return Some("PD cannot be scaled below one member".to_string());
    }
    let unhealthy_others: Vec<&str> = active
        .iter()
        .filter(|v| v.name != victim && !v.ready)
        .map(|v| v.name.as_str())
        .collect();
    let healthy_after = remaining - unhealthy_others.len();
    if healthy_after * 2 <= remaining {
        return Some(format!(
            "removing {victim} would leave {healthy_after} healthy of {remaining} PD members, no quorum; unhealthy: {}",
            unhealthy_others.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use operator_api::conditions::NewCondition;

    use super::*;

    fn group(bootstrapped: bool) -> PDGroup {
        let mut group = PDGroup::new(
            "pd",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "replicas": 3, "bootstrapped": bootstrapped,
                "template": {"spec": {"version": "v8.5.2"}}
            }))
            .unwrap(),
        );
        group.metadata.namespace = Some("db".into());
        group.metadata.uid = Some("u".into());
        group
    }

    /// `bootstrap` of `group` over `instances`.
    fn bootstrap_of(group: &PDGroup, instances: &[PD]) -> BeforePlan<PD> {
        let cluster = Cluster::new("c", Default::default());
        bootstrap(&GroupView {
            group,
            namespace: "db",
            cluster: &cluster,
            instances,
            update_revision: "pd-r1",
            observed: &Observed::default(),
        })
        .unwrap()
    }

    #[test]
    fn the_first_members_are_created_together_then_the_group_is_marked_bootstrapped() {
        let fresh = group(false);
        let first = bootstrap_of(&fresh, &[]);
        assert!(first.skip_plan);
        let created: Vec<&PD> = first
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Create(pd) => Some(pd),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 3);
        assert!(created.iter().all(|pd| initial_cluster_num(pd) == Some(3)));

        // Members exist, none initialized: wait, create nothing more.
        let mut member = created[0].clone();
        let waiting = bootstrap_of(&fresh, std::slice::from_ref(&member));
        assert!(waiting.skip_plan && waiting.effects.is_empty() && waiting.waiting.is_some());

        // One is initialized: the group is marked bootstrapped.
        let mut conditions = Vec::new();
        conditions::set(
            &mut conditions,
            NewCondition {
                type_: conditions::INITIALIZED,
                status: true,
                reason: "Initialized",
                message: String::new(),
                observed_generation: None,
            },
            Default::default(),
        );
        member.status = Some(Default::default());
        *member.conditions_mut() = conditions;
        let marked = bootstrap_of(&fresh, std::slice::from_ref(&member));
        assert!(
            matches!(&marked.effects[0], Effect::PatchGroup(p) if p["spec"]["bootstrapped"] == true)
        );

        // Bootstrapped: the update engine plans as for any group.
        let done = bootstrap_of(&group(true), std::slice::from_ref(&member));
        assert!(!done.skip_plan && done.effects.is_empty());
    }

    #[test]
    fn a_joining_group_creates_nothing_until_the_pd_it_joins_answers_then_never_bootstraps() {
        let fresh = group(false);
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c"},
            "spec": {"join": {"pdURLs": ["http://pd-a.pd-pd-peer.db.svc.one.local:2379"]}}
        }))
        .unwrap();
        let before = |join: Option<Result<(), String>>| {
            let observed = Observed {
                join,
                ..Observed::default()
            };
            bootstrap(&GroupView {
                group: &fresh,
                namespace: "db",
                cluster: &cluster,
                instances: &[],
                update_revision: "pd-r1",
                observed: &observed,
            })
            .unwrap()
        };
        let creates = |b: &BeforePlan<PD>| b.effects.iter().any(|e| matches!(e, Effect::Create(_)));

        // PD does not answer: nothing is created, and the group says why.
        let silent = before(Some(Err("no PD answers at http://pd-a...".into())));
        assert!(silent.skip_plan && !creates(&silent));
        assert!(silent.waiting.is_some_and(|w| w.contains("no PD answers")));
        let unasked = before(None);
        assert!(unasked.skip_plan && !creates(&unasked));

        // It answers: the group counts as bootstrapped, and no first member with
        // `initial-cluster` is ever made; members are created by the plan, each joining.
        let answered = before(Some(Ok(())));
        assert!(!creates(&answered));
        assert!(
            matches!(&answered.effects[0], Effect::PatchGroup(p) if p["spec"]["bootstrapped"] == true)
        );
    }

    fn view(name: &str, ready: bool) -> InstanceView {
        InstanceView {
            name: name.into(),
            revision: "r".into(),
            ready,
            settling: None,
            deleting: false,
            topology: Default::default(),
            last: false,
        }
    }

    #[test]
    fn never_below_one_member() {
        let refusal = scale_in_refusal(&[view("a", true)], "a").unwrap();
        assert!(refusal.contains("below one member"), "{refusal}");
    }

    #[test]
    fn scale_in_keeps_a_healthy_majority() {
        // 3 → 2 with one other member down: 1 healthy of 2 is no quorum.
        let views = [view("a", true), view("b", false), view("c", true)];
        let refusal = scale_in_refusal(&views, "c").unwrap();
        assert!(
            refusal.contains("no quorum") && refusal.contains('b'),
            "{refusal}"
        );
        // Removing the unhealthy one itself is fine.
        assert!(scale_in_refusal(&views, "b").is_none());
        // All healthy: fine.
        assert!(
            scale_in_refusal(&[view("a", true), view("b", true), view("c", true)], "c").is_none()
        );
    }

    fn member(name: &str, ready: Option<bool>) -> PD {
        let mut pd = PD::new(
            name,
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "pd-pd-peer", "version": "v8.5.2"
            }))
            .unwrap(),
        );
        if let Some(ready) = ready {
            let mut list = Vec::new();
            conditions::set(
                &mut list,
                NewCondition {
                    type_: conditions::READY,
                    status: ready,
                    reason: "R",
                    message: String::new(),
                    observed_generation: None,
                },
                Timestamp::UNIX_EPOCH,
            );
            *pd.conditions_mut() = list;
        }
        pd
    }

    #[test]
    fn a_member_is_failed_over_only_while_a_majority_is_healthy() {
        let pods = |names: &[&str]| -> BTreeMap<String, Timestamp> {
            names
                .iter()
                .map(|n| (n.to_string(), Timestamp::UNIX_EPOCH))
                .collect()
        };
        let all = pods(&["a", "b", "c"]);
        let one_down = [
            member("a", Some(false)),
            member("b", Some(true)),
            member("c", Some(true)),
        ];
        assert_eq!(members_outage(&one_down, &all, None), None);
        let two_down = [
            member("a", Some(false)),
            member("b", Some(false)),
            member("c", Some(true)),
        ];
        assert!(
            members_outage(&two_down, &all, None)
                .is_some_and(|m| m.starts_with("only 1 of the 3 PD members"))
        );
        // PD's own answer counts: a member its instance still shows Ready but that PD reports
        // unhealthy is not healthy, and a PD that does not answer is an outage.
        let pd = |healthy: &[&str]| -> Result<BTreeMap<String, bool>, String> {
            Ok(["a", "b", "c"]
                .iter()
                .map(|n| (n.to_string(), healthy.contains(n)))
                .collect())
        };
        assert_eq!(
            members_outage(&one_down, &all, Some(&pd(&["b", "c"]))),
            None
        );
        assert!(
            members_outage(&one_down, &all, Some(&pd(&["c"])))
                .is_some_and(|m| m.starts_with("only 1 of the 3 PD members"))
        );
        let silent: Result<BTreeMap<String, bool>, String> = Err("no leader".into());
        assert!(
            members_outage(&one_down, &all, Some(&silent))
                .is_some_and(|m| m.starts_with("PD does not answer (no leader)"))
        );
        // A member that cannot be judged is not counted healthy.
        let unknown = [
            member("a", Some(false)),
            member("b", None),
            member("c", Some(true)),
        ];
        assert!(members_outage(&unknown, &all, None).is_some());
        // The only member is never replaced.
        assert!(members_outage(&[member("a", Some(false))], &pods(&["a"]), None).is_some());
    }

    #[test]
    fn a_new_member_waits_until_a_leaving_one_has_left() {
        let view = |name: &str, deleting: bool| InstanceView {
            name: name.into(),
            revision: "r".into(),
            ready: !deleting,
            settling: None,
            deleting,
            topology: Topology::new(),
            last: false,
        };
        let policy = Policy {
            replicas: 3,
            update_revision: "r".into(),
            max_surge: 0,
            max_unavailable: 1,
            topologies: Vec::new(),
        };
        let views = [view("a", true), view("b", false), view("c", false)];
        let plan = Rules::plan(&policy, &views);
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert!(
            plan.waiting
                .is_some_and(|w| w.contains("waiting for a to leave"))
        );
        let views = [view("b", false), view("c", false)];
        let plan = Rules::plan(&policy, &views);
        assert!(matches!(&plan.actions[..], [update::Action::Create { .. }]));
    }
}
