//! What several hubs sharing one store keep in it (issue 23): the cluster's
//! sealed identity ([`crate::cluster::seal`]), the hubs' heartbeats, and which
//! hub holds each agent (its lease); and the poll through which every hub
//! learns what another revoked or enrolled (no table of its own). Three small tables, a handful of plain
//! statements, so that every backend implements [`ClusterStore`] the same way.
//!
//! Times are Unix milliseconds: a lease lasts a few seconds.

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreResult;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE cluster_items (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE hubs (
    id           TEXT PRIMARY KEY,
    ssh_address  TEXT NOT NULL,
    api_url      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
CREATE TABLE agent_leases (
    agent      TEXT PRIMARY KEY,
    hub_id     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX agent_leases_hub ON agent_leases (hub_id);
"#;

/// One hub of the cluster, as its last heartbeat wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRow {
    /// Random id chosen at each start.
    pub id: String,
    /// `HOST:PORT` agents dial.
    pub ssh_address: String,
    /// The API's URL.
    pub api_url: String,
    /// Unix ms of its start.
    pub started_at: i64,
    /// Unix ms of its last heartbeat.
    pub heartbeat_at: i64,
}

/// Which hub holds an agent, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The agent's name.
    pub agent: String,
    /// The holding hub's id.
    pub hub_id: String,
    /// Unix ms after which the lease means nothing.
    pub expires_at: i64,
}

/// What other hubs changed that every hub acts on (see
/// [`ClusterStore::changes_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// (id, revoked_at) of API tokens revoked at or after the time asked.
    pub tokens_revoked: Vec<(String, i64)>,
    /// (name, revoked_at) of agents revoked at or after the time asked.
    pub agents_revoked: Vec<(String, i64)>,
    /// Enrolled agents (revoked ones included) and the latest enrolment
    /// time: a change means an enrolment, a withdrawal or a removal.
    pub agents_mark: (i64, i64),
}

/// The store's part in a cluster of hubs.
pub trait ClusterStore {
    /// The sealed item `name`, if written.
    fn cluster_item(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Write item `name` unless one exists (atomic): whether this call wrote it.
    fn insert_cluster_item(&self, name: &str, value: &[u8]) -> StoreResult<bool>;
    /// Write this hub's row (insert or update, `heartbeat_at` included),
    /// extend every lease it holds to `lease_until` and forget other hubs
    /// silent since before `forget_before` (with their leases), in one
    /// transaction: the number of leases extended.
    fn heartbeat(&self, hub: &HubRow, lease_until: i64, forget_before: i64) -> StoreResult<u64>;
    /// Every hub that has written a heartbeat, by id.
    fn hubs(&self) -> StoreResult<Vec<HubRow>>;
    /// Give `agent` to `hub_id` until `expires_at`, whoever held it (an
    /// agent that says hello here has left any other hub).
    fn take_lease(&self, agent: &str, hub_id: &str, expires_at: i64) -> StoreResult<()>;
    /// Give up `agent` if `hub_id` still holds it: whether it did.
    fn drop_lease(&self, agent: &str, hub_id: &str) -> StoreResult<bool>;
    /// Every lease, expired ones included, by agent.
    fn leases(&self) -> StoreResult<Vec<LeaseRow>>;
    /// Revocations at or after `since` (Unix s) and the enrolment mark,
    /// polled by every hub (see `cluster::changes`).
    fn changes_since(&self, since: i64) -> StoreResult<Changes>;
    /// Another hub changed the data: drop what this store keeps in memory
    /// between reads (`agents_changed`: the agents' label index) and
    /// announce `tokens_revoked` on [`super::Store::revocations`].
    fn changed_elsewhere(&self, tokens_revoked: &[String], agents_changed: bool);
}

/// [`ClusterStore::cluster_item`] on a connection.
pub fn item(c: &Connection, name: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(
        c.prepare_cached("SELECT value FROM cluster_items WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?,
    )
}

/// [`ClusterStore::insert_cluster_item`] on a connection.
pub fn insert_item(c: &Connection, name: &str, value: &[u8]) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO cluster_items (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![name, value])?;
    Ok(n == 1)
}

/// [`ClusterStore::heartbeat`] on a connection.
pub fn heartbeat(
    c: &mut Connection,
    hub: &HubRow,
    lease_until: i64,
    forget_before: i64,
) -> StoreResult<u64> {
    let tx = c.transaction()?;
    tx.prepare_cached(
        "DELETE FROM agent_leases WHERE hub_id IN \
         (SELECT id FROM hubs WHERE heartbeat_at < ?1 AND id <> ?2)",
    )?
    .execute(params![forget_before, hub.id])?;
    tx.prepare_cached("DELETE FROM hubs WHERE heartbeat_at < ?1 AND id <> ?2")?
        .execute(params![forget_before, hub.id])?;
    tx.prepare_cached(
        "INSERT INTO hubs (id, ssh_address, api_url, started_at, heartbeat_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
         ssh_address = excluded.ssh_address, api_url = excluded.api_url, \
         heartbeat_at = excluded.heartbeat_at",
    )?
    .execute(params![
        hub.id,
        hub.ssh_address,
        hub.api_url,
        hub.started_at,
        hub.heartbeat_at
    ])?;
    let n = tx
        .prepare_cached("UPDATE agent_leases SET expires_at = ?2 WHERE hub_id = ?1")?
        .execute(params![hub.id, lease_until])?;
    tx.commit()?;
    Ok(n as u64)
}

/// [`ClusterStore::hubs`] on a connection.
pub fn hubs(c: &Connection) -> StoreResult<Vec<HubRow>> {
    let mut st = c.prepare_cached(
        "SELECT id, ssh_address, api_url, started_at, heartbeat_at FROM hubs ORDER BY id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(HubRow {
            id: r.get(0)?,
            ssh_address: r.get(1)?,
            api_url: r.get(2)?,
            started_at: r.get(3)?,
            heartbeat_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`ClusterStore::take_lease`] on a connection.
pub fn take_lease(c: &Connection, agent: &str, hub_id: &str, expires_at: i64) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO agent_leases (agent, hub_id, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (agent) DO UPDATE SET hub_id = excluded.hub_id, expires_at = excluded.expires_at",
    )?
    .execute(params![agent, hub_id, expires_at])?;
    Ok(())
}

/// [`ClusterStore::drop_lease`] on a connection.
pub fn drop_lease(c: &Connection, agent: &str, hub_id: &str) -> StoreResult<bool> {
    let n = c
        .prepare_cached("DELETE FROM agent_leases WHERE agent = ?1 AND hub_id = ?2")?
        .execute(params![agent, hub_id])?;
    Ok(n == 1)
}

/// [`ClusterStore::leases`] on a connection.
pub fn leases(c: &Connection) -> StoreResult<Vec<LeaseRow>> {
    let mut st =
        c.prepare_cached("SELECT agent, hub_id, expires_at FROM agent_leases ORDER BY agent")?;
    let rows = st.query_map([], |r| {
        Ok(LeaseRow {
            agent: r.get(0)?,
            hub_id: r.get(1)?,
            expires_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`ClusterStore::changes_since`] on a connection.
pub fn changes_since(c: &Connection, since: i64) -> StoreResult<Changes> {
    let pairs = |sql: &str| -> StoreResult<Vec<(String, i64)>> {
        let mut st = c.prepare_cached(sql)?;
        let rows = st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let tokens_revoked =
        pairs("SELECT id, revoked_at FROM api_tokens WHERE revoked_at >= ?1 ORDER BY id")?;
    let agents_revoked =
        pairs("SELECT name, revoked_at FROM agents WHERE revoked_at >= ?1 ORDER BY name")?;
    let agents_mark = c
        .prepare_cached("SELECT count(*), coalesce(max(enrolled_at), 0) FROM agents")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Changes {
        tokens_revoked,
        agents_revoked,
        agents_mark,
    })
}
