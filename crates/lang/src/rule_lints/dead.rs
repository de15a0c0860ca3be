//! Tests that can never hold and caps that can never fire, over the whole
//! set: `wildcard-segment` and `never-matches` (errors: no call can match),
//! `field-of-scalar` and `measure-as-field` (warnings: very likely
//! mistakes, which some argument shape would let match), and
//! `cap-ended-by-confirm`. The walks recurse as deep as a condition nests,
//! which the parser bounds (crate::limits).

use crate::ast::*;
use crate::check::RuleParts;
use crate::diagnostic::Diagnostic;
use crate::fmt::format_arg_path;
use crate::glob::glob_covers;
use crate::lints;
use crate::source::Span;
use std::collections::{HashMap, HashSet};

/// One argument path a rule reads, and how.
struct Read<'a> {
    path: &'a ArgPath,
    /// What the test takes the value for, when it takes it for a string,
    /// number or boolean (which have no fields).
    scalar: Option<&'static str>,
    /// Compared with a number (`args.x.length > 1000`).
    numeric: bool,
    /// The index of the rule in `rules`.
    rule: usize,
}

/// The checks that compare tests across rules of the set, and the per-test
/// ones that need no type information: a `*` segment, a field read of a
/// value read as a scalar, a `.length` field compared as a number, a
/// negative length, a conjunction no value passes, and a cap whose calls
/// are all confirmed.
pub(crate) fn check_dead(files: &[PolicyFile], diags: &mut Vec<Diagnostic>) {
    let rules: Vec<(&Rule, RuleParts<'_>)> = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|item| match item {
            // Duplicate clauses are reported by the checker proper.
            Item::Rule(r) => Some((r, RuleParts::of(r, &mut Vec::new()))),
            _ => None,
        })
        .collect();

    let mut reads = Vec::new();
    for (i, (_, parts)) in rules.iter().enumerate() {
        if let Some(when) = parts.when {
            expr_reads(when, i, &mut reads, diags);
        }
        if let Some(sum) = parts.sum {
            reads.push(Read {
                path: sum,
                scalar: Some("a number"),
                numeric: true,
                rule: i,
            });
        }
    }

    // Spans already reported (a set: 10,000 rules read as many paths).
    let mut reported: HashSet<Span> = HashSet::new();
    for read in &reads {
        if let Some(at) = read.path.segments.iter().position(|s| s.contains('*')) {
            let list = ArgPath {
                segments: read.path.segments[..at].to_vec(),
                span: read.path.span,
            };
            let list = if list.segments.is_empty() {
                "args.LIST".to_string()
            } else {
                format_arg_path(&list)
            };
            diags.push(lints::wildcard_segment(
                read.path.span,
                &format_arg_path(read.path),
                &read.path.segments[at],
                &list,
            ));
            reported.insert(read.path.span);
        }
    }
    // A read a `never-matches` already points at needs no second finding.
    reported.extend(
        diags
            .iter()
            .filter(|d| d.code() == crate::diagnostic::Code::NeverMatches)
            .flat_map(|d| d.labels().iter().map(|l| l.span()))
            .flat_map(|dead| {
                reads.iter().map(|r| r.path.span).filter(move |p| {
                    p.file == dead.file && p.start >= dead.start && p.end <= dead.end
                })
            })
            .collect::<Vec<_>>(),
    );
    for read in &reads {
        if reported.contains(&read.path.span) {
            continue;
        }
        if let Some((parent, measure)) = measure_field(read, &reads) {
            diags.push(lints::measure_as_field(
                read.path.span,
                &format_arg_path(read.path),
                &format_arg_path(&parent),
                measure,
            ));
            reported.insert(read.path.span);
        }
    }
    // The reads taken for a scalar, by path: a read's scalar parents are
    // found among those at its proper prefixes, not by a scan of every read
    // (which made this quadratic in the size of the set).
    let mut scalars: HashMap<&[String], Vec<usize>> = HashMap::new();
    for (i, r) in reads.iter().enumerate() {
        if r.scalar.is_some() {
            scalars
                .entry(r.path.segments.as_slice())
                .or_default()
                .push(i);
        }
    }
    for read in &reads {
        if reported.contains(&read.path.span) {
            continue;
        }
        let segments = &read.path.segments;
        // The first such read in set order, as a scan would find it.
        let scalar_parent = (0..segments.len())
            .filter_map(|len| scalars.get(&segments[..len]))
            .flatten()
            .copied()
            .filter(|&i| {
                let p = &reads[i];
                p.rule == read.rule || same_calls(&rules[p.rule].1, &rules[read.rule].1)
            })
            .min()
            .map(|i| &reads[i]);
        if let Some(p) = scalar_parent {
            diags.push(lints::field_of_scalar(
                read.path.span,
                &format_arg_path(read.path),
                &format_arg_path(p.path),
                p.path.span,
                p.scalar.unwrap_or("a scalar"),
            ));
            reported.insert(read.path.span);
        }
    }

    check_confirmed_caps(&rules, diags);
}

/// `args.content.length` compared as a number: the field's parent, and
/// `length` or `size`, unless the set reads another field of the parent
/// (then it is an object, and `length` may well be one of its fields).
/// A warning, not an error: an object argument may have a `size` or
/// `count` field (a page size), and then the test does match.
fn measure_field(read: &Read<'_>, reads: &[Read<'_>]) -> Option<(ArgPath, &'static str)> {
    let segs = &read.path.segments;
    let (last, parent) = segs.split_last()?;
    if !read.numeric || parent.is_empty() {
        return None;
    }
    let measure = match last.as_str() {
        "length" | "len" | "count" => "length",
        "size" => "size",
        _ => return None,
    };
    let object = reads.iter().any(|r| {
        r.path.segments.len() > parent.len()
            && r.path.segments.starts_with(parent)
            && r.path.segments[parent.len()] != *last
    });
    if object {
        return None;
    }
    let parent = ArgPath {
        segments: parent.to_vec(),
        span: read.path.span,
    };
    Some((parent, measure))
}

/// Whether two rules can match one call: each of their tool and server
/// lists has a pattern that covers one of the other's. (Rules over
/// different tools may read one argument name with different shapes.)
fn same_calls(a: &RuleParts<'_>, b: &RuleParts<'_>) -> bool {
    fn overlap(a: Option<&PatternList>, b: Option<&PatternList>) -> bool {
        match (a, b) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => a.patterns.iter().any(|p| {
                b.patterns
                    .iter()
                    .any(|q| glob_covers(&p.node, &q.node) || glob_covers(&q.node, &p.node))
            }),
        }
    }
    overlap(a.tool, b.tool) && overlap(a.server, b.server)
}

/// Collects the argument reads of a condition, and reports the tests and
/// conjunctions in it that hold for no call.
fn expr_reads<'a>(e: &'a Expr, rule: usize, out: &mut Vec<Read<'a>>, diags: &mut Vec<Diagnostic>) {
    match e {
        Expr::And(v, _) => {
            contradictions(v, diags);
            v.iter().for_each(|e| expr_reads(e, rule, out, diags));
        }
        Expr::Or(v, _) => v.iter().for_each(|e| expr_reads(e, rule, out, diags)),
        Expr::Not(inner, _) => expr_reads(inner, rule, out, diags),
        Expr::Atom(a, span) => atom_reads(a, *span, rule, false, out, diags),
    }
}

fn atom_reads<'a>(
    a: &'a Atom,
    span: Span,
    rule: usize,
    element: bool,
    out: &mut Vec<Read<'a>>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut push = |path: &'a ArgPath, scalar: Option<&'static str>, numeric: bool| {
        out.push(Read {
            path,
            // The path of a quantified test names the list, not a scalar.
            scalar: scalar.filter(|_| !element),
            numeric: numeric && !element,
            rule,
        })
    };
    match a {
        Atom::Exists(p) => push(p, None, false),
        Atom::CreatedByAgent(p, _) => push(p, Some("a record id"), false),
        Atom::Under(p, _) => push(p, Some("a path (a string)"), false),
        Atom::Matches(s, _) => subject_read(s, Some("a string"), false, &mut push),
        Atom::Compare(s, op, lit) => {
            let numeric = matches!(lit.value, Value::Int(_) | Value::Decimal(_));
            subject_read(s, scalar_type(&lit.value), numeric, &mut push);
            if let Some(what) = negative_measure(s, op.node, &lit.value) {
                let text = subject_text(s);
                diags.push(lints::below_zero_measure(span, &text, what));
            }
        }
        Atom::In(s, lits) => {
            let scalar = lits.first().and_then(|l| scalar_type(&l.value));
            subject_read(s, scalar, false, &mut push);
        }
        Atom::IgnoringCase(inner) => atom_reads(inner, span, rule, element, out, diags),
        Atom::Each(_, inner) => atom_reads(inner, span, rule, true, out, diags),
        Atom::Bool(_)
        | Atom::ViaAgent
        | Atom::ViaServer(_)
        | Atom::ToolFlag(_)
        | Atom::InGroup(_)
        | Atom::Verified(_)
        | Atom::SessionLabel(_)
        | Atom::During(_) => {}
    }
}

/// An argument subject's read; `length of` and `size of` read any value.
fn subject_read<'a>(
    s: &'a Subject,
    scalar: Option<&'static str>,
    numeric: bool,
    push: &mut impl FnMut(&'a ArgPath, Option<&'static str>, bool),
) {
    match s {
        Subject::Arg(p) => push(p, scalar, numeric),
        Subject::Length(p, _) | Subject::Size(p, _) => push(p, None, false),
        Subject::Identity(_) => {}
    }
}

fn scalar_type(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(_) => Some("a string"),
        Value::Int(_) | Value::Decimal(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Size(_) => None,
    }
}

/// `length of args.x < 0`, `size of args.x < 0 KB`: below zero. (Negative
/// counts are the checker's type error already.)
fn negative_measure(s: &Subject, op: CmpOp, v: &Value) -> Option<&'static str> {
    let what = match s {
        Subject::Length(..) => "length",
        Subject::Size(..) => "size",
        _ => return None,
    };
    let zero = matches!(v, Value::Int(0)) || matches!(v, Value::Size(b) if b.amount == 0);
    (op == CmpOp::Lt && zero).then_some(what)
}

/// What a direct test of an `and` lets a subject be: one of some values
/// (`==`, `in`), or anything but one (`!=`).
enum Allowed<'a> {
    OneOf(Vec<&'a Value>),
    Not(&'a Value),
}

/// Reports two tests of one `and` that no value of one subject passes
/// both of: `args.x == "a" and args.x == "b"`, `user == "a" and user != "a"`,
/// `args.x in ["a", "b"] and args.x == "c"`, `args.x == "a" and args.x == 1`.
/// Decimals are left out (`1.0` and `1.00` are one number).
fn contradictions(parts: &[Expr], diags: &mut Vec<Diagnostic>) {
    if bounds_clash(parts, diags) || field_clash(parts, diags) {
        return;
    }
    let mut tests: Vec<(&Subject, Allowed<'_>, Span)> = Vec::new();
    for part in parts {
        let Expr::Atom(atom, span) = part else {
            continue;
        };
        let test = match atom {
            Atom::Compare(s, op, lit) if op.node == CmpOp::Eq => {
                (s, Allowed::OneOf(vec![&lit.value]))
            }
            Atom::Compare(s, op, lit) if op.node == CmpOp::Ne => (s, Allowed::Not(&lit.value)),
            Atom::In(s, lits) => (s, Allowed::OneOf(lits.iter().map(|l| &l.value).collect())),
            _ => continue,
        };
        let exact = match &test.1 {
            Allowed::OneOf(v) => v.iter().all(|v| exact(v)),
            Allowed::Not(v) => exact(v),
        };
        if !exact {
            continue;
        }
        let clash = tests
            .iter()
            .filter(|(s, _, _)| same_subject(s, test.0))
            .find_map(|(_, earlier, at)| disjoint(earlier, &test.1).map(|why| (*at, why)));
        if let Some((earlier, why)) = clash {
            let subject = subject_text(test.0);
            diags.push(lints::contradiction(*span, earlier, &subject, why));
            // One report per conjunction.
            return;
        }
        tests.push((test.0, test.1, *span));
    }
}

/// The argument paths a test reads (not through `any` / `all`, whose path
/// names a list), each with what it takes the value for if a scalar.
fn plain_reads<'a>(a: &'a Atom) -> Vec<(&'a ArgPath, Option<&'static str>)> {
    let subject = |s: &'a Subject, scalar| match s {
        Subject::Arg(p) => vec![(p, scalar)],
        Subject::Length(p, _) | Subject::Size(p, _) => vec![(p, None)],
        Subject::Identity(_) => vec![],
    };
    match a {
        Atom::Exists(p) => vec![(p, None)],
        Atom::CreatedByAgent(p, _) => vec![(p, Some("a record id"))],
        Atom::Under(p, _) => vec![(p, Some("a path (a string)"))],
        Atom::Matches(s, _) => subject(s, Some("a string")),
        Atom::Compare(s, _, lit) => subject(s, scalar_type(&lit.value)),
        Atom::In(s, lits) => subject(s, lits.first().and_then(|l| scalar_type(&l.value))),
        Atom::IgnoringCase(inner) => plain_reads(inner),
        _ => vec![],
    }
}

/// Reports a test of one `and` that reads a field of an argument another
/// test of it reads as a string, number or boolean: no value is both
/// (`args.format == "csv" and args.format.kind == "x"`).
fn field_clash(parts: &[Expr], diags: &mut Vec<Diagnostic>) -> bool {
    let reads: Vec<(&ArgPath, Option<&'static str>, Span)> = parts
        .iter()
        .filter_map(|p| match p {
            Expr::Atom(a, span) => Some((a, *span)),
            _ => None,
        })
        .flat_map(|(a, span)| plain_reads(a).into_iter().map(move |(p, s)| (p, s, span)))
        .collect();
    for (path, _, at) in &reads {
        let parent = reads.iter().find(|(p, scalar, _)| {
            scalar.is_some()
                && p.segments.len() < path.segments.len()
                && path.segments.starts_with(&p.segments)
        });
        if let Some((p, Some(read_as), earlier)) = parent {
            let why = format!(
                "a field of `{}`, which {read_as} does not have",
                format_arg_path(p)
            );
            diags.push(lints::contradiction(
                *at,
                *earlier,
                &format_arg_path(p),
                &why,
            ));
            return true;
        }
    }
    false
}

/// A bound a comparison puts on a number: the value (bytes for a size),
/// whether it is itself allowed, and where it was written.
#[derive(Clone, Copy)]
struct Bound {
    value: i128,
    inclusive: bool,
    at: Span,
}

/// Reports two comparisons of one `and` that leave no number between
/// them: `args.n > 5 and args.n < 3`, `size of args.x >= 2 KB and size of
/// args.x < 1000`. Bounds are read as on real numbers (`args.n > 5 and
/// args.n < 6` holds for 5.5), and only whole numbers and sizes count.
fn bounds_clash(parts: &[Expr], diags: &mut Vec<Diagnostic>) -> bool {
    // Per subject: the tightest lower and upper bound so far.
    let mut seen: Vec<(&Subject, Option<Bound>, Option<Bound>)> = Vec::new();
    for part in parts {
        let Expr::Atom(Atom::Compare(s, op, lit), span) = part else {
            continue;
        };
        let value = match lit.value {
            Value::Int(n) => i128::from(n),
            Value::Size(b) => i128::from(b.bytes()),
            _ => continue,
        };
        let bound = |inclusive| Bound {
            value,
            inclusive,
            at: *span,
        };
        let (lower, upper) = match op.node {
            CmpOp::Gt => (Some(bound(false)), None),
            CmpOp::Ge => (Some(bound(true)), None),
            CmpOp::Lt => (None, Some(bound(false))),
            CmpOp::Le => (None, Some(bound(true))),
            CmpOp::Eq => (Some(bound(true)), Some(bound(true))),
            CmpOp::Ne => continue,
        };
        let entry = match seen.iter().position(|(subj, _, _)| same_subject(subj, s)) {
            Some(i) => &mut seen[i],
            None => {
                seen.push((s, None, None));
                seen.last_mut().expect("pushed")
            }
        };
        let tighter_lower = |a: Bound, b: Bound| {
            if b.value > a.value || (b.value == a.value && !b.inclusive) {
                b
            } else {
                a
            }
        };
        let tighter_upper = |a: Bound, b: Bound| {
            if b.value < a.value || (b.value == a.value && !b.inclusive) {
                b
            } else {
                a
            }
        };
        if let Some(l) = lower {
            entry.1 = Some(entry.1.map_or(l, |old| tighter_lower(old, l)));
        }
        if let Some(u) = upper {
            entry.2 = Some(entry.2.map_or(u, |old| tighter_upper(old, u)));
        }
        if let (Some(l), Some(u)) = (entry.1, entry.2)
            && (l.value > u.value || (l.value == u.value && !(l.inclusive && u.inclusive)))
        {
            let (at, earlier) = if l.at == *span {
                (l.at, u.at)
            } else {
                (u.at, l.at)
            };
            diags.push(lints::contradiction(
                at,
                earlier,
                &subject_text(s),
                "leaves no number between this bound and the other",
            ));
            return true;
        }
    }
    false
}

/// Values compared exactly by their text: strings, whole numbers, booleans.
fn exact(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Int(_) | Value::Bool(_))
}

fn same_subject(a: &Subject, b: &Subject) -> bool {
    match (a, b) {
        (Subject::Arg(a), Subject::Arg(b))
        | (Subject::Length(a, _), Subject::Length(b, _))
        | (Subject::Size(a, _), Subject::Size(b, _)) => a.segments == b.segments,
        (Subject::Identity(a), Subject::Identity(b)) => a.node == b.node,
        _ => false,
    }
}

/// Why no value passes both, if none does.
fn disjoint(a: &Allowed<'_>, b: &Allowed<'_>) -> Option<&'static str> {
    match (a, b) {
        (Allowed::OneOf(x), Allowed::OneOf(y)) => (!x.iter().any(|v| y.contains(v)))
            .then_some("no value is both this and what the other test asks for"),
        (Allowed::OneOf(x), Allowed::Not(v)) | (Allowed::Not(v), Allowed::OneOf(x)) => x
            .iter()
            .all(|a| a == v)
            .then_some("excludes the only value the other test allows"),
        (Allowed::Not(_), Allowed::Not(_)) => None,
    }
}

/// Whether every call `cap` holds for makes `confirm` hold too: no
/// confirm condition, or one that is the cap's condition or a part of its
/// top-level `and` (or all of its own `and` parts are), compared as the
/// formatter prints them.
fn implied(confirm: Option<&[String]>, cap: Option<&[String]>) -> bool {
    let Some(needed) = confirm else {
        return true;
    };
    let Some(cap_parts) = cap else {
        return false;
    };
    needed.iter().all(|n| cap_parts.contains(n))
}

/// A condition's top-level `and` parts (or the condition itself) as the
/// formatter prints them: what [`implied`] compares.
fn and_parts_text(e: &Expr) -> Vec<String> {
    let text = |e: &Expr| {
        let mut out = String::new();
        crate::fmt::write_expr(&mut out, e);
        out
    };
    match e {
        Expr::And(v, _) => v.iter().map(text).collect(),
        e => vec![text(e)],
    }
}

/// Warns on a cap-consecutive whose matching calls an enforced
/// require-confirm covers (its servers and tools take in the cap's, and
/// its condition, if any, holds whenever the cap's does): each of them is
/// confirmed, and a confirmed call ends the streak, so the cap never
/// reaches its max.
fn check_confirmed_caps(rules: &[(&Rule, RuleParts<'_>)], diags: &mut Vec<Diagnostic>) {
    fn covers(outer: Option<&PatternList>, inner: Option<&PatternList>) -> bool {
        match (outer, inner) {
            (None, _) => true,
            (Some(o), None) => o.patterns.iter().any(|p| p.node == "*"),
            (Some(o), Some(i)) => i
                .patterns
                .iter()
                .all(|ip| o.patterns.iter().any(|op| glob_covers(&op.node, &ip.node))),
        }
    }
    // The conditions' texts, printed once per rule that can take part
    // (not once per pair of a cap and a rule).
    let texts: Vec<Option<Vec<String>>> = rules
        .iter()
        .map(|(r, parts)| {
            let takes_part = r.kind.node == RuleKind::CapConsecutive
                || (r.kind.node == RuleKind::RequireConfirm && parts.mode() == Mode::Enforce);
            parts.when.filter(|_| takes_part).map(and_parts_text)
        })
        .collect();
    for (c, (cap, cap_parts)) in rules.iter().enumerate() {
        if cap.kind.node != RuleKind::CapConsecutive {
            continue;
        }
        let confirm = rules.iter().enumerate().find(|(i, (r, parts))| {
            r.kind.node == RuleKind::RequireConfirm
                && parts.mode() == Mode::Enforce
                && implied(texts[*i].as_deref(), texts[c].as_deref())
                && covers(parts.server, cap_parts.server)
                && covers(parts.tool, cap_parts.tool)
        });
        let confirm = confirm.map(|(_, rule)| rule);
        if let Some((confirm, _)) = confirm {
            diags.push(lints::cap_ended_by_confirm(
                cap.name.span,
                &cap.name.node,
                &confirm.name.node,
                confirm.name.span,
            ));
        }
    }
}

/// A subject as the formatter writes it.
fn subject_text(s: &Subject) -> String {
    match s {
        Subject::Arg(p) => format_arg_path(p),
        Subject::Identity(i) => i.node.keyword().to_string(),
        Subject::Length(p, _) => format!("length of {}", format_arg_path(p)),
        Subject::Size(p, _) => format!("size of {}", format_arg_path(p)),
    }
}
