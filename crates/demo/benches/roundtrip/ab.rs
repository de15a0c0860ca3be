//! A/B mode: the warden binary under test (`WARDEN_BIN`, else the release
//! build) against a baseline binary (`ROUNDTRIP_BASELINE_BIN`: a build of
//! an earlier commit), measured interleaved in one run, so that a change's
//! effect is not lost in the drift between runs (the same binary's HTTP p50
//! moved by 73 µs between two runs of latency mode).
//!
//! Two groups, each interleaved ([`measure_interleaved`]):
//! - stdio: direct to the demo server; through a bare byte relay
//!   ([`crate::relay`], the floor of any process in between); through the
//!   binary under test; through the baseline.
//! - HTTP: direct to the HTTP demo server; through a bare HTTP relay
//!   ([`crate::http_relay`], the floor of any HTTP proxy built of warden's
//!   HTTP parts); through `warden proxy --listen` of the binary under
//!   test; through the baseline's.
//!
//! Prints each row, what each adds over its direct path, and the binary
//! under test over the baseline, with the load average before and after.

use crate::common::{
    Background, BoxError, Row, TempDir, args, bench_mode, calls_per_path, demo_over_http,
    free_port, http_client, http_proxy, load_average, policies, print_table, proxy_args, row,
    signed_us, stdio_client, stdio_client_of, warden_bin, warmup,
};
use crate::latency::measure_interleaved;
use std::path::PathBuf;

/// `ROUNDTRIP_BASELINE_BIN`; under `cargo test` (the smoke pass) the
/// binary under test stands in for it when it is not set.
fn baseline_bin() -> Result<PathBuf, BoxError> {
    match std::env::var_os("ROUNDTRIP_BASELINE_BIN").map(PathBuf::from) {
        Some(p) if p.exists() => Ok(p),
        Some(p) => Err(format!("ROUNDTRIP_BASELINE_BIN: no file {}", p.display()).into()),
        None if !bench_mode() => Ok(warden_bin()),
        None => Err("ROUNDTRIP_MODE=ab needs ROUNDTRIP_BASELINE_BIN, a warden binary".into()),
    }
}

/// Whether `ROUNDTRIP_MODE=all` runs this mode: under `cargo test`, or
/// with a baseline given.
pub fn wanted_in_all() -> bool {
    !bench_mode() || std::env::var_os("ROUNDTRIP_BASELINE_BIN").is_some()
}

pub async fn run() -> Result<(), BoxError> {
    let calls = calls_per_path(10);
    let bin = warden_bin();
    let base = baseline_bin()?;
    let policies = policies();
    let dir = TempDir::new("roundtrip-ab")?;
    let exe = bin.to_string_lossy().into_owned();
    let load_before = load_average();

    // stdio: direct, the byte relay, the binary under test, the baseline.
    let direct = stdio_client(&bin, &args(&["demo-server"])).await?;
    let mut relay = tokio::process::Command::new(std::env::current_exe()?);
    relay
        .env("ROUNDTRIP_RELAY", "1")
        .args(["--", exe.as_str(), "demo-server"]);
    let (relayed, _) = stdio_client_of(relay).await?;
    let upstream = ["--", exe.as_str(), "demo-server"];
    let ours = stdio_client(
        &bin,
        &proxy_args(&policies, &dir.file("ours-stdio.jsonl"), &upstream),
    )
    .await?;
    let theirs = stdio_client(
        &base,
        &proxy_args(&policies, &dir.file("base-stdio.jsonl"), &upstream),
    )
    .await?;
    let stdio = [&direct, &relayed, &ours, &theirs];
    let mut t = measure_interleaved(&stdio.map(|c| (c, "get_sample")), calls)
        .await?
        .into_iter();
    let mut rows: Vec<Row> = Vec::new();
    for path in [
        "stdio, direct",
        "stdio, a bare byte relay",
        "stdio, through warden (under test)",
        "stdio, through warden (baseline)",
    ] {
        rows.push(row(path, &t.next().ok_or("a path without times")?));
    }
    for c in [direct, relayed, ours, theirs] {
        c.cancel().await?;
    }

    // HTTP: direct, the binary under test, the baseline.
    let (up, _demo) = demo_over_http(&bin)?;
    let (front, _proxy) = http_proxy(&bin, &policies, &dir.file("ours-http.jsonl"), up, &[])?;
    let (base_front, _base_proxy) =
        http_proxy(&base, &policies, &dir.file("base-http.jsonl"), up, &[])?;
    let relay_port = free_port();
    let mut relay = tokio::process::Command::new(std::env::current_exe()?);
    relay.env(
        "ROUNDTRIP_HTTP_RELAY",
        format!("{relay_port},http://127.0.0.1:{up}/mcp"),
    );
    let _relay = Background::spawn_cmd(relay, std::process::Stdio::null())?;
    let direct = http_client(up).await?;
    let relayed = http_client(relay_port).await?;
    let ours = http_client(front).await?;
    let theirs = http_client(base_front).await?;
    let http = [&direct, &relayed, &ours, &theirs];
    let mut t = measure_interleaved(&http.map(|c| (c, "get_sample")), calls)
        .await?
        .into_iter();
    for path in [
        "HTTP, direct",
        "HTTP, a bare HTTP relay",
        "HTTP, through warden (under test)",
        "HTTP, through warden (baseline)",
    ] {
        rows.push(row(path, &t.next().ok_or("a path without times")?));
    }
    for c in [direct, relayed, ours, theirs] {
        c.cancel().await?;
    }
    let load_after = load_average();

    println!(
        "A/B, tools/call round trip, {calls} calls per path after {} warm-up, interleaved",
        warmup()
    );
    println!("under test {}", bin.display());
    println!("baseline   {}", base.display());
    println!("load average before {load_before}, after {load_after}");
    print_table(&rows);
    println!();
    print_over(
        "added over the direct path:",
        &rows,
        &[(1, 0), (2, 0), (3, 0), (5, 4), (6, 4), (7, 4)],
    );
    print_over("under test over the baseline:", &rows, &[(2, 3), (6, 7)]);
    print_over(
        "under test over the bare relay of its transport (warden's own work):",
        &rows,
        &[(2, 1), (6, 5)],
    );
    Ok(())
}

/// Under `title`, each (row, other row) pair: what the first adds over the
/// second at p50 and p99.
fn print_over(title: &str, rows: &[Row], pairs: &[(usize, usize)]) {
    println!("{title}");
    for &(a, b) in pairs {
        println!(
            "  {}: p50 {}, p99 {}",
            rows[a].path,
            signed_us(rows[a].p50, rows[b].p50),
            signed_us(rows[a].p99, rows[b].p99)
        );
    }
}
