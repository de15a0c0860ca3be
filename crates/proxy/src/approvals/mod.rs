//! Approvals on warden's page: a confirmation that cannot be asked in the
//! chat (the client has no elicitation) or that must come from someone
//! other than the caller (`by group` / `by user`) becomes a pending
//! approval with a page at `/approvals/<id>` on warden's HTTP listener.
//! The agent's call is refused with the link and `retry: after approval`;
//! whoever may approve opens it, sees the call, and approves or refuses
//! it with a note. An approval creates the rule's grant in the state
//! store (a one-use grant for the very call under `grant once`), so the
//! agent's retry goes through, on any replica that shares the store.
//!
//! What keeps it safe:
//! - ids and link secrets are random (v4 UUIDs; the secret 244 bits, only
//!   its SHA-256 kept); every POST needs the secret and the page's CSRF
//!   token, and an `Origin` other than warden's own is refused;
//! - single use: a decided approval cannot be decided again; it expires
//!   after [`APPROVED_CALL_LIFE`];
//! - the approver: with bearer auth, a token of the issuer, whose user
//!   must be someone other than the caller in the named group (four
//!   eyes), or the caller for a rule without `by`; without bearer auth,
//!   only the caller's own calls, by the link alone (anyone holding the
//!   link can then approve: docs/approvals.md);
//! - the page has no script and no external asset (a strict CSP), shows
//!   every value escaped, and is never cached or sent as a referrer.
//!
//! `page` writes the HTML; `routes` answers GET and POST.

mod page;
mod routes;
#[cfg(test)]
mod tests;
pub mod webhook;

pub(crate) use routes::router;
pub use webhook::{WebhookError, WebhookSettings};

use crate::bearer::Verifier;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};
use warden_engine::engine::APPROVED_CALL_LIFE;
use warden_engine::log::ApprovalLine;
use warden_engine::{CallContext, Confirmation, DecisionLog, Engine, StateError};
use warden_lang::CompiledApprover;

/// Most approvals pending at once in one process; past it (after dropping
/// expired ones) a new one is refused, and so is the call (fail closed).
const MAX_PENDING: usize = 10_000;

/// The pending approvals this process opened (each also written to the
/// state store, where replicas sharing it find the others), and how to act
/// on them.
pub struct Approvals {
    /// `http://127.0.0.1:8080`: where links point.
    base: String,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    bearer: Option<Arc<Verifier>>,
    webhook: Option<webhook::Webhook>,
    book: Mutex<HashMap<String, Pending>>,
    /// How long an approval may be decided ([`APPROVED_CALL_LIFE`]).
    ttl: std::time::Duration,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// One approval: the call as it was asked, and where it stands.
#[derive(Clone)]
pub(crate) struct Pending {
    secret_hash: [u8; 32],
    pub(crate) csrf: String,
    pub(crate) call: CallContext,
    /// The arguments as the decision log shows them (redacted, bounded).
    pub(crate) shown_args: Value,
    pub(crate) rules: Vec<String>,
    pub(crate) message: String,
    pub(crate) approver: Option<CompiledApprover>,
    pub(crate) decision_id: String,
    pub(crate) expires_at: SystemTime,
    expires: Instant,
    pub(crate) status: Status,
    /// Tells a call held for this approval (URL-mode elicitation) how it
    /// went, at once.
    changed: Arc<tokio::sync::watch::Sender<Status>>,
}

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Approved { by: String },
    Refused { by: String },
}

/// A pending approval as the state store keeps it, for every replica
/// that shares the store (the page, the decision, the grant on any of
/// them).
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedRecord {
    secret_hash: String,
    csrf: String,
    call: CallContext,
    shown_args: Value,
    rules: Vec<String>,
    message: String,
    approver: Option<CompiledApprover>,
    decision_id: String,
    /// Unix milliseconds.
    expires_at: u64,
}

/// A decision as the state store keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedDecision {
    approved: bool,
    by: String,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Pending {
    fn shared(&self) -> SharedRecord {
        SharedRecord {
            secret_hash: warden_engine::log::chain::hex(&self.secret_hash),
            csrf: self.csrf.clone(),
            call: self.call.clone(),
            shown_args: self.shown_args.clone(),
            rules: self.rules.clone(),
            message: self.message.clone(),
            approver: self.approver.clone(),
            decision_id: self.decision_id.clone(),
            expires_at: unix_ms(self.expires_at),
        }
    }

    /// A record another replica opened, with its decision if it has one.
    fn from_shared(r: SharedRecord, decision: Option<SharedDecision>) -> Option<Pending> {
        let mut secret_hash = [0u8; 32];
        if r.secret_hash.len() != 64 {
            return None;
        }
        for (i, b) in secret_hash.iter_mut().enumerate() {
            *b = u8::from_str_radix(r.secret_hash.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let expires_at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.expires_at);
        let left = expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let status = match decision {
            None => Status::Pending,
            Some(d) if d.approved => Status::Approved { by: d.by },
            Some(d) => Status::Refused { by: d.by },
        };
        Some(Pending {
            secret_hash,
            csrf: r.csrf,
            call: r.call,
            shown_args: r.shown_args,
            rules: r.rules,
            message: r.message,
            approver: r.approver,
            decision_id: r.decision_id,
            expires_at,
            expires: Instant::now() + left,
            changed: Arc::new(tokio::sync::watch::Sender::new(status.clone())),
            status,
        })
    }
}

/// Why a decision on the page was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such approval, or the link's secret is wrong: the same answer,
    /// so a guess learns nothing.
    NotFound,
    Expired,
    AlreadyDecided,
    /// The form's CSRF token is not this approval's.
    BadForm,
    /// Who tried may not approve this call (the reason says why).
    NotAllowed(String),
}

/// A new approval's link.
pub(crate) struct Opened {
    pub(crate) id: String,
    pub(crate) link: String,
}

/// Serves the approval page alone on `listener` (`warden proxy` on stdio,
/// `--approvals-listen`), for the relays `cfg` configures: they then send
/// confirmations their client cannot ask to it. `approvers`: the tokens
/// approvers authenticate with (stdio calls carry none, so this is apart
/// from `cfg.bearer`); `None`, only the caller approves, by the link.
/// Returns the page's base URL. Runs in the current runtime until the
/// process ends.
pub async fn serve_page(
    cfg: &mut crate::ProxyConfig,
    approvers: Option<Arc<Verifier>>,
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    listener: tokio::net::TcpListener,
) -> Result<String, crate::ProxyError> {
    let addr = listener
        .local_addr()
        .map_err(|e| crate::ProxyError::Listen {
            addr: "?".into(),
            message: e.to_string(),
        })?;
    let base = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let approvals = Approvals::new(
        base.clone(),
        engine,
        log,
        approvers,
        cfg.approvals_webhook.as_ref(),
    )
    .map_err(crate::ProxyError::Webhook)?;
    cfg.approvals = Some(Arc::clone(&approvals));
    let app = router(approvals);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the approval page stopped: {e}");
        }
    });
    Ok(base)
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Approvals {
    /// Approvals whose links start with `base` (`http://HOST:PORT`).
    pub(crate) fn new(
        base: String,
        engine: Arc<Engine>,
        log: Arc<DecisionLog>,
        bearer: Option<Arc<Verifier>>,
        webhook: Option<&WebhookSettings>,
    ) -> Result<Arc<Approvals>, WebhookError> {
        Ok(Arc::new(Approvals {
            base: base.trim_end_matches('/').to_string(),
            engine,
            log,
            bearer,
            webhook: webhook.map(webhook::Webhook::load).transpose()?,
            book: Mutex::new(HashMap::new()),
            ttl: APPROVED_CALL_LIFE,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether approvers can be told apart from callers (bearer auth).
    pub(crate) fn authenticates(&self) -> bool {
        self.bearer.is_some()
    }

    /// A pending approval for `call`, decided as `decision_id` wanting
    /// `confirmation`: its link (with the secret). `None` when the book is
    /// full.
    pub(crate) fn open(
        &self,
        call: &CallContext,
        confirmation: &Confirmation,
        decision_id: &str,
    ) -> Option<Opened> {
        let now = Instant::now();
        let mut book = self.lock();
        if book.len() >= MAX_PENDING {
            book.retain(|_, p| p.expires > now);
            if book.len() >= MAX_PENDING {
                return None;
            }
        }
        let id = random_hex();
        let secret = format!("{}{}", random_hex(), random_hex());
        book.insert(
            id.clone(),
            Pending {
                secret_hash: hash(&secret),
                csrf: random_hex(),
                call: call.clone(),
                shown_args: self.log.logged_arguments(&call.arguments),
                rules: confirmation.rules.iter().map(|h| h.rule.clone()).collect(),
                // A reason may quote an argument the log redacts.
                message: self.log.scrubbed(call, &confirmation.message),
                approver: confirmation.approvers.first().map(|(_, by)| by.clone()),
                decision_id: decision_id.to_string(),
                expires_at: SystemTime::now() + self.ttl,
                expires: now + self.ttl,
                status: Status::Pending,
                changed: Arc::new(tokio::sync::watch::Sender::new(Status::Pending)),
            },
        );
        if let Some(p) = book.get(&id)
            && let Ok(record) = serde_json::to_string(&p.shared())
            && let Err(e) = self
                .engine
                .state_store()
                .put_approval(&id, &record, self.ttl)
        {
            // A store that keeps none: the approval lives here only.
            tracing::debug!("approval {id} is kept by this process only: {e}");
        }
        let link = format!("{}/approvals/{id}?s={secret}", self.base);
        if let (Some(hook), Some(p)) = (&self.webhook, book.get(&id)) {
            hook.deliver(pending_payload(&id, &link, p));
        }
        Some(Opened { link, id })
    }

    /// Decides `id` in the state store, once across replicas: `Ok(true)`
    /// for the one decision taken; `Err` when the store keeps no approvals.
    fn store_decision(&self, id: &str, approved: bool, by: &str) -> Result<bool, StateError> {
        let decision = serde_json::to_string(&SharedDecision {
            approved,
            by: by.to_string(),
        })
        .unwrap_or_default();
        self.engine.state_store().decide_approval(id, &decision)
    }

    /// A held call ended without the page's decision (the client declined
    /// to open it, the wait timed out, the call was cancelled): the
    /// approval can no longer be given, so no grant outlives the call.
    pub(crate) fn withdraw(&self, id: &str, why: &str) {
        let by = format!("nobody: {why}");
        let _ = self.store_decision(id, false, &by);
        if let Some(p) = self.lock().get_mut(id)
            && p.status == Status::Pending
        {
            p.status = Status::Refused { by };
            p.changed.send_replace(p.status.clone());
        }
    }

    /// Where approval `id` stands, as it changes (for a held call).
    pub(crate) fn watch(&self, id: &str) -> Option<tokio::sync::watch::Receiver<Status>> {
        self.lock().get(id).map(|p| p.changed.subscribe())
    }

    /// The approval `id` if `secret` is its link's.
    pub(crate) fn get(&self, id: &str, secret: &str) -> Result<Pending, Refusal> {
        if let Some(p) = self.lock().get(id) {
            return if p.secret_hash == hash(secret) {
                Ok(p.clone())
            } else {
                Err(Refusal::NotFound)
            };
        }
        // Opened on another replica sharing the store.
        let p = self.shared(id).ok_or(Refusal::NotFound)?;
        if p.secret_hash != hash(secret) {
            return Err(Refusal::NotFound);
        }
        Ok(p)
    }

    /// Approval `id` from the state store, as another replica opened it.
    fn shared(&self, id: &str) -> Option<Pending> {
        let (record, decision) = self.engine.state_store().get_approval(id).ok()??;
        let record: SharedRecord = serde_json::from_str(&record).ok()?;
        let decision = decision.and_then(|d| serde_json::from_str(&d).ok());
        Pending::from_shared(record, decision)
    }

    /// A held call's look at the store: a decision another replica took
    /// reaches it (through its watch).
    pub(crate) fn refresh(&self, id: &str) {
        let Some(shared) = self.shared(id) else {
            return;
        };
        if shared.status == Status::Pending {
            return;
        }
        if let Some(p) = self.lock().get_mut(id)
            && p.status == Status::Pending
        {
            p.status = shared.status.clone();
            p.changed.send_replace(shared.status);
        }
    }

    /// Approves (or refuses) approval `id`, once. `token`: the bearer token
    /// the person gave (required with bearer auth). Returns who decided.
    pub(crate) fn decide(
        &self,
        id: &str,
        secret: &str,
        csrf: &str,
        token: Option<&str>,
        approve: bool,
        note: &str,
    ) -> Result<String, Refusal> {
        let pending = self.get(id, secret)?;
        if pending.csrf != csrf {
            return Err(Refusal::BadForm);
        }
        if pending.status != Status::Pending {
            return Err(Refusal::AlreadyDecided);
        }
        if pending.expires <= Instant::now() {
            return Err(Refusal::Expired);
        }
        let by = self.approver_of(&pending, token)?;
        // Once across replicas: the store's decision is taken first (a
        // store that keeps no approvals leaves it to this process).
        if let Ok(false) = self.store_decision(id, approve, &by) {
            return Err(Refusal::AlreadyDecided);
        }
        // Taken under the lock: two POSTs racing decide once.
        {
            let mut book = self.lock();
            let p = book
                .entry(id.to_string())
                .or_insert_with(|| pending.clone());
            if p.status != Status::Pending {
                return Err(Refusal::AlreadyDecided);
            }
            p.status = if approve {
                Status::Approved { by: by.clone() }
            } else {
                Status::Refused { by: by.clone() }
            };
        }
        let grants = if approve {
            let (made, failed) = self
                .engine
                .create_grants(&pending.call, &pending.rules, false);
            for (rule, e) in failed {
                tracing::warn!("the approval of rule `{rule}` was not kept: {e}");
            }
            made
        } else {
            Vec::new()
        };
        let line = ApprovalLine {
            decision_id: &pending.decision_id,
            approval: id,
            approved: approve,
            by: &by,
            channel: "page",
            note,
            grants: &grants,
        };
        if let Err(e) = self.log.write_approval(&line) {
            tracing::error!("approval {id} was not logged: {e}");
        }
        // A held call learns it now (it decides again, and so finds the
        // grant, or is refused).
        let status = if approve && !grants.is_empty() {
            Status::Approved { by: by.clone() }
        } else {
            Status::Refused { by: by.clone() }
        };
        if let Some(p) = self.lock().get(id) {
            p.changed.send_replace(status);
        }
        if approve && grants.is_empty() {
            return Err(Refusal::NotAllowed(
                "warden could not keep the approval in its state store; the call will be asked again".into(),
            ));
        }
        Ok(by)
    }

    /// Who is deciding, if they may: with bearer auth the token's user
    /// (someone other than the caller, in the group or the user the rule
    /// names; the caller when the rule names no one); without it only a
    /// rule without `by`, by the link.
    fn approver_of(&self, p: &Pending, token: Option<&str>) -> Result<String, Refusal> {
        let caller = &p.call.identity.user;
        let Some(verifier) = &self.bearer else {
            return match &p.approver {
                None => Ok(format!("{caller} (the caller, by the link)")),
                Some(_) => Err(Refusal::NotAllowed(
                    "this call needs the approval of another person, and without bearer authentication warden cannot tell who approves".into(),
                )),
            };
        };
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Refusal::NotAllowed("give your access token: warden checks who approves".into())
            })?;
        let who = verifier
            .verify(token)
            .map_err(|e| Refusal::NotAllowed(format!("the token was not accepted: {e}")))?;
        match &p.approver {
            None if &who.user == caller => Ok(who.user),
            None => Err(Refusal::NotAllowed(format!(
                "only `{caller}`, who made the call, can confirm it"
            ))),
            Some(_) if &who.user == caller => Err(Refusal::NotAllowed(
                "you made this call: it needs the approval of someone else (four eyes)".into(),
            )),
            Some(CompiledApprover::User(u)) if &who.user == u => Ok(who.user),
            Some(CompiledApprover::User(u)) => Err(Refusal::NotAllowed(format!(
                "this call needs the approval of `{u}`"
            ))),
            Some(CompiledApprover::Group(g)) => {
                if who.groups.as_ref().is_some_and(|gs| gs.contains(g)) {
                    Ok(who.user)
                } else {
                    Err(Refusal::NotAllowed(format!(
                        "this call needs the approval of a member of group `{g}`, and your token does not name that group"
                    )))
                }
            }
        }
    }
}

/// What the webhook says of a new pending approval: who asks for what,
/// who may approve, until when, and the link (docs/approvals.md).
fn pending_payload(id: &str, link: &str, p: &Pending) -> Value {
    let identity = &p.call.identity;
    serde_json::json!({
        "event": "approval.pending",
        "approval": id,
        "url": link,
        "decision_id": p.decision_id,
        "expires": warden_engine::log::rfc3339(p.expires_at),
        "user": identity.user,
        "agent": identity.agent,
        "model": identity.model,
        "server": p.call.server,
        "tool": p.call.tool,
        "arguments": p.shown_args,
        "rules": p.rules,
        "reason": p.message,
        "approver": p.approver.as_ref().map(CompiledApprover::text),
    })
}
