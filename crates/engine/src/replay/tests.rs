//! Replay as a security team rolling out a policy would use it: the same
//! set changes nothing; a stricter one lists each call it would refuse,
//! with the rule on each side; rate windows are rebuilt from the log's
//! timestamps, per user; a rule that reads a redacted or bounded argument
//! makes the call unknown, never allowed or denied; lines that are not
//! decisions are skipped and broken ones listed.

use super::*;
use crate::log::DecisionLog;
use serde_json::json;
use std::io::BufReader;
use warden_lang::{Sources, compile_policy_set};

fn bundle(policy: &str) -> PolicyBundle {
    let mut s = Sources::new();
    s.add("candidate.policy", policy);
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    PolicyBundle::new(set, "candidate".into())
}

/// A decision line as warden writes it (chain fields aside: replay reads
/// past them).
fn line(time: &str, user: &str, tool: &str, args: Value, decision: &str, rules: &[&str]) -> String {
    json!({
        "seq": 0, "prev": "0".repeat(64),
        "time": time, "decision_id": format!("id-{time}-{tool}"), "policy_version": "v0",
        "decision": decision, "server": "genomics", "tool": tool,
        "identity": {"user": user, "groups": [], "agent": "claude-code"},
        "session": format!("s-{user}"),
        "provenance": {"via_agent": true, "via_server": "genomics"},
        "arguments": args, "rules": rules, "latency_us": 10,
    })
    .to_string()
}

fn run(policy: &str, lines: &[String]) -> ReplayReport {
    let text = lines.join("\n") + "\n";
    let files: Vec<(String, Box<dyn BufRead>)> = vec![(
        "decisions.jsonl".into(),
        Box::new(BufReader::new(std::io::Cursor::new(text.into_bytes()))),
    )];
    let mut report = ReplayReport::default();
    let calls = read_recorded(files, &mut report).unwrap();
    replay(bundle(policy), calls, &mut report);
    report
}

#[test]
fn the_set_that_wrote_the_log_changes_nothing() {
    // A real log, written by the engine and the decision log.
    let policy = "default allow\n\ndeny no-deletes {\n  tool \"delete_*\"\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let log = DecisionLog::open(&path).unwrap();
    let engine = Engine::new(bundle(policy), EngineOptions::default());
    for tool in ["get_sample", "delete_sample", "get_sample"] {
        let call = CallContext {
            server: "genomics".into(),
            tool: tool.into(),
            session: "s".into(),
            arguments: json!({"id": "S-1"}),
            ..CallContext::default()
        };
        let d = engine.decide(&call);
        log.write_decision(&call, &d).unwrap();
        log.write_outcome(
            &d,
            &crate::log::UpstreamOutcome {
                ok: true,
                error: None,
                duration_ms: 1,
            },
        )
        .unwrap();
    }
    drop(log);
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let report = run(policy, &lines);
    assert_eq!(report.calls, 3);
    assert_eq!(report.skipped, 3, "the outcome lines");
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    assert!(report.unknown.is_empty() && report.unreadable.is_empty());
}

#[test]
fn a_stricter_set_lists_each_call_it_would_refuse_with_the_rule_on_each_side() {
    let lines = vec![
        line(
            "2026-12-01T09:00:00.000Z",
            "ada",
            "get_sample",
            json!({}),
            "allow",
            &["#default"],
        ),
        line(
            "2026-12-01T09:00:01.000Z",
            "ada",
            "delete_sample",
            json!({"id": "S-3"}),
            "allow",
            &["#default"],
        ),
    ];
    let report = run(
        "default allow\n\ndeny agents-never-delete {\n  tool \"delete_*\"\n  when via agent\n}\n",
        &lines,
    );
    assert_eq!(report.calls, 2);
    assert_eq!(report.changed.len(), 1, "{:?}", report.changed);
    let c = &report.changed[0];
    assert_eq!((c.call.tool.as_str(), c.call.line), ("delete_sample", 2));
    assert_eq!((c.call.before, c.after), (Verdict::Allow, Verdict::Deny));
    assert_eq!(c.call.before_rules, vec!["#default"]);
    assert_eq!(c.after_rules, vec!["agents-never-delete"]);
    assert_eq!(
        report.by_rule.get("agents-never-delete"),
        Some(&RuleCounts {
            before: 0,
            after: 1,
            unknown: 0
        })
    );
    assert_eq!(report.by_rule.get("#default").map(|r| r.before), Some(1));
}

#[test]
fn rate_windows_are_rebuilt_from_the_logs_timestamps_per_user_in_time_order() {
    // Ada's three exports within a minute, then one after the window;
    // Bob's one export inside it. Given out of order: replay sorts.
    let at =
        |t: &str, user: &str| line(t, user, "export_results", json!({}), "allow", &["#default"]);
    let lines = vec![
        at("2026-12-01T09:00:20.000Z", "ada"),
        at("2026-12-01T09:00:00.000Z", "ada"),
        at("2026-12-01T09:00:40.000Z", "ada"),
        at("2026-12-01T09:00:41.000Z", "bob"),
        at("2026-12-01T09:01:30.000Z", "ada"),
    ];
    let report = run(
        "default allow\n\nrate-limit exports {\n  tool \"export_*\"\n  max 2 per 1m per user\n}\n",
        &lines,
    );
    let changed: Vec<(&str, &str)> = report
        .changed
        .iter()
        .map(|c| (c.call.time.as_str(), c.call.user.as_str()))
        .collect();
    assert_eq!(
        changed,
        vec![("2026-12-01T09:00:40.000Z", "ada")],
        "{:?}",
        report.changed
    );
    assert_eq!(report.changed[0].after_rules, vec!["exports"]);
}

#[test]
fn a_rule_reading_a_redacted_or_bounded_argument_makes_the_call_unknown() {
    let elided = json!({"warden.elided": {"sha256": "ab", "bytes": 200000, "prefix": "ACGT"}});
    let lines = vec![
        line(
            "2026-12-01T09:00:00.000Z",
            "ada",
            "write_file",
            json!({"path": "/a", "token": "[redacted]"}),
            "allow",
            &["#default"],
        ),
        line(
            "2026-12-01T09:00:01.000Z",
            "ada",
            "write_file",
            json!({"path": "/b", "content": elided}),
            "allow",
            &["#default"],
        ),
        line(
            "2026-12-01T09:00:02.000Z",
            "ada",
            "write_file",
            json!({"path": "/c", "content": "short"}),
            "allow",
            &["#default"],
        ),
    ];
    let policy = "default allow\n\ndeny no-secret-tokens {\n  tool \"write_file\"\n  when args.token == \"s3cret\"\n}\n\ndeny no-fasta {\n  tool \"write_file\"\n  when args.content matches \">*\"\n}\n";
    let report = run(policy, &lines);
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    type RuleLacks<'a> = Vec<(&'a str, Vec<String>)>;
    let unknown: Vec<(u64, RuleLacks)> = report
        .unknown
        .iter()
        .map(|u| {
            (
                u.call.line,
                u.rules
                    .iter()
                    .map(|r| (r.rule.as_str(), r.lacks.clone()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        unknown,
        vec![
            (1, vec![("no-secret-tokens", vec!["/token".to_string()])]),
            (2, vec![("no-fasta", vec!["/content".to_string()])]),
        ]
    );
    assert_eq!(report.by_rule.get("no-fasta").map(|r| r.unknown), Some(1));
}

#[test]
fn lines_that_are_not_decisions_are_skipped_and_broken_ones_listed() {
    let lines = vec![
        r#"{"seq":0,"prev":"00","time":"2026-12-01T09:00:00.000Z","event":"checkpoint","alg":"EdDSA","signature":"x"}"#.to_string(),
        "not json at all".to_string(),
        r#"{"time":"yesterday","decision":"allow","server":"s","tool":"t","identity":{"user":"u"},"session":"s"}"#.to_string(),
        line("2026-12-01T09:00:00.000Z", "ada", "get_sample", json!({}), "allow", &["#default"]),
    ];
    let report = run("default allow\n", &lines);
    assert_eq!((report.calls, report.skipped), (1, 1));
    assert_eq!(report.unreadable.len(), 2, "{:?}", report.unreadable);
    assert!(report.unreadable[0].starts_with("decisions.jsonl:2: not JSON"));
    assert!(
        report.unreadable[1].contains("`time` is not RFC 3339"),
        "{:?}",
        report.unreadable
    );
}

#[test]
fn pointers_overlap_when_one_reads_inside_the_other() {
    assert!(overlaps("/a", "/a"));
    assert!(overlaps("/a", "/a/b"));
    assert!(overlaps("/a/b", "/a"));
    assert!(overlaps("", "/a"));
    assert!(!overlaps("/a", "/ab"));
    assert!(!overlaps("/a/b", "/a/c"));
}

#[test]
fn a_confirmation_not_given_is_the_same_outcome_as_the_candidate_asking_again() {
    // Logged as a denial by the rule that asked (the person declined).
    let lines = vec![line(
        "2026-12-01T09:00:00.000Z",
        "ada",
        "start_pipeline_run",
        json!({"pipeline": "wgs"}),
        "deny",
        &["costly"],
    )];
    let asks = "default allow\n\nrequire-confirm costly {\n  tool \"start_pipeline_run\"\n}\n";
    let report = run(asks, &lines);
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    // Another rule asking is a change.
    let other = "default allow\n\nrequire-confirm other {\n  tool \"start_pipeline_run\"\n}\n";
    let report = run(other, &lines);
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.changed[0].after, Verdict::Confirm);
}
