//! Caps and rates are exact under concurrency (finding 2), a wall-clock
//! step does not reset them (finding 25), a locked state file neither
//! stalls calls that need no counter nor lets a capped call through
//! (finding 26), and client-declared names cannot fill the state table
//! (finding 7). Real threads race real engines, in memory and on SQLite
//! files, one engine or two on one file.

use serde_json::json;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use warden_engine::state::{
    Count, Hold, HoldId, LimitSpec, ManualClock, Reserved, ScopeKey, StateLimits, StateStore,
};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, StateBackend, StateError,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default allow
rate-limit exports {
  tool \"export\"
  max 3 per 1h per user
}
cap-consecutive runs {
  tool \"run\"
  max 3 per user
}
cap-consecutive agent-runs {
  tool \"agent_run\"
  max 3 per agent
}
budget spend {
  tool \"spend\"
  sum args.cost
  max 1 per 1h per user
}
";

fn bundle() -> PolicyBundle {
    let mut s = Sources::new();
    s.add("t.policy", POLICY);
    PolicyBundle::new(
        compile_policy_set(&s).expect("compiles").policy_set,
        "v1".into(),
    )
}

fn engine(state: StateBackend, clock: Arc<ManualClock>, limits: StateLimits) -> Engine {
    Engine::new(
        bundle(),
        EngineOptions {
            clock,
            state,
            state_limits: limits,
            ..EngineOptions::default()
        },
    )
}

fn call(session: &str, user: &str, agent: &str, tool: &str) -> CallContext {
    CallContext {
        identity: Identity {
            user: user.into(),
            agent: Some(agent.into()),
            ..Identity::default()
        },
        session: session.into(),
        server: "lab".into(),
        tool: tool.into(),
        // What a `spend` call asks for; other tools ignore it.
        arguments: json!({"cost": 0.3}),
        ..CallContext::default()
    }
}

/// `threads` callers, each in its own session of user alice, decide at
/// once; every allowed call is "forwarded" slowly (the slot is held while
/// it sleeps, as a slow upstream makes a real forward) and then recorded.
/// Returns how many were allowed.
fn race(engines: &[Arc<Engine>], tool: &str, threads: usize) -> usize {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let e = Arc::clone(&engines[i % engines.len()]);
            let barrier = Arc::clone(&barrier);
            let tool = tool.to_string();
            std::thread::spawn(move || {
                let c = call(&format!("s{i}"), "alice", "claude", &tool);
                barrier.wait();
                let d = e.decide(&c);
                if !d.is_allow() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
                e.record_forwarded(&c, &d);
                true
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .filter(|a| *a)
        .count()
}

fn reason(o: &Outcome) -> &str {
    match o {
        Outcome::Deny(d) => &d.reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn finding_02_parallel_sessions_get_exactly_the_limit_in_memory() {
    for tool in ["export", "run"] {
        let e = Arc::new(engine(
            StateBackend::Memory,
            Arc::new(ManualClock::default()),
            StateLimits::default(),
        ));
        assert_eq!(
            race(std::slice::from_ref(&e), tool, 16),
            3,
            "{tool}: exactly the limit"
        );
        let d = e.decide(&call("late", "alice", "claude", tool));
        assert!(reason(&d.outcome).contains("at most 3"), "{tool}");
        // Another user is not affected.
        assert!(e.decide(&call("b", "bob", "claude", tool)).is_allow());
    }
}

#[test]
fn finding_02_parallel_sessions_get_exactly_the_limit_on_sqlite() {
    for tool in ["export", "run"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let clock = Arc::new(ManualClock::default());
        let open = || {
            Arc::new(engine(
                StateBackend::Sqlite(path.clone()),
                clock.clone(),
                StateLimits::default(),
            ))
        };
        // One engine, then two engines (two warden processes) on one file.
        assert_eq!(race(&[open()], tool, 16), 3, "{tool}: one engine");
        let dir2 = tempfile::tempdir().unwrap();
        let path2 = dir2.path().join("state.db");
        let open2 = || {
            Arc::new(engine(
                StateBackend::Sqlite(path2.clone()),
                clock.clone(),
                StateLimits::default(),
            ))
        };
        assert_eq!(
            race(&[open2(), open2()], tool, 16),
            3,
            "{tool}: two engines"
        );
        let third = open2();
        let d = third.decide(&call("late", "alice", "claude", tool));
        assert!(reason(&d.outcome).contains("at most 3"), "{tool}");
    }
}

/// Budget amounts reserved at once never add up past the budget: 16 calls
/// of 0.3 against 1 per user, in memory, on one SQLite file and with two
/// engines on one file: exactly three go through (0.9), and what they used
/// is what the next denial reports.
#[test]
fn parallel_budget_amounts_never_exceed_the_max() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let memory = Arc::new(engine(
        StateBackend::Memory,
        clock.clone(),
        StateLimits::default(),
    ));
    let path = dir.path().join("one.db");
    let one = Arc::new(engine(
        StateBackend::Sqlite(path),
        clock.clone(),
        StateLimits::default(),
    ));
    let shared = dir.path().join("two.db");
    let open = || {
        Arc::new(engine(
            StateBackend::Sqlite(shared.clone()),
            clock.clone(),
            StateLimits::default(),
        ))
    };
    let two = [open(), open()];
    for (what, engines) in [
        ("memory", vec![memory]),
        ("one engine on SQLite", vec![one]),
        ("two engines on one file", two.to_vec()),
    ] {
        assert_eq!(race(&engines, "spend", 16), 3, "{what}");
        let d = engines[0].decide(&call("late", "alice", "claude", "spend"));
        let why = reason(&d.outcome);
        assert!(why.contains("0.9 used, 0.1 left"), "{what}: {why}");
    }
}

#[test]
fn finding_02_a_decision_dropped_unforwarded_releases_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    for state in [
        StateBackend::Memory,
        StateBackend::Sqlite(dir.path().join("state.db")),
    ] {
        let e = engine(
            state,
            Arc::new(ManualClock::default()),
            StateLimits::default(),
        );
        let held: Vec<_> = (0..3)
            .map(|i| e.decide(&call(&format!("s{i}"), "alice", "claude", "export")))
            .collect();
        assert!(held.iter().all(|d| d.is_allow()));
        // All three slots are held: a fourth call is denied now.
        let c = call("s9", "alice", "claude", "export");
        assert!(!e.decide(&c).is_allow(), "held slots count");
        // One call never reached the upstream: its slot is free again.
        let mut held = held;
        drop(held.pop());
        let d = e.decide(&c);
        assert!(d.is_allow(), "{:?}", d.outcome);
        e.record_forwarded(&c, &d);
        for (i, d) in held.iter().enumerate() {
            e.record_forwarded(&call(&format!("s{i}"), "alice", "claude", "export"), d);
        }
        assert!(!e.decide(&c).is_allow(), "three forwarded, the limit holds");
    }
}

#[test]
fn finding_25_a_wall_clock_step_does_not_empty_windows_or_end_streaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let day = 24 * 3600 * 1000;
    for state in [StateBackend::Memory, StateBackend::Sqlite(path.clone())] {
        let clock = Arc::new(ManualClock::default());
        let e = engine(state.clone(), clock.clone(), StateLimits::default());
        for tool in ["export", "run"] {
            for _ in 0..3 {
                let c = call("s1", "alice", "claude", tool);
                let d = e.decide(&c);
                assert!(d.is_allow(), "{tool}");
                e.record_forwarded(&c, &d);
            }
            // The cap's streak ended when `export` was called: only count
            // the runs from here.
        }
        clock.step_wall(day);
        let c = call("s1", "alice", "claude", "export");
        assert!(
            reason(&e.decide(&c).outcome).contains("at most 3"),
            "a forward step of a day leaves the hour window full"
        );
        let c = call("s1", "alice", "claude", "run");
        assert!(
            reason(&e.decide(&c).outcome).contains("at most 3"),
            "and the streak whole"
        );
        if let StateBackend::Sqlite(_) = state {
            // A restart after the step (same machine boot) still counts.
            drop(e);
            let again = engine(state.clone(), clock.clone(), StateLimits::default());
            let c = call("s2", "alice", "claude", "export");
            assert!(reason(&again.decide(&c).outcome).contains("at most 3"));
        }
    }
    // Real time still frees the window.
    let clock = Arc::new(ManualClock::default());
    let e = engine(
        StateBackend::Sqlite(dir.path().join("b.db")),
        clock.clone(),
        StateLimits::default(),
    );
    for _ in 0..3 {
        let c = call("s1", "alice", "claude", "export");
        let d = e.decide(&c);
        e.record_forwarded(&c, &d);
    }
    clock.advance(Duration::from_secs(3601));
    assert!(
        e.decide(&call("s1", "alice", "claude", "export"))
            .is_allow()
    );
}

/// A store that is "locked": every read or write blocks (as a SQLite
/// file another program holds would), except a write that may be refused
/// at once, which is refused.
#[derive(Debug)]
struct Locked;

impl StateStore for Locked {
    fn count(
        &self,
        _: &str,
        _: &LimitSpec,
        _: &ScopeKey,
        _: &str,
        _: u64,
    ) -> Result<Option<Count>, StateError> {
        std::thread::park();
        unreachable!("a locked store never answers")
    }
    fn reserve(&self, _: &Hold) -> Result<Reserved, StateError> {
        std::thread::park();
        unreachable!("a locked store never answers")
    }
    fn commit(&self, _: HoldId, _: &Hold) -> Result<(), StateError> {
        std::thread::park();
        unreachable!("a locked store never answers")
    }
    fn release(&self, _: HoldId, _: &Hold) -> Result<(), StateError> {
        std::thread::park();
        unreachable!("a locked store never answers")
    }
    fn end_streaks(&self, _: &[ScopeKey], wait: bool) -> Result<(), StateError> {
        if wait {
            std::thread::park();
        }
        Err(StateError::Busy)
    }
}

#[test]
fn finding_26_a_locked_store_does_not_stall_calls_that_need_no_counter() {
    let e = Arc::new(engine(
        StateBackend::Store(Arc::new(Locked)),
        Arc::new(ManualClock::default()),
        StateLimits::default(),
    ));
    let (tx, rx) = mpsc::channel();
    let worker = Arc::clone(&e);
    std::thread::spawn(move || {
        for i in 0..10 {
            let c = call(&format!("s{i}"), "alice", "claude", "list");
            let d = worker.decide(&c);
            worker.record_forwarded(&c, &d);
            tx.send(d.is_allow()).unwrap();
        }
    });
    for _ in 0..10 {
        let allowed = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an uncapped call never waits on the store's lock");
        assert!(allowed);
    }
}

fn lock_file(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("BEGIN IMMEDIATE; DELETE FROM streaks WHERE 0;")
        .unwrap();
    c
}

#[test]
fn finding_26_a_capped_call_on_a_locked_sqlite_file_is_denied_with_the_true_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::default());
    let e = engine(
        StateBackend::Sqlite(path.clone()),
        clock,
        StateLimits::default(),
    );
    // A run starts a streak; the lock is then taken by another program.
    let c = call("s1", "alice", "claude", "run");
    let d = e.decide(&c);
    e.record_forwarded(&c, &d);
    let holder = lock_file(&path);

    // An uncapped call is allowed; its end of the streak waits for the lock.
    let list = call("s1", "alice", "claude", "list");
    let d = e.decide(&list);
    assert!(d.is_allow());
    e.record_forwarded(&list, &d);

    // A capped call cannot take its slot: denied, saying why.
    let d = e.decide(&call("s1", "alice", "claude", "export"));
    let why = reason(&d.outcome);
    assert!(why.contains("state store unavailable"), "{why}");
    assert!(why.contains("locked"), "{why}");

    // Once the lock is gone, the kept end of the streak is applied first:
    // three more runs are allowed, not two.
    drop(holder);
    for i in 0..3 {
        let c = call("s1", "alice", "claude", "run");
        let d = e.decide(&c);
        assert!(d.is_allow(), "run {i}: {:?}", d.outcome);
        e.record_forwarded(&c, &d);
    }
    assert!(!e.decide(&call("s1", "alice", "claude", "run")).is_allow());
}

#[test]
fn finding_07_declared_names_cannot_fill_the_table_and_warden_says_it_is_its_own_limit() {
    let limits = StateLimits {
        max_keys: 400,
        max_keys_per_user: 100,
        ..StateLimits::default()
    };
    let e = engine(
        StateBackend::Memory,
        Arc::new(ManualClock::default()),
        limits,
    );
    // A flood of uncapped calls, each with a new agent name, takes no room.
    for i in 0..5000 {
        let c = call(&format!("s{i}"), "mallory", &format!("agent-{i}"), "list");
        let d = e.decide(&c);
        e.record_forwarded(&c, &d);
    }
    // Capped calls under new agent names: one user holds at most 100.
    let mut refused = None;
    for i in 0..150 {
        let c = call(
            &format!("m{i}"),
            "mallory",
            &format!("agent-{i}"),
            "agent_run",
        );
        let d = e.decide(&c);
        if !d.is_allow() {
            refused = Some(d);
            break;
        }
        e.record_forwarded(&c, &d);
    }
    let refused = refused.expect("the per-user bound refuses at some point");
    let why = reason(&refused.outcome);
    assert!(why.contains("warden's own bound"), "{why}");
    assert!(why.contains("no policy rule's limit was reached"), "{why}");
    assert!(!why.contains("at most 3"), "not the rule's cap: {why}");

    // Another user's first capped call is still allowed.
    let d = e.decide(&call("fresh", "alice", "claude", "agent_run"));
    assert!(d.is_allow(), "{:?}", d.outcome);
}

#[test]
fn finding_02_a_preview_holds_no_slot() {
    let e = engine(
        StateBackend::Memory,
        Arc::new(ManualClock::default()),
        StateLimits::default(),
    );
    let c = call("s1", "alice", "claude", "export");
    // A tools/list view probes the tool, again and again, as a preview.
    let previews: Vec<_> = (0..5).map(|_| e.preview(&c)).collect();
    assert!(previews.iter().all(|d| d.is_allow()));
    for _ in 0..3 {
        let d = e.decide(&c);
        assert!(d.is_allow(), "{:?}", d.outcome);
        e.record_forwarded(&c, &d);
    }
    assert!(!e.decide(&c).is_allow());
}
