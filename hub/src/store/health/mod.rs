//! Health history in SQLite, packed (see [`crate::history`]): a snapshot is
//! one row per agent per 5 s bucket holding all its containers; when the
//! rows' 10 min window has passed, they become one deflated block per agent
//! and their roll-ups are merged into the coarse tiers' blocks
//! ([`compact`]). Queries read the blocks of the tier asked for, plus the
//! rows not packed yet (rolled up for a coarse tier).
//!
//! Layout: `mod.rs` schema, ingest, queries; [`compact`] packing, pruning
//! and converting a store of the earlier row-per-point layout.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use nextdeploy_shared::docker::HealthSnapshot;

use super::sql::{p, tx, Db, Dialect};
use super::{StoreError, StoreResult};
use crate::history::{self, codec, Point, TIERS};
use crate::limits::HEALTH_TX_CONTAINERS;

pub mod cache;
pub mod compact;
#[cfg(test)]
mod tests;

pub use nextdeploy_shared::protocol::streams::HistoryPoint;

/// Schema of the earlier layout (migration 2; converted and dropped at open
/// by [`compact::convert_old`]).
pub const OLD_SCHEMA: &str = r#"
CREATE TABLE health_series (
    id        INTEGER PRIMARY KEY,
    agent     TEXT NOT NULL,
    container TEXT NOT NULL,
    UNIQUE (agent, container)
);
CREATE TABLE health_points (
    series INTEGER NOT NULL, res INTEGER NOT NULL, bucket INTEGER NOT NULL,
    n INTEGER NOT NULL, cpu_n INTEGER NOT NULL, cpu_sum INTEGER NOT NULL,
    cpu_max INTEGER NOT NULL, mem_sum INTEGER NOT NULL, mem_max INTEGER NOT NULL,
    mem_limit INTEGER NOT NULL, net_rx INTEGER NOT NULL, net_tx INTEGER NOT NULL,
    restarts INTEGER NOT NULL, state TEXT NOT NULL, health TEXT,
    PRIMARY KEY (series, res, bucket)
) WITHOUT ROWID;
"#;

/// Schema of the packed layout.
pub const SCHEMA: &str = r#"
CREATE TABLE health_rows (
    agent  TEXT NOT NULL,
    res    INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (agent, res, bucket)
);
CREATE INDEX health_rows_due ON health_rows (res, bucket);
CREATE TABLE health_blocks (
    agent TEXT NOT NULL,
    res   INTEGER NOT NULL,
    start INTEGER NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (agent, res, start)
);
CREATE INDEX health_blocks_age ON health_blocks (res, start);
CREATE TABLE health_names (
    agent     TEXT NOT NULL,
    container TEXT NOT NULL,
    last_t    INTEGER NOT NULL,
    PRIMARY KEY (agent, container)
) WITHOUT ROWID;
"#;

/// A packed block to write: (agent, tier resolution, window start, points).
pub type Block = (String, i64, i64, Vec<Point>);

/// The writer's memory: a hash of each agent's container names, so names
/// are written only when they change.
pub type NameCache = HashMap<String, u64>;

fn corrupt(e: codec::CodecError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Add `points` (normalized, all in bucket `bucket` of tier `res`) to the
/// row of (`agent`, `res`, `bucket`), merging with what it holds.
pub(crate) fn put_row(
    conn: &mut dyn Db,
    agent: &str,
    res: i64,
    bucket: i64,
    points: Vec<Point>,
) -> StoreResult<()> {
    let data = codec::encode(&points, false);
    let n = conn.execute(
        "INSERT INTO health_rows (agent, res, bucket, data) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT DO NOTHING",
        p![agent, res, bucket, data],
    )?;
    if n > 0 {
        return Ok(());
    }
    let row = conn.one(
        "SELECT data FROM health_rows WHERE agent = ?1 AND res = ?2 AND bucket = ?3",
        p![agent, res, bucket],
    )?;
    let mut all = codec::decode(row.blob(0)?, None).map_err(corrupt)?;
    all.extend(points);
    let data = codec::encode(&history::normalize(all), false);
    conn.execute(
        "UPDATE health_rows SET data = ?4 WHERE agent = ?1 AND res = ?2 AND bucket = ?3",
        p![agent, res, bucket, data],
    )?;
    Ok(())
}

/// Record `names` for `agent` as seen at `t` (upsert).
pub(crate) fn touch_names<'a>(
    conn: &mut dyn Db,
    agent: &str,
    names: impl Iterator<Item = &'a str>,
    t: i64,
) -> StoreResult<()> {
    for n in names {
        conn.execute(
            "INSERT INTO health_names (agent, container, last_t) VALUES (?1, ?2, ?3) \
             ON CONFLICT (agent, container) DO UPDATE SET last_t = \
             CASE WHEN excluded.last_t > health_names.last_t THEN excluded.last_t \
             ELSE health_names.last_t END",
            p![agent, n, t],
        )?;
    }
    Ok(())
}

/// Record snapshots, in transactions of about [`HEALTH_TX_CONTAINERS`]
/// containers each (a snapshot is never split).
pub fn record(
    conn: &mut dyn Db,
    names: &mut NameCache,
    batch: &[(String, std::sync::Arc<HealthSnapshot>)],
) -> StoreResult<()> {
    let mut rest = batch;
    while !rest.is_empty() {
        let mut n = 0;
        let mut rows = 0;
        while n < rest.len()
            && (n == 0 || rows + rest[n].1.containers.len() <= HEALTH_TX_CONTAINERS)
        {
            rows += rest[n].1.containers.len();
            n += 1;
        }
        tx(conn, |tx| {
            for (agent, snap) in &rest[..n] {
                record_one(tx, names, agent, snap)?;
            }
            Ok(())
        })?;
        rest = &rest[n..];
    }
    Ok(())
}

fn record_one(
    conn: &mut dyn Db,
    names: &mut NameCache,
    agent: &str,
    snap: &HealthSnapshot,
) -> StoreResult<()> {
    let points = history::normalize(history::from_snapshot(snap));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in &points {
        p.container.hash(&mut h);
    }
    let hash = h.finish();
    if names.get(agent) != Some(&hash) {
        touch_names(conn, agent, points.iter().map(|p| &*p.container), snap.at)?;
        names.insert(agent.to_string(), hash);
    }
    if points.is_empty() {
        return Ok(());
    }
    let b = history::bucket(snap.at, TIERS[0].res);
    put_row(conn, agent, TIERS[0].res, b, points)
}

/// Decoded points of `container` in the rows of (`agent`, `res`) from `since`.
fn rows_of(
    conn: &mut dyn Db,
    agent: &str,
    container: &str,
    res: i64,
    since: i64,
) -> StoreResult<Vec<Point>> {
    let rows = conn.query(
        "SELECT data FROM health_rows WHERE agent = ?1 AND res = ?2 AND bucket >= ?3",
        p![agent, res, since],
    )?;
    let mut out = Vec::new();
    for r in &rows {
        out.extend(codec::decode(r.blob(0)?, Some(container)).map_err(corrupt)?);
    }
    Ok(out)
}

/// The points of one container since `since`, at resolution `res`: the
/// tier's blocks, and the 5 s rows not packed yet.
pub fn query(
    conn: &mut dyn Db,
    cache: &mut cache::BlockCache,
    agent: &str,
    container: &str,
    res: i64,
    since: i64,
) -> StoreResult<Vec<HistoryPoint>> {
    let Some(tier) = history::tier(res) else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    let blocks = conn.query(
        "SELECT start, data FROM health_blocks WHERE agent = ?1 AND res = ?2 AND start > ?3",
        p![agent, res, since - tier.window],
    )?;
    for r in &blocks {
        let start: i64 = r.get(0)?;
        let raw = cache.raw(agent, res, start, r.blob(1)?).map_err(corrupt)?;
        points.extend(codec::decode_raw(&raw, Some(container)).map_err(corrupt)?);
    }
    let rows = rows_of(conn, agent, container, TIERS[0].res, since)?;
    if res == TIERS[0].res {
        points.extend(rows);
    } else {
        points.extend(history::roll_up(&rows, res));
    }
    Ok(history::normalize(points)
        .iter()
        .filter(|p| p.t >= since)
        .map(history::to_api)
        .collect())
}

/// Containers with history for an agent.
pub fn containers(conn: &mut dyn Db, agent: &str) -> StoreResult<Vec<String>> {
    conn.map(
        "SELECT container FROM health_names WHERE agent = ?1 ORDER BY container",
        p![agent],
        |r| r.get(0),
    )
}

/// Whether the store still has the earlier layout's tables (a SQLite store
/// made before issue 20; a PostgreSQL store never has them).
pub(crate) fn has_old(conn: &mut dyn Db) -> StoreResult<bool> {
    if conn.dialect() == Dialect::Postgres {
        return Ok(false);
    }
    Ok(conn
        .opt(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'health_points'",
            p![],
        )?
        .is_some())
}
