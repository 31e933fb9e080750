//! Rows of the SQLite store read into records, and the column lists they expect.

use nextdeploy_shared::labels::Labels;
use rusqlite::Row;

use crate::store::{AgentRecord, ApiTokenRecord, JoinTokenRecord, Role};

pub(super) fn labels_from(text: String) -> rusqlite::Result<Labels> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn labels_to(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

pub(super) const AGENT_COLS: &str = "name, public_key, fingerprint, labels, enrolled_at, last_seen, last_address, version, hostname, revoked_at";

pub(super) fn agent_row(r: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        name: r.get(0)?,
        public_key: r.get(1)?,
        fingerprint: r.get(2)?,
        labels: labels_from(r.get(3)?)?,
        enrolled_at: r.get(4)?,
        last_seen: r.get(5)?,
        last_address: r.get(6)?,
        version: r.get(7)?,
        hostname: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

pub(super) const JOIN_COLS: &str =
    "id, secret_hash, name, labels, created_at, expires_at, used_at, created_by";

pub(super) fn join_row(r: &Row<'_>) -> rusqlite::Result<JoinTokenRecord> {
    Ok(JoinTokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        name: r.get(2)?,
        labels: labels_from(r.get(3)?)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        used_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

pub(super) const API_COLS: &str =
    "id, secret_hash, name, role, created_at, expires_at, revoked_at, no_exec";

pub(super) fn api_row(r: &Row<'_>) -> rusqlite::Result<ApiTokenRecord> {
    let role: String = r.get(3)?;
    Ok(ApiTokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        no_exec: r.get(7)?,
    })
}
