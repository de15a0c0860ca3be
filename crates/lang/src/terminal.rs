//! Diagnostics made safe to print on a terminal. A policy is input from
//! anyone who can open a pull request, and a string in it may hold
//! control characters (`tool "\u{1b}[2J"`, or a raw ESC byte): printed
//! as they are, they would clear a reviewer's screen, move the cursor or
//! retitle the window. [`Diagnostic::escaped_for_terminal`] writes every
//! control character as its escape (`\u{1b}`) in the message, help,
//! labels and the quoted source, and moves the label spans so they still
//! point at the same text.

use crate::diagnostic::Diagnostic;
use std::fmt::Write as _;
use std::sync::Arc;

/// Whether `c` must not reach a terminal as it is. Line breaks and tabs
/// are layout; `\r` is kept only as part of `\r\n`.
fn is_unsafe(c: char, next: Option<char>) -> bool {
    match c {
        '\n' | '\t' => false,
        '\r' => next != Some('\n'),
        // C0, DEL, C1 controls, and the bidirectional overrides that can
        // make text read in another order than it is.
        c => {
            c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
        }
    }
}

/// `text` with every unsafe character escaped, and for every byte offset
/// of `text` (and one past the end) its offset in the result.
fn escape_with_map(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let at = out.len();
        for _ in 0..c.len_utf8() {
            map.push(at);
        }
        if is_unsafe(c, chars.peek().copied()) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    map.push(out.len());
    (out, map)
}

/// `text` with every unsafe character escaped.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(|c| is_unsafe(c, None)) {
        return text.to_string();
    }
    escape_with_map(text).0
}

impl Diagnostic {
    /// This diagnostic, and its related notes, with no control character
    /// left in any text it prints (see the module docs).
    pub fn escaped_for_terminal(&self) -> Diagnostic {
        let mut d = self.clone();
        d.map_texts(escape_controls);
        if let Some(src) = d.source_mut() {
            let text: &str = src.inner();
            if text.chars().any(|c| is_unsafe(c, None)) {
                let (escaped, map) = escape_with_map(text);
                let name = src.name().to_string();
                *src = miette::NamedSource::new(name, Arc::<str>::from(escaped));
                d.map_spans(|offset| map.get(offset).copied().unwrap_or(offset));
            }
        }
        d.map_related(Diagnostic::escaped_for_terminal);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_offsets_follow() {
        let (out, map) = escape_with_map("a\u{1b}[2Jb\r\nc\u{9b}d");
        assert_eq!(out, "a\\u{1b}[2Jb\r\nc\\u{9b}d");
        assert_eq!(map[1], 1);
        assert_eq!(map[2], 1 + "\\u{1b}".len());
        assert_eq!(*map.last().unwrap(), out.len());
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
    }
}
