//! The reference interpreter: docs/language.md and the state rules of
//! docs/engine.md read straight over warden-lang's AST, with no Cedar and
//! nothing of the engine but its input type ([`CallContext`]). It is a test
//! oracle, so it is written to be obviously right rather than fast: caps
//! and rates are recomputed from the whole history of forwarded calls on
//! every decision instead of being kept as counters.

use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use warden_engine::CallContext;
use warden_lang::ast::{
    Atom, CmpOp, Effect, Expr, IdentityField, Item, Mode, PolicyFile, RuleKind, Scope, Subject,
    ToolFlag, Value, VerifiedField,
};

/// The three outcomes of a condition ("Arguments: the fail-closed reading").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    /// An argument is present but not of the type the test compares.
    Unknown,
}

impl Tri {
    fn of(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }

    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// Kleene `and`: false wins, then unknown.
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    /// Kleene `or`: true wins, then unknown.
    fn or(self, other: Tri) -> Tri {
        self.not().and(other.not()).not()
    }
}

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
    /// `(max, window in seconds for a rate, scope)`.
    pub limit: Option<(u64, Option<u64>, Scope)>,
}

/// A `records` declaration: the servers it covers (`None`: all) and its
/// `created by` lines as (tool glob, JSON pointer), in written order.
#[derive(Debug, Clone)]
pub struct Records {
    pub servers: Option<Vec<String>>,
    pub creators: Vec<(String, String)>,
}

/// A checked policy set.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default: Effect,
    pub rules: Vec<Rule>,
    pub records: Vec<Records>,
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
        for item in files.iter().flat_map(|f| &f.items) {
            match item {
                Item::Default(d) => default = Some(d.effect),
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
                                rule.limit = Some((
                                    l.max.node,
                                    l.window.as_ref().map(|w| w.node.as_secs()),
                                    l.scope.node,
                                ))
                            }
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
        }
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
        for rule in &self.rules {
            let refusal = self.refuses(rule, call, &created, history, now);
            let applies = match rule.kind {
                // An allow grants only on "definitely true".
                RuleKind::Allow => self.reads(rule, call, &created) == Tri::True,
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
        Decision { verdict, shadow }
    }

    /// Whether a restricting rule refuses the call: `Some(retry)` if it
    /// does (`Some(None)` for a require-confirm, which has no retry),
    /// `None` if not. The rule's mode does not matter here.
    fn refuses(
        &self,
        rule: &Rule,
        call: &CallContext,
        created: &HashSet<String>,
        history: &[Forwarded],
        now: u64,
    ) -> Option<Option<Retry>> {
        // Restricting rules apply on "possibly true".
        if !self.counts(rule, call, created) {
            return None;
        }
        match rule.kind {
            RuleKind::Allow => None,
            RuleKind::Deny => Some(Some(Retry::Never)),
            RuleKind::RequireConfirm => (!call.confirmed.contains(&rule.name)).then_some(None),
            RuleKind::CapConsecutive => {
                let (max, _, scope) = rule.limit.expect("a checked cap has a limit");
                (self.streak(rule, scope, call, history) >= max)
                    .then_some(Some(Retry::AfterStreakEnds))
            }
            RuleKind::RateLimit => {
                let (max, window, scope) = rule.limit.expect("a checked rate has a limit");
                let window = window.expect("a checked rate has a window");
                let mut times: Vec<u64> = history
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| scope_value(&h.call, scope) == scope_value(call, scope))
                    .filter(|(i, h)| now - h.at < window && self.counted(rule, history, *i))
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
        }
    }

    /// The streak of `rule` before this call: the run of the latest
    /// forwarded calls in the call's scope value that the rule matched and
    /// that the person did not confirm. Any other call in that scope value
    /// ends the streak.
    fn streak(&self, rule: &Rule, scope: Scope, call: &CallContext, history: &[Forwarded]) -> u64 {
        let mine = scope_value(call, scope);
        history
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, h)| scope_value(&h.call, scope) == mine)
            .take_while(|(i, h)| h.call.confirmed.is_empty() && self.counted(rule, history, *i))
            .count() as u64
    }

    /// Whether the forwarded call `history[i]` counted towards a rule when
    /// it was decided: with the records of the calls forwarded before it.
    fn counted(&self, rule: &Rule, history: &[Forwarded], i: usize) -> bool {
        let call = &history[i].call;
        self.counts(rule, call, &self.agent_created(&history[..i], &call.server))
    }

    /// Whether a call counts towards (and so can be restricted by) a rule:
    /// its patterns match and its condition is possibly true.
    fn counts(&self, rule: &Rule, call: &CallContext, created: &HashSet<String>) -> bool {
        self.reads(rule, call, created) != Tri::False
    }

    /// A rule's `server`, `tool` and `when` clauses on a call, given the
    /// agent-created ids on its server.
    fn reads(&self, rule: &Rule, call: &CallContext, created: &HashSet<String>) -> Tri {
        let listed = |patterns: &Option<Vec<String>>, name: &str| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| glob(p, name)))
        };
        if !listed(&rule.servers, &call.server) || !listed(&rule.tools, &call.tool) {
            return Tri::False;
        }
        rule.when
            .as_ref()
            .map_or(Tri::True, |e| eval(e, call, created))
    }
}

/// The value of a scope for a call. engine.md: calls without an agent
/// share one agent scope, the empty name.
fn scope_value(call: &CallContext, scope: Scope) -> (u8, String) {
    match scope {
        Scope::Session => (0, call.session.clone()),
        Scope::User => (1, call.identity.user.clone()),
        Scope::Agent => (2, call.identity.agent.clone().unwrap_or_default()),
    }
}

/// A condition on a call.
pub fn eval(expr: &Expr, call: &CallContext, created: &HashSet<String>) -> Tri {
    match expr {
        Expr::Or(items, _) => items
            .iter()
            .fold(Tri::False, |acc, e| acc.or(eval(e, call, created))),
        Expr::And(items, _) => items
            .iter()
            .fold(Tri::True, |acc, e| acc.and(eval(e, call, created))),
        Expr::Not(e, _) => eval(e, call, created).not(),
        Expr::Atom(atom, _) => atom_value(atom, call, created),
    }
}

fn atom_value(atom: &Atom, call: &CallContext, created: &HashSet<String>) -> Tri {
    match atom {
        Atom::Bool(b) => Tri::of(*b),
        Atom::ViaAgent => Tri::of(call.provenance.via_agent),
        // Compared exactly, not a glob; false when no server is known.
        Atom::ViaServer(name) => Tri::of(call.provenance.via_server.as_deref() == Some(&name.node)),
        Atom::ToolFlag(flag) => {
            // MCP defaults for a hint the server does not give; destructive
            // and idempotent mean something only when not read-only (a
            // read-only tool is neither destructive nor non-idempotent).
            let a = &call.annotations;
            let read_only = a.read_only_hint.unwrap_or(false);
            Tri::of(match flag {
                ToolFlag::ReadOnly => read_only,
                ToolFlag::Destructive => !read_only && a.destructive_hint.unwrap_or(true),
                ToolFlag::Idempotent => read_only || a.idempotent_hint.unwrap_or(false),
                ToolFlag::OpenWorld => a.open_world_hint.unwrap_or(true),
            })
        }
        Atom::InGroup(g) => Tri::of(call.identity.groups.contains(&g.node)),
        // Never unknown: an argument that is absent, null or not a string
        // or number is simply not an id.
        Atom::CreatedByAgent(path, _) => {
            let hit = argument(call, &path.segments)
                .and_then(id_text)
                .is_some_and(|id| created.contains(&id));
            CREATED_HITS.with(|n| n.set(n.get() + u32::from(hit)));
            Tri::of(hit)
        }
        Atom::Verified(field) => {
            let v = &call.identity.verified;
            Tri::of(match field {
                VerifiedField::User => v.user,
                VerifiedField::Groups => v.groups,
                VerifiedField::Agent => v.agent,
                VerifiedField::Model => v.model,
            })
        }
        // Null is unknown: present, of no type (engine.md).
        Atom::Exists(path) => match argument_or_null(call, &path.segments) {
            None => Tri::False,
            Some(Json::Null) => Tri::Unknown,
            Some(_) => Tri::True,
        },
        Atom::Compare(subject, op, lit) => {
            compare(subject_value(subject, call), op.node, &lit.value)
        }
        // `in` is a chain of `==`.
        Atom::In(subject, lits) => {
            let v = subject_value(subject, call);
            lits.iter().fold(Tri::False, |acc, l| {
                acc.or(compare(v.clone(), CmpOp::Eq, &l.value))
            })
        }
        Atom::Matches(subject, pattern) => match subject_value(subject, call) {
            None => Tri::False,
            Some(Json::String(s)) => Tri::of(glob(&pattern.node, &s)),
            Some(_) => Tri::Unknown,
        },
        // docs/language.md "Paths": exact case decides "true", folded case
        // "possibly"; a value that does not normalise is unknown.
        Atom::Under(path, prefix) => match argument_or_null(call, &path.segments) {
            None => Tri::False,
            Some(Json::String(s)) => match warden_lang::paths::normalize_path(s) {
                None => Tri::Unknown,
                Some(normal) => {
                    use warden_lang::paths::{fold_case, is_under};
                    let want = warden_lang::paths::normalize_path(&prefix.node)
                        .expect("a checked prefix normalises");
                    if is_under(&normal, &want) {
                        Tri::True
                    } else if is_under(&fold_case(&normal), &fold_case(&want)) {
                        Tri::Unknown
                    } else {
                        Tri::False
                    }
                }
            },
            Some(_) => Tri::Unknown,
        },
    }
}

/// What a subject stands for in a call, as JSON; `None` when absent (an
/// argument the call lacks, an agent or model not known; a null argument is `Some(Null)`).
fn subject_value(subject: &Subject, call: &CallContext) -> Option<Json> {
    match subject {
        // Null is present and of no type: every comparison on it is unknown.
        Subject::Arg(path) => argument_or_null(call, &path.segments).cloned(),
        Subject::Identity(field) => match field.node {
            IdentityField::User => Some(call.identity.user.clone()),
            IdentityField::Agent => call.identity.agent.clone(),
            IdentityField::Model => call.identity.model.clone(),
        }
        .map(Json::String),
    }
}

/// `subject op literal`. Absent: `==` and the orderings are false, `!=`
/// true. Present with another type than the literal's (or a number Cedar's
/// decimal cannot hold exactly): unknown, and `!=` is exactly `not ==`.
fn compare(value: Option<Json>, op: CmpOp, lit: &Value) -> Tri {
    if op == CmpOp::Ne {
        return compare(value, CmpOp::Eq, lit).not();
    }
    let Some(value) = value else {
        return Tri::False;
    };
    match (&value, lit) {
        (Json::String(a), Value::String(b)) if op == CmpOp::Eq => Tri::of(a == b),
        (Json::Bool(a), Value::Bool(b)) if op == CmpOp::Eq => Tri::of(a == b),
        (Json::Number(n), Value::Int(_) | Value::Decimal(_)) => {
            let Some(a) = decimal(&n.to_string()) else {
                return Tri::Unknown;
            };
            let b = match lit {
                Value::Int(i) => i128::from(*i) * 10_000,
                Value::Decimal(text) => decimal(text).expect("a checked literal fits a decimal"),
                _ => unreachable!(),
            };
            Tri::of(match op {
                CmpOp::Eq => a == b,
                CmpOp::Lt => a < b,
                CmpOp::Le => a <= b,
                CmpOp::Gt => a > b,
                CmpOp::Ge => a >= b,
                CmpOp::Ne => unreachable!("handled above"),
            })
        }
        _ => Tri::Unknown,
    }
}

/// The argument at a path of object keys and array indexes, unless it is
/// absent or null.
fn argument<'a>(call: &'a CallContext, segments: &[String]) -> Option<&'a Json> {
    argument_or_null(call, segments).filter(|v| !v.is_null())
}

/// The argument at a path, `null` included; `None` when absent.
fn argument_or_null<'a>(call: &'a CallContext, segments: &[String]) -> Option<&'a Json> {
    let mut at = &call.arguments;
    for seg in segments {
        at = match at {
            Json::Object(map) => map.get(seg)?,
            // RFC 6901: an index is `0` or digits without a leading zero.
            Json::Array(items)
                if seg == "0"
                    || (!seg.starts_with('0') && seg.bytes().all(|b| b.is_ascii_digit())) =>
            {
                items.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(at)
}

/// A number as a Cedar `decimal` in units of 10^-4, when exactly
/// representable: at most 4 significant decimal places, magnitude at most
/// i64::MAX units. Reads `-12.5`, `3`, `2.5E-2` and `1e300`.
pub fn decimal(text: &str) -> Option<i128> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = format!("{int}{frac}").into_bytes();
    // value = digits × 10^power
    let mut power = exp - frac.len() as i64;
    while digits.last() == Some(&b'0') && digits.len() > 1 {
        digits.pop();
        power += 1;
    }
    let mut units: i128 = 0;
    for d in digits {
        units = units.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    if units == 0 {
        return Some(0);
    }
    // In units of 10^-4: shift by power + 4, which must not drop a digit.
    let shift = power + 4;
    if shift < 0 {
        return None;
    }
    for _ in 0..shift {
        units = units.checked_mul(10)?;
        if units > i128::from(i64::MAX) {
            return None;
        }
    }
    if units > i128::from(i64::MAX) {
        return None;
    }
    Some(if negative { -units } else { units })
}

/// The policy glob: `*` matches any run of characters, every other
/// character matches itself. Plain backtracking over characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kleene_logic() {
        use Tri::*;
        assert_eq!(Unknown.and(False), False);
        assert_eq!(Unknown.and(True), Unknown);
        assert_eq!(Unknown.or(True), True);
        assert_eq!(Unknown.or(False), Unknown);
        assert_eq!(Unknown.not(), Unknown);
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("3"), Some(30_000));
        assert_eq!(decimal("-2.5"), Some(-25_000));
        assert_eq!(decimal("2.5E-2"), Some(250));
        assert_eq!(decimal("1.00000"), Some(10_000));
        assert_eq!(decimal("0.00001"), None);
        assert_eq!(decimal("1e300"), None);
        assert_eq!(decimal("922337203685477.5807"), Some(i128::from(i64::MAX)));
        assert_eq!(decimal("922337203685477.5808"), None);
        assert_eq!(decimal("-0"), Some(0));
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "abbc"));
        assert!(!glob("a*b", "ba"));
        assert!(glob(r"a\*", r"a\xyz"));
        assert!(!glob(r"a\*", "ab"));
    }
}

thread_local! {
    /// How often a `created by agent` condition was true on this thread, so
    /// the differential test can check that the generator reaches records.
    pub static CREATED_HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A JSON value as a record id (docs/language.md, "created by agent"): a
/// string as is, a number as its JSON text.
fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
