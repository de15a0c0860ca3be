//! Where a large file can be cut so that its parts are parsed on several
//! threads: at the start of a line that begins a top-level item (a rule
//! kind, `default`, `records` or `tool`), outside any string, comment or
//! bracket. `parse_file` parses each part alone and joins their items; when
//! any part fails to parse it parses the whole file instead, so a syntax
//! error is reported exactly as a whole-file parse reports it.
//!
//! Why joining is exact: every top-level item ends at a token that nothing
//! after it can continue (a `}`, the effect of a `default`, the last claim
//! of a `tool ... is` declaration, which only a `,` continues), and a part
//! starts with an item keyword. So a part that parses alone holds the same
//! items, at the same offsets, as the whole file does there; a cut in a
//! wrong place (inside a construct this scanner misreads) leaves a part
//! that does not parse, and the whole file is parsed instead.

use std::ops::Range;

/// The words a top-level item starts with (grammar/policy.pest: `item`).
const ITEM_KEYWORDS: [&str; 10] = [
    "require-confirm",
    "cap-consecutive",
    "rate-limit",
    "budget",
    "allow",
    "deny",
    "label",
    "default",
    "records",
    "tool",
];

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether an item keyword starts at `at`.
fn item_keyword_at(bytes: &[u8], at: usize) -> bool {
    ITEM_KEYWORDS.iter().any(|kw| {
        bytes[at..].starts_with(kw.as_bytes())
            && bytes.get(at + kw.len()).is_none_or(|&b| !ident_char(b))
    })
}

/// The offsets, after the first line, where a line's first word is an
/// item keyword outside strings, comments and brackets: where a part may
/// start.
fn item_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut in_comment) = (0i64, false, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_comment {
            in_comment = b != b'\n';
        } else if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' || b == b'\n' {
                // A newline ends an unterminated string: that part will
                // not parse, and the whole file is parsed instead.
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'#' => in_comment = true,
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => depth -= 1,
                _ => {}
            }
        }
        if b == b'\n' && !in_string && depth == 0 {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            if j < bytes.len() && item_keyword_at(bytes, j) {
                starts.push(j);
            }
        }
        i += 1;
    }
    starts
}

/// `text` cut into at most `parts` ranges of about equal length, each
/// starting at an item start (the first at 0); one range when there is no
/// place to cut.
pub(super) fn cut(text: &str, parts: usize) -> Vec<Range<usize>> {
    let starts = item_starts(text);
    let mut bounds = vec![0];
    let mut next = starts.iter().copied().peekable();
    for k in 1..parts.max(1) {
        let want = text.len() * k / parts;
        while next.peek().is_some_and(|&s| s < want) {
            next.next();
        }
        match next.next() {
            Some(s) if s > *bounds.last().unwrap_or(&0) => bounds.push(s),
            _ => break,
        }
    }
    bounds.push(text.len());
    bounds.windows(2).map(|w| w[0]..w[1]).collect()
}

/// `parse` of each part of `text` (at least two `ranges`), each on a thread
/// of its own, with the part's offset in `text`: the results in order, or
/// `None` when there are fewer than two parts or any part gives `None`.
pub(super) fn parse_each<T: Send>(
    text: &str,
    ranges: &[Range<usize>],
    parse: impl Fn(&str, usize) -> Option<T> + Sync,
) -> Option<Vec<T>> {
    if ranges.len() < 2 {
        return None;
    }
    let parse = &parse;
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|r| scope.spawn(move || parse(&text[r.clone()], r.start)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(done) => done,
                // A panic here is a parser bug: carry it on.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_where_an_item_starts_at_the_top_level() {
        let text = "default deny\n\
                    # allow in a comment\n\
                    allow a {\n  tool \"x\"\n  reason \"deny \\\" allow\"\n}\n\
                    deny b { tool [\n\"a\",\n\"b\"] }\n\
                    tool \"t\" is destructive,\n  idempotent\n\
                    allowance c\n\
                      label l { tool \"y\" }\n";
        let starts = item_starts(text);
        let words: Vec<&str> = starts
            .iter()
            .map(|&s| text[s..].split_whitespace().next().unwrap())
            .collect();
        // Not the comment, not `tool` inside a rule, not inside the
        // escaped quote's string, not `allowance`; the indented `label`
        // counts.
        assert_eq!(words, ["allow", "deny", "tool", "label"]);
    }

    #[test]
    fn parts_cover_the_text_in_order() {
        let text: String = (0..100)
            .map(|i| format!("allow r{i} {{ tool \"t{i}\" }}\n"))
            .collect();
        for parts in 1..6 {
            let ranges = cut(&text, parts);
            assert!(ranges.len() <= parts && !ranges.is_empty());
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, text.len());
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(text[w[1].start..].starts_with("allow"));
            }
        }
        assert_eq!(cut("default deny\n", 4), vec![0..13]);
    }
}
