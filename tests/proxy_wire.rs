//! `warden proxy` on stdio, driven with raw JSON-RPC lines so that tests can
//! send what no SDK client would: malformed JSON, invalid UTF-8, oversize
//! messages, unknown methods and fields, the stateless 2026-07-28 flow. The
//! upstream is warden's raw test server (`warden proxy-test-upstream`),
//! which can crash on request and echoes what it received.

mod common;

use common::raw_proxy::RawProxy;
use serde_json::{Value, json};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const POLICY: &str = r#"
default allow

require-confirm confirm-wipe {
  tool "wipe"
  when via agent
  reason "wipe everything on {server}?"
}
"#;

struct Wire {
    proxy: RawProxy,
}

impl Wire {
    async fn start(extra: &[&str]) -> Result<Wire, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Wire {
            proxy: RawProxy::start(POLICY, None, extra).await?,
        })
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> TestResult {
        self.proxy.send_line(bytes).await
    }

    async fn send(&mut self, msg: Value) -> TestResult {
        self.send_raw(msg.to_string().as_bytes()).await
    }

    async fn next(&mut self) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let line = self.proxy.next_line().await?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Reads until the response to `id`; other messages are returned too.
    async fn response(
        &mut self,
        id: Value,
    ) -> Result<(Value, Vec<Value>), Box<dyn std::error::Error + Send + Sync>> {
        let mut others = Vec::new();
        loop {
            let msg = self.next().await?;
            if msg.get("id") == Some(&id) && msg.get("method").is_none() {
                return Ok((msg, others));
            }
            others.push(msg);
        }
    }

    async fn request(
        &mut self,
        id: Value,
        method: &str,
        params: Value,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        Ok(self.response(id).await?.0)
    }

    async fn initialize(
        &mut self,
        capabilities: Value,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let r = self
            .request(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": capabilities,
                       "clientInfo": {"name": "wire-agent", "version": "1"}}),
            )
            .await?;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(r)
    }

    fn audit(&self) -> Vec<Value> {
        common::merge_outcomes(self.proxy.audit_lines())
    }
}

#[tokio::test]
async fn unknown_fields_methods_and_capabilities_pass_through_unchanged() -> TestResult {
    let mut w = Wire::start(&[]).await?;
    let init = w.initialize(json!({})).await?;
    assert_eq!(
        init["result"]["x-unknown-field"],
        json!([1, 2, 3]),
        "{init:#}"
    );
    assert_eq!(
        init["result"]["capabilities"]["x-experimental-thing"],
        json!({"on": true})
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "proxy-test-upstream");

    let echoed = w
        .request(
            json!("a-string-id"),
            "x/echo",
            json!({"nested": {"k": [null, 1.5]}, "_meta": {"vendor/x": 1}}),
        )
        .await?;
    assert_eq!(
        echoed["result"]["echo"]["nested"],
        json!({"k": [null, 1.5]}),
        "{echoed:#}"
    );
    assert_eq!(
        echoed["result"]["echo"]["_meta"]["vendor/x"], 1,
        "{echoed:#}"
    );

    let listed = w.request(json!(2), "tools/list", json!({})).await?;
    let echo_meta = listed["result"]["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "echo_meta"))
        .cloned()
        .expect("echo_meta listed");
    assert_eq!(
        echo_meta["x-vendor"],
        json!({"kept": true}),
        "{echo_meta:#}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_input_gets_json_rpc_errors_and_the_session_goes_on() -> TestResult {
    let mut w = Wire::start(&["--max-message-bytes", "2048"]).await?;
    w.initialize(json!({})).await?;

    w.send_raw(b"{this is not json").await?;
    let e = w.next().await?;
    assert_eq!(e["error"]["code"], -32700, "{e:#}");
    assert_eq!(e["id"], Value::Null);

    w.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"x\":\"\xff\xfe\"}")
        .await?;
    let e = w.next().await?;
    assert_eq!(
        e["error"]["code"], -32700,
        "invalid UTF-8 is a parse error: {e:#}"
    );

    w.send(json!({"jsonrpc": "2.0", "id": 6})).await?;
    let e = w.next().await?;
    assert_eq!(e["error"]["code"], -32600, "{e:#}");
    assert_eq!(e["id"], 6);

    let big = "x".repeat(10_000);
    w.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                  "params": {"name": "echo_meta", "arguments": {"big": big}}}))
        .await?;
    let e = w.next().await?;
    assert_eq!(e["id"], 7, "the oversize request's id is kept: {e:#}");
    assert_eq!(e["error"]["code"], -32600, "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("2048"),
        "{e:#}"
    );

    let ok = w
        .request(
            json!(8),
            "tools/call",
            json!({"name": "echo_meta", "arguments": {"small": true}}),
        )
        .await?;
    assert_eq!(
        ok["result"]["structuredContent"]["arguments"],
        json!({"small": true}),
        "{ok:#}"
    );
    assert_eq!(w.audit().len(), 1, "only the decided call is logged");
    Ok(())
}

#[tokio::test]
async fn an_upstream_crash_answers_the_call_in_flight_and_the_upstream_comes_back() -> TestResult {
    let mut w = Wire::start(&[]).await?;
    let init = w.initialize(json!({})).await?;
    let first_pid = init["result"]["serverInfo"]["pid"].clone();

    let crashed = w
        .request(
            json!(1),
            "tools/call",
            json!({"name": "crash", "arguments": {}}),
        )
        .await?;
    assert_eq!(crashed["error"]["code"], -32001, "{crashed:#}");
    let message = crashed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("exited"), "{message}");

    // Warden restarts the upstream and replays the client's initialize.
    let mut answer = Value::Null;
    for attempt in 0..40 {
        answer = w
            .request(json!(100 + attempt), "x/echo", json!({"after": "crash"}))
            .await?;
        if answer.get("result").is_some() {
            break;
        }
        assert_eq!(
            answer["error"]["code"], -32001,
            "while restarting: {answer:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer["result"]["echo"]["after"], "crash", "{answer:#}");
    assert_ne!(
        answer["result"]["pid"], first_pid,
        "a new upstream process answers"
    );

    let audit = w.audit();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["upstream"]["ok"], false, "{:#}", audit[0]);
    Ok(())
}

#[tokio::test]
async fn a_2026_07_28_client_confirms_through_input_required() -> TestResult {
    // No initialize in 2026-07-28, so no serverInfo to name the upstream by.
    let mut w = Wire::start(&["--name", "proxy-test-upstream"]).await?;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "stateless-agent", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    });
    let asked = w
        .request(
            json!(1),
            "tools/call",
            json!({"name": "wipe", "arguments": {"all": true}, "_meta": meta}),
        )
        .await?;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked:#}");
    let question = &result["inputRequests"]["warden/confirm"];
    assert_eq!(question["method"], "elicitation/create", "{asked:#}");
    assert!(
        question["params"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("wipe everything on proxy-test-upstream?"),
        "{asked:#}"
    );
    let state = result["requestState"].clone();

    let done = w
        .request(
            json!(2),
            "tools/call",
            json!({"name": "wipe", "arguments": {"all": true}, "_meta": meta,
                   "requestState": state, "inputResponses": {"warden/confirm": {"action": "accept"}}}),
        )
        .await?;
    assert_eq!(
        done["result"]["structuredContent"]["tool"], "wipe",
        "{done:#}"
    );
    assert_eq!(
        done["result"]["structuredContent"]["meta"]["io.warden/provenance"]["confirmed"],
        json!(["confirm-wipe"]),
        "{done:#}"
    );

    // The same state cannot be used twice.
    let replayed = w
        .request(
            json!(3),
            "tools/call",
            json!({"name": "wipe", "arguments": {"all": true}, "_meta": meta,
                   "requestState": state, "inputResponses": {"warden/confirm": {"action": "accept"}}}),
        )
        .await?;
    assert!(replayed.get("error").is_some(), "{replayed:#}");

    // A decline denies.
    let asked = w
        .request(
            json!(4),
            "tools/call",
            json!({"name": "wipe", "arguments": {}, "_meta": meta}),
        )
        .await?;
    let state = asked["result"]["requestState"].clone();
    let declined = w
        .request(
            json!(5),
            "tools/call",
            json!({"name": "wipe", "arguments": {}, "_meta": meta,
                   "requestState": state, "inputResponses": {"warden/confirm": {"action": "decline"}}}),
        )
        .await?;
    assert_eq!(declined["result"]["isError"], true, "{declined:#}");
    assert_eq!(
        declined["result"]["_meta"]["warden/decision"]["rules"],
        json!(["confirm-wipe"])
    );
    Ok(())
}

#[tokio::test]
async fn a_confirmation_the_person_does_not_answer_times_out_as_a_denial() -> TestResult {
    let mut w = Wire::start(&["--confirm-timeout", "1"]).await?;
    w.initialize(json!({"elicitation": {}})).await?;
    w.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                  "params": {"name": "wipe", "arguments": {}}}))
        .await?;
    let (answer, others) = w.response(json!(1)).await?;
    let elicit = others
        .iter()
        .find(|m| m["method"] == "elicitation/create")
        .expect("warden asked the person");
    assert!(
        elicit["params"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("wipe everything"),
        "{elicit:#}"
    );
    assert!(
        others
            .iter()
            .any(|m| m["method"] == "notifications/cancelled"
                && m["params"]["requestId"] == elicit["id"]),
        "the unanswered question is withdrawn: {others:#?}"
    );
    assert_eq!(answer["result"]["isError"], true, "{answer:#}");
    let reason = answer["result"]["_meta"]["warden/decision"]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(reason.contains("did not answer"), "{reason}");
    Ok(())
}
