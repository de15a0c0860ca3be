//! The relay's decision-log writes and the refusals that go with them:
//! every line a call leaves in the log (the decision, the write-ahead line
//! of a forwarded call, its outcome) is written here, and so is the
//! "log broken" state that keeps calls from being forwarded while the log
//! cannot take them. A refusal is logged, then answered as a `tools/call`
//! result that says why.
//!
//! Each write returns once its line is flushed to the OS (and, with
//! `--audit-log-fsync` / `decision_log_fsync`, synced), like every line
//! before the group commit: the outcome and refusal lines too, before the
//! reply goes out. Waiting for an fsync takes milliseconds; on a
//! multi-threaded runtime the wait lets the worker's other tasks move to
//! another thread (`block_in_place`), so that the calls of other sessions
//! reach the log meanwhile and share the next fsync.

use super::{DecideGuard, Relay, lock};
use crate::govern::{self, ToolInfo};
use crate::jsonrpc;
use crate::raw::Message;
use serde_json::Value;
use warden_engine::{CallContext, Decided, Denial, Retry, UpstreamOutcome};

impl Relay {
    /// Writes a decision to the log. A failed write marks the log broken
    /// (calls are refused until a write succeeds again).
    /// With an upstream outcome, the line appended after the write-ahead
    /// decision line of a forwarded call.
    pub(super) fn audit(
        &self,
        call: &CallContext,
        decided: &Decided,
        upstream: Option<&UpstreamOutcome>,
    ) {
        let result = self.waiting_for_log(|| match upstream {
            Some(outcome) => self.log.write_outcome(decided, outcome),
            None => self.log.write(call, decided, None),
        });
        let mut st = lock(&self.st);
        if let Some(m) = &self.cfg.metrics {
            match (upstream, &result) {
                (_, Err(_)) => m.record_log_error(),
                (Some(outcome), Ok(())) => m.record_upstream(&call.server, outcome),
                (None, Ok(())) => m.record_decision(
                    call,
                    decided,
                    st.tools.lists(&call.tool),
                    self.cfg.shadow_all,
                ),
            }
        }
        match result {
            Ok(()) => st.audit_broken = None,
            Err(e) => {
                tracing::error!("decision {} was not logged: {e}", decided.id);
                st.audit_broken = Some(e.to_string());
            }
        }
    }

    /// Runs a log write, which may wait for an fsync: on a multi-threaded
    /// runtime, without holding up the worker's other tasks.
    fn waiting_for_log<T>(&self, write: impl FnOnce() -> T) -> T {
        let multi_thread = self.log.fsyncs()
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(write)
        } else {
            write()
        }
    }

    /// Why the decision log failed last, while it is failing.
    pub(super) fn log_broken(&self) -> Option<String> {
        lock(&self.st).audit_broken.clone()
    }

    /// Write-ahead: the decision of a call about to go upstream, logged
    /// first, under the decide lock (`guard`, given back). A failed write
    /// lets the lock go, marks the log broken and says why.
    pub(super) fn write_ahead<'g>(
        &self,
        guard: DecideGuard<'g>,
        call: &CallContext,
        decided: &Decided,
    ) -> Result<DecideGuard<'g>, String> {
        let written = self.waiting_for_log(|| self.log.write_decision(call, decided));
        if let Some(m) = &self.cfg.metrics {
            match &written {
                Ok(()) => {
                    let listed = lock(&self.st).tools.lists(&call.tool);
                    m.record_decision(call, decided, listed, self.cfg.shadow_all);
                }
                Err(_) => m.record_log_error(),
            }
        }
        if let Err(e) = written {
            drop(guard);
            tracing::error!("decision {} was not logged: {e}", decided.id);
            lock(&self.st).audit_broken = Some(e.to_string());
            return Err(e.to_string());
        }
        Ok(guard)
    }

    /// Refuses a call for a reason of warden's own (not a rule's): the
    /// same call would be refused again until an operator acts.
    pub(super) fn refuse_by_warden(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        reason: String,
        instead: &str,
    ) -> Message {
        let denial = Denial {
            rules: Vec::new(),
            reason,
            retry: Retry::Never,
            instead: instead.to_string(),
        };
        let info = lock(&self.st).tools.get(&call.tool);
        self.refuse(client_id, call, decided, denial, info).into()
    }

    /// Refuses a call because its decision cannot be logged (`why`).
    pub(super) fn refuse_unlogged(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        why: &str,
    ) -> Message {
        let reason = format!(
            "`{}` was not called: warden cannot write its decision log ({why}) and does not forward calls it cannot record",
            call.tool
        );
        let instead =
            "tell the person; an operator must fix the decision log before agents can call tools";
        self.refuse_by_warden(client_id, call, decided, reason, instead)
    }

    /// Logs and answers a denial the proxy made of a decision.
    pub(super) fn refuse(
        &self,
        client_id: &Value,
        call: &CallContext,
        decided: &Decided,
        denial: Denial,
        info: ToolInfo,
    ) -> Value {
        let d = govern::as_denial(decided, denial.clone());
        self.audit(call, &d, None);
        self.deny_reply(client_id, &d, &denial, info)
    }

    /// The answer to a denied call: a `tools/call` result saying why.
    pub(super) fn deny_reply(
        &self,
        client_id: &Value,
        decided: &Decided,
        denial: &Denial,
        info: ToolInfo,
    ) -> Value {
        jsonrpc::result(
            client_id.clone(),
            govern::denial_result(decided, denial, info),
        )
    }
}
