//! Dashboard sessions: a browser exchanges an API token for a random session
//! id (`POST /api/session`, [`super::signin`]) kept in an HttpOnly cookie.
//! The hub keeps them by the SHA-256 of the id (a memory dump, a log line or
//! the store holds no usable id): in memory, with the cancellation that
//! closes their WebSockets, and in the store, so that every hub of a cluster
//! knows them ([`crate::store::sessions`]); at most [`MAX_SESSIONS`] in
//! memory, each for at
//! most [`SESSION_TTL`]. A session is tied to its token: every use rechecks
//! the token, and a session's `ended` token closes the WebSockets opened with
//! it when the session ends (sign-out, eviction). One token holds at most
//! [`MAX_SESSIONS_PER_TOKEN`]: its own oldest ends at that cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::limits::{MAX_SESSIONS, MAX_SESSIONS_PER_TOKEN, SESSION_TTL};
use crate::sync::lock_or_recover;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API token it was opened with.
    pub token_id: String,
    /// When it was opened (the oldest goes first at the cap).
    pub opened: Instant,
    /// When it ends by itself.
    pub expires: Instant,
    /// Cancelled when the session ends: its WebSockets close.
    pub ended: CancellationToken,
}

impl Session {
    /// Time left before it ends by itself.
    pub fn time_left(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }
}

/// The sessions of this hub, by the hash of their id.
#[derive(Debug)]
pub struct Sessions {
    max: usize,
    per_token: usize,
    ttl: Duration,
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(MAX_SESSIONS, SESSION_TTL).per_token(MAX_SESSIONS_PER_TOKEN)
    }
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The hash of a session id as the store keeps it (hex).
pub fn hash_hex(id: &str) -> String {
    hex::encode(hash(id))
}

impl Sessions {
    /// At most `max` sessions, each lasting `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Sessions {
        Sessions {
            max: max.max(1),
            per_token: max.max(1),
            ttl,
            by_hash: Mutex::default(),
        }
    }

    /// At most `n` sessions per token.
    pub fn per_token(mut self, n: usize) -> Sessions {
        self.per_token = n.max(1);
        self
    }

    /// Open a session for `token_id`: its id (256 random bits, hex), the
    /// cookie's value, shown only here. Expired sessions are dropped first;
    /// at the token's cap its oldest session ends; at the hub's cap `None`.
    pub fn open(&self, token_id: &str) -> Option<(String, Session)> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let session = Session {
            token_id: token_id.to_string(),
            opened: now,
            expires: now + self.ttl,
            ended: CancellationToken::new(),
        };
        let mut map = lock_or_recover(&self.by_hash);
        map.retain(|_, s| {
            let live = s.expires > now;
            if !live {
                s.ended.cancel();
            }
            live
        });
        let own = |m: &HashMap<[u8; 32], Session>| {
            m.iter().filter(|(_, s)| s.token_id == token_id).count()
        };
        while own(&map) >= self.per_token {
            let oldest = map
                .iter()
                .filter(|(_, s)| s.token_id == token_id)
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| *k);
            match oldest.and_then(|k| map.remove(&k)) {
                Some(s) => s.ended.cancel(),
                None => break,
            }
        }
        if map.len() >= self.max {
            return None;
        }
        map.insert(hash(&id), session.clone());
        Some((id, session))
    }

    /// The live session with this id, if any (an expired one is dropped).
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = hash(id);
        let mut map = lock_or_recover(&self.by_hash);
        let s = map.get(&key)?;
        if s.expires > Instant::now() {
            return Some(s.clone());
        }
        if let Some(s) = map.remove(&key) {
            s.ended.cancel();
        }
        None
    }

    /// Take in a session another hub opened (read from the store), ending
    /// at `expires_unix`: as [`Sessions::get`] would give it, or `None` at
    /// this hub's cap or when it has no time left.
    pub fn adopt(&self, id: &str, token_id: &str, expires_unix: i64) -> Option<Session> {
        let left = expires_unix - nextdeploy_shared::time::now_unix();
        let left = Duration::from_secs(u64::try_from(left).ok()?.min(self.ttl.as_secs()));
        let now = Instant::now();
        let session = Session {
            token_id: token_id.to_string(),
            opened: now,
            expires: now + left,
            ended: CancellationToken::new(),
        };
        let mut map = lock_or_recover(&self.by_hash);
        if map.len() >= self.max {
            return None;
        }
        Some(map.entry(hash(id)).or_insert(session).clone())
    }

    /// End the session whose id hashes to `hex` (signed out on another
    /// hub): whether this hub held it.
    pub fn close_hash(&self, hex: &str) -> bool {
        let Ok(Ok(key)) = hex::decode(hex).map(<[u8; 32]>::try_from) else {
            return false;
        };
        let removed = lock_or_recover(&self.by_hash).remove(&key);
        removed.map(|s| s.ended.cancel()).is_some()
    }

    /// End the session with this id (sign-out): whether there was one.
    pub fn close(&self, id: &str) -> bool {
        let removed = lock_or_recover(&self.by_hash).remove(&hash(id));
        removed.map(|s| s.ended.cancel()).is_some()
    }

    /// End every session of `token_id` (its token was revoked or expired).
    pub fn close_token(&self, token_id: &str) {
        lock_or_recover(&self.by_hash).retain(|_, s| {
            let keep = s.token_id != token_id;
            if !keep {
                s.ended.cancel();
            }
            keep
        });
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        lock_or_recover(&self.by_hash).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_finds_its_session_and_only_its_hash_is_kept() {
        let s = Sessions::default();
        let (id, opened) = s.open("tok").unwrap();
        assert_eq!(id.len(), 64, "256 bits in hex");
        assert_eq!(s.get(&id).unwrap().token_id, "tok");
        assert!(s.get("0".repeat(64).as_str()).is_none());
        let map = lock_or_recover(&s.by_hash);
        assert!(map.contains_key(&hash(&id)));
        assert!(!format!("{map:?}").contains(&id), "the raw id is kept");
        drop(map);
        assert!(!opened.ended.is_cancelled());
        let (other, _) = s.open("tok").unwrap();
        assert_ne!(id, other);
    }

    #[test]
    fn a_session_of_another_hub_is_adopted_and_closed_by_its_hash() {
        let s = Sessions::default();
        let id = "ab".repeat(32);
        let far = nextdeploy_shared::time::now_unix() + 600;
        let got = s.adopt(&id, "tok", far).unwrap();
        assert_eq!(s.get(&id).unwrap().token_id, "tok");
        assert!(got.time_left() <= Duration::from_secs(600));
        assert!(s.adopt(&"cd".repeat(32), "tok", 0).is_none(), "expired");
        assert!(s.close_hash(&hash_hex(&id)));
        assert!(got.ended.is_cancelled() && s.get(&id).is_none());
        assert!(!s.close_hash("not hex"));
    }

    #[test]
    fn sign_out_and_revocation_end_sessions_and_cancel_their_sockets() {
        let s = Sessions::default();
        let (a, sa) = s.open("t1").unwrap();
        let (b, sb) = s.open("t1").unwrap();
        let (c, sc) = s.open("t2").unwrap();
        assert!(s.close(&a));
        assert!(!s.close(&a), "closed twice");
        assert!(sa.ended.is_cancelled() && s.get(&a).is_none());
        s.close_token("t1");
        assert!(sb.ended.is_cancelled() && s.get(&b).is_none());
        assert!(!sc.ended.is_cancelled() && s.get(&c).is_some());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn at_a_tokens_cap_its_own_oldest_ends_at_the_hubs_cap_none_opens() {
        let s = Sessions::new(3, Duration::from_secs(60)).per_token(2);
        let (a, sa) = s.open("t").unwrap();
        let (b, _) = s.open("t").unwrap();
        let (c, _) = s.open("t").unwrap();
        assert!(sa.ended.is_cancelled() && s.get(&a).is_none());
        assert!(s.get(&b).is_some() && s.get(&c).is_some());
        let (u, su) = s.open("u").unwrap();
        assert_eq!(s.len(), 3);
        // The hub is full: another token is refused and nobody is signed out.
        assert!(s.open("v").is_none());
        assert!(!su.ended.is_cancelled() && s.get(&u).is_some());
        assert!(s.get(&b).is_some() && s.get(&c).is_some());

        let short = Sessions::new(10, Duration::ZERO);
        let (d, sd) = short.open("t").unwrap();
        assert!(short.get(&d).is_none(), "an expired session was served");
        assert!(sd.ended.is_cancelled() && short.is_empty());
    }
}
