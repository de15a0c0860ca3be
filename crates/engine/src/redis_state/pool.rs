//! The connections of a [`super::RedisState`]: a few idle ones reused,
//! each with connect, read and write timeouts and `TCP_NODELAY`; a broken
//! one dropped; new ones made with a backoff after a failed connect
//! ([`crate::remote::Backoff`]); and the store's name for messages,
//! without credentials.

use crate::remote::{Backoff, redacted};
use crate::state::{StateError, StoreHealth};
use redis::{Client, Connection, IntoConnectionInfo, RedisError, RedisResult};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most idle connections kept (about one per worker thread calling).
const MAX_IDLE: usize = 16;

pub(super) struct Pool {
    client: Client,
    name: String,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    backoff: Mutex<Backoff>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The connection broke (or never came): it is dropped, and a step that
/// may be repeated is tried once more on a new one.
fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

impl Pool {
    pub(super) fn new(url: &str, timeout: Duration) -> Result<Self, StateError> {
        let name = redacted(url);
        let info = url
            .into_connection_info()
            .map_err(|e| StateError::Remote {
                store: name.clone(),
                message: e.to_string(),
            })?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = Client::open(info).map_err(|e| StateError::Remote {
            store: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Pool {
            client,
            name,
            timeout,
            idle: Mutex::new(Vec::new()),
            backoff: Mutex::new(Backoff::default()),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn error(&self, message: String) -> StateError {
        StateError::Remote {
            store: self.name.clone(),
            message,
        }
    }

    /// A new connection, unless the last connect failed less than a
    /// backoff step ago.
    fn connect(&self) -> Result<Connection, StateError> {
        if let Some(why) = lock(&self.backoff).refusal(Instant::now()) {
            return Err(self.error(why));
        }
        let made = self
            .client
            .get_connection_with_timeout(self.timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(c)
            });
        let mut b = lock(&self.backoff);
        match made {
            Ok(c) => {
                b.succeeded();
                Ok(c)
            }
            Err(e) => {
                let why = format!("cannot connect: {e}");
                b.failed(&why);
                Err(self.error(why))
            }
        }
    }

    /// Runs `step` on a connection. When the connection breaks, every idle
    /// one is dropped too (the server went away or restarted: they are
    /// all dead), and with `retry` a step that ran on a reused connection
    /// runs once more on a new one.
    pub(super) fn run<T>(
        &self,
        retry: bool,
        mut step: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StateError> {
        let reused = lock(&self.idle).pop();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect()?,
        };
        match step(&mut conn) {
            Ok(v) => {
                self.put_back(conn);
                Ok(v)
            }
            Err(e) if broken(&e) => {
                lock(&self.idle).clear();
                if !(retry && was_reused) {
                    return Err(self.error(e.to_string()));
                }
                let mut conn = self.connect()?;
                match step(&mut conn) {
                    Ok(v) => {
                        self.put_back(conn);
                        Ok(v)
                    }
                    Err(e) => {
                        if !broken(&e) {
                            self.put_back(conn);
                        }
                        Err(self.error(e.to_string()))
                    }
                }
            }
            Err(e) => {
                self.put_back(conn);
                Err(self.error(e.to_string()))
            }
        }
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    pub(super) fn health(&self) -> StoreHealth {
        let problem = self
            .run(true, |c| redis::cmd("PING").query::<String>(c))
            .err()
            .map(|e| e.to_string());
        StoreHealth {
            store: self.name.clone(),
            problem,
        }
    }
}
