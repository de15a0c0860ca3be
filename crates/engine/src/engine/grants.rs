//! Grants: one yes to a `require-confirm` rule reaching later calls, as
//! the rule's `grant` says (`for 30m`, `for session`, `for 5 calls`).
//!
//! A grant is kept in the state store under a key that binds it to the
//! rule, the caller (user), the server and tool, the session for `grant
//! for session`, and the arguments: all of them exactly, or only those
//! `within` names. A later call with the same key is confirmed for that
//! rule without asking; a counted grant gives up one use per call, taken
//! atomically by the store (two parallel calls cannot share the last use).
//! Every grant also ends after a day. A store that cannot keep grants
//! (or fails) means the person is asked again: never a call let through.

use super::Engine;
use crate::args::canonical_json;
use crate::call::CallContext;
use crate::decided::Confirmation;
use crate::state::StateError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Duration;
use warden_lang::{CompiledApproval, CompiledGrant, CompiledRule};

/// The longest any grant lives: a day (`grant for session` and counted
/// grants included; `warden lint` refuses a longer `for`).
pub const MAX_GRANT_LIFE: Duration = Duration::from_secs(86_400);

/// How long the approval of a `grant once` call given ahead of the call
/// (on the approval page, for the agent's retry) waits for that retry.
pub const APPROVED_CALL_LIFE: Duration = Duration::from_secs(15 * 60);

/// A grant a decision used or created, as the decision log names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUse {
    /// The require-confirm rule the grant confirms.
    pub rule: String,
    /// The grant's id (`grant-` and a random v4 UUID).
    pub grant: String,
    /// Created by this call's confirmation (else a later call used it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
}

impl Engine {
    /// The person confirmed `rules` for `call`: a grant for each of them
    /// whose `grant` reaches beyond this call. `ran`: the confirmed call
    /// itself goes through now (a yes in the chat); else the approval was
    /// given ahead of it (on the approval page), and the grant covers the
    /// call's retry too (`grant once`: that retry alone, within
    /// [`APPROVED_CALL_LIFE`]). A rule the store could not keep a grant
    /// for is returned with why (later calls ask again).
    pub fn create_grants(
        &self,
        call: &CallContext,
        rules: &[String],
        ran: bool,
    ) -> (Vec<GrantUse>, Vec<(String, StateError)>) {
        let bundle = self.policies.load();
        let mut made = Vec::new();
        let mut failed = Vec::new();
        for id in rules {
            let Some(rule) = bundle.rule_index(id).map(|i| &bundle.rules()[i]) else {
                continue;
            };
            let Some(approval) = &rule.approval else {
                continue;
            };
            let (ttl, uses) = match (approval.grant, ran) {
                (CompiledGrant::Once | CompiledGrant::Calls(0 | 1), true) => continue,
                (CompiledGrant::Once | CompiledGrant::Calls(0), false) => {
                    (APPROVED_CALL_LIFE, Some(1))
                }
                (CompiledGrant::ForSecs(s), _) => {
                    (Duration::from_secs(s).min(MAX_GRANT_LIFE), None)
                }
                (CompiledGrant::Session, _) => (MAX_GRANT_LIFE, None),
                // The confirmed call is the first of them when it ran.
                (CompiledGrant::Calls(n), true) => (MAX_GRANT_LIFE, Some(n - 1)),
                (CompiledGrant::Calls(n), false) => (MAX_GRANT_LIFE, Some(n)),
            };
            let grant = format!("grant-{}", uuid_hex());
            let key = grant_key(rule, approval, call);
            match self.state.put_grant(&key, &grant, ttl, uses) {
                Ok(()) => made.push(GrantUse {
                    rule: id.clone(),
                    grant,
                    new: true,
                }),
                Err(e) => failed.push((id.clone(), e)),
            }
        }
        (made, failed)
    }

    /// Before the person is asked: a live grant for every rule of
    /// `confirmation`, one use of each taken. `None` when some rule has
    /// none (when two rules have grants and the second's is gone, the use
    /// taken of the first is spent: fewer calls, never more).
    pub fn use_grants(
        &self,
        call: &CallContext,
        confirmation: &Confirmation,
    ) -> Result<Option<Vec<GrantUse>>, StateError> {
        let bundle = self.policies.load();
        // Every rule must be one a grant can cover before any use is taken.
        let mut keyed = Vec::new();
        for hit in &confirmation.rules {
            let Some(rule) = bundle.rule_index(&hit.rule).map(|i| &bundle.rules()[i]) else {
                return Ok(None);
            };
            // `grant once` too: an approval given on the page ahead of the
            // call is a one-use grant for it.
            let Some(approval) = rule.approval.as_ref() else {
                return Ok(None);
            };
            keyed.push((&hit.rule, grant_key(rule, approval, call)));
        }
        let mut used = Vec::new();
        for (rule, key) in keyed {
            match self.state.use_grant(&key)? {
                Some(grant) => used.push(GrantUse {
                    rule: rule.clone(),
                    grant,
                    new: false,
                }),
                None => return Ok(None),
            }
        }
        Ok((!used.is_empty()).then_some(used))
    }
}

/// What binds a grant: rule, user, server, tool, the session (for `grant
/// for session`) and the arguments (all, or those `within` names), each
/// length-prefixed into one SHA-256, hex.
pub(crate) fn grant_key(
    rule: &CompiledRule,
    approval: &CompiledApproval,
    call: &CallContext,
) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part("warden-grant:v1");
    part(&rule.id);
    part(&call.identity.user);
    part(&call.server);
    part(&call.tool);
    part(match approval.grant {
        CompiledGrant::Session => &call.session,
        _ => "",
    });
    if approval.within.is_empty() {
        part(&canonical_json(&call.arguments));
    } else {
        for pointer in &approval.within {
            part(pointer);
            match call.arguments.pointer(pointer) {
                Some(v) => part(&canonical_json(v)),
                // Absent is not the same as any value (not even null).
                None => part("\u{0}absent"),
            }
        }
    }
    crate::log::chain::hex(&h.finalize())
}

/// A random v4 UUID (122 bits from the OS), hex: grant ids are not
/// guessable (they name grants in the log and are never credentials, but
/// nothing should predict one).
fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
