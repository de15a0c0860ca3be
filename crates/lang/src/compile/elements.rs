//! Compiling what Cedar cannot compute itself: quantified tests over list
//! elements (`any`/`all`), case-folded comparisons, and sizes and lengths,
//! to guarded reads of what the engine supplies.
//!
//! - `any args.tags == "pii"` reads `context.each["any args.tags == \"pii\""]`,
//!   a `{t, p}` record the engine computes per element ([`EachTest`] says
//!   what to compute). Absent (which only a bug causes) is unknown.
//! - `args.sql matches "*drop*" ignoring case` reads `context.args.istr`,
//!   the argument lowercased, against the pattern lowercased here.
//! - `size of args.content > 100 KB` reads `context.args.size` (bytes),
//!   `length of args.ids > 10` reads `context.args.len`, both `Long`.
//!
//! Every read is guarded by `has`; an argument present with a type the
//! test cannot read (a number for `ignoring case`, `null` for `size of`)
//! is unknown, as everywhere else.

use super::{Emitter, Tri, context, wrong_type};
use crate::ast::{ArgPath, Atom, CmpOp, Expr, Quantifier, Subject, Value};
use crate::cedar::{BinOp, CExpr};
use crate::compiled::{ArgType, EachTest, ElementTest, ElementValue, Order};
use crate::record_kind::{self, KindDecl};
use crate::source::Span;

impl Emitter {
    /// `any args.x <test>` / `all args.x <test>`: the engine's answer.
    pub(super) fn each(&mut self, q: Quantifier, test: &Atom) -> Tri {
        let Some((list, element, inferred_kind)) = self.element_test(test, false) else {
            // The checker refuses every test this cannot build; were one
            // emitted, unknown is the fail-closed reading.
            return Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true));
        };
        let mut id = String::new();
        let atom = Atom::Each(
            crate::ast::Spanned::new(q, Span::default()),
            Box::new(test.clone()),
        );
        crate::fmt::write_expr(&mut id, &Expr::Atom(atom, Span::default()));
        if let Some(kind) = inferred_kind {
            id.push_str(" as ");
            id.push_str(&kind);
        }
        // The list counts as read (in `arg_fields`, untyped like `exists`):
        // whoever asks whether a rule reads arguments (tools/list hides a
        // tool only a rule that reads none denies) must hear yes.
        self.track(&list, None);
        self.each_ids.insert(id.clone());
        self.rule_each.insert(EachTest {
            id: id.clone(),
            all: q == Quantifier::All,
            pointer: list.json_pointer(),
            test: element,
        });
        let each = context().attr("each");
        let result = each.clone().attr(&id);
        Tri {
            t: CExpr::and(vec![each.clone().has(&id), result.clone().attr("t")]),
            // `!(has && !p)` rather than `!has || p`: Cedar's validator
            // proves a read safe only under a `has` on its left in `&&`.
            p: CExpr::not(CExpr::and(vec![
                each.has(&id),
                CExpr::not(result.attr("p")),
            ])),
        }
    }

    /// `==`, `!=`, `in` or `matches` on a string argument, both sides
    /// lowercased: the argument by the engine (`context.args.istr`), the
    /// literal here, with the same function ([`str::to_lowercase`]).
    pub(super) fn ignoring_case(&mut self, test: &Atom) -> Tri {
        match test {
            Atom::Compare(Subject::Arg(path), op, lit) => match (&lit.value, op.node) {
                (Value::String(s), CmpOp::Eq) => self.folded_eq(path, s),
                (Value::String(s), CmpOp::Ne) => self.folded_eq(path, s).not(),
                _ => unknown(),
            },
            Atom::In(Subject::Arg(path), lits) => {
                let parts: Vec<Tri> = lits
                    .iter()
                    .map(|l| match &l.value {
                        Value::String(s) => self.folded_eq(path, s),
                        _ => unknown(),
                    })
                    .collect();
                Tri {
                    t: CExpr::or(parts.iter().map(|p| p.t.clone()).collect()),
                    p: CExpr::or(parts.into_iter().map(|p| p.p).collect()),
                }
            }
            Atom::Matches(Subject::Arg(path), glob) => {
                let ptr = self.track(path, Some(ArgType::FoldedStr));
                let map = folded_record();
                let t = CExpr::and(vec![
                    map.clone().has(&ptr),
                    CExpr::Like(Box::new(map.attr(&ptr)), glob.node.to_lowercase()),
                ]);
                Tri::with_unknown(t, wrong_type(&ptr, ArgType::FoldedStr))
            }
            // The checker refuses `ignoring case` on anything else.
            _ => unknown(),
        }
    }

    fn folded_eq(&mut self, path: &ArgPath, s: &str) -> Tri {
        let ptr = self.track(path, Some(ArgType::FoldedStr));
        let map = folded_record();
        let t = CExpr::and(vec![
            map.clone().has(&ptr),
            CExpr::bin(BinOp::Eq, map.attr(&ptr), CExpr::str(s.to_lowercase())),
        ]);
        Tri::with_unknown(t, wrong_type(&ptr, ArgType::FoldedStr))
    }

    /// `length of args.x <op> n`, `size of args.x <op> n KB` (never `!=`:
    /// `compare` negates `==` for it).
    pub(super) fn measure(&mut self, subject: &Subject, op: CmpOp, value: &Value) -> Tri {
        let (path, ty) = match subject {
            Subject::Length(p, _) => (p, ArgType::Len),
            Subject::Size(p, _) => (p, ArgType::Size),
            _ => return unknown(),
        };
        let (Some(n), Some(order)) = (measure_value(value), order(op)) else {
            // The checker refuses what does not fit a Long.
            return unknown();
        };
        let ptr = self.track(path, Some(ty));
        let map = context().attr("args").attr(ty.record());
        let bin = match order {
            Order::Eq => BinOp::Eq,
            Order::Lt => BinOp::Lt,
            Order::Le => BinOp::Le,
            Order::Gt => BinOp::Gt,
            Order::Ge => BinOp::Ge,
        };
        let t = CExpr::and(vec![
            map.clone().has(&ptr),
            CExpr::bin(bin, map.attr(&ptr), CExpr::Long(n)),
        ]);
        Tri::with_unknown(t, wrong_type(&ptr, ty))
    }

    /// The schema's `Each` type: per quantified test of the set, the
    /// engine's `{t, p}` (optional, so every read is guarded).
    pub(super) fn each_schema(&self, out: &mut String) {
        out.push_str("  // Per quantified test (`any`/`all`): definitely and possibly true.\n");
        out.push_str("  type EachResult = {\n    \"t\": Bool,\n    \"p\": Bool,\n  };\n");
        out.push_str("  type Each = {");
        for id in &self.each_ids {
            out.push_str("\n    ");
            out.push_str(&crate::cedar::quote(id));
            out.push_str("?: EachResult,");
        }
        out.push_str("\n  };\n");
    }

    /// The test a quantified condition applies per element, with the path
    /// of its list and, for `created by agent` without `as`, the inferred
    /// kind (which the test's id then names). `None` for what the checker
    /// refuses.
    fn element_test(
        &self,
        atom: &Atom,
        fold: bool,
    ) -> Option<(ArgPath, ElementTest, Option<String>)> {
        let simple = |path: &ArgPath, test| Some((path.clone(), test, None));
        match atom {
            Atom::Exists(path) if !fold => simple(path, ElementTest::Exists),
            Atom::CreatedByAgent(path, named) if !fold => {
                let decls: Vec<KindDecl<'_>> = self.record_decls.iter().map(KindDecl::of).collect();
                let kind = record_kind::resolve(
                    &decls,
                    self.rule_server.as_ref(),
                    named.as_ref().map(|n| n.node.as_str()),
                )
                .kind()?
                .to_string();
                let inferred = named.is_none().then(|| kind.clone());
                Some((path.clone(), ElementTest::CreatedByAgent { kind }, inferred))
            }
            Atom::Under(path, prefix) if !fold => {
                let prefix = crate::paths::normalize_path(&prefix.node)?;
                simple(path, ElementTest::Under { prefix })
            }
            Atom::Compare(Subject::Arg(path), op, lit) => {
                let value = element_value(&lit.value, fold)?;
                let test = match (op.node, &value) {
                    (CmpOp::Eq, _) => one_of(vec![value], fold),
                    (CmpOp::Ne, _) => ElementTest::Not(Box::new(one_of(vec![value], fold))),
                    (op, ElementValue::Num(n)) if !fold => ElementTest::Number {
                        op: order(op)?,
                        value: *n,
                    },
                    _ => return None,
                };
                simple(path, test)
            }
            Atom::Compare(subject @ (Subject::Length(..) | Subject::Size(..)), op, lit)
                if !fold =>
            {
                let path = subject.arg()?;
                let size = matches!(subject, Subject::Size(..));
                let value = measure_value(&lit.value)?;
                let test = match op.node {
                    CmpOp::Ne => ElementTest::Not(Box::new(ElementTest::Measure {
                        size,
                        op: Order::Eq,
                        value,
                    })),
                    op => ElementTest::Measure {
                        size,
                        op: order(op)?,
                        value,
                    },
                };
                simple(path, test)
            }
            Atom::In(Subject::Arg(path), lits) => {
                let values = lits
                    .iter()
                    .map(|l| element_value(&l.value, fold))
                    .collect::<Option<Vec<_>>>()?;
                simple(path, one_of(values, fold))
            }
            Atom::Matches(Subject::Arg(path), glob) => {
                let glob = if fold {
                    glob.node.to_lowercase()
                } else {
                    glob.node.clone()
                };
                simple(path, ElementTest::Matches { glob, fold })
            }
            Atom::IgnoringCase(inner) if !fold => self.element_test(inner, true),
            _ => None,
        }
    }
}

fn unknown() -> Tri {
    Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true))
}

fn folded_record() -> CExpr {
    context().attr("args").attr(ArgType::FoldedStr.record())
}

fn one_of(values: Vec<ElementValue>, fold: bool) -> ElementTest {
    ElementTest::OneOf { values, fold }
}

/// An ordering as the engine compares; `None` for `!=`, which callers
/// negate instead.
fn order(op: CmpOp) -> Option<Order> {
    Some(match op {
        CmpOp::Eq => Order::Eq,
        CmpOp::Ne => return None,
        CmpOp::Lt => Order::Lt,
        CmpOp::Le => Order::Le,
        CmpOp::Gt => Order::Gt,
        CmpOp::Ge => Order::Ge,
    })
}

/// A length or size literal as a `Long`: a whole number of characters,
/// elements or bytes, or a size with its unit.
fn measure_value(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::Size(s) => i64::try_from(s.amount.checked_mul(s.unit.bytes())?).ok(),
        _ => None,
    }
}

/// A literal as the engine compares elements with it; strings lowercased
/// when `fold`, which only strings take.
fn element_value(value: &Value, fold: bool) -> Option<ElementValue> {
    match value {
        Value::String(s) if fold => Some(ElementValue::Str(s.to_lowercase())),
        Value::String(s) => Some(ElementValue::Str(s.clone())),
        _ if fold => None,
        Value::Bool(b) => Some(ElementValue::Bool(*b)),
        Value::Int(n) => Some(ElementValue::Num(n.checked_mul(10_000)?)),
        Value::Decimal(d) => Some(ElementValue::Num(crate::compiled::decimal_units(d)?)),
        Value::Size(_) => None,
    }
}

#[cfg(test)]
mod tests;
