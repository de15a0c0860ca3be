//! The decision log's one writer, with group commit. Callers hand it whole
//! lines; it writes every line queued at that moment in one `write(2)`
//! (one buffer, `write_all`), then, when the log is configured to, one
//! `fdatasync` for the group, and only then completes each caller of the
//! group with the group's result. A failure (a write or fsync error, a
//! writer that panicked or could not start) is every such caller's error.
//!
//! The sink is behind a lock, so one writer writes at a time, lines are
//! never interleaved, and lines come out in the order they were handed
//! over. Without fsync a caller that finds nothing queued and the sink free
//! writes its own line at once, on its own thread, as one group of one (a
//! lone caller pays no hand-off to the writer thread: page-cache writes take
//! microseconds); everyone else queues for the writer thread, which takes
//! what piled up while the sink was busy as its next group. With fsync
//! every line goes through the writer thread, so that a `fdatasync` covers
//! all the callers waiting at that moment.
//!
//! A failed write may leave half a line at the end of the file: the next
//! group starts with a newline so that its lines parse (`torn`). A failed
//! fsync stops the log for good (`broken`): after one, Linux may have
//! dropped the unwritten pages and reports the error once, so no later
//! fsync proves the earlier lines are on disk; the process must restart.

use super::LogError;
use super::chain::{ChainState, CheckpointSigner};
use super::rotate::FileTarget;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

/// Where lines go, and how they are made durable.
pub(crate) trait Out: Write + Send {
    /// Makes what was written durable (`fdatasync` for a file).
    fn sync(&mut self) -> io::Result<()>;
}

impl Out for std::fs::File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// Any writer, with nothing to make durable (stderr, a socket, a buffer).
pub(crate) struct Plain<W>(pub(crate) W);

impl<W: Write + Send> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Out for Plain<W> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer: the sink, the queue and the thread that drains it.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a line is queued or the writer is to stop.
    more: Condvar,
    sink: Mutex<Sink>,
    fsync: bool,
    /// The file's path, or "(writer)", for error messages.
    target: String,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    stop: bool,
    /// The writer thread is gone (it panicked or never started): every
    /// line from now on is refused with this.
    dead: Option<String>,
}

struct Entry {
    line: Vec<u8>,
    slot: Arc<Slot>,
}

struct Sink {
    out: Box<dyn Out>,
    /// The last write failed, perhaps halfway through a line.
    torn: bool,
    /// An fsync failed: nothing written since can be shown to be durable.
    broken: Option<String>,
    /// The group being written, reused between groups.
    buf: Vec<u8>,
    /// Where the hash chain stands (`log::chain`): after the last line
    /// written whole.
    chain: ChainState,
    /// Per line of the group being written: where it ends in `buf` and
    /// the chain after it, so that a write that stops halfway leaves the
    /// chain after the last line that made it out whole.
    staged: Vec<(usize, ChainState)>,
    /// Signed checkpoints, when warden has a key.
    seal: Option<Seal>,
    /// The file, when the log is one: its size and rotation.
    file: Option<FileTarget>,
    /// The file rotated away from, until the new file's first line (which
    /// names it) is written.
    continues: Option<String>,
}

/// Checkpoints: who signs them and every how many lines.
pub(crate) struct Seal {
    pub(crate) signer: Arc<dyn CheckpointSigner>,
    pub(crate) every: u64,
}

/// What a writer starts from.
pub(crate) struct SinkSetup {
    pub(crate) out: Box<dyn Out>,
    pub(crate) chain: ChainState,
    /// The file already ends in half a line.
    pub(crate) torn: bool,
    pub(crate) file: Option<FileTarget>,
}

impl Sink {
    /// Writes `lines` (whole JSON objects, without newlines) as one
    /// group: rotating the file first when it is due, chaining each line,
    /// adding a checkpoint when one is due, in one buffer, flushed, and
    /// synced when `fsync`.
    fn commit(&mut self, lines: &[&[u8]], fsync: bool) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        if self.file.as_ref().is_some_and(FileTarget::due) {
            self.rotate(fsync)?;
        }
        let due = self
            .seal
            .as_ref()
            .is_some_and(|s| self.chain.since_checkpoint + lines.len() as u64 >= s.every);
        self.write_group(lines, fsync, due)
    }

    /// Seals the old file with a checkpoint (so that its end is signed),
    /// then moves to a new one; the next group starts with a line naming
    /// the old file.
    fn rotate(&mut self, fsync: bool) -> Result<(), String> {
        if self.seal.is_some() && self.chain.since_checkpoint > 0 {
            self.write_group(&[], fsync, true)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let (new, rotated) = file
            .rotate()
            .map_err(|e| format!("cannot rotate the file ({e})"))?;
        self.out = Box::new(new);
        self.torn = false;
        self.continues = Some(rotated);
        Ok(())
    }

    /// A checkpoint for what was written since the last one (the log is
    /// closing).
    fn seal_now(&mut self, fsync: bool) -> Result<(), String> {
        let pending = self.chain.since_checkpoint > 0 || self.continues.is_some();
        if self.seal.is_none() || !pending || self.broken.is_some() {
            return Ok(());
        }
        self.write_group(&[], fsync, true)
    }

    fn write_group(
        &mut self,
        lines: &[&[u8]],
        fsync: bool,
        checkpoint: bool,
    ) -> Result<(), String> {
        let before = self.chain;
        self.buf.clear();
        self.staged.clear();
        // After a failed write the file may end in half a line; start
        // afresh so that this group's lines at least parse.
        if self.torn {
            self.buf.push(b'\n');
        }
        let mut header_end = None;
        if let Some(previous) = &self.continues {
            let header = serde_json::json!({
                "time": super::rfc3339(std::time::SystemTime::now()),
                "event": "rotated",
                "previous_file": previous,
            });
            self.chain
                .append(header.to_string().as_bytes(), &mut self.buf);
            self.staged.push((self.buf.len(), self.chain));
            header_end = Some(self.buf.len());
        }
        for line in lines {
            self.chain.append(line, &mut self.buf);
            self.staged.push((self.buf.len(), self.chain));
        }
        if checkpoint && let Some(seal) = &self.seal {
            if let Err(e) = self.chain.append_checkpoint(&*seal.signer, &mut self.buf) {
                self.chain = before;
                return Err(format!("cannot sign a checkpoint ({e})"));
            }
            self.staged.push((self.buf.len(), self.chain));
        }
        // Set before writing so that a panicking writer leaves it set too.
        self.torn = true;
        let (written, result) = write_counting(&mut *self.out, &self.buf);
        if let Some(file) = self.file.as_mut() {
            file.wrote(written);
        }
        self.chain = self
            .staged
            .iter()
            .rev()
            .find(|(end, _)| *end <= written)
            .map_or(before, |(_, chain)| *chain);
        if header_end.is_some_and(|end| end <= written) {
            self.continues = None;
        }
        // A failed flush leaves whole lines behind (or none), not a torn one.
        self.torn = result.is_err();
        result
            .and_then(|()| self.out.flush())
            .map_err(|e| e.to_string())?;
        if fsync && let Err(e) = self.out.sync() {
            let why = format!(
                "fsync failed ({e}); the lines before it may not be on disk, so warden records nothing more until it is restarted"
            );
            self.broken = Some(why.clone());
            return Err(why);
        }
        Ok(())
    }
}

/// `write_all` that also says how many bytes went out before an error.
fn write_counting(out: &mut dyn Out, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < buf.len() {
        match out.write(&buf[written..]) {
            Ok(0) => {
                return (
                    written,
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the log took no more bytes",
                    )),
                );
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

/// Where one queued line's caller waits for its group's result.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<(), LogError>>,
    waker: Option<Waker>,
}

impl Slot {
    fn complete(&self, result: Result<(), LogError>) {
        let mut st = lock(&self.state);
        if st.result.is_none() {
            st.result = Some(result);
        }
        let waker = st.waker.take();
        drop(st);
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A line handed to the log: its result once its group is written (and
/// synced, if configured). Wait for it ([`Commit::wait`], blocking) or
/// await it (it is a future; awaiting does not block the thread).
#[must_use = "a line is only known to be logged once its commit says so"]
pub struct Commit(CommitState);

enum CommitState {
    Ready(Option<Result<(), LogError>>),
    Queued(Arc<Slot>),
}

impl Commit {
    pub(crate) fn ready(result: Result<(), LogError>) -> Self {
        Commit(CommitState::Ready(Some(result)))
    }

    /// Blocks until the line's group is written (and synced).
    pub fn wait(self) -> Result<(), LogError> {
        match self.0 {
            CommitState::Ready(r) => r.unwrap_or(Ok(())),
            CommitState::Queued(slot) => {
                let mut st = lock(&slot.state);
                loop {
                    if let Some(r) = st.result.take() {
                        return r;
                    }
                    st = slot.done.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Whether the result is already known (the line was written inline).
    pub fn is_ready(&self) -> bool {
        match &self.0 {
            CommitState::Ready(_) => true,
            CommitState::Queued(slot) => lock(&slot.state).result.is_some(),
        }
    }
}

impl Future for Commit {
    type Output = Result<(), LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            CommitState::Ready(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
            CommitState::Queued(slot) => {
                let mut st = lock(&slot.state);
                match st.result.take() {
                    Some(r) => Poll::Ready(r),
                    None => {
                        st.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl Writer {
    /// A writer over `out`, its thread started; `target` names it in errors.
    pub(crate) fn start(setup: SinkSetup, fsync: bool, target: String) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            more: Condvar::new(),
            sink: Mutex::new(Sink {
                out: setup.out,
                torn: setup.torn,
                broken: None,
                buf: Vec::new(),
                chain: setup.chain,
                staged: Vec::new(),
                seal: None,
                file: setup.file,
                continues: None,
            }),
            fsync,
            target,
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("warden-decision-log".into())
            .spawn(move || run(&for_thread));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                lock(&shared.queue).dead = Some(format!(
                    "the decision log's writer thread did not start ({e})"
                ));
                None
            }
        };
        Writer { shared, thread }
    }

    pub(crate) fn target(&self) -> &str {
        &self.shared.target
    }

    pub(crate) fn fsyncs(&self) -> bool {
        self.shared.fsync
    }

    /// Checkpoints signed by `seal`'s signer from now on.
    pub(crate) fn set_seal(&self, seal: Seal) {
        lock(&self.shared.sink).seal = Some(seal);
    }

    /// Hands over one line (one JSON object, without its newline).
    pub(crate) fn submit(&self, line: String) -> Commit {
        let line = line.into_bytes();
        let mut q = lock(&self.shared.queue);
        if let Some(why) = &q.dead {
            return Commit::ready(Err(self.shared.error(why.clone())));
        }
        if !self.shared.fsync && q.entries.is_empty() {
            let sink = match self.shared.sink.try_lock() {
                Ok(s) => Some(s),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut sink) = sink {
                drop(q);
                let result = sink.commit(&[&line], false);
                return Commit::ready(result.map_err(|m| self.shared.error(m)));
            }
        }
        let slot = Arc::new(Slot::default());
        q.entries.push(Entry {
            line,
            slot: Arc::clone(&slot),
        });
        drop(q);
        self.shared.more.notify_one();
        Commit(CommitState::Queued(slot))
    }

    /// How many lines wait for the writer thread (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        lock(&self.shared.queue).entries.len()
    }
}

impl Drop for Writer {
    /// Lets the thread write what is queued, then stop, and seals what
    /// was written with a last checkpoint. Nothing is left to report a
    /// failure to: a log that ends without its checkpoint shows it.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.more.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = lock(&self.shared.sink).seal_now(self.shared.fsync);
    }
}

impl Shared {
    fn error(&self, message: String) -> LogError {
        LogError::Write {
            target: self.target.clone(),
            message,
        }
    }
}

/// The writer thread. A panic (in a writer's `write`, say) fails the group
/// being written, and every line after it.
fn run(shared: &Shared) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drain(shared)));
    if ran.is_err() {
        let why = "the decision log's writer thread stopped".to_string();
        let mut q = lock(&shared.queue);
        q.dead = Some(why.clone());
        let left = std::mem::take(&mut q.entries);
        drop(q);
        for e in left {
            e.slot.complete(Err(shared.error(why.clone())));
        }
    }
}

/// The callers of the group being written: whoever is left uncompleted
/// when the group is dropped (a panic mid-write) gets an error.
struct Group<'a> {
    entries: Vec<Entry>,
    shared: &'a Shared,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        for e in self.entries.drain(..) {
            e.slot.complete(Err(self
                .shared
                .error("the decision log's writer thread stopped".into())));
        }
    }
}

fn drain(shared: &Shared) {
    loop {
        {
            let mut q = lock(&shared.queue);
            while q.entries.is_empty() {
                if q.stop {
                    return;
                }
                q = shared.more.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        }
        // Take the sink first, then the queue: what piled up while an
        // inline writer held the sink joins this group.
        let mut sink = lock(&shared.sink);
        let mut group = Group {
            entries: std::mem::take(&mut lock(&shared.queue).entries),
            shared,
        };
        let lines: Vec<&[u8]> = group.entries.iter().map(|e| e.line.as_slice()).collect();
        let result = sink
            .commit(&lines, shared.fsync)
            .map_err(|m| shared.error(m));
        drop(sink);
        for e in group.entries.drain(..) {
            e.slot.complete(result.clone());
        }
    }
}

/// A panic elsewhere leaves the lock usable: every state it guards is
/// valid between statements (`torn` covers a half-written line).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
