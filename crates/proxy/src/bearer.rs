//! Identity on Streamable HTTP from a verified bearer JWT (`warden proxy
//! --listen ... --jwt-issuer ... --jwt-audience ... --jwks FILE`).
//!
//! This module owns the bearer settings ([`BearerSettings`]: issuer,
//! audiences, keys, leeway, claim names), loading the keys (a JWKS JSON
//! file, or PEM public keys: RSA, EC P-256/P-384, Ed25519), checking a
//! request's `Authorization: Bearer ...` ([`Verifier::verify_header`]) and
//! mapping the token's claims to the caller's identity ([`Caller`],
//! [`Caller::identity`]). Every failure is an [`AuthError`] whose message
//! is the reason the client gets with its 401.
//!
//! What is accepted, and why:
//!
//! - Only asymmetric algorithms, derived from the keys warden holds (a
//!   JWKS key's `alg` when it names one, else its family: RS*/PS* for RSA,
//!   ES256/ES384 for EC, EdDSA for OKP). `none` cannot be named (the
//!   header does not parse) and HS* is never accepted: a symmetric key in
//!   a JWKS is refused when loading, so a public key can never be misused
//!   as an HMAC secret.
//! - A token naming a `kid` is checked only against the keys with that
//!   `kid` (and keys without one, as PEM files are); an unknown `kid` is
//!   its own error, so a key rotation problem reads as one.
//! - `iss`, `aud` and `exp` are required; `nbf` is checked when present.
//!   `iss` must be one string (RFC 7519 4.1.1 makes it a StringOrURI):
//!   an array is refused, even one holding the right issuer.
//! - A header with `crit` (RFC 7515 4.1.11) is refused: warden
//!   understands no JWS extension, and the RFC says a token whose critical
//!   extensions are not understood must be rejected.
//! - The clock skew (`--jwt-leeway`) is at most [`MAX_LEEWAY_SECS`].
//! - A PEM file may hold several public keys (a rotation file with the old
//!   and the new key): every one of them is trusted.
//!   The audience must name warden itself (its resource URL or id): a
//!   token minted for another service is refused, and the client's token
//!   is never passed upstream (the HTTP upstream link sends its own
//!   headers only).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use warden_engine::{Identity, Verified};

/// Default clock skew allowed on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The largest clock skew `--jwt-leeway` accepts, in seconds: five
/// minutes, the usual bound for clock drift; a larger one would let an
/// expired token live on for as long, and a huge one wrapped around.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Which claims carry the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The user (default `sub`); required.
    pub user: String,
    /// The groups (default `groups`): an array of strings or one
    /// space-separated string. Absent: the `--group` flags (declared).
    pub groups: String,
    /// The agent, first present wins (default `azp`, then `client_id`).
    /// Absent: the client's `clientInfo.name` (declared).
    pub agent: Vec<String>,
    /// The model, if a claim carries it (default none: `--model`).
    pub model: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user: "sub".into(),
            groups: "groups".into(),
            agent: vec!["azp".into(), "client_id".into()],
            model: None,
        }
    }
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document (`{"keys": [...]}`), as an authorization server
    /// publishes at its `jwks_uri`, saved to a file.
    Jwks(PathBuf),
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY`).
    Pem(Vec<PathBuf>),
}

/// The bearer settings as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerSettings {
    /// The expected `iss`, exactly.
    pub issuer: String,
    /// Accepted `aud` values: names of warden itself (e.g. its public
    /// MCP URL). A token whose `aud` names none of them is refused.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    pub claims: ClaimNames,
}

/// Why the bearer keys could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KeyError {
    #[error("cannot read the bearer key file `{path}`: {message}")]
    #[diagnostic(help(
        "give a readable file: --jwks takes a JWKS JSON document, --jwt-key a PEM public key"
    ))]
    Read { path: String, message: String },
    #[error("`{path}` is not a JWKS document: {message}")]
    #[diagnostic(help(
        "save the authorization server's JWKS (its `jwks_uri`) to the file: a JSON object `{{\"keys\": [...]}}`"
    ))]
    Jwks { path: String, message: String },
    #[error("`{path}` holds no usable public key: {message}")]
    #[diagnostic(help(
        "give a PEM public key (`-----BEGIN PUBLIC KEY-----`): RSA, EC P-256/P-384 or Ed25519, e.g. from `openssl pkey -in key.pem -pubout`"
    ))]
    Pem { path: String, message: String },
    #[error("`{path}` is a private key")]
    #[diagnostic(help(
        "warden only verifies tokens: give it the public key (`openssl pkey -in {path} -pubout`), and keep the private key with the token issuer"
    ))]
    Private { path: String },
    #[error("no bearer key: `{path}` has no usable signing key")]
    #[diagnostic(help(
        "the JWKS must hold at least one RSA, EC or OKP (Ed25519) key for signatures; symmetric (`oct`) keys are never accepted"
    ))]
    NoKeys { path: String },
}

/// Why a request's bearer token was refused. The message is the reason
/// given to the client (`error_description` and the 401's body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error(
        "the `Authorization` header is not a bearer token: send `Authorization: Bearer <token>`"
    )]
    NotBearer,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("bad signature: the token is not signed by a key warden trusts")]
    BadSignature,
    #[error("unknown key id `{0}`: no key warden trusts has it")]
    UnknownKid(String),
    #[error("algorithm `{0}` is not accepted for this key")]
    Algorithm(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    #[error("wrong issuer: the token was not issued by `{0}`")]
    WrongIssuer(String),
    #[error("wrong audience: the token is not for warden (`{0}`)")]
    WrongAudience(String),
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token's `{0}` claim is not {1}")]
    BadClaim(String, &'static str),
    #[error("the token's header lists critical extensions warden does not understand (`{0}`)")]
    Critical(String),
}

/// The identity a verified token gives: `user` always; the others when
/// the token carries them (`None`: fall back to a declared value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub groups: Option<Vec<String>>,
    pub agent: Option<String>,
    pub model: Option<String>,
}

impl Caller {
    /// The call's identity: the token's attributes (marked verified), else
    /// the operator's groups and model and the client's declared agent.
    pub fn identity(
        &self,
        declared_groups: &[String],
        declared_model: Option<&str>,
        declared_agent: Option<String>,
    ) -> Identity {
        Identity {
            user: self.user.clone(),
            groups: self
                .groups
                .clone()
                .unwrap_or_else(|| declared_groups.to_vec()),
            agent: self.agent.clone().or(declared_agent),
            model: self
                .model
                .clone()
                .or_else(|| declared_model.map(str::to_string)),
            verified: Verified {
                user: true,
                groups: self.groups.is_some(),
                agent: self.agent.is_some(),
                model: self.model.is_some(),
            },
        }
    }
}

/// One trusted key.
#[derive(Debug, Clone)]
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Checks bearer tokens against the configured issuer, audiences and keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<Key>,
    leeway_secs: u64,
    claims: ClaimNames,
}

fn read(path: &Path) -> Result<String, KeyError> {
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

impl Verifier {
    /// Loads the keys and builds the verifier.
    pub fn load(settings: &BearerSettings) -> Result<Verifier, KeyError> {
        let keys = match &settings.keys {
            KeySource::Jwks(path) => Self::jwks_keys(path, &read(path)?)?,
            KeySource::Pem(paths) => {
                let mut keys = Vec::new();
                for path in paths {
                    keys.extend(Self::pem_keys(path, &read(path)?)?);
                }
                keys
            }
        };
        Ok(Verifier {
            issuer: settings.issuer.clone(),
            audiences: settings.audiences.clone(),
            keys,
            // Bounded here too, for callers that skip the flag's parser.
            leeway_secs: settings.leeway_secs.min(MAX_LEEWAY_SECS),
            claims: settings.claims.clone(),
        })
    }

    /// Every public key of a PEM file, in order: a file may hold several
    /// (`-----BEGIN ...-----` to `-----END ...-----` each), as a key
    /// rotation file holds the old and the new key.
    fn pem_keys(path: &Path, text: &str) -> Result<Vec<Key>, KeyError> {
        let blocks = pem_blocks(text);
        if blocks.len() <= 1 {
            return Ok(vec![Self::pem_key(path, text)?]);
        }
        blocks.iter().map(|b| Self::pem_key(path, b)).collect()
    }

    fn jwks_keys(path: &Path, text: &str) -> Result<Vec<Key>, KeyError> {
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

    /// The expected issuer (for the protected resource metadata).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audiences; the first is warden's resource name.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Checks the `Authorization` header values of a request.
    pub fn verify_header<'a>(
        &self,
        mut values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Caller, AuthError> {
        let Some(value) = values.next() else {
            return Err(AuthError::Missing);
        };
        if values.next().is_some() {
            return Err(AuthError::Malformed(
                "more than one `Authorization` header".into(),
            ));
        }
        let value = std::str::from_utf8(value).map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        // The scheme is case-insensitive (RFC 7235).
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }

    /// Checks one token: signature, algorithm, `kid`, issuer, audience,
    /// expiry; then maps its claims.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Malformed(malformed_reason(e.kind())))?;
        // RFC 7515 4.1.11: extensions listed in `crit` must be understood,
        // and warden understands none (an empty list is invalid too).
        if let Some(crit) = &header.crit {
            return Err(AuthError::Critical(crit.join("`, `")));
        }
        let alg_name = format!("{:?}", header.alg);
        let by_kid: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if by_kid.is_empty() {
            return Err(AuthError::UnknownKid(header.kid.unwrap_or_default()));
        }
        let candidates: Vec<&Key> = by_kid
            .into_iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::Algorithm(alg_name));
        }
        let mut last = AuthError::BadSignature;
        for key in candidates {
            let mut v = Validation::new(header.alg);
            v.set_issuer(&[&self.issuer]);
            v.set_audience(&self.audiences);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            v.validate_nbf = true;
            v.leeway = self.leeway_secs;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v) {
                Ok(data) => {
                    // jsonwebtoken accepts an array `iss` whose members are
                    // all expected; RFC 7519 makes `iss` one StringOrURI.
                    if !matches!(data.claims.get("iss"), Some(Value::String(_))) {
                        return Err(AuthError::BadClaim("iss".into(), "a string"));
                    }
                    return self.caller(&data.claims);
                }
                // Another key may have signed it.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
                Err(e) => {
                    last = self.reason(e.kind());
                    // Past the signature check: the key was right.
                    if !matches!(
                        e.kind(),
                        ErrorKind::InvalidEcdsaKey
                            | ErrorKind::InvalidEddsaKey
                            | ErrorKind::InvalidRsaKey(_)
                            | ErrorKind::InvalidKeyFormat
                            | ErrorKind::InvalidAlgorithm
                    ) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn reason(&self, kind: &ErrorKind) -> AuthError {
        match kind {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                AuthError::Algorithm("?".into())
            }
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer(self.issuer.clone()),
            ErrorKind::InvalidAudience => AuthError::WrongAudience(self.audiences.join("`, `")),
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => AuthError::BadClaim(c.clone(), "a number"),
            other => AuthError::Malformed(malformed_reason(other)),
        }
    }

    /// Maps verified claims to the caller.
    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let names = &self.claims;
        let user = match claims.get(&names.user) {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim(names.user.clone())),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(AuthError::BadClaim(
                    names.user.clone(),
                    "a non-empty string",
                ));
            }
        };
        let groups = match claims.get(&names.groups) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.split_whitespace().map(str::to_string).collect()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|g| g.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        AuthError::BadClaim(
                            names.groups.clone(),
                            "an array of strings or a space-separated string",
                        )
                    })?,
            ),
            Some(_) => {
                return Err(AuthError::BadClaim(
                    names.groups.clone(),
                    "an array of strings or a space-separated string",
                ));
            }
        };
        let string_claim = |name: &String| -> Result<Option<String>, AuthError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AuthError::BadClaim(name.clone(), "a string")),
            }
        };
        let mut agent = None;
        for name in &names.agent {
            if let Some(a) = string_claim(name)? {
                agent = Some(a);
                break;
            }
        }
        let model = match &names.model {
            Some(name) => string_claim(name)?,
            None => None,
        };
        Ok(Caller {
            user,
            groups,
            agent,
            model,
        })
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

fn malformed_reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidToken => "not a JWT (three base64url parts separated by dots)".into(),
        ErrorKind::Base64(_) => "a part is not base64url".into(),
        ErrorKind::Json(e) => format!("a part is not the expected JSON ({e})"),
        ErrorKind::Utf8(_) => "a part is not UTF-8".into(),
        ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            "the header names an algorithm warden does not accept".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use std::time::{SystemTime, UNIX_EPOCH};

    const ISS: &str = "https://auth.example.com";
    const AUD: &str = "https://warden.example.com/mcp";

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    struct Pair {
        encoding: EncodingKey,
        public_pem: String,
        x: String,
    }

    fn pair(seed: u8) -> Pair {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let public = DecodingKey::from_ed_der(sk.verifying_key().as_bytes());
        let jwk = Jwk::from_decoding_key(&public, Some(Algorithm::EdDSA)).unwrap();
        let x = serde_json::to_value(&jwk).unwrap()["x"]
            .as_str()
            .unwrap()
            .to_string();
        Pair {
            encoding,
            public_pem,
            x,
        }
    }

    fn verifier_pem(dir: &Path, pairs: &[&Pair], claims: ClaimNames) -> Verifier {
        let paths = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = dir.join(format!("k{i}.pub"));
                std::fs::write(&path, &p.public_pem).unwrap();
                path
            })
            .collect();
        Verifier::load(&BearerSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            keys: KeySource::Pem(paths),
            leeway_secs: 5,
            claims,
        })
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 300, "iat": now()})
    }

    fn sign(p: &Pair, claims: &Value, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, &p.encoding).unwrap()
    }

    fn with(mut base: Value, patch: Value) -> Value {
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[test]
    fn claims_map_to_a_verified_identity_with_declared_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(1);
        let v = verifier_pem(dir.path(), &[&k], ClaimNames::default());

        // Only `sub`: user verified; groups, model from flags; agent from
        // clientInfo; all three declared.
        let c = v.verify(&sign(&k, &good_claims(), None)).unwrap();
        let id = c.identity(&["ops".into()], Some("m1"), Some("claude-code".into()));
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, vec!["ops"]);
        assert_eq!(id.agent.as_deref(), Some("claude-code"));
        assert_eq!(id.model.as_deref(), Some("m1"));
        assert_eq!(
            id.verified,
            Verified {
                user: true,
                ..Verified::default()
            }
        );

        // Groups as an array, `azp` as the agent.
        let t = sign(
            &k,
            &with(
                good_claims(),
                json!({"groups": ["a", "b"], "azp": "client-1"}),
            ),
            None,
        );
        let id = v
            .verify(&t)
            .unwrap()
            .identity(&[], None, Some("declared".into()));
        assert_eq!(id.groups, vec!["a", "b"]);
        assert_eq!(id.agent.as_deref(), Some("client-1"));
        assert!(id.verified.user && id.verified.groups && id.verified.agent);
        assert!(!id.verified.model);

        // Groups as a space-separated string, `client_id` when no `azp`.
        let t = sign(
            &k,
            &with(good_claims(), json!({"groups": "x  y", "client_id": "c2"})),
            None,
        );
        let c = v.verify(&t).unwrap();
        assert_eq!(c.groups, Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(c.agent.as_deref(), Some("c2"));
    }

    #[test]
    fn claim_names_are_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(2);
        let names = ClaimNames {
            user: "email".into(),
            groups: "roles".into(),
            agent: vec!["app".into()],
            model: Some("llm".into()),
        };
        let v = verifier_pem(dir.path(), &[&k], names);
        let t = sign(
            &k,
            &with(
                good_claims(),
                json!({"email": "ada@example.com", "roles": ["admins"], "app": "cursor",
                       "llm": "opus", "azp": "ignored"}),
            ),
            None,
        );
        let c = v.verify(&t).unwrap();
        assert_eq!(
            c,
            Caller {
                user: "ada@example.com".into(),
                groups: Some(vec!["admins".into()]),
                agent: Some("cursor".into()),
                model: Some("opus".into()),
            }
        );
        let id = c.identity(&[], None, None);
        assert!(id.verified.model && id.verified.agent && id.verified.groups);
        // The user claim is required.
        let t = sign(&k, &good_claims(), None);
        assert_eq!(v.verify(&t), Err(AuthError::MissingClaim("email".into())));
    }

    #[test]
    fn each_bad_token_gets_its_own_reason() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(3);
        let other = pair(4);
        let v = verifier_pem(dir.path(), &[&k], ClaimNames::default());
        let bad = |claims: Value| v.verify(&sign(&k, &claims, None)).unwrap_err();

        assert_eq!(
            bad(with(good_claims(), json!({"exp": now() - 3600}))),
            AuthError::Expired
        );
        assert_eq!(
            bad(with(good_claims(), json!({"nbf": now() + 3600}))),
            AuthError::NotYetValid
        );
        assert_eq!(
            bad(with(good_claims(), json!({"iss": "https://evil.example"}))),
            AuthError::WrongIssuer(ISS.into())
        );
        assert_eq!(
            bad(with(
                good_claims(),
                json!({"aud": "https://other.example/api"})
            )),
            AuthError::WrongAudience(AUD.into())
        );
        assert_eq!(
            bad(with(good_claims(), json!({"aud": null}))),
            AuthError::MissingClaim("aud".into())
        );
        assert_eq!(
            bad(with(good_claims(), json!({"exp": null}))),
            AuthError::MissingClaim("exp".into())
        );
        assert_eq!(
            bad(with(good_claims(), json!({"sub": null}))),
            AuthError::MissingClaim("sub".into())
        );
        assert_eq!(
            bad(with(good_claims(), json!({"sub": 7}))),
            AuthError::BadClaim("sub".into(), "a non-empty string")
        );
        assert!(matches!(
            bad(with(good_claims(), json!({"groups": [1]}))),
            AuthError::BadClaim(..)
        ));
        // An audience list naming warden among others is fine.
        let t = sign(&k, &with(good_claims(), json!({"aud": ["x", AUD]})), None);
        assert!(v.verify(&t).is_ok());

        // Signed by another key.
        assert_eq!(
            v.verify(&sign(&other, &good_claims(), None)),
            Err(AuthError::BadSignature)
        );
        // Altered payload: another token's claims under this signature.
        let t = sign(&k, &good_claims(), None);
        let root = sign(&other, &with(good_claims(), json!({"sub": "root"})), None);
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = root.split('.').nth(1).unwrap();
        assert_eq!(v.verify(&parts.join(".")), Err(AuthError::BadSignature));

        // Malformed, `none`, HS256, not Bearer, missing.
        assert!(matches!(v.verify("abc"), Err(AuthError::Malformed(_))));
        // `{"alg":"none"}` and the payload of a valid token, unsigned.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
        assert!(matches!(v.verify(&none), Err(AuthError::Malformed(_))));
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(k.public_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(v.verify(&hs), Err(AuthError::Algorithm("HS256".into())));
        let h = |s: &'static str| v.verify_header(std::iter::once(s.as_bytes()));
        assert_eq!(
            h("Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            Err(AuthError::NotBearer)
        );
        assert_eq!(h("Bearer"), Err(AuthError::NotBearer));
        assert_eq!(v.verify_header(std::iter::empty()), Err(AuthError::Missing));
        let ok = format!("bearer {}", sign(&k, &good_claims(), None));
        assert!(v.verify_header(std::iter::once(ok.as_bytes())).is_ok());
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid_and_symmetric_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(5);
        let b = pair(6);
        let jwks = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": a.x, "kid": "a", "use": "sig", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": b.x, "kid": "b"},
        ]});
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let v = Verifier::load(&BearerSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            keys: KeySource::Jwks(path),
            leeway_secs: 5,
            claims: ClaimNames::default(),
        })
        .unwrap();
        assert_eq!(v.keys.len(), 2, "the oct key is skipped");
        assert!(v.verify(&sign(&a, &good_claims(), Some("a"))).is_ok());
        assert!(v.verify(&sign(&b, &good_claims(), Some("b"))).is_ok());
        assert!(v.verify(&sign(&b, &good_claims(), None)).is_ok());
        assert_eq!(
            v.verify(&sign(&a, &good_claims(), Some("b"))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify(&sign(&a, &good_claims(), Some("zz"))),
            Err(AuthError::UnknownKid("zz".into()))
        );
        // A token naming the oct key's kid with HS256: that key is not held.
        let hs = encode(
            &Header {
                kid: Some("hmac".into()),
                ..Header::new(Algorithm::HS256)
            },
            &good_claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(v.verify(&hs), Err(AuthError::UnknownKid("hmac".into())));

        // Only symmetric keys: refused at load.
        let only_oct = dir.path().join("oct.json");
        std::fs::write(&only_oct, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let err = Verifier::load(&BearerSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            keys: KeySource::Jwks(only_oct),
            leeway_secs: 5,
            claims: ClaimNames::default(),
        })
        .unwrap_err();
        assert!(matches!(err, KeyError::NoKeys { .. }), "{err}");
    }

    #[test]
    fn unusable_key_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let load = |source: KeySource| {
            Verifier::load(&BearerSettings {
                issuer: ISS.into(),
                audiences: vec![AUD.into()],
                keys: source,
                leeway_secs: 5,
                claims: ClaimNames::default(),
            })
            .unwrap_err()
            .to_string()
        };
        let missing = dir.path().join("nope.pem");
        assert!(load(KeySource::Pem(vec![missing])).contains("cannot read"));
        let private = dir.path().join("private.pem");
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        std::fs::write(
            &private,
            sk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        assert!(load(KeySource::Pem(vec![private])).contains("is a private key"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(load(KeySource::Pem(vec![junk.clone()])).contains("no usable public key"));
        assert!(load(KeySource::Jwks(junk)).contains("is not a JWKS document"));
    }

    #[test]
    fn finding_26_a_crit_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(11);
        let v = verifier_pem(dir.path(), &[&k], ClaimNames::default());
        let mut h = Header::new(Algorithm::EdDSA);
        h.crit = Some(vec!["https://example.com/must-understand".into()]);
        let t = encode(&h, &good_claims(), &k.encoding).unwrap();
        assert_eq!(
            v.verify(&t),
            Err(AuthError::Critical(
                "https://example.com/must-understand".into()
            ))
        );
        // The same token without `crit` passes: the refusal is the header's.
        assert!(v.verify(&sign(&k, &good_claims(), None)).is_ok());
    }

    #[test]
    fn finding_26_an_issuer_array_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(12);
        let v = verifier_pem(dir.path(), &[&k], ClaimNames::default());
        let t = sign(&k, &with(good_claims(), json!({"iss": [ISS]})), None);
        assert_eq!(
            v.verify(&t),
            Err(AuthError::BadClaim("iss".into(), "a string"))
        );
    }

    #[test]
    fn finding_26_every_key_of_a_multi_pem_file_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let old = pair(13);
        let new = pair(14);
        let path = dir.path().join("rotation.pem");
        std::fs::write(&path, format!("{}\n{}", old.public_pem, new.public_pem)).unwrap();
        let v = Verifier::load(&BearerSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            keys: KeySource::Pem(vec![path]),
            leeway_secs: 5,
            claims: ClaimNames::default(),
        })
        .unwrap();
        assert!(v.verify(&sign(&old, &good_claims(), None)).is_ok());
        assert!(v.verify(&sign(&new, &good_claims(), None)).is_ok());
        assert_eq!(
            v.verify(&sign(&pair(15), &good_claims(), None)),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn finding_26_the_leeway_is_bounded_without_wrapping() {
        let dir = tempfile::tempdir().unwrap();
        let k = pair(16);
        let path = dir.path().join("k.pem");
        std::fs::write(&path, &k.public_pem).unwrap();
        let v = Verifier::load(&BearerSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            keys: KeySource::Pem(vec![path]),
            leeway_secs: u64::MAX,
            claims: ClaimNames::default(),
        })
        .unwrap();
        // Expired an hour ago: past any bounded leeway.
        let t = sign(&k, &with(good_claims(), json!({"exp": now() - 3600})), None);
        assert_eq!(v.verify(&t), Err(AuthError::Expired));
    }
}
