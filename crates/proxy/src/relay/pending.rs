//! The relay's pending tables and call timeouts: who waits for the answer
//! to each request sent upstream (`UpPending`, keyed by the upstream id),
//! to each request sent to the client (`DownPending`, keyed by `warden:N`),
//! and where each in-flight client request went (`ClientReq`). The tables
//! live in one [`Pending`] inside the relay's `State` (so they change under
//! the same lock as the link) and are reached only through its methods.
//! Also here: the deadline of a relayed request (`call_timeout`, moved on
//! by the upstream's progress), its timer task, and what a timeout sends.

use super::{Relay, lock, secs};
use crate::bearer::Caller;
use crate::jsonrpc::{self, id_key};
use crate::raw::Message;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests;

/// Requests that wait by design (a 2026-07-28 subscription stream, a
/// task's result): no call timeout.
const LONG_WAITS: [&str; 2] = ["subscriptions/listen", "tasks/result"];

/// Who waits for the answer to a request sent upstream.
pub(super) enum UpWait {
    /// A client request relayed as is; the answer goes back with `client_id`.
    Forward { client_id: Value, kind: Fwd },
    /// Warden's own request, or a governed call: the answer (the whole
    /// response message) or the reason there will be none.
    Own(oneshot::Sender<Result<Message, String>>),
}

/// What to do with the answer to a relayed request.
#[derive(Debug, Clone)]
pub(super) enum Fwd {
    Plain,
    Initialize,
    ToolsList {
        agent: Option<String>,
        complete: bool,
        /// Whom the list is for (a verified bearer token's identity).
        caller: Option<Arc<Caller>>,
    },
}

pub(super) struct UpPending {
    epoch: u64,
    wait: UpWait,
    /// The client request this one serves, for routing what the upstream
    /// sends about it (HTTP: on the request's own stream).
    related: Option<Value>,
    /// When warden stops waiting (`call_timeout`); moved on by each
    /// progress notification for the request. `None`: no limit (warden's
    /// own requests, which have theirs, and long waits).
    deadline: Option<Instant>,
    /// The request's `progressToken` ([`id_key`]).
    progress: Option<String>,
    /// A relayed request's timer task, stopped when the entry goes.
    timer: Option<Timer>,
    /// Tells this entry from a later one with the same id (its timer's).
    seq: u64,
}

impl UpPending {
    fn new(epoch: u64, wait: UpWait, related: Option<Value>) -> Self {
        UpPending {
            epoch,
            wait,
            related,
            deadline: None,
            progress: None,
            timer: None,
            seq: 0,
        }
    }

    /// Warden's own request (no deadline here: `own_request` has its own).
    pub(super) fn own(epoch: u64, tx: oneshot::Sender<Result<Message, String>>) -> Self {
        Self::new(epoch, UpWait::Own(tx), None)
    }

    /// A client request relayed as is, with its timer (`seq`, `Timer`)
    /// when it has a deadline.
    pub(super) fn relayed(
        epoch: u64,
        client_id: Value,
        kind: Fwd,
        deadline: Option<Instant>,
        progress: Option<String>,
        timer: Option<(u64, Timer)>,
    ) -> Self {
        let (seq, timer) = timer.map_or((0, None), |(s, t)| (s, Some(t)));
        UpPending {
            deadline,
            progress,
            timer,
            seq,
            ..Self::new(
                epoch,
                UpWait::Forward {
                    client_id: client_id.clone(),
                    kind,
                },
                Some(client_id),
            )
        }
    }

    /// A governed call: its task waits on `tx` and watches the deadline.
    pub(super) fn governed(
        epoch: u64,
        tx: oneshot::Sender<Result<Message, String>>,
        client_id: Value,
        deadline: Option<Instant>,
        progress: Option<String>,
    ) -> Self {
        UpPending {
            deadline,
            progress,
            ..Self::new(epoch, UpWait::Own(tx), Some(client_id))
        }
    }

    pub(super) fn into_wait(self) -> UpWait {
        self.wait
    }
}

/// Who waits for the client's answer to a request sent to it.
pub(super) enum DownPending {
    /// A request from the upstream; the answer goes back with `up_id`.
    Forward { up_id: Value, epoch: u64 },
    /// Warden's own request (a confirmation).
    Own(oneshot::Sender<Value>),
}

/// An in-flight client request.
pub(super) struct ClientReq {
    /// The id it went upstream with, once it did (relayed requests).
    pub(super) up_key: Option<(String, Value)>,
    /// Cancels a governed call.
    pub(super) cancel: Option<CancellationToken>,
}

/// Aborts a relayed request's timeout task when dropped (the request was
/// answered, failed or cancelled); `disarm` when the task itself ends it.
pub(super) struct Timer(Option<tokio::task::AbortHandle>);

impl Timer {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// What a relayed request's timer found when it woke.
#[derive(Debug, PartialEq)]
pub(super) enum Expiry {
    /// Answered (or otherwise gone): nothing to do.
    Gone,
    /// Progress moved the deadline.
    Later(Instant),
    /// Timed out: the entry, removed.
    Expired(Value),
}

/// The three tables. Keys are [`id_key`]s.
#[derive(Default)]
pub(super) struct Pending {
    up: HashMap<String, UpPending>,
    down: HashMap<String, DownPending>,
    client: HashMap<String, ClientReq>,
}

impl Pending {
    // ---- requests sent upstream -------------------------------------------

    /// The client request an upstream request serves, while it is in flight.
    pub(super) fn related(&self, up_key: &str) -> Option<Value> {
        self.up.get(up_key).and_then(|p| p.related.clone())
    }

    pub(super) fn has_up(&self, up_key: &str) -> bool {
        self.up.contains_key(up_key)
    }

    pub(super) fn insert_up(&mut self, up_key: String, entry: UpPending) {
        self.up.insert(up_key, entry);
    }

    pub(super) fn remove_up(&mut self, up_key: &str) -> Option<UpPending> {
        self.up.remove(up_key)
    }

    /// The deadline of an upstream request: `None` when it is no longer
    /// pending, `Some(None)` when it has none.
    pub(super) fn deadline(&self, up_key: &str) -> Option<Option<Instant>> {
        self.up.get(up_key).map(|p| p.deadline)
    }

    /// The upstream answered `up_key`: its entry goes, and a relayed
    /// request's client entry with it.
    pub(super) fn take_answered(&mut self, up_key: &str) -> Option<UpWait> {
        let p = self.up.remove(up_key)?;
        if let UpWait::Forward { client_id, .. } = &p.wait {
            self.client.remove(&id_key(client_id));
        }
        Some(p.wait)
    }

    /// Whether a client's initialize is on its way upstream.
    pub(super) fn initializing(&self) -> bool {
        self.up.values().any(|p| {
            matches!(
                &p.wait,
                UpWait::Forward {
                    kind: Fwd::Initialize,
                    ..
                }
            )
        })
    }

    /// The upstream cancelled its request `req_id` (of instance `epoch`):
    /// the id the client knows it by. A request the upstream sent to the
    /// client (its `warden:N` entry goes), else a relayed client request
    /// of that id (it stays: its answer may still come).
    pub(super) fn cancelled_by_upstream(&mut self, req_id: &Value, epoch: u64) -> Option<Value> {
        let down = self
            .down
            .iter()
            .find(|(_, p)| matches!(p, DownPending::Forward { up_id, epoch: g } if up_id == req_id && *g == epoch))
            .map(|(k, _)| k.clone());
        if let Some(k) = down {
            self.down.remove(&k);
            serde_json::from_str::<Value>(&k).ok()
        } else {
            match self.up.get(&id_key(req_id)) {
                Some(UpPending {
                    wait: UpWait::Forward { client_id, .. },
                    ..
                }) => Some(client_id.clone()),
                _ => None,
            }
        }
    }

    /// The upstream of generation `epoch` is gone: every upstream request
    /// of that epoch is removed (each once) and returned with who waits,
    /// and the keys of its requests to the client are removed and
    /// returned (their answers have nowhere to go).
    pub(super) fn fail_epoch(&mut self, epoch: u64) -> (Vec<UpWait>, Vec<String>) {
        let keys: Vec<String> = self
            .up
            .iter()
            .filter(|(_, p)| p.epoch == epoch)
            .map(|(k, _)| k.clone())
            .collect();
        let mut failed = Vec::new();
        for k in keys {
            if let Some(p) = self.up.remove(&k) {
                failed.push(p.wait);
            }
        }
        let down: Vec<String> = self
            .down
            .iter()
            .filter(|(_, p)| matches!(p, DownPending::Forward { epoch: g, .. } if *g == epoch))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &down {
            self.down.remove(k);
        }
        for p in &failed {
            if let UpWait::Forward { client_id, .. } = p {
                self.client.remove(&id_key(client_id));
            }
        }
        (failed, down)
    }

    /// A relayed request's timer (`seq`) woke at `now`: is the request
    /// still waiting, and until when? Removes it when its time is up.
    pub(super) fn expire(&mut self, key: &str, seq: u64, now: Instant) -> Expiry {
        let deadline = match self.up.get(key) {
            Some(p) if p.seq == seq => p.deadline,
            _ => return Expiry::Gone,
        };
        if let Some(at) = deadline
            && at > now
        {
            return Expiry::Later(at);
        }
        let Some(mut p) = self.up.remove(key) else {
            return Expiry::Gone;
        };
        if let Some(t) = p.timer.as_mut() {
            t.disarm();
        }
        match p.wait {
            UpWait::Forward { client_id, .. } => {
                self.client.remove(&id_key(&client_id));
                Expiry::Expired(client_id)
            }
            UpWait::Own(_) => Expiry::Gone,
        }
    }

    /// Progress on the requests with progress token `token`: those with a
    /// deadline get `next`.
    pub(super) fn progress(&mut self, token: &str, next: Instant) {
        for p in self.up.values_mut() {
            if p.progress.as_deref() == Some(token) && p.deadline.is_some() {
                p.deadline = Some(next);
            }
        }
    }

    // ---- requests sent to the client --------------------------------------

    pub(super) fn insert_down(&mut self, key: String, entry: DownPending) {
        self.down.insert(key, entry);
    }

    pub(super) fn take_down(&mut self, key: &str) -> Option<DownPending> {
        self.down.remove(key)
    }

    /// The session is over: nobody waits for the client any more.
    pub(super) fn clear_down(&mut self) {
        for (_, p) in self.down.drain() {
            drop(p);
        }
    }

    // ---- the client's requests in flight ----------------------------------

    pub(super) fn has_client(&self, key: &str) -> bool {
        self.client.contains_key(key)
    }

    pub(super) fn insert_client(&mut self, key: String, req: ClientReq) {
        self.client.insert(key, req);
    }

    pub(super) fn remove_client(&mut self, key: &str) -> Option<ClientReq> {
        self.client.remove(key)
    }

    /// The client is gone: all its requests, each with its upstream entry
    /// removed.
    pub(super) fn drain_clients(&mut self) -> Vec<ClientReq> {
        let reqs: Vec<ClientReq> = self.client.drain().map(|(_, r)| r).collect();
        for r in &reqs {
            if let Some((key, _)) = &r.up_key {
                self.up.remove(key);
            }
        }
        reqs
    }
}

impl Relay {
    /// When a request of `method` sent upstream now stops being waited for.
    pub(super) fn call_deadline(&self, method: &str) -> Option<Instant> {
        if self.cfg.call_timeout.is_zero() || LONG_WAITS.contains(&method) {
            return None;
        }
        Some(Instant::now() + self.cfg.call_timeout)
    }

    /// Starts the timer of a relayed request sent as `up_key`, due `at`.
    pub(super) fn arm_timer(self: &Arc<Self>, up_key: &str, at: Instant) -> (u64, Timer) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(relayed_timer(
            Arc::downgrade(self),
            up_key.to_string(),
            seq,
            at,
        ));
        (seq, Timer(Some(task.abort_handle())))
    }

    /// A relayed request's timer woke: is the request still waiting, and
    /// until when? Removes it when its time is up.
    fn expire(&self, key: &str, seq: u64) -> Expiry {
        let mut st = lock(&self.st);
        st.pending.expire(key, seq, Instant::now())
    }

    /// The error a request gets when the upstream did not answer in time.
    pub(super) fn timeout_error(&self, client_id: Value) -> Value {
        let server = self.server_name();
        let n = secs(self.cfg.call_timeout);
        jsonrpc::error(
            client_id,
            jsonrpc::UPSTREAM_UNAVAILABLE,
            format!(
                "upstream MCP server `{server}` did not answer within {n} s (--call-timeout); warden stopped waiting and asked it to cancel the request. The request may or may not have taken effect."
            ),
            Some(
                json!({"warden/upstream": {"state": "timed_out", "server": server,
                "timeout_s": self.cfg.call_timeout.as_secs_f64()}}),
            ),
        )
    }

    /// Tells the upstream to stop working on a request warden gave up on.
    pub(super) async fn cancel_up(&self, up_id: Value) {
        let reason = format!(
            "warden: no answer within {} s (--call-timeout)",
            secs(self.cfg.call_timeout)
        );
        self.notify_up(jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": up_id, "reason": reason})),
        ))
        .await;
    }

    /// A relayed request timed out: the client gets the error, the
    /// upstream a cancellation.
    async fn relayed_timed_out(&self, key: &str, client_id: Value) {
        tracing::warn!("upstream did not answer request {client_id} in time; cancelled");
        self.send_client(self.timeout_error(client_id)).await;
        if let Ok(up_id) = serde_json::from_str::<Value>(key) {
            self.cancel_up(up_id).await;
        }
    }

    /// The upstream reported progress on a request: its timeout starts
    /// again.
    pub(super) fn progress_seen(&self, msg: &Value) {
        let Some(token) = msg.pointer("/params/progressToken").map(id_key) else {
            return;
        };
        let mut st = lock(&self.st);
        let next = Instant::now() + self.cfg.call_timeout;
        st.pending.progress(&token, next);
    }
}

/// The request's `progressToken` as an [`id_key`].
pub(super) fn progress_token(msg: &Value) -> Option<String> {
    msg.pointer("/params/_meta/progressToken").map(id_key)
}

/// Waits out a relayed request's call timeout (moved on by progress), then
/// answers it with the timeout error. Aborted when the request is answered.
async fn relayed_timer(relay: std::sync::Weak<Relay>, key: String, seq: u64, mut at: Instant) {
    loop {
        tokio::time::sleep_until(at.into()).await;
        let Some(relay) = relay.upgrade() else {
            return;
        };
        match relay.expire(&key, seq) {
            Expiry::Gone => return,
            Expiry::Later(next) => at = next,
            Expiry::Expired(client_id) => {
                relay.relayed_timed_out(&key, client_id).await;
                return;
            }
        }
    }
}
