//! Exec sessions: who ran what where, how it ended, and the recording of
//! TTY sessions (asciicast v2) in chunks, bounded per session by the
//! recorder and in total by [`ExecSessions::prune_recordings`], oldest
//! recordings first. Kept in the store, so a backup holds them and every
//! hub of a store sees them.

use super::sql::{p, tx, Db, Row};
use super::StoreResult;
use nextdeploy_shared::protocol::exec::ExecSession;
use nextdeploy_shared::time::rfc3339;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE exec_sessions (
    id              TEXT PRIMARY KEY,
    actor           TEXT NOT NULL,
    token_id        TEXT NOT NULL,
    server          TEXT NOT NULL,
    container       TEXT NOT NULL,
    command         TEXT NOT NULL,
    tty             INTEGER NOT NULL,
    started         INTEGER NOT NULL,
    ended           INTEGER,
    exit_code       INTEGER,
    error           TEXT,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0,
    recording_bytes INTEGER NOT NULL DEFAULT 0,
    truncated       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX exec_sessions_by_start ON exec_sessions (started);
CREATE TABLE exec_recordings (
    session TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (session, seq)
);
ALTER TABLE api_tokens ADD COLUMN no_exec INTEGER NOT NULL DEFAULT 0;
"#;

/// A session as it starts.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id.
    pub id: String,
    /// Token name.
    pub actor: String,
    /// Token id.
    pub token_id: String,
    /// Agent.
    pub server: String,
    /// Container as asked.
    pub container: String,
    /// Command line.
    pub command: String,
    /// With a TTY.
    pub tty: bool,
    /// Unix time.
    pub started: i64,
}

/// How a session ended.
#[derive(Debug, Clone, Default)]
pub struct SessionEnd {
    /// Unix time.
    pub ended: i64,
    /// Exit code, if the command finished.
    pub exit_code: Option<i64>,
    /// Why not.
    pub error: Option<String>,
    /// Input bytes.
    pub bytes_in: u64,
    /// Output bytes.
    pub bytes_out: u64,
    /// The recording hit its limit.
    pub truncated: bool,
}

/// The store's exec sessions (a part of [`super::Store`]).
pub trait ExecSessions {
    /// Record a session that starts.
    fn insert_exec_session(&self, s: &NewSession) -> StoreResult<()>;
    /// Record how it ended.
    fn finish_exec_session(&self, id: &str, end: &SessionEnd) -> StoreResult<()>;
    /// Append a piece of its recording.
    fn append_exec_recording(&self, id: &str, data: &[u8]) -> StoreResult<()>;
    /// Sessions, newest first.
    fn list_exec_sessions(&self, server: Option<&str>, limit: u32)
        -> StoreResult<Vec<ExecSession>>;
    /// One session.
    fn exec_session(&self, id: &str) -> StoreResult<Option<ExecSession>>;
    /// Its recording's pieces, in order.
    fn exec_recording(&self, id: &str) -> StoreResult<Vec<Vec<u8>>>;
    /// Drop the oldest recordings until all of them take at most `max`
    /// bytes; returns how many were dropped. Sessions stay listed.
    fn prune_recordings(&self, max: u64) -> StoreResult<usize>;
}

/// [`ExecSessions::insert_exec_session`] on a connection.
pub fn insert(c: &mut dyn Db, s: &NewSession) -> StoreResult<()> {
    c.execute(
        "INSERT INTO exec_sessions (id, actor, token_id, server, container, command, tty, started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        p![s.id, s.actor, s.token_id, s.server, s.container, s.command, s.tty, s.started],
    )?;
    Ok(())
}

/// [`ExecSessions::finish_exec_session`] on a connection.
pub fn finish(c: &mut dyn Db, id: &str, e: &SessionEnd) -> StoreResult<()> {
    c.execute(
        "UPDATE exec_sessions SET ended = ?2, exit_code = ?3, error = ?4, bytes_in = ?5, \
         bytes_out = ?6, truncated = ?7 WHERE id = ?1",
        p![
            id,
            e.ended,
            e.exit_code,
            e.error,
            e.bytes_in as i64,
            e.bytes_out as i64,
            e.truncated
        ],
    )?;
    Ok(())
}

/// [`ExecSessions::append_exec_recording`] on a connection.
pub fn append(c: &mut dyn Db, id: &str, data: &[u8]) -> StoreResult<()> {
    tx(c, |tx| {
        tx.execute(
            "INSERT INTO exec_recordings (session, seq, data) VALUES (?1, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM exec_recordings WHERE session = ?1), ?2)",
            p![id, data],
        )?;
        tx.execute(
            "UPDATE exec_sessions SET recording_bytes = recording_bytes + ?2 WHERE id = ?1",
            p![id, data.len() as i64],
        )?;
        Ok(())
    })
}

const COLS: &str = "id, actor, token_id, server, container, command, tty, started, ended, \
                    exit_code, error, bytes_in, bytes_out, recording_bytes, truncated";

fn row(r: &Row) -> StoreResult<ExecSession> {
    Ok(ExecSession {
        id: r.get(0)?,
        actor: r.get(1)?,
        token_id: r.get(2)?,
        server: r.get(3)?,
        container: r.get(4)?,
        command: r.get(5)?,
        tty: r.get(6)?,
        started: rfc3339(r.get(7)?),
        ended: r.get::<Option<i64>>(8)?.map(rfc3339),
        exit_code: r.get(9)?,
        error: r.get(10)?,
        bytes_in: r.get::<i64>(11)?.max(0) as u64,
        bytes_out: r.get::<i64>(12)?.max(0) as u64,
        recording_bytes: r.get::<i64>(13)?.max(0) as u64,
        truncated: r.get(14)?,
    })
}

/// [`ExecSessions::list_exec_sessions`] on a connection.
pub fn list(c: &mut dyn Db, server: Option<&str>, limit: u32) -> StoreResult<Vec<ExecSession>> {
    let sql = format!(
        "SELECT {COLS} FROM exec_sessions WHERE (CAST(?1 AS TEXT) IS NULL OR server = ?1) \
         ORDER BY started DESC, rowid DESC LIMIT ?2"
    );
    c.map(&sql, p![server, limit], row)
}

/// [`ExecSessions::exec_session`] on a connection.
pub fn get(c: &mut dyn Db, id: &str) -> StoreResult<Option<ExecSession>> {
    let sql = format!("SELECT {COLS} FROM exec_sessions WHERE id = ?1");
    c.opt(&sql, p![id])?.as_ref().map(row).transpose()
}

/// [`ExecSessions::exec_recording`] on a connection.
pub fn recording(c: &mut dyn Db, id: &str) -> StoreResult<Vec<Vec<u8>>> {
    c.map(
        "SELECT data FROM exec_recordings WHERE session = ?1 ORDER BY seq",
        p![id],
        |r| r.get(0),
    )
}

/// [`ExecSessions::prune_recordings`] on a connection.
pub fn prune(c: &mut dyn Db, max: u64) -> StoreResult<usize> {
    tx(c, |tx| {
        let total: i64 = tx
            .one(
                "SELECT CAST(COALESCE(SUM(recording_bytes), 0) AS BIGINT) FROM exec_sessions",
                p![],
            )?
            .get(0)?;
        let mut over = total - max as i64;
        let mut dropped = 0;
        if over > 0 {
            let oldest: Vec<(String, i64)> = tx.map(
                "SELECT id, recording_bytes FROM exec_sessions WHERE recording_bytes > 0 \
                 ORDER BY started, rowid",
                p![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (id, bytes) in oldest {
                if over <= 0 {
                    break;
                }
                tx.execute("DELETE FROM exec_recordings WHERE session = ?1", p![id])?;
                tx.execute(
                    "UPDATE exec_sessions SET recording_bytes = 0 WHERE id = ?1",
                    p![id],
                )?;
                over -= bytes;
                dropped += 1;
            }
        }
        Ok(dropped)
    })
}
