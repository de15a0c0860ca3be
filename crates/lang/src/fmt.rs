//! The canonical printer behind `warden fmt`, also used to print ASTs in
//! tests. Layout: one item per paragraph, two-space indented clauses in the
//! order written, conditions on one line with the fewest parentheses that
//! keep their meaning. Comments are kept: a comment on its own line is
//! printed before the item or clause that follows it, a comment at the end
//! of a line stays at the end of that line.

use crate::ast::*;
use std::fmt::Write as _;

/// Formats one parsed file. `text` is the source the AST was parsed from
/// (needed to tell end-of-line comments from own-line ones).
pub fn format_policy_file(file: &PolicyFile, text: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        comments: &file.comments,
        next: 0,
        text,
    };
    for (i, item) in file.items.iter().enumerate() {
        if i > 0 {
            p.out.push('\n');
        }
        p.leading_comments(item.span().start, 0);
        match item {
            Item::Default(d) => {
                let _ = write!(p.out, "default {}", d.effect.keyword());
                p.trailing_comment(d.span.end);
                p.out.push('\n');
            }
            Item::Records(r) => p.records(r),
            Item::Annotation(a) => {
                p.out.push_str("tool ");
                p.patterns(&a.tools);
                if let Some(s) = &a.servers {
                    p.out.push_str(" on server ");
                    p.patterns(s);
                }
                p.out.push_str(" is ");
                let claims: Vec<String> = a.claims.iter().map(Claim::text).collect();
                p.out.push_str(&claims.join(", "));
                p.trailing_comment(a.span.end);
                p.out.push('\n');
            }
            Item::Rule(rule) => p.rule(rule),
        }
    }
    // Comments after the last item.
    if p.next < p.comments.len() && !file.items.is_empty() {
        p.out.push('\n');
    }
    p.leading_comments(usize::MAX, 0);
    p.out
}

struct Printer<'a> {
    out: String,
    comments: &'a [Comment],
    next: usize,
    text: &'a str,
}

impl Printer<'_> {
    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    /// Prints the comments that start before `pos`, each on its own line.
    fn leading_comments(&mut self, pos: usize, level: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= pos {
                break;
            }
            self.indent(level);
            self.out.push_str(&c.text);
            self.out.push('\n');
            self.next += 1;
            // Keep one blank line where the author separated a comment from
            // what follows (a file header, say).
            let upto = self
                .comments
                .get(self.next)
                .map_or(pos, |n| n.span.start.min(pos))
                .min(self.text.len());
            if c.span.end <= upto && self.text[c.span.end..upto].matches('\n').count() >= 2 {
                self.out.push('\n');
            }
        }
    }

    /// Prints a comment that follows `end` on the same source line.
    fn trailing_comment(&mut self, end: usize) {
        if let Some(c) = self.comments.get(self.next)
            && c.span.start >= end
            && !self.text[end..c.span.start].contains('\n')
        {
            self.out.push(' ');
            self.out.push_str(&c.text);
            self.next += 1;
        }
    }

    fn rule(&mut self, rule: &Rule) {
        let _ = write!(
            self.out,
            "{} {} {{",
            rule.kind.node.keyword(),
            rule.name.node
        );
        // A comment right after the opening brace stays there.
        let brace_end = rule.name.span.end
            + self.text[rule.name.span.end..rule.span.end]
                .find('{')
                .map_or(0, |i| i + 1);
        self.trailing_comment(brace_end);
        self.out.push('\n');
        for clause in &rule.clauses {
            self.leading_comments(clause.span().start, 1);
            self.indent(1);
            self.clause(clause);
            self.trailing_comment(clause.span().end);
            self.out.push('\n');
        }
        self.leading_comments(rule.span.end.saturating_sub(1), 1);
        self.out.push('}');
        self.trailing_comment(rule.span.end);
        self.out.push('\n');
    }

    fn records(&mut self, decl: &RecordsDecl) {
        let _ = write!(self.out, "records {} {{", decl.name.node);
        let brace_end = decl.name.span.end
            + self.text[decl.name.span.end..decl.span.end]
                .find('{')
                .map_or(0, |i| i + 1);
        self.trailing_comment(brace_end);
        self.out.push('\n');
        for clause in &decl.clauses {
            self.leading_comments(clause.span().start, 1);
            self.indent(1);
            match clause {
                RecordsClause::Server(list) => {
                    self.out.push_str("server ");
                    self.patterns(list);
                }
                RecordsClause::CreatedBy(c) => {
                    self.out.push_str("created by tool ");
                    write_string(&mut self.out, &c.tool.node);
                    self.out.push_str(" at ");
                    write_string(&mut self.out, &c.pointer.node);
                }
            }
            self.trailing_comment(clause.span().end);
            self.out.push('\n');
        }
        self.leading_comments(decl.span.end.saturating_sub(1), 1);
        self.out.push('}');
        self.trailing_comment(decl.span.end);
        self.out.push('\n');
    }

    fn clause(&mut self, clause: &Clause) {
        match clause {
            Clause::Server(list) => {
                self.out.push_str("server ");
                self.patterns(list);
            }
            Clause::Tool(list) => {
                self.out.push_str("tool ");
                self.patterns(list);
            }
            Clause::When(e) => {
                self.out.push_str("when ");
                write_expr(&mut self.out, e);
            }
            Clause::Reason(r) => {
                self.out.push_str("reason ");
                write_string(&mut self.out, &r.node);
            }
            Clause::Mode(m) => {
                self.out.push_str(match m.node {
                    Mode::Shadow => "mode shadow",
                    Mode::Enforce => "mode enforce",
                });
            }
            Clause::Limit(l) => {
                let _ = write!(self.out, "max {}", l.max.node);
                if let Some(w) = &l.window {
                    let _ = write!(self.out, " per {}", w.node);
                }
                for scope in &l.scopes {
                    let _ = write!(self.out, " per {}", scope.node.keyword());
                }
            }
            Clause::Sum(p) => {
                self.out.push_str("sum ");
                write_path(&mut self.out, p);
            }
            Clause::Approver(a) => {
                let _ = write!(self.out, "by {} ", a.kind.keyword());
                write_string(&mut self.out, &a.name.node);
            }
            Clause::Grant(g) => {
                let _ = write!(self.out, "grant {}", g.scope.node.text());
                for (i, p) in g.within.iter().enumerate() {
                    self.out.push_str(if i == 0 { " within " } else { ", " });
                    write_path(&mut self.out, p);
                }
            }
            Clause::Keep(k) => self.out.push_str(&k.node.text()),
        }
    }

    fn patterns(&mut self, list: &PatternList) {
        if list.bracketed || list.patterns.len() != 1 {
            self.out.push('[');
            for (i, p) in list.patterns.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                write_string(&mut self.out, &p.node);
            }
            self.out.push(']');
        } else {
            write_string(&mut self.out, &list.patterns[0].node);
        }
    }
}

/// Prints a condition with the fewest parentheses that keep its tree.
pub fn write_expr(out: &mut String, e: &Expr) {
    write_prec(out, e, 0);
}

/// Binding strength: or = 1, and = 2, not and atoms = 3.
fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Not(..) | Expr::Atom(..) => 3,
    }
}

fn write_prec(out: &mut String, e: &Expr, min: u8) {
    // Same-kind nesting never occurs (the parser flattens it), but a tree
    // built by hand may have it: parenthesise then, so the tree survives.
    let needs_parens = prec(e) < min;
    if needs_parens {
        out.push('(');
    }
    match e {
        Expr::Or(v, _) | Expr::And(v, _) => {
            let (word, child_min) = if matches!(e, Expr::Or(..)) {
                (" or ", 2)
            } else {
                (" and ", 3)
            };
            for (i, child) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(word);
                }
                write_prec(out, child, child_min);
            }
        }
        Expr::Not(inner, _) => {
            out.push_str("not ");
            write_prec(out, inner, 3);
        }
        Expr::Atom(a, _) => write_atom(out, a),
    }
    if needs_parens {
        out.push(')');
    }
}

fn write_atom(out: &mut String, a: &Atom) {
    match a {
        Atom::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Atom::ViaAgent => out.push_str("via agent"),
        Atom::SessionLabel(name) => {
            out.push_str("session has label ");
            out.push_str(&name.node);
        }
        Atom::ViaServer(s) => {
            out.push_str("via server ");
            write_string(out, &s.node);
        }
        Atom::ToolFlag(f) => {
            out.push_str("tool.");
            out.push_str(f.keyword());
        }
        Atom::InGroup(g) => {
            out.push_str("user in group ");
            write_string(out, &g.node);
        }
        Atom::Exists(p) => {
            write_path(out, p);
            out.push_str(" exists");
        }
        Atom::CreatedByAgent(p, kind) => {
            write_path(out, p);
            out.push_str(" created by agent");
            if let Some(k) = kind {
                out.push_str(" as ");
                out.push_str(&k.node);
            }
        }
        Atom::Verified(f) => {
            out.push_str("verified ");
            out.push_str(f.keyword());
        }
        Atom::Compare(s, op, lit) => {
            write_subject(out, s);
            let _ = write!(out, " {} ", op.node.symbol());
            write_literal(out, &lit.value);
        }
        Atom::In(s, lits) => {
            write_subject(out, s);
            out.push_str(" in [");
            for (i, l) in lits.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, &l.value);
            }
            out.push(']');
        }
        Atom::Matches(s, g) => {
            write_subject(out, s);
            out.push_str(" matches ");
            write_string(out, &g.node);
        }
        Atom::Under(p, prefix) => {
            write_path(out, p);
            out.push_str(" under ");
            write_string(out, &prefix.node);
        }
        Atom::During(d) => write_during(out, d),
        Atom::Each(q, inner) => {
            out.push_str(q.node.keyword());
            out.push(' ');
            write_atom(out, inner);
        }
        Atom::IgnoringCase(inner) => {
            write_atom(out, inner);
            out.push_str(" ignoring case");
        }
    }
}

fn write_during(out: &mut String, d: &During) {
    out.push_str("during ");
    if let Some(days) = &d.days {
        match &days.node {
            Days::Weekdays => out.push_str("weekdays"),
            Days::Weekends => out.push_str("weekends"),
            Days::List(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(r.from.keyword());
                    if r.to != r.from {
                        out.push('-');
                        out.push_str(r.to.keyword());
                    }
                }
            }
        }
        out.push(' ');
    }
    if let Some(h) = &d.hours {
        let (from, to) = h.node;
        let _ = write!(
            out,
            "{:02}:{:02}-{:02}:{:02} ",
            from / 60,
            from % 60,
            to / 60,
            to % 60
        );
    }
    write_string(out, &d.zone.node);
}

fn write_subject(out: &mut String, s: &Subject) {
    match s {
        Subject::Arg(p) => write_path(out, p),
        Subject::Identity(i) => out.push_str(i.node.keyword()),
        Subject::Length(p, _) => {
            out.push_str("length of ");
            write_path(out, p);
        }
        Subject::Size(p, _) => {
            out.push_str("size of ");
            write_path(out, p);
        }
    }
}

/// `args.a."b c"`, as the formatter writes a path.
pub fn format_arg_path(p: &ArgPath) -> String {
    let mut out = String::new();
    write_path(&mut out, p);
    out
}

fn write_path(out: &mut String, p: &ArgPath) {
    out.push_str("args");
    for seg in &p.segments {
        out.push('.');
        let plain = seg
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            out.push_str(seg);
        } else {
            write_string(out, seg);
        }
    }
}

fn write_literal(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => write_string(out, s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Decimal(d) => out.push_str(d),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Size(size) => {
            let _ = write!(out, "{} {}", size.amount, size.unit.keyword());
        }
    }
}

/// A .policy string literal holding exactly `s`.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
