//! The dead-condition lints must be sound: an error (`wildcard-segment`,
//! `never-matches`) only where no call can match, a warning
//! (`field-of-scalar`, `measure-as-field`) where the test is very likely a
//! mistake but some argument shape would let it match. Each condition here
//! that can match lints clean, beside the closest one that cannot.

mod common;

use warden_lang::lint_policy_set;

fn codes(text: &str) -> Vec<&'static str> {
    common::codes(&lint_policy_set(&common::sources("dead.policy", text)))
}

fn deny_when(cond: &str) -> String {
    format!("default allow\ndeny d {{\n  tool \"write_file\"\n  when {cond}\n}}\n")
}

#[track_caller]
fn clean(cond: &str) {
    let got = codes(&deny_when(cond));
    assert!(got.is_empty(), "`{cond}` can match, yet reports {got:?}");
}

/// The condition is refused: `code` is its one finding, an error.
#[track_caller]
fn refused(cond: &str, code: &str) {
    let diags = lint_policy_set(&common::sources("dead.policy", &deny_when(cond)));
    assert_eq!(common::codes(&diags), [code], "`{cond}`");
    assert_eq!(diags.error_count(), 1, "`{cond}`: not an error");
}

/// The condition is warned about: `code` is its one finding, a warning.
#[track_caller]
fn warned(cond: &str, code: &str) {
    let diags = lint_policy_set(&common::sources("dead.policy", &deny_when(cond)));
    assert_eq!(common::codes(&diags), [code], "`{cond}`");
    assert_eq!(diags.error_count(), 0, "`{cond}`: an error");
}

#[test]
fn a_star_segment_is_refused_everywhere_a_path_is_read() {
    refused(r#"args.paths."*" under "/etc""#, "wildcard-segment");
    refused(r#"not args.files."*".name == "x""#, "wildcard-segment");
    refused(r#"any args.dirs."a*" under "/etc""#, "wildcard-segment");
    refused(r#"length of args.rows."*" > 3"#, "wildcard-segment");
    clean(r#"any args.paths under "/etc""#);
    clean(r#"all args.paths under "/etc""#);
    // In a budget's sum too.
    let budget = "default allow\nbudget b {\n  tool \"run\"\n  sum args.costs.\"*\"\n  max 10 per 1d per user\n}\n";
    assert_eq!(codes(budget), ["wildcard-segment"]);
    let budget = budget.replace(".\"*\"", ".total");
    assert!(codes(&budget).is_empty());
}

#[test]
fn a_measure_named_field_compared_as_a_number_is_warned_about() {
    // A warning: an object argument may have a `size` field (a page size).
    warned("args.content.length > 1000", "measure-as-field");
    warned("args.content.size >= 1000", "measure-as-field");
    warned("args.ids.count == 3", "measure-as-field");
    // Where the parent is read as a string in the same `and`, it is dead.
    refused(
        r#"args.content matches "*x*" and args.content.length > 1000"#,
        "never-matches",
    );
    clean("length of args.content > 1000");
    clean("size of args.content > 100 KB");
    // A top-level argument named `length` is just an argument.
    clean("args.length > 1000");
    // Compared as a string, `length` is some field's name.
    clean(r#"args.unit.length == "m""#);
    // When another field of the parent is read, the parent is an object,
    // and `length` may well be one of its fields.
    clean(r#"args.rope.length > 10 and args.rope.material == "hemp""#);
}

#[test]
fn a_field_of_a_value_read_as_a_scalar_is_refused_in_one_and_and_warned_about_for_the_same_calls() {
    // One call cannot pass both.
    refused(
        r#"args.format == "csv" and args.format.kind == "x""#,
        "never-matches",
    );
    refused(
        r#"args.dest under "/tmp" and via agent and args.dest.host exists"#,
        "never-matches",
    );
    // Different calls may (an argument of two shapes): a warning.
    warned(
        r#"args.dest under "/tmp" or args.dest.host == "x""#,
        "field-of-scalar",
    );
    // `exists`, `length of`, `size of` read any value.
    clean(r#"args.format exists and args.format.kind == "x""#);
    clean(r#"length of args.items > 1 and args.items."0" == "x""#);
    clean(r#"size of args.body > 1 KB and args.body.text == "x""#);
    // The path after `any` / `all` names a list, not a scalar.
    clean(r#"any args.tags == "pii" and args.tags."0" == "pii""#);
    // Rules on different tools may see different shapes under one name.
    let two_tools = "default allow\ndeny a {\n  tool \"write_file\"\n  when args.format == \"csv\"\n}\ndeny b {\n  tool \"export_table\"\n  when args.format.kind == \"x\"\n}\n";
    assert!(codes(two_tools).is_empty());
    let same_tool = two_tools.replace("export_table", "write_*");
    assert_eq!(codes(&same_tool), ["field-of-scalar"]);
    let diags = lint_policy_set(&common::sources("dead.policy", &same_tool));
    assert_eq!(diags.error_count(), 0);
}

#[test]
fn contradictions_in_one_and_are_refused_and_nothing_else_is() {
    refused(r#"args.x == "a" and args.x == "b""#, "never-matches");
    refused(
        r#"user == "a" and via agent and user != "a""#,
        "never-matches",
    );
    refused(r#"args.x in ["a", "b"] and args.x == "c""#, "never-matches");
    refused(r#"args.n == 1 and args.n == 2"#, "never-matches");
    refused(r#"args.x == "a" and args.x == 1"#, "never-matches");
    refused(
        r#"not (args.x == true and args.x == false)"#,
        "never-matches",
    );
    refused("args.n > 5 and args.n < 3", "never-matches");
    refused("args.n >= 5 and via agent and args.n < 5", "never-matches");
    refused("args.n == 7 and args.n > 7", "never-matches");
    refused(
        "size of args.body >= 2 KB and size of args.body < 1000",
        "never-matches",
    );
    clean("args.n > 5 and args.n < 6");
    clean("args.n >= 5 and args.n <= 5");
    clean("args.n > 5 and args.m < 3");
    clean("args.n > 5 or args.n < 3");
    clean("size of args.body >= 1 KB and size of args.body <= 1000");
    clean("length of args.ids > 5 and size of args.ids < 3");
    clean(r#"args.x == "a" or args.x == "b""#);
    clean(r#"args.x in ["a", "b"] and args.x == "b""#);
    clean(r#"args.x != "a" and args.x != "b""#);
    clean(r#"args.x == "a" and args.y == "b""#);
    // `1` and `1.0` are one number: decimals are left alone.
    clean("args.n == 1 and args.n == 1.0");
    // Case-folded tests compare other strings.
    clean(r#"args.x == "A" and args.x == "a" ignoring case"#);
    // Different elements of a list may pass each.
    clean(r#"any args.tags == "a" and any args.tags == "b""#);
}

#[test]
fn a_length_or_size_below_zero_never_holds() {
    refused("length of args.ids < 0", "never-matches");
    refused("size of args.body < 0 KB", "never-matches");
    clean("length of args.ids <= 0");
    clean("length of args.ids == 0");
    clean("size of args.body < 1 B");
}

#[test]
fn a_cap_is_flagged_only_when_every_call_it_counts_is_confirmed() {
    let cap = "cap-consecutive streak {\n  tool \"write_file\"\n  max 3 per session\n}\n";
    let with = |confirm: &str| format!("default allow\nrequire-confirm c {{\n{confirm}}}\n{cap}");
    assert_eq!(
        codes(&with("  tool \"write_*\"\n")),
        ["cap-ended-by-confirm"]
    );
    assert_eq!(codes(&with("")), ["cap-ended-by-confirm"]);
    // Only some calls confirmed: the streak of the others still counts.
    assert!(codes(&with("  tool \"write_*\"\n  when via agent\n")).is_empty());
    // Unless the cap counts only calls the confirmation's condition holds for.
    let agent_cap = "cap-consecutive streak {\n  tool \"write_file\"\n  when via agent and args.n > 3\n  max 3 per session\n}\n";
    let text = format!("default allow\nrequire-confirm c {{\n  when via agent\n}}\n{agent_cap}");
    assert_eq!(codes(&text), ["cap-ended-by-confirm"]);
    let text = format!(
        "default allow\nrequire-confirm c {{\n  when args.n > 3 and via agent\n}}\n{agent_cap}"
    );
    assert_eq!(codes(&text), ["cap-ended-by-confirm"]);
    let text = format!(
        "default allow\nrequire-confirm c {{\n  when via agent or args.n > 9\n}}\n{agent_cap}"
    );
    // An `or` is not followed (a missed warning, never a false one).
    assert!(codes(&text).is_empty());
    let text = format!("default allow\nrequire-confirm c {{\n  when args.n > 4\n}}\n{agent_cap}");
    assert!(codes(&text).is_empty());
    assert!(codes(&with("  tool \"delete_*\"\n")).is_empty());
    assert!(codes(&with("  server \"lab\"\n")).is_empty());
    // A shadow confirmation confirms nothing.
    assert!(codes(&with("  tool \"write_*\"\n  mode shadow\n")).is_empty());
}
