//! The Cedar that lists, sizes and `ignoring case` compile to, run through
//! Cedar's authorizer with contexts validated against the generated
//! schema, as the engine supplies them.

use crate::compiled::{CompiledPolicySet, EachTest, ElementTest, ElementValue, Order};
use crate::{Sources, compile_policy_set, lint_policy_set};
use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
use serde_json::{Value, json};
use std::str::FromStr;

fn compile(text: &str) -> CompiledPolicySet {
    let mut s = Sources::new();
    s.add("t.policy", text);
    match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    }
}

fn codes(text: &str) -> Vec<&'static str> {
    let mut s = Sources::new();
    s.add("t.policy", text);
    lint_policy_set(&s).iter().map(|d| d.code().id()).collect()
}

/// The context's `args`: every record empty, then `over`'s records.
fn args(over: Value) -> Value {
    let mut a = json!({"str": {}, "num": {}, "bool": {}, "path": {}, "ipath": {},
        "istr": {}, "len": {}, "size": {}, "present": [], "null": []});
    for (k, v) in over.as_object().expect("an object") {
        a[k] = v.clone();
    }
    a
}

/// Whether the enforced policies allow a call with these `args` and `each`.
fn allowed(set: &CompiledPolicySet, args: Value, each: Value) -> bool {
    let schema = set.schema();
    let action = EntityUid::from_str(r#"Warden::Action::"call_tool""#).unwrap();
    let principal = EntityUid::from_str(r#"Warden::User::"alice""#).unwrap();
    let resource = EntityUid::from_str(r#"Warden::Tool::"t""#).unwrap();
    let entities = Entities::from_json_value(
        json!([
            {"uid": {"type": "Warden::User", "id": "alice"}, "attrs": {"name": "alice"}, "parents": []},
            {"uid": {"type": "Warden::Tool", "id": "t"}, "attrs": {"name": "write_file", "server": "s",
             "read_only": false, "destructive": false, "idempotent": false, "open_world": true}, "parents": []},
        ]),
        Some(schema),
    )
    .expect("entities");
    let ctx = json!({
        "via_agent": true, "session": "s1", "confirmed": [], "args": args,
        "counters": {}, "budgets": {}, "each": each,
        "verified": {"user": false, "groups": false, "agent": false, "model": false},
        "agent_created": [],
        "labels": [],
    });
    let mut ctx = ctx;
    // Whatever else the schema's context requires (other features' records),
    // empty: these tests are about elements, sizes and case.
    if let Some(extra) = schema_context_records(set) {
        for k in extra {
            ctx.as_object_mut().unwrap().entry(k).or_insert(json!({}));
        }
    }
    let context = Context::from_json_value(ctx, Some((schema, &action))).expect("context");
    let request =
        Request::new(principal, action, resource, context, Some(schema)).expect("request");
    let response = Authorizer::new().is_authorized(&request, set.enforced_policies(), &entities);
    assert!(response.diagnostics().errors().next().is_none());
    response.decision() == Decision::Allow
}

/// Required record attributes of the context this test does not know of,
/// read from the schema text (`"clock": Clock,` and the like).
fn schema_context_records(set: &CompiledPolicySet) -> Option<Vec<String>> {
    let text = set.schema_text();
    let start = text.find("context: {")?;
    let body = &text[start..text[start..].find("},")? + start];
    let known = [
        "via_agent",
        "session",
        "confirmed",
        "args",
        "counters",
        "budgets",
        "each",
        "verified",
        "agent_created",
        "labels",
    ];
    Some(
        body.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('"')?
                    .split_once("\": ")
                    .map(|(k, _)| k)
            })
            .filter(|k| !known.contains(k))
            .map(str::to_string)
            .collect(),
    )
}

const FOLDED: &str =
    "default allow\ndeny drop-table {\n  when args.sql matches \"*DROP table*\" ignoring case\n}\n";

#[test]
fn ignoring_case_reads_the_folded_record_and_folds_the_pattern() {
    let set = compile(FOLDED);
    let rule = &set.rules()[0];
    assert!(
        rule.cedar
            .contains(r#"context.args.istr["/sql"] like "*drop table*""#),
        "{}",
        rule.cedar
    );
    let istr = |s: &str| args(json!({"istr": {"/sql": s}, "present": ["/sql"]}));
    assert!(!allowed(&set, istr("select 1; drop table x"), json!({})));
    assert!(allowed(&set, istr("select 1"), json!({})));
    assert!(allowed(&set, args(json!({})), json!({})), "absent");
    // Present but not a string: unknown, so the deny fires.
    assert!(!allowed(
        &set,
        args(json!({"present": ["/sql"]})),
        json!({})
    ));
}

#[test]
fn ignoring_case_equality_and_lists() {
    let set = compile(
        "default deny\nallow admin-ish {\n  when args.role in [\"Admin\", \"ROOT\"] ignoring case and args.env != \"Prod\" ignoring case\n}\n",
    );
    let a = |role: &str, env: &str| {
        args(json!({"istr": {"/role": role, "/env": env}, "present": ["/role", "/env"]}))
    };
    assert!(allowed(&set, a("admin", "dev"), json!({})));
    assert!(allowed(&set, a("root", "staging"), json!({})));
    assert!(!allowed(&set, a("admin", "prod"), json!({})));
    assert!(!allowed(&set, a("user", "dev"), json!({})));
    // An allow never grants on unknown: `role` present but not a string.
    let unknown = args(json!({"istr": {"/env": "dev"}, "present": ["/role", "/env"]}));
    assert!(!allowed(&set, unknown, json!({})));
}

#[test]
fn sizes_and_lengths_compare_longs() {
    let set = compile(
        "default allow\nrequire-confirm big {\n  when size of args.content > 100 KB or length of args.ids >= 3\n}\n",
    );
    let cedar = &set.rules()[0].cedar;
    assert!(
        cedar.contains(r#"context.args.size["/content"] > 100000"#),
        "{cedar}"
    );
    assert!(
        cedar.contains(r#"context.args.len["/ids"] >= 3"#),
        "{cedar}"
    );
    let a = |size: i64, len: i64| {
        args(
            json!({"size": {"/content": size}, "len": {"/ids": len}, "present": ["/content", "/ids"]}),
        )
    };
    assert!(allowed(&set, a(100_000, 2), json!({})));
    assert!(!allowed(&set, a(100_001, 2), json!({})));
    assert!(!allowed(&set, a(10, 3), json!({})));
    assert!(allowed(&set, args(json!({})), json!({})), "absent");
    // `ids` present as a number: its length is unknown.
    let unknown = args(json!({"size": {"/content": 1}, "present": ["/content", "/ids"]}));
    assert!(!allowed(&set, unknown, json!({})));
}

#[test]
fn a_size_not_equal_is_the_negation() {
    let set = compile("default deny\nallow exact {\n  when size of args.x != 2 KiB\n}\n");
    let a = |n: i64| args(json!({"size": {"/x": n}, "present": ["/x"]}));
    assert!(allowed(&set, a(2047), json!({})));
    assert!(!allowed(&set, a(2048), json!({})));
    // Unknown (present without a size, which only a bug causes) never grants.
    assert!(!allowed(
        &set,
        args(json!({"present": ["/x"], "null": ["/x"]})),
        json!({})
    ));
}

const LISTS: &str = "default allow\nrecords entity {\n  created by tool \"create_entities\" at \"/entities/*/name\"\n}\ndeny not-own {\n  when via agent and not all args.entityNames created by agent\n}\ndeny pii {\n  when any args.tags == \"PII\" ignoring case\n}\n";

#[test]
fn quantified_tests_are_listed_for_the_engine_with_their_ids() {
    let set = compile(LISTS);
    let own = &set.rule("not-own").unwrap().each_tests;
    assert_eq!(
        own.iter().collect::<Vec<_>>(),
        [&EachTest {
            id: "all args.entityNames created by agent as entity".into(),
            all: true,
            pointer: "/entityNames".into(),
            test: ElementTest::CreatedByAgent {
                kind: "entity".into()
            },
        }]
    );
    // The list is an argument the rule reads.
    assert!(
        set.rule("not-own")
            .unwrap()
            .arg_fields
            .contains_key("/entityNames")
    );
    let pii = &set.rule("pii").unwrap().each_tests;
    assert_eq!(
        pii.iter().next().unwrap().test,
        ElementTest::OneOf {
            values: vec![ElementValue::Str("pii".into())],
            fold: true
        }
    );
    assert!(
        set.schema_text()
            .contains("\"any args.tags == \\\"PII\\\" ignoring case\"?: EachResult")
    );
}

#[test]
fn quantified_results_are_read_three_valued() {
    let set = compile(LISTS);
    let own = "all args.entityNames created by agent as entity";
    let pii = "any args.tags == \"PII\" ignoring case";
    let r = |t: bool, p: bool| json!({"t": t, "p": p});
    // Every name the agent's: the deny's `not all` is false.
    assert!(allowed(
        &set,
        args(json!({})),
        json!({ own: r(true, true), pii: r(false, false) })
    ));
    assert!(!allowed(
        &set,
        args(json!({})),
        json!({ own: r(false, false), pii: r(false, false) })
    ));
    // Possibly not all (unknown): the deny fires.
    assert!(!allowed(
        &set,
        args(json!({})),
        json!({ own: r(false, true), pii: r(false, false) })
    ));
    // Possibly some tag is `pii`: the deny fires.
    assert!(!allowed(
        &set,
        args(json!({})),
        json!({ own: r(true, true), pii: r(false, true) })
    ));
    // A result the engine left out is unknown: both denies fire.
    assert!(!allowed(
        &set,
        args(json!({})),
        json!({ own: r(true, true) })
    ));
    assert!(!allowed(
        &set,
        args(json!({})),
        json!({ pii: r(false, false) })
    ));
}

#[test]
fn element_tests_cover_every_quantifiable_test() {
    let set = compile(
        "default allow\ndeny d {\n  when any args.a exists or all args.b under \"/tmp/../x\" or any args.c != 1.5 or any args.d < -2 or all args.e in [true] or any args.f matches \"a*\" or any length of args.g > 3 or all size of args.h <= 1 KB or any size of args.i != 7\n}\n",
    );
    let tests: Vec<(String, ElementTest)> = set.rules()[0]
        .each_tests
        .iter()
        .map(|t| (t.pointer.clone(), t.test.clone()))
        .collect();
    let want = [
        ("/a", ElementTest::Exists),
        (
            "/b",
            ElementTest::Under {
                prefix: "/x".into(),
            },
        ),
        (
            "/c",
            ElementTest::Not(Box::new(ElementTest::OneOf {
                values: vec![ElementValue::Num(15_000)],
                fold: false,
            })),
        ),
        (
            "/d",
            ElementTest::Number {
                op: Order::Lt,
                value: -20_000,
            },
        ),
        (
            "/e",
            ElementTest::OneOf {
                values: vec![ElementValue::Bool(true)],
                fold: false,
            },
        ),
        (
            "/f",
            ElementTest::Matches {
                glob: "a*".into(),
                fold: false,
            },
        ),
        (
            "/g",
            ElementTest::Measure {
                size: false,
                op: Order::Gt,
                value: 3,
            },
        ),
        (
            "/h",
            ElementTest::Measure {
                size: true,
                op: Order::Le,
                value: 1000,
            },
        ),
        (
            "/i",
            ElementTest::Not(Box::new(ElementTest::Measure {
                size: true,
                op: Order::Eq,
                value: 7,
            })),
        ),
    ];
    for (ptr, test) in want {
        assert!(
            tests.contains(&(ptr.to_string(), test.clone())),
            "{ptr}: {test:?} not in {tests:?}"
        );
    }
    assert_eq!(tests.len(), 9);
}

#[test]
fn the_checker_refuses_what_elements_sizes_and_case_cannot_mean() {
    let rule = |when: &str| format!("default allow\ndeny d {{\n  when {when}\n}}\n");
    assert_eq!(
        codes(&rule("any user == \"x\"")),
        ["quantifier-without-list"]
    );
    assert_eq!(
        codes(&rule("args.n > 3 ignoring case")),
        ["ignoring-case-not-string"]
    );
    assert_eq!(
        codes(&rule("args.n == 3 ignoring case")),
        ["ignoring-case-not-string"]
    );
    assert_eq!(
        codes(&rule("args.n in [\"a\", 1] ignoring case")),
        ["ignoring-case-not-string"]
    );
    assert_eq!(
        codes(&rule("user == \"Bob\" ignoring case")),
        ["ignoring-case-not-string"]
    );
    assert_eq!(
        codes(&rule("length of args.n == \"a\" ignoring case")),
        ["ignoring-case-not-string"]
    );
    assert_eq!(codes(&rule("length of args.n > 1 KB")), ["type-mismatch"]);
    assert_eq!(codes(&rule("length of args.n > 1.5")), ["type-mismatch"]);
    assert_eq!(codes(&rule("size of args.n > \"big\"")), ["type-mismatch"]);
    assert_eq!(
        codes(&rule("size of args.n > 99999999999 GiB")),
        ["number-out-of-range"]
    );
    assert_eq!(codes(&rule("length of args.n > -1")), ["never-matches"]);
    // The inner test of a quantifier gets the checks it gets alone.
    assert_eq!(
        codes(&rule("any args.n > 1.00001")),
        ["number-out-of-range"]
    );
    assert_eq!(codes(&rule("any args.n == 1 KB")), ["type-mismatch"]);
    assert_eq!(
        codes(&rule("any args.n > 1 ignoring case")),
        ["ignoring-case-not-string"]
    );
    // And these are fine.
    for ok in [
        "any args.tags == \"pii\" ignoring case",
        "all args.paths under \"/sandbox\"",
        "size of args.content > 0 B",
        "length of args.ids == 0",
        "any length of args.names > 10",
    ] {
        assert_eq!(codes(&rule(ok)), Vec::<&str>::new(), "{ok}");
    }
}

#[test]
fn created_by_agent_under_a_quantifier_resolves_its_kind() {
    let text = "default allow\nrecords a {\n  created by tool \"ca\" at \"/id\"\n}\nrecords b {\n  created by tool \"cb\" at \"/id\"\n}\ndeny d {\n  when any args.ids created by agent\n}\n";
    assert_eq!(codes(text), ["ambiguous-record-kind"]);
    let named = text.replace("created by agent\n", "created by agent as b\n");
    let set = compile(&named);
    let test = set.rules()[0].each_tests.iter().next().unwrap();
    assert_eq!(test.id, "any args.ids created by agent as b");
    assert_eq!(test.test, ElementTest::CreatedByAgent { kind: "b".into() });
}

#[test]
fn hostile_text_in_a_quantified_test_stays_one_quoted_key() {
    let hostile = [
        r#"a" || true || "b"#,
        "x\\\"]; permit(principal, action, resource);//",
        "line\nbreak\ttab \u{202e}",
        "} }; type Each = { \"t\": Bool",
    ];
    for h in hostile {
        let lit = serde_json::to_string(h).unwrap();
        let text = format!(
            "default allow\ndeny d {{\n  when any args.{lit} == {lit} ignoring case or all args.{lit} matches {lit}\n}}\n"
        );
        let set = compile(&text);
        let rule = &set.rules()[0];
        assert_eq!(rule.each_tests.len(), 2, "{h:?}");
        let parsed = cedar_policy::PolicySet::from_str(&set.cedar_text())
            .unwrap_or_else(|e| panic!("{h:?}: {e}"));
        assert_eq!(
            parsed.policies().count(),
            2,
            "{h:?}: the default and one forbid"
        );
        // Each id reads back from the context as the engine keys it: both
        // false lets the call through (a key that missed would be unknown).
        let results = |t: bool| -> Value {
            rule.each_tests
                .iter()
                .map(|e| (e.id.clone(), json!({"t": t, "p": t})))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        assert!(allowed(&set, args(json!({})), results(false)), "{h:?}");
        assert!(!allowed(&set, args(json!({})), results(true)), "{h:?}");
    }
}
