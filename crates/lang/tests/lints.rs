//! One test per lint rule, as oxc's linter does: a failing example that
//! must report the rule (its rendered report is a snapshot), and a passing
//! example, as close to the failing one as possible, that must not.

mod common;

use warden_lang::{Code, lint_policy_set};

fn check(code: Code, fail: &str, pass: &str) {
    let name = format!("{}.policy", code.id());
    let diags = lint_policy_set(&common::sources(&name, fail));
    assert!(
        diags.iter().any(|d| d.code() == code),
        "`{}` not reported for:\n{fail}\ngot:\n{}",
        code.id(),
        common::render(&diags)
    );
    let d = diags
        .iter()
        .find(|d| d.code() == code)
        .expect("found above");
    assert_eq!(d.severity(), code.default_severity());
    assert!(d.help_text().is_some(), "`{}` has no help", code.id());
    assert!(d.location().is_some(), "`{}` has no location", code.id());
    insta::assert_snapshot!(code.id(), common::render(&diags));

    let clean = lint_policy_set(&common::sources(&name, pass));
    assert!(
        clean.is_empty(),
        "passing example for `{}` reports:\n{}",
        code.id(),
        common::render(&clean)
    );
}

#[test]
fn syntax_error() {
    check(
        Code::Syntax,
        "default deny\ndeny no-deletes\n  tool \"delete_*\"\n}\n",
        "default deny\ndeny no-deletes {\n  tool \"delete_*\"\n}\n",
    );
}

#[test]
fn invalid_string() {
    check(
        Code::InvalidString,
        "default deny\ndeny x {\n  reason \"tab is \\q\"\n}\n",
        "default deny\ndeny x {\n  reason \"tab is \\t\"\n}\n",
    );
}

#[test]
fn number_out_of_range() {
    check(
        Code::NumberOutOfRange,
        "default deny\ndeny x {\n  when args.n > 99999999999999999999\n}\n",
        "default deny\ndeny x {\n  when args.n > 999999999999\n}\n",
    );
}

#[test]
fn missing_default() {
    check(
        Code::MissingDefault,
        "deny x {\n  tool \"delete_*\"\n}\n",
        "default allow\ndeny x {\n  tool \"delete_*\"\n}\n",
    );
}

#[test]
fn conflicting_default() {
    check(
        Code::ConflictingDefault,
        "default deny\ndefault allow\n",
        "default deny\ndefault deny\n",
    );
}

#[test]
fn duplicate_rule_name() {
    check(
        Code::DuplicateRuleName,
        "default deny\nallow read {\n  tool \"get_*\"\n}\nallow read {\n  tool \"list_*\"\n}\n",
        "default deny\nallow read {\n  tool \"get_*\"\n}\nallow list {\n  tool \"list_*\"\n}\n",
    );
}

#[test]
fn duplicate_clause() {
    check(
        Code::DuplicateClause,
        "default allow\ndeny x {\n  when via agent\n  when args.a == 1\n}\n",
        "default allow\ndeny x {\n  when via agent and args.a == 1\n}\n",
    );
}

#[test]
fn unknown_placeholder() {
    check(
        Code::UnknownPlaceholder,
        "default allow\ndeny x {\n  reason \"no {sample} for {user}\"\n}\n",
        "default allow\ndeny x {\n  reason \"no {args.sample} for {user}\"\n}\n",
    );
}

#[test]
fn zero_limit() {
    check(
        Code::ZeroLimit,
        "default allow\ncap-consecutive c {\n  max 0 per session\n}\n",
        "default allow\ncap-consecutive c {\n  max 1 per session\n}\n",
    );
}

#[test]
fn invalid_window() {
    check(
        Code::InvalidWindow,
        "default allow\nrate-limit r {\n  max 10 per 0m per user\n}\n",
        "default allow\nrate-limit r {\n  max 10 per 10m per user\n}\n",
    );
}

#[test]
fn misplaced_limit() {
    check(
        Code::MisplacedLimit,
        "default allow\ncap-consecutive c {\n  max 3 per 1h per session\n}\n",
        "default allow\nrate-limit c {\n  max 3 per 1h per session\n}\n",
    );
}

#[test]
fn type_mismatch() {
    check(
        Code::TypeMismatch,
        "default allow\ndeny x {\n  when args.size > \"large\"\n}\n",
        "default allow\ndeny x {\n  when args.size == \"large\"\n}\n",
    );
}

#[test]
fn mixed_type_lists_are_refused() {
    let diags = lint_policy_set(&common::sources(
        "t.policy",
        "default allow\ndeny x {\n  when args.format in [\"bam\", 3]\n}\n",
    ));
    assert_eq!(common::codes(&diags), ["type-mismatch"]);
    assert!(
        diags
            .iter()
            .next()
            .unwrap()
            .message()
            .contains("mixes a string and a number")
    );
}

#[test]
fn limit_placeholders_need_a_limit() {
    let diags = lint_policy_set(&common::sources(
        "t.policy",
        "default allow\ndeny x {\n  when via agent\n  reason \"at most {limit} per {window}\"\n}\ncap-consecutive c {\n  max 2 per user\n  reason \"{limit} per {window}\"\n}\n",
    ));
    let msgs: Vec<&str> = diags.iter().map(|d| d.message()).collect();
    assert_eq!(
        msgs,
        [
            "`{limit}` has no value in a `deny` rule",
            "`{window}` has no value in a `deny` rule",
            "`{window}` has no value in a `cap-consecutive` rule",
        ]
    );
}

#[test]
fn numbers_beyond_decimal_range_say_so() {
    let diags = lint_policy_set(&common::sources(
        "t.policy",
        "default allow\ndeny x {\n  when args.n > 1000000000000000\n}\n",
    ));
    let d = diags.iter().next().expect("one finding");
    assert_eq!(d.code(), Code::NumberOutOfRange);
    assert!(
        d.help_text().unwrap().contains("922337203685477"),
        "{:?}",
        d.help_text()
    );
}

#[test]
fn glob_never_matches() {
    check(
        Code::GlobNeverMatches,
        "default allow\ndeny x {\n  tool \"delete sample\"\n}\n",
        "default allow\ndeny x {\n  tool \"delete_sample\"\n}\n",
    );
}

#[test]
fn shadowed_rule() {
    check(
        Code::ShadowedRule,
        "default allow\ndeny all-deletes {\n  tool \"delete_*\"\n}\nrequire-confirm confirm-sample-delete {\n  tool \"delete_sample\"\n}\n",
        "default allow\ndeny all-deletes {\n  tool \"delete_*\"\n  when via agent\n}\nrequire-confirm confirm-sample-delete {\n  tool \"delete_sample\"\n}\n",
    );
}

#[test]
fn redundant_allow() {
    check(
        Code::RedundantAllow,
        "default allow\nallow reads {\n  tool \"get_*\"\n}\n",
        "default deny\nallow reads {\n  tool \"get_*\"\n}\n",
    );
}

#[test]
fn compiler_bug_is_never_reported_for_valid_policies() {
    // `compiler-bug` has no failing example by design: it would be a bug.
    // The golden and property tests compile many policies and assert it
    // never appears; here, the reference policies.
    for f in ["genomics.policy", "baseline.policy"] {
        let path = format!("{}/../../policies/{f}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("read");
        let diags = lint_policy_set(&common::sources(f, &text));
        assert!(!diags.iter().any(|d| d.code() == Code::CompilerBug));
    }
}

#[test]
fn every_code_has_a_test_here() {
    let src = include_str!("lints.rs");
    for code in Code::ALL {
        if *code == Code::CompilerBug {
            continue;
        }
        let variant = format!("{code:?}");
        assert!(
            src.contains(&format!("Code::{variant},")),
            "no test for `{}`",
            code.id()
        );
    }
}

#[test]
fn duplicate_records_name() {
    check(
        Code::DuplicateRecordsName,
        "default deny\nrecords sample {\n  created by tool \"create_sample\" at \"/sample/id\"\n}\nrecords sample {\n  created by tool \"import_sample\" at \"/sample/id\"\n}\n",
        "default deny\nrecords sample {\n  created by tool \"create_sample\" at \"/sample/id\"\n  created by tool \"import_sample\" at \"/sample/id\"\n}\n",
    );
}

#[test]
fn empty_records() {
    check(
        Code::EmptyRecords,
        "default deny\nrecords sample {\n  server \"genomics\"\n}\n",
        "default deny\nrecords sample {\n  server \"genomics\"\n  created by tool \"create_sample\" at \"/sample/id\"\n}\n",
    );
}

#[test]
fn invalid_json_pointer() {
    check(
        Code::InvalidJsonPointer,
        "default deny\nrecords sample {\n  created by tool \"create_sample\" at \"sample.id\"\n}\n",
        "default deny\nrecords sample {\n  created by tool \"create_sample\" at \"/sample/id\"\n}\n",
    );
}

#[test]
fn records_not_declared() {
    check(
        Code::RecordsNotDeclared,
        "default deny\nrecords sample {\n  server \"genomics\"\n  created by tool \"create_sample\" at \"/sample/id\"\n}\nallow own {\n  server \"lab\"\n  when args.sample_id created by agent\n}\n",
        "default deny\nrecords sample {\n  server \"genomics\"\n  created by tool \"create_sample\" at \"/sample/id\"\n}\nallow own {\n  server \"genomics\"\n  when args.sample_id created by agent as sample\n}\n",
    );
}

const SAMPLES_AND_NOTES: &str = "default deny\nrecords sample {\n  server \"genomics\"\n  created by tool \"create_sample\" at \"/sample/id\"\n}\nrecords note {\n  created by tool \"create_note\" at \"/note/id\"\n}\n";

#[test]
fn finding_04_ambiguous_record_kind() {
    check(
        Code::AmbiguousRecordKind,
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"genomics\"\n  when args.sample_id created by agent\n}}\n"
        ),
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"genomics\"\n  when args.sample_id created by agent as sample\n}}\n"
        ),
    );
}

#[test]
fn finding_04_unknown_record_kind() {
    check(
        Code::UnknownRecordKind,
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"genomics\"\n  when args.sample_id created by agent as smaple\n}}\n"
        ),
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"genomics\"\n  when args.sample_id created by agent as sample\n}}\n"
        ),
    );
}

#[test]
fn finding_04_inferred_record_kind() {
    check(
        Code::InferredRecordKind,
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"lab\"\n  when args.note_id created by agent\n}}\n"
        ),
        &format!(
            "{SAMPLES_AND_NOTES}allow own {{\n  server \"lab\"\n  when args.note_id created by agent as note\n}}\n"
        ),
    );
}

#[test]
fn finding_13_unverified_agent_limit() {
    check(
        Code::UnverifiedAgentLimit,
        "default allow\ncap-consecutive writes-per-agent {\n  tool \"update_*\"\n  when via agent\n  max 5 per agent\n}\n",
        "default allow\ncap-consecutive writes-per-agent {\n  tool \"update_*\"\n  when via agent and verified agent\n  max 5 per agent\n}\n",
    );
}

#[test]
fn finding_22_nesting_too_deep() {
    let deep = format!(
        "default allow\ndeny x {{\n  when {}via agent{}\n}}\n",
        "(".repeat(40),
        ")".repeat(40)
    );
    let shallow = format!(
        "default allow\ndeny x {{\n  when {}via agent{}\n}}\n",
        "(".repeat(8),
        ")".repeat(8)
    );
    check(Code::NestingTooDeep, &deep, &shallow);
}

#[test]
fn finding_22_too_many_nots_count_as_nesting() {
    let text = format!(
        "default allow\ndeny x {{\n  when {}via agent\n}}\n",
        "not ".repeat(40)
    );
    let diags = lint_policy_set(&common::sources("nots.policy", &text));
    assert_eq!(common::codes(&diags), ["nesting-too-deep"]);
}

#[test]
fn finding_22_condition_too_large() {
    let big = vec!["via agent"; 600].join("\n    or ");
    let small = vec!["via agent"; 20].join(" or ");
    check(
        Code::ConditionTooLarge,
        &format!("default allow\ndeny x {{\n  when {big}\n}}\n"),
        &format!("default allow\ndeny x {{\n  when {small}\n}}\n"),
    );
}

#[test]
fn finding_18_invalid_path_prefix() {
    check(
        Code::InvalidPathPrefix,
        "default allow\ndeny x {\n  when args.path under \"restricted/*\"\n}\n",
        "default allow\ndeny x {\n  when args.path under \"/restricted\"\n}\n",
    );
}

#[test]
fn finding_18_path_glob() {
    check(
        Code::PathGlob,
        "default allow\ndeny x {\n  when args.path matches \"/restricted/*\"\n}\n",
        "default allow\ndeny x {\n  when args.path under \"/restricted\" or args.name matches \"tmp-*\"\n}\n",
    );
}

#[test]
fn finding_28_hint_default() {
    check(
        Code::HintDefault,
        "default deny\nallow harmless {\n  when not tool.destructive or tool.open_world\n}\n",
        "default deny\nallow harmless {\n  when tool.read_only\n}\ndeny dangerous {\n  when tool.destructive and not tool.read_only or not tool.idempotent\n}\n",
    );
}

#[test]
fn quantifier_without_list() {
    check(
        Code::QuantifierWithoutList,
        "default allow\ndeny d {\n  when any user == \"mallory\"\n}\n",
        "default allow\ndeny d {\n  when any args.owners == \"mallory\"\n}\n",
    );
}

#[test]
fn ignoring_case_not_string() {
    check(
        Code::IgnoringCaseNotString,
        "default allow\ndeny d {\n  when args.count > 3 ignoring case\n}\n",
        "default allow\ndeny d {\n  when args.sql matches \"*drop table*\" ignoring case\n}\n",
    );
}

// ---- issue 12: scopes, budgets, time windows, lists, sizes, case ----------

#[test]
fn duplicate_scope() {
    check(
        Code::DuplicateScope,
        "default allow\nrate-limit starts {\n  tool \"start_*\"\n  max 5 per 1h per user per user\n}\n",
        "default allow\nrate-limit starts {\n  tool \"start_*\"\n  max 5 per 1h per user per tool\n}\n",
    );
}

#[test]
fn fractional_count() {
    check(
        Code::FractionalCount,
        "default allow\ncap-consecutive streak {\n  tool \"start_*\"\n  max 2.5 per session\n}\n",
        "default allow\ncap-consecutive streak {\n  tool \"start_*\"\n  max 2 per session\n}\n",
    );
}

#[test]
fn misplaced_sum() {
    check(
        Code::MisplacedSum,
        "default allow\nbudget compute-spend {\n  tool \"start_pipeline_run\"\n  max 2000 per 1d per user\n}\n",
        "default allow\nbudget compute-spend {\n  tool \"start_pipeline_run\"\n  sum args.estimated_cost\n  max 2000 per 1d per user\n}\n",
    );
}

#[test]
fn unverified_model_limit() {
    check(
        Code::UnverifiedModelLimit,
        "default allow\nrate-limit per-model {\n  tool \"start_*\"\n  max 5 per 1h per model\n}\n",
        "default allow\nrate-limit per-model {\n  tool \"start_*\"\n  when verified model\n  max 5 per 1h per model\n}\n",
    );
}

#[test]
fn invalid_time_window() {
    check(
        Code::InvalidTimeWindow,
        "default allow\ndeny night-runs {\n  tool \"start_pipeline_run\"\n  when not during weekdays 08:00-25:00 \"Europe/Berlin\"\n}\n",
        "default allow\ndeny night-runs {\n  tool \"start_pipeline_run\"\n  when not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n",
    );
}

#[test]
fn unknown_time_zone() {
    check(
        Code::UnknownTimeZone,
        "default allow\ndeny night-runs {\n  tool \"start_pipeline_run\"\n  when not during weekdays 08:00-18:00 \"Europe/Berln\"\n}\n",
        "default allow\ndeny night-runs {\n  tool \"start_pipeline_run\"\n  when not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n",
    );
}

#[test]
fn repeated_day() {
    check(
        Code::RepeatedDay,
        "default allow\ndeny weekend-runs {\n  tool \"start_pipeline_run\"\n  when during sat,sun,sat \"UTC\"\n}\n",
        "default allow\ndeny weekend-runs {\n  tool \"start_pipeline_run\"\n  when during sat,sun \"UTC\"\n}\n",
    );
}

#[test]
fn wildcard_segment() {
    check(
        Code::WildcardSegment,
        "default allow\ndeny outside-scratch {\n  tool \"write_*\"\n  when args.paths.\"*\" under \"/etc\"\n}\n",
        "default allow\ndeny outside-scratch {\n  tool \"write_*\"\n  when any args.paths under \"/etc\"\n}\n",
    );
}

#[test]
fn field_of_scalar() {
    check(
        Code::FieldOfScalar,
        "default allow\ndeny csv-only {\n  tool \"write_file\"\n  when args.format != \"csv\"\n}\ndeny no-gzip {\n  tool \"write_*\"\n  when args.format.compression == \"gzip\"\n}\n",
        // Another tool may well pass `format` as an object.
        "default allow\ndeny csv-only {\n  tool \"write_file\"\n  when args.format != \"csv\"\n}\ndeny no-gzip {\n  tool \"export_table\"\n  when args.format.compression == \"gzip\"\n}\n",
    );
}

#[test]
fn measure_as_field() {
    check(
        Code::MeasureAsField,
        "default allow\nrequire-confirm big-writes {\n  tool \"write_file\"\n  when args.content.length > 100000\n}\n",
        "default allow\nrequire-confirm big-writes {\n  tool \"write_file\"\n  when length of args.content > 100000\n}\n",
    );
}

#[test]
fn never_matches() {
    check(
        Code::NeverMatches,
        "default allow\ndeny odd-formats {\n  tool \"export_table\"\n  when args.format == \"csv\" and args.format == \"tsv\"\n}\n",
        "default allow\ndeny odd-formats {\n  tool \"export_table\"\n  when args.format == \"csv\" or args.format == \"tsv\"\n}\n",
    );
}

#[test]
fn cap_ended_by_confirm() {
    check(
        Code::CapEndedByConfirm,
        "default allow\nrequire-confirm writes {\n  tool \"write_*\"\n}\ncap-consecutive streak {\n  tool \"write_file\"\n  max 3 per session\n}\n",
        "default allow\nrequire-confirm writes {\n  tool \"write_*\"\n  when via agent\n}\ncap-consecutive streak {\n  tool \"write_file\"\n  max 3 per session\n}\n",
    );
}

#[test]
fn misplaced_approval() {
    check(
        Code::MisplacedApproval,
        "default allow\ndeny x {\n  tool \"wipe\"\n  by group \"admins\"\n}\n",
        "default allow\nrequire-confirm x {\n  tool \"wipe\"\n  by group \"admins\"\n}\n",
    );
}

#[test]
fn invalid_grant() {
    check(
        Code::InvalidGrant,
        "default allow\nrequire-confirm x {\n  tool \"run\"\n  grant for 2d\n}\n",
        "default allow\nrequire-confirm x {\n  tool \"run\"\n  grant for 1d\n}\n",
    );
}

#[test]
fn invalid_grant_within_once() {
    let fail = "default allow\nrequire-confirm x {\n  tool \"run\"\n  grant once within args.sample_id\n}\n";
    let diags = lint_policy_set(&common::sources("within.policy", fail));
    assert!(
        diags.iter().any(|d| d.code() == Code::InvalidGrant),
        "{}",
        common::render(&diags)
    );
    let pass = "default allow\nrequire-confirm x {\n  tool \"run\"\n  grant for 2 calls within args.sample_id\n}\n";
    assert!(lint_policy_set(&common::sources("within.policy", pass)).is_empty());
}

#[test]
fn empty_approver() {
    check(
        Code::EmptyApprover,
        "default allow\nrequire-confirm x {\n  tool \"run\"\n  by user \"\"\n}\n",
        "default allow\nrequire-confirm x {\n  tool \"run\"\n  by user \"lead@example.org\"\n}\n",
    );
}

const LABEL_AND_DENY: &str = "label read-private {\n  tool [\"get_sample\", \"read_results\"]\n}\n\ndeny exfiltration {\n  when session has label read-private and tool.open_world\n}\n";

#[test]
fn the_issue_17_label_rules_lint_as_written() {
    let text = format!("default allow\n\n{LABEL_AND_DENY}");
    let diags = lint_policy_set(&common::sources("labels.policy", &text));
    assert!(diags.is_empty(), "{}", common::render(&diags));
}

#[test]
fn misplaced_label_clause() {
    check(
        Code::MisplacedLabelClause,
        "default allow\nlabel read-private {\n  tool \"get_sample\"\n  reason \"read private data\"\n}\n",
        "default allow\nlabel read-private {\n  tool \"get_sample\"\n  for 8h\n}\n",
    );
    // `for` on a rule that sets no label.
    let diags = lint_policy_set(&common::sources(
        "for.policy",
        "default allow\ndeny x {\n  tool \"t\"\n  for 8h\n}\n",
    ));
    assert_eq!(common::codes(&diags), ["misplaced-label-clause"]);
    assert!(
        diags
            .iter()
            .next()
            .unwrap()
            .message()
            .contains("`deny` rules take no `for`")
    );
}

#[test]
fn invalid_label_life() {
    check(
        Code::InvalidLabelLife,
        "default allow\nlabel read-private {\n  tool \"get_sample\"\n  for 31d\n}\n",
        "default allow\nlabel read-private {\n  tool \"get_sample\"\n  for 30d\n}\n",
    );
    let diags = lint_policy_set(&common::sources(
        "zero.policy",
        "default allow\nlabel l {\n  for 0s\n}\n",
    ));
    assert_eq!(common::codes(&diags), ["invalid-label-life"]);
}

#[test]
fn unknown_label() {
    check(
        Code::UnknownLabel,
        "default allow\nlabel read-private {\n  tool \"get_sample\"\n}\ndeny exfiltration {\n  when session has label read-privat and tool.open_world\n}\n",
        &format!("default allow\n{LABEL_AND_DENY}"),
    );
}

#[test]
fn conflicting_annotation() {
    check(
        Code::ConflictingAnnotation,
        "default allow\ntool \"delete_*\" is destructive, not destructive\n",
        "default allow\ntool \"delete_*\" is destructive, not idempotent\n",
    );
    let diags = lint_policy_set(&common::sources(
        "ro.policy",
        "default allow\ntool \"get_*\" is read-only, destructive\n",
    ));
    assert_eq!(common::codes(&diags), ["conflicting-annotation"]);
    assert!(
        diags
            .iter()
            .next()
            .unwrap()
            .message()
            .contains("a read-only tool cannot be `destructive`")
    );
}

#[test]
fn upstream_annotation() {
    check(
        Code::UpstreamAnnotation,
        "default allow\ndeny no-destructive-deletes {\n  tool \"delete_*\"\n  when tool.destructive\n}\n",
        "default allow\ntool \"delete_*\" is destructive\ndeny no-destructive-deletes {\n  tool \"delete_*\"\n  when tool.destructive\n}\n",
    );
    // A declaration for other tools, or another flag, or only some
    // servers of the rule, leaves the warning.
    for stated in [
        "tool \"drop_*\" is destructive",
        "tool \"delete_*\" is not open-world",
        "tool \"delete_*\" on server \"lims\" is destructive",
    ] {
        let text = format!(
            "default allow\n{stated}\ndeny d {{\n  tool \"delete_*\"\n  when tool.destructive\n}}\n"
        );
        let diags = lint_policy_set(&common::sources("u.policy", &text));
        assert_eq!(common::codes(&diags), ["upstream-annotation"], "{stated}");
    }
    // A rule without a `tool` clause reads any tool's hint: not reported
    // (docs/language.md says what it trusts).
    let any = "default allow\ndeny d {\n  when tool.destructive\n}\n";
    assert!(lint_policy_set(&common::sources("a.policy", any)).is_empty());
}

/// The servers and tools a pin file names (`warden lint --tools`).
fn catalog() -> Vec<(String, Vec<String>)> {
    vec![(
        "secure-filesystem-server".to_string(),
        vec!["read_text_file".to_string(), "write_file".to_string()],
    )]
}

/// As `check`, against the catalog above.
fn check_against(code: Code, fail: &str, pass: &str) {
    let name = format!("{}.policy", code.id());
    let diags = warden_lang::lint_policy_set_against(&common::sources(&name, fail), &catalog());
    let d = diags
        .iter()
        .find(|d| d.code() == code)
        .unwrap_or_else(|| panic!("`{}` not reported:\n{}", code.id(), common::render(&diags)));
    assert_eq!(d.severity(), code.default_severity());
    assert!(d.help_text().is_some() && d.location().is_some());
    insta::assert_snapshot!(code.id(), common::render(&diags));
    let clean = warden_lang::lint_policy_set_against(&common::sources(&name, pass), &catalog());
    assert!(clean.is_empty(), "{}", common::render(&clean));
}

#[test]
fn unknown_server() {
    // Tried as a new user would: the server calls itself otherwise.
    check_against(
        Code::UnknownServer,
        "default allow\ndeny no-writes {\n  server \"filesystem\"\n  tool \"write_file\"\n}\n",
        "default allow\ndeny no-writes {\n  server \"secure-filesystem-server\"\n  tool \"write_file\"\n}\n",
    );
}

#[test]
fn unknown_tool() {
    check_against(
        Code::UnknownTool,
        "default allow\ndeny no-reads {\n  tool \"read_text_flie\"\n}\n",
        "default allow\ndeny no-reads {\n  tool \"read_text_*\"\n}\n",
    );
    let diags = warden_lang::lint_policy_set_against(
        &common::sources(
            "t.policy",
            "default allow\ndeny no-reads {\n  tool \"read_text_flie\"\n}\n",
        ),
        &catalog(),
    );
    assert_eq!(
        diags.iter().next().and_then(|d| d.help_text()),
        Some("did you mean `read_text_file`?")
    );
}
