//! [`ExecSessions`] on SQLite: the main connection, as every write.

use nextdeploy_shared::protocol::exec::ExecSession;

use super::SqliteStore;
use crate::store::exec::{self, ExecSessions, NewSession, SessionEnd};
use crate::store::StoreResult;

impl ExecSessions for SqliteStore {
    fn insert_exec_session(&self, s: &NewSession) -> StoreResult<()> {
        self.with(|c| exec::insert(c, s))
    }
    fn finish_exec_session(&self, id: &str, end: &SessionEnd) -> StoreResult<()> {
        self.with(|c| exec::finish(c, id, end))
    }
    fn append_exec_recording(&self, id: &str, data: &[u8]) -> StoreResult<()> {
        self.with(|c| exec::append(c, id, data))
    }
    fn list_exec_sessions(
        &self,
        server: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ExecSession>> {
        self.with(|c| exec::list(c, server, limit))
    }
    fn exec_session(&self, id: &str) -> StoreResult<Option<ExecSession>> {
        self.with(|c| exec::get(c, id))
    }
    fn exec_recording(&self, id: &str) -> StoreResult<Vec<Vec<u8>>> {
        self.with(|c| exec::recording(c, id))
    }
    fn prune_recordings(&self, max: u64) -> StoreResult<usize> {
        self.with(|c| exec::prune(c, max))
    }
}
