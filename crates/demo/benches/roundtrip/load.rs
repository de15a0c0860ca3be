//! Load mode: `ROUNDTRIP_SESSIONS` sessions (default 32) per path calling
//! `get_sample` at once, each call after the session's previous one
//! answered. Per path: calls per second (calls over the wall time the
//! path's blocks took) and p50, p99 and mean of every call's round trip,
//! directly and through warden, over stdio and HTTP, and through
//! `mcp-proxy` when present ([`crate::peer`]).
//!
//! Over stdio every session is a process of its own (a demo server, or a
//! `warden proxy` with its demo server child); over HTTP all sessions
//! share one server process. The paths take turns: each session makes
//! `LOAD_BLOCK` calls, all paths in turn, until every session made
//! `ROUNDTRIP_LOAD_CALLS` (default 100), so a change in the machine's load
//! falls on every path alike. The load average is printed before and
//! after.

use crate::common::{
    Background, BoxError, Client, Row, TempDir, args, bench_mode, demo_over_http, env_count,
    free_port, http_client, load_average, policies, proxy_args, row, sample_call, signed_us,
    stdio_client, timed_call, us, warden_bin,
};
use crate::peer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Calls per session per turn.
const LOAD_BLOCK: usize = 10;

/// One path under load: its sessions, and the processes behind them.
pub(crate) struct Path {
    pub(crate) name: &'static str,
    pub(crate) sessions: Vec<Arc<Client>>,
    _processes: Vec<Background>,
    pub(crate) times: Vec<Duration>,
    wall: Duration,
}

impl Path {
    pub(crate) fn new(
        name: &'static str,
        sessions: Vec<Client>,
        processes: Vec<Background>,
    ) -> Self {
        Path {
            name,
            sessions: sessions.into_iter().map(Arc::new).collect(),
            _processes: processes,
            times: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    /// Every session makes `n` calls, all sessions at once; the times are
    /// kept when `timed`.
    pub(crate) async fn block(&mut self, n: usize, timed: bool) -> Result<(), BoxError> {
        let mut set = JoinSet::new();
        let started = Instant::now();
        for session in &self.sessions {
            let session = Arc::clone(session);
            set.spawn(async move {
                let params = sample_call("get_sample");
                let mut times = Vec::with_capacity(n);
                for _ in 0..n {
                    times.push(timed_call(&session, &params).await?);
                }
                Ok::<_, BoxError>(times)
            });
        }
        let mut times = Vec::with_capacity(n * self.sessions.len());
        while let Some(done) = set.join_next().await {
            times.extend(done??);
        }
        if timed {
            self.wall += started.elapsed();
            self.times.extend(times);
        }
        Ok(())
    }

    pub(crate) fn calls_per_second(&self) -> f64 {
        self.times.len() as f64 / self.wall.as_secs_f64()
    }

    pub(crate) async fn close(self) {
        for session in self.sessions {
            if let Ok(client) = Arc::try_unwrap(session) {
                let _ = client.cancel().await;
            }
        }
    }
}

/// Every path warms up with `warm` calls per session, then the paths take
/// turns, `LOAD_BLOCK` calls per session each, until every session made
/// `per_session` timed calls; the load average before and after.
pub(crate) async fn interleave(
    paths: &mut [Path],
    warm: usize,
    per_session: usize,
) -> Result<(String, String), BoxError> {
    let load_before = load_average();
    for path in paths.iter_mut() {
        path.block(warm, false).await?;
    }
    let mut done = 0;
    while done < per_session {
        let n = LOAD_BLOCK.min(per_session - done);
        for path in paths.iter_mut() {
            path.block(n, true).await?;
        }
        done += n;
    }
    Ok((load_before, load_average()))
}

/// `n` stdio sessions of `bin args`, started a few at a time.
async fn stdio_sessions(
    bin: &std::path::Path,
    args: &[String],
    n: usize,
) -> Result<Vec<Client>, BoxError> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(stdio_client(bin, args).await?);
    }
    Ok(sessions)
}

/// `n` HTTP sessions of the server on `port`.
pub(crate) async fn http_sessions(port: u16, n: usize) -> Result<Vec<Client>, BoxError> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(http_client(port).await?);
    }
    Ok(sessions)
}

pub async fn run() -> Result<(), BoxError> {
    let smoke = !bench_mode();
    let sessions = env_count("ROUNDTRIP_SESSIONS", if smoke { 4 } else { 32 });
    let per_session = env_count("ROUNDTRIP_LOAD_CALLS", if smoke { 4 } else { 100 });
    let warm = if smoke { 1 } else { 20 };
    let bin = warden_bin();
    let exe = bin.to_string_lossy().into_owned();
    let policies = policies();
    let dir = TempDir::new("roundtrip-load")?;
    let audit = dir.file("decisions.jsonl");

    let mut paths = Vec::new();
    paths.push(Path::new(
        "stdio, direct",
        stdio_sessions(&bin, &args(&["demo-server"]), sessions).await?,
        Vec::new(),
    ));
    paths.push(Path::new(
        "stdio, through warden",
        stdio_sessions(
            &bin,
            &proxy_args(&policies, &audit, &["--", &exe, "demo-server"]),
            sessions,
        )
        .await?,
        Vec::new(),
    ));
    let (up, demo) = demo_over_http(&bin)?;
    paths.push(Path::new(
        "HTTP, direct",
        http_sessions(up, sessions).await?,
        vec![demo],
    ));
    let front = free_port();
    let proxy = Background::spawn(
        &bin,
        &proxy_args(
            &policies,
            &audit,
            &[
                "--listen",
                &format!("127.0.0.1:{front}"),
                "--upstream",
                &format!("http://127.0.0.1:{up}/mcp"),
            ],
        ),
    )?;
    paths.push(Path::new(
        "HTTP, through warden (HTTP upstream)",
        http_sessions(front, sessions).await?,
        vec![proxy],
    ));
    let front2 = free_port();
    let proxy2 = Background::spawn(
        &bin,
        &proxy_args(
            &policies,
            &audit,
            &[
                "--listen",
                &format!("127.0.0.1:{front2}"),
                "--",
                &exe,
                "demo-server",
            ],
        ),
    )?;
    paths.push(Path::new(
        "HTTP, through warden (stdio upstream)",
        http_sessions(front2, sessions).await?,
        vec![proxy2],
    ));
    if let Some(peer) = peer::find() {
        match peer::http_to_stdio(&peer, &bin).await {
            Err(e) => eprintln!("mcp-proxy (HTTP → stdio) did not start, row left out: {e}"),
            Ok((process, port, first)) => {
                let mut clients = vec![first];
                clients.extend(http_sessions(port, sessions - 1).await?);
                paths.push(Path::new(
                    "HTTP, through mcp-proxy (stdio upstream)",
                    clients,
                    vec![process],
                ));
            }
        }
    }

    let (load_before, load_after) = interleave(&mut paths, warm, per_session).await?;

    let rows: Vec<(Row, f64)> = paths
        .iter_mut()
        .map(|p| {
            p.times.sort();
            (row(p.name, &p.times), p.calls_per_second())
        })
        .collect();
    println!(
        "load: {sessions} sessions per path at once, {per_session} calls each after {warm} \
         warm-up, binary {}",
        bin.display()
    );
    println!("load average before {load_before}, after {load_after}");
    println!("| path | calls/s | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for (r, rate) in &rows {
        println!(
            "| {} | {rate:.0} | {} | {} | {} |",
            r.path,
            us(r.p50),
            us(r.p99),
            us(r.mean)
        );
    }
    println!();
    println!("added under load (p50, p99; calls/s through ÷ direct):");
    for (through, direct) in [(1, 0), (3, 2), (4, 2), (5, 2)] {
        let (Some((t, t_rate)), Some((d, d_rate))) = (rows.get(through), rows.get(direct)) else {
            continue;
        };
        println!(
            "  {}: p50 {}, p99 {}, calls/s {:.2}×",
            t.path,
            signed_us(t.p50, d.p50),
            signed_us(t.p99, d.p99),
            t_rate / d_rate
        );
    }
    for path in paths {
        path.close().await;
    }
    Ok(())
}
