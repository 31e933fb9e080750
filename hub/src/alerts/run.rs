//! The evaluator task: owns the [`Evaluator`], feeds it what the queue
//! brings and a tick, and writes each [`Change`] to the store (alert and
//! notification in one transaction) before it updates its own view, so the
//! store is the truth a restarted hub starts from.

use std::sync::Arc;

use nextdeploy_shared::protocol::alerts::{AlertInfo, AlertStatus};
use nextdeploy_shared::time::{now_unix, rfc3339};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::eval::{Change, Evaluator, Firing};
use super::hold::{is_held, Subject};
use super::hold_run::{self, State};
use super::rules::{cooldown_s, Rule};
use super::{body, Input};
use crate::limits::{ALERT_START_GRACE, ALERT_TICK};
use crate::store::alert_state::{NewAlert, Outbox};
use crate::store::{self, SharedStore};
use crate::Services;

/// Load rules, skipping (and logging) any that no longer parse.
async fn load_rules(store: &SharedStore) -> Vec<Rule> {
    match store::blocking(store, |s| s.alert_rules()).await {
        Ok(records) => records
            .into_iter()
            .filter_map(|r| {
                let name = r.name.clone();
                Rule::compile(r)
                    .map_err(|e| warn!(rule = %name, error = %e, "alert rule skipped"))
                    .ok()
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "loading alert rules failed");
            Vec::new()
        }
    }
}

/// Take the store's firing alerts as the evaluator's (at start, and after
/// rules changed: removing a rule resolved its alerts in the store).
async fn load_firing(store: &SharedStore, ev: &mut Evaluator) {
    match store::blocking(store, |s| s.firing_alerts()).await {
        Ok(firing) => {
            ev.firing.clear();
            for mut a in firing {
                a.notifications.clear();
                let container = a.container.clone().unwrap_or_default();
                ev.firing
                    .insert((a.server.clone(), container, a.rule.clone()), a);
            }
        }
        Err(e) => warn!(error = %e, "loading firing alerts failed"),
    }
}

/// The evaluator as the store and the registry say things are now: firing
/// alerts kept, enrolled agents that are not connected offline from
/// [`ALERT_START_GRACE`] on.
async fn start(svc: &Services) -> Evaluator {
    let mut ev = Evaluator::default();
    ev.rules = load_rules(&svc.store).await;
    load_firing(&svc.store, &mut ev).await;
    if let Ok(agents) = store::blocking(&svc.store, |s| s.agent_labels()).await {
        // Agents reconnect to a restarted hub within their backoff: their
        // offline clocks start after it, so a hub restart fires nothing.
        let from = now_unix() + ALERT_START_GRACE.as_secs() as i64;
        for (name, labels) in agents.iter() {
            if svc.registry.get(name).is_none() {
                ev.assume_offline(name, labels, from);
            }
        }
    }
    ev
}

fn note(a: &AlertInfo, channel: &str, at: i64, held: bool) -> Outbox {
    let id = body::notification_id(&a.id, a.status);
    Outbox {
        body: body::webhook(&id, a),
        id,
        status: a.status,
        channel: channel.to_string(),
        created_at: at,
        held,
    }
}

/// Whether a notification of `a` is held now (silence, quiet hours).
pub(super) fn held(st: &State, rules: &[Rule], a: &AlertInfo, now: i64) -> bool {
    let quiet = rules
        .iter()
        .find(|r| r.record.name == a.rule)
        .and_then(|r| r.quiet.as_ref());
    let subject = Subject {
        rule: &a.rule,
        severity: a.severity,
        labels: &a.labels,
        container: a.container.as_deref().unwrap_or(""),
    };
    is_held(&st.silences, quiet, subject, now)
}

async fn fire(svc: &Services, ev: &mut Evaluator, st: &mut State, f: Firing) {
    let Some(rule) = ev.rules.get(f.rule).map(|r| r.record.clone()) else {
        return;
    };
    if ev.firing.contains_key(&f.key) {
        return;
    }
    let (server, container, name) = f.key.clone();
    let (s2, c2, n2) = f.key.clone();
    let last = store::blocking(&svc.store, move |s| s.last_resolved(&n2, &s2, &c2)).await;
    let now = now_unix();
    let quiet = matches!(last, Ok(Some(t)) if now - t < cooldown_s(rule.severity));
    let info = AlertInfo {
        id: hex::encode(rand::random::<[u8; 8]>()),
        rule: name,
        condition: rule.condition,
        severity: rule.severity,
        server,
        container: (!container.is_empty()).then_some(container),
        labels: f.labels,
        status: AlertStatus::Firing,
        summary: f.summary,
        started_at: rfc3339(f.at),
        resolved_at: None,
        value: f.value,
        notified: !quiet,
        notifications: Vec::new(),
    };
    let hold = held(st, &ev.rules, &info, now);
    let n = (!quiet).then(|| note(&info, &rule.channel, now, hold));
    st.maybe_held |= hold && !quiet;
    st.last_note.insert(info.id.clone(), now);
    let a = NewAlert {
        info: info.clone(),
        started_at: f.at,
    };
    match store::blocking(&svc.store, move |s| s.fire_alert(&a, n.as_ref())).await {
        Ok(true) => {
            info!(rule = %info.rule, server = %info.server, container = ?info.container, quiet, "alert firing");
            ev.firing.insert(f.key, info);
            svc.alerts.wake.notify_one();
        }
        Ok(false) => {}
        Err(e) => warn!(error = %e, "recording a firing alert failed"),
    }
}

async fn resolve(
    svc: &Services,
    ev: &mut Evaluator,
    st: &mut State,
    key: (String, String, String),
) {
    let Some(mut a) = ev.firing.get(&key).cloned() else {
        return;
    };
    let now = now_unix();
    a.status = AlertStatus::Resolved;
    a.resolved_at = Some(rfc3339(now));
    let hold = held(st, &ev.rules, &a, now);
    let n = match (a.notified, channel_of_rules(&ev.rules, &a.rule)) {
        (true, Some(ch)) => Some(note(&a, &ch, now, hold)),
        _ => None,
    };
    // The store holds a resolve whose firing notice is held, too.
    st.maybe_held |= n.is_some();
    st.last_note.remove(&a.id);
    let id = a.id.clone();
    match store::blocking(&svc.store, move |s| s.resolve_alert(&id, now, n.as_ref())).await {
        Ok(_) => {
            info!(rule = %a.rule, server = %a.server, container = ?a.container, "alert resolved");
            ev.firing.remove(&key);
            svc.alerts.wake.notify_one();
        }
        Err(e) => warn!(error = %e, "recording a resolved alert failed"),
    }
}

/// Announce quiet alerts that kept firing past their cooldown.
async fn announce_quiet(svc: &Services, ev: &mut Evaluator, st: &mut State, now: i64) {
    let started =
        |a: &AlertInfo| nextdeploy_shared::time::parse_rfc3339(&a.started_at).unwrap_or(now);
    let due: Vec<_> = ev
        .firing
        .iter()
        .filter(|(_, a)| !a.notified && now - started(a) >= cooldown_s(a.severity))
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let Some(a) = ev.firing.get_mut(&key) else {
            continue;
        };
        let Some(ch) = channel_of_rules(&ev.rules, &a.rule) else {
            continue;
        };
        a.notified = true;
        let a = a.clone();
        let hold = held(st, &ev.rules, &a, now);
        st.maybe_held |= hold;
        st.last_note.insert(a.id.clone(), now);
        let (id, n) = (a.id.clone(), note(&a, &ch, now, hold));
        if let Err(e) = store::blocking(&svc.store, move |s| s.announce_alert(&id, &n)).await {
            warn!(error = %e, "announcing an alert failed");
        }
        svc.alerts.wake.notify_one();
    }
}

pub(super) fn channel_of_rules(rules: &[Rule], rule: &str) -> Option<String> {
    rules
        .iter()
        .find(|r| r.record.name == rule)
        .map(|r| r.record.channel.clone())
}

async fn apply(svc: &Services, ev: &mut Evaluator, st: &mut State, changes: Vec<Change>) {
    for c in changes {
        match c {
            Change::Fire(f) => fire(svc, ev, st, f).await,
            Change::Resolve(k) => resolve(svc, ev, st, k).await,
        }
    }
}

/// Reload rules, firing alerts, silences and last notices (at start and
/// when rules or silences changed).
async fn reload(svc: &Services, ev: &mut Evaluator, st: &mut State) {
    ev.rules = load_rules(&svc.store).await;
    load_firing(&svc.store, ev).await;
    st.silences = hold_run::load_silences(&svc.store).await;
    st.last_note = hold_run::load_last_notes(&svc.store).await;
    st.maybe_held = true;
}

/// Reload if rules, channels or silences changed since `version`: checked
/// before every input too, so a change the API answered applies to every
/// event that comes after it.
async fn maybe_reload(svc: &Services, ev: &mut Evaluator, st: &mut State, version: &mut u64) {
    let now = svc.alerts.rules_version();
    if now != *version {
        *version = now;
        reload(svc, ev, st).await;
    }
}

/// Run the evaluator until `cancel`.
pub async fn run(svc: Arc<Services>, mut rx: mpsc::Receiver<Input>, cancel: CancellationToken) {
    let mut ev = start(&svc).await;
    let mut st = State::default();
    let mut version = svc.alerts.rules_version();
    reload(&svc, &mut ev, &mut st).await;
    let mut tick = tokio::time::interval(ALERT_TICK);
    loop {
        let input = tokio::select! {
            _ = cancel.cancelled() => return,
            input = rx.recv() => match input {
                None => return,
                Some(i) => Some(i),
            },
            _ = tick.tick() => None,
        };
        maybe_reload(&svc, &mut ev, &mut st, &mut version).await;
        let changes = match input {
            Some(Input::Event {
                agent,
                labels,
                event,
            }) => ev.event(&agent, &labels, &event, event.time_ms.div_euclid(1000)),
            Some(Input::Snapshot {
                agent,
                labels,
                snap,
            }) => ev.snapshot(&agent, &labels, &snap),
            Some(Input::Deploy {
                agent,
                labels,
                outcome,
            }) => ev.deploy(&agent, &labels, &outcome, now_unix()),
            None => {
                let now = now_unix();
                announce_quiet(&svc, &mut ev, &mut st, now).await;
                hold_run::release_held(&svc, &ev, &mut st, now).await;
                hold_run::repeat(&svc, &ev, &mut st, now).await;
                ev.tick(now)
            }
        };
        apply(&svc, &mut ev, &mut st, changes).await;
        let idle = ev.rules.is_empty() && ev.firing.is_empty();
        if idle && svc.alerts.rules_version() == version {
            svc.alerts.want_snapshots(false);
        } else if !idle {
            svc.alerts.want_snapshots(true);
        }
    }
}
