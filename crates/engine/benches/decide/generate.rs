//! The generated policy sets of the decide bench: a fixed-seed SplitMix64
//! picks servers, tools, conditions and limits from the vocabularies below,
//! and a handful of anchor rules make the benchmarked call meet real work
//! (see the bench's module docs).

use std::collections::HashSet;
use std::fmt::Write as _;

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
pub(crate) const TARGET_SERVER: &str = "genomics";
pub(crate) const TARGET_TOOL: &str = "export_samples";

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
pub(crate) const ANCHOR_NAMES: &[&str] = &[
    "genomics-analysts-export",
    "genomics-no-pii-export-by-agents",
    "genomics-large-export",
    "genomics-export-streak",
    "genomics-export-rate",
    "no-unapproved-models",
];
pub(crate) const ANCHOR_RULES: usize = ANCHOR_NAMES.len();

/// How a generated set spreads its rules over servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
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
pub(crate) const ORG_WIDE_RULES: usize = 8;

impl Shape {
    pub(crate) fn servers(self, rules: usize) -> usize {
        match self {
            Shape::Realistic => (rules / 25).max(SERVERS.len()),
            Shape::Dense => SERVERS.len(),
        }
    }
    pub(crate) fn label(self, rules: usize) -> String {
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
pub(crate) fn generate(rules: usize, shape: Shape, excluded: &HashSet<String>) -> String {
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
