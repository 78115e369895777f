//! The TiDBGroup reconcile: the group's Services, its TiDB instances (created, rolled with a
//! surge so that no server goes before its replacement is Ready, removed on scale-in), the
//! upgrade order (PD and TiKV first), and the group's status.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, HasConditions, reasons};
use operator_api::core::{PDGroup, TIDB_DEFAULT_MAX_SURGE, TiDB, TiDBGroup, TiKVGroup};
use operator_runtime::apply::apply_if_changed;
use operator_runtime::build as shared;
use operator_runtime::cache;
use operator_runtime::component::InstanceWriter;
use operator_runtime::group::{self as shared_group, InstanceSummary, Progress};
use operator_runtime::revision::revision_name;
use operator_runtime::update::{self, InstanceView, Policy};
use operator_runtime::upgrade::{self, Dependency};
use tracing::{info, instrument};

use crate::build::{self, Target};
use crate::context::{Ctx, MANAGER};
use operator_runtime::reconcile::{self, Error, GroupStart};

/// How the group's instances are named in condition messages.
const NOUN: &str = "TiDB servers";

/// Reconciles one TiDBGroup.
#[instrument(skip_all, fields(namespace = group.namespace(), group = group.name_any(), cluster = group.spec.cluster.name))]
pub async fn reconcile(group: Arc<TiDBGroup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(&ctx.metrics, "tidbgroup", reconcile_inner(&group, &ctx))
        .await
}

async fn reconcile_inner(group: &TiDBGroup, ctx: &Ctx) -> Result<Action, Error> {
    let (namespace, cluster) = match reconcile::group_start(ctx, group).await? {
        GroupStart::Go { namespace, cluster } => (namespace, cluster),
        GroupStart::Done(then) => return Ok(then),
    };
    let name = group.name_any();
    let cluster_name = &group.spec.cluster.name;

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    for service in build::services(group)? {
        let existing = cache::get(&ctx.caches.services, &namespace, &service.name_any());
        apply_if_changed(&services, MANAGER, existing.as_ref(), service).await?;
    }

    let writer = InstanceWriter::new(ctx, group, MANAGER, &[]);
    if let Some(wait) = writer.wait_for_cache(&ctx.instances) {
        return Ok(wait);
    }
    let owner = build::owner(&namespace, cluster_name, &name);
    let selector = shared::group_selector(owner);
    let labels = shared::group_labels(owner);
    let instances = cache::list(&ctx.instances, &namespace, |i| {
        cache::has_labels(i, &labels)
    });
    let update_revision = revision_name(&name, &build::revision_input(group));

    // The upgrade order: a new version starts only once PD and TiKV run it everywhere.
    let version = &group.spec.template.spec.common.version;
    let outdated_version: Vec<&TiDB> = instances
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| !upgrade::same_version(&i.spec.template.common.version, version))
        .collect();
    let gate = match outdated_version.first() {
        None => Ok(()),
        Some(running) => {
            let (pd_groups, tikv_groups) = dependencies(ctx, &namespace, cluster_name);
            let mut deps: Vec<Dependency<'_>> = pd_groups
                .iter()
                .map(|g| Dependency {
                    label: format!("PDGroup {}", g.name_any()),
                    replicas: g.spec.replicas,
                    generation: g.metadata.generation,
                    status: g.status.as_ref(),
                })
                .collect();
            deps.extend(tikv_groups.iter().map(|g| Dependency {
                label: format!("TiKVGroup {}", g.name_any()),
                replicas: g.spec.replicas,
                generation: g.metadata.generation,
                status: g.status.as_ref(),
            }));
            upgrade::may_upgrade(
                cluster.spec.upgrade_policy,
                version,
                Some(&running.spec.template.common.version),
                &deps,
            )
        }
    };
    let (target, gated) = match gate {
        Ok(()) => (Target::of_group(group, &update_revision), None),
        Err(message) => {
            // Until the dependencies are ready, the group keeps (and scales) what it runs.
            let source = most_common_revision(&outdated_version);
            let target = source.map_or_else(
                || Target::of_group(group, &update_revision),
                Target::of_instance,
            );
            if !shared_group::synced_reason_is(group, reasons::WAITING_FOR_DEPENDENCIES) {
                ctx.events
                    .normal(
                        group,
                        reasons::WAITING_FOR_DEPENDENCIES,
                        "Upgrade",
                        message.clone(),
                    )
                    .await;
            }
            (target, Some(message))
        }
    };

    // Instances created before server-side apply become wholly the template's, in place.
    writer
        .adopt_all(&instances, |tidb| {
            (build::revision_of(tidb) == target.revision)
                .then(|| {
                    build::instance(group, &tidb.name_any(), tidb.spec.topology.clone(), &target)
                        .ok()
                })
                .flatten()
        })
        .await?;

    let mut acted = false;
    let mut waiting = None;
    let mut blocked = None;
    let suspended = cluster
        .spec
        .suspend_action
        .as_ref()
        .is_some_and(|s| s.suspend_compute);
    // Right after a pause, instances still say `Paused` instead of how they are: the engine
    // would take every one for unavailable and pick the wrong one to remove. Wait for them.
    let unobserved = instances
        .iter()
        .filter(|i| {
            conditions::find(i.conditions(), conditions::SYNCED)
                .is_some_and(|c| c.reason == reasons::PAUSED)
        })
        .count();
    // Changes that leave the Pods as they are (HotReload config, labels) apply in place at once.
    let in_place: Vec<&TiDB> = instances
        .iter()
        .filter(|_| !suspended && unobserved == 0)
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| build::revision_of(i) != target.revision)
        .filter(|i| build::update_keeps_pod(i, &target))
        .collect();
    for instance in &in_place {
        update_instance(group, ctx, &writer, instance, &target).await?;
        acted = true;
    }
    if suspended {
        // Nothing is created, updated or removed while the Pods are suspended.
        waiting = Some("the Cluster suspends compute".to_string());
    } else if let Some(refusal) =
        shared_group::downgrade_hold(&ctx.events, group, version, &instances).await
    {
        blocked = Some(refusal);
    } else if unobserved > 0 {
        waiting = Some(format!(
            "waiting for {unobserved} instance(s) to report their state after the pause"
        ));
    } else if in_place.is_empty() {
        let views: Vec<InstanceView> = instances.iter().map(view).collect();
        let policy = Policy {
            replicas: group.spec.replicas,
            update_revision: target.revision.clone(),
            max_surge: group
                .spec
                .max_surge
                .unwrap_or(TIDB_DEFAULT_MAX_SURGE)
                .max(0),
            max_unavailable: 1,
            topologies: update::topologies(&group.spec.schedule_policies),
        };
        let plan = plan(&policy, &views);
        waiting = plan.waiting.clone();
        let outdated = views
            .iter()
            .filter(|v| !v.deleting && v.revision != target.revision)
            .count();
        for (index, action) in plan.actions.into_iter().enumerate() {
            match action {
                update::Action::Create { topology } => {
                    let instance_name =
                        shared_group::instance_name(&name, &group.uid().unwrap_or_default(), index);
                    let tidb = build::instance(group, &instance_name, topology, &target)?;
                    writer.apply(None, &tidb).await?;
                    let why = if outdated > 0 {
                        "to replace an outdated server; the outdated one goes once it is Ready"
                    } else {
                        "to reach the desired replicas"
                    };
                    info!(
                        instance = instance_name,
                        revision = target.revision,
                        "created TiDB instance"
                    );
                    ctx.events
                        .normal(
                            group,
                            "InstanceCreated",
                            "Scale",
                            format!("created TiDB {instance_name} {why}"),
                        )
                        .await;
                    acted = true;
                }
                update::Action::Update { name: instance } => {
                    if let Some(existing) = instances.iter().find(|i| i.name_any() == instance) {
                        update_instance(group, ctx, &writer, existing, &target).await?;
                        acted = true;
                    }
                }
                update::Action::Delete { name: instance } => {
                    let why = match instances.iter().find(|i| i.name_any() == instance) {
                        Some(i) if build::revision_of(i) != target.revision => {
                            "it is outdated and its replacement is Ready"
                        }
                        Some(i) if !is_available(i) => "scale-in; it is not Ready",
                        _ => "scale-in",
                    };
                    writer
                        .delete(&instance)
                        .await
                        .map_err(Error::kube(format!("deleting TiDB {instance}")))?;
                    info!(instance, why, "deleting TiDB instance");
                    ctx.events
                        .normal(
                            group,
                            "InstanceDeleted",
                            "Scale",
                            format!(
                                "removing TiDB {instance} ({why}); it leaves the MySQL Service, then stops gracefully"
                            ),
                        )
                        .await;
                    acted = true;
                }
            }
        }
    }

    let summaries: Vec<InstanceSummary> = instances
        .iter()
        .map(|tidb| InstanceSummary {
            revision: build::revision_of(tidb),
            available: is_available(tidb),
            deleting: tidb.metadata.deletion_timestamp.is_some(),
            not_ready: shared_group::not_ready_note(&tidb.name_any(), tidb.conditions()),
        })
        .collect();
    let progress = Progress {
        blocked,
        waiting: gated.clone().or(waiting.clone()),
        waiting_reason: gated.as_ref().map(|_| reasons::WAITING_FOR_DEPENDENCIES),
        acted,
    };
    let status = shared_group::group_status(
        group.status.as_ref(),
        group.metadata.generation,
        group.spec.replicas,
        version,
        &summaries,
        &update_revision,
        &selector,
        NOUN,
        &progress,
    );
    let waiting = waiting.is_some() || gated.is_some();
    reconcile::finish_group(ctx, group, status, suspended, &instances, (acted, waiting)).await
}

/// The update engine's plan, and one thing more: the engine surges only while every instance is
/// Ready, but an outdated server that is not Ready serves no one, and waiting for it would stall
/// the very roll that may fix it. Then the surge goes ahead (placed as the engine places it), and
/// the engine removes the unready outdated server first. A new server that is not Ready still
/// holds the roll: no working server is removed for it.
fn plan(policy: &Policy, views: &[InstanceView]) -> update::Plan {
    let plan = update::plan(policy, views);
    if !plan.actions.is_empty() || policy.max_surge <= 0 {
        return plan;
    }
    let replicas = usize::try_from(policy.replicas).unwrap_or(0);
    let active = views.iter().filter(|v| !v.deleting).count();
    let not_ready: Vec<&InstanceView> = views.iter().filter(|v| !v.ready).collect();
    let only_outdated_unready = !not_ready.is_empty()
        && not_ready
            .iter()
            .all(|v| !v.deleting && v.revision != policy.update_revision);
    if active != views.len() || active != replicas || !only_outdated_unready {
        return plan;
    }
    let as_if_ready: Vec<InstanceView> = views
        .iter()
        .cloned()
        .map(|mut v| {
            v.ready = true;
            v
        })
        .collect();
    let surge = update::plan(policy, &as_if_ready);
    let creates: Vec<update::Action> = surge
        .actions
        .into_iter()
        .filter(|a| matches!(a, update::Action::Create { .. }))
        .collect();
    if creates.is_empty() {
        return plan;
    }
    update::Plan {
        actions: creates,
        waiting: None,
    }
}

/// The PD and TiKV groups of the cluster: what a new TiDB version waits for.
fn dependencies(ctx: &Ctx, namespace: &str, cluster: &str) -> (Vec<PDGroup>, Vec<TiKVGroup>) {
    let tikv = cache::list(&ctx.tikv_groups, namespace, |g| {
        g.spec.cluster.name == cluster
    });
    (ctx.caches.pd_groups_of(namespace, cluster), tikv)
}

/// The instance whose revision most of `instances` share (ties: the first name), if any.
fn most_common_revision<'a>(instances: &[&'a TiDB]) -> Option<&'a TiDB> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for instance in instances {
        *counts.entry(build::revision_of(instance)).or_default() += 1;
    }
    let best = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(revision, _)| revision.clone())?;
    let mut candidates: Vec<&'a TiDB> = instances
        .iter()
        .copied()
        .filter(|i| build::revision_of(i) == best)
        .collect();
    candidates.sort_by_key(|i| i.name_any());
    candidates.first().copied()
}

/// Moves an instance to `target` (server-side apply of its spec and revision label).
async fn update_instance(
    group: &TiDBGroup,
    ctx: &Ctx,
    writer: &InstanceWriter<'_, TiDB>,
    existing: &TiDB,
    target: &Target,
) -> Result<(), Error> {
    let name = existing.name_any();
    let desired = build::instance(group, &name, existing.spec.topology.clone(), target)?;
    writer.apply(Some(existing), &desired).await?;
    info!(
        instance = name,
        revision = target.revision,
        "updated TiDB instance"
    );
    ctx.events
        .normal(
            group,
            "InstanceUpdated",
            "Update",
            format!("TiDB {name} updated to revision {}", target.revision),
        )
        .await;
    Ok(())
}

/// How the update engine sees a TiDB instance.
fn view(tidb: &TiDB) -> InstanceView {
    InstanceView {
        name: tidb.name_any(),
        revision: build::revision_of(tidb),
        ready: is_available(tidb),
        deleting: tidb.metadata.deletion_timestamp.is_some(),
        topology: tidb.spec.topology.clone(),
        last: false,
    }
}

/// See [`shared_group::is_available`].
fn is_available(tidb: &TiDB) -> bool {
    let observed = tidb
        .status
        .as_ref()
        .map(|s| s.common.observed_generation)
        .unwrap_or_default();
    shared_group::is_available(tidb.conditions(), observed, tidb.metadata.generation)
}

#[cfg(test)]
mod tests {
    use operator_api::keys;

    use super::*;

    fn tidb(name: &str, revision: &str) -> TiDB {
        let mut t = TiDB::new(
            name,
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "db-tidb-peer", "version": "v8.5.2"
            }))
            .unwrap(),
        );
        t.metadata.labels = Some(
            [(
                keys::LABEL_INSTANCE_REVISION_HASH.to_string(),
                revision.to_string(),
            )]
            .into(),
        );
        t
    }

    fn view(name: &str, revision: &str, ready: bool) -> InstanceView {
        InstanceView {
            name: name.into(),
            revision: revision.into(),
            ready,
            deleting: false,
            topology: Default::default(),
            last: false,
        }
    }

    fn policy() -> Policy {
        Policy {
            replicas: 2,
            update_revision: "new".into(),
            max_surge: 1,
            max_unavailable: 1,
            topologies: Vec::new(),
        }
    }

    #[test]
    fn a_roll_surges_past_an_unready_outdated_server_and_removes_it_first() {
        let views = [view("db-a", "old", false), view("db-b", "old", true)];
        let first = plan(&policy(), &views);
        assert!(
            matches!(first.actions.as_slice(), [update::Action::Create { .. }]),
            "{first:?}"
        );
        let views = [
            view("db-a", "old", false),
            view("db-b", "old", true),
            view("db-c", "new", false),
        ];
        assert_eq!(
            plan(&policy(), &views).actions,
            [update::Action::Delete {
                name: "db-a".into()
            }]
        );
    }

    #[test]
    fn an_unready_new_server_still_holds_the_roll() {
        let views = [view("db-b", "old", true), view("db-c", "new", false)];
        let held = plan(&policy(), &views);
        assert!(held.actions.is_empty(), "{held:?}");
        assert!(held.waiting.is_some());
    }

    #[test]
    fn without_surge_the_engine_decides_alone() {
        let mut p = policy();
        p.max_surge = 0;
        let views = [view("db-a", "old", false), view("db-b", "old", true)];
        assert_eq!(
            plan(&p, &views).actions,
            [update::Action::Update {
                name: "db-a".into()
            }]
        );
    }

    #[test]
    fn the_source_of_a_held_back_group_is_its_most_common_revision() {
        let a = tidb("db-a", "r1");
        let b = tidb("db-b", "r2");
        let c = tidb("db-c", "r2");
        let picked = most_common_revision(&[&a, &b, &c]).unwrap();
        assert_eq!(picked.name_any(), "db-b");
        assert_eq!(
            most_common_revision(&[&a]).map(|t| t.name_any()),
            Some("db-a".into())
        );
        assert!(most_common_revision(&[]).is_none());
    }
}
