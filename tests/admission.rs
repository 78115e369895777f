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
    if kind != "TiDBGroup" {
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
    if kind != "TiDB" {
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
            "spec.template.spec",
            "data volume must be configured",
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
            "a name over 30 characters",
            group("TiKVGroup", "tikv-with-a-name-far-too-long-31", "c"),
            None,
            // A rule on the whole object names no field; the message names the object.
            "tikv-with-a-name-far-too-long-31",
            "name must not exceed 30 characters",
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
            "spec.tlsCluster",
            "field .tlsCluster.enabled is immutable",
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
            "PD mode set after creation",
            group("PDGroup", "mode", "c"),
            Some(json!({"spec": {"template": {"spec": {"mode": "ms"}}}})),
            "spec.template.spec.mode",
            "pd mode can only be set when creating now",
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
