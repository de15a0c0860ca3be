//! proptest strategies for random policy sets and sessions. The alphabet
//! of servers, tools, identities, argument names and values is small and
//! shared between the rules and the calls, so that rules match often and
//! every corner of the three-valued reading is reached: absent arguments,
//! null, wrong types, numbers a decimal cannot hold, backslashes in globs,
//! lists with elements of every type, case variants, budget amounts that
//! are not exact, and wall times around DST changes for `during`.

use crate::case::Step;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use warden_engine::{ToolAnnotations, Verified};
use warden_lang::ast::RuleKind;

/// A generated rule; its name is `r<index>`.
#[derive(Debug, Clone)]
pub struct GenRule {
    pub kind: RuleKind,
    pub servers: Option<Vec<&'static str>>,
    pub tools: Option<Vec<&'static str>>,
    pub when: Option<GenExpr>,
    /// `None`: no `mode` clause; `Some(true)`: `mode shadow`.
    pub shadow: Option<bool>,
    /// A count for caps and rates, an amount for budgets.
    pub max: &'static str,
    pub window: &'static str,
    /// `per user per tool`: the scope phrase as written.
    pub scope: &'static str,
    /// A `label` rule's `for` clause as written (`""`: none).
    pub keep: &'static str,
}

/// A condition, printed with parentheses around every compound part.
#[derive(Debug, Clone)]
pub enum GenExpr {
    Atom(String),
    Not(Box<GenExpr>),
    And(Vec<GenExpr>),
    Or(Vec<GenExpr>),
}

impl GenExpr {
    fn text(&self) -> String {
        let part = |e: &GenExpr| match e {
            GenExpr::Atom(a) => a.clone(),
            other => format!("({})", other.text()),
        };
        match self {
            GenExpr::Atom(a) => a.clone(),
            GenExpr::Not(e) => format!("not {}", part(e)),
            GenExpr::And(es) => es.iter().map(part).collect::<Vec<_>>().join(" and "),
            GenExpr::Or(es) => es.iter().map(part).collect::<Vec<_>>().join(" or "),
        }
    }
}

/// A generated case: a policy set and a session of calls.
#[derive(Debug, Clone)]
pub struct Case {
    /// Wall time of the clock at the first call (Unix seconds).
    pub start: i64,
    pub default_allow: bool,
    pub rules: Vec<GenRule>,
    pub steps: Vec<Step>,
    /// Annotation declarations (`tool "x" is destructive`), as written.
    pub stated: Vec<String>,
}

impl Case {
    /// The .policy text of the set.
    pub fn policy(&self) -> String {
        // `create_*` tools create records: the harness's upstream answers
        // with the call's `args.a` as `id` (case.rs), so later calls whose
        // arguments hold that value name an agent-created record.
        let mut out = format!(
            "default {}\nrecords thing {{\n  created by tool \"create_*\" at \"/id\"\n}}\n",
            if self.default_allow { "allow" } else { "deny" }
        );
        for s in &self.stated {
            out.push_str(s);
            out.push('\n');
        }
        let list = |ps: &[&str]| {
            let quoted: Vec<String> = ps.iter().map(|p| format!("\"{p}\"")).collect();
            if quoted.len() == 1 {
                quoted[0].clone()
            } else {
                format!("[{}]", quoted.join(", "))
            }
        };
        for (i, r) in self.rules.iter().enumerate() {
            out.push_str(&format!("\n{} r{i} {{\n", r.kind.keyword()));
            if let Some(s) = &r.servers {
                out.push_str(&format!("  server {}\n", list(s)));
            }
            if let Some(t) = &r.tools {
                out.push_str(&format!("  tool {}\n", list(t)));
            }
            if let Some(w) = &r.when {
                out.push_str(&format!("  when {}\n", w.text()));
            }
            match r.kind {
                RuleKind::CapConsecutive => out.push_str(&format!("  max {} {}\n", r.max, r.scope)),
                RuleKind::RateLimit => {
                    out.push_str(&format!("  max {} per {} {}\n", r.max, r.window, r.scope))
                }
                RuleKind::Budget => out.push_str(&format!(
                    "  sum args.c\n  max {} per {} {}\n",
                    r.max, r.window, r.scope
                )),
                RuleKind::Label if !r.keep.is_empty() => out.push_str(&format!("  {}\n", r.keep)),
                _ => {}
            }
            // A label decides nothing: it has no mode.
            match r.shadow.filter(|_| r.kind != RuleKind::Label) {
                Some(true) => out.push_str("  mode shadow\n"),
                Some(false) => out.push_str("  mode enforce\n"),
                None => {}
            }
            out.push_str("}\n");
        }
        // `session has label Lk` names the k-th label rule of the set
        // (round robin), or is `false` in a set without one: an unknown
        // label does not lint.
        let labels: Vec<usize> = (0..self.rules.len())
            .filter(|&i| self.rules[i].kind == RuleKind::Label)
            .collect();
        for k in 0..LABEL_SLOTS {
            let placeholder = format!("session has label L{k}");
            let named = match labels.as_slice() {
                [] => "false".to_string(),
                ls => format!("session has label r{}", ls[k % ls.len()]),
            };
            out = out.replace(&placeholder, &named);
        }
        out
    }
}

const SERVERS: &[&str] = &["lims", "genomics", "lab-a", "lab-\\x", "other"];
/// As written between the quotes of a policy: `lab-\\*` there is the
/// glob `lab-\*`, which matches the server `lab-\x`.
const SERVER_PATTERNS: &[&str] = &["lims", "genomics", "lab-*", "lab-\\\\*", "*", "*s"];
const TOOLS: &[&str] = &[
    "get_sample",
    "delete_sample",
    "list_runs",
    "start_run",
    "create_sample",
];
const TOOL_PATTERNS: &[&str] = &[
    "get_sample",
    "delete_sample",
    "start_run",
    "get_*",
    "*_sample",
    "*run*",
    "create_*",
    "*",
];
const USERS: &[&str] = &["ada", "bob", "svc-ci", "o\"k\\"];
const GROUPS: &[&str] = &["admins", "lab", "a \"b\""];
const AGENTS: &[&str] = &["claude", "codex"];
const MODELS: &[&str] = &["claude-3", "gpt"];
/// Names identity tests compare with: every user, agent and model.
const NAMES: &[&str] = &[
    "ada", "bob", "svc-ci", "o\"k\\", "claude", "codex", "claude-3",
];
/// Raw globs (quoted when printed); the last matches the user `o"k\`.
const NAME_GLOBS: &[&str] = &["svc-*", "claude*", "*a*", "*", "o\"k\\*"];
const ARG_PATHS: &[&str] = &[
    "args.a",
    "args.b",
    "args.n",
    "args.o.x",
    "args.\"k y\"",
    "args.items.\"0\"",
    "args.\"p/q~r\"",
];
/// Literals as written in a policy (`"a\\b"` is the string `a\b`).
const STRINGS: &[&str] = &["\"x\"", "\"qc\"", "\"\"", "\"a\\\\b\""];
/// Literals compared `ignoring case`: upper and mixed case, and letters
/// whose lowercase is longer (`İ`) or that have no one-letter uppercase.
const CASED: &[&str] = &[
    "\"QC\"",
    "\"Qc\"",
    "\"x\"",
    "\"İx\"",
    "\"STRASSE\"",
    "\"straße\"",
];
const CASED_GLOBS: &[&str] = &["\"*Q*\"", "\"x*\"", "\"i*\"", "\"*SS*\"", "\"*ß*\""];
/// The list arguments `any` and `all` read.
const LIST_PATHS: &[&str] = &["args.tags", "args.ids", "args.paths"];
const PATH_PREFIXES: &[&str] = &["\"/tmp\"", "\"/etc\"", "\"/\""];
/// (`< 0` never holds: the checker refuses it, so no zero here.)
const SIZES: &[&str] = &["1 B", "2 B", "3 B", "4 B", "10 B", "1 KB", "1 KiB"];
const LENGTHS: &[&str] = &["1", "2", "3", "10"];
/// The scopes of a limit, compound ones included; plain ones twice as
/// likely.
const SCOPES: &[&str] = &[
    "per session",
    "per session",
    "per user",
    "per user",
    "per agent",
    "per model",
    "per tool",
    "per user per tool",
    "per tool per session",
    "per session per model",
    "per agent per tool",
    "per model per tool",
    "per user per model per tool",
];
/// Budget maxima: whole, with decimals, at the fourth place.
const BUDGETS: &[&str] = &["1", "2.5", "0.3", "10", "1000.0001"];
/// Budget amounts (`args.c`): exact decimals whose float sums are not
/// (0.1 + 0.2), zero and minus zero, negative, too precise, out of range,
/// exponents, not numbers, and more digits than a float keeps.
const AMOUNTS: &[&str] = &[
    "0.1",
    "0.2",
    "0.1",
    "0.2",
    "0.1",
    "0.5",
    "1",
    "2.5",
    "0",
    "-0",
    "-1",
    "0.00001",
    "0.0001",
    "1e300",
    "1.5E-1",
    "3",
    "\"1\"",
    "null",
    "true",
    "1234567890123.4567",
    "922337203685477.5807",
];
/// Instants the cases start near (Unix seconds): the 2026 DST changes in
/// Berlin, New York and Sydney, a Wednesday morning in Europe, a Friday
/// evening, Sunday midnight, the new year.
const ANCHORS: &[i64] = &[
    1_774_746_000,
    1_792_890_000,
    1_772_953_200,
    1_793_512_800,
    1_791_043_200,
    1_775_318_400,
    1_796_196_600,
    1_796_403_600,
    1_796_598_000,
    1_798_761_600,
];
const DAYS: &[&str] = &[
    "weekdays",
    "weekends",
    "mon-fri",
    "sat,sun",
    "fri-mon",
    "sun",
    "mon,wed-fri",
];
/// Hours, some of them past midnight and one the hour Berlin skips.
const HOURS: &[&str] = &[
    "08:00-18:00",
    "22:00-06:00",
    "00:00-03:00",
    "02:00-03:00",
    "01:30-02:30",
    "18:00-24:00",
    "09:00-17:30",
    "23:59-00:01",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "5",
    "-1",
    "2.5",
    "1000",
    "0.0001",
    "922337203685477",
];
const BOOLS: &[&str] = &["true", "false"];
const ARG_GLOBS: &[&str] = &["\"x*\"", "\"*\"", "\"a\\\\*\"", "\"*c\""];
/// JSON argument values: each type, null, numbers a decimal cannot hold
/// (five decimals, out of range), equal numbers written differently.
const JSON_VALUES: &[&str] = &[
    "\"x\"",
    "\"qc\"",
    "\"\"",
    "\"a\\\\b\"",
    "\"xyz\"",
    "0",
    "1",
    "5",
    "-1",
    "2.5",
    "1000",
    "1000.0",
    "0.0001",
    "0.00001",
    "1e300",
    "100000000000000000",
    "922337203685477",
    "922337203685478",
    "-0.0",
    "2.5E-2",
    "true",
    "false",
    "null",
    "{}",
    "[]",
    "\"QC\"",
    "\"STRASSE\"",
    "\"İx\"",
    "\"/tmp/a\"",
    "\"a long string of 29 bytes: é\"",
    "[\"x\", 1]",
];

/// Elements of the lists `tags`, `ids` and `paths`: strings in several
/// cases, paths (some that do not normalise), ids, and other types.
const ELEMENTS: &[&str] = &[
    "\"x\"",
    "\"qc\"",
    "\"QC\"",
    "\"Qc\"",
    "\"İx\"",
    "\"i̇x\"",
    "\"STRASSE\"",
    "\"straße\"",
    "\"\"",
    "\"a\\\\b\"",
    "\"/tmp/a\"",
    "\"/TMP/a\"",
    "\"/etc/passwd\"",
    "\"/tmp/../etc\"",
    "\"rel/x\"",
    "\"S-1\"",
    "7",
    "1",
    "0.00001",
    "true",
    "null",
    "[]",
    "{}",
];

/// Record ids `a` and `b` are drawn from half of the time: a string, a
/// number and a number written differently (a distinct id).
const RECORD_IDS: &[&str] = &["\"S-1\"", "\"S-2\"", "7", "7.0"];

/// A policy string literal: `"` and `\\` escaped.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An annotation declaration: tool patterns, sometimes a server, and one
/// or two things said (never a contradiction the checker refuses).
fn stated() -> impl Strategy<Value = String> {
    let claim = select(
        &[
            "read-only",
            "not read-only",
            "destructive",
            "not destructive",
            "idempotent",
            "not idempotent",
            "open-world",
            "not open-world",
        ][..],
    );
    (
        vec(select(TOOL_PATTERNS), 1..3),
        option::weighted(0.3, select(SERVER_PATTERNS)),
        vec(claim, 1..3),
    )
        .prop_map(|(tools, server, mut claims)| {
            // One word per hint, and no read-only tool that is destructive
            // or not idempotent.
            claims.dedup_by(|a, b| a.trim_start_matches("not ") == b.trim_start_matches("not "));
            if claims.contains(&"read-only") {
                claims.retain(|c| *c != "destructive" && *c != "not idempotent");
            }
            let quoted: Vec<String> = tools.iter().map(|t| format!("\"{t}\"")).collect();
            let mut out = format!("tool [{}]", quoted.join(", "));
            if let Some(s) = server {
                out.push_str(&format!(" on server \"{s}\""));
            }
            out.push_str(&format!(" is {}", claims.join(", ")));
            out
        })
}

/// How many distinct label placeholders the generator writes.
const LABEL_SLOTS: usize = 3;

fn atom() -> impl Strategy<Value = String> {
    let literal = prop_oneof![select(STRINGS), select(NUMBERS), select(BOOLS)];
    let list = prop_oneof![
        vec(select(STRINGS), 1..3),
        vec(select(NUMBERS), 1..3),
        vec(select(BOOLS), 1..3),
    ];
    let identity = select(&["user", "agent", "model"][..]);
    let during = (
        option::of(select(DAYS)),
        option::of(select(HOURS)),
        select(crate::clock::ZONES),
    )
        .prop_map(|(days, hours, zone)| {
            let days = match (days, hours) {
                (None, None) => Some("weekdays"),
                (d, _) => d,
            };
            let mut out = "during".to_string();
            for part in [days, hours].into_iter().flatten() {
                out.push(' ');
                out.push_str(part);
            }
            format!("{out} \"{zone}\"")
        });
    let quoted_name = select(NAMES).prop_map(quote);
    prop_oneof![
        1 => select(&["true", "false", "via agent"][..]).prop_map(str::to_string),
        1 => select(&["lims", "genomics"][..]).prop_map(|s| format!("via server \"{s}\"")),
        1 => select(&["read_only", "destructive", "idempotent", "open_world"][..])
            .prop_map(|f| format!("tool.{f}")),
        1 => select(GROUPS).prop_map(|g| format!("user in group {}", quote(g))),
        3 => (0..LABEL_SLOTS).prop_map(|k| unless_skipped("label", format!("session has label L{k}"))),
        2 => select(ARG_PATHS).prop_map(|p| format!("{p} exists")),
        // Mostly the arguments that hold record ids (see `arguments`).
        2 => prop_oneof![2 => select(&["args.a", "args.b"][..]), 1 => select(ARG_PATHS)]
            .prop_map(|p| format!("{p} created by agent")),
        1 => select(&["user", "groups", "agent", "model"][..]).prop_map(|f| format!("verified {f}")),
        2 => (identity.clone(), select(&["==", "!="][..]), quoted_name.clone())
            .prop_map(|(s, op, n)| format!("{s} {op} {n}")),
        1 => (identity.clone(), vec(quoted_name, 1..3))
            .prop_map(|(s, ns)| format!("{s} in [{}]", ns.join(", "))),
        1 => (identity, select(NAME_GLOBS)).prop_map(|(s, g)| format!("{s} matches {}", quote(g))),
        3 => (select(ARG_PATHS), select(&["==", "!="][..]), literal)
            .prop_map(|(p, op, l)| format!("{p} {op} {l}")),
        3 => (select(ARG_PATHS), select(&["<", "<=", ">", ">="][..]), select(NUMBERS))
            .prop_map(|(p, op, n)| format!("{p} {op} {n}")),
        1 => (select(ARG_PATHS), list).prop_map(|(p, l)| format!("{p} in [{}]", l.join(", "))),
        1 => (select(ARG_PATHS), select(ARG_GLOBS)).prop_map(|(p, g)| format!("{p} matches {g}")),
        3 => during.prop_map(|t| unless_skipped("during", t)),
        4 => (select(&["any", "all"][..]), select(LIST_PATHS), element_test())
            .prop_map(|(q, p, t)| unless_skipped("each", format!("{q} {}", t.replace("PATH", p)))),
        2 => (select(ARG_PATHS), folded())
            .prop_map(|(p, t)| unless_skipped("case", t.replace("PATH", p))),
        2 => (
            prop_oneof![select(ARG_PATHS), select(LIST_PATHS)],
            select(&["<", "<=", ">", ">=", "==", "!="][..]),
            select(LENGTHS)
        )
            .prop_map(|(p, op, n)| unless_skipped("length", format!("length of {p} {op} {n}"))),
        2 => (
            prop_oneof![select(ARG_PATHS), select(LIST_PATHS)],
            select(&["<", "<=", ">", ">=", "==", "!="][..]),
            select(SIZES)
        )
            .prop_map(|(p, op, n)| unless_skipped("size", format!("size of {p} {op} {n}"))),
    ]
}

/// `test`, or `true` when `WARDEN_DIFF_SKIP` (a comma-separated list of
/// `during`, `each`, `case`, `length`, `size`) names its family: to look
/// for disagreements elsewhere while one is open. The reach floors then
/// fail for what is skipped, so a skipping run never passes.
fn unless_skipped(family: &str, test: String) -> String {
    let skip = std::env::var("WARDEN_DIFF_SKIP").unwrap_or_default();
    if skip.split(',').any(|s| s.trim() == family) {
        "true".to_string()
    } else {
        test
    }
}

/// A comparison of strings `ignoring case`, on the argument `PATH`.
fn folded() -> impl Strategy<Value = String> {
    prop_oneof![
        (select(&["==", "!="][..]), select(CASED))
            .prop_map(|(op, l)| format!("PATH {op} {l} ignoring case")),
        vec(select(CASED), 1..3)
            .prop_map(|ls| format!("PATH in [{}] ignoring case", ls.join(", "))),
        select(CASED_GLOBS).prop_map(|g| format!("PATH matches {g} ignoring case")),
    ]
}

/// The test `any` or `all` applies to each element of the list `PATH`.
fn element_test() -> impl Strategy<Value = String> {
    prop_oneof![
        (select(&["==", "!="][..]), select(STRINGS)).prop_map(|(op, l)| format!("PATH {op} {l}")),
        (select(&["<", ">=", "=="][..]), select(NUMBERS))
            .prop_map(|(op, n)| format!("PATH {op} {n}")),
        vec(select(STRINGS), 1..3).prop_map(|ls| format!("PATH in [{}]", ls.join(", "))),
        select(ARG_GLOBS).prop_map(|g| format!("PATH matches {g}")),
        select(PATH_PREFIXES).prop_map(|p| format!("PATH under {p}")),
        Just("PATH created by agent".to_string()),
        Just("PATH created by agent".to_string()),
        Just("PATH exists".to_string()),
        folded(),
    ]
}

fn expr() -> impl Strategy<Value = GenExpr> {
    atom()
        .prop_map(GenExpr::Atom)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| GenExpr::Not(Box::new(e))),
                vec(inner.clone(), 2..4).prop_map(GenExpr::And),
                vec(inner, 2..4).prop_map(GenExpr::Or),
            ]
        })
}

fn rule() -> impl Strategy<Value = GenRule> {
    let kind = prop_oneof![
        3 => Just(RuleKind::Allow),
        2 => Just(RuleKind::Deny),
        2 => Just(RuleKind::RequireConfirm),
        2 => Just(RuleKind::CapConsecutive),
        2 => Just(RuleKind::RateLimit),
        2 => Just(RuleKind::Budget),
        2 => Just(RuleKind::Label),
    ];
    (
        kind,
        option::weighted(0.5, vec(select(SERVER_PATTERNS), 1..3)),
        option::weighted(0.7, vec(select(TOOL_PATTERNS), 1..3)),
        option::weighted(0.75, expr()),
        select(&[None, None, None, Some(false), Some(true)][..]),
        (select(&["1", "2", "3"][..]), select(BUDGETS)),
        select(&["30s", "1m", "2m", "1h"][..]),
        (
            select(SCOPES),
            select(&["", "", "for session", "for 30s", "for 1m", "for 2h"][..]),
        ),
    )
        .prop_map(
            |(kind, servers, tools, when, shadow, (count, budget), window, (scope, keep))| {
                GenRule {
                    kind,
                    servers,
                    tools,
                    when,
                    shadow,
                    max: if kind == RuleKind::Budget {
                        budget
                    } else {
                        count
                    },
                    window,
                    scope,
                    keep,
                }
            },
        )
}

/// Arguments: each known key absent or holding a value from the pool;
/// `o` and `items` are sometimes an object or array holding one.
fn arguments() -> impl Strategy<Value = String> {
    let value = || select(JSON_VALUES);
    // `a` and `b` often hold one of a few record ids, so that a record a
    // `create_*` call created (its id is its `a`) is named again later.
    let id = || prop_oneof![1 => select(RECORD_IDS), 1 => select(JSON_VALUES)];
    let fields = (
        option::of(id()),
        option::of(id()),
        option::of(value()),
        option::of((any::<bool>(), value())),
        option::of(value()),
        option::of((any::<bool>(), value())),
        option::of(value()),
    );
    // A list of elements, or (one time in eight) some other value.
    let list = || {
        option::of(prop_oneof![
            7 => vec(select(ELEMENTS), 0..4).prop_map(|es| format!("[{}]", es.join(", "))),
            1 => select(JSON_VALUES).prop_map(String::from),
        ])
    };
    let more = (
        list(),
        option::of(vec(select(RECORD_IDS), 0..3).prop_map(|es| format!("[{}]", es.join(", ")))),
        list(),
        option::weighted(0.8, select(AMOUNTS)),
    );
    (fields, more).prop_map(|((a, b, n, o, ky, items, pq), (tags, ids, paths, c))| {
        let mut fields = Vec::new();
        for (key, v) in [
            ("a", a),
            ("b", b),
            ("n", n),
            ("k y", ky),
            ("p/q~r", pq),
            ("c", c),
        ] {
            if let Some(v) = v {
                fields.push(format!("\"{key}\": {v}"));
            }
        }
        for (key, v) in [("tags", tags), ("ids", ids), ("paths", paths)] {
            if let Some(v) = v {
                fields.push(format!("\"{key}\": {v}"));
            }
        }
        if let Some((nested, v)) = o {
            fields.push(if nested {
                format!("\"o\": {{\"x\": {v}}}")
            } else {
                format!("\"o\": {v}")
            });
        }
        if let Some((nested, v)) = items {
            fields.push(if nested {
                format!("\"items\": [{v}]")
            } else {
                format!("\"items\": {v}")
            });
        }
        format!("{{{}}}", fields.join(", "))
    })
}

fn step() -> impl Strategy<Value = Step> {
    let annotations = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    )
        .prop_map(|(r, d, i, o)| ToolAnnotations {
            read_only_hint: r,
            destructive_hint: d,
            idempotent_hint: i,
            open_world_hint: o,
        });
    let who = (
        select(USERS),
        vec(select(GROUPS), 0..3),
        option::of(select(AGENTS)),
        option::of(select(MODELS)),
        select(&["s1", "s2"][..]),
        any::<bool>(),
        option::of(select(&["lims", "genomics"][..])),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(user, groups, agent, model)| Verified {
                user,
                groups,
                agent,
                model,
            },
        ),
    );
    let what = (
        select(SERVERS),
        select(TOOLS),
        annotations,
        arguments(),
        select(&[0u64, 0, 0, 0, 1, 10, 30, 59, 60, 61, 1800, 3600, 7200][..]),
        option::weighted(
            0.15,
            vec(select(&["r0", "r1", "r2", "r3", "nope"][..]), 1..3),
        ),
        proptest::bool::weighted(0.7),
    );
    (who, what).prop_map(
        |(
            (user, groups, agent, model, session, via_agent, via_server, verified),
            (server, tool, annotations, args, advance_secs, confirmed, accept),
        )| Step {
            advance_secs,
            server: server.into(),
            tool: tool.into(),
            user: user.into(),
            groups: groups.into_iter().map(String::from).collect(),
            agent: agent.map(String::from),
            model: model.map(String::from),
            session: session.into(),
            via_agent,
            via_server: via_server.map(String::from),
            verified,
            annotations,
            args,
            confirmed: confirmed
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect(),
            accept,
        },
    )
}

/// A policy set of 1 to 8 rules and a session of 1 to 12 calls.
///
/// Some calls follow up an earlier `create_*` call: same server, and its
/// `a` (the id it created) as their `a` and sometimes `b`, as an agent
/// updating what it made would. Without this, a later call naming a
/// created record on the same server is too rare to test `created by agent`.
pub fn case() -> impl Strategy<Value = Case> {
    (
        (select(ANCHORS), 0i64..4 * 3600),
        any::<bool>(),
        vec(rule(), 1..=8),
        vec(step(), 1..=12),
        proptest::collection::vec(stated(), 0..3),
        vec(
            (proptest::bool::weighted(0.3), any::<usize>(), any::<bool>()),
            12,
        ),
    )
        .prop_map(
            |((anchor, before), default_allow, rules, mut steps, stated, links)| {
                for i in 1..steps.len() {
                    let (follow, pick, also_b) = links[i];
                    let creators: Vec<usize> = (0..i)
                        .filter(|&j| steps[j].tool.starts_with("create_"))
                        .collect();
                    if !follow || creators.is_empty() {
                        continue;
                    }
                    let j = creators[pick % creators.len()];
                    let created: serde_json::Value =
                        serde_json::from_str(&steps[j].args).expect("generated arguments are JSON");
                    let Some(id) = created.get("a").cloned() else {
                        continue;
                    };
                    let mut args: serde_json::Value =
                        serde_json::from_str(&steps[i].args).expect("generated arguments are JSON");
                    args["a"] = id.clone();
                    if also_b {
                        args["b"] = id.clone();
                    }
                    // And as an element of the list `any`/`all` read.
                    if let Some(ids) = args.get_mut("ids").and_then(|v| v.as_array_mut()) {
                        ids.push(id);
                    }
                    steps[i].args = args.to_string();
                    steps[i].server = steps[j].server.clone();
                }
                Case {
                    start: anchor - before,
                    default_allow,
                    rules,
                    steps,
                    stated,
                }
            },
        )
}
