//! What the compiler hands the engine: [`CompiledPolicySet`] (the Cedar
//! policy sets, the generated schema, the rules with their spans, reasons
//! and limits, the arguments rules read and the `records` declarations)
//! and the types it is made of. Built only by `compile`; read through its
//! accessors.

use crate::ast::*;
use crate::cedar::{BuildError, CPolicy, PolicyBuilder};
use crate::compile::COUNTING_SUFFIX;
use crate::source::Span;
use crate::template::Template;
use cedar_policy::{Policy, PolicySet, Schema};
use std::collections::{BTreeMap, BTreeSet};

/// The JSON types an argument may be read as; each has its own record in
/// `context.args` so that one argument can be compared as a string by one
/// rule and as a number by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgType {
    /// `context.args.str`, Cedar `String`.
    Str,
    /// `context.args.num`, Cedar `decimal`: every JSON number with at most 4
    /// decimal places inside decimal's range; others count as unknown.
    Num,
    /// `context.args.bool`, Cedar `Bool`.
    Bool,
    /// `context.args.path` (the normal form, [`crate::paths`]) and
    /// `context.args.ipath` (that form case-folded), Cedar `String`: a
    /// string that normalises; others count as unknown.
    Path,
    /// `context.args.istr`, Cedar `String`: a string lowercased with
    /// [`str::to_lowercase`] (`ignoring case`); others count as unknown.
    FoldedStr,
    /// `context.args.len`, Cedar `Long`: the characters (Unicode scalar
    /// values) of a string, the elements of an array (`length of`);
    /// others count as unknown.
    Len,
    /// `context.args.size`, Cedar `Long`: the bytes of a string's UTF-8,
    /// or of any other non-null value's compact JSON text (`size of`).
    Size,
}

impl ArgType {
    pub fn record(self) -> &'static str {
        match self {
            ArgType::Str => "str",
            ArgType::Num => "num",
            ArgType::Bool => "bool",
            ArgType::Path => "path",
            ArgType::FoldedStr => "istr",
            ArgType::Len => "len",
            ArgType::Size => "size",
        }
    }
    /// The record of case-folded paths, beside [`ArgType::Path`]'s.
    pub const FOLDED_PATH_RECORD: &'static str = "ipath";
    pub(crate) fn cedar_type(self) -> &'static str {
        match self {
            ArgType::Str | ArgType::Path | ArgType::FoldedStr => "String",
            ArgType::Num => "decimal",
            ArgType::Bool => "Bool",
            ArgType::Len | ArgType::Size => "Long",
        }
    }
}

/// A rule's limit, in the units the engine counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompiledLimit {
    /// Calls for caps and rates; for a budget, the amount in units of
    /// 1/10,000 ([`crate::amount`]).
    pub max: u64,
    /// Window in seconds; `None` for a cap (a streak has no window).
    pub window_secs: Option<u64>,
    /// What the limit counts separately by (`per user per tool`).
    pub scope: ScopeSet,
}

/// What a budget adds up: the argument at `pointer`, a JSON number with
/// at most four decimals, not negative.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompiledBudget {
    /// RFC 6901 pointer of the summed argument, e.g. `/estimated_cost`.
    pub pointer: String,
    /// The argument as the policy wrote it (`args.estimated_cost`).
    pub written: String,
}

/// Who approves a `require-confirm` rule's call and what the approval
/// lets through (`by`, `grant`; both optional in the source).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompiledApproval {
    /// `None`: the caller confirms their own call.
    pub approver: Option<CompiledApprover>,
    pub grant: CompiledGrant,
    /// RFC 6901 pointers of the arguments a later call must share with the
    /// approved one (`within`); empty: all of them, exactly.
    pub within: Vec<String>,
}

/// `by group "..."` / `by user "..."`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompiledApprover {
    Group(String),
    User(String),
}

impl CompiledApprover {
    /// Who that is, in a sentence: "a member of group `lab-leads`",
    /// "user `lead@example.org`".
    pub fn who(&self) -> String {
        match self {
            CompiledApprover::Group(g) => format!("a member of group `{g}`"),
            CompiledApprover::User(u) => format!("user `{u}`"),
        }
    }

    /// As the Cedar annotation and messages write it: `group:lab-leads`.
    pub fn text(&self) -> String {
        match self {
            CompiledApprover::Group(g) => format!("group:{g}"),
            CompiledApprover::User(u) => format!("user:{u}"),
        }
    }
}

/// How far one approval reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompiledGrant {
    /// The approved call only.
    Once,
    /// Calls within this many seconds of the approval.
    ForSecs(u64),
    /// Calls in the approved call's session.
    Session,
    /// This many calls, the approved one included.
    Calls(u64),
}

impl CompiledGrant {
    /// As the Cedar annotation writes it: `once`, `1800s`, `session`, `5 calls`.
    pub fn text(self) -> String {
        match self {
            CompiledGrant::Once => "once".to_string(),
            CompiledGrant::ForSecs(s) => format!("{s}s"),
            CompiledGrant::Session => "session".to_string(),
            CompiledGrant::Calls(n) => format!("{n} calls"),
        }
    }
}

/// Everything the engine needs to know about one rule besides its Cedar.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompiledRule {
    pub id: String,
    pub kind: RuleKind,
    pub mode: Mode,
    /// `file:line:col` of the rule name.
    pub location: String,
    #[serde(skip)]
    pub span: Span,
    pub reason: Option<Template>,
    pub reason_source: Option<String>,
    pub limit: Option<CompiledLimit>,
    /// For a require-confirm rule: who approves, and what one approval
    /// lets through (the caller, once, when the rule says nothing).
    pub approval: Option<CompiledApproval>,
    /// For a budget: what it sums.
    pub budget: Option<CompiledBudget>,
    /// `None` means any server.
    pub servers: Option<Vec<String>>,
    /// `None` means any tool.
    pub tools: Option<Vec<String>>,
    /// The emitted Cedar text of the rule's policy.
    pub cedar: String,
    /// For caps and rates: the Cedar of the policy that says whether a call
    /// counts towards the limit.
    pub counting_cedar: Option<String>,
    /// The rule's policy without its `server` and `tool` matchers (same id,
    /// effect and annotations). Equivalent to [`CompiledRule::cedar`] for
    /// every call whose server and tool the rule's patterns match, which is
    /// exactly the calls whose slice holds the rule; the engine evaluates
    /// slices with these smaller policies.
    #[serde(skip)]
    pub core_cedar: String,
    /// [`CompiledRule::counting_cedar`] without the matchers, likewise.
    #[serde(skip)]
    pub core_counting_cedar: Option<String>,
    /// The tree [`CompiledRule::core_cedar`] is printed from: what
    /// [`CompiledRule::core_policy`] builds the policy from.
    #[serde(skip)]
    pub(crate) core: CPolicy,
    /// The tree of [`CompiledRule::core_counting_cedar`].
    #[serde(skip)]
    pub(crate) core_counting: Option<CPolicy>,
    /// The arguments this rule reads (a subset of the set's `arg_fields`).
    pub arg_fields: BTreeMap<String, BTreeSet<ArgType>>,
    /// The arguments this rule asks `created by agent` about, each with
    /// its record kind: the engine looks their values up in the record
    /// store under (server, kind, id) and lists in `context.agent_created`
    /// the [`CreatedArg::key`] of those that are agent-created ids.
    pub created_args: BTreeSet<CreatedArg>,
    /// The time zones this rule's `during` windows name: the engine
    /// supplies `context.clock[zone]` (local ISO day and minute) for each.
    pub clock_zones: BTreeSet<String>,
    /// Whether a call the rule matches can stop matching at another time
    /// with nothing else changed ([`Expr::is_time_bound`]): the engine
    /// then says a denial may be lifted at another time, not never.
    pub time_bound: bool,
    /// The quantified tests (`any`/`all`) this rule reads: the engine
    /// evaluates each per element and supplies `context.each[id]`.
    pub each_tests: BTreeSet<EachTest>,
    /// The session labels this rule's condition asks about (`session has
    /// label NAME`): the engine supplies those the session has in
    /// `context.labels`.
    pub labels_read: BTreeSet<String>,
    /// For a `label` rule: how long the label stays on the session once
    /// a call sets it, in seconds.
    pub keep_secs: Option<u64>,
}

impl CompiledRule {
    /// The rule's core policy (id the rule's), built from the compiler's
    /// tree through Cedar's policy tree: the policy
    /// `Policy::parse(Some(id), &self.core_cedar)` would give, without
    /// parsing. Not validated on its own; `tests/core_policies.rs` holds
    /// every core strictly valid against its set's schema.
    pub fn core_policy(&self) -> Result<Policy, BuildError> {
        PolicyBuilder::new()?.policy(&self.core, &self.id)
    }

    /// For caps and rates, the core of the counting policy (id
    /// `<rule>/match`), likewise; `None` for other rules.
    pub fn core_counting_policy(&self) -> Option<Result<Policy, BuildError>> {
        let core = self.core_counting.as_ref()?;
        let id = format!("{}{COUNTING_SUFFIX}", self.id);
        Some(PolicyBuilder::new().and_then(|mut b| b.policy(core, &id)))
    }
}

/// One quantified test, `any args.tags == "pii"`: whether the test holds
/// for some (`any`) or every (`all`) element of the list at `pointer`.
/// The engine answers it three-valued in `context.each[id]` as `{t, p}`
/// (definitely true, possibly true); see `docs/language.md`, "Lists".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct EachTest {
    /// The key in `context.each`: the test as `warden fmt` prints it (with
    /// the record kind `created by agent` resolved to, when inferred).
    pub id: String,
    /// `true` for `all`, `false` for `any`.
    pub all: bool,
    /// RFC 6901 pointer of the list, e.g. `/tags`.
    pub pointer: String,
    /// What each element is tested for.
    pub test: ElementTest,
}

/// The test a quantified condition applies to each element of its list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementTest {
    /// `exists`: the element is not `null` (`null` is unknown).
    Exists,
    /// `created by agent`: the element is the id of a record of `kind`
    /// an agent created on the call's server.
    CreatedByAgent { kind: String },
    /// `under "/p"`: the element, a path, is `prefix` (normal form) or
    /// below it; below it only case-folded is unknown.
    Under { prefix: String },
    /// `== v`, `in [..]`: the element is one of `values` (all of one JSON
    /// type), both sides lowercased first when `fold`.
    OneOf {
        values: Vec<ElementValue>,
        fold: bool,
    },
    /// `< n` and the other orderings on a number, `value` in units of
    /// 1/10,000 (Cedar `decimal`'s precision).
    Number { op: Order, value: i64 },
    /// `matches "glob"`, both sides lowercased first when `fold`.
    Matches { glob: String, fold: bool },
    /// `length of` (`size: false`) or `size of` (`size: true`) the element
    /// compared with `value`.
    Measure { size: bool, op: Order, value: i64 },
    /// `!=`: the negation of the inner test.
    Not(Box<ElementTest>),
}

/// A literal an element is compared with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementValue {
    Str(String),
    /// In units of 1/10,000.
    Num(i64),
    Bool(bool),
}

/// A decimal's text (`-1.5`, `3`) in units of 1/10,000, if it has at
/// most four decimals and fits Cedar `decimal`'s range.
pub fn decimal_units(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || frac.len() > 4 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let scaled: i64 = format!("{int}{frac:0<4}").parse().ok()?;
    Some(if negative { -scaled } else { scaled })
}

/// An equality or ordering, `element <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Order {
    /// Whether `left <op> right`.
    pub fn holds<T: Ord>(self, left: T, right: T) -> bool {
        match self {
            Order::Eq => left == right,
            Order::Lt => left < right,
            Order::Le => left <= right,
            Order::Gt => left > right,
            Order::Ge => left >= right,
        }
    }
}

/// One `created by agent` question: is the argument at `pointer` the id of
/// a record of `kind` that a call on the agent path created?
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct CreatedArg {
    /// The record kind, resolved from `as KIND` or inferred.
    pub kind: String,
    /// The argument's RFC 6901 pointer, e.g. `/sample_id`.
    pub pointer: String,
}

impl CreatedArg {
    /// The element of `context.agent_created` meaning "yes": `kind:pointer`
    /// (a kind name holds no `:`, so the pair reads back unambiguously).
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.pointer)
    }
}

/// An annotation declaration (`tool "delete_*" is destructive`): what the
/// operator says the matching tools are, as MCP hints (`None`: the
/// declaration says nothing of that hint).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompiledAnnotation {
    /// `file:line:col` of the declaration.
    pub location: String,
    /// `None` means any server.
    pub servers: Option<Vec<String>>,
    /// Tool names or globs.
    pub tools: Vec<String>,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl CompiledAnnotation {
    /// Whether this declaration speaks of `tool` on `server`.
    pub fn covers(&self, server: &str, tool: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| crate::glob::glob_matches(p, server)))
            && self
                .tools
                .iter()
                .any(|p| crate::glob::glob_matches(p, tool))
    }
}

/// A `records` declaration: which tools create records of a kind and where
/// the new record's id is in their result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompiledRecords {
    /// The record kind, e.g. `sample`.
    pub kind: String,
    /// `file:line:col` of the kind's name.
    pub location: String,
    /// `None` means any server.
    pub servers: Option<Vec<String>>,
    /// (tool name or glob, RFC 6901 pointer into `structuredContent`).
    pub creators: Vec<(String, String)>,
}

impl CompiledRecords {
    /// Whether this declaration keeps records of `server`.
    pub fn covers_server(&self, server: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| crate::glob::glob_matches(p, server)))
    }

    /// The pointer to the id in the result of `tool` on `server`, if this
    /// declaration says that tool creates records.
    pub fn id_pointer(&self, server: &str, tool: &str) -> Option<&str> {
        if !self.covers_server(server) {
            return None;
        }
        self.creators
            .iter()
            .find(|(t, _)| crate::glob::glob_matches(t, tool))
            .map(|(_, p)| p.as_str())
    }
}

/// A compiled, validated policy set.
#[derive(Debug, Clone)]
pub struct CompiledPolicySet {
    pub(crate) default: Effect,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) schema: Schema,
    pub(crate) schema_text: String,
    pub(crate) enforced: PolicySet,
    pub(crate) shadow: PolicySet,
    pub(crate) counting: PolicySet,
    pub(crate) labels: PolicySet,
    pub(crate) arg_fields: BTreeMap<String, BTreeSet<ArgType>>,
    pub(crate) records: Vec<CompiledRecords>,
    pub(crate) annotations: Vec<CompiledAnnotation>,
    pub(crate) clock_zones: BTreeSet<String>,
}

impl CompiledPolicySet {
    /// The `records` declarations, in source order.
    pub fn records(&self) -> &[CompiledRecords] {
        &self.records
    }
    /// The annotation declarations (the operator's word on tools), in
    /// source order: for each hint, the first that covers a tool decides.
    pub fn stated_annotations(&self) -> &[CompiledAnnotation] {
        &self.annotations
    }
    pub fn default_effect(&self) -> Effect {
        self.default
    }
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }
    pub fn rule(&self, id: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.id == id)
    }
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
    /// The schema in Cedar's human-readable schema syntax.
    pub fn schema_text(&self) -> &str {
        &self.schema_text
    }
    /// The policies that decide: enforced rules plus the default.
    pub fn enforced_policies(&self) -> &PolicySet {
        &self.enforced
    }
    /// Shadow-mode rules: evaluated and logged, never enforced.
    pub fn shadow_policies(&self) -> &PolicySet {
        &self.shadow
    }
    /// One permit per cap or rate rule (id `<rule>/match`), satisfied when a
    /// call counts towards that rule's limit.
    pub fn counting_policies(&self) -> &PolicySet {
        &self.counting
    }
    /// One permit per `label` rule (id: the rule's), satisfied when a
    /// call sets that label on its session. Never part of a decision.
    pub fn label_policies(&self) -> &PolicySet {
        &self.labels
    }
    /// Every argument a rule reads, by JSON pointer, with the types it is
    /// read as. The engine fills `context.args` from exactly these.
    pub fn arg_fields(&self) -> &BTreeMap<String, BTreeSet<ArgType>> {
        &self.arg_fields
    }
    /// Every time zone a `during` window names (IANA names as written,
    /// each known to the bundled zone database when the set was checked).
    pub fn clock_zones(&self) -> &BTreeSet<String> {
        &self.clock_zones
    }
    /// The whole set as Cedar text, as `warden compile` prints it.
    pub fn cedar_text(&self) -> String {
        let mut out = String::new();
        if self.default == Effect::Allow {
            out.push_str(&crate::compile::default_allow_policy().to_cedar());
            out.push_str("\n\n");
        }
        for r in &self.rules {
            out.push_str(&r.cedar);
            out.push_str("\n\n");
            if let Some(c) = &r.counting_cedar {
                out.push_str(c);
                out.push_str("\n\n");
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
        out
    }
}
