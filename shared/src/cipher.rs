//! The agent's cipher preference. In SSH the client's order decides, so this
//! list picks the cipher of every agent connection (the hub offers russh's
//! default list, which has both).
//!
//! AES-256-GCM where the CPU encrypts AES and multiplies carry-less in
//! hardware (x86-64 AES-NI and PCLMULQDQ, ARMv8 AES and PMULL), else
//! ChaCha20-Poly1305, which is the faster of the two in software. Both are
//! AEADs with 256-bit keys; this is the same rule TLS libraries use to order
//! their suites. Measured here (`nextdeploy-bench quick --only throughput`,
//! both sides of each path on the same cipher): with ChaCha20-Poly1305 the
//! hub spends 1.5 ms per MB streamed and the agent 1.3, with AES-256-GCM 1.0
//! and 0.8; OpenSSH's own pair 3.2 and 2.2 ms per MB.

use russh::cipher::{Name, AES_256_GCM, CHACHA20_POLY1305};

const HARDWARE_AES: &[Name] = &[AES_256_GCM, CHACHA20_POLY1305];
const SOFTWARE_AES: &[Name] = &[CHACHA20_POLY1305, AES_256_GCM];

/// Whether this CPU has AES and carry-less multiplication instructions.
pub fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The agent's ciphers, most preferred first (see the module doc).
pub fn agent_ciphers() -> &'static [Name] {
    if hardware_aes() {
        HARDWARE_AES
    } else {
        SOFTWARE_AES
    }
}

/// The cipher an agent on this machine negotiates with the hub.
pub fn agent_cipher() -> &'static str {
    agent_ciphers()[0].as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_aeads_offered_and_the_first_follows_the_hardware() {
        let list = agent_ciphers();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&AES_256_GCM) && list.contains(&CHACHA20_POLY1305));
        let want = if hardware_aes() {
            "aes256-gcm@openssh.com"
        } else {
            "chacha20-poly1305@openssh.com"
        };
        assert_eq!(agent_cipher(), want);
    }

    /// Every name is one russh implements (a typo would fail negotiation).
    #[test]
    fn every_name_is_a_russh_cipher() {
        for n in agent_ciphers() {
            assert!(russh::cipher::ALL_CIPHERS.contains(&n), "{}", n.as_ref());
        }
    }
}
