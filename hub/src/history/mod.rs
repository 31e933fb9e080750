//! Health history: the tiers the hub keeps, the point it keeps per container
//! per bucket, and how points merge and roll up into a coarser tier.
//!
//! Layout: `mod.rs` tiers, [`Point`], merge and roll-up; [`codec`] the packed
//! columnar form the store keeps points in (see docs/architecture.md).
//!
//! The flow: a snapshot becomes one row per agent per 5 s bucket (all its
//! containers packed together). When the rows' window (10 min) has passed,
//! they are packed into one compressed block per agent and rolled up into
//! the coarse tiers' blocks (merged into the hour's 1 min block and the
//! day's 15 min block), in the same transaction. So the coarse tiers are
//! computed once, from rows read for packing anyway, and nothing is lost on
//! a kill -9: rows not packed yet are rolled up at query time.

use std::sync::Arc;

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::protocol::streams::HistoryPoint;

pub mod codec;

#[cfg(test)]
pub(crate) mod tests;

/// One resolution tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Seconds per point.
    pub res: i64,
    /// Seconds kept.
    pub keep: i64,
    /// Seconds of one packed block: big enough that a block is several
    /// pages of the store (a block's last page is half empty on average).
    pub window: i64,
}

/// The tiers, finest first: 5 s for 1 h, 1 min for 24 h, 15 min for 30 days.
pub const TIERS: [Tier; 3] = [
    Tier {
        res: 5,
        keep: 3600,
        window: 600,
    },
    Tier {
        res: 60,
        keep: 86_400,
        window: 3600,
    },
    Tier {
        res: 900,
        keep: 30 * 86_400,
        window: 86_400,
    },
];

/// Seconds after a window's end before it is packed: snapshots queued or
/// delayed that long still land in rows (later ones are merged into the
/// block by the next pass).
pub const GRACE_S: i64 = 30;

/// The tier of resolution `res`.
pub fn tier(res: i64) -> Option<Tier> {
    TIERS.iter().copied().find(|t| t.res == res)
}

/// Start of the bucket of width `w` holding `t`.
pub fn bucket(t: i64, w: i64) -> i64 {
    t - t.rem_euclid(w)
}

/// One container's figures over one bucket. Means are kept beside their
/// sample counts so points merge exactly enough; CPU in hundredths of a
/// percent, memory in KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Point {
    /// Bucket start, Unix seconds.
    pub t: i64,
    /// Container name (shared: a block's points of one container hold one).
    pub container: Arc<str>,
    /// Samples.
    pub n: i64,
    /// Samples with a CPU figure.
    pub cpu_n: i64,
    /// Mean CPU over those, hundredths of a percent.
    pub cpu_avg: i64,
    /// Max CPU, hundredths of a percent.
    pub cpu_max: i64,
    /// Mean memory, KiB.
    pub mem_avg: i64,
    /// Max memory, KiB.
    pub mem_max: i64,
    /// Memory limit at the last sample, KiB.
    pub mem_limit: i64,
    /// Network counters at the last sample, bytes.
    pub net_rx: i64,
    /// Bytes sent.
    pub net_tx: i64,
    /// Restart count at the last sample.
    pub restarts: i64,
    /// State at the last sample.
    pub state: Arc<str>,
    /// Health at the last sample.
    pub health: Option<Arc<str>>,
}

fn kib(bytes: u64) -> i64 {
    i64::try_from(bytes.div_ceil(1024)).unwrap_or(i64::MAX)
}

/// The points of one snapshot, in the 5 s bucket of its time.
pub fn from_snapshot(snap: &HealthSnapshot) -> Vec<Point> {
    let t = bucket(snap.at, TIERS[0].res);
    snap.containers
        .iter()
        .map(|c| {
            let cpu = c.cpu_percent.map(|p| (p * 100.0).round() as i64);
            Point {
                t,
                container: c.name.as_str().into(),
                n: 1,
                cpu_n: i64::from(cpu.is_some()),
                cpu_avg: cpu.unwrap_or(0),
                cpu_max: cpu.unwrap_or(0),
                mem_avg: kib(c.mem_usage),
                mem_max: kib(c.mem_usage),
                mem_limit: kib(c.mem_limit),
                net_rx: i64::try_from(c.net_rx).unwrap_or(i64::MAX),
                net_tx: i64::try_from(c.net_tx).unwrap_or(i64::MAX),
                restarts: c.restarts,
                state: c.state.as_str().into(),
                health: c.health.as_deref().map(Into::into),
            }
        })
        .collect()
}

/// Weighted mean of two means.
fn mean(a: i64, na: i64, b: i64, nb: i64) -> i64 {
    let n = na + nb;
    if n <= 0 {
        return 0;
    }
    ((a as i128 * na as i128 + b as i128 * nb as i128) / n as i128) as i64
}

/// Fold `b` (the later one) into `a`: counts add, means weigh, maxima keep
/// the larger, last-sample figures come from `b`.
pub fn merge(a: &mut Point, b: &Point) {
    a.cpu_avg = mean(a.cpu_avg, a.cpu_n, b.cpu_avg, b.cpu_n);
    a.mem_avg = mean(a.mem_avg, a.n, b.mem_avg, b.n);
    a.n += b.n;
    a.cpu_n += b.cpu_n;
    a.cpu_max = a.cpu_max.max(b.cpu_max);
    a.mem_max = a.mem_max.max(b.mem_max);
    a.mem_limit = b.mem_limit;
    a.net_rx = b.net_rx;
    a.net_tx = b.net_tx;
    a.restarts = b.restarts;
    a.state.clone_from(&b.state);
    a.health.clone_from(&b.health);
}

/// Sort by (container, time) and merge points of the same bucket.
pub fn normalize(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by(|a, b| a.container.cmp(&b.container).then(a.t.cmp(&b.t)));
    let mut out: Vec<Point> = Vec::with_capacity(points.len());
    for p in points {
        match out.last_mut() {
            Some(last) if last.t == p.t && last.container == p.container => merge(last, &p),
            _ => out.push(p),
        }
    }
    out
}

/// CPU precision kept in the coarse tiers, hundredths of a percent (0.1 %).
pub const COARSE_CPU_STEP: i64 = 10;
/// Network counter precision kept in the coarse tiers, bytes (1 KiB: over a
/// minute, a rate to 17 B/s).
pub const COARSE_NET_STEP: i64 = 1024;

fn round_to(v: i64, step: i64) -> i64 {
    (v + step / 2).div_euclid(step) * step
}

/// `points` rolled up into buckets of `res` seconds (normalized), rounded to
/// the coarse tiers' precision ([`COARSE_CPU_STEP`], [`COARSE_NET_STEP`]:
/// finer digits of a minute's mean cost bytes and show nothing on a chart).
pub fn roll_up(points: &[Point], res: i64) -> Vec<Point> {
    let mut out = merge_into_buckets(points, res);
    for p in &mut out {
        p.cpu_avg = round_to(p.cpu_avg, COARSE_CPU_STEP);
        p.cpu_max = round_to(p.cpu_max, COARSE_CPU_STEP);
        p.net_rx = p.net_rx.div_euclid(COARSE_NET_STEP) * COARSE_NET_STEP;
        p.net_tx = p.net_tx.div_euclid(COARSE_NET_STEP) * COARSE_NET_STEP;
    }
    out
}

fn merge_into_buckets(points: &[Point], res: i64) -> Vec<Point> {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| a.container.cmp(&b.container).then(a.t.cmp(&b.t)));
    let mut out: Vec<Point> = Vec::new();
    for p in sorted {
        let t = bucket(p.t, res);
        match out.last_mut() {
            Some(last) if last.t == t && last.container == p.container => merge(last, p),
            _ => out.push(Point { t, ..p.clone() }),
        }
    }
    out
}

/// The API's form of a point.
pub fn to_api(p: &Point) -> HistoryPoint {
    let pct = |h: i64| h as f64 / 100.0;
    let bytes = |k: i64| (k.max(0) as u64).saturating_mul(1024);
    HistoryPoint {
        t_s: p.t,
        samples: p.n,
        cpu_avg: (p.cpu_n > 0).then(|| pct(p.cpu_avg)),
        cpu_max: (p.cpu_n > 0).then(|| pct(p.cpu_max)),
        mem_avg: bytes(p.mem_avg),
        mem_max: bytes(p.mem_max),
        mem_limit: bytes(p.mem_limit),
        net_rx: p.net_rx.max(0) as u64,
        net_tx: p.net_tx.max(0) as u64,
        restarts: p.restarts,
        state: p.state.to_string(),
        health: p.health.as_deref().map(str::to_string),
    }
}

/// `containers` x `n` points at 5 s with noisy CPU and memory and growing
/// network counters, as a busy host sends them (tests, the store suite).
pub fn noisy(containers: usize, n: usize, t0: i64) -> Vec<Point> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |m: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as i64
    };
    let mut out = Vec::new();
    for c in 0..containers {
        let (mut rx, mut tx, mut mem) = (1_000_000i64, 500_000i64, 40_000 + rnd(200_000));
        for i in 0..n {
            rx += 1000 + rnd(3000);
            tx += 500 + rnd(1000);
            mem += rnd(200) - 100;
            let cpu = 200 + rnd(800);
            out.push(Point {
                t: t0 + 5 * i as i64,
                container: format!("app-{c}").into(),
                n: 1,
                cpu_n: 1,
                cpu_avg: cpu,
                cpu_max: cpu,
                mem_avg: mem,
                mem_max: mem,
                mem_limit: 2_097_152,
                net_rx: rx,
                net_tx: tx,
                restarts: 0,
                state: "running".into(),
                health: (c % 2 == 0).then(|| "healthy".into()),
            });
        }
    }
    normalize(out)
}
