//! SQLite implementation of the store ([`Backend`]): one connection behind a
//! mutex, WAL mode, a busy timeout, and migrations applied at open (tracked
//! in `user_version`). The health history has a second connection of its
//! own (see [`HealthDb`]), so its writes never hold the lock that
//! authentication reads wait for. The statements are shared with
//! PostgreSQL (see [`crate::store::backend`]).

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::broadcast;

use super::backend::{Backend, LabelCache};
use super::health::{cache::BlockCache, NameCache};
use super::sql::Db;
use super::StoreResult;

/// Revocations waiting for each open connection: one that falls this far
/// behind re-reads its token from the store (see `Lagged` in `http/ws.rs`),
/// so any depth is correct; 64 absorbs a cleanup script revoking a batch
/// without those reads.
pub const REVOCATION_QUEUE: usize = 64;

/// The health history's own connection to the same database, with its
/// cache of container names. Agents' snapshots are written here in short
/// transactions; in WAL mode a reader on the main connection (an SSH key or
/// API token check) never waits for them, and a writer there waits at most
/// one of them (`HEALTH_TX_CONTAINERS`, `COMPACT_TX_WINDOWS`).
struct HealthDb {
    conn: Connection,
    names: NameCache,
}

/// The embedded store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    health: Mutex<HealthDb>,
    /// A third connection for history queries, so a chart never waits for
    /// the writer (none for an in-memory store: they read `health`'s).
    health_read: Option<Mutex<Connection>>,
    /// Inflated blocks for history reads (see [`super::health::cache`]).
    history_cache: Mutex<BlockCache>,
    /// Loaded on first use, dropped by every change of who is enrolled; read
    /// and dropped under the connection's lock, so it never outlives a change.
    labels: LabelCache,
    /// Ids of API tokens revoked through this store (see
    /// [`super::Store::revocations`]): one hub alone revokes them all.
    revoked: broadcast::Sender<String>,
}

impl Backend for SqliteStore {
    fn main<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        // A poisoned lock only means another call panicked mid-way; SQLite's own
        // transactions keep the data consistent, so carry on with the connection.
        let mut guard = crate::sync::lock_or_recover(&self.conn);
        f(&mut *guard)
    }

    fn health<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut NameCache) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut h = crate::sync::lock_or_recover(&self.health);
        let HealthDb { conn, names } = &mut *h;
        f(conn, names)
    }

    fn health_read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut BlockCache) -> StoreResult<T>,
    ) -> StoreResult<T> {
        match &self.health_read {
            Some(c) => {
                let mut c = crate::sync::lock_or_recover(c);
                f(
                    &mut *c,
                    &mut crate::sync::lock_or_recover(&self.history_cache),
                )
            }
            None => {
                self.health(|db, _| f(db, &mut crate::sync::lock_or_recover(&self.history_cache)))
            }
        }
    }

    fn label_cache(&self) -> &LabelCache {
        &self.labels
    }

    fn announce_revocation(&self, _db: &mut dyn Db, id: &str) -> StoreResult<()> {
        // No subscriber (no open connection) is not an error.
        let _ = self.revoked.send(id.to_string());
        Ok(())
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    fn heard_revocation(&self, id: &str) {
        // No subscriber (no open connection) is not an error.
        let _ = self.revoked.send(id.to_string());
    }
}

mod db;
mod files;
mod open;
mod schema;

#[cfg(test)]
mod tests;
