//! What issue 12's budgets and time windows add to a decision: three small
//! sets around one call (an agent's `start_pipeline_run` on `genomics`),
//! each the one before plus one rule.
//!
//! - `plain-rate`: an allow and a plain rate limit (`max N per 1h per user`).
//! - `+budget`: the same plus a budget over `args.estimated_cost` per user
//!   per day (the engine reads the amount exactly, adds what the window
//!   used and reserves it).
//! - `+during`: the same plus `deny ... when not during weekdays
//!   08:00-18:00 "Europe/Berlin"` (the engine supplies the zone's local day
//!   and minute).
//!
//! The engines' wall clock is fixed at a Wednesday 10:00 in Berlin, so the
//! window is open and every call is allowed whatever the time the bench
//! runs at; the setup checks that the budget and the window are live (a
//! call without an amount is denied, and so is a call at 22:00).
//!
//! The three are measured in one run, interleaved in rounds, so that load
//! on the machine falls on all of them alike; the table gives each one's
//! p50 and p99, its p50 minus the plain rate limit's and the ratio, and the
//! load average before and after. Target: each addition costs at most 2 µs
//! p50 on top of the plain rate limit.

use super::{fmt_duration, percentiles_of};
use criterion::Criterion;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_engine::state::Clock;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
};
use warden_lang::{Sources, compile_policy_set};

/// An allow for the call and a rate limit it never reaches.
const PLAIN: &str = r#"default deny

allow agents-start-runs {
  server "genomics"
  tool "start_pipeline_run"
  when via agent
}

rate-limit runs-per-hour {
  server "genomics"
  tool "start_pipeline_run"
  max 1000000 per 1h per user
}
"#;

/// A budget the call never crosses.
const BUDGET: &str = r#"
budget compute-per-day {
  server "genomics"
  tool "start_pipeline_run"
  when via agent
  sum args.estimated_cost
  max 1000000000 per 1d per user
}
"#;

/// Open at the engines' fixed time.
const DURING: &str = r#"
deny runs-only-in-working-hours {
  server "genomics"
  tool "start_pipeline_run"
  when via agent and not during weekdays 08:00-18:00 "Europe/Berlin"
}
"#;

/// 2026-12-02 (a Wednesday) 09:00 UTC: 10:00 in Berlin.
const WEDNESDAY_10_BERLIN: i64 = 1_796_202_000_000;
/// The same day at 22:00 in Berlin.
const WEDNESDAY_22_BERLIN: i64 = WEDNESDAY_10_BERLIN + 12 * 3_600_000;

/// Monotonic time runs; the wall clock stands still at `wall`.
#[derive(Debug)]
struct FixedWall {
    wall: i64,
}

impl Clock for FixedWall {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_millis(&self) -> i64 {
        self.wall
    }
}

/// One row: a set and an engine deciding the call against it.
pub(crate) struct Feature {
    pub(crate) label: &'static str,
    engine: Engine,
    call: CallContext,
}

impl Feature {
    fn decide(&self) -> bool {
        self.engine.decide(black_box(&self.call)).is_allow()
    }
}

fn engine(text: &str, wall: i64) -> Engine {
    let mut sources = Sources::new();
    sources.add("features.policy", text.to_string());
    let compiled = match compile_policy_set(&sources) {
        Ok(out) => out.policy_set,
        Err(diags) => {
            let shown: Vec<String> = diags
                .iter()
                .map(|d| format!("{}: {}", d.code().id(), d.message()))
                .collect();
            panic!("the features set does not compile: {shown:#?}");
        }
    };
    let options = EngineOptions {
        clock: Arc::new(FixedWall { wall }),
        ..EngineOptions::default()
    };
    Engine::new(PolicyBundle::new(compiled, "features".into()), options)
}

fn call() -> CallContext {
    CallContext {
        identity: Identity {
            user: "ada".to_string(),
            groups: vec!["lab".to_string()],
            agent: Some("claude-code".to_string()),
            model: Some("claude-sonnet-4".to_string()),
            ..Identity::default()
        },
        session: "sess-7f3a9c".to_string(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("genomics".to_string()),
        },
        server: "genomics".to_string(),
        tool: "start_pipeline_run".to_string(),
        arguments: json!({
            "sample_id": "S-0001",
            "pipeline": "wgs-align",
            "priority": 5,
            "estimated_cost": 600.25
        }),
        ..CallContext::default()
    }
}

fn denied_by(engine: &Engine, call: &CallContext) -> Vec<String> {
    match engine.decide(call).outcome {
        Outcome::Deny(d) => d.rules.into_iter().map(|h| h.rule).collect(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The three rows, checked: each allows the call, and the budget and the
/// window are live.
pub(crate) fn features() -> Vec<Feature> {
    let sets = [
        ("plain-rate", PLAIN.to_string()),
        ("+budget", format!("{PLAIN}{BUDGET}")),
        ("+during", format!("{PLAIN}{BUDGET}{DURING}")),
    ];
    let rows: Vec<Feature> = sets
        .iter()
        .map(|(label, text)| Feature {
            label,
            engine: engine(text, WEDNESDAY_10_BERLIN),
            call: call(),
        })
        .collect();
    for row in &rows {
        let decided = row.engine.decide(&row.call);
        assert!(
            decided.is_allow(),
            "{}: the call is not allowed: {:?}",
            row.label,
            decided.outcome
        );
    }
    let mut no_amount = call();
    no_amount.arguments = json!({"sample_id": "S-0001", "pipeline": "wgs-align"});
    assert_eq!(
        denied_by(&rows[1].engine, &no_amount),
        ["compute-per-day"],
        "+budget: a call without an amount must be denied by the budget"
    );
    let night = engine(&sets[2].1, WEDNESDAY_22_BERLIN);
    assert_eq!(
        denied_by(&night, &call()),
        ["runs-only-in-working-hours"],
        "+during: a call at 22:00 in Berlin must be denied by the window"
    );
    rows
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg says.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Times the rows interleaved (every round times a batch of each) and
/// prints their percentiles and the p50 deltas over the first row.
pub(crate) fn table(rows: &[Feature], quick: bool) {
    let (rounds, batch) = if quick { (2, 20) } else { (50, 2_000) };
    for row in rows {
        for _ in 0..batch.min(1_000) {
            black_box(row.decide());
        }
    }
    let before = load_average();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds * batch); rows.len()];
    for _ in 0..rounds {
        for (row, times) in rows.iter().zip(times.iter_mut()) {
            for _ in 0..batch {
                let t = Instant::now();
                black_box(row.decide());
                times.push(t.elapsed());
            }
        }
    }
    let after = load_average();
    println!();
    println!("load average (1, 5, 15 min): {before} before, {after} after");
    println!();
    println!(
        "| limits | decide p50 / p99 | p50 − plain-rate p50 | p50 ÷ plain-rate p50 | samples |"
    );
    println!("|---|---:|---:|---:|---:|");
    let base = percentiles_of(&mut times[0]).0;
    for (row, times) in rows.iter().zip(times.iter_mut()) {
        let (p50, p99) = percentiles_of(times);
        let delta = p50.as_nanos() as f64 - base.as_nanos() as f64;
        println!(
            "| {} | {} / {} | {:+.2} µs | {:.2}× | {} |",
            row.label,
            fmt_duration(p50),
            fmt_duration(p99),
            delta / 1_000.0,
            p50.as_secs_f64() / base.as_secs_f64(),
            times.len()
        );
    }
    println!();
}

pub(crate) fn criterion_group(c: &mut Criterion, rows: &[Feature]) {
    let mut group = c.benchmark_group("limit_features");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for row in rows {
        group.bench_function(row.label, |b| b.iter(|| row.decide()));
    }
    group.finish();
}
