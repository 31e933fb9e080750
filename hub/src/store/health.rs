//! Health history in SQLite: one row per container per bucket, in three tiers
//! (5 s for 1 h, 1 min for 24 h, 15 min for 30 days). Coarse tiers are
//! running aggregates (sum, max, count) updated on every sample, so a query
//! never scans the fine tier. Rows are integers only, keyed by a small series
//! id (agent, container name), in a WITHOUT ROWID table.

use std::collections::HashMap;

use nextdeploy_shared::docker::HealthSnapshot;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::StoreResult;

/// Tiers: (resolution seconds, retention seconds).
pub const TIERS: [(i64, i64); 3] = [(5, 3600), (60, 86_400), (900, 30 * 86_400)];

/// Schema of the history tables (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE health_series (
    id        INTEGER PRIMARY KEY,
    agent     TEXT NOT NULL,
    container TEXT NOT NULL,
    UNIQUE (agent, container)
);
CREATE TABLE health_points (
    series    INTEGER NOT NULL,
    res       INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    cpu_sum   INTEGER NOT NULL,
    cpu_max   INTEGER NOT NULL,
    mem_sum   INTEGER NOT NULL,
    mem_max   INTEGER NOT NULL,
    mem_limit INTEGER NOT NULL,
    net_rx    INTEGER NOT NULL,
    net_tx    INTEGER NOT NULL,
    restarts  INTEGER NOT NULL,
    state     TEXT NOT NULL,
    health    TEXT,
    PRIMARY KEY (series, res, bucket)
) WITHOUT ROWID;
"#;

/// One point of a container's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryPoint {
    /// Bucket start, Unix seconds.
    pub t: i64,
    /// Samples in the bucket.
    pub samples: i64,
    /// Mean CPU percent.
    pub cpu_avg: f64,
    /// Max CPU percent.
    pub cpu_max: f64,
    /// Mean memory bytes.
    pub mem_avg: u64,
    /// Max memory bytes.
    pub mem_max: u64,
    /// Memory limit.
    pub mem_limit: u64,
    /// Network counters at the bucket's last sample.
    pub net_rx: u64,
    /// Network bytes sent.
    pub net_tx: u64,
    /// Restart count at the last sample.
    pub restarts: i64,
    /// State at the last sample.
    pub state: String,
    /// Health at the last sample.
    pub health: Option<String>,
}

fn series_id(
    conn: &Connection,
    cache: &mut HashMap<(String, String), i64>,
    agent: &str,
    container: &str,
) -> StoreResult<i64> {
    let key = (agent.to_string(), container.to_string());
    if let Some(id) = cache.get(&key) {
        return Ok(*id);
    }
    conn.execute(
        "INSERT INTO health_series (agent, container) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![agent, container],
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM health_series WHERE agent = ?1 AND container = ?2",
        params![agent, container],
        |r| r.get(0),
    )?;
    cache.insert(key, id);
    Ok(id)
}

/// Record snapshots in one transaction.
pub fn record(
    conn: &mut Connection,
    cache: &mut HashMap<(String, String), i64>,
    batch: &[(String, HealthSnapshot)],
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    {
        let mut up = tx.prepare_cached(
            "INSERT INTO health_points (series, res, bucket, n, cpu_sum, cpu_max, mem_sum, mem_max, mem_limit, net_rx, net_tx, restarts, state, health)
             VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (series, res, bucket) DO UPDATE SET
                n = n + 1, cpu_sum = cpu_sum + excluded.cpu_sum, cpu_max = max(cpu_max, excluded.cpu_max),
                mem_sum = mem_sum + excluded.mem_sum, mem_max = max(mem_max, excluded.mem_max),
                mem_limit = excluded.mem_limit, net_rx = excluded.net_rx, net_tx = excluded.net_tx,
                restarts = excluded.restarts, state = excluded.state, health = excluded.health",
        )?;
        for (agent, snap) in batch {
            for c in &snap.containers {
                let series = series_id(&tx, cache, agent, &c.name)?;
                // CPU in hundredths of a percent: integers keep rows small.
                let cpu = (c.cpu_percent.unwrap_or(0.0) * 100.0).round() as i64;
                for (res, _) in TIERS {
                    let bucket = snap.at - snap.at.rem_euclid(res);
                    up.execute(params![
                        series,
                        res,
                        bucket,
                        cpu,
                        c.mem_usage as i64,
                        c.mem_limit as i64,
                        c.net_rx as i64,
                        c.net_tx as i64,
                        c.restarts,
                        c.state,
                        c.health
                    ])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Delete points past their tier's retention; returns rows deleted.
pub fn prune(conn: &Connection, now: i64) -> StoreResult<usize> {
    let mut n = 0;
    for (res, keep) in TIERS {
        n += conn.execute(
            "DELETE FROM health_points WHERE res = ?1 AND bucket < ?2",
            params![res, now - keep],
        )?;
    }
    Ok(n)
}

/// The points of one container since `since`, at resolution `res`.
pub fn query(
    conn: &Connection,
    agent: &str,
    container: &str,
    res: i64,
    since: i64,
) -> StoreResult<Vec<HistoryPoint>> {
    let Some(series): Option<i64> = conn
        .query_row(
            "SELECT id FROM health_series WHERE agent = ?1 AND container = ?2",
            params![agent, container],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(Vec::new());
    };
    let mut st = conn.prepare(
        "SELECT bucket, n, cpu_sum, cpu_max, mem_sum, mem_max, mem_limit, net_rx, net_tx, restarts, state, health
         FROM health_points WHERE series = ?1 AND res = ?2 AND bucket >= ?3 ORDER BY bucket",
    )?;
    let rows = st.query_map(params![series, res, since], |r| {
        let n: i64 = r.get(1)?;
        let n = n.max(1);
        let cpu_sum: i64 = r.get(2)?;
        let cpu_max: i64 = r.get(3)?;
        let mem_sum: i64 = r.get(4)?;
        let mem_max: i64 = r.get(5)?;
        Ok(HistoryPoint {
            t: r.get(0)?,
            samples: n,
            cpu_avg: cpu_sum as f64 / n as f64 / 100.0,
            cpu_max: cpu_max as f64 / 100.0,
            mem_avg: (mem_sum / n).max(0) as u64,
            mem_max: mem_max.max(0) as u64,
            mem_limit: r.get::<_, i64>(6)?.max(0) as u64,
            net_rx: r.get::<_, i64>(7)?.max(0) as u64,
            net_tx: r.get::<_, i64>(8)?.max(0) as u64,
            restarts: r.get(9)?,
            state: r.get(10)?,
            health: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Containers with history for an agent.
pub fn containers(conn: &Connection, agent: &str) -> StoreResult<Vec<String>> {
    let mut st =
        conn.prepare("SELECT container FROM health_series WHERE agent = ?1 ORDER BY container")?;
    let rows = st.query_map([agent], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
