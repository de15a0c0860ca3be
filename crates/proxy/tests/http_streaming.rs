//! Streaming through warden over real loopback HTTP (127.0.0.1 only): a
//! scripted Streamable HTTP upstream answers `tools/call` with SSE streams
//! the test controls, warden (`serve_http_until`, `--upstream URL`) sits in
//! front, and a raw HTTP client reads warden's answer chunk by chunk.
//!
//! - Events are forwarded as they arrive: the client sees a progress
//!   notification while the upstream is still holding back its result
//!   (the upstream sends the result only after the test saw the
//!   notification at the client, so a buffering warden fails the test by
//!   timing out).
//! - Hostile upstream streams: one that never ends (the call timeout
//!   answers it), garbage between events (skipped; the result still
//!   arrives), an event larger than `max_message_bytes` that never ends
//!   (a JSON-RPC error at once, not a hang, and the stream is dropped).
//! - `TCP_NODELAY` on the connections warden accepts and on those it opens
//!   to the upstream (read from the test process's own sockets: warden
//!   runs in it).
//!
//! Each case checks that the session goes on afterwards.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use warden_engine::{DecisionLog, Engine, EngineOptions, load_bundle};
use warden_proxy::{ProxyConfig, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

/// Longest any single step may take before the test fails (far above what
/// a streaming warden needs; a buffering or hanging one exceeds it).
const STEP: Duration = Duration::from_secs(10);

/// What the scripted upstream has done, for the test to check.
#[derive(Default)]
struct Script {
    /// Set by the upstream just before it sends the held-back result.
    result_sent: bool,
    /// Bytes of the huge event the upstream has sent.
    huge_sent: usize,
}

/// The scripted upstream's shared state.
#[derive(Clone)]
struct Upstream2 {
    script: Arc<Mutex<Script>>,
    /// Released by the test: the `slow` tool then sends its result.
    release: Arc<Notify>,
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {data}\n\n"))
}

fn result(id: &Value, text: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": text}], "isError": false}})
    .to_string()
}

/// An SSE response whose body is what `tx` sends, until it is dropped.
fn sse_body() -> (mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(b), rx))
    });
    let resp = (
        [
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "up-1"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    (tx, resp)
}

/// A `tools/call` answered by a script per tool name:
/// - `slow`: a progress notification at once, the result once released;
/// - `endless`: keep-alive comments forever, never a message;
/// - `garbage`: garbage, comments and broken events, then the result;
/// - `huge`: one event that grows past any limit and never ends;
/// - anything else: the result at once.
fn tools_call(up: &Upstream2, msg: &Value) -> Response {
    let id = msg["id"].clone();
    let token = msg
        .pointer("/params/_meta/progressToken")
        .cloned()
        .unwrap_or(Value::Null);
    let tool = msg
        .pointer("/params/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (tx, resp) = sse_body();
    let up = up.clone();
    tokio::spawn(async move {
        match tool.as_str() {
            "slow" => {
                let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1, "total": 2}});
                let _ = tx.send(sse(&progress.to_string())).await;
                up.release.notified().await;
                up.script.lock().unwrap().result_sent = true;
                let _ = tx.send(sse(&result(&id, "slow done"))).await;
            }
            "endless" => loop {
                if tx
                    .send(Bytes::from_static(b": still here\n\n"))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            "garbage" => {
                for junk in [
                    &b": a comment\n\n"[..],
                    b"garbage without a colon\n\n",
                    b"data: not json at all\n\n",
                    b"event: weird\nid: 5\nretry: soon\nfield: x\n\n",
                    b"data: {\"jsonrpc\":\"2.0\"}\n\n",
                    b"data: \xff\xfe\x00 bytes\n\n",
                    b"data: [1, 2, 3]\n\n",
                    b"\r\n\r\n\n\n",
                ] {
                    if tx.send(Bytes::copy_from_slice(junk)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(sse(&result(&id, "garbage survived"))).await;
            }
            "huge" => {
                let head = format!(r#"data: {{"jsonrpc":"2.0","id":{id},"result":{{"x":""#);
                if tx.send(Bytes::from(head)).await.is_err() {
                    return;
                }
                let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
                // Up to 256 MiB, never ending the line: warden must neither
                // hold it nor wait for its end.
                for _ in 0..4096 {
                    if tx.send(chunk.clone()).await.is_err() {
                        return;
                    }
                    up.script.lock().unwrap().huge_sent += chunk.len();
                }
                std::future::pending::<()>().await;
            }
            _ => {
                let _ = tx.send(sse(&result(&id, "quick"))).await;
            }
        }
    });
    resp
}

async fn start_upstream() -> Result<(SocketAddr, Upstream2), BoxError> {
    let up = Upstream2 {
        script: Arc::default(),
        release: Arc::new(Notify::new()),
    };
    let state = up.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |_headers: HeaderMap, body: String| {
            let up = state.clone();
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let Some(id) = msg
                    .get("id")
                    .cloned()
                    .filter(|_| msg.get("method").is_some())
                else {
                    return StatusCode::ACCEPTED.into_response();
                };
                let answer = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "scripted", "version": "1"}}),
                    "tools/list" => {
                        let tools: Vec<Value> = ["slow", "endless", "garbage", "huge", "quick"]
                            .iter()
                            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                            .collect();
                        json!({ "tools": tools })
                    }
                    "tools/call" => return tools_call(&up, &msg),
                    _ => json!({}),
                };
                (
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", "up-1"),
                    ],
                    json!({"jsonrpc": "2.0", "id": id, "result": answer}).to_string(),
                )
                    .into_response()
            }
        })
        .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
        .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, up))
}

/// warden in front of `upstream`, every call allowed (`default allow`).
async fn start_warden(
    upstream: SocketAddr,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> Result<(String, tempfile::TempDir), BoxError> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("allow.policy");
    std::fs::write(&policy, "default allow\n")?;
    let engine = Arc::new(Engine::new(load_bundle(&policy)?, EngineOptions::default()));
    let log = Arc::new(DecisionLog::to_writer(std::io::sink()));
    let mut cfg = ProxyConfig::new(Upstream::Url(format!("http://{upstream}/mcp")), "alice");
    cfg.server_name = Some("scripted".into());
    tweak(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reload, reloads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _keep = reload;
        let r = warden_proxy::serve_http_until(
            cfg,
            engine,
            log,
            reloads,
            listener,
            std::future::pending(),
        )
        .await;
        if let Err(e) = r {
            eprintln!("warden: {e}");
        }
    });
    Ok((format!("http://{addr}/mcp"), dir))
}

/// A raw client session with warden: initialized, with its session id.
struct Session {
    http: reqwest::Client,
    url: String,
    sid: String,
}

impl Session {
    async fn open(url: &str) -> Result<Session, BoxError> {
        let http = reqwest::Client::new();
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "stream-agent", "version": "1"}}});
        let r = tokio::time::timeout(STEP, post(&http, url, None, &init)).await??;
        assert_eq!(r.status(), 200);
        let sid = r.headers()["mcp-session-id"].to_str()?.to_string();
        let _ = r.bytes().await?;
        let s = Session {
            http,
            url: url.to_string(),
            sid,
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = post(&s.http, &s.url, Some(&s.sid), &note).await?;
        assert_eq!(r.status(), 202);
        Ok(s)
    }

    async fn call(&self, id: i64, tool: &str) -> Result<reqwest::Response, BoxError> {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": tool, "arguments": {}, "_meta": {"progressToken": format!("p{id}")}}});
        let r = tokio::time::timeout(STEP, post(&self.http, &self.url, Some(&self.sid), &msg))
            .await??;
        assert_eq!(r.status(), 200, "{tool}");
        Ok(r)
    }

    /// The whole answer to a call: its messages (SSE data or one JSON body).
    async fn answer(&self, id: i64, tool: &str) -> Result<Vec<Value>, BoxError> {
        let r = self.call(id, tool).await?;
        let mut reader = Reader::new(r);
        tokio::time::timeout(STEP, reader.until_response()).await??;
        Ok(reader.messages)
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    msg: &Value,
) -> Result<reqwest::Response, BoxError> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(msg.to_string());
    if let Some(sid) = sid {
        req = req.header("mcp-session-id", sid);
    }
    Ok(req.send().await?)
}

/// Reads an answer as it arrives: the messages of complete SSE events (or
/// the one JSON body).
struct Reader {
    resp: Option<reqwest::Response>,
    sse: bool,
    buf: Vec<u8>,
    messages: Vec<Value>,
}

impl Reader {
    fn new(resp: reqwest::Response) -> Reader {
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        Reader {
            resp: Some(resp),
            sse,
            buf: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Reads one more chunk; false at the end of the body.
    async fn more(&mut self) -> Result<bool, BoxError> {
        let Some(resp) = self.resp.as_mut() else {
            return Ok(false);
        };
        match resp.chunk().await? {
            Some(c) => self.buf.extend_from_slice(&c),
            None => {
                self.resp = None;
                if !self.sse && !self.buf.is_empty() {
                    self.messages.push(serde_json::from_slice(&self.buf)?);
                    self.buf.clear();
                }
                return Ok(false);
            }
        }
        if self.sse {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = std::str::from_utf8(&event)?
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                    .collect();
                let data = data.join("\n");
                if !data.trim().is_empty() {
                    self.messages.push(serde_json::from_str(&data)?);
                }
            }
        }
        Ok(true)
    }

    /// Reads until a message satisfies `f`.
    async fn until(&mut self, f: impl Fn(&Value) -> bool) -> Result<(), BoxError> {
        while !self.messages.iter().any(&f) {
            if !self.more().await? {
                return Err(format!("the answer ended without it: {:?}", self.messages).into());
            }
        }
        Ok(())
    }

    async fn until_response(&mut self) -> Result<(), BoxError> {
        self.until(|m| m.get("method").is_none() && m.get("id").is_some())
            .await
    }

    fn response(&self) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m.get("method").is_none() && m.get("id").is_some())
    }
}

fn text_of(response: &Value) -> String {
    response
        .pointer("/result/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_progress_notification_reaches_the_client_before_the_upstream_sends_its_result()
-> TestResult {
    let (up_addr, up) = start_upstream().await?;
    let (url, _dir) = start_warden(up_addr, |_| {}).await?;
    let s = Session::open(&url).await?;

    let mut reader = Reader::new(s.call(1, "slow").await?);
    assert!(
        reader.sse,
        "a session's call is answered with an SSE stream"
    );
    tokio::time::timeout(
        STEP,
        reader.until(|m| m["method"] == "notifications/progress"),
    )
    .await
    .map_err(|_| "the progress notification did not reach the client while the upstream held its result back: warden buffers the stream")??;
    assert!(
        !up.script.lock().unwrap().result_sent,
        "the result was still held back when the notification arrived"
    );
    assert!(reader.response().is_none());
    let progress = reader
        .messages
        .iter()
        .find(|m| m["method"] == "notifications/progress")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        progress["params"]["progressToken"], "p1",
        "the client's token"
    );

    up.release.notify_one();
    tokio::time::timeout(STEP, reader.until_response()).await??;
    let response = reader.response().cloned().unwrap_or_default();
    assert_eq!(response["id"], 1);
    assert_eq!(text_of(&response), "slow done");

    let next = s.answer(2, "quick").await?;
    assert_eq!(text_of(next.last().unwrap_or(&Value::Null)), "quick");
    Ok(())
}

#[tokio::test]
async fn an_upstream_stream_that_never_ends_is_answered_at_the_call_timeout() -> TestResult {
    let (up_addr, _up) = start_upstream().await?;
    let (url, _dir) = start_warden(up_addr, |c| c.call_timeout = Duration::from_secs(1)).await?;
    let s = Session::open(&url).await?;

    let messages = s.answer(1, "endless").await?;
    let response = messages.last().cloned().unwrap_or_default();
    assert_eq!(response["id"], 1);
    assert_eq!(response["error"]["code"], -32001, "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer"),
        "{response}"
    );

    let next = s.answer(2, "quick").await?;
    assert_eq!(text_of(next.last().unwrap_or(&Value::Null)), "quick");
    Ok(())
}

#[tokio::test]
async fn garbage_between_upstream_events_is_skipped_and_the_result_arrives() -> TestResult {
    let (up_addr, _up) = start_upstream().await?;
    let (url, _dir) = start_warden(up_addr, |_| {}).await?;
    let s = Session::open(&url).await?;

    let messages = s.answer(1, "garbage").await?;
    let responses: Vec<&Value> = messages.iter().filter(|m| m.get("id").is_some()).collect();
    assert_eq!(responses.len(), 1, "one answer: {messages:?}");
    assert_eq!(text_of(responses[0]), "garbage survived");

    let next = s.answer(2, "quick").await?;
    assert_eq!(text_of(next.last().unwrap_or(&Value::Null)), "quick");
    Ok(())
}

#[tokio::test]
async fn a_huge_upstream_event_that_never_ends_is_an_error_at_once_not_a_hang() -> TestResult {
    const LIMIT: usize = 256 * 1024;
    let (up_addr, up) = start_upstream().await?;
    // The call timeout is far away: the error must come from the size.
    let (url, _dir) = start_warden(up_addr, |c| {
        c.max_message_bytes = LIMIT;
        c.call_timeout = Duration::from_secs(600);
    })
    .await?;
    let s = Session::open(&url).await?;

    let messages = s.answer(1, "huge").await?;
    let response = messages.last().cloned().unwrap_or_default();
    assert_eq!(response["id"], 1, "{response}");
    assert_eq!(response["error"]["code"], -32603, "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("exceeds warden's limit"),
        "{response}"
    );
    // warden stopped reading: the upstream could not push its 256 MiB.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = up.script.lock().unwrap().huge_sent;
    assert!(
        sent < 64 * 1024 * 1024,
        "warden kept reading the oversize event: {sent} bytes"
    );

    let next = s.answer(2, "quick").await?;
    assert_eq!(text_of(next.last().unwrap_or(&Value::Null)), "quick");
    Ok(())
}

/// The TCP sockets of this process (warden runs in it): local address,
/// peer address and whether TCP_NODELAY is set.
#[cfg(target_os = "linux")]
fn tcp_sockets() -> Vec<(SocketAddr, SocketAddr, bool)> {
    use std::os::fd::{BorrowedFd, RawFd};
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only duplicated, at once, and the
        // duplicate is what is read and closed. A descriptor closed (or
        // reused) meanwhile yields an error or another socket, which the
        // address checks of the caller filter out.
        let Ok(dup) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
            continue;
        };
        let tcp = std::net::TcpStream::from(dup);
        if let (Ok(local), Ok(peer), Ok(nodelay)) =
            (tcp.local_addr(), tcp.peer_addr(), tcp.nodelay())
        {
            out.push((local, peer, nodelay));
        }
    }
    out
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn warden_sets_tcp_nodelay_on_accepted_and_upstream_connections() -> TestResult {
    let (up_addr, _up) = start_upstream().await?;
    let (url, _dir) = start_warden(up_addr, |_| {}).await?;
    let warden_addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()?;
    let s = Session::open(&url).await?;
    let _ = s.answer(1, "quick").await?;
    // Both connections stay open (keep-alive) while they are looked at.
    let sockets = tcp_sockets();
    let accepted: Vec<bool> = sockets
        .iter()
        .filter(|(local, _, _)| *local == warden_addr)
        .map(|s| s.2)
        .collect();
    let upstream: Vec<bool> = sockets
        .iter()
        .filter(|(_, peer, _)| *peer == up_addr)
        .map(|s| s.2)
        .collect();
    assert!(
        !accepted.is_empty(),
        "the client's connection to warden was found"
    );
    assert!(
        !upstream.is_empty(),
        "warden's connection to the upstream was found"
    );
    assert!(
        accepted.iter().chain(&upstream).all(|n| *n),
        "TCP_NODELAY on every connection warden accepted ({accepted:?}) and opened ({upstream:?})"
    );
    Ok(())
}
