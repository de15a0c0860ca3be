//! What every mode of the round-trip bench shares: finding the `warden`
//! binary, starting processes (killed when dropped), connecting an rmcp
//! client over stdio or Streamable HTTP, one timed `tools/call`, and
//! printing times and the load average.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Client = RunningService<RoleClient, ()>;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, and then it is a smoke test: a few calls on each path
/// through the debug binary that the same `cargo test` built.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Warm-up calls per path before any is timed.
pub fn warmup() -> usize {
    if bench_mode() { 300 } else { 3 }
}

/// A positive number from the environment, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

pub fn warden_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_BIN") {
        return PathBuf::from(p);
    }
    let profile = if bench_mode() { "release" } else { "debug" };
    let bin = repo().join("target").join(profile).join("warden");
    if bin.exists() {
        return bin;
    }
    eprintln!("no target/{profile}/warden: run `cargo build --release` first (or set WARDEN_BIN)");
    std::process::exit(2);
}

/// Owned argument strings.
pub fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A background process killed when dropped.
pub struct Background {
    child: tokio::process::Child,
}

impl Background {
    pub fn spawn(bin: &Path, args: &[String]) -> Result<Self, BoxError> {
        Self::spawn_logged(bin, args, Stdio::null())
    }

    /// With its standard error going to `stderr` (a file, to show when the
    /// process does not come up).
    pub fn spawn_logged(bin: &Path, args: &[String], stderr: Stdio) -> Result<Self, BoxError> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args);
        Self::spawn_cmd(cmd, stderr)
    }

    /// `cmd` (its program, arguments and environment as given).
    pub fn spawn_cmd(mut cmd: tokio::process::Command, stderr: Stdio) -> Result<Self, BoxError> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Background { child })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

pub async fn wait_for_port(port: u16) -> Result<(), BoxError> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("nothing listens on 127.0.0.1:{port}").into())
}

/// A client of a child process spoken to over its stdin and stdout, and
/// the child's process id.
pub async fn stdio_client_pid(
    bin: &Path,
    args: &[String],
) -> Result<(Client, Option<u32>), BoxError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args);
    stdio_client_of(cmd).await
}

/// A client of the child process `cmd`, and the child's process id.
pub async fn stdio_client_of(
    cmd: tokio::process::Command,
) -> Result<(Client, Option<u32>), BoxError> {
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let pid = transport.id();
    Ok(((().serve(transport).await?), pid))
}

pub async fn stdio_client(bin: &Path, args: &[String]) -> Result<Client, BoxError> {
    Ok(stdio_client_pid(bin, args).await?.0)
}

pub async fn http_client(port: u16) -> Result<Client, BoxError> {
    http_client_at(port, "/mcp").await
}

pub async fn http_client_at(port: u16, path: &str) -> Result<Client, BoxError> {
    wait_for_port(port).await?;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}{path}")),
    );
    Ok(().serve(transport).await?)
}

/// A call of `tool` with `{"sample_id": "S-0001"}`.
pub fn sample_call(tool: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_string()).with_arguments(
        json!({"sample_id": "S-0001"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

/// One timed call; an error result (a denial, a broken route) stops the bench.
pub async fn timed_call(
    client: &Client,
    params: &CallToolRequestParams,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let result = client.call_tool(params.clone()).await?;
    let took = started.elapsed();
    if result.is_error == Some(true) {
        return Err(format!("{} failed: {result:?}", params.name).into());
    }
    Ok(took)
}

/// The 1, 5 and 15 minute load averages (Linux), or "?" elsewhere.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// A TOML basic string (a path may hold a backslash or a quote), with
/// `${` escaped as the config reader wants (`$${`), so no path is expanded.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.replace("${", "$${").chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub struct Row {
    pub path: &'static str,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

/// p50, p99 and mean of sorted times.
pub fn row(path: &'static str, times: &[Duration]) -> Row {
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    Row {
        path,
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

/// The markdown table of `rows`: path, p50, p99, mean.
pub fn print_table<'a>(rows: impl IntoIterator<Item = &'a Row>) {
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.path,
            us(r.p50),
            us(r.p99),
            us(r.mean)
        );
    }
}

pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

pub fn signed_us(a: Duration, b: Duration) -> String {
    let diff = a.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    format!("{diff:+.0} µs")
}

/// A directory of the bench's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self, BoxError> {
        let dir = std::env::temp_dir().join(format!("warden-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    /// A path in the directory, as a string for a command line.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The arguments of `warden proxy` with the bench's policies and decision
/// log, followed by `rest` (`--listen ...`, `--upstream ...`, `-- cmd`).
/// Timed calls per path in latency and state modes: `ROUNDTRIP_CALLS`, or
/// 3000 under `--bench` and `smoke` under `cargo test`.
pub fn calls_per_path(smoke: usize) -> usize {
    env_count("ROUNDTRIP_CALLS", if bench_mode() { 3000 } else { smoke })
}

/// The demo server over Streamable HTTP on a free port: (port, process).
pub fn demo_over_http(bin: &Path) -> Result<(u16, Background), BoxError> {
    let up = free_port();
    let demo = Background::spawn(
        bin,
        &args(&["demo-server", "--listen", &format!("127.0.0.1:{up}")]),
    )?;
    Ok((up, demo))
}

/// `warden proxy --listen` on a free port in front of the HTTP demo
/// upstream on `up`, with `extra` flags: (port, process).
pub fn http_proxy(
    bin: &Path,
    policies: &str,
    audit: &str,
    up: u16,
    extra: &[&str],
) -> Result<(u16, Background), BoxError> {
    let front = free_port();
    let listen = format!("127.0.0.1:{front}");
    let upstream = format!("http://127.0.0.1:{up}/mcp");
    let mut rest = vec!["--listen", listen.as_str()];
    rest.extend_from_slice(extra);
    rest.extend(["--upstream", upstream.as_str()]);
    let proxy = Background::spawn(bin, &proxy_args(policies, audit, &rest))?;
    Ok((front, proxy))
}

pub fn proxy_args(policies: &str, audit: &str, rest: &[&str]) -> Vec<String> {
    let mut v = args(&["proxy", "--policies", policies, "--audit-log", audit]);
    v.extend(args(rest));
    v
}

/// policies/genomics.policy, as a string for a command line.
pub fn policies() -> String {
    repo()
        .join("policies/genomics.policy")
        .to_string_lossy()
        .into_owned()
}
