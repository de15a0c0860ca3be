//! Records created by agents, end to end: `warden demo-server --listen` on
//! loopback (it stays up, holding its samples), `warden proxy` in front of
//! it on stdio with `policies/genomics.policy` and a `--state` file, and a
//! real rmcp client as the agent. The agent creates a sample through
//! warden and may update it, may not update a seed sample, and both still
//! hold after warden is stopped and started again on the same state file.
//! Records are per kind: through warden in front of its raw test server,
//! whose tools answer with their arguments (so the test picks the ids), a
//! note with id 1 does not make sample 1 the agent's (finding 4).

mod common;
use common::{assert_allowed, call, text};

use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

use common::Res;

/// Starts the demo server on a free loopback port; returns it and its URL.
async fn demo_server() -> Res<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["demo-server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("stderr")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| "the demo server did not say where it listens")??
        .ok_or("the demo server exited")?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| format!("no URL in `{line}`"))?
        .to_string();
    // Keep draining its stderr so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

/// `warden proxy` on stdio in front of `url`, with the genomics policy and
/// the given state file, and an rmcp client connected to it.
async fn warden(url: &str, state: &Path) -> Res<RunningService<RoleClient, ()>> {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/genomics.policy");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args([
        "proxy",
        "--policies",
        policy,
        "--name",
        "genomics",
        "--user",
        "ada",
    ])
    .arg("--state")
    .arg(state)
    .args(["--upstream", url]);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(transport).await?)
}

fn assert_denied_by_rule(r: &CallToolResult, what: &str) {
    assert_eq!(r.is_error, Some(true), "{what} was not denied: {}", text(r));
    let t = text(r);
    assert!(
        t.contains("agents may update only samples an agent created"),
        "{what}: {t}"
    );
    assert!(
        t.contains("(rule `agents-update-only-their-samples`)"),
        "{what}: the denial does not name the rule: {t}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_update_only_samples_an_agent_created_across_a_restart() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state.db");
    let (_demo, url) = demo_server().await?;

    let client = warden(&url, &state).await?;
    let created = call(
        &client,
        "create_sample",
        json!({"name": "tumour biopsy 12", "project": "oncology"}),
    )
    .await?;
    assert_allowed(&created, "create_sample");
    let id = created
        .structured_content
        .as_ref()
        .and_then(|s| s.pointer("/sample/id"))
        .and_then(Value::as_str)
        .ok_or("create_sample returned no sample id")?
        .to_string();

    let own = call(
        &client,
        "update_sample",
        json!({"sample_id": id, "name": "biopsy 12b"}),
    )
    .await?;
    assert_allowed(&own, "updating the sample the agent created");
    let seed = call(
        &client,
        "update_sample",
        json!({"sample_id": "S-0001", "name": "x"}),
    )
    .await?;
    assert_denied_by_rule(&seed, "updating seed sample S-0001");
    client.cancel().await?;

    // A new warden process on the same state file remembers the record.
    let client = warden(&url, &state).await?;
    let own = call(
        &client,
        "update_sample",
        json!({"sample_id": id, "name": "biopsy 12c"}),
    )
    .await?;
    assert_allowed(&own, "updating the agent's sample after a restart");
    let seed = call(
        &client,
        "update_sample",
        json!({"sample_id": "S-0001", "name": "x"}),
    )
    .await?;
    assert_denied_by_rule(&seed, "updating seed sample S-0001 after a restart");
    client.cancel().await?;
    Ok(())
}

/// The test server's `echo_meta` stands for a notes tool and `wipe` for a
/// samples tool (each answers with its arguments, so the ids are the
/// test's); `slow` stands for updating a sample.
const KINDS_POLICY: &str = r#"default allow

records note {
  created by tool "echo_meta" at "/arguments/note_id"
}

records sample {
  created by tool "wipe" at "/arguments/sample_id"
}

deny agents-change-only-their-samples {
  tool "slow"
  when via agent and not args.sample_id created by agent as sample
  reason "sample {args.sample_id} was not created by an agent"
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn finding_04_a_note_id_does_not_make_the_sample_with_that_id_changeable() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("kinds.policy");
    std::fs::write(&policy, KINDS_POLICY)?;
    for state in [None, Some(dir.path().join("state.db"))] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
        cmd.arg("proxy")
            .arg("--policies")
            .arg(&policy)
            .args(["--name", "lab", "--user", "ada"]);
        if let Some(state) = &state {
            cmd.arg("--state").arg(state);
        }
        cmd.arg("--")
            .arg(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy-test-upstream");
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()?;
        let client = ().serve(transport).await?;
        let what = if state.is_some() {
            "with --state"
        } else {
            "in memory"
        };

        let note = call(&client, "echo_meta", json!({"note_id": 1})).await?;
        assert_allowed(&note, "creating note 1");
        let update = call(&client, "slow", json!({"sample_id": 1, "ms": 0})).await?;
        assert_eq!(
            update.is_error,
            Some(true),
            "{what}: note 1 made sample 1 changeable: {}",
            text(&update)
        );
        assert!(
            text(&update).contains("sample 1 was not created by an agent"),
            "{what}: {}",
            text(&update)
        );

        let sample = call(&client, "wipe", json!({"sample_id": 1})).await?;
        assert_allowed(&sample, "creating sample 1");
        let update = call(&client, "slow", json!({"sample_id": 1, "ms": 0})).await?;
        assert_allowed(&update, &format!("{what}: changing the agent's sample 1"));
        client.cancel().await?;
    }
    Ok(())
}
