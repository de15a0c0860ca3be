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
//!
//! Files: this one holds the settings, the errors and the token check;
//! `keys.rs` loads the trusted keys (JWKS or PEM) and the algorithms each
//! may sign with; `claims.rs` maps a verified token's claims to the
//! [`Caller`] and its [`Identity`](warden_engine::Identity).

mod claims;
mod keys;
#[cfg(test)]
mod tests;

pub use claims::Caller;

use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use keys::Key;
use serde_json::{Map, Value};
use std::path::PathBuf;

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

/// Checks bearer tokens against the configured issuer, audiences and keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<Key>,
    leeway_secs: u64,
    claims: ClaimNames,
}

impl Verifier {
    /// Loads the keys and builds the verifier.
    pub fn load(settings: &BearerSettings) -> Result<Verifier, KeyError> {
        let keys = match &settings.keys {
            KeySource::Jwks(path) => keys::jwks_keys(path, &keys::read(path)?)?,
            KeySource::Pem(paths) => {
                let mut keys = Vec::new();
                for path in paths {
                    keys.extend(keys::pem_keys(path, &keys::read(path)?)?);
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
