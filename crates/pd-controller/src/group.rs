//! The PDGroup reconcile: the group's Services, its PD instances (created, updated one at a time,
//! removed on scale-in with PD's quorum in mind), `bootstrapped`, and the group's status.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{PD, PDGroup};
use operator_api::keys;
use operator_runtime::apply::apply_if_changed;
use operator_runtime::build as shared;
use operator_runtime::cache;
use operator_runtime::component::InstanceWriter;
use operator_runtime::group::{self as shared_group, InstanceSummary, Progress};
use operator_runtime::revision::revision_name;
use operator_runtime::update::{self, InstanceView, Policy};
use tracing::{info, instrument};

use crate::build;
use crate::context::{Ctx, MANAGER};
use operator_runtime::reconcile::{self, Error, GroupStart};

/// Reason of a scale-in PD refuses because it would break quorum or empty the cluster.
pub const REASON_SCALE_IN_REFUSED: &str = "ScaleInRefused";
/// Reason of a group waiting for its first members to form the PD cluster.
pub const REASON_BOOTSTRAPPING: &str = "Bootstrapping";

/// Reconciles one PDGroup.
#[instrument(skip_all, fields(namespace = group.namespace(), group = group.name_any(), cluster = group.spec.cluster.name))]
pub async fn reconcile(group: Arc<PDGroup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(&ctx.metrics, "pdgroup", reconcile_inner(&group, &ctx))
        .await
}

async fn reconcile_inner(group: &PDGroup, ctx: &Ctx) -> Result<Action, Error> {
    let (namespace, cluster) = match reconcile::group_start(ctx, group).await? {
        GroupStart::Go { namespace, cluster } => (namespace, cluster),
        GroupStart::Done(then) => return Ok(then),
    };
    let name = group.name_any();
    let cluster_name = &group.spec.cluster.name;
    if cluster.metadata.deletion_timestamp.is_some() {
        // The cluster-controller removes the groups; nothing new is made meanwhile.
        return Ok(Action::await_change());
    }

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for service in build::services(group)? {
        let existing = cache::get(&ctx.caches.services, &namespace, &service.name_any());
        apply_if_changed(&services, MANAGER, existing.as_ref(), service).await?;
    }

    let owner = build::owner(&namespace, cluster_name, &name);
    let selector = shared::group_selector(owner);
    let labels = shared::group_labels(owner);
    let instances = cache::list(&ctx.instances, &namespace, |i| {
        cache::has_labels(i, &labels)
    });
    let writer = InstanceWriter::new(ctx, group, MANAGER, &[]);
    if let Some(wait) = writer.wait_for_cache(&ctx.instances) {
        return Ok(wait);
    }
    let update_revision = revision_name(&name, &build::revision_input(group));
    // Instances created before server-side apply become wholly the template's, in place.
    writer
        .adopt_all(&instances, |pd| {
            (revision_of(pd) == update_revision)
                .then(|| {
                    let topology = pd.spec.topology.clone();
                    let initial = initial_cluster_num(pd);
                    build::instance(group, &pd.name_any(), topology, &update_revision, initial).ok()
                })
                .flatten()
        })
        .await?;

    let mut blocked = None;
    let mut waiting = None;
    let mut acted = false;
    let suspended = cluster
        .spec
        .suspend_action
        .as_ref()
        .is_some_and(|s| s.suspend_compute);
    if suspended {
        // Nothing is created, updated or removed while the Pods are suspended.
        waiting = Some("the Cluster suspends compute".to_string());
    } else if !group.spec.bootstrapped {
        if instances.is_empty() {
            // The first members form the PD cluster together: each waits for all of them.
            let replicas = group.spec.replicas.max(1);
            let topologies = update::topologies(&group.spec.schedule_policies);
            let policy = Policy {
                replicas,
                update_revision: update_revision.clone(),
                max_surge: 0,
                max_unavailable: 1,
                topologies,
            };
            for (index, action) in update::plan(&policy, &[]).actions.into_iter().enumerate() {
                if let update::Action::Create { topology } = action {
                    let pd = build::instance(
                        group,
                        &new_name(group, index),
                        topology,
                        &update_revision,
                        Some(replicas),
                    )?;
                    create_instance(&writer, &pd).await?;
                    acted = true;
                }
            }
            waiting = Some("creating the first PD members".to_string());
        } else if instances
            .iter()
            .any(|pd| conditions::is_true(pd.conditions(), conditions::INITIALIZED))
        {
            let patch = serde_json::json!({"spec": {"bootstrapped": true}});
            Api::<PDGroup>::namespaced(ctx.client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube("marking the PDGroup bootstrapped"))?;
            ctx.events
                .normal(
                    group,
                    "Bootstrapped",
                    "Bootstrap",
                    "the PD cluster is up; new members join it".into(),
                )
                .await;
            acted = true;
        } else {
            waiting = Some("waiting for the first PD members to form the cluster".to_string());
        }
    } else if let Some(refusal) = shared_group::downgrade_hold(
        &ctx.events,
        group,
        &group.spec.template.spec.common.version,
        &instances,
    )
    .await
    {
        blocked = Some(refusal);
    } else {
        let views: Vec<InstanceView> = instances.iter().map(view).collect();
        let policy = Policy {
            replicas: group.spec.replicas,
            update_revision: update_revision.clone(),
            max_surge: 0,
            max_unavailable: 1,
            topologies: update::topologies(&group.spec.schedule_policies),
        };
        let plan = update::plan(&policy, &views);
        waiting = plan.waiting.clone();
        // A member is added or removed only while PD answers: without a quorum a new member
        // cannot join and an old one cannot leave, and the attempt only adds to the outage.
        let scales = plan
            .actions
            .iter()
            .any(|a| !matches!(a, update::Action::Update { .. }));
        let silence = if scales {
            pd_silence(group, ctx, &namespace, cluster_name).await
        } else {
            None
        };
        let (actions, hold) = shared_group::hold_scaling(
            &ctx.events,
            group,
            plan.actions,
            silence.as_deref(),
            "member",
        )
        .await;
        if hold.is_some() {
            blocked = hold;
        }
        for (index, action) in actions.into_iter().enumerate() {
            match action {
                update::Action::Create { topology } => {
                    let pd = build::instance(
                        group,
                        &new_name(group, index),
                        topology,
                        &update_revision,
                        None,
                    )?;
                    create_instance(&writer, &pd).await?;
                    acted = true;
                }
                update::Action::Update { name: instance } => {
                    let Some(existing) = instances.iter().find(|i| i.name_any() == instance) else {
                        continue;
                    };
                    let desired = build::instance(
                        group,
                        &instance,
                        existing.spec.topology.clone(),
                        &update_revision,
                        initial_cluster_num(existing),
                    )?;
                    writer.apply(Some(existing), &desired).await?;
                    info!(instance, revision = update_revision, "updating PD instance");
                    acted = true;
                }
                update::Action::Delete { name: instance } => {
                    if let Some(refusal) = scale_in_refusal(&views, &instance) {
                        let reason = REASON_SCALE_IN_REFUSED;
                        blocked = Some(
                            shared_group::refusal(&ctx.events, group, reason, "ScaleIn", refusal)
                                .await,
                        );
                        continue;
                    }
                    writer
                        .delete(&instance)
                        .await
                        .map_err(Error::kube(format!("deleting PD {instance}")))?;
                    ctx.events
                        .normal(
                            group,
                            "ScaleIn",
                            "ScaleIn",
                            format!("removing PD {instance}; it leaves the PD cluster first"),
                        )
                        .await;
                    acted = true;
                }
            }
        }
    }

    let summaries: Vec<InstanceSummary> = instances
        .iter()
        .map(|pd| InstanceSummary {
            revision: revision_of(pd),
            available: is_available(pd),
            deleting: pd.metadata.deletion_timestamp.is_some(),
            not_ready: shared_group::not_ready_note(&pd.name_any(), pd.conditions()),
        })
        .collect();
    let progress = Progress {
        blocked: blocked.clone(),
        waiting: waiting.clone(),
        waiting_reason: (!group.spec.bootstrapped).then_some(REASON_BOOTSTRAPPING),
        acted,
    };
    let status = shared_group::group_status(
        group.status.as_ref(),
        group.metadata.generation,
        group.spec.replicas,
        &group.spec.template.spec.common.version,
        &summaries,
        &update_revision,
        &selector,
        "PD members",
        &progress,
    );
    let waiting = waiting.is_some() || blocked.is_some();
    reconcile::finish_group(ctx, group, status, suspended, &instances, (acted, waiting)).await
}

/// How the update engine sees a PD instance.
fn view(pd: &PD) -> InstanceView {
    InstanceView {
        name: pd.name_any(),
        revision: revision_of(pd),
        ready: is_available(pd),
        deleting: pd.metadata.deletion_timestamp.is_some(),
        topology: pd.spec.topology.clone(),
        last: pd.status.as_ref().is_some_and(|s| s.is_leader),
    }
}

/// See [`shared_group::is_available`].
fn is_available(pd: &PD) -> bool {
    let observed = pd
        .status
        .as_ref()
        .map(|s| s.common.observed_generation)
        .unwrap_or_default();
    shared_group::is_available(pd.conditions(), observed, pd.metadata.generation)
}

/// Why PD does not answer, if it does not: asked through the group's client Service.
async fn pd_silence(group: &PDGroup, ctx: &Ctx, namespace: &str, cluster: &str) -> Option<String> {
    let url = format!(
        "http://{}.{namespace}:{}",
        build::client_service_name(&group.name_any()),
        build::client_port(&group.spec.template.spec)
    );
    match ctx.pd(namespace, cluster, url) {
        Ok(pd) => pd.members().await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
}

/// How many first members `pd` bootstrapped with, when it is one: a first member stays one, so
/// its config keeps `initial-cluster`.
fn initial_cluster_num(pd: &PD) -> Option<i32> {
    pd.annotations()
        .get(keys::ANNO_INITIAL_CLUSTER_NUM)
        .and_then(|n| n.parse().ok())
}

fn revision_of(pd: &PD) -> String {
    pd.labels()
        .get(keys::LABEL_INSTANCE_REVISION_HASH)
        .cloned()
        .unwrap_or_default()
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

fn new_name(group: &PDGroup, index: usize) -> String {
    shared_group::instance_name(&group.name_any(), &group.uid().unwrap_or_default(), index)
}

async fn create_instance(writer: &InstanceWriter<'_, PD>, pd: &PD) -> Result<(), Error> {
    writer.apply(None, pd).await?;
    info!(instance = pd.name_any(), "created PD instance");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, ready: bool) -> InstanceView {
        InstanceView {
            name: name.into(),
            revision: "r".into(),
            ready,
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

    #[test]
    fn new_names_are_distinct_and_short() {
        let mut group = PDGroup::new(
            "pd",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "replicas": 3, "template": {"spec": {"version": "v8.5.2"}}
            }))
            .unwrap(),
        );
        group.metadata.uid = Some("u".into());
        let a = new_name(&group, 0);
        let b = new_name(&group, 1);
        assert_ne!(a, b);
        assert!(a.starts_with("pd-") && a.len() == 8, "{a}");
    }
}
