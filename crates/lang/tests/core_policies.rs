//! Every rule's core policy (its policy without the `server`/`tool`
//! matchers, which the engine evaluates inside a slice) parses and passes
//! Cedar's strict validation against the set's schema, for the golden sets
//! and the shipped policies; and it is the compiled policy minus exactly
//! those matchers.

mod common;

use cedar_policy::{Policy, PolicyId, PolicySet, ValidationMode, Validator};
use warden_lang::compile::COUNTING_SUFFIX;
use warden_lang::{Sources, compile_policy_set};

#[test]
fn core_policies_parse_and_validate_strictly() {
    for (name, sources) in common::golden_and_shipped_sets() {
        let set = match compile_policy_set(&sources) {
            Ok(out) => out.policy_set,
            Err(d) => panic!("{name} does not compile: {d:?}"),
        };
        let mut cores = PolicySet::new();
        for rule in set.rules() {
            let id = PolicyId::new(&rule.id);
            let core = Policy::parse(Some(id.clone()), &rule.core_cedar)
                .unwrap_or_else(|e| panic!("{name}: core of `{}` does not parse: {e}", rule.id));
            let full = set
                .enforced_policies()
                .policy(&id)
                .or_else(|| set.shadow_policies().policy(&id))
                .or_else(|| set.label_policies().policy(&id))
                .expect("compiled policy");
            assert_eq!(core.effect(), full.effect(), "{name}: `{}`", rule.id);
            assert_eq!(
                core.annotations().collect::<Vec<_>>(),
                full.annotations().collect::<Vec<_>>(),
                "{name}: `{}`",
                rule.id
            );
            // The compiled text is the core's `when` plus the matchers: the
            // core never says more than the compiled policy.
            assert!(
                rule.core_cedar.len() <= rule.cedar.len(),
                "{name}: `{}`",
                rule.id
            );
            cores.add(core).expect("unique ids");
            match (&rule.counting_cedar, &rule.core_counting_cedar) {
                (Some(_), Some(text)) => {
                    let id = PolicyId::new(format!("{}{COUNTING_SUFFIX}", rule.id));
                    let core = Policy::parse(Some(id), text).unwrap_or_else(|e| {
                        panic!("{name}: core count of `{}` does not parse: {e}", rule.id)
                    });
                    cores.add(core).expect("unique ids");
                }
                (None, None) => {}
                _ => panic!("{name}: `{}` has a counting policy without core", rule.id),
            }
        }
        let result = Validator::new(set.schema().clone()).validate(&cores, ValidationMode::Strict);
        let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn a_core_policy_drops_only_the_matchers() {
    let mut sources = Sources::new();
    sources.add(
        "t.policy",
        r#"
default deny
deny no-delete {
  server ["genomics", "lab-*"]
  tool "delete_*"
  when via agent and tool.destructive
}
cap-consecutive streak {
  server "genomics"
  tool "start_run"
  max 3 per session
}
allow everything-read {
  when tool.read_only
}
"#,
    );
    let set = compile_policy_set(&sources).expect("compiles").policy_set;
    let rule = set.rule("no-delete").expect("rule");
    assert!(rule.cedar.contains("resource.server"));
    assert!(rule.cedar.contains("resource.name"));
    assert!(!rule.core_cedar.contains("resource.server"));
    assert!(!rule.core_cedar.contains("resource.name"));
    assert!(rule.core_cedar.contains("context.via_agent"));
    assert!(rule.core_cedar.contains("resource.destructive"));
    let cap = set.rule("streak").expect("rule");
    let counting = cap.core_counting_cedar.as_deref().expect("core count");
    assert!(!counting.contains("resource."));
    assert!(cap.core_cedar.contains("context.counters"));
    // No matchers: the core is the compiled policy.
    let all = set.rule("everything-read").expect("rule");
    assert_eq!(all.core_cedar, all.cedar);
}
