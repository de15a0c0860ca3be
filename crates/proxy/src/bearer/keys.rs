//! The keys bearer tokens are checked against: a JWKS document or PEM
//! public keys (RSA, EC P-256/P-384, Ed25519; a PEM file may hold
//! several), each with the algorithms it may sign with. Symmetric and
//! private keys are refused.

use super::KeyError;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::Path;

/// One trusted key.
#[derive(Debug, Clone)]
pub(super) struct Key {
    pub(super) kid: Option<String>,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) key: DecodingKey,
}

pub(super) fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The algorithms a JWKS key may be used with.
fn jwk_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys: never (an HMAC secret in a public JWKS is a
        // mistake, and accepting HS* is how public keys get misused).
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(family),
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => None,
        Some(named) => {
            // Key algorithms print as JWS names (`ES256`, `EdDSA`); the
            // encryption ones (`RSA_OAEP`, ...) do not parse and are refused.
            let alg = format!("{named:?}").parse::<Algorithm>().ok()?;
            family.contains(&alg).then(|| vec![alg])
        }
    }
}

/// Every public key of a PEM file, in order: a file may hold several
/// (`-----BEGIN ...-----` to `-----END ...-----` each), as a key
/// rotation file holds the old and the new key.
pub(super) fn pem_keys(path: &Path, text: &str) -> Result<Vec<Key>, KeyError> {
    let blocks = pem_blocks(text);
    if blocks.len() <= 1 {
        return Ok(vec![pem_key(path, text)?]);
    }
    blocks.iter().map(|b| pem_key(path, b)).collect()
}

pub(super) fn jwks_keys(path: &Path, text: &str) -> Result<Vec<Key>, KeyError> {
    let shown = || path.display().to_string();
    let set: JwkSet = serde_json::from_str(text).map_err(|e| KeyError::Jwks {
        path: shown(),
        message: e.to_string(),
    })?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // An encryption key is not for checking signatures.
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(algorithms) = jwk_algorithms(jwk) else {
            tracing::warn!(
                "{}: key {:?} skipped: not an RSA, EC P-256/P-384 or Ed25519 signing key",
                shown(),
                jwk.common.key_id
            );
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Jwks {
            path: shown(),
            message: format!("key {:?}: {e}", jwk.common.key_id.as_deref().unwrap_or("?")),
        })?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key,
        });
    }
    if keys.is_empty() {
        return Err(KeyError::NoKeys { path: shown() });
    }
    Ok(keys)
}

fn pem_key(path: &Path, text: &str) -> Result<Key, KeyError> {
    let shown = path.display().to_string();
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyError::Private { path: shown });
    }
    let bytes = text.as_bytes();
    // The PEM's key type decides which of these succeeds.
    if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        return Ok(Key {
            kid: None,
            algorithms: vec![Algorithm::EdDSA],
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        return Ok(Key {
            kid: None,
            algorithms: vec![Algorithm::ES256, Algorithm::ES384],
            key,
        });
    }
    match DecodingKey::from_rsa_pem(bytes) {
        Ok(key) => Ok(Key {
            kid: None,
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            key,
        }),
        Err(e) => Err(KeyError::Pem {
            path: shown,
            message: e.to_string(),
        }),
    }
}

/// The PEM blocks of a text (each from its `-----BEGIN` line through its
/// `-----END ...-----` line); empty when there is none.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(b) = current.as_mut() {
            b.push_str(t);
            b.push('\n');
            if t.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}
