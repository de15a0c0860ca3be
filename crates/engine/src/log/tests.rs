//! The decision log's line format, redaction, write and flush failures,
//! torn lines and concurrent writers.

use super::*;
use crate::call::{Identity, Provenance};
use crate::engine::{Engine, EngineOptions};
use crate::index::PolicyBundle;
use serde_json::json;
use std::io;
use std::sync::Mutex;
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
    let at =
        |s: u64, ms: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms));
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
        assert!(l.get("annotations").is_none(), "none given, none said: {l}");
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

#[test]
fn the_tools_annotations_are_logged_as_the_catalog_gave_them() {
    let e = engine();
    let mut c = call("read_file", json!({"path": "/a"}));
    c.annotations = crate::call::ToolAnnotations {
        read_only_hint: Some(true),
        open_world_hint: Some(false),
        ..Default::default()
    };
    let d = e.decide(&c);
    let line: Value = serde_json::from_str(
        &DecisionLog::to_writer(io::sink())
            .line(&c, &d, None)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        line["annotations"],
        json!({"readOnlyHint": true, "openWorldHint": false}),
        "{line}"
    );
}
