//! A POST to the MCP path: one JSON-RPC message. Checks (origin, bearer,
//! size, body deadline, JSON, the sessionless rules), then the session it
//! belongs to (a new one for `initialize`, the shared sessionless one for a
//! 2026-07-28 message), then: a notification or response goes to the
//! endpoint and gets 202 (after [`before_relay`]); a request gets its
//! stream registered in the session's routes, goes to the endpoint, and is
//! answered with an SSE stream or one JSON message.

use super::SESSION_HEADER;
use super::lock;
use super::respond::{accepts, rpc_error, upstream_failed};
use super::routes::{PostStream, Routes};
use super::service::McpService;
use super::session::Session;
use super::sse::{InFlight, StreamGuards, sse_response};
use crate::bearer::Caller;
use crate::endpoint::ClientEndpoint;
use crate::framing::Frame;
use crate::jsonrpc::{self, Kind, METHOD_NOT_FOUND, id_key};
use crate::relay::{Outgoing, RequestHints};
use crate::sessionless::{self, Owner, is_stateless};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The error a request the client cancelled is answered with, so that
/// every request gets exactly one answer (LSP's `RequestCancelled`).
const REQUEST_CANCELLED: i64 = -32800;

/// Answers one POST (see the module docs).
pub(super) async fn post(
    srv: &Arc<McpService>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    // Counted from here until the answer is complete (an SSE answer's
    // stream holds it).
    let in_flight = InFlight::new(&srv.in_flight);
    if let Err(r) = srv.check_origin(headers, uri) {
        return *r;
    }
    // Before the body is read: an unauthenticated request costs nothing
    // and reaches nothing.
    let caller = match srv.authenticate(headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let max = srv.settings.max_message_bytes;
    let too_large = || {
        rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            format!("message exceeds warden's limit of {max} bytes (--max-message-bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    // A body trickled in slowly holds a connection: it gets a deadline.
    let limit = srv.settings.body_read_timeout;
    let bytes = match tokio::time::timeout(limit, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                format!(
                    "request timeout: the body did not arrive within {} ms (--body-read-timeout)",
                    limit.as_millis()
                ),
            );
        }
    };
    let mut msg: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::PARSE_ERROR,
                format!("parse error: {e}"),
            );
        }
    };
    let kind = match jsonrpc::classify(&msg) {
        Ok(k) => k,
        Err(why) => {
            let id = match msg.get("id") {
                Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
                _ => Value::Null,
            };
            return rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                jsonrpc::INVALID_REQUEST,
                format!("invalid request: {why}"),
            );
        }
    };
    // The text the relay reads: as sent, unless a trace header went into
    // `_meta` (then only that member is written anew).
    let folded =
        srv.settings.trace_headers && crate::traces::fold_header_into_meta(headers, &mut msg);
    let stateless = is_stateless(headers, &msg);
    let request_id = match &kind {
        Kind::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    // A sessionless message is one in both the header and `_meta`, and its
    // standard headers say what its body says (crate::sessionless).
    if stateless
        && let Err(r) = sessionless::check_versions(headers, &msg, &kind)
            .and_then(|()| sessionless::check_standard_headers(headers, &msg))
    {
        tracing::info!("sessionless request refused: {}", r.message);
        let status = if r.code == METHOD_NOT_FOUND {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return rpc_error(status, request_id, r.code, r.message);
    }
    let mut new_session = None;
    let session = if stateless {
        match srv.sessionless().await {
            Ok(s) => s,
            Err(e) => return upstream_failed(request_id, &e),
        }
    } else if matches!(&kind, Kind::Request { method, .. } if method == "initialize")
        && !headers.contains_key(SESSION_HEADER)
    {
        let sid = super::session::new_session_id();
        let subject = caller.as_ref().map(|c| c.user.clone());
        match srv.new_session(Some(sid.clone()), subject).await {
            Ok(s) => {
                lock(&srv.sessions).insert(sid.clone(), Arc::clone(&s));
                new_session = Some(sid);
                s
            }
            Err(e) => return upstream_failed(request_id, &e),
        }
    } else {
        match srv.session_of(headers, request_id.clone(), caller.as_deref()) {
            Ok(s) => s,
            Err(r) => return *r,
        }
    };
    session.touch();

    let Kind::Request { id, .. } = kind else {
        if let Some(refused) = before_relay(&session, &kind, &msg, stateless, caller.as_deref()) {
            return refused;
        }
        if stateless
            && matches!(&kind, Kind::Notification { method } if method == "notifications/cancelled")
        {
            // Handled (or dropped) above: a sessionless cancellation never
            // reaches the shared relay by the client's id.
            return StatusCode::ACCEPTED.into_response();
        }
        Arc::clone(&session.endpoint)
            .client_frame(Frame::Line(bytes.to_vec()), caller)
            .await;
        return StatusCode::ACCEPTED.into_response();
    };

    // A request: its stream first, then the relay.
    let json_only = !accepts(headers, "text/event-stream");
    let (tx, rx) = mpsc::unbounded_channel();
    // Sessionless: the request reaches the shared relay under an id and a
    // progress token drawn for it, which no other caller can name.
    let mut client_progress = None;
    let (key, client_id, line) = if stateless {
        let mine = sessionless::fresh_id();
        msg["id"] = mine.clone();
        if let Some(t) = msg.pointer_mut("/params/_meta/progressToken") {
            client_progress = Some(std::mem::replace(t, sessionless::fresh_progress_token()));
        }
        (
            id_key(&mine),
            Some(id.clone()),
            msg.to_string().into_bytes(),
        )
    } else {
        let line = if folded {
            crate::raw::rewrite(&String::from_utf8_lossy(&bytes), &msg).into_bytes()
        } else {
            bytes.to_vec()
        };
        (id_key(&id), None, line)
    };
    let owner = stateless.then(|| Owner::of(caller.as_deref()));
    let progress_token = msg.pointer("/params/_meta/progressToken").map(id_key);
    let stream_no;
    {
        let mut r = lock(&session.routes);
        if r.posts.get(&key).is_some_and(|p| !p.tx.is_closed()) {
            return rpc_error(
                StatusCode::CONFLICT,
                id,
                jsonrpc::INVALID_REQUEST,
                "invalid request: a request with this id is still in flight",
            );
        }
        r.seq += 1;
        let seq = r.seq;
        stream_no = seq;
        if let Some(t) = &progress_token {
            r.progress.insert(t.clone(), key.clone());
        }
        r.posts.insert(
            key.clone(),
            PostStream {
                tx,
                seq,
                json_only,
                client_id,
                progress_token,
                client_progress,
                owner,
                derive_status: stateless && srv.settings.status_from_error_code,
                resumable: !stateless && !json_only,
                events: 0,
                detached: false,
            },
        );
        if stateless {
            // No client header goes upstream: the HTTP upstream link sets
            // `Mcp-Method`/`Mcp-Name` from the body warden decided.
            r.hints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), RequestHints { status: None });
        }
    }
    Arc::clone(&session.endpoint)
        .client_frame(Frame::Line(line), caller)
        .await;
    if !stateless && !json_only {
        // A session's stream opens at once with its priming event.
        let guards = StreamGuards {
            withdraw: None,
            _in_flight: Some(in_flight),
        };
        let mut resp = sse_response(None, rx, guards, Some(stream_no));
        if let Some(s) = new_session
            && let Ok(v) = HeaderValue::from_str(&s)
        {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
        return resp;
    }
    // The first message decides the form of the answer: a response the
    // upstream gave as a single JSON message goes back the same way, with
    // its HTTP status; anything else opens an SSE stream.
    let mut rx = rx;
    let Some(first) = rx.recv().await else {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            id,
            jsonrpc::UPSTREAM_UNAVAILABLE,
            "the session ended before the request was answered",
        );
    };
    let mut resp = if first.response && (json_only || first.status.is_some()) {
        let status = first
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            first.text,
        )
            .into_response()
    } else {
        let withdraw = stateless.then(|| Withdraw {
            endpoint: Arc::clone(&session.endpoint),
            routes: Arc::clone(&session.routes),
            id: serde_json::from_str(&key).unwrap_or(Value::Null),
            key: key.clone(),
            answered: false,
        });
        let guards = StreamGuards {
            withdraw,
            _in_flight: Some(in_flight),
        };
        sse_response(Some(first), rx, guards, None)
    };
    if let Some(s) = new_session
        && let Ok(v) = HeaderValue::from_str(&s)
    {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

/// What the HTTP server does with a client's notification or response
/// before the relay sees it; `Some` answers the POST instead.
///
/// - A cancellation (`notifications/cancelled`) in a session: the request
///   it names, while its stream is open, is answered at once with a
///   `-32800` error, so every request gets exactly one answer (a later
///   answer from the relay finds no stream and is dropped). Sessionless: it
///   acts only on a request of the same bearer principal, found by the
///   client's own id; anything else is dropped (without bearer auth a
///   sessionless request is cancelled by closing its stream).
/// - A sessionless response: accepted only for a question asked on a
///   stream of the same bearer principal; the check consumes nothing when
///   it fails.
fn before_relay(
    session: &Arc<Session>,
    kind: &Kind,
    msg: &Value,
    stateless: bool,
    caller: Option<&Caller>,
) -> Option<Response> {
    match kind {
        Kind::Notification { method } if method == "notifications/cancelled" => {
            let named = msg.pointer("/params/requestId")?;
            let mut r = lock(&session.routes);
            let key = if stateless {
                r.posts
                    .iter()
                    .find(|(_, p)| {
                        p.client_id.as_ref() == Some(named)
                            && p.owner.as_ref().is_some_and(|o| o.admits(caller))
                    })
                    .map(|(k, _)| k.clone())
            } else {
                Some(id_key(named)).filter(|k| r.posts.contains_key(k))
            };
            let Some(key) = key else {
                if stateless {
                    tracing::info!(
                        "a sessionless cancellation naming no request of its caller was dropped"
                    );
                }
                return None;
            };
            let mine: Value = serde_json::from_str(&key).unwrap_or(Value::Null);
            r.route(Outgoing {
                text: jsonrpc::error(
                    mine.clone(),
                    REQUEST_CANCELLED,
                    "request cancelled: the client cancelled it; warden stopped waiting (a call already forwarded upstream may still have taken effect)",
                    None,
                )
                .to_string(),
                related: Some(mine.clone()),
                response: true,
                detach: false,
            });
            drop(r);
            if stateless {
                let endpoint = Arc::clone(&session.endpoint);
                let cancel = jsonrpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": mine, "reason": "the client cancelled the request"})),
                );
                tokio::spawn(async move {
                    endpoint
                        .client_frame(Frame::Line(cancel.to_string().into_bytes()), None)
                        .await;
                });
            }
            None
        }
        Kind::Response { id } if stateless => {
            let mut r = lock(&session.routes);
            let k = id_key(id);
            let admitted = r.asked.get(&k).is_some_and(|(o, _)| o.admits(caller));
            if !admitted {
                tracing::warn!(
                    "a sessionless answer to a question not asked of its caller was refused"
                );
                return Some(rpc_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "forbidden: this answers no question warden asked this caller (sessionless answers need the bearer token of the request the question was asked on)",
                ));
            }
            r.asked.remove(&k);
            None
        }
        _ => None,
    }
}

/// A 2026-07-28 request's stream: when the client closes it before the
/// response, the request is cancelled (closing the stream is the
/// cancellation there).
pub(super) struct Withdraw {
    endpoint: Arc<dyn ClientEndpoint>,
    routes: Arc<Mutex<Routes>>,
    key: String,
    id: Value,
    pub(super) answered: bool,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        {
            let mut r = lock(&self.routes);
            r.remove_post(&self.key);
            r.hints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
        }
        let endpoint = Arc::clone(&self.endpoint);
        let cancel = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": self.id, "reason": "the client closed the stream"})),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                endpoint
                    .client_frame(Frame::Line(cancel.to_string().into_bytes()), None)
                    .await;
            });
        }
    }
}
