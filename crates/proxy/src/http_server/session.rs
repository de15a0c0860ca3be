//! One MCP session (or the shared sessionless one): its endpoint, its
//! streams, who owns it and when it was last used.

use super::lock;
use super::routes::Routes;
use crate::endpoint::ClientEndpoint;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One MCP session (or the shared sessionless endpoint).
pub(super) struct Session {
    /// `None` for the sessionless endpoint.
    pub(super) id: Option<String>,
    /// The user of the bearer token that initialized the session: only
    /// tokens of that user may use it.
    pub(super) subject: Option<String>,
    pub(super) endpoint: Arc<dyn ClientEndpoint>,
    pub(super) routes: Arc<Mutex<Routes>>,
    /// Stops the endpoint's upstream link(s).
    pub(super) shutdown: CancellationToken,
    pub(super) last_seen: Mutex<Instant>,
}

impl Session {
    pub(super) fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Whether the session has been unused for `idle` with no stream open
    /// (a client dropping a stream does not end it; idleness does).
    pub(super) fn is_idle(&self, idle: std::time::Duration) -> bool {
        lock(&self.last_seen).elapsed() >= idle && !lock(&self.routes).has_open_streams()
    }

    /// Ends the session: the endpoint closes (cancelling what the client
    /// left in flight), the upstream stops, open streams end.
    pub(super) async fn close(&self) {
        Arc::clone(&self.endpoint).client_gone().await;
        self.shutdown.cancel();
        let mut r = lock(&self.routes);
        r.posts.clear();
        r.get = None;
        r.buffered.clear();
    }
}
