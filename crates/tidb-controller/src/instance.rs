//! The TiDB instance reconcile: its ConfigMap, PVCs and Pod; a restart when the Pod is outdated;
//! a graceful removal (the Pod first, then the PVCs, then the instance); and the instance's
//! status from its Pod and TiDB's `/status`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, Look, reasons};
use operator_api::core::{TiDB, TiDBStatus};
use operator_api::keys;
use operator_runtime::cache;
use operator_runtime::instance::{self, PodRemoval};
use operator_runtime::pod::{is_ready, readiness, synced as pod_synced};
use tracing::instrument;

use crate::build;
use crate::context::{Ctx, MANAGER};
use operator_runtime::reconcile::{self, Error, InstanceStart};

/// Reason of an instance whose Cluster names no PD to connect to.
pub const REASON_NO_PD: &str = "PDNotFound";
/// Reason of an instance whose Cluster's bootstrap SQL ConfigMap is missing or lacks its key.
pub const REASON_BOOTSTRAP_SQL_NOT_FOUND: &str = "BootstrapSQLNotFound";
/// How often a Ready instance's `/status` is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How often an instance that is not Ready is looked at again.
const NOT_READY_INTERVAL: Duration = Duration::from_secs(3);

/// Reconciles one TiDB instance.
#[instrument(skip_all, fields(namespace = tidb.namespace(), instance = tidb.name_any(), cluster = tidb.spec.cluster.name))]
pub async fn reconcile(tidb: Arc<TiDB>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    operator_runtime::reconcile::measured(&ctx.metrics, "tidb", reconcile_inner(&tidb, &ctx)).await
}

/// What TiDB's status port said.
enum Health {
    /// Not asked: the Pod is missing, terminating or not ready.
    NotAsked,
    /// It answered, with its version string.
    Serving(String),
    /// It did not answer 2xx: the error, and the URL asked.
    Failing { url: String, error: String },
}

async fn reconcile_inner(tidb: &TiDB, ctx: &Ctx) -> Result<Action, Error> {
    let (namespace, cluster) = match reconcile::instance_start(ctx, tidb).await? {
        InstanceStart::Go(start) => (start.namespace, start.cluster),
        InstanceStart::Done(then) => return Ok(then),
    };
    let name = tidb.name_any();
    let cluster_name = &tidb.spec.cluster.name;
    if tidb.metadata.deletion_timestamp.is_some() {
        return finalize(tidb, ctx).await;
    }
    let Some(cluster) = cluster else {
        return reconcile::cluster_missing(ctx, tidb).await;
    };

    // Where PD is: the Cluster's status, else the client Services of its PD groups.
    let status_pd = cluster
        .status
        .as_ref()
        .map(|s| s.pd.clone())
        .unwrap_or_default();
    let pd_groups = if status_pd.is_empty() {
        ctx.caches
            .pd_groups_of(&namespace, cluster_name)
            .iter()
            .map(|g| {
                let port = g.spec.template.spec.server.ports.client_port();
                (g.name_any(), port)
            })
            .collect()
    } else {
        Vec::new()
    };
    let Some(pd_path) = build::pd_path(&status_pd, &namespace, &pd_groups) else {
        let message = format!(
            "Cluster {cluster_name} has no status.pd and no PDGroup; TiDB needs PD to start"
        );
        return reconcile::block(
            ctx,
            tidb,
            REASON_NO_PD,
            &message,
            Action::requeue(Duration::from_secs(15)),
        )
        .await;
    };

    let existing_pod = cache::get(&ctx.caches.pods, &namespace, &name);

    if cluster.spec.suspends_compute() {
        let kept = "the instance and its ConfigMap";
        let (status, then) = instance::suspend(ctx, tidb, existing_pod.as_ref(), kept).await?;
        reconcile::write_status(ctx, tidb, &status).await?;
        return Ok(then);
    }

    // The bootstrap SQL: mounted while the Cluster names it (TiDB runs it only when it
    // bootstraps the cluster). A Pod is not created without the file it would be told to run.
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let bootstrap_sql = cluster.spec.bootstrap_sql.as_ref().map(|r| r.name.clone());
    if let Some(source) = &bootstrap_sql
        && existing_pod.is_none()
    {
        let found = config_maps
            .get_opt(source)
            .await
            .map_err(Error::kube("reading the bootstrap SQL ConfigMap"))?;
        let problem = match found {
            None => Some(format!(
                "ConfigMap {source} named by Cluster {cluster_name} spec.bootstrapSQL does not exist"
            )),
            Some(cm)
                if !cm
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(build::BOOTSTRAP_SQL_KEY)) =>
            {
                Some(format!(
                    "ConfigMap {source} named by Cluster {cluster_name} spec.bootstrapSQL has no key {}",
                    build::BOOTSTRAP_SQL_KEY
                ))
            }
            Some(_) => None,
        };
        if let Some(message) = problem {
            return reconcile::block(
                ctx,
                tidb,
                REASON_BOOTSTRAP_SQL_NOT_FOUND,
                &message,
                Action::requeue(Duration::from_secs(15)),
            )
            .await;
        }
    }

    let config = match build::config(tidb, &pd_path, bootstrap_sql.is_some()) {
        Ok(config) => config,
        Err(e) => return reconcile::invalid_spec(ctx, tidb, &e).await,
    };
    instance::apply_config_map(ctx, MANAGER, tidb, build::config_map(tidb, config)?).await?;
    instance::create_pvcs(ctx, MANAGER, tidb, build::pvcs(tidb)?).await?;

    let desired_pod = match build::pod(tidb, bootstrap_sql.as_deref()) {
        Ok(pod) => pod,
        Err(e) => return reconcile::invalid_spec(ctx, tidb, &e).await,
    };
    let mut requeue = None;
    match &existing_pod {
        None => {
            instance::create_pod(ctx, MANAGER, tidb, &desired_pod).await?;
            requeue = Some(Duration::from_secs(2));
        }
        Some(pod) if is_terminating(pod) => requeue = Some(Duration::from_secs(2)),
        Some(pod) if !build::pod_is_current(pod, &desired_pod) => {
            let note = "; it leaves the MySQL Service first";
            instance::restart_pod(ctx, tidb, pod, note).await?;
            requeue = Some(Duration::from_secs(2));
        }
        Some(_) => {}
    }

    let health = match &existing_pod {
        Some(pod) if !is_terminating(pod) && is_ready(pod) => {
            let url = ctx.status_url(tidb, build::status_url(tidb));
            match ctx.tidb_status(&url).await {
                Ok(status) => Health::Serving(status.version),
                Err(e) => Health::Failing {
                    url,
                    error: e.to_string(),
                },
            }
        }
        _ => Health::NotAsked,
    };
    let status = observe_status(tidb, existing_pod.as_ref(), &desired_pod, &health);
    let ready = conditions::is_true(&status.common.conditions, conditions::READY);
    reconcile::write_status(ctx, tidb, &status).await?;
    Ok(Action::requeue(requeue.unwrap_or(if ready {
        HEALTH_INTERVAL
    } else {
        NOT_READY_INTERVAL
    })))
}

/// A removed instance: its Pod is deleted (it leaves the Service's ready endpoints at once, then
/// sleeps in preStop and stops gracefully), then its PVCs; then the instance lets go.
async fn finalize(tidb: &TiDB, ctx: &Ctx) -> Result<Action, Error> {
    if !tidb.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Action::await_change());
    }
    match instance::remove_pod(ctx, tidb).await? {
        PodRemoval::Gone => {}
        PodRemoval::Deleted => {
            ctx.events
                .normal(
                    tidb,
                    "PodDeleted",
                    "Remove",
                    "the Pod leaves the MySQL Service and stops gracefully".into(),
                )
                .await;
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        PodRemoval::Terminating => return Ok(Action::requeue(Duration::from_secs(2))),
    }
    instance::delete_pvcs(ctx, tidb).await?;
    instance::release(ctx, tidb).await
}

/// The status from the Pod and what TiDB's status port says.
fn observe_status(tidb: &TiDB, pod: Option<&Pod>, desired: &Pod, health: &Health) -> TiDBStatus {
    let mut status = tidb.status.clone().unwrap_or_default();
    let generation = tidb.metadata.generation;
    let look = Look::now(generation);
    let (ready, reason, message) = match readiness(pod) {
        Some(verdict) => verdict,
        None => match health {
            Health::Serving(version) => (
                true,
                reasons::READY,
                format!("TiDB {version} answers on its status port"),
            ),
            Health::Failing { url, error } => (
                false,
                reasons::INSTANCE_NOT_HEALTHY,
                format!("TiDB's /status does not answer (asked {url}): {error}"),
            ),
            Health::NotAsked => (
                false,
                reasons::POD_NOT_READY,
                "the Pod is not ready".to_string(),
            ),
        },
    };
    let conditions = &mut status.common.conditions;
    look.set(conditions, conditions::READY, ready, reason, message);
    let current = pod.is_some_and(|p| build::pod_is_current(p, desired));
    let (synced, reason, message) = pod_synced(pod, current);
    look.set(conditions, conditions::SYNCED, synced, reason, message);
    if conditions::find(conditions, conditions::SUSPENDED).is_some() {
        let message = "the Pod runs again";
        look.set(
            conditions,
            conditions::SUSPENDED,
            false,
            reasons::UNSUSPENDED,
            message,
        );
    }
    status.common.observed_generation = generation.unwrap_or_default();
    status.common.current_revision = build::revision_of(tidb);
    status.common.update_revision = status.common.current_revision.clone();
    status
}

/// Whether the Pod is being deleted.
fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    use super::*;

    fn tidb() -> TiDB {
        let mut t = TiDB::new(
            "db-abcde",
            serde_json::from_value(serde_json::json!({
                "cluster": {"name": "c"}, "subdomain": "db-tidb-peer", "version": "v8.5.2"
            }))
            .unwrap(),
        );
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("u".into());
        t.metadata.generation = Some(4);
        t
    }

    fn ready_pod(t: &TiDB) -> Pod {
        let mut pod = build::pod(t, None).unwrap();
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }

    fn ready_condition(status: &TiDBStatus) -> (String, String, String) {
        let c = conditions::find(&status.common.conditions, conditions::READY).unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn ready_needs_the_pod_and_the_status_port() {
        let t = tidb();
        let pod = ready_pod(&t);
        let desired = build::pod(&t, None).unwrap();
        let serving = observe_status(&t, Some(&pod), &desired, &Health::Serving("v".into()));
        assert_eq!(ready_condition(&serving).0, "True");
        assert!(conditions::is_true(
            &serving.common.conditions,
            conditions::SYNCED
        ));
        assert_eq!(serving.common.observed_generation, 4);

        let failing = observe_status(
            &t,
            Some(&pod),
            &desired,
            &Health::Failing {
                url: "http://x/status".into(),
                error: "answered HTTP 503".into(),
            },
        );
        let (status, reason, message) = ready_condition(&failing);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "InstanceNotHealthy")
        );
        assert!(
            message.contains("503") && message.contains("http://x/status"),
            "{message}"
        );

        let missing = observe_status(&t, None, &desired, &Health::NotAsked);
        assert_eq!(ready_condition(&missing).1, "PodNotCreated");
    }

    #[test]
    fn an_outdated_pod_is_not_synced() {
        let t = tidb();
        let pod = ready_pod(&t);
        let mut newer = t.clone();
        newer.spec.template.common.version = "v8.5.3".into();
        let desired = build::pod(&newer, None).unwrap();
        let status = observe_status(&newer, Some(&pod), &desired, &Health::Serving("v".into()));
        let synced = conditions::find(&status.common.conditions, conditions::SYNCED).unwrap();
        assert_eq!(synced.reason, "PodNotUpToDate");
    }
}
