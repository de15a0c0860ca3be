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
//! line survives warden crashing, not the machine losing power.
//!
//! An audit log that loses lines quietly is worse than none, so every
//! write and flush error is returned to the caller as a [`LogError`]; what
//! to do then (refuse calls, alert) is the caller's decision. Arguments are
//! logged with configured keys redacted at any depth.

use crate::call::CallContext;
use crate::engine::{Decided, Outcome, Retry, ShadowFinding};
use serde::Serialize;
use serde_json::Value;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Why a decision could not be logged.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
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
/// written whole, one at a time.
pub struct DecisionLog {
    out: Mutex<Sink>,
    /// Lower-cased argument keys whose values are never logged.
    redact: Vec<String>,
    /// The file's path, or "(writer)", for error messages.
    target: String,
}

struct Sink {
    writer: Box<dyn Write + Send>,
    /// The last write failed, perhaps halfway through a line.
    torn: bool,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("target", &self.target)
            .field("redact", &self.redact)
            .finish_non_exhaustive()
    }
}

impl DecisionLog {
    /// Appends to the file at `path`, creating it if needed.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| LogError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut log = Self::to_writer(file);
        log.target = format!("`{}`", path.display());
        Ok(log)
    }

    /// Writes to any writer (stdout, a socket, a test buffer).
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        DecisionLog {
            out: Mutex::new(Sink {
                writer: Box::new(writer),
                torn: false,
            }),
            redact: Vec::new(),
            target: "(writer)".to_string(),
        }
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

    /// Logs one decision, with the upstream outcome once there is one.
    /// The line is flushed before this returns; any failure is returned.
    pub fn write(
        &self,
        call: &CallContext,
        decided: &Decided,
        upstream: Option<&UpstreamOutcome>,
    ) -> Result<(), LogError> {
        let line = self.line(call, decided, upstream)?;
        self.append(line)
    }

    /// The write-ahead line of a call about to be forwarded (or of any
    /// decision): flushed before this returns. On an error the caller
    /// must not forward the call.
    pub fn write_decision(&self, call: &CallContext, decided: &Decided) -> Result<(), LogError> {
        self.write(call, decided, None)
    }

    /// Appends how a forwarded call went upstream, as a line of its own
    /// naming the decision (`{"time", "decision_id", "event": "outcome",
    /// "upstream"}`).
    pub fn write_outcome(
        &self,
        decided: &Decided,
        upstream: &UpstreamOutcome,
    ) -> Result<(), LogError> {
        let line = serde_json::to_string(&OutcomeLine {
            time: rfc3339(SystemTime::now()),
            decision_id: &decided.id,
            event: "outcome",
            upstream,
        })
        .map_err(|e| LogError::Encode {
            message: e.to_string(),
        })?;
        self.append(line)
    }

    fn append(&self, mut line: String) -> Result<(), LogError> {
        line.push('\n');
        let mut sink = lock_sink(&self.out);
        let Sink { writer, torn } = &mut *sink;
        let written = (|| {
            // After a failed write the file may end in half a line; start
            // afresh so that this line at least parses.
            if *torn {
                writer.write_all(b"\n")?;
            }
            writer.write_all(line.as_bytes())
        })();
        // A failed flush leaves whole lines behind (or none), not a torn one.
        *torn = written.is_err();
        written
            .and_then(|()| writer.flush())
            .map_err(|e| LogError::Write {
                target: self.target.clone(),
                message: e.to_string(),
            })
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
            arguments: redact(&call.arguments, &self.redact),
            confirmed: &call.confirmed,
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
    server: &'a str,
    tool: &'a str,
    identity: IdentityLine<'a>,
    session: &'a str,
    provenance: ProvenanceLine<'a>,
    arguments: Value,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    confirmed: &'a [String],
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

/// A panic in another writer leaves the sink usable; at worst that
/// writer's line is torn, which `torn` already covers.
fn lock_sink(m: &Mutex<Sink>) -> MutexGuard<'_, Sink> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Identity, Provenance};
    use crate::engine::{Engine, EngineOptions};
    use crate::index::PolicyBundle;
    use serde_json::json;
    use std::io;
    use std::time::Duration;
    use warden_lang::{Sources, compile_policy_set};

    const POLICY: &str = r#"
default deny

allow reads {
  tool "read_*"
}

deny no-deletes {
  tool "delete_*"
  when via agent
  reason "agents may not delete {args.id}"
}

require-confirm costly {
  tool "run"
  reason "run {args.pipeline}?"
}

allow runs {
  tool "run"
}

deny shadow-no-secrets {
  mode shadow
  tool "read_*"
  when args.path == "/secrets"
  reason "secrets would be off limits"
}
"#;

    fn engine() -> Engine {
        let mut s = Sources::new();
        s.add("t.policy", POLICY);
        let set = compile_policy_set(&s).expect("compiles").policy_set;
        Engine::new(
            PolicyBundle::new(set, "v1".into()),
            EngineOptions::default(),
        )
    }

    fn call(tool: &str, args: Value) -> CallContext {
        CallContext {
            identity: Identity {
                user: "alice".into(),
                groups: vec!["lab".into()],
                agent: Some("claude-code".into()),
                model: Some("claude-sonnet".into()),
                ..Identity::default()
            },
            session: "s1".into(),
            provenance: Provenance {
                via_agent: true,
                via_server: Some("files".into()),
            },
            server: "files".into(),
            tool: tool.into(),
            arguments: args,
            ..CallContext::default()
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |s: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_767_225_599, 999), "2025-12-31T23:59:59.999Z");
        assert_eq!(at(1_767_225_600, 0), "2026-01-01T00:00:00.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn redaction_is_case_insensitive_and_reaches_every_depth() {
        let args = json!({
            "Token": "t0p",
            "query": "x",
            "auth": {"PASSWORD": "hunter2", "user": "bob"},
            "items": [{"token": "a"}, {"other": {"password": "b"}}]
        });
        let out = redact(&args, &["token".into(), "password".into()]);
        assert_eq!(
            out,
            json!({
                "Token": REDACTED,
                "query": "x",
                "auth": {"PASSWORD": REDACTED, "user": "bob"},
                "items": [{"token": REDACTED}, {"other": {"password": REDACTED}}]
            })
        );
    }

    #[test]
    fn a_reason_quoting_a_redacted_argument_is_scrubbed() {
        let mut s = Sources::new();
        s.add(
            "t.policy",
            r#"default allow
deny no-tokens {
  tool "login"
  when args.token exists
  reason "refusing login with token {args.token} for {args.user}"
}
deny audit-tokens {
  tool "login"
  when args.token exists
  mode shadow
  reason "would refuse {args.token}"
}
"#,
        );
        let set = compile_policy_set(&s).expect("compiles").policy_set;
        let e = Engine::new(
            PolicyBundle::new(set, "v1".into()),
            EngineOptions::default(),
        );
        let c = call("login", json!({"token": "s3cr3t-t0ken", "user": "bob"}));
        let d = e.decide(&c);
        let log = DecisionLog::to_writer(io::sink()).redacting(["token"]);
        let line = log.line(&c, &d, None).unwrap();
        assert!(!line.contains("s3cr3t-t0ken"), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["reason"],
            format!("`login` was not called: refusing login with token {REDACTED} for bob")
        );
        assert_eq!(
            v["shadow"][0]["message"],
            format!("would refuse {REDACTED}")
        );
        assert_eq!(v["arguments"]["token"], REDACTED);
    }

    /// A writer that fails every write, or only flushes.
    struct Failing {
        on_flush_only: bool,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.on_flush_only {
                Ok(buf.len())
            } else {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("flush refused"))
        }
    }

    #[test]
    fn write_errors_surface() {
        let e = engine();
        let c = call("read_file", json!({}));
        let d = e.decide(&c);
        let log = DecisionLog::to_writer(Failing {
            on_flush_only: false,
        });
        let err = log.write(&c, &d, None).unwrap_err();
        assert!(matches!(err, LogError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains("disk full"), "{err}");
        let help = miette::Diagnostic::help(&err)
            .expect("has help")
            .to_string();
        assert!(help.contains("not being recorded"), "{help}");
        // Every later write fails too, rather than being dropped.
        assert!(log.write(&c, &d, None).is_err());
    }

    #[test]
    fn flush_errors_surface() {
        let e = engine();
        let c = call("read_file", json!({}));
        let d = e.decide(&c);
        let log = DecisionLog::to_writer(Failing {
            on_flush_only: true,
        });
        let err = log.write(&c, &d, None).unwrap_err();
        assert!(err.to_string().contains("flush refused"), "{err}");
    }

    #[test]
    fn a_torn_line_does_not_swallow_the_next() {
        /// Accepts 10 bytes, then fails once, then works.
        struct Flaky {
            buf: std::sync::Arc<Mutex<Vec<u8>>>,
            failed: bool,
        }
        impl Write for Flaky {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let mut buf = self.buf.lock().unwrap();
                if !self.failed && buf.len() >= 10 {
                    self.failed = true;
                    return Err(io::Error::other("interrupted"));
                }
                let n = if self.failed {
                    b.len()
                } else {
                    b.len().min(10 - buf.len())
                };
                buf.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = DecisionLog::to_writer(Flaky {
            buf: buf.clone(),
            failed: false,
        });
        let e = engine();
        let c = call("read_file", json!({}));
        let d = e.decide(&c);
        assert!(log.write(&c, &d, None).is_err());
        log.write(&c, &d, None).expect("second write works");
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let last = text.lines().last().unwrap();
        let v: Value = serde_json::from_str(last).expect("the line after a torn one parses");
        assert_eq!(v["decision_id"], d.id.as_str());
    }

    #[test]
    fn a_file_gets_one_parseable_line_per_decision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let e = engine();
        let log = DecisionLog::open(&path)
            .unwrap()
            .redacting(["api_key", "Password"]);

        let calls = [
            call("read_file", json!({"path": "/secrets", "API_KEY": "k1"})),
            call(
                "delete_file",
                json!({"id": "f9", "opts": {"nested": [{"password": "p"}]}}),
            ),
            call("run", json!({"pipeline": "wgs"})),
            call("format_disk", json!({})),
        ];
        let mut decided = Vec::new();
        for (i, c) in calls.iter().enumerate() {
            let d = e.decide(c);
            let upstream = UpstreamOutcome {
                ok: false,
                error: Some("upstream timed out".into()),
                duration_ms: 1500,
            };
            log.write(c, &d, (i == 0).then_some(&upstream)).unwrap();
            decided.push(d);
        }
        drop(log);
        // Reopening appends.
        let log = DecisionLog::open(&path).unwrap();
        let d = e.decide(&calls[0]);
        log.write(&calls[0], &d, None).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), calls.len() + 1);
        for (l, d) in lines.iter().zip(&decided) {
            assert_eq!(l["decision_id"], d.id.as_str());
            assert_eq!(l["policy_version"], "v1");
            assert_eq!(l["identity"]["user"], "alice");
            assert_eq!(l["identity"]["groups"], json!(["lab"]));
            assert_eq!(l["identity"]["agent"], "claude-code");
            assert_eq!(l["identity"]["model"], "claude-sonnet");
            assert!(
                l["identity"].get("verified").is_none(),
                "nothing verified, nothing said: {l}"
            );
            assert_eq!(l["session"], "s1");
            assert_eq!(
                l["provenance"],
                json!({"via_agent": true, "via_server": "files"})
            );
            assert_eq!(l["server"], "files");
            assert!(l["latency_us"].is_u64());
            let t = l["time"].as_str().unwrap();
            assert!(
                t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T",
                "{t}"
            );
        }

        let read = &lines[0];
        assert_eq!(read["decision"], "allow");
        assert_eq!(read["rules"], json!(["reads"]));
        assert_eq!(
            read["arguments"],
            json!({"path": "/secrets", "API_KEY": REDACTED})
        );
        assert_eq!(read["shadow"][0]["rule"], "shadow-no-secrets");
        assert_eq!(read["shadow"][0]["would"], "deny");
        assert_eq!(
            read["upstream"],
            json!({"ok": false, "error": "upstream timed out", "duration_ms": 1500})
        );

        let delete = &lines[1];
        assert_eq!(delete["decision"], "deny");
        assert_eq!(delete["rules"], json!(["no-deletes"]));
        assert!(delete["reason"].as_str().unwrap().contains("f9"));
        assert_eq!(delete["retry"], json!({"when": "never"}));
        assert_eq!(
            delete["arguments"]["opts"]["nested"][0]["password"],
            REDACTED
        );
        assert!(delete.get("upstream").is_none());

        let run = &lines[2];
        assert_eq!(run["decision"], "confirm");
        assert_eq!(run["rules"], json!(["costly"]));
        assert_eq!(run["reason"], "run wgs?");

        let unknown = &lines[3];
        assert_eq!(unknown["decision"], "deny");
        assert_eq!(unknown["rules"], json!([]));

        // The reopened log has no redaction configured.
        assert_eq!(lines[4]["arguments"]["API_KEY"], "k1");
    }

    #[test]
    fn finding_17_the_decision_is_written_ahead_and_the_outcome_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = DecisionLog::open(&path).unwrap();
        let e = engine();
        let c = call("read_file", json!({"path": "/data"}));
        let d = e.decide(&c);
        log.write_decision(&c, &d).unwrap();
        // Before the call goes upstream the decision is already in the file.
        let ahead = std::fs::read_to_string(&path).unwrap();
        let line: Value = serde_json::from_str(ahead.trim()).unwrap();
        assert_eq!(line["decision"], "allow");
        assert!(line.get("upstream").is_none(), "{line}");
        let outcome = UpstreamOutcome {
            ok: true,
            error: None,
            duration_ms: 7,
        };
        log.write_outcome(&d, &outcome).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event"], "outcome");
        assert_eq!(lines[1]["decision_id"], d.id.as_str());
        assert_eq!(lines[1]["upstream"]["ok"], true);
    }

    #[test]
    fn finding_17_a_log_that_cannot_be_written_returns_the_error() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let log = DecisionLog::open(Path::new("/dev/full")).unwrap();
        let e = engine();
        let c = call("read_file", json!({}));
        let err = log.write_decision(&c, &e.decide(&c)).unwrap_err();
        assert!(matches!(err, LogError::Write { .. }), "{err}");
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("log.jsonl");
        let err = DecisionLog::open(&path).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }

    #[test]
    fn concurrent_writers_never_interleave_lines() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                // Byte-sized writes would interleave without the log's lock.
                self.0.lock().unwrap().push(b[0]);
                Ok(1)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = DecisionLog::to_writer(Shared(buf.clone()));
        let e = engine();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (log, e) = (&log, &e);
                s.spawn(move || {
                    let c = call("read_file", json!({"n": t}));
                    for _ in 0..25 {
                        log.write(&c, &e.decide(&c), None).unwrap();
                    }
                });
            }
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 100);
        for l in text.lines() {
            serde_json::from_str::<Value>(l).expect("whole lines");
        }
    }
}
