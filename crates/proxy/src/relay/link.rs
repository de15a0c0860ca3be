//! The relay's side of the upstream link: where the connection stands
//! ([`Link`]: starting, up, recovering after a restart, down, closed), what
//! the supervisors (`upstream.rs`, `http_upstream.rs`) report to it
//! (`link_started`, `link_down`), the error a client request gets while the
//! link is not up, warden's own requests to the upstream (`own_request`),
//! and the replay of the client's initialize (and log level and
//! subscriptions) to a restarted upstream.

use super::pending::UpWait;
use super::{Relay, State, lock};
use crate::jsonrpc::{self, id_key};
use crate::raw::Message;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Where the upstream connection stands.
pub(super) enum Link {
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

impl Relay {
    /// Waits until the first upstream instance is up (or failed to come
    /// up), so that a client's first message does not race its start.
    pub(crate) async fn wait_link_settled(&self) {
        let mut rx = self.link_settled.subscribe();
        let _ = rx.wait_for(|settled| *settled).await;
    }

    /// Whether the client is gone (`client_gone` closed the link): an
    /// upstream that ends now ended because warden closed it, and must not
    /// be restarted for no one.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(lock(&self.st).link, Link::Closed)
    }

    /// A new upstream process is running; `recovering` while warden replays
    /// the client's initialize to it.
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
            // The client's answers to the dead upstream's requests have
            // nowhere to go; tell the client to stop working on them.
            st.pending.fail_epoch(epoch)
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
    pub(super) fn unavailable(&self, id: Value, st: &State) -> Value {
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

    /// Where to send upstream, and the instance's epoch: the client's
    /// messages only while the link is up, warden's own (`own`) also while
    /// it recovers.
    pub(super) fn up_sender(st: &State, own: bool) -> Option<(mpsc::Sender<String>, u64)> {
        match &st.link {
            Link::Up { tx, epoch } => Some((tx.clone(), *epoch)),
            Link::Recovering { tx, epoch } if own => Some((tx.clone(), *epoch)),
            _ => None,
        }
    }

    /// Sends a notification upstream if it is up; dropped otherwise.
    pub(super) async fn notify_up(&self, msg: impl Into<Message>) {
        let msg: Message = msg.into();
        let tx = Self::up_sender(&lock(&self.st), false);
        if let Some((tx, _)) = tx {
            let _ = tx.send(msg.to_string()).await;
        }
    }

    /// Sends the client's answer to the upstream that asked, if that
    /// upstream is still the one running.
    pub(super) async fn reply_up(&self, epoch: u64, msg: impl Into<Message>) {
        let msg: Message = msg.into();
        let tx = Self::up_sender(&lock(&self.st), true);
        match tx {
            Some((tx, g)) if g == epoch => {
                let _ = tx.send(msg.to_string()).await;
            }
            _ => tracing::debug!("answer for a previous upstream instance dropped"),
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
            st.pending
                .insert_up(key.clone(), super::pending::UpPending::own(epoch, tx));
            sender
        };
        let msg = jsonrpc::request(id.clone(), method, params);
        if sender.send(msg.to_string()).await.is_err() {
            lock(&self.st).pending.remove_up(&key);
            return Err("the upstream server is not available".into());
        }
        match tokio::time::timeout(self.cfg.internal_timeout, rx).await {
            Ok(Ok(r)) => r.map(Message::into_value),
            Ok(Err(_)) => Err("the upstream server went away".into()),
            Err(_) => {
                lock(&self.st).pending.remove_up(&key);
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
                    st.tools.stale();
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
}
