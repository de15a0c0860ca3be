//! Lists (`any` / `all`), sizes and lengths, and `ignoring case`, decided
//! by a real engine through its public API: the engine projects what the
//! compiled policies read (`context.each`, `context.args.istr`, `len`,
//! `size`), three-valued, and a record store that cannot answer an
//! enforced `all ... created by agent` denies.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use warden_engine::elements::{MAX_ELEMENTS, answer, element};
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Decided, Engine, EngineOptions, Identity, NewRecord, Outcome, PolicyBundle,
    Provenance, RecordBackend, RecordError, RecordStore,
};
use warden_lang::compiled::{EachTest, ElementTest, ElementValue, Order};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = r#"default allow
records entity {
  server "memory"
  created by tool "create_entities" at "/entities/*/name"
}
deny not-own-entities {
  server "memory"
  tool "delete_entities"
  when via agent and not all args.entityNames created by agent
  reason "{args.entityNames.0} and the rest must all be entities an agent created"
}
deny pii-tags {
  tool "tag"
  when any args.tags in ["pii", "PHI"] ignoring case
}
deny drop-table {
  tool "query"
  when args.sql matches "*drop table*" ignoring case
}
require-confirm big-writes {
  tool "write_file"
  when size of args.content > 1 KB or length of args.lines > 3
}
"#;

fn engine_with(text: &str, records: RecordBackend) -> Engine {
    let mut s = Sources::new();
    s.add("t.policy", text);
    let set = match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    };
    Engine::new(
        PolicyBundle::new(set, "v1".into()),
        EngineOptions {
            clock: Arc::new(ManualClock::default()),
            records,
            ..EngineOptions::default()
        },
    )
}

fn engine() -> Engine {
    engine_with(POLICY, RecordBackend::Memory)
}

fn call(server: &str, tool: &str, args: Value) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some(server.into()),
        },
        server: server.into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

fn decide(e: &Engine, tool: &str, args: Value) -> Decided {
    e.decide(&call("memory", tool, args))
}

fn denied_by(d: &Decided) -> Vec<String> {
    match &d.outcome {
        Outcome::Deny(denial) => denial.rules.iter().map(|h| h.rule.clone()).collect(),
        _ => vec![],
    }
}

fn create_entities(e: &Engine, names: &[&str]) -> Vec<String> {
    let c = call(
        "memory",
        "create_entities",
        json!({"entities": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
    );
    let d = e.decide(&c);
    assert!(d.is_allow());
    let result = json!({"structuredContent": {"entities": names.iter().map(|n| json!({"name": n, "entityType": "x"})).collect::<Vec<_>>()}});
    e.record_created(&c, &d, &result).expect("stored")
}

#[test]
fn an_agent_deletes_only_entities_an_agent_created_every_one_of_them() {
    let e = engine();
    assert_eq!(create_entities(&e, &["A", "B"]), ["A", "B"]);
    assert!(decide(&e, "delete_entities", json!({"entityNames": ["A", "B"]})).is_allow());
    assert!(
        decide(&e, "delete_entities", json!({"entityNames": []})).is_allow(),
        "all of none"
    );

    let mixed = decide(
        &e,
        "delete_entities",
        json!({"entityNames": ["Alice", "A"]}),
    );
    assert_eq!(denied_by(&mixed), ["not-own-entities"]);
    let Outcome::Deny(d) = &mixed.outcome else {
        unreachable!()
    };
    assert!(d.reason.contains("Alice and the rest"), "{}", d.reason);

    // Not a list, or an element that is no id: not all agent-created.
    for args in [
        json!({"entityNames": "A"}),
        json!({"entityNames": ["A", {"name": "B"}]}),
        json!({"entityNames": null}),
        json!({}),
    ] {
        let d = decide(&e, "delete_entities", args.clone());
        assert_eq!(denied_by(&d), ["not-own-entities"], "{args}");
    }
    // People are not restricted by the rule.
    let mut person = call(
        "memory",
        "delete_entities",
        json!({"entityNames": ["Alice"]}),
    );
    person.provenance.via_agent = false;
    assert!(e.decide(&person).is_allow());
}

#[test]
fn any_tag_ignoring_case_and_lists_of_other_types() {
    let e = engine();
    for (tags, denied) in [
        (json!(["ok", "Pii"]), true),
        (json!(["phi"]), true),
        (json!(["ok", "fine"]), false),
        (json!([]), false),
        // A number among the tags could be anything to the upstream:
        // possibly `pii`, so the deny fires.
        (json!(["ok", 7]), true),
        // Not a list: unknown, fires.
        (json!("pii"), true),
    ] {
        let d = decide(&e, "tag", json!({ "tags": tags }));
        assert_eq!(!denied_by(&d).is_empty(), denied, "{tags}");
    }
    assert!(
        decide(&e, "tag", json!({})).is_allow(),
        "absent list: no tag"
    );
}

#[test]
fn matches_ignoring_case_folds_the_argument() {
    let e = engine();
    let d = decide(&e, "query", json!({"sql": "SELECT 1; DROP TABLE samples"}));
    assert_eq!(denied_by(&d), ["drop-table"]);
    assert!(decide(&e, "query", json!({"sql": "select * from samples"})).is_allow());
    // A number is no string: unknown, so the deny fires.
    assert_eq!(
        denied_by(&decide(&e, "query", json!({"sql": 5}))),
        ["drop-table"]
    );
    assert!(decide(&e, "query", json!({})).is_allow());
}

#[test]
fn sizes_count_bytes_and_lengths_count_elements() {
    let e = engine();
    let confirm =
        |args: Value| matches!(decide(&e, "write_file", args).outcome, Outcome::Confirm(_));
    assert!(!confirm(
        json!({"content": "x".repeat(1000), "lines": [1, 2, 3]})
    ));
    assert!(confirm(json!({"content": "x".repeat(1001)})));
    // 500 two-byte characters: 1000 bytes, no confirmation; one more asks.
    assert!(!confirm(json!({"content": "é".repeat(500)})));
    assert!(confirm(json!({"content": "é".repeat(501)})));
    assert!(confirm(json!({"lines": [1, 2, 3, 4]})));
    // A list's size is its JSON text's.
    assert!(confirm(json!({"content": vec!["abcdefghij"; 100]})));
    // `length of` a number is unknown: it asks.
    assert!(confirm(json!({"lines": 2})));
    assert!(!confirm(json!({})));
}

/// A store that cannot answer.
#[derive(Debug)]
struct Broken;

impl RecordStore for Broken {
    fn agent_created(
        &self,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        Err(RecordError::Store("disk gone".into()))
    }
    fn insert(&self, _: &NewRecord) -> Result<bool, RecordError> {
        Err(RecordError::Store("disk gone".into()))
    }
}

#[test]
fn a_store_that_cannot_answer_denies_an_enforced_quantified_created_by() {
    let e = engine_with(POLICY, RecordBackend::Store(Arc::new(Broken)));
    let d = decide(&e, "delete_entities", json!({"entityNames": ["A"]}));
    let Outcome::Deny(denial) = &d.outcome else {
        panic!("{d:?}")
    };
    assert!(
        denial.reason.contains("record store unavailable"),
        "{}",
        denial.reason
    );
    // Calls the rule does not match never ask the store.
    assert!(decide(&e, "tag", json!({"tags": ["ok"]})).is_allow());
}

#[test]
fn element_answers_are_three_valued() {
    let none = HashSet::new();
    let pii = ElementTest::OneOf {
        values: vec![ElementValue::Str("pii".into())],
        fold: true,
    };
    assert_eq!(element(&pii, &json!("PII"), &none), (true, true));
    assert_eq!(element(&pii, &json!("ok"), &none), (false, false));
    assert_eq!(element(&pii, &json!(1), &none), (false, true));
    assert_eq!(element(&pii, &json!(null), &none), (false, true));
    let not = ElementTest::Not(Box::new(pii.clone()));
    assert_eq!(element(&not, &json!(1), &none), (false, true));
    assert_eq!(element(&not, &json!("ok"), &none), (true, true));

    let lt = ElementTest::Number {
        op: Order::Lt,
        value: 15_000,
    };
    assert_eq!(element(&lt, &json!(1.4999), &none), (true, true));
    assert_eq!(element(&lt, &json!(1.5), &none), (false, false));
    assert_eq!(
        element(&lt, &json!(1.00001), &none),
        (false, true),
        "not exact"
    );
    let under = ElementTest::Under {
        prefix: "/sandbox".into(),
    };
    assert_eq!(
        element(&under, &json!("/sandbox/a/../b"), &none),
        (true, true)
    );
    assert_eq!(
        element(&under, &json!("/sandbox/../etc"), &none),
        (false, false)
    );
    assert_eq!(
        element(&under, &json!("/SANDBOX/x"), &none),
        (false, true),
        "case"
    );
    assert_eq!(element(&under, &json!("/sandboxes"), &none), (false, false));
    let exists = ElementTest::Exists;
    assert_eq!(element(&exists, &json!(null), &none), (false, true));
    assert_eq!(element(&exists, &json!(0), &none), (true, true));
    let created = ElementTest::CreatedByAgent { kind: "e".into() };
    let ids = HashSet::from(["7".to_string()]);
    assert_eq!(element(&created, &json!(7), &ids), (true, true));
    assert_eq!(element(&created, &json!(null), &ids), (false, false));
    let len = ElementTest::Measure {
        size: false,
        op: Order::Ge,
        value: 2,
    };
    assert_eq!(element(&len, &json!("ab"), &none), (true, true));
    assert_eq!(element(&len, &json!(12), &none), (false, true));
    assert_eq!(element(&len, &json!(null), &none), (false, true));
    let size = ElementTest::Measure {
        size: true,
        op: Order::Eq,
        value: 4,
    };
    assert_eq!(element(&size, &json!(null), &none), (false, true), "`null`");
    assert_eq!(
        element(&size, &json!("ab€"), &none),
        (false, false),
        "5 bytes"
    );
    let glob = ElementTest::Matches {
        glob: "a*".into(),
        fold: false,
    };
    assert_eq!(element(&glob, &json!("Ab"), &none), (false, false));
    assert_eq!(element(&glob, &json!(true), &none), (false, true));
}

#[test]
fn list_answers_combine_elements_and_bound_the_work() {
    let test = |all| EachTest {
        id: "t".into(),
        all,
        pointer: "/xs".into(),
        test: ElementTest::OneOf {
            values: vec![ElementValue::Str("a".into())],
            fold: false,
        },
    };
    let none = BTreeMap::new();
    let ans = |all, args: Value| answer(&test(all), &args, &none);
    assert_eq!(ans(false, json!({})), (false, false));
    assert_eq!(ans(true, json!({})), (false, false));
    assert_eq!(ans(true, json!({"xs": []})), (true, true));
    assert_eq!(ans(false, json!({"xs": []})), (false, false));
    assert_eq!(ans(false, json!({"xs": ["b", "a"]})), (true, true));
    assert_eq!(ans(true, json!({"xs": ["b", "a"]})), (false, false));
    assert_eq!(ans(true, json!({"xs": ["a", 1]})), (false, true));
    assert_eq!(ans(false, json!({"xs": ["b", 1]})), (false, true));
    assert_eq!(ans(false, json!({"xs": {"0": "a"}})), (false, true));
    let long = vec!["a"; MAX_ELEMENTS + 1];
    assert_eq!(
        ans(true, json!({ "xs": long })),
        (false, true),
        "too long: unknown"
    );
}

#[test]
fn a_broken_store_for_a_shadow_rule_leaves_other_quantified_tests_answered() {
    let policy = r#"default allow
records entity {
  created by tool "create_entities" at "/entities/*/name"
}
deny watch-foreign-deletes {
  mode shadow
  tool "delete_entities"
  when not all args.entityNames created by agent
}
deny pii-tags {
  tool "delete_entities"
  when any args.tags == "pii"
}
"#;
    let e = engine_with(policy, RecordBackend::Store(Arc::new(Broken)));
    let ok = decide(
        &e,
        "delete_entities",
        json!({"entityNames": ["A"], "tags": ["ok"]}),
    );
    assert!(ok.is_allow(), "{ok:?}");
    let pii = decide(
        &e,
        "delete_entities",
        json!({"entityNames": ["A"], "tags": ["pii"]}),
    );
    assert_eq!(denied_by(&pii), ["pii-tags"]);
}
