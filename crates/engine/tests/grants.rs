//! Grants and pending approvals in each state store (memory, a SQLite
//! file, a real Redis): the last use of a counted grant is taken once when
//! calls race for it, a grant ends at its expiry, a replaced grant is the
//! new one, and a key no grant has is no grant; an approval is decided
//! once when decisions race, keeps its record and decision, and ends at
//! its expiry.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Barrier};
use std::time::Duration;
use warden_engine::memory::CallState;
use warden_engine::state::{ManualClock, StateLimits};
use warden_engine::{RedisOptions, RedisState, RedisTime, SqliteState, StateStore};

/// 16 threads race for the uses of a grant of `uses` uses: exactly that
/// many get it.
fn race(store: Arc<dyn StateStore>, key: &str, uses: u64) -> usize {
    store
        .put_grant(key, "grant-race", Duration::from_secs(60), Some(uses))
        .unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.to_string());
            std::thread::spawn(move || {
                barrier.wait();
                store.use_grant(&key).unwrap().is_some()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|got| *got)
        .count()
}

/// What every store must do, with `clock` timing it (`None`: Redis's own
/// clock, moved by waiting).
fn behaves(store: Arc<dyn StateStore>, clock: Option<&ManualClock>) {
    assert_eq!(race(Arc::clone(&store), "k-one", 1), 1, "the last use once");
    assert_eq!(race(Arc::clone(&store), "k-three", 3), 3);
    assert_eq!(store.use_grant("k-three").unwrap(), None, "spent");
    assert_eq!(store.use_grant("never-granted").unwrap(), None);

    // Uncounted: any number of uses until it expires.
    store
        .put_grant("k-time", "grant-a", Duration::from_millis(300), None)
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            store.use_grant("k-time").unwrap().as_deref(),
            Some("grant-a")
        );
    }
    // Replaced: the new id.
    store
        .put_grant("k-time", "grant-b", Duration::from_millis(300), None)
        .unwrap();
    assert_eq!(
        store.use_grant("k-time").unwrap().as_deref(),
        Some("grant-b")
    );
    match clock {
        Some(c) => c.advance(Duration::from_millis(301)),
        None => std::thread::sleep(Duration::from_millis(400)),
    }
    assert_eq!(store.use_grant("k-time").unwrap(), None, "expired");

    // Approvals: decided once across racing deciders.
    store
        .put_approval("ap-1", r#"{"call":1}"#, Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        store.get_approval("ap-1").unwrap(),
        Some((r#"{"call":1}"#.to_string(), None))
    );
    let barrier = Arc::new(Barrier::new(8));
    let decided = (0..8)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store.decide_approval("ap-1", &format!("d{i}")).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(decided, 1, "one decision");
    let (_, decision) = store.get_approval("ap-1").unwrap().unwrap();
    assert!(decision.is_some_and(|d| d.starts_with('d')));
    assert!(!store.decide_approval("never-opened", "d").unwrap());
    assert_eq!(store.get_approval("never-opened").unwrap(), None);
    store
        .put_approval("ap-2", "{}", Duration::from_millis(300))
        .unwrap();
    match clock {
        Some(c) => c.advance(Duration::from_millis(301)),
        None => std::thread::sleep(Duration::from_millis(400)),
    }
    assert_eq!(store.get_approval("ap-2").unwrap(), None, "expired");
    assert!(!store.decide_approval("ap-2", "d").unwrap(), "too late");
}

#[test]
fn grants_in_memory() {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(CallState::new(StateLimits::default(), clock.clone()));
    behaves(store, Some(&clock));
}

#[test]
fn grants_in_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(
        SqliteState::open(
            &dir.path().join("s.sqlite"),
            StateLimits::default(),
            clock.clone(),
        )
        .unwrap(),
    );
    behaves(store, Some(&clock));
}

#[test]
fn grants_in_redis() {
    let server = redis_server::RedisServer::start();
    let options = RedisOptions {
        time: RedisTime::Server,
        ..RedisOptions::default()
    };
    let store = Arc::new(RedisState::open(&server.url(), StateLimits::default(), options).unwrap());
    behaves(store, None);
}
