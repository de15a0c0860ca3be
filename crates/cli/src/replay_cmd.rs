//! `warden replay --log FILE... --policies CANDIDATE`: decides the calls a
//! decision log recorded again against a candidate policy set and prints
//! each call whose decision would change, the calls it cannot decide
//! (an argument the log holds redacted or bounded), and a summary by rule.

use crate::exit;
use clap::Args;
use std::path::PathBuf;
use warden_engine::replay::{ReplayReport, Replayed, read_recorded, replay};

/// `warden replay` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  warden replay --log decisions.jsonl --policies candidate/\n  warden replay --log decisions.jsonl.* decisions.jsonl --policies policies/ --format json\n\nExit codes: 0 no decision changes, 1 some change or cannot be decided, 2 bad usage."
)]
pub(crate) struct ReplayArgs {
    /// Decision log files (rotated ones too, in any order: calls are
    /// replayed in the order of their timestamps).
    #[arg(long = "log", value_name = "FILE", required = true, num_args = 1..)]
    logs: Vec<PathBuf>,
    /// The candidate policy file or directory.
    #[arg(long, value_name = "PATH")]
    policies: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Human)]
    format: ReplayFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReplayFormat {
    Human,
    Json,
}

pub(crate) fn run(args: ReplayArgs) -> i32 {
    // A candidate that does not compile is bad input (exit 2), not a
    // change of decisions (exit 1).
    let bundle = match crate::runtime::load_policies(&args.policies) {
        Ok(b) => b,
        Err(_) => return exit::USAGE,
    };
    let files = match crate::files::open_log_files(&args.logs) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut report = ReplayReport::default();
    let calls = match read_recorded(files, &mut report) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read the log: {e}");
            return exit::USAGE;
        }
    };
    replay(bundle, calls, &mut report);
    match args.format {
        ReplayFormat::Human => print_human(&report),
        ReplayFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return exit::FAILURE;
            }
        },
    }
    if report.changed.is_empty() && report.unknown.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

fn rules(list: &[String]) -> String {
    if list.is_empty() {
        "no rule".to_string()
    } else {
        list.iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn who(user: &str, agent: Option<&str>) -> String {
    match agent {
        Some(a) => format!("{user} via {a}"),
        None => user.to_string(),
    }
}

/// A replayed call's first line: when, who, what, old -> `after`, where.
fn headline(call: &Replayed, after: &str) {
    println!(
        "{}  {}  {}/{}  {} -> {after}  ({}:{})",
        call.time,
        who(&call.user, call.agent.as_deref()),
        call.server,
        call.tool,
        call.before.as_str(),
        call.file,
        call.line
    );
}

fn print_human(report: &ReplayReport) {
    for c in &report.changed {
        let call = &c.call;
        headline(call, c.after.as_str());
        println!(
            "    was {} by {}; now {} by {}",
            call.before.as_str(),
            rules(&call.before_rules),
            c.after.as_str(),
            rules(&c.after_rules)
        );
        if let Some(reason) = &c.after_reason {
            println!("    reason: {reason}");
        }
    }
    for u in &report.unknown {
        headline(&u.call, "unknown");
        for r in &u.rules {
            println!(
                "    `{}` reads {}, which the log does not hold",
                r.rule,
                r.lacks
                    .iter()
                    .map(|l| if l.starts_with('/') {
                        format!("argument `{l}` (redacted or bounded)")
                    } else {
                        format!("`{l}` records")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    for bad in &report.unreadable {
        println!("unreadable: {bad}");
    }
    println!(
        "{} call(s) replayed: {} change(s), {} unknown{}",
        report.calls,
        report.changed.len(),
        report.unknown.len(),
        if report.skipped > 0 {
            format!(" ({} other line(s) skipped)", report.skipped)
        } else {
            String::new()
        }
    );
    if !report.by_rule.is_empty() {
        println!("| rule | decided the call before | decides it now | unknown |");
        println!("|---|---|---|---|");
        for (rule, n) in &report.by_rule {
            println!("| `{rule}` | {} | {} | {} |", n.before, n.after, n.unknown);
        }
    }
}
