//! Sealing the cluster's identity into the store: AES-256-GCM (RustCrypto's
//! `aes-gcm`) under a key derived from the cluster secret by HKDF-SHA256.
//! A sealed item is `version (1) | nonce (12, random per seal) | ciphertext
//! and tag`, with the item's name as associated data, so an item moved to
//! another name does not open. The store alone holds no key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use nextdeploy_shared::secret::Secret;

/// The layout byte of a sealed item.
const VERSION: u8 = 1;
/// HKDF salt: names the purpose, so the same secret used elsewhere gives another key.
const SALT: &[u8] = b"nextdeploy cluster v1";
/// HKDF info of the sealing key.
const INFO: &[u8] = b"seal identity";
/// AES-GCM's nonce length.
const NONCE_LEN: usize = 12;

/// Why an item does not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Wrong secret, wrong name, or altered bytes: GCM's tag does not match.
    #[error("the cluster secret does not open the cluster's keys (another secret sealed them, or the store's copy was altered)")]
    WrongSecret,
    /// Not a sealed item of a layout this hub knows.
    #[error("the sealed item is malformed")]
    Malformed,
}

/// The key the cluster's items are sealed under.
pub struct SealKey(Secret<[u8; 32]>);

impl SealKey {
    /// Derive it from the cluster secret's bytes.
    pub fn derive(secret: &[u8]) -> SealKey {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: never fails.
        let _ = Hkdf::<sha2_11::Sha256>::new(Some(SALT), secret).expand(INFO, &mut key);
        SealKey(Secret::new(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.0.expose()).into())
    }

    /// Seal `plain` as item `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            // Encryption fails only past GCM's message limit (64 GiB).
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Open item `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        self.cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_with_the_secret_and_name_it_was_sealed_with_only() {
        let key = SealKey::derive(b"a cluster secret of enough length!!");
        let plain = b"-----BEGIN OPENSSH PRIVATE KEY----- the host key";
        let sealed = key.seal("identity", plain);
        assert_eq!(key.open("identity", &sealed).unwrap(), plain);
        // The store's bytes do not hold the key, nor any long run of it.
        assert!(!sealed.windows(8).any(|w| plain.windows(8).any(|p| p == w)));
        // A fresh nonce every time.
        assert_ne!(key.seal("identity", plain), sealed);
        let wrong = SealKey::derive(b"another cluster secret of enough length");
        assert!(matches!(
            wrong.open("identity", &sealed),
            Err(SealError::WrongSecret)
        ));
        assert!(matches!(
            key.open("other", &sealed),
            Err(SealError::WrongSecret)
        ));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            key.open("identity", &altered),
            Err(SealError::WrongSecret)
        ));
        assert!(matches!(
            key.open("identity", &[]),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            key.open("identity", &sealed[..10]),
            Err(SealError::Malformed)
        ));
    }
}
