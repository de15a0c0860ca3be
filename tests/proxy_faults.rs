//! Fault tests of `warden proxy` (issue 6, item 3): each drives the real
//! `warden` binary over real pipes (stdio) or loopback HTTP, against the
//! raw test upstream (`warden proxy-test-upstream`), breaks something, and
//! checks that nothing is lost: every request gets exactly one response,
//! and the decision log has exactly one line per decided call.
//!
//! - an upstream killed (SIGKILL, from outside) with a call in flight;
//! - an upstream that never answers (`--call-timeout`);
//! - an upstream that writes garbage and a 50 MB line;
//! - a client that sends malformed JSON and invalid UTF-8 between calls;
//! - many calls across 100 concurrent HTTP sessions (no answer crosses
//!   sessions, cap streaks counted exactly);
//! - the policy file rewritten every 10 ms while 20 sessions call (no
//!   failed call, every decision made by one whole policy set).
//!
//! No test asserts speed. Reads wait at most [`READ_TIMEOUT`], so a lost
//! answer fails the test instead of hanging it.

mod common;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

/// The longest wait for one message: generous, since it only matters when
/// something is lost (then the test fails instead of hanging).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

const ALLOW_ALL: &str = "default allow\n";

// ---- stdio: raw JSON-RPC lines ------------------------------------------

/// `warden proxy` on stdio, every message it wrote kept in `seen`.
struct Wire {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
    dir: tempfile::TempDir,
}

impl Wire {
    async fn start(policy: &str, extra: &[&str]) -> Result<Wire, Error> {
        let dir = tempfile::tempdir()?;
        let policy_path = dir.path().join("test.policy");
        std::fs::write(&policy_path, policy)?;
        let mut child = tokio::process::Command::new(WARDEN)
            .arg("proxy")
            .arg("--policies")
            .arg(&policy_path)
            .arg("--audit-log")
            .arg(dir.path().join("audit.jsonl"))
            .args(extra)
            .arg("--")
            .arg(WARDEN)
            .arg("proxy-test-upstream")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(Wire {
            _child: child,
            stdin,
            lines,
            seen: Vec::new(),
            dir,
        })
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> TestResult {
        self.stdin.write_all(bytes).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn send(&mut self, msg: Value) -> TestResult {
        self.send_raw(msg.to_string().as_bytes()).await
    }

    /// Reads one more message from warden.
    async fn next(&mut self) -> Result<Value, Error> {
        let line = tokio::time::timeout(READ_TIMEOUT, self.lines.next_line())
            .await
            .map_err(|_| "no message from warden in time: an answer was lost")??
            .ok_or("warden closed its output")?;
        let msg: Value = serde_json::from_str(&line)
            .map_err(|e| format!("warden wrote a line that is no JSON ({e}): {line}"))?;
        self.seen.push(msg.clone());
        Ok(msg)
    }

    /// The first message seen from index `from` on that matches, reading
    /// more as needed.
    async fn wait_for(
        &mut self,
        from: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
        if let Some(m) = self.seen[from.min(self.seen.len())..]
            .iter()
            .find(|m| pred(m))
        {
            return Ok(m.clone());
        }
        loop {
            let m = self.next().await?;
            if pred(&m) {
                return Ok(m);
            }
        }
    }

    /// The response to `id`.
    async fn response(&mut self, id: &Value) -> Result<Value, Error> {
        let id = id.clone();
        self.wait_for(0, move |m| is_response(m) && m["id"] == id)
            .await
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) -> Result<Value, Error> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        self.response(&id).await
    }

    async fn call(&mut self, id: Value, tool: &str, args: Value) -> Result<Value, Error> {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    async fn initialize(&mut self) -> Result<Value, Error> {
        let r = self
            .request(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "fault-agent", "version": "1"}}),
            )
            .await?;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(r)
    }

    /// Waits for the answer to a ping sent after everything else: warden
    /// writes in order, so whatever it wrote before is in `seen` then.
    async fn barrier(&mut self) -> TestResult {
        let r = self.request(json!("barrier"), "ping", json!({})).await?;
        assert!(r.get("result").is_some(), "{r:#}");
        Ok(())
    }

    /// How many responses each id got, over everything seen.
    fn response_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in self.seen.iter().filter(|m| is_response(m)) {
            *counts.entry(m["id"].to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Asserts that exactly the requests `ids` (plus initialize and the
    /// barrier) were answered, each exactly once.
    fn assert_each_answered_once(&self, ids: &[Value]) {
        let counts = self.response_counts();
        let mut expected: BTreeMap<String, usize> =
            ids.iter().map(|i| (i.to_string(), 1)).collect();
        expected.insert(json!(0).to_string(), 1);
        expected.insert(json!("barrier").to_string(), 1);
        assert_eq!(
            counts, expected,
            "responses per id; all seen: {:#?}",
            self.seen
        );
    }

    fn audit(&self) -> Vec<Value> {
        read_audit(&self.dir.path().join("audit.jsonl"))
    }
}

fn is_response(m: &Value) -> bool {
    m.get("method").is_none() && (m.get("result").is_some() || m.get("error").is_some())
}

fn read_audit(path: &Path) -> Vec<Value> {
    common::merge_outcomes(
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is no JSON ({e}): {l}"))
            })
            .collect(),
    )
}

fn error_code(r: &Value) -> i64 {
    r.pointer("/error/code")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn error_message(r: &Value) -> &str {
    r.pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A successful tool result (no JSON-RPC error, no `isError`).
fn assert_tool_ok(r: &Value) {
    assert!(r.get("result").is_some(), "expected a result: {r:#}");
    assert_ne!(r["result"]["isError"], true, "expected success: {r:#}");
}

#[tokio::test]
async fn an_upstream_killed_mid_call_answers_that_call_once_and_later_calls_succeed() -> TestResult
{
    let mut w = Wire::start(ALLOW_ALL, &[]).await?;
    let init = w.initialize().await?;
    let pid = init["result"]["serverInfo"]["pid"]
        .as_u64()
        .ok_or("the test upstream reports its pid")?;

    // A call the upstream works on for a minute; its first progress
    // notification says the upstream has it.
    w.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                  "params": {"name": "slow", "arguments": {"ms": 60_000},
                             "_meta": {"progressToken": "slow-1"}}}))
        .await?;
    w.wait_for(0, |m| {
        m["method"] == "notifications/progress" && m["params"]["progressToken"] == "slow-1"
    })
    .await?;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    assert!(killed.success(), "kill -9 {pid}");

    let answer = w.response(&json!(1)).await?;
    assert_eq!(error_code(&answer), -32001, "{answer:#}");
    let message = error_message(&answer);
    assert!(message.contains("exited"), "{message}");
    assert!(
        message.contains("may or may not have taken effect"),
        "{message}"
    );

    // Back once warden restarted the upstream and replayed the session.
    let since = w.seen.len();
    w.wait_for(since.saturating_sub(8), |m| {
        m["method"] == "notifications/tools/list_changed"
    })
    .await?;
    let after = w
        .call(json!(2), "echo_meta", json!({"after": "kill"}))
        .await?;
    assert_tool_ok(&after);
    assert_eq!(
        after["result"]["structuredContent"]["arguments"],
        json!({"after": "kill"})
    );
    let echo = w.request(json!(3), "x/echo", json!({"n": 3})).await?;
    assert_eq!(echo["result"]["echo"]["n"], 3, "{echo:#}");
    assert_ne!(
        echo["result"]["pid"],
        json!(pid),
        "a new upstream process answers"
    );

    w.barrier().await?;
    w.assert_each_answered_once(&[json!(1), json!(2), json!(3)]);
    let audit = w.audit();
    assert_eq!(audit.len(), 2, "one line per decided call: {audit:#?}");
    assert_eq!(audit[0]["tool"], "slow");
    assert_eq!(audit[0]["upstream"]["ok"], false, "{:#}", audit[0]);
    assert!(
        audit[0]["upstream"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("exited"),
        "{:#}",
        audit[0]
    );
    assert_eq!(audit[1]["tool"], "echo_meta");
    assert_eq!(audit[1]["upstream"]["ok"], true, "{:#}", audit[1]);
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out_and_the_session_goes_on() -> TestResult {
    let mut w = Wire::start(ALLOW_ALL, &["--call-timeout", "1"]).await?;
    w.initialize().await?;

    // A governed call the upstream never answers.
    let hung = w.call(json!(1), "hang", json!({})).await?;
    assert_eq!(error_code(&hung), -32001, "{hung:#}");
    let message = error_message(&hung);
    assert!(message.contains("did not answer within 1 s"), "{message}");
    assert!(
        message.contains("may or may not have taken effect"),
        "{message}"
    );
    assert_eq!(
        hung["error"]["data"]["warden/upstream"]["state"], "timed_out",
        "{hung:#}"
    );

    let ok = w.call(json!(2), "echo_meta", json!({"n": 2})).await?;
    assert_tool_ok(&ok);

    // A relayed (not governed) request the upstream never answers.
    let relayed = w.request(json!(3), "x/hang", json!({})).await?;
    assert_eq!(error_code(&relayed), -32001, "{relayed:#}");
    assert!(
        error_message(&relayed).contains("within 1 s"),
        "{relayed:#}"
    );

    // Progress restarts the timer: a 2.5 s call that reports progress
    // every 100 ms is not cut off by the 1 s timeout.
    w.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                  "params": {"name": "slow", "arguments": {"ms": 2500, "progress_every_ms": 100},
                             "_meta": {"progressToken": "p4"}}}))
        .await?;
    let slow = w.response(&json!(4)).await?;
    assert_tool_ok(&slow);
    assert_eq!(
        slow["result"]["structuredContent"]["slept_ms"], 2500,
        "{slow:#}"
    );

    // The upstream was told to stop working on both requests it never
    // answered, and only on those.
    let c = w.call(json!(5), "cancellations", json!({})).await?;
    assert_tool_ok(&c);
    assert_eq!(
        c["result"]["structuredContent"]["cancelled"],
        json!([1, 3]),
        "{c:#}"
    );

    w.barrier().await?;
    w.assert_each_answered_once(&[json!(1), json!(2), json!(3), json!(4), json!(5)]);
    let audit = w.audit();
    let tools: Vec<&str> = audit
        .iter()
        .map(|l| l["tool"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        tools,
        ["hang", "echo_meta", "slow", "cancellations"],
        "{audit:#?}"
    );
    assert_eq!(audit[0]["upstream"]["ok"], false, "{:#}", audit[0]);
    let error = audit[0]["upstream"]["error"].as_str().unwrap_or("");
    assert!(error.starts_with("timed out"), "{error}");
    for line in &audit[1..] {
        assert_eq!(line["upstream"]["ok"], true, "{line:#}");
    }
    Ok(())
}

#[tokio::test]
async fn garbage_and_a_50_mb_line_from_the_upstream_cost_one_error_and_nothing_else() -> TestResult
{
    // --max-message-bytes keeps its default (4 MiB).
    let mut w = Wire::start(ALLOW_ALL, &[]).await?;
    w.initialize().await?;

    // Lines that are no JSON, invalid UTF-8, a batch, a message that is no
    // message, an answer to nothing (and one truncated answer carrying id
    // 1): all dropped; then the real answer.
    let g = w.call(json!(1), "garbage", json!({"n": 1})).await?;
    assert_tool_ok(&g);
    assert_eq!(g["result"]["structuredContent"]["garbage"], "sent", "{g:#}");

    // A 50 MiB answer: over the limit, so the request it answers (its id
    // read from the line's head) gets an error.
    let huge = w.call(json!(2), "huge", json!({"mb": 50})).await?;
    assert!(huge.get("error").is_some(), "{huge:#}");
    let message = error_message(&huge);
    assert!(message.contains("exceeds"), "{message}");
    assert!(
        message.contains(&(4 * 1024 * 1024).to_string()),
        "{message}"
    );

    // The session goes on, governed and relayed.
    let after = w
        .call(json!(3), "echo_meta", json!({"after": "huge"}))
        .await?;
    assert_tool_ok(&after);
    let echo = w.request(json!(4), "x/echo", json!({"n": 4})).await?;
    assert_eq!(echo["result"]["echo"]["n"], 4, "{echo:#}");

    w.barrier().await?;
    w.assert_each_answered_once(&[json!(1), json!(2), json!(3), json!(4)]);
    let audit = w.audit();
    let tools: Vec<&str> = audit
        .iter()
        .map(|l| l["tool"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tools, ["garbage", "huge", "echo_meta"], "{audit:#?}");
    assert_eq!(audit[0]["upstream"]["ok"], true, "{:#}", audit[0]);
    assert_eq!(audit[1]["upstream"]["ok"], false, "{:#}", audit[1]);
    assert!(
        audit[1]["upstream"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("exceeds"),
        "{:#}",
        audit[1]
    );
    assert_eq!(audit[2]["upstream"]["ok"], true, "{:#}", audit[2]);
    Ok(())
}

/// What one line from the client should be answered with.
#[derive(Debug, Clone)]
enum Expect {
    /// A tool call that succeeds; the decision log gets a line.
    Call,
    /// A relayed request that succeeds.
    Relayed,
    /// An error with this id (`null` when none can be read) and code.
    Error(Value, i64),
}

/// A client's lines, malformed ones between valid ones, with ids from
/// `base` on.
fn mixed_lines(base: u64) -> Vec<(Vec<u8>, Option<Value>, Expect)> {
    let call = |id: u64| {
        let line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "echo_meta", "arguments": {"id": id}}});
        (line.to_string().into_bytes(), Some(json!(id)), Expect::Call)
    };
    let raw = |bytes: &[u8], id: Option<Value>, code: i64| {
        let expect = Expect::Error(id.clone().unwrap_or(Value::Null), code);
        (bytes.to_vec(), id, expect)
    };
    let big = "x".repeat(10_000);
    vec![
        call(base + 1),
        raw(b"{this is not json", None, -32700),
        call(base + 2),
        raw(
            format!(r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"echo_meta","arguments":{{"s":"#, base + 3)
                .into_bytes()
                .into_iter()
                .chain(*b"\xff\xfe\"}}}")
                .collect::<Vec<u8>>()
                .as_slice(),
            None,
            -32700,
        ),
        call(base + 4),
        raw(b"[1, 2]", None, -32600),
        raw(format!(r#"{{"jsonrpc":"2.0","id":{}}}"#, base + 5).as_bytes(), Some(json!(base + 5)), -32600),
        call(base + 6),
        raw(
            json!({"jsonrpc": "2.0", "id": base + 7, "method": "tools/call",
                   "params": {"name": "echo_meta", "arguments": {"big": big}}})
            .to_string()
            .as_bytes(),
            Some(json!(base + 7)),
            -32600,
        ),
        raw(b"\xc3\x28\xa0\xa1", None, -32700),
        (
            json!({"jsonrpc": "2.0", "id": base + 8, "method": "x/echo", "params": {"id": base + 8}})
                .to_string()
                .into_bytes(),
            Some(json!(base + 8)),
            Expect::Relayed,
        ),
        raw(
            format!(r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"echo_meta""#, base + 9).as_bytes(),
            None,
            -32700,
        ),
        call(base + 10),
    ]
}

fn check_answer(answer: &Value, id: Option<&Value>, expect: &Expect) {
    match expect {
        Expect::Call => {
            assert_eq!(Some(&answer["id"]), id, "{answer:#}");
            assert_tool_ok(answer);
            assert_eq!(
                answer["result"]["structuredContent"]["arguments"]["id"], answer["id"],
                "{answer:#}"
            );
        }
        Expect::Relayed => {
            assert_eq!(Some(&answer["id"]), id, "{answer:#}");
            assert_eq!(answer["result"]["echo"]["id"], answer["id"], "{answer:#}");
        }
        Expect::Error(want_id, code) => {
            assert_eq!(&answer["id"], want_id, "{answer:#}");
            assert_eq!(error_code(answer), *code, "{answer:#}");
        }
    }
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_between_calls_get_one_answer_each() -> TestResult {
    let mut w = Wire::start(ALLOW_ALL, &["--max-message-bytes", "4096"]).await?;
    w.initialize().await?;

    // One line at a time: each gets exactly its answer, in order.
    let first = mixed_lines(0);
    for (bytes, id, expect) in &first {
        let from = w.seen.len();
        w.send_raw(bytes).await?;
        let answer = w.wait_for(from, is_response).await?;
        check_answer(&answer, id.as_ref(), expect);
    }

    // All at once, in one write: every line still gets exactly one answer.
    let second = mixed_lines(100);
    let mut burst = Vec::new();
    for (bytes, _, _) in &second {
        burst.extend_from_slice(bytes);
        burst.push(b'\n');
    }
    let from = w.seen.len();
    w.stdin.write_all(&burst).await?;
    w.stdin.flush().await?;
    let mut answers = Vec::new();
    while answers.len() < second.len() {
        let m = w.next().await?;
        if is_response(&m) {
            answers.push(m);
        }
    }
    let mut nulls: Vec<&Value> = answers.iter().filter(|a| a["id"].is_null()).collect();
    for (_, id, expect) in &second {
        match id {
            Some(id) => {
                let mine: Vec<&Value> = answers.iter().filter(|a| &a["id"] == id).collect();
                assert_eq!(mine.len(), 1, "one answer for {id}: {answers:#?}");
                check_answer(mine[0], Some(id), expect);
            }
            None => {
                let i = nulls
                    .iter()
                    .position(|a| matches!(expect, Expect::Error(_, c) if error_code(a) == *c))
                    .ok_or_else(|| {
                        format!("no error answer for a line without id ({expect:?}): {answers:#?}")
                    })?;
                nulls.remove(i);
            }
        }
    }
    assert!(nulls.is_empty(), "extra answers: {nulls:#?}");
    assert_eq!(
        w.seen[from..].iter().filter(|m| is_response(m)).count(),
        second.len()
    );

    w.barrier().await?;
    let ids: Vec<Value> = first
        .iter()
        .chain(&second)
        .filter_map(|(_, id, _)| id.clone())
        .collect();
    let mut counts = w.response_counts();
    let nulls_expected = first
        .iter()
        .chain(&second)
        .filter(|(_, id, _)| id.is_none())
        .count();
    assert_eq!(
        counts.remove("null"),
        Some(nulls_expected),
        "errors without id"
    );
    w.seen.retain(|m| !m["id"].is_null());
    w.assert_each_answered_once(&ids);

    let calls = first
        .iter()
        .chain(&second)
        .filter(|(_, _, e)| matches!(e, Expect::Call))
        .count();
    let audit = w.audit();
    assert_eq!(audit.len(), calls, "one line per decided call: {audit:#?}");
    assert!(
        audit.iter().all(|l| l["upstream"]["ok"] == true),
        "{audit:#?}"
    );
    Ok(())
}

// ---- Streamable HTTP: many sessions ---------------------------------------

/// `warden proxy --listen 127.0.0.1:0` with a command upstream (one child
/// process per session).
struct HttpWarden {
    _child: Child,
    url: String,
    dir: tempfile::TempDir,
    policy: PathBuf,
    reloads: Arc<AtomicUsize>,
}

impl HttpWarden {
    async fn start(policy: &str) -> Result<HttpWarden, Error> {
        let dir = tempfile::tempdir()?;
        let policy_path = dir.path().join("load.policy");
        std::fs::write(&policy_path, policy)?;
        HttpWarden::start_in(dir, policy_path).await
    }

    /// Starts warden on the policies already at `policy_path` in `dir`.
    async fn start_in(dir: tempfile::TempDir, policy_path: PathBuf) -> Result<HttpWarden, Error> {
        let mut child = tokio::process::Command::new(WARDEN)
            .arg("proxy")
            .arg("--policies")
            .arg(&policy_path)
            .arg("--audit-log")
            .arg(dir.path().join("audit.jsonl"))
            // Under a rewrite every 10 ms the default 100 ms of quiet never
            // comes; the test replaces the file by rename, so no read is torn.
            .args(["--reload-debounce", "2"])
            .args(["--listen", "127.0.0.1:0", "--"])
            .arg(WARDEN)
            .arg("proxy-test-upstream")
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
            eprintln!("{line}");
        };
        // Keep reading warden's standard error (a full pipe would stop it),
        // counting reloads and passing on the rest.
        let reloads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reloads);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("warden: policies reloaded") {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Ok(HttpWarden {
            _child: child,
            url,
            dir,
            policy: policy_path,
            reloads,
        })
    }

    fn audit(&self) -> Vec<Value> {
        read_audit(&self.dir.path().join("audit.jsonl"))
    }
}

/// One MCP session over Streamable HTTP, asking for plain JSON answers.
struct Session {
    http: reqwest::Client,
    url: String,
    id: String,
}

impl Session {
    async fn open(http: &reqwest::Client, url: &str, name: &str) -> Result<Session, Error> {
        let resp = http
            .post(url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": name, "version": "1"}}})
                .to_string(),
            )
            .send()
            .await?;
        assert_eq!(resp.status(), 200, "initialize");
        let id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("no Mcp-Session-Id")?
            .to_string();
        let init: Value = resp.json().await?;
        assert!(init.get("result").is_some(), "{init:#}");
        let s = Session {
            http: http.clone(),
            url: url.to_string(),
            id,
        };
        let resp = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        assert_eq!(resp.status(), 202, "initialized");
        Ok(s)
    }

    async fn post(&self, msg: Value) -> Result<reqwest::Response, Error> {
        Ok(self
            .http
            .post(&self.url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-06-18")
            .body(msg.to_string())
            .send()
            .await?)
    }

    async fn call(&self, id: u64, tool: &str, args: Value) -> Result<Value, Error> {
        let resp = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": args}}))
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body)?;
        assert_eq!(
            answer["id"], id,
            "the answer is to this request: {answer:#}"
        );
        Ok(answer)
    }
}

fn http_client() -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(READ_TIMEOUT)
        .build()?)
}

/// The decision id of an answer: the provenance the upstream echoed for an
/// allowed call, warden's own decision for a denied one.
fn decision_of(answer: &Value) -> (String, String, bool) {
    let result = &answer["result"];
    let (d, allowed) = if result["isError"] == true {
        (&result["_meta"]["warden/decision"], false)
    } else {
        (
            &result["structuredContent"]["meta"]["io.warden/provenance"],
            true,
        )
    };
    (
        d["decision_id"].as_str().unwrap_or_default().to_string(),
        d["policy_version"].as_str().unwrap_or_default().to_string(),
        allowed,
    )
}

const CAPPED_POLICY: &str = r#"
default deny

allow load-tools {
  tool ["echo_meta", "wipe"]
}

cap-consecutive wipe-at-most-3 {
  tool "wipe"
  max 3 per session
  reason "at most {limit} wipes in a row"
}
"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_across_100_sessions_never_cross_and_caps_count_exactly() -> TestResult {
    let sessions = env_usize("WARDEN_FAULT_SESSIONS", 100);
    let per_session = env_usize("WARDEN_FAULT_CALLS_PER_SESSION", 100);
    assert!(
        per_session.is_multiple_of(10),
        "calls per session: a multiple of 10"
    );
    let warden = HttpWarden::start(CAPPED_POLICY).await?;
    let http = http_client()?;

    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..sessions {
        let (http, url) = (http.clone(), warden.url.clone());
        tasks.spawn(async move {
            let marker = format!("session-{s}");
            let session = Session::open(&http, &url, &marker).await?;
            let mut decisions = Vec::new();
            // Runs of 5 wipes (the cap allows 3 in a row) and 5 echoes
            // (which end the streak).
            for i in 0..per_session {
                let (tool, capped) = match i % 10 {
                    k @ 0..5 => ("wipe", k >= 3),
                    _ => ("echo_meta", false),
                };
                let answer = session
                    .call(i as u64 + 1, tool, json!({"marker": marker, "i": i}))
                    .await?;
                if capped {
                    assert_eq!(
                        answer["result"]["isError"], true,
                        "call {i} of {marker}: {answer:#}"
                    );
                    let d = &answer["result"]["_meta"]["warden/decision"];
                    assert_eq!(d["rules"], json!(["wipe-at-most-3"]), "{answer:#}");
                    assert_eq!(d["retry"]["when"], "after_streak_ends", "{answer:#}");
                } else {
                    assert_tool_ok(&answer);
                    let echoed = &answer["result"]["structuredContent"];
                    assert_eq!(echoed["tool"], tool, "{answer:#}");
                    assert_eq!(
                        echoed["arguments"],
                        json!({"marker": marker, "i": i}),
                        "an answer from another session or call: {answer:#}"
                    );
                    assert_eq!(
                        echoed["meta"]["io.warden/provenance"]["session"],
                        format!("http-{}", session.id),
                        "{answer:#}"
                    );
                }
                decisions.push(decision_of(&answer).0);
            }
            // warden names an HTTP session in its log and provenance after
            // the Mcp-Session-Id it gave the client.
            Ok::<_, Error>((marker, format!("http-{}", session.id), decisions))
        });
    }
    let mut by_decision: HashMap<String, (String, usize)> = HashMap::new();
    let mut session_of_marker = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (marker, session_id, decisions) = done??;
        for (i, d) in decisions.into_iter().enumerate() {
            assert!(
                by_decision.insert(d, (marker.clone(), i)).is_none(),
                "decision ids are unique"
            );
        }
        session_of_marker.insert(marker, session_id);
    }

    let audit = warden.audit();
    assert_eq!(audit.len(), sessions * per_session, "one log line per call");
    let mut per_session_lines: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for line in &audit {
        per_session_lines
            .entry(line["session"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(line);
    }
    assert_eq!(
        per_session_lines.len(),
        sessions,
        "distinct sessions in the log"
    );
    for (session_id, lines) in &per_session_lines {
        assert_eq!(lines.len(), per_session, "lines of {session_id}");
        let marker = lines[0]["arguments"]["marker"].as_str().unwrap_or_default();
        assert_eq!(
            session_of_marker.get(marker),
            Some(session_id),
            "{:#}",
            lines[0]
        );
        // The session's calls were sequential, so its lines are in order.
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                line["arguments"],
                json!({"marker": marker, "i": i}),
                "{line:#}"
            );
            let capped = matches!(i % 10, 3 | 4);
            assert_eq!(
                line["decision"],
                if capped { "deny" } else { "allow" },
                "{line:#}"
            );
            let d = line["decision_id"].as_str().unwrap_or_default();
            assert_eq!(
                by_decision.get(d),
                Some(&(marker.to_string(), i)),
                "the answer of this decision went to its own call: {line:#}"
            );
        }
    }
    Ok(())
}

// ---- policy reloads under load ------------------------------------------

fn reload_policy(v: &str) -> String {
    format!(
        r#"
default deny

allow echo-in-{v} {{
  tool "echo_meta"
}}

deny wipe-in-{v} {{
  tool "wipe"
  reason "version {v} refuses wipe"
}}
"#
    )
}

/// The version hash warden gives the policies now at `path`.
fn version_of(path: &Path, dir: &Path) -> Result<String, Error> {
    let request = dir.join("probe.json");
    std::fs::write(
        &request,
        json!({"identity": {"user": "probe"}, "session": "probe", "server": "s", "tool": "echo_meta"})
            .to_string(),
    )?;
    let out = std::process::Command::new(WARDEN)
        .arg("eval")
        .arg("--policies")
        .arg(path)
        .arg("--request")
        .arg(&request)
        .args(["--format", "json"])
        .output()?;
    let decided: Value = serde_json::from_slice(&out.stdout)?;
    Ok(decided["policy_version"]
        .as_str()
        .ok_or("no policy_version")?
        .to_string())
}

/// Replaces the file's content at once, as editors save (write a new file,
/// rename it over the old one): a reader sees the old or the new content.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_every_10_ms_under_load_fails_no_call_and_mixes_no_sets() -> TestResult {
    let sessions = 20;
    let per_session = env_usize("WARDEN_FAULT_RELOAD_CALLS_PER_SESSION", 100);
    let (a, b) = (reload_policy("a"), reload_policy("b"));
    // The version hash covers the file's path too: both are computed at
    // the path warden will watch, before it starts.
    let dir = tempfile::tempdir()?;
    let scratch = tempfile::tempdir()?;
    let path = dir.path().join("load.policy");
    std::fs::write(&path, &b)?;
    let version_b = version_of(&path, scratch.path())?;
    std::fs::write(&path, &a)?;
    let version_a = version_of(&path, scratch.path())?;
    assert_ne!(version_a, version_b);
    let warden = HttpWarden::start_in(dir, path).await?;
    let version_for = |v: &str| -> Option<&'static str> {
        if v == version_a {
            Some("a")
        } else if v == version_b {
            Some("b")
        } else {
            None
        }
    };

    // Rewrite the policies every 10 ms, alternating, until the load ends.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, writes, path) = (
            Arc::clone(&stop),
            Arc::clone(&writes),
            warden.policy.clone(),
        );
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                replace_file(&path, if n.is_multiple_of(2) { &a } else { &b })?;
                writes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };

    let http = http_client()?;
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..sessions {
        let (http, url) = (http.clone(), warden.url.clone());
        tasks.spawn(async move {
            let session = Session::open(&http, &url, &format!("reload-{s}")).await?;
            let mut answers = Vec::new();
            for i in 0..per_session {
                let tool = if i % 5 == 4 { "wipe" } else { "echo_meta" };
                let answer = session
                    .call(i as u64 + 1, tool, json!({"s": s, "i": i}))
                    .await?;
                answers.push((tool, answer));
            }
            Ok::<_, Error>(answers)
        });
    }
    let mut answered = HashMap::new();
    let mut load_result = Ok(());
    while let Some(done) = tasks.join_next().await {
        match done? {
            Ok(answers) => {
                for (tool, answer) in answers {
                    let (decision_id, version, allowed) = decision_of(&answer);
                    let v = version_for(&version)
                        .unwrap_or_else(|| panic!("decided by an unknown policy set: {answer:#}"));
                    if tool == "echo_meta" {
                        assert!(allowed, "an allowed call failed: {answer:#}");
                    } else {
                        assert!(!allowed, "{answer:#}");
                        let reason = answer["result"]["_meta"]["warden/decision"]["reason"]
                            .as_str()
                            .unwrap_or_default();
                        assert!(
                            reason.contains(&format!("version {v} refuses")),
                            "{answer:#}"
                        );
                    }
                    answered.insert(decision_id, v);
                }
            }
            Err(e) => load_result = Err(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().map_err(|_| "the writer panicked")??;
    load_result?;

    let audit = warden.audit();
    assert_eq!(audit.len(), sessions * per_session, "one log line per call");
    let mut decided_by = BTreeMap::new();
    for line in &audit {
        let version = line["policy_version"].as_str().unwrap_or_default();
        let v = version_for(version)
            .unwrap_or_else(|| panic!("a half-loaded or unknown set: {line:#}"));
        *decided_by.entry(v).or_insert(0usize) += 1;
        let rule = if line["tool"] == "wipe" {
            "wipe"
        } else {
            "echo"
        };
        assert_eq!(line["rules"], json!([format!("{rule}-in-{v}")]), "{line:#}");
        let d = line["decision_id"].as_str().unwrap_or_default();
        assert_eq!(
            answered.get(d),
            Some(&v),
            "the answer and the log agree: {line:#}"
        );
    }
    let versions: BTreeSet<_> = decided_by.keys().collect();
    assert_eq!(
        versions.len(),
        2,
        "both sets decided calls (reloads happened under load): {decided_by:?}, {} writes, {} reloads",
        writes.load(Ordering::Relaxed),
        warden.reloads.load(Ordering::Relaxed)
    );
    eprintln!(
        "reload under load: {} writes, {} reloads, decisions per set {decided_by:?}",
        writes.load(Ordering::Relaxed),
        warden.reloads.load(Ordering::Relaxed)
    );
    Ok(())
}
