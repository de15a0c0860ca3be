//! Replicas mode: throughput of 1 against 3 `warden proxy --listen`
//! replicas sharing caps and rates in one Redis (`--state redis://...`),
//! in front of one demo server over HTTP, with `ROUNDTRIP_SESSIONS`
//! sessions (default 32) calling `get_sample` at once, spread round-robin
//! over the replicas. The reference policy has caps, so every forwarded
//! call ends its streaks in Redis (one round trip). The paths take turns
//! in blocks, as in load mode; the load average is printed before and
//! after. On this 2-core machine the three replicas, the upstream, Redis
//! and the client share two cores: the figure says what replicas cost
//! here, not what they buy on separate machines.

use crate::common::{
    Background, BoxError, TempDir, bench_mode, demo_over_http, env_count, http_proxy, policies,
    row, signed_us, us, warden_bin,
};
use crate::load::{Path, http_sessions, interleave};
use crate::redis_server::RedisServer;

/// `n` replicas in front of the upstream on `up`, sharing `redis`.
fn replicas(
    n: usize,
    up: u16,
    redis: &RedisServer,
    dir: &TempDir,
) -> Result<(Vec<u16>, Vec<Background>), BoxError> {
    let bin = warden_bin();
    let (mut ports, mut procs) = (Vec::new(), Vec::new());
    for i in 0..n {
        let audit = dir.file(&format!("decisions-{n}-{i}.jsonl"));
        let (port, proxy) = http_proxy(&bin, &policies(), &audit, up, &["--state", &redis.url()])?;
        procs.push(proxy);
        ports.push(port);
    }
    Ok((ports, procs))
}

/// `sessions` sessions spread round-robin over `ports`.
async fn spread(ports: &[u16], sessions: usize) -> Result<Vec<crate::common::Client>, BoxError> {
    let mut out = Vec::with_capacity(sessions);
    for i in 0..sessions {
        out.extend(http_sessions(ports[i % ports.len()], 1).await?);
    }
    Ok(out)
}

pub async fn run() -> Result<(), BoxError> {
    let smoke = !bench_mode();
    let sessions = env_count("ROUNDTRIP_SESSIONS", if smoke { 4 } else { 32 });
    let per_session = env_count("ROUNDTRIP_LOAD_CALLS", if smoke { 4 } else { 100 });
    let warm = if smoke { 1 } else { 20 };
    let bin = warden_bin();
    let dir = TempDir::new("roundtrip-replicas")?;
    let redis = RedisServer::start();
    let (up, demo) = demo_over_http(&bin)?;
    let (one, one_procs) = replicas(1, up, &redis, &dir)?;
    let (three, three_procs) = replicas(3, up, &redis, &dir)?;
    let mut paths = vec![
        Path::new(
            "HTTP, direct",
            http_sessions(up, sessions).await?,
            vec![demo],
        ),
        Path::new(
            "1 replica, Redis state",
            spread(&one, sessions).await?,
            one_procs,
        ),
        Path::new(
            "3 replicas, Redis state",
            spread(&three, sessions).await?,
            three_procs,
        ),
    ];
    let (load_before, load_after) = interleave(&mut paths, warm, per_session).await?;
    println!(
        "replicas: {sessions} sessions per path at once, {per_session} calls each after {warm} \
         warm-up, binary {}",
        bin.display()
    );
    println!("load average before {load_before}, after {load_after}");
    println!("| path | calls/s | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    let mut rates = Vec::new();
    for p in &mut paths {
        p.times.sort();
        let r = row(p.name, &p.times);
        let rate = p.calls_per_second();
        println!(
            "| {} | {rate:.0} | {} | {} | {} |",
            r.path,
            us(r.p50),
            us(r.p99),
            us(r.mean)
        );
        rates.push((r, rate));
    }
    let (d, d_rate) = &rates[0];
    for (r, rate) in &rates[1..] {
        println!(
            "  {}: p50 {}, p99 {}, calls/s {:.2}× direct",
            r.path,
            signed_us(r.p50, d.p50),
            signed_us(r.p99, d.p99),
            rate / d_rate
        );
    }
    println!(
        "  3 replicas ÷ 1 replica: calls/s {:.2}×",
        rates[2].1 / rates[1].1
    );
    for path in paths {
        path.close().await;
    }
    Ok(())
}
