//! The incremental `text/event-stream` parser for upstream answers and
//! GET streams, bounded by the message size limit.

use crate::framing::OVERSIZE_HEAD;

/// One event of an SSE stream that carries data.
#[derive(Debug, PartialEq)]
pub(crate) enum SseEvent {
    Message {
        event: String,
        data: Vec<u8>,
    },
    /// An event whose data is over the limit.
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
    line: Vec<u8>,
    line_over: bool,
    after_cr: bool,
    data: Vec<u8>,
    data_len: usize,
    has_data: bool,
    event: String,
    pub(crate) last_id: Option<String>,
    pub(crate) retry_ms: Option<u64>,
}

impl SseParser {
    pub(crate) fn new(max: usize) -> Self {
        SseParser {
            max,
            line: Vec::new(),
            line_over: false,
            after_cr: false,
            data: Vec::new(),
            data_len: 0,
            has_data: false,
            event: String::new(),
            last_id: None,
            retry_ms: None,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ => {
                    // A line longer than the limit is kept only up to what
                    // finding its id needs.
                    if self.line.len() < self.max.saturating_add(16) {
                        self.line.push(b);
                    } else {
                        self.line_over = true;
                        self.data_len += 1;
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        let over = std::mem::replace(&mut self.line_over, false);
        if line.is_empty() && !over {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
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
                    if self.data.len() < self.max {
                        self.data.push(b'\n');
                    }
                }
                self.has_data = true;
                self.data_len += value.len();
                let room = (self.max + 1).saturating_sub(self.data.len());
                self.data.extend_from_slice(&value[..value.len().min(room)]);
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

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let data = std::mem::take(&mut self.data);
        let len = std::mem::replace(&mut self.data_len, 0);
        let event = std::mem::take(&mut self.event);
        if !std::mem::replace(&mut self.has_data, false) {
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
}
