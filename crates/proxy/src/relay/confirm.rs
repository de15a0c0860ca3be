//! Asking the person to confirm a call: through the client, with an
//! `elicitation/create` request of warden's own (sessions before
//! 2026-07-28), or with an `input_required` result the client answers by
//! retrying the call (2026-07-28). The confirmations a 2026-07-28 client
//! still holds are in a [`ConfirmStore`], reached only through its
//! methods: random handles, bound to the tool, the arguments and the
//! asker, single-use, expiring and bounded.

use super::pending::DownPending;
use super::{Relay, clip, lock};
use crate::bearer::Caller;
use crate::govern::{self, CONFIRM_INPUT_KEY};
use crate::jsonrpc::{self, id_key};
use crate::raw::Message;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use warden_engine::{CallContext, Decided};

/// How long a 2026-07-28 confirmation stays answerable.
const MRTR_CONFIRM_TTL: Duration = Duration::from_secs(600);
/// Most pending 2026-07-28 confirmations kept.
const MAX_PENDING_CONFIRMS: usize = 1024;
const CONFIRM_STATE_PREFIX: &str = "warden-confirm:";

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

/// The 2026-07-28 confirmations not answered yet, by handle.
#[derive(Default)]
pub(super) struct ConfirmStore {
    pending: HashMap<String, PendingConfirm>,
}

impl ConfirmStore {
    /// Keeps a confirmation asked at `now` under `handle`: expired ones
    /// go first, and the store never holds more than its bound.
    fn insert(
        &mut self,
        handle: String,
        call: &CallContext,
        params: Value,
        owner: Option<String>,
        now: Instant,
    ) {
        self.pending.retain(|_, p| p.expires > now);
        if self.pending.len() >= MAX_PENDING_CONFIRMS
            && let Some(k) = self.pending.keys().next().cloned()
        {
            self.pending.remove(&k);
        }
        self.pending.insert(
            handle,
            PendingConfirm {
                tool: call.tool.clone(),
                arguments: call.arguments.clone(),
                params,
                expires: now + MRTR_CONFIRM_TTL,
                owner,
            },
        );
    }

    /// The call's params as first sent, when `handle` names an unexpired
    /// confirmation for this tool, these arguments and this asker; it is
    /// used up. Checked before it is taken: a retry for another call,
    /// another caller or after expiry consumes nothing (finding 12).
    fn take(
        &mut self,
        handle: &str,
        tool: &str,
        owner: &Option<String>,
        arguments: &Value,
        now: Instant,
    ) -> Option<Value> {
        let matches = self.pending.get(handle).is_some_and(|p| {
            p.expires > now && p.tool == tool && p.owner == *owner && *arguments == p.arguments
        });
        if matches {
            self.pending.remove(handle).map(|p| p.params)
        } else {
            None
        }
    }
}

/// The person's answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Accept,
    Decline,
    Cancel,
    TimedOut,
    Failed(String),
    CallCancelled,
}

impl Answer {
    /// The action a 2026-07-28 retry carried.
    pub(super) fn of_retry(action: &str) -> Answer {
        match action {
            "accept" => Answer::Accept,
            "decline" => Answer::Decline,
            "cancel" => Answer::Cancel,
            other => Answer::Failed(format!("the client answered `{other}`")),
        }
    }
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

impl Relay {
    /// A 2026-07-28 retry that answers warden's own confirmation: the
    /// call's params as first decided (with the retry's `_meta`, which may
    /// carry state of the upstream's own) and the person's answer.
    /// `Ok(None)`: the call is no such retry. `Err`: the answer for a
    /// confirmation warden does not hold (or not for this call).
    pub(super) fn confirmed_retry(
        &self,
        params: &Map<String, Value>,
        tool: &str,
        caller: Option<&Caller>,
        client_id: &Value,
    ) -> Result<Option<(Value, String)>, Message> {
        let Some(state) = params.get("requestState").and_then(Value::as_str) else {
            return Ok(None);
        };
        if !state.starts_with(CONFIRM_STATE_PREFIX) {
            return Ok(None);
        }
        let owner = caller.map(|c| c.user.clone());
        let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
        let pending = lock(&self.st)
            .confirms
            .take(state, tool, &owner, &arguments, Instant::now());
        let answer = params
            .get("inputResponses")
            .and_then(|r| r.get(CONFIRM_INPUT_KEY))
            .and_then(|r| r.get("action"))
            .and_then(Value::as_str)
            .map(str::to_string);
        match pending {
            Some(mut original) => {
                // Forward the call as first decided, with any state of
                // the upstream's own it carried then.
                if let (Some(o), Some(m)) = (original.as_object_mut(), params.get("_meta")) {
                    o.insert("_meta".into(), m.clone());
                }
                Ok(Some((
                    original,
                    answer.unwrap_or_else(|| "missing".to_string()),
                )))
            }
            None => Err(jsonrpc::error(
                client_id.clone(),
                jsonrpc::INVALID_PARAMS,
                "warden does not know this confirmation (it expired, was answered, or is for another call); call the tool again",
                None,
            )
            .into()),
        }
    }

    /// Asks the person through the client (elicitation/create).
    pub(super) async fn ask_person(
        &self,
        question: String,
        client_id: &Value,
        cancel: &CancellationToken,
    ) -> Answer {
        let id = self.own_id();
        let key = id_key(&id);
        let (tx, rx) = oneshot::channel();
        lock(&self.st)
            .pending
            .insert_down(key.clone(), DownPending::Own(tx));
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
            lock(&self.st).pending.take_down(&key);
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
    pub(super) fn ask_stateless(
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
        lock(&self.st)
            .confirms
            .insert(handle.clone(), call, params, owner, Instant::now());
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
}

#[cfg(test)]
mod tests;
