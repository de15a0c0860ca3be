//! What a rule's condition means on calls its author may not have
//! pictured: a tool that does not declare an MCP hint (`hint-default`) and
//! a path argument tested with a glob (`path-glob`), here; tests that can
//! never hold and caps that can never fire, over the whole set, in
//! [`dead`]. Both walk a condition tracking its polarity, which the parser
//! bounds (crate::limits).

mod dead;
pub(crate) use dead::check_dead;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;

/// What `tool.<flag>` reads for a tool that does not declare the hint: the
/// MCP default (docs/language.md, "Tool annotations").
pub fn hint_default(flag: ToolFlag) -> bool {
    match flag {
        ToolFlag::ReadOnly | ToolFlag::Idempotent => false,
        ToolFlag::Destructive | ToolFlag::OpenWorld => true,
    }
}

/// Warns on each tool-flag test that, on a tool without that hint, works
/// against the rule: an `allow` it satisfies (it grants unannotated tools)
/// or a restriction it falsifies (unannotated tools escape it). Tests in the
/// cautious polarity (`deny ... when tool.destructive`) say nothing.
pub(crate) fn check_hint_defaults(kind: RuleKind, when: &Expr, diags: &mut Vec<Diagnostic>) {
    let mut stack = vec![(when, true)];
    while let Some((e, positive)) = stack.pop() {
        match e {
            Expr::Or(v, _) | Expr::And(v, _) => stack.extend(v.iter().rev().map(|e| (e, positive))),
            Expr::Not(inner, _) => stack.push((inner, !positive)),
            Expr::Atom(Atom::ToolFlag(flag), span) => {
                let holds_by_default = hint_default(*flag) == positive;
                let lets_through = if kind == RuleKind::Allow {
                    holds_by_default
                } else {
                    !holds_by_default
                };
                if lets_through {
                    diags.push(lints::hint_default(
                        *span,
                        flag.keyword(),
                        flag.mcp_annotation(),
                        hint_default(*flag),
                        kind.keyword(),
                    ));
                }
            }
            Expr::Atom(..) => {}
        }
    }
}

/// Checks every `under` prefix (it must normalise and hold no `*`), and
/// warns on `args.x matches "/..."`, a glob on what looks like a path.
pub(crate) fn check_paths(when: &Expr, diags: &mut Vec<Diagnostic>) {
    let mut stack = vec![when];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Or(v, _) | Expr::And(v, _) => stack.extend(v.iter().rev()),
            Expr::Not(inner, _) => stack.push(inner),
            Expr::Atom(Atom::Under(_, prefix), _) => {
                let why = if prefix.node.contains('*') {
                    Some("`under` takes a path, not a glob")
                } else if !prefix.node.starts_with('/') {
                    Some("not an absolute path")
                } else if crate::paths::normalize_path(&prefix.node).is_none() {
                    Some("holds `..` above the root, a `\\`, a `%XX` escape or a control character")
                } else {
                    None
                };
                if let Some(why) = why {
                    diags.push(lints::invalid_path_prefix(prefix.span, &prefix.node, why));
                }
            }
            Expr::Atom(Atom::Matches(Subject::Arg(_), glob), span)
                if glob.node.starts_with('/') =>
            {
                diags.push(lints::path_glob(
                    *span,
                    &glob.node,
                    &suggested_prefix(&glob.node),
                ));
            }
            Expr::Atom(..) => {}
        }
    }
}

/// The directory a path glob means: its text up to the first `*`, cut
/// back to a whole segment (`/restricted/*` is `/restricted`).
fn suggested_prefix(glob: &str) -> String {
    let literal = glob.split('*').next().unwrap_or_default();
    let dir = match literal.rfind('/') {
        Some(i) => &literal[..i],
        None => literal,
    };
    crate::paths::normalize_path(dir)
        .or_else(|| crate::paths::normalize_path(&format!("{dir}/")))
        .unwrap_or_else(|| "/".to_string())
}
