//! The state caps and rate limits need, and the contract of the stores
//! that keep it: the current streak of each cap and the recent calls of
//! each rate limit, keyed by the scope's value (a session id, a user, an
//! agent). Only forwarded calls count.
//!
//! A limit is **reserved** when the call is decided and **committed** when
//! it is forwarded ([`StateStore::reserve`], [`StateStore::commit`],
//! [`StateStore::release`]): the store checks and takes the slot in one
//! atomic step, so calls deciding at the same time (other sessions, other
//! warden processes on one file) never overshoot a limit. A held slot counts
//! as used until it is committed or released. The contract is one a shared
//! store (Redis with a script, Postgres with a transaction) can implement
//! as well as memory and SQLite do.
//!
//! Where the state lives is a [`StateStore`]: [`CallState`] in memory (the
//! default, [`crate::memory`]), or [`crate::sqlite::SqliteState`] in a
//! SQLite file that survives restarts and is shared by several warden
//! processes. The engine picks one from [`StateBackend`] and reaches it
//! through [`crate::gate::StateGate`], which keeps writes that failed.
//!
//! Memory is bounded: a scope holding no live count takes no room, idle
//! entries expire, rate windows keep at most `max` timestamps, and past
//! `max_keys` tracked scopes no new scope is tracked; the engine then
//! denies and says that warden's own limit, not the rule's, was reached.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_lang::ast::Scope;

pub use crate::memory::CallState;

/// A source of time, so that tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time: rate windows and idle expiry within a process are
    /// measured with it, so a step of the wall clock changes nothing.
    fn now(&self) -> Instant;
    /// Wall-clock time in milliseconds since the Unix epoch, for what a
    /// person reads (the creation time of a record).
    fn unix_millis(&self) -> i64 {
        unix_millis(SystemTime::now())
    }
    /// A clock shared by every process of this machine since it booted
    /// (its boot id and milliseconds since boot), read once when a state
    /// file is opened. State shared by processes is timed with it, so that
    /// neither a wall-clock step nor a restart resets a window. `None`
    /// where the system does not say (then the wall clock is used).
    fn boot(&self) -> Option<BootTime> {
        boot_time()
    }
}

/// The machine's boot and the time since it, as [`Clock::boot`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTime {
    pub id: String,
    pub millis: i64,
}

/// Linux: `/proc/sys/kernel/random/boot_id` and `/proc/uptime`.
fn boot_time() -> Option<BootTime> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Some(BootTime {
        id: id.trim().to_string(),
        millis: (secs * 1000.0) as i64,
    })
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
/// [`ManualClock::advance`] moves time; [`ManualClock::step_wall`] moves
/// only the wall clock, as an NTP step or a VM resume does.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_unix_millis: i64,
    offset: Mutex<Duration>,
    wall_step: Mutex<i64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            start: Instant::now(),
            start_unix_millis: unix_millis(SystemTime::now()),
            offset: Mutex::new(Duration::ZERO),
            wall_step: Mutex::new(0),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    /// Steps the wall clock (forward for a positive `millis`) without any
    /// time passing.
    pub fn step_wall(&self, millis: i64) {
        *self.wall_step.lock().unwrap_or_else(|p| p.into_inner()) += millis;
    }

    fn offset_millis(&self) -> i64 {
        let offset = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        i64::try_from(offset.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn unix_millis(&self) -> i64 {
        let step = *self.wall_step.lock().unwrap_or_else(|p| p.into_inner());
        self.start_unix_millis
            .saturating_add(self.offset_millis())
            .saturating_add(step)
    }
    /// One "boot" per clock: engines sharing the clock are processes of
    /// one machine.
    fn boot(&self) -> Option<BootTime> {
        Some(BootTime {
            id: format!("manual-{}", self.start_unix_millis),
            millis: 1_000_000 + self.offset_millis(),
        })
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
    /// A forwarded call (or a released hold) could not be recorded, and
    /// still cannot.
    #[error("an earlier forwarded call in this scope could not be recorded ({0})")]
    #[diagnostic(
        code(warden::state::unrecorded),
        help(
            "check the state file; calls that need a counter in that scope are denied until it can be written"
        )
    )]
    Unrecorded(String),
    /// The store is locked by another writer and the caller chose not to
    /// wait ([`StateStore::end_streaks`] with `wait` false).
    #[error("the state store is busy")]
    #[diagnostic(
        code(warden::state::busy),
        help("another process holds the state file's lock; the write is kept and retried")
    )]
    Busy,
}

/// Where caps and rates keep their state.
///
/// Counting is split in three steps so that a limit is exact under any
/// concurrency: [`StateStore::count`] reads (committed calls plus held
/// slots), [`StateStore::reserve`] checks again and takes the slots
/// atomically (or reports the limit full, and the engine decides again),
/// then the transport forwards and the engine [`StateStore::commit`]s, or
/// the call goes nowhere and the engine [`StateStore::release`]s.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The current count of `rule` in `key` before this call, held slots
    /// included. `Ok(None)`: the scope cannot be tracked (a full table);
    /// `Err`: the store cannot be read. Both deny.
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError>;

    /// Takes one slot of every limit in `hold.slots()`, all or none, if
    /// each still has `count < max`; otherwise takes nothing and names
    /// the first full one.
    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError>;

    /// The held call was forwarded: its slots become counted calls. In
    /// every scope of the call, streaks of caps it did not match end; a
    /// call the person confirmed ends all streaks; matched caps and rates
    /// count it. Committing a hold the store no longer has (it expired)
    /// still records the call.
    fn commit(&self, id: HoldId, hold: &Hold) -> Result<(), StateError>;

    /// The held call was not forwarded: its slots are freed.
    fn release(&self, id: HoldId, hold: &Hold) -> Result<(), StateError>;

    /// A forwarded call that counts for no limit: every streak in `keys`
    /// ends. With `wait` false the store may refuse at once
    /// ([`StateError::Busy`]) rather than wait for a lock; the engine
    /// then keeps the write and applies it before the next read of those
    /// scopes, so a call that needs no counter never waits on the store.
    fn end_streaks(&self, keys: &[ScopeKey], wait: bool) -> Result<(), StateError>;
}

/// The id of a hold, unique within its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldId(pub u64);

/// What a decided call counts towards, to be held until it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The call's scope values (session, user, agent).
    pub keys: Vec<ScopeKey>,
    /// The cap and rate rules whose counting policy matched the call.
    pub matched: Vec<(String, LimitSpec)>,
    /// The person confirmed it: it ends every streak and starts none.
    pub confirmed: bool,
    /// Rules of `matched` in shadow mode: they count the call (so their
    /// findings stay accurate) but never refuse it, so `reserve` takes
    /// their slots without checking `max`.
    pub unchecked: Vec<String>,
}

impl Hold {
    /// The (rule, limit, scope value) slots the call takes: every matched
    /// rate, and every matched cap unless the call was confirmed (a
    /// confirmed call is in no streak).
    pub fn slots(&self) -> impl Iterator<Item = (&str, &LimitSpec, &ScopeKey)> {
        self.matched
            .iter()
            .filter(move |(_, s)| s.window.is_some() || !self.confirmed)
            .filter_map(move |(id, s)| {
                self.keys
                    .iter()
                    .find(|k| k.scope == s.scope)
                    .map(|k| (id.as_str(), s, k))
            })
    }
}

/// The answer of [`StateStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Held(HoldId),
    /// This rule's limit was reached since the count was read.
    Full {
        rule: String,
    },
    /// The store tracks as many scopes as it may: warden's own bound,
    /// said in words ("it holds live caps and rates for at most ...").
    Untracked(String),
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
    fn reserve(&self, _: &Hold) -> Result<Reserved, StateError> {
        Err(self.0.clone())
    }
    fn commit(&self, _: HoldId, _: &Hold) -> Result<(), StateError> {
        Err(self.0.clone())
    }
    fn release(&self, _: HoldId, _: &Hold) -> Result<(), StateError> {
        Err(self.0.clone())
    }
    fn end_streaks(&self, _: &[ScopeKey], _: bool) -> Result<(), StateError> {
        Err(self.0.clone())
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
    /// Most scope values holding live counts at once (memory).
    pub max_keys: usize,
    /// Most session and agent scope values one user's calls may hold at
    /// once (memory), so that client-declared names (a new agent name per
    /// call) cannot fill the table other callers need.
    pub max_keys_per_user: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            idle_ttl: Duration::from_secs(24 * 3600),
            max_keys: 100_000,
            max_keys_per_user: 1_000,
        }
    }
}

/// A counter for one rule, and for a rate how long until it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub frees_in: Option<Duration>,
}
