//! The decision log's write path: the old way (each caller encodes its
//! line, takes the log's lock, writes and flushes it, and with fsync syncs
//! it, on its own thread) against the group-commit writer
//! ([`DecisionLog::write_decision`]: the lines of all waiting callers in
//! one `write(2)`, one `fdatasync` per group), with 1 and 32 concurrent
//! callers, fsync off and on, to a real file under the target directory
//! (not /tmp, which may be tmpfs, where fsync costs nothing).
//!
//! Its own pass first: each cell runs its callers for a fixed time, each
//! caller timing every call, and a markdown table gives lines/s, the
//! per-call p50 and p99, and the ratio of group commit to the old way in
//! the same run, with the load average before and after. Then criterion
//! groups (`log_write/{old,group}{,_fsync}/{1,32}`, one element per line)
//! for the same cells. `LOG_BENCH_SECS` sets the time per cell of the own
//! pass (default 2).
//!
//! A last group (`log_chain/{encode,encode_and_chain}`) prices the hash
//! chain: a line's SHA-256 and the splice of `seq` and `prev`, against
//! encoding the line alone.
//!
//! Run with `cargo bench -p warden-engine --bench log`.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};
use warden_engine::log::LogOptions;
use warden_engine::{CallContext, Decided, DecisionLog, Engine, EngineOptions, PolicyBundle};

/// The decision log as it was: one lock, each caller writing its own line.
struct OldLog {
    encoder: DecisionLog,
    file: Mutex<File>,
    fsync: bool,
}

impl OldLog {
    fn open(path: &Path, fsync: bool) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the log");
        OldLog {
            encoder: DecisionLog::to_writer(std::io::sink()),
            file: Mutex::new(file),
            fsync,
        }
    }

    fn write_decision(&self, call: &CallContext, decided: &Decided) {
        let mut line = self.encoder.line(call, decided, None).expect("encodes");
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes()).expect("write");
        f.flush().expect("flush");
        if self.fsync {
            f.sync_data().expect("fdatasync");
        }
    }
}

enum Log {
    Old(OldLog),
    Group(DecisionLog),
}

impl Log {
    fn open(group: bool, fsync: bool, path: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        if group {
            Log::Group(
                DecisionLog::open_with(
                    path,
                    LogOptions {
                        fsync,
                        ..LogOptions::default()
                    },
                )
                .expect("open the log"),
            )
        } else {
            Log::Old(OldLog::open(path, fsync))
        }
    }

    fn write(&self, call: &CallContext, decided: &Decided) {
        match self {
            Log::Old(l) => l.write_decision(call, decided),
            Log::Group(l) => l.write_decision(call, decided).expect("logged"),
        }
    }
}

/// A cell of the table: which log, fsync or not, how many callers.
#[derive(Clone, Copy)]
struct Cell {
    group: bool,
    fsync: bool,
    callers: usize,
}

impl Cell {
    fn name(&self) -> String {
        format!(
            "{}{}",
            if self.group { "group" } else { "old" },
            if self.fsync { "_fsync" } else { "" }
        )
    }
}

fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for fsync in [false, true] {
        for callers in [1, 32] {
            for group in [false, true] {
                out.push(Cell {
                    group,
                    fsync,
                    callers,
                });
            }
        }
    }
    out
}

fn decision(engine: &Engine, n: usize) -> (CallContext, Decided) {
    let call = CallContext {
        server: "genomics".into(),
        tool: "export_samples".into(),
        arguments: serde_json::json!({"dataset": format!("ds-{n}"), "format": "vcf", "rows": 500}),
        session: format!("session-{n}"),
        ..CallContext::default()
    };
    let decided = engine.decide(&call);
    (call, decided)
}

/// Every caller writes for `run_for`, timing each call.
fn run_cell(cell: Cell, path: &Path, engine: &Engine, run_for: Duration) -> (f64, Vec<Duration>) {
    let log = Log::open(cell.group, cell.fsync, path);
    let barrier = Barrier::new(cell.callers + 1);
    let (lines, mut times, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cell.callers)
            .map(|t| {
                let (log, barrier) = (&log, &barrier);
                let (call, decided) = decision(engine, t);
                s.spawn(move || {
                    let mut times = Vec::new();
                    barrier.wait();
                    let until = Instant::now() + run_for;
                    while Instant::now() < until {
                        let start = Instant::now();
                        log.write(&call, &decided);
                        times.push(start.elapsed());
                    }
                    times
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let times: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("a caller panicked"))
            .collect();
        (times.len(), times, started.elapsed())
    });
    times.sort_unstable();
    (lines as f64 / wall.as_secs_f64(), times)
}

fn pct(times: &[Duration], p: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn own_pass(dir: &Path, engine: &Engine, quick: bool) {
    let secs: f64 = std::env::var("LOG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.05 } else { 2.0 });
    let run_for = Duration::from_secs_f64(secs);
    println!("load average before: {}", loadavg());
    println!();
    println!("| fsync | callers | log | lines/s | p50 per call | p99 per call | lines/s vs old |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    let mut old_rate = 0.0;
    for cell in cells() {
        let (rate, times) = run_cell(cell, &dir.join("own.jsonl"), engine, run_for);
        let ratio = if cell.group {
            format!("{:.2}×", rate / old_rate)
        } else {
            old_rate = rate;
            "1×".into()
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            if cell.fsync { "on" } else { "off" },
            cell.callers,
            if cell.group {
                "group commit"
            } else {
                "old (per call)"
            },
            rate,
            us(pct(&times, 0.5)),
            us(pct(&times, 0.99)),
            ratio
        );
    }
    println!();
    println!("load average after: {}", loadavg());
}

fn criterion_groups(c: &mut Criterion, dir: &Path, engine: &Engine) {
    let mut g = c.benchmark_group("log_write");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for cell in cells() {
        let log = Log::open(cell.group, cell.fsync, &dir.join("criterion.jsonl"));
        let calls: Vec<_> = (0..cell.callers).map(|t| decision(engine, t)).collect();
        g.throughput(Throughput::Elements(cell.callers as u64));
        g.bench_function(BenchmarkId::new(cell.name(), cell.callers), |b| {
            b.iter_custom(|iters| {
                // Each caller writes `iters` lines: one iteration is one
                // line from every caller.
                let barrier = Barrier::new(cell.callers + 1);
                std::thread::scope(|s| {
                    for (call, decided) in &calls {
                        let (log, barrier) = (&log, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            for _ in 0..iters {
                                log.write(call, decided);
                            }
                        });
                    }
                    barrier.wait();
                    let started = Instant::now();
                    // The scope joins every caller before it returns.
                    started
                })
                .elapsed()
            });
        });
    }
    g.finish();

    // What the hash chain adds to a line: its SHA-256 and hex, the splice
    // of `seq` and `prev` (the writer's `ChainState::append` does exactly
    // this work), against encoding the line alone, in the same run.
    let mut g = c.benchmark_group("log_chain");
    let log = DecisionLog::to_writer(std::io::sink());
    let (call, decided) = decision(engine, 0);
    g.bench_function("encode", |b| {
        b.iter(|| log.line(&call, &decided, None).expect("encodes"))
    });
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    g.bench_function("encode_and_chain", |b| {
        b.iter(|| {
            let line = log.line(&call, &decided, None).expect("encodes");
            buf.clear();
            buf.extend_from_slice(b"{\"seq\":7,\"prev\":\"");
            buf.extend_from_slice(warden_engine::log::chain::hex(&prev).as_bytes());
            buf.extend_from_slice(b"\",");
            buf.extend_from_slice(&line.as_bytes()[1..]);
            prev = warden_engine::log::chain::line_hash(&buf);
            buf.len()
        })
    });
    g.finish();
}

fn main() {
    let dir: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("log-bench");
    std::fs::create_dir_all(&dir).expect("a directory for the bench's logs");
    let policy = "default deny\n\nallow exports {\n  server \"genomics\"\n  tool \"export_*\"\n}\n";
    let mut sources = warden_lang::Sources::new();
    sources.add("bench.policy", policy);
    let set = warden_lang::compile_policy_set(&sources)
        .expect("compiles")
        .policy_set;
    let engine = Engine::new(
        PolicyBundle::new(set, "bench".into()),
        EngineOptions::default(),
    );
    // `cargo bench` passes `--bench`; `cargo test` runs this binary without
    // it (criterion then runs each routine once): a short own pass then.
    let quick = !std::env::args().any(|a| a == "--bench")
        || std::env::args().any(|a| a == "--test" || a == "--list");
    if !std::env::args().any(|a| a == "--list" || a == "--profile-time") {
        own_pass(&dir, &engine, quick);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &dir, &engine);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
