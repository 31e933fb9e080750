//! WebSocket connections per API token: at most `--max-connections-per-token`
//! open at once, so one token (a leaked one, a script in a loop) cannot hold
//! connections, and their requests, against every other. A [`ConnGuard`] is
//! taken when the upgrade is accepted and released when dropped: when the
//! connection ends by any path (close, error, revocation, shutdown), or when
//! the upgrade never completes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::sync::lock_or_recover;

/// Open connections by token id.
#[derive(Debug)]
pub struct PerToken {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open connection of a token; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    counts: Arc<PerToken>,
    token_id: String,
}

impl PerToken {
    /// At most `max` connections per token.
    pub fn new(max: usize) -> Arc<PerToken> {
        Arc::new(PerToken {
            max,
            open: Mutex::default(),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more connection of `token_id`, or `None` at the cap.
    pub fn try_open(self: &Arc<Self>, token_id: &str) -> Option<ConnGuard> {
        let mut open = lock_or_recover(&self.open);
        let n = open.entry(token_id.to_string()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnGuard {
            counts: self.clone(),
            token_id: token_id.to_string(),
        })
    }

    /// Connections `token_id` holds open.
    pub fn open(&self, token_id: &str) -> usize {
        lock_or_recover(&self.open)
            .get(token_id)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = lock_or_recover(&self.counts.open);
        if let Some(n) = open.get_mut(&self.token_id) {
            *n = n.saturating_sub(1);
            // Tokens without connections take no memory.
            if *n == 0 {
                open.remove(&self.token_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_at_its_cap_is_refused_others_are_not_and_a_close_frees_a_place() {
        let counts = PerToken::new(3);
        let mut held: Vec<ConnGuard> = (0..3).map(|_| counts.try_open("a").unwrap()).collect();
        assert!(counts.try_open("a").is_none());
        let other = counts.try_open("b").unwrap();
        assert_eq!((counts.open("a"), counts.open("b")), (3, 1));
        held.pop();
        assert_eq!(counts.open("a"), 2);
        held.push(counts.try_open("a").unwrap());
        assert!(counts.try_open("a").is_none());
        drop(held);
        drop(other);
        assert_eq!((counts.open("a"), counts.open("b")), (0, 0));
        assert!(lock_or_recover(&counts.open).is_empty());
    }
}
