//! Unit tests of the memory store: streaks, windows, holds and bounds.
//! The contract both stores share is tested in `tests/state_store.rs`.

use super::*;
use crate::state::{Counted, ManualClock, SystemClock};
use warden_lang::ast::{Scope, ScopeSet};

fn key(scope: Scope, v: &str) -> ScopeKey {
    ScopeKey {
        row: ScopeSet::single(scope),
        value: v.to_string(),
    }
}
fn session() -> ScopeSet {
    ScopeSet::single(Scope::Session)
}

/// A cap of 3 calls in a row per session.
fn cap() -> LimitSpec {
    LimitSpec {
        max: 3,
        window: None,
        scope: session(),
        summed: false,
    }
}

/// A rate of 2 calls per minute per session.
fn rate() -> LimitSpec {
    LimitSpec {
        max: 2,
        window: Some(Duration::from_secs(60)),
        scope: session(),
        summed: false,
    }
}

fn hold(session: &str, matched: &[(&str, LimitSpec)], confirmed: bool) -> Hold {
    Hold {
        user: "alice".into(),
        keys: vec![key(Scope::Session, session)],
        matched: matched
            .iter()
            .map(|(r, s)| Counted {
                rule: r.to_string(),
                spec: *s,
                split: String::new(),
                weight: 1,
            })
            .collect(),
        confirmed,
        unchecked: Vec::new(),
    }
}

/// Reserves and commits; panics if the store refuses.
fn forward(s: &CallState, h: &Hold) {
    match s.reserve(h).unwrap() {
        Reserved::Held(id) => s.commit(id, h).unwrap(),
        other => panic!("not held: {other:?}"),
    }
}

fn count(s: &CallState, rule: &str, spec: &LimitSpec, session: &str) -> u64 {
    s.count(rule, spec, &key(Scope::Session, session), "", 1)
        .unwrap()
        .unwrap()
        .count
}

#[test]
fn streaks_count_and_end() {
    let (cap, s) = (
        cap(),
        CallState::new(StateLimits::default(), Arc::new(SystemClock)),
    );
    forward(&s, &hold("s1", &[("cap", cap)], false));
    forward(&s, &hold("s1", &[("cap", cap)], false));
    assert_eq!(count(&s, "cap", &cap, "s1"), 2);
    assert_eq!(
        count(&s, "cap", &cap, "s2"),
        0,
        "another session is separate"
    );
    // A call that counts for nothing ends the streak.
    s.end_streaks(&hold("s1", &[], false).keys, true).unwrap();
    assert_eq!(count(&s, "cap", &cap, "s1"), 0);
    forward(&s, &hold("s1", &[("cap", cap)], false));
    // A confirmed call ends it too, and holds no cap slot.
    forward(&s, &hold("s1", &[("cap", cap)], true));
    assert_eq!(count(&s, "cap", &cap, "s1"), 0);
    assert_eq!(s.tracked_scopes(), 0, "nothing live, nothing kept");
}

#[test]
fn a_held_slot_counts_until_released_and_the_last_slot_is_taken_once() {
    let (cap, s) = (
        cap(),
        CallState::new(StateLimits::default(), Arc::new(SystemClock)),
    );
    let h = hold("s1", &[("cap", cap)], false);
    let ids: Vec<HoldId> = (0..3)
        .map(|_| match s.reserve(&h).unwrap() {
            Reserved::Held(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(count(&s, "cap", &cap, "s1"), 3);
    assert_eq!(
        s.reserve(&h).unwrap(),
        Reserved::Full { rule: "cap".into() }
    );
    s.release(ids[0], &h).unwrap();
    assert_eq!(count(&s, "cap", &cap, "s1"), 2);
    s.commit(ids[1], &h).unwrap();
    s.commit(ids[2], &h).unwrap();
    assert_eq!(count(&s, "cap", &cap, "s1"), 2);
}

#[test]
fn rate_windows_slide() {
    let clock = Arc::new(ManualClock::default());
    let (rate, s) = (
        rate(),
        CallState::new(StateLimits::default(), clock.clone()),
    );
    forward(&s, &hold("s1", &[("rate", rate)], false));
    clock.advance(Duration::from_secs(30));
    forward(&s, &hold("s1", &[("rate", rate)], false));
    let c = s
        .count("rate", &rate, &key(Scope::Session, "s1"), "", 1)
        .unwrap()
        .unwrap();
    assert_eq!((c.count, c.frees_in), (2, Some(Duration::from_secs(30))));
    clock.advance(Duration::from_secs(31));
    assert_eq!(count(&s, "rate", &rate, "s1"), 1);
}

#[test]
fn budget_windows_coalesce_per_second_and_free_late_not_early() {
    let clock = Arc::new(ManualClock::default());
    let budget = LimitSpec {
        max: 1_000_000,
        window: Some(Duration::from_secs(60)),
        scope: session(),
        summed: true,
    };
    let s = CallState::new(StateLimits::default(), clock.clone());
    let mut h = hold("s1", &[("b", budget)], false);
    h.matched[0].weight = 1;
    // 500 amounts within one second: one event, not 500.
    for _ in 0..500 {
        forward(&s, &h);
        clock.advance(Duration::from_millis(1));
    }
    let inner = s.inner.lock().unwrap();
    let e = &inner.entries[&EntryKey::new(&key(Scope::Session, "s1"), "")];
    assert_eq!(e.windows["b"].len(), 1);
    drop(inner);
    // The event is timed by its latest amount (499 ms after the first):
    // a window after the first amount, all of it still counts.
    clock.advance(Duration::from_millis(59_998));
    assert_eq!(count(&s, "b", &budget, "s1"), 500, "freed early");
    clock.advance(Duration::from_millis(1));
    assert_eq!(count(&s, "b", &budget, "s1"), 0);
}

#[test]
fn memory_is_bounded_idle_entries_expire_and_a_full_table_says_so() {
    let clock = Arc::new(ManualClock::default());
    let limits = StateLimits {
        idle_ttl: Duration::from_secs(10),
        max_keys: 2,
        max_keys_per_user: 100,
    };
    let (cap, s) = (cap(), CallState::new(limits, clock.clone()));
    forward(&s, &hold("a", &[("cap", cap)], false));
    forward(&s, &hold("b", &[("cap", cap)], false));
    assert!(matches!(
        s.reserve(&hold("c", &[("cap", cap)], false)).unwrap(),
        Reserved::Untracked(why) if why.contains("at most 2 keys")
    ));
    assert_eq!(s.tracked_scopes(), 2);
    clock.advance(Duration::from_secs(11));
    forward(&s, &hold("c", &[("cap", cap)], false));
    assert_eq!(s.tracked_scopes(), 1, "idle keys expired");
}

#[test]
fn one_user_cannot_fill_the_table_with_declared_names() {
    let limits = StateLimits {
        max_keys_per_user: 3,
        ..StateLimits::default()
    };
    let (cap, s) = (cap(), CallState::new(limits, Arc::new(SystemClock)));
    for i in 0..3 {
        forward(&s, &hold(&format!("s{i}"), &[("cap", cap)], false));
    }
    let h = hold("s9", &[("cap", cap)], false);
    assert!(matches!(
        s.reserve(&h).unwrap(),
        Reserved::Untracked(why) if why.contains("one user's calls")
    ));
    let mut bob = h.clone();
    bob.user = "bob".into();
    assert!(matches!(s.reserve(&bob).unwrap(), Reserved::Held(_)));
}

#[test]
fn split_values_count_towards_the_users_bound() {
    let limits = StateLimits {
        max_keys_per_user: 2,
        ..StateLimits::default()
    };
    let s = CallState::new(limits, Arc::new(SystemClock));
    let per_user_per_model = LimitSpec {
        scope: [Scope::User, Scope::Model].into_iter().collect(),
        ..rate()
    };
    let h = |model: &str| Hold {
        user: "alice".into(),
        keys: vec![key(Scope::User, "alice")],
        matched: vec![Counted {
            rule: "r".into(),
            spec: per_user_per_model,
            split: model.into(),
            weight: 1,
        }],
        confirmed: false,
        unchecked: Vec::new(),
    };
    forward(&s, &h("m1"));
    forward(&s, &h("m2"));
    assert!(matches!(
        s.reserve(&h("m3")).unwrap(),
        Reserved::Untracked(_)
    ));
}
