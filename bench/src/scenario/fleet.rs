//! Scenarios 1, 3 and 5 on one hub run with N agents: capacity (connect,
//! memory, idle CPU), fan-out (one ping to all N) and the reconnect storm
//! (kill -9 the hub, restart it on the same data dir and ports).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{median, ratio, target, target_vs, Target};
use crate::fleet::Fleet;
use crate::procfs::{self, Sampler};
use crate::{hub, wsclient::Ws};

/// How long N agents may take to connect (or reconnect) before the run fails.
const CONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Fan-out requests per run (the median is reported).
const FANOUT_ROUNDS: u64 = 5;

/// What one fleet run measures.
pub struct FleetRun {
    pub agents: usize,
    pub idle_window: Duration,
    pub reconnect: bool,
}

/// Run capacity, fan-out and (optionally) reconnect at `run.agents`.
pub async fn run(
    template: &Path,
    pin: &str,
    work: &Path,
    run: &FleetRun,
) -> anyhow::Result<Vec<Value>> {
    let n = run.agents;
    let dir = work.join(format!("fleet-{n}"));
    crate::fleet::copy_dir(template, &dir)?;
    let mut hubp = hub::start(&dir, None)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = hubp.pid();
    let rss0 = procfs::rss_kib(pid);
    let fleet = Fleet::start(hubp.ssh, pin, n, 0)?;
    let (capacity, connect_s) = measure_capacity(&hubp, &fleet, run, rss0).await?;
    let mut out = vec![capacity];
    out.push(measure_fanout(&hubp, &fleet, n).await?);
    if run.reconnect {
        out.push(measure_reconnect(&mut hubp, &fleet, &dir, n, connect_s).await?);
    }
    drop(fleet);
    drop(hubp);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// Scenario 1 once all `run.agents` are started: connect time, hub memory
/// per agent and idle CPU. Returns the record and the connect time (s).
async fn measure_capacity(
    hubp: &hub::HubProc,
    fleet: &Fleet,
    run: &FleetRun,
    rss0: u64,
) -> anyhow::Result<(Value, f64)> {
    let n = run.agents;
    let pid = hubp.pid();
    let connect = hub::wait_online(hubp.http, n as u64, CONNECT_LIMIT).await?;
    let connect_s = connect.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1 = procfs::rss_kib(pid);
    let idle_cpu = procfs::cpu_pct_over(pid, run.idle_window).await;
    let per_agent_kib = rss1.saturating_sub(rss0) as f64 / n as f64;
    // On paper: 8 cores at half load, and 16 GiB of RSS for the hub.
    let cpu_per_agent = idle_cpu / n as f64;
    let by_cpu = if cpu_per_agent > 0.0 {
        8.0 * 50.0 / cpu_per_agent
    } else {
        f64::INFINITY
    };
    let by_mem = 16.0 * 1048576.0 / per_agent_kib.max(0.001);
    let mut capacity = json!({
        "scenario": "capacity",
        "agents": n,
        "connect_s": connect_s,
        "connect_per_s": n as f64 / connect_s,
        "hub_rss_mib": rss1 as f64 / 1024.0,
        "hub_rss_before_agents_mib": rss0 as f64 / 1024.0,
        "hub_rss_per_agent_kib": per_agent_kib,
        "hub_idle_cpu_pct": idle_cpu,
        "idle_window_s": run.idle_window.as_secs_f64(),
        "connect_failures": fleet.failures(),
        "sim_connected": fleet.connected(),
        "paper_agents_8_cores": by_cpu.min(by_mem).floor(),
        "paper_note": "idle CPU per agent at 50% of 8 cores, and 16 GiB of hub RSS at the measured KiB per agent; the smaller of the two",
    });
    let mut targets = vec![target(
        "hub RSS per agent (KiB)",
        per_agent_kib,
        32.0,
        Target::AtMost,
    )];
    if n >= 15_000 {
        targets.push(target(
            "agents connected",
            n as f64,
            15_000.0,
            Target::AtLeast,
        ));
    }
    capacity["targets"] = json!(targets);
    Ok((capacity, connect_s))
}

/// Scenario 3: one `ping` with a selector matching all `n` agents, over
/// several rounds, set against the plain TCP floor.
async fn measure_fanout(hubp: &hub::HubProc, fleet: &Fleet, n: usize) -> anyhow::Result<Value> {
    let pid = hubp.pid();
    let token = hubp.admin_token()?;
    let mut ws = Ws::connect(hubp.http, &token).await?;
    let mut times = Vec::new();
    let mut answered_min = u64::MAX;
    // CPU of the hub and of the simulated agents over all rounds: the two
    // share this machine's cores, so the agents' own share is a floor under
    // the fan-out time that no hub change can lower.
    let sims = fleet.pids();
    let sims_ticks = || sims.iter().map(|p| procfs::cpu_ticks(*p)).sum::<u64>();
    let (hub0, sims0) = (procfs::cpu_ticks(pid), sims_ticks());
    let rounds = std::env::var("NEXTDEPLOY_BENCH_FANOUT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FANOUT_ROUNDS);
    for round in 0..rounds {
        let id = 1000 + round;
        let t0 = Instant::now();
        ws.send(&json!({"id": id, "action": "ping", "selector": "bench=sim"}))
            .await?;
        let mut results = 0u64;
        loop {
            let (e, _) = ws.recv().await?;
            if e.id != Some(id) {
                continue;
            }
            match e.kind.as_str() {
                "result" => results += 1,
                "end" => break,
                _ => {}
            }
        }
        times.push(t0.elapsed().as_secs_f64());
        answered_min = answered_min.min(results);
    }
    drop(ws);
    let per_agent_us =
        |ticks: u64| ticks as f64 / procfs::TICK_HZ / (rounds as f64 * n as f64) * 1e6;
    let hub_us = per_agent_us(procfs::cpu_ticks(pid).saturating_sub(hub0));
    let sims_us = per_agent_us(sims_ticks().saturating_sub(sims0));
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let fan_s = median(&mut times.clone());
    // The same round over plain TCP, with the hub and the agents still
    // connected and idle as during the fan-out: the kernel's share alone.
    // A floor that cannot be measured is reported as such; the fan-out's
    // own figures stand without it.
    let (floor, floor_error) = match crate::tcpfloor::measure(n, rounds as usize).await {
        Ok(f) => (f, None),
        Err(e) => {
            let e = format!("{e:#}");
            eprintln!("the fan-out's TCP floor: {e}");
            (Vec::new(), Some(e))
        }
    };
    let floor_s = (!floor.is_empty()).then(|| median(&mut floor.clone()));
    let mut fanout = json!({
        "scenario": "fanout",
        "agents": n,
        "seconds": fan_s,
        "seconds_min": times.iter().cloned().fold(f64::INFINITY, f64::min),
        "seconds_max": times.iter().cloned().fold(0.0, f64::max),
        "rounds": rounds,
        "answered_min": answered_min,
        "hub_cpu_us_per_agent": hub_us,
        "sims_cpu_us_per_agent": sims_us,
        "sims_floor_s": sims_us * n as f64 / 1e6 / cores,
        "cpu_note": "CPU per agent answered, over all rounds (the WebSocket client not counted); sims_floor_s: the simulated agents' CPU alone spread over every core of this machine",
        "tcp_floor_s": floor_s,
        "tcp_floor_min_s": floor_s.map(|_| floor.iter().cloned().fold(f64::INFINITY, f64::min)),
        "tcp_floor_max_s": floor_s.map(|_| floor.iter().cloned().fold(0.0, f64::max)),
        "vs_tcp_floor": floor_s.map(|f| fan_s / f),
        "tcp_floor_error": floor_error,
        "tcp_floor_note": "the same round over N plain loopback TCP connections (128 bytes out and back on each, no SSH, no JSON, one epoll loop a side in two processes), the same number of rounds, median: the kernel's loopback TCP work and the least user space that drives it, on this machine's shared cores",
    });
    if n == 10_000 {
        fanout["targets"] = json!([target_vs(
            "fan-out to 10,000: seconds",
            fan_s,
            0.150,
            Target::AtMost,
            "TCP floor (s)",
            floor_s
        )]);
    }
    Ok(fanout)
}

/// Scenario 5: kill -9 the hub, restart it on the same data dir and ports,
/// and time until all `n` agents are back.
async fn measure_reconnect(
    hubp: &mut hub::HubProc,
    fleet: &Fleet,
    dir: &Path,
    n: usize,
    connect_s: f64,
) -> anyhow::Result<Value> {
    let (ssh, http) = (hubp.ssh, hubp.http);
    let (f0, r0, z0) = (fleet.failures(), fleet.refused(), fleet.reset());
    hubp.kill9();
    let t0 = Instant::now();
    let mut hubp2 = hub::start(dir, Some((ssh, http)))?;
    let listening_s = t0.elapsed().as_secs_f64();
    let mut sampler = Sampler::new(hubp2.pid());
    let mut back = None;
    while t0.elapsed() < CONNECT_LIMIT {
        sampler.sample();
        if hub::agents_online(http).await.unwrap_or(0) >= n as u64 {
            back = Some(t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, for the peaks right after the last agent.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sampler.sample();
    }
    let crashed = hubp2.child.try_wait().ok().flatten().is_some();
    let seconds = back.unwrap_or(f64::NAN);
    let failures = fleet.failures() - f0;
    // The reference: the same N connecting to a fresh hub, earlier in
    // this run (capacity's connect time).
    let cold_s = cold_connect_s(n, n as f64 / connect_s);
    let mut rec = json!({
        "scenario": "reconnect",
        "storm_vs_cold_connect": cold_s.and_then(|c| ratio(seconds, c)),
        "agents": n,
        "seconds": seconds,
        "cold_connect_s": cold_s,
        "cold_connect_note": "the same N agents' first connect to a fresh hub in this run (N / capacity's connect_per_s), all started at once without backoff; the storm adds the killed hub's restart and the real backoff (full jitter from 1 s, doubling)",
        "all_back": back.is_some(),
        "hub_listening_s": listening_s,
        "failures": failures,
        "refused_while_starting": fleet.refused() - r0 + fleet.reset() - z0,
        "refused_note": "TCP connects refused, or reset before the hub sent a byte, while no hub served: the killed hub's listener going away, the new one not yet bound",
        "reset_at_connect": fleet.reset() - z0,
        "hub_crashed": crashed,
        "hub_peak_rss_mib": sampler.peak_rss_kib as f64 / 1024.0,
        "hub_peak_cpu_pct": sampler.peak_cpu_pct,
        "backoff": "the real agent's: full jitter from 1 s, doubling per failed attempt",
    });
    let mut t = vec![target(
        "failures other than refused",
        failures as f64,
        0.0,
        Target::AtMost,
    )];
    if n >= 10_000 {
        t.insert(
            0,
            target_vs(
                "10,000 back after restart: seconds",
                seconds,
                10.0,
                Target::AtMost,
                "cold connect of the same N (s)",
                cold_s,
            ),
        );
    }
    rec["targets"] = json!(t);
    drop(hubp2);
    Ok(rec)
}

/// Seconds for `n` agents to connect cold at `connect_per_s` (`None` when
/// the rate is no rate).
fn cold_connect_s(n: usize, connect_per_s: f64) -> Option<f64> {
    ratio(n as f64, connect_per_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_is_set_against_the_cold_connect_of_the_same_n() {
        // 1,000 agents at 500/s: 2 s cold; a 5 s storm is 2.5 times that.
        let cold = cold_connect_s(1000, 500.0);
        assert_eq!(cold, Some(2.0));
        assert_eq!(cold.and_then(|c| ratio(5.0, c)), Some(2.5));
        // A storm that did not end (NaN) or no connect rate: no ratio.
        assert_eq!(cold.and_then(|c| ratio(f64::NAN, c)), None);
        assert_eq!(cold_connect_s(1000, 0.0), None);
        assert_eq!(cold_connect_s(1000, f64::INFINITY), None);
    }
}
