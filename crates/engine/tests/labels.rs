//! Session labels in each state store (memory, a SQLite file, a real
//! Redis) and through the engine: a label is on its session only, ends
//! at its expiry, set again lasts until the later end; an allowed call
//! matching a `label` rule labels its session before it goes out, a later
//! call reads it, a reload keeps it, and a store that cannot read or
//! write labels refuses the calls that need them (fail closed) and no
//! others.

#[path = "support/redis_server.rs"]
mod redis_server;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use warden_engine::memory::CallState;
use warden_engine::state::{ManualClock, StateBackend, StateError, StateLimits};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance, RedisOptions,
    RedisState, RedisTime, SqliteState, StateStore, ToolAnnotations,
};
use warden_lang::{Sources, compile_policy_set};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What every store must do, with `clock` timing it (`None`: Redis's own
/// clock, moved by waiting).
fn behaves(store: Arc<dyn StateStore>, clock: Option<&ManualClock>) {
    let wait = |ms: u64| match clock {
        Some(c) => c.advance(Duration::from_millis(ms)),
        None => std::thread::sleep(Duration::from_millis(ms)),
    };
    let asked = names(&["read-private", "saw-untrusted", "never-set"]);
    assert_eq!(
        store.session_labels("s1", &asked).unwrap(),
        Vec::<String>::new()
    );
    store
        .add_session_labels(
            "s1",
            &[
                ("read-private".into(), Duration::from_millis(600)),
                ("saw-untrusted".into(), Duration::from_millis(200)),
            ],
        )
        .unwrap();
    assert_eq!(
        store.session_labels("s1", &asked).unwrap(),
        names(&["read-private", "saw-untrusted"])
    );
    assert!(
        store.session_labels("s2", &asked).unwrap().is_empty(),
        "another session has none"
    );
    assert!(store.session_labels("s1", &[]).unwrap().is_empty());
    // A shorter life set again does not shorten it.
    store
        .add_session_labels("s1", &[("read-private".into(), Duration::from_millis(50))])
        .unwrap();
    wait(300);
    assert_eq!(
        store.session_labels("s1", &asked).unwrap(),
        names(&["read-private"]),
        "saw-untrusted ended"
    );
    // Set again with a longer life: it lasts until the later end.
    store
        .add_session_labels("s1", &[("read-private".into(), Duration::from_millis(900))])
        .unwrap();
    wait(500);
    assert_eq!(
        store.session_labels("s1", &asked).unwrap(),
        names(&["read-private"]),
        "renewed past its first end"
    );
    wait(500);
    assert!(
        store.session_labels("s1", &asked).unwrap().is_empty(),
        "ended"
    );
}

#[test]
fn labels_in_memory() {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(CallState::new(StateLimits::default(), clock.clone()));
    behaves(store, Some(&clock));
}

#[test]
fn labels_in_a_sqlite_file_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(SqliteState::open(&path, StateLimits::default(), clock.clone()).unwrap());
    behaves(store.clone(), Some(&clock));
    store
        .add_session_labels("s9", &[("read-private".into(), Duration::from_secs(60))])
        .unwrap();
    drop(store);
    let again = SqliteState::open(&path, StateLimits::default(), clock).unwrap();
    assert_eq!(
        again
            .session_labels("s9", &names(&["read-private"]))
            .unwrap(),
        names(&["read-private"])
    );
}

#[test]
fn labels_in_redis() {
    let server = redis_server::RedisServer::start();
    let options = RedisOptions {
        time: RedisTime::Server,
        ..RedisOptions::default()
    };
    let store = Arc::new(RedisState::open(&server.url(), StateLimits::default(), options).unwrap());
    behaves(store.clone(), None);
    // A second client of the same server (another replica) reads them.
    store
        .add_session_labels("s7", &[("read-private".into(), Duration::from_secs(60))])
        .unwrap();
    let replica = RedisState::open(
        &server.url(),
        StateLimits::default(),
        RedisOptions::default(),
    )
    .unwrap();
    assert_eq!(
        replica
            .session_labels("s7", &names(&["read-private"]))
            .unwrap(),
        names(&["read-private"])
    );
}

const POLICY: &str = r#"default allow

label read-private {
  tool ["get_sample", "read_results"]
}

label saw-untrusted {
  when tool.open_world
  for 10m
}

deny exfiltration {
  when session has label read-private and tool.open_world
  reason "this session read private data"
}
"#;

fn bundle(text: &str) -> PolicyBundle {
    let mut s = Sources::new();
    s.add("t.policy", text);
    PolicyBundle::new(
        compile_policy_set(&s).expect("compiles").policy_set,
        "v1".into(),
    )
}

fn engine_on(state: StateBackend, clock: Arc<ManualClock>) -> Engine {
    Engine::new(
        bundle(POLICY),
        EngineOptions {
            clock,
            state,
            ..EngineOptions::default()
        },
    )
}

fn call(session: &str, tool: &str, open_world: bool) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            ..Identity::default()
        },
        session: session.into(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("genomics".into()),
        },
        server: "genomics".into(),
        tool: tool.into(),
        annotations: ToolAnnotations {
            read_only_hint: Some(true),
            open_world_hint: Some(open_world),
            ..ToolAnnotations::default()
        },
        arguments: json!({"sample_id": "S-1"}),
        ..CallContext::default()
    }
}

fn go(e: &Engine, c: &CallContext) -> warden_engine::Decided {
    let d = e.decide(c);
    if d.is_allow() {
        e.record_forwarded(c, &d);
    }
    d
}

fn reason(d: &warden_engine::Decided) -> String {
    match &d.outcome {
        Outcome::Deny(denial) => denial.reason.clone(),
        other => panic!("not denied: {other:?}"),
    }
}

#[test]
fn a_session_that_read_a_private_sample_is_refused_an_open_world_tool_and_a_fresh_one_is_not() {
    let clock = Arc::new(ManualClock::default());
    let e = engine_on(StateBackend::Memory, clock.clone());
    assert!(
        go(&e, &call("s1", "fetch_url", true)).is_allow(),
        "nothing read yet"
    );
    let read = go(&e, &call("s1", "get_sample", false));
    assert!(read.is_allow());
    assert_eq!(
        read.labels,
        names(&["read-private"]),
        "the decision names it"
    );
    let refused = go(&e, &call("s1", "fetch_url", true));
    assert!(reason(&refused).contains("this session read private data"));
    assert!(
        go(&e, &call("s2", "fetch_url", true)).is_allow(),
        "a fresh session"
    );
    assert!(
        go(&e, &call("s1", "list_samples", false)).is_allow(),
        "closed-world tools stay open"
    );
    // A preview (a `tools/list` probe) labels nothing.
    let peek = e.preview(&call("s3", "get_sample", false));
    assert!(peek.is_allow() && peek.labels.is_empty());
    assert!(go(&e, &call("s3", "fetch_url", true)).is_allow());
    // The session's label lasts (`for session`) long after.
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(!go(&e, &call("s1", "fetch_url", true)).is_allow());
}

#[test]
fn labels_survive_a_reload_and_end_at_their_own_life() {
    let clock = Arc::new(ManualClock::default());
    let e = engine_on(StateBackend::Memory, clock.clone());
    go(&e, &call("s1", "get_sample", false));
    e.swap_policies(bundle(&format!("{POLICY}\n# reloaded\n")));
    assert!(
        !go(&e, &call("s1", "fetch_url", true)).is_allow(),
        "kept across the swap"
    );

    // `saw-untrusted` lasts 10 minutes after the call that set it.
    let reading = "default allow\nlabel saw-untrusted {\n  when tool.open_world\n  for 10m\n}\ndeny x {\n  tool \"write_*\"\n  when session has label saw-untrusted\n}\n";
    let e = Engine::new(
        bundle(reading),
        EngineOptions {
            clock: clock.clone(),
            ..EngineOptions::default()
        },
    );
    assert!(go(&e, &call("s1", "write_note", false)).is_allow());
    assert_eq!(
        go(&e, &call("s1", "fetch_url", true)).labels,
        names(&["saw-untrusted"])
    );
    assert!(!go(&e, &call("s1", "write_note", false)).is_allow());
    clock.advance(Duration::from_secs(601));
    assert!(go(&e, &call("s1", "write_note", false)).is_allow(), "ended");
}

/// A store that keeps everything but labels.
#[derive(Debug)]
struct NoLabels(CallState);

impl StateStore for NoLabels {
    fn count(
        &self,
        rule: &str,
        spec: &warden_engine::state::LimitSpec,
        key: &warden_engine::state::ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<warden_engine::state::Count>, StateError> {
        self.0.count(rule, spec, key, split, need)
    }
    fn reserve(
        &self,
        hold: &warden_engine::state::Hold,
    ) -> Result<warden_engine::state::Reserved, StateError> {
        self.0.reserve(hold)
    }
    fn commit(
        &self,
        id: warden_engine::state::HoldId,
        hold: &warden_engine::state::Hold,
    ) -> Result<(), StateError> {
        self.0.commit(id, hold)
    }
    fn release(
        &self,
        id: warden_engine::state::HoldId,
        hold: &warden_engine::state::Hold,
    ) -> Result<(), StateError> {
        self.0.release(id, hold)
    }
    fn end_streaks(
        &self,
        keys: &[warden_engine::state::ScopeKey],
        wait: bool,
    ) -> Result<(), StateError> {
        self.0.end_streaks(keys, wait)
    }
}

#[test]
fn a_store_without_labels_refuses_the_calls_that_need_them_and_no_others() {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(NoLabels(CallState::new(
        StateLimits::default(),
        clock.clone(),
    )));
    let scoped = "default allow\nlabel read-private {\n  tool \"get_sample\"\n}\ndeny exfiltration {\n  tool \"fetch_url\"\n  when session has label read-private\n}\n";
    let e = Engine::new(
        bundle(scoped),
        EngineOptions {
            clock,
            state: StateBackend::Store(store),
            ..EngineOptions::default()
        },
    );
    // Would set a label: refused, saying why.
    let d = go(&e, &call("s1", "get_sample", false));
    let why = reason(&d);
    assert!(
        why.contains("state store unavailable") && why.contains("labels could not be written"),
        "{why}"
    );
    // Reads a label: refused.
    let why = reason(&go(&e, &call("s1", "fetch_url", true)));
    assert!(why.contains("labels could not be read"), "{why}");
    // Neither sets nor reads one: goes through.
    assert!(go(&e, &call("s1", "list_samples", false)).is_allow());
}
