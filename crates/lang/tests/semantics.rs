//! The meaning of compiled rules, checked by running the emitted Cedar
//! through Cedar's own authorizer with requests built the way the engine
//! will build them (the context contract in `compile.rs`). These tests pin
//! the fail-closed reading: restricting rules fire on "possibly true",
//! allow rules need "definitely true", a missing counter means the limit
//! is reached.

#[path = "support/semantics.rs"]
mod support;

use cedar_policy::Decision;
use serde_json::{Value, json};
use support::{Call, compile, decide, denied_by};
use warden_lang::CompiledPolicySet;

const DENY_COUNT: &str = "default allow\ndeny big {\n  when args.count > 100\n}\n";

#[test]
fn a_number_condition_fires_on_big_numbers_only() {
    let set = compile(DENY_COUNT);
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": 1000}),
                ..Call::default()
            }
        ),
        ["big"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": 100.5}),
                ..Call::default()
            }
        ),
        ["big"]
    );
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": 100}),
                ..Call::default()
            }
        )
        .is_empty()
    );
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": 99.9999}),
                ..Call::default()
            }
        )
        .is_empty()
    );
}

#[test]
fn an_absent_argument_makes_a_comparison_false() {
    let set = compile(DENY_COUNT);
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({}),
                ..Call::default()
            }
        )
        .is_empty()
    );
}

/// Finding 15: `null` was read as absent, so `deny ... when args.include_pii
/// exists` let `{"include_pii": null}` through. Null is now present and of
/// no type: unknown to every test, so restrictions fire and allows do not
/// grant.
#[test]
fn finding_15_null_argument_is_unknown_to_exists_and_comparisons() {
    let denies = |policy: &str, args: Value| {
        let call = Call {
            args,
            ..Call::default()
        };
        decide(&compile(policy), &call).0 == Decision::Deny
    };
    let deny_exists = "default allow\ndeny pii {\n  when args.include_pii exists\n}\n";
    assert!(denies(deny_exists, json!({"include_pii": null})));
    assert!(denies(deny_exists, json!({"include_pii": false})));
    assert!(!denies(deny_exists, json!({})));
    let deny_missing = "default allow\ndeny no-ticket {\n  when not args.ticket exists\n}\n";
    assert!(denies(deny_missing, json!({"ticket": null})));
    assert!(denies(deny_missing, json!({})));
    assert!(!denies(deny_missing, json!({"ticket": "T-1"})));
    // Comparisons: null is unknown, as a mistyped value is.
    assert!(denies(DENY_COUNT, json!({"count": null})));
    let allow_exists = "default deny\nallow with-ticket {\n  when args.ticket exists\n}\n";
    assert!(denies(allow_exists, json!({"ticket": null})));
    assert!(!denies(allow_exists, json!({"ticket": "T-1"})));
    let allow_missing = "default deny\nallow no-pii {\n  when not args.include_pii exists\n}\n";
    assert!(denies(allow_missing, json!({"include_pii": null})));
    assert!(!denies(allow_missing, json!({})));
}

#[test]
fn a_mistyped_argument_fires_a_restriction() {
    // "1000" as a string could be coerced upstream: the deny must not miss it.
    let set = compile(DENY_COUNT);
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": "1000"}),
                ..Call::default()
            }
        ),
        ["big"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"count": [1000]}),
                ..Call::default()
            }
        ),
        ["big"]
    );
}

#[test]
fn a_mistyped_argument_never_grants_an_allow() {
    let set = compile("default deny\nallow small {\n  when args.count <= 10\n}\n");
    assert_eq!(
        decide(
            &set,
            &Call {
                args: json!({"count": 3}),
                ..Call::default()
            }
        )
        .0,
        Decision::Allow
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                args: json!({"count": "3"}),
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                args: json!({}),
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
    // `not` flips definitely and possibly: a mistyped value is not "not big".
    let set = compile("default deny\nallow not-big {\n  when not args.count > 10\n}\n");
    assert_eq!(
        decide(
            &set,
            &Call {
                args: json!({"count": 3}),
                ..Call::default()
            }
        )
        .0,
        Decision::Allow
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                args: json!({"count": "3"}),
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
}

#[test]
fn not_equal_is_exactly_not_equal() {
    let set =
        compile("default allow\nrequire-confirm costly {\n  when args.pipeline != \"qc\"\n}\n");
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({"pipeline": "qc"}),
                ..Call::default()
            }
        )
        .is_empty()
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"pipeline": "wgs"}),
                ..Call::default()
            }
        ),
        ["costly"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({}),
                ..Call::default()
            }
        ),
        ["costly"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"pipeline": 7}),
                ..Call::default()
            }
        ),
        ["costly"]
    );
}

#[test]
fn integers_and_decimals_compare_as_numbers() {
    let set =
        compile("default allow\ndeny exactly-three {\n  when args.n == 3 or args.cost == 2.5\n}\n");
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"n": 3}),
                ..Call::default()
            }
        ),
        ["exactly-three"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"n": 3.0}),
                ..Call::default()
            }
        ),
        ["exactly-three"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"cost": 2.50}),
                ..Call::default()
            }
        ),
        ["exactly-three"]
    );
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({"n": 4, "cost": 2.4}),
                ..Call::default()
            }
        )
        .is_empty()
    );
}

#[test]
fn lists_globs_exists_and_nested_paths() {
    let set = compile(
        "default allow\ndeny d {\n  when args.format in [\"bam\", \"cram\"] or args.p.path matches \"/restricted/*\" or args.\"pii-ok\" exists\n}\n",
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"format": "cram"}),
                ..Call::default()
            }
        ),
        ["d"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"p": {"path": "/restricted/x"}}),
                ..Call::default()
            }
        ),
        ["d"]
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                args: json!({"pii-ok": false}),
                ..Call::default()
            }
        ),
        ["d"]
    );
    assert!(
        denied_by(
            &set,
            &Call {
                args: json!({"format": "vcf", "p": {"path": "/open/x"}}),
                ..Call::default()
            }
        )
        .is_empty()
    );
}

#[test]
fn identity_groups_and_provenance() {
    let set = compile(
        "default deny\nallow staff-via-claude {\n  when user in group \"staff\" and agent == \"claude-code\" and via server \"genomics\"\n}\n",
    );
    let staff = Call {
        groups: vec!["staff"],
        ..Call::default()
    };
    assert_eq!(decide(&set, &staff).0, Decision::Allow);
    assert_eq!(
        decide(
            &set,
            &Call {
                groups: vec![],
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                groups: vec!["staff"],
                agent: None,
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                groups: vec!["staff"],
                via_server: Some("other"),
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
}

#[test]
fn via_agent_serves_both_paths() {
    let set = compile(
        "default allow\ndeny agents-never-delete {\n  tool \"delete_*\"\n  when via agent\n}\n",
    );
    let agent = Call {
        tool: "delete_sample",
        ..Call::default()
    };
    assert_eq!(denied_by(&set, &agent), ["agents-never-delete"]);
    let human = Call {
        tool: "delete_sample",
        via_agent: false,
        via_server: None,
        agent: None,
        ..Call::default()
    };
    assert_eq!(decide(&set, &human).0, Decision::Allow);
}

#[test]
fn confirmation_lifts_only_its_own_rule() {
    let set = compile(
        "default allow\nrequire-confirm c {\n  tool \"start_run\"\n}\ndeny destructive {\n  when tool.destructive\n}\n",
    );
    assert_eq!(denied_by(&set, &Call::default()), ["c"]);
    assert_eq!(
        decide(
            &set,
            &Call {
                confirmed: vec!["c"],
                ..Call::default()
            }
        )
        .0,
        Decision::Allow
    );
    assert_eq!(
        decide(
            &set,
            &Call {
                confirmed: vec!["other"],
                ..Call::default()
            }
        )
        .0,
        Decision::Deny
    );
    let both = Call {
        confirmed: vec!["c"],
        destructive: true,
        ..Call::default()
    };
    assert_eq!(denied_by(&set, &both), ["destructive"]);
}

#[test]
fn caps_fire_at_the_limit_and_when_state_is_missing() {
    let set = compile(
        "default allow\ncap-consecutive three {\n  tool \"start_run\"\n  max 3 per session\n}\n",
    );
    assert!(
        denied_by(
            &set,
            &Call {
                counters: vec![("three", 2)],
                ..Call::default()
            }
        )
        .is_empty()
    );
    assert_eq!(
        denied_by(
            &set,
            &Call {
                counters: vec![("three", 3)],
                ..Call::default()
            }
        ),
        ["three"]
    );
    // No counter supplied: the engine lost its state, so the limit counts as reached.
    assert_eq!(denied_by(&set, &Call::default()), ["three"]);
    // Other tools are not capped, counter or not.
    assert!(
        denied_by(
            &set,
            &Call {
                tool: "list_runs",
                ..Call::default()
            }
        )
        .is_empty()
    );
}

#[test]
fn shadow_rules_never_enforce() {
    let set = compile("default allow\ndeny trial {\n  mode shadow\n}\n");
    assert_eq!(decide(&set, &Call::default()).0, Decision::Allow);
    assert_eq!(set.shadow_policies().policies().count(), 1);
}

#[test]
fn counting_policies_say_which_calls_count() {
    let set = compile(
        "default allow\nrate-limit r {\n  tool \"export_*\"\n  when args.rows > 10\n  max 5 per 1h per user\n}\n",
    );
    let ids: Vec<String> = set
        .counting_policies()
        .policies()
        .map(|p| p.id().to_string())
        .collect();
    assert_eq!(ids, ["r/match"]);
    let r = set.rule("r").expect("rule");
    assert_eq!(r.limit.and_then(|l| l.window_secs), Some(3600));
}

/// Finding 18: `args.path matches "/restricted/*"` was bypassed by
/// `//restricted/x`, `/./restricted/x`, `/data/../restricted/x` and
/// `/RESTRICTED/x`. `under` compares the normalised path segment-wise; a
/// value that cannot be normalised counts as inside for a restriction and
/// as outside for an allow; letter case restricts but never grants.
#[test]
fn finding_18_under_normalises_paths_and_fails_closed() {
    let deny =
        compile("default allow\ndeny restricted {\n  when args.path under \"/restricted\"\n}\n");
    let allow = compile("default deny\nallow data {\n  when args.path under \"/data\"\n}\n");
    let denied = |set: &CompiledPolicySet, path: Value| {
        let call = Call {
            args: json!({ "path": path }),
            ..Call::default()
        };
        decide(set, &call).0 == Decision::Deny
    };
    for inside in [
        json!("/restricted"),
        json!("/restricted/x"),
        json!("//restricted/x"),
        json!("/./restricted/x"),
        json!("/data/../restricted/x"),
        json!("/RESTRICTED/x"),
        json!("/restricted/"),
        // Cannot be normalised: inside for a restriction.
        json!("/../restricted/x"),
        json!("restricted/x"),
        json!("/data\\..\\restricted"),
        json!("/%72estricted/x"),
        json!("/restricted\u{0}/x"),
        json!(7),
        json!(null),
        json!(["/restricted/x"]),
    ] {
        assert!(denied(&deny, inside.clone()), "{inside} must be denied");
        assert!(
            denied(&allow, inside.clone()),
            "{inside} must not be granted"
        );
    }
    for outside in [
        "/data/x",
        "/restricted-2/x",
        "/srv/restricted/x",
        "/data/./raw//x",
    ] {
        assert!(
            !denied(&deny, json!(outside)),
            "{outside} is outside /restricted"
        );
    }
    assert!(!denied(&allow, json!("/data/raw/x")));
    assert!(!denied(&allow, json!("/tmp/../data//x")));
    // Case never grants: on a case-sensitive file system `/DATA` is another directory.
    assert!(denied(&allow, json!("/DATA/x")));
    assert!(denied(&allow, json!("/data/../etc/passwd")));
    let absent = Call::default();
    assert_eq!(decide(&deny, &absent).0, Decision::Allow);
}
