//! One constructor per finding (as oxc's linter does): each states its
//! message, labels and help in one place, so a rule's wording is reviewed
//! where it is written. `tests/lints.rs` has a passing and a failing example
//! of each, with the rendered report as an insta snapshot.

mod annotations;
pub(crate) mod approval;
mod dead;
mod elements;
mod labels;
mod limits;
mod time;
pub(crate) use annotations::*;
pub(crate) use approval::*;
pub(crate) use dead::*;
pub(crate) use elements::*;
pub(crate) use labels::*;
pub(crate) use limits::*;
#[allow(unused_imports)]
pub(crate) use time::*;

use crate::ast::DefaultDecl;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn syntax_error(at: Span, expected: &[String], found: &str) -> Diagnostic {
    let expected_words = match expected {
        [] => "something else".to_string(),
        [one] => one.clone(),
        many => {
            let (last, init) = many.split_last().expect("non-empty");
            format!("{} or {last}", init.join(", "))
        }
    };
    let found_word = found.trim_matches('`');
    let suggestion = expected
        .iter()
        .map(|e| e.trim_matches('`'))
        .filter(|e| e.chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
        .map(|e| (edit_distance(e, found_word), e))
        .filter(|(d, e)| *d > 0 && *d <= 2 && *d < e.len())
        .min();
    let help = match suggestion {
        Some((_, word)) => format!("did you mean `{word}`?"),
        None => "see docs/language.md for the grammar; every rule reads `KIND NAME { CLAUSES }`"
            .to_string(),
    };
    Diagnostic::new(
        Code::Syntax,
        format!("expected {expected_words}, found {found}"),
    )
    .with_label(
        at,
        // "the end of the file" reads as "unexpected end of the file".
        format!("unexpected {}", found.strip_prefix("the ").unwrap_or(found)),
    )
    .with_help(help)
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    edit_distance(a, b)
}

/// Levenshtein distance, for "did you mean" hints on misspelled keywords.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn invalid_string(at: Span) -> Diagnostic {
    Diagnostic::new(Code::InvalidString, "unknown escape sequence in string")
        .with_label(at, "not a valid escape")
        .with_help(r#"valid escapes are \" \\ \n \t \r and \u{HEX}"#)
}

pub(crate) fn number_out_of_range(at: Span, text: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NumberOutOfRange,
        format!("number `{text}` is out of range"),
    )
    .with_label(at, "too large")
    .with_help("whole numbers must fit in a signed 64-bit integer")
}

pub(crate) fn beyond_decimal_range(at: Span, text: &str) -> Diagnostic {
    Diagnostic::new(Code::NumberOutOfRange, format!("number `{text}` is out of range"))
        .with_label(at, "too large to compare")
        .with_help("numbers are compared as Cedar decimals, between -922337203685477.5808 and 922337203685477.5807")
}

pub(crate) fn mixed_list(at: Span, first: &str, other: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("this list mixes a {first} and a {other}"),
    )
    .with_label(at, format!("a {other} among {first}s"))
    .with_help("an argument has one type; a mixed list would make the rule match any value, so split it into separate conditions joined with `or`")
}

pub(crate) fn placeholder_without_limit(at: Span, name: &str, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownPlaceholder,
        format!("`{{{name}}}` has no value in a `{kind}` rule"),
    )
    .with_label(at, "this rule has no such limit")
    .with_help(
        "`{limit}` is for cap-consecutive, rate-limit and budget rules, `{window}` for rate-limit and budget rules, `{used}` and `{remaining}` for budget rules",
    )
}

pub(crate) fn empty_server_pattern(at: Span) -> Diagnostic {
    Diagnostic::new(Code::GlobNeverMatches, "pattern `` can never match")
        .with_label(at, "an empty name matches no server")
        .with_help(
            "write the server's name as warden's `--name` gives it, or a glob such as `lab-*`",
        )
}

pub(crate) fn too_many_decimals(at: Span, text: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NumberOutOfRange,
        format!("number `{text}` has more than 4 decimal places"),
    )
    .with_label(at, "cannot be compared exactly")
    .with_help("Cedar decimals carry 4 decimal places; round the bound to at most 4")
}

pub(crate) fn missing_default(at: Option<Span>) -> Diagnostic {
    let d = Diagnostic::new(
        Code::MissingDefault,
        "the policy set has no `default allow` or `default deny`",
    )
    .with_help("add `default deny` (recommended: only what a rule allows goes through) or `default allow` to one file of the set");
    match at {
        Some(span) => d.with_label(span, "no default in this set"),
        None => d,
    }
}

pub(crate) fn conflicting_default(first: &DefaultDecl, again: &DefaultDecl) -> Diagnostic {
    Diagnostic::new(
        Code::ConflictingDefault,
        format!(
            "`default {}` contradicts the earlier `default {}`",
            again.effect.keyword(),
            first.effect.keyword()
        ),
    )
    .with_label(again.span, "contradicting default")
    .with_note_at(
        first.span,
        format!("the set is `default {}` here", first.effect.keyword()),
    )
    .with_help("all files of a set share one default; make them agree")
}

pub(crate) fn duplicate_rule_name(name: &str, first: Span, again: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateRuleName,
        format!("rule name `{name}` is used more than once"),
    )
    .with_label(again, "used again here")
    .with_note_at(first, format!("`{name}` first defined here"))
    .with_help("rule names are the ids in decision logs; give each rule its own name")
}

pub(crate) fn duplicate_clause(keyword: &str, first: Span, again: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateClause,
        format!("`{keyword}` appears more than once in this rule"),
    )
    .with_label(again, "second one")
    .with_note_at(first, "first one")
    .with_help(match keyword {
        "when" => "combine the conditions into one `when` with `and` or `or`",
        "server" | "tool" => "list every name in one clause: `tool [\"a\", \"b_*\"]`",
        _ => "keep one of them",
    })
}

pub(crate) fn unknown_placeholder(at: Span, name: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnknownPlaceholder,
        format!("unknown placeholder `{{{name}}}` in reason"),
    )
    .with_label(at, "no call supplies this value")
    .with_help(format!(
        "placeholders are {}; write `{{{{` and `}}}}` for literal braces",
        crate::template::Placeholder::NAMES
            .iter()
            .map(|n| format!("`{{{n}}}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(crate) fn unclosed_placeholder(at: Span) -> Diagnostic {
    Diagnostic::new(Code::UnknownPlaceholder, "unclosed `{` in reason")
        .with_label(at, "this placeholder has no closing `}`")
        .with_help("close the placeholder, or write `{{` for a literal brace")
}

pub(crate) fn zero_limit(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::ZeroLimit,
        format!("a {kind} of 0 never lets a call through"),
    )
    .with_label(at, "0 calls")
    .with_help("to block these calls, write a `deny` rule; otherwise use a limit of 1 or more")
}

pub(crate) fn invalid_window(at: Span, window: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidWindow,
        format!("rate-limit window `{window}` is out of range"),
    )
    .with_label(at, "must be between 1s and 366d")
    .with_help("write a window such as `30s`, `10m`, `1h` or `1d`")
}

pub(crate) fn missing_limit(rule: Span, kind: &str) -> Diagnostic {
    let example = if kind == "rate-limit" {
        "max 10 per 1h per user"
    } else {
        "max 3 per session"
    };
    Diagnostic::new(
        Code::MisplacedLimit,
        format!("`{kind}` rule has no `max` clause"),
    )
    .with_label(rule, "no limit given")
    .with_help(format!("add a limit such as `{example}`"))
}

pub(crate) fn unexpected_limit(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedLimit,
        format!("`{kind}` rules take no `max` clause"),
    )
    .with_label(at, "not used by this rule kind")
    .with_help("use `cap-consecutive` or `rate-limit` to limit how often a tool is called")
}

pub(crate) fn window_on_cap(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::MisplacedLimit,
        "`cap-consecutive` counts a streak, not a window",
    )
    .with_label(at, "a window has no meaning here")
    .with_help("write `max N per SCOPE`, or make it a `rate-limit` to count calls per window")
}

pub(crate) fn missing_window(at: Span, kind: &str) -> Diagnostic {
    let example = if kind == "budget" {
        "max 2000 per 1d per user"
    } else {
        "max 10 per 1h per user"
    };
    Diagnostic::new(Code::MisplacedLimit, format!("`{kind}` needs a window"))
        .with_label(at, "no window given")
        .with_help(format!(
            "write `max N per WINDOW per SCOPE`, e.g. `{example}`"
        ))
}

pub(crate) fn ordering_on_non_number(at: Span, op: &str, ty: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("`{op}` compares numbers, not a {ty}"),
    )
    .with_label(at, format!("this is a {ty}"))
    .with_help("use `==`, `!=`, `in [...]` or `matches` for strings and booleans")
}

pub(crate) fn identity_not_string(at: Span, field: &str, ty: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("`{field}` is a string and is never equal to a {ty}"),
    )
    .with_label(at, format!("this is a {ty}"))
    .with_help(format!("quote the value: `{field} == \"...\"`"))
}

pub(crate) fn identity_ordering(at: Span, field: &str, op: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("`{field}` cannot be compared with `{op}`"),
    )
    .with_label(at, "strings have no order here")
    .with_help("use `==`, `!=`, `in [...]` or `matches`")
}

pub(crate) fn glob_never_matches(at: Span, pattern: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::GlobNeverMatches,
        format!("pattern `{pattern}` can never match"),
    )
    .with_label(at, why.to_string())
    .with_help("MCP tool names are 1 to 128 characters of A-Z, a-z, 0-9, `_`, `-` and `.`; `*` matches any run of them")
}

pub(crate) fn shadowed_rule(rule: Span, name: &str, by_name: &str, by: Span) -> Diagnostic {
    Diagnostic::new(
        Code::ShadowedRule,
        format!("rule `{name}` can never take effect: `{by_name}` denies every call it matches"),
    )
    .with_label(rule, "never takes effect")
    .with_note_at(
        by,
        format!("`{by_name}` denies these calls unconditionally"),
    )
    .with_help(format!(
        "narrow `{by_name}` with `tool`, `server` or `when`, or remove this rule"
    ))
}

pub(crate) fn redundant_allow(rule: Span, name: &str, default: Span) -> Diagnostic {
    Diagnostic::new(
        Code::RedundantAllow,
        format!("rule `{name}` allows what `default allow` already allows"),
    )
    .with_label(rule, "changes nothing")
    .with_note_at(default, "the set allows by default")
    .with_help("remove the rule, or switch the set to `default deny` so that allow rules matter")
}

pub(crate) fn duplicate_records_name(name: &str, first: Span, again: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateRecordsName,
        format!("record kind `{name}` is declared more than once"),
    )
    .with_label(again, "declared again here")
    .with_note_at(first, format!("`{name}` first declared here"))
    .with_help("list every tool that creates this kind in one declaration, one `created by tool` line each")
}

pub(crate) fn duplicate_records_clause(first: Span, again: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateClause,
        "`server` appears more than once in this records declaration",
    )
    .with_label(again, "second one")
    .with_note_at(first, "first one")
    .with_help("list every name in one clause: `server [\"a\", \"b-*\"]`")
}

pub(crate) fn empty_records(at: Span, name: &str) -> Diagnostic {
    Diagnostic::new(
        Code::EmptyRecords,
        format!("records `{name}` names no tool that creates them"),
    )
    .with_label(at, "no `created by tool` line")
    .with_help("add a line such as `created by tool \"create_sample\" at \"/sample/id\"`")
}

pub(crate) fn invalid_json_pointer(at: Span, pointer: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidJsonPointer,
        format!("`{pointer}` is not a JSON pointer to a record id"),
    )
    .with_label(at, why.to_string())
    .with_help("write an RFC 6901 pointer into the result's structuredContent: `/sample/id` reads `{\"sample\": {\"id\": ...}}`; escape `~` as `~0` and `/` in a key as `~1`")
}

pub(crate) fn records_not_declared(at: Span, servers: &str) -> Diagnostic {
    Diagnostic::new(
        Code::RecordsNotDeclared,
        format!("`created by agent` can never hold: no records declaration covers {servers}"),
    )
    .with_label(at, "no tool is known to create these records")
    .with_help("declare the tool that creates them: `records sample { server \"genomics\" created by tool \"create_sample\" at \"/sample/id\" }`")
}

pub(crate) fn nesting_too_deep(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::NestingTooDeep,
        format!(
            "this condition nests deeper than {} levels",
            crate::limits::MAX_NESTING
        ),
    )
    .with_label(at, "one level too many")
    .with_help("each `(` and each `not` opens a level; flatten the condition (`not not x` is `x`, and `(a and (b and c))` is `a and b and c`) or split it into several rules")
}

pub(crate) fn condition_too_large(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::ConditionTooLarge,
        format!(
            "this condition holds more than {} tests",
            crate::limits::MAX_TERMS
        ),
    )
    .with_label(at, "the first test over the limit")
    .with_help("split the condition into several rules, or match names with a glob (`matches \"prefix-*\"`) instead of listing each one")
}

pub(crate) fn invalid_path_prefix(at: Span, prefix: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidPathPrefix,
        format!("`{prefix}` cannot be the prefix of `under`"),
    )
    .with_label(at, why.to_string())
    .with_help("write an absolute path, such as `under \"/restricted\"`; it needs no `*`, as `under` covers everything below the path")
}

pub(crate) fn path_glob(at: Span, pattern: &str, prefix: &str) -> Diagnostic {
    Diagnostic::new(
        Code::PathGlob,
        format!("`matches \"{pattern}\"` compares the text of a path, not the path"),
    )
    .with_label(at, "`//`, `/./`, `/x/../` and other letter case get past this")
    .with_help(format!(
        "write `under \"{prefix}\"`: warden normalises the argument before comparing, and a path it cannot normalise counts as inside"
    ))
}

pub(crate) fn hint_default(
    at: Span,
    flag: &str,
    annotation: &str,
    default: bool,
    kind: &str,
) -> Diagnostic {
    let effect = if kind == "allow" {
        "grants every tool that does not declare it"
    } else {
        "never applies to a tool that does not declare it"
    };
    Diagnostic::new(
        Code::HintDefault,
        format!("`tool.{flag}` here {effect}"),
    )
    .with_label(
        at,
        format!("a tool without `{annotation}` reads as {default}, the MCP default"),
    )
    .with_help("annotations are the server's word and most servers omit some; say what you mean for unannotated tools, e.g. `deny` on the dangerous reading (`tool.destructive`, `not tool.read_only`) rather than `allow` on the harmless one")
}

pub(crate) fn unverified_agent_limit(at: Span, kind: &str) -> Diagnostic {
    Diagnostic::new(
        Code::UnverifiedAgentLimit,
        format!("this {kind} counts per agent, but the rule does not require `verified agent`"),
    )
    .with_label(at, "counted per agent name, which the client declares")
    .with_help("a client that reconnects with another `clientInfo.name` counts from zero: limit `per user` or `per session` instead, or add `and verified agent` to `when` (then only calls whose agent a bearer token names are counted, so keep a per-user rule for the others)")
}

pub(crate) fn inferred_record_kind(at: Span, kind: &str, servers: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InferredRecordKind,
        format!("`created by agent` is read as `created by agent as {kind}`, the only record kind declared for {servers}"),
    )
    .with_label(at, format!("asks about `{kind}` ids"))
    .with_help(format!("write `created by agent as {kind}` to say so; a second records declaration for these servers would otherwise make the condition ambiguous"))
}

pub(crate) fn ambiguous_record_kind(at: Span, kinds: &[&str], servers: &str) -> Diagnostic {
    let list = kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Diagnostic::new(
        Code::AmbiguousRecordKind,
        format!("`created by agent` could ask about any of {list}: each is declared for {servers}"),
    )
    .with_label(at, "which kind of record is this id?")
    .with_help(format!("ids are only unique within a kind (note 1 is not sample 1): name it, e.g. `created by agent as {}`", kinds[0]))
}

pub(crate) fn unknown_record_kind(at: Span, kind: &str, declared: &[&str]) -> Diagnostic {
    let help = if declared.is_empty() {
        format!(
            "declare it: `records {kind} {{ server \"...\" created by tool \"...\" at \"/id\" }}`"
        )
    } else {
        let list = declared
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("the declared kinds are {list}")
    };
    Diagnostic::new(
        Code::UnknownRecordKind,
        format!("no records declaration is named `{kind}`"),
    )
    .with_label(at, "not a declared record kind")
    .with_help(help)
}

pub(crate) fn records_not_declared_for_kind(at: Span, kind: &str, servers: &str) -> Diagnostic {
    Diagnostic::new(
        Code::RecordsNotDeclared,
        format!("`created by agent as {kind}` can never hold: records `{kind}` are not declared for {servers}"),
    )
    .with_label(at, "kept for other servers")
    .with_help(format!("add the rule's server to the `server` line of `records {kind}`, or name the kind declared for it"))
}
