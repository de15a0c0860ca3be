//! `warden proxy` on stdio whatever its stdin and stdout are: pipes (the
//! other tests), a socket pair (what libuv-based clients such as Node give
//! a child), and a stdout shared with stderr (`2>&1`), which warden must
//! leave in blocking mode for its log writes (`crates/proxy/src/stdio.rs`).
//! Each session initializes, makes a governed call and a relayed request,
//! and gets every answer.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

const POLICY: &str = "default allow\n";

fn proxy(dir: &tempfile::TempDir) -> Result<Command, Error> {
    let path = dir.path().join("test.policy");
    std::fs::write(&path, POLICY)?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("proxy")
        .arg("--policies")
        .arg(&path)
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy-test-upstream");
    Ok(cmd)
}

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drives one session over `input` / `output`: every request gets its
/// answer (lines that are no JSON, such as log lines on a shared stderr,
/// are skipped).
fn session(mut input: impl Write, output: impl std::io::Read) -> TestResult {
    let mut lines = BufReader::new(output).lines();
    let mut answer = |id: i64| -> Result<Value, Error> {
        for line in lines.by_ref() {
            let line = line?;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["id"] == json!(id)
                && v.get("method").is_none()
            {
                return Ok(v);
            }
        }
        Err(format!("warden closed its output before answering {id}").into())
    };
    let mut send = |msg: Value| -> TestResult {
        writeln!(input, "{msg}")?;
        input.flush()?;
        Ok(())
    };
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "fd-client", "version": "1"}}}))?;
    assert!(answer(1)?.get("result").is_some());
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
    for id in 2..12 {
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "echo_meta", "arguments": {"n": id}}}))?;
        let r = answer(id)?;
        assert_eq!(
            r["result"]["structuredContent"]["arguments"]["n"], id,
            "{r:#}"
        );
        send(json!({"jsonrpc": "2.0", "id": id + 100, "method": "x/echo", "params": {"n": id}}))?;
        assert_eq!(answer(id + 100)?["result"]["echo"]["n"], id);
    }
    Ok(())
}

/// Runs `f` on a thread of its own; a failure if it takes over 60 s (a
/// hung session must not hang the test run).
fn within(f: impl FnOnce() -> TestResult + Send + 'static) -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f().map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err("the session did not finish within 60 s".into()),
    }
}

#[test]
fn a_socket_pair_as_stdin_and_stdout() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_read_timeout(Some(Duration::from_secs(20)))?;
    let theirs_out = theirs.try_clone()?;
    let child = proxy(&dir)?
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(Stdio::inherit())
        .spawn()?;
    let _child = Killed(child);
    let input = ours.try_clone()?;
    within(move || session(input, ours))
}

#[test]
fn a_stdout_shared_with_stderr() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (read, write) = std::io::pipe()?;
    let write_err = write.try_clone()?;
    let mut child = proxy(&dir)?
        .env("WARDEN_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write_err))
        .spawn()?;
    let input = child.stdin.take().ok_or("no stdin")?;
    let _child = Killed(child);
    within(move || session(input, read))
}
