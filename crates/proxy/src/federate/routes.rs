//! Which member a federated message goes to, and what the client gets
//! back: the client's requests resolved by name or URI to one member (or
//! fanned out, `fanout`), their answers restored to the client's id, and
//! the members' own requests and notifications given ids and URIs the
//! client can use.

use super::fanout::Fan;
use super::merge::{ListKind, federate_uris};
use super::{Federation, lock};
use crate::bearer::Caller;
use crate::framing::Frame;
use crate::jsonrpc::{self, Kind, id_key};
use crate::raw;
use crate::relay::Outgoing;
use serde_json::{Value, json};
use std::sync::Arc;

/// A request the federation sent a member, by its own id.
pub(crate) enum Pending {
    /// One client request routed to one member.
    One {
        member: String,
        client_id: Value,
        method: String,
    },
    /// One member's part of a fanned-out client request.
    Fan { fan: Arc<Fan>, member: String },
    /// The client's initialize replayed to a member added later; its answer
    /// only tells the member's capabilities.
    Replay { member: String },
}

impl Pending {
    fn member(&self) -> &str {
        match self {
            Pending::One { member, .. } | Pending::Fan { member, .. } => member,
            Pending::Replay { member } => member,
        }
    }
}

/// A fresh id for a request the federation sends: random, so that it
/// collides with no client's id and cannot be guessed.
pub(super) fn own_id() -> Value {
    Value::String(format!("warden-fed:{}", uuid::Uuid::new_v4().simple()))
}

/// How long after telling the client a list changed the same news from
/// another member is not passed on: the client lists every server anyway.
const LIST_CHANGED_QUIET: std::time::Duration = std::time::Duration::from_millis(200);

/// What a routed request names.
#[derive(Debug, Clone, Copy)]
enum Named {
    Tool,
    Prompt,
    Resource,
}

impl Named {
    fn what(self) -> &'static str {
        match self {
            Named::Tool => "tool",
            Named::Prompt => "prompt",
            Named::Resource => "resource",
        }
    }
}

/// The methods whose result may carry resource URIs to federate.
const URI_RESULTS: [&str; 3] = ["resources/read", "tools/call", "prompts/get"];

impl Federation {
    pub(super) async fn on_client_frame(
        self: &Arc<Self>,
        frame: Frame,
        caller: Option<Arc<Caller>>,
    ) {
        let bytes = match frame {
            Frame::Line(bytes) => bytes,
            Frame::TooLarge { len, head } => {
                let id = jsonrpc::sniff_id(&head).unwrap_or(Value::Null);
                let message = format!("message of {len} bytes exceeds warden's limit");
                // An answer to a member's request: that member gets the error.
                let target = lock(&self.st).to_client_reqs.remove(&id_key(&id));
                if let Some((member, member_id)) = target {
                    let err = jsonrpc::error(member_id, jsonrpc::INVALID_REQUEST, message, None);
                    self.to_member(&member, err.to_string(), caller).await;
                    return;
                }
                self.send_client(
                    jsonrpc::error(id, jsonrpc::INVALID_REQUEST, message, None),
                    None,
                    true,
                )
                .await;
                return;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                let err = jsonrpc::error(
                    Value::Null,
                    jsonrpc::PARSE_ERROR,
                    "parse error: not UTF-8",
                    None,
                );
                self.send_client(err, None, true).await;
                return;
            }
        };
        let msg: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return self.client_undecodable(&text, e, caller).await,
        };
        match jsonrpc::classify(&msg) {
            Ok(Kind::Request { id, method }) => {
                self.client_request(text, msg, id, method, caller).await
            }
            Ok(Kind::Notification { method }) => {
                self.client_notification(text, msg, method, caller).await
            }
            Ok(Kind::Response { id }) => {
                let target = lock(&self.st).to_client_reqs.remove(&id_key(&id));
                match target {
                    Some((member, member_id)) => {
                        let mut v = msg;
                        v["id"] = member_id;
                        self.to_member(&member, raw::rewrite(&text, &v), caller)
                            .await;
                    }
                    None => tracing::debug!("client answered unknown request {id}; dropped"),
                }
            }
            Err(why) => {
                let id = match msg.get("id") {
                    Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
                    _ => Value::Null,
                };
                let err = jsonrpc::error(
                    id,
                    jsonrpc::INVALID_REQUEST,
                    format!("invalid request: {why}"),
                    None,
                );
                self.send_client(err, None, true).await;
            }
        }
    }

    /// JSON serde_json refuses (`1e400`, deep nesting): an answer to a
    /// member's request still reaches that member as it came (the member
    /// relay applies its own rules to it); anything else cannot be routed.
    async fn client_undecodable(
        self: &Arc<Self>,
        text: &str,
        e: serde_json::Error,
        caller: Option<Arc<Caller>>,
    ) {
        if let Some(env) = raw::envelope(text) {
            if env.is_response()
                && let Some(id) = env.id()
            {
                let target = lock(&self.st).to_client_reqs.remove(&id_key(&id));
                if let Some((member, member_id)) = target {
                    self.to_member(&member, env.with_id(&member_id), caller)
                        .await;
                    return;
                }
            }
            let err = jsonrpc::error(
                env.id().unwrap_or(Value::Null),
                jsonrpc::INVALID_REQUEST,
                "warden's federated endpoint cannot route a message it cannot decode",
                None,
            );
            self.send_client(err, None, true).await;
            return;
        }
        let err = jsonrpc::error(
            Value::Null,
            jsonrpc::PARSE_ERROR,
            format!("parse error: {e}"),
            None,
        );
        self.send_client(err, None, true).await;
    }

    async fn client_request(
        self: &Arc<Self>,
        text: String,
        msg: Value,
        id: Value,
        method: String,
        caller: Option<Arc<Caller>>,
    ) {
        if let Some(kind) = ListKind::of_method(&method) {
            return self.fan_list(text, msg, id, kind, caller).await;
        }
        match method.as_str() {
            "initialize" => {
                {
                    let mut st = lock(&self.st);
                    st.initialize = Some(msg.clone());
                }
                self.fan_initialize(text, msg, id, caller).await;
            }
            "ping" => {
                self.send_client(jsonrpc::result(id.clone(), json!({})), Some(id), true)
                    .await
            }
            "logging/setLevel" => self.fan_set_level(text, msg, id, caller).await,
            "tools/call" => {
                self.route_named(text, msg, id, &method, "/params/name", Named::Tool, caller)
                    .await
            }
            "prompts/get" => {
                self.route_named(
                    text,
                    msg,
                    id,
                    &method,
                    "/params/name",
                    Named::Prompt,
                    caller,
                )
                .await
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.route_named(
                    text,
                    msg,
                    id,
                    &method,
                    "/params/uri",
                    Named::Resource,
                    caller,
                )
                .await
            }
            "completion/complete" => {
                let kind = msg
                    .pointer("/params/ref/type")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match kind.as_deref() {
                    Some("ref/prompt") => {
                        let at = "/params/ref/name";
                        self.route_named(text, msg, id, &method, at, Named::Prompt, caller)
                            .await
                    }
                    Some("ref/resource") => {
                        let at = "/params/ref/uri";
                        self.route_named(text, msg, id, &method, at, Named::Resource, caller)
                            .await
                    }
                    _ => {
                        let err = jsonrpc::error(
                            id.clone(),
                            jsonrpc::INVALID_PARAMS,
                            "completion/complete needs `params.ref` of type `ref/prompt` or `ref/resource`",
                            None,
                        );
                        self.send_client(err, Some(id), true).await;
                    }
                }
            }
            _ => {
                let err = jsonrpc::error(
                    id.clone(),
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "warden's federated endpoint cannot route `{method}`: it names no server; use the server's own endpoint, /servers/<name>/mcp"
                    ),
                    None,
                );
                self.send_client(err, Some(id), true).await;
            }
        }
    }

    /// Routes a request by what it names at `pointer` (a tool or prompt
    /// name, a resource URI): to that server, with the server's own name
    /// put back at `pointer`; answered by warden when it names no server.
    #[allow(clippy::too_many_arguments)]
    async fn route_named(
        self: &Arc<Self>,
        text: String,
        mut msg: Value,
        id: Value,
        method: &str,
        pointer: &str,
        named: Named,
        caller: Option<Arc<Caller>>,
    ) {
        let what = named.what();
        let Some(name) = msg
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            let message = match named {
                Named::Resource => format!("`{method}` needs a resource `uri`"),
                _ => format!("`{method}` needs a {what} name"),
            };
            let err = jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, message, None);
            return self.send_client(err, Some(id), true).await;
        };
        let split = match named {
            Named::Resource => self.namer.split_uri(&name),
            _ => self.namer.split_name(&name),
        };
        let Some((server, own)) = split else {
            let servers = self.member_names().join(", ");
            let message = match named {
                Named::Resource => format!(
                    "unknown resource `{name}`: on warden's federated endpoint a resource URI is `<server>+<uri>` as resources/list shows it; servers: {servers}"
                ),
                _ => format!(
                    "unknown {what} `{name}`: on warden's federated endpoint a {what} is named `<server>{}<{what}>`; servers: {servers}",
                    self.namer.separator()
                ),
            };
            let err = jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, message, None);
            return self.send_client(err, Some(id), true).await;
        };
        let (server, own) = (server.to_string(), own.to_string());
        if let Some(slot) = msg.pointer_mut(pointer) {
            *slot = Value::String(own);
        }
        self.route_one(text, msg, id, method, &server, what, &name, caller)
            .await;
    }

    /// Sends one client request to one member under an id of the
    /// federation's own.
    #[allow(clippy::too_many_arguments)]
    async fn route_one(
        self: &Arc<Self>,
        text: String,
        mut msg: Value,
        client_id: Value,
        method: &str,
        server: &str,
        what: &str,
        name: &str,
        caller: Option<Arc<Caller>>,
    ) {
        if let Err(why) = self.member(server) {
            let message = match why {
                Some(why) => format!("server `{server}` is unavailable: {why}"),
                None => format!(
                    "unknown {what} `{name}`: no server `{server}` behind warden's federated endpoint; servers: {}",
                    self.member_names().join(", ")
                ),
            };
            let code = if lock(&self.st).failed.contains_key(server) {
                jsonrpc::UPSTREAM_UNAVAILABLE
            } else {
                jsonrpc::INVALID_PARAMS
            };
            let err = jsonrpc::error(client_id.clone(), code, message, None);
            return self.send_client(err, Some(client_id), true).await;
        }
        let own = own_id();
        let duplicate = {
            let mut st = lock(&self.st);
            let key = id_key(&client_id);
            let duplicate = st.client_reqs.contains_key(&key);
            if !duplicate {
                st.client_reqs
                    .insert(key, (server.to_string(), own.clone()));
                st.pending.insert(
                    id_key(&own),
                    Pending::One {
                        member: server.to_string(),
                        client_id: client_id.clone(),
                        method: method.to_string(),
                    },
                );
            }
            duplicate
        };
        if duplicate {
            let err = jsonrpc::error(
                client_id.clone(),
                jsonrpc::INVALID_REQUEST,
                "a request with this id is already in flight",
                None,
            );
            return self.send_client(err, Some(client_id), true).await;
        }
        msg["id"] = own;
        self.to_member(server, raw::rewrite(&text, &msg), caller)
            .await;
    }

    async fn client_notification(
        self: &Arc<Self>,
        text: String,
        mut msg: Value,
        method: String,
        caller: Option<Arc<Caller>>,
    ) {
        match method.as_str() {
            "notifications/cancelled" => {
                let Some(request) = msg.pointer("/params/requestId").cloned() else {
                    return;
                };
                let target = lock(&self.st).client_reqs.get(&id_key(&request)).cloned();
                if let Some((member, own)) = target {
                    msg["params"]["requestId"] = own;
                    self.to_member(&member, raw::rewrite(&text, &msg), caller)
                        .await;
                }
            }
            "notifications/initialized" => {
                lock(&self.st).initialized = true;
                self.to_all_members(&text, caller).await;
            }
            m if jsonrpc::loose_method(m) == "tools/call" => {
                // A call sent as a notification: its member relay drops it
                // and logs the denial under the real server name.
                let name = msg
                    .pointer("/params/name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match name.as_deref().and_then(|n| self.namer.split_name(n)) {
                    Some((server, own)) => {
                        let (server, own) = (server.to_string(), own.to_string());
                        msg["params"]["name"] = Value::String(own);
                        self.to_member(&server, raw::rewrite(&text, &msg), caller)
                            .await;
                    }
                    None => {
                        tracing::warn!("a `{m}` notification naming no federated tool was dropped")
                    }
                }
            }
            _ => self.to_all_members(&text, caller).await,
        }
    }

    pub(super) async fn to_member(&self, member: &str, text: String, caller: Option<Arc<Caller>>) {
        match self.member(member) {
            Ok(endpoint) => {
                endpoint
                    .client_frame(Frame::Line(text.into_bytes()), caller)
                    .await
            }
            Err(_) => tracing::debug!("message for server `{member}`, which is gone; dropped"),
        }
    }

    async fn to_all_members(&self, text: &str, caller: Option<Arc<Caller>>) {
        for name in self.member_names() {
            self.to_member(&name, text.to_string(), caller.clone())
                .await;
        }
    }

    /// The client request a member's message relates to, by the
    /// federation's own id.
    fn client_id_of(&self, related: &Option<Value>) -> Option<Value> {
        let related = related.as_ref()?;
        match lock(&self.st).pending.get(&id_key(related))? {
            Pending::One { client_id, .. } => Some(client_id.clone()),
            Pending::Fan { fan, .. } => Some(fan.client_id.clone()),
            Pending::Replay { .. } => None,
        }
    }

    /// One message a member sends toward the client.
    pub(super) async fn from_member(self: &Arc<Self>, member: &str, out: Outgoing) {
        if out.detach {
            let related = self.client_id_of(&out.related);
            let _ = self.to_client.send(Outgoing { related, ..out }).await;
            return;
        }
        if out.response && self.answer_by_envelope(&out).await {
            return;
        }
        let Ok(mut msg) = serde_json::from_str::<Value>(&out.text) else {
            // Relays write what they were sent; what even they could not
            // decode is an upstream answer serde_json refuses.
            if let Some(env) = raw::envelope(&out.text)
                && env.is_response()
                && let Some(id) = env.id()
            {
                let pending = lock(&self.st).pending.remove(&id_key(&id));
                if let Some(Pending::One { client_id, .. }) = pending {
                    lock(&self.st).client_reqs.remove(&id_key(&client_id));
                    let text = env.with_id(&client_id);
                    self.send_client_text(text, Some(client_id), true).await;
                } else if let Some(Pending::Fan { fan, member }) = pending {
                    self.fan_answer(&fan, &member, Err(json!({"code": jsonrpc::INTERNAL_ERROR, "message": "undecodable answer"})))
                        .await;
                }
            }
            return;
        };
        match jsonrpc::classify(&msg) {
            Ok(Kind::Response { id }) => {
                let pending = lock(&self.st).pending.remove(&id_key(&id));
                match pending {
                    Some(Pending::One {
                        client_id, method, ..
                    }) => {
                        lock(&self.st).client_reqs.remove(&id_key(&client_id));
                        msg["id"] = client_id.clone();
                        if URI_RESULTS.contains(&method.as_str())
                            && let Some(result) = msg.get_mut("result")
                        {
                            federate_uris(&self.namer, member, result);
                        }
                        let text = raw::rewrite(&out.text, &msg);
                        self.send_client_text(text, Some(client_id), true).await;
                    }
                    Some(Pending::Fan { fan, member }) => {
                        let answer = match msg.get("error") {
                            Some(e) => Err(e.clone()),
                            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        self.fan_answer(&fan, &member, answer).await;
                    }
                    Some(Pending::Replay { member }) => {
                        let caps = msg.pointer("/result/capabilities").cloned();
                        let mut st = lock(&self.st);
                        if let Some(m) = st.members.get_mut(&member) {
                            m.capabilities = caps;
                        }
                    }
                    None => {
                        tracing::debug!("server `{member}` answered unknown request {id}; dropped")
                    }
                }
            }
            Ok(Kind::Request { id, .. }) => {
                // Elicitation, sampling, roots, ping: the client answers
                // under an id of the federation's, which leads back here.
                let fed_id = own_id();
                lock(&self.st)
                    .to_client_reqs
                    .insert(id_key(&fed_id), (member.to_string(), id));
                msg["id"] = fed_id;
                let related = self.client_id_of(&out.related);
                self.send_client_text(raw::rewrite(&out.text, &msg), related, false)
                    .await;
            }
            Ok(Kind::Notification { method }) => {
                match method.as_str() {
                    "notifications/cancelled" => {
                        // The member withdrew a request it had sent the client.
                        if let Some(req) = msg.pointer("/params/requestId").cloned() {
                            let mut st = lock(&self.st);
                            let fed = st
                                .to_client_reqs
                                .iter()
                                .find(|(_, (m, mid))| m == member && *mid == req)
                                .map(|(k, _)| k.clone());
                            match fed.and_then(|k| st.to_client_reqs.remove(&k).map(|_| k)) {
                                Some(k) => {
                                    drop(st);
                                    msg["params"]["requestId"] =
                                        serde_json::from_str(&k).unwrap_or(Value::Null);
                                }
                                None => return,
                            }
                        }
                    }
                    "notifications/resources/updated" => {
                        if let Some(params) = msg.get_mut("params") {
                            federate_uris(&self.namer, member, params);
                        }
                    }
                    m if m.ends_with("/list_changed") => {
                        let now = std::time::Instant::now();
                        let mut st = lock(&self.st);
                        let recent = st
                            .announced
                            .get(m)
                            .is_some_and(|at| now.duration_since(*at) < LIST_CHANGED_QUIET);
                        if recent {
                            return;
                        }
                        st.announced.insert(m.to_string(), now);
                    }
                    "notifications/message" => {
                        // Which server logged it.
                        if let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) {
                            let logger = match params.get("logger").and_then(Value::as_str) {
                                Some(l) => format!("{member}/{l}"),
                                None => member.to_string(),
                            };
                            params.insert("logger".into(), Value::String(logger));
                        }
                    }
                    _ => {}
                }
                let related = self.client_id_of(&out.related);
                self.send_client_text(raw::rewrite(&out.text, &msg), related, false)
                    .await;
            }
            Err(_) => tracing::debug!("server `{member}` sent no JSON-RPC message; dropped"),
        }
    }

    /// The common answer, a member's response to one routed request whose
    /// result names no resource URI: only its id changes, so its text is
    /// passed on with the client's id put in (`raw::Envelope::with_id`),
    /// without decoding the result. `false` when the answer needs more
    /// (a fan-out part, URIs to federate, not an envelope at all).
    async fn answer_by_envelope(&self, out: &Outgoing) -> bool {
        let Some(env) = raw::envelope(&out.text) else {
            return false;
        };
        let Some(id) = env.id().filter(|_| env.is_response()) else {
            return false;
        };
        let client_id = {
            let mut st = lock(&self.st);
            let key = id_key(&id);
            let plain = match st.pending.get(&key) {
                Some(Pending::One { method, .. }) => {
                    !(URI_RESULTS.contains(&method.as_str()) && out.text.contains("\"uri\""))
                }
                _ => false,
            };
            if !plain {
                return false;
            }
            let Some(Pending::One { client_id, .. }) = st.pending.remove(&key) else {
                return false;
            };
            st.client_reqs.remove(&id_key(&client_id));
            client_id
        };
        let text = env.with_id(&client_id);
        self.send_client_text(text, Some(client_id), true).await;
        true
    }

    /// Answers every request in flight to `member` with an error (it was
    /// removed or restarted).
    pub(super) async fn fail_pending_of(self: &Arc<Self>, member: &str, why: &str) {
        let gone: Vec<Pending> = {
            let mut st = lock(&self.st);
            let keys: Vec<String> = st
                .pending
                .iter()
                .filter(|(_, p)| p.member() == member)
                .map(|(k, _)| k.clone())
                .collect();
            st.to_client_reqs.retain(|_, (m, _)| m != member);
            keys.iter().filter_map(|k| st.pending.remove(k)).collect()
        };
        for p in gone {
            match p {
                Pending::One { client_id, .. } => {
                    lock(&self.st).client_reqs.remove(&id_key(&client_id));
                    let err = jsonrpc::error(
                        client_id.clone(),
                        jsonrpc::UPSTREAM_UNAVAILABLE,
                        format!("server `{member}` is unavailable: {why}"),
                        None,
                    );
                    self.send_client(err, Some(client_id), true).await;
                }
                Pending::Fan { fan, member } => {
                    let err = json!({"code": jsonrpc::UPSTREAM_UNAVAILABLE, "message": why});
                    self.fan_answer(&fan, &member, Err(err)).await;
                }
                Pending::Replay { .. } => {}
            }
        }
    }
}
