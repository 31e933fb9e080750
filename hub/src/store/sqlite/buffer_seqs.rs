//! [`BufferSeqs`] on SQLite: the main connection, as every write.

use super::SqliteStore;
use crate::store::buffer_seqs::{self, BufferSeqs};
use crate::store::StoreResult;

impl BufferSeqs for SqliteStore {
    fn buffer_seqs(&self, agent: &str) -> StoreResult<Option<(String, String)>> {
        self.with(|c| buffer_seqs::get(c, agent))
    }
    fn set_buffer_seqs(&self, agent: &str, id: &str, ranges: &str) -> StoreResult<()> {
        self.with(|c| buffer_seqs::set(c, agent, id, ranges))
    }
}
