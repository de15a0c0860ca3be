//! What a call counts as for each cap, rate and budget of its slice: its
//! row and split value per limit (compound scopes), a budget's amount read
//! exactly from the arguments, the counts and sums read from the store,
//! and, when a limit cannot be measured, why (in words the denial uses).
//! The engine turns these into `context.counters` / `context.budgets` and
//! into the slots a decided call holds.

use super::FOR_THE_PLATFORM;
use crate::call::CallContext;
use crate::gate::StateGate;
use crate::index::{PolicyBundle, Slice};
use crate::state::{Count, Counted, LimitSpec, ScopeKey, Slot, StateError};
use std::collections::HashMap;
use std::time::Duration;
use warden_lang::ast::{RuleKind, Scope, ScopeSet};
use warden_lang::{CompiledRule, amount};

/// What [`measure`] found for every limited rule of a slice.
#[derive(Debug, Default)]
pub(super) struct Measures {
    /// `context.counters`: caps and rates, the count before this call.
    pub counters: Vec<(String, u64)>,
    /// `context.budgets`: used + this call's amount, as Cedar decimal text.
    pub budgets: Vec<(String, u64)>,
    /// Rule id → how the call counts for it.
    pub measured: HashMap<String, Measured>,
    /// Rule id → why it could not be measured (its context entry is left
    /// out, so the rule denies when it matches).
    pub unmeasured: HashMap<String, Unmeasured>,
}

/// How a call counts for one limit.
#[derive(Debug, Clone)]
pub(super) struct Measured {
    pub spec: LimitSpec,
    pub split: String,
    /// 1, or the budget's amount in units.
    pub weight: u64,
    /// What the key used before this call (calls, or units).
    pub used: u64,
    /// For a window: when enough of it frees for this call.
    pub frees_in: Option<Duration>,
}

/// Why a limit could not be measured for a call.
#[derive(Debug, Clone)]
pub(super) enum Unmeasured {
    /// The scope names an attribute the call lacks (no model declared).
    NoValue(Scope),
    /// The budget's argument is not an amount warden can add up.
    Amount(&'static str),
    /// Used + amount is more than any amount Cedar holds.
    Overflow,
    /// The store cannot be read (or cannot track the key).
    Store(StateError),
}

impl Unmeasured {
    /// The denial's reason (after "`tool` was not called: ") and advice.
    pub fn explain(&self, rule: &CompiledRule) -> (String, String) {
        let id = &rule.id;
        let arg = rule.budget.as_ref().map_or("", |b| b.written.as_str());
        let name = arg.strip_prefix("args.").unwrap_or(arg);
        match self {
            Unmeasured::NoValue(scope) => (
                format!(
                    "rule `{id}` counts calls {}, and this call declares no {}",
                    rule.limit.map_or(String::new(), |l| l.scope.phrase()),
                    scope.keyword()
                ),
                match scope {
                    Scope::Model => "tell the person: warden knows the model only when it is declared, with `--model` or `[identity].model` in warden's configuration, or by the `model_claim` of a verified bearer token (`[auth]`); calls this rule counts are denied until then".to_string(),
                    _ => format!("tell the person: this call carries no {}; calls this rule counts are denied until it does", scope.keyword()),
                },
            ),
            Unmeasured::Amount(why) => (
                format!("rule `{id}` adds up `{arg}`, and this call's `{name}` is {why}"),
                format!(
                    "send `{name}` as a number (at most 4 decimal places, not negative)"
                ),
            ),
            Unmeasured::Overflow => (
                format!(
                    "rule `{id}` adds up `{arg}`, and this call's `{name}` would take the total past what warden can count"
                ),
                format!("send a smaller `{name}`"),
            ),
            Unmeasured::Store(e) => (
                format!("state store unavailable: {e}"),
                FOR_THE_PLATFORM.to_string(),
            ),
        }
    }
}

/// The call's row for the row scopes `row` (see [`ScopeKey`]). Calls
/// without a declared agent share one agent value, so they are capped
/// together rather than not at all.
pub(super) fn row_key(call: &CallContext, row: ScopeSet) -> ScopeKey {
    let values: Vec<String> = row
        .iter()
        .map(|s| match s {
            Scope::Session => call.session.clone(),
            Scope::User => call.identity.user.clone(),
            _ => call.identity.agent.clone().unwrap_or_default(),
        })
        .collect();
    let value = match values.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        many => serde_json::to_string(many).unwrap_or_default(),
    };
    ScopeKey { row, value }
}

/// The call's split value for the split scopes `split`: a JSON array of
/// the model and the tool's server and name (so tools of two servers
/// differ and no two values share a text); empty for none. `Err` names
/// the scope the call has no value for.
pub(super) fn split_value(call: &CallContext, split: ScopeSet) -> Result<String, Scope> {
    if split.is_empty() {
        return Ok(String::new());
    }
    let mut parts: Vec<&str> = Vec::new();
    for s in split.iter() {
        match s {
            Scope::Model => parts.push(call.identity.model.as_deref().ok_or(Scope::Model)?),
            _ => {
                parts.push(&call.server);
                parts.push(&call.tool);
            }
        }
    }
    Ok(serde_json::to_string(&parts).unwrap_or_default())
}

/// The budget's amount in units, read exactly: an integer is its own text;
/// a fraction comes as a binary float from the JSON parser, whose
/// shortest text is the sent number whenever that had at most 15
/// significant digits (more cannot be recovered exactly, so it is refused
/// rather than rounded).
pub(super) fn amount_of(call: &CallContext, pointer: &str) -> Result<u64, &'static str> {
    let value = call.arguments.pointer(pointer).ok_or("missing")?;
    let serde_json::Value::Number(n) = value else {
        return Err("not a number");
    };
    let text = n.to_string();
    if n.is_f64() && significant_digits(&text) > 15 {
        return Err("too precise to add up exactly");
    }
    amount::parse_units(&text).map_err(|p| match p {
        amount::AmountProblem::NotANumber => "not a number",
        amount::AmountProblem::Negative => "negative",
        amount::AmountProblem::TooPrecise => "more precise than 4 decimal places",
        amount::AmountProblem::TooLarge => "too large",
    })
}

fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

pub(super) fn limit_spec(rule: &CompiledRule) -> LimitSpec {
    let l = rule.limit.expect("only limited rules are asked for a spec");
    LimitSpec {
        max: l.max,
        window: l.window_secs.map(Duration::from_secs),
        scope: l.scope,
        summed: rule.kind == RuleKind::Budget,
    }
}

/// What a slice's limits need read for a call (each limit's row, split
/// value and weight), and the limits it cannot be measured for at all.
#[derive(Debug)]
pub(super) struct LimitReads {
    wants: Vec<Want>,
    unmeasured: HashMap<String, Unmeasured>,
}

#[derive(Debug)]
struct Want {
    id: String,
    spec: LimitSpec,
    key: ScopeKey,
    split: String,
    weight: u64,
}

impl LimitReads {
    pub(super) fn new(bundle: &PolicyBundle, slice: &Slice, call: &CallContext) -> Self {
        let mut unmeasured = HashMap::new();
        let mut wants = Vec::with_capacity(slice.limited.len());
        for &i in &slice.limited {
            let rule = &bundle.rules()[i];
            let spec = limit_spec(rule);
            let id = rule.id.clone();
            let split = match split_value(call, spec.scope.split_by()) {
                Ok(s) => s,
                Err(scope) => {
                    unmeasured.insert(id, Unmeasured::NoValue(scope));
                    continue;
                }
            };
            let weight = match &rule.budget {
                None => 1,
                Some(b) => match amount_of(call, &b.pointer) {
                    Ok(units) => units,
                    Err(why) => {
                        unmeasured.insert(id, Unmeasured::Amount(why));
                        continue;
                    }
                },
            };
            let key = row_key(call, spec.scope.row());
            wants.push(Want {
                id,
                spec,
                key,
                split,
                weight,
            });
        }
        LimitReads { wants, unmeasured }
    }

    /// Whether no limit needs the store.
    pub(super) fn is_empty(&self) -> bool {
        self.wants.is_empty()
    }

    /// The reads, in the order [`LimitReads::measures`] takes answers.
    pub(super) fn slots(&self) -> Vec<Slot<'_>> {
        self.wants
            .iter()
            .map(|w| Slot {
                rule: &w.id,
                spec: &w.spec,
                key: &w.key,
                split: &w.split,
                weight: w.weight,
            })
            .collect()
    }

    /// Every limit read from the store, in one round trip to a shared one.
    pub(super) fn read(&self, state: &StateGate) -> Measures {
        self.measures(state.count_many(&self.slots()))
    }

    /// The measures if nothing were used yet in any limit: what the call
    /// is decided on before its counts arrive with its reservation.
    pub(super) fn with_room(&self) -> Measures {
        let none_used = || {
            Ok(Some(Count {
                count: 0,
                frees_in: None,
            }))
        };
        self.measures(self.wants.iter().map(|_| none_used()).collect())
    }

    /// The measures given the store's answer to each of
    /// [`LimitReads::slots`].
    pub(super) fn measures(&self, answers: Vec<Result<Option<Count>, StateError>>) -> Measures {
        let mut m = Measures {
            unmeasured: self.unmeasured.clone(),
            ..Measures::default()
        };
        for (w, answer) in self.wants.iter().zip(answers) {
            let id = w.id.clone();
            let count = match answer {
                Ok(Some(c)) => c,
                // The store cannot track the key: warden's bound, which the
                // denial must not present as the rule's limit.
                Ok(None) => {
                    m.unmeasured.insert(
                        id,
                        Unmeasured::Store(StateError::Store(
                            "its table of tracked scopes is full".into(),
                        )),
                    );
                    continue;
                }
                Err(e) => {
                    m.unmeasured.insert(id, Unmeasured::Store(e));
                    continue;
                }
            };
            if w.spec.summed {
                match count.count.checked_add(w.weight) {
                    Some(total) if total <= amount::MAX_UNITS => {
                        m.budgets.push((id.clone(), total))
                    }
                    _ => {
                        m.unmeasured.insert(id, Unmeasured::Overflow);
                        continue;
                    }
                }
            } else {
                m.counters.push((id.clone(), count.count));
            }
            m.measured.insert(
                id,
                Measured {
                    spec: w.spec,
                    split: w.split.clone(),
                    weight: w.weight,
                    used: count.count,
                    frees_in: count.frees_in,
                },
            );
        }
        m
    }
}

/// The rows a cap of the set measures streaks in, for the call: where a
/// forwarded call the cap does not count ends its streak.
pub(super) fn cap_rows(bundle: &PolicyBundle, call: &CallContext) -> Vec<ScopeKey> {
    // Found once per bundle (`PolicyBundle::cap_rows`), not by a scan of
    // every rule of the set per call.
    bundle.cap_rows.iter().map(|&r| row_key(call, r)).collect()
}

/// A hold's rows: the set's cap rows and the rows of what the call counts
/// towards.
pub(super) fn hold_keys(
    bundle: &PolicyBundle,
    call: &CallContext,
    matched: &[Counted],
) -> Vec<ScopeKey> {
    let mut keys = cap_rows(bundle, call);
    for c in matched {
        if !keys.iter().any(|k| k.row == c.spec.scope.row()) {
            keys.push(row_key(call, c.spec.scope.row()));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits_ignore_zeros_around() {
        assert_eq!(significant_digits("0.1"), 1);
        assert_eq!(significant_digits("1200.50"), 5);
        assert_eq!(significant_digits("1.2345678901234567e20"), 17);
    }
}
