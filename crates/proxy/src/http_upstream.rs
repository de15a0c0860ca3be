//! The Streamable HTTP upstream (`--upstream URL`): a client of the MCP
//! Streamable HTTP transport (2025-06-18, 2025-11-25 and the sessionless
//! 2026-07-28) that plugs into the relay like a child process does.
//!
//! Every message the relay sends upstream is POSTed to the URL with
//! `Accept: application/json, text/event-stream` and
//! `Content-Type: application/json`, plus `Mcp-Session-Id` once the server
//! gave one and `MCP-Protocol-Version` once the initialize result (or, for
//! 2026-07-28, the request's `_meta`) tells it. For 2026-07-28 requests the
//! standard `Mcp-Method` and `Mcp-Name` headers are set from the body. The
//! answer is one JSON message, an SSE stream of messages (multi-line
//! `data:`, comments, `id` and `retry` fields handled), or 202 for
//! notifications and responses. Requests are sent concurrently (a slow tool
//! does not hold up the others); notifications, responses and `initialize`
//! are sent in order. After initialize the optional GET stream for
//! server-initiated messages is opened (405: the server has none) and
//! reopened when it ends.
//!
//! Failures: a network error takes the link down (in-flight requests get an
//! error, the relay retries with its backoff); a 404 to a request carrying
//! a session id means the session expired: the link goes down and the next
//! one re-initializes (the relay replays the client's session). An HTTP
//! error to a request is answered to the client as a JSON-RPC error (the
//! server's own JSON-RPC error body when it sent one). On shutdown the
//! session is ended with DELETE.
//!
//! # Provenance headers
//!
//! A forwarded `tools/call` carries warden's provenance in
//! `_meta["io.warden/provenance"]`; toward an HTTP upstream the same facts
//! go in headers on its POST, for gateways and servers that read headers:
//!
//! | header                  | value                                  |
//! |-------------------------|----------------------------------------|
//! | `Warden-Via-Agent`      | `true` or `false`                      |
//! | `Warden-Server`         | the upstream's name in policies        |
//! | `Warden-User`           | whom the call acts for                 |
//! | `Warden-Agent`          | the agent (client) name                |
//! | `Warden-Session`        | warden's session id                    |
//! | `Warden-Decision-Id`    | the decision's id in the decision log  |
//! | `Warden-Policy-Version` | the policy version that decided        |
//! | `Warden-Provenance-Token` | with `--signing-key`: the signed token ([`crate::provenance_token`]) |
//!
//! A value that cannot travel as a plain header value (non-ASCII, control
//! characters, surrounding blanks) is sent as `=?base64?<base64>?=`, the
//! encoding of MCP's standard headers (SEP-2243). Warden builds each
//! upstream request itself, so no header a client sent to warden reaches
//! the upstream, and these cannot be spoofed.

use crate::config::ProxyError;
use crate::framing::{Frame, OVERSIZE_HEAD};
use crate::govern::PROVENANCE_KEY;
use crate::jsonrpc::{self, Kind};
use crate::provenance_token::{TOKEN_HEADER, TOKEN_META_KEY};
use crate::relay::Relay;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// An upstream that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// The first protocol version with the standard `Mcp-Method`/`Mcp-Name`
/// headers (and without sessions).
const STANDARD_HEADERS_PROTOCOL: &str = "2026-07-28";
const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
/// The provenance headers, by the `_meta` provenance field they carry.
pub const PROVENANCE_HEADERS: [(&str, &str); 7] = [
    ("via_agent", "warden-via-agent"),
    ("server", "warden-server"),
    ("user", "warden-user"),
    ("agent", "warden-agent"),
    ("session", "warden-session"),
    ("decision_id", "warden-decision-id"),
    ("policy_version", "warden-policy-version"),
];

/// Headers warden sets itself on upstream requests (or that frame the
/// request), which configured headers must not name.
const RESERVED_HEADERS: [&str; 13] = [
    "accept",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
    LAST_EVENT_ID_HEADER,
];

/// Whether `name` may be configured as an extra header on every request
/// to an HTTP upstream (`headers` in the gateway config). Refused, so a
/// configured header can never override what warden sets: the MCP headers
/// (any `Mcp-*`: `Mcp-Session-Id`, `MCP-Protocol-Version`, `Mcp-Method`,
/// `Mcp-Name` and those to come), warden's provenance headers (any
/// `Warden-*`), `Content-Type`, `Accept`, `Last-Event-ID`, `Host` and the
/// headers that frame the body or the connection. Names compare without
/// case. The error is a lowercase sentence naming the header.
pub fn check_upstream_header(name: &str) -> Result<(), String> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "`{name}` is not a valid HTTP header name (letters, digits and `-`, no spaces)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("mcp-") {
        return Err(format!(
            "`{name}` is an MCP transport header, which warden sets itself"
        ));
    }
    if lower.starts_with("warden-") {
        return Err(format!(
            "`{name}` is a warden provenance header, which warden sets itself"
        ));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "`{name}` is set by warden (or its HTTP client) on every upstream request"
        ));
    }
    Ok(())
}

/// Whether `value` can be sent as the value of a configured upstream
/// header: printable ASCII (spaces and tabs inside), no surrounding blanks
/// (a server would strip them, so the header would not say what was
/// configured). The error names no part of the value, which may be a
/// secret.
pub fn check_upstream_header_value(value: &str) -> Result<(), String> {
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("the value starts or ends with a blank".to_string());
    }
    // HeaderValue takes bytes above 0x7f (obs-text), which servers read
    // in differing charsets: only ASCII is sent as configured.
    if !value.is_ascii() || HeaderValue::from_str(value).is_err() {
        return Err(
            "the value has a character that cannot travel in an HTTP header (only printable ASCII)"
                .to_string(),
        );
    }
    Ok(())
}

/// The endpoint, the HTTP client used for it and the configured headers
/// every request carries.
#[derive(Clone)]
pub(crate) struct HttpUpstream {
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
}

/// The configured headers as a map, each checked; a name given twice
/// (in any case) is refused rather than one silently winning.
fn configured_headers(headers: &[(String, String)]) -> Result<HeaderMap, ProxyError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |message: String| ProxyError::Header {
            name: name.clone(),
            message,
        };
        check_upstream_header(name).map_err(bad)?;
        check_upstream_header_value(value).map_err(bad)?;
        let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(bad("it cannot be sent".to_string()));
        };
        // Kept out of any `Debug` print (reqwest's, a log line).
        v.set_sensitive(true);
        if map.insert(n, v).is_some() {
            return Err(bad("it is given more than once".to_string()));
        }
    }
    Ok(map)
}

/// Checks the URL and the headers and builds the client.
pub(crate) fn prepare(url: &str, headers: &[(String, String)]) -> Result<HttpUpstream, ProxyError> {
    let headers = configured_headers(headers)?;
    let bad = |message: String| ProxyError::Url {
        url: url.to_string(),
        message,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(HttpUpstream {
        url: parsed,
        client,
        headers,
    })
}

/// Runs the link until `shutdown`, starting a new one (a new session) when
/// it fails, with the relay's backoff.
pub(crate) async fn supervise(relay: Arc<Relay>, up: HttpUpstream, shutdown: CancellationToken) {
    let mut delay = relay.cfg.restart_initial;
    let mut epoch = 0u64;
    loop {
        epoch += 1;
        let started = Instant::now();
        let reason = run_instance(&relay, &up, epoch, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            delay = relay.cfg.restart_initial;
        }
        tracing::warn!(
            "HTTP upstream {reason}; reconnecting in {} ms",
            delay.as_millis()
        );
        relay.link_down(epoch, reason, delay).await;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(relay.cfg.restart_max);
    }
}

/// One connection (one MCP session) to the upstream.
struct Conn {
    relay: Arc<Relay>,
    up: HttpUpstream,
    epoch: u64,
    session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
    /// Set when the link must go down; the reason is in `why`.
    failed: CancellationToken,
    /// Requests in flight (by id key): what withdraws each, and whether it
    /// went with a protocol version without `notifications/cancelled` on
    /// HTTP (2026-07-28: closing the stream is the cancellation).
    inflight: Mutex<HashMap<String, (CancellationToken, bool)>>,
    why: Mutex<Option<String>>,
}

fn locked<T: Clone>(m: &Mutex<T>) -> T {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Conn {
    fn fail(&self, reason: String) {
        let mut why = self.why.lock().unwrap_or_else(|p| p.into_inner());
        if why.is_none() {
            *why = Some(reason);
        }
        self.failed.cancel();
    }

    fn max(&self) -> usize {
        self.relay.cfg.max_message_bytes
    }

    /// Headers every request of this session carries: the configured
    /// ones (which name none warden sets), then the session's.
    fn session_headers(&self, msg: Option<&Value>) -> HeaderMap {
        let mut h = self.up.headers.clone();
        let from_meta = msg
            .and_then(jsonrpc::meta)
            .and_then(|m| m.get(PROTOCOL_VERSION_META))
            .and_then(Value::as_str)
            .map(str::to_string);
        // A 2026-07-28 message has no session: the one warden's own
        // initialize opened (to learn the upstream's name) must not go with
        // it, or the upstream reads it as a session-era request.
        let sessionless = from_meta
            .as_deref()
            .is_some_and(|p| p >= STANDARD_HEADERS_PROTOCOL);
        if !sessionless
            && let Some(s) = locked(&self.session)
            && let Ok(v) = HeaderValue::from_str(&s)
        {
            h.insert(SESSION_HEADER, v);
        }
        if let Some(p) = from_meta.or_else(|| locked(&self.protocol))
            && let Ok(v) = HeaderValue::from_str(&p)
        {
            h.insert(PROTOCOL_HEADER, v);
        }
        h
    }

    /// Feeds one message the upstream sent; remembers the protocol version
    /// from an initialize result.
    async fn feed(&self, data: Vec<u8>, about: Option<&Value>, is_init: bool) {
        if is_init
            && let Ok(v) = serde_json::from_slice::<Value>(&data)
            && let Some(p) = v.pointer("/result/protocolVersion").and_then(Value::as_str)
        {
            *self.protocol.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.to_string());
        }
        self.relay
            .on_upstream_frame_about(self.epoch, Frame::Line(data), about.cloned())
            .await;
    }

    async fn feed_too_large(&self, len: usize, head: Vec<u8>) {
        self.relay
            .on_upstream_frame(self.epoch, Frame::TooLarge { len, head })
            .await;
    }

    /// Answers a request the upstream did not answer, so the relay does not
    /// wait for it.
    async fn answer_for(&self, id: &Value, code: i64, message: String) {
        let msg = jsonrpc::error(id.clone(), code, message, None);
        self.feed(msg.to_string().into_bytes(), None, false).await;
    }

    /// POSTs one message and handles the answer.
    async fn post(self: &Arc<Self>, text: String, msg: Value, kind: Kind) {
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

    fn inflight_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (CancellationToken, bool)>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Reads an SSE stream, feeding each message. Returns whether the
    /// response to `request_id` was among them.
    async fn read_sse(
        &self,
        mut resp: reqwest::Response,
        request_id: Option<&Value>,
        is_init: bool,
        last_event: &mut Option<(Option<String>, Option<u64>)>,
    ) -> bool {
        let mut parser = SseParser::new(self.max());
        let mut answered = false;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("upstream SSE stream ended: {}", error_chain(&e));
                    break;
                }
            };
            for ev in parser.push(&chunk) {
                match ev {
                    SseEvent::Message { data, .. } => {
                        if let Some(id) = request_id
                            && response_id(&data).as_ref() == Some(id)
                        {
                            answered = true;
                        }
                        self.feed(data, request_id, is_init).await;
                    }
                    SseEvent::TooLarge { len, head } => self.feed_too_large(len, head).await,
                }
            }
            if answered {
                // The response ends a request's stream; a resumed GET
                // stream may stay open.
                break;
            }
            if let Some(l) = last_event {
                l.0 = parser.last_id.clone();
                l.1 = parser.retry_ms;
            }
        }
        if let Some(l) = last_event {
            l.0 = parser.last_id.clone();
            l.1 = parser.retry_ms;
        }
        answered
    }

    /// Resumes the response stream of request `id` after the server closed
    /// it: GET with `Last-Event-ID`, the first time at once, then after the
    /// server's `retry` (at most 5 s), up to 5 times. Returns whether the
    /// response came.
    async fn resume(&self, id: &Value, last: &mut Option<(Option<String>, Option<u64>)>) -> bool {
        for attempt in 0..5u32 {
            if attempt > 0 {
                let retry = last.as_ref().and_then(|l| l.1).unwrap_or(1000).min(5000);
                tokio::time::sleep(Duration::from_millis(retry)).await;
            }
            let Some(event_id) = last.as_ref().and_then(|l| l.0.clone()) else {
                return false;
            };
            let mut headers = self.session_headers(None);
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            let Ok(v) = HeaderValue::from_str(&event_id) else {
                return false;
            };
            headers.insert(LAST_EVENT_ID_HEADER, v);
            let resp = match self
                .up
                .client
                .request(Method::GET, self.up.url.clone())
                .headers(headers)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("resuming a response stream failed: {}", error_chain(&e));
                    continue;
                }
            };
            let is_sse = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
            if !resp.status().is_success() || !is_sse {
                tracing::debug!(
                    "the upstream refused to resume a response stream (HTTP {})",
                    resp.status()
                );
                return false;
            }
            if self.read_sse(resp, Some(id), false, last).await {
                return true;
            }
        }
        false
    }

    /// The GET stream for server-initiated messages, reopened when it ends
    /// (with `Last-Event-ID`), until the server says it has none.
    async fn listen(self: Arc<Self>) {
        let mut last: Option<(Option<String>, Option<u64>)> = Some((None, None));
        loop {
            let mut headers = self.session_headers(None);
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            if let Some((Some(id), _)) = &last
                && let Ok(v) = HeaderValue::from_str(id)
            {
                headers.insert(LAST_EVENT_ID_HEADER, v);
            }
            let sent_session = headers.contains_key(SESSION_HEADER);
            let resp = self
                .up
                .client
                .request(Method::GET, self.up.url.clone())
                .headers(headers)
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
            let is_sse = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
            if !status.is_success() || !is_sse {
                if status != StatusCode::METHOD_NOT_ALLOWED {
                    tracing::debug!("upstream has no GET stream (HTTP {status})");
                }
                return;
            }
            self.read_sse(resp, None, false, &mut last).await;
            let retry = last.as_ref().and_then(|l| l.1).unwrap_or(1000).min(30_000);
            tokio::time::sleep(Duration::from_millis(retry)).await;
        }
    }

    /// Ends the session on the server.
    async fn delete(&self) {
        if locked(&self.session).is_none() {
            return;
        }
        let req = self
            .up
            .client
            .request(Method::DELETE, self.up.url.clone())
            .headers(self.session_headers(None))
            .send();
        match tokio::time::timeout(Duration::from_secs(2), req).await {
            Ok(Ok(r)) if r.status().is_success() => {}
            Ok(Ok(r)) => tracing::debug!("upstream answered DELETE with HTTP {}", r.status()),
            Ok(Err(e)) => tracing::debug!("DELETE of the upstream session failed: {e}"),
            Err(_) => tracing::debug!("DELETE of the upstream session timed out"),
        }
    }
}

/// Runs one session with the upstream until it fails or `shutdown`.
async fn run_instance(
    relay: &Arc<Relay>,
    up: &HttpUpstream,
    epoch: u64,
    shutdown: &CancellationToken,
) -> String {
    let conn = Arc::new(Conn {
        relay: Arc::clone(relay),
        up: up.clone(),
        epoch,
        session: Mutex::new(None),
        protocol: Mutex::new(None),
        failed: CancellationToken::new(),
        why: Mutex::new(None),
        inflight: Mutex::new(HashMap::new()),
    });
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let recovering = epoch > 1 && relay.needs_replay();
    relay.link_started(epoch, tx, recovering);
    let mut tasks = JoinSet::new();
    if recovering {
        let r = Arc::clone(relay);
        let c = Arc::clone(&conn);
        tasks.spawn(async move {
            if let Err(e) = r.replay_session(epoch).await {
                tracing::error!("cannot restore the session on the upstream: {e}");
                c.fail("could not be re-initialized".to_string());
            }
        });
    }
    let mut listening = false;
    let reason = loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            m = rx.recv() => {
                let Some(text) = m else {
                    conn.delete().await;
                    break "was closed".to_string();
                };
                let Ok(msg) = serde_json::from_str::<Value>(&text) else { continue };
                let Ok(kind) = jsonrpc::classify(&msg) else { continue };
                match &kind {
                    Kind::Request { method, .. } if method != "initialize" => {
                        let c = Arc::clone(&conn);
                        tasks.spawn(async move { c.post(text, msg, kind).await });
                    }
                    Kind::Request { .. } => {
                        // In order, so the session id is known before the
                        // next message goes out.
                        tokio::select! {
                            () = conn.post(text, msg, kind) => {}
                            () = shutdown.cancelled() => {}
                        }
                        if !listening && locked(&conn.protocol).is_some() {
                            listening = true;
                            tasks.spawn(Arc::clone(&conn).listen());
                        }
                    }
                    Kind::Notification { method } if method == "notifications/cancelled" => {
                        // Withdraw the request's own HTTP request; under
                        // 2026-07-28 that is the whole cancellation.
                        let withdrawn = msg
                            .pointer("/params/requestId")
                            .and_then(|id| conn.inflight_lock().remove(&jsonrpc::id_key(id)));
                        let stateless = match withdrawn {
                            Some((token, stateless)) => {
                                token.cancel();
                                stateless
                            }
                            None => false,
                        };
                        if !stateless {
                            tokio::select! {
                                () = conn.post(text, msg, kind) => {}
                                () = shutdown.cancelled() => {}
                            }
                        }
                    }
                    _ => {
                        tokio::select! {
                            () = conn.post(text, msg, kind) => {}
                            () = shutdown.cancelled() => {}
                        }
                    }
                }
            }
            () = conn.failed.cancelled() => {
                break locked(&conn.why).unwrap_or_else(|| "failed".to_string());
            }
            () = shutdown.cancelled() => {
                tasks.abort_all();
                conn.delete().await;
                break "was stopped".to_string();
            }
        }
    };
    tasks.abort_all();
    reason
}

/// `Mcp-Method` and `Mcp-Name` (2026-07-28), from the body.
fn standard_headers(h: &mut HeaderMap, method: &str, params: Option<&Value>) {
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("mcp-method", v);
    }
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => return,
    };
    if let Some(name) = params.and_then(|p| p.get(key)).and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(&header_text(name))
    {
        h.insert("mcp-name", v);
    }
}

/// The provenance headers of a forwarded tools/call, from its `_meta`.
fn provenance_headers(h: &mut HeaderMap, msg: &Value) {
    let Some(p) = jsonrpc::meta(msg).and_then(|m| m.get(PROVENANCE_KEY)) else {
        return;
    };
    for (field, header) in PROVENANCE_HEADERS {
        let text = match p.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if let Ok(v) = HeaderValue::from_str(&header_text(&text)) {
            h.insert(HeaderName::from_static(header), v);
        }
    }
    // The signed token (with --signing-key) is base64url text already.
    if let Some(token) = jsonrpc::meta(msg)
        .and_then(|m| m.get(TOKEN_META_KEY))
        .and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(token)
    {
        h.insert(HeaderName::from_static(TOKEN_HEADER), v);
    }
}

/// A header value as is, or `=?base64?…?=` when it cannot travel plainly.
pub(crate) fn header_text(value: &str) -> String {
    let blank_edge = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let printable = value.chars().all(|c| (' '..='~').contains(&c));
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    if printable && !blank_edge && !looks_encoded {
        value.to_string()
    } else {
        format!("=?base64?{}?=", base64(value.as_bytes()))
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn response_id(data: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(data).ok()?;
    match jsonrpc::classify(&v) {
        Ok(Kind::Response { id }) => Some(id),
        _ => None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
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

/// One event of an SSE stream that carries data.
#[derive(Debug, PartialEq)]
pub(crate) enum SseEvent {
    Message {
        event: String,
        data: Vec<u8>,
    },
    /// An event whose data is over the limit.
    TooLarge {
        len: usize,
        head: Vec<u8>,
    },
}

/// An incremental `text/event-stream` parser (the WHATWG rules: lines end
/// in LF, CRLF or CR; `:` starts a comment; `data` lines are joined with
/// LF; `id` and `retry` are remembered; a blank line dispatches).
pub(crate) struct SseParser {
    max: usize,
    line: Vec<u8>,
    line_over: bool,
    after_cr: bool,
    data: Vec<u8>,
    data_len: usize,
    has_data: bool,
    event: String,
    pub(crate) last_id: Option<String>,
    pub(crate) retry_ms: Option<u64>,
}

impl SseParser {
    pub(crate) fn new(max: usize) -> Self {
        SseParser {
            max,
            line: Vec::new(),
            line_over: false,
            after_cr: false,
            data: Vec::new(),
            data_len: 0,
            has_data: false,
            event: String::new(),
            last_id: None,
            retry_ms: None,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ => {
                    // A line longer than the limit is kept only up to what
                    // finding its id needs.
                    if self.line.len() < self.max.saturating_add(16) {
                        self.line.push(b);
                    } else {
                        self.line_over = true;
                        self.data_len += 1;
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        let over = std::mem::replace(&mut self.line_over, false);
        if line.is_empty() && !over {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data_len += 1;
                    if self.data.len() < self.max {
                        self.data.push(b'\n');
                    }
                }
                self.has_data = true;
                self.data_len += value.len();
                let room = (self.max + 1).saturating_sub(self.data.len());
                self.data.extend_from_slice(&value[..value.len().min(room)]);
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" => {
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or("").parse::<u64>() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let data = std::mem::take(&mut self.data);
        let len = std::mem::replace(&mut self.data_len, 0);
        let event = std::mem::take(&mut self.event);
        if !std::mem::replace(&mut self.has_data, false) {
            return;
        }
        if len > self.max {
            let mut head = data;
            head.truncate(OVERSIZE_HEAD);
            out.push(SseEvent::TooLarge { len, head });
        } else if !data.iter().all(u8::is_ascii_whitespace) {
            // MCP sends messages as `message` events (or unnamed ones).
            out.push(SseEvent::Message { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(max);
        chunks.iter().flat_map(|c| p.push(c)).collect()
    }

    fn msg(data: &str) -> SseEvent {
        SseEvent::Message {
            event: "message".into(),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn parses_events_split_across_chunks_with_comments_and_multiline_data() {
        let ev = messages(
            &[
                b": keep-alive\n\nevent: mess",
                b"age\nid: 7\nretry: 1500\ndata: {\"a\":\r\ndata:  1}\r\n\r",
                b"\nevent: message\ndata:{\"b\":2}\r\r",
            ],
            1000,
        );
        assert_eq!(ev, vec![msg("{\"a\":\n 1}"), msg("{\"b\":2}")]);
        let mut p = SseParser::new(100);
        p.push(b"id: abc\nretry: 20\ndata: x\n\n");
        assert_eq!(p.last_id.as_deref(), Some("abc"));
        assert_eq!(p.retry_ms, Some(20));
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_oversize_one_is_reported() {
        assert!(messages(&[b"event: message\nid: 1\n\n"], 100).is_empty());
        let mut big = b"data: {\"id\":5,\"x\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 500));
        big.extend_from_slice(b"\"}\n\ndata: {}\n\n");
        let ev = messages(&[&big], 100);
        assert_eq!(ev.len(), 2);
        match &ev[0] {
            SseEvent::TooLarge { len, head } => {
                assert_eq!(*len, 515);
                assert!(head.starts_with(b"{\"id\":5"));
            }
            other => panic!("expected an oversize event, got {other:?}"),
        }
        assert_eq!(
            ev[1],
            SseEvent::Message {
                event: String::new(),
                data: b"{}".to_vec()
            }
        );
    }

    #[test]
    fn configured_headers_cannot_name_what_warden_sets() {
        for name in [
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "mcp-method",
            "Mcp-Name",
            "Mcp-Param-Region",
            "Content-Type",
            "ACCEPT",
            "Last-Event-ID",
            "Warden-User",
            "warden-provenance-token",
            "Content-Length",
            "Transfer-Encoding",
            "Host",
        ] {
            let err = check_upstream_header(name).expect_err(name);
            assert!(err.contains(&format!("`{name}`")), "{err}");
            let e = prepare("http://127.0.0.1:1/mcp", &[(name.into(), "x".into())])
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert!(matches!(e, ProxyError::Header { .. }), "{e}");
        }
        for name in ["", "Bad Name", "a:b", "x\n"] {
            assert!(check_upstream_header(name).is_err(), "{name:?}");
        }
        for name in ["Authorization", "X-Tenant", "User-Agent", "Cookie"] {
            assert_eq!(check_upstream_header(name), Ok(()), "{name}");
        }
        for value in [
            " Bearer x",
            "Bearer x\t",
            "a\r\nX-Evil: 1",
            "José",
            "a\u{7f}",
        ] {
            let err = check_upstream_header_value(value).expect_err(value);
            assert!(
                !err.contains(value.trim()),
                "the value is not echoed: {err}"
            );
        }
        assert_eq!(check_upstream_header_value("Bearer a b\tc"), Ok(()));
        let twice = [
            ("Authorization".to_string(), "a".to_string()),
            ("authorization".to_string(), "b".to_string()),
        ];
        let e = prepare("http://127.0.0.1:1/mcp", &twice)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    /// A Streamable HTTP server that records the method and headers of
    /// every request and answers initialize, notifications and tools/list.
    async fn recording_server() -> (String, Arc<Mutex<Vec<(String, axum::http::HeaderMap)>>>) {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;
        let seen: Seen = Arc::default();
        let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
        let app = axum::Router::new().route(
            "/mcp",
            axum::routing::post(move |headers: HeaderMap, body: String| async move {
                s1.lock().unwrap().push(("POST".into(), headers));
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let Some(id) = msg
                    .get("id")
                    .cloned()
                    .filter(|_| msg.get("method").is_some())
                else {
                    return StatusCode::ACCEPTED.into_response();
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => serde_json::json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "recorder", "version": "1"}}),
                    "tools/list" => serde_json::json!({"tools": []}),
                    _ => serde_json::json!({}),
                };
                (
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", "up-1"),
                    ],
                    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                )
                    .into_response()
            })
            .get(move |headers: HeaderMap| async move {
                s2.lock().unwrap().push(("GET".into(), headers));
                StatusCode::METHOD_NOT_ALLOWED
            })
            .delete(move |headers: HeaderMap| async move {
                s3.lock().unwrap().push(("DELETE".into(), headers));
                StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/mcp"), seen)
    }

    #[tokio::test]
    async fn every_request_to_the_upstream_carries_the_configured_headers() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let (url, seen) = recording_server().await;
        let mut cfg = crate::ProxyConfig::new(crate::Upstream::Url(url), "alice");
        cfg.upstream_headers = vec![
            ("Authorization".into(), "Bearer up-t0ken".into()),
            ("X-Tenant".into(), "lab".into()),
        ];
        let mut sources = warden_lang::Sources::new();
        sources.add("t.policy", "default deny\n");
        let compiled = warden_lang::compile_policy_set(&sources).expect("compiles");
        let engine = Arc::new(warden_engine::Engine::new(
            warden_engine::PolicyBundle::new(compiled.policy_set, "v".into()),
            warden_engine::EngineOptions::default(),
        ));
        let log = Arc::new(warden_engine::DecisionLog::to_writer(std::io::sink()));
        let (_reload, reloads) = mpsc::unbounded_channel();
        let (client, proxy_side) = tokio::io::duplex(1 << 16);
        let (proxy_in, proxy_out) = tokio::io::split(proxy_side);
        let session = tokio::spawn(crate::serve(cfg, engine, log, reloads, proxy_in, proxy_out));
        let (client_in, mut client_out) = tokio::io::split(client);
        let mut lines = tokio::io::BufReader::new(client_in).lines();
        for msg in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        ] {
            client_out.write_all(msg.as_bytes()).await.expect("written");
            client_out.write_all(b"\n").await.expect("written");
        }
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&line).expect("JSON");
                if v["id"] == 2 {
                    return v;
                }
            }
            panic!("the proxy closed before answering tools/list");
        })
        .await
        .expect("tools/list answered in time");
        assert!(answered.get("result").is_some(), "{answered}");
        drop(client_out);
        drop(lines);
        tokio::time::timeout(Duration::from_secs(10), session)
            .await
            .expect("the session ends")
            .expect("no panic")
            .expect("no error");
        let seen = seen.lock().unwrap();
        let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
        assert!(
            methods.iter().filter(|m| **m == "POST").count() >= 3 && methods.contains(&"DELETE"),
            "initialize, initialized and tools/list POSTed and the session deleted: {methods:?}"
        );
        for (method, headers) in seen.iter() {
            assert_eq!(headers["authorization"], "Bearer up-t0ken", "{method}");
            assert_eq!(headers["x-tenant"], "lab", "{method}");
            assert_eq!(
                headers.get_all("authorization").iter().count(),
                1,
                "{method}"
            );
        }
        // Warden's own headers still go as warden sets them.
        let (_, tools_list) = seen
            .iter()
            .filter(|(m, _)| m == "POST")
            .nth(2)
            .expect("third POST");
        assert_eq!(tools_list["mcp-session-id"], "up-1");
        assert_eq!(tools_list["content-type"], "application/json");
    }

    #[test]
    fn header_values_that_cannot_travel_plainly_are_base64() {
        assert_eq!(header_text("alice"), "alice");
        assert_eq!(header_text("José"), "=?base64?Sm9zw6k=?=");
        assert_eq!(header_text(" x"), "=?base64?IHg=?=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
