//! The registry of connected agents: name -> live connection. Routing asks it
//! for an agent and sends it a one-shot request on its [`control::Control`]
//! channel or opens a [`stream::ReplyStream`] on it. With several hubs this is
//! the seam that will answer "which hub holds agent X"; today it is memory.

pub mod conflict;
pub mod control;
pub mod pending;
pub mod slots;
pub mod stream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::Hello;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One connected agent.
pub struct AgentConn {
    /// Name from the store (the key's identity).
    pub name: String,
    /// Labels from the store.
    pub labels: Labels,
    /// Unique per connection, so a replaced connection cannot unregister its successor.
    pub conn_id: u64,
    /// Handle of the SSH session, to open channels on it.
    pub handle: russh::server::Handle,
    /// The control channel: its writer and the one-shot requests on it.
    pub control: Arc<control::Control>,
    /// What the agent said about itself.
    pub hello: Hello,
    /// Where the connection comes from.
    pub address: SocketAddr,
    /// Unix time of the connection.
    pub connected_at: i64,
    /// Unix time of the last frame from the agent.
    pub last_seen: AtomicI64,
    /// Stream slots; each open request holds one, viewers within their share.
    pub slots: slots::Slots,
    /// Cancelled to cut the connection (revocation, replacement, shutdown).
    pub cancel: CancellationToken,
    /// The latest health snapshot the agent pushed.
    pub health: std::sync::Mutex<Option<Arc<HealthSnapshot>>>,
    /// Unix ms of the last snapshot queued for the history (see [`AgentConn::history_due`]).
    pub history_at_ms: AtomicI64,
}

impl AgentConn {
    /// The latest snapshot, if any.
    pub fn latest_health(&self) -> Option<Arc<HealthSnapshot>> {
        crate::sync::lock_or_recover(&self.health).clone()
    }

    /// Whether a snapshot received at `now_ms` goes to the history: not
    /// within [`HEALTH_MIN_GAP`](crate::limits::HEALTH_MIN_GAP) of the last
    /// one that did (a clock stepped back counts as due).
    pub fn history_due(&self, now_ms: i64) -> bool {
        let last = self.history_at_ms.load(Ordering::Relaxed);
        if !gap_passed(last, now_ms) {
            return false;
        }
        self.history_at_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What a new connection is made of, for [`Registry::new_conn`].
pub struct NewConn {
    /// Name from the store.
    pub name: String,
    /// Labels from the store.
    pub labels: Labels,
    /// Handle of the SSH session.
    pub handle: russh::server::Handle,
    /// The control channel.
    pub control: Arc<control::Control>,
    /// What the agent said about itself.
    pub hello: Hello,
    /// Where the connection comes from.
    pub address: SocketAddr,
    /// Unix time of the connection.
    pub now: i64,
    /// Cancelled to cut the connection.
    pub cancel: CancellationToken,
}

/// Connected agents by name.
#[derive(Default)]
pub struct Registry {
    agents: RwLock<HashMap<String, Arc<AgentConn>>>,
    next_conn: AtomicU64,
    /// Ids of one-shot requests on control channels, unique across the hub.
    pub request_ids: Arc<control::RequestIds>,
    /// Woken on every registration change (tests and waiters).
    pub changed: Notify,
    /// Replacements per agent, to catch two agents sharing one key.
    flaps: std::sync::Mutex<conflict::Flaps>,
    /// Authenticated connections not registered yet (capped; cut by [`Registry::kick`]).
    pub pending: Arc<pending::Pending>,
}

impl Registry {
    /// A registry whose unregistered connections are capped at `cap`.
    pub fn with_unregistered_cap(cap: usize) -> Registry {
        Registry {
            pending: Arc::new(pending::Pending::with_cap(cap)),
            ..Registry::default()
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Build a connection record with a fresh connection id and stream
    /// slots.
    pub fn new_conn(&self, parts: NewConn) -> Arc<AgentConn> {
        Arc::new(AgentConn {
            name: parts.name,
            labels: parts.labels,
            conn_id: self.next_conn_id(),
            handle: parts.handle,
            control: parts.control,
            hello: parts.hello,
            address: parts.address,
            connected_at: parts.now,
            last_seen: AtomicI64::new(parts.now),
            slots: slots::Slots::default(),
            cancel: parts.cancel,
            health: std::sync::Mutex::new(None),
            history_at_ms: AtomicI64::new(0),
        })
    }

    /// Register a connection. A previous connection of the same agent is
    /// cancelled: the newest connection with a key wins, unless the two kept
    /// replacing each other ([`conflict`]): then the new one is refused and
    /// the [`conflict::Refusal`] says why.
    pub fn register(&self, conn: Arc<AgentConn>) -> Result<(), conflict::Refusal> {
        let mut map = self.write();
        if let Some(live) = map.get(&conn.name) {
            let mut flaps = crate::sync::lock_or_recover(&self.flaps);
            if let Some(refusal) = flaps.judge(&conn.name, live.address, conn.address) {
                return Err(refusal);
            }
        }
        let old = map.insert(conn.name.clone(), conn);
        drop(map);
        if let Some(old) = old {
            old.cancel.cancel();
        } else {
            crate::sync::lock_or_recover(&self.flaps).prune();
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// The key conflict of `name`, while it holds.
    pub fn conflict(&self, name: &str) -> Option<nextdeploy_shared::protocol::agents::KeyConflict> {
        crate::sync::lock_or_recover(&self.flaps).conflict(name)
    }

    /// Remove `name` if it is still connection `conn_id`.
    pub fn unregister(&self, name: &str, conn_id: u64) -> bool {
        let mut map = self.write();
        let removed = match map.get(name) {
            Some(c) if c.conn_id == conn_id => map.remove(name).is_some(),
            _ => false,
        };
        drop(map);
        if removed {
            self.changed.notify_waiters();
        }
        removed
    }

    /// The live connection of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<AgentConn>> {
        self.read().get(name).cloned()
    }

    /// Every live connection.
    pub fn all(&self) -> Vec<Arc<AgentConn>> {
        self.read().values().cloned().collect()
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no agent is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cut every connection of `name`: the registered one, if any, and those
    /// that authenticated and have not registered yet. Whether one was
    /// registered (online).
    pub fn kick(&self, name: &str) -> bool {
        let cut = self.pending.cut(name);
        if cut > 0 {
            tracing::info!(agent = name, cut, "cut unregistered connections");
        }
        match self.get(name) {
            Some(c) => {
                c.cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<AgentConn>>> {
        crate::sync::read_or_recover(&self.agents)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<AgentConn>>> {
        crate::sync::write_or_recover(&self.agents)
    }
}

/// Whether [`HEALTH_MIN_GAP`](crate::limits::HEALTH_MIN_GAP) has passed from
/// `last_ms` to `now_ms` (a clock stepped back counts as passed).
fn gap_passed(last_ms: i64, now_ms: i64) -> bool {
    let gap = crate::limits::HEALTH_MIN_GAP.as_millis() as i64;
    !(0..gap).contains(&now_ms.saturating_sub(last_ms))
}

#[cfg(test)]
mod tests {
    use super::gap_passed;
    use crate::limits::HEALTH_MIN_GAP;

    #[test]
    fn history_takes_one_snapshot_per_gap() {
        let gap = HEALTH_MIN_GAP.as_millis() as i64;
        let t = 1_800_000_000_000;
        assert!(gap_passed(0, t), "the first snapshot");
        assert!(!gap_passed(t, t));
        assert!(!gap_passed(t, t + gap - 1));
        assert!(gap_passed(t, t + gap));
        assert!(gap_passed(t, t - 1), "clock stepped back");
        assert!(gap_passed(i64::MIN, i64::MAX));
        // An agent pushing every second (the fastest it may be set to) keeps every one.
        assert!(gap_passed(t, t + 1000));
    }
}
