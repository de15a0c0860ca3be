//! Semantic checks over a whole policy set (every file of a directory):
//! defaults, unique names, clause shapes, limits, reason placeholders,
//! types of comparisons, globs, and the two warnings (shadowed rules and
//! redundant allows). Every finding is collected; none stops the others.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::glob::{glob_covers, tool_glob_problem};
use crate::lints;
use crate::record_kind::{self, KindChoice, KindDecl};
use crate::source::{Sources, Span};
use crate::template::parse_template;
use std::collections::HashMap;

mod annotations;
mod approval;
mod elements;
mod labels;
mod limits;
mod time;
pub use time::zone;

/// Longest accepted rate window: a year and a day.
pub const MAX_WINDOW_SECS: u64 = 366 * 86_400;

/// The clauses of a rule, each at most once, as the checker and compiler
/// read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleParts<'a> {
    pub server: Option<&'a PatternList>,
    pub tool: Option<&'a PatternList>,
    pub when: Option<&'a Expr>,
    pub reason: Option<&'a Spanned<String>>,
    pub mode: Option<&'a Spanned<Mode>>,
    pub limit: Option<&'a Limit>,
    pub sum: Option<&'a ArgPath>,
    pub approver: Option<&'a Approver>,
    pub grant: Option<&'a Grant>,
    pub keep: Option<&'a Spanned<Keep>>,
}

impl<'a> RuleParts<'a> {
    /// Splits a rule into its clauses, reporting any written twice (the
    /// first one wins).
    pub fn of(rule: &'a Rule, diags: &mut Vec<Diagnostic>) -> Self {
        let mut parts = RuleParts::default();
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for clause in &rule.clauses {
            if let Some(first) = seen.get(clause.keyword()) {
                diags.push(lints::duplicate_clause(
                    clause.keyword(),
                    *first,
                    clause.span(),
                ));
                continue;
            }
            seen.insert(clause.keyword(), clause.span());
            match clause {
                Clause::Server(p) => parts.server = Some(p),
                Clause::Tool(p) => parts.tool = Some(p),
                Clause::When(e) => parts.when = Some(e),
                Clause::Reason(r) => parts.reason = Some(r),
                Clause::Mode(m) => parts.mode = Some(m),
                Clause::Limit(l) => parts.limit = Some(l),
                Clause::Sum(p) => parts.sum = Some(p),
                Clause::Approver(a) => parts.approver = Some(a),
                Clause::Grant(g) => parts.grant = Some(g),
                Clause::Keep(k) => parts.keep = Some(k),
            }
        }
        parts
    }

    pub fn mode(&self) -> Mode {
        self.mode.map_or(Mode::Enforce, |m| m.node)
    }
}

/// Checks a parsed set. Returns every finding, resolved against `sources`.
pub fn check_policy_set(files: &[PolicyFile], sources: &Sources) -> Diagnostics {
    check(files, sources, true)
}

/// The per-rule checks only, for a set some of whose files did not parse:
/// set-wide findings (a missing default) would be guesses then.
pub fn check_rules_only(files: &[PolicyFile], sources: &Sources) -> Diagnostics {
    check(files, sources, false)
}

fn check(files: &[PolicyFile], sources: &Sources, complete: bool) -> Diagnostics {
    let mut diags = Vec::new();
    let mut default: Option<&DefaultDecl> = None;
    let mut names: HashMap<&str, Span> = HashMap::new();
    // Enforced unconditional denies seen so far, for the shadowing warning.
    let mut blanket_denies: Vec<(&Rule, RuleParts<'_>)> = Vec::new();
    let mut allows: Vec<&Rule> = Vec::new();
    let mut record_kinds: HashMap<&str, Span> = HashMap::new();
    // Each records declaration's kind and server patterns.
    let mut record_decls: Vec<KindDecl<'_>> = Vec::new();
    // Rules reading `created by agent`: their server patterns and the
    // conditions, resolved to a kind once every declaration is seen.
    let mut created_uses: Vec<(Option<&PatternList>, Vec<CreatedUse<'_>>)> = Vec::new();
    // `session has label` tests, and the `label` rules declared.
    let mut label_uses: Vec<&Spanned<String>> = Vec::new();
    let mut label_names: Vec<&str> = Vec::new();
    // Annotation declarations, and the rules to check against them.
    let annotation_decls: Vec<&AnnotationDecl> = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|item| match item {
            Item::Annotation(a) => Some(a),
            _ => None,
        })
        .collect();

    for file in files {
        for item in &file.items {
            match item {
                // Files of a set may each restate the default; only a
                // disagreement is an error.
                Item::Default(d) => match default {
                    Some(first) if first.effect != d.effect => {
                        diags.push(lints::conflicting_default(first, d))
                    }
                    Some(_) => {}
                    None => default = Some(d),
                },
                Item::Records(decl) => {
                    if let Some(first) = record_kinds.get(decl.name.node.as_str()) {
                        diags.push(lints::duplicate_records_name(
                            &decl.name.node,
                            *first,
                            decl.name.span,
                        ));
                    } else {
                        record_kinds.insert(&decl.name.node, decl.name.span);
                    }
                    record_decls.push(KindDecl {
                        kind: &decl.name.node,
                        servers: check_records(decl, &mut diags),
                    });
                }
                Item::Annotation(decl) => annotations::check_annotation(decl, &mut diags),
                Item::Rule(rule) => {
                    if let Some(first) = names.get(rule.name.node.as_str()) {
                        diags.push(lints::duplicate_rule_name(
                            &rule.name.node,
                            *first,
                            rule.name.span,
                        ));
                    } else {
                        names.insert(&rule.name.node, rule.name.span);
                    }
                    let parts = RuleParts::of(rule, &mut diags);
                    check_rule(rule, &parts, sources, &mut diags);
                    if complete {
                        annotations::check_upstream_reads(&parts, &annotation_decls, &mut diags);
                    }
                    if rule.kind.node == RuleKind::Label {
                        label_names.push(&rule.name.node);
                    }
                    if let Some(when) = parts.when {
                        labels::label_uses(when, &mut label_uses);
                        let mut uses = Vec::new();
                        created_by_uses(when, &mut uses);
                        if !uses.is_empty() {
                            created_uses.push((parts.server, uses));
                        }
                    }

                    if parts.mode() == Mode::Enforce {
                        if let Some((by, _)) =
                            blanket_denies.iter().find(|(_, deny)| covers(deny, &parts))
                        {
                            diags.push(lints::shadowed_rule(
                                rule.name.span,
                                &rule.name.node,
                                &by.name.node,
                                by.name.span,
                            ));
                        }
                        if rule.kind.node == RuleKind::Deny && parts.when.is_none() {
                            blanket_denies.push((rule, parts));
                        }
                        if rule.kind.node == RuleKind::Allow {
                            allows.push(rule);
                        }
                    }
                }
            }
        }
    }

    // With files missing, their declarations might cover the rule.
    if complete {
        for name in label_uses {
            if !label_names.contains(&name.node.as_str()) {
                diags.push(lints::unknown_label(name.span, &name.node, &label_names));
            }
        }
        for (servers, uses) in created_uses {
            let which = match servers {
                None => "any server".to_string(),
                Some(list) => list
                    .patterns
                    .iter()
                    .map(|p| format!("`{}`", p.node))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            for (at, named) in uses {
                let name = named.map(|n| n.node.as_str());
                match record_kind::resolve(&record_decls, servers, name) {
                    KindChoice::Named(_) => {}
                    KindChoice::Inferred(kind) => {
                        diags.push(lints::inferred_record_kind(at, kind, &which))
                    }
                    KindChoice::Ambiguous(kinds) => {
                        diags.push(lints::ambiguous_record_kind(at, &kinds, &which))
                    }
                    KindChoice::Unknown => {
                        let declared: Vec<&str> = record_decls.iter().map(|d| d.kind).collect();
                        let n = named.expect("a named kind");
                        diags.push(lints::unknown_record_kind(n.span, &n.node, &declared))
                    }
                    KindChoice::NotForServers => {
                        let n = named.expect("a named kind");
                        diags.push(lints::records_not_declared_for_kind(
                            n.span, &n.node, &which,
                        ))
                    }
                    KindChoice::NoneDeclared => diags.push(lints::records_not_declared(at, &which)),
                }
            }
        }
    }

    crate::rule_lints::check_dead(files, &mut diags);

    match default {
        None if !complete => {}
        None => {
            let at = files
                .first()
                .map(|f| Span::new(f.file, 0, 0))
                .filter(|_| !sources.is_empty());
            diags.push(lints::missing_default(at));
        }
        Some(d) if d.effect == Effect::Allow => {
            for rule in allows {
                diags.push(lints::redundant_allow(
                    rule.name.span,
                    &rule.name.node,
                    d.span,
                ));
            }
        }
        Some(_) => {}
    }

    let mut out = Diagnostics::new();
    out.extend(diags);
    out.resolve(sources)
}

/// Checks one records declaration; returns its server patterns.
fn check_records<'a>(
    decl: &'a RecordsDecl,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a PatternList> {
    let mut server: Option<&PatternList> = None;
    let mut creators = 0;
    for clause in &decl.clauses {
        match clause {
            RecordsClause::Server(list) => {
                if let Some(first) = server {
                    diags.push(lints::duplicate_records_clause(first.span, list.span));
                    continue;
                }
                server = Some(list);
                for p in list.patterns.iter().filter(|p| p.node.is_empty()) {
                    diags.push(lints::empty_server_pattern(p.span));
                }
            }
            RecordsClause::CreatedBy(c) => {
                creators += 1;
                if let Some(why) = tool_glob_problem(&c.tool.node) {
                    diags.push(lints::glob_never_matches(c.tool.span, &c.tool.node, &why));
                }
                if let Some(why) = json_pointer_problem(&c.pointer.node) {
                    diags.push(lints::invalid_json_pointer(
                        c.pointer.span,
                        &c.pointer.node,
                        why,
                    ));
                }
            }
        }
    }
    if creators == 0 {
        diags.push(lints::empty_records(decl.name.span, &decl.name.node));
    }
    server
}

/// Why `pointer` cannot locate a record id in a result, if it cannot.
pub fn json_pointer_problem(pointer: &str) -> Option<&'static str> {
    if pointer.is_empty() {
        return Some("the empty pointer is the whole structuredContent, an object, never an id");
    }
    if !pointer.starts_with('/') {
        return Some("a JSON pointer starts with `/`");
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some("`~` must be followed by `0` (for `~`) or `1` (for `/`)");
        }
    }
    None
}

/// A `created by agent` condition: its span and the kind it names, if any.
type CreatedUse<'a> = (Span, Option<&'a Spanned<String>>);

/// The `created by agent` conditions in `expr`.
fn created_by_uses<'a>(expr: &'a Expr, out: &mut Vec<CreatedUse<'a>>) {
    match expr {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| created_by_uses(e, out)),
        Expr::Not(e, _) => created_by_uses(e, out),
        Expr::Atom(Atom::CreatedByAgent(_, kind), span) => out.push((*span, kind.as_ref())),
        Expr::Atom(Atom::Each(_, inner), span) => {
            if let Atom::CreatedByAgent(_, kind) = &**inner {
                out.push((*span, kind.as_ref()))
            }
        }
        Expr::Atom(..) => {}
    }
}

/// Whether an unconditional deny's matchers take in every call `later` can match.
fn covers(deny: &RuleParts<'_>, later: &RuleParts<'_>) -> bool {
    fn list_covers(outer: Option<&PatternList>, inner: Option<&PatternList>) -> bool {
        match (outer, inner) {
            (None, _) => true,
            (Some(o), None) => o.patterns.iter().any(|p| p.node == "*"),
            (Some(o), Some(i)) => i
                .patterns
                .iter()
                .all(|ip| o.patterns.iter().any(|op| glob_covers(&op.node, &ip.node))),
        }
    }
    list_covers(deny.server, later.server) && list_covers(deny.tool, later.tool)
}

fn check_rule(rule: &Rule, parts: &RuleParts<'_>, sources: &Sources, diags: &mut Vec<Diagnostic>) {
    let kind = rule.kind.node;
    limits::check_limit(rule, parts, diags);
    approval::check_approval(rule, parts, diags);
    labels::check_label_clauses(rule, parts, diags);

    if let Some(tools) = parts.tool {
        for p in &tools.patterns {
            if let Some(why) = tool_glob_problem(&p.node) {
                diags.push(lints::glob_never_matches(p.span, &p.node, &why));
            }
        }
    }
    if let Some(servers) = parts.server {
        for p in servers.patterns.iter().filter(|p| p.node.is_empty()) {
            diags.push(lints::empty_server_pattern(p.span));
        }
    }

    if let Some(reason) = parts.reason
        && let Ok(template) = parse_template(&reason.node)
    {
        use crate::template::{Placeholder, TemplatePart};
        for part in &template.parts {
            let (name, allowed) = match part {
                TemplatePart::Placeholder(Placeholder::Limit) => ("limit", parts.limit.is_some()),
                TemplatePart::Placeholder(Placeholder::Window) => {
                    ("window", parts.limit.is_some_and(|l| l.window.is_some()))
                }
                TemplatePart::Placeholder(Placeholder::Used) => ("used", kind == RuleKind::Budget),
                TemplatePart::Placeholder(Placeholder::Remaining) => {
                    ("remaining", kind == RuleKind::Budget)
                }
                _ => continue,
            };
            if !allowed {
                let raw = &sources.get(reason.span.file).text()[reason.span.start..reason.span.end];
                let needle = format!("{{{name}}}");
                let at = raw
                    .find(&needle)
                    .map(|i| {
                        Span::new(
                            reason.span.file,
                            reason.span.start + i,
                            reason.span.start + i + needle.len(),
                        )
                    })
                    .unwrap_or(reason.span);
                diags.push(lints::placeholder_without_limit(at, name, kind.keyword()));
            }
        }
    }
    if let Some(reason) = parts.reason
        && let Err(errors) = parse_template(&reason.node)
    {
        let raw = &sources.get(reason.span.file).text()[reason.span.start..reason.span.end];
        for e in errors {
            // Placeholders hold no escapes, so their text is found verbatim.
            let needle = &reason.node[e.start..e.end];
            let at = raw
                .find(needle)
                .map(|i| {
                    Span::new(
                        reason.span.file,
                        reason.span.start + i,
                        reason.span.start + i + needle.len(),
                    )
                })
                .unwrap_or(reason.span);
            diags.push(if e.unclosed {
                lints::unclosed_placeholder(at)
            } else {
                lints::unknown_placeholder(at, &e.placeholder)
            });
        }
    }

    if let Some(when) = parts.when {
        check_expr(when, diags);
        time::check_windows(when, sources, diags);
        crate::rule_lints::check_hint_defaults(kind, when, diags);
        crate::rule_lints::check_paths(when, diags);
    }
}

fn check_expr(expr: &Expr, diags: &mut Vec<Diagnostic>) {
    match expr {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| check_expr(e, diags)),
        Expr::Not(e, _) => check_expr(e, diags),
        Expr::Atom(atom, span) => match atom {
            Atom::Each(q, inner) => elements::check_each(q, inner, *span, diags),
            Atom::IgnoringCase(inner) => elements::check_folded(inner, *span, diags),
            Atom::Compare(subject, op, lit) => {
                check_literal(lit, diags);
                match subject {
                    Subject::Identity(field) => {
                        if op.node.is_ordering() {
                            diags.push(lints::identity_ordering(
                                op.span,
                                field.node.keyword(),
                                op.node.symbol(),
                            ));
                        } else if !matches!(lit.value, Value::String(_)) {
                            diags.push(lints::identity_not_string(
                                lit.span,
                                field.node.keyword(),
                                lit.value.type_name(),
                            ));
                        }
                    }
                    Subject::Length(..) | Subject::Size(..) => {
                        elements::check_measure(subject, lit, diags)
                    }
                    Subject::Arg(_) => {
                        if let Value::Size(_) = lit.value {
                            // One finding: a size is a number too, so the
                            // ordering check below has nothing to add.
                            diags.push(lints::size_on_value(lit.span));
                        } else if op.node.is_ordering()
                            && !matches!(lit.value, Value::Int(_) | Value::Decimal(_))
                        {
                            diags.push(lints::ordering_on_non_number(
                                lit.span,
                                op.node.symbol(),
                                lit.value.type_name(),
                            ));
                        }
                    }
                }
            }
            Atom::In(subject, lits) => {
                if let Some(first) = lits.first()
                    && let Some(other) = lits
                        .iter()
                        .find(|l| l.value.type_name() != first.value.type_name())
                {
                    diags.push(lints::mixed_list(
                        other.span,
                        first.value.type_name(),
                        other.value.type_name(),
                    ));
                }
                for lit in lits {
                    check_literal(lit, diags);
                    if let Subject::Identity(field) = subject
                        && !matches!(lit.value, Value::String(_))
                    {
                        diags.push(lints::identity_not_string(
                            lit.span,
                            field.node.keyword(),
                            lit.value.type_name(),
                        ));
                    }
                }
            }
            _ => {}
        },
    }
}

/// Cedar's `decimal` has 4 fractional digits and the range of an i64 / 10^4.
pub(crate) fn decimal_problem(text: &str) -> Option<bool> {
    let (int, frac) = text.split_once('.')?;
    if frac.len() > 4 {
        return Some(true);
    }
    let scaled = format!("{int}{frac:0<4}");
    Some(scaled.parse::<i64>().is_err())
}

/// Whole numbers are compared as Cedar decimals, whose range is i64 / 10^4.
const MAX_DECIMAL_INT: i64 = i64::MAX / 10_000;

fn check_literal(lit: &Literal, diags: &mut Vec<Diagnostic>) {
    if let Value::Int(n) = lit.value
        && !(-MAX_DECIMAL_INT..=MAX_DECIMAL_INT).contains(&n)
    {
        diags.push(lints::beyond_decimal_range(lit.span, &n.to_string()));
    }
    if let Value::Decimal(text) = &lit.value {
        let (_, frac) = text.split_once('.').unwrap_or_default();
        if frac.len() > 4 {
            diags.push(lints::too_many_decimals(lit.span, text));
        } else if decimal_problem(text) == Some(true) {
            diags.push(lints::beyond_decimal_range(lit.span, text));
        }
    }
}
