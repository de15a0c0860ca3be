//! Comparing ASTs without their spans: a parsed tree and a generated one
//! differ only in where things are.

use super::S;
use warden_lang::FileId;
use warden_lang::ast::*;

// ---- comparing ASTs without spans -----------------------------------------

pub fn strip_file(f: &PolicyFile) -> PolicyFile {
    let mut f = f.clone();
    f.file = FileId(0);
    for item in &mut f.items {
        match item {
            Item::Default(d) => d.span = S,
            Item::Records(r) => strip_records(r),
            Item::Annotation(a) => {
                a.span = S;
                for list in std::iter::once(&mut a.tools).chain(a.servers.as_mut()) {
                    list.span = S;
                    for p in &mut list.patterns {
                        p.span = S;
                    }
                }
                for c in &mut a.claims {
                    c.span = S;
                }
            }
            Item::Rule(r) => strip_rule(r),
        }
    }
    for c in &mut f.comments {
        c.span = S;
    }
    f
}

fn strip_records(r: &mut RecordsDecl) {
    r.span = S;
    r.name.span = S;
    for c in &mut r.clauses {
        match c {
            RecordsClause::Server(p) => {
                p.span = S;
                for s in &mut p.patterns {
                    s.span = S;
                }
            }
            RecordsClause::CreatedBy(c) => {
                c.span = S;
                c.tool.span = S;
                c.pointer.span = S;
            }
        }
    }
}

fn strip_rule(r: &mut Rule) {
    r.span = S;
    r.kind.span = S;
    r.name.span = S;
    for c in &mut r.clauses {
        match c {
            Clause::Server(p) | Clause::Tool(p) => {
                p.span = S;
                for s in &mut p.patterns {
                    s.span = S;
                }
            }
            Clause::When(e) => strip_expr(e),
            Clause::Reason(s) => s.span = S,
            Clause::Mode(m) => m.span = S,
            Clause::Keep(k) => k.span = S,
            Clause::Sum(p) => p.span = S,
            Clause::Approver(a) => {
                a.span = S;
                a.name.span = S;
            }
            Clause::Grant(g) => {
                g.span = S;
                g.scope.span = S;
                for p in &mut g.within {
                    p.span = S;
                }
            }
            Clause::Limit(l) => {
                l.span = S;
                l.max.span = S;
                for scope in &mut l.scopes {
                    scope.span = S;
                }
                if let Some(w) = &mut l.window {
                    w.span = S;
                }
            }
        }
    }
}

fn strip_expr(e: &mut Expr) {
    match e {
        Expr::Or(v, s) | Expr::And(v, s) => {
            *s = S;
            v.iter_mut().for_each(strip_expr);
        }
        Expr::Not(inner, s) => {
            *s = S;
            strip_expr(inner);
        }
        Expr::Atom(a, s) => {
            *s = S;
            strip_atom(a);
        }
    }
}

fn strip_atom(a: &mut Atom) {
    match a {
        Atom::Bool(_) | Atom::ViaAgent | Atom::ToolFlag(_) | Atom::Verified(_) => {}
        Atom::CreatedByAgent(p, kind) => {
            p.span = S;
            if let Some(k) = kind {
                k.span = S;
            }
        }
        Atom::ViaServer(s) | Atom::InGroup(s) | Atom::SessionLabel(s) => s.span = S,
        Atom::Exists(p) => p.span = S,
        Atom::Compare(subj, op, lit) => {
            strip_subject(subj);
            op.span = S;
            lit.span = S;
        }
        Atom::In(subj, lits) => {
            strip_subject(subj);
            for l in lits {
                l.span = S;
            }
        }
        Atom::Matches(subj, g) => {
            strip_subject(subj);
            g.span = S;
        }
        Atom::Under(p, prefix) => {
            p.span = S;
            prefix.span = S;
        }
        Atom::During(d) => {
            d.span = S;
            d.zone.span = S;
            if let Some(days) = &mut d.days {
                days.span = S;
            }
            if let Some(hours) = &mut d.hours {
                hours.span = S;
            }
        }
        Atom::Each(q, inner) => {
            q.span = S;
            strip_atom(inner);
        }
        Atom::IgnoringCase(inner) => strip_atom(inner),
    }
}

fn strip_subject(s: &mut Subject) {
    match s {
        Subject::Arg(p) => p.span = S,
        Subject::Identity(i) => i.span = S,
        Subject::Length(p, s) | Subject::Size(p, s) => {
            p.span = S;
            *s = S;
        }
    }
}

/// Asserts two ASTs are equal ignoring spans (and, unless `with_comments`,
/// ignoring comments).
pub fn assert_same_ast(left: &PolicyFile, right: &PolicyFile, with_comments: bool, context: &str) {
    let mut l = strip_file(left);
    let mut r = strip_file(right);
    if !with_comments {
        l.comments.clear();
        r.comments.clear();
    }
    assert_eq!(l, r, "ASTs differ ({context})");
}
