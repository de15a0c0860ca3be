//! Decisions of every rule kind, through the engine's public API, against
//! the reference genomics policy and small purpose-written sets.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance, Retry,
};
use warden_lang::{Sources, compile_policy_set};

fn engine_for(text: &str) -> (Engine, Arc<ManualClock>) {
    let mut s = Sources::new();
    s.add("t.policy", text);
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    let clock = Arc::new(ManualClock::default());
    let opts = EngineOptions {
        clock: clock.clone(),
        ..EngineOptions::default()
    };
    (
        Engine::new(PolicyBundle::new(set, "v1".into()), opts),
        clock,
    )
}

fn genomics() -> Engine {
    let path = format!(
        "{}/../../policies/genomics.policy",
        env!("CARGO_MANIFEST_DIR")
    );
    let bundle = warden_engine::load_bundle(path.as_ref()).expect("genomics loads");
    Engine::new(bundle, EngineOptions::default())
}

fn agent_call(tool: &str, args: serde_json::Value) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            groups: vec!["lab".into()],
            agent: Some("claude-code".into()),
            model: Some("claude-sonnet".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("genomics".into()),
        },
        server: "genomics".into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

/// Decides and, when allowed, forwards (records) the call.
fn call(engine: &Engine, c: &CallContext) -> Outcome {
    let d = engine.decide(c);
    if d.is_allow() {
        engine.record_forwarded(c, &d);
    }
    d.outcome
}

#[test]
fn agents_list_and_read_freely() {
    let e = genomics();
    assert!(matches!(
        call(&e, &agent_call("list_samples", json!({}))),
        Outcome::Allow { .. }
    ));
    assert!(matches!(
        call(&e, &agent_call("get_sample", json!({"sample_id": "S1"}))),
        Outcome::Allow { .. }
    ));
}

#[test]
fn agents_never_delete_and_are_told_why() {
    let e = genomics();
    let Outcome::Deny(d) = call(
        &e,
        &agent_call("delete_sample", json!({"sample_id": "S-17"})),
    ) else {
        panic!("delete must be denied")
    };
    assert_eq!(d.rules[0].rule, "agents-never-delete");
    assert!(d.reason.contains("S-17"), "{}", d.reason);
    assert_eq!(d.retry, Retry::Never);
    assert!(
        d.rules[0].source.ends_with("genomics.policy:51:6"),
        "{}",
        d.rules[0].source
    );
}

#[test]
fn people_may_delete_on_the_human_path() {
    let e = genomics();
    let mut c = agent_call("delete_sample", json!({"sample_id": "S-17"}));
    c.provenance = Provenance::default();
    c.identity.agent = None;
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
}

#[test]
fn costly_runs_need_confirmation_and_a_yes_lets_them_through() {
    let e = genomics();
    let mut c = agent_call(
        "start_pipeline_run",
        json!({"pipeline": "wgs", "sample_id": "S1", "estimated_cost": 120}),
    );
    let Outcome::Confirm(q) = call(&e, &c) else {
        panic!("expected a confirmation")
    };
    assert_eq!(q.rules[0].rule, "pipeline-run-needs-confirmation");
    assert!(
        q.message.contains("wgs") && q.message.contains("S1"),
        "{}",
        q.message
    );
    c.confirmed = vec!["pipeline-run-needs-confirmation".into()];
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
}

#[test]
fn at_most_three_runs_in_a_row_per_session() {
    let e = genomics();
    let qc = agent_call(
        "start_pipeline_run",
        json!({"pipeline": "qc", "sample_id": "S1"}),
    );
    for _ in 0..3 {
        assert!(matches!(call(&e, &qc), Outcome::Allow { .. }));
    }
    let Outcome::Deny(d) = call(&e, &qc) else {
        panic!("fourth run must be capped")
    };
    assert_eq!(d.rules[0].rule, "at-most-3-runs-in-a-row");
    assert_eq!(d.retry, Retry::AfterStreakEnds);
    // Another session is not affected.
    let mut other = qc.clone();
    other.session = "s2".into();
    assert!(matches!(call(&e, &other), Outcome::Allow { .. }));
    // A call to another tool ends the streak.
    assert!(matches!(
        call(&e, &agent_call("list_samples", json!({}))),
        Outcome::Allow { .. }
    ));
    assert!(matches!(call(&e, &qc), Outcome::Allow { .. }));
}

#[test]
fn a_denied_call_does_not_count() {
    let e = genomics();
    let qc = agent_call("start_pipeline_run", json!({"pipeline": "qc"}));
    for _ in 0..3 {
        call(&e, &qc);
    }
    for _ in 0..5 {
        assert!(matches!(call(&e, &qc), Outcome::Deny(_)));
    }
    // Denied calls neither extended nor ended the streak; a different tool does.
    call(&e, &agent_call("list_samples", json!({})));
    assert!(matches!(call(&e, &qc), Outcome::Allow { .. }));
}

#[test]
fn a_confirmed_call_ends_the_streak() {
    let e = genomics();
    let qc = agent_call("start_pipeline_run", json!({"pipeline": "qc"}));
    call(&e, &qc);
    call(&e, &qc);
    let mut wgs = agent_call(
        "start_pipeline_run",
        json!({"pipeline": "wgs", "estimated_cost": 120}),
    );
    wgs.confirmed = vec!["pipeline-run-needs-confirmation".into()];
    assert!(matches!(call(&e, &wgs), Outcome::Allow { .. }));
    for _ in 0..3 {
        assert!(
            matches!(call(&e, &qc), Outcome::Allow { .. }),
            "streak restarted after the confirmed run"
        );
    }
}

#[test]
fn unknown_tools_fall_to_the_default() {
    let e = genomics();
    let Outcome::Deny(d) = call(&e, &agent_call("format_disk", json!({}))) else {
        panic!()
    };
    assert!(d.rules.is_empty());
    assert!(d.reason.contains("no policy rule allows"), "{}", d.reason);
}

#[test]
fn rate_limits_count_per_window_and_say_when_to_retry() {
    let (e, clock) = engine_for(
        "default allow\nrate-limit exports {\n  tool \"export\"\n  max 2 per 1m per user\n}\n",
    );
    let c = agent_call("export", json!({}));
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
    clock.advance(Duration::from_secs(20));
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
    let Outcome::Deny(d) = call(&e, &c) else {
        panic!("third export in a minute")
    };
    assert_eq!(d.retry, Retry::AfterSeconds { seconds: 40 });
    // Per user: another user has their own window.
    let mut bob = c.clone();
    bob.identity.user = "bob".into();
    assert!(matches!(call(&e, &bob), Outcome::Allow { .. }));
    clock.advance(Duration::from_secs(41));
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
}

#[test]
fn shadow_rules_are_reported_not_enforced() {
    let (e, _) = engine_for(
        "default allow\ndeny trial {\n  tool \"drop_*\"\n  mode shadow\n  reason \"would block {tool}\"\n}\n",
    );
    let d = e.decide(&agent_call("drop_table", json!({})));
    assert!(d.is_allow());
    assert_eq!(d.shadow.len(), 1);
    assert_eq!(d.shadow[0].rule, "trial");
    assert_eq!(d.shadow[0].would, "deny");
    assert_eq!(d.shadow[0].message, "would block drop_table");
    assert!(e.decide(&agent_call("list", json!({}))).shadow.is_empty());
}

#[test]
fn oversized_or_malformed_arguments_are_denied_with_a_reason() {
    let (e, _) = engine_for("default allow\n");
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "x": deep });
    }
    let Outcome::Deny(d) = call(&e, &agent_call("t", deep)) else {
        panic!()
    };
    assert!(d.reason.contains("deeper"), "{}", d.reason);
    let Outcome::Deny(d) = call(&e, &agent_call("t", json!("not an object"))) else {
        panic!()
    };
    assert!(d.reason.contains("not a JSON object"), "{}", d.reason);
}

#[test]
fn state_survives_a_policy_swap() {
    let text = "default allow\ncap-consecutive two {\n  tool \"run\"\n  max 2 per session\n}\n";
    let (e, _) = engine_for(text);
    let c = agent_call("run", json!({}));
    call(&e, &c);
    call(&e, &c);
    let mut s = Sources::new();
    s.add(
        "t.policy",
        format!("{text}\ndeny unrelated {{\n  tool \"x\"\n}}\n"),
    );
    e.swap_policies(PolicyBundle::new(
        compile_policy_set(&s).unwrap().policy_set,
        "v2".into(),
    ));
    let d = e.decide(&c);
    assert_eq!(d.policy_version, "v2");
    assert!(
        matches!(d.outcome, Outcome::Deny(_)),
        "the streak of 2 carried over"
    );
}

#[test]
fn a_group_listed_twice_is_one_group() {
    let (e, _) = engine_for("default deny\nallow staff {\n  when user in group \"staff\"\n}\n");
    let mut c = agent_call("anything", json!({}));
    c.identity.groups = vec!["staff".into(), "staff".into()];
    assert!(matches!(call(&e, &c), Outcome::Allow { .. }));
}
