//! One upstream process for every session of a server (`instances =
//! "shared"` in `warden serve`'s config): a stdio MCP server started once,
//! initialized once by warden, and multiplexed between the relays of all
//! the sessions (and federated sessions) that reach it.
//!
//! Each session keeps its own [`Relay`] (its governance, its pending
//! requests, its replay data); what the relay would write to a child of
//! its own goes through [`SharedInstance`], which keeps the sessions apart
//! on the one process:
//!
//! - **Ids.** Every request a session sends gets an id of the instance's
//!   own (`s<session>-<n>`), and a `progressToken` one too; the answer and
//!   the progress go back to that session only, with its own id and token.
//!   A session's `notifications/cancelled` is translated the same way; one
//!   for a request it never sent goes nowhere.
//! - **One session with the server.** warden initializes the process itself
//!   (and again after a restart); a session's `initialize` is answered with
//!   that result, and its `notifications/initialized` is not passed on.
//! - **Subscriptions** are counted: `resources/updated` goes to the
//!   sessions subscribed to that URI, and the process is unsubscribed when
//!   the last of them is.
//! - **Requests from the server to a client** (sampling, elicitation,
//!   roots) cannot be routed: nothing in stdio says which session one is
//!   for, so warden answers them with an error (`ping` it answers itself).
//!   `list_changed` goes to every session; other notifications (log
//!   messages above all) name no session and could show one caller's work
//!   to another, so they are not passed on.
//! - **Restarts.** When the process exits, every session's requests in
//!   flight fail (the relay's own `link_down`), it is restarted with the
//!   relay's backoff, initialized again, and each session's relay replays
//!   its session onto it as after any restart.

use crate::config::{ProxyConfig, UpstreamCommand};
use crate::endpoint::{BoxFuture, EndpointFactory, OpenedEndpoint};
use crate::framing::{Frame, LineReader, write_lines};
use crate::jsonrpc::{self, Kind, id_key};
use crate::raw;
use crate::relay::{ClientOut, Relay};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

/// The protocol version warden initializes a shared process with.
const SHARED_PROTOCOL: &str = "2025-11-25";
/// A process that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One shared upstream process and the sessions using it.
pub(crate) struct SharedInstance {
    cmd: UpstreamCommand,
    name: String,
    restart_initial: Duration,
    restart_max: Duration,
    internal_timeout: Duration,
    max_message_bytes: usize,
    stop: CancellationToken,
    st: Mutex<State>,
}

/// A session's request in flight on the process.
struct InFlight {
    session: u64,
    id: Value,
    /// The instance's progress token for it, if it had one.
    token: Option<String>,
}

#[derive(Default)]
struct State {
    /// The process, when it is up and initialized.
    up: Option<Up>,
    /// Why it is not, and when it is tried again.
    down: Option<(String, Instant)>,
    epoch: u64,
    sessions: HashMap<u64, Weak<Relay>>,
    next_session: u64,
    next_id: u64,
    in_flight: HashMap<String, InFlight>,
    /// warden's own requests to the process (its initialize).
    own: HashMap<String, oneshot::Sender<Value>>,
    /// progress token of the instance → (session, the session's token).
    progress: HashMap<String, (u64, Value)>,
    subscriptions: HashMap<String, HashSet<u64>>,
}

#[derive(Clone)]
struct Up {
    epoch: u64,
    tx: mpsc::Sender<String>,
    /// The process's initialize result, which every session's initialize
    /// is answered with.
    init: Value,
}

impl SharedInstance {
    /// Starts the process under a supervisor (restarts with backoff until
    /// [`SharedInstance::stop`]); sessions attach as they open.
    pub(crate) fn start(cfg: &ProxyConfig, cmd: UpstreamCommand) -> Arc<Self> {
        let me = Arc::new(SharedInstance {
            cmd,
            name: cfg.server_name.clone().unwrap_or_default(),
            restart_initial: cfg.restart_initial,
            restart_max: cfg.restart_max,
            internal_timeout: cfg.internal_timeout,
            max_message_bytes: cfg.max_message_bytes,
            stop: CancellationToken::new(),
            st: Mutex::new(State::default()),
        });
        tokio::spawn(Arc::clone(&me).supervise());
        me
    }

    /// Stops the process for good (the server was removed, or warden stops).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    async fn supervise(self: Arc<Self>) {
        let mut delay = self.restart_initial;
        loop {
            let epoch = {
                let mut st = lock(&self.st);
                st.epoch += 1;
                st.epoch
            };
            let started = Instant::now();
            let reason = match crate::upstream::spawn(&self.cmd) {
                Ok(child) => self.run(child, epoch).await,
                Err(e) => format!("could not be started ({e})"),
            };
            if self.stop.is_cancelled() {
                self.went_down(epoch, "was stopped".into(), Duration::ZERO)
                    .await;
                return;
            }
            if started.elapsed() >= STABLE_AFTER {
                delay = self.restart_initial;
            }
            tracing::warn!(
                "shared upstream `{}` {reason}; restarting in {} ms",
                self.name,
                delay.as_millis()
            );
            self.went_down(epoch, reason, delay).await;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return,
            }
            delay = (delay * 2).min(self.restart_max);
        }
    }

    /// Runs one process until it exits or the instance stops.
    async fn run(self: &Arc<Self>, mut child: tokio::process::Child, epoch: u64) -> String {
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill().await;
            return "had no stdio pipes".into();
        };
        let (tx, rx) = mpsc::channel::<String>(256);
        tokio::spawn(async move {
            if let Err(e) = write_lines(stdin, rx).await {
                tracing::debug!("writing to the shared upstream failed: {e}");
            }
        });
        let me = Arc::clone(self);
        let max = self.max_message_bytes;
        let reader = tokio::spawn(async move {
            let mut lines = LineReader::new(BufReader::new(stdout), max);
            while let Ok(Some(frame)) = lines.next().await {
                if let Frame::Line(bytes) = frame {
                    me.on_process_line(epoch, bytes).await;
                }
            }
        });
        let initialized = {
            let me = Arc::clone(self);
            let tx = tx.clone();
            async move { me.initialize(epoch, tx).await }
        };
        tokio::select! {
            r = initialized => match r {
                Ok(init) => self.came_up(Up { epoch, tx, init }),
                Err(e) => {
                    let _ = child.kill().await;
                    reader.abort();
                    return format!("could not be initialized ({e})");
                }
            },
            status = child.wait() => {
                reader.abort();
                return format!("exited before it was initialized ({})", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
            }
            () = self.stop.cancelled() => {
                let _ = child.kill().await;
                reader.abort();
                return "was stopped".into();
            }
        }
        let reason = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => format!("exited ({s})"),
                Err(e) => format!("could not be waited for ({e})"),
            },
            () = self.stop.cancelled() => {
                let _ = child.kill().await;
                "was stopped".into()
            }
        };
        // What the process wrote before exiting still reaches its sessions.
        let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
        reason
    }

    /// warden's own initialize of the process, then `initialized`.
    async fn initialize(&self, epoch: u64, tx: mpsc::Sender<String>) -> Result<Value, String> {
        let id = Value::String(format!("warden-shared-init-{epoch}"));
        let (answer_tx, answer) = oneshot::channel();
        lock(&self.st).own.insert(id_key(&id), answer_tx);
        let params = json!({
            "protocolVersion": SHARED_PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "warden", "version": env!("CARGO_PKG_VERSION")},
        });
        tx.send(jsonrpc::request(id, "initialize", params).to_string())
            .await
            .map_err(|_| "its input closed".to_string())?;
        let resp = tokio::time::timeout(self.internal_timeout, answer)
            .await
            .map_err(|_| {
                format!(
                    "no answer to initialize within {} s",
                    self.internal_timeout.as_secs()
                )
            })?
            .map_err(|_| "it went away".to_string())?;
        if let Some(e) = resp.get("error") {
            return Err(format!("it refused initialize: {e}"));
        }
        let init = resp.get("result").cloned().unwrap_or(Value::Null);
        let _ = tx
            .send(jsonrpc::notification("notifications/initialized", None).to_string())
            .await;
        Ok(init)
    }

    /// The process is up: every session gets its link to it (and replays
    /// its session when it had one).
    fn came_up(self: &Arc<Self>, up: Up) {
        let sessions: Vec<(u64, Arc<Relay>)> = {
            let mut st = lock(&self.st);
            st.up = Some(up.clone());
            st.down = None;
            st.sessions
                .iter()
                .filter_map(|(n, w)| w.upgrade().map(|r| (*n, r)))
                .collect()
        };
        if up.epoch > 1 {
            tracing::info!("shared upstream `{}` restarted", self.name);
        }
        for (session, relay) in sessions {
            self.link(session, &relay, &up);
        }
    }

    /// Gives `relay` its link onto the process of `up`.
    fn link(self: &Arc<Self>, session: u64, relay: &Arc<Relay>, up: &Up) {
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let recovering = up.epoch > 1 && relay.needs_replay();
        relay.link_started(up.epoch, tx, recovering);
        if recovering {
            let r = Arc::clone(relay);
            let epoch = up.epoch;
            tokio::spawn(async move {
                if let Err(e) = r.replay_session(epoch).await {
                    tracing::warn!("cannot restore a session on the shared upstream: {e}");
                }
            });
        }
        let me = Arc::clone(self);
        let epoch = up.epoch;
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                me.on_session_line(session, epoch, line).await;
            }
        });
    }

    /// The process of `epoch` is gone: each session's relay fails what it
    /// had in flight and answers new requests with an error until it is back.
    async fn went_down(&self, epoch: u64, reason: String, retry_in: Duration) {
        let sessions: Vec<Arc<Relay>> = {
            let mut st = lock(&self.st);
            st.up = None;
            st.down = Some((reason.clone(), Instant::now() + retry_in));
            st.in_flight.clear();
            st.progress.clear();
            st.own.clear();
            st.sessions.values().filter_map(Weak::upgrade).collect()
        };
        for relay in sessions {
            relay.link_down(epoch, reason.clone(), retry_in).await;
        }
    }

    /// A new session's relay: linked at once if the process is up.
    async fn attach(self: &Arc<Self>, relay: &Arc<Relay>) -> u64 {
        let (session, up, down) = {
            let mut st = lock(&self.st);
            st.next_session += 1;
            let n = st.next_session;
            st.sessions.insert(n, Arc::downgrade(relay));
            (n, st.up.clone(), st.down.clone())
        };
        match (up, down) {
            (Some(up), _) => self.link(session, relay, &up),
            (None, Some((reason, at))) => {
                let epoch = lock(&self.st).epoch;
                let left = at.saturating_duration_since(Instant::now());
                relay.link_down(epoch, reason, left).await;
            }
            // Still starting: `came_up` links it.
            (None, None) => {}
        }
        session
    }

    /// A session ended: its entries go, and subscriptions only it held are
    /// ended on the process.
    async fn detach(&self, session: u64) {
        let (unsubscribe, tx) = {
            let mut st = lock(&self.st);
            st.sessions.remove(&session);
            st.in_flight.retain(|_, f| f.session != session);
            st.progress.retain(|_, (s, _)| *s != session);
            let mut gone = Vec::new();
            st.subscriptions.retain(|uri, subs| {
                subs.remove(&session);
                if subs.is_empty() {
                    gone.push(uri.clone());
                }
                !subs.is_empty()
            });
            (gone, st.up.as_ref().map(|u| u.tx.clone()))
        };
        if let Some(tx) = tx {
            for uri in unsubscribe {
                // Its answer finds no entry and is dropped.
                let id = self.next_own_id();
                let _ = tx
                    .send(
                        jsonrpc::request(id, "resources/unsubscribe", json!({"uri": uri}))
                            .to_string(),
                    )
                    .await;
            }
        }
    }

    fn next_own_id(&self) -> Value {
        let mut st = lock(&self.st);
        st.next_id += 1;
        Value::String(format!("warden-shared-{}", st.next_id))
    }

    fn relay_of(&self, session: u64) -> Option<Arc<Relay>> {
        lock(&self.st)
            .sessions
            .get(&session)
            .and_then(Weak::upgrade)
    }

    /// Answers a session's relay as the process would.
    async fn answer(&self, session: u64, epoch: u64, msg: Value) {
        if let Some(relay) = self.relay_of(session) {
            relay
                .on_upstream_frame(epoch, Frame::Line(msg.to_string().into_bytes()))
                .await;
        }
    }

    /// One line a session's relay sends the process.
    async fn on_session_line(&self, session: u64, epoch: u64, line: String) {
        let tx = match &lock(&self.st).up {
            Some(up) if up.epoch == epoch => up.tx.clone(),
            _ => return, // for a process that is gone; the relay knows
        };
        let Ok(mut msg) = serde_json::from_str::<Value>(&line) else {
            if let Some(id) = raw::envelope(&line).and_then(|e| e.id()) {
                let err = jsonrpc::error(
                    id,
                    jsonrpc::INVALID_REQUEST,
                    "warden cannot pass a message it cannot decode to a shared upstream",
                    None,
                );
                self.answer(session, epoch, err).await;
            }
            return;
        };
        match jsonrpc::classify(&msg) {
            Ok(Kind::Request { id, method }) => {
                if method == "initialize" {
                    let init = lock(&self.st).up.as_ref().map(|u| u.init.clone());
                    let reply = jsonrpc::result(id, init.unwrap_or(Value::Null));
                    return self.answer(session, epoch, reply).await;
                }
                let uri = msg
                    .pointer("/params/uri")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if method == "resources/unsubscribe"
                    && let Some(uri) = &uri
                {
                    let others = {
                        let mut st = lock(&self.st);
                        match st.subscriptions.get_mut(uri) {
                            Some(subs) => {
                                subs.remove(&session);
                                let others = !subs.is_empty();
                                if !others {
                                    st.subscriptions.remove(uri);
                                }
                                others
                            }
                            None => false,
                        }
                    };
                    if others {
                        return self
                            .answer(session, epoch, jsonrpc::result(id, json!({})))
                            .await;
                    }
                }
                let (shared, token) = {
                    let mut st = lock(&self.st);
                    st.next_id += 1;
                    let n = st.next_id;
                    let shared = Value::String(format!("s{session}-{n}"));
                    let token = msg
                        .pointer("/params/_meta/progressToken")
                        .cloned()
                        .map(|t| {
                            let mine = format!("p{session}-{n}");
                            st.progress
                                .insert(id_key(&Value::String(mine.clone())), (session, t));
                            mine
                        });
                    if method == "resources/subscribe"
                        && let Some(uri) = &uri
                    {
                        st.subscriptions
                            .entry(uri.clone())
                            .or_default()
                            .insert(session);
                    }
                    st.in_flight.insert(
                        id_key(&shared),
                        InFlight {
                            session,
                            id,
                            token: token.clone(),
                        },
                    );
                    (shared, token)
                };
                msg["id"] = shared;
                if let Some(t) = token {
                    msg["params"]["_meta"]["progressToken"] = Value::String(t);
                }
                let _ = tx.send(raw::rewrite(&line, &msg)).await;
            }
            Ok(Kind::Notification { method }) => match method.as_str() {
                "notifications/cancelled" => {
                    let Some(req) = msg.pointer("/params/requestId").cloned() else {
                        return;
                    };
                    let shared = lock(&self.st)
                        .in_flight
                        .iter()
                        .find(|(_, f)| f.session == session && f.id == req)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = shared
                        && let Ok(shared) = serde_json::from_str::<Value>(&k)
                    {
                        msg["params"]["requestId"] = shared;
                        let _ = tx.send(raw::rewrite(&line, &msg)).await;
                    }
                }
                // warden initialized the process itself; other client
                // notifications (roots, progress) concern requests a shared
                // process never sends a client.
                _ => tracing::debug!("`{method}` from a session not passed to the shared upstream"),
            },
            // Answers to requests of the process: never routed to a session.
            Ok(Kind::Response { .. }) | Err(_) => {}
        }
    }

    /// One line from the process.
    async fn on_process_line(self: &Arc<Self>, epoch: u64, bytes: Vec<u8>) {
        let Ok(text) = String::from_utf8(bytes) else {
            return;
        };
        let Ok(mut msg) = serde_json::from_str::<Value>(&text) else {
            // An answer serde_json will not decode still reaches its session.
            if let Some(env) = raw::envelope(&text)
                && env.is_response()
                && let Some(id) = env.id()
            {
                let f = lock(&self.st).in_flight.remove(&id_key(&id));
                if let Some(f) = f
                    && let Some(relay) = self.relay_of(f.session)
                {
                    relay
                        .on_upstream_frame(epoch, Frame::Line(env.with_id(&f.id).into_bytes()))
                        .await;
                }
            }
            return;
        };
        match jsonrpc::classify(&msg) {
            Ok(Kind::Response { id }) => {
                let key = id_key(&id);
                let own = lock(&self.st).own.remove(&key);
                if let Some(own) = own {
                    let _ = own.send(msg);
                    return;
                }
                let f = lock(&self.st).in_flight.remove(&key);
                let Some(f) = f else {
                    tracing::debug!("shared upstream answered unknown request {id}; dropped");
                    return;
                };
                if let Some(t) = &f.token {
                    lock(&self.st)
                        .progress
                        .remove(&id_key(&Value::String(t.clone())));
                }
                msg["id"] = f.id;
                if let Some(relay) = self.relay_of(f.session) {
                    relay
                        .on_upstream_frame(
                            epoch,
                            Frame::Line(raw::rewrite(&text, &msg).into_bytes()),
                        )
                        .await;
                }
            }
            Ok(Kind::Request { id, method }) => {
                let reply = if method == "ping" {
                    jsonrpc::result(id, json!({}))
                } else {
                    jsonrpc::error(
                        id,
                        jsonrpc::METHOD_NOT_FOUND,
                        format!(
                            "warden runs `{}` as one process shared by many sessions (instances = \"shared\"), so its `{method}` requests cannot be routed to a client; run it with instances = \"per-session\" to use them",
                            self.name
                        ),
                        None,
                    )
                };
                let tx = lock(&self.st).up.as_ref().map(|u| u.tx.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(reply.to_string()).await;
                }
            }
            Ok(Kind::Notification { method }) => {
                let targets: Vec<u64> = match method.as_str() {
                    "notifications/progress" => {
                        let Some(t) = msg.pointer("/params/progressToken").cloned() else {
                            return;
                        };
                        let Some((session, theirs)) =
                            lock(&self.st).progress.get(&id_key(&t)).cloned()
                        else {
                            return;
                        };
                        msg["params"]["progressToken"] = theirs;
                        vec![session]
                    }
                    "notifications/resources/updated" => {
                        let uri = msg
                            .pointer("/params/uri")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        lock(&self.st)
                            .subscriptions
                            .get(uri)
                            .map(|s| s.iter().copied().collect())
                            .unwrap_or_default()
                    }
                    // A list changed: news for everyone, and nobody's data.
                    m if m.ends_with("/list_changed") => {
                        lock(&self.st).sessions.keys().copied().collect()
                    }
                    // Anything else (a log message, a cancellation of a
                    // request of the process's, an unknown notification)
                    // names no session, and the sessions are many callers'
                    // (other users'): passed to all of them it could show
                    // one caller's work to another. Not passed on.
                    _ => {
                        tracing::debug!(
                            "`{method}` from the shared upstream `{}` not passed on",
                            self.name
                        );
                        return;
                    }
                };
                let text = raw::rewrite(&text, &msg);
                for session in targets {
                    if let Some(relay) = self.relay_of(session) {
                        relay
                            .on_upstream_frame(epoch, Frame::Line(text.clone().into_bytes()))
                            .await;
                    }
                }
            }
            Err(_) => tracing::debug!("shared upstream sent no JSON-RPC message; dropped"),
        }
    }
}

/// Opens a session's relay onto a shared process.
pub(crate) struct SharedRelayFactory {
    instance: Arc<SharedInstance>,
    cfg: ProxyConfig,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
}

impl SharedRelayFactory {
    pub(crate) fn new(
        instance: Arc<SharedInstance>,
        cfg: ProxyConfig,
        engine: Arc<Engine>,
        log: Arc<DecisionLog>,
    ) -> Self {
        SharedRelayFactory {
            instance,
            cfg,
            engine,
            log,
        }
    }
}

impl EndpointFactory for SharedRelayFactory {
    fn open(
        &self,
        label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, crate::ProxyError>> {
        Box::pin(async move {
            let relay = Relay::new(
                self.cfg.clone(),
                Arc::clone(&self.engine),
                Arc::clone(&self.log),
                to_client,
                Some(label),
            );
            let session = self.instance.attach(&relay).await;
            let shutdown = CancellationToken::new();
            let ended = shutdown.clone();
            let instance = Arc::clone(&self.instance);
            tokio::spawn(async move {
                ended.cancelled().await;
                instance.detach(session).await;
            });
            // Up, down, or (while the process starts) settled by `came_up`
            // within its initialize timeout.
            let _ =
                tokio::time::timeout(self.cfg.internal_timeout, relay.wait_link_settled()).await;
            Ok(OpenedEndpoint {
                endpoint: relay,
                shutdown,
            })
        })
    }
}
