//! State mode: what a shared state store costs a call end to end (issue
//! 14): `get_sample` through `warden proxy --listen` in front of the HTTP
//! demo server, with caps and rates in memory against a real Redis on
//! loopback (`--state redis://...`, started here), for
//! - a capped call (a cap on `get_sample` that it never reaches: its
//!   counts are read and its hold taken in one script while deciding; the
//!   commit is written while the upstream works on the call), and
//! - an uncapped call in a set with a cap (the cap is on another tool:
//!   the call ends the user's streaks, written while the upstream works).
//!
//! The four proxies are measured interleaved, in blocks of calls, so a
//! change in the machine's load falls on each alike; the load average is
//! printed before and after. Target (issue 14): at most +150 µs p50 for a
//! capped call over memory, +0 for an uncapped one.

use crate::common::{
    BoxError, TempDir, calls_per_path, demo_over_http, http_client, http_proxy, load_average,
    print_table, row, signed_us, warden_bin,
};
use crate::latency::measure_interleaved;
use crate::redis_server::RedisServer;

const CAPPED: &str = "default allow
cap-consecutive bench-cap {
  tool \"get_sample\"
  max 1000000000 per user
}
";
const CAP_ELSEWHERE: &str = "default allow
cap-consecutive bench-cap {
  tool \"start_pipeline_run\"
  max 1000000000 per user
}
";

pub async fn run() -> Result<(), BoxError> {
    let calls = calls_per_path(20);
    let bin = warden_bin();
    let dir = TempDir::new("roundtrip-state")?;
    let redis = RedisServer::start();
    let (up, _demo) = demo_over_http(&bin)?;
    let redis_url = redis.url();
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    for (i, (policy, state)) in [
        (CAPPED, None),
        (CAPPED, Some(redis_url.as_str())),
        (CAP_ELSEWHERE, None),
        (CAP_ELSEWHERE, Some(redis_url.as_str())),
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.file(&format!("policy-{i}.policy"));
        std::fs::write(&file, policy)?;
        let extra: Vec<&str> = state.map(|url| vec!["--state", url]).unwrap_or_default();
        let audit = dir.file(&format!("decisions-{i}.jsonl"));
        let (port, proxy) = http_proxy(&bin, &file, &audit, up, &extra)?;
        procs.push(proxy);
        ports.push(port);
    }
    let mut clients = Vec::new();
    for port in &ports {
        clients.push(http_client(*port).await?);
    }
    let load_before = load_average();
    let paths: Vec<_> = clients.iter().map(|c| (c, "get_sample")).collect();
    let times = measure_interleaved(&paths, calls).await?;
    let load_after = load_average();
    let names = [
        "capped, memory",
        "capped, Redis",
        "uncapped in a set with a cap, memory",
        "uncapped in a set with a cap, Redis",
    ];
    println!(
        "tools/call through warden proxy --listen (HTTP upstream), state in memory and in Redis, {calls} calls per path, interleaved"
    );
    println!("load average before {load_before}, after {load_after}");
    let rows: Vec<_> = names.iter().zip(&times).map(|(n, t)| row(n, t)).collect();
    print_table(&rows);
    println!("\nRedis over memory (target: capped +150 µs p50, uncapped +0):");
    for pair in rows.chunks(2) {
        println!(
            "  {}: p50 {}, p99 {}",
            pair[1].path,
            signed_us(pair[1].p50, pair[0].p50),
            signed_us(pair[1].p99, pair[0].p99)
        );
    }
    for c in clients {
        c.cancel().await?;
    }
    drop(procs);
    Ok(())
}
