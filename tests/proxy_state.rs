//! Cap state that neither a restart nor a new session resets, end to end:
//! `warden proxy --state FILE` on stdio in front of `warden demo-server`,
//! with a real rmcp client as the agent. A per-user cap reached in one
//! warden process still holds in the next one on the same state file (a new
//! process is also a new MCP session), holds for that user only, and ends as
//! the language says: when the user calls another tool. The same run without
//! `--state` shows what the file is for: a restart forgets the streak.

mod common;
use common::{assert_allowed, call, text};

use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;

use common::Res;
type Client = RunningService<RoleClient, ()>;

const POLICY: &str = r#"default allow

cap-consecutive two-runs-in-a-row-per-user {
  server "genomics"
  tool "start_pipeline_run"
  max 2 per user
  reason "at most {limit} pipeline runs in a row per user"
}
"#;

/// `warden proxy` on stdio for `user`, in front of the demo server, with
/// `state` as its state file (or in memory), and a client connected to it.
async fn warden(dir: &Path, user: &str, state: Option<&Path>) -> Res<Client> {
    let policy = dir.join("cap.policy");
    std::fs::write(&policy, POLICY)?;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--user", user]);
    if let Some(state) = state {
        cmd.arg("--state").arg(state);
    }
    cmd.args(["--", env!("CARGO_BIN_EXE_warden"), "demo-server"]);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(transport).await?)
}

async fn start_run(client: &Client) -> Res<CallToolResult> {
    call(
        client,
        "start_pipeline_run",
        json!({"sample_id": "S-0001", "pipeline": "qc"}),
    )
    .await
}

fn assert_capped(r: &CallToolResult, what: &str) {
    assert_eq!(r.is_error, Some(true), "{what} was not denied: {}", text(r));
    let t = text(r);
    assert!(
        t.contains("at most 2 pipeline runs in a row per user")
            && t.contains("two-runs-in-a-row-per-user"),
        "{what}: {t}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_user_cap_survives_a_restart_and_a_new_session_with_a_state_file() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state.db");

    let ada = warden(dir.path(), "ada", Some(&state)).await?;
    assert_allowed(&start_run(&ada).await?, "ada's first run");
    assert_allowed(&start_run(&ada).await?, "ada's second run");
    assert_capped(&start_run(&ada).await?, "ada's third run in a row");
    ada.cancel().await?;

    // A new process: a new MCP session, the same user, the same file.
    let ada = warden(dir.path(), "ada", Some(&state)).await?;
    assert_capped(&start_run(&ada).await?, "ada's run after warden restarted");

    // The cap is ada's, not everyone's.
    let bob = warden(dir.path(), "bob", Some(&state)).await?;
    assert_allowed(&start_run(&bob).await?, "bob's first run");
    bob.cancel().await?;

    // Another tool ends ada's streak, in the new process as in the old.
    assert_allowed(
        &call(&ada, "list_samples", json!({})).await?,
        "listing samples",
    );
    assert_allowed(&start_run(&ada).await?, "ada's run after the streak ended");
    ada.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_file_is_what_keeps_the_streak_across_a_restart() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let ada = warden(dir.path(), "ada", None).await?;
    assert_allowed(&start_run(&ada).await?, "first run");
    assert_allowed(&start_run(&ada).await?, "second run");
    assert_capped(&start_run(&ada).await?, "third run in a row");
    ada.cancel().await?;

    let ada = warden(dir.path(), "ada", None).await?;
    assert_allowed(
        &start_run(&ada).await?,
        "a run after a restart with state in memory",
    );
    ada.cancel().await?;
    Ok(())
}

/// Started without `--state` on policies whose state outlives a session,
/// warden says on stderr that a restart will forget it, and how to keep it;
/// with `--state` it does not.
#[test]
fn warden_says_when_lasting_state_is_only_in_memory() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("cap.policy");
    std::fs::write(&policy, POLICY)?;
    let stderr = |extra: &[&str]| -> Res<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy")
            .arg("--policies")
            .arg(&policy)
            .args(extra)
            .args(["--", env!("CARGO_BIN_EXE_warden"), "demo-server"])
            .stdin(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let warned = stderr(&[])?;
    assert!(
        warned.contains("per-user and per-agent caps and rates are kept in memory")
            && warned.contains("--state FILE"),
        "{warned}"
    );
    let state = dir.path().join("state.db");
    let quiet = stderr(&["--state", state.to_str().ok_or("path")?])?;
    assert!(!quiet.contains("kept in memory"), "{quiet}");
    Ok(())
}
