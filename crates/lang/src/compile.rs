//! The compiler from checked .policy ASTs to Cedar: one Cedar policy per
//! rule, a generated Cedar schema, and strict validation of the result.
//!
//! # How conditions stay fail-closed
//!
//! Arguments come from the agent, so a condition on them has three outcomes:
//! true, false, or *unknown* (the argument is present with a type the rule
//! did not expect, e.g. `"count": "1000"` where the rule compares a number).
//! Every condition compiles to two Cedar expressions: `T`, "definitely
//! true", and `P`, "possibly true" (`T` or unknown). Restricting rules
//! (deny, require-confirm, caps, rates) fire on `P`; allow rules grant on
//! `T`. An absent argument is not unknown: `args.x == 1` is false and
//! `args.x != 1` is true when `x` is absent.
//!
//! Every optional attribute read is guarded by `has`, and no emitted
//! expression can overflow or call an extension function on a bad literal
//! (the checker rejects those), so no `forbid` can error away at run time.

use crate::ast::*;
use crate::cedar::{BinOp, CEffect, CExpr, CPolicy, PolicyBuilder, Var};
use crate::check::RuleParts;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::record_kind::{self, KindDecl};
use crate::source::{Sources, Span};
use crate::template::parse_template;
use cedar_policy::{PolicySet, Schema};
use std::collections::{BTreeMap, BTreeSet};

mod elements;
mod policies;
mod schema;
mod time;

/// The id of the policy that implements `default allow`. `#` cannot occur
/// in rule names, so it never collides with a rule id.
pub const DEFAULT_POLICY_ID: &str = "#default";
/// Suffix of the id of a cap or rate rule's counting policy.
pub const COUNTING_SUFFIX: &str = "/match";

pub use crate::compiled::{
    ArgType, CompiledAnnotation, CompiledApproval, CompiledApprover, CompiledBudget, CompiledGrant,
    CompiledLimit, CompiledPolicySet, CompiledRecords, CompiledRule, CreatedArg, EachTest,
    ElementTest, ElementValue, Order,
};

/// Compiles checked files. Call only when the checker reported no error;
/// a failure here is a compiler bug and is reported as one.
pub(crate) fn compile_files(
    files: &[PolicyFile],
    sources: &Sources,
) -> Result<CompiledPolicySet, Diagnostics> {
    let mut default = Effect::Deny;
    let mut rules = Vec::new();
    let mut policies: Vec<(CPolicy, Span, String)> = Vec::new();
    let mut emitter = Emitter::default();
    let mut scratch = Vec::new();
    let mut records = Vec::new();
    let mut annotations = Vec::new();
    // Every declaration first: a rule's `created by agent` may resolve to
    // a kind declared further down or in another file.
    emitter.record_decls = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|item| match item {
            Item::Records(decl) => Some(decl.clone()),
            _ => None,
        })
        .collect();

    for file in files {
        for item in &file.items {
            match item {
                Item::Default(d) => default = d.effect,
                Item::Records(decl) => records.push(compile_records(decl, sources)),
                Item::Annotation(decl) => annotations.push(compile_annotation(decl, sources)),
                Item::Rule(rule) => {
                    let parts = RuleParts::of(rule, &mut scratch);
                    let (compiled, policy, counting) = emitter.rule(rule, &parts, sources);
                    policies.push((policy, rule.name.span, compiled.id.clone()));
                    if let Some(c) = counting {
                        policies.push((
                            c,
                            rule.name.span,
                            format!("{}{COUNTING_SUFFIX}", compiled.id),
                        ));
                    }
                    rules.push(compiled);
                }
            }
        }
    }

    let schema_text = emitter.schema_text();
    let schema = match Schema::from_cedarschema_str(&schema_text) {
        Ok((s, _warnings)) => s,
        Err(e) => {
            let mut d = Diagnostics::new();
            d.push(compiler_bug(
                None,
                format!("generated schema does not parse: {e}"),
            ));
            return Err(d.resolve(sources));
        }
    };

    let mut errors = Diagnostics::new();
    let mut enforced = PolicySet::new();
    let mut shadow = PolicySet::new();
    let mut counting = PolicySet::new();
    let mut labels = PolicySet::new();
    let mut all: Vec<cedar_policy::Policy> = Vec::with_capacity(policies.len());
    let mut span_of: BTreeMap<String, Span> = BTreeMap::new();
    if default == Effect::Allow {
        policies.insert(
            0,
            (
                default_allow_policy(),
                Span::default(),
                DEFAULT_POLICY_ID.into(),
            ),
        );
    }
    let mode_of: BTreeMap<&str, Mode> = rules.iter().map(|r| (r.id.as_str(), r.mode)).collect();
    let label_ids: BTreeSet<&str> = rules
        .iter()
        .filter(|r| r.kind == RuleKind::Label)
        .map(|r| r.id.as_str())
        .collect();
    // Built through Cedar's policy tree, not printed and parsed back: the
    // same policies (tests/pst_equivalence.rs), without the text parser.
    let builder = match PolicyBuilder::new() {
        Ok(b) => b,
        Err(e) => {
            errors.push(compiler_bug(None, format!("cannot name the action: {e}")));
            return Err(errors.resolve(sources));
        }
    };
    let built = policies::build_policies(&builder, &policies);
    for ((_, span, id), parsed) in policies.iter().zip(built) {
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                errors.push(compiler_bug(
                    Some(*span),
                    format!("emitted Cedar for `{id}` cannot be built: {e}"),
                ));
                continue;
            }
        };
        // The three sets are validated as one: an id in two of them (which
        // the checker's unique rule names rule out) is a compiler bug.
        if span_of.insert(id.clone(), *span).is_some() {
            errors.push(compiler_bug(
                Some(*span),
                format!("cannot add `{id}` to the policy set: the id is taken"),
            ));
            continue;
        }
        let target = if id.ends_with(COUNTING_SUFFIX) {
            &mut counting
        } else if label_ids.contains(id.as_str()) {
            &mut labels
        } else if mode_of.get(id.as_str()) == Some(&Mode::Shadow) {
            &mut shadow
        } else {
            &mut enforced
        };
        match target.add(parsed.clone()) {
            Ok(()) => all.push(parsed),
            Err(e) => errors.push(compiler_bug(
                Some(*span),
                format!("cannot add `{id}` to the policy set: {e}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors.resolve(sources));
    }

    for (id, e) in policies::validate_strictly(&schema, &all) {
        errors.push(compiler_bug(
            span_of.get(&id).copied().filter(|s| *s != Span::default()),
            format!("emitted Cedar for `{id}` fails strict validation: {e}"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors.resolve(sources));
    }

    Ok(CompiledPolicySet {
        default,
        rules,
        schema,
        schema_text,
        enforced,
        shadow,
        counting,
        labels,
        arg_fields: emitter.arg_fields,
        clock_zones: emitter.clock_zones,
        records,
        annotations,
    })
}

fn compile_annotation(decl: &AnnotationDecl, sources: &Sources) -> CompiledAnnotation {
    let names = |l: &PatternList| l.patterns.iter().map(|p| p.node.clone()).collect();
    // The checker refused a hint claimed twice; the first would win.
    let said = |flag: ToolFlag| decl.claims.iter().find(|c| c.flag == flag).map(|c| c.value);
    CompiledAnnotation {
        location: sources.location(decl.span),
        servers: decl.servers.as_ref().map(names),
        tools: names(&decl.tools),
        read_only: said(ToolFlag::ReadOnly),
        destructive: said(ToolFlag::Destructive),
        idempotent: said(ToolFlag::Idempotent),
        open_world: said(ToolFlag::OpenWorld),
    }
}

fn compile_records(decl: &RecordsDecl, sources: &Sources) -> CompiledRecords {
    let mut servers = None;
    let mut creators = Vec::new();
    for clause in &decl.clauses {
        match clause {
            RecordsClause::Server(list) => {
                servers
                    .get_or_insert_with(|| list.patterns.iter().map(|p| p.node.clone()).collect());
            }
            RecordsClause::CreatedBy(c) => {
                creators.push((c.tool.node.clone(), c.pointer.node.clone()));
            }
        }
    }
    CompiledRecords {
        kind: decl.name.node.clone(),
        location: sources.location(decl.name.span),
        servers,
        creators,
    }
}

fn compiler_bug(at: Option<Span>, message: String) -> Diagnostic {
    let d = Diagnostic::new(Code::CompilerBug, message)
        .with_help("this is a bug in warden, not in your policy; please report it with the policy that triggers it");
    match at {
        Some(span) => d.with_label(span, "while compiling this rule"),
        None => d,
    }
}

pub(crate) fn default_allow_policy() -> CPolicy {
    CPolicy {
        annotations: vec![
            ("id", DEFAULT_POLICY_ID.to_string()),
            ("kind", "default-allow".to_string()),
        ],
        effect: CEffect::Permit,
        when: CExpr::Bool(true),
        unless: None,
    }
}

#[derive(Default)]
struct Emitter {
    arg_fields: BTreeMap<String, BTreeSet<ArgType>>,
    /// The arguments read by the rule being emitted.
    rule_fields: BTreeMap<String, BTreeSet<ArgType>>,
    /// The `created by agent` arguments of the rule being emitted.
    rule_created: BTreeSet<CreatedArg>,
    /// Every records declaration of the set, to resolve record kinds.
    record_decls: Vec<RecordsDecl>,
    /// The `server` clause of the rule being emitted.
    rule_server: Option<PatternList>,
    /// The quantified tests of the rule being emitted.
    rule_each: BTreeSet<EachTest>,
    /// The ids of every quantified test of the set, for the schema.
    each_ids: BTreeSet<String>,
    counters: Vec<String>,
    budgets: Vec<String>,
    /// Every zone a `during` names (the schema's `Clock` record).
    clock_zones: BTreeSet<String>,
    /// The zones the rule being emitted names.
    rule_zones: BTreeSet<String>,
    /// The session labels the rule being emitted reads.
    rule_labels: BTreeSet<String>,
}

fn context() -> CExpr {
    CExpr::Var(Var::Context)
}
fn resource() -> CExpr {
    CExpr::Var(Var::Resource)
}

/// A condition as (definitely true, possibly true).
struct Tri {
    t: CExpr,
    p: CExpr,
}

impl Tri {
    fn definite(e: CExpr) -> Tri {
        Tri { t: e.clone(), p: e }
    }
    fn with_unknown(t: CExpr, unknown: CExpr) -> Tri {
        Tri {
            p: CExpr::or(vec![t.clone(), unknown]),
            t,
        }
    }
    fn not(self) -> Tri {
        Tri {
            t: CExpr::not(self.p),
            p: CExpr::not(self.t),
        }
    }
}

impl Emitter {
    fn rule(
        &mut self,
        rule: &Rule,
        parts: &RuleParts<'_>,
        sources: &Sources,
    ) -> (CompiledRule, CPolicy, Option<CPolicy>) {
        let id = rule.name.node.clone();
        let kind = rule.kind.node;
        let mode = parts.mode();
        self.rule_fields.clear();
        self.rule_created.clear();
        self.rule_zones.clear();
        self.rule_each.clear();
        self.rule_labels.clear();
        self.rule_server = parts.server.cloned();
        let location = sources.location(rule.name.span);
        let limit = parts.limit.map(|l| CompiledLimit {
            // The checker refused a max that is not whole (caps, rates) or
            // not an exact amount (budgets).
            max: if kind == RuleKind::Budget {
                crate::amount::parse_units(&l.max.node).unwrap_or(0)
            } else {
                l.whole_max().unwrap_or(0)
            },
            window_secs: l.window.as_ref().map(|w| w.node.as_secs()),
            scope: l.scope_set(),
        });
        let budget = parts
            .sum
            .filter(|_| kind == RuleKind::Budget)
            .map(|p| CompiledBudget {
                pointer: p.json_pointer(),
                written: crate::fmt::format_arg_path(p),
            });

        let matchers = CExpr::and(vec![
            pattern_match(resource().attr("server"), parts.server),
            pattern_match(resource().attr("name"), parts.tool),
        ]);
        let cond = match parts.when {
            Some(e) => self.expr(e),
            None => Tri::definite(CExpr::Bool(true)),
        };

        let approval = (kind == RuleKind::RequireConfirm).then(|| compiled_approval(parts));
        let mut annotations = vec![
            ("id", id.clone()),
            ("kind", kind.keyword().to_string()),
            (
                "mode",
                if mode == Mode::Shadow {
                    "shadow"
                } else {
                    "enforce"
                }
                .to_string(),
            ),
            ("source", location.clone()),
        ];
        if let Some(r) = parts.reason {
            annotations.push(("reason", r.node.clone()));
        }
        // Who approves and what an approval lets through: read by the
        // engine, not by Cedar (the policy only checks `context.confirmed`,
        // which the engine fills from the person's answer or a grant).
        if let Some(a) = &approval {
            if let Some(by) = &a.approver {
                annotations.push(("approver", by.text()));
            }
            // A rule that says nothing of grants keeps the Cedar it had.
            if parts.grant.is_some() {
                annotations.push(("grant", a.grant.text()));
            }
            if !a.within.is_empty() {
                annotations.push(("grant_within", a.within.join(" ")));
            }
        }
        if let Some(l) = limit {
            let max = if kind == RuleKind::Budget {
                crate::amount::format_units(l.max)
            } else {
                l.max.to_string()
            };
            annotations.push(("limit", max));
            annotations.push(("scope", l.scope.key()));
            if let Some(w) = l.window_secs {
                annotations.push(("window_secs", w.to_string()));
            }
        }

        let counters = context().attr("counters");
        let budgets = context().attr("budgets");
        // `body` is the rule's condition without its matchers; the policy's
        // `when` is `matchers && body`.
        let (effect, body, unless) = match kind {
            RuleKind::Allow => (CEffect::Permit, cond.t.clone(), None),
            RuleKind::Deny => (CEffect::Forbid, cond.p.clone(), None),
            RuleKind::RequireConfirm => (
                CEffect::Forbid,
                cond.p.clone(),
                Some(
                    context()
                        .attr("confirmed")
                        .method("contains", vec![CExpr::str(&id)]),
                ),
            ),
            RuleKind::CapConsecutive | RuleKind::RateLimit => {
                self.counters.push(id.clone());
                let max = i64::try_from(limit.map_or(0, |l| l.max)).unwrap_or(i64::MAX);
                // A missing counter means the engine could not supply state:
                // the limit counts as reached.
                // Written as "not (has && below)" because Cedar's validator
                // only credits a `has` guard through `&&`.
                let reached = CExpr::not(CExpr::and(vec![
                    counters.clone().has(&id),
                    CExpr::bin(BinOp::Lt, counters.clone().attr(&id), CExpr::Long(max)),
                ]));
                (
                    CEffect::Forbid,
                    CExpr::and(vec![cond.p.clone(), reached]),
                    None,
                )
            }
            // Satisfied when the call sets the label: on the possibly-true
            // condition, as restrictions fire (a label only restricts what
            // later calls may do). Evaluated by the engine, never part of
            // the decision's sets.
            RuleKind::Label => (CEffect::Permit, cond.p.clone(), None),
            RuleKind::Budget => {
                self.budgets.push(id.clone());
                // Whole units of 1/10,000 (`crate::amount`): a `Long`, not a
                // Cedar `decimal`, so that the engine's request needs no
                // extension value (building one re-parses `decimal` on
                // every call). The checker keeps max within i64.
                let max = i64::try_from(limit.map_or(0, |l| l.max)).unwrap_or(i64::MAX);
                // The engine supplies what the scope would have used with
                // this call; a missing total (no usable amount, no state)
                // counts as over the budget.
                let over = CExpr::not(CExpr::and(vec![
                    budgets.clone().has(&id),
                    CExpr::bin(BinOp::Le, budgets.clone().attr(&id), CExpr::Long(max)),
                ]));
                (
                    CEffect::Forbid,
                    CExpr::and(vec![cond.p.clone(), over]),
                    None,
                )
            }
        };
        let core = CPolicy {
            annotations,
            effect,
            when: body,
            unless,
        };
        let policy = CPolicy {
            when: CExpr::and(vec![matchers.clone(), core.when.clone()]),
            ..core.clone()
        };
        let core_counting = kind.is_limit().then(|| CPolicy {
            annotations: vec![
                ("id", format!("{id}{COUNTING_SUFFIX}")),
                ("kind", "counting".to_string()),
                ("counts_for", id.clone()),
            ],
            effect: CEffect::Permit,
            when: cond.p,
            unless: None,
        });
        let counting = core_counting.as_ref().map(|c| CPolicy {
            when: CExpr::and(vec![matchers.clone(), c.when.clone()]),
            ..c.clone()
        });

        let compiled = CompiledRule {
            id,
            kind,
            mode,
            location,
            span: rule.name.span,
            reason: parts.reason.and_then(|r| parse_template(&r.node).ok()),
            reason_source: parts.reason.map(|r| r.node.clone()),
            limit,
            approval,
            budget,
            servers: parts
                .server
                .map(|p| p.patterns.iter().map(|s| s.node.clone()).collect()),
            tools: parts
                .tool
                .map(|p| p.patterns.iter().map(|s| s.node.clone()).collect()),
            cedar: policy.to_cedar(),
            counting_cedar: counting.as_ref().map(CPolicy::to_cedar),
            core_cedar: core.to_cedar(),
            core_counting_cedar: core_counting.as_ref().map(CPolicy::to_cedar),
            core,
            core_counting,
            arg_fields: std::mem::take(&mut self.rule_fields),
            created_args: std::mem::take(&mut self.rule_created),
            clock_zones: std::mem::take(&mut self.rule_zones),
            time_bound: parts.when.is_some_and(Expr::is_time_bound),
            each_tests: std::mem::take(&mut self.rule_each),
            labels_read: std::mem::take(&mut self.rule_labels),
            keep_secs: (kind == RuleKind::Label)
                .then(|| parts.keep.map_or(Keep::SESSION_SECS, |k| k.node.secs())),
        };
        (compiled, policy, counting)
    }

    fn expr(&mut self, e: &Expr) -> Tri {
        match e {
            Expr::Or(v, _) => {
                let parts: Vec<Tri> = v.iter().map(|e| self.expr(e)).collect();
                Tri {
                    t: CExpr::or(parts.iter().map(|p| p.t.clone()).collect()),
                    p: CExpr::or(parts.into_iter().map(|p| p.p).collect()),
                }
            }
            Expr::And(v, _) => {
                let parts: Vec<Tri> = v.iter().map(|e| self.expr(e)).collect();
                Tri {
                    t: CExpr::and(parts.iter().map(|p| p.t.clone()).collect()),
                    p: CExpr::and(parts.into_iter().map(|p| p.p).collect()),
                }
            }
            Expr::Not(inner, _) => self.expr(inner).not(),
            Expr::Atom(atom, _) => self.atom(atom),
        }
    }

    fn atom(&mut self, atom: &Atom) -> Tri {
        match atom {
            Atom::Bool(b) => Tri::definite(CExpr::Bool(*b)),
            Atom::ViaAgent => Tri::definite(context().attr("via_agent")),
            // A required set the engine always supplies (the labels of the
            // session that the slice's rules ask about): nothing to guard.
            // A store that cannot say denies before Cedar is asked.
            Atom::SessionLabel(name) => {
                self.rule_labels.insert(name.node.clone());
                Tri::definite(
                    context()
                        .attr("labels")
                        .method("contains", vec![CExpr::str(&name.node)]),
                )
            }
            Atom::ViaServer(s) => Tri::definite(CExpr::and(vec![
                context().has("via_server"),
                CExpr::bin(BinOp::Eq, context().attr("via_server"), CExpr::str(&s.node)),
            ])),
            Atom::ToolFlag(f) => Tri::definite(resource().attr(f.keyword())),
            Atom::InGroup(g) => Tri::definite(CExpr::bin(
                BinOp::In,
                CExpr::Var(Var::Principal),
                CExpr::Entity("Group", g.node.clone()),
            )),
            // `null` is unknown: an upstream may take it as absent or as a
            // value, so restrictions fire on it and allows do not grant.
            Atom::Exists(path) => {
                let ptr = self.track(path, None);
                let null = context()
                    .attr("args")
                    .attr("null")
                    .method("contains", vec![CExpr::str(&ptr)]);
                Tri {
                    t: CExpr::and(vec![present(&ptr), CExpr::not(null)]),
                    p: present(&ptr),
                }
            }
            // A required set the engine always supplies: no read to guard,
            // nothing that can error. An absent argument, or one that is
            // not a string or number, is simply not in it.
            // The element names the kind too: an agent-created note with id
            // 1 says nothing about sample 1.
            Atom::CreatedByAgent(path, named) => {
                let decls: Vec<KindDecl<'_>> = self.record_decls.iter().map(KindDecl::of).collect();
                let kind = record_kind::resolve(
                    &decls,
                    self.rule_server.as_ref(),
                    named.as_ref().map(|n| n.node.as_str()),
                )
                .kind()
                .map(str::to_string);
                match kind {
                    Some(kind) => {
                        let arg = CreatedArg {
                            kind,
                            pointer: path.json_pointer(),
                        };
                        let key = arg.key();
                        self.rule_created.insert(arg);
                        Tri::definite(
                            context()
                                .attr("agent_created")
                                .method("contains", vec![CExpr::str(&key)]),
                        )
                    }
                    // The checker rejects a condition without a kind, so
                    // this is never emitted; were it, no id would count as
                    // agent-created.
                    None => Tri::definite(CExpr::Bool(false)),
                }
            }
            Atom::Verified(f) => Tri::definite(context().attr("verified").attr(f.keyword())),
            Atom::Compare(subject, op, lit) => self.compare(subject, op.node, &lit.value),
            Atom::In(subject, lits) => {
                let parts: Vec<Tri> = lits
                    .iter()
                    .map(|l| self.compare(subject, CmpOp::Eq, &l.value))
                    .collect();
                Tri {
                    t: CExpr::or(parts.iter().map(|p| p.t.clone()).collect()),
                    p: CExpr::or(parts.into_iter().map(|p| p.p).collect()),
                }
            }
            Atom::Under(path, prefix) => {
                let ptr = self.track(path, Some(ArgType::Path));
                // The checker refuses a prefix that does not normalise.
                let exact = crate::paths::normalize_path(&prefix.node).unwrap_or_default();
                let folded = crate::paths::fold_case(&exact);
                let t = under(args_record(ArgType::Path), &ptr, &exact);
                let folded_record = context().attr("args").attr(ArgType::FOLDED_PATH_RECORD);
                Tri {
                    p: CExpr::or(vec![
                        under(folded_record, &ptr, &folded),
                        wrong_type(&ptr, ArgType::Path),
                    ]),
                    t,
                }
            }
            Atom::Matches(subject, glob) => match subject {
                Subject::Identity(field) => Tri::definite(identity_like(field.node, &glob.node)),
                Subject::Arg(path) => {
                    let ptr = self.track(path, Some(ArgType::Str));
                    let map = args_record(ArgType::Str);
                    let t = CExpr::and(vec![
                        map.clone().has(&ptr),
                        CExpr::Like(Box::new(map.clone().attr(&ptr)), glob.node.clone()),
                    ]);
                    Tri::with_unknown(t, wrong_type(&ptr, ArgType::Str))
                }
                // The checker refuses `matches` on a size or length.
                Subject::Length(..) | Subject::Size(..) => Tri::definite(CExpr::Bool(false)),
            },
            Atom::During(d) => self.during(d),
            Atom::Each(q, test) => self.each(q.node, test),
            Atom::IgnoringCase(test) => self.ignoring_case(test),
        }
    }

    fn compare(&mut self, subject: &Subject, op: CmpOp, value: &Value) -> Tri {
        if op == CmpOp::Ne {
            return self.compare(subject, CmpOp::Eq, value).not();
        }
        match subject {
            Subject::Length(..) | Subject::Size(..) => self.measure(subject, op, value),
            Subject::Identity(field) => {
                let Value::String(s) = value else {
                    // The checker rejects this; never true is the safe reading.
                    return Tri::definite(CExpr::Bool(false));
                };
                Tri::definite(identity_eq(field.node, s))
            }
            Subject::Arg(path) => {
                let (ty, rhs) = match value {
                    Value::String(s) => (ArgType::Str, CExpr::str(s)),
                    Value::Bool(b) => (ArgType::Bool, CExpr::Bool(*b)),
                    Value::Int(n) => (ArgType::Num, CExpr::Decimal(format!("{n}.0"))),
                    Value::Decimal(d) => (ArgType::Num, CExpr::Decimal(normalize_decimal(d))),
                    // The checker refuses a size unit on anything but `size of`.
                    Value::Size(_) => return Tri::definite(CExpr::Bool(false)),
                };
                let ptr = self.track(path, Some(ty));
                let map = args_record(ty);
                let lhs = map.clone().attr(&ptr);
                let cmp = match (ty, op) {
                    (_, CmpOp::Eq) => CExpr::bin(BinOp::Eq, lhs, rhs),
                    (ArgType::Num, CmpOp::Lt) => lhs.method("lessThan", vec![rhs]),
                    (ArgType::Num, CmpOp::Le) => lhs.method("lessThanOrEqual", vec![rhs]),
                    (ArgType::Num, CmpOp::Gt) => lhs.method("greaterThan", vec![rhs]),
                    (ArgType::Num, CmpOp::Ge) => lhs.method("greaterThanOrEqual", vec![rhs]),
                    // Orderings on strings and booleans are rejected by the checker.
                    _ => CExpr::Bool(false),
                };
                let t = CExpr::and(vec![map.has(&ptr), cmp]);
                Tri::with_unknown(t, wrong_type(&ptr, ty))
            }
        }
    }

    /// Records that `path` is read (as `ty`), returning its JSON pointer.
    fn track(&mut self, path: &ArgPath, ty: Option<ArgType>) -> String {
        let ptr = path.json_pointer();
        for fields in [&mut self.arg_fields, &mut self.rule_fields] {
            let entry = fields.entry(ptr.clone()).or_default();
            if let Some(ty) = ty {
                entry.insert(ty);
            }
        }
        ptr
    }
}

fn args_record(ty: ArgType) -> CExpr {
    context().attr("args").attr(ty.record())
}

/// `record[ptr]` is `prefix` or below it, whole segments only: equal, or
/// `like "<prefix>/*"`. The prefix is in normal form and holds no `*`.
fn under(record: CExpr, ptr: &str, prefix: &str) -> CExpr {
    let value = record.clone().attr(ptr);
    let inside = if prefix == "/" {
        CExpr::Bool(true)
    } else {
        CExpr::or(vec![
            CExpr::bin(BinOp::Eq, value.clone(), CExpr::str(prefix)),
            CExpr::Like(Box::new(value), format!("{prefix}/*")),
        ])
    };
    CExpr::and(vec![record.has(ptr), inside])
}

fn present(ptr: &str) -> CExpr {
    context()
        .attr("args")
        .attr("present")
        .method("contains", vec![CExpr::str(ptr)])
}

/// Present, but not readable as `ty`: the unknown case.
fn wrong_type(ptr: &str, ty: ArgType) -> CExpr {
    CExpr::and(vec![present(ptr), CExpr::not(args_record(ty).has(ptr))])
}

fn identity_eq(field: IdentityField, s: &str) -> CExpr {
    match field {
        IdentityField::User => CExpr::bin(
            BinOp::Eq,
            CExpr::Var(Var::Principal),
            CExpr::Entity("User", s.to_string()),
        ),
        IdentityField::Agent | IdentityField::Model => {
            let name = field.keyword();
            CExpr::and(vec![
                context().has(name),
                CExpr::bin(BinOp::Eq, context().attr(name), CExpr::str(s)),
            ])
        }
    }
}

fn identity_like(field: IdentityField, glob: &str) -> CExpr {
    match field {
        IdentityField::User => CExpr::Like(
            Box::new(CExpr::Var(Var::Principal).attr("name")),
            glob.to_string(),
        ),
        IdentityField::Agent | IdentityField::Model => {
            let name = field.keyword();
            CExpr::and(vec![
                context().has(name),
                CExpr::Like(Box::new(context().attr(name)), glob.to_string()),
            ])
        }
    }
}

fn pattern_match(attr: CExpr, list: Option<&PatternList>) -> CExpr {
    let Some(list) = list else {
        return CExpr::Bool(true);
    };
    CExpr::or(
        list.patterns
            .iter()
            .map(|p| {
                if p.node == "*" {
                    CExpr::Bool(true)
                } else if crate::glob::is_glob(&p.node) {
                    CExpr::Like(Box::new(attr.clone()), p.node.clone())
                } else {
                    CExpr::bin(BinOp::Eq, attr.clone(), CExpr::str(&p.node))
                }
            })
            .collect(),
    )
}

/// Cedar's `decimal()` wants digits on both sides of the point.
fn normalize_decimal(text: &str) -> String {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    let int = if int.is_empty() || int == "-" {
        format!("{int}0")
    } else {
        int.to_string()
    };
    let frac = if frac.is_empty() { "0" } else { frac };
    format!("{int}.{frac}")
}

/// A require-confirm rule's approval as the engine reads it.
fn compiled_approval(parts: &RuleParts<'_>) -> CompiledApproval {
    let approver = parts.approver.map(|a| match a.kind {
        ApproverKind::Group => CompiledApprover::Group(a.name.node.clone()),
        ApproverKind::User => CompiledApprover::User(a.name.node.clone()),
    });
    let (grant, within) = match parts.grant {
        None => (CompiledGrant::Once, Vec::new()),
        Some(g) => (
            match g.scope.node {
                GrantScope::Once => CompiledGrant::Once,
                GrantScope::For(d) => CompiledGrant::ForSecs(d.as_secs()),
                GrantScope::Session => CompiledGrant::Session,
                GrantScope::Calls(n) => CompiledGrant::Calls(n),
            },
            g.within.iter().map(ArgPath::json_pointer).collect(),
        ),
    };
    CompiledApproval {
        approver,
        grant,
        within,
    }
}
