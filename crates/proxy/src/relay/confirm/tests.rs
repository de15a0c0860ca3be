//! The sealed 2026-07-28 confirmation on its own: it opens only for its
//! own call and asker, with the key that sealed it, unchanged and before
//! it expires. (Single use is the state store's `use_once`, tested with
//! each store; end to end in tests/security_http.rs and the replicas
//! test.)

use super::{MRTR_CONFIRM_TTL, open_confirm, seal_confirm};
use crate::seal::SealKey;
use serde_json::json;

fn key() -> std::sync::Arc<SealKey> {
    SealKey::process()
}

#[test]
fn a_confirmation_opens_only_for_its_own_call_and_asker() {
    let k = key();
    let params = json!({"name": "rm", "arguments": {"path": "/a"}});
    let state = seal_confirm(&k, "rm", params.clone(), Some("alice".into()), 1_000);
    let alice = Some("alice".to_string());
    let args = json!({"path": "/a"});
    let open = |tool: &str, owner: &Option<String>, args: &serde_json::Value| {
        open_confirm(&k, &state, tool, owner, args, 2_000).map(|c| c.params)
    };
    assert_eq!(open("rm", &alice, &args), Ok(params));
    assert!(open("ls", &alice, &args).is_err(), "another tool");
    assert!(
        open("rm", &Some("bob".into()), &args).is_err(),
        "another asker"
    );
    assert!(open("rm", &None, &args).is_err(), "no asker");
    assert!(
        open("rm", &alice, &json!({"path": "/b"})).is_err(),
        "other arguments"
    );
    // Opening uses nothing up: single use is the caller's mark.
    assert!(open("rm", &alice, &args).is_ok());
}

#[test]
fn a_confirmation_expires_and_a_changed_or_foreign_one_is_refused() {
    let k = key();
    let state = seal_confirm(&k, "rm", json!({}), None, 0);
    let ttl = i64::try_from(MRTR_CONFIRM_TTL.as_millis()).unwrap();
    assert!(open_confirm(&k, &state, "rm", &None, &json!({}), ttl - 1).is_ok());
    assert_eq!(
        open_confirm(&k, &state, "rm", &None, &json!({}), ttl).err(),
        Some("this confirmation expired")
    );
    let mut changed = state.clone();
    changed.pop();
    changed.push(if state.ends_with('A') { 'B' } else { 'A' });
    let why = open_confirm(&k, &changed, "rm", &None, &json!({}), 1).unwrap_err();
    assert!(
        why.contains("replicas need a shared `confirm_key`"),
        "{why}"
    );
    assert!(open_confirm(&k, "warden-confirm:made-up", "rm", &None, &json!({}), 1).is_err());
}
