//! Finding 29: without `--user`, `warden proxy` acts for the OS user it
//! runs as, taken from the process's uid, not from `$USER` (unset under
//! cron, systemd units and `docker exec`, where it used to give `unknown`).
//! The real binary runs with `USER`, `LOGNAME` and `USERNAME` removed, in
//! front of the demo server, and the decision log names the uid's user.

mod common;
use common::{Res, assert_allowed, call};

use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use std::process::Stdio;

/// The user the OS says this process runs as: `id -un`, or the uid number
/// when the uid has no name (as warden falls back).
fn os_user() -> Res<String> {
    let name = std::process::Command::new("id").arg("-un").output()?;
    if name.status.success() {
        return Ok(String::from_utf8(name.stdout)?.trim().to_string());
    }
    let uid = std::process::Command::new("id").arg("-u").output()?;
    Ok(String::from_utf8(uid.stdout)?.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_29_default_user_comes_from_the_uid_when_user_is_unset() -> Res<()> {
    let expected = os_user()?;
    assert!(!expected.is_empty(), "`id` gave no user");
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("audit.jsonl");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/genomics.policy");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["proxy", "--policies", policy, "--name", "genomics"])
        .arg("--audit-log")
        .arg(&log)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("demo-server")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let client = ().serve(transport).await?;
    let listed = call(&client, "list_samples", json!({})).await?;
    assert_allowed(&listed, "list_samples");
    client.cancel().await?;

    let text = std::fs::read_to_string(&log)?;
    let decision: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["tool"] == "list_samples")
        .ok_or_else(|| format!("no decision for list_samples in the log:\n{text}"))?;
    let user = decision["identity"]["user"].as_str().unwrap_or_default();
    assert_eq!(user, expected, "decision line: {decision}");
    assert_ne!(user, "unknown");
    Ok(())
}
