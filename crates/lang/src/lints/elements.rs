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
