//! Session labels while deciding: whether a call's answer depends on the
//! labels its session has at all. With few labels asked about, every
//! combination of them is answered (from the bundle's memo after the
//! first time); when all agree, the store is not read, so a call the
//! labels cannot change (a closed-world tool under `session has label x
//! and tool.open_world`) costs no round trip to a shared store.

use super::answer;
use crate::index::PolicyBundle;
use crate::memo::{Answer, KeyInput};
use std::sync::Arc;

/// Most labels a slice may ask about for the engine to answer every
/// combination of them instead of reading the session's (2^n answers).
pub(super) const MAX_LABELS_TRIED: usize = 2;

impl super::Engine {
    /// Cedar's answer for `base` if it is the same whichever of `asked`
    /// (sorted) the session has: then the session's labels need not be
    /// read. `None`: some combination answers otherwise, or one failed.
    pub(super) fn answer_whatever_the_labels(
        &self,
        bundle: &PolicyBundle,
        asked: &[String],
        base: KeyInput<'_>,
    ) -> Option<Arc<Answer>> {
        let mut first: Option<Arc<Answer>> = None;
        for mask in 0..(1usize << asked.len()) {
            let subset: Vec<String> = asked
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, l)| l.clone())
                .collect();
            let input = KeyInput {
                labels: &subset,
                ..base
            };
            let answer = answer::answer(&self.authorizer, self.memo, bundle, &input).ok()?;
            match &first {
                None => first = Some(answer),
                Some(f) if **f == *answer => {}
                Some(_) => return None,
            }
        }
        first
    }
}
