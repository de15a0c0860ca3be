//! Signed provenance: a short-lived token, signed by warden, that binds the
//! provenance of one forwarded `tools/call` to that very call.
//!
//! With a signing key (`warden proxy --signing-key FILE`, an Ed25519
//! private key in PKCS#8 PEM), every forwarded call carries a JWT (header
//! `alg: EdDSA`) in `_meta["io.warden/provenance-token"]` and, toward an
//! HTTP upstream, in the `Warden-Provenance-Token` header. Its [`Claims`]
//! say who the call is for, through which agent and server, and which call
//! it is: the tool and the SHA-256 of the arguments' canonical JSON
//! ([`arguments_sha256`]). A backend holding warden's public key calls
//! [`verify`] with the call it received: a token that is tampered with,
//! expired, signed by another key, or replayed for another server, tool or
//! other arguments is rejected with the reason ([`VerifyError`]).
//!
//! The token is not a secret (the upstream sees it) and does not prevent
//! the same call from being replayed with the same arguments while it is
//! valid: a backend that must refuse replays keeps the `jti` of tokens it
//! accepted until their `exp`. See docs/identity.md for the trust model.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warden_engine::{CallContext, Decided, Verified};

/// The `_meta` key of the token on a forwarded `tools/call`.
pub const TOKEN_META_KEY: &str = "io.warden/provenance-token";
/// The header carrying the token toward an HTTP upstream.
pub const TOKEN_HEADER: &str = "warden-provenance-token";
/// The token's `iss`.
pub const ISSUER: &str = "warden";
/// How long a token is valid after it is signed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Clock skew tolerated by [`verify`] on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of a provenance token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The upstream server's name in policies.
    pub server: String,
    /// The tool called.
    pub tool: String,
    /// Lowercase hex SHA-256 of the canonical JSON of the call's
    /// `arguments` (absent arguments count as `{}`).
    pub args_sha256: String,
    /// The decision's id in warden's decision log.
    pub decision_id: String,
    /// The policy version that decided.
    pub policy_version: String,
    /// Whom the call acts for.
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The agent (MCP client) name.
    #[serde(default)]
    pub agent: Option<String>,
    /// The model behind the agent, if known.
    #[serde(default)]
    pub model: Option<String>,
    /// Which of `user`, `groups`, `agent`, `model` warden verified (from
    /// the client's bearer token) rather than took as declared. Tokens
    /// signed before this claim existed parse as nothing verified.
    #[serde(default)]
    pub verified: Verified,
    /// Warden's session id.
    pub session: String,
    /// The call came from an agent (always true for calls through the proxy).
    pub via_agent: bool,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// The token's unique id.
    pub jti: String,
}

impl Claims {
    /// The claims for a forwarded call: `arguments` is exactly what goes
    /// upstream (`None` for absent), valid for `ttl` from `now`.
    pub fn for_call(
        call: &CallContext,
        decided: &Decided,
        arguments: Option<&Value>,
        now: SystemTime,
        ttl: Duration,
    ) -> Claims {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Claims {
            iss: ISSUER.to_string(),
            server: call.server.clone(),
            tool: call.tool.clone(),
            args_sha256: arguments_sha256(arguments),
            decision_id: decided.id.clone(),
            policy_version: decided.policy_version.clone(),
            user: call.identity.user.clone(),
            groups: call.identity.groups.clone(),
            agent: call.identity.agent.clone(),
            model: call.identity.model.clone(),
            verified: call.identity.verified,
            session: call.session.clone(),
            via_agent: call.provenance.via_agent,
            iat,
            exp: iat + ttl.as_secs().max(1),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The canonical JSON of a value (the engine's, which grants bind with):
/// object keys sorted, no whitespace, strings and numbers as serde_json
/// writes them.
pub use warden_engine::args::canonical_json;

/// Lowercase hex SHA-256 of the canonical JSON of `arguments`; `None`
/// (absent arguments) hashes as `{}`.
pub fn arguments_sha256(arguments: Option<&Value>) -> String {
    let empty = Value::Object(Default::default());
    let digest = Sha256::digest(canonical_json(arguments.unwrap_or(&empty)).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KeyError {
    #[error("cannot read the key file `{path}`: {message}")]
    #[diagnostic(help("give the path of a PEM file readable by warden"))]
    Read { path: String, message: String },
    #[error("`{path}` is not an ed25519 {kind} key in PEM: {message}")]
    #[diagnostic(help(
        "generate a key pair with `openssl genpkey -algorithm ed25519 -out warden.key` and `openssl pkey -in warden.key -pubout -out warden.pub`"
    ))]
    Parse {
        path: String,
        kind: &'static str,
        message: String,
    },
}

fn read_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Signs provenance tokens with warden's Ed25519 private key.
#[derive(Clone)]
pub struct Signer {
    key: jsonwebtoken::EncodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &"<ed25519 private key>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Signer {
    /// A signer from a PKCS#8 PEM private key; `origin` names it in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Signer, KeyError> {
        let key = jsonwebtoken::EncodingKey::from_ed_pem(pem).map_err(|e| KeyError::Parse {
            path: origin.to_string(),
            kind: "private",
            message: e.to_string(),
        })?;
        let signer = Signer {
            key,
            ttl: DEFAULT_TTL,
        };
        // A key the PEM parser accepts can still be unusable (wrong length):
        // find out now rather than on the first call.
        signer
            .sign(&Claims {
                iss: ISSUER.to_string(),
                server: String::new(),
                tool: String::new(),
                args_sha256: String::new(),
                decision_id: String::new(),
                policy_version: String::new(),
                user: String::new(),
                groups: Vec::new(),
                agent: None,
                model: None,
                verified: Verified::default(),
                session: String::new(),
                via_agent: true,
                iat: 0,
                exp: 0,
                jti: String::new(),
            })
            .map_err(|e| KeyError::Parse {
                path: origin.to_string(),
                kind: "private",
                message: e.to_string(),
            })?;
        Ok(signer)
    }

    /// Reads the private key file.
    pub fn load(path: &Path) -> Result<Signer, KeyError> {
        Signer::from_pem(&read_key(path)?, &path.display().to_string())
    }

    /// The same key with another validity period.
    pub fn with_ttl(mut self, ttl: Duration) -> Signer {
        self.ttl = ttl;
        self
    }

    /// How long the tokens this signer makes are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key, for the decision log's checkpoints (`log_seal`).
    pub(crate) fn key(&self) -> &jsonwebtoken::EncodingKey {
        &self.key
    }

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| SignError(e.to_string()))
    }

    /// The token for a forwarded call (see [`Claims::for_call`]), valid
    /// from now for this signer's ttl.
    pub fn sign_call(
        &self,
        call: &CallContext,
        decided: &Decided,
        arguments: Option<&Value>,
    ) -> Result<String, SignError> {
        self.sign(&Claims::for_call(
            call,
            decided,
            arguments,
            SystemTime::now(),
            self.ttl,
        ))
    }
}

/// Signing failed (the call is then not forwarded).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot sign the provenance token: {0}")]
#[diagnostic(help("check the key given with --signing-key: an ed25519 private key in PKCS#8 PEM"))]
pub struct SignError(String);

/// Warden's Ed25519 public key, to verify tokens with.
#[derive(Clone)]
pub struct VerifyingKey(jsonwebtoken::DecodingKey);

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey(ed25519)")
    }
}

impl VerifyingKey {
    /// A key from a PEM public key (`-----BEGIN PUBLIC KEY-----`);
    /// `origin` names it in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<VerifyingKey, KeyError> {
        jsonwebtoken::DecodingKey::from_ed_pem(pem)
            .map(VerifyingKey)
            .map_err(|e| KeyError::Parse {
                path: origin.to_string(),
                kind: "public",
                message: e.to_string(),
            })
    }

    /// Reads the public key file.
    pub fn load(path: &Path) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_pem(&read_key(path)?, &path.display().to_string())
    }

    /// The key, for the decision log's checkpoints (`log_seal`).
    pub(crate) fn key(&self) -> &jsonwebtoken::DecodingKey {
        &self.0
    }
}

/// The call a backend received, to check a token against. A `None` field
/// is not checked (the CLI without `--tool`); a backend should give all
/// three.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    pub server: Option<&'a str>,
    pub tool: Option<&'a str>,
    /// The call's `arguments` as received; `Some(&Value::Null)` counts as
    /// absent (`{}`).
    pub arguments: Option<&'a Value>,
}

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum VerifyError {
    #[error("the token is malformed: {0}")]
    #[diagnostic(help("pass the whole token, three base64url parts separated by dots"))]
    Malformed(String),
    #[error("the token's algorithm is `{0}`, not EdDSA")]
    #[diagnostic(help("warden signs provenance tokens with EdDSA (ed25519) only"))]
    Algorithm(String),
    #[error("the signature does not match: the token was altered or signed by another key")]
    #[diagnostic(help(
        "check that the public key is the one of the --signing-key warden runs with"
    ))]
    Signature,
    #[error("the token expired at {exp} (now {now})")]
    #[diagnostic(help("tokens are valid for a short time after the call was decided"))]
    Expired { exp: u64, now: u64 },
    #[error("the token was issued in the future ({iat}, now {now})")]
    #[diagnostic(help("check the clocks of warden's host and this one"))]
    NotYetValid { iat: u64, now: u64 },
    #[error("the token's issuer is `{0}`, not `warden`")]
    #[diagnostic(help("only tokens warden issued are provenance tokens"))]
    Issuer(String),
    #[error("the token is for server `{token}`, not `{expected}`")]
    #[diagnostic(help("a token is bound to one call and is not valid for another"))]
    Server { token: String, expected: String },
    #[error("the token is for tool `{token}`, not `{expected}`")]
    #[diagnostic(help("a token is bound to one call and is not valid for another"))]
    Tool { token: String, expected: String },
    #[error("the token is for other arguments (sha-256 {token}, these hash to {expected})")]
    #[diagnostic(help(
        "a token is bound to one call's exact arguments; the hash is over their canonical json (keys sorted)"
    ))]
    Arguments { token: String, expected: String },
}

/// Verifies a provenance token: signature (EdDSA with `key`), issuer,
/// expiry (with [`LEEWAY_SECS`]), and that it was issued for the
/// `expected` call. Returns the claims.
pub fn verify(
    token: &str,
    key: &VerifyingKey,
    expected: &Expected<'_>,
) -> Result<Claims, VerifyError> {
    verify_at(token, key, expected, SystemTime::now())
}

/// [`verify`] at the time `now`.
pub fn verify_at(
    token: &str,
    key: &VerifyingKey,
    expected: &Expected<'_>,
    now: SystemTime,
) -> Result<Claims, VerifyError> {
    use jsonwebtoken::errors::ErrorKind;
    let token = token.trim();
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if header.alg != jsonwebtoken::Algorithm::EdDSA {
        return Err(VerifyError::Algorithm(format!("{:?}", header.alg)));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    // Expiry and issuer are checked below, against `now`, with clear errors.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Claims>(token, &key.0, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => VerifyError::Signature,
            ErrorKind::InvalidAlgorithm => VerifyError::Algorithm(format!("{:?}", header.alg)),
            _ => VerifyError::Malformed(e.to_string()),
        })?;
    let claims = data.claims;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if claims.iss != ISSUER {
        return Err(VerifyError::Issuer(claims.iss));
    }
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(VerifyError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iat > now.saturating_add(LEEWAY_SECS) {
        return Err(VerifyError::NotYetValid {
            iat: claims.iat,
            now,
        });
    }
    if let Some(server) = expected.server
        && server != claims.server
    {
        return Err(VerifyError::Server {
            token: claims.server,
            expected: server.to_string(),
        });
    }
    if let Some(tool) = expected.tool
        && tool != claims.tool
    {
        return Err(VerifyError::Tool {
            token: claims.tool,
            expected: tool.to_string(),
        });
    }
    if let Some(args) = expected.arguments {
        let hash = arguments_sha256(Some(args).filter(|a| !a.is_null()));
        if hash != claims.args_sha256 {
            return Err(VerifyError::Arguments {
                token: claims.args_sha256,
                expected: hash,
            });
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use serde_json::json;

    /// A fresh key pair: (signer, verifying key).
    fn keys() -> (Signer, VerifyingKey) {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let private = sk.to_pkcs8_pem(LineEnding::LF).expect("pkcs8 pem");
        let public = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki pem");
        (
            Signer::from_pem(private.as_bytes(), "test").expect("private key"),
            VerifyingKey::from_pem(public.as_bytes(), "test").expect("public key"),
        )
    }

    fn claims(args: &Value, iat: u64, exp: u64) -> Claims {
        Claims {
            iss: ISSUER.to_string(),
            server: "genomics".into(),
            tool: "update_sample".into(),
            args_sha256: arguments_sha256(Some(args)),
            decision_id: "d-1".into(),
            policy_version: "v1".into(),
            user: "alice".into(),
            groups: vec!["lab".into()],
            agent: Some("claude-code".into()),
            model: None,
            verified: Verified {
                user: true,
                ..Verified::default()
            },
            session: "s-1".into(),
            via_agent: true,
            iat,
            exp,
            jti: "j-1".into(),
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    fn expect<'a>(tool: &'a str, args: &'a Value) -> Expected<'a> {
        Expected {
            server: Some("genomics"),
            tool: Some(tool),
            arguments: Some(args),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": "é"}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[1,{"x":"é","y":2}]},"b":1}"#
        );
        let b: Value = serde_json::from_str(r#"{"a":{"z":[1,{"x":"é","y":2}],"c":null},"b":1}"#)
            .expect("json");
        assert_eq!(arguments_sha256(Some(&a)), arguments_sha256(Some(&b)));
        assert_eq!(arguments_sha256(None), arguments_sha256(Some(&json!({}))));
    }

    #[test]
    fn a_valid_token_verifies_and_returns_its_claims() {
        let (signer, key) = keys();
        let args = json!({"id": "S-1", "status": "done"});
        let c = claims(&args, now(), now() + 60);
        let token = signer.sign(&c).expect("sign");
        let got = verify(&token, &key, &expect("update_sample", &args)).expect("valid");
        assert_eq!(got, c);
        // The same arguments in another key order are the same call.
        let reordered = json!({"status": "done", "id": "S-1"});
        assert!(verify(&token, &key, &expect("update_sample", &reordered)).is_ok());
    }

    #[test]
    fn a_token_signed_before_the_verified_claim_still_verifies_as_nothing_verified() {
        let (signer, key) = keys();
        let args = json!({});
        let mut old = serde_json::to_value(claims(&args, now(), now() + 60)).expect("json");
        old.as_object_mut().expect("object").remove("verified");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &old,
            &signer.key,
        )
        .expect("sign");
        let got = verify(&token, &key, &expect("update_sample", &args)).expect("valid");
        assert!(got.verified.is_none(), "{got:?}");
        assert_eq!(got.user, "alice");
    }

    #[test]
    fn a_tampered_token_fails_on_its_signature() {
        let (signer, key) = keys();
        let args = json!({"id": "S-1"});
        let token = signer
            .sign(&claims(&args, now(), now() + 60))
            .expect("sign");
        // Swap the payload for one naming another user, keep the signature.
        let mut forged = claims(&args, now(), now() + 60);
        forged.user = "mallory".into();
        let forged_token = signer.sign(&forged).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let forged_parts: Vec<&str> = forged_token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
        assert_eq!(
            verify(&tampered, &key, &expect("update_sample", &args)),
            Err(VerifyError::Signature)
        );
        // Signed by another key.
        let (other, _) = keys();
        let foreign = other.sign(&claims(&args, now(), now() + 60)).expect("sign");
        assert_eq!(
            verify(&foreign, &key, &expect("update_sample", &args)),
            Err(VerifyError::Signature)
        );
        let err = verify("not-a-token", &key, &Expected::default()).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed(_)), "{err}");
    }

    #[test]
    fn an_expired_token_fails_naming_its_expiry() {
        let (signer, key) = keys();
        let args = json!({"id": "S-1"});
        let t = now();
        let token = signer.sign(&claims(&args, t - 120, t - 60)).expect("sign");
        let err = verify(&token, &key, &expect("update_sample", &args)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Expired { exp, .. } if exp == t - 60),
            "{err}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
        // A fresh token from the same signer expires after its ttl.
        let fresh = signer.clone().with_ttl(Duration::from_secs(60));
        let token = fresh
            .sign(&claims(&args, t, t + fresh.ttl().as_secs()))
            .expect("sign");
        let later = SystemTime::now() + Duration::from_secs(60 + LEEWAY_SECS + 2);
        assert!(matches!(
            verify_at(&token, &key, &expect("update_sample", &args), later),
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn a_token_replayed_for_another_tool_server_or_arguments_fails() {
        let (signer, key) = keys();
        let args = json!({"id": "S-1", "status": "done"});
        let token = signer
            .sign(&claims(&args, now(), now() + 60))
            .expect("sign");
        let err = verify(&token, &key, &expect("delete_sample", &args)).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Tool {
                token: "update_sample".into(),
                expected: "delete_sample".into()
            }
        );
        let other_args = json!({"id": "S-2", "status": "done"});
        let err = verify(&token, &key, &expect("update_sample", &other_args)).unwrap_err();
        assert!(matches!(err, VerifyError::Arguments { .. }), "{err}");
        assert!(err.to_string().contains("other arguments"), "{err}");
        let err = verify(
            &token,
            &key,
            &Expected {
                server: Some("billing"),
                ..expect("update_sample", &args)
            },
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::Server { .. }), "{err}");
    }

    #[test]
    fn a_token_with_another_issuer_or_algorithm_fails() {
        let (signer, key) = keys();
        let args = json!({});
        let mut c = claims(&args, now(), now() + 60);
        c.iss = "someone-else".into();
        let token = signer.sign(&c).expect("sign");
        assert_eq!(
            verify(&token, &key, &Expected::default()),
            Err(VerifyError::Issuer("someone-else".into()))
        );
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims(&args, now(), now() + 60),
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        )
        .expect("hs256");
        assert!(matches!(
            verify(&hs, &key, &Expected::default()),
            Err(VerifyError::Algorithm(_))
        ));
    }

    #[test]
    fn a_key_file_that_is_not_an_ed25519_key_is_refused_with_the_reason() {
        let err = Signer::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "k.pem",
        )
        .unwrap_err();
        assert!(err.to_string().contains("k.pem"), "{err}");
        let err = Signer::load(Path::new("/nonexistent/warden.key")).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err}");
    }
}
