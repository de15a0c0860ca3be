//! Routing what a session's endpoint sends to the client onto the
//! session's streams: a response to its request's POST stream; a request
//! or notification to the POST stream of the request it relates to (by
//! hint, by `progressToken`), else the GET stream, else the oldest open
//! POST stream, else a buffer of the last [`MAX_BUFFERED`] messages. On
//! the shared sessionless endpoint a message goes only to its own
//! request's stream, with the client's id and progress token put back.

use super::MAX_BUFFERED;
use super::sse::{Replay, Sent, stamp};
use crate::jsonrpc::{self, Kind, METHOD_NOT_FOUND, id_key};
use crate::relay::{Hints, Outgoing};
use crate::sessionless::Owner;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// 2026-07-28 error codes (SEP-2243, SEP-2575).
const HEADER_MISMATCH: i64 = crate::sessionless::HEADER_MISMATCH;
const MISSING_CLIENT_CAPABILITY: i64 = -32021;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// Most questions (requests sent on a sessionless request's stream) kept
/// waiting for their answer.
const MAX_ASKED: usize = 1024;
/// A request's POST stream.
pub(super) struct PostStream {
    pub(super) tx: mpsc::UnboundedSender<Sent>,
    pub(super) seq: u64,
    /// The client accepts only JSON: only the response goes here.
    pub(super) json_only: bool,
    /// The id the client used, when warden replaced it (sessionless).
    pub(super) client_id: Option<Value>,
    pub(super) progress_token: Option<String>,
    /// The progress token the client used, when warden replaced it
    /// (sessionless): restored in the progress sent to this stream.
    pub(super) client_progress: Option<Value>,
    /// Who may act on this request from another POST (sessionless; see
    /// [`Owner`]); `None` for a session's request (its session is its
    /// owner).
    pub(super) owner: Option<Owner>,
    /// Derive the HTTP status of an error answer from its code (SEP-2575's
    /// mapping): a 2026-07-28 request whose upstream is a command.
    pub(super) derive_status: bool,
    /// Its events have ids and are kept for `Last-Event-ID` (a session's
    /// SSE stream; 2026-07-28 streams are not resumable).
    pub(super) resumable: bool,
    /// Events sent so far.
    pub(super) events: u64,
    /// warden closed the client's stream because the upstream closed its
    /// own before answering: what comes is kept for the client to resume.
    pub(super) detached: bool,
}

/// One session's streams and what routing needs to know about them.
#[derive(Default)]
pub(super) struct Routes {
    pub(super) posts: HashMap<String, PostStream>,
    pub(super) seq: u64,
    pub(super) get: Option<mpsc::UnboundedSender<String>>,
    /// progressToken (as an id key) → the request's key.
    pub(super) progress: HashMap<String, String>,
    pub(super) buffered: VecDeque<String>,
    /// The shared sessionless relay: a message goes only to the stream of
    /// the request it belongs to, never to another client's.
    pub(super) sessionless: bool,
    /// The relay's per-request transport facts.
    pub(super) hints: Hints,
    /// Resumable streams' recent events, by stream number.
    pub(super) replay: HashMap<u64, Replay>,
    pub(super) replay_order: VecDeque<u64>,
    /// Sessionless: the requests (questions) sent on a request's stream
    /// that wait for the client's answer, by id ([`id_key`]), with whom
    /// the answer must come from and when they were asked.
    pub(super) asked: HashMap<String, (Owner, Instant)>,
}

/// The HTTP status SEP-2575 gives a 2026-07-28 error answer: 400 for a
/// malformed request, a header mismatch, a missing client capability or an
/// unsupported protocol version; 404 for an unknown method.
fn status_of_error(text: &str) -> Option<u16> {
    let v: Value = serde_json::from_str(text).ok()?;
    match v.pointer("/error/code")?.as_i64()? {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | HEADER_MISMATCH
        | MISSING_CLIENT_CAPABILITY
        | UNSUPPORTED_PROTOCOL_VERSION => Some(400),
        METHOD_NOT_FOUND => Some(404),
        _ => None,
    }
}

/// The `_meta` key tagging a 2026-07-28 subscription's notifications.
const SUBSCRIPTION_ID_META: &str = "io.modelcontextprotocol/subscriptionId";

/// Puts the client's own id back where the upstream echoed warden's
/// replacement: a `subscriptions/listen` stream's subscription id.
fn restore_subscription_id(text: String, mine: &Value, client_id: &Value) -> String {
    let Some(mine) = mine.as_str() else {
        return text;
    };
    if !text.contains(mine) {
        return text;
    }
    let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    let tag = v
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.get_mut(SUBSCRIPTION_ID_META));
    match tag {
        Some(t) if t.as_str() == Some(mine) => {
            *t = match client_id {
                Value::String(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            };
            // Only the id changes; the rest goes out as it came (finding 16).
            crate::raw::rewrite(&text, &v)
        }
        _ => text,
    }
}

/// The id of a request (a message with a method and an id), if `text` is
/// one.
fn request_id_of(text: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(text).ok()?;
    match jsonrpc::classify(&v).ok()? {
        Kind::Request { id, .. } => Some(id),
        _ => None,
    }
}

/// Puts the client's own progress token back into a progress notification
/// for a request whose token warden replaced.
fn restore_progress_token(text: String, client_token: &Value) -> String {
    if !text.contains("notifications/progress") {
        return text;
    }
    let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    if v.get("method").and_then(Value::as_str) != Some("notifications/progress") {
        return text;
    }
    match v.pointer_mut("/params/progressToken") {
        Some(t) => {
            *t = client_token.clone();
            crate::raw::rewrite(&text, &v)
        }
        None => text,
    }
}

impl Routes {
    pub(super) fn has_open_streams(&self) -> bool {
        self.posts.values().any(|p| !p.tx.is_closed())
            || self.get.as_ref().is_some_and(|g| !g.is_closed())
    }

    pub(super) fn remove_post(&mut self, key: &str) -> Option<PostStream> {
        let p = self.posts.remove(key)?;
        if let Some(t) = &p.progress_token {
            self.progress.remove(t);
        }
        Some(p)
    }

    pub(super) fn route(&mut self, out: Outgoing) {
        let key = out.related.as_ref().map(id_key);
        if out.detach {
            if let Some(p) = key.and_then(|k| self.posts.get_mut(&k))
                && p.resumable
            {
                // Dropping the sender ends the client's stream.
                p.tx = mpsc::unbounded_channel().0;
                p.detached = true;
            }
            return;
        }
        if out.response {
            let hint = key.as_ref().and_then(|k| {
                self.hints
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(k)
            });
            let Some(mut p) = key.and_then(|k| self.remove_post(&k)) else {
                tracing::debug!("a response for a request without an open stream was dropped");
                return;
            };
            let status = hint.and_then(|h| h.status).or_else(|| {
                if p.derive_status {
                    status_of_error(&out.text)
                } else {
                    None
                }
            });
            let text = match p.client_id.take() {
                Some(id) => match serde_json::from_str::<Value>(&out.text) {
                    Ok(mut v) => {
                        v["id"] = id;
                        crate::raw::rewrite(&out.text, &v)
                    }
                    Err(_) => out.text,
                },
                None => out.text,
            };
            let event_id = stamp(
                &mut self.replay,
                &mut self.replay_order,
                &mut p,
                &text,
                true,
            );
            let sent = Sent {
                text,
                response: true,
                status,
                event_id,
            };
            if p.tx.send(sent).is_err() {
                tracing::debug!("the client closed the stream before its response");
            }
            return;
        }
        let mut text = out.text;
        // The request it relates to, by hint or by progress token.
        let related_known = key.is_some();
        let mut target = key.filter(|k| self.posts.contains_key(k));
        if target.is_none() && text.contains("notifications/progress") {
            target = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.pointer("/params/progressToken").map(id_key))
                .and_then(|t| self.progress.get(&t).cloned());
        }
        if let Some(k) = target {
            match self.posts.get_mut(&k) {
                Some(p) if !p.json_only => {
                    if let (Some(client_id), Some(mine)) = (&p.client_id, &out.related) {
                        text = restore_subscription_id(text, mine, client_id);
                    }
                    if let Some(token) = &p.client_progress {
                        text = restore_progress_token(text, token);
                    }
                    if let Some(owner) = &p.owner
                        && let Some(id) = request_id_of(&text)
                    {
                        let now = Instant::now();
                        if self.asked.len() >= MAX_ASKED {
                            let cutoff = now.checked_sub(Duration::from_secs(600)).unwrap_or(now);
                            self.asked.retain(|_, (_, at)| *at > cutoff);
                        }
                        if self.asked.len() < MAX_ASKED {
                            self.asked.insert(id_key(&id), (owner.clone(), now));
                        }
                    }
                    let event_id = stamp(&mut self.replay, &mut self.replay_order, p, &text, false);
                    let sent = Sent {
                        text,
                        response: false,
                        status: None,
                        event_id,
                    };
                    match p.tx.send(sent) {
                        Ok(()) => return,
                        Err(_) if p.detached => return,
                        Err(e) => text = e.0.text,
                    }
                }
                _ => {}
            }
        }
        if self.sessionless {
            if !related_known {
                tracing::debug!("a sessionless message for no request was dropped");
            }
            return;
        }
        if let Some(get) = &self.get {
            match get.send(text) {
                Ok(()) => return,
                Err(e) => {
                    text = e.0;
                    self.get = None;
                }
            }
        }
        let mut open: Vec<(u64, String)> = self
            .posts
            .iter()
            .filter(|(_, p)| !p.json_only && !p.tx.is_closed())
            .map(|(k, p)| (p.seq, k.clone()))
            .collect();
        open.sort();
        for (_, k) in open {
            let Some(p) = self.posts.get_mut(&k) else {
                continue;
            };
            let event_id = stamp(&mut self.replay, &mut self.replay_order, p, &text, false);
            let sent = Sent {
                text,
                response: false,
                status: None,
                event_id,
            };
            match p.tx.send(sent) {
                Ok(()) => return,
                Err(e) => text = e.0.text,
            }
        }
        if self.buffered.len() >= MAX_BUFFERED {
            self.buffered.pop_front();
        }
        self.buffered.push_back(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stateless_errors_map_to_sep_2575_statuses() {
        let err = |code: i64| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":{code},"message":"m"}}}}"#)
        };
        assert_eq!(status_of_error(&err(-32601)), Some(404));
        for code in [-32602, -32020, -32021, -32022] {
            assert_eq!(status_of_error(&err(code)), Some(400), "{code}");
        }
        assert_eq!(status_of_error(&err(-32001)), None);
        assert_eq!(
            status_of_error(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            None
        );
    }

    #[test]
    fn a_listen_streams_subscription_id_is_the_clients_id_again() {
        let text = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"_meta": {SUBSCRIPTION_ID_META: "http:7"}}})
        .to_string();
        let back = restore_subscription_id(text, &json!("http:7"), &json!(42));
        let v: Value = serde_json::from_str(&back).unwrap();
        assert_eq!(v["params"]["_meta"][SUBSCRIPTION_ID_META], json!("42"));
    }

    #[test]
    fn a_detached_stream_keeps_its_events_for_resumption() {
        let mut r = Routes::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        r.posts.insert(
            "1".into(),
            PostStream {
                tx,
                seq: 3,
                json_only: false,
                client_id: None,
                progress_token: None,
                client_progress: None,
                owner: None,
                derive_status: false,
                resumable: true,
                events: 0,
                detached: false,
            },
        );
        r.route(out("progress", Some(json!(1)), false));
        assert_eq!(rx.try_recv().unwrap().event_id.as_deref(), Some("3-1"));
        r.route(Outgoing {
            detach: true,
            ..out("", Some(json!(1)), false)
        });
        assert!(rx.try_recv().is_err(), "the client's stream ended");
        r.route(out("later", Some(json!(1)), false));
        r.route(out("answer", Some(json!(1)), true));
        assert!(r.buffered.is_empty() && r.get.is_none(), "nothing spilled");
        let kept: Vec<_> = r.replay[&3]
            .events
            .iter()
            .map(|e| (e.0, e.1.as_str(), e.2))
            .collect();
        assert_eq!(
            kept,
            vec![
                (1, "progress", false),
                (2, "later", false),
                (3, "answer", true)
            ]
        );
    }

    fn out(text: &str, related: Option<Value>, response: bool) -> Outgoing {
        Outgoing {
            text: text.to_string(),
            related,
            response,
            detach: false,
        }
    }

    #[test]
    fn routes_by_request_then_get_then_oldest_post_then_buffer() {
        let mut r = Routes::default();
        r.route(out("early", None, false));
        assert_eq!(r.buffered.len(), 1);
        let (t1, mut r1) = mpsc::unbounded_channel();
        let (t2, mut r2) = mpsc::unbounded_channel();
        for (k, tx, seq) in [("1", t1, 1), ("2", t2, 2)] {
            r.posts.insert(
                k.to_string(),
                PostStream {
                    tx,
                    seq,
                    json_only: false,
                    client_id: None,
                    progress_token: None,
                    client_progress: None,
                    owner: None,
                    derive_status: false,
                    resumable: false,
                    events: 0,
                    detached: false,
                },
            );
        }
        r.progress.insert("\"tok\"".into(), "2".into());
        r.route(out("for 2", Some(json!(2)), false));
        r.route(out(
            r#"{"method":"notifications/progress","params":{"progressToken":"tok"}}"#,
            None,
            false,
        ));
        r.route(out("unrelated", None, false));
        r.route(out("answer 1", Some(json!(1)), true));
        assert_eq!(r2.try_recv().unwrap().text, "for 2");
        assert!(r2.try_recv().unwrap().text.contains("progress"));
        assert_eq!(r1.try_recv().unwrap().text, "unrelated");
        let answer = r1.try_recv().unwrap();
        assert_eq!(answer.text, "answer 1");
        assert!(answer.response);
        assert!(r1.try_recv().is_err());
        assert!(!r.posts.contains_key("1"));
        let (tg, mut rg) = mpsc::unbounded_channel();
        r.get = Some(tg);
        r.route(out("to get", None, false));
        assert_eq!(rg.try_recv().unwrap(), "to get");
    }
}
