//! The alerts' state in the store: each alert firing or resolved, the outbox
//! of its notifications (a row per notification, retried until delivered or
//! past its deadline) and the log of delivery attempts. An alert and its
//! notification are written in one transaction, so a notification exists if
//! and only if the state change that caused it was recorded.

use super::sql::{p, tx, Db, Row};
use super::{StoreError, StoreResult};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{
    AlertInfo, AlertStatus, Condition, NotificationInfo, Severity,
};
use nextdeploy_shared::time::rfc3339;

/// An alert as it starts firing.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// The alert itself, `status` firing.
    pub info: AlertInfo,
    /// Unix time it started.
    pub started_at: i64,
}

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Stable id (receivers dedupe on it).
    pub id: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Channel name.
    pub channel: String,
    /// The webhook body, fixed at queueing so every retry sends the same.
    pub body: String,
    /// Unix time queued.
    pub created_at: i64,
    /// Held by a silence or quiet hours: recorded, not sent until released
    /// (see [`super::alert_rules::release`]).
    pub held: bool,
}

/// A notification due for an attempt.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its id.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// The body.
    pub body: String,
    /// Unix time queued (its deadline counts from here).
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: u32,
}

/// What became of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The receiver took it.
    Delivered,
    /// Try again at this Unix time.
    RetryAt(i64),
    /// Past its deadline (or its channel is gone): given up.
    Failed,
}

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The notification.
    pub id: String,
    /// Unix time.
    pub at: i64,
    /// HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// Error, if it failed.
    pub error: Option<String>,
    /// What comes next.
    pub next: Next,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Whether `alert` is severe enough for `channel` (its `min_severity`); a
/// channel that is gone takes it (the sender then logs it as failed).
fn severe_enough(c: &mut dyn Db, alert: &str, channel: &str) -> StoreResult<bool> {
    let pair: Option<(String, String)> = c
        .opt(
            "SELECT a.severity, ch.min_severity FROM alerts a, alert_channels ch \
             WHERE a.id = ?1 AND ch.name = ?2",
            p![alert, channel],
        )?
        .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?)))
        .transpose()?;
    Ok(match pair {
        Some((sev, min)) => match (Severity::parse(&sev), Severity::parse(&min)) {
            (Some(sev), Some(min)) => sev >= min,
            _ => true,
        },
        None => true,
    })
}

fn queue(c: &mut dyn Db, alert: &str, n: &Outbox) -> StoreResult<()> {
    if !severe_enough(c, alert, &n.channel)? {
        return Ok(());
    }
    let state = if n.held { "held" } else { "pending" };
    c.execute(
        "INSERT INTO alert_outbox (id, alert, status, channel, body, created_at, next_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) ON CONFLICT (id) DO NOTHING",
        p![
            n.id,
            alert,
            n.status.as_str(),
            n.channel,
            n.body,
            n.created_at,
            state
        ],
    )?;
    Ok(())
}

/// [`super::alerts::AlertStore::fire_alert`] on a connection.
pub fn fire(c: &mut dyn Db, a: &NewAlert, note: Option<&Outbox>) -> StoreResult<bool> {
    let i = &a.info;
    let labels = serde_json::to_string(&i.labels).map_err(corrupt)?;
    tx(c, |tx| {
        let n = tx.execute(
            "INSERT INTO alerts (id, rule, condition, severity, server, container, labels, status, \
             summary, value, started_at, notified) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'firing', ?8, ?9, ?10, ?11) \
             ON CONFLICT DO NOTHING",
            p![
                i.id,
                i.rule,
                i.condition.as_str(),
                i.severity.as_str(),
                i.server,
                i.container.as_deref().unwrap_or(""),
                labels,
                i.summary,
                i.value.to_string(),
                a.started_at,
                i.notified
            ],
        )?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(note) = note {
            queue(tx, &i.id, note)?;
        }
        Ok(true)
    })
}

/// [`super::alerts::AlertStore::resolve_alert`] on a connection.
pub fn resolve(c: &mut dyn Db, id: &str, at: i64, note: Option<&Outbox>) -> StoreResult<bool> {
    tx(c, |tx| {
        let n = tx.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = ?2 \
             WHERE id = ?1 AND status = 'firing'",
            p![id, at],
        )?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(note) = note {
            // A resolve is held while its firing notification is: released or
            // dropped with it.
            let held = note.held || super::alert_rules::firing_withheld(tx, id)?;
            let note = Outbox {
                held,
                ..note.clone()
            };
            queue(tx, id, &note)?;
        }
        Ok(true)
    })
}

/// [`super::alerts::AlertStore::announce_alert`] on a connection.
pub fn announce(c: &mut dyn Db, id: &str, note: &Outbox) -> StoreResult<()> {
    tx(c, |tx| {
        tx.execute("UPDATE alerts SET notified = 1 WHERE id = ?1", p![id])?;
        queue(tx, id, note)
    })
}

/// [`super::alerts::AlertStore::last_resolved`] on a connection.
pub fn last_resolved(
    c: &mut dyn Db,
    rule: &str,
    server: &str,
    container: &str,
) -> StoreResult<Option<i64>> {
    Ok(c.opt(
        "SELECT MAX(resolved_at) FROM alerts WHERE rule = ?1 AND server = ?2 AND container = ?3",
        p![rule, server, container],
    )?
    .map(|r| r.get::<Option<i64>>(0))
    .transpose()?
    .flatten())
}

const COLS: &str = "id, rule, condition, severity, server, container, labels, status, summary, \
                    value, started_at, resolved_at, notified";

fn status_of(s: &str) -> AlertStatus {
    match s {
        "firing" => AlertStatus::Firing,
        _ => AlertStatus::Resolved,
    }
}

fn alert_row(r: &Row) -> StoreResult<AlertInfo> {
    let bad = |what: &str, v: &str| StoreError::Corrupt(format!("{what} {v:?}"));
    let cond: String = r.get(2)?;
    let sev: String = r.get(3)?;
    let container: String = r.get(5)?;
    let labels: String = r.get(6)?;
    let status: String = r.get(7)?;
    let value: String = r.get(9)?;
    Ok(AlertInfo {
        id: r.get(0)?,
        rule: r.get(1)?,
        condition: Condition::parse(&cond).ok_or_else(|| bad("condition", &cond))?,
        severity: Severity::parse(&sev).ok_or_else(|| bad("severity", &sev))?,
        server: r.get(4)?,
        container: (!container.is_empty()).then_some(container),
        labels: serde_json::from_str::<Labels>(&labels).map_err(corrupt)?,
        status: status_of(&status),
        summary: r.get(8)?,
        value: serde_json::from_str(&value).map_err(corrupt)?,
        started_at: rfc3339(r.get(10)?),
        resolved_at: r.get::<Option<i64>>(11)?.map(rfc3339),
        notified: r.get(12)?,
        notifications: Vec::new(),
    })
}

fn with_notifications(c: &mut dyn Db, mut alerts: Vec<AlertInfo>) -> StoreResult<Vec<AlertInfo>> {
    for a in &mut alerts {
        a.notifications = c.map(
            "SELECT o.id, o.status, o.channel, o.state, o.attempts, \
             (SELECT status FROM alert_deliveries d WHERE d.notification = o.id \
              ORDER BY seq DESC LIMIT 1), \
             (SELECT error FROM alert_deliveries d WHERE d.notification = o.id \
              ORDER BY seq DESC LIMIT 1) \
             FROM alert_outbox o WHERE o.alert = ?1 ORDER BY o.created_at, o.rowid",
            p![a.id],
            |r| {
                Ok(NotificationInfo {
                    id: r.get(0)?,
                    status: status_of(&r.get::<String>(1)?),
                    channel: r.get(2)?,
                    state: r.get(3)?,
                    attempts: r.get::<i64>(4)?.max(0) as u32,
                    last_status: r.get::<Option<i64>>(5)?.map(|s| s as u16),
                    last_error: r.get(6)?,
                })
            },
        )?;
    }
    Ok(alerts)
}

/// [`super::alerts::AlertStore::firing_alerts`] on a connection.
pub fn firing(c: &mut dyn Db) -> StoreResult<Vec<AlertInfo>> {
    let sql = format!("SELECT {COLS} FROM alerts WHERE status = 'firing' ORDER BY started_at");
    let alerts = c.map(&sql, p![], alert_row)?;
    with_notifications(c, alerts)
}

/// [`super::alerts::AlertStore::alert_history`] on a connection.
pub fn history(c: &mut dyn Db, since: i64, limit: u32) -> StoreResult<Vec<AlertInfo>> {
    let sql = format!(
        "SELECT {COLS} FROM alerts WHERE started_at >= ?1 \
         ORDER BY started_at DESC, rowid DESC LIMIT ?2"
    );
    let alerts = c.map(&sql, p![since, limit], alert_row)?;
    with_notifications(c, alerts)
}

/// [`super::alerts::AlertStore::due_notifications`] on a connection: an
/// alert's resolve waits until its firing notification is done, so a
/// receiver sees them in order.
pub fn due(c: &mut dyn Db, now: i64, limit: u32) -> StoreResult<Vec<Due>> {
    c.map(
        "SELECT id, channel, body, created_at, attempts FROM alert_outbox o \
         WHERE state = 'pending' AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM alert_outbox p \
         WHERE p.alert = o.alert AND p.state = 'pending' AND p.rowid < o.rowid) \
         ORDER BY next_at, rowid LIMIT ?2",
        p![now, limit],
        |r| {
            Ok(Due {
                id: r.get(0)?,
                channel: r.get(1)?,
                body: r.get(2)?,
                created_at: r.get(3)?,
                attempts: r.get::<i64>(4)?.max(0) as u32,
            })
        },
    )
}

/// [`super::alerts::AlertStore::record_attempt`] on a connection.
pub fn record_attempt(c: &mut dyn Db, a: &Attempt) -> StoreResult<()> {
    tx(c, |tx| {
        tx.execute(
            "INSERT INTO alert_deliveries (notification, at, status, error) VALUES (?1, ?2, ?3, ?4)",
            p![a.id, a.at, a.status, a.error],
        )?;
        let (state, next_at, done_at) = match a.next {
            Next::Delivered => ("delivered", a.at, Some(a.at)),
            Next::RetryAt(t) => ("pending", t, None),
            Next::Failed => ("failed", a.at, Some(a.at)),
        };
        tx.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, state = ?2, next_at = ?3, \
             done_at = ?4 WHERE id = ?1",
            p![a.id, state, next_at, done_at],
        )?;
        Ok(())
    })
}
