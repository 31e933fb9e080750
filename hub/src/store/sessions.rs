//! Dashboard sessions in the store (issue 23), so that a browser signed in
//! through one hub of a cluster is signed in on every hub (a load balancer
//! sends its next request anywhere), and a sign-out on one ends it on all
//! (each hub polls [`SessionStore::sessions_ended_since`]). Kept by the
//! SHA-256 of the session id, as the hub keeps them in memory
//! ([`crate::http::session`]): the store holds no usable id. Times are Unix
//! seconds.

use super::sql::{p, tx, Db};
use super::StoreResult;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE dashboard_sessions (
    hash       TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL,
    opened_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX dashboard_sessions_ended ON dashboard_sessions (ended_at);
"#;

/// One session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the session id.
    pub hash: String,
    /// The API token it was opened with.
    pub token_id: String,
    /// When it was opened.
    pub opened_at: i64,
    /// When it ends by itself.
    pub expires_at: i64,
}

/// The store's part in dashboard sessions.
pub trait SessionStore {
    /// Keep a new session; sessions expired or ended before `forget_before`
    /// are forgotten in the same transaction.
    fn put_session(&self, s: &SessionRow, forget_before: i64) -> StoreResult<()>;
    /// The session `hash` if it has neither ended nor expired at `now`.
    fn live_session(&self, hash: &str, now: i64) -> StoreResult<Option<SessionRow>>;
    /// End session `hash` at `now` (sign-out): whether it was live.
    fn end_session(&self, hash: &str, now: i64) -> StoreResult<bool>;
    /// Hashes of sessions ended at or after `since`.
    fn sessions_ended_since(&self, since: i64) -> StoreResult<Vec<String>>;
}

/// [`SessionStore::put_session`] on a connection.
pub fn put(c: &mut dyn Db, s: &SessionRow, forget_before: i64) -> StoreResult<()> {
    tx(c, |c| {
        c.execute(
            "DELETE FROM dashboard_sessions WHERE expires_at < ?1 OR ended_at < ?1",
            p![forget_before],
        )?;
        c.execute(
            "INSERT INTO dashboard_sessions (hash, token_id, opened_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (hash) DO NOTHING",
            p![s.hash, s.token_id, s.opened_at, s.expires_at],
        )?;
        Ok(())
    })
}

/// [`SessionStore::live_session`] on a connection.
pub fn live(c: &mut dyn Db, hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
    c.opt(
        "SELECT hash, token_id, opened_at, expires_at FROM dashboard_sessions \
         WHERE hash = ?1 AND ended_at IS NULL AND expires_at > ?2",
        p![hash, now],
    )?
    .map(|r| {
        Ok(SessionRow {
            hash: r.get(0)?,
            token_id: r.get(1)?,
            opened_at: r.get(2)?,
            expires_at: r.get(3)?,
        })
    })
    .transpose()
}

/// [`SessionStore::end_session`] on a connection.
pub fn end(c: &mut dyn Db, hash: &str, now: i64) -> StoreResult<bool> {
    let n = c.execute(
        "UPDATE dashboard_sessions SET ended_at = ?2 WHERE hash = ?1 AND ended_at IS NULL",
        p![hash, now],
    )?;
    Ok(n == 1)
}

/// [`SessionStore::sessions_ended_since`] on a connection.
pub fn ended_since(c: &mut dyn Db, since: i64) -> StoreResult<Vec<String>> {
    c.map(
        "SELECT hash FROM dashboard_sessions WHERE ended_at >= ?1 ORDER BY hash",
        p![since],
        |r| r.get(0),
    )
}
