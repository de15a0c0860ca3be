//! The checks of annotation declarations (`tool "x" is destructive`):
//! patterns that can match, each hint claimed once, no read-only tool that
//! is destructive or not idempotent; and (set-wide) the warning on rules
//! that read an annotation the operator states for none of their tools.

use super::RuleParts;
use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::glob::{glob_covers, tool_glob_problem};
use crate::lints;

pub(super) fn check_annotation(decl: &AnnotationDecl, diags: &mut Vec<Diagnostic>) {
    for p in &decl.tools.patterns {
        if let Some(why) = tool_glob_problem(&p.node) {
            diags.push(lints::glob_never_matches(p.span, &p.node, &why));
        }
    }
    if let Some(servers) = &decl.servers {
        for p in servers.patterns.iter().filter(|p| p.node.is_empty()) {
            diags.push(lints::empty_server_pattern(p.span));
        }
    }
    let mut seen: Vec<&Claim> = Vec::new();
    for c in &decl.claims {
        match seen.iter().find(|s| s.flag == c.flag) {
            Some(first) => diags.push(lints::claimed_twice(
                first.span,
                c.span,
                c.flag.claim_word(),
            )),
            None => seen.push(c),
        }
    }
    if let Some(ro) = seen
        .iter()
        .find(|c| c.flag == ToolFlag::ReadOnly && c.value)
    {
        for c in &seen {
            let contradicts = match c.flag {
                ToolFlag::Destructive => c.value,
                ToolFlag::Idempotent => !c.value,
                _ => false,
            };
            if contradicts {
                diags.push(lints::read_only_contradiction(ro.span, c.span, &c.text()));
            }
        }
    }
}

/// The tool-flag tests of `expr`, with their spans.
fn flag_reads(expr: &Expr, out: &mut Vec<(ToolFlag, crate::source::Span)>) {
    match expr {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| flag_reads(e, out)),
        Expr::Not(e, _) => flag_reads(e, out),
        Expr::Atom(Atom::ToolFlag(f), span) => out.push((*f, *span)),
        Expr::Atom(..) => {}
    }
}

/// Warns of a rule with a `tool` clause whose condition reads a tool flag
/// that no annotation declaration states for every tool pattern of the
/// rule (on the rule's servers). A rule without a `tool` clause reads the
/// flag of any tool, which no declaration can list: docs/language.md says
/// plainly that it reads the upstream's claim.
pub(super) fn check_upstream_reads(
    parts: &RuleParts<'_>,
    decls: &[&AnnotationDecl],
    diags: &mut Vec<Diagnostic>,
) {
    let (Some(tools), Some(when)) = (parts.tool, parts.when) else {
        return;
    };
    let mut reads = Vec::new();
    flag_reads(when, &mut reads);
    let servers_covered = |d: &AnnotationDecl| match (&d.servers, parts.server) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(outer), Some(inner)) => inner
            .patterns
            .iter()
            .all(|i| outer.patterns.iter().any(|o| glob_covers(&o.node, &i.node))),
    };
    let mut warned: Vec<ToolFlag> = Vec::new();
    for (flag, span) in reads {
        if warned.contains(&flag) {
            continue;
        }
        let uncovered: Vec<&str> = tools
            .patterns
            .iter()
            .filter(|t| {
                !decls.iter().any(|d| {
                    servers_covered(d)
                        && d.claims.iter().any(|c| c.flag == flag)
                        && d.tools
                            .patterns
                            .iter()
                            .any(|o| glob_covers(&o.node, &t.node))
                })
            })
            .map(|t| t.node.as_str())
            .collect();
        if uncovered.is_empty() {
            continue;
        }
        warned.push(flag);
        let tools_text = uncovered
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        diags.push(lints::upstream_annotation(
            span,
            flag.keyword(),
            flag.mcp_annotation(),
            &tools_text,
        ));
    }
}
