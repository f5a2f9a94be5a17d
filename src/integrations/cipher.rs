//! Encryption of stored tokens: XChaCha20-Poly1305 under one 32-byte key
//! (docs/security.md#token-encryption). Its 192-bit nonces are safe to pick at random, so
//! there is no nonce bookkeeping. Each ciphertext is stored with the id of the key that sealed it,
//! so a key can be rotated (`kitefix integrations rotate-key`), and is bound to the row
//! and column it belongs to through the associated data, so a ciphertext copied to
//! another integration does not decrypt.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use crate::store::Sealed;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Bytes in an XChaCha20 nonce.
pub const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// The row was sealed under another key than the one configured.
    #[error(
        "the token was encrypted under key {stored}, but the configured key is {configured} (security.encryption_key_file); restore the old key or rotate"
    )]
    WrongKey { stored: String, configured: String },
    /// Tampered ciphertext, or one moved to another row.
    #[error("a stored token failed to decrypt (tampered, or moved from another integration)")]
    Decrypt,
    #[error("security.encryption_key_file `{path}`: {problem}")]
    KeyFile { path: String, problem: String },
}

/// The key that seals stored tokens.
#[derive(Clone)]
pub struct TokenCipher {
    aead: XChaCha20Poly1305,
    key_id: String,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCipher").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl TokenCipher {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(key);
        Self { aead: XChaCha20Poly1305::new(key.into()), key_id: hex::encode(&digest[..8]) }
    }

    /// A key that lives only in memory (an in-memory SQLite store, tests).
    pub fn ephemeral() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        Self::new(&key)
    }

    /// First 8 bytes of the key's SHA-256, hex: names the key without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `secret`; `context` (integration id and column) must be given again to open it.
    pub fn seal(&self, secret: &SecretString, context: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload { msg: secret.expose_secret().as_bytes(), aad: context.as_bytes() },
            )
            .expect("XChaCha20-Poly1305 encrypts any message of a token's size");
        Sealed { key_id: self.key_id.clone(), nonce: nonce.to_vec(), ciphertext }
    }

    /// Opens what `seal` made with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<SecretString, CipherError> {
        if sealed.key_id != self.key_id {
            return Err(CipherError::WrongKey {
                stored: sealed.key_id.clone(),
                configured: self.key_id.clone(),
            });
        }
        if sealed.nonce.len() != NONCE_LEN {
            return Err(CipherError::Decrypt);
        }
        let plain = Zeroizing::new(
            self.aead
                .decrypt(
                    XNonce::from_slice(&sealed.nonce),
                    Payload { msg: &sealed.ciphertext, aad: context.as_bytes() },
                )
                .map_err(|_| CipherError::Decrypt)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| CipherError::Decrypt)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Reads a key file: 64 hex characters (what kitefix writes; `openssl rand -hex 32`)
    /// or 32 raw bytes.
    pub async fn from_file(path: &Path) -> Result<Self, CipherError> {
        let bad =
            |problem: String| CipherError::KeyFile { path: path.display().to_string(), problem };
        let bytes = Zeroizing::new(tokio::fs::read(path).await.map_err(|e| bad(e.to_string()))?);
        Self::from_key_bytes(&bytes).ok_or_else(|| {
            bad("must hold 32 bytes, as 64 hex characters (e.g. `openssl rand -hex 32`) or raw"
                .into())
        })
    }

    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() == KEY_LEN {
            key.copy_from_slice(bytes);
            return Some(Self::new(&key));
        }
        let text = std::str::from_utf8(bytes).ok()?.trim();
        hex::decode_to_slice(text, &mut key[..]).ok()?;
        Some(Self::new(&key))
    }

    /// Reads the key file, creating it with a fresh key (mode 0600, never overwriting) if
    /// it does not exist yet.
    pub async fn load_or_create(path: &Path) -> Result<Self, CipherError> {
        match Self::create(path).await {
            Ok(cipher) => {
                tracing::info!(path = %path.display(), "generated a new encryption key; back it up");
                Ok(cipher)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path).await,
            Err(e) => Err(CipherError::KeyFile {
                path: path.display().to_string(),
                problem: format!("cannot create it: {e}"),
            }),
        }
    }

    async fn create(path: &Path) -> std::io::Result<Self> {
        use tokio::io::AsyncWriteExt;

        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        let text = Zeroizing::new(format!("{}\n", hex::encode(&key[..])));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .await?;
        file.write_all(text.as_bytes()).await?;
        file.sync_all().await?;
        Ok(Self::new(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn seals_and_opens_in_the_same_context() {
        let cipher = TokenCipher::ephemeral();
        let sealed = cipher.seal(&secret("bkua_abc123"), "id-1:api_token");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"bkua_a"));
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let opened = cipher.open(&sealed, "id-1:api_token").unwrap();
        assert_eq!(opened.expose_secret(), "bkua_abc123");
    }

    #[test]
    fn another_context_does_not_open() {
        let cipher = TokenCipher::ephemeral();
        let sealed = cipher.seal(&secret("bkua_abc123"), "id-1:api_token");
        assert!(matches!(cipher.open(&sealed, "id-2:api_token"), Err(CipherError::Decrypt)));
        assert!(matches!(cipher.open(&sealed, "id-1:webhook_token"), Err(CipherError::Decrypt)));
    }

    #[test]
    fn tampering_is_detected() {
        let cipher = TokenCipher::ephemeral();
        let mut sealed = cipher.seal(&secret("bkua_abc123"), "c");
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(cipher.open(&sealed, "c"), Err(CipherError::Decrypt)));
    }

    #[test]
    fn nonces_are_fresh() {
        let cipher = TokenCipher::ephemeral();
        let a = cipher.seal(&secret("same"), "c");
        let b = cipher.seal(&secret("same"), "c");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn another_key_is_named_not_tried() {
        let old = TokenCipher::ephemeral();
        let new = TokenCipher::ephemeral();
        let sealed = old.seal(&secret("t"), "c");
        let err = new.open(&sealed, "c").unwrap_err();
        assert!(matches!(err, CipherError::WrongKey { .. }));
        assert!(err.to_string().contains(old.key_id()), "{err}");
    }

    #[test]
    fn key_ids_are_stable_and_short() {
        let key = [7u8; KEY_LEN];
        assert_eq!(TokenCipher::new(&key).key_id(), TokenCipher::new(&key).key_id());
        assert_eq!(TokenCipher::new(&key).key_id().len(), 16);
        assert_ne!(TokenCipher::new(&key).key_id(), TokenCipher::new(&[8u8; KEY_LEN]).key_id());
    }

    #[test]
    fn key_bytes_are_hex_or_raw() {
        let key = [7u8; KEY_LEN];
        let from_hex = TokenCipher::from_key_bytes(format!("{}\n", hex::encode(key)).as_bytes());
        assert_eq!(from_hex.unwrap().key_id(), TokenCipher::new(&key).key_id());
        assert_eq!(
            TokenCipher::from_key_bytes(&key).unwrap().key_id(),
            TokenCipher::new(&key).key_id()
        );
        assert!(TokenCipher::from_key_bytes(b"short").is_none());
    }

    #[tokio::test]
    async fn a_created_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kitefix.key");
        let first = TokenCipher::load_or_create(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = TokenCipher::load_or_create(&path).await.unwrap();
        assert_eq!(first.key_id(), again.key_id());
    }
}
