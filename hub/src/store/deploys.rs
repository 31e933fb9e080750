//! Deploy history: who deployed what where, every step, the outcome.
//! Times are stored as Unix seconds (every record ever written is) and
//! leave the hub as RFC 3339 ([`DeployRecord::entry`]).

use super::sql::{p, Db, Row};
use super::StoreResult;
use nextdeploy_shared::protocol::deploy::{DeployEntry, DeployOutcome};
use nextdeploy_shared::time::rfc3339;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE deploys (
    id          TEXT PRIMARY KEY,
    actor       TEXT NOT NULL,
    server      TEXT NOT NULL,
    container   TEXT,
    image       TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT
);
CREATE INDEX deploys_by_server ON deploys (server, created_at);
"#;

/// One deploy.
#[derive(Debug, Clone)]
pub struct DeployRecord {
    /// Id chosen by the hub.
    pub id: String,
    /// Token name of who asked.
    pub actor: String,
    /// Agent.
    pub server: String,
    /// Container asked for (none: by repository).
    pub container: Option<String>,
    /// New image.
    pub image: String,
    /// running, succeeded, rolled_back, failed, unknown.
    pub status: String,
    /// Unix time.
    pub created_at: i64,
    /// Unix time.
    pub finished_at: Option<i64>,
    /// The agent's outcome (containers, steps with timings, errors).
    pub outcome: Option<DeployOutcome>,
}

impl DeployRecord {
    /// The record as `deploys_list` and `deploys_show` answer it.
    pub fn entry(self) -> DeployEntry {
        DeployEntry {
            id: self.id,
            actor: self.actor,
            server: self.server,
            container: self.container,
            image: self.image,
            status: self.status,
            created_at: rfc3339(self.created_at),
            finished_at: self.finished_at.map(rfc3339),
            outcome: self.outcome,
            progress: None,
        }
    }
}

/// Insert a new, running deploy.
pub fn insert(c: &mut dyn Db, d: &DeployRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO deploys (id, actor, server, container, image, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        p![d.id, d.actor, d.server, d.container, d.image, d.status, d.created_at],
    )?;
    Ok(())
}

/// Record the outcome (idempotent: a repeated report changes nothing new).
/// An outcome an agent pushed on its own (`pushed_by`: that agent) only
/// updates a deploy of that agent that has no final outcome yet: an agent
/// cannot rewrite another server's history, nor a finished record. Returns
/// whether a record changed.
pub fn finish(
    c: &mut dyn Db,
    id: &str,
    status: &str,
    outcome: &DeployOutcome,
    at: i64,
    pushed_by: Option<&str>,
) -> StoreResult<bool> {
    // A rollback learns its image from the agent.
    let image = outcome.image.as_deref().filter(|i| !i.is_empty());
    let text = serde_json::to_string(outcome).unwrap_or_default();
    let n = c.execute(
        "UPDATE deploys SET status = ?2, outcome = ?3, finished_at = COALESCE(finished_at, ?4), image = COALESCE(?5, image) \
         WHERE id = ?1 AND (CAST(?6 AS TEXT) IS NULL OR (server = ?6 AND finished_at IS NULL))",
        p![id, status, text, at, image, pushed_by],
    )?;
    Ok(n == 1)
}

/// Set a status without an outcome (e.g. `unknown` while the agent is away).
pub fn set_status(c: &mut dyn Db, id: &str, status: &str) -> StoreResult<()> {
    c.execute(
        "UPDATE deploys SET status = ?2 WHERE id = ?1 AND finished_at IS NULL",
        p![id, status],
    )?;
    Ok(())
}

fn row(r: &Row) -> StoreResult<DeployRecord> {
    let outcome: Option<String> = r.get(8)?;
    Ok(DeployRecord {
        id: r.get(0)?,
        actor: r.get(1)?,
        server: r.get(2)?,
        container: r.get(3)?,
        image: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        finished_at: r.get(7)?,
        // Every field of an outcome has a default: older records load.
        outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
    })
}

const COLS: &str = "id, actor, server, container, image, status, created_at, finished_at, outcome";

/// Newest first, optionally for one server.
pub fn list(c: &mut dyn Db, server: Option<&str>, limit: u32) -> StoreResult<Vec<DeployRecord>> {
    let sql = format!(
        "SELECT {COLS} FROM deploys WHERE (CAST(?1 AS TEXT) IS NULL OR server = ?1) ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    );
    c.map(&sql, p![server, limit], row)
}

/// One deploy.
pub fn get(c: &mut dyn Db, id: &str) -> StoreResult<Option<DeployRecord>> {
    let sql = format!("SELECT {COLS} FROM deploys WHERE id = ?1");
    c.opt(&sql, p![id])?.as_ref().map(row).transpose()
}

/// [`super::Store::deploy_counts`] on a connection.
pub fn counts(c: &mut dyn Db) -> StoreResult<Vec<(String, u64)>> {
    c.map(
        "SELECT status, COUNT(*) FROM deploys GROUP BY status ORDER BY status",
        p![],
        |r| Ok((r.get(0)?, r.get::<i64>(1)?.max(0) as u64)),
    )
}
