//! A typed tree of the Cedar we emit, and its printer. The compiler never
//! pastes user text into Cedar: every string goes through [`write_str_lit`],
//! every attribute name through [`write_attr`], and every compound
//! sub-expression is parenthesised, so no name or string a policy author
//! writes can change the structure of the emitted policy.

use std::fmt::Write as _;

mod build;
pub use build::{BuildError, PolicyBuilder};

pub const NAMESPACE: &str = "Warden";
pub const ACTION_CALL_TOOL: &str = "call_tool";

#[derive(Debug, Clone, PartialEq)]
pub enum CExpr {
    Bool(bool),
    Long(i64),
    Str(String),
    Var(Var),
    /// `Warden::<type>::"<id>"`
    Entity(&'static str, String),
    /// `e.attr` (or `e["attr"]` when attr is not an identifier)
    Attr(Box<CExpr>, String),
    /// `e has attr`
    Has(Box<CExpr>, String),
    Binary(BinOp, Box<CExpr>, Box<CExpr>),
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Not(Box<CExpr>),
    /// `e like "pattern"`, `*` being the only wildcard.
    Like(Box<CExpr>, String),
    Set(Vec<CExpr>),
    /// `e.method(args)`, e.g. `.contains(..)` or decimal's `.lessThan(..)`
    Method(Box<CExpr>, &'static str, Vec<CExpr>),
    /// `decimal("1.5")`
    Decimal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Principal,
    Resource,
    Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl CExpr {
    pub fn attr(self, name: &str) -> CExpr {
        CExpr::Attr(Box::new(self), name.to_string())
    }
    pub fn has(self, name: &str) -> CExpr {
        CExpr::Has(Box::new(self), name.to_string())
    }
    pub fn bin(op: BinOp, l: CExpr, r: CExpr) -> CExpr {
        CExpr::Binary(op, Box::new(l), Box::new(r))
    }
    pub fn method(self, name: &'static str, args: Vec<CExpr>) -> CExpr {
        CExpr::Method(Box::new(self), name, args)
    }
    pub fn str(s: impl Into<String>) -> CExpr {
        CExpr::Str(s.into())
    }

    /// `a && b && ...`, folding constants so emitted policies stay readable.
    pub fn and(parts: Vec<CExpr>) -> CExpr {
        let mut out = Vec::new();
        for p in parts {
            match p {
                CExpr::Bool(true) => {}
                CExpr::Bool(false) => return CExpr::Bool(false),
                CExpr::And(inner) => out.extend(inner),
                other if out.contains(&other) => {}
                other => out.push(other),
            }
        }
        match out.len() {
            0 => CExpr::Bool(true),
            1 => out.pop().expect("one"),
            _ => CExpr::And(out),
        }
    }

    /// `a || b || ...`, folding constants.
    pub fn or(parts: Vec<CExpr>) -> CExpr {
        let mut out = Vec::new();
        for p in parts {
            match p {
                CExpr::Bool(false) => {}
                CExpr::Bool(true) => return CExpr::Bool(true),
                CExpr::Or(inner) => out.extend(inner),
                other if out.contains(&other) => {}
                other => out.push(other),
            }
        }
        match out.len() {
            0 => CExpr::Bool(false),
            1 => out.pop().expect("one"),
            _ => CExpr::Or(out),
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(e: CExpr) -> CExpr {
        match e {
            CExpr::Bool(b) => CExpr::Bool(!b),
            CExpr::Not(inner) => *inner,
            other => CExpr::Not(Box::new(other)),
        }
    }

    fn is_atomic(&self) -> bool {
        matches!(
            self,
            CExpr::Bool(_)
                | CExpr::Long(_)
                | CExpr::Str(_)
                | CExpr::Var(_)
                | CExpr::Entity(..)
                | CExpr::Attr(..)
                | CExpr::Set(_)
                | CExpr::Method(..)
                | CExpr::Decimal(_)
        )
    }
}

/// One emitted policy: `@annotations effect (scope) when { cond } unless { cond };`
#[derive(Debug, Clone, PartialEq)]
pub struct CPolicy {
    pub annotations: Vec<(&'static str, String)>,
    pub effect: CEffect,
    pub when: CExpr,
    pub unless: Option<CExpr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CEffect {
    Permit,
    Forbid,
}

impl CPolicy {
    pub fn to_cedar(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.annotations {
            out.push('@');
            out.push_str(key);
            out.push('(');
            write_str_lit(&mut out, value);
            out.push_str(")\n");
        }
        out.push_str(match self.effect {
            CEffect::Permit => "permit",
            CEffect::Forbid => "forbid",
        });
        let _ = write!(
            out,
            " (\n  principal,\n  action == {NAMESPACE}::Action::\"{ACTION_CALL_TOOL}\",\n  resource\n)"
        );
        if self.when != CExpr::Bool(true) {
            out.push_str("\nwhen {\n  ");
            write_expr(&mut out, &self.when, 1);
            out.push_str("\n}");
        }
        if let Some(unless) = &self.unless {
            out.push_str("\nunless {\n  ");
            write_expr(&mut out, unless, 1);
            out.push_str("\n}");
        }
        out.push(';');
        out
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// Writes `e`; top-level `&&`/`||` chains break one operand per line.
fn write_expr(out: &mut String, e: &CExpr, level: usize) {
    match e {
        CExpr::And(parts) | CExpr::Or(parts) => {
            let op = if matches!(e, CExpr::And(_)) {
                "&&"
            } else {
                "||"
            };
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    indent(out, level);
                    out.push_str(op);
                    out.push(' ');
                }
                write_operand(out, p);
            }
        }
        other => write_inline(out, other),
    }
}

/// Writes a sub-expression, parenthesised unless it is atomic.
fn write_operand(out: &mut String, e: &CExpr) {
    if e.is_atomic() {
        write_inline(out, e);
    } else {
        out.push('(');
        write_inline(out, e);
        out.push(')');
    }
}

fn write_inline(out: &mut String, e: &CExpr) {
    match e {
        CExpr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        CExpr::Long(n) => {
            // Cedar parses `-N` as negation of N, which overflows for i64::MIN.
            if *n == i64::MIN {
                out.push_str("(-9223372036854775807 - 1)");
            } else {
                let _ = write!(out, "{n}");
            }
        }
        CExpr::Str(s) => write_str_lit(out, s),
        CExpr::Var(v) => out.push_str(match v {
            Var::Principal => "principal",
            Var::Resource => "resource",
            Var::Context => "context",
        }),
        CExpr::Entity(ty, id) => {
            let _ = write!(out, "{NAMESPACE}::{ty}::");
            write_str_lit(out, id);
        }
        CExpr::Attr(base, name) => {
            write_operand(out, base);
            write_attr(out, name);
        }
        CExpr::Has(base, name) => {
            write_operand(out, base);
            out.push_str(" has ");
            if is_ident(name) {
                out.push_str(name);
            } else {
                write_str_lit(out, name);
            }
        }
        CExpr::Binary(op, l, r) => {
            write_operand(out, l);
            out.push_str(match op {
                BinOp::Eq => " == ",
                BinOp::Ne => " != ",
                BinOp::Lt => " < ",
                BinOp::Le => " <= ",
                BinOp::Gt => " > ",
                BinOp::Ge => " >= ",
                BinOp::In => " in ",
            });
            write_operand(out, r);
        }
        CExpr::And(parts) | CExpr::Or(parts) => {
            let op = if matches!(e, CExpr::And(_)) {
                " && "
            } else {
                " || "
            };
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                write_operand(out, p);
            }
        }
        CExpr::Not(inner) => {
            out.push('!');
            write_operand(out, inner);
        }
        CExpr::Like(base, pattern) => {
            write_operand(out, base);
            out.push_str(" like ");
            write_like_pattern(out, pattern);
        }
        CExpr::Set(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_operand(out, item);
            }
            out.push(']');
        }
        CExpr::Method(base, name, args) => {
            write_operand(out, base);
            out.push('.');
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_operand(out, a);
            }
            out.push(')');
        }
        CExpr::Decimal(text) => {
            out.push_str("decimal(");
            write_str_lit(out, text);
            out.push(')');
        }
    }
}

/// Cedar identifiers that cannot be used as bare attribute names.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "if",
    "then",
    "else",
    "in",
    "is",
    "like",
    "has",
    "principal",
    "action",
    "resource",
    "context",
    "permit",
    "forbid",
    "when",
    "unless",
];

fn is_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
        && !name.starts_with("__cedar")
}

fn write_attr(out: &mut String, name: &str) {
    if is_ident(name) {
        out.push('.');
        out.push_str(name);
    } else {
        out.push('[');
        write_str_lit(out, name);
        out.push(']');
    }
}

/// A Cedar string literal holding exactly `s`.
pub fn write_str_lit(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        push_escaped(out, c);
    }
    out.push('"');
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A `like` pattern: `*` is the wildcard; every other character, a literal
/// star cannot occur in our globs, is escaped as in a string.
fn write_like_pattern(out: &mut String, glob: &str) {
    out.push('"');
    for c in glob.chars() {
        if c == '*' {
            out.push('*');
        } else {
            push_escaped(out, c);
        }
    }
    out.push('"');
}

/// Quotes a string as a Cedar schema string (attribute names in the schema).
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    write_str_lit(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        write_str_lit(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, r#""a\"b\\c\n\u{1}""#);
    }

    #[test]
    fn odd_attribute_names_use_brackets() {
        let e = CExpr::Var(Var::Context).attr("args").attr("/x\"y");
        let mut out = String::new();
        write_inline(&mut out, &e);
        assert_eq!(out, r#"context.args["/x\"y"]"#);
        let mut out = String::new();
        write_inline(&mut out, &CExpr::Var(Var::Context).attr("in"));
        assert_eq!(out, r#"context["in"]"#);
    }

    #[test]
    fn constant_folding() {
        let x = CExpr::Var(Var::Context).attr("via_agent");
        assert_eq!(CExpr::and(vec![CExpr::Bool(true), x.clone()]), x);
        assert_eq!(
            CExpr::or(vec![CExpr::Bool(true), x.clone()]),
            CExpr::Bool(true)
        );
        assert_eq!(CExpr::not(CExpr::not(x.clone())), x);
    }
}
