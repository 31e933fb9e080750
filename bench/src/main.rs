//! `nextdeploy-bench`: measures a real hub (the release binary, a child
//! process) against simulated agents: real SSH connections speaking the agent
//! protocol, with a fixed responder where an agent would ask Docker; and the
//! real agent against real containers. All traffic stays on loopback.
//!
//! Layout:
//! - `main.rs`: modes (`quick`, `full`), the hidden `sim-agents` child;
//!   [`health`]: the `health` scenario (a fleet pushing health snapshots:
//!   hub memory, CPU, store growth, API and connect latency while it
//!   ingests); [`flood`]: the `health-flood` scenario;
//! - [`sim`]: one simulated agent; [`fleet`]: enrolled identities and the
//!   `sim-agents` child processes (the open-file limit is per process);
//! - [`hub`]: the hub under test; [`wsclient`]: the WebSocket API client;
//!   [`procfs`]: RSS, CPU ticks, load, machine;
//! - [`dashboard`]: the dashboard's targets in headless Chromium;
//! - [`exec`]: `nextdeploy agent exec` against `docker exec` (keystroke
//!   round trip, throughput both ways, hub and agent RSS);
//! - [`buffer`]: the agent's buffer replay rate;
//! - [`scenario`]: capacity/fan-out/reconnect, latency, throughput (with the
//!   OpenSSH reference), agent footprint; [`tcpfloor`]: the fan-out's round
//!   over plain TCP (the hidden `tcp-echo` child), its floor on this machine;
//! - [`report`]: table, Markdown, JSON and SVG under `bench/results/`;
//! - [`build`]: the release hub and agent, from `cargo build --release
//!   --workspace` (the README's build, reused as it is).

mod alerts_eval;
mod buffer;

mod build;
mod cluster;
mod dashboard;
mod exec;
mod fleet;
mod flood;
mod health;
mod hub;
mod procfs;
mod report;
mod scenario;
mod sim;
mod stores;
mod tcpfloor;
mod wsclient;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "nextdeploy-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// All scenarios at small N (under 2 minutes).
    Quick {
        #[command(flatten)]
        pick: Pick,
    },
    /// All scenarios at the README's N (10,000 and 15,000 agents).
    Full {
        /// Largest fleet (the 10,000 run is made when this is at least 10,000).
        #[arg(long, default_value_t = 15_000)]
        max_agents: usize,
        #[command(flatten)]
        pick: Pick,
    },
    /// Hub memory, CPU, store growth and API/connect latency with simulated
    /// agents pushing health snapshots.
    Health(health::Args),
    /// Several hubs of one cluster on one store (issue 23): the forwarding's
    /// added ping latency, a fan-out across hubs against one hub's, and one
    /// hub killed.
    Cluster(cluster::Args),
    /// One hub on SQLite against one on PostgreSQL, side by side with the
    /// same agents (issue 23): ping and deploy p50 within 10 %.
    Stores(stores::Args),
    /// One simulated agent flooding oversized health snapshots: hub RSS and
    /// a fresh agent's connect time, before and during.
    HealthFlood {
        /// How long the flood lasts, seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Fresh agents timed before and during the flood (median printed).
        #[arg(long, default_value_t = 5)]
        probes: usize,
    },
    /// The alert evaluator's cost per health snapshot at a fleet's size
    /// (in this process, no hub).
    AlertsEval(alerts_eval::Args),
    /// The web dashboard's targets (issue 19) in headless Chromium.
    Dashboard(dashboard::Args),
    /// `nextdeploy agent exec` against `docker exec` on one container:
    /// keystroke round trip, throughput out and in, hub and agent RSS.
    Exec(exec::Args),
    /// The agent's buffer replay rate: a full 16 MiB buffer of a
    /// 200-container host's outage, read back and framed (records/s, MiB/s).
    Buffer,
    /// Run simulated agents `from..from+count` (a child of quick/full).
    #[command(hide = true)]
    SimAgents {
        #[arg(long)]
        hub: SocketAddr,
        /// Other hubs of its cluster, tried after a failed attempt.
        #[arg(long, value_delimiter = ',')]
        also: Vec<SocketAddr>,
        #[arg(long)]
        pin: String,
        #[arg(long)]
        from: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        containers: usize,
        /// Seconds between health snapshots.
        #[arg(long, default_value_t = 5)]
        interval: u64,
    },
    /// Echo on `count` plain TCP connections to `to` (the fan-out's TCP floor).
    #[command(hide = true)]
    TcpEcho {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long)]
        count: usize,
    },
}

/// For working on one figure: a subset of the scenarios, or another fleet
/// size. A picked run prints its table but writes no results.
#[derive(clap::Args, Clone, Default)]
struct Pick {
    /// Only these scenario groups, comma-separated: fleet (capacity, fan-out,
    /// reconnect), latency, throughput, agent, health (`full` only: 10,000
    /// agents × 20 containers every 5 s, see [`health::Params::full`]).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Fleet size instead of the mode's (one fleet run, with the reconnect storm).
    #[arg(long)]
    agents: Option<usize>,
}

impl Pick {
    fn runs(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
    fn picked(&self) -> bool {
        !self.only.is_empty() || self.agents.is_some()
    }
}

/// What a mode runs.
struct Plan {
    pick: Pick,
    mode: &'static str,
    fleets: Vec<scenario::fleet::FleetRun>,
    pings: usize,
    rps_window: Duration,
    stream_bytes: u64,
    footprint: (usize, u64, usize),
    /// The `health` scenario's run (`full` only).
    health: Option<health::Params>,
}

fn plan(quick: bool, max_agents: usize, pick: Pick) -> Plan {
    use scenario::fleet::FleetRun;
    let mut plan = base_plan(quick, max_agents);
    if let Some(n) = pick.agents {
        plan.fleets = vec![FleetRun {
            agents: n,
            idle_window: plan.fleets[0].idle_window,
            reconnect: true,
        }];
    }
    plan.pick = pick;
    plan
}

fn base_plan(quick: bool, max_agents: usize) -> Plan {
    use scenario::fleet::FleetRun;
    if quick {
        return Plan {
            pick: Pick::default(),
            mode: "quick",
            fleets: vec![FleetRun {
                agents: 1000,
                idle_window: Duration::from_secs(10),
                reconnect: true,
            }],
            pings: 1000,
            rps_window: Duration::from_secs(3),
            stream_bytes: 256 << 20,
            footprint: (50, 10, 1),
            health: None,
        };
    }
    let mut fleets = Vec::new();
    if max_agents > 10_000 {
        fleets.push(FleetRun {
            agents: 10_000,
            idle_window: Duration::from_secs(20),
            reconnect: true,
        });
    }
    fleets.push(FleetRun {
        agents: max_agents,
        idle_window: Duration::from_secs(20),
        reconnect: max_agents <= 10_000,
    });
    Plan {
        pick: Pick::default(),
        mode: "full",
        fleets,
        pings: 5000,
        rps_window: Duration::from_secs(10),
        stream_bytes: 1 << 30,
        footprint: (50, 30, 2),
        health: Some(health::Params::full()),
    }
}

/// Raise this process's open-file soft limit to its hard limit (children
/// inherit it), with util-linux `prlimit` since the crate forbids `unsafe`.
fn raise_nofile() -> u64 {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        })
        .unwrap_or_else(|| "20000".into());
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status();
    hard.parse().unwrap_or(0)
}

fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "undated".into())
}

async fn run_mode(plan: Plan) -> anyhow::Result<()> {
    let t_start = Instant::now();
    build::build_binaries()?;
    let nofile = raise_nofile();
    let load_before = procfs::load1();
    let date = date_utc();
    let work = std::env::temp_dir().join(format!("nd-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    // One store per fleet size, so a selector matches exactly the agents that run.
    let enrolled = |n: usize| -> anyhow::Result<(std::path::PathBuf, String)> {
        let t0 = Instant::now();
        let dir = work.join(format!("template-{n}"));
        let pin = fleet::enrol(&dir, n)?;
        eprintln!(
            "enrolled {n} simulated agents in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        Ok((dir, pin))
    };
    let mut scenarios: Vec<Value> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut record = |name: &str, r: anyhow::Result<Vec<Value>>, scenarios: &mut Vec<Value>| match r
    {
        Ok(v) => {
            for s in &v {
                eprintln!(
                    "{:<11} done ({:.0}s into the run, load {:.2})",
                    s["scenario"].as_str().unwrap_or(""),
                    t_start.elapsed().as_secs_f64(),
                    procfs::load1()
                );
            }
            scenarios.extend(v);
        }
        Err(e) => {
            eprintln!("{name}: FAILED: {e:#}");
            errors.push(format!("{name}: {e:#}"));
            scenarios.push(json!({"scenario": name, "failed": true, "error": format!("{e:#}")}));
        }
    };
    let pick = plan.pick.clone();
    for f in plan.fleets.iter().filter(|_| pick.runs("fleet")) {
        let (template, pin) = enrolled(f.agents)?;
        let r = scenario::fleet::run(&template, &pin, &work, f).await;
        record("capacity", r, &mut scenarios);
    }
    if pick.runs("latency") || pick.runs("throughput") {
        let (template, pin) = enrolled(100)?;
        if pick.runs("latency") {
            let r =
                scenario::latency::run(&template, &pin, &work, plan.pings, plan.rps_window).await;
            record("latency", r.map(|v| vec![v]), &mut scenarios);
        }
        if pick.runs("throughput") {
            let r = scenario::throughput::run(&template, &pin, &work, plan.stream_bytes).await;
            record("throughput", r.map(|v| vec![v]), &mut scenarios);
        }
    }
    if pick.runs("agent") {
        let (c, w, rounds) = plan.footprint;
        let fp =
            tokio::task::spawn_blocking(move || scenario::footprint::run(c, w, rounds)).await?;
        record("agent", Ok(vec![fp]), &mut scenarios);
    }
    if let Some(h) = plan.health.as_ref().filter(|_| pick.runs("health")) {
        record(
            "health",
            health::measure(h).await.map(|v| vec![v]),
            &mut scenarios,
        );
    }
    let _ = std::fs::remove_dir_all(&work);

    let report = json!({
        "mode": plan.mode,
        "date": date,
        "machine": procfs::machine(),
        "load1_before": load_before,
        "load1_after": procfs::load1(),
        "open_files_limit": nofile,
        "duration_s": t_start.elapsed().as_secs_f64(),
        "command": format!("cargo run --release -p nextdeploy-bench -- {}", plan.mode),
        "scenarios": scenarios,
        "errors": errors,
    });
    publish(&report, plan.mode, load_before, t_start, pick.picked())
}

/// Print the report; unless the run was picked, write it to bench/results
/// and fail when a scenario failed.
fn publish(
    report: &Value,
    mode: &str,
    load_before: f64,
    t_start: Instant,
    picked: bool,
) -> anyhow::Result<()> {
    println!(
        "\nNextDeploy bench, {} mode, {} (load {:.2} -> {:.2}, {:.0}s)\n",
        mode,
        report["date"].as_str().unwrap_or(""),
        load_before,
        procfs::load1(),
        t_start.elapsed().as_secs_f64()
    );
    print!("{}", report::text(report));
    if picked {
        println!("(a picked run: no results written)");
        return Ok(());
    }
    let written = report::write(&hub::workspace().join("bench/results"), report)?;
    for p in written
        .iter()
        .filter(|p| p.to_string_lossy().contains("latest-"))
    {
        println!("wrote {}", p.display());
    }
    if !report["errors"].as_array().is_none_or(|e| e.is_empty()) {
        bail!("some scenarios failed (see above)");
    }
    Ok(())
}

/// Run `f`, dropping it on Ctrl-C so the hub and the simulated agents
/// (killed when their handles drop) do not outlive the bench.
async fn interruptible(
    f: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        r = f => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

fn main() -> anyhow::Result<()> {
    // The simulated agents get the real agent's allocator settings.
    nextdeploy_shared::malloc::run(main_async())
}

async fn main_async() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Quick { pick } => interruptible(run_mode(plan(true, 0, pick))).await,
        Cmd::Full { max_agents, pick } => {
            interruptible(run_mode(plan(false, max_agents, pick))).await
        }
        Cmd::Health(a) => interruptible(health::run(a)).await,
        Cmd::Cluster(a) => {
            raise_nofile();
            interruptible(cluster::run(a)).await
        }
        Cmd::Stores(a) => {
            raise_nofile();
            interruptible(stores::run(a)).await
        }
        Cmd::AlertsEval(a) => tokio::task::spawn_blocking(move || alerts_eval::run(a)).await?,
        Cmd::Dashboard(a) => tokio::task::spawn_blocking(move || dashboard::run(a)).await?,
        Cmd::Exec(a) => tokio::task::spawn_blocking(move || exec::run(a)).await?,
        Cmd::Buffer => tokio::task::spawn_blocking(buffer::run).await?,
        Cmd::HealthFlood { seconds, probes } => interruptible(flood::run(seconds, probes)).await,
        Cmd::SimAgents {
            hub,
            also,
            pin,
            from,
            count,
            containers,
            interval,
        } => {
            let every = Duration::from_secs(interval.max(1));
            sim::run_child((hub, also), pin, (from, count), containers, every).await
        }
        Cmd::TcpEcho { to, count } => tcpfloor::run_echo(to, count).await,
    }
}
