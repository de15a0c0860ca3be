//! The compile bench's policy set generator, shared by
//! `benches/compile.rs` (which times it) and `tests/pst_equivalence.rs`
//! (which holds the policies built through Cedar's policy tree equal to the
//! printed and parsed ones on it).
//!
//! The set is generated deterministically (a fixed-seed SplitMix64, no
//! `rand`), so every run sees the same text. It mixes all five rule kinds
//! with tool globs and lists, server clauses, `when` conditions (via agent
//! / via server, tool annotations, identity conditions, argument
//! comparisons on strings, numbers and booleans, `in` lists, `matches`,
//! `exists`), reasons with placeholders, limits and a few shadow-mode
//! rules, under one `default deny`.

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
];
const SERVER_GLOBS: &[&str] = &["lab-*", "prod-*", "staging-*", "*-internal", "eu-*"];
const VERBS: &[&str] = &[
    "list", "get", "read", "search", "create", "update", "start", "stop", "export", "import",
    "delete", "archive", "restore", "approve", "send", "run", "query", "upload", "download",
];
const NOUNS: &[&str] = &[
    "sample",
    "samples",
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
    "restricted-*",
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
    "reading is always allowed",
    "ask the person to do this in the web app",
];

fn tool_name(rng: &mut Rng) -> String {
    format!("{}_{}", rng.pick(VERBS), rng.pick(NOUNS))
}

fn tool_pattern(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => tool_name(rng),
        5..=7 => format!("{}_*", rng.pick(VERBS)),
        8 => format!("*_{}", rng.pick(NOUNS)),
        _ => format!("{}_{}_*", rng.pick(VERBS), rng.pick(NOUNS)),
    }
}

fn server_pattern(rng: &mut Rng) -> String {
    if rng.chance(20) {
        rng.pick(SERVER_GLOBS).to_string()
    } else {
        rng.pick(SERVERS).to_string()
    }
}

/// `"a"` or `["a", "b", ...]` with 1 to `max` distinct patterns.
fn pattern_list(rng: &mut Rng, max: usize, make: fn(&mut Rng) -> String) -> String {
    let n = 1 + rng.below(max);
    let mut items: Vec<String> = Vec::new();
    for _ in 0..n {
        let p = make(rng);
        if !items.contains(&p) {
            items.push(p);
        }
    }
    if items.len() == 1 && rng.chance(70) {
        format!("\"{}\"", items[0])
    } else {
        let quoted: Vec<String> = items.iter().map(|p| format!("\"{p}\"")).collect();
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
        4..=5 => {
            let (a, b) = distinct_pair(rng);
            format!("{a} and {b}")
        }
        6 => format!("{} or {}", atom(rng), atom(rng)),
        7 => format!("via agent and ({} or {})", atom(rng), atom(rng)),
        8 => {
            let (a, b) = distinct_pair(rng);
            format!("not ({a} and {b})")
        }
        _ => {
            let (a, b) = distinct_pair(rng);
            let (c, d) = distinct_pair(rng);
            format!("{a} and {b} or {c} and not {d}")
        }
    }
}

/// Two tests on different subjects: two tests of one subject joined by
/// `and` may contradict (`user == "a" and user == "b"`), which the checker
/// refuses (never-matches), and a real set would not hold.
fn distinct_pair(rng: &mut Rng) -> (String, String) {
    let a = atom(rng);
    let subject = |t: &str| t.split(' ').next().unwrap_or_default().to_string();
    loop {
        let b = atom(rng);
        if subject(&b) != subject(&a) {
            return (a, b);
        }
    }
}

const DOMAINS: &[&str] = &[
    "genomics", "lab", "billing", "crm", "code", "tickets", "chat", "data", "files", "compute",
];

/// A `.policy` text of `rules` rules plus one `default deny`.
pub fn generate(rules: usize) -> String {
    let mut rng = Rng(0x5EED_0000 + rules as u64);
    let mut out = String::with_capacity(rules * 220);
    out.push_str("# Generated by crates/lang/benches/compile.rs\n\ndefault deny\n");
    for i in 0..rules {
        let kind = match rng.below(100) {
            0..=34 => "allow",
            35..=59 => "deny",
            60..=74 => "require-confirm",
            75..=84 => "cap-consecutive",
            _ => "rate-limit",
        };
        let domain = rng.pick(DOMAINS);
        let _ = writeln!(out, "\n# {kind} rule {i} for {domain}");
        let _ = writeln!(out, "{kind} {domain}-{kind}-{i} {{");
        // An unconditional deny shadows every later rule it covers, so real
        // sets keep them narrow: here each blocks its own tools on its own
        // server, names no other rule uses.
        let blanket = kind == "deny" && rng.chance(8);
        if blanket {
            let _ = writeln!(out, "  server \"vault-{i}\"");
            let _ = writeln!(out, "  tool [\"purge_{i}_*\", \"wipe_{i}\"]");
        } else {
            if rng.chance(70) {
                let _ = writeln!(
                    out,
                    "  server {}",
                    pattern_list(&mut rng, 3, server_pattern)
                );
            }
            // A deny without `tool` would need a `when`; every kind may omit it.
            if rng.chance(88) {
                let _ = writeln!(out, "  tool {}", pattern_list(&mut rng, 4, tool_pattern));
            }
            // A require-confirm on every call a cap counts would make the
            // cap pointless (cap-ended-by-confirm): real sets confirm on a
            // condition of their own, here one argument no other rule reads.
            if kind == "require-confirm" {
                let _ = writeln!(
                    out,
                    "  when ({}) and args.quote_{i} exists",
                    condition(&mut rng)
                );
            } else if kind == "deny" || rng.chance(65) {
                let _ = writeln!(out, "  when {}", condition(&mut rng));
            }
        }
        match kind {
            "cap-consecutive" => {
                // Not `agent`: a per-agent limit without `verified agent`
                // is a warning (unverified-agent-limit).
                let scope = rng.pick(&["session", "user"]);
                let _ = writeln!(out, "  max {} per {scope}", 1 + rng.below(20));
            }
            "rate-limit" => {
                let window = rng.pick(&["30s", "1m", "10m", "1h", "6h", "1d", "7d"]);
                // Not `agent`: a per-agent limit without `verified agent`
                // is a warning (unverified-agent-limit).
                let scope = rng.pick(&["session", "user"]);
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
    }
    out
}
