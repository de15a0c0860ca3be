//! What a decision is, as the engine hands it out and the decision log
//! and `warden eval --format json` show it: [`Decided`] (its id, policy
//! version, [`Outcome`], shadow findings, latency and the slots an allowed
//! call holds), the rules behind it ([`RuleHit`]), and a denial's or a
//! confirmation's text and advice ([`Denial`], [`Retry`], [`Confirmation`]).

use crate::gate::HoldGuard;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use warden_lang::ast::RuleKind;

/// One rule behind a decision, with its message for the agent and person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleHit {
    pub rule: String,
    pub kind: RuleKind,
    pub message: String,
    /// `file:line:col` of the rule.
    pub source: String,
}

/// When retrying the same call can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "when")]
pub enum Retry {
    /// The same call will be denied again.
    Never,
    /// A rate limit frees a slot after this long.
    AfterSeconds { seconds: u64 },
    /// A cap lifts once the streak ends: a forwarded call in the same scope
    /// that the cap does not count (a call to a tool it does not limit).
    AfterStreakEnds,
    /// Every rule that denied reads the time of day (`during`): the same
    /// call can succeed at another time, when the window the rule reads
    /// says otherwise.
    AtAnotherTime,
    /// The call waits for an approval on warden's approval page: the same
    /// call succeeds once it is given (and while its grant lasts).
    AfterApproval,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The rules that denied; empty when no rule allowed the call.
    pub rules: Vec<RuleHit>,
    /// One sentence saying what was denied and why.
    pub reason: String,
    pub retry: Retry,
    /// What the agent can do instead.
    pub instead: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// The require-confirm rules that want the person's yes.
    pub rules: Vec<RuleHit>,
    /// The question to put to the person.
    pub message: String,
    /// The rules among `rules` whose approval must come from someone other
    /// than the caller (`by group` / `by user`), with who that is.
    pub approvers: Vec<(String, warden_lang::CompiledApprover)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Outcome {
    /// `rules` are the allow rules that matched (`#default` for `default allow`).
    Allow {
        rules: Vec<String>,
    },
    Deny(Denial),
    Confirm(Confirmation),
}

/// What a shadow-mode rule would have done to this call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowFinding {
    pub rule: String,
    pub kind: RuleKind,
    /// `deny`, `confirm` or `allow`.
    pub would: &'static str,
    pub message: String,
}

/// A decision with everything the log and the transport need.
#[derive(Debug, Clone, Serialize)]
pub struct Decided {
    pub id: String,
    pub policy_version: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowFinding>,
    /// Time spent deciding.
    #[serde(rename = "latency_us", serialize_with = "micros")]
    pub latency: Duration,
    /// The slots this allowed call holds until it is forwarded (committed
    /// by [`Engine::record_forwarded`]) or every copy of the decision is
    /// dropped (released).
    #[serde(skip)]
    pub(crate) hold: Option<Arc<HoldGuard>>,
    /// The enforced rules other than `allow` (deny, require-confirm, caps,
    /// rates) whose conditions held for the call, whatever the outcome:
    /// the proxy's tools/list notes read it (a require-confirm rule whose
    /// note must show although the probe was denied for want of an allow).
    #[serde(skip)]
    pub restricting: Vec<String>,
    /// Grants this decision used (a rule confirmed by an earlier yes) or
    /// created (this call's yes reaches later calls); set by the proxy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<crate::engine::GrantUse>,
    /// The session labels this call put on its session (`label` rules it
    /// matched, written before it was forwarded).
    pub labels: Vec<String>,
    /// What the operator says the tool is (annotation declarations), which
    /// the decision read instead of the upstream's hints.
    pub stated_annotations: crate::call::ToolAnnotations,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

impl Decided {
    pub fn is_allow(&self) -> bool {
        matches!(self.outcome, Outcome::Allow { .. })
    }
}
