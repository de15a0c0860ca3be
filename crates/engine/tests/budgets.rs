//! Budgets through the engine, on both state stores: exact decimal sums,
//! a crossing denied with what is used and left and true retry advice,
//! amounts that cannot be added up denied with the reason, a call not
//! sent freeing its amount, shadow budgets counting without refusing,
//! previews holding nothing, and a budget per model failing closed.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Retry, StateBackend,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default allow
budget spend {
  tool \"start_run\"
  sum args.cost
  max 1 per 1h per user
}
budget told {
  tool \"start_told\"
  sum args.cost
  max 2000 per 1d per user
  reason \"agents may commit at most {limit} of compute per day; {used} used, {remaining} left\"
}
budget trial {
  tool \"start_trial\"
  sum args.cost
  max 1 per 1h per user
  mode shadow
}
cap-consecutive one-in-a-row {
  tool \"start_capped\"
  max 1 per user
}
budget capped {
  tool \"start_capped\"
  sum args.cost
  max 1 per 1h per user
}
budget per-model {
  tool \"start_model\"
  sum args.cost
  max 5 per 1h per model
}
";

fn engines() -> Vec<(&'static str, Engine, Arc<ManualClock>, tempfile::TempDir)> {
    ["memory", "sqlite"]
        .into_iter()
        .map(|kind| {
            let dir = tempfile::tempdir().unwrap();
            let state = match kind {
                "memory" => StateBackend::Memory,
                _ => StateBackend::Sqlite(dir.path().join("state.db")),
            };
            let mut s = Sources::new();
            s.add("t.policy", POLICY);
            let set = compile_policy_set(&s).expect("compiles").policy_set;
            let clock = Arc::new(ManualClock::default());
            let e = Engine::new(
                PolicyBundle::new(set, "v1".into()),
                EngineOptions {
                    clock: clock.clone(),
                    state,
                    ..EngineOptions::default()
                },
            );
            (kind, e, clock, dir)
        })
        .collect()
}

fn call(user: &str, tool: &str, args: Value) -> CallContext {
    CallContext {
        identity: Identity {
            user: user.into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        server: "lab".into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

fn run(cost: Value) -> CallContext {
    call("alice", "start_run", json!({ "cost": cost }))
}

/// Decides and, when allowed, forwards (records) the call.
fn forward(e: &Engine, c: &CallContext) -> Outcome {
    let d = e.decide(c);
    if d.is_allow() {
        e.record_forwarded(c, &d);
    }
    d.outcome
}

fn allowed(o: &Outcome) -> bool {
    matches!(o, Outcome::Allow { .. })
}

fn denial(o: Outcome) -> warden_engine::Denial {
    match o {
        Outcome::Deny(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn decimal_amounts_add_up_exactly() {
    for (kind, e, _, _dir) in engines() {
        // Ten times 0.1 is exactly 1 (in floats it is 0.9999999999999999).
        for i in 0..10 {
            assert!(allowed(&forward(&e, &run(json!(0.1)))), "{kind}: call {i}");
        }
        let d = denial(forward(&e, &run(json!(0.0001))));
        assert!(d.reason.contains("1 used, 0 left"), "{kind}: {}", d.reason);
        // A zero amount still fits a budget used to the last unit.
        assert!(allowed(&forward(&e, &run(json!(0)))), "{kind}");

        // 0.1 + 0.2 is exactly 0.3: 0.7 more fits, 0.7001 does not.
        let bob = |cost: Value| call("bob", "start_run", json!({ "cost": cost }));
        assert!(allowed(&forward(&e, &bob(json!(0.1)))));
        assert!(allowed(&forward(&e, &bob(json!(0.2)))));
        assert!(!allowed(&forward(&e, &bob(json!(0.7001)))), "{kind}");
        assert!(allowed(&forward(&e, &bob(json!(0.7)))), "{kind}");
    }
}

#[test]
fn crossing_a_budget_says_what_is_used_and_left_and_when_it_frees() {
    for (kind, e, clock, _dir) in engines() {
        assert!(allowed(&forward(&e, &run(json!(0.6)))));
        clock.advance(Duration::from_secs(600));
        assert!(allowed(&forward(&e, &run(json!(0.3)))));
        let d = denial(forward(&e, &run(json!(0.5))));
        assert_eq!(
            d.reason,
            "`start_run` was not called: rule `spend` allows at most 1 per 1h per user of `args.cost`; 0.9 used, 0.1 left, and this call's 0.5 would cross it",
            "{kind}"
        );
        // 0.6 leaves the window 3000 s from now; then 0.5 fits.
        assert_eq!(d.retry, Retry::AfterSeconds { seconds: 3000 }, "{kind}");
        assert!(
            d.instead.contains("wait 50m")
                && d.instead.contains("ask for at most 0.1 of `args.cost` now"),
            "{kind}: {}",
            d.instead
        );
        // Both parts of the advice are true.
        assert!(
            allowed(&forward(&e, &run(json!(0.1)))),
            "{kind}: the smaller amount"
        );
        clock.advance(Duration::from_secs(2999));
        assert!(!allowed(&forward(&e, &run(json!(0.5)))), "{kind}: early");
        clock.advance(Duration::from_secs(1));
        assert!(allowed(&forward(&e, &run(json!(0.5)))), "{kind}: freed");

        // More than the budget allows at all: never, and it says so.
        let d = denial(forward(
            &e,
            &call("carol", "start_run", json!({"cost": 1.5})),
        ));
        assert_eq!(d.retry, Retry::Never, "{kind}");
        assert!(
            d.instead.contains("at most 1 of `args.cost` in all"),
            "{kind}: {}",
            d.instead
        );
    }
}

#[test]
fn a_reason_template_gets_limit_used_and_remaining() {
    for (kind, e, _, _dir) in engines() {
        let told = |cost: Value| call("alice", "start_told", json!({ "cost": cost }));
        assert!(allowed(&forward(&e, &told(json!(1950)))));
        let d = denial(forward(&e, &told(json!(100))));
        assert_eq!(
            d.reason,
            "`start_told` was not called: agents may commit at most 2000 of compute per day; 1950 used, 50 left",
            "{kind}"
        );
    }
}

#[test]
fn amounts_that_cannot_be_added_up_are_denied_with_the_reason() {
    let cases: [(Value, &str); 7] = [
        (json!({}), "is missing"),
        (json!({"cost": "12"}), "is not a number"),
        (json!({"cost": null}), "is not a number"),
        (json!({"cost": -1}), "is negative"),
        (
            json!({"cost": 0.00001}),
            "is more precise than 4 decimal places",
        ),
        (json!({"cost": 1e300}), "is too large"),
        (
            json!({"cost": 0.12345678901234567}),
            "is too precise to add up exactly",
        ),
    ];
    for (kind, e, _, _dir) in engines() {
        for (args, why) in &cases {
            let d = denial(forward(&e, &call("alice", "start_run", args.clone())));
            assert_eq!(
                d.reason,
                format!(
                    "`start_run` was not called: rule `spend` adds up `args.cost`, and this call's `cost` {why}"
                ),
                "{kind}: {args}"
            );
            assert_eq!(d.retry, Retry::Never, "{kind}");
            assert_eq!(
                d.instead, "send `cost` as a number (at most 4 decimal places, not negative)",
                "{kind}"
            );
        }
        // Nothing was counted: the whole budget is still there.
        assert!(allowed(&forward(&e, &run(json!(1)))), "{kind}");
    }
}

#[test]
fn a_call_not_sent_frees_its_amount_and_a_held_amount_counts() {
    for (kind, e, _, _dir) in engines() {
        let held = e.decide(&run(json!(0.8)));
        assert!(held.is_allow(), "{kind}");
        // Held, not yet forwarded: it counts.
        assert!(!allowed(&forward(&e, &run(json!(0.3)))), "{kind}");
        // A preview holds nothing, and sees the held amount.
        assert!(!e.preview(&run(json!(0.3))).is_allow(), "{kind}");
        assert!(e.preview(&run(json!(0.2))).is_allow(), "{kind}");
        drop(held);
        assert!(
            allowed(&forward(&e, &run(json!(1)))),
            "{kind}: the 0.8 was freed"
        );
    }
}

#[test]
fn a_shadow_budget_counts_but_never_refuses() {
    for (kind, e, _, _dir) in engines() {
        let trial = |cost: Value| call("alice", "start_trial", json!({ "cost": cost }));
        assert!(allowed(&forward(&e, &trial(json!(0.9)))), "{kind}");
        let d = e.decide(&trial(json!(0.5)));
        assert!(d.is_allow(), "{kind}: shadow mode never refuses");
        assert!(
            d.shadow
                .iter()
                .any(|f| f.rule == "trial" && f.would == "deny"),
            "{kind}: the finding says the budget would have denied: {:?}",
            d.shadow
        );
    }
}

#[test]
fn a_budget_per_model_denies_a_call_without_a_model() {
    for (kind, e, _, _dir) in engines() {
        let d = denial(forward(
            &e,
            &call("alice", "start_model", json!({"cost": 1})),
        ));
        assert!(
            d.reason
                .ends_with("counts calls per model, and this call declares no model"),
            "{kind}: {}",
            d.reason
        );
        let mut c = call("alice", "start_model", json!({"cost": 5}));
        c.identity.model = Some("m1".into());
        assert!(allowed(&forward(&e, &c)), "{kind}");
        assert!(!allowed(&forward(&e, &c)), "{kind}: m1 spent its 5");
        c.identity.model = Some("m2".into());
        assert!(allowed(&forward(&e, &c)), "{kind}");
    }
}

#[test]
fn an_amount_above_the_budget_is_never_retried_even_when_a_cap_also_denies() {
    for (kind, e, _, _dir) in engines() {
        let capped = |cost: Value| call("alice", "start_capped", json!({ "cost": cost }));
        assert!(allowed(&forward(&e, &capped(json!(0.5)))), "{kind}");
        // The cap alone: the streak ends with another call.
        let d = denial(forward(&e, &capped(json!(0.5))));
        assert_eq!(d.retry, Retry::AfterStreakEnds, "{kind}");
        // The cap and a budget this amount can never fit: never.
        let d = denial(forward(&e, &capped(json!(2))));
        assert_eq!(d.rules.len(), 2, "{kind}: {:?}", d.rules);
        assert_eq!(d.retry, Retry::Never, "{kind}");
        assert!(
            d.instead.contains("at most 1 of `args.cost` in all"),
            "{kind}: {}",
            d.instead
        );
    }
}
