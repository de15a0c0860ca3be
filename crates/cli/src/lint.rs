//! `warden lint` and `warden compile`: load each policy set, report its
//! diagnostics as human text, JSON or SARIF, and pick the exit code.

use crate::{Format, exit, files, sarif};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use warden_lang::{Diagnostic, Diagnostics, Sources, compile_policy_set, lint_policy_set};

/// One linted set: its name (the path given), its sources and findings.
pub(crate) struct LintedSet {
    pub name: String,
    pub sources: Sources,
    pub diagnostics: Diagnostics,
}

pub(crate) fn run(
    mut paths: Vec<PathBuf>,
    format: Format,
    deny_warnings: bool,
    tools: Option<&std::path::Path>,
) -> i32 {
    if paths.is_empty() {
        paths.push(PathBuf::from("policies"));
    }
    let catalog = match tools
        .map(warden_proxy::tool_pins::load_pin_file)
        .transpose()
    {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", render_report(&e));
            return exit::USAGE;
        }
    };
    let mut sets = Vec::new();
    for path in &paths {
        let loaded = files::policy_files(path).and_then(|f| {
            if f.is_empty() {
                Err(format!("no .policy files in `{}`", path.display()))
            } else {
                files::read_sources(&f)
            }
        });
        match loaded {
            Ok(sources) => {
                let diagnostics = match &catalog {
                    Some(pins) => warden_lang::lint_policy_set_against(&sources, pins.catalog()),
                    None => lint_policy_set(&sources),
                };
                sets.push(LintedSet {
                    name: files::display_path(path),
                    sources,
                    diagnostics,
                });
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }

    match format {
        Format::Human => print_human(&sets),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&to_json(&sets)).expect("json")
        ),
        Format::Sarif => outln!(
            "{}",
            serde_json::to_string_pretty(&sarif::to_sarif(&sets)).expect("json")
        ),
    }
    let errors: usize = sets.iter().map(|s| s.diagnostics.error_count()).sum();
    let warnings: usize = sets.iter().map(|s| s.diagnostics.warning_count()).sum();
    if errors > 0 || (deny_warnings && warnings > 0) {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn handler() -> miette::GraphicalReportHandler {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    miette::GraphicalReportHandler::new_themed(theme).with_width(100)
}

/// Renders diagnostics the way `warden lint` shows them to a person. No
/// control character from a policy reaches the terminal: each is printed
/// as its escape, `\u{1b}` (warden_lang::terminal).
pub fn render_human(diags: &[Diagnostic]) -> String {
    let handler = handler();
    let mut out = String::new();
    for d in diags {
        let _ = handler.render_report(&mut out, &d.escaped_for_terminal());
        out.push('\n');
    }
    out
}

/// Renders any miette diagnostic (a load error, say) as the CLI shows it.
pub fn render_report(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    let _ = handler().render_report(&mut out, d);
    out
}

pub(crate) fn print_human_list(diags: &[Diagnostic], _sources: &Sources) {
    out!("{}", render_human(diags));
}

fn print_human(sets: &[LintedSet]) {
    for set in sets {
        let diags: Vec<Diagnostic> = set.diagnostics.iter().cloned().collect();
        out!("{}", render_human(&diags));
        let (e, w) = (
            set.diagnostics.error_count(),
            set.diagnostics.warning_count(),
        );
        let files = set.sources.len();
        let files = format!("{files} file{}", if files == 1 { "" } else { "s" });
        if e == 0 && w == 0 {
            outln!("{}: {files}, no problems", set.name);
        } else {
            outln!(
                "{}: {files}, {e} error{}, {w} warning{}",
                set.name,
                if e == 1 { "" } else { "s" },
                if w == 1 { "" } else { "s" }
            );
        }
    }
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    json!({
        "code": d.code().id(),
        "severity": d.severity(),
        "message": d.message(),
        "help": d.help_text(),
        "location": d.location(),
        "labels": d.labels().iter().map(|l| json!({
            "start": l.span().start,
            "end": l.span().end,
            "text": l.text(),
        })).collect::<Vec<_>>(),
        "related": d.related_notes().iter().map(diagnostic_json).collect::<Vec<_>>(),
    })
}

fn to_json(sets: &[LintedSet]) -> serde_json::Value {
    json!({
        "sets": sets.iter().map(|s| json!({
            "path": s.name,
            "files": s.sources.iter().map(|(_, f)| f.name()).collect::<Vec<_>>(),
            "errors": s.diagnostics.error_count(),
            "warnings": s.diagnostics.warning_count(),
            "diagnostics": s.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "errors": sets.iter().map(|s| s.diagnostics.error_count()).sum::<usize>(),
        "warnings": sets.iter().map(|s| s.diagnostics.warning_count()).sum::<usize>(),
    })
}

pub(crate) fn compile(paths: Vec<PathBuf>, schema: bool) -> i32 {
    let mut all = Vec::new();
    for p in &paths {
        match files::policy_files(p) {
            Ok(f) => all.extend(f),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    if all.is_empty() {
        eprintln!("error: no .policy files in the given paths");
        return exit::USAGE;
    }
    let sources = match files::read_sources(&all) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    match compile_policy_set(&sources) {
        Ok(out) => {
            let warnings: Vec<Diagnostic> = out.warnings.iter().cloned().collect();
            eprint!("{}", render_human(&warnings));
            out!("{}", out.policy_set.cedar_text());
            if schema {
                outln!();
                out!("{}", out.policy_set.schema_text());
            }
            exit::OK
        }
        Err(diags) => {
            let diags: Vec<Diagnostic> = diags.into_iter().collect();
            eprint!("{}", render_human(&diags));
            eprintln!(
                "error: could not compile: {} error(s)",
                diags.iter().filter(|d| d.is_error()).count()
            );
            exit::FAILURE
        }
    }
}
