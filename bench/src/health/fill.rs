//! The fast-forward: 30 days of history for every simulated agent, written
//! before the hub starts, straight into the store's packed blocks through the
//! hub's own store code (`Store::put_health_blocks`), so the store is at its
//! steady state (every tier full) without waiting 30 days. The points come
//! from the same model as the live snapshots ([`crate::sim::synth`]); the
//! coarse tiers cover the finer ones' span as rolled-up rows would.

use std::path::Path;

use nextdeploy_hub::history::{bucket, Point, TIERS};
use nextdeploy_hub::store::sqlite::SqliteStore;
use nextdeploy_hub::store::Store;

use crate::fleet;
use crate::sim::synth::Synth;

/// Agents between progress lines (10,000 agents take minutes).
const PROGRESS_EVERY: usize = 1000;

/// Write the history of `agents` simulated agents with `containers` each,
/// as if they had pushed every `interval` seconds for the 30 days before
/// `now`, up to the start of the current 5 s window (later points come from
/// the live run). Returns the points written.
pub fn fill_history(
    db_path: &Path,
    agents: usize,
    containers: usize,
    interval: i64,
    now: i64,
) -> anyhow::Result<u64> {
    let store = SqliteStore::open(db_path)?;
    let mut written = 0u64;
    for i in 0..agents {
        let name = fleet::sim_name(i);
        let mut synth = Synth::new(&name, containers);
        let mut blocks = Vec::new();
        for tier in TIERS {
            let end = bucket(now, TIERS[0].window);
            let mut t = bucket(now - tier.keep, tier.window);
            while t < end {
                let stop = (t + tier.window).min(end);
                let points: Vec<Point> = (t..stop)
                    .step_by(tier.res as usize)
                    .filter(|b| *b >= now - tier.keep)
                    .flat_map(|b| synth.points(b, tier.res, interval))
                    .collect();
                written += points.len() as u64;
                blocks.push((name.clone(), tier.res, t, points));
                t += tier.window;
            }
        }
        store.put_health_blocks(blocks)?;
        if (i + 1) % PROGRESS_EVERY == 0 {
            eprintln!("health: history of {} agents written", i + 1);
        }
    }
    Ok(written)
}
