//! Scenario 2: ping round trips WebSocket client -> hub -> agent -> back.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{percentile, ratio, target_vs, Target};
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
    let mut rtts = ping_one_at_a_time(hubp.http, &token, pings).await?;
    let p50 = percentile(&mut rtts, 0.50);
    let p99 = percentile(&mut rtts, 0.99);
    let max = rtts.iter().cloned().fold(0.0, f64::max);

    let rps = ping_concurrently(hubp.http, &token, window).await?;
    // The same shapes over plain loopback TCP, with the hub and the agents
    // still connected and idle: the reference each figure is shown beside.
    let tcp = measure_tcp_reference(pings, window).await;
    drop(fleet);
    drop(hubp);
    let _ = std::fs::remove_dir_all(&dir);
    let (tcp_p50, tcp_p99, tcp_max, tcp_rps, tcp_error) = match &tcp {
        Ok(t) => {
            let mut rtts = t.rtts_ms.clone();
            (
                Some(percentile(&mut rtts, 0.50)),
                Some(percentile(&mut rtts, 0.99)),
                Some(rtts.iter().cloned().fold(0.0, f64::max)),
                Some(t.per_s),
                None,
            )
        }
        Err(e) => (None, None, None, None, Some(e.clone())),
    };
    let tcp = tcp.ok();
    let vs = |a: f64, b: Option<f64>| b.and_then(|b| ratio(a, b));
    Ok(json!({
        "scenario": "latency",
        "ping_p50_vs_tcp": vs(p50, tcp_p50),
        "ping_p99_vs_tcp": vs(p99, tcp_p99),
        "pings_per_s_vs_tcp": vs(rps, tcp_rps),
        "agents": AGENTS,
        "pings": pings,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
        "rps_100_agents": rps,
        "concurrency": CONNS * IN_FLIGHT,
        "rps_window_s": window.as_secs_f64(),
        "tcp_p50_ms": tcp_p50,
        "tcp_p99_ms": tcp_p99,
        "tcp_max_ms": tcp_max,
        "tcp_per_s": tcp_rps,
        "tcp_answered": tcp.as_ref().map(|t| t.answered),
        "tcp_max_in_flight": tcp.as_ref().map(|t| t.max_in_flight),
        "tcp_error": tcp_error,
        "tcp_note": "the same shapes over plain loopback TCP in the same run, the hub and the agents connected and idle: 128 bytes out and back on 100 connections to a tcp-echo child (one per agent), the same number of pings one at a time round-robin after one warm-up each, then 64 in flight (each on its own connection) for the same window; no WebSocket, no hub hop, no SSH, no JSON. Ratios: the ping's figure over the echo's (pings_per_s_vs_tcp: the fraction of the echo rate the pings reach)",
        "targets": [
            target_vs("ping p50 (ms)", p50, 0.25, Target::AtMost, "TCP echo p50 (ms)", tcp_p50),
            target_vs("ping p99 (ms)", p99, 1.0, Target::AtMost, "TCP echo p99 (ms)", tcp_p99),
            target_vs(
                "pings/s across 100 agents, concurrency 64",
                rps,
                25_000.0,
                Target::AtLeast,
                "TCP echoes/s, 64 in flight",
                tcp_rps
            ),
        ],
    }))
}

/// Ping the agents one at a time over one WebSocket: each agent once to warm
/// up (not measured), then `pings` round-robin. Round trips in ms.
async fn ping_one_at_a_time(
    http: std::net::SocketAddr,
    token: &str,
    pings: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut ws = Ws::connect(http, token).await?;
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
    Ok(rtts)
}

/// Pings at concurrency `CONNS * IN_FLIGHT` for `window`; pings per second.
async fn ping_concurrently(
    http: std::net::SocketAddr,
    token: &str,
    window: Duration,
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNS {
        let token = token.to_string();
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
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// The same shapes over plain loopback TCP; an error is reported as text.
async fn measure_tcp_reference(
    pings: usize,
    window: Duration,
) -> Result<crate::tcpfloor::EchoLatency, String> {
    match crate::tcpfloor::measure_latency(AGENTS, pings, CONNS * IN_FLIGHT, window).await {
        Ok(t) => Ok(t),
        Err(e) => {
            let e = format!("{e:#}");
            eprintln!("the latency's TCP reference: {e}");
            Err(e)
        }
    }
}

async fn send_ping(ws: &mut Ws, id: u64, conn: usize) -> anyhow::Result<()> {
    let server = sim_name((conn * 13 + id as usize) % AGENTS);
    ws.send(&json!({"id": id, "action": "ping", "server": server}))
        .await
}
