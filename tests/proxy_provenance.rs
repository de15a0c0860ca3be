//! Signed provenance end to end: `warden proxy --signing-key` on stdio in
//! front of warden's raw test upstream (which echoes the `_meta` it
//! received), and `warden verify` run as a process on the token the
//! upstream saw. Keys are generated in the test.

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const POLICY: &str = "default allow\n";

/// Writes a fresh ed25519 key pair as PEM files: (private, public).
fn key_pair(dir: &Path) -> Res<(PathBuf, PathBuf)> {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(16) {
        chunk.copy_from_slice(&distinct_bytes()[..chunk.len()]);
    }
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = dir.join("warden.key");
    let public = dir.join("warden.pub");
    std::fs::write(&private, sk.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
    std::fs::write(
        &public,
        sk.verifying_key().to_public_key_pem(LineEnding::LF)?,
    )?;
    Ok((private, public))
}

/// 16 bytes that differ between calls and runs (no RNG crate needed: the
/// tests only need distinct keys, not secret ones).
fn distinct_bytes() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&t.to_le_bytes());
    out[8..].copy_from_slice(&(n ^ u64::from(std::process::id())).to_le_bytes());
    out
}

struct Wire {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Wire {
    async fn start(dir: &Path, extra: &[&std::ffi::OsStr]) -> Res<Wire> {
        let policy = dir.join("test.policy");
        std::fs::write(&policy, POLICY)?;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy")
            .arg("--policies")
            .arg(&policy)
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .args(extra)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy-test-upstream")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        let mut w = Wire {
            _child: child,
            stdin,
            lines,
        };
        w.request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "prov-agent", "version": "1"}}),
        )
        .await?;
        w.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(w)
    }

    async fn send(&mut self, msg: Value) -> TestResult {
        self.stdin.write_all(msg.to_string().as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) -> Res<Value> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .map_err(|_| "no message from warden within 10 s")??
                .ok_or("warden closed its output")?;
            let msg: Value = serde_json::from_str(&line)?;
            if msg.get("id") == Some(&id) && msg.get("method").is_none() {
                return Ok(msg);
            }
        }
    }

    /// Calls `echo_meta` and returns the `_meta` the upstream received.
    async fn echo_meta(&mut self, id: i64, arguments: Value, meta: Value) -> Res<Value> {
        let r = self
            .request(
                json!(id),
                "tools/call",
                json!({"name": "echo_meta", "arguments": arguments, "_meta": meta}),
            )
            .await?;
        assert_ne!(r["result"]["isError"], json!(true), "{r:#}");
        Ok(r["result"]["structuredContent"]["meta"].clone())
    }
}

/// Runs `warden verify` and returns (exit code, stdout, stderr).
fn verify(args: &[&std::ffi::OsStr]) -> Res<(i32, String, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("verify")
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn the_upstream_gets_a_signed_token_that_warden_verify_accepts_for_that_call_only()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let (private, public) = key_pair(dir.path())?;
    let mut w = Wire::start(dir.path(), &["--signing-key".as_ref(), private.as_os_str()]).await?;
    let args = json!({"sample": "S-1", "fields": {"status": "done", "by": "ada"}});
    let meta = w.echo_meta(1, args.clone(), json!({})).await?;
    let token = meta["io.warden/provenance-token"]
        .as_str()
        .ok_or_else(|| format!("no token in the upstream's _meta: {meta:#}"))?
        .to_string();
    let server = meta["io.warden/provenance"]["server"]
        .as_str()
        .ok_or("no server in the provenance")?
        .to_string();

    // The same arguments with keys in another order: the same call.
    let reordered = json!({"fields": {"by": "ada", "status": "done"}, "sample": "S-1"}).to_string();
    let key = public.as_os_str();
    let (code, out, err) = verify(&[
        "--key".as_ref(),
        key,
        "--token".as_ref(),
        token.as_ref(),
        "--server".as_ref(),
        server.as_ref(),
        "--tool".as_ref(),
        "echo_meta".as_ref(),
        "--arguments".as_ref(),
        reordered.as_ref(),
    ])?;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let claims: Value = serde_json::from_str(
        out.split_once('\n')
            .map(|(_, rest)| rest)
            .ok_or("no claims printed")?,
    )?;
    assert_eq!(claims["tool"], "echo_meta");
    assert_eq!(claims["agent"], "prov-agent");
    assert_eq!(claims["via_agent"], true);
    assert_eq!(
        claims["decision_id"], meta["io.warden/provenance"]["decision_id"],
        "{claims:#}"
    );
    let exp = claims["exp"].as_u64().ok_or("exp")?;
    let iat = claims["iat"].as_u64().ok_or("iat")?;
    assert!(exp > iat && exp - iat <= 60, "short-lived: {claims:#}");

    // Replayed for other arguments or another tool: rejected, with why.
    let (code, _, err) = verify(&[
        "--key".as_ref(),
        key,
        "--token".as_ref(),
        token.as_ref(),
        "--tool".as_ref(),
        "echo_meta".as_ref(),
        "--arguments".as_ref(),
        r#"{"sample":"S-2","fields":{"status":"done","by":"ada"}}"#.as_ref(),
    ])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("other arguments"), "{err}");
    let (code, _, err) = verify(&[
        "--key".as_ref(),
        key,
        "--token".as_ref(),
        token.as_ref(),
        "--tool".as_ref(),
        "wipe".as_ref(),
    ])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tool `echo_meta`, not `wipe`"), "{err}");

    // Each call gets its own token.
    let meta2 = w.echo_meta(2, args, json!({})).await?;
    assert_ne!(meta2["io.warden/provenance-token"], json!(token));
    Ok(())
}

#[tokio::test]
async fn a_token_from_another_key_or_altered_fails_warden_verify() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (private, _) = key_pair(dir.path())?;
    let other = tempfile::tempdir()?;
    let (_, other_public) = key_pair(other.path())?;
    let mut w = Wire::start(dir.path(), &["--signing-key".as_ref(), private.as_os_str()]).await?;
    let meta = w.echo_meta(1, json!({}), json!({})).await?;
    let token = meta["io.warden/provenance-token"]
        .as_str()
        .ok_or("no token")?;
    let (code, _, err) = verify(&[
        "--key".as_ref(),
        other_public.as_os_str(),
        "--token".as_ref(),
        token.as_ref(),
    ])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signature does not match"), "{err}");
    let (code, _, err) = verify(&[
        "--key".as_ref(),
        dir.path().join("warden.pub").as_os_str(),
        "--token".as_ref(),
        format!("{token}x").as_ref(),
    ])?;
    assert_eq!(code, 1, "{err}");
    Ok(())
}

#[tokio::test]
async fn without_a_signing_key_a_client_sent_token_never_reaches_the_upstream() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut w = Wire::start(dir.path(), &[]).await?;
    let meta = w
        .echo_meta(
            1,
            json!({}),
            json!({"io.warden/provenance-token": "eyJhbGciOiJFZERTQSJ9.e30.AAAA"}),
        )
        .await?;
    assert!(meta.get("io.warden/provenance-token").is_none(), "{meta:#}");
    assert!(meta.get("io.warden/provenance").is_some(), "{meta:#}");
    Ok(())
}

#[test]
fn an_unusable_signing_key_stops_warden_proxy_with_the_reason() -> TestResult {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(&policy, POLICY)?;
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key")?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .arg("--signing-key")
        .arg(&bad)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy-test-upstream")
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.key") && err.contains("ed25519"), "{err}");
    Ok(())
}
