//! Serving MCP's Streamable HTTP transport (`warden proxy --listen
//! HOST:PORT`): an axum server at `http://HOST:PORT/mcp` (POST, GET,
//! DELETE).
//!
//! # Sessions
//!
//! A POST of `initialize` without `Mcp-Session-Id` starts a session: its
//! own [`crate::relay::Relay`] with its own upstream link (a fresh child process for a
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
//!
//! # Structure
//!
//! [`McpService`] is one MCP path's service (mountable at any path, so the
//! gateway mounts several in one app); a session's far side is a
//! [`crate::endpoint::ClientEndpoint`] it opens through an
//! [`crate::endpoint::EndpointFactory`] ([`crate::endpoint::RelayFactory`]
//! for one upstream). This file wires one service to a listener
//! (`warden proxy --listen`). `service` owns the sessions and the reaper,
//! `session` one session, `post` and `get_delete` the handlers, `routes`
//! where the endpoint's messages go, `sse` the event streams and replay,
//! `auth` the Origin/Host/bearer checks, `respond` the shared error answers.

mod auth;
mod get_delete;
mod post;
mod respond;
mod routes;
mod service;
mod session;
mod sse;
#[cfg(test)]
mod tests;

pub(crate) use auth::RESOURCE_METADATA_PATH;
pub(crate) use service::McpService;
pub use session::replica_tag;

use crate::config::{ProxyConfig, ProxyError};
use crate::endpoint::RelayFactory;
use axum::extract::{Request, State};
use axum::response::Response;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

/// Messages kept for a session's GET stream while none is open.
pub const MAX_BUFFERED: usize = 256;
/// The header naming a request's session.
const SESSION_HEADER: &str = "mcp-session-id";
/// The path `warden proxy --listen` serves MCP at.
const MCP_PATH: &str = "/mcp";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    let limits = cfg.listen_limits;
    let mut cfg = cfg;
    let approvals = crate::approvals::Approvals::new(
        cfg.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        Arc::clone(&engine),
        Arc::clone(&log),
        cfg.bearer.clone(),
        cfg.approvals_webhook.as_ref(),
    )
    .map_err(ProxyError::Webhook)?;
    cfg.approvals = Some(Arc::clone(&approvals));
    let factory = Arc::new(RelayFactory::new(cfg.clone(), engine, log));
    let service = McpService::new(cfg, factory, addr.ip().is_loopback(), MCP_PATH.to_string());

    let reload_service = Arc::clone(&service);
    let reloads = tokio::spawn(async move {
        while policy_reloads.recv().await.is_some() {
            reload_service.policies_changed().await;
        }
    });
    let reaper = service.spawn_reaper();
    let app = router(Arc::clone(&service)).merge(crate::approvals::router(approvals));
    // The listener's own limits: header and body timeouts, a connection
    // cap (crate::listener).
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    let stopper = tokio::spawn(async move {
        stop.await;
        trigger.cancel();
    });
    let mut conns = crate::listener::serve(listener, app, limits, stopping).await;
    stopper.abort();
    reloads.abort();
    reaper.abort();
    service.close_all().await;
    // Connections end once their streams do (the sessions just closed).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    // Let the upstream links end their sessions (DELETE) or children exit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// The app of `warden proxy --listen`: the service at `/mcp` and its
/// protected resource metadata at the well-known path (with and without
/// the MCP path after it).
fn router(service: Arc<McpService>) -> axum::Router {
    async fn mcp(State(service): State<Arc<McpService>>, req: Request) -> Response {
        service.handle(req).await
    }
    async fn metadata(State(service): State<Arc<McpService>>) -> Response {
        service.resource_metadata()
    }
    axum::Router::new()
        .route(MCP_PATH, axum::routing::post(mcp).get(mcp).delete(mcp))
        .route(RESOURCE_METADATA_PATH, axum::routing::get(metadata))
        .route(
            &format!("{RESOURCE_METADATA_PATH}{MCP_PATH}"),
            axum::routing::get(metadata),
        )
        .with_state(service)
}
