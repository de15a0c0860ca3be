//! Tool integrity (issue 17) through the real binary: session labels
//! against exfiltration chains over stdio and Streamable HTTP.

mod common;

use common::Res;
use common::http_warden::HttpWarden;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};

/// The test upstream's `echo_meta` is read-only and closed-world; `slow`
/// gives no `openWorldHint`, so it is open-world (MCP's default).
const LABELS: &str = r#"default allow

label read-private {
  tool "echo_meta"
}

deny exfiltration {
  when session has label read-private and tool.open_world
  reason "this session read private data"
}
"#;

fn refused(answer: &Value) -> bool {
    answer["result"]["isError"] == true
        && answer["result"]["_meta"]["warden/decision"]["decision"] == "deny"
}

#[tokio::test]
async fn on_stdio_a_session_that_read_private_data_is_refused_an_open_world_tool() -> Res<()> {
    let mut p = RawProxy::start_initialized(LABELS, &[], "agent").await?;
    let before = p.call_tool(1, "slow", json!({"ms": 1})).await?;
    assert!(!refused(&before), "nothing read yet: {before}");
    let read = p.call_tool(2, "echo_meta", json!({})).await?;
    assert!(!refused(&read), "{read}");
    let after = p.call_tool(3, "slow", json!({"ms": 1})).await?;
    assert!(refused(&after), "{after}");
    assert_eq!(
        after["result"]["_meta"]["warden/decision"]["rules"],
        json!(["exfiltration"])
    );
    // A closed-world tool stays open.
    let again = p.call_tool(4, "echo_meta", json!({})).await?;
    assert!(!refused(&again), "{again}");
    let lines: Vec<Value> = p
        .audit_lines()
        .into_iter()
        .filter(|l| l.get("decision").is_some())
        .collect();
    assert_eq!(lines[1]["tool"], "echo_meta");
    assert_eq!(
        lines[1]["labels"],
        json!(["read-private"]),
        "{:?}",
        lines[1]
    );
    assert!(lines[0].get("labels").is_none(), "{:?}", lines[0]);
    p.close().await?;

    // A new process is a new session: not labelled.
    let mut fresh = RawProxy::start_initialized(LABELS, &[], "agent").await?;
    let first = fresh.call_tool(1, "slow", json!({"ms": 1})).await?;
    assert!(!refused(&first), "{first}");
    fresh.close().await?;
    Ok(())
}

#[tokio::test]
async fn over_http_the_label_is_the_sessions_and_a_fresh_session_is_not_refused() -> Res<()> {
    let w = HttpWarden::start(LABELS, &[]).await?;
    let http = reqwest::Client::new();
    let slow = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "slow", "arguments": {"ms": 1}}})
    };
    let a = w.session(&http, None).await?;
    let b = w.session(&http, None).await?;
    let read = w.call(&http, &a, 1, json!({})).await?;
    assert!(!refused(&read), "{read}");
    let out: Value = w
        .post(&http, Some(&a), None, &slow(2))
        .await?
        .json()
        .await?;
    assert!(refused(&out), "{out}");
    let other: Value = w
        .post(&http, Some(&b), None, &slow(3))
        .await?
        .json()
        .await?;
    assert!(!refused(&other), "another session: {other}");
    Ok(())
}

/// The test upstream says `echo_meta` is read-only and not destructive.
const TRUSTING: &str = "default allow\n\ndeny no-destructive-tools {\n  tool \"echo_meta\"\n  when tool.destructive\n  reason \"no destructive tools\"\n}\n";

#[tokio::test]
async fn a_tool_the_upstream_calls_read_only_is_governed_as_destructive_when_the_operator_says_so()
-> Res<()> {
    // Trusting the upstream's claim, the call goes through.
    let mut p = RawProxy::start_initialized(TRUSTING, &[], "agent").await?;
    let trusted = p.call_tool(1, "echo_meta", json!({})).await?;
    assert!(!refused(&trusted), "{trusted}");
    p.close().await?;

    let stated = TRUSTING.replace(
        "default allow\n",
        "default allow\n\ntool \"echo_*\" is destructive\n",
    );
    let mut p = RawProxy::start_initialized(&stated, &[], "agent").await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    p.send_line(list.to_string().as_bytes()).await?;
    let listed: Value = serde_json::from_str(&p.next_line().await?)?;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .ok_or("tools")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(!names.contains(&"echo_meta"), "hidden: {names:?}");
    let call = p.call_tool(2, "echo_meta", json!({})).await?;
    assert!(refused(&call), "{call}");
    assert_eq!(
        call["result"]["_meta"]["warden/decision"]["rules"],
        json!(["no-destructive-tools"])
    );
    let line = p
        .audit_lines()
        .into_iter()
        .find(|l| l["tool"] == "echo_meta" && l.get("decision").is_some())
        .ok_or("a decision line")?;
    // The upstream's claim and the operator's word, both on the line.
    assert_eq!(line["annotations"]["readOnlyHint"], true, "{line}");
    assert_eq!(
        line["stated_annotations"],
        json!({"destructiveHint": true}),
        "{line}"
    );
    p.close().await?;
    Ok(())
}
