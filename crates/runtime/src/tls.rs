//! TLS of a cluster's components, the same for every component: the Secrets an instance mounts
//! (`<group>-<component>-cluster-secret` for mutual TLS between the components, TiDB's MySQL
//! certificate), the check that they hold their keys before a Pod is made, the volumes and mounts
//! of the Pod, and the operator's own client certificate (`<cluster>-cluster-client-secret`),
//! re-read while the controller runs so that a renewed certificate is used without a restart.
//!
//! The names, keys and mount directories are tidb-operator v2's, so its Secrets and cert-manager
//! Certificates work unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    KeyToPath, Pod, ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource,
    Volume as PodVolume, VolumeMount, VolumeProjection,
};
use kube::{Api, Client};
use operator_api::core::{Cluster, TlsSecret};
use pd_client::TlsConfig;

/// Key of the CA certificate in a TLS Secret.
pub const CA_KEY: &str = "ca.crt";
/// Key of the certificate in a TLS Secret.
pub const CERT_KEY: &str = "tls.crt";
/// Key of the private key in a TLS Secret.
pub const KEY_KEY: &str = "tls.key";
/// Volume of the cluster TLS Secret in every component's Pod.
pub const CLUSTER_TLS_VOLUME: &str = "tls";
/// Volume of TiDB's MySQL server certificate.
pub const MYSQL_TLS_VOLUME: &str = "tidb-sql-tls";
/// Where TiDB's MySQL server certificate is mounted.
pub const MYSQL_TLS_DIR: &str = "/var/lib/tidb-sql-tls";
/// How long the operator uses the client certificate it read before it reads the Secret again;
/// a renewed certificate is picked up within this, without a restart.
pub const CLIENT_TLS_REFRESH: Duration = Duration::from_secs(10);

/// Whether `cluster` has mutual TLS between its components.
pub fn enabled(cluster: &Cluster) -> bool {
    cluster.spec.tls_cluster.as_ref().is_some_and(|t| t.enabled)
}

/// `https` with TLS, `http` without.
pub fn scheme(enabled: bool) -> &'static str {
    if enabled { "https" } else { "http" }
}

/// `<group>-<component>-cluster-secret`: a group's certificate for the links between components.
pub fn cluster_secret_name(group: &str, component: &str) -> String {
    format!("{group}-{component}-cluster-secret")
}

/// `<cluster>-cluster-client-secret`: the certificate the operator (and tools) present.
pub fn client_secret_name(cluster: &str) -> String {
    format!("{cluster}-cluster-client-secret")
}

/// The Secrets of a Cluster's client certificate, `(certificate and key, CA)`: those named by
/// `spec.security.tls.client` where set, else both [`client_secret_name`].
pub fn client_secrets(cluster: &Cluster) -> (String, String) {
    let secret = cluster
        .spec
        .security
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .and_then(|t| t.client.as_ref())
        .map(|c| &c.secret);
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    names(&client_secret_name(name), secret)
}

/// `clientAuth` of a MySQL TLS setting that asks clients for no certificate (no CA needed).
pub const NO_CLIENT_CERT: &str = "NoClientCert";

/// `<group>-tidb-server-secret`: a TiDB group's certificate for MySQL clients.
pub fn mysql_secret_name(group: &str) -> String {
    format!("{group}-tidb-server-secret")
}

/// Secrets mounted in one directory of an instance's main container: `tls.crt` and `tls.key` of
/// one Secret and `ca.crt` of the same or another.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SecretMount {
    /// The Pod volume.
    pub volume: String,
    /// Where it is mounted.
    pub dir: String,
    /// The Secret holding `tls.crt` and `tls.key`.
    pub cert_secret: String,
    /// The Secret holding `ca.crt`.
    pub ca_secret: String,
    /// Whether the instance cannot start without `ca.crt` (the cluster's links need it; a MySQL
    /// server without one does not verify its clients).
    pub ca_required: bool,
    /// Whether `ca.crt` was found (set by [`check`]; the config names it only then).
    pub has_ca: bool,
    /// Whether `ca.crt` is left out even when the Secret has one (a MySQL server that asks its
    /// clients for no certificate).
    pub no_ca: bool,
}

impl SecretMount {
    /// The cluster TLS mount of a group's instance in `dir`, from `<group>-<component>-cluster-secret`
    /// unless `secret` names other Secrets.
    pub fn cluster(group: &str, component: &str, dir: &str, secret: Option<&TlsSecret>) -> Self {
        let default = cluster_secret_name(group, component);
        let (cert_secret, ca_secret) = names(&default, secret);
        SecretMount {
            volume: CLUSTER_TLS_VOLUME.into(),
            dir: dir.into(),
            cert_secret,
            ca_secret,
            ca_required: true,
            has_ca: true,
            no_ca: false,
        }
    }

    /// TiDB's MySQL server certificate, from `<group>-tidb-server-secret` unless `secret` names
    /// other Secrets. As in the reference, `clientAuth: NoClientCert` needs no CA (clients are
    /// asked for no certificate); otherwise (`VerifyClientCertIfNeed`, the default) the CA is
    /// required and clients that present a certificate are verified against it.
    pub fn mysql(group: &str, secret: Option<&TlsSecret>, client_auth: Option<&str>) -> Self {
        let (cert_secret, ca_secret) = names(&mysql_secret_name(group), secret);
        let no_ca = client_auth == Some(NO_CLIENT_CERT);
        SecretMount {
            volume: MYSQL_TLS_VOLUME.into(),
            dir: MYSQL_TLS_DIR.into(),
            cert_secret,
            ca_secret,
            ca_required: !no_ca,
            has_ca: false,
            no_ca,
        }
    }

    /// Path of a key's file in the mount.
    pub fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.dir)
    }

    fn volume(&self) -> PodVolume {
        if self.cert_secret == self.ca_secret {
            return PodVolume {
                name: self.volume.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(self.cert_secret.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..PodVolume::default()
            };
        }
        let project = |secret: &str, keys: &[&str], optional: bool| VolumeProjection {
            secret: Some(SecretProjection {
                name: secret.to_string(),
                items: Some(
                    keys.iter()
                        .map(|k| KeyToPath {
                            key: (*k).to_string(),
                            path: (*k).to_string(),
                            mode: None,
                        })
                        .collect(),
                ),
                optional: optional.then_some(true),
            }),
            ..VolumeProjection::default()
        };
        let mut sources = vec![project(&self.cert_secret, &[CERT_KEY, KEY_KEY], false)];
        if self.has_ca {
            sources.push(project(&self.ca_secret, &[CA_KEY], false));
        }
        PodVolume {
            name: self.volume.clone(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                ..ProjectedVolumeSource::default()
            }),
            ..PodVolume::default()
        }
    }
}

fn names(default: &str, secret: Option<&TlsSecret>) -> (String, String) {
    let pick = |name: Option<&str>| {
        name.filter(|n| !n.is_empty())
            .unwrap_or(default)
            .to_string()
    };
    let cert = pick(
        secret
            .and_then(|s| s.cert_key_pair.as_ref())
            .map(|s| s.name.as_str()),
    );
    let ca = pick(secret.and_then(|s| s.ca.as_ref()).map(|s| s.name.as_str()));
    (cert, ca)
}

/// A Secret an instance needs is missing, or lacks a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The Secret.
    pub secret: String,
    /// The key it lacks; `None` when the Secret itself does not exist.
    pub key: Option<&'static str>,
}

impl Missing {
    /// What the user reads on the instance and its Event.
    pub fn message(&self, namespace: &str) -> String {
        match self.key {
            None => format!(
                "Secret {namespace}/{} does not exist; the instance waits for it (no Pod starts without its certificates)",
                self.secret
            ),
            Some(key) => format!(
                "Secret {namespace}/{} has no key {key}; the instance waits for it (no Pod starts without its certificates)",
                self.secret
            ),
        }
    }
}

/// What is missing of `mounts` in `data` (a Secret name to its keys, `None` for a Secret that
/// does not exist), the first gap in order; sets each mount's `has_ca`.
pub fn missing(
    mounts: &mut [SecretMount],
    data: &HashMap<String, Option<Vec<String>>>,
) -> Option<Missing> {
    for mount in mounts.iter_mut() {
        let keys_of = |secret: &str| data.get(secret).cloned().flatten();
        let Some(keys) = keys_of(&mount.cert_secret) else {
            return Some(Missing {
                secret: mount.cert_secret.clone(),
                key: None,
            });
        };
        for key in [CERT_KEY, KEY_KEY] {
            if !keys.iter().any(|k| k == key) {
                return Some(Missing {
                    secret: mount.cert_secret.clone(),
                    key: Some(key),
                });
            }
        }
        let ca_keys = keys_of(&mount.ca_secret);
        mount.has_ca = !mount.no_ca
            && ca_keys
                .as_ref()
                .is_some_and(|k| k.iter().any(|k| k == CA_KEY));
        if mount.ca_required && !mount.has_ca {
            return Some(Missing {
                secret: mount.ca_secret.clone(),
                key: ca_keys.is_some().then_some(CA_KEY),
            });
        }
    }
    None
}

/// Reads the Secrets `mounts` name (a GET each: Secrets are not watched, so the controllers need
/// no list or watch of them) and answers [`missing`].
pub async fn check(
    client: &Client,
    namespace: &str,
    mounts: &mut [SecretMount],
) -> Result<Option<Missing>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut data = HashMap::new();
    for mount in mounts.iter() {
        for name in [&mount.cert_secret, &mount.ca_secret] {
            if data.contains_key(name.as_str()) {
                continue;
            }
            let keys = api
                .get_opt(name)
                .await?
                .map(|s| s.data.unwrap_or_default().into_keys().collect());
            data.insert(name.clone(), keys);
        }
    }
    Ok(missing(mounts, &data))
}

/// Adds the volumes of `mounts` to `pod` and mounts them, read-only, in its container named
/// `container`.
pub fn mount(pod: &mut Pod, container: &str, mounts: &[SecretMount]) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for mount in mounts {
        volumes.push(mount.volume());
    }
    if let Some(main) = spec.containers.iter_mut().find(|c| c.name == container) {
        let list = main.volume_mounts.get_or_insert_with(Vec::new);
        for mount in mounts {
            list.push(VolumeMount {
                name: mount.volume.clone(),
                mount_path: mount.dir.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
}

/// The operator's client certificate of a cluster could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operator's client certificate of Cluster {cluster}: {message}")]
pub struct ClientTlsError {
    /// The Cluster.
    pub cluster: String,
    /// What is wrong (the Secret and key).
    pub message: String,
}

struct Loaded {
    read_at: Instant,
    tls: Result<TlsConfig, ClientTlsError>,
}

/// The operator's client certificate of each TLS cluster, read from its Secrets and read again
/// once it is older than [`CLIENT_TLS_REFRESH`].
#[derive(Default)]
pub struct ClientTls {
    loaded: Mutex<HashMap<(String, String), Loaded>>,
}

impl ClientTls {
    /// Reads the client Secrets of `cluster` unless they were read recently; nothing for a
    /// cluster without TLS. A Secret that cannot be read is remembered as the error the calls
    /// to the cluster then report.
    pub async fn refresh(&self, client: &Client, cluster: &Cluster) -> Result<(), kube::Error> {
        if !enabled(cluster) {
            return Ok(());
        }
        let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let key = (namespace.clone(), name.clone());
        let fresh = self
            .lock()
            .get(&key)
            .is_some_and(|l| l.read_at.elapsed() < CLIENT_TLS_REFRESH);
        if fresh {
            return Ok(());
        }
        let (cert_name, ca_name) = client_secrets(cluster);
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let cert = api.get_opt(&cert_name).await?;
        let ca = if ca_name == cert_name {
            cert.clone()
        } else {
            api.get_opt(&ca_name).await?
        };
        let tls = client_config(&name, &namespace, (&cert_name, cert), (&ca_name, ca));
        self.lock().insert(
            key,
            Loaded {
                read_at: Instant::now(),
                tls,
            },
        );
        Ok(())
    }

    /// The client certificate of a TLS cluster as last read: `None` for a cluster never read
    /// (one without TLS), an error naming the Secret and key when it was not usable.
    pub fn get(&self, namespace: &str, cluster: &str) -> Option<Result<TlsConfig, ClientTlsError>> {
        self.lock()
            .get(&(namespace.to_string(), cluster.to_string()))
            .map(|l| l.tls.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The client TLS material from the certificate Secret and the CA Secret (each with its name).
fn client_config(
    cluster: &str,
    namespace: &str,
    (cert_name, cert): (&str, Option<Secret>),
    (ca_name, ca): (&str, Option<Secret>),
) -> Result<TlsConfig, ClientTlsError> {
    let error = |message: String| ClientTlsError {
        cluster: cluster.to_string(),
        message,
    };
    let key_of = |name: &str, secret: &Option<Secret>, key: &str| {
        let Some(secret) = secret else {
            return Err(error(format!("Secret {namespace}/{name} does not exist")));
        };
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| error(format!("Secret {namespace}/{name} has no key {key}")))
    };
    Ok(TlsConfig {
        ca_pem: key_of(ca_name, &ca, CA_KEY)?,
        cert_pem: Some(key_of(cert_name, &cert, CERT_KEY)?),
        key_pem: Some(key_of(cert_name, &cert, KEY_KEY)?),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use operator_api::core::SecretName;

    use super::*;

    fn data(entries: &[(&str, Option<&[&str]>)]) -> HashMap<String, Option<Vec<String>>> {
        entries
            .iter()
            .map(|(name, keys)| {
                (
                    name.to_string(),
                    keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
                )
            })
            .collect()
    }

    #[test]
    fn a_group_mounts_its_cluster_secret_by_the_reference_name() {
        let mount = SecretMount::cluster("pd", "pd", "/var/lib/pd-tls", None);
        assert_eq!(mount.cert_secret, "pd-pd-cluster-secret");
        assert_eq!(mount.ca_secret, "pd-pd-cluster-secret");
        assert_eq!(mount.path(CA_KEY), "/var/lib/pd-tls/ca.crt");
        assert_eq!(client_secret_name("basic"), "basic-cluster-client-secret");
        assert_eq!(mysql_secret_name("tidb"), "tidb-tidb-server-secret");
    }

    #[test]
    fn a_missing_secret_or_key_is_named_and_a_complete_one_passes() {
        let all = [CA_KEY, CERT_KEY, KEY_KEY];
        let mut mounts = vec![SecretMount::cluster("pd", "pd", "/d", None)];
        let gone = missing(&mut mounts, &data(&[]));
        assert_eq!(
            gone,
            Some(Missing {
                secret: "pd-pd-cluster-secret".into(),
                key: None
            })
        );
        assert!(
            gone.unwrap()
                .message("db")
                .contains("db/pd-pd-cluster-secret does not exist")
        );
        let no_key = missing(
            &mut mounts,
            &data(&[("pd-pd-cluster-secret", Some(&[CA_KEY, CERT_KEY]))]),
        );
        assert_eq!(no_key.map(|m| m.key), Some(Some(KEY_KEY)));
        let no_ca = missing(
            &mut mounts,
            &data(&[("pd-pd-cluster-secret", Some(&[CERT_KEY, KEY_KEY]))]),
        );
        assert_eq!(no_ca.map(|m| m.key), Some(Some(CA_KEY)));
        assert_eq!(
            missing(&mut mounts, &data(&[("pd-pd-cluster-secret", Some(&all))])),
            None
        );
    }

    #[test]
    fn a_separate_ca_secret_is_projected_and_a_mysql_ca_is_needed_unless_no_client_cert() {
        let secret = TlsSecret {
            ca: Some(SecretName {
                name: "shared-ca".into(),
            }),
            cert_key_pair: None,
        };
        let found = data(&[
            ("tidb-tidb-cluster-secret", Some(&[CERT_KEY, KEY_KEY])),
            ("shared-ca", Some(&[CA_KEY])),
            ("tidb-tidb-server-secret", Some(&[CERT_KEY, KEY_KEY])),
        ]);
        // By default (VerifyClientCertIfNeed) the MySQL CA is required, as in the reference.
        let mut verify = vec![SecretMount::mysql(
            "tidb",
            None,
            Some("VerifyClientCertIfNeed"),
        )];
        assert_eq!(
            missing(&mut verify, &found),
            Some(Missing {
                secret: "tidb-tidb-server-secret".into(),
                key: Some(CA_KEY),
            })
        );
        let mut default = vec![SecretMount::mysql("tidb", None, None)];
        assert!(missing(&mut default, &found).is_some());
        // NoClientCert needs none, and leaves out one the Secret has.
        let with_ca = data(&[(
            "tidb-tidb-server-secret",
            Some(&[CERT_KEY, KEY_KEY, CA_KEY]),
        )]);
        let mut ignored = vec![SecretMount::mysql("tidb", None, Some(NO_CLIENT_CERT))];
        assert_eq!(missing(&mut ignored, &with_ca), None);
        assert!(!ignored[0].has_ca);

        let mut mounts = vec![
            SecretMount::cluster("tidb", "tidb", "/var/lib/tidb-tls", Some(&secret)),
            SecretMount::mysql("tidb", None, Some(NO_CLIENT_CERT)),
        ];
        assert_eq!(missing(&mut mounts, &found), None);
        assert!(mounts[0].has_ca && !mounts[1].has_ca);
        let mut pod = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "tidb".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Pod::default()
        };
        mount(&mut pod, "tidb", &mounts);
        let spec = pod.spec.unwrap();
        let volumes = spec.volumes.unwrap();
        let projected = volumes[0]
            .projected
            .as_ref()
            .unwrap()
            .sources
            .as_ref()
            .unwrap();
        assert_eq!(projected[1].secret.as_ref().unwrap().name, "shared-ca");
        assert_eq!(
            volumes[1].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("tidb-tidb-server-secret")
        );
        let mounted: Vec<_> = spec.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounted,
            [
                ("/var/lib/tidb-tls", Some(true)),
                (MYSQL_TLS_DIR, Some(true))
            ]
        );
    }

    #[test]
    fn the_client_config_names_the_secret_and_key_it_lacks() {
        let secret = |keys: &[&str]| Secret {
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"pem".to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let name = "basic-cluster-client-secret";
        let ok = client_config(
            "basic",
            "db",
            (name, Some(secret(&[CA_KEY, CERT_KEY, KEY_KEY]))),
            (name, Some(secret(&[CA_KEY, CERT_KEY, KEY_KEY]))),
        );
        assert!(ok.is_ok());
        let error = client_config(
            "basic",
            "db",
            (name, Some(secret(&[CA_KEY, CERT_KEY]))),
            (name, Some(secret(&[CA_KEY, CERT_KEY]))),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("db/basic-cluster-client-secret has no key tls.key")
        );
        let gone = client_config("basic", "db", (name, None), (name, None)).unwrap_err();
        assert!(gone.message.contains("does not exist"));
    }
}
