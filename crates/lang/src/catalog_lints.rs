//! Policies against the tools that exist (`warden lint --tools
//! tools.lock`): a `server` pattern no known server matches, or a `tool`
//! pattern no tool of the servers it applies to matches, never applies.
//! Tried as a new user would, `server "filesystem"` (the server calls
//! itself `secure-filesystem-server`) and `tool "read_text_flie"` passed
//! lint and silently did nothing: an intended deny under `default allow`
//! let the agent through.

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::glob::glob_matches;
use crate::source::{Sources, Span};

/// The servers that exist and the tools each lists.
pub type Catalog = [(String, Vec<String>)];

/// The findings of every rule, records and annotation declaration of the
/// parsed set against `catalog`.
pub fn check_against_catalog(
    files: &[PolicyFile],
    sources: &Sources,
    catalog: &Catalog,
) -> Diagnostics {
    let mut diags = Vec::new();
    for item in files.iter().flat_map(|f| &f.items) {
        let (servers, tools) = match item {
            Item::Rule(r) => {
                let mut servers = None;
                let mut tools = None;
                for c in &r.clauses {
                    match c {
                        Clause::Server(p) => servers = Some(p),
                        Clause::Tool(p) => tools = Some(p),
                        _ => {}
                    }
                }
                (servers, tools)
            }
            Item::Annotation(a) => (a.servers.as_ref(), Some(&a.tools)),
            _ => continue,
        };
        check_patterns(servers, tools, catalog, &mut diags);
    }
    let mut out = Diagnostics::new();
    out.extend(diags);
    out.resolve(sources)
}

fn check_patterns(
    servers: Option<&PatternList>,
    tools: Option<&PatternList>,
    catalog: &Catalog,
    diags: &mut Vec<Diagnostic>,
) {
    let known: Vec<&str> = catalog.iter().map(|(s, _)| s.as_str()).collect();
    let mut matched: Vec<&(String, Vec<String>)> = Vec::new();
    match servers {
        None => matched.extend(catalog.iter()),
        Some(list) => {
            for p in &list.patterns {
                let hits: Vec<_> = catalog
                    .iter()
                    .filter(|(s, _)| glob_matches(&p.node, s))
                    .collect();
                if hits.is_empty() {
                    diags.push(unknown_server(p.span, &p.node, &known));
                }
                matched.extend(hits);
            }
        }
    }
    if matched.is_empty() {
        return;
    }
    let Some(tools) = tools else { return };
    let names: Vec<&str> = matched
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(String::as_str))
        .collect();
    for p in &tools.patterns {
        if !names.iter().any(|t| glob_matches(&p.node, t)) {
            let servers: Vec<&str> = matched.iter().map(|(s, _)| s.as_str()).collect();
            diags.push(unknown_tool(p.span, &p.node, &servers, &names));
        }
    }
}

/// The known name closest to `name`, if it is a typo or two away.
fn near<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let allowed = (name.len() / 4).clamp(1, 3);
    known
        .iter()
        .map(|k| (crate::lints::distance(name, k), *k))
        .filter(|(d, _)| *d <= allowed)
        .min()
        .map(|(_, k)| k)
}

fn unknown_server(at: Span, pattern: &str, known: &[&str]) -> Diagnostic {
    let help = match near(pattern, known) {
        Some(k) => format!(
            "did you mean `{k}`? servers are named as they call themselves (`serverInfo.name`), or as `--name` / `[servers.NAME]` names them"
        ),
        None => format!(
            "the pinned servers are {}; `warden tools list -- COMMAND` shows a server's name",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Diagnostic::new(
        Code::UnknownServer,
        format!("no server warden knows matches `{pattern}`"),
    )
    .with_label(at, "matches no server: the rule never applies")
    .with_help(help)
}

fn unknown_tool(at: Span, pattern: &str, servers: &[&str], tools: &[&str]) -> Diagnostic {
    let on = servers
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match near(pattern, tools) {
        Some(t) => format!("did you mean `{t}`?"),
        None => format!("`warden tools list -- COMMAND` shows the tools of {on}"),
    };
    Diagnostic::new(
        Code::UnknownTool,
        format!("no tool of {on} matches `{pattern}`"),
    )
    .with_label(at, "matches no tool: the rule never applies to it")
    .with_help(help)
}
