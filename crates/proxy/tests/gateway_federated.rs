//! The federated `/mcp` with real relays and a real upstream (the
//! testkit), read as the client sees it on the SSE stream of its call: the
//! upstream's question to the client reaches it under an id of warden's and
//! the answer gets back to that upstream; progress keeps the client's
//! token; a 2026-07-28 call without a session is routed too.

mod gateway_support;

use gateway_support::{open_session, start, write_policies};
use serde_json::{Value, json};
use std::time::Duration;

/// Reads SSE events from `resp` until `done` says the last one came.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // the priming event
                }
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("the stream moves")
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn stream(c: &reqwest::Client, url: &str, session: &str, body: Value) -> Events {
    let resp = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    Events {
        resp,
        buf: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_progress_and_sessionless_calls_cross_the_federation() {
    let dir = tempfile::tempdir().unwrap();
    write_policies(dir.path());
    let config = format!(
        "listen = \"127.0.0.1:0\"\npolicies = \"policies\"\n\n[[server]]\nname = \"kit\"\ncommand = \"{}\"\n\n[[server]]\nname = \"other\"\ncommand = \"{}\"\n",
        gateway_support::testkit(),
        gateway_support::testkit()
    );
    let gw = start(dir.path(), &config, None, "http").await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/mcp", gw.base);
    // A client that can answer elicitations.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "fed-test", "version": "1"}}});
    let resp = gateway_support::post(&c, &url, None, init).await;
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    gateway_support::post(&c, &url, Some(&session), note).await;

    // The upstream asks the client during the call.
    let mut events = stream(
        &c,
        &url,
        &session,
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "kit__ask_client", "arguments": {}}}),
    )
    .await;
    let question = events.next().await.expect("the question");
    assert_eq!(question["method"], "elicitation/create", "{question}");
    let qid = question["id"].clone();
    assert!(
        qid.as_str().is_some_and(|s| s.len() > 32),
        "warden's own random id, not the upstream's: {qid}"
    );
    let answer = json!({"jsonrpc": "2.0", "id": qid,
        "result": {"action": "accept", "content": {"colour": "blue"}}});
    let r = gateway_support::post(&c, &url, Some(&session), answer).await;
    assert_eq!(r.status(), 202);
    let result = events.next().await.expect("the call's answer");
    assert_eq!(result["id"], 5);
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("blue"), "the upstream got the answer: {text}");

    // Progress comes back under the client's own token.
    let mut events = stream(
        &c,
        &url,
        &session,
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
            "params": {"name": "other__slow", "arguments": {"ms": 300, "progress_every_ms": 100},
                "_meta": {"progressToken": "mine-1"}}}),
    )
    .await;
    let mut progress = 0;
    loop {
        let e = events.next().await.expect("events until the answer");
        if e.get("method") == Some(&json!("notifications/progress")) {
            assert_eq!(e["params"]["progressToken"], "mine-1", "{e}");
            progress += 1;
            continue;
        }
        assert_eq!(e["id"], 6, "{e}");
        break;
    }
    assert!(progress >= 2, "{progress} progress notifications");

    // A 2026-07-28 call: no session, versions in the header and _meta.
    let (_, _) = open_session(&c, &url).await; // sessions and sessionless side by side
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "other__echo_meta", "arguments": {"x": 1},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = c
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "other__echo_meta")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = Events {
        resp,
        buf: String::new(),
    };
    let answer = events.next().await.expect("the sessionless answer");
    assert_eq!(answer["id"], 9, "{answer}");
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("\"x\":1"), "{text}");

    let events = gw.stop().await;
    assert!(events.contains("Drained"), "{events}");
}
