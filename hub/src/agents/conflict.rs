//! Two agents with one key. The newest connection with a key wins
//! ([`super::Registry::register`]), which is right when an agent restarts
//! before the hub noticed its old connection die; but two live agents that
//! share a key (a copied config, a second process on one config) would then
//! replace each other every few seconds, forever. [`Flaps`] counts the
//! replacements of each agent: past [`KEY_FLAP_MAX_REPLACEMENTS`] within
//! [`KEY_FLAP_WINDOW`], the hub keeps the connection it has and refuses the
//! newcomer, and goes on refusing newcomers while one is online, until
//! [`KEY_CONFLICT_HOLD`] passes without a refusal.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use nextdeploy_shared::protocol::agents::KeyConflict;
use nextdeploy_shared::protocol::KEY_CONFLICT_PREFIX;
use nextdeploy_shared::time::{now_unix, rfc3339};

use crate::limits::{KEY_CONFLICT_HOLD, KEY_FLAP_MAX_REPLACEMENTS, KEY_FLAP_WINDOW};

/// One agent's replacements and conflict.
#[derive(Default)]
struct Flap {
    /// When its recent replacements happened, oldest first.
    recent: VecDeque<Instant>,
    /// The conflict, once declared.
    conflict: Option<Conflict>,
}

/// A declared conflict.
struct Conflict {
    since: i64,
    kept: SocketAddr,
    refused: SocketAddr,
    refusals: u64,
    last: Instant,
}

/// A new connection refused because of a key conflict.
#[derive(Debug)]
pub struct Refusal {
    /// The disconnect message for the refused agent.
    pub reason: String,
    /// Whether this refusal declared the conflict (log it, publish an event).
    pub first: bool,
}

/// Replacements and conflicts by agent name.
#[derive(Default)]
pub struct Flaps {
    by_name: HashMap<String, Flap>,
}

impl Flaps {
    /// A connection from `new` for `name` while one from `live` is online:
    /// `None` to replace the live one (the usual restart), or why it is refused.
    pub fn judge(&mut self, name: &str, live: SocketAddr, new: SocketAddr) -> Option<Refusal> {
        let now = Instant::now();
        let flap = self.by_name.entry(name.to_string()).or_default();
        while flap
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > KEY_FLAP_WINDOW)
        {
            flap.recent.pop_front();
        }
        let held = flap
            .conflict
            .as_ref()
            .is_some_and(|c| now.duration_since(c.last) <= KEY_CONFLICT_HOLD);
        if !held && flap.recent.len() < KEY_FLAP_MAX_REPLACEMENTS {
            flap.conflict = None;
            flap.recent.push_back(now);
            return None;
        }
        let first = !held;
        let c = flap.conflict.get_or_insert(Conflict {
            since: now_unix(),
            kept: live,
            refused: new,
            refusals: 0,
            last: now,
        });
        c.kept = live;
        c.refused = new;
        c.refusals += 1;
        c.last = now;
        let reason = format!(
            "{KEY_CONFLICT_PREFIX} another connection with this agent's key is online \
             (from {live}); two agents share one key (a copied config or key?), so the hub \
             keeps that one and refuses this one (from {new}); give each server its own \
             enrolment"
        );
        Some(Refusal { reason, first })
    }

    /// The conflict of `name` for `agent list`, while it holds.
    pub fn conflict(&self, name: &str) -> Option<KeyConflict> {
        let c = self.by_name.get(name)?.conflict.as_ref()?;
        if c.last.elapsed() > KEY_CONFLICT_HOLD {
            return None;
        }
        Some(KeyConflict {
            since: rfc3339(c.since),
            kept: c.kept.to_string(),
            refused: c.refused.to_string(),
            refusals: c.refusals,
        })
    }

    /// Forget agents with nothing recent (called now and then, so the map
    /// holds only agents that flapped lately).
    pub fn prune(&mut self) {
        let now = Instant::now();
        self.by_name.retain(|_, f| {
            let recent = f
                .recent
                .back()
                .is_some_and(|t| now.duration_since(*t) <= KEY_FLAP_WINDOW);
            let held = f
                .conflict
                .as_ref()
                .is_some_and(|c| now.duration_since(c.last) <= KEY_CONFLICT_HOLD);
            recent || held
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_past_the_limit_become_a_conflict_that_holds() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let mut f = Flaps::default();
        for _ in 0..KEY_FLAP_MAX_REPLACEMENTS {
            assert!(f.judge("x", a, b).is_none());
        }
        assert!(f.conflict("x").is_none());
        let r = f.judge("x", a, b).unwrap();
        assert!(r.first);
        assert!(r.reason.starts_with(KEY_CONFLICT_PREFIX), "{}", r.reason);
        assert!(!f.judge("x", b, a).unwrap().first);
        let c = f.conflict("x").unwrap();
        assert_eq!((c.refusals, c.kept.as_str()), (2, "10.0.0.2:2"));
        assert!(f.conflict("y").is_none());
        assert!(f.judge("y", a, b).is_none());
    }
}
