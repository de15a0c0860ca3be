//! Compound scopes through the engine, on both state stores (memory and a
//! SQLite file): `per user per tool` caps measured as streaks in the row
//! with the split value (A A B A), `per model` rates, `per tool` limits
//! shared by every caller, tools of two servers kept apart, and a limit
//! per model denying a call that declares no model, saying why.

use serde_json::json;
use std::sync::Arc;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Retry, StateBackend,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default allow
cap-consecutive same-tool-in-a-row {
  tool \"run_*\"
  max 3 per user per tool
}
rate-limit per-model {
  tool \"start_*\"
  max 2 per 1h per model
}
rate-limit per-tool {
  tool \"export_*\"
  max 2 per 1h per tool
}
";

/// One engine per store kind; the SQLite one on a fresh file.
fn engines() -> Vec<(&'static str, Engine, tempfile::TempDir)> {
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
            let e = Engine::new(
                PolicyBundle::new(set, "v1".into()),
                EngineOptions {
                    clock: Arc::new(ManualClock::default()),
                    state,
                    ..EngineOptions::default()
                },
            );
            (kind, e, dir)
        })
        .collect()
}

fn call(user: &str, server: &str, tool: &str, model: Option<&str>) -> CallContext {
    CallContext {
        identity: Identity {
            user: user.into(),
            agent: Some("claude-code".into()),
            model: model.map(String::from),
            ..Identity::default()
        },
        session: format!("{user}-session"),
        server: server.into(),
        tool: tool.into(),
        arguments: json!({}),
        ..CallContext::default()
    }
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

#[test]
fn a_cap_per_user_per_tool_counts_the_same_tool_in_a_row() {
    for (kind, e, _dir) in engines() {
        let a = call("alice", "lab", "run_a", None);
        let b = call("alice", "lab", "run_b", None);
        // A A B A: B restarts the streak under B, A restarts it under A.
        for c in [&a, &a, &b, &a] {
            assert!(allowed(&forward(&e, c)), "{kind}: {}", c.tool);
        }
        // A is at 1: two more, then the cap.
        assert!(allowed(&forward(&e, &a)), "{kind}");
        assert!(allowed(&forward(&e, &a)), "{kind}");
        let Outcome::Deny(d) = forward(&e, &a) else {
            panic!("{kind}: a fourth `run_a` in a row must be capped")
        };
        assert_eq!(d.rules[0].rule, "same-tool-in-a-row", "{kind}");
        assert!(
            d.reason.contains("per user per tool"),
            "{kind}: {}",
            d.reason
        );
        assert_eq!(d.retry, Retry::AfterStreakEnds, "{kind}");
        assert!(
            d.instead
                .contains("another tool starts a streak of its own"),
            "{kind}: {}",
            d.instead
        );
        // Another tool the cap counts is allowed (its count is 0) ...
        assert!(allowed(&forward(&e, &b)), "{kind}");
        // ... and restarted the streak, so A is allowed again.
        assert!(allowed(&forward(&e, &a)), "{kind}");
        // Another user has a row of their own.
        let bob = call("bob", "lab", "run_a", None);
        for _ in 0..3 {
            assert!(allowed(&forward(&e, &bob)), "{kind}");
        }
        assert!(!allowed(&forward(&e, &bob)), "{kind}");
        // A call the cap does not count ends the streak.
        assert!(allowed(&forward(&e, &call("bob", "lab", "list", None))));
        assert!(allowed(&forward(&e, &bob)), "{kind}");
    }
}

#[test]
fn tools_of_two_servers_are_different_tools() {
    for (kind, e, _dir) in engines() {
        for server in ["lab", "lab2"] {
            for _ in 0..2 {
                let c = call("alice", server, "export_x", None);
                assert!(allowed(&forward(&e, &c)), "{kind}: {server}");
            }
        }
        assert!(!allowed(&forward(
            &e,
            &call("alice", "lab", "export_x", None)
        )));
        assert!(!allowed(&forward(
            &e,
            &call("alice", "lab2", "export_x", None)
        )));
    }
}

#[test]
fn a_limit_per_tool_alone_is_shared_by_every_caller() {
    for (kind, e, _dir) in engines() {
        assert!(allowed(&forward(
            &e,
            &call("alice", "lab", "export_x", None)
        )));
        assert!(allowed(&forward(&e, &call("bob", "lab", "export_x", None))));
        let Outcome::Deny(d) = forward(&e, &call("carol", "lab", "export_x", None)) else {
            panic!("{kind}: the tool's two calls an hour are used, whoever made them")
        };
        assert_eq!(d.rules[0].rule, "per-tool", "{kind}");
        assert!(
            matches!(d.retry, Retry::AfterSeconds { seconds: 3600 }),
            "{kind}"
        );
        assert!(allowed(&forward(
            &e,
            &call("carol", "lab", "export_y", None)
        )));
    }
}

#[test]
fn a_rate_per_model_counts_each_model_and_a_call_without_one_is_denied() {
    for (kind, e, _dir) in engines() {
        let m1 = call("alice", "lab", "start_x", Some("m1"));
        assert!(allowed(&forward(&e, &m1)), "{kind}");
        // The model, not the user or the tool, is the key.
        assert!(allowed(&forward(
            &e,
            &call("bob", "lab", "start_y", Some("m1"))
        )));
        assert!(!allowed(&forward(&e, &m1)), "{kind}: m1 used its 2");
        assert!(allowed(&forward(
            &e,
            &call("alice", "lab", "start_x", Some("m2"))
        )));

        let Outcome::Deny(d) = forward(&e, &call("alice", "lab", "start_x", None)) else {
            panic!("{kind}: a call with no model cannot be counted per model")
        };
        assert_eq!(
            d.reason,
            "`start_x` was not called: rule `per-model` counts calls per model, and this call declares no model",
            "{kind}"
        );
        assert_eq!(d.retry, Retry::Never, "{kind}");
        assert!(d.instead.contains("--model"), "{kind}: {}", d.instead);
        assert!(d.instead.contains("model_claim"), "{kind}: {}", d.instead);
        // Calls the rule does not count need no model.
        assert!(allowed(&forward(&e, &call("alice", "lab", "list", None))));
    }
}
