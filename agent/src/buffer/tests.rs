//! The buffer's bound, thinning order, torn tails, restarts and acks.

use std::io::Write;

use nextdeploy_shared::docker::{ContainerHealth, Event, HealthSnapshot};
use nextdeploy_shared::protocol::{Reply, ReplyType};

use super::replay::{late_frame, Replay};
use super::*;

const MIB: u64 = 1024 * 1024;

/// A snapshot of `n` containers at `at`, as the monitor makes them.
fn snapshot(n: usize, at: i64) -> Vec<u8> {
    let containers = (0..n)
        .map(|i| ContainerHealth {
            id: format!("{i:064x}"),
            name: format!("service-{i:03}").into(),
            image: "registry.example.com/team/service:1.2.3".into(),
            state: "running".into(),
            health: Some("healthy".into()),
            restarts: 1,
            started_at: Some("2026-12-04T10:00:00Z".into()),
            cpu_percent: Some(12.34),
            cpu_total_ns: Some(123_456_789_012),
            mem_usage: 123_456_789,
            mem_limit: 1 << 30,
            net_rx: 987_654_321,
            net_tx: 123_456_789,
            stats_from: Some("kernel".into()),
        })
        .collect();
    serde_json::to_vec(&HealthSnapshot {
        at,
        docker_available: true,
        sweep_ms: 40,
        containers,
        ..Default::default()
    })
    .unwrap()
}

fn event(t: i64) -> Vec<u8> {
    serde_json::to_vec(&Event {
        kind: "container".into(),
        action: "die".into(),
        time_ms: t,
        container: Some("web".into()),
        exit_code: Some(3),
        ..Default::default()
    })
    .unwrap()
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn ten_minutes_of_200_containers_and_their_events_stay_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(dir.path(), 16 * MIB).unwrap();
    let snap = snapshot(200, 0);
    assert!(snap.len() > 60_000, "{}", snap.len());
    // 10 minutes at 5 s, plus an event a second; then twice as long again,
    // which must thin.
    for tick in 0..360 {
        b.append(Kind::Health, |_| snap.clone()).unwrap();
        for s in 0..5 {
            b.append(Kind::Event, |_| event(tick * 5 + s)).unwrap();
        }
        assert!(b.bytes() <= 16 * MIB, "tick {tick}: {}", b.bytes());
        assert!(disk_bytes(dir.path()) <= 16 * MIB + 64, "tick {tick}");
        if tick == 119 {
            assert_eq!(b.dropped_snapshots, 0, "10 minutes fit whole");
        }
    }
    assert!(b.dropped_snapshots > 0, "30 minutes must thin");
    assert_eq!(
        b.dropped_events, 0,
        "events are kept while snapshots remain"
    );
    let kinds = b.kinds();
    let events = kinds.iter().filter(|k| **k == Kind::Event).count();
    assert_eq!(events, 360 * 5);
    // Snapshots are thinned oldest first: the newest segment's are whole.
    let seqs = b.seqs();
    let tail: Vec<_> = seqs.iter().rev().take(60).collect();
    assert!(tail.windows(2).all(|w| w[0] - w[1] == 1), "{tail:?}");
}

#[test]
fn thinning_drops_every_other_old_snapshot_then_events_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(dir.path(), 4 * MIB).unwrap();
    let snap = snapshot(50, 0);
    // Alternate: snapshot, event.
    let mut n = 0;
    while b.dropped_snapshots == 0 {
        b.append(Kind::Health, |_| snap.clone()).unwrap();
        b.append(Kind::Event, |_| event(n)).unwrap();
        n += 1;
    }
    // The first thinning took every other snapshot of the oldest segment:
    // the first snapshot (seq 1) stays, the second (seq 3) went.
    let seqs = b.seqs();
    assert_eq!(&seqs[..3], &[1, 2, 4]);
    assert_eq!(b.dropped_events, 0);
    // Only events from now on: snapshots go first, then the oldest events.
    while b.dropped_events == 0 {
        b.append(Kind::Event, |_| event(n)).unwrap();
        n += 1;
        assert!(b.bytes() <= 4 * MIB);
    }
    let kinds = b.kinds();
    assert!(
        !kinds.contains(&Kind::Health),
        "every snapshot before any event"
    );
}

#[test]
fn a_restart_keeps_records_sequence_and_id_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let mut b = Buffer::open(dir.path(), 16 * MIB).unwrap();
        id = b.id().to_string();
        for t in 0..10 {
            b.append(Kind::Event, |_| event(t)).unwrap();
        }
    }
    // A crash in the middle of the next record.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let rec = segment::encode(11, Kind::Event as u8, &event(11));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&rec[..rec.len() / 2])
        .unwrap();
    let mut b = Buffer::open(dir.path(), 16 * MIB).unwrap();
    assert_eq!(b.id(), id);
    assert_eq!(b.seqs(), (1..=10).collect::<Vec<_>>());
    assert_eq!(b.append(Kind::Event, |_| event(11)).unwrap(), Some(11));
    // All acknowledged: the files go, the number stays.
    b.ack(&[[1, 11]]).unwrap();
    assert!(b.is_empty());
    drop(b);
    let mut b = Buffer::open(dir.path(), 16 * MIB).unwrap();
    assert_eq!(b.next_seq(), 12);
    assert_eq!(b.append(Kind::Event, |_| event(12)).unwrap(), Some(12));
    // A lost id: a fresh start.
    std::fs::remove_file(dir.path().join("id")).unwrap();
    let b = Buffer::open(dir.path(), 16 * MIB).unwrap();
    assert_ne!(b.id(), id);
    assert_eq!((b.next_seq(), b.len()), (1, 0));
    // Files and directory are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("id")), 0o600);
}

#[test]
fn acks_trim_ranges_and_reads_skip_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Buffer::open(dir.path(), 4 * MIB).unwrap();
    for t in 0..100 {
        b.append(Kind::Event, |_| event(t)).unwrap();
    }
    b.ack(&[[1, 10], [20, 29], [95, 200]]).unwrap();
    let left = b.seqs();
    assert_eq!(left.len(), 100 - 10 - 10 - 6);
    assert_eq!(left[0], 11);
    let read = b.read(0, 50, usize::MAX).unwrap();
    let got: Vec<_> = read.iter().map(|s| s.seq).collect();
    assert_eq!(
        got,
        [(11..20).collect::<Vec<_>>(), (30..50).collect()].concat()
    );
    assert_eq!(read[0].payload, event(10));
    // A budget: at least one record, about that many bytes.
    assert_eq!(b.read(0, 50, 1).unwrap().len(), 1);
    assert!(b.has_between(90, 95) && !b.has_between(94, 95));
}

#[test]
fn a_replayed_record_is_a_late_frame_the_hub_reads() {
    let s = Stored {
        seq: 7,
        kind: Kind::Event,
        payload: event(5),
    };
    let f = late_frame(&s).unwrap();
    let mut d = nextdeploy_shared::frame::Decoder::new();
    d.feed(&f);
    let (r, _) = d.next_message::<Reply>().unwrap().unwrap();
    assert_eq!(r.kind, ReplyType::Event);
    let e: Event = serde_json::from_value(r.data).unwrap();
    assert!(e.late);
    assert_eq!((e.action.as_str(), e.time_ms), ("die", 5));
    let empty = Stored {
        seq: 1,
        kind: Kind::Health,
        payload: b"{}".to_vec(),
    };
    let mut d = nextdeploy_shared::frame::Decoder::new();
    d.feed(&late_frame(&empty).unwrap());
    let (r, _) = d.next_message::<Reply>().unwrap().unwrap();
    assert_eq!(r.data, serde_json::json!({"late": true}));
}

#[test]
fn a_replay_sends_the_backlog_after_the_ack_and_a_legacy_hub_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = tokio::sync::broadcast::channel(16);
    let rec = Recorder::new(push, Some(Buffer::open(dir.path(), 4 * MIB).unwrap()));
    for t in 0..5 {
        rec.record(Kind::Event, serde_json::from_slice(&event(t)).unwrap());
    }
    let (mut rx, live_from) = rec.subscribe();
    assert_eq!(live_from, 6);
    rec.record(Kind::Event, serde_json::from_slice(&event(9)).unwrap());
    let live = rx.try_recv().unwrap();
    assert_eq!(live.data["seq"], 6);
    let id = rec.hello().unwrap().id;
    let mut replay = Replay::new(live_from);
    assert!(!replay.pending(&rec), "nothing before the hub's ack");
    replay.ack(&rec, &id, &[[1, 2]]);
    assert!(replay.pending(&rec));
    let frames = replay.next_frames(&rec);
    let mut d = nextdeploy_shared::frame::Decoder::new();
    d.feed(&frames);
    let mut seqs = Vec::new();
    while let Some((r, _)) = d.next_message::<Reply>().unwrap() {
        assert_eq!(r.data["late"], true);
        seqs.push(r.data["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [3, 4, 5]);
    assert!(!replay.pending(&rec));
    // Another connection, to a hub without the feature.
    let (_rx, live_from) = rec.subscribe();
    let mut legacy = Replay::new(live_from);
    legacy.heartbeat(&rec);
    assert!(!legacy.pending(&rec));
    assert_eq!(rec.stats().unwrap().records, 0);
}
