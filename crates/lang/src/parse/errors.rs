//! pest's parse errors in plain words: what was expected (rule names
//! described, tokens in backticks) and what was found instead.

use super::Rule;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::source::{FileId, Span};

pub(super) fn syntax_error(file: FileId, text: &str, err: &pest::error::Error<Rule>) -> Diagnostic {
    let mut pos = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let attempts = err.parse_attempts();
    match attempts {
        // Pest reports the start of the item that failed; its attempt
        // tracker knows the furthest point reached, which is where the
        // author's mistake is (`deny x tool ...` is missing `{` at `tool`).
        Some(a) if a.max_position > pos => {
            pos = a.max_position;
            for tok in a.expected_tokens() {
                push_token(&mut expected, &tok.to_string(), true);
            }
        }
        _ => {
            if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant {
                expected.extend(
                    positives
                        .iter()
                        .filter_map(|r| describe_rule(*r))
                        .map(str::to_string),
                );
            }
            if let Some(a) = attempts {
                for tok in a.expected_tokens() {
                    push_token(&mut expected, &tok.to_string(), false);
                }
            }
        }
    }
    expected.sort();
    expected.dedup();
    let found = describe_found(text, pos);
    let span_len = found.1.max(usize::from(pos < text.len()));
    let span = Span::new(file, pos, pos + span_len);
    lints::syntax_error(span, &expected, &found.0)
}

/// Adds a token pest expected, in backticks; keywords only when the caller
/// has no rule names describing them already.
fn push_token(expected: &mut Vec<String>, tok: &str, keywords: bool) {
    let is_word = tok.chars().any(char::is_alphanumeric);
    if tok.trim().is_empty()
        || matches!(tok, "#" | "\"" | "-")
        || tok.contains("..")
        || tok == "BUILTIN_RULE"
        || (is_word && !keywords)
    {
        return;
    }
    let t = format!("`{tok}`");
    if !expected.contains(&t) {
        expected.push(t);
    }
}

/// What stands at `pos`, in words, and how many bytes it covers.
fn describe_found(text: &str, pos: usize) -> (String, usize) {
    let rest = &text[pos.min(text.len())..];
    let Some(first) = rest.chars().next() else {
        return ("the end of the file".to_string(), 0);
    };
    let word_len: usize = rest
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '-')
        .map(|(_, c)| c.len_utf8())
        .sum();
    if word_len > 0 {
        (format!("`{}`", &rest[..word_len]), word_len)
    } else if first == '\n' {
        ("the end of the line".to_string(), 0)
    } else {
        (format!("`{first}`"), first.len_utf8())
    }
}

fn describe_rule(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::default_decl | Rule::kw_default => "`default`",
        Rule::rule_decl | Rule::rule_kind => {
            "a rule (`allow`, `deny`, `require-confirm`, `cap-consecutive`, `rate-limit`, `budget`)"
        }
        Rule::rule_name => "a name",
        Rule::records_decl | Rule::kw_records => "`records`",
        Rule::created_clause | Rule::kw_created => "`created`",
        Rule::kw_by => "`by`",
        Rule::kw_at => "`at`",
        Rule::kw_as => "`as`",
        Rule::created_by => "`created by agent`",
        Rule::verified | Rule::kw_verified => "`verified`",
        Rule::verified_field => "`user`, `groups`, `agent` or `model`",
        Rule::default_effect => "`allow` or `deny`",
        Rule::server_clause | Rule::kw_server => "`server`",
        Rule::tool_clause | Rule::kw_tool => "`tool`",
        Rule::when_clause | Rule::kw_when => "`when`",
        Rule::reason_clause | Rule::kw_reason => "`reason`",
        Rule::mode_clause | Rule::kw_mode => "`mode`",
        Rule::limit_clause | Rule::kw_max => "`max`",
        Rule::mode => "`shadow` or `enforce`",
        Rule::scope => "a scope (`session`, `user`, `agent`, `model` or `tool`)",
        Rule::amount => "a number",
        Rule::sum_clause | Rule::kw_sum => "`sum`",
        Rule::approver_clause => "`by`",
        Rule::approver_kind => "`group` or `user`",
        Rule::grant_clause | Rule::kw_grant => "`grant`",
        Rule::grant_scope => "a grant (`once`, `for 30m`, `for session` or `for 5 calls`)",
        Rule::kw_once => "`once`",
        Rule::kw_for => "`for`",
        Rule::grant_calls | Rule::kw_calls => "a number of calls such as `5 calls`",
        Rule::grant_within | Rule::kw_within => "`within`",
        Rule::kw_budget => "`budget`",
        Rule::during | Rule::kw_during => "`during`",
        Rule::day_set | Rule::day_range | Rule::day_name => {
            "days (`weekdays`, `weekends`, or days such as `mon-fri` or `sat,sun`)"
        }
        Rule::kw_weekdays => "`weekdays`",
        Rule::kw_weekends => "`weekends`",
        Rule::hours | Rule::clock_time => "hours such as `08:00-18:00`",
        Rule::quantified | Rule::quantifier | Rule::kw_any | Rule::kw_all => "`any` or `all`",
        Rule::folded_comparison | Rule::kw_ignoring => "`ignoring case`",
        Rule::kw_case => "`case`",
        Rule::length_of | Rule::kw_length => "`length of`",
        Rule::size_of | Rule::kw_size => "`size of`",
        Rule::kw_of => "`of`",
        Rule::byte_size | Rule::size_unit => "a size such as `100 KB`",
        Rule::duration => "a window such as `30s`, `10m`, `1h` or `1d`",
        Rule::pattern_list => "a string or a list of strings",
        Rule::expr | Rule::and_expr | Rule::unary => "a condition",
        Rule::via_agent | Rule::via_server | Rule::kw_via => "`via`",
        Rule::tool_flag => "`tool.<flag>`",
        Rule::tool_flag_name => {
            "a tool flag (`read_only`, `destructive`, `idempotent`, `open_world`)"
        }
        Rule::in_group => "`user in group`",
        Rule::exists | Rule::kw_exists => "`exists`",
        Rule::comparison | Rule::subject => {
            "`args.<name>`, `length of`, `size of`, `user`, `agent` or `model`"
        }
        Rule::arg_path | Rule::kw_args => "`args.<name>`",
        Rule::path_segment => "an argument name",
        Rule::identity => "`user`, `agent` or `model`",
        Rule::cmp_tail | Rule::cmp_op => "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::in_tail | Rule::kw_in => "`in`",
        Rule::matches_tail | Rule::kw_matches => "`matches`",
        Rule::under | Rule::kw_under => "`under`",
        Rule::number => "a number",
        // Only the amount of a size (`100 KB`), after a comparison where
        // any number may stand: said as "a number" so the two merge.
        Rule::integer => "a number",
        Rule::string => "a string",
        Rule::bool_lit | Rule::kw_true | Rule::kw_false => "`true` or `false`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_not | Rule::not_op => "`not`",
        Rule::kw_per => "`per`",
        Rule::kw_group => "`group`",
        Rule::EOI => "the end of the file",
        Rule::kw_allow => "`allow`",
        Rule::kw_deny => "`deny`",
        Rule::kw_require_confirm => "`require-confirm`",
        Rule::kw_cap_consecutive => "`cap-consecutive`",
        Rule::kw_rate_limit => "`rate-limit`",
        Rule::kw_shadow => "`shadow`",
        Rule::kw_enforce => "`enforce`",
        Rule::kw_session => "`session`",
        Rule::kw_user => "`user`",
        Rule::kw_agent => "`agent`",
        Rule::kw_model => "`model`",
        _ => return None,
    })
}
