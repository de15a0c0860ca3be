//! Newline-delimited JSON framing (the MCP stdio transport), with a size
//! limit: a line longer than the limit is skipped to its end without being
//! held in memory, and reported as [`Frame::TooLarge`] with its first bytes,
//! so the caller can answer it with an error instead of failing.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How many leading bytes of an oversize line are kept (to find its id).
pub(crate) const OVERSIZE_HEAD: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// One line, without its line break (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line over the limit: its full length and its first bytes.
    TooLarge { len: usize, head: Vec<u8> },
}

/// Reads frames from a buffered reader.
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max }
    }

    /// The next non-blank line; `None` at end of input.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let mut line = Vec::new();
            let mut len = 0usize;
            let mut ended = false;
            loop {
                let buf = self.inner.fill_buf().await?;
                if buf.is_empty() {
                    break;
                }
                let (chunk, used, newline) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (&buf[..i], i + 1, true),
                    None => (buf, buf.len(), false),
                };
                len += chunk.len();
                let keep = if len <= self.max {
                    chunk.len()
                } else {
                    OVERSIZE_HEAD.saturating_sub(line.len()).min(chunk.len())
                };
                if len > self.max && line.len() > OVERSIZE_HEAD {
                    line.truncate(OVERSIZE_HEAD);
                }
                line.extend_from_slice(&chunk[..keep]);
                self.inner.consume(used);
                if newline {
                    ended = true;
                    break;
                }
            }
            if !ended && len == 0 {
                return Ok(None);
            }
            if line.last() == Some(&b'\r') && len <= self.max {
                line.pop();
                len -= 1;
            }
            if len > self.max {
                return Ok(Some(Frame::TooLarge { len, head: line }));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                if !ended {
                    return Ok(None);
                }
                continue;
            }
            return Ok(Some(Frame::Line(line)));
        }
    }
}

/// Writes each message of `rx` as one line, flushing when no more are
/// queued. Ends when every sender is gone or the writer fails.
pub(crate) async fn write_lines<W: AsyncWrite + Unpin, T: AsRef<str>>(
    mut out: W,
    mut rx: mpsc::Receiver<T>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(line) = rx.recv().await {
        if line.as_ref().is_empty() {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(line.as_ref().as_bytes());
        buf.push(b'\n');
        out.write_all(&buf).await?;
        if rx.is_empty() {
            out.flush().await?;
        }
    }
    out.flush().await?;
    out.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(7, input), max);
        let mut out = Vec::new();
        while let Some(f) = r.next().await.unwrap() {
            out.push(f);
        }
        out
    }

    fn line(f: &Frame) -> &[u8] {
        match f {
            Frame::Line(l) => l,
            Frame::TooLarge { .. } => panic!("unexpected oversize frame"),
        }
    }

    #[tokio::test]
    async fn splits_lines_skips_blank_ones_and_strips_cr() {
        let f = frames(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}", 100).await;
        assert_eq!(f.len(), 3);
        assert_eq!(line(&f[0]), b"{\"a\":1}");
        assert_eq!(line(&f[1]), b"{\"b\":2}");
        assert_eq!(line(&f[2]), b"{\"c\":3}");
    }

    #[tokio::test]
    async fn an_oversize_line_is_reported_and_the_next_one_read() {
        let mut input = b"{\"id\":7,\"x\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'a', 10_000));
        input.extend_from_slice(b"\"}\n{\"ok\":true}\n");
        let f = frames(&input, 100).await;
        assert_eq!(f.len(), 2);
        match &f[0] {
            Frame::TooLarge { len, head } => {
                assert_eq!(*len, 10_015);
                assert!(head.len() <= OVERSIZE_HEAD);
                assert!(head.starts_with(b"{\"id\":7"));
            }
            Frame::Line(_) => panic!("expected an oversize frame"),
        }
        assert_eq!(line(&f[1]), b"{\"ok\":true}");
    }

    #[tokio::test]
    async fn a_line_exactly_at_the_limit_passes() {
        let f = frames(b"0123456789\n01234567890\n", 10).await;
        assert_eq!(line(&f[0]), b"0123456789");
        assert!(matches!(f[1], Frame::TooLarge { len: 11, .. }));
    }
}
