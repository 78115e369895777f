//! The TiDBGroup reconcile: the group's Services, its TiDB instances (created, rolled with a
//! surge so that no server goes before its replacement is Ready, removed on scale-in), the
//! upgrade order (PD and TiKV first), and the group's status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use operator_api::conditions::{HasConditions, reasons};
use operator_api::core::{
    Cluster, PDGroup, TIDB_DEFAULT_MAX_SURGE, TiDB, TiDBGroup, TiKVGroup, Topology,
};
use operator_runtime::build::BuildError;
use operator_runtime::cache;
use operator_runtime::dns::Dns;
use operator_runtime::failover;
use operator_runtime::group as shared_group;
use operator_runtime::group_reconcile::{
    BeforePlan, Decision, Effect, GroupRules, GroupView, Outcome, is_available,
};
use operator_runtime::reconcile::Error;
use operator_runtime::revision::hash_of;
use operator_runtime::surge;
use operator_runtime::tls::{CA_KEY, CERT_KEY, SecretMount};
use operator_runtime::update::{self, InstanceView, Policy};
use operator_runtime::upgrade::{self, Dependency};

use crate::build::{self, Target};
use crate::context::{Ctx, MANAGER};

/// How the group's instances are named in condition messages.
const NOUN: &str = "TiDB servers";

/// The TiDB component's group rules.
pub struct Rules;

/// What a TiDBGroup's rules learn each reconcile: what new and updated instances are made from.
pub struct Observed {
    /// The group's template, or while a new version waits for PD and TiKV, what the group runs.
    target: Target,
    /// Why the new version waits, if it does.
    gated: Option<String>,
    /// When each instance's Pod was created, from the cache: a server is not failed for longer
    /// than its Pod has existed (after a restart, or compute resumed).
    pods_created: BTreeMap<String, Timestamp>,
}

/// What a TiDBGroup's rules see.
type View<'a> = GroupView<'a, Rules>;

impl GroupRules for Rules {
    type Group = TiDBGroup;
    type Instance = TiDB;
    type Observed = Observed;
    type Ctx = Ctx;

    const MANAGER: &'static str = MANAGER;
    const NOUN: &'static str = NOUN;
    const UNIT: &'static str = "server";
    const AVAILABLE_CONDITION: bool = true;
    const RETIRE: failover::Retire = failover::Retire::OnReplacementReady;
    const STATE_ANNOTATIONS: &'static [&'static str] = failover::STATE_ANNOTATIONS;

    fn instances(ctx: &Ctx) -> &Store<TiDB> {
        &ctx.instances
    }

    fn failover(group: &TiDBGroup) -> Option<failover::Settings> {
        Some(failover::Settings::of(group.spec.failover.as_ref()))
    }

    fn health(view: &View<'_>, tidb: &TiDB) -> failover::Health {
        server_health(tidb, view.observed.pods_created.get(&tidb.name_any()))
    }

    fn outage(view: &View<'_>) -> Option<String> {
        servers_outage(view.instances, &view.observed.pods_created)
    }

    fn services(group: &TiDBGroup) -> Result<Vec<Service>, BuildError> {
        Ok(build::services(group)?.into())
    }

    /// The MySQL certificate's fingerprint: a renewed certificate rolls the group.
    async fn revision_extra(
        ctx: &Ctx,
        group: &TiDBGroup,
        instances: &[TiDB],
    ) -> Result<Option<String>, Error> {
        mysql_tls_fingerprint(ctx, group, instances).await
    }

    /// The upgrade order: a new version starts only once PD and TiKV run it everywhere; until
    /// then the group keeps (and scales) what it runs.
    async fn observe(
        ctx: &Ctx,
        group: &TiDBGroup,
        cluster: &Cluster,
        instances: &[TiDB],
        update_revision: &str,
        revision_extra: Option<&str>,
    ) -> Result<Observed, Error> {
        let namespace = group.namespace().unwrap_or_default();
        // The MySQL certificate's fingerprint, as revision_extra read it this reconcile.
        let fingerprint = revision_extra.map(str::to_string);
        let pods_created = failover::pods_created(&ctx.caches.pods, &namespace, instances);
        let version = &group.spec.template.spec.common.version;
        let outdated_version: Vec<&TiDB> = instances
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .filter(|i| !upgrade::same_version(&i.spec.template.common.version, version))
            .collect();
        let gate = match outdated_version.first() {
            None => Ok(()),
            Some(running) => {
                let (pd_groups, tikv_groups) =
                    dependencies(ctx, &namespace, &group.spec.cluster.name);
                let mut deps: Vec<Dependency<'_>> = pd_groups.iter().map(Dependency::of).collect();
                deps.extend(tikv_groups.iter().map(Dependency::of));
                let local = upgrade::may_upgrade(
                    cluster.spec.upgrade_policy,
                    version,
                    Some(&running.spec.template.common.version),
                    &deps,
                );
                // Local groups settled is not enough across Kubernetes clusters: every store PD
                // reports, wherever it runs, must be on the version.
                let gated = upgrade::is_gated(
                    cluster.spec.upgrade_policy,
                    version,
                    Some(&running.spec.template.common.version),
                );
                match local {
                    Ok(()) if gated => {
                        stores_run(ctx, &namespace, cluster, &pd_groups, version).await
                    }
                    other => other,
                }
            }
        };
        Ok(match gate {
            Ok(()) => Observed {
                target: Target::of_group(group, update_revision, fingerprint),
                gated: None,
                pods_created,
            },
            Err(message) => {
                let source = most_common_revision(&outdated_version);
                let target = source.map_or_else(
                    || Target::of_group(group, update_revision, fingerprint),
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
                Observed {
                    target,
                    gated: Some(message),
                    pods_created,
                }
            }
        })
    }

    /// TiDB keeps no data: servers are added and removed whether PD answers or not.
    async fn silence(_ctx: &Ctx, _view: &View<'_>) -> Option<String> {
        None
    }

    fn target_revision(view: &View<'_>) -> String {
        view.observed.target.revision.clone()
    }

    fn rebuilt(view: &View<'_>, existing: &TiDB) -> Result<TiDB, BuildError> {
        build::instance(
            view.group,
            &existing.name_any(),
            existing.spec.topology.clone(),
            &view.observed.target,
        )
    }

    fn max_surge(group: &TiDBGroup) -> i32 {
        group
            .spec
            .max_surge
            .unwrap_or(TIDB_DEFAULT_MAX_SURGE)
            .max(0)
    }

    fn plan(policy: &Policy, views: &[InstanceView]) -> update::Plan {
        surge::plan(policy, views)
    }

    /// Changes that leave the Pods as they are (HotReload config, labels) apply in place at once.
    /// Right after a pause, instances still say `Paused` instead of how they are: the engine
    /// would take every one for unavailable and pick the wrong one to remove, so the plan waits
    /// for them.
    fn before_plan(view: &View<'_>) -> Result<BeforePlan<TiDB>, BuildError> {
        if let Some(waiting) = shared_group::unobserved_after_pause(view.instances) {
            return Ok(BeforePlan {
                effects: Vec::new(),
                waiting: Some(waiting),
                skip_plan: true,
            });
        }
        let target = &view.observed.target;
        let mut effects = Vec::new();
        for instance in view
            .instances
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .filter(|i| build::revision_of(i) != target.revision)
            .filter(|i| build::update_keeps_pod(i, target))
        {
            effects.extend(updated(view, instance)?);
        }
        Ok(BeforePlan {
            skip_plan: !effects.is_empty(),
            effects,
            waiting: None,
        })
    }

    fn create(
        view: &View<'_>,
        name: &str,
        topology: Topology,
        _ordinal: usize,
    ) -> Result<Decision<TiDB>, BuildError> {
        let target = &view.observed.target;
        let tidb = build::instance(view.group, name, topology, target)?;
        let outdated = view.instances.iter().any(|i| {
            i.metadata.deletion_timestamp.is_none() && build::revision_of(i) != target.revision
        });
        let why = if outdated {
            "to replace an outdated server; the outdated one goes once it is Ready"
        } else {
            "to reach the desired replicas"
        };
        Ok(Decision::Act(vec![
            Effect::Create(tidb),
            Effect::event(
                "InstanceCreated",
                "Scale",
                format!("created TiDB {name} {why}"),
            ),
        ]))
    }

    fn update(view: &View<'_>, existing: &TiDB) -> Result<Decision<TiDB>, BuildError> {
        Ok(Decision::Act(updated(view, existing)?))
    }

    fn delete(view: &View<'_>, victim: &TiDB) -> Result<Decision<TiDB>, BuildError> {
        let name = victim.name_any();
        let why = if build::revision_of(victim) != view.observed.target.revision {
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
                    "removing TiDB {name} ({why}); it leaves the MySQL Service, then stops gracefully"
                ),
            ),
        ]))
    }

    fn progress(view: &View<'_>, outcome: &Outcome) -> (Option<String>, Option<&'static str>) {
        match &view.observed.gated {
            Some(message) => (
                Some(message.clone()),
                Some(reasons::WAITING_FOR_DEPENDENCIES),
            ),
            None => (outcome.waiting.clone(), None),
        }
    }
}

/// How a server is doing, by its `Ready` condition ([`failover::by_readiness`]).
fn server_health(tidb: &TiDB, pod_created: Option<&Timestamp>) -> failover::Health {
    failover::by_readiness(tidb.conditions(), pod_created)
}

/// More than half of a group of several servers not Ready at once is an outage (PD or TiKV
/// down, say), which new servers would not mend.
fn servers_outage(instances: &[TiDB], pods: &BTreeMap<String, Timestamp>) -> Option<String> {
    let staying: Vec<&TiDB> = instances
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .collect();
    let failing = staying
        .iter()
        .filter(|i| {
            matches!(
                server_health(i, pods.get(&i.name_any())),
                failover::Health::Failing { .. }
            )
        })
        .count();
    (staying.len() > 1 && failing * 2 > staying.len()).then(|| {
        format!(
            "{failing} of the group's {} servers are not Ready at once: an outage, not the failure of one server",
            staying.len()
        )
    })
}

/// The fingerprint of the group's MySQL server certificate and CA, with MySQL TLS on: TiDB does
/// not reload that certificate, so a renewed one must restart the servers, and the fingerprint in
/// the group's revision makes that a roll with surge. The Secrets are read with a GET (the
/// controller does not watch Secrets); a settled group looks again every 30 s, so a renewal is
/// seen within that. While the certificate cannot be read, the fingerprint the instances carry
/// stands: a missing Secret rolls nothing (new Pods would wait for it anyway).
async fn mysql_tls_fingerprint(
    ctx: &Ctx,
    group: &TiDBGroup,
    instances: &[TiDB],
) -> Result<Option<String>, Error> {
    let Some(mysql) = build::mysql_tls(&group.spec.template.spec) else {
        return Ok(None);
    };
    let mount = SecretMount::mysql(
        &group.name_any(),
        Some(&mysql.secret),
        mysql.client_auth.as_deref(),
    );
    let namespace = group.namespace().unwrap_or_default();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    let read = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&name)
                .await
                .map_err(Error::kube("reading the MySQL TLS Secret"))
        }
    };
    let cert = read(mount.cert_secret.clone()).await?;
    let ca = if mount.ca_secret == mount.cert_secret {
        cert.clone()
    } else {
        read(mount.ca_secret.clone()).await?
    };
    let value = |secret: &Option<Secret>, key: &str| {
        secret
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
    };
    Ok(match value(&cert, CERT_KEY) {
        Some(certificate) => Some(hash_of(&(certificate, value(&ca, CA_KEY)))),
        None => instances.iter().find_map(build::tls_fingerprint_of),
    })
}

/// Moving `existing` to the target: its new spec and an Event.
fn updated(view: &View<'_>, existing: &TiDB) -> Result<Vec<Effect<TiDB>>, BuildError> {
    let revision = &view.observed.target.revision;
    Ok(vec![
        Effect::Update(Rules::rebuilt(view, existing)?),
        Effect::event(
            "InstanceUpdated",
            "Update",
            format!(
                "TiDB {} updated to revision {revision}",
                existing.name_any()
            ),
        ),
    ])
}

/// Whether PD reports every store that is not a Tombstone running `version`; a PD that does
/// not answer (or is not known yet) holds the gate. PD is reached at the Cluster's `status.pd`,
/// else at the client Service of its first PDGroup.
async fn stores_run(
    ctx: &Ctx,
    namespace: &str,
    cluster: &Cluster,
    pd_groups: &[PDGroup],
    version: &str,
) -> Result<(), String> {
    let dns = Dns::of_spec(&cluster.spec);
    let url = cluster
        .status
        .as_ref()
        .map(|s| s.pd.clone())
        .filter(|u| !u.is_empty())
        .or_else(|| {
            operator_runtime::group::pd_owner(pd_groups).map(|g| {
                let host = dns.service_host(&format!("{}-pd", g.name_any()), namespace);
                let port = g.spec.template.spec.server.ports.client_port();
                format!("{}://{host}:{port}", dns.scheme())
            })
        });
    let reported = match url {
        Some(url) => match ctx.pd(namespace, &cluster.name_any(), url) {
            Ok(pd) => pd
                .stores()
                .await
                .map(|info| {
                    info.stores
                        .into_iter()
                        .filter(|s| !s.is_tombstone())
                        .map(|s| upgrade::Reported {
                            name: s.store.address,
                            version: s.store.version,
                        })
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => Err("the Cluster has no PD URL yet".to_string()),
    };
    upgrade::pd_runs(
        version,
        "store",
        reported.as_deref().map_err(String::as_str),
    )
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

#[cfg(test)]
mod tests {
    use operator_api::conditions;
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

    fn with_ready(name: &str, ready: Option<(bool, &str)>) -> TiDB {
        let mut t = tidb(name, "r");
        if let Some((status, since)) = ready {
            let mut conditions = Vec::new();
            conditions::set(
                &mut conditions,
                conditions::NewCondition {
                    type_: conditions::READY,
                    status,
                    reason: "InstanceNotHealthy",
                    message: "status answers 503".into(),
                    observed_generation: None,
                },
                since.parse().unwrap(),
            );
            *t.conditions_mut() = conditions;
        }
        t
    }

    #[test]
    fn a_server_fails_from_when_it_stopped_being_ready_or_its_pod_came_whichever_is_later() {
        let early: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let late: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let not_ready = with_ready("a", Some((false, "2026-01-01T00:30:00Z")));
        let failing = |since: &str| failover::Health::Failing {
            why: "not Ready (InstanceNotHealthy: status answers 503)".into(),
            since: Some(since.parse().unwrap()),
        };
        assert_eq!(
            server_health(&not_ready, Some(&early)),
            failing("2026-01-01T00:30:00Z")
        );
        // A Pod made after the condition turned (a restart, compute resumed) starts the clock.
        assert_eq!(
            server_health(&not_ready, Some(&late)),
            failing("2026-01-01T01:00:00Z")
        );
        // No Pod, or no condition yet: cannot tell.
        assert_eq!(server_health(&not_ready, None), failover::Health::Unknown);
        assert_eq!(
            server_health(&with_ready("b", None), Some(&early)),
            failover::Health::Unknown
        );
        let ready = with_ready("c", Some((true, "2026-01-01T00:30:00Z")));
        assert_eq!(
            server_health(&ready, Some(&early)),
            failover::Health::Healthy
        );
    }

    #[test]
    fn more_than_half_of_several_servers_failing_is_an_outage_but_one_alone_is_not() {
        let early: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let down = |name: &str| with_ready(name, Some((false, "2026-01-01T00:30:00Z")));
        let up = |name: &str| with_ready(name, Some((true, "2026-01-01T00:30:00Z")));
        let pods = |names: &[&str]| -> BTreeMap<String, Timestamp> {
            names.iter().map(|n| (n.to_string(), early)).collect()
        };
        assert_eq!(servers_outage(&[down("a")], &pods(&["a"])), None);
        assert_eq!(
            servers_outage(&[down("a"), up("b")], &pods(&["a", "b"])),
            None
        );
        let outage = servers_outage(&[down("a"), down("b"), up("c")], &pods(&["a", "b", "c"]));
        assert!(outage.is_some_and(|m| m.starts_with("2 of the group's 3 servers")));
        // A server without a Pod cannot be judged, so it does not count as failing.
        assert_eq!(
            servers_outage(&[down("a"), down("b"), up("c")], &pods(&["a", "c"])),
            None
        );
    }
}
