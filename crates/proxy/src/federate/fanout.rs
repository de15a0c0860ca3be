//! Requests the federated endpoint asks of every member: `initialize`, the
//! four lists and `logging/setLevel`. Each member's part has an id of the
//! federation's own; the client is answered once, when every member asked
//! has answered or the fan-out timeout passed (the rest are cancelled and
//! left out, with a log line).

use super::merge::{ListKind, ServerInit, ServerPage, merge_initialize, merge_list};
use super::names::Cursors;
use super::routes::{Pending, own_id};
use super::{Federation, lock};
use crate::bearer::Caller;
use crate::jsonrpc::{self, id_key};
use crate::raw;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a fan-out is for.
#[derive(Debug, Clone, Copy)]
enum FanKind {
    Initialize,
    List(ListKind),
    SetLevel,
}

/// One fanned-out client request.
pub(crate) struct Fan {
    pub(crate) client_id: Value,
    kind: FanKind,
    /// The members asked, in server order.
    order: Vec<String>,
    st: Mutex<FanState>,
}

#[derive(Default)]
struct FanState {
    /// Members yet to answer, with the id they were asked under.
    waiting: BTreeMap<String, Value>,
    got: Vec<(String, Result<Value, Value>)>,
    done: bool,
}

/// A JSON-RPC error object's message, for log lines and left-out reasons.
fn error_message(e: &Value) -> String {
    e.get("message")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string()
}

impl Federation {
    pub(super) async fn fan_initialize(
        self: &Arc<Self>,
        text: String,
        msg: Value,
        id: Value,
        caller: Option<Arc<Caller>>,
    ) {
        let targets = self.member_names().into_iter().map(|m| (m, None)).collect();
        self.start_fan(text, msg, id, FanKind::Initialize, targets, caller)
            .await;
    }

    pub(super) async fn fan_set_level(
        self: &Arc<Self>,
        text: String,
        msg: Value,
        id: Value,
        caller: Option<Arc<Caller>>,
    ) {
        let targets = {
            let st = lock(&self.st);
            st.ordered_members()
                .into_iter()
                .filter(|n| {
                    st.members[n]
                        .capabilities
                        .as_ref()
                        .is_none_or(|c| c.get("logging").is_some())
                })
                .map(|n| (n, None))
                .collect()
        };
        self.start_fan(text, msg, id, FanKind::SetLevel, targets, caller)
            .await;
    }

    pub(super) async fn fan_list(
        self: &Arc<Self>,
        text: String,
        msg: Value,
        id: Value,
        kind: ListKind,
        caller: Option<Arc<Caller>>,
    ) {
        let targets: Vec<(String, Option<String>)> = match msg.pointer("/params/cursor") {
            None | Some(Value::Null) => {
                let st = lock(&self.st);
                st.ordered_members()
                    .into_iter()
                    .filter(|n| {
                        st.members[n]
                            .capabilities
                            .as_ref()
                            .is_none_or(|c| c.get(kind.capability()).is_some())
                    })
                    .map(|n| (n, None))
                    .collect()
            }
            Some(c) => match c.as_str().and_then(Cursors::decode) {
                // A server gone since the cursor was given has nothing more.
                Some(cursors) => cursors.0.into_iter().map(|(s, c)| (s, Some(c))).collect(),
                None => {
                    let err = jsonrpc::error(
                        id.clone(),
                        jsonrpc::INVALID_PARAMS,
                        "invalid cursor: give back the `nextCursor` of the previous page unchanged",
                        None,
                    );
                    return self.send_client(err, Some(id), true).await;
                }
            },
        };
        let targets = {
            let st = lock(&self.st);
            targets
                .into_iter()
                .filter(|(s, _)| st.members.contains_key(s))
                .collect()
        };
        self.start_fan(text, msg, id, FanKind::List(kind), targets, caller)
            .await;
    }

    async fn start_fan(
        self: &Arc<Self>,
        text: String,
        msg: Value,
        client_id: Value,
        kind: FanKind,
        targets: Vec<(String, Option<String>)>,
        caller: Option<Arc<Caller>>,
    ) {
        let fan = Arc::new(Fan {
            client_id,
            kind,
            order: targets.iter().map(|(s, _)| s.clone()).collect(),
            st: Mutex::new(FanState::default()),
        });
        if targets.is_empty() {
            lock(&fan.st).done = true;
            return self.finish_fan(&fan).await;
        }
        let mut sends = Vec::new();
        {
            let mut st = lock(&self.st);
            let mut fs = lock(&fan.st);
            for (member, cursor) in targets {
                let own = own_id();
                st.pending.insert(
                    id_key(&own),
                    Pending::Fan {
                        fan: Arc::clone(&fan),
                        member: member.clone(),
                    },
                );
                fs.waiting.insert(member.clone(), own.clone());
                let mut m = msg.clone();
                m["id"] = own;
                if let FanKind::List(_) = kind
                    && let Some(params) = m.get_mut("params").and_then(Value::as_object_mut)
                {
                    match cursor {
                        Some(c) => {
                            params.insert("cursor".into(), Value::String(c));
                        }
                        None => {
                            params.remove("cursor");
                        }
                    }
                }
                sends.push((member, raw::rewrite(&text, &m)));
            }
        }
        let weak = Arc::downgrade(self);
        let timed = Arc::clone(&fan);
        let after = self.fan_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(fed) = weak.upgrade() {
                fed.fan_expired(&timed).await;
            }
        });
        futures::future::join_all(sends.into_iter().map(|(member, text)| {
            let caller = caller.clone();
            async move { self.to_member(&member, text, caller).await }
        }))
        .await;
    }

    /// One member's answer to its part of `fan`.
    pub(super) async fn fan_answer(
        self: &Arc<Self>,
        fan: &Arc<Fan>,
        member: &str,
        answer: Result<Value, Value>,
    ) {
        let complete = {
            let mut fs = lock(&fan.st);
            if fs.done || fs.waiting.remove(member).is_none() {
                return;
            }
            fs.got.push((member.to_string(), answer));
            if fs.waiting.is_empty() {
                fs.done = true;
            }
            fs.done
        };
        if complete {
            self.finish_fan(fan).await;
        }
    }

    /// The fan-out timeout passed: members that did not answer are
    /// cancelled and left out.
    async fn fan_expired(self: &Arc<Self>, fan: &Arc<Fan>) {
        let late: Vec<(String, Value)> = {
            let mut fs = lock(&fan.st);
            if fs.done {
                return;
            }
            fs.done = true;
            let late: Vec<(String, Value)> = std::mem::take(&mut fs.waiting).into_iter().collect();
            let secs = self.fan_timeout.as_secs_f64();
            for (m, _) in &late {
                fs.got.push((
                    m.clone(),
                    Err(json!({"code": jsonrpc::UPSTREAM_UNAVAILABLE, "message": format!("no answer within {secs}s")})),
                ));
            }
            late
        };
        for (member, own) in late {
            lock(&self.st).pending.remove(&id_key(&own));
            let cancel = jsonrpc::notification(
                "notifications/cancelled",
                Some(
                    json!({"requestId": own, "reason": "warden's federated endpoint stopped waiting"}),
                ),
            );
            self.to_member(&member, cancel.to_string(), None).await;
        }
        self.finish_fan(fan).await;
    }

    /// Answers the client once every part of `fan` is in.
    async fn finish_fan(self: &Arc<Self>, fan: &Arc<Fan>) {
        let mut got = std::mem::take(&mut lock(&fan.st).got);
        got.sort_by_key(|(m, _)| fan.order.iter().position(|o| o == m));
        let id = fan.client_id.clone();
        let reply = match fan.kind {
            FanKind::Initialize => {
                let mut inits = Vec::new();
                let mut first_error = None;
                for (server, answer) in got {
                    match answer {
                        Ok(result) => {
                            if let Some(m) = lock(&self.st).members.get_mut(&server) {
                                m.capabilities = result.get("capabilities").cloned();
                            }
                            inits.push(ServerInit { server, result });
                        }
                        Err(e) => {
                            tracing::warn!(
                                "federated session {}: server `{server}` did not initialize: {}; left out",
                                self.label,
                                error_message(&e)
                            );
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if inits.is_empty() && first_error.is_some() {
                    json!({"jsonrpc": "2.0", "id": id, "error": first_error})
                } else {
                    let merged = merge_initialize(&inits);
                    if !merged.disagree.is_empty() {
                        tracing::warn!(
                            "federated session {}: servers {} answered a newer protocol version; the session speaks {}, the oldest any server answered",
                            self.label,
                            merged.disagree.join(", "),
                            merged.result["protocolVersion"]
                        );
                    }
                    jsonrpc::result(id.clone(), merged.result)
                }
            }
            FanKind::List(kind) => {
                let pages = got
                    .into_iter()
                    .map(|(server, answer)| ServerPage {
                        server,
                        result: answer.map_err(|e| error_message(&e)),
                    })
                    .collect();
                let merged = merge_list(kind, &self.namer, pages);
                for (server, why) in &merged.left_out {
                    tracing::warn!(
                        "federated session {}: server `{server}` left out of {}: {why}",
                        self.label,
                        kind.items_key()
                    );
                }
                jsonrpc::result(id.clone(), merged.result)
            }
            FanKind::SetLevel => {
                let ok = got.iter().any(|(_, a)| a.is_ok());
                match got.into_iter().find_map(|(_, a)| a.err()) {
                    Some(e) if !ok => json!({"jsonrpc": "2.0", "id": id, "error": e}),
                    _ => jsonrpc::result(id.clone(), json!({})),
                }
            }
        };
        self.send_client(reply, Some(id), true).await;
    }

    /// Sends the client's initialize to a member added to an open session,
    /// then `initialized` if the client sent it.
    pub(super) async fn replay_initialize(self: &Arc<Self>, member: &str, mut init: Value) {
        let own = own_id();
        let initialized = {
            let mut st = lock(&self.st);
            st.pending.insert(
                id_key(&own),
                Pending::Replay {
                    member: member.to_string(),
                },
            );
            st.initialized
        };
        init["id"] = own;
        self.to_member(member, init.to_string(), None).await;
        if initialized {
            let n = jsonrpc::notification("notifications/initialized", None);
            self.to_member(member, n.to_string(), None).await;
        }
    }
}
