//! The generic group reconciler: one skeleton runs the PD, TiKV and TiDB groups (and any
//! component after them). It reads the group's Cluster and instances from the caches, applies the
//! group's Services and its PodDisruptionBudget, adopts instances made before server-side apply, holds everything while
//! compute is suspended or a downgrade is refused, plans creates, updates and removals with the
//! update engine, asks the component's [`GroupRules`] what each step means, carries out the
//! [`Effect`]s they return, and writes the group's status once.

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::Deref;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{Cluster, ComponentGroupStatus, Feature, Group, Instance, Topology};
use operator_api::keys;
use serde::Serialize;
use tracing::info;

use crate::apply::apply_if_changed;
use crate::build::{self, BuildError, Owner};
use crate::cache;
use crate::component::{InstanceWriter, Shared};
use crate::failover::{self, FailoverPlan};
use crate::group::{self as shared_group, InstanceSummary, Progress};
use crate::reconcile::{self, Error, GroupStart, StatusKind};
use crate::revision::revision_name;
use crate::update::{self, Availability, InstanceView, Plan, Policy};

/// What a group's rules see when they decide: the group, its Cluster and instances, and what the
/// rules observed of the component this reconcile.
pub struct GroupView<'a, R: GroupRules> {
    /// The group.
    pub group: &'a R::Group,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its Cluster.
    pub cluster: &'a Cluster,
    /// Its instances, from the cache.
    pub instances: &'a [R::Instance],
    /// The revision of the group's template.
    pub update_revision: &'a str,
    /// What [`GroupRules::observe`] found.
    pub observed: &'a R::Observed,
}

impl<R: GroupRules> GroupView<'_, R> {
    /// The instance named `name`, if the group has it.
    pub fn instance(&self, name: &str) -> Option<&R::Instance> {
        self.instances.iter().find(|i| i.name_any() == name)
    }

    /// How the update engine sees every instance now, under the group's `minReadySeconds`.
    pub fn views(&self) -> Vec<InstanceView> {
        let min_ready_seconds = self.group.min_ready_seconds();
        let now = Timestamp::now();
        self.instances
            .iter()
            .map(|i| instance_view::<R>(i, min_ready_seconds, now))
            .collect()
    }
}

/// One write a group's rules ask for; the reconciler carries it out.
#[derive(Clone, Debug)]
pub enum Effect<I> {
    /// Create (server-side apply) a new instance.
    Create(I),
    /// Apply an existing instance's new spec (the existing one is found by name).
    Update(I),
    /// Delete an instance.
    Delete(String),
    /// Set (or with `None` remove) an operator-state annotation of an instance.
    SetState {
        /// The instance.
        instance: String,
        /// The annotation.
        key: &'static str,
        /// Its value.
        value: Option<String>,
    },
    /// Merge-patch the group itself (`spec.bootstrapped`, say).
    PatchGroup(serde_json::Value),
    /// A Normal Event on the group.
    Event {
        /// Its reason.
        reason: &'static str,
        /// Its action.
        action: &'static str,
        /// Its message.
        message: String,
    },
}

impl<I> Effect<I> {
    /// A Normal Event on the group.
    pub fn event(reason: &'static str, action: &'static str, message: String) -> Self {
        Effect::Event {
            reason,
            action,
            message,
        }
    }
}

/// What a group's rules decide for one step of the plan.
#[derive(Clone, Debug)]
pub enum Decision<I> {
    /// Carry out these writes.
    Act(Vec<Effect<I>>),
    /// Refuse the step: the group is blocked with this reason and message (and a Warning Event
    /// when that is news).
    Refuse {
        /// The reason of the group's conditions.
        reason: &'static str,
        /// The Event's action (`ScaleIn`).
        action: &'static str,
        /// What the user reads.
        message: String,
    },
    /// The step waits for something the rules report in [`GroupRules::progress`]; it counts as
    /// held.
    Hold,
    /// Nothing to do for this step.
    Skip,
}

/// What the rules do before the plan: writes that need no plan, a wait, and whether the plan is
/// skipped this time.
#[derive(Clone, Debug)]
pub struct BeforePlan<I> {
    /// The writes.
    pub effects: Vec<Effect<I>>,
    /// Why the group waits, if it does.
    pub waiting: Option<String>,
    /// Whether the update engine's plan is skipped this reconcile.
    pub skip_plan: bool,
}

impl<I> Default for BeforePlan<I> {
    fn default() -> Self {
        Self {
            effects: Vec::new(),
            waiting: None,
            skip_plan: false,
        }
    }
}

/// How a reconcile of the group went, for the rules' last word on its status.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The wait of the engine or the rules.
    pub waiting: Option<String>,
    /// Whether a refusal blocks the group.
    pub blocked: bool,
    /// How many steps were [`Decision::Hold`].
    pub held: usize,
}

/// A component's rules for its groups: how its instances are built, what it observes of the
/// component, and what each step of the update engine's plan means for it. Every method but
/// [`GroupRules::observe`] and [`GroupRules::silence`] is pure.
pub trait GroupRules: Sized + Send + Sync + 'static {
    /// The group kind.
    type Group: StatusKind<StatusOf = ComponentGroupStatus> + Group + Send + Sync + 'static;
    /// The instance kind.
    type Instance: StatusKind + Instance + Serialize + Send + Sync + 'static;
    /// What the rules learn of the component each reconcile (PD's view, an upgrade gate).
    type Observed: Send + Sync;
    /// The controller's context.
    type Ctx: Deref<Target = Shared> + Send + Sync + 'static;

    /// The field manager of the controller's writes.
    const MANAGER: &'static str;
    /// How messages name the instances ("PD members").
    const NOUN: &'static str;
    /// How a hold of scaling names one instance ("member", "store").
    const UNIT: &'static str;
    /// Annotations of an instance that are operator state, not template.
    const STATE_ANNOTATIONS: &'static [&'static str] = &[];
    /// Whether the group reports `Available` ([`shared_group::with_available`]), as the
    /// reference's TiDB groups do.
    const AVAILABLE_CONDITION: bool = false;
    /// Whether the group stops acting once its Cluster is being deleted.
    const HALT_WHILE_CLUSTER_DELETING: bool = false;

    /// The controller's cache of the instances.
    fn instances(ctx: &Self::Ctx) -> &Store<Self::Instance>;

    /// The group's Services.
    fn services(group: &Self::Group) -> Result<Vec<Service>, BuildError>;

    /// What the rules need to know of the component before they decide; may tidy what no one
    /// needs any more (best effort).
    fn observe(
        ctx: &Self::Ctx,
        group: &Self::Group,
        cluster: &Cluster,
        instances: &[Self::Instance],
        update_revision: &str,
        revision_extra: Option<&str>,
    ) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// What the group's revision covers besides its spec, that only the rules can read (the
    /// fingerprint of a certificate the component does not reload by itself): a change makes a
    /// new revision, which rolls the group as a template change does. `None` adds nothing, so a
    /// group without one keeps the revision its spec gives. [`GroupRules::observe`] is handed
    /// the value, so the rules read it once per reconcile.
    fn revision_extra(
        _ctx: &Self::Ctx,
        _group: &Self::Group,
        _instances: &[Self::Instance],
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send {
        async { Ok(None) }
    }

    /// Why PD does not answer, asked afresh before instances are added or removed, if it does
    /// not: the group then adds and removes nothing ([`shared_group::hold_scaling`]).
    fn silence(
        ctx: &Self::Ctx,
        view: &GroupView<'_, Self>,
    ) -> impl Future<Output = Option<String>> + Send;

    /// The revision new and updated instances get: the group's own unless the rules hold a
    /// version back.
    fn target_revision(view: &GroupView<'_, Self>) -> String {
        view.update_revision.to_string()
    }

    /// `existing` as it should be at the target revision.
    fn rebuilt(
        view: &GroupView<'_, Self>,
        existing: &Self::Instance,
    ) -> Result<Self::Instance, BuildError>;

    /// Whether an instance is leaving the group (deleted, or marked for removal).
    fn leaving(instance: &Self::Instance) -> bool {
        instance.meta().deletion_timestamp.is_some()
    }

    /// Whether the update engine should take this instance last (the PD leader).
    fn last(_instance: &Self::Instance) -> bool {
        false
    }

    /// How many instances an update may add above the replicas.
    fn max_surge(_group: &Self::Group) -> i32 {
        0
    }

    /// The update engine's plan (a component may amend it).
    fn plan(policy: &Policy, views: &[InstanceView]) -> Plan {
        update::plan(policy, views)
    }

    /// What happens before the plan (bootstrapping, in-place updates).
    fn before_plan(_view: &GroupView<'_, Self>) -> Result<BeforePlan<Self::Instance>, BuildError> {
        Ok(BeforePlan::default())
    }

    /// A new instance `name` at `topology`; `ordinal` counts the creates before it this
    /// reconcile.
    fn create(
        view: &GroupView<'_, Self>,
        name: &str,
        topology: Topology,
        ordinal: usize,
    ) -> Result<Decision<Self::Instance>, BuildError>;

    /// Moving `existing` to the target revision.
    fn update(
        view: &GroupView<'_, Self>,
        existing: &Self::Instance,
    ) -> Result<Decision<Self::Instance>, BuildError> {
        Ok(Decision::Act(vec![Effect::Update(Self::rebuilt(
            view, existing,
        )?)]))
    }

    /// Taking `victim` out of the group.
    fn delete(
        view: &GroupView<'_, Self>,
        victim: &Self::Instance,
    ) -> Result<Decision<Self::Instance>, BuildError>;

    /// The group's failover settings; `None` for a component without failover.
    fn failover(_group: &Self::Group) -> Option<failover::Settings> {
        None
    }

    /// How an instance is doing, for failover.
    fn health(_view: &GroupView<'_, Self>, _instance: &Self::Instance) -> failover::Health {
        failover::Health::Unknown
    }

    /// Why the failures now are an outage rather than failures to replace, if they are.
    fn outage(_view: &GroupView<'_, Self>) -> Option<String> {
        None
    }

    /// When a replaced instance leaves the group.
    const RETIRE: failover::Retire = failover::Retire::OnRecovery;

    /// The wait the group's status gives, and its reason when not `NotAllInstancesUpToDate`.
    fn progress(
        _view: &GroupView<'_, Self>,
        outcome: &Outcome,
    ) -> (Option<String>, Option<&'static str>) {
        (outcome.waiting.clone(), None)
    }
}

/// The revision label of an instance.
pub fn revision_of<I: Resource>(instance: &I) -> String {
    instance
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::LABEL_INSTANCE_REVISION_HASH))
        .cloned()
        .unwrap_or_default()
}

/// Whether an instance is available ([`shared_group::is_available`]) by its own status.
pub fn is_available<I: Instance + Resource + HasConditions>(instance: &I) -> bool {
    shared_group::is_available(
        instance.conditions(),
        instance.observed_generation(),
        instance.meta().generation,
    )
}

/// How the update engine sees an instance under rules `R` at `now`: an available instance whose
/// `Ready` condition turned true less than `min_ready_seconds` ago is still settling.
pub fn instance_view<R: GroupRules>(
    instance: &R::Instance,
    min_ready_seconds: i64,
    now: Timestamp,
) -> InstanceView {
    let ready = is_available(instance);
    let settling = conditions::find(instance.conditions(), conditions::READY)
        .filter(|_| ready)
        .and_then(|c| {
            match update::availability(c.last_transition_time.0, min_ready_seconds, now) {
                Availability::Available => None,
                Availability::Settling(left) => Some(left),
            }
        });
    InstanceView {
        name: instance.name_any(),
        revision: revision_of(instance),
        ready,
        settling,
        deleting: R::leaving(instance),
        topology: instance.topology().clone(),
        last: R::last(instance),
    }
}

/// Sets the group's outdated-replicas gauge from its status as this reconcile finds it (the
/// controller's last status write, which itself triggers a reconcile), or removes it, and the
/// failed-instance gauge, once the group is being deleted.
fn observe_roll<R: GroupRules>(metrics: &crate::metrics::Metrics, group: &R::Group) {
    let meta = group.meta();
    let outdated = meta.deletion_timestamp.is_none().then(|| {
        let status = group.status().map(|s| &s.group);
        status.map_or(0, |s| i64::from((s.replicas - s.updated_replicas).max(0)))
    });
    metrics.observe_group(
        meta.namespace.as_deref().unwrap_or_default(),
        operator_api::core::OfCluster::cluster_name(group),
        <R::Group as Group>::COMPONENT,
        meta.name.as_deref().unwrap_or_default(),
        outdated,
    );
    if outdated.is_none() {
        // The failed-instance gauge is set by the failover step; it goes with the group.
        metrics.observe_failed(
            [
                meta.namespace.as_deref().unwrap_or_default(),
                operator_api::core::OfCluster::cluster_name(group),
                <R::Group as Group>::COMPONENT,
                meta.name.as_deref().unwrap_or_default(),
            ],
            None,
        );
    }
}

/// Reconciles one group of the component `R`.
pub async fn reconcile<R: GroupRules>(
    group: std::sync::Arc<R::Group>,
    ctx: std::sync::Arc<R::Ctx>,
) -> Result<Action, Error> {
    // The metric label is the kind in lower case (`pdgroup`).
    let controller = R::Group::kind(&()).to_lowercase();
    observe_roll::<R>(&ctx.metrics, &group);
    reconcile::measured(&ctx.metrics, &controller, run::<R>(&group, &ctx)).await
}

async fn run<R: GroupRules>(group: &R::Group, ctx: &R::Ctx) -> Result<Action, Error> {
    let (namespace, cluster) = match reconcile::group_start(ctx, group).await? {
        GroupStart::Go { namespace, cluster } => (namespace, cluster),
        GroupStart::Done(then) => return Ok(then),
    };
    if R::HALT_WHILE_CLUSTER_DELETING && cluster.metadata.deletion_timestamp.is_some() {
        // The cluster-controller removes the groups; nothing new is made meanwhile.
        return Ok(Action::await_change());
    }
    let name = group.name_any();

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for service in R::services(group)? {
        let existing = cache::get(&ctx.caches.services, &namespace, &service.name_any());
        apply_if_changed(&services, R::MANAGER, existing.as_ref(), service).await?;
    }
    let budget = build::disruption_budget(group)?;
    let existing = cache::get(
        &ctx.caches.disruption_budgets,
        &namespace,
        &budget.name_any(),
    );
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_if_changed(&budgets, R::MANAGER, existing.as_ref(), budget).await?;

    let writer = InstanceWriter::new(ctx, group, R::MANAGER, R::STATE_ANNOTATIONS);
    if let Some(wait) = writer.wait_for_cache(R::instances(ctx)) {
        return Ok(wait);
    }
    let owner = Owner::of_group(group);
    let selector = build::group_selector(owner);
    let labels = build::group_labels(owner);
    let instances = cache::list(R::instances(ctx), &namespace, |i| {
        cache::has_labels(i, &labels)
    });
    let mut revision_input = group.revision_input();
    let extra = R::revision_extra(ctx, group, &instances).await?;
    if let Some(extra) = &extra {
        revision_input["extra"] = serde_json::Value::String(extra.clone());
    }
    let update_revision = revision_name(&name, &revision_input);
    let observed = R::observe(
        ctx,
        group,
        &cluster,
        &instances,
        &update_revision,
        extra.as_deref(),
    )
    .await?;
    let view = GroupView::<R> {
        group,
        namespace: &namespace,
        cluster: &cluster,
        instances: &instances,
        update_revision: &update_revision,
        observed: &observed,
    };
    let target = R::target_revision(&view);
    // Instances created before server-side apply become wholly the template's, in place.
    writer
        .adopt_all(&instances, |i| {
            (revision_of(i) == target)
                .then(|| R::rebuilt(&view, i).ok())
                .flatten()
                .map(|desired| keeping_identity(i, desired))
        })
        .await?;

    let mut acted = false;
    let mut waiting = None;
    let mut gates_wait = None;
    let mut blocked = None;
    let mut held = 0;
    let mut recheck = None;
    let version = &group.common().version;
    let suspended = cluster.spec.suspends_compute();
    if suspended {
        // Nothing is created, updated or removed while the Pods are suspended.
        waiting = Some("the Cluster suspends compute".to_string());
    } else if let Some(unsynced) = features_unsynced(group.features(), &cluster) {
        // As in tidb-operator v2: an instance made before the gates arrive would be made wrong
        // (a subdomain, a probe), so nothing is done until the cluster-controller copied them.
        gates_wait = Some(unsynced);
    } else if let Some(refusal) =
        shared_group::downgrade_hold(&ctx.events, group, version, &instances).await
    {
        blocked = Some(refusal);
    } else {
        let before = R::before_plan(&view)?;
        waiting = before.waiting;
        for effect in before.effects {
            carry_out::<R>(ctx, group, &writer, &instances, effect).await?;
            acted = true;
        }
        let mut skip_plan = before.skip_plan;
        let mut extra_replicas = 0;
        // Failover waits while the rules hold the plan (a PD cluster still bootstrapping).
        if let Some(settings) = R::failover(group).filter(|_| !skip_plan) {
            let plan = failover_plan::<R>(&view, &settings);
            extra_replicas = plan.extra_replicas;
            recheck = plan.recheck_after;
            if plan.acts() {
                // The plan below waits for the next reconcile, which sees these writes.
                skip_plan = true;
                acted = true;
            }
            let refused = fail_over::<R>(ctx, &view, &writer, plan).await?;
            blocked = refused.or(blocked);
        }
        if !skip_plan {
            let views = view.views();
            let policy = Policy {
                replicas: group.replicas() + extra_replicas,
                update_revision: target.clone(),
                max_surge: R::max_surge(group),
                max_unavailable: 1,
                topologies: update::topologies(group.schedule_policies()),
            };
            let plan = R::plan(&policy, &views);
            waiting = waiting.or(plan.waiting);
            recheck = match (recheck, plan.recheck_after) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let scales = plan
                .actions
                .iter()
                .any(|a| !matches!(a, update::Action::Update { .. }));
            let silence = if scales {
                R::silence(ctx, &view).await
            } else {
                None
            };
            let (actions, hold) = shared_group::hold_scaling(
                &ctx.events,
                group,
                plan.actions,
                silence.as_deref(),
                R::UNIT,
            )
            .await;
            blocked = hold.or(blocked);
            let uid = group.uid().unwrap_or_default();
            let mut creates = 0;
            for (index, action) in actions.into_iter().enumerate() {
                let decision = match action {
                    update::Action::Create { topology } => {
                        let instance = shared_group::instance_name(&name, &uid, index);
                        creates += 1;
                        R::create(&view, &instance, topology, creates - 1)?
                    }
                    update::Action::Update { name: instance } => match view.instance(&instance) {
                        Some(existing) => R::update(&view, existing)?,
                        None => Decision::Skip,
                    },
                    update::Action::Delete { name: instance } => match view.instance(&instance) {
                        Some(victim) => R::delete(&view, victim)?,
                        None => Decision::Skip,
                    },
                };
                let done = decided::<R>(ctx, group, &writer, &instances, decision).await?;
                acted |= done.acted;
                held += usize::from(done.held);
                blocked = done.blocked.or(blocked);
            }
        }
    }

    let outcome = Outcome {
        waiting,
        blocked: blocked.is_some(),
        held,
    };
    let (waiting, waiting_reason) = match gates_wait {
        Some(wait) => (Some(wait), Some(REASON_FEATURE_GATES_NOT_SYNCED)),
        None => R::progress(&view, &outcome),
    };
    let summaries: Vec<InstanceSummary> = instances
        .iter()
        .map(|i| InstanceSummary {
            revision: revision_of(i),
            available: is_available(i),
            deleting: R::leaving(i),
            not_ready: shared_group::not_ready_note(&i.name_any(), i.conditions()),
        })
        .collect();
    let still = waiting.is_some() || blocked.is_some();
    let progress = Progress {
        blocked,
        waiting,
        waiting_reason,
        acted,
    };
    let status = shared_group::group_status(
        group.status(),
        group.meta().generation,
        group.replicas(),
        version,
        &summaries,
        &update_revision,
        &selector,
        R::NOUN,
        &progress,
    );
    let status = if R::AVAILABLE_CONDITION {
        let ready = instances
            .iter()
            .filter(|i| conditions::is_true(i.conditions(), conditions::READY))
            .count();
        shared_group::with_available(status, ready, R::NOUN)
    } else {
        status
    };
    reconcile::finish_group(
        ctx,
        group,
        status,
        suspended,
        &instances,
        (acted, still, recheck),
    )
    .await
}

/// Carries out a failover plan: its annotations, Events, the group's count and the failed
/// instances taken out through the rules' own removal; counts it in the metrics. Returns the
/// refusal the group shows, if any.
async fn fail_over<R: GroupRules>(
    ctx: &R::Ctx,
    view: &GroupView<'_, R>,
    writer: &InstanceWriter<'_, R::Instance>,
    plan: FailoverPlan,
) -> Result<Option<(&'static str, String)>, Error> {
    let (group, instances) = (view.group, view.instances);
    let component = <R::Group as Group>::COMPONENT;
    let meta = group.meta();
    ctx.metrics.observe_failed(
        [
            meta.namespace.as_deref().unwrap_or_default(),
            operator_api::core::OfCluster::cluster_name(group),
            component,
            meta.name.as_deref().unwrap_or_default(),
        ],
        Some(i64::try_from(plan.failed).unwrap_or(i64::MAX)),
    );
    let mut blocked = match plan.refusal {
        Some((reason, message)) => {
            Some(shared_group::refusal(&ctx.events, group, reason, "Failover", message).await)
        }
        None => None,
    };
    for mark in plan.marks {
        let effect = Effect::SetState {
            instance: mark.instance,
            key: mark.key,
            value: mark.value,
        };
        carry_out::<R>(ctx, group, writer, instances, effect).await?;
    }
    for (reason, message) in plan.events {
        if reason == failover::EVENT_STARTED {
            ctx.metrics.failover(component, "started");
        }
        let effect = Effect::event(reason, "Failover", message);
        carry_out::<R>(ctx, group, writer, instances, effect).await?;
    }
    if let Some(count) = plan.replaced {
        let value = (count > 0).then(|| count.to_string());
        let patch = serde_json::json!({"metadata": {"annotations": {
            keys::ANNO_FAILOVER_REPLACEMENTS: value
        }}});
        carry_out::<R>(ctx, group, writer, instances, Effect::PatchGroup(patch)).await?;
    }
    for name in &plan.retire {
        if let Some(victim) = view.instance(name) {
            let decision = R::delete(view, victim)?;
            let done = decided::<R>(ctx, group, writer, instances, decision).await?;
            if done.acted {
                ctx.metrics.failover(component, "completed");
            }
            blocked = done.blocked.or(blocked);
        }
    }
    Ok(blocked)
}

/// What came of one decision of the rules.
struct Done {
    acted: bool,
    held: bool,
    blocked: Option<(&'static str, String)>,
}

/// Carries out a decision of the rules.
async fn decided<R: GroupRules>(
    ctx: &R::Ctx,
    group: &R::Group,
    writer: &InstanceWriter<'_, R::Instance>,
    instances: &[R::Instance],
    decision: Decision<R::Instance>,
) -> Result<Done, Error> {
    let mut done = Done {
        acted: false,
        held: false,
        blocked: None,
    };
    match decision {
        Decision::Act(effects) => {
            for effect in effects {
                carry_out::<R>(ctx, group, writer, instances, effect).await?;
            }
            done.acted = true;
        }
        Decision::Refuse {
            reason,
            action,
            message,
        } => {
            done.blocked =
                Some(shared_group::refusal(&ctx.events, group, reason, action, message).await);
        }
        Decision::Hold => done.held = true,
        Decision::Skip => {}
    }
    Ok(done)
}

/// What failover decides for the group now, from each instance's health and annotations.
fn failover_plan<R: GroupRules>(
    view: &GroupView<'_, R>,
    settings: &failover::Settings,
) -> FailoverPlan {
    let members: Vec<failover::Member<'_>> = view
        .instances
        .iter()
        .map(|i| {
            failover::Member::of(
                i.meta().name.as_deref().unwrap_or_default(),
                i.meta().annotations.as_ref(),
                R::health(view, i),
                R::leaving(i),
            )
        })
        .collect();
    // Members are in the order of the instances.
    let ready_others = view
        .instances
        .iter()
        .zip(&members)
        .filter(|(i, m)| !m.leaving && !m.failed_over && is_available(*i))
        .count();
    if R::RETIRE == failover::Retire::First {
        let replaced = view
            .group
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNO_FAILOVER_REPLACEMENTS))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return failover::plan_first(
            settings,
            &members,
            R::outage(view).as_deref(),
            replaced,
            Timestamp::now(),
        );
    }
    let replicas = usize::try_from(view.group.replicas().max(0)).unwrap_or(0);
    failover::plan(
        settings,
        &members,
        R::outage(view).as_deref(),
        ready_others >= replicas,
        R::RETIRE,
        Timestamp::now(),
    )
}

/// Reason of a group that waits for its Cluster's feature gates to be copied into it.
pub const REASON_FEATURE_GATES_NOT_SYNCED: &str = "FeatureGatesNotSynced";

/// Why the group waits for its Cluster's feature gates, `None` once its `features` are the same
/// set (the cluster-controller copies them in).
pub fn features_unsynced(features: &[Feature], cluster: &Cluster) -> Option<String> {
    let have: BTreeSet<Feature> = features.iter().copied().collect();
    let want: BTreeSet<Feature> = cluster.spec.feature_gates.iter().map(|g| g.name).collect();
    (have != want).then(|| {
        format!(
            "the group's features {have:?} are not yet the Cluster's feature gates {want:?}; the cluster-controller copies them"
        )
    })
}

/// `desired` with what `existing` keeps for life: its subdomain, immutable in the API. A group
/// whose new instances live elsewhere (the `ClusterSubdomain` gate turned on or off) leaves the
/// existing ones where they are, so no member or store changes its address.
fn keeping_identity<I: Instance>(existing: &I, mut desired: I) -> I {
    existing.subdomain().clone_into(desired.subdomain_mut());
    desired
}

/// Carries out one effect of the rules.
async fn carry_out<R: GroupRules>(
    ctx: &R::Ctx,
    group: &R::Group,
    writer: &InstanceWriter<'_, R::Instance>,
    instances: &[R::Instance],
    effect: Effect<R::Instance>,
) -> Result<(), Error> {
    let component = <R::Instance as Instance>::COMPONENT;
    match effect {
        Effect::Create(desired) => {
            writer.apply(None, &desired).await?;
            info!(
                instance = desired.name_any(),
                revision = revision_of(&desired),
                component,
                "created instance"
            );
        }
        Effect::Update(desired) => {
            let name = desired.name_any();
            let existing = instances.iter().find(|i| i.name_any() == name);
            let desired = match existing {
                Some(existing) => keeping_identity(existing, desired),
                None => desired,
            };
            writer.apply(existing, &desired).await?;
            info!(
                instance = name,
                revision = revision_of(&desired),
                component,
                "updated instance"
            );
        }
        Effect::Delete(name) => {
            writer
                .delete(&name)
                .await
                .map_err(Error::kube(format!("deleting {component} {name}")))?;
            info!(instance = name, component, "deleting instance");
        }
        Effect::SetState {
            instance,
            key,
            value,
        } => {
            writer
                .set_state(&instance, key, value.as_deref())
                .await
                .map_err(Error::kube(format!("annotating {component} {instance}")))?;
            info!(instance, key, value, component, "set instance state");
        }
        Effect::PatchGroup(patch) => {
            let namespace = group.namespace().unwrap_or_default();
            Api::<R::Group>::namespaced(ctx.client.clone(), &namespace)
                .patch(
                    &group.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(Error::kube(format!(
                    "patching {} {}",
                    R::Group::kind(&()),
                    group.name_any()
                )))?;
        }
        Effect::Event {
            reason,
            action,
            message,
        } => ctx.events.normal(group, reason, action, message).await,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_waits_until_its_features_are_the_clusters_gates() {
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "basic"},
            "spec": {"featureGates": [{"name": "ClusterSubdomain"}, {"name": "FeatureModification"}]}
        }))
        .unwrap();
        let message = features_unsynced(&[], &cluster).unwrap();
        assert!(message.contains("ClusterSubdomain"), "{message}");
        assert!(features_unsynced(&[Feature::ClusterSubdomain], &cluster).is_some());
        // The same set, in any order, is synced.
        let both = [Feature::FeatureModification, Feature::ClusterSubdomain];
        assert_eq!(features_unsynced(&both, &cluster), None);
        let none: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "basic"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(features_unsynced(&[], &none), None);
    }
}
