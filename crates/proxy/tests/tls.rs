//! HTTPS on warden's HTTP listener (`listener::serve_with_tls`) and the
//! loader of its certificate and key (`tls::load_server_config`), on real
//! sockets on 127.0.0.1, with self-signed certificates made here by rcgen.

use axum::routing::get;
use pkcs8::der::pem::LineEnding;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use warden_proxy::listener::{ListenLimits, serve_with_tls};
use warden_proxy::tls::{TlsError, TlsSettings, load_server_config};

const BODY: &str = "hello over tls";

/// A certificate for 127.0.0.1 and localhost, self-signed by `key`.
fn self_signed(key: &KeyPair) -> String {
    CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .self_signed(key)
        .unwrap()
        .pem()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The inner key of a PKCS#8 key (PKCS#1 for RSA, SEC1 for EC) as PEM
/// with `label`: the "traditional" files openssl and older tools write.
fn traditional_pem(key: &KeyPair, label: &str) -> String {
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
    pkcs8::der::pem::encode_string(label, LineEnding::LF, info.private_key).unwrap()
}

/// A certificate and its key in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    cert_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn pki() -> Pki {
    let key = KeyPair::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = self_signed(&key);
    let cert = write(dir.path(), "cert.pem", &cert_pem);
    let key = write(dir.path(), "key.pem", &key.serialize_pem());
    Pki {
        dir,
        cert_pem,
        cert,
        key,
    }
}

fn limits(header_read: Duration, max_connections: usize) -> ListenLimits {
    ListenLimits {
        header_read,
        max_connections,
        ..ListenLimits::default()
    }
}

/// `serve_with_tls` with a one-route app on an ephemeral port.
struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(tls: Arc<rustls::ServerConfig>, limits: ListenLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hello", get(|| async { BODY }));
    let stop = CancellationToken::new();
    tokio::spawn(serve_with_tls(
        listener,
        app,
        limits,
        Some(tls),
        stop.clone(),
    ));
    Server { addr, stop }
}

fn https_client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get_hello(client: &reqwest::Client, addr: SocketAddr) -> Result<String, reqwest::Error> {
    let resp = client
        .get(format!("https://{addr}/hello"))
        .send()
        .await?
        .error_for_status()?;
    resp.text().await
}

/// Reads until the server closes; the time it took.
async fn time_to_close(mut stream: impl tokio::io::AsyncRead + Unpin, from: Instant) -> Duration {
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection");
    from.elapsed()
}

#[tokio::test]
async fn an_https_request_is_served_with_alpn_http11() {
    let pki = pki();
    let tls = load_server_config(&pki.cert, &pki.key).unwrap();
    assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let server = start(tls, ListenLimits::default()).await;
    let client = https_client(&pki.cert_pem);
    assert_eq!(get_hello(&client, server.addr).await.unwrap(), BODY);
    // The connection is kept alive and serves a second request.
    assert_eq!(get_hello(&client, server.addr).await.unwrap(), BODY);
}

#[tokio::test]
async fn pkcs8_rsa_and_sec1_keys_all_serve_https() {
    let rsa = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cases = [
        ("pkcs8", KeyPair::generate().unwrap(), None),
        ("pkcs1", rsa, Some("RSA PRIVATE KEY")),
        ("sec1", ec, Some("EC PRIVATE KEY")),
    ];
    for (name, key, label) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cert_pem = self_signed(&key);
        let key_pem = match label {
            None => key.serialize_pem(),
            Some(label) => traditional_pem(&key, label),
        };
        if let Some(label) = label {
            assert!(key_pem.starts_with(&format!("-----BEGIN {label}-----")));
        }
        let settings = TlsSettings {
            cert: write(dir.path(), "cert.pem", &cert_pem),
            key: write(dir.path(), "key.pem", &key_pem),
        };
        let tls = settings.load().unwrap_or_else(|e| panic!("{name}: {e}"));
        let server = start(tls, ListenLimits::default()).await;
        let body = get_hello(&https_client(&cert_pem), server.addr).await;
        assert_eq!(body.unwrap_or_else(|e| panic!("{name}: {e:?}")), BODY);
    }
}

#[tokio::test]
async fn a_file_holding_both_certificate_and_key_serves_as_both() {
    let key = KeyPair::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = self_signed(&key);
    let both = write(
        dir.path(),
        "both.pem",
        &format!("{}{cert_pem}", key.serialize_pem()),
    );
    let server = start(
        load_server_config(&both, &both).unwrap(),
        ListenLimits::default(),
    )
    .await;
    assert_eq!(
        get_hello(&https_client(&cert_pem), server.addr)
            .await
            .unwrap(),
        BODY
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_and_the_listener_goes_on() {
    let pki = pki();
    let server = start(
        load_server_config(&pki.cert, &pki.key).unwrap(),
        ListenLimits::default(),
    )
    .await;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{}/hello", server.addr))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");
    // Bytes that are no TLS at all, on a raw socket: closed, not hung.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    time_to_close(raw, Instant::now()).await;

    let client = https_client(&pki.cert_pem);
    assert_eq!(get_hello(&client, server.addr).await.unwrap(), BODY);
}

#[tokio::test]
async fn a_client_that_never_handshakes_is_dropped_and_frees_its_slot() {
    let pki = pki();
    let header_read = Duration::from_millis(800);
    // One slot: while the silent client holds it, nobody else is served.
    let server = start(
        load_server_config(&pki.cert, &pki.key).unwrap(),
        limits(header_read, 1),
    )
    .await;
    let t0 = Instant::now();
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let closer = tokio::spawn(time_to_close(silent, t0));
    // Give the listener time to accept the silent connection first.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let client = https_client(&pki.cert_pem);
    assert_eq!(get_hello(&client, server.addr).await.unwrap(), BODY);
    let served_after = t0.elapsed();
    let closed_after = closer.await.unwrap();
    assert!(
        closed_after >= header_read - Duration::from_millis(100),
        "closed too early: {closed_after:?}"
    );
    assert!(
        served_after >= header_read - Duration::from_millis(100),
        "the request was served before the silent client's slot was free ({served_after:?}): max_connections was not in force"
    );
}

#[tokio::test]
async fn the_handshake_counts_against_the_header_read_timeout() {
    let pki = pki();
    let header_read = Duration::from_secs(3);
    let server = start(
        load_server_config(&pki.cert, &pki.key).unwrap(),
        limits(header_read, 16),
    )
    .await;
    let t0 = Instant::now();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    // Dawdle for two thirds of the timeout, then handshake and send nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let closed_after = time_to_close(tls, t0).await;
    // Counted from the accept: closed at ~3 s. Had the handshake restarted
    // the clock, hyper's timer would close it at ~5 s.
    assert!(
        closed_after >= header_read - Duration::from_millis(200),
        "closed too early: {closed_after:?}"
    );
    assert!(
        closed_after < Duration::from_millis(4500),
        "the handshake did not count against the header-read timeout: closed after {closed_after:?}"
    );
}

fn load_err(cert: &Path, key: &Path) -> TlsError {
    match load_server_config(cert, key) {
        Ok(_) => panic!("loaded {} and {}", cert.display(), key.display()),
        Err(e) => e,
    }
}

fn help(e: &TlsError) -> String {
    miette::Diagnostic::help(e)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

#[test]
fn a_missing_file_is_named() {
    let pki = pki();
    let missing = pki.dir.path().join("nope.pem");
    let e = load_err(&missing, &pki.key);
    assert!(matches!(e, TlsError::ReadCert { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("`{}`", missing.display())),
        "{e}"
    );
    let e = load_err(&pki.cert, &missing);
    assert!(matches!(e, TlsError::ReadKey { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("`{}`", missing.display())),
        "{e}"
    );
}

#[test]
fn a_certificate_file_without_a_certificate_is_named() {
    let pki = pki();
    // The key given as the certificate, and a file of no PEM at all.
    let e = load_err(&pki.key, &pki.key);
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("`{}`", pki.key.display())),
        "{e}"
    );
    assert!(help(&e).contains("BEGIN CERTIFICATE"), "{}", help(&e));
    let text = write(pki.dir.path(), "text.pem", "not a certificate\n");
    let e = load_err(&text, &pki.key);
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("text.pem"), "{e}");
}

#[test]
fn a_key_file_without_a_key_is_named() {
    let pki = pki();
    let e = load_err(&pki.cert, &pki.cert);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("`{}`", pki.cert.display())),
        "{e}"
    );
    assert!(help(&e).contains("openssl genpkey"), "{}", help(&e));
    // An encrypted key is no key warden can use; the help says how to
    // decrypt it.
    let encrypted = write(
        pki.dir.path(),
        "encrypted.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = load_err(&pki.cert, &encrypted);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
    assert!(help(&e).contains("openssl pkey"), "{}", help(&e));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
    let pki = pki();
    let other = write(
        pki.dir.path(),
        "other-key.pem",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let e = load_err(&pki.cert, &other);
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("`{}`", other.display())), "{msg}");
    assert!(msg.contains(&format!("`{}`", pki.cert.display())), "{msg}");
}

#[test]
fn two_keys_in_the_key_file_are_refused() {
    let pki = pki();
    let two = format!(
        "{}{}",
        std::fs::read_to_string(&pki.key).unwrap(),
        KeyPair::generate().unwrap().serialize_pem()
    );
    let two = write(pki.dir.path(), "two.pem", &two);
    let e = load_err(&pki.cert, &two);
    assert!(matches!(e, TlsError::SeveralKeys { count: 2, .. }), "{e:?}");
    assert!(e.to_string().contains("two.pem"), "{e}");
}

#[test]
fn malformed_pem_is_named() {
    let pki = pki();
    let bad = write(
        pki.dir.path(),
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    );
    let e = load_err(&bad, &pki.key);
    assert!(matches!(e, TlsError::CertPem { .. }), "{e:?}");
    assert!(e.to_string().contains("bad.pem"), "{e}");
    let unterminated = write(
        pki.dir.path(),
        "cut.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    );
    let e = load_err(&pki.cert, &unterminated);
    assert!(matches!(e, TlsError::KeyPem { .. }), "{e:?}");
    assert!(e.to_string().contains("cut.pem"), "{e}");
}

#[test]
fn a_certificate_that_is_not_der_is_refused_naming_it() {
    let pki = pki();
    // Valid PEM around bytes that are no certificate: rustls parses the
    // end-entity certificate when it checks the key against it.
    let junk = write(
        pki.dir.path(),
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    );
    let e = load_err(&junk, &pki.key);
    assert!(matches!(e, TlsError::UnusableCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("junk.pem"), "{e}");
}
