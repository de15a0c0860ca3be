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
//! limits the rows.
//!
//! The bench runs on mimalloc (all three groups alike): with glibc's
//! allocator a decision spends about a third of its time in malloc/free.
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
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};
use warden_engine::args::project_args;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
    ToolAnnotations,
};
use warden_lang::{ArgType, CompiledPolicySet, Sources, compile_policy_set};

// See the module docs: the same allocator for warden and for Cedar alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SplitMix64: tiny, deterministic, good enough to pick from lists.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const SERVERS: &[&str] = &[
    "genomics",
    "lims",
    "billing",
    "crm",
    "github",
    "jira",
    "slack",
    "warehouse",
    "storage",
    "notebooks",
    "hpc",
    "registry",
    "mail",
    "calendar",
    "wiki",
    "search",
    "lab-robots",
    "prod-db",
    "staging-db",
    "analytics",
];
const SERVER_GLOBS: &[&str] = &["lab-*", "prod-*", "staging-*", "*-db", "eu-*"];
const VERBS: &[&str] = &[
    "list", "get", "read", "search", "create", "update", "start", "stop", "export", "import",
    "delete", "archive", "restore", "approve", "send", "run", "query", "upload", "download",
];
const NOUNS: &[&str] = &[
    "samples",
    "sample",
    "pipeline_run",
    "dataset",
    "report",
    "invoice",
    "customer",
    "issue",
    "pull_request",
    "message",
    "channel",
    "table",
    "bucket",
    "object",
    "notebook",
    "job",
    "image",
    "page",
    "event",
    "record",
    "file",
    "secret",
    "user",
    "project",
    "ticket",
];
/// Nouns per server: each server's tools are its verbs × these nouns.
const NOUNS_PER_SERVER: usize = 8;
const GROUPS: &[&str] = &[
    "staff",
    "admins",
    "analysts",
    "lab-techs",
    "finance",
    "support",
    "oncall",
    "contractors",
    "security",
    "data-eng",
];
const USERS: &[&str] = &[
    "ada", "grace", "alan", "barbara", "ken", "dennis", "margaret", "linus", "guido",
];
const AGENTS: &[&str] = &[
    "claude-code",
    "cursor",
    "copilot",
    "codex",
    "goose",
    "cline",
    "aider",
];
const MODEL_GLOBS: &[&str] = &["claude-*", "gpt-*", "gemini-*", "*-mini", "llama-*"];
const FLAGS: &[&str] = &["read_only", "destructive", "idempotent", "open_world"];

/// Argument paths by the one type each is read as (as real policies do).
const STR_ARGS: &[&str] = &[
    "format",
    "pipeline",
    "region",
    "sample_id",
    "project",
    "env",
    "branch",
    "channel",
    "bucket",
    "visibility",
    "table",
    "owner.team",
    "target.kind",
    "\"content-type\"",
];
const NUM_ARGS: &[&str] = &[
    "limit",
    "count",
    "size_mb",
    "cost",
    "resources.cpus",
    "resources.max-cost",
    "priority",
    "retention_days",
    "page_size",
];
const BOOL_ARGS: &[&str] = &[
    "force",
    "recursive",
    "resources.gpu",
    "dry_run",
    "public",
    "notify",
];
const EXIST_ARGS: &[&str] = &[
    "include_pii",
    "override",
    "webhook_url",
    "credentials",
    "sudo",
];
const STR_VALUES: &[&str] = &[
    "bam",
    "cram",
    "vcf",
    "csv",
    "parquet",
    "qc",
    "align",
    "variant-call",
    "eu-west-1",
    "us-east-1",
    "prod",
    "staging",
    "main",
    "release",
    "public",
    "private",
    "finance",
    "ops",
];
const MATCH_GLOBS: &[&str] = &[
    "/restricted/*",
    "*.secret",
    "prod-*",
    "tmp/*",
    "*-archive",
    "s3://*",
];
const CAP_REASONS: &[&str] = &[
    "{agent} made {limit} calls to {tool} in a row; review them before it continues",
    "at most {limit} consecutive {tool} calls per session",
];
const RATE_REASONS: &[&str] = &[
    "at most {limit} calls to {tool} per {window}",
    "{user} reached the limit of {limit} per {window} on {server}",
];
const REASONS: &[&str] = &[
    "{agent} may not call {tool} on {server}",
    "{user}, allow {agent} to run {tool} on {server}?",
    "agents may not touch sample {args.sample_id} this way ({tool})",
    "exports are capped (asked: {args.limit} as {args.format})",
    "rule {rule} blocks {tool} in session {session}",
    "this uses paid compute; confirm {tool} for project {args.project}",
    "{model} through {agent} is not approved for {tool}",
    "ask the person to do this in the web app",
];
const DOMAINS: &[&str] = &[
    "genomics", "lab", "billing", "crm", "code", "tickets", "chat", "data", "files", "compute",
];

/// The call every group decides.
const TARGET_SERVER: &str = "genomics";
const TARGET_TOOL: &str = "export_samples";

/// Rules every set starts with, so that the target call's slice holds an
/// allow that grants it, restrictions that do not fire, and a cap and a
/// rate that count it.
const ANCHORS: &str = r#"
allow genomics-analysts-export {
  server "genomics"
  tool ["export_*", "list_*", "get_*"]
  when user in group "analysts" and args.format in ["bam", "cram", "vcf"]
}

deny genomics-no-pii-export-by-agents {
  server "genomics"
  tool "export_*"
  when via agent and args.include_pii exists
  reason "{agent} may not export personal data ({tool})"
}

require-confirm genomics-large-export {
  server "genomics"
  tool "export_samples"
  when args.limit > 5000
  reason "{user}, allow {agent} to export {args.limit} samples?"
}

cap-consecutive genomics-export-streak {
  server "genomics"
  tool "export_samples"
  max 20 per session
}

rate-limit genomics-export-rate {
  server ["genomics", "lims"]
  tool "export_*"
  max 100 per 1h per user
  reason "at most {limit} exports per {window}"
}

deny no-unapproved-models {
  tool ["export_*", "delete_*"]
  when via agent and model matches "llama-*"
}
"#;
const ANCHOR_NAMES: &[&str] = &[
    "genomics-analysts-export",
    "genomics-no-pii-export-by-agents",
    "genomics-large-export",
    "genomics-export-streak",
    "genomics-export-rate",
    "no-unapproved-models",
];
const ANCHOR_RULES: usize = ANCHOR_NAMES.len();

/// How a generated set spreads its rules over servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Servers grow with the set (`max(20, rules / 25)`, about 25 rules
    /// per server) and only [`ORG_WIDE_RULES`] rules name no server: a
    /// slice holds what one server's tool meets in a real deployment.
    Realistic,
    /// The first generator: 20 servers whatever the size and 8% of rules
    /// org-wide, so slices grow with the set (156 rules at 10,000). Kept as
    /// a worst case.
    Dense,
}

/// Rules without a `server` matcher in a [`Shape::Realistic`] set.
const ORG_WIDE_RULES: usize = 8;

impl Shape {
    fn servers(self, rules: usize) -> usize {
        match self {
            Shape::Realistic => (rules / 25).max(SERVERS.len()),
            Shape::Dense => SERVERS.len(),
        }
    }
    fn label(self, rules: usize) -> String {
        match self {
            Shape::Realistic => rules.to_string(),
            Shape::Dense => format!("{rules}-dense"),
        }
    }
}

/// Server `k`: the named ones first, then numbered ones.
fn server_name(k: usize) -> String {
    match SERVERS.get(k) {
        Some(s) => s.to_string(),
        None => format!("svc-{k}"),
    }
}

fn server_nouns(server: usize) -> impl Iterator<Item = &'static str> {
    (0..NOUNS_PER_SERVER).map(move |k| NOUNS[(server * 5 + k) % NOUNS.len()])
}

fn noun(rng: &mut Rng, server: usize) -> &'static str {
    let nouns: Vec<&str> = server_nouns(server).collect();
    rng.pick(&nouns)
}

fn tool_pattern(rng: &mut Rng, server: usize) -> String {
    match rng.below(20) {
        0..=11 => format!("{}_{}", rng.pick(VERBS), noun(rng, server)),
        12..=16 => format!("{}_*", rng.pick(VERBS)),
        17..=18 => format!("*_{}", noun(rng, server)),
        _ => format!("{}_{}_*", rng.pick(VERBS), noun(rng, server)),
    }
}

/// `"a"` or `["a", "b", ...]`, distinct items.
fn list(items: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for i in items {
        if !unique.contains(&i) {
            unique.push(i);
        }
    }
    if unique.len() == 1 {
        format!("\"{}\"", unique[0])
    } else {
        let quoted: Vec<String> = unique.iter().map(|p| format!("\"{p}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }
}

fn number(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("{}.{}", rng.below(1000), rng.below(100)),
        1 => format!("-{}", rng.below(10)),
        _ => (rng.below(5000) + 1).to_string(),
    }
}

fn atom(rng: &mut Rng) -> String {
    match rng.below(20) {
        0..=2 => "via agent".to_string(),
        3 => format!("via server \"{}\"", rng.pick(SERVERS)),
        4 => format!("tool.{}", rng.pick(FLAGS)),
        5 => format!("user in group \"{}\"", rng.pick(GROUPS)),
        6 => format!("user == \"{}\"", rng.pick(USERS)),
        7 => format!("user in [\"{}\", \"{}\"]", rng.pick(USERS), rng.pick(USERS)),
        8 => format!("agent == \"{}\"", rng.pick(AGENTS)),
        9 => format!(
            "agent in [\"{}\", \"{}\"]",
            rng.pick(AGENTS),
            rng.pick(AGENTS)
        ),
        10 => format!("model matches \"{}\"", rng.pick(MODEL_GLOBS)),
        11 => "user matches \"svc-*\"".to_string(),
        12 => {
            let op = rng.pick(&["==", "!="]);
            format!(
                "args.{} {op} \"{}\"",
                rng.pick(STR_ARGS),
                rng.pick(STR_VALUES)
            )
        }
        13 => {
            let op = rng.pick(&["==", "!=", "<", "<=", ">", ">="]);
            format!("args.{} {op} {}", rng.pick(NUM_ARGS), number(rng))
        }
        14 => format!(
            "args.{} == {}",
            rng.pick(BOOL_ARGS),
            rng.pick(&["true", "false"])
        ),
        15 => format!(
            "args.{} in [\"{}\", \"{}\", \"{}\"]",
            rng.pick(STR_ARGS),
            rng.pick(STR_VALUES),
            rng.pick(STR_VALUES),
            rng.pick(STR_VALUES)
        ),
        16 => format!(
            "args.{} in [{}, {}]",
            rng.pick(NUM_ARGS),
            number(rng),
            number(rng)
        ),
        17 => format!(
            "args.{} matches \"{}\"",
            rng.pick(STR_ARGS),
            rng.pick(MATCH_GLOBS)
        ),
        18 => format!("args.{} exists", rng.pick(EXIST_ARGS)),
        _ => format!("not {}", atom(rng)),
    }
}

/// A condition of one to four atoms under `and`, `or`, `not` and parentheses.
fn condition(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => atom(rng),
        4..=5 => format!("{} and {}", atom(rng), atom(rng)),
        6 => format!("{} or {}", atom(rng), atom(rng)),
        7 => format!("via agent and ({} or {})", atom(rng), atom(rng)),
        8 => format!("not ({} and {})", atom(rng), atom(rng)),
        _ => format!(
            "{} and {} or {} and not {}",
            atom(rng),
            atom(rng),
            atom(rng),
            atom(rng)
        ),
    }
}

/// Generated rule `i`: its name and text. Rules are drawn from one stream,
/// so rule `i` is the same whichever rules are later left out.
fn generated_rule(rng: &mut Rng, i: usize, shape: Shape, servers: usize) -> (String, String) {
    let kind = match rng.below(100) {
        0..=34 => "allow",
        35..=59 => "deny",
        60..=74 => "require-confirm",
        75..=84 => "cap-consecutive",
        _ => "rate-limit",
    };
    let domain = rng.pick(DOMAINS);
    let name = format!("{domain}-{kind}-{i}");
    let mut out = String::new();
    let _ = writeln!(out, "\n# {kind} rule {i} for {domain}");
    let _ = writeln!(out, "{kind} {name} {{");
    // An unconditional deny shadows every later rule it covers, so real
    // sets keep them narrow.
    if kind == "deny" && rng.chance(8) {
        let _ = writeln!(out, "  server \"vault-{i}\"");
        let _ = writeln!(out, "  tool [\"purge_{i}_*\", \"wipe_{i}\"]");
    } else {
        // Most rules are about one server's tools; some name a second
        // server or a server glob; a few (org-wide rules) name none.
        let home = rng.below(servers);
        let named = rng.chance(92);
        let named = match shape {
            Shape::Realistic => i >= ORG_WIDE_RULES,
            Shape::Dense => named,
        };
        if named {
            let mut names = vec![server_name(home)];
            if rng.chance(15) {
                names.push(server_name(rng.below(servers)));
            }
            if rng.chance(10) {
                names.push(rng.pick(SERVER_GLOBS).to_string());
            }
            let _ = writeln!(out, "  server {}", list(names));
        }
        if rng.chance(90) {
            let n = 1 + rng.below(3);
            let tools = (0..n).map(|_| tool_pattern(rng, home)).collect();
            let _ = writeln!(out, "  tool {}", list(tools));
        }
        if kind == "deny" || rng.chance(65) {
            let _ = writeln!(out, "  when {}", condition(rng));
        }
    }
    match kind {
        "cap-consecutive" => {
            let scope = rng.pick(&["session", "user", "agent"]);
            let _ = writeln!(out, "  max {} per {scope}", 1 + rng.below(20));
        }
        "rate-limit" => {
            let window = rng.pick(&["30s", "1m", "10m", "1h", "6h", "1d", "7d"]);
            let scope = rng.pick(&["session", "user", "agent"]);
            let _ = writeln!(out, "  max {} per {window} per {scope}", 1 + rng.below(500));
        }
        _ => {}
    }
    if rng.chance(4) {
        out.push_str("  mode shadow\n");
    }
    if rng.chance(75) {
        let reason = match kind {
            "cap-consecutive" => rng.pick(CAP_REASONS),
            "rate-limit" => rng.pick(RATE_REASONS),
            _ => rng.pick(REASONS),
        };
        let _ = writeln!(out, "  reason \"{reason}\"");
    }
    out.push_str("}\n");
    (name, out)
}

/// A `.policy` text of `rules` rules (anchors included) plus `default deny`,
/// leaving out generated rules named in `excluded`.
fn generate(rules: usize, shape: Shape, excluded: &HashSet<String>) -> String {
    let mut rng = Rng(0xDEC1_DE00 + rules as u64);
    let servers = shape.servers(rules);
    let mut out = String::with_capacity(rules * 220);
    out.push_str("# Generated by crates/engine/benches/decide.rs\n\ndefault deny\n");
    out.push_str(ANCHORS);
    let mut kept = ANCHOR_RULES.min(rules);
    let mut i = 0;
    while kept < rules {
        let (name, text) = generated_rule(&mut rng, i, shape, servers);
        i += 1;
        if !excluded.contains(&name) {
            out.push_str(&text);
            kept += 1;
        }
    }
    out
}

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
        let mut sources = Sources::new();
        sources.add(
            format!("generated-{rules}.policy"),
            generate(rules, shape, &excluded),
        );
        let compiled = match compile_policy_set(&sources) {
            Ok(out) => out.policy_set,
            Err(diags) => {
                let shown: Vec<String> = diags
                    .iter()
                    .take(5)
                    .map(|d| format!("{}: {}", d.code().id(), d.message()))
                    .collect();
                panic!("generated {rules}-rule set does not compile: {shown:#?}");
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
            EngineOptions::default(),
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
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99), times.len())
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
    if !std::env::args().any(|a| a == "--list" || a == "--profile-time") {
        percentile_table(&cases, quick);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &cases);
    c.final_summary();
}
