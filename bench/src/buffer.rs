//! `buffer`: the agent's buffer replay rate. A buffer is filled to its
//! default bound (16 MiB) with what an outage of a 200-container host
//! leaves (a snapshot every 5 s, five events a second), then replayed as
//! the agent does after a reconnection (records read back, checksums
//! checked, each spliced into a `late` frame), without the wire's rate cap
//! (`REPLAY_BYTES_PER_TICK` per `REPLAY_TICK`), so the figure is what the
//! agent can do; the hub's parse of the same frames is timed beside it.

use std::time::Instant;

use nextdeploy_agent::buffer::replay::Replay;
use nextdeploy_agent::buffer::{Buffer, Kind, Recorder};
use nextdeploy_agent::limits::{DEFAULT_BUFFER_MAX_BYTES, REPLAY_BYTES_PER_TICK, REPLAY_TICK};
use nextdeploy_shared::docker::{ContainerHealth, Event, HealthSnapshot};
use nextdeploy_shared::frame::Decoder;
use nextdeploy_shared::protocol::{Reply, ReplyType};

fn snapshot(at: i64) -> serde_json::Value {
    let containers = (0..200)
        .map(|i| ContainerHealth {
            id: format!("{i:064x}"),
            name: format!("service-{i:03}").into(),
            image: "registry.example.com/team/service:1.2.3".into(),
            state: "running".into(),
            health: Some("healthy".into()),
            restarts: 1,
            started_at: Some("2026-12-04T10:00:00Z".into()),
            cpu_percent: Some(12.34),
            cpu_total_ns: Some(123_456_789_012 + at as u64),
            mem_usage: 123_456_789,
            mem_limit: 1 << 30,
            net_rx: 987_654_321,
            net_tx: 123_456_789,
            stats_from: Some("kernel".into()),
        })
        .collect();
    serde_json::to_value(HealthSnapshot {
        at,
        docker_available: true,
        sweep_ms: 40,
        containers,
        ..Default::default()
    })
    .unwrap_or_default()
}

fn event(t: i64) -> serde_json::Value {
    serde_json::to_value(Event {
        kind: "container".into(),
        action: "die".into(),
        time_ms: t * 1000,
        container_id: Some(format!("{t:064x}")),
        container: Some("service-001".into()),
        image: Some("registry.example.com/team/service:1.2.3".into()),
        exit_code: Some(3),
        ..Default::default()
    })
    .unwrap_or_default()
}

/// Fill, replay, print.
pub fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("nd-bench-buffer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (push, _) = tokio::sync::broadcast::channel(16);
    let rec = Recorder::new(push, Some(Buffer::open(&dir, DEFAULT_BUFFER_MAX_BYTES)?));
    let fill = Instant::now();
    let mut t = 0i64;
    // Until the bound is reached: a snapshot every 5 s, an event a second.
    while rec
        .stats()
        .is_some_and(|s| s.bytes + 200_000 < DEFAULT_BUFFER_MAX_BYTES)
    {
        rec.record(Kind::Health, snapshot(t));
        for s in 0..5 {
            rec.record(Kind::Event, event(t + s));
        }
        t += 5;
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let stats = rec.stats().unwrap_or_default();
    let id = rec.hello().map(|h| h.id).unwrap_or_default();
    let mut replay = Replay::new(rec.next_seq());
    replay.ack(&rec, &id, &[]);
    let start = Instant::now();
    let mut frames = Vec::new();
    while replay.pending(&rec) {
        frames.push(replay.next_frames(&rec));
    }
    let replay_s = start.elapsed().as_secs_f64();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let parse = Instant::now();
    let mut parsed = 0u64;
    for f in &frames {
        let mut d = Decoder::new();
        d.feed(f);
        while let Some((r, _)) = d.next_message::<Reply>()? {
            let ok = match r.kind {
                ReplyType::Health => {
                    serde_json::from_value::<HealthSnapshot>(r.data).is_ok_and(|s| s.late)
                }
                _ => serde_json::from_value::<Event>(r.data).is_ok_and(|e| e.late),
            };
            anyhow::ensure!(ok, "a replayed frame did not read back late");
            parsed += 1;
        }
    }
    let parse_s = parse.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        parsed == stats.records,
        "{parsed} of {} records replayed",
        stats.records
    );
    let mib = |b: f64| b / 1024.0 / 1024.0;
    let cap = REPLAY_BYTES_PER_TICK as f64 / REPLAY_TICK.as_secs_f64();
    println!(
        "buffer: {} records, {:.1} MiB on disk ({} min of a 200-container host), filled in {:.2} s",
        stats.records,
        mib(stats.bytes as f64),
        t / 60,
        fill_s
    );
    println!("replay (agent: read, check, frame): {:.0} records/s, {:.0} MiB/s ({:.3} s for the full buffer)", parsed as f64 / replay_s, mib(bytes as f64) / replay_s, replay_s);
    println!(
        "parse (hub: frames into snapshots and events): {:.0} records/s, {:.0} MiB/s",
        parsed as f64 / parse_s,
        mib(bytes as f64) / parse_s
    );
    println!(
        "wire cap: {:.1} MiB/s, so a full buffer replays in {:.1} s",
        mib(cap),
        bytes as f64 / cap
    );
    Ok(())
}
