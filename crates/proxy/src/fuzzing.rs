//! Entry points for the cargo-fuzz targets in `fuzz/` (hidden; not part of
//! warden-proxy's API): the proxy's byte-level parsers, driven the way the
//! relay and the HTTP upstream drive them, with the invariants they keep.

use crate::framing::{Frame, LineReader, OVERSIZE_HEAD};
use crate::http_upstream::{SseEvent, SseParser};
use crate::jsonrpc;

/// Frames `input` as the stdio transport does, once with a read buffer of
/// `capacity` bytes and once with a large one, and checks that both see the
/// same frames, that no line exceeds `max` or holds a line break, and that
/// an oversize line keeps at most its first bytes. Each line that is JSON is
/// classified and, like an oversize line's head, has its id sniffed, as the
/// relay does.
pub fn stdio_frames(input: &[u8], capacity: usize, max: usize) {
    let small = frames(input, capacity.clamp(1, 1 << 16), max);
    let large = frames(input, 1 << 20, max);
    assert_eq!(small, large, "framing depends on how reads are split");
    for frame in &small {
        match frame {
            Frame::Line(line) => {
                assert!(line.len() <= max, "a line over the limit was passed on");
                assert!(!line.contains(&b'\n'), "a line holds a line break");
                if let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) {
                    let _ = jsonrpc::classify(&msg);
                    let mut msg = msg;
                    jsonrpc::strip_meta_prefix(&mut msg, "io.warden/");
                    if let Some(meta) = jsonrpc::meta(&msg) {
                        assert!(!meta.keys().any(|k| k.starts_with("io.warden/")));
                    }
                }
            }
            Frame::TooLarge { len, head } => {
                assert!(*len > max);
                assert!(head.len() <= OVERSIZE_HEAD);
                let _ = jsonrpc::sniff_id(head);
            }
        }
    }
}

fn frames(input: &[u8], capacity: usize, max: usize) -> Vec<Frame> {
    futures::executor::block_on(async {
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        while let Ok(Some(frame)) = reader.next().await {
            out.push(frame);
        }
        out
    })
}

/// Parses `input` as a `text/event-stream` body in one piece and split at
/// `split`, and checks both give the same events, ids and retry, and that no
/// event's data exceeds `max`.
pub fn sse_events(input: &[u8], split: usize, max: usize) {
    let mut whole = SseParser::new(max);
    let a = whole.push(input);
    let mut parts = SseParser::new(max);
    let at = split.min(input.len());
    let mut b = parts.push(&input[..at]);
    b.extend(parts.push(&input[at..]));
    assert_eq!(a, b, "SSE parsing depends on how the body is split");
    assert_eq!(whole.last_id, parts.last_id);
    assert_eq!(whole.retry_ms, parts.retry_ms);
    for event in &a {
        if let SseEvent::Message { data, .. } = event {
            assert!(data.len() <= max, "an event over the limit was passed on");
        }
    }
}
