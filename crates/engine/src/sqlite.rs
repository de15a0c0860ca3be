//! Cap and rate state in a SQLite file ([`SqliteState`]), so that neither a
//! restart of warden nor a second warden process on the same file resets a
//! cap or a rate limit.
//!
//! The file holds two tables: `streaks` (scope kind, scope value, rule id,
//! count, last seen) and `rate_events` (scope kind, scope value, rule id,
//! time), with the bounds of the memory store: a window keeps at most `max`
//! events, and rows idle for `StateLimits::idle_ttl` are deleted. Times are
//! milliseconds since the Unix epoch from the engine's [`Clock`].
//!
//! The file runs in WAL mode with a busy timeout, so several processes can
//! share it: every read goes to the file (no cache), so each process sees
//! the others' counts. A forwarded call is recorded in one transaction.
//!
//! It also holds the records created through warden (`records`: server,
//! kind, record id, whether the agent path created it, creating agent,
//! user, session, time; one row per (server, kind, id), the first creation
//! kept), as the [`crate::records::RecordStore`] behind `created by agent`.
//! Records do not expire: a record an agent created stays its record.
//!
//! The schema is versioned (`PRAGMA user_version`) by [`MIGRATIONS`]; other
//! state kept in the same file adds a migration and uses
//! [`SqliteState::with_connection`].

use crate::records::{NewRecord, RecordError, RecordStore};
use crate::state::{Clock, Count, LimitSpec, ScopeKey, StateError, StateLimits, StateStore};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle rows are swept at most this often (milliseconds).
const SWEEP_EVERY_MS: i64 = 60_000;

/// The schema, one step per version: `MIGRATIONS[i]` takes the file from
/// version `i` to `i + 1`. Append only; never edit a released step.
pub const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE streaks (
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (scope_kind, scope_value, rule_id)
    ) WITHOUT ROWID;
    CREATE INDEX streaks_last_seen ON streaks (last_seen);
    CREATE TABLE rate_events (
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX rate_events_key ON rate_events (scope_kind, scope_value, rule_id, at);
    CREATE INDEX rate_events_at ON rate_events (at);
",
    "
    CREATE TABLE records (
        server TEXT NOT NULL,
        record_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        via_agent INTEGER NOT NULL,
        agent TEXT,
        user TEXT NOT NULL,
        session TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (server, record_id)
    ) WITHOUT ROWID;
",
    // Records keyed by kind as well: ids are unique only within a kind
    // (note 1 is not sample 1). Rows keep the kind they were stored with.
    "
    CREATE TABLE records_by_kind (
        server TEXT NOT NULL,
        kind TEXT NOT NULL,
        record_id TEXT NOT NULL,
        via_agent INTEGER NOT NULL,
        agent TEXT,
        user TEXT NOT NULL,
        session TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (server, kind, record_id)
    ) WITHOUT ROWID;
    INSERT INTO records_by_kind
        SELECT server, kind, record_id, via_agent, agent, user, session, created_at FROM records;
    DROP TABLE records;
    ALTER TABLE records_by_kind RENAME TO records;
",
];

/// Cap and rate state in a SQLite file.
#[derive(Debug)]
pub struct SqliteState {
    conn: Mutex<Connection>,
    path: PathBuf,
    limits: StateLimits,
    clock: Arc<dyn Clock>,
    last_sweep: AtomicI64,
}

fn store_error(e: rusqlite::Error) -> StateError {
    StateError::Store(e.to_string())
}

impl SqliteState {
    /// Opens (or creates) the state file, sets WAL mode and a busy timeout
    /// and brings the schema up to date.
    pub fn open(
        path: &Path,
        limits: StateLimits,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StateError> {
        let open_error = |message: String| StateError::Open {
            path: path.to_path_buf(),
            message,
        };
        let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(e.to_string()))?;
        // Reading the mode is the first access to the file: a file that is
        // not a database, or cannot be read, fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(format!(
                "it cannot be put in WAL mode (journal mode is `{mode}`)"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(e.to_string()))?;
        migrate(&mut conn).map_err(open_error)?;
        Ok(SqliteState {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            limits,
            clock,
            last_sweep: AtomicI64::new(i64::MIN),
        })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection (one at a time), for other state kept in
    /// the same file.
    pub fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StateError::Store("the state lock is poisoned".into()))?;
        f(&mut conn).map_err(store_error)
    }
}

/// Applies the migrations the file lacks, in one immediate transaction so
/// that two processes opening a new file do not both create it.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(format!(
            "its schema version is {version}, newer than this warden knows ({known})"
        ));
    }
    for step in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        tx.execute_batch(step).map_err(|e| e.to_string())?;
    }
    tx.pragma_update(None, "user_version", known)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl StateStore for SqliteState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError> {
        let now = self.clock.unix_millis();
        let kind = key.scope.keyword();
        self.with_connection(|conn| {
            Ok(Some(match spec.window {
                None => {
                    let count: Option<i64> = conn
                        .prepare_cached(
                            "SELECT count FROM streaks
                             WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3",
                        )?
                        .query_row(params![kind, key.value, rule], |r| r.get(0))
                        .optional()?;
                    Count {
                        count: count.map_or(0, |c| u64::try_from(c).unwrap_or(0)),
                        frees_in: None,
                    }
                }
                Some(window) => {
                    let window = millis(window);
                    // An event leaves the window `window` after it was
                    // recorded, as in memory.
                    let (count, oldest): (i64, Option<i64>) = conn
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
                        count: u64::try_from(count).unwrap_or(0),
                        frees_in: oldest.map(|t| {
                            let left = window.saturating_sub(now.saturating_sub(t)).max(0);
                            Duration::from_millis(u64::try_from(left).unwrap_or(0))
                        }),
                    }
                }
            }))
        })
    }

    fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) -> Result<(), StateError> {
        let now = self.clock.unix_millis();
        let ttl = millis(self.limits.idle_ttl);
        let sweep = now.saturating_sub(self.last_sweep.load(Ordering::Relaxed)) >= SWEEP_EVERY_MS;
        self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in keys {
                let kind = key.scope.keyword();
                let caps_here: Vec<&str> = matched
                    .iter()
                    .filter(|(_, s)| s.scope == key.scope && s.window.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                // Streaks of caps this call does not count for end; a
                // confirmed call ends them all and starts none.
                let existing: Vec<String> = tx
                    .prepare_cached(
                        "SELECT rule_id FROM streaks WHERE scope_kind = ?1 AND scope_value = ?2",
                    )?
                    .query_map(params![kind, key.value], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for id in existing {
                    if confirmed || !caps_here.contains(&id.as_str()) {
                        tx.prepare_cached(
                            "DELETE FROM streaks
                             WHERE scope_kind = ?1 AND scope_value = ?2 AND rule_id = ?3",
                        )?
                        .execute(params![kind, key.value, id])?;
                    }
                }
                if !confirmed {
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
                for (id, spec) in matched.iter().filter(|(_, s)| s.scope == key.scope) {
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
            if sweep {
                // Idle rows expire as in memory: a streak not counted for
                // `idle_ttl`, a rate whose newest event is that old.
                let cutoff = now.saturating_sub(ttl);
                tx.prepare_cached("DELETE FROM streaks WHERE last_seen <= ?1")?
                    .execute(params![cutoff])?;
                tx.prepare_cached(
                    "DELETE FROM rate_events
                     WHERE (scope_kind, scope_value, rule_id) IN (
                         SELECT scope_kind, scope_value, rule_id FROM rate_events
                         GROUP BY scope_kind, scope_value, rule_id HAVING max(at) <= ?1)",
                )?
                .execute(params![cutoff])?;
            }
            tx.commit()
        })?;
        if sweep {
            self.last_sweep.store(now, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl RecordStore for SqliteState {
    fn agent_created(
        &self,
        server: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT 1 FROM records
                 WHERE server = ?1 AND kind = ?2 AND record_id = ?3 AND via_agent = 1",
            )?;
            let mut found = HashSet::new();
            for id in ids {
                if stmt.exists(params![server, kind, id])? {
                    found.insert(id.clone());
                }
            }
            Ok(found)
        })
        .map_err(|e| RecordError::Store(e.to_string()))
    }

    fn insert(&self, r: &NewRecord) -> Result<bool, RecordError> {
        // First writer wins: a get-or-create tool answering with an id
        // already stored (say, one a person created through warden) must
        // not re-mark it as the agent's. One statement, so two processes
        // on the file cannot both "create" the same record.
        self.with_connection(|conn| {
            let stored = conn
                .prepare_cached(
                    "INSERT INTO records
                   (server, kind, record_id, via_agent, agent, user, session, created_at)
                 VALUES (?1, ?3, ?2, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (server, kind, record_id) DO NOTHING",
                )?
                .execute(params![
                    r.server,
                    r.id,
                    r.kind,
                    r.via_agent,
                    r.agent,
                    r.user,
                    r.session,
                    r.created_at
                ])?;
            Ok(stored == 1)
        })
        .map_err(|e| RecordError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ManualClock;
    use warden_lang::ast::Scope;

    fn key(v: &str) -> ScopeKey {
        ScopeKey {
            scope: Scope::User,
            value: v.to_string(),
        }
    }
    const RATE: LimitSpec = LimitSpec {
        max: 2,
        window: Some(Duration::from_secs(60)),
        scope: Scope::User,
    };
    const CAP: LimitSpec = LimitSpec {
        max: 3,
        window: None,
        scope: Scope::User,
    };

    fn rows(s: &SqliteState, table: &str) -> i64 {
        s.with_connection(|c| {
            c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        })
        .unwrap()
    }

    #[test]
    fn windows_keep_at_most_max_events_and_idle_rows_expire() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::default());
        let limits = StateLimits {
            idle_ttl: Duration::from_secs(3600),
            max_keys: 10,
        };
        let s = SqliteState::open(&dir.path().join("s.db"), limits, clock.clone()).unwrap();
        for _ in 0..5 {
            s.record_forwarded(&[key("a")], &[("rate", RATE), ("cap", CAP)], false)
                .unwrap();
        }
        assert_eq!(rows(&s, "rate_events"), 2, "at most max events per window");
        assert_eq!(s.count("cap", &CAP, &key("a")).unwrap().unwrap().count, 5);
        let c = s.count("rate", &RATE, &key("a")).unwrap().unwrap();
        assert_eq!((c.count, c.frees_in), (2, Some(Duration::from_secs(60))));
        clock.advance(Duration::from_secs(3601));
        // Another scope's call sweeps the idle ones.
        s.record_forwarded(&[key("b")], &[], false).unwrap();
        assert_eq!(rows(&s, "rate_events"), 0);
        assert_eq!(rows(&s, "streaks"), 0);
    }

    #[test]
    fn records_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let clock = Arc::new(ManualClock::default());
        let s = SqliteState::open(&path, StateLimits::default(), clock.clone()).unwrap();
        let record = |id: &str, via_agent| NewRecord {
            server: "genomics".into(),
            id: id.into(),
            kind: "sample".into(),
            via_agent,
            agent: Some("claude-code".into()),
            user: "alice".into(),
            session: "s".into(),
            created_at: 1,
        };
        assert!(s.insert(&record("S-1", true)).unwrap());
        assert!(s.insert(&record("S-2", false)).unwrap());
        drop(s);
        let s = SqliteState::open(&path, StateLimits::default(), clock).unwrap();
        let found = s
            .agent_created("genomics", "sample", &["S-1".into(), "S-2".into()])
            .unwrap();
        assert_eq!(found, HashSet::from(["S-1".to_string()]));
        // Finding 4: the first creation is kept, and kinds do not mix.
        assert!(!s.insert(&record("S-2", true)).unwrap());
        let found = s
            .agent_created("genomics", "sample", &["S-2".into()])
            .unwrap();
        assert!(found.is_empty(), "a second creation re-marked S-2");
        assert!(
            s.agent_created("genomics", "note", &["S-1".into()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_version_2_records_table_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..2] {
            c.execute_batch(step).unwrap();
        }
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute(
            "INSERT INTO records VALUES ('genomics', 'S-1', 'sample', 1, NULL, 'ada', 's', 1)",
            [],
        )
        .unwrap();
        drop(c);
        let s = SqliteState::open(
            &path,
            StateLimits::default(),
            Arc::new(ManualClock::default()),
        )
        .unwrap();
        let found = s
            .agent_created("genomics", "sample", &["S-1".into()])
            .unwrap();
        assert_eq!(found, HashSet::from(["S-1".to_string()]));
    }

    #[test]
    fn a_file_of_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = SqliteState::open(
            &path,
            StateLimits::default(),
            Arc::new(ManualClock::default()),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("newer than this warden knows"),
            "{e}"
        );
    }
}
