//! `instances = "shared"`: one upstream process for every session of a
//! server, on both routes, with sessions kept apart on it (the testkit
//! upstream reports its pid and echoes what it got), restarted for all of
//! them when it crashes.

mod gateway_support;

use gateway_support::{call, open_session, start, write_policies};
use serde_json::{Value, json};
use std::time::Duration;

fn pid_of(answer: &Value) -> u64 {
    answer["result"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_share_one_process_and_stay_apart_on_it() {
    let dir = tempfile::tempdir().unwrap();
    write_policies(dir.path());
    let config = format!(
        "listen = \"127.0.0.1:0\"\npolicies = \"policies\"\n\n[[server]]\nname = \"kit\"\ncommand = \"{}\"\ninstances = \"shared\"\n\n[[server]]\nname = \"solo\"\ncommand = \"{}\"\n",
        gateway_support::testkit(),
        gateway_support::testkit()
    );
    let gw = start(dir.path(), &config, None, "http").await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let kit = format!("{}/servers/kit/mcp", gw.base);
    let solo = format!("{}/servers/solo/mcp", gw.base);

    let (a, init_a) = open_session(&c, &kit).await;
    let (b, _) = open_session(&c, &kit).await;
    assert!(init_a["result"]["serverInfo"].is_object(), "{init_a}");
    let echo = |id: u64, tag: &str| json!({"jsonrpc": "2.0", "id": id, "method": "x/echo", "params": {"tag": tag}});
    let from_a = call(&c, &kit, &a, echo(7, "a")).await;
    let from_b = call(&c, &kit, &b, echo(7, "b")).await;
    assert_eq!(
        pid_of(&from_a),
        pid_of(&from_b),
        "one process for both sessions"
    );
    // Same client id in both sessions, each answer to its own asker.
    assert_eq!(from_a["id"], 7);
    assert_eq!(from_a["result"]["echo"]["tag"], "a");
    assert_eq!(from_b["result"]["echo"]["tag"], "b");

    // A per-session server gets a process per session, as before.
    let (s1, _) = open_session(&c, &solo).await;
    let (s2, _) = open_session(&c, &solo).await;
    let p1 = pid_of(&call(&c, &solo, &s1, echo(1, "x")).await);
    let p2 = pid_of(&call(&c, &solo, &s2, echo(1, "x")).await);
    assert_ne!(p1, p2);

    // Concurrent calls with the same id from two sessions.
    let slow = |ms: u64| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"ms": ms}}})
    };
    let (ra, rb) = tokio::join!(call(&c, &kit, &a, slow(300)), call(&c, &kit, &b, slow(100)));
    assert_eq!(ra["id"], 9);
    assert_eq!(rb["id"], 9);
    let text = |r: &Value| {
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(text(&ra).contains("300"), "{ra}");
    assert!(text(&rb).contains("100"), "{rb}");

    // A question of the process to a client cannot be routed to one
    // session: warden answers it with an error saying why.
    let asked = call(
        &c,
        &kit,
        &a,
        json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call",
            "params": {"name": "ask_client", "arguments": {}}}),
    )
    .await;
    let answer = text(&asked);
    assert!(
        answer.contains("-32601") && answer.contains("instances = \\\"shared\\\""),
        "{asked}"
    );

    // The federated route reaches the same process.
    let fed = format!("{}/mcp", gw.base);
    let (f, _) = open_session(&c, &fed).await;
    let listed = call(
        &c,
        &fed,
        &f,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"kit__slow") && names.contains(&"solo__slow"),
        "{names:?}"
    );
    let via_fed = call(
        &c,
        &fed,
        &f,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "kit__slow", "arguments": {"ms": 10}}}),
    )
    .await;
    assert!(text(&via_fed).contains("10"), "{via_fed}");

    // The process is killed from outside, as a crash would end it: every
    // session's call in flight fails, the process is restarted once, and
    // both sessions go on with the new one.
    let before = pid_of(&call(&c, &kit, &a, echo(11, "a")).await);
    kill_process(before);
    let mut after = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = call(&c, &kit, &a, echo(12, "a")).await;
        if let Some(p) = r["result"]["pid"].as_u64() {
            after = Some(p);
            break;
        }
        assert_eq!(
            r["error"]["code"], -32001,
            "unavailable while restarting: {r}"
        );
    }
    let after = after.expect("the shared process came back");
    assert_ne!(after, before);
    let again_b = call(&c, &kit, &b, echo(13, "b")).await;
    assert_eq!(
        pid_of(&again_b),
        after,
        "the other session is on the new process too"
    );

    let events = gw.stop().await;
    assert!(events.contains("Drained"), "{events}");
}

/// Kills the shared process from outside, as a crash would end it.
fn kill_process(pid: u64) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
