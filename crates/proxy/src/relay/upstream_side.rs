//! The upstream's side of the relay: frames and messages from the
//! upstream (answers to the client's relayed requests and to warden's own,
//! requests the upstream sends the client, which get `warden:N` ids, and
//! notifications: cancellation, progress, `tools/list_changed`), the
//! answers warden changes on the way (`initialize`: the server's name and
//! `tools.listChanged`; `tools/list`: the view, in `relay::catalog`), and
//! what an HTTP upstream reports about a request's stream and status.

use super::pending::{DownPending, Fwd, UpPending, UpWait};
use super::{Outgoing, Relay, lock};
use crate::framing::Frame;
use crate::jsonrpc::{self, Kind, id_key};
use crate::raw::Message;
use serde_json::Value;

impl Relay {
    /// The client request an upstream request serves, while it is in flight.
    fn related_of(&self, up_id: &Value) -> Option<Value> {
        lock(&self.st).pending.related(&id_key(up_id))
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
                let pending = lock(&self.st).pending.remove_up(&id_key(&id));
                match pending.map(UpPending::into_wait) {
                    Some(UpWait::Forward { client_id, .. }) => {
                        lock(&self.st).pending.remove_client(&id_key(&client_id));
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
                let msg = match Message::parse(bytes) {
                    Ok(msg) => msg,
                    Err((bytes, e)) => {
                        self.upstream_unreadable(&bytes, e).await;
                        return;
                    }
                };
                match jsonrpc::classify(&msg) {
                    Ok(kind) => {
                        let related =
                            about.and_then(|up_id| lock(&self.st).pending.related(&id_key(&up_id)));
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
                let pending = lock(&self.st).pending.take_answered(&id_key(&id));
                match pending {
                    Some(UpWait::Forward { client_id, kind }) => {
                        self.post_process(&mut msg, &kind);
                        if matches!(kind, Fwd::Initialize) {
                            self.named.send_modify(|n| *n += 1);
                        }
                        msg.set_id(client_id);
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
                    .pending
                    .insert_down(id_key(&down_id), DownPending::Forward { up_id: id, epoch });
                msg.set_id(down_id);
                self.send_client_for(msg, related).await;
            }
            Kind::Notification { method } => {
                let mut related = related;
                match method.as_str() {
                    "notifications/cancelled" => {
                        if let Some(req_id) = msg.pointer("/params/requestId").cloned() {
                            let mapped =
                                lock(&self.st).pending.cancelled_by_upstream(&req_id, epoch);
                            if let Some(m) = mapped {
                                related = related.or_else(|| Some(m.clone()));
                                if let Some(params) = msg
                                    .edit(&[&["params", "requestId"]])
                                    .get_mut("params")
                                    .and_then(Value::as_object_mut)
                                {
                                    params.insert("requestId".into(), m);
                                }
                            }
                        }
                    }
                    "notifications/tools/list_changed" => {
                        lock(&self.st).tools.stale();
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
    fn post_process(&self, msg: &mut Message, kind: &Fwd) {
        if matches!(kind, Fwd::Plain) || msg.get("result").is_none() {
            return;
        }
        match kind {
            Fwd::Plain => {}
            Fwd::Initialize => {
                let Some(result) = msg
                    .edit(&[&["result", "capabilities", "tools", "listChanged"]])
                    .get_mut("result")
                else {
                    return;
                };
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
                if let Some(result) = msg.edit(&[&["result"]]).get_mut("result") {
                    self.view_tools_list(result, agent.clone(), *complete, caller.as_deref());
                }
            }
        }
    }
}
