//! What several hubs sharing one store keep in it (issue 23): the cluster's
//! sealed identity ([`crate::cluster::seal`]), the hubs' heartbeats, and which
//! hub holds each agent (its lease); and the poll through which every hub
//! learns what another revoked or enrolled (no table of its own). Three small tables, a handful of plain
//! statements, so that every backend implements [`ClusterStore`] the same way.
//!
//! Times are Unix milliseconds: a lease lasts a few seconds.

use super::sql::{p, tx, Db, Param, Row};

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
    /// Take the leases of `leases` (agent, expiry) for `hub_id`, in one
    /// transaction (a reconnect storm's claims, see `cluster::claims`).
    fn take_leases(&self, hub_id: &str, leases: &[(String, i64)]) -> StoreResult<()>;
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
pub fn item(c: &mut dyn Db, name: &str) -> StoreResult<Option<Vec<u8>>> {
    c.opt("SELECT value FROM cluster_items WHERE name = ?1", p![name])?
        .map(|r| Ok(r.blob(0)?.to_vec()))
        .transpose()
}

/// [`ClusterStore::insert_cluster_item`] on a connection.
pub fn insert_item(c: &mut dyn Db, name: &str, value: &[u8]) -> StoreResult<bool> {
    let n = c.execute(
        "INSERT INTO cluster_items (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        p![name, value],
    )?;
    Ok(n == 1)
}

/// [`ClusterStore::heartbeat`] on a connection.
pub fn heartbeat(
    c: &mut dyn Db,
    hub: &HubRow,
    lease_until: i64,
    forget_before: i64,
) -> StoreResult<u64> {
    tx(c, |c| {
        c.execute(
            "DELETE FROM agent_leases WHERE hub_id IN \
             (SELECT id FROM hubs WHERE heartbeat_at < ?1 AND id <> ?2)",
            p![forget_before, hub.id],
        )?;
        c.execute(
            "DELETE FROM hubs WHERE heartbeat_at < ?1 AND id <> ?2",
            p![forget_before, hub.id],
        )?;
        c.execute(
            "INSERT INTO hubs (id, ssh_address, api_url, started_at, heartbeat_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
             ssh_address = excluded.ssh_address, api_url = excluded.api_url, \
             heartbeat_at = excluded.heartbeat_at",
            p![
                hub.id,
                hub.ssh_address,
                hub.api_url,
                hub.started_at,
                hub.heartbeat_at
            ],
        )?;
        let n = c.execute(
            "UPDATE agent_leases SET expires_at = ?2 WHERE hub_id = ?1",
            p![hub.id, lease_until],
        )?;
        Ok(n as u64)
    })
}

fn hub_row(r: &Row) -> StoreResult<HubRow> {
    Ok(HubRow {
        id: r.get(0)?,
        ssh_address: r.get(1)?,
        api_url: r.get(2)?,
        started_at: r.get(3)?,
        heartbeat_at: r.get(4)?,
    })
}

/// [`ClusterStore::hubs`] on a connection.
pub fn hubs(c: &mut dyn Db) -> StoreResult<Vec<HubRow>> {
    c.map(
        "SELECT id, ssh_address, api_url, started_at, heartbeat_at FROM hubs ORDER BY id",
        p![],
        hub_row,
    )
}

/// [`ClusterStore::take_lease`] on a connection.
pub fn take_lease(c: &mut dyn Db, agent: &str, hub_id: &str, expires_at: i64) -> StoreResult<()> {
    c.execute(
        "INSERT INTO agent_leases (agent, hub_id, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (agent) DO UPDATE SET hub_id = excluded.hub_id, expires_at = excluded.expires_at",
        p![agent, hub_id, expires_at],
    )?;
    Ok(())
}

/// [`ClusterStore::take_leases`] on a connection: one multi-row upsert per
/// power-of-two chunk of the batch (a 300-claim batch is 4 statements, not
/// 300 round trips to a PostgreSQL server; the chunk sizes keep the
/// prepared statements few). An agent named twice keeps its last claim (an
/// upsert may not touch one row twice).
pub fn take_leases(c: &mut dyn Db, hub_id: &str, leases: &[(String, i64)]) -> StoreResult<()> {
    let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (agent, expires_at) in leases {
        last.insert(agent.as_str(), *expires_at);
    }
    let mut rows: Vec<(&str, i64)> = last.into_iter().collect();
    rows.sort_unstable();
    tx(c, |c| {
        let mut rest = &rows[..];
        while !rest.is_empty() {
            let n = 1usize << rest.len().ilog2();
            let (chunk, tail) = rest.split_at(n);
            upsert_leases(c, hub_id, chunk)?;
            rest = tail;
        }
        Ok(())
    })
}

/// One `INSERT ... VALUES (..), (..) ON CONFLICT` for `rows`.
fn upsert_leases(c: &mut dyn Db, hub_id: &str, rows: &[(&str, i64)]) -> StoreResult<()> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| format!("(?{}, ?1, ?{})", 2 * i + 2, 2 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO agent_leases (agent, hub_id, expires_at) VALUES {} \
         ON CONFLICT (agent) DO UPDATE SET hub_id = excluded.hub_id, expires_at = excluded.expires_at",
        values.join(", ")
    );
    let mut params = Vec::with_capacity(1 + 2 * rows.len());
    params.push(Param::Text(hub_id));
    for (agent, expires_at) in rows {
        params.push(Param::Text(agent));
        params.push(Param::Int(*expires_at));
    }
    c.execute(&sql, &params)?;
    Ok(())
}

/// [`ClusterStore::drop_lease`] on a connection.
pub fn drop_lease(c: &mut dyn Db, agent: &str, hub_id: &str) -> StoreResult<bool> {
    let n = c.execute(
        "DELETE FROM agent_leases WHERE agent = ?1 AND hub_id = ?2",
        p![agent, hub_id],
    )?;
    Ok(n == 1)
}

/// [`ClusterStore::leases`] on a connection.
pub fn leases(c: &mut dyn Db) -> StoreResult<Vec<LeaseRow>> {
    c.map(
        "SELECT agent, hub_id, expires_at FROM agent_leases ORDER BY agent",
        p![],
        |r| {
            Ok(LeaseRow {
                agent: r.get(0)?,
                hub_id: r.get(1)?,
                expires_at: r.get(2)?,
            })
        },
    )
}

/// [`ClusterStore::changes_since`] on a connection.
pub fn changes_since(c: &mut dyn Db, since: i64) -> StoreResult<Changes> {
    let pair = |r: &Row| Ok((r.get(0)?, r.get(1)?));
    let tokens_revoked = c.map(
        "SELECT id, revoked_at FROM api_tokens WHERE revoked_at >= ?1 ORDER BY id",
        p![since],
        pair,
    )?;
    let agents_revoked = c.map(
        "SELECT name, revoked_at FROM agents WHERE revoked_at >= ?1 ORDER BY name",
        p![since],
        pair,
    )?;
    let r = c.one(
        "SELECT count(*), CAST(coalesce(max(enrolled_at), 0) AS BIGINT) FROM agents",
        p![],
    )?;
    Ok(Changes {
        tokens_revoked,
        agents_revoked,
        agents_mark: (r.get(0)?, r.get(1)?),
    })
}
