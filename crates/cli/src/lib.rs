//! `warden-cli`: the command line. The only crate that prints or touches
//! the file system for policies; everything it shows comes from the
//! library crates as values.

/// `print!` that stops quietly when stdout is closed (`warden lint | head`)
/// instead of panicking on a broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `println!` that stops quietly when stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod audit_cmd;
mod check_cmd;
mod demo_cmd;
mod demo_lab_lead;
mod eval_cmd;
mod files;
mod fmt_cmd;
mod lint;
mod proxy_cmd;
mod replay_cmd;
mod report_cmd;
mod runtime;
mod sarif;
mod serve_cmd;
mod test_cmd;
mod tools_cmd;
mod verify_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit codes, as Cedar's CLI uses them.
pub mod exit {
    /// Clean.
    pub const OK: i32 = 0;
    /// Findings (lint errors, formatting needed, compile errors).
    pub const FAILURE: i32 = 1;
    /// Bad usage or an I/O error: nothing was checked.
    pub const USAGE: i32 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Policy engine and MCP proxy that governs what AI agents may do"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check .policy files: syntax, semantics, and that the Cedar they compile to validates.
    ///
    /// Each PATH is one policy set: a single file, or every .policy file under a directory.
    Lint {
        /// Files or directories (default: ./policies).
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// A pin file (`warden tools pin > tools.lock`): also report every
        /// `server` or `tool` pattern that matches no server or tool in it.
        #[arg(long, value_name = "FILE")]
        tools: Option<PathBuf>,
    },
    /// Print the Cedar policies a policy set compiles to.
    Compile {
        /// Files or directories; all of them form one policy set.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also print the generated Cedar schema.
        #[arg(long)]
        schema: bool,
    },
    /// Decide one tool call (a JSON request) against a policy set and show why.
    ///
    /// Exit codes: 0 allow, 1 error, 2 deny, 3 confirmation required.
    Eval {
        /// Policy file or directory.
        #[arg(long)]
        policies: PathBuf,
        /// The call as JSON (see docs/engine.md).
        #[arg(long)]
        request: PathBuf,
        /// Output format (`json` prints the full decision).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run policy test files (*.test.toml): sequences of calls with expected decisions.
    Test {
        /// Test files or directories (default: ./policies).
        paths: Vec<PathBuf>,
    },
    /// Run the MCP proxy: every tool call an agent makes goes through the policies.
    ///
    /// Without --listen it serves MCP on stdio, for MCP clients that launch
    /// servers as commands (Claude Desktop, Claude Code, Cursor).
    Proxy(Box<proxy_cmd::ProxyArgs>),
    /// Run warden as the agent gateway for several MCP servers, from a config file.
    ///
    /// Serves each server at /servers/<name>/mcp and all of them, federated, at /mcp.
    Serve(serve_cmd::ServeArgs),
    /// Validate a `warden serve` config file (and what it names) without starting anything.
    ///
    /// Exit codes: 0 valid, 1 invalid, 2 bad usage (unreadable file).
    Check(check_cmd::CheckArgs),
    /// See warden at work: a scripted agent session through the proxy, with the
    /// bundled demo genomics MCP server and policies/genomics.policy.
    Demo {
        /// Use this policy file or directory instead of the built-in genomics.policy.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Keep the decision log in FILE (default: a temporary file).
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
    },
    /// The demo genomics MCP server (for `warden demo` and tests).
    #[command(hide = true)]
    DemoServer {
        /// Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio.
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
    },
    /// A raw JSON-RPC MCP server on stdio for the proxy's tests.
    #[command(hide = true)]
    ProxyTestUpstream,
    /// Verify a provenance token from `warden proxy --signing-key`: print its
    /// claims, or why it is not valid.
    ///
    /// Exit codes: 0 valid, 1 invalid, 2 bad usage (unreadable key).
    Verify(verify_cmd::VerifyArgs),
    /// Decide the calls of a decision log again against candidate policies,
    /// and show each call whose decision would change.
    ///
    /// Exit codes: 0 no change, 1 some call changes or cannot be decided
    /// (an argument the log holds redacted), 2 bad usage.
    Replay(replay_cmd::ReplayArgs),
    /// Write a self-contained HTML page with charts of a decision log.
    Report(report_cmd::ReportArgs),
    /// Check the decision log: its hash chain and signed checkpoints.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// The tools an upstream offers, and the definitions warden pinned:
    /// list, diff and approve changes, write a pin file.
    Tools {
        #[command(subcommand)]
        command: tools_cmd::ToolsCommand,
    },
    /// Format .policy files canonically, in place.
    Fmt {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; list files that are not formatted and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
    Sarif,
}

/// Runs the CLI with the process arguments and returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    match cli.command {
        Command::Lint {
            paths,
            format,
            deny_warnings,
            tools,
        } => lint::run(paths, format, deny_warnings, tools.as_deref()),
        Command::Compile { paths, schema } => lint::compile(paths, schema),
        Command::Fmt { paths, check } => fmt_cmd::run(paths, check),
        Command::Eval {
            policies,
            request,
            format,
        } => eval_cmd::run(&policies, &request, format),
        Command::Test { paths } => test_cmd::run(paths),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Tools { command } => tools_cmd::run(command),
        Command::Replay(args) => replay_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Proxy(args) => proxy_cmd::run(*args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Demo {
            policies,
            audit_log,
        } => demo_cmd::run(policies, audit_log),
        Command::DemoServer { listen } => proxy_cmd::demo_server(listen),
        Command::ProxyTestUpstream => {
            warden_proxy::testkit::run_test_upstream();
            exit::OK
        }
    }
}
