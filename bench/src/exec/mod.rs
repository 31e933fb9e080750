//! The `exec` scenario: `nextdeploy agent exec` (CLI -> WebSocket over TLS
//! -> hub -> SSH tunnel -> agent -> Docker Engine) against `docker exec`
//! (CLI -> Docker Engine) on the same container, in the same run: a
//! keystroke's round trip through `cat` (median, p95, the latency added and
//! the ratio), throughput out of the container and into it (MB/s of 10^6
//! bytes, the median of `runs` with the sides alternating, the ratio), and the
//! hub's and the agent's peak RSS and CPU per MB while the bytes stream.
//!
//! The release hub and agent come from [`crate::build::build_binaries`]
//! (`cargo build --release --workspace`, a no-op when current), as for
//! `quick`, `full` and `dashboard`. [`setup`]: the busybox container and
//! `nextdeploy hub --local-agent`;
//! [`measure`]: the child processes and their timing. Prints a summary and
//! writes `bench/results/exec-latest.json` and a dated copy (or `--json`).

mod measure;
mod setup;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procfs;
use crate::scenario::{median, percentile, ratio};
use measure::Side;
use setup::{Container, Hub};

/// One keystroke session (warm-up and rounds) may take this long.
const KEYSTROKE_LIMIT: Duration = Duration::from_secs(120);
/// One throughput run may take this long plus [`SECONDS_PER_GIB`] per GiB
/// (a tenth of loopback docker exec's speed on a busy 2-core machine).
const RUN_FLOOR: Duration = Duration::from_secs(60);
const SECONDS_PER_GIB: u64 = 300;
/// Between RSS samples of the hub and the agent.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// The `exec` subcommand.
#[derive(clap::Args)]
pub struct Args {
    /// Keystroke round trips measured per side.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Keystroke round trips first, not measured.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Bytes out of the container per run.
    #[arg(long, default_value_t = 1 << 30)]
    out_bytes: u64,
    /// Bytes into the container per run.
    #[arg(long, default_value_t = 256 << 20)]
    in_bytes: u64,
    /// Throughput runs per side and direction (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the report here instead of `bench/results/exec-latest.json`
    /// (and its dated copy).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The `exec` subcommand: set up, measure, print, write the report.
pub fn run(a: Args) -> anyhow::Result<()> {
    crate::build::build_binaries()?;
    let (load_before, date, t0) = (procfs::load1(), crate::date_utc(), Instant::now());
    let work = std::env::temp_dir().join(format!("nd-bench-exec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let r = measure_all(&a, &work);
    let _ = std::fs::remove_dir_all(&work);
    let (scenarios, server) = r?;
    let report = json!({
        "mode": "exec",
        "date": date,
        "machine": procfs::machine(),
        "load1_before": load_before,
        "load1_after": procfs::load1(),
        "duration_s": t0.elapsed().as_secs_f64(),
        "command": format!(
            "cargo run --release -p nextdeploy-bench -- exec --rounds {} --warmup {} \
             --out-bytes {} --in-bytes {} --runs {}",
            a.rounds, a.warmup, a.out_bytes, a.in_bytes, a.runs
        ),
        "hub": "nextdeploy hub --local-agent (HTTPS API, agent over SSH on loopback)",
        "server": server,
        "container": setup::CONTAINER,
        "scenarios": scenarios,
        "errors": [],
    });
    print!("\n{}", summary(&report));
    for w in crate::report::write_json(a.json.as_deref(), "exec", &report)? {
        println!("wrote {}", w.display());
    }
    Ok(())
}

/// The container and the hub, then the three measurements; their figures
/// and the agent's name.
fn measure_all(a: &Args, work: &std::path::Path) -> anyhow::Result<(Vec<Value>, String)> {
    let _container = Container::start(work)?;
    let hub = Hub::start(work)?;
    eprintln!(
        "exec: hub {} and agent {:?} ({}) up",
        hub.proc.pid(),
        hub.server,
        hub.agent_pid
    );
    let keys = keystroke(a, &hub)?;
    let out = throughput(&hub, "out", a.out_bytes, a.runs, measure::out)?;
    let into = throughput(&hub, "in", a.in_bytes, a.runs, measure::into)?;
    Ok((vec![keys, out, into], hub.server.clone()))
}

/// Keystroke round trips, the two sides one after the other.
fn keystroke(a: &Args, hub: &Hub) -> anyhow::Result<Value> {
    let rounds = a.rounds.max(1);
    let mut nd = measure::keystrokes(Side::NextDeploy, hub, a.warmup, rounds, KEYSTROKE_LIMIT)?;
    let mut dk = measure::keystrokes(Side::Docker, hub, a.warmup, rounds, KEYSTROKE_LIMIT)?;
    let (nd_med, dk_med) = (median(&mut nd), median(&mut dk));
    eprintln!("exec: keystroke median {nd_med:.2} ms (nextdeploy), {dk_med:.2} ms (docker)");
    Ok(json!({
        "scenario": "exec-keystroke",
        "rounds": rounds,
        "warmup": a.warmup,
        "nextdeploy_median_ms": nd_med,
        "nextdeploy_p95_ms": percentile(&mut nd, 0.95),
        "nextdeploy_max_ms": percentile(&mut nd, 1.0),
        "docker_median_ms": dk_med,
        "docker_p95_ms": percentile(&mut dk, 0.95),
        "docker_max_ms": percentile(&mut dk, 1.0),
        "added_median_ms": nd_med - dk_med,
        "median_vs_docker": ratio(nd_med, dk_med),
    }))
}

/// One direction's runs, alternating sides, with the hub's and the agent's
/// RSS sampled throughout and their CPU counted over the nextdeploy runs.
fn throughput(
    hub: &Hub,
    dir: &str,
    bytes: u64,
    runs: usize,
    one: fn(Side, &Hub, u64, Duration) -> anyhow::Result<f64>,
) -> anyhow::Result<Value> {
    let limit = RUN_FLOOR + Duration::from_secs(SECONDS_PER_GIB * bytes.div_ceil(1 << 30));
    let pids = (hub.proc.pid(), hub.agent_pid);
    let before = (procfs::rss_kib(pids.0), procfs::rss_kib(pids.1));
    let rss = RssPeaks::start(pids);
    let (mut nd, mut dk, mut ticks) = (Vec::new(), Vec::new(), (0u64, 0u64));
    let mut r = Ok(());
    for _ in 0..runs.max(1) {
        let t = (procfs::cpu_ticks(pids.0), procfs::cpu_ticks(pids.1));
        r = one(Side::NextDeploy, hub, bytes, limit).map(|s| nd.push(s));
        ticks.0 += procfs::cpu_ticks(pids.0).saturating_sub(t.0);
        ticks.1 += procfs::cpu_ticks(pids.1).saturating_sub(t.1);
        r = r.and_then(|()| one(Side::Docker, hub, bytes, limit).map(|s| dk.push(s)));
        if r.is_err() {
            break;
        }
    }
    let peaks = rss.stop();
    r?;
    let mb = bytes as f64 / 1e6;
    let mb_s = |v: &[f64]| v.iter().map(|s| mb / s).collect::<Vec<_>>();
    let (nd_runs, dk_runs) = (mb_s(&nd), mb_s(&dk));
    let (nd_mb_s, dk_mb_s) = (mb / median(&mut nd), mb / median(&mut dk));
    let streamed_mb = mb * nd_runs.len() as f64;
    let cpu_ms_per_mb = |t: u64| t as f64 / procfs::TICK_HZ * 1e3 / streamed_mb;
    eprintln!("exec: {dir} {nd_mb_s:.0} MB/s (nextdeploy), {dk_mb_s:.0} MB/s (docker)");
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(json!({
        "scenario": format!("exec-{dir}"),
        "bytes": bytes,
        "runs": nd_runs.len(),
        "nextdeploy_mb_s": nd_mb_s,
        "docker_mb_s": dk_mb_s,
        "vs_docker": ratio(nd_mb_s, dk_mb_s),
        "nextdeploy_runs_mb_s": nd_runs,
        "docker_runs_mb_s": dk_runs,
        "hub_rss_before_mib": mib(before.0),
        "agent_rss_before_mib": mib(before.1),
        "hub_peak_rss_mib": mib(peaks.0),
        "agent_peak_rss_mib": mib(peaks.1),
        "hub_cpu_ms_per_mb": cpu_ms_per_mb(ticks.0),
        "agent_cpu_ms_per_mb": cpu_ms_per_mb(ticks.1),
    }))
}

/// Samples two processes' RSS on a thread until stopped; their peaks.
struct RssPeaks {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl RssPeaks {
    fn start(pids: (u32, u32)) -> RssPeaks {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = (0, 0);
            while !s.load(Ordering::Relaxed) {
                peak.0 = peak.0.max(procfs::rss_kib(pids.0));
                peak.1 = peak.1.max(procfs::rss_kib(pids.1));
                std::thread::sleep(RSS_EVERY);
            }
            peak
        });
        RssPeaks { stop, thread }
    }

    /// Stop sampling; the peaks, KiB.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

/// The figures for a reader: one block per measurement.
fn summary(r: &Value) -> String {
    let s = |name: &str| {
        r["scenarios"]
            .as_array()
            .and_then(|v| v.iter().find(|s| s["scenario"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut o = format!(
        "NextDeploy bench, exec, {} (load {:.2} -> {:.2}, {:.0}s)\n\
         nextdeploy agent exec (CLI -> hub -> SSH tunnel -> agent) vs docker exec, container {}\n\n",
        r["date"].as_str().unwrap_or(""),
        f(&r["load1_before"]),
        f(&r["load1_after"]),
        f(&r["duration_s"]),
        r["container"].as_str().unwrap_or(""),
    );
    let k = s("exec-keystroke");
    o += &format!(
        "keystroke round trip ({} rounds): nextdeploy median {:.2} ms p95 {:.2} | \
         docker median {:.2} ms p95 {:.2} | added {:.2} ms, {:.2}x\n",
        k["rounds"],
        f(&k["nextdeploy_median_ms"]),
        f(&k["nextdeploy_p95_ms"]),
        f(&k["docker_median_ms"]),
        f(&k["docker_p95_ms"]),
        f(&k["added_median_ms"]),
        f(&k["median_vs_docker"]),
    );
    for dir in ["out", "in"] {
        let t = s(&format!("exec-{dir}"));
        o += &format!(
            "throughput {dir:<3} ({} MiB, median of {}): nextdeploy {:.0} MB/s | docker {:.0} MB/s | \
             {:.2}x; peak RSS hub {:.1} MiB, agent {:.1} MiB; CPU ms/MB hub {:.2}, agent {:.2}\n",
            t["bytes"].as_u64().unwrap_or(0) >> 20,
            t["runs"],
            f(&t["nextdeploy_mb_s"]),
            f(&t["docker_mb_s"]),
            f(&t["vs_docker"]),
            f(&t["hub_peak_rss_mib"]),
            f(&t["agent_peak_rss_mib"]),
            f(&t["hub_cpu_ms_per_mb"]),
            f(&t["agent_cpu_ms_per_mb"]),
        );
    }
    o
}
