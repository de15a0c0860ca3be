//! The findings on session labels: clauses a `label` rule cannot take,
//! `for` on another rule kind, a label kept for nothing or too long, and
//! `session has label` naming no `label` rule.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Longest a label may be kept: the session's own bound.
pub(crate) const MAX_LABEL_SECS: u64 = crate::ast::Keep::SESSION_SECS;

pub(crate) fn clause_in_label(at: Span, clause: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedLabelClause,
        format!("`label` rules take no `{clause}` clause"),
    )
    .with_label(at, "a label decides nothing")
    .with_help(
        "a `label` rule only marks the session; write the decision in a rule that reads it, e.g. `deny ... { when session has label NAME }`",
    )
}

pub(crate) fn keep_outside_label(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedLabelClause,
        format!("`{kind}` rules take no `for` clause"),
    )
    .with_label(at, "only a label lasts")
    .with_help(
        "`for` says how long a `label` rule's label stays on the session; for an approval's reach write `grant for ...` in a `require-confirm` rule",
    )
}

pub(crate) fn label_for_nothing(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidLabelLife,
        format!("a label kept `{written}` is gone at once"),
    )
    .with_label(at, "zero")
    .with_help("keep it at least `for 1s`, or `for session` (the default)")
}

pub(crate) fn label_too_long(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidLabelLife,
        format!("a label kept `{written}` outlives any session warden keeps"),
    )
    .with_label(at, "longer than 30d")
    .with_help("keep it at most `for 30d`, or `for session`: labels belong to one session")
}

pub(crate) fn unknown_label(at: Span, name: &str, declared: &[&str]) -> Diagnostic {
    // A typo or two; short names are too alike to guess.
    let allowed = (name.len() / 4).clamp(1, 3);
    let near = declared
        .iter()
        .map(|d| (super::edit_distance(name, d), *d))
        .filter(|(d, _)| *d <= allowed)
        .min()
        .map(|(_, d)| d);
    let help = match near {
        Some(near) => format!("did you mean `{near}`? declare labels with `label NAME {{ ... }}`"),
        None if declared.is_empty() => {
            "no `label` rule is declared; add one, e.g. `label read-private { tool [\"get_sample\"] }`".to_string()
        }
        None => format!(
            "declared labels: {}",
            declared
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Diagnostic::new(
        Code::UnknownLabel,
        format!("no `label` rule is named `{name}`"),
    )
    .with_label(at, "never set, so this test is always false")
    .with_help(help)
}
