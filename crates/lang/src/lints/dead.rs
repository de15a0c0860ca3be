//! The findings on conditions that can never hold (dead tests) and on
//! limits that can never fire; the analysis is in `crate::rule_lints::dead`.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn wildcard_segment(at: Span, path: &str, segment: &str, list: &str) -> Diagnostic {
    Diagnostic::new(
        Code::WildcardSegment,
        format!(
            "`{path}` reads a field named `{segment}`: a path segment is a name, not a pattern"
        ),
    )
    .with_label(at, "no argument has a field of this name")
    .with_help(format!(
        "the test after `any` / `all` names the list: write `all {list} ...` to test every \
         element, `any {list} ...` to test some"
    ))
}

pub(crate) fn field_of_scalar(
    at: Span,
    path: &str,
    parent: &str,
    parent_at: Span,
    read_as: &str,
) -> Diagnostic {
    Diagnostic::new(
        Code::FieldOfScalar,
        format!(
            "`{path}` reads a field of `{parent}`, which is read as {read_as} for the same calls"
        ),
    )
    .with_label(at, "a field of a value that has none")
    .with_label(parent_at, format!("`{parent}` read as {read_as} here"))
    .with_help(format!(
        "{read_as} has no fields, so on a call where one test holds the other cannot: for the \
         length of a string or list write `length of {parent}`, for its bytes `size of {parent}`; \
         if different tools pass different shapes, give each its own rule with its own `tool` clause"
    ))
}

pub(crate) fn measure_as_field(at: Span, path: &str, parent: &str, measure: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MeasureAsField,
        format!(
            "`{path}` reads a field named `{}`, not the {measure} of `{parent}`",
            { path.rsplit('.').next().unwrap_or(path) }
        ),
    )
    .with_label(at, "a field, which a string or list does not have")
    .with_help(format!(
        "write `{measure} of {parent}` to compare the {}; if `{parent}` really is an object with a \
         `{field}` field, this warning does not apply",
        if measure == "size" {
            "value's size in bytes (e.g. `size of ARG > 100 KB`)"
        } else {
            "characters of a string or the elements of a list"
        },
        field = path.rsplit('.').next().unwrap_or(path),
    ))
}

pub(crate) fn below_zero_measure(at: Span, subject: &str, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NeverMatches,
        format!("`{subject}` is never below zero, so this test never holds"),
    )
    .with_label(at, format!("no {what} is negative"))
    .with_help(format!(
        "a {what} is 0 or more: to match an empty value write `{subject} == 0` (as written, a \
         restriction fires only where the {what} is unknown)"
    ))
}

pub(crate) fn contradiction(at: Span, earlier: Span, subject: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NeverMatches,
        format!("`{subject}` cannot pass both tests, so the `and` never holds"),
    )
    .with_label(at, why.to_string())
    .with_label(earlier, "the other test")
    .with_help(
        "to accept either value write `or`, or `in [...]` with both; otherwise remove one test \
         (as written, a restriction fires only on calls whose argument has another type, which \
         reads as unknown)",
    )
}

pub(crate) fn cap_ended_by_confirm(
    at: Span,
    cap: &str,
    confirm: &str,
    confirm_at: Span,
) -> Diagnostic {
    Diagnostic::new(
        Code::CapEndedByConfirm,
        format!(
            "cap-consecutive `{cap}` never fires: `{confirm}` asks to confirm every call it counts"
        ),
    )
    .with_label(at, "counts a streak that each confirmed call ends")
    .with_label(confirm_at, "confirms every call the cap matches")
    .with_help(
        "a confirmed call ends the streak, so it never reaches `max`; to bound how many such \
         calls go through, write a `rate-limit` (`max N per WINDOW per SCOPE`), which confirmation \
         does not reset",
    )
}
