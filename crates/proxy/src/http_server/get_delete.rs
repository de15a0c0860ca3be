//! GET and DELETE on the MCP path: a session's GET stream (what belongs
//! to no request's stream, starting with what was buffered while none was
//! open), resuming a request's stream with `Last-Event-ID`, and ending a
//! session.

use super::lock;
use super::respond::{accepts, rpc_error};
use super::service::McpService;
use super::session::Session;
use super::sse::{Sent, StreamGuards, get_sse_response, sse_response};
use crate::jsonrpc;
use crate::sessionless::is_stateless;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

/// A GET: the session's GET stream, or a resumed request stream.
pub(super) fn get_stream(srv: &McpService, uri: &Uri, headers: &HeaderMap) -> Response {
    if let Err(r) = srv.check_origin(headers, uri) {
        return *r;
    }
    let caller = match srv.authenticate(headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if is_stateless(headers, &Value::Null) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if !accepts(headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "not acceptable: the GET stream is text/event-stream",
        );
    }
    let session = match srv.session_of(headers, Value::Null, caller.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(resumed) = resume_stream(&session, headers) {
        return resumed;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut r = lock(&session.routes);
        while let Some(m) = r.buffered.pop_front() {
            let _ = tx.send(m);
        }
        // A new GET stream replaces an older one.
        r.get = Some(tx);
    }
    get_sse_response(rx)
}

/// A GET with `Last-Event-ID` naming a request's stream: what the stream
/// sent after that event, then (while the request is in flight) what comes
/// until its response. `None` when the id names no stream kept here.
fn resume_stream(session: &Session, headers: &HeaderMap) -> Option<Response> {
    let last = headers.get("last-event-id")?.to_str().ok()?;
    let (stream, n) = last.split_once('-')?;
    let (stream, n): (u64, u64) = (stream.parse().ok()?, n.parse().ok()?);
    let mut r = lock(&session.routes);
    let kept = r.replay.get(&stream);
    let in_flight = r.posts.values().any(|p| p.seq == stream);
    if kept.is_none() && !in_flight {
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut ended = false;
    for (m, text, response) in kept
        .into_iter()
        .flat_map(|k| k.events.iter())
        .filter(|e| e.0 > n)
    {
        ended |= *response;
        let _ = tx.send(Sent {
            text: text.clone(),
            response: *response,
            status: None,
            event_id: Some(format!("{stream}-{m}")),
        });
    }
    if !ended && let Some(p) = r.posts.values_mut().find(|p| p.seq == stream) {
        p.tx = tx;
        p.detached = false;
    }
    let guards = StreamGuards {
        withdraw: None,
        _in_flight: None,
    };
    Some(sse_response(None, rx, guards, None))
}

/// A DELETE: ends the session it names.
pub(super) async fn delete_session(srv: &McpService, uri: &Uri, headers: &HeaderMap) -> Response {
    if let Err(r) = srv.check_origin(headers, uri) {
        return *r;
    }
    let caller = match srv.authenticate(headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let session = match srv.session_of(headers, Value::Null, caller.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(id) = &session.id {
        lock(&srv.sessions).remove(id);
    }
    session.close().await;
    StatusCode::OK.into_response()
}
