//! Serving MCP's Streamable HTTP transport (`warden proxy --listen
//! HOST:PORT`): an axum server at `http://HOST:PORT/mcp` (POST, GET,
//! DELETE).
//!
//! # Sessions
//!
//! A POST of `initialize` without `Mcp-Session-Id` starts a session: its
//! own [`Relay`] with its own upstream link (a fresh child process for a
//! command upstream, its own HTTP session for a URL upstream), and a new
//! random `Mcp-Session-Id` in the response. Later requests must carry it:
//! 400 without, 404 when unknown (ended, or timed out). DELETE ends the
//! session (its relay closes, its upstream stops), and so does
//! `session_idle_timeout` without requests and without open streams; a
//! client dropping a stream does not. Requests of protocol 2026-07-28
//! (`MCP-Protocol-Version: 2026-07-28` and the same version in the
//! request's `_meta`) have no session: they share one sessionless relay,
//! made on first use, and are kept apart by [`crate::sessionless`]: both
//! versions required and equal, standard headers matching the body, a
//! random id and progress token per POST (restored toward the client),
//! cancellations and answers accepted only from the request's own bearer
//! principal.
//!
//! A session's client cancelling a request whose stream is open gets it
//! answered at once with a -32800 error: every request is answered exactly
//! once. The listener's own limits (header and body read timeouts, a
//! connection cap) are [`crate::listener`]'s.
//!
//! # Messages
//!
//! A POST body is one JSON-RPC message: invalid JSON is answered with HTTP
//! 400 and a -32700 error, a batch or a non-message with 400 and -32600, a
//! body over `max_message_bytes` with 413. Notifications and responses get
//! 202. A request gets a `text/event-stream` carrying the messages that
//! belong to it until its response (or `application/json` with just the
//! response when the client accepts only JSON).
//!
//! Routing what the relay sends to the client: a response goes to the POST
//! stream of its request. A request or notification goes to the POST stream
//! of the request it relates to when that is known (warden's confirmation
//! `elicitation/create` for its `tools/call`; what an HTTP upstream sent on
//! a request's stream; `notifications/progress` by its `progressToken`;
//! `notifications/cancelled` by its request id), else to the session's GET
//! stream if one is open, else to the oldest open POST stream, else it is
//! buffered (the last [`MAX_BUFFERED`]) until a GET stream opens.
//!
//! Resumption (SEP-1699, sessions only): a request's SSE stream starts with
//! a priming event (id `<stream>-0`, empty data, `retry`), its events have
//! ids `<stream>-<n>`, and the last events of recent streams are kept; a
//! GET with `Last-Event-ID` gets what that stream sent after the event and
//! then the rest of it until its response. When an HTTP upstream closes a
//! request's stream before answering (polling), warden resumes it upstream
//! and closes the client's stream the same way, keeping what comes for the
//! client to resume. 2026-07-28 streams are not resumable; there the first
//! message decides the answer's form: a response the upstream gave as one
//! JSON message goes back as one, with the upstream's HTTP status (for a
//! command upstream, SEP-2575's status for the error code), else an SSE
//! stream; a client closing that stream cancels the request.
//!
//! # Security
//!
//! An `Origin` header, when present, must be a loopback origin
//! (`http://localhost`, `127.0.0.1` or `[::1]`, any port, http or https) or
//! one given with `--allow-origin`; else 403 (DNS rebinding). When bound to
//! a loopback address the `Host` must be loopback too. Bodies are limited
//! to `max_message_bytes`.
//!
//! # Bearer authentication
//!
//! With a [`crate::bearer::Verifier`] configured (`--jwt-issuer`, ...),
//! every request to `/mcp` (POST, GET, DELETE) needs `Authorization:
//! Bearer <JWT>`; without a valid one the answer is 401 with
//! `WWW-Authenticate: Bearer realm="warden", error="invalid_token",
//! error_description="<reason>", resource_metadata="<url>"` and a JSON-RPC
//! error body giving the reason, and nothing reaches the relay or the
//! upstream. The RFC 9728 protected resource metadata is served at
//! `/.well-known/oauth-protected-resource` (and `.../mcp`): the resource
//! is the first audience, the authorization server the issuer. A session
//! belongs to the user of the token that initialized it: a request on it
//! with another user's token gets 403. Each call's identity comes from the
//! token of the request that carried it. The `Authorization` header is
//! never passed upstream (the HTTP upstream link builds its own headers).
//!
//! On a policy reload every live session gets
//! `notifications/tools/list_changed`.

use crate::bearer::{AuthError, Caller};
use crate::config::{ProxyConfig, ProxyError, Upstream};
use crate::framing::Frame;
use crate::jsonrpc::{self, Kind, id_key};
use crate::relay::{Hints, Outgoing, Relay, RequestHints};
use crate::sessionless::{self, Owner, is_stateless};
use crate::upstream;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

/// Messages kept for a session's GET stream while none is open.
pub const MAX_BUFFERED: usize = 256;
const SESSION_HEADER: &str = "mcp-session-id";
/// The JSON-RPC code of warden's "no such session" answer.
const SESSION_NOT_FOUND: i64 = -32001;
use crate::jsonrpc::METHOD_NOT_FOUND;
/// 2026-07-28 error codes (SEP-2243, SEP-2575).
const HEADER_MISMATCH: i64 = crate::sessionless::HEADER_MISMATCH;
const MISSING_CLIENT_CAPABILITY: i64 = -32021;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The error a request the client cancelled is answered with, so that
/// every request gets exactly one answer (LSP's `RequestCancelled`).
const REQUEST_CANCELLED: i64 = -32800;
/// Most questions (requests sent on a sessionless request's stream) kept
/// waiting for their answer.
const MAX_ASKED: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Server {
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    sessionless: tokio::sync::Mutex<Option<Arc<Session>>>,
    loopback_bind: bool,
}

/// One MCP session (or the shared sessionless relay).
struct Session {
    id: Option<String>,
    /// The user of the bearer token that initialized the session: only
    /// tokens of that user may use it.
    subject: Option<String>,
    relay: Arc<Relay>,
    routes: Arc<Mutex<Routes>>,
    shutdown: CancellationToken,
    last_seen: Mutex<Instant>,
}

impl Session {
    fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Ends the session: the relay closes (cancelling what the client left
    /// in flight), the upstream stops, open streams end.
    async fn close(&self) {
        self.relay.client_gone().await;
        self.shutdown.cancel();
        let mut r = lock(&self.routes);
        r.posts.clear();
        r.get = None;
        r.buffered.clear();
    }
}

/// One message for a request's stream.
#[derive(Debug)]
struct Sent {
    text: String,
    /// A response, which ends the stream.
    response: bool,
    /// HTTP status to answer with when the response is the only
    /// message: the upstream's, or derived from the error for a 2026-07-28
    /// request whose upstream is no HTTP server.
    status: Option<u16>,
    /// The SSE event id (resumable streams).
    event_id: Option<String>,
}

/// How long a client should wait before resuming a stream (`retry:`).
const SSE_RETRY: Duration = Duration::from_millis(1000);
/// Events kept per resumable stream, and streams kept per session.
const REPLAY_EVENTS: usize = 64;
const REPLAY_STREAMS: usize = 64;

/// What a resumable stream sent, for a client resuming it with
/// `Last-Event-ID` (`<stream>-<n>`, n counting from 1; 0 is the priming
/// event).
#[derive(Default)]
struct Replay {
    events: VecDeque<(u64, String, bool)>,
}

/// Numbers one event of a resumable stream and keeps it for resumption.
fn stamp(
    replay: &mut HashMap<u64, Replay>,
    order: &mut VecDeque<u64>,
    p: &mut PostStream,
    text: &str,
    response: bool,
) -> Option<String> {
    if !p.resumable {
        return None;
    }
    p.events += 1;
    let r = replay.entry(p.seq).or_insert_with(|| {
        order.push_back(p.seq);
        Replay::default()
    });
    if r.events.len() >= REPLAY_EVENTS {
        r.events.pop_front();
    }
    r.events.push_back((p.events, text.to_string(), response));
    while order.len() > REPLAY_STREAMS {
        if let Some(old) = order.pop_front() {
            replay.remove(&old);
        }
    }
    Some(format!("{}-{}", p.seq, p.events))
}

/// A request's POST stream.
struct PostStream {
    tx: mpsc::UnboundedSender<Sent>,
    seq: u64,
    /// The client accepts only JSON: only the response goes here.
    json_only: bool,
    /// The id the client used, when warden replaced it (sessionless).
    client_id: Option<Value>,
    progress_token: Option<String>,
    /// The progress token the client used, when warden replaced it
    /// (sessionless): restored in the progress sent to this stream.
    client_progress: Option<Value>,
    /// Who may act on this request from another POST (sessionless; see
    /// [`Owner`]); `None` for a session's request (its session is its
    /// owner).
    owner: Option<Owner>,
    /// Derive the HTTP status of an error answer from its code (SEP-2575's
    /// mapping): a 2026-07-28 request whose upstream is a command.
    derive_status: bool,
    /// Its events have ids and are kept for `Last-Event-ID` (a session's
    /// SSE stream; 2026-07-28 streams are not resumable).
    resumable: bool,
    /// Events sent so far.
    events: u64,
    /// warden closed the client's stream because the upstream closed its
    /// own before answering: what comes is kept for the client to resume.
    detached: bool,
}

#[derive(Default)]
struct Routes {
    posts: HashMap<String, PostStream>,
    seq: u64,
    get: Option<mpsc::UnboundedSender<String>>,
    /// progressToken (as an id key) → the request's key.
    progress: HashMap<String, String>,
    buffered: VecDeque<String>,
    /// The shared sessionless relay: a message goes only to the stream of
    /// the request it belongs to, never to another client's.
    sessionless: bool,
    /// The relay's per-request transport facts.
    hints: Hints,
    /// Resumable streams' recent events, by stream number.
    replay: HashMap<u64, Replay>,
    replay_order: VecDeque<u64>,
    /// Sessionless: the requests (questions) sent on a request's stream
    /// that wait for the client's answer, by id ([`id_key`]), with whom
    /// the answer must come from and when they were asked.
    asked: HashMap<String, (Owner, Instant)>,
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
    fn has_open_streams(&self) -> bool {
        self.posts.values().any(|p| !p.tx.is_closed())
            || self.get.as_ref().is_some_and(|g| !g.is_closed())
    }

    fn remove_post(&mut self, key: &str) -> Option<PostStream> {
        let p = self.posts.remove(key)?;
        if let Some(t) = &p.progress_token {
            self.progress.remove(t);
        }
        Some(p)
    }

    fn route(&mut self, out: Outgoing) {
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

/// Serves Streamable HTTP on `listener` until the process is interrupted
/// (Ctrl-C), then ends every session. Each message on `policy_reloads`
/// tells every live session to list tools again.
pub async fn serve_http(
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    policy_reloads: mpsc::UnboundedReceiver<()>,
    listener: TcpListener,
) -> Result<(), ProxyError> {
    serve_http_until(cfg, engine, log, policy_reloads, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// [`serve_http`] until `stop` completes.
pub async fn serve_http_until(
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    mut policy_reloads: mpsc::UnboundedReceiver<()>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let addr = listener.local_addr().map_err(|e| ProxyError::Listen {
        addr: "?".into(),
        message: e.to_string(),
    })?;
    let idle = cfg.session_idle_timeout;
    let server = Arc::new(Server {
        cfg,
        engine,
        log,
        sessions: Mutex::new(HashMap::new()),
        sessionless: tokio::sync::Mutex::new(None),
        loopback_bind: addr.ip().is_loopback(),
    });

    let reload_server = Arc::clone(&server);
    let reloads = tokio::spawn(async move {
        while policy_reloads.recv().await.is_some() {
            for s in reload_server.live_sessions().await {
                s.relay.policies_changed().await;
            }
        }
    });
    let reap_server = Arc::clone(&server);
    let reaper = tokio::spawn(async move {
        let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            let stale: Vec<Arc<Session>> = {
                let mut sessions = lock(&reap_server.sessions);
                let ids: Vec<String> = sessions
                    .iter()
                    .filter(|(_, s)| {
                        lock(&s.last_seen).elapsed() >= idle && !lock(&s.routes).has_open_streams()
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                ids.iter().filter_map(|k| sessions.remove(k)).collect()
            };
            for s in stale {
                tracing::info!("session {} idle; ended", s.id.as_deref().unwrap_or("-"));
                s.close().await;
            }
        }
    });

    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(post)
                .get(get_stream)
                .delete(delete_session),
        )
        .route(
            RESOURCE_METADATA_PATH,
            axum::routing::get(resource_metadata),
        )
        .route(
            &format!("{RESOURCE_METADATA_PATH}/mcp"),
            axum::routing::get(resource_metadata),
        )
        .with_state(Arc::clone(&server));
    // The listener's own limits: header and body timeouts, a connection
    // cap (crate::listener).
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    let stopper = tokio::spawn(async move {
        stop.await;
        trigger.cancel();
    });
    let limits = server.cfg.listen_limits;
    let mut conns = crate::listener::serve(listener, app, limits, stopping).await;
    stopper.abort();
    reloads.abort();
    reaper.abort();
    for s in server.live_sessions().await {
        s.close().await;
    }
    // Connections end once their streams do (the sessions just closed).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    // Let the upstream links end their sessions (DELETE) or children exit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

impl Server {
    async fn live_sessions(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        if let Some(s) = self.sessionless.lock().await.as_ref() {
            all.push(Arc::clone(s));
        }
        all
    }

    /// Starts a session: its relay, its upstream link and the task that
    /// routes the relay's output.
    async fn new_session(
        &self,
        id: Option<String>,
        subject: Option<String>,
    ) -> Result<Arc<Session>, ProxyError> {
        let start = upstream::start(&self.cfg)?;
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1024);
        let relay_session = match &id {
            Some(id) => format!("http-{id}"),
            None => format!("http-sessionless-{}", uuid::Uuid::new_v4().simple()),
        };
        let relay = Relay::new(
            self.cfg.clone(),
            Arc::clone(&self.engine),
            Arc::clone(&self.log),
            tx,
            Some(relay_session),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(upstream::supervise(
            Arc::clone(&relay),
            start,
            shutdown.clone(),
        ));
        let routes = Arc::new(Mutex::new(Routes {
            sessionless: id.is_none(),
            hints: Arc::clone(&relay.hints),
            ..Routes::default()
        }));
        let r = Arc::clone(&routes);
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                lock(&r).route(out);
            }
        });
        relay.wait_link_settled().await;
        Ok(Arc::new(Session {
            id,
            subject,
            relay,
            routes,
            shutdown,
            last_seen: Mutex::new(Instant::now()),
        }))
    }

    async fn sessionless(&self) -> Result<Arc<Session>, ProxyError> {
        let mut slot = self.sessionless.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = self.new_session(None, None).await?;
        *slot = Some(Arc::clone(&s));
        Ok(s)
    }

    /// The Origin and Host checks; the response refusing the request if
    /// they fail.
    fn check_origin(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Box<Response>> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| origin_allowed(o, &self.cfg.allowed_origins));
            if !ok {
                tracing::warn!("request from origin {origin:?} refused");
                return Err(Box::new(rpc_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    format!(
                        "forbidden: origin {} is not allowed (only loopback origins and those given with --allow-origin)",
                        String::from_utf8_lossy(origin.as_bytes())
                    ),
                )));
            }
        }
        if self.loopback_bind {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.to_string()));
            if !host.as_deref().is_some_and(host_is_loopback) {
                return Err(Box::new(rpc_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "forbidden: warden listens on a loopback address and accepts only loopback Host headers",
                )));
            }
        }
        Ok(())
    }

    /// The bearer check: the caller a valid token names (`None` when no
    /// bearer auth is configured), or the 401 refusing the request.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Arc<Caller>>, Box<Response>> {
        let Some(verifier) = &self.cfg.bearer else {
            return Ok(None);
        };
        let values = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes);
        match verifier.verify_header(values) {
            Ok(caller) => Ok(Some(Arc::new(caller))),
            Err(why) => {
                tracing::info!("request refused: {why}");
                Err(Box::new(unauthorized(
                    &why,
                    &metadata_url(verifier, headers),
                )))
            }
        }
    }

    /// The session a request names; the error response when it names none
    /// or an unknown one, or when it belongs to another user than the
    /// request's bearer token names.
    fn session_of(
        &self,
        headers: &HeaderMap,
        id: Value,
        caller: Option<&Caller>,
    ) -> Result<Arc<Session>, Box<Response>> {
        let Some(sid) = headers.get(SESSION_HEADER) else {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                jsonrpc::INVALID_REQUEST,
                "bad request: missing Mcp-Session-Id header (initialize first)",
            )));
        };
        let sid = sid.to_str().unwrap_or("");
        match lock(&self.sessions).get(sid) {
            Some(s) => {
                // Fail closed: a session opened with a token is usable only
                // with a token of the same user.
                if let Some(owner) = &s.subject
                    && caller.is_none_or(|c| &c.user != owner)
                {
                    tracing::warn!("a request on another user's session was refused");
                    return Err(Box::new(rpc_error(
                        StatusCode::FORBIDDEN,
                        id,
                        jsonrpc::INVALID_REQUEST,
                        "forbidden: this session belongs to another user; initialize a session of your own",
                    )));
                }
                s.touch();
                Ok(Arc::clone(s))
            }
            None => Err(Box::new(rpc_error(
                StatusCode::NOT_FOUND,
                id,
                SESSION_NOT_FOUND,
                "session not found: it ended or timed out; initialize a new one",
            ))),
        }
    }
}

/// Where the RFC 9728 protected resource metadata is served.
const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The URL of the protected resource metadata for `WWW-Authenticate`: by
/// RFC 9728, the resource's (the first audience's) origin, the well-known
/// path and the resource's path; for an audience that is no URL, the
/// request's Host.
fn metadata_url(verifier: &crate::bearer::Verifier, headers: &HeaderMap) -> String {
    if let Some(aud) = verifier.audiences().first()
        && let Ok(url) = reqwest::Url::parse(aud)
        && matches!(url.scheme(), "http" | "https")
        && let Some(host) = url.host_str()
    {
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        return format!(
            "{}://{host}{port}{RESOURCE_METADATA_PATH}{path}",
            url.scheme()
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{RESOURCE_METADATA_PATH}/mcp")
}

/// A header parameter's quoted-string: no quotes, backslashes or
/// characters a header cannot carry.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// The 401 for a refused bearer token: `WWW-Authenticate` (RFC 6750,
/// with RFC 9728's `resource_metadata`) and a JSON-RPC error body, both
/// giving the reason.
fn unauthorized(why: &AuthError, metadata: &str) -> Response {
    let reason = why.to_string();
    let challenge = if matches!(why, AuthError::Missing) {
        // RFC 6750: no error code when the request carried no credentials.
        format!(
            r#"Bearer realm="warden", error_description="{}", resource_metadata="{}""#,
            quoted(&reason),
            quoted(metadata)
        )
    } else {
        format!(
            r#"Bearer realm="warden", error="invalid_token", error_description="{}", resource_metadata="{}""#,
            quoted(&reason),
            quoted(metadata)
        )
    };
    let body = jsonrpc::error(
        Value::Null,
        jsonrpc::INVALID_REQUEST,
        format!("unauthorized: {reason}"),
        Some(json!({"error": "invalid_token", "error_description": reason})),
    )
    .to_string();
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// RFC 9728 protected resource metadata: the resource (warden, named by
/// the first audience) and the authorization server that issues its
/// tokens. 404 without bearer auth.
async fn resource_metadata(State(srv): State<Arc<Server>>) -> Response {
    let Some(verifier) = &srv.cfg.bearer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    axum::Json(json!({
        "resource": verifier.audiences().first(),
        "authorization_servers": [verifier.issuer()],
        "bearer_methods_supported": ["header"],
        "resource_name": "warden MCP proxy",
    }))
    .into_response()
}

/// Whether an Origin is a loopback one or explicitly allowed.
pub(crate) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let o = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(o))
    {
        return true;
    }
    let Ok(url) = reqwest::Url::parse(o) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(host_is_loopback)
}

/// Whether a Host header (host and optional port) names a loopback host.
pub(crate) fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Response {
    let body = jsonrpc::error(id, code, message, None).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case(mime) || m == "*/*"
        })
}

/// One SSE event: `event: message`, the id and `retry` when given, the
/// data (one `data:` line per line; an empty line for empty data, as a
/// priming event has).
fn sse_bytes(id: Option<&str>, retry: Option<Duration>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 48);
    out.push_str("event: message\n");
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(r) = retry {
        out.push_str(&format!("retry: {}\n", r.as_millis()));
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

fn sse_event(sent: &Sent) -> Bytes {
    sse_bytes(sent.event_id.as_deref(), None, &sent.text)
}

/// How often an idle SSE stream gets a comment, so intermediaries keep it.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A request's SSE stream: the priming event of stream `priming` (an id and
/// empty data, with `retry`), `first`, then what comes until the response.
fn sse_response(
    first: Option<Sent>,
    rx: mpsc::UnboundedReceiver<Sent>,
    withdraw: Option<Withdraw>,
    priming: Option<u64>,
) -> Response {
    let done = first.as_ref().is_some_and(|f| f.response);
    let mut withdraw = withdraw;
    if done && let Some(w) = withdraw.as_mut() {
        w.answered = true;
    }
    let prime = priming.map(|n| sse_bytes(Some(&format!("{n}-0")), Some(SSE_RETRY), ""));
    let head = futures::stream::iter(
        prime
            .into_iter()
            .chain(first.as_ref().map(sse_event))
            .map(Ok::<_, Infallible>),
    );
    let rest = futures::stream::unfold(
        (rx, withdraw, done),
        |(mut rx, mut withdraw, done)| async move {
            if done {
                if let Some(w) = withdraw.as_mut() {
                    w.answered = true;
                }
                return None;
            }
            let sent = tokio::select! {
                sent = rx.recv() => sent?,
                () = tokio::time::sleep(SSE_KEEP_ALIVE) => {
                    return Some((Ok(Bytes::from_static(b":\n\n")), (rx, withdraw, false)));
                }
            };
            if sent.response
                && let Some(w) = withdraw.as_mut()
            {
                w.answered = true;
            }
            let done = sent.response;
            Some((Ok(sse_event(&sent)), (rx, withdraw, done)))
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(futures::StreamExt::chain(head, rest)),
    )
        .into_response()
}

fn get_sse_response(rx: mpsc::UnboundedReceiver<String>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let text = rx.recv().await?;
        Some((
            Ok::<_, Infallible>(Event::default().event("message").data(text)),
            rx,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn post(
    State(srv): State<Arc<Server>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = srv.check_origin(&headers, &uri) {
        return *r;
    }
    // Before the body is read: an unauthenticated request costs nothing
    // and reaches nothing.
    let caller = match srv.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let max = srv.cfg.max_message_bytes;
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
    let limit = srv.cfg.listen_limits.body_read;
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
    let stateless = is_stateless(&headers, &msg);
    let request_id = match &kind {
        Kind::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    // A sessionless message is one in both the header and `_meta`, and its
    // standard headers say what its body says (crate::sessionless).
    if stateless
        && let Err(r) = sessionless::check_versions(&headers, &msg, &kind)
            .and_then(|()| sessionless::check_standard_headers(&headers, &msg))
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
        let sid = uuid::Uuid::new_v4().simple().to_string();
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
        match srv.session_of(&headers, request_id.clone(), caller.as_deref()) {
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
        session
            .relay
            .on_client_frame(Frame::Line(bytes.to_vec()), caller)
            .await;
        return StatusCode::ACCEPTED.into_response();
    };

    // A request: its stream first, then the relay.
    let json_only = !accepts(&headers, "text/event-stream");
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
        (id_key(&id), None, bytes.to_vec())
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
                derive_status: stateless && matches!(srv.cfg.upstream, Upstream::Command(_)),
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
    session
        .relay
        .on_client_frame(Frame::Line(line), caller)
        .await;
    if !stateless && !json_only {
        // A session's stream opens at once with its priming event.
        let mut resp = sse_response(None, rx, None, Some(stream_no));
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
            relay: Arc::clone(&session.relay),
            routes: Arc::clone(&session.routes),
            id: serde_json::from_str(&key).unwrap_or(Value::Null),
            key: key.clone(),
            answered: false,
        });
        sse_response(Some(first), rx, withdraw, None)
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
                let relay = Arc::clone(&session.relay);
                let cancel = jsonrpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": mine, "reason": "the client cancelled the request"})),
                );
                tokio::spawn(async move {
                    relay
                        .on_client_frame(Frame::Line(cancel.to_string().into_bytes()), None)
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
struct Withdraw {
    relay: Arc<Relay>,
    routes: Arc<Mutex<Routes>>,
    key: String,
    id: Value,
    answered: bool,
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
        let relay = Arc::clone(&self.relay);
        let cancel = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": self.id, "reason": "the client closed the stream"})),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                relay
                    .on_client_frame(Frame::Line(cancel.to_string().into_bytes()), None)
                    .await;
            });
        }
    }
}

fn upstream_failed(id: Value, e: &ProxyError) -> Response {
    tracing::error!("{e}");
    rpc_error(
        StatusCode::BAD_GATEWAY,
        id,
        jsonrpc::UPSTREAM_UNAVAILABLE,
        e.to_string(),
    )
}

async fn get_stream(State(srv): State<Arc<Server>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(r) = srv.check_origin(&headers, &uri) {
        return *r;
    }
    let caller = match srv.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if is_stateless(&headers, &Value::Null) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if !accepts(&headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "not acceptable: the GET stream is text/event-stream",
        );
    }
    let session = match srv.session_of(&headers, Value::Null, caller.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(resumed) = resume_stream(&session, &headers) {
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
    Some(sse_response(None, rx, None, None))
}

async fn delete_session(State(srv): State<Arc<Server>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(r) = srv.check_origin(&headers, &uri) {
        return *r;
    }
    let caller = match srv.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let session = match srv.session_of(&headers, Value::Null, caller.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(id) = &session.id {
        lock(&srv.sessions).remove(id);
    }
    session.close().await;
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass_others_need_allowing() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://[::1]:9",
        ] {
            assert!(origin_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "null",
            "file://",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(!origin_allowed(bad, &none), "{bad}");
        }
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed("https://app.example.com/", &allowed));
        assert!(!origin_allowed("https://app.example.com:444", &allowed));
    }

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

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8931",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8931", "10.0.0.1:80", ""] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
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
