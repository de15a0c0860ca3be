//! Sessions through the federated `/mcp` (part of tests/gateway.rs): many
//! calls at once across servers and clients each get their own answer (the
//! federation gives every request toward a server an id of its own), and
//! a `per session` limit counts a federated session whole, whichever
//! servers its calls go to.

use crate::common::{assert_allowed, call, text};
use crate::harness::{DemoHttp, Gateway, Res};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_across_servers_and_clients_each_get_their_own_answer() -> Res<()> {
    let lims = DemoHttp::start().await?;
    let gateway = Gateway::start("faults.toml", &[("LIMS_URL", &lims.url)]).await?;
    let clients = [
        Arc::new(gateway.rmcp("/mcp").await?),
        Arc::new(gateway.rmcp("/mcp").await?),
    ];
    let mut calls = tokio::task::JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        for i in 0..12u64 {
            let client = Arc::clone(client);
            calls.spawn(async move {
                // Answers come back out of order: later calls sleep less.
                let (tool, args) = match i % 3 {
                    0 => ("kit__slow", json!({"ms": 300 - i * 20})),
                    1 => ("kit2__echo_meta", json!({"client": c, "i": i})),
                    _ => ("lims__get_sample", json!({"sample_id": "S-0003"})),
                };
                let r = call(&client, tool, args.clone()).await;
                (c, i, tool, args, r)
            });
        }
    }
    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        let (c, i, tool, args, r) = joined?;
        let r = r.map_err(|e| format!("client {c} call {i} {tool}: {e}"))?;
        assert_allowed(&r, &format!("client {c} call {i} {tool}"));
        let got = r.structured_content.clone().unwrap_or(Value::Null);
        let want = match tool {
            "kit__slow" => json!({"slept_ms": args["ms"]}),
            "kit2__echo_meta" => args.clone(),
            _ => json!("S-0003"),
        };
        let seen = match tool {
            "kit__slow" => got.clone(),
            "kit2__echo_meta" => got["arguments"].clone(),
            _ => got.pointer("/sample/id").cloned().unwrap_or(Value::Null),
        };
        assert_eq!(seen, want, "client {c} call {i} {tool} got {}", text(&r));
        answered += 1;
    }
    assert_eq!(answered, 24);
    for client in clients {
        Arc::try_unwrap(client)
            .map_err(|_| "client still shared")?
            .cancel()
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_session_limit_counts_the_whole_federated_session() -> Res<()> {
    let lims = DemoHttp::start().await?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/policies-limits");
    let policies = policies.to_str().ok_or("path")?;
    let gateway = Gateway::start(
        "faults.toml",
        &[("LIMS_URL", &lims.url), ("GATEWAY_POLICIES", policies)],
    )
    .await?;
    let federated = gateway.rmcp("/mcp").await?;
    for tool in ["kit__echo_meta", "kit2__echo_meta", "kit__echo_meta"] {
        assert_allowed(&call(&federated, tool, json!({})).await?, tool);
    }
    let fourth = call(&federated, "kit2__echo_meta", json!({})).await?;
    assert_eq!(
        fourth.is_error,
        Some(true),
        "a 4th echo_meta in one federated session, on another server, went through: {}",
        text(&fourth)
    );
    assert!(
        text(&fourth).contains("at most 3 echo_meta calls per 1h in a session"),
        "{}",
        text(&fourth)
    );
    // Other sessions have counts of their own.
    let other = gateway.rmcp("/mcp").await?;
    assert_allowed(
        &call(&other, "kit2__echo_meta", json!({})).await?,
        "another federated session",
    );
    let route = gateway.rmcp("/servers/kit/mcp").await?;
    assert_allowed(
        &call(&route, "echo_meta", json!({})).await?,
        "the kit route",
    );
    for c in [federated, other, route] {
        c.cancel().await?;
    }
    let log = gateway.decisions();
    let denied: Vec<&Value> = log.iter().filter(|l| l["decision"] == "deny").collect();
    assert_eq!(denied.len(), 1, "{log:#?}");
    assert_eq!(denied[0]["server"], "kit2");
    assert_eq!(denied[0]["tool"], "echo_meta");
    assert_eq!(denied[0]["rules"], json!(["three-echoes-per-session"]));
    Ok(())
}
