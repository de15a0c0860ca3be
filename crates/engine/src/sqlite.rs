//! Cap and rate state in a SQLite file ([`SqliteState`]), so that neither a
//! restart of warden nor a second warden process on the same file resets a
//! cap or a rate limit.
//!
//! The file holds `streaks` (row kind, row value, rule id, the split value
//! the streak runs under, count, last seen), `rate_events` (row kind, row
//! value, rule id, split value, weight, time; a rate's calls and a
//! budget's amounts) and `holds` (the weighted slots of decided calls not
//! yet forwarded), with the bounds of the memory store: a rate window
//! keeps at most `max` events, a budget window coalesces amounts as memory
//! does ([`crate::state::coalescing`]), and rows idle for
//! `StateLimits::idle_ttl` are deleted. Times are store time, which a
//! wall-clock step cannot move (see [`crate::sqlite_limits`], which also
//! holds the counting itself).
//!
//! The file runs in WAL mode with a busy timeout, so several processes can
//! share it: every read goes to the file (no cache), so each process sees
//! the others' counts. A reservation checks and holds its slots in one
//! immediate transaction; a forwarded call is recorded in one.
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
use crate::state::{Clock, StateError, StateLimits};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for another process's write to finish.
/// Writes take microseconds, so this only runs out on a file another
/// program keeps locked: then capped calls are denied after this long
/// ("state store unavailable: database is locked"), and calls that need
/// no counter do not wait at all.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle rows are swept at most this often (milliseconds).
pub(crate) const SWEEP_EVERY_MS: i64 = 60_000;

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
    // Slots held by decided calls not yet forwarded, and the store clock
    // per machine boot (see crate::sqlite_limits).
    "
    CREATE TABLE holds (
        hold_id INTEGER NOT NULL,
        scope_kind TEXT NOT NULL,
        scope_value TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX holds_key ON holds (scope_kind, scope_value, rule_id, at);
    CREATE INDEX holds_id ON holds (hold_id);
    CREATE TABLE clock (
        boot_id TEXT PRIMARY KEY,
        offset INTEGER NOT NULL
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
    // Compound scopes and budgets (issue 12): a key is a row (scope_kind =
    // the row scopes as `session+user`, scope_value their values) and a
    // split value (model, tool; '' when none). A streak remembers the
    // split value it runs under; events and holds carry a weight (1 for a
    // call, a budget's amount in units) and budget events coalesce
    // (first_at: the first amount of the event, at: the latest). Existing
    // rows are single-scope keys without a split value and weigh 1, which
    // is what they were.
    "
    ALTER TABLE streaks ADD COLUMN split TEXT NOT NULL DEFAULT '';
    ALTER TABLE rate_events ADD COLUMN split TEXT NOT NULL DEFAULT '';
    ALTER TABLE rate_events ADD COLUMN units INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE rate_events ADD COLUMN first_at INTEGER;
    UPDATE rate_events SET first_at = at;
    ALTER TABLE holds ADD COLUMN split TEXT NOT NULL DEFAULT '';
    ALTER TABLE holds ADD COLUMN units INTEGER NOT NULL DEFAULT 1;
    DROP INDEX rate_events_key;
    CREATE INDEX rate_events_key ON rate_events (scope_kind, scope_value, rule_id, split, at);
    DROP INDEX holds_key;
    CREATE INDEX holds_key ON holds (scope_kind, scope_value, rule_id, split, at);
",
    // The decision that let a record's creating call through (issue 14);
    // rows stored before it have none.
    "
    ALTER TABLE records ADD COLUMN decision TEXT NOT NULL DEFAULT '';
",
    // Single-use marks (a 2026-07-28 confirmation answered once), timed
    // in store time like every row.
    "
    CREATE TABLE once_marks (
        mark TEXT PRIMARY KEY,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    // Grants of approvals (issue 16): a require-confirm rule's yes
    // reaching later calls with the same key until `expires` (store time)
    // and, when counted, for `uses` more calls.
    "
    CREATE TABLE grants (
        grant_key TEXT PRIMARY KEY,
        grant_id TEXT NOT NULL,
        expires INTEGER NOT NULL,
        uses INTEGER
    ) WITHOUT ROWID;
",
    // Pending approvals (issue 16), so that every process on the file can
    // show and decide one; `decision` is set once.
    "
    CREATE TABLE approvals (
        approval_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        decision TEXT,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    // Session labels (issue 17): a `label` rule's label on a session until
    // `expires` (store time), so that any process on the file reads it.
    "
    CREATE TABLE session_labels (
        session TEXT NOT NULL,
        label TEXT NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (session, label)
    ) WITHOUT ROWID;
",
    // Pinned tool definitions (issue 17): the first definition seen of
    // each tool (or the last approved), and a different one seen since.
    "
    CREATE TABLE tool_pins (
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        digest TEXT NOT NULL,
        definition TEXT NOT NULL,
        pending_digest TEXT,
        pending_definition TEXT,
        PRIMARY KEY (server, tool)
    ) WITHOUT ROWID;
",
];

/// Cap and rate state in a SQLite file.
#[derive(Debug)]
pub struct SqliteState {
    pub(crate) conn: Mutex<Connection>,
    path: PathBuf,
    pub(crate) limits: StateLimits,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) last_sweep: AtomicI64,
    /// Store time when the file was opened, and the monotonic instant
    /// then: see [`crate::sqlite_limits`] for how it is kept.
    pub(crate) epoch: (i64, std::time::Instant),
}

pub(crate) fn store_error(e: rusqlite::Error) -> StateError {
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
        let epoch = (
            crate::sqlite_limits::store_time_at_open(&mut conn, &*clock).map_err(open_error)?,
            clock.now(),
        );
        Ok(SqliteState {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            limits,
            clock,
            last_sweep: AtomicI64::new(i64::MIN),
            epoch,
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
                   (server, kind, record_id, via_agent, agent, user, session, created_at, decision)
                 VALUES (?1, ?3, ?2, ?4, ?5, ?6, ?7, ?8, ?9)
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
                    r.created_at,
                    r.decision
                ])?;
            Ok(stored == 1)
        })
        .map_err(|e| RecordError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Counted, Hold, LimitSpec, ManualClock, Reserved, ScopeKey, StateStore};
    use warden_lang::ast::{Scope, ScopeSet};

    fn key(v: &str) -> ScopeKey {
        ScopeKey {
            row: ScopeSet::single(Scope::User),
            value: v.to_string(),
        }
    }
    fn rate() -> LimitSpec {
        LimitSpec {
            max: 2,
            window: Some(Duration::from_secs(60)),
            scope: ScopeSet::single(Scope::User),
            summed: false,
        }
    }
    fn cap() -> LimitSpec {
        LimitSpec {
            max: 3,
            window: None,
            scope: ScopeSet::single(Scope::User),
            summed: false,
        }
    }

    fn rows(s: &SqliteState, table: &str) -> i64 {
        s.with_connection(|c| {
            c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        })
        .unwrap()
    }

    /// Reserves and commits a call, as the engine does for a forwarded one.
    fn forward(s: &SqliteState, keys: &[ScopeKey], matched: &[(&str, LimitSpec)]) {
        let hold = Hold {
            user: "alice".into(),
            keys: keys.to_vec(),
            matched: matched
                .iter()
                .map(|(r, l)| Counted {
                    rule: r.to_string(),
                    spec: *l,
                    split: String::new(),
                    weight: 1,
                })
                .collect(),
            confirmed: false,
            unchecked: Vec::new(),
        };
        match s.reserve(&hold).unwrap() {
            Reserved::Held(id) => s.commit(id, &hold).unwrap(),
            other => panic!("not held: {other:?}"),
        }
    }

    #[test]
    fn windows_keep_at_most_max_events_and_idle_rows_expire() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::default());
        let limits = StateLimits {
            idle_ttl: Duration::from_secs(3600),
            ..StateLimits::default()
        };
        let s = SqliteState::open(&dir.path().join("s.db"), limits, clock.clone()).unwrap();
        let cap = LimitSpec { max: 9, ..cap() };
        let rate = LimitSpec { max: 2, ..rate() };
        for _ in 0..2 {
            forward(&s, &[key("a")], &[("rate", rate), ("cap", cap)]);
        }
        // The rate is full; the cap alone still counts.
        for _ in 0..3 {
            forward(&s, &[key("a")], &[("cap", cap)]);
        }
        assert_eq!(rows(&s, "rate_events"), 2, "at most max events per window");
        assert_eq!(rows(&s, "holds"), 0, "committed holds are gone");
        assert_eq!(
            s.count("cap", &cap, &key("a"), "", 1)
                .unwrap()
                .unwrap()
                .count,
            5
        );
        let c = s.count("rate", &rate, &key("a"), "", 1).unwrap().unwrap();
        assert_eq!((c.count, c.frees_in), (2, Some(Duration::from_secs(60))));
        clock.advance(Duration::from_secs(3601));
        // Another scope's call sweeps the idle ones.
        forward(&s, &[key("b")], &[]);
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
            decision: String::new(),
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

    /// A version-4 file (before compound scopes and budgets) keeps its
    /// streaks, windows and holds: they are single-scope keys without a
    /// split value, weighing 1.
    #[test]
    fn a_version_4_state_file_is_migrated_and_its_counts_still_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let clock = Arc::new(ManualClock::default());
        // Store time starts at the newest time in the file on a new boot.
        let now = 5_000_000;
        let c = Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..4] {
            c.execute_batch(step).unwrap();
        }
        c.pragma_update(None, "user_version", 4).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO streaks VALUES ('user', 'alice', 'cap', 2, {now});
             INSERT INTO rate_events VALUES ('user', 'alice', 'rate', {now});
             INSERT INTO rate_events VALUES ('user', 'alice', 'rate', {now});"
        ))
        .unwrap();
        drop(c);
        let s = SqliteState::open(&path, StateLimits::default(), clock).unwrap();
        let version: i64 = s
            .with_connection(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let count = |rule: &str, spec: &LimitSpec| {
            s.count(rule, spec, &key("alice"), "", 1)
                .unwrap()
                .unwrap()
                .count
        };
        assert_eq!(count("cap", &cap()), 2, "the streak survived");
        assert_eq!(count("rate", &rate()), 2, "the window survived");
        // The window is full (max 2): the old rows still refuse.
        let hold = Hold {
            user: "alice".into(),
            keys: vec![key("alice")],
            matched: vec![Counted {
                rule: "rate".into(),
                spec: rate(),
                split: String::new(),
                weight: 1,
            }],
            confirmed: false,
            unchecked: Vec::new(),
        };
        assert_eq!(
            s.reserve(&hold).unwrap(),
            Reserved::Full {
                rule: "rate".into()
            }
        );
        forward(&s, &[key("alice")], &[("cap", cap())]);
        assert_eq!(count("cap", &cap()), 3, "the old streak grows");
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
