//! Proxy latency: the round trip of one `tools/call` (the demo server's
//! `get_sample`, allowed by policies/genomics.policy) made directly to the
//! demo server and through `warden proxy`, over stdio and over Streamable
//! HTTP, with real processes and a real MCP client (rmcp). Prints p50, p99
//! and mean per path, and warden's added latency.
//!
//! Needs a built `warden` binary: `cargo build --release`, then
//! `cargo bench -p warden-demo --bench roundtrip`. `WARDEN_BIN` overrides
//! the binary; `ROUNDTRIP_CALLS` the number of measured calls (default 3000).

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Client = RunningService<RoleClient, ()>;

fn warmup() -> usize {
    if bench_mode() { 300 } else { 3 }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, and then it is a smoke test: a few calls on each path
/// through the debug binary that the same `cargo test` built.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn warden_bin() -> PathBuf {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A background process killed when dropped.
struct Background {
    _child: tokio::process::Child,
}

impl Background {
    fn spawn(bin: &Path, args: &[String]) -> Result<Self, BoxError> {
        let child = tokio::process::Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Background { _child: child })
    }
}

async fn wait_for_port(port: u16) -> Result<(), BoxError> {
    for _ in 0..200 {
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

async fn stdio_client(bin: &Path, args: &[String]) -> Result<Client, BoxError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(transport).await?)
}

async fn http_client(port: u16) -> Result<Client, BoxError> {
    wait_for_port(port).await?;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}/mcp")),
    );
    Ok(().serve(transport).await?)
}

/// Round-trip times of `calls` sequential `get_sample` calls, after a warm-up.
async fn measure(client: &Client, calls: usize) -> Result<Vec<Duration>, BoxError> {
    let params = CallToolRequestParams::new("get_sample").with_arguments(
        json!({"sample_id": "S-0001"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut times = Vec::with_capacity(calls);
    for i in 0..warmup() + calls {
        let started = Instant::now();
        let result = client.call_tool(params.clone()).await?;
        let took = started.elapsed();
        if result.is_error == Some(true) {
            return Err(format!("get_sample failed: {result:?}").into());
        }
        if i >= warmup() {
            times.push(took);
        }
    }
    times.sort();
    Ok(times)
}

struct Row {
    path: &'static str,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn row(path: &'static str, times: &[Duration]) -> Row {
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    Row {
        path,
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn signed_us(a: Duration, b: Duration) -> String {
    let diff = a.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    format!("{diff:+.0} µs")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let calls: usize = std::env::var("ROUNDTRIP_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench_mode() { 3000 } else { 10 });
    let bin = warden_bin();
    let policies = repo().join("policies/genomics.policy");
    let policies = policies.to_string_lossy().into_owned();
    let dir = std::env::temp_dir().join(format!("warden-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let audit = dir.join("decisions.jsonl").to_string_lossy().into_owned();
    let exe = bin.to_string_lossy().into_owned();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let mut rows = Vec::new();

    let client = stdio_client(&bin, &s(&["demo-server"])).await?;
    rows.push(row("stdio, direct", &measure(&client, calls).await?));
    client.cancel().await?;

    let client = stdio_client(
        &bin,
        &s(&[
            "proxy",
            "--policies",
            &policies,
            "--audit-log",
            &audit,
            "--",
            &exe,
            "demo-server",
        ]),
    )
    .await?;
    rows.push(row(
        "stdio, through warden",
        &measure(&client, calls).await?,
    ));
    client.cancel().await?;

    let up = free_port();
    let _demo = Background::spawn(
        &bin,
        &s(&["demo-server", "--listen", &format!("127.0.0.1:{up}")]),
    )?;
    let client = http_client(up).await?;
    rows.push(row("HTTP, direct", &measure(&client, calls).await?));
    client.cancel().await?;

    let front = free_port();
    let _proxy = Background::spawn(
        &bin,
        &s(&[
            "proxy",
            "--policies",
            &policies,
            "--audit-log",
            &audit,
            "--listen",
            &format!("127.0.0.1:{front}"),
            "--upstream",
            &format!("http://127.0.0.1:{up}/mcp"),
        ]),
    )?;
    let client = http_client(front).await?;
    rows.push(row(
        "HTTP, through warden (HTTP upstream)",
        &measure(&client, calls).await?,
    ));
    client.cancel().await?;

    let front2 = free_port();
    let _proxy2 = Background::spawn(
        &bin,
        &s(&[
            "proxy",
            "--policies",
            &policies,
            "--audit-log",
            &audit,
            "--listen",
            &format!("127.0.0.1:{front2}"),
            "--",
            &exe,
            "demo-server",
        ]),
    )?;
    let client = http_client(front2).await?;
    rows.push(row(
        "HTTP, through warden (stdio upstream)",
        &measure(&client, calls).await?,
    ));
    client.cancel().await?;

    println!(
        "tools/call round trip, {calls} calls after {} warm-up, binary {}",
        warmup(),
        bin.display()
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.path,
            us(r.p50),
            us(r.p99),
            us(r.mean)
        );
    }
    println!();
    println!("warden's added latency:");
    for (through, direct) in [(1, 0), (3, 2)] {
        println!(
            "  {}: p50 {}, p99 {}",
            rows[through].path,
            signed_us(rows[through].p50, rows[direct].p50),
            signed_us(rows[through].p99, rows[direct].p99)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
