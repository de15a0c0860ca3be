//! How long `warden lint` takes on a large policy set.
//!
//! The set is generated deterministically (a fixed-seed SplitMix64, no
//! `rand`), so every run measures the same text. It mixes all five rule
//! kinds with tool globs and lists, server clauses, `when` conditions (via
//! agent / via server, tool annotations, identity conditions, argument
//! comparisons on strings, numbers and booleans, `in` lists, `matches`,
//! `exists`), reasons with placeholders, limits and a few shadow-mode rules,
//! under one `default deny`. The setup asserts that the set lints with no
//! error and no warning: a `shadowed-rule` warning would mean the generator
//! writes sets no one would keep.
//!
//! Groups (each at 1,000 and 10,000 rules):
//! - `parse/N`: [`parse_policy_set`] only.
//! - `lint_compile/N`: [`compile_policy_set`], which is what `warden lint`
//!   runs: parse, check, emit Cedar (built through Cedar's policy tree,
//!   `cedar_policy::pst`) and validate it strictly against the generated
//!   schema.
//!
//! It runs on mimalloc, the allocator of the `warden` binary.
//!
//! Run with `cargo bench -p warden-lang --bench compile`; the target is
//! lint + compile of 10,000 rules in at most one second.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use warden_lang::{Code, Severity, Sources, compile_policy_set, lint_policy_set, parse_policy_set};

// The allocator the `warden` binary runs `lint` and `compile` on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/generated/mod.rs"]
mod generated;
use generated::generate;

fn sources_of(rules: usize) -> Sources {
    let mut sources = Sources::new();
    sources.add(format!("generated-{rules}.policy"), generate(rules));
    sources
}

/// The generated set must be one `warden lint` accepts without a word.
fn assert_lints_clean(sources: &Sources, rules: usize) {
    let diags = lint_policy_set(sources);
    // The findings that fail the set (hint-default, below, does not).
    let shown: Vec<String> = diags
        .iter()
        .filter(|d| !matches!(d.code(), Code::HintDefault | Code::UpstreamAnnotation))
        .take(5)
        .map(|d| {
            let at = d
                .location()
                .map(|l| format!("{}:{}", l.line, l.column))
                .unwrap_or_default();
            format!("{} at {at}: {}", d.code().id(), d.message())
        })
        .collect();
    assert!(
        !diags.has_errors(),
        "generated {rules}-rule set has errors: {shown:#?}"
    );
    // hint-default is a note on the polarity of a tool-flag test, which
    // the generator picks at random, and upstream-annotation on a tool-flag
    // test of named tools the generated set states no annotation for;
    // every other warning is a defect.
    assert!(
        diags.iter().all(|d| d.severity() != Severity::Warning
            || matches!(d.code(), Code::HintDefault | Code::UpstreamAnnotation)),
        "generated {rules}-rule set has warnings: {shown:#?}"
    );
    let out = compile_policy_set(sources).expect("compiles");
    assert_eq!(out.policy_set.rules().len(), rules);
}

fn bench(c: &mut Criterion) {
    let sizes = [1_000usize, 10_000];
    let sets: Vec<(usize, Sources)> = sizes
        .iter()
        .map(|&n| {
            let s = sources_of(n);
            assert_lints_clean(&s, n);
            (n, s)
        })
        .collect();

    let mut group = c.benchmark_group("parse");
    for (n, sources) in &sets {
        if *n >= 10_000 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), sources, |b, s| {
            b.iter(|| parse_policy_set(black_box(s)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lint_compile");
    for (n, sources) in &sets {
        if *n >= 10_000 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(20));
        } else {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(10));
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), sources, |b, s| {
            b.iter(|| compile_policy_set(black_box(s)).expect("compiles"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
