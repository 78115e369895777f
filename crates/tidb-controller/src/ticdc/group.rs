//! The TiCDCGroup reconcile: the group's headless Service, its TiCDC instances (created, rolled
//! with a surge so that a new server is Ready before an old one hands over and goes, removed on
//! scale-in), and the group's status with `Available`. TiCDC waits for no other component in
//! an upgrade, as in the reference.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use operator_api::core::{Cluster, Feature, TiCDC, TiCDCGroup, Topology};
use operator_runtime::build::BuildError;
use operator_runtime::group as shared_group;
use operator_runtime::group_reconcile::{
    BeforePlan, Decision, Effect, GroupRules, GroupView, is_available,
};
use operator_runtime::reconcile::Error;
use operator_runtime::surge;
use operator_runtime::update::{self, InstanceView, Policy};

use super::Ctx;
use super::{build, rbac};
use crate::context::MANAGER;

/// How many servers a roll adds above the replicas: one new server at a time, Ready before an
/// old one goes.
pub const MAX_SURGE: i32 = 1;

/// The TiCDC component's group rules.
pub struct Rules;

/// What a TiCDCGroup's rules see.
type View<'a> = GroupView<'a, Rules>;

impl GroupRules for Rules {
    type Group = TiCDCGroup;
    type Instance = TiCDC;
    type Observed = ();
    type Ctx = Ctx;

    const MANAGER: &'static str = MANAGER;
    const NOUN: &'static str = "TiCDC servers";
    const UNIT: &'static str = "server";
    const AVAILABLE_CONDITION: bool = true;

    fn instances(ctx: &Ctx) -> &Store<TiCDC> {
        &ctx.instances
    }

    fn services(group: &TiCDCGroup) -> Result<Vec<Service>, BuildError> {
        Ok(vec![build::peer_service(group)?])
    }

    /// Nothing to learn: TiCDC waits for no other group (the reference's upgrade order). Under
    /// `TiCDCDynamicSecretSyncer` the Pods' Secret access is ensured here.
    async fn observe(
        ctx: &Ctx,
        group: &TiCDCGroup,
        _cluster: &Cluster,
        _instances: &[TiCDC],
        _update_revision: &str,
        _revision_extra: Option<&str>,
    ) -> Result<(), Error> {
        // The secret syncer's access, before the Pods that need it.
        if group
            .spec
            .features
            .contains(&Feature::TiCDCDynamicSecretSyncer)
        {
            rbac::ensure(&ctx.client, group).await?;
        }
        Ok(())
    }

    /// TiCDC keeps no data: servers are added and removed whether PD answers or not.
    async fn silence(_ctx: &Ctx, _view: &View<'_>) -> Option<String> {
        None
    }

    fn rebuilt(view: &View<'_>, existing: &TiCDC) -> Result<TiCDC, BuildError> {
        build::instance(
            view.group,
            &existing.name_any(),
            existing.spec.topology.clone(),
            view.update_revision,
        )
    }

    /// The owner goes last in a roll: ownership then moves once, not with every server.
    fn last(ticdc: &TiCDC) -> bool {
        ticdc.status.as_ref().is_some_and(|s| s.is_owner)
    }

    fn max_surge(_group: &TiCDCGroup) -> i32 {
        MAX_SURGE
    }

    fn plan(policy: &Policy, views: &[InstanceView]) -> update::Plan {
        surge::plan(policy, views)
    }

    /// Right after a pause the plan waits for every instance to report how it is.
    fn before_plan(view: &View<'_>) -> Result<BeforePlan<TiCDC>, BuildError> {
        Ok(BeforePlan {
            effects: Vec::new(),
            skip_plan: view.instances.iter().any(|i| {
                shared_group::synced_reason_is(i, operator_api::conditions::reasons::PAUSED)
            }),
            waiting: shared_group::unobserved_after_pause(view.instances),
        })
    }

    fn create(
        view: &View<'_>,
        name: &str,
        topology: Topology,
        _ordinal: usize,
    ) -> Result<Decision<TiCDC>, BuildError> {
        let ticdc = build::instance(view.group, name, topology, view.update_revision)?;
        let outdated = view.instances.iter().any(|i| {
            i.metadata.deletion_timestamp.is_none() && build::revision_of(i) != view.update_revision
        });
        let why = if outdated {
            "to replace an outdated server; the outdated one hands over and goes once it is Ready"
        } else {
            "to reach the desired replicas"
        };
        Ok(Decision::Act(vec![
            Effect::Create(ticdc),
            Effect::event(
                "InstanceCreated",
                "Scale",
                format!("created TiCDC {name} {why}"),
            ),
        ]))
    }

    fn delete(view: &View<'_>, victim: &TiCDC) -> Result<Decision<TiCDC>, BuildError> {
        let name = victim.name_any();
        let why = if build::revision_of(victim) != view.update_revision {
            "it is outdated and its replacement is Ready"
        } else if !is_available(victim) {
            "scale-in; it is not Ready"
        } else {
            "scale-in"
        };
        Ok(Decision::Act(vec![
            Effect::Delete(name.clone()),
            Effect::event(
                "InstanceDeleted",
                "Scale",
                format!(
                    "removing TiCDC {name} ({why}); its capture resigns ownership and hands its tables over first"
                ),
            ),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use operator_api::conditions::{self, reasons};
    use operator_api::core::Cluster;
    use testkit::builders;

    use super::*;

    fn group() -> TiCDCGroup {
        builders::group_of_template("cdc", serde_json::json!({"version": "v8.5.2"})).unwrap()
    }

    fn ticdc(name: &str, revision: &str, synced_reason: Option<&str>, owner: bool) -> TiCDC {
        let mut t = build::instance(&group(), name, Topology::default(), revision).unwrap();
        let mut status = operator_api::core::TiCDCStatus {
            is_owner: owner,
            ..Default::default()
        };
        if let Some(reason) = synced_reason {
            operator_api::conditions::Look::now(None).set(
                &mut status.common.conditions,
                conditions::SYNCED,
                false,
                reason,
                "",
            );
        }
        t.status = Some(status);
        t
    }

    #[test]
    fn the_plan_waits_for_paused_instances_and_the_owner_goes_last() {
        let g = group();
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "basic"}, "spec": {}
        }))
        .unwrap();
        let instances = [
            ticdc("cdc-a", "r1", Some(reasons::PAUSED), true),
            ticdc("cdc-b", "r1", None, false),
        ];
        let view = GroupView::<Rules> {
            group: &g,
            namespace: "db",
            cluster: &cluster,
            instances: &instances,
            update_revision: "r2",
            observed: &(),
        };
        let before = Rules::before_plan(&view).unwrap();
        assert!(before.skip_plan);
        assert!(before.waiting.is_some_and(|w| w.contains("1 instance")));
        assert!(Rules::last(&instances[0]) && !Rules::last(&instances[1]));

        let settled = [ticdc("cdc-b", "r1", None, false)];
        let view = GroupView::<Rules> {
            instances: &settled,
            ..view
        };
        assert!(!Rules::before_plan(&view).unwrap().skip_plan);
        let Decision::Act(effects) = Rules::delete(&view, &settled[0]).unwrap() else {
            panic!("a delete acts");
        };
        assert!(matches!(&effects[0], Effect::Delete(name) if name == "cdc-b"));
    }
}
