//! The alerts' state in the store: each alert firing or resolved, the outbox
//! of its notifications (a row per notification, retried until delivered or
//! past its deadline) and the log of delivery attempts. An alert and its
//! notification are written in one transaction, so a notification exists if
//! and only if the state change that caused it was recorded.

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{
    AlertInfo, AlertStatus, Condition, NotificationInfo, Severity,
};
use nextdeploy_shared::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{StoreError, StoreResult};

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
fn severe_enough(c: &Connection, alert: &str, channel: &str) -> StoreResult<bool> {
    let pair: Option<(String, String)> = c
        .query_row(
            "SELECT a.severity, ch.min_severity FROM alerts a, alert_channels ch \
             WHERE a.id = ?1 AND ch.name = ?2",
            params![alert, channel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match pair {
        Some((sev, min)) => match (Severity::parse(&sev), Severity::parse(&min)) {
            (Some(sev), Some(min)) => sev >= min,
            _ => true,
        },
        None => true,
    })
}

fn queue(c: &Connection, alert: &str, n: &Outbox) -> StoreResult<()> {
    if !severe_enough(c, alert, &n.channel)? {
        return Ok(());
    }
    let state = if n.held { "held" } else { "pending" };
    c.execute(
        "INSERT INTO alert_outbox (id, alert, status, channel, body, created_at, next_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) ON CONFLICT (id) DO NOTHING",
        params![
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
pub fn fire(c: &mut Connection, a: &NewAlert, note: Option<&Outbox>) -> StoreResult<bool> {
    let i = &a.info;
    let tx = c.transaction()?;
    let n = tx.execute(
        "INSERT INTO alerts (id, rule, condition, severity, server, container, labels, status, \
         summary, value, started_at, notified) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'firing', ?8, ?9, ?10, ?11) \
         ON CONFLICT DO NOTHING",
        params![
            i.id,
            i.rule,
            i.condition.as_str(),
            i.severity.as_str(),
            i.server,
            i.container.as_deref().unwrap_or(""),
            serde_json::to_string(&i.labels).map_err(corrupt)?,
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
        queue(&tx, &i.id, note)?;
    }
    tx.commit()?;
    Ok(true)
}

/// [`super::alerts::AlertStore::resolve_alert`] on a connection.
pub fn resolve(c: &mut Connection, id: &str, at: i64, note: Option<&Outbox>) -> StoreResult<bool> {
    let tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = ?2 \
         WHERE id = ?1 AND status = 'firing'",
        params![id, at],
    )?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(note) = note {
        // A resolve is held while its firing notification is: released or
        // dropped with it.
        let held = note.held || super::alert_rules::firing_withheld(&tx, id)?;
        let note = Outbox {
            held,
            ..note.clone()
        };
        queue(&tx, id, &note)?;
    }
    tx.commit()?;
    Ok(true)
}

/// [`super::alerts::AlertStore::announce_alert`] on a connection.
pub fn announce(c: &mut Connection, id: &str, note: &Outbox) -> StoreResult<()> {
    let tx = c.transaction()?;
    tx.execute("UPDATE alerts SET notified = 1 WHERE id = ?1", [id])?;
    queue(&tx, id, note)?;
    tx.commit()?;
    Ok(())
}

/// [`super::alerts::AlertStore::last_resolved`] on a connection.
pub fn last_resolved(
    c: &Connection,
    rule: &str,
    server: &str,
    container: &str,
) -> StoreResult<Option<i64>> {
    Ok(c.query_row(
        "SELECT MAX(resolved_at) FROM alerts WHERE rule = ?1 AND server = ?2 AND container = ?3",
        params![rule, server, container],
        |r| r.get(0),
    )
    .optional()?
    .flatten())
}

const COLS: &str = "id, rule, condition, severity, server, container, labels, status, summary, \
                    value, started_at, resolved_at, notified";

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertInfo> {
    let bad = |_| rusqlite::Error::InvalidQuery;
    let cond: String = r.get(2)?;
    let sev: String = r.get(3)?;
    let container: String = r.get(5)?;
    let labels: String = r.get(6)?;
    let status: String = r.get(7)?;
    let value: String = r.get(9)?;
    Ok(AlertInfo {
        id: r.get(0)?,
        rule: r.get(1)?,
        condition: Condition::parse(&cond).ok_or(rusqlite::Error::InvalidQuery)?,
        severity: Severity::parse(&sev).ok_or(rusqlite::Error::InvalidQuery)?,
        server: r.get(4)?,
        container: (!container.is_empty()).then_some(container),
        labels: serde_json::from_str::<Labels>(&labels).map_err(bad)?,
        status: match status.as_str() {
            "firing" => AlertStatus::Firing,
            _ => AlertStatus::Resolved,
        },
        summary: r.get(8)?,
        value: serde_json::from_str(&value).map_err(bad)?,
        started_at: rfc3339(r.get(10)?),
        resolved_at: r.get::<_, Option<i64>>(11)?.map(rfc3339),
        notified: r.get(12)?,
        notifications: Vec::new(),
    })
}

fn with_notifications(c: &Connection, mut alerts: Vec<AlertInfo>) -> StoreResult<Vec<AlertInfo>> {
    let mut st = c.prepare(
        "SELECT o.id, o.status, o.channel, o.state, o.attempts, \
         (SELECT status FROM alert_deliveries d WHERE d.notification = o.id \
          ORDER BY seq DESC LIMIT 1), \
         (SELECT error FROM alert_deliveries d WHERE d.notification = o.id \
          ORDER BY seq DESC LIMIT 1) \
         FROM alert_outbox o WHERE o.alert = ?1 ORDER BY o.created_at, o.rowid",
    )?;
    for a in &mut alerts {
        let rows = st.query_map([&a.id], |r| {
            let status: String = r.get(1)?;
            Ok(NotificationInfo {
                id: r.get(0)?,
                status: match status.as_str() {
                    "firing" => AlertStatus::Firing,
                    _ => AlertStatus::Resolved,
                },
                channel: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get::<_, i64>(4)?.max(0) as u32,
                last_status: r.get::<_, Option<i64>>(5)?.map(|s| s as u16),
                last_error: r.get(6)?,
            })
        })?;
        a.notifications = rows.collect::<rusqlite::Result<_>>()?;
    }
    Ok(alerts)
}

/// [`super::alerts::AlertStore::firing_alerts`] on a connection.
pub fn firing(c: &Connection) -> StoreResult<Vec<AlertInfo>> {
    let sql = format!("SELECT {COLS} FROM alerts WHERE status = 'firing' ORDER BY started_at");
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([], alert_row)?;
    let alerts = rows.collect::<rusqlite::Result<_>>()?;
    with_notifications(c, alerts)
}

/// [`super::alerts::AlertStore::alert_history`] on a connection.
pub fn history(c: &Connection, since: i64, limit: u32) -> StoreResult<Vec<AlertInfo>> {
    let sql = format!(
        "SELECT {COLS} FROM alerts WHERE started_at >= ?1 \
         ORDER BY started_at DESC, rowid DESC LIMIT ?2"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params![since, limit], alert_row)?;
    let alerts = rows.collect::<rusqlite::Result<_>>()?;
    with_notifications(c, alerts)
}

/// [`super::alerts::AlertStore::due_notifications`] on a connection: an
/// alert's resolve waits until its firing notification is done, so a
/// receiver sees them in order.
pub fn due(c: &Connection, now: i64, limit: u32) -> StoreResult<Vec<Due>> {
    let mut st = c.prepare(
        "SELECT id, channel, body, created_at, attempts FROM alert_outbox o \
         WHERE state = 'pending' AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM alert_outbox p \
         WHERE p.alert = o.alert AND p.state = 'pending' AND p.rowid < o.rowid) \
         ORDER BY next_at, rowid LIMIT ?2",
    )?;
    let rows = st.query_map(params![now, limit], |r| {
        Ok(Due {
            id: r.get(0)?,
            channel: r.get(1)?,
            body: r.get(2)?,
            created_at: r.get(3)?,
            attempts: r.get::<_, i64>(4)?.max(0) as u32,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`super::alerts::AlertStore::record_attempt`] on a connection.
pub fn record_attempt(c: &mut Connection, a: &Attempt) -> StoreResult<()> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO alert_deliveries (notification, at, status, error) VALUES (?1, ?2, ?3, ?4)",
        params![a.id, a.at, a.status, a.error],
    )?;
    let (state, next_at, done_at) = match a.next {
        Next::Delivered => ("delivered", a.at, Some(a.at)),
        Next::RetryAt(t) => ("pending", t, None),
        Next::Failed => ("failed", a.at, Some(a.at)),
    };
    tx.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, state = ?2, next_at = ?3, \
         done_at = ?4 WHERE id = ?1",
        params![a.id, state, next_at, done_at],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(super::super::alerts::SCHEMA).unwrap();
        c.execute_batch(super::super::alerts::CHANNEL_CONFIG)
            .unwrap();
        c
    }

    fn alert(id: &str) -> NewAlert {
        NewAlert {
            info: AlertInfo {
                id: id.into(),
                rule: "crashed".into(),
                condition: Condition::ContainerDied,
                severity: Severity::Warning,
                server: "prod".into(),
                container: Some("web".into()),
                labels: Labels::new(),
                status: AlertStatus::Firing,
                summary: "web died".into(),
                started_at: rfc3339(100),
                resolved_at: None,
                value: json!({"exit_code": 3}),
                notified: true,
                notifications: Vec::new(),
            },
            started_at: 100,
        }
    }

    fn note(id: &str, status: AlertStatus) -> Outbox {
        Outbox {
            id: id.into(),
            status,
            channel: "ops".into(),
            body: "{}".into(),
            created_at: 100,
            held: false,
        }
    }

    #[test]
    fn a_channel_above_the_alerts_severity_gets_no_notification() {
        let mut c = db();
        c.execute(
            "INSERT INTO alert_channels (name, kind, url, created_at, min_severity) \
             VALUES ('ops', 'pagerduty', 'https://x.example/', 0, 'critical')",
            [],
        )
        .unwrap();
        let n = note("a1-firing", AlertStatus::Firing);
        assert!(fire(&mut c, &alert("a1"), Some(&n)).unwrap());
        let a = &firing(&c).unwrap()[0];
        assert!(a.notifications.is_empty(), "a warning is not queued for it");
        assert!(resolve(
            &mut c,
            "a1",
            110,
            Some(&note("a1-resolved", AlertStatus::Resolved))
        )
        .unwrap());
        assert_eq!(history(&c, 0, 10).unwrap()[0].status, AlertStatus::Resolved);
        assert!(due(&c, 1000, 10).unwrap().is_empty());
        let mut crit = alert("a2");
        crit.info.severity = Severity::Critical;
        assert!(fire(&mut c, &crit, Some(&note("a2-firing", AlertStatus::Firing))).unwrap());
        assert_eq!(due(&c, 1000, 10).unwrap().len(), 1, "a critical one is");
    }

    #[test]
    fn one_alert_fires_per_key_and_its_notifications_are_retried_until_delivered() {
        let mut c = db();
        assert!(fire(
            &mut c,
            &alert("a1"),
            Some(&note("a1-firing", AlertStatus::Firing))
        )
        .unwrap());
        assert!(!fire(&mut c, &alert("a2"), None).unwrap(), "one per key");
        let firing_now = firing(&c).unwrap();
        assert_eq!(firing_now.len(), 1);
        assert_eq!(firing_now[0].value["exit_code"], 3);
        assert_eq!(firing_now[0].notifications[0].state, "pending");
        let d = due(&c, 100, 10).unwrap();
        assert_eq!(d.len(), 1);
        let retry = Attempt {
            id: "a1-firing".into(),
            at: 101,
            status: Some(500),
            error: Some("HTTP 500".into()),
            next: Next::RetryAt(103),
        };
        record_attempt(&mut c, &retry).unwrap();
        assert!(due(&c, 102, 10).unwrap().is_empty());
        assert_eq!(due(&c, 103, 10).unwrap()[0].attempts, 1);
        let ok = Attempt {
            status: Some(200),
            error: None,
            next: Next::Delivered,
            at: 103,
            ..retry
        };
        record_attempt(&mut c, &ok).unwrap();
        assert!(due(&c, 1000, 10).unwrap().is_empty());
        assert!(resolve(
            &mut c,
            "a1",
            110,
            Some(&note("a1-resolved", AlertStatus::Resolved))
        )
        .unwrap());
        assert!(!resolve(&mut c, "a1", 111, None).unwrap());
        assert_eq!(
            last_resolved(&c, "crashed", "prod", "web").unwrap(),
            Some(110)
        );
        assert_eq!(last_resolved(&c, "crashed", "prod", "db").unwrap(), None);
        let h = history(&c, 0, 10).unwrap();
        assert_eq!(h[0].status, AlertStatus::Resolved);
        assert_eq!(h[0].notifications.len(), 2);
        assert_eq!(h[0].notifications[0].state, "delivered");
        assert_eq!(h[0].notifications[0].last_status, Some(200));
        assert!(
            fire(&mut c, &alert("a3"), None).unwrap(),
            "a new one after resolve"
        );
    }
}
