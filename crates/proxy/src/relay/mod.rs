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

use crate::bearer::Caller;
use crate::config::ProxyConfig;
use crate::framing::{Frame, LineReader};
use crate::govern::{
    self, CONFIRM_INPUT_KEY, GOVERNED_METHODS, PROVENANCE_KEY, RESERVED_META_PREFIXES, ToolInfo,
    ToolView,
};
use crate::jsonrpc::{self, Kind, OWN_ID_PREFIX, id_key};
use crate::provenance_token::TOKEN_META_KEY;
use crate::raw::Message;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufRead;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warden_engine::{
    CallContext, Decided, DecisionLog, Denial, Engine, Identity, Outcome, Provenance, Retry,
    UpstreamOutcome,
};

const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";
const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
/// Protocol versions from this one on have no initialize and carry the
/// client's identity and capabilities in every request's `_meta`.
const STATELESS_PROTOCOL: &str = "2026-07-28";
/// How long a 2026-07-28 confirmation stays answerable.
const MRTR_CONFIRM_TTL: Duration = Duration::from_secs(600);
/// Most pending 2026-07-28 confirmations kept.
const MAX_PENDING_CONFIRMS: usize = 1024;
/// Most pages of tools/list warden reads to learn annotations.
const MAX_TOOL_PAGES: usize = 100;
/// Requests that wait by design (a 2026-07-28 subscription stream, a
/// task's result): no call timeout.
const LONG_WAITS: [&str; 2] = ["subscriptions/listen", "tasks/result"];

/// Where the upstream connection stands.
enum Link {
    /// Not started yet.
    Starting,
    /// Running; the client's requests go through.
    Up {
        tx: mpsc::Sender<String>,
        epoch: u64,
    },
    /// Restarted and being re-initialized: only warden's own requests.
    Recovering {
        tx: mpsc::Sender<String>,
        epoch: u64,
    },
    /// Exited or failed to start; restarting.
    Down { reason: String, retry_at: Instant },
    /// The session is over.
    Closed,
}

/// Who waits for the answer to a request sent upstream.
enum UpWait {
    /// A client request relayed as is; the answer goes back with `client_id`.
    Forward { client_id: Value, kind: Fwd },
    /// Warden's own request, or a governed call: the answer (the whole
    /// response message) or the reason there will be none.
    Own(oneshot::Sender<Result<Message, String>>),
}

struct UpPending {
    epoch: u64,
    wait: UpWait,
    /// The client request this one serves, for routing what the upstream
    /// sends about it (HTTP: on the request's own stream).
    related: Option<Value>,
    /// When warden stops waiting (`call_timeout`); moved on by each
    /// progress notification for the request. `None`: no limit (warden's
    /// own requests, which have theirs, and long waits).
    deadline: Option<Instant>,
    /// The request's `progressToken` ([`id_key`]).
    progress: Option<String>,
    /// A relayed request's timer task, stopped when the entry goes.
    timer: Option<Timer>,
    /// Tells this entry from a later one with the same id (its timer's).
    seq: u64,
}

impl UpPending {
    fn new(epoch: u64, wait: UpWait, related: Option<Value>) -> Self {
        UpPending {
            epoch,
            wait,
            related,
            deadline: None,
            progress: None,
            timer: None,
            seq: 0,
        }
    }
}

/// Aborts a relayed request's timeout task when dropped (the request was
/// answered, failed or cancelled); `disarm` when the task itself ends it.
struct Timer(Option<tokio::task::AbortHandle>);

impl Timer {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// What a relayed request's timer found when it woke.
enum Expiry {
    /// Answered (or otherwise gone): nothing to do.
    Gone,
    /// Progress moved the deadline.
    Later(Instant),
    /// Timed out: the entry, removed.
    Expired(Value),
}

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

/// What to do with the answer to a relayed request.
#[derive(Debug, Clone)]
enum Fwd {
    Plain,
    Initialize,
    ToolsList {
        agent: Option<String>,
        complete: bool,
        /// Whom the list is for (a verified bearer token's identity).
        caller: Option<Arc<Caller>>,
    },
}

/// Who waits for the client's answer to a request sent to it.
enum DownPending {
    /// A request from the upstream; the answer goes back with `up_id`.
    Forward { up_id: Value, epoch: u64 },
    /// Warden's own request (a confirmation).
    Own(oneshot::Sender<Value>),
}

/// An in-flight client request.
struct ClientReq {
    /// The id it went upstream with, once it did (relayed requests).
    up_key: Option<(String, Value)>,
    /// Cancels a governed call.
    cancel: Option<CancellationToken>,
}

/// A confirmation asked for with an `input_required` result (2026-07-28).
struct PendingConfirm {
    tool: String,
    arguments: Value,
    /// The call's params as first sent (the retry's are not trusted).
    params: Value,
    expires: Instant,
    /// The bearer principal it was asked of (`None` without bearer auth:
    /// then the unguessable `requestState` alone names the asker).
    owner: Option<String>,
}

#[derive(Default)]
struct ToolCache {
    tools: HashMap<String, ToolInfo>,
    /// The whole list was read since the last `list_changed`.
    fresh: bool,
}

/// What the client said in initialize (protocol versions before 2026-07-28).
#[derive(Default)]
struct ClientSession {
    /// The initialize params, replayed to a restarted upstream.
    init_params: Option<Value>,
    initialized: bool,
    agent: Option<String>,
    elicitation_form: bool,
    log_level: Option<Value>,
    subscriptions: BTreeSet<String>,
}

struct State {
    link: Link,
    up_pending: HashMap<String, UpPending>,
    down_pending: HashMap<String, DownPending>,
    client_reqs: HashMap<String, ClientReq>,
    session: ClientSession,
    server_info_name: Option<String>,
    tools: ToolCache,
    confirms: HashMap<String, PendingConfirm>,
    /// Why the decision log failed last, while it is failing.
    audit_broken: Option<String>,
    tasks: tokio::task::JoinSet<()>,
}

/// One proxy session: the state both directions share.
pub(crate) struct Relay {
    pub(crate) cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    session_id: String,
    to_client: mpsc::Sender<Outgoing>,
    st: Mutex<State>,
    /// Held from a decision until the call counts (or is refused), so two
    /// concurrent calls cannot both slip under a cap.
    decide_lock: tokio::sync::Mutex<()>,
    fetch_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Numbers relayed requests' timers.
    next_seq: AtomicU64,
    /// Becomes true once the first upstream instance is up or has failed,
    /// so the client is not read before there is a link to relay to.
    link_settled: tokio::sync::watch::Sender<bool>,
    /// Transport facts per client request (Streamable HTTP serving).
    pub(crate) hints: Hints,
    /// Bumped when an answer to the client's initialize arrives (or the
    /// link fails), so a call waiting for the server's name looks again.
    named: tokio::sync::watch::Sender<u64>,
}

/// The per-request view of who calls and what the client can do.
#[derive(Debug, Clone, Default)]
struct ReqCtx {
    stateless: bool,
    agent: Option<String>,
    elicitation_form: bool,
    /// The `io.modelcontextprotocol/*` keys of the request's `_meta`, for
    /// warden's own requests on its behalf (2026-07-28 needs them).
    mcp_meta: Map<String, Value>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn elicitation_supports_form(caps: Option<&Value>) -> bool {
    match caps.and_then(|c| c.get("elicitation")) {
        Some(Value::Object(e)) => {
            // 2025-06-18: `{}`. 2025-11-25: `{form?, url?}`, `{}` meaning form.
            e.contains_key("form") || !e.contains_key("url")
        }
        _ => false,
    }
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
        to_client: mpsc::Sender<Outgoing>,
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
        Arc::new(Relay {
            cfg,
            engine,
            log,
            session_id,
            to_client,
            st: Mutex::new(State {
                link: Link::Starting,
                up_pending: HashMap::new(),
                down_pending: HashMap::new(),
                client_reqs: HashMap::new(),
                session: ClientSession::default(),
                server_info_name: None,
                tools: ToolCache::default(),
                confirms: HashMap::new(),
                audit_broken: None,
                tasks: tokio::task::JoinSet::new(),
            }),
            decide_lock: tokio::sync::Mutex::new(()),
            fetch_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
            link_settled: tokio::sync::watch::Sender::new(false),
            hints: Hints::default(),
            named: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The client request an upstream request serves, while it is in flight.
    fn related_of(&self, up_id: &Value) -> Option<Value> {
        lock(&self.st)
            .up_pending
            .get(&id_key(up_id))
            .and_then(|p| p.related.clone())
    }

    /// An HTTP upstream closed the SSE stream of the upstream request
    /// `up_id` before answering it, and warden resumes it: the client's
    /// stream of the request it serves is closed the same way.
    pub(crate) async fn upstream_stream_broke(&self, up_id: &Value) {
        let Some(related) = self.related_of(up_id) else {
            return;
        };
        let out = Outgoing {
            text: String::new(),
            related: Some(related),
            response: false,
            detach: true,
        };
        let _ = self.to_client.send(out).await;
    }

    /// Records the HTTP status an HTTP upstream answered the upstream
    /// request `up_id` with (a single JSON-RPC message), for the client
    /// request it serves.
    pub(crate) fn note_upstream_status(&self, up_id: &Value, status: u16) {
        let Some(related) = self.related_of(up_id) else {
            return;
        };
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hints.get_mut(&id_key(&related)) {
            h.status = Some(status);
        }
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

    // ---- the upstream link -------------------------------------------------

    /// A new upstream process is running; `recovering` while warden replays
    /// the client's initialize to it.
    /// Waits until the first upstream instance is up (or failed to come
    /// up), so that a client's first message does not race its start.
    pub(crate) async fn wait_link_settled(&self) {
        let mut rx = self.link_settled.subscribe();
        let _ = rx.wait_for(|settled| *settled).await;
    }

    pub(crate) fn link_started(&self, epoch: u64, tx: mpsc::Sender<String>, recovering: bool) {
        {
            let mut st = lock(&self.st);
            if !matches!(st.link, Link::Closed) {
                st.link = if recovering {
                    Link::Recovering { tx, epoch }
                } else {
                    Link::Up { tx, epoch }
                };
            }
        }
        // Only now: the client's first message must find the link up.
        self.link_settled.send_replace(true);
    }

    /// Whether the client initialized, so a restarted upstream must be.
    pub(crate) fn needs_replay(&self) -> bool {
        lock(&self.st).session.init_params.is_some()
    }

    /// The upstream of generation `epoch` is gone: everything waiting on it
    /// gets an error, and the client's requests get one until it is back.
    pub(crate) async fn link_down(&self, epoch: u64, reason: String, retry_in: Duration) {
        let server = self.server_name();
        let (failed, cancelled) = {
            let mut st = lock(&self.st);
            let current = match &st.link {
                Link::Up { epoch: g, .. } | Link::Recovering { epoch: g, .. } => *g == epoch,
                Link::Starting | Link::Down { .. } => true,
                Link::Closed => false,
            };
            if current {
                st.link = Link::Down {
                    reason: reason.clone(),
                    retry_at: Instant::now() + retry_in,
                };
            }
            let keys: Vec<String> = st
                .up_pending
                .iter()
                .filter(|(_, p)| p.epoch == epoch)
                .map(|(k, _)| k.clone())
                .collect();
            let mut failed = Vec::new();
            for k in keys {
                if let Some(p) = st.up_pending.remove(&k) {
                    failed.push(p.wait);
                }
            }
            // The client's answers to the dead upstream's requests have
            // nowhere to go; tell the client to stop working on them.
            let down: Vec<String> = st
                .down_pending
                .iter()
                .filter(|(_, p)| matches!(p, DownPending::Forward { epoch: g, .. } if *g == epoch))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &down {
                st.down_pending.remove(k);
            }
            for p in &failed {
                if let UpWait::Forward { client_id, .. } = p {
                    st.client_reqs.remove(&id_key(client_id));
                }
            }
            (failed, down)
        };
        self.link_settled.send_replace(true);
        self.named.send_modify(|n| *n += 1);
        let message = format!(
            "upstream MCP server `{server}` {reason} before answering; warden is restarting it. The request may or may not have taken effect."
        );
        for wait in failed {
            match wait {
                UpWait::Forward { client_id, .. } => {
                    self.send_client(jsonrpc::error(
                        client_id,
                        jsonrpc::UPSTREAM_UNAVAILABLE,
                        message.clone(),
                        Some(json!({"warden/upstream": {"state": "exited", "server": server}})),
                    ))
                    .await;
                }
                UpWait::Own(tx) => {
                    let _ = tx.send(Err(message.clone()));
                }
            }
        }
        for k in cancelled {
            if let Ok(id) = serde_json::from_str::<Value>(&k) {
                self.send_client(jsonrpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": id, "reason": "the upstream server exited"})),
                ))
                .await;
            }
        }
    }

    /// The error a client request gets while the upstream is not up.
    fn unavailable(&self, id: Value, st: &State) -> Value {
        let server = self
            .cfg
            .server_name
            .clone()
            .or_else(|| st.server_info_name.clone())
            .unwrap_or_else(|| self.cfg.upstream.default_name());
        let (what, retry_ms) = match &st.link {
            Link::Down { reason, retry_at } => {
                let ms = retry_at
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64;
                (
                    format!("{reason}; warden restarts it (next attempt in {ms} ms)"),
                    Some(ms),
                )
            }
            Link::Recovering { .. } | Link::Starting => ("is starting".to_string(), Some(250)),
            Link::Closed => ("is shut down".to_string(), None),
            Link::Up { .. } => ("is not reachable".to_string(), Some(250)),
        };
        jsonrpc::error(
            id,
            jsonrpc::UPSTREAM_UNAVAILABLE,
            format!("upstream MCP server `{server}` is not available: it {what}. Retry shortly."),
            Some(
                json!({"warden/upstream": {"state": "unavailable", "server": server, "retry_after_ms": retry_ms}}),
            ),
        )
    }

    fn up_sender(st: &State, own: bool) -> Option<(mpsc::Sender<String>, u64)> {
        match &st.link {
            Link::Up { tx, epoch } => Some((tx.clone(), *epoch)),
            Link::Recovering { tx, epoch } if own => Some((tx.clone(), *epoch)),
            _ => None,
        }
    }

    /// Sends a notification upstream if it is up; dropped otherwise.
    async fn notify_up(&self, msg: impl Into<Message>) {
        let msg: Message = msg.into();
        let tx = Self::up_sender(&lock(&self.st), false);
        if let Some((tx, _)) = tx {
            let _ = tx.send(msg.to_string()).await;
        }
    }

    /// Sends one of warden's own requests upstream and waits for the whole
    /// response (or an error saying why there is none).
    pub(crate) async fn own_request(
        &self,
        method: &str,
        params: Value,
        recovering_ok: bool,
    ) -> Result<Value, String> {
        let id = self.own_id();
        let key = id_key(&id);
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut st = lock(&self.st);
            let Some((sender, epoch)) = Self::up_sender(&st, recovering_ok) else {
                return Err("the upstream server is not available".into());
            };
            st.up_pending
                .insert(key.clone(), UpPending::new(epoch, UpWait::Own(tx), None));
            sender
        };
        let msg = jsonrpc::request(id.clone(), method, params);
        if sender.send(msg.to_string()).await.is_err() {
            lock(&self.st).up_pending.remove(&key);
            return Err("the upstream server is not available".into());
        }
        match tokio::time::timeout(self.cfg.internal_timeout, rx).await {
            Ok(Ok(r)) => r.map(Message::into_value),
            Ok(Err(_)) => Err("the upstream server went away".into()),
            Err(_) => {
                lock(&self.st).up_pending.remove(&key);
                let _ = sender
                    .send(
                        jsonrpc::notification(
                            "notifications/cancelled",
                            Some(json!({"requestId": id, "reason": "timed out"})),
                        )
                        .to_string(),
                    )
                    .await;
                Err(format!(
                    "no answer to `{method}` within {} s",
                    self.cfg.internal_timeout.as_secs()
                ))
            }
        }
    }

    /// Brings a restarted upstream to where the client left the old one:
    /// initialize, initialized, log level and subscriptions; then tells the
    /// client its tools may have changed.
    pub(crate) async fn replay_session(&self, epoch: u64) -> Result<(), String> {
        let (init, initialized, level, subs) = {
            let st = lock(&self.st);
            (
                st.session.init_params.clone(),
                st.session.initialized,
                st.session.log_level.clone(),
                st.session.subscriptions.clone(),
            )
        };
        if let Some(init) = init {
            let resp = self.own_request("initialize", init, true).await?;
            if let Some(e) = resp.get("error") {
                return Err(format!("it refused the replayed initialize: {e}"));
            }
            if initialized {
                let tx = Self::up_sender(&lock(&self.st), true);
                if let Some((tx, _)) = tx {
                    let _ = tx
                        .send(jsonrpc::notification("notifications/initialized", None).to_string())
                        .await;
                }
            }
            if let Some(level) = level {
                let _ = self.own_request("logging/setLevel", level, true).await;
            }
            for uri in subs {
                let _ = self
                    .own_request("resources/subscribe", json!({"uri": uri}), true)
                    .await;
            }
        }
        let became_up = {
            let mut st = lock(&self.st);
            match std::mem::replace(&mut st.link, Link::Starting) {
                Link::Recovering { tx, epoch: g } if g == epoch => {
                    st.link = Link::Up { tx, epoch };
                    st.tools.fresh = false;
                    st.session.initialized
                }
                other => {
                    st.link = other;
                    false
                }
            }
        };
        if became_up {
            self.send_client(jsonrpc::notification(
                "notifications/tools/list_changed",
                None,
            ))
            .await;
        }
        Ok(())
    }

    /// Policies were reloaded: the client should list tools again.
    pub(crate) async fn policies_changed(&self) {
        let initialized = {
            let st = lock(&self.st);
            st.session.initialized || st.session.init_params.is_none()
        };
        if initialized && !matches!(lock(&self.st).link, Link::Closed) {
            self.send_client(jsonrpc::notification(
                "notifications/tools/list_changed",
                None,
            ))
            .await;
        }
    }

    // ---- the call timeout --------------------------------------------------

    /// When a request of `method` sent upstream now stops being waited for.
    fn call_deadline(&self, method: &str) -> Option<Instant> {
        if self.cfg.call_timeout.is_zero() || LONG_WAITS.contains(&method) {
            return None;
        }
        Some(Instant::now() + self.cfg.call_timeout)
    }

    /// A relayed request's timer woke: is the request still waiting, and
    /// until when? Removes it when its time is up.
    fn expire(&self, key: &str, seq: u64) -> Expiry {
        let mut st = lock(&self.st);
        let deadline = match st.up_pending.get(key) {
            Some(p) if p.seq == seq => p.deadline,
            _ => return Expiry::Gone,
        };
        if let Some(at) = deadline
            && at > Instant::now()
        {
            return Expiry::Later(at);
        }
        let Some(mut p) = st.up_pending.remove(key) else {
            return Expiry::Gone;
        };
        if let Some(t) = p.timer.as_mut() {
            t.disarm();
        }
        match p.wait {
            UpWait::Forward { client_id, .. } => {
                st.client_reqs.remove(&id_key(&client_id));
                Expiry::Expired(client_id)
            }
            UpWait::Own(_) => Expiry::Gone,
        }
    }

    /// The error a request gets when the upstream did not answer in time.
    fn timeout_error(&self, client_id: Value) -> Value {
        let server = self.server_name();
        let n = secs(self.cfg.call_timeout);
        jsonrpc::error(
            client_id,
            jsonrpc::UPSTREAM_UNAVAILABLE,
            format!(
                "upstream MCP server `{server}` did not answer within {n} s (--call-timeout); warden stopped waiting and asked it to cancel the request. The request may or may not have taken effect."
            ),
            Some(
                json!({"warden/upstream": {"state": "timed_out", "server": server,
                "timeout_s": self.cfg.call_timeout.as_secs_f64()}}),
            ),
        )
    }

    /// Tells the upstream to stop working on a request warden gave up on.
    async fn cancel_up(&self, up_id: Value) {
        let reason = format!(
            "warden: no answer within {} s (--call-timeout)",
            secs(self.cfg.call_timeout)
        );
        self.notify_up(jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": up_id, "reason": reason})),
        ))
        .await;
    }

    /// A relayed request timed out: the client gets the error, the
    /// upstream a cancellation.
    async fn relayed_timed_out(&self, key: &str, client_id: Value) {
        tracing::warn!("upstream did not answer request {client_id} in time; cancelled");
        self.send_client(self.timeout_error(client_id)).await;
        if let Ok(up_id) = serde_json::from_str::<Value>(key) {
            self.cancel_up(up_id).await;
        }
    }

    /// The upstream reported progress on a request: its timeout starts
    /// again.
    fn progress_seen(&self, msg: &Value) {
        let Some(token) = msg.pointer("/params/progressToken").map(id_key) else {
            return;
        };
        let mut st = lock(&self.st);
        let next = Instant::now() + self.cfg.call_timeout;
        for p in st.up_pending.values_mut() {
            if p.progress.as_deref() == Some(token.as_str()) && p.deadline.is_some() {
                p.deadline = Some(next);
            }
        }
    }

    // ---- from the client ---------------------------------------------------

    /// Reads the client until it disconnects, then cancels what it left in
    /// flight.
    pub(crate) async fn run_client<R: AsyncBufRead + Unpin>(self: &Arc<Self>, input: R) {
        let mut reader = LineReader::new(input, self.cfg.max_message_bytes);
        loop {
            match reader.next().await {
                Ok(Some(frame)) => self.on_client_frame(frame, None).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("reading from the client failed: {e}");
                    break;
                }
            }
        }
        self.client_gone().await;
    }

    /// Handles one frame from the client (the Streamable HTTP server feeds
    /// each POSTed message here, with the identity its bearer token gave).
    pub(crate) async fn on_client_frame(
        self: &Arc<Self>,
        frame: Frame,
        caller: Option<Arc<Caller>>,
    ) {
        match frame {
            Frame::TooLarge { len, head } => {
                let id = jsonrpc::sniff_id(&head);
                let message = format!(
                    "message of {len} bytes exceeds warden's limit of {} bytes (--max-message-bytes)",
                    self.cfg.max_message_bytes
                );
                tracing::warn!("client sent a {len}-byte message; refused");
                // A response of the client's to a request from upstream: the
                // upstream gets the error instead.
                if let Some(id) = &id {
                    let pending = lock(&self.st).down_pending.remove(&id_key(id));
                    match pending {
                        Some(DownPending::Forward { up_id, epoch }) => {
                            self.reply_up(
                                epoch,
                                jsonrpc::error(up_id, jsonrpc::INVALID_REQUEST, message, None),
                            )
                            .await;
                            return;
                        }
                        Some(DownPending::Own(tx)) => {
                            let _ = tx.send(jsonrpc::error(
                                id.clone(),
                                jsonrpc::INVALID_REQUEST,
                                message,
                                None,
                            ));
                            return;
                        }
                        None => {}
                    }
                }
                self.send_client(jsonrpc::error(
                    id.unwrap_or(Value::Null),
                    jsonrpc::INVALID_REQUEST,
                    message,
                    None,
                ))
                .await;
            }
            Frame::Line(bytes) => {
                let msg = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => match String::from_utf8(bytes) {
                        Ok(text) => Message::decoded(v, text.into()),
                        Err(_) => Message::from(v),
                    },
                    Err(e) => {
                        self.client_unreadable(&bytes, e).await;
                        return;
                    }
                };
                match jsonrpc::classify(&msg) {
                    Ok(kind) => self.on_client_message(msg, kind, caller).await,
                    Err(why) => {
                        let id = match msg.get("id") {
                            Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
                            _ => Value::Null,
                        };
                        self.send_client(jsonrpc::error(
                            id,
                            jsonrpc::INVALID_REQUEST,
                            format!("invalid request: {why}"),
                            None,
                        ))
                        .await;
                    }
                }
            }
        }
    }

    async fn on_client_message(
        self: &Arc<Self>,
        mut msg: Message,
        kind: Kind,
        caller: Option<Arc<Caller>>,
    ) {
        // Warden's own keys, in any case and any position, never come
        // from a client (finding 14).
        jsonrpc::strip_reserved_meta(&mut msg, RESERVED_META_PREFIXES);
        match kind {
            Kind::Request { id, method } => {
                if let Some(governed) = jsonrpc::disguised(&method, GOVERNED_METHODS) {
                    self.send_client(disguised_method(id, &method, governed))
                        .await;
                    return;
                }
                if method == "tools/call" {
                    let key = id_key(&id);
                    let cancel = CancellationToken::new();
                    let duplicate = {
                        let mut st = lock(&self.st);
                        let duplicate = st.client_reqs.contains_key(&key);
                        if !duplicate {
                            st.client_reqs.insert(
                                key,
                                ClientReq {
                                    up_key: None,
                                    cancel: Some(cancel.clone()),
                                },
                            );
                        }
                        duplicate
                    };
                    if duplicate {
                        self.send_client(duplicate_id(id)).await;
                        return;
                    }
                    let me = Arc::clone(self);
                    self.spawn(async move { me.governed_call(msg, id, cancel, caller).await });
                } else {
                    self.relay_request(msg, id, &method, caller).await;
                }
            }
            Kind::Notification { method } => {
                if method == "tools/call" || jsonrpc::disguised(&method, GOVERNED_METHODS).is_some()
                {
                    self.drop_governed_notification(&msg, &method, caller.as_deref());
                    return;
                }
                match method.as_str() {
                    "notifications/cancelled" => self.client_cancelled(msg).await,
                    "notifications/initialized" => {
                        lock(&self.st).session.initialized = true;
                        self.notify_up(msg).await;
                    }
                    _ => self.notify_up(msg).await,
                }
            }
            Kind::Response { id } => {
                let pending = lock(&self.st).down_pending.remove(&id_key(&id));
                match pending {
                    Some(DownPending::Forward { up_id, epoch }) => {
                        msg["id"] = up_id;
                        self.reply_up(epoch, msg).await;
                    }
                    Some(DownPending::Own(tx)) => {
                        let _ = tx.send(msg.into_value());
                    }
                    None => tracing::debug!("client answered unknown request {id}; dropped"),
                }
            }
        }
    }

    /// Sends the client's answer to the upstream that asked, if that
    /// upstream is still the one running.
    async fn reply_up(&self, epoch: u64, msg: impl Into<Message>) {
        let msg: Message = msg.into();
        let tx = Self::up_sender(&lock(&self.st), true);
        match tx {
            Some((tx, g)) if g == epoch => {
                let _ = tx.send(msg.to_string()).await;
            }
            _ => tracing::debug!("answer for a previous upstream instance dropped"),
        }
    }

    /// The id a client request goes upstream with.
    fn upstream_id(&self, client_id: &Value) -> Value {
        match client_id {
            Value::String(s) if s.starts_with(OWN_ID_PREFIX) => self.own_id(),
            other => other.clone(),
        }
    }

    async fn relay_request(
        self: &Arc<Self>,
        mut msg: Message,
        id: Value,
        method: &str,
        caller: Option<Arc<Caller>>,
    ) {
        let kind = match method {
            "initialize" => {
                let params = msg.get("params").cloned().unwrap_or(json!({}));
                let mut st = lock(&self.st);
                st.session.agent = params
                    .pointer("/clientInfo/name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                st.session.elicitation_form = elicitation_supports_form(params.get("capabilities"));
                st.session.init_params = Some(params);
                Fwd::Initialize
            }
            "tools/list" => {
                let ctx = self.req_ctx(&msg);
                // A 2026-07-28 client never initializes: learn the name the
                // view is decided under first (finding 3).
                if ctx.stateless && self.known_server_name().is_none() {
                    let _ = self.learn_server_name().await;
                }
                let complete = msg.pointer("/params/cursor").is_none();
                Fwd::ToolsList {
                    agent: ctx.agent,
                    complete,
                    caller,
                }
            }
            "logging/setLevel" => {
                lock(&self.st).session.log_level = msg.get("params").cloned();
                Fwd::Plain
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                if let Some(uri) = msg.pointer("/params/uri").and_then(Value::as_str) {
                    let mut st = lock(&self.st);
                    if method == "resources/subscribe" {
                        st.session.subscriptions.insert(uri.to_string());
                    } else {
                        st.session.subscriptions.remove(uri);
                    }
                }
                Fwd::Plain
            }
            _ => Fwd::Plain,
        };
        let up_id = self.upstream_id(&id);
        let up_key = id_key(&up_id);
        let client_key = id_key(&id);
        let deadline = self.call_deadline(method);
        let mut timer = deadline.map(|at| {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let task = tokio::spawn(relayed_timer(Arc::downgrade(self), up_key.clone(), seq, at));
            (seq, Timer(Some(task.abort_handle())))
        });
        let sender = {
            let mut st = lock(&self.st);
            match Self::up_sender(&st, false) {
                None => {
                    // Answer a ping while the upstream restarts: the proxy,
                    // which the client talks to, is alive.
                    Err(if method == "ping" {
                        jsonrpc::result(id.clone(), json!({}))
                    } else {
                        self.unavailable(id.clone(), &st)
                    })
                }
                Some(_)
                    if st.client_reqs.contains_key(&client_key)
                        || st.up_pending.contains_key(&up_key) =>
                {
                    Err(duplicate_id(id.clone()))
                }
                Some((sender, epoch)) => {
                    let (seq, timer) = timer.take().map_or((0, None), |(s, t)| (s, Some(t)));
                    st.up_pending.insert(
                        up_key.clone(),
                        UpPending {
                            deadline,
                            progress: progress_token(&msg),
                            timer,
                            seq,
                            ..UpPending::new(
                                epoch,
                                UpWait::Forward {
                                    client_id: id.clone(),
                                    kind,
                                },
                                Some(id.clone()),
                            )
                        },
                    );
                    st.client_reqs.insert(
                        client_key.clone(),
                        ClientReq {
                            up_key: Some((up_key.clone(), up_id.clone())),
                            cancel: None,
                        },
                    );
                    Ok(sender)
                }
            }
        };
        let sender = match sender {
            Ok(sender) => sender,
            Err(reply) => {
                self.send_client(reply).await;
                return;
            }
        };
        msg["id"] = up_id;
        if sender.send(msg.to_string()).await.is_err() {
            let reply = {
                let mut st = lock(&self.st);
                st.up_pending.remove(&up_key);
                st.client_reqs.remove(&client_key);
                self.unavailable(id, &st)
            };
            self.send_client(reply).await;
        }
    }

    async fn client_cancelled(&self, mut msg: Message) {
        let Some(req_id) = msg.pointer("/params/requestId").cloned() else {
            return;
        };
        let entry = lock(&self.st).client_reqs.remove(&id_key(&req_id));
        match entry {
            Some(ClientReq {
                cancel: Some(token),
                ..
            }) => token.cancel(),
            Some(ClientReq {
                up_key: Some((key, up_id)),
                ..
            }) => {
                lock(&self.st).up_pending.remove(&key);
                msg["params"]["requestId"] = up_id;
                self.notify_up(msg).await;
            }
            // Not (or no longer) in flight here: pass it on as it came.
            _ => self.notify_up(msg).await,
        }
    }

    /// The client disconnected: cancel its requests upstream, let governed
    /// calls log their end, and close the upstream link.
    pub(crate) async fn client_gone(&self) {
        let (reqs, mut tasks) = {
            let mut st = lock(&self.st);
            let reqs: Vec<ClientReq> = st.client_reqs.drain().map(|(_, r)| r).collect();
            for r in &reqs {
                if let Some((key, _)) = &r.up_key {
                    st.up_pending.remove(key);
                }
            }
            (reqs, std::mem::take(&mut st.tasks))
        };
        for r in reqs {
            if let Some(token) = r.cancel {
                token.cancel();
            }
            if let Some((_, up_id)) = r.up_key {
                self.notify_up(jsonrpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": up_id, "reason": "the client disconnected"})),
                ))
                .await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let mut st = lock(&self.st);
        st.link = Link::Closed;
        for (_, p) in st.down_pending.drain() {
            drop(p);
        }
    }

    // ---- from the upstream -------------------------------------------------

    pub(crate) async fn on_upstream_frame(&self, epoch: u64, frame: Frame) {
        self.on_upstream_frame_about(epoch, frame, None).await;
    }

    /// A frame from the upstream that came in answer to the upstream
    /// request `about` (an HTTP upstream's response stream): requests and
    /// notifications in it are routed to the client with the request they
    /// relate to.
    pub(crate) async fn on_upstream_frame_about(
        &self,
        epoch: u64,
        frame: Frame,
        about: Option<Value>,
    ) {
        match frame {
            Frame::TooLarge { len, head } => {
                tracing::warn!("upstream sent a {len}-byte message; dropped");
                let Some(id) = jsonrpc::sniff_id(&head) else {
                    return;
                };
                let message = format!(
                    "the upstream server's message of {len} bytes exceeds warden's limit of {} bytes (--max-message-bytes)",
                    self.cfg.max_message_bytes
                );
                let pending = lock(&self.st).up_pending.remove(&id_key(&id));
                match pending.map(|p| p.wait) {
                    Some(UpWait::Forward { client_id, .. }) => {
                        lock(&self.st).client_reqs.remove(&id_key(&client_id));
                        self.send_client(jsonrpc::error(
                            client_id,
                            jsonrpc::INTERNAL_ERROR,
                            message,
                            None,
                        ))
                        .await;
                    }
                    Some(UpWait::Own(tx)) => {
                        let _ = tx.send(Ok(jsonrpc::error(
                            id,
                            jsonrpc::INTERNAL_ERROR,
                            message,
                            None,
                        )
                        .into()));
                    }
                    None => {}
                }
            }
            Frame::Line(bytes) => {
                let msg = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => match String::from_utf8(bytes) {
                        Ok(text) => Message::decoded(v, text.into()),
                        Err(_) => Message::from(v),
                    },
                    Err(e) => {
                        self.upstream_unreadable(&bytes, e).await;
                        return;
                    }
                };
                match jsonrpc::classify(&msg) {
                    Ok(kind) => {
                        let related = about.and_then(|up_id| {
                            lock(&self.st)
                                .up_pending
                                .get(&id_key(&up_id))
                                .and_then(|p| p.related.clone())
                        });
                        self.on_upstream_message(epoch, msg, kind, related).await
                    }
                    Err(why) => tracing::warn!("upstream sent an invalid message ({why}); dropped"),
                }
            }
        }
    }

    async fn on_upstream_message(
        &self,
        epoch: u64,
        mut msg: Message,
        kind: Kind,
        related: Option<Value>,
    ) {
        match kind {
            Kind::Response { id } => {
                let pending = {
                    let mut st = lock(&self.st);
                    let p = st.up_pending.remove(&id_key(&id));
                    if let Some(UpPending {
                        wait: UpWait::Forward { client_id, .. },
                        ..
                    }) = &p
                    {
                        st.client_reqs.remove(&id_key(client_id));
                    }
                    p
                };
                match pending.map(|p| p.wait) {
                    Some(UpWait::Forward { client_id, kind }) => {
                        self.post_process(&mut msg, &kind);
                        if matches!(kind, Fwd::Initialize) {
                            self.named.send_modify(|n| *n += 1);
                        }
                        msg["id"] = client_id;
                        self.send_client(msg).await;
                    }
                    Some(UpWait::Own(tx)) => {
                        let _ = tx.send(Ok(msg));
                    }
                    None => tracing::debug!("upstream answered unknown request {id}; dropped"),
                }
            }
            Kind::Request { id, .. } => {
                let down_id = self.own_id();
                lock(&self.st)
                    .down_pending
                    .insert(id_key(&down_id), DownPending::Forward { up_id: id, epoch });
                msg["id"] = down_id;
                self.send_client_for(msg, related).await;
            }
            Kind::Notification { method } => {
                let mut related = related;
                match method.as_str() {
                    "notifications/cancelled" => {
                        if let Some(req_id) = msg.pointer("/params/requestId").cloned() {
                            let mapped = {
                                let mut st = lock(&self.st);
                                let down = st
                                    .down_pending
                                    .iter()
                                    .find(|(_, p)| matches!(p, DownPending::Forward { up_id, epoch: g } if *up_id == req_id && *g == epoch))
                                    .map(|(k, _)| k.clone());
                                if let Some(k) = down {
                                    st.down_pending.remove(&k);
                                    serde_json::from_str::<Value>(&k).ok()
                                } else {
                                    match st.up_pending.get(&id_key(&req_id)) {
                                        Some(UpPending {
                                            wait: UpWait::Forward { client_id, .. },
                                            ..
                                        }) => Some(client_id.clone()),
                                        _ => None,
                                    }
                                }
                            };
                            if let Some(m) = mapped {
                                related = related.or_else(|| Some(m.clone()));
                                msg["params"]["requestId"] = m;
                            }
                        }
                    }
                    "notifications/tools/list_changed" => {
                        lock(&self.st).tools.fresh = false;
                    }
                    "notifications/progress" => self.progress_seen(&msg),
                    _ => {}
                }
                self.send_client_for(msg, related).await;
            }
        }
    }

    /// Changes the answers warden governs: the tools/list view, and
    /// `tools.listChanged` in the initialize result (warden sends
    /// list_changed when policies change).
    fn post_process(&self, msg: &mut Value, kind: &Fwd) {
        let Some(result) = msg.get_mut("result") else {
            return;
        };
        match kind {
            Fwd::Plain => {}
            Fwd::Initialize => {
                if let Some(name) = result
                    .pointer("/serverInfo/name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                {
                    let mut st = lock(&self.st);
                    if st.server_info_name.is_none() {
                        st.server_info_name = Some(name.to_string());
                    }
                }
                if let Some(tools) = result
                    .pointer_mut("/capabilities/tools")
                    .and_then(Value::as_object_mut)
                {
                    tools.insert("listChanged".into(), Value::Bool(true));
                }
            }
            Fwd::ToolsList {
                agent,
                complete,
                caller,
            } => {
                let has_next = result.get("nextCursor").is_some_and(|c| !c.is_null());
                let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
                    return;
                };
                let infos: Vec<(String, ToolInfo)> = tools
                    .iter()
                    .filter_map(|t| {
                        let name = t.get("name")?.as_str()?.to_string();
                        Some((name, ToolInfo::from_tool(t)))
                    })
                    .collect();
                {
                    let mut st = lock(&self.st);
                    let whole = *complete && !has_next;
                    if whole {
                        st.tools.tools.clear();
                        st.tools.fresh = true;
                    }
                    st.tools.tools.extend(infos.iter().cloned());
                }
                // No call to an unnamed server is decided (finding 3), so
                // none of its tools can be used.
                let Some(server) = self.known_server_name() else {
                    tracing::warn!(
                        "tools/list answered before the upstream named itself and without --name; every tool hidden"
                    );
                    tools.clear();
                    return;
                };
                let base = self.call_template(&server, agent.clone(), caller.as_deref());
                tools.retain_mut(|tool| {
                    let Some(name) = tool.get("name").and_then(Value::as_str) else {
                        return true;
                    };
                    let mut probe = base.clone();
                    probe.tool = name.to_string();
                    probe.annotations = ToolInfo::from_tool(tool).annotations;
                    match govern::tool_view(&self.engine, &probe) {
                        ToolView::Hidden { rule } => {
                            tracing::debug!(
                                "tool `{name}` hidden from the agent ({})",
                                rule.as_deref().unwrap_or("no rule allows it")
                            );
                            false
                        }
                        ToolView::Shown { notes } => {
                            govern::annotate_description(tool, &notes);
                            true
                        }
                    }
                });
            }
        }
    }

    // ---- governed tools/call -----------------------------------------------

    fn req_ctx(&self, msg: &Value) -> ReqCtx {
        let meta = jsonrpc::meta(msg);
        let stateless = meta
            .and_then(|m| m.get(PROTOCOL_VERSION_META))
            .and_then(Value::as_str)
            .is_some_and(|v| v >= STATELESS_PROTOCOL);
        if stateless {
            let meta = meta.cloned().unwrap_or_default();
            ReqCtx {
                stateless,
                agent: meta
                    .get(CLIENT_INFO_META)
                    .and_then(|i| i.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                elicitation_form: elicitation_supports_form(meta.get(CLIENT_CAPABILITIES_META)),
                mcp_meta: meta
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
                    .collect(),
            }
        } else {
            let st = lock(&self.st);
            ReqCtx {
                stateless,
                agent: st.session.agent.clone(),
                elicitation_form: st.session.elicitation_form,
                mcp_meta: Map::new(),
            }
        }
    }

    /// A call's context before the tool is known. `caller`: the identity a
    /// verified bearer token gave (HTTP); its attributes win over the
    /// operator's flags and the client's declared agent.
    fn call_template(
        &self,
        server: &str,
        agent: Option<String>,
        caller: Option<&Caller>,
    ) -> CallContext {
        let agent = Some(agent.unwrap_or_else(|| "unknown".to_string()));
        let identity = match caller {
            Some(c) => c.identity(&self.cfg.groups, self.cfg.model.as_deref(), agent),
            None => Identity {
                user: self.cfg.user.clone(),
                groups: self.cfg.groups.clone(),
                agent,
                model: self.cfg.model.clone(),
                ..Identity::default()
            },
        };
        CallContext {
            identity,
            session: self.session_id.clone(),
            provenance: Provenance {
                via_agent: true,
                via_server: Some(server.to_string()),
            },
            server: server.to_string(),
            tool: String::new(),
            annotations: Default::default(),
            arguments: json!({}),
            confirmed: Vec::new(),
        }
    }

    /// The tool's annotations, reading tools/list first if the tool was
    /// never listed or the list changed since.
    async fn tool_info(&self, name: &str, ctx: &ReqCtx) -> ToolInfo {
        {
            let st = lock(&self.st);
            if let Some(i) = st.tools.tools.get(name)
                && st.tools.fresh
            {
                return *i;
            }
            if st.tools.fresh {
                return ToolInfo::default();
            }
        }
        let _one_at_a_time = self.fetch_lock.lock().await;
        {
            let st = lock(&self.st);
            if st.tools.fresh {
                return st.tools.tools.get(name).copied().unwrap_or_default();
            }
        }
        if let Err(e) = self.fetch_tools(ctx).await {
            tracing::warn!("cannot read the upstream's tools/list for annotations: {e}");
        }
        lock(&self.st)
            .tools
            .tools
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    async fn fetch_tools(&self, ctx: &ReqCtx) -> Result<(), String> {
        let mut all = HashMap::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let mut params = Map::new();
            if let Some(c) = cursor.take() {
                params.insert("cursor".into(), c);
            }
            if !ctx.mcp_meta.is_empty() {
                params.insert("_meta".into(), Value::Object(ctx.mcp_meta.clone()));
            }
            let resp = self
                .own_request("tools/list", Value::Object(params), false)
                .await?;
            let Some(result) = resp.get("result") else {
                return Err(format!(
                    "tools/list failed: {}",
                    resp.get("error").cloned().unwrap_or(Value::Null)
                ));
            };
            for t in result
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = t.get("name").and_then(Value::as_str) {
                    all.insert(name.to_string(), ToolInfo::from_tool(t));
                }
            }
            match result.get("nextCursor") {
                Some(c @ Value::String(_)) => cursor = Some(c.clone()),
                _ => break,
            }
        }
        let mut st = lock(&self.st);
        st.tools.tools = all;
        st.tools.fresh = true;
        Ok(())
    }

    /// Writes a decision to the log. A failed write marks the log broken
    /// (calls are refused until a write succeeds again).
    /// With an upstream outcome, the line appended after the write-ahead
    /// decision line of a forwarded call.
    fn audit(&self, call: &CallContext, decided: &Decided, upstream: Option<&UpstreamOutcome>) {
        let result = match upstream {
            Some(outcome) => self.log.write_outcome(decided, outcome),
            None => self.log.write(call, decided, None),
        };
        let mut st = lock(&self.st);
        match result {
            Ok(()) => st.audit_broken = None,
            Err(e) => {
                tracing::error!("decision {} was not logged: {e}", decided.id);
                st.audit_broken = Some(e.to_string());
            }
        }
    }

    async fn governed_call(
        self: Arc<Self>,
        msg: Message,
        client_id: Value,
        cancel: CancellationToken,
        caller: Option<Arc<Caller>>,
    ) {
        let reply = self.govern(msg, &client_id, &cancel, caller).await;
        lock(&self.st).client_reqs.remove(&id_key(&client_id));
        if let Some(reply) = reply
            && !cancel.is_cancelled()
        {
            self.send_client(reply).await;
        }
    }

    /// Decides a tools/call and carries the decision out; the answer for
    /// the client, or `None` when the client cancelled the call.
    async fn govern(
        &self,
        mut msg: Message,
        client_id: &Value,
        cancel: &CancellationToken,
        caller: Option<Arc<Caller>>,
    ) -> Option<Message> {
        // Fail closed: with bearer auth on, a call without a verified
        // identity is never decided as the operator's user.
        if self.cfg.bearer.is_some() && caller.is_none() {
            return Some(
                jsonrpc::error(
                    client_id.clone(),
                    jsonrpc::INVALID_REQUEST,
                    "warden requires a verified bearer token for this call",
                    None,
                )
                .into(),
            );
        }
        let Some(params) = msg.get("params").and_then(Value::as_object) else {
            return Some(
                invalid_params(client_id, "tools/call needs params with a tool `name`").into(),
            );
        };
        let Some(tool) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Some(
                invalid_params(client_id, "tools/call needs a tool `name` (a string)").into(),
            );
        };
        // The server the call is for must be known before anything else
        // (finding 3): never a guess from the command's file name.
        let Some(server) = self.attributed_server(&msg).await else {
            return Some(self.unattributed(client_id).into());
        };
        let ctx = self.req_ctx(&msg);

        // A 2026-07-28 retry that answers warden's own confirmation.
        let mut confirmed_answer = None;
        if ctx.stateless
            && let Some(state) = params.get("requestState").and_then(Value::as_str)
            && state.starts_with(CONFIRM_STATE_PREFIX)
        {
            // Checked before it is taken: a retry for another call, another
            // caller or after expiry consumes nothing (finding 12).
            let owner = caller.as_ref().map(|c| c.user.clone());
            let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
            let pending = {
                let mut st = lock(&self.st);
                let matches = st.confirms.get(state).is_some_and(|p| {
                    p.expires > Instant::now()
                        && p.tool == tool
                        && p.owner == owner
                        && arguments == p.arguments
                });
                if matches {
                    st.confirms.remove(state)
                } else {
                    None
                }
            };
            let answer = params
                .get("inputResponses")
                .and_then(|r| r.get(CONFIRM_INPUT_KEY))
                .and_then(|r| r.get("action"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match pending {
                Some(p) => {
                    // Forward the call as first decided, with any state of
                    // the upstream's own it carried then.
                    let mut original = p.params;
                    if let (Some(o), Some(m)) = (original.as_object_mut(), params.get("_meta")) {
                        o.insert("_meta".into(), m.clone());
                    }
                    msg["params"] = original;
                    confirmed_answer = Some(answer.unwrap_or_else(|| "missing".to_string()));
                }
                _ => {
                    return Some(jsonrpc::error(
                        client_id.clone(),
                        jsonrpc::INVALID_PARAMS,
                        "warden does not know this confirmation (it expired, was answered, or is for another call); call the tool again",
                        None,
                    ).into());
                }
            }
        }

        let info = self.tool_info(&tool, &ctx).await;
        let mut call = self.call_template(&server, ctx.agent.clone(), caller.as_deref());
        call.tool = tool.clone();
        call.annotations = info.annotations;
        call.arguments = msg
            .pointer("/params/arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));

        let guard = self.decide_lock.lock().await;
        let decided = self.engine.decide(&call);
        let confirmation = match &decided.outcome {
            Outcome::Allow { .. } => {
                return self
                    .forward(guard, msg, client_id, &call, &decided, cancel)
                    .await;
            }
            Outcome::Deny(d) => {
                drop(guard);
                self.audit(&call, &decided, None);
                return Some(self.deny_reply(client_id, &decided, d, info).into());
            }
            Outcome::Confirm(c) => c.clone(),
        };
        drop(guard);
        let rule_ids: Vec<String> = confirmation.rules.iter().map(|h| h.rule.clone()).collect();
        let rules_text = rule_ids
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ");

        let answer = if let Some(a) = confirmed_answer {
            match a.as_str() {
                "accept" => Answer::Accept,
                "decline" => Answer::Decline,
                "cancel" => Answer::Cancel,
                other => Answer::Failed(format!("the client answered `{other}`")),
            }
        } else if !ctx.elicitation_form {
            let denial = Denial {
                rules: confirmation.rules.clone(),
                reason: format!(
                    "`{tool}` was not called: it requires the person's confirmation (rule {rules_text}: {}), and this MCP client cannot ask for it (it did not declare the elicitation capability)",
                    confirmation.message
                ),
                retry: Retry::Never,
                instead: "ask the person to make this call themselves, or to use an MCP client that supports elicitation so warden can ask them".to_string(),
            };
            return Some(self.refuse(client_id, &call, &decided, denial, info).into());
        } else if ctx.stateless {
            return Some(
                self.ask_stateless(
                    client_id,
                    &call,
                    &decided,
                    &confirmation.message,
                    &msg,
                    caller.as_ref().map(|c| c.user.clone()),
                )
                .into(),
            );
        } else {
            let question = govern::confirm_message(&call, &confirmation.message, &decided.id);
            self.ask_person(question, client_id, cancel).await
        };

        let (reason, instead) = match answer {
            Answer::Accept => {
                call.confirmed = rule_ids;
                let guard = self.decide_lock.lock().await;
                let decided = self.engine.decide(&call);
                return match &decided.outcome {
                    Outcome::Allow { .. } => {
                        self.forward(guard, msg, client_id, &call, &decided, cancel).await
                    }
                    Outcome::Deny(d) => {
                        drop(guard);
                        self.audit(&call, &decided, None);
                        Some(self.deny_reply(client_id, &decided, d, info).into())
                    }
                    Outcome::Confirm(c) => {
                        drop(guard);
                        let denial = Denial {
                            rules: c.rules.clone(),
                            reason: format!(
                                "`{tool}` was not called: it still needs a confirmation after the person gave one ({})",
                                c.message
                            ),
                            retry: Retry::Never,
                            instead: "report this to the platform team; the policies ask for a confirmation warden cannot record".to_string(),
                        };
                        Some(self.refuse(client_id, &call, &decided, denial, info).into())
                    }
                };
            }
            Answer::Decline => (
                format!("the person declined the confirmation (rule {rules_text}: {})", confirmation.message),
                "do not retry; ask the person what they want instead".to_string(),
            ),
            Answer::Cancel => (
                format!("the person dismissed the confirmation (rule {rules_text}: {})", confirmation.message),
                "do not retry unless the person asks you to".to_string(),
            ),
            Answer::TimedOut => (
                format!(
                    "the person did not answer the confirmation within {} s (rule {rules_text}: {})",
                    self.cfg.confirm_timeout.as_secs(),
                    confirmation.message
                ),
                "ask the person in the conversation whether to go ahead, then call again so they can confirm".to_string(),
            ),
            Answer::Failed(why) => (
                format!("the confirmation could not be asked ({why}; rule {rules_text}: {})", confirmation.message),
                "ask the person to make this call themselves".to_string(),
            ),
            Answer::CallCancelled => {
                let denial = Denial {
                    rules: confirmation.rules.clone(),
                    reason: format!("`{tool}` was not called: the client cancelled the call while the person was asked"),
                    retry: Retry::Never,
                    instead: String::new(),
                };
                let d = govern::as_denial(&decided, denial);
                self.audit(&call, &d, None);
                return None;
            }
        };
        let denial = Denial {
            rules: confirmation.rules.clone(),
            reason: format!("`{tool}` was not called: {reason}"),
            retry: Retry::Never,
            instead,
        };
        Some(self.refuse(client_id, &call, &decided, denial, info).into())
    }

    /// Logs and answers a denial the proxy made of a decision.
    /// Refuses a call for a reason of warden's own (not a rule's): the
    /// same call would be refused again until an operator acts.
    fn refuse_by_warden(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        reason: String,
        instead: &str,
    ) -> Message {
        let denial = Denial {
            rules: Vec::new(),
            reason,
            retry: Retry::Never,
            instead: instead.to_string(),
        };
        let info = lock(&self.st)
            .tools
            .tools
            .get(&call.tool)
            .copied()
            .unwrap_or_default();
        self.refuse(client_id, call, decided, denial, info).into()
    }

    /// Refuses a call because its decision cannot be logged (`why`).
    fn refuse_unlogged(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        why: &str,
    ) -> Message {
        let reason = format!(
            "`{}` was not called: warden cannot write its decision log ({why}) and does not forward calls it cannot record",
            call.tool
        );
        let instead =
            "tell the person; an operator must fix the decision log before agents can call tools";
        self.refuse_by_warden(client_id, call, decided, reason, instead)
    }

    fn refuse(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        denial: Denial,
        info: ToolInfo,
    ) -> Value {
        let d = govern::as_denial(decided, denial.clone());
        self.audit(call, &d, None);
        self.deny_reply(client_id, &d, &denial, info)
    }

    fn deny_reply(
        &self,
        client_id: &Value,
        decided: &Decided,
        denial: &Denial,
        info: ToolInfo,
    ) -> Value {
        jsonrpc::result(
            client_id.clone(),
            govern::denial_result(decided, denial, info),
        )
    }

    /// Asks the person through the client (elicitation/create).
    async fn ask_person(
        &self,
        question: String,
        client_id: &Value,
        cancel: &CancellationToken,
    ) -> Answer {
        let id = self.own_id();
        let key = id_key(&id);
        let (tx, rx) = oneshot::channel();
        lock(&self.st)
            .down_pending
            .insert(key.clone(), DownPending::Own(tx));
        self.send_client_for(
            jsonrpc::request(
                id.clone(),
                "elicitation/create",
                govern::confirm_elicitation_params(question),
            ),
            Some(client_id.clone()),
        )
        .await;
        let (answer, withdraw) = tokio::select! {
            r = rx => match r {
                Ok(resp) => (read_elicit_answer(&resp), None),
                Err(_) => (Answer::Failed("the client went away".into()), None),
            },
            () = tokio::time::sleep(self.cfg.confirm_timeout) => (Answer::TimedOut, Some("warden: the confirmation timed out")),
            () = cancel.cancelled() => (Answer::CallCancelled, Some("warden: the tool call was cancelled")),
        };
        if let Some(reason) = withdraw {
            lock(&self.st).down_pending.remove(&key);
            self.send_client_for(
                jsonrpc::notification(
                    "notifications/cancelled",
                    Some(json!({"requestId": id, "reason": reason})),
                ),
                Some(client_id.clone()),
            )
            .await;
        }
        answer
    }

    /// 2026-07-28: answers with `input_required`, carrying warden's
    /// confirmation as an elicitation the client fulfils before retrying.
    fn ask_stateless(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        message: &str,
        msg: &Value,
        owner: Option<String>,
    ) -> Value {
        self.audit(call, decided, None);
        // Random, not a counter: the handle is what the asker holds, and no
        // other caller may name it.
        let handle = format!("{CONFIRM_STATE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut params = msg.get("params").cloned().unwrap_or(json!({}));
        if let Some(p) = params.as_object_mut() {
            p.remove("_meta");
        }
        {
            let mut st = lock(&self.st);
            let now = Instant::now();
            st.confirms.retain(|_, p| p.expires > now);
            if st.confirms.len() >= MAX_PENDING_CONFIRMS
                && let Some(k) = st.confirms.keys().next().cloned()
            {
                st.confirms.remove(&k);
            }
            st.confirms.insert(
                handle.clone(),
                PendingConfirm {
                    tool: call.tool.clone(),
                    arguments: call.arguments.clone(),
                    params,
                    expires: now + MRTR_CONFIRM_TTL,
                    owner,
                },
            );
        }
        let question = govern::confirm_message(call, message, &decided.id);
        jsonrpc::result(
            client_id.clone(),
            json!({
                "resultType": "input_required",
                "inputRequests": {
                    CONFIRM_INPUT_KEY: {
                        "method": "elicitation/create",
                        "params": govern::confirm_elicitation_params(question),
                    }
                },
                "requestState": handle,
            }),
        )
    }

    /// Forwards an allowed call with its provenance, counts it, waits for
    /// the upstream's answer and logs the outcome.
    async fn forward(
        &self,
        guard: tokio::sync::MutexGuard<'_, ()>,
        mut msg: Message,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        cancel: &CancellationToken,
    ) -> Option<Message> {
        let broken = lock(&self.st).audit_broken.clone();
        if let Some(why) = broken {
            drop(guard);
            return Some(self.refuse_unlogged(client_id, call, decided, &why));
        }
        let token = match &self.cfg.provenance_signer {
            None => None,
            Some(signer) => {
                let args = msg.get("params").and_then(|p| p.get("arguments"));
                match signer.sign_call(call, decided, args) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        // Fail closed: a call that should carry signed
                        // provenance is not forwarded without it.
                        drop(guard);
                        let reason = format!(
                            "`{}` was not called: warden could not sign its provenance ({e})",
                            call.tool
                        );
                        let instead =
                            "tell the person; an operator must fix warden's --signing-key";
                        return Some(
                            self.refuse_by_warden(client_id, call, decided, reason, instead),
                        );
                    }
                }
            }
        };
        if let Some(meta) = jsonrpc::meta_mut(&mut msg) {
            meta.insert(PROVENANCE_KEY.into(), govern::provenance(call, decided));
            if let Some(token) = token {
                meta.insert(TOKEN_META_KEY.into(), Value::String(token));
            }
        }
        // Write-ahead: the decision is in the log before the call can go
        // upstream; a log that cannot take it refuses the call.
        if let Err(e) = self.log.write_decision(call, decided) {
            drop(guard);
            tracing::error!("decision {} was not logged: {e}", decided.id);
            lock(&self.st).audit_broken = Some(e.to_string());
            return Some(self.refuse_unlogged(client_id, call, decided, &e.to_string()));
        }
        let up_id = self.upstream_id(client_id);
        let up_key = id_key(&up_id);
        msg["id"] = up_id.clone();
        let (tx, rx) = oneshot::channel();
        let started = Instant::now();
        let sender = {
            let mut st = lock(&self.st);
            match Self::up_sender(&st, false) {
                Some((sender, epoch)) if !st.up_pending.contains_key(&up_key) => {
                    st.up_pending.insert(
                        up_key.clone(),
                        UpPending {
                            deadline: self.call_deadline("tools/call"),
                            progress: progress_token(&msg),
                            ..UpPending::new(epoch, UpWait::Own(tx), Some(client_id.clone()))
                        },
                    );
                    Ok(sender)
                }
                Some(_) => Err(duplicate_id(client_id.clone())),
                None => Err(self.unavailable(client_id.clone(), &st)),
            }
        };
        let sender = match sender {
            Ok(s) => s,
            Err(reply) => {
                drop(guard);
                let error = reply
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("not forwarded")
                    .to_string();
                self.audit(
                    call,
                    decided,
                    Some(&UpstreamOutcome {
                        ok: false,
                        error: Some(error),
                        duration_ms: 0,
                    }),
                );
                return Some(reply.into());
            }
        };
        if sender.send(msg.to_string()).await.is_err() {
            let reply = {
                let mut st = lock(&self.st);
                st.up_pending.remove(&up_key);
                self.unavailable(client_id.clone(), &st)
            };
            drop(guard);
            self.audit(
                call,
                decided,
                Some(&UpstreamOutcome {
                    ok: false,
                    error: Some("the upstream server is not available".into()),
                    duration_ms: 0,
                }),
            );
            return Some(reply.into());
        }
        self.engine.record_forwarded(call, decided);
        drop(guard);

        let mut rx = rx;
        let mut at = self.call_deadline("tools/call");
        let answer = loop {
            let timeout = async {
                match at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut rx => break Waited::Answer(r),
                () = cancel.cancelled() => break Waited::Cancelled,
                () = timeout => {
                    // Progress may have moved the deadline; an answer may
                    // have come just now (then `rx` has it).
                    let mut st = lock(&self.st);
                    match st.up_pending.get(&up_key).map(|p| p.deadline) {
                        Some(Some(next)) if next > Instant::now() => at = Some(next),
                        Some(_) => {
                            st.up_pending.remove(&up_key);
                            drop(st);
                            break Waited::TimedOut;
                        }
                        None => at = None,
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let answer = match answer {
            Waited::Answer(a) => Some(a),
            Waited::Cancelled => None,
            Waited::TimedOut => {
                tracing::warn!(
                    "upstream did not answer `{}` call {client_id} in time; cancelled",
                    call.tool
                );
                self.cancel_up(up_id).await;
                self.audit(
                    call,
                    decided,
                    Some(&UpstreamOutcome {
                        ok: false,
                        error: Some(format!(
                            "timed out: no answer within {} s",
                            secs(self.cfg.call_timeout)
                        )),
                        duration_ms,
                    }),
                );
                return Some(self.timeout_error(client_id.clone()).into());
            }
        };
        let Some(answer) = answer else {
            lock(&self.st).up_pending.remove(&up_key);
            self.notify_up(jsonrpc::notification(
                "notifications/cancelled",
                Some(json!({"requestId": up_id, "reason": "the client cancelled the call"})),
            ))
            .await;
            self.audit(
                call,
                decided,
                Some(&UpstreamOutcome {
                    ok: false,
                    error: Some("cancelled by the client".into()),
                    duration_ms,
                }),
            );
            return None;
        };
        let (reply, outcome) = match answer {
            Ok(Ok(mut resp)) => {
                let mut outcome = outcome_of(&resp, duration_ms);
                if outcome.ok
                    && let Some(result) = resp.get("result")
                {
                    // Before the reply goes out, so that the agent's next
                    // call already finds the record it created.
                    if let Err(e) = self.engine.record_created(call, decided, result) {
                        tracing::warn!("`{}`: {e}", call.tool);
                        // The call succeeded; the log line says what was not kept.
                        outcome.error = Some(format!("the created record was not stored: {e}"));
                    }
                }
                resp["id"] = client_id.clone();
                (resp, outcome)
            }
            Ok(Err(why)) => (
                jsonrpc::error(
                    client_id.clone(),
                    jsonrpc::UPSTREAM_UNAVAILABLE,
                    why.clone(),
                    None,
                )
                .into(),
                UpstreamOutcome {
                    ok: false,
                    error: Some(why),
                    duration_ms,
                },
            ),
            Err(_) => {
                let why = "the upstream connection closed before the answer".to_string();
                (
                    jsonrpc::error(
                        client_id.clone(),
                        jsonrpc::UPSTREAM_UNAVAILABLE,
                        why.clone(),
                        None,
                    )
                    .into(),
                    UpstreamOutcome {
                        ok: false,
                        error: Some(why),
                        duration_ms,
                    },
                )
            }
        };
        self.audit(call, decided, Some(&outcome));
        Some(reply)
    }
}

const CONFIRM_STATE_PREFIX: &str = "warden-confirm:";

mod intake;
use intake::disguised_method;

/// How a forwarded call's wait for the upstream ended.
enum Waited {
    /// The answer, or why the link says there will be none.
    Answer(Result<Result<Message, String>, oneshot::error::RecvError>),
    Cancelled,
    TimedOut,
}

/// The person's answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accept,
    Decline,
    Cancel,
    TimedOut,
    Failed(String),
    CallCancelled,
}

fn read_elicit_answer(resp: &Value) -> Answer {
    if let Some(e) = resp.get("error") {
        let m = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("an error");
        return Answer::Failed(format!(
            "the client answered with an error: {}",
            clip(m, 200)
        ));
    }
    match resp.pointer("/result/action").and_then(Value::as_str) {
        Some("accept") => Answer::Accept,
        Some("decline") => Answer::Decline,
        Some("cancel") => Answer::Cancel,
        Some(other) => Answer::Failed(format!("the client answered `{}`", clip(other, 50))),
        None => Answer::Failed("the client's answer has no action".into()),
    }
}

/// How a forwarded call went, from the upstream's response.
fn outcome_of(resp: &Value, duration_ms: u64) -> UpstreamOutcome {
    if let Some(e) = resp.get("error") {
        let m = e.get("message").and_then(Value::as_str).unwrap_or("error");
        return UpstreamOutcome {
            ok: false,
            error: Some(format!(
                "JSON-RPC error {}: {}",
                e.get("code").unwrap_or(&Value::Null),
                clip(m, 300)
            )),
            duration_ms,
        };
    }
    if resp.pointer("/result/isError") == Some(&Value::Bool(true)) {
        let text = resp
            .pointer("/result/content")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find_map(|b| b.get("text").and_then(Value::as_str)))
            .unwrap_or("");
        return UpstreamOutcome {
            ok: false,
            error: Some(format!("the tool reported an error: {}", clip(text, 300))),
            duration_ms,
        };
    }
    UpstreamOutcome {
        ok: true,
        error: None,
        duration_ms,
    }
}

/// The request's `progressToken` as an [`id_key`].
fn progress_token(msg: &Value) -> Option<String> {
    msg.pointer("/params/_meta/progressToken").map(id_key)
}

/// Waits out a relayed request's call timeout (moved on by progress), then
/// answers it with the timeout error. Aborted when the request is answered.
async fn relayed_timer(relay: std::sync::Weak<Relay>, key: String, seq: u64, mut at: Instant) {
    loop {
        tokio::time::sleep_until(at.into()).await;
        let Some(relay) = relay.upgrade() else {
            return;
        };
        match relay.expire(&key, seq) {
            Expiry::Gone => return,
            Expiry::Later(next) => at = next,
            Expiry::Expired(client_id) => {
                relay.relayed_timed_out(&key, client_id).await;
                return;
            }
        }
    }
}

fn duplicate_id(id: Value) -> Value {
    jsonrpc::error(
        id,
        jsonrpc::INVALID_REQUEST,
        "invalid request: a request with this id is still in flight",
        None,
    )
}

fn invalid_params(id: &Value, message: &str) -> Value {
    jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, message, None)
}
