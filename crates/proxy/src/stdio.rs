//! The process's stdin and stdout for the stdio transport, read and
//! written on the runtime's own reactor when they are pipes or sockets.
//!
//! tokio's `stdin()` and `stdout()` do every read and write as a blocking
//! call on a thread of its blocking pool, so each message to or from the
//! client crossed threads twice (a hand-off to the pool thread and a wake-up
//! back), on top of the pipe itself. A pipe or a socket can be put in
//! non-blocking mode and registered with the reactor like the upstream's
//! pipes are, so a message is read or written on the runtime's thread.
//!
//! Non-blocking mode belongs to the open file, which other processes may
//! share: stdout is left to tokio's blocking writer when stderr is the same
//! pipe or socket (`2>&1`: warden's and the upstream's log writes on stderr
//! expect a blocking file), and anything that is no pipe or socket (a
//! terminal, a file) is too.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// The client's input: stdin.
pub(crate) type Input = Pin<Box<dyn AsyncRead + Send>>;
/// The client's output: stdout.
pub(crate) type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// What kind of file a descriptor is, and which.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Kind {
    Pipe,
    Socket,
    Other,
}

/// The kind of `fd` and its (device, inode).
fn kind_of(fd: &OwnedFd) -> io::Result<(Kind, (u64, u64))> {
    let meta = File::from(fd.try_clone()?).metadata()?;
    let kind = if meta.file_type().is_fifo() {
        Kind::Pipe
    } else if meta.file_type().is_socket() {
        Kind::Socket
    } else {
        Kind::Other
    };
    Ok((kind, (meta.dev(), meta.ino())))
}

/// stdin, on the reactor when it is a pipe or socket. Must be called
/// within the runtime.
pub(crate) fn stdin() -> Input {
    match reactor_input() {
        Ok(Some(input)) => input,
        Ok(None) => Box::pin(tokio::io::stdin()),
        Err(e) => {
            tracing::debug!("stdin stays on the blocking pool: {e}");
            Box::pin(tokio::io::stdin())
        }
    }
}

fn reactor_input() -> io::Result<Option<Input>> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    Ok(match kind_of(&fd)?.0 {
        Kind::Pipe => Some(Box::pin(tokio::net::unix::pipe::Receiver::from_owned_fd(
            fd,
        )?)),
        Kind::Socket => Some(Box::pin(socket(fd)?)),
        Kind::Other => None,
    })
}

/// stdout, on the reactor when it is a pipe or socket that stderr is not.
/// Must be called within the runtime.
pub(crate) fn stdout() -> Output {
    match reactor_output() {
        Ok(Some(output)) => output,
        Ok(None) => Box::pin(tokio::io::stdout()),
        Err(e) => {
            tracing::debug!("stdout stays on the blocking pool: {e}");
            Box::pin(tokio::io::stdout())
        }
    }
}

fn reactor_output() -> io::Result<Option<Output>> {
    let fd = io::stdout().as_fd().try_clone_to_owned()?;
    let (kind, id) = kind_of(&fd)?;
    if kind == Kind::Other {
        return Ok(None);
    }
    // stderr on the same pipe or socket: its writers expect blocking mode.
    let shared_with_stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|e| kind_of(&e))
        .map_or(true, |(_, err_id)| err_id == id);
    if shared_with_stderr {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Pipe => Box::pin(tokio::net::unix::pipe::Sender::from_owned_fd(fd)?),
        _ => Box::pin(socket(fd)?),
    }))
}

/// A stream socket on the reactor.
fn socket(fd: OwnedFd) -> io::Result<tokio::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::from(fd);
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        let (r, _w) = std::io::pipe().expect("a pipe");
        let fd = OwnedFd::from(r);
        assert_eq!(kind_of(&fd).expect("fstat").0, Kind::Pipe);
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        assert_eq!(kind_of(&OwnedFd::from(a)).expect("fstat").0, Kind::Socket);
        let f = tempfile::tempfile().expect("a file");
        assert_eq!(kind_of(&OwnedFd::from(f)).expect("fstat").0, Kind::Other);
    }
}
