//! Security regressions of `warden proxy --listen` (issue 10, findings 1, 5,
//! 8, 10, 12): the real `warden` binary on loopback HTTP, driven by hostile
//! clients written here with raw HTTP, against the raw test upstream
//! (`warden proxy-test-upstream`) or an HTTP upstream that records what
//! reaches it.
//!
//! No test asserts speed: every wait polls with a deadline, so a lost
//! answer fails the test instead of hanging it.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
/// The longest wait for one answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MODERN: &str = "2026-07-28";

const CONFIRM_POLICY: &str = r#"
default allow

require-confirm wipe-needs-a-yes {
  tool "wipe"
  reason "wipe everything?"
}
"#;

/// `warden proxy --listen 127.0.0.1:0` in front of `upstream` (after
/// `--`, or `--upstream URL`), with `extra` flags.
struct Warden {
    _child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Warden {
    async fn start(policy: &str, extra: &[&str], upstream: Option<&str>) -> Result<Warden, Error> {
        Warden::start_with(policy, extra, upstream, None).await
    }

    /// `wrap`: run warden under `sh -c` with this shell prefix (e.g. a
    /// `ulimit`).
    async fn start_with(
        policy: &str,
        extra: &[&str],
        upstream: Option<&str>,
        wrap: Option<&str>,
    ) -> Result<Warden, Error> {
        let dir = tempfile::tempdir()?;
        let policy_path = dir.path().join("test.policy");
        std::fs::write(&policy_path, policy)?;
        let mut args: Vec<String> = vec![
            "proxy".into(),
            "--policies".into(),
            policy_path.display().to_string(),
            "--audit-log".into(),
            dir.path().join("audit.jsonl").display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        match upstream {
            Some(url) => args.extend(["--upstream".into(), url.to_string()]),
            None => args.extend([
                "--".into(),
                WARDEN.to_string(),
                "proxy-test-upstream".into(),
            ]),
        }
        let mut cmd = match wrap {
            Some(prefix) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                    .arg(WARDEN)
                    .args(&args);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(WARDEN);
                c.args(&args);
                c
            }
        };
        let mut child = cmd
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
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
            }
        });
        Ok(Warden {
            _child: child,
            url,
            dir,
        })
    }

    fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn http() -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(READ_TIMEOUT)
        .build()?)
}

/// The `_meta` a 2026-07-28 request carries, with form elicitation.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "victim-agent", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    })
}

fn modern_call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args, "_meta": modern_meta()}})
}

/// POSTs one message with the 2026-07-28 header (and `extra` headers).
async fn post_modern(
    http: &reqwest::Client,
    url: &str,
    msg: &Value,
    extra: &[(&str, &str)],
) -> Result<reqwest::Response, Error> {
    let mut req = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", MODERN);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    Ok(req.body(msg.to_string()).send().await?)
}

/// The JSON-RPC messages of an answer (one JSON body or an SSE stream).
async fn messages(resp: reqwest::Response) -> Result<Vec<Value>, Error> {
    let sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let body = resp.text().await?;
    if !sse {
        return Ok(vec![serde_json::from_str(&body)?]);
    }
    Ok(body
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect())
}

fn error_code(msg: &Value) -> Option<i64> {
    msg.pointer("/error/code").and_then(Value::as_i64)
}

/// How many calls of `tool` the decision log shows as forwarded (an
/// upstream outcome on the decision line, or on an outcome line after it).
fn forwarded(audit: &[Value], tool: &str) -> usize {
    let reached: std::collections::BTreeSet<String> = audit
        .iter()
        .filter(|l| l.get("upstream").is_some_and(|u| !u.is_null()))
        .filter_map(|l| l["decision_id"].as_str().map(str::to_string))
        .collect();
    audit
        .iter()
        .filter(|l| l["tool"] == tool)
        .filter(|l| {
            l["decision_id"]
                .as_str()
                .is_some_and(|d| reached.contains(d))
        })
        .count()
}

// ---- finding 1 -------------------------------------------------------------

/// The review's attack: a request with the 2026-07-28 header but no
/// `_meta` version fell back to the shared sessionless relay's "session",
/// which another client had initialized with elicitation; warden asked
/// for the victim's confirmation with `warden:N`, and the other client
/// answered it.
#[tokio::test]
async fn finding_01_a_sessionless_request_never_falls_back_to_another_clients_session() -> TestResult
{
    let warden = Warden::start(CONFIRM_POLICY, &[], None).await?;
    let http = http()?;
    // The attacker "initializes" the shared relay.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": MODERN, "capabilities": {"elicitation": {}},
                   "clientInfo": {"name": "attacker", "version": "1"}}});
    let resp = post_modern(&http, &warden.url, &init, &[]).await?;
    assert_eq!(resp.status(), 404, "no session to initialize (SEP-2575)");
    assert_eq!(error_code(&messages(resp).await?[0]), Some(-32601));

    // The victim's call without the `_meta` version: refused, never asked.
    let victim = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "wipe", "arguments": {}}});
    let (answer, _) = tokio::join!(
        async {
            let resp = post_modern(&http, &warden.url, &victim, &[]).await?;
            let status = resp.status();
            Ok::<_, Error>((status, messages(resp).await?))
        },
        async {
            // Meanwhile the attacker answers every question it can guess.
            tokio::time::sleep(Duration::from_millis(200)).await;
            for n in 1..=20 {
                let accept = json!({"jsonrpc": "2.0", "id": format!("warden:{n}"),
                                    "result": {"action": "accept", "content": {}}});
                let resp = post_modern(&http, &warden.url, &accept, &[]).await?;
                assert_eq!(
                    resp.status(),
                    403,
                    "an answer to a question not asked of it"
                );
            }
            Ok::<_, Error>(())
        }
    );
    let (status, msgs) = answer?;
    assert_eq!(status, 400, "{msgs:?}");
    assert_eq!(error_code(&msgs[0]), Some(-32602), "{msgs:?}");
    assert!(
        !msgs.iter().any(|m| m["method"] == "elicitation/create"),
        "nothing was asked: {msgs:?}"
    );

    // Header and `_meta` disagreeing, or `_meta` without the header:
    // -32020 with 400, as the 2026-07-28 transport says.
    let mut older = modern_call(json!(2), "wipe", json!({}));
    older["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2027-01-01");
    let resp = post_modern(&http, &warden.url, &older, &[]).await?;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(&messages(resp).await?[0]), Some(-32020));
    let resp = http
        .post(&warden.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(modern_call(json!(3), "wipe", json!({})).to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(&messages(resp).await?[0]), Some(-32020));

    assert_eq!(forwarded(&warden.audit(), "wipe"), 0, "wipe never ran");
    Ok(())
}

// ---- finding 12 (confirmations) ------------------------------------------

/// A 2026-07-28 confirmation is answered by retrying with its
/// `requestState`. Enumerating states used to delete other callers'
/// pending confirmations, because the pending one was removed before the
/// tool and arguments were checked; now a failed check consumes nothing,
/// and states are random.
#[tokio::test]
async fn finding_12_a_wrong_confirmation_retry_consumes_nothing() -> TestResult {
    let warden = Warden::start(CONFIRM_POLICY, &[], None).await?;
    let http = http()?;
    let resp = post_modern(
        &http,
        &warden.url,
        &modern_call(json!(1), "wipe", json!({"all": true})),
        &[],
    )
    .await?;
    let asked = messages(resp).await?.pop().ok_or("no answer")?;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked:#}");
    let state = asked["result"]["requestState"]
        .as_str()
        .ok_or("no requestState")?
        .to_string();
    let key = asked["result"]["inputRequests"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .ok_or("no input request")?;
    let retry = |args: Value, state: &str| {
        let mut m = modern_call(json!(2), "wipe", args);
        m["params"]["requestState"] = json!(state);
        m["params"]["inputResponses"] = json!({&key: {"action": "accept", "content": {}}});
        m
    };
    // Another caller's guesses: other arguments, other states.
    let resp = post_modern(
        &http,
        &warden.url,
        &retry(json!({"all": false}), &state),
        &[],
    )
    .await?;
    let wrong = messages(resp).await?.pop().ok_or("no answer")?;
    assert_eq!(error_code(&wrong), Some(-32602), "{wrong:#}");
    for guess in ["warden-confirm:0", &format!("{state}x")] {
        let resp =
            post_modern(&http, &warden.url, &retry(json!({"all": true}), guess), &[]).await?;
        assert_eq!(error_code(&messages(resp).await?[0]), Some(-32602));
    }
    // The asker's own retry still works.
    let resp = post_modern(
        &http,
        &warden.url,
        &retry(json!({"all": true}), &state),
        &[],
    )
    .await?;
    let done = messages(resp).await?.pop().ok_or("no answer")?;
    assert_eq!(done["id"], 2, "{done:#}");
    assert_eq!(
        done["result"]["structuredContent"]["tool"], "wipe",
        "the confirmed call went through: {done:#}"
    );
    assert_eq!(forwarded(&warden.audit(), "wipe"), 1);
    Ok(())
}

// ---- finding 12 (progress) -----------------------------------------------

/// Two sessionless clients using the same `progressToken`: each gets only
/// its own request's progress.
#[tokio::test]
async fn finding_12_a_reused_progress_token_gets_no_one_elses_progress() -> TestResult {
    let warden = Warden::start("default allow\n", &[], None).await?;
    let http = http()?;
    let with_token = |id: u64, args: Value| {
        let mut m = modern_call(json!(id), "slow", args);
        m["params"]["_meta"]["progressToken"] = json!("tok");
        m
    };
    // The victim: progress every 50 ms for 2 s (progress 2, 3, ...).
    let victim_call = with_token(1, json!({"ms": 2000, "progress_every_ms": 50}));
    let victim = post_modern(&http, &warden.url, &victim_call, &[]);
    let attacker = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Its own call reports one progress (progress 1 of 2) only.
        let resp =
            post_modern(&http, &warden.url, &with_token(1, json!({"ms": 1000})), &[]).await?;
        messages(resp).await
    };
    let (victim, attacker) = tokio::join!(async { messages(victim.await?).await }, attacker);
    let (victim, attacker) = (victim?, attacker?);
    let progress = |msgs: &[Value]| -> Vec<Value> {
        msgs.iter()
            .filter(|m| m["method"] == "notifications/progress")
            .cloned()
            .collect()
    };
    let theirs = progress(&attacker);
    assert!(
        theirs.iter().all(|p| p["params"]["progress"] == 1),
        "the attacker got the victim's progress: {theirs:#?}"
    );
    let mine = progress(&victim);
    assert!(mine.len() > 2, "the victim got its progress: {victim:#?}");
    assert!(
        mine.iter().all(|p| p["params"]["progressToken"] == "tok"),
        "under its own token: {mine:#?}"
    );
    assert_eq!(attacker.last().map(|m| m["id"].clone()), Some(json!(1)));
    assert_eq!(victim.last().map(|m| m["id"].clone()), Some(json!(1)));
    Ok(())
}

// ---- finding 5 -------------------------------------------------------------

/// Sessionless ids were `http:N`: another client could cancel a victim's
/// governed call, which then never got an answer. Now the ids are random
/// and a sessionless cancellation reaches only its own caller's requests.
#[tokio::test]
async fn finding_05_sessionless_clients_cannot_cancel_each_others_requests() -> TestResult {
    let warden = Warden::start("default allow\n", &[], None).await?;
    let http = http()?;
    let victim_call = modern_call(json!(7), "slow", json!({"ms": 1500}));
    let victim = post_modern(&http, &warden.url, &victim_call, &[]);
    let attacker = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for id in (0..50)
            .map(|n| json!(format!("http:{n}")))
            .chain([json!(7), json!("7")])
        {
            let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": id, "reason": "hostile"}});
            let resp = post_modern(&http, &warden.url, &cancel, &[]).await?;
            assert_eq!(resp.status(), 202);
        }
        Ok::<_, Error>(())
    };
    let (victim, attacker) = tokio::join!(async { messages(victim.await?).await }, attacker);
    attacker?;
    let answer = victim?.pop().ok_or("no answer")?;
    assert_eq!(answer["id"], 7);
    assert_eq!(
        answer["result"]["structuredContent"]["slept_ms"], 1500,
        "the victim's call ran to its end: {answer:#}"
    );
    Ok(())
}

/// A session's client that cancels its own request gets exactly one
/// answer for it (an error saying it was cancelled), not a stream left
/// open forever.
#[tokio::test]
async fn finding_05_a_cancelled_request_is_still_answered_once() -> TestResult {
    let warden = Warden::start("default allow\n", &[], None).await?;
    let http = http()?;
    let post = |sid: Option<String>, msg: Value| {
        let mut req = http
            .post(&warden.url)
            .header("accept", "application/json")
            .header("content-type", "application/json");
        if let Some(s) = sid {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.body(msg.to_string()).send()
    };
    let init = post(
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await?;
    let sid = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no session")?
        .to_string();
    post(
        Some(sid.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    let call = post(
        Some(sid.clone()),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
               "params": {"name": "hang", "arguments": {}}}),
    );
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(
            Some(sid.clone()),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 5, "reason": "changed my mind"}}),
        )
        .await
    };
    let (answer, cancelled) = tokio::join!(call, cancel);
    assert_eq!(cancelled?.status(), 202);
    let answer: Value = answer?.json().await?;
    assert_eq!(answer["id"], 5);
    assert_eq!(error_code(&answer), Some(-32800), "{answer:#}");
    Ok(())
}

// ---- finding 8 -------------------------------------------------------------

/// What the recording HTTP upstream saw: (method, headers) per POST.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A minimal Streamable HTTP upstream on raw HTTP/1.1: answers every POST
/// with one JSON message (`tools/list`: two tools; `tools/call`: the tool
/// it ran) and records each POST's method and headers.
async fn recording_upstream() -> Result<(String, Seen), Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&s);
            tokio::spawn(async move {
                let mut r = BufReader::new(tcp);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let method_line = line.trim().to_string();
                    let mut headers = Vec::new();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                            if k == "content-length" {
                                len = v.parse().unwrap_or(0);
                            }
                            headers.push((k, v));
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let (status, reply) = if !method_line.starts_with("POST") {
                        ("405 Method Not Allowed", String::new())
                    } else {
                        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let method = msg["method"].as_str().unwrap_or("").to_string();
                        seen.lock().unwrap().push((method.clone(), headers));
                        match msg.get("id").filter(|_| !method.is_empty()) {
                            None => ("202 Accepted", String::new()),
                            Some(id) => {
                                let result = match method.as_str() {
                                    "tools/list" => json!({"tools": [
                                        {"name": "list_samples", "inputSchema": {"type": "object"},
                                         "annotations": {"readOnlyHint": true}},
                                        {"name": "delete_sample", "inputSchema": {"type": "object"},
                                         "annotations": {"destructiveHint": true}}]}),
                                    "tools/call" => json!({"content": [{"type": "text",
                                        "text": msg["params"]["name"].clone()}]}),
                                    _ => json!({}),
                                };
                                (
                                    "200 OK",
                                    json!({"jsonrpc": "2.0", "id": id, "result": result})
                                        .to_string(),
                                )
                            }
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        reply.len()
                    );
                    let tcp = r.get_mut();
                    if tcp.write_all(head.as_bytes()).await.is_err()
                        || tcp.write_all(reply.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, seen))
}

/// The review's attack: a client's `Mcp-Name: delete_sample` reached a
/// header-routing backend with a body warden had decided as
/// `list_samples`.
#[tokio::test]
async fn finding_08_client_mcp_headers_that_contradict_the_body_never_reach_the_upstream()
-> TestResult {
    let (upstream, seen) = recording_upstream().await?;
    let policy =
        "default allow\n\ndeny no-deletes {\n  tool \"delete_sample\"\n  reason \"no\"\n}\n";
    let warden = Warden::start(policy, &["--name", "samples"], Some(&upstream)).await?;
    let http = http()?;
    let call = modern_call(json!(1), "list_samples", json!({}));
    for lie in [
        [("mcp-method", "tools/call"), ("mcp-name", "delete_sample")],
        [("mcp-method", "tools/delete"), ("mcp-name", "list_samples")],
    ] {
        let resp = post_modern(&http, &warden.url, &call, &lie).await?;
        assert_eq!(resp.status(), 400, "{lie:?}");
        assert_eq!(error_code(&messages(resp).await?[0]), Some(-32020));
    }
    assert!(
        !seen.lock().unwrap().iter().any(|(m, _)| m == "tools/call"),
        "no call reached the upstream"
    );
    // An honest call: the upstream gets warden's own headers, from the body.
    let honest = [("mcp-method", "tools/call"), ("mcp-name", "list_samples")];
    let resp = post_modern(&http, &warden.url, &call, &honest).await?;
    assert_eq!(resp.status(), 200);
    let answer = messages(resp).await?.pop().ok_or("no answer")?;
    assert_eq!(answer["result"]["content"][0]["text"], "list_samples");
    let seen = seen.lock().unwrap();
    let (_, headers) = seen
        .iter()
        .find(|(m, _)| m == "tools/call")
        .ok_or("the call reached the upstream")?;
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("mcp-method"), ["tools/call"]);
    assert_eq!(values("mcp-name"), ["list_samples"]);
    Ok(())
}

// ---- finding 10 ------------------------------------------------------------

/// Opens `n` connections that send half a request head and then nothing.
async fn slow_clients(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await;
            held.push(s);
        }
    }
    held
}

/// 300 connections that never finish their headers used to lock real
/// clients out (`accept error: Too many open files`). With a descriptor
/// limit below that, a real client is still served: slow connections are
/// closed after the header timeout, and at most `--max-connections` are
/// served at once.
#[tokio::test]
async fn finding_10_slow_clients_cannot_lock_out_a_real_client() -> TestResult {
    let warden = Warden::start_with(
        "default allow\n",
        &[
            "--max-connections",
            "32",
            "--header-read-timeout",
            "500",
            "--body-read-timeout",
            "500",
        ],
        None,
        Some("ulimit -n 200"),
    )
    .await?;
    let addr = warden.addr();
    let held = slow_clients(&addr, 300).await;
    assert!(held.len() >= 250, "the slow clients connected");

    // A real client: initialize must be answered (polled with a deadline).
    let http = http()?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "real", "version": "1"}}});
    let status = loop {
        let attempt = http
            .post(&warden.url)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(init.to_string())
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match attempt {
            Ok(resp) => break resp.status(),
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("the real client was never served: {e}").into()),
        }
    };
    assert_eq!(status, 200);

    // A body that trickles in is answered 408 after --body-read-timeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    s.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"",
    )
    .await?;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(READ_TIMEOUT, s.read(&mut head)).await??;
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    drop(held);
    Ok(())
}

#[test]
fn finding_10_listener_limits_are_bounded_flags() {
    for bad in [
        ["--max-connections", "0"],
        ["--header-read-timeout", "0"],
        ["--body-read-timeout", "abc"],
    ] {
        let out = std::process::Command::new(WARDEN)
            .args(["proxy", "--policies", "x.policy", "--listen", "127.0.0.1:0"])
            .args(bad)
            .args(["--", "true"])
            .output()
            .expect("warden runs");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let _ = PathBuf::new();
}

// ---- findings 1 and 5 with bearer auth ----------------------------------

/// An Ed25519 issuer key for bearer tokens (its public half as a PEM).
struct Issuer {
    encoding: jsonwebtoken::EncodingKey,
    public_pem: String,
}

impl Issuer {
    fn new() -> Result<Issuer, Error> {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
        let sk = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        let pem = sk.to_pkcs8_pem(LineEnding::LF)?;
        Ok(Issuer {
            encoding: jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes())?,
            public_pem: sk.verifying_key().to_public_key_pem(LineEnding::LF)?,
        })
    }

    fn token(&self, sub: &str) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = json!({"iss": "https://auth.example.com", "aud": "warden", "sub": sub,
                            "iat": now, "exp": now + 600});
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &self.encoding,
        )?)
    }
}

/// With bearer auth, a sessionless request can be cancelled from another
/// POST, but only with a token of the user who sent it: bob's
/// cancellation naming alice's id is dropped, alice's own is answered.
#[tokio::test]
async fn finding_05_with_bearer_auth_only_the_requests_own_user_cancels_it() -> TestResult {
    let issuer = Issuer::new()?;
    let keys = tempfile::tempdir()?;
    let pem = keys.path().join("issuer.pem");
    std::fs::write(&pem, &issuer.public_pem)?;
    let pem = pem.display().to_string();
    let warden = Warden::start(
        "default allow\n",
        &[
            "--jwt-issuer",
            "https://auth.example.com",
            "--jwt-audience",
            "warden",
            "--jwt-key",
            &pem,
        ],
        None,
    )
    .await?;
    let http = http()?;
    let (alice, bob) = (
        format!("Bearer {}", issuer.token("alice")?),
        format!("Bearer {}", issuer.token("bob")?),
    );
    let cancel = |id: u64| {
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": id, "reason": "hostile"}})
    };
    let first = modern_call(json!(9), "slow", json!({"ms": 1500}));
    let second = modern_call(json!(10), "hang", json!({}));
    let (first, second, cancels) = tokio::join!(
        async {
            messages(post_modern(&http, &warden.url, &first, &[("authorization", &alice)]).await?)
                .await
        },
        async {
            messages(post_modern(&http, &warden.url, &second, &[("authorization", &alice)]).await?)
                .await
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for id in [9, 10] {
                let r = post_modern(&http, &warden.url, &cancel(id), &[("authorization", &bob)])
                    .await?;
                assert_eq!(r.status(), 202);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let r = post_modern(
                &http,
                &warden.url,
                &cancel(10),
                &[("authorization", &alice)],
            )
            .await?;
            assert_eq!(r.status(), 202);
            Ok::<_, Error>(())
        }
    );
    cancels?;
    let first = first?.pop().ok_or("no answer")?;
    assert_eq!(first["id"], 9);
    assert_eq!(
        first["result"]["structuredContent"]["slept_ms"], 1500,
        "bob could not cancel alice's call: {first:#}"
    );
    let second = second?.pop().ok_or("no answer")?;
    assert_eq!(second["id"], 10);
    assert_eq!(
        error_code(&second),
        Some(-32800),
        "alice cancelled hers: {second:#}"
    );
    Ok(())
}
