//! The findings on annotation declarations (`tool "x" is destructive`):
//! a hint claimed twice or hints that contradict, and rules that read an
//! annotation the operator states for none of their tools.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn claimed_twice(first: Span, again: Span, word: &str) -> Diagnostic {
    Diagnostic::new(
        Code::ConflictingAnnotation,
        format!("the declaration says `{word}` twice"),
    )
    .with_label(again, "said again here")
    .with_label(first, "first said here")
    .with_help(format!("keep one of the two: `{word}` or `not {word}`"))
}

pub(crate) fn read_only_contradiction(
    read_only: Span,
    other: Span,
    other_text: &str,
) -> Diagnostic {
    Diagnostic::new(
        Code::ConflictingAnnotation,
        format!("a read-only tool cannot be `{other_text}`"),
    )
    .with_label(other, "contradicts `read-only`")
    .with_label(read_only, "read-only: it changes nothing")
    .with_help(
        "a read-only tool changes nothing, so it is not destructive and calling it again changes nothing more; drop `read-only` or the other word",
    )
}

pub(crate) fn upstream_annotation(at: Span, flag: &str, hint: &str, tools: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UpstreamAnnotation,
        format!("`tool.{flag}` is what the upstream says of {tools}"),
    )
    .with_label(at, format!("reads the upstream's `{hint}`"))
    .with_help(format!(
        "annotations are the upstream's claim about itself, and a compromised server can lie; if you know what these tools are, say it: `tool \"NAME\" is {}` (or `is not ...`)",
        flag.replace('_', "-")
    ))
}
