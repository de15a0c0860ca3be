//! One differential case (a policy text, the wall time it starts at and a
//! session of calls), how it is run through both the engine and the
//! reference, and its golden-file form (TOML) for `regressions/` and
//! `open-bugs/`.

use crate::oracle::{self, Decision, Forwarded, Retry, Verdict};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use warden_engine::memo::MemoMode;
use warden_engine::state::{Clock, ManualClock};
use warden_engine::{
    CallContext, Decided, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
    ToolAnnotations, Verified,
};
use warden_lang::{Sources, compile_policy_set, parse_policy_set};

/// One call of a session and what the person does if it asks for a
/// confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Seconds the clock moves before the call.
    #[serde(default)]
    pub advance_secs: u64,
    pub server: String,
    pub tool: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub session: String,
    #[serde(default)]
    pub via_agent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_server: Option<String>,
    /// Identity attributes warden verified.
    #[serde(default, skip_serializing_if = "Verified::is_none")]
    pub verified: Verified,
    #[serde(default)]
    pub annotations: ToolAnnotations,
    /// The arguments as JSON text (TOML has no null).
    pub args: String,
    /// Rule ids already confirmed when the call is first decided.
    #[serde(default)]
    pub confirmed: Vec<String>,
    /// Whether the person accepts a confirmation (the call is then decided
    /// again with `confirmed` set to the asking rules).
    #[serde(default)]
    pub accept: bool,
}

impl Step {
    pub fn call(&self) -> CallContext {
        CallContext {
            identity: Identity {
                user: self.user.clone(),
                groups: self.groups.clone(),
                agent: self.agent.clone(),
                model: self.model.clone(),
                verified: self.verified,
            },
            session: self.session.clone(),
            provenance: Provenance {
                via_agent: self.via_agent,
                via_server: self.via_server.clone(),
            },
            server: self.server.clone(),
            tool: self.tool.clone(),
            annotations: self.annotations,
            arguments: serde_json::from_str(&self.args).expect("step arguments are JSON"),
            confirmed: self.confirmed.clone(),
        }
    }
}

/// Both sides' view of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub engine: Decision,
    pub oracle: Decision,
}

impl Observed {
    pub fn agree(&self) -> bool {
        self.engine == self.oracle
    }
}

/// A step's decision and, after an accepted confirmation, the second one.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub first: Observed,
    pub then: Option<Observed>,
}

/// The engine's decision in the reference's terms.
pub fn engine_view(d: &Decided) -> Decision {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let verdict = match &d.outcome {
        Outcome::Allow { rules } => Verdict::Allow(sorted(rules.clone())),
        Outcome::Confirm(c) => {
            Verdict::Confirm(sorted(c.rules.iter().map(|h| h.rule.clone()).collect()))
        }
        Outcome::Deny(denial) => Verdict::Deny(
            sorted(denial.rules.iter().map(|h| h.rule.clone()).collect()),
            match denial.retry {
                warden_engine::Retry::Never => Retry::Never,
                warden_engine::Retry::AfterStreakEnds => Retry::AfterStreakEnds,
                warden_engine::Retry::AtAnotherTime => Retry::AtAnotherTime,
                warden_engine::Retry::AfterSeconds { seconds } => Retry::AfterSeconds(seconds),
                // The proxy's answer for a call waiting on the approval
                // page; the engine never decides it.
                warden_engine::Retry::AfterApproval => {
                    unreachable!("the engine never retries after approval")
                }
            },
        ),
    };
    let mut shadow: Vec<(String, String)> = d
        .shadow
        .iter()
        .map(|f| (f.rule.clone(), f.would.to_string()))
        .collect();
    shadow.sort();
    Decision {
        verdict,
        shadow,
        labels: sorted(d.labels.clone()),
    }
}

/// The wall time a golden file without `start` begins at:
/// 2026-12-02T07:30:00Z, a Wednesday morning in Europe.
pub const DEFAULT_START: i64 = 1_796_196_600;

/// Runs a session through a fresh engine and the reference, side by side,
/// the way the proxy drives the engine: decide; forward (record) an
/// Allow; on Confirm, if the person accepts, decide again with the asking
/// rules confirmed and forward if that is allowed. Stops after the first
/// disagreement (the two states would differ from there on).
///
/// The engine's clock starts at `start` (Unix seconds, wall time) and
/// moves by each step's `advance_secs`, the reference's with it.
///
/// `Err` when the policy does not compile (such sets are not generated on
/// purpose, and are skipped).
pub fn run(policy: &str, start: i64, steps: &[Step]) -> Result<Vec<StepRun>, String> {
    let mut sources = Sources::new();
    sources.add("case.policy", policy);
    let compiled = compile_policy_set(&sources).map_err(|d| {
        d.iter()
            .filter(|d| d.is_error())
            .map(|d| d.message().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let (files, _) = parse_policy_set(&sources);
    let reference = oracle::Policy::from_ast(&files);

    let clock = Arc::new(ManualClock::default());
    clock.step_wall(start * 1000 - clock.unix_millis());
    let engine = Engine::new(
        PolicyBundle::new(compiled.policy_set, "differential".into()),
        EngineOptions {
            clock: clock.clone(),
            // Every memo hit is evaluated again and compared (below).
            memo: MemoMode::Verify,
            // Half the cases (by the parity of their start) decide as the
            // engine does on Redis: first as if every limit had room, the
            // hold taken with the counts read, then again on those counts
            // (engine::reserve). Both ways must agree with the reference.
            reserve_with_counts: Some(start % 2 == 1),
            ..EngineOptions::default()
        },
    );
    let mut history: Vec<Forwarded> = Vec::new();
    let mut now = u64::try_from(start).expect("a start after 1970");
    let mut runs = Vec::new();

    // Decides on both sides; forwards when the engine allowed and the two
    // agree.
    let decide = |call: &CallContext, now: u64, history: &mut Vec<Forwarded>| {
        let decided = engine.decide(call);
        let seen = Observed {
            engine: engine_view(&decided),
            oracle: reference.decide(call, history, now),
        };
        if seen.agree() && decided.is_allow() {
            engine.record_forwarded(call, &decided);
            // The upstream answers every call with `args.a` as `id`, so a
            // declared creating tool creates the record its `a` names (and
            // a call without `a` creates none: the engine finds no id).
            let mut answer = serde_json::Map::new();
            if let Some(a) = call.arguments.get("a") {
                answer.insert("id".into(), a.clone());
            }
            let result = serde_json::json!({ "structuredContent": answer });
            let _ = engine.record_created(call, &decided, &result);
            history.push(Forwarded {
                call: call.clone(),
                at: now,
                result: Some(result),
            });
        }
        (decided, seen)
    };

    for step in steps {
        clock.advance(Duration::from_secs(step.advance_secs));
        now += step.advance_secs;
        let mut call = step.call();
        let (decided, first) = decide(&call, now, &mut history);
        let agreed = first.agree();
        let mut then = None;
        if agreed
            && let Outcome::Confirm(c) = &decided.outcome
            && step.accept
        {
            call.confirmed = c.rules.iter().map(|h| h.rule.clone()).collect();
            then = Some(decide(&call, now, &mut history).1);
        }
        let stop = !agreed || then.as_ref().is_some_and(|t| !t.agree());
        runs.push(StepRun { first, then });
        if stop {
            break;
        }
    }
    let memo = engine.memo_stats();
    assert_eq!(
        memo.mismatches, 0,
        "the decision memo answered differently from a fresh evaluation: {memo:?}\n{policy}"
    );
    Ok(runs)
}

/// Expected decision in a golden file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// `allow`, `deny` or `confirm`.
    pub expect: String,
    #[serde(default)]
    pub rules: Vec<String>,
    /// For a deny: `never`, `after_streak_ends` or `after_seconds:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// Shadow findings as `rule:would`.
    #[serde(default)]
    pub shadow: Vec<String>,
    /// The labels an allowed call puts on its session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl From<&Decision> for Expected {
    fn from(d: &Decision) -> Self {
        let (expect, rules, retry) = match &d.verdict {
            Verdict::Allow(r) => ("allow", r.clone(), None),
            Verdict::Confirm(r) => ("confirm", r.clone(), None),
            Verdict::Deny(r, retry) => (
                "deny",
                r.clone(),
                Some(match retry {
                    Retry::Never => "never".to_string(),
                    Retry::AfterStreakEnds => "after_streak_ends".to_string(),
                    Retry::AtAnotherTime => "at_another_time".to_string(),
                    Retry::AfterSeconds(s) => format!("after_seconds:{s}"),
                }),
            ),
        };
        Expected {
            expect: expect.to_string(),
            rules,
            retry,
            shadow: d.shadow.iter().map(|(r, w)| format!("{r}:{w}")).collect(),
            labels: d.labels.clone(),
        }
    }
}

/// A call of a golden file: the step and what it must get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenCall {
    #[serde(flatten)]
    pub step: Step,
    #[serde(flatten)]
    pub expected: Expected,
    /// After an accepted confirmation: the second decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Expected>,
}

/// A golden case: a shrunk counterexample (or a hand-written case) with
/// the decisions docs/language.md prescribes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    pub description: String,
    pub policy: String,
    /// The wall time of the first call's clock (Unix seconds);
    /// [`DEFAULT_START`] when absent.
    #[serde(default = "default_start")]
    pub start: i64,
    pub call: Vec<GoldenCall>,
}

fn default_start() -> i64 {
    DEFAULT_START
}

impl Golden {
    /// A golden file for a case, with the reference's decisions as the
    /// expected ones (where a disagreement was found, the reference is
    /// what the docs say; check it by hand before committing).
    pub fn from_case(description: &str, policy: &str, start: i64, steps: &[Step]) -> Golden {
        let runs = run(policy, start, steps).unwrap_or_default();
        let call = steps
            .iter()
            .zip(&runs)
            .map(|(step, r)| GoldenCall {
                step: step.clone(),
                expected: Expected::from(&r.first.oracle),
                then: r.then.as_ref().map(|t| Expected::from(&t.oracle)),
            })
            .collect();
        Golden {
            description: description.to_string(),
            policy: policy.to_string(),
            start,
            call,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a golden case serialises")
    }
}
