//! Caps, rates and budgets in the SQLite state file: the [`StateStore`]
//! implementation of [`SqliteState`], and the store clock.
//!
//! **Reservations.** A decided call's slots are rows of `holds` (with
//! their weight), written in the same immediate transaction that checks
//! `used + weight <= max` for each, so two processes on one file cannot
//! both take the last slot or the last of a budget. What a key has used is
//! its streak or the weights of its window's events, plus its live holds. Committing deletes the hold and records
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
    Clock, Count, Hold, HoldId, LimitSpec, Reserved, ScopeKey, StateError, StateStore, coalescing,
    fits, frees_in,
};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::sync::atomic::Ordering;
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

    /// The weight live holds take of `rule` in the key.
    fn held(
        tx: &Connection,
        rule: &str,
        key: &ScopeKey,
        split: &str,
        now: i64,
    ) -> rusqlite::Result<u64> {
        let held: i64 = tx
            .prepare_cached(
                "SELECT coalesce(sum(units), 0) FROM holds
                 WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND split = ?4
                   AND at > ?5",
            )?
            .query_row(
                params![
                    key.row.key(),
                    key.value,
                    rule,
                    split,
                    now.saturating_sub(millis(HOLD_TTL))
                ],
                |r| r.get(0),
            )?;
        Ok(u64::try_from(held).unwrap_or(0))
    }

    /// What `rule` committed in the key: the streak if it runs under
    /// `split`, else the weights of the window's events.
    fn committed(
        tx: &Connection,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        now: i64,
    ) -> rusqlite::Result<u64> {
        let n: Option<i64> = match spec.window {
            None => tx
                .prepare_cached(
                    "SELECT count FROM streaks
                     WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND split = ?4",
                )?
                .query_row(params![key.row.key(), key.value, rule, split], |r| r.get(0))
                .optional()?,
            // An event leaves the window `window` after it was recorded
            // (after its latest amount), as in memory.
            Some(window) => tx
                .prepare_cached(
                    "SELECT coalesce(sum(units), 0) FROM rate_events
                     WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND split = ?4
                       AND at > ?5",
                )?
                .query_row(
                    params![
                        key.row.key(),
                        key.value,
                        rule,
                        split,
                        now.saturating_sub(millis(window))
                    ],
                    |r| r.get(0),
                )?,
        };
        Ok(n.map_or(0, |c| u64::try_from(c).unwrap_or(0)))
    }

    /// The window's events, oldest first, as (time until each leaves,
    /// weight): what [`frees_in`] walks.
    fn events(
        tx: &Connection,
        rule: &str,
        window: Duration,
        key: &ScopeKey,
        split: &str,
        now: i64,
    ) -> rusqlite::Result<Vec<(Duration, u64)>> {
        let window = millis(window);
        let mut stmt = tx.prepare_cached(
            "SELECT at, units FROM rate_events
             WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND split = ?4
               AND at > ?5
             ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map(
            params![
                key.row.key(),
                key.value,
                rule,
                split,
                now.saturating_sub(window)
            ],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        rows.map(|row| {
            let (at, units) = row?;
            // A time ahead of now (written by a process whose clock ran
            // ahead) counts as just recorded.
            let left = window.saturating_sub(now.saturating_sub(at).max(0)).max(0);
            Ok((
                Duration::from_millis(u64::try_from(left).unwrap_or(0)),
                u64::try_from(units).unwrap_or(0),
            ))
        })
        .collect()
    }

    /// Records a forwarded call: streaks of caps it does not count for end
    /// (all of them for a confirmed call), matched caps lengthen or
    /// restart theirs, rates and budgets count it.
    fn record(tx: &Transaction<'_>, hold: &Hold, now: i64) -> rusqlite::Result<()> {
        for key in &hold.keys {
            let kind = key.row.key();
            let caps: Vec<(&str, &str)> = hold
                .caps_in(key)
                .map(|c| (c.rule.as_str(), c.split.as_str()))
                .collect();
            let existing: Vec<String> = tx
                .prepare_cached(
                    "SELECT rule_id FROM streaks WHERE scope_kind = ?1 AND scope_value = ?2",
                )?
                .query_map(params![kind, key.value], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in existing {
                if hold.confirmed || !caps.iter().any(|(r, _)| *r == id) {
                    tx.prepare_cached(
                        "DELETE FROM streaks
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3",
                    )?
                    .execute(params![kind, key.value, id])?;
                }
            }
            if !hold.confirmed {
                for (rule, split) in &caps {
                    tx.prepare_cached(
                        "INSERT INTO streaks (scope_kind, scope_value, rule_id, split, count, last_seen)
                         VALUES (?1, ?2, ?3, ?4, 1, ?5)
                         ON CONFLICT (scope_kind, scope_value, rule_id)
                         DO UPDATE SET
                             count = CASE WHEN split = excluded.split THEN count + 1 ELSE 1 END,
                             split = excluded.split,
                             last_seen = excluded.last_seen",
                    )?
                    .execute(params![kind, key.value, rule, split, now])?;
                }
            }
        }
        for c in &hold.matched {
            let Some(window) = c.spec.window else {
                continue;
            };
            let row = c.spec.scope.row();
            let Some(key) = hold.keys.iter().find(|k| k.row == row) else {
                continue;
            };
            let kind = key.row.key();
            let units = i64::try_from(c.weight).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "DELETE FROM rate_events
                 WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3 AND split = ?4
                   AND at <= ?5",
            )?
            .execute(params![
                kind,
                key.value,
                c.rule,
                c.split,
                now.saturating_sub(millis(window))
            ])?;
            // A budget's amounts within the coalescing interval of the
            // newest event join it, timed by the latest (frees late).
            let bucket = millis(coalescing(&c.spec));
            let joined = bucket > 0
                && tx
                    .prepare_cached(
                        "UPDATE rate_events SET units = units + ?6, at = max(at, ?5)
                         WHERE rowid = (
                             SELECT rowid FROM rate_events
                             WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3
                               AND split = ?4
                             ORDER BY at DESC, rowid DESC LIMIT 1)
                           AND ?5 - coalesce(first_at, at) < ?7",
                    )?
                    .execute(params![
                        kind, key.value, c.rule, c.split, now, units, bucket
                    ])?
                    > 0;
            if !joined {
                tx.prepare_cached(
                    "INSERT INTO rate_events
                         (scope_kind, scope_value, rule_id, split, units, first_at, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?
                .execute(params![kind, key.value, c.rule, c.split, units, now])?;
            }
            let max = i64::try_from(c.spec.max).unwrap_or(i64::MAX);
            if c.spec.summed {
                // Once the newer amounts pass `max`, no call fits whatever
                // the older ones: they no longer decide anything.
                tx.prepare_cached(
                    "DELETE FROM rate_events WHERE rowid IN (
                         SELECT rowid FROM (
                             SELECT rowid, sum(units) OVER (
                                 ORDER BY at DESC, rowid DESC
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS newer
                             FROM rate_events
                             WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3
                               AND split = ?4)
                         WHERE newer > ?5)",
                )?
                .execute(params![kind, key.value, c.rule, c.split, max])?;
            } else {
                // Beyond `max` the oldest no longer decides anything.
                tx.prepare_cached(
                    "DELETE FROM rate_events WHERE rowid IN (
                         SELECT rowid FROM rate_events
                         WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3
                           AND split = ?4
                         ORDER BY at DESC, rowid DESC LIMIT -1 OFFSET ?5)",
                )?
                .execute(params![kind, key.value, c.rule, c.split, max.max(1)])?;
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
             WHERE (scope_kind, scope_value, rule_id, split) IN (
                 SELECT scope_kind, scope_value, rule_id, split FROM rate_events
                 GROUP BY scope_kind, scope_value, rule_id, split HAVING max(at) <= ?1)",
        )?
        .execute(params![cutoff])?;
        tx.prepare_cached("DELETE FROM holds WHERE at <= ?1")?
            .execute(params![now.saturating_sub(millis(HOLD_TTL))])?;
        tx.prepare_cached("DELETE FROM once_marks WHERE expires <= ?1")?
            .execute(params![now])?;
        tx.prepare_cached("DELETE FROM session_labels WHERE expires <= ?1")?
            .execute(params![now])?;
        Ok(true)
    }
}

impl StateStore for SqliteState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<Count>, StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        (|| {
            let committed = Self::committed(&conn, rule, spec, key, split, now)?;
            let held = Self::held(&conn, rule, key, split, now)?;
            let used = committed.saturating_add(held);
            // The events are read only when the call does not fit: a full
            // rate window holds at most `max` of them.
            let frees = match spec.window {
                Some(window) if !fits(used, need, spec.max) => frees_in(
                    Self::events(&conn, rule, window, key, split, now)?,
                    held,
                    need,
                    spec,
                ),
                _ => None,
            };
            Ok(Some(Count {
                count: used,
                frees_in: frees,
            }))
        })()
        .map_err(store_error)
    }

    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        for s in hold.slots() {
            if hold.is_unchecked(s.rule) {
                continue;
            }
            let used = Self::committed(&tx, s.rule, s.spec, s.key, s.split, now)
                .and_then(|c| Ok(c.saturating_add(Self::held(&tx, s.rule, s.key, s.split, now)?)))
                .map_err(store_error)?;
            if !fits(used, s.weight, s.spec.max) {
                return Ok(Reserved::Full {
                    rule: s.rule.to_string(),
                });
            }
        }
        let id = HoldId::random().0 as i64;
        for s in hold.slots() {
            tx.prepare_cached(
                "INSERT INTO holds (hold_id, scope_kind, scope_value, rule_id, split, units, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    id,
                    s.key.row.key(),
                    s.key.value,
                    s.rule,
                    s.split,
                    i64::try_from(s.weight).unwrap_or(i64::MAX),
                    now
                ])
            })
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

    fn use_once(&self, mark: &str, ttl: Duration) -> Result<bool, StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM once_marks WHERE mark = ?1 AND expires <= ?2")?
                .execute(params![mark, now])?;
            let new = tx
                .prepare_cached("INSERT OR IGNORE INTO once_marks (mark, expires) VALUES (?1, ?2)")?
                .execute(params![mark, now.saturating_add(millis(ttl))])?;
            tx.commit()?;
            Ok(new == 1)
        })()
        .map_err(store_error)
    }

    fn check_pin(
        &self,
        server: &str,
        tool: &str,
        digest: &str,
        definition: &str,
    ) -> Result<crate::pins::PinCheck, StateError> {
        use crate::pins::PinCheck;
        let mut conn = self.conn()?;
        (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let pinned: Option<String> = tx
                .prepare_cached("SELECT digest FROM tool_pins WHERE server = ?1 AND tool = ?2")?
                .query_row(params![server, tool], |r| r.get(0))
                .optional()?;
            let check = match pinned {
                None => {
                    tx.prepare_cached(
                        "INSERT INTO tool_pins (server, tool, digest, definition) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![server, tool, digest, definition])?;
                    PinCheck::New
                }
                Some(p) if p == digest => PinCheck::Same,
                Some(p) => {
                    tx.prepare_cached(
                        "UPDATE tool_pins SET pending_digest = ?3, pending_definition = ?4 WHERE server = ?1 AND tool = ?2",
                    )?
                    .execute(params![server, tool, digest, definition])?;
                    PinCheck::Changed { pinned: p }
                }
            };
            tx.commit()?;
            Ok(check)
        })()
        .map_err(store_error)
    }

    fn pins(&self) -> Result<Vec<crate::pins::ToolPin>, StateError> {
        use crate::pins::{PendingDefinition, ToolPin};
        let conn = self.conn()?;
        let mut q = conn
            .prepare_cached(
                "SELECT server, tool, digest, definition, pending_digest, pending_definition FROM tool_pins ORDER BY server, tool",
            )
            .map_err(store_error)?;
        let rows = q
            .query_map([], |r| {
                let pending = match (
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ) {
                    (Some(digest), Some(definition)) => {
                        Some(PendingDefinition { digest, definition })
                    }
                    _ => None,
                };
                Ok(ToolPin {
                    server: r.get(0)?,
                    tool: r.get(1)?,
                    digest: r.get(2)?,
                    definition: r.get(3)?,
                    pending,
                })
            })
            .map_err(store_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
    }

    fn approve_pin(&self, server: &str, tool: &str) -> Result<bool, StateError> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(
                "UPDATE tool_pins SET digest = pending_digest, definition = pending_definition, pending_digest = NULL, pending_definition = NULL \
                 WHERE server = ?1 AND tool = ?2 AND pending_digest IS NOT NULL",
            )
            .and_then(|mut s| s.execute(params![server, tool]))
            .map_err(store_error)?;
        Ok(n == 1)
    }

    fn add_session_labels(
        &self,
        session: &str,
        labels: &[(String, Duration)],
    ) -> Result<(), StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (name, ttl) in labels {
                tx.prepare_cached(
                    "INSERT INTO session_labels (session, label, expires) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (session, label) DO UPDATE SET expires = MAX(expires, excluded.expires)",
                )?
                .execute(params![session, name, now.saturating_add(millis(*ttl))])?;
            }
            tx.commit()
        })()
        .map_err(store_error)
    }

    fn session_labels(&self, session: &str, names: &[String]) -> Result<Vec<String>, StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        let mut live = Vec::new();
        for name in names {
            let found = conn
                .prepare_cached(
                    "SELECT 1 FROM session_labels WHERE session = ?1 AND label = ?2 AND expires > ?3",
                )
                .and_then(|mut q| q.exists(params![session, name, now]))
                .map_err(store_error)?;
            if found {
                live.push(name.clone());
            }
        }
        Ok(live)
    }

    fn put_grant(
        &self,
        key: &str,
        id: &str,
        ttl: Duration,
        uses: Option<u64>,
    ) -> Result<(), StateError> {
        let expires = self.store_now().saturating_add(millis(ttl));
        let uses = uses.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO grants (grant_key, grant_id, expires, uses) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![key, id, expires, uses]))
        .map_err(store_error)?;
        Ok(())
    }

    fn put_approval(&self, id: &str, record: &str, ttl: Duration) -> Result<(), StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        (|| {
            conn.prepare_cached("DELETE FROM approvals WHERE expires <= ?1")?
                .execute(params![now])?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO approvals (approval_id, record, decision, expires) VALUES (?1, ?2, NULL, ?3)",
            )?
            .execute(params![id, record, now.saturating_add(millis(ttl))])?;
            Ok(())
        })()
        .map_err(store_error)
    }

    fn get_approval(&self, id: &str) -> Result<Option<(String, Option<String>)>, StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        conn.prepare_cached(
            "SELECT record, decision FROM approvals WHERE approval_id = ?1 AND expires > ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(store_error)
    }

    fn decide_approval(&self, id: &str, decision: &str) -> Result<bool, StateError> {
        let now = self.store_now();
        let conn = self.conn()?;
        let changed = conn
            .prepare_cached(
                "UPDATE approvals SET decision = ?2 WHERE approval_id = ?1 AND decision IS NULL AND expires > ?3",
            )
            .and_then(|mut s| s.execute(params![id, decision, now]))
            .map_err(store_error)?;
        Ok(changed == 1)
    }

    fn use_grant(&self, key: &str) -> Result<Option<String>, StateError> {
        let now = self.store_now();
        let mut conn = self.conn()?;
        (|| {
            // One write transaction: parallel calls (other processes on
            // the file included) take the last use once.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "DELETE FROM grants WHERE grant_key = ?1 AND (expires <= ?2 OR uses <= 0)",
            )?
            .execute(params![key, now])?;
            let found: Option<(String, Option<i64>)> = tx
                .prepare_cached("SELECT grant_id, uses FROM grants WHERE grant_key = ?1")?
                .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((_, Some(uses))) = &found {
                if *uses <= 1 {
                    tx.prepare_cached("DELETE FROM grants WHERE grant_key = ?1")?
                        .execute(params![key])?;
                } else {
                    tx.prepare_cached("UPDATE grants SET uses = uses - 1 WHERE grant_key = ?1")?
                        .execute(params![key])?;
                }
            }
            tx.commit()?;
            Ok(found.map(|(id, _)| id))
        })()
        .map_err(store_error)
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
                .execute(params![key.row.key(), key.value])?;
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
