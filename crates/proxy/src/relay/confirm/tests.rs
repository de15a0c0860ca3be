//! The 2026-07-28 confirmation store on its own: bound to the call and the
//! asker, single-use, expiring, bounded.

use super::{ConfirmStore, MAX_PENDING_CONFIRMS, MRTR_CONFIRM_TTL};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_engine::CallContext;

fn call(tool: &str, arguments: Value) -> CallContext {
    CallContext {
        tool: tool.to_string(),
        arguments,
        ..CallContext::default()
    }
}

#[test]
fn a_confirmation_is_taken_only_by_its_own_call_and_once() {
    let now = Instant::now();
    let mut store = ConfirmStore::default();
    let params = json!({"name": "rm", "arguments": {"path": "/a"}});
    store.insert(
        "h".into(),
        &call("rm", json!({"path": "/a"})),
        params.clone(),
        Some("alice".into()),
        now,
    );
    let alice = Some("alice".to_string());
    let args = json!({"path": "/a"});
    assert_eq!(store.take("other", "rm", &alice, &args, now), None);
    assert_eq!(
        store.take("h", "ls", &alice, &args, now),
        None,
        "another tool"
    );
    assert_eq!(
        store.take("h", "rm", &Some("bob".into()), &args, now),
        None,
        "another asker"
    );
    assert_eq!(store.take("h", "rm", &None, &args, now), None, "no asker");
    assert_eq!(
        store.take("h", "rm", &alice, &json!({"path": "/b"}), now),
        None,
        "other arguments"
    );
    assert_eq!(
        store.take("h", "rm", &alice, &args, now),
        Some(params),
        "nothing consumed before"
    );
    assert_eq!(
        store.take("h", "rm", &alice, &args, now),
        None,
        "single use"
    );
}

#[test]
fn a_confirmation_expires() {
    let now = Instant::now();
    let mut store = ConfirmStore::default();
    store.insert("h".into(), &call("rm", json!({})), json!({}), None, now);
    let at_expiry = now + MRTR_CONFIRM_TTL;
    assert_eq!(store.take("h", "rm", &None, &json!({}), at_expiry), None);
    assert_eq!(
        store.take("h", "rm", &None, &json!({}), now + Duration::from_secs(1)),
        Some(json!({})),
        "an expired lookup consumes nothing either"
    );
}

#[test]
fn the_store_is_bounded_and_drops_expired_ones_first() {
    let now = Instant::now();
    let mut store = ConfirmStore::default();
    for i in 0..MAX_PENDING_CONFIRMS + 5 {
        store.insert(format!("h{i}"), &call("t", json!({})), json!({}), None, now);
    }
    assert_eq!(store.pending.len(), MAX_PENDING_CONFIRMS);
    // Once they expired, a new one is all the store holds.
    store.insert(
        "new".into(),
        &call("t", json!({})),
        json!({}),
        None,
        now + MRTR_CONFIRM_TTL,
    );
    assert_eq!(store.pending.len(), 1);
    assert!(store.pending.contains_key("new"));
}
