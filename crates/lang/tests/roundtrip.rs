//! Property tests of the parser and the canonical formatter.
//!
//! * printing a random AST and parsing it back gives the same AST;
//! * `fmt` is idempotent;
//! * a text laid out at random (odd whitespace, comments between tokens,
//!   redundant parentheses, `\u{..}` escapes, quoted plain argument names,
//!   trailing commas) parses to the same AST as its canonical form, and
//!   formatting it changes nothing that the compiled Cedar says;
//! * the shipped policies format idempotently and keep their Cedar;
//! * comments survive formatting, each exactly once and in order.
//!
//! Every property runs from a fixed seed so that a run is reproducible.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{RngAlgorithm, RngSeed};
use std::fmt::Write as _;
use warden_lang::ast::*;
use warden_lang::fmt::format_policy_file;
use warden_lang::parse::parse_file;
use warden_lang::{FileId, Sources, Span, compile_policy_set};

// ---------------------------------------------------------------------------
// Configuration and helpers
// ---------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x5741_5244_454e),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const S: Span = Span {
    file: FileId(0),
    start: 0,
    end: 0,
};

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, S)
}

fn parse(text: &str) -> PolicyFile {
    match parse_file(FileId(0), text) {
        Ok(f) => f,
        Err(d) => panic!("does not parse: {d:?}\n--- text ---\n{text}\n---"),
    }
}

/// Canonical text of an AST that has no comments and no source text.
fn print(ast: &PolicyFile) -> String {
    format_policy_file(ast, "")
}

/// `fmt` of a text: parse it, print it with its comments.
fn fmt_text(text: &str) -> String {
    format_policy_file(&parse(text), text)
}

// ---- comparing ASTs without spans -----------------------------------------

fn strip_file(f: &PolicyFile) -> PolicyFile {
    let mut f = f.clone();
    f.file = FileId(0);
    for item in &mut f.items {
        match item {
            Item::Default(d) => d.span = S,
            Item::Records(r) => strip_records(r),
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
            Clause::Limit(l) => {
                l.span = S;
                l.max.span = S;
                l.scope.span = S;
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
        Atom::ViaServer(s) | Atom::InGroup(s) => s.span = S,
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
    }
}

fn strip_subject(s: &mut Subject) {
    match s {
        Subject::Arg(p) => p.span = S,
        Subject::Identity(i) => i.span = S,
    }
}

/// Asserts two ASTs are equal ignoring spans (and, unless `with_comments`,
/// ignoring comments).
fn assert_same_ast(left: &PolicyFile, right: &PolicyFile, with_comments: bool, context: &str) {
    let mut l = strip_file(left);
    let mut r = strip_file(right);
    if !with_comments {
        l.comments.clear();
        r.comments.clear();
    }
    assert_eq!(l, r, "ASTs differ ({context})");
}

/// Cedar text without the `@source("file:line:col")` annotations, which
/// legitimately change when the layout does.
fn cedar_without_sources(cedar: &str) -> String {
    cedar
        .lines()
        .filter(|l| !l.trim_start().starts_with("@source("))
        .collect::<Vec<_>>()
        .join("\n")
}

fn compile(name: &str, text: &str) -> Result<warden_lang::CompileOutput, warden_lang::Diagnostics> {
    let mut sources = Sources::new();
    sources.add(name, text);
    compile_policy_set(&sources)
}

/// Both texts compile to the same Cedar (ignoring `@source`), the same
/// schema and the same argument fields.
fn assert_same_cedar(before: &warden_lang::CompileOutput, after: &warden_lang::CompileOutput) {
    assert_eq!(
        cedar_without_sources(&before.policy_set.cedar_text()),
        cedar_without_sources(&after.policy_set.cedar_text()),
        "formatting changed the compiled Cedar"
    );
    assert_eq!(
        before.policy_set.schema_text(),
        after.policy_set.schema_text(),
        "formatting changed the schema"
    );
    assert_eq!(
        before.policy_set.arg_fields(),
        after.policy_set.arg_fields()
    );
    let codes = |o: &warden_lang::CompileOutput| {
        o.warnings.iter().map(|d| d.code().id()).collect::<Vec<_>>()
    };
    assert_eq!(
        codes(before),
        codes(after),
        "formatting changed the warnings"
    );
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Characters biased towards the ones that need care in a string literal.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        3 => select(vec![
            '"', '\\', '\n', '\r', '\t', '{', '}', '\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}',
            '\u{9f}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{feff}', '\u{200b}', '#', '*', ' ',
            '/', '~', '.', '[', ']', ',', '(', ')', ';', '@', '\'', 'é', '日', '🦀', '\u{e000}',
            '\u{10ffff}',
        ]),
        2 => any::<char>(),
    ]
}

fn any_string() -> impl Strategy<Value = String> {
    vec(any_char(), 0..10).prop_map(|v| v.into_iter().collect())
}

fn nonempty_string() -> impl Strategy<Value = String> {
    vec(any_char(), 1..10).prop_map(|v| v.into_iter().collect())
}

fn rule_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,12}"
}

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_-]{0,8}",
        // Keywords are plain argument names too.
        select(vec![
            "args", "and", "or", "not", "exists", "in", "true", "_", "a-"
        ])
        .prop_map(str::to_string),
        nonempty_string(),
    ]
}

fn arg_path() -> impl Strategy<Value = ArgPath> {
    vec(path_segment(), 1..4).prop_map(|segments| ArgPath { segments, span: S })
}

fn identity() -> impl Strategy<Value = Subject> {
    select(vec![
        IdentityField::User,
        IdentityField::Agent,
        IdentityField::Model,
    ])
    .prop_map(|f| Subject::Identity(sp(f)))
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![arg_path().prop_map(Subject::Arg), identity()]
}

const MAX_INT: i64 = 922_337_203_685_477;

fn int_value(valid: bool) -> BoxedStrategy<i64> {
    if valid {
        prop_oneof![
            -MAX_INT..=MAX_INT,
            -20i64..20,
            Just(MAX_INT),
            Just(-MAX_INT)
        ]
        .boxed()
    } else {
        prop_oneof![
            -MAX_INT..=MAX_INT,
            -20i64..20,
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX)
        ]
        .boxed()
    }
}

fn decimal_text(valid: bool) -> BoxedStrategy<String> {
    if valid {
        "-?[0-9]{1,6}\\.[0-9]{1,4}".boxed()
    } else {
        "-?[0-9]{1,20}\\.[0-9]{1,8}".boxed()
    }
}

fn number_literal(valid: bool) -> BoxedStrategy<Literal> {
    prop_oneof![
        int_value(valid).prop_map(Value::Int),
        decimal_text(valid).prop_map(Value::Decimal),
    ]
    .prop_map(|value| Literal { value, span: S })
    .boxed()
}

fn string_literal() -> impl Strategy<Value = Literal> {
    any_string().prop_map(|s| Literal {
        value: Value::String(s),
        span: S,
    })
}

fn literal(valid: bool) -> BoxedStrategy<Literal> {
    prop_oneof![
        string_literal(),
        number_literal(valid),
        any::<bool>().prop_map(|b| Literal {
            value: Value::Bool(b),
            span: S
        }),
    ]
    .boxed()
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ])
}

fn equality_op() -> impl Strategy<Value = CmpOp> {
    select(vec![CmpOp::Eq, CmpOp::Ne])
}

fn ordering_op() -> impl Strategy<Value = CmpOp> {
    select(vec![CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge])
}

fn tool_flag() -> impl Strategy<Value = ToolFlag> {
    select(vec![
        ToolFlag::ReadOnly,
        ToolFlag::Destructive,
        ToolFlag::Idempotent,
        ToolFlag::OpenWorld,
    ])
}

/// Atoms; with `valid`, only the ones the checker accepts.
fn atom(valid: bool) -> BoxedStrategy<Atom> {
    let compare =
        if valid {
            prop_oneof![
                (identity(), equality_op(), string_literal()).prop_map(|(s, op, l)| Atom::Compare(
                    s,
                    sp(op),
                    l
                )),
                (arg_path(), equality_op(), literal(true)).prop_map(|(p, op, l)| Atom::Compare(
                    Subject::Arg(p),
                    sp(op),
                    l
                )),
                (arg_path(), ordering_op(), number_literal(true))
                    .prop_map(|(p, op, l)| Atom::Compare(Subject::Arg(p), sp(op), l)),
            ]
            .boxed()
        } else {
            (subject(), cmp_op(), literal(false))
                .prop_map(|(s, op, l)| Atom::Compare(s, sp(op), l))
                .boxed()
        };
    let in_list = if valid {
        prop_oneof![
            (identity(), vec(string_literal(), 1..4)).prop_map(|(s, l)| Atom::In(s, l)),
            // One type per list: a mixed list is a type error.
            (arg_path(), literal(true))
                .prop_flat_map(|(p, first)| {
                    let same = first.value.type_name();
                    let rest = vec(literal(true), 0..3).prop_map(move |v| {
                        v.into_iter()
                            .filter(|l| l.value.type_name() == same)
                            .collect::<Vec<_>>()
                    });
                    (Just(p), Just(first), rest)
                })
                .prop_map(|(p, first, rest)| {
                    let mut lits = vec![first];
                    lits.extend(rest);
                    Atom::In(Subject::Arg(p), lits)
                }),
        ]
        .boxed()
    } else {
        (subject(), vec(literal(false), 1..4))
            .prop_map(|(s, l)| Atom::In(s, l))
            .boxed()
    };
    prop_oneof![
        1 => any::<bool>().prop_map(Atom::Bool),
        1 => Just(Atom::ViaAgent),
        1 => any_string().prop_map(|s| Atom::ViaServer(sp(s))),
        1 => tool_flag().prop_map(Atom::ToolFlag),
        1 => any_string().prop_map(|s| Atom::InGroup(sp(s))),
        1 => arg_path().prop_map(Atom::Exists),
        // `sample` is the kind the valid sets declare for every server.
        1 => (arg_path(), proptest::option::of(Just("sample".to_string())))
            .prop_map(|(p, kind)| Atom::CreatedByAgent(p, kind.map(sp))),
        1 => select(VerifiedField::ALL.to_vec()).prop_map(Atom::Verified),
        2 => compare,
        1 => in_list,
        1 => (subject(), any_string()).prop_map(|(s, g)| Atom::Matches(s, sp(g))),
        1 => (arg_path(), select(vec!["/", "/restricted", "/data/raw"]))
            .prop_map(|(p, prefix)| Atom::Under(p, sp(prefix.to_string()))),
    ]
    .boxed()
}

/// An n-ary node in the parser's canonical form: children of the same kind
/// are spliced in (which is what the parser does with parentheses).
fn nary(children: Vec<Expr>, and: bool) -> Expr {
    let mut flat = Vec::new();
    for c in children {
        match c {
            Expr::And(v, _) if and => flat.extend(v),
            Expr::Or(v, _) if !and => flat.extend(v),
            other => flat.push(other),
        }
    }
    if and {
        Expr::And(flat, S)
    } else {
        Expr::Or(flat, S)
    }
}

fn expr(valid: bool) -> BoxedStrategy<Expr> {
    atom(valid)
        .prop_map(|a| Expr::Atom(a, S))
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e), S)),
                vec(inner.clone(), 2..4).prop_map(|v| nary(v, true)),
                vec(inner, 2..4).prop_map(|v| nary(v, false)),
            ]
        })
        .boxed()
}

fn pattern_list(pattern: BoxedStrategy<String>) -> impl Strategy<Value = PatternList> {
    (vec(pattern, 1..4), any::<bool>()).prop_map(|(p, b)| PatternList {
        bracketed: b || p.len() != 1,
        patterns: p.into_iter().map(sp).collect(),
        span: S,
    })
}

fn duration_unit() -> impl Strategy<Value = DurationUnit> {
    select(vec![
        DurationUnit::Seconds,
        DurationUnit::Minutes,
        DurationUnit::Hours,
        DurationUnit::Days,
    ])
}

fn scope() -> impl Strategy<Value = Scope> {
    select(vec![Scope::Session, Scope::User, Scope::Agent])
}

fn mode() -> impl Strategy<Value = Mode> {
    select(vec![Mode::Enforce, Mode::Shadow])
}

fn rule_kind() -> impl Strategy<Value = RuleKind> {
    select(RuleKind::ALL.to_vec())
}

/// Any clause the grammar accepts (the checker may not).
fn any_clause() -> impl Strategy<Value = Clause> {
    let limit = (
        prop_oneof![any::<u64>(), 0u64..100],
        proptest::option::of((prop_oneof![any::<u64>(), 0u64..100], duration_unit())),
        scope(),
    )
        .prop_map(|(max, window, scope)| {
            Clause::Limit(Limit {
                max: sp(max),
                window: window.map(|(amount, unit)| sp(Duration { amount, unit })),
                scope: sp(scope),
                span: S,
            })
        });
    prop_oneof![
        1 => pattern_list(any_string().boxed()).prop_map(Clause::Server),
        1 => pattern_list(any_string().boxed()).prop_map(Clause::Tool),
        2 => expr(false).prop_map(Clause::When),
        1 => any_string().prop_map(|s| Clause::Reason(sp(s))),
        1 => mode().prop_map(|m| Clause::Mode(sp(m))),
        1 => limit,
    ]
}

fn records_clause() -> impl Strategy<Value = RecordsClause> {
    prop_oneof![
        1 => pattern_list(any_string().boxed()).prop_map(RecordsClause::Server),
        2 => (any_string(), any_string()).prop_map(|(tool, pointer)| {
            RecordsClause::CreatedBy(CreatedBy {
                tool: sp(tool),
                pointer: sp(pointer),
                span: S,
            })
        }),
    ]
}

fn any_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => (rule_name(), vec(records_clause(), 0..4)).prop_map(|(name, clauses)| {
            Item::Records(RecordsDecl {
                name: sp(name),
                clauses,
                span: S,
            })
        }),
        1 => select(vec![Effect::Allow, Effect::Deny])
            .prop_map(|effect| Item::Default(DefaultDecl { effect, span: S })),
        4 => (rule_kind(), rule_name(), vec(any_clause(), 0..6)).prop_map(|(kind, name, clauses)| {
            Item::Rule(Rule {
                kind: sp(kind),
                name: sp(name),
                clauses,
                span: S,
            })
        }),
    ]
}

/// Any file the grammar accepts.
fn any_file() -> impl Strategy<Value = PolicyFile> {
    vec(any_item(), 0..6).prop_map(|items| PolicyFile {
        file: FileId(0),
        items,
        comments: vec![],
    })
}

// ---- checker-clean files ---------------------------------------------------

/// A reason template: text (braces doubled) and valid placeholders;
/// `{limit}` only for caps and rates, `{window}` only for rates.
fn reason_template(kind: RuleKind) -> impl Strategy<Value = String> {
    let limit = matches!(kind, RuleKind::CapConsecutive | RuleKind::RateLimit);
    let window = kind == RuleKind::RateLimit;
    let part = prop_oneof![
        2 => any_string().prop_map(|s| s.replace('{', "{{").replace('}', "}}")),
        1 => select(vec![
            "{user}",
            "{agent}",
            "{model}",
            "{tool}",
            "{server}",
            "{session}",
            "{rule}",
            "{limit}",
            "{window}",
            "{args.sample_id}",
            "{ args.a.b }",
            "{args.odd key\"}",
        ])
        .prop_map(move |p| match p {
            "{limit}" if !limit => "{{limit}}",
            "{window}" if !window => "{{window}}",
            p => p,
        })
        .prop_map(str::to_string),
    ];
    vec(part, 0..4).prop_map(|v| v.concat())
}

/// A rule the checker accepts, its clauses in random order.
fn valid_rule() -> impl Strategy<Value = Rule> {
    rule_kind()
        .prop_flat_map(|kind| {
            (
                Just(kind),
                rule_name(),
                proptest::option::of(pattern_list(nonempty_string().boxed())),
                proptest::option::of(pattern_list("[A-Za-z0-9_.*-]{1,12}".boxed())),
                proptest::option::of(expr(true)),
                proptest::option::of(reason_template(kind)),
                proptest::option::of(mode()),
                (
                    1u64..=u64::from(u32::MAX),
                    any::<u64>(),
                    duration_unit(),
                    scope(),
                ),
            )
        })
        .prop_map(|(kind, name, server, tool, when, reason, mode, limit)| {
            let mut clauses = Vec::new();
            clauses.extend(server.map(Clause::Server));
            clauses.extend(tool.map(Clause::Tool));
            clauses.extend(when.map(Clause::When));
            clauses.extend(reason.map(|r| Clause::Reason(sp(r))));
            clauses.extend(mode.map(|m| Clause::Mode(sp(m))));
            let (max, amount, unit, scope) = limit;
            let window = (kind == RuleKind::RateLimit).then(|| {
                let most = warden_lang::check::MAX_WINDOW_SECS / unit.secs();
                sp(Duration {
                    amount: 1 + amount % most,
                    unit,
                })
            });
            if matches!(kind, RuleKind::CapConsecutive | RuleKind::RateLimit) {
                clauses.push(Clause::Limit(Limit {
                    max: sp(max),
                    window,
                    scope: sp(scope),
                    span: S,
                }));
            }
            (kind, name, clauses)
        })
        .prop_flat_map(|(kind, name, clauses)| {
            (Just(kind), Just(name), Just(clauses).prop_shuffle())
        })
        .prop_map(|(kind, name, clauses)| Rule {
            kind: sp(kind),
            name: sp(name),
            clauses,
            span: S,
        })
}

/// A file that compiles on its own: one default (perhaps restated), rules
/// with unique names.
fn valid_file() -> impl Strategy<Value = PolicyFile> {
    (
        select(vec![Effect::Allow, Effect::Deny]),
        vec(valid_rule(), 0..5),
        proptest::option::of(0usize..6),
    )
        .prop_map(|(effect, rules, restate_at)| {
            let default = || Item::Default(DefaultDecl { effect, span: S });
            // Covers every server, so that `created by agent` is valid.
            let records = Item::Records(RecordsDecl {
                name: sp("sample".to_string()),
                clauses: vec![RecordsClause::CreatedBy(CreatedBy {
                    tool: sp("create_*".to_string()),
                    pointer: sp("/sample/id".to_string()),
                    span: S,
                })],
                span: S,
            });
            let mut items = vec![default(), records];
            for (i, mut r) in rules.into_iter().enumerate() {
                r.name.node = format!("{}-{i}", r.name.node);
                items.push(Item::Rule(r));
            }
            if let Some(at) = restate_at {
                items.insert(at.min(items.len()), default());
            }
            PolicyFile {
                file: FileId(0),
                items,
                comments: vec![],
            }
        })
}

// ---------------------------------------------------------------------------
// A printer with random (valid) layout
// ---------------------------------------------------------------------------

/// Prints an AST as a person might have written it: any whitespace and
/// comments where the grammar allows them, redundant parentheses, every
/// optional escape and trailing comma. Deterministic for a given seed.
struct Messy {
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
    fn print(ast: &PolicyFile, seed: u64) -> String {
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
                self.zeros();
                let _ = write!(self.out, "{}", l.max.node);
                if let Some(w) = &l.window {
                    self.ws();
                    self.out.push_str("per");
                    self.ws();
                    self.zeros();
                    let _ = write!(self.out, "{}", w.node);
                }
                self.ws();
                self.out.push_str("per");
                self.ws();
                self.out.push_str(l.scope.node.keyword());
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
        }
    }

    fn subject(&mut self, s: &Subject) {
        match s {
            Subject::Arg(p) => self.path(p),
            Subject::Identity(i) => self.out.push_str(i.node.keyword()),
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

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// (a) parse(print(ast)) == ast.
    #[test]
    fn print_then_parse_gives_the_same_ast(ast in any_file()) {
        let text = print(&ast);
        let back = parse(&text);
        assert_same_ast(&back, &ast, true, &text);
    }

    /// (b) format(parse(format(ast))) == format(ast).
    #[test]
    fn fmt_is_idempotent(ast in any_file()) {
        let once = print(&ast);
        let twice = fmt_text(&once);
        prop_assert_eq!(&twice, &once);
    }

    /// A text with random layout and comments parses to the same AST as
    /// the canonical text; formatting it keeps every comment in order, is
    /// idempotent, and (when the text compiles) keeps the compiled Cedar.
    #[test]
    fn random_layout_parses_and_formats_stably(ast in any_file(), seed in any::<u64>()) {
        let messy = Messy::print(&ast, seed);
        let parsed = parse(&messy);
        assert_same_ast(&parsed, &ast, false, &messy);

        let formatted = format_policy_file(&parsed, &messy);
        let reparsed = parse(&formatted);
        assert_same_ast(&reparsed, &ast, false, &formatted);
        let texts = |f: &PolicyFile| f.comments.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        prop_assert_eq!(texts(&reparsed), texts(&parsed), "comments changed:\n{}\n---\n{}", messy, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone(), "not idempotent on\n{}", messy);

        if let Ok(before) = compile("a.policy", &messy) {
            let after = compile("a.policy", &formatted).expect("formatted text compiles");
            assert_same_cedar(&before, &after);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// (c) For files that compile, formatting never changes the Cedar.
    /// The generator makes only checker-clean files, so every case also
    /// checks that such a file compiles at all (emits Cedar that parses
    /// and validates in strict mode).
    #[test]
    fn formatting_never_changes_the_compiled_cedar(ast in valid_file(), seed in any::<u64>()) {
        let canonical = print(&ast);
        let messy = Messy::print(&ast, seed);
        let before = match compile("a.policy", &messy) {
            Ok(out) => out,
            Err(d) => panic!("a checker-clean file does not compile: {d:?}\n--- text ---\n{canonical}"),
        };
        let formatted = fmt_text(&messy);
        let after = compile("a.policy", &formatted).expect("formatted text compiles");
        assert_same_cedar(&before, &after);
        let canon = compile("a.policy", &canonical).expect("canonical text compiles");
        assert_same_cedar(&before, &canon);
    }
}

// ---------------------------------------------------------------------------
// The shipped policies
// ---------------------------------------------------------------------------

fn shipped(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_shipped(name: &str) {
    let text = shipped(name);
    let formatted = fmt_text(&text);
    assert_eq!(
        fmt_text(&formatted),
        formatted,
        "{name}: fmt is not idempotent"
    );
    let (orig_ast, fmt_ast) = (parse(&text), parse(&formatted));
    assert_same_ast(&fmt_ast, &orig_ast, true, name);
    let before = compile(name, &text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let after = compile(name, &formatted).unwrap_or_else(|d| panic!("{name} formatted: {d:?}"));
    assert_same_cedar(&before, &after);
}

#[test]
fn genomics_policy_formats_stably_and_keeps_its_cedar() {
    check_shipped("genomics.policy");
}

#[test]
fn baseline_policy_formats_stably_and_keeps_its_cedar() {
    check_shipped("baseline.policy");
}

// ---------------------------------------------------------------------------
// Comments
// ---------------------------------------------------------------------------

/// A small policy, one token group per line, with a multi-line condition
/// and a multi-line list so that comments also land inside clauses.
const COMMENT_BASE: &[&str] = &[
    "default deny",
    "",
    "allow readers {",
    "  tool [",
    "    \"list_*\",",
    "    \"get_*\",",
    "  ]",
    "  when user in group \"staff\"",
    "    or via agent",
    "}",
    "deny no-delete {",
    "  tool \"delete_*\"",
    "  reason \"no {tool} # not a comment\"",
    "}",
    "cap-consecutive streak {",
    "  when via agent",
    "  max 3 per session",
    "}",
];

/// Inserts `# c<N>` comments: `at[i]` comments go before line `i` (the last
/// index is after the last line); `eol[i]`, if set, ends line `i` with one.
fn with_comments(at: &[usize], eol: &[bool]) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut n = 0;
    let mut comment = |text: &mut String, expected: &mut Vec<String>, indent: &str, eol: bool| {
        let c = format!("# c{n}");
        n += 1;
        if eol {
            let _ = write!(text, " {c}");
        } else {
            let _ = writeln!(text, "{indent}{c}");
        }
        expected.push(c);
    };
    for (i, line) in COMMENT_BASE.iter().enumerate() {
        for _ in 0..at[i] {
            comment(&mut text, &mut expected, "  ", false);
        }
        text.push_str(line);
        if eol[i] && !line.is_empty() && !line.contains('#') {
            comment(&mut text, &mut expected, "", true);
        }
        text.push('\n');
    }
    for _ in 0..at[COMMENT_BASE.len()] {
        comment(&mut text, &mut expected, "", false);
    }
    (text, expected)
}

fn comment_lines(text: &str) -> Vec<String> {
    // Each `# c<N>` is a whole comment: at the end of a line or on its own.
    text.lines()
        .filter_map(|l| l.find("# c").map(|i| l[i..].to_string()))
        .collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// Own-line comments at random line boundaries: each is kept exactly
    /// once, in order, and formatting is idempotent.
    #[test]
    fn own_line_comments_are_kept_once(at in vec(0usize..3, COMMENT_BASE.len() + 1)) {
        let (text, expected) = with_comments(&at, &vec![false; COMMENT_BASE.len()]);
        let formatted = fmt_text(&text);
        prop_assert_eq!(comment_lines(&formatted), expected, "\n{}\n---\n{}", text, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone());
        assert_same_ast(&parse(&formatted), &parse(COMMENT_BASE.join("\n").as_str()), false, &text);
    }

    /// The same with end-of-line comments mixed in.
    #[test]
    fn end_of_line_comments_are_kept_once(
        at in vec(0usize..2, COMMENT_BASE.len() + 1),
        eol in vec(any::<bool>(), COMMENT_BASE.len()),
    ) {
        let (text, expected) = with_comments(&at, &eol);
        let formatted = fmt_text(&text);
        prop_assert_eq!(comment_lines(&formatted), expected, "\n{}\n---\n{}", text, formatted);
        prop_assert_eq!(fmt_text(&formatted), formatted.clone());
        assert_same_ast(&parse(&formatted), &parse(COMMENT_BASE.join("\n").as_str()), false, &text);
    }
}

/// Regression (found by the random-layout property, fixed in 6d1d824): the
/// span of an `or` condition ran on past its last operand over the
/// whitespace and comments after it, up to the next token, because pest
/// keeps the implicit skip after the first operand of
/// `and_expr = { unary ~ (kw_and ~ unary)* }` when the repetition matches
/// nothing. `fmt` then took a comment after the next token (`} # c`,
/// `mode shadow # c`) for one trailing the `when` clause, and on the next
/// run moved it onto a line of its own: not idempotent.
#[test]
fn or_condition_span_ends_at_its_last_operand() {
    let text = "deny r {\n  when true or false\n} # c\n";
    let ast = parse(text);
    let Item::Rule(rule) = &ast.items[0] else {
        panic!("a rule")
    };
    let span = rule.clauses[0].span();
    assert_eq!(&text[span.start..span.end], "true or false");
    // `fmt` keeps the comment after the brace, and is idempotent.
    let once = fmt_text(text);
    assert_eq!(once, text);
    assert_eq!(fmt_text(&once), once);
    let text = "deny r {\n  when true or false\n  mode shadow # c\n}\n";
    assert_eq!(fmt_text(text), text);
}
