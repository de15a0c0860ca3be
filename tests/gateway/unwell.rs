//! Unwell upstreams behind the federated `/mcp` (part of tests/gateway.rs):
//! one that answers `initialize` and then nothing
//! (tests/gateway/silent-server.mjs), one whose command exits at once. The
//! federation must leave them out of its answers in bounded time and keep
//! serving the healthy server.

use crate::common::{assert_allowed, call};
use crate::harness::{Gateway, Res};
use serde_json::json;
use std::time::{Duration, Instant};

/// The federation's wait for a member's list answer is 10 s; a list
/// answer may take that long, not more (with room for a slow machine).
const LIST_BOUND: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_or_broken_server_does_not_take_the_federation_down() -> Res<()> {
    let gateway = Gateway::start("unwell.toml", &[]).await?;
    let client = gateway.rmcp("/mcp").await?;

    let t = Instant::now();
    let tools = tokio::time::timeout(LIST_BOUND, client.list_all_tools())
        .await
        .map_err(|_| "tools/list waited on the silent server")??;
    eprintln!("tools/list took {:?}", t.elapsed());
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(
        names.contains(&"genomics__list_samples".to_string()),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n.starts_with("genomics__")),
        "only genomics has tools to show: {names:?}"
    );
    let prompts = tokio::time::timeout(LIST_BOUND, client.list_all_prompts())
        .await
        .map_err(|_| "prompts/list waited on the silent server")??;
    assert!(prompts.is_empty(), "{prompts:?}");
    let resources = tokio::time::timeout(LIST_BOUND, client.list_all_resources())
        .await
        .map_err(|_| "resources/list waited on the silent server")??;
    assert!(resources.is_empty(), "{resources:?}");

    let r = call(
        &client,
        "genomics__get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_allowed(&r, "genomics beside unwell servers");

    let broken = tokio::time::timeout(
        Duration::from_secs(15),
        call(&client, "broken__anything", json!({})),
    )
    .await
    .map_err(|_| "a call to the broken server was still open after 15 s")?;
    assert!(
        broken
            .as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "broken__anything: {broken:?}"
    );
    let r = call(&client, "genomics__list_samples", json!({})).await?;
    assert_allowed(&r, "genomics after the unwell calls");
    client.cancel().await?;

    assert_eq!(gateway.get("/healthz").await?.0, 200);
    assert_eq!(
        gateway.get("/readyz").await?.0,
        200,
        "no server is required, so unwell ones do not make warden unready"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_to_a_server_that_never_answers_ends_by_its_call_timeout() -> Res<()> {
    let gateway = Gateway::start("unwell.toml", &[]).await?;
    let client = gateway.rmcp("/mcp").await?;
    // A call to the silent server ends by its own 2 s call_timeout (or is
    // refused at once); it never hangs the session. First on its own route
    // (as `warden proxy` would), then through the federation.
    let route = gateway.rmcp("/servers/silent/mcp").await?;
    let t = Instant::now();
    let direct = tokio::time::timeout(Duration::from_secs(15), call(&route, "anything", json!({})))
        .await
        .map_err(
            |_| "a call on /servers/silent/mcp was still open after 15 s (call_timeout 2 s)",
        )?;
    assert!(
        direct
            .as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "anything on /servers/silent/mcp: {direct:?}"
    );
    eprintln!(
        "anything on /servers/silent/mcp: {direct:?} after {:?}",
        t.elapsed()
    );
    route.cancel().await?;
    let t = Instant::now();
    let silent = tokio::time::timeout(
        Duration::from_secs(15),
        call(&client, "silent__anything", json!({})),
    )
    .await
    .map_err(|_| "a call to the silent server was still open after 15 s (call_timeout 2 s)")?;
    assert!(
        silent
            .as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "silent__anything: {silent:?}"
    );
    eprintln!("silent__anything: {:?} after {:?}", silent, t.elapsed());
    let r = call(&client, "genomics__list_samples", json!({})).await?;
    assert_allowed(&r, "genomics after the silent call");
    client.cancel().await?;
    Ok(())
}
