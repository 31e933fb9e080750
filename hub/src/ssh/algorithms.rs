//! What the hub offers in its SSH key exchange: only what our agents and
//! OpenSSH clients need, nothing an auditor (`ssh-audit`) flags.
//!
//! - Key exchange: `mlkem768x25519-sha256` (post-quantum hybrid; our agents
//!   and OpenSSH 9.9+ pick it) and `curve25519-sha256` (OpenSSH before 9.9,
//!   such as Debian 12's `ssh-keyscan`). No finite-field Diffie-Hellman
//!   (group14..18, group exchange): each costs the server a large modular
//!   exponentiation the client can make it repeat for free (DHEat,
//!   CVE-2002-20001), and no NIST curves.
//! - Ciphers: AEADs only. CTR modes need a separate MAC, and the plain
//!   (encrypt-and-MAC) MACs leak; an AEAD authenticates by itself.
//! - MACs: only the encrypt-then-MAC SHA-2 pair. The KEXINIT must name at
//!   least one; with an AEAD cipher none is used.
//! - Compression: none (zlib before authentication is an unauthenticated
//!   decompressor, and agents' traffic is small JSON frames and logs).
//! - Host key: ed25519 (the only key the hub has).
//! - The strict key exchange marker (Terrapin, CVE-2023-48795) and
//!   `ext-info-s` stay: russh only advertises what this list names.

use std::borrow::Cow;

use russh::keys::Algorithm;
use russh::{cipher, compression, kex, mac, Preferred};

/// Key exchanges, most preferred first (see the module doc).
pub const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Ciphers: AEADs only. ChaCha20-Poly1305 first, as russh and OpenSSH
/// order them; the agent's own list decides (the client's order wins).
pub const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
];

/// MACs: encrypt-then-MAC SHA-2 only (unused with the AEAD ciphers).
pub const MACS: &[mac::Name] = &[mac::HMAC_SHA256_ETM, mac::HMAC_SHA512_ETM];

/// Compression: none.
pub const COMPRESSION: &[compression::Name] = &[compression::NONE];

/// Host key algorithms: ed25519.
pub const HOST_KEYS: &[Algorithm] = &[Algorithm::Ed25519];

/// The hub's algorithm preferences (see the module doc).
pub fn preferred() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(KEX),
        key: Cow::Borrowed(HOST_KEYS),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(COMPRESSION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every agent cipher is offered, so agents keep connecting.
    #[test]
    fn every_agent_cipher_is_offered() {
        for c in nextdeploy_shared::cipher::agent_ciphers() {
            assert!(CIPHERS.contains(c), "{}", c.as_ref());
        }
    }

    /// Every name is one russh implements (a typo would fail negotiation).
    #[test]
    fn every_name_is_implemented() {
        let markers = [
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ];
        for k in KEX.iter().filter(|k| !markers.contains(k)) {
            assert!(kex::ALL_KEX_ALGORITHMS.contains(&k), "{}", k.as_ref());
        }
        for c in CIPHERS {
            assert!(cipher::ALL_CIPHERS.contains(&c), "{}", c.as_ref());
        }
        for m in MACS {
            assert!(mac::ALL_MAC_ALGORITHMS.contains(&m), "{}", m.as_ref());
        }
    }
}
