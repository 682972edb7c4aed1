//! HEP over TLS with a certificate authority generated in the test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use collector::{BoundListeners, Collector, Transport};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

struct Pki {
    ca: rcgen::Certificate,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

/// A CA, a server certificate for `localhost` and a client certificate, written as PEM files.
fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");

    let server_key = KeyPair::generate().expect("key");
    let mut sp = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");

    let client_key = KeyPair::generate().expect("key");
    let mut cp = CertificateParams::new(vec!["hep-agent".to_owned()]).expect("params");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = cp
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");

    std::fs::write(dir.join("server.pem"), server.pem()).expect("write");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    Pki {
        ca,
        client_cert: client.der().clone(),
        client_key: client_key.serialize_der(),
    }
}

fn connector(pki: &Pki, with_client_cert: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let cfg = if with_client_cert {
        builder
            .with_client_auth_cert(
                vec![pki.client_cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key.clone())),
            )
            .expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Connects, sends `frames` and closes; errors are returned, not panicked on.
async fn send_tls(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    frames: &[u8],
) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(frames).await?;
    tls.flush().await?;
    tls.shutdown().await?;
    Ok(())
}

fn tls_config(dir: &Path, client_ca: bool) -> collector::CollectorConfig {
    let mut cfg = loopback_config();
    cfg.udp.addresses.clear();
    cfg.tcp.addresses.clear();
    cfg.tls.addresses = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls.cert_file = Some(dir.join("server.pem"));
    cfg.tls.key_file = Some(dir.join("server.key"));
    cfg.tls.client_ca_file = client_ca.then(|| dir.join("ca.pem"));
    cfg
}

fn frames(prefix: &str, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| sip_hep(&format!("{prefix}-{i}"), "INVITE", 5060, None))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let cfg = tls_config(dir.path(), false);
    let listeners = BoundListeners::bind(&cfg.listeners()).expect("bind");
    let addr = listeners.local_addrs().2[0];
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    send_tls(addr, &connector(&pki, false), &frames("tls", 25))
        .await
        .expect("send");
    assert!(wait_for_async(WAIT, || store.len() == 25).await);
    assert_eq!(metrics.received_by_transport(Transport::Tls), 25);
    token.cancel();
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let cfg = tls_config(dir.path(), true);
    let listeners = BoundListeners::bind(&cfg.listeners()).expect("bind");
    let addr = listeners.local_addrs().2[0];
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();

    // Without a client certificate: refused in the handshake, nothing stored.
    let refused = send_tls(addr, &connector(&pki, false), &frames("anon", 5)).await;
    assert!(
        wait_for_async(WAIT, || metrics.connections_rejected_count(Transport::Tls)
            == 1)
        .await,
        "handshake rejection counted (client saw {refused:?})"
    );

    // With one signed by the configured CA: accepted.
    send_tls(addr, &connector(&pki, true), &frames("cert", 10))
        .await
        .expect("send with client cert");
    assert!(wait_for_async(WAIT, || store.len() == 10).await);
    token.cancel();
    handle.join().await;
    assert!(store.snapshot().iter().all(|r| r.sid.starts_with("cert-")));
    assert_eq!(metrics.received_by_transport(Transport::Tls), 10);
}
