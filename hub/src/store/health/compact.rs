//! Packing the history: an agent's 5 s rows of a window that has passed
//! become one deflated block (merged into the block if one is there, for
//! rows that came late), and their roll-ups are merged into the coarse
//! tiers' blocks, in one transaction; pruning past retention; converting
//! the earlier layout.

use std::collections::BTreeMap;

use super::{corrupt, touch_names};
use crate::history::{self, codec, Point, GRACE_S, TIERS};
use crate::store::sql::{p, tx, Db, Row};
use crate::store::StoreResult;

/// Windows packed per transaction: each is a few milliseconds of work, so a
/// transaction holds the history's write lock for well under a second.
pub const COMPACT_TX_WINDOWS: usize = 50;

/// Pack at most `max` windows of 5 s rows that are due at `now`; returns
/// how many were packed (less than `max`: nothing more is due).
pub fn compact(conn: &mut dyn Db, now: i64, max: usize) -> StoreResult<usize> {
    let fine = TIERS[0];
    let due = history::bucket(now - GRACE_S, fine.window);
    let mut done = 0;
    while done < max {
        let want = (max - done).min(COMPACT_TX_WINDOWS);
        let agents = due_agents(conn, fine.res, due, want)?;
        if agents.is_empty() {
            break;
        }
        tx(conn, |tx| {
            for agent in &agents {
                pack_oldest(tx, agent)?;
            }
            Ok(())
        })?;
        done += agents.len();
    }
    Ok(done)
}

/// Agents with rows of tier `res` in a window before `due`, oldest first.
fn due_agents(conn: &mut dyn Db, res: i64, due: i64, n: usize) -> StoreResult<Vec<String>> {
    conn.map(
        "SELECT DISTINCT agent FROM health_rows WHERE res = ?1 AND bucket < ?2 LIMIT ?3",
        p![res, due, n as i64],
        |r| r.get(0),
    )
}

/// Pack `agent`'s oldest window of 5 s rows.
fn pack_oldest(tx: &mut dyn Db, agent: &str) -> StoreResult<()> {
    let fine = TIERS[0];
    let first: i64 = tx
        .one(
            "SELECT min(bucket) FROM health_rows WHERE agent = ?1 AND res = ?2",
            p![agent, fine.res],
        )?
        .get(0)?;
    let start = history::bucket(first, fine.window);
    let end = start + fine.window;
    let mut fresh: Vec<Point> = Vec::new();
    let rows = tx.query(
        "SELECT data FROM health_rows WHERE agent = ?1 AND res = ?2 AND bucket >= ?3 AND bucket < ?4",
        p![agent, fine.res, start, end],
    )?;
    for r in &rows {
        fresh.extend(codec::decode(r.blob(0)?, None).map_err(corrupt)?);
    }
    tx.execute(
        "DELETE FROM health_rows WHERE agent = ?1 AND res = ?2 AND bucket >= ?3 AND bucket < ?4",
        p![agent, fine.res, start, end],
    )?;
    // Containers still reporting stay listed past the longest tier.
    let names: std::collections::BTreeSet<&str> = fresh.iter().map(|p| &*p.container).collect();
    touch_names(tx, agent, names.into_iter(), end)?;
    for coarse in &TIERS[1..] {
        let mut blocks: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
        for p in history::roll_up(&fresh, coarse.res) {
            blocks
                .entry(history::bucket(p.t, coarse.window))
                .or_default()
                .push(p);
        }
        for (b, points) in blocks {
            merge_block(tx, agent, coarse.res, b, points)?;
        }
    }
    merge_block(tx, agent, fine.res, start, fresh)
}

/// Write `points` into the block (`agent`, `res`, `start`), merged with
/// what it holds.
pub(crate) fn merge_block(
    tx: &mut dyn Db,
    agent: &str,
    res: i64,
    start: i64,
    mut points: Vec<Point>,
) -> StoreResult<()> {
    let old = tx.opt(
        "SELECT data FROM health_blocks WHERE agent = ?1 AND res = ?2 AND start = ?3",
        p![agent, res, start],
    )?;
    if let Some(old) = old {
        let mut all = codec::decode(old.blob(0)?, None).map_err(corrupt)?;
        all.append(&mut points);
        points = all;
    }
    let data = codec::encode(&history::normalize(points), true);
    tx.execute(
        "INSERT INTO health_blocks (agent, res, start, data) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (agent, res, start) DO UPDATE SET data = excluded.data",
        p![agent, res, start, data],
    )?;
    Ok(())
}

/// Write packed blocks straight, merged with what is there (see
/// [`crate::store::Store::put_health_blocks`]), inside the caller's
/// transaction.
pub fn put_blocks(tx: &mut dyn Db, blocks: Vec<super::Block>) -> StoreResult<()> {
    for (agent, res, start, points) in blocks {
        let names: std::collections::BTreeSet<std::sync::Arc<str>> =
            points.iter().map(|p| p.container.clone()).collect();
        touch_names(tx, &agent, names.iter().map(|n| &**n), start)?;
        merge_block(tx, &agent, res, start, points)?;
    }
    Ok(())
}

/// Delete blocks and rows past their tier's retention, and the names of
/// containers not seen for the longest one. Returns rows deleted.
pub fn prune(conn: &mut dyn Db, now: i64) -> StoreResult<usize> {
    let mut n = 0;
    for t in TIERS {
        n += conn.execute(
            "DELETE FROM health_blocks WHERE res = ?1 AND start < ?2",
            p![t.res, now - t.keep - t.window],
        )?;
        n += conn.execute(
            "DELETE FROM health_rows WHERE res = ?1 AND bucket < ?2",
            p![t.res, now - t.keep],
        )?;
    }
    let longest = TIERS[TIERS.len() - 1].keep;
    n += conn.execute(
        "DELETE FROM health_names WHERE last_t < ?1",
        p![now - longest],
    )?;
    Ok(n)
}

/// Convert the earlier layout's points (a row per container per bucket in
/// every tier) straight into blocks, so they are not rolled up a second
/// time, then drop its tables. Returns the points converted. SQLite only
/// (a PostgreSQL store never had that layout).
pub fn convert_old(conn: &mut dyn Db) -> StoreResult<usize> {
    if !super::has_old(conn)? {
        return Ok(0);
    }
    tx(conn, |tx| {
        let mut groups: BTreeMap<(String, i64, i64), Vec<Point>> = Default::default();
        let mut n = 0;
        let rows = tx.query(
            "SELECT s.agent, s.container, p.res, p.bucket, p.n, p.cpu_n, p.cpu_sum, p.cpu_max, \
             p.mem_sum, p.mem_max, p.mem_limit, p.net_rx, p.net_tx, p.restarts, p.state, p.health \
             FROM health_points p JOIN health_series s ON s.id = p.series",
            p![],
        )?;
        for r in &rows {
            let (agent, res, p) = old_point(r)?;
            if let Some(tier) = history::tier(res) {
                let start = history::bucket(p.t, tier.window);
                groups.entry((agent, res, start)).or_default().push(p);
                n += 1;
            }
        }
        for ((agent, res, start), points) in groups {
            merge_block(tx, &agent, res, start, points)?;
        }
        tx.batch(
            "INSERT OR IGNORE INTO health_names (agent, container, last_t) \
             SELECT s.agent, s.container, max(p.bucket) FROM health_series s \
             JOIN health_points p ON p.series = s.id GROUP BY s.id; \
             DROP TABLE health_points; DROP TABLE health_series;",
        )?;
        Ok(n)
    })
}

/// One point of the earlier layout: (agent, resolution, point).
fn old_point(r: &Row) -> StoreResult<(String, i64, Point)> {
    let n: i64 = r.get::<i64>(4)?.max(1);
    let cpu_n: i64 = r.get(5)?;
    let kib = |b: i64| (b.max(0) as u64).div_ceil(1024) as i64;
    let p = Point {
        t: r.get(3)?,
        container: r.get::<String>(1)?.into(),
        n,
        cpu_n,
        cpu_avg: if cpu_n > 0 {
            r.get::<i64>(6)? / cpu_n
        } else {
            0
        },
        cpu_max: r.get(7)?,
        mem_avg: kib(r.get::<i64>(8)? / n),
        mem_max: kib(r.get(9)?),
        mem_limit: kib(r.get(10)?),
        net_rx: r.get(11)?,
        net_tx: r.get(12)?,
        restarts: r.get(13)?,
        state: r.get::<String>(14)?.into(),
        health: r.get::<Option<String>>(15)?.map(Into::into),
    };
    Ok((r.get(0)?, r.get(2)?, p))
}
