//! The HTTP upstream link end to end: a proxy session against a small
//! recording Streamable HTTP server on 127.0.0.1.

use super::*;

/// A Streamable HTTP server that records the method and headers of
/// every request and answers initialize, notifications and tools/list.
async fn recording_server() -> (String, Arc<Mutex<Vec<(String, axum::http::HeaderMap)>>>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;
    let seen: Seen = Arc::default();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: String| async move {
            s1.lock().unwrap().push(("POST".into(), headers));
            let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let Some(id) = msg
                .get("id")
                .cloned()
                .filter(|_| msg.get("method").is_some())
            else {
                return StatusCode::ACCEPTED.into_response();
            };
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => serde_json::json!({"protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "recorder", "version": "1"}}),
                "tools/list" => serde_json::json!({"tools": []}),
                _ => serde_json::json!({}),
            };
            (
                [
                    ("content-type", "application/json"),
                    ("mcp-session-id", "up-1"),
                ],
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            )
                .into_response()
        })
        .get(move |headers: HeaderMap| async move {
            s2.lock().unwrap().push(("GET".into(), headers));
            StatusCode::METHOD_NOT_ALLOWED
        })
        .delete(move |headers: HeaderMap| async move {
            s3.lock().unwrap().push(("DELETE".into(), headers));
            StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test]
async fn every_request_to_the_upstream_carries_the_configured_headers() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (url, seen) = recording_server().await;
    let mut cfg = crate::ProxyConfig::new(crate::Upstream::Url(url), "alice");
    cfg.upstream_headers = vec![
        ("Authorization".into(), "Bearer up-t0ken".into()),
        ("X-Tenant".into(), "lab".into()),
    ];
    let mut sources = warden_lang::Sources::new();
    sources.add("t.policy", "default deny\n");
    let compiled = warden_lang::compile_policy_set(&sources).expect("compiles");
    let engine = Arc::new(warden_engine::Engine::new(
        warden_engine::PolicyBundle::new(compiled.policy_set, "v".into()),
        warden_engine::EngineOptions::default(),
    ));
    let log = Arc::new(warden_engine::DecisionLog::to_writer(std::io::sink()));
    let (_reload, reloads) = mpsc::unbounded_channel();
    let (client, proxy_side) = tokio::io::duplex(1 << 16);
    let (proxy_in, proxy_out) = tokio::io::split(proxy_side);
    let session = tokio::spawn(crate::serve(cfg, engine, log, reloads, proxy_in, proxy_out));
    let (client_in, mut client_out) = tokio::io::split(client);
    let mut lines = tokio::io::BufReader::new(client_in).lines();
    for msg in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ] {
        client_out.write_all(msg.as_bytes()).await.expect("written");
        client_out.write_all(b"\n").await.expect("written");
    }
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).expect("JSON");
            if v["id"] == 2 {
                return v;
            }
        }
        panic!("the proxy closed before answering tools/list");
    })
    .await
    .expect("tools/list answered in time");
    assert!(answered.get("result").is_some(), "{answered}");
    drop(client_out);
    drop(lines);
    tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("the session ends")
        .expect("no panic")
        .expect("no error");
    let seen = seen.lock().unwrap();
    let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        methods.iter().filter(|m| **m == "POST").count() >= 3 && methods.contains(&"DELETE"),
        "initialize, initialized and tools/list POSTed and the session deleted: {methods:?}"
    );
    for (method, headers) in seen.iter() {
        assert_eq!(headers["authorization"], "Bearer up-t0ken", "{method}");
        assert_eq!(headers["x-tenant"], "lab", "{method}");
        assert_eq!(
            headers.get_all("authorization").iter().count(),
            1,
            "{method}"
        );
    }
    // Warden's own headers still go as warden sets them.
    let (_, tools_list) = seen
        .iter()
        .filter(|(m, _)| m == "POST")
        .nth(2)
        .expect("third POST");
    assert_eq!(tools_list["mcp-session-id"], "up-1");
    assert_eq!(tools_list["content-type"], "application/json");
}
