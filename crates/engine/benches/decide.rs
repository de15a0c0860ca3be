//! How long one decision takes, and how that compares with Cedar alone.
//!
//! Policy sets of 10, 100, 1,000 and 10,000 rules are generated
//! deterministically (a fixed-seed SplitMix64, the approach of
//! `crates/lang/benches/compile.rs`): servers with their own tool
//! vocabularies, rules naming tools exactly or by glob, all five rule
//! kinds, `when` conditions on provenance, identity, annotations and
//! arguments, a few shadow-mode rules, under `default deny`. Two shapes
//! (see [`Shape`]): the realistic one grows the number of servers with the
//! set (`max(20, rules / 25)`) and keeps 8 org-wide rules (no `server`), so
//! a slice is what one tool meets in a real deployment; the dense one (the
//! first generator: 20 servers whatever the size, 8% org-wide rules) is
//! kept at 10,000 rules as a worst case, its slice holds 156 rules.
//!
//! A handful of fixed rules make sure the benchmarked call
//! (`export_samples` on `genomics`) meets real work in its slice: an allow
//! that grants it, denies and a confirmation whose conditions are false, a
//! cap and a rate limit that count it. Generated rules that would deny or
//! confirm that call are left out (and replaced by the next ones the
//! generator writes), so every iteration decides Allow; the setup asserts
//! it.
//!
//! Groups, each at every size:
//! - `warden_decide/N`: [`Engine::decide`] with a warm slice cache. It
//!   includes everything the engine does per call: argument checks, slice
//!   lookup, counters, building the Cedar request and entities, and the
//!   evaluation (enforced, shadow and counting policies in one Cedar call).
//!   `record_forwarded` is never called, so counters stay at zero and the
//!   decision is the same every time. The same identity calls every time,
//!   so the engine's per-slice entity cache hits, as it does for an agent
//!   session calling the same tool again.
//! - `cedar_slice/N`: `Authorizer::is_authorized` over the call's slice as
//!   compiled (`Slice::enforced`, full policies with their matchers) with a
//!   request and entities built once, outside the loop.
//! - `cedar_whole_set/N`: the same over every enforced policy of the set,
//!   as an engine without slicing would do.
//!
//! Before the criterion groups, the binary runs its own pass that times
//! each call with `Instant` and prints p50/p99 as a markdown table
//! (skipped with `--profile-time`). `WARDEN_BENCH_SIZES=100,10000-dense`
//! limits the rows (`none`: no sizes). A second table and the criterion
//! group `limit_features` measure what a budget and a `during` window add
//! to a plain rate limit ([`features`]); `-- limit_features` runs only that
//! group after the tables.
//!
//! The generated sets are in [`generate`].
//!
//! The bench runs on mimalloc (all three groups alike): with glibc's
//! allocator a decision spends about a third of its time in malloc/free.
//!
//! The decision memo is on, as in warden: the call is the same every time,
//! so every timed call after the first is a memo hit.
//! `WARDEN_BENCH_MEMO=off` measures the evaluation a call with new input
//! pays (the memo's miss path, without the insert).
//!
//! Run with `cargo bench -p warden-engine --bench decide`. Targets: p99 of
//! a decision at most 20 µs at 10,000 rules, and within 2× of Cedar alone
//! on the same slice.

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use criterion::{BenchmarkId, Criterion};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};
use warden_engine::args::project_args;
use warden_engine::memo::MemoMode;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
    ToolAnnotations,
};
use warden_lang::{ArgType, CompiledPolicySet, Sources, compile_policy_set};

// See the module docs: the same allocator for warden and for Cedar alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "decide/features.rs"]
mod features;
#[path = "decide/generate.rs"]
mod generate;
use generate::{ANCHOR_NAMES, ANCHOR_RULES, Shape, TARGET_SERVER, TARGET_TOOL, generate};

fn target_call() -> CallContext {
    CallContext {
        identity: Identity {
            user: "ada".to_string(),
            groups: vec!["analysts".to_string(), "staff".to_string()],
            agent: Some("claude-code".to_string()),
            model: Some("claude-sonnet-4".to_string()),
            ..Identity::default()
        },
        session: "sess-7f3a9c".to_string(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("genomics".to_string()),
        },
        server: TARGET_SERVER.to_string(),
        tool: TARGET_TOOL.to_string(),
        annotations: ToolAnnotations {
            read_only_hint: Some(true),
            destructive_hint: Some(false),
            idempotent_hint: Some(true),
            open_world_hint: Some(false),
        },
        arguments: json!({
            "format": "cram",
            "limit": 1000,
            "project": "p-1043",
            "sample_id": "S-0042",
            "region": "eu-west-1",
            "dry_run": false,
            "resources": { "cpus": 8, "gpu": false },
            "owner": { "team": "ops" }
        }),
        confirmed: Vec::new(),
    }
}

/// Compiles the set of `rules` rules, leaving out generated rules until the
/// target call is allowed.
fn policy_set(rules: usize, shape: Shape) -> CompiledPolicySet {
    let mut excluded = HashSet::new();
    loop {
        let text = generate(rules, shape, &excluded);
        let mut sources = Sources::new();
        sources.add(format!("generated-{rules}.policy"), text.clone());
        let compiled = match compile_policy_set(&sources) {
            Ok(out) => out.policy_set,
            Err(diags) => {
                // The checker refuses some random conditions (a rule whose
                // `when` can never hold, say): leave those rules out too.
                let refused: Vec<String> = diags
                    .iter()
                    .filter(|d| d.is_error())
                    .filter_map(|d| d.primary_span())
                    .filter_map(|span| rule_at(&text, span.start))
                    .collect();
                if refused.is_empty() || refused.iter().any(|r| ANCHOR_NAMES.contains(&r.as_str()))
                {
                    let shown: Vec<String> = diags
                        .iter()
                        .take(5)
                        .map(|d| format!("{}: {}", d.code().id(), d.message()))
                        .collect();
                    panic!("generated {rules}-rule set does not compile: {shown:#?}");
                }
                excluded.extend(refused);
                continue;
            }
        };
        assert_eq!(compiled.rules().len(), rules);
        let engine = Engine::new(
            PolicyBundle::new(compiled.clone(), "probe".into()),
            EngineOptions::default(),
        );
        let blocking: Vec<String> = match engine.decide(&target_call()).outcome {
            Outcome::Allow { .. } => return compiled,
            Outcome::Deny(d) => d.rules.into_iter().map(|h| h.rule).collect(),
            Outcome::Confirm(c) => c.rules.into_iter().map(|h| h.rule).collect(),
        };
        assert!(
            !blocking.is_empty() && blocking.iter().all(|r| !ANCHOR_NAMES.contains(&r.as_str())),
            "an anchor rule blocks the target call: {blocking:?}"
        );
        excluded.extend(blocking);
    }
}

/// The name of the rule whose text holds byte `offset` of `text`: the last
/// `<kind> <name> {` line before it.
fn rule_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    before.lines().rev().find_map(|line| {
        let rest = line.strip_suffix(" {")?;
        let (kind, name) = rest.split_once(' ')?;
        let kinds = [
            "allow",
            "deny",
            "require-confirm",
            "cap-consecutive",
            "rate-limit",
        ];
        kinds.contains(&kind).then(|| name.to_string())
    })
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap(), EntityId::new(id))
}

/// The request and entities the engine builds for `call` (see
/// `build_request` in `engine.rs`), with `context.args` projected on
/// `arg_fields` and a zero counter for every rule in `limited`.
fn raw_request(
    call: &CallContext,
    arg_fields: &BTreeMap<String, BTreeSet<ArgType>>,
    limited: &[String],
) -> (Request, Entities) {
    let user = uid("Warden::User", &call.identity.user);
    let tool = uid(
        "Warden::Tool",
        &format!("{}\u{0}{}", call.server, call.tool),
    );
    let action = uid("Warden::Action", warden_lang::cedar::ACTION_CALL_TOOL);
    let mut groups = HashSet::new();
    let mut entities = Vec::new();
    for g in &call.identity.groups {
        let g = uid("Warden::Group", g);
        entities.push(Entity::new_no_attrs(g.clone(), HashSet::new()));
        groups.insert(g);
    }
    let user_attrs = HashMap::from([(
        "name".to_string(),
        RestrictedExpression::new_string(call.identity.user.clone()),
    )]);
    entities.push(Entity::new(user.clone(), user_attrs, groups).unwrap());
    let a = call.annotations.resolved();
    let tool_attrs = HashMap::from([
        (
            "name".to_string(),
            RestrictedExpression::new_string(call.tool.clone()),
        ),
        (
            "server".to_string(),
            RestrictedExpression::new_string(call.server.clone()),
        ),
        (
            "read_only".to_string(),
            RestrictedExpression::new_bool(a.read_only),
        ),
        (
            "destructive".to_string(),
            RestrictedExpression::new_bool(a.destructive),
        ),
        (
            "idempotent".to_string(),
            RestrictedExpression::new_bool(a.idempotent),
        ),
        (
            "open_world".to_string(),
            RestrictedExpression::new_bool(a.open_world),
        ),
    ]);
    entities.push(Entity::new(tool.clone(), tool_attrs, HashSet::new()).unwrap());
    let entities = Entities::from_entities(entities, None).unwrap();
    let mut pairs = vec![
        (
            "via_agent".to_string(),
            RestrictedExpression::new_bool(call.provenance.via_agent),
        ),
        (
            "session".to_string(),
            RestrictedExpression::new_string(call.session.clone()),
        ),
        (
            "confirmed".to_string(),
            RestrictedExpression::new_set(
                call.confirmed
                    .iter()
                    .map(|c| RestrictedExpression::new_string(c.clone())),
            ),
        ),
        (
            "args".to_string(),
            project_args(&call.arguments, arg_fields),
        ),
        (
            "counters".to_string(),
            RestrictedExpression::new_record(
                limited
                    .iter()
                    .map(|id| (id.clone(), RestrictedExpression::new_long(0))),
            )
            .unwrap(),
        ),
    ];
    let optional = [
        ("via_server", &call.provenance.via_server),
        ("agent", &call.identity.agent),
        ("model", &call.identity.model),
    ];
    for (key, value) in optional {
        if let Some(s) = value {
            pairs.push((key.to_string(), RestrictedExpression::new_string(s.clone())));
        }
    }
    let context = Context::from_pairs(pairs).unwrap();
    let request = Request::new(user, action, tool, context, None).unwrap();
    (request, entities)
}

/// One size, ready to measure.
struct Case {
    rules: usize,
    label: String,
    engine: Engine,
    call: CallContext,
    authorizer: Authorizer,
    whole: PolicySet,
    whole_req: (Request, Entities),
    slice: PolicySet,
    slice_req: (Request, Entities),
    slice_rules: usize,
}

impl Case {
    fn new(rules: usize, shape: Shape) -> Case {
        let compiled = policy_set(rules, shape);
        let call = target_call();
        let all_limited: Vec<String> = compiled
            .rules()
            .iter()
            .filter(|r| r.limit.is_some())
            .map(|r| r.id.clone())
            .collect();
        let whole = compiled.enforced_policies().clone();
        let whole_req = raw_request(&call, compiled.arg_fields(), &all_limited);
        let engine = Engine::new(
            PolicyBundle::new(compiled, format!("bench-{rules}")),
            EngineOptions {
                memo: memo_mode(),
                ..EngineOptions::default()
            },
        );
        let bundle = engine.policies();
        let slice = bundle.slice(&call.server, &call.tool);
        let slice_limited: Vec<String> = slice
            .limited
            .iter()
            .map(|&i| bundle.rules()[i].id.clone())
            .collect();
        let slice_req = raw_request(&call, &slice.arg_fields, &slice_limited);
        let case = Case {
            rules,
            label: shape.label(rules),
            call,
            authorizer: Authorizer::new(),
            whole,
            whole_req,
            slice: slice.enforced.clone(),
            slice_req,
            slice_rules: slice.rules.len(),
            engine,
        };
        // All three agree, and the decision is real work: an allow grants,
        // a cap and a rate count the call.
        let decided = case.engine.decide(&case.call);
        let Outcome::Allow { rules: allowed } = &decided.outcome else {
            panic!(
                "{rules} rules: target call not allowed: {:?}",
                decided.outcome
            );
        };
        assert!(allowed.iter().any(|r| r == "genomics-analysts-export"));
        assert!(case.slice_rules >= ANCHOR_RULES);
        assert_eq!(case.cedar_slice(), Decision::Allow);
        assert_eq!(case.cedar_whole(), Decision::Allow);
        case
    }

    fn decide(&self) -> bool {
        self.engine.decide(black_box(&self.call)).is_allow()
    }
    fn cedar_slice(&self) -> Decision {
        let (req, ents) = &self.slice_req;
        self.authorizer
            .is_authorized(black_box(req), &self.slice, ents)
            .decision()
    }
    fn cedar_whole(&self) -> Decision {
        let (req, ents) = &self.whole_req;
        self.authorizer
            .is_authorized(black_box(req), &self.whole, ents)
            .decision()
    }
}

/// p50 and p99 of `f`, timing each call, over up to `max` calls or until
/// `budget` is spent (at least `min` calls).
fn percentiles<T>(
    max: usize,
    min: usize,
    budget: Duration,
    mut f: impl FnMut() -> T,
) -> (Duration, Duration, usize) {
    // Warm up caches and branch predictors.
    for _ in 0..min.min(100) {
        black_box(f());
    }
    let mut times = Vec::with_capacity(max);
    let started = Instant::now();
    while times.len() < max && (times.len() < min || started.elapsed() < budget) {
        let t = Instant::now();
        black_box(f());
        times.push(t.elapsed());
    }
    let (p50, p99) = percentiles_of(&mut times);
    (p50, p99, times.len())
}

/// p50 and p99 of `times` (sorted in place; not empty).
fn percentiles_of(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99))
}

fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1_000.0)
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1_000.0)
    } else {
        format!("{:.2} ms", ns as f64 / 1_000_000.0)
    }
}

fn percentile_table(cases: &[Case], quick: bool) {
    let (max, min, budget) = if quick {
        (200, 10, Duration::from_millis(200))
    } else {
        (20_000, 300, Duration::from_secs(4))
    };
    println!();
    println!(
        "| rules | slice size | warden decide p50 / p99 | Cedar slice p50 / p99 | Cedar whole set p50 / p99 | decide ÷ Cedar slice (p50) | samples (decide / slice / whole) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for case in cases {
        let (d50, d99, dn) = percentiles(max, min, budget, || case.decide());
        let (s50, s99, sn) = percentiles(max, min, budget, || case.cedar_slice());
        let (w50, w99, wn) = percentiles(max, min, budget, || case.cedar_whole());
        println!(
            "| {} | {} | {} / {} | {} / {} | {} / {} | {:.2}× | {dn} / {sn} / {wn} |",
            case.label,
            case.slice_rules,
            fmt_duration(d50),
            fmt_duration(d99),
            fmt_duration(s50),
            fmt_duration(s99),
            fmt_duration(w50),
            fmt_duration(w99),
            d50.as_secs_f64() / s50.as_secs_f64(),
        );
    }
    println!();
}

fn criterion_groups(c: &mut Criterion, cases: &[Case]) {
    let mut group = c.benchmark_group("warden_decide");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for case in cases {
        group.bench_function(BenchmarkId::from_parameter(&case.label), |b| {
            b.iter(|| case.decide())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cedar_slice");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for case in cases {
        group.bench_function(BenchmarkId::from_parameter(&case.label), |b| {
            b.iter(|| case.cedar_slice())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cedar_whole_set");
    for case in cases {
        if case.rules >= 10_000 {
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(4));
        } else {
            group
                .sample_size(20)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));
        }
        group.bench_function(BenchmarkId::from_parameter(&case.label), |b| {
            b.iter(|| case.cedar_whole())
        });
    }
    group.finish();
}

/// `WARDEN_BENCH_MEMO=off` decides every call without the decision memo
/// (each call then pays Cedar's evaluation, as a call with new input
/// does); by default the memo is on, as in warden, and every timed call
/// after the first is a hit.
fn memo_mode() -> MemoMode {
    match std::env::var("WARDEN_BENCH_MEMO").as_deref() {
        Ok("off") => MemoMode::Off,
        Ok("on") | Err(_) => MemoMode::On,
        Ok(other) => panic!("WARDEN_BENCH_MEMO is `on` or `off`, not `{other}`"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs this binary without
    // it (criterion then only tests each routine once): keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench")
        || std::env::args().any(|a| a == "--test" || a == "--list");
    // `WARDEN_BENCH_SIZES=100,10000,10000-dense` measures only those.
    let wanted = std::env::var("WARDEN_BENCH_SIZES").ok();
    let shapes = [
        (10, Shape::Realistic),
        (100, Shape::Realistic),
        (1_000, Shape::Realistic),
        (10_000, Shape::Realistic),
        (10_000, Shape::Dense),
    ];
    let cases: Vec<Case> = shapes
        .iter()
        .filter(|(n, shape)| match wanted.as_deref() {
            Some(w) => w.split(',').any(|x| x.trim() == shape.label(*n)),
            // `cargo test` runs benches once as a smoke test: the dense
            // 10,000-rule set adds a minute of unoptimised compiling there.
            None => !(quick && *shape == Shape::Dense),
        })
        .map(|&(n, shape)| Case::new(n, shape))
        .collect();
    let rows = features::features();
    if !std::env::args().any(|a| a == "--list" || a == "--profile-time") {
        percentile_table(&cases, quick);
        features::table(&rows, quick);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &cases);
    features::criterion_group(&mut c, &rows);
    c.final_summary();
}
