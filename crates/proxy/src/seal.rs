//! Sealing state warden hands to a client and takes back later (the
//! 2026-07-28 confirmation's `requestState`): AES-256-GCM with a random
//! nonce per seal, so the client can neither read nor change it, and any
//! replica holding the same key can open it. The key is a file shared by
//! the replicas (`confirm_key`, `--confirm-key`); without one, each
//! process draws its own at start, which is enough for one replica.
//!
//! Sealed text: `v1.` + base64url(nonce ‖ ciphertext ‖ tag), the purpose
//! bound as associated data, so state sealed for one use never opens as
//! another.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

const KEY_LEN: usize = 32;
const PREFIX: &str = "v1.";

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SealKeyError {
    #[error("cannot read the confirmation key `{}`: {message}", path.display())]
    #[diagnostic(
        code(warden::seal::read),
        help("give a file warden may read, holding 32 random bytes as 64 hex digits")
    )]
    Read { path: PathBuf, message: String },
    #[error("the confirmation key `{}` is not 32 bytes as 64 hex digits", path.display())]
    #[diagnostic(
        code(warden::seal::format),
        help("make one with `openssl rand -hex 32 > FILE`, and give every replica the same file")
    )]
    Format { path: PathBuf },
}

/// An AES-256-GCM key for sealing state.
pub struct SealKey {
    key: LessSafeKey,
    /// Drawn at start ([`SealKey::process`]) rather than read from a file.
    drawn: bool,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("drawn", &self.drawn)
            .finish_non_exhaustive()
    }
}

fn from_bytes(bytes: &[u8; KEY_LEN], drawn: bool) -> SealKey {
    let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key");
    SealKey {
        key: LessSafeKey::new(key),
        drawn,
    }
}

impl SealKey {
    /// This process's own key, drawn once at start: state it seals opens
    /// only in this process.
    pub fn process() -> Arc<SealKey> {
        static KEY: LazyLock<Arc<SealKey>> = LazyLock::new(|| {
            let mut bytes = [0u8; KEY_LEN];
            aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
            Arc::new(from_bytes(&bytes, true))
        });
        Arc::clone(&KEY)
    }

    /// The key in `path`: 64 hex digits (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<SealKey, SealKeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| SealKeyError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let hex = text.trim();
        let format = || SealKeyError::Format {
            path: path.to_path_buf(),
        };
        if hex.len() != KEY_LEN * 2 {
            return Err(format());
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2).ok_or_else(format)?, 16)
                .map_err(|_| format())?;
        }
        Ok(from_bytes(&bytes, false))
    }

    /// Whether this key was drawn at start (not shared with replicas).
    pub fn is_process_key(&self) -> bool {
        self.drawn
    }

    /// `plain` sealed for `purpose`.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random source works");
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any length warden sends");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// What `text` holds, if this key sealed it for `purpose` (and nobody
    /// changed a bit of it since).
    pub fn open(&self, purpose: &str, text: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(text.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        from_bytes(&[byte; KEY_LEN], false)
    }

    #[test]
    fn sealed_text_opens_only_with_its_key_and_purpose_and_unchanged() {
        let k = key(1);
        let s = k.seal("confirm", b"{\"tool\":\"run\"}");
        assert_eq!(
            k.open("confirm", &s).as_deref(),
            Some(&b"{\"tool\":\"run\"}"[..])
        );
        assert_eq!(key(2).open("confirm", &s), None, "another replica's key");
        assert_eq!(k.open("other", &s), None, "another purpose");
        // Every single changed character is refused.
        let body = &s[PREFIX.len()..];
        for i in 0..body.len() {
            let mut b = body.as_bytes().to_vec();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = format!("{PREFIX}{}", String::from_utf8(b).unwrap());
            assert_eq!(k.open("confirm", &t), None, "changed at {i}");
        }
        assert_ne!(
            s,
            k.seal("confirm", b"{\"tool\":\"run\"}"),
            "a fresh nonce each time"
        );
        assert_eq!(k.open("confirm", "v1."), None);
        assert_eq!(k.open("confirm", "garbage"), None);
    }

    #[test]
    fn a_key_file_is_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
        let k = SealKey::load(&p).unwrap();
        assert!(!k.is_process_key());
        assert_eq!(
            k.open("x", &key(0xab).seal("x", b"hi")).as_deref(),
            Some(&b"hi"[..])
        );
        std::fs::write(&p, "abc").unwrap();
        assert!(matches!(
            SealKey::load(&p),
            Err(SealKeyError::Format { .. })
        ));
        assert!(matches!(
            SealKey::load(&dir.path().join("missing")),
            Err(SealKeyError::Read { .. })
        ));
    }
}
