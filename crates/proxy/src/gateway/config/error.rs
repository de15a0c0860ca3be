//! Why a `warden serve` config file is not usable: [`ConfigError`] (the file
//! could not be read, or has problems) and [`Problem`] (one thing wrong at
//! one place in the file, with its help). Rendered by miette with the
//! file's name, line and column.

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceSpan};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Why a config file is not usable.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    /// The file could not be read (missing, a directory, not UTF-8, ...).
    #[error("cannot read the config file `{path}`: {message}")]
    #[diagnostic(help("give `--config` a readable TOML file (see docs/config.md)"))]
    Read { path: String, message: String },
    /// The file was read and has one or more problems, each in `problems`
    /// (sorted by position), rendered below the summary by miette.
    #[error("{}", summary(path, problems))]
    Invalid {
        /// The file as given.
        path: String,
        #[source_code]
        src: NamedSource<Arc<str>>,
        #[related]
        problems: Vec<Problem>,
    },
}

fn summary(path: &str, problems: &[Problem]) -> String {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    format!(
        "`{path}` is not a valid warden config: {errors} problem{}",
        if errors == 1 { "" } else { "s" }
    )
}

impl ConfigError {
    /// The problems found (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }

    /// The file could not be read at all (`warden check` exits 2 then, as
    /// for bad usage, and 1 for problems in a file it read).
    pub fn is_read_error(&self) -> bool {
        matches!(self, ConfigError::Read { .. })
    }
}

/// One problem at one place in the file: a message, the span it is about
/// (a byte range of the file), a short label for that span and, usually,
/// help saying what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Lowercase, user input in backticks.
    pub message: String,
    /// The byte range of the file the problem is about (may be empty: a
    /// missing key is reported at the start of its table).
    pub span: Range<usize>,
    /// What the span shows, e.g. `unknown key`.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Errors make the file unusable; warnings (only from `warden check`'s
    /// extra checks) do not.
    pub severity: Severity,
    /// 1-based line of the span's start, filled in when the problems are
    /// wrapped into a [`ConfigError`].
    pub line: usize,
    /// 1-based column (in characters) of the span's start.
    pub column: usize,
}

impl Problem {
    /// An error at `span`.
    pub fn error(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            span,
            label: label.into(),
            help: None,
            severity: Severity::Error,
            line: 0,
            column: 0,
        }
    }

    /// A warning at `span`.
    pub fn warning(
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(span, message, label)
        }
    }

    /// The same with help.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Makes the problem ready to show: its line and column from the text,
    /// and no control character in its message, label or help.
    pub(super) fn finish(&mut self, text: &str) {
        self.locate(text);
        self.message = for_terminal(&self.message, false);
        self.label = for_terminal(&self.label, false);
        self.help = self.help.as_deref().map(|h| for_terminal(h, true));
    }

    /// Fills in [`Problem::line`] and [`Problem::column`] from the text.
    pub(super) fn locate(&mut self, text: &str) {
        let start = self.span.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        self.line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        self.column = before[line_start..].chars().count() + 1;
    }
}

/// `s` with every control character written as its escape (`\u{1b}`), so
/// that nothing from the file (or from the environment it expands) can
/// drive the terminal a message is shown on; `\n` stays when
/// `keep_newlines` (help text is several lines on purpose).
pub(super) fn for_terminal(s: &str, keep_newlines: bool) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && !(keep_newlines && c == '\n') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The file's text as miette shows it around a span: control characters
/// other than line breaks and tabs replaced by `?`s of the same length in
/// bytes (a span still points at the same text).
pub(super) fn display_source(text: &str) -> Arc<str> {
    if !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Arc::from(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Arc::from(out)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = SourceSpan::from(self.span.start..self.span.end);
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            span,
        ))))
    }
}

/// Several problems found in one file, shown with that file's text: what
/// `warden check` prints for its warnings and for problems found after the
/// config itself parsed (a policy path that does not load, a key file that
/// is not a key).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{title}")]
pub struct Findings {
    pub title: String,
    pub severity: Severity,
    pub src: NamedSource<Arc<str>>,
    pub problems: Vec<Problem>,
}

impl Diagnostic for Findings {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}
