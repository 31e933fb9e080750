//! What the hub has ingested of each agent's buffer (issue 22, "no gaps
//! while the link is down"): the buffer's id and the sequence numbers taken,
//! as inclusive ranges (JSON text, at most `MAX_SEQ_RANGES`). Kept in the
//! store so a restarted hub skips what it took before instead of counting
//! it twice.

use super::sql::{p, Db};
use super::StoreResult;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE agent_buffers (
    agent     TEXT PRIMARY KEY,
    buffer_id TEXT NOT NULL,
    ranges    TEXT NOT NULL
);
"#;

/// The hub's record of agents' buffers.
pub trait BufferSeqs {
    /// (buffer id, ranges as JSON) of `agent`, if recorded.
    fn buffer_seqs(&self, agent: &str) -> StoreResult<Option<(String, String)>>;
    /// Record `agent`'s buffer `id` and the ranges taken from it.
    fn set_buffer_seqs(&self, agent: &str, id: &str, ranges: &str) -> StoreResult<()>;
}

/// [`BufferSeqs::buffer_seqs`] on a connection.
pub fn get(c: &mut dyn Db, agent: &str) -> StoreResult<Option<(String, String)>> {
    c.opt(
        "SELECT buffer_id, ranges FROM agent_buffers WHERE agent = ?1",
        p![agent],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// [`BufferSeqs::set_buffer_seqs`] on a connection.
pub fn set(c: &mut dyn Db, agent: &str, id: &str, ranges: &str) -> StoreResult<()> {
    c.execute(
        "INSERT INTO agent_buffers (agent, buffer_id, ranges) VALUES (?1, ?2, ?3) \
         ON CONFLICT (agent) DO UPDATE SET buffer_id = excluded.buffer_id, ranges = excluded.ranges",
        p![agent, id, ranges],
    )?;
    Ok(())
}
