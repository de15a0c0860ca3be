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

/// Finding 22: a rule with 600 nested parentheses (a 1.2 KB file that lint
/// accepted) overflowed the stack of the notify debouncer's thread on
/// reload and killed the proxy; at about 2,000 levels lint itself crashed,
/// and so did 100,000 chained `not`s or `and`s. Each input is linted,
/// compiled and (when it parses) formatted on a thread with a 256 KiB
/// stack, and must report the limit instead.
#[test]
fn finding_22_deep_conditions_report_the_limit_on_a_small_stack() {
    let parens = |n: usize| {
        format!(
            "default allow\ndeny deep {{\n  when {}via agent{}\n}}\n",
            "(".repeat(n),
            ")".repeat(n)
        )
    };
    let nots = |n: usize| {
        format!(
            "default allow\ndeny deep {{\n  when {}via agent\n}}\n",
            "not ".repeat(n)
        )
    };
    let nested_nots = |n: usize| {
        format!(
            "default allow\ndeny deep {{\n  when {}via agent{}\n}}\n",
            "not (".repeat(n),
            ")".repeat(n)
        )
    };
    let ands = |n: usize| {
        format!(
            "default allow\ndeny deep {{\n  when {}\n}}\n",
            vec!["via agent"; n].join(" and ")
        )
    };
    let inputs = [
        (parens(600), "nesting-too-deep"),
        (parens(2_000), "nesting-too-deep"),
        (parens(100_000), "nesting-too-deep"),
        (nots(600), "nesting-too-deep"),
        (nots(100_000), "nesting-too-deep"),
        (nested_nots(2_000), "nesting-too-deep"),
        (ands(600), "condition-too-large"),
        (ands(100_000), "condition-too-large"),
    ];
    for (text, code) in inputs {
        let len = text.len();
        let codes = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut sources = Sources::new();
                sources.add("deep.policy", &text);
                let diags = warden_lang::lint_policy_set(&sources);
                assert!(compile_policy_set(&sources).is_err());
                check(&text);
                diags.iter().map(|d| d.code().id()).collect::<Vec<_>>()
            })
            .expect("spawn")
            .join()
            .unwrap_or_else(|_| panic!("linting a {len}-byte deep input panicked"));
        assert_eq!(codes, [code], "{len}-byte input");
    }
    // At the limit everything still works, on the same small stack.
    let at_limit = parens(warden_lang::limits::MAX_NESTING);
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            check(&at_limit).expect("parses");
            let mut sources = Sources::new();
            sources.add("deep.policy", &at_limit);
            compile_policy_set(&sources).expect("compiles");
        })
        .expect("spawn")
        .join()
        .expect("at the limit");
}
