//! The client's side of the relay: reading the client (stdio lines, or
//! the frames the Streamable HTTP server feeds in), what each client
//! message becomes (a governed `tools/call` spawned as its own task, a
//! request relayed upstream with its pending entry and timer, an answer to
//! a request of the upstream's or of warden's, a cancellation), what the
//! relay keeps of the client's session for a replay (initialize, log level,
//! subscriptions), and the end of the session when the client goes.

use super::intake::disguised_method;
use super::link::Link;
use super::pending::{ClientReq, DownPending, Fwd, UpPending, progress_token};
use super::{Relay, elicitation_supports_form, lock};
use crate::bearer::Caller;
use crate::framing::{Frame, LineReader};
use crate::govern::{GOVERNED_METHODS, RESERVED_META_PREFIXES};
use crate::jsonrpc::{self, Kind, OWN_ID_PREFIX, id_key};
use crate::raw::Message;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufRead;
use tokio_util::sync::CancellationToken;

impl Relay {
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
                    let pending = lock(&self.st).pending.take_down(&id_key(id));
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
                let mut msg = match Message::parse(bytes) {
                    Ok(msg) => msg,
                    Err((bytes, e)) => {
                        self.client_unreadable(&bytes, e).await;
                        return;
                    }
                };
                // A key twice in one object: warden reads the last, a peer
                // may read the first. What goes upstream is what warden
                // read (and decided on), written anew.
                if msg.has_duplicate_keys() {
                    tracing::debug!("client message with a duplicate key; written anew");
                    msg.rewrite_whole();
                }
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
        // Only a message that carries one is changed (the others are
        // written out as the text they came as).
        if jsonrpc::has_reserved_meta(&msg, RESERVED_META_PREFIXES) {
            jsonrpc::strip_reserved_meta(msg.edit(jsonrpc::META_HOLDERS), RESERVED_META_PREFIXES);
        }
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
                        let duplicate = st.pending.has_client(&key);
                        if !duplicate {
                            st.pending.insert_client(
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
                let pending = lock(&self.st).pending.take_down(&id_key(&id));
                match pending {
                    Some(DownPending::Forward { up_id, epoch }) => {
                        msg.set_id(up_id);
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

    /// The id a client request goes upstream with.
    pub(super) fn upstream_id(&self, client_id: &Value) -> Value {
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
                st.session.elicitation_url =
                    super::context::elicitation_supports_url(params.get("capabilities"));
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
        let mut timer = deadline.map(|at| self.arm_timer(&up_key, at));
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
                Some(_) if st.pending.has_client(&client_key) || st.pending.has_up(&up_key) => {
                    Err(duplicate_id(id.clone()))
                }
                Some((sender, epoch)) => {
                    st.pending.insert_up(
                        up_key.clone(),
                        UpPending::relayed(
                            epoch,
                            id.clone(),
                            kind,
                            deadline,
                            progress_token(&msg),
                            timer.take(),
                        ),
                    );
                    st.pending.insert_client(
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
        msg.set_id(up_id);
        if sender.send(msg.to_string()).await.is_err() {
            let reply = {
                let mut st = lock(&self.st);
                st.pending.remove_up(&up_key);
                st.pending.remove_client(&client_key);
                self.unavailable(id, &st)
            };
            self.send_client(reply).await;
        }
    }

    async fn client_cancelled(&self, mut msg: Message) {
        let Some(req_id) = msg.pointer("/params/requestId").cloned() else {
            return;
        };
        let entry = lock(&self.st).pending.remove_client(&id_key(&req_id));
        match entry {
            Some(ClientReq {
                cancel: Some(token),
                ..
            }) => token.cancel(),
            Some(ClientReq {
                up_key: Some((key, up_id)),
                ..
            }) => {
                lock(&self.st).pending.remove_up(&key);
                if msg.pointer("/params/requestId") != Some(&up_id)
                    && let Some(params) = msg
                        .edit(&[&["params", "requestId"]])
                        .get_mut("params")
                        .and_then(Value::as_object_mut)
                {
                    params.insert("requestId".into(), up_id);
                }
                self.notify_up(msg).await;
            }
            // Not (or no longer) in flight here: pass it on as it came.
            _ => self.notify_up(msg).await,
        }
    }

    /// The client disconnected: cancel its requests upstream, let governed
    /// calls log their end, and close the upstream link.
    pub(crate) async fn client_gone(&self) {
        self.ending.store(true, std::sync::atomic::Ordering::SeqCst);
        let (reqs, mut tasks) = {
            let mut st = lock(&self.st);
            let reqs = st.pending.drain_clients();
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
        st.pending.clear_down();
    }
}

/// The answer to a request whose id is the id of one still in flight.
pub(super) fn duplicate_id(id: Value) -> Value {
    jsonrpc::error(
        id,
        jsonrpc::INVALID_REQUEST,
        "invalid request: a request with this id is still in flight",
        None,
    )
}
