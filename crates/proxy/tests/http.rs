//! Warden's Streamable HTTP side (`--listen`) and HTTP upstream
//! (`--upstream URL`) with real parts over loopback: the demo genomics
//! server served by rmcp, warden in front of it, and rmcp clients (or raw
//! reqwest requests where the wire itself is under test). Policies are the
//! repository's `policies/genomics.policy`.

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation, ProtocolVersion,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData as McpError, ServiceExt};
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use warden_engine::{DecisionLog, Engine, EngineOptions, load_bundle};
use warden_proxy::{ProxyConfig, Upstream};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/genomics.policy"
);

/// The decision log, kept in memory.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The decision lines (a forwarded call's outcome is a line of its
    /// own, written after the call's write-ahead decision line).
    fn decisions(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("decision").is_some())
            .collect()
    }
}

async fn start_demo() -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = warden_demo::serve_http(listener).await;
    });
    Ok(addr)
}

struct Warden {
    addr: SocketAddr,
    log: LogBuf,
    reload: mpsc::UnboundedSender<()>,
}

impl Warden {
    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

async fn start_warden(
    upstream: String,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> Result<Warden, BoxError> {
    let bundle = load_bundle(std::path::Path::new(POLICY))?;
    let engine = Arc::new(Engine::new(bundle, EngineOptions::default()));
    let log = LogBuf::default();
    let decisions = Arc::new(DecisionLog::to_writer(log.clone()));
    let mut cfg = ProxyConfig::new(Upstream::Url(upstream), "alice");
    cfg.server_name = Some("genomics".into());
    tweak(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reload, reloads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let r = warden_proxy::serve_http_until(
            cfg,
            engine,
            decisions,
            reloads,
            listener,
            std::future::pending(),
        )
        .await;
        if let Err(e) = r {
            eprintln!("warden: {e}");
        }
    });
    Ok(Warden { addr, log, reload })
}

/// A client that answers warden's confirmations with `action` (or, with
/// `None`, declares no elicitation capability).
#[derive(Clone)]
struct Person {
    action: Option<ElicitationAction>,
    asked: Arc<Mutex<Vec<String>>>,
    list_changed: Arc<tokio::sync::Notify>,
}

impl Person {
    fn new(action: Option<ElicitationAction>) -> Self {
        Person {
            action,
            asked: Arc::default(),
            list_changed: Arc::default(),
        }
    }
}

impl ClientHandler for Person {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().unwrap().push(message.clone());
        }
        let action = self.action.clone().unwrap_or(ElicitationAction::Decline);
        let mut r = ElicitResult::new(action.clone());
        if action == ElicitationAction::Accept {
            r.content = Some(json!({}));
        }
        Ok(r)
    }

    async fn on_tool_list_changed(&self, _context: rmcp::service::NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        let caps = if self.action.is_some() {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("test-agent", "1.0.0"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

type Client = RunningService<RoleClient, Person>;

async fn connect(url: &str, person: Person) -> Result<Client, BoxError> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()),
    );
    Ok(person.serve(transport).await?)
}

async fn call(
    peer: &Peer<RoleClient>,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, BoxError> {
    let args = args.as_object().cloned().unwrap_or_default();
    Ok(peer
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await?)
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `warden/decision` of a denial, from structuredContent or `_meta`.
fn decision(r: &CallToolResult) -> Value {
    let v = serde_json::to_value(r).unwrap();
    v.pointer("/structuredContent/warden~1decision")
        .or_else(|| v.pointer("/_meta/warden~1decision"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn lists_reads_and_denies_through_warden_over_http() -> TestResult {
    let demo = start_demo().await?;
    let warden = start_warden(format!("http://{demo}/mcp"), |_| {}).await?;
    let client = connect(&warden.url(), Person::new(None)).await?;

    let tools = client.peer().list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"list_samples"), "{names:?}");
    assert!(names.contains(&"start_pipeline_run"), "{names:?}");
    assert!(
        !names.contains(&"delete_sample"),
        "delete_sample must be hidden: {names:?}"
    );

    // A read is allowed and its result arrives as the server sent it.
    let through = call(client.peer(), "get_sample", json!({"sample_id": "S-0001"})).await?;
    let direct_client = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("http://{demo}/mcp")),
        ))
        .await?;
    let direct = call(
        direct_client.peer(),
        "get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_ne!(through.is_error, Some(true), "{through:?}");
    assert_eq!(
        serde_json::to_value(&through)?,
        serde_json::to_value(&direct)?
    );

    // A delete is denied by the rule, with what to do instead.
    let denied = call(
        client.peer(),
        "delete_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("agents-never-delete"),
        "{}",
        text(&denied)
    );
    assert!(text(&denied).contains("web app"), "{}", text(&denied));
    assert_eq!(decision(&denied)["rules"], json!(["agents-never-delete"]));
    // ...and the sample is still there.
    let still = call(
        direct_client.peer(),
        "get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_ne!(still.is_error, Some(true));

    // Every decided call is in the decision log.
    let log = warden.log.decisions();
    assert_eq!(log.len(), 2, "{log:?}");
    client.cancel().await?;
    direct_client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn confirmations_are_asked_on_the_calls_stream() -> TestResult {
    let demo = start_demo().await?;
    let warden = start_warden(format!("http://{demo}/mcp"), |_| {}).await?;
    let args = json!({"sample_id": "S-0001", "pipeline": "variant-call", "estimated_cost": 300});

    let yes = Person::new(Some(ElicitationAction::Accept));
    let client = connect(&warden.url(), yes.clone()).await?;
    let run = call(client.peer(), "start_pipeline_run", args.clone()).await?;
    assert_ne!(run.is_error, Some(true), "{run:?}");
    assert!(text(&run).contains("queued"), "{}", text(&run));
    let asked = yes.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains("variant-call"), "{asked:?}");
    client.cancel().await?;

    // Another sample: the yes above covers runs on S-0001 for 30 minutes
    // (`grant for 30m within args.sample_id`), so only another is asked.
    let other = json!({"sample_id": "S-0002", "pipeline": "variant-call", "estimated_cost": 300});
    let no = Person::new(Some(ElicitationAction::Decline));
    let client = connect(&warden.url(), no.clone()).await?;
    let refused = call(client.peer(), "start_pipeline_run", other.clone()).await?;
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("declined"), "{}", text(&refused));
    assert_eq!(no.asked.lock().unwrap().len(), 1);
    client.cancel().await?;

    // A client that cannot ask: on HTTP, the approval page can (docs/approvals.md).
    let third = json!({"sample_id": "S-0003", "pipeline": "variant-call", "estimated_cost": 300});
    let cannot = Person::new(None);
    let client = connect(&warden.url(), cannot).await?;
    let refused = call(client.peer(), "start_pipeline_run", third).await?;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("needs the approval of the person")
            && text(&refused).contains("/approvals/"),
        "{}",
        text(&refused)
    );
    assert_eq!(decision(&refused)["retry"]["when"], "after_approval");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn two_sessions_are_isolated_and_a_reload_reaches_both() -> TestResult {
    let demo = start_demo().await?;
    let warden = start_warden(format!("http://{demo}/mcp"), |_| {}).await?;
    let a = Person::new(Some(ElicitationAction::Accept));
    let b = Person::new(Some(ElicitationAction::Decline));
    let url = warden.url();
    let (ca, cb) = tokio::try_join!(connect(&url, a.clone()), connect(&url, b.clone()))?;
    // Two samples: one user's yes on a sample covers the other session's
    // run on it too (`grant for 30m within args.sample_id`).
    let args_a = json!({"sample_id": "S-0002", "pipeline": "variant-call", "estimated_cost": 300});
    let args_b = json!({"sample_id": "S-0003", "pipeline": "variant-call", "estimated_cost": 300});
    let (ra, rb) = tokio::join!(
        call(ca.peer(), "start_pipeline_run", args_a),
        call(cb.peer(), "start_pipeline_run", args_b)
    );
    let (ra, rb) = (ra?, rb?);
    // Each session's confirmation went to its own client.
    assert_ne!(ra.is_error, Some(true), "{ra:?}");
    assert_eq!(rb.is_error, Some(true), "{rb:?}");
    assert_eq!(a.asked.lock().unwrap().len(), 1);
    assert_eq!(b.asked.lock().unwrap().len(), 1);
    let sessions: std::collections::BTreeSet<String> = warden
        .log
        .lines()
        .iter()
        .filter_map(|l| {
            l.pointer("/session")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(sessions.len(), 2, "{:?}", warden.log.lines());

    warden.reload.send(())?;
    let wait = std::time::Duration::from_secs(2);
    tokio::time::timeout(wait, a.list_changed.notified()).await?;
    tokio::time::timeout(wait, b.list_changed.notified()).await?;
    ca.cancel().await?;
    cb.cancel().await?;
    Ok(())
}

// ---- raw HTTP: the wire itself -----------------------------------------------

fn raw() -> reqwest::Client {
    reqwest::Client::new()
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw-agent", "version": "1"}}})
}

/// The JSON-RPC messages of a response (JSON or SSE).
async fn messages(resp: reqwest::Response) -> Result<Vec<Value>, BoxError> {
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
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).ok())?
        })
        .collect())
}

#[tokio::test]
async fn the_wire_origin_json_errors_sessions_and_size() -> TestResult {
    let demo = start_demo().await?;
    let warden = start_warden(format!("http://{demo}/mcp"), |c| {
        c.max_message_bytes = 64 * 1024;
        c.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await?;
    let url = warden.url();
    let post = |body: String| {
        raw()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
    };

    // DNS rebinding: a foreign origin is refused before anything else.
    let r = post(initialize_body().to_string())
        .header("origin", "http://evil.example")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], -32600);
    let r = post(initialize_body().to_string())
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    assert_eq!(r.status(), 200, "an allowed origin passes");
    let r = post(initialize_body().to_string())
        .header("host", "evil.example")
        .send()
        .await?;
    assert_eq!(
        r.status(),
        403,
        "a foreign Host on a loopback bind is refused"
    );

    // Malformed JSON and batches.
    let r = post("{not json".into()).send().await?;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], -32700);
    let r = post(json!([initialize_body()]).to_string()).send().await?;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], -32600);

    // Too large.
    let big =
        json!({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"x": "a".repeat(70_000)}});
    let r = post(big.to_string()).send().await?;
    assert_eq!(r.status(), 413);

    // Sessions: a new one per initialize, required and checked afterwards.
    let r = post(initialize_body().to_string()).send().await?;
    assert_eq!(r.status(), 200);
    let sid = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Mcp-Session-Id")?
        .to_string();
    let init = messages(r).await?;
    assert_eq!(
        init.last().unwrap()["result"]["protocolVersion"],
        "2025-11-25"
    );
    assert_eq!(
        init.last().unwrap()["result"]["capabilities"]["tools"]["listChanged"],
        true
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let r = post(initialized.clone())
        .header("mcp-session-id", &sid)
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    assert_eq!(post(ping.clone()).send().await?.status(), 400);
    assert_eq!(
        post(ping.clone())
            .header("mcp-session-id", "nope")
            .send()
            .await?
            .status(),
        404
    );
    // A JSON-only client gets a JSON answer.
    let r = raw()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &sid)
        .body(ping.clone())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    let pong: Value = r.json().await?;
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 2, "result": {}}));

    // DELETE ends it.
    let r = raw()
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        post(ping)
            .header("mcp-session-id", &sid)
            .send()
            .await?
            .status(),
        404
    );
    Ok(())
}

// ---- an HTTP upstream that records what reaches it ------------------------------

#[derive(Default)]
struct Seen {
    posts: Vec<(axum::http::HeaderMap, Value)>,
    deletes: usize,
}

/// A minimal Streamable HTTP MCP server: JSON answers, a session id, no GET
/// stream; `get_meta` returns the `_meta` it received.
async fn start_recording_upstream() -> Result<(SocketAddr, Arc<Mutex<Seen>>), BoxError> {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s1 = Arc::clone(&seen);
    let s2 = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = Arc::clone(&s1);
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                seen.lock().unwrap().posts.push((headers, msg.clone()));
                let Some(id) = msg.get("id").cloned().filter(|_| msg.get("method").is_some()) else {
                    return StatusCode::ACCEPTED.into_response();
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "recorder", "version": "1"}}),
                    "tools/list" => json!({"tools": [{"name": "get_meta", "inputSchema": {"type": "object"},
                        "annotations": {"readOnlyHint": true}}]}),
                    "tools/call" => {
                        let meta = msg.pointer("/params/_meta").cloned().unwrap_or(Value::Null);
                        json!({"content": [{"type": "text", "text": "ok"}], "structuredContent": {"meta": meta}})
                    }
                    _ => json!({}),
                };
                (
                    [("content-type", "application/json"), ("mcp-session-id", "up-1")],
                    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                )
                    .into_response()
            }
        })
        .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
        .delete(move || {
            let seen = Arc::clone(&s2);
            async move {
                seen.lock().unwrap().deletes += 1;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, seen))
}

#[tokio::test]
async fn provenance_reaches_an_http_upstream_in_meta_and_headers_and_cannot_be_spoofed()
-> TestResult {
    let (up, seen) = start_recording_upstream().await?;
    let warden = start_warden(format!("http://{up}/mcp"), |_| {}).await?;
    let url = warden.url();
    let post = |body: Value| {
        raw()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
    };
    let r = post(initialize_body()).send().await?;
    let sid = r.headers()["mcp-session-id"].to_str()?.to_string();
    messages(r).await?;
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .header("mcp-session-id", &sid)
        .send()
        .await?;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "get_meta", "arguments": {},
        "_meta": {"io.warden/provenance": {"user": "mallory"}, "progressToken": "p1"}}});
    let r = post(call)
        .header("mcp-session-id", &sid)
        .header("warden-user", "mallory")
        .header("authorization", "Bearer the-clients-own-token")
        .header("cookie", "session=the-clients")
        .send()
        .await?;
    let msgs = messages(r).await?;
    let resp = msgs.iter().find(|m| m["id"] == 7).ok_or("no response")?;
    let meta = &resp["result"]["structuredContent"]["meta"];
    let prov = &meta["io.warden/provenance"];
    assert_eq!(prov["user"], "alice", "{meta}");
    assert_eq!(prov["agent"], "raw-agent");
    assert_eq!(prov["server"], "genomics");
    assert_eq!(meta["progressToken"], "p1", "other _meta passes: {meta}");

    let (headers, _) = {
        let s = seen.lock().unwrap();
        s.posts
            .iter()
            .find(|(_, m)| m["method"] == "tools/call")
            .cloned()
            .ok_or("the call did not reach the upstream")?
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("warden-user").as_deref(), Some("alice"));
    assert_eq!(h("warden-agent").as_deref(), Some("raw-agent"));
    assert_eq!(h("warden-server").as_deref(), Some("genomics"));
    assert_eq!(h("warden-via-agent").as_deref(), Some("true"));
    assert_eq!(h("warden-session").as_deref(), prov["session"].as_str());
    assert_eq!(
        h("warden-decision-id").as_deref(),
        prov["decision_id"].as_str()
    );
    assert_eq!(
        h("warden-policy-version"),
        prov["policy_version"]
            .as_str()
            .map(str::to_string)
            .or_else(|| Some(prov["policy_version"].to_string()))
    );
    assert_eq!(headers.get_all("warden-user").iter().count(), 1);
    // No token passthrough: the client's credentials stay with warden.
    assert!(headers.get("authorization").is_none(), "{headers:?}");
    assert!(headers.get("cookie").is_none(), "{headers:?}");
    // The upstream's session id and protocol version travel on later requests.
    assert_eq!(h("mcp-session-id").as_deref(), Some("up-1"));
    assert_eq!(h("mcp-protocol-version").as_deref(), Some("2025-11-25"));

    // Ending warden's session ends the upstream's.
    raw()
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while seen.lock().unwrap().deletes == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen.lock().unwrap().deletes, 1);
    Ok(())
}

#[tokio::test]
async fn protocol_2026_07_28_requests_go_through_the_sessionless_relay() -> TestResult {
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let demo = start_demo().await?;
    let warden = start_warden(format!("http://{demo}/mcp"), |_| {}).await?;
    let connect_modern = || async {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(warden.url()),
        );
        ().serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
    };
    let (a, b) = tokio::try_join!(connect_modern(), connect_modern())?;
    let tools = a.peer().list_all_tools().await?;
    assert!(tools.iter().any(|t| t.name == "get_sample"));
    assert!(!tools.iter().any(|t| t.name == "delete_sample"));
    // Both clients use the same request ids; each gets its own answer.
    let (ra, rb) = tokio::join!(
        call(a.peer(), "get_sample", json!({"sample_id": "S-0001"})),
        call(b.peer(), "get_sample", json!({"sample_id": "S-0002"}))
    );
    assert!(text(&ra?).contains("S-0001"));
    assert!(text(&rb?).contains("S-0002"));
    let denied = call(b.peer(), "delete_sample", json!({"sample_id": "S-0001"})).await?;
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(decision(&denied)["rules"], json!(["agents-never-delete"]));
    a.cancel().await?;
    b.cancel().await?;
    Ok(())
}

/// A recording upstream that forgets its sessions on demand: the next
/// request with the old session id gets 404.
async fn start_forgetful_upstream() -> Result<(SocketAddr, Arc<Mutex<(u32, Vec<String>)>>), BoxError>
{
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    // (current session number, methods seen)
    let state = Arc::new(Mutex::new((1u32, Vec::<String>::new())));
    let s = Arc::clone(&state);
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = Arc::clone(&s);
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let method = msg["method"].as_str().unwrap_or("").to_string();
                let mut st = state.lock().unwrap();
                st.1.push(method.clone());
                let current = format!("s{}", st.0);
                let given = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
                if method != "initialize" && given != Some(current.as_str()) {
                    return StatusCode::NOT_FOUND.into_response();
                }
                let Some(id) = msg.get("id").cloned().filter(|_| !method.is_empty()) else {
                    return StatusCode::ACCEPTED.into_response();
                };
                let result = match method.as_str() {
                    "initialize" => json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "genomics", "version": "1"}}),
                    "tools/list" => json!({"tools": [{"name": "get_x", "inputSchema": {"type": "object"},
                        "annotations": {"readOnlyHint": true}}]}),
                    "tools/call" => json!({"content": [{"type": "text", "text": current}]}),
                    _ => json!({}),
                };
                (
                    [("content-type", "application/json"), ("mcp-session-id", current.as_str())],
                    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
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
    Ok((addr, state))
}

#[tokio::test]
async fn an_expired_upstream_session_is_initialized_again() -> TestResult {
    let (up, state) = start_forgetful_upstream().await?;
    let warden = start_warden(format!("http://{up}/mcp"), |c| {
        c.restart_initial = std::time::Duration::from_millis(20);
    })
    .await?;
    let client = connect(&warden.url(), Person::new(None)).await?;
    let first = call(client.peer(), "get_x", json!({})).await?;
    assert_eq!(text(&first), "s1");

    // The upstream forgets the session: the call in flight gets an error,
    // warden replays initialize, and later calls go through again.
    state.lock().unwrap().0 = 2;
    let lost = call(client.peer(), "get_x", json!({})).await;
    assert!(lost.is_err(), "{lost:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let again = loop {
        match call(client.peer(), "get_x", json!({})).await {
            Ok(r) => break r,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    };
    assert_eq!(text(&again), "s2");
    let methods = state.lock().unwrap().1.clone();
    assert_eq!(
        methods.iter().filter(|m| *m == "initialize").count(),
        2,
        "{methods:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn an_idle_session_ends() -> TestResult {
    let (up, _seen) = start_recording_upstream().await?;
    let warden = start_warden(format!("http://{up}/mcp"), |c| {
        c.session_idle_timeout = std::time::Duration::from_millis(200);
    })
    .await?;
    let r = raw()
        .post(warden.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize_body().to_string())
        .send()
        .await?;
    let sid = r.headers()["mcp-session-id"].to_str()?.to_string();
    messages(r).await?;
    let ping = || {
        raw()
            .post(warden.url())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("mcp-session-id", &sid)
            .body(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string())
            .send()
    };
    assert_eq!(ping().await?.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(ping().await?.status(), 404);
    Ok(())
}

// ---- a command upstream: one child process per session --------------------------

const TEST_UPSTREAM_POLICY: &str = r#"
default deny

allow test-tools {
  server "proxy-test-upstream"
  tool ["echo_meta", "slow", "ask_client"]
}
"#;

async fn start_warden_on_command() -> Result<(Warden, std::path::PathBuf), BoxError> {
    let dir = std::env::temp_dir().join(format!(
        "warden-http-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let policy = dir.join("test.policy");
    std::fs::write(&policy, TEST_UPSTREAM_POLICY)?;
    let bundle = load_bundle(&policy)?;
    let engine = Arc::new(Engine::new(bundle, EngineOptions::default()));
    let log = LogBuf::default();
    let decisions = Arc::new(DecisionLog::to_writer(log.clone()));
    let cmd = warden_proxy::UpstreamCommand::new(
        env!("CARGO_BIN_EXE_warden-test-upstream"),
        Vec::<String>::new(),
    );
    let cfg = ProxyConfig::new(cmd, "alice");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reload, reloads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _ = warden_proxy::serve_http_until(
            cfg,
            engine,
            decisions,
            reloads,
            listener,
            std::future::pending(),
        )
        .await;
    });
    Ok((Warden { addr, log, reload }, dir))
}

#[tokio::test]
async fn each_session_gets_its_own_child_and_delete_stops_it() -> TestResult {
    let (warden, dir) = start_warden_on_command().await?;
    let init = || {
        raw()
            .post(warden.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize_body().to_string())
            .send()
    };
    let (ra, rb) = tokio::try_join!(init(), init())?;
    let sa = ra.headers()["mcp-session-id"].to_str()?.to_string();
    let sb = rb.headers()["mcp-session-id"].to_str()?.to_string();
    assert_ne!(sa, sb);
    let pid = |msgs: Vec<Value>| {
        msgs.iter()
            .find_map(|m| m.pointer("/result/serverInfo/pid").and_then(Value::as_u64))
            .ok_or("no upstream pid")
    };
    // The initialize result passes with the upstream's own fields.
    let (pa, pb) = (pid(messages(ra).await?)?, pid(messages(rb).await?)?);
    assert_ne!(pa, pb, "two sessions, two upstream processes");
    assert!(std::path::Path::new(&format!("/proc/{pa}")).exists());

    let r = raw()
        .delete(warden.url())
        .header("mcp-session-id", &sa)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::path::Path::new(&format!("/proc/{pa}")).exists()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pa}")).exists(),
        "the deleted session's upstream still runs"
    );
    assert!(std::path::Path::new(&format!("/proc/{pb}")).exists());
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn an_upstream_question_reaches_the_http_client_and_its_answer_goes_back() -> TestResult {
    let (warden, dir) = start_warden_on_command().await?;
    let person = Person::new(Some(ElicitationAction::Accept));
    let client = connect(&warden.url(), person.clone()).await?;
    let r = call(client.peer(), "ask_client", json!({})).await?;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let v = serde_json::to_value(&r)?;
    assert_eq!(
        v.pointer("/structuredContent/client_answer/action"),
        Some(&json!("accept")),
        "{v}"
    );
    assert_eq!(
        person.asked.lock().unwrap().as_slice(),
        ["upstream asks: favourite colour?"]
    );
    assert_eq!(warden.log.decisions().len(), 1);
    client.cancel().await?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
