//! The diagnostic type every stage reports with: a [`Code`] naming the lint
//! rule, a severity, a lowercase message, labelled spans into the .policy
//! source, advice in `help`, and related notes. It implements
//! [`miette::Diagnostic`], so the CLI renders it with source snippets; the
//! JSON and SARIF outputs read the same data through its accessors.
//!
//! Constructors, one per rule, live in [`crate::lints`].

use crate::source::{Sources, Span};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $sev:ident, $summary:literal; )*) => {
        /// Every finding warden can report, with a stable id (used in JSON and
        /// SARIF output and in docs/language.md).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $(#[$doc])* $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// Stable kebab-case id, e.g. `duplicate-rule-name`.
            pub fn id(self) -> &'static str {
                match self { $( Code::$variant => $id, )* }
            }

            /// The severity a finding of this code has.
            pub fn default_severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// One sentence on what the rule checks.
            pub fn summary(self) -> &'static str {
                match self { $( Code::$variant => $summary, )* }
            }
        }
    };
}

codes! {
    /// The text does not follow the grammar.
    Syntax = "syntax-error", Error, "the file does not follow the .policy grammar";
    /// A string literal with a bad escape sequence.
    InvalidString = "invalid-string", Error, "a string literal holds an escape sequence that does not exist";
    /// A number that does not fit.
    NumberOutOfRange = "number-out-of-range", Error, "a number is too large, or has more decimals than can be compared exactly";
    /// No `default allow` / `default deny` in the whole set.
    MissingDefault = "missing-default", Error, "a policy set must say what happens to calls no rule decides";
    /// More than one default.
    ConflictingDefault = "conflicting-default", Error, "a policy set has exactly one default";
    /// Two rules with the same name.
    DuplicateRuleName = "duplicate-rule-name", Error, "rule names are ids and must be unique across the set";
    /// A clause written twice in one rule.
    DuplicateClause = "duplicate-clause", Error, "each clause may appear once per rule";
    /// A `{placeholder}` in a reason that does not exist.
    UnknownPlaceholder = "unknown-placeholder", Error, "a reason refers to a value that no call supplies";
    /// `max 0`.
    ZeroLimit = "zero-limit", Error, "a cap or rate limit of 0 blocks every call; write a deny rule instead";
    /// A rate window of zero or longer than a year.
    InvalidWindow = "invalid-window", Error, "a rate-limit window must be between 1 second and 366 days";
    /// A cap or rate rule without `max`, or a window where none belongs.
    MisplacedLimit = "misplaced-limit", Error, "cap-consecutive takes `max N per SCOPE`, rate-limit takes `max N per WINDOW per SCOPE`, other rules take none";
    /// A comparison whose two sides cannot have the same type.
    TypeMismatch = "type-mismatch", Error, "a comparison can never hold because of the types of its sides";
    /// A glob that no tool or server name can match.
    GlobNeverMatches = "glob-never-matches", Error, "a pattern can never match a name";
    /// Two records declarations with the same kind name.
    DuplicateRecordsName = "duplicate-records-name", Error, "record kinds are named once across the set";
    /// A records declaration without a `created by` line.
    EmptyRecords = "empty-records", Error, "a records declaration names at least one tool that creates records";
    /// A record id pointer that is not an RFC 6901 JSON pointer.
    InvalidJsonPointer = "invalid-json-pointer", Error, "where a record's id is must be an RFC 6901 JSON pointer such as `/sample/id`";
    /// `created by agent` where no records declaration covers the rule's server.
    RecordsNotDeclared = "records-not-declared", Error, "`created by agent` needs a records declaration for the rule's server";
    /// `created by agent as KIND` where no records declaration has that kind.
    UnknownRecordKind = "unknown-record-kind", Error, "`created by agent as KIND` names a kind that a records declaration declares";
    /// `created by agent` without `as KIND` where several kinds could be meant.
    AmbiguousRecordKind = "ambiguous-record-kind", Error, "`created by agent` must name its record kind when several are declared for the rule's servers";
    /// A condition nested deeper than the parser accepts.
    NestingTooDeep = "nesting-too-deep", Error, "a condition nests `(` and `not` at most 32 levels deep";
    /// A condition with more tests than the parser accepts.
    ConditionTooLarge = "condition-too-large", Error, "a condition holds at most 512 tests";
    /// `args.x under "..."` with a prefix that is not an absolute, normal path.
    InvalidPathPrefix = "invalid-path-prefix", Error, "`under` takes an absolute path without `*`, `\\`, `%XX` escapes, control characters or `..` above the root";
    /// `any`/`all` in front of a test that reads no list argument (`any user == "x"`).
    QuantifierWithoutList = "quantifier-without-list", Error, "`any` and `all` test the elements of a list argument: the test after them reads `args.NAME`";
    /// `ignoring case` on a test other than a string argument's `==`, `!=`, `in` or `matches`.
    IgnoringCaseNotString = "ignoring-case-not-string", Error, "`ignoring case` compares a string argument with strings (`==`, `!=`, `in`, `matches`)";
    /// Emitted Cedar that does not parse or validate: a bug in warden.
    CompilerBug = "compiler-bug", Error, "the compiler produced Cedar that does not validate (a bug in warden)";
    /// A rule that an earlier unconditional deny makes pointless.
    ShadowedRule = "shadowed-rule", Warning, "an earlier unconditional deny already decides every call this rule matches";
    /// An allow rule under `default allow`.
    RedundantAllow = "redundant-allow", Warning, "under `default allow` an allow rule changes nothing";
    /// `args.x matches "/some/*"`: a glob on a path, which `..`, `//` or case bypass.
    PathGlob = "path-glob", Warning, "a `matches` pattern that looks like a path is bypassed by `//`, `.`, `..` and case; use `under`";
    /// `created by agent` without `as KIND`, read as the only kind declared for the rule's servers.
    InferredRecordKind = "inferred-record-kind", Warning, "`created by agent` without `as KIND` takes the only record kind declared for the rule's servers";
    /// A `per agent` cap or rate whose rule does not require `verified agent`.
    UnverifiedAgentLimit = "unverified-agent-limit", Warning, "a `per agent` limit on a declared agent name is evaded by reconnecting under another name";
    /// A `during` window with a time that is not a time of day, `24:00` as its start, or the same start and end.
    InvalidTimeWindow = "invalid-time-window", Error, "a `during` window runs from a time of day (`00:00` to `23:59`) to another, `24:00` ending one at midnight";
    /// A `during` window in a zone the bundled IANA zone database does not know.
    UnknownTimeZone = "unknown-time-zone", Error, "a `during` window names an IANA time zone, spelled as the zone database spells it";
    /// A day a `during` window names twice (`mon-fri,wed`).
    RepeatedDay = "repeated-day", Warning, "a `during` window names each day once";
    /// A limit naming one scope twice (`per user per user`).
    DuplicateScope = "duplicate-scope", Error, "a limit names each scope once";
    /// A cap or rate limit whose `max` is not a whole number.
    FractionalCount = "fractional-count", Error, "caps and rate limits count calls: `max` is a whole number";
    /// A budget without `sum`, or `sum` on another rule kind.
    MisplacedSum = "misplaced-sum", Error, "a budget adds up one argument (`sum args.NAME`); other rules take no `sum`";
    /// `by` or `grant` on a rule that asks nobody.
    MisplacedApproval = "misplaced-approval", Error, "`by` and `grant` belong to `require-confirm` rules";
    /// A grant that holds for no call, longer than a day, for more than 10,000 calls, or `within` on a single call.
    InvalidGrant = "invalid-grant", Error, "a grant holds for 1 to 10,000 calls or up to a day, and `within` needs a grant that outlives its call";
    /// A clause a `label` rule cannot take, or `for` on a rule that sets no label.
    MisplacedLabelClause = "misplaced-label-clause", Error, "a `label` rule takes `server`, `tool`, `when` and `for`; `for` belongs to `label` rules";
    /// A label kept for no time, or longer than 30 days.
    InvalidLabelLife = "invalid-label-life", Error, "a label lasts from 1s to 30d, or `for session`";
    /// `session has label NAME` naming no `label` rule of the set.
    UnknownLabel = "unknown-label", Error, "`session has label` names a `label` rule of the set";
    /// An annotation declaration that claims a hint twice, or hints that contradict (`read-only, destructive`).
    ConflictingAnnotation = "conflicting-annotation", Error, "an annotation declaration says each thing once, and a read-only tool is neither destructive nor non-idempotent";
    /// A rule on a tool annotation, for tools the operator says nothing of: it trusts the upstream's claim about itself.
    UpstreamAnnotation = "upstream-annotation", Warning, "a rule on `tool.destructive` and the like reads the upstream's own claim unless the operator states it (`tool \"x\" is destructive`)";
    /// A `server` pattern no server of the pin file matches (`warden lint --tools`).
    UnknownServer = "unknown-server", Warning, "a `server` pattern matches a server that exists";
    /// A `tool` pattern no tool of its servers in the pin file matches (`warden lint --tools`).
    UnknownTool = "unknown-tool", Warning, "a `tool` pattern matches a tool that exists";
    /// `by group ""` or `by user ""`.
    EmptyApprover = "empty-approver", Error, "an approver names a group or a user";
    /// A `per model` limit whose rule does not require `verified model`.
    UnverifiedModelLimit = "unverified-model-limit", Warning, "a `per model` limit on a declared model name is evaded by declaring another name";
    /// A tool-flag test whose result on a tool without that hint comes from a default that lets calls through.
    HintDefault = "hint-default", Warning, "a rule on a tool annotation lets through tools that do not declare the hint";
    /// `args.paths."*"`: a path segment holding `*`, which names a field, not a pattern.
    WildcardSegment = "wildcard-segment", Error, "an argument path's segments are field names: a `*` in one matches only a field named so; test list elements with `any` / `all`";
    /// `args.content.length` where the set reads `args.content` as a string, number or boolean.
    FieldOfScalar = "field-of-scalar", Warning, "a test reads a field of an argument that another test of the same calls reads as a string, number or boolean, which has no fields";
    /// `args.content.length > 1000`: a field named like a measure, compared as a number.
    MeasureAsField = "measure-as-field", Warning, "`args.x.length` reads a field named `length`; the length or size of a value is `length of args.x` / `size of args.x`";
    /// A test that holds for no call: `length of args.x < 0`, `args.x == "a" and args.x == "b"`, `args.x == "a" and args.x.y == 1`.
    NeverMatches = "never-matches", Error, "a test, or a conjunction of tests, holds for no call";
    /// A cap-consecutive whose every matching call an unconditional require-confirm confirms.
    CapEndedByConfirm = "cap-ended-by-confirm", Warning, "a confirmed call ends a streak, so a cap on calls that always need confirmation never reaches its max";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A labelled span. The first label of a diagnostic is its primary location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    span: Span,
    text: Option<String>,
}

impl Label {
    pub fn span(&self) -> Span {
        self.span
    }
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

/// One finding. Build it with a constructor in [`crate::lints`].
#[derive(Debug, Clone)]
pub struct Diagnostic {
    code: Code,
    severity: Severity,
    message: String,
    help: Option<String>,
    labels: Vec<Label>,
    related: Vec<Diagnostic>,
    source: Option<miette::NamedSource<Arc<str>>>,
    location: Option<Location>,
    /// A note attached to another diagnostic (rendered as advice).
    is_note: bool,
}

/// Where a diagnostic points, resolved to a file name and 1-based positions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Diagnostic {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            help: None,
            labels: Vec::new(),
            related: Vec::new(),
            source: None,
            location: None,
            is_note: false,
        }
    }

    pub(crate) fn with_label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: Some(text.into()),
        });
        self
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A note about another place. In the same file it becomes a second
    /// label; in another file a related diagnostic (miette renders labels
    /// against one source only).
    pub(crate) fn with_note_at(mut self, span: Span, text: impl Into<String>) -> Self {
        let text = text.into();
        match self.labels.first() {
            Some(primary) if primary.span.file == span.file => self.labels.push(Label {
                span,
                text: Some(text),
            }),
            _ => {
                let mut note = Diagnostic::new(self.code, text.clone()).with_label(span, text);
                note.is_note = true;
                self.related.push(note);
            }
        }
        self
    }

    /// Resolves file names and line/column for the primary label and every
    /// related note. Called once all spans are known.
    pub(crate) fn resolve(mut self, sources: &Sources) -> Self {
        if let Some(primary) = self.labels.first()
            && (primary.span.file.0 as usize) < sources.len()
        {
            let file = sources.get(primary.span.file);
            let (line, column) = file.line_col(primary.span.start);
            let (end_line, end_column) = file.line_col(primary.span.end);
            self.location = Some(Location {
                file: file.name().to_string(),
                line,
                column,
                end_line,
                end_column,
            });
            self.source = Some(file.named_source());
        }
        self.related = self
            .related
            .into_iter()
            .map(|r| r.resolve(sources))
            .collect();
        self
    }

    /// Rewrites the message, help and label texts (crate::terminal).
    pub(crate) fn map_texts(&mut self, f: impl Fn(&str) -> String) {
        self.message = f(&self.message);
        self.help = self.help.as_deref().map(&f);
        for l in &mut self.labels {
            l.text = l.text.as_deref().map(&f);
        }
    }

    /// Moves every label's offsets (crate::terminal).
    pub(crate) fn map_spans(&mut self, f: impl Fn(usize) -> usize) {
        for l in &mut self.labels {
            l.span.start = f(l.span.start);
            l.span.end = f(l.span.end);
        }
    }

    pub(crate) fn map_related(&mut self, f: impl Fn(&Diagnostic) -> Diagnostic) {
        self.related = self.related.iter().map(f).collect();
    }

    pub(crate) fn source_mut(&mut self) -> Option<&mut miette::NamedSource<Arc<str>>> {
        self.source.as_mut()
    }

    pub fn code(&self) -> Code {
        self.code
    }
    pub fn severity(&self) -> Severity {
        self.severity
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }
    pub fn related_notes(&self) -> &[Diagnostic] {
        &self.related
    }
    /// The primary location, once resolved against the sources.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.is_note {
            return None;
        }
        Some(Box::new(self.code.id()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        if self.is_note {
            return Some(miette::Severity::Advice);
        }
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            let span: miette::SourceSpan = l.span.into();
            if i == 0 {
                miette::LabeledSpan::new_primary_with_span(l.text.clone(), span)
            } else {
                miette::LabeledSpan::new_with_span(l.text.clone(), span)
            }
        })))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

/// All findings of one lint or compile run, errors and warnings together.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Resolves every diagnostic's location and sorts them by file and position.
    pub(crate) fn resolve(self, sources: &Sources) -> Self {
        let mut v: Vec<Diagnostic> = self.0.into_iter().map(|d| d.resolve(sources)).collect();
        v.sort_by_key(|d| {
            d.primary_span()
                .map(|s| (s.file, s.start, s.end))
                .unwrap_or_default()
        });
        Diagnostics(v)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
