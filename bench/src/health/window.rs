//! One `health` run on a started hub: the idle probes, the fleet connecting,
//! the steady window (sampled, with the busy probes), and its figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::*;
use crate::wsclient::Ws;

/// How long the hub may take to write its first admin token.
const TOKEN_LIMIT: Duration = Duration::from_secs(30);

/// What the idle hub and the connected fleet measured before the window.
struct Before {
    idle_rss_kib: u64,
    ws: Spread,
    connect: Spread,
    connect_s: f64,
}

/// The steady window's figures.
struct Window {
    seconds: f64,
    snapshots: u64,
    cpu_ticks: u64,
    grown_bytes: u64,
    queue_full: u64,
    peak_kib: u64,
    /// RSS at the window's end: snapshots flowing, before the probes.
    end_kib: u64,
    ws: Spread,
    connect: Spread,
    history_30d: probe::Read,
    history_24h: probe::Read,
    metrics: scrape::Scrape,
}

/// The run on `hub` (its store filled with `filled` points first).
pub(super) async fn run_on(
    hub: &hub::HubProc,
    p: &Params,
    pin: &str,
    log: &HubLog,
    filled: u64,
) -> anyhow::Result<Value> {
    tokio::time::sleep(IDLE_SETTLE).await;
    let token = admin_token(hub).await?;
    let cfg = sim::SimConfig {
        hub: hub.ssh,
        also: Vec::new(),
        pin: pin.to_string(),
        containers: 0,
        health_interval: Duration::from_secs(p.interval),
        stats: Arc::new(sim::SimStats::default()),
    };
    let idle_rss_kib = procfs::rss_kib(hub.pid());
    let ws = probe::ws_requests(hub.http, &token, &fleet::sim_name(0), WS_REQUESTS).await?;
    let connect = probe::connects(&cfg, p.agents, CONNECT_TRIES).await?;
    println!(
        "idle hub: rss {:.1} MiB, ws request {:.1} ms (max {:.1}), connect {:.1} ms (max {:.1})",
        idle_rss_kib as f64 / 1024.0,
        ws.median,
        ws.max,
        connect.median,
        connect.max
    );
    let interval = Duration::from_secs(p.interval);
    let fleet = Pushers::start(hub.ssh, pin, p.agents, p.containers, interval)?;
    let connect_s = wait_connected(&fleet, p.agents).await?;
    println!(
        "{} agents connected in {connect_s:.1}s (hub {}, failures {})",
        p.agents,
        hub.http,
        fleet.failures()
    );
    tokio::time::sleep(interval * 2).await;
    let before = Before {
        idle_rss_kib,
        ws,
        connect,
        connect_s,
    };
    let w = window(hub, p, &fleet, &cfg, &token, log).await?;
    let rss_kib = procfs::rss_kib(hub.pid());
    let total_points = fleet.snapshots() * p.containers as u64;
    let store_end = store_bytes(&hub.dir);
    drop(fleet);
    let v = figures(p, &before, &w, rss_kib, (filled, total_points, store_end));
    print_lines(&v);
    Ok(v)
}

/// The hub's first admin token, which it writes just after printing its
/// addresses: waited for up to [`TOKEN_LIMIT`].
async fn admin_token(hub: &hub::HubProc) -> anyhow::Result<String> {
    let t0 = Instant::now();
    loop {
        match hub.admin_token() {
            Ok(t) if !t.is_empty() => return Ok(t),
            Err(e) if t0.elapsed() > TOKEN_LIMIT => return Err(e),
            _ if t0.elapsed() > TOKEN_LIMIT => bail!("the admin token file is empty"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Wait until the children report `n` agents connected; the time it took.
async fn wait_connected(fleet: &Pushers, n: usize) -> anyhow::Result<f64> {
    let limit = CONNECT_FLOOR + CONNECT_PER_AGENT * n as u32;
    let t0 = Instant::now();
    while (fleet.connected() as usize) < n {
        if t0.elapsed() > limit {
            bail!(
                "only {} of {n} agents connected after {limit:?}",
                fleet.connected()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The steady window: `p.seconds`, sampled every [`SAMPLE_EVERY`], with
/// nothing but the fleet's snapshots (its CPU is ingestion's); then the busy
/// probes, the fleet still pushing.
async fn window(
    hub: &hub::HubProc,
    p: &Params,
    fleet: &Pushers,
    cfg: &sim::SimConfig,
    token: &str,
    log: &HubLog,
) -> anyhow::Result<Window> {
    let pid = hub.pid();
    let (b0, s0, c0, l0) = (
        store_bytes(&hub.dir),
        fleet.snapshots(),
        procfs::cpu_ticks(pid),
        log.len(),
    );
    let t1 = Instant::now();
    let until = t1 + Duration::from_secs(p.seconds);
    let peak_kib = {
        let mut peak = 0;
        while Instant::now() < until {
            tokio::time::sleep(SAMPLE_EVERY.min(until.saturating_duration_since(Instant::now())))
                .await;
            peak = procfs::rss_kib(pid).max(peak);
            println!(
                "  t={:>4.0}s hub_rss={:.1} MiB store={:.1} MiB snapshots={}",
                t1.elapsed().as_secs_f64(),
                procfs::rss_kib(pid) as f64 / 1024.0,
                store_bytes(&hub.dir) as f64 / 1048576.0,
                fleet.snapshots() - s0
            );
        }
        peak
    };
    let end_kib = procfs::rss_kib(pid);
    let (seconds, snapshots, cpu_ticks, grown_bytes) = (
        t1.elapsed().as_secs_f64(),
        fleet.snapshots() - s0,
        procfs::cpu_ticks(pid).saturating_sub(c0),
        store_bytes(&hub.dir).saturating_sub(b0),
    );
    let (ws, connect, history_30d, history_24h) = busy_probes(hub, p, cfg, token).await?;
    let metrics = scrape::scrapes(hub.http, token, SCRAPES).await?;
    Ok(Window {
        seconds,
        snapshots,
        cpu_ticks,
        grown_bytes,
        queue_full: log.queue_full_since(l0),
        peak_kib,
        end_kib,
        ws,
        connect,
        history_30d,
        history_24h,
        metrics,
    })
}

/// While the fleet ingests: WebSocket requests, `history` reads of agent 0,
/// and fresh agents (the second [`CONNECT_TRIES`] identities past the fleet).
async fn busy_probes(
    hub: &hub::HubProc,
    p: &Params,
    cfg: &sim::SimConfig,
    token: &str,
) -> anyhow::Result<(Spread, Spread, probe::Read, probe::Read)> {
    let server = fleet::sim_name(0);
    let ws = probe::ws_requests(hub.http, token, &server, WS_REQUESTS).await?;
    let containers: Vec<String> = (0..p.containers)
        .map(|i| format!("{server}-app-{i}"))
        .collect();
    let (mut h30, mut h24) = Default::default();
    if let Some(first) = containers.first() {
        let mut api = Ws::connect(hub.http, token).await?;
        h30 = probe::history_30d(&mut api, &server, first, HISTORY_RUNS).await?;
        h24 = probe::history_24h(&mut api, &server, &containers, HISTORY_RUNS).await?;
    }
    let connect = probe::connects(cfg, p.agents + CONNECT_TRIES, CONNECT_TRIES).await?;
    Ok((ws, connect, h30, h24))
}

/// The figures; `store` is (points filled, points ingested, store bytes at the end).
fn figures(p: &Params, b: &Before, w: &Window, rss_kib: u64, store: (u64, u64, u64)) -> Value {
    let (filled, ingested, store_end) = store;
    let expected_per_s = p.agents as f64 / p.interval as f64;
    let late = (expected_per_s * w.seconds - w.snapshots as f64)
        .max(0.0)
        .round() as u64;
    let cpu_s = w.cpu_ticks as f64 / TICKS_PER_S;
    let points = w.snapshots * p.containers as u64;
    let mib = |k: u64| k as f64 / 1024.0;
    let per_agent = |k: u64| k.saturating_sub(b.idle_rss_kib) as f64 / p.agents as f64;
    json!({
        "scenario": "health",
        "agents": p.agents,
        "containers_per_agent": p.containers,
        "interval_s": p.interval,
        "seconds": w.seconds,
        "connect_all_s": b.connect_s,
        "snapshots_per_s": w.snapshots as f64 / w.seconds,
        "expected_snapshots_per_s": expected_per_s,
        "dropped_or_late": late + w.queue_full,
        "hub_queue_full_drops": w.queue_full,
        "hub_cpu_pct": cpu_s / w.seconds * 100.0,
        "ingest_cpu_us_per_point": (points > 0).then(|| cpu_s * 1e6 / points as f64),
        "hub_rss_mib": mib(w.end_kib),
        "hub_rss_idle_mib": mib(b.idle_rss_kib),
        "hub_rss_peak_mib": mib(w.peak_kib.max(rss_kib)),
        "hub_rss_per_agent_kib": per_agent(w.end_kib),
        "hub_rss_after_probes_mib": mib(rss_kib),
        "hub_rss_per_agent_after_probes_kib": per_agent(rss_kib),
        "store_growth_mib_per_min": w.grown_bytes as f64 / 1048576.0 / w.seconds * 60.0,
        "store_bytes_end": store_end,
        "history_points_filled": filled,
        "store_bytes_per_point": (filled > 0).then(|| store_end as f64 / (filled + ingested) as f64),
        "history_ms_30d_one_container": w.history_30d.ms,
        "history_ms_24h_one_agent": w.history_24h.ms,
        "history_kb_30d_one_container": w.history_30d.bytes as f64 / 1024.0,
        "history_kb_24h_one_agent": w.history_24h.bytes as f64 / 1024.0,
        "ws_request_ms_idle": b.ws.median,
        "ws_request_ms_idle_max": b.ws.max,
        "ws_request_ms_while_ingesting": w.ws.median,
        "ws_request_ms_while_ingesting_max": w.ws.max,
        "connect_ms_idle": b.connect.median,
        "connect_ms_idle_max": b.connect.max,
        "connect_ms_while_ingesting": w.connect.median,
        "connect_ms_while_ingesting_max": w.connect.max,
        "metrics_scrape_ms": w.metrics.ms.median,
        "metrics_scrape_ms_max": w.metrics.ms.max,
        "metrics_bytes": w.metrics.bytes,
        "metrics_series": w.metrics.series,
    })
}

/// The human lines (the report's table follows).
fn print_lines(v: &Value) {
    println!(
        "result: agents={} containers_per_agent={} interval_s={}",
        v["agents"], v["containers_per_agent"], v["interval_s"]
    );
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "  hub_rss_mib={:.1} (idle before agents {:.1}) per_agent_kib={:.1} peak_mib={:.1}",
        f("hub_rss_mib"),
        f("hub_rss_idle_mib"),
        f("hub_rss_per_agent_kib"),
        f("hub_rss_peak_mib")
    );
    println!(
        "  after the probes and /metrics scrapes: hub_rss_mib={:.1} per_agent_kib={:.1}",
        f("hub_rss_after_probes_mib"),
        f("hub_rss_per_agent_after_probes_kib")
    );
    println!(
        "  hub_cpu_pct={:.1} (of one core) ingest_cpu_us_per_point={:.2}",
        f("hub_cpu_pct"),
        f("ingest_cpu_us_per_point")
    );
    println!(
        "  store_growth_mib_per_min={:.2} snapshots_per_s={:.0} (expected {:.0}) dropped_or_late={}",
        f("store_growth_mib_per_min"),
        f("snapshots_per_s"),
        f("expected_snapshots_per_s"),
        v["dropped_or_late"]
    );
    println!(
        "  history 30d/15m one container {:.1} ms ({:.1} KiB), 24h/1m one agent {:.1} ms ({:.1} KiB)",
        f("history_ms_30d_one_container"),
        f("history_kb_30d_one_container"),
        f("history_ms_24h_one_agent"),
        f("history_kb_24h_one_agent")
    );
    println!(
        "  ws request {:.1} ms (max {:.1}; idle {:.1}), connect {:.1} ms (max {:.1}; idle {:.1})",
        f("ws_request_ms_while_ingesting"),
        f("ws_request_ms_while_ingesting_max"),
        f("ws_request_ms_idle"),
        f("connect_ms_while_ingesting"),
        f("connect_ms_while_ingesting_max"),
        f("connect_ms_idle")
    );
    println!(
        "  /metrics scrape {:.0} ms (max {:.0}), {:.1} MiB, {} series",
        f("metrics_scrape_ms"),
        f("metrics_scrape_ms_max"),
        f("metrics_bytes") / 1048576.0,
        v["metrics_series"]
    );
}
