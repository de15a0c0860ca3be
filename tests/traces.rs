//! OpenTelemetry traces through the real binary (issue 15): `warden proxy
//! --otlp-endpoint` exports a span per governed call to an OTLP/HTTP
//! receiver started here, which decodes the protobuf warden sends
//! (`opentelemetry-proto`). Checked: the call's span continues the
//! client's W3C trace (from `_meta`, or the `traceparent` header on HTTP),
//! the decision, confirmation and upstream spans hang under it with the
//! rule, outcome, decision id and policy version of the decision log, the
//! upstream gets warden's span as its parent (in `_meta`, and as a header
//! to an HTTP upstream), no argument value is on a span unless named, and
//! traces off leave a client's trace context untouched.

mod common;

use common::Res;
use common::otlp::{Received, Receiver};
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const POLICY: &str = r#"default allow

deny no-wipes {
  tool "wipe"
  reason "wiping is not for agents"
}
"#;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

/// A `tools/call` with `meta` as its `_meta`.
fn call_with_meta(id: u64, tool: &str, args: Value, meta: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": meta}})
    .to_string()
}

async fn answer(p: &mut RawProxy, id: u64) -> Res<Value> {
    loop {
        let v: Value = serde_json::from_str(&p.next_line().await?)?;
        if v["id"] == id {
            return Ok(v);
        }
    }
}

/// The `traceparent` the test upstream received, split into trace and
/// span id.
fn upstream_parent(answer: &Value) -> (String, String) {
    let tp = answer["result"]["structuredContent"]["meta"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("the upstream got no traceparent: {answer}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    (parts[1].to_string(), parts[2].to_string())
}

fn one<'a>(spans: &'a [Received], what: &str, f: impl Fn(&Received) -> bool) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "one {what}: {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [Received], parent: &Received) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|s| s.parent_id() == parent.span_id() && s.trace_id() == parent.trace_id())
        .collect()
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const INTERNAL: i32 = 1;

#[tokio::test]
async fn governed_calls_are_spans_in_the_clients_trace_with_the_logged_decision() -> Res<()> {
    let otlp = Receiver::start().await?;
    let mut p =
        RawProxy::start_initialized(POLICY, &["--otlp-endpoint", &otlp.url], "traced").await?;

    // 1: allowed, in the client's trace (`_meta.traceparent`).
    let secret_args = json!({"path": "/reads.fa", "token": "s3cret-value"});
    p.send_line(
        call_with_meta(
            1,
            "echo_meta",
            secret_args.clone(),
            json!({"traceparent": client_traceparent(), "tracestate": "lab=7"}),
        )
        .as_bytes(),
    )
    .await?;
    let allowed = answer(&mut p, 1).await?;
    assert!(allowed["result"]["isError"] != true, "{allowed}");
    let (up_trace, up_span) = upstream_parent(&allowed);
    assert_eq!(
        up_trace, CLIENT_TRACE,
        "the upstream is in the client's trace"
    );
    assert_ne!(
        up_span, CLIENT_SPAN,
        "under warden's span, not the client's"
    );
    assert_eq!(
        allowed["result"]["structuredContent"]["meta"]["tracestate"], "lab=7",
        "the client's tracestate goes on"
    );

    // 2: denied, in the same trace.
    p.send_line(
        call_with_meta(
            2,
            "wipe",
            json!({"target": "all"}),
            json!({"traceparent": client_traceparent()}),
        )
        .as_bytes(),
    )
    .await?;
    let denied = answer(&mut p, 2).await?;
    assert_eq!(denied["result"]["isError"], true, "{denied}");

    // 3: a malformed traceparent (a header injection attempt) starts a
    // new trace, and the upstream gets a well-formed one.
    p.send_line(
        call_with_meta(
            3,
            "echo_meta",
            json!({}),
            json!({"traceparent": format!("{}\r\nx-evil: 1", client_traceparent())}),
        )
        .as_bytes(),
    )
    .await?;
    let fresh = answer(&mut p, 3).await?;
    let (fresh_trace, _) = upstream_parent(&fresh);
    assert_ne!(fresh_trace, CLIENT_TRACE);
    assert_eq!(fresh_trace.len(), 32);

    // The last spans go out at shutdown.
    let (status, dir) = p.close().await?;
    assert!(status.success(), "{status}");
    let spans = otlp.wait_for(8).await?;
    let log: Vec<Value> = std::fs::read_to_string(dir.path().join("audit.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let decision_of = |tool: &str| -> Value {
        log.iter()
            .find(|l| l["tool"] == tool && l.get("decision").is_some())
            .cloned()
            .unwrap_or_else(|| panic!("a decision line for {tool}"))
    };

    for s in &spans {
        assert_eq!(s.service, "warden", "{s:?}");
        assert_eq!(s.instance.len(), 8, "the replica tag: {s:?}");
        // No argument value is on any span unless configured.
        let dump = format!("{:?}", s.span.attributes);
        assert!(!dump.contains("s3cret"), "{dump}");
        assert!(!dump.contains("/reads.fa"), "{dump}");
    }

    // The allowed call: SERVER span under the client's span, with the
    // decision the log has, and its decision and upstream children.
    let call1 = one(&spans, "span of call 1", |s| {
        s.span.kind == SERVER && s.attr("jsonrpc.request.id").as_deref() == Some("1")
    });
    assert_eq!(call1.trace_id(), CLIENT_TRACE);
    assert_eq!(call1.parent_id(), CLIENT_SPAN);
    assert_eq!(call1.span.name, "tools/call echo_meta");
    let line1 = decision_of("echo_meta");
    assert_eq!(call1.attr("warden.outcome").as_deref(), Some("allow"));
    assert_eq!(call1.attr("warden.rule").as_deref(), Some("#default"));
    assert_eq!(
        call1.attr("warden.decision_id"),
        line1["decision_id"].as_str().map(String::from)
    );
    assert_eq!(
        call1.attr("warden.policy_version"),
        line1["policy_version"].as_str().map(String::from)
    );
    assert_eq!(call1.attr("gen_ai.tool.name").as_deref(), Some("echo_meta"));
    assert_eq!(call1.attr("mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(call1.attr("warden.mode").as_deref(), Some("enforce"));
    let kids = children(&spans, call1);
    assert_eq!(kids.len(), 2, "{kids:#?}");
    let decide = one(&spans, "decision of call 1", |s| {
        s.parent_id() == call1.span_id() && s.span.name == "warden.decide"
    });
    assert_eq!(decide.span.kind, INTERNAL);
    assert_eq!(
        decide.attr("warden.decision_id"),
        call1.attr("warden.decision_id")
    );
    let upstream = one(&spans, "upstream call of call 1", |s| {
        s.parent_id() == call1.span_id() && s.span.kind == CLIENT
    });
    assert_eq!(upstream.span.name, "tools/call echo_meta");
    assert_eq!(
        upstream.span_id(),
        up_span,
        "the upstream's parent is warden's upstream span"
    );
    // Children lie within the call's span.
    for k in &kids {
        assert!(k.span.start_time_unix_nano >= call1.span.start_time_unix_nano);
        assert!(k.span.end_time_unix_nano <= call1.span.end_time_unix_nano);
    }

    // The denied call: the rule that denied, no upstream span.
    let call2 = one(&spans, "span of call 2", |s| {
        s.span.kind == SERVER && s.attr("jsonrpc.request.id").as_deref() == Some("2")
    });
    let line2 = decision_of("wipe");
    assert_eq!(call2.trace_id(), CLIENT_TRACE);
    assert_eq!(call2.attr("warden.outcome").as_deref(), Some("deny"));
    assert_eq!(call2.attr("warden.rule").as_deref(), Some("no-wipes"));
    assert_eq!(
        call2.attr("warden.decision_id"),
        line2["decision_id"].as_str().map(String::from)
    );
    let kids2 = children(&spans, call2);
    assert_eq!(kids2.len(), 1, "{kids2:#?}");
    assert_eq!(kids2[0].span.name, "warden.decide");
    // A denial is a decision, not a failure of the span.
    assert!(
        call2.span.status.as_ref().is_none_or(|s| s.code != 2),
        "{call2:?}"
    );

    // The call with a malformed traceparent: a root span of a new trace,
    // which the upstream joined.
    let call3 = one(&spans, "span of call 3", |s| {
        s.span.kind == SERVER && s.attr("jsonrpc.request.id").as_deref() == Some("3")
    });
    assert!(call3.span.parent_span_id.is_empty(), "{call3:?}");
    assert_eq!(call3.trace_id(), fresh_trace);
    Ok(())
}

#[tokio::test]
async fn only_named_arguments_go_on_spans_and_as_the_log_writes_them() -> Res<()> {
    let otlp = Receiver::start().await?;
    let args = [
        "--otlp-endpoint",
        &otlp.url,
        "--trace-argument",
        "path",
        "--trace-argument",
        "token",
        "--redact",
        "token",
    ];
    let mut p = RawProxy::start_initialized(POLICY, &args, "traced").await?;
    let a = p
        .call_tool(
            1,
            "echo_meta",
            json!({"path": "/reads.fa", "token": "s3cret-value", "other": "unnamed-value"}),
        )
        .await?;
    assert!(a["result"]["isError"] != true, "{a}");
    p.close().await?;
    let spans = otlp.wait_for(3).await?;
    let call = one(&spans, "call span", |s| s.span.kind == SERVER);
    assert_eq!(
        call.attr("warden.argument.path").as_deref(),
        Some(r#""/reads.fa""#)
    );
    assert_eq!(
        call.attr("warden.argument.token").as_deref(),
        Some(r#""[redacted]""#),
        "a redacted argument stays redacted on spans"
    );
    assert_eq!(call.attr("warden.argument.other"), None);
    let dump = format!("{spans:?}");
    assert!(
        !dump.contains("s3cret") && !dump.contains("unnamed-value"),
        "{dump}"
    );
    Ok(())
}

#[tokio::test]
async fn a_confirmation_wait_is_a_span_and_the_second_decision_too() -> Res<()> {
    let policy = r#"default allow

require-confirm confirm-wipe {
  tool "wipe"
  reason "wipe {args.target}?"
}
"#;
    let otlp = Receiver::start().await?;
    let mut p = RawProxy::start_initialized_with(
        policy,
        &["--otlp-endpoint", &otlp.url],
        "asker",
        json!({"elicitation": {}}),
    )
    .await?;
    p.send_line(
        call_with_meta(
            1,
            "wipe",
            json!({"target": "scratch"}),
            json!({"traceparent": client_traceparent()}),
        )
        .as_bytes(),
    )
    .await?;
    // warden asks; the person accepts after a moment.
    let question: Value = loop {
        let v: Value = serde_json::from_str(&p.next_line().await?)?;
        if v["method"] == "elicitation/create" {
            break v;
        }
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    let yes = json!({"jsonrpc": "2.0", "id": question["id"],
        "result": {"action": "accept", "content": {}}});
    p.send_line(yes.to_string().as_bytes()).await?;
    let done = answer(&mut p, 1).await?;
    assert!(done["result"]["isError"] != true, "{done}");
    p.close().await?;

    let spans = otlp.wait_for(5).await?;
    let call = one(&spans, "call span", |s| s.span.kind == SERVER);
    assert_eq!(call.trace_id(), CLIENT_TRACE);
    assert_eq!(
        call.attr("warden.confirmation").as_deref(),
        Some("accepted")
    );
    // The decision after the yes is what the call's span says.
    assert_eq!(call.attr("warden.outcome").as_deref(), Some("allow"));
    // Once each: the later decision replaced the earlier on the span.
    for key in [
        "warden.outcome",
        "warden.decision_id",
        "warden.confirmation",
    ] {
        let n = call
            .span
            .attributes
            .iter()
            .filter(|kv| kv.key == key)
            .count();
        assert_eq!(n, 1, "{key}: {:?}", call.span.attributes);
    }
    let decides: Vec<&Received> = children(&spans, call)
        .into_iter()
        .filter(|s| s.span.name == "warden.decide")
        .collect();
    assert_eq!(decides.len(), 2, "{spans:#?}");
    let outcomes: Vec<Option<String>> = decides.iter().map(|d| d.attr("warden.outcome")).collect();
    assert!(outcomes.contains(&Some("confirm".into())), "{outcomes:?}");
    assert!(outcomes.contains(&Some("allow".into())), "{outcomes:?}");
    let wait = one(&spans, "confirmation span", |s| {
        s.span.name == "warden.confirmation"
    });
    assert_eq!(wait.parent_id(), call.span_id());
    assert_eq!(
        wait.attr("warden.confirmation").as_deref(),
        Some("accepted")
    );
    assert!(
        wait.span.end_time_unix_nano - wait.span.start_time_unix_nano >= 50_000_000,
        "the span covers the wait: {wait:?}"
    );
    one(&spans, "upstream span", |s| {
        s.span.kind == CLIENT && s.parent_id() == call.span_id()
    });
    Ok(())
}

#[tokio::test]
async fn with_traces_off_a_clients_trace_context_passes_untouched() -> Res<()> {
    let mut p = RawProxy::start_initialized(POLICY, &[], "untraced").await?;
    p.send_line(
        call_with_meta(
            1,
            "echo_meta",
            json!({}),
            json!({"traceparent": client_traceparent(), "tracestate": "lab=7"}),
        )
        .as_bytes(),
    )
    .await?;
    let a = answer(&mut p, 1).await?;
    let meta = &a["result"]["structuredContent"]["meta"];
    assert_eq!(meta["traceparent"], client_traceparent(), "{a}");
    assert_eq!(meta["tracestate"], "lab=7", "{a}");
    p.close().await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_collector_fails_no_call() -> Res<()> {
    // Nothing listens on the port: spans are dropped, calls go on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut p = RawProxy::start_initialized(POLICY, &["--otlp-endpoint", &url], "c").await?;
    for id in 1..=3 {
        let a = p.call_tool(id, "echo_meta", json!({})).await?;
        assert!(a["result"]["isError"] != true, "{a}");
    }
    let (status, _dir) = p.close().await?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test]
async fn a_bad_endpoint_is_a_usage_error() -> Res<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "proxy",
            "--policies",
            "policies/baseline.policy",
            "--otlp-endpoint",
            "127.0.0.1:4318",
            "--",
            "true",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`127.0.0.1:4318` is not an OTLP/HTTP endpoint") && err.contains("help:"),
        "{err}"
    );
    Ok(())
}

/// A Streamable HTTP MCP server that records each POST's headers and body
/// and answers initialize, tools/list (one tool, `echo`) and tools/call.
async fn recording_upstream() -> Res<(String, Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>)> {
    type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>;
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                use axum::response::IntoResponse;
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                s.lock().unwrap().push((headers, msg.clone()));
                let Some(id) = msg
                    .get("id")
                    .cloned()
                    .filter(|_| msg.get("method").is_some())
                else {
                    return axum::http::StatusCode::ACCEPTED.into_response();
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "recorder", "version": "1"}}),
                    "tools/list" => json!({"tools": [{"name": "echo",
                    "inputSchema": {"type": "object"}}]}),
                    "tools/call" => json!({"content": [{"type": "text", "text": "ok"}]}),
                    _ => json!({}),
                };
                (
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", "rec-1"),
                    ],
                    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                )
                    .into_response()
            },
        )
        .delete(|| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/mcp"), seen))
}

#[tokio::test]
async fn an_http_upstream_gets_warden_s_span_in_the_traceparent_header_too() -> Res<()> {
    let otlp = Receiver::start().await?;
    let (up_url, seen) = recording_upstream().await?;
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(&policy, POLICY)?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--otlp-endpoint", &otlp.url, "--upstream", &up_url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
    for line in [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "c", "version": "1"}}})
        .to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
        call_with_meta(
            1,
            "echo",
            json!({}),
            json!({"traceparent": client_traceparent()}),
        ),
    ] {
        stdin.write_all(line.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
    }
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["id"] == 1 {
                return v;
            }
        }
        Value::Null
    })
    .await?;
    assert!(answered.get("result").is_some(), "{answered}");
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;

    let spans = otlp.wait_for(3).await?;
    let upstream = one(&spans, "upstream span", |s| s.span.kind == CLIENT);
    assert_eq!(upstream.trace_id(), CLIENT_TRACE);
    let expected = format!("00-{CLIENT_TRACE}-{}-01", upstream.span_id());
    let seen = seen.lock().unwrap();
    let (headers, body) = seen
        .iter()
        .find(|(_, b)| b["method"] == "tools/call")
        .ok_or("the upstream got the call")?;
    assert_eq!(headers["traceparent"], expected.as_str());
    assert_eq!(body["params"]["_meta"]["traceparent"], expected);
    // Requests without trace context get no trace header.
    let (list_headers, _) = seen
        .iter()
        .find(|(_, b)| b["method"] == "tools/list")
        .ok_or("the upstream was asked for its tools")?;
    assert!(list_headers.get("traceparent").is_none());
    Ok(())
}

/// POSTs `msg` to `url` (JSON answers only), with `headers`; the answer
/// (`None` for an accepted notification) and the session id warden gave.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    msg: &Value,
    headers: &[(&str, &str)],
) -> Res<(Option<Value>, Option<String>)> {
    let mut req = http
        .post(url)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(msg.to_string()).send().await?;
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.text().await?;
    let answer = (!body.is_empty())
        .then(|| serde_json::from_str(&body))
        .transpose()?;
    Ok((answer, session))
}

/// Opens an MCP session at `url`; its id.
async fn open_session(http: &reqwest::Client, url: &str) -> Res<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "http-agent", "version": "1"}}});
    let (answer, session) = post_json(http, url, &init, &[]).await?;
    assert!(answer.is_some_and(|a| a.get("result").is_some()));
    let session = session.ok_or("no session id")?;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post_json(http, url, &note, &[("mcp-session-id", &session)]).await?;
    Ok(session)
}

#[tokio::test]
async fn warden_serve_continues_the_trace_of_a_traceparent_header_on_both_routes() -> Res<()> {
    use tokio::io::AsyncBufReadExt;
    let otlp = Receiver::start().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("p.policy"), POLICY)?;
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
policies = "p.policy"
decision_log = "audit.jsonl"

[traces]
otlp_endpoint = "{}"

[[server]]
name = "up"
command = "{}"
args = ["proxy-test-upstream"]
"#,
            otlp.url,
            env!("CARGO_BIN_EXE_warden")
        ),
    )?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().ok_or("stderr")?).lines();
    let base = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("{line}");
            if let Some(rest) = line.strip_prefix("warden: serving at ") {
                return rest.split("/mcp").next().map(String::from);
            }
        }
        None
    })
    .await?
    .ok_or("warden serve did not say where it serves")?;
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("{line}");
        }
    });
    let http = reqwest::Client::builder().no_proxy().build()?;
    let header = client_traceparent();

    // Calls `call` in session `s` at `url` with the client's traceparent
    // header; the trace id the upstream got.
    let traced = |url: String, s: String, call: Value| {
        let (http, header) = (http.clone(), header.clone());
        async move {
            let headers = [("mcp-session-id", s.as_str()), ("traceparent", &header)];
            let (a, _) = post_json(&http, &url, &call, &headers).await?;
            Res::Ok(upstream_parent(&a.ok_or("answered")?).0)
        }
    };

    // The server's own route, trace context in the header only.
    let route = format!("{base}/servers/up/mcp");
    let s = open_session(&http, &route).await?;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo_meta", "arguments": {}}});
    assert_eq!(traced(route, s, call).await?, CLIENT_TRACE);

    // The federated endpoint: the header, and a `_meta` that contradicts
    // it, which wins (it is what every transport carries).
    let fed = format!("{base}/mcp");
    let s = open_session(&http, &fed).await?;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "up__echo_meta", "arguments": {}}});
    assert_eq!(traced(fed.clone(), s.clone(), call).await?, CLIENT_TRACE);
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "up__echo_meta", "arguments": {},
                   "_meta": {"traceparent": format!("00-{other_trace}-b7ad6b7169203331-01")}}});
    assert_eq!(traced(fed, s, call).await?, other_trace);

    // SIGTERM: the gateway drains and sends its last spans.
    let pid = child.id().ok_or("running")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    tokio::time::timeout(Duration::from_secs(20), child.wait()).await??;
    let spans = otlp.wait_for(9).await?;
    let calls: Vec<&Received> = spans.iter().filter(|s| s.span.kind == SERVER).collect();
    assert_eq!(calls.len(), 3, "{spans:#?}");
    let in_client_trace = calls
        .iter()
        .filter(|c| c.trace_id() == CLIENT_TRACE && c.parent_id() == CLIENT_SPAN)
        .count();
    assert_eq!(in_client_trace, 2, "{calls:#?}");
    assert!(calls.iter().any(|c| c.trace_id() == other_trace));
    for c in &calls {
        assert_eq!(c.attr("warden.server").as_deref(), Some("up"));
    }
    Ok(())
}
