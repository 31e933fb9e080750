//! Issue 23's targets on this machine: hubs of one cluster (separate
//! processes, one store, one cluster secret) with simulated agents spread
//! over them, set against one hub with the same agents in the same run.
//! - ping one agent through the hub that holds it and through another
//!   (forwarded), interleaved: the forwarding's added p50;
//! - one fan-out `ping` to every agent through one hub, against the same
//!   fan-out on the single hub;
//! - one hub of the cluster killed (`kill -9`): how long until every agent
//!   is online again through the others, and what failed meanwhile.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fleet::{sim_name, Fleet};
use crate::scenario::{median, percentile, target, Target};
use crate::{hub, wsclient::Ws};

/// How long the agents may take to connect before the run fails.
const CONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Time for every hub's view of who holds what to catch up (a heartbeat
/// and a read, twice over).
const SETTLE: Duration = Duration::from_secs(3);
/// How long the agents of a killed hub may take to come back before the
/// run records a failure.
const RECOVER_LIMIT: Duration = Duration::from_secs(120);

/// `nextdeploy-bench cluster`.
#[derive(clap::Args, Clone)]
pub struct Args {
    /// Simulated agents, spread evenly over the hubs (`--agents 15000` for
    /// the figure).
    #[arg(long, default_value_t = 1500)]
    pub agents: usize,
    /// Hubs in the cluster.
    #[arg(long, default_value_t = 3)]
    pub hubs: usize,
    /// Pings one at a time on each path (direct and forwarded).
    #[arg(long, default_value_t = 400)]
    pub pings: usize,
    /// Fan-out rounds on each side (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Write the JSON result here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The cluster's store: an empty PostgreSQL database
    /// (`postgres://user@host:port/db`) [default: one SQLite file the hub
    /// processes share].
    #[arg(long)]
    pub store: Option<String>,
}

/// Run it and print (and write) the result.
pub async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.hubs >= 2, "a cluster needs at least two hubs");
    crate::build::build_binaries()?;
    let work = std::env::temp_dir().join(format!("nd-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let template = work.join("template");
    let pin = crate::fleet::enrol(&template, a.agents)?;
    let single = single_hub(&a, &template, &pin, &work).await?;
    eprintln!("single hub: {single}");
    let cluster = cluster(&a, &template, &pin, &work).await?;
    let _ = std::fs::remove_dir_all(&work);
    let out = report(&a, single, cluster);
    println!("{}", serde_json::to_string_pretty(&out)?);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

/// The reference: one hub with every agent; its ping p50 and fan-out.
async fn single_hub(a: &Args, template: &Path, pin: &str, work: &Path) -> anyhow::Result<Value> {
    let dir = work.join("single");
    crate::fleet::copy_dir(template, &dir)?;
    let h = hub::start(&dir, None)?;
    let fleet = Fleet::start(h.ssh, pin, a.agents, 0)?;
    hub::wait_online(h.http, a.agents as u64, CONNECT_LIMIT).await?;
    let token = h.admin_token()?;
    let mut ws = Ws::connect(h.http, &token).await?;
    let mut rtts = Vec::new();
    for i in 0..a.pings {
        rtts.push(ping(&mut ws, i as u64, &sim_name(i % a.agents)).await?);
    }
    let fan = fan_out(&mut ws, a.rounds, a.agents).await?;
    drop(fleet);
    Ok(
        json!({"ping_p50_ms": percentile(&mut rtts, 0.5), "fanout_s": fan.0, "fanout_answered_min": fan.1}),
    )
}

/// One ping's round trip (ms) as the client sees it.
async fn ping(ws: &mut Ws, id: u64, server: &str) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    ws.send(&json!({"id": id, "action": "ping", "server": server}))
        .await?;
    loop {
        let (e, _) = ws.recv().await?;
        if e.id != Some(id) {
            continue;
        }
        anyhow::ensure!(e.kind == "result", "ping {server}: {}", e.kind);
        return Ok(t0.elapsed().as_secs_f64() * 1e3);
    }
}

/// `rounds` fan-out pings to every agent: the median seconds and the fewest
/// answers of a round.
async fn fan_out(ws: &mut Ws, rounds: usize, n: usize) -> anyhow::Result<(f64, u64)> {
    let (mut times, mut fewest) = (Vec::new(), u64::MAX);
    for r in 0..rounds {
        let id = 1_000_000 + r as u64;
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
        fewest = fewest.min(results);
    }
    if fewest < n as u64 {
        eprintln!("fan-out: a round had {fewest} of {n} answers");
    }
    Ok((median(&mut times), fewest))
}

/// The hubs of the cluster (the first on a copy of the template, whose host
/// key it seals as the cluster's), the agents spread over them.
fn start_hubs(a: &Args, template: &Path, work: &Path) -> anyhow::Result<Vec<hub::HubProc>> {
    let secret = work.join("cluster.secret");
    std::fs::write(&secret, "bench-cluster-secret-0123456789abcdef0123456789\n")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    let first = work.join("hub-0");
    crate::fleet::copy_dir(template, &first)?;
    let store = match &a.store {
        Some(url) => {
            // The template's agents, moved into the database first.
            migrate(&first, url)?;
            url.clone()
        }
        None => format!(
            "sqlite://{}",
            first.join(nextdeploy_hub::serve::STORE_FILE).display()
        ),
    };
    let extra = [
        "--store".to_string(),
        store,
        "--cluster-secret-file".to_string(),
        secret.display().to_string(),
    ];
    let mut hubs = vec![hub::start_args(&first, None, false, &extra)?];
    for k in 1..a.hubs {
        let dir = work.join(format!("hub-{k}"));
        std::fs::create_dir_all(&dir)?;
        hubs.push(hub::start_args(&dir, None, false, &extra)?);
    }
    Ok(hubs)
}

/// `nextdeploy hub migrate` of the template's SQLite store into `url`.
pub fn migrate(dir: &Path, url: &str) -> anyhow::Result<()> {
    let bin = crate::build::bin_dir().join(crate::build::HUB);
    let out = std::process::Command::new(bin)
        .args(["hub", "migrate", "--from"])
        .arg(dir.join(nextdeploy_hub::serve::STORE_FILE))
        .args(["--to", url])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "hub migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Agents `share(k)` of `n` go to hub `k`.
fn share(n: usize, hubs: usize, k: usize) -> (usize, usize) {
    (n * k / hubs, n * (k + 1) / hubs)
}

async fn cluster(a: &Args, template: &Path, pin: &str, work: &Path) -> anyhow::Result<Value> {
    let mut hubs = start_hubs(a, template, work)?;
    let mut fleets = Vec::new();
    for k in 0..a.hubs {
        // Each share's list: its own hub first, then the others.
        let mut list: Vec<_> = hubs.iter().map(|h| h.ssh).collect();
        list.rotate_left(k);
        fleets.push(Fleet::start_range(
            &list,
            pin,
            share(a.agents, a.hubs, k),
            0,
        )?);
    }
    let t0 = Instant::now();
    online_across(&hubs, a.agents as u64, CONNECT_LIMIT).await?;
    let connect_s = t0.elapsed().as_secs_f64();
    let connected = Instant::now();
    let token = hubs[0].admin_token()?;
    let mut via0 = Ws::connect(hubs[0].http, &token).await?;
    let mut via1 = Ws::connect(hubs[1].http, &token).await?;
    // Agents of hub 1: straight through it, and forwarded by hub 0.
    let (from, to) = share(a.agents, a.hubs, 1);
    // Each hub's view of the others' agents is as fresh as its last
    // heartbeat (1 s): let them settle.
    tokio::time::sleep(SETTLE).await;
    let (mut direct, mut forwarded, mut elsewhere) = (Vec::new(), Vec::new(), 0);
    for i in 0..a.pings {
        let name = sim_name(from + i % (to - from));
        // One that reached another hub of its list is not hub 1's: skipped.
        match ping(&mut via1, i as u64, &name).await {
            Ok(ms) => direct.push(ms),
            Err(_) => {
                elsewhere += 1;
                continue;
            }
        }
        forwarded.push(ping(&mut via0, i as u64, &name).await?);
    }
    let fan = fan_out(&mut via0, a.rounds, a.agents).await?;
    drop((via0, via1));
    // A hub dies while its agents have been connected a while: each agent
    // resets its backoff after a connection of `BACKOFF_RESET_AFTER`, so it
    // waits the first step (up to 1 s), not what the connect storm above
    // left it at (up to 16 s for the few that failed a round then).
    let stable = nextdeploy_shared::limits::BACKOFF_RESET_AFTER + Duration::from_secs(1);
    tokio::time::sleep(stable.saturating_sub(connected.elapsed())).await;
    let recovery = kill_one(&mut hubs, &fleets, a).await?;
    drop(fleets);
    Ok(json!({
        "connect_s": connect_s,
        "direct_p50_ms": percentile(&mut direct, 0.5),
        "direct_p99_ms": percentile(&mut direct, 0.99),
        "forwarded_p50_ms": percentile(&mut forwarded, 0.5),
        "forwarded_p99_ms": percentile(&mut forwarded, 0.99),
        "fanout_s": fan.0,
        "fanout_answered_min": fan.1,
        "pings_skipped_not_on_hub_1": elsewhere,
        "recovery": recovery,
    }))
}

/// Agents online as the hubs' `/health` count them (each its own).
async fn online_sum(hubs: &[hub::HubProc]) -> u64 {
    let mut n = 0;
    for h in hubs {
        n += hub::agents_online(h.http).await.unwrap_or(0);
    }
    n
}

/// Wait until `n` agents are online across `hubs`.
async fn online_across(hubs: &[hub::HubProc], n: u64, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while online_sum(hubs).await < n {
        anyhow::ensure!(
            t0.elapsed() < limit,
            "only {} of {n} agents online after {limit:?}",
            online_sum(hubs).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Kill the last hub: the seconds until every agent is online again on
/// the others, and the agents' failures other than refusals.
async fn kill_one(hubs: &mut [hub::HubProc], fleets: &[Fleet], a: &Args) -> anyhow::Result<Value> {
    let failures0: u64 = fleets.iter().map(|f| f.failures()).sum();
    let (from, to) = share(a.agents, a.hubs, a.hubs - 1);
    let t0 = Instant::now();
    if let Some(last) = hubs.last_mut() {
        last.kill9();
    }
    // First the killed hub's agents drop out (their leases expire), then
    // they come back through the others.
    let mut dropped = false;
    // Agents online on the others each second: where the time goes.
    let mut timeline = Vec::new();
    // When 99 % of the killed hub's agents were back.
    let (near, mut t99) = (a.agents as u64 - (to - from) as u64 / 100, None);
    let back = loop {
        let online = online_sum(&hubs[..hubs.len() - 1]).await;
        dropped |= online < a.agents as u64;
        let t = t0.elapsed().as_secs_f64();
        if dropped && online >= near {
            t99 = t99.or(Some(t));
        }
        if t >= timeline.len() as f64 {
            println!("  t={t:>5.1}s online on the others: {online}");
            timeline.push(online);
        }
        if dropped && online >= a.agents as u64 {
            break Some(t);
        }
        if t0.elapsed() > RECOVER_LIMIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let failures: u64 = fleets.iter().map(|f| f.failures()).sum();
    Ok(json!({
        "killed_hub_agents": to - from,
        "all_online_again_s": back,
        "online_again_99pct_s": t99,
        "online_each_second": timeline,
        "failures_other_than_refused": failures.saturating_sub(failures0),
    }))
}

fn report(a: &Args, single: Value, cluster: Value) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let added = f(&cluster["forwarded_p50_ms"]) - f(&cluster["direct_p50_ms"]);
    let fan_ratio = f(&cluster["fanout_s"]) / f(&single["fanout_s"]);
    let back = cluster["recovery"]["all_online_again_s"]
        .as_f64()
        .unwrap_or(f64::INFINITY);
    let mut targets = vec![
        target(
            "forwarding's added ping p50 (ms)",
            added,
            0.3,
            Target::AtMost,
        ),
        target(
            "cluster fan-out over one hub's (ratio)",
            fan_ratio,
            2.0,
            Target::AtMost,
        ),
    ];
    if a.hubs == 3 {
        targets.push(target(
            "one hub of three killed: all online again (s)",
            back,
            10.0,
            Target::AtMost,
        ));
    }
    json!({
        "scenario": "cluster",
        "agents": a.agents,
        "hubs": a.hubs,
        "pings": a.pings,
        "store": if a.store.is_some() { "PostgreSQL" } else { "SQLite (one file, WAL, shared by the hub processes)" },
        "api": "plain HTTP between client and hubs and between hubs (--plain-http): the TLS of a link is paid once, at its start",
        "single_hub": single,
        "cluster": cluster,
        "forwarding_added_p50_ms": added,
        "fanout_vs_single_hub": fan_ratio,
        "targets": targets,
    })
}
