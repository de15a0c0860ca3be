//! The group-commit writer as an operator (and a failing disk) would test
//! it: many concurrent callers each get `Ok` only once their line is in the
//! file (and synced, with fsync); a group that fails fails every caller in
//! it and the callers after it; a failed fsync stops the log for good; a
//! writer thread that panics fails its group and every later line; lines
//! stay whole and in order.

use super::super::{DecisionLog, LogError, LogOptions};
use super::Out;
use crate::call::CallContext;
use crate::engine::{Decided, Engine, EngineOptions};
use crate::index::PolicyBundle;
use serde_json::{Value, json};
use std::future::Future;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use warden_lang::{Sources, compile_policy_set};

fn engine() -> Engine {
    let mut s = Sources::new();
    s.add("t.policy", "default allow\n");
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    Engine::new(
        PolicyBundle::new(set, "v1".into()),
        EngineOptions::default(),
    )
}

fn call(n: usize) -> CallContext {
    CallContext {
        server: "files".into(),
        tool: "read_file".into(),
        arguments: json!({"n": n}),
        ..CallContext::default()
    }
}

/// What the sink saw, shared with the test.
#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    /// How much of `bytes` the last successful sync covered.
    synced: usize,
    writes: usize,
    syncs: usize,
    /// The threads `write` was called on.
    threads: Vec<std::thread::ThreadId>,
}

/// How the sink behaves, switchable while the log runs.
#[derive(Default)]
struct Behaviour {
    /// `write` waits while this is set (and says it is waiting).
    hold: bool,
    holding: bool,
    /// Bytes left on the disk: `write` takes that many, then fails.
    room: Option<usize>,
    fail_sync: bool,
    panic_in_write: bool,
}

#[derive(Clone, Default)]
struct Sink {
    seen: Arc<Mutex<Seen>>,
    how: Arc<(Mutex<Behaviour>, Condvar)>,
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8(self.seen.lock().unwrap().bytes.clone()).unwrap()
    }
    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.how.0.lock().unwrap());
        self.how.1.notify_all();
    }
    /// Waits until a `write` is held.
    fn wait_held(&self) {
        let (m, cv) = &*self.how;
        let mut b = m.lock().unwrap();
        while !b.holding {
            b = cv.wait_timeout(b, Duration::from_secs(10)).unwrap().0;
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (m, cv) = &*self.how;
        let mut b = m.lock().unwrap();
        while b.hold {
            b.holding = true;
            cv.notify_all();
            b = cv.wait(b).unwrap();
        }
        b.holding = false;
        if b.panic_in_write {
            drop(b);
            panic!("the disk driver fell over");
        }
        let mut seen = self.seen.lock().unwrap();
        seen.writes += 1;
        seen.threads.push(std::thread::current().id());
        let n = match &mut b.room {
            Some(0) => return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full")),
            Some(room) => {
                let n = (*room).min(buf.len());
                *room -= n;
                n
            }
            None => buf.len(),
        };
        seen.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Out for Sink {
    fn sync(&mut self) -> io::Result<()> {
        let b = self.how.0.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        seen.syncs += 1;
        if b.fail_sync {
            return Err(io::Error::other("EIO"));
        }
        seen.synced = seen.bytes.len();
        Ok(())
    }
}

fn log_over(sink: &Sink, fsync: bool) -> DecisionLog {
    DecisionLog::to_out(Box::new(sink.clone()), fsync, "(test sink)".into())
}

/// Waits until `n` lines wait for the writer thread.
fn wait_queued(log: &DecisionLog, n: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while log.out.queued() < n {
        assert!(Instant::now() < until, "only {} queued", log.out.queued());
        std::thread::yield_now();
    }
}

/// Polls a future once, without a runtime.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    f.as_mut_poll(&mut Context::from_waker(Waker::noop()))
}

trait PollExt: Future + Unpin {
    fn as_mut_poll(&mut self, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::pin::Pin::new(self).poll(cx)
    }
}
impl<F: Future + Unpin> PollExt for F {}

/// Runs a future to its end on this thread (parks until woken).
fn block_on<F: Future + Unpin>(mut f: F) -> F::Output {
    struct Unpark(std::thread::Thread, AtomicBool);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.store(true, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let w = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&w));
    loop {
        if let Poll::Ready(v) = f.as_mut_poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        while !w.1.swap(false, Ordering::SeqCst) {
            std::thread::park_timeout(Duration::from_secs(10));
        }
    }
}

fn decisions(e: &Engine, n: usize) -> Vec<(CallContext, Decided)> {
    (0..n)
        .map(|i| {
            let c = call(i);
            let d = e.decide(&c);
            (c, d)
        })
        .collect()
}

fn parsed_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

/// 32 threads, each writing decisions and outcomes to a real file: every
/// `Ok` comes only once the caller's line is in the file, every line is
/// whole, and each call's decision line comes before its outcome line.
fn concurrent_callers_on_a_file(fsync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let log = DecisionLog::open_with(
        &path,
        LogOptions {
            fsync,
            ..LogOptions::default()
        },
    )
    .unwrap();
    assert_eq!(log.fsyncs(), fsync);
    let e = engine();
    const THREADS: usize = 32;
    const CALLS: usize = 8;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (log, e, path) = (&log, &e, &path);
            s.spawn(move || {
                for i in 0..CALLS {
                    let c = call(t * 100 + i);
                    let d = e.decide(&c);
                    log.write_decision(&c, &d).unwrap();
                    let text = std::fs::read_to_string(path).unwrap();
                    let needle = format!("\"decision_id\":\"{}\"", d.id);
                    assert!(
                        text.lines()
                            .any(|l| l.contains(&needle) && l.ends_with('}')),
                        "Ok before the line of {} was in the file",
                        d.id
                    );
                    let up = super::super::UpstreamOutcome {
                        ok: true,
                        error: None,
                        duration_ms: 1,
                    };
                    log.write_outcome(&d, &up).unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = parsed_lines(&text);
    assert_eq!(lines.len(), THREADS * CALLS * 2);
    for (i, l) in lines.iter().enumerate() {
        if l["event"] == "outcome" {
            let id = &l["decision_id"];
            assert!(
                lines[..i]
                    .iter()
                    .any(|d| d["decision_id"] == *id && d["event"].is_null()),
                "the outcome of {id} came before its decision"
            );
        }
    }
}

#[test]
fn thirty_two_concurrent_callers_each_return_only_once_their_line_is_in_the_file() {
    concurrent_callers_on_a_file(false);
}

#[test]
fn thirty_two_concurrent_callers_with_fsync_each_return_only_once_their_line_is_in_the_file() {
    concurrent_callers_on_a_file(true);
}

#[test]
fn with_fsync_every_ok_comes_after_a_sync_that_covers_the_line_and_groups_share_syncs() {
    let sink = Sink::default();
    let log = log_over(&sink, true);
    let e = engine();
    std::thread::scope(|s| {
        for t in 0..16 {
            let (log, e, sink) = (&log, &e, &sink);
            s.spawn(move || {
                for i in 0..10 {
                    let c = call(t * 100 + i);
                    let d = e.decide(&c);
                    log.write_decision(&c, &d).unwrap();
                    let seen = sink.seen.lock().unwrap();
                    let synced = std::str::from_utf8(&seen.bytes[..seen.synced]).unwrap();
                    assert!(
                        synced.contains(&format!("\"decision_id\":\"{}\"", d.id)),
                        "Ok before the line of {} was synced",
                        d.id
                    );
                }
            });
        }
    });
    let seen = sink.seen.lock().unwrap();
    assert_eq!(parsed_lines(&sink_text(&seen)).len(), 160);
    // One sync per write: per group, never per line after the fact.
    assert_eq!(seen.syncs, seen.writes, "one fsync per group");
}

fn sink_text(seen: &Seen) -> String {
    String::from_utf8(seen.bytes.clone()).unwrap()
}

#[test]
fn without_fsync_nothing_is_synced_and_a_lone_caller_writes_on_its_own_thread() {
    let sink = Sink::default();
    let log = log_over(&sink, false);
    let e = engine();
    for (c, d) in decisions(&e, 3) {
        log.write_decision(&c, &d).unwrap();
    }
    let seen = sink.seen.lock().unwrap();
    assert_eq!(seen.syncs, 0);
    assert_eq!(seen.writes, 3);
    let me = std::thread::current().id();
    assert!(seen.threads.iter().all(|t| *t == me), "no hand-off");
}

#[test]
fn lines_queued_while_a_group_is_written_go_out_as_the_next_group_in_one_write_and_one_sync() {
    let sink = Sink::default();
    let log = log_over(&sink, true);
    let e = engine();
    let calls = decisions(&e, 11);
    sink.set(|b| b.hold = true);
    let mut first = log.commit_decision(&calls[0].0, &calls[0].1);
    sink.wait_held();
    let mut rest: Vec<_> = calls[1..]
        .iter()
        .map(|(c, d)| log.commit_decision(c, d))
        .collect();
    wait_queued(&log, 10);
    // Nobody is told `Ok` while the write is held.
    assert!(poll_once(&mut first).is_pending());
    assert!(rest.iter_mut().all(|c| poll_once(c).is_pending()));
    sink.set(|b| b.hold = false);
    assert!(block_on(first).is_ok());
    for c in rest {
        assert!(c.wait().is_ok());
    }
    let seen = sink.seen.lock().unwrap();
    assert_eq!(
        (seen.writes, seen.syncs),
        (2, 2),
        "two groups: 1 line, 10 lines"
    );
    let lines = parsed_lines(&sink_text(&seen));
    let ids: Vec<_> = lines.iter().map(|l| l["decision_id"].clone()).collect();
    let want: Vec<_> = calls.iter().map(|(_, d)| json!(d.id)).collect();
    assert_eq!(ids, want, "in the order handed over");
}

#[test]
fn a_write_that_fails_mid_group_fails_every_caller_of_the_group_and_those_after_it() {
    let sink = Sink::default();
    let log = log_over(&sink, false);
    let e = engine();
    let calls = decisions(&e, 9);
    // The line as written: `seq` and `prev` spliced in first, a newline.
    let chain_fields = format!("\"seq\":0,\"prev\":\"{}\",", "0".repeat(64)).len();
    let first_len = log.line(&calls[0].0, &calls[0].1, None).unwrap().len() + chain_fields + 1;
    // The first caller writes inline and is held; eight queue behind it
    // and go out as one group, which fills the disk 100 bytes in.
    sink.set(|b| b.hold = true);
    std::thread::scope(|s| {
        let first = s.spawn(|| log.write_decision(&calls[0].0, &calls[0].1));
        sink.wait_held();
        let rest: Vec<_> = calls[1..]
            .iter()
            .map(|(c, d)| log.commit_decision(c, d))
            .collect();
        wait_queued(&log, 8);
        sink.set(|b| {
            b.hold = false;
            b.room = Some(first_len + 100);
        });
        assert!(first.join().unwrap().is_ok(), "the first line fit");
        for c in rest {
            let err = c.wait().expect_err("a caller of the failed group got Ok");
            assert!(matches!(err, LogError::Write { .. }), "{err:?}");
            assert!(err.to_string().contains("disk full"), "{err}");
        }
    });
    assert_eq!(sink.seen.lock().unwrap().bytes.len(), first_len + 100);
    // While the disk stays full, every later caller is told too.
    for (c, d) in decisions(&e, 3) {
        assert!(log.write_decision(&c, &d).is_err());
    }
    // Once it has room again, lines are whole again (after a newline).
    sink.set(|b| b.room = None);
    let (c, d) = &decisions(&e, 1)[0];
    log.write_decision(c, d).unwrap();
    let text = sink.text();
    let mut lines = text.lines();
    let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(first["decision_id"], calls[0].1.id.as_str());
    assert_eq!(lines.next().map(str::len), Some(100), "the torn part");
    let last: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(last["decision_id"], d.id.as_str());
    assert_eq!(lines.next(), None);
    // The chain goes on after the last line that made it out whole: the
    // torn part's seq is taken again, after the first line.
    assert_eq!(last["seq"], 1);
    let first_line = text.lines().next().unwrap();
    let want = super::super::chain::hex(&super::super::chain::line_hash(first_line.as_bytes()));
    assert_eq!(last["prev"], want.as_str());
}

#[test]
fn a_failed_fsync_fails_its_group_and_stops_the_log_for_good() {
    let sink = Sink::default();
    let log = log_over(&sink, true);
    let e = engine();
    let calls = decisions(&e, 6);
    sink.set(|b| b.hold = true);
    let first = log.commit_decision(&calls[0].0, &calls[0].1);
    sink.wait_held();
    let rest: Vec<_> = calls[1..]
        .iter()
        .map(|(c, d)| log.commit_decision(c, d))
        .collect();
    wait_queued(&log, 5);
    sink.set(|b| {
        b.hold = false;
        b.fail_sync = true;
    });
    let err = first.wait().expect_err("Ok without a sync");
    assert!(err.to_string().contains("fsync failed"), "{err}");
    for c in rest {
        assert!(c.wait().is_err(), "a caller of the unsynced group got Ok");
    }
    // The disk recovers; the log does not pretend it did.
    sink.set(|b| b.fail_sync = false);
    let writes = sink.seen.lock().unwrap().writes;
    for (c, d) in decisions(&e, 3) {
        let err = log.write_decision(&c, &d).unwrap_err();
        assert!(err.to_string().contains("restarted"), "{err}");
    }
    assert_eq!(
        sink.seen.lock().unwrap().writes,
        writes,
        "nothing more written"
    );
}

#[test]
fn a_writer_thread_that_panics_fails_its_group_and_every_later_line() {
    let sink = Sink::default();
    let log = log_over(&sink, true);
    let e = engine();
    let calls = decisions(&e, 4);
    sink.set(|b| {
        b.hold = true;
        b.panic_in_write = true;
    });
    let first = log.commit_decision(&calls[0].0, &calls[0].1);
    sink.wait_held();
    let rest: Vec<_> = calls[1..]
        .iter()
        .map(|(c, d)| log.commit_decision(c, d))
        .collect();
    wait_queued(&log, 3);
    sink.set(|b| b.hold = false);
    let err = first.wait().expect_err("a dead writer said Ok");
    assert!(err.to_string().contains("writer thread stopped"), "{err}");
    for c in rest {
        assert!(
            c.wait().is_err(),
            "a line queued behind a dead writer got Ok"
        );
    }
    sink.set(|b| b.panic_in_write = false);
    for (c, d) in decisions(&e, 2) {
        let err = log.write_decision(&c, &d).unwrap_err();
        assert!(err.to_string().contains("writer thread stopped"), "{err}");
    }
}

#[test]
fn a_dropped_log_writes_what_was_queued_before_it_stops() {
    let sink = Sink::default();
    let log = log_over(&sink, true);
    let e = engine();
    let commits: Vec<_> = decisions(&e, 20)
        .iter()
        .map(|(c, d)| log.commit_decision(c, d))
        .collect();
    drop(log);
    for c in commits {
        assert!(c.is_ready());
        assert!(c.wait().is_ok());
    }
    assert_eq!(parsed_lines(&sink.text()).len(), 20);
}

#[test]
fn finding_17_a_full_disk_fails_the_write_ahead_line_with_fsync_too() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let log = DecisionLog::open_with(
        std::path::Path::new("/dev/full"),
        LogOptions {
            fsync: true,
            ..LogOptions::default()
        },
    )
    .unwrap();
    let e = engine();
    for (c, d) in decisions(&e, 3) {
        let err = log.write_decision(&c, &d).unwrap_err();
        assert!(matches!(err, LogError::Write { .. }), "{err:?}");
    }
}
