//! The pending tables on their own: what a link going down, a timer, the
//! upstream's progress and its cancellations do to them.

use super::{ClientReq, DownPending, Expiry, Fwd, Pending, UpPending, UpWait};
use crate::jsonrpc::id_key;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

fn key(id: &Value) -> String {
    id_key(id)
}

/// A relayed client request `id` (sent upstream under the same id) of
/// instance `epoch`, with its client entry.
fn relay(p: &mut Pending, id: Value, epoch: u64, deadline: Option<Instant>, token: Option<&str>) {
    p.insert_up(
        key(&id),
        UpPending::relayed(
            epoch,
            id.clone(),
            Fwd::Plain,
            deadline,
            token.map(str::to_string),
            None,
        ),
    );
    p.insert_client(
        key(&id),
        ClientReq {
            up_key: Some((key(&id), id.clone())),
            cancel: None,
        },
    );
}

fn own(
    p: &mut Pending,
    id: Value,
    epoch: u64,
) -> oneshot::Receiver<Result<crate::raw::Message, String>> {
    let (tx, rx) = oneshot::channel();
    p.insert_up(key(&id), UpPending::own(epoch, tx));
    rx
}

fn forwarded_ids(waits: &[UpWait]) -> Vec<Value> {
    let mut ids: Vec<Value> = waits
        .iter()
        .filter_map(|w| match w {
            UpWait::Forward { client_id, .. } => Some(client_id.clone()),
            UpWait::Own(_) => None,
        })
        .collect();
    ids.sort_by_key(|v| v.to_string());
    ids
}

#[test]
fn a_link_going_down_resolves_each_entry_of_its_epoch_once() {
    let mut p = Pending::default();
    relay(&mut p, json!(1), 1, None, None);
    relay(&mut p, json!("b"), 1, None, None);
    let _own1 = own(&mut p, json!("warden:1"), 1);
    relay(&mut p, json!(3), 2, None, None);
    let _own2 = own(&mut p, json!("warden:2"), 2);
    p.insert_down(
        key(&json!("warden:10")),
        DownPending::Forward {
            up_id: json!(7),
            epoch: 1,
        },
    );
    p.insert_down(
        key(&json!("warden:11")),
        DownPending::Forward {
            up_id: json!(8),
            epoch: 2,
        },
    );
    let (etx, _erx) = oneshot::channel();
    p.insert_down(key(&json!("warden:12")), DownPending::Own(etx));

    let (failed, down) = p.fail_epoch(1);
    assert_eq!(
        failed.len(),
        3,
        "two relayed requests and one of warden's own"
    );
    assert_eq!(forwarded_ids(&failed), vec![json!("b"), json!(1)]);
    assert_eq!(down, vec![key(&json!("warden:10"))]);
    assert!(!p.has_client(&key(&json!(1))) && !p.has_client(&key(&json!("b"))));
    assert!(!p.has_up(&key(&json!(1))) && !p.has_up(&key(&json!("warden:1"))));
    // The later instance's entries are untouched.
    assert!(p.has_client(&key(&json!(3))));
    assert!(p.has_up(&key(&json!(3))) && p.has_up(&key(&json!("warden:2"))));

    let (again, down_again) = p.fail_epoch(1);
    assert!(
        again.is_empty() && down_again.is_empty(),
        "each entry is resolved once"
    );

    let (failed2, down2) = p.fail_epoch(2);
    assert_eq!(failed2.len(), 2);
    assert_eq!(forwarded_ids(&failed2), vec![json!(3)]);
    assert_eq!(down2, vec![key(&json!("warden:11"))]);
    assert!(
        p.take_down(&key(&json!("warden:12"))).is_some(),
        "warden's own question to the client belongs to no upstream instance"
    );
}

#[test]
fn a_timer_finds_its_own_entry_and_moved_deadlines() {
    let now = Instant::now();
    let mut p = Pending::default();
    let id = json!(5);
    p.insert_up(
        key(&id),
        UpPending::relayed(
            1,
            id.clone(),
            Fwd::Plain,
            Some(now + Duration::from_secs(10)),
            None,
            None,
        ),
    );
    p.insert_client(
        key(&id),
        ClientReq {
            up_key: None,
            cancel: None,
        },
    );
    assert_eq!(
        p.expire(&key(&id), 99, now),
        Expiry::Gone,
        "another entry's timer"
    );
    assert_eq!(
        p.expire(&key(&id), 0, now),
        Expiry::Later(now + Duration::from_secs(10))
    );
    assert_eq!(
        p.expire(&key(&id), 0, now + Duration::from_secs(10)),
        Expiry::Expired(id.clone())
    );
    assert!(!p.has_up(&key(&id)) && !p.has_client(&key(&id)));
    assert_eq!(
        p.expire(&key(&id), 0, now + Duration::from_secs(11)),
        Expiry::Gone
    );
}

#[test]
fn progress_moves_the_deadline_of_its_token_only() {
    let now = Instant::now();
    let later = now + Duration::from_secs(60);
    let mut p = Pending::default();
    relay(&mut p, json!(1), 1, Some(now), Some("\"t\""));
    relay(&mut p, json!(2), 1, Some(now), Some("\"u\""));
    relay(&mut p, json!(3), 1, None, Some("\"t\""));
    p.progress("\"t\"", later);
    assert_eq!(p.deadline(&key(&json!(1))), Some(Some(later)));
    assert_eq!(p.deadline(&key(&json!(2))), Some(Some(now)));
    assert_eq!(
        p.deadline(&key(&json!(3))),
        Some(None),
        "no limit stays no limit"
    );
    assert_eq!(p.deadline(&key(&json!(4))), None);
}

#[test]
fn an_upstream_cancellation_names_the_id_the_client_knows() {
    let mut p = Pending::default();
    p.insert_down(
        key(&json!("warden:3")),
        DownPending::Forward {
            up_id: json!(0),
            epoch: 2,
        },
    );
    // An earlier instance's request 0 is another request.
    assert_eq!(p.cancelled_by_upstream(&json!(0), 1), None);
    assert_eq!(
        p.cancelled_by_upstream(&json!(0), 2),
        Some(json!("warden:3"))
    );
    assert!(p.take_down(&key(&json!("warden:3"))).is_none(), "removed");
    // A relayed client request of that id: named, and still pending.
    relay(&mut p, json!(9), 2, None, None);
    assert_eq!(p.cancelled_by_upstream(&json!(9), 2), Some(json!(9)));
    assert!(p.has_up(&key(&json!(9))));
}

#[test]
fn answers_and_a_gone_client_clear_both_tables() {
    let mut p = Pending::default();
    relay(&mut p, json!(1), 1, None, None);
    relay(&mut p, json!(2), 1, None, None);
    assert!(matches!(
        p.take_answered(&key(&json!(1))),
        Some(UpWait::Forward { client_id, .. }) if client_id == json!(1)
    ));
    assert!(!p.has_client(&key(&json!(1))));
    assert!(p.take_answered(&key(&json!(1))).is_none(), "answered once");
    let gone = p.drain_clients();
    assert_eq!(gone.len(), 1);
    assert!(!p.has_up(&key(&json!(2))) && !p.has_client(&key(&json!(2))));
}
