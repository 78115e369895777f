//! Label and annotation keys the operator reads and writes, and their well-known values.
//!
//! The `pingcap.com/*` keys and the `core.pingcap.com/*` annotations are the reference operator's,
//! so objects created by either operator are recognised by the other's selectors.

/// `app.kubernetes.io/name`: the application, always [`APP_NAME`].
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the Cluster the object belongs to.
pub const LABEL_APP_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: pd, tikv, tidb, backup, restore.
pub const LABEL_APP_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: always [`MANAGED_BY`].
pub const LABEL_APP_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_APP_NAME`].
pub const APP_NAME: &str = "tidb";

/// `pingcap.com/managed-by`: who manages the object.
pub const LABEL_MANAGED_BY: &str = "pingcap.com/managed-by";
/// Value of [`LABEL_MANAGED_BY`] and [`LABEL_APP_MANAGED_BY`].
pub const MANAGED_BY: &str = "tidb-operator";
/// `pingcap.com/cluster`: the Cluster the object belongs to.
pub const LABEL_CLUSTER: &str = "pingcap.com/cluster";
/// `pingcap.com/component`: pd, tikv, tidb.
pub const LABEL_COMPONENT: &str = "pingcap.com/component";
/// `pingcap.com/group`: the group the instance (or its Pod, PVC, ConfigMap) belongs to.
pub const LABEL_GROUP: &str = "pingcap.com/group";
/// `pingcap.com/instance`: the instance a Pod, PVC or ConfigMap belongs to.
pub const LABEL_INSTANCE: &str = "pingcap.com/instance";
/// `pingcap.com/pod-spec-hash`: hash of the Pod spec the operator built, to detect drift.
pub const LABEL_POD_SPEC_HASH: &str = "pingcap.com/pod-spec-hash";
/// `pingcap.com/pod-inputs-hash`: hash of what the operator built a Pod from (its instance, what
/// else the builder read, the Secrets it mounts), so a Pod rendered differently by another
/// operator version from the same inputs is not restarted.
pub const LABEL_POD_INPUTS_HASH: &str = "pingcap.com/pod-inputs-hash";
/// `pingcap.com/instance-revision-hash`: the group revision an instance was created from.
pub const LABEL_INSTANCE_REVISION_HASH: &str = "pingcap.com/instance-revision-hash";
/// `pingcap.com/config-hash`: hash of the user's config TOML (not the merged one), so an operator
/// upgrade that changes the keys it owns does not restart every Pod.
pub const LABEL_CONFIG_HASH: &str = "pingcap.com/config-hash";
/// `pingcap.com/volume-name`: which of the template's volumes a PVC is.
pub const LABEL_VOLUME_NAME: &str = "pingcap.com/volume-name";

/// `tidb.pingcap.com/cluster-id`: PD's cluster ID (kept from tidb-operator v1).
pub const LABEL_CLUSTER_ID: &str = "tidb.pingcap.com/cluster-id";
/// `tidb.pingcap.com/member-id`: a PD member's ID (kept from tidb-operator v1).
pub const LABEL_MEMBER_ID: &str = "tidb.pingcap.com/member-id";
/// `tidb.pingcap.com/store-id`: a TiKV store's ID (kept from tidb-operator v1).
pub const LABEL_STORE_ID: &str = "tidb.pingcap.com/store-id";

/// Component label values.
pub const COMPONENT_PD: &str = "pd";
/// Component label value of TiKV.
pub const COMPONENT_TIKV: &str = "tikv";
/// Component label value of TiDB.
pub const COMPONENT_TIDB: &str = "tidb";
/// Component label value of TiFlash.
pub const COMPONENT_TIFLASH: &str = "tiflash";
/// Component label value of TiCDC.
pub const COMPONENT_TICDC: &str = "ticdc";

/// Prefix of the operator's annotations.
pub const ANNO_PREFIX: &str = "core.pingcap.com/";
/// The instance is marked for deletion and goes once it is safe.
pub const ANNO_DEFER_DELETE: &str = "core.pingcap.com/defer-delete";
/// The instance template last applied to the Pod, to tell whether a restart is needed.
pub const ANNO_LAST_INSTANCE_TEMPLATE: &str = "core.pingcap.com/last-instance-template";
/// The features last applied to the Pod.
pub const ANNO_FEATURES: &str = "core.pingcap.com/features";
/// On a PD or TiKV Pod: the user's `config`, as written, that the running process has (started
/// with, or changed to online). `HotReload` compares it with the instance's to find changed keys.
pub const ANNO_APPLIED_CONFIG: &str = "core.pingcap.com/applied-config";
/// On a Pod: the hash of a `config` the component refused to take online; that change restarts.
pub const ANNO_CONFIG_REJECTED: &str = "core.pingcap.com/config-rejected";
/// On a group: `"true"` lets the group move to a version lower than one its instances run.
/// TiDB, TiKV and PD support no downgrade (patch versions included); this is for someone who
/// knows the versions involved are compatible.
pub const ANNO_ALLOW_DOWNGRADE: &str = "core.pingcap.com/allow-downgrade";
/// On a group's `spec.template.metadata` or on one instance: a value (a timestamp, by custom)
/// whose change restarts the Pods it reaches, through the same safe, one-at-a-time restart as an
/// upgrade. The key the reference operator documents for a rolling restart.
pub const ANNO_RESTARTED_AT: &str = "pingcap.com/restartedAt";
/// On an instance: the fingerprint of a certificate its component does not reload by itself
/// (TiDB's MySQL server certificate), set by the group. Like [`ANNO_RESTARTED_AT`], a change
/// restarts the Pod, so a renewed certificate rolls the group.
pub const ANNO_TLS_FINGERPRINT: &str = "core.pingcap.com/tls-fingerprint";
/// Number of members the PD cluster was bootstrapped with.
pub const ANNO_INITIAL_CLUSTER_NUM: &str = "pd.core.pingcap.com/initial-cluster-num";
/// When the group first saw an instance failed (RFC 3339): operator state of failover.
pub const ANNO_FAILING_SINCE: &str = "core.pingcap.com/failing-since";
/// What the group saw failed about an instance ("PD reports store 5 Down"): operator state of
/// failover.
pub const ANNO_FAILURE: &str = "core.pingcap.com/failure";
/// When the group replaced a failed instance (RFC 3339): operator state of failover; the
/// instance is kept, with its volumes, until it recovers or is deleted.
pub const ANNO_FAILED_OVER: &str = "core.pingcap.com/failed-over";
/// On a group whose failed members leave before their replacement (PD): how many replacements
/// failover made since the group was last wholly healthy; operator state.
pub const ANNO_FAILOVER_REPLACEMENTS: &str = "core.pingcap.com/failover-replacements";
/// Value of boolean annotations.
/// On a PVC: the size whose expansion the API server refused (its StorageClass does not allow
/// expansion), so that the operator does not ask again until the size asked for changes.
pub const ANNO_RESIZE_REFUSED: &str = "core.pingcap.com/resize-refused";
pub const ANNO_TRUE: &str = "true";

/// Finalizer the operator puts on the objects whose removal needs work first.
pub const FINALIZER: &str = "core.pingcap.com/finalizer";
