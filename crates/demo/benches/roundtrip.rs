//! Proxy latency: the round trip of one `tools/call` (the demo server's
//! `get_sample`, allowed by policies/genomics.policy) made directly to the
//! demo server, through `warden proxy` and through the `warden serve`
//! gateway, over stdio and over Streamable HTTP, with real processes and a
//! real MCP client (rmcp). Prints p50, p99 and mean per path, warden's
//! added latency, the gateway's p50 and p99 over `warden proxy --listen`'s,
//! and the load average before and after.
//!
//! The gateway rows (`/servers/genomics/mcp` and the federated `/mcp`,
//! where the tool is `genomics__get_sample`) sit in front of the same HTTP
//! demo upstream as the `warden proxy --listen --upstream` row, and these
//! three paths are measured interleaved (blocks of calls in turn), so a
//! change in the machine's load falls on all three alike.
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
        Self::spawn_logged(bin, args, Stdio::null())
    }

    /// With its standard error going to `stderr` (a file, to show when the
    /// process does not come up).
    fn spawn_logged(bin: &Path, args: &[String], stderr: Stdio) -> Result<Self, BoxError> {
        let child = tokio::process::Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
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
    http_client_at(port, "/mcp").await
}

async fn http_client_at(port: u16, path: &str) -> Result<Client, BoxError> {
    wait_for_port(port).await?;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}{path}")),
    );
    Ok(().serve(transport).await?)
}

fn get_sample(tool: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_string()).with_arguments(
        json!({"sample_id": "S-0001"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

/// One timed call; an error result (a denial, a broken route) stops the bench.
async fn timed_call(client: &Client, params: &CallToolRequestParams) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let result = client.call_tool(params.clone()).await?;
    let took = started.elapsed();
    if result.is_error == Some(true) {
        return Err(format!("{} failed: {result:?}", params.name).into());
    }
    Ok(took)
}

/// Round-trip times of `calls` sequential `get_sample` calls, after a warm-up.
async fn measure(client: &Client, calls: usize) -> Result<Vec<Duration>, BoxError> {
    let params = get_sample("get_sample");
    let mut times = Vec::with_capacity(calls);
    for i in 0..warmup() + calls {
        let took = timed_call(client, &params).await?;
        if i >= warmup() {
            times.push(took);
        }
    }
    times.sort();
    Ok(times)
}

/// Calls per turn when paths are measured interleaved: long enough that a
/// path runs warm, short enough that a minute of load lands on every path.
const BLOCK: usize = 100;

/// Like [`measure`] for several paths at once (client, tool name): each
/// warms up, then they take turns, `BLOCK` calls each, until every path
/// has `calls` timed calls. Sorted times per path, in the order given.
async fn measure_interleaved(
    paths: &[(&Client, &str)],
    calls: usize,
) -> Result<Vec<Vec<Duration>>, BoxError> {
    let params: Vec<_> = paths.iter().map(|(_, tool)| get_sample(tool)).collect();
    for ((client, _), p) in paths.iter().zip(&params) {
        for _ in 0..warmup() {
            timed_call(client, p).await?;
        }
    }
    let mut times = vec![Vec::with_capacity(calls); paths.len()];
    while times[0].len() < calls {
        let n = BLOCK.min(calls - times[0].len());
        for (((client, _), p), t) in paths.iter().zip(&params).zip(&mut times) {
            for _ in 0..n {
                t.push(timed_call(client, p).await?);
            }
        }
    }
    for t in &mut times {
        t.sort();
    }
    Ok(times)
}

/// The 1, 5 and 15 minute load averages (Linux), or "?" elsewhere.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// The `warden serve` config: the one demo upstream as server `genomics`,
/// the proxy rows' policies, decisions to a file as the proxy rows do.
fn gateway_config(listen: u16, policies: &str, decision_log: &str, upstream: u16) -> String {
    let q = |s: &str| toml_string(s);
    format!(
        "listen = \"127.0.0.1:{listen}\"\npolicies = {}\ndecision_log = {}\n\n\
         [[server]]\nname = \"genomics\"\nurl = \"http://127.0.0.1:{upstream}/mcp\"\n",
        q(policies),
        q(decision_log),
    )
}

/// A TOML basic string (a path may hold a backslash or a quote), with
/// `${` escaped as the config reader wants (`$${`), so no path is expanded.
fn toml_string(s: &str) -> String {
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

    let load_before = load_average();
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

    let gateway = free_port();
    // The config in a directory of its own: `warden serve` watches the
    // config file's directory, and the decision logs' writes (one or two
    // per call) would wake that watch on every call, which is not what
    // these rows measure (see docs/performance.md).
    let config_dir = dir.join("gateway");
    std::fs::create_dir_all(&config_dir)?;
    let config = config_dir.join("warden.toml");
    let serve_log = dir.join("serve-decisions.jsonl");
    std::fs::write(
        &config,
        gateway_config(gateway, &policies, &serve_log.to_string_lossy(), up),
    )?;
    let serve_err = dir.join("serve.stderr");
    let _serve = Background::spawn_logged(
        &bin,
        &s(&["serve", "--config", &config.to_string_lossy()]),
        std::fs::File::create(&serve_err)?.into(),
    )?;
    let serve_failed = |e: BoxError| -> BoxError {
        let stderr = std::fs::read_to_string(&serve_err).unwrap_or_default();
        format!("warden serve: {e}\n{stderr}").into()
    };

    // The proxy and the two gateway routes, interleaved (see the module doc).
    let proxied = http_client(front).await?;
    let routed = http_client_at(gateway, "/servers/genomics/mcp")
        .await
        .map_err(serve_failed)?;
    let federated = http_client_at(gateway, "/mcp")
        .await
        .map_err(serve_failed)?;
    let mut times = measure_interleaved(
        &[
            (&proxied, "get_sample"),
            (&routed, "get_sample"),
            (&federated, "genomics__get_sample"),
        ],
        calls,
    )
    .await?
    .into_iter();
    for path in [
        "HTTP, through warden (HTTP upstream)",
        "HTTP, warden serve /servers/genomics/mcp",
        "HTTP, warden serve /mcp (federated)",
    ] {
        rows.push(row(path, &times.next().ok_or("a path without times")?));
    }
    for client in [proxied, routed, federated] {
        client.cancel().await?;
    }

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

    let load_after = load_average();

    println!(
        "tools/call round trip, {calls} calls after {} warm-up, binary {}",
        warmup(),
        bin.display()
    );
    println!("load average before {load_before}, after {load_after}");
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
    for (through, direct) in [(1, 0), (3, 2), (4, 2), (5, 2)] {
        println!(
            "  {}: p50 {}, p99 {}",
            rows[through].path,
            signed_us(rows[through].p50, rows[direct].p50),
            signed_us(rows[through].p99, rows[direct].p99)
        );
    }
    println!();
    println!(
        "warden serve over warden proxy --listen (same HTTP upstream; target: p50 within 10%):"
    );
    let proxy = &rows[3];
    for gw in &rows[4..6] {
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        let p50 = ratio(gw.p50, proxy.p50);
        println!(
            "  {}: p50 {:.2}× ({}), p99 {:.2}× ({}){}",
            gw.path,
            p50,
            signed_us(gw.p50, proxy.p50),
            ratio(gw.p99, proxy.p99),
            signed_us(gw.p99, proxy.p99),
            if p50 <= 1.10 { "" } else { "  [over 10%]" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
