//! The proptest strategies: any file the grammar accepts, and files the
//! checker accepts (which must compile).

use super::{S, sp};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use warden_lang::FileId;
use warden_lang::ast::*;

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

/// A path the dead-condition lints accept in any company: two segments
/// (so that no path of a file is a proper prefix of another, which reads
/// a field of a value another test reads as a scalar), the first drawn
/// from so many names that two tests rarely share it, no `*` in a segment
/// and no `length`-like last segment.
fn valid_arg_path() -> impl Strategy<Value = ArgPath> {
    let last = path_segment().prop_filter("no wildcard, no measure name", |s| {
        !s.contains('*') && !["length", "size", "count", "len"].contains(&s.as_str())
    });
    ("[A-Za-z_][A-Za-z0-9_-]{3,10}", last).prop_map(|(first, last)| ArgPath {
        segments: vec![first, last],
        span: S,
    })
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
    prop_oneof![
        3 => arg_path().prop_map(Subject::Arg),
        2 => identity(),
        1 => arg_path().prop_map(|p| Subject::Length(p, S)),
        1 => arg_path().prop_map(|p| Subject::Size(p, S)),
    ]
}

fn size_unit() -> impl Strategy<Value = SizeUnit> {
    select(SizeUnit::ALL.to_vec())
}

/// `100 KB`; `valid` keeps the bytes well inside a Cedar Long.
fn byte_size(valid: bool) -> BoxedStrategy<Literal> {
    let amount = if valid {
        (1u64..=1000).boxed()
    } else {
        prop_oneof![any::<u64>(), 0u64..2000].boxed()
    };
    (amount, size_unit())
        .prop_map(|(amount, unit)| Literal {
            value: Value::Size(ByteSize { amount, unit }),
            span: S,
        })
        .boxed()
}

fn weekday() -> impl Strategy<Value = Weekday> {
    select(Weekday::ALL.to_vec())
}

/// A `during` window; `valid` keeps to what the checker accepts: real
/// times that differ, known zones, each day named once.
fn during(valid: bool) -> BoxedStrategy<Atom> {
    let days = if valid {
        prop_oneof![
            Just(Days::Weekdays),
            Just(Days::Weekends),
            (weekday(), weekday()).prop_map(|(from, to)| Days::List(vec![DayRange { from, to }])),
            proptest::sample::subsequence(Weekday::ALL.to_vec(), 1..4).prop_map(|d| Days::List(
                d.into_iter().map(|w| DayRange { from: w, to: w }).collect()
            )),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(Days::Weekdays),
            Just(Days::Weekends),
            vec((weekday(), weekday()), 1..4).prop_map(|v| Days::List(
                v.into_iter()
                    .map(|(from, to)| DayRange { from, to })
                    .collect()
            )),
        ]
        .boxed()
    };
    let hours = if valid {
        (0u16..1440, 1u16..=1440)
            .prop_filter("a window of some length", |(a, b)| a != b)
            .boxed()
    } else {
        (0u16..=1440, 0u16..=1440).boxed()
    };
    let zone = if valid {
        select(vec!["UTC", "Europe/Berlin", "America/New_York"])
            .prop_map(str::to_string)
            .boxed()
    } else {
        any_string().boxed()
    };
    // At least one of days and hours.
    let parts = prop_oneof![
        (days.clone(), hours.clone()).prop_map(|(d, h)| (Some(d), Some(h))),
        days.prop_map(|d| (Some(d), None)),
        hours.prop_map(|h| (None, Some(h))),
    ];
    (parts, zone)
        .prop_map(|((days, hours), zone)| {
            Atom::During(During {
                days: days.map(sp),
                hours: hours.map(sp),
                zone: sp(zone),
                span: S,
            })
        })
        .boxed()
}

fn quantifier() -> impl Strategy<Value = Quantifier> {
    select(vec![Quantifier::Any, Quantifier::All])
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

/// A comparison (`==`, `in`, `matches`) of strings, which `ignoring case`
/// may wrap; with `valid`, on an argument.
fn string_comparison(valid: bool) -> BoxedStrategy<Atom> {
    let subj = if valid {
        valid_arg_path().prop_map(Subject::Arg).boxed()
    } else {
        subject().boxed()
    };
    let op = if valid {
        equality_op().boxed()
    } else {
        cmp_op().boxed()
    };
    prop_oneof![
        (subj.clone(), op, string_literal()).prop_map(|(s, op, l)| Atom::Compare(s, sp(op), l)),
        (subj.clone(), vec(string_literal(), 1..4)).prop_map(|(s, l)| Atom::In(s, l)),
        (subj, any_string()).prop_map(|(s, g)| Atom::Matches(s, sp(g))),
    ]
    .boxed()
}

/// The test after `any` / `all`, whose argument names the list.
fn element_test(valid: bool) -> BoxedStrategy<Atom> {
    if valid {
        prop_oneof![
            (
                valid_arg_path(),
                select(vec!["/", "/restricted", "/data/raw"])
            )
                .prop_map(|(p, prefix)| Atom::Under(p, sp(prefix.to_string()))),
            (
                valid_arg_path(),
                proptest::option::of(Just("sample".to_string()))
            )
                .prop_map(|(p, kind)| Atom::CreatedByAgent(p, kind.map(sp))),
            (valid_arg_path(), equality_op(), string_literal())
                .prop_map(|(p, op, l)| Atom::Compare(Subject::Arg(p), sp(op), l)),
            (valid_arg_path(), any_string())
                .prop_map(|(p, g)| Atom::Matches(Subject::Arg(p), sp(g))),
            (valid_arg_path(), equality_op(), string_literal()).prop_map(|(p, op, l)| {
                Atom::IgnoringCase(Box::new(Atom::Compare(Subject::Arg(p), sp(op), l)))
            }),
        ]
        .boxed()
    } else {
        prop_oneof![
            arg_path().prop_map(Atom::Exists),
            (arg_path(), proptest::option::of(rule_name()))
                .prop_map(|(p, kind)| Atom::CreatedByAgent(p, kind.map(sp))),
            (arg_path(), any_string()).prop_map(|(p, prefix)| Atom::Under(p, sp(prefix))),
            string_comparison(false),
            string_comparison(false).prop_map(|a| Atom::IgnoringCase(Box::new(a))),
            (subject(), cmp_op(), literal(false)).prop_map(|(s, op, l)| Atom::Compare(
                s,
                sp(op),
                l
            )),
        ]
        .boxed()
    }
}

/// `length of` / `size of` compared; with `valid`, with counts (or
/// sizes) the checker accepts, and never the dead `< 0`.
fn measure(valid: bool) -> BoxedStrategy<Atom> {
    if valid {
        prop_oneof![
            1 => (valid_arg_path(), cmp_op(), 1i64..100_000).prop_map(|(p, op, n)| Atom::Compare(
                Subject::Length(p, S),
                sp(op),
                Literal {
                    value: Value::Int(n),
                    span: S
                }
            )),
            2 => (valid_arg_path(), cmp_op(), byte_size(true)).prop_map(|(p, op, l)| Atom::Compare(
                Subject::Size(p, S),
                sp(op),
                l
            )),
            1 => (valid_arg_path(), cmp_op(), 1i64..100_000).prop_map(|(p, op, n)| Atom::Compare(
                Subject::Size(p, S),
                sp(op),
                Literal {
                    value: Value::Int(n),
                    span: S
                }
            )),
        ]
        .boxed()
    } else {
        (subject(), cmp_op(), byte_size(false))
            .prop_map(|(s, op, l)| Atom::Compare(s, sp(op), l))
            .boxed()
    }
}

/// Atoms; with `valid`, only the ones the checker accepts.
fn atom(valid: bool) -> BoxedStrategy<Atom> {
    let path = move || {
        if valid {
            valid_arg_path().boxed()
        } else {
            arg_path().boxed()
        }
    };
    // Identity tests of one `and` must leave some name possible (else
    // `never-matches`): `==` and `in` always allow "alice", `!=` excludes
    // a random name.
    let alice = || Literal {
        value: Value::String("alice".to_string()),
        span: S,
    };
    let compare = if valid {
        prop_oneof![
            identity().prop_map(move |s| Atom::Compare(s, sp(CmpOp::Eq), alice())),
            (identity(), string_literal()).prop_map(|(s, l)| Atom::Compare(s, sp(CmpOp::Ne), l)),
            (path(), equality_op(), literal(true)).prop_map(|(p, op, l)| Atom::Compare(
                Subject::Arg(p),
                sp(op),
                l
            )),
            (path(), ordering_op(), number_literal(true)).prop_map(|(p, op, l)| Atom::Compare(
                Subject::Arg(p),
                sp(op),
                l
            )),
        ]
        .boxed()
    } else {
        (subject(), cmp_op(), literal(false))
            .prop_map(|(s, op, l)| Atom::Compare(s, sp(op), l))
            .boxed()
    };
    let in_list = if valid {
        prop_oneof![
            (identity(), vec(string_literal(), 0..3)).prop_map(move |(s, mut l)| {
                l.push(alice());
                Atom::In(s, l)
            }),
            // One type per list: a mixed list is a type error.
            (path(), literal(true))
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
    let atoms = prop_oneof![
        1 => any::<bool>().prop_map(Atom::Bool),
        1 => Just(Atom::ViaAgent),
        1 => any_string().prop_map(|s| Atom::ViaServer(sp(s))),
        1 => tool_flag().prop_map(Atom::ToolFlag),
        1 => any_string().prop_map(|s| Atom::InGroup(sp(s))),
        1 => path().prop_map(Atom::Exists),
        // `sample` is the kind the valid sets declare for every server.
        1 => (path(), proptest::option::of(Just("sample".to_string())))
            .prop_map(|(p, kind)| Atom::CreatedByAgent(p, kind.map(sp))),
        1 => select(VerifiedField::ALL.to_vec()).prop_map(Atom::Verified),
        2 => compare,
        1 => in_list,
        1 => (if valid { prop_oneof![identity(), path().prop_map(Subject::Arg)].boxed() } else { subject().boxed() }, any_string())
            .prop_map(|(s, g)| Atom::Matches(s, sp(g))),
        1 => (path(), select(vec!["/", "/restricted", "/data/raw"]))
            .prop_map(|(p, prefix)| Atom::Under(p, sp(prefix.to_string()))),
        1 => during(valid),
        1 => (quantifier(), element_test(valid)).prop_map(|(q, t)| Atom::Each(sp(q), Box::new(t))),
        1 => string_comparison(valid).prop_map(|a| Atom::IgnoringCase(Box::new(a))),
        2 => measure(valid),
    ];
    // A valid set declares no label, so it names none.
    if valid {
        atoms.boxed()
    } else {
        prop_oneof![
            24 => atoms,
            1 => rule_name().prop_map(|n| Atom::SessionLabel(sp(n))),
        ]
        .boxed()
    }
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
    select(Scope::ALL.to_vec())
}

/// `per user per tool`: as written, duplicates and all (the grammar takes them).
fn any_scopes() -> impl Strategy<Value = Vec<Spanned<Scope>>> {
    vec(scope().prop_map(sp), 1..4)
}

/// Distinct scopes in any order.
fn valid_scopes() -> impl Strategy<Value = Vec<Spanned<Scope>>> {
    proptest::sample::subsequence(Scope::ALL.to_vec(), 1..4)
        .prop_shuffle()
        .prop_map(|v| v.into_iter().map(sp).collect())
}

/// A limit's number as the grammar reads it: digits, perhaps a fraction.
fn any_amount() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100).prop_map(|n| n.to_string()),
        "[0-9]{1,8}\\.[0-9]{1,6}",
    ]
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
        any_amount(),
        proptest::option::of((prop_oneof![any::<u64>(), 0u64..100], duration_unit())),
        any_scopes(),
    )
        .prop_map(|(max, window, scopes)| {
            Clause::Limit(Limit {
                max: sp(max),
                window: window.map(|(amount, unit)| sp(Duration { amount, unit })),
                scopes,
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
        1 => arg_path().prop_map(Clause::Sum),
        1 => (prop_oneof![Just(ApproverKind::Group), Just(ApproverKind::User)], any_string())
            .prop_map(|(kind, name)| Clause::Approver(Approver { kind, name: sp(name), span: S })),
        1 => (grant_scope(), proptest::collection::vec(arg_path(), 0..3))
            .prop_map(|(scope, within)| Clause::Grant(Grant { scope: sp(scope), within, span: S })),
        1 => prop_oneof![
            Just(Keep::Session),
            (prop_oneof![any::<u64>(), 0u64..100], duration_unit())
                .prop_map(|(amount, unit)| Keep::For(Duration { amount, unit })),
        ]
        .prop_map(|k| Clause::Keep(sp(k))),
    ]
}

/// Any grant scope the grammar accepts (the checker may not).
fn grant_scope() -> impl Strategy<Value = GrantScope> {
    prop_oneof![
        Just(GrantScope::Once),
        Just(GrantScope::Session),
        prop_oneof![any::<u64>(), 0u64..100].prop_map(GrantScope::Calls),
        (prop_oneof![any::<u64>(), 0u64..100], duration_unit())
            .prop_map(|(amount, unit)| GrantScope::For(Duration { amount, unit })),
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

/// An annotation declaration of the grammar (any claims, repeated or
/// contradicting too: the checker's to refuse).
fn any_annotation(
    tools: BoxedStrategy<String>,
    claims: usize,
) -> impl Strategy<Value = AnnotationDecl> {
    (
        pattern_list(tools),
        proptest::option::of(pattern_list(any_string().boxed())),
        vec((tool_flag(), any::<bool>()), 1..=claims),
    )
        .prop_map(|(tools, servers, claims)| AnnotationDecl {
            tools,
            servers,
            claims: claims
                .into_iter()
                .map(|(flag, value)| Claim {
                    flag,
                    value,
                    span: S,
                })
                .collect(),
            span: S,
        })
}

fn any_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => any_annotation(any_string().boxed(), 3).prop_map(Item::Annotation),
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
pub fn any_file() -> impl Strategy<Value = PolicyFile> {
    vec(any_item(), 0..6).prop_map(|items| PolicyFile {
        file: FileId(0),
        items,
        comments: vec![],
    })
}

// ---- checker-clean files ---------------------------------------------------

/// A reason template: text (braces doubled) and valid placeholders;
/// `{limit}` only for limits, `{window}` only for rates and budgets,
/// `{used}` and `{remaining}` only for budgets.
fn reason_template(kind: RuleKind) -> impl Strategy<Value = String> {
    let limit = kind.is_limit();
    let window = matches!(kind, RuleKind::RateLimit | RuleKind::Budget);
    let budget = kind == RuleKind::Budget;
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
            "{used}",
            "{remaining}",
            "{args.sample_id}",
            "{ args.a.b }",
            "{args.odd key\"}",
        ])
        .prop_map(move |p| match p {
            "{limit}" if !limit => "{{limit}}",
            "{window}" if !window => "{{window}}",
            "{used}" if !budget => "{{used}}",
            "{remaining}" if !budget => "{{remaining}}",
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
                    valid_scopes(),
                    "[1-9][0-9]{0,5}(\\.[0-9]{1,4})?",
                    valid_arg_path(),
                ),
            )
        })
        .prop_map(|(kind, name, server, tool, when, reason, mode, limit)| {
            let mut clauses = Vec::new();
            clauses.extend(server.map(Clause::Server));
            clauses.extend(tool.map(Clause::Tool));
            clauses.extend(when.map(Clause::When));
            // A label decides nothing: it takes no reason and no mode.
            if kind != RuleKind::Label {
                clauses.extend(reason.map(|r| Clause::Reason(sp(r))));
                clauses.extend(mode.map(|m| Clause::Mode(sp(m))));
            } else if limit.1 % 3 == 0 {
                clauses.push(Clause::Keep(sp(Keep::For(Duration {
                    amount: 1 + limit.1 % 30,
                    unit: DurationUnit::Days,
                }))));
            } else if limit.1 % 3 == 1 {
                clauses.push(Clause::Keep(sp(Keep::Session)));
            }
            let (max, amount, unit, scopes, budget_max, sum) = limit;
            let window = matches!(kind, RuleKind::RateLimit | RuleKind::Budget).then(|| {
                let most = warden_lang::check::MAX_WINDOW_SECS / unit.secs();
                sp(Duration {
                    amount: 1 + amount % most,
                    unit,
                })
            });
            if kind.is_limit() {
                let max = if kind == RuleKind::Budget {
                    budget_max
                } else {
                    max.to_string()
                };
                clauses.push(Clause::Limit(Limit {
                    max: sp(max),
                    window,
                    scopes,
                    span: S,
                }));
            }
            if kind == RuleKind::Budget {
                clauses.push(Clause::Sum(sum));
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
pub fn valid_file() -> impl Strategy<Value = PolicyFile> {
    (
        select(vec![Effect::Allow, Effect::Deny]),
        vec(valid_rule(), 0..5),
        proptest::option::of(0usize..6),
        // One claim each: never twice the same, never a contradiction.
        proptest::option::of(any_annotation("[A-Za-z0-9_.*-]{1,12}".boxed(), 1).prop_map(
            |mut a| {
                if let Some(s) = &mut a.servers {
                    for p in &mut s.patterns {
                        if p.node.is_empty() {
                            p.node = "lims".into();
                        }
                    }
                }
                a
            },
        )),
    )
        .prop_map(|(effect, rules, restate_at, stated)| {
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
            items.extend(stated.map(Item::Annotation));
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
