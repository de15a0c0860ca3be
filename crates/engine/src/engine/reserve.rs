//! A decision from start to end ([`Engine::decide`], [`Engine::preview`]):
//! prepared once, concluded on the counts, and, for an allowed call that
//! counts towards limits, its slots reserved (retried when calls deciding
//! at the same time took the last ones), then the labels an allowed call
//! sets written before it goes out.
//!
//! **Counts read with the reservation.** On a store whose every step is a
//! round trip to another process (Redis), a limited call would pay three:
//! the count read, the reservation and the commit. There the engine first
//! concludes as if every limit had room, takes that conclusion's hold in
//! the same store step that reads the counts
//! ([`crate::StateStore::count_and_reserve`]), and concludes again on the
//! counts read. The hold is kept only when that second conclusion is the
//! same allow counting the same limits; otherwise it is released and the
//! call is decided as it would have been, on the counts already read. The
//! answer is therefore always the one the counts give: a guess that was
//! wrong costs a release and a reservation, never a different decision.

use super::evaluate::{Concluded, Prepared};
use super::limits::hold_keys;
use super::{Engine, FOR_THE_PLATFORM, MAX_RESERVE_ATTEMPTS, plain_denial, platform_denial};
use crate::call::CallContext;
use crate::decided::{Decided, Denial, Outcome};
use crate::gate::HoldGuard;
use crate::index::PolicyBundle;
use crate::state::{Counted, Hold, Reserved};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use warden_lang::ast::Mode;

/// What reserving together with the count read came to.
enum WithCounts {
    /// The guess held: the call's conclusion on its counts, and its hold.
    Held(Concluded, Arc<HoldGuard>),
    /// Counts were read, but no hold kept: decide on them.
    Counted(super::limits::Measures),
    /// The guess was no allow that holds anything: decide as usual.
    NotTried,
}

impl Engine {
    pub(super) fn decide_with(&self, call: &CallContext, reserve: bool) -> Decided {
        let start = Instant::now();
        let bundle = self.policies.load_full();
        let (concluded, mut hold) = match self.prepare(&bundle, call) {
            Err(denial) => (Concluded::denied(denial), None),
            Ok(prepared) if reserve => self.conclude_and_hold(&bundle, call, &prepared),
            Ok(prepared) => {
                let measures = prepared.reads.read(&self.state);
                (self.conclude(&bundle, call, &prepared, &measures), None)
            }
        };
        let Concluded {
            outcome,
            shadow,
            restricting,
            labels,
            ..
        } = concluded;
        // The labels of an allowed call are on its session before it goes
        // out: a label that could not be written would let a later call
        // through that it should stop, so the call is refused instead.
        let (outcome, labels) = match outcome {
            Outcome::Allow { .. } if reserve && !labels.is_empty() => {
                match self.state.add_session_labels(&call.session, &labels) {
                    Ok(()) => (outcome, labels.into_iter().map(|(l, _)| l).collect()),
                    Err(e) => {
                        hold = None;
                        let denial = platform_denial(format!(
                            "`{}` was not called: state store unavailable: the session's labels could not be written: {e}",
                            call.tool
                        ));
                        (Outcome::Deny(denial), Vec::new())
                    }
                }
            }
            outcome => (outcome, Vec::new()),
        };
        Decided {
            id: format!(
                "{}-{}",
                self.id_prefix,
                self.next_id.fetch_add(1, Ordering::Relaxed)
            ),
            policy_version: bundle.version().to_string(),
            outcome,
            shadow,
            latency: start.elapsed(),
            hold,
            restricting,
            grants: Vec::new(),
            labels,
            stated_annotations: if bundle.compiled().stated_annotations().is_empty() {
                crate::call::ToolAnnotations::default()
            } else {
                bundle.slice(&call.server, &call.tool).stated
            },
        }
    }

    /// The conclusion of a call that may be forwarded, with the slots an
    /// allowed one holds.
    fn conclude_and_hold(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        prepared: &Prepared,
    ) -> (Concluded, Option<Arc<HoldGuard>>) {
        let mut known = None;
        if self.reserve_with_counts && !prepared.reads.is_empty() {
            match self.reserve_with_counts(bundle, call, prepared) {
                WithCounts::Held(concluded, guard) => return (concluded, Some(guard)),
                WithCounts::Counted(measures) => known = Some(measures),
                WithCounts::NotTried => {}
            }
        }
        let mut attempts = 0;
        loop {
            let measures = match known.take() {
                Some(m) => m,
                None => prepared.reads.read(&self.state),
            };
            let concluded = self.conclude(bundle, call, prepared, &measures);
            if !concluded.is_allow() {
                return (concluded, None);
            }
            let wanted = hold_for(bundle, call, &concluded.counts_for);
            if wanted.slots().next().is_none() {
                return (concluded, None);
            }
            let (reason, instead) = match self.state.reserve(&wanted) {
                Ok(Reserved::Held(id)) => {
                    let guard = HoldGuard::new(Arc::clone(&self.state), id, wanted);
                    return (concluded, Some(Arc::new(guard)));
                }
                Ok(Reserved::Full { .. }) if attempts < MAX_RESERVE_ATTEMPTS => {
                    attempts += 1;
                    continue;
                }
                Ok(Reserved::Full { rule }) => (
                    format!(
                        "`{}` was not called: calls decided at the same time kept taking the last slots of rule `{rule}`",
                        call.tool
                    ),
                    "call again once; if the limit is reached, the answer says so and when it frees",
                ),
                Ok(Reserved::Untracked(why)) => (
                    format!(
                        "`{}` was not called: warden's own bound on the limits it tracks was reached ({why}); no policy rule's limit was reached",
                        call.tool
                    ),
                    "tell the person; an operator can raise warden's state bounds, and idle limits free room as they expire",
                ),
                Err(e) => (
                    format!(
                        "`{}` was not called: state store unavailable: {e}",
                        call.tool
                    ),
                    FOR_THE_PLATFORM,
                ),
            };
            return (refused(concluded, reason, instead), None);
        }
    }

    /// The guess (every limit has room), its hold taken as the counts are
    /// read, and the conclusion on those counts (see the module docs).
    fn reserve_with_counts(
        &self,
        bundle: &PolicyBundle,
        call: &CallContext,
        prepared: &Prepared,
    ) -> WithCounts {
        let guess = self.conclude(bundle, call, prepared, &prepared.reads.with_room());
        if !guess.is_allow() {
            return WithCounts::NotTried;
        }
        let wanted = hold_for(bundle, call, &guess.counts_for);
        if wanted.slots().next().is_none() {
            return WithCounts::NotTried;
        }
        let (counts, reserved) = self
            .state
            .count_and_reserve(&prepared.reads.slots(), &wanted);
        let measures = prepared.reads.measures(counts);
        // Full, untracked or unavailable: nothing was taken.
        let Ok(Reserved::Held(id)) = reserved else {
            return WithCounts::Counted(measures);
        };
        let concluded = self.conclude(bundle, call, prepared, &measures);
        let same = concluded.is_allow() && concluded.counts_for == wanted.matched;
        let guard = HoldGuard::new(Arc::clone(&self.state), id, wanted);
        if same {
            return WithCounts::Held(concluded, Arc::new(guard));
        }
        // Dropped: the hold is released before the call is decided again.
        drop(guard);
        WithCounts::Counted(measures)
    }
}

/// The hold an allowed call takes for the limits it counts towards.
fn hold_for(bundle: &PolicyBundle, call: &CallContext, counts_for: &[Counted]) -> Hold {
    Hold {
        user: call.identity.user.clone(),
        keys: hold_keys(bundle, call, counts_for),
        matched: counts_for.to_vec(),
        confirmed: !call.confirmed.is_empty(),
        unchecked: counts_for
            .iter()
            .filter(|c| {
                bundle
                    .rule_index(&c.rule)
                    .is_some_and(|i| bundle.rules()[i].mode == Mode::Shadow)
            })
            .map(|c| c.rule.clone())
            .collect(),
    }
}

/// An allowed conclusion refused because its slots could not be held: its
/// shadow findings stay, it sets no label and counts nothing.
fn refused(concluded: Concluded, reason: String, instead: &str) -> Concluded {
    let denial: Denial = plain_denial(reason, instead);
    Concluded {
        outcome: Outcome::Deny(denial),
        shadow: concluded.shadow,
        counts_for: Vec::new(),
        restricting: concluded.restricting,
        labels: Vec::new(),
    }
}
