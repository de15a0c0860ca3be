//! Caps, rates, budgets and their holds in Redis ([`RedisState`]): the
//! [`StateStore`] that several warden replicas share, so that a limit
//! holds exactly across them.
//!
//! **Atomic steps.** Each step that reads and writes is one Lua script
//! (`redis_state/*.lua`, sharing `prelude.lua`), which Redis runs alone:
//! [`StateStore::reserve`] checks `used + weight <= max` for every slot
//! and takes all of them, or none, in one script, so 30 calls racing on 3
//! replicas take exactly `max` slots. Releasing removes the hold's members
//! and ending streaks deletes rows; neither reads, so both are plain
//! commands.
//!
//! **Time** is the Redis server's clock (`TIME` inside the scripts): one
//! clock for every replica, so neither a replica's clock step nor a skew
//! between replicas moves a window. [`RedisTime::Caller`] passes the
//! engine's clock instead, for tests that move time by hand.
//!
//! **A replica that dies** between deciding and forwarding leaves a hold
//! behind; holds count only for [`RedisOptions::hold_ttl`] after they are
//! taken, then expire. A commit is single use: the script marks the hold
//! committed (kept for [`COMMIT_MARKER_TTL`]) and a retry whose first
//! reply was lost (a timeout after Redis ran it) counts nothing twice.
//!
//! **Bounded per user.** As in memory, the keys a caller can multiply by
//! declaring names (a session, an agent, a model or tool value) count
//! towards [`StateLimits::max_keys_per_user`] while they live: a set per
//! user (`warden:o...`) holds each such key with its expiry, and a
//! reservation that would pass the bound is refused
//! ([`Reserved::Untracked`]), so one user cannot fill Redis for others.
//!
//! **Keys** are `warden:` + a kind letter + length-prefixed parts (row
//! kind, row value, split value, rule id), so no value a caller sends can
//! make two keys meet. Streak rows expire after the idle TTL, windows one
//! window after their latest event. Several keys of one call are used by
//! one script, so the store is one Redis server (or a primary with
//! replicas), not Redis Cluster.
//!
//! **Failure.** Every command has a timeout ([`RedisOptions::timeout`]).
//! A store that cannot be reached fails the step with
//! [`StateError::Remote`], naming the store (never its password), so the
//! engine denies only the calls that need a counter; connections are
//! re-made with a backoff ([`crate::redis_state::pool`]).

mod pool;

use crate::state::{
    Clock, Count, Counted, CountsAndReserved, Hold, HoldId, LimitSpec, Reserved, ScopeKey, Slot,
    StateError, StateLimits, StateStore, StoreHealth, coalescing, fits, frees_in,
};
use pool::Pool;
use redis::Script;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// How long a commit's marker is kept: a retry of the same commit within
/// it counts nothing twice.
pub const COMMIT_MARKER_TTL: Duration = Duration::from_secs(3600);

/// Weights and maxima are compared as Lua numbers (doubles), exact up to
/// 2^53; a larger maximum is as good as unlimited and is clamped to it.
const EXACT: u64 = 1 << 53;

const PRELUDE: &str = include_str!("redis_state/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

static COUNT: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_state/count.lua")));
static RESERVE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("redis_state/reserve.lua")));
static COUNT_RESERVE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("redis_state/count_reserve.lua")));
static COMMIT: LazyLock<Script> = LazyLock::new(|| script(include_str!("redis_state/commit.lua")));
/// One use of a grant, atomically (no clock: the key's TTL is its expiry).
static USE_GRANT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("redis_state/use_grant.lua")));
/// Decides an approval once (no clock: the key's TTL is its expiry).
static DECIDE_APPROVAL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("redis_state/decide_approval.lua")));

/// Which clock times the store's rows.
#[derive(Debug, Clone, Default)]
pub enum RedisTime {
    /// The Redis server's `TIME`: one clock for all replicas.
    #[default]
    Server,
    /// The engine's clock ([`Clock::unix_millis`]), for tests.
    Caller(Arc<dyn Clock>),
}

/// How a [`RedisState`] talks to its server.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The most a connect or a command may take.
    pub timeout: Duration,
    /// How long a hold counts before it is taken for a dead replica's.
    pub hold_ttl: Duration,
    pub time: RedisTime,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            timeout: Duration::from_millis(500),
            hold_ttl: Duration::from_secs(60),
            time: RedisTime::Server,
        }
    }
}

/// Caps, rates and budgets in Redis, shared by every replica that opens
/// the same server and database.
#[derive(Debug)]
pub struct RedisState {
    pool: Pool,
    limits: StateLimits,
    options: RedisOptions,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `warden:` + kind + each part as `LEN:PART`.
/// The set of every pinned tool (`["server","tool"]` members).
const PINS_KEY: &str = "warden:pins";

fn key(kind: char, parts: &[&str]) -> String {
    let mut k = String::with_capacity(16 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    k.push_str("warden:");
    k.push(kind);
    for p in parts {
        let _ = write!(k, "{}:{p}", p.len());
    }
    k
}

fn streak_key(row: &ScopeKey) -> String {
    key('s', &[&row.row.key(), &row.value])
}
fn events_key(row: &ScopeKey, split: &str, rule: &str) -> String {
    key('e', &[&row.row.key(), &row.value, split, rule])
}
fn holds_key(row: &ScopeKey, split: &str, rule: &str) -> String {
    key('h', &[&row.row.key(), &row.value, split, rule])
}
fn marker_key(id: HoldId) -> String {
    key('d', &[&id.0.to_string()])
}

impl RedisState {
    /// A store on the server at `url` (`redis://[user:pass@]host[:port][/db]`).
    /// Nothing is sent yet: a server that is down now fails the first
    /// step that needs it, not the start.
    pub fn open(url: &str, limits: StateLimits, options: RedisOptions) -> Result<Self, StateError> {
        let pool = Pool::new(url, options.timeout)?;
        Ok(RedisState {
            pool,
            limits,
            options,
        })
    }

    /// Whether `url` is a Redis URL warden can use (nothing is sent).
    pub fn check_url(url: &str) -> Result<(), String> {
        use redis::IntoConnectionInfo;
        url.into_connection_info()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The store as the operator named it, without credentials.
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    fn now_arg(&self) -> String {
        match &self.options.time {
            RedisTime::Server => String::new(),
            RedisTime::Caller(clock) => clock.unix_millis().to_string(),
        }
    }

    fn hold_ttl(&self) -> u64 {
        millis(self.options.hold_ttl).max(1)
    }

    /// The hold's keys and arguments as `reserve_slots` (prelude.lua) reads
    /// them; false when the hold has no slot (nothing to take). `reads` are
    /// the counts the same script reads first (none for `reserve.lua`): a
    /// slot one of them reads is checked against that count.
    fn hold_args(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        hold: &Hold,
        id: HoldId,
        reads: &[Slot<'_>],
    ) -> bool {
        let max_owned = self.limits.max_keys_per_user;
        inv.arg(id.0.to_string()).arg(max_owned).arg(format!(
            "one user's calls may hold live caps, rates and budgets for at most {max_owned} sessions, agents, models and tools"
        ));
        let mut any = false;
        for s in hold.slots() {
            any = true;
            // A key a caller can multiply by declaring names (a session,
            // an agent, a model or tool value) counts towards the user's
            // bound for as long as it lives in Redis.
            let owned = s.key.is_declared() || !s.split.is_empty();
            let life = match s.spec.window {
                Some(w) => millis(w).max(1),
                None => millis(self.limits.idle_ttl).max(1),
            };
            slot_args(inv, &s);
            inv.arg(if hold.is_unchecked(s.rule) { "1" } else { "0" })
                .arg(if owned {
                    key('k', &[&s.key.row.key(), &s.key.value, s.split])
                } else {
                    String::new()
                })
                .arg(life)
                .arg(read_by(reads, &s));
        }
        if any {
            inv.key(key('o', &[&hold.user]));
        }
        any
    }

    /// What `reserve_slots` answered, as a [`Reserved`].
    fn reserved_of(&self, id: HoldId, reply: &[String]) -> Result<Reserved, StateError> {
        match reply.first().map(String::as_str) {
            Some("held") => Ok(Reserved::Held(id)),
            Some("full") => Ok(Reserved::Full {
                rule: reply.get(1).cloned().unwrap_or_default(),
            }),
            Some("untracked") => Ok(Reserved::Untracked(
                reply.get(1).cloned().unwrap_or_default(),
            )),
            _ => Err(self
                .pool
                .error(format!("the reserve script answered `{reply:?}`"))),
        }
    }
}

/// The 1-based place of the count in `reads` that reads `slot`'s own
/// keys under its rule and window, so the same script already knows what
/// `slot` has used; 0 for none.
fn read_by(reads: &[Slot<'_>], slot: &Slot<'_>) -> usize {
    reads
        .iter()
        .position(|r| {
            r.rule == slot.rule
                && r.split == slot.split
                && r.key == slot.key
                && window_ms(r.spec) == window_ms(slot.spec)
        })
        .map_or(0, |i| i + 1)
}

fn window_ms(spec: &LimitSpec) -> u64 {
    spec.window.map_or(0, |w| millis(w).max(1))
}

/// A slot's three keys (streak, events, holds) and its first five
/// arguments (rule, split, window, weight, max), as `count_slot` and
/// `reserve_slots` (prelude.lua) read them.
fn slot_args(inv: &mut redis::ScriptInvocation<'_>, s: &Slot<'_>) {
    inv.key(streak_key(s.key))
        .key(events_key(s.key, s.split, s.rule))
        .key(holds_key(s.key, s.split, s.rule))
        .arg(s.rule)
        .arg(s.split)
        .arg(window_ms(s.spec))
        .arg(s.weight.min(EXACT))
        .arg(s.spec.max.min(EXACT));
}

/// A count script's reply (`{committed, held, events...}`) as a [`Count`].
fn count_of(r: &Slot<'_>, reply: &[i64]) -> Count {
    let num = |i: usize| reply.get(i).map_or(0, |n| u64::try_from(*n).unwrap_or(0));
    let (committed, held) = (num(0), num(1));
    let used = committed.saturating_add(held);
    let frees_in = if r.spec.window.is_some() && !fits(used, r.weight, r.spec.max) {
        let events = reply[2.min(reply.len())..].chunks_exact(2).map(|p| {
            (
                Duration::from_millis(u64::try_from(p[0]).unwrap_or(0)),
                u64::try_from(p[1]).unwrap_or(0),
            )
        });
        frees_in(events, held, r.weight, r.spec)
    } else {
        None
    };
    Count {
        count: used,
        frees_in,
    }
}

fn hold_member(id: HoldId, weight: u64) -> String {
    format!("{}:{weight}", id.0)
}

impl StateStore for RedisState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<Count>, StateError> {
        let req = Slot {
            rule,
            spec,
            key,
            split,
            weight: need,
        };
        self.count_many(&[req])
            .pop()
            .unwrap_or_else(|| Err(self.pool.error("no answer to a count".into())))
    }

    /// Every count script in one pipeline: one round trip however many
    /// limits the call's slice has.
    fn count_many(&self, reqs: &[Slot<'_>]) -> Vec<Result<Option<Count>, StateError>> {
        if reqs.is_empty() {
            return Vec::new();
        }
        let now = self.now_arg();
        let mut pipe = redis::pipe();
        for r in reqs {
            pipe.cmd("EVALSHA")
                .arg(COUNT.get_hash())
                .arg(3)
                .arg(streak_key(r.key))
                .arg(events_key(r.key, r.split, r.rule))
                .arg(holds_key(r.key, r.split, r.rule))
                .arg(&now)
                .arg(r.rule)
                .arg(r.split)
                .arg(window_ms(r.spec))
                .arg(self.hold_ttl())
                .arg(r.weight.min(EXACT))
                .arg(r.spec.max.min(EXACT));
        }
        let replies: Result<Vec<Vec<i64>>, StateError> = self.pool.run(true, |c| {
            match pipe.query::<Vec<Vec<i64>>>(c) {
                // A server that restarted (or flushed its scripts) has
                // forgotten the script: load it and ask again.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    COUNT.load(c)?;
                    pipe.query(c)
                }
                other => other,
            }
        });
        match replies {
            Ok(replies) if replies.len() == reqs.len() => reqs
                .iter()
                .zip(replies)
                .map(|(r, reply)| Ok(Some(count_of(r, &reply))))
                .collect(),
            Ok(_) => reqs
                .iter()
                .map(|_| Err(self.pool.error("the count pipeline answered short".into())))
                .collect(),
            Err(e) => reqs.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        let id = HoldId::random();
        let mut inv = RESERVE.prepare_invoke();
        inv.arg(self.now_arg()).arg(self.hold_ttl());
        if !self.hold_args(&mut inv, hold, id, &[]) {
            return Ok(Reserved::Held(id));
        }
        // Not retried on a lost connection: a reservation whose reply was
        // lost may have been taken, and a second one would hold twice
        // (until the hold TTL) where the first already counts.
        let reply: Vec<String> = self.pool.run(false, |c| inv.invoke(c))?;
        self.reserved_of(id, &reply)
    }

    /// One script: the counts first, then the hold checked against the
    /// same state and taken (`count_reserve.lua`).
    fn count_and_reserve(&self, reads: &[Slot<'_>], hold: &Hold) -> CountsAndReserved {
        let id = HoldId::random();
        let mut inv = COUNT_RESERVE.prepare_invoke();
        inv.arg(self.now_arg())
            .arg(self.hold_ttl())
            .arg(reads.len());
        for r in reads {
            slot_args(&mut inv, r);
        }
        if !self.hold_args(&mut inv, hold, id, reads) {
            return (self.count_many(reads), Ok(Reserved::Held(id)));
        }
        // Not retried on a lost connection, as a reservation.
        let reply: Result<Vec<redis::Value>, StateError> = self.pool.run(false, |c| inv.invoke(c));
        let fail = |e: StateError| (reads.iter().map(|_| Err(e.clone())).collect(), Err(e));
        let reply = match reply {
            Ok(r) if r.len() == reads.len() + 1 => r,
            Ok(r) => {
                return fail(self.pool.error(format!(
                    "the count-and-reserve script answered {} parts for {} counts",
                    r.len(),
                    reads.len()
                )));
            }
            Err(e) => return fail(e),
        };
        let mut parts = reply.into_iter();
        let reserved = parts
            .next()
            .map(redis::from_redis_value::<Vec<String>>)
            .transpose()
            .map_err(|e| self.pool.error(format!("the reservation's answer: {e}")))
            .and_then(|r| self.reserved_of(id, &r.unwrap_or_default()));
        let counts = reads
            .iter()
            .zip(parts)
            .map(|(r, v)| match redis::from_redis_value::<Vec<i64>>(v) {
                Ok(reply) => Ok(Some(count_of(r, &reply))),
                Err(e) => Err(self.pool.error(format!("a count's answer: {e}"))),
            })
            .collect();
        (counts, reserved)
    }

    fn reads_with_reserve(&self) -> bool {
        true
    }

    fn commit(&self, id: HoldId, hold: &Hold) -> Result<(), StateError> {
        // Keys and arguments in `commit.lua`'s order: the marker, the rows,
        // the windows, the holds.
        let mut inv = COMMIT.prepare_invoke();
        inv.key(marker_key(id))
            .arg(self.now_arg())
            .arg(id.0.to_string())
            .arg(if hold.confirmed { "1" } else { "0" })
            .arg(millis(self.limits.idle_ttl).max(1))
            .arg(millis(COMMIT_MARKER_TTL))
            .arg(hold.keys.len());
        for row in &hold.keys {
            inv.key(streak_key(row));
            let caps: Vec<&Counted> = hold.caps_in(row).collect();
            inv.arg(caps.len());
            for c in caps {
                inv.arg(c.rule.as_str()).arg(c.split.as_str());
            }
        }
        let windows: Vec<(&Counted, Duration, &ScopeKey)> = hold
            .matched
            .iter()
            .filter_map(|c| {
                let window = c.spec.window?;
                let row = hold.keys.iter().find(|k| k.row == c.spec.scope.row())?;
                Some((c, window, row))
            })
            .collect();
        inv.arg(windows.len());
        for (c, window, row) in windows {
            inv.key(events_key(row, &c.split, &c.rule))
                .arg(millis(window).max(1))
                .arg(c.weight.min(EXACT))
                .arg(millis(coalescing(&c.spec)))
                .arg(c.spec.max.min(EXACT))
                .arg(if c.spec.summed { "1" } else { "0" });
        }
        for s in hold.slots() {
            inv.key(holds_key(s.key, s.split, s.rule))
                .arg(hold_member(id, s.weight.min(EXACT)));
        }
        // Retried on a fresh connection: the marker makes it single use.
        let _: i64 = self.pool.run(true, |c| inv.invoke(c))?;
        Ok(())
    }

    fn release(&self, id: HoldId, hold: &Hold) -> Result<(), StateError> {
        let mut pipe = redis::pipe();
        for s in hold.slots() {
            pipe.zrem(
                holds_key(s.key, s.split, s.rule),
                hold_member(id, s.weight.min(EXACT)),
            )
            .ignore();
        }
        self.pool.run(true, |c| pipe.query::<()>(c))
    }

    /// `SET NX PX`: one replica's mark is every replica's.
    fn use_once(&self, mark: &str, ttl: Duration) -> Result<bool, StateError> {
        let k = key('u', &[mark]);
        let set: Option<String> = self.pool.run(false, |c| {
            redis::cmd("SET")
                .arg(&k)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl).max(1))
                .query(c)
        })?;
        Ok(set.is_some())
    }

    /// One hash per tool (`digest`, `definition`, `pending_digest`,
    /// `pending_definition`), listed in a set of every pinned tool. The
    /// first replica's `HSETNX` pins; the digest read back in the same
    /// transaction tells whether this definition is the pinned one.
    fn check_pin(
        &self,
        server: &str,
        tool: &str,
        digest: &str,
        definition: &str,
    ) -> Result<crate::pins::PinCheck, StateError> {
        use crate::pins::PinCheck;
        let k = key('p', &[server, tool]);
        let member = serde_json::json!([server, tool]).to_string();
        let (created, pinned): (bool, String) = self.pool.run(false, |c| {
            redis::pipe()
                .atomic()
                .cmd("HSETNX")
                .arg(&k)
                .arg("digest")
                .arg(digest)
                .cmd("HGET")
                .arg(&k)
                .arg("digest")
                .cmd("HSETNX")
                .arg(&k)
                .arg("definition")
                .arg(definition)
                .ignore()
                .cmd("SADD")
                .arg(PINS_KEY)
                .arg(&member)
                .ignore()
                .query(c)
        })?;
        if created {
            return Ok(PinCheck::New);
        }
        if pinned == digest {
            return Ok(PinCheck::Same);
        }
        self.pool.run(false, |c| {
            redis::cmd("HSET")
                .arg(&k)
                .arg("pending_digest")
                .arg(digest)
                .arg("pending_definition")
                .arg(definition)
                .query::<()>(c)
        })?;
        Ok(PinCheck::Changed { pinned })
    }

    fn pins(&self) -> Result<Vec<crate::pins::ToolPin>, StateError> {
        use crate::pins::{PendingDefinition, ToolPin};
        let members: Vec<String> = self
            .pool
            .run(false, |c| redis::cmd("SMEMBERS").arg(PINS_KEY).query(c))?;
        let mut out = Vec::new();
        for m in members {
            let Ok((server, tool)) = serde_json::from_str::<(String, String)>(&m) else {
                continue;
            };
            let k = key('p', &[&server, &tool]);
            let fields: (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            ) = self.pool.run(false, |c| {
                redis::cmd("HMGET")
                    .arg(&k)
                    .arg("digest")
                    .arg("definition")
                    .arg("pending_digest")
                    .arg("pending_definition")
                    .query(c)
            })?;
            let (Some(digest), Some(definition), pd, pdef) = fields else {
                continue;
            };
            let pending = match (pd, pdef) {
                (Some(digest), Some(definition)) => Some(PendingDefinition { digest, definition }),
                _ => None,
            };
            out.push(ToolPin {
                server,
                tool,
                digest,
                definition,
                pending,
            });
        }
        out.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        Ok(out)
    }

    fn approve_pin(&self, server: &str, tool: &str) -> Result<bool, StateError> {
        let k = key('p', &[server, tool]);
        let (pd, pdef): (Option<String>, Option<String>) = self.pool.run(false, |c| {
            redis::cmd("HMGET")
                .arg(&k)
                .arg("pending_digest")
                .arg("pending_definition")
                .query(c)
        })?;
        let (Some(digest), Some(definition)) = (pd, pdef) else {
            return Ok(false);
        };
        self.pool.run(false, |c| {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&k)
                .arg("digest")
                .arg(&digest)
                .arg("definition")
                .arg(&definition)
                .ignore()
                .cmd("HDEL")
                .arg(&k)
                .arg("pending_digest")
                .arg("pending_definition")
                .ignore()
                .query::<()>(c)
        })?;
        Ok(true)
    }

    /// One key per (session, label) whose expiry is the label's end:
    /// `SET NX PX` creates it, `PEXPIRE GT` (Redis 7) only lengthens it.
    fn add_session_labels(
        &self,
        session: &str,
        labels: &[(String, Duration)],
    ) -> Result<(), StateError> {
        self.pool.run(false, |c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (name, ttl) in labels {
                let k = key('l', &[session, name]);
                let ms = millis(*ttl).max(1);
                pipe.cmd("SET")
                    .arg(&k)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&k).arg(ms).arg("GT").ignore();
            }
            pipe.query::<()>(c)
        })
    }

    fn session_labels(&self, session: &str, names: &[String]) -> Result<Vec<String>, StateError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| key('l', &[session, n])).collect();
        let found: Vec<Option<String>> = self
            .pool
            .run(false, |c| redis::cmd("MGET").arg(&keys).query(c))?;
        Ok(names
            .iter()
            .zip(found)
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| n.clone())
            .collect())
    }

    fn put_grant(
        &self,
        key_text: &str,
        id: &str,
        ttl: Duration,
        uses: Option<u64>,
    ) -> Result<(), StateError> {
        let k = key('g', &[key_text]);
        self.pool.run(false, |c| {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("DEL").arg(&k).ignore();
            pipe.cmd("HSET").arg(&k).arg("id").arg(id).ignore();
            if let Some(n) = uses {
                pipe.cmd("HSET").arg(&k).arg("uses").arg(n).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&k).arg(millis(ttl).max(1)).ignore();
            pipe.query::<()>(c)
        })
    }

    fn put_approval(&self, id: &str, record: &str, ttl: Duration) -> Result<(), StateError> {
        let k = key('a', &[id]);
        self.pool.run(false, |c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&k)
                .ignore()
                .cmd("HSET")
                .arg(&k)
                .arg("record")
                .arg(record)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&k)
                .arg(millis(ttl).max(1))
                .ignore()
                .query::<()>(c)
        })
    }

    fn get_approval(&self, id: &str) -> Result<Option<(String, Option<String>)>, StateError> {
        let k = key('a', &[id]);
        let (record, decision): (Option<String>, Option<String>) = self.pool.run(false, |c| {
            redis::cmd("HMGET")
                .arg(&k)
                .arg("record")
                .arg("decision")
                .query(c)
        })?;
        Ok(record.map(|r| (r, decision)))
    }

    fn decide_approval(&self, id: &str, decision: &str) -> Result<bool, StateError> {
        let k = key('a', &[id]);
        let set: i64 = self.pool.run(false, |c| {
            DECIDE_APPROVAL
                .prepare_invoke()
                .key(&k)
                .arg(decision)
                .invoke(c)
        })?;
        Ok(set == 1)
    }

    fn use_grant(&self, key_text: &str) -> Result<Option<String>, StateError> {
        let k = key('g', &[key_text]);
        self.pool.run(false, |c| {
            USE_GRANT
                .prepare_invoke()
                .key(&k)
                .invoke::<Option<String>>(c)
        })
    }

    /// Whether the server answers now (a `PING`).
    fn health(&self) -> Option<StoreHealth> {
        Some(self.pool.health())
    }

    fn end_streaks(&self, keys: &[ScopeKey], _wait: bool) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(streak_key).collect();
        self.pool
            .run(true, |c| redis::cmd("DEL").arg(&keys).query::<()>(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_parts_never_meet() {
        // Without the lengths, ("a:b", "c") and ("a", "b:c") would join to
        // the same text.
        assert_ne!(key('e', &["a:b", "c"]), key('e', &["a", "b:c"]));
        assert_ne!(key('e', &["ab", ""]), key('e', &["a", "b"]));
        assert_eq!(key('s', &["user", "alice"]), "warden:s4:user5:alice");
    }
}
