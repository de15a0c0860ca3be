//! `warden-demo`: a small, in-memory genomics MCP server. It is the upstream
//! for `warden demo`, the proxy's end-to-end tests and the latency benchmark,
//! so it is deterministic and never sleeps.
//!
//! Tools: `list_samples`, `get_sample`, `read_results`, `create_sample`,
//! `update_sample`, `start_pipeline_run`, `run_status` and `delete_sample`.
//! Each result carries its data twice: as JSON text content and as
//! `structuredContent`. An unknown id or an invalid value is a tool result
//! with `isError: true` and a message saying what to do; so are arguments
//! that do not match a tool's input schema (rmcp 3.x reports them as tool
//! errors, as MCP 2025-11-25 asks, so that the model can correct them).
//!
//! A pipeline run advances one step on every `run_status` call, from
//! `queued` to `running` to `succeeded`, standing in for time passing.
//!
//! A run costs credits: its pipeline's price at priority 5, scaled by the
//! priority (priority 10 costs double, 1 a fifth). The caller may quote the
//! cost as `estimated_cost`, which a budget policy in front of the server
//! adds up; a quote below the price is refused, so an under-quote cannot
//! slip a run past such a budget.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! warden_demo::serve_http(listener).await // MCP at http://127.0.0.1:8080/mcp
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::schemars::JsonSchema;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The pipelines `start_pipeline_run` accepts, with their price in credits
/// at the default priority.
const PIPELINES: [(&str, u32); 3] = [("qc", 5), ("wgs-align", 600), ("variant-call", 300)];

/// Default priority of a pipeline run.
const DEFAULT_PRIORITY: u8 = 5;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Serialize)]
struct Sample {
    id: String,
    name: String,
    project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    organism: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    id: String,
    sample_id: String,
    pipeline: String,
    priority: u8,
    /// The credits the run was quoted at (its price when not quoted).
    estimated_cost: f64,
    status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum RunStatus {
    Queued,
    Running,
    Succeeded,
}

#[derive(Debug)]
struct State {
    samples: BTreeMap<String, Sample>,
    runs: BTreeMap<String, Run>,
    next_sample: u32,
    next_run: u32,
}

impl State {
    fn seed() -> Self {
        let mut state = State {
            samples: BTreeMap::new(),
            runs: BTreeMap::new(),
            next_sample: 1,
            next_run: 1,
        };
        for (name, project, organism) in [
            ("NA12878", "platinum-genomes", "Homo sapiens"),
            ("NA12891", "platinum-genomes", "Homo sapiens"),
            ("mouse-liver-01", "mouse-atlas", "Mus musculus"),
        ] {
            state.add_sample(name.into(), project.into(), Some(organism.into()));
        }
        let price = f64::from(price("qc", DEFAULT_PRIORITY).unwrap_or_default());
        let id = state
            .add_run("S-0001", "qc", DEFAULT_PRIORITY, price)
            .id
            .clone();
        if let Some(run) = state.runs.get_mut(&id) {
            run.status = RunStatus::Succeeded;
            run.metrics = Some(metrics(&run.sample_id, &run.pipeline));
        }
        state
    }

    fn add_sample(&mut self, name: String, project: String, organism: Option<String>) -> &Sample {
        let id = format!("S-{:04}", self.next_sample);
        self.next_sample += 1;
        let sample = Sample {
            id: id.clone(),
            name,
            project,
            organism,
        };
        self.samples.entry(id).or_insert(sample)
    }

    fn add_run(&mut self, sample_id: &str, pipeline: &str, priority: u8, cost: f64) -> &Run {
        let id = format!("R-{:04}", self.next_run);
        self.next_run += 1;
        let run = Run {
            id: id.clone(),
            sample_id: sample_id.into(),
            pipeline: pipeline.into(),
            priority,
            estimated_cost: cost,
            status: RunStatus::Queued,
            metrics: None,
        };
        self.runs.entry(id).or_insert(run)
    }
}

/// The price in credits of a run of `pipeline` at `priority`; `None` for an
/// unknown pipeline.
fn price(pipeline: &str, priority: u8) -> Option<u32> {
    let (_, base) = PIPELINES.iter().find(|(name, _)| *name == pipeline)?;
    Some(base * u32::from(priority) / u32::from(DEFAULT_PRIORITY))
}

/// Made-up but stable QC and analysis numbers for a finished run.
fn metrics(sample_id: &str, pipeline: &str) -> Value {
    let n = sample_id.bytes().map(u64::from).sum::<u64>() % 10;
    match pipeline {
        "qc" => json!({"total_reads": 400_000_000 + n * 1_000_000, "q30_percent": 90 + n % 5}),
        "wgs-align" => json!({"mapped_percent": 99, "mean_coverage": 30 + n}),
        _ => json!({"snvs": 4_100_000 + n * 1_000, "indels": 600_000 + n * 100}),
    }
}

/// Arguments of `list_samples`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListSamplesArgs {
    /// Only list samples of this project.
    #[serde(default)]
    pub project: Option<String>,
}

/// Arguments naming one sample.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct SampleIdArgs {
    /// The sample id, e.g. "S-0001".
    pub sample_id: String,
}

/// Arguments of `share_results`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct ShareArgs {
    /// The sample id, e.g. "S-0001".
    pub sample_id: String,
    /// Who gets the link, e.g. "collaborator@partner.org".
    pub to: String,
}

/// Arguments of `create_sample`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct CreateSampleArgs {
    /// A human-readable sample name, e.g. "NA12878".
    pub name: String,
    /// The project the sample belongs to, e.g. "platinum-genomes".
    pub project: String,
    /// The organism, e.g. "Homo sapiens".
    #[serde(default)]
    pub organism: Option<String>,
}

/// Arguments of `update_sample`: the sample id and at least one field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateSampleArgs {
    /// The sample id, e.g. "S-0001".
    pub sample_id: String,
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new project.
    #[serde(default)]
    pub project: Option<String>,
    /// A new organism.
    #[serde(default)]
    pub organism: Option<String>,
}

/// Arguments of `start_pipeline_run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct StartRunArgs {
    /// The sample to run the pipeline on, e.g. "S-0001".
    pub sample_id: String,
    /// The pipeline: "qc", "wgs-align" or "variant-call".
    pub pipeline: String,
    /// Scheduling priority from 1 (lowest) to 10 (highest); 5 when omitted.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    pub priority: Option<u8>,
    /// The run's cost in credits as quoted: at priority 5, qc costs 5,
    /// wgs-align 600 and variant-call 300, scaled by priority / 5. A quote
    /// below the price is refused; the price is charged when omitted.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub estimated_cost: Option<f64>,
}

/// Arguments of `run_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunIdArgs {
    /// The run id returned by `start_pipeline_run`, e.g. "R-0002".
    pub run_id: String,
}

/// The genomics demo MCP server. Clones share one in-memory store, so every
/// session of an HTTP server sees the same samples and runs.
#[derive(Debug, Clone)]
pub struct GenomicsServer {
    state: Arc<Mutex<State>>,
    tool_router: Arc<ToolRouter<GenomicsServer>>,
}

impl Default for GenomicsServer {
    fn default() -> Self {
        Self::new()
    }
}

fn ok(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A tool error: `isError: true`, the message as text and as
/// `structuredContent.error`.
fn fail(message: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
    result.structured_content = Some(json!({ "error": message }));
    result
}

fn no_sample(id: &str) -> CallToolResult {
    fail(format!(
        "no sample with id `{id}`; call list_samples to see the sample ids"
    ))
}

/// Trims a required text field; `None` if it is blank.
fn non_blank(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[tool_router]
impl GenomicsServer {
    /// A server with the seed data: samples S-0001 to S-0003 in projects
    /// "platinum-genomes" and "mouse-atlas", and a finished qc run R-0001
    /// on S-0001.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::seed())),
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, but a poisoned store is
        // still consistent: every mutation is a single insert or assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// List samples, optionally only those of one project.
    #[tool(annotations(
        title = "List samples",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn list_samples(&self, Parameters(args): Parameters<ListSamplesArgs>) -> CallToolResult {
        let state = self.state();
        let samples: Vec<&Sample> = state
            .samples
            .values()
            .filter(|s| args.project.as_ref().is_none_or(|p| &s.project == p))
            .collect();
        ok(json!({ "samples": samples }))
    }

    /// Get one sample by id.
    #[tool(annotations(
        title = "Get sample",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn get_sample(&self, Parameters(args): Parameters<SampleIdArgs>) -> CallToolResult {
        match self.state().samples.get(&args.sample_id) {
            Some(sample) => ok(json!({ "sample": sample })),
            None => no_sample(&args.sample_id),
        }
    }

    /// Read the results of a sample's finished pipeline runs.
    #[tool(annotations(
        title = "Read results",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn read_results(&self, Parameters(args): Parameters<SampleIdArgs>) -> CallToolResult {
        let state = self.state();
        if !state.samples.contains_key(&args.sample_id) {
            return no_sample(&args.sample_id);
        }
        let results: Vec<Value> = state
            .runs
            .values()
            .filter(|r| r.sample_id == args.sample_id && r.status == RunStatus::Succeeded)
            .map(|r| json!({"run_id": r.id, "pipeline": r.pipeline, "metrics": r.metrics}))
            .collect();
        ok(json!({ "sample_id": args.sample_id, "results": results }))
    }

    /// Create a sample; the result holds the new sample and its id.
    #[tool(annotations(
        title = "Create sample",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    fn create_sample(&self, Parameters(args): Parameters<CreateSampleArgs>) -> CallToolResult {
        let (Some(name), Some(project)) = (non_blank(&args.name), non_blank(&args.project)) else {
            return fail("name and project must not be empty".into());
        };
        let organism = args.organism.as_deref().and_then(non_blank);
        let mut state = self.state();
        ok(json!({ "sample": state.add_sample(name, project, organism) }))
    }

    /// Change a sample's name, project or organism.
    #[tool(annotations(
        title = "Update sample",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn update_sample(&self, Parameters(args): Parameters<UpdateSampleArgs>) -> CallToolResult {
        if args.name.is_none() && args.project.is_none() && args.organism.is_none() {
            return fail("nothing to update: give at least one of name, project, organism".into());
        }
        let name = args.name.as_deref().map(non_blank);
        let project = args.project.as_deref().map(non_blank);
        if matches!(name, Some(None)) || matches!(project, Some(None)) {
            return fail("name and project must not be empty".into());
        }
        let mut state = self.state();
        let Some(sample) = state.samples.get_mut(&args.sample_id) else {
            return no_sample(&args.sample_id);
        };
        if let Some(Some(name)) = name {
            sample.name = name;
        }
        if let Some(Some(project)) = project {
            sample.project = project;
        }
        if let Some(organism) = args.organism.as_deref() {
            sample.organism = non_blank(organism);
        }
        ok(json!({ "sample": sample }))
    }

    /// Queue a pipeline run ("qc", "wgs-align" or "variant-call") on a
    /// sample, quoting its cost; poll run_status with the returned run id.
    #[tool(annotations(
        title = "Start pipeline run",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    fn start_pipeline_run(&self, Parameters(args): Parameters<StartRunArgs>) -> CallToolResult {
        let priority = args.priority.unwrap_or(DEFAULT_PRIORITY);
        if !(1..=10).contains(&priority) {
            return fail(format!("priority must be from 1 to 10, got {priority}"));
        }
        let Some(price) = price(&args.pipeline, priority) else {
            let known: Vec<&str> = PIPELINES.iter().map(|(name, _)| *name).collect();
            return fail(format!(
                "unknown pipeline `{}`; known pipelines: {}",
                args.pipeline,
                known.join(", ")
            ));
        };
        let cost = args.estimated_cost.unwrap_or(f64::from(price));
        // Not `cost < price`: that would let NaN (which JSON cannot carry,
        // but a future transport might) through.
        if !matches!(
            cost.partial_cmp(&f64::from(price)),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ) {
            return fail(format!(
                "estimated_cost {cost} is below the price of `{}` at priority {priority}: \
                 {price} credits; quote at least that",
                args.pipeline
            ));
        }
        let mut state = self.state();
        if !state.samples.contains_key(&args.sample_id) {
            return no_sample(&args.sample_id);
        }
        ok(json!({ "run": state.add_run(&args.sample_id, &args.pipeline, priority, cost) }))
    }

    /// Get a pipeline run's status. Each call advances a run one step, from
    /// queued to running to succeeded.
    #[tool(annotations(
        title = "Run status",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn run_status(&self, Parameters(args): Parameters<RunIdArgs>) -> CallToolResult {
        let mut state = self.state();
        let Some(run) = state.runs.get_mut(&args.run_id) else {
            return fail(format!(
                "no pipeline run with id `{}`; start_pipeline_run returns run ids",
                args.run_id
            ));
        };
        match run.status {
            RunStatus::Queued => run.status = RunStatus::Running,
            RunStatus::Running => {
                run.status = RunStatus::Succeeded;
                run.metrics = Some(metrics(&run.sample_id, &run.pipeline));
            }
            RunStatus::Succeeded => {}
        }
        ok(json!({ "run": run }))
    }

    /// Email a link to a sample's results to someone outside the
    /// platform (the demo sends nothing; it says it did).
    #[tool(annotations(
        title = "Share results",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    fn share_results(&self, Parameters(args): Parameters<ShareArgs>) -> CallToolResult {
        let state = self.state();
        if !state.samples.contains_key(&args.sample_id) {
            return no_sample(&args.sample_id);
        }
        ok(json!({ "shared": { "sample_id": args.sample_id, "to": args.to, "status": "sent" } }))
    }

    /// Delete a sample and its pipeline runs. This cannot be undone.
    #[tool(annotations(
        title = "Delete sample",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    fn delete_sample(&self, Parameters(args): Parameters<SampleIdArgs>) -> CallToolResult {
        let mut state = self.state();
        let Some(sample) = state.samples.remove(&args.sample_id) else {
            return no_sample(&args.sample_id);
        };
        state.runs.retain(|_, run| run.sample_id != sample.id);
        ok(json!({ "deleted": sample }))
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "genomics",
    instructions = "A demo genomics platform: samples, pipeline runs and their results. All data is made up and kept in memory."
)]
impl ServerHandler for GenomicsServer {}

/// Serves a fresh [`GenomicsServer`] on stdin/stdout until the client
/// disconnects.
pub async fn serve_stdio() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let running = GenomicsServer::new()
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

/// Serves MCP Streamable HTTP at path `/mcp` on `listener` until an I/O error;
/// all sessions share one [`GenomicsServer`] store. On a loopback address
/// only loopback `Host` headers are accepted (rmcp's DNS-rebinding guard); on
/// any other address every `Host` is.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = StreamableHttpServerConfig::default().with_sse_keep_alive(None);
    if !listener.local_addr()?.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let server = GenomicsServer::new();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    // Without TCP_NODELAY the end of each response stream waits for the
    // client's delayed ACK (~40 ms a call).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.map_err(BoxError::from)
}
