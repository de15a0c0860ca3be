//! Per-scope state that caps and rate limits need: the current streak of
//! each cap and the recent calls of each rate limit, keyed by the scope's
//! value (a session id, a user, an agent). Only forwarded calls count.
//!
//! Where it lives is a [`StateStore`]: [`CallState`] in memory (the
//! default), or [`crate::sqlite::SqliteState`] in a SQLite file that
//! survives restarts and is shared by several warden processes. The engine
//! picks one from [`StateBackend`].
//!
//! Memory is bounded: idle entries expire, rate windows keep at most `max`
//! timestamps, and past `max_keys` tracked scopes no new scope is tracked;
//! the engine then supplies no counter for it, which the compiled policies
//! read as "limit reached" (fail closed). A store that cannot be read or
//! written fails closed the same way (see [`StateGate`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_lang::ast::Scope;

/// A source of time, so that tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
    /// Wall-clock time in milliseconds since the Unix epoch, for state kept
    /// across restarts (an `Instant` means nothing to another process).
    fn unix_millis(&self) -> i64 {
        unix_millis(SystemTime::now())
    }
}

fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (for tests and `warden test`).
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_unix_millis: i64,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            start: Instant::now(),
            start_unix_millis: unix_millis(SystemTime::now()),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn unix_millis(&self) -> i64 {
        let offset = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        self.start_unix_millis
            .saturating_add(i64::try_from(offset.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Why caps and rates could not read or write their state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    /// The store could not be opened (or its schema set up).
    #[error("cannot open the state file `{path}`: {message}")]
    #[diagnostic(
        code(warden::state::open),
        help(
            "give a file that is a warden state database (SQLite) or does not exist yet, in a directory warden may write to"
        )
    )]
    Open { path: PathBuf, message: String },
    /// Reading or writing the store failed.
    #[error("{0}")]
    #[diagnostic(
        code(warden::state::io),
        help(
            "check the state file, its disk and its permissions; calls that need a counter are denied meanwhile"
        )
    )]
    Store(String),
    /// A forwarded call could not be recorded, and still cannot.
    #[error("an earlier forwarded call in this scope could not be recorded ({0})")]
    #[diagnostic(
        code(warden::state::unrecorded),
        help(
            "check the state file; calls that need a counter in that scope are denied until it can be written"
        )
    )]
    Unrecorded(String),
}

/// Where caps and rates keep their state.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The current count of `rule` in `key` before this call. `Ok(None)`:
    /// the scope cannot be tracked (a full table), read as "limit
    /// reached"; `Err`: the store cannot be read, which denies too.
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError>;

    /// Records a forwarded call, all of it or nothing. `matched` are the cap
    /// and rate rules whose counting policy matched it. In every scope of
    /// the call, streaks of caps it did not match end; a call the person
    /// confirmed ends all streaks; matched caps and rates count it.
    fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) -> Result<(), StateError>;
}

/// Which [`StateStore`] an engine uses (`EngineOptions::state`).
#[derive(Debug, Clone, Default)]
pub enum StateBackend {
    /// In memory: lost when the process ends.
    #[default]
    Memory,
    /// A SQLite file, created if missing. If it cannot be opened, every
    /// call that needs a counter is denied ("state store unavailable").
    Sqlite(PathBuf),
    /// A store opened by the caller (e.g. a [`crate::sqlite::SqliteState`]
    /// opened up front to report a bad file before serving).
    Store(Arc<dyn StateStore>),
}

impl StateBackend {
    /// Opens the store. Never fails: a store that cannot be opened becomes
    /// one that refuses every read and write, so the engine fails closed.
    pub fn open(&self, limits: StateLimits, clock: Arc<dyn Clock>) -> Arc<dyn StateStore> {
        match self {
            StateBackend::Memory => Arc::new(CallState::new(limits, clock)),
            StateBackend::Sqlite(path) => {
                match crate::sqlite::SqliteState::open(path, limits, clock) {
                    Ok(s) => Arc::new(s),
                    Err(e) => Arc::new(Unavailable(e)),
                }
            }
            StateBackend::Store(s) => Arc::clone(s),
        }
    }
}

/// A store that could not be opened: every read and write fails with why.
#[derive(Debug)]
struct Unavailable(StateError);

impl StateStore for Unavailable {
    fn count(&self, _: &str, _: &LimitSpec, _: &ScopeKey) -> Result<Option<Count>, StateError> {
        Err(self.0.clone())
    }
    fn record_forwarded(
        &self,
        _: &[ScopeKey],
        _: &[(&str, LimitSpec)],
        _: bool,
    ) -> Result<(), StateError> {
        Err(self.0.clone())
    }
}

/// Most forwarded calls kept for a later retry while the store cannot be
/// written. Past this, counts were lost: every counter read fails until
/// the process restarts.
pub const MAX_UNRECORDED: usize = 4096;

#[derive(Debug)]
struct PendingWrite {
    keys: Vec<ScopeKey>,
    matched: Vec<(String, LimitSpec)>,
    confirmed: bool,
}

#[derive(Debug, Default)]
struct Unrecorded {
    writes: VecDeque<PendingWrite>,
    /// Writes were dropped (the queue was full): no count can be trusted.
    lost: bool,
    last_error: String,
}

/// The engine's view of its store. A forwarded call that cannot be
/// recorded is kept and retried before the next counter read; while it
/// still cannot be written, counters of its scopes are not supplied (the
/// next decision there denies, "state store unavailable"). So the
/// transport's `record_forwarded` can stay infallible without letting a
/// failed write bypass a cap.
#[derive(Debug)]
pub(crate) struct StateGate {
    store: Arc<dyn StateStore>,
    dirty: AtomicBool,
    unrecorded: Mutex<Unrecorded>,
}

impl StateGate {
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        StateGate {
            store,
            dirty: AtomicBool::new(false),
            unrecorded: Mutex::new(Unrecorded::default()),
        }
    }

    pub(crate) fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError> {
        if self.dirty.load(Ordering::Acquire) {
            let mut u = self
                .unrecorded
                .lock()
                .map_err(|_| StateError::Store("the state lock is poisoned".into()))?;
            self.flush(&mut u);
            if u.lost {
                return Err(StateError::Unrecorded(format!(
                    "more than {MAX_UNRECORDED} calls could not be recorded: {}",
                    u.last_error
                )));
            }
            if u.writes.iter().any(|w| w.keys.contains(key)) {
                return Err(StateError::Unrecorded(u.last_error.clone()));
            }
        }
        self.store.count(rule, spec, key)
    }

    /// Records now, or keeps the write for a retry and returns why not.
    pub(crate) fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) -> Result<(), StateError> {
        let mut u = self
            .unrecorded
            .lock()
            .map_err(|_| StateError::Store("the state lock is poisoned".into()))?;
        // Earlier unrecorded writes go first, so the order of calls holds.
        if u.writes.is_empty() {
            match self.store.record_forwarded(keys, matched, confirmed) {
                Ok(()) => return Ok(()),
                Err(e) => u.last_error = e.to_string(),
            }
        }
        if u.writes.len() >= MAX_UNRECORDED {
            u.lost = true;
        } else {
            u.writes.push_back(PendingWrite {
                keys: keys.to_vec(),
                matched: matched.iter().map(|(id, s)| (id.to_string(), *s)).collect(),
                confirmed,
            });
        }
        self.dirty.store(true, Ordering::Release);
        self.flush(&mut u);
        if u.writes.is_empty() && !u.lost {
            Ok(())
        } else {
            Err(StateError::Unrecorded(u.last_error.clone()))
        }
    }

    /// Retries unrecorded writes in order, up to the first that fails.
    fn flush(&self, u: &mut Unrecorded) {
        while let Some(w) = u.writes.front() {
            let matched: Vec<(&str, LimitSpec)> =
                w.matched.iter().map(|(id, s)| (id.as_str(), *s)).collect();
            match self.store.record_forwarded(&w.keys, &matched, w.confirmed) {
                Ok(()) => {
                    u.writes.pop_front();
                }
                Err(e) => {
                    u.last_error = e.to_string();
                    return;
                }
            }
        }
        if !u.lost {
            self.dirty.store(false, Ordering::Release);
        }
    }
}

/// The value a scope takes for one call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub scope: Scope,
    pub value: String,
}

/// What a cap or rate rule needs to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub max: u64,
    /// `None` for a cap (streak), `Some` for a rate window.
    pub window: Option<Duration>,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Streaks and windows untouched this long are forgotten.
    pub idle_ttl: Duration,
    /// Most scope values tracked at once.
    pub max_keys: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            idle_ttl: Duration::from_secs(24 * 3600),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Cap rule id → consecutive matching forwarded calls.
    streaks: HashMap<String, u64>,
    /// Rate rule id → times of recent matching forwarded calls, oldest first.
    windows: HashMap<String, VecDeque<Instant>>,
    last_used: Option<Instant>,
}

/// Streaks and rate windows of every scope. Survives policy reloads: it is
/// keyed by rule id, so a rule keeps its count as long as its name stays.
#[derive(Debug)]
pub struct CallState {
    scopes: Mutex<HashMap<ScopeKey, ScopeState>>,
    limits: StateLimits,
    clock: std::sync::Arc<dyn Clock>,
}

/// A counter for one rule, and for a rate how long until it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub frees_in: Option<Duration>,
}

impl CallState {
    pub fn new(limits: StateLimits, clock: std::sync::Arc<dyn Clock>) -> Self {
        CallState {
            scopes: Mutex::new(HashMap::new()),
            limits,
            clock,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The current count of `rule` in `key`, or `None` when the state is
    /// unavailable (lock poisoned, or the scope could not be tracked).
    pub fn count(&self, rule: &str, spec: &LimitSpec, key: &ScopeKey) -> Option<Count> {
        let now = self.clock.now();
        let mut scopes = self.scopes.lock().ok()?;
        let untracked = !scopes.contains_key(key) && scopes.len() >= self.limits.max_keys;
        if untracked {
            Self::sweep(&mut scopes, now, self.limits.idle_ttl);
            if scopes.len() >= self.limits.max_keys {
                return None;
            }
        }
        let Some(state) = scopes.get_mut(key) else {
            return Some(Count {
                count: 0,
                frees_in: None,
            });
        };
        Some(match spec.window {
            None => Count {
                count: state.streaks.get(rule).copied().unwrap_or(0),
                frees_in: None,
            },
            Some(window) => {
                let times = state.windows.entry(rule.to_string()).or_default();
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                Count {
                    count: times.len() as u64,
                    frees_in: times
                        .front()
                        .map(|t| window.saturating_sub(now.duration_since(*t))),
                }
            }
        })
    }

    /// Records a forwarded call. `matched` are the cap and rate rules whose
    /// counting policy matched it. In every scope of the call, streaks of
    /// caps it did not match end; a call the person confirmed ends all
    /// streaks; matched caps and rates count it.
    pub fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) {
        let now = self.clock.now();
        let Ok(mut scopes) = self.scopes.lock() else {
            return;
        };
        if scopes.len() + keys.len() > self.limits.max_keys {
            Self::sweep(&mut scopes, now, self.limits.idle_ttl);
        }
        for key in keys {
            if !scopes.contains_key(key) && scopes.len() >= self.limits.max_keys {
                continue;
            }
            let state = scopes.entry(key.clone()).or_default();
            state.last_used = Some(now);
            let caps_here: Vec<&str> = matched
                .iter()
                .filter(|(_, s)| s.scope == key.scope && s.window.is_none())
                .map(|(id, _)| *id)
                .collect();
            state
                .streaks
                .retain(|id, _| !confirmed && caps_here.contains(&id.as_str()));
            if !confirmed {
                for id in caps_here {
                    *state.streaks.entry(id.to_string()).or_insert(0) += 1;
                }
            }
            for (id, spec) in matched.iter().filter(|(_, s)| s.scope == key.scope) {
                if let Some(window) = spec.window {
                    let times = state.windows.entry(id.to_string()).or_default();
                    while times
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= window)
                    {
                        times.pop_front();
                    }
                    times.push_back(now);
                    // Beyond `max` the oldest no longer decides anything.
                    while times.len() as u64 > spec.max.max(1) {
                        times.pop_front();
                    }
                }
            }
        }
    }

    fn sweep(scopes: &mut HashMap<ScopeKey, ScopeState>, now: Instant, ttl: Duration) {
        scopes.retain(|_, s| s.last_used.is_some_and(|t| now.duration_since(t) < ttl));
    }

    /// Number of scope values tracked (for status and tests).
    pub fn tracked_scopes(&self) -> usize {
        self.scopes.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl StateStore for CallState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError> {
        if self.scopes.is_poisoned() {
            return Err(StateError::Store("the state lock is poisoned".into()));
        }
        Ok(CallState::count(self, rule, spec, key))
    }

    fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) -> Result<(), StateError> {
        if self.scopes.is_poisoned() {
            return Err(StateError::Store("the state lock is poisoned".into()));
        }
        CallState::record_forwarded(self, keys, matched, confirmed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(v: &str) -> ScopeKey {
        ScopeKey {
            scope: Scope::Session,
            value: v.to_string(),
        }
    }
    const CAP: LimitSpec = LimitSpec {
        max: 3,
        window: None,
        scope: Scope::Session,
    };
    const RATE: LimitSpec = LimitSpec {
        max: 2,
        window: Some(Duration::from_secs(60)),
        scope: Scope::Session,
    };

    #[test]
    fn streaks_count_and_end() {
        let s = CallState::new(StateLimits::default(), Arc::new(SystemClock));
        let k = [key("s1")];
        s.record_forwarded(&k, &[("cap", CAP)], false);
        s.record_forwarded(&k, &[("cap", CAP)], false);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 2);
        // Another session is separate.
        assert_eq!(s.count("cap", &CAP, &key("s2")).unwrap().count, 0);
        // A non-matching call ends the streak.
        s.record_forwarded(&k, &[], false);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 0);
        s.record_forwarded(&k, &[("cap", CAP)], false);
        // A confirmed call ends it too.
        s.record_forwarded(&k, &[("cap", CAP)], true);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 0);
    }

    #[test]
    fn rate_windows_slide() {
        let clock = Arc::new(ManualClock::default());
        let s = CallState::new(StateLimits::default(), clock.clone());
        let k = [key("s1")];
        s.record_forwarded(&k, &[("rate", RATE)], false);
        clock.advance(Duration::from_secs(30));
        s.record_forwarded(&k, &[("rate", RATE)], false);
        let c = s.count("rate", &RATE, &k[0]).unwrap();
        assert_eq!(c.count, 2);
        assert_eq!(c.frees_in, Some(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(31));
        assert_eq!(s.count("rate", &RATE, &k[0]).unwrap().count, 1);
    }

    #[test]
    fn memory_is_bounded_and_overflow_fails_closed() {
        let clock = Arc::new(ManualClock::default());
        let limits = StateLimits {
            idle_ttl: Duration::from_secs(10),
            max_keys: 2,
        };
        let s = CallState::new(limits, clock.clone());
        s.record_forwarded(&[key("a")], &[("cap", CAP)], false);
        s.record_forwarded(&[key("b")], &[("cap", CAP)], false);
        s.record_forwarded(&[key("c")], &[("cap", CAP)], false);
        assert_eq!(s.tracked_scopes(), 2);
        assert_eq!(
            s.count("cap", &CAP, &key("c")),
            None,
            "untrackable scope has no counter"
        );
        clock.advance(Duration::from_secs(11));
        assert_eq!(
            s.count("cap", &CAP, &key("c")).map(|c| c.count),
            Some(0),
            "idle scopes expired"
        );
        assert_eq!(s.tracked_scopes(), 0);
    }
}
