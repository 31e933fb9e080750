//! The `health` scenario (issue 20, "a hub that carries 10,000 working
//! agents"): simulated agents (in `sim-agents` children, [`children`]) push a
//! `containers`-container health snapshot every `interval` to a release hub
//! for `seconds`; measured over that steady window: the hub's RSS and CPU,
//! the CPU per ingested point, the store's growth, snapshots lost or late,
//! and, while the fleet ingests and once on the idle hub before it
//! connects, a WebSocket API request, `history` reads and a fresh agent's
//! connect ([`probe`]). `--fill-history` first fills the store ([`fill`]).
//!
//! Prints the figures and writes the report (`bench/results/health-latest.json`
//! and a dated copy, or `--json PATH`); `full` runs it as its `health` group
//! at [`Params::full`].

mod children;
mod fill;
mod probe;
mod scrape;
mod window;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{fleet, hub, procfs, sim};
use children::Pushers;
use probe::Spread;
use window::run_on;

/// Fresh WebSocket connections, one `status` request each, per measurement.
const WS_REQUESTS: usize = 20;
/// Fresh agents connected one at a time per measurement (idle, then busy:
/// twice this many identities are enrolled past the fleet).
const CONNECT_TRIES: usize = 5;
/// Scrapes of `/metrics` while the fleet ingests (the median is reported).
const SCRAPES: usize = 3;
/// Runs of each `history` read (the median is reported).
const HISTORY_RUNS: usize = 5;
/// Between progress lines in the steady window.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The idle hub settles this long before its RSS is taken.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// The fleet may take this long to connect, plus [`CONNECT_PER_AGENT`] each.
const CONNECT_FLOOR: Duration = Duration::from_secs(120);
const CONNECT_PER_AGENT: Duration = Duration::from_millis(20);
/// The hub's warning for a snapshot its history queue dropped
/// (`hub/src/telemetry/mod.rs`), one line each.
const QUEUE_FULL: &str = "health history queue full";
/// Clock ticks per second of `/proc/<pid>/stat` (Linux's `USER_HZ`).
const TICKS_PER_S: f64 = 100.0;

/// The `health` subcommand.
#[derive(clap::Args)]
pub struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Containers per agent.
    #[arg(long, default_value_t = 20)]
    containers: usize,
    /// Seconds between snapshots.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// How long to measure once all agents are connected, seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Write the report here instead of `bench/results/health-latest.json`
    /// (and its dated copy).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Fill the store with history before the hub starts (`health/fill.rs`).
    #[arg(long)]
    fill_history: bool,
    /// `full`: the fleet, 10,000 agents × 20 containers every 5 s
    /// for 120 s with `--fill-history` (instead of the four sizes above).
    #[arg(long, value_parser = ["full"])]
    preset: Option<String>,
}

/// One run's sizes.
#[derive(Clone, Debug)]
pub struct Params {
    pub agents: usize,
    pub containers: usize,
    pub interval: u64,
    pub seconds: u64,
    pub fill_history: bool,
}

impl Params {
    /// The fleet: 10,000 agents × 20 containers every 5 s, 120 s,
    /// with the store filled first.
    pub fn full() -> Params {
        Params {
            agents: 10_000,
            containers: 20,
            interval: 5,
            seconds: 120,
            fill_history: true,
        }
    }
}

/// The `health` subcommand: measure, print, write the report.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let p = match a.preset {
        Some(_) => Params::full(),
        None => Params {
            agents: a.agents.max(1),
            containers: a.containers,
            interval: a.interval.max(1),
            seconds: a.seconds,
            fill_history: a.fill_history,
        },
    };
    crate::raise_nofile();
    let (load_before, date, t0) = (procfs::load1(), crate::date_utc(), Instant::now());
    let figures = measure(&p).await?;
    let report = json!({
        "mode": "health",
        "date": date,
        "machine": procfs::machine(),
        "load1_before": load_before,
        "load1_after": procfs::load1(),
        "duration_s": t0.elapsed().as_secs_f64(),
        "command": format!(
            "cargo run --release -p nextdeploy-bench -- health --agents {} --containers {} \
             --interval {} --seconds {}{}",
            p.agents, p.containers, p.interval, p.seconds,
            if p.fill_history { " --fill-history" } else { "" }
        ),
        "scenarios": [figures],
        "errors": [],
    });
    print!("\n{}", crate::report::text(&report));
    for w in crate::report::write_json(a.json.as_deref(), "health", &report)? {
        println!("wrote {}", w.display());
    }
    Ok(())
}

/// Bytes of the store (database and write-ahead log) in `dir`.
fn store_bytes(dir: &Path) -> u64 {
    ["nextdeploy.db", "nextdeploy.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// The hub's log: `NEXTDEPLOY_BENCH_HUB_LOG` when set, else a file in the
/// data dir that this sets it to (unset again on drop), so the hub's
/// [`QUEUE_FULL`] warnings can be counted.
struct HubLog {
    path: PathBuf,
    ours: bool,
}

impl HubLog {
    fn open(dir: &Path) -> HubLog {
        match std::env::var_os("NEXTDEPLOY_BENCH_HUB_LOG") {
            Some(p) => HubLog {
                path: p.into(),
                ours: false,
            },
            None => {
                let path = dir.join("hub.log");
                std::env::set_var("NEXTDEPLOY_BENCH_HUB_LOG", &path);
                HubLog { path, ours: true }
            }
        }
    }

    /// The log's length now.
    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// [`QUEUE_FULL`] lines written from offset `from` on.
    fn queue_full_since(&self, from: u64) -> u64 {
        let all = std::fs::read(&self.path).unwrap_or_default();
        let tail = all.get(from as usize..).unwrap_or_default();
        String::from_utf8_lossy(tail)
            .lines()
            .filter(|l| l.contains(QUEUE_FULL))
            .count() as u64
    }
}

impl Drop for HubLog {
    fn drop(&mut self) {
        if self.ours {
            std::env::remove_var("NEXTDEPLOY_BENCH_HUB_LOG");
        }
    }
}

/// Run the scenario at `p` on a fresh data dir; its figures.
pub async fn measure(p: &Params) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("nd-bench-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    let pin = fleet::enrol(&dir, p.agents + 2 * CONNECT_TRIES)?;
    eprintln!(
        "health: enrolled {} agents in {:.1}s",
        p.agents + 2 * CONNECT_TRIES,
        t0.elapsed().as_secs_f64()
    );
    let filled = if p.fill_history {
        let db = dir.join(nextdeploy_hub::serve::STORE_FILE);
        let now = nextdeploy_shared::time::now_unix();
        fill::fill_history(&db, p.agents, p.containers, p.interval as i64, now)?
    } else {
        0
    };
    let log = HubLog::open(&dir);
    let r = match hub::start(&dir, None) {
        Ok(hub) => run_on(&hub, p, &pin, &log, filled).await,
        Err(e) => Err(e),
    };
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_queue_full_warnings_after_an_offset() {
        let dir = std::env::temp_dir().join(format!("nd-bench-hublog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = HubLog {
            path: dir.join("hub.log"),
            ours: false,
        };
        assert_eq!((log.len(), log.queue_full_since(0)), (0, 0));
        let line = format!("WARN telemetry: {QUEUE_FULL}; dropping a snapshot agent=sim-00001\n");
        std::fs::write(&log.path, line.repeat(2)).unwrap();
        let mid = log.len();
        std::fs::write(&log.path, line.repeat(2) + "WARN other\n" + &line).unwrap();
        assert_eq!((log.queue_full_since(0), log.queue_full_since(mid)), (3, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
