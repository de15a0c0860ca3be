//! The reference interpreter: docs/language.md and the state rules of
//! docs/engine.md read straight over warden-lang's AST, with no Cedar and
//! nothing of the engine but its input type ([`CallContext`]). It is a test
//! oracle, so it is written to be obviously right rather than fast: caps,
//! rates and budgets are recomputed from the whole history of forwarded
//! calls on every decision instead of being kept as counters. This file
//! decides (rules, limits, scopes); `conditions.rs` reads conditions.

use crate::conditions::{Env, Tri, argument_or_null, count, decimal, eval, glob, id_text};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use warden_engine::CallContext;
use warden_lang::ast::{Effect, Expr, Item, Mode, PolicyFile, RuleKind, Scope, ScopeSet, ToolFlag};

/// A rule as the reference reads it: only what decides.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
    pub mode: Mode,
    /// `None`: no `server` clause, every server matches.
    pub servers: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub when: Option<Expr>,
    /// `(max, window in seconds for a rate or budget, scopes)`; a
    /// budget's max is in units of 1/10,000.
    pub limit: Option<(u64, Option<u64>, ScopeSet)>,
    /// What a budget adds up: the argument's path.
    pub sum: Option<Vec<String>>,
    /// A `label` rule: how long its label lasts, in seconds.
    pub keep: Option<u64>,
}

/// A `records` declaration: the servers it covers (`None`: all) and its
/// `created by` lines as (tool glob, JSON pointer), in written order.
#[derive(Debug, Clone)]
pub struct Records {
    pub servers: Option<Vec<String>>,
    pub creators: Vec<(String, String)>,
}

/// An annotation declaration: the servers it covers (`None`: all), its
/// tool patterns, and what it says, as (flag, value) in written order.
#[derive(Debug, Clone)]
pub struct Stated {
    pub servers: Option<Vec<String>>,
    pub tools: Vec<String>,
    pub claims: Vec<(ToolFlag, bool)>,
}

/// A checked policy set.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default: Effect,
    pub rules: Vec<Rule>,
    pub records: Vec<Records>,
    pub stated: Vec<Stated>,
}

/// A call that was forwarded upstream, at a time in whole seconds, and
/// the upstream's `tools/call` result, if it answered.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub call: CallContext,
    pub at: u64,
    pub result: Option<Json>,
}

/// When retrying can succeed (docs/engine.md, `Denial::retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retry {
    Never,
    /// A deny whose condition's top-level `and` holds a `during` that
    /// varies: the same call can pass at another time (engine.md).
    AtAnotherTime,
    AfterStreakEnds,
    AfterSeconds(u64),
}

/// Allow, Deny or Confirm with the rule ids behind it, sorted (the docs do
/// not fix an order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Vec<String>),
    Deny(Vec<String>, Retry),
    Confirm(Vec<String>),
}

/// A decision: the verdict and the shadow findings `(rule, would)`, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub shadow: Vec<(String, String)>,
    /// The labels an allowed call puts on its session, sorted.
    pub labels: Vec<String>,
}

/// The id of the `default allow` permit.
pub const DEFAULT_ID: &str = "#default";

impl Policy {
    /// Reads a set that `check` accepted (so there is one default, each
    /// clause at most once, and limits only where they belong).
    pub fn from_ast(files: &[PolicyFile]) -> Policy {
        let mut default = None;
        let mut rules = Vec::new();
        let mut records = Vec::new();
        let mut stated = Vec::new();
        for item in files.iter().flat_map(|f| &f.items) {
            match item {
                Item::Default(d) => default = Some(d.effect),
                Item::Annotation(a) => {
                    let names = |l: &warden_lang::ast::PatternList| {
                        l.patterns.iter().map(|p| p.node.clone()).collect()
                    };
                    stated.push(Stated {
                        servers: a.servers.as_ref().map(names),
                        tools: names(&a.tools),
                        claims: a.claims.iter().map(|c| (c.flag, c.value)).collect(),
                    });
                }
                Item::Records(decl) => {
                    use warden_lang::ast::RecordsClause;
                    let mut read = Records {
                        servers: None,
                        creators: Vec::new(),
                    };
                    for clause in &decl.clauses {
                        match clause {
                            RecordsClause::Server(p) => {
                                read.servers =
                                    Some(p.patterns.iter().map(|s| s.node.clone()).collect())
                            }
                            RecordsClause::CreatedBy(c) => read
                                .creators
                                .push((c.tool.node.clone(), c.pointer.node.clone())),
                        }
                    }
                    records.push(read);
                }
                Item::Rule(r) => {
                    let mut rule = Rule {
                        name: r.name.node.clone(),
                        kind: r.kind.node,
                        mode: Mode::Enforce,
                        servers: None,
                        tools: None,
                        when: None,
                        limit: None,
                        sum: None,
                        keep: (r.kind.node == RuleKind::Label)
                            .then_some(warden_lang::ast::Keep::SESSION_SECS),
                    };
                    for clause in &r.clauses {
                        use warden_lang::ast::Clause;
                        let names = |p: &warden_lang::ast::PatternList| {
                            p.patterns.iter().map(|s| s.node.clone()).collect()
                        };
                        match clause {
                            Clause::Server(p) => rule.servers = Some(names(p)),
                            Clause::Tool(p) => rule.tools = Some(names(p)),
                            Clause::When(e) => rule.when = Some(e.clone()),
                            Clause::Reason(_) => {}
                            Clause::Mode(m) => rule.mode = m.node,
                            Clause::Limit(l) => {
                                let max = if r.kind.node == RuleKind::Budget {
                                    decimal(&l.max.node).expect("a checked budget max") as u64
                                } else {
                                    l.whole_max().expect("a checked count")
                                };
                                rule.limit = Some((
                                    max,
                                    l.window.as_ref().map(|w| w.node.as_secs()),
                                    l.scope_set(),
                                ))
                            }
                            Clause::Sum(p) => rule.sum = Some(p.segments.clone()),
                            // Who approves and what a grant covers are the
                            // relay's and the store's, not the decision's:
                            // the generated sets have none.
                            Clause::Approver(_) | Clause::Grant(_) => {}
                            Clause::Keep(k) => rule.keep = Some(k.node.secs()),
                        }
                    }
                    rules.push(rule);
                }
            }
        }
        Policy {
            default: default.expect("a checked set has a default"),
            rules,
            records,
            stated,
        }
    }

    /// The hints the rules read for `call` (docs/language.md, "What the
    /// operator says a tool is"): per hint, the first declaration that
    /// covers the tool and says it, else the upstream's; a tool said to be
    /// destructive, or not idempotent, is not read-only whatever else is
    /// said of it.
    pub fn hints(&self, call: &CallContext) -> warden_engine::ToolAnnotations {
        let said = |flag: ToolFlag| {
            self.stated.iter().find_map(|s| {
                let server_ok = s
                    .servers
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| glob(p, &call.server)));
                let tool_ok = s.tools.iter().any(|p| glob(p, &call.tool));
                if !(server_ok && tool_ok) {
                    return None;
                }
                s.claims.iter().find(|(f, _)| *f == flag).map(|(_, v)| *v)
            })
        };
        let mut h = call.annotations;
        let (ro, de, id, ow) = (
            said(ToolFlag::ReadOnly),
            said(ToolFlag::Destructive),
            said(ToolFlag::Idempotent),
            said(ToolFlag::OpenWorld),
        );
        if ro.is_some() {
            h.read_only_hint = ro;
        }
        if de.is_some() {
            h.destructive_hint = de;
        }
        if id.is_some() {
            h.idempotent_hint = id;
        }
        if ow.is_some() {
            h.open_world_hint = ow;
        }
        if de == Some(true) || id == Some(false) {
            h.read_only_hint = Some(false);
        }
        if ro.is_some() || de.is_some() || id.is_some() || ow.is_some() {
            crate::conditions::count("stated:applied");
        }
        h
    }

    /// The ids on `server` whose record a call through the agent path
    /// created, after the forwarded calls of `history`: each successful
    /// result of a declared creating tool (the first declaration and line
    /// naming the server and tool give the pointer into
    /// `structuredContent`) tags its id with its creator's path; a later
    /// creation of the same id keeps the first tag (the first creation
    /// wins). The generated sets declare one kind, so (server, id) is the
    /// record's key here.
    pub fn agent_created(&self, history: &[Forwarded], server: &str) -> HashSet<String> {
        let mut tags: HashMap<String, bool> = HashMap::new();
        for f in history.iter().filter(|f| f.call.server == server) {
            let Some(result) = &f.result else { continue };
            if result.get("isError") == Some(&Json::Bool(true)) {
                continue;
            }
            let pointer = self.records.iter().find_map(|r| {
                let server_ok = r
                    .servers
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| glob(p, server)));
                if !server_ok {
                    return None;
                }
                r.creators
                    .iter()
                    .find(|(tool, _)| glob(tool, &f.call.tool))
                    .map(|(_, p)| p.as_str())
            });
            let Some(pointer) = pointer else { continue };
            if let Some(id) = result
                .get("structuredContent")
                .and_then(|c| c.pointer(pointer))
                .and_then(id_text)
            {
                tags.entry(id).or_insert(f.call.provenance.via_agent);
            }
        }
        tags.into_iter()
            .filter(|(_, a)| *a)
            .map(|(id, _)| id)
            .collect()
    }

    /// Decides `call` at time `now`, given every call forwarded before it.
    pub fn decide(&self, call: &CallContext, history: &[Forwarded], now: u64) -> Decision {
        let mut permits = Vec::new();
        if self.default == Effect::Allow {
            permits.push(DEFAULT_ID.to_string());
        }
        // (rule, retry) of each enforced rule that refuses.
        let mut refusals: Vec<(&Rule, Option<Retry>)> = Vec::new();
        let mut shadow = Vec::new();
        let created = self.agent_created(history, &call.server);
        let labels = self.labels_at(history, &call.session, now);
        for rule in self.rules.iter().filter(|r| r.kind != RuleKind::Label) {
            let refusal = self.refuses(rule, call, &created, &labels, history, now);
            let applies = match rule.kind {
                // An allow grants only on "definitely true".
                RuleKind::Allow => self.reads(rule, call, &created, &labels, now) == Tri::True,
                _ => refusal.is_some(),
            };
            if !applies {
                continue;
            }
            match (rule.mode, rule.kind) {
                (Mode::Shadow, RuleKind::Allow) => shadow.push((rule.name.clone(), "allow".into())),
                (Mode::Shadow, RuleKind::RequireConfirm) => {
                    shadow.push((rule.name.clone(), "confirm".into()))
                }
                (Mode::Shadow, _) => shadow.push((rule.name.clone(), "deny".into())),
                (Mode::Enforce, RuleKind::Allow) => permits.push(rule.name.clone()),
                (Mode::Enforce, _) => refusals.push((rule, refusal.flatten())),
            }
        }
        shadow.sort();
        let ids = |rs: &[(&Rule, Option<Retry>)]| {
            let mut v: Vec<String> = rs.iter().map(|(r, _)| r.name.clone()).collect();
            v.sort();
            v
        };
        let verdict = if refusals.is_empty() && !permits.is_empty() {
            permits.sort();
            Verdict::Allow(permits)
        } else if refusals.is_empty() {
            Verdict::Deny(Vec::new(), Retry::Never)
        } else if refusals
            .iter()
            .all(|(r, _)| r.kind == RuleKind::RequireConfirm)
        {
            // engine.md: "A call is Confirm only when every refusing rule
            // is a require-confirm" and something grants it; with nothing
            // granting it a yes would not help.
            if permits.is_empty() {
                Verdict::Deny(Vec::new(), Retry::Never)
            } else {
                Verdict::Confirm(ids(&refusals))
            }
        } else {
            // Otherwise the other refusals decide alone (a yes would not
            // help); a deny wins over a cap, a cap over a rate, and of
            // several rates the longest wait.
            refusals.retain(|(r, _)| r.kind != RuleKind::RequireConfirm);
            let retry = refusals
                .iter()
                .map(|(_, retry)| retry.expect("deny, cap and rate refusals carry a retry"))
                .min_by(|a, b| match (a, b) {
                    (Retry::AfterSeconds(x), Retry::AfterSeconds(y)) => y.cmp(x),
                    _ => a.cmp(b),
                })
                .expect("at least one refusal");
            Verdict::Deny(ids(&refusals), retry)
        };
        // A label is set by a call that goes out, when the label rule's
        // patterns match and its condition is possibly true.
        let mut set: Vec<String> = match verdict {
            Verdict::Allow(_) => self
                .rules
                .iter()
                .filter(|r| r.kind == RuleKind::Label)
                .filter(|r| self.counts(r, call, &created, &labels, now))
                .map(|r| r.name.clone())
                .collect(),
            _ => Vec::new(),
        };
        set.sort();
        Decision {
            verdict,
            shadow,
            labels: set,
        }
    }

    /// The labels of `session` at `now`, after the forwarded calls of
    /// `history`: each forwarded call of the session sets every label
    /// whose rule it matches (read with the labels the session had when
    /// it was decided), until its time plus the label's life; set again,
    /// a label lasts until the later end. Live while its end is after
    /// `now`.
    pub fn labels_at(&self, history: &[Forwarded], session: &str, now: u64) -> HashSet<String> {
        let live = |until: &HashMap<String, u64>, at: u64| -> HashSet<String> {
            until
                .iter()
                .filter(|(_, end)| **end > at)
                .map(|(l, _)| l.clone())
                .collect()
        };
        let mut until: HashMap<String, u64> = HashMap::new();
        for (i, h) in history.iter().enumerate() {
            if h.call.session != session {
                continue;
            }
            let before = live(&until, h.at);
            let created = self.agent_created(&history[..i], &h.call.server);
            for rule in self.rules.iter().filter(|r| r.kind == RuleKind::Label) {
                let sets = crate::conditions::quietly(|| {
                    self.counts(rule, &h.call, &created, &before, h.at)
                });
                if sets {
                    let end = h.at + rule.keep.expect("a label rule lasts");
                    let e = until.entry(rule.name.clone()).or_insert(end);
                    *e = (*e).max(end);
                }
            }
        }
        live(&until, now)
    }

    /// Whether a restricting rule refuses the call: `Some(retry)` if it
    /// does (`Some(None)` for a require-confirm, which has no retry),
    /// `None` if not. The rule's mode does not matter here.
    fn refuses(
        &self,
        rule: &Rule,
        call: &CallContext,
        created: &HashSet<String>,
        labels: &HashSet<String>,
        history: &[Forwarded],
        now: u64,
    ) -> Option<Option<Retry>> {
        // Restricting rules apply on "possibly true".
        if !self.counts(rule, call, created, labels, now) {
            return None;
        }
        if let Some((_, _, scopes)) = rule.limit {
            // A limit counting per model refuses a call that declares no
            // model, rather than counting it with the others (fail closed).
            if split_key(call, scopes).is_none() {
                count("scope:missing-model");
                return Some(Some(Retry::Never));
            }
            if !scopes.split_by().is_empty() || scopes.row().is_empty() {
                count(&format!("scope:{}", scopes.key()));
            }
        }
        match rule.kind {
            RuleKind::Allow | RuleKind::Label => None,
            RuleKind::Deny => Some(Some(
                if rule.when.as_ref().is_some_and(|w| w.is_time_bound()) {
                    Retry::AtAnotherTime
                } else {
                    Retry::Never
                },
            )),
            RuleKind::RequireConfirm => (!call.confirmed.contains(&rule.name)).then_some(None),
            RuleKind::CapConsecutive => {
                let (max, _, scopes) = rule.limit.expect("a checked cap has a limit");
                (self.streak(rule, scopes, call, history) >= max)
                    .then_some(Some(Retry::AfterStreakEnds))
            }
            RuleKind::RateLimit => {
                let (max, window, _) = rule.limit.expect("a checked rate has a limit");
                let window = window.expect("a checked rate has a window");
                let mut times: Vec<u64> = self
                    .in_window(rule, call, history, now)
                    .map(|(_, h)| h.at)
                    .collect();
                times.sort();
                let count = times.len() as u64;
                // A slot frees when enough of the oldest calls have left
                // the window for the count to drop below max.
                (count >= max).then(|| {
                    let leaving = times[(count - max) as usize];
                    Some(Retry::AfterSeconds(leaving + window - now))
                })
            }
            RuleKind::Budget => self.budget(rule, call, history, now).map(Some),
        }
    }

    /// A budget on a call it counts: `None` when the call's amount fits
    /// in what its scope has left in the window, else when to retry.
    fn budget(
        &self,
        rule: &Rule,
        call: &CallContext,
        history: &[Forwarded],
        now: u64,
    ) -> Option<Retry> {
        let (max, window, _) = rule.limit.expect("a checked budget has a limit");
        let window = window.expect("a checked budget has a window");
        let path = rule.sum.as_ref().expect("a checked budget has a sum");
        let Some(amount) = amount(call, path) else {
            count("budget:bad-amount");
            return Some(Retry::Never);
        };
        // (time, amount) of the calls that used the budget in the window.
        let mut used: Vec<(u64, u64)> = self
            .in_window(rule, call, history, now)
            .map(|(_, h)| (h.at, self::amount(&h.call, path).unwrap_or(0)))
            .collect();
        used.sort();
        let total: u64 = used.iter().map(|(_, a)| a).sum();
        if u128::from(total) + u128::from(amount) <= u128::from(max) {
            count(if used.is_empty() {
                "budget:fits-fresh"
            } else {
                "budget:fits-after-use"
            });
            return None;
        }
        count("budget:crossed");
        if amount > max {
            return Some(Retry::Never);
        }
        // The earliest time enough of the oldest uses have left the window.
        let mut left = total;
        for (at, a) in &used {
            left -= a;
            if left + amount <= max {
                return Some(Retry::AfterSeconds(at + window - now));
            }
        }
        unreachable!("with every use gone the amount fits")
    }

    /// The forwarded calls a rate or budget counts for `call`: same scope
    /// values, inside the window, counted by the rule when forwarded.
    fn in_window<'h>(
        &'h self,
        rule: &'h Rule,
        call: &CallContext,
        history: &'h [Forwarded],
        now: u64,
    ) -> impl Iterator<Item = (usize, &'h Forwarded)> + 'h {
        let (_, window, scopes) = rule.limit.expect("a rate or budget has a limit");
        let window = window.expect("a rate or budget has a window");
        let row = row_key(call, scopes);
        let split = split_key(call, scopes);
        history
            .iter()
            .enumerate()
            .filter(move |(_, h)| row_key(&h.call, scopes) == row)
            .filter(move |(_, h)| split_key(&h.call, scopes) == split)
            .filter(move |(i, h)| now - h.at < window && self.counted(rule, history, *i))
    }

    /// The streak of a cap before this call (docs/language.md, "Scopes"):
    /// measured in the call's row (the calls of its session, user or
    /// agent, as the scope says; all calls when it names none), as the
    /// run of the latest forwarded calls in the row that the rule matched,
    /// that the person did not confirm, and that have the split value
    /// (model, tool) of the latest one. A call the rule does not match or
    /// a confirmed call ends it; one with another split value starts a
    /// run of its own. The call's count is that run if its own split
    /// value is the run's, else 0.
    fn streak(
        &self,
        rule: &Rule,
        scopes: ScopeSet,
        call: &CallContext,
        history: &[Forwarded],
    ) -> u64 {
        let row = row_key(call, scopes);
        let mine = split_key(call, scopes);
        let mut in_row = history
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, h)| row_key(&h.call, scopes) == row)
            .peekable();
        let Some((_, latest)) = in_row.peek() else {
            return 0;
        };
        let run = split_key(&latest.call, scopes);
        if run != mine {
            return 0;
        }
        in_row
            .take_while(|(i, h)| {
                h.call.confirmed.is_empty()
                    && self.counted(rule, history, *i)
                    && split_key(&h.call, scopes) == run
            })
            .count() as u64
    }

    /// Whether the forwarded call `history[i]` counted towards a rule when
    /// it was decided: with the records of the calls forwarded before it,
    /// at its time.
    fn counted(&self, rule: &Rule, history: &[Forwarded], i: usize) -> bool {
        let h = &history[i];
        crate::conditions::quietly(|| {
            let created = self.agent_created(&history[..i], &h.call.server);
            let labels = self.labels_at(&history[..i], &h.call.session, h.at);
            self.counts(rule, &h.call, &created, &labels, h.at)
        })
    }

    /// Whether a call counts towards (and so can be restricted by) a rule:
    /// its patterns match and its condition is possibly true.
    fn counts(
        &self,
        rule: &Rule,
        call: &CallContext,
        created: &HashSet<String>,
        labels: &HashSet<String>,
        now: u64,
    ) -> bool {
        self.reads(rule, call, created, labels, now) != Tri::False
    }

    /// A rule's `server`, `tool` and `when` clauses on a call at `now`,
    /// given the agent-created ids on its server.
    fn reads(
        &self,
        rule: &Rule,
        call: &CallContext,
        created: &HashSet<String>,
        labels: &HashSet<String>,
        now: u64,
    ) -> Tri {
        let listed = |patterns: &Option<Vec<String>>, name: &str| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| glob(p, name)))
        };
        if !listed(&rule.servers, &call.server) || !listed(&rule.tools, &call.tool) {
            return Tri::False;
        }
        let env = Env {
            call,
            annotations: self.hints(call),
            created,
            labels,
            now: now as i64,
        };
        rule.when.as_ref().map_or(Tri::True, |e| eval(e, &env))
    }
}

/// A call's values of the *whose* part of a scope set (session, user,
/// agent, in that order). engine.md: calls without an agent share one
/// agent value, the empty name.
fn row_key(call: &CallContext, scopes: ScopeSet) -> Vec<String> {
    scopes
        .row()
        .iter()
        .map(|s| match s {
            Scope::Session => call.session.clone(),
            Scope::User => call.identity.user.clone(),
            _ => call.identity.agent.clone().unwrap_or_default(),
        })
        .collect()
}

/// A call's values of the *which* part (model; the tool as its server and
/// name); `None` when the scope counts per model and the call declares
/// none.
fn split_key(call: &CallContext, scopes: ScopeSet) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for s in scopes.split_by().iter() {
        match s {
            Scope::Model => out.push(call.identity.model.clone()?),
            _ => {
                out.push(call.server.clone());
                out.push(call.tool.clone());
            }
        }
    }
    Some(out)
}

/// A budget's amount on a call, in units of 1/10,000: the argument must
/// be a JSON number, not negative, with at most four decimal places, in
/// Cedar decimal's range; `None` otherwise (refused, fail closed). A
/// number with a fraction or an exponent is held as a binary float, whose
/// shortest text is the number sent only up to 15 significant digits:
/// one with more is refused too, never rounded (engine.md, budgets).
pub fn amount(call: &CallContext, path: &[String]) -> Option<u64> {
    let Json::Number(n) = argument_or_null(call, path)? else {
        return None;
    };
    let text = n.to_string();
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_matches('0').len();
    if n.as_i64().is_none() && n.as_u64().is_none() && significant > 15 {
        count("budget:float-too-precise");
        return None;
    }
    decimal(&text).filter(|u| *u >= 0).map(|u| u as u64)
}
