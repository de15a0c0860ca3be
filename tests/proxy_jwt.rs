//! Identity on HTTP from a verified bearer JWT, end to end: the real
//! `warden proxy --listen 127.0.0.1:0 --jwt-issuer ... --jwks ...` in front
//! of warden's raw test upstream (one child per session, whose stdin is
//! copied to a file by `tee`, so the test sees every byte the upstream
//! received), driven with raw HTTP. Keys are generated and tokens signed in
//! the test.

mod common;

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://warden.example.com/mcp";

/// echo_meta is for alice only, and only when a token proved she is alice;
/// everything else is denied.
const POLICY: &str = r#"default deny

allow echo-for-alice {
  tool "echo_meta"
  when user == "alice" and verified user
}
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 32 bytes that differ between calls and runs (distinct keys, not secret
/// ones: no RNG crate needed).
fn seed() -> [u8; 32] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 20);
    let mut out = [7u8; 32];
    out[..8].copy_from_slice(&t.to_le_bytes());
    out[8..16].copy_from_slice(&n.to_le_bytes());
    out
}

/// An issuer's Ed25519 key: signs tokens; its public half goes into a
/// JWKS (with `kid`) or a PEM file.
struct IssuerKey {
    kid: String,
    encoding: EncodingKey,
    sk: ed25519_dalek::SigningKey,
}

impl IssuerKey {
    fn new(kid: &str) -> Res<IssuerKey> {
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed());
        let pem = sk.to_pkcs8_pem(LineEnding::LF)?;
        Ok(IssuerKey {
            kid: kid.to_string(),
            encoding: EncodingKey::from_ed_pem(pem.as_bytes())?,
            sk,
        })
    }

    fn jwk(&self) -> Res<Value> {
        let public = DecodingKey::from_ed_der(self.sk.verifying_key().as_bytes());
        let mut jwk =
            serde_json::to_value(Jwk::from_decoding_key(&public, Some(Algorithm::EdDSA))?)?;
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        Ok(jwk)
    }

    fn write_pem(&self, path: &Path) -> Res<()> {
        std::fs::write(
            path,
            self.sk.verifying_key().to_public_key_pem(LineEnding::LF)?,
        )?;
        Ok(())
    }

    /// A token with good defaults for `sub`, patched by `patch` (a null
    /// removes the claim).
    fn token(&self, sub: &str, patch: Value) -> Res<String> {
        let mut claims = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now(),
                                "exp": now() + 600, "azp": "jwt-test-client"});
        for (k, v) in patch.as_object().ok_or("patch")? {
            if v.is_null() {
                claims.as_object_mut().ok_or("claims")?.remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

/// `warden proxy --listen` with bearer auth, its upstream's input copied
/// to `upstream.in`.
struct Warden {
    child: Child,
    url: String,
    dir: PathBuf,
    http: reqwest::Client,
    _stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Warden {
    async fn start(dir: &Path, key: &IssuerKey, extra: &[&str]) -> Res<Warden> {
        let policy = dir.join("test.policy");
        std::fs::write(&policy, POLICY)?;
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, json!({"keys": [key.jwk()?]}).to_string())?;
        let upstream = format!(
            "tee -a '{}' | exec '{}' proxy-test-upstream",
            dir.join("upstream.in").display(),
            env!("CARGO_BIN_EXE_warden")
        );
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy")
            .arg("--policies")
            .arg(&policy)
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--jwt-issuer",
                ISS,
                "--jwt-audience",
                AUD,
            ])
            .arg("--jwks")
            .arg(&jwks)
            .args(extra)
            .args(["--", "sh", "-c", &upstream])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (url, stderr) = listening_url(&mut child).await?;
        Ok(Warden {
            child,
            url,
            dir: dir.to_path_buf(),
            http: reqwest::Client::new(),
            _stderr: stderr,
        })
    }

    /// POSTs one JSON-RPC message with `token` (no header for `None`) and
    /// `session`; JSON answers only.
    async fn post(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        body: Value,
    ) -> Res<reqwest::Response> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        Ok(req.send().await?)
    }

    /// initialize + initialized with `token`; the session id.
    async fn open_session(&self, token: &str) -> Res<String> {
        let resp = self
            .post(
                Some(token),
                None,
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                              "clientInfo": {"name": "declared-agent", "version": "1"}}}),
            )
            .await?;
        let status = resp.status();
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await?;
        let sid = sid.ok_or_else(|| format!("no session ({status}): {body}"))?;
        let r = self
            .post(
                Some(token),
                Some(&sid),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await?;
        assert_eq!(r.status(), 202);
        Ok(sid)
    }

    async fn request(
        &self,
        token: &str,
        session: &str,
        id: i64,
        method: &str,
        params: Value,
    ) -> Res<Value> {
        let resp = self
            .post(
                Some(token),
                Some(session),
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            )
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        assert_eq!(status, 200, "{body}");
        Ok(serde_json::from_str(&body)?)
    }

    fn audit(&self) -> Res<Vec<Value>> {
        let text = std::fs::read_to_string(self.dir.join("audit.jsonl")).unwrap_or_default();
        Ok(common::merge_outcomes(
            text.lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Every message the upstreams received, in order.
    /// What the upstream read, once it holds a message with id `id`: `tee`
    /// writes the file after (or while) it feeds the upstream, so an answer
    /// can reach the test before the line reaches the file.
    async fn upstream_input_through(&self, id: i64) -> Res<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.upstream_input()?;
            if seen.iter().any(|m| m["id"] == json!(id)) || tokio::time::Instant::now() > deadline {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn upstream_input(&self) -> Res<Vec<Value>> {
        let text = std::fs::read_to_string(self.dir.join("upstream.in")).unwrap_or_default();
        Ok(text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?)
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Reads warden's standard error until it says where it listens; keeps
/// draining it afterwards (so warden never blocks on a full pipe).
async fn listening_url(
    child: &mut Child,
) -> Res<(String, std::sync::Arc<std::sync::Mutex<String>>)> {
    let stderr = child.stderr.take().ok_or("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            seen.lock()
                .map_err(|_| "lock")?
                .push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("warden: MCP at ") {
                return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(url.trim().to_string());
            }
        }
        Err(format!("warden exited: {}", seen.lock().map_err(|_| "lock")?).into())
    })
    .await
    .map_err(|_| "warden did not start listening within 60 s")??;
    let rest = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut s) = rest.lock() {
                s.push_str(&format!("{line}\n"));
            }
        }
    });
    Ok((url, seen))
}

fn echo(id: i64, arguments: Value) -> (i64, &'static str, Value) {
    (
        id,
        "tools/call",
        json!({"name": "echo_meta", "arguments": arguments}),
    )
}

#[tokio::test]
async fn calls_are_decided_for_the_tokens_user_and_marked_verified() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = IssuerKey::new("k1")?;
    let w = Warden::start(dir.path(), &key, &[]).await?;
    let alice = key.token("alice", json!({"groups": ["lab", "admins"]}))?;
    let bob = key.token("bob", json!({}))?;

    let a = w.open_session(&alice).await?;
    let b = w.open_session(&bob).await?;

    // tools/list is probed for the token's user: bob does not see echo_meta.
    let names = |r: &Value| -> Vec<String> {
        r["result"]["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let la = w.request(&alice, &a, 1, "tools/list", json!({})).await?;
    let lb = w.request(&bob, &b, 1, "tools/list", json!({})).await?;
    assert!(names(&la).contains(&"echo_meta".to_string()), "{la:#}");
    assert!(!names(&lb).contains(&"echo_meta".to_string()), "{lb:#}");

    let (id, m, p) = echo(2, json!({"x": 1}));
    let ra = w.request(&alice, &a, id, m, p.clone()).await?;
    assert_ne!(ra["result"]["isError"], json!(true), "{ra:#}");
    let meta = &ra["result"]["structuredContent"]["meta"];
    let prov = &meta["io.warden/provenance"];
    assert_eq!(prov["user"], "alice", "{meta:#}");
    assert_eq!(prov["groups"], json!(["lab", "admins"]));
    assert_eq!(
        prov["agent"], "jwt-test-client",
        "azp, not the declared name"
    );
    assert_eq!(
        prov["verified"],
        json!({"user": true, "groups": true, "agent": true, "model": false})
    );

    let rb = w.request(&bob, &b, id, m, p).await?;
    assert_eq!(rb["result"]["isError"], json!(true), "{rb:#}");
    let denial = rb["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(denial.contains("echo_meta"), "{denial}");

    // The decision log shows whom each call was decided for, and that the
    // user came from a checked token.
    let log = w.audit()?;
    for l in &log {
        assert_eq!(l["identity"]["verified"]["user"], json!(true), "{l:#}");
    }
    let users: Vec<(String, String, String)> = log
        .iter()
        .map(|l| {
            (
                l["identity"]["user"].as_str().unwrap_or("").to_string(),
                l["decision"].as_str().unwrap_or("").to_string(),
                l["identity"]["agent"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        users,
        vec![
            ("alice".into(), "allow".into(), "jwt-test-client".into()),
            ("bob".into(), "deny".into(), "jwt-test-client".into()),
        ],
        "{log:#?}"
    );
    // The client's token never reaches the upstream.
    let seen = std::fs::read_to_string(dir.path().join("upstream.in"))?;
    assert!(!seen.contains(&alice) && !seen.contains(&bob));
    Ok(())
}

#[tokio::test]
async fn missing_bad_expired_and_foreign_tokens_get_401_with_the_reason_and_reach_nothing()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let key = IssuerKey::new("k1")?;
    let w = Warden::start(dir.path(), &key, &[]).await?;
    let stranger = IssuerKey::new("k1")?; // same kid, another key
    let other_kid = IssuerKey::new("k9")?;

    let bad: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing bearer token"),
        ("malformed", Some("not.a.jwt".into()), "malformed token"),
        (
            "expired",
            Some(key.token("alice", json!({"exp": now() - 3600, "iat": now() - 7200}))?),
            "the token has expired",
        ),
        (
            "wrong issuer",
            Some(key.token("alice", json!({"iss": "https://evil.example"}))?),
            "wrong issuer",
        ),
        (
            "wrong audience",
            Some(key.token("alice", json!({"aud": "https://upstream.example/api"}))?),
            "wrong audience",
        ),
        (
            "wrong key",
            Some(stranger.token("alice", json!({}))?),
            "bad signature",
        ),
        (
            "unknown kid",
            Some(other_kid.token("alice", json!({}))?),
            "unknown key id `k9`",
        ),
        (
            "no user",
            Some(key.token("alice", json!({"sub": null}))?),
            "no `sub` claim",
        ),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "x", "version": "1"}}});
    for (what, token, reason) in &bad {
        let resp = w.post(token.as_deref(), None, init.clone()).await?;
        assert_eq!(resp.status(), 401, "{what}");
        assert!(resp.headers().get("mcp-session-id").is_none(), "{what}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"warden\""),
            "{what}: {challenge}"
        );
        assert!(challenge.contains(reason), "{what}: {challenge}");
        assert!(
            challenge.contains(
                "resource_metadata=\"https://warden.example.com/.well-known/oauth-protected-resource/mcp\""
            ),
            "{what}: {challenge}"
        );
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
        let body: Value = resp.json().await?;
        assert!(
            body["error"]["data"]["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(reason)),
            "{what}: {body:#}"
        );
    }
    // Another scheme.
    let resp = w
        .http
        .post(&w.url)
        .header("accept", "application/json")
        .header("authorization", "Basic YWxpY2U6cHc=")
        .body(init.to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await?.contains("not a bearer token"));

    // On a good session, a call with a bad token is refused before it is
    // decided or forwarded.
    let alice = key.token("alice", json!({}))?;
    let sid = w.open_session(&alice).await?;
    let expired = key.token("alice", json!({"exp": now() - 3600}))?;
    let resp = w
        .post(
            Some(&expired),
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                   "params": {"name": "echo_meta", "arguments": {}}}),
        )
        .await?;
    assert_eq!(resp.status(), 401);
    let (id, m, p) = echo(42, json!({}));
    let ok = w.request(&alice, &sid, id, m, p).await?;
    assert_ne!(ok["result"]["isError"], json!(true), "{ok:#}");

    let upstream = w.upstream_input_through(42).await?;
    let inits = upstream
        .iter()
        .filter(|m| m["method"] == "initialize")
        .count();
    assert_eq!(
        inits, 1,
        "only alice's session reached an upstream: {upstream:#?}"
    );
    assert!(
        upstream.iter().all(|m| m["id"] != json!(41)),
        "the refused call reached the upstream: {upstream:#?}"
    );
    assert!(upstream.iter().any(|m| m["id"] == json!(42)));
    let log = w.audit()?;
    assert_eq!(log.len(), 1, "one decided call: {log:#?}");

    // RFC 9728 metadata names the issuer.
    let base = w.url.trim_end_matches("/mcp");
    let meta: Value = w
        .http
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(meta["resource"], AUD);
    assert_eq!(meta["authorization_servers"], json!([ISS]));
    Ok(())
}

#[tokio::test]
async fn a_session_opened_by_alice_is_refused_to_bob() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = IssuerKey::new("k1")?;
    let w = Warden::start(dir.path(), &key, &[]).await?;
    let alice = key.token("alice", json!({}))?;
    let bob = key.token("bob", json!({}))?;
    let sid = w.open_session(&alice).await?;

    let resp = w
        .post(
            Some(&bob),
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "echo_meta", "arguments": {}}}),
        )
        .await?;
    assert_eq!(resp.status(), 403);
    let body = resp.text().await?;
    assert!(body.contains("belongs to another user"), "{body}");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let resp = w
            .http
            .request(method.clone(), &w.url)
            .header("accept", "text/event-stream")
            .header("authorization", format!("Bearer {bob}"))
            .header("mcp-session-id", &sid)
            .send()
            .await?;
        assert_eq!(resp.status(), 403, "{method}");
    }

    // A fresh token of alice's (another jti, other groups) still works.
    let alice2 = key.token("alice", json!({"groups": "lab"}))?;
    let (id, m, p) = echo(8, json!({}));
    let r = w.request(&alice2, &sid, id, m, p).await?;
    assert_ne!(r["result"]["isError"], json!(true), "{r:#}");
    assert_eq!(
        r["result"]["structuredContent"]["meta"]["io.warden/provenance"]["groups"],
        json!(["lab"])
    );
    // Read once the later call 8 is in the file, so 7 would be too.
    assert!(
        w.upstream_input_through(8)
            .await?
            .iter()
            .all(|m| m["id"] != json!(7))
    );
    Ok(())
}

#[tokio::test]
async fn the_backend_verifies_signed_provenance_naming_the_tokens_user() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = IssuerKey::new("k1")?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed());
    let private = dir.path().join("warden.key");
    let public = dir.path().join("warden.pub");
    std::fs::write(&private, signing.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
    std::fs::write(
        &public,
        signing.verifying_key().to_public_key_pem(LineEnding::LF)?,
    )?;
    let w = Warden::start(
        dir.path(),
        &key,
        &[
            "--signing-key",
            private.to_str().ok_or("path")?,
            "--name",
            "lab",
        ],
    )
    .await?;
    let alice = key.token("alice", json!({"groups": ["lab"]}))?;
    let sid = w.open_session(&alice).await?;
    let args = json!({"sample": "S-1"});
    let (id, m, p) = echo(3, args.clone());
    let r = w.request(&alice, &sid, id, m, p).await?;
    let token = r["result"]["structuredContent"]["meta"]["io.warden/provenance-token"]
        .as_str()
        .ok_or_else(|| format!("no provenance token: {r:#}"))?
        .to_string();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("verify")
        .arg("--key")
        .arg(&public)
        .args(["--token", &token, "--server", "lab", "--tool", "echo_meta"])
        .args(["--arguments", &args.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_str(
        stdout
            .split_once('\n')
            .map(|(_, rest)| rest)
            .ok_or("no claims printed")?,
    )?;
    assert_eq!(claims["user"], "alice");
    assert_eq!(claims["groups"], json!(["lab"]));
    assert_eq!(claims["agent"], "jwt-test-client");
    assert_eq!(
        claims["verified"],
        json!({"user": true, "groups": true, "agent": true, "model": false})
    );
    Ok(())
}

fn proxy_output(dir: &Path, args: &[&str]) -> Res<(Option<i32>, String)> {
    let policy = dir.join("p.policy");
    std::fs::write(&policy, POLICY)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(args)
        .args(["--", env!("CARGO_BIN_EXE_warden"), "proxy-test-upstream"])
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn bearer_flags_need_listen_all_their_parts_and_readable_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = IssuerKey::new("k1")?;
    let pem = dir.path().join("issuer.pub");
    key.write_pem(&pem)?;
    let pem = pem.to_str().ok_or("path")?;

    let (code, err) = proxy_output(
        dir.path(),
        &["--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-key", pem],
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs --listen"), "{err}");

    let (code, err) = proxy_output(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-issuer",
            ISS,
            "--jwt-key",
            pem,
        ],
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--jwt-audience"), "{err}");

    let missing = dir.path().join("nope.json");
    let (code, err) = proxy_output(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-issuer",
            ISS,
            "--jwt-audience",
            AUD,
            "--jwks",
            missing.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nope.json"), "{err}");
    Ok(())
}

#[tokio::test]
async fn listening_beyond_loopback_without_bearer_auth_warns() -> TestResult {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(&policy, POLICY)?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--listen", "0.0.0.0:0", "--"])
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy-test-upstream")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (_, seen) = listening_url(&mut child).await?;
    let text = seen.lock().map_err(|_| "lock")?.clone();
    assert!(
        text.contains("warning: warden listens on 0.0.0.0")
            && text.contains("without bearer authentication"),
        "{text}"
    );
    let _ = child.start_kill();
    Ok(())
}

/// On stdio the identity is the operator's word (`--identity FILE` or
/// flags): a policy asking for `verified user` refuses a declared alice,
/// while one reading only `user` takes her.
#[test]
fn a_declared_user_on_stdio_is_not_a_verified_one() -> TestResult {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(
        &policy,
        format!(
            "{POLICY}\nallow wipe-for-declared-alice {{\n  tool \"wipe\"\n  when user == \"alice\"\n}}\n"
        ),
    )?;
    let identity = dir.path().join("identity.toml");
    std::fs::write(&identity, "user = \"alice\"\ngroups = [\"lab\"]\n")?;
    let audit = dir.path().join("audit.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .arg("--identity")
        .arg(&identity)
        .arg("--audit-log")
        .arg(&audit)
        .args(["--", env!("CARGO_BIN_EXE_warden"), "proxy-test-upstream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().ok_or("stdout")?);
    let mut answer = |id: u64| -> Res<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                return Err("warden closed stdout".into());
            }
            let v: Value = serde_json::from_str(&line)?;
            if v["id"] == json!(id) && v.get("method").is_none() {
                return Ok(v);
            }
        }
    };
    let send = |stdin: &mut std::process::ChildStdin, v: Value| -> Res<()> {
        writeln!(stdin, "{v}")?;
        stdin.flush()?;
        Ok(())
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "stdio-client", "version": "1"}}}),
    )?;
    answer(1)?;
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )?;
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "echo_meta", "arguments": {}}}),
    )?;
    let echo = answer(2)?;
    assert_eq!(echo["result"]["isError"], json!(true), "{echo:#}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "wipe", "arguments": {}}}),
    )?;
    let wipe = answer(3)?;
    assert_ne!(wipe["result"]["isError"], json!(true), "{wipe:#}");
    drop(stdin);
    child.wait()?;

    let log: Vec<Value> = common::merge_outcomes(
        std::fs::read_to_string(&audit)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?,
    );
    assert_eq!(log.len(), 2, "{log:#?}");
    for l in &log {
        assert_eq!(l["identity"]["user"], "alice", "{l:#}");
        assert_eq!(l["identity"]["groups"], json!(["lab"]), "{l:#}");
        assert!(l["identity"].get("verified").is_none(), "declared: {l:#}");
    }
    assert_eq!(log[0]["decision"], "deny", "{:#}", log[0]);
    assert_eq!(log[1]["decision"], "allow", "{:#}", log[1]);

    // A file that is not an identity stops warden with the reason.
    std::fs::write(&identity, "usr = \"alice\"\n")?;
    let (code, err) = proxy_output(
        dir.path(),
        &["--identity", identity.to_str().ok_or("path")?],
    )?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("identity file"), "{err}");
    Ok(())
}

/// Issue 10, finding 26: `--jwt-leeway` is bounded (a usage error beyond
/// 300 s, no wrap); every key of a multi-PEM `--jwt-key` file is trusted
/// (a rotation file's new key works); a token with a `crit` header, or
/// with `iss` as an array, is refused with 401.
#[tokio::test]
async fn finding_26_jwt_leeway_multi_pem_crit_and_issuer_array() -> TestResult {
    let dir = tempfile::tempdir()?;
    let old = IssuerKey::new("old")?;
    let new = IssuerKey::new("new")?;
    let rotation = dir.path().join("rotation.pem");
    let pem = |k: &IssuerKey| k.sk.verifying_key().to_public_key_pem(LineEnding::LF);
    std::fs::write(&rotation, format!("{}{}", pem(&old)?, pem(&new)?))?;
    let rotation = rotation.to_str().ok_or("path")?;
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--jwt-issuer",
        ISS,
        "--jwt-audience",
        AUD,
        "--jwt-key",
        rotation,
    ];
    for leeway in ["301", "18446744073709551615", "-1"] {
        let mut args = base.to_vec();
        args.extend(["--jwt-leeway", leeway]);
        let (code, err) = proxy_output(dir.path(), &args)?;
        assert_eq!(code, Some(2), "--jwt-leeway {leeway}: {err}");
    }

    let policy = dir.path().join("test.policy");
    std::fs::write(&policy, POLICY)?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(base)
        .args(["--jwt-leeway", "300"])
        .args(["--", env!("CARGO_BIN_EXE_warden"), "proxy-test-upstream"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (url, _stderr) = listening_url(&mut child).await?;
    let http = reqwest::Client::new();
    let init = |token: String| {
        http.post(&url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                              "clientInfo": {"name": "a", "version": "1"}}})
                .to_string(),
            )
            .send()
    };
    // Both keys of the rotation file are trusted.
    for k in [&old, &new] {
        let resp = init(k.token("alice", json!({}))?).await?;
        assert_eq!(resp.status(), 200, "key {}: {}", k.kid, resp.text().await?);
    }
    // `iss` as an array holding the right issuer: refused.
    let resp = init(new.token("alice", json!({"iss": [ISS]}))?).await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await?.contains("`iss`"));
    // A critical extension warden does not understand: refused.
    let mut header = Header::new(Algorithm::EdDSA);
    header.crit = Some(vec!["exp-ext".into()]);
    let claims = json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": now(), "exp": now() + 600});
    let crit = jsonwebtoken::encode(&header, &claims, &new.encoding)?;
    let resp = init(crit).await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await?.contains("critical"));
    let _ = child.start_kill();
    Ok(())
}
