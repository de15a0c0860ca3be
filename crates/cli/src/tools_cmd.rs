//! `warden tools`: the tools an upstream offers and the definitions warden
//! pinned. `list --upstream URL | -- COMMAND` shows a server's name, tools
//! and annotations as warden reads them (what `server` and `tool` patterns
//! must match); `list`, `diff`, `approve` and `pin` read the state store
//! (`--state`) where `warden proxy` / `warden serve` pin definitions on
//! first use.

use crate::exit;
use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use warden_engine::pins::ToolPin;
use warden_engine::state::{StateLimits, SystemClock};
use warden_engine::{RedisOptions, RedisState, SqliteState, StateLocation, StateStore};

#[derive(Debug, Subcommand)]
pub(crate) enum ToolsCommand {
    /// The pinned tools (with --state), or an upstream's tools as warden
    /// sees them (--upstream URL, or a command after --).
    List(ListArgs),
    /// The changes waiting for approval: the pinned definition against
    /// the one an upstream listed since, as a unified diff.
    Diff(SelectArgs),
    /// Pin the definitions waiting for approval: their tools are shown
    /// and callable again.
    Approve(ApproveArgs),
    /// Print the pinned definitions as a pin file (`> tools.lock`), for
    /// `--tool-pins strict --pin-file` and `warden lint --tools`.
    Pin(StateArg),
}

#[derive(Debug, Args)]
pub(crate) struct StateArg {
    /// The state store warden pins in: a SQLite file, `sqlite:///path` or
    /// `redis://...`.
    #[arg(long, value_name = "FILE|URL")]
    state: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long, value_name = "FILE|URL", conflicts_with = "upstream")]
    state: Option<PathBuf>,
    /// A Streamable HTTP MCP server to ask for its tools.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// A stdio MCP server to start and ask (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    #[command(flatten)]
    state: StateArg,
    /// Only this server's tools.
    #[arg(long)]
    server: Option<String>,
    /// Only these tools.
    tools: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Every change waiting (of --server, if given).
    #[arg(long, conflicts_with = "tools")]
    all: bool,
}

pub(crate) fn run(command: ToolsCommand) -> i32 {
    match command {
        ToolsCommand::List(args) => list(args),
        ToolsCommand::Diff(args) => diff(&args),
        ToolsCommand::Approve(args) => approve(&args),
        ToolsCommand::Pin(args) => match pins_of(&args) {
            Ok(pins) => {
                outln!(
                    "{}",
                    warden_proxy::tool_pins::PinFile::text_of(&pins).trim_end()
                );
                exit::OK
            }
            Err(code) => code,
        },
    }
}

fn open_store(state: &StateArg) -> Result<Arc<dyn StateStore>, i32> {
    let location =
        match StateLocation::parse(&state.state.to_string_lossy(), std::path::Path::new("")) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: --state: {}\n  help: {}", e.message, e.help);
                return Err(exit::USAGE);
            }
        };
    let opened: Result<Arc<dyn StateStore>, String> = match &location {
        StateLocation::Sqlite(path) => {
            if !path.exists() {
                eprintln!(
                    "error: no state file `{}`\n  help: give the file `warden proxy --state` or `state = ...` writes",
                    path.display()
                );
                return Err(exit::USAGE);
            }
            SqliteState::open(path, StateLimits::default(), Arc::new(SystemClock))
                .map(|s| Arc::new(s) as Arc<dyn StateStore>)
                .map_err(|e| e.to_string())
        }
        StateLocation::Redis(url) => {
            RedisState::open(url, StateLimits::default(), RedisOptions::default())
                .map(|s| Arc::new(s) as Arc<dyn StateStore>)
                .map_err(|e| e.to_string())
        }
    };
    opened.map_err(|e| {
        eprintln!("error: cannot open the state store: {e}");
        exit::FAILURE
    })
}

fn pins_of(state: &StateArg) -> Result<Vec<ToolPin>, i32> {
    let store = open_store(state)?;
    store.pins().map_err(|e| {
        eprintln!("error: cannot read the pinned tools: {e}");
        exit::FAILURE
    })
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn list(args: ListArgs) -> i32 {
    if let Some(state) = args.state {
        let pins = match pins_of(&StateArg { state }) {
            Ok(p) => p,
            Err(code) => return code,
        };
        if pins.is_empty() {
            outln!(
                "no tool is pinned yet (warden pins each tool's definition when an upstream first lists it)"
            );
            return exit::OK;
        }
        for p in &pins {
            match &p.pending {
                None => outln!("{}  {}  pinned {}", p.server, p.tool, short(&p.digest)),
                Some(n) => outln!(
                    "{}  {}  changed: pinned {}, listed {} (hidden and refused; `warden tools diff`, then `warden tools approve`)",
                    p.server,
                    p.tool,
                    short(&p.digest),
                    short(&n.digest)
                ),
            }
        }
        return exit::OK;
    }
    if args.upstream.is_none() && args.command.is_empty() {
        eprintln!(
            "error: nothing to list: give --state FILE (the pinned tools), --upstream URL or a command after --\n  help: e.g. `warden tools list -- npx -y @modelcontextprotocol/server-filesystem /tmp`"
        );
        return exit::USAGE;
    }
    let runtime = match crate::runtime::async_runtime(Some(0)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(list_upstream(args.upstream, args.command)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: cannot list the upstream's tools: {e}");
            exit::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Asks the upstream (as an MCP client, as warden does) for its name and
/// tools, and prints them with the annotations rules read.
async fn list_upstream(url: Option<String>, command: Vec<OsString>) -> Result<(), BoxError> {
    use rmcp::ServiceExt;
    let client = match url {
        Some(url) => {
            let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
                rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url),
            );
            ().serve(transport).await?
        }
        None => {
            let (program, rest) = command.split_first().ok_or("no command")?;
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(rest);
            let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::inherit())
                .spawn()?;
            ().serve(transport).await?
        }
    };
    let name = client
        .peer_info()
        .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
        .unwrap_or_default();
    let tools = client.list_all_tools().await?;
    outln!(
        "server `{name}` (its serverInfo.name: what `server` patterns match, unless warden is given --name)"
    );
    for t in &tools {
        let json = serde_json::to_value(t)?;
        let info = warden_proxy::govern::ToolInfo::from_tool(&json);
        let r = info.annotations.resolved();
        // What the server said of each hint; one it did not give takes
        // MCP's default (readOnlyHint false, destructiveHint true,
        // idempotentHint false, openWorldHint true), as rules read it.
        let said = |v: Option<bool>, hint: &str, default: bool| match v {
            Some(b) => format!("{hint} {b}"),
            None => format!("no {hint} (MCP default {default})"),
        };
        let a = info.annotations;
        outln!(
            "  - {}: tool.read_only {}, tool.destructive {}, tool.idempotent {}, tool.open_world {}",
            t.name,
            r.read_only,
            r.destructive,
            r.idempotent,
            r.open_world
        );
        outln!(
            "      the server says: {}, {}, {}, {}",
            said(a.read_only_hint, "readOnlyHint", false),
            said(a.destructive_hint, "destructiveHint", true),
            said(a.idempotent_hint, "idempotentHint", false),
            said(a.open_world_hint, "openWorldHint", true),
        );
    }
    client.cancel().await?;
    Ok(())
}

/// The pins `select` names that have a change waiting.
fn changed<'a>(pins: &'a [ToolPin], select: &SelectArgs) -> Vec<&'a ToolPin> {
    pins.iter()
        .filter(|p| p.pending.is_some())
        .filter(|p| select.server.as_ref().is_none_or(|s| *s == p.server))
        .filter(|p| select.tools.is_empty() || select.tools.contains(&p.tool))
        .collect()
}

fn pretty(canonical: &str) -> String {
    serde_json::from_str::<serde_json::Value>(canonical)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| canonical.to_string())
        + "\n"
}

fn diff(args: &SelectArgs) -> i32 {
    let pins = match pins_of(&args.state) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let waiting = changed(&pins, args);
    if waiting.is_empty() {
        outln!("no changed definition is waiting for approval");
        return exit::OK;
    }
    for p in waiting {
        let Some(seen) = &p.pending else { continue };
        let (old, new) = (pretty(&p.definition), pretty(&seen.definition));
        let text = similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{}/{} pinned {}", p.server, p.tool, p.digest),
                &format!("{}/{} listed {}", p.server, p.tool, seen.digest),
            )
            .to_string();
        outln!("{}", text.trim_end());
    }
    exit::OK
}

fn approve(args: &ApproveArgs) -> i32 {
    let select = &args.select;
    if !args.all && select.tools.is_empty() {
        eprintln!(
            "error: name the tools to approve, or give --all\n  help: `warden tools diff --state FILE` shows what changed"
        );
        return exit::USAGE;
    }
    let store = match open_store(&select.state) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let pins = match store.pins() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot read the pinned tools: {e}");
            return exit::FAILURE;
        }
    };
    let waiting = changed(&pins, select);
    let mut code = exit::OK;
    for name in &select.tools {
        if !waiting.iter().any(|p| p.tool == *name) {
            eprintln!("error: no changed definition of `{name}` is waiting for approval");
            code = exit::FAILURE;
        }
    }
    for p in waiting {
        match store.approve_pin(&p.server, &p.tool) {
            Ok(true) => outln!(
                "approved `{}` of `{}`: {} is pinned now",
                p.tool,
                p.server,
                p.pending.as_ref().map_or("", |n| n.digest.as_str())
            ),
            Ok(false) => {}
            Err(e) => {
                eprintln!("error: cannot approve `{}`: {e}", p.tool);
                code = exit::FAILURE;
            }
        }
    }
    code
}
