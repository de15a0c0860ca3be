//! One MCP session (or the shared sessionless one): its endpoint, its
//! streams, who owns it and when it was last used.

use super::lock;
use super::routes::Routes;
use crate::endpoint::ClientEndpoint;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// This process's tag, the first part of every session id it mints:
/// random per start, so that a request reaching a replica that did not
/// open its session is told so (docs/scale-out.md), not just "not found".
pub fn replica_tag() -> &'static str {
    static TAG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    &TAG
}

/// A new session id: `TAG-RANDOM`, the random part 128 bits (unguessable).
pub(super) fn new_session_id() -> String {
    format!("{}-{}", replica_tag(), uuid::Uuid::new_v4().simple())
}

/// The replica that minted `sid`, when it looks like an id of warden's
/// and is not this replica's.
pub(super) fn other_replica(sid: &str) -> Option<&str> {
    let (tag, rest) = sid.split_once('-')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(tag, 8) && hex(rest, 32) && tag != replica_tag()).then_some(tag)
}

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
