//! `warden proxy` on stdio in front of warden's raw test server
//! (`warden proxy-test-upstream`), driven line by line: what the tests that
//! write hostile or exact JSON-RPC text share. The policy and the decision
//! log live in a temp dir that lives as long as the proxy.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::Res;

/// How long a test waits for warden's next line: every request these
/// tests make is answered at once, so a wait this long is a failure.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RawProxy {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    dir: tempfile::TempDir,
}

impl RawProxy {
    /// Starts `warden proxy --policies <policy> --audit-log <audit>
    /// <extra>...`; the decision log is `audit.jsonl` in the temp dir
    /// unless `audit` names another file.
    pub async fn start(policy: &str, audit: Option<&Path>, extra: &[&str]) -> Res<RawProxy> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("test.policy");
        std::fs::write(&path, policy)?;
        let audit: PathBuf = match audit {
            Some(a) => a.to_path_buf(),
            None => dir.path().join("audit.jsonl"),
        };
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy")
            .arg("--policies")
            .arg(&path)
            .arg("--audit-log")
            .arg(audit)
            .args(extra)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy-test-upstream")
            // Tools the test upstream lists besides its own, if the test
            // writes them (`tools.json` in the temp dir).
            .env("WARDEN_TEST_UPSTREAM_TOOLS", dir.path().join("tools.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(RawProxy {
            _child: child,
            stdin,
            lines,
            dir,
        })
    }

    /// [`RawProxy::start`] with the default decision log, then the
    /// 2025-06-18 handshake as client `client`.
    pub async fn start_initialized(policy: &str, extra: &[&str], client: &str) -> Res<RawProxy> {
        RawProxy::start_initialized_with(policy, extra, client, serde_json::json!({})).await
    }

    /// [`RawProxy::start_initialized`] for a client declaring
    /// `capabilities` (e.g. `{"elicitation": {}}`).
    pub async fn start_initialized_with(
        policy: &str,
        extra: &[&str],
        client: &str,
        capabilities: Value,
    ) -> Res<RawProxy> {
        let mut p = RawProxy::start(policy, None, extra).await?;
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": capabilities,
                       "clientInfo": {"name": client, "version": "1"}}});
        p.send_line(init.to_string().as_bytes()).await?;
        p.next_line().await?;
        p.send_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await?;
        Ok(p)
    }

    /// Calls `tool` with `args` as request `id`; its answer (messages
    /// before it are skipped).
    pub async fn call_tool(&mut self, id: u64, tool: &str, args: Value) -> Res<Value> {
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        self.send_line(msg.to_string().as_bytes()).await?;
        loop {
            let v: Value = serde_json::from_str(&self.next_line().await?)?;
            if v["id"] == id {
                return Ok(v);
            }
        }
    }

    /// Writes `bytes` and a newline, as one message.
    pub async fn send_line(&mut self, bytes: &[u8]) -> Res<()> {
        self.stdin.write_all(bytes).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next line from warden, as it came.
    pub async fn next_line(&mut self) -> Res<String> {
        Ok(tokio::time::timeout(LINE_TIMEOUT, self.lines.next_line())
            .await
            .map_err(|_| "no message from warden within 10 s")??
            .ok_or("warden closed its output")?)
    }

    /// Closes warden's input, as a client that is done does, and waits for
    /// it to exit; the temp dir stays for the test to read.
    pub async fn close(mut self) -> Res<(std::process::ExitStatus, tempfile::TempDir)> {
        drop(self.stdin);
        let status = tokio::time::timeout(LINE_TIMEOUT, self._child.wait())
            .await
            .map_err(|_| "warden did not exit within 10 s of its input closing")??;
        Ok((status, self.dir))
    }

    /// Sends warden SIGTERM, as a supervisor stopping it does, and waits
    /// for it to exit; the temp dir stays for the test to read.
    pub async fn terminate(mut self) -> Res<(std::process::ExitStatus, tempfile::TempDir)> {
        let pid = self._child.id().ok_or("warden has exited")?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(LINE_TIMEOUT, self._child.wait())
            .await
            .map_err(|_| "warden did not exit within 10 s of SIGTERM")??;
        Ok((status, self.dir))
    }

    /// The temp dir the policy and the default decision log are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every line of the default decision log, decoded.
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}
