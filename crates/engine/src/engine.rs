//! The decision API: [`Engine::decide`] turns a [`CallContext`] into
//! Allow, Deny or Confirm (plus shadow findings) and, for an Allow that
//! counts towards caps or rates, holds its slots (checked and taken in one
//! atomic step of the store, so concurrent calls cannot overshoot);
//! [`Engine::record_forwarded`] commits them once the call was forwarded
//! (a [`Decided`] dropped without that releases them), and
//! [`Engine::record_created`] stores the records a forwarded call created. Every
//! error on the way (bad arguments, an evaluation error, state that cannot
//! be read) ends in Deny with a reason; nothing here can allow by accident.

use crate::args::ArgLimits;
use crate::call::CallContext;
use crate::gate::StateGate;
use crate::index::{PolicyBundle, Slice};
use crate::memo::{MemoMode, MemoStats};
use crate::records::{NewRecord, RecordBackend, RecordError, RecordStore, extract_ids, id_of};
use crate::state::{Clock, StateBackend, StateError, StateLimits, StateStore, SystemClock};
use arc_swap::ArcSwap;
use cedar_policy::Authorizer;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use warden_lang::ast::{Mode, RuleKind};
use warden_lang::compile::{COUNTING_SUFFIX, DEFAULT_POLICY_ID};
use warden_lang::{CompiledRule, CreatedArg};

mod answer;
mod evaluate;
mod grants;
mod labels;
mod limit_advice;
mod limits;
mod reserve;
use limit_advice::{budget_or_rate_retry, cap_retry, hit, never_fits};
use limits::{Measures, cap_rows};

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
    /// Whether a limited call's counts are read in the store step that
    /// takes its hold ([`StateStore::count_and_reserve`], `engine::reserve`):
    /// one round trip instead of two. `None`: where the store says it
    /// saves one ([`StateStore::reads_with_reserve`]: Redis).
    pub reserve_with_counts: Option<bool>,
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
            reserve_with_counts: None,
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
    reserve_with_counts: bool,
    next_id: AtomicU64,
    id_prefix: String,
}

impl Engine {
    pub fn new(bundle: PolicyBundle, options: EngineOptions) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let store = options
            .state
            .open(options.state_limits, Arc::clone(&options.clock));
        let reserve_with_counts = options
            .reserve_with_counts
            .unwrap_or_else(|| store.reads_with_reserve());
        Engine {
            policies: ArcSwap::from_pointee(bundle),
            state: Arc::new(StateGate::new(store)),
            records: options.records.open(Arc::clone(&options.clock)),
            clock: options.clock,
            arg_limits: options.arg_limits,
            authorizer: Authorizer::new(),
            memo: options.memo,
            reserve_with_counts,
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
        self.forwarded_writes(call, decided).apply()
    }

    /// What [`Engine::record_forwarded`] writes, owned, to be applied
    /// elsewhere: a transport whose store is a round trip away
    /// ([`Engine::state_is_remote`]) applies it on a blocking thread while
    /// the upstream already works on the call, and lets the session's
    /// next call be decided (and the answer be given) only once it is
    /// applied. Dropped unapplied, a held call's slots are released when
    /// its last [`Decided`] goes, as if it had not been forwarded.
    pub fn forwarded_writes(&self, call: &CallContext, decided: &Decided) -> ForwardedWrites {
        if let Some(hold) = &decided.hold {
            return ForwardedWrites(Writes::Commit(Arc::clone(hold)));
        }
        if !decided.is_allow() {
            return ForwardedWrites(Writes::Nothing);
        }
        // No slot held: nothing counts it, so it only ends streaks, in the
        // rows some cap of the set in force measures streaks in.
        let bundle = self.policies.load();
        let keys = cap_rows(&bundle, call);
        if keys.is_empty() {
            return ForwardedWrites(Writes::Nothing);
        }
        ForwardedWrites(Writes::EndStreaks(Arc::clone(&self.state), keys))
    }

    /// Whether each write to the state store is a round trip to another
    /// process (Redis), worth taking off the call's path.
    pub fn state_is_remote(&self) -> bool {
        self.state.store().reads_with_reserve()
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

/// The writes that count a forwarded call ([`Engine::forwarded_writes`]).
#[derive(Debug)]
#[must_use = "a forwarded call is counted only when its writes are applied"]
pub struct ForwardedWrites(Writes);

#[derive(Debug)]
enum Writes {
    Nothing,
    Commit(Arc<crate::gate::HoldGuard>),
    EndStreaks(Arc<StateGate>, Vec<crate::state::ScopeKey>),
}

impl ForwardedWrites {
    /// Whether there is anything to write (a store to reach).
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Writes::Nothing)
    }

    /// Writes them (see [`Engine::record_forwarded`]).
    pub fn apply(self) -> Result<(), StateError> {
        match self.0 {
            Writes::Nothing => Ok(()),
            Writes::Commit(hold) => hold.commit(),
            Writes::EndStreaks(state, keys) => state.end_streaks(&keys),
        }
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

/// What a call refused for the platform's sake is told to do instead.
const FOR_THE_PLATFORM: &str = "report this to the platform team; it is not caused by the agent";

/// A plain denial whose cause is warden's or the platform's (a store that
/// cannot answer, policies that cannot be used), not the agent's.
fn platform_denial(reason: String) -> Denial {
    plain_denial(reason, FOR_THE_PLATFORM)
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
