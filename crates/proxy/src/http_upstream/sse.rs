//! The incremental `text/event-stream` parser for upstream answers and
//! GET streams, bounded by the message size limit: a parser holds at most
//! about twice the limit (the current line and the event's data, each cut
//! at the limit), whatever the stream sends, and an event over the limit
//! can be reported before it ends ([`SseParser::take_oversize`]), so a
//! stream that never ends its huge event costs an error, not a wait.

use crate::framing::OVERSIZE_HEAD;

/// One event of an SSE stream that carries data.
#[derive(Debug, PartialEq)]
pub(crate) enum SseEvent {
    Message {
        event: String,
        data: Vec<u8>,
    },
    /// An event whose data is over the limit: its length (when reported
    /// before its end, the length seen so far) and the head of its data.
    TooLarge {
        len: usize,
        head: Vec<u8>,
    },
}

/// An incremental `text/event-stream` parser (the WHATWG rules: lines end
/// in LF, CRLF or CR; `:` starts a comment; `data` lines are joined with
/// LF; `id` and `retry` are remembered; a blank line dispatches).
pub(crate) struct SseParser {
    max: usize,
    /// The current line, up to `max + 16` bytes (enough to find its field
    /// and the head of its value).
    line: Vec<u8>,
    /// Bytes of the current line beyond what `line` keeps.
    line_extra: usize,
    after_cr: bool,
    /// The event's data, up to `max + 1` bytes.
    data: Vec<u8>,
    /// The event's whole data length.
    data_len: usize,
    has_data: bool,
    /// The event was already reported as too large by `take_oversize`:
    /// the rest of it is skipped and its end dispatches nothing.
    reported: bool,
    event: String,
    pub(crate) last_id: Option<String>,
    pub(crate) retry_ms: Option<u64>,
}

impl SseParser {
    pub(crate) fn new(max: usize) -> Self {
        SseParser {
            max,
            line: Vec::new(),
            line_extra: 0,
            after_cr: false,
            data: Vec::new(),
            data_len: 0,
            has_data: false,
            reported: false,
            event: String::new(),
            last_id: None,
            retry_ms: None,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((&first, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            match rest.iter().position(|b| matches!(b, b'\n' | b'\r')) {
                Some(i) => {
                    self.add_to_line(&rest[..i]);
                    self.after_cr = rest[i] == b'\r';
                    self.end_line(&mut out);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.add_to_line(rest);
                    break;
                }
            }
        }
        out
    }

    /// The current event, reported as too large once its data (the lines
    /// so far and the one being read) is over the limit, before its end;
    /// `None` while it is within the limit or once it was reported. The
    /// rest of the event is then skipped: its end dispatches nothing.
    pub(crate) fn take_oversize(&mut self) -> Option<SseEvent> {
        if self.reported {
            return None;
        }
        let pending = self.data_value_start();
        let pending_len = pending.map(|at| self.line.len() - at + self.line_extra);
        let seen = self.data_len + pending_len.map_or(0, |n| n + usize::from(self.has_data));
        if seen <= self.max {
            return None;
        }
        let mut head = std::mem::take(&mut self.data);
        head.truncate(OVERSIZE_HEAD);
        if let Some(at) = pending {
            let v = &self.line[at..];
            if self.has_data && head.len() < OVERSIZE_HEAD {
                head.push(b'\n');
            }
            let room = OVERSIZE_HEAD.saturating_sub(head.len());
            head.extend_from_slice(&v[..v.len().min(room)]);
        }
        self.reported = true;
        Some(SseEvent::TooLarge { len: seen, head })
    }

    /// Where the value of the current (unfinished) line starts in `line`
    /// when it is a `data` line.
    fn data_value_start(&self) -> Option<usize> {
        let v = self.line.strip_prefix(b"data")?;
        match v {
            [] => Some(4),
            [b':', b' ', ..] => Some(6),
            [b':', ..] => Some(5),
            _ => None,
        }
    }

    fn add_to_line(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_add(16).saturating_sub(self.line.len());
        let kept = bytes.len().min(room);
        self.line.extend_from_slice(&bytes[..kept]);
        self.line_extra += bytes.len() - kept;
    }

    /// Keeps data bytes up to `max + 1` (nothing once the event was
    /// reported).
    fn keep(&mut self, bytes: &[u8]) {
        if self.reported {
            return;
        }
        let room = (self.max + 1).saturating_sub(self.data.len());
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut line = std::mem::take(&mut self.line);
        let extra = std::mem::replace(&mut self.line_extra, 0);
        if line.is_empty() && extra == 0 {
            self.dispatch(out);
        } else if line.first() != Some(&b':') {
            let (field, value) = match line.iter().position(|b| *b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &[][..]),
            };
            match field {
                b"data" => {
                    if self.has_data {
                        self.data_len += 1;
                        self.keep(b"\n");
                    }
                    self.has_data = true;
                    self.data_len += value.len() + extra;
                    self.keep(value);
                }
                b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
                b"id" if !value.contains(&0) => {
                    self.last_id = Some(String::from_utf8_lossy(value).into_owned());
                }
                b"retry" => {
                    if let Ok(ms) = std::str::from_utf8(value).unwrap_or("").parse::<u64>() {
                        self.retry_ms = Some(ms);
                    }
                }
                _ => {}
            }
        }
        // The buffer is reused for the next line (kept only when small:
        // one huge line does not pin its memory).
        line.clear();
        if line.capacity() <= 64 * 1024 {
            self.line = line;
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let data = std::mem::take(&mut self.data);
        let len = std::mem::replace(&mut self.data_len, 0);
        let event = std::mem::take(&mut self.event);
        let reported = std::mem::replace(&mut self.reported, false);
        if !std::mem::replace(&mut self.has_data, false) || reported {
            return;
        }
        if len > self.max {
            let mut head = data;
            head.truncate(OVERSIZE_HEAD);
            out.push(SseEvent::TooLarge { len, head });
        } else if !data.iter().all(u8::is_ascii_whitespace) {
            // MCP sends messages as `message` events (or unnamed ones).
            out.push(SseEvent::Message { event, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(max);
        chunks.iter().flat_map(|c| p.push(c)).collect()
    }

    fn msg(data: &str) -> SseEvent {
        SseEvent::Message {
            event: "message".into(),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn parses_events_split_across_chunks_with_comments_and_multiline_data() {
        let ev = messages(
            &[
                b": keep-alive\n\nevent: mess",
                b"age\nid: 7\nretry: 1500\ndata: {\"a\":\r\ndata:  1}\r\n\r",
                b"\nevent: message\ndata:{\"b\":2}\r\r",
            ],
            1000,
        );
        assert_eq!(ev, vec![msg("{\"a\":\n 1}"), msg("{\"b\":2}")]);
        let mut p = SseParser::new(100);
        p.push(b"id: abc\nretry: 20\ndata: x\n\n");
        assert_eq!(p.last_id.as_deref(), Some("abc"));
        assert_eq!(p.retry_ms, Some(20));
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_oversize_one_is_reported() {
        assert!(messages(&[b"event: message\nid: 1\n\n"], 100).is_empty());
        let mut big = b"data: {\"id\":5,\"x\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 500));
        big.extend_from_slice(b"\"}\n\ndata: {}\n\n");
        let ev = messages(&[&big], 100);
        assert_eq!(ev.len(), 2);
        match &ev[0] {
            SseEvent::TooLarge { len, head } => {
                assert_eq!(*len, 515);
                assert!(head.starts_with(b"{\"id\":5"));
            }
            other => panic!("expected an oversize event, got {other:?}"),
        }
        assert_eq!(
            ev[1],
            SseEvent::Message {
                event: String::new(),
                data: b"{}".to_vec()
            }
        );
    }

    #[test]
    fn an_unfinished_oversize_event_is_reported_once_before_its_end() {
        let mut p = SseParser::new(100);
        assert!(p.push(b"data: {\"id\":5,\"result\":\"").is_empty());
        assert_eq!(p.take_oversize(), None, "within the limit so far");
        assert!(p.push(&[b'a'; 150]).is_empty());
        match p.take_oversize() {
            Some(SseEvent::TooLarge { len, head }) => {
                assert_eq!(len, 168);
                assert!(head.starts_with(b"{\"id\":5"), "{head:?}");
            }
            other => panic!("expected an oversize event, got {other:?}"),
        }
        assert_eq!(p.take_oversize(), None, "reported once");
        // The rest of it, and its end, dispatch nothing; the next event
        // is read as usual.
        assert!(p.push(&[b'a'; 1000]).is_empty());
        assert_eq!(
            p.push(b"\"}\n\ndata: {}\n\n"),
            vec![SseEvent::Message {
                event: String::new(),
                data: b"{}".to_vec()
            }]
        );
        // Data lines that add up past the limit count too.
        let mut p = SseParser::new(100);
        for _ in 0..3 {
            assert!(
                p.push(&[b"data: ", &[b'x'; 40][..], b"\n"].concat())
                    .is_empty()
            );
        }
        assert!(matches!(
            p.take_oversize(),
            Some(SseEvent::TooLarge { len: 122, .. })
        ));
        // A long line of another field is no data.
        let mut p = SseParser::new(100);
        p.push(&[b"event: ", &[b'e'; 500][..]].concat());
        assert_eq!(p.take_oversize(), None);
        assert!(p.push(b"\n\n").is_empty(), "an event without data");
    }

    #[test]
    fn memory_stays_bounded_by_the_limit_whatever_the_stream_sends() {
        const MAX: usize = 64 * 1024;
        let chunk = vec![b'a'; 64 * 1024];
        let bounded = |p: &SseParser| {
            assert!(p.line.len() <= MAX + 16 && p.data.len() <= MAX + 1);
            assert!(p.line.capacity() <= 4 * MAX && p.data.capacity() <= 4 * MAX);
        };
        // One data line that never ends; a line of garbage; many data
        // lines of one event that never ends.
        let mut a = SseParser::new(MAX);
        let mut b = SseParser::new(MAX);
        let mut c = SseParser::new(MAX);
        a.push(b"data: ");
        for _ in 0..160 {
            a.push(&chunk);
            b.push(&chunk);
            c.push(b"data: ");
            c.push(&chunk[..1000]);
            c.push(b"\n");
            for p in [&a, &b, &c] {
                bounded(p);
            }
        }
        assert!(matches!(a.take_oversize(), Some(SseEvent::TooLarge { .. })));
        assert_eq!(b.take_oversize(), None);
        assert!(matches!(c.take_oversize(), Some(SseEvent::TooLarge { .. })));
        for p in [&a, &b, &c] {
            bounded(p);
        }
    }
}
