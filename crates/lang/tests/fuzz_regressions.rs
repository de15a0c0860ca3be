//! Inputs found by the `parse_compile` fuzz target (fuzz/), kept as plain
//! tests: compiling them must not panic, and when they parse, formatting
//! must be stable (the formatted text parses and formats to itself).

use warden_lang::fmt::format_policy_file;
use warden_lang::parse::parse_file;
use warden_lang::{FileId, Sources, compile_policy_set};

/// What the fuzz target checks, for one input.
fn check(text: &str) -> Option<String> {
    let mut sources = Sources::new();
    sources.add("fuzz.policy", text);
    let _ = compile_policy_set(&sources);

    let file = parse_file(FileId(0), text).ok()?;
    let formatted = format_policy_file(&file, text);
    let reparsed = parse_file(FileId(0), &formatted)
        .unwrap_or_else(|_| panic!("formatted text does not parse:\n{formatted}"));
    let again = format_policy_file(&reparsed, &formatted);
    assert_eq!(
        formatted, again,
        "formatting is not idempotent for:\n{text}"
    );
    Some(formatted)
}

/// Minimized by `cargo fuzz tmin` from a crash of the first run. Pest lets
/// `a or b` swallow the whitespace after `b`, so the `when` clause's span
/// reached past the newline and the comment after `}` was printed at the
/// end of the `when` line by the first `fmt`, on its own line by the second.
#[test]
fn comment_after_closing_brace_of_rule_ending_in_or() {
    let text = "#e .:.\nallow ng {\n  tool [\"lt_*\"]\n  when user in group \"staff\" or user matches \"svc-*\"\n}# Bpe a";
    let formatted = check(text).expect("parses");
    assert_eq!(
        formatted,
        "#e .:.\nallow ng {\n  tool [\"lt_*\"]\n  when user in group \"staff\" or user matches \"svc-*\"\n} # Bpe a\n"
    );
}

#[test]
fn comment_after_closing_brace_of_rule_ending_in_and() {
    let text = "allow a {\n  when via agent and tool.read_only\n}# c";
    assert_eq!(
        check(text).expect("parses"),
        "allow a {\n  when via agent and tool.read_only\n} # c\n"
    );
}

/// The same swallowing made an end-of-line comment after `a or b` move to a
/// line of its own.
#[test]
fn end_of_line_comment_after_or_condition_stays_put() {
    let text = "allow a {\n  when via agent or user == \"x\" # why\n  reason \"r\"\n}\n";
    assert_eq!(check(text).expect("parses"), text);
}
