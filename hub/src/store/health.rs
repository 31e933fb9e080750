//! Health history in SQLite: one row per container per bucket, in three tiers
//! (5 s for 1 h, 1 min for 24 h, 15 min for 30 days). Coarse tiers are
//! running aggregates (sum, max, count) updated on every sample, so a query
//! never scans the fine tier. Rows are integers only, keyed by a small series
//! id (agent, container name), in a WITHOUT ROWID table.

use std::collections::HashMap;

use nextdeploy_shared::docker::HealthSnapshot;
use rusqlite::{params, Connection, OptionalExtension};

use super::StoreResult;
use crate::limits::HEALTH_TX_CONTAINERS;

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
    cpu_n     INTEGER NOT NULL,
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

pub use nextdeploy_shared::protocol::streams::HistoryPoint;

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

/// Record snapshots, in transactions of about [`HEALTH_TX_CONTAINERS`]
/// containers each (a snapshot is never split), so SQLite's write lock is
/// never held long by the history.
pub fn record(
    conn: &mut Connection,
    cache: &mut HashMap<(String, String), i64>,
    batch: &[(String, HealthSnapshot)],
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
        record_tx(conn, cache, &rest[..n])?;
        rest = &rest[n..];
    }
    Ok(())
}

/// Record `batch` in one transaction.
fn record_tx(
    conn: &mut Connection,
    cache: &mut HashMap<(String, String), i64>,
    batch: &[(String, HealthSnapshot)],
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    {
        let mut up = tx.prepare_cached(
            "INSERT INTO health_points (series, res, bucket, n, cpu_n, cpu_sum, cpu_max, mem_sum, mem_max, mem_limit, net_rx, net_tx, restarts, state, health)
             VALUES (?1, ?2, ?3, 1, ?12, ?4, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (series, res, bucket) DO UPDATE SET
                n = n + 1, cpu_n = cpu_n + excluded.cpu_n,
                cpu_sum = cpu_sum + excluded.cpu_sum, cpu_max = max(cpu_max, excluded.cpu_max),
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
                        c.health,
                        i64::from(c.cpu_percent.is_some())
                    ])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Delete points past their tier's retention, then the series left without
/// points: a container gone for longer than the longest tier (30 days)
/// leaves nothing behind. Returns rows deleted (points and series).
pub fn prune(
    conn: &Connection,
    cache: &mut HashMap<(String, String), i64>,
    now: i64,
) -> StoreResult<usize> {
    let mut n = 0;
    for (res, keep) in TIERS {
        n += conn.execute(
            "DELETE FROM health_points WHERE res = ?1 AND bucket < ?2",
            params![res, now - keep],
        )?;
    }
    let series = conn.execute(
        "DELETE FROM health_series WHERE NOT EXISTS \
         (SELECT 1 FROM health_points WHERE health_points.series = health_series.id)",
        [],
    )?;
    if series > 0 {
        // Ids of deleted series must not be reused from the cache.
        cache.clear();
    }
    Ok(n + series)
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
        "SELECT bucket, n, cpu_sum, cpu_max, mem_sum, mem_max, mem_limit, net_rx, net_tx, restarts, state, health, cpu_n
         FROM health_points WHERE series = ?1 AND res = ?2 AND bucket >= ?3 ORDER BY bucket",
    )?;
    let rows = st.query_map(params![series, res, since], |r| {
        let n: i64 = r.get(1)?;
        let n = n.max(1);
        let cpu_sum: i64 = r.get(2)?;
        let cpu_max: i64 = r.get(3)?;
        let mem_sum: i64 = r.get(4)?;
        let mem_max: i64 = r.get(5)?;
        let cpu_n: i64 = r.get(12)?;
        Ok(HistoryPoint {
            t_s: r.get(0)?,
            samples: n,
            cpu_avg: (cpu_n > 0).then(|| cpu_sum as f64 / cpu_n as f64 / 100.0),
            cpu_max: (cpu_n > 0).then(|| cpu_max as f64 / 100.0),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::Store;
    use nextdeploy_shared::docker::ContainerHealth;

    fn snap(at: i64, cpu: Option<f64>, mem: u64) -> HealthSnapshot {
        HealthSnapshot {
            at,
            docker_available: true,
            containers: vec![ContainerHealth {
                id: "abc".into(),
                name: "web".into(),
                state: "running".into(),
                cpu_percent: cpu,
                mem_usage: mem,
                mem_limit: 1000,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn tiers_aggregate_and_prune() {
        let s = SqliteStore::in_memory().unwrap();
        let t0: i64 = 1_800_000_000; // a multiple of 900: one 15 min bucket
        let batch: Vec<(String, HealthSnapshot)> = vec![
            ("a".into(), snap(t0, None, 100)),
            ("a".into(), snap(t0 + 5, Some(50.0), 200)),
            ("a".into(), snap(t0 + 10, Some(100.0), 300)),
        ];
        s.record_health(&batch).unwrap();
        let fine = s.health_history("a", "web", 5, 0).unwrap();
        assert_eq!(fine.len(), 3);
        assert_eq!(fine[0].cpu_avg, None);
        let minute = s.health_history("a", "web", 60, 0).unwrap();
        assert_eq!(minute.len(), 1);
        assert_eq!(minute[0].samples, 3);
        assert_eq!(minute[0].cpu_avg, Some(75.0));
        assert_eq!(minute[0].cpu_max, Some(100.0));
        assert_eq!(minute[0].mem_avg, 200);
        assert_eq!(minute[0].mem_max, 300);
        assert_eq!(s.health_containers("a").unwrap(), vec!["web".to_string()]);
        // An hour and a bit later the 5 s tier is gone, the others stay.
        let pruned = s.prune_health(t0 + 3700).unwrap();
        assert_eq!(pruned, 3);
        assert!(s.health_history("a", "web", 5, 0).unwrap().is_empty());
        assert_eq!(s.health_history("a", "web", 900, 0).unwrap().len(), 1);
    }

    #[test]
    fn series_gone_past_the_longest_tier_are_deleted() {
        let s = SqliteStore::in_memory().unwrap();
        let t0: i64 = 1_800_000_000;
        let month = TIERS[2].1;
        let mut api = snap(t0 + month + 900, None, 1);
        api.containers[0].name = "api".into();
        s.record_health(&[("a".into(), snap(t0, None, 1)), ("a".into(), api)])
            .unwrap();
        assert_eq!(s.health_containers("a").unwrap(), ["api", "web"]);
        // Pruned a little over a month after web's last point: only api stays.
        s.prune_health(t0 + month + 1000).unwrap();
        assert_eq!(s.health_containers("a").unwrap(), ["api"]);
        assert!(s.health_history("a", "web", 900, 0).unwrap().is_empty());
        assert_eq!(s.health_history("a", "api", 900, 0).unwrap().len(), 1);
        // A container of that name coming back gets a fresh series.
        s.record_health(&[("a".into(), snap(t0 + month + 1005, None, 1))])
            .unwrap();
        assert_eq!(s.health_containers("a").unwrap(), ["api", "web"]);
        assert_eq!(s.health_history("a", "web", 5, 0).unwrap().len(), 1);
    }

    #[test]
    fn batches_past_one_transaction_are_all_written() {
        let s = SqliteStore::in_memory().unwrap();
        let t0: i64 = 1_800_000_000;
        let many = |at: i64, n: usize| {
            let mut sn = snap(at, None, 1);
            let one = sn.containers[0].clone();
            sn.containers = (0..n)
                .map(|i| ContainerHealth {
                    name: format!("c{i}"),
                    ..one.clone()
                })
                .collect();
            sn
        };
        // Two snapshots per transaction would not fit; one alone is larger
        // than a transaction and is still written whole.
        let half = HEALTH_TX_CONTAINERS / 2 + 1;
        let batch: Vec<(String, HealthSnapshot)> = vec![
            ("a".into(), many(t0, half)),
            ("a".into(), many(t0 + 5, half)),
            ("b".into(), many(t0, HEALTH_TX_CONTAINERS + 3)),
        ];
        s.record_health(&batch).unwrap();
        assert_eq!(s.health_containers("a").unwrap().len(), half);
        assert_eq!(s.health_history("a", "c0", 5, 0).unwrap().len(), 2);
        let b = s.health_containers("b").unwrap();
        assert_eq!(b.len(), HEALTH_TX_CONTAINERS + 3);
    }
}
