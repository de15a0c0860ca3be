//! The approval page's side of a governed call: a call the chat cannot
//! confirm (no elicitation, or an approver other than the caller) gets a
//! pending approval on warden's page (`crate::approvals`), and is refused
//! with its link and `retry: after approval` (or, URL-mode elicitation,
//! held for it in `relay::confirm`).

use super::Relay;
use super::governed::{Governed, rules_text};
use crate::metrics::ConfirmationOutcome;
use crate::raw::Message;
use warden_engine::{Confirmation, Decided, Denial, Retry};

impl Relay {
    /// A pending approval on the approval page for a call the chat cannot
    /// confirm: the call is refused with the link (for the agent only: the
    /// decision log gets the approval's id, never the link's secret) and
    /// `retry: after approval`; the approval creates the grant its retry
    /// goes through with.
    pub(super) fn await_approval(
        &self,
        page: &crate::approvals::Approvals,
        g: &Governed<'_>,
        decided: &Decided,
        confirmation: &Confirmation,
    ) -> Message {
        let tool = &g.call.tool;
        let opened = match self.open_approval(page, g, decided, confirmation) {
            Ok(o) => o,
            Err(refused) => return refused,
        };
        self.count_confirmation(g.trace, ConfirmationOutcome::Asked);
        let who = confirmation
            .approvers
            .first()
            .map_or_else(|| "the person".to_string(), |(_, by)| by.who());
        let minutes = warden_engine::engine::APPROVED_CALL_LIFE.as_secs() / 60;
        let denial = Denial {
            rules: confirmation.rules.clone(),
            reason: format!(
                "`{tool}` was not called yet: it needs the approval of {who} (rule {}: {}); approval `{}` is pending on warden's approval page",
                rules_text(confirmation),
                confirmation.message,
                opened.id
            ),
            retry: Retry::AfterApproval,
            instead: format!(
                "give {who} this link to approve the call: {} (it expires in {minutes} minutes); once it is approved, make the same call again",
                opened.link
            ),
        };
        self.refuse(g.client_id, &g.call, decided, denial, g.info)
            .into()
    }
}

impl Relay {
    /// A pending approval on the page, or the refusal when too many are
    /// pending (fail closed).
    pub(super) fn open_approval(
        &self,
        page: &crate::approvals::Approvals,
        g: &Governed<'_>,
        decided: &Decided,
        confirmation: &Confirmation,
    ) -> Result<crate::approvals::Opened, Message> {
        page.open(&g.call, confirmation, &decided.id)
            .ok_or_else(|| {
                self.refuse_by_warden(
                    g.client_id,
                    &g.call,
                    decided,
                    format!(
                        "`{}` was not called: too many approvals are pending on this warden",
                        g.call.tool
                    ),
                    "try again later; if it persists, tell the platform team",
                )
            })
    }
}
