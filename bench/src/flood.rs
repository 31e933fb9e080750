//! The `health-flood` scenario (issue 18): one simulated agent pushes
//! snapshots past the hub's container cap as fast as SSH carries them, while
//! the hub's RSS is sampled and fresh simulated agents connect one at a time,
//! before and during the flood. Prints the figures and writes them under
//! `bench/results/` (`<time>-health-flood.{json,md}` and `latest-health-flood.*`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{fleet, hub, procfs, sim};

/// Containers per flooded snapshot: past the hub's `MAX_SNAPSHOT_CONTAINERS`
/// (1,000), so every snapshot is trimmed.
const FLOOD_CONTAINERS: usize = 1200;
/// How long one probe may take to say hello before the run fails.
const PROBE_LIMIT: Duration = Duration::from_secs(30);
/// Between RSS samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Median of `probes` probes, agents `from..from + probes`, in ms.
async fn median_connect(from: usize, probes: usize, cfg: &sim::SimConfig) -> anyhow::Result<f64> {
    let mut ms = Vec::with_capacity(probes);
    for i in from..from + probes {
        ms.push(sim::time_connect(i, cfg, PROBE_LIMIT).await?.as_secs_f64() * 1000.0);
        // Let the replaced session go before the next probe.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

/// Run the scenario for `seconds` with `probes` probes before and during.
pub async fn run(seconds: u64, probes: usize) -> anyhow::Result<()> {
    let probes = probes.max(1);
    let dir = std::env::temp_dir().join(format!("nd-bench-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Agent 0 floods; 1..=probes probe before, the next probes during.
    let pin = fleet::enrol(&dir, 1 + 2 * probes)?;
    let hub = hub::start(&dir, None)?;
    let pid = hub.pid();
    let cfg = sim::SimConfig {
        hub: hub.ssh,
        also: Vec::new(),
        pin,
        containers: FLOOD_CONTAINERS,
        health_interval: Duration::from_millis(1),
        stats: Arc::new(sim::SimStats::default()),
    };
    let before_ms = median_connect(1, probes, &cfg).await?;
    let idle_kib = procfs::rss_kib(pid);

    let cancel = CancellationToken::new();
    let peak = Arc::new(AtomicU64::new(idle_kib));
    let sampler = {
        let (peak, cancel) = (peak.clone(), cancel.clone());
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                peak.fetch_max(procfs::rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        })
    };
    let flooder = tokio::spawn(sim::run_agent(
        0,
        fleet::sim_name(0),
        Arc::new(fleet::sim_key(0)),
        cfg.clone(),
        cancel.clone(),
    ));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds / 3)).await;
    let during_ms = median_connect(1 + probes, probes, &cfg).await?;
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(t0.elapsed())).await;
    let flood_s = t0.elapsed().as_secs_f64();
    let sent = cfg.stats.snapshots.load(Ordering::Relaxed);
    cancel.cancel();
    let _ = flooder.await;
    let _ = sampler.await;
    let peak_kib = peak.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_kib = procfs::rss_kib(pid);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);

    let mib = |k: u64| k as f64 / 1024.0;
    let figures = json!({
        "scenario": "health-flood",
        "seconds": flood_s,
        "containers_per_snapshot": FLOOD_CONTAINERS,
        "snapshots_sent": sent,
        "snapshots_per_s": sent as f64 / flood_s,
        "hub_rss_mib": {"before": mib(idle_kib), "peak": mib(peak_kib), "after": mib(after_kib)},
        "connect_ms_median": {"before": before_ms, "during": during_ms, "probes": probes},
    });
    let md = format!(
        "# health-flood\n\n\
         One simulated agent pushing {FLOOD_CONTAINERS}-container snapshots as fast as SSH \
         carries them for {flood_s:.0} s ({sent} sent, {:.0}/s).\n\n\
         | | before | during | after |\n|---|---|---|---|\n\
         | hub RSS (MiB; during = peak) | {:.1} | {:.1} | {:.1} |\n\
         | fresh agent, TCP connect to hello (ms, median of {probes}) | {before_ms:.1} | {during_ms:.1} | |\n",
        sent as f64 / flood_s,
        mib(idle_kib),
        mib(peak_kib),
        mib(after_kib),
    );
    println!("{md}");
    let results = hub::workspace().join("bench/results");
    std::fs::create_dir_all(&results)?;
    let stamp = crate::date_utc().replace(':', "");
    let json = serde_json::to_string_pretty(&figures)? + "\n";
    for name in [stamp.as_str(), "latest"] {
        std::fs::write(results.join(format!("{name}-health-flood.md")), &md)?;
        std::fs::write(results.join(format!("{name}-health-flood.json")), &json)?;
    }
    Ok(())
}
