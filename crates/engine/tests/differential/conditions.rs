//! The reference's reading of conditions: docs/language.md's three-valued
//! (fail-closed) meaning of every atom, straight over warden-lang's AST
//! and the call's JSON, with no Cedar and nothing of the engine: argument
//! tests, `under`, `created by agent`, `during` ([`crate::clock`]), `any`
//! and `all` over a list's elements, `ignoring case`, `length of` and
//! `size of`. It also counts how often each new kind of test was reached,
//! so the differential test can tell a generator that stopped reaching one.

use serde_json::Value as Json;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use warden_engine::CallContext;
use warden_lang::ast::{
    Atom, CmpOp, Expr, IdentityField, Literal, Quantifier, Subject, ToolFlag, Value, VerifiedField,
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
    pub fn of(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }

    pub fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// Kleene `and`: false wins, then unknown.
    pub fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    /// Kleene `or`: true wins, then unknown.
    pub fn or(self, other: Tri) -> Tri {
        self.not().and(other.not()).not()
    }
}

/// What a condition is read against: the call, the agent-created ids on
/// its server, and the wall time of the call (Unix seconds).
pub struct Env<'a> {
    pub call: &'a CallContext,
    /// The tool's hints as the rules read them: the operator's word where
    /// an annotation declaration gives it, else the upstream's.
    pub annotations: warden_engine::ToolAnnotations,
    pub created: &'a HashSet<String>,
    /// The labels the call's session has when it is decided.
    pub labels: &'a HashSet<String>,
    pub now: i64,
}

thread_local! {
    /// How often each kind of test came out which way on this thread
    /// (`during:true`, `any:unknown`, ...).
    static HITS: RefCell<BTreeMap<String, u32>> = const { RefCell::new(BTreeMap::new()) };
    /// Set while earlier calls are read again (whether they counted), so
    /// that only the decisions themselves are counted.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` without counting what it reaches.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let was = QUIET.with(|q| q.replace(true));
    let out = f();
    QUIET.with(|q| q.set(was));
    out
}

/// Counts one outcome of a kind of test.
pub fn hit(what: &str, t: Tri) {
    count(&format!("{what}:{t:?}").to_lowercase());
}

/// Counts one event (no outcome).
pub fn count(what: &str) {
    if QUIET.with(Cell::get) {
        return;
    }
    HITS.with(|h| *h.borrow_mut().entry(what.to_string()).or_default() += 1);
}

/// The counts so far on this thread.
pub fn hits() -> BTreeMap<String, u32> {
    HITS.with(|h| h.borrow().clone())
}

/// A condition on a call.
pub fn eval(expr: &Expr, env: &Env<'_>) -> Tri {
    match expr {
        Expr::Or(items, _) => items.iter().fold(Tri::False, |acc, e| acc.or(eval(e, env))),
        Expr::And(items, _) => items.iter().fold(Tri::True, |acc, e| acc.and(eval(e, env))),
        Expr::Not(e, _) => eval(e, env).not(),
        Expr::Atom(atom, _) => atom_value(atom, env),
    }
}

fn atom_value(atom: &Atom, env: &Env<'_>) -> Tri {
    let call = env.call;
    match atom {
        Atom::Bool(b) => Tri::of(*b),
        Atom::ViaAgent => Tri::of(call.provenance.via_agent),
        Atom::SessionLabel(name) => {
            let t = Tri::of(env.labels.contains(&name.node));
            hit("label", t);
            t
        }
        // Compared exactly, not a glob; false when no server is known.
        Atom::ViaServer(name) => Tri::of(call.provenance.via_server.as_deref() == Some(&name.node)),
        Atom::ToolFlag(flag) => {
            // MCP defaults for a hint the server does not give; destructive
            // and idempotent mean something only when not read-only (a
            // read-only tool is neither destructive nor non-idempotent).
            let a = &env.annotations;
            let read_only = a.read_only_hint.unwrap_or(false);
            Tri::of(match flag {
                ToolFlag::ReadOnly => read_only,
                ToolFlag::Destructive => !read_only && a.destructive_hint.unwrap_or(true),
                ToolFlag::Idempotent => read_only || a.idempotent_hint.unwrap_or(false),
                ToolFlag::OpenWorld => a.open_world_hint.unwrap_or(true),
            })
        }
        Atom::InGroup(g) => Tri::of(call.identity.groups.contains(&g.node)),
        Atom::Verified(field) => {
            let v = &call.identity.verified;
            Tri::of(match field {
                VerifiedField::User => v.user,
                VerifiedField::Groups => v.groups,
                VerifiedField::Agent => v.agent,
                VerifiedField::Model => v.model,
            })
        }
        // The clock is always known here (the generated zones are ones
        // the reference knows), so a window is true or false.
        Atom::During(d) => {
            let t = match crate::clock::during(d, env.now) {
                Some(b) => Tri::of(b),
                None => Tri::Unknown,
            };
            hit("during", t);
            t
        }
        // The inner test reads the list's elements: absent list false, a
        // value that is not a list unknown; `any` is the Kleene `or` of
        // the elements' outcomes (false for none), `all` their `and`
        // (true for none).
        Atom::Each(q, inner) => {
            let list = inner_arg(inner).and_then(|p| argument_or_null(call, &p.segments));
            let t = match list {
                None => Tri::False,
                Some(Json::Array(items)) => match q.node {
                    Quantifier::Any => items
                        .iter()
                        .fold(Tri::False, |acc, e| acc.or(on_value(inner, Some(e), env))),
                    Quantifier::All => items
                        .iter()
                        .fold(Tri::True, |acc, e| acc.and(on_value(inner, Some(e), env))),
                },
                Some(_) => Tri::Unknown,
            };
            hit(q.node.keyword(), t);
            t
        }
        other => {
            let value = inner_arg(other).and_then(|p| argument_or_null(call, &p.segments));
            on_value(other, value, env)
        }
    }
}

/// The argument an argument test reads (for a quantified test, the list).
fn inner_arg(atom: &Atom) -> Option<&warden_lang::ast::ArgPath> {
    match atom {
        Atom::Exists(p) | Atom::CreatedByAgent(p, _) | Atom::Under(p, _) => Some(p),
        Atom::Compare(s, _, _) | Atom::In(s, _) | Atom::Matches(s, _) => s.arg(),
        Atom::IgnoringCase(inner) => inner_arg(inner),
        _ => None,
    }
}

/// An argument test on `value` (the argument's value, `None` when
/// absent): the test itself, or the test on one element of a list.
fn on_value(atom: &Atom, value: Option<&Json>, env: &Env<'_>) -> Tri {
    match atom {
        // Never unknown: a value that is absent, null or not a string or
        // number is simply not an id.
        Atom::CreatedByAgent(_, _) => {
            let hit = value
                .and_then(id_text)
                .is_some_and(|id| env.created.contains(&id));
            CREATED_HITS.with(|n| n.set(n.get() + u32::from(hit)));
            Tri::of(hit)
        }
        // Null is unknown: present, of no type (engine.md).
        Atom::Exists(_) => match value {
            None => Tri::False,
            Some(Json::Null) => Tri::Unknown,
            Some(_) => Tri::True,
        },
        Atom::Compare(subject, op, lit) => {
            compare(subject_value(subject, value, env.call), op.node, &lit.value)
        }
        // `in` is a chain of `==`.
        Atom::In(subject, lits) => in_list(subject_value(subject, value, env.call), lits),
        Atom::Matches(subject, pattern) => {
            matches(subject_value(subject, value, env.call), &pattern.node)
        }
        // Both sides folded with `str::to_lowercase`; a value that is
        // not a string keeps the inner test's reading (unknown).
        Atom::IgnoringCase(inner) => {
            let fold = |v: Option<Json>| match v {
                Some(Json::String(s)) => Some(Json::String(s.to_lowercase())),
                other => other,
            };
            let folded_lit = |l: &Literal| match &l.value {
                Value::String(s) => Value::String(s.to_lowercase()),
                other => other.clone(),
            };
            let t = match inner.as_ref() {
                Atom::Compare(s, op, lit) => compare(
                    fold(subject_value(s, value, env.call)),
                    op.node,
                    &folded_lit(lit),
                ),
                Atom::In(s, lits) => {
                    let lits: Vec<Literal> = lits
                        .iter()
                        .map(|l| Literal {
                            value: folded_lit(l),
                            span: l.span,
                        })
                        .collect();
                    in_list(fold(subject_value(s, value, env.call)), &lits)
                }
                Atom::Matches(s, p) => matches(
                    fold(subject_value(s, value, env.call)),
                    &p.node.to_lowercase(),
                ),
                other => panic!("a checked `ignoring case` wraps a comparison, not {other:?}"),
            };
            hit("ignoring-case", t);
            t
        }
        // docs/language.md "Paths": exact case decides "true", folded case
        // "possibly"; a value that does not normalise is unknown.
        Atom::Under(_, prefix) => match value {
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
        other => panic!("not an argument test: {other:?}"),
    }
}

fn in_list(v: Option<Json>, lits: &[Literal]) -> Tri {
    lits.iter().fold(Tri::False, |acc, l| {
        acc.or(compare(v.clone(), CmpOp::Eq, &l.value))
    })
}

fn matches(v: Option<Json>, pattern: &str) -> Tri {
    match v {
        None => Tri::False,
        Some(Json::String(s)) => Tri::of(glob(pattern, &s)),
        Some(_) => Tri::Unknown,
    }
}

/// What a subject stands for, as JSON; `None` when absent (an argument
/// the call lacks, an agent or model not known; a null argument is
/// `Some(Null)`). `value` is the argument's (or the element's) value.
/// `length of` is a string's characters or a list's elements, and null
/// (unknown) for any other value; `size of` is a string's UTF-8 bytes or
/// any other value's compact JSON text's, but null for `null` (which is
/// unknown to every test, docs/language.md).
fn subject_value(subject: &Subject, value: Option<&Json>, call: &CallContext) -> Option<Json> {
    match subject {
        Subject::Arg(_) => value.cloned(),
        Subject::Identity(field) => match field.node {
            IdentityField::User => Some(call.identity.user.clone()),
            IdentityField::Agent => call.identity.agent.clone(),
            IdentityField::Model => call.identity.model.clone(),
        }
        .map(Json::String),
        Subject::Length(_, _) => {
            let n = match value? {
                Json::String(s) => s.chars().count(),
                Json::Array(items) => items.len(),
                _ => {
                    count("length:other");
                    return Some(Json::Null);
                }
            };
            count("length:known");
            Some(Json::from(n))
        }
        // `null` has neither: it is unknown to every test.
        Subject::Size(_, _) => {
            let n = match value? {
                Json::Null => return Some(Json::Null),
                Json::String(s) => s.len(),
                other => serde_json::to_string(other).expect("JSON serialises").len(),
            };
            count("size:known");
            Some(Json::from(n))
        }
    }
}

/// `subject op literal`. Absent: `==` and the orderings are false, `!=`
/// true. Present with another type than the literal's (or a number Cedar's
/// decimal cannot hold exactly): unknown, and `!=` is exactly `not ==`.
/// A byte size (`100 KB`) is its number of bytes.
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
        (Json::Number(n), Value::Int(_) | Value::Decimal(_) | Value::Size(_)) => {
            let Some(a) = decimal(&n.to_string()) else {
                return Tri::Unknown;
            };
            let b = match lit {
                Value::Int(i) => i128::from(*i) * 10_000,
                Value::Size(s) => i128::from(s.bytes()) * 10_000,
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

/// The argument at a path, `null` included; `None` when absent.
pub fn argument_or_null<'a>(call: &'a CallContext, segments: &[String]) -> Option<&'a Json> {
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
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i64>().ok()?),
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

thread_local! {
    /// How often a `created by agent` condition was true on this thread, so
    /// the differential test can check that the generator reaches records.
    pub static CREATED_HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A JSON value as a record id (docs/language.md, "created by agent"): a
/// string as is, a number as its JSON text.
pub fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
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
        assert_eq!(decimal("1e+2"), Some(1_000_000));
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
