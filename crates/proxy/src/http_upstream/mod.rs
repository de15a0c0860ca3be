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
//!
//! # Files
//!
//! This file holds the link itself: the endpoint and its client
//! (`prepare`), the supervisor that reconnects, one session's state
//! (`Conn`) and the loop that sends the relay's messages. `exchange.rs`
//! POSTs one message and reads its answer (JSON or SSE); `streams.rs`
//! reads SSE response streams, resumes a broken one and keeps the GET
//! stream for server-initiated messages; `sse.rs` is the incremental
//! `text/event-stream` parser; `headers.rs` builds the headers (configured,
//! MCP standard, provenance) and refuses configured ones warden sets.

mod exchange;
mod headers;
mod sse;
mod streams;
#[cfg(test)]
mod tests;

pub use headers::{PROVENANCE_HEADERS, check_upstream_header, check_upstream_header_value};
pub(crate) use sse::{SseEvent, SseParser};

use crate::config::ProxyError;
use crate::framing::Frame;
use crate::jsonrpc::{self, Kind};
use crate::relay::Relay;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
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

/// The endpoint, the HTTP client used for it and the configured headers
/// every request carries.
#[derive(Clone)]
pub(crate) struct HttpUpstream {
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
}

/// Checks the URL and the headers and builds the client.
pub(crate) fn prepare(url: &str, headers: &[(String, String)]) -> Result<HttpUpstream, ProxyError> {
    let headers = headers::configured_headers(headers)?;
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
        // The session ended (its client is gone): closing the upstream was
        // warden's doing, not a crash to restart from.
        if shutdown.is_cancelled() || relay.is_closed() {
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

    fn inflight_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (CancellationToken, bool)>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
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
