//! The relay: one client session, one upstream connection, JSON-RPC
//! messages passed both ways as `raw::Message` (the decoded value and the
//! text it came as, so unchanged parts go out byte for byte). Only
//! `tools/call` (governed), the `tools/list` result (filtered and
//! annotated) and the `initialize` result (`tools.listChanged` advertised)
//! are changed; every other message goes through as it came, with its
//! unknown fields. What is refused at intake (disguised methods,
//! `tools/call` notifications, unnamed servers, undecodable JSON) is in
//! `relay::intake`.
//!
//! Ids. The client's request ids go upstream unchanged, so anything that
//! refers to them (cancellation, the 2026-07-28 `subscriptionId`) stays
//! valid; only ids starting with `warden:` are remapped, because warden's
//! own requests to the upstream (`tools/list` for annotations, the
//! initialize it replays after a restart) use that prefix. Requests from the
//! upstream to the client are always remapped to `warden:N`: a restarted
//! upstream counts its ids from the start again, and warden's own
//! elicitation requests share that space.
//!
//! The relay's jobs, one file each (all `impl Relay` but for the types they
//! own): `link` (where the upstream connection stands, warden's own
//! requests, the replay after a restart), `pending` (the pending tables
//! and call timeouts), `client_side` and `upstream_side` (what comes from
//! each side), `catalog` (the tool cache and the tools/list view),
//! `context` (who calls), `governed` (a tools/call's decision, in phases),
//! `confirm` (asking the person; the 2026-07-28 confirmation store),
//! `forward` (an allowed call sent, waited for and recorded), `audit` (the
//! decision log writes) and `intake` (what is refused at the door). The
//! state they share is one `State` behind one lock; the pending tables,
//! the tool cache and the confirmations are types of their own files,
//! reached only through their methods.

use crate::config::ProxyConfig;
use crate::jsonrpc::{self, Kind, OWN_ID_PREFIX};
use crate::raw::Message;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use warden_engine::{DecisionLog, Engine};

mod approval;
mod audit;
mod catalog;
mod client_side;
mod confirm;
mod context;
mod forward;
mod governed;
mod intake;
mod link;
mod pending;
mod upstream_side;

use catalog::ToolCache;
use context::{ClientSession, elicitation_supports_form};
use link::Link;
use pending::Pending;

/// How long `d` is, for messages: whole seconds when it is a whole number.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// One message for the client, with the id of the client request it
/// belongs to when known (a response's own id; warden's confirmation for a
/// `tools/call`; what the upstream sent on that request's HTTP stream). The
/// stdio writer ignores the hint; the Streamable HTTP server routes by it.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) text: String,
    pub(crate) related: Option<Value>,
    /// Whether the message is a response (else a request or notification).
    pub(crate) response: bool,
    /// No message (empty `text`): an HTTP upstream closed the stream of the
    /// request `related` before answering and warden is resuming it; the
    /// HTTP server closes the client's stream of that request the same way
    /// (the client resumes it with `Last-Event-ID`). Writers of plain
    /// JSON-RPC lines skip it.
    pub(crate) detach: bool,
}

/// Where a relay's (or a federation's) messages for the client go.
///
/// A channel to a task that writes them (stdio's writer; a federation,
/// which rewrites what each member sends), or a function that takes each
/// at once on the sender's own task: the Streamable HTTP server's routing,
/// which takes a lock, hands the message to the stream of its request and
/// never waits. The second spares every message a hand-off to a routing
/// task (a wake-up, often of another worker thread) on its way out.
#[derive(Clone)]
pub(crate) enum ClientOut {
    Channel(mpsc::Sender<Outgoing>),
    Direct(Arc<dyn Fn(Outgoing) + Send + Sync>),
}

impl ClientOut {
    /// Hands `out` on; an error gives it back when the client's side is
    /// gone (the channel closed).
    pub(crate) async fn send(&self, out: Outgoing) -> Result<(), Outgoing> {
        match self {
            ClientOut::Channel(tx) => tx.send(out).await.map_err(|e| e.0),
            ClientOut::Direct(take) => {
                take(out);
                Ok(())
            }
        }
    }
}

impl From<mpsc::Sender<Outgoing>> for ClientOut {
    fn from(tx: mpsc::Sender<Outgoing>) -> Self {
        ClientOut::Channel(tx)
    }
}

impl AsRef<str> for Outgoing {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// What the Streamable HTTP transport knows about one client request that
/// the JSON-RPC message does not carry, keyed by the request's id as the
/// relay sees it ([`id_key`]): the HTTP status the upstream answered it
/// with (carried back to the client). No header the client sent is kept:
/// toward an HTTP upstream warden sets the standard headers from the body
/// it decided. Only the HTTP server adds entries; it removes each when the
/// request is answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestHints {
    pub(crate) status: Option<u16>,
}

/// The request hints of one relay, shared with its HTTP server.
pub(crate) type Hints = Arc<Mutex<HashMap<String, RequestHints>>>;

/// What one relay keeps, behind one lock: the link, the pending tables,
/// the client's session, the upstream's name, the tool cache, the
/// decision log's state and the spawned calls.
struct State {
    link: Link,
    pending: Pending,
    session: ClientSession,
    server_info_name: Option<String>,
    tools: ToolCache,
    /// (tool, digest) of each changed definition already logged.
    reported_changes: std::collections::HashSet<(String, String)>,
    /// The warnings last given of rules that match nothing (given again
    /// only when they change).
    unmatched_warned: Vec<String>,
    /// Why the decision log failed last, while it is failing.
    audit_broken: Option<String>,
    tasks: tokio::task::JoinSet<()>,
}

/// The decide lock, held from a decision until the call counts.
type DecideGuard<'a> = tokio::sync::MutexGuard<'a, ()>;

/// One proxy session: the state both directions share.
pub(crate) struct Relay {
    pub(crate) cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    session_id: String,
    to_client: ClientOut,
    st: Mutex<State>,
    /// Held from a decision until the call counts (or is refused), so two
    /// concurrent calls cannot both slip under a cap.
    decide_lock: tokio::sync::Mutex<()>,
    fetch_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Numbers relayed requests' timers.
    next_seq: AtomicU64,
    /// Set by `client_gone` before it cancels the calls in flight, so their
    /// log lines say the session ended rather than that the client
    /// cancelled them (a drain, a DELETE, an idle session end alike).
    ending: std::sync::atomic::AtomicBool,
    /// Becomes true once the first upstream instance is up or has failed,
    /// so the client is not read before there is a link to relay to.
    link_settled: tokio::sync::watch::Sender<bool>,
    /// Transport facts per client request (Streamable HTTP serving).
    pub(crate) hints: Hints,
    /// Bumped when an answer to the client's initialize arrives (or the
    /// link fails), so a call waiting for the server's name looks again.
    named: tokio::sync::watch::Sender<u64>,
    /// Counts this session in `warden_sessions_active` while it lives.
    _session: Option<crate::metrics::SessionGuard>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

impl Relay {
    pub(crate) fn new(
        cfg: ProxyConfig,
        engine: Arc<Engine>,
        log: Arc<DecisionLog>,
        to_client: ClientOut,
        session_id: Option<String>,
    ) -> Arc<Self> {
        let session_id = session_id.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!(
                "stdio-{:x}{:05x}-{:x}",
                now.as_secs(),
                now.subsec_micros(),
                std::process::id()
            )
        });
        let session = cfg.metrics.as_ref().map(|m| m.session());
        Arc::new(Relay {
            _session: session,
            cfg,
            engine,
            log,
            session_id,
            to_client,
            st: Mutex::new(State {
                link: Link::Starting,
                pending: Pending::default(),
                session: ClientSession::default(),
                server_info_name: None,
                tools: ToolCache::default(),
                reported_changes: Default::default(),
                unmatched_warned: Vec::new(),
                audit_broken: None,
                tasks: tokio::task::JoinSet::new(),
            }),
            decide_lock: tokio::sync::Mutex::new(()),
            fetch_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
            ending: std::sync::atomic::AtomicBool::new(false),
            link_settled: tokio::sync::watch::Sender::new(false),
            hints: Hints::default(),
            named: tokio::sync::watch::Sender::new(0),
        })
    }

    fn own_id(&self) -> Value {
        Value::String(format!(
            "{OWN_ID_PREFIX}{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// The upstream's name in policies.
    pub(crate) fn server_name(&self) -> String {
        if let Some(n) = &self.cfg.server_name {
            return n.clone();
        }
        lock(&self.st)
            .server_info_name
            .clone()
            .unwrap_or_else(|| self.cfg.upstream.default_name())
    }

    async fn send_client(&self, msg: impl Into<Message>) {
        self.send_client_for(msg, None).await;
    }

    async fn send_client_for(&self, msg: impl Into<Message>, related: Option<Value>) {
        let msg: Message = msg.into();
        let (related, response) = match jsonrpc::classify(&msg) {
            Ok(Kind::Response { id }) => (Some(id), true),
            _ => (related, false),
        };
        let out = Outgoing {
            text: msg.to_string(),
            related,
            response,
            detach: false,
        };
        if self.to_client.send(out).await.is_err() {
            tracing::debug!("client output closed; message dropped");
        }
    }

    fn spawn(self: &Arc<Self>, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut st = lock(&self.st);
        while st.tasks.try_join_next().is_some() {}
        st.tasks.spawn(fut);
    }
}
