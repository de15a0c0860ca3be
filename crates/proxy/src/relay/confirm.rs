//! Asking the person to confirm a call: through the client, with an
//! `elicitation/create` request of warden's own (sessions before
//! 2026-07-28), or with an `input_required` result the client answers by
//! retrying the call (2026-07-28). A 2026-07-28 confirmation lives in
//! the `requestState` the client holds, sealed ([`crate::seal`]): bound
//! to the tool, the arguments and the asker, expiring, and single use
//! through the engine's state store (shared by replicas on Redis), so
//! any replica can take the retry.

use super::pending::DownPending;
use super::{Relay, clip, lock};
use crate::bearer::Caller;
use crate::govern::{self, APPROVE_INPUT_KEY, CONFIRM_INPUT_KEY};
use crate::jsonrpc::{self, id_key};
use crate::metrics::ConfirmationOutcome;
use crate::raw::Message;
use crate::seal::SealKey;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use warden_engine::{CallContext, Decided};

/// How long a 2026-07-28 confirmation stays answerable.
const MRTR_CONFIRM_TTL: Duration = Duration::from_secs(600);
const CONFIRM_STATE_PREFIX: &str = "warden-confirm:";
/// The purpose a confirmation's state is sealed for (see [`crate::seal`]).
const SEAL_PURPOSE: &str = "warden 2026-07-28 confirmation";

/// What a 2026-07-28 confirmation's `requestState` carries, sealed: the
/// call as first sent (the retry's params are not trusted), who was
/// asked, until when, and a random id that makes it single use.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SealedConfirm {
    /// Random: the single-use mark.
    n: String,
    tool: String,
    /// The bearer principal it was asked of (`None` without bearer auth:
    /// then the unguessable state alone names the asker).
    owner: Option<String>,
    /// The call's params as first sent, without `_meta`.
    params: Value,
    /// Expiry, milliseconds since the Unix epoch.
    exp: i64,
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `requestState` of a confirmation asked now of `owner` for the
/// call `params` of `tool`.
fn seal_confirm(
    key: &SealKey,
    tool: &str,
    params: Value,
    owner: Option<String>,
    now: i64,
) -> String {
    let state = SealedConfirm {
        n: uuid::Uuid::new_v4().simple().to_string(),
        tool: tool.to_string(),
        owner,
        params,
        exp: now.saturating_add(i64::try_from(MRTR_CONFIRM_TTL.as_millis()).unwrap_or(i64::MAX)),
    };
    let json = serde_json::to_vec(&state).expect("a JSON value serializes");
    format!("{CONFIRM_STATE_PREFIX}{}", key.seal(SEAL_PURPOSE, &json))
}

/// The confirmation `state` holds, when this key sealed it, it has not
/// expired, and it is for this tool, these arguments and this asker.
/// Nothing is used up here: a retry for another call, another caller or
/// after expiry consumes nothing (finding 12).
fn open_confirm(
    key: &SealKey,
    state: &str,
    tool: &str,
    owner: &Option<String>,
    arguments: &Value,
    now: i64,
) -> Result<SealedConfirm, &'static str> {
    let plain = state
        .strip_prefix(CONFIRM_STATE_PREFIX)
        .and_then(|s| key.open(SEAL_PURPOSE, s))
        .ok_or(if key.is_process_key() {
            "warden cannot open this confirmation: it was not issued by this warden process (replicas need a shared `confirm_key`), or it was changed"
        } else {
            "warden cannot open this confirmation: it was not issued with this warden's `confirm_key`, or it was changed"
        })?;
    let c: SealedConfirm =
        serde_json::from_slice(&plain).map_err(|_| "warden cannot read this confirmation")?;
    let args = c.params.get("arguments").cloned().unwrap_or(json!({}));
    if c.exp <= now {
        Err("this confirmation expired")
    } else if c.tool != tool || c.owner != *owner || args != *arguments {
        Err("this confirmation is for another call")
    } else {
        Ok(c)
    }
}

/// The person's answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Accept,
    /// Approved on warden's approval page (URL-mode elicitation): the
    /// approval made the grant the call is decided again with.
    ApprovedOnPage,
    Decline,
    Cancel,
    TimedOut,
    Failed(String),
    CallCancelled,
}

impl Answer {
    /// How the confirmation went, as metrics and spans say it.
    pub(super) fn outcome(&self) -> ConfirmationOutcome {
        match self {
            Answer::Accept | Answer::ApprovedOnPage => ConfirmationOutcome::Accepted,
            Answer::Decline => ConfirmationOutcome::Declined,
            Answer::Cancel => ConfirmationOutcome::Dismissed,
            Answer::TimedOut => ConfirmationOutcome::TimedOut,
            Answer::Failed(_) => ConfirmationOutcome::Failed,
            Answer::CallCancelled => ConfirmationOutcome::Cancelled,
        }
    }

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
        let refuse = |why: String| -> Message {
            jsonrpc::error(
                client_id.clone(),
                jsonrpc::INVALID_PARAMS,
                format!("{why}; call the tool again"),
                None,
            )
            .into()
        };
        let now = unix_millis();
        let confirm = open_confirm(&self.cfg.confirm_key, state, tool, &owner, &arguments, now)
            .map_err(|why| refuse(why.to_string()))?;
        // Single use, across replicas when the state store is shared: the
        // mark lives as long as the confirmation could still be answered.
        let left = Duration::from_millis(u64::try_from(confirm.exp - now).unwrap_or(0));
        match self
            .engine
            .use_once(&format!("confirm:{}", confirm.n), left)
        {
            Ok(true) => {}
            Ok(false) => return Err(refuse("this confirmation was answered already".into())),
            Err(e) => {
                return Err(refuse(format!(
                    "warden cannot check that this confirmation is answered once: state store unavailable: {e}"
                )));
            }
        }
        let answer = params
            .get("inputResponses")
            .and_then(|r| r.get(CONFIRM_INPUT_KEY))
            .and_then(|r| r.get("action"))
            .and_then(Value::as_str)
            .map(str::to_string);
        // Forward the call as first decided, with any state of the
        // upstream's own the retry carried.
        let mut original = confirm.params;
        if let (Some(o), Some(m)) = (original.as_object_mut(), params.get("_meta")) {
            o.insert("_meta".into(), m.clone());
        }
        Ok(Some((
            original,
            answer.unwrap_or_else(|| "missing".to_string()),
        )))
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

    /// Asks the person by URL-mode elicitation (2025-11-25) to decide on
    /// warden's approval page (`link`, approval `id`), and holds the call
    /// until the page's decision, the client's refusal to open it, the
    /// confirmation timeout or the call's cancellation. The client is told
    /// when the interaction is complete.
    pub(super) async fn ask_by_url(
        &self,
        page: &crate::approvals::Approvals,
        id: &str,
        link: &str,
        message: String,
        client_id: &Value,
        cancel: &CancellationToken,
    ) -> Answer {
        use crate::approvals::Status;
        let Some(mut status) = page.watch(id) else {
            return Answer::Failed("the approval is gone".into());
        };
        let req_id = self.own_id();
        let key = id_key(&req_id);
        let (tx, mut rx) = oneshot::channel();
        lock(&self.st)
            .pending
            .insert_down(key.clone(), DownPending::Own(tx));
        self.send_client_for(
            jsonrpc::request(
                req_id.clone(),
                "elicitation/create",
                json!({"mode": "url", "elicitationId": id, "url": link, "message": message}),
            ),
            Some(client_id.clone()),
        )
        .await;
        let deadline = tokio::time::sleep(self.cfg.confirm_timeout);
        tokio::pin!(deadline);
        // A decision taken on another replica's page reaches this one
        // through the shared state store.
        let mut look = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut opened = false;
        let answer = loop {
            tokio::select! {
                r = &mut rx, if !opened => match r {
                    // Accept: the person agreed to open the page; the
                    // decision is the page's.
                    Ok(resp) => match read_elicit_answer(&resp) {
                        Answer::Accept => opened = true,
                        other => break other,
                    },
                    Err(_) => break Answer::Failed("the client went away".into()),
                },
                changed = status.changed() => {
                    if changed.is_err() {
                        break Answer::Failed("the approval is gone".into());
                    }
                    match &*status.borrow() {
                        Status::Pending => {}
                        Status::Approved { .. } => break Answer::ApprovedOnPage,
                        Status::Refused { .. } => break Answer::Decline,
                    }
                },
                _ = look.tick() => page.refresh(id),
                () = &mut deadline => break Answer::TimedOut,
                () = cancel.cancelled() => break Answer::CallCancelled,
            }
        };
        if !opened {
            lock(&self.st).pending.take_down(&key);
        }
        if !matches!(answer, Answer::ApprovedOnPage) {
            page.withdraw(id, "the call stopped waiting for it");
        }
        self.send_client_for(
            jsonrpc::notification(
                "notifications/elicitation/complete",
                Some(json!({"elicitationId": id})),
            ),
            Some(client_id.clone()),
        )
        .await;
        answer
    }

    /// 2026-07-28 with URL-mode elicitation: answers with `input_required`
    /// whose request sends the person to warden's approval page. There is
    /// no state to hand back: the client's retry is decided afresh, and
    /// goes through on the grant the approval made (or asks again).
    pub(super) fn ask_stateless_url(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        opened: &crate::approvals::Opened,
        message: String,
    ) -> Value {
        self.audit(call, decided, None);
        jsonrpc::result(
            client_id.clone(),
            json!({
                "resultType": "input_required",
                "inputRequests": {
                    APPROVE_INPUT_KEY: {
                        "method": "elicitation/create",
                        "params": {"mode": "url", "elicitationId": opened.id,
                                   "url": opened.link, "message": message},
                    }
                },
            }),
        )
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
        // Sealed: the client holds it but can neither read nor change it,
        // and any replica with the same key can take the retry.
        let mut params = msg.get("params").cloned().unwrap_or(json!({}));
        if let Some(p) = params.as_object_mut() {
            p.remove("_meta");
        }
        let handle = seal_confirm(
            &self.cfg.confirm_key,
            &call.tool,
            params,
            owner,
            unix_millis(),
        );
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
