//! What agents push on their control channels: health snapshots (kept in
//! memory per agent, written to the store's history in batches) and events
//! (fanned out to subscribers through one broadcast bus).

use crate::limits::{EVENT_BUS, HEALTH_BATCH, HEALTH_QUEUE, PRUNE_EVERY};
use std::sync::Arc;

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

/// The bus and the history writer's queue.
pub struct Telemetry {
    /// Live events.
    pub events: broadcast::Sender<HubEvent>,
    health_tx: mpsc::Sender<(String, HealthSnapshot)>,
    health_rx: std::sync::Mutex<Option<mpsc::Receiver<(String, HealthSnapshot)>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let (events, _) = broadcast::channel(EVENT_BUS);
        let (health_tx, health_rx) = mpsc::channel(HEALTH_QUEUE);
        Telemetry {
            events,
            health_tx,
            health_rx: std::sync::Mutex::new(Some(health_rx)),
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

    /// Queue a snapshot for the history.
    pub fn record(&self, agent: &str, snap: HealthSnapshot) {
        if self.health_tx.try_send((agent.to_string(), snap)).is_err() {
            warn!(agent, "health history queue full; dropping a snapshot");
        }
    }

    /// Run the history writer (and pruner) until `cancel`.
    pub async fn run_writer(self: Arc<Self>, store: SharedStore, cancel: CancellationToken) {
        let Some(mut rx) = crate::sync::lock_or_recover(&self.health_rx).take() else {
            return;
        };
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                n = rx.recv_many(&mut batch, HEALTH_BATCH) => if n == 0 { return },
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
                        let _ = store::blocking(&store, move |s| s.record_health(&batch)).await;
                    }
                    return;
                }
            }
            if let Err(e) = store::blocking(&store, move |s| s.record_health(&batch)).await {
                warn!(error = %e, "writing health history failed");
            }
        }
    }
}
