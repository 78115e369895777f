//! A namespace of its own for each test, removed when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::cluster::LocalCluster;
use crate::error::{Error, Result};
use crate::kubectl::Kubectl;

/// A namespace created for one test. Dropping it deletes the namespace (without waiting), so a
/// failed test leaves nothing behind either; set `TESTKIT_KEEP_NAMESPACES=1` to keep them for
/// inspection.
pub struct TestNamespace {
    name: String,
    kubectl: Kubectl,
}

impl TestNamespace {
    /// Creates `t-<prefix>-<unique suffix>`, labelled so leftovers can be found and enforcing the
    /// "restricted" Pod Security Standard.
    pub async fn create(
        cluster: &LocalCluster,
        client: &Client,
        prefix: &str,
    ) -> Result<TestNamespace> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "{:x}{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        prefix.make_ascii_lowercase();
        prefix.truncate(40);
        let name = format!("t-{prefix}-{unique}");
        Self::create_named(cluster, client, &name, &prefix).await
    }

    /// Creates the namespace `name` (labelled with `prefix`): the same name in a second local
    /// control plane, as one TiDB cluster across Kubernetes clusters uses.
    pub async fn create_named(
        cluster: &LocalCluster,
        client: &Client,
        name: &str,
        prefix: &str,
    ) -> Result<TestNamespace> {
        let name = name.to_string();
        let prefix = prefix.to_string();
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [
                        ("testkit.tidb.io/test".to_string(), prefix),
                        // The API server itself refuses any Pod the operator makes that is not
                        // "restricted".
                        (
                            "pod-security.kubernetes.io/enforce".to_string(),
                            "restricted".to_string(),
                        ),
                        (
                            "pod-security.kubernetes.io/enforce-version".to_string(),
                            "latest".to_string(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(Error::api(format!("creating namespace {name}")))?;
        Ok(TestNamespace {
            name,
            kubectl: cluster.kubectl(),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("TESTKIT_KEEP_NAMESPACES").is_some() {
            eprintln!("testkit: keeping namespace {}", self.name);
            return;
        }
        // A plain command, because Drop cannot await; the namespace controller finishes the job.
        let _ = self
            .kubectl
            .run(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}
