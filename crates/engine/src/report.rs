//! What `warden report` shows, counted from decision log lines: decisions
//! over time by outcome, the top denying rules, tools, agents and users,
//! confirmations asked, accepted and declined, and the caps and rates that
//! were reached. Counted from the log alone (no policies needed), so it
//! reads what the lines say:
//!
//! - a confirmation accepted is an `allow` line with `confirmed` rules; one
//!   declined, dismissed or unanswered is a `deny` whose reason says so
//!   (the relay's own wording, `confirm_text` and `relay::governed`); a
//!   `confirm` line is one asked whose answer the log does not hold;
//! - a limit reached is a `deny` whose `retry` is `after_seconds` (a rate
//!   limit or a budget) or `after_streak_ends` (a consecutive-calls cap).

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, BufRead};

/// At most this many time buckets in the chart of decisions over time.
pub const MAX_BUCKETS: usize = 48;
/// Entries in each top list.
pub const TOP: usize = 10;

/// One bucket of the decisions-over-time chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Start of the bucket, Unix milliseconds.
    pub start_ms: i64,
    pub allow: u64,
    pub deny: u64,
    pub confirm: u64,
}

/// Confirmation counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Confirmations {
    pub asked: u64,
    pub accepted: u64,
    pub declined: u64,
    /// Dismissed, not answered in time, or impossible to ask.
    pub unanswered: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportData {
    pub decisions: u64,
    pub allow: u64,
    pub deny: u64,
    pub confirm: u64,
    /// First and last decision time, Unix milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
    pub over_time: Vec<Bucket>,
    pub top_denying_rules: Vec<(String, u64)>,
    pub top_denied_tools: Vec<(String, u64)>,
    pub top_denied_agents: Vec<(String, u64)>,
    pub top_denied_users: Vec<(String, u64)>,
    pub confirmations: Confirmations,
    /// Denials by a rate limit or budget, by rule.
    pub rates_reached: Vec<(String, u64)>,
    /// Denials by a consecutive-calls cap, by rule.
    pub caps_reached: Vec<(String, u64)>,
    /// Lines that are not JSON or whose time cannot be read.
    pub unreadable: u64,
}

struct Decision {
    ms: i64,
    verdict: String,
    rules: Vec<String>,
    reason: String,
    retry: String,
    confirmed: bool,
    tool: String,
    agent: String,
    user: String,
}

fn decision(v: &Value) -> Option<Result<Decision, ()>> {
    if v.get("event").is_some() {
        return None;
    }
    let verdict = v.get("decision")?.as_str()?.to_string();
    let text = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let Ok(ms) = text("/time").parse::<jiff::Timestamp>() else {
        return Some(Err(()));
    };
    Some(Ok(Decision {
        ms: ms.as_millisecond(),
        verdict,
        rules: crate::replay::string_list(v, "rules"),
        reason: text("/reason"),
        retry: text("/retry/when"),
        confirmed: !crate::replay::string_list(v, "confirmed").is_empty(),
        tool: format!("{}/{}", text("/server"), text("/tool")),
        agent: match text("/identity/agent") {
            a if a.is_empty() => "(no agent)".to_string(),
            a => a,
        },
        user: text("/identity/user"),
    }))
}

fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    // Most first; ties by name, so the report is the same on every run.
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Counts the decision lines of `files`.
pub fn report_data(files: Vec<Box<dyn BufRead>>) -> io::Result<ReportData> {
    let mut data = ReportData::default();
    let mut all = Vec::new();
    for mut reader in files {
        let mut buf = String::new();
        loop {
            buf.clear();
            if reader.read_line(&mut buf)? == 0 {
                break;
            }
            if buf.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&buf) {
                Err(_) => data.unreadable += 1,
                Ok(v) => match decision(&v) {
                    None => {}
                    Some(Err(())) => data.unreadable += 1,
                    Some(Ok(d)) => all.push(d),
                },
            }
        }
    }
    if all.is_empty() {
        return Ok(data);
    }
    data.from_ms = all.iter().map(|d| d.ms).min().unwrap_or(0);
    data.to_ms = all.iter().map(|d| d.ms).max().unwrap_or(0);
    let span = (data.to_ms - data.from_ms).max(1);
    // Whole seconds, minutes or hours, whichever gives at most MAX_BUCKETS.
    data.bucket_ms = [
        1_000, 10_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000,
    ]
    .into_iter()
    .find(|b| span / b < MAX_BUCKETS as i64)
    .unwrap_or(86_400_000 * 7);
    let first = data.from_ms - data.from_ms.rem_euclid(data.bucket_ms);
    let buckets = ((data.to_ms - first) / data.bucket_ms + 1) as usize;
    data.over_time = (0..buckets)
        .map(|i| Bucket {
            start_ms: first + i as i64 * data.bucket_ms,
            ..Bucket::default()
        })
        .collect();
    let (mut rules, mut tools, mut agents, mut users) = Default::default();
    let (mut rates, mut caps): (BTreeMap<String, u64>, BTreeMap<String, u64>) = Default::default();
    let bump = |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.to_string()).or_insert(0) += 1;
    for d in &all {
        data.decisions += 1;
        let b = &mut data.over_time[((d.ms - first) / data.bucket_ms) as usize];
        match d.verdict.as_str() {
            "allow" => {
                data.allow += 1;
                b.allow += 1;
                if d.confirmed {
                    data.confirmations.asked += 1;
                    data.confirmations.accepted += 1;
                }
            }
            "deny" => {
                data.deny += 1;
                b.deny += 1;
                for r in &d.rules {
                    bump(&mut rules, r);
                }
                if d.rules.is_empty() {
                    bump(&mut rules, "(no rule allowed it)");
                }
                bump(&mut tools, &d.tool);
                bump(&mut agents, &d.agent);
                bump(&mut users, &d.user);
                if d.reason.contains("declined the confirmation") {
                    data.confirmations.asked += 1;
                    data.confirmations.declined += 1;
                } else if d.reason.contains("dismissed the confirmation")
                    || d.reason.contains("did not answer the confirmation")
                    || d.reason.contains("confirmation could not be asked")
                    || d.reason.contains("cannot ask for it")
                {
                    data.confirmations.asked += 1;
                    data.confirmations.unanswered += 1;
                }
                match d.retry.as_str() {
                    "after_seconds" => d.rules.iter().for_each(|r| bump(&mut rates, r)),
                    "after_streak_ends" => d.rules.iter().for_each(|r| bump(&mut caps, r)),
                    _ => {}
                }
            }
            _ => {
                data.confirm += 1;
                b.confirm += 1;
                data.confirmations.asked += 1;
            }
        }
    }
    data.top_denying_rules = top(rules, TOP);
    data.top_denied_tools = top(tools, TOP);
    data.top_denied_agents = top(agents, TOP);
    data.top_denied_users = top(users, TOP);
    data.rates_reached = top(rates, usize::MAX);
    data.caps_reached = top(caps, usize::MAX);
    Ok(data)
}
