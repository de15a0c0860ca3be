//! End-to-end tests of `warden serve` (the gateway), with real processes
//! only: the `warden` binary on loopback HTTP in front of the demo
//! genomics server (stdio), `@modelcontextprotocol/server-everything`
//! (stdio, node from `.ci/install-node`), the demo server again over HTTP
//! as `lims`, and warden's raw test upstream where a test needs a slow or
//! killable server. Clients: rmcp (Rust) and the official TypeScript SDK
//! (tests/gateway/client.mjs), at the same time.
//!
//! This file: the federated `/mcp` (namespaced tools, prompts, resources),
//! per-server rules and the decision log, and the per-server routes.
//! tests/gateway/lifecycle.rs: health and readiness, an upstream killed
//! mid-call, a closed session's upstreams, a config edit, SIGTERM.
//! tests/gateway/reload.rs: SIGHUP and a ConfigMap-style symlink swap.
//! tests/gateway/sessions.rs: concurrent calls, per-session limits.
//! tests/gateway/unwell.rs: a silent and a broken server beside a healthy one.
//! tests/gateway/origins.rs: the Origin and Host checks on /mcp and a route.
//! tests/gateway/auth.rs: bearer JWTs (`[auth]`) on /mcp and a route.
//! tests/gateway/replicas.rs: replicas sharing limits in Redis and
//! records in PostgreSQL.
//! The configs and the policy are in tests/gateway/.

#[path = "gateway/auth.rs"]
mod auth;
mod common;
#[path = "gateway/harness.rs"]
mod harness;
#[path = "gateway/lifecycle.rs"]
mod lifecycle;
#[path = "gateway/metrics.rs"]
mod metrics;
#[path = "gateway/origins.rs"]
mod origins;
#[path = "../crates/engine/tests/support/postgres_server.rs"]
mod postgres_server;
#[path = "../crates/engine/tests/support/redis_server.rs"]
mod redis_server;
#[path = "gateway/reload.rs"]
mod reload;
#[path = "gateway/replicas.rs"]
mod replicas;
#[path = "gateway/sessions.rs"]
mod sessions;
#[path = "gateway/unwell.rs"]
mod unwell;

use common::{assert_allowed, call, text};
use harness::{DemoHttp, Gateway, Res, post_initialize};
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};

/// The demo server's tools (crates/demo), as any of its routes lists them
/// without policies.
const DEMO_TOOLS: [&str; 9] = [
    "create_sample",
    "delete_sample",
    "get_sample",
    "list_samples",
    "read_results",
    "run_status",
    "share_results",
    "start_pipeline_run",
    "update_sample",
];

/// The gateway of tests/gateway/three-servers.toml and its HTTP upstream.
async fn three_servers() -> Res<(Gateway, DemoHttp)> {
    let lims = DemoHttp::start().await?;
    let gateway = Gateway::start("three-servers.toml", &[("LIMS_URL", &lims.url)]).await?;
    Ok((gateway, lims))
}

fn names(list: &[rmcp::model::Tool]) -> Vec<String> {
    list.iter().map(|t| t.name.to_string()).collect()
}

/// The samples of a demo `list_samples` result, by id.
fn sample_ids(result: &rmcp::model::CallToolResult) -> Vec<String> {
    result
        .structured_content
        .as_ref()
        .and_then(|s| s["samples"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_mcp_namespaces_every_servers_tools_prompts_and_resources_for_two_clients()
-> Res<()> {
    let (gateway, _lims) = three_servers().await?;
    let instructions = std::fs::read_to_string(
        harness::node_tools()
            .server_everything
            .parent()
            .ok_or("no dist dir")?
            .join("docs/instructions.md"),
    )?;
    let resource = "everything+demo://resource/static/document/instructions.md";

    // The TypeScript client runs while the rmcp client works.
    let ts_plan = json!({
        "call": {"name": "everything__echo", "arguments": {"message": "from typescript"}},
        "read": resource,
        "prompt": "everything__simple-prompt",
    });
    let (ts, rust) = tokio::join!(gateway.ts_client("/mcp", &ts_plan), async {
        let client = gateway.rmcp("/mcp").await?;
        let tools = names(&client.list_all_tools().await?);
        let echo = call(&client, "everything__echo", json!({"message": "from rust"})).await?;
        let samples = call(&client, "genomics__list_samples", json!({})).await?;
        let lims = call(&client, "lims__get_sample", json!({"sample_id": "S-0002"})).await?;
        let prompts = client.list_all_prompts().await?;
        let prompt = client
            .get_prompt(GetPromptRequestParams::new("everything__simple-prompt"))
            .await?;
        let resources = client.list_all_resources().await?;
        let read = client
            .read_resource(ReadResourceRequestParams::new(resource))
            .await?;
        client.cancel().await?;
        Ok::<_, harness::Error>((
            tools,
            echo,
            samples,
            lims,
            serde_json::to_value(&prompts)?,
            serde_json::to_value(&prompt)?,
            serde_json::to_value(&resources)?,
            serde_json::to_value(&read)?,
        ))
    });
    let ts = ts?;
    let (tools, echo, samples, lims, prompts, prompt, resources, read) = rust?;

    // Every tool of every server, namespaced, and nothing else.
    for server in ["genomics", "lims"] {
        for tool in DEMO_TOOLS {
            let name = format!("{server}__{tool}");
            // The policy hides genomics' delete_sample (a deny reading no
            // argument); the same tool on lims stays.
            let hidden = name == "genomics__delete_sample";
            assert_eq!(tools.contains(&name), !hidden, "{name} in {tools:?}");
        }
    }
    for tool in ["echo", "get-sum", "trigger-long-running-operation"] {
        assert!(
            tools.contains(&format!("everything__{tool}")),
            "everything__{tool} in {tools:?}"
        );
    }
    for name in &tools {
        let (server, tool) = name
            .split_once("__")
            .ok_or(format!("`{name}` not namespaced"))?;
        assert!(
            ["genomics", "lims", "everything"].contains(&server) && !tool.is_empty(),
            "`{name}`"
        );
    }

    // Calls reach the right server and come back unchanged.
    assert_allowed(&echo, "everything__echo");
    assert_eq!(text(&echo), "Echo: from rust");
    assert_allowed(&samples, "genomics__list_samples");
    assert_eq!(sample_ids(&samples), ["S-0001", "S-0002", "S-0003"]);
    assert_allowed(&lims, "lims__get_sample");
    assert_eq!(
        lims.structured_content
            .as_ref()
            .and_then(|s| s.pointer("/sample/name").cloned()),
        Some(json!("NA12891"))
    );

    // Prompts and resources, namespaced and read from the right server.
    let prompt_names: Vec<&str> = prompts
        .as_array()
        .ok_or("prompts")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        prompt_names.contains(&"everything__simple-prompt"),
        "{prompt_names:?}"
    );
    assert!(
        prompt_names.iter().all(|p| p.starts_with("everything__")),
        "only server-everything has prompts: {prompt_names:?}"
    );
    assert_eq!(
        prompt.pointer("/messages/0/content/text"),
        Some(&json!("This is a simple prompt without arguments.")),
        "{prompt:#}"
    );
    let uris: Vec<&str> = resources
        .as_array()
        .ok_or("resources")?
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(uris.contains(&resource), "{uris:?}");
    assert!(
        uris.iter().all(|u| u.starts_with("everything+demo://")),
        "every resource URI mapped: {uris:?}"
    );
    assert_eq!(
        read.pointer("/contents/0/text").and_then(Value::as_str),
        Some(instructions.as_str()),
        "resources/read of {resource} returns server-everything's file"
    );
    assert_eq!(
        read.pointer("/contents/0/uri"),
        Some(&json!(resource)),
        "the content's uri is mapped too: {read:#}"
    );

    // The TypeScript SDK client saw the same federation.
    let ts_tools: Vec<&str> = ts["tools"]
        .as_array()
        .ok_or(format!("{ts:#}"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut rust_tools: Vec<&str> = tools.iter().map(String::as_str).collect();
    let mut sorted = ts_tools.clone();
    sorted.sort();
    rust_tools.sort();
    assert_eq!(sorted, rust_tools, "both clients list the same tools");
    assert_eq!(
        ts.pointer("/call/content/0/text"),
        Some(&json!("Echo: from typescript")),
        "{ts:#}"
    );
    assert_ne!(ts.pointer("/call/isError"), Some(&json!(true)), "{ts:#}");
    assert!(
        ts["prompts"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("everything__simple-prompt"))),
        "{ts:#}"
    );
    assert!(
        ts["resources"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(resource))),
        "{ts:#}"
    );
    assert_eq!(
        ts.pointer("/read/contents/0/text").and_then(Value::as_str),
        Some(instructions.as_str())
    );
    assert_eq!(
        ts.pointer("/prompt/messages/0/content/text"),
        Some(&json!("This is a simple prompt without arguments."))
    );

    // The log names the upstream's server and tool, not the namespaced one.
    let log = gateway.decisions();
    let echoes: Vec<&Value> = log.iter().filter(|l| l["tool"] == "echo").collect();
    assert_eq!(echoes.len(), 2, "one line per echo call: {log:#?}");
    for l in &echoes {
        assert_eq!(l["server"], "everything", "{l:#}");
        assert_eq!(l["decision"], "allow", "{l:#}");
        assert_eq!(l["upstream"]["ok"], true, "{l:#}");
        assert_eq!(l["identity"]["user"], "ada", "{l:#}");
    }
    assert!(
        log.iter()
            .all(|l| !l["tool"].as_str().unwrap_or("").contains("__")),
        "{log:#?}"
    );
    // One federated session is one session to every server (so `per
    // session` limits count it whole), and the two clients' are two.
    let session_of = |server: &str, tool: &str, agent: &str| {
        log.iter()
            .find(|l| l["server"] == server && l["tool"] == tool && l["identity"]["agent"] == agent)
            .map(|l| l["session"].clone())
            .ok_or(format!("no {server} {tool} line from {agent}: {log:#?}"))
    };
    let rust_echo = session_of("everything", "echo", "rmcp")?;
    assert_eq!(session_of("genomics", "list_samples", "rmcp")?, rust_echo);
    assert_eq!(session_of("lims", "get_sample", "rmcp")?, rust_echo);
    assert_ne!(
        session_of("everything", "echo", "gateway-ts-client")?,
        rust_echo
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_server_rule_applies_to_its_server_only_and_the_log_names_the_real_server() -> Res<()>
{
    let (gateway, _lims) = three_servers().await?;
    let client = gateway.rmcp("/mcp").await?;

    // `deny ... when args.project == "mouse-atlas"` on genomics only.
    let genomics = call(
        &client,
        "genomics__list_samples",
        json!({"project": "mouse-atlas"}),
    )
    .await?;
    assert_eq!(genomics.is_error, Some(true), "{}", text(&genomics));
    assert!(
        text(&genomics).contains("project mouse-atlas on genomics is not listed (list_samples)"),
        "the reason names the real server and tool: {}",
        text(&genomics)
    );
    let lims = call(
        &client,
        "lims__list_samples",
        json!({"project": "mouse-atlas"}),
    )
    .await?;
    assert_allowed(&lims, "lims__list_samples mouse-atlas");
    assert_eq!(sample_ids(&lims), ["S-0003"]);
    let other = call(
        &client,
        "genomics__list_samples",
        json!({"project": "platinum-genomes"}),
    )
    .await?;
    assert_allowed(&other, "genomics__list_samples platinum-genomes");
    assert_eq!(sample_ids(&other), ["S-0001", "S-0002"]);

    // `deny delete_sample` on genomics: hidden, and refused when called.
    let gone = call(
        &client,
        "genomics__delete_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_eq!(gone.is_error, Some(true), "{}", text(&gone));
    assert!(
        text(&gone).contains("samples on genomics are kept (delete_sample refused)"),
        "{}",
        text(&gone)
    );
    let deleted = call(
        &client,
        "lims__delete_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_allowed(&deleted, "lims__delete_sample");
    // Each server kept its own store: S-0001 is gone on lims only.
    let on_lims = call(&client, "lims__get_sample", json!({"sample_id": "S-0001"})).await?;
    assert_eq!(on_lims.is_error, Some(true), "{}", text(&on_lims));
    let on_genomics = call(
        &client,
        "genomics__get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await?;
    assert_allowed(&on_genomics, "genomics__get_sample S-0001");
    client.cancel().await?;

    let log = gateway.decisions();
    let find = |server: &str, tool: &str, decision: &str| {
        log.iter()
            .filter(|l| l["server"] == server && l["tool"] == tool && l["decision"] == decision)
            .count()
    };
    assert_eq!(find("genomics", "list_samples", "deny"), 1, "{log:#?}");
    assert_eq!(find("genomics", "list_samples", "allow"), 1, "{log:#?}");
    assert_eq!(find("lims", "list_samples", "allow"), 1, "{log:#?}");
    assert_eq!(find("genomics", "delete_sample", "deny"), 1, "{log:#?}");
    assert_eq!(find("lims", "delete_sample", "allow"), 1, "{log:#?}");
    assert_eq!(find("lims", "list_samples", "deny"), 0, "{log:#?}");
    let denied = log
        .iter()
        .find(|l| {
            l["server"] == "genomics" && l["decision"] == "deny" && l["tool"] == "list_samples"
        })
        .ok_or("no denial line")?;
    assert_eq!(
        denied["rules"],
        json!(["genomics-hides-mouse-atlas"]),
        "{denied:#}"
    );
    assert_eq!(denied["arguments"]["project"], "mouse-atlas", "{denied:#}");
    assert!(
        denied["upstream"].is_null(),
        "a denied call never went upstream: {denied:#}"
    );
    assert!(
        log.iter()
            .all(|l| !l["tool"].as_str().unwrap_or("").contains("__")),
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_route_serves_that_server_alone_with_its_own_tool_names() -> Res<()> {
    let (gateway, _lims) = three_servers().await?;
    let (genomics, lims, everything) = tokio::join!(
        gateway.rmcp("/servers/genomics/mcp"),
        gateway.rmcp("/servers/lims/mcp"),
        gateway.rmcp("/servers/everything/mcp"),
    );
    let (genomics, lims, everything) = (genomics?, lims?, everything?);

    let mut want: Vec<String> = DEMO_TOOLS.iter().map(|t| t.to_string()).collect();
    let mut got = names(&genomics.list_all_tools().await?);
    got.sort();
    want.retain(|t| t != "delete_sample");
    assert_eq!(
        got, want,
        "genomics' tools, unnamespaced, delete_sample hidden"
    );
    let mut got = names(&lims.list_all_tools().await?);
    got.sort();
    assert_eq!(got, DEMO_TOOLS, "lims' tools, unnamespaced, none hidden");
    let every = names(&everything.list_all_tools().await?);
    assert!(every.contains(&"echo".to_string()), "{every:?}");
    assert!(every.iter().all(|t| !t.contains("__")), "{every:?}");

    // The server's identity reaches the client as through `warden proxy`.
    let info = genomics.peer_info().ok_or("no server info")?;
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("genomics")
    );

    let denied = call(&genomics, "list_samples", json!({"project": "mouse-atlas"})).await?;
    assert_eq!(denied.is_error, Some(true), "{}", text(&denied));
    assert!(
        text(&denied).contains("on genomics is not listed"),
        "{}",
        text(&denied)
    );
    let allowed = call(&lims, "list_samples", json!({"project": "mouse-atlas"})).await?;
    assert_allowed(&allowed, "lims list_samples");
    assert_eq!(sample_ids(&allowed), ["S-0003"]);
    let echo = call(&everything, "echo", json!({"message": "route"})).await?;
    assert_eq!(text(&echo), "Echo: route");
    // A name that is only a federated one means nothing here.
    let namespaced = call(
        &genomics,
        "genomics__get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await;
    assert!(
        namespaced
            .as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "genomics__get_sample on the genomics route: {namespaced:?}"
    );
    for c in [genomics, lims, everything] {
        c.cancel().await?;
    }

    let log = gateway.decisions();
    assert!(
        log.iter().any(|l| l["server"] == "lims"
            && l["tool"] == "list_samples"
            && l["decision"] == "allow"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l["server"] == "everything" && l["tool"] == "echo"),
        "{log:#?}"
    );
    assert_eq!(
        post_initialize(&gateway.url("/servers/nope/mcp")).await?,
        404
    );
    assert_eq!(
        post_initialize(&gateway.url("/servers/genomics/other")).await?,
        404
    );
    Ok(())
}
