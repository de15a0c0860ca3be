//! Caps and rates in the SQLite state file: the [`StateStore`]
//! implementation of [`SqliteState`], and the store clock.
//!
//! **Reservations.** A decided call's slots are rows of `holds`, written
//! in the same immediate transaction that checks `count < max` for each,
//! so two processes on one file cannot both take the last slot. A count is
//! committed rows plus live holds. Committing deletes the hold and records
//! the call in one transaction; releasing deletes it. A hold older than
//! [`HOLD_TTL`] is ignored and swept: it can only be left by a process that
//! died between deciding and forwarding (holds live for microseconds).
//!
//! **Store time.** Rows are timed in store time, never the wall clock read
//! per call: `clock.offset + milliseconds since the machine booted`, with
//! one offset per boot id kept in the `clock` table. Every process of one
//! boot therefore reads the same clock, which an NTP step or a VM resume
//! does not move, and a restart continues it. On a new boot the offset is
//! chosen so that store time starts at the newest time in the file: the
//! time the machine was down is not counted, so a window open at shutdown
//! stays open for the rest of its length (fail closed). Within a process
//! the boot clock is read once, at open; after that time advances by the
//! process's monotonic clock. Where the system gives no boot clock, the
//! wall clock at open (or the newest time in the file, if later) is the
//! start, so only a step before the process opened the file can shorten a
//! window.

use crate::sqlite::{SWEEP_EVERY_MS, SqliteState, store_error};
use crate::state::{
    Clock, Count, Hold, HoldId, LimitSpec, Reserved, ScopeKey, StateError, StateStore,
};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, TryLockError};
use std::time::Duration;

/// Holds older than this are a dead process's and no longer count.
pub const HOLD_TTL: Duration = Duration::from_secs(600);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The store time when a file is opened (see the module docs).
pub(crate) fn store_time_at_open(conn: &mut Connection, clock: &dyn Clock) -> Result<i64, String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let newest: Option<i64> = tx
        .query_row(
            "SELECT max(t) FROM (
                 SELECT max(last_seen) AS t FROM streaks
                 UNION ALL SELECT max(at) FROM rate_events
                 UNION ALL SELECT max(at) FROM holds)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let now = match clock.boot() {
        Some(boot) => {
            let offset: Option<i64> = tx
                .query_row(
                    "SELECT offset FROM clock WHERE boot_id = ?1",
                    params![boot.id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| e.to_string())?;
            let offset = match offset {
                Some(o) => o,
                None => {
                    let start = newest.unwrap_or_else(|| clock.unix_millis());
                    let o = start.saturating_sub(boot.millis);
                    tx.execute(
                        "INSERT INTO clock (boot_id, offset) VALUES (?1, ?2)",
                        params![boot.id, o],
                    )
                    .map_err(|e| e.to_string())?;
                    o
                }
            };
            offset.saturating_add(boot.millis)
        }
        None => clock.unix_millis().max(newest.unwrap_or(i64::MIN)),
    };
    tx.commit().map_err(|e| e.to_string())?;
    Ok(now)
}

/// A hold id no other process picks: random, from the standard library's
/// per-process random hash keys.
fn new_hold_id() -> i64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    (h.finish() >> 1) as i64
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

impl SqliteState {
    /// Store time now: see the module docs.
    pub(crate) fn store_now(&self) -> i64 {
        let (at_open, since) = self.epoch;
        at_open.saturating_add(millis(self.clock.now().saturating_duration_since(since)))
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StateError> {
        self.conn
            .lock()
            .map_err(|_| StateError::Store("the state lock is poisoned".into()))
    }

    /// A slot's count: committed calls plus live holds.
    fn used(
        tx: &Connection,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        now: i64,
    ) -> rusqlite::Result<Count> {
        let kind = key.scope.keyword();
        let held: i64 = tx
            .prepare_cached(
                "SELECT count(*) FROM holds
                 WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND at > ?4",
            )?
            .query_row(
                params![kind, key.value, rule, now.saturating_sub(millis(HOLD_TTL))],
                |r| r.get(0),
            )?;
        let held = u64::try_from(held).unwrap_or(0);
        Ok(match spec.window {
            None => {
                let count: Option<i64> = tx
                    .prepare_cached(
                        "SELECT count FROM streaks
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3",
                    )?
                    .query_row(params![kind, key.value, rule], |r| r.get(0))
                    .optional()?;
                Count {
                    count: count.map_or(0, |c| u64::try_from(c).unwrap_or(0)) + held,
                    frees_in: None,
                }
            }
            Some(window) => {
                let window = millis(window);
                // An event leaves the window `window` after it was
                // recorded, as in memory.
                let (count, oldest): (i64, Option<i64>) = tx
                    .prepare_cached(
                        "SELECT count(*), min(at) FROM rate_events
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3
                           AND at > ?4",
                    )?
                    .query_row(
                        params![kind, key.value, rule, now.saturating_sub(window)],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                Count {
                    count: u64::try_from(count).unwrap_or(0) + held,
                    frees_in: oldest.map(|t| {
                        // A time ahead of now (written by a process whose
                        // clock ran ahead) counts as just recorded.
                        let left = window.saturating_sub(now.saturating_sub(t).max(0)).max(0);
                        Duration::from_millis(u64::try_from(left).unwrap_or(0))
                    }),
                }
            }
        })
    }

    /// Records a forwarded call: streaks of caps it does not count for end
    /// (all of them for a confirmed call), matched caps and rates count it.
    fn record(tx: &Transaction<'_>, hold: &Hold, now: i64) -> rusqlite::Result<()> {
        for key in &hold.keys {
            let kind = key.scope.keyword();
            let caps_here: Vec<&str> = hold
                .matched
                .iter()
                .filter(|(_, s)| s.scope == key.scope && s.window.is_none())
                .map(|(id, _)| id.as_str())
                .collect();
            let existing: Vec<String> = tx
                .prepare_cached(
                    "SELECT rule_id FROM streaks WHERE scope_kind = ?1 AND scope_value = ?2",
                )?
                .query_map(params![kind, key.value], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in existing {
                if hold.confirmed || !caps_here.contains(&id.as_str()) {
                    tx.prepare_cached(
                        "DELETE FROM streaks
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3",
                    )?
                    .execute(params![kind, key.value, id])?;
                }
            }
            if !hold.confirmed {
                for id in &caps_here {
                    tx.prepare_cached(
                        "INSERT INTO streaks (scope_kind, scope_value, rule_id, count, last_seen)
                         VALUES (?1, ?2, ?3, 1, ?4)
                         ON CONFLICT (scope_kind, scope_value, rule_id)
                         DO UPDATE SET count = count + 1, last_seen = excluded.last_seen",
                    )?
                    .execute(params![kind, key.value, id, now])?;
                }
            }
            for (id, spec) in hold.matched.iter().filter(|(_, s)| s.scope == key.scope) {
                let Some(window) = spec.window else { continue };
                tx.prepare_cached(
                    "DELETE FROM rate_events
                     WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND at <= ?4",
                )?
                .execute(params![
                    kind,
                    key.value,
                    id,
                    now.saturating_sub(millis(window))
                ])?;
                tx.prepare_cached(
                    "INSERT INTO rate_events (scope_kind, scope_value, rule_id, at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![kind, key.value, id, now])?;
                // Beyond `max` the oldest no longer decides anything.
                let keep = i64::try_from(spec.max.max(1)).unwrap_or(i64::MAX);
                tx.prepare_cached(
                    "DELETE FROM rate_events WHERE rowid IN (
                         SELECT rowid FROM rate_events
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3
                         ORDER BY at DESC, rowid DESC LIMIT -1 OFFSET ?4)",
                )?
                .execute(params![kind, key.value, id, keep])?;
            }
        }
        Ok(())
    }

    /// Idle rows expire as in memory: a streak not counted for `idle_ttl`,
    /// a rate whose newest event is that old, a hold past [`HOLD_TTL`].
    fn sweep_if_due(&self, tx: &Transaction<'_>, now: i64) -> rusqlite::Result<bool> {
        if now.saturating_sub(self.last_sweep.load(Ordering::Relaxed)) < SWEEP_EVERY_MS {
            return Ok(false);
        }
        let cutoff = now.saturating_sub(millis(self.limits.idle_ttl));
        tx.prepare_cached("DELETE FROM streaks WHERE last_seen <= ?1")?
            .execute(params![cutoff])?;
        tx.prepare_cached(
            "DELETE FROM rate_events
             WHERE (scope_kind, scope_value, rule_id) IN (
                 SELECT scope_kind, scope_value, rule_id FROM rate_events
                 GROUP BY scope_kind, scope_value, rule_id HAVING max(at) <= ?1)",
        )?
        .execute(params![cutoff])?;
        tx.prepare_cached("DELETE FROM holds WHERE at <= ?1")?
            .execute(params![now.saturating_sub(millis(HOLD_TTL))])?;
        Ok(true)
    }
}

impl StateStore for SqliteState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        Self::used(&conn, rule, spec, key, now)
            .map(Some)
            .map_err(store_error)
    }

    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        for (rule, spec, key) in hold.slots() {
            if hold.unchecked.iter().any(|r| r == rule) {
                continue;
            }
            if Self::used(&tx, rule, spec, key, now)
                .map_err(store_error)?
                .count
                >= spec.max
            {
                return Ok(Reserved::Full {
                    rule: rule.to_string(),
                });
            }
        }
        let id = new_hold_id();
        for (rule, _, key) in hold.slots() {
            tx.prepare_cached(
                "INSERT INTO holds (hold_id, scope_kind, scope_value, rule_id, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![id, key.scope.keyword(), key.value, rule, now]))
            .map_err(store_error)?;
        }
        tx.commit().map_err(store_error)?;
        Ok(Reserved::Held(HoldId(id as u64)))
    }

    fn commit(&self, id: HoldId, hold: &Hold) -> Result<(), StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        let swept = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM holds WHERE hold_id = ?1")?
                .execute(params![id.0 as i64])?;
            Self::record(&tx, hold, now)?;
            let swept = self.sweep_if_due(&tx, now)?;
            tx.commit()?;
            Ok(swept)
        })()
        .map_err(store_error)?;
        if swept {
            self.last_sweep.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    fn release(&self, id: HoldId, _hold: &Hold) -> Result<(), StateError> {
        let conn = self.conn()?;
        conn.prepare_cached("DELETE FROM holds WHERE hold_id = ?1")
            .and_then(|mut s| s.execute(params![id.0 as i64]))
            .map_err(store_error)?;
        Ok(())
    }

    fn end_streaks(&self, keys: &[ScopeKey], wait: bool) -> Result<(), StateError> {
        let mut conn = if wait {
            self.conn()?
        } else {
            match self.conn.try_lock() {
                Ok(c) => c,
                Err(TryLockError::WouldBlock) => return Err(StateError::Busy),
                Err(TryLockError::Poisoned(_)) => {
                    return Err(StateError::Store("the state lock is poisoned".into()));
                }
            }
        };
        if !wait {
            conn.busy_timeout(Duration::ZERO).map_err(store_error)?;
        }
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in keys {
                tx.prepare_cached(
                    "DELETE FROM streaks WHERE scope_kind = ?1 AND scope_value = ?2",
                )?
                .execute(params![key.scope.keyword(), key.value])?;
            }
            tx.commit()
        })();
        if !wait {
            conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
                .map_err(store_error)?;
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) if busy(&e) && !wait => Err(StateError::Busy),
            Err(e) => Err(store_error(e)),
        }
    }
}
