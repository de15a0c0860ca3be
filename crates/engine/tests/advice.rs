//! Finding 20: every denial's advice is true. For each kind of denial the
//! test does what the advice (`instead`, `retry`) says, then checks that
//! what happens next is what the advice promised.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Denial, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Retry,
    StateBackend,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default deny
allow tools {
  tool \"*\"
}
deny no-drops {
  tool \"drop_table\"
}
cap-consecutive runs {
  tool \"run\"
  max 2 per session
}
rate-limit reads {
  tool \"read\"
  max 2 per 1m per session
}
require-confirm deletes {
  tool \"delete\"
}
";

fn engine_with(state: StateBackend) -> (Engine, Arc<ManualClock>) {
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
    (e, clock)
}

fn call(tool: &str, args: Value) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: Some("claude".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        server: "lab".into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

/// Decides and, when allowed, forwards (records) the call.
fn run(e: &Engine, c: &CallContext) -> Outcome {
    let d = e.decide(c);
    if d.is_allow() {
        e.record_forwarded(c, &d);
    }
    d.outcome
}

fn denial(o: Outcome) -> Denial {
    match o {
        Outcome::Deny(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn allowed(o: &Outcome) -> bool {
    matches!(o, Outcome::Allow { .. })
}

#[test]
fn finding_20_a_deny_rule_says_do_not_retry_and_a_retry_is_denied_again() {
    let (e, _) = engine_with(StateBackend::Memory);
    let d = denial(run(&e, &call("drop_table", json!({}))));
    assert_eq!(d.retry, Retry::Never);
    assert!(d.instead.starts_with("do not retry"), "{}", d.instead);
    assert!(!allowed(&run(&e, &call("drop_table", json!({})))));
}

#[test]
fn finding_20_a_cap_says_how_its_streak_ends_and_that_is_how_it_ends() {
    let (e, _) = engine_with(StateBackend::Memory);
    let r = call("run", json!({}));
    assert!(allowed(&run(&e, &r)));
    assert!(allowed(&run(&e, &r)));
    let d = denial(run(&e, &r));
    assert_eq!(d.retry, Retry::AfterStreakEnds);
    // The advice no longer promises that a confirmation ends the streak:
    // while the cap holds, a call it counts is refused without asking.
    assert!(!d.instead.contains("confirm"), "{}", d.instead);
    assert!(
        d.instead
            .contains("a call to a tool this limit does not count is made in the same session"),
        "{}",
        d.instead
    );
    let mut confirmed = r.clone();
    confirmed.confirmed = vec!["runs".into()];
    assert!(
        !allowed(&e.decide(&confirmed).outcome),
        "a person's yes does not lift the cap, so the advice must not offer it"
    );
    // What the advice says: call a tool the cap does not count...
    assert!(allowed(&run(&e, &call("list", json!({})))));
    // ...and the capped tool is allowed again.
    assert!(allowed(&run(&e, &r)));
}

#[test]
fn finding_20_a_rate_says_how_long_to_wait_and_after_that_the_call_is_allowed() {
    let (e, clock) = engine_with(StateBackend::Memory);
    let r = call("read", json!({}));
    assert!(allowed(&run(&e, &r)));
    clock.advance(Duration::from_secs(10));
    assert!(allowed(&run(&e, &r)));
    let d = denial(run(&e, &r));
    let Retry::AfterSeconds { seconds } = d.retry else {
        panic!("{:?}", d.retry)
    };
    assert_eq!(seconds, 50);
    assert!(d.instead.contains("wait 50s"), "{}", d.instead);
    // Not a moment before...
    clock.advance(Duration::from_secs(seconds - 1));
    assert!(!allowed(&run(&e, &r)));
    // ...but once the wait is over, the call goes through.
    clock.advance(Duration::from_secs(1));
    assert!(allowed(&run(&e, &r)));
}

#[test]
fn finding_20_arguments_that_are_not_an_object_are_told_to_send_an_object() {
    let (e, _) = engine_with(StateBackend::Memory);
    for bad in [json!([1, 2]), json!("x"), json!(null), json!(3)] {
        let d = denial(run(&e, &call("list", bad.clone())));
        assert!(
            d.instead.contains("send the arguments as a JSON object"),
            "{bad}: {}",
            d.instead
        );
        assert!(!d.instead.contains("smaller"), "{bad}: {}", d.instead);
    }
    // Doing so is allowed.
    assert!(allowed(&run(&e, &call("list", json!({})))));
}

#[test]
fn finding_20_arguments_too_deep_are_told_to_flatten_and_flat_ones_pass() {
    let (e, _) = engine_with(StateBackend::Memory);
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "a": deep });
    }
    let d = denial(run(&e, &call("list", deep)));
    assert_eq!(d.instead, "send smaller, flatter arguments");
    assert!(allowed(&run(&e, &call("list", json!({"a": 1})))));
}

#[test]
fn finding_20_no_rule_allowing_says_do_not_retry_and_a_retry_is_denied_again() {
    let mut s = Sources::new();
    s.add(
        "t.policy",
        "default deny\nallow reads {\n  tool \"read\"\n}\n",
    );
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    let e = Engine::new(
        PolicyBundle::new(set, "v1".into()),
        EngineOptions::default(),
    );
    let d = denial(run(&e, &call("write", json!({}))));
    assert_eq!(d.retry, Retry::Never);
    assert!(d.instead.starts_with("do not retry"), "{}", d.instead);
    assert!(!allowed(&run(&e, &call("write", json!({})))));
}

#[test]
fn finding_20_an_unavailable_store_is_not_blamed_on_the_agent_and_retrying_does_not_help() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is no state file: the store cannot be opened.
    let (e, _) = engine_with(StateBackend::Sqlite(dir.path().to_path_buf()));
    let d = denial(run(&e, &call("run", json!({}))));
    assert!(d.reason.contains("state store unavailable"), "{}", d.reason);
    assert_eq!(d.retry, Retry::Never);
    assert!(
        d.instead.contains("not caused by the agent"),
        "{}",
        d.instead
    );
    assert!(!allowed(&run(&e, &call("run", json!({})))));
    // A call that needs no counter is unaffected.
    assert!(allowed(&run(&e, &call("list", json!({})))));
}
