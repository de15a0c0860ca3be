//! Issue 10, engine state and the decision log, end to end with the real
//! `warden` binary and the raw test upstream (`warden proxy-test-upstream`):
//!
//! - finding 2: parallel HTTP sessions of one user against a slow upstream
//!   get exactly the `per user` rate's maximum, no more;
//! - finding 17: with a decision log that cannot be written
//!   (`--audit-log /dev/full`) no call reaches the upstream.
//!
//! No test asserts speed; every read waits at most [`READ_TIMEOUT`].

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

const READ_TIMEOUT: Duration = Duration::from_secs(60);
const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// The upstream command, its input copied to `upstream.in` in `dir`.
fn upstream(dir: &Path) -> String {
    format!(
        "tee -a '{}' | exec '{WARDEN}' proxy-test-upstream",
        dir.join("upstream.in").display()
    )
}

fn tool_calls_received(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("upstream.in"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "tools/call")
        .collect()
}

const RATE_POLICY: &str = r#"
default deny

allow slow-calls {
  tool "slow"
}

rate-limit three-an-hour {
  tool "slow"
  max 3 per 1h per user
}
"#;

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    msg: Value,
) -> Result<reqwest::Response, Error> {
    let mut req = http
        .post(url)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(msg.to_string());
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-06-18");
    }
    Ok(req.send().await?)
}

/// Opens a session and makes one slow call in it; true if it was allowed.
async fn one_session_call(http: reqwest::Client, url: String, n: usize) -> Result<bool, Error> {
    let resp = post(
        &http,
        &url,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": format!("client-{n}"), "version": "1"}}}),
    )
    .await?;
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Mcp-Session-Id")?
        .to_string();
    let _ = resp.text().await?;
    post(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    let resp = post(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "slow", "arguments": {"ms": 400}}}),
    )
    .await?;
    let answer: Value = resp.json().await?;
    assert_eq!(answer["id"], 1, "{answer:#}");
    let result = answer.get("result").ok_or_else(|| format!("{answer:#}"))?;
    if result["isError"] == true {
        let text = result.to_string();
        assert!(text.contains("at most 3"), "denied by the rate: {text}");
        Ok(false)
    } else {
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_02_parallel_http_sessions_of_one_user_get_exactly_the_rate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("rate.policy");
    std::fs::write(&policy, RATE_POLICY)?;
    let mut child = tokio::process::Command::new(WARDEN)
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .args(["--listen", "127.0.0.1:0", "--", "sh", "-c"])
        .arg(upstream(dir.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let url = loop {
        let line = tokio::time::timeout(READ_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| "warden did not say where it listens")??
            .ok_or("warden exited before listening")?;
        if let Some(url) = line.strip_prefix("warden: MCP at ") {
            break url.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(READ_TIMEOUT)
        .build()?;

    // Eight sessions call at once; each forward takes 400 ms upstream, so
    // all are decided while the first ones are still in flight.
    let calls: Vec<_> = (0..8)
        .map(|n| tokio::spawn(one_session_call(http.clone(), url.clone(), n)))
        .collect();
    let mut allowed = 0;
    for c in calls {
        if c.await?? {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "exactly the rate's maximum across sessions");
    assert_eq!(
        tool_calls_received(dir.path()).len(),
        3,
        "the upstream saw exactly the allowed calls"
    );
    Ok(())
}

async fn send(stdin: &mut tokio::process::ChildStdin, msg: Value) -> TestResult {
    stdin.write_all(format!("{msg}\n").as_bytes()).await?;
    stdin.flush().await?;
    Ok(())
}

#[tokio::test]
async fn finding_17_a_decision_log_that_cannot_be_written_lets_no_call_upstream() -> TestResult {
    if !Path::new("/dev/full").exists() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("all.policy");
    std::fs::write(&policy, "default allow\n")?;
    let mut child = tokio::process::Command::new(WARDEN)
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--audit-log", "/dev/full", "--", "sh", "-c"])
        .arg(upstream(dir.path()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await?;
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    for id in 2..5 {
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "echo_meta", "arguments": {"n": id}}}),
        )
        .await?;
    }
    let mut answers = Vec::new();
    while answers.len() < 3 {
        let line = tokio::time::timeout(READ_TIMEOUT, out.next_line())
            .await
            .map_err(|_| "an answer was lost")??
            .ok_or("warden closed its output")?;
        let msg: Value = serde_json::from_str(&line)?;
        if msg["id"].as_i64().is_some_and(|id| id >= 2) {
            answers.push(msg);
        }
    }
    for a in &answers {
        assert_eq!(a["result"]["isError"], true, "refused: {a:#}");
        assert!(
            a["result"]
                .to_string()
                .contains("cannot write its decision log"),
            "{a:#}"
        );
    }
    assert!(
        tool_calls_received(dir.path()).is_empty(),
        "not even the first call went upstream"
    );
    Ok(())
}

#[test]
fn finding_24_lint_ends_on_a_symlink_loop_and_reads_each_file_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pol = dir.path().join("pol");
    std::fs::create_dir(&pol)?;
    std::fs::write(
        pol.join("a.policy"),
        "default deny\n\nallow reads {\n  tool \"read_*\"\n}\n",
    )?;
    std::os::unix::fs::symlink(&pol, pol.join("self"))?;
    std::os::unix::fs::symlink(".", pol.join("cur"))?;
    let mut child = std::process::Command::new(WARDEN)
        .arg("lint")
        .arg(&pol)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill()?;
            return Err("warden lint walked the loop forever".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Read once: a second copy of `reads` would be a duplicate rule.
    assert!(status.success(), "{text}");
    assert!(!text.contains("duplicate"), "{text}");
    Ok(())
}
