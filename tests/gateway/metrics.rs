//! `warden serve` metrics (part of tests/gateway.rs): `[metrics] listen`
//! serves `/metrics` on its own port, not on the MCP one, and counts the
//! gateway's calls by server and catalog tool.

use crate::common::{assert_allowed, call};
use crate::harness::{Gateway, Res, free_port, http};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_serves_metrics_on_its_admin_listener_only() -> Res<()> {
    let metrics_port = free_port()?;
    let gateway = Gateway::start(
        "metrics.toml",
        &[("METRICS_PORT", &metrics_port.to_string())],
    )
    .await?;
    let client = gateway.rmcp("/servers/genomics/mcp").await?;
    let r = call(&client, "get_sample", json!({"sample_id": "S-0001"})).await?;
    assert_allowed(&r, "genomics get_sample");

    let body = http()?
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("warden_decisions_total{")
                && l.contains(r#"server="genomics""#)
                && l.contains(r#"tool="get_sample""#)
                && l.contains(r#"outcome="allow""#)
        })
        .ok_or_else(|| format!("no decision counter for get_sample:\n{body}"))?;
    assert!(line.ends_with(" 1"), "{line}");
    assert!(body.contains("warden_sessions_active 1"), "{body}");
    // Not on the MCP port.
    let (status, _) = gateway.get("/metrics").await?;
    assert_eq!(status, 404);
    client.cancel().await?;
    Ok(())
}
