//! The decision API: [`Engine::decide`] turns a [`CallContext`] into
//! Allow, Deny or Confirm (plus shadow findings) and, for an Allow that
//! counts towards caps or rates, holds its slots (checked and taken in one
//! atomic step of the store, so concurrent calls cannot overshoot);
//! [`Engine::record_forwarded`] commits them once the call was forwarded
//! (a [`Decided`] dropped without that releases them), and
//! [`Engine::record_created`] stores the records a forwarded call created. Every
//! error on the way (bad arguments, an evaluation error, state that cannot
//! be read) ends in Deny with a reason; nothing here can allow by accident.

use crate::args::projection;
use crate::args::{ArgLimits, ArgProblem, check_arg_limits};
use crate::call::CallContext;
use crate::gate::{HoldGuard, StateGate};
use crate::index::{PolicyBundle, Slice};
use crate::memo::{Answer, KeyInput, MemoMode, MemoStats};
use crate::records::{NewRecord, RecordBackend, RecordError, RecordStore, extract_ids, id_of};
use crate::state::{
    Clock, Counted, Hold, Reserved, StateBackend, StateError, StateLimits, StateStore, SystemClock,
};
use arc_swap::ArcSwap;
use cedar_policy::Authorizer;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use warden_lang::ast::{Mode, RuleKind};
use warden_lang::compile::{COUNTING_SUFFIX, DEFAULT_POLICY_ID};
use warden_lang::{CompiledRule, CreatedArg};

mod answer;
mod grants;
mod labels;
mod limit_advice;
mod limits;
use limit_advice::{budget_or_rate_retry, cap_retry, hit, never_fits, unmeasured};
use limits::{Measures, cap_rows, hold_keys, measure};

pub use crate::decided::{Confirmation, Decided, Denial, Outcome, Retry, RuleHit, ShadowFinding};
pub use grants::{APPROVED_CALL_LIFE, GrantUse, MAX_GRANT_LIFE};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub arg_limits: ArgLimits,
    pub state_limits: StateLimits,
    pub clock: Arc<dyn Clock>,
    /// Where caps and rates keep their state (default: memory).
    pub state: StateBackend,
    /// Where records created through warden are kept (default: memory).
    pub records: RecordBackend,
    /// Whether Cedar's answers are kept and reused ([`crate::memo`]).
    pub memo: MemoMode,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            arg_limits: ArgLimits::default(),
            state_limits: StateLimits::default(),
            clock: Arc::new(SystemClock),
            state: StateBackend::Memory,
            records: RecordBackend::Memory,
            memo: MemoMode::On,
        }
    }
}

/// Decides tool calls against the current policy bundle and keeps the
/// state caps and rates need. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    policies: ArcSwap<PolicyBundle>,
    state: Arc<StateGate>,
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
    arg_limits: ArgLimits,
    authorizer: Authorizer,
    memo: MemoMode,
    next_id: AtomicU64,
    id_prefix: String,
}

impl Engine {
    pub fn new(bundle: PolicyBundle, options: EngineOptions) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Engine {
            policies: ArcSwap::from_pointee(bundle),
            state: Arc::new(StateGate::new(
                options
                    .state
                    .open(options.state_limits, Arc::clone(&options.clock)),
            )),
            records: options.records.open(Arc::clone(&options.clock)),
            clock: options.clock,
            arg_limits: options.arg_limits,
            authorizer: Authorizer::new(),
            memo: options.memo,
            next_id: AtomicU64::new(1),
            // Unique across restarts, so decision ids never repeat in a log.
            id_prefix: format!("{:x}{:04x}", started.as_secs(), std::process::id() & 0xffff),
        }
    }

    /// The bundle decisions currently use.
    pub fn policies(&self) -> Arc<PolicyBundle> {
        self.policies.load_full()
    }

    /// What the memo of the bundle in force did since the bundle was
    /// loaded ([`crate::memo`]).
    pub fn memo_stats(&self) -> MemoStats {
        self.policies.load().memo.stats()
    }

    /// Marks `mark` used for `ttl` in the state store: `true` the first
    /// time, `false` while the mark lives (on Redis, for every replica).
    /// An error means it cannot be known: treat it as used (fail closed).
    pub fn use_once(&self, mark: &str, ttl: std::time::Duration) -> Result<bool, StateError> {
        self.state.use_once(mark, ttl)
    }

    /// The state store (memory, SQLite, Redis) for what replicas share
    /// besides limits: pending approvals (the proxy's approval page).
    pub fn state_store(&self) -> &dyn StateStore {
        self.state.store()
    }

    /// Whether the state server (Redis) answers now; `None` for a store
    /// in this process or on its disk. It may wait for the store's
    /// timeout: call it off the async runtime's worker threads.
    pub fn state_health(&self) -> Option<crate::state::StoreHealth> {
        self.state.health()
    }

    /// Whether the record server (PostgreSQL) answers now; `None` for a
    /// store in this process or on its disk. May wait for the store's
    /// timeout, as [`Engine::state_health`] does.
    pub fn records_health(&self) -> Option<crate::state::StoreHealth> {
        self.records.health()
    }

    /// Puts a new bundle in force atomically: a decision uses the old or
    /// the new bundle, never a mix. State (streaks, windows) is kept.
    pub fn swap_policies(&self, bundle: PolicyBundle) {
        self.policies.store(Arc::new(bundle));
    }

    /// Decides one call. An Allow that counts towards caps or rates holds
    /// one slot of each: the store checks again that each is below its
    /// maximum and takes them together; when another call took the last
    /// slot in between, the call is decided again (and then denied by the
    /// limit, with the limit's own reason).
    pub fn decide(&self, call: &CallContext) -> Decided {
        self.decide_with(call, true)
    }

    /// Decides as [`Engine::decide`] does, against the same counts, but
    /// holds no slot: for what will never be forwarded (a `tools/list`
    /// view probing each tool, a logged notification, `warden eval`). A
    /// preview never takes a slot a real call needs.
    pub fn preview(&self, call: &CallContext) -> Decided {
        self.decide_with(call, false)
    }

    fn decide_with(&self, call: &CallContext, reserve: bool) -> Decided {
        let start = Instant::now();
        let bundle = self.policies.load_full();
        let mut counts_for = Vec::new();
        let mut restricting = Vec::new();
        let mut labels = Vec::new();
        let mut hold = None;
        let mut attempts = 0;
        let (outcome, shadow) = loop {
            counts_for.clear();
            restricting.clear();
            labels.clear();
            let (outcome, shadow) = match self.evaluate(
                &bundle,
                call,
                &mut counts_for,
                &mut restricting,
                &mut labels,
            ) {
                Ok(r) => r,
                Err(denial) => {
                    counts_for.clear();
                    break (Outcome::Deny(denial), Vec::new());
                }
            };
            if !reserve || !matches!(outcome, Outcome::Allow { .. }) {
                break (outcome, shadow);
            }
            let wanted = Hold {
                user: call.identity.user.clone(),
                keys: hold_keys(&bundle, call, &counts_for),
                matched: counts_for.clone(),
                confirmed: !call.confirmed.is_empty(),
                unchecked: counts_for
                    .iter()
                    .filter(|c| {
                        bundle
                            .rule_index(&c.rule)
                            .is_some_and(|i| bundle.rules()[i].mode == Mode::Shadow)
                    })
                    .map(|c| c.rule.clone())
                    .collect(),
            };
            if wanted.slots().next().is_none() {
                break (outcome, shadow);
            }
            let denied = |reason: String, instead: &str| {
                (Outcome::Deny(plain_denial(reason, instead)), shadow.clone())
            };
            match self.state.reserve(&wanted) {
                Ok(Reserved::Held(id)) => {
                    hold = Some(Arc::new(HoldGuard::new(
                        Arc::clone(&self.state),
                        id,
                        wanted,
                    )));
                    break (outcome, shadow);
                }
                Ok(Reserved::Full { .. }) if attempts < MAX_RESERVE_ATTEMPTS => attempts += 1,
                Ok(Reserved::Full { rule }) => {
                    break denied(
                        format!(
                            "`{}` was not called: calls decided at the same time kept taking the last slots of rule `{rule}`",
                            call.tool
                        ),
                        "call again once; if the limit is reached, the answer says so and when it frees",
                    );
                }
                Ok(Reserved::Untracked(why)) => {
                    break denied(
                        format!(
                            "`{}` was not called: warden's own bound on the limits it tracks was reached ({why}); no policy rule's limit was reached",
                            call.tool
                        ),
                        "tell the person; an operator can raise warden's state bounds, and idle limits free room as they expire",
                    );
                }
                Err(e) => {
                    break denied(
                        format!(
                            "`{}` was not called: state store unavailable: {e}",
                            call.tool
                        ),
                        "report this to the platform team; it is not caused by the agent",
                    );
                }
            }
        };
        // The labels of an allowed call are on its session before it goes
        // out: a label that could not be written would let a later call
        // through that it should stop, so the call is refused instead.
        let (outcome, labels) = match outcome {
            Outcome::Allow { .. } if reserve && !labels.is_empty() => {
                match self.state.add_session_labels(&call.session, &labels) {
                    Ok(()) => (outcome, labels.into_iter().map(|(l, _)| l).collect()),
                    Err(e) => {
                        hold = None;
                        let denial = plain_denial(
                            format!(
                                "`{}` was not called: state store unavailable: the session's labels could not be written: {e}",
                                call.tool
                            ),
                            "report this to the platform team; it is not caused by the agent",
                        );
                        (Outcome::Deny(denial), Vec::new())
                    }
                }
            }
            outcome => (outcome, Vec::new()),
        };
        Decided {
            id: format!(
                "{}-{}",
                self.id_prefix,
                self.next_id.fetch_add(1, Ordering::Relaxed)
            ),
            policy_version: bundle.version().to_string(),
            outcome,
            shadow,
            latency: start.elapsed(),
            hold,
            restricting,
            grants: Vec::new(),
            labels,
            stated_annotations: if bundle.compiled().stated_annotations().is_empty() {
                crate::call::ToolAnnotations::default()
            } else {
                bundle.slice(&call.server, &call.tool).stated
            },
        }
    }

    /// Counts a call that was forwarded upstream by committing the slots
    /// its decision holds: its caps' streaks grow, other caps' streaks in
    /// its scopes end, its rates record it. A call the person confirmed
    /// ends every streak in its scopes. A call that counts for nothing only
    /// ends streaks, without waiting for a busy store (the end is then kept
    /// and applied before the next use of those scopes), and touches no
    /// store at all when the policies have no cap.
    ///
    /// If the state store cannot be written, the call is kept and written
    /// before the next counter read; until that succeeds, calls that need
    /// a counter in the call's scopes are denied ("state store
    /// unavailable"). [`Engine::try_record_forwarded`] also says why.
    pub fn record_forwarded(&self, call: &CallContext, decided: &Decided) {
        let _ = self.try_record_forwarded(call, decided);
    }

    /// [`Engine::record_forwarded`], returning the store's error when the
    /// call could not be recorded yet (it is kept and retried all the same).
    pub fn try_record_forwarded(
        &self,
        call: &CallContext,
        decided: &Decided,
    ) -> Result<(), StateError> {
        if let Some(hold) = &decided.hold {
            return hold.commit();
        }
        if !decided.is_allow() {
            return Ok(());
        }
        // No slot held: nothing counts it, so it only ends streaks, in the
        // rows some cap of the set in force measures streaks in.
        let bundle = self.policies.load();
        let keys = cap_rows(&bundle, call);
        if keys.is_empty() {
            return Ok(());
        }
        self.state.end_streaks(&keys)
    }

    /// Stores the records a forwarded call created: when the call was
    /// allowed, its result is not an error, and a `records` declaration of
    /// the policies in force says its tool creates records on its server,
    /// the id at the declared pointer (in `structuredContent`, or in the
    /// JSON of the only text content) is stored with the call's server,
    /// the declaration's kind, agent, user, session and the time. Returns
    /// the ids newly stored: an id already stored under that server and
    /// kind keeps its first creator (a get-or-create tool answering with a
    /// person's record does not make it the agent's), and is not returned.
    ///
    /// An error means a record was created but not stored: it will not
    /// count as agent-created (rules that let agents change only their own
    /// records keep denying it), so the transport should log it.
    pub fn record_created(
        &self,
        call: &CallContext,
        decided: &Decided,
        result: &serde_json::Value,
    ) -> Result<Vec<String>, RecordError> {
        if !decided.is_allow() || result.get("isError") == Some(&serde_json::Value::Bool(true)) {
            return Ok(Vec::new());
        }
        let bundle = self.policies.load();
        // The first declaration naming the tool decides its kind.
        let Some((decl, pointer)) = bundle.compiled().records().iter().find_map(|d| {
            d.id_pointer(&call.server, &call.tool)
                .map(|pointer| (d, pointer))
        }) else {
            return Ok(Vec::new());
        };
        // A `*` segment: every record the call created (records::extract_ids).
        let ids = extract_ids(result, pointer).map_err(|why| RecordError::NoId {
            tool: call.tool.clone(),
            pointer: pointer.to_string(),
            why,
        })?;
        let mut stored = Vec::new();
        for id in ids {
            let new = self.records.insert(&NewRecord {
                server: call.server.clone(),
                id: id.clone(),
                kind: decl.kind.clone(),
                via_agent: call.provenance.via_agent,
                agent: call.identity.agent.clone(),
                user: call.identity.user.clone(),
                session: call.session.clone(),
                created_at: self.clock.unix_millis(),
                decision: decided.id.clone(),
            })?;
            if new {
                stored.push(id);
            }
        }
        Ok(stored)
    }

    /// The `created by agent` questions of the slice whose argument is the
    /// id of an agent-created record of the asked kind on the call's
    /// server, as the keys `context.agent_created` holds.
    fn agent_created(&self, slice: &Slice, call: &CallContext) -> Result<Vec<String>, RecordError> {
        // One store lookup per kind, with every id asked about under it.
        let mut asked: BTreeMap<&str, Vec<(&CreatedArg, String)>> = BTreeMap::new();
        for arg in &slice.created_args {
            if let Some(id) = call.arguments.pointer(&arg.pointer).and_then(id_of) {
                asked.entry(arg.kind.as_str()).or_default().push((arg, id));
            }
        }
        let mut yes = Vec::new();
        for (kind, args) in asked {
            let ids: Vec<String> = args.iter().map(|(_, id)| id.clone()).collect();
            let found = self.records.agent_created(&call.server, kind, &ids)?;
            yes.extend(
                args.into_iter()
                    .filter(|(_, id)| found.contains(id))
                    .map(|(arg, _)| arg.key()),
            );
        }
        Ok(yes)
    }

    fn evaluate(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        counts_for: &mut Vec<Counted>,
        restricting: &mut Vec<String>,
        labels_set: &mut Vec<(String, std::time::Duration)>,
    ) -> Result<(Outcome, Vec<ShadowFinding>), Denial> {
        if let Err(problem) = check_arg_limits(&call.arguments, &self.arg_limits) {
            let instead = match problem {
                ArgProblem::NotAnObject => {
                    "send the arguments as a JSON object of named values (`{}` for none)"
                }
                _ => "send smaller, flatter arguments",
            };
            return Err(plain_denial(
                format!("`{}` was not called: {problem}", call.tool),
                instead,
            ));
        }
        let slice = bundle.slice(&call.server, &call.tool);
        if let Some(problem) = &slice.broken {
            return Err(plain_denial(
                format!(
                    "`{}` was not called: the policies could not be loaded ({problem})",
                    call.tool
                ),
                "report this to the platform team; it is not caused by the agent",
            ));
        }

        let agent_created = match self.agent_created(&slice, call) {
            Ok(found) => found,
            Err(e) if slice.created_enforced => {
                return Err(plain_denial(
                    format!(
                        "`{}` was not called: record store unavailable: {e}",
                        call.tool
                    ),
                    "report this to the platform team; it is not caused by the agent",
                ));
            }
            // Only shadow rules ask: they see no agent-created record.
            Err(_) => Vec::new(),
        };
        // Only an enforced rule's `any`/`all ... created by agent` makes a
        // store that cannot answer deny (elements::each_results).
        let each = crate::elements::each_results(bundle, &slice, call, self.records.as_ref())
            .map_err(|e| {
                plain_denial(
                    format!(
                        "`{}` was not called: record store unavailable: {e}",
                        call.tool
                    ),
                    "report this to the platform team; it is not caused by the agent",
                )
            })?;

        // Counts and sums of the slice's limits; one that cannot be read
        // (store unavailable, no model declared, a bad amount) is left out
        // of the context, which the compiled policy reads as "limit
        // reached", and its denial says why.
        let measures = measure(&self.state, bundle, &slice, call);

        let now = self.clock.unix_millis();
        let clock = slice.clock.locals(now);
        let args = projection(&call.arguments, &slice.arg_fields);
        let base = KeyInput {
            slice: &slice,
            call,
            args: &args,
            counters: &measures.counters,
            budgets: &measures.budgets,
            agent_created: &agent_created,
            labels: &[],
            each: &each,
            clock: &clock,
        };
        // The session's labels matter only when some of them change Cedar's
        // answer: with few labels asked about, every combination is
        // answered (from the memo after the first time), and when all agree
        // (a closed-world tool under `session has label x and
        // tool.open_world`) the store is not read.
        let unread = (!slice.labels_read.is_empty()
            && slice.labels_read.len() <= labels::MAX_LABELS_TRIED)
            .then(|| self.answer_whatever_the_labels(bundle, &slice.labels_read, base))
            .flatten();
        let answer = match unread {
            Some(a) => a,
            None => {
                // The labels the slice's rules ask about, as the session has them.
                let labels = if slice.labels_read.is_empty() {
                    Vec::new()
                } else {
                    match self.state.session_labels(&call.session, &slice.labels_read) {
                        Ok(mut live) => {
                            live.sort_unstable();
                            live
                        }
                        Err(e) if slice.labels_enforced => {
                            return Err(plain_denial(
                                format!(
                                    "`{}` was not called: state store unavailable: the session's labels could not be read: {e}",
                                    call.tool
                                ),
                                "report this to the platform team; it is not caused by the agent",
                            ));
                        }
                        // Only shadow rules ask: they see a session without labels.
                        Err(_) => Vec::new(),
                    }
                };
                let input = KeyInput {
                    labels: &labels,
                    ..base
                };
                answer::answer(&self.authorizer, self.memo, bundle, &input)?
            }
        };
        let Answer {
            permits,
            forbids,
            shadow_hits,
            counted,
            counting_failed,
            labels: labelled,
        } = &*answer;
        let counting_failed = *counting_failed;
        labels_set.extend(labelled.iter().map(|&i| {
            let rule = &bundle.rules()[i];
            let keep = rule
                .keep_secs
                .unwrap_or(warden_lang::ast::Keep::SESSION_SECS);
            (rule.id.clone(), std::time::Duration::from_secs(keep))
        }));

        restricting.extend(forbids.iter().map(|(_, id)| id.to_string()));
        let outcome = if forbids.is_empty() && !permits.is_empty() {
            Outcome::Allow {
                rules: permits.iter().map(|(_, id)| id.to_string()).collect(),
            }
        } else {
            let reasons: Vec<String> = forbids.iter().map(|(_, id)| id.to_string()).collect();
            let outcome =
                self.denial_outcome(bundle, call, &reasons, !permits.is_empty(), &measures);
            unmeasured(outcome, bundle, call, &measures)
        };

        let shadow = shadow_hits
            .iter()
            .filter_map(|&(i, errored)| {
                let rule = &bundle.rules()[i];
                let would = match rule.kind {
                    RuleKind::Allow if errored => return None,
                    RuleKind::Allow => "allow",
                    RuleKind::RequireConfirm => "confirm",
                    _ => "deny",
                };
                Some(ShadowFinding {
                    rule: rule.id.clone(),
                    kind: rule.kind,
                    would,
                    message: hit(rule, call, &measures).message,
                })
            })
            .collect();

        if counting_failed {
            if matches!(outcome, Outcome::Allow { .. }) {
                // Not knowing whether the call counts would let a cap be
                // bypassed: refuse rather than forward uncounted.
                return Err(plain_denial(
                    format!(
                        "`{}` was not called: its call count could not be determined",
                        call.tool
                    ),
                    "report this to the platform team; it is not caused by the agent",
                ));
            }
        } else {
            for &i in counted {
                let rule = &bundle.rules()[i];
                match measures.measured.get(&rule.id) {
                    Some(m) => counts_for.push(Counted {
                        rule: rule.id.clone(),
                        spec: m.spec,
                        split: m.split.clone(),
                        weight: m.weight,
                    }),
                    // Unmeasured: an enforced rule denied above (its
                    // context entry is missing); a shadow one cannot count
                    // this call, and refuses nothing.
                    None if rule.mode != Mode::Shadow
                        && matches!(outcome, Outcome::Allow { .. }) =>
                    {
                        let (why, instead) = measures
                            .unmeasured
                            .get(&rule.id)
                            .map(|u| u.explain(rule))
                            .unwrap_or_else(|| {
                                (
                                    format!("rule `{}` could not be counted", rule.id),
                                    "report this to the platform team; it is not caused by the agent"
                                        .to_string(),
                                )
                            });
                        return Err(plain_denial(
                            format!("`{}` was not called: {why}", call.tool),
                            &instead,
                        ));
                    }
                    None => {}
                }
            }
        }
        Ok((outcome, shadow))
    }

    fn denial_outcome(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        reasons: &[String],
        granted: bool,
        measures: &Measures,
    ) -> Outcome {
        let hits: Vec<(&CompiledRule, RuleHit)> = reasons
            .iter()
            .filter_map(|id| bundle.rule_index(id))
            .map(|i| {
                let rule = &bundle.rules()[i];
                (rule, hit(rule, call, measures))
            })
            .collect();
        // With nothing granting the call, a confirmation would not help
        // either: the person's yes would meet "no rule allows it".
        let only_confirms = hits.iter().all(|(r, _)| r.kind == RuleKind::RequireConfirm);
        if hits.is_empty() || (only_confirms && !granted) {
            return Outcome::Deny(plain_denial(
                format!(
                    "`{}` on `{}` was not called: no policy rule allows it",
                    call.tool, call.server
                ),
                "do not retry; tell the person what you wanted to do, so that they can do it or ask for access",
            ));
        }
        if only_confirms {
            let approvers = hits
                .iter()
                .filter_map(|(r, _)| {
                    let by = r.approval.as_ref()?.approver.clone()?;
                    Some((r.id.clone(), by))
                })
                .collect();
            let rules: Vec<RuleHit> = hits.into_iter().map(|(_, h)| h).collect();
            let message = rules
                .iter()
                .map(|h| h.message.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            return Outcome::Confirm(Confirmation {
                rules,
                message,
                approvers,
            });
        }
        // Restrictions other than confirmations decide; a confirmation
        // would not help while they hold.
        let rules: Vec<RuleHit> = hits
            .into_iter()
            .filter(|(r, _)| r.kind != RuleKind::RequireConfirm)
            .map(|(_, h)| h)
            .collect();
        let kinds: HashSet<RuleKind> = rules.iter().map(|h| h.kind).collect();
        let denies: Vec<&RuleHit> = rules.iter().filter(|h| h.kind == RuleKind::Deny).collect();
        // A deny that reads the time of day may let the same call through
        // at another time; "never" would not be true then. Any deny that
        // does not read the clock still makes it never.
        let timed = |h: &&RuleHit| {
            bundle
                .rule_index(&h.rule)
                .is_some_and(|i| bundle.rules()[i].time_bound)
        };
        let never_fits = never_fits(bundle, &rules, measures);
        let (retry, instead) = if denies.iter().any(|h| !timed(h)) {
            (
                Retry::Never,
                "do not retry; tell the person what you wanted to do, so that they can do it another way".to_string(),
            )
        } else if let Some(never) = never_fits {
            never
        } else if !denies.is_empty() {
            (
                Retry::AtAnotherTime,
                "do not retry now: the rule depends on the time of day; tell the person what you wanted to do, so that they can do it at another time or another way".to_string(),
            )
        } else if kinds.contains(&RuleKind::CapConsecutive) {
            // Only a forwarded call the cap does not count ends the streak:
            // while the cap holds, the person is not asked about calls it
            // counts, so a confirmation cannot end it from here.
            cap_retry(bundle, &rules)
        } else {
            budget_or_rate_retry(bundle, call, &rules, measures)
        };
        let reason = format!(
            "`{}` was not called: {}",
            call.tool,
            rules
                .iter()
                .map(|h| h.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        Outcome::Deny(Denial {
            rules,
            reason,
            retry,
            instead,
        })
    }
}

/// What a policy of a slice's evaluated set stands for.
enum Role {
    /// `default allow`.
    Default,
    /// An enforced rule's policy (by rule index).
    Enforced(usize),
    /// A shadow-mode rule's policy.
    Shadow(usize),
    /// A cap or rate rule's counting policy.
    Counting(usize),
    /// A `label` rule's policy: the call sets the label.
    Label(usize),
}

fn role(bundle: &PolicyBundle, id: &str) -> Option<Role> {
    if id == DEFAULT_POLICY_ID {
        return Some(Role::Default);
    }
    if let Some(rule) = id.strip_suffix(COUNTING_SUFFIX) {
        return bundle.rule_index(rule).map(Role::Counting);
    }
    let i = bundle.rule_index(id)?;
    let rule = &bundle.rules()[i];
    Some(match rule.mode {
        _ if rule.kind == RuleKind::Label => Role::Label(i),
        Mode::Shadow => Role::Shadow(i),
        _ => Role::Enforced(i),
    })
}

fn plain_denial(reason: String, instead: &str) -> Denial {
    Denial {
        rules: Vec::new(),
        reason,
        retry: Retry::Never,
        instead: instead.to_string(),
    }
}

/// How often a decision is taken again when its slots were taken by calls
/// deciding at the same time.
const MAX_RESERVE_ATTEMPTS: usize = 8;
