//! TLS against a loopback server with certificates made on the spot: mutual TLS round trips for
//! PD and status calls, a server that demands a client certificate, a CA that did not sign the
//! server, and TLS material that does not parse.

// Helpers outside `#[test]` functions may panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use pd_client::{Error, PdClient, StatusClient, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

const HEALTH: &str = r#"[{"name": "basic-pd-0", "member_id": 1, "client_urls": ["https://basic-pd-0:2379"], "health": true}]"#;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    client_pem: String,
    client_key_pem: String,
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "pd-client test CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca();

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["tidb-operator".to_owned()]).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "tidb-operator");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &ca).unwrap();

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_der: server_cert.der().clone(),
        server_key_der: server_key.serialize_der(),
        client_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Serves `body` over HTTPS on 127.0.0.1:0 to clients that present a certificate the CA signed,
/// one connection at a time, on a thread of its own. Returns the port.
fn serve(pki: &Pki, body: &'static str) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone()));
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.server_der.clone()], key)
            .unwrap(),
    );

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let Ok(connection) = ServerConnection::new(config.clone()) else {
                continue;
            };
            // A failed handshake (no or a foreign client certificate) ends that connection only.
            let _ = answer(StreamOwned::new(connection, tcp), body);
        }
    });
    port
}

/// Reads one request head and writes `body` as a JSON 200 answer.
fn answer(
    mut stream: StreamOwned<ServerConnection, std::net::TcpStream>,
    body: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn mutual(pki: &Pki) -> TlsConfig {
    TlsConfig {
        ca_pem: pki.ca_pem.clone().into_bytes(),
        cert_pem: Some(pki.client_pem.clone().into_bytes()),
        key_pem: Some(pki.client_key_pem.clone().into_bytes()),
    }
}

#[tokio::test]
async fn mutual_tls_round_trip() {
    let pki = pki();
    let port = serve(&pki, HEALTH);
    let pd = PdClient::new(
        &format!("https://127.0.0.1:{port}"),
        Some(&mutual(&pki)),
        Duration::from_secs(5),
    )
    .unwrap();
    let health = pd.health().await.unwrap();
    assert_eq!(health.len(), 1);
    assert!(health[0].health);

    let status = StatusClient::new(Some(&mutual(&pki)), Duration::from_secs(5)).unwrap();
    status
        .tikv_status(&format!("https://127.0.0.1:{port}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_demanding_a_client_certificate_refuses_a_client_without_one() {
    let pki = pki();
    let port = serve(&pki, HEALTH);
    let tls = TlsConfig {
        ca_pem: pki.ca_pem.clone().into_bytes(),
        cert_pem: None,
        key_pem: None,
    };
    let pd = PdClient::new(
        &format!("https://127.0.0.1:{port}"),
        Some(&tls),
        Duration::from_secs(5),
    )
    .unwrap();
    let error = pd.health().await.unwrap_err();
    assert!(matches!(error, Error::Request { .. }), "{error:?}");
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_not_trusted() {
    let pki = pki();
    let port = serve(&pki, HEALTH);
    let mut tls = mutual(&pki);
    tls.ca_pem = ca().pem().into_bytes();
    let pd = PdClient::new(
        &format!("https://127.0.0.1:{port}"),
        Some(&tls),
        Duration::from_secs(5),
    )
    .unwrap();
    let error = pd.health().await.unwrap_err();
    assert!(matches!(error, Error::Request { .. }), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "the message says why: {error}"
    );
}

#[test]
fn tls_material_that_does_not_parse_is_refused() {
    let pki = pki();
    let bad_ca = TlsConfig {
        ca_pem: b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
            .to_vec(),
        cert_pem: None,
        key_pem: None,
    };
    let error =
        PdClient::new("https://pd:2379", Some(&bad_ca), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    let error = StatusClient::new(Some(&bad_ca), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error:?}");

    let no_ca = TlsConfig {
        ca_pem: Vec::new(),
        ..mutual(&pki)
    };
    assert!(matches!(
        PdClient::new("https://pd:2379", Some(&no_ca), Duration::from_secs(1)),
        Err(Error::Tls(_))
    ));

    let cert_without_key = TlsConfig {
        key_pem: None,
        ..mutual(&pki)
    };
    assert!(matches!(
        PdClient::new(
            "https://pd:2379",
            Some(&cert_without_key),
            Duration::from_secs(1)
        ),
        Err(Error::Tls(_))
    ));

    let bad_key = TlsConfig {
        key_pem: Some(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec()),
        ..mutual(&pki)
    };
    assert!(matches!(
        PdClient::new("https://pd:2379", Some(&bad_key), Duration::from_secs(1)),
        Err(Error::Tls(_))
    ));

    // A key that parses but does not belong to the certificate.
    let other_key = TlsConfig {
        key_pem: Some(KeyPair::generate().unwrap().serialize_pem().into_bytes()),
        ..mutual(&pki)
    };
    assert!(matches!(
        PdClient::new("https://pd:2379", Some(&other_key), Duration::from_secs(1)),
        Err(Error::Tls(_))
    ));
}
