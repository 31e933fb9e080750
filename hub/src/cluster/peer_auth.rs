//! How one hub of a cluster proves itself to another when it forwards a
//! client's request ([`super::forward`]): an HMAC-SHA256 (RustCrypto's
//! `hmac`) under a key derived from the cluster secret, over the forwarding
//! hub's id, the time, the client's token id and the link's mode, sent in
//! the [`PEER_HEADER`] of the WebSocket upgrade. The receiving hub checks
//! the MAC and the time ([`PEER_AUTH_SKEW`]), then reads the token from the
//! store as at any sign-in (revoked or expired: refused), and serves the
//! request as that token. The other direction is pinned by TLS: every hub
//! of a cluster presents the cluster's certificate, and a forwarding hub
//! accepts no other.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use nextdeploy_shared::secret::Secret;

use crate::limits::PEER_AUTH_SKEW;

/// The upgrade request's header that carries a forwarding hub's claim.
pub const PEER_HEADER: &str = "x-nextdeploy-peer";
/// The claim's layout version.
const VERSION: &str = "v1";
/// HKDF salt and info: another key than the sealing key from the same secret.
const SALT: &[u8] = b"nextdeploy cluster v1";
const INFO: &[u8] = b"peer auth";

type HmacSha256 = Hmac<sha2_11::Sha256>;

/// What a forwarding hub says about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerClaim {
    /// The forwarding hub's id.
    pub hub_id: String,
    /// The API token the client authenticated with at that hub.
    pub token_id: String,
    /// The link carries one request and closes when it ends (else it is a
    /// shared link for one-shot requests).
    pub once: bool,
}

/// Why a claim is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerAuthError {
    /// Not a claim of this layout.
    #[error("malformed hub-to-hub claim")]
    Malformed,
    /// Signed too long ago (or too far ahead).
    #[error("hub-to-hub claim outside the allowed clock skew")]
    Stale,
    /// The MAC does not match: another cluster secret, or altered.
    #[error("hub-to-hub claim not signed with this cluster's secret")]
    BadMac,
}

/// The key hubs sign their claims with.
pub struct PeerKey(Secret<[u8; 32]>);

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

impl PeerKey {
    /// Derive it from the cluster secret's bytes.
    pub fn derive(secret: &[u8]) -> PeerKey {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit: never fails.
        let _ = Hkdf::<sha2_11::Sha256>::new(Some(SALT), secret).expand(INFO, &mut key);
        PeerKey(Secret::new(key))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC pads a short key with zeros to the hash's block: the same
        // MAC as the 32-byte key itself, without a fallible call.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(self.0.expose());
        <HmacSha256 as KeyInit>::new(&block.into())
    }

    /// The header value for `claim`, signed at `now_ms`.
    pub fn sign(&self, claim: &PeerClaim, now_ms: i64) -> String {
        let body = body(claim, now_ms);
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!("{body}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The claim in `header`, if signed with this key within the skew of `now_ms`.
    pub fn verify(&self, header: &str, now_ms: i64) -> Result<PeerClaim, PeerAuthError> {
        let (body, tag) = header.rsplit_once('.').ok_or(PeerAuthError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| PeerAuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).map_err(|_| PeerAuthError::BadMac)?;
        let parts: Vec<&str> = body.split('.').collect();
        let [VERSION, hub, at, token, mode] = parts.as_slice() else {
            return Err(PeerAuthError::Malformed);
        };
        let at: i64 = at.parse().map_err(|_| PeerAuthError::Malformed)?;
        if (now_ms - at).abs() > PEER_AUTH_SKEW.as_millis() as i64 {
            return Err(PeerAuthError::Stale);
        }
        Ok(PeerClaim {
            hub_id: hub.to_string(),
            token_id: token.to_string(),
            once: *mode == "once",
        })
    }
}

/// The signed part: ids never hold a dot (hex hub ids, token ids of
/// [`nextdeploy_shared::token::new_id`]); one that did would not parse back.
fn body(c: &PeerClaim, now_ms: i64) -> String {
    let mode = if c.once { "once" } else { "shared" };
    format!("{VERSION}.{}.{now_ms}.{}.{mode}", c.hub_id, c.token_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> PeerClaim {
        PeerClaim {
            hub_id: "a1b2c3".into(),
            token_id: "tok123".into(),
            once: true,
        }
    }

    #[test]
    fn a_claim_verifies_under_its_secret_only_and_in_time() {
        let key = PeerKey::derive(b"0123456789abcdef0123456789abcdef");
        let other = PeerKey::derive(b"0123456789abcdef0123456789abcdeX");
        let h = key.sign(&claim(), 1_000_000);
        assert_eq!(key.verify(&h, 1_000_000 + 29_000), Ok(claim()));
        assert_eq!(other.verify(&h, 1_000_000), Err(PeerAuthError::BadMac));
        assert_eq!(
            key.verify(&h, 1_000_000 + 31_000),
            Err(PeerAuthError::Stale)
        );
        assert_eq!(
            key.verify(&h, 1_000_000 - 31_000),
            Err(PeerAuthError::Stale)
        );
        let altered = h.replacen("tok123", "tok124", 1);
        assert_eq!(key.verify(&altered, 1_000_000), Err(PeerAuthError::BadMac));
        assert_eq!(key.verify("v1.x", 0), Err(PeerAuthError::Malformed));
        let shared = PeerClaim {
            once: false,
            ..claim()
        };
        let h = key.sign(&shared, 5);
        assert_eq!(key.verify(&h, 5), Ok(shared));
    }
}
