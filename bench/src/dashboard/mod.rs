//! `nextdeploy-bench dashboard`: the web dashboard's performance targets
//! (issue 19) measured in headless Chromium. The release hub runs on HTTPS
//! (its self-signed certificate, as by default) with simulated agents
//! ([`crate::fleet`]) or a real agent and a real container ([`logs`]); the
//! browser side is `web/bench/dashboard.mjs` (playwright-core), one `node`
//! run per part, its figures read from its stdout as JSON lines.
//!
//! Parts: `load` (bytes of a cold load of the sign-in and fleet pages),
//! `fleet` (time to interactive and label-selector filtering with
//! `--agents`), `logs` (a container logging `--log-rate` lines/s followed on
//! its page), `heap` (the fleet page open for `--heap-minutes`). Results go
//! to `bench/results/dashboard.{json,md}`, which keep the latest run of each
//! part (the heap part is usually run on its own), and a dated copy of the
//! run's own parts.

mod logs;
mod node;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::scenario::{median, target, Target};
use crate::{fleet, hub, procfs};

/// The parts, in the order they run.
const PARTS: [&str; 4] = ["load", "fleet", "logs", "heap"];
/// Limits of issue 19.
const LOAD_KB: f64 = 200.0;
const INTERACTIVE_MS: f64 = 1000.0;
const FILTER_MS: f64 = 100.0;
const LONGTASK_MS: f64 = 200.0;
/// "Flat": growth between the second and the last checkpoint (the first is
/// a warm-up), as a share of the second.
const FLAT_GROWTH: f64 = 0.10;
/// How long the simulated fleet may take to connect.
const CONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Selectors the filter is measured with: each matches 1 % of the fleet.
const SELECTORS: [&str; 7] = [
    "shard=s07",
    "shard=s23",
    "shard=s42",
    "shard=s58",
    "shard=s61",
    "shard=s77",
    "shard=s99",
];

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Parts to run, comma-separated: load, fleet, logs, heap.
    #[arg(long, value_delimiter = ',', default_value = "load,fleet,logs,heap")]
    part: Vec<String>,
    /// Simulated agents for the load and fleet parts.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Synthetic containers in each simulated agent's snapshots.
    #[arg(long, default_value_t = 5)]
    containers: usize,
    /// Simulated agents for the heap part.
    #[arg(long, default_value_t = 1000)]
    heap_agents: usize,
    /// How long the heap part keeps the fleet page open, minutes
    /// (checkpoints at 1 and every sixth of it: 1, 10, 20, ..., 60).
    #[arg(long, default_value_t = 60)]
    heap_minutes: u64,
    /// Lines per second the logging container writes.
    #[arg(long, default_value_t = 5000)]
    log_rate: u64,
    /// For how many seconds it writes them.
    #[arg(long, default_value_t = 60)]
    log_seconds: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    for p in &args.part {
        if !PARTS.contains(&p.as_str()) {
            bail!("unknown part {p}: one of {}", PARTS.join(", "));
        }
    }
    let t_start = Instant::now();
    node::check()?;
    crate::build::build_binaries()?;
    crate::raise_nofile();
    let date = crate::date_utc();
    let load_before = procfs::load1();
    let work = std::env::temp_dir().join(format!("nd-bench-dash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let mut parts: Vec<Value> = Vec::new();
    let mut errors = Vec::new();
    let runs = |p: &str| args.part.iter().any(|x| x == p);
    let mut record = |name: &str, r: anyhow::Result<Vec<Value>>| match r {
        Ok(v) => parts.extend(v),
        Err(e) => {
            eprintln!("dashboard {name}: FAILED: {e:#}");
            errors.push(format!("{name}: {e:#}"));
            parts.push(json!({"scenario": format!("dashboard-{name}"), "failed": true, "error": format!("{e:#}")}));
        }
    };
    if runs("load") || runs("fleet") {
        let r = load_and_fleet(&work.join("fleet"), &args, runs("load"), runs("fleet"));
        record("fleet", r);
    }
    if runs("logs") {
        record(
            "logs",
            logs::run(&work.join("logs"), &args).map(|v| vec![v]),
        );
    }
    if runs("heap") {
        record("heap", heap(&work.join("heap"), &args).map(|v| vec![v]));
    }
    let _ = std::fs::remove_dir_all(&work);
    let report = json!({
        "mode": "dashboard",
        "date": date,
        "machine": procfs::machine(),
        "load1_before": load_before,
        "load1_after": procfs::load1(),
        "duration_s": t_start.elapsed().as_secs_f64(),
        "command": command_line(),
        "scenarios": parts,
        "errors": errors,
    });
    println!(
        "\nNextDeploy bench, dashboard, {date} (load {load_before:.2} -> {:.2}, {:.0}s)\n",
        procfs::load1(),
        t_start.elapsed().as_secs_f64()
    );
    print!("{}", crate::report::text(&report));
    for p in write::write(&hub::workspace().join("bench/results"), &report)? {
        println!("wrote {}", p.display());
    }
    if !errors.is_empty() {
        bail!("some parts failed (see above)");
    }
    Ok(())
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p nextdeploy-bench -- {}",
        args.join(" ")
    )
}

/// A hub on HTTPS in `dir` with `n` simulated agents (varied labels,
/// `containers` each) connected.
struct Setup {
    hub: hub::HubProc,
    _fleet: fleet::Fleet,
    token: String,
    url: String,
    connect_s: f64,
}

fn setup(dir: &Path, n: usize, containers: usize) -> anyhow::Result<Setup> {
    let t0 = Instant::now();
    let pin = fleet::enrol_labelled(dir, n, fleet::varied_labels)?;
    eprintln!(
        "enrolled {n} simulated agents in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let hub = hub::start_with(dir, None, true)?;
    let fleet = fleet::Fleet::start(hub.ssh, &pin, n, containers)?;
    let t0 = Instant::now();
    while (fleet.connected() as usize) < n {
        if t0.elapsed() > CONNECT_LIMIT {
            bail!(
                "only {} of {n} agents connected after {CONNECT_LIMIT:?}",
                fleet.connected()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let connect_s = t0.elapsed().as_secs_f64();
    eprintln!("{n} agents connected in {connect_s:.1}s");
    // A snapshot from each, so the page's first status has them all.
    std::thread::sleep(Duration::from_secs(6));
    Ok(Setup {
        token: hub.admin_token()?,
        url: format!("https://{}/", hub.http),
        hub,
        _fleet: fleet,
        connect_s,
    })
}

fn load_and_fleet(dir: &Path, args: &Args, load: bool, fleet: bool) -> anyhow::Result<Vec<Value>> {
    let s = setup(dir, args.agents, args.containers)?;
    let n = args.agents.to_string();
    let mut out = Vec::new();
    if load {
        let r = node::run(
            "load",
            &[
                ("DASH_URL", &s.url),
                ("DASH_TOKEN", &s.token),
                ("DASH_AGENTS", &n),
            ],
            Duration::from_secs(180),
            |_| {},
        )?;
        out.push(load_figures(&r, args));
    }
    if fleet {
        let matches = (0..args.agents)
            .filter(|i| i % 100 == 7)
            .count()
            .to_string();
        let r = node::run(
            "fleet",
            &[
                ("DASH_URL", &s.url),
                ("DASH_TOKEN", &s.token),
                ("DASH_AGENTS", &n),
                ("DASH_SELECTORS", &SELECTORS.join(",")),
                ("DASH_MATCHES", &matches),
            ],
            Duration::from_secs(300),
            |_| {},
        )?;
        out.push(fleet_figures(r, args, &s, &matches));
    }
    Ok(out)
}

fn kb(v: &Value) -> f64 {
    v["bytes"].as_f64().unwrap_or(f64::NAN) / 1000.0
}

fn load_figures(r: &Value, args: &Args) -> Value {
    let (signin, fleet) = (kb(&r["signin"]), kb(&r["fleet"]));
    json!({
        "scenario": "dashboard-load",
        "agents": args.agents,
        "signin_kb": signin,
        "fleet_kb": fleet,
        "fleet_ws_kb": r["fleet"]["ws"]["bytes"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        "signin_assets": r["signin"]["assets"],
        "fleet_assets": r["fleet"]["assets"],
        "definition": "sum of CDP Network.loadingFinished encodedDataLength (compressed body and headers) over every HTTP response of a cold load (fresh browser context) until no request is open or started for 2 s; the fleet page's WebSocket payload (list_agents, status) is shown apart as fleet_ws_kb",
        "targets": [
            target("sign-in page, first load (kB)", signin, LOAD_KB, Target::AtMost),
            target("fleet page, first load (kB)", fleet, LOAD_KB, Target::AtMost),
        ],
    })
}

fn fleet_figures(r: Value, args: &Args, s: &Setup, matches: &str) -> Value {
    let list = |v: &Value, k: &str| -> Vec<f64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f[k].as_f64())
            .collect()
    };
    let mut ms = list(&r["filters"], "ms");
    let filter = median(&mut ms);
    let max = ms.iter().copied().fold(f64::NAN, f64::max);
    // A load that found no quiet window has no time to interactive.
    let mut inter: Vec<f64> = r["loads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| match l["quiet_reached"].as_bool() {
            Some(true) => l["interactive_ms"].as_f64().unwrap_or(f64::NAN),
            _ => f64::INFINITY,
        })
        .collect();
    let interactive = median(&mut inter);
    let mut ready = list(&r["loads"], "ready_ms");
    json!({
        "scenario": "dashboard-fleet",
        "agents": args.agents,
        "containers_per_agent": args.containers,
        "connect_s": s.connect_s,
        "hub_rss_mib": procfs::rss_kib(s.hub.pid()) as f64 / 1024.0,
        "ready_ms": median(&mut ready),
        "interactive_ms": interactive,
        "interactive_ms_each": inter,
        "filter_median_ms": filter,
        "filter_max_ms": max,
        "filter_matches": matches.parse::<u64>().unwrap_or(0),
        "open_page_ws_kb_per_s": r["ws_bytes_per_s"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        "loads": r["loads"],
        "filters": r["filters"],
        "definition": format!("median of {} cold loads (fresh browser context, signed in). Ready: the first animation frame (ms since navigation start) in which the counts read all {} agents online and a row with an agent link is drawn; interactive: ready, or the end of the last long task (>50 ms, PerformanceObserver) before the first {} ms without one after ready, if later. Filter: from the label selector's input event (its timeStamp) to a task posted from the first animation frame whose list reads the filtered count, i.e. after that frame's paint; one fill per selector, each matching 1 %, on the last loaded page. open_page_ws_kb_per_s: WebSocket payload the open page receives (its 5 s re-reads of list_agents and status)", r["loads"].as_array().map_or(0, Vec::len), args.agents, r["quiet_ms"]),
        "targets": [
            target("fleet page interactive, median (ms)", interactive, INTERACTIVE_MS, Target::AtMost),
            target("label selector filter, median (ms)", filter, FILTER_MS, Target::AtMost),
        ],
    })
}

/// Minutes at which the heap part measures: 1, then every sixth of the run
/// to its end (1, 10, 20, ..., 60).
fn checkpoints(minutes: u64) -> Vec<u64> {
    let minutes = minutes.max(3);
    let step = (minutes / 6).max(1);
    let mut v = vec![1];
    v.extend((1..=6).map(|k| (k * step).max(2)).filter(|m| *m < minutes));
    v.push(minutes);
    v.dedup();
    v
}

fn heap(dir: &Path, args: &Args) -> anyhow::Result<Value> {
    let s = setup(dir, args.heap_agents, args.containers)?;
    let pid = s.hub.pid();
    let marks = checkpoints(args.heap_minutes);
    let list: Vec<String> = marks.iter().map(u64::to_string).collect();
    let mut hub_rss = Vec::new();
    let limit = Duration::from_secs(marks.last().copied().unwrap_or(1) * 60 + 300);
    let r = node::run(
        "heap",
        &[
            ("DASH_URL", &s.url),
            ("DASH_TOKEN", &s.token),
            ("DASH_AGENTS", &args.heap_agents.to_string()),
            ("DASH_CHECKPOINTS", &list.join(",")),
        ],
        limit,
        |line| {
            if line.get("checkpoint").is_some() {
                let mib = procfs::rss_kib(pid) as f64 / 1024.0;
                eprintln!(
                    "  checkpoint {}: hub RSS {mib:.1} MiB",
                    line["checkpoint"]["minute"]
                );
                hub_rss.push(mib);
            }
        },
    )?;
    let mut points = r["points"].as_array().cloned().context("no heap points")?;
    for (p, rss) in points.iter_mut().zip(&hub_rss) {
        p["hub_rss_mib"] = json!(rss);
    }
    let col = |k: &str| -> Vec<f64> { points.iter().filter_map(|p| p[k].as_f64()).collect() };
    let growth = |v: &[f64]| -> f64 {
        match (v.get(1), v.last()) {
            (Some(a), Some(b)) if v.len() >= 3 && *a > 0.0 => (b - a) / a,
            _ => f64::NAN,
        }
    };
    let (heap_g, rss_g) = (growth(&col("js_heap_mib")), growth(&col("hub_rss_mib")));
    // A checkpoint with agents gone measures another load: the run says nothing.
    let short: Vec<Value> = points
        .iter()
        .filter(|p| p["online"].as_u64() != Some(args.heap_agents as u64))
        .map(|p| p["minute"].clone())
        .collect();
    if !short.is_empty() {
        bail!(
            "not all {} agents online at minute(s) {short:?}: {}",
            args.heap_agents,
            json!(points)
        );
    }
    Ok(json!({
        "scenario": "dashboard-heap",
        "agents": args.heap_agents,
        "containers_per_agent": args.containers,
        "minutes": args.heap_minutes,
        "js_heap_growth_pct": heap_g * 100.0,
        "hub_rss_growth_pct": rss_g * 100.0,
        "points": points,
        "definition": format!("at each checkpoint (minutes since the fleet page showed all agents): CDP HeapProfiler.collectGarbage, then Performance.getMetrics JSHeapUsedSize; the hub's VmRSS. Flat: growth from the checkpoint at minute {} to the last at most {:.0} % (the first minute is a warm-up)", marks.get(1).copied().unwrap_or(0), FLAT_GROWTH * 100.0),
        "targets": [
            target("JS heap growth, 2nd to last checkpoint (%)", heap_g * 100.0, FLAT_GROWTH * 100.0, Target::AtMost),
            target("hub RSS growth, 2nd to last checkpoint (%)", rss_g * 100.0, FLAT_GROWTH * 100.0, Target::AtMost),
        ],
    }))
}

/// Where the Node script lives.
fn script() -> PathBuf {
    hub::workspace().join("web/bench/dashboard.mjs")
}

#[cfg(test)]
mod tests {
    use super::checkpoints;

    #[test]
    fn checkpoints_start_at_one_minute_and_end_at_the_run() {
        assert_eq!(checkpoints(60), [1, 10, 20, 30, 40, 50, 60]);
        assert_eq!(checkpoints(30), [1, 5, 10, 15, 20, 25, 30]);
        assert_eq!(checkpoints(3), [1, 2, 3]);
    }
}
