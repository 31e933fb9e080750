//! Connections that authenticated and have not registered yet: an agent
//! between its key check and its hello, or an enrolment in progress.
//!
//! They are counted, so that a holder of an enrolled key (or of a valid join
//! token id) cannot pile up silent sessions ([`MAX_UNREGISTERED`]), and
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
#[derive(Default)]
pub struct Pending {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
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

/// The table is full: [`MAX_UNREGISTERED`] connections are waiting already.
#[derive(Debug, thiserror::Error)]
#[error("too many authenticated connections waiting to register ({MAX_UNREGISTERED})")]
pub struct Full;

impl Pending {
    /// Count a connection of agent `name` (`None`: an enrolment), cut through
    /// `cancel`. Refused when [`MAX_UNREGISTERED`] are waiting.
    pub fn enter(
        self: &Arc<Self>,
        name: Option<&str>,
        cancel: CancellationToken,
    ) -> Result<PendingSlot, Full> {
        let mut map = crate::sync::lock_or_recover(&self.entries);
        if map.len() >= MAX_UNREGISTERED {
            return Err(Full);
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
}
