//! Approvals (issue 16) through the real binary: a rule whose approver is
//! someone else (`by group`) is refused with the truth even for a client
//! that could ask its person (no one else can approve yet); grants let
//! later calls through without asking again, bound to the caller, the
//! arguments (or those `within` names) and their scope.

mod common;

use common::Res;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};

/// `warden proxy` with `policy`, handshaken as a client that declares
/// form elicitation.
async fn asking_client(policy: &str, extra: &[&str]) -> Res<RawProxy> {
    let mut p = RawProxy::start(policy, None, extra).await?;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                   "clientInfo": {"name": "asker", "version": "1"}}});
    p.send_line(init.to_string().as_bytes()).await?;
    p.next_line().await?;
    p.send_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await?;
    Ok(p)
}

/// Sends a tools/call; answers each elicitation warden asks with `answer`
/// (counting them); returns the call's answer and how many were asked.
async fn call_answering(
    p: &mut RawProxy,
    id: u64,
    tool: &str,
    args: Value,
    answer: &str,
) -> Res<(Value, usize)> {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    p.send_line(msg.to_string().as_bytes()).await?;
    let mut asked = 0;
    loop {
        let v: Value = serde_json::from_str(&p.next_line().await?)?;
        if v["method"] == "elicitation/create" {
            asked += 1;
            let reply = json!({"jsonrpc": "2.0", "id": v["id"],
                "result": {"action": answer, "content": {}}});
            p.send_line(reply.to_string().as_bytes()).await?;
        } else if v["id"] == id {
            return Ok((v, asked));
        }
    }
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_rule_another_person_approves_is_refused_without_asking_the_caller() -> Res<()> {
    let policy = r#"default allow

require-confirm big-runs {
  tool "echo_meta"
  when via agent
  by group "lab-leads"
  grant for 30m
}
"#;
    let mut p = asking_client(policy, &["--group", "lab-leads"]).await?;
    let (a, asked) = call_answering(&mut p, 1, "echo_meta", json!({"run": 1}), "accept").await?;
    assert_eq!(
        asked, 0,
        "the caller is not asked: their yes is not the approval"
    );
    assert_eq!(a["result"]["isError"], true, "{a}");
    let t = text(&a);
    assert!(
        t.contains("needs the approval of a member of group `lab-leads`")
            && t.contains("someone other than the caller"),
        "{t}"
    );
    let (_, dir) = p.close().await?;
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl"))?;
    assert!(log.contains(r#""decision":"deny""#), "{log}");
    assert!(
        !log.contains(r#""event":"outcome""#),
        "never forwarded: {log}"
    );
    Ok(())
}
