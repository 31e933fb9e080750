#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One agent pushing oversized health snapshots as fast as SSH carries them
//! for a minute: the hub's memory stays bounded, a fresh real agent comes
//! online in its usual time, the API answers promptly, and the hub says it
//! trimmed the snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nextdeploy_shared::limits::MAX_FRAME_LEN;
use nextdeploy_tests::flood_agent::{snapshot_frame, FloodAgent};
use nextdeploy_tests::*;

/// How long the flood lasts (the issue asks for a minute).
const FLOOD_FOR: Duration = Duration::from_secs(60);
/// Containers per flooded snapshot: past the hub's `MAX_SNAPSHOT_CONTAINERS`
/// (1,000), so it trims every one.
const CONTAINERS: usize = 1200;
/// Length of the padded name and image of each container: the frame is then
/// close to the frame cap (checked below).
const PAD: usize = 300;
/// Most the hub's RSS may grow over its idle size during the flood. The
/// history queue alone may hold 64 MiB (`HEALTH_QUEUE_BYTES`); the rest is a
/// decoded snapshot or two in flight and SQLite's page cache.
const RSS_GROWTH_MAX: u64 = 160 * 1024 * 1024;
/// How long a real agent usually takes from start to online here.
const AGENT_USUAL: Duration = Duration::from_secs(5);
/// How long `agent list` may take during the flood.
const API_PROMPT: Duration = Duration::from_secs(2);
/// Between RSS samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Start `agent`, wait until it is online and return how long that took.
fn time_online(hub: &Hub, agent: &mut Agent) -> Duration {
    let start = Instant::now();
    agent.start().unwrap();
    wait_online(hub, &[&agent.name], AGENT_USUAL * 3).unwrap();
    start.elapsed()
}

/// Sample `pid`'s RSS every [`SAMPLE_EVERY`] into `peak` until `stop`.
fn sample_rss(pid: u32, peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        if let Ok(rss) = rss_bytes(pid) {
            peak.fetch_max(rss, Ordering::AcqRel);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

#[test]
fn health_flood_bounds_memory_and_keeps_connects_fast() {
    let hub = start_hub().unwrap();
    let pid = hub.pid().unwrap();
    let jt = hub.join_token("flood", "", "1h").unwrap();
    let flood = Agent::enroll(&hub, "flood", &jt.token).unwrap();
    let jt = hub.join_token("probe", "", "1h").unwrap();
    let mut probe = Agent::enroll(&hub, "probe", &jt.token).unwrap();

    // Before the flood: the probe's usual time online, and the idle RSS.
    let before = time_online(&hub, &mut probe);
    probe.kill();
    wait_offline(&hub, &["probe"], Duration::from_secs(30)).unwrap();
    let idle_rss = rss_bytes(pid).unwrap();

    let frame = snapshot_frame(CONTAINERS, PAD).unwrap();
    assert!(
        frame.len() > MAX_FRAME_LEN / 2 && frame.len() <= MAX_FRAME_LEN,
        "a flooded snapshot is {} bytes",
        frame.len()
    );
    let flooder = FloodAgent::start(&hub.ssh_addr(), &flood.key, frame.clone()).unwrap();
    wait_online(&hub, &["flood"], AGENT_USUAL).unwrap();
    let started = Instant::now();
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || sample_rss(pid, peak, stop))
    };

    // A third of the way in, a fresh agent connects and the API is asked.
    std::thread::sleep(FLOOD_FOR / 3);
    let during = time_online(&hub, &mut probe);
    let mut api = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let list = hub.agent_list().unwrap();
        api = api.max(t.elapsed());
        assert_eq!(list.len(), 2, "agent list: {list:?}");
    }
    std::thread::sleep(FLOOD_FOR.saturating_sub(started.elapsed()));
    let sent = flooder.stats.snapshots.load(Ordering::Relaxed);
    let online = hub.agent_entry("flood").unwrap().unwrap()["online"].as_bool();
    drop(flooder);
    stop.store(true, Ordering::Release);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Acquire);
    let after = rss_bytes(pid).unwrap();
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "flood: {sent} snapshots of {} bytes in {:?}; hub RSS idle {} MiB, peak {} MiB, after {} MiB; \
         probe online in {before:?} before, {during:?} during; agent list {api:?} at most",
        frame.len(),
        started.elapsed(),
        mib(idle_rss),
        mib(peak),
        mib(after),
    );

    assert!(
        sent >= FLOOD_FOR.as_secs(),
        "the flood sent only {sent} snapshots"
    );
    assert_eq!(online, Some(true), "the flooding agent went offline");
    assert!(
        peak.saturating_sub(idle_rss) <= RSS_GROWTH_MAX,
        "hub RSS grew from {} MiB to {} MiB",
        mib(idle_rss),
        mib(peak)
    );
    let limit = (before * 2).max(before + Duration::from_secs(2));
    assert!(
        during <= limit,
        "a fresh agent took {during:?} during the flood, {before:?} before"
    );
    assert!(
        api <= API_PROMPT,
        "agent list took {api:?} during the flood"
    );
    let log = hub.log_text();
    assert!(
        log.contains("health snapshot past its bounds"),
        "no trimming logged:\n{}",
        hub.log_tail()
    );
}
