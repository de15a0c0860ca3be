//! The words of limit denials: a rule's message (its reason, or the
//! default one, with what the limit used), the reason and advice when a
//! limit could not be measured, and the retry advice of caps, rates and
//! budgets, each true of what frees the limit.

use super::FOR_THE_PLATFORM;
use super::limits::{Measured, Measures, Unmeasured};
use crate::call::CallContext;
use crate::decided::{Outcome, Retry, RuleHit};
use crate::index::PolicyBundle;
use crate::message::{Usage, human_duration, render_reason};
use std::time::Duration;
use warden_lang::CompiledRule;
use warden_lang::amount::format_units;
use warden_lang::ast::RuleKind;

/// When caps that denied a call let it through again: once a call they
/// do not count ends the streak in the same row, or at once for a call
/// with another split value (it starts a streak of its own). A person's
/// yes cannot end it from here: while the cap holds, the person is not
/// asked about calls it counts.
pub(super) fn cap_retry(bundle: &PolicyBundle, rules: &[RuleHit]) -> (Retry, String) {
    let limits: Vec<_> = rules
        .iter()
        .filter(|h| h.kind == RuleKind::CapConsecutive)
        .filter_map(|h| bundle.rule_index(&h.rule))
        .filter_map(|i| bundle.rules()[i].limit)
        .collect();
    let rows: Vec<String> = limits
        .iter()
        .map(|l| {
            l.scope
                .row()
                .iter()
                .map(|s| s.keyword())
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .filter(|r| !r.is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let splits: Vec<&str> = limits
        .iter()
        .flat_map(|l| l.scope.split_by().iter().map(|s| s.keyword()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut instead = String::from(
        "stop and check the results of the previous calls with the person; the streak ends when a call to a tool this limit does not count is made",
    );
    if !rows.is_empty() {
        instead.push_str(&format!(" in the same {}", rows.join(" or ")));
    }
    if !splits.is_empty() {
        instead.push_str(&format!(
            ", and a counted call with another {} starts a streak of its own",
            splits.join(" or ")
        ));
    }
    (Retry::AfterStreakEnds, instead)
}

/// A denial by a limit the call could not be measured for says why
/// (state store unavailable, no model declared, a bad amount), rather
/// than "limit reached": the limit was never compared.
pub(super) fn unmeasured(
    outcome: Outcome,
    bundle: &PolicyBundle,
    call: &CallContext,
    measures: &Measures,
) -> Outcome {
    let Outcome::Deny(mut denial) = outcome else {
        return outcome;
    };
    let Some((rule, why)) = denial.rules.iter().find_map(|h| {
        let u = measures.unmeasured.get(&h.rule)?;
        Some((&bundle.rules()[bundle.rule_index(&h.rule)?], u))
    }) else {
        return Outcome::Deny(denial);
    };
    let (reason, instead) = why.explain(rule);
    denial.reason = format!("`{}` was not called: {reason}", call.tool);
    denial.retry = Retry::Never;
    denial.instead = instead;
    if matches!(why, Unmeasured::Store(_)) {
        denial.instead = FOR_THE_PLATFORM.to_string();
    }
    Outcome::Deny(denial)
}

/// A budget that denied a call whose amount is more than it allows at
/// all: no wait helps, so the denial says never, whatever else denied
/// (as a deny rule wins over a cap).
pub(super) fn never_fits(
    bundle: &PolicyBundle,
    rules: &[RuleHit],
    measures: &Measures,
) -> Option<(Retry, String)> {
    let (rule, m) = rules.iter().find_map(|h| {
        let m = measures.measured.get(&h.rule)?;
        let r = &bundle.rules()[bundle.rule_index(&h.rule)?];
        (m.spec.summed && m.weight > m.spec.max).then_some((r, m))
    })?;
    Some((
        Retry::Never,
        format!(
            "do not retry this amount: rule `{}` allows at most {} of `{}` in all; ask for at most that",
            rule.id,
            format_units(m.spec.max),
            rule.budget.as_ref().map_or("", |b| b.written.as_str())
        ),
    ))
}

/// When rates and budgets that denied a call let it through again, said
/// truly: after the longest of their waits; never, when a budget's
/// amount is more than it allows at all; and when only budgets denied and
/// each still has room, that a smaller amount fits now.
pub(super) fn budget_or_rate_retry(
    bundle: &PolicyBundle,
    call: &CallContext,
    rules: &[RuleHit],
    measures: &Measures,
) -> (Retry, String) {
    let limited: Vec<(&CompiledRule, Option<&Measured>)> = rules
        .iter()
        .filter_map(|h| bundle.rule_index(&h.rule))
        .map(|i| {
            let r = &bundle.rules()[i];
            (r, measures.measured.get(&r.id))
        })
        .collect();
    let budget_arg = |r: &CompiledRule| {
        r.budget
            .as_ref()
            .map_or(String::new(), |b| b.written.clone())
    };
    if let Some(never) = never_fits(bundle, rules, measures) {
        return never;
    }
    // A window full of calls still in flight (held, no event yet) frees a
    // whole window after they are recorded.
    let wait = limited
        .iter()
        .filter_map(|(r, m)| {
            m.and_then(|m| m.frees_in)
                .or_else(|| r.limit?.window_secs.map(Duration::from_secs))
        })
        .max()
        .unwrap_or(Duration::ZERO);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut instead = format!(
        "wait {} before calling `{}` again",
        human_duration(seconds.max(1)),
        call.tool
    );
    let smaller: Vec<String> = limited
        .iter()
        .filter_map(|(r, m)| {
            let m = m.filter(|m| m.spec.summed)?;
            let room = m.spec.max.saturating_sub(m.used);
            (room > 0).then(|| format!("{} of `{}`", format_units(room), budget_arg(r)))
        })
        .collect();
    if !limited.is_empty()
        && limited.iter().all(|(r, _)| r.kind == RuleKind::Budget)
        && smaller.len() == limited.len()
    {
        instead.push_str(&format!(
            " with this amount, or ask for at most {} now",
            smaller.join(" and ")
        ));
    }
    (Retry::AfterSeconds { seconds }, instead)
}

pub(super) fn hit(rule: &CompiledRule, call: &CallContext, measures: &Measures) -> RuleHit {
    let usage = measures.measured.get(&rule.id).map(|m| Usage {
        used: m.used,
        amount: m.weight,
    });
    let message =
        render_reason(rule, call, usage).unwrap_or_else(|| default_message(rule, call, usage));
    RuleHit {
        rule: rule.id.clone(),
        kind: rule.kind,
        message,
        source: rule.location.clone(),
    }
}

fn default_message(rule: &CompiledRule, call: &CallContext, usage: Option<Usage>) -> String {
    let id = &rule.id;
    let (tool, server) = (&call.tool, &call.server);
    match (rule.kind, rule.limit) {
        (RuleKind::Allow, _) => format!("rule `{id}` allows `{tool}` on `{server}`"),
        (RuleKind::Deny, _) => format!("rule `{id}` denies `{tool}` on `{server}`"),
        (RuleKind::Label, _) => format!("rule `{id}` labels the session"),
        (RuleKind::RequireConfirm, _) => {
            format!("allow `{tool}` on `{server}`? (rule `{id}` asks for your confirmation)")
        }
        (RuleKind::CapConsecutive, Some(l)) => {
            format!(
                "rule `{id}` allows at most {} such calls in a row per {}",
                l.max,
                l.scope.phrase()
            )
        }
        (RuleKind::RateLimit, Some(l)) => format!(
            "rule `{id}` allows at most {} such calls per {} per {}",
            l.max,
            human_duration(l.window_secs.unwrap_or(0)),
            l.scope.phrase()
        ),
        (RuleKind::Budget, Some(l)) => {
            let mut m = format!(
                "rule `{id}` allows at most {} per {} {} of `{}`",
                format_units(l.max),
                human_duration(l.window_secs.unwrap_or(0)),
                l.scope.phrase(),
                rule.budget.as_ref().map_or("", |b| b.written.as_str())
            );
            if let Some(u) = usage {
                m.push_str(&format!(
                    "; {} used, {} left, and this call's {} would cross it",
                    format_units(u.used),
                    format_units(l.max.saturating_sub(u.used)),
                    format_units(u.amount)
                ));
            }
            m
        }
        (_, None) => format!("rule `{id}` limits `{tool}`"),
    }
}
