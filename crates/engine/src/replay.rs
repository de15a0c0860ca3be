//! Replay: the calls a decision log recorded, decided again against a
//! candidate policy set, in the order of their timestamps, on an engine of
//! their own whose clock is the log's. Caps, streaks, rate windows and
//! budgets are rebuilt as enforcement would have built them under the
//! candidate (a call counts when the candidate allows it), per session,
//! user and agent, since each recorded call carries them; `during`
//! windows see the recorded time.
//!
//! A call whose decision differs from the recorded one (allow, deny,
//! confirm) is a [`Change`]. A call that an applicable rule cannot be
//! decided for is [`Unknown`], never a guess: a rule that reads an argument
//! the log holds redacted (`"[redacted]"`) or bounded (its hash, size and
//! prefix: [`crate::log::bound`]), or a rule that asks `created by agent`
//! (the record ledger is not in the log).
//!
//! Lines that are not decisions (outcomes, checkpoints, rotation) are
//! skipped; lines that are not JSON are listed as unreadable.

use crate::call::CallContext;
use crate::engine::{Engine, EngineOptions, Outcome};
use crate::index::PolicyBundle;
use crate::log::bound::ELIDED_KEY;
use crate::log::{REDACTED, verify::Place};
use crate::state::ManualClock;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

/// What a call was, or would now be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Confirm,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Confirm => "confirm",
        }
    }

    fn parse(text: &str) -> Option<Verdict> {
        match text {
            "allow" => Some(Verdict::Allow),
            "deny" => Some(Verdict::Deny),
            "confirm" => Some(Verdict::Confirm),
            _ => None,
        }
    }
}

/// One decision line of the log.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub place: Place,
    /// As the line gives it (RFC 3339).
    pub time: String,
    unix_millis: i64,
    pub decision_id: String,
    pub verdict: Verdict,
    pub rules: Vec<String>,
    pub call: CallContext,
}

/// A recorded call and what the candidate makes of it, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub file: String,
    pub line: u64,
    pub time: String,
    pub decision_id: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub session: String,
    pub server: String,
    pub tool: String,
    pub before: Verdict,
    pub before_rules: Vec<String>,
}

/// A call the candidate decides otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    #[serde(flatten)]
    pub call: Replayed,
    pub after: Verdict,
    pub after_rules: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_reason: Option<String>,
}

/// A call the candidate cannot be replayed on, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unknown {
    #[serde(flatten)]
    pub call: Replayed,
    /// Each applicable rule that cannot be decided, with what it lacks.
    pub rules: Vec<UnknownRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnknownRule {
    pub rule: String,
    /// The arguments it reads that the log holds redacted or bounded
    /// (RFC 6901 pointers), or `created by agent`.
    pub lacks: Vec<String>,
}

/// Per rule: the changed calls it decided before, decides now, and the
/// calls it left unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    pub before: usize,
    pub after: usize,
    pub unknown: usize,
}

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Decision lines replayed.
    pub calls: usize,
    /// Lines that are not decisions (outcomes, checkpoints, rotations).
    pub skipped: usize,
    /// Lines that are not JSON, or decision lines that cannot be read.
    pub unreadable: Vec<String>,
    pub changed: Vec<Change>,
    pub unknown: Vec<Unknown>,
    pub by_rule: BTreeMap<String, RuleCounts>,
}

/// Reads the decision lines of `files` (a name for reports and the
/// content), in any order; [`replay`] sorts them by time.
pub fn read_recorded(
    files: Vec<(String, Box<dyn BufRead>)>,
    report: &mut ReplayReport,
) -> io::Result<Vec<RecordedCall>> {
    let mut calls = Vec::new();
    for (name, mut reader) in files {
        let mut buf = String::new();
        let mut line = 0u64;
        loop {
            buf.clear();
            if reader.read_line(&mut buf)? == 0 {
                break;
            }
            line += 1;
            let text = buf.trim_end();
            if text.is_empty() {
                continue;
            }
            let place = Place {
                file: name.clone(),
                line,
            };
            match recorded(text, place.clone()) {
                Ok(Some(c)) => calls.push(c),
                Ok(None) => report.skipped += 1,
                Err(why) => report.unreadable.push(format!("{place}: {why}")),
            }
        }
    }
    Ok(calls)
}

/// A decision line as a recorded call; `None` for other lines.
fn recorded(text: &str, place: Place) -> Result<Option<RecordedCall>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    if v.get("event").is_some() {
        return Ok(None);
    }
    let Some(decision) = v.get("decision").and_then(Value::as_str) else {
        return Ok(None);
    };
    let verdict = Verdict::parse(decision).ok_or(format!("unknown decision `{decision}`"))?;
    let time = v
        .get("time")
        .and_then(Value::as_str)
        .ok_or("no `time`")?
        .to_string();
    let unix_millis = time
        .parse::<jiff::Timestamp>()
        .map_err(|e| format!("`time` is not RFC 3339 ({e})"))?
        .as_millisecond();
    let call: CallContext =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a recorded call ({e})"))?;
    let strings = |key: &str| string_list(&v, key);
    Ok(Some(RecordedCall {
        place,
        time,
        unix_millis,
        decision_id: v
            .get("decision_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        verdict,
        rules: strings("rules"),
        call,
    }))
}

/// The strings of the array at `key` of a log line (`rules`,
/// `confirmed`); none when it is absent.
pub(crate) fn string_list(line: &Value, key: &str) -> Vec<String> {
    line.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Decides `calls` again against `bundle`, in time order (ties in the
/// order read), and adds what differs to `report`.
pub fn replay(bundle: PolicyBundle, mut calls: Vec<RecordedCall>, report: &mut ReplayReport) {
    calls.sort_by_key(|c| c.unix_millis);
    let clock = Arc::new(ManualClock::default());
    let engine = Engine::new(
        bundle,
        EngineOptions {
            clock: clock.clone(),
            ..EngineOptions::default()
        },
    );
    let mut now: Option<i64> = None;
    for rc in &calls {
        match now {
            None => {
                clock.step_wall(rc.unix_millis - crate::state::Clock::unix_millis(&*clock));
                now = Some(rc.unix_millis);
            }
            Some(t) if rc.unix_millis > t => {
                let ms = u64::try_from(rc.unix_millis - t).unwrap_or(0);
                clock.advance(Duration::from_millis(ms));
                now = Some(rc.unix_millis);
            }
            Some(_) => {}
        }
        report.calls += 1;
        let unknown = unknown_rules(&engine.policies(), &rc.call);
        let decided = engine.decide(&rc.call);
        let (after, after_rules, after_reason) = match &decided.outcome {
            Outcome::Allow { rules } => (Verdict::Allow, rules.clone(), None),
            Outcome::Deny(d) => (
                Verdict::Deny,
                d.rules.iter().map(|h| h.rule.clone()).collect(),
                Some(d.reason.clone()),
            ),
            Outcome::Confirm(c) => (
                Verdict::Confirm,
                c.rules.iter().map(|h| h.rule.clone()).collect(),
                Some(c.message.clone()),
            ),
        };
        // Enforcement counts what it forwards: what the candidate allows.
        if decided.is_allow() {
            engine.record_forwarded(&rc.call, &decided);
        }
        let replayed = Replayed {
            file: rc.place.file.clone(),
            line: rc.place.line,
            time: rc.time.clone(),
            decision_id: rc.decision_id.clone(),
            user: rc.call.identity.user.clone(),
            agent: rc.call.identity.agent.clone(),
            session: rc.call.session.clone(),
            server: rc.call.server.clone(),
            tool: rc.call.tool.clone(),
            before: rc.verdict,
            before_rules: rc.rules.clone(),
        };
        if !unknown.is_empty() {
            for u in &unknown {
                report.by_rule.entry(u.rule.clone()).or_default().unknown += 1;
            }
            report.unknown.push(Unknown {
                call: replayed,
                rules: unknown,
            });
            continue;
        }
        // A confirmation asked and not given is logged as a denial by the
        // rule that asked: the candidate asking again is the same outcome.
        let same_confirmation = rc.verdict == Verdict::Deny
            && after == Verdict::Confirm
            && !after_rules.is_empty()
            && after_rules == rc.rules;
        if after != rc.verdict && !same_confirmation {
            for r in &rc.rules {
                report.by_rule.entry(r.clone()).or_default().before += 1;
            }
            for r in &after_rules {
                report.by_rule.entry(r.clone()).or_default().after += 1;
            }
            report.changed.push(Change {
                call: replayed,
                after,
                after_rules,
                after_reason,
            });
        }
    }
}

/// The rules that apply to `call` and read what its log line does not
/// hold.
fn unknown_rules(bundle: &PolicyBundle, call: &CallContext) -> Vec<UnknownRule> {
    let mut hidden = Vec::new();
    hidden_arguments(&call.arguments, &mut String::new(), &mut hidden);
    let slice = bundle.slice(&call.server, &call.tool);
    let mut out = Vec::new();
    for &i in &slice.rules {
        let rule = &bundle.rules()[i];
        // A shadow rule never changes a decision.
        if rule.mode == warden_lang::ast::Mode::Shadow {
            continue;
        }
        let mut lacks: Vec<String> = Vec::new();
        let reads = rule
            .arg_fields
            .keys()
            .map(String::as_str)
            .chain(rule.budget.as_ref().map(|b| b.pointer.as_str()));
        for read in reads {
            for h in &hidden {
                if overlaps(read, h) && !lacks.contains(h) {
                    lacks.push(h.clone());
                }
            }
        }
        if !rule.created_args.is_empty() {
            lacks.push("created by agent".to_string());
        }
        if !lacks.is_empty() {
            out.push(UnknownRule {
                rule: rule.id.clone(),
                lacks,
            });
        }
    }
    out
}

/// Whether reading `a` reads something of `b` (RFC 6901 pointers): the
/// same value, or one inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    a == b || inside(a, b) || inside(b, a)
}

/// The pointers of every value the log holds redacted or bounded.
fn hidden_arguments(v: &Value, at: &mut String, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s == REDACTED => out.push(at.clone()),
        Value::Object(map) if map.len() == 1 && map.contains_key(ELIDED_KEY) => {
            out.push(at.clone())
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                hidden_arguments(item, at, out);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                hidden_arguments(item, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
