//! The `--fill-history` hook: history written into the store before the hub
//! starts, so that `store_bytes_per_point` and the `history` reads are
//! measured against a store holding weeks of points, not minutes.

use std::path::Path;

/// TO BE FILLED IN BY THE LEAD: write `containers` containers' history for
/// each of agents `0..agents` (named [`crate::fleet::sim_name`], containers
/// `<name>-app-<i>` as the simulated agents report them) into the store at
/// `db_path`, ending at `now` (Unix s); the number of points written.
///
/// The hub's packed-history API is being added on branch h-hist; until it
/// is merged this writes nothing and returns `Ok(0)` (the scenario then
/// reports `history_points_filled: 0` and no `store_bytes_per_point`).
pub fn fill_history(
    db_path: &Path,
    agents: usize,
    containers: usize,
    now: i64,
) -> anyhow::Result<u64> {
    let _ = (db_path, agents, containers, now);
    Ok(0)
}
