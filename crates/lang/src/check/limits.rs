//! The checks of a rule's limit and sum: which rule kinds take `max` and
//! `sum`, whole counts for caps and rates, exact amounts for budgets,
//! windows, scopes named once, and the warnings on scopes a client names.

use super::{MAX_WINDOW_SECS, RuleParts};
use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;

pub(super) fn check_limit(rule: &Rule, parts: &RuleParts<'_>, diags: &mut Vec<Diagnostic>) {
    let kind = rule.kind.node;
    match (kind, parts.sum) {
        (RuleKind::Budget, None) => diags.push(lints::missing_sum(
            rule.kind.span.to(rule.name.span),
            &rule.name.node,
        )),
        (RuleKind::Budget, Some(_)) | (_, None) => {}
        (_, Some(sum)) => diags.push(lints::unexpected_sum(sum.span, kind.keyword())),
    }
    let Some(limit) = parts.limit else {
        if kind.is_limit() {
            diags.push(lints::missing_limit(
                rule.kind.span.to(rule.name.span),
                kind.keyword(),
            ));
        }
        return;
    };
    if !kind.is_limit() {
        diags.push(lints::unexpected_limit(limit.span, kind.keyword()));
        return;
    }
    let what = match kind {
        RuleKind::RateLimit => "rate limit",
        RuleKind::Budget => "budget",
        _ => "cap",
    };
    if kind == RuleKind::Budget {
        match crate::amount::parse_units(&limit.max.node) {
            Ok(0) => diags.push(lints::zero_limit(limit.max.span, what)),
            Ok(_) => {}
            Err(why) => diags.push(lints::budget_amount(
                limit.max.span,
                &limit.max.node,
                &why.to_string(),
            )),
        }
    } else {
        match limit.whole_max() {
            None if limit.max.node.contains('.') => diags.push(lints::fractional_count(
                limit.max.span,
                what,
                &limit.max.node,
            )),
            None => diags.push(lints::number_out_of_range(limit.max.span, &limit.max.node)),
            Some(n) if i64::try_from(n).is_err() => {
                diags.push(lints::number_out_of_range(limit.max.span, &limit.max.node))
            }
            Some(0) => diags.push(lints::zero_limit(limit.max.span, what)),
            Some(_) => {}
        }
    }

    let mut seen: Vec<&Spanned<Scope>> = Vec::new();
    for scope in &limit.scopes {
        if let Some(first) = seen.iter().find(|s| s.node == scope.node) {
            diags.push(lints::duplicate_scope(
                first.span,
                scope.span,
                scope.node.keyword(),
            ));
        } else {
            seen.push(scope);
        }
    }
    // Agent and model names are the client's word unless a bearer token
    // names them: a count on them is reset by declaring another name.
    for scope in seen {
        match scope.node {
            Scope::Agent
                if !parts
                    .when
                    .is_some_and(|w| requires_verified(w, VerifiedField::Agent)) =>
            {
                diags.push(lints::unverified_agent_limit(scope.span, what))
            }
            Scope::Model
                if !parts
                    .when
                    .is_some_and(|w| requires_verified(w, VerifiedField::Model)) =>
            {
                diags.push(lints::unverified_model_limit(scope.span, what))
            }
            _ => {}
        }
    }

    match (kind, limit.window.as_ref()) {
        (RuleKind::CapConsecutive, Some(w)) => diags.push(lints::window_on_cap(w.span)),
        (RuleKind::RateLimit | RuleKind::Budget, None) => {
            diags.push(lints::missing_window(limit.span, kind.keyword()))
        }
        (RuleKind::RateLimit | RuleKind::Budget, Some(w)) => {
            let secs = w.node.as_secs();
            if secs == 0 || secs > MAX_WINDOW_SECS {
                diags.push(lints::invalid_window(w.span, &w.node.to_string()));
            }
        }
        _ => {}
    }
}

/// Whether `expr` holds only when `verified <field>` does: it is that
/// test, or a part of a top-level `and` is.
pub(super) fn requires_verified(expr: &Expr, field: VerifiedField) -> bool {
    match expr {
        Expr::Atom(Atom::Verified(f), _) => *f == field,
        Expr::And(parts, _) => parts.iter().any(|p| requires_verified(p, field)),
        _ => false,
    }
}
