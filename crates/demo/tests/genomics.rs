//! The genomics demo server driven by a real rmcp client, over an in-memory
//! duplex pipe and over loopback Streamable HTTP.

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServiceExt, model::Tool};
use serde_json::{Value, json};
use warden_demo::GenomicsServer;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Client = RunningService<RoleClient, ()>;

async fn duplex_client() -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = GenomicsServer::new().serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    Ok(().serve(client_io).await?)
}

async fn http_client(
    addr: std::net::SocketAddr,
) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")),
    );
    Ok(().serve(transport).await?)
}

async fn call(
    peer: &Peer<RoleClient>,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let args = args.as_object().cloned().unwrap_or_default();
    peer.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
}

/// The structured content of a successful result, after checking that the
/// text content carries the same JSON.
fn structured(result: &CallToolResult) -> Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "unexpected tool error: {result:?}"
    );
    let value = result
        .structured_content
        .clone()
        .expect("structuredContent");
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .expect("text content");
    let parsed: Value = serde_json::from_str(&text.text).expect("text content is JSON");
    assert_eq!(parsed, value);
    value
}

/// The text of an `isError` result.
fn error_text(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {result:?}"
    );
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .expect("text content");
    text.text.clone()
}

fn hints(tool: &Tool) -> (Option<bool>, Option<bool>, Option<bool>, Option<bool>) {
    let a = tool.annotations.as_ref().expect("annotations");
    (
        a.read_only_hint,
        a.destructive_hint,
        a.idempotent_hint,
        a.open_world_hint,
    )
}

#[tokio::test]
async fn lists_eight_tools_with_annotations_and_schemas() -> TestResult {
    let client = duplex_client().await?;
    let info = client.peer_info().expect("peer info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("genomics")
    );
    assert!(info.capabilities.tools.is_some());

    let mut tools = client.list_all_tools().await?;
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let s = Some;
    // (name, readOnly, destructive, idempotent, openWorld, required args)
    let expected: [(&str, _, &[&str]); 9] = [
        (
            "create_sample",
            (s(false), s(false), s(false), s(false)),
            &["name", "project"],
        ),
        (
            "delete_sample",
            (s(false), s(true), s(true), s(false)),
            &["sample_id"],
        ),
        (
            "get_sample",
            (s(true), s(false), s(true), s(false)),
            &["sample_id"],
        ),
        ("list_samples", (s(true), s(false), s(true), s(false)), &[]),
        (
            "read_results",
            (s(true), s(false), s(true), s(false)),
            &["sample_id"],
        ),
        (
            "run_status",
            (s(true), s(false), s(true), s(false)),
            &["run_id"],
        ),
        (
            "share_results",
            (s(false), s(false), s(false), s(true)),
            &["sample_id", "to"],
        ),
        (
            "start_pipeline_run",
            (s(false), s(false), s(false), s(false)),
            &["pipeline", "sample_id"],
        ),
        (
            "update_sample",
            (s(false), s(false), s(true), s(false)),
            &["sample_id"],
        ),
    ];
    assert_eq!(tools.len(), expected.len());
    for (tool, (name, want_hints, want_required)) in tools.iter().zip(expected) {
        assert_eq!(tool.name, name);
        assert_eq!(hints(tool), want_hints, "annotations of {name}");
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
        let schema = &tool.input_schema;
        assert_eq!(schema.get("type"), Some(&json!("object")), "{name}");
        let mut required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        required.sort_unstable();
        assert_eq!(required, want_required, "required args of {name}");
    }
    let start = tools
        .iter()
        .find(|t| t.name == "start_pipeline_run")
        .expect("tool");
    let priority = &start.input_schema["properties"]["priority"];
    assert_eq!(
        (priority["minimum"].as_u64(), priority["maximum"].as_u64()),
        (Some(1), Some(10))
    );
    // A budget policy adds up the quoted cost, so the schema offers it as
    // a number.
    let cost = &start.input_schema["properties"]["estimated_cost"];
    assert!(
        cost["type"] == json!("number") || cost["type"] == json!(["number", "null"]),
        "{cost}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn seed_data_and_project_filter() -> TestResult {
    let client = duplex_client().await?;
    let all = structured(&call(&client, "list_samples", json!({})).await?);
    let ids: Vec<&str> = all["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["S-0001", "S-0002", "S-0003"]);
    let mouse =
        structured(&call(&client, "list_samples", json!({"project": "mouse-atlas"})).await?);
    assert_eq!(mouse["samples"].as_array().map(Vec::len), Some(1));
    assert_eq!(mouse["samples"][0]["id"], "S-0003");
    let seeded = structured(&call(&client, "read_results", json!({"sample_id": "S-0001"})).await?);
    assert_eq!(seeded["results"][0]["pipeline"], "qc");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn create_update_then_get_sample() -> TestResult {
    let client = duplex_client().await?;
    let args =
        json!({"name": "NA12892", "project": "platinum-genomes", "organism": "Homo sapiens"});
    let created = structured(&call(&client, "create_sample", args).await?);
    assert_eq!(created["sample"]["id"], "S-0004");
    let got = structured(&call(&client, "get_sample", json!({"sample_id": "S-0004"})).await?);
    assert_eq!(got, created);

    let update = json!({"sample_id": "S-0004", "name": "NA12892-rerun"});
    let updated = structured(&call(&client, "update_sample", update.clone()).await?);
    assert_eq!(updated["sample"]["name"], "NA12892-rerun");
    assert_eq!(updated["sample"]["project"], "platinum-genomes");
    assert_eq!(
        structured(&call(&client, "update_sample", update).await?),
        updated
    );
    let got = structured(&call(&client, "get_sample", json!({"sample_id": "S-0004"})).await?);
    assert_eq!(got, updated);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn pipeline_run_moves_to_success_and_has_results() -> TestResult {
    let client = duplex_client().await?;
    let args = json!({"sample_id": "S-0002", "pipeline": "variant-call", "priority": 8});
    let started = structured(&call(&client, "start_pipeline_run", args).await?);
    assert_eq!(started["run"]["status"], "queued");
    assert_eq!(started["run"]["priority"], 8);
    // Not quoted: charged its price, 300 credits scaled by priority 8 / 5.
    assert_eq!(started["run"]["estimated_cost"], 480.0);
    let run_id = started["run"]["id"].as_str().expect("run id").to_owned();
    assert_eq!(run_id, "R-0002");

    let mut seen = Vec::new();
    for _ in 0..3 {
        let status = structured(&call(&client, "run_status", json!({"run_id": run_id})).await?);
        seen.push(status["run"]["status"].as_str().expect("status").to_owned());
    }
    assert_eq!(seen, ["running", "succeeded", "succeeded"]);

    let results = structured(&call(&client, "read_results", json!({"sample_id": "S-0002"})).await?);
    let results = results["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["run_id"], run_id.as_str());
    assert!(results[0]["metrics"]["snvs"].is_u64());
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn delete_then_get_is_a_tool_error() -> TestResult {
    let client = duplex_client().await?;
    let deleted =
        structured(&call(&client, "delete_sample", json!({"sample_id": "S-0001"})).await?);
    assert_eq!(deleted["deleted"]["id"], "S-0001");
    let text = error_text(&call(&client, "get_sample", json!({"sample_id": "S-0001"})).await?);
    assert!(
        text.contains("S-0001") && text.contains("list_samples"),
        "{text}"
    );
    // The deleted sample's runs are gone too, and deleting again is an error.
    let run = call(&client, "run_status", json!({"run_id": "R-0001"})).await?;
    assert!(error_text(&run).contains("R-0001"));
    let again = call(&client, "delete_sample", json!({"sample_id": "S-0001"})).await?;
    assert!(error_text(&again).starts_with("no sample"));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn bad_values_are_tool_errors() -> TestResult {
    let client = duplex_client().await?;
    let cases = [
        (
            "get_sample",
            json!({"sample_id": "S-9999"}),
            "no sample with id `S-9999`",
        ),
        (
            "read_results",
            json!({"sample_id": "nope"}),
            "no sample with id `nope`",
        ),
        (
            "run_status",
            json!({"run_id": "R-9999"}),
            "no pipeline run with id `R-9999`",
        ),
        (
            "share_results",
            json!({"sample_id": "S-9999", "to": "someone@partner.org"}),
            "no sample",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-9999", "pipeline": "qc"}),
            "no sample",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "rna"}),
            "unknown pipeline `rna`",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc", "priority": 11}),
            "priority must be from 1 to 10",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "wgs-align", "estimated_cost": 599.5}),
            "estimated_cost 599.5 is below the price of `wgs-align` at priority 5: 600 credits",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "wgs-align", "priority": 10, "estimated_cost": 600}),
            "below the price of `wgs-align` at priority 10: 1200 credits",
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc", "estimated_cost": -5}),
            "estimated_cost -5 is below the price of `qc`",
        ),
        (
            "create_sample",
            json!({"name": " ", "project": "p"}),
            "must not be empty",
        ),
        (
            "update_sample",
            json!({"sample_id": "S-0001"}),
            "nothing to update",
        ),
        (
            "update_sample",
            json!({"sample_id": "S-0001", "project": ""}),
            "must not be empty",
        ),
    ];
    for (tool, args, want) in cases {
        let text = error_text(&call(&client, tool, args).await?);
        assert!(text.contains(want), "{tool}: {text}");
        assert!(text.starts_with(char::is_lowercase), "{text}");
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn malformed_arguments_are_rejected() -> TestResult {
    let client = duplex_client().await?;
    let cases = [
        ("get_sample", json!({})),
        ("get_sample", json!({"sample_id": 7})),
        ("get_sample", json!({"sample_id": "S-0001", "extra": true})),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc", "priority": 2.5}),
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc", "priority": -1}),
        ),
        (
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc", "estimated_cost": "5"}),
        ),
        ("list_samples", json!({"project": ["a"]})),
    ];
    // Arguments that do not fit the input schema are tool errors the model
    // can read and correct (MCP 2025-11-25 and rmcp 3.x), not protocol errors.
    for (tool, args) in cases {
        match call(&client, tool, args.clone()).await {
            Ok(r) if r.is_error == Some(true) => {}
            Err(ServiceError::McpError(e)) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{tool} {args}")
            }
            other => panic!("{tool} {args}: expected an argument error, got {other:?}"),
        }
    }
    match call(&client, "drop_database", json!({})).await {
        Err(ServiceError::McpError(e)) => assert_eq!(e.code, ErrorCode::INVALID_PARAMS),
        other => panic!("unknown tool: expected invalid params, got {other:?}"),
    }
    // The server is still up.
    structured(&call(&client, "get_sample", json!({"sample_id": "S-0001"})).await?);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn http_sessions_share_one_store() -> TestResult {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(warden_demo::serve_http(listener));

    let a = http_client(addr).await?;
    let b = http_client(addr).await?;
    assert_eq!(a.list_all_tools().await?.len(), 9);
    let created =
        structured(&call(&a, "create_sample", json!({"name": "x", "project": "p"})).await?);
    let id = created["sample"]["id"].as_str().expect("id").to_owned();
    let got = structured(&call(&b, "get_sample", json!({"sample_id": id})).await?);
    assert_eq!(got, created);

    let started = structured(
        &call(
            &b,
            "start_pipeline_run",
            json!({"sample_id": id, "pipeline": "qc"}),
        )
        .await?,
    );
    let run_id = started["run"]["id"].as_str().expect("run id").to_owned();
    structured(&call(&a, "run_status", json!({"run_id": run_id})).await?);
    let done = structured(&call(&b, "run_status", json!({"run_id": run_id})).await?);
    assert_eq!(done["run"]["status"], "succeeded");

    a.cancel().await?;
    b.cancel().await?;
    assert!(!server.is_finished(), "serve_http stopped early");
    server.abort();
    Ok(())
}
