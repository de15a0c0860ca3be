//! The memo against fresh evaluation: repeated calls hit, a call that
//! differs in one keyed input misses, a key that leaves an input out is
//! caught by [`MemoMode::Verify`] (and would decide wrongly under
//! [`MemoMode::On`]), distinct arguments cannot grow it past its bound,
//! and a policy swap drops it.

use super::{MAX_ENTRIES, MemoMode, OMIT, Part};
use crate::call::{CallContext, Identity, Provenance, ToolAnnotations};
use crate::engine::{Engine, EngineOptions, Outcome};
use crate::index::PolicyBundle;
use crate::state::{Clock, ManualClock};
use serde_json::json;
use std::sync::Arc;
use warden_lang::{Sources, compile_policy_set};

/// Every kind of input a key holds, each deciding some call.
const POLICY: &str = r#"
default deny

allow staff-read {
  server "lab"
  tool "export"
  when user in group "staff" and tool.read_only and args.format == "cram"
}

allow ada-reads {
  server "lab"
  tool "export"
  when user == "ada" and not via agent
}

deny no-huge-limits {
  server "lab"
  tool "export"
  when args.limit > 1000
}

deny only-in-the-day {
  server "lab"
  tool "export"
  when via agent and not during 06:00-22:00 "UTC"
}

require-confirm confirm-raw {
  server "lab"
  tool "export"
  when args.format == "raw"
}

cap-consecutive two-in-a-row {
  server "lab"
  tool "export"
  when via agent
  max 2 per session
}

budget cost {
  server "lab"
  tool "export"
  when via agent
  sum args.cost
  max 10 per 1h per session
}
"#;

fn engine(mode: MemoMode) -> (Engine, Arc<ManualClock>) {
    let mut s = Sources::new();
    s.add("memo.policy", POLICY);
    let set = match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    };
    let clock = Arc::new(ManualClock::default());
    // 2026-12-02T10:00:00Z, inside the window.
    clock.step_wall(1_796_205_600_000 - clock.unix_millis());
    let options = EngineOptions {
        clock: clock.clone(),
        memo: mode,
        ..EngineOptions::default()
    };
    (
        Engine::new(PolicyBundle::new(set, "v1".into()), options),
        clock,
    )
}

fn call() -> CallContext {
    CallContext {
        identity: Identity {
            user: "bob".into(),
            groups: vec!["staff".into()],
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        provenance: Provenance {
            via_agent: true,
            via_server: None,
        },
        server: "lab".into(),
        tool: "export".into(),
        annotations: ToolAnnotations {
            read_only_hint: Some(true),
            ..ToolAnnotations::default()
        },
        arguments: json!({"format": "cram", "limit": 10, "cost": 1, "unread": 1}),
        confirmed: Vec::new(),
    }
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Allow { .. } => "allow",
        Outcome::Deny(_) => "deny",
        Outcome::Confirm(_) => "confirm",
    }
}

/// Two calls that differ in exactly `part` and are decided differently;
/// `setup` prepares the engine between them.
struct Pair {
    part: Part,
    first: CallContext,
    second: CallContext,
    setup: fn(&Engine, &ManualClock, &CallContext),
}

/// ada, not via an agent, in no group: allowed by `ada-reads` alone.
fn ada() -> CallContext {
    let mut c = call();
    c.identity.user = "ada".into();
    c.identity.groups.clear();
    c.provenance.via_agent = false;
    c
}

fn pairs() -> Vec<Pair> {
    let with = |base: fn() -> CallContext, f: fn(&mut CallContext)| {
        let mut c = base();
        f(&mut c);
        c
    };
    let none = |_: &Engine, _: &ManualClock, _: &CallContext| {};
    vec![
        Pair {
            part: Part::Groups,
            first: call(),
            second: with(call, |c| c.identity.groups = vec!["guests".into()]),
            setup: none,
        },
        Pair {
            part: Part::Annotations,
            first: call(),
            second: with(call, |c| c.annotations.read_only_hint = Some(false)),
            setup: none,
        },
        Pair {
            part: Part::User,
            first: ada(),
            second: with(ada, |c| c.identity.user = "carl".into()),
            setup: none,
        },
        Pair {
            part: Part::ViaAgent,
            first: ada(),
            second: with(ada, |c| c.provenance.via_agent = true),
            setup: none,
        },
        Pair {
            part: Part::Args,
            first: call(),
            second: with(call, |c| c.arguments["limit"] = json!(5000)),
            setup: none,
        },
        Pair {
            part: Part::Confirmed,
            first: with(ada, |c| c.arguments["format"] = json!("raw")),
            second: with(ada, |c| {
                c.arguments["format"] = json!("raw");
                c.confirmed = vec!["confirm-raw".into()];
            }),
            setup: none,
        },
        Pair {
            part: Part::Counters,
            first: call(),
            second: call(),
            // Two forwarded calls in a row reach the cap.
            setup: |e, _, c| {
                for _ in 0..2 {
                    let d = e.decide(c);
                    assert!(d.is_allow(), "{:?}", d.outcome);
                    e.record_forwarded(c, &d);
                }
            },
        },
        Pair {
            part: Part::Budgets,
            first: call(),
            second: with(call, |c| c.arguments["cost"] = json!(11)),
            setup: none,
        },
        Pair {
            part: Part::Clock,
            first: call(),
            second: call(),
            // 23:00 UTC: outside the window.
            setup: |_, clock, _| clock.step_wall(13 * 3_600_000),
        },
    ]
}

#[test]
fn each_pair_is_decided_differently_without_a_memo() {
    for p in pairs() {
        let (engine, clock) = engine(MemoMode::Off);
        let first = engine.preview(&p.first.clone());
        (p.setup)(&engine, &clock, &p.first.clone());
        let second = engine.preview(&p.second);
        assert_ne!(
            kind(&first.outcome),
            kind(&second.outcome),
            "{:?}: {:?} / {:?}",
            p.part,
            first.outcome,
            second.outcome
        );
    }
}

#[test]
fn repeated_calls_hit_and_a_call_differing_in_one_input_misses() {
    for p in pairs() {
        let (engine, clock) = engine(MemoMode::Verify);
        let first = p.first.clone();
        let a = engine.preview(&first);
        let again = engine.preview(&first);
        assert_eq!(a.outcome, again.outcome, "{:?}", p.part);
        let hits = engine.memo_stats().hits;
        assert!(hits >= 1, "{:?}: {:?}", p.part, engine.memo_stats());
        (p.setup)(&engine, &clock, &first);
        let b = engine.preview(&p.second);
        assert_ne!(kind(&a.outcome), kind(&b.outcome), "{:?}", p.part);
        let stats = engine.memo_stats();
        assert_eq!(stats.mismatches, 0, "{:?}: {stats:?}", p.part);
    }
}

/// The unit test of the checker itself: with one input left out of the
/// key, the pair's second call hits the first one's answer; Verify counts
/// the mismatch, and On decides the second call as the first (the wrong
/// decision the differential tests would report).
#[test]
fn a_key_missing_any_input_is_caught() {
    for p in pairs() {
        OMIT.with(|o| o.set(Some(p.part)));
        for mode in [MemoMode::Verify, MemoMode::On] {
            let (engine, clock) = engine(mode);
            let first = p.first.clone();
            let a = engine.preview(&first);
            (p.setup)(&engine, &clock, &first);
            let b = engine.preview(&p.second);
            let stats = engine.memo_stats();
            match mode {
                MemoMode::Verify => {
                    assert!(stats.mismatches >= 1, "{:?} not caught: {stats:?}", p.part);
                    assert_ne!(kind(&a.outcome), kind(&b.outcome), "{:?}", p.part);
                }
                _ => assert_eq!(
                    kind(&a.outcome),
                    kind(&b.outcome),
                    "{:?}: the faulty key should have reused the answer",
                    p.part
                ),
            }
        }
        OMIT.with(|o| o.set(None));
    }
}

#[test]
fn counts_below_the_maximum_keep_hitting() {
    let (engine, _) = engine(MemoMode::Verify);
    let c = call();
    let d = engine.decide(&c);
    assert!(d.is_allow());
    engine.record_forwarded(&c, &d);
    let before = engine.memo_stats();
    // Count 1 of 2: still below, the same answer.
    let d = engine.decide(&c);
    assert!(d.is_allow());
    let after = engine.memo_stats();
    assert_eq!(after.hits, before.hits + 1, "{after:?}");
    engine.record_forwarded(&c, &d);
    // Count 2 of 2: crossed, a miss, denied.
    assert!(!engine.decide(&c).is_allow());
    let crossed = engine.memo_stats();
    assert_eq!(crossed.misses, after.misses + 1, "{crossed:?}");
    assert_eq!(crossed.mismatches, 0);
}

#[test]
fn distinct_arguments_do_not_grow_the_memo_past_its_bound() {
    let (eng, _) = engine(MemoMode::On);
    let mut c = call();
    for i in 0..MAX_ENTRIES + 500 {
        // Read by a rule (`args.format`), so each value is a distinct key.
        c.arguments["format"] = json!(format!("f{i}"));
        eng.preview(&c);
    }
    let stats = eng.memo_stats();
    assert!(stats.entries <= MAX_ENTRIES, "{stats:?}");
    assert!(stats.clears >= 1, "{stats:?}");
    // An argument no rule reads is not part of the key: one entry.
    let (eng, _) = engine(MemoMode::On);
    let mut c = call();
    for i in 0..100 {
        c.arguments["unread"] = json!(i);
        eng.preview(&c);
    }
    assert_eq!(eng.memo_stats().entries, 1);
    // A key past the longest kept is not kept.
    c.arguments["format"] = json!("x".repeat(super::key::MAX_KEY_BYTES));
    eng.preview(&c);
    eng.preview(&c);
    let stats = eng.memo_stats();
    assert_eq!(stats.entries, 1, "{stats:?}");
}

#[test]
fn a_policy_swap_drops_the_memo() {
    let (engine, _) = engine(MemoMode::On);
    engine.preview(&call());
    engine.preview(&call());
    assert_eq!(engine.memo_stats().entries, 1);
    let set = engine.policies().compiled().clone();
    engine.swap_policies(PolicyBundle::new(set, "v2".into()));
    assert_eq!(engine.memo_stats(), Default::default());
}
