//! `nextdeploy hub migrate --from nextdeploy.db --to postgres://...`: one
//! hub's SQLite store copied into an empty PostgreSQL store, every table in
//! one PostgreSQL transaction (all of it or nothing), rows in their order
//! (SQLite's `rowid`, which the PostgreSQL schema keeps as an identity
//! column where queries order by it). The SQLite store is opened as the hub
//! opens it (migrated to the current schema first).
//!
//! [`TABLES`] names every table and its columns; a unit test checks that it
//! covers every table of a SQLite store, so a table added later cannot be
//! forgotten here.

use std::path::Path;

use super::backend::Backend;
use super::postgres::PgStore;
use super::sql::{tx, Db, Param, Val};
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};

/// Rows read from SQLite per query.
const PAGE: i64 = 1000;

/// Every table a store holds, and the columns copied (the same names on
/// both backends).
pub const TABLES: &[(&str, &str)] = &[
    ("agents", super::agents::AGENT_COLS),
    ("cluster_items", "name, value"),
    ("hubs", "id, ssh_address, api_url, started_at, heartbeat_at"),
    ("agent_leases", "agent, hub_id, expires_at"),
    (
        "dashboard_sessions",
        "hash, token_id, opened_at, expires_at, ended_at",
    ),
    ("join_tokens", super::agents::JOIN_COLS),
    ("api_tokens", super::agents::API_COLS),
    (
        "audit",
        "seq, at, actor, action, target, detail, actor_token",
    ),
    (
        "deploys",
        "id, actor, server, container, image, status, created_at, finished_at, outcome",
    ),
    ("health_rows", "agent, res, bucket, data"),
    ("health_blocks", "agent, res, start, data"),
    ("health_names", "agent, container, last_t"),
    (
        "exec_sessions",
        "id, actor, token_id, server, container, command, tty, started, ended, exit_code, \
         error, bytes_in, bytes_out, recording_bytes, truncated",
    ),
    ("exec_recordings", "session, seq, data"),
    (
        "alert_channels",
        "name, kind, url, secret, created_at, config, min_severity",
    ),
    (
        "alert_rules",
        "name, condition, for_s, selector, container, severity, channel, created_at, above, \
         count, within_s, repeat_s, quiet_hours, quiet_tz",
    ),
    (
        "alerts",
        "id, rule, condition, severity, server, container, labels, status, summary, value, \
         started_at, resolved_at, notified",
    ),
    (
        "alert_outbox",
        "id, alert, status, channel, body, created_at, next_at, attempts, state, done_at",
    ),
    ("alert_deliveries", "seq, notification, at, status, error"),
    (
        "alert_silences",
        "id, selector, container, rule, comment, created_by, starts_at, ends_at",
    ),
    ("agent_buffers", "agent, buffer_id, ranges"),
];

/// Tables whose `seq` identity must continue after the copied rows.
const SEQUENCES: &[&str] = &["audit", "alert_deliveries"];

/// Copy the SQLite store at `from` into the empty PostgreSQL store at `to`;
/// rows copied per table, in [`TABLES`]' order.
pub fn migrate(from: &Path, to: &str) -> StoreResult<Vec<(&'static str, u64)>> {
    if !from.is_file() {
        return Err(StoreError::Open(format!(
            "{} is not a hub store (nextdeploy.db in the hub's data dir)",
            from.display()
        )));
    }
    let src = SqliteStore::open(from)?;
    let dst = PgStore::open(to)?;
    src.main(|s| dst.main(|d| tx(d, |d| copy_all(s, d))))
}

fn copy_all(src: &mut dyn Db, dst: &mut dyn Db) -> StoreResult<Vec<(&'static str, u64)>> {
    for (table, _) in TABLES {
        let n: i64 = dst
            .one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .get(0)?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "the target store is not empty ({table} holds {n} rows); \
                 migrate into a new database"
            )));
        }
    }
    let mut counts = Vec::new();
    for (table, cols) in TABLES {
        counts.push((*table, copy(src, dst, table, cols)?));
    }
    for table in SEQUENCES {
        dst.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), \
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}), false)"
            ),
            &[],
        )?;
    }
    Ok(counts)
}

/// Copy one table, a page at a time in `rowid` order (`health_names` has no
/// rowid: it is read whole, ordered by its key).
fn copy(src: &mut dyn Db, dst: &mut dyn Db, table: &str, cols: &str) -> StoreResult<u64> {
    let width = cols.split(',').count();
    let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
    let insert = format!("INSERT INTO {table} ({cols}) VALUES ({})", marks.join(", "));
    let mut n = 0;
    if table == "health_names" {
        for row in src.query(
            &format!("SELECT {cols} FROM {table} ORDER BY agent, container"),
            &[],
        )? {
            dst.execute(&insert, &params(&row.0))?;
            n += 1;
        }
        return Ok(n);
    }
    let page =
        format!("SELECT rowid, {cols} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2");
    let mut after = i64::MIN;
    loop {
        let rows = src.query(&page, &[Param::Int(after), Param::Int(PAGE)])?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        after = last.get(0)?;
        for row in &rows {
            dst.execute(&insert, &params(&row.0[1..]))?;
            n += 1;
        }
    }
}

fn params(vals: &[Val]) -> Vec<Param<'_>> {
    vals.iter()
        .map(|v| match v {
            Val::Null => Param::Null,
            Val::Int(n) => Param::Int(*n),
            Val::Real(x) => Param::Real(*x),
            Val::Text(s) => Param::Text(s),
            Val::Blob(b) => Param::Blob(b),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table of a SQLite store (as opened: the earlier history
    /// layout converted and dropped) is copied.
    #[test]
    fn every_table_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("nextdeploy.db")).unwrap();
        let mut tables: Vec<String> = s
            .main(|db| {
                db.map(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    &[],
                    |r| r.get(0),
                )
            })
            .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        tables.sort();
        listed.sort();
        assert_eq!(tables, listed);
    }
}
