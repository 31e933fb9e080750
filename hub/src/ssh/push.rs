//! What an agent pushes on its control channel: health snapshots (made the
//! live view, queued for the history, offered to the alert evaluator),
//! container events and deploy outcomes.

use std::sync::Arc;

use nextdeploy_shared::docker::{Event, HealthSnapshot};
use nextdeploy_shared::protocol::{PushedOutcome, Reply, ReplyType};
use nextdeploy_shared::time::now_unix;
use tracing::{debug, warn};

use super::seqs::Seqs;
use crate::agents::AgentConn;
use crate::limits::LATE_MAX_AGE;
use crate::Services;

/// A health snapshot, event or deploy outcome the agent pushed on its control
/// channel. Returns the id of a deploy outcome to acknowledge. `seqs`: what
/// was taken from the agent's buffer (a numbered record taken already is
/// skipped).
pub async fn record_push(
    svc: &Services,
    conn: &AgentConn,
    reply: Reply,
    seqs: Option<&mut Seqs>,
) -> Option<String> {
    let mut seqs = seqs;
    let mut take = |seq: Option<u64>, late: bool| seqs.as_mut().is_none_or(|s| s.take(seq, late));
    match reply.kind {
        ReplyType::Result => {
            let pushed: PushedOutcome = serde_json::from_value(reply.data).ok()?;
            return crate::api::deploy::record_pushed(svc, &conn.name, &pushed.deploy_outcome)
                .await;
        }
        ReplyType::Health => match serde_json::from_value::<HealthSnapshot>(reply.data) {
            Ok(snap) if take(snap.seq, snap.late) => record_health(svc, conn, snap),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "malformed health snapshot"),
        },
        ReplyType::Event => match serde_json::from_value::<Event>(reply.data) {
            Ok(ev) if take(ev.seq, ev.late) => record_event(svc, conn, ev),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "malformed event"),
        },
        other => debug!(kind = ?other, "ignored control frame"),
    }
    None
}

/// A container event: offered to the alert evaluator and published (kept in
/// the agent's ring, sent to live subscribers), `late` if it was replayed
/// from the agent's buffer.
fn record_event(svc: &Services, conn: &AgentConn, mut ev: Event) {
    ev.kind = "container".into();
    ev.seq = None;
    svc.alerts.offer_event(&conn.name, &conn.labels, &ev);
    svc.recent
        .publish(&svc.telemetry, &conn.name, &conn.labels, ev);
}

/// Bound a pushed snapshot (see `telemetry::bounds`), make it the live one,
/// and queue it for the history unless the agent's previous one was queued
/// within `HEALTH_MIN_GAP`. Trimming is logged only for queued snapshots, so
/// a flood of oversized ones logs at most about once a second. A `late`
/// snapshot (replayed from the agent's buffer) goes to the history only.
pub fn record_health(svc: &Services, conn: &AgentConn, mut snap: HealthSnapshot) {
    snap.seq = None;
    if snap.late {
        return record_late_health(svc, conn, snap);
    }
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
    // Kept for 5 s per agent: without the room serde's doubling left (32
    // containers' worth for 20, about 3 KiB an agent).
    snap.containers.shrink_to_fit();
    let snap = Arc::new(snap);
    *crate::sync::lock_or_recover(&conn.health) = Some(snap.clone());
    svc.alerts
        .offer_snapshot(&conn.name, &conn.labels, snap.clone());
    if due {
        svc.telemetry.record(&conn.name, snap);
    }
}

/// A snapshot taken while the link was down: into the history at its own
/// time (not thinned by `HEALTH_MIN_GAP`: the agent's replay is rate-bound),
/// never the live state nor the alert evaluator's (which judges the present
/// from live snapshots; what happened meanwhile reaches it as late events).
/// Bounded as a live one, except its time may be up to [`LATE_MAX_AGE`] in
/// the past; an older one is dropped (the 5 s tier would be pruned first).
fn record_late_health(svc: &Services, conn: &AgentConn, mut snap: HealthSnapshot) {
    let now = now_unix();
    let at = snap.at;
    let trimmed = crate::telemetry::bounds::bound(&mut snap, now);
    let oldest = now - LATE_MAX_AGE.as_secs() as i64;
    if trimmed.clamped_from.is_some() {
        if at > now || at < oldest {
            debug!(at, "late snapshot outside the history's reach; dropped");
            return;
        }
        snap.at = at;
    }
    svc.telemetry.record(&conn.name, Arc::new(snap));
}
