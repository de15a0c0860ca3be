//! The findings on limits: scopes, budgets and their `sum`.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn duplicate_scope(first: Span, again: Span, scope: &str) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateScope,
        format!("the limit names `per {scope}` twice"),
    )
    .with_label(again, "named again here")
    .with_label(first, "first named here")
    .with_help(format!(
        "remove the second `per {scope}`: each scope counts separately once"
    ))
}

pub(crate) fn fractional_count(at: Span, kind: &str, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::FractionalCount,
        format!("a {kind} counts calls, and `{written}` is not a whole number"),
    )
    .with_label(at, "not a whole number of calls")
    .with_help("write a whole number; to bound an amount an argument carries, write a `budget` with `sum args.NAME`")
}

pub(crate) fn budget_amount(at: Span, written: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NumberOutOfRange,
        format!("the budget's `max {written}` is {why}"),
    )
    .with_label(at, "not an exact amount")
    .with_help("budgets sum exact decimals of at most 4 places, up to 922337203685477.5807")
}

pub(crate) fn missing_sum(rule: Span, name: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedSum,
        format!("budget `{name}` has no `sum` clause"),
    )
    .with_label(rule, "nothing to add up")
    .with_help("say which numeric argument the budget adds up, e.g. `sum args.estimated_cost`")
}

pub(crate) fn unexpected_sum(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedSum,
        format!("`{kind}` rules take no `sum` clause"),
    )
    .with_label(at, "not used by this rule kind")
    .with_help(
        "`sum` belongs to a `budget`, which adds up an argument of matching calls over a window",
    )
}

pub(crate) fn unverified_model_limit(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnverifiedModelLimit,
        format!("this {kind} counts per model, but the rule does not require `verified model`"),
    )
    .with_label(at, "counted per model name, which the client declares")
    .with_help("a client that declares another model name counts from zero: add `and verified model` to `when` (then only calls whose model a bearer token names are counted, so keep a per-user rule for the others), or count per user or session as well")
}
