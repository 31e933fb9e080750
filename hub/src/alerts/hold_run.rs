//! The evaluator task's side of [`super::hold`]: the silences it holds in
//! memory, releasing held notifications once nothing holds them, and the
//! repeats of long-firing alerts (`repeat_s`).

use std::collections::{HashMap, HashSet};

use nextdeploy_shared::protocol::alerts::AlertStatus;
use tracing::warn;

use super::body;
use super::eval::Evaluator;
use super::hold::{self, Silence, Subject};
use super::run::{channel_of_rules, held};
use crate::store::alert_state::Outbox;
use crate::store::{self, SharedStore};
use crate::Services;

/// What the evaluator task keeps beside the [`Evaluator`].
#[derive(Debug, Default)]
pub struct State {
    /// Silences not ended (reloaded when they change; matched by time).
    pub silences: Vec<Silence>,
    /// Alert id -> Unix time of its last firing notice (for repeats).
    pub last_note: HashMap<String, i64>,
    /// Whether the outbox may hold notifications (skips the query when not).
    pub maybe_held: bool,
}

/// Silences that have not ended.
pub async fn load_silences(store: &SharedStore) -> Vec<Silence> {
    let now = nextdeploy_shared::time::now_unix();
    match store::blocking(store, move |s| s.silences(now)).await {
        Ok(all) => all
            .into_iter()
            .filter_map(|r| {
                let id = r.id.clone();
                Silence::compile(r)
                    .map_err(|e| warn!(silence = %id, error = %e, "silence skipped"))
                    .ok()
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "loading silences failed");
            Vec::new()
        }
    }
}

/// When each firing alert was last notified.
pub async fn load_last_notes(store: &SharedStore) -> HashMap<String, i64> {
    match store::blocking(store, |s| s.last_notes()).await {
        Ok(v) => v.into_iter().collect(),
        Err(e) => {
            warn!(error = %e, "loading last notices failed");
            HashMap::new()
        }
    }
}

/// Release or drop the held notifications nothing holds any more.
pub async fn release_held(svc: &Services, ev: &Evaluator, st: &mut State, now: i64) {
    if !st.maybe_held {
        return;
    }
    let notes = match store::blocking(&svc.store, |s| s.held_notifications()).await {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "reading held notifications failed");
            return;
        }
    };
    st.maybe_held = !notes.is_empty();
    let mut dropped: HashSet<String> = HashSet::new();
    let mut woke = false;
    for n in notes {
        let quiet = ev
            .rules
            .iter()
            .find(|r| r.record.name == n.rule)
            .and_then(|r| r.quiet.as_ref());
        let subject = Subject {
            rule: &n.rule,
            severity: n.severity,
            labels: &n.labels,
            container: &n.container,
        };
        if hold::is_held(&st.silences, quiet, subject, now) {
            continue;
        }
        let send = hold::release(&n, dropped.contains(&n.alert));
        if !send && n.status == AlertStatus::Firing {
            dropped.insert(n.alert.clone());
        }
        if send && n.status == AlertStatus::Firing {
            st.last_note.insert(n.alert.clone(), now);
        }
        let id = n.id.clone();
        let done = store::blocking(&svc.store, move |s| s.release_notification(&id, send, now));
        match done.await {
            Ok(()) => {
                tracing::info!(notification = %n.id, send, "held notification released");
                woke |= send;
            }
            Err(e) => warn!(error = %e, "releasing a held notification failed"),
        }
    }
    if woke {
        svc.alerts.wake.notify_one();
    }
}

/// Queue a repeat of each announced alert firing for its rule's
/// `repeat_s` since its last notice; none while it is held (the repeat
/// comes at the first tick after).
pub async fn repeat(svc: &Services, ev: &Evaluator, st: &mut State, now: i64) {
    let started = |a: &nextdeploy_shared::protocol::alerts::AlertInfo| {
        nextdeploy_shared::time::parse_rfc3339(&a.started_at).unwrap_or(now)
    };
    let mut due = Vec::new();
    for a in ev.firing.values().filter(|a| a.notified) {
        let Some(rule) = ev.rules.iter().find(|r| r.record.name == a.rule) else {
            continue;
        };
        let last = st
            .last_note
            .get(&a.id)
            .copied()
            .unwrap_or_else(|| started(a));
        if hold::repeat_due(rule.record.extra.repeat_s, last, now) && !held(st, &ev.rules, a, now) {
            due.push(a.clone());
        }
    }
    for a in due {
        let Some(ch) = channel_of_rules(&ev.rules, &a.rule) else {
            continue;
        };
        let id = format!("{}-repeat-{now}", a.id);
        let n = Outbox {
            body: body::webhook(&id, &a),
            id,
            status: AlertStatus::Firing,
            channel: ch,
            created_at: now,
            held: false,
        };
        st.last_note.insert(a.id.clone(), now);
        let alert = a.id.clone();
        match store::blocking(&svc.store, move |s| s.announce_alert(&alert, &n)).await {
            Ok(()) => svc.alerts.wake.notify_one(),
            Err(e) => warn!(error = %e, "queueing a repeat failed"),
        }
    }
}
