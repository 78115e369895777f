//! The Prometheus metrics every controller binary exports on `/metrics`: reconciles, API requests,
//! leadership, instances not healthy, and requests to PD.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::RuntimeError;

/// Name of the reconcile counter, labelled `controller` and `result` (`success` | `error`).
pub const RECONCILE_TOTAL: &str = "tidb_operator_reconcile_total";
/// Name of the reconcile error counter, labelled `controller` and `error` (a short category).
pub const RECONCILE_ERRORS_TOTAL: &str = "tidb_operator_reconcile_errors_total";
/// Name of the reconcile duration histogram (seconds), labelled `controller`.
pub const RECONCILE_DURATION_SECONDS: &str = "tidb_operator_reconcile_duration_seconds";
/// Name of the Kubernetes API request counter, labelled `verb`, `resource` and `code`.
pub const API_REQUESTS_TOTAL: &str = "tidb_operator_api_requests_total";
/// Name of the counter of writes the leadership fence refused, labelled `verb` and `resource`.
pub const FENCED_WRITES_TOTAL: &str = "tidb_operator_fenced_writes_total";
/// Name of the leadership gauge (1 while this replica leads, else 0), labelled `lease`.
pub const LEADER: &str = "tidb_operator_leader";
/// Name of the instance gauge, labelled `kind`, `condition` and `status`.
pub const INSTANCES: &str = "tidb_operator_instances";
/// Name of the gauge that is 1 while a condition of an instance is `False`, else 0 (the
/// reference operator's metric, with its name and labels: [`ABNORMAL_INSTANCE_LABELS`]).
pub const ABNORMAL_INSTANCE: &str = "tidb_operator_abnormal_instance";
/// The labels of [`ABNORMAL_INSTANCE`], in this order.
pub const ABNORMAL_INSTANCE_LABELS: [&str; 6] = [
    "namespace",
    "cluster",
    "component",
    "group",
    "instance",
    "condition",
];
/// The instance conditions [`ABNORMAL_INSTANCE`] reports.
pub const ABNORMAL_CONDITIONS: [&str; 2] = [
    operator_api::conditions::READY,
    operator_api::conditions::SYNCED,
];
/// Name of the counter of requests to PD's HTTP API, labelled `method`, `endpoint` (the first
/// segment of the API path) and `result` (one of [`pd_client::PdClient::OUTCOMES`]).
pub const PD_REQUESTS_TOTAL: &str = "tidb_operator_pd_requests_total";

/// Name of the counter of waits for a store's leaders to move away before its Pod restarts,
/// labelled `component` (`tikv`) and `outcome` (`evicted`: every leader left; `timed_out`: the
/// Pod restarted with leaders left).
pub const LEADER_EVICTION_WAITS_TOTAL: &str = "tidb_operator_leader_eviction_waits_total";
/// Name of the counter of store removals asked of PD (scale-in or deletion), labelled
/// `component` (`tikv`) and `result` (`started`: PD took the store offline; `refused`: PD
/// answered no).
pub const STORE_REMOVALS_TOTAL: &str = "tidb_operator_store_removals_total";

/// Name of the gauge of a group's instances that do not run its current template yet (its
/// status' `replicas - updatedReplicas`), labelled `namespace`, `cluster`, `component` and
/// `group`: above 0 while a roll is in progress.
pub const GROUP_OUTDATED_REPLICAS: &str = "tidb_operator_group_outdated_replicas";

/// Name of the counter of failovers, labelled `component` and `event` (`started`: a failed
/// instance got a replacement; `completed`: failover took a failed instance out of its group).
pub const FAILOVERS_TOTAL: &str = "tidb_operator_failovers_total";
/// Name of the gauge of a group's failed instances (failed for at least the failover period, or
/// replaced and not recovered), labelled `namespace`, `cluster`, `component` and `group`.
pub const FAILED_INSTANCES: &str = "tidb_operator_failed_instances";

/// Every metric family a controller exports (a histogram's series add `_bucket`, `_sum` and
/// `_count` to its name).
pub const NAMES: [&str; 15] = [
    RECONCILE_TOTAL,
    RECONCILE_ERRORS_TOTAL,
    RECONCILE_DURATION_SECONDS,
    API_REQUESTS_TOTAL,
    FENCED_WRITES_TOTAL,
    LEADER,
    INSTANCES,
    ABNORMAL_INSTANCE,
    PD_REQUESTS_TOTAL,
    LEADER_EVICTION_WAITS_TOTAL,
    STORE_REMOVALS_TOTAL,
    GROUP_OUTDATED_REPLICAS,
    FAILOVERS_TOTAL,
    FAILED_INSTANCES,
    crate::build_info::BUILD_INFO,
];

/// The verbs that change objects, as counted in [`API_REQUESTS_TOTAL`].
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Bucket bounds of the reconcile duration histogram, in seconds.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The metrics of one controller binary, in a registry of their own.
///
/// Cloning is cheap (an `Arc`); every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reconcile_total: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_duration: HistogramVec,
    api_requests: IntCounterVec,
    fenced_writes: IntCounterVec,
    leader: IntGaugeVec,
    instances: IntGaugeVec,
    abnormal_instance: IntGaugeVec,
    /// The label values of the abnormal-instance series of each instance, by (namespace,
    /// component, instance), so they can be removed when the instance goes even if its cluster
    /// or group label changed meanwhile.
    abnormal_series: Mutex<BTreeMap<InstanceKey, BTreeSet<[String; 6]>>>,
    pd_requests: IntCounterVec,
    leader_eviction_waits: IntCounterVec,
    store_removals: IntCounterVec,
    group_outdated: GroupGauge,
    failovers: IntCounterVec,
    failed_instances: GroupGauge,
}

/// A gauge with one series per group (labels `namespace`, `cluster`, `component`, `group`),
/// removed when the group goes; a group's series under other labels is replaced.
struct GroupGauge {
    gauge: IntGaugeVec,
    /// The label values of each group's series, by (namespace, component, group).
    series: Mutex<BTreeMap<InstanceKey, [String; 4]>>,
}

impl GroupGauge {
    fn new(gauge: IntGaugeVec) -> Self {
        GroupGauge {
            gauge,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn set(&self, [namespace, cluster, component, group]: [&str; 4], value: Option<i64>) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (
            namespace.to_string(),
            component.to_string(),
            group.to_string(),
        );
        let labels = [namespace, cluster, component, group];
        if let Some(old) = series.get(&key)
            && (value.is_none() || *old != labels.map(str::to_string))
        {
            let old: Vec<&str> = old.iter().map(String::as_str).collect();
            let _ = self.gauge.remove_label_values(&old);
            series.remove(&key);
        }
        if let Some(value) = value {
            self.gauge.with_label_values(&labels).set(value);
            series.insert(key, labels.map(str::to_string));
        }
    }
}

type InstanceKey = (String, String, String);

/// Who an instance is, as [`ABNORMAL_INSTANCE`] labels it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceLabels<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its Cluster.
    pub cluster: &'a str,
    /// Its component (`pd`, `tikv`, `tidb`).
    pub component: &'a str,
    /// Its group.
    pub group: &'a str,
    /// Its name.
    pub instance: &'a str,
}

impl InstanceLabels<'_> {
    fn key(&self) -> InstanceKey {
        (
            self.namespace.to_string(),
            self.component.to_string(),
            self.instance.to_string(),
        )
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn register<M>(registry: &Registry, name: &'static str, metric: M) -> Result<M, RuntimeError>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry
        .register(Box::new(metric.clone()))
        .map_err(|source| RuntimeError::Metrics { name, source })?;
    Ok(metric)
}

fn counter(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RuntimeError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .map_err(|source| RuntimeError::Metrics { name, source })?;
    register(registry, name, metric)
}

fn gauge(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, RuntimeError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)
        .map_err(|source| RuntimeError::Metrics { name, source })?;
    register(registry, name, metric)
}

impl Metrics {
    /// A new registry with every metric of this module registered (and no samples yet).
    pub fn new() -> Result<Metrics, RuntimeError> {
        let registry = Registry::new();
        let reconcile_total = counter(
            &registry,
            RECONCILE_TOTAL,
            "Reconciles finished, by controller and result (success or error).",
            &["controller", "result"],
        )?;
        let reconcile_errors = counter(
            &registry,
            RECONCILE_ERRORS_TOTAL,
            "Reconciles that failed, by controller and error category.",
            &["controller", "error"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                RECONCILE_DURATION_SECONDS,
                "Time one reconcile took, in seconds, by controller.",
            )
            .buckets(RECONCILE_BUCKETS.to_vec()),
            &["controller"],
        )
        .map_err(|source| RuntimeError::Metrics {
            name: RECONCILE_DURATION_SECONDS,
            source,
        })?;
        let reconcile_duration =
            register(&registry, RECONCILE_DURATION_SECONDS, reconcile_duration)?;
        let api_requests = counter(
            &registry,
            API_REQUESTS_TOTAL,
            "Requests to the Kubernetes API, by verb, resource and HTTP status code \
             (\"error\" when no response came back). A watch counts once, when it starts.",
            &["verb", "resource", "code"],
        )?;
        let fenced_writes = counter(
            &registry,
            FENCED_WRITES_TOTAL,
            "Writes to the Kubernetes API not sent because this replica's leadership may have \
             ended (no Lease renewal within the renew deadline), by verb and resource.",
            &["verb", "resource"],
        )?;
        let leader = gauge(
            &registry,
            LEADER,
            "1 while this replica holds the leader-election Lease, else 0.",
            &["lease"],
        )?;
        let instances = gauge(
            &registry,
            INSTANCES,
            "Instances (PD, TiKV, TiDB, ...) by kind and by the status of one of their conditions.",
            &["kind", "condition", "status"],
        )?;
        let abnormal_instance = gauge(
            &registry,
            ABNORMAL_INSTANCE,
            "1 while the named condition of the instance is False, else 0; the series exists while \
             the operator manages the instance. Alert on `== 1` held `for` a while.",
            &ABNORMAL_INSTANCE_LABELS,
        )?;
        let pd_requests = counter(
            &registry,
            PD_REQUESTS_TOTAL,
            "Requests to PD's HTTP API, by method, endpoint (first segment of the API path) and \
             result (success, status: a non-2xx answer, unreachable, error).",
            &["method", "endpoint", "result"],
        )?;
        let leader_eviction_waits = counter(
            &registry,
            LEADER_EVICTION_WAITS_TOTAL,
            "Waits for a store's leaders to leave before its Pod restarts, by component and \
             outcome (evicted, timed_out).",
            &["component", "outcome"],
        )?;
        let store_removals = counter(
            &registry,
            STORE_REMOVALS_TOTAL,
            "Store removals asked of PD, by component and result (started, refused).",
            &["component", "result"],
        )?;
        let group_outdated = gauge(
            &registry,
            GROUP_OUTDATED_REPLICAS,
            "Instances of a group not yet on its current template (replicas - updatedReplicas of \
             its status); above 0 while a roll is in progress.",
            &["namespace", "cluster", "component", "group"],
        )?;
        let failovers = counter(
            &registry,
            FAILOVERS_TOTAL,
            "Failovers, by component and event (started: a failed instance got a replacement; \
             completed: failover took a failed instance out of its group).",
            &["component", "event"],
        )?;
        let failed_instances = gauge(
            &registry,
            FAILED_INSTANCES,
            "Failed instances of a group: failed for at least the failover period, or replaced \
             and not recovered.",
            &["namespace", "cluster", "component", "group"],
        )?;
        crate::build_info::register(&registry)?;
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                reconcile_total,
                reconcile_errors,
                reconcile_duration,
                api_requests,
                fenced_writes,
                leader,
                instances,
                abnormal_instance,
                abnormal_series: Mutex::new(BTreeMap::new()),
                pd_requests,
                leader_eviction_waits,
                store_removals,
                group_outdated: GroupGauge::new(group_outdated),
                failovers,
                failed_instances: GroupGauge::new(failed_instances),
            }),
        })
    }

    /// The registry, for a controller that wants to export metrics of its own beside these.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Starts timing one reconcile of `controller`. Finish the returned guard with
    /// [`ReconcileTimer::finish`] or [`ReconcileTimer::finish_error`].
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            controller: controller.to_string(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Counts one request to the Kubernetes API. The client made by
    /// [`client`](crate::client::client) calls this for every request.
    pub fn api_request(&self, verb: &str, resource: &str, code: &str) {
        self.inner
            .api_requests
            .with_label_values(&[verb, resource, code])
            .inc();
    }

    /// Counts one write the leadership fence refused.
    pub fn fenced_write(&self, verb: &str, resource: &str) {
        self.inner
            .fenced_writes
            .with_label_values(&[verb, resource])
            .inc();
    }

    /// Writes the leadership fence refused so far (for tests).
    pub fn fenced_writes(&self) -> u64 {
        use prometheus::core::Collector;
        self.inner
            .fenced_writes
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            // Counters hold whole numbers; the cast cannot lose anything we count.
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }

    /// Requests with this verb so far, summed over resources and codes (for tests).
    pub fn api_requests(&self, verb: &str) -> u64 {
        self.sum_api_requests(|v, _| v == verb)
    }

    /// Requests with this verb on this resource (for example `pds/status`) so far, summed over
    /// codes (for tests).
    pub fn api_requests_on(&self, verb: &str, resource: &str) -> u64 {
        self.sum_api_requests(|v, r| v == verb && r == resource)
    }

    /// Requests that change objects ([`WRITE_VERBS`]) so far, summed over every label (for tests:
    /// a reconcile with nothing to change makes none).
    pub fn api_writes(&self) -> u64 {
        self.sum_api_requests(|v, _| WRITE_VERBS.contains(&v))
    }

    fn sum_api_requests(&self, matches: impl Fn(&str, &str) -> bool) -> u64 {
        use prometheus::core::Collector;
        let mut total = 0;
        for family in self.inner.api_requests.collect() {
            for metric in family.get_metric() {
                let mut verb = "";
                let mut resource = "";
                for label in metric.get_label() {
                    match label.name() {
                        "verb" => verb = label.value(),
                        "resource" => resource = label.value(),
                        _ => {}
                    }
                }
                if matches(verb, resource) {
                    // Counters hold whole numbers; the cast cannot lose anything we count.
                    total += metric.get_counter().get_value() as u64;
                }
            }
        }
        total
    }

    /// Sets the leadership gauge of `lease`: 1 while leading, 0 while standing by.
    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.inner
            .leader
            .with_label_values(&[lease])
            .set(i64::from(leading));
    }

    /// The leadership gauge of `lease` (for tests).
    pub fn leader(&self, lease: &str) -> bool {
        self.inner.leader.with_label_values(&[lease]).get() == 1
    }

    /// Sets how many instances of `kind` (for example `PD`) have `condition` (for example `Ready`)
    /// at `status` (`True`, `False`, `Unknown`). Controllers call this after each pass over their
    /// instances, for every combination they track, including zero counts.
    pub fn set_instances(&self, kind: &str, condition: &str, status: &str, count: i64) {
        self.inner
            .instances
            .with_label_values(&[kind, condition, status])
            .set(count);
    }

    /// Sets [`ABNORMAL_INSTANCE`] for `who`: 1 for each of [`ABNORMAL_CONDITIONS`] that
    /// `is_false` says is `False`, else 0 (a condition that is `True`, `Unknown` or absent is not
    /// abnormal, as in the reference operator). Series the instance had under other cluster or
    /// group labels are removed.
    pub fn observe_instance(&self, who: &InstanceLabels<'_>, is_false: impl Fn(&str) -> bool) {
        let mut series = self
            .inner
            .abnormal_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = series.entry(who.key()).or_default();
        let mut now = BTreeSet::new();
        for condition in ABNORMAL_CONDITIONS {
            let labels = [
                who.namespace,
                who.cluster,
                who.component,
                who.group,
                who.instance,
                condition,
            ];
            self.inner
                .abnormal_instance
                .with_label_values(&labels)
                .set(i64::from(is_false(condition)));
            now.insert(labels.map(str::to_string));
        }
        for stale in known.difference(&now) {
            let labels: Vec<&str> = stale.iter().map(String::as_str).collect();
            // Absent already is what we want.
            let _ = self.inner.abnormal_instance.remove_label_values(&labels);
        }
        *known = now;
    }

    /// Removes every [`ABNORMAL_INSTANCE`] series of an instance that is gone (or no longer this
    /// replica's to report), so no alert fires for an instance that does not exist.
    pub fn forget_instance(&self, namespace: &str, component: &str, instance: &str) {
        let mut series = self
            .inner
            .abnormal_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (
            namespace.to_string(),
            component.to_string(),
            instance.to_string(),
        );
        for labels in series.remove(&key).unwrap_or_default() {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = self.inner.abnormal_instance.remove_label_values(&labels);
        }
    }

    /// The [`ABNORMAL_INSTANCE`] value of one series, `None` when there is none (for tests).
    pub fn abnormal(&self, who: &InstanceLabels<'_>, condition: &str) -> Option<i64> {
        let series = self
            .inner
            .abnormal_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let labels = [
            who.namespace,
            who.cluster,
            who.component,
            who.group,
            who.instance,
            condition,
        ];
        let present = series
            .get(&who.key())
            .is_some_and(|known| known.contains(&labels.map(str::to_string)));
        present.then(|| {
            self.inner
                .abnormal_instance
                .with_label_values(&labels)
                .get()
        })
    }

    /// Counts one request to PD (see [`PD_REQUESTS_TOTAL`]).
    pub fn pd_request(&self, method: &str, endpoint: &str, result: &str) {
        self.inner
            .pd_requests
            .with_label_values(&[method, endpoint, result])
            .inc();
    }

    /// Counts a finished wait for a store's leaders to leave before its Pod restarts:
    /// `timed_out` when the Pod restarted with leaders left.
    pub fn leader_eviction_finished(&self, component: &str, timed_out: bool) {
        let outcome = if timed_out { "timed_out" } else { "evicted" };
        self.inner
            .leader_eviction_waits
            .with_label_values(&[component, outcome])
            .inc();
    }

    /// Counts a store removal asked of PD: `started` when PD took the store offline, else
    /// refused.
    pub fn store_removal(&self, component: &str, started: bool) {
        let result = if started { "started" } else { "refused" };
        self.inner
            .store_removals
            .with_label_values(&[component, result])
            .inc();
    }

    /// Sets [`GROUP_OUTDATED_REPLICAS`] of a group, or removes its series when `outdated` is
    /// `None` (the group is being deleted). A group has one series: one under other labels is
    /// replaced.
    pub fn observe_group(
        &self,
        namespace: &str,
        cluster: &str,
        component: &str,
        group: &str,
        outdated: Option<i64>,
    ) {
        self.inner
            .group_outdated
            .set([namespace, cluster, component, group], outdated);
    }

    /// Sets [`FAILED_INSTANCES`] of a group (`[namespace, cluster, component, group]`), or
    /// removes its series when `failed` is `None` (the group is being deleted).
    pub fn observe_failed(&self, group: [&str; 4], failed: Option<i64>) {
        self.inner.failed_instances.set(group, failed);
    }

    /// Counts a failover `event` (`started`, `completed`) of `component`.
    pub fn failover(&self, component: &str, event: &str) {
        self.inner
            .failovers
            .with_label_values(&[component, event])
            .inc();
    }

    /// An observer for [`pd_client::PdClient::observed`] that counts into these metrics.
    pub fn pd_observer(&self) -> pd_client::RequestObserver {
        let metrics = self.clone();
        Arc::new(move |method: &str, endpoint: &str, result: &str| {
            metrics.pd_request(method, endpoint, result);
        })
    }

    /// Every metric in the Prometheus text exposition format, as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let families = self.inner.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(error = %e, "cannot encode metrics");
            return format!("# cannot encode metrics: {e}\n");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }

    fn record_reconcile(&self, controller: &str, seconds: f64, outcome: Option<Result<(), &str>>) {
        let inner = &self.inner;
        inner
            .reconcile_duration
            .with_label_values(&[controller])
            .observe(seconds);
        match outcome {
            None => {}
            Some(Ok(())) => inner
                .reconcile_total
                .with_label_values(&[controller, "success"])
                .inc(),
            Some(Err(category)) => {
                inner
                    .reconcile_total
                    .with_label_values(&[controller, "error"])
                    .inc();
                inner
                    .reconcile_errors
                    .with_label_values(&[controller, category])
                    .inc();
            }
        }
    }
}

/// Times one reconcile, from [`Metrics::reconcile_started`] until it is finished.
///
/// Finishing records the duration and the result. A guard dropped unfinished (the reconcile was
/// cancelled at shutdown, or panicked) records only its duration: it counts neither as a success
/// nor as an error, because its outcome is unknown.
#[must_use = "finish the timer with the reconcile's result"]
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: String,
    started: Instant,
    finished: bool,
}

impl ReconcileTimer {
    /// Records the reconcile's duration and result; an error is given as its short category
    /// (for example `pd_api`, `apply`, `invalid_spec`), which becomes the `error` label.
    pub fn finish(mut self, result: Result<(), &str>) {
        self.finished = true;
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics
            .record_reconcile(&self.controller, seconds, Some(result));
    }

    /// Records a failed reconcile with its error category.
    pub fn finish_error(self, category: &str) {
        self.finish(Err(category));
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        if !self.finished {
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics
                .record_reconcile(&self.controller, seconds, None);
        }
    }
}

#[cfg(test)]
mod tests;
