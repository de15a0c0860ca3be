//! The decision log's checkpoints signed with warden's Ed25519 key: the
//! same `--signing-key` that signs provenance tokens signs the log's
//! checkpoints ([`warden_engine::log::chain`]), and the public key that
//! backends verify tokens with verifies them (`warden audit verify --key`).
//! A checkpoint's signature is a bare Ed25519 signature of the engine's
//! versioned checkpoint message, base64url without padding, as a JWS
//! signature is written: nothing signed for a token can pass for one.

use crate::provenance_token::{Signer, VerifyingKey};
use jsonwebtoken::Algorithm;
use warden_engine::log::{CheckpointSigner, CheckpointVerifier};

impl CheckpointSigner for Signer {
    fn sign_checkpoint(&self, message: &[u8]) -> Result<String, String> {
        jsonwebtoken::crypto::sign(message, self.key(), Algorithm::EdDSA).map_err(|e| e.to_string())
    }
}

impl CheckpointVerifier for VerifyingKey {
    fn verify_checkpoint(&self, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, self.key(), Algorithm::EdDSA)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use warden_engine::log::chain::checkpoint_message;

    fn pair(seed: u8) -> (Signer, VerifyingKey) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let private = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (
            Signer::from_pem(private.as_bytes(), "test").unwrap(),
            VerifyingKey::from_pem(public.as_bytes(), "test").unwrap(),
        )
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_only_for_its_message() {
        let (signer, key) = pair(7);
        let (_, other) = pair(8);
        let message = checkpoint_message(41, &"ab".repeat(32), "2026-12-01T00:00:00.000Z");
        let signature = signer.sign_checkpoint(&message).unwrap();
        assert!(key.verify_checkpoint(&message, &signature));
        assert!(!other.verify_checkpoint(&message, &signature));
        let moved = checkpoint_message(42, &"ab".repeat(32), "2026-12-01T00:00:00.000Z");
        assert!(!key.verify_checkpoint(&moved, &signature));
        assert!(!key.verify_checkpoint(&message, "not base64!"));
        assert!(!key.verify_checkpoint(&message, ""));
    }
}
