//! Bearer JWTs on `warden serve` (part of tests/gateway.rs): `[auth]` in
//! the config, an Ed25519 issuer key generated here. Without a valid token
//! nothing is served; with one, every call of a federated session (to
//! whichever server) and of a route acts for the token's user, verified,
//! as the decision log shows.

use crate::common::{assert_allowed, call, text};
use crate::harness::{Gateway, Res, config_text, post_initialize_with};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://warden.example.com/mcp";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An issuer key from `seed` (distinct keys, not secret ones).
struct Issuer {
    sk: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
}

impl Issuer {
    fn new(seed: u8) -> Res<Issuer> {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let pem = sk.to_pkcs8_pem(LineEnding::LF)?;
        Ok(Issuer {
            encoding: EncodingKey::from_ed_pem(pem.as_bytes())?,
            sk,
        })
    }

    fn token(&self, sub: &str) -> Res<String> {
        let claims = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now(),
                            "exp": now() + 600, "azp": "gateway-test-agent"});
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.encoding,
        )?)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_tokens_user_is_who_every_federated_and_routed_call_acts_for() -> Res<()> {
    let issuer = Issuer::new(11)?;
    let forger = Issuer::new(12)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("warden.toml"), config_text("auth.toml")?)?;
    std::fs::write(
        dir.path().join("issuer.pem"),
        issuer
            .sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)?,
    )?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/policies-auth");
    let gateway = Gateway::start_in(
        dir,
        "warden.toml",
        &[("GATEWAY_POLICIES", policies.to_str().ok_or("path")?)],
    )
    .await?;

    // No token, a forged one: nothing is served.
    let forged = format!("Bearer {}", forger.token("alice")?);
    for path in ["/mcp", "/servers/kit/mcp"] {
        let url = gateway.url(path);
        assert_eq!(
            post_initialize_with(&url, &[]).await?,
            401,
            "{path}: no token"
        );
        assert_eq!(
            post_initialize_with(&url, &[("authorization", &forged)]).await?,
            401,
            "{path}: a token of another issuer key"
        );
    }

    let alice = issuer.token("alice")?;
    let federated = gateway.rmcp_as("/mcp", Some(&alice)).await?;
    let tools: Vec<String> = federated
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.contains(&"kit__echo_meta".to_string()), "{tools:?}");
    assert!(tools.contains(&"kit2__echo_meta".to_string()), "{tools:?}");
    assert!(
        !tools.contains(&"kit__wipe".to_string()),
        "nothing allows wipe: hidden: {tools:?}"
    );
    for tool in ["kit__echo_meta", "kit2__echo_meta"] {
        assert_allowed(
            &call(&federated, tool, json!({"who": "alice"})).await?,
            tool,
        );
    }
    let route = gateway.rmcp_as("/servers/kit/mcp", Some(&alice)).await?;
    assert_allowed(
        &call(&route, "echo_meta", json!({"who": "alice"})).await?,
        "route",
    );

    let bob = issuer.token("bob")?;
    let as_bob = gateway.rmcp_as("/mcp", Some(&bob)).await?;
    let denied = call(&as_bob, "kit__echo_meta", json!({"who": "bob"})).await?;
    assert_eq!(denied.is_error, Some(true), "bob: {}", text(&denied));
    for c in [federated, route, as_bob] {
        c.cancel().await?;
    }

    let log = gateway.decisions();
    let lines: Vec<&Value> = log.iter().filter(|l| l["tool"] == "echo_meta").collect();
    assert_eq!(lines.len(), 4, "{log:#?}");
    for l in &lines {
        let who = l["arguments"]["who"].as_str().unwrap_or("");
        assert_eq!(l["identity"]["user"], who, "{l:#}");
        assert_eq!(l["identity"]["verified"]["user"], true, "{l:#}");
        assert_eq!(
            l["decision"],
            if who == "alice" { "allow" } else { "deny" },
            "{l:#}"
        );
    }
    let servers: Vec<&str> = lines.iter().filter_map(|l| l["server"].as_str()).collect();
    assert_eq!(servers, ["kit", "kit2", "kit", "kit"], "{log:#?}");
    Ok(())
}
