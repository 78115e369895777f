//! The TiDB instance rules: its ConfigMap, PVCs and Pod; a restart when the Pod is outdated; a
//! graceful removal (the Pod first, then the PVCs, then the instance); and the instance's status
//! from its Pod and TiDB's `/status`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use operator_api::conditions::{self, HasConditions, Look, reasons};
use operator_api::core::{Cluster, TiDB, TiDBGroup, TiDBMode, TiDBStatus, TlsSecret};
use operator_api::keys;
use operator_runtime::build::BuildError;
use operator_runtime::dns::Dns;
use operator_runtime::instance::{self, PodRemoval};
use operator_runtime::instance_reconcile::{Blocked, Finished, InstanceRules, Prepared};
use operator_runtime::pod::{is_ready, readiness, synced as pod_synced};
use operator_runtime::reconcile::{Error, Started};
use operator_runtime::tls::SecretMount;

use crate::build;
use crate::context::{Ctx, MANAGER};

/// Reason of an instance whose Cluster names no PD to connect to.
pub const REASON_NO_PD: &str = "PDNotFound";
/// Reason of an instance whose Cluster's bootstrap SQL ConfigMap is missing or lacks its key.
pub const REASON_BOOTSTRAP_SQL_NOT_FOUND: &str = "BootstrapSQLNotFound";
/// Reason of an instance whose `security.sem` ConfigMap is missing or lacks `sem.json`.
pub const REASON_SEM_CONFIG_NOT_FOUND: &str = "SEMConfigNotFound";
/// Reason of an instance whose `security.authToken` Secret is missing or lacks its JWKs.
pub const REASON_AUTH_TOKEN_JWKS_NOT_FOUND: &str = "AuthTokenJWKSNotFound";
/// Reason of an instance with the `SessionTokenSigning` feature and no certificate to sign with.
pub const REASON_NO_SESSION_TOKEN_CERT: &str = "SessionTokenSigningCertNotSet";
/// `Ready=False` reason: a TiDB given a keyspace still waits in standby mode.
pub const REASON_NOT_ACTIVATED: &str = "NotActivated";
/// Event reason: a standby TiDB was given its keyspace.
pub const REASON_ACTIVATED: &str = "Activated";
/// How often a Ready instance's `/status` is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How often an instance that is not Ready is looked at again.
const NOT_READY_INTERVAL: Duration = Duration::from_secs(3);

/// What a TiDB's objects are built from besides the instance.
pub struct Inputs {
    /// PD's address (`host:port`, comma separated).
    pd_path: String,
    /// The ConfigMap of the bootstrap SQL the Cluster names, if it does.
    bootstrap_sql: Option<String>,
    /// Whether the cluster has TLS between its components.
    cluster_tls: bool,
}

/// The TiDB instance rules on the runtime's instance reconciler.
pub struct Rules;

impl InstanceRules for Rules {
    type Instance = TiDB;
    type Group = TiDBGroup;
    type Ctx = Ctx;
    type Inputs = Inputs;

    const MANAGER: &'static str = MANAGER;
    const METRIC: &'static str = "tidb";
    const KEPT: &'static str = "the instance and its ConfigMap";

    fn instances(ctx: &Ctx) -> &Store<TiDB> {
        &ctx.instances
    }

    fn groups(ctx: &Ctx) -> &Store<TiDBGroup> {
        &ctx.groups
    }

    async fn finalize(
        ctx: &Ctx,
        tidb: &TiDB,
        _: &Started,
        _: bool,
    ) -> Result<Finished<TiDBStatus>, Error> {
        finalize(tidb, ctx).await.map(Finished::then)
    }

    async fn inputs(
        ctx: &Ctx,
        tidb: &TiDB,
        cluster: &Cluster,
        _: Option<&TiDBGroup>,
        pod: Option<&Pod>,
    ) -> Result<Result<Inputs, Blocked>, Error> {
        let Some(pd_path) = pd_path(ctx, tidb, cluster) else {
            return Ok(Err(Blocked {
                reason: REASON_NO_PD,
                message: format!(
                    "Cluster {} has no status.pd and no PDGroup; TiDB needs PD to start",
                    tidb.spec.cluster.name
                ),
                then: Action::requeue(Duration::from_secs(15)),
            }));
        };
        let bootstrap_sql = cluster.spec.bootstrap_sql.as_ref().map(|r| r.name.clone());
        let hold = if build::signs_session_tokens(tidb) && !build::has_session_token_cert(cluster) {
            Some((
                REASON_NO_SESSION_TOKEN_CERT,
                format!(
                    "the SessionTokenSigning feature needs a certificate to sign with: set Cluster {} spec.security.sessionTokenSigningCertKeyPair, or turn on TLS between components to use the cluster certificate",
                    tidb.spec.cluster.name
                ),
            ))
        } else if pod.is_none() && !cluster.spec.suspends_compute() {
            // A Pod is not created without the files it would be told to read: the bootstrap
            // SQL, the SEM configuration, the auth-token JWKs (none is created while compute is
            // suspended).
            missing_source(ctx, tidb, bootstrap_sql.as_deref()).await?
        } else {
            None
        };
        if let Some((reason, message)) = hold {
            // A Warning Event when that is news, not on every look.
            let known = conditions::find(tidb.conditions(), conditions::READY)
                .is_some_and(|c| c.reason == reason && c.message == message);
            if !known {
                ctx.events
                    .warning(tidb, reason, "Hold", message.clone())
                    .await;
            }
            return Ok(Err(Blocked {
                reason,
                message,
                then: Action::requeue(Duration::from_secs(15)),
            }));
        }
        Ok(Ok(Inputs {
            pd_path,
            bootstrap_sql,
            cluster_tls: operator_runtime::tls::enabled(cluster),
        }))
    }

    const CLUSTER_TLS_DIR: &'static str = build::CLUSTER_TLS_DIR;

    fn cluster_tls(tidb: &TiDB) -> Option<&TlsSecret> {
        let security = tidb.spec.template.security.as_ref()?;
        Some(&security.tls.as_ref()?.cluster.as_ref()?.secret)
    }

    /// With MySQL TLS on, the group's server certificate; with the `SessionTokenSigning`
    /// feature, the certificate that signs session tokens.
    fn more_mounts(tidb: &TiDB, cluster: &Cluster, group: &str) -> Vec<SecretMount> {
        let mysql = build::mysql_tls(&tidb.spec.template).map(|mysql| {
            SecretMount::mysql(group, Some(&mysql.secret), mysql.client_auth.as_deref())
        });
        let signing = build::session_token_secret(tidb, cluster, group)
            .map(|secret| build::session_token_mount(&secret));
        mysql.into_iter().chain(signing).collect()
    }

    fn config_map(
        tidb: &TiDB,
        cluster: &Cluster,
        inputs: &Inputs,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError> {
        let dns = Dns::of_spec(&cluster.spec);
        let config = build::config(
            tidb,
            &dns,
            &inputs.pd_path,
            inputs.bootstrap_sql.is_some(),
            mounts,
        )?;
        build::config_map(tidb, config)
    }

    fn pod(tidb: &TiDB, inputs: &Inputs) -> Result<Pod, BuildError> {
        build::pod(tidb, inputs.bootstrap_sql.as_deref(), inputs.cluster_tls)
    }

    fn pod_inputs(inputs: &Inputs) -> serde_json::Value {
        serde_json::json!([inputs.bootstrap_sql, inputs.cluster_tls])
    }

    async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiDBStatus>, Error> {
        act(ctx, prepared).await
    }
}

/// Where PD is: the Cluster's status, else the client Services of its PD groups.
fn pd_path(ctx: &Ctx, tidb: &TiDB, cluster: &Cluster) -> Option<String> {
    let namespace = tidb.namespace().unwrap_or_default();
    let status_pd = cluster
        .status
        .as_ref()
        .map(|s| s.pd.clone())
        .unwrap_or_default();
    let pd_services = if status_pd.is_empty() {
        build::pd_services(
            cluster,
            &ctx.caches.pd_groups_of(&namespace, &tidb.spec.cluster.name),
        )
    } else {
        Vec::new()
    };
    build::pd_path(
        &status_pd,
        &namespace,
        &pd_services,
        &Dns::of_spec(&cluster.spec),
    )
}

/// The first file the Pod would mount that is missing, as a reason and a message: the
/// Cluster's bootstrap SQL (`source`, key `bootstrap-sql`), the SEM configuration
/// (`security.sem`, key `sem.json`), the auth-token JWKs (`security.authToken`, key
/// `tidb_auth_token_jwks.json`).
async fn missing_source(
    ctx: &Ctx,
    tidb: &TiDB,
    bootstrap_sql: Option<&str>,
) -> Result<Option<(&'static str, String)>, Error> {
    let namespace = tidb.namespace().unwrap_or_default();
    let cluster_name = &tidb.spec.cluster.name;
    let config_maps = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace);
    if let Some(source) = bootstrap_sql {
        let found = config_maps
            .get_opt(source)
            .await
            .map_err(Error::kube("reading the bootstrap SQL ConfigMap"))?;
        let named = format!("ConfigMap {source} named by Cluster {cluster_name} spec.bootstrapSQL");
        if let Some(message) = lacks(
            found.map(|c| keys_of(c.data)),
            &named,
            build::BOOTSTRAP_SQL_KEY,
        ) {
            return Ok(Some((REASON_BOOTSTRAP_SQL_NOT_FOUND, message)));
        }
    }
    let security = tidb.spec.template.security.as_ref();
    if let Some(sem) = security.and_then(|s| s.sem.as_ref()) {
        let name = &sem.config.name;
        let found = config_maps
            .get_opt(name)
            .await
            .map_err(Error::kube("reading the SEM ConfigMap"))?;
        let named = format!("ConfigMap {name} named by security.sem");
        if let Some(message) = lacks(found.map(|c| keys_of(c.data)), &named, build::SEM_FILE) {
            return Ok(Some((REASON_SEM_CONFIG_NOT_FOUND, message)));
        }
    }
    if let Some(token) = security.and_then(|s| s.auth_token.as_ref()) {
        let name = &token.jwks.name;
        let found = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(name)
            .await
            .map_err(Error::kube("reading the auth-token JWKs Secret"))?;
        let named = format!("Secret {name} named by security.authToken.jwks");
        let keys = found.map(|s| {
            let mut keys = keys_of(s.data);
            keys.extend(keys_of(s.string_data));
            keys
        });
        if let Some(message) = lacks(keys, &named, build::AUTH_TOKEN_FILE) {
            return Ok(Some((REASON_AUTH_TOKEN_JWKS_NOT_FOUND, message)));
        }
    }
    Ok(None)
}

/// The keys of a ConfigMap's or Secret's data.
fn keys_of<V>(data: Option<BTreeMap<String, V>>) -> BTreeSet<String> {
    data.into_iter().flat_map(|d| d.into_keys()).collect()
}

/// Why `named`, found with `keys` (or not found), cannot give the file under `key`.
fn lacks(keys: Option<BTreeSet<String>>, named: &str, key: &str) -> Option<String> {
    match keys {
        None => Some(format!("{named} does not exist")),
        Some(keys) if !keys.contains(key) => Some(format!("{named} has no key {key}")),
        Some(_) => None,
    }
}

/// What TiDB's status port said.
enum Health {
    /// Not asked: the Pod is missing, terminating or not ready.
    NotAsked,
    /// It answered, with its version string.
    Serving(String),
    /// It did not answer 2xx: the error, and the URL asked.
    Failing { url: String, error: String },
    /// It serves, in standby mode, and could not be given its keyspace: why.
    NotActivated(String),
}

/// The Pod created or restarted, and the status observed from the Pod and TiDB's `/status`.
async fn act(ctx: &Ctx, prepared: Prepared<'_, Rules>) -> Result<Finished<TiDBStatus>, Error> {
    let Prepared {
        instance: tidb,
        cluster,
        desired: desired_pod,
        pod: existing_pod,
        ..
    } = prepared;
    instance::create_pvcs(ctx, MANAGER, tidb, build::pvcs(tidb)?).await?;
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
            let url = ctx.status_url(tidb, build::status_url(tidb, &Dns::of_spec(&cluster.spec)));
            match ctx.tidb_status(tidb, &url).await {
                Ok(status) => activate(ctx, tidb, url, status.version).await,
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
    let then = Action::requeue(requeue.unwrap_or(if ready {
        HEALTH_INTERVAL
    } else {
        NOT_READY_INTERVAL
    }));
    Ok(Finished::with(status, then))
}

/// A serving TiDB given a keyspace (`mode: Normal`) that still waits in standby mode (it
/// started as `StandBy`, and the change kept its Pod) is activated with it, as the reference
/// does. A server without a keyspace is not asked: a classic TiDB has no standby mode.
async fn activate(ctx: &Ctx, tidb: &TiDB, url: String, version: String) -> Health {
    let spec = &tidb.spec.template;
    if spec.mode != TiDBMode::Normal || spec.keyspace.is_empty() {
        return Health::Serving(version);
    }
    match ctx.activate_tidb(tidb, &url).await {
        Ok(activated) => {
            if activated {
                let message = format!("activated with keyspace {}", spec.keyspace);
                ctx.events
                    .normal(tidb, REASON_ACTIVATED, "Activate", message)
                    .await;
            }
            Health::Serving(version)
        }
        Err(e) => Health::NotActivated(format!(
            "TiDB waits in standby mode and activating it with keyspace {} failed (at {url}): {e}",
            spec.keyspace
        )),
    }
}

/// A removed instance: its Pod is deleted (it leaves the Service's ready endpoints at once, then
/// sleeps in preStop and stops gracefully), then its PVCs; then the instance lets go.
async fn finalize(tidb: &TiDB, ctx: &Ctx) -> Result<Action, Error> {
    if !tidb.finalizers().iter().any(|f| f == keys::FINALIZER) {
        return Ok(Action::await_change());
    }
    match instance::remove_pod(ctx, tidb, "a TiDB server keeps no data").await? {
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
            Health::NotActivated(message) => (false, REASON_NOT_ACTIVATED, message.clone()),
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
        let mut pod = build::pod(t, None, false).unwrap();
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
        let desired = build::pod(&t, None, false).unwrap();
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
        let desired = build::pod(&newer, None, false).unwrap();
        let status = observe_status(&newer, Some(&pod), &desired, &Health::Serving("v".into()));
        let synced = conditions::find(&status.common.conditions, conditions::SYNCED).unwrap();
        assert_eq!(synced.reason, "PodNotUpToDate");
    }
}
