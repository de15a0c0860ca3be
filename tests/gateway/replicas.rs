//! Replicas of `warden serve` sharing caps and rates in a real Redis (part
//! of tests/gateway.rs): 30 calls for one user at once, spread over 3
//! replicas, take exactly the cap; a replica killed with SIGKILL mid-call
//! neither loses nor doubles the count; a Redis that is down denies only
//! the calls that need a counter, naming the store, `/readyz` says so,
//! and warden reconnects when it is back; a record an agent creates
//! through one replica is `created by agent` on another (PostgreSQL); a
//! 2025-era session's request that reaches another replica is told why;
//! a 2026-07-28 confirmation asked by one replica is answered through
//! another with the same `confirm_key`, once.

use crate::common::{assert_allowed, call, text};
use crate::harness::{DemoHttp, Gateway, Res, kill9};
use crate::postgres_server::PostgresServer;
use crate::redis_server::RedisServer;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn replica(redis: &RedisServer) -> Res<Gateway> {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/policies-replicas");
    Gateway::start(
        "replicas.toml",
        &[
            ("REDIS_URL", &redis.url()),
            ("GATEWAY_POLICIES", policies.to_str().ok_or("path")?),
        ],
    )
    .await
}

fn denied(r: &rmcp::model::CallToolResult) -> bool {
    r.is_error == Some(true)
}

fn count(log: &[Value], decision: &str, tool: &str) -> usize {
    log.iter()
        .filter(|l| l["decision"] == decision && l["tool"] == tool)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_calls_spread_over_three_replicas_take_exactly_the_cap() -> Res<()> {
    let redis = RedisServer::start();
    let replicas = [
        replica(&redis).await?,
        replica(&redis).await?,
        replica(&redis).await?,
    ];
    let mut clients = Vec::new();
    for i in 0..30 {
        clients.push(Arc::new(replicas[i % 3].rmcp("/servers/kit/mcp").await?));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let mut calls = tokio::task::JoinSet::new();
    for (i, c) in clients.iter().enumerate() {
        let (c, barrier) = (Arc::clone(c), Arc::clone(&barrier));
        calls.spawn(async move {
            barrier.wait().await;
            (i, call(&c, "echo_meta", json!({ "i": i })).await)
        });
    }
    let mut allowed = 0;
    while let Some(joined) = calls.join_next().await {
        let (i, r) = joined?;
        let r = r.map_err(|e| format!("call {i}: {e}"))?;
        if denied(&r) {
            assert!(
                text(&r).contains("at most 3 echo_meta calls in a row"),
                "call {i}: {}",
                text(&r)
            );
        } else {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "a cap of 3 per user across 3 replicas");
    let logs: Vec<Vec<Value>> = replicas.iter().map(Gateway::decisions).collect();
    let allows: usize = logs.iter().map(|l| count(l, "allow", "echo_meta")).sum();
    let denies: usize = logs.iter().map(|l| count(l, "deny", "echo_meta")).sum();
    assert_eq!((allows, denies), (3, 27), "{logs:#?}");
    for c in clients {
        Arc::try_unwrap(c)
            .map_err(|_| "client still shared")?
            .cancel()
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_call_neither_loses_nor_doubles_its_count() -> Res<()> {
    let redis = RedisServer::start();
    let doomed = replica(&redis).await?;
    let survivor = replica(&redis).await?;
    let client = doomed.rmcp("/servers/kit/mcp").await?;
    let pending = tokio::spawn(async move {
        let r = call(&client, "slow", json!({ "ms": 30_000 })).await;
        drop(client);
        r
    });
    // The allow is logged before the call goes out; once the upstream has
    // it, the replica is killed in the middle of the call.
    let line = doomed.wait_decision("kit", "slow").await?;
    assert_eq!(line["decision"], "allow", "{line}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill9(&[doomed.pid])?;
    let _ = pending.await;

    let c = survivor.rmcp("/servers/kit/mcp").await?;
    assert_allowed(
        &call(&c, "slow", json!({ "ms": 0 })).await?,
        "the second slow call",
    );
    let third = call(&c, "slow", json!({ "ms": 0 })).await?;
    assert!(
        denied(&third) && text(&third).contains("at most 2 slow calls per 1h"),
        "the killed replica's call still counts, once: {}",
        text(&third)
    );
    c.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_is_down_denies_only_counted_calls_and_is_reconnected() -> Res<()> {
    let mut redis = RedisServer::start_durable();
    let gw = replica(&redis).await?;
    let store = format!("redis://127.0.0.1:{}/0", redis.port());
    let (status, body) = gw.get("/readyz").await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("state store `{store}`: ok")),
        "{body}"
    );

    let c = gw.rmcp("/servers/kit/mcp").await?;
    assert_allowed(&call(&c, "echo_meta", json!({})).await?, "with Redis up");
    redis.stop();

    let r = call(&c, "echo_meta", json!({})).await?;
    assert!(
        denied(&r) && text(&r).contains("state store unavailable") && text(&r).contains(&store),
        "a capped call with Redis down: {}",
        text(&r)
    );
    assert_allowed(
        &call(&c, "cancellations", json!({})).await?,
        "a call no limit counts, with Redis down",
    );
    let (status, body) = gw.get("/readyz").await?;
    assert_eq!(
        status, 200,
        "the store is shared: it does not make one replica unready"
    );
    assert!(
        body.contains(&format!("state store `{store}`: unavailable")),
        "{body}"
    );

    redis.restart();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call(&c, "echo_meta", json!({})).await?;
        if !denied(&r) {
            break;
        }
        assert!(
            text(&r).contains("state store unavailable") && Instant::now() < end,
            "not reconnected: {}",
            text(&r)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_an_agent_creates_through_one_replica_is_known_to_another() -> Res<()> {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let lims = DemoHttp::start().await?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let vars = [
        ("REDIS_URL", redis.url()),
        ("PG_URL", pg.url()),
        ("LIMS_URL", lims.url.clone()),
        (
            "GATEWAY_POLICIES",
            policies.to_str().ok_or("path")?.to_string(),
        ),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Gateway::start("replicas-records.toml", &vars).await?;
    let b = Gateway::start("replicas-records.toml", &vars).await?;
    let (_, ready) = a.get("/readyz").await?;
    assert!(
        ready.contains(&format!(
            "record store `postgres://127.0.0.1:{}/warden`: ok",
            pg.port()
        )) && ready.contains("state store `redis://"),
        "{ready}"
    );

    let ca = a.rmcp("/servers/genomics/mcp").await?;
    let created = call(
        &ca,
        "create_sample",
        json!({ "name": "NA12878", "project": "platinum-genomes" }),
    )
    .await?;
    assert_allowed(&created, "create_sample");
    let id = created
        .structured_content
        .as_ref()
        .and_then(|v| v.pointer("/sample/id"))
        .and_then(Value::as_str)
        .ok_or("no sample id")?
        .to_string();

    let cb = b.rmcp("/servers/genomics/mcp").await?;
    assert_allowed(
        &call(
            &cb,
            "update_sample",
            json!({ "sample_id": id, "name": "NA12878-b" }),
        )
        .await?,
        "the agent's own sample, through the other replica",
    );
    let theirs = call(
        &cb,
        "update_sample",
        json!({ "sample_id": "S-0001", "name": "x" }),
    )
    .await?;
    assert!(
        denied(&theirs)
            && text(&theirs).contains("agents may update only samples an agent created"),
        "{}",
        text(&theirs)
    );
    let decision = a
        .decisions()
        .into_iter()
        .find(|l| l["tool"] == "create_sample")
        .ok_or("no create_sample line")?;
    assert_eq!(
        pg.query("SELECT record_id, user_name, decision_id FROM warden_records")
            .trim(),
        format!(
            "{id}|ada|{}",
            decision["decision_id"].as_str().ok_or("no decision id")?
        )
    );
    ca.cancel().await?;
    cb.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_request_on_the_wrong_replica_says_affinity_is_needed() -> Res<()> {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis).await?, replica(&redis).await?);
    let http = crate::harness::http()?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = http
        .post(a.url("/servers/kit/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await?;
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .ok_or("no session id")?
        .to_str()?
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let ask = |gw: &Gateway| {
        http.post(gw.url("/servers/kit/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &sid)
            .body(list.to_string())
            .send()
    };
    let wrong = ask(&b).await?;
    assert_eq!(wrong.status(), 404);
    let body = wrong.text().await?;
    let tag = sid.split('-').next().ok_or("tag")?;
    assert!(
        body.contains(&format!("it was opened on replica `{tag}`"))
            && body.contains("session affinity on Mcp-Session-Id"),
        "{body}"
    );
    assert_ne!(
        ask(&a).await?.status(),
        404,
        "the replica that opened it serves it"
    );
    Ok(())
}

const MODERN: &str = "2026-07-28";

/// A 2026-07-28 `tools/call` of `wipe`, answering `state` when given.
fn modern_wipe(id: u64, state: Option<&str>) -> Value {
    let mut m = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
    "params": {"name": "wipe", "arguments": {"all": true}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "agent", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }}});
    if let Some(state) = state {
        m["params"]["requestState"] = json!(state);
        m["params"]["inputResponses"] =
            json!({"warden/confirm": {"action": "accept", "content": {}}});
    }
    m
}

/// POSTs `msg` to `gw`'s kit route as a 2026-07-28 client; the last
/// JSON-RPC message of the answer.
async fn post_modern(gw: &Gateway, msg: &Value) -> Res<Value> {
    let resp = crate::harness::http()?
        .post(gw.url("/servers/kit/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "wipe")
        .body(msg.to_string())
        .send()
        .await?;
    let body = resp.text().await?;
    let last = body
        .split("\n\n")
        .filter_map(|e| {
            let data: Vec<&str> = e
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                serde_json::from_str(e.trim()).ok()
            } else {
                serde_json::from_str(&data.join("\n")).ok()
            }
        })
        .last();
    Ok(last.ok_or_else(|| format!("no JSON-RPC message in {body:?}"))?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_asked_by_one_replica_is_answered_through_another_once() -> Res<()> {
    let redis = RedisServer::start();
    let keys = tempfile::tempdir()?;
    let (shared, other) = (
        keys.path().join("shared.key"),
        keys.path().join("other.key"),
    );
    std::fs::write(&shared, format!("{}\n", "5a".repeat(32)))?;
    std::fs::write(&other, format!("{}\n", "a5".repeat(32)))?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/policies-replicas");
    let start = |key: std::path::PathBuf| {
        let (url, policies) = (redis.url(), policies.clone());
        async move {
            Gateway::start(
                "replicas-confirm.toml",
                &[
                    ("REDIS_URL", url.as_str()),
                    ("CONFIRM_KEY", key.to_str().ok_or("path")?),
                    ("GATEWAY_POLICIES", policies.to_str().ok_or("path")?),
                ],
            )
            .await
        }
    };
    let (a, b, stranger) = (
        start(shared.clone()).await?,
        start(shared).await?,
        start(other).await?,
    );

    let asked = post_modern(&a, &modern_wipe(1, None)).await?;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked:#}");
    let state = asked["result"]["requestState"]
        .as_str()
        .ok_or("no requestState")?
        .to_string();

    let foreign = post_modern(&stranger, &modern_wipe(2, Some(&state))).await?;
    assert!(
        foreign["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`confirm_key`")),
        "a replica with another key cannot open it: {foreign:#}"
    );
    let done = post_modern(&b, &modern_wipe(3, Some(&state))).await?;
    assert_eq!(
        done["result"]["structuredContent"]["tool"], "wipe",
        "answered through the other replica: {done:#}"
    );
    let again = post_modern(&a, &modern_wipe(4, Some(&state))).await?;
    assert!(
        again["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("answered already")),
        "single use across replicas: {again:#}"
    );
    Ok(())
}
