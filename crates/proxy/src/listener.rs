//! The Streamable HTTP listener's own defences, below MCP and below bearer
//! authentication: how long a connection may take to send its request
//! headers and its body, and how many connections are served at once.
//!
//! Without these, a client that opens connections and never finishes its
//! headers holds a file descriptor and a task each for as long as it likes:
//! a few hundred such connections exhaust the process's descriptors
//! (`accept error: Too many open files`) and lock every real client out,
//! before a token is ever looked at.
//!
//! - Headers: hyper's `header_read_timeout` ([`ListenLimits::header_read`],
//!   `--header-read-timeout`); a connection that has not sent a whole
//!   request head in time is closed. It also applies to an idle keep-alive
//!   connection waiting for its next request. The first request's head is
//!   due that long after the accept, whatever hyper's timer says, so behind
//!   TLS the handshake counts against it: a client that connects and never
//!   handshakes, or handshakes slowly and then dawdles, is closed in time.
//! - TLS ([`serve_with_tls`], config from [`crate::tls`]): each connection
//!   does its handshake in its own task; one that fails (plain HTTP sent
//!   to the TLS port, an unknown protocol) closes that connection only.
//! - Body: the POST handler reads a body within
//!   [`ListenLimits::body_read`] (`--body-read-timeout`), else answers 408.
//! - Connections: at most [`ListenLimits::max_connections`]
//!   (`--max-connections`) are served at once. At the limit warden stops
//!   accepting; new connections wait in the kernel's backlog until a served
//!   one ends (by the timeouts above, if it is a slow one), so a real client
//!   is delayed by at most about one header timeout per full round of slow
//!   connections, never locked out. The limit stays far below the usual
//!   descriptor limit, which leaves descriptors for upstream processes and
//!   the state file; an accept error (such as running out of descriptors
//!   anyway) is logged and retried after a pause instead of spinning.

use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Default time a client has to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a request's body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Pause after a failed accept (the error is usually a lack of
/// descriptors, which only a closing connection cures).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The listener's limits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// A connection that has not sent a whole request head within this is
    /// closed.
    pub header_read: Duration,
    /// A request whose body has not arrived within this is answered 408.
    pub body_read: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ListenLimits {
    fn default() -> Self {
        ListenLimits {
            header_read: DEFAULT_HEADER_READ_TIMEOUT,
            body_read: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Accepts and serves connections with `app` until `stop` is cancelled;
/// then asks every open connection to end after its current exchange and
/// returns them, for the caller to wait on once it has ended its sessions
/// (whose open streams would otherwise keep connections alive).
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ListenLimits,
    stop: CancellationToken,
) -> JoinSet<()> {
    serve_with_tls(listener, app, limits, None, stop).await
}

/// [`serve`], over TLS when `tls` is given (see [`crate::tls`]): each
/// accepted connection does its handshake first, within the header-read
/// timeout. A failed or timed-out handshake closes that connection only
/// (logged at debug); the listener goes on.
///
/// The accept loop runs as a task of its own, on a worker thread: awaited
/// where it is called (inside `block_on`, on the process's main thread),
/// every accepted connection would wake the main thread and then, to
/// spawn the connection's task, a worker: two hand-offs between threads
/// per connection, and a client that opens a connection per request (the
/// rmcp client does) pays them on every call. Spawned from a worker, a
/// connection's task starts on the same thread.
pub async fn serve_with_tls(
    listener: TcpListener,
    app: axum::Router,
    limits: ListenLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let mut accepting = AbortOnDrop(tokio::spawn(accept_loop(listener, app, limits, tls, stop)));
    match (&mut accepting.0).await {
        Ok(conns) => conns,
        Err(e) => {
            tracing::error!("the accept loop ended: {e}");
            JoinSet::new()
        }
    }
}

/// Aborts the task when dropped: the accept loop goes when its caller does.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts and serves connections until `stop` (see [`serve_with_tls`]).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: ListenLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("accept error: {e}; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        // Without TCP_NODELAY a stream's small last write (an SSE event,
        // the chunked terminator) waits for the peer's delayed ACK: ~40 ms
        // a call.
        let _ = tcp.set_nodelay(true);
        // The first request head is due this long after the accept, the
        // handshake included (hyper's own timer starts only once it reads,
        // which behind TLS is after the handshake).
        let head_due = Instant::now() + limits.header_read;
        let app = app.clone();
        let stop = stop.clone();
        let header_read = limits.header_read;
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(TokioIo::new(tcp), app, header_read, head_due, stop).await,
                Some(acceptor) => {
                    let tls = tokio::select! {
                        r = tokio::time::timeout_at(head_due, acceptor.accept(tcp)) => match r {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!("TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake not done within the header-read timeout");
                                return;
                            }
                        },
                        () = stop.cancelled() => return,
                    };
                    serve_connection(TokioIo::new(tls), app, header_read, head_due, stop).await;
                }
            }
        });
    }
    conns
}

/// Serves HTTP/1.1 on one connection until it ends, or is closed because
/// its first request head has not arrived by `head_due`; on `stop`, ends
/// it after its current exchange.
async fn serve_connection<I>(
    io: I,
    app: axum::Router,
    header_read: Duration,
    head_due: Instant,
    stop: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Hyper calls the service once a request head is complete: the sign
    // that the first head arrived in time.
    let head_seen = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&head_seen);
    let app = hyper_util::service::TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        hyper::service::Service::call(&app, req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    let mut watching_head = true;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(head_due), if watching_head => {
                if !head_seen.load(Ordering::Relaxed) {
                    tracing::debug!("connection closed: no request head within the header-read timeout");
                    break;
                }
                watching_head = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ListenLimits {
        ListenLimits::default()
    }

    fn app() -> axum::Router {
        axum::Router::new().route("/", axum::routing::get(|| async { "ok" }))
    }

    /// A GET of `/` on `port`, read to its end.
    async fn get(port: u16) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        s.read_to_end(&mut Vec::new()).await.map(drop)
    }

    /// Dropping the future that serves (its caller gave up on it) stops
    /// the accept loop: the port no longer takes connections.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_accept_loop_ends_with_its_caller() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serving = tokio::spawn(serve(listener, app(), limits(), CancellationToken::new()));
        assert!(get(port).await.is_ok(), "served while running");
        serving.abort();
        let _ = serving.await;
        let mut refused = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the listener outlived the future that served it");
    }
}
