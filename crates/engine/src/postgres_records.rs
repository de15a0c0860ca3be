//! The records agents created, in PostgreSQL ([`PostgresRecords`]): the
//! [`RecordStore`] that replicas share, and a durable ledger the platform
//! can query ("which samples did agents create this week, for whom,
//! through which decision"); docs/records.md describes the table.
//!
//! **One thread** owns a small Tokio runtime and one `tokio-postgres`
//! connection, which pipelines the queries of concurrent callers. The
//! store's methods are synchronous (the engine decides without awaiting):
//! a caller hands its query to the thread and waits for the answer at
//! most [`PostgresOptions::timeout`], so it works from any thread, a
//! runtime's worker included. A full queue, a timeout, a lost connection:
//! each is an error, and the engine denies what needed the answer.
//!
//! **Reconnects** with a backoff ([`crate::remote::Backoff`]): after a
//! failed connect, queries fail at once until the next attempt is due,
//! naming the store (never its password).
//!
//! **Migrations** are versioned steps (`postgres_records/NNNN_*.sql`),
//! applied in order in one transaction under an advisory lock, so replicas
//! starting together apply each once; `warden_schema_migrations` says which
//! ran. A database with a step this warden does not know is refused.
//!
//! **First writer wins**, as in every record store: one `INSERT ... ON
//! CONFLICT DO NOTHING`, so two replicas cannot both "create" one record.

use crate::records::{NewRecord, RecordError, RecordStore};
use crate::remote::Backoff;
use std::collections::HashSet;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

/// The schema steps, in order: `MIGRATIONS[i]` is version `i + 1`.
/// Append only; never edit a released step.
pub const MIGRATIONS: &[&str] = &[include_str!("postgres_records/0001_records.sql")];

/// Any fixed number: the key of the advisory lock migrations take.
const MIGRATION_LOCK: i64 = 0x7761_7264_656e; // "warden"
const QUEUE: usize = 4096;

/// How a [`PostgresRecords`] talks to its server.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The most a connect or a query may take.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            timeout: Duration::from_secs(1),
        }
    }
}

enum Job {
    AgentCreated {
        server: String,
        kind: String,
        ids: Vec<String>,
        reply: std_mpsc::SyncSender<Result<HashSet<String>, String>>,
    },
    Insert {
        record: NewRecord,
        reply: std_mpsc::SyncSender<Result<bool, String>>,
    },
    Ping {
        reply: std_mpsc::SyncSender<Result<(), String>>,
    },
}

/// Records in PostgreSQL, shared by every replica on the same database.
pub struct PostgresRecords {
    jobs: mpsc::Sender<Job>,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRecords")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

impl PostgresRecords {
    /// A store on the database at `url` (`postgres://user:pass@host:port/db`).
    /// The URL is checked now; the server is first reached by the thread
    /// started here (a server that is down fails lookups, not the start).
    pub fn open(url: &str, options: PostgresOptions) -> Result<Self, RecordError> {
        let name = crate::remote::redacted(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| RecordError::Remote {
            store: name.clone(),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;
        config.connect_timeout(options.timeout);
        let (jobs, queue) = mpsc::channel(QUEUE);
        let timeout = options.timeout;
        std::thread::Builder::new()
            .name("warden-postgres".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                rt.block_on(serve(config, queue, timeout));
            })
            .map_err(|e| RecordError::Remote {
                store: name.clone(),
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(PostgresRecords {
            jobs,
            name,
            timeout,
        })
    }

    /// Whether `url` is a PostgreSQL URL warden can use (nothing is sent).
    /// The error never repeats the URL (it may carry a password).
    pub fn check_url(url: &str) -> Result<(), String> {
        url.parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The store as the operator named it, without credentials.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, message: String) -> RecordError {
        RecordError::Remote {
            store: self.name.clone(),
            message,
        }
    }

    /// Hands a job to the thread and waits for its answer.
    fn ask<T>(
        &self,
        job: impl FnOnce(std_mpsc::SyncSender<Result<T, String>>) -> Job,
    ) -> Result<T, RecordError> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.jobs.try_send(job(reply)).map_err(|e| {
            self.error(match e {
                mpsc::error::TrySendError::Full(_) => "too many queries waiting".into(),
                mpsc::error::TrySendError::Closed(_) => "its thread stopped".into(),
            })
        })?;
        // The thread bounds each query by the timeout too; a little more
        // here covers the hand-over.
        match answer.recv_timeout(self.timeout + Duration::from_millis(100)) {
            Ok(r) => r.map_err(|m| self.error(m)),
            Err(_) => Err(self.error(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }

    /// Whether the database answers now (`SELECT 1`), for `/readyz`.
    pub fn ping(&self) -> Result<(), RecordError> {
        self.ask(|reply| Job::Ping { reply })
    }
}

impl RecordStore for PostgresRecords {
    fn agent_created(
        &self,
        server: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        self.ask(|reply| Job::AgentCreated {
            server: server.to_string(),
            kind: kind.to_string(),
            ids: ids.to_vec(),
            reply,
        })
    }

    fn insert(&self, record: &NewRecord) -> Result<bool, RecordError> {
        self.ask(|reply| Job::Insert {
            record: record.clone(),
            reply,
        })
    }

    fn health(&self) -> Option<crate::state::StoreHealth> {
        Some(crate::state::StoreHealth {
            store: self.name.clone(),
            problem: self.ping().err().map(|e| e.to_string()),
        })
    }
}

/// The connection and when the next connect may be tried.
#[derive(Default)]
struct Link {
    client: Option<std::sync::Arc<Client>>,
    backoff: Backoff,
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, String> {
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(async move {
        // Ends when the connection breaks; the client then reports closed.
        let _ = connection.await;
    });
    migrate(&mut client)
        .await
        .map_err(|e| format!("cannot set up its tables: {e}"))?;
    Ok(client)
}

/// Applies the steps of [`MIGRATIONS`] the database lacks.
async fn migrate(client: &mut Client) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| e.to_string())?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS warden_schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| e.to_string())?;
    let at: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM warden_schema_migrations",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if at > known {
        return Err(format!(
            "the database is at schema version {at}, newer than this warden knows ({known}): run a newer warden"
        ));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        tx.batch_execute(step).await.map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO warden_schema_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// The thread's loop: each job runs on its own task over the shared
/// client, so slow queries do not hold up the others.
async fn serve(config: tokio_postgres::Config, mut queue: mpsc::Receiver<Job>, timeout: Duration) {
    let mut link = Link::default();
    while let Some(job) = queue.recv().await {
        let client = match client(&config, &mut link, timeout).await {
            Ok(c) => c,
            Err(why) => {
                fail(job, why);
                continue;
            }
        };
        tokio::spawn(run(job, client, timeout));
    }
}

/// The live client, connecting first if there is none and the backoff
/// allows.
async fn client(
    config: &tokio_postgres::Config,
    link: &mut Link,
    timeout: Duration,
) -> Result<std::sync::Arc<Client>, String> {
    if let Some(c) = &link.client {
        if !c.is_closed() {
            return Ok(std::sync::Arc::clone(c));
        }
        link.client = None;
    }
    if let Some(why) = link.backoff.refusal(Instant::now()) {
        return Err(why);
    }
    let made = match tokio::time::timeout(timeout * 3, connect(config)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "cannot connect within {} ms",
            (timeout * 3).as_millis()
        )),
    };
    match made {
        Ok(c) => {
            let c = std::sync::Arc::new(c);
            link.client = Some(std::sync::Arc::clone(&c));
            link.backoff.succeeded();
            Ok(c)
        }
        Err(why) => {
            link.backoff.failed(&why);
            Err(why)
        }
    }
}

fn fail(job: Job, why: String) {
    match job {
        Job::AgentCreated { reply, .. } => {
            let _ = reply.send(Err(why));
        }
        Job::Insert { reply, .. } => {
            let _ = reply.send(Err(why));
        }
        Job::Ping { reply } => {
            let _ = reply.send(Err(why));
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, query).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn run(job: Job, client: std::sync::Arc<Client>, timeout: Duration) {
    match job {
        Job::AgentCreated {
            server,
            kind,
            ids,
            reply,
        } => {
            let found = bounded(
                timeout,
                client.query(
                    "SELECT record_id FROM warden_records
                     WHERE server = $1 AND kind = $2 AND record_id = ANY($3) AND via_agent",
                    &[&server, &kind, &ids],
                ),
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect());
            let _ = reply.send(found);
        }
        Job::Insert { record: r, reply } => {
            let stored = bounded(
                timeout,
                client.execute(
                    "INSERT INTO warden_records
                         (server, kind, record_id, via_agent, agent, user_name, session_id,
                          created_at, decision_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint / 1000.0), $9)
                     ON CONFLICT (server, kind, record_id) DO NOTHING",
                    &[
                        &r.server,
                        &r.kind,
                        &r.id,
                        &r.via_agent,
                        &r.agent,
                        &r.user,
                        &r.session,
                        &r.created_at,
                        &r.decision,
                    ],
                ),
            )
            .await
            .map(|n| n == 1);
            let _ = reply.send(stored);
        }
        Job::Ping { reply } => {
            let _ = reply.send(bounded(timeout, client.batch_execute("SELECT 1")).await);
        }
    }
}
