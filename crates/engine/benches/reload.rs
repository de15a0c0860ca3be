//! Save to in force: how long after a policy file is saved the engine
//! decides with the new version, through [`PolicyReloader::watch`] with the
//! default debounce ([`DEFAULT_DEBOUNCE`], 100 ms) and a real file system
//! watcher.
//!
//! Each sample writes a new version of the file (a changed comment, so the
//! version hash changes), alternately in place and by write-and-rename as
//! editors do, then polls `Engine::policies().version()` every 0.5 ms
//! until it changes. The time includes the debounce, reading, compiling
//! and validating the set, and the swap. Sets: policies/genomics.policy
//! and generated sets of 1,000 and 10,000 rules (compile time grows with
//! the set, so the last row is about the compiler).
//!
//! Run with `cargo bench -p warden-engine --bench reload`; it prints a
//! markdown table. Targets: at most 500 ms for the reference policy, at
//! most 1 s for 10,000 rules (issue 13).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_engine::{DEFAULT_DEBOUNCE, Engine, EngineOptions, PolicyReloader, load_bundle};

// The allocator of the `warden` binary, which does the reloads measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn generated(rules: usize) -> String {
    let mut out = String::from("default allow\n");
    for i in 0..rules {
        let _ = write!(
            out,
            "\ndeny rule-{i} {{\n  server \"svc-{}\"\n  tool \"tool_{i}_*\"\n  when via agent and args.target == \"t-{i}\"\n  reason \"no {{tool}} on {{args.target}}\"\n}}\n",
            i % 400
        );
    }
    out
}

fn save(path: &Path, text: &str, by_rename: bool) {
    if by_rename {
        let tmp = path.with_extension("policy.tmp~");
        std::fs::write(&tmp, text).expect("write temp");
        std::fs::rename(&tmp, path).expect("rename");
    } else {
        std::fs::write(path, text).expect("write");
    }
}

/// Save-to-in-force times of `samples` saves of `text` (with a changed
/// comment each time).
fn measure(name: &str, text: &str, samples: usize) -> (usize, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("{name}.policy"));
    std::fs::write(&path, text).expect("write");
    let engine = Arc::new(Engine::new(
        load_bundle(&path).expect("loads"),
        EngineOptions::default(),
    ));
    let rules = engine.policies().rules().len();
    let reloader = Arc::new(PolicyReloader::new(&path, Arc::clone(&engine)));
    let _handle = Arc::clone(&reloader)
        .watch(DEFAULT_DEBOUNCE, None)
        .expect("watch");
    // Let the watcher's start-up check and events settle.
    std::thread::sleep(Duration::from_millis(300));
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let before = engine.policies().version().to_string();
        let next = format!("# save {i}\n{text}");
        let started = Instant::now();
        save(&path, &next, i % 2 == 1);
        let deadline = started + Duration::from_secs(30);
        while engine.policies().version() == before {
            assert!(
                Instant::now() < deadline,
                "{name}: save {i} never came into force"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        times.push(started.elapsed());
        // Quiet time, so the next save is a burst of its own.
        std::thread::sleep(DEFAULT_DEBOUNCE * 3);
    }
    (rules, times)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` run a smoke test.
    let quick =
        !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--test");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let genomics = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/genomics.policy"
    ))
    .expect("genomics.policy");
    let mut sets = vec![("genomics", genomics, if quick { 2 } else { 20 })];
    if !quick {
        sets.push(("generated-1000", generated(1_000), 10));
        sets.push(("generated-10000", generated(10_000), 4));
    }
    println!();
    println!(
        "| set | rules | saves | save to in force min / p50 / max (debounce {} ms) |",
        DEFAULT_DEBOUNCE.as_millis()
    );
    println!("|---|---:|---:|---:|");
    for (name, text, samples) in sets {
        let (rules, mut times) = measure(name, &text, samples);
        times.sort_unstable();
        println!(
            "| {name} | {rules} | {samples} | {} / {} / {} |",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
        );
    }
    println!();
}
