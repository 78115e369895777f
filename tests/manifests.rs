//! Checks of the Kustomize manifests under `manifests/`, offline (no cluster needed).
//!
//! Every base and overlay is built with `kubectl kustomize`, exactly as a user builds it, and must
//! build without warnings. Then:
//! - each controller's ClusterRole and Role grant exactly the table in [`CONTROLLERS`], nothing
//!   missing and nothing more, to that controller's own ServiceAccount;
//! - every pod template, in every base and overlay, passes the Pod Security "restricted" profile;
//! - each controller base has the Deployment, metrics Service and PodMonitor it documents;
//! - the production overlay runs two replicas with a PodDisruptionBudget and spreading, the dev
//!   overlay one replica with text logs;
//! - `manifests/crd` holds one CustomResourceDefinition per file its kustomization lists;
//! - every base and overlay runs the released image, tagged with the workspace version;
//! - every example under `examples/` builds without warnings into exactly the objects of its
//!   files: one Cluster and groups of that Cluster.
//!
//! `kubectl` is taken from `$KUBECTL` when set, else from `PATH`; without it these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize as _;
use serde_json::{Value, json};

/// The namespace every controller runs in.
const NAMESPACE: &str = "tidb-admin";

/// The image a release publishes, `<name>:v<workspace version>`.
const IMAGE: &str = operator_runtime::build_info::IMAGE;

// ---------------------------------------------------------------------------------------------
// The RBAC table. Each controller may do what its line says and nothing else.
// ---------------------------------------------------------------------------------------------

/// Read: get, list, watch.
const R: &[&str] = &["get", "list", "watch"];
/// Write: create, update, patch, delete.
const W: &[&str] = &["create", "update", "patch", "delete"];
/// On a `/status` subresource: get, update, patch.
const S: &[&str] = &["get", "update", "patch"];
/// On a `/finalizers` subresource: update (needed to set `blockOwnerDeletion` on what it owns).
const F: &[&str] = &["update"];

const CORE: &str = "core.pingcap.com";
const BR: &str = "br.pingcap.com";
/// The Kubernetes core API group.
const K8S: &str = "";
const BATCH: &str = "batch";
/// The API group of PodDisruptionBudgets.
const POLICY: &str = "policy";
/// The API group of roles and their bindings.
const RBAC: &str = "rbac.authorization.k8s.io";

/// In API group `group`, each of `resources` may have each verb of `verbs`.
struct Grant {
    group: &'static str,
    resources: &'static [&'static str],
    verbs: &'static [&'static [&'static str]],
}

const fn grant(
    group: &'static str,
    resources: &'static [&'static str],
    verbs: &'static [&'static [&'static str]],
) -> Grant {
    Grant {
        group,
        resources,
        verbs,
    }
}

/// One controller: its name (binary, Deployment, ServiceAccount and base directory) and what its
/// ClusterRole grants, besides [`EVENTS`]. Its Role grants [`LEASE`] in [`NAMESPACE`].
struct Controller {
    name: &'static str,
    cluster_wide: &'static [Grant],
    /// ClusterRoles the base ships for operand Pods, which the controller binds at run time
    /// (never to itself), by name, with exactly what each grants.
    operand_roles: &'static [(&'static str, Grant)],
}

/// Every controller records Events; the kube-rs recorder writes `events.k8s.io`.
const EVENTS: &[Grant] = &[
    grant(K8S, &["events"], &[&["create", "patch"]]),
    grant("events.k8s.io", &["events"], &[&["create", "patch"]]),
];

/// Every controller's leader election, in [`NAMESPACE`] only: no list, watch or delete.
const LEASE: &[Grant] = &[grant(
    "coordination.k8s.io",
    &["leases"],
    &[&["get", "create", "update"]],
)];

const CONTROLLERS: &[Controller] = &[
    Controller {
        name: "cluster-controller",
        cluster_wide: &[
            grant(CORE, &["clusters"], &[R, &["update", "patch"]]),
            grant(CORE, &["clusters/status"], &[S]),
            grant(CORE, &["clusters/finalizers"], &[F]),
            // Feature gates written into groups (patch); groups deleted in order with their Cluster.
            grant(
                CORE,
                &[
                    "pdgroups",
                    "tikvgroups",
                    "tidbgroups",
                    "tiflashgroups",
                    "ticdcgroups",
                ],
                &[R, &["patch", "delete"]],
            ),
            // Aggregated into the Cluster's status.
            grant(CORE, &["pds", "tikvs", "tidbs"], &[R]),
            // The operator's client certificate of a TLS cluster; get only, no list or watch.
            grant(K8S, &["secrets"], &[&["get"]]),
            // The Cluster's headless and PD Services of its gates; made, a PDGroup's adopted.
            grant(K8S, &["services"], &[&["get", "create", "patch"]]),
            // A Cluster being deleted waits for the BR Jobs running against it; list only.
            grant(BR, &["backups", "restores"], &[&["list"]]),
        ],
        operand_roles: &[],
    },
    Controller {
        name: "pd-controller",
        cluster_wide: &[
            grant(CORE, &["pdgroups"], &[R, &["update", "patch"]]),
            grant(CORE, &["pdgroups/status"], &[S]),
            grant(CORE, &["pdgroups/finalizers"], &[F]),
            grant(CORE, &["pds"], &[R, W]),
            grant(CORE, &["pds/status"], &[S]),
            grant(CORE, &["pds/finalizers"], &[F]),
            grant(CORE, &["clusters"], &[R]),
            grant(
                K8S,
                &["pods", "persistentvolumeclaims", "configmaps", "services"],
                &[R, W],
            ),
            grant(
                POLICY,
                &["poddisruptionbudgets"],
                &[R, &["create", "patch"]],
            ),
            // A member on a cordoned Node hands PD leadership over.
            grant(K8S, &["nodes"], &[R]),
            // TLS Secrets: an instance's certificates checked before its Pod, the operator's
            // client certificate; get only, no list or watch.
            grant(K8S, &["secrets"], &[&["get"]]),
        ],
        operand_roles: &[],
    },
    Controller {
        name: "tikv-controller",
        cluster_wide: &[
            grant(
                CORE,
                &["tikvgroups", "tiflashgroups"],
                &[R, &["update", "patch"]],
            ),
            grant(CORE, &["tikvgroups/status", "tiflashgroups/status"], &[S]),
            grant(
                CORE,
                &["tikvgroups/finalizers", "tiflashgroups/finalizers"],
                &[F],
            ),
            grant(CORE, &["tikvs", "tiflashes"], &[R, W]),
            grant(CORE, &["tikvs/status", "tiflashes/status"], &[S]),
            grant(CORE, &["tikvs/finalizers", "tiflashes/finalizers"], &[F]),
            grant(CORE, &["clusters", "pdgroups"], &[R]),
            grant(
                K8S,
                &["pods", "persistentvolumeclaims", "configmaps", "services"],
                &[R, W],
            ),
            grant(
                POLICY,
                &["poddisruptionbudgets"],
                &[R, &["create", "patch"]],
            ),
            // Node topology labels become PD store labels; a cordoned Node's stores evict leaders.
            grant(K8S, &["nodes"], &[R]),
            // TLS Secrets: an instance's certificates checked before its Pod, the operator's
            // client certificate; get only, no list or watch.
            grant(K8S, &["secrets"], &[&["get"]]),
        ],
        operand_roles: &[],
    },
    Controller {
        name: "tidb-controller",
        cluster_wide: &[
            grant(
                CORE,
                &["tidbgroups", "ticdcgroups"],
                &[R, &["update", "patch"]],
            ),
            grant(CORE, &["tidbgroups/status", "ticdcgroups/status"], &[S]),
            grant(
                CORE,
                &["tidbgroups/finalizers", "ticdcgroups/finalizers"],
                &[F],
            ),
            grant(CORE, &["tidbs", "ticdcs"], &[R, W]),
            grant(CORE, &["tidbs/status", "ticdcs/status"], &[S]),
            grant(CORE, &["tidbs/finalizers", "ticdcs/finalizers"], &[F]),
            grant(CORE, &["clusters", "pdgroups", "tikvgroups"], &[R]),
            grant(
                K8S,
                &["pods", "persistentvolumeclaims", "configmaps", "services"],
                &[R, W],
            ),
            grant(
                POLICY,
                &["poddisruptionbudgets"],
                &[R, &["create", "patch"]],
            ),
            // TLS Secrets: an instance's certificates checked before its Pod, the operator's
            // client certificate; get only, no list or watch.
            grant(K8S, &["secrets"], &[&["get"]]),
            // A TiCDCGroup's RoleBinding under TiCDCDynamicSecretSyncer, binding its Pods to
            // the operand ClusterRole below, which is all it may bind.
            grant(RBAC, &["rolebindings"], &[&["get", "create", "patch"]]),
            grant(
                RBAC,
                &["clusterroles[tidb-operator:ticdc-secret-reader]"],
                &[&["bind"]],
            ),
        ],
        // TiCDC Pods under TiCDCDynamicSecretSyncer read the Secrets of their namespace.
        operand_roles: &[(
            "tidb-operator:ticdc-secret-reader",
            grant(K8S, &["secrets"], &[R]),
        )],
    },
    Controller {
        name: "backup-controller",
        cluster_wide: &[
            grant(BR, &["backups", "restores", "backupschedules"], &[R, W]),
            grant(
                BR,
                &[
                    "backups/status",
                    "restores/status",
                    "backupschedules/status",
                    "compactbackups/status",
                ],
                &[S],
            ),
            grant(
                BR,
                &[
                    "backups/finalizers",
                    "restores/finalizers",
                    "backupschedules/finalizers",
                    "compactbackups/finalizers",
                ],
                &[F],
            ),
            // Compactions: read, status written; never created or deleted.
            grant(BR, &["compactbackups"], &[R]),
            grant(CORE, &["clusters"], &[R]),
            // The group version that picks BR's image; read when a Job is built.
            grant(CORE, &["pdgroups", "tikvgroups"], &[&["get", "list"]]),
            grant(BATCH, &["jobs"], &[R, W]),
            // Checks that referenced credentials exist; no list or watch.
            grant(K8S, &["secrets"], &[&["get"]]),
            // A failed Job pod's reason.
            grant(K8S, &["pods"], &[R]),
        ],
        operand_roles: &[],
    },
];

/// Where a permission applies: cluster-wide (a ClusterRole through a ClusterRoleBinding) or in
/// one namespace (a Role).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Cluster,
    Namespace(String),
}

/// One permission: (scope, API group, resource, verb).
type Permission = (Scope, String, String, String);

fn expand(scope: &Scope, grants: &[Grant], into: &mut BTreeSet<Permission>) {
    for g in grants {
        for resource in g.resources {
            for verb in g.verbs.iter().flat_map(|set| set.iter()) {
                into.insert((
                    scope.clone(),
                    g.group.to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                ));
            }
        }
    }
}

fn expected_permissions(controller: &Controller) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    expand(&Scope::Cluster, controller.cluster_wide, &mut out);
    expand(&Scope::Cluster, EVENTS, &mut out);
    expand(&Scope::Namespace(NAMESPACE.to_owned()), LEASE, &mut out);
    out
}

fn show(p: &Permission) -> String {
    let scope = match &p.0 {
        Scope::Cluster => "cluster-wide".to_owned(),
        Scope::Namespace(ns) => format!("namespace {ns}"),
    };
    let group = if p.1.is_empty() { "\"\" (core)" } else { &p.1 };
    format!("{scope:<22} {group:<22} {:<28} {}", p.2, p.3)
}

// ---------------------------------------------------------------------------------------------
// Building the manifests.
// ---------------------------------------------------------------------------------------------

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("manifests")
}

/// The kubectl to run: `$KUBECTL`, else `kubectl` found on `PATH`. Panics when there is none: these
/// tests must not pass without having looked at the manifests.
fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "kubectl not found: these tests build the manifests with `kubectl kustomize`. \
                 Install kubectl (v1.27+, with kustomize v5) or set KUBECTL to its path."
            )
        })
}

/// Every kustomization directory, relative to `manifests/`: the CRDs, every directory under
/// `controllers/` and `overlays/`, and `manifests/` itself if it has one.
fn kustomization_dirs() -> Vec<String> {
    let root = manifests_dir();
    let mut dirs = vec!["crd".to_owned()];
    for parent in ["controllers", "overlays"] {
        let mut children: Vec<String> = std::fs::read_dir(root.join(parent))
            .unwrap_or_else(|e| panic!("reading manifests/{parent}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .map(|path| {
                assert!(
                    path.join("kustomization.yaml").is_file(),
                    "{} has no kustomization.yaml",
                    path.display()
                );
                format!("{parent}/{}", path.file_name().unwrap().to_string_lossy())
            })
            .collect();
        children.sort();
        dirs.extend(children);
    }
    if root.join("kustomization.yaml").is_file() {
        dirs.push(".".to_owned());
    }
    dirs
}

fn overlay_dirs() -> Vec<String> {
    kustomization_dirs()
        .into_iter()
        .filter(|d| d.starts_with("overlays/"))
        .collect()
}

/// Parses a multi-document YAML stream, dropping empty documents.
fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Runs `kubectl kustomize` on `path`, asserting success and a stderr free of warnings.
fn kustomize(path: &Path) -> Vec<Value> {
    let kubectl = kubectl();
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running `{} kustomize` (kubectl from $KUBECTL or PATH): {e}",
                kubectl.display()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed ({}):\n{stderr}",
        path.display(),
        output.status
    );
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("warning") && !lower.contains("deprecat"),
        "kubectl kustomize {} warned:\n{stderr}",
        path.display()
    );
    parse_documents(&String::from_utf8(output.stdout).expect("UTF-8 output"))
}

/// The objects built from `manifests/<dir>`, built once per test binary even when tests ask for
/// them at the same time (the directories holding CRDs take seconds to build).
fn render(dir: &str) -> Arc<Vec<Value>> {
    type Cell = Arc<OnceLock<Arc<Vec<Value>>>>;
    static CACHE: Mutex<BTreeMap<String, Cell>> = Mutex::new(BTreeMap::new());
    let cell = Arc::clone(CACHE.lock().unwrap().entry(dir.to_owned()).or_default());
    Arc::clone(cell.get_or_init(|| Arc::new(kustomize(&manifests_dir().join(dir)))))
}

/// `to` relative to `from` (kustomize refuses absolute paths to bases).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (from.canonicalize().unwrap(), to.canonicalize().unwrap());
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    to[common..].iter().for_each(|c| out.push(c));
    out
}

// ---------------------------------------------------------------------------------------------
// Reading objects.
// ---------------------------------------------------------------------------------------------

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn id(object: &Value) -> String {
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{}/{ns}/{}", kind(object), name(object)),
        None => format!("{}/{}", kind(object), name(object)),
    }
}

fn of_kind<'a>(objects: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| kind(o) == wanted)
}

fn find<'a>(objects: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted_kind && name(o) == wanted_name)
        .unwrap_or_else(|| panic!("no {wanted_kind} named {wanted_name}"))
}

/// Strings of a JSON array (empty when absent).
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// True when every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
}

/// The pod specs of an object: a Pod's spec or a workload's pod template spec (CronJob too).
fn pod_specs(object: &Value) -> Vec<&Value> {
    if kind(object) == "Pod" {
        return object.get("spec").into_iter().collect();
    }
    [
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ]
    .iter()
    .filter_map(|pointer| object.pointer(pointer))
    .collect()
}

const COMMON_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/part-of", "tidb-operator"),
    ("app.kubernetes.io/component", "controller"),
];

fn pod_template_labels(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["metadata"]["labels"]
}

// ---------------------------------------------------------------------------------------------
// Every kustomization.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_kustomization_builds_without_warnings() {
    let dirs = kustomization_dirs();
    assert!(dirs.iter().any(|d| d.starts_with("overlays/")));
    for dir in dirs {
        let objects = render(&dir);
        assert!(!objects.is_empty(), "manifests/{dir} builds nothing");
        for object in objects.iter() {
            assert!(
                object["apiVersion"].is_string()
                    && !kind(object).is_empty()
                    && !name(object).is_empty(),
                "manifests/{dir}: an object without apiVersion, kind or name: {object}"
            );
        }
    }
}

#[test]
fn every_example_builds_into_the_objects_of_its_files() {
    let dirs = scenarios::example_dirs().unwrap();
    assert!(dirs.len() >= 5, "examples: {dirs:?}");
    for dir in dirs {
        let label = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            dir.join("kustomization.yaml").is_file(),
            "examples/{label} has no kustomization.yaml"
        );
        let objects = kustomize(&dir);
        let mut built: Vec<String> = objects.iter().map(id).collect();
        built.sort();
        // A file left out of the kustomization would be missing from what a user applies.
        let mut written: Vec<String> = scenarios::load_manifests(&[&format!("examples/{label}")])
            .unwrap()
            .iter()
            .map(|m| id(&m.value))
            .collect();
        written.sort();
        assert_eq!(built, written, "examples/{label}: built vs written");

        let clusters: Vec<&str> = of_kind(&objects, "Cluster").map(name).collect();
        assert_eq!(clusters.len(), 1, "examples/{label}: one Cluster");
        let groups: Vec<&Value> = objects
            .iter()
            .filter(|o| kind(o).ends_with("Group"))
            .collect();
        assert!(
            groups.iter().any(|g| kind(g) == "PDGroup")
                && groups.iter().any(|g| kind(g) == "TiKVGroup"),
            "examples/{label}: a whole cluster has PD and TiKV"
        );
        for group in groups {
            assert_eq!(
                group["spec"]["cluster"]["name"],
                clusters[0],
                "examples/{label}: {} belongs to its Cluster",
                id(group)
            );
        }
    }
}

#[test]
fn controller_directories_match_the_rbac_table() {
    let found: BTreeSet<String> = kustomization_dirs()
        .into_iter()
        .filter_map(|d| d.strip_prefix("controllers/").map(str::to_owned))
        .collect();
    let mut expected: BTreeSet<String> = CONTROLLERS.iter().map(|c| c.name.to_owned()).collect();
    expected.insert("namespace".to_owned());
    assert_eq!(
        found, expected,
        "manifests/controllers/ must hold the namespace base and one base per controller of the table"
    );
}

#[test]
fn no_wildcards_in_any_role() {
    for dir in kustomization_dirs() {
        for role in render(&dir)
            .iter()
            .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
        {
            for rule in role["rules"].as_array().into_iter().flatten() {
                for field in [
                    "apiGroups",
                    "resources",
                    "verbs",
                    "resourceNames",
                    "nonResourceURLs",
                ] {
                    assert!(
                        !strings(&rule[field]).iter().any(|s| s.contains('*')),
                        "manifests/{dir}: {} grants a wildcard in {field}: {rule}",
                        id(role)
                    );
                }
            }
        }
    }
}

#[test]
fn crd_base_has_one_crd_per_listed_file() {
    let crd_dir = manifests_dir().join("crd");
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(crd_dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let files = strings(&kustomization["resources"]);
    assert!(!files.is_empty(), "manifests/crd lists no files");

    let mut listed = BTreeSet::new();
    for file in &files {
        let documents = parse_documents(&std::fs::read_to_string(crd_dir.join(file)).unwrap());
        assert_eq!(
            documents.len(),
            1,
            "manifests/crd/{file} must hold exactly one object"
        );
        assert_eq!(
            kind(&documents[0]),
            "CustomResourceDefinition",
            "manifests/crd/{file}"
        );
        listed.insert(name(&documents[0]).to_owned());
    }
    assert_eq!(
        listed.len(),
        files.len(),
        "two files of manifests/crd define the same CRD"
    );

    let built = render("crd");
    assert_eq!(
        built.len(),
        files.len(),
        "manifests/crd builds {} objects",
        built.len()
    );
    let built_names: BTreeSet<String> = of_kind(&built, "CustomResourceDefinition")
        .map(|crd| name(crd).to_owned())
        .collect();
    assert_eq!(built_names, listed);
}

// ---------------------------------------------------------------------------------------------
// Pod Security "restricted".
// ---------------------------------------------------------------------------------------------

/// Asserts the Pod Security "restricted" profile, plus what we require beyond it (fixed UID/GID,
/// read-only root filesystem, the token mounted by the pod and not by the ServiceAccount).
fn assert_restricted(context: &str, spec: &Value) {
    let fail = |what: &str| -> ! { panic!("{context}: {what}\npod spec: {spec:#}") };
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == json!(true) {
            fail(&format!("{host} is set"));
        }
    }
    let pod = &spec["securityContext"];
    if pod["runAsNonRoot"] != json!(true) {
        fail("securityContext.runAsNonRoot must be true");
    }
    if pod["runAsUser"] != json!(65532) || pod["runAsGroup"] != json!(65532) {
        fail("securityContext.runAsUser and runAsGroup must be 65532");
    }
    if pod["seccompProfile"]["type"] != json!("RuntimeDefault") {
        fail("securityContext.seccompProfile.type must be RuntimeDefault");
    }
    if spec["automountServiceAccountToken"] != json!(true) {
        fail("automountServiceAccountToken must be true on the pod (the controller calls the API)");
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if volume.get("hostPath").is_some() {
            fail(&format!("volume {} is a hostPath", volume["name"]));
        }
    }
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| spec[field].as_array().into_iter().flatten())
        .collect();
    if containers.is_empty() {
        fail("no containers");
    }
    for container in containers {
        let cname = &container["name"];
        let sc = &container["securityContext"];
        if sc["allowPrivilegeEscalation"] != json!(false) {
            fail(&format!(
                "container {cname}: allowPrivilegeEscalation must be false"
            ));
        }
        if sc["privileged"] == json!(true) {
            fail(&format!("container {cname}: privileged"));
        }
        if strings(&sc["capabilities"]["drop"]) != ["ALL"] {
            fail(&format!(
                "container {cname}: capabilities.drop must be [ALL]"
            ));
        }
        if sc["capabilities"].get("add").is_some() {
            fail(&format!("container {cname}: adds capabilities"));
        }
        if sc["readOnlyRootFilesystem"] != json!(true) {
            fail(&format!(
                "container {cname}: readOnlyRootFilesystem must be true"
            ));
        }
        if sc["runAsNonRoot"] != json!(true) {
            fail(&format!("container {cname}: runAsNonRoot must be true"));
        }
        if sc.get("runAsUser").is_some_and(|uid| uid == &json!(0)) {
            fail(&format!("container {cname}: runs as root"));
        }
        if let Some(profile) = sc["seccompProfile"]["type"].as_str()
            && !matches!(profile, "RuntimeDefault" | "Localhost")
        {
            fail(&format!("container {cname}: seccompProfile {profile}"));
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port.get("hostPort").is_some_and(|p| p != &json!(0)) {
                fail(&format!("container {cname}: hostPort {}", port["hostPort"]));
            }
        }
    }
}

#[test]
fn every_pod_template_is_restricted() {
    for dir in kustomization_dirs() {
        let objects = render(&dir);
        let mut checked = 0;
        for object in objects.iter() {
            for spec in pod_specs(object) {
                assert_restricted(&format!("manifests/{dir}: {}", id(object)), spec);
                checked += 1;
            }
        }
        let deployments = of_kind(&objects, "Deployment").count();
        assert!(
            checked >= deployments,
            "manifests/{dir}: a Deployment was not checked"
        );
        if dir.starts_with("overlays/") {
            assert_eq!(
                deployments,
                CONTROLLERS.len(),
                "manifests/{dir} must run every controller"
            );
        }
    }
}

#[test]
fn service_accounts_do_not_mount_their_token_everywhere() {
    for dir in kustomization_dirs() {
        for account in of_kind(&render(&dir), "ServiceAccount") {
            assert_eq!(
                account["automountServiceAccountToken"],
                json!(false),
                "manifests/{dir}: {} mounts its token into every pod using it",
                id(account)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Each controller base.
// ---------------------------------------------------------------------------------------------

/// The permissions a base grants, after checking that every role is bound, by a binding in the
/// base, to the controller's ServiceAccount and nothing else.
fn granted_permissions(controller: &str, objects: &[Value]) -> BTreeSet<Permission> {
    let subject = json!([{"kind": "ServiceAccount", "name": controller, "namespace": NAMESPACE}]);
    let mut bound = BTreeSet::new();
    for (binding_kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        for binding in of_kind(objects, binding_kind) {
            assert_eq!(
                binding["subjects"],
                subject,
                "{controller}: {} must bind its own ServiceAccount in {NAMESPACE}, and only it",
                id(binding)
            );
            let role_ref = &binding["roleRef"];
            assert_eq!(role_ref["apiGroup"], json!("rbac.authorization.k8s.io"));
            assert_eq!(
                role_ref["kind"],
                json!(role_kind),
                "{controller}: {} refers to a {}",
                id(binding),
                role_ref["kind"]
            );
            let role = find(objects, role_kind, role_ref["name"].as_str().unwrap());
            if role_kind == "Role" {
                assert_eq!(
                    role["metadata"]["namespace"],
                    binding["metadata"]["namespace"]
                );
            }
            bound.insert(id(role));
        }
    }

    // Operand roles are bound at run time, to operand Pods: checked by their own test.
    let operand: Vec<&str> = CONTROLLERS
        .iter()
        .filter(|c| c.name == controller)
        .flat_map(|c| c.operand_roles.iter().map(|(n, _)| *n))
        .collect();
    let mut granted = BTreeSet::new();
    for role in objects
        .iter()
        .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
        .filter(|o| !(kind(o) == "ClusterRole" && operand.contains(&name(o))))
    {
        assert!(
            bound.contains(&id(role)),
            "{controller}: {} is bound to nothing",
            id(role)
        );
        assert!(
            role.get("aggregationRule").is_none(),
            "{controller}: {} aggregates other roles",
            id(role)
        );
        let scope = match role["metadata"]["namespace"].as_str() {
            Some(ns) if kind(role) == "Role" => Scope::Namespace(ns.to_owned()),
            _ => Scope::Cluster,
        };
        granted.extend(rule_permissions(controller, role, &scope));
    }
    granted
}

/// What the rules of `role` grant in `scope`; a rule limited to `resourceNames` grants
/// `resource[name]` for each.
fn rule_permissions(controller: &str, role: &Value, scope: &Scope) -> BTreeSet<Permission> {
    let mut granted = BTreeSet::new();
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{controller}: {} uses nonResourceURLs, which this table does not describe: {rule}",
                id(role)
            );
            let names = strings(&rule["resourceNames"]);
            for group in strings(&rule["apiGroups"]) {
                for plain in strings(&rule["resources"]) {
                    let resources: Vec<String> = if names.is_empty() {
                        vec![plain.to_owned()]
                    } else {
                        names.iter().map(|n| format!("{plain}[{n}]")).collect()
                    };
                    for resource in resources {
                        for verb in strings(&rule["verbs"]) {
                            granted.insert((
                                scope.clone(),
                                group.to_owned(),
                                resource.clone(),
                                verb.to_owned(),
                            ));
                        }
                    }
                }
            }
        }
    }
    granted
}

#[test]
fn operand_roles_grant_exactly_their_table_and_are_bound_to_no_controller() {
    for controller in CONTROLLERS {
        let objects = render(&format!("controllers/{}", controller.name));
        for (role_name, table) in controller.operand_roles {
            let role = find(&objects, "ClusterRole", role_name);
            let granted = rule_permissions(controller.name, role, &Scope::Cluster);
            let mut expected = BTreeSet::new();
            for resource in table.resources {
                for verbs in table.verbs {
                    for verb in *verbs {
                        expected.insert((
                            Scope::Cluster,
                            table.group.to_owned(),
                            (*resource).to_owned(),
                            (*verb).to_owned(),
                        ));
                    }
                }
            }
            assert_eq!(granted, expected, "{}: {role_name}", controller.name);
            for binding in of_kind(&objects, "ClusterRoleBinding") {
                assert_ne!(
                    binding["roleRef"]["name"],
                    json!(role_name),
                    "{}: {role_name} is for operand Pods, not the controller",
                    controller.name
                );
            }
        }
    }
}

#[test]
fn each_controller_is_granted_exactly_its_table() {
    let mut report = String::new();
    for controller in CONTROLLERS {
        let objects = render(&format!("controllers/{}", controller.name));
        let granted = granted_permissions(controller.name, &objects);
        let expected = expected_permissions(controller);
        let missing: Vec<_> = expected.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&expected).collect();
        if !missing.is_empty() || !extra.is_empty() {
            writeln!(report, "{}:", controller.name).unwrap();
            for p in missing {
                writeln!(report, "  missing  {}", show(p)).unwrap();
            }
            for p in extra {
                writeln!(report, "  extra    {}", show(p)).unwrap();
            }
        }
    }
    assert!(report.is_empty(), "RBAC differs from the table:\n{report}");
}

#[test]
fn each_controller_runs_under_its_own_service_account() {
    for controller in CONTROLLERS {
        let objects = render(&format!("controllers/{}", controller.name));
        let accounts: Vec<&Value> = of_kind(&objects, "ServiceAccount").collect();
        assert_eq!(accounts.len(), 1, "{}: one ServiceAccount", controller.name);
        assert_eq!(name(accounts[0]), controller.name);
        assert_eq!(accounts[0]["metadata"]["namespace"], json!(NAMESPACE));

        let deployment = find(&objects, "Deployment", controller.name);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["serviceAccountName"],
            json!(controller.name),
            "{}: the Deployment must run as its own ServiceAccount",
            controller.name
        );
        assert_eq!(of_kind(&objects, "ClusterRoleBinding").count(), 1);
        assert_eq!(of_kind(&objects, "RoleBinding").count(), 1);
        for binding in of_kind(&objects, "RoleBinding") {
            assert_eq!(binding["metadata"]["namespace"], json!(NAMESPACE));
        }
        // Subjects are checked in granted_permissions; run it for its assertions.
        granted_permissions(controller.name, &objects);
    }
}

#[test]
fn each_controller_base_has_its_deployment_service_and_pod_monitor() {
    for controller in CONTROLLERS {
        let cname = controller.name;
        let objects = render(&format!("controllers/{cname}"));

        for object in objects.iter() {
            let labels = &object["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"],
                json!(cname),
                "{}",
                id(object)
            );
            for (key, value) in COMMON_LABELS {
                assert_eq!(labels[key], json!(value), "{}: label {key}", id(object));
            }
            if !matches!(kind(object), "ClusterRole" | "ClusterRoleBinding") {
                assert_eq!(
                    object["metadata"]["namespace"],
                    json!(NAMESPACE),
                    "{}",
                    id(object)
                );
            }
        }

        let deployment = find(&objects, "Deployment", cname);
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], json!(1), "{cname}: 1 replica in the base");
        let pod_labels = pod_template_labels(deployment);
        assert_eq!(pod_labels["app.kubernetes.io/name"], json!(cname));
        for (key, value) in COMMON_LABELS {
            assert_eq!(pod_labels[key], json!(value), "{cname}: pod label {key}");
        }
        assert!(
            selects(&spec["selector"]["matchLabels"], pod_labels),
            "{cname}: selector"
        );
        assert_eq!(
            spec["selector"]["matchLabels"]["app.kubernetes.io/name"],
            json!(cname)
        );

        let pod = &spec["template"]["spec"];
        assert_eq!(pod["terminationGracePeriodSeconds"], json!(30));
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{cname}: one container");
        let c = &containers[0];
        assert_eq!(c["image"], json!(IMAGE), "{cname}: the released image");
        assert_eq!(c["command"], json!([format!("/{cname}")]));
        assert_eq!(
            c["args"],
            json!([
                "--http-address=0.0.0.0:8080",
                "--lease-namespace=$(POD_NAMESPACE)",
                "--log-format=json"
            ])
        );
        assert_eq!(
            c["env"],
            json!([
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ])
        );
        assert_eq!(
            c["ports"],
            json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "http"})
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "http"})
        );
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
        );

        let services: Vec<&Value> = of_kind(&objects, "Service").collect();
        assert_eq!(services.len(), 1, "{cname}: one metrics Service");
        let service = &services[0]["spec"];
        assert_eq!(service["type"], json!("ClusterIP"));
        assert_eq!(
            service["ports"],
            json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
        );
        assert!(
            selects(&service["selector"], pod_labels),
            "{cname}: Service selector"
        );
        assert_eq!(service["selector"]["app.kubernetes.io/name"], json!(cname));

        let monitors: Vec<&Value> = of_kind(&objects, "PodMonitor").collect();
        assert_eq!(monitors.len(), 1, "{cname}: one PodMonitor");
        assert_eq!(monitors[0]["apiVersion"], json!("monitoring.coreos.com/v1"));
        let monitor = &monitors[0]["spec"];
        assert!(
            selects(&monitor["selector"]["matchLabels"], pod_labels),
            "{cname}: PodMonitor selector"
        );
        assert_eq!(
            monitor["selector"]["matchLabels"]["app.kubernetes.io/name"],
            json!(cname)
        );
        assert_eq!(
            monitor["podMetricsEndpoints"],
            json!([{"port": "http", "path": "/metrics", "honorLabels": true}])
        );
    }
}

#[test]
fn the_image_can_be_changed_with_kustomize_images() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifests-image-override");
    std::fs::create_dir_all(&dir).unwrap();
    let base = manifests_dir().join("controllers/pd-controller");
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
             images:\n  - name: {}\n    newName: registry.example.com/tidb-operator\n    newTag: v9.9.9\n",
            relative_path(&dir, &base).display(),
            published_repository()
        ),
    )
    .unwrap();
    let objects = kustomize(&dir);
    let deployment = find(&objects, "Deployment", "pd-controller");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("registry.example.com/tidb-operator:v9.9.9")
    );
}

/// The repository part of the released image: its name without the tag.
fn published_repository() -> &'static str {
    IMAGE.rsplit_once(':').map_or(IMAGE, |(name, _)| name)
}

#[test]
fn every_overlay_runs_the_released_image_tagged_with_the_workspace_version() {
    // The one place a release sets the tag, and what the binaries say they are.
    assert_eq!(
        IMAGE,
        format!("{}:v{}", published_repository(), env!("CARGO_PKG_VERSION"))
    );
    let component =
        std::fs::read_to_string(manifests_dir().join("image/kustomization.yaml")).unwrap();
    let component: Value = serde_yaml::from_str(&component).unwrap();
    assert_eq!(
        component["images"],
        json!([{
            "name": "tidb-operator",
            "newName": published_repository(),
            "newTag": format!("v{}", env!("CARGO_PKG_VERSION")),
        }]),
        "manifests/image sets the released name and tag"
    );
    let overlays = overlay_dirs();
    assert!(overlays.len() >= 2, "{overlays:?}");
    for overlay in overlays {
        let objects = render(&overlay);
        let deployments: Vec<&Value> = of_kind(&objects, "Deployment").collect();
        assert_eq!(deployments.len(), CONTROLLERS.len(), "manifests/{overlay}");
        for deployment in deployments {
            for spec in pod_specs(deployment) {
                for container in spec["containers"].as_array().into_iter().flatten() {
                    assert_eq!(
                        container["image"],
                        json!(IMAGE),
                        "manifests/{overlay}: {}",
                        id(deployment)
                    );
                    assert_eq!(
                        container["command"],
                        json!([format!("/{}", name(deployment))]),
                        "manifests/{overlay}: {} runs its own binary of the image",
                        id(deployment)
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Overlays.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_overlay_installs_the_crds_the_namespace_and_every_controller() {
    let crds: BTreeSet<String> = of_kind(&render("crd"), "CustomResourceDefinition")
        .map(|c| name(c).to_owned())
        .collect();
    let overlays = overlay_dirs();
    for overlay in ["overlays/production", "overlays/dev"] {
        assert!(
            overlays.iter().any(|o| o == overlay),
            "manifests/{overlay} is missing"
        );
    }
    for overlay in overlays {
        let objects = render(&overlay);
        let found: BTreeSet<String> = of_kind(&objects, "CustomResourceDefinition")
            .map(|c| name(c).to_owned())
            .collect();
        assert_eq!(found, crds, "manifests/{overlay}: CRDs");
        let namespace = find(&objects, "Namespace", NAMESPACE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            json!("restricted")
        );
        for controller in CONTROLLERS {
            for wanted in ["Deployment", "ServiceAccount", "PodMonitor"] {
                find(&objects, wanted, controller.name);
            }
            // The overlay does not change what a controller may do.
            let base = render(&format!("controllers/{}", controller.name));
            for rbac_kind in ["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"] {
                for object in of_kind(&base, rbac_kind) {
                    assert_eq!(
                        find(&objects, rbac_kind, name(object)),
                        object,
                        "manifests/{overlay} changes {}",
                        id(object)
                    );
                }
            }
        }
    }
}

#[test]
fn production_overlay_runs_two_spread_replicas_with_a_disruption_budget() {
    let objects = render("overlays/production");
    for controller in CONTROLLERS {
        let cname = controller.name;
        let deployment = find(&objects, "Deployment", cname);
        assert_eq!(
            deployment["spec"]["replicas"],
            json!(2),
            "{cname}: replicas"
        );
        let pod_labels = pod_template_labels(deployment);

        let budgets: Vec<&Value> = of_kind(&objects, "PodDisruptionBudget")
            .filter(|pdb| selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels))
            .collect();
        assert_eq!(
            budgets.len(),
            1,
            "{cname}: one PodDisruptionBudget selecting its pods"
        );
        let budget = budgets[0];
        assert_eq!(budget["apiVersion"], json!("policy/v1"));
        assert_eq!(budget["metadata"]["namespace"], json!(NAMESPACE));
        assert_eq!(
            budget["spec"]["minAvailable"],
            json!(1),
            "{cname}: minAvailable"
        );
        assert_eq!(
            budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            json!(cname),
            "{cname}: the budget selects this controller's pods only"
        );

        let pod = &deployment["spec"]["template"]["spec"];
        let terms =
            pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .unwrap_or_else(|| panic!("{cname}: no preferred podAntiAffinity"));
        assert!(
            terms.iter().any(|t| {
                let term = &t["podAffinityTerm"];
                term["topologyKey"] == json!("kubernetes.io/hostname")
                    && term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"]
                        == json!(cname)
                    && selects(&term["labelSelector"]["matchLabels"], pod_labels)
            }),
            "{cname}: anti-affinity on kubernetes.io/hostname by its name label: {terms:#?}"
        );
        let spread = pod["topologySpreadConstraints"].as_array().unwrap();
        assert!(
            spread.iter().any(|c| {
                c["topologyKey"] == json!("topology.kubernetes.io/zone")
                    && c["whenUnsatisfiable"] == json!("ScheduleAnyway")
                    && c["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == json!(cname)
            }),
            "{cname}: spread over zones: {spread:#?}"
        );
    }
    assert_eq!(
        of_kind(&objects, "PodDisruptionBudget").count(),
        CONTROLLERS.len(),
        "one PodDisruptionBudget per controller"
    );
}

#[test]
fn dev_overlay_runs_one_replica_with_text_logs() {
    let objects = render("overlays/dev");
    for controller in CONTROLLERS {
        let cname = controller.name;
        let deployment = find(&objects, "Deployment", cname);
        assert_eq!(
            deployment["spec"]["replicas"],
            json!(1),
            "{cname}: replicas"
        );
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["args"],
            json!([
                "--http-address=0.0.0.0:8080",
                "--lease-namespace=$(POD_NAMESPACE)",
                "--log-format=text"
            ]),
            "{cname}: args"
        );
        assert_eq!(
            container["imagePullPolicy"],
            json!("IfNotPresent"),
            "{cname}"
        );
    }
    assert_eq!(of_kind(&objects, "PodDisruptionBudget").count(), 0);
}

/// A release publishes the krew manifest of the kubectl plugin: `hack/release.sh krew` fills the
/// template with the version and each archive's SHA-256, and refuses when an archive is missing.
#[test]
fn the_release_writes_the_plugins_krew_manifest_from_its_archives() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("krew-manifest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = || {
        Command::new(repo.join("hack/release.sh"))
            .args(["krew", "1.2.3"])
            .arg(&dir)
            .current_dir(&repo)
            .output()
            .unwrap()
    };
    std::fs::write(dir.join("kubectl-tidb-linux-amd64.tar.gz"), "amd64").unwrap();
    let missing = run();
    assert!(!missing.status.success(), "an archive is missing");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("kubectl-tidb-linux-arm64.tar.gz"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    std::fs::write(dir.join("kubectl-tidb-linux-arm64.tar.gz"), "arm64").unwrap();
    let written = run();
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let text = std::fs::read_to_string(dir.join("tidb.yaml")).unwrap();
    let manifest: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(manifest["kind"], json!("Plugin"));
    assert_eq!(manifest["metadata"]["name"], json!("tidb"));
    assert_eq!(manifest["spec"]["version"], json!("v1.2.3"));
    // sha256 of "amd64" and of "arm64".
    let expected = [
        (
            "amd64",
            "5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51",
        ),
        (
            "arm64",
            "f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265",
        ),
    ];
    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), expected.len());
    for (platform, (arch, sha256)) in platforms.iter().zip(expected) {
        assert_eq!(platform["selector"]["matchLabels"]["arch"], json!(arch));
        assert_eq!(platform["sha256"], json!(sha256), "{arch}");
        let uri = platform["uri"].as_str().unwrap();
        assert!(
            uri.ends_with(&format!("/v1.2.3/kubectl-tidb-linux-{arch}.tar.gz")),
            "{uri}"
        );
        assert_eq!(platform["bin"], json!("kubectl-tidb"));
    }
    assert!(!text.contains("${"), "a placeholder is left:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
