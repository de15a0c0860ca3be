//! The relay's decision-log writes and the refusals that go with them:
//! every line a call leaves in the log (the decision, the write-ahead line
//! of a forwarded call, its outcome) is written here, and so is the
//! "log broken" state that keeps calls from being forwarded while the log
//! cannot take them. A refusal is logged, then answered as a `tools/call`
//! result that says why.

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
        let result = match upstream {
            Some(outcome) => self.log.write_outcome(decided, outcome),
            None => self.log.write(call, decided, None),
        };
        let mut st = lock(&self.st);
        match result {
            Ok(()) => st.audit_broken = None,
            Err(e) => {
                tracing::error!("decision {} was not logged: {e}", decided.id);
                st.audit_broken = Some(e.to_string());
            }
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
        if let Err(e) = self.log.write_decision(call, decided) {
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
