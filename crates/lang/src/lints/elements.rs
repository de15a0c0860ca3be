//! The findings on sizes, lengths, list elements and case folding.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn size_on_value(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        "a size such as `100 KB` compares with `size of args.NAME`, not with the argument itself",
    )
    .with_label(at, "a size")
    .with_help("write `size of args.NAME > 100 KB` to compare the argument's size in bytes")
}

pub(crate) fn measure_not_count(at: Span, ty: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("a length or size compares with a whole number, not a {ty}"),
    )
    .with_label(at, format!("this is a {ty}"))
    .with_help("write e.g. `length of args.ids > 10` or `size of args.content > 100 KB`")
}

/// A negative number against a length or size (`< 0` exactly is the
/// dead-test lint's, `crate::rule_lints`).
pub(crate) fn negative_measure_literal(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NeverMatches,
        format!("a length or size is never negative, so it is not compared with `{written}`"),
    )
    .with_label(at, "below 0")
    .with_help("compare with 0 or more, e.g. `length of args.ids > 0`")
}

pub(crate) fn unit_on_length(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        "a length counts characters or elements, not bytes: it compares with a whole number",
    )
    .with_label(at, "a size in bytes")
    .with_help("write `size of args.NAME > 100 KB` for bytes, or `length of args.NAME > 100` for characters or elements")
}

pub(crate) fn size_too_large(at: Span) -> Diagnostic {
    Diagnostic::new(Code::NumberOutOfRange, "this size is out of range")
        .with_label(at, "more bytes than a 64-bit count holds")
        .with_help("sizes are compared as whole bytes up to 9223372036854775807 (about 8 EiB)")
}

pub(crate) fn quantifier_without_list(at: Span, quantifier: &str, reads: &str) -> Diagnostic {
    Diagnostic::new(
        Code::QuantifierWithoutList,
        format!("`{quantifier}` tests the elements of a list argument, and this test reads {reads}"),
    )
    .with_label(at, "no list here")
    .with_help(format!(
        "write the list argument after `{quantifier}`, e.g. `{quantifier} args.tags == \"pii\"`; drop `{quantifier}` to test {reads} itself"
    ))
}

pub(crate) fn nested_quantifier(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::QuantifierWithoutList,
        "`any` and `all` do not nest: the elements of a list's elements are not tested",
    )
    .with_label(at, "a second quantifier")
    .with_help("test one list: `any args.tags == \"pii\"`")
}

pub(crate) fn ignoring_case_not_string(at: Span, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::IgnoringCaseNotString,
        format!("`ignoring case` compares a string argument with strings, not {what}"),
    )
    .with_label(at, "case does not apply here")
    .with_help("use it with `==`, `!=`, `in [...]` or `matches` and string literals, e.g. `args.sql matches \"*drop table*\" ignoring case`; drop `ignoring case` otherwise")
}
