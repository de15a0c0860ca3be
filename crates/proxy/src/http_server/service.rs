//! [`McpService`]: one Streamable HTTP MCP endpoint (one path), mountable
//! in any axum app. It owns the sessions map and the shared sessionless
//! session, opens each session's endpoint through its
//! [`EndpointFactory`], ends idle sessions (the reaper), tells every live
//! session when policies change, and counts the POST requests being
//! answered (for a drain).

use super::routes::Routes;
use super::session::Session;
use super::{get_delete, lock, post};
use crate::bearer::Verifier;
use crate::config::{ProxyConfig, ProxyError, Upstream};
use crate::endpoint::EndpointFactory;
use crate::relay::ClientOut;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the HTTP side of a service reads from the [`ProxyConfig`].
pub(super) struct Settings {
    /// Origins allowed besides loopback ones (`--allow-origin`).
    pub(super) allowed_origins: Vec<String>,
    /// A session without requests and open streams for this long ends.
    pub(super) session_idle_timeout: Duration,
    /// Bearer JWT verification, when configured.
    pub(super) bearer: Option<Arc<Verifier>>,
    /// The largest POST body accepted.
    pub(super) max_message_bytes: usize,
    /// How long a POST body may take to arrive.
    pub(super) body_read_timeout: Duration,
    /// A 2026-07-28 error answer gets its HTTP status from its code
    /// (SEP-2575): the upstream is a command, which has no HTTP status of
    /// its own to pass on.
    pub(super) status_from_error_code: bool,
    /// Traces are on: a `tools/call`'s `traceparent` header is its trace
    /// context when its `_meta` has none.
    pub(super) trace_headers: bool,
}

/// One MCP path's Streamable HTTP service.
pub(crate) struct McpService {
    pub(super) settings: Settings,
    factory: Arc<dyn EndpointFactory>,
    pub(super) sessions: Mutex<HashMap<String, Arc<Session>>>,
    sessionless: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// The listener is bound to a loopback address: Host must be loopback.
    pub(super) loopback_bind: bool,
    /// The path the service is mounted at (`/mcp`).
    pub(super) path: String,
    /// POST requests being answered now ([`super::sse::InFlight`]).
    pub(super) in_flight: Arc<AtomicUsize>,
}

impl McpService {
    /// A service answering at `path` (`/mcp`, `/servers/lims/mcp`), opening
    /// each session's endpoint with `factory`. Of `cfg` it reads the
    /// HTTP-side settings: `allowed_origins`, `session_idle_timeout`,
    /// `bearer`, `max_message_bytes`, `listen_limits.body_read`, and whether
    /// `upstream` is a command (a 2026-07-28 error answer then gets its
    /// HTTP status from its code). `loopback_bind`: the listener is bound
    /// to a loopback address, so the `Host` must be loopback too.
    pub(crate) fn new(
        cfg: ProxyConfig,
        factory: Arc<dyn EndpointFactory>,
        loopback_bind: bool,
        path: String,
    ) -> Arc<Self> {
        let settings = Settings {
            allowed_origins: cfg.allowed_origins,
            session_idle_timeout: cfg.session_idle_timeout,
            bearer: cfg.bearer,
            max_message_bytes: cfg.max_message_bytes,
            body_read_timeout: cfg.listen_limits.body_read,
            status_from_error_code: matches!(cfg.upstream, Upstream::Command(_)),
            trace_headers: cfg.traces.is_some(),
        };
        Arc::new(McpService {
            settings,
            factory,
            sessions: Mutex::new(HashMap::new()),
            sessionless: tokio::sync::Mutex::new(None),
            loopback_bind,
            path,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Answers one HTTP request to the MCP path: POST, GET (and HEAD, as
    /// axum routes it to GET), DELETE; any other method gets 405.
    pub(crate) async fn handle(self: Arc<Self>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        match parts.method {
            Method::POST => post::post(&self, &parts.uri, &parts.headers, body).await,
            Method::GET | Method::HEAD => get_delete::get_stream(&self, &parts.uri, &parts.headers),
            Method::DELETE => get_delete::delete_session(&self, &parts.uri, &parts.headers).await,
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(
                    header::ALLOW,
                    HeaderValue::from_static("GET,HEAD,POST,DELETE"),
                )],
            )
                .into_response(),
        }
    }

    /// Starts the idle reaper: every quarter of the idle timeout (50 ms to
    /// 60 s) it ends the sessions idle for `session_idle_timeout` with no
    /// stream open. Runs until aborted.
    pub(crate) fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(self);
        let idle = self.settings.session_idle_timeout;
        tokio::spawn(async move {
            let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
            loop {
                tokio::time::sleep(every).await;
                let stale: Vec<Arc<Session>> = {
                    let mut sessions = lock(&service.sessions);
                    let ids: Vec<String> = sessions
                        .iter()
                        .filter(|(_, s)| s.is_idle(idle))
                        .map(|(k, _)| k.clone())
                        .collect();
                    ids.iter().filter_map(|k| sessions.remove(k)).collect()
                };
                for s in stale {
                    tracing::info!("session {} idle; ended", s.id.as_deref().unwrap_or("-"));
                    s.close().await;
                }
            }
        })
    }

    /// Tells every live session (and the sessionless one) that the
    /// policies changed: each client gets `notifications/tools/list_changed`.
    pub(crate) async fn policies_changed(&self) {
        for s in self.live_sessions().await {
            Arc::clone(&s.endpoint).policies_changed().await;
        }
    }

    /// Ends every live session and the sessionless one (shutdown): their
    /// endpoints close, their upstreams stop, their streams end.
    pub(crate) async fn close_all(&self) {
        let mut all: Vec<Arc<Session>> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        if let Some(s) = self.sessionless.lock().await.take() {
            all.push(s);
        }
        for s in all {
            s.close().await;
        }
    }

    /// POST requests being answered now: from the request's arrival until
    /// its answer is complete (an SSE answer: until its stream ends).
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Live sessions (the shared sessionless one not counted).
    #[cfg_attr(
        not(test),
        allow(
            dead_code,
            reason = "the gateway's API (briefed); only the tests read it yet"
        )
    )]
    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    async fn live_sessions(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        if let Some(s) = self.sessionless.lock().await.as_ref() {
            all.push(Arc::clone(s));
        }
        all
    }

    /// Starts a session: its endpoint (with its upstream link(s)), which
    /// routes what it sends to the session's streams itself, on its own
    /// task (routing takes the routes' lock and never waits).
    pub(super) async fn new_session(
        &self,
        id: Option<String>,
        subject: Option<String>,
    ) -> Result<Arc<Session>, ProxyError> {
        let label = match &id {
            Some(id) => format!("http-{id}"),
            None => format!("http-sessionless-{}", uuid::Uuid::new_v4().simple()),
        };
        let routes = Arc::new(Mutex::new(Routes {
            sessionless: id.is_none(),
            ..Routes::default()
        }));
        let r = Arc::clone(&routes);
        let to_client = ClientOut::Direct(Arc::new(move |out| lock(&r).route(out)));
        let opened = self.factory.open(label, to_client).await?;
        // The endpoint's hints, before the client's first request: only a
        // response to one reads them.
        lock(&routes).hints = opened.endpoint.hints();
        Ok(Arc::new(Session {
            id,
            subject,
            endpoint: opened.endpoint,
            routes,
            shutdown: opened.shutdown,
            last_seen: Mutex::new(Instant::now()),
        }))
    }

    /// The shared sessionless session, opened on first use.
    pub(super) async fn sessionless(&self) -> Result<Arc<Session>, ProxyError> {
        let mut slot = self.sessionless.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = self.new_session(None, None).await?;
        *slot = Some(Arc::clone(&s));
        Ok(s)
    }
}
