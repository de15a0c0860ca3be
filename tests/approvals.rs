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

fn decision_lines(dir: &std::path::Path) -> Res<Vec<Value>> {
    Ok(std::fs::read_to_string(dir.join("audit.jsonl"))?
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l.get("decision").is_some())
        .collect())
}

#[tokio::test]
async fn a_grant_for_5_calls_lets_exactly_5_through_then_asks_again() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  grant for 5 calls
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let mut asked = Vec::new();
    for id in 1..=7 {
        let (a, n) = call_answering(&mut p, id, "echo_meta", json!({"run": "x"}), "accept").await?;
        assert!(a["result"]["isError"] != true, "{a}");
        asked.push(n);
    }
    // The yes of call 1 covers calls 1-5; call 6 asks, and its yes covers 6-10.
    assert_eq!(asked, vec![1, 0, 0, 0, 0, 1, 0], "asked per call");
    let (_, dir) = p.close().await?;
    let lines = decision_lines(dir.path())?;
    let grants: Vec<&Value> = lines.iter().map(|l| &l["grants"][0]).collect();
    assert_eq!(grants[0]["new"], true, "{lines:#?}");
    let first = grants[0]["grant"].as_str().ok_or("a grant id")?;
    assert!(first.starts_with("grant-") && first.len() == 38, "{first}");
    for g in &grants[1..5] {
        assert_eq!(g["grant"], first, "calls 2-5 use the first grant");
        assert!(g.get("new").is_none());
    }
    assert_eq!(grants[5]["new"], true);
    assert_ne!(grants[5]["grant"], first);
    assert_eq!(
        lines[2]["confirmed"],
        json!(["runs"]),
        "a granted call is confirmed"
    );
    Ok(())
}

#[tokio::test]
async fn a_grant_binds_to_the_arguments_or_to_those_within_names() -> Res<()> {
    let policy = r#"default allow

require-confirm exact {
  tool "echo_meta"
  when args.kind == "exact"
  grant for 30m
}

require-confirm per-sample {
  tool "echo_meta"
  when args.kind == "sample"
  grant for 30m within args.sample_id
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let calls = [
        // Exact arguments: the same ones in another order are the same call.
        (json!({"kind": "exact", "a": 1, "b": [1, 2]}), 1),
        (json!({"b": [1, 2], "a": 1, "kind": "exact"}), 0),
        (json!({"kind": "exact", "a": 2, "b": [1, 2]}), 1),
        (json!({"kind": "exact", "a": 1.0, "b": [1, 2]}), 1),
        // Within the sample: another pipeline on S1 is covered, S2 is not,
        // and an absent sample id is not any sample.
        (
            json!({"kind": "sample", "sample_id": "S1", "pipeline": "qc"}),
            1,
        ),
        (
            json!({"kind": "sample", "sample_id": "S1", "pipeline": "wgs"}),
            0,
        ),
        (
            json!({"kind": "sample", "sample_id": "S2", "pipeline": "qc"}),
            1,
        ),
        (json!({"kind": "sample", "pipeline": "qc"}), 1),
    ];
    for (args, expected) in calls {
        let (a, n) = call_answering(&mut p, rand_id(), "echo_meta", args.clone(), "accept").await?;
        assert!(a["result"]["isError"] != true, "{a}");
        assert_eq!(n, expected, "asked for {args}");
    }
    p.close().await?;
    Ok(())
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(100);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn a_declined_confirmation_creates_no_grant() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  grant for 30m
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let (a, n) = call_answering(&mut p, 1, "echo_meta", json!({}), "decline").await?;
    assert_eq!((a["result"]["isError"].clone(), n), (json!(true), 1), "{a}");
    let (a, n) = call_answering(&mut p, 2, "echo_meta", json!({}), "accept").await?;
    assert!(a["result"]["isError"] != true && n == 1, "asked again: {a}");
    let (_, n) = call_answering(&mut p, 3, "echo_meta", json!({}), "accept").await?;
    assert_eq!(n, 0, "the yes of call 2 covers call 3");
    p.close().await?;
    Ok(())
}

#[tokio::test]
async fn grants_live_in_the_state_file_across_processes_per_user_and_session() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  when args.scope == "time"
  grant for 30m
}

require-confirm in-session {
  tool "echo_meta"
  when args.scope == "session"
  grant for session
}
"#;
    let state_dir = tempfile::tempdir()?;
    let state = state_dir.path().join("state.sqlite");
    let state = state.to_str().ok_or("utf-8 path")?;
    let time = json!({"scope": "time"});
    let session = json!({"scope": "session"});

    let mut a = asking_client(policy, &["--state", state, "--user", "alice"]).await?;
    assert_eq!(
        call_answering(&mut a, 1, "echo_meta", time.clone(), "accept")
            .await?
            .1,
        1
    );
    assert_eq!(
        call_answering(&mut a, 2, "echo_meta", session.clone(), "accept")
            .await?
            .1,
        1
    );
    assert_eq!(
        call_answering(&mut a, 3, "echo_meta", session.clone(), "accept")
            .await?
            .1,
        0
    );
    a.close().await?;

    // Another process on the same file, as alice: the 30-minute grant
    // holds, the session grant does not (a new session).
    let mut b = asking_client(policy, &["--state", state, "--user", "alice"]).await?;
    assert_eq!(
        call_answering(&mut b, 1, "echo_meta", time.clone(), "accept")
            .await?
            .1,
        0
    );
    assert_eq!(
        call_answering(&mut b, 2, "echo_meta", session.clone(), "accept")
            .await?
            .1,
        1
    );
    b.close().await?;

    // Bob has no grant of alice's.
    let mut c = asking_client(policy, &["--state", state, "--user", "bob"]).await?;
    assert_eq!(
        call_answering(&mut c, 1, "echo_meta", time, "accept")
            .await?
            .1,
        1
    );
    c.close().await?;
    Ok(())
}
