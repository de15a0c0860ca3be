//! A governed `tools/call`, in phases: resolve (who calls which tool of
//! which server; a 2026-07-28 retry answering warden's confirmation), the
//! call's context (with the tool's annotations from the catalog), decide
//! under the decide lock (an allowed call goes to `relay::forward`, a
//! denied one is logged and answered), ask the person when a rule wants a
//! confirmation (`relay::confirm`), and carry the answer out: decided again
//! with the confirmation, or refused saying why.

use super::confirm::Answer;
use super::context::ReqCtx;
use super::{Relay, lock};
use crate::bearer::Caller;
use crate::govern::{self, ToolInfo};
use crate::jsonrpc::{self, id_key};
use crate::metrics::ConfirmationOutcome;
use crate::raw::Message;
use crate::traces::CallTrace;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use warden_engine::{CallContext, Confirmation, Decided, Denial, Outcome, Retry};

/// What a call is, once resolved.
struct Resolved {
    tool: String,
    server: String,
    ctx: ReqCtx,
    /// A 2026-07-28 retry's answer to warden's confirmation.
    confirmed_answer: Option<String>,
}

/// One governed call as its phases see it.
pub(super) struct Governed<'a> {
    pub(super) client_id: &'a Value,
    pub(super) cancel: &'a CancellationToken,
    pub(super) caller: Option<Arc<Caller>>,
    pub(super) ctx: ReqCtx,
    pub(super) call: CallContext,
    pub(super) info: ToolInfo,
    /// The call's spans (nothing while traces are off).
    pub(super) trace: &'a CallTrace,
    /// The person just said yes: an allowed decision creates the grants
    /// of the confirmed rules.
    pub(super) fresh_yes: bool,
}

/// What one decision left to do.
enum Decision {
    /// Carried out (forwarded, or denied and logged): the answer, `None`
    /// when the client cancelled the call.
    Done(Option<Message>),
    /// A rule wants the person's confirmation.
    Confirm(Box<ToConfirm>),
}

/// A call a rule wants the person to confirm.
struct ToConfirm {
    msg: Message,
    decided: Decided,
    confirmation: Confirmation,
}

impl Relay {
    pub(super) async fn governed_call(
        self: Arc<Self>,
        msg: Message,
        client_id: Value,
        cancel: CancellationToken,
        caller: Option<Arc<Caller>>,
    ) {
        let started = std::time::Instant::now();
        let trace = match &self.cfg.traces {
            Some(t) => t.start_call(&msg, &self.session_id),
            None => CallTrace::default(),
        };
        let reply = self.govern(msg, &client_id, &cancel, caller, &trace).await;
        if let Some(m) = &self.cfg.metrics {
            m.record_call(started.elapsed());
        }
        lock(&self.st).pending.remove_client(&id_key(&client_id));
        let reply = reply.filter(|_| !cancel.is_cancelled());
        trace.finish(reply.as_deref());
        if let Some(reply) = reply {
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
        trace: &CallTrace,
    ) -> Option<Message> {
        let resolved = match self.resolve(&mut msg, client_id, caller.as_deref()).await {
            Ok(r) => r,
            Err(reply) => return Some(reply),
        };
        let (call, info) = self.call_of(&msg, &resolved, caller.as_deref()).await;
        if !trace.argument_names().is_empty() {
            trace.arguments(&self.log.logged_arguments(&call.arguments));
        }
        let mut g = Governed {
            client_id,
            cancel,
            caller,
            ctx: resolved.ctx,
            call,
            info,
            trace,
            fresh_yes: false,
        };
        let (msg, decided, confirmation) = match self.decide(msg, &mut g).await {
            Decision::Done(reply) => return reply,
            Decision::Confirm(c) => {
                let ToConfirm {
                    msg,
                    decided,
                    confirmation,
                } = *c;
                (msg, decided, confirmation)
            }
        };
        let answer = match self
            .ask(resolved.confirmed_answer, &msg, &g, &decided, &confirmation)
            .await
        {
            Ok(a) => a,
            Err(reply) => return Some(reply),
        };
        self.carry_out(answer, msg, &mut g, &decided, &confirmation)
            .await
    }

    /// Phase 1: the tool and the server the call is for, and who calls.
    /// A 2026-07-28 retry that answers warden's confirmation gets its
    /// params as first decided (in `msg`).
    async fn resolve(
        &self,
        msg: &mut Message,
        client_id: &Value,
        caller: Option<&Caller>,
    ) -> Result<Resolved, Message> {
        // Fail closed: with bearer auth on, a call without a verified
        // identity is never decided as the operator's user.
        if self.cfg.bearer.is_some() && caller.is_none() {
            return Err(jsonrpc::error(
                client_id.clone(),
                jsonrpc::INVALID_REQUEST,
                "warden requires a verified bearer token for this call",
                None,
            )
            .into());
        }
        let Some(params) = msg.get("params").and_then(Value::as_object) else {
            return Err(
                invalid_params(client_id, "tools/call needs params with a tool `name`").into(),
            );
        };
        let Some(tool) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(
                invalid_params(client_id, "tools/call needs a tool `name` (a string)").into(),
            );
        };
        // The server the call is for must be known before anything else
        // (finding 3): never a guess from the command's file name.
        let Some(server) = self.attributed_server(msg).await else {
            return Err(self.unattributed(client_id).into());
        };
        let ctx = self.req_ctx(msg);

        // A 2026-07-28 retry that answers warden's own confirmation.
        let mut confirmed_answer = None;
        if ctx.stateless
            && let Some((original, answer)) =
                self.confirmed_retry(params, &tool, caller, client_id)?
        {
            if let Some(obj) = msg.edit(&[&["params"]]).as_object_mut() {
                obj.insert("params".into(), original);
            }
            confirmed_answer = Some(answer);
        }
        // A 2026-07-28 retry after warden's approval page: its answer to
        // warden's own input request is warden's, not the upstream's.
        if ctx.stateless {
            take_approve_response(msg);
        }
        Ok(Resolved {
            tool,
            server,
            ctx,
            confirmed_answer,
        })
    }

    /// Phase 2: the context the call is decided in, and what the catalog
    /// knows of its tool.
    async fn call_of(
        &self,
        msg: &Value,
        r: &Resolved,
        caller: Option<&Caller>,
    ) -> (CallContext, ToolInfo) {
        let info = self.tool_info(&r.tool, &r.ctx).await;
        let mut call = self.call_template(&r.server, r.ctx.agent.clone(), caller);
        call.tool = r.tool.clone();
        call.annotations = info.annotations;
        call.arguments = msg
            .pointer("/params/arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        (call, info)
    }

    /// Phase 3: decides the call under the decide lock; an allowed call is
    /// forwarded (the lock held until it counts), a denied one logged and
    /// answered.
    async fn decide(&self, msg: Message, g: &mut Governed<'_>) -> Decision {
        // A tool whose definition is not the pinned one is refused before
        // anything is decided (no slot held, no label set); shadow mode
        // logs the refusal it would make and decides as usual.
        if let Some((reason, instead)) = g.info.pin.refusal(&g.call.tool) {
            if !self.cfg.shadow_all {
                let previewed = self.engine.preview(&g.call);
                return Decision::Done(Some(self.refuse_by_warden(
                    g.client_id,
                    &g.call,
                    &previewed,
                    reason,
                    instead,
                )));
            }
            tracing::info!("shadow mode: {reason}");
        }
        let started = SystemTime::now();
        let guard = self.decide_lock.lock().await;
        let mut decided = self.engine.decide(&g.call);
        self.apply_grants(g, &mut decided);
        g.trace.decided(
            started,
            &g.call,
            &decided,
            || lock(&self.st).tools.lists(&g.call.tool),
            self.cfg.shadow_all,
        );
        // Global shadow mode: what would be refused or asked is logged as
        // such (the log line says `"mode": "shadow"`) and forwarded.
        let enforced = !self.cfg.shadow_all;
        if !enforced || matches!(decided.outcome, Outcome::Allow { .. }) {
            return Decision::Done(
                self.forward(
                    guard,
                    msg,
                    g.client_id,
                    &g.call,
                    &decided,
                    g.cancel,
                    g.trace,
                )
                .await,
            );
        }
        let confirmation = match &decided.outcome {
            Outcome::Allow { .. } => unreachable!("forwarded above"),
            Outcome::Deny(d) => {
                drop(guard);
                self.audit(&g.call, &decided, None);
                return Decision::Done(Some(
                    self.deny_reply(g.client_id, &decided, d, g.info).into(),
                ));
            }
            Outcome::Confirm(c) => c.clone(),
        };
        drop(guard);
        Decision::Confirm(Box::new(ToConfirm {
            msg,
            decided,
            confirmation,
        }))
    }

    /// Phase 4: the person's answer to the confirmation. `Err`: the answer
    /// for the client instead (it cannot ask; or, 2026-07-28, the
    /// `input_required` result that asks).
    async fn ask(
        &self,
        confirmed_answer: Option<String>,
        msg: &Message,
        g: &Governed<'_>,
        decided: &Decided,
        confirmation: &Confirmation,
    ) -> Result<Answer, Message> {
        let tool = &g.call.tool;
        let page = self.cfg.approvals.as_ref();
        if let Some((rule, by)) = confirmation.approvers.first() {
            // Four eyes: the caller's own yes is not the approval the rule
            // asks for; only the approval page, with bearer auth telling
            // the approver apart from the caller, can take it.
            if let Some(page) = page.filter(|p| p.authenticates()) {
                return Err(self.await_approval(page, g, decided, confirmation));
            }
            self.count_confirmation(g.trace, ConfirmationOutcome::Unsupported);
            let who = by.who();
            let why = if page.is_some() {
                "and without bearer authentication warden cannot tell another person from the caller"
            } else {
                "and this warden serves no approval page where they could give it (it runs on stdio)"
            };
            let denial = Denial {
                rules: confirmation.rules.clone(),
                reason: format!(
                    "`{tool}` was not called: it needs the approval of {who} (rule `{rule}`), someone other than the caller, {why}"
                ),
                retry: Retry::Never,
                instead: format!(
                    "do not retry; tell the person that this call needs the approval of {who}, which this warden cannot collect"
                ),
            };
            return Err(self
                .refuse(g.client_id, &g.call, decided, denial, g.info)
                .into());
        }
        if let Some(a) = confirmed_answer {
            Ok(Answer::of_retry(&a))
        } else if !g.ctx.elicitation_form
            && g.ctx.elicitation_url
            && let Some(page) = page
        {
            // URL-mode elicitation: the client opens warden's page out of
            // band (neither it nor the model sees what is entered there),
            // and the call waits for the page's decision.
            let opened = self.open_approval(page, g, decided, confirmation)?;
            self.count_confirmation(g.trace, ConfirmationOutcome::Asked);
            let message = format!(
                "warden asks you to approve a call on its approval page: {}",
                confirmation.message
            );
            if g.ctx.stateless {
                return Err(self
                    .ask_stateless_url(g.client_id, &g.call, decided, &opened, message)
                    .into());
            }
            let wait = g.trace.confirmation_wait();
            let answer = self
                .ask_by_url(
                    page,
                    &opened.id,
                    &opened.link,
                    message,
                    g.client_id,
                    g.cancel,
                )
                .await;
            wait.end(answer.outcome().label());
            Ok(answer)
        } else if !g.ctx.elicitation_form
            && let Some(page) = page
        {
            // The client cannot ask its person: the approval page can.
            Err(self.await_approval(page, g, decided, confirmation))
        } else if !g.ctx.elicitation_form {
            self.count_confirmation(g.trace, ConfirmationOutcome::Unsupported);
            let denial = Denial {
                rules: confirmation.rules.clone(),
                reason: format!(
                    "`{tool}` was not called: it requires the person's confirmation (rule {}: {}), and this MCP client cannot ask for it (it did not declare the elicitation capability)",
                    rules_text(confirmation),
                    confirmation.message
                ),
                retry: Retry::Never,
                instead: "ask the person to make this call themselves, or to use an MCP client that supports elicitation so warden can ask them".to_string(),
            };
            Err(self
                .refuse(g.client_id, &g.call, decided, denial, g.info)
                .into())
        } else if g.ctx.stateless {
            self.count_confirmation(g.trace, ConfirmationOutcome::Asked);
            Err(self
                .ask_stateless(
                    g.client_id,
                    &g.call,
                    decided,
                    &confirmation.message,
                    msg,
                    g.caller.as_ref().map(|c| c.user.clone()),
                )
                .into())
        } else {
            let question = govern::confirm_message(&g.call, &confirmation.message, &decided.id);
            self.count_confirmation(g.trace, ConfirmationOutcome::Asked);
            let wait = g.trace.confirmation_wait();
            let answer = self.ask_person(question, g.client_id, g.cancel).await;
            wait.end(answer.outcome().label());
            Ok(answer)
        }
    }

    /// Phase 5: carries the person's answer out. A yes decides the call
    /// again with the confirmation given; anything else refuses it, saying
    /// what the person did (nothing is answered when the client cancelled).
    async fn carry_out(
        &self,
        answer: Answer,
        msg: Message,
        g: &mut Governed<'_>,
        decided: &Decided,
        confirmation: &Confirmation,
    ) -> Option<Message> {
        let tool = g.call.tool.clone();
        let rules_text = rules_text(confirmation);
        self.count_confirmation(g.trace, answer.outcome());
        let (reason, instead) = match answer {
            Answer::Accept | Answer::ApprovedOnPage => {
                // A yes in the chat confirms the call itself; an approval
                // on the page made the grant the call is decided with.
                if matches!(answer, Answer::Accept) {
                    g.call.confirmed = confirmation.rules.iter().map(|h| h.rule.clone()).collect();
                    g.fresh_yes = true;
                }
                return match self.decide(msg, g).await {
                    Decision::Done(reply) => reply,
                    Decision::Confirm(again) => {
                        let ToConfirm {
                            decided,
                            confirmation: c,
                            ..
                        } = *again;
                        let denial = Denial {
                            rules: c.rules.clone(),
                            reason: format!(
                                "`{tool}` was not called: it still needs a confirmation after the person gave one ({})",
                                c.message
                            ),
                            retry: Retry::Never,
                            instead: "report this to the platform team; the policies ask for a confirmation warden cannot record".to_string(),
                        };
                        Some(
                            self.refuse(g.client_id, &g.call, &decided, denial, g.info)
                                .into(),
                        )
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
                let d = govern::as_denial(decided, denial);
                self.audit(&g.call, &d, None);
                return None;
            }
        };
        let denial = Denial {
            rules: confirmation.rules.clone(),
            reason: format!("`{tool}` was not called: {reason}"),
            retry: Retry::Never,
            instead,
        };
        Some(
            self.refuse(g.client_id, &g.call, decided, denial, g.info)
                .into(),
        )
    }

    /// Grants, under the decide lock. A call that would ask the caller is
    /// confirmed instead by live grants of an earlier yes, when every rule
    /// that asks has one (decided again with them, one use of each taken);
    /// a call the person just confirmed creates the grants its rules give.
    /// A store that fails means asking (and no grant): never a call let
    /// through that the person did not approve.
    fn apply_grants(&self, g: &mut Governed<'_>, decided: &mut Decided) {
        if g.fresh_yes {
            if decided.is_allow() {
                let (made, failed) = self.engine.create_grants(&g.call, &g.call.confirmed, true);
                for (rule, e) in failed {
                    tracing::warn!("the grant of rule `{rule}` was not kept: {e}");
                }
                decided.grants = made;
            }
            return;
        }
        let Outcome::Confirm(c) = &decided.outcome else {
            return;
        };
        // A rule another person approves is covered only by a grant of
        // theirs (the approval page's): the caller's own yes makes none.
        match self.engine.use_grants(&g.call, c) {
            Ok(Some(uses)) => {
                let mut call = g.call.clone();
                call.confirmed = c.rules.iter().map(|h| h.rule.clone()).collect();
                let mut again = self.engine.decide(&call);
                again.grants = uses;
                g.call = call;
                *decided = again;
                self.count_confirmation(g.trace, ConfirmationOutcome::Granted);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("grants could not be read (the person is asked): {e}"),
        }
    }

    /// A step of a confirmation, in the metrics and on the call's span.
    pub(super) fn count_confirmation(&self, trace: &CallTrace, outcome: ConfirmationOutcome) {
        if let Some(m) = &self.cfg.metrics {
            m.record_confirmation(outcome);
        }
        trace.confirmation(outcome.label());
    }
}

/// The rules that want a confirmation, for messages: "`a`, `b`".
pub(super) fn rules_text(confirmation: &Confirmation) -> String {
    confirmation
        .rules
        .iter()
        .map(|h| format!("`{}`", h.rule))
        .collect::<Vec<_>>()
        .join(", ")
}

fn invalid_params(id: &Value, message: &str) -> Value {
    jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, message, None)
}

/// Removes `params.inputResponses["warden/approve"]` (and an
/// `inputResponses` left empty) from a message, changing nothing else.
fn take_approve_response(msg: &mut Message) {
    let pointer = format!(
        "/params/inputResponses/{}",
        govern::APPROVE_INPUT_KEY.replace('/', "~1")
    );
    if msg.pointer(&pointer).is_none() {
        return;
    }
    let Some(params) = msg
        .edit(&[&["params", "inputResponses"]])
        .get_mut("params")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(Value::Object(responses)) = params.get_mut("inputResponses") {
        responses.remove(govern::APPROVE_INPUT_KEY);
        if responses.is_empty() {
            params.remove("inputResponses");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wardens_own_input_response_is_taken_out() {
        let mut m: Message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t", "inputResponses": {"warden/approve": {"action": "accept"}}}})
        .into();
        take_approve_response(&mut m);
        assert_eq!(m.get("params"), Some(&json!({"name": "t"})));
        let mut m: Message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t", "inputResponses": {
                "warden/approve": {"action": "accept"}, "upstream/x": {"v": 1}}}})
        .into();
        take_approve_response(&mut m);
        assert_eq!(
            m.pointer("/params/inputResponses"),
            Some(&json!({"upstream/x": {"v": 1}}))
        );
        let mut m: Message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t", "inputResponses": {"upstream/x": {}}}})
        .into();
        take_approve_response(&mut m);
        assert_eq!(
            m.pointer("/params/inputResponses"),
            Some(&json!({"upstream/x": {}}))
        );
    }
}
