//! SQLite implementation of [`Store`]: one connection behind a mutex, WAL mode,
//! a busy timeout, and migrations applied at open (tracked in `user_version`).
//! The health history has a second connection of its own (see [`HealthDb`]),
//! so its writes never hold the lock that authentication reads wait for.

use std::sync::{Arc, Mutex};

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::token::verify_secret;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::broadcast;

use nextdeploy_shared::docker::HealthSnapshot;

use super::deploys::DeployRecord;
use super::health::HistoryPoint;
use super::{
    AgentRecord, ApiTokenRecord, AuditEntry, AuditRecord, JoinRefusal, JoinTokenRecord, Store,
    StoreError, StoreResult,
};
use rows::{agent_row, api_row, join_row, labels_from, labels_to, AGENT_COLS, API_COLS, JOIN_COLS};

/// Revocations waiting for each open connection: one that falls this far
/// behind re-reads its token from the store (see `Lagged` in `http/ws.rs`),
/// so any depth is correct; 64 absorbs a cleanup script revoking a batch
/// without those reads.
pub const REVOCATION_QUEUE: usize = 64;

/// Unrevoked agents' names and labels (see [`Store::agent_labels`]).
type LabelIndex = Arc<Vec<(String, Labels)>>;

/// The health history's own connection to the same database, with its
/// cache of container names. Agents' snapshots are written here in short
/// transactions; in WAL mode a reader on the main connection (an SSH key or
/// API token check) never waits for them, and a writer there waits at most
/// one of them (`HEALTH_TX_CONTAINERS`, `COMPACT_TX_WINDOWS`).
struct HealthDb {
    conn: Connection,
    names: super::health::NameCache,
}

/// The embedded store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    health: Mutex<HealthDb>,
    /// A third connection for history queries, so a chart never waits for
    /// the writer (none for an in-memory store: they read `health`'s).
    health_read: Option<Mutex<Connection>>,
    /// Inflated blocks for history reads (see [`super::health::cache`]).
    history_cache: Mutex<super::health::cache::BlockCache>,
    /// Loaded on first use, dropped by every change of who is enrolled; read
    /// and dropped under the connection's lock, so it never outlives a change.
    labels: Mutex<Option<LabelIndex>>,
    /// Ids of API tokens revoked through this store (see [`Store::revocations`]).
    revoked: broadcast::Sender<String>,
}

impl SqliteStore {
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        // A poisoned lock only means another call panicked mid-way; SQLite's own
        // transactions keep the data consistent, so carry on with the connection.
        let mut guard = crate::sync::lock_or_recover(&self.conn);
        f(&mut guard)
    }

    fn label_index(&self) -> std::sync::MutexGuard<'_, Option<LabelIndex>> {
        crate::sync::lock_or_recover(&self.labels)
    }
}

impl Store for SqliteStore {
    fn agent_by_key(&self, public_key: &str) -> StoreResult<Option<AgentRecord>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE public_key = ?1"),
                [public_key],
                agent_row,
            )
            .optional()?)
        })
    }

    fn agent_by_name(&self, name: &str) -> StoreResult<Option<AgentRecord>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE name = ?1"),
                [name],
                agent_row,
            )
            .optional()?)
        })
    }

    fn list_agents(&self) -> StoreResult<Vec<AgentRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {AGENT_COLS} FROM agents ORDER BY name"))?;
            let rows = st.query_map([], agent_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn agent_labels(&self) -> StoreResult<LabelIndex> {
        self.with(|c| {
            if let Some(index) = self.label_index().as_ref() {
                return Ok(index.clone());
            }
            let mut st = c.prepare(
                "SELECT name, labels FROM agents WHERE revoked_at IS NULL ORDER BY name",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, labels_from(r.get(1)?)?)))?;
            let index: LabelIndex = Arc::new(rows.collect::<Result<Vec<_>, _>>()?);
            *self.label_index() = Some(index.clone());
            Ok(index)
        })
    }

    fn touch_agent(
        &self,
        name: &str,
        at: i64,
        address: Option<&str>,
        version: Option<&str>,
        hostname: Option<&str>,
    ) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE agents SET last_seen = ?2,
                    last_address = COALESCE(?3, last_address),
                    version = COALESCE(?4, version),
                    hostname = COALESCE(?5, hostname)
                 WHERE name = ?1",
                params![name, at, address, version, hostname],
            )?;
            Ok(())
        })
    }

    fn revoke_agent(&self, name: &str, at: i64) -> StoreResult<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE agents SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, at],
            )?;
            self.label_index().take();
            Ok(n == 1)
        })
    }

    fn withdraw_enrolment(&self, public_key: &str, since: i64) -> StoreResult<Option<String>> {
        let name = self.with(|c| withdraw::withdraw(c, public_key, since))?;
        self.label_index().take();
        Ok(name)
    }

    fn rotate_agent_key(
        &self,
        name: &str,
        old_key: &str,
        new_key: &str,
        new_fingerprint: &str,
    ) -> StoreResult<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE agents SET public_key = ?3, fingerprint = ?4 \
                 WHERE name = ?1 AND public_key = ?2 AND revoked_at IS NULL",
                params![name, old_key, new_key, new_fingerprint],
            )?;
            Ok(n == 1)
        })
    }

    fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO join_tokens ({JOIN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id,
                    t.secret_hash,
                    t.name,
                    labels_to(&t.labels),
                    t.created_at,
                    t.expires_at,
                    t.used_at,
                    t.created_by
                ],
            )?;
            Ok(())
        })
    }

    fn join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {JOIN_COLS} FROM join_tokens WHERE id = ?1"),
                [id],
                join_row,
            )
            .optional()?)
        })
    }

    fn list_join_tokens(&self) -> StoreResult<Vec<JoinTokenRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {JOIN_COLS} FROM join_tokens ORDER BY created_at DESC, id"
            ))?;
            let rows = st.query_map([], join_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_join_token(&self, id: &str) -> StoreResult<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM join_tokens WHERE id = ?1", [id])? == 1))
    }

    fn consume_join_token(
        &self,
        id: &str,
        secret: &str,
        public_key: &str,
        fingerprint: &str,
        now: i64,
    ) -> StoreResult<Result<AgentRecord, JoinRefusal>> {
        self.with(|c| {
            // IMMEDIATE takes the write lock up front: concurrent consumers of one
            // token serialize here, and only the first sees it unused.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(t) = tx
                .query_row(
                    &format!("SELECT {JOIN_COLS} FROM join_tokens WHERE id = ?1"),
                    [id],
                    join_row,
                )
                .optional()?
            else {
                return Ok(Err(JoinRefusal::Invalid));
            };
            if !verify_secret(secret, &t.secret_hash) {
                return Ok(Err(JoinRefusal::Invalid));
            }
            if t.used_at.is_some() {
                return Ok(Err(JoinRefusal::Used));
            }
            if t.expires_at <= now {
                return Ok(Err(JoinRefusal::Expired));
            }
            let existing: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM agents WHERE name = ?1",
                    [&t.name],
                    |r| r.get(0),
                )
                .optional()?;
            match existing {
                Some(None) => return Ok(Err(JoinRefusal::NameTaken(t.name))),
                Some(Some(_)) => {
                    tx.execute("DELETE FROM agents WHERE name = ?1", [&t.name])?;
                }
                None => {}
            }
            tx.execute(
                "UPDATE join_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
                params![id, now],
            )?;
            let rec = AgentRecord {
                name: t.name.clone(),
                public_key: public_key.to_string(),
                fingerprint: fingerprint.to_string(),
                labels: t.labels.clone(),
                enrolled_at: now,
                last_seen: None,
                last_address: None,
                version: None,
                hostname: None,
                revoked_at: None,
            };
            let inserted = tx.execute(
                &format!("INSERT INTO agents ({AGENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, NULL, NULL)"),
                params![rec.name, rec.public_key, rec.fingerprint, labels_to(&rec.labels), now],
            );
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::Conflict(
                        "this key is already enrolled under another name".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit()?;
            self.label_index().take();
            Ok(Ok(rec))
        })
    }

    fn insert_api_token(&self, t: &ApiTokenRecord) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO api_tokens ({API_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id,
                    t.secret_hash,
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    t.expires_at,
                    t.revoked_at,
                    t.no_exec
                ],
            )?;
            Ok(())
        })
    }

    fn api_token(&self, id: &str) -> StoreResult<Option<ApiTokenRecord>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {API_COLS} FROM api_tokens WHERE id = ?1"),
                [id],
                api_row,
            )
            .optional()?)
        })
    }

    fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {API_COLS} FROM api_tokens ORDER BY created_at DESC, id"
            ))?;
            let rows = st.query_map([], api_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn revoke_api_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        let revoked = self.with(|c| {
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )? == 1)
        })?;
        if revoked {
            // No subscriber (no open connection) is not an error.
            let _ = self.revoked.send(id.to_string());
        }
        Ok(revoked)
    }

    fn revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    fn api_token_count(&self) -> StoreResult<u64> {
        self.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM api_tokens", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    fn audit(&self, e: &AuditEntry) -> StoreResult<()> {
        self.audit_by_token(e, None)
    }

    fn audit_by_token(&self, e: &AuditEntry, token_id: Option<&str>) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (at, actor, action, target, detail, actor_token) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.at, e.actor, e.action, e.target, e.detail, token_id],
            )?;
            Ok(())
        })
    }

    fn record_health(&self, batch: &[(String, HealthSnapshot)]) -> StoreResult<()> {
        self.with_health(|h| super::health::record(&mut h.conn, &mut h.names, batch))
    }

    fn prune_health(&self, now: i64) -> StoreResult<usize> {
        self.with_health(|h| super::health::compact::prune(&h.conn, now))
    }

    fn compact_health(&self, now: i64, max: usize) -> StoreResult<usize> {
        self.with_health(|h| super::health::compact::compact(&mut h.conn, now, max))
    }

    fn put_health_blocks(&self, blocks: Vec<super::health::Block>) -> StoreResult<()> {
        self.with_health(|h| {
            let tx = h.conn.transaction()?;
            for (agent, res, start, points) in blocks {
                let names: std::collections::BTreeSet<std::sync::Arc<str>> =
                    points.iter().map(|p| p.container.clone()).collect();
                super::health::touch_names(&tx, &agent, names.iter().map(|n| &**n), start)?;
                super::health::compact::merge_block(&tx, &agent, res, start, points)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn health_history(
        &self,
        agent: &str,
        container: &str,
        res: i64,
        since: i64,
    ) -> StoreResult<Vec<HistoryPoint>> {
        self.with_health_read(|c| {
            let mut cache = crate::sync::lock_or_recover(&self.history_cache);
            super::health::query(c, &mut cache, agent, container, res, since)
        })
    }

    fn health_containers(&self, agent: &str) -> StoreResult<Vec<String>> {
        self.with_health_read(|c| super::health::containers(c, agent))
    }

    fn insert_deploy(&self, d: &DeployRecord) -> StoreResult<()> {
        self.with(|c| super::deploys::insert(c, d))
    }

    fn finish_deploy(
        &self,
        id: &str,
        status: &str,
        outcome: &nextdeploy_shared::protocol::deploy::DeployOutcome,
        at: i64,
        pushed_by: Option<&str>,
    ) -> StoreResult<bool> {
        self.with(|c| super::deploys::finish(c, id, status, outcome, at, pushed_by))
    }

    fn set_deploy_status(&self, id: &str, status: &str) -> StoreResult<()> {
        self.with(|c| super::deploys::set_status(c, id, status))
    }

    fn list_deploys(&self, server: Option<&str>, limit: u32) -> StoreResult<Vec<DeployRecord>> {
        self.with(|c| super::deploys::list(c, server, limit))
    }

    fn deploy(&self, id: &str) -> StoreResult<Option<DeployRecord>> {
        self.with(|c| super::deploys::get(c, id))
    }

    fn deploy_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.with(|c| super::deploys::counts(c))
    }

    fn audit_page(&self, limit: u32, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT seq, at, actor, action, target, detail, actor_token FROM audit \
                 WHERE ?2 IS NULL OR seq < ?2 ORDER BY seq DESC LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit, before], |r| {
                Ok(AuditRecord {
                    seq: r.get(0)?,
                    entry: AuditEntry {
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        detail: r.get(5)?,
                    },
                    actor_token: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

mod alert_rules;
mod alerts;
mod buffer_seqs;
mod cluster;
mod exec;
mod files;
mod open;
mod rows;
mod schema;
mod withdraw;

#[cfg(test)]
mod tests;
