//! Forwarding an allowed `tools/call`, in phases: stamp it (refused while
//! the decision log is failing; provenance in `_meta`, signed when warden
//! has a key; the write-ahead log line), send it upstream and count it
//! (both under the decide lock, so two calls cannot slip under one cap),
//! wait for the answer (the call timeout moved on by progress; the
//! client's cancellation), and finish: the record the call created, the
//! outcome line in the log, the answer for the client.

use super::pending::UpPending;
use super::pending::progress_token;
use super::{DecideGuard, Relay, clip, lock, secs};
use crate::govern::{self, PROVENANCE_KEY};
use crate::jsonrpc::{self, id_key};
use crate::provenance_token::TOKEN_META_KEY;
use crate::raw::Message;
use crate::traces::{CallTrace, UpstreamSpan};
use serde_json::{Value, json};
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use warden_engine::{CallContext, Decided, UpstreamOutcome};

/// What the upstream will answer on.
type AnswerRx = oneshot::Receiver<Result<Message, String>>;

/// A call sent upstream.
struct Sent {
    rx: AnswerRx,
    up_id: Value,
    up_key: String,
    started: Instant,
    span: UpstreamSpan,
}

/// How a forwarded call's wait for the upstream ended.
enum Waited {
    /// The answer, or why the link says there will be none.
    Answer(Result<Result<Message, String>, oneshot::error::RecvError>),
    Cancelled,
    TimedOut,
}

impl Relay {
    /// Forwards an allowed call with its provenance, counts it, waits for
    /// the upstream's answer and logs the outcome.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forward(
        &self,
        guard: DecideGuard<'_>,
        mut msg: Message,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        cancel: &CancellationToken,
        trace: &CallTrace,
    ) -> Option<Message> {
        let guard = match self.stamp(guard, &mut msg, client_id, call, decided) {
            Ok(guard) => guard,
            Err(reply) => return Some(reply),
        };
        let mut sent = match self
            .send_counted(guard, msg, client_id, call, decided, trace)
            .await
        {
            Ok(sent) => sent,
            Err(reply) => return Some(reply),
        };
        let waited = self.wait_answer(&mut sent.rx, &sent.up_key, cancel).await;
        let duration_ms = sent.started.elapsed().as_millis() as u64;
        let span = std::mem::replace(&mut sent.span, UpstreamSpan::none());
        let (reply, outcome) = match waited {
            Waited::TimedOut => {
                let reply = self.timed_out(sent, client_id, call, duration_ms).await;
                (Some(reply.0), reply.1)
            }
            Waited::Cancelled => (None, self.cancelled(sent, duration_ms).await),
            Waited::Answer(answer) => {
                let (reply, outcome) = self.answered(answer, client_id, call, decided, duration_ms);
                (Some(reply), outcome)
            }
        };
        self.audit(call, decided, Some(&outcome));
        let tool_error = reply
            .as_ref()
            .is_some_and(|r| r.pointer("/result/isError") == Some(&Value::Bool(true)));
        span.end(&outcome, tool_error, trace);
        reply
    }

    /// Phase 1, before anything goes upstream: refused while the decision
    /// log is failing or when provenance cannot be signed; else the
    /// provenance goes into `_meta` and the decision into the log
    /// (write-ahead). The decide lock is let go before a refusal.
    fn stamp<'g>(
        &self,
        guard: DecideGuard<'g>,
        msg: &mut Message,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
    ) -> Result<DecideGuard<'g>, Message> {
        if let Some(why) = self.log_broken() {
            drop(guard);
            return Err(self.refuse_unlogged(client_id, call, decided, &why));
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
                        return Err(
                            self.refuse_by_warden(client_id, call, decided, reason, instead)
                        );
                    }
                }
            }
        };
        if let Some(meta) = jsonrpc::meta_mut(msg.edit(&[
            &["params", "_meta", PROVENANCE_KEY],
            &["params", "_meta", TOKEN_META_KEY],
        ])) {
            meta.insert(PROVENANCE_KEY.into(), govern::provenance(call, decided));
            if let Some(token) = token {
                meta.insert(TOKEN_META_KEY.into(), Value::String(token));
            }
        }
        // Write-ahead: the decision is in the log before the call can go
        // upstream; a log that cannot take it refuses the call.
        self.write_ahead(guard, call, decided)
            .map_err(|why| self.refuse_unlogged(client_id, call, decided, &why))
    }

    /// Phase 2: sends the call upstream with a pending entry of its own,
    /// and counts it, before the decide lock goes. A call that could not
    /// be sent is logged with why and answered.
    async fn send_counted(
        &self,
        guard: DecideGuard<'_>,
        mut msg: Message,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        trace: &CallTrace,
    ) -> Result<Sent, Message> {
        let up_id = self.upstream_id(client_id);
        let up_key = id_key(&up_id);
        msg.set_id(up_id.clone());
        let (tx, rx) = oneshot::channel();
        let started = Instant::now();
        let (listed, sender) = {
            let mut st = lock(&self.st);
            // Read only for traces: the upstream span's name.
            let listed = self.cfg.traces.is_some() && st.tools.lists(&call.tool);
            let sender = match Self::up_sender(&st, false) {
                Some((sender, epoch)) if !st.pending.has_up(&up_key) => {
                    st.pending.insert_up(
                        up_key.clone(),
                        UpPending::governed(
                            epoch,
                            tx,
                            client_id.clone(),
                            self.call_deadline("tools/call"),
                            progress_token(&msg),
                        ),
                    );
                    Ok(sender)
                }
                Some(_) => Err(super::client_side::duplicate_id(client_id.clone())),
                None => Err(self.unavailable(client_id.clone(), &st)),
            };
            (listed, sender)
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
                return Err(reply.into());
            }
        };
        let span = trace.upstream(&mut msg, &call.tool, listed);
        if sender.send(msg.to_string()).await.is_err() {
            let reply = {
                let mut st = lock(&self.st);
                st.pending.remove_up(&up_key);
                self.unavailable(client_id.clone(), &st)
            };
            drop(guard);
            let outcome = UpstreamOutcome {
                ok: false,
                error: Some("the upstream server is not available".into()),
                duration_ms: 0,
            };
            self.audit(call, decided, Some(&outcome));
            span.end(&outcome, false, trace);
            return Err(reply.into());
        }
        self.count_forwarded(call, decided).await;
        drop(guard);
        Ok(Sent {
            rx,
            up_id,
            up_key,
            started,
            span,
        })
    }

    /// Counts the call just sent. A store a round trip away (Redis) is
    /// written on the blocking pool, so the upstream works on the call
    /// meanwhile (on a single-threaded runtime the link sends it only once
    /// this task waits); the decide lock is held until the write is done,
    /// so the session's next call is decided on it, and the answer comes
    /// after it.
    async fn count_forwarded(&self, call: &CallContext, decided: &Decided) {
        let writes = self.engine.forwarded_writes(call, decided);
        if writes.is_empty() {
            return;
        }
        if !self.engine.state_is_remote() {
            let _ = writes.apply();
            return;
        }
        // An error is kept by the engine and retried; the calls that need
        // those counters are denied meanwhile.
        let _ = tokio::task::spawn_blocking(move || writes.apply()).await;
    }

    /// Phase 3: waits for the answer, the client's cancellation or the
    /// call timeout (which progress moves on).
    async fn wait_answer(
        &self,
        rx: &mut AnswerRx,
        up_key: &str,
        cancel: &CancellationToken,
    ) -> Waited {
        let mut at = self.call_deadline("tools/call");
        loop {
            let timeout = async {
                match at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut *rx => break Waited::Answer(r),
                () = cancel.cancelled() => break Waited::Cancelled,
                () = timeout => {
                    // Progress may have moved the deadline; an answer may
                    // have come just now (then `rx` has it).
                    let mut st = lock(&self.st);
                    match st.pending.deadline(up_key) {
                        Some(Some(next)) if next > Instant::now() => at = Some(next),
                        Some(_) => {
                            st.pending.remove_up(up_key);
                            drop(st);
                            break Waited::TimedOut;
                        }
                        None => at = None,
                    }
                }
            }
        }
    }

    /// Phase 4, no answer in time: the upstream is asked to cancel; the
    /// client's answer and the outcome to log.
    async fn timed_out(
        &self,
        sent: Sent,
        client_id: &Value,
        call: &CallContext,
        duration_ms: u64,
    ) -> (Message, UpstreamOutcome) {
        tracing::warn!(
            "upstream did not answer `{}` call {client_id} in time; cancelled",
            call.tool
        );
        self.cancel_up(sent.up_id).await;
        let outcome = UpstreamOutcome {
            ok: false,
            error: Some(format!(
                "timed out: no answer within {} s",
                secs(self.cfg.call_timeout)
            )),
            duration_ms,
        };
        (self.timeout_error(client_id.clone()).into(), outcome)
    }

    /// Phase 4, the client cancelled, or its session ended (the client
    /// went away, the session was closed or timed out, warden is stopping):
    /// so is the upstream's request; the outcome to log says which
    /// (nothing is answered).
    async fn cancelled(&self, sent: Sent, duration_ms: u64) -> UpstreamOutcome {
        let (reason, logged) = if self.ending.load(std::sync::atomic::Ordering::SeqCst) {
            (
                "the client's session ended",
                "cancelled: the session ended before the upstream answered",
            )
        } else {
            ("the client cancelled the call", "cancelled by the client")
        };
        lock(&self.st).pending.remove_up(&sent.up_key);
        self.notify_up(jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": sent.up_id, "reason": reason})),
        ))
        .await;
        UpstreamOutcome {
            ok: false,
            error: Some(logged.into()),
            duration_ms,
        }
    }

    /// Phase 4, an answer (or why there is none): a record the call
    /// created is stored before the reply goes out; the reply and the
    /// outcome to log.
    fn answered(
        &self,
        answer: Result<Result<Message, String>, oneshot::error::RecvError>,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        duration_ms: u64,
    ) -> (Message, UpstreamOutcome) {
        match answer {
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
                resp.set_id(client_id.clone());
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
        }
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
