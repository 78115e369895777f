//! TLS material for PD and the status ports, turned into a rustls client configuration.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// The PEM material of a cluster's TLS: the CA that signs the servers' certificates and, for
/// mutual TLS, the client certificate and key the operator presents.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// One or more CA certificates (PEM) that server certificates must chain to.
    pub ca_pem: Vec<u8>,
    /// The client certificate chain (PEM); mutual TLS when set together with `key_pem`.
    pub cert_pem: Option<Vec<u8>>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsConfig")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("cert_pem", &self.cert_pem.as_ref().map(Vec::len))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A rustls client configuration with the ring provider: roots from `tls` (none without it, so
/// only plain `http` works) and the client certificate when `tls` has one.
pub(crate) fn client_config(tls: Option<&TlsConfig>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("protocol versions: {e}")))?;
    let Some(tls) = tls else {
        return Ok(builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth());
    };

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&tls.ca_pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("CA bundle holds no PEM certificate".into()));
    }
    let builder = builder.with_root_certificates(roots);

    match (&tls.cert_pem, &tls.key_pem) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_pem), Some(key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
            if chain.is_empty() {
                return Err(Error::Tls(
                    "client certificate holds no PEM certificate".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| Error::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls(format!("client certificate and key: {e}")))
        }
        (Some(_), None) => Err(Error::Tls("a client certificate needs its key".into())),
        (None, Some(_)) => Err(Error::Tls("a client key needs its certificate".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tls_builds_a_config_without_roots() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused() {
        let tls = TlsConfig {
            ca_pem: b"not a certificate".to_vec(),
            ..TlsConfig::default()
        };
        let error = client_config(Some(&tls)).err();
        assert!(matches!(error, Some(Error::Tls(ref m)) if m.contains("no PEM certificate")));
    }

    #[test]
    fn a_ca_with_a_broken_body_is_refused() {
        let tls = TlsConfig {
            ca_pem: b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            ..TlsConfig::default()
        };
        assert!(matches!(client_config(Some(&tls)), Err(Error::Tls(_))));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let tls = TlsConfig {
            ca_pem: vec![1, 2, 3],
            cert_pem: Some(vec![4]),
            key_pem: Some(b"secret".to_vec()),
        };
        let printed = format!("{tls:?}");
        assert!(!printed.contains("secret") && !printed.contains("115"));
        assert!(printed.contains("redacted"));
    }
}
