//! The findings on approvals: `by` and `grant` on rules that ask no one,
//! grants that hold too long or for nothing, and approvers with no name.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Longest a `grant for` may hold: a day.
pub(crate) const MAX_GRANT_SECS: u64 = 86_400;
/// Most calls a `grant for N calls` may let through.
pub(crate) const MAX_GRANT_CALLS: u64 = 10_000;

pub(crate) fn misplaced_approval(at: Span, clause: &str, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedApproval,
        format!("`{kind}` rules take no `{clause}` clause"),
    )
    .with_label(at, "nobody is asked by this rule kind")
    .with_help(format!(
        "`{clause}` belongs to a `require-confirm` rule, which asks a person before the call goes ahead"
    ))
}

pub(crate) fn grant_too_long(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidGrant,
        format!("`grant {written}` holds longer than a day"),
    )
    .with_label(at, "longer than 24h")
    .with_help(
        "a grant holds at most `for 1d`; for standing permission write an `allow` rule instead",
    )
}

pub(crate) fn grant_for_nothing(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidGrant,
        format!("`grant {written}` lets no call through"),
    )
    .with_label(at, "zero")
    .with_help("give a window of at least `1s`, or at least `1 call`; `grant once` is the approved call alone")
}

pub(crate) fn grant_too_many_calls(at: Span, calls: u64) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidGrant,
        format!("`grant for {calls} calls` is more than 10,000 calls"),
    )
    .with_label(at, "too many calls for one approval")
    .with_help(
        "a grant holds for at most 10,000 calls; for standing permission write an `allow` rule instead",
    )
}

pub(crate) fn within_once(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidGrant,
        "`within` widens a grant to later calls, and `grant once` has none",
    )
    .with_label(at, "no later call to compare")
    .with_help("give the grant a scope (`grant for 30m within args.sample_id`), or remove `within`")
}

pub(crate) fn duplicate_within(first: Span, again: Span, path: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidGrant, format!("`within` names `{path}` twice"))
        .with_label(again, "named again here")
        .with_label(first, "first named here")
        .with_help(format!("remove the second `{path}`"))
}

pub(crate) fn empty_approver(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::EmptyApprover,
        format!("`by {kind} \"\"` names no {kind}"),
    )
    .with_label(at, "empty")
    .with_help(format!(
        "name the {kind} whose approval the call needs, e.g. `by {kind} \"{}\"`",
        if kind == "group" {
            "lab-leads"
        } else {
            "lead@example.org"
        }
    ))
}
