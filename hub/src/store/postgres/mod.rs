//! PostgreSQL implementation of the store ([`Backend`]), for several hubs on
//! one database. The statements are SQLite's (see [`crate::store::sql`]);
//! this module holds what differs: connections, the schema, and how a
//! revocation reaches every hub (`NOTIFY` on a channel each store listens
//! to, see [`notify`]).
//!
//! Connections mirror SQLite's layout: one for every write but the
//! history's, one for the history writer, one for history reads, each
//! behind a mutex and used only from the blocking pool ([`crate::store::blocking`];
//! the sync client must never run on an async worker), plus the listener's
//! own on its thread; and, unlike SQLite (whose reads take microseconds),
//! [`crate::limits::PG_READ_CONNECTIONS`] for authentication's look-ups, so that key
//! checks do not queue behind each other's round trips and the writes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::backend::{Backend, LabelCache};
use super::health::{cache::BlockCache, NameCache};
use super::sql::{p, Db};
use super::StoreResult;

mod db;
pub mod dial;
pub mod notify;
mod open;
mod schema;
pub mod url;

pub use db::PgConn;

/// The channel revoked API token ids are announced on.
pub const REVOKED_CHANNEL: &str = "nextdeploy_revoked";

/// The store on PostgreSQL.
pub struct PgStore {
    main: Mutex<PgConn>,
    /// Authentication's reads, taken round-robin, a free one first.
    reads: Vec<Mutex<PgConn>>,
    next_read: AtomicUsize,
    health: Mutex<(PgConn, NameCache)>,
    health_read: Mutex<PgConn>,
    history_cache: Mutex<BlockCache>,
    /// Other hubs enrol and revoke too: kept [`crate::limits::PG_LABEL_INDEX_TTL`].
    labels: LabelCache,
    revoked: broadcast::Sender<String>,
    /// Tells the listener thread to end when the store is dropped.
    stop: Arc<AtomicBool>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Backend for PgStore {
    fn main<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut *crate::sync::lock_or_recover(&self.main))
    }

    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        let n = self.reads.len();
        let start = self.next_read.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            let free = match self.reads[(start + i) % n].try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut conn) = free {
                return f(&mut *conn);
            }
        }
        f(&mut *crate::sync::lock_or_recover(&self.reads[start]))
    }

    fn health<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut NameCache) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut h = crate::sync::lock_or_recover(&self.health);
        let (conn, names) = &mut *h;
        f(conn, names)
    }

    fn health_read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut BlockCache) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut c = crate::sync::lock_or_recover(&self.health_read);
        f(
            &mut *c,
            &mut crate::sync::lock_or_recover(&self.history_cache),
        )
    }

    fn label_cache(&self) -> &LabelCache {
        &self.labels
    }

    fn announce_revocation(&self, db: &mut dyn Db, id: &str) -> StoreResult<()> {
        // Every store listening, this one included, hears it (see [`notify`]).
        db.execute("SELECT pg_notify(?1, ?2)", p![REVOKED_CHANNEL, id])?;
        Ok(())
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    fn heard_revocation(&self, _id: &str) {
        // Every revocation reached this store's listener by NOTIFY already.
    }
}
