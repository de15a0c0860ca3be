//! The bearer check against tokens signed in the test: identity mapping,
//! claim names, every refusal's reason, key selection and loading.

use super::*;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};
use serde_json::json;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use warden_engine::Verified;

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
