//! `warden audit verify FILE...`: checks the decision log's hash chain
//! and, with `--key`, its signed checkpoints; prints where the chain
//! first breaks (a line removed, altered, reordered or inserted) or that
//! it is intact, with what the check could not cover.

use crate::exit;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use warden_engine::log::CheckpointVerifier;
use warden_engine::log::verify::{Verification, verify_chain};
use warden_proxy::provenance_token::VerifyingKey;

/// `warden audit` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check a decision log's hash chain and signed checkpoints.
    ///
    /// Exit codes: 0 intact, 1 broken (the first removed, altered, reordered
    /// or inserted line is reported), 2 bad usage (an unreadable file or key).
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditFormat {
    Human,
    Json,
}

/// `warden audit verify` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  warden audit verify --key warden.pub decisions.jsonl\n  warden audit verify --key warden.pub decisions.jsonl.* decisions.jsonl   (rotated files, oldest first)"
)]
pub(crate) struct VerifyArgs {
    /// The log files, in the order warden wrote them: rotated files oldest
    /// first (FILE.000001, FILE.000002, ...), then FILE.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Warden's ed25519 public key (PEM), the pair of the --signing-key
    /// that signed the checkpoints; without it, signatures are not checked.
    #[arg(long, value_name = "PUBLIC.pem")]
    key: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Human)]
    format: AuditFormat,
}

pub(crate) fn run(command: AuditCommand) -> i32 {
    match command {
        AuditCommand::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> i32 {
    let key = match args.key.as_deref().map(VerifyingKey::load).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            return exit::USAGE;
        }
    };
    let files = match crate::files::open_log_files(&args.files) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let report = match verify_chain(files, key.as_ref().map(|k| k as &dyn CheckpointVerifier)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the log: {e}");
            return exit::USAGE;
        }
    };
    match args.format {
        AuditFormat::Human => print_human(&report),
        AuditFormat::Json => println!("{}", json(&report)),
    }
    if report.broken.is_some() {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn print_human(report: &Verification) {
    match &report.broken {
        Some(b) => {
            println!("broken: {}: {}: {}", b.place, b.kind.as_str(), b.message);
            println!(
                "  {} line(s) checked before the break, {} checkpoint(s), {} signature(s) verified",
                report.lines.saturating_sub(1),
                report.checkpoints,
                report.signatures_checked
            );
        }
        None => println!(
            "intact: {} line(s), {} checkpoint(s), {} signature(s) verified",
            report.lines, report.checkpoints, report.signatures_checked
        ),
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}

fn json(report: &Verification) -> serde_json::Value {
    serde_json::json!({
        "intact": report.broken.is_none(),
        "lines": report.lines,
        "checkpoints": report.checkpoints,
        "signatures_checked": report.signatures_checked,
        "unsealed": report.unsealed,
        "unchained_prefix": report.unchained_prefix,
        "broken": report.broken.as_ref().map(|b| serde_json::json!({
            "kind": b.kind.as_str(),
            "file": b.place.file,
            "line": b.place.line,
            "message": b.message,
        })),
        "notes": report.notes,
    })
}
