//! Tool pins in each state store (memory, a SQLite file, a real Redis):
//! the first definition seen is pinned, the same one stays, a different
//! one is kept pending (the latest) until approved, and then is the pin;
//! replicas sharing a store see one pin when they race to pin a tool.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Barrier};
use warden_engine::memory::CallState;
use warden_engine::pins::PinCheck;
use warden_engine::state::{ManualClock, StateLimits};
use warden_engine::{RedisOptions, RedisState, SqliteState, StateStore};

fn behaves(store: Arc<dyn StateStore>) {
    assert_eq!(
        store.check_pin("g", "t", "sha256:a", "{\"a\":1}").unwrap(),
        PinCheck::New
    );
    assert_eq!(
        store.check_pin("g", "t", "sha256:a", "{\"a\":1}").unwrap(),
        PinCheck::Same
    );
    assert_eq!(
        store.check_pin("other", "t", "sha256:b", "{}").unwrap(),
        PinCheck::New,
        "per server"
    );
    assert_eq!(
        store.check_pin("g", "t", "sha256:b", "{\"b\":1}").unwrap(),
        PinCheck::Changed {
            pinned: "sha256:a".into()
        }
    );
    assert_eq!(
        store.check_pin("g", "t", "sha256:c", "{\"c\":1}").unwrap(),
        PinCheck::Changed {
            pinned: "sha256:a".into()
        },
        "still the first pin"
    );
    let pins = store.pins().unwrap();
    let t = pins
        .iter()
        .find(|p| p.server == "g" && p.tool == "t")
        .unwrap();
    assert_eq!(t.digest, "sha256:a");
    assert_eq!(t.definition, "{\"a\":1}");
    let pending = t.pending.as_ref().unwrap();
    assert_eq!(
        (pending.digest.as_str(), pending.definition.as_str()),
        ("sha256:c", "{\"c\":1}"),
        "the latest"
    );
    assert!(store.approve_pin("g", "t").unwrap());
    assert!(
        !store.approve_pin("g", "t").unwrap(),
        "nothing pending any more"
    );
    assert!(!store.approve_pin("g", "never-seen").unwrap());
    assert_eq!(
        store.check_pin("g", "t", "sha256:c", "{\"c\":1}").unwrap(),
        PinCheck::Same
    );
    assert_eq!(
        store.check_pin("g", "t", "sha256:a", "{\"a\":1}").unwrap(),
        PinCheck::Changed {
            pinned: "sha256:c".into()
        },
        "the old one is a change now"
    );

    // Racing first sights of one tool with different definitions: one pin.
    let barrier = Arc::new(Barrier::new(8));
    let results: Vec<PinCheck> = (0..8)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store
                    .check_pin("g", "race", &format!("sha256:{i}"), "{}")
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == PinCheck::New).count(),
        1,
        "{results:?}"
    );
}

#[test]
fn pins_in_memory() {
    let clock = Arc::new(ManualClock::default());
    behaves(Arc::new(CallState::new(StateLimits::default(), clock)));
}

#[test]
fn pins_in_a_sqlite_file_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let clock = Arc::new(ManualClock::default());
    behaves(Arc::new(
        SqliteState::open(&path, StateLimits::default(), clock.clone()).unwrap(),
    ));
    let again = SqliteState::open(&path, StateLimits::default(), clock).unwrap();
    assert!(
        again
            .pins()
            .unwrap()
            .iter()
            .any(|p| p.tool == "t" && p.digest == "sha256:c")
    );
}

#[test]
fn pins_in_redis_are_every_replicas() {
    let server = redis_server::RedisServer::start();
    let store = Arc::new(
        RedisState::open(
            &server.url(),
            StateLimits::default(),
            RedisOptions::default(),
        )
        .unwrap(),
    );
    behaves(store);
    let replica = RedisState::open(
        &server.url(),
        StateLimits::default(),
        RedisOptions::default(),
    )
    .unwrap();
    assert_eq!(
        replica
            .check_pin("g", "t", "sha256:c", "{\"c\":1}")
            .unwrap(),
        PinCheck::Same
    );
}
