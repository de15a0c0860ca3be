//! The syntax tree of a .policy file. Every node carries the [`Span`] of the
//! source text it came from, so that every later stage (checker, compiler,
//! engine) can point back at what the policy author wrote.

use crate::source::{FileId, Span};
use std::fmt;

mod approval;
mod during;
mod scope;
mod size;
pub use approval::*;
pub use during::*;
pub use scope::*;
pub use size::*;

/// One parsed .policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    pub file: FileId,
    pub items: Vec<Item>,
    /// Comments in source order, kept only so that `warden fmt` can reprint them.
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Default(DefaultDecl),
    Records(RecordsDecl),
    /// `tool "delete_*" is destructive`: the operator's word on tools.
    Annotation(AnnotationDecl),
    Rule(Rule),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Default(d) => d.span,
            Item::Records(r) => r.span,
            Item::Annotation(a) => a.span,
            Item::Rule(r) => r.span,
        }
    }
}

/// `default allow` or `default deny`: what happens to a call no rule decides.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultDecl {
    pub effect: Effect,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn keyword(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// `records sample { server "genomics" created by tool "create_sample" at "/sample/id" }`:
/// which tools create records of a kind, and where the new record's id is
/// in the tool's result. The proxy stores what such calls create, so that
/// `args.x created by agent` can tell records an agent made.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsDecl {
    /// The record kind, e.g. `sample`.
    pub name: Spanned<String>,
    /// Clauses in the order the author wrote them.
    pub clauses: Vec<RecordsClause>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordsClause {
    /// `server "genomics"`: the servers whose tools these are (any if absent).
    Server(PatternList),
    /// `created by tool "create_sample" at "/sample/id"`
    CreatedBy(CreatedBy),
}

impl RecordsClause {
    pub fn span(&self) -> Span {
        match self {
            RecordsClause::Server(p) => p.span,
            RecordsClause::CreatedBy(c) => c.span,
        }
    }
}

/// One creating tool and the RFC 6901 JSON pointer to the id in its
/// result's `structuredContent`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedBy {
    /// A tool name or glob.
    pub tool: Spanned<String>,
    pub pointer: Spanned<String>,
    pub span: Span,
}

/// `tool "delete_*" on server "genomics" is destructive, not idempotent`:
/// what the operator says the matching tools are. Rules' `tool.destructive`
/// and friends read it instead of the upstream's annotations (which are
/// the upstream's claim about itself).
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationDecl {
    pub tools: PatternList,
    /// `on server ...`: the servers whose tools these are (any if absent).
    pub servers: Option<PatternList>,
    /// In the order written.
    pub claims: Vec<Claim>,
    pub span: Span,
}

/// `destructive` or `not open-world` in an annotation declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    pub flag: ToolFlag,
    pub value: bool,
    pub span: Span,
}

impl Claim {
    /// As `warden fmt` writes it: `destructive`, `not open-world`.
    pub fn text(&self) -> String {
        let word = self.flag.claim_word();
        if self.value {
            word.to_string()
        } else {
            format!("not {word}")
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The comment text including its leading `#`, without the line break.
    pub text: String,
    pub span: Span,
}

/// A named rule: `deny agents-never-delete { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: Spanned<RuleKind>,
    pub name: Spanned<String>,
    /// Clauses in the order the author wrote them.
    pub clauses: Vec<Clause>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    Allow,
    Deny,
    RequireConfirm,
    CapConsecutive,
    RateLimit,
    /// Sums a numeric argument of matching calls over a window.
    Budget,
    /// Labels the session when a matching call is forwarded; decides
    /// nothing itself (`session has label` reads it).
    Label,
}

impl RuleKind {
    pub const ALL: [RuleKind; 7] = [
        RuleKind::Allow,
        RuleKind::Deny,
        RuleKind::RequireConfirm,
        RuleKind::CapConsecutive,
        RuleKind::RateLimit,
        RuleKind::Budget,
        RuleKind::Label,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
            RuleKind::RequireConfirm => "require-confirm",
            RuleKind::CapConsecutive => "cap-consecutive",
            RuleKind::RateLimit => "rate-limit",
            RuleKind::Budget => "budget",
            RuleKind::Label => "label",
        }
    }

    /// Rules whose decision reads state the engine keeps (a counter or a
    /// sum), and that have a counting policy.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            RuleKind::CapConsecutive | RuleKind::RateLimit | RuleKind::Budget
        )
    }

    /// Rules that restrict (compile to a Cedar `forbid`).
    pub fn is_restriction(self) -> bool {
        !matches!(self, RuleKind::Allow | RuleKind::Label)
    }

    /// Rules that take part in the decision (every kind but `label`).
    pub fn decides(self) -> bool {
        self != RuleKind::Label
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A value with the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// `server "genomics"` or `server ["a", "b-*"]`
    Server(PatternList),
    /// `tool "delete_*"` or `tool ["list_samples", "get_*"]`
    Tool(PatternList),
    /// `when <condition>`
    When(Expr),
    /// `reason "..."`
    Reason(Spanned<String>),
    /// `mode shadow` or `mode enforce`
    Mode(Spanned<Mode>),
    /// `max 3 per session` or `max 10 per 1h per user`
    Limit(Limit),
    /// `sum args.estimated_cost`: what a budget adds up.
    Sum(ArgPath),
    /// `by group "lab-leads"`: who approves a require-confirm rule's call.
    Approver(Approver),
    /// `grant for 30m within args.sample_id`: what one approval lets through.
    Grant(Grant),
    /// `for 8h` or `for session`: how long a `label` rule's label lasts.
    Keep(Spanned<Keep>),
}

/// How long a session label lasts once set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keep {
    /// As long as the session (at most [`Keep::SESSION_SECS`]).
    Session,
    /// A fixed time after the call that set it (set again: renewed).
    For(Duration),
}

impl Keep {
    /// How long a session's label is kept at most: the state store cannot
    /// tell when a session ends, so `for session` is this long (a new
    /// session has a new id and starts without labels).
    pub const SESSION_SECS: u64 = 30 * 86_400;

    pub fn secs(self) -> u64 {
        match self {
            Keep::Session => Keep::SESSION_SECS,
            Keep::For(d) => d.as_secs(),
        }
    }

    pub fn text(self) -> String {
        match self {
            Keep::Session => "for session".to_string(),
            Keep::For(d) => format!("for {d}"),
        }
    }
}

impl Clause {
    pub fn span(&self) -> Span {
        match self {
            Clause::Server(p) | Clause::Tool(p) => p.span,
            Clause::When(e) => e.span(),
            Clause::Reason(s) => s.span,
            Clause::Mode(m) => m.span,
            Clause::Limit(l) => l.span,
            Clause::Sum(p) => p.span,
            Clause::Approver(a) => a.span,
            Clause::Grant(g) => g.span,
            Clause::Keep(k) => k.span,
        }
    }

    pub fn keyword(&self) -> &'static str {
        match self {
            Clause::Server(_) => "server",
            Clause::Tool(_) => "tool",
            Clause::When(_) => "when",
            Clause::Reason(_) => "reason",
            Clause::Mode(_) => "mode",
            Clause::Limit(_) => "max",
            Clause::Sum(_) => "sum",
            Clause::Approver(_) => "by",
            Clause::Grant(_) => "grant",
            Clause::Keep(_) => "for",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Shadow,
}

/// One or more glob patterns; the clause's span covers the whole clause.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternList {
    pub patterns: Vec<Spanned<String>>,
    /// Whether the author wrote brackets (kept so that fmt reprints the same form).
    pub bracketed: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The number as written: a count of calls for caps and rates (the
    /// checker wants a whole number), an amount for budgets.
    pub max: Spanned<String>,
    /// For rate-limit and budget: the length of the window.
    pub window: Option<Spanned<Duration>>,
    /// `per user per tool`: one or more scopes, in the order written.
    pub scopes: Vec<Spanned<Scope>>,
    pub span: Span,
}

impl Limit {
    /// The scopes as a set (a duplicate is the checker's to report).
    pub fn scope_set(&self) -> ScopeSet {
        self.scopes.iter().map(|s| s.node).collect()
    }
    /// `max` as a whole count, if it is one.
    pub fn whole_max(&self) -> Option<u64> {
        if self.max.node.bytes().all(|b| b.is_ascii_digit()) {
            self.max.node.parse().ok()
        } else {
            None
        }
    }
}

/// A window length as written, e.g. `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u64,
    pub unit: DurationUnit,
}

impl Duration {
    /// Seconds, saturating: an absurd window is caught by the checker.
    pub fn as_secs(self) -> u64 {
        self.amount.saturating_mul(self.unit.secs())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl DurationUnit {
    pub fn secs(self) -> u64 {
        match self {
            DurationUnit::Seconds => 1,
            DurationUnit::Minutes => 60,
            DurationUnit::Hours => 3600,
            DurationUnit::Days => 86_400,
        }
    }
    pub fn suffix(self) -> char {
        match self {
            DurationUnit::Seconds => 's',
            DurationUnit::Minutes => 'm',
            DurationUnit::Hours => 'h',
            DurationUnit::Days => 'd',
        }
    }
}

/// A condition. `And` and `Or` are n-ary and never directly contain a node of
/// their own kind: the parser flattens `(a and b) and c` to `a and b and c`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>, Span),
    And(Vec<Expr>, Span),
    Not(Box<Expr>, Span),
    Atom(Atom, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Or(_, s) | Expr::And(_, s) | Expr::Not(_, s) | Expr::Atom(_, s) => *s,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Bool(bool),
    /// `via agent`: the call came through the agent path (an MCP proxy).
    ViaAgent,
    /// `via server "name"`: the call came through the named MCP server.
    ViaServer(Spanned<String>),
    /// `tool.destructive` and friends: the tool's MCP annotations.
    ToolFlag(ToolFlag),
    /// `user in group "admins"`
    InGroup(Spanned<String>),
    /// `args.sample_id exists`
    Exists(ArgPath),
    /// `args.sample_id created by agent [as sample]`: the argument's value
    /// is the id of a record of that kind that a call on the agent path
    /// created on this server. Without `as`, the kind is the only one
    /// declared for the rule's servers (see `record_kind`).
    CreatedByAgent(ArgPath, Option<Spanned<String>>),
    /// `verified user` and friends: warden verified that identity attribute
    /// (a checked bearer token) rather than took it as declared.
    Verified(VerifiedField),
    /// `subject <op> literal`
    Compare(Subject, Spanned<CmpOp>, Literal),
    /// `subject in [literal, ...]`
    In(Subject, Vec<Literal>),
    /// `subject matches "glob*"`
    Matches(Subject, Spanned<String>),
    /// `args.path under "/restricted"`: the argument, normalised as an
    /// absolute path ([`crate::paths`]), is the prefix or inside it.
    Under(ArgPath, Spanned<String>),
    /// `during weekdays 08:00-18:00 "Europe/Berlin"`: the call's time, in
    /// that zone, is inside the window.
    During(During),
    /// `any args.ids created by agent`, `all args.paths under "/tmp"`: the
    /// inner test (whose argument path names the list) holds for some or
    /// for every element of the list.
    Each(Spanned<Quantifier>, Box<Atom>),
    /// `args.sql matches "*drop table*" ignoring case`: the inner
    /// comparison (`==`, `!=`, `in` or `matches` with strings) with both
    /// sides case-folded.
    IgnoringCase(Box<Atom>),
    /// `session has label read-private`: a `label` rule of that name
    /// labelled the call's session (and the label has not expired).
    SessionLabel(Spanned<String>),
}

/// `any` or `all` in front of a list argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantifier {
    Any,
    All,
}

impl Quantifier {
    pub fn keyword(self) -> &'static str {
        match self {
            Quantifier::Any => "any",
            Quantifier::All => "all",
        }
    }
}

/// The identity attributes `verified` can ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifiedField {
    User,
    Groups,
    Agent,
    Model,
}

impl VerifiedField {
    pub const ALL: [VerifiedField; 4] = [
        VerifiedField::User,
        VerifiedField::Groups,
        VerifiedField::Agent,
        VerifiedField::Model,
    ];

    /// The keyword, also the attribute of `context.verified` it reads.
    pub fn keyword(self) -> &'static str {
        match self {
            VerifiedField::User => "user",
            VerifiedField::Groups => "groups",
            VerifiedField::Agent => "agent",
            VerifiedField::Model => "model",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolFlag {
    ReadOnly,
    Destructive,
    Idempotent,
    OpenWorld,
}

impl ToolFlag {
    pub fn keyword(self) -> &'static str {
        match self {
            ToolFlag::ReadOnly => "read_only",
            ToolFlag::Destructive => "destructive",
            ToolFlag::Idempotent => "idempotent",
            ToolFlag::OpenWorld => "open_world",
        }
    }
    /// The word an annotation declaration writes (`tool "x" is read-only`).
    pub fn claim_word(self) -> &'static str {
        match self {
            ToolFlag::ReadOnly => "read-only",
            ToolFlag::Destructive => "destructive",
            ToolFlag::Idempotent => "idempotent",
            ToolFlag::OpenWorld => "open-world",
        }
    }
    /// The MCP annotation this flag reads.
    pub fn mcp_annotation(self) -> &'static str {
        match self {
            ToolFlag::ReadOnly => "readOnlyHint",
            ToolFlag::Destructive => "destructiveHint",
            ToolFlag::Idempotent => "idempotentHint",
            ToolFlag::OpenWorld => "openWorldHint",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Arg(ArgPath),
    Identity(Spanned<IdentityField>),
    /// `length of args.x`: characters of a string, elements of a list.
    Length(ArgPath, Span),
    /// `size of args.x`: bytes of the argument (a string's UTF-8, any
    /// other value's JSON text).
    Size(ArgPath, Span),
}

impl Subject {
    pub fn span(&self) -> Span {
        match self {
            Subject::Arg(p) => p.span,
            Subject::Identity(i) => i.span,
            Subject::Length(_, s) | Subject::Size(_, s) => *s,
        }
    }
    /// The argument the subject reads, if any.
    pub fn arg(&self) -> Option<&ArgPath> {
        match self {
            Subject::Arg(p) | Subject::Length(p, _) | Subject::Size(p, _) => Some(p),
            Subject::Identity(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityField {
    User,
    Agent,
    Model,
}

impl IdentityField {
    pub fn keyword(self) -> &'static str {
        match self {
            IdentityField::User => "user",
            IdentityField::Agent => "agent",
            IdentityField::Model => "model",
        }
    }
}

/// `args.a.b`: a path into the tool call's JSON arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgPath {
    pub segments: Vec<String>,
    pub span: Span,
}

impl ArgPath {
    /// The RFC 6901 JSON pointer to this argument, e.g. `/sample/id`. The
    /// engine and the compiled Cedar name arguments by this pointer.
    pub fn json_pointer(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            out.push_str(&seg.replace('~', "~0").replace('/', "~1"));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    /// A whole number.
    Int(i64),
    /// A number with a fractional part, kept as written (at most 4 decimals are
    /// meaningful to Cedar's `decimal`; the checker enforces that).
    Decimal(String),
    Bool(bool),
    /// `100 KB`: a number of bytes with its unit, as written.
    Size(ByteSize),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Int(_) | Value::Decimal(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Size(_) => "size",
        }
    }
}
