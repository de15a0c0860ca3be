//! Parsing: .policy text to [`ast::PolicyFile`] through the pest grammar in
//! `grammar/policy.pest`. Owns the translation of pest's errors into plain
//! words ("expected a string, found `}`") and the recovery of comments for
//! the formatter. The pairs become the AST in `parse/build.rs`; a large
//! file is cut into parts parsed on several threads in `parse/parts.rs`.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::source::{FileId, Span};

mod build;
mod errors;
mod parts;
use build::parse_items;
use errors::syntax_error;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/policy.pest"]
struct PolicyParser;

/// Parses one file. A syntax error stops at the first problem (the grammar
/// cannot resynchronise meaningfully); bad escapes and out-of-range numbers
/// are all collected.
pub fn parse_file(file: FileId, text: &str) -> Result<PolicyFile, Vec<Diagnostic>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    parse_file_in_parts(
        file,
        text,
        if text.len() >= PARALLEL_FROM {
            threads
        } else {
            1
        },
    )
}

/// Files at least this long are cut into one part per core (`parts`).
const PARALLEL_FROM: usize = 256 * 1024;

/// [`parse_file`] with the file cut into at most `parts` parts, each parsed
/// on a thread of its own (`parse::parts`); 1 parses the whole file on the
/// calling thread. The result is the same for any `parts`
/// (`tests/parse_parts.rs`); [`parse_file`] picks one part per core for a
/// large file.
pub fn parse_file_in_parts(
    file: FileId,
    text: &str,
    parts: usize,
) -> Result<PolicyFile, Vec<Diagnostic>> {
    pest::set_error_detail(true);
    // Pest recurses once per parenthesis level: refuse absurd nesting
    // before it runs (see crate::limits).
    if let Some(at) = crate::limits::paren_depth_problem(text) {
        return Err(vec![lints::nesting_too_deep(Span::new(file, at, at + 1))]);
    }
    let ranges = if parts > 1 {
        parts::cut(text, parts)
    } else {
        Vec::new()
    };
    // A part that does not parse leaves `built` empty: then the whole file
    // is parsed, for its error as a whole-file parse gives it.
    let built = parts::parse_each(text, &ranges, |part, offset| {
        parse_items(file, part, offset).ok()
    })
    .map(|all| {
        let (items, errors): (Vec<_>, Vec<_>) = all.into_iter().unzip();
        (items.concat(), errors.concat())
    });
    let (items, errors) = match built {
        Some(built) => built,
        None => match parse_items(file, text, 0) {
            Ok(built) => built,
            Err(e) => return Err(vec![syntax_error(file, text, &e)]),
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PolicyFile {
        file,
        items,
        comments: scan_comments(file, text),
    })
}

/// Decodes a string body. On a bad escape returns its byte offset and length
/// within `raw`.
pub(crate) fn unescape(raw: &str) -> Result<String, (usize, usize)> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '"')) => out.push('"'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 'u')) => {
                let rest = &raw[i + 2..];
                let close = rest.find('}');
                let decoded = rest
                    .strip_prefix('{')
                    .zip(close)
                    .and_then(|(_, c)| u32::from_str_radix(&rest[1..c], 16).ok())
                    .and_then(char::from_u32);
                match (decoded, close) {
                    (Some(ch), Some(c)) => {
                        out.push(ch);
                        // Skip `{hex}`.
                        for _ in 0..=c {
                            chars.next();
                        }
                    }
                    _ => return Err((i, 2)),
                }
            }
            Some((_, other)) => return Err((i, 1 + other.len_utf8())),
            None => return Err((i, 1)),
        }
    }
    Ok(out)
}

/// Finds `# ...` comments outside string literals.
fn scan_comments(file: FileId, text: &str) -> Vec<Comment> {
    let mut comments = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'#' {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            let body = text[i..end].trim_end_matches('\r');
            comments.push(Comment {
                text: body.to_string(),
                span: Span::new(file, i, i + body.len()),
            });
            i = end;
            continue;
        }
        i += 1;
    }
    comments
}
