//! One message POSTed to the upstream and its answer: the request's
//! headers, withdrawing it when the client cancels, HTTP errors turned
//! into JSON-RPC errors, and the answer read as JSON (one message or
//! several in a row) or as an SSE stream.

use super::headers::{provenance_headers, standard_headers, trace_headers};
use super::{
    Conn, PROTOCOL_HEADER, SESSION_HEADER, STANDARD_HEADERS_PROTOCOL, error_chain, response_id,
};
use crate::framing::OVERSIZE_HEAD;
use crate::jsonrpc::{self, Kind};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Conn {
    /// POSTs one message and handles the answer.
    pub(super) async fn post(self: &Arc<Self>, text: String, msg: Value, kind: Kind) {
        let (request_id, method) = match &kind {
            Kind::Request { id, method } => (Some(id.clone()), Some(method.as_str())),
            Kind::Notification { method } => (None, Some(method.as_str())),
            Kind::Response { .. } => (None, None),
        };
        let is_init = method == Some("initialize");
        let mut headers = self.session_headers(Some(&msg));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(method) = method
            && headers
                .get(PROTOCOL_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p >= STANDARD_HEADERS_PROTOCOL)
        {
            standard_headers(&mut headers, method, msg.get("params"));
        }
        // No header the client sent to warden goes on: `Mcp-Method` and
        // `Mcp-Name` are set above from the body warden decided, so a
        // backend routing by header runs what was decided (a client's
        // header contradicting its body is refused by the HTTP server).
        if method == Some("tools/call") {
            provenance_headers(&mut headers, &msg);
        }
        trace_headers(&mut headers, &msg);
        let stateless = headers
            .get(PROTOCOL_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p >= STANDARD_HEADERS_PROTOCOL);
        // A request in flight can be withdrawn (the client closed its
        // stream, or cancelled it): the HTTP request is dropped.
        let cancel = CancellationToken::new();
        if let Some(id) = &request_id {
            self.inflight_lock()
                .insert(jsonrpc::id_key(id), (cancel.clone(), stateless));
        }
        tokio::select! {
            () = self.exchange(text, headers, request_id.clone(), method, is_init) => {}
            () = cancel.cancelled() => {
                tracing::debug!("request withdrawn; its upstream HTTP request is dropped");
            }
        }
        if let Some(id) = &request_id {
            self.inflight_lock().remove(&jsonrpc::id_key(id));
        }
    }

    /// Sends one POST and handles the answer.
    async fn exchange(
        &self,
        text: String,
        headers: HeaderMap,
        request_id: Option<Value>,
        method: Option<&str>,
        is_init: bool,
    ) {
        let sent_session = headers.contains_key(SESSION_HEADER);
        let resp = self
            .up
            .client
            .post(self.up.url.clone())
            .headers(headers)
            .body(text)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.fail(format!("is not reachable ({})", error_chain(&e)));
                return;
            }
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && sent_session {
            self.fail("ended the session (HTTP 404)".to_string());
            return;
        }
        if is_init
            && status.is_success()
            && let Some(s) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.to_string());
        }
        if !status.is_success() {
            let body = read_limited(resp, self.max()).await;
            let Some(id) = request_id else {
                tracing::warn!(
                    "upstream answered a {} with HTTP {status}: {}",
                    method.unwrap_or("response"),
                    String::from_utf8_lossy(&clip_bytes(&body, 200))
                );
                return;
            };
            // The server's JSON-RPC error, if it sent one, under our id.
            if let Ok(mut v) = serde_json::from_slice::<Value>(&body)
                && v.get("error").is_some_and(Value::is_object)
            {
                self.relay.note_upstream_status(&id, status.as_u16());
                v["id"] = id;
                // Only the id changes (finding 16).
                let text = match std::str::from_utf8(&body) {
                    Ok(t) => crate::raw::rewrite(t, &v),
                    Err(_) => v.to_string(),
                };
                self.feed(text.into_bytes(), None, false).await;
                return;
            }
            self.answer_for(
                &id,
                jsonrpc::UPSTREAM_UNAVAILABLE,
                format!(
                    "the upstream MCP server answered HTTP {status}: {}",
                    String::from_utf8_lossy(&clip_bytes(&body, 300)).trim()
                ),
            )
            .await;
            return;
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let mut last = Some((None, None));
            let mut answered = self
                .read_sse(resp, request_id.as_ref(), is_init, &mut last)
                .await;
            // A stream closed before the response, with an event id to
            // resume from (SEP-1699 polling): resume it with GET and
            // Last-Event-ID, and close the client's stream alike.
            if let (Some(id), Some((Some(_), _))) = (&request_id, &last)
                && !answered
                && !self.failed.is_cancelled()
            {
                self.relay.upstream_stream_broke(id).await;
                answered = self.resume(id, &mut last).await;
            }
            if let Some(id) = request_id
                && !answered
                && !self.failed.is_cancelled()
            {
                self.answer_for(
                    &id,
                    jsonrpc::UPSTREAM_UNAVAILABLE,
                    "the upstream MCP server closed its response stream before answering; the request may or may not have taken effect".to_string(),
                )
                .await;
            }
        } else if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            if let Some(id) = request_id {
                self.answer_for(
                    &id,
                    jsonrpc::UPSTREAM_UNAVAILABLE,
                    format!("the upstream MCP server answered the request with HTTP {status} and no response"),
                )
                .await;
            }
        } else {
            self.read_json(resp, status, request_id.as_ref(), is_init)
                .await;
        }
    }

    /// Reads a JSON body: normally one message, but also several in a
    /// row (newline-delimited, as some servers stream a long-lived request's
    /// notifications in an `application/json` body), each fed as soon as
    /// it is complete. When the body's first message is the response, the
    /// HTTP status is noted for the client.
    async fn read_json(
        &self,
        mut resp: reqwest::Response,
        status: StatusCode,
        request_id: Option<&Value>,
        is_init: bool,
    ) {
        let max = self.max();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0usize;
        let mut answered = false;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    if fed == 0 {
                        self.fail(format!("broke off an answer ({})", error_chain(&e)));
                        return;
                    }
                    tracing::debug!("upstream JSON stream ended: {}", error_chain(&e));
                    break;
                }
            };
            buf.extend_from_slice(&chunk);
            // Parse only when the body so far could end a message (a
            // message is an object), not on every chunk of a large one.
            if buf.iter().rev().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
                if buf.len() > max {
                    let len = buf.len();
                    buf.truncate(OVERSIZE_HEAD);
                    self.feed_too_large(len, buf).await;
                    return;
                }
                continue;
            }
            // Complete messages so far, each fed as the text it came as
            // (finding 16: not re-serialised from a `Value`).
            let mut it = serde_json::Deserializer::from_slice(&buf)
                .into_iter::<Box<serde_json::value::RawValue>>();
            let mut done = 0usize;
            let mut messages = Vec::new();
            while let Some(Ok(v)) = it.next() {
                done = it.byte_offset();
                messages.push(v);
            }
            if !messages.is_empty() {
                buf.drain(..done);
            }
            for v in messages {
                let text = v.get().as_bytes();
                if let Some(id) = request_id
                    && response_id(text)
                        .or_else(|| {
                            // JSON serde_json will not decode (finding 6).
                            std::str::from_utf8(text)
                                .ok()
                                .and_then(crate::raw::envelope)
                                .filter(crate::raw::Envelope::is_response)
                                .and_then(|e| e.id())
                        })
                        .as_ref()
                        == Some(id)
                {
                    if fed == 0 {
                        self.relay.note_upstream_status(id, status.as_u16());
                    }
                    answered = true;
                }
                fed += 1;
                self.feed(text.to_vec(), request_id, is_init).await;
            }
            if buf.len() > max {
                let len = buf.len();
                buf.truncate(OVERSIZE_HEAD);
                self.feed_too_large(len, buf).await;
                return;
            }
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            // What is left does not parse: the relay reports it.
            if fed == 0
                && let Some(id) = request_id
            {
                self.relay.note_upstream_status(id, status.as_u16());
            }
            self.feed(buf, request_id, is_init).await;
            return;
        }
        if fed == 0 {
            if let Some(id) = request_id {
                self.answer_for(
                    id,
                    jsonrpc::UPSTREAM_UNAVAILABLE,
                    format!("the upstream MCP server answered HTTP {status} with an empty body"),
                )
                .await;
            }
        } else if let Some(id) = request_id
            && !answered
            && !self.failed.is_cancelled()
        {
            self.answer_for(
                id,
                jsonrpc::UPSTREAM_UNAVAILABLE,
                "the upstream MCP server ended its answer before the response; the request may or may not have taken effect".to_string(),
            )
            .await;
        }
    }
}

fn clip_bytes(b: &[u8], n: usize) -> Vec<u8> {
    b[..b.len().min(n)].to_vec()
}

/// Reads a body of at most `max` bytes (an error body); a larger one, or
/// one broken off, reads as empty.
async fn read_limited(mut resp: reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if body.len() + chunk.len() > max {
            return Vec::new();
        }
        body.extend_from_slice(&chunk);
    }
    body
}
