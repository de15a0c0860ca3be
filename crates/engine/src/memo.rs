//! The decision memo: Cedar's answer for a slice, kept per exact input.
//!
//! Cedar's answer (which policies of the slice are satisfied) is a pure
//! function of the policies and the request. The request of a call is
//! built from a [`KeyInput`] only (`cedar_request::build_request_at`
//! takes nothing else), and the key ([`key::key`]) encodes every part of
//! it a policy of the slice can read:
//!
//! - the slice (server and tool: its policies, and the tool entity's
//!   `name` and `server`), the user (the principal's id and `name`), the
//!   groups (the principal's parents) and the four annotation bits (the
//!   rest of the tool entity): always;
//! - each context attribute the slice's policies read, found by walking
//!   the policies' trees when the slice is built ([`reads`]); an attribute
//!   no policy reads cannot change the answer. Arguments are keyed as
//!   their projection (what `context.args` holds: the values read, in the
//!   form read), the clock as the local day and minute in each zone;
//! - `context.counters` and `context.budgets` entry by entry: its
//!   presence, and the outcome of each comparison with a constant the
//!   policies make on it (a cap's `< max`), not the count, so a count
//!   that grows below its maximum keeps hitting; the exact value when the
//!   walk finds any other read.
//!
//! Only answers without any evaluation error are kept (an error is never
//! cached, as allow or otherwise). The memo lives in the
//! [`PolicyBundle`](crate::PolicyBundle), so a policy swap discards it;
//! it holds at most [`MAX_ENTRIES`] answers and [`MAX_BYTES`] of keys
//! (then it is emptied), and a key longer than [`key::MAX_KEY_BYTES`] is
//! not kept at all: many distinct arguments cannot grow memory.
//!
//! [`MemoMode::Verify`] re-evaluates every hit and counts the answers
//! that differ; the differential tests run that way.

mod key;
mod reads;

pub(crate) use key::{KeyInput, key};
#[cfg(test)]
pub(crate) use key::{OMIT, Part};
pub(crate) use reads::SliceReads;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Most answers a bundle's memo holds.
pub const MAX_ENTRIES: usize = 16_384;
/// Most bytes of keys (and answers) a bundle's memo holds.
pub const MAX_BYTES: usize = 8 << 20;

/// Whether decisions use the memo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoMode {
    /// Keep and reuse answers.
    #[default]
    On,
    /// Evaluate every call.
    Off,
    /// Keep answers, and on every hit evaluate again, count an answer that
    /// differs ([`MemoStats::mismatches`]) and use the fresh one. For tests.
    Verify,
}

/// What the memo of the bundle in force did since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
    /// Under [`MemoMode::Verify`]: hits whose kept answer differed from a
    /// fresh evaluation (a memo bug).
    pub mismatches: u64,
    /// Times the memo was emptied because it was full.
    pub clears: u64,
    pub entries: usize,
}

/// Cedar's answer for one request, by role of each policy (indexes into
/// the bundle's rules), each list sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Satisfied permits: (0 for `default allow`, else rule index + 1, id).
    pub permits: Vec<(usize, String)>,
    /// Satisfied enforced restrictions: (rule index, id).
    pub forbids: Vec<(usize, String)>,
    /// Satisfied shadow rules (rule index, evaluation failed).
    pub shadow_hits: Vec<(usize, bool)>,
    /// Limits whose counting policy is satisfied (rule indexes).
    pub counted: Vec<usize>,
    /// A counting policy failed to evaluate (then the answer had an
    /// error, and is not kept).
    pub counting_failed: bool,
    /// `label` rules satisfied: the labels the call sets once allowed
    /// (rule indexes).
    pub labels: Vec<usize>,
}

impl Answer {
    fn bytes(&self) -> usize {
        let ids: usize = self
            .permits
            .iter()
            .chain(&self.forbids)
            .map(|(_, id)| id.len() + 32)
            .sum();
        64 + ids + 16 * (self.shadow_hits.len() + self.counted.len() + self.labels.len())
    }
}

#[derive(Debug, Default)]
struct Table {
    answers: HashMap<Box<[u8]>, Arc<Answer>>,
    bytes: usize,
}

/// One bundle's memo.
#[derive(Debug, Default)]
pub(crate) struct DecisionMemo {
    table: RwLock<Table>,
    hits: AtomicU64,
    misses: AtomicU64,
    mismatches: AtomicU64,
    clears: AtomicU64,
}

impl DecisionMemo {
    /// The kept answer for `key`, counting a hit or a miss.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<Answer>> {
        let found = self
            .table
            .read()
            .ok()
            .and_then(|t| t.answers.get(key).cloned());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `answer` for `key`, emptying the memo first when it is full.
    pub(crate) fn insert(&self, key: Vec<u8>, answer: Arc<Answer>) {
        let size = key.len() + answer.bytes() + 64;
        let Ok(mut t) = self.table.write() else {
            return;
        };
        if t.answers.len() >= MAX_ENTRIES || t.bytes + size > MAX_BYTES {
            t.answers = HashMap::new();
            t.bytes = 0;
            self.clears.fetch_add(1, Ordering::Relaxed);
        }
        if t.answers.insert(key.into_boxed_slice(), answer).is_none() {
            t.bytes += size;
        }
    }

    pub(crate) fn mismatch(&self) {
        self.mismatches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            mismatches: self.mismatches.load(Ordering::Relaxed),
            clears: self.clears.load(Ordering::Relaxed),
            entries: self.table.read().map_or(0, |t| t.answers.len()),
        }
    }
}

#[cfg(test)]
mod tests;
