//! Checking a decision log's hash chain ([`super::chain`]): the files in
//! the order they were written (rotated files oldest first, then the
//! current one), line by line, stopping at the first line that was
//! removed, altered, moved or inserted. Checkpoint signatures are checked
//! when a key is given.
//!
//! What a chain can and cannot show: a change anywhere before the last
//! line breaks the chain at the next line; a change to the last lines, or
//! lines cut off the end, shows only against a checkpoint after them. So
//! the report says how many lines follow the last checkpoint (unsealed),
//! and a log without checkpoints, or checked without the key, is reported
//! as such: whoever can write the file can then write a new chain from the
//! altered line onwards.

use super::chain::{CheckpointVerifier, GENESIS, LineHash, checkpoint_message, hex, line_hash};
use serde::Deserialize;
use std::io::{self, BufRead};

/// How the chain was broken at the first line that breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    Removed,
    Altered,
    Reordered,
    Inserted,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Removed => "removed",
            BreakKind::Altered => "altered",
            BreakKind::Reordered => "reordered",
            BreakKind::Inserted => "inserted",
        }
    }
}

/// A line's place: the file as given and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: u64,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The first break: where, what kind, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub kind: BreakKind,
    /// The line the break is reported at (the removed lines' successor,
    /// the altered line, the moved or inserted line).
    pub place: Place,
    pub message: String,
}

/// What checking the chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Lines read (blank lines aside), up to the break if there is one.
    pub lines: u64,
    /// Checkpoints met, and how many of them had their signature checked.
    pub checkpoints: u64,
    pub signatures_checked: u64,
    /// Chained lines after the last checkpoint (not covered by a
    /// signature).
    pub unsealed: u64,
    /// Lines before the chain begins that carry no chain fields (written
    /// before warden chained its log).
    pub unchained_prefix: u64,
    /// Facts a reader needs that are not breaks.
    pub notes: Vec<String>,
    pub broken: Option<Break>,
}

/// The fields of a line the chain reads; the rest is covered by its hash.
#[derive(Deserialize)]
struct Head {
    seq: Option<u64>,
    prev: Option<String>,
    event: Option<String>,
    time: Option<String>,
    signature: Option<String>,
    previous_file: Option<String>,
}

/// The lines of the files in turn.
struct Lines {
    files: Vec<(String, Box<dyn BufRead>)>,
    at: usize,
    line: u64,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line (without its newline) and its place.
    fn next(&mut self) -> io::Result<Option<Place>> {
        while self.at < self.files.len() {
            self.buf.clear();
            let n = self.files[self.at].1.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                self.at += 1;
                self.line = 0;
                continue;
            }
            self.line += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            }
            return Ok(Some(Place {
                file: self.files[self.at].0.clone(),
                line: self.line,
            }));
        }
        Ok(None)
    }

    /// Reads on to find the line with `seq`.
    fn find_seq(&mut self, seq: u64) -> io::Result<Option<Place>> {
        while let Some(place) = self.next()? {
            if let Ok(head) = serde_json::from_slice::<Head>(&self.buf)
                && head.seq == Some(seq)
            {
                return Ok(Some(place));
            }
        }
        Ok(None)
    }
}

/// Checks the chain through `files` (a name for reports, and its content),
/// given in the order they were written. With `key`, each checkpoint's
/// signature is checked. Errors are read errors only; a broken chain is
/// [`Verification::broken`].
pub fn verify_chain(
    files: Vec<(String, Box<dyn BufRead>)>,
    key: Option<&dyn CheckpointVerifier>,
) -> io::Result<Verification> {
    let mut report = Verification::default();
    let mut lines = Lines {
        files,
        at: 0,
        line: 0,
        buf: Vec::new(),
    };
    // The next line's seq and prev, once the chain has begun, and where
    // the line before it is.
    let mut expected: Option<(u64, LineHash, Place)> = None;
    let mut last_checkpoint: Option<Place> = None;
    while let Some(place) = lines.next()? {
        if lines.buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.lines += 1;
        let fail = |kind, message: String| Break {
            kind,
            place: place.clone(),
            message,
        };
        let Ok(head) = serde_json::from_slice::<Head>(&lines.buf) else {
            report.broken = Some(fail(
                BreakKind::Inserted,
                "this line is not a JSON log line: it was inserted, or it is what a write that failed halfway left behind".into(),
            ));
            return Ok(report);
        };
        let (Some(seq), Some(prev)) = (head.seq, head.prev.as_deref()) else {
            if expected.is_none() {
                report.unchained_prefix += 1;
                continue;
            }
            report.broken = Some(fail(
                BreakKind::Inserted,
                "this line carries no `seq` and `prev`: warden did not write it into the chain, so it was inserted".into(),
            ));
            return Ok(report);
        };
        match &expected {
            None => {
                if head.event.as_deref() == Some("rotated") {
                    report.notes.push(format!(
                        "{place} continues the rotated file `{}`, which was not given: give the files oldest first to check the join too",
                        head.previous_file.as_deref().unwrap_or("?")
                    ));
                } else if seq != 0 {
                    report.broken = Some(fail(
                        BreakKind::Removed,
                        format!(
                            "the chain starts at seq {seq}, not 0, and not with a rotated file's first line: the {seq} line(s) before it were removed"
                        ),
                    ));
                    return Ok(report);
                } else if prev != hex(&GENESIS) {
                    report.broken = Some(fail(
                        BreakKind::Altered,
                        "the chain's first line does not have the first line's `prev` (64 zeros): it was altered".into(),
                    ));
                    return Ok(report);
                }
            }
            Some((next, hash, before)) => {
                let (next, before) = (*next, before.clone());
                if seq == next && prev != hex(hash) {
                    report.broken = Some(Break {
                        kind: BreakKind::Altered,
                        place: before.clone(),
                        message: format!(
                            "line {before} (seq {}) was altered after it was written: its hash is not the `prev` that the next line ({place}) recorded",
                            next - 1
                        ),
                    });
                    return Ok(report);
                }
                if seq > next {
                    let (kind, message) = match lines.find_seq(next)? {
                        Some(later) => (
                            BreakKind::Reordered,
                            format!(
                                "this line (seq {seq}) comes before {later} (seq {next}): lines were moved"
                            ),
                        ),
                        None => (
                            BreakKind::Removed,
                            format!(
                                "{} line(s) were removed before this one: seq {next} to {} are missing",
                                seq - next,
                                seq - 1
                            ),
                        ),
                    };
                    report.broken = Some(fail(kind, message));
                    return Ok(report);
                }
                if seq < next {
                    report.broken = Some(fail(
                        BreakKind::Inserted,
                        format!(
                            "this line has seq {seq}, which an earlier line already had (the chain was at seq {next}): it was inserted, a copy or a forgery"
                        ),
                    ));
                    return Ok(report);
                }
            }
        }
        if head.event.as_deref() == Some("checkpoint") {
            report.checkpoints += 1;
            if let Some(key) = key {
                let message = checkpoint_message(seq, prev, head.time.as_deref().unwrap_or(""));
                let signature = head.signature.as_deref().unwrap_or("");
                if !key.verify_checkpoint(&message, signature) {
                    let since = last_checkpoint
                        .as_ref()
                        .map_or("the start".to_string(), |p| {
                            format!("the checkpoint at {p}")
                        });
                    report.broken = Some(fail(
                        BreakKind::Altered,
                        format!(
                            "this checkpoint's signature does not verify with the key: a line between {since} and here was altered and the chain written anew after it, or the checkpoint itself was altered (or the key is not the one warden signed with)"
                        ),
                    ));
                    return Ok(report);
                }
                report.signatures_checked += 1;
            }
            report.unsealed = 0;
            last_checkpoint = Some(place.clone());
        } else {
            report.unsealed += 1;
        }
        expected = Some((seq + 1, line_hash(&lines.buf), place));
    }
    if report.unchained_prefix > 0 {
        report.notes.push(format!(
            "the first {} line(s) carry no chain fields (written before warden chained its log): nothing shows whether they were changed",
            report.unchained_prefix
        ));
    }
    if expected.is_some() {
        if report.checkpoints == 0 {
            report.notes.push(
                "the log has no checkpoints: warden signs them only with --signing-key; without one, whoever can write the file can write a new chain from any line onwards".into(),
            );
        } else if key.is_none() {
            report.notes.push(format!(
                "{} checkpoint signature(s) not checked: give --key with warden's public key",
                report.checkpoints
            ));
        }
        if report.checkpoints > 0 && report.unsealed > 0 {
            report.notes.push(format!(
                "the last {} line(s) come after the last checkpoint: they are chained but not signed (normal while warden runs, or after a crash; lines cut off the end cannot be told apart)",
                report.unsealed
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
