//! Tokens: a public id plus a secret of 192 random bits, behind a prefix that says
//! what the token is, so a leaked one is easy to grep for.
//!
//! - API token: `nda_<id>_<secret>`
//! - join token: `ndj_<id>_<secret>_<hub fingerprint>`; the last part is the hub's
//!   host-key SHA-256 fingerprint (base64, as after `SHA256:`), so an agent pins
//!   the hub from its very first connection.
//!
//! Only `sha256(secret)` is stored; lookups go by id and the hash is compared in
//! constant time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Prefix of API tokens.
pub const API_PREFIX: &str = "nda";
/// Prefix of join tokens.
pub const JOIN_PREFIX: &str = "ndj";

/// Bytes of randomness in a token id (public, used for lookups).
const ID_BYTES: usize = 6;
/// Bytes of randomness in a token secret: 192 bits.
const SECRET_BYTES: usize = 24;

/// A token split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    /// `nda` or `ndj`.
    pub kind: &'static str,
    /// Public id, for lookups.
    pub id: String,
    /// The secret part.
    pub secret: Secret<String>,
    /// Join tokens only: the pinned hub fingerprint, `SHA256:...`.
    pub hub_fingerprint: Option<String>,
}

impl ParsedToken {
    /// The token's text, as [`new_api_token`] and [`new_join_token`] write
    /// it: [`parse`] of this gives the same token back.
    pub fn text(&self) -> Secret<String> {
        let (kind, id, secret) = (self.kind, &self.id, self.secret.expose());
        Secret::new(match &self.hub_fingerprint {
            Some(fp) => format!("{kind}_{id}_{secret}_{}", fp.trim_start_matches("SHA256:")),
            None => format!("{kind}_{id}_{secret}"),
        })
    }
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A new token id.
pub fn new_id() -> String {
    random_hex(ID_BYTES)
}

/// A new API token: (id, full token text).
pub fn new_api_token() -> (String, Secret<String>) {
    let token = ParsedToken {
        kind: API_PREFIX,
        id: new_id(),
        secret: Secret::new(random_hex(SECRET_BYTES)),
        hub_fingerprint: None,
    };
    (token.id.clone(), token.text())
}

/// A new join token bound to the hub fingerprint `SHA256:...`: (id, token text).
pub fn new_join_token(hub_fingerprint: &str) -> (String, Secret<String>) {
    let fp = hub_fingerprint.trim_start_matches("SHA256:");
    let token = ParsedToken {
        kind: JOIN_PREFIX,
        id: new_id(),
        secret: Secret::new(random_hex(SECRET_BYTES)),
        hub_fingerprint: Some(format!("SHA256:{fp}")),
    };
    (token.id.clone(), token.text())
}

/// Parse a token of either kind. Errors do not echo the token.
pub fn parse(text: &str) -> Result<ParsedToken, &'static str> {
    let parts: Vec<&str> = text.trim().split('_').collect();
    let hexok = |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [API_PREFIX, id, secret] if hexok(id, ID_BYTES) && hexok(secret, SECRET_BYTES) => {
            Ok(ParsedToken {
                kind: API_PREFIX,
                id: id.to_string(),
                secret: Secret::new(secret.to_string()),
                hub_fingerprint: None,
            })
        }
        [JOIN_PREFIX, id, secret, fp]
            if hexok(id, ID_BYTES)
                && hexok(secret, SECRET_BYTES)
                && fp.len() == 43
                && fp
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') =>
        {
            Ok(ParsedToken {
                kind: JOIN_PREFIX,
                id: id.to_string(),
                secret: Secret::new(secret.to_string()),
                hub_fingerprint: Some(format!("SHA256:{fp}")),
            })
        }
        [API_PREFIX, ..] => Err("malformed API token (expected nda_<id>_<secret>)"),
        [JOIN_PREFIX, ..] => Err("malformed join token (expected ndj_<id>_<secret>_<fingerprint>)"),
        _ => Err("not a NextDeploy token (expected a token starting with nda_ or ndj_)"),
    }
}

/// The stored form of a secret: hex of its SHA-256. Secrets carry 192 random
/// bits, so a fast hash is enough: there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compare a presented secret with a stored hash in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_token_roundtrip() {
        let (id, tok) = new_api_token();
        assert!(tok.expose().starts_with("nda_"));
        let p = parse(tok.expose()).unwrap();
        assert_eq!(p.kind, API_PREFIX);
        assert_eq!(p.id, id);
        let h = hash_secret(p.secret.expose());
        assert!(verify_secret(p.secret.expose(), &h));
        assert!(!verify_secret("00", &h));
        assert!(!h.contains(p.secret.expose()));
    }

    #[test]
    fn join_token_carries_fingerprint() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        let (id, tok) = new_join_token(fp);
        let p = parse(tok.expose()).unwrap();
        assert_eq!(p.kind, JOIN_PREFIX);
        assert_eq!(p.id, id);
        assert_eq!(p.hub_fingerprint.as_deref(), Some(fp));
    }

    /// A parsed token of either form writes back to its text (trimmed).
    #[test]
    fn a_parsed_token_writes_back() {
        let api = "nda_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef";
        let join = format!(
            "ndj_{}_uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            &api[4..]
        );
        for text in [api.to_string(), join] {
            let t = parse(&format!(" {text}\n")).unwrap();
            assert_eq!(t.text().expose(), &text);
        }
    }

    #[test]
    fn malformed_tokens() {
        assert!(parse("").is_err());
        assert!(parse("nda_zz_yy").is_err());
        assert!(parse("ndj_0011").is_err());
        assert!(parse("Bearer xyz").is_err());
        let err = parse("nda_0123456789ab_secretsecret").unwrap_err();
        assert!(!err.contains("secretsecret"));
    }
}
