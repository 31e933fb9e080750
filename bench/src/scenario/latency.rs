//! Scenario 2: ping round trips WebSocket client -> hub -> agent -> back.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{percentile, target, Target};
use crate::fleet::{sim_name, Fleet};
use crate::{hub, wsclient::Ws};

/// Agents the pings are spread over.
const AGENTS: usize = 100;
/// WebSocket connections for the concurrent run, and requests in flight on each
/// (8 x 8 = 64; the hub allows 64 per client, so no single client sits at its bound).
const CONNS: usize = 8;
const IN_FLIGHT: usize = 8;

/// Run the latency scenario: `pings` sequential pings, then `window` at concurrency 64.
pub async fn run(
    template: &Path,
    pin: &str,
    work: &Path,
    pings: usize,
    window: Duration,
) -> anyhow::Result<Value> {
    let dir = work.join("latency");
    crate::fleet::copy_dir(template, &dir)?;
    let hubp = hub::start(&dir, None)?;
    let fleet = Fleet::start(hubp.ssh, pin, AGENTS, 0)?;
    hub::wait_online(hubp.http, AGENTS as u64, Duration::from_secs(60)).await?;
    let token = hubp.admin_token()?;
    let mut ws = Ws::connect(hubp.http, &token).await?;
    let mut id = 0u64;
    let mut rtts = Vec::with_capacity(pings);
    // Warm-up: every agent once (first channel, caches), not measured.
    for i in 0..(AGENTS + pings) {
        id += 1;
        let t0 = Instant::now();
        ws.send(&json!({"id": id, "action": "ping", "server": sim_name(i % AGENTS)}))
            .await?;
        loop {
            let (e, _) = ws.recv().await?;
            if e.id == Some(id) && e.kind == "result" {
                break;
            }
        }
        if i >= AGENTS {
            rtts.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(ws);
    let p50 = percentile(&mut rtts, 0.50);
    let p99 = percentile(&mut rtts, 0.99);
    let max = rtts.iter().cloned().fold(0.0, f64::max);

    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNS {
        let (http, token) = (hubp.http, token.clone());
        tasks.spawn(async move {
            let mut ws = Ws::connect(http, &token).await?;
            let mut next = 0u64;
            let mut done = 0u64;
            for _ in 0..IN_FLIGHT {
                next += 1;
                send_ping(&mut ws, next, c).await?;
            }
            let mut outstanding = IN_FLIGHT;
            while outstanding > 0 {
                let (e, _) = ws.recv().await?;
                if e.kind != "result" {
                    continue;
                }
                done += 1;
                outstanding -= 1;
                if t0.elapsed() < window {
                    next += 1;
                    send_ping(&mut ws, next, c).await?;
                    outstanding += 1;
                }
            }
            anyhow::Ok(done)
        });
    }
    let mut total = 0u64;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    let rps = total as f64 / t0.elapsed().as_secs_f64();
    drop(fleet);
    drop(hubp);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "scenario": "latency",
        "agents": AGENTS,
        "pings": pings,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
        "rps_100_agents": rps,
        "concurrency": CONNS * IN_FLIGHT,
        "rps_window_s": window.as_secs_f64(),
        "targets": [
            target("ping p50 (ms)", p50, 0.25, Target::AtMost),
            target("ping p99 (ms)", p99, 1.0, Target::AtMost),
            target("pings/s across 100 agents, concurrency 64", rps, 25_000.0, Target::AtLeast),
        ],
    }))
}

async fn send_ping(ws: &mut Ws, id: u64, conn: usize) -> anyhow::Result<()> {
    let server = sim_name((conn * 13 + id as usize) % AGENTS);
    ws.send(&json!({"id": id, "action": "ping", "server": server}))
        .await
}
