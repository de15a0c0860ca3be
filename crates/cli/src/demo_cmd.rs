//! `warden demo`: one command that shows warden at work. It starts
//! `warden proxy` with the reference genomics policy in front of the
//! bundled demo genomics MCP server (`warden demo-server`), connects a real
//! MCP client to the proxy over stdio, and plays a scripted agent session,
//! printing each call and what warden decided: allowed, denied,
//! confirmation asked and answered, a grant covering a later call, a run
//! that a lab lead approves on warden's approval page (four eyes: the
//! caller's own approval is refused), cap reached, budget crossed, and a
//! session that read raw results refused a tool that reaches outside the
//! platform (a session label).
//!
//! The demo runs on the real clock, so its script keeps out of what
//! depends on the time of day: every run it starts is quoted below the
//! 1000 credits from which genomics.policy's
//! `big-runs-only-in-working-hours` applies, and its output is the same at
//! 3 am as at noon (tests/demo.rs compares it with README.md).

use crate::demo_lab_lead::{self, DemoIssuer};
use crate::exit;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The reference policy the demo runs with, as shipped in policies/.
const GENOMICS_POLICY: &str = include_str!("../../../policies/genomics.policy");

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The person behind the agent: answers confirmations from a script.
#[derive(Clone)]
struct ScriptedPerson {
    answers: Arc<Mutex<VecDeque<ElicitationAction>>>,
}

impl ClientHandler for ScriptedPerson {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("warden-demo-agent", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match &request {
            ElicitRequestParams::FormElicitationParams { message, .. } => message.clone(),
            _ => "(a request the demo cannot show)".to_string(),
        };
        let answer = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(ElicitationAction::Decline);
        let first = message.lines().next().unwrap_or_default();
        outln!("    ? warden asks the person: {first}");
        let word = match answer {
            ElicitationAction::Accept => "accept",
            ElicitationAction::Decline => "decline",
            _ => "cancel",
        };
        outln!("    ? the person answers: {word}");
        Ok(ElicitResult::new(answer))
    }
}

/// A directory under the system's temp dir, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("warden-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn run(policies: Option<PathBuf>, keep_log: Option<PathBuf>) -> i32 {
    let runtime = match crate::runtime::async_runtime(Some(2)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(play(policies, keep_log));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: the demo failed: {e}");
            exit::FAILURE
        }
    }
}

async fn play(policies: Option<PathBuf>, keep_log: Option<PathBuf>) -> Result<(), DemoError> {
    let scratch = ScratchDir::create()?;
    let (policy_path, shown) = match policies {
        Some(p) => (p.clone(), p.display().to_string()),
        None => {
            let p = scratch.0.join("genomics.policy");
            std::fs::write(&p, GENOMICS_POLICY)?;
            (p, "policies/genomics.policy (built in)".to_string())
        }
    };
    // The temporary log's path changes with every run; the README's
    // transcript is compared with this output (tests/demo.rs), so say
    // what it is rather than where.
    let (log_path, log_shown) = match keep_log {
        Some(p) => (p.clone(), p.display().to_string()),
        None => (
            scratch.0.join("decisions.jsonl"),
            "a temporary file, removed at the end (keep it with --audit-log FILE)".to_string(),
        ),
    };
    let warden = std::env::current_exe()?;
    let issuer = DemoIssuer::create(&scratch.0)?;

    outln!("warden demo: an AI agent works on a genomics platform through warden");
    outln!("  policy:   {shown}");
    outln!("  upstream: the demo genomics MCP server (warden demo-server), on stdio");
    outln!("  audit:    {log_shown}");
    outln!("  people:   ada, whose agent this is; lena, a lab lead, who approves on warden's");
    outln!("            approval page with a token of the demo's own issuer");
    outln!();

    let mut command = tokio::process::Command::new(&warden);
    command
        .arg("proxy")
        .arg("--policies")
        .arg(&policy_path)
        .arg("--audit-log")
        .arg(&log_path)
        .arg("--user")
        .arg("ada")
        // The approval page next to stdio, where approvers show who they
        // are with a token of the demo's issuer (four eyes).
        .arg("--approvals-listen")
        .arg("127.0.0.1:0")
        .arg("--jwt-issuer")
        .arg(demo_lab_lead::ISSUER)
        .arg("--jwt-audience")
        .arg(demo_lab_lead::AUDIENCE)
        .arg("--jwt-key")
        .arg(issuer.public_key_file())
        .arg("--")
        .arg(&warden)
        .arg("demo-server")
        // The proxy's own warnings would interleave with the demo's output.
        .env("WARDEN_LOG", "error");
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let person = ScriptedPerson {
        answers: Arc::new(Mutex::new(VecDeque::from([
            ElicitationAction::Accept,
            ElicitationAction::Decline,
        ]))),
    };
    let agent = person.serve(transport).await?;

    let tools = agent.list_all_tools().await?;
    outln!("The agent lists the tools; warden shows {}:", tools.len());
    for tool in &tools {
        let note = tool
            .description
            .as_deref()
            .and_then(|d| d.split("[warden] ").nth(1))
            .map(|n| format!("  [warden: {}]", n.trim()))
            .unwrap_or_default();
        outln!("  - {}{note}", tool.name);
    }
    if !tools.iter().any(|t| t.name == "delete_sample") {
        outln!("  (delete_sample is hidden: rule agents-never-delete denies it to every agent)");
    }
    outln!();

    let steps = [
        Step::call("Read freely", "list_samples", json!({})),
        Step::call("", "get_sample", json!({"sample_id": "S-0001"})),
        Step::call(
            "Cheap QC runs need no confirmation, but at most 3 runs in a row",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc"}),
        ),
        Step::call(
            "",
            "start_pipeline_run",
            json!({"sample_id": "S-0002", "pipeline": "qc"}),
        ),
        Step::call(
            "",
            "start_pipeline_run",
            json!({"sample_id": "S-0003", "pipeline": "qc"}),
        ),
        Step::call(
            "",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "qc"}),
        ),
        Step::call(
            "Another tool ends the streak",
            "run_status",
            json!({"run_id": "R-0001"}),
        ),
        Step::call(
            "A paid run needs the person's confirmation",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "variant-call", "estimated_cost": 300}),
        ),
        Step::call(
            "The yes covers paid runs on that sample for 30 minutes (`grant for 30m within args.sample_id`)",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "variant-call", "estimated_cost": 300}),
        ),
        Step::call(
            "",
            "start_pipeline_run",
            json!({"sample_id": "S-0002", "pipeline": "variant-call", "estimated_cost": 300}),
        ),
        Step::call(
            "A whole-genome run needs a lab lead's approval, given on warden's approval page (four eyes)",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "wgs-align", "estimated_cost": 600}),
        ),
        Step::Approve {
            who: "ada, the caller, herself a lab lead",
            user: "ada",
            groups: &["lab-leads"],
            note: "my own run",
        },
        Step::Approve {
            who: "lena, a lab lead",
            user: "lena",
            groups: &["lab-leads"],
            note: "NA12878 is our reference sample",
        },
        Step::call(
            "",
            "start_pipeline_run",
            json!({"sample_id": "S-0001", "pipeline": "wgs-align", "estimated_cost": 600}),
        ),
        Step::call(
            "Paid compute has a daily budget per person; this run would cross it",
            "start_pipeline_run",
            json!({
                "sample_id": "S-0001",
                "pipeline": "variant-call",
                "priority": 8,
                "estimated_cost": 480
            }),
        ),
        Step::call(
            "Results may go to a collaborator, until the session reads raw results: then nothing leaves the platform (`label read-raw-results`)",
            "share_results",
            json!({"sample_id": "S-0001", "to": "collaborator@partner.org"}),
        ),
        Step::call("", "read_results", json!({"sample_id": "S-0001"})),
        Step::call(
            "",
            "share_results",
            json!({"sample_id": "S-0001", "to": "collaborator@partner.org"}),
        ),
        Step::call(
            "Agents never delete, even a tool they were not shown",
            "delete_sample",
            json!({"sample_id": "S-0003"}),
        ),
    ];
    let mut last_link: Option<String> = None;
    for step in steps {
        match step {
            Step::Call {
                heading,
                tool,
                args,
            } => {
                if !heading.is_empty() {
                    outln!("{heading}:");
                }
                let result = call_and_show(&agent, tool, args).await?;
                if let Some(link) = approval_link(&result) {
                    last_link = Some(link);
                }
            }
            Step::Approve {
                who,
                user,
                groups,
                note,
            } => {
                let link = last_link
                    .as_deref()
                    .ok_or("no denial gave an approval link")?;
                let token = issuer.token(user, groups)?;
                let answer = demo_lab_lead::approve_on_page(link, &token, note).await?;
                let outcome = if answer.approved {
                    answer.message
                } else {
                    format!("refused: {}", answer.message)
                };
                outln!("    ! {who}, approves on warden's approval page: {outcome}");
            }
        }
    }
    agent.cancel().await?;

    outln!();
    summarize_log(&log_path);
    Ok(())
}

/// One step of the scripted session.
enum Step {
    /// The agent calls `tool` (under `heading`, when not empty).
    Call {
        heading: &'static str,
        tool: &'static str,
        args: Value,
    },
    /// `user` (`who`, in words) opens the link of the last pending
    /// approval and approves it with a token of the demo's issuer.
    Approve {
        who: &'static str,
        user: &'static str,
        groups: &'static [&'static str],
        note: &'static str,
    },
}

impl Step {
    fn call(heading: &'static str, tool: &'static str, args: Value) -> Step {
        Step::Call {
            heading,
            tool,
            args,
        }
    }
}

async fn call_and_show(
    agent: &RunningService<RoleClient, ScriptedPerson>,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, DemoError> {
    outln!("  > {tool} {args}");
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let result = agent.call_tool(params).await?;
    outln!("    {}", describe(&result));
    Ok(result)
}

/// The approval page's link in a denial that waits for an approval.
fn approval_link(result: &CallToolResult) -> Option<String> {
    let decision = result.meta.as_ref()?.0.get("warden/decision")?;
    if decision["retry"]["when"].as_str() != Some("after_approval") {
        return None;
    }
    demo_lab_lead::link_in(decision["instead"].as_str()?).map(str::to_string)
}

/// One line on a call's result: the decision and the gist of the answer.
fn describe(result: &CallToolResult) -> String {
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    let decision = result
        .meta
        .as_ref()
        .and_then(|m| m.0.get("warden/decision"))
        .cloned();
    if let Some(decision) = decision {
        let rules = decision["rules"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let reason = decision["reason"].as_str().unwrap_or_default();
        let retry = match decision["retry"]["when"].as_str() {
            Some("after_seconds") => {
                let seconds = decision["retry"]["seconds"].as_u64().unwrap_or(0);
                format!(" (retrying can succeed in {})", after(seconds))
            }
            Some("after_streak_ends") => " (retrying can succeed once the streak ends)".to_string(),
            Some("after_approval") => {
                " (retrying can succeed once it is approved; the advice holds the page's link)"
                    .to_string()
            }
            // `never`, or advice this demo does not know how to show.
            _ => String::new(),
        };
        let by = if rules.is_empty() {
            String::new()
        } else {
            format!(" by {rules}")
        };
        return format!("DENIED{by}: {reason}{retry}");
    }
    if result.is_error == Some(true) {
        return format!("the tool failed: {}", first_line(&text));
    }
    let gist = result
        .structured_content
        .as_ref()
        .map(gist)
        .unwrap_or_else(|| first_line(&text));
    format!("ALLOWED: {gist}")
}

/// A wait as the demo prints it. Long waits are rounded to the hour: a
/// budget's window frees about a day after its first call, and the exact
/// second would differ from run to run (the README shows this output).
fn after(seconds: u64) -> String {
    if seconds >= 3600 {
        format!("about {} h", (seconds + 1800) / 3600)
    } else {
        format!("{seconds} s")
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 100 {
        line.chars().take(100).collect::<String>() + "…"
    } else {
        line.to_string()
    }
}

/// A short summary of a demo server result.
fn gist(v: &Value) -> String {
    if let Some(samples) = v["samples"].as_array() {
        return format!("{} samples", samples.len());
    }
    if let Some(run) = v.get("run") {
        return format!(
            "run {} of `{}` on {}, status {}",
            run["id"].as_str().unwrap_or("?"),
            run["pipeline"].as_str().unwrap_or("?"),
            run["sample_id"].as_str().unwrap_or("?"),
            run["status"].as_str().unwrap_or("?")
        );
    }
    if let Some(shared) = v.get("shared") {
        return format!(
            "results of {} {} to {}",
            shared["sample_id"].as_str().unwrap_or("?"),
            shared["status"].as_str().unwrap_or("?"),
            shared["to"].as_str().unwrap_or("?")
        );
    }
    if let Some(results) = v["results"].as_array() {
        return format!(
            "{} result(s) of {}",
            results.len(),
            v["sample_id"].as_str().unwrap_or("?")
        );
    }
    if let Some(sample) = v.get("sample") {
        return format!(
            "sample {} ({})",
            sample["id"].as_str().unwrap_or("?"),
            sample["name"].as_str().unwrap_or("?")
        );
    }
    first_line(&v.to_string())
}

fn summarize_log(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        outln!("(the decision log could not be read)");
        return;
    };
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    // Outcome lines (appended after a forwarded call's decision line)
    // are not decisions.
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("decision").is_some())
        .collect();
    for line in &lines {
        let d = line["decision"].as_str().unwrap_or("?").to_string();
        *counts.entry(d).or_default() += 1;
    }
    let summary = counts
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    outln!(
        "The decision log has one JSON line per decided call: {} lines ({summary}).",
        lines.len()
    );
    if let Some(last) = lines.last() {
        outln!("The last one:");
        outln!("{}", serde_json::to_string(last).unwrap_or_default());
    }
}
