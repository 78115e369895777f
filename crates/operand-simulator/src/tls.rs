//! TLS listeners, for clusters with `tlsCluster` on: one per component (PD, TiKV, TiDB, TiCDC,
//! TiFlash), each serving the same routes as the plain listener over mutual TLS, as the real
//! servers do when their `security` keys are set.
//!
//! What is modelled: the server presents the certificate of its component's group Secret
//! (`<group>-<component>-cluster-secret`: `tls.crt`, `tls.key`; the first such Secret by name in
//! the watched namespace), read again at every handshake so a renewed certificate is served at
//! once; and it requires a client certificate that chains to a cluster CA (`ca.crt` of any
//! `*-cluster-secret` or `*-cluster-client-secret` Secret of the namespace). A client without a
//! certificate, or with one signed by another CA, fails the handshake as it would against
//! pd-server, tikv-server or tidb-server. What is not: one listener stands for every instance
//! of a component (the certificate is the group's, so the names it carries are the group's
//! too), and the certificate's names are not matched to the instance addressed.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handshakes per component: accepted (a client certificate from a cluster CA) and refused.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Handshakes {
    /// Completed, with a verified client certificate.
    pub accepted: u64,
    /// Failed: no client certificate, one from an unknown CA, no server certificate to present.
    pub refused: u64,
    /// Why the last refused one was refused.
    pub last_refusal: Option<String>,
    /// Every distinct client certificate accepted (the DER of the leaf, in hex), so a test can
    /// tell which certificate a client used.
    pub clients: std::collections::BTreeSet<String>,
}

/// The handshakes of every TLS listener, by component.
pub type TlsRecord = Arc<Mutex<BTreeMap<String, Handshakes>>>;

/// A TLS listener of one component, for `axum::serve`.
pub struct Listener {
    tcp: TcpListener,
    client: Client,
    namespace: Option<String>,
    component: &'static str,
    record: TlsRecord,
}

impl Listener {
    /// Listens on `tcp` for `component` (`pd`, `tikv`, `tidb`), with the certificates of the
    /// Secrets of `namespace` (every namespace when `None`).
    pub fn new(
        tcp: TcpListener,
        client: Client,
        namespace: Option<String>,
        component: &'static str,
        record: TlsRecord,
    ) -> Self {
        Listener {
            tcp,
            client,
            namespace,
            component,
            record,
        }
    }

    fn note(&self, outcome: Result<Option<String>, String>) {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let entry = record.entry(self.component.to_string()).or_default();
        match outcome {
            Ok(client) => {
                entry.accepted += 1;
                entry.clients.extend(client);
            }
            Err(why) => {
                tracing::info!(component = self.component, %why, "TLS client refused");
                entry.refused += 1;
                entry.last_refusal = Some(why);
            }
        }
    }

    async fn handshake(&self, stream: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let secrets = secrets(&self.client, self.namespace.as_deref()).await?;
        let config = server_config(self.component, &secrets)?;
        let accept = TlsAcceptor::from(Arc::new(config)).accept(stream);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(format!("handshake: {e}")),
            Err(_) => Err("handshake timed out".into()),
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(component = self.component, "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.handshake(stream).await {
                Ok(tls) => {
                    let client = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| hex(leaf.as_ref()));
                    self.note(Ok(client));
                    return (tls, addr);
                }
                Err(why) => self.note(Err(why)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The TLS Secrets of the namespace, by name, with their data.
async fn secrets(
    client: &Client,
    namespace: Option<&str>,
) -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Secrets: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|s| {
            let name = s.metadata.name?;
            let data = s.data?.into_iter().map(|(k, v)| (k, v.0)).collect();
            Some((name, data))
        })
        .collect())
}

/// The server configuration of `component`: its group's certificate, and client certificates
/// required from any cluster CA among `secrets`.
pub fn server_config(
    component: &str,
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<rustls::ServerConfig, String> {
    let suffix = format!("-{component}-cluster-secret");
    let (name, own) = secrets
        .iter()
        .find(|(name, data)| name.ends_with(&suffix) && data.contains_key("tls.crt"))
        .ok_or_else(|| format!("no Secret *{suffix} with tls.crt to serve"))?;
    let chain = CertificateDer::pem_slice_iter(own.get("tls.crt").map_or(&[][..], |v| v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{name} tls.crt: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(own.get("tls.key").map_or(&[][..], |v| v))
        .map_err(|e| format!("{name} tls.key: {e}"))?;
    let mut roots = RootCertStore::empty();
    for (name, data) in secrets {
        if !(name.ends_with("-cluster-secret") || name.ends_with("-cluster-client-secret")) {
            continue;
        }
        if let Some(ca) = data.get("ca.crt") {
            for cert in CertificateDer::pem_slice_iter(ca).flatten() {
                // A CA that does not parse is no root; the others still are.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no cluster CA (ca.crt of a *-cluster-secret) to verify clients with".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("protocol versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let pem = issuer.pem();
        (issuer, pem)
    }

    fn leaf(issuer: &rcgen::CertifiedIssuer<'_, rcgen::KeyPair>) -> (String, String) {
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_server_needs_its_group_certificate_and_a_cluster_ca() {
        let (issuer, ca_pem) = ca();
        let (cert, key) = leaf(&issuer);
        let secret = |with_ca: bool| {
            let mut data = BTreeMap::from([
                ("tls.crt".to_string(), cert.clone().into_bytes()),
                ("tls.key".to_string(), key.clone().into_bytes()),
            ]);
            if with_ca {
                data.insert("ca.crt".into(), ca_pem.clone().into_bytes());
            }
            data
        };
        let none = BTreeMap::new();
        assert!(
            server_config("pd", &none)
                .unwrap_err()
                .contains("-pd-cluster-secret")
        );
        let no_ca = BTreeMap::from([("pd-pd-cluster-secret".to_string(), secret(false))]);
        assert!(
            server_config("pd", &no_ca)
                .unwrap_err()
                .contains("cluster CA")
        );
        let good = BTreeMap::from([("pd-pd-cluster-secret".to_string(), secret(true))]);
        assert!(server_config("pd", &good).is_ok());
        assert!(server_config("tikv", &good).is_err());
    }
}
