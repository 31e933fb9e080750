//! What agents push on their control channels: health snapshots (kept in
//! memory per agent, written to the store's history in batches) and events
//! (fanned out to subscribers through one broadcast bus).
//!
//! Layout: `mod.rs` the bus and the history writer; [`bounds`] the bounds a
//! snapshot is held to before it is kept anywhere.

use crate::limits::{
    EVENT_BUS, HEALTH_BATCH, HEALTH_QUEUE, HEALTH_QUEUE_BYTES, HEALTH_WRITE_EVERY,
    HISTORY_COMPACT_EVERY, HISTORY_COMPACT_WINDOWS, PRUNE_EVERY,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub mod bounds;

use nextdeploy_shared::docker::{Event, HealthSnapshot};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::time::{now_unix, now_unix_ms};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::store::{self, SharedStore};

/// An event with the agent it comes from.
#[derive(Debug, Clone)]
pub struct HubEvent {
    /// Agent name.
    pub agent: String,
    /// Agent labels (for selector filters).
    pub labels: Labels,
    /// The event.
    pub event: Event,
}

/// A snapshot waiting for the history writer, with its [`bounds::cost`].
type Queued = (String, Arc<HealthSnapshot>, usize);

/// The bus and the history writer's queue.
pub struct Telemetry {
    /// Live events.
    pub events: broadcast::Sender<HubEvent>,
    health_tx: mpsc::Sender<Queued>,
    health_rx: std::sync::Mutex<Option<mpsc::Receiver<Queued>>>,
    /// Bytes queued (estimated), held under [`HEALTH_QUEUE_BYTES`].
    queued_bytes: AtomicUsize,
}

impl Default for Telemetry {
    fn default() -> Self {
        let (events, _) = broadcast::channel(EVENT_BUS);
        let (health_tx, health_rx) = mpsc::channel(HEALTH_QUEUE);
        Telemetry {
            events,
            health_tx,
            health_rx: std::sync::Mutex::new(Some(health_rx)),
            queued_bytes: AtomicUsize::new(0),
        }
    }
}

impl Telemetry {
    /// Publish an event (no subscribers is fine).
    pub fn publish(&self, agent: &str, labels: &Labels, event: Event) {
        let _ = self.events.send(HubEvent {
            agent: agent.to_string(),
            labels: labels.clone(),
            event,
        });
    }

    /// An agent came online or went offline.
    pub fn agent_event(&self, agent: &str, labels: &Labels, action: &str) {
        self.publish(
            agent,
            labels,
            Event {
                kind: "agent".into(),
                action: action.into(),
                time_ms: now_unix_ms(),
                ..Default::default()
            },
        );
    }

    /// Queue a (bounded) snapshot for the history, unless the queue is full
    /// in snapshots or in bytes: then it is dropped (the history loses a point).
    pub fn record(&self, agent: &str, snap: Arc<HealthSnapshot>) {
        let cost = bounds::cost(&snap);
        let before = self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
        let full = before.saturating_add(cost) > HEALTH_QUEUE_BYTES;
        if full
            || self
                .health_tx
                .try_send((agent.to_string(), snap, cost))
                .is_err()
        {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            warn!(agent, "health history queue full; dropping a snapshot");
        }
    }

    /// Bytes of snapshots queued for the history (estimated).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Write `batch` and release its bytes from the queue's budget.
    async fn write(&self, store: &SharedStore, batch: Vec<Queued>) {
        let cost: usize = batch.iter().map(|q| q.2).sum();
        let batch: Vec<(String, Arc<HealthSnapshot>)> =
            batch.into_iter().map(|(a, s, _)| (a, s)).collect();
        if let Err(e) = store::blocking(store, move |s| s.record_health(&batch)).await {
            warn!(error = %e, "writing health history failed");
        }
        self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Run the history writer (and pruner) until `cancel`.
    pub async fn run_writer(self: Arc<Self>, store: SharedStore, cancel: CancellationToken) {
        let Some(mut rx) = crate::sync::lock_or_recover(&self.health_rx).take() else {
            return;
        };
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut compact = tokio::time::interval(HISTORY_COMPACT_EVERY);
        let mut last_write = tokio::time::Instant::now();
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                n = rx.recv_many(&mut batch, HEALTH_BATCH) => if n == 0 { return },
                _ = compact.tick() => {
                    let r = store::blocking(&store, |s| {
                        s.compact_health(now_unix(), HISTORY_COMPACT_WINDOWS)
                    });
                    match r.await {
                        Ok(0) => {}
                        Ok(n) => debug!(windows = n, "packed health history"),
                        Err(e) => warn!(error = %e, "packing health history failed"),
                    }
                    continue;
                }
                _ = prune.tick() => {
                    match store::blocking(&store, |s| s.prune_health(now_unix())).await {
                        Ok(n) => debug!(rows = n, "pruned health history"),
                        Err(e) => warn!(error = %e, "pruning health history failed"),
                    }
                    continue;
                }
                _ = cancel.cancelled() => {
                    rx.close();
                    while rx.recv_many(&mut batch, HEALTH_BATCH).await > 0 {}
                    if !batch.is_empty() {
                        self.write(&store, batch).await;
                    }
                    return;
                }
            }
            gather(&mut rx, &mut batch, last_write, &cancel).await;
            last_write = tokio::time::Instant::now();
            self.write(&store, batch).await;
        }
    }
}

/// Let snapshots gather until [`HEALTH_WRITE_EVERY`] has passed since the
/// last write (or a batch is full), then take what is queued: one write per
/// interval instead of one per snapshot, which is most of what the history
/// cost the hub (a commit per snapshot, and a wake-up of this task for each).
async fn gather(
    rx: &mut mpsc::Receiver<Queued>,
    batch: &mut Vec<Queued>,
    last_write: tokio::time::Instant,
    cancel: &CancellationToken,
) {
    if batch.len() < HEALTH_BATCH {
        tokio::select! {
            _ = tokio::time::sleep_until(last_write + HEALTH_WRITE_EVERY) => {}
            _ = cancel.cancelled() => {}
        }
    }
    while batch.len() < HEALTH_BATCH {
        match rx.try_recv() {
            Ok(q) => batch.push(q),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextdeploy_shared::docker::ContainerHealth;

    #[test]
    fn the_queue_holds_at_most_its_bytes() {
        let t = Telemetry::default();
        let big = HealthSnapshot {
            containers: (0..crate::limits::MAX_SNAPSHOT_CONTAINERS)
                .map(|i| ContainerHealth {
                    name: format!("{i:0>512}").into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let one = bounds::cost(&big);
        let fits = HEALTH_QUEUE_BYTES / one;
        for _ in 0..fits + 10 {
            t.record("flood", Arc::new(big.clone()));
        }
        assert!(t.queued_bytes() <= HEALTH_QUEUE_BYTES);
        assert_eq!(t.queued_bytes(), fits * one);
    }
}
