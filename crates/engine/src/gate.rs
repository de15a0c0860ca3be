//! The engine's view of its [`StateStore`] ([`StateGate`]), and the hold a
//! decided call keeps on its limits until it is forwarded or not
//! ([`HoldGuard`]).
//!
//! Writes that fail are kept, in order, and retried before the next read;
//! while one still fails, counters of its scopes are not supplied, so the
//! next decision there denies ("state store unavailable") instead of
//! trusting a count that misses a call (rows are what a write is kept
//! by: a kept write makes every key of its rows untrusted). A call that counts for no limit
//! ends streaks without waiting for the store: if the store is busy (a
//! locked SQLite file), the end is kept and applied before any later read
//! or write of those scopes. Applying such an end earlier than a kept
//! older write can only make a streak longer than it is (fail closed).

use crate::state::{
    Count, CountsAndReserved, Hold, HoldId, Reserved, ScopeKey, StateError, StateStore,
};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most writes kept for a later retry while the store cannot be written,
/// and most scopes whose streak ends wait for a busy store. Past this,
/// counts were lost: every counter read fails until the process restarts.
pub const MAX_UNRECORDED: usize = 4096;
const MAX_DEFERRED: usize = 100_000;

#[derive(Debug)]
enum Write {
    Commit(HoldId, Hold),
    Release(HoldId, Hold),
}

impl Write {
    fn keys(&self) -> &[ScopeKey] {
        match self {
            Write::Commit(_, h) | Write::Release(_, h) => &h.keys,
        }
    }
    fn apply(&self, store: &dyn StateStore) -> Result<(), StateError> {
        match self {
            Write::Commit(id, h) => store.commit(*id, h),
            Write::Release(id, h) => store.release(*id, h),
        }
    }
}

#[derive(Debug, Default)]
struct Kept {
    writes: VecDeque<Write>,
    /// Writes were dropped (the queue was full): no count can be trusted.
    lost: bool,
    last_error: String,
}

#[derive(Debug)]
pub(crate) struct StateGate {
    store: Arc<dyn StateStore>,
    /// Something is kept (writes or deferred ends): reads check first.
    dirty: AtomicBool,
    kept: Mutex<Kept>,
    /// Scopes whose streaks end once the store is free. Never held
    /// across store I/O, so a call that counts for nothing never waits.
    deferred: Mutex<HashSet<ScopeKey>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateGate {
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        StateGate {
            store,
            dirty: AtomicBool::new(false),
            kept: Mutex::new(Kept::default()),
            deferred: Mutex::new(HashSet::new()),
        }
    }

    /// Applies what is kept, oldest first; the ends of streaks first of
    /// all. Then says whether `keys` can be trusted.
    fn flush(&self, kept: &mut Kept, keys: &[ScopeKey]) -> Result<(), StateError> {
        let ends: Vec<ScopeKey> = lock(&self.deferred).drain().collect();
        if !ends.is_empty()
            && let Err(e) = self.store.end_streaks(&ends, true)
        {
            kept.last_error = e.to_string();
            lock(&self.deferred).extend(ends);
        }
        while let Some(w) = kept.writes.front() {
            match w.apply(&*self.store) {
                Ok(()) => {
                    kept.writes.pop_front();
                }
                Err(e) => {
                    kept.last_error = e.to_string();
                    break;
                }
            }
        }
        let deferred_empty = lock(&self.deferred).is_empty();
        if kept.writes.is_empty() && deferred_empty && !kept.lost {
            self.dirty.store(false, Ordering::Release);
        }
        if kept.lost {
            return Err(StateError::Unrecorded(format!(
                "more than {MAX_UNRECORDED} writes could not be recorded: {}",
                kept.last_error
            )));
        }
        let deferred = lock(&self.deferred);
        if keys
            .iter()
            .any(|k| deferred.contains(k) || kept.writes.iter().any(|w| w.keys().contains(k)))
        {
            return Err(StateError::Unrecorded(kept.last_error.clone()));
        }
        Ok(())
    }

    fn check(&self, keys: &[ScopeKey]) -> Result<(), StateError> {
        if self.dirty.load(Ordering::Acquire) {
            let mut kept = lock(&self.kept);
            self.flush(&mut kept, keys)?;
        }
        Ok(())
    }

    /// The store's counts for each of `reqs`: a row with a kept write is
    /// refused (its count misses a call), the others are read together.
    pub(crate) fn count_many(
        &self,
        reqs: &[crate::state::Slot<'_>],
    ) -> Vec<Result<Option<Count>, StateError>> {
        let checked: Vec<Result<(), StateError>> = reqs
            .iter()
            .map(|r| self.check(std::slice::from_ref(r.key)))
            .collect();
        let ask: Vec<crate::state::Slot<'_>> = reqs
            .iter()
            .zip(&checked)
            .filter(|(_, c)| c.is_ok())
            .map(|(r, _)| *r)
            .collect();
        let mut answers = self.store.count_many(&ask).into_iter();
        checked
            .into_iter()
            .map(|c| match c {
                Err(e) => Err(e),
                Ok(()) => answers.next().unwrap_or_else(|| {
                    Err(StateError::Store(
                        "the store answered fewer reads than asked".into(),
                    ))
                }),
            })
            .collect()
    }

    pub(crate) fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        self.check(&hold.keys)?;
        self.store.reserve(hold)
    }

    /// The counts of `reads` and the reservation of `hold` in one store
    /// step ([`StateStore::count_and_reserve`]); while writes are kept for
    /// a retry, one after the other, each checked as
    /// [`StateGate::count_many`] and [`StateGate::reserve`] check.
    pub(crate) fn count_and_reserve(
        &self,
        reads: &[crate::state::Slot<'_>],
        hold: &Hold,
    ) -> CountsAndReserved {
        if self.dirty.load(Ordering::Acquire) {
            return (self.count_many(reads), self.reserve(hold));
        }
        self.store.count_and_reserve(reads, hold)
    }

    /// Applies now, or keeps the write for a retry and returns why not.
    fn write(&self, w: Write) -> Result<(), StateError> {
        let mut kept = lock(&self.kept);
        // Earlier kept writes go first, so the order of calls holds.
        let _ = self.flush(&mut kept, &[]);
        if kept.writes.is_empty() {
            match w.apply(&*self.store) {
                Ok(()) => return Ok(()),
                Err(e) => kept.last_error = e.to_string(),
            }
        }
        if kept.writes.len() >= MAX_UNRECORDED {
            kept.lost = true;
        } else {
            kept.writes.push_back(w);
        }
        self.dirty.store(true, Ordering::Release);
        Err(StateError::Unrecorded(kept.last_error.clone()))
    }

    pub(crate) fn use_once(
        &self,
        mark: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StateError> {
        self.store.use_once(mark, ttl)
    }

    pub(crate) fn add_session_labels(
        &self,
        session: &str,
        labels: &[(String, std::time::Duration)],
    ) -> Result<(), StateError> {
        self.store.add_session_labels(session, labels)
    }

    pub(crate) fn session_labels(
        &self,
        session: &str,
        names: &[String],
    ) -> Result<Vec<String>, StateError> {
        self.store.session_labels(session, names)
    }

    pub(crate) fn put_grant(
        &self,
        key: &str,
        id: &str,
        ttl: std::time::Duration,
        uses: Option<u64>,
    ) -> Result<(), StateError> {
        self.store.put_grant(key, id, ttl, uses)
    }

    pub(crate) fn use_grant(&self, key: &str) -> Result<Option<String>, StateError> {
        self.store.use_grant(key)
    }

    pub(crate) fn store(&self) -> &dyn crate::state::StateStore {
        self.store.as_ref()
    }

    pub(crate) fn health(&self) -> Option<crate::state::StoreHealth> {
        self.store.health()
    }

    pub(crate) fn commit(&self, id: HoldId, hold: Hold) -> Result<(), StateError> {
        self.write(Write::Commit(id, hold))
    }

    pub(crate) fn release(&self, id: HoldId, hold: Hold) -> Result<(), StateError> {
        self.write(Write::Release(id, hold))
    }

    /// A forwarded call that counts for nothing: its scopes' streaks end,
    /// now if the store is free, else before the next use of those scopes.
    pub(crate) fn end_streaks(&self, keys: &[ScopeKey]) -> Result<(), StateError> {
        match self.store.end_streaks(keys, false) {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut deferred = lock(&self.deferred);
                if deferred.len() + keys.len() > MAX_DEFERRED {
                    drop(deferred);
                    let mut kept = lock(&self.kept);
                    kept.lost = true;
                    kept.last_error = e.to_string();
                } else {
                    deferred.extend(keys.iter().cloned());
                }
                self.dirty.store(true, Ordering::Release);
                match e {
                    StateError::Busy => Ok(()),
                    e => Err(StateError::Unrecorded(e.to_string())),
                }
            }
        }
    }
}

impl Drop for StateGate {
    /// Best effort, never waiting on a lock: deferred ends of streaks are
    /// written before the engine goes, so a state file does not keep
    /// streaks this process saw end. (Kept failed writes are not retried:
    /// a store that failed them may block.)
    fn drop(&mut self) {
        let ends: Vec<ScopeKey> = lock(&self.deferred).drain().collect();
        if !ends.is_empty() {
            let _ = self.store.end_streaks(&ends, false);
        }
    }
}

/// The slots a decided call holds. Committed by
/// [`crate::Engine::record_forwarded`] when the call was forwarded;
/// released when the last copy of its [`crate::Decided`] is dropped
/// without that (denied later, confirmation declined, upstream
/// unreachable, cancelled before sending).
pub(crate) struct HoldGuard {
    gate: Arc<StateGate>,
    id: HoldId,
    hold: Hold,
    done: AtomicBool,
}

impl std::fmt::Debug for HoldGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldGuard")
            .field("id", &self.id)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl HoldGuard {
    pub(crate) fn new(gate: Arc<StateGate>, id: HoldId, hold: Hold) -> Self {
        HoldGuard {
            gate,
            id,
            hold,
            done: AtomicBool::new(false),
        }
    }

    /// Commits once; later calls do nothing.
    pub(crate) fn commit(&self) -> Result<(), StateError> {
        if self.done.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.gate.commit(self.id, self.hold.clone())
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            let _ = self.gate.release(self.id, self.hold.clone());
        }
    }
}
