//! The checks of a rule's approval: `by` and `grant` only on
//! `require-confirm`, an approver with a name, a grant that holds for at
//! least one call and at most a day or 10,000 calls, and `within` only on
//! a grant that outlives its call, each argument named once.

use super::RuleParts;
use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::lints::approval::{MAX_GRANT_CALLS, MAX_GRANT_SECS};

pub(super) fn check_approval(rule: &Rule, parts: &RuleParts<'_>, diags: &mut Vec<Diagnostic>) {
    let kind = rule.kind.node;
    if kind != RuleKind::RequireConfirm {
        if let Some(a) = parts.approver {
            diags.push(lints::misplaced_approval(a.span, "by", kind.keyword()));
        }
        if let Some(g) = parts.grant {
            diags.push(lints::misplaced_approval(g.span, "grant", kind.keyword()));
        }
        return;
    }
    if let Some(a) = parts.approver
        && a.name.node.trim().is_empty()
    {
        diags.push(lints::empty_approver(a.name.span, a.kind.keyword()));
    }
    let Some(grant) = parts.grant else { return };
    let scope = &grant.scope;
    match scope.node {
        GrantScope::For(d) if d.as_secs() == 0 => {
            diags.push(lints::grant_for_nothing(scope.span, &scope.node.text()))
        }
        GrantScope::For(d) if d.as_secs() > MAX_GRANT_SECS => {
            diags.push(lints::grant_too_long(scope.span, &scope.node.text()))
        }
        GrantScope::Calls(0) => {
            diags.push(lints::grant_for_nothing(scope.span, &scope.node.text()))
        }
        GrantScope::Calls(n) if n > MAX_GRANT_CALLS => {
            diags.push(lints::grant_too_many_calls(scope.span, n))
        }
        _ => {}
    }
    if let (GrantScope::Once | GrantScope::Calls(1), Some(first)) =
        (scope.node, grant.within.first())
    {
        diags.push(lints::within_once(first.span));
    }
    let mut seen: Vec<&ArgPath> = Vec::new();
    for p in &grant.within {
        match seen.iter().find(|s| s.segments == p.segments) {
            Some(first) => diags.push(lints::duplicate_within(
                first.span,
                p.span,
                &crate::fmt::format_arg_path(p),
            )),
            None => seen.push(p),
        }
    }
}
