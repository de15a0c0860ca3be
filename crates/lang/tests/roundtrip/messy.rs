//! A printer with random (valid) layout, for the round-trip properties.

use std::fmt::Write as _;
use warden_lang::ast::*;

// ---------------------------------------------------------------------------
// A printer with random (valid) layout
// ---------------------------------------------------------------------------

/// Prints an AST as a person might have written it: any whitespace and
/// comments where the grammar allows them, redundant parentheses, every
/// optional escape and trailing comma. Deterministic for a given seed.
pub struct Messy {
    out: String,
    state: u64,
}

const NOISE_COMMENTS: &[&str] = &[
    "# plain",
    "#",
    "#tight",
    "# with \"an odd quote",
    "# a backslash at the end \\",
    "# {braces} [brackets] (parens) and, commas",
    "## double hash ünïcödé 🦀",
    "# \"closed\" and \"open",
    "# deny x { when true }",
];

impl Messy {
    pub fn print(ast: &PolicyFile, seed: u64) -> String {
        let mut m = Messy {
            out: String::new(),
            state: seed,
        };
        m.opt_ws();
        for (i, item) in ast.items.iter().enumerate() {
            if i > 0 {
                m.ws();
            }
            match item {
                Item::Default(d) => {
                    m.out.push_str("default");
                    m.ws();
                    m.out.push_str(d.effect.keyword());
                }
                Item::Records(r) => m.records(r),
                Item::Annotation(a) => {
                    m.out.push_str("tool");
                    m.opt_ws();
                    m.patterns(&a.tools);
                    if let Some(s) = &a.servers {
                        m.ws();
                        m.out.push_str("on");
                        m.ws();
                        m.out.push_str("server");
                        m.opt_ws();
                        m.patterns(s);
                    }
                    m.ws();
                    m.out.push_str("is");
                    for (i, c) in a.claims.iter().enumerate() {
                        if i > 0 {
                            m.opt_ws();
                            m.out.push(',');
                        }
                        m.ws();
                        if !c.value {
                            m.out.push_str("not");
                            m.ws();
                        }
                        // Both spellings parse.
                        let word = c.flag.claim_word();
                        if m.one_in(3) {
                            m.out.push_str(&word.replace('-', "_"));
                        } else {
                            m.out.push_str(word);
                        }
                    }
                }
                Item::Rule(r) => m.rule(r),
            }
        }
        m.opt_ws();
        m.out
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    /// Whitespace the grammar requires (between words).
    fn ws(&mut self) {
        match self.next() % 12 {
            0..=5 => self.out.push(' '),
            6 => self.out.push_str("   "),
            7 => self.out.push('\t'),
            8 => self.out.push('\n'),
            9 => self.out.push_str("\r\n\n  "),
            _ => {
                let c = NOISE_COMMENTS[(self.next() % NOISE_COMMENTS.len() as u64) as usize];
                self.out.push(' ');
                self.out.push_str(c);
                self.out.push('\n');
            }
        }
    }

    /// Whitespace the grammar allows but does not need.
    fn opt_ws(&mut self) {
        if !self.one_in(3) {
            return;
        }
        self.ws();
    }

    fn records(&mut self, r: &RecordsDecl) {
        self.out.push_str("records");
        self.ws();
        self.out.push_str(&r.name.node);
        self.opt_ws();
        self.out.push('{');
        for c in &r.clauses {
            self.ws();
            match c {
                RecordsClause::Server(p) => {
                    self.out.push_str("server");
                    self.opt_ws();
                    self.patterns(p);
                }
                RecordsClause::CreatedBy(c) => {
                    for word in ["created", "by", "tool"] {
                        self.out.push_str(word);
                        self.ws();
                    }
                    self.string(&c.tool.node);
                    self.ws();
                    self.out.push_str("at");
                    self.opt_ws();
                    self.string(&c.pointer.node);
                }
            }
        }
        self.opt_ws();
        self.out.push('}');
    }

    fn rule(&mut self, r: &Rule) {
        self.out.push_str(r.kind.node.keyword());
        self.ws();
        self.out.push_str(&r.name.node);
        self.opt_ws();
        self.out.push('{');
        for c in &r.clauses {
            self.ws();
            self.clause(c);
        }
        self.opt_ws();
        self.out.push('}');
    }

    fn clause(&mut self, c: &Clause) {
        match c {
            Clause::Server(p) => {
                self.out.push_str("server");
                self.opt_ws();
                self.patterns(p);
            }
            Clause::Tool(p) => {
                self.out.push_str("tool");
                self.opt_ws();
                self.patterns(p);
            }
            Clause::When(e) => {
                self.out.push_str("when");
                self.ws();
                self.expr(e, 0);
            }
            Clause::Reason(s) => {
                self.out.push_str("reason");
                self.opt_ws();
                self.string(&s.node);
            }
            Clause::Mode(m) => {
                self.out.push_str("mode");
                self.ws();
                self.out.push_str(match m.node {
                    Mode::Enforce => "enforce",
                    Mode::Shadow => "shadow",
                });
            }
            Clause::Limit(l) => {
                self.out.push_str("max");
                self.ws();
                // The number is kept as written: no leading zeros here.
                self.out.push_str(&l.max.node);
                if let Some(w) = &l.window {
                    self.ws();
                    self.out.push_str("per");
                    self.ws();
                    self.zeros();
                    let _ = write!(self.out, "{}", w.node);
                }
                for scope in &l.scopes {
                    self.ws();
                    self.out.push_str("per");
                    self.ws();
                    self.out.push_str(scope.node.keyword());
                }
            }
            Clause::Sum(p) => {
                self.out.push_str("sum");
                self.ws();
                self.path(p);
            }
            Clause::Approver(a) => {
                self.out.push_str("by");
                self.ws();
                self.out.push_str(a.kind.keyword());
                self.opt_ws();
                self.string(&a.name.node);
            }
            Clause::Keep(k) => {
                self.out.push_str("for");
                self.ws();
                match k.node {
                    Keep::Session => self.out.push_str("session"),
                    Keep::For(d) => {
                        self.zeros();
                        let _ = write!(self.out, "{d}");
                    }
                }
            }
            Clause::Grant(g) => {
                self.out.push_str("grant");
                self.ws();
                match g.scope.node {
                    GrantScope::Once => self.out.push_str("once"),
                    GrantScope::Session => {
                        self.out.push_str("for");
                        self.ws();
                        self.out.push_str("session");
                    }
                    GrantScope::Calls(n) => {
                        self.out.push_str("for");
                        self.ws();
                        self.zeros();
                        let _ = write!(self.out, "{n}");
                        self.ws();
                        self.out.push_str(if n == 1 { "call" } else { "calls" });
                    }
                    GrantScope::For(d) => {
                        self.out.push_str("for");
                        self.ws();
                        self.zeros();
                        let _ = write!(self.out, "{d}");
                    }
                }
                for (i, p) in g.within.iter().enumerate() {
                    if i == 0 {
                        self.ws();
                        self.out.push_str("within");
                        self.ws();
                    } else {
                        self.opt_ws();
                        self.out.push(',');
                        self.opt_ws();
                    }
                    self.path(p);
                }
            }
        }
    }

    /// Sometimes leading zeros before a whole number.
    fn zeros(&mut self) {
        if self.one_in(5) {
            self.out.push_str("00");
        }
    }

    fn patterns(&mut self, p: &PatternList) {
        if !p.bracketed && p.patterns.len() == 1 {
            self.string(&p.patterns[0].node);
            return;
        }
        self.out.push('[');
        for (i, s) in p.patterns.iter().enumerate() {
            self.opt_ws();
            if i > 0 {
                self.out.push(',');
                self.opt_ws();
            }
            self.string(&s.node);
        }
        if self.one_in(3) {
            self.opt_ws();
            self.out.push(',');
        }
        self.opt_ws();
        self.out.push(']');
    }

    fn prec(e: &Expr) -> u8 {
        match e {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(..) | Expr::Atom(..) => 3,
        }
    }

    fn expr(&mut self, e: &Expr, min: u8) {
        let parens = Self::prec(e) < min || self.one_in(6);
        if parens {
            self.out.push('(');
            self.opt_ws();
        }
        match e {
            Expr::Or(v, _) | Expr::And(v, _) => {
                let (word, child_min) = if matches!(e, Expr::Or(..)) {
                    ("or", 2)
                } else {
                    ("and", 3)
                };
                for (i, child) in v.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push_str(word);
                        self.ws();
                    }
                    self.expr(child, child_min);
                }
            }
            Expr::Not(inner, _) => {
                self.out.push_str("not");
                self.ws();
                self.expr(inner, 3);
            }
            Expr::Atom(a, _) => self.atom(a),
        }
        if parens {
            self.opt_ws();
            self.out.push(')');
        }
    }

    fn atom(&mut self, a: &Atom) {
        match a {
            Atom::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Atom::ViaAgent => {
                self.out.push_str("via");
                self.ws();
                self.out.push_str("agent");
            }
            Atom::SessionLabel(name) => {
                self.out.push_str("session");
                self.ws();
                self.out.push_str("has");
                self.ws();
                self.out.push_str("label");
                self.ws();
                self.out.push_str(&name.node);
            }
            Atom::ViaServer(s) => {
                self.out.push_str("via");
                self.ws();
                self.out.push_str("server");
                self.opt_ws();
                self.string(&s.node);
            }
            Atom::ToolFlag(f) => {
                // `tool.flag` is not atomic: space and comments may go in.
                self.out.push_str("tool");
                self.opt_ws();
                self.out.push('.');
                self.opt_ws();
                self.out.push_str(f.keyword());
            }
            Atom::InGroup(g) => {
                self.out.push_str("user");
                self.ws();
                self.out.push_str("in");
                self.ws();
                self.out.push_str("group");
                self.opt_ws();
                self.string(&g.node);
            }
            Atom::Exists(p) => {
                self.path(p);
                self.ws();
                self.out.push_str("exists");
            }
            Atom::CreatedByAgent(p, kind) => {
                self.path(p);
                for word in ["created", "by", "agent"] {
                    self.ws();
                    self.out.push_str(word);
                }
                if let Some(k) = kind {
                    for word in ["as", k.node.as_str()] {
                        self.ws();
                        self.out.push_str(word);
                    }
                }
            }
            Atom::Verified(f) => {
                self.out.push_str("verified");
                self.ws();
                self.out.push_str(f.keyword());
            }
            Atom::Compare(s, op, lit) => {
                self.subject(s);
                self.opt_ws();
                self.out.push_str(op.node.symbol());
                self.opt_ws();
                self.literal(&lit.value);
            }
            Atom::In(s, lits) => {
                self.subject(s);
                self.ws();
                self.out.push_str("in");
                self.opt_ws();
                self.out.push('[');
                for (i, l) in lits.iter().enumerate() {
                    self.opt_ws();
                    if i > 0 {
                        self.out.push(',');
                        self.opt_ws();
                    }
                    self.literal(&l.value);
                }
                if self.one_in(3) {
                    self.out.push(',');
                }
                self.opt_ws();
                self.out.push(']');
            }
            Atom::Matches(s, g) => {
                self.subject(s);
                self.ws();
                self.out.push_str("matches");
                self.opt_ws();
                self.string(&g.node);
            }
            Atom::Under(p, prefix) => {
                self.path(p);
                self.ws();
                self.out.push_str("under");
                self.opt_ws();
                self.string(&prefix.node);
            }
            Atom::During(d) => self.during(d),
            Atom::Each(q, inner) => {
                self.out.push_str(q.node.keyword());
                self.ws();
                self.atom(inner);
            }
            Atom::IgnoringCase(inner) => {
                self.atom(inner);
                self.ws();
                self.out.push_str("ignoring");
                self.ws();
                self.out.push_str("case");
            }
        }
    }

    fn during(&mut self, d: &During) {
        self.out.push_str("during");
        if let Some(days) = &d.days {
            self.ws();
            match &days.node {
                Days::Weekdays => self.out.push_str("weekdays"),
                Days::Weekends => self.out.push_str("weekends"),
                Days::List(ranges) => {
                    for (i, r) in ranges.iter().enumerate() {
                        if i > 0 {
                            // `mon , wed`: the list takes space around commas.
                            self.opt_ws();
                            self.out.push(',');
                            self.opt_ws();
                        }
                        // `mon-fri` is one token.
                        self.out.push_str(r.from.keyword());
                        if r.to != r.from {
                            self.out.push('-');
                            self.out.push_str(r.to.keyword());
                        }
                    }
                }
            }
        }
        if let Some(h) = &d.hours {
            self.ws();
            let (from, to) = h.node;
            let _ = write!(
                self.out,
                "{:02}:{:02}-{:02}:{:02}",
                from / 60,
                from % 60,
                to / 60,
                to % 60
            );
        }
        self.opt_ws();
        self.string(&d.zone.node);
    }

    fn subject(&mut self, s: &Subject) {
        match s {
            Subject::Arg(p) => self.path(p),
            Subject::Identity(i) => self.out.push_str(i.node.keyword()),
            Subject::Length(p, _) | Subject::Size(p, _) => {
                let word = if matches!(s, Subject::Length(..)) {
                    "length"
                } else {
                    "size"
                };
                self.out.push_str(word);
                self.ws();
                self.out.push_str("of");
                self.ws();
                self.path(p);
            }
        }
    }

    fn path(&mut self, p: &ArgPath) {
        // `args.a.b` is atomic: no whitespace inside.
        self.out.push_str("args");
        for seg in &p.segments {
            self.out.push('.');
            let plain = seg
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if plain && !self.one_in(3) {
                self.out.push_str(seg);
            } else {
                self.string(seg);
            }
        }
    }

    fn literal(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.string(s),
            Value::Int(n) => {
                if *n < 0 {
                    self.out.push('-');
                }
                self.zeros();
                let _ = write!(self.out, "{}", n.unsigned_abs());
            }
            Value::Decimal(d) => self.out.push_str(d),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Size(size) => {
                self.zeros();
                let _ = write!(self.out, "{}", size.amount);
                // `100 KB` takes space (or a comment) between number and unit.
                self.ws();
                self.out.push_str(size.unit.keyword());
            }
        }
    }

    /// A string literal using every escape form at random, and raw control
    /// characters where the grammar allows them.
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let must = matches!(c, '"' | '\\' | '\n');
            if self.one_in(6) || (must && self.one_in(3)) {
                let zeros = "0".repeat((self.next() % 3) as usize);
                if self.one_in(2) {
                    let _ = write!(self.out, "\\u{{{zeros}{:x}}}", c as u32);
                } else {
                    let _ = write!(self.out, "\\u{{{zeros}{:X}}}", c as u32);
                }
                continue;
            }
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\t' if self.one_in(2) => self.out.push_str("\\t"),
                '\r' if self.one_in(2) => self.out.push_str("\\r"),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}
