//! Builds [`cedar_policy::Policy`] values from the typed tree through
//! Cedar's policy syntax tree ([`cedar_policy::pst`]), without printing
//! text and parsing it back.
//!
//! Every node becomes what Cedar's parser builds from the text
//! [`CPolicy::to_cedar`] prints for it: `a && b && c` folds to the left
//! like the parser's chains, `!=` stays `!=`, a method call becomes the
//! operator or extension function the parser resolves its name to, and
//! `i64::MIN` is the same `(-9223372036854775807 - 1)`. The printer stays
//! the one place that decides what the Cedar *says*; this module only
//! spares the parse, and `tests/pst_equivalence.rs` holds the two equal
//! (the same AST, the same JSON form) on every golden set, every shipped
//! set and the compile bench's generated sets.

use super::{ACTION_CALL_TOOL, BinOp, CEffect, CExpr, CPolicy, NAMESPACE, Var};
use cedar_policy::Policy;
use cedar_policy::pst::{
    self, ActionConstraint, BinaryOp, Clause, EntityType, EntityUID, Expr, Literal, Name, NonEmpty,
    PatternElem, PrincipalConstraint, PstConstructionError, ResourceConstraint, SmolStr,
    StaticPolicy, Template, UnaryOp,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a typed policy could not be built: always a compiler bug (the
/// printed text of the same policy would not parse either).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Pst(#[from] PstConstructionError),
    #[error("annotation `@{0}` is given twice")]
    DuplicateAnnotation(&'static str),
    #[error("`.{name}()` with {args} argument(s) is not a Cedar method we emit")]
    UnknownMethod { name: &'static str, args: usize },
    #[error("an empty `&&` or `||` chain")]
    EmptyChain,
}

/// Builds policies; holds the entity type names every policy uses, so
/// that each is checked (a small parse inside Cedar) once, not per node.
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    action: EntityUID,
    /// `Warden::<type>` for each type an `Entity` node names, built on
    /// first use (the compiler names two).
    types: Vec<(&'static str, EntityType)>,
}

impl PolicyBuilder {
    pub fn new() -> Result<Self, BuildError> {
        Ok(PolicyBuilder {
            action: EntityUID {
                ty: namespaced("Action")?,
                eid: SmolStr::new_static(ACTION_CALL_TOOL),
            },
            types: Vec::new(),
        })
    }

    /// The policy `p` with id `id`: equal to `Policy::parse(Some(id),
    /// &p.to_cedar())`.
    pub fn policy(&mut self, p: &CPolicy, id: &str) -> Result<Policy, BuildError> {
        let mut annotations = BTreeMap::new();
        for (key, value) in &p.annotations {
            if annotations
                .insert((*key).to_string(), SmolStr::from(value.as_str()))
                .is_some()
            {
                return Err(BuildError::DuplicateAnnotation(key));
            }
        }
        let mut clauses = Vec::with_capacity(2);
        // The printer leaves out `when { true }`; the parser then has no
        // condition at all, and so do we.
        if p.when != CExpr::Bool(true) {
            clauses.push(Clause::When(Arc::new(self.expr(&p.when)?)));
        }
        if let Some(unless) = &p.unless {
            clauses.push(Clause::Unless(Arc::new(self.expr(unless)?)));
        }
        let effect = match p.effect {
            CEffect::Permit => pst::Effect::Permit,
            CEffect::Forbid => pst::Effect::Forbid,
        };
        let template = Template::new(
            pst::PolicyID(SmolStr::from(id)),
            effect,
            PrincipalConstraint::Any,
            ActionConstraint::Eq(self.action.clone()),
            ResourceConstraint::Any,
        )
        .try_with_clauses(clauses)?
        .with_annotations(annotations);
        let policy = StaticPolicy::try_from(template).map_err(PstConstructionError::from)?;
        Ok(Policy::from_pst(policy.into())?)
    }

    fn entity_type(&mut self, ty: &'static str) -> Result<EntityType, BuildError> {
        if let Some((_, t)) = self.types.iter().find(|(name, _)| *name == ty) {
            return Ok(t.clone());
        }
        let t = namespaced(ty)?;
        self.types.push((ty, t.clone()));
        Ok(t)
    }

    fn expr(&mut self, e: &CExpr) -> Result<Expr, BuildError> {
        Ok(match e {
            CExpr::Bool(b) => Expr::Literal(Literal::Bool(*b)),
            // The printer writes i64::MIN as `(-9223372036854775807 - 1)`
            // (Cedar reads `-N` as a literal only up to i64::MAX).
            CExpr::Long(n) if *n == i64::MIN => binary(
                BinaryOp::Sub,
                Expr::Literal(Literal::Long(-i64::MAX)),
                Expr::Literal(Literal::Long(1)),
            ),
            CExpr::Long(n) => Expr::Literal(Literal::Long(*n)),
            CExpr::Str(s) => string(s),
            CExpr::Var(v) => Expr::Var(match v {
                Var::Principal => pst::Var::Principal,
                Var::Resource => pst::Var::Resource,
                Var::Context => pst::Var::Context,
            }),
            CExpr::Entity(ty, id) => Expr::Literal(Literal::EntityUID(EntityUID {
                ty: self.entity_type(ty)?,
                eid: SmolStr::from(id.as_str()),
            })),
            CExpr::Attr(base, name) => Expr::GetAttr {
                expr: Arc::new(self.expr(base)?),
                attr: SmolStr::from(name.as_str()),
            },
            CExpr::Has(base, name) => Expr::HasAttr {
                expr: Arc::new(self.expr(base)?),
                attrs: NonEmpty::new(SmolStr::from(name.as_str())),
            },
            CExpr::Binary(op, l, r) => {
                let op = match op {
                    BinOp::Eq => BinaryOp::Eq,
                    BinOp::Ne => BinaryOp::NotEq,
                    BinOp::Lt => BinaryOp::Less,
                    BinOp::Le => BinaryOp::LessEq,
                    BinOp::Gt => BinaryOp::Greater,
                    BinOp::Ge => BinaryOp::GreaterEq,
                    BinOp::In => BinaryOp::In,
                };
                binary(op, self.expr(l)?, self.expr(r)?)
            }
            CExpr::And(parts) => self.chain(BinaryOp::And, parts)?,
            CExpr::Or(parts) => self.chain(BinaryOp::Or, parts)?,
            CExpr::Not(inner) => Expr::UnaryOp {
                op: UnaryOp::Not,
                expr: Arc::new(self.expr(inner)?),
            },
            CExpr::Like(base, glob) => Expr::Like {
                expr: Arc::new(self.expr(base)?),
                pattern: glob
                    .chars()
                    .map(|c| {
                        if c == '*' {
                            PatternElem::Wildcard
                        } else {
                            PatternElem::Char(c)
                        }
                    })
                    .collect(),
            },
            CExpr::Set(items) => Expr::Set(
                items
                    .iter()
                    .map(|i| self.expr(i).map(Arc::new))
                    .collect::<Result<_, _>>()?,
            ),
            CExpr::Method(base, name, args) => {
                let op = match (*name, args.len()) {
                    ("contains", 1) => BinaryOp::Contains,
                    ("containsAll", 1) => BinaryOp::ContainsAll,
                    ("containsAny", 1) => BinaryOp::ContainsAny,
                    ("lessThan", 1) => BinaryOp::DecimalLessThan,
                    ("lessThanOrEqual", 1) => BinaryOp::DecimalLessEq,
                    ("greaterThan", 1) => BinaryOp::DecimalGreater,
                    ("greaterThanOrEqual", 1) => BinaryOp::DecimalGreaterEq,
                    (name, args) => return Err(BuildError::UnknownMethod { name, args }),
                };
                binary(op, self.expr(base)?, self.expr(&args[0])?)
            }
            CExpr::Decimal(text) => Expr::UnaryOp {
                op: UnaryOp::Decimal,
                expr: Arc::new(string(text)),
            },
        })
    }

    /// `a && b && c` as the parser reads it: `(a && b) && c`.
    fn chain(&mut self, op: BinaryOp, parts: &[CExpr]) -> Result<Expr, BuildError> {
        let mut parts = parts.iter();
        let first = parts.next().ok_or(BuildError::EmptyChain)?;
        let mut acc = self.expr(first)?;
        for p in parts {
            acc = binary(op, acc, self.expr(p)?);
        }
        Ok(acc)
    }
}

fn namespaced(ty: &str) -> Result<EntityType, BuildError> {
    Ok(EntityType::from_name(Name::qualified([NAMESPACE], ty)?))
}

fn string(s: &str) -> Expr {
    Expr::Literal(Literal::String(SmolStr::from(s)))
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp {
        op,
        left: Arc::new(left),
        right: Arc::new(right),
    }
}
