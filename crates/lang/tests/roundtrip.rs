//! Property tests of the parser and the canonical formatter.
//!
//! * printing a random AST and parsing it back gives the same AST;
//! * `fmt` is idempotent;
//! * a text laid out at random (odd whitespace, comments between tokens,
//!   redundant parentheses, `\u{..}` escapes, quoted plain argument names,
//!   trailing commas) parses to the same AST as its canonical form, and
//!   formatting it changes nothing that the compiled Cedar says;
//! * the shipped policies format idempotently and keep their Cedar;
//! * comments survive formatting, each exactly once and in order.
//!
//! Every property runs from a fixed seed so that a run is reproducible.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, RngSeed};
use std::fmt::Write as _;
use warden_lang::ast::*;
use warden_lang::fmt::format_policy_file;
use warden_lang::parse::parse_file;
use warden_lang::{FileId, Sources, Span, compile_policy_set};

// ---------------------------------------------------------------------------
// Configuration and helpers
// ---------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x5741_5244_454e),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const S: Span = Span {
    file: FileId(0),
    start: 0,
    end: 0,
};

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, S)
}

fn parse(text: &str) -> PolicyFile {
    match parse_file(FileId(0), text) {
        Ok(f) => f,
        Err(d) => panic!("does not parse: {d:?}\n--- text ---\n{text}\n---"),
    }
}

/// Canonical text of an AST that has no comments and no source text.
fn print(ast: &PolicyFile) -> String {
    format_policy_file(ast, "")
}

/// `fmt` of a text: parse it, print it with its comments.
fn fmt_text(text: &str) -> String {
    format_policy_file(&parse(text), text)
}

#[path = "roundtrip/messy.rs"]
mod messy;
#[path = "roundtrip/strategies.rs"]
mod strategies;
#[path = "roundtrip/strip.rs"]
mod strip;

use messy::Messy;
use strategies::{any_file, valid_file};
use strip::assert_same_ast;

/// Cedar text without the `@source("file:line:col")` annotations, which
/// legitimately change when the layout does.
fn cedar_without_sources(cedar: &str) -> String {
    cedar
        .lines()
        .filter(|l| !l.trim_start().starts_with("@source("))
        .collect::<Vec<_>>()
        .join("\n")
}

fn compile(name: &str, text: &str) -> Result<warden_lang::CompileOutput, warden_lang::Diagnostics> {
    let mut sources = Sources::new();
    sources.add(name, text);
    compile_policy_set(&sources)
}

/// Both texts compile to the same Cedar (ignoring `@source`), the same
/// schema and the same argument fields.
fn assert_same_cedar(before: &warden_lang::CompileOutput, after: &warden_lang::CompileOutput) {
    assert_eq!(
        cedar_without_sources(&before.policy_set.cedar_text()),
        cedar_without_sources(&after.policy_set.cedar_text()),
        "formatting changed the compiled Cedar"
    );
    assert_eq!(
        before.policy_set.schema_text(),
        after.policy_set.schema_text(),
        "formatting changed the schema"
    );
    assert_eq!(
        before.policy_set.arg_fields(),
        after.policy_set.arg_fields()
    );
    let codes = |o: &warden_lang::CompileOutput| {
        o.warnings.iter().map(|d| d.code().id()).collect::<Vec<_>>()
    };
    assert_eq!(
        codes(before),
        codes(after),
        "formatting changed the warnings"
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// (a) parse(print(ast)) == ast.
    #[test]
    fn print_then_parse_gives_the_same_ast(ast in any_file()) {
        let text = print(&ast);
        let back = parse(&text);
        assert_same_ast(&back, &ast, true, &text);
    }

    /// (b) format(parse(format(ast))) == format(ast).
    #[test]
    fn fmt_is_idempotent(ast in any_file()) {
        let once = print(&ast);
        let twice = fmt_text(&once);
        prop_assert_eq!(&twice, &once);
    }

    /// A text with random layout and comments parses to the same AST as
    /// the canonical text; formatting it keeps every comment in order, is
    /// idempotent, and (when the text compiles) keeps the compiled Cedar.
    #[test]
    fn random_layout_parses_and_formats_stably(ast in any_file(), seed in any::<u64>()) {
        let messy = Messy::print(&ast, seed);
        let parsed = parse(&messy);
        assert_same_ast(&parsed, &ast, false, &messy);

        let formatted = format_policy_file(&parsed, &messy);
        let reparsed = parse(&formatted);
        assert_same_ast(&reparsed, &ast, false, &formatted);
        let texts = |f: &PolicyFile| f.comments.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        prop_assert_eq!(texts(&reparsed), texts(&parsed), "comments changed:\n{}\n---\n{}", messy, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone(), "not idempotent on\n{}", messy);

        if let Ok(before) = compile("a.policy", &messy) {
            let after = compile("a.policy", &formatted).expect("formatted text compiles");
            assert_same_cedar(&before, &after);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// (c) For files that compile, formatting never changes the Cedar.
    /// The generator makes only checker-clean files, so every case also
    /// checks that such a file compiles at all (emits Cedar that parses
    /// and validates in strict mode).
    #[test]
    fn formatting_never_changes_the_compiled_cedar(ast in valid_file(), seed in any::<u64>()) {
        let canonical = print(&ast);
        let messy = Messy::print(&ast, seed);
        let before = match compile("a.policy", &messy) {
            Ok(out) => out,
            Err(d) => panic!("a checker-clean file does not compile: {d:?}\n--- text ---\n{canonical}"),
        };
        let formatted = fmt_text(&messy);
        let after = compile("a.policy", &formatted).expect("formatted text compiles");
        assert_same_cedar(&before, &after);
        let canon = compile("a.policy", &canonical).expect("canonical text compiles");
        assert_same_cedar(&before, &canon);
    }
}

// ---------------------------------------------------------------------------
// The shipped policies
// ---------------------------------------------------------------------------

fn shipped(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_shipped(name: &str) {
    let text = shipped(name);
    let formatted = fmt_text(&text);
    assert_eq!(
        fmt_text(&formatted),
        formatted,
        "{name}: fmt is not idempotent"
    );
    let (orig_ast, fmt_ast) = (parse(&text), parse(&formatted));
    assert_same_ast(&fmt_ast, &orig_ast, true, name);
    let before = compile(name, &text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let after = compile(name, &formatted).unwrap_or_else(|d| panic!("{name} formatted: {d:?}"));
    assert_same_cedar(&before, &after);
}

#[test]
fn genomics_policy_formats_stably_and_keeps_its_cedar() {
    check_shipped("genomics.policy");
}

#[test]
fn baseline_policy_formats_stably_and_keeps_its_cedar() {
    check_shipped("baseline.policy");
}

// ---------------------------------------------------------------------------
// Comments
// ---------------------------------------------------------------------------

/// A small policy, one token group per line, with a multi-line condition
/// and a multi-line list so that comments also land inside clauses, and
/// issue 12's clauses and conditions (`sum`, compound scopes, `during`,
/// `any`, `size of` with a unit, `ignoring case`) for comments beside them.
const COMMENT_BASE: &[&str] = &[
    "default deny",
    "",
    "allow readers {",
    "  tool [",
    "    \"list_*\",",
    "    \"get_*\",",
    "  ]",
    "  when user in group \"staff\"",
    "    or via agent",
    "}",
    "deny no-delete {",
    "  tool \"delete_*\"",
    "  reason \"no {tool} # not a comment\"",
    "}",
    "cap-consecutive streak {",
    "  when via agent",
    "  max 3 per session",
    "}",
    "budget spend {",
    "  tool \"start_*\"",
    "  sum args.estimated_cost",
    "  max 2000.50 per 1d per user per tool",
    "  when not during mon,wed-fri 08:00-18:00 \"UTC\"",
    "    and any args.paths under \"/etc\"",
    "    and size of args.body > 10 KB",
    "    and args.sql matches \"*x*\" ignoring case",
    "}",
];

/// Inserts `# c<N>` comments: `at[i]` comments go before line `i` (the last
/// index is after the last line); `eol[i]`, if set, ends line `i` with one.
fn with_comments(at: &[usize], eol: &[bool]) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut n = 0;
    let mut comment = |text: &mut String, expected: &mut Vec<String>, indent: &str, eol: bool| {
        let c = format!("# c{n}");
        n += 1;
        if eol {
            let _ = write!(text, " {c}");
        } else {
            let _ = writeln!(text, "{indent}{c}");
        }
        expected.push(c);
    };
    for (i, line) in COMMENT_BASE.iter().enumerate() {
        for _ in 0..at[i] {
            comment(&mut text, &mut expected, "  ", false);
        }
        text.push_str(line);
        if eol[i] && !line.is_empty() && !line.contains('#') {
            comment(&mut text, &mut expected, "", true);
        }
        text.push('\n');
    }
    for _ in 0..at[COMMENT_BASE.len()] {
        comment(&mut text, &mut expected, "", false);
    }
    (text, expected)
}

fn comment_lines(text: &str) -> Vec<String> {
    // Each `# c<N>` is a whole comment: at the end of a line or on its own.
    text.lines()
        .filter_map(|l| l.find("# c").map(|i| l[i..].to_string()))
        .collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// Own-line comments at random line boundaries: each is kept exactly
    /// once, in order, and formatting is idempotent.
    #[test]
    fn own_line_comments_are_kept_once(at in vec(0usize..3, COMMENT_BASE.len() + 1)) {
        let (text, expected) = with_comments(&at, &vec![false; COMMENT_BASE.len()]);
        let formatted = fmt_text(&text);
        prop_assert_eq!(comment_lines(&formatted), expected, "\n{}\n---\n{}", text, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone());
        assert_same_ast(&parse(&formatted), &parse(COMMENT_BASE.join("\n").as_str()), false, &text);
    }

    /// The same with end-of-line comments mixed in.
    #[test]
    fn end_of_line_comments_are_kept_once(
        at in vec(0usize..2, COMMENT_BASE.len() + 1),
        eol in vec(any::<bool>(), COMMENT_BASE.len()),
    ) {
        let (text, expected) = with_comments(&at, &eol);
        let formatted = fmt_text(&text);
        prop_assert_eq!(comment_lines(&formatted), expected, "\n{}\n---\n{}", text, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone());
        assert_same_ast(&parse(&formatted), &parse(COMMENT_BASE.join("\n").as_str()), false, &text);
    }
}

/// Regression (found by the random-layout property, fixed in 6d1d824): the
/// span of an `or` condition ran on past its last operand over the
/// whitespace and comments after it, up to the next token, because pest
/// keeps the implicit skip after the first operand of
/// `and_expr = { unary ~ (kw_and ~ unary)* }` when the repetition matches
/// nothing. `fmt` then took a comment after the next token (`} # c`,
/// `mode shadow # c`) for one trailing the `when` clause, and on the next
/// run moved it onto a line of its own: not idempotent.
#[test]
fn or_condition_span_ends_at_its_last_operand() {
    let text = "deny r {\n  when true or false\n} # c\n";
    let ast = parse(text);
    let Item::Rule(rule) = &ast.items[0] else {
        panic!("a rule")
    };
    let span = rule.clauses[0].span();
    assert_eq!(&text[span.start..span.end], "true or false");
    // `fmt` keeps the comment after the brace, and is idempotent.
    let once = fmt_text(text);
    assert_eq!(once, text);
    assert_eq!(fmt_text(&once), once);
    let text = "deny r {\n  when true or false\n  mode shadow # c\n}\n";
    assert_eq!(fmt_text(text), text);
}

/// The generators reach every construct of issue 12, in files the grammar
/// accepts and in files the checker accepts (so the properties above test
/// them): counted on the canonical text of 300 files of each.
#[test]
fn the_generators_make_every_new_construct() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let needles = [
        "budget ",
        "sum args.",
        "per model",
        "per tool",
        "during ",
        "weekdays",
        "any args.",
        "all args.",
        "ignoring case",
        "length of ",
        "size of ",
        " KB",
        " GiB",
    ];
    for (name, strategy) in [
        ("any_file", any_file().boxed()),
        ("valid_file", valid_file().boxed()),
    ] {
        let mut runner = TestRunner::new(config(1));
        let texts: Vec<String> = (0..300)
            .map(|_| print(&strategy.new_tree(&mut runner).expect("a tree").current()))
            .collect();
        for needle in needles {
            let n = texts.iter().filter(|t| t.contains(needle)).count();
            assert!(n >= 3, "{name}: only {n} of 300 files hold `{needle}`");
        }
    }
}

/// Regression (found by the comment properties above, fixed in 56179f8):
/// a limit clause's span ran over the whitespace and comment after its
/// last `per SCOPE`, so `fmt` moved an end-of-line comment onto a line of
/// its own and was not idempotent. The other issue-12 clauses, and a
/// condition ending in each new kind of test, keep theirs too.
#[test]
fn end_of_line_comments_stay_after_issue_12_clauses() {
    let text = "budget b { # c0\n  tool \"start_*\" # c1\n  sum args.estimated_cost # c2\n  max 2000.50 per 1d per user per tool # c3\n  when not during weekdays 08:00-18:00 \"UTC\" and any args.paths under \"/etc\" and args.sql matches \"*x*\" ignoring case and size of args.body > 10 KB # c4\n} # c5\n";
    let once = fmt_text(text);
    assert_eq!(once, text);
    let ast = parse(text);
    let Item::Rule(rule) = &ast.items[0] else {
        panic!("a rule")
    };
    let limit = rule.clauses[2].span();
    assert_eq!(
        &text[limit.start..limit.end],
        "max 2000.50 per 1d per user per tool"
    );
    for cond in [
        "during sat,sun \"UTC\"",
        "during mon-fri \"UTC\"",
        "during 22:00-06:00 \"UTC\"",
        "all args.ids created by agent",
        "any args.tags == \"x\" ignoring case",
        "args.role in [\"a\", \"b\"] ignoring case",
        "length of args.ids > 3",
        "size of args.body > 10 KiB",
    ] {
        let text = format!("deny d {{\n  when via agent or {cond} # c\n  mode shadow # d\n}}\n");
        assert_eq!(fmt_text(&text), text, "`{cond}`");
    }
}
