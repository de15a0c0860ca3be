//! Bounds on the shape of a condition, so that no policy a person or a
//! tool writes can make a later stage recurse without bound.
//!
//! Every stage after the parser walks conditions recursively: the
//! checker, the compiler, the formatter, the Cedar printer, and Cedar
//! itself (its parser, validator and evaluator, and the drop of its
//! nested binary `&&`/`||` trees). A policy reload runs on the notify
//! debouncer's thread, whose stack is small, so an overflow there kills the
//! whole proxy. The parser therefore refuses, with a diagnostic and a span:
//!
//! - nesting deeper than [`MAX_NESTING`] levels, counting each `(` and each
//!   `not`. Parentheses are counted by [`paren_depth_problem`] *before*
//!   pest runs, because pest recurses once per parenthesis level (it has a
//!   stack guard, but it would fail with a confusing "stack limit" syntax
//!   error); `not`s are a repetition in the grammar and are counted while
//!   the syntax tree is built, before any nested `Not` node exists;
//! - conditions of more than [`MAX_TERMS`] tests (each value of an `in`
//!   list counts as one, since it compiles to its own comparison).

/// Deepest nesting of `(` and `not` a condition may have. Hand-written
/// policies stay below 10; the limit leaves room for generated ones while
/// keeping every stage well inside a 256 KiB stack.
pub const MAX_NESTING: usize = 32;

/// Most tests (atoms, and values of `in` lists) one condition may hold.
pub const MAX_TERMS: usize = 512;

/// The byte offset of the first `(` that opens a level deeper than
/// [`MAX_NESTING`], outside string literals and comments, if any. A cheap
/// scan without recursion, run before the grammar.
pub fn paren_depth_problem(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // A string ends at its closing quote or, unterminated, at
                // the end of the line (the grammar rejects it then).
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parens_in_strings_and_comments_do_not_count() {
        let deep = "(".repeat(MAX_NESTING + 1);
        assert_eq!(paren_depth_problem(&format!("\"{deep}\"")), None);
        assert_eq!(paren_depth_problem(&format!("# {deep}\n")), None);
        assert_eq!(paren_depth_problem(&format!("\"\\\"{deep}\"")), None);
        assert_eq!(paren_depth_problem(&"(".repeat(MAX_NESTING)), None);
        assert_eq!(
            paren_depth_problem(&format!("x {deep}")),
            Some(2 + MAX_NESTING)
        );
        // Closing parentheses free a level.
        let ok = "()".repeat(MAX_NESTING * 4);
        assert_eq!(paren_depth_problem(&ok), None);
    }
}
