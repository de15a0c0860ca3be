//! The decision log's hash chain: what makes it tamper-evident. Every line
//! the writer writes starts with `"seq"` (0, 1, 2, ... across restarts and
//! rotated files) and `"prev"`, the SHA-256 (hex) of the whole previous
//! line as it is in the file, without its newline; the first line of a
//! chain has 64 zeros. A line removed, altered, moved or inserted breaks
//! the chain at that point (`log::verify` finds where).
//!
//! A chain alone proves nothing to someone who can rewrite the file from
//! the altered line onwards, so every so many lines, and when the log is
//! closed, the writer adds a checkpoint line signed with warden's key
//! (`"event": "checkpoint"`): its signature covers its own `seq`, `prev`
//! and `time` ([`checkpoint_message`]), and so, through `prev`, every line
//! before it. The key is warden's `--signing-key`; the engine only sees
//! [`CheckpointSigner`] and [`CheckpointVerifier`], which the proxy
//! implements.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// A line's hash: SHA-256 of its bytes, without the newline.
pub type LineHash = [u8; 32];

/// The `prev` of the first line of a chain.
pub const GENESIS: LineHash = [0; 32];

/// The signature algorithm checkpoints name (`"alg"`).
pub const CHECKPOINT_ALG: &str = "EdDSA";

/// Signs checkpoints (warden's Ed25519 key).
pub trait CheckpointSigner: Send + Sync {
    /// The signature of `message`, as text (base64url).
    fn sign_checkpoint(&self, message: &[u8]) -> Result<String, String>;
}

/// Checks a checkpoint's signature (warden's public key).
pub trait CheckpointVerifier {
    /// Whether `signature` is the key's signature of `message`.
    fn verify_checkpoint(&self, message: &[u8], signature: &str) -> bool;
}

/// What a checkpoint's signature covers: its own position in the chain
/// and its time. Versioned, so that a signature made for anything else
/// with the same key never passes for a checkpoint.
pub fn checkpoint_message(seq: u64, prev: &str, time: &str) -> Vec<u8> {
    format!("warden-log-checkpoint:v1\n{seq}\n{prev}\n{time}").into_bytes()
}

/// The SHA-256 of a line as written (without its newline).
pub fn line_hash(line: &[u8]) -> LineHash {
    Sha256::digest(line).into()
}

/// Lower-case hex, as `prev` is written (and every digest warden shows:
/// argument hashes, grant keys, webhook signatures).
pub fn hex(hash: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * hash.len());
    for b in hash {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Where the chain stands: the next line's `seq` and `prev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainState {
    pub(crate) next_seq: u64,
    pub(crate) prev: LineHash,
    /// Lines written since the last checkpoint (or since the chain was
    /// resumed from a line that was not one).
    pub(crate) since_checkpoint: u64,
}

impl ChainState {
    pub(crate) fn genesis() -> Self {
        ChainState {
            next_seq: 0,
            prev: GENESIS,
            since_checkpoint: 0,
        }
    }

    /// The chain continued after `line`, the last whole line of a file;
    /// `None` when that line carries no chain fields (a log written before
    /// lines were chained, or not by warden): a new chain starts then.
    pub(crate) fn after_line(line: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Head {
            seq: u64,
            prev: String,
            #[serde(default)]
            event: Option<String>,
        }
        let head: Head = serde_json::from_slice(line).ok()?;
        if head.prev.len() != 64 {
            return None;
        }
        Some(ChainState {
            next_seq: head.seq.checked_add(1)?,
            prev: line_hash(line),
            since_checkpoint: u64::from(head.event.as_deref() != Some("checkpoint")),
        })
    }

    /// Appends `line` (one JSON object, without its newline) to `buf` with
    /// this chain's `seq` and `prev` spliced in first, and a newline; the
    /// chain then stands after it.
    pub(crate) fn append(&mut self, line: &[u8], buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(b"{\"seq\":");
        buf.extend_from_slice(self.next_seq.to_string().as_bytes());
        buf.extend_from_slice(b",\"prev\":\"");
        buf.extend_from_slice(hex(&self.prev).as_bytes());
        buf.push(b'"');
        // The writer is handed serde's objects: `{` then the fields, or `{}`.
        let rest = line.strip_prefix(b"{").unwrap_or(b"}");
        if rest.first() != Some(&b'}') {
            buf.push(b',');
        }
        buf.extend_from_slice(rest);
        self.prev = line_hash(&buf[start..]);
        buf.push(b'\n');
        self.next_seq += 1;
        self.since_checkpoint += 1;
    }

    /// Appends a checkpoint signed by `signer`; the count since the last
    /// one starts again.
    pub(crate) fn append_checkpoint(
        &mut self,
        signer: &dyn CheckpointSigner,
        buf: &mut Vec<u8>,
    ) -> Result<(), String> {
        let time = super::rfc3339(SystemTime::now());
        let message = checkpoint_message(self.next_seq, &hex(&self.prev), &time);
        let signature = signer.sign_checkpoint(&message)?;
        let line = serde_json::json!({
            "time": time,
            "event": "checkpoint",
            "alg": CHECKPOINT_ALG,
            "signature": signature,
        });
        self.append(line.to_string().as_bytes(), buf);
        self.since_checkpoint = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gets_seq_and_prev_first_and_its_hash_is_the_next_prev() {
        let mut chain = ChainState::genesis();
        let mut buf = Vec::new();
        chain.append(br#"{"a":1}"#, &mut buf);
        chain.append(b"{}", &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(r#"{{"seq":0,"prev":"{}","a":1}}"#, "0".repeat(64))
        );
        let h0 = hex(&line_hash(lines[0].as_bytes()));
        assert_eq!(lines[1], format!(r#"{{"seq":1,"prev":"{h0}"}}"#));
        assert_eq!(chain.next_seq, 2);
        assert_eq!(chain.prev, line_hash(lines[1].as_bytes()));
    }

    #[test]
    fn a_chain_resumes_after_a_chained_line_and_restarts_after_another() {
        let mut chain = ChainState::genesis();
        let mut buf = Vec::new();
        chain.append(br#"{"a":1}"#, &mut buf);
        let line = &buf[..buf.len() - 1];
        assert_eq!(ChainState::after_line(line), Some(chain));
        assert_eq!(ChainState::after_line(br#"{"a":1}"#), None);
        assert_eq!(ChainState::after_line(b"not json"), None);
    }
}
