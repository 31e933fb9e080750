//! What an agent pushes on its control channel: health snapshots (made the
//! live view, queued for the history, offered to the alert evaluator),
//! container events and deploy outcomes.

use std::sync::Arc;

use nextdeploy_shared::docker::{Event, HealthSnapshot};
use nextdeploy_shared::protocol::{PushedOutcome, Reply, ReplyType};
use nextdeploy_shared::time::now_unix;
use tracing::{debug, warn};

use crate::agents::AgentConn;
use crate::Services;

/// A health snapshot, event or deploy outcome the agent pushed on its control
/// channel. Returns the id of a deploy outcome to acknowledge.
pub async fn record_push(svc: &Services, conn: &AgentConn, reply: Reply) -> Option<String> {
    match reply.kind {
        ReplyType::Result => {
            let pushed: PushedOutcome = serde_json::from_value(reply.data).ok()?;
            return crate::api::deploy::record_pushed(svc, &conn.name, &pushed.deploy_outcome)
                .await;
        }
        ReplyType::Health => match serde_json::from_value::<HealthSnapshot>(reply.data) {
            Ok(snap) => record_health(svc, conn, snap),
            Err(e) => warn!(error = %e, "malformed health snapshot"),
        },
        ReplyType::Event => match serde_json::from_value::<Event>(reply.data) {
            Ok(mut ev) => {
                ev.kind = "container".into();
                svc.alerts.offer_event(&conn.name, &conn.labels, &ev);
                svc.recent
                    .publish(&svc.telemetry, &conn.name, &conn.labels, ev);
            }
            Err(e) => warn!(error = %e, "malformed event"),
        },
        other => debug!(kind = ?other, "ignored control frame"),
    }
    None
}

/// Bound a pushed snapshot (see `telemetry::bounds`), make it the live one,
/// and queue it for the history unless the agent's previous one was queued
/// within `HEALTH_MIN_GAP`. Trimming is logged only for queued snapshots, so
/// a flood of oversized ones logs at most about once a second.
pub fn record_health(svc: &Services, conn: &AgentConn, mut snap: HealthSnapshot) {
    let trimmed = crate::telemetry::bounds::bound(&mut snap, now_unix());
    let due = conn.history_due(nextdeploy_shared::time::now_unix_ms());
    if due && trimmed.any() {
        warn!(
            dropped_containers = trimmed.containers,
            cut_fields = trimmed.fields,
            clamped_from = ?trimmed.clamped_from,
            "health snapshot past its bounds; trimmed"
        );
    }
    let snap = Arc::new(snap);
    *crate::sync::lock_or_recover(&conn.health) = Some(snap.clone());
    svc.alerts
        .offer_snapshot(&conn.name, &conn.labels, snap.clone());
    if due {
        svc.telemetry.record(&conn.name, snap.as_ref().clone());
    }
}
