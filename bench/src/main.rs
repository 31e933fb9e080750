//! `nextdeploy-bench`: measures a real hub (the release binary) against
//! simulated agents ([`sim`]): real SSH connections speaking the agent
//! protocol, with a fixed responder where an agent would ask Docker.
//!
//! Scenarios so far: `health` (hub memory and store growth with N agents
//! pushing M-container snapshots). The full harness of issue #6 builds on this.

mod sim;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nextdeploy_hub::store::sqlite::SqliteStore;
use nextdeploy_hub::store::{JoinTokenRecord, Store};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::{keys, token};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "nextdeploy-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hub memory and store growth with simulated agents pushing health snapshots.
    Health {
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
    },
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn store_bytes(dir: &Path) -> u64 {
    ["nextdeploy.db", "nextdeploy.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

struct HubProc {
    child: Child,
    ssh: std::net::SocketAddr,
    http: String,
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub(dir: &Path) -> anyhow::Result<HubProc> {
    let bin = workspace().join("target/release/nextdeploy");
    if !bin.exists() {
        bail!(
            "{} is missing: run cargo build --release --workspace",
            bin.display()
        );
    }
    let mut child = Command::new(bin)
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args([
            "--ssh-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--max-handshakes",
            "1024",
            "--max-handshakes-per-ip",
            "1024",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().context("no stdout")?;
    let mut ssh = None;
    let mut http = None;
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(a) = line.strip_prefix("SSH listening on ") {
            ssh = Some(a.trim().parse()?);
        }
        if let Some(a) = line.strip_prefix("HTTP listening on ") {
            http = Some(a.trim().to_string());
            break;
        }
    }
    // Keep draining: a hub whose stdout pipe closed would fail on its next line.
    std::thread::spawn(move || for _ in lines {});
    Ok(HubProc {
        child,
        ssh: ssh.context("no SSH address")?,
        http: http.context("no HTTP address")?,
    })
}

/// Simulated identities: (agent name, its key).
type Identities = Vec<(String, Arc<russh::keys::PrivateKey>)>;

/// Enrol `n` keys directly in the store (before the hub opens it).
fn enrol(dir: &Path, n: usize) -> anyhow::Result<(String, Identities)> {
    std::fs::create_dir_all(dir)?;
    let (host, _) = nextdeploy_hub::serve::host_key(dir)?;
    let pin = keys::fingerprint(host.public_key());
    let store = SqliteStore::open(&dir.join("nextdeploy.db"))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = keys::generate("bench")?;
        let name = format!("sim-{i:05}");
        let id = token::new_id();
        store.insert_join_token(&JoinTokenRecord {
            id: id.clone(),
            secret_hash: token::hash_secret("s"),
            name: name.clone(),
            labels: Labels::from([("bench".to_string(), "sim".to_string())]),
            created_at: 0,
            expires_at: i64::MAX,
            used_at: None,
            created_by: "bench".into(),
        })?;
        let line = keys::public_line(key.public_key());
        let fp = keys::fingerprint(key.public_key());
        store
            .consume_join_token(&id, "s", &line, &fp, nextdeploy_shared::time::now_unix())?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push((name, Arc::new(key)));
    }
    Ok((pin, out))
}

async fn health(
    agents: usize,
    containers: usize,
    interval: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("nd-bench-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (pin, keys) = enrol(&dir, agents)?;
    let hub = start_hub(&dir)?;
    let pid = hub.child.id();
    let idle_rss = rss_kib(pid);
    let stats = Arc::new(sim::SimStats::default());
    let cfg = sim::SimConfig {
        hub: hub.ssh,
        pin,
        containers,
        health_interval: Duration::from_secs(interval),
        stats: stats.clone(),
    };
    let cancel = CancellationToken::new();
    let t0 = Instant::now();
    for (i, (name, key)) in keys.into_iter().enumerate() {
        tokio::spawn(sim::run_agent(i, name, key, cfg.clone(), cancel.clone()));
    }
    while (stats.connected.load(Ordering::Relaxed) as usize) < agents {
        if t0.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {agents} agents connected after 120 s",
                stats.connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_s = t0.elapsed().as_secs_f64();
    println!(
        "{agents} agents connected in {connect_s:.1}s (hub {} , failures {})",
        hub.http,
        stats.failures.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(interval * 2)).await;
    let (b0, s0, c0, t1) = (
        store_bytes(&dir),
        stats.snapshots.load(Ordering::Relaxed),
        cpu_ticks(pid),
        Instant::now(),
    );
    let mut peak = 0;
    while t1.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        peak = peak.max(rss_kib(pid));
        println!(
            "  t={:>4.0}s hub_rss={:.1} MiB store={:.1} MiB snapshots={}",
            t1.elapsed().as_secs_f64(),
            rss_kib(pid) as f64 / 1024.0,
            store_bytes(&dir) as f64 / 1048576.0,
            stats.snapshots.load(Ordering::Relaxed) - s0
        );
    }
    let el = t1.elapsed().as_secs_f64();
    let grown = store_bytes(&dir).saturating_sub(b0) as f64;
    let tick = 100.0;
    let cpu = (cpu_ticks(pid) - c0) as f64 / tick / el * 100.0;
    let rss = rss_kib(pid);
    println!("result: agents={agents} containers_per_agent={containers} interval_s={interval}");
    println!(
        "  hub_rss_mib={:.1} (idle before agents {:.1}) per_agent_kib={:.1} peak_mib={:.1}",
        rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
        (rss.saturating_sub(idle_rss)) as f64 / agents as f64,
        peak as f64 / 1024.0
    );
    println!("  hub_cpu_pct={cpu:.1} (of one core)");
    println!(
        "  store_growth_mib_per_min={:.2} snapshots_per_s={:.0}",
        grown / el * 60.0 / 1048576.0,
        (stats.snapshots.load(Ordering::Relaxed) - s0) as f64 / el
    );
    cancel.cancel();
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Health {
            agents,
            containers,
            interval,
            seconds,
        } => health(agents, containers, interval, seconds).await,
    }
}
