//! The CRDs in a real API server: they install and become Established, every fixture and example
//! is accepted, invalid objects are rejected with the exact message of their rule, and the scale
//! subresource, printer columns and field selectors behave as kubectl users expect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use scenarios::{api_resource, ensure_crds, load_manifests};
use serde_json::{Value, json};
use testkit::{LocalCluster, TestNamespace};

async fn setup(prefix: &str) -> (LocalCluster, Client, TestNamespace) {
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, prefix)
        .await
        .unwrap();
    (cluster, client, ns)
}

fn api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let resource = api_resource(kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
    Api::namespaced_with(client.clone(), ns, &resource)
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

async fn create(client: &Client, ns: &str, value: Value) -> Result<DynamicObject, kube::Error> {
    let kind = value["kind"].as_str().unwrap().to_string();
    api(client, ns, &kind)
        .create(&PostParams::default(), &object(value))
        .await
}

async fn update(
    client: &Client,
    ns: &str,
    value: &Value,
    patch: Value,
) -> Result<DynamicObject, kube::Error> {
    let kind = value["kind"].as_str().unwrap();
    let name = value["metadata"]["name"].as_str().unwrap();
    api(client, ns, kind)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

fn cluster_obj(name: &str) -> Value {
    json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": {}})
}

fn data_volume() -> Value {
    json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}])
}

fn group(kind: &str, name: &str, cluster: &str) -> Value {
    let mut template = json!({"version": "v8.5.2"});
    if kind != "TiDBGroup" && kind != "TiCDCGroup" {
        template["volumes"] = data_volume();
    }
    json!({
        "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name},
        "spec": {"cluster": {"name": cluster}, "replicas": 3, "template": {"spec": template}}
    })
}

fn instance(kind: &str, name: &str) -> Value {
    let mut spec = json!({
        "cluster": {"name": "c"}, "subdomain": "peer", "version": "v8.5.2",
        "topology": {"topology.kubernetes.io/zone": "zone-a"}
    });
    if kind != "TiDB" && kind != "TiCDC" {
        spec["volumes"] = data_volume();
    }
    json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// Sets a value at a `/`-separated path, creating objects on the way.
fn with(mut value: Value, path: &str, new: Value) -> Value {
    let mut node = &mut value;
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    node[parts[parts.len() - 1]] = new;
    value
}

/// A rejection case: `initial` is created (and must be accepted) and then `patch` applied; with
/// no patch, `initial` itself must be rejected. The message must contain `message` exactly and
/// name `field`.
struct Case {
    name: &'static str,
    initial: Value,
    patch: Option<Value>,
    field: &'static str,
    message: String,
}

fn case(
    name: &'static str,
    initial: Value,
    patch: Option<Value>,
    field: &'static str,
    message: &str,
) -> Case {
    Case {
        name,
        initial,
        patch,
        field,
        message: message.to_string(),
    }
}

fn cases() -> Vec<Case> {
    let pattern = operator_api::schema::VERSION_PATTERN;
    let bootstrapped_pd = with(
        group("PDGroup", "pd-boot", "c"),
        "spec/bootstrapped",
        json!(true),
    );
    let gated_cluster = with(
        cluster_obj("gated"),
        "spec/featureGates",
        json!([{"name": "FeatureModification"}]),
    );
    let plain_cluster = with(
        cluster_obj("plain"),
        "spec/featureGates",
        json!([{"name": "VolumeAttributesClass"}]),
    );
    vec![
        case(
            "a version that is not semantic",
            with(
                group("PDGroup", "bad-version", "c"),
                "spec/template/spec/version",
                json!("8.5"),
            ),
            None,
            "spec.template.spec.version",
            &format!("spec.template.spec.version in body should match '{pattern}'"),
        ),
        case(
            "a changed topology",
            instance("PD", "topo-change"),
            Some(json!({"spec": {"topology": {"topology.kubernetes.io/zone": "zone-b"}}})),
            "spec.topology",
            "topology is immutable",
        ),
        case(
            "a topology removed after creation",
            instance("TiKV", "topo-removed"),
            Some(json!({"spec": {"topology": null}})),
            "spec.topology",
            "topology can only be set when creating",
        ),
        case(
            "bootstrapped turned back to false",
            bootstrapped_pd.clone(),
            Some(json!({"spec": {"bootstrapped": false}})),
            "spec.bootstrapped",
            "bootstrapped cannot be changed from true to false",
        ),
        case(
            "a PDGroup without a data volume",
            with(
                group("PDGroup", "no-data", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "log", "mounts": [{"type": "log", "mountPath": "/log"}], "storage": "1Gi"}]),
            ),
            None,
            "spec.template.spec",
            "data volume must be configured",
        ),
        case(
            "a TiKVGroup without volumes",
            with(
                group("TiKVGroup", "no-volumes", "c"),
                "spec/template/spec/volumes",
                json!(null),
            ),
            None,
            // As in the reference: a required field, checked before the CEL rules.
            "spec.template.spec.volumes",
            "Required value",
        ),
        case(
            "negative replicas",
            with(
                group("TiDBGroup", "negative", "c"),
                "spec/replicas",
                json!(-1),
            ),
            None,
            "spec.replicas",
            "spec.replicas in body should be greater than or equal to 0",
        ),
        case(
            "an overlay claim that is not a volume",
            with(
                group("TiKVGroup", "bad-claim", "c"),
                "spec/template/spec/overlay",
                json!({"volumeClaims": [{"name": "raft", "volumeClaim": {"metadata": {"labels": {"a": "b"}}}}]}),
            ),
            None,
            "spec.template.spec",
            "overlay volumeClaims names must exist in volumes",
        ),
        case(
            "an overlay pod label under pingcap.com/",
            with(
                group("PDGroup", "bad-label", "c"),
                "spec/template/spec/overlay",
                json!({"pod": {"metadata": {"labels": {"pingcap.com/component": "x"}}}}),
            ),
            None,
            "spec.template.spec.overlay.pod.metadata",
            "cannot overlay pod labels starting with 'pingcap.com/'",
        ),
        case(
            "a group moved to another cluster",
            group("TiKVGroup", "moved", "c"),
            Some(json!({"spec": {"cluster": {"name": "other"}}})),
            "spec.cluster.name",
            "cluster name is immutable",
        ),
        case(
            "a changed subdomain",
            instance("TiDB", "subdomain"),
            Some(json!({"spec": {"subdomain": "other-peer"}})),
            "spec.subdomain",
            "subdomain is immutable",
        ),
        case(
            "cluster TLS turned on later",
            with(
                cluster_obj("tls"),
                "spec/tlsCluster",
                json!({"enabled": false}),
            ),
            Some(json!({"spec": {"tlsCluster": {"enabled": true}}})),
            "spec",
            "tlsCluster is immutable",
        ),
        case(
            "the DNS mode of a running cluster changed",
            cluster_obj("dns-mode"),
            Some(json!({"spec": {"dns": {"mode": "FQDN", "clusterDomain": "east.example"}}})),
            "spec.dns",
            operator_api::core::DNS_UNCHANGED_MESSAGE,
        ),
        case(
            "the FQDN names of a running cluster dropped",
            with(
                cluster_obj("dns-dropped"),
                "spec/dns",
                json!({"mode": "FQDN", "clusterDomain": "east.example"}),
            ),
            Some(json!({"spec": {"dns": null}})),
            "spec.dns",
            operator_api::core::DNS_UNCHANGED_MESSAGE,
        ),
        case(
            "a join URL with a path",
            with(
                cluster_obj("join-path"),
                "spec/join",
                json!({"pdURLs": ["http://pd-a.pd-pd-peer.db.svc.one.local:2379/pd"]}),
            ),
            None,
            "spec.join.pdURLs",
            operator_api::core::JOIN_URLS_MESSAGE,
        ),
        case(
            "the PD a running cluster joined changed",
            with(
                cluster_obj("join-changed"),
                "spec/join",
                json!({"pdURLs": ["http://pd-a.pd-pd-peer.db.svc.one.local:2379"]}),
            ),
            Some(
                json!({"spec": {"join": {"pdURLs": ["http://pd-b.pd-pd-peer.db.svc.one.local:2379"]}}}),
            ),
            "spec.join",
            operator_api::core::JOIN_UNCHANGED_MESSAGE,
        ),
        case(
            "a join added to a running cluster",
            cluster_obj("join-added"),
            Some(
                json!({"spec": {"join": {"pdURLs": ["http://pd-b.pd-pd-peer.db.svc.one.local:2379"]}}}),
            ),
            "spec.join",
            operator_api::core::JOIN_UNCHANGED_MESSAGE,
        ),
        case(
            "the cluster domain of a running FQDN cluster changed",
            with(
                cluster_obj("dns-domain"),
                "spec/dns",
                json!({"mode": "FQDN", "clusterDomain": "east.example"}),
            ),
            Some(json!({"spec": {"dns": {"clusterDomain": "west.example"}}})),
            "spec.dns",
            operator_api::core::DNS_UNCHANGED_MESSAGE,
        ),
        case(
            "a different bootstrap SQL",
            with(
                cluster_obj("bsql"),
                "spec/bootstrapSQL",
                json!({"name": "first"}),
            ),
            Some(json!({"spec": {"bootstrapSQL": {"name": "second"}}})),
            "spec",
            "bootstrapSQL can only be set at creation, can be unset, but cannot be changed to a different value",
        ),
        case(
            "FeatureModification turned off",
            gated_cluster,
            Some(json!({"spec": {"featureGates": [{"name": "VolumeAttributesClass"}]}})),
            "spec.featureGates",
            "cannot disable FeatureModification",
        ),
        case(
            "a feature gate added without FeatureModification",
            plain_cluster,
            Some(
                json!({"spec": {"featureGates": [{"name": "VolumeAttributesClass"}, {"name": "UsePDReadyAPI"}]}}),
            ),
            "spec.featureGates",
            "can only enable FeatureModification if it's not enabled",
        ),
        case(
            "a TiDB server label the operator owns",
            with(
                group("TiDBGroup", "zone-label", "c"),
                "spec/template/spec/server",
                json!({"labels": {"zone": "a"}}),
            ),
            None,
            "spec.template.spec.server.labels",
            "labels cannot contain 'host', 'region', or 'zone' keys",
        ),
        case(
            "PD scaled before it is bootstrapped",
            group("PDGroup", "early-scale", "c"),
            Some(json!({"spec": {"replicas": 5}})),
            "spec",
            "replicas cannot be changed when bootstrapped is false",
        ),
        case(
            "an unknown upgrade policy",
            with(
                cluster_obj("policy"),
                "spec/upgradePolicy",
                json!("Sometimes"),
            ),
            None,
            "spec.upgradePolicy",
            r#"Unsupported value: "Sometimes": supported values: "Default", "NoConstraints""#,
        ),
        case(
            "an unknown config update strategy",
            with(
                group("TiKVGroup", "strategy", "c"),
                "spec/template/spec/updateStrategy",
                json!({"config": "Rolling"}),
            ),
            None,
            "spec.template.spec.updateStrategy.config",
            r#"Unsupported value: "Rolling": supported values: "Restart", "HotReload""#,
        ),
        case(
            "a schedule topology with weight 0",
            with(
                group("TiKVGroup", "weight", "c"),
                "spec/schedulePolicies",
                json!([{"type": "EvenlySpread", "evenlySpread": {"topologies": [{"topology": {"zone": "a"}, "weight": 0}]}}]),
            ),
            None,
            "spec.schedulePolicies[0].evenlySpread.topologies[0].weight",
            "should be greater than or equal to 1",
        ),
        case(
            "a cluster reference that is not a DNS name",
            group("TiDBGroup", "bad-ref", "Bad_Name"),
            None,
            "spec.cluster.name",
            "spec.cluster.name in body should match",
        ),
        case(
            "MySQL TLS turned off later",
            with(
                group("TiDBGroup", "mysql-tls", "c"),
                "spec/template/spec/security",
                json!({"tls": {"mysql": {"enabled": true}}}),
            ),
            Some(
                json!({"spec": {"template": {"spec": {"security": {"tls": {"mysql": {"enabled": false}}}}}}}),
            ),
            "spec.template.spec.security.tls.mysql",
            "field .mysql.enabled is immutable",
        ),
        case(
            "a volume made smaller",
            group("TiKVGroup", "shrink", "c"),
            Some(json!({"spec": {"template": {"spec": {"volumes": [
                {"name": "data", "mounts": [{"type": "data"}], "storage": "5Gi"}
            ]}}}})),
            "spec.template.spec.volumes[0]",
            "storage cannot be made smaller: a volume cannot shrink (grow it, or keep its size)",
        ),
        case(
            "a volume of no size",
            with(
                group("TiKVGroup", "zero-size", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "0"}]),
            ),
            None,
            "spec.template.spec.volumes[0]",
            "Volume storage must be greater than 0 for all volumes",
        ),
        case(
            "a volume size that is not a quantity",
            with(
                group("PDGroup", "bad-size", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "ten gigs"}]),
            ),
            None,
            "spec.template.spec.volumes[0].storage",
            "should match",
        ),
        case(
            "a failover period that is not a duration",
            with(
                group("TiKVGroup", "bad-period", "c"),
                "spec/failover",
                json!({"period": "five minutes"}),
            ),
            None,
            "spec.failover.period",
            "should match",
        ),
        case(
            "more than 100 failover replacements",
            with(
                group("TiDBGroup", "many-replacements", "c"),
                "spec/failover",
                json!({"maxReplacements": 101}),
            ),
            None,
            "spec.failover.maxReplacements",
            "should be less than or equal to 100",
        ),
        case(
            "a negative minReadySeconds",
            with(
                group("TiKVGroup", "negative-ready", "c"),
                "spec/minReadySeconds",
                json!(-1),
            ),
            None,
            "spec.minReadySeconds",
            "should be greater than or equal to 0",
        ),
        case(
            "a TiKV server label the operator owns",
            with(
                group("TiKVGroup", "owned-label", "c"),
                "spec/template/spec/server",
                json!({"labels": {"zone": "a"}}),
            ),
            None,
            "spec.template.spec.server.labels",
            "labels cannot contain 'host', 'region', or 'zone' keys",
        ),
        case(
            "a TiKV server label under the placement prefix",
            with(
                group("TiKVGroup", "placement-label", "c"),
                "spec/template/spec/server",
                json!({"labels": {"k/disk": "ssd"}}),
            ),
            None,
            "spec.template.spec.server.labels",
            "labels cannot contain keys with 'k/' or '$k/' prefix",
        ),
        case(
            "a keyspace on a standby TiDB",
            with(
                with(instance("TiDB", "standby"), "spec/mode", json!("StandBy")),
                "spec/keyspace",
                json!("ks"),
            ),
            None,
            "spec",
            "keyspace cannot be set if mode is StandBy",
        ),
        case(
            "an unknown DNS mode",
            with(
                cluster_obj("dns-unknown"),
                "spec/dns",
                json!({"mode": "Short"}),
            ),
            None,
            "spec.dns.mode",
            "Unsupported value",
        ),
        case(
            "an unknown feature gate",
            with(
                cluster_obj("gate-unknown"),
                "spec/featureGates",
                json!([{"name": "FeatureModification"}, {"name": "Teleport"}]),
            ),
            None,
            "spec.featureGates[1].name",
            "Unsupported value",
        ),
        case(
            "a log backup with both the old and the new stop field",
            json!({
                "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Backup", "metadata": {"name": "log"},
                "spec": {"mode": "log", "logSubcommand": "log-stop", "logStop": true,
                         "br": {"cluster": "c"}, "s3": {"provider": "aws", "bucket": "b"}}
            }),
            None,
            "spec",
            "Field `logStop` is the old version field, please use `logSubcommand` instead",
        ),
    ]
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let (_cluster, client, _ns) = setup("crds").await;
    let installed = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in operator_api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let found = installed
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} not installed: {e}"));
        let established = found
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not Established");
        // What is installed is what this checkout generates.
        assert_eq!(
            found.spec.versions, crd.spec.versions,
            "CRD {name} differs from the generated one"
        );
    }
}

#[tokio::test]
async fn every_fixture_and_example_is_accepted() {
    let (_cluster, client, ns) = setup("fixtures").await;
    let manifests = load_manifests(&["tests/fixtures", "examples"]).unwrap();
    assert!(
        manifests.len() >= 20,
        "expected the fixtures, found {}",
        manifests.len()
    );
    let mut rejected = Vec::new();
    for manifest in &manifests {
        let mut value = manifest.value.clone();
        value["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let kind = manifest.kind().to_string();
        // A dry run goes through every admission step, including the CRD schema and CEL rules,
        // without the fixtures' names colliding.
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        if let Err(e) = api(&client, ns.name(), &kind)
            .create(&params, &object(value))
            .await
        {
            rejected.push(format!("{}: {e}", manifest.label()));
        }
    }
    assert!(
        rejected.is_empty(),
        "rejected manifests:\n{}",
        rejected.join("\n")
    );
}

#[tokio::test]
async fn every_example_applies_as_a_user_applies_it() {
    let (cluster, _client, ns) = setup("examples").await;
    let kubectl = cluster.kubectl();
    let dirs = scenarios::example_dirs().unwrap();
    assert!(dirs.len() >= 5, "examples: {dirs:?}");
    let mut refused = Vec::new();
    for dir in dirs {
        // A server-side dry run goes through the CRD schemas, CEL rules and every admission
        // plugin of the namespace without creating anything.
        let dir = dir.to_string_lossy();
        let args = [
            "apply",
            "-n",
            ns.name(),
            "--server-side",
            "--dry-run=server",
            "-k",
            &dir,
        ];
        if let Err(e) = kubectl.ok(&args, None) {
            refused.push(format!("{dir}: {e}"));
        }
    }
    assert!(
        refused.is_empty(),
        "refused examples:\n{}",
        refused.join("\n")
    );
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_the_rule_message() {
    let (_cluster, client, ns) = setup("invalid").await;
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let result = match &case.patch {
            None => create(&client, ns.name(), case.initial.clone()).await,
            Some(patch) => {
                if let Err(e) = create(&client, ns.name(), case.initial.clone()).await {
                    failures.push(format!(
                        "{}: the valid starting object was rejected: {e}",
                        case.name
                    ));
                    continue;
                }
                update(&client, ns.name(), &case.initial, patch.clone()).await
            }
        };
        match result {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let text = status.message;
                if status.code != 422 || !text.contains(&case.message) || !text.contains(case.field)
                {
                    failures.push(format!(
                        "{}: got {} {text:?}; want {:?} at {}",
                        case.name, status.code, case.message, case.field
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn kubectl_scale_get_and_field_selectors_work() {
    let (cluster, client, ns) = setup("kubectl").await;
    let kubectl = cluster.kubectl();
    let n = ns.name();
    create(
        &client,
        n,
        with(
            group("PDGroup", "pd", "alpha"),
            "spec/bootstrapped",
            json!(true),
        ),
    )
    .await
    .unwrap();
    create(&client, n, group("PDGroup", "pd-beta", "beta"))
        .await
        .unwrap();
    create(&client, n, group("TiKVGroup", "tikv", "alpha"))
        .await
        .unwrap();
    create(&client, n, group("TiDBGroup", "tidb", "alpha"))
        .await
        .unwrap();

    // The scale subresource: kubectl scale changes spec.replicas.
    kubectl
        .ok(&["scale", "-n", n, "pdgroup/pd", "--replicas=5"], None)
        .unwrap();
    kubectl
        .ok(&["scale", "-n", n, "kvg/tikv", "--replicas=4"], None)
        .unwrap();
    let replicas = |kind: &str, name: &str| {
        kubectl
            .ok(
                &[
                    "get",
                    "-n",
                    n,
                    kind,
                    name,
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
                None,
            )
            .unwrap()
    };
    assert_eq!(replicas("pdg", "pd"), "5");
    assert_eq!(replicas("tikvgroup", "tikv"), "4");
    assert_eq!(replicas("pdg", "pd-beta"), "3");

    // Printer columns, through the short names.
    for kind in ["pdg", "kvg", "dbg"] {
        let out = kubectl.ok(&["get", "-n", n, kind], None).unwrap();
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "CLUSTER",
                "DESIRED",
                "READY",
                "UPDATED",
                "UPDATEREVISION",
                "CURRENTREVISION",
                "SYNCED",
                "READY",
                "AGE"
            ],
            "{kind}"
        );
        assert!(
            out.lines().nth(1).unwrap().contains("alpha"),
            "{kind}: {out}"
        );
    }
    let out = kubectl.ok(&["get", "-n", n, "group"], None).unwrap();
    assert_eq!(
        out.lines().filter(|l| l.contains("alpha")).count(),
        3,
        "category `group` lists every group: {out}"
    );

    // The selectable field.
    let out = kubectl
        .ok(
            &[
                "get",
                "-n",
                n,
                "pdg",
                "--field-selector",
                "spec.cluster.name=alpha",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    assert_eq!(out.trim(), "pdgroup.core.pingcap.com/pd");
    let out = kubectl
        .ok(
            &[
                "get",
                "-n",
                n,
                "pdg",
                "--field-selector",
                "spec.cluster.name=beta",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    assert_eq!(out.trim(), "pdgroup.core.pingcap.com/pd-beta");
}

/// What the API server must answer to a parity case.
enum Want {
    /// Created (and, with a patch, updated).
    Accepted,
    /// Refused with 422, a message containing `message` and naming `field`.
    Rejected { field: String, message: String },
}

/// A case taken from the reference's own validation cases: the object (and the patch applied to
/// it once created) is accepted exactly when the reference accepts it.
struct Parity {
    family: &'static str,
    name: &'static str,
    initial: Value,
    patch: Option<Value>,
    want: Want,
}

fn accepted(
    family: &'static str,
    name: &'static str,
    initial: Value,
    patch: Option<Value>,
) -> Parity {
    Parity {
        family,
        name,
        initial,
        patch,
        want: Want::Accepted,
    }
}

fn rejected(
    family: &'static str,
    name: &'static str,
    initial: Value,
    patch: Option<Value>,
    field: &str,
    message: &str,
) -> Parity {
    Parity {
        family,
        name,
        initial,
        patch,
        want: Want::Rejected {
            field: field.to_string(),
            message: message.to_string(),
        },
    }
}

/// Builds an object of one kind with a given name.
type MakeObject = fn(&str) -> Value;

fn name_length_cases() -> Vec<Parity> {
    let mut cases = Vec::new();
    let objects: [(&str, usize, MakeObject); 11] = [
        ("Cluster", 37, cluster_obj),
        ("PDGroup", 40, |n| group("PDGroup", n, "c")),
        ("TiKVGroup", 40, |n| group("TiKVGroup", n, "c")),
        ("TiDBGroup", 40, |n| group("TiDBGroup", n, "c")),
        ("TiFlashGroup", 40, |n| group("TiFlashGroup", n, "c")),
        ("TiCDCGroup", 40, |n| group("TiCDCGroup", n, "c")),
        ("PD", 47, |n| instance("PD", n)),
        ("TiKV", 47, |n| instance("TiKV", n)),
        ("TiDB", 47, |n| instance("TiDB", n)),
        ("TiFlash", 47, |n| instance("TiFlash", n)),
        ("TiCDC", 47, |n| instance("TiCDC", n)),
    ];
    for (kind, limit, make) in objects {
        let fits = "a".repeat(limit);
        let over = "b".repeat(limit + 1);
        cases.push(accepted("name length", kind, make(&fits), None));
        cases.push(rejected(
            "name length",
            kind,
            make(&over),
            None,
            // A rule on the whole object names no field; the message names the object.
            &over,
            &format!("name must not exceed {limit} characters"),
        ));
    }
    cases
}

fn min_ready_seconds_cases() -> Vec<Parity> {
    let negative = "spec.minReadySeconds in body should be greater than or equal to 0";
    let mut cases = Vec::new();
    for (kind, prefix) in [
        ("PDGroup", "mrs-pd"),
        ("TiKVGroup", "mrs-kv"),
        ("TiDBGroup", "mrs-db"),
        ("TiFlashGroup", "mrs-fg"),
        ("TiCDCGroup", "mrs-cg"),
    ] {
        let with_value = |suffix: &str, value: i64| {
            with(
                group(kind, &format!("{prefix}-{suffix}"), "c"),
                "spec/minReadySeconds",
                json!(value),
            )
        };
        cases.extend([
            accepted("minReadySeconds", kind, with_value("zero", 0), None),
            accepted("minReadySeconds", kind, with_value("large", 3600), None),
            rejected(
                "minReadySeconds",
                kind,
                with_value("neg", -1),
                None,
                "spec.minReadySeconds",
                negative,
            ),
            accepted(
                "minReadySeconds",
                kind,
                with_value("to-zero", 10),
                Some(json!({"spec": {"minReadySeconds": 0}})),
            ),
            rejected(
                "minReadySeconds",
                kind,
                with_value("to-neg", 10),
                Some(json!({"spec": {"minReadySeconds": -1}})),
                "spec.minReadySeconds",
                negative,
            ),
        ]);
    }
    cases
}

fn max_surge_cases() -> Vec<Parity> {
    let surge =
        |name: &str, value: i64| with(group("TiDBGroup", name, "c"), "spec/maxSurge", json!(value));
    let message = "spec.maxSurge in body should be greater than or equal to 1";
    vec![
        accepted("maxSurge", "minimum", surge("surge-one", 1), None),
        accepted("maxSurge", "larger", surge("surge-three", 3), None),
        rejected(
            "maxSurge",
            "zero",
            surge("surge-zero", 0),
            None,
            "spec.maxSurge",
            message,
        ),
        rejected(
            "maxSurge",
            "negative",
            surge("surge-neg", -1),
            None,
            "spec.maxSurge",
            message,
        ),
        accepted(
            "maxSurge",
            "unset to a value",
            group("TiDBGroup", "surge-set", "c"),
            Some(json!({"spec": {"maxSurge": 2}})),
        ),
    ]
}

fn volume_cases() -> Vec<Parity> {
    let vac = |class: Option<&str>| {
        let mut volume = json!({"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"});
        if let Some(class) = class {
            volume["volumeAttributesClassName"] = Value::from(class);
        }
        json!({"spec": {"template": {"spec": {"volumes": [volume]}}}})
    };
    let with_vac = |name: &str| {
        with(
            group("TiKVGroup", name, "c"),
            "spec/template/spec/volumes",
            vac(Some("fast"))["spec"]["template"]["spec"]["volumes"].clone(),
        )
    };
    vec![
        accepted(
            "volumes",
            "VAC set later",
            group("TiKVGroup", "vac-set", "c"),
            Some(vac(Some("fast"))),
        ),
        accepted(
            "volumes",
            "VAC changed",
            with_vac("vac-change"),
            Some(vac(Some("slow"))),
        ),
        rejected(
            "volumes",
            "VAC removed",
            with_vac("vac-removed"),
            Some(vac(None)),
            "spec.template.spec.volumes[0]",
            "VolumeAttributesClassName cannot be changed from non-nil to nil",
        ),
        rejected(
            "volumes",
            "a PDGroup without the volumes field",
            with(
                group("PDGroup", "pd-no-volumes", "c"),
                "spec/template/spec/volumes",
                Value::Null,
            ),
            None,
            "spec.template.spec.volumes",
            "Required value",
        ),
        rejected(
            "volumes",
            "a PD without the volumes field",
            with(
                instance("PD", "pd-inst-no-volumes"),
                "spec/volumes",
                Value::Null,
            ),
            None,
            "spec.volumes",
            "Required value",
        ),
        rejected(
            "volumes",
            "a TiKVGroup with an empty volume list",
            with(
                group("TiKVGroup", "kv-empty-volumes", "c"),
                "spec/template/spec/volumes",
                json!([]),
            ),
            None,
            "spec.template.spec",
            "data volume must be configured",
        ),
        accepted(
            "volumes",
            "a mount without a type",
            with(
                group("TiDBGroup", "untyped-mount", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "scratch", "mounts": [{"mountPath": "/scratch"}], "storage": "1Gi"}]),
            ),
            None,
        ),
        rejected(
            "volumes",
            "a size that is not a quantity",
            with(
                group("TiDBGroup", "bad-size", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "scratch", "mounts": [{"mountPath": "/scratch"}], "storage": "10 GB"}]),
            ),
            None,
            "spec.template.spec.volumes[0].storage",
            "should match",
        ),
        rejected(
            "volumes",
            "a memory that is not a quantity",
            with(
                group("TiKVGroup", "bad-memory", "c"),
                "spec/template/spec/resources",
                json!({"memory": "lots"}),
            ),
            None,
            "spec.template.spec.resources.memory",
            "should match",
        ),
    ]
}

fn cluster_cases() -> Vec<Parity> {
    let mut feature_gates = Vec::new();
    for name in [
        "FeatureModification",
        "VolumeAttributesClass",
        "DisablePDDefaultReadinessProbe",
        "UsePDReadyAPI",
        "SessionTokenSigning",
        "ClusterSubdomain",
        "TerminableLogTailer",
        "UseTSOReadyAPI",
        "UseSchedulingReadyAPI",
        "UseTiKVReadyAPI",
        "UsePDReadyAPIV2",
        "UseTiFlashReadyAPI",
        "MultiPDGroup",
        "TiCDCDynamicSecretSyncer",
        "IndependentKVEngineWorker",
    ] {
        feature_gates.push(json!({"name": name}));
    }
    let tls = |name: &str| {
        with(
            cluster_obj(name),
            "spec/tlsCluster",
            json!({"enabled": true}),
        )
    };
    vec![
        accepted(
            "cluster",
            "without a spec",
            json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": "no-spec"}}),
            None,
        ),
        accepted(
            "cluster",
            "every feature gate of the reference",
            with(
                cluster_obj("all-gates"),
                "spec/featureGates",
                Value::Array(feature_gates),
            ),
            None,
        ),
        rejected(
            "cluster",
            "TLS added after creation",
            cluster_obj("tls-added"),
            Some(json!({"spec": {"tlsCluster": {"enabled": true}}})),
            "spec",
            "tlsCluster is immutable",
        ),
        rejected(
            "cluster",
            "TLS removed after creation",
            tls("tls-removed"),
            Some(json!({"spec": {"tlsCluster": null}})),
            "spec",
            "tlsCluster is immutable",
        ),
        accepted(
            "cluster",
            "TLS unchanged while other fields change",
            tls("tls-kept"),
            Some(json!({"spec": {"paused": true}})),
        ),
        rejected(
            "cluster",
            "an unknown DNS mode",
            with(
                cluster_obj("dns-mode"),
                "spec/dns",
                json!({"mode": "Short"}),
            ),
            None,
            "spec.dns.mode",
            r#"Unsupported value: "Short": supported values: "FQDN", "InCluster""#,
        ),
        accepted(
            "cluster",
            "the default DNS mode written out on a running cluster",
            cluster_obj("dns-written"),
            Some(json!({"spec": {"dns": {"mode": "InCluster"}}})),
        ),
        accepted(
            "cluster",
            "an FQDN cluster changed elsewhere",
            with(
                cluster_obj("dns-kept"),
                "spec/dns",
                json!({"mode": "FQDN", "clusterDomain": "east.example"}),
            ),
            Some(json!({"spec": {"paused": true}})),
        ),
        accepted(
            "cluster",
            "cluster security and the MultiPDGroup service name",
            with(
                with(
                    cluster_obj("security"),
                    "spec/security",
                    json!({"tls": {"client": {"insecureSkipTLSVerify": true, "certKeyPair": {"name": "c"}}},
                           "sessionTokenSigningCertKeyPair": {"name": "s"}}),
                ),
                "spec/customizedPDServiceName",
                json!("legacy-pd"),
            ),
            None,
        ),
    ]
}

fn server_label_cases() -> Vec<Parity> {
    let labels = |kind: &str, name: &str, labels: Value| {
        with(
            group(kind, name, "c"),
            "spec/template/spec/server",
            json!({"labels": labels}),
        )
    };
    let reserved = "labels cannot contain 'host', 'region', or 'zone' keys";
    let placement = "labels cannot contain keys with 'k/' or '$k/' prefix";
    let field = "spec.template.spec.server.labels";
    vec![
        rejected(
            "server labels",
            "TiKV host",
            labels("TiKVGroup", "kv-host", json!({"host": "a"})),
            None,
            field,
            reserved,
        ),
        rejected(
            "server labels",
            "TiKV region",
            labels("TiKVGroup", "kv-region", json!({"region": "a"})),
            None,
            field,
            reserved,
        ),
        rejected(
            "server labels",
            "TiKV zone",
            labels("TiKVGroup", "kv-zone", json!({"zone": "a"})),
            None,
            field,
            reserved,
        ),
        accepted(
            "server labels",
            "TiKV custom",
            labels(
                "TiKVGroup",
                "kv-custom",
                json!({"foo": "bar", "custom/k": "v"}),
            ),
            None,
        ),
        rejected(
            "server labels",
            "TiKV keyspace placement",
            labels("TiKVGroup", "kv-k", json!({"k/tikvgroup": "a"})),
            None,
            field,
            placement,
        ),
        rejected(
            "server labels",
            "TiKV exclusive placement",
            labels("TiKVGroup", "kv-dollar-k", json!({"$k/exclusive": "true"})),
            None,
            field,
            placement,
        ),
        rejected(
            "server labels",
            "TiDB region",
            labels("TiDBGroup", "db-region", json!({"region": "a"})),
            None,
            field,
            reserved,
        ),
        accepted(
            "server labels",
            "TiDB placement-like key",
            labels("TiDBGroup", "db-k", json!({"k/x": "a"})),
            None,
        ),
    ]
}

fn tidb_cases() -> Vec<Parity> {
    let tidb = |name: &str, mode: &str, keyspace: &str| {
        with(
            with(instance("TiDB", name), "spec/mode", json!(mode)),
            "spec/keyspace",
            json!(keyspace),
        )
    };
    let template = |name: &str, spec: Value| {
        let mut group = group("TiDBGroup", name, "c");
        for (key, value) in spec.as_object().unwrap() {
            group["spec"]["template"]["spec"][key] = value.clone();
        }
        group
    };
    vec![
        rejected(
            "tidb",
            "StandBy with a keyspace",
            tidb("standby-ks", "StandBy", "ks"),
            None,
            "spec",
            "keyspace cannot be set if mode is StandBy",
        ),
        accepted(
            "tidb",
            "StandBy without a keyspace",
            tidb("standby", "StandBy", ""),
            None,
        ),
        accepted(
            "tidb",
            "Normal with a keyspace",
            tidb("normal-ks", "Normal", "ks"),
            None,
        ),
        // The rule sits on the instance only, as in the reference.
        accepted(
            "tidb",
            "a group template in StandBy with a keyspace",
            template(
                "group-standby-ks",
                json!({"mode": "StandBy", "keyspace": "ks"}),
            ),
            None,
        ),
        rejected(
            "tidb",
            "an unknown mode",
            template("bad-mode", json!({"mode": "Sleeping"})),
            None,
            "spec.template.spec.mode",
            r#"Unsupported value: "Sleeping": supported values: "Normal", "StandBy""#,
        ),
        rejected(
            "tidb",
            "MySQL TLS without enabled",
            template("mysql-empty", json!({"security": {"tls": {"mysql": {}}}})),
            None,
            "spec.template.spec.security.tls.mysql.enabled",
            "Required value",
        ),
        accepted(
            "tidb",
            "TLS Secrets, client auth and SEM",
            template(
                "tls-secrets",
                json!({"security": {
                    "tls": {"mysql": {"enabled": true, "clientAuth": "NoClientCert", "certKeyPair": {"name": "s"}},
                            "cluster": {"ca": {"name": "ca"}}},
                    "sem": {"config": {"name": "sem"}}}}),
            ),
            None,
        ),
    ]
}

/// TiFlash carries TiKV's store rules (a data volume, store labels, `offline`); TiCDC needs no
/// volume. The reference's basic example of each is accepted as written.
fn tiflash_and_ticdc_cases() -> Vec<Parity> {
    let labels = |name: &str, labels: Value| {
        with(
            group("TiFlashGroup", name, "c"),
            "spec/template/spec/server",
            json!({"labels": labels}),
        )
    };
    let basic = load_manifests(&["tests/fixtures/reference"]).unwrap();
    let example = |kind: &str| {
        let mut value = basic
            .iter()
            .find(|m| m.kind() == kind && m.label().contains("basic-tiflash-ticdc"))
            .unwrap()
            .value
            .clone();
        value["metadata"]["name"] = json!(format!("basic-{}", kind.to_lowercase()));
        value
    };
    // The example writes an empty proxy config; the fixture leaves it out (it round-trips away).
    let tiflash_example = with(
        example("TiFlashGroup"),
        "spec/template/spec/proxyConfig",
        json!(""),
    );
    vec![
        accepted(
            "tiflash",
            "basic example TiFlashGroup",
            tiflash_example,
            None,
        ),
        accepted(
            "ticdc",
            "basic example TiCDCGroup",
            example("TiCDCGroup"),
            None,
        ),
        rejected(
            "tiflash",
            "a TiFlashGroup without a data volume",
            with(
                group("TiFlashGroup", "fg-no-data", "c"),
                "spec/template/spec/volumes",
                json!([{"name": "log", "mounts": [{"mountPath": "/log"}], "storage": "1Gi"}]),
            ),
            None,
            "spec.template.spec",
            "data volume must be configured",
        ),
        rejected(
            "tiflash",
            "a TiFlashGroup without volumes",
            with(
                group("TiFlashGroup", "fg-no-volumes", "c"),
                "spec/template/spec/volumes",
                json!(null),
            ),
            None,
            "spec.template.spec.volumes",
            "Required value",
        ),
        rejected(
            "tiflash",
            "a TiFlash instance without a data volume",
            with(instance("TiFlash", "f-no-data"), "spec/volumes", json!([])),
            None,
            "spec",
            "data volume must be configured",
        ),
        rejected(
            "tiflash",
            "a TiFlash store label the operator owns",
            labels("fg-zone", json!({"zone": "a"})),
            None,
            "spec.template.spec.server.labels",
            "labels cannot contain 'host', 'region', or 'zone' keys",
        ),
        rejected(
            "tiflash",
            "a TiFlash store label under the placement prefix",
            labels("fg-k", json!({"k/x": "a"})),
            None,
            "spec.template.spec.server.labels",
            "labels cannot contain keys with 'k/' or '$k/' prefix",
        ),
        accepted(
            "tiflash",
            "a TiFlash custom store label",
            labels("fg-custom", json!({"disk": "ssd"})),
            None,
        ),
        rejected(
            "tiflash",
            "a TiFlash overlay claim that is not a volume",
            with(
                group("TiFlashGroup", "fg-bad-claim", "c"),
                "spec/template/spec/overlay",
                json!({"volumeClaims": [{"name": "log", "volumeClaim": {"metadata": {"labels": {"a": "b"}}}}]}),
            ),
            None,
            "spec.template.spec",
            "overlay volumeClaims names must exist in volumes",
        ),
        accepted(
            "tiflash",
            "TiFlash marked offline",
            instance("TiFlash", "f-offline"),
            Some(json!({"spec": {"offline": true}})),
        ),
        rejected(
            "tiflash",
            "TiFlash replicas 2",
            with(instance("TiFlash", "f-two"), "spec/replicas", json!(2)),
            None,
            "spec.replicas",
            "should be less than or equal to 1",
        ),
        rejected(
            "tiflash",
            "a TiFlash topology changed",
            instance("TiFlash", "f-topo"),
            Some(json!({"spec": {"topology": {"topology.kubernetes.io/zone": "zone-b"}}})),
            "spec.topology",
            "topology is immutable",
        ),
        rejected(
            "tiflash",
            "a TiFlash subdomain changed",
            instance("TiFlash", "f-subdomain"),
            Some(json!({"spec": {"subdomain": "other"}})),
            "spec.subdomain",
            "subdomain is immutable",
        ),
        rejected(
            "tiflash",
            "a TiFlashGroup moved to another cluster",
            group("TiFlashGroup", "fg-moved", "c"),
            Some(json!({"spec": {"cluster": {"name": "other"}}})),
            "spec.cluster.name",
            "cluster name is immutable",
        ),
        rejected(
            "tiflash",
            "negative TiFlash replicas",
            with(
                group("TiFlashGroup", "fg-negative", "c"),
                "spec/replicas",
                json!(-1),
            ),
            None,
            "spec.replicas",
            "spec.replicas in body should be greater than or equal to 0",
        ),
        accepted(
            "ticdc",
            "a TiCDCGroup without volumes",
            group("TiCDCGroup", "cg-no-volumes", "c"),
            None,
        ),
        rejected(
            "ticdc",
            "a TiCDC overlay claim that is not a volume",
            with(
                group("TiCDCGroup", "cg-bad-claim", "c"),
                "spec/template/spec/overlay",
                json!({"volumeClaims": [{"name": "sort", "volumeClaim": {"metadata": {"labels": {"a": "b"}}}}]}),
            ),
            None,
            "spec.template.spec",
            "overlay volumeClaims names must exist in volumes",
        ),
        rejected(
            "ticdc",
            "a TiCDC overlay pod label under pingcap.com/",
            with(
                group("TiCDCGroup", "cg-bad-label", "c"),
                "spec/template/spec/overlay",
                json!({"pod": {"metadata": {"labels": {"pingcap.com/component": "x"}}}}),
            ),
            None,
            "spec.template.spec.overlay.pod.metadata",
            "cannot overlay pod labels starting with 'pingcap.com/'",
        ),
        rejected(
            "ticdc",
            "a TiCDC topology removed",
            instance("TiCDC", "c-topo-removed"),
            Some(json!({"spec": {"topology": null}})),
            "spec.topology",
            "topology can only be set when creating",
        ),
        rejected(
            "ticdc",
            "TiCDC replicas 0",
            with(instance("TiCDC", "c-zero"), "spec/replicas", json!(0)),
            None,
            "spec.replicas",
            "should be greater than or equal to 1",
        ),
        rejected(
            "ticdc",
            "a TiCDC version that is not semantic",
            with(
                group("TiCDCGroup", "cg-version", "c"),
                "spec/template/spec/version",
                json!("8.5"),
            ),
            None,
            "spec.template.spec.version",
            "spec.template.spec.version in body should match",
        ),
    ]
}

fn instance_and_pd_cases() -> Vec<Parity> {
    let replicas = |kind: &str, name: &str, value: i64| {
        with(instance(kind, name), "spec/replicas", json!(value))
    };
    vec![
        accepted(
            "instances",
            "PD replicas 1",
            replicas("PD", "pd-one", 1),
            None,
        ),
        rejected(
            "instances",
            "TiKV replicas 2",
            replicas("TiKV", "kv-two", 2),
            None,
            "spec.replicas",
            "should be less than or equal to 1",
        ),
        rejected(
            "instances",
            "TiDB replicas 0",
            replicas("TiDB", "db-zero", 0),
            None,
            "spec.replicas",
            "should be greater than or equal to 1",
        ),
        accepted(
            "instances",
            "TiKV marked offline",
            instance("TiKV", "kv-offline"),
            Some(json!({"spec": {"offline": true}})),
        ),
        accepted(
            "pd",
            "PD mode changed after creation",
            group("PDGroup", "pd-mode", "c"),
            Some(json!({"spec": {"template": {"spec": {"mode": "ms"}}}})),
        ),
        accepted(
            "pd",
            "PD and TiKV cluster TLS Secrets",
            with(
                group("PDGroup", "pd-tls", "c"),
                "spec/template/spec/security",
                json!({"tls": {"cluster": {"ca": {"name": "ca"}, "certKeyPair": {"name": "pd"}}}}),
            ),
            None,
        ),
        accepted(
            "tikv",
            "placement and remote workers",
            with(
                with(
                    group("TiKVGroup", "kv-workers", "c"),
                    "spec/template/spec/placement",
                    json!({"exclusive": true}),
                ),
                "spec/template/spec/remoteWorkers",
                json!({"worker": {"name": "w"}, "compactor": {"name": "c"}}),
            ),
            None,
        ),
    ]
}

fn backup_cases() -> Vec<Parity> {
    let log_backup = |name: &str, command: &str| {
        json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Backup", "metadata": {"name": name},
            "spec": {"backupMode": "log", "logSubcommand": command, "logTruncateUntil": "2024-05-01 00:00:00",
                     "br": {"cluster": "c"}, "s3": {"provider": "aws", "bucket": "b"}}
        })
    };
    vec![
        accepted(
            "backup",
            "log-resume",
            log_backup("log-resume", "log-resume"),
            None,
        ),
        accepted(
            "backup",
            "log-truncate",
            log_backup("log-truncate", "log-truncate"),
            None,
        ),
        rejected(
            "backup",
            "an unknown log command",
            log_backup("log-bad", "log-rewind"),
            None,
            "spec.logSubcommand",
            "Unsupported value",
        ),
        accepted(
            "restore",
            "backoffLimit",
            json!({
                "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Restore", "metadata": {"name": "backoff"},
                "spec": {"backoffLimit": 3, "br": {"cluster": "c"}, "s3": {"provider": "aws", "bucket": "b"}}
            }),
            None,
        ),
    ]
}

fn compact_backup_cases() -> Vec<Parity> {
    let compact = |name: &str, spec: Value| {
        json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "CompactBackup",
            "metadata": {"name": name}, "spec": spec
        })
    };
    vec![
        accepted(
            "compact",
            "a compaction of S3 log data",
            compact(
                "cpbk-s3",
                json!({"startTs": "400036290571534337", "endTs": "2018-05-11 01:42:23",
                       "concurrency": 8, "maxRetryTimes": 2, "br": {"cluster": "c"},
                       "s3": {"provider": "aws", "bucket": "b", "prefix": "log"}}),
            ),
            None,
        ),
        // The reference leaves the storage and br to a schedule when they are missing.
        accepted(
            "compact",
            "an empty spec",
            compact("cpbk-empty", json!({})),
            None,
        ),
        rejected(
            "compact",
            "no spec",
            json!({"apiVersion": "br.pingcap.com/v1alpha1", "kind": "CompactBackup",
                   "metadata": {"name": "cpbk-nospec"}}),
            None,
            "spec",
            "Required value",
        ),
        rejected(
            "compact",
            "br without a cluster",
            compact("cpbk-nocluster", json!({"br": {"logLevel": "info"}})),
            None,
            "spec.br.cluster",
            "Required value",
        ),
        rejected(
            "compact",
            "a concurrency that is not a number",
            compact("cpbk-concurrency", json!({"concurrency": "four"})),
            None,
            "spec.concurrency",
            "must be of type integer",
        ),
        rejected(
            "compact",
            "local storage without its volume",
            compact("cpbk-local", json!({"local": {"prefix": "p"}})),
            None,
            "spec.local.volume",
            "Required value",
        ),
    ]
}

#[tokio::test]
async fn manifests_are_accepted_exactly_when_the_reference_accepts_them() {
    let (_cluster, client, ns) = setup("parity").await;
    let cases: Vec<Parity> = [
        name_length_cases(),
        min_ready_seconds_cases(),
        max_surge_cases(),
        volume_cases(),
        cluster_cases(),
        server_label_cases(),
        tidb_cases(),
        tiflash_and_ticdc_cases(),
        instance_and_pd_cases(),
        backup_cases(),
        compact_backup_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut failures = Vec::new();
    for case in &cases {
        let label = format!("{}: {}", case.family, case.name);
        let result = match &case.patch {
            None => create(&client, ns.name(), case.initial.clone()).await,
            Some(patch) => {
                if let Err(e) = create(&client, ns.name(), case.initial.clone()).await {
                    failures.push(format!(
                        "{label}: the valid starting object was rejected: {e}"
                    ));
                    continue;
                }
                update(&client, ns.name(), &case.initial, patch.clone()).await
            }
        };
        match (&case.want, result) {
            (Want::Accepted, Ok(_)) => {}
            (Want::Accepted, Err(e)) => failures.push(format!("{label}: rejected: {e}")),
            (Want::Rejected { .. }, Ok(_)) => failures.push(format!("{label}: accepted")),
            (Want::Rejected { field, message }, Err(kube::Error::Api(status))) => {
                let text = status.message;
                if status.code != 422
                    || !text.contains(message.as_str())
                    || !text.contains(field.as_str())
                {
                    failures.push(format!(
                        "{label}: got {} {text:?}; want {message:?} at {field}",
                        status.code
                    ));
                }
            }
            (Want::Rejected { .. }, Err(e)) => failures.push(format!("{label}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_api_server_fills_in_the_reference_defaults() {
    let (cluster, client, ns) = setup("defaults").await;
    let n = ns.name();
    let get = |kind: &'static str, name: &'static str| {
        let client = client.clone();
        async move {
            let object = api(&client, n, kind).get(name).await.unwrap();
            serde_json::to_value(object).unwrap()
        }
    };
    create(
        &client,
        n,
        json!({"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster", "metadata": {"name": "bare"}}),
    )
    .await
    .unwrap();
    assert_eq!(get("Cluster", "bare").await["spec"], json!({}));
    create(&client, n, with(cluster_obj("dns"), "spec/dns", json!({})))
        .await
        .unwrap();
    assert_eq!(
        get("Cluster", "dns").await["spec"]["dns"],
        json!({"mode": "InCluster", "clusterDomain": "cluster.local"})
    );
    create(&client, n, instance("PD", "pd-default"))
        .await
        .unwrap();
    assert_eq!(get("PD", "pd-default").await["spec"]["replicas"], json!(1));
    create(&client, n, group("TiDBGroup", "tidb-default", "c"))
        .await
        .unwrap();
    assert_eq!(
        get("TiDBGroup", "tidb-default").await["spec"]["template"]["spec"]["mode"],
        json!("Normal")
    );
    create(
        &client,
        n,
        json!({"apiVersion": "br.pingcap.com/v1alpha1", "kind": "CompactBackup",
               "metadata": {"name": "compact-default"}, "spec": {"startTs": "1", "endTs": "2"}}),
    )
    .await
    .unwrap();
    let compact = get("CompactBackup", "compact-default").await;
    assert_eq!(compact["spec"]["concurrency"], json!(4));
    assert_eq!(compact["spec"]["maxRetryTimes"], json!(6));
    // An instance's scale subresource reads its one replica, for PodDisruptionBudgets.
    let out = cluster
        .kubectl()
        .ok(
            &[
                "get",
                "-n",
                n,
                "pd",
                "pd-default",
                "--subresource=scale",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
        .unwrap();
    assert_eq!(out.trim(), "1");
}
