//! The decision log: one JSON object per line for every decided call,
//! written to a file (appended, created if missing) or any writer. A line
//! says who called what through which path, what was decided under which
//! policy version and why, what shadow rules would have done, and (filled
//! in by the proxy) how the upstream call went.
//!
//! It is a write-ahead log for forwarded calls: the decision line is
//! written and flushed ([`DecisionLog::write_decision`]) before the call
//! goes upstream, and a caller that gets an error does not forward it;
//! how the upstream call went is appended afterwards as a second, shorter
//! line ([`DecisionLog::write_outcome`]: `"event": "outcome"`, the same
//! `decision_id`, `upstream`). A call warden never forwarded has one line.
//! Flushed means handed to the operating system (`write` returned): the
//! line survives warden crashing, not the machine losing power; opened
//! with [`LogOptions::fsync`], a call also waits for `fdatasync`, and the
//! line survives that too.
//!
//! One writer writes the file, with group commit (`log::writer`): the
//! lines of all callers waiting at a moment go out in one `write(2)` and,
//! with fsync, one `fdatasync`, and each caller returns only once its
//! group did. [`DecisionLog::commit_decision`] hands a line over without
//! blocking the thread (a future to await).
//!
//! Each line carries the hash of the line before it, and signed
//! checkpoints seal the chain every so many lines and when the log closes
//! ([`chain`]); a file can rotate by size, the chain running on into the
//! next file; [`verify`] checks a chain and says where it breaks.
//!
//! An audit log that loses lines quietly is worse than none, so every
//! write and flush error is returned to the caller as a [`LogError`]; what
//! to do then (refuse calls, alert) is the caller's decision. Arguments are
//! logged with configured keys redacted at any depth, then each value too
//! big to log whole as its hash, size and prefix ([`bound`]).

use crate::call::CallContext;
use crate::engine::{Decided, Outcome, Retry, ShadowFinding};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod bound;
pub mod chain;
mod rotate;
pub mod verify;
mod writer;

pub use bound::{DEFAULT_MAX_VALUE_BYTES, ELIDED_KEY, MIN_MAX_VALUE_BYTES};
pub use chain::{CheckpointSigner, CheckpointVerifier};
pub use writer::Commit;
use writer::{Plain, Seal, SinkSetup, Writer};

/// Lines between two signed checkpoints unless configured otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

/// What replaces a redacted argument's value.
pub const REDACTED: &str = "[redacted]";

/// How the forwarded call went upstream, as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamOutcome {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// How a decision log file is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Each call also waits for `fdatasync` of its line (one per group of
    /// lines written together), so the line survives a power loss. Off by
    /// default: then a line survives warden crashing, not the machine.
    pub fsync: bool,
    /// Rotate the file once it holds this many bytes: it is renamed to the
    /// next free `<path>.NNNNNN` and a new file continues the chain. `None`
    /// (the default): never.
    pub rotate_bytes: Option<u64>,
}

/// Why a decision could not be logged.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum LogError {
    #[error("cannot open the decision log `{}`: {message}", path.display())]
    #[diagnostic(help(
        "check that the directory exists and that warden may create and append to the file"
    ))]
    Open { path: PathBuf, message: String },
    #[error("cannot write to the decision log {target}: {message}")]
    #[diagnostic(help(
        "decisions are not being recorded; free disk space, fix the file's permissions or point the log elsewhere"
    ))]
    Write { target: String, message: String },
    #[error("cannot encode a decision log line: {message}")]
    #[diagnostic(help("this is a bug in warden; please report it with the call that caused it"))]
    Encode { message: String },
}

/// A JSON Lines decision log. Safe to share between threads; lines are
/// written whole, by one writer, in the order they are handed over.
pub struct DecisionLog {
    out: Writer,
    /// Lower-cased argument keys whose values are never logged.
    redact: Vec<String>,
    /// The most bytes one argument value takes in a line ([`bound`]).
    max_value: usize,
    /// Global shadow mode: every decision line says `"mode": "shadow"`.
    shadow_mode: bool,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("target", &self.out.target())
            .field("fsync", &self.out.fsyncs())
            .field("redact", &self.redact)
            .field("max_value", &self.max_value)
            .finish_non_exhaustive()
    }
}

impl DecisionLog {
    /// Appends to the file at `path`, creating it if needed.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        Self::open_with(path, LogOptions::default())
    }

    /// Appends to the file at `path`, creating it if needed, written as
    /// `options` say.
    /// The hash chain goes on from the file's last line when that line is
    /// chained, and starts anew otherwise.
    pub fn open_with(path: &Path, options: LogOptions) -> Result<Self, LogError> {
        let opened =
            rotate::FileTarget::open(path, options.rotate_bytes).map_err(|e| LogError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let setup = SinkSetup {
            out: Box::new(opened.file),
            chain: opened.chain,
            torn: opened.torn,
            file: Some(opened.target),
        };
        Ok(Self::to_sink(
            setup,
            options.fsync,
            format!("`{}`", path.display()),
        ))
    }

    /// Writes to any writer (stdout, a socket, a test buffer); a line is
    /// logged once `write` and `flush` returned (nothing to fsync). The
    /// chain starts at the first line written.
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        Self::to_out(Box::new(Plain(writer)), false, "(writer)".to_string())
    }

    pub(crate) fn to_out(out: Box<dyn writer::Out>, fsync: bool, target: String) -> Self {
        let setup = SinkSetup {
            out,
            chain: chain::ChainState::genesis(),
            torn: false,
            file: None,
        };
        Self::to_sink(setup, fsync, target)
    }

    fn to_sink(setup: SinkSetup, fsync: bool, target: String) -> Self {
        DecisionLog {
            out: Writer::start(setup, fsync, target),
            redact: Vec::new(),
            max_value: DEFAULT_MAX_VALUE_BYTES,
            shadow_mode: false,
        }
    }

    /// A checkpoint signed by `signer` every `every` lines (at least 1),
    /// before each rotation and when the log is dropped ([`chain`]).
    pub fn sealed_by(self, signer: std::sync::Arc<dyn CheckpointSigner>, every: u64) -> Self {
        self.out.set_seal(Seal {
            signer,
            every: every.max(1),
        });
        self
    }

    /// Whether every line waits for `fdatasync` ([`LogOptions::fsync`]).
    pub fn fsyncs(&self) -> bool {
        self.out.fsyncs()
    }

    /// Argument keys whose values are replaced by `"[redacted]"`, matched
    /// case-insensitively at any depth of the arguments.
    pub fn redacting<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.redact
            .extend(keys.into_iter().map(|k| k.as_ref().to_lowercase()));
        self
    }

    /// Argument values whose JSON text is longer than `max` bytes (at
    /// least [`MIN_MAX_VALUE_BYTES`]) are logged as their SHA-256, size and
    /// prefix ([`bound`]); the default is [`DEFAULT_MAX_VALUE_BYTES`].
    pub fn bounding_values(mut self, max: usize) -> Self {
        self.max_value = max.max(MIN_MAX_VALUE_BYTES);
        self
    }

    /// Global shadow mode: nothing the lines record was enforced, and each
    /// decision line says so (`"mode": "shadow"`).
    pub fn in_shadow_mode(mut self, shadow: bool) -> Self {
        self.shadow_mode = shadow;
        self
    }

    /// Logs one decision, with the upstream outcome once there is one.
    /// The line is flushed (and synced, if configured) before this
    /// returns; any failure is returned.
    pub fn write(
        &self,
        call: &CallContext,
        decided: &Decided,
        upstream: Option<&UpstreamOutcome>,
    ) -> Result<(), LogError> {
        let line = self.line(call, decided, upstream)?;
        self.out.submit(line).wait()
    }

    /// The write-ahead line of a call about to be forwarded (or of any
    /// decision): flushed (and synced, if configured) before this returns.
    /// On an error the caller must not forward the call.
    pub fn write_decision(&self, call: &CallContext, decided: &Decided) -> Result<(), LogError> {
        self.commit_decision(call, decided).wait()
    }

    /// [`DecisionLog::write_decision`] without blocking: the line is
    /// handed to the writer now (so it keeps its place before any later
    /// line), and the [`Commit`] says when it is flushed (and synced).
    /// Until it says `Ok`, the call must not be forwarded.
    pub fn commit_decision(&self, call: &CallContext, decided: &Decided) -> Commit {
        match self.line(call, decided, None) {
            Ok(line) => self.out.submit(line),
            Err(e) => Commit::ready(Err(e)),
        }
    }

    /// Appends how a forwarded call went upstream, as a line of its own
    /// naming the decision (`{"time", "decision_id", "event": "outcome",
    /// "upstream"}`); flushed (and synced) before this returns.
    pub fn write_outcome(
        &self,
        decided: &Decided,
        upstream: &UpstreamOutcome,
    ) -> Result<(), LogError> {
        self.commit_outcome(decided, upstream).wait()
    }

    /// [`DecisionLog::write_outcome`] without blocking.
    pub fn commit_outcome(&self, decided: &Decided, upstream: &UpstreamOutcome) -> Commit {
        let line = serde_json::to_string(&OutcomeLine {
            time: rfc3339(SystemTime::now()),
            decision_id: &decided.id,
            event: "outcome",
            upstream,
        });
        match line {
            Ok(line) => self.out.submit(line),
            Err(e) => Commit::ready(Err(LogError::Encode {
                message: e.to_string(),
            })),
        }
    }

    /// An approval given or refused on the approval page, appended after
    /// the decision line (`decision_id`) that asked for it: who, how
    /// (`channel`), their note, and the grants it created.
    pub fn write_approval(&self, approval: &ApprovalLine<'_>) -> Result<(), LogError> {
        let line = serde_json::to_string(&ApprovalRecord {
            time: rfc3339(SystemTime::now()),
            event: "approval",
            approval,
        });
        match line {
            Ok(line) => self.out.submit(line).wait(),
            Err(e) => Err(LogError::Encode {
                message: e.to_string(),
            }),
        }
    }

    /// A tool whose definition is not the pinned one (`"event":
    /// "tool_changed"`): which, the pinned and the seen digest, and what
    /// warden does (hides it and refuses its calls until approved).
    pub fn write_tool_changed(&self, change: &ToolChangedLine<'_>) -> Result<(), LogError> {
        let line = serde_json::to_string(&ToolChangedRecord {
            time: rfc3339(SystemTime::now()),
            event: "tool_changed",
            change,
        });
        match line {
            Ok(line) => self.out.submit(line).wait(),
            Err(e) => Err(LogError::Encode {
                message: e.to_string(),
            }),
        }
    }

    /// `text` (a reason that may quote the call's arguments) with the
    /// values of redacted arguments replaced, as decision lines show it.
    pub fn scrubbed(&self, call: &CallContext, text: &str) -> String {
        scrub(text, &redacted_values(&call.arguments, &self.redact))
    }

    /// A call's arguments as its decision line holds them: the configured
    /// keys redacted, then each value past the bound as its SHA-256, size
    /// and prefix. The proxy records configured arguments on trace spans
    /// in this form, so a span never shows more than the log.
    pub fn logged_arguments(&self, arguments: &Value) -> Value {
        bound::bound_arguments(redact(arguments, &self.redact), self.max_value)
    }

    /// The JSON line (without its newline) [`DecisionLog::write`] writes.
    pub fn line(
        &self,
        call: &CallContext,
        decided: &Decided,
        upstream: Option<&UpstreamOutcome>,
    ) -> Result<String, LogError> {
        let (decision, rules, reason, retry) = match &decided.outcome {
            Outcome::Allow { rules } => ("allow", rules.clone(), None, None),
            Outcome::Deny(d) => (
                "deny",
                d.rules.iter().map(|h| h.rule.clone()).collect(),
                Some(d.reason.as_str()),
                Some(d.retry),
            ),
            Outcome::Confirm(c) => (
                "confirm",
                c.rules.iter().map(|h| h.rule.clone()).collect(),
                Some(c.message.as_str()),
                None,
            ),
        };
        // A reason may quote a redacted argument (`{args.token}`): scrub
        // the redacted values from every text the line carries.
        let secrets = redacted_values(&call.arguments, &self.redact);
        let reason = reason.map(|r| scrub(r, &secrets));
        let shadow: Vec<ShadowFinding> = decided
            .shadow
            .iter()
            .map(|f| ShadowFinding {
                message: scrub(&f.message, &secrets),
                ..f.clone()
            })
            .collect();
        let record = Line {
            time: rfc3339(SystemTime::now()),
            decision_id: &decided.id,
            policy_version: &decided.policy_version,
            decision,
            mode: self.shadow_mode.then_some("shadow"),
            server: &call.server,
            tool: &call.tool,
            identity: IdentityLine {
                user: &call.identity.user,
                groups: &call.identity.groups,
                agent: call.identity.agent.as_deref(),
                model: call.identity.model.as_deref(),
                verified: call.identity.verified,
            },
            session: &call.session,
            provenance: ProvenanceLine {
                via_agent: call.provenance.via_agent,
                via_server: call.provenance.via_server.as_deref(),
            },
            annotations: &call.annotations,
            stated_annotations: &decided.stated_annotations,
            arguments: self.logged_arguments(&call.arguments),
            confirmed: &call.confirmed,
            grants: &decided.grants,
            labels: &decided.labels,
            rules,
            reason: reason.as_deref(),
            retry,
            shadow: &shadow,
            latency_us: u64::try_from(decided.latency.as_micros()).unwrap_or(u64::MAX),
            upstream,
        };
        serde_json::to_string(&record).map_err(|e| LogError::Encode {
            message: e.to_string(),
        })
    }
}

/// What an approval line says (`"event": "approval"`).
#[derive(Debug, Serialize)]
pub struct ApprovalLine<'a> {
    /// The decision that asked for the approval.
    pub decision_id: &'a str,
    /// The approval's id (its page is `/approvals/<id>`).
    pub approval: &'a str,
    pub approved: bool,
    /// Who approved or refused, as authenticated (or `the caller, by the
    /// link` without bearer auth).
    pub by: &'a str,
    /// `page`.
    pub channel: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub note: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub grants: &'a [crate::engine::GrantUse],
}

/// What a `tool_changed` line says.
#[derive(Debug, Serialize)]
pub struct ToolChangedLine<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    /// The pinned digest (`None`: strict mode, and the pin file has no
    /// such tool).
    pub pinned: Option<&'a str>,
    /// The digest of the definition the upstream listed.
    pub seen: &'a str,
    /// `trust-on-first-use` or `strict`.
    pub mode: &'a str,
}

#[derive(Serialize)]
struct ToolChangedRecord<'a> {
    time: String,
    event: &'static str,
    #[serde(flatten)]
    change: &'a ToolChangedLine<'a>,
}

#[derive(Serialize)]
struct ApprovalRecord<'a> {
    time: String,
    event: &'static str,
    #[serde(flatten)]
    approval: &'a ApprovalLine<'a>,
}

#[derive(Serialize)]
struct OutcomeLine<'a> {
    time: String,
    decision_id: &'a str,
    event: &'static str,
    upstream: &'a UpstreamOutcome,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    decision_id: &'a str,
    policy_version: &'a str,
    decision: &'static str,
    /// `"shadow"` in global shadow mode: the decision was not enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    server: &'a str,
    tool: &'a str,
    identity: IdentityLine<'a>,
    session: &'a str,
    provenance: ProvenanceLine<'a>,
    /// The tool's annotations as the upstream's catalog gave them (what
    /// `tool.read_only` and the like read); absent when it gave none.
    #[serde(skip_serializing_if = "is_unannotated")]
    annotations: &'a crate::call::ToolAnnotations,
    /// What the operator says the tool is (annotation declarations), read
    /// instead of `annotations` where given; absent when nothing is said.
    #[serde(skip_serializing_if = "is_unannotated")]
    stated_annotations: &'a crate::call::ToolAnnotations,
    arguments: Value,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    confirmed: &'a [String],
    /// Grants the decision used or created (`"new": true`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    grants: &'a [crate::engine::GrantUse],
    /// The session labels the call put on its session (`label` rules).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labels: &'a [String],
    /// Allow: the allow rules that matched; deny and confirm: the rules
    /// that denied or ask (empty when nothing allowed the call).
    rules: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<Retry>,
    #[serde(skip_serializing_if = "<[ShadowFinding]>::is_empty")]
    shadow: &'a [ShadowFinding],
    latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a UpstreamOutcome>,
}

#[derive(Serialize)]
struct IdentityLine<'a> {
    user: &'a str,
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    /// Which attributes warden verified (a checked bearer token); absent
    /// when all are declared, so a reader tells the two apart per line.
    #[serde(skip_serializing_if = "crate::call::Verified::is_none")]
    verified: crate::call::Verified,
}

#[derive(Serialize)]
struct ProvenanceLine<'a> {
    via_agent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_server: Option<&'a str>,
}

fn is_unannotated(a: &&crate::call::ToolAnnotations) -> bool {
    **a == crate::call::ToolAnnotations::default()
}

/// A copy of `value` with the values of `keys` (lower-cased) replaced, in
/// objects at any depth, arrays included.
fn redact(value: &Value, keys: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if keys.contains(&k.to_lowercase()) {
                        Value::String(REDACTED.to_string())
                    } else {
                        redact(v, keys)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, keys)).collect()),
        other => other.clone(),
    }
}

/// The textual forms of every value under a redacted key (strings, and
/// numbers and booleans as JSON prints them, at any depth), longest first
/// so that a value containing another is scrubbed whole. Values shorter
/// than two characters are left alone: scrubbing every `1` would make
/// reasons unreadable without protecting anything a secret needs.
fn redacted_values(value: &Value, keys: &[String]) -> Vec<String> {
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
            Value::Object(map) => map.values().for_each(|i| leaves(i, out)),
            Value::Null => {}
        }
    }
    fn walk(v: &Value, keys: &[String], out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if keys.contains(&k.to_lowercase()) {
                        leaves(v, out);
                    } else {
                        walk(v, keys, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, keys, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !keys.is_empty() {
        walk(value, keys, &mut out);
    }
    out.retain(|s| s.chars().count() >= 2);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), REDACTED))
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g.
/// `2026-01-01T09:30:00.250Z`. Times before 1970 (a broken clock) are
/// written as the epoch.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The Gregorian (year, month, day) of a count of days since 1970-01-01;
/// Howard Hinnant's `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
