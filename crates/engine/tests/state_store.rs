//! Cap and rate state in a SQLite file: it survives a restart (the engine
//! dropped and rebuilt on the same file), is shared by two engines on one
//! file (two warden processes), and fails closed when the file cannot be
//! read or written. The store contract (`mod contract`) is checked on
//! memory, SQLite and a real Redis.

#[path = "support/redis_server.rs"]
mod redis_server;

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use warden_engine::state::{
    Count, Hold, HoldId, LimitSpec, ManualClock, Reserved, ScopeKey, StateLimits, StateStore,
};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Retry, SqliteState,
    StateBackend, StateError,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default allow
cap-consecutive runs {
  tool \"run\"
  max 2 per user
}
rate-limit exports {
  tool \"export\"
  max 2 per 1h per agent
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

fn engine_with(state: StateBackend, clock: Arc<ManualClock>) -> Engine {
    Engine::new(
        bundle(),
        EngineOptions {
            clock,
            state,
            ..EngineOptions::default()
        },
    )
}

fn engine_on(path: &Path, clock: Arc<ManualClock>) -> Engine {
    engine_with(StateBackend::Sqlite(path.to_path_buf()), clock)
}

fn call_in(session: &str, tool: &str) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: session.into(),
        server: "lab".into(),
        tool: tool.into(),
        arguments: json!({}),
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

fn allowed(o: &Outcome) -> bool {
    matches!(o, Outcome::Allow { .. })
}

fn denial_reason(o: Outcome) -> String {
    match o {
        Outcome::Deny(d) => d.reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn a_cap_per_user_survives_a_restart_and_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::default());
    let e = engine_on(&path, clock.clone());
    assert!(allowed(&call(&e, &call_in("s1", "run"))));
    assert!(allowed(&call(&e, &call_in("s1", "run"))));
    assert!(!allowed(&call(&e, &call_in("s1", "run"))), "cap reached");
    drop(e);

    let e = engine_on(&path, clock.clone());
    let reason = denial_reason(call(&e, &call_in("s1", "run")));
    assert!(reason.contains("at most 2"), "{reason}");
    // A re-initialized session is a new session id, but the same user.
    assert!(!allowed(&call(&e, &call_in("s2", "run"))));
    // Memory state, by contrast, starts from zero after a restart.
    let fresh = engine_with(StateBackend::Memory, clock);
    assert!(allowed(&call(&fresh, &call_in("s1", "run"))));
}

#[test]
fn a_rate_window_survives_a_restart_and_still_slides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::default());
    let e = engine_on(&path, clock.clone());
    assert!(allowed(&call(&e, &call_in("s1", "export"))));
    clock.advance(Duration::from_secs(600));
    assert!(allowed(&call(&e, &call_in("s1", "export"))));
    drop(e);

    let e = engine_on(&path, clock.clone());
    let Outcome::Deny(d) = call(&e, &call_in("s2", "export")) else {
        panic!("third export in an hour, after a restart")
    };
    assert_eq!(d.retry, Retry::AfterSeconds { seconds: 3000 });
    clock.advance(Duration::from_secs(3000));
    assert!(allowed(&call(&e, &call_in("s2", "export"))));
}

#[test]
fn a_streak_ended_by_another_tool_stays_ended_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::default());
    let e = engine_on(&path, clock.clone());
    call(&e, &call_in("s1", "run"));
    call(&e, &call_in("s1", "run"));
    assert!(
        allowed(&call(&e, &call_in("s1", "list"))),
        "ends the streak"
    );
    drop(e);

    let e = engine_on(&path, clock.clone());
    assert!(allowed(&call(&e, &call_in("s1", "run"))));
    assert!(allowed(&call(&e, &call_in("s1", "run"))));
    assert!(!allowed(&call(&e, &call_in("s1", "run"))));
}

#[test]
fn two_engines_on_one_file_see_each_others_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::default());
    let a = engine_on(&path, clock.clone());
    let b = engine_on(&path, clock.clone());
    assert!(allowed(&call(&a, &call_in("s1", "run"))));
    assert!(allowed(&call(&b, &call_in("s2", "run"))));
    assert!(!allowed(&call(&a, &call_in("s1", "run"))));
    assert!(!allowed(&call(&b, &call_in("s2", "run"))));
    // B ends the streak; A sees it ended.
    assert!(allowed(&call(&b, &call_in("s2", "list"))));
    assert!(allowed(&call(&a, &call_in("s1", "run"))));
}

/// The unreadable store denies calls a cap or rate counts, with the
/// store's reason, and allows calls that need no counter.
fn assert_fails_closed(e: &Engine, what: &str) {
    for tool in ["run", "export"] {
        let Outcome::Deny(d) = call(e, &call_in("s1", tool)) else {
            panic!("{what}: `{tool}` needs a counter and must be denied")
        };
        assert!(
            d.reason.contains("state store unavailable: "),
            "{what}: {}",
            d.reason
        );
        assert_eq!(d.retry, Retry::Never, "{what}");
        assert_eq!(d.rules.len(), 1, "{what}: the rule that needed the counter");
    }
    assert!(
        allowed(&call(e, &call_in("s1", "list"))),
        "{what}: a call no cap or rate counts is allowed"
    );
}

#[test]
fn an_unreadable_store_denies_calls_that_need_counters_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());

    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(
        &not_sqlite,
        "these are not the counts you are looking for\n".repeat(100),
    )
    .unwrap();
    let e = engine_on(&not_sqlite, clock.clone());
    assert_fails_closed(&e, "a file that is not SQLite");
    let reason = denial_reason(call(&e, &call_in("s1", "run")));
    assert!(reason.contains("not a database"), "{reason}");

    assert_fails_closed(&engine_on(dir.path(), clock.clone()), "a directory");
    assert_fails_closed(
        &engine_on(&dir.path().join("missing/state.db"), clock.clone()),
        "a missing directory",
    );

    // A read-only location: the file opened read-only (SQLite URI), as a
    // read-only mount would. Root ignores file modes, so they cannot show it.
    let path = dir.path().join("state.db");
    let writer = engine_on(&path, clock.clone());
    call(&writer, &call_in("s1", "run"));
    let ro = format!("file:{}?mode=ro", path.display());
    assert_fails_closed(&engine_on(Path::new(&ro), clock.clone()), "read-only");

    // Opening up front reports the problem with help.
    let e = SqliteState::open(&not_sqlite, StateLimits::default(), clock).unwrap_err();
    assert!(matches!(e, StateError::Open { .. }), "{e:?}");
}

/// A SQLite store whose writes can be made to fail.
#[derive(Debug)]
struct Flaky {
    inner: SqliteState,
    writes_fail: AtomicBool,
}

impl StateStore for Flaky {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<Count>, StateError> {
        self.inner.count(rule, spec, key, split, need)
    }
    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        self.inner.reserve(hold)
    }
    fn commit(&self, id: HoldId, hold: &Hold) -> Result<(), StateError> {
        self.fail()?;
        self.inner.commit(id, hold)
    }
    fn release(&self, id: HoldId, hold: &Hold) -> Result<(), StateError> {
        self.fail()?;
        self.inner.release(id, hold)
    }
    fn end_streaks(&self, keys: &[ScopeKey], wait: bool) -> Result<(), StateError> {
        self.fail()?;
        self.inner.end_streaks(keys, wait)
    }
}

impl Flaky {
    fn fail(&self) -> Result<(), StateError> {
        if self.writes_fail.load(Ordering::SeqCst) {
            return Err(StateError::Store("disk I/O error".into()));
        }
        Ok(())
    }
}

#[test]
fn a_failed_write_denies_the_next_counted_call_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(Flaky {
        inner: SqliteState::open(
            &dir.path().join("state.db"),
            StateLimits::default(),
            clock.clone(),
        )
        .unwrap(),
        writes_fail: AtomicBool::new(false),
    });
    let e = engine_with(StateBackend::Store(store.clone()), clock);
    assert!(allowed(&call(&e, &call_in("s1", "run"))));

    store.writes_fail.store(true, Ordering::SeqCst);
    let c = call_in("s1", "run");
    let d = e.decide(&c);
    assert!(d.is_allow(), "the second run is within the cap");
    let err = e.try_record_forwarded(&c, &d).unwrap_err();
    assert!(err.to_string().contains("disk I/O error"), "{err}");

    // The count is unknown: the next counted call in that scope is denied,
    // a call nothing counts is not.
    let reason = denial_reason(call(&e, &call_in("s1", "run")));
    assert!(
        reason.contains("state store unavailable: an earlier forwarded call"),
        "{reason}"
    );
    assert!(reason.contains("disk I/O error"), "{reason}");
    assert!(allowed(&e.decide(&call_in("s1", "list")).outcome));

    // Once the store can be written, the kept call is recorded: the
    // streak is 2 and the cap holds.
    store.writes_fail.store(false, Ordering::SeqCst);
    let reason = denial_reason(call(&e, &call_in("s1", "run")));
    assert!(reason.contains("at most 2"), "{reason}");
}

/// The store contract both stores keep, called directly (the engine's
/// evaluation in front of `reserve` would hide a store that does not
/// check): `reserve` takes every slot if each fits `used + weight <= max`,
/// and none otherwise; held weights count; releasing frees them; a cap's
/// streak is per row and split value.
mod contract {
    use super::*;
    use warden_engine::state::{Counted, SystemClock};
    use warden_lang::ast::{Scope, ScopeSet};

    /// What keeps a store alive: its file's directory, its server.
    type Guard = Box<dyn std::any::Any>;

    /// Each store, with what keeps it alive (its file's directory, its
    /// server).
    fn stores() -> Vec<(&'static str, Box<dyn StateStore>, Guard)> {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(SystemClock);
        let sqlite = SqliteState::open(
            &dir.path().join("c.db"),
            StateLimits::default(),
            clock.clone(),
        )
        .unwrap();
        let server = super::redis_server::RedisServer::start();
        let redis = warden_engine::RedisState::open(
            &server.url(),
            StateLimits::default(),
            Default::default(),
        )
        .unwrap();
        vec![
            (
                "memory",
                Box::new(warden_engine::state::CallState::new(
                    StateLimits::default(),
                    clock,
                )),
                Box::new(()),
            ),
            ("sqlite", Box::new(sqlite), Box::new(dir)),
            ("redis", Box::new(redis), Box::new(server)),
        ]
    }

    fn user_row() -> ScopeKey {
        ScopeKey {
            row: ScopeSet::single(Scope::User),
            value: "alice".into(),
        }
    }

    fn budget() -> LimitSpec {
        LimitSpec {
            max: 10_000,
            window: Some(Duration::from_secs(3600)),
            scope: ScopeSet::single(Scope::User),
            summed: true,
        }
    }

    fn rate() -> LimitSpec {
        LimitSpec {
            max: 1,
            summed: false,
            ..budget()
        }
    }

    fn cap() -> LimitSpec {
        LimitSpec {
            max: 2,
            window: None,
            scope: [Scope::User, Scope::Tool].into_iter().collect(),
            summed: false,
        }
    }

    fn hold(matched: &[(&str, LimitSpec, &str, u64)]) -> Hold {
        Hold {
            user: "alice".into(),
            keys: vec![user_row()],
            matched: matched
                .iter()
                .map(|(rule, spec, split, weight)| Counted {
                    rule: rule.to_string(),
                    spec: *spec,
                    split: split.to_string(),
                    weight: *weight,
                })
                .collect(),
            confirmed: false,
            unchecked: Vec::new(),
        }
    }

    fn used(s: &dyn StateStore, rule: &str, spec: &LimitSpec, split: &str) -> u64 {
        s.count(rule, spec, &user_row(), split, 0)
            .unwrap()
            .unwrap()
            .count
    }

    fn held(s: &dyn StateStore, h: &Hold) -> HoldId {
        match s.reserve(h).unwrap() {
            Reserved::Held(id) => id,
            other => panic!("not held: {other:?}"),
        }
    }

    #[test]
    fn reserve_checks_the_weight_and_takes_all_slots_or_none() {
        for (kind, s, _dir) in stores() {
            let s = &*s;
            let h = hold(&[("b", budget(), "", 3_000)]);
            let ids: Vec<HoldId> = (0..3).map(|_| held(s, &h)).collect();
            assert_eq!(used(s, "b", &budget(), ""), 9_000, "{kind}: held counts");
            assert_eq!(
                s.reserve(&h).unwrap(),
                Reserved::Full { rule: "b".into() },
                "{kind}: 9000 + 3000 > 10000"
            );
            // 1000 still fits exactly.
            let last = held(s, &hold(&[("b", budget(), "", 1_000)]));
            s.release(last, &hold(&[("b", budget(), "", 1_000)]))
                .unwrap();
            s.release(ids[0], &h).unwrap();
            assert_eq!(used(s, "b", &budget(), ""), 6_000, "{kind}: released");
            s.commit(ids[1], &h).unwrap();
            assert_eq!(used(s, "b", &budget(), ""), 6_000, "{kind}: committed");

            // All or none: the rate is full after one call, so a hold of
            // both takes neither.
            let both = hold(&[("b", budget(), "", 1_000), ("r", rate(), "", 1)]);
            let first = held(s, &both);
            s.commit(first, &both).unwrap();
            assert_eq!(
                s.reserve(&both).unwrap(),
                Reserved::Full { rule: "r".into() },
                "{kind}"
            );
            assert_eq!(
                used(s, "b", &budget(), ""),
                7_000,
                "{kind}: no budget taken"
            );
        }
    }

    #[test]
    fn a_cap_streak_is_per_row_and_split_value() {
        for (kind, s, _dir) in stores() {
            let s = &*s;
            let forward = |tool: &str| {
                let h = hold(&[("c", cap(), tool, 1)]);
                let id = held(s, &h);
                s.commit(id, &h).unwrap();
            };
            forward("a");
            forward("a");
            assert_eq!(used(s, "c", &cap(), "a"), 2, "{kind}");
            assert_eq!(used(s, "c", &cap(), "b"), 0, "{kind}: another split value");
            assert!(matches!(
                s.reserve(&hold(&[("c", cap(), "a", 1)])).unwrap(),
                Reserved::Full { .. }
            ));
            forward("b");
            assert_eq!(
                used(s, "c", &cap(), "a"),
                0,
                "{kind}: b restarted the streak"
            );
            assert_eq!(used(s, "c", &cap(), "b"), 1, "{kind}");
            s.end_streaks(&[user_row()], true).unwrap();
            assert_eq!(used(s, "c", &cap(), "b"), 0, "{kind}: ended");
        }
    }

    #[test]
    fn a_mark_is_used_once_until_it_expires() {
        for (kind, s, _guard) in stores() {
            let ttl = Duration::from_millis(200);
            assert!(s.use_once("confirm:1", ttl).unwrap(), "{kind}: first use");
            assert!(!s.use_once("confirm:1", ttl).unwrap(), "{kind}: second use");
            assert!(
                s.use_once("confirm:2", ttl).unwrap(),
                "{kind}: another mark"
            );
            std::thread::sleep(Duration::from_millis(400));
            assert!(s.use_once("confirm:1", ttl).unwrap(), "{kind}: expired");
        }
    }
}
