//! What a client transport talks to: the far side of one client session.
//!
//! The Streamable HTTP server (`http_server`) does not know whether a
//! session's messages go to one upstream (a [`Relay`]) or are spread over
//! several (a federation): it opens a [`ClientEndpoint`] per session through
//! an [`EndpointFactory`], feeds it the client's frames and routes the
//! [`Outgoing`] messages it sends back. [`RelayFactory`] is the
//! single-upstream factory `warden proxy --listen` and each
//! `/servers/<name>/mcp` route of `warden serve` use.

use crate::bearer::Caller;
use crate::config::{ProxyConfig, ProxyError};
use crate::framing::Frame;
use crate::relay::{ClientOut, Hints, Relay};
use crate::upstream;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

/// A boxed, sendable future (the traits here are object-safe, so they
/// return these instead of being `async fn`s).
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One client session's far side: a relay (one upstream) or a federation
/// (several).
pub(crate) trait ClientEndpoint: Send + Sync + 'static {
    /// One frame from the client (what [`Relay::on_client_frame`] does).
    fn client_frame(
        self: Arc<Self>,
        frame: Frame,
        caller: Option<Arc<Caller>>,
    ) -> BoxFuture<'static, ()>;
    /// The client is gone ([`Relay::client_gone`]).
    fn client_gone(self: Arc<Self>) -> BoxFuture<'static, ()>;
    /// The policies changed ([`Relay::policies_changed`]).
    fn policies_changed(self: Arc<Self>) -> BoxFuture<'static, ()>;
    /// The request hints table the HTTP server shares with it
    /// ([`Relay::hints`]).
    fn hints(&self) -> Hints;
}

/// A started endpoint: the endpoint and the token that stops its upstream
/// link(s). What it sends to the client goes where `open` was told.
pub(crate) struct OpenedEndpoint {
    pub(crate) endpoint: Arc<dyn ClientEndpoint>,
    pub(crate) shutdown: CancellationToken,
}

/// Makes one endpoint per client session (and one for the shared
/// sessionless path).
pub(crate) trait EndpointFactory: Send + Sync + 'static {
    /// `label` is the session label the relay puts in `CallContext.session`
    /// (`http-<id>` or `http-sessionless-<uuid>`); what the endpoint sends
    /// to the client goes to `to_client`. Returns once the upstream link(s)
    /// settled (up, or failed to come up), so that a client's first
    /// message does not race the start.
    fn open(
        &self,
        label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, ProxyError>>;
}

impl ClientEndpoint for Relay {
    fn client_frame(
        self: Arc<Self>,
        frame: Frame,
        caller: Option<Arc<Caller>>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.on_client_frame(frame, caller).await })
    }

    fn client_gone(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { Relay::client_gone(&self).await })
    }

    fn policies_changed(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { Relay::policies_changed(&self).await })
    }

    fn hints(&self) -> Hints {
        Arc::clone(&self.hints)
    }
}

/// The single-upstream factory: each endpoint is a [`Relay`] with its own
/// upstream link (a fresh child process for a command upstream, its own
/// HTTP session for a URL upstream), supervised until its shutdown token
/// is cancelled.
pub(crate) struct RelayFactory {
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
}

impl RelayFactory {
    pub(crate) fn new(cfg: ProxyConfig, engine: Arc<Engine>, log: Arc<DecisionLog>) -> Self {
        RelayFactory { cfg, engine, log }
    }
}

impl EndpointFactory for RelayFactory {
    fn open(
        &self,
        label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, ProxyError>> {
        Box::pin(async move {
            let start = upstream::start(&self.cfg)?;
            let relay = Relay::new(
                self.cfg.clone(),
                Arc::clone(&self.engine),
                Arc::clone(&self.log),
                to_client,
                Some(label),
            );
            let shutdown = CancellationToken::new();
            tokio::spawn(upstream::supervise(
                Arc::clone(&relay),
                start,
                shutdown.clone(),
            ));
            relay.wait_link_settled().await;
            Ok(OpenedEndpoint {
                endpoint: relay,
                shutdown,
            })
        })
    }
}
