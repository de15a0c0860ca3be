//! TLS for the HTTP listener: loading the server's certificate chain and
//! private key from PEM files into a rustls [`ServerConfig`] that
//! [`crate::listener::serve_with_tls`] terminates connections with.
//!
//! The crypto provider is aws-lc-rs, the one reqwest's rustls already
//! builds, passed explicitly so no process-wide default has to be
//! installed. The config offers ALPN `http/1.1` only, because the listener
//! speaks HTTP/1.1 only; a client that insists on another protocol fails
//! the handshake instead of being served something it did not ask for.
//!
//! Every error names the file it is about and says what was expected.
//! Loading fails closed: a key file with two keys, a certificate whose key
//! is not the one given, a key rustls cannot use, is an error, never a
//! guess.

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Help for a key file that is wrong: what it must hold and how to make one.
const KEY_HELP: &str = "the key file must hold one unencrypted PEM private key: PKCS#8 \
     (`-----BEGIN PRIVATE KEY-----`), RSA (`-----BEGIN RSA PRIVATE KEY-----`) or EC \
     (`-----BEGIN EC PRIVATE KEY-----`); make one with `openssl genpkey -algorithm EC \
     -pkeyopt ec_paramgen_curve:P-256 -out key.pem`, or decrypt an encrypted one with \
     `openssl pkey -in encrypted.pem -out key.pem`";

/// Help for a certificate file that is wrong.
const CERT_HELP: &str = "the certificate file must hold the server's PEM certificate \
     (`-----BEGIN CERTIFICATE-----`) first, then any intermediates; for a test, make a \
     self-signed one with `openssl req -x509 -new -key key.pem -out cert.pem -days 365 \
     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`";

/// Where the listener's certificate chain and private key are (the
/// `[tls]` table of `warden serve`'s config, or `--tls-cert`/`--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain: the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key for the first certificate.
    pub key: PathBuf,
}

impl TlsSettings {
    /// Loads the files into a server config; see [`load_server_config`].
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        load_server_config(&self.cert, &self.key)
    }
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file `{path}`: {message}")]
    #[diagnostic(help("give the path of a PEM certificate file readable by warden"))]
    ReadCert { path: String, message: String },
    #[error("cannot read the TLS key file `{path}`: {message}")]
    #[diagnostic(help("give the path of a PEM private key file readable by warden"))]
    ReadKey { path: String, message: String },
    #[error("the TLS certificate file `{path}` is not valid PEM: {message}")]
    #[diagnostic(help("{CERT_HELP}"))]
    CertPem { path: String, message: String },
    #[error("the TLS key file `{path}` is not valid PEM: {message}")]
    #[diagnostic(help("{KEY_HELP}"))]
    KeyPem { path: String, message: String },
    #[error("the TLS certificate file `{path}` holds no certificate")]
    #[diagnostic(help("{CERT_HELP}"))]
    NoCertificate { path: String },
    #[error("the TLS key file `{path}` holds no private key")]
    #[diagnostic(help("{KEY_HELP}"))]
    NoKey { path: String },
    #[error("the TLS key file `{path}` holds {count} private keys, not one")]
    #[diagnostic(help("keep only the key of the server's certificate in the file"))]
    SeveralKeys { path: String, count: usize },
    #[error("the private key in `{key}` is not the key of the certificate in `{cert}`")]
    #[diagnostic(help(
        "give the key the certificate was issued for; `openssl x509 -in CERT -noout -pubkey` and `openssl pkey -in KEY -pubout` print the same public key when they match"
    ))]
    KeyMismatch { cert: String, key: String },
    #[error("the private key in `{path}` cannot be used: {message}")]
    #[diagnostic(help("{KEY_HELP}; RSA keys need at least 2048 bits"))]
    UnusableKey { path: String, message: String },
    #[error("the TLS certificate in `{path}` cannot be used: {message}")]
    #[diagnostic(help("{CERT_HELP}"))]
    UnusableCertificate { path: String, message: String },
}

/// Reads a PEM certificate chain from `cert` and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC) from `key`, checks that the key is the
/// certificate's, and returns a server config offering ALPN `http/1.1`.
/// The two paths may be the same file holding both.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain = read_chain(cert, &cert_name)?;
    let private_key = read_key(key, &key_name)?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::UnusableCertificate {
            path: cert_name.clone(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| classify(e, cert_name, key_name))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Which file a rustls error at config build is about.
fn classify(e: rustls::Error, cert: String, key: String) -> TlsError {
    use rustls::{Error, InconsistentKeys};
    match e {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch { cert, key }
        }
        Error::InvalidCertificate(_) | Error::NoCertificatesPresented => {
            TlsError::UnusableCertificate {
                path: cert,
                message: e.to_string(),
            }
        }
        // Load_private_key's failures (an algorithm or size aws-lc-rs does
        // not sign with, a corrupt key) come as General.
        other => TlsError::UnusableKey {
            path: key,
            message: other.to_string(),
        },
    }
}

/// The certificates of `path`, in file order; other sections (a key kept
/// in the same file) are skipped.
fn read_chain(path: &Path, name: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::ReadCert {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut chain = Vec::new();
    for section in sections(&text) {
        let (kind, der) = section.map_err(|e| TlsError::CertPem {
            path: name.to_string(),
            message: e.to_string(),
        })?;
        if kind == SectionKind::Certificate {
            chain.push(CertificateDer::from(der));
        }
    }
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: name.to_string(),
        });
    }
    Ok(chain)
}

/// The one private key of `path`; certificates in the same file are
/// skipped, two keys are an error (which one is meant is a guess).
fn read_key(path: &Path, name: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::ReadKey {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut keys = Vec::new();
    for section in sections(&text) {
        let (kind, der) = section.map_err(|e| TlsError::KeyPem {
            path: name.to_string(),
            message: e.to_string(),
        })?;
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            _ => continue,
        };
        keys.push(key);
    }
    match keys.len() {
        0 => Err(TlsError::NoKey {
            path: name.to_string(),
        }),
        1 => Ok(keys.remove(0)),
        count => Err(TlsError::SeveralKeys {
            path: name.to_string(),
            count,
        }),
    }
}

/// The PEM sections of `text` whose labels rustls-pki-types knows; text
/// around them and sections with other labels are skipped by it.
fn sections(text: &[u8]) -> impl Iterator<Item = Result<(SectionKind, Vec<u8>), pem::Error>> + '_ {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(text)
}
