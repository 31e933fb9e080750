//! [`ClusterStore`] on SQLite: the main connection, as every write. Hubs on
//! one machine share the file (WAL mode, the busy timeout); the statements
//! are the ones a PostgreSQL backend runs too.

use super::SqliteStore;
use crate::store::cluster::{self, Changes, ClusterStore, HubRow, LeaseRow};
use crate::store::StoreResult;

impl ClusterStore for SqliteStore {
    fn cluster_item(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|c| cluster::item(c, name))
    }
    fn insert_cluster_item(&self, name: &str, value: &[u8]) -> StoreResult<bool> {
        self.with(|c| cluster::insert_item(c, name, value))
    }
    fn heartbeat(&self, hub: &HubRow, lease_until: i64) -> StoreResult<u64> {
        self.with(|c| cluster::heartbeat(c, hub, lease_until))
    }
    fn hubs(&self) -> StoreResult<Vec<HubRow>> {
        self.with(|c| cluster::hubs(c))
    }
    fn take_lease(&self, agent: &str, hub_id: &str, expires_at: i64) -> StoreResult<()> {
        self.with(|c| cluster::take_lease(c, agent, hub_id, expires_at))
    }
    fn drop_lease(&self, agent: &str, hub_id: &str) -> StoreResult<bool> {
        self.with(|c| cluster::drop_lease(c, agent, hub_id))
    }
    fn leases(&self) -> StoreResult<Vec<LeaseRow>> {
        self.with(|c| cluster::leases(c))
    }
    fn changes_since(&self, since: i64) -> StoreResult<Changes> {
        self.with(|c| cluster::changes_since(c, since))
    }
    fn changed_elsewhere(&self, tokens_revoked: &[String], agents_changed: bool) {
        if agents_changed {
            // Under the connection's lock, as every change of the index.
            self.with(|_| {
                *self.label_index() = None;
                Ok(())
            })
            .ok();
        }
        for id in tokens_revoked {
            // No receiver (no open WebSocket) is not an error.
            let _ = self.revoked.send(id.clone());
        }
    }
}
