//! Server-sent events: the framing of one event, a request's SSE stream
//! (priming event, keep-alive comments, ends with the response), the
//! session's GET stream, and the replay ring that keeps a resumable
//! stream's recent events for `Last-Event-ID` (SEP-1699).

use super::post::Withdraw;
use super::routes::PostStream;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// One message for a request's stream.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) text: String,
    /// A response, which ends the stream.
    pub(super) response: bool,
    /// HTTP status to answer with when the response is the only
    /// message: the upstream's, or derived from the error for a 2026-07-28
    /// request whose upstream is no HTTP server.
    pub(super) status: Option<u16>,
    /// The SSE event id (resumable streams).
    pub(super) event_id: Option<String>,
}

/// How long a client should wait before resuming a stream (`retry:`).
const SSE_RETRY: Duration = Duration::from_millis(1000);
/// Events kept per resumable stream, and streams kept per session.
const REPLAY_EVENTS: usize = 64;
const REPLAY_STREAMS: usize = 64;
/// How often an idle SSE stream gets a comment, so intermediaries keep it.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a resumable stream sent, for a client resuming it with
/// `Last-Event-ID` (`<stream>-<n>`, n counting from 1; 0 is the priming
/// event): (n, text, whether it was the response).
#[derive(Default)]
pub(super) struct Replay {
    pub(super) events: VecDeque<(u64, String, bool)>,
}

/// Numbers one event of a resumable stream and keeps it for resumption;
/// its event id, or `None` for a stream that is not resumable.
pub(super) fn stamp(
    replay: &mut HashMap<u64, Replay>,
    order: &mut VecDeque<u64>,
    p: &mut PostStream,
    text: &str,
    response: bool,
) -> Option<String> {
    if !p.resumable {
        return None;
    }
    p.events += 1;
    let r = replay.entry(p.seq).or_insert_with(|| {
        order.push_back(p.seq);
        Replay::default()
    });
    if r.events.len() >= REPLAY_EVENTS {
        r.events.pop_front();
    }
    r.events.push_back((p.events, text.to_string(), response));
    while order.len() > REPLAY_STREAMS {
        if let Some(old) = order.pop_front() {
            replay.remove(&old);
        }
    }
    Some(format!("{}-{}", p.seq, p.events))
}

/// Counts one POST request while it is being answered: from the handler's
/// start until its answer is complete (for an SSE answer, until the stream
/// ends), so that a drain can wait for calls in flight.
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(super) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One SSE event: `event: message`, the id and `retry` when given, the
/// data (one `data:` line per line; an empty line for empty data, as a
/// priming event has).
fn sse_bytes(id: Option<&str>, retry: Option<Duration>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 48);
    out.push_str("event: message\n");
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(r) = retry {
        out.push_str(&format!("retry: {}\n", r.as_millis()));
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

fn sse_event(sent: &Sent) -> Bytes {
    sse_bytes(sent.event_id.as_deref(), None, &sent.text)
}

/// What a request's stream holds until it ends: the sessionless
/// withdrawal (cancels the request if the client closes the stream first)
/// and the in-flight count of its POST.
pub(super) struct StreamGuards {
    pub(super) withdraw: Option<Withdraw>,
    /// Held only for its `Drop`.
    pub(super) _in_flight: Option<InFlight>,
}

/// A request's SSE stream: the priming event of stream `priming` (an id and
/// empty data, with `retry`), `first`, then what comes until the response.
pub(super) fn sse_response(
    first: Option<Sent>,
    rx: mpsc::UnboundedReceiver<Sent>,
    guards: StreamGuards,
    priming: Option<u64>,
) -> Response {
    let done = first.as_ref().is_some_and(|f| f.response);
    let mut guards = guards;
    if done && let Some(w) = guards.withdraw.as_mut() {
        w.answered = true;
    }
    let prime = priming.map(|n| sse_bytes(Some(&format!("{n}-0")), Some(SSE_RETRY), ""));
    let head = futures::stream::iter(
        prime
            .into_iter()
            .chain(first.as_ref().map(sse_event))
            .map(Ok::<_, Infallible>),
    );
    let rest = futures::stream::unfold(
        (rx, guards, done),
        |(mut rx, mut guards, done)| async move {
            if done {
                if let Some(w) = guards.withdraw.as_mut() {
                    w.answered = true;
                }
                return None;
            }
            let sent = tokio::select! {
                sent = rx.recv() => sent?,
                () = tokio::time::sleep(SSE_KEEP_ALIVE) => {
                    return Some((Ok(Bytes::from_static(b":\n\n")), (rx, guards, false)));
                }
            };
            if sent.response
                && let Some(w) = guards.withdraw.as_mut()
            {
                w.answered = true;
            }
            let done = sent.response;
            Some((Ok(sse_event(&sent)), (rx, guards, done)))
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(futures::StreamExt::chain(head, rest)),
    )
        .into_response()
}

/// A session's GET stream: what the relay sends that belongs to no
/// request's stream.
pub(super) fn get_sse_response(rx: mpsc::UnboundedReceiver<String>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let text = rx.recv().await?;
        Some((
            Ok::<_, Infallible>(Event::default().event("message").data(text)),
            rx,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
