//! The tamper-evident decision log through the real binary: `warden proxy
//! --signing-key` writes a hash chain with signed checkpoints (every N
//! lines, at each rotation and at shutdown) and rotates its file by size,
//! the chain running on; `warden audit verify` says the files are intact
//! (exit 0), names the first line an attacker removed, altered, moved or
//! inserted (exit 1), and refuses bad usage (exit 2).

mod common;

use common::raw_proxy::RawProxy;
use common::{Res, key_pair};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A proxy session of `calls` calls with a checkpoint every 4 lines and
/// rotation at 3 KB, closed as a client that is done closes it; the log
/// files oldest first, the temp dir that holds them, and the public key.
async fn logged_session(calls: u64) -> Res<(Vec<PathBuf>, tempfile::TempDir, PathBuf)> {
    let keys = tempfile::tempdir()?;
    let (private, public) = key_pair(keys.path(), "warden", 3)?;
    let mut p = RawProxy::start_initialized(
        "default allow
",
        &[
            "--signing-key",
            private.to_str().ok_or("path")?,
            "--audit-log-checkpoint-every",
            "4",
            "--audit-log-rotate-bytes",
            "3000",
        ],
        "audit-client",
    )
    .await?;
    for id in 1..=calls {
        p.call_tool(id, "echo_meta", json!({"n": id})).await?;
    }
    let (status, dir) = p.close().await?;
    assert!(status.success(), "warden exited with {status}");
    // The public key moves next to the log so that one dir holds it all.
    let public_copy = dir.path().join("warden.pub");
    std::fs::copy(&public, &public_copy)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| {
        f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("audit.jsonl."))
    });
    files.sort();
    files.push(dir.path().join("audit.jsonl"));
    Ok((files, dir, public_copy))
}

fn audit_verify(key: Option<&Path>, files: &[PathBuf]) -> Res<Output> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["audit", "verify"]);
    if let Some(key) = key {
        cmd.arg("--key").arg(key);
    }
    Ok(cmd.args(files).output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lines(path: &Path) -> Res<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::to_string)
        .collect())
}

fn put_lines(path: &Path, lines: &[String]) -> Res<()> {
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(())
}

/// Asserts `warden audit verify` exits 1 naming `kind` at `file:line`.
fn assert_broken(key: &Path, files: &[PathBuf], kind: &str, at: &str) -> Res<()> {
    let out = audit_verify(Some(key), files)?;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("broken: {at}: {kind}: ")),
        "wanted {kind} at {at}: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_session_log_is_chained_signed_rotated_and_verifies_intact() -> Res<()> {
    let (files, _dir, key) = logged_session(12).await?;
    assert!(files.len() >= 3, "rotated into {files:?}");
    let current = lines(files.last().ok_or("no log")?)?;
    let last: Value = serde_json::from_str(current.last().ok_or("empty log")?)?;
    assert_eq!(last["event"], "checkpoint", "shutdown seals the log");
    let first: Value = serde_json::from_str(&current[0])?;
    assert_eq!(first["event"], "rotated");
    let out = audit_verify(Some(&key), &files)?;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("intact: "), "{text}");
    assert!(!text.contains("note:"), "{text}");
    let all: usize = files
        .iter()
        .map(|f| lines(f).map(|l| l.len()))
        .sum::<Res<_>>()?;
    assert!(text.contains(&format!("intact: {all} line(s)")), "{text}");

    // Without the key the chain is checked and the report says what was not.
    let out = audit_verify(None, &files)?;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("not checked: give --key"),
        "{}",
        stdout(&out)
    );

    // Another key: the first checkpoint does not verify.
    let other = tempfile::tempdir()?;
    let (_, wrong) = key_pair(other.path(), "other", 9)?;
    let out = audit_verify(Some(&wrong), &files)?;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("does not verify with the key"));
    Ok(())
}

#[tokio::test]
async fn each_kind_of_tampering_is_reported_at_its_first_line() -> Res<()> {
    let (files, _dir, key) = logged_session(6).await?;
    let target = files[0].clone();
    let name = target.display().to_string();
    let original = lines(&target)?;
    assert!(original.len() >= 4, "{original:?}");

    // Removed: the second line of the first file.
    let mut t = original.clone();
    t.remove(1);
    put_lines(&target, &t)?;
    assert_broken(&key, &files, "removed", &format!("{name}:2"))?;

    // Altered: a decision turned around in the first line.
    let mut t = original.clone();
    assert!(t[0].contains(r#""decision":"allow""#), "{}", t[0]);
    t[0] = t[0].replace(r#""decision":"allow""#, r#""decision":"deny""#);
    put_lines(&target, &t)?;
    assert_broken(&key, &files, "altered", &format!("{name}:1"))?;

    // Reordered: the second and third lines swapped.
    let mut t = original.clone();
    t.swap(1, 2);
    put_lines(&target, &t)?;
    assert_broken(&key, &files, "reordered", &format!("{name}:2"))?;

    // Inserted: a line made up without the chain.
    let mut t = original.clone();
    t.insert(
        2,
        r#"{"time":"2026-12-01T00:00:00.000Z","decision":"allow","tool":"delete_sample"}"#.into(),
    );
    put_lines(&target, &t)?;
    assert_broken(&key, &files, "inserted", &format!("{name}:3"))?;

    // The files out of order: the chain does not run on.
    put_lines(&target, &original)?;
    let mut swapped = files.clone();
    swapped.swap(0, 1);
    let out = audit_verify(Some(&key), &swapped)?;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // Untouched again: intact.
    let out = audit_verify(Some(&key), &files)?;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    Ok(())
}

#[tokio::test]
async fn sigterm_seals_the_log_with_a_last_checkpoint() -> Res<()> {
    let keys = tempfile::tempdir()?;
    let (private, public) = key_pair(keys.path(), "warden", 5)?;
    let mut p = RawProxy::start_initialized(
        "default allow
",
        &["--signing-key", private.to_str().ok_or("path")?],
        "audit-client",
    )
    .await?;
    p.call_tool(1, "echo_meta", json!({"n": 1})).await?;
    let (status, dir) = p.terminate().await?;
    assert!(status.success(), "warden exited with {status} on SIGTERM");
    let log = dir.path().join("audit.jsonl");
    let all = lines(&log)?;
    let last: Value = serde_json::from_str(all.last().ok_or("empty log")?)?;
    assert_eq!(last["event"], "checkpoint", "{all:?}");
    let out = audit_verify(Some(&public), &[log])?;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));
    Ok(())
}

#[test]
fn bad_usage_exits_2() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.jsonl");
    let out = audit_verify(None, std::slice::from_ref(&missing))?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let log = dir.path().join("decisions.jsonl");
    std::fs::write(&log, "")?;
    let not_a_key = dir.path().join("key.pem");
    std::fs::write(&not_a_key, "hello")?;
    let out = audit_verify(Some(&not_a_key), std::slice::from_ref(&log))?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an ed25519 public key"));

    let out = audit_verify(None, &[])?;
    assert_eq!(out.status.code(), Some(2), "no file given");
    Ok(())
}
