//! Alerts (issue 22): rules evaluated on what agents push, alerts that fire
//! once and resolve once per rule, server and container, and their
//! notifications delivered from a persistent outbox.
//!
//! Layout:
//! - [`rules`]: a rule ready to match (selector, container glob) and the
//!   cooldown of each severity.
//! - [`eval`]: the evaluator's state machine, no I/O: events, snapshots,
//!   deploy outcomes and ticks in, alerts to fire or resolve out; its
//!   conditions on usage in [`usage`] (`cpu`, `memory`) and on restarts in
//!   [`restarts`] (`restart_loop`).
//! - [`deploys`]: deploy outcomes handed to the evaluator.
//! - [`hold`]: silences and quiet hours, which hold notifications, and
//!   what is released when they end.
//! - [`run`]: the evaluator task: the queue in, the store written.
//! - [`send`]: the sender task: the outbox out, with backoff and a deadline.
//! - [`body`]: the webhook body, Slack's shape, the HMAC signature.
//! - [`channels`]: every other kind's shape, one module per service
//!   (Discord, Teams, ntfy, Gotify, PagerDuty, Pushover), and the checks of
//!   `alert_channel_add`.
//! - [`email`]: email through an SMTP client (lettre).
//! - [`http`]: one POST over hyper, TCP or rustls.
//!
//! Ingestion never waits: the SSH session hands events and snapshots to
//! [`Alerts::offer_event`] / [`Alerts::offer_snapshot`], which `try_send` on a
//! bounded queue ([`ALERT_QUEUE`]) and count what a full queue drops.

pub mod body;
pub mod channels;
pub mod deploys;
pub mod email;
pub mod eval;
pub mod hold;
pub mod hold_run;
pub mod http;
pub mod restarts;
pub mod rules;
pub mod run;
pub mod send;
pub mod usage;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use nextdeploy_shared::docker::{Event, HealthSnapshot};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::deploy::{DeployOutcome, Outcome};
use tokio::sync::{mpsc, Notify};
use tracing::{warn, Instrument};

use crate::limits::ALERT_QUEUE;

/// What the evaluator is fed.
// Events are most of the queue (a snapshot is shared, an `Arc`): boxing them
// would cost an allocation each to save bytes of a bounded queue.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// A container or agent event.
    Event {
        /// Agent name.
        agent: String,
        /// Its labels.
        labels: Labels,
        /// The event.
        event: Event,
    },
    /// A health snapshot.
    Snapshot {
        /// Agent name.
        agent: String,
        /// Its labels.
        labels: Labels,
        /// The snapshot (shared with the live view).
        snap: Arc<HealthSnapshot>,
    },
    /// A deploy or rollback finished (its record written).
    Deploy {
        /// Agent name.
        agent: String,
        /// Its labels.
        labels: Labels,
        /// The outcome, `deploy_id` set.
        outcome: Box<DeployOutcome>,
    },
}

/// The handle the rest of the hub holds (in `Services`).
pub struct Alerts {
    tx: mpsc::Sender<Input>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Input>>>,
    /// Wakes the sender: a notification was queued.
    pub wake: Arc<Notify>,
    /// Posts to receivers (the sender's, and `alert_channel_test`'s).
    pub poster: Arc<http::Poster>,
    rules: AtomicU64,
    dropped: AtomicU64,
    /// Whether the evaluator needs snapshots: not while no rule is loaded
    /// and nothing fires (then a snapshot would wake it for nothing, 2,000
    /// times a second at 10,000 agents).
    snapshots: AtomicBool,
}

impl Default for Alerts {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(ALERT_QUEUE);
        Alerts {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            wake: Arc::default(),
            poster: Arc::default(),
            rules: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            snapshots: AtomicBool::new(true),
        }
    }
}

/// Events the evaluator acts on; the rest are not queued.
fn wanted(e: &Event) -> bool {
    match e.kind.as_str() {
        "agent" => matches!(e.action.as_str(), "online" | "offline"),
        _ => matches!(
            e.action.as_str(),
            "die" | "oom" | "start" | "health_status" | "destroy" | "stop" | "restart"
        ),
    }
}

impl Alerts {
    fn offer(&self, input: Input) {
        if self.tx.try_send(input).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(dropped = n, "alert evaluator queue full; input dropped");
            }
        }
    }

    /// An event of `agent`, if rules may act on it.
    pub fn offer_event(&self, agent: &str, labels: &Labels, event: &Event) {
        if wanted(event) {
            self.offer(Input::Event {
                agent: agent.to_string(),
                labels: labels.clone(),
                event: event.clone(),
            });
        }
    }

    /// `agent` came `online` or went `offline`.
    pub fn offer_agent(&self, agent: &str, labels: &Labels, action: &str) {
        let event = Event {
            kind: "agent".into(),
            action: action.into(),
            time_ms: nextdeploy_shared::time::now_unix_ms(),
            ..Default::default()
        };
        self.offer_event(agent, labels, &event);
    }

    /// A health snapshot of `agent`.
    pub fn offer_snapshot(&self, agent: &str, labels: &Labels, snap: Arc<HealthSnapshot>) {
        if !self.snapshots.load(Ordering::Acquire) {
            return;
        }
        self.offer(Input::Snapshot {
            agent: agent.to_string(),
            labels: labels.clone(),
            snap,
        });
    }

    /// A deploy or rollback of `agent` finished as `outcome` (failed,
    /// rolled back, succeeded; others are not queued).
    pub fn offer_deploy(&self, agent: &str, labels: &Labels, outcome: &DeployOutcome) {
        if matches!(outcome.outcome, Outcome::Unknown | Outcome::Untouched) {
            return;
        }
        self.offer(Input::Deploy {
            agent: agent.to_string(),
            labels: labels.clone(),
            outcome: Box::new(outcome.clone()),
        });
    }

    /// The evaluator says whether it needs snapshots (see `snapshots`).
    pub fn want_snapshots(&self, wanted: bool) {
        self.snapshots.store(wanted, Ordering::Release);
    }

    /// Inputs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Rules or channels changed: the evaluator reloads them at its next tick.
    pub fn rules_changed(&self) {
        self.snapshots.store(true, Ordering::Release);
        self.rules.fetch_add(1, Ordering::AcqRel);
    }

    /// Bumped by every [`Alerts::rules_changed`].
    pub fn rules_version(&self) -> u64 {
        self.rules.load(Ordering::Acquire)
    }

    /// Start the evaluator and the sender; they stop at `svc.cancel`.
    pub fn spawn(svc: &Arc<crate::Services>) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(rx) = crate::sync::lock_or_recover(&svc.alerts.rx).take() else {
            return Vec::new();
        };
        let cancel = svc.cancel.clone();
        let sender = send::run(
            svc.store.clone(),
            svc.alerts.poster.clone(),
            svc.alerts.wake.clone(),
            cancel.clone(),
        );
        vec![
            tokio::spawn(
                run::run(svc.clone(), rx, cancel).instrument(tracing::info_span!("alerts")),
            ),
            tokio::spawn(sender.instrument(tracing::info_span!("alert_sender"))),
        ]
    }
}
