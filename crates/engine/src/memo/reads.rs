//! What the policies of one slice read of the Cedar context, found by
//! walking each evaluated policy's tree (Cedar's JSON form) once, when the
//! slice is built. The decision memo keys on what this finds and on
//! nothing less ([`crate::memo`]).
//!
//! Found: the top-level context attributes read (`context.args`,
//! `context.confirmed`, ...), and, for `context.counters` and
//! `context.budgets`, every limit entry's comparisons with a constant
//! (`context.counters["r"] < 3`). A policy that reads `context` in any
//! other way (the record as a whole, an attribute chosen by an
//! expression, a comparison the walk does not recognise) makes the
//! reading conservative: every attribute read, or every counter read as
//! its exact value. Nothing unrecognised can narrow the key.

use cedar_policy::Policy;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A comparison of a limit entry with a constant, as the policy writes it
/// (`entry <op> constant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cmp {
    Lt(i64),
    Le(i64),
    Gt(i64),
    Ge(i64),
    Eq(i64),
    Ne(i64),
}

impl Cmp {
    /// Whether `value <op> constant` holds.
    pub(crate) fn holds(self, value: i64) -> bool {
        match self {
            Cmp::Lt(c) => value < c,
            Cmp::Le(c) => value <= c,
            Cmp::Gt(c) => value > c,
            Cmp::Ge(c) => value >= c,
            Cmp::Eq(c) => value == c,
            Cmp::Ne(c) => value != c,
        }
    }

    fn of(op: &str, constant: i64) -> Option<Cmp> {
        Some(match op {
            "<" => Cmp::Lt(constant),
            "<=" => Cmp::Le(constant),
            ">" => Cmp::Gt(constant),
            ">=" => Cmp::Ge(constant),
            "==" => Cmp::Eq(constant),
            "!=" => Cmp::Ne(constant),
            _ => return None,
        })
    }
}

/// How a record of limit entries (`context.counters`, `context.budgets`)
/// is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LimitReads {
    /// Some read is not an entry compared with a constant: entries are
    /// keyed by their exact values.
    pub exact: bool,
    /// Per entry id, the comparisons read (entries read only by `has` have
    /// none: their presence is keyed all the same).
    pub compared: BTreeMap<String, BTreeSet<Cmp>>,
}

/// What a slice's policies read of the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SliceReads {
    /// `context` is read other than attribute by attribute: everything
    /// counts as read.
    pub everything: bool,
    /// The top-level attributes read.
    pub attrs: BTreeSet<String>,
    pub counters: LimitReads,
    pub budgets: LimitReads,
}

impl SliceReads {
    /// The reads of `policies`. A policy whose tree cannot be had reads
    /// everything.
    pub(crate) fn of<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> SliceReads {
        let mut reads = SliceReads::default();
        for p in policies {
            match p.to_json() {
                Ok(tree) => reads.walk(&tree),
                Err(_) => reads.everything = true,
            }
        }
        if reads.everything {
            reads.counters.exact = true;
            reads.budgets.exact = true;
        }
        reads
    }

    /// Whether the policies may read the context attribute `name`.
    pub(crate) fn reads(&self, name: &str) -> bool {
        self.everything || self.attrs.contains(name)
    }

    fn limits(&mut self, name: &str) -> Option<&mut LimitReads> {
        match name {
            "counters" => Some(&mut self.counters),
            "budgets" => Some(&mut self.budgets),
            _ => None,
        }
    }

    /// Walks one node. The order of the tests matters: the narrower
    /// shapes (an entry compared, an entry, `has` an entry, the record of
    /// limits) before the plain `context.<attr>`.
    fn walk(&mut self, node: &Value) {
        match node {
            Value::Object(map) => {
                if is_context(node) {
                    // Reached only where nothing recognised it.
                    self.everything = true;
                } else if let Some((record, entry, cmp)) = compared_entry(node) {
                    self.attrs.insert(record.to_string());
                    if let Some(l) = self.limits(record) {
                        l.compared.entry(entry.to_string()).or_default().insert(cmp);
                    }
                } else if let Some((record, entry)) = limit_entry(node) {
                    // A bare entry read (not under a recognised comparison).
                    self.attrs.insert(record.to_string());
                    if let Some(l) = self.limits(record) {
                        l.exact = true;
                        l.compared.entry(entry.to_string()).or_default();
                    }
                } else if let Some((record, entry)) = has_entry(node) {
                    self.attrs.insert(record.to_string());
                    if let Some(l) = self.limits(record) {
                        l.compared.entry(entry.to_string()).or_default();
                    }
                } else if let Some(record) = limit_record(node) {
                    // `context.counters` read as a whole.
                    self.attrs.insert(record.to_string());
                    if let Some(l) = self.limits(record) {
                        l.exact = true;
                    }
                } else if let Some(attr) = context_attr(node) {
                    self.attrs.insert(attr.to_string());
                } else {
                    for v in map.values() {
                        self.walk(v);
                    }
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.walk(v);
                }
            }
            _ => {}
        }
    }
}

/// `{"Var": "context"}`.
fn is_context(node: &Value) -> bool {
    node.get("Var").and_then(Value::as_str) == Some("context")
        && node.as_object().is_some_and(|m| m.len() == 1)
}

/// The operand of a one-key node `{op: {...}}`.
fn only<'a>(node: &'a Value, op: &str) -> Option<&'a Value> {
    let map = node.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.get(op)
}

/// `context.<attr>` or `context has <attr>` with `attr` a plain name; an
/// extended `has` (`context has a.b`) names its first attribute.
fn context_attr(node: &Value) -> Option<&str> {
    for op in [".", "has"] {
        if let Some(inner) = only(node, op)
            && inner.get("left").is_some_and(is_context)
        {
            return match inner.get("attr")? {
                Value::String(a) => Some(a.as_str()),
                Value::Array(path) => path.first()?.as_str(),
                _ => None,
            };
        }
    }
    None
}

/// `context.counters` / `context.budgets` (as the left of something).
fn limit_record(node: &Value) -> Option<&str> {
    let inner = only(node, ".")?;
    if !inner.get("left").is_some_and(is_context) {
        return None;
    }
    let attr = inner.get("attr")?.as_str()?;
    matches!(attr, "counters" | "budgets").then_some(attr)
}

/// `context.counters.<entry>`: (record, entry).
fn limit_entry(node: &Value) -> Option<(&str, &str)> {
    let inner = only(node, ".")?;
    let record = limit_record(inner.get("left")?)?;
    Some((record, inner.get("attr")?.as_str()?))
}

/// `context.counters has <entry>`: (record, entry).
fn has_entry(node: &Value) -> Option<(&str, &str)> {
    let inner = only(node, "has")?;
    let record = limit_record(inner.get("left")?)?;
    Some((record, inner.get("attr")?.as_str()?))
}

/// `context.counters.<entry> <op> <Long>`: (record, entry, comparison).
fn compared_entry(node: &Value) -> Option<(&str, &str, Cmp)> {
    let map = node.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (op, inner) = map.iter().next()?;
    let (record, entry) = limit_entry(inner.get("left")?)?;
    let constant = only(inner.get("right")?, "Value")?.as_i64()?;
    Some((record, entry, Cmp::of(op, constant)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(text: &str) -> SliceReads {
        let p = Policy::parse(None, text).expect("a policy");
        SliceReads::of([&p])
    }

    #[test]
    fn attributes_and_limit_comparisons_are_found() {
        let r = reads(
            r#"permit(principal, action, resource) when {
                context.via_agent && context.args.str has "/x"
                && !((context.counters has "cap") && (context.counters["cap"] < 3))
                && context.budgets["b"] <= 100000
            };"#,
        );
        assert!(!r.everything);
        assert_eq!(
            r.attrs.iter().map(String::as_str).collect::<Vec<_>>(),
            ["args", "budgets", "counters", "via_agent"]
        );
        assert!(!r.counters.exact && !r.budgets.exact);
        assert_eq!(
            r.counters.compared["cap"]
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [Cmp::Lt(3)]
        );
        assert_eq!(
            r.budgets.compared["b"].iter().copied().collect::<Vec<_>>(),
            [Cmp::Le(100_000)]
        );
        assert!(!r.reads("session") && !r.reads("confirmed"));
    }

    #[test]
    fn anything_unrecognised_reads_more_not_less() {
        // The context as a whole.
        let r = reads(r#"permit(principal, action, resource) when { context == {} };"#);
        assert!(r.everything && r.reads("session") && r.counters.exact);
        // A counter in arithmetic, or compared the other way round.
        let r =
            reads(r#"permit(principal, action, resource) when { context.counters["a"] + 1 < 3 };"#);
        assert!(r.counters.exact && !r.everything);
        let r = reads(r#"permit(principal, action, resource) when { 3 > context.counters["a"] };"#);
        assert!(r.counters.exact);
        // The record of counters as a whole.
        let r =
            reads(r#"permit(principal, action, resource) when { context.counters == {"a": 1} };"#);
        assert!(r.counters.exact);
        // A comparison with something that is not a constant.
        let r = reads(
            r#"permit(principal, action, resource) when { context.budgets["a"] < context.budgets["b"] };"#,
        );
        assert!(r.budgets.exact);
        // An extended `has` names its first attribute.
        let r = reads(r#"permit(principal, action, resource) when { context has session.x };"#);
        assert!(r.reads("session"));
        // `if` and other shapes are walked into.
        let r = reads(
            r#"permit(principal, action, resource) when { if context.session == "s" then true else false };"#,
        );
        assert!(r.reads("session") && !r.everything);
    }
}
