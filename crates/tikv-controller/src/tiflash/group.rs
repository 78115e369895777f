//! The TiFlashGroup reconcile: the group's peer Service; its TiFlash instances, created over the
//! schedule policy's topologies, updated one store at a time once PD runs the new version, and
//! taken out on scale-in through PD (marked only while PD answers, cancelled by a scale-out);
//! and the group's status.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use operator_api::core::{Cluster, TiFlash, TiFlashGroup, Topology};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::failover;
use operator_runtime::group_reconcile::{Decision, GroupRules, GroupView, Outcome};
use operator_runtime::reconcile::Error;
use operator_runtime::upgrade::{self, Dependency};
use pd_client::PdClient;

use super::Ctx;
use super::build;
use crate::context::MANAGER;
use crate::group::REASON_SCALE_IN_REFUSED;
use crate::instance::{REASON_PD_NOT_FOUND, REASON_PD_UNREACHABLE};
use crate::pd::{self, PdView};
use crate::scaling::{self, is_leaving};
use crate::store;

/// Annotations of a TiFlash instance that are operator state, not template.
const STATE_ANNOTATIONS: &[&str] = &[
    keys::ANNO_DEFER_DELETE,
    keys::ANNO_FAILING_SINCE,
    keys::ANNO_FAILURE,
    keys::ANNO_FAILED_OVER,
];

/// The TiFlash component's group rules.
pub struct Rules;

/// What a TiFlashGroup's rules learn of PD and of the upgrade each reconcile.
pub struct Observed {
    /// The Cluster's PD, when it has one.
    pd: Option<PdClient>,
    /// PD's view of the stores, or why PD did not answer.
    view: Option<Result<PdView, String>>,
    /// The upgrade gate: a new version only once every PDGroup of the Cluster runs it.
    gate: Result<(), String>,
    /// The version the staying instances run while the gate is closed.
    running: Option<String>,
    /// The most TiFlash replicas a table asks for (PD's placement rules), or why PD did not say.
    replicas: Option<Result<u64, String>>,
}

/// What a TiFlashGroup's rules see.
type View<'a> = GroupView<'a, Rules>;

impl GroupRules for Rules {
    type Group = TiFlashGroup;
    type Instance = TiFlash;
    type Observed = Observed;
    type Ctx = Ctx;

    const MANAGER: &'static str = MANAGER;
    const NOUN: &'static str = "TiFlash stores";
    const UNIT: &'static str = "store";
    const STATE_ANNOTATIONS: &'static [&'static str] = STATE_ANNOTATIONS;

    fn instances(ctx: &Ctx) -> &Store<TiFlash> {
        &ctx.instances
    }

    fn services(group: &TiFlashGroup) -> Result<Vec<Service>, BuildError> {
        Ok(vec![build::peer_service(group)?])
    }

    fn failover(group: &TiFlashGroup) -> Option<failover::Settings> {
        Some(failover::Settings::of(group.spec.failover.as_ref()))
    }

    fn health(view: &View<'_>, tiflash: &TiFlash) -> failover::Health {
        scaling::store_health(view.observed.view.as_ref(), tiflash)
    }

    fn outage(view: &View<'_>) -> Option<String> {
        scaling::stores_outage::<TiFlash>(view.observed.view.as_ref())
    }

    async fn observe(
        ctx: &Ctx,
        group: &TiFlashGroup,
        cluster: &Cluster,
        instances: &[TiFlash],
        _update_revision: &str,
        _revision_extra: Option<&str>,
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        let pd_groups = ctx
            .caches
            .pd_groups_of(&namespace, &group.spec.cluster.name);
        let pd = match pd::pd_url(Some(cluster), &pd_groups, &namespace) {
            Some(url) => Some(ctx.pd(&namespace, &group.spec.cluster.name, url)?),
            None => None,
        };
        let scaling_in = scaling::scaling_in(instances, group.spec.replicas);
        let view = match &pd {
            Some(pd) => {
                if scaling_in {
                    ctx.pd_changed(pd);
                }
                Some(ctx.pd_view(pd).await)
            }
            None => None,
        };
        // Asked only when a scale-in is due: a table's TiFlash replicas bound how few stores may
        // remain.
        let replicas = match &pd {
            Some(pd) if scaling_in => Some(pd.tiflash_replicas().await.map_err(|e| e.to_string())),
            _ => None,
        };
        let version = &group.spec.template.spec.common.version;
        let running = scaling::running(instances, version);
        // TiFlash waits for PD, as in the reference.
        let dependencies: Vec<Dependency<'_>> = pd_groups.iter().map(Dependency::of).collect();
        let gate =
            upgrade::may_upgrade(cluster.spec.upgrade_policy, version, running, &dependencies);
        Ok(Observed {
            pd,
            view,
            gate,
            running: running.map(str::to_string),
            replicas,
        })
    }

    // Stores are added or removed only while PD answers, asked afresh (see TiKV's rules).
    async fn silence(ctx: &Ctx, view: &View<'_>) -> Option<String> {
        match (&view.observed.pd, &view.observed.view) {
            (Some(pd), Some(Ok(_))) => {
                ctx.pd_changed(pd);
                ctx.pd_view(pd).await.err()
            }
            (_, Some(Err(error))) => Some(error.clone()),
            _ => None,
        }
    }

    fn rebuilt(view: &View<'_>, existing: &TiFlash) -> Result<TiFlash, BuildError> {
        build::instance(
            view.group,
            &existing.name_any(),
            existing.spec.topology.clone(),
            view.update_revision,
        )
    }

    /// A marked instance counts as being removed, so a scale-in goes one store at a time and a
    /// scale-out finds it to keep.
    fn leaving(tiflash: &TiFlash) -> bool {
        is_leaving(tiflash)
    }

    fn create(
        view: &View<'_>,
        name: &str,
        topology: Topology,
        ordinal: usize,
    ) -> Result<Decision<TiFlash>, BuildError> {
        scaling::create(
            view.instances,
            ordinal,
            view.observed.gate.is_ok(),
            view.observed.running.as_deref(),
            || build::instance(view.group, name, topology.clone(), view.update_revision),
            |source| build::instance_like(view.group, name, topology.clone(), source),
        )
    }

    fn update(view: &View<'_>, existing: &TiFlash) -> Result<Decision<TiFlash>, BuildError> {
        scaling::update(view.observed.gate.is_ok(), || Self::rebuilt(view, existing))
    }

    fn delete(view: &View<'_>, victim: &TiFlash) -> Result<Decision<TiFlash>, BuildError> {
        let staying = usize::try_from(view.group.spec.replicas).unwrap_or(0);
        let ours: Vec<u64> = view
            .instances
            .iter()
            .filter_map(|i| store::recorded_id(i.status.as_ref().map_or("", |s| s.id.as_str())))
            .collect();
        let refusal = scale_in_refusal(view.observed.view.as_ref()).and_then(|()| {
            replicas_refusal(
                view.observed.view.as_ref(),
                view.observed.replicas.as_ref(),
                &ours,
                staying,
            )
        });
        Ok(scaling::remove(victim, refusal))
    }

    fn progress(view: &View<'_>, outcome: &Outcome) -> (Option<String>, Option<&'static str>) {
        scaling::progress(
            view.instances,
            view.update_revision,
            &view.observed.gate,
            outcome,
        )
    }
}

/// `Ok` when the TiFlash stores that would remain hold every table's TiFlash replicas: PD's
/// placement rules say how many the most demanding table keeps, and PD cannot take a store out
/// while fewer would remain (the removal would hang Offline). Counted over the whole cluster:
/// the Up TiFlash stores PD lists, less those of this group (`ours`, by store ID) beyond the
/// `staying` ones.
fn replicas_refusal(
    view: Option<&Result<PdView, String>>,
    replicas: Option<&Result<u64, String>>,
    ours: &[u64],
    staying: usize,
) -> Result<(), (&'static str, String)> {
    let Some(Ok(view)) = view else {
        return Ok(());
    };
    let needed = match replicas {
        Some(Ok(needed)) => *needed,
        Some(Err(e)) => {
            return Err((
                REASON_PD_UNREACHABLE,
                format!(
                    "cannot take a TiFlash store out while PD does not say how many TiFlash \
                     replicas the tables keep: {e}"
                ),
            ));
        }
        None => return Ok(()),
    };
    let up: Vec<u64> = view
        .stores
        .stores
        .iter()
        .filter(|s| store::is_tiflash(s) && s.is_up())
        .map(|s| s.store.id)
        .collect();
    let ours_up = up.iter().filter(|id| ours.contains(id)).count();
    let remaining = up.len() - ours_up + ours_up.min(staying);
    if u64::try_from(remaining).unwrap_or(u64::MAX) < needed {
        return Err((
            REASON_SCALE_IN_REFUSED,
            format!(
                "tables keep {needed} TiFlash replicas (PD's placement rules, group tiflash), and \
                 {remaining} TiFlash store(s) would remain: lower their replica count first \
                 (ALTER TABLE ... SET TIFLASH REPLICA n)"
            ),
        ));
    }
    Ok(())
}

/// `Ok` when a store may be marked for removal: PD answers.
fn scale_in_refusal(view: Option<&Result<PdView, String>>) -> Result<(), (&'static str, String)> {
    match view {
        None => Err((
            REASON_PD_NOT_FOUND,
            "cannot take a TiFlash store out: the Cluster has no PD".to_string(),
        )),
        Some(Err(e)) => Err((
            REASON_PD_UNREACHABLE,
            format!("cannot take a TiFlash store out while PD does not answer: {e}"),
        )),
        Some(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use operator_api::core::TiFlashStatus;
    use operator_runtime::group_reconcile::Effect;

    use super::*;

    fn tiflash(annotations: &[(&str, &str)], state: &str) -> TiFlash {
        let mut tiflash = TiFlash::new(
            "tiflash-a",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "tiflash-tiflash-peer", "version": "v8.5.2"
            }))
            .unwrap(),
        );
        tiflash.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        tiflash.status = Some(TiFlashStatus {
            state: state.into(),
            ..TiFlashStatus::default()
        });
        tiflash
    }

    fn group() -> TiFlashGroup {
        let mut group = TiFlashGroup::new(
            "tiflash",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "replicas": 2,
                "template": {"spec": {"version": "v8.5.2"}}
            }))
            .unwrap(),
        );
        group.metadata.namespace = Some("db".into());
        group.metadata.uid = Some("u".into());
        group
    }

    fn decide<T>(
        instances: &[TiFlash],
        observed: &Observed,
        decide: impl FnOnce(&View<'_>) -> T,
    ) -> T {
        let group = group();
        let cluster = Cluster::new("c", Default::default());
        decide(&GroupView {
            group: &group,
            namespace: "db",
            cluster: &cluster,
            instances,
            update_revision: "tiflash-r2",
            observed,
        })
    }

    fn observed(view: Option<Result<PdView, String>>) -> Observed {
        Observed {
            pd: None,
            view,
            gate: Ok(()),
            running: Some("v8.5.2".into()),
            replicas: None,
        }
    }

    fn view_of(stores: &[(u64, &str, bool)]) -> PdView {
        let stores = stores
            .iter()
            .map(|(id, state, tiflash)| {
                let labels = if *tiflash {
                    serde_json::json!([{"key": "engine", "value": "tiflash"}])
                } else {
                    serde_json::json!([])
                };
                serde_json::from_value(serde_json::json!({
                    "store": {"id": id, "state_name": state, "labels": labels}
                }))
                .unwrap()
            })
            .collect();
        PdView {
            stores: pd_client::StoresInfo { count: 0, stores },
            evicting: Vec::new(),
            replication: pd_client::ReplicationConfig::default(),
            not_bootstrapped: false,
        }
    }

    #[test]
    fn a_scale_in_below_the_tables_tiflash_replicas_is_refused() {
        // Three TiFlash stores of this group (4, 5, 6), one of another group (7), TiKV stores.
        let view = Ok(view_of(&[
            (1, "Up", false),
            (4, "Up", true),
            (5, "Up", true),
            (6, "Up", true),
            (7, "Up", true),
        ]));
        let ours = [4, 5, 6];
        // Tables keep 3: 3 → 2 in this group leaves 3 with the other group's store.
        assert!(replicas_refusal(Some(&view), Some(&Ok(3)), &ours, 2).is_ok());
        // 3 → 1 leaves 2.
        let (reason, message) = replicas_refusal(Some(&view), Some(&Ok(3)), &ours, 1).unwrap_err();
        assert_eq!(reason, REASON_SCALE_IN_REFUSED);
        assert!(message.contains("keep 3 TiFlash replicas"), "{message}");
        assert!(
            message.contains("2 TiFlash store(s) would remain"),
            "{message}"
        );
        // No table with TiFlash replicas: any scale-in.
        assert!(replicas_refusal(Some(&view), Some(&Ok(0)), &ours, 0).is_ok());
        // PD did not say: refused, not guessed.
        let (reason, _) =
            replicas_refusal(Some(&view), Some(&Err("timeout".into())), &ours, 2).unwrap_err();
        assert_eq!(reason, REASON_PD_UNREACHABLE);
        // A store of ours already Offline does not count as remaining.
        let view = Ok(view_of(&[
            (4, "Up", true),
            (5, "Offline", true),
            (6, "Up", true),
        ]));
        assert!(replicas_refusal(Some(&view), Some(&Ok(2)), &ours, 2).is_ok());
        assert!(replicas_refusal(Some(&view), Some(&Ok(2)), &ours, 1).is_err());
    }

    #[test]
    fn a_scale_in_is_marked_only_while_pd_answers() {
        let victim = tiflash(&[], "Serving");
        for (view, reason) in [
            (None, REASON_PD_NOT_FOUND),
            (Some(Err("timed out".to_string())), REASON_PD_UNREACHABLE),
        ] {
            let decision = decide(std::slice::from_ref(&victim), &observed(view), |v| {
                Rules::delete(v, &victim)
            })
            .unwrap();
            assert!(
                matches!(&decision, Decision::Refuse { reason: r, .. } if *r == reason),
                "{decision:?}"
            );
        }
        let decision = decide(
            std::slice::from_ref(&victim),
            &observed(Some(Ok(PdView::default()))),
            |v| Rules::delete(v, &victim),
        )
        .unwrap();
        assert!(
            matches!(&decision, Decision::Act(e) if matches!(&e[0], Effect::SetState { value: Some(_), key, .. } if *key == keys::ANNO_DEFER_DELETE)),
            "{decision:?}"
        );
    }

    #[test]
    fn a_scale_out_keeps_a_store_being_removed_before_it_adds_one() {
        let marked = tiflash(&[(keys::ANNO_DEFER_DELETE, "true")], "Removing");
        let open = observed(None);
        let first = decide(std::slice::from_ref(&marked), &open, |v| {
            Rules::create(v, "tiflash-new", Topology::new(), 0)
        })
        .unwrap();
        assert!(
            matches!(&first, Decision::Act(e) if matches!(&e[0], Effect::SetState { value: None, .. })),
            "{first:?}"
        );
        let second = decide(std::slice::from_ref(&marked), &open, |v| {
            Rules::create(v, "tiflash-new", Topology::new(), 1)
        })
        .unwrap();
        assert!(
            matches!(&second, Decision::Act(e) if matches!(&e[..], [Effect::Create(t)] if t.name_any() == "tiflash-new")),
            "{second:?}"
        );
    }
}
