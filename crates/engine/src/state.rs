//! The state caps, rate limits and budgets need, and the contract of the
//! stores that keep it: the current streak of each cap, the recent calls of
//! each rate limit and the recent amounts of each budget, keyed by the
//! call's values for the limit's scopes. Only forwarded calls count.
//!
//! **Keys.** A limit's [`ScopeSet`] has a *row* part (session, user,
//! agent: whose calls count together; none = all calls) and a *split*
//! part (model, tool: which of those calls count as the same). A call's
//! row is a [`ScopeKey`]; its split value is a string next to it
//! ([`Counted::split`]). Rates and budgets count every (row, split)
//! separately. A cap's streak lives in the row and remembers the split
//! value it runs under: a matched call with the same value lengthens it,
//! one with another value restarts it at 1 under that value, a forwarded
//! call the cap does not match ends it. A call's count for a cap is the
//! streak if its split value is the streak's, else 0 (plus held slots of
//! that row and split).
//!
//! **Weights.** Every slot has a weight: 1 for caps and rates, the
//! call's amount (in units of 1/10,000, [`warden_lang::amount`]) for a
//! budget. A slot fits when `used + weight <= max`, where `used` is the
//! committed weight in the window (or the streak) plus held weights.
//!
//! A limit is **reserved** when the call is decided and **committed** when
//! it is forwarded ([`StateStore::reserve`], [`StateStore::commit`],
//! [`StateStore::release`]): the store checks and takes every slot in one
//! atomic step, all or none, so calls deciding at the same time (other
//! sessions, other warden processes on one file) never overshoot a limit.
//! A held slot counts as used until it is committed or released. The
//! contract is one a shared store implements as well as memory and SQLite
//! do (Redis does, with a script per step): keys and split values are
//! opaque strings, the check is a sum and a comparison.
//!
//! Where the state lives is a [`StateStore`]: [`CallState`] in memory (the
//! default, [`crate::memory`]), or [`crate::sqlite::SqliteState`] in a
//! SQLite file that survives restarts and is shared by several warden
//! processes of one machine, or [`crate::redis_state::RedisState`] in a
//! Redis server shared by replicas on many machines. The engine picks one from [`StateBackend`] and reaches it
//! through [`crate::gate::StateGate`], which keeps writes that failed.
//!
//! Memory is bounded: a key holding no live count takes no room, idle
//! entries expire, rate windows keep at most `max` timestamps, budget
//! windows coalesce the amounts of one [`coalescing`] interval into one
//! event (timed by the latest, so it leaves the window late, never
//! early), and past `max_keys` tracked keys no new key is tracked; the
//! engine then denies and says that warden's own limit, not the rule's,
//! was reached.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_lang::ast::ScopeSet;

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
    /// A state server (Redis) could not be reached or answered with an
    /// error. `store` is its address without credentials.
    #[error("the state store `{store}` cannot be used: {message}")]
    #[diagnostic(
        code(warden::state::remote),
        help(
            "check that the server is up and reachable from warden; warden reconnects with backoff, and calls that need a counter are denied meanwhile"
        )
    )]
    Remote { store: String, message: String },
    /// The store is locked by another writer and the caller chose not to
    /// wait ([`StateStore::end_streaks`] with `wait` false).
    #[error("the state store is busy")]
    #[diagnostic(
        code(warden::state::busy),
        help("another process holds the state file's lock; the write is kept and retried")
    )]
    Busy,
}

/// What [`StateStore::count_and_reserve`] answers: each read's count, in
/// order, and the reservation.
pub type CountsAndReserved = (
    Vec<Result<Option<Count>, StateError>>,
    Result<Reserved, StateError>,
);

/// Where caps, rates and budgets keep their state.
///
/// Counting is split in three steps so that a limit is exact under any
/// concurrency: [`StateStore::count`] reads (committed weight plus held
/// slots), [`StateStore::reserve`] checks again and takes the slots
/// atomically (or reports the limit full, and the engine decides again),
/// then the transport forwards and the engine [`StateStore::commit`]s, or
/// the call goes nowhere and the engine [`StateStore::release`]s.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// What `rule` has used in the row `key` under the split value
    /// `split` before this call, held slots included; for a window, also
    /// how long until enough leaves it for a call of weight `need` to fit
    /// (`None` when it fits now or never will). `Ok(None)`: the key cannot
    /// be tracked (a full table); `Err`: the store cannot be read. Both
    /// deny.
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<Count>, StateError>;

    /// [`StateStore::count`] for each of `slots` (its weight the `need`),
    /// in order. A store on another machine answers them in one round
    /// trip; the default asks one after the other.
    fn count_many(&self, slots: &[Slot<'_>]) -> Vec<Result<Option<Count>, StateError>> {
        slots
            .iter()
            .map(|s| self.count(s.rule, s.spec, s.key, s.split, s.weight))
            .collect()
    }

    /// Takes every slot of `hold.slots()`, all or none, if each still has
    /// `used + weight <= max`; otherwise takes nothing and names the first
    /// full one.
    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError>;

    /// [`StateStore::count_many`] of `reads`, then [`StateStore::reserve`]
    /// of `hold`. A store on another machine does both in one step: one
    /// round trip, and no other call's step between them, so the counts
    /// are those the reservation was checked against. The default does
    /// one after the other (the reservation checks again, as always).
    fn count_and_reserve(&self, reads: &[Slot<'_>], hold: &Hold) -> CountsAndReserved {
        (self.count_many(reads), self.reserve(hold))
    }

    /// Whether the engine should reserve with the counts read
    /// ([`StateStore::count_and_reserve`]): true for a store whose every
    /// step is a round trip to another process, where it saves one per
    /// limited call. The engine then decides first as if every limit had
    /// room, and decides again on the counts the reservation returns.
    fn reads_with_reserve(&self) -> bool {
        false
    }

    /// The held call was forwarded: its slots become counted calls and
    /// amounts. In every row of the call, streaks of caps it did not match
    /// end; a call the person confirmed ends all streaks; matched caps
    /// lengthen or restart theirs (see the module docs), rates and budgets
    /// count it. Committing a hold the store no longer has (it expired)
    /// still records the call.
    fn commit(&self, id: HoldId, hold: &Hold) -> Result<(), StateError>;

    /// The held call was not forwarded: its slots are freed.
    fn release(&self, id: HoldId, hold: &Hold) -> Result<(), StateError>;

    /// A forwarded call that counts for no limit: every streak in the rows
    /// `keys` ends. With `wait` false the store may refuse at once
    /// ([`StateError::Busy`]) rather than wait for a lock; the engine
    /// then keeps the write and applies it before the next read of those
    /// rows, so a call that needs no counter never waits on the store.
    fn end_streaks(&self, keys: &[ScopeKey], wait: bool) -> Result<(), StateError>;

    /// Marks `mark` used, for `ttl`: `true` the first time, `false` while
    /// the mark lives (state a client hands back, such as a confirmation,
    /// is then answered once). A store shared by replicas marks for all
    /// of them. The default refuses, so a store that cannot keep marks
    /// fails closed.
    fn use_once(&self, mark: &str, ttl: Duration) -> Result<bool, StateError> {
        let _ = (mark, ttl);
        Err(StateError::Store(
            "this state store keeps no single-use marks".into(),
        ))
    }

    /// Keeps grant `id` under `key` for `ttl` (store time), for `uses`
    /// more calls when counted (`None`: any number). A grant already under
    /// `key` is replaced. The default refuses: a store that cannot keep
    /// grants has the person asked every time.
    fn put_grant(
        &self,
        key: &str,
        id: &str,
        ttl: Duration,
        uses: Option<u64>,
    ) -> Result<(), StateError> {
        let _ = (key, id, ttl, uses);
        Err(StateError::Store("this state store keeps no grants".into()))
    }

    /// One use of the live grant under `key`, atomically: its id, or `None`
    /// when there is none (expired, its uses spent). A store shared by
    /// replicas answers for all of them.
    fn use_grant(&self, key: &str) -> Result<Option<String>, StateError> {
        let _ = key;
        Err(StateError::Store("this state store keeps no grants".into()))
    }

    /// Keeps a pending approval's `record` (JSON) under `id` for `ttl`, so
    /// that any replica sharing the store can show and decide it. The
    /// default refuses: the approval then lives in the process that
    /// opened it only.
    fn put_approval(&self, id: &str, record: &str, ttl: Duration) -> Result<(), StateError> {
        let _ = (id, record, ttl);
        Err(StateError::Store(
            "this state store keeps no approvals".into(),
        ))
    }

    /// The approval under `id`: its record and, once decided, its decision.
    fn get_approval(&self, id: &str) -> Result<Option<(String, Option<String>)>, StateError> {
        let _ = id;
        Err(StateError::Store(
            "this state store keeps no approvals".into(),
        ))
    }

    /// Decides approval `id` as `decision` (JSON) if it is still
    /// undecided and alive, atomically: `true` for the one call that did.
    fn decide_approval(&self, id: &str, decision: &str) -> Result<bool, StateError> {
        let _ = (id, decision);
        Err(StateError::Store(
            "this state store keeps no approvals".into(),
        ))
    }

    /// Puts each label of `labels` (its name and how long it lasts) on
    /// `session`; a label the session has already lasts until the later
    /// of its two ends. A store shared by replicas labels the session for
    /// all of them. The default refuses: calls that would set a label are
    /// then denied (fail closed).
    fn add_session_labels(
        &self,
        session: &str,
        labels: &[(String, Duration)],
    ) -> Result<(), StateError> {
        let _ = (session, labels);
        Err(StateError::Store(
            "this state store keeps no session labels".into(),
        ))
    }

    /// Which of `names` are live labels of `session`. The default refuses:
    /// a rule reading labels then denies.
    fn session_labels(&self, session: &str, names: &[String]) -> Result<Vec<String>, StateError> {
        let _ = (session, names);
        Err(StateError::Store(
            "this state store keeps no session labels".into(),
        ))
    }

    /// Checks `tool` of `server`'s definition (`digest` of `definition`,
    /// [`crate::pins`]) against the pinned one, atomically: pins it when
    /// none is ([`PinCheck::New`]), and keeps a different one as pending
    /// until [`StateStore::approve_pin`]. The default refuses: a store
    /// that keeps no pins fails closed (the tool is treated as changed).
    fn check_pin(
        &self,
        server: &str,
        tool: &str,
        digest: &str,
        definition: &str,
    ) -> Result<crate::pins::PinCheck, StateError> {
        let _ = (server, tool, digest, definition);
        Err(StateError::Store(
            "this state store keeps no tool pins".into(),
        ))
    }

    /// Whether the store lives in this process only (memory): nothing
    /// outside it, such as `warden tools approve`, can reach what it keeps.
    fn in_process(&self) -> bool {
        false
    }

    /// Every pinned tool, ordered by server and tool.
    fn pins(&self) -> Result<Vec<crate::pins::ToolPin>, StateError> {
        Err(StateError::Store(
            "this state store keeps no tool pins".into(),
        ))
    }

    /// Pins `tool`'s pending definition (the one seen since it was
    /// pinned) in place of the pinned one: `true` when there was one.
    fn approve_pin(&self, server: &str, tool: &str) -> Result<bool, StateError> {
        let _ = (server, tool);
        Err(StateError::Store(
            "this state store keeps no tool pins".into(),
        ))
    }

    /// Whether a store on another machine (Redis) answers now, for
    /// `/readyz`. `None` for a store in this process or on its disk.
    fn health(&self) -> Option<StoreHealth> {
        None
    }
}

/// What `/readyz` says about a state server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// The store as the operator named it, without credentials.
    pub store: String,
    /// `None` when it answers; else why not.
    pub problem: Option<String>,
}

/// The id of a hold, unique within its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldId(pub u64);

impl HoldId {
    /// An id no other process picks (stores shared by processes: SQLite,
    /// Redis): random, from the standard library's per-process random
    /// hash keys, below 2^63 so that it fits an SQL integer.
    pub(crate) fn random() -> HoldId {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        HoldId(h.finish() >> 1)
    }
}

/// One limit a call counts towards: the rule, its limit, the call's split
/// value for it and the weight the call adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub rule: String,
    pub spec: LimitSpec,
    /// The call's value for the split part of the scope (model, tool);
    /// empty when the scope has none.
    pub split: String,
    /// 1 for a cap or rate; the amount in units for a budget.
    pub weight: u64,
}

/// What a decided call counts towards, to be held until it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The call's user, who owns the keys the call creates.
    pub user: String,
    /// The call's rows: one per row part its matched limits count in and
    /// per row part a cap of the set measures streaks in.
    pub keys: Vec<ScopeKey>,
    /// The limits whose counting policy matched the call.
    pub matched: Vec<Counted>,
    /// The person confirmed it: it ends every streak and starts none.
    pub confirmed: bool,
    /// Rules of `matched` in shadow mode: they count the call (so their
    /// findings stay accurate) but never refuse it, so `reserve` takes
    /// their slots without checking `max`.
    pub unchecked: Vec<String>,
}

/// One slot of a hold (see [`Hold::slots`]), or one a call would take,
/// whose count is read ([`StateStore::count_many`]).
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub rule: &'a str,
    pub spec: &'a LimitSpec,
    pub key: &'a ScopeKey,
    pub split: &'a str,
    pub weight: u64,
}

impl Hold {
    /// The slots the call takes: every matched rate and budget, and every
    /// matched cap unless the call was confirmed (a confirmed call is in
    /// no streak).
    pub fn slots(&self) -> impl Iterator<Item = Slot<'_>> {
        self.matched
            .iter()
            .filter(move |c| c.spec.window.is_some() || !self.confirmed)
            .filter_map(move |c| {
                let row = c.spec.scope.row();
                self.keys.iter().find(|k| k.row == row).map(|key| Slot {
                    rule: c.rule.as_str(),
                    spec: &c.spec,
                    key,
                    split: c.split.as_str(),
                    weight: c.weight,
                })
            })
    }

    /// The caps of `matched` measured in the row `key`.
    pub fn caps_in<'a>(&'a self, key: &'a ScopeKey) -> impl Iterator<Item = &'a Counted> {
        self.matched
            .iter()
            .filter(move |c| c.spec.window.is_none() && c.spec.scope.row() == key.row)
    }

    /// Whether `rule` is in shadow mode (its slots are not checked).
    pub fn is_unchecked(&self, rule: &str) -> bool {
        self.unchecked.iter().any(|r| r == rule)
    }
}

/// Whether a slot of `weight` fits when `used` is taken: `used + weight
/// <= max`, an overflow never fits.
pub fn fits(used: u64, weight: u64, max: u64) -> bool {
    used.checked_add(weight).is_some_and(|t| t <= max)
}

/// How long a budget window's amounts are coalesced into one event:
/// one second, or 1/1024 of the window if longer, so that a window holds
/// at most about 1024 events per key whatever the calls. The event is
/// timed by its latest amount, so it leaves the window up to this much
/// late (a budget frees late, never early). Rates keep one event per call
/// (at most `max`), so their windows stay exact.
pub fn coalescing(spec: &LimitSpec) -> Duration {
    match (spec.summed, spec.window) {
        (true, Some(w)) => (w / 1024).max(Duration::from_secs(1)),
        _ => Duration::ZERO,
    }
}

/// When events of a window have taken `used`, whether the oldest can be
/// dropped because the newer ones already refuse every call (rates: a
/// count of `max`; budgets: more than `max`, which no amount fits).
pub fn newer_decide(newer: u64, spec: &LimitSpec) -> bool {
    if spec.summed {
        newer > spec.max
    } else {
        newer >= spec.max.max(1)
    }
}

/// How long until committed events leave a window enough for `need` to
/// fit, given events oldest first as (seconds until each leaves, weight)
/// and the held weight. `None` when it fits now or never will.
pub fn frees_in(
    events: impl IntoIterator<Item = (Duration, u64)>,
    held: u64,
    need: u64,
    spec: &LimitSpec,
) -> Option<Duration> {
    let window = spec.window?;
    let target = spec.max.checked_sub(need)?;
    let events: Vec<(Duration, u64)> = events.into_iter().collect();
    let mut used: u64 = events.iter().fold(0u64, |a, (_, w)| a.saturating_add(*w));
    if used.saturating_add(held) <= target {
        return None;
    }
    if held > target {
        // Calls still in flight leave a whole window after they commit.
        return Some(window);
    }
    for (left, w) in events {
        used = used.saturating_sub(w);
        if used.saturating_add(held) <= target {
            return Some(left);
        }
    }
    Some(window)
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
    /// A store opened by the caller: a [`crate::redis_state::RedisState`],
    /// or a [`crate::sqlite::SqliteState`] opened up front to report a bad
    /// file before serving.
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
    fn count(
        &self,
        _: &str,
        _: &LimitSpec,
        _: &ScopeKey,
        _: &str,
        _: u64,
    ) -> Result<Option<Count>, StateError> {
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
    fn use_once(&self, _: &str, _: Duration) -> Result<bool, StateError> {
        Err(self.0.clone())
    }
    fn add_session_labels(&self, _: &str, _: &[(String, Duration)]) -> Result<(), StateError> {
        Err(self.0.clone())
    }
    fn session_labels(&self, _: &str, _: &[String]) -> Result<Vec<String>, StateError> {
        Err(self.0.clone())
    }
    fn check_pin(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<crate::pins::PinCheck, StateError> {
        Err(self.0.clone())
    }
    fn pins(&self) -> Result<Vec<crate::pins::ToolPin>, StateError> {
        Err(self.0.clone())
    }
    fn approve_pin(&self, _: &str, _: &str) -> Result<bool, StateError> {
        Err(self.0.clone())
    }
}

/// A call's row for a limit: the row part of the limit's scope and the
/// call's values for it. A single scope's value is the value itself (a
/// session id, a user); several are a JSON array of the values in
/// [`warden_lang::ast::Scope::ALL`] order, so no two rows share a text;
/// no row scope (a limit over all calls) is the empty text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub row: ScopeSet,
    pub value: String,
}

impl ScopeKey {
    /// Whether a caller can make up new values of this row (a session id,
    /// an agent name), so its keys count towards the user's bound.
    pub fn is_declared(&self) -> bool {
        use warden_lang::ast::Scope;
        self.row.contains(Scope::Session) || self.row.contains(Scope::Agent)
    }
}

/// What a cap, rate or budget needs to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    /// Calls for a cap or rate; units of 1/10,000 for a budget.
    pub max: u64,
    /// `None` for a cap (streak), `Some` for a rate or budget window.
    pub window: Option<Duration>,
    pub scope: ScopeSet,
    /// A budget: slots weigh the call's amount, and a window's events
    /// coalesce ([`coalescing`]).
    pub summed: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Streaks and windows untouched this long are forgotten.
    pub idle_ttl: Duration,
    /// Most keys (row, split value) holding live counts at once (memory).
    pub max_keys: usize,
    /// Most keys with a session, an agent or a split value (model, tool)
    /// one user's calls may hold at once (memory), so that client-declared
    /// names (a new agent or model name per call) cannot fill the table
    /// other callers need.
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

/// What one rule has used in a key (calls, or units for a budget), and
/// for a window how long until enough of it frees (see
/// [`StateStore::count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub frees_in: Option<Duration>,
}
