//! TLS end to end: a real cert-manager (built from its Go module by hack/build-tools.sh) issues
//! the certificates as tidb-operator v2's `examples/tls` does (a self-signed Issuer, a CA
//! Certificate, an Issuer on that CA, a Certificate per component group, the operator's client
//! Certificate and TiDB's MySQL server Certificate); every controller runs as a process under its
//! shipped RBAC; the operand simulator serves PD, TiKV and TiDB status over mutual TLS with the
//! certificates of those Secrets. Each scenario ends with the simulator's data-safety verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_api::conditions::{self, HasConditions};
use operator_api::core::{
    Cluster, PDGroup, TiCDC, TiCDCGroup, TiDBGroup, TiFlash, TiFlashGroup, TiKV, TiKVGroup,
};
use operator_api::keys::{self, LABEL_MANAGED_BY};
use scenarios::{Allowed, Controller, TlsSimulator, apply_controller_identity, ensure_crds};
use serde_json::{Value, json};
use testkit::{CertManager, LocalCluster, TestNamespace, wait_until};

const WAIT: Duration = Duration::from_secs(240);
const CLUSTER: &str = "tls";
/// How long before the end of an hour-long certificate cert-manager renews it in the renewal
/// scenario: every 20 s.
const RENEW_BEFORE: &str = "59m40s";
/// The Secrets of the Certificates the renewal scenario renews: each component group's and the
/// operator's client certificate.
const RENEWED: [&str; 4] = [
    "pd-pd-cluster-secret",
    "tikv-tikv-cluster-secret",
    "tidb-tidb-cluster-secret",
    "tls-cluster-client-secret",
];
const BINARIES: [&str; 4] = [
    "cluster-controller",
    "pd-controller",
    "tikv-controller",
    "tidb-controller",
];

/// The cert-manager objects of `examples/tls` for the Cluster `tls` in `ns`: the CA chain, one
/// Certificate per group (`<group>-<component>-cluster-secret`, server and client auth), the
/// operator's client certificate and TiDB's MySQL server certificate.
///
/// With `short_lived`, the component and client Certificates last an hour and are renewed
/// [`RENEW_BEFORE`] before they expire, so cert-manager renews each every 20 s.
fn issuers_and_certificates(ns: &str, short_lived: bool) -> String {
    let mut docs = vec![
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "tls-ca"},
               "spec": {"secretName": "tls-ca-secret", "commonName": "TiDB CA", "isCA": true,
                        "issuerRef": {"name": "selfsigned", "kind": "Issuer"}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "tls-issuer"}, "spec": {"ca": {"secretName": "tls-ca-secret"}}}),
    ];
    let mut renewed = Vec::new();
    for component in ["pd", "tikv", "tidb"] {
        renewed.push(component_certificate(ns, component));
    }
    renewed.push(certificate(
        &format!("{CLUSTER}-cluster-client-secret"),
        json!({"commonName": "TiDB", "usages": ["client auth"]}),
    ));
    for mut doc in renewed {
        if short_lived {
            doc["spec"]["duration"] = json!("1h");
            doc["spec"]["renewBefore"] = json!(RENEW_BEFORE);
        }
        docs.push(doc);
    }
    docs.push(certificate(
        "tidb-tidb-server-secret",
        json!({"commonName": "TiDB Server", "usages": ["server auth"],
               "dnsNames": ["tidb-tidb", format!("tidb-tidb.{ns}"), format!("tidb-tidb.{ns}.svc")],
               "ipAddresses": ["127.0.0.1", "::1"]}),
    ));
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The Certificate of a group named as its component.
fn component_certificate(ns: &str, component: &str) -> Value {
    let group = component;
    let mut names = Vec::new();
    for service in [
        format!("{group}-{component}"),
        format!("{group}-{component}-peer"),
    ] {
        names.push(service.clone());
        names.push(format!("{service}.{ns}"));
        names.push(format!("{service}.{ns}.svc"));
        names.push(format!("*.{service}"));
        names.push(format!("*.{service}.{ns}"));
        names.push(format!("*.{service}.{ns}.svc"));
    }
    certificate(
        &format!("{group}-{component}-cluster-secret"),
        json!({"commonName": "TiDB", "usages": ["server auth", "client auth"],
               "dnsNames": names, "ipAddresses": ["127.0.0.1", "::1"]}),
    )
}

fn certificate(secret: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["secretName"] = json!(secret);
    spec["subject"] = json!({"organizations": ["PingCAP"]});
    spec["issuerRef"] = json!({"name": "tls-issuer", "kind": "Issuer", "group": "cert-manager.io"});
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": secret}, "spec": spec})
}

/// Every controller, cert-manager and the TLS simulator on a fresh namespace.
struct Scene {
    cluster: LocalCluster,
    client: Client,
    ns: TestNamespace,
    cert_manager: CertManager,
    simulator: TlsSimulator,
    controllers: Vec<Controller>,
}

impl Scene {
    async fn start(prefix: &str) -> Scene {
        let cluster = LocalCluster::get().unwrap();
        ensure_crds(&cluster).unwrap();
        for binary in BINARIES {
            apply_controller_identity(&cluster, binary).unwrap();
        }
        let client = cluster.client().await.unwrap();
        let ns = TestNamespace::create(&cluster, &client, prefix)
            .await
            .unwrap();
        let cert_manager = CertManager::start(&cluster, ns.name()).await.unwrap();
        let simulator = TlsSimulator::start(&cluster, ns.name()).await.unwrap();
        let mut controllers = Vec::new();
        for binary in BINARIES {
            controllers.push(
                Controller::start(
                    &cluster,
                    &client,
                    binary,
                    ns.name(),
                    0,
                    &simulator.overrides(),
                )
                .await
                .unwrap(),
            );
        }
        Scene {
            cluster,
            client,
            ns,
            cert_manager,
            simulator,
            controllers,
        }
    }

    fn n(&self) -> &str {
        self.ns.name()
    }

    /// Applies the issuers and Certificates and waits for every Secret they make.
    async fn issue(&self) {
        self.issue_with(false).await;
    }

    /// [`Scene::issue`], with the component and client certificates `short_lived`.
    async fn issue_with(&self, short_lived: bool) {
        self.cluster
            .kubectl()
            .ok(
                &["apply", "-n", self.n(), "-f", "-"],
                Some(&issuers_and_certificates(self.n(), short_lived)),
            )
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), self.n());
        let wanted = [
            "pd-pd-cluster-secret".to_string(),
            "tikv-tikv-cluster-secret".to_string(),
            "tidb-tidb-cluster-secret".to_string(),
            format!("{CLUSTER}-cluster-client-secret"),
            "tidb-tidb-server-secret".to_string(),
        ];
        let cert_manager = &self.cert_manager;
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            "cert-manager issued every certificate (tls.crt, tls.key, ca.crt)",
            WAIT,
            || scenarios::issued(&secrets, &wanted),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- cert-manager ---\n{}", cert_manager.output()));
    }

    /// The Cluster with TLS on and its groups: PD `pd`, TiKV `tikv`, TiDB `tidb` (MySQL TLS on).
    async fn create_cluster(&self, pd: i32, tikv: i32, tidb: i32) {
        let object: Cluster = serde_json::from_value(json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
            "metadata": {"name": CLUSTER}, "spec": {"tlsCluster": {"enabled": true}}
        }))
        .unwrap();
        Api::<Cluster>::namespaced(self.client.clone(), self.n())
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        let data = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "1Gi"}]);
        let group = |kind: &str, name: &str, replicas: i32, spec: Value| {
            json!({
                "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind, "metadata": {"name": name},
                "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas,
                         "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                         "template": {"spec": spec}}
            })
        };
        let stores = json!({"version": "v8.5.2", "volumes": data});
        Api::<PDGroup>::namespaced(self.client.clone(), self.n())
            .create(
                &PostParams::default(),
                &serde_json::from_value(group("PDGroup", "pd", pd, stores.clone())).unwrap(),
            )
            .await
            .unwrap();
        Api::<TiKVGroup>::namespaced(self.client.clone(), self.n())
            .create(
                &PostParams::default(),
                &serde_json::from_value(group("TiKVGroup", "tikv", tikv, stores)).unwrap(),
            )
            .await
            .unwrap();
        let tidb_spec = json!({"version": "v8.5.2",
                               "security": {"tls": {"mysql": {"enabled": true}}}});
        Api::<TiDBGroup>::namespaced(self.client.clone(), self.n())
            .create(
                &PostParams::default(),
                &serde_json::from_value(group("TiDBGroup", "tidb", tidb, tidb_spec)).unwrap(),
            )
            .await
            .unwrap();
    }

    /// Waits for the Cluster Available and Ready with these replicas.
    async fn wait_ready(&self, replicas: &[i32]) {
        let clusters: Api<Cluster> = Api::namespaced(self.client.clone(), self.n());
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            &format!("Cluster {CLUSTER} Available and Ready with {replicas:?}"),
            WAIT,
            || async {
                let c = clusters.get(CLUSTER).await?;
                let found: Vec<i32> = c
                    .status
                    .as_ref()
                    .map(|s| s.components.iter().map(|p| p.replicas).collect())
                    .unwrap_or_default();
                Ok::<_, kube::Error>(
                    conditions::is_true(c.conditions(), conditions::AVAILABLE)
                        && conditions::is_true(c.conditions(), conditions::READY)
                        && found == replicas,
                )
            },
        )
        .await
        .unwrap();
    }

    /// The UIDs of the Pods of `component`.
    async fn pod_uids(&self, component: &str) -> BTreeSet<String> {
        Api::<Pod>::namespaced(self.client.clone(), self.n())
            .list(&ListParams::default().labels(&format!("{}={component}", keys::LABEL_COMPONENT)))
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|p| p.uid())
            .collect()
    }

    /// The `seq` of the simulator's last event so far.
    async fn last_seq(&self) -> u64 {
        scenarios::last_seq(
            &self
                .simulator
                .simulator
                .events(self.n(), CLUSTER)
                .await
                .unwrap(),
        )
    }

    /// Waits until every TiDB server of `before` was replaced and the group `tidb` settled on
    /// `replicas` Ready servers, the MySQL Service never without an endpoint meanwhile; then
    /// checks from the simulator's log (after `start`) that each was replaced once.
    async fn wait_tidb_rolled(&self, before: &BTreeSet<String>, replicas: i32, start: u64) {
        let emptied = std::cell::Cell::new(false);
        wait_until(
            &self.cluster.kubectl(),
            self.n(),
            "every TiDB server replaced, a new one Ready before an old one went",
            WAIT,
            || async {
                let endpoints =
                    scenarios::ready_endpoints(&self.client, self.n(), "tidb-tidb").await?;
                emptied.set(emptied.get() || endpoints.is_empty());
                let now = self.pod_uids("tidb").await;
                let group = Api::<TiDBGroup>::namespaced(self.client.clone(), self.n())
                    .get("tidb")
                    .await?;
                let status = group.status.clone().unwrap_or_default();
                Ok::<_, kube::Error>(
                    now.len() == usize::try_from(replicas).unwrap_or_default()
                        && now.is_disjoint(before)
                        && status.common.current_revision == status.common.update_revision
                        && status.group.ready_replicas == replicas
                        && conditions::is_true(group.conditions(), conditions::READY),
                )
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- cert-manager ---\n{}", self.cert_manager.output()));
        assert!(
            !emptied.get(),
            "the MySQL Service lost every endpoint during the roll"
        );
        let events = self
            .simulator
            .simulator
            .events(self.n(), CLUSTER)
            .await
            .unwrap();
        scenarios::replaced_exactly_once(&events, start, before, &["tidb"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Checks that no controller exited (none was restarted).
    fn assert_controllers_running(&mut self) {
        for controller in &mut self.controllers {
            assert!(
                controller.process.exited().is_none(),
                "a controller exited:\n{}",
                controller.process.output()
            );
        }
    }

    async fn verdict(&self) {
        self.simulator
            .simulator
            .verdict(self.n(), CLUSTER, &Allowed::none())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_tls_cluster_with_certificates_from_cert_manager_comes_up_over_mutual_tls() {
    let scene = Scene::start("tls").await;
    let n = scene.n();
    scene.issue().await;
    scene.create_cluster(3, 3, 2).await;
    scene.wait_ready(&[3, 3, 2]).await;

    // The PD URL every component and Job is given is https.
    let clusters: Api<Cluster> = Api::namespaced(scene.client.clone(), n);
    let status = clusters.get(CLUSTER).await.unwrap().status.unwrap();
    assert_eq!(status.pd, format!("https://pd-pd.{n}:2379"));

    // Every component's config names its certificates at tidb-operator v2's paths, and every
    // URL in it is https.
    let expected: &[(&str, &[(&str, &str)])] = &[
        (
            "pd",
            &[
                ("security.cacert-path", "/var/lib/pd-tls/ca.crt"),
                ("security.cert-path", "/var/lib/pd-tls/tls.crt"),
                ("security.key-path", "/var/lib/pd-tls/tls.key"),
            ],
        ),
        (
            "tikv",
            &[
                ("security.ca-path", "/var/lib/tikv-tls/ca.crt"),
                ("security.cert-path", "/var/lib/tikv-tls/tls.crt"),
                ("security.key-path", "/var/lib/tikv-tls/tls.key"),
            ],
        ),
        (
            "tidb",
            &[
                ("security.cluster-ssl-ca", "/var/lib/tidb-tls/ca.crt"),
                ("security.cluster-ssl-cert", "/var/lib/tidb-tls/tls.crt"),
                ("security.cluster-ssl-key", "/var/lib/tidb-tls/tls.key"),
                // The server Secret carries a CA: clients are asked for certificates.
                ("security.ssl-ca", "/var/lib/tidb-sql-tls/ca.crt"),
                ("security.ssl-cert", "/var/lib/tidb-sql-tls/tls.crt"),
                ("security.ssl-key", "/var/lib/tidb-sql-tls/tls.key"),
            ],
        ),
    ];
    let config_maps = Api::<ConfigMap>::namespaced(scene.client.clone(), n)
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=tidb-operator")))
        .await
        .unwrap();
    let mut seen = 0;
    for cm in &config_maps.items {
        let component = cm
            .labels()
            .get("pingcap.com/component")
            .cloned()
            .unwrap_or_default();
        let Some((_, keys)) = expected.iter().find(|(c, _)| *c == component) else {
            continue;
        };
        let text = cm.data.as_ref().unwrap()["config.toml"].clone();
        let table: toml::Table = text.parse().unwrap();
        for (key, path) in *keys {
            assert_eq!(
                scenarios::toml_value(&table, key).as_deref(),
                Some(*path),
                "{} {key}:\n{text}",
                cm.name_any()
            );
        }
        for key in [
            "advertise-client-urls",
            "advertise-peer-urls",
            "pd.endpoints",
        ] {
            if let Some(url) = scenarios::toml_value(&table, key) {
                assert!(
                    url.starts_with("https://"),
                    "{} {key} = {url}",
                    cm.name_any()
                );
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 8, "one ConfigMap per instance");

    // Each Pod mounts its group's Secret, read-only, where its config says.
    let pods = Api::<Pod>::namespaced(scene.client.clone(), n)
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=tidb-operator")))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 8);
    for pod in &pods.items {
        let component = pod.labels()["pingcap.com/component"].clone();
        let spec = pod.spec.as_ref().unwrap();
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .unwrap_or_else(|| panic!("{} has no tls volume", pod.name_any()));
        assert_eq!(
            volume.secret.as_ref().and_then(|s| s.secret_name.clone()),
            Some(format!("{component}-{component}-cluster-secret"))
        );
        let main = spec
            .containers
            .iter()
            .find(|c| c.name == component)
            .unwrap();
        let mount = main
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "tls")
            .unwrap();
        assert_eq!(mount.mount_path, format!("/var/lib/{component}-tls"));
        assert_eq!(mount.read_only, Some(true));
        if component == "tidb" {
            let sql = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "tidb-sql-tls")
                .unwrap();
            assert_eq!(
                sql.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
                Some("tidb-tidb-server-secret")
            );
        }
    }

    // The operator's calls reached PD and TiDB only through mutual TLS: the simulator's TLS
    // listeners are the only place they can go, and they accept no client without a
    // certificate from the cluster's CA.
    let handshakes = scene.simulator.handshakes().await.unwrap();
    for component in ["pd", "tidb"] {
        let accepted = handshakes[component]["accepted"]
            .as_u64()
            .unwrap_or_default();
        assert!(
            accepted > 0,
            "no mTLS handshake on {component}: {handshakes}"
        );
    }

    // A client that trusts the CA but has no certificate of its own is refused.
    let secrets: Api<Secret> = Api::namespaced(scene.client.clone(), n);
    let client_secret = secrets
        .get(&format!("{CLUSTER}-cluster-client-secret"))
        .await
        .unwrap();
    let ca = client_secret.data.as_ref().unwrap()["ca.crt"].0.clone();
    let anonymous = pd_client::PdClient::new(
        &format!("{}/clusters/{n}/{CLUSTER}", scene.simulator.urls["pd"]),
        Some(&pd_client::TlsConfig {
            ca_pem: ca.clone(),
            cert_pem: None,
            key_pem: None,
        }),
        Duration::from_secs(3),
    )
    .unwrap();
    let refused_before = handshakes["pd"]["refused"].as_u64().unwrap_or_default();
    let answer = anonymous.cluster_id().await;
    assert!(
        answer.is_err(),
        "a client without a certificate got {answer:?}"
    );
    let after = scene.simulator.handshakes().await.unwrap();
    assert!(
        after["pd"]["refused"].as_u64().unwrap_or_default() > refused_before,
        "{after}"
    );
    // The same client with the operator's certificate is let in.
    let data = client_secret.data.as_ref().unwrap();
    let admitted = pd_client::PdClient::new(
        &format!("{}/clusters/{n}/{CLUSTER}", scene.simulator.urls["pd"]),
        Some(&pd_client::TlsConfig {
            ca_pem: ca,
            cert_pem: Some(data["tls.crt"].0.clone()),
            key_pem: Some(data["tls.key"].0.clone()),
        }),
        Duration::from_secs(3),
    )
    .unwrap();
    admitted.cluster_id().await.unwrap();

    // Mutual TLS cannot be turned off on a running Cluster.
    let refused = clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tlsCluster": {"enabled": false}}})),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("tlsCluster is immutable"),
        "{refused}"
    );

    // cert-manager renews TiDB's MySQL certificate (as `cmctl renew` asks it to). TiDB does not
    // reload that certificate, so the group rolls: each server replaced once, a new one Ready
    // before an old one goes, the MySQL Service never without an endpoint.
    let before = scene.pod_uids("tidb").await;
    let start = scene.last_seq().await;
    let server_secret = "tidb-tidb-server-secret";
    let issued = secrets.get(server_secret).await.unwrap().data.unwrap()["tls.crt"].clone();
    let certificates = Api::<kube::api::DynamicObject>::namespaced_with(
        scene.client.clone(),
        n,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "Certificate",
        )),
    );
    let renew = json!([{"op": "add", "path": "/status/conditions/-", "value": {
        "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered",
        "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()
    }}]);
    certificates
        .patch_status(
            server_secret,
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(renew).unwrap()),
        )
        .await
        .unwrap();
    wait_until(
        &scene.cluster.kubectl(),
        n,
        "cert-manager renewed the MySQL certificate",
        WAIT,
        || async {
            let data = secrets.get(server_secret).await?.data.unwrap_or_default();
            Ok::<_, kube::Error>(data.get("tls.crt") != Some(&issued))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- cert-manager ---\n{}", scene.cert_manager.output()));
    scene.wait_tidb_rolled(&before, 2, start).await;

    scene.verdict().await;
}

#[tokio::test]
async fn a_deleted_component_secret_holds_its_instances_until_it_is_back() {
    let scene = Scene::start("tls-hold").await;
    let n = scene.n();
    scene.issue().await;
    scene.create_cluster(1, 3, 1).await;
    scene.wait_ready(&[1, 3, 1]).await;
    let kubectl = scene.cluster.kubectl();

    // The Certificate goes first (cert-manager would issue the Secret again), then its Secret.
    kubectl
        .ok(
            &["delete", "-n", n, "certificate", "tikv-tikv-cluster-secret"],
            None,
        )
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(scene.client.clone(), n);
    secrets
        .delete("tikv-tikv-cluster-secret", &DeleteParams::default())
        .await
        .unwrap();
    // A fourth store wants a Pod while the Secret is gone.
    Api::<TiKVGroup>::namespaced(scene.client.clone(), n)
        .patch(
            "tikv",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let tikvs: Api<TiKV> = Api::namespaced(scene.client.clone(), n);
    let pods: Api<Pod> = Api::namespaced(scene.client.clone(), n);
    let held_message = format!("Secret {n}/tikv-tikv-cluster-secret does not exist");
    wait_until(
        &kubectl,
        n,
        "every TiKV held for its Secret, the new one without a Pod",
        WAIT,
        || async {
            let list = tikvs.list(&ListParams::default()).await?;
            if list.items.len() != 4 {
                return Ok::<_, kube::Error>(false);
            }
            for tikv in &list.items {
                let held =
                    conditions::find(tikv.conditions(), conditions::READY).is_some_and(|c| {
                        c.status == "False"
                            && c.reason == "TLSSecretMissing"
                            && c.message.contains(&held_message)
                    });
                if !held {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
    .unwrap();
    let tikv_pods = pods
        .list(&ListParams::default().labels("pingcap.com/component=tikv"))
        .await
        .unwrap();
    assert_eq!(
        tikv_pods.items.len(),
        3,
        "no Pod starts without its certificates"
    );
    // The Event names the Secret.
    let events: Api<Event> = Api::namespaced(scene.client.clone(), n);
    let named = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("TLSSecretMissing")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("tikv-tikv-cluster-secret"))
        });
    assert!(named, "no TLSSecretMissing Event naming the Secret");
    // Nothing else of the cluster stops: PD and TiDB stay Ready.
    for group in ["pd", "tidb"] {
        let list = pods
            .list(&ListParams::default().labels(&format!("pingcap.com/component={group}")))
            .await
            .unwrap();
        assert!(
            list.items.iter().all(operator_runtime::pod::is_ready),
            "{group} Pods not ready while TiKV waits"
        );
    }

    // The Certificate back: cert-manager issues the Secret, every instance proceeds.
    kubectl
        .ok(
            &["apply", "-n", n, "-f", "-"],
            Some(&serde_yaml::to_string(&component_certificate(n, "tikv")).unwrap()),
        )
        .unwrap();
    scene.wait_ready(&[1, 4, 1]).await;

    // A certificate path of the operator's in a group's config is refused with its name: the
    // new TiDB instance says so and gets no Pod, the running one stays.
    Api::<TiDBGroup>::namespaced(scene.client.clone(), n)
        .patch(
            "tidb",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {
                "config": "[security]\nssl-ca = \"/mine/ca.crt\"\n"}}}})),
        )
        .await
        .unwrap();
    let tidbs: Api<operator_api::core::TiDB> = Api::namespaced(scene.client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "a TiDB instance refusing the manual security.ssl-ca",
        WAIT,
        || async {
            let list = tidbs.list(&ListParams::default()).await?;
            Ok::<_, kube::Error>(list.items.iter().any(|t| {
                conditions::find(t.conditions(), conditions::SYNCED).is_some_and(|c| {
                    c.reason == "InvalidSpec"
                        && c.message.contains("security.ssl-ca")
                        && c.message.contains("the operator manages")
                })
            }))
        },
    )
    .await
    .unwrap();
    let tidb_pods = pods
        .list(&ListParams::default().labels("pingcap.com/component=tidb"))
        .await
        .unwrap();
    assert_eq!(tidb_pods.items.len(), 1, "the refused instance has no Pod");
    assert!(tidb_pods.items.iter().all(operator_runtime::pod::is_ready));
    scene.verdict().await;
}

#[tokio::test]
async fn a_new_ca_reaches_the_operators_client_without_a_restart() {
    let mut scene = Scene::start("tls-ca").await;
    let n = scene.n().to_string();
    scene.issue().await;
    scene.create_cluster(1, 3, 1).await;
    scene.wait_ready(&[1, 3, 1]).await;
    let kubectl = scene.cluster.kubectl();
    let secrets: Api<Secret> = Api::namespaced(scene.client.clone(), &n);
    let old_ca = secrets.get("tls-ca-secret").await.unwrap().data.unwrap()["tls.crt"]
        .0
        .clone();
    let (pd_before, tikv_before) = (scene.pod_uids("pd").await, scene.pod_uids("tikv").await);
    let tidb_before = scene.pod_uids("tidb").await;
    let start = scene.last_seq().await;

    // A second CA, and every Certificate moved onto it: cert-manager issues each again, so the
    // simulated servers trust only the new CA and refuse the old client certificate.
    let new_ca = [
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "tls-ca-2"},
               "spec": {"secretName": "tls-ca-2-secret", "commonName": "TiDB CA 2", "isCA": true,
                        "issuerRef": {"name": "selfsigned", "kind": "Issuer"}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "tls-issuer-2"},
               "spec": {"ca": {"secretName": "tls-ca-2-secret"}}}),
    ]
    .iter()
    .map(|d| serde_yaml::to_string(d).unwrap())
    .collect::<Vec<_>>()
    .join("---\n");
    kubectl
        .ok(&["apply", "-n", &n, "-f", "-"], Some(&new_ca))
        .unwrap();
    let names = [
        "pd-pd-cluster-secret".to_string(),
        "tikv-tikv-cluster-secret".to_string(),
        "tidb-tidb-cluster-secret".to_string(),
        format!("{CLUSTER}-cluster-client-secret"),
        "tidb-tidb-server-secret".to_string(),
    ];
    for name in &names {
        kubectl
            .ok(
                &[
                    "patch",
                    "-n",
                    &n,
                    "certificate",
                    name,
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"issuerRef":{"name":"tls-issuer-2"}}}"#,
                ],
                None,
            )
            .unwrap();
    }
    let cert_manager = &scene.cert_manager;
    wait_until(
        &kubectl,
        &n,
        "every Secret issued again by the new CA",
        WAIT,
        || async {
            for name in &names {
                let Some(secret) = secrets.get_opt(name).await? else {
                    return Ok::<_, kube::Error>(false);
                };
                let ca = secret
                    .data
                    .unwrap_or_default()
                    .get("ca.crt")
                    .map(|b| b.0.clone());
                if ca.is_none() || ca.as_ref() == Some(&old_ca) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- cert-manager ---\n{}", cert_manager.output()));

    // The operator's PD calls go on with the new client certificate, which only a client that
    // read the Secret again can present.
    let client_pem = secrets
        .get(&format!("{CLUSTER}-cluster-client-secret"))
        .await
        .unwrap()
        .data
        .unwrap()["tls.crt"]
        .0
        .clone();
    let new_client = scenarios::leaf_hex(&client_pem);
    let simulator = &scene.simulator;
    wait_until(
        &kubectl,
        &n,
        "a mutual TLS handshake on PD with the operator's new client certificate",
        WAIT,
        || async {
            let now = simulator.handshakes().await.map_err(|e| e.to_string())?;
            let clients = now["pd"]["clients"].as_array().cloned().unwrap_or_default();
            Ok::<_, String>(
                clients
                    .iter()
                    .any(|c| c.as_str() == Some(new_client.as_str())),
            )
        },
    )
    .await
    .unwrap();
    scene.wait_ready(&[1, 3, 1]).await;
    // PD and TiKV read their new certificates from the files: none of their Pods restarted.
    // TiDB does not reload its MySQL certificate, which was issued again too: it rolled once.
    assert_eq!(scene.pod_uids("pd").await, pd_before, "a PD Pod restarted");
    assert_eq!(
        scene.pod_uids("tikv").await,
        tikv_before,
        "a TiKV Pod restarted"
    );
    scene.wait_tidb_rolled(&tidb_before, 1, start).await;
    // No controller was restarted to get there.
    scene.assert_controllers_running();
    scene.verdict().await;
}

/// cert-manager renews every component certificate and the operator's client certificate every
/// 20 s: the Cluster stays Ready at every look through at least two renewals of each, no Pod
/// restarts (PD, TiKV and TiDB read a renewed cluster certificate from its file, and the renewed
/// certificates chain to the same CA, so no two members ever fail to talk), and the operator's PD
/// calls go on with a renewed client certificate, no controller restarted.
#[tokio::test]
async fn renewed_certificates_keep_the_cluster_ready_without_a_restart() {
    let mut scene = Scene::start("tls-renew").await;
    let n = scene.n().to_string();
    scene.issue_with(true).await;
    scene.create_cluster(1, 3, 1).await;
    scene.wait_ready(&[1, 3, 1]).await;
    let kubectl = scene.cluster.kubectl();
    let secrets: Api<Secret> = Api::namespaced(scene.client.clone(), &n);
    let clusters: Api<Cluster> = Api::namespaced(scene.client.clone(), &n);
    let mut pods_before = Vec::new();
    for component in ["pd", "tikv", "tidb"] {
        pods_before.push(scene.pod_uids(component).await);
    }

    // Every certificate each Secret has held from here on, the first one included.
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<&str, BTreeSet<String>>::new());
    let not_ready = std::cell::RefCell::new(None::<String>);
    let cert_manager = &scene.cert_manager;
    wait_until(
        &kubectl,
        &n,
        "each certificate renewed twice, the Cluster Ready at every look",
        WAIT,
        || async {
            let cluster = clusters.get(CLUSTER).await?;
            if !conditions::is_true(cluster.conditions(), conditions::READY) {
                not_ready.borrow_mut().get_or_insert_with(|| {
                    format!("{:?}", cluster.status.as_ref().map(|s| &s.conditions))
                });
            }
            for name in RENEWED {
                let secret = secrets.get(name).await?;
                if let Some(crt) = secret.data.unwrap_or_default().get("tls.crt") {
                    seen.borrow_mut()
                        .entry(name)
                        .or_default()
                        .insert(scenarios::leaf_hex(&crt.0));
                }
            }
            Ok::<_, kube::Error>(
                RENEWED
                    .iter()
                    .all(|name| seen.borrow().get(name).is_some_and(|s| s.len() >= 3)),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- cert-manager ---\n{}", cert_manager.output()));
    assert_eq!(
        not_ready.borrow().clone(),
        None,
        "the Cluster was not Ready during a renewal"
    );

    // The operator presented a renewed client certificate to PD, read from the Secret without a
    // restart: of the certificates the client Secret held from the first look on (that one and at
    // least two renewed ones), at least two. It reads the Secret again every 10 s at the most
    // while it reconciles, so a certificate that lasted 20 s may have gone by unread.
    let client_certs = seen.borrow()[RENEWED[3]].clone();
    let simulator = &scene.simulator;
    let last = std::cell::RefCell::new((0, 0));
    wait_until(
        &kubectl,
        &n,
        "a renewed client certificate presented to PD",
        WAIT,
        || async {
            let now = simulator.handshakes().await.map_err(|e| e.to_string())?;
            let presented: BTreeSet<String> = now["pd"]["clients"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect();
            *last.borrow_mut() = (
                presented.intersection(&client_certs).count(),
                presented.len(),
            );
            Ok::<_, String>(last.borrow().0 >= 2)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: (of the client Secret's {}, presented to PD) = {:?}",
            client_certs.len(),
            last.borrow()
        )
    });
    for (component, before) in ["pd", "tikv", "tidb"].iter().zip(&pods_before) {
        assert_eq!(
            &scene.pod_uids(component).await,
            before,
            "a {component} Pod restarted"
        );
    }
    scene.assert_controllers_running();
    scene.verdict().await;
}

/// TiFlash and TiCDC groups on a TLS cluster: each mounts its `<group>-<component>-cluster-secret`
/// and its config names the certificates (TiFlash in both its files); the TiFlash store serves,
/// and the TiCDC servers become Ready with one owner, the operator's calls to them mutual TLS; a
/// TiCDC scale 2 → 1 drains the capture that goes before its Pod stops, over the same TLS.
#[tokio::test]
async fn tiflash_and_ticdc_run_on_a_tls_cluster_and_a_capture_drains_over_tls_before_a_scale_in() {
    let scene = Scene::start("tls-cdc").await;
    let n = scene.n().to_string();
    scene.issue().await;
    for component in ["tiflash", "ticdc"] {
        scene
            .cluster
            .kubectl()
            .ok(
                &["apply", "-n", &n, "-f", "-"],
                Some(&serde_yaml::to_string(&component_certificate(&n, component)).unwrap()),
            )
            .unwrap();
    }
    scene.create_cluster(1, 3, 1).await;
    let group = |kind: &str, name: &str, replicas: i32, spec: Value| {
        json!({
            "apiVersion": "core.pingcap.com/v1alpha1", "kind": kind,
            "metadata": {"name": name},
            "spec": {"cluster": {"name": CLUSTER}, "replicas": replicas,
                     "minReadySeconds": scenarios::SHORT_MIN_READY_SECONDS,
                     "template": {"spec": spec}}
        })
    };
    let volumes = json!([{"name": "data", "mounts": [{"type": "data"}], "storage": "10Gi"}]);
    Api::<TiFlashGroup>::namespaced(scene.client.clone(), &n)
        .create(
            &PostParams::default(),
            &serde_json::from_value(group(
                "TiFlashGroup",
                "tiflash",
                1,
                json!({"version": "v8.5.2", "volumes": volumes}),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let groups: Api<TiCDCGroup> = Api::namespaced(scene.client.clone(), &n);
    groups
        .create(
            &PostParams::default(),
            &serde_json::from_value(group(
                "TiCDCGroup",
                "ticdc",
                2,
                json!({"version": "v8.5.2"}),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    scene.wait_ready(&[1, 3, 1, 1, 2]).await;

    // TiFlash: both config files name the mounted certificate, and its store serves.
    let tiflash = Api::<TiFlash>::namespaced(scene.client.clone(), &n)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(tiflash.len(), 1);
    let files = Api::<ConfigMap>::namespaced(scene.client.clone(), &n)
        .get(&tiflash[0].name_any())
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    for (file, key) in [
        ("config.toml", "security.ca_path"),
        ("proxy.toml", "security.ca-path"),
    ] {
        let table: toml::Table = files.get(file).map_or("", String::as_str).parse().unwrap();
        assert_eq!(
            scenarios::toml_value(&table, key).as_deref(),
            Some("/var/lib/tiflash-tls/ca.crt"),
            "TiFlash {file}: {key}"
        );
    }
    assert_eq!(
        tiflash[0].status.as_ref().map(|s| s.state.as_str()),
        Some("Serving"),
        "the TiFlash store"
    );
    let kubectl = scene.cluster.kubectl();
    let ticdcs: Api<TiCDC> = Api::namespaced(scene.client.clone(), &n);
    wait_until(
        &kubectl,
        &n,
        "two TiCDC servers, one owner",
        WAIT,
        || async {
            let all = ticdcs.list(&ListParams::default()).await?.items;
            let owners = all
                .iter()
                .filter(|t| t.status.as_ref().is_some_and(|s| s.is_owner))
                .count();
            let ready = all
                .iter()
                .filter(|t| conditions::is_true(t.conditions(), conditions::READY))
                .count();
            Ok::<_, kube::Error>(all.len() == 2 && ready == 2 && owners == 1)
        },
    )
    .await
    .unwrap();

    // Its config names the mounted certificate, and the PD it is given is https.
    let instance = ticdcs.list(&ListParams::default()).await.unwrap().items[0].name_any();
    let config = Api::<ConfigMap>::namespaced(scene.client.clone(), &n)
        .get(&instance)
        .await
        .unwrap();
    let text: String = config.data.unwrap_or_default().into_values().collect();
    let table: toml::Table = text.parse().unwrap();
    for (key, path) in [
        ("security.ca-path", "/var/lib/ticdc-tls/ca.crt"),
        ("security.cert-path", "/var/lib/ticdc-tls/tls.crt"),
        ("security.key-path", "/var/lib/ticdc-tls/tls.key"),
    ] {
        assert_eq!(
            scenarios::toml_value(&table, key).as_deref(),
            Some(path),
            "{instance}: {key} in\n{text}"
        );
    }
    let pod = Api::<Pod>::namespaced(scene.client.clone(), &n)
        .get(&instance)
        .await
        .unwrap();
    let spec = pod.spec.unwrap_or_default();
    let args: Vec<String> = spec
        .containers
        .iter()
        .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
        .cloned()
        .collect();
    assert!(
        args.iter().any(|a| a.contains("https://pd-pd.")),
        "{instance} is given PD over https: {args:?}"
    );
    assert!(
        spec.volumes.iter().flatten().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("ticdc-ticdc-cluster-secret")),
        "{instance} mounts its group's cluster Secret"
    );

    // The operator asked the servers over mutual TLS, with its client certificate.
    let handshakes = scene.simulator.handshakes().await.unwrap();
    assert!(
        handshakes["ticdc"]["accepted"].as_u64().unwrap_or(0) > 0
            && !handshakes["ticdc"]["clients"]
                .as_array()
                .is_none_or(Vec::is_empty),
        "TiCDC handshakes: {handshakes}"
    );

    // Scale 2 → 1: the capture that goes is drained (over TLS: the only way the controller
    // reaches TiCDC here) before its Pod stops.
    let start = scene.last_seq().await;
    groups
        .patch(
            "ticdc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_until(&kubectl, &n, "one TiCDC server left", WAIT, || async {
        Ok::<_, kube::Error>(ticdcs.list(&ListParams::default()).await?.items.len() == 1)
    })
    .await
    .unwrap();
    let events = scene.simulator.simulator.events(&n, CLUSTER).await.unwrap();
    let since: Vec<Value> = events
        .into_iter()
        .filter(|e| scenarios::event_seq(e) > start)
        .collect();
    let stopped = scenarios::events_of(&since, "pod_stopped", &[("component", "ticdc")]);
    let gone = stopped
        .first()
        .and_then(|e| e["instance"].as_str())
        .unwrap_or_else(|| panic!("no TiCDC Pod stopped: {since:?}"))
        .to_string();
    let stop = scenarios::event_seq(stopped[0]);
    let drained = scenarios::events_of(&since, "capture_drain_requested", &[("instance", &gone)]);
    assert!(
        drained
            .first()
            .is_some_and(|e| scenarios::event_seq(e) < stop),
        "{gone} was not drained before its Pod stopped: {since:?}"
    );
    scene.verdict().await;
}
