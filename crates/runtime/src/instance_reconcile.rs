//! The generic instance reconciler: one skeleton runs the PD, TiKV and TiDB instances (and any
//! component after them). It waits for the cache to show the controller's own last write to the
//! instance, answers a paused Cluster, hands a deleted instance to the component's removal, does
//! nothing for an instance whose group or Cluster is going, reports a missing Cluster, asks the
//! component's [`InstanceRules`] for what its objects need, applies the ConfigMap, removes the
//! Pod while compute is suspended, and otherwise lets the rules act on the Pod; whatever path the
//! reconcile takes, the instance's status is written once, at the end, by the runtime.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use operator_api::conditions::{self, reasons};
use operator_api::core::{Cluster, Instance, OfCluster, TlsSecret};
use operator_api::keys;
use tracing::Instrument;

use crate::build::{self, BuildError};
use crate::component::{CACHE_LAG_RETRY, Shared};
use crate::metrics::{InstanceLabels, Metrics};
use crate::reconcile::{self, Error, InstanceStart, Started, StatusKind};
use crate::tls::{self, SecretMount};
use crate::{cache, expect, failover, group, instance};

/// How a reconcile of an instance ends: the status to write, if any, and when to look again.
#[derive(Clone, Debug)]
pub struct Finished<S> {
    /// The status to write (nothing is written when `None` or when it is what the object has).
    pub status: Option<S>,
    /// When to look again.
    pub then: Action,
    /// The instance's resourceVersion after the rules' own writes to it in this reconcile (an
    /// annotation), so the status write is not refused as stale because of them.
    pub version: Option<String>,
}

impl<S> Finished<S> {
    /// Write `status`, then `then`.
    pub fn with(status: S, then: Action) -> Self {
        Finished {
            status: Some(status),
            then,
            version: None,
        }
    }

    /// Write nothing; `then`.
    pub fn then(then: Action) -> Self {
        Finished {
            status: None,
            then,
            version: None,
        }
    }

    /// The same, written as of the instance's `version`.
    pub fn as_of(mut self, version: Option<String>) -> Self {
        self.version = version;
        self
    }

    /// The instance cannot proceed: `Ready` and `Synced` false for `reason`, then `then`.
    pub fn blocked<K>(instance: &K, blocked: Blocked) -> Self
    where
        K: StatusKind<StatusOf = S>,
        S: Clone + Default,
    {
        let status = group::status_blocked(instance, blocked.reason, &blocked.message);
        Finished::with(status, blocked.then)
    }
}

/// Why an instance cannot proceed yet, and when it looks again.
#[derive(Clone, Debug)]
pub struct Blocked {
    /// The reason of its `Ready` and `Synced` conditions.
    pub reason: &'static str,
    /// What the user reads.
    pub message: String,
    /// When to look again.
    pub then: Action,
}

/// What an instance's rules act on once the skeleton has done its part.
pub struct Prepared<'a, R: InstanceRules> {
    /// The instance.
    pub instance: &'a R::Instance,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its Cluster.
    pub cluster: &'a Cluster,
    /// What [`InstanceRules::inputs`] found.
    pub inputs: R::Inputs,
    /// The Pod the instance asks for.
    pub desired: Pod,
    /// The Pod that exists, from the cache.
    pub pod: Option<Pod>,
}

/// A component's rules for its instances: what its objects need, how they are built, and what
/// it does with its Pod and its member of the component (restart, online config, status).
pub trait InstanceRules: Sized + Send + Sync + 'static {
    /// The instance kind.
    type Instance: StatusKind<StatusOf: Send + Sync>
        + OfCluster
        + Instance
        + serde::Serialize
        + Send
        + Sync
        + 'static;
    /// The group kind.
    type Group: Resource<DynamicType = ()> + Clone + Send + Sync + 'static;
    /// The controller's context.
    type Ctx: Deref<Target = Shared> + Send + Sync + 'static;
    /// What the instance's objects are built from besides the instance (PD's address, the
    /// initial members).
    type Inputs: Send + Sync;

    /// The field manager of the controller's writes.
    const MANAGER: &'static str;
    /// The metric label of the reconcile (`pd`, `tikv`).
    const METRIC: &'static str;
    /// What a suspended instance keeps, for its status message.
    const KEPT: &'static str;

    /// The controller's cache of the instances.
    fn instances(ctx: &Self::Ctx) -> &Store<Self::Instance>;

    /// The controller's cache of the groups.
    fn groups(ctx: &Self::Ctx) -> &Store<Self::Group>;

    /// A deleted instance: its removal from the component, then its Pod and PVCs (`alone`: only
    /// it goes, not its group or Cluster), then its finalizer.
    fn finalize(
        ctx: &Self::Ctx,
        instance: &Self::Instance,
        start: &Started,
        alone: bool,
    ) -> impl Future<Output = Result<Finished<<Self::Instance as StatusKind>::StatusOf>, Error>> + Send;

    /// What the objects need besides the instance, or why the instance waits.
    fn inputs(
        ctx: &Self::Ctx,
        instance: &Self::Instance,
        cluster: &Cluster,
        group: Option<&Self::Group>,
        pod: Option<&Pod>,
    ) -> impl Future<Output = Result<Result<Self::Inputs, Blocked>, Error>> + Send;

    /// The instance's ConfigMap; the addresses in it are named as its `cluster`'s `spec.dns`
    /// asks, and it names the certificate files of `mounts` (see [`InstanceRules::tls_mounts`]).
    fn config_map(
        instance: &Self::Instance,
        cluster: &Cluster,
        inputs: &Self::Inputs,
        mounts: &[SecretMount],
    ) -> Result<ConfigMap, BuildError>;

    /// Where the cluster TLS Secret is mounted in the component's container.
    const CLUSTER_TLS_DIR: &'static str;

    /// The instance's own choice of cluster TLS Secrets (`spec.security.tls.cluster`), if any.
    fn cluster_tls(_instance: &Self::Instance) -> Option<&TlsSecret> {
        None
    }

    /// The Secrets the component mounts besides the cluster TLS one (TiDB's MySQL certificate
    /// and session-token signing certificate).
    fn more_mounts(
        _instance: &Self::Instance,
        _cluster: &Cluster,
        _group: &str,
    ) -> Vec<SecretMount> {
        Vec::new()
    }

    /// Every Secret the instance mounts: its group's cluster TLS Secret when `cluster` has TLS
    /// on, and [`InstanceRules::more_mounts`].
    fn tls_mounts(instance: &Self::Instance, cluster: &Cluster, group: &str) -> Vec<SecretMount> {
        let mut mounts = Vec::new();
        if tls::enabled(cluster) {
            mounts.push(SecretMount::cluster(
                group,
                <Self::Instance as Instance>::COMPONENT,
                Self::CLUSTER_TLS_DIR,
                Self::cluster_tls(instance),
            ));
        }
        mounts.extend(Self::more_mounts(instance, cluster, group));
        mounts
    }

    /// The instance's Pod.
    fn pod(instance: &Self::Instance, inputs: &Self::Inputs) -> Result<Pod, BuildError>;

    /// Everything of `inputs` that [`InstanceRules::pod`] reads (`Null` when it reads nothing):
    /// part of the hash that tells a Pod built from other inputs from one only rendered
    /// differently ([`build::pod_is_current`]). Leaving out what the Pod is built from would keep
    /// a Pod whose operator version also renders differently from restarting for it.
    fn pod_inputs(inputs: &Self::Inputs) -> serde_json::Value;

    /// The status of a suspended instance, from the runtime's (a PD is no longer leader, say).
    fn suspended(
        status: <Self::Instance as StatusKind>::StatusOf,
    ) -> <Self::Instance as StatusKind>::StatusOf {
        status
    }

    /// Everything else: the Pod created or restarted, the component told, the status observed.
    fn act(
        ctx: &Self::Ctx,
        prepared: Prepared<'_, Self>,
    ) -> impl Future<Output = Result<Finished<<Self::Instance as StatusKind>::StatusOf>, Error>> + Send;
}

/// Reconciles one instance of `R`'s component.
pub async fn reconcile<R: InstanceRules>(
    instance: Arc<R::Instance>,
    ctx: Arc<R::Ctx>,
) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        kind = %R::Instance::kind(&()),
        namespace = instance.namespace().unwrap_or_default(),
        instance = instance.name_any(),
        cluster = instance.cluster_name(),
    );
    let run = async {
        let finished = run::<R>(&instance, &ctx).await?;
        // The instance as this reconcile leaves it: the status it writes (or the one it had),
        // with the `FailedOver` condition its annotations call for. The gauge shows it.
        let mut after = instance.as_ref().clone();
        let mut write = finished.status.is_some();
        if let Some(status) = finished.status {
            *after.status_mut() = Some(status);
        }
        write |= set_failover_condition(&mut after);
        observe_health(&ctx.metrics, R::METRIC, &after);
        if write && let Some(status) = after.status() {
            // Written against the instance as read (or as this reconcile last wrote it), so
            // that an unchanged status is not written again.
            let current = match &finished.version {
                Some(version) => {
                    let mut read = instance.as_ref().clone();
                    read.meta_mut().resource_version = Some(version.clone());
                    std::borrow::Cow::Owned(read)
                }
                None => std::borrow::Cow::Borrowed(instance.as_ref()),
            };
            reconcile::write_status(&ctx, current.as_ref(), status).await?;
        }
        Ok(finished.then)
    };
    reconcile::measured(&ctx.metrics, R::METRIC, run.instrument(span)).await
}

async fn run<R: InstanceRules>(
    instance: &R::Instance,
    ctx: &R::Ctx,
) -> Result<Finished<<R::Instance as StatusKind>::StatusOf>, Error> {
    let namespace = instance.namespace().unwrap_or_default();
    // The cached copy may not show this controller's own last write to the instance yet; the
    // status built here carries on from it, so wait for it.
    if ctx
        .expectations
        .lagging(&expect::key_of(instance), R::instances(ctx), &namespace)
        .is_some()
    {
        return Ok(Finished::then(Action::requeue(CACHE_LAG_RETRY)));
    }
    let start = match reconcile::instance_start(ctx, instance).await? {
        InstanceStart::Go(start) => start,
        InstanceStart::Done(then) => return Ok(Finished::then(then)),
    };
    let group = cache::get(R::groups(ctx), &start.namespace, &start.group);
    if instance.meta().deletion_timestamp.is_some() {
        let alone = start.leaves_alone(group.as_ref());
        return R::finalize(ctx, instance, &start, alone).await;
    }
    let Some(cluster) = start.cluster.as_deref() else {
        return Ok(Finished::blocked(instance, cluster_missing(instance)));
    };
    if !start.leaves_alone(group.as_ref()) {
        // Its group or Cluster is being removed: the instance goes with them; create nothing.
        return Ok(Finished::then(Action::await_change()));
    }
    let name = instance.name_any();
    let pod = cache::get(&ctx.caches.pods, &namespace, &name);
    let inputs = match R::inputs(ctx, instance, cluster, group.as_ref(), pod.as_ref()).await? {
        Ok(inputs) => inputs,
        Err(blocked) => return Ok(Finished::blocked(instance, blocked)),
    };
    let mut mounts = R::tls_mounts(instance, cluster, &start.group);
    if let Some(missing) = tls::check(&ctx.client, &namespace, &mut mounts)
        .await
        .map_err(Error::kube("reading the TLS Secrets of an instance"))?
    {
        // A suspension still takes the Pod away; nothing else goes on without the Secret.
        if cluster.spec.suspends_compute() {
            let (status, then) = instance::suspend(ctx, instance, pod.as_ref(), R::KEPT).await?;
            return Ok(Finished::with(R::suspended(status), then));
        }
        return Ok(secret_missing(ctx, instance, &namespace, &missing).await);
    }
    let built = R::config_map(instance, cluster, &inputs, &mounts).and_then(|cm| {
        let mut pod = R::pod(instance, &inputs)?;
        if !mounts.is_empty() {
            tls::mount(&mut pod, <R::Instance as Instance>::COMPONENT, &mounts);
            build::rehash_pod_spec(&mut pod);
        }
        build::add_test_env(&mut pod);
        build::stamp_inputs_hash(&mut pod, pod_inputs_hash::<R>(instance, &inputs, &mounts));
        Ok((cm, pod))
    });
    let (config_map, desired) = match built {
        Ok(built) => built,
        Err(error) => return Ok(refused_spec(ctx, instance, &error).await),
    };
    instance::apply_config_map(ctx, R::MANAGER, instance, config_map).await?;
    if cluster.spec.suspends_compute() {
        let (status, then) = instance::suspend(ctx, instance, pod.as_ref(), R::KEPT).await?;
        return Ok(Finished::with(R::suspended(status), then));
    }
    let prepared = Prepared {
        instance,
        namespace: &namespace,
        cluster,
        inputs,
        desired,
        pod,
    };
    R::act(ctx, prepared).await
}

/// The hash of what an instance's Pod spec is built from: the instance's spec and restart
/// annotations ([`build::RESTART_ANNOTATIONS`]), what the builder reads of `inputs`, and the
/// Secrets mounted. The rest of the instance's metadata only labels and annotates the Pod, which
/// restarts nothing; its other annotations are the operator's bookkeeping, which comes and goes
/// under a running Pod.
fn pod_inputs_hash<R: InstanceRules>(
    instance: &R::Instance,
    inputs: &R::Inputs,
    mounts: &[SecretMount],
) -> String {
    let spec = serde_json::to_value(instance)
        .ok()
        .and_then(|mut object| object.get_mut("spec").map(serde_json::Value::take))
        .map(pruned);
    let annotations = instance.annotations();
    let restart: Vec<(&str, Option<&String>)> = build::RESTART_ANNOTATIONS
        .iter()
        .map(|key| (*key, annotations.get(*key)))
        .collect();
    crate::revision::hash_of(&(spec, restart, R::pod_inputs(inputs), mounts))
}

/// `value` without the nulls, empty strings, lists and maps, and `false`s in it: what an API
/// field added with a default looks like before anyone sets it, so that a newer operator that
/// knows the field hashes an unchanged instance as the older one did.
fn pruned(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let empty = |v: &Value| match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| !empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(pruned).collect()),
        other => other,
    }
}

/// Gives `instance` the `FailedOver` condition its failover annotations call for
/// ([`failover::condition`]), or takes it away; whether that changed its status.
fn set_failover_condition<K: StatusKind>(instance: &mut K) -> bool {
    let wanted = failover::condition(instance.meta().annotations.as_ref());
    match wanted {
        Some((holds, reason, message)) => conditions::Look::now(instance.meta().generation).set(
            instance.conditions_mut(),
            failover::CONDITION_FAILED_OVER,
            holds,
            reason,
            message,
        ),
        None => {
            let before = instance.conditions().len();
            if before > 0 {
                instance
                    .conditions_mut()
                    .retain(|c| c.type_ != failover::CONDITION_FAILED_OVER);
            }
            instance.conditions().len() != before
        }
    }
}

/// Sets the instance's abnormal-instance gauge from its status after this reconcile, or removes
/// its series once it is being deleted: its removal has metrics and alerts of its own, and a
/// gone instance must not keep an alert firing.
fn observe_health<K>(metrics: &Metrics, component: &str, instance: &K)
where
    K: StatusKind + OfCluster,
{
    let meta = instance.meta();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    if meta.deletion_timestamp.is_some() {
        metrics.forget_instance(namespace, component, name);
        return;
    }
    let group = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::LABEL_GROUP))
        .map(String::as_str)
        .unwrap_or_default();
    let who = InstanceLabels {
        namespace,
        cluster: instance.cluster_name(),
        component,
        group,
        instance: name,
    };
    metrics.observe_instance(&who, |condition| {
        conditions::find(instance.conditions(), condition)
            .is_some_and(|c| c.status == conditions::STATUS_FALSE)
    });
}

/// An instance whose spec cannot be turned into objects (a config that is not TOML, say):
/// `InvalidSpec` with the builder's message, until the spec changes.
pub fn invalid_spec(error: &BuildError) -> Blocked {
    Blocked {
        reason: reasons::INVALID_SPEC,
        message: error.to_string(),
        then: Action::await_change(),
    }
}

/// An instance whose spec cannot be turned into objects ([`invalid_spec`]), with a Warning
/// Event when that is news (not on every look): a key the operator owns set in the user's
/// config, say.
async fn refused_spec<K>(ctx: &Shared, instance: &K, error: &BuildError) -> Finished<K::StatusOf>
where
    K: StatusKind + Resource<DynamicType = ()>,
    K::StatusOf: Clone + Default,
{
    let blocked = invalid_spec(error);
    let known = conditions::find(instance.conditions(), conditions::READY)
        .is_some_and(|c| c.reason == blocked.reason && c.message == blocked.message);
    if !known {
        ctx.events
            .warning(instance, blocked.reason, "Refuse", blocked.message.clone())
            .await;
    }
    Finished::blocked(instance, blocked)
}

/// How long an instance held for a TLS Secret waits before it looks again (Secrets are not
/// watched, so nothing wakes it when one appears).
pub const SECRET_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// An instance whose TLS Secret is missing or lacks a key: held, with no Pod created or
/// changed, `Ready` and `Synced` false for `TLSSecretMissing` naming the Secret and the key,
/// and a warning Event when that is news (not on every look).
async fn secret_missing<K>(
    ctx: &Shared,
    instance: &K,
    namespace: &str,
    missing: &tls::Missing,
) -> Finished<K::StatusOf>
where
    K: StatusKind + Resource<DynamicType = ()>,
    K::StatusOf: Clone + Default,
{
    let message = missing.message(namespace);
    let known = conditions::find(instance.conditions(), conditions::READY)
        .is_some_and(|c| c.reason == reasons::TLS_SECRET_MISSING && c.message == message);
    if !known {
        ctx.events
            .warning(
                instance,
                reasons::TLS_SECRET_MISSING,
                "Hold",
                message.clone(),
            )
            .await;
    }
    Finished::blocked(
        instance,
        Blocked {
            reason: reasons::TLS_SECRET_MISSING,
            message,
            then: Action::requeue(SECRET_RETRY),
        },
    )
}

/// An instance whose Cluster does not exist: `ClusterNotFound`, and a look again in 30 s.
fn cluster_missing<K: Resource + OfCluster>(instance: &K) -> Blocked {
    Blocked {
        reason: reasons::CLUSTER_NOT_FOUND,
        message: format!(
            "Cluster {} does not exist in namespace {}",
            instance.cluster_name(),
            instance.meta().namespace.as_deref().unwrap_or_default()
        ),
        then: Action::requeue(std::time::Duration::from_secs(30)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pruned;

    #[test]
    fn defaults_a_newer_api_adds_leave_the_hashed_spec_as_it_was() {
        let older = json!({"version": "v8.5.2", "replicas": 3, "config": "a = 1"});
        let newer = json!({
            "version": "v8.5.2", "replicas": 3, "config": "a = 1",
            "added": null, "list": [], "map": {}, "flag": false, "text": "",
            "nested": {"inner": [], "off": false}
        });
        assert_eq!(pruned(newer), older);
        // What is set stays: zero, true, and non-empty values.
        let set = json!({"n": 0, "on": true, "items": [{"a": "", "b": 1}]});
        assert_eq!(
            pruned(set),
            json!({"n": 0, "on": true, "items": [{"b": 1}]})
        );
    }
}
