//! One call's evaluation, in two steps: what it reads that does not
//! depend on its counts ([`Prepared`]: the slice, the records, the
//! argument checks, what its limits need read, the clock), then Cedar's
//! answer for given counts and what follows from it ([`Concluded`]: the
//! outcome, the shadow findings, what the call counts towards, the labels
//! it sets). The split lets a decision conclude twice on one preparation
//! (first as if every limit had room, then on the counts read with its
//! reservation, `engine::reserve`) without reading the records or the
//! session's labels twice.

use super::answer;
use super::labels;
use super::limit_advice::{hit, unmeasured};
use super::limits::{LimitReads, Measures};
use super::{Engine, FOR_THE_PLATFORM, plain_denial, platform_denial};
use crate::args::projection;
use crate::args::{ArgProblem, check_arg_limits};
use crate::call::CallContext;
use crate::clock_context::LocalTime;
use crate::elements::EachResult;
use crate::index::{PolicyBundle, Slice};
use crate::memo::{Answer, KeyInput};
use crate::state::Counted;
use std::cell::OnceCell;
use std::sync::Arc;
use warden_lang::ast::{Mode, RuleKind};

use crate::decided::{Denial, Outcome, ShadowFinding};

/// What a call's decision reads before its counts.
pub(super) struct Prepared {
    slice: Arc<Slice>,
    agent_created: Vec<String>,
    each: Vec<EachResult>,
    /// What the slice's limits need read for the call.
    pub(super) reads: LimitReads,
    /// The local times the slice's time conditions read, at one instant
    /// for every conclusion.
    clock: Vec<Option<LocalTime>>,
    /// The session's labels the slice asks about, once read.
    labels: OnceCell<Vec<String>>,
}

/// What a call's evaluation concluded on one set of counts.
#[derive(Debug)]
pub(super) struct Concluded {
    pub(super) outcome: Outcome,
    pub(super) shadow: Vec<ShadowFinding>,
    /// The limits whose counting policy matched (the call's hold).
    pub(super) counts_for: Vec<Counted>,
    /// The enforced rules that restrict the call.
    pub(super) restricting: Vec<String>,
    /// The labels an allowed call sets, with how long they last.
    pub(super) labels: Vec<(String, std::time::Duration)>,
}

impl Concluded {
    pub(super) fn denied(denial: Denial) -> Self {
        Concluded {
            outcome: Outcome::Deny(denial),
            shadow: Vec::new(),
            counts_for: Vec::new(),
            restricting: Vec::new(),
            labels: Vec::new(),
        }
    }

    pub(super) fn is_allow(&self) -> bool {
        matches!(self.outcome, Outcome::Allow { .. })
    }
}

impl Engine {
    /// The parts of a decision that do not depend on the counts; a
    /// denial when the call cannot be decided at all (bad arguments,
    /// broken policies, a record store that cannot answer).
    pub(super) fn prepare(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
    ) -> Result<Prepared, Denial> {
        if let Err(problem) = check_arg_limits(&call.arguments, &self.arg_limits) {
            let instead = match problem {
                ArgProblem::NotAnObject => {
                    "send the arguments as a JSON object of named values (`{}` for none)"
                }
                _ => "send smaller, flatter arguments",
            };
            return Err(plain_denial(
                format!("`{}` was not called: {problem}", call.tool),
                instead,
            ));
        }
        let slice = bundle.slice(&call.server, &call.tool);
        if let Some(problem) = &slice.broken {
            return Err(platform_denial(format!(
                "`{}` was not called: the policies could not be loaded ({problem})",
                call.tool
            )));
        }

        let agent_created = match self.agent_created(&slice, call) {
            Ok(found) => found,
            Err(e) if slice.created_enforced => {
                return Err(platform_denial(format!(
                    "`{}` was not called: record store unavailable: {e}",
                    call.tool
                )));
            }
            // Only shadow rules ask: they see no agent-created record.
            Err(_) => Vec::new(),
        };
        // Only an enforced rule's `any`/`all ... created by agent` makes a
        // store that cannot answer deny (elements::each_results).
        let each = crate::elements::each_results(bundle, &slice, call, self.records.as_ref())
            .map_err(|e| {
                platform_denial(format!(
                    "`{}` was not called: record store unavailable: {e}",
                    call.tool
                ))
            })?;
        let reads = LimitReads::new(bundle, &slice, call);
        let clock = slice.clock.locals(self.clock.unix_millis());
        Ok(Prepared {
            slice,
            agent_created,
            each,
            reads,
            clock,
            labels: OnceCell::new(),
        })
    }

    /// Cedar's answer for the call on `measures` (counts and sums of the
    /// slice's limits; one that could not be read is left out of the
    /// context, which the compiled policy reads as "limit reached", and
    /// its denial says why), and what follows from it.
    pub(super) fn conclude(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        prepared: &Prepared,
        measures: &Measures,
    ) -> Concluded {
        match self.try_conclude(bundle, call, prepared, measures) {
            Ok(c) => c,
            Err(denial) => Concluded::denied(denial),
        }
    }

    fn try_conclude(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        prepared: &Prepared,
        measures: &Measures,
    ) -> Result<Concluded, Denial> {
        let slice = &prepared.slice;
        let args = projection(&call.arguments, &slice.arg_fields);
        let base = KeyInput {
            slice,
            call,
            args: &args,
            counters: &measures.counters,
            budgets: &measures.budgets,
            agent_created: &prepared.agent_created,
            labels: &[],
            each: &prepared.each,
            clock: &prepared.clock,
        };
        // The session's labels matter only when some of them change Cedar's
        // answer: with few labels asked about, every combination is
        // answered (from the memo after the first time), and when all agree
        // (a closed-world tool under `session has label x and
        // tool.open_world`) the store is not read.
        let unread = (!slice.labels_read.is_empty()
            && slice.labels_read.len() <= labels::MAX_LABELS_TRIED)
            .then(|| self.answer_whatever_the_labels(bundle, &slice.labels_read, base))
            .flatten();
        let answer = match unread {
            Some(a) => a,
            None => {
                let labels = self.session_labels(call, prepared)?;
                let input = KeyInput { labels, ..base };
                answer::answer(&self.authorizer, self.memo, bundle, &input)?
            }
        };
        self.follow(bundle, call, measures, &answer)
    }

    /// The labels the slice's rules ask about, as the session has them
    /// (read once per decision).
    fn session_labels<'p>(
        &self,
        call: &CallContext,
        prepared: &'p Prepared,
    ) -> Result<&'p [String], Denial> {
        if let Some(l) = prepared.labels.get() {
            return Ok(l);
        }
        let slice = &prepared.slice;
        let labels = if slice.labels_read.is_empty() {
            Vec::new()
        } else {
            match self.state.session_labels(&call.session, &slice.labels_read) {
                Ok(mut live) => {
                    live.sort_unstable();
                    live
                }
                Err(e) if slice.labels_enforced => {
                    return Err(platform_denial(format!(
                        "`{}` was not called: state store unavailable: the session's labels could not be read: {e}",
                        call.tool
                    )));
                }
                // Only shadow rules ask: they see a session without labels.
                Err(_) => Vec::new(),
            }
        };
        Ok(prepared.labels.get_or_init(|| labels))
    }

    /// The outcome, shadow findings, counted limits and labels of Cedar's
    /// answer.
    fn follow(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        measures: &Measures,
        answer: &Answer,
    ) -> Result<Concluded, Denial> {
        let Answer {
            permits,
            forbids,
            shadow_hits,
            counted,
            counting_failed,
            labels: labelled,
        } = answer;
        let counting_failed = *counting_failed;
        let labels = labelled
            .iter()
            .map(|&i| {
                let rule = &bundle.rules()[i];
                let keep = rule
                    .keep_secs
                    .unwrap_or(warden_lang::ast::Keep::SESSION_SECS);
                (rule.id.clone(), std::time::Duration::from_secs(keep))
            })
            .collect();
        let restricting = forbids.iter().map(|(_, id)| id.to_string()).collect();
        let outcome = if forbids.is_empty() && !permits.is_empty() {
            Outcome::Allow {
                rules: permits.iter().map(|(_, id)| id.to_string()).collect(),
            }
        } else {
            let reasons: Vec<String> = forbids.iter().map(|(_, id)| id.to_string()).collect();
            let outcome =
                self.denial_outcome(bundle, call, &reasons, !permits.is_empty(), measures);
            unmeasured(outcome, bundle, call, measures)
        };

        let shadow = shadow_hits
            .iter()
            .filter_map(|&(i, errored)| {
                let rule = &bundle.rules()[i];
                let would = match rule.kind {
                    RuleKind::Allow if errored => return None,
                    RuleKind::Allow => "allow",
                    RuleKind::RequireConfirm => "confirm",
                    _ => "deny",
                };
                Some(ShadowFinding {
                    rule: rule.id.clone(),
                    kind: rule.kind,
                    would,
                    message: hit(rule, call, measures).message,
                })
            })
            .collect();

        if counting_failed && matches!(outcome, Outcome::Allow { .. }) {
            // Not knowing whether the call counts would let a cap be
            // bypassed: refuse rather than forward uncounted.
            return Err(platform_denial(format!(
                "`{}` was not called: its call count could not be determined",
                call.tool
            )));
        }
        let mut counts_for = Vec::new();
        if !counting_failed {
            for &i in counted {
                let rule = &bundle.rules()[i];
                match measures.measured.get(&rule.id) {
                    Some(m) => counts_for.push(Counted {
                        rule: rule.id.clone(),
                        spec: m.spec,
                        split: m.split.clone(),
                        weight: m.weight,
                    }),
                    // Unmeasured: an enforced rule denied above (its
                    // context entry is missing); a shadow one cannot count
                    // this call, and refuses nothing.
                    None if rule.mode != Mode::Shadow
                        && matches!(outcome, Outcome::Allow { .. }) =>
                    {
                        let (why, instead) = measures
                            .unmeasured
                            .get(&rule.id)
                            .map(|u| u.explain(rule))
                            .unwrap_or_else(|| {
                                (
                                    format!("rule `{}` could not be counted", rule.id),
                                    FOR_THE_PLATFORM.to_string(),
                                )
                            });
                        return Err(plain_denial(
                            format!("`{}` was not called: {why}", call.tool),
                            &instead,
                        ));
                    }
                    None => {}
                }
            }
        }
        Ok(Concluded {
            outcome,
            shadow,
            counts_for,
            restricting,
            labels,
        })
    }
}
