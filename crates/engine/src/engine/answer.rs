//! Cedar's answer for one call: from the bundle's memo ([`crate::memo`])
//! when the same input was answered before, else one evaluation of every
//! policy of the slice (all as permits, see `Slice::evaluated`), with each
//! satisfied policy sorted by its role. An evaluation error on an enforced
//! or counting policy is a denial, and an answer with any error is never
//! kept.

use super::{Role, platform_denial, role};
use crate::cedar_request::build_request_at;
use crate::decided::Denial;
use crate::index::PolicyBundle;
use crate::memo::{Answer, KeyInput, MemoMode, key};
use cedar_policy::{AuthorizationError, Authorizer};
use std::sync::Arc;
use warden_lang::ast::RuleKind;

/// What one evaluation found: an answer, and whether it may be kept.
struct Evaluated {
    answer: Answer,
    /// No policy failed to evaluate.
    clean: bool,
}

/// Cedar's answer for `input`, using and filling the memo as `mode` says.
pub(super) fn answer(
    authorizer: &Authorizer,
    mode: MemoMode,
    bundle: &PolicyBundle,
    input: &KeyInput<'_>,
) -> Result<Arc<Answer>, Denial> {
    let key = match mode {
        MemoMode::Off => None,
        MemoMode::On | MemoMode::Verify => key(input),
    };
    if let Some(k) = &key
        && let Some(kept) = bundle.memo.get(k)
    {
        if mode == MemoMode::Verify {
            let fresh = evaluate(authorizer, bundle, input);
            let same = matches!(&fresh, Ok(e) if e.clean && e.answer == *kept);
            if !same {
                bundle.memo.mismatch();
                return fresh.map(|e| Arc::new(e.answer));
            }
        }
        return Ok(kept);
    }
    let fresh = evaluate(authorizer, bundle, input)?;
    let answer = Arc::new(fresh.answer);
    if fresh.clean
        && let Some(k) = key
    {
        bundle.memo.insert(k, Arc::clone(&answer));
    }
    Ok(answer)
}

fn evaluate(
    authorizer: &Authorizer,
    bundle: &PolicyBundle,
    input: &KeyInput<'_>,
) -> Result<Evaluated, Denial> {
    let call = input.call;
    let (request, entities) = build_request_at(bundle, input).map_err(|e| {
        platform_denial(format!(
            "`{}` was not called: the call could not be evaluated ({e})",
            call.tool
        ))
    })?;

    // One evaluation of every policy of the slice, all as permits (see
    // `Slice::evaluated`): Cedar reports each satisfied policy and each
    // that failed, and the decision is combined by the engine exactly as
    // Cedar combines the enforced set: Allow when an enforced permit holds
    // and no enforced forbid does. Any error on an enforced policy denies.
    let response = authorizer.is_authorized(&request, &input.slice.evaluated, &entities);
    let diagnostics = response.diagnostics();
    let mut answer = Answer {
        permits: Vec::new(),
        forbids: Vec::new(),
        shadow_hits: Vec::new(),
        counted: Vec::new(),
        counting_failed: false,
        labels: Vec::new(),
    };
    let mut errors: Vec<String> = Vec::new();
    let mut clean = true;
    for id in diagnostics.reason() {
        let text = id.to_string();
        match role(bundle, id.as_ref()) {
            Some(Role::Default) => answer.permits.push((0, text)),
            Some(Role::Enforced(i)) if bundle.rules()[i].kind == RuleKind::Allow => {
                answer.permits.push((i + 1, text))
            }
            Some(Role::Enforced(i)) => answer.forbids.push((i, text)),
            Some(Role::Shadow(i)) => answer.shadow_hits.push((i, false)),
            Some(Role::Counting(i)) => answer.counted.push(i),
            Some(Role::Label(i)) => answer.labels.push(i),
            None => errors.push(format!("policy `{id}` is not part of the set")),
        }
    }
    let mut counting_failed = false;
    // Any error (a failed shadow rule too) keeps the answer out of the memo.
    for e in diagnostics.errors() {
        clean = false;
        let AuthorizationError::PolicyEvaluationError(pe) = e;
        match role(bundle, pe.policy_id().as_ref()) {
            Some(Role::Shadow(i)) => answer.shadow_hits.push((i, true)),
            Some(Role::Counting(_)) => counting_failed = true,
            // Fail closed: a label that cannot be told is set (it only
            // restricts what later calls may do).
            Some(Role::Label(i)) => answer.labels.push(i),
            _ => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(platform_denial(format!(
            "`{}` was not called: evaluating the policies failed ({})",
            call.tool,
            errors.join("; ")
        )));
    }
    answer.permits.sort_unstable();
    answer.forbids.sort_unstable();
    answer.shadow_hits.sort_unstable();
    answer.counted.sort_unstable();
    answer.labels.sort_unstable();
    answer.counting_failed = counting_failed;
    Ok(Evaluated { answer, clean })
}
