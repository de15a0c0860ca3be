//! The compiler builds its Cedar policies through Cedar's policy tree
//! (`cedar_policy::pst`) instead of printing text and parsing it back; the
//! text is still what `warden compile` shows. These tests hold the two the
//! same: for every rule of every golden set, every shipped set and the
//! compile bench's generated sets, the built policy (compiled, counting,
//! core and core counting, and the default permit) equals
//! `Policy::parse(id, printed text)` both as Cedar's AST (what is
//! evaluated and validated) and in Cedar's JSON form (what the text said,
//! operator for operator). A property test does the same for policies of
//! arbitrary shape holding arbitrary strings, names and numbers, the
//! escaping the printer must get right.

mod common;
mod generated;

use cedar_policy::{Policy, PolicyId};
use proptest::prelude::*;
use warden_lang::ast::Effect;
use warden_lang::cedar::{BinOp, CEffect, CExpr, CPolicy, PolicyBuilder, Var};
use warden_lang::compile::{COUNTING_SUFFIX, DEFAULT_POLICY_ID};
use warden_lang::{CompiledPolicySet, Sources, compile_policy_set};

/// `built` is the policy Cedar parses from `text` under `id`.
fn assert_same(what: &str, built: &Policy, id: &str, text: &str) {
    let parsed = Policy::parse(Some(PolicyId::new(id)), text)
        .unwrap_or_else(|e| panic!("{what}: printed text does not parse: {e}\n{text}"));
    assert_eq!(built.id(), parsed.id(), "{what}");
    assert_eq!(built, &parsed, "{what}: AST differs from\n{text}");
    assert_eq!(
        built.to_json().expect("built to JSON"),
        parsed.to_json().expect("parsed to JSON"),
        "{what}: JSON form differs from\n{text}"
    );
}

/// Every policy of `set` against its printed text; the number compared.
fn assert_set(name: &str, set: &CompiledPolicySet) -> usize {
    let mut compared = 0;
    for rule in set.rules() {
        let what = format!("{name}: `{}`", rule.id);
        let id = PolicyId::new(&rule.id);
        let built = set
            .enforced_policies()
            .policy(&id)
            .or_else(|| set.shadow_policies().policy(&id))
            .or_else(|| set.label_policies().policy(&id))
            .unwrap_or_else(|| panic!("{what}: no compiled policy"));
        assert_same(&what, built, &rule.id, &rule.cedar);
        let core = rule.core_policy().expect("core builds");
        assert_same(&format!("{what} core"), &core, &rule.id, &rule.core_cedar);
        compared += 2;
        let counting_id = format!("{}{COUNTING_SUFFIX}", rule.id);
        match (&rule.counting_cedar, &rule.core_counting_cedar) {
            (Some(text), Some(core_text)) => {
                let built = set
                    .counting_policies()
                    .policy(&PolicyId::new(&counting_id))
                    .unwrap_or_else(|| panic!("{what}: no counting policy"));
                assert_same(&format!("{what} counting"), built, &counting_id, text);
                let core = rule
                    .core_counting_policy()
                    .expect("a limit rule has a core count")
                    .expect("core count builds");
                assert_same(
                    &format!("{what} core counting"),
                    &core,
                    &counting_id,
                    core_text,
                );
                compared += 2;
            }
            (None, None) => assert!(rule.core_counting_policy().is_none(), "{what}"),
            _ => panic!("{what}: a counting policy without its core, or the reverse"),
        }
    }
    if set.default_effect() == Effect::Allow {
        // `cedar_text` starts with the default permit; no emitted policy
        // holds a blank line (strings escape their newlines).
        let text = set.cedar_text();
        let first = text.split("\n\n").next().expect("a first policy");
        let built = set
            .enforced_policies()
            .policy(&PolicyId::new(DEFAULT_POLICY_ID))
            .expect("default permit");
        assert_same(&format!("{name}: default"), built, DEFAULT_POLICY_ID, first);
        compared += 1;
    }
    compared
}

#[test]
fn golden_and_shipped_sets_build_what_their_text_says() {
    let mut compared = 0;
    for (name, sources) in common::golden_and_shipped_sets() {
        let set = compile_policy_set(&sources)
            .unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"))
            .policy_set;
        compared += assert_set(&name, &set);
    }
    assert!(compared > 50, "policies compared: {compared}");
}

#[test]
fn generated_sets_build_what_their_text_says() {
    for rules in [1_000, 2_500] {
        let mut sources = Sources::new();
        sources.add(
            format!("generated-{rules}.policy"),
            generated::generate(rules),
        );
        let set = compile_policy_set(&sources)
            .unwrap_or_else(|d| panic!("generated {rules} does not compile: {d:?}"))
            .policy_set;
        let compared = assert_set(&format!("generated-{rules}"), &set);
        assert!(compared >= 2 * rules, "{rules}: compared {compared}");
    }
}

/// Strings that stress the printer's escaping, plus anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_*\"\\\\\n\r\t\u{0}\u{1}\u{7f}\u{85}\u{2028}\u{2029} .\\-]{0,12}",
        Just(String::new()),
        Just("in".to_string()),
        Just("__cedar".to_string()),
        Just("principal".to_string()),
    ]
}

fn long() -> impl Strategy<Value = i64> {
    // Not negative: the printer writes a negative literal bare, and Cedar
    // reads `-1[".."]` as `-(1[".."])`. The compiler emits numbers only as
    // right-hand operands, where the two agree; as a base they would not.
    prop_oneof![0..=i64::MAX, Just(i64::MAX), Just(0)]
}

fn leaf() -> impl Strategy<Value = CExpr> {
    prop_oneof![
        any::<bool>().prop_map(CExpr::Bool),
        long().prop_map(CExpr::Long),
        text().prop_map(CExpr::Str),
        prop_oneof![
            Just(Var::Principal),
            Just(Var::Resource),
            Just(Var::Context)
        ]
        .prop_map(CExpr::Var),
        (prop_oneof![Just("User"), Just("Group")], text())
            .prop_map(|(ty, id)| CExpr::Entity(ty, id)),
        "-?[0-9]{1,5}\\.[0-9]{1,4}".prop_map(CExpr::Decimal),
    ]
}

fn expr() -> impl Strategy<Value = CExpr> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        let op = prop_oneof![
            Just(BinOp::Eq),
            Just(BinOp::Ne),
            Just(BinOp::Lt),
            Just(BinOp::Le),
            Just(BinOp::Gt),
            Just(BinOp::Ge),
            Just(BinOp::In),
        ];
        let method = prop_oneof![
            Just("contains"),
            Just("containsAll"),
            Just("containsAny"),
            Just("lessThan"),
            Just("lessThanOrEqual"),
            Just("greaterThan"),
            Just("greaterThanOrEqual"),
        ];
        prop_oneof![
            (inner.clone(), text()).prop_map(|(e, a)| CExpr::Attr(Box::new(e), a)),
            (inner.clone(), text()).prop_map(|(e, a)| CExpr::Has(Box::new(e), a)),
            (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| CExpr::Binary(
                op,
                Box::new(l),
                Box::new(r)
            )),
            prop::collection::vec(inner.clone(), 1..4).prop_map(CExpr::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(CExpr::Or),
            inner.clone().prop_map(|e| CExpr::Not(Box::new(e))),
            (inner.clone(), text()).prop_map(|(e, g)| CExpr::Like(Box::new(e), g)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(CExpr::Set),
            (inner.clone(), method, inner).prop_map(|(e, m, a)| CExpr::Method(
                Box::new(e),
                m,
                vec![a]
            )),
        ]
    })
}

fn policy() -> impl Strategy<Value = CPolicy> {
    let keys = prop_oneof![
        Just("id"),
        Just("kind"),
        Just("reason"),
        Just("source"),
        Just("if")
    ];
    (
        // Not empty: Cedar's pst keeps `@k("")` as a valueless `@k`, the
        // same AST (asserted) but `null` rather than `""` in the JSON form.
        prop::collection::btree_map(
            keys,
            text().prop_filter("non-empty", |t| !t.is_empty()),
            0..4,
        ),
        any::<bool>(),
        expr(),
        prop::option::of(expr()),
    )
        .prop_map(|(annotations, permit, when, unless)| CPolicy {
            annotations: annotations.into_iter().collect(),
            effect: if permit {
                CEffect::Permit
            } else {
                CEffect::Forbid
            },
            when,
            unless,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any tree, ill-typed or not (the parser does not type-check either):
    /// the built policy is the parsed one.
    #[test]
    fn any_tree_builds_what_its_text_says(p in policy()) {
        let built = PolicyBuilder::new()
            .expect("builder")
            .policy(&p, "p")
            .expect("builds");
        assert_same("arbitrary policy", &built, "p", &p.to_cedar());
    }
}
