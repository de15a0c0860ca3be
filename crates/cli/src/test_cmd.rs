//! `warden test`: run policy test files (`*.test.toml`). A test file is a
//! sequence of calls in one session, each with the decision it must get,
//! so caps, rate limits and confirmations can be tested: allowed calls are
//! forwarded (they count), a `confirm` answered `accept` is decided again
//! with the person's yes, and `advance` moves a test clock forward.
//! `agent_created` puts records in the engine's (in-memory) record store as
//! if an agent had created them, and `result` is what an allowed call's
//! tool returns, so that a declared creating tool stores its record.
//! docs/engine.md describes the format.

use crate::exit;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Decided, Engine, EngineOptions, Identity, MemoryRecords, NewRecord, Outcome,
    PolicyBundle, Provenance, RecordBackend, RecordStore, Retry, ToolAnnotations, Verified,
};
use warden_lang::{Sources, compile_policy_set};

/// The fields of a call; `[defaults]` and every `[[case]]` may set them.
#[derive(Debug, Clone, Default, Deserialize)]
struct CallFields {
    server: Option<String>,
    tool: Option<String>,
    user: Option<String>,
    groups: Option<Vec<String>>,
    agent: Option<String>,
    model: Option<String>,
    session: Option<String>,
    via_agent: Option<bool>,
    via_server: Option<String>,
    annotations: Option<ToolAnnotations>,
    args: Option<toml::Value>,
    /// Identity attributes warden verified: `["user", "groups", "agent", "model"]`.
    verified: Option<Vec<String>>,
}

impl CallFields {
    fn or(self, d: &CallFields) -> CallFields {
        CallFields {
            server: self.server.or_else(|| d.server.clone()),
            tool: self.tool.or_else(|| d.tool.clone()),
            user: self.user.or_else(|| d.user.clone()),
            groups: self.groups.or_else(|| d.groups.clone()),
            agent: self.agent.or_else(|| d.agent.clone()),
            model: self.model.or_else(|| d.model.clone()),
            session: self.session.or_else(|| d.session.clone()),
            via_agent: self.via_agent.or(d.via_agent),
            via_server: self.via_server.or_else(|| d.via_server.clone()),
            annotations: self.annotations.or(d.annotations),
            args: self.args.or_else(|| d.args.clone()),
            verified: self.verified.or_else(|| d.verified.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
    Confirm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Accept,
    Decline,
}

/// Keys a `[[case]]` or `[defaults]` may have. serde's `flatten` cannot
/// deny unknown keys, so [`unknown_keys`] checks them against this list.
const CALL_KEYS: &[&str] = &[
    "server",
    "tool",
    "user",
    "groups",
    "agent",
    "model",
    "session",
    "via_agent",
    "via_server",
    "annotations",
    "args",
    "verified",
];
const CASE_KEYS: &[&str] = &[
    "name",
    "expect",
    "rules",
    "answer",
    "then",
    "message_contains",
    "retry",
    "repeat",
    "advance",
    "shadow",
    "agent_created",
    "result",
    "time",
];

/// One entry of a case's `agent_created`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CreatedRecord {
    Id(String),
    Of { kind: String, id: String },
}

impl CreatedRecord {
    /// (kind, id); a bare id takes the only kind declared for `server`.
    fn resolve(&self, engine: &Engine, server: &str) -> Result<(String, String), String> {
        match self {
            CreatedRecord::Of { kind, id } => Ok((kind.clone(), id.clone())),
            CreatedRecord::Id(id) => {
                let bundle = engine.policies();
                let kinds: Vec<&str> = bundle
                    .compiled()
                    .records()
                    .iter()
                    .filter(|d| d.covers_server(server))
                    .map(|d| d.kind.as_str())
                    .collect();
                match kinds.as_slice() {
                    [one] => Ok((one.to_string(), id.clone())),
                    [] => Err(format!(
                        "`agent_created` names `{id}`, but no records declaration covers server `{server}`"
                    )),
                    _ => Err(format!(
                        "`agent_created` names `{id}`, but server `{server}` has several record kinds ({}); write {{ kind = \"...\", id = \"{id}\" }}",
                        kinds.join(", ")
                    )),
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Case {
    name: Option<String>,
    #[serde(flatten)]
    call: CallFields,
    expect: Expect,
    /// Rule ids that must be among those behind the decision.
    #[serde(default)]
    rules: Vec<String>,
    /// For `expect = "confirm"`: the person's answer.
    answer: Option<Answer>,
    /// After `answer = "accept"`: the decision of the confirmed call (default allow).
    then: Option<Expect>,
    /// Text the reason or question must contain.
    message_contains: Option<String>,
    /// `never`, `after_streak_ends` or `after_seconds:N`.
    retry: Option<String>,
    /// Make the same call this many times, each with this expectation.
    repeat: Option<u32>,
    /// Move the test clock forward before the call, e.g. `30s`, `1h`.
    advance: Option<String>,
    /// Shadow-mode rules that must report on this call.
    #[serde(default)]
    shadow: Vec<String>,
    /// Records on the case's server that exist as created through the
    /// agent path, from this case on (before its call is decided): an id,
    /// of the only record kind declared for the server, or
    /// `{ kind = "note", id = "1" }`.
    #[serde(default)]
    agent_created: Vec<CreatedRecord>,
    /// The `structuredContent` the tool returns if the call is allowed: a
    /// tool a `records` declaration names stores the record it created.
    result: Option<toml::Value>,
    /// Sets the wall clock (what `during` windows read) to this RFC 3339
    /// instant before the call, e.g. `2026-12-02T07:30:00Z`; `advance`
    /// moves it on from there.
    time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Policy files or directories, relative to the test file. Default: the
    /// test file's directory.
    policies: Option<Vec<String>>,
    #[serde(default)]
    defaults: CallFields,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
    /// The wall clock's time at the first case (RFC 3339 with offset);
    /// default: the real time when the file is run.
    time: Option<String>,
}

pub(crate) fn run(paths: Vec<PathBuf>) -> i32 {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("policies")]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in &paths {
        match test_files(p) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    if files.is_empty() {
        eprintln!("error: no *.test.toml files in the given paths");
        return exit::USAGE;
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &files {
        match run_file(f) {
            Ok((p, fl)) => {
                passed += p;
                failed += fl;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", crate::files::display_path(f));
                return exit::USAGE;
            }
        }
    }
    outln!();
    outln!("{passed} passed, {failed} failed");
    if failed > 0 { exit::FAILURE } else { exit::OK }
}

fn test_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        for entry in entries {
            let p = entry.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".test.toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn load_engine(
    test_file: &Path,
    policies: &Option<Vec<String>>,
    clock: Arc<ManualClock>,
    records: Arc<MemoryRecords>,
) -> Result<Engine, String> {
    let dir = test_file.parent().unwrap_or(Path::new("."));
    let targets: Vec<PathBuf> = match policies {
        Some(list) => list.iter().map(|p| dir.join(p)).collect(),
        None => vec![dir.to_path_buf()],
    };
    let mut all = Vec::new();
    for t in &targets {
        all.extend(crate::files::policy_files(t)?);
    }
    let sources: Sources = crate::files::read_sources(&all)?;
    let compiled = compile_policy_set(&sources).map_err(|d| {
        let diags: Vec<_> = d.iter().cloned().collect();
        format!(
            "its policies do not compile:\n{}",
            crate::lint::render_human(&diags)
        )
    })?;
    let options = EngineOptions {
        clock,
        records: RecordBackend::Store(records),
        ..EngineOptions::default()
    };
    Ok(Engine::new(
        PolicyBundle::new(compiled.policy_set, "test".into()),
        options,
    ))
}

fn run_file(path: &Path) -> Result<(usize, usize), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    unknown_keys(&text)?;
    let file: TestFile =
        toml::from_str(&text).map_err(|e| format!("not a valid test file: {e}"))?;
    let clock = Arc::new(ManualClock::default());
    let records = Arc::new(MemoryRecords::default());
    let engine = load_engine(path, &file.policies, clock.clone(), Arc::clone(&records))?;
    if let Some(t) = &file.time {
        set_wall_clock(&clock, t).map_err(|e| format!("the file's {e}"))?;
    }
    outln!("{}", crate::files::display_path(path));
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in file.cases.iter().enumerate() {
        let name = case
            .name
            .clone()
            .unwrap_or_else(|| format!("case {}", i + 1));
        if let Some(a) = &case.advance {
            clock.advance(parse_duration(a).ok_or_else(|| {
                format!("{name}: `advance = \"{a}\"` is not a duration like 30s")
            })?);
        }
        if let Some(t) = &case.time {
            set_wall_clock(&clock, t).map_err(|e| format!("{name}: {e}"))?;
        }
        let call =
            build_call(case.call.clone().or(&file.defaults)).map_err(|e| format!("{name}: {e}"))?;
        for created in &case.agent_created {
            let (kind, id) = created
                .resolve(&engine, &call.server)
                .map_err(|e| format!("{name}: {e}"))?;
            records
                .insert(&NewRecord {
                    server: call.server.clone(),
                    id,
                    kind,
                    via_agent: true,
                    agent: call.identity.agent.clone(),
                    user: call.identity.user.clone(),
                    session: call.session.clone(),
                    created_at: 0,
                    decision: String::new(),
                })
                .map_err(|e| format!("{name}: {e}"))?;
        }
        let mut problem = None;
        for n in 0..case.repeat.unwrap_or(1) {
            if let Err(p) = run_case(&engine, case, &call) {
                problem = Some(if case.repeat.is_some() {
                    format!("(call {} of the repeat) {p}", n + 1)
                } else {
                    p
                });
                break;
            }
        }
        match problem {
            None => {
                passed += 1;
                outln!("  ok      {name}");
            }
            Some(p) => {
                failed += 1;
                outln!("  FAILED  {name}\n          {p}");
            }
        }
    }
    Ok((passed, failed))
}

/// Steps the test clock's wall time to `rfc3339` (monotonic time, which
/// rate windows measure, does not move).
fn set_wall_clock(clock: &ManualClock, rfc3339: &str) -> Result<(), String> {
    use warden_engine::state::Clock;
    let target = warden_engine::clock_context::parse_instant(rfc3339).ok_or_else(|| {
        format!("`time = \"{rfc3339}\"` is not an RFC 3339 instant with its offset, like \"2026-12-02T07:30:00Z\"")
    })?;
    clock.step_wall(target.saturating_sub(clock.unix_millis()));
    Ok(())
}

/// Rejects misspelt keys, which would otherwise be ignored silently and
/// make a test pass for the wrong reason.
fn unknown_keys(text: &str) -> Result<(), String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| format!("not a valid test file: {e}"))?;
    let check = |t: &toml::Table, allowed: &[&[&str]], place: &str| -> Result<(), String> {
        match t
            .keys()
            .find(|k| !allowed.iter().any(|list| list.contains(&k.as_str())))
        {
            Some(k) => Err(format!("unknown key `{k}` in {place}")),
            None => Ok(()),
        }
    };
    if let Some(toml::Value::Table(d)) = table.get("defaults") {
        check(d, &[CALL_KEYS], "[defaults]")?;
    }
    if let Some(toml::Value::Array(cases)) = table.get("case") {
        for (i, c) in cases.iter().enumerate() {
            if let toml::Value::Table(c) = c {
                check(
                    c,
                    &[CALL_KEYS, CASE_KEYS],
                    &format!("[[case]] number {}", i + 1),
                )?;
            }
        }
    }
    Ok(())
}

fn verified(names: Vec<String>) -> Result<Verified, String> {
    let mut v = Verified::default();
    for n in names {
        match n.as_str() {
            "user" => v.user = true,
            "groups" => v.groups = true,
            "agent" => v.agent = true,
            "model" => v.model = true,
            other => {
                return Err(format!(
                    "`verified` lists `{other}`; it takes \"user\", \"groups\", \"agent\" and \"model\""
                ));
            }
        }
    }
    Ok(v)
}

fn build_call(f: CallFields) -> Result<CallContext, String> {
    let args = match f.args {
        Some(v) => serde_json::to_value(v).map_err(|e| e.to_string())?,
        None => serde_json::json!({}),
    };
    Ok(CallContext {
        identity: Identity {
            user: f.user.unwrap_or_else(|| "tester".into()),
            groups: f.groups.unwrap_or_default(),
            agent: f.agent,
            model: f.model,
            verified: verified(f.verified.unwrap_or_default())?,
        },
        session: f.session.unwrap_or_else(|| "test-session".into()),
        provenance: Provenance {
            via_agent: f.via_agent.unwrap_or(false),
            via_server: f.via_server,
        },
        server: f
            .server
            .ok_or("no `server` (set it in [defaults] or the case)")?,
        tool: f.tool.ok_or("no `tool`")?,
        annotations: f.annotations.unwrap_or_default(),
        arguments: args,
        confirmed: Vec::new(),
    })
}

/// Decides (and forwards when allowed) one call, checking the expectations.
fn run_case(engine: &Engine, case: &Case, call: &CallContext) -> Result<(), String> {
    let decided = engine.decide(call);
    check(case.expect, case, &decided)?;
    match (&decided.outcome, case.answer) {
        (Outcome::Allow { .. }, _) => {
            engine.record_forwarded(call, &decided);
            forwarded_result(engine, case, call, &decided)?;
        }
        (Outcome::Confirm(c), Some(Answer::Accept)) => {
            let mut confirmed = call.clone();
            confirmed.confirmed = c.rules.iter().map(|h| h.rule.clone()).collect();
            let again = engine.decide(&confirmed);
            let then = case.then.unwrap_or(Expect::Allow);
            if kind(&again) != then {
                return Err(format!(
                    "after the person's yes: expected {then:?}, got {}",
                    describe(&again)
                ));
            }
            if again.is_allow() {
                engine.record_forwarded(&confirmed, &again);
                forwarded_result(engine, case, &confirmed, &again)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Hands the case's `result` to the engine as the forwarded call's answer.
fn forwarded_result(
    engine: &Engine,
    case: &Case,
    call: &CallContext,
    decided: &Decided,
) -> Result<(), String> {
    let Some(result) = &case.result else {
        return Ok(());
    };
    let structured = serde_json::to_value(result).map_err(|e| e.to_string())?;
    let result = serde_json::json!({ "content": [], "structuredContent": structured });
    engine
        .record_created(call, decided, &result)
        .map(|_| ())
        .map_err(|e| format!("the result's record was not stored: {e}"))
}

fn kind(d: &Decided) -> Expect {
    match d.outcome {
        Outcome::Allow { .. } => Expect::Allow,
        Outcome::Deny(_) => Expect::Deny,
        Outcome::Confirm(_) => Expect::Confirm,
    }
}

fn describe(d: &Decided) -> String {
    match &d.outcome {
        Outcome::Allow { rules } => format!("Allow (by {})", rules.join(", ")),
        Outcome::Deny(x) => format!("Deny: {}", x.reason),
        Outcome::Confirm(c) => format!("Confirm: {}", c.message),
    }
}

fn check(expect: Expect, case: &Case, d: &Decided) -> Result<(), String> {
    if kind(d) != expect {
        return Err(format!("expected {expect:?}, got {}", describe(d)));
    }
    let (rules, text): (Vec<&str>, String) = match &d.outcome {
        Outcome::Allow { rules } => (rules.iter().map(String::as_str).collect(), String::new()),
        Outcome::Deny(x) => (
            x.rules.iter().map(|h| h.rule.as_str()).collect(),
            x.reason.clone(),
        ),
        Outcome::Confirm(c) => (
            c.rules.iter().map(|h| h.rule.as_str()).collect(),
            c.message.clone(),
        ),
    };
    for r in &case.rules {
        if !rules.contains(&r.as_str()) {
            return Err(format!(
                "expected rule `{r}` behind the decision, got [{}]",
                rules.join(", ")
            ));
        }
    }
    if let Some(m) = &case.message_contains
        && !text.contains(m.as_str())
    {
        return Err(format!(
            "expected the message to contain `{m}`, got `{text}`"
        ));
    }
    for rule in &case.shadow {
        if !d.shadow.iter().any(|f| &f.rule == rule) {
            let got: Vec<&str> = d.shadow.iter().map(|f| f.rule.as_str()).collect();
            return Err(format!(
                "expected shadow rule `{rule}` to report, got [{}]",
                got.join(", ")
            ));
        }
    }
    if let Some(r) = &case.retry {
        let actual = match &d.outcome {
            Outcome::Deny(x) => match x.retry {
                Retry::Never => "never".to_string(),
                Retry::AfterStreakEnds => "after_streak_ends".to_string(),
                Retry::AtAnotherTime => "at_another_time".to_string(),
                Retry::AfterApproval => "after_approval".to_string(),
                Retry::AfterSeconds { seconds } => format!("after_seconds:{seconds}"),
            },
            _ => "(not a denial)".to_string(),
        };
        if &actual != r {
            return Err(format!("expected retry `{r}`, got `{actual}`"));
        }
    }
    Ok(())
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}
