//! The health history.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nextdeploy_shared::docker::HealthSnapshot;

use crate::history::{GRACE_S, TIERS};
use crate::limits::HEALTH_TX_CONTAINERS;
use crate::store::backend::Backend;
use crate::store::Store;
use nextdeploy_shared::docker::ContainerHealth;

fn snap(at: i64, cpu: Option<f64>, mem_kib: u64) -> HealthSnapshot {
    HealthSnapshot {
        at,
        docker_available: true,
        containers: vec![ContainerHealth {
            id: "abc".into(),
            name: "web".into(),
            state: "running".into(),
            cpu_percent: cpu,
            mem_usage: mem_kib * 1024,
            mem_limit: 1024 * 1024,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The batch as the history writer hands it to the store.
fn arcs(
    batch: impl IntoIterator<Item = (String, HealthSnapshot)>,
) -> Vec<(String, std::sync::Arc<HealthSnapshot>)> {
    batch.into_iter().map(|(a, s)| (a, s.into())).collect()
}

/// A multiple of 86,400 (a day's block): every tier's window starts here.
const T0: i64 = 1_800_057_600;

fn one_minute<B: Backend>(s: &B) -> Vec<(i64, i64, Option<f64>)> {
    let pts = s.health_history("a", "web", 60, 0).unwrap();
    pts.iter().map(|p| (p.t_s, p.samples, p.cpu_avg)).collect()
}

/// Suite case.
pub fn every_tier_reads_the_same_before_and_after_packing<B: Backend>(s: &B) {
    assert_eq!(T0 % TIERS[2].window, 0);
    // Ten minutes at 5 s, two samples of each bucket (the second merged).
    let mut batch = Vec::new();
    for i in 0..120 {
        batch.push(("a".to_string(), snap(T0 + 5 * i, Some(10.0), 100)));
        batch.push(("a".to_string(), snap(T0 + 5 * i + 1, None, 300)));
    }
    s.record_health(&arcs(batch)).unwrap();
    let fine = s.health_history("a", "web", 5, 0).unwrap();
    assert_eq!(fine.len(), 120);
    assert_eq!(
        (fine[0].samples, fine[0].cpu_avg, fine[0].mem_avg),
        (2, Some(10.0), 200 * 1024)
    );
    let minute = one_minute(s);
    assert_eq!(minute.len(), 10);
    assert_eq!(minute[0], (T0, 24, Some(10.0)));
    let quarter = s.health_history("a", "web", 900, 0).unwrap();
    assert_eq!((quarter.len(), quarter[0].samples), (1, 240));
    // Nothing is due before the window's end and the grace.
    assert_eq!(s.compact_health(T0 + 600, 100).unwrap(), 0);
    assert_eq!(s.compact_health(T0 + 600 + GRACE_S, 100).unwrap(), 1);
    assert_eq!(s.health_history("a", "web", 5, 0).unwrap(), fine);
    assert_eq!(one_minute(s), minute);
    assert_eq!(s.health_history("a", "web", 900, 0).unwrap(), quarter);
    assert_eq!(s.compact_health(T0 + 90_000, 100).unwrap(), 0);
    // The next ten minutes: the quarter that spans both windows adds up.
    let next: Vec<_> = (120..240)
        .map(|i| ("a".to_string(), snap(T0 + 5 * i, Some(30.0), 100)))
        .collect();
    s.record_health(&arcs(next)).unwrap();
    let before = s.health_history("a", "web", 900, 0).unwrap();
    assert_eq!(s.compact_health(T0 + 1200 + GRACE_S, 100).unwrap(), 1);
    let after = s.health_history("a", "web", 900, 0).unwrap();
    assert_eq!(after, before);
    assert_eq!((after[0].samples, after[1].samples), (300, 60));
    assert_eq!(after[0].cpu_avg, Some(16.66));
    assert_eq!(s.health_containers("a").unwrap(), ["web"]);
    assert!(s.health_history("a", "nope", 5, 0).unwrap().is_empty());
    assert!(s.health_history("b", "web", 5, 0).unwrap().is_empty());
}

/// Suite case.
pub fn rows_that_come_late_merge_into_the_packed_block<B: Backend>(s: &B) {
    s.record_health(&arcs([("a".into(), snap(T0, Some(10.0), 1))]))
        .unwrap();
    assert_eq!(s.compact_health(T0 + 700, 100).unwrap(), 1);
    s.record_health(&arcs([("a".into(), snap(T0 + 2, Some(30.0), 1))]))
        .unwrap();
    let p = s.health_history("a", "web", 5, 0).unwrap();
    assert_eq!((p.len(), p[0].samples, p[0].cpu_avg), (1, 2, Some(20.0)));
    assert_eq!(s.compact_health(T0 + 700, 100).unwrap(), 1);
    let again = s.health_history("a", "web", 5, 0).unwrap();
    assert_eq!(again, p);
    // The minute tier counted the late sample once.
    assert_eq!(one_minute(s), [(T0, 2, Some(20.0))]);
}

/// Suite case.
pub fn an_outage_replayed_later_fills_its_gap_in_every_tier<B: Backend>(s: &B) {
    // Live before and after a 60 s outage; the first window is packed
    // before the outage's snapshots arrive (a replay after a long outage).
    let live: Vec<_> = (0..120)
        .filter(|i| !(24..36).contains(i))
        .map(|i| ("a".to_string(), snap(T0 + 5 * i, Some(10.0), 100)))
        .collect();
    s.record_health(&arcs(live)).unwrap();
    assert_eq!(s.compact_health(T0 + 700, 100).unwrap(), 1);
    assert_eq!(s.health_history("a", "web", 5, 0).unwrap().len(), 108);
    let late: Vec<_> = (24..36)
        .map(|i| ("a".to_string(), snap(T0 + 5 * i, Some(90.0), 100)))
        .collect();
    s.record_health(&arcs(late)).unwrap();
    for _ in 0..2 {
        let fine = s.health_history("a", "web", 5, 0).unwrap();
        assert_eq!(fine.len(), 120);
        let gap: Vec<_> = fine.iter().filter(|p| p.cpu_avg == Some(90.0)).collect();
        assert_eq!(gap.len(), 12);
        assert!(gap.iter().all(|p| p.samples == 1));
        // The minutes of the outage count each sample once.
        let minutes = one_minute(s);
        assert_eq!(minutes.len(), 10);
        assert!(minutes.iter().all(|m| m.1 == 12), "{minutes:?}");
        assert_eq!(minutes[2], (T0 + 120, 12, Some(90.0)));
        // Packed again: the same.
        s.compact_health(T0 + 700, 100).unwrap();
    }
}

/// Suite case.
pub fn retention_drops_old_tiers_and_names_of_containers_gone<B: Backend>(s: &B) {
    s.record_health(&arcs([("a".into(), snap(T0, Some(1.0), 1))]))
        .unwrap();
    let month = TIERS[2].keep;
    s.compact_health(T0 + 30_000, 100).unwrap();
    s.prune_health(T0 + 3600 + 600 + 1).unwrap();
    assert!(s.health_history("a", "web", 5, 0).unwrap().is_empty());
    assert_eq!(one_minute(s).len(), 1);
    assert_eq!(s.health_history("a", "web", 900, 0).unwrap().len(), 1);
    let mut api = snap(T0 + month, None, 1);
    api.containers[0].name = "api".into();
    s.record_health(&arcs([("a".into(), api)])).unwrap();
    assert_eq!(s.health_containers("a").unwrap(), ["api", "web"]);
    s.prune_health(T0 + month + 86_401).unwrap();
    assert_eq!(s.health_containers("a").unwrap(), ["api"]);
    assert!(s.health_history("a", "web", 900, 0).unwrap().is_empty());
}

/// Suite case.
pub fn batches_past_one_transaction_are_all_written<B: Backend>(s: &B) {
    let many = |at: i64, n: usize| {
        let mut sn = snap(at, None, 1);
        let one = sn.containers[0].clone();
        sn.containers = (0..n)
            .map(|i| ContainerHealth {
                name: format!("c{i}").into(),
                ..one.clone()
            })
            .collect();
        sn
    };
    let half = HEALTH_TX_CONTAINERS / 2 + 1;
    let batch = vec![
        ("a".into(), many(T0, half)),
        ("a".into(), many(T0 + 5, half)),
        ("b".into(), many(T0, HEALTH_TX_CONTAINERS + 3)),
    ];
    s.record_health(&arcs(batch)).unwrap();
    assert_eq!(s.health_containers("a").unwrap().len(), half);
    assert_eq!(s.health_history("a", "c0", 5, 0).unwrap().len(), 2);
    let b = s.health_containers("b").unwrap();
    assert_eq!(b.len(), HEALTH_TX_CONTAINERS + 3);
}

/// Suite case.
pub fn blocks_written_straight_are_read_and_not_rolled_up<B: Backend>(s: &B) {
    let pts = crate::history::noisy(3, 120, T0);
    s.put_health_blocks(vec![("a".into(), 5, T0, pts.clone())])
        .unwrap();
    let web = s.health_history("a", "app-1", 5, 0).unwrap();
    assert_eq!(web.len(), 120);
    assert_eq!(s.health_containers("a").unwrap().len(), 3);
    assert_eq!(s.compact_health(T0 + 90_000, 100).unwrap(), 0);
    assert!(s.health_history("a", "app-1", 60, 0).unwrap().is_empty());
}
