//! The decision log through the real binary: a 200 KB file an agent writes
//! through warden lands in the log as its SHA-256, size and prefix, not
//! whole; the bound is `--audit-log-max-value`; a redacted argument is
//! never hashed; the upstream still gets the whole value. In global shadow
//! mode (`--mode shadow`) a would-be denial or confirmation is logged as
//! such, says `"mode": "shadow"`, and goes through.

mod common;

use common::Res;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};

const POLICY: &str = "default allow\n";

async fn started(extra: &[&str]) -> Res<RawProxy> {
    started_with(POLICY, extra).await
}

async fn started_with(policy: &str, extra: &[&str]) -> Res<RawProxy> {
    RawProxy::start_initialized(policy, extra, "log-client").await
}

/// Calls `echo_meta` with `args`; the answer.
async fn call(p: &mut RawProxy, id: u64, args: Value) -> Res<Value> {
    p.call_tool(id, "echo_meta", args).await
}

async fn call_tool(p: &mut RawProxy, id: u64, tool: &str, args: Value) -> Res<Value> {
    p.call_tool(id, tool, args).await
}

/// The first decision line whose arguments have `key`.
fn decision_with(p: &RawProxy, key: &str) -> Res<Value> {
    Ok(p.audit_lines()
        .into_iter()
        .find(|l| l.get("decision").is_some() && l["arguments"].get(key).is_some())
        .ok_or("no decision line")?)
}

#[tokio::test]
async fn a_200_kb_value_is_logged_as_its_hash_size_and_prefix() -> Res<()> {
    let mut p = started(&[]).await?;
    let content = "ACGT".repeat(50_000);
    let answer = call(&mut p, 1, json!({"path": "/reads.fa", "content": content})).await?;
    assert_eq!(
        answer["result"]["structuredContent"]["arguments"]["content"]
            .as_str()
            .map(str::len),
        Some(200_000),
        "the upstream gets the whole value"
    );
    let line = decision_with(&p, "content")?;
    let e = &line["arguments"]["content"]["warden.elided"];
    assert_eq!(e["bytes"], 200_000, "{line:#}");
    assert_eq!(e["prefix"], "ACGT".repeat(16));
    assert_eq!(e["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(line["arguments"]["path"], "/reads.fa");
    assert!(line.to_string().len() < 2_000, "{}", line.to_string().len());

    // The same content again: the same hash, so "same value" still shows.
    call(&mut p, 2, json!({"again": true, "content": content})).await?;
    let again = decision_with(&p, "again")?;
    assert_eq!(
        again["arguments"]["content"]["warden.elided"]["sha256"],
        e["sha256"]
    );
    Ok(())
}

#[tokio::test]
async fn the_bound_is_a_flag_and_a_redacted_value_is_never_hashed() -> Res<()> {
    let mut p = started(&["--audit-log-max-value", "300", "--redact", "token"]).await?;
    let medium = "m".repeat(1_000);
    let secret = "s".repeat(10_000);
    call(&mut p, 1, json!({"note": medium, "token": secret})).await?;
    let line = decision_with(&p, "note")?;
    assert_eq!(
        line["arguments"]["note"]["warden.elided"]["bytes"], 1_000,
        "{line:#}"
    );
    assert_eq!(line["arguments"]["token"], "[redacted]", "{line:#}");
    assert!(!line.to_string().contains("sss"), "no trace of the secret");
    Ok(())
}

#[test]
fn a_bound_below_the_minimum_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "proxy",
            "--policies",
            "x",
            "--audit-log-max-value",
            "10",
            "--",
            "true",
        ])
        .output()
        .expect("warden runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audit-log-max-value"));
}

const GUARDED: &str = r#"default allow
deny no-wipe {
  tool "wipe"
  reason "agents may not wipe"
}
require-confirm slow-needs-a-yes {
  tool "slow"
  reason "wait?"
}
"#;

#[tokio::test]
async fn global_shadow_mode_logs_what_would_happen_and_enforces_nothing() -> Res<()> {
    let mut p = started_with(GUARDED, &["--mode", "shadow"]).await?;
    let wiped = call_tool(&mut p, 1, "wipe", json!({"all": true})).await?;
    assert_eq!(
        wiped["result"]["structuredContent"]["tool"], "wipe",
        "the would-be denial went through: {wiped:#}"
    );
    let slow = call_tool(&mut p, 2, "slow", json!({"ms": 0})).await?;
    assert!(
        slow["result"].is_object(),
        "no confirmation asked: {slow:#}"
    );
    let lines: Vec<Value> = p
        .audit_lines()
        .into_iter()
        .filter(|l| l.get("decision").is_some())
        .collect();
    let of = |tool: &str| lines.iter().find(|l| l["tool"] == tool).cloned();
    let wipe = of("wipe").ok_or("no wipe line")?;
    assert_eq!(
        (wipe["decision"].as_str(), wipe["mode"].as_str()),
        (Some("deny"), Some("shadow"))
    );
    assert_eq!(wipe["rules"], json!(["no-wipe"]));
    let slow = of("slow").ok_or("no slow line")?;
    assert_eq!(
        (slow["decision"].as_str(), slow["mode"].as_str()),
        (Some("confirm"), Some("shadow"))
    );

    // Enforcing (the default), the same call is refused, and no line
    // claims shadow mode.
    let mut e = started_with(GUARDED, &[]).await?;
    let refused = call_tool(&mut e, 1, "wipe", json!({"all": true})).await?;
    assert!(
        refused.pointer("/result/isError") == Some(&json!(true)) || refused.get("error").is_some(),
        "{refused:#}"
    );
    assert!(e.audit_lines().iter().all(|l| l.get("mode").is_none()));
    Ok(())
}
