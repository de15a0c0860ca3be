//! `warden-proxy`: the MCP proxy that puts warden's engine on the agent's
//! path. An MCP client (Claude Desktop, Claude Code, Cursor, ...) launches
//! `warden proxy ... -- COMMAND` instead of the MCP server; warden starts
//! the server as its child and relays every message between the two,
//! deciding each `tools/call` against the policies first.
//!
//! Transports: the client side is stdio ([`serve_stdio`]) or Streamable
//! HTTP ([`serve_http`], one relay and one upstream link per MCP session;
//! see `http_server`); the upstream is a child process over stdio or a
//! Streamable HTTP endpoint ([`http_upstream`], which also documents the
//! `Warden-*` provenance headers).
//!
//! # Design: a JSON-RPC relay, not two typed SDK endpoints
//!
//! The proxy relays JSON-RPC messages as `serde_json::Value`, line by line
//! (the stdio transport is newline-delimited JSON), instead of terminating
//! MCP on both sides with rmcp's typed `ServerHandler`/`ClientHandler`:
//!
//! - **Transparency.** rmcp's typed models drop fields they do not know
//!   (tool fields added in 2025-11-25, vendor extensions, future methods)
//!   and negotiate protocol versions themselves. A relay passes every
//!   message it does not govern byte for byte (the text it came as; see
//!   `raw`): initialize and
//!   capabilities, lists and reads, subscriptions, completions, logging,
//!   progress, cancellation, ping, list_changed, server-to-client requests
//!   (sampling, elicitation, roots), unknown methods and fields, and any
//!   protocol version (2025-06-18, 2025-11-25, 2026-07-28) the two ends
//!   agree on.
//! - **Small governed surface.** Only three things are changed:
//!   `tools/call` (decided; denied calls answered by warden, allowed ones
//!   forwarded with provenance in `_meta`), the `tools/list` result (tools no
//!   call could use are hidden, notes added to those needing confirmation or
//!   limited) and the initialize result (`capabilities.tools.listChanged`
//!   is set, because warden sends `notifications/tools/list_changed` when
//!   policies change). Client-sent `_meta` keys under `io.warden/` or
//!   `warden/`, in any case, are removed from every message and position,
//!   so an agent cannot spoof provenance. A method that is a governed one
//!   in another case or spacing is refused, and a `tools/call` notification
//!   dropped and logged (`relay::intake`).
//! - **Ids.** Client request ids go upstream unchanged (anything referring
//!   to them stays valid); warden's own requests use ids prefixed
//!   `warden:`, and a client id with that prefix is remapped. Requests from
//!   the upstream to the client are always remapped, because a restarted
//!   upstream reuses its ids.
//!
//! # Robustness
//!
//! - Invalid JSON from the client is answered with -32700, a message that is
//!   no JSON-RPC message with -32600, a message over `max_message_bytes`
//!   with -32600 (skipped without being held in memory); the session goes
//!   on. Invalid messages from the upstream are logged and dropped; an
//!   answer that is JSON serde_json will not decode (`1e400`, deep nesting)
//!   is relayed as it came, or answered with an error at once.
//! - When the upstream exits, every request in flight to it gets an error
//!   (code -32001), and so does every new request until it is back; it is
//!   restarted with exponential backoff (250 ms doubling to 10 s) and the
//!   client's initialize (and initialized, log level, subscriptions) is
//!   replayed to it before requests go through again. The client then gets
//!   `notifications/tools/list_changed`.
//! - When the client disconnects, its requests in flight are cancelled
//!   upstream (`notifications/cancelled`), governed calls log their end, and
//!   the upstream's stdin is closed (it is killed if it does not exit).
//!
//! # Fail closed
//!
//! Every decided call is written to the decision log, with the upstream
//! outcome for forwarded calls. When a write fails, the call it was for has
//! already been answered, so from then on warden refuses to forward calls
//! (each refusal says why) until a write succeeds again.

pub mod approvals;
pub mod bearer;
mod config;
mod confirm_text;
mod endpoint;
mod federate;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod govern;
mod http_server;
pub mod http_upstream;
pub mod jsonrpc;
pub mod listener;
pub mod log_seal;
pub mod metrics;
pub mod provenance_token;
mod raw;
mod relay;
pub mod seal;
mod sessionless;
mod shared_instance;
mod stdio;
#[doc(hidden)]
pub mod testkit;
pub mod tls;
pub mod tool_pins;
pub mod traces;
mod upstream;

pub use config::{
    DEFAULT_CONFIRM_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SESSION_IDLE_TIMEOUT, ProxyConfig,
    ProxyError, Upstream, UpstreamCommand, check_origin,
};
pub use http_server::{MAX_BUFFERED, replica_tag, serve_http, serve_http_until};

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

/// Runs one proxy session over `client_in`/`client_out` (stdin and stdout
/// for the stdio transport) until the client disconnects. The upstream is
/// started first: if it cannot be, the error is returned and nothing is
/// read. Each message on `policy_reloads` tells the client to list tools
/// again.
pub async fn serve<R, W>(
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    mut policy_reloads: mpsc::UnboundedReceiver<()>,
    client_in: R,
    client_out: W,
) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let start = upstream::start(&cfg)?;
    let (to_client, from_relay) = mpsc::channel::<relay::Outgoing>(1024);
    let writer = tokio::spawn(async move {
        if let Err(e) = framing::write_lines(client_out, from_relay).await {
            tracing::debug!("writing to the client failed: {e}");
        }
    });
    let relay = relay::Relay::new(cfg, engine, log, to_client.into(), None);
    let shutdown = CancellationToken::new();
    let supervisor = tokio::spawn(upstream::supervise(
        Arc::clone(&relay),
        start,
        shutdown.clone(),
    ));
    let reload_relay = Arc::clone(&relay);
    let reloads = tokio::spawn(async move {
        while policy_reloads.recv().await.is_some() {
            reload_relay.policies_changed().await;
        }
    });

    relay.wait_link_settled().await;
    relay.run_client(BufReader::new(client_in)).await;

    shutdown.cancel();
    let _ = supervisor.await;
    reloads.abort();
    let _ = reloads.await;
    drop(relay);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// [`serve`] on the process's stdin and stdout: the MCP stdio transport
/// (pipes and sockets read and written on the runtime's reactor, not on
/// tokio's blocking pool: see `stdio`).
pub async fn serve_stdio(
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    policy_reloads: mpsc::UnboundedReceiver<()>,
) -> Result<(), ProxyError> {
    serve(
        cfg,
        engine,
        log,
        policy_reloads,
        stdio::stdin(),
        stdio::stdout(),
    )
    .await
}
