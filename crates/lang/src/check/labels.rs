//! The checks of session labels: a `label` rule takes only the clauses
//! that say which calls set it and how long it lasts; `for` belongs to
//! `label` rules; a label lasts 1s to 30d; and (set-wide) every `session
//! has label NAME` names a `label` rule.

use super::RuleParts;
use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::lints::MAX_LABEL_SECS;

pub(super) fn check_label_clauses(rule: &Rule, parts: &RuleParts<'_>, diags: &mut Vec<Diagnostic>) {
    let kind = rule.kind.node;
    if kind != RuleKind::Label {
        if let Some(k) = parts.keep {
            diags.push(lints::keep_outside_label(k.span, kind.keyword()));
        }
        return;
    }
    // `by`, `grant` (misplaced-approval), `max` and `sum` (their own
    // checks) are reported for every kind that takes none.
    if let Some(r) = parts.reason {
        diags.push(lints::clause_in_label(r.span, "reason"));
    }
    if let Some(m) = parts.mode {
        diags.push(lints::clause_in_label(m.span, "mode"));
    }
    if let Some(k) = parts.keep
        && let Keep::For(d) = k.node
    {
        if d.as_secs() == 0 {
            diags.push(lints::label_for_nothing(k.span, &k.node.text()));
        } else if d.as_secs() > MAX_LABEL_SECS {
            diags.push(lints::label_too_long(k.span, &k.node.text()));
        }
    }
}

/// Every `session has label` of `expr`, with its span.
pub(super) fn label_uses<'a>(expr: &'a Expr, out: &mut Vec<&'a Spanned<String>>) {
    match expr {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| label_uses(e, out)),
        Expr::Not(e, _) => label_uses(e, out),
        Expr::Atom(Atom::SessionLabel(name), _) => out.push(name),
        Expr::Atom(..) => {}
    }
}
