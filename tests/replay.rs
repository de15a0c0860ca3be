//! `warden replay` through the real binary: a log recorded by `warden demo`
//! replayed against the policies that wrote it changes nothing (exit 0);
//! a stricter candidate lists the real calls it would refuse (exit 1, in
//! human and JSON form); a redacted argument a candidate reads makes the
//! call unknown (exit 1); unreadable input exits 2.

mod common;

use common::Res;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A log of the demo session, in `dir`.
fn demo_log(dir: &Path) -> Res<PathBuf> {
    let log = dir.join("decisions.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("demo")
        .arg("--audit-log")
        .arg(&log)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(log)
}

fn replay(logs: &[&Path], policies: &Path, extra: &[&str]) -> Res<Output> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("replay");
    for l in logs {
        cmd.arg("--log").arg(l);
    }
    Ok(cmd.arg("--policies").arg(policies).args(extra).output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_policies_that_wrote_the_log_change_nothing() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let log = demo_log(dir.path())?;
    let out = replay(&[&log], &repo().join("policies/genomics.policy"), &[])?;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("17 call(s) replayed: 0 change(s), 0 unknown"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_stricter_candidate_lists_the_recorded_calls_it_would_refuse() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let log = demo_log(dir.path())?;
    let candidate = dir.path().join("candidate.policy");
    let mut policy = std::fs::read_to_string(repo().join("policies/genomics.policy"))?;
    policy.push_str(
        "\ndeny no-qc-runs {\n  tool \"start_pipeline_run\"\n  when args.pipeline == \"qc\"\n  reason \"qc runs move to the new queue\"\n}\n",
    );
    std::fs::write(&candidate, policy)?;

    let out = replay(&[&log], &candidate, &[])?;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("genomics/start_pipeline_run  allow -> deny"),
        "{text}"
    );
    assert!(text.contains("now deny by `no-qc-runs`"), "{text}");
    assert!(text.contains("| `no-qc-runs` | 0 |"), "{text}");

    let out = replay(&[&log], &candidate, &["--format", "json"])?;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let changed = report["changed"].as_array().ok_or("no changed")?;
    assert!(!changed.is_empty(), "{report:#}");
    for c in changed {
        assert_eq!(c["tool"], "start_pipeline_run", "{c}");
        assert_eq!(
            (c["before"].as_str(), c["after"].as_str()),
            (Some("allow"), Some("deny"))
        );
        assert_eq!(c["after_rules"], json!(["no-qc-runs"]));
        assert_eq!(c["user"], "ada");
    }
    assert_eq!(report["by_rule"]["no-qc-runs"]["after"], changed.len());
    Ok(())
}

#[tokio::test]
async fn a_redacted_argument_the_candidate_reads_makes_the_call_unknown() -> Res<()> {
    let mut p =
        RawProxy::start_initialized("default allow\n", &["--redact", "token"], "replay-client")
            .await?;
    p.call_tool(1, "echo_meta", json!({"token": "s3cret"}))
        .await?;
    let log = p.dir().join("audit.jsonl");
    assert!(std::fs::read_to_string(&log)?.contains("[redacted]"));
    let candidate = p.dir().join("candidate.policy");
    std::fs::write(
        &candidate,
        "default allow\n\ndeny leaked-token {\n  tool \"echo_meta\"\n  when args.token == \"s3cret\"\n}\n",
    )?;
    let out = replay(&[&log], &candidate, &[])?;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("allow -> unknown"), "{text}");
    assert!(
        text.contains("`leaked-token` reads argument `/token` (redacted or bounded)"),
        "{text}"
    );
    assert!(text.contains("0 change(s), 1 unknown"), "{text}");
    Ok(())
}

#[test]
fn unreadable_logs_or_policies_exit_2() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.jsonl");
    let out = replay(&[&missing], &repo().join("policies/genomics.policy"), &[])?;
    assert_eq!(out.status.code(), Some(2));
    let log = dir.path().join("empty.jsonl");
    std::fs::write(&log, "")?;
    let broken = dir.path().join("broken.policy");
    std::fs::write(&broken, "deny {\n")?;
    let out = replay(&[&log], &broken, &[])?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
