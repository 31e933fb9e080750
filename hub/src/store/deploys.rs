//! Deploy history: who deployed what where, every step, the outcome.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::StoreResult;

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
#[derive(Debug, Clone, Serialize)]
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
    /// The agent's outcome document (containers, steps with timings, errors).
    pub outcome: Option<Value>,
}

/// Insert a new, running deploy.
pub fn insert(c: &Connection, d: &DeployRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO deploys (id, actor, server, container, image, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![d.id, d.actor, d.server, d.container, d.image, d.status, d.created_at],
    )?;
    Ok(())
}

/// Record the outcome (idempotent: a repeated report changes nothing new).
pub fn finish(
    c: &Connection,
    id: &str,
    status: &str,
    outcome: &Value,
    at: i64,
) -> StoreResult<bool> {
    // A rollback learns its image from the agent.
    let image = outcome
        .get("image")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty());
    let n = c.execute(
        "UPDATE deploys SET status = ?2, outcome = ?3, finished_at = COALESCE(finished_at, ?4), image = COALESCE(?5, image) WHERE id = ?1",
        params![id, status, outcome.to_string(), at, image],
    )?;
    Ok(n == 1)
}

/// Set a status without an outcome (e.g. `unknown` while the agent is away).
pub fn set_status(c: &Connection, id: &str, status: &str) -> StoreResult<()> {
    c.execute(
        "UPDATE deploys SET status = ?2 WHERE id = ?1 AND finished_at IS NULL",
        params![id, status],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeployRecord> {
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
        outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
    })
}

const COLS: &str = "id, actor, server, container, image, status, created_at, finished_at, outcome";

/// Newest first, optionally for one server.
pub fn list(c: &Connection, server: Option<&str>, limit: u32) -> StoreResult<Vec<DeployRecord>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM deploys WHERE (?1 IS NULL OR server = ?1) ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![server, limit], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One deploy.
pub fn get(c: &Connection, id: &str) -> StoreResult<Option<DeployRecord>> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM deploys WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?)
}
