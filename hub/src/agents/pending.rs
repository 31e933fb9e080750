//! Connections that authenticated and have not registered yet: an agent
//! between its key check and its hello, or an enrolment in progress.
//!
//! They are counted, so that a holder of an enrolled key (or of a valid join
//! token id) cannot pile up silent sessions (a cap: [`MAX_UNREGISTERED`] by
//! default, [`crate::limits::UNREGISTERED_PER_HANDSHAKE`] per slot), and
//! revocation finds them: [`super::Registry::kick`] cancels every connection
//! of the agent, registered or not, so no connection that authenticated
//! before the revocation can still say hello after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::limits::MAX_UNREGISTERED;

/// One unregistered connection: whose, and how to cut it.
struct Entry {
    /// The agent's name; `None` for an enrolment.
    name: Option<String>,
    cancel: CancellationToken,
}

/// The table of unregistered connections.
pub struct Pending {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    cap: usize,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending::with_cap(MAX_UNREGISTERED)
    }
}

/// Held while a connection is authenticated and unregistered; dropping it
/// takes the connection off the table.
pub struct PendingSlot {
    id: u64,
    table: Arc<Pending>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        crate::sync::lock_or_recover(&self.table.entries).remove(&self.id);
    }
}

/// The table is full: its cap of connections are waiting already.
#[derive(Debug, thiserror::Error)]
#[error("too many authenticated connections waiting to register ({0})")]
pub struct Full(pub usize);

impl Pending {
    /// A table that takes at most `cap` connections.
    pub fn with_cap(cap: usize) -> Pending {
        Pending {
            entries: Mutex::default(),
            next: AtomicU64::default(),
            cap: cap.max(1),
        }
    }

    /// Count a connection of agent `name` (`None`: an enrolment), cut through
    /// `cancel`. Refused when the table's cap are waiting.
    pub fn enter(
        self: &Arc<Self>,
        name: Option<&str>,
        cancel: CancellationToken,
    ) -> Result<PendingSlot, Full> {
        let mut map = crate::sync::lock_or_recover(&self.entries);
        if map.len() >= self.cap {
            return Err(Full(self.cap));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let name = name.map(str::to_string);
        map.insert(id, Entry { name, cancel });
        Ok(PendingSlot {
            id,
            table: self.clone(),
        })
    }

    /// Cancel every unregistered connection of `name`; how many there were.
    pub fn cut(&self, name: &str) -> usize {
        let map = crate::sync::lock_or_recover(&self.entries);
        let mine = map.values().filter(|e| e.name.as_deref() == Some(name));
        mine.map(|e| e.cancel.cancel()).count()
    }

    /// Connections waiting now.
    pub fn len(&self) -> usize {
        crate::sync::lock_or_recover(&self.entries).len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_counted_until_dropped_and_cut_by_name() {
        let table = Arc::new(Pending::default());
        let a = CancellationToken::new();
        let slot_a = table.enter(Some("a"), a.clone()).unwrap();
        let mut held = vec![];
        for _ in 1..MAX_UNREGISTERED {
            held.push(table.enter(None, CancellationToken::new()).unwrap());
        }
        assert!(table.enter(Some("b"), CancellationToken::new()).is_err());
        held.pop();
        assert!(table.enter(Some("b"), CancellationToken::new()).is_ok());
        assert_eq!(table.cut("a"), 1);
        assert!(a.is_cancelled());
        drop(slot_a);
        assert_eq!(table.cut("a"), 0);
    }

    #[test]
    fn a_raised_cap_holds_as_the_default_does() {
        let table = Arc::new(Pending::with_cap(3));
        let held: Vec<_> = (0..3)
            .map(|_| table.enter(None, CancellationToken::new()).unwrap())
            .collect();
        let e = table
            .enter(Some("x"), CancellationToken::new())
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "too many authenticated connections waiting to register (3)"
        );
        drop(held);
        assert!(table.is_empty());
    }
}
