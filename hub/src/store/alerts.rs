//! Alerts in the store: channels and rules (what admins manage), and their
//! trait [`AlertStore`]. The alerts themselves, their notifications outbox
//! and delivery log are in [`super::alert_state`].

use nextdeploy_shared::protocol::alerts::{AlertInfo, AlertStatus};
use nextdeploy_shared::protocol::alerts::{AlertRuleInfo, ChannelKind, Condition, Severity};
use nextdeploy_shared::time::rfc3339;

pub use super::alert_channels::{ChannelConfig, ChannelRecord, CHANNEL_CONFIG};
use super::alert_state::{Attempt, Due, NewAlert, Outbox};
use super::sql::{p, tx, Db, Row};
use super::{StoreError, StoreResult};

/// Schema (applied as a migration). An alert is keyed by rule, server and
/// container (`''` where none applies, so the unique index sees it); at
/// most one of a key fires at a time.
pub const SCHEMA: &str = r#"
CREATE TABLE alert_channels (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE alert_rules (
    name       TEXT PRIMARY KEY,
    condition  TEXT NOT NULL,
    for_s      INTEGER NOT NULL,
    selector   TEXT,
    container  TEXT,
    severity   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    condition   TEXT NOT NULL,
    severity    TEXT NOT NULL,
    server      TEXT NOT NULL,
    container   TEXT NOT NULL,
    labels      TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    value       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    notified    INTEGER NOT NULL
);
CREATE UNIQUE INDEX alerts_firing ON alerts (rule, server, container) WHERE status = 'firing';
CREATE INDEX alerts_by_key ON alerts (rule, server, container, started_at);
CREATE INDEX alerts_by_start ON alerts (started_at);
CREATE TABLE alert_outbox (
    id         TEXT PRIMARY KEY,
    alert      TEXT NOT NULL,
    status     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending',
    done_at    INTEGER
);
CREATE INDEX alert_outbox_due ON alert_outbox (state, next_at);
CREATE INDEX alert_outbox_by_alert ON alert_outbox (alert);
CREATE TABLE alert_deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    notification TEXT NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT
);
CREATE INDEX alert_deliveries_by_notification ON alert_deliveries (notification);
"#;

/// A rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// Unique name.
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// Seconds the condition must hold.
    pub for_s: u64,
    /// Agent selector text.
    pub selector: Option<String>,
    /// Container name glob.
    pub container: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Channel notified.
    pub channel: String,
    /// Unix time.
    pub created_at: i64,
    /// The rule's other settings (threshold, repeat, quiet hours), stored
    /// by [`super::alert_rules`].
    pub extra: RuleExtra,
}

/// A rule's settings beyond the first four conditions'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleExtra {
    /// `cpu`, `memory`: threshold, percent.
    pub above: Option<f64>,
    /// `restart_loop`: restarts.
    pub count: Option<u32>,
    /// `restart_loop`: window, seconds.
    pub within_s: Option<u64>,
    /// Re-notify every this many seconds.
    pub repeat_s: Option<u64>,
    /// `22:00-07:00`.
    pub quiet_hours: Option<String>,
    /// `UTC`, `+02:00`.
    pub quiet_tz: Option<String>,
}

impl RuleRecord {
    /// As listed.
    pub fn info(&self) -> AlertRuleInfo {
        AlertRuleInfo {
            name: self.name.clone(),
            condition: self.condition,
            for_s: self.for_s,
            selector: self.selector.clone(),
            container: self.container.clone(),
            severity: self.severity,
            channel: self.channel.clone(),
            created_at: rfc3339(self.created_at),
            above: self.extra.above,
            count: self.extra.count,
            within_s: self.extra.within_s,
            repeat_s: self.extra.repeat_s,
            quiet_hours: self.extra.quiet_hours.clone(),
            quiet_tz: self.extra.quiet_tz.clone(),
            scope: None,
        }
    }
}

/// The store's alerts (a part of [`super::Store`]).
pub trait AlertStore {
    /// Add a channel; `Conflict` if the name is taken.
    fn add_alert_channel(&self, c: &ChannelRecord) -> StoreResult<()>;
    /// Channels, by name.
    fn alert_channels(&self) -> StoreResult<Vec<ChannelRecord>>;
    /// One channel.
    fn alert_channel(&self, name: &str) -> StoreResult<Option<ChannelRecord>>;
    /// Remove a channel; `Conflict` while a rule uses it; false if none.
    fn remove_alert_channel(&self, name: &str) -> StoreResult<bool>;
    /// Add a rule; `Conflict` if the name is taken or its channel missing.
    fn add_alert_rule(&self, r: &RuleRecord) -> StoreResult<()>;
    /// Rules, by name.
    fn alert_rules(&self) -> StoreResult<Vec<RuleRecord>>;
    /// Remove a rule and resolve its firing alerts at `at` without a
    /// notification; false if none.
    fn remove_alert_rule(&self, name: &str, at: i64) -> StoreResult<bool>;
    /// Record an alert that starts firing, and its notification if any, in
    /// one transaction; false if one of its key fires already.
    fn fire_alert(&self, a: &NewAlert, note: Option<&Outbox>) -> StoreResult<bool>;
    /// Resolve a firing alert at `at`, and queue its notification if any;
    /// false if it was not firing.
    fn resolve_alert(&self, id: &str, at: i64, note: Option<&Outbox>) -> StoreResult<bool>;
    /// Queue the firing notification of an alert that was not announced.
    fn announce_alert(&self, id: &str, note: &Outbox) -> StoreResult<()>;
    /// When the newest resolved alert of a key resolved.
    fn last_resolved(&self, rule: &str, server: &str, container: &str) -> StoreResult<Option<i64>>;
    /// Alerts firing now, oldest first, with their notifications.
    fn firing_alerts(&self) -> StoreResult<Vec<AlertInfo>>;
    /// Alerts that started at or after `since`, newest first.
    fn alert_history(&self, since: i64, limit: u32) -> StoreResult<Vec<AlertInfo>>;
    /// Up to `limit` pending notifications due at `now`, oldest first.
    fn due_notifications(&self, now: i64, limit: u32) -> StoreResult<Vec<Due>>;
    /// Log one delivery attempt and move the notification on.
    fn record_attempt(&self, a: &Attempt) -> StoreResult<()>;
}

fn bad(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {v:?}"))
}

fn channel_row(r: &Row) -> StoreResult<ChannelRecord> {
    let kind: String = r.get(1)?;
    let config: String = r.get(5)?;
    let min: String = r.get(6)?;
    Ok(ChannelRecord {
        name: r.get(0)?,
        kind: ChannelKind::parse(&kind).ok_or_else(|| bad("channel kind", &kind))?,
        url: r.get(2)?,
        secret: r.get(3)?,
        created_at: r.get(4)?,
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        min_severity: Severity::parse(&min).ok_or_else(|| bad("severity", &min))?,
    })
}

/// [`AlertStore::add_alert_channel`] on a connection.
pub fn add_channel(c: &mut dyn Db, ch: &ChannelRecord) -> StoreResult<()> {
    let config =
        serde_json::to_string(&ch.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = c.execute(
        "INSERT INTO alert_channels (name, kind, url, secret, created_at, config, min_severity) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO NOTHING",
        p![
            ch.name,
            ch.kind.as_str(),
            ch.url,
            ch.secret,
            ch.created_at,
            config,
            ch.min_severity.as_str()
        ],
    )?;
    match n {
        0 => Err(StoreError::Conflict(format!(
            "a channel named {:?} exists",
            ch.name
        ))),
        _ => Ok(()),
    }
}

const CHANNEL_COLS: &str = "name, kind, url, secret, created_at, config, min_severity";

/// [`AlertStore::alert_channels`] on a connection.
pub fn channels(c: &mut dyn Db) -> StoreResult<Vec<ChannelRecord>> {
    let sql = format!("SELECT {CHANNEL_COLS} FROM alert_channels ORDER BY name");
    c.map(&sql, p![], channel_row)
}

/// [`AlertStore::alert_channel`] on a connection.
pub fn channel(c: &mut dyn Db, name: &str) -> StoreResult<Option<ChannelRecord>> {
    let sql = format!("SELECT {CHANNEL_COLS} FROM alert_channels WHERE name = ?1");
    c.opt(&sql, p![name])?.as_ref().map(channel_row).transpose()
}

/// [`AlertStore::remove_alert_channel`] on a connection.
pub fn remove_channel(c: &mut dyn Db, name: &str) -> StoreResult<bool> {
    tx(c, |tx| {
        let user: Option<String> = tx
            .opt(
                "SELECT name FROM alert_rules WHERE channel = ?1 ORDER BY name LIMIT 1",
                p![name],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        if let Some(rule) = user {
            return Err(StoreError::Conflict(format!(
                "channel {name:?} is used by rule {rule:?}; remove the rule first"
            )));
        }
        let n = tx.execute("DELETE FROM alert_channels WHERE name = ?1", p![name])?;
        Ok(n > 0)
    })
}

fn rule_row(r: &Row) -> StoreResult<RuleRecord> {
    let cond: String = r.get(1)?;
    let sev: String = r.get(5)?;
    Ok(RuleRecord {
        name: r.get(0)?,
        condition: Condition::parse(&cond).ok_or_else(|| bad("condition", &cond))?,
        for_s: r.get::<i64>(2)?.max(0) as u64,
        selector: r.get(3)?,
        container: r.get(4)?,
        severity: Severity::parse(&sev).ok_or_else(|| bad("severity", &sev))?,
        channel: r.get(6)?,
        created_at: r.get(7)?,
        extra: super::alert_rules::extra_of(r, 8)?,
    })
}

/// [`AlertStore::add_alert_rule`] on a connection.
pub fn add_rule(c: &mut dyn Db, r: &RuleRecord) -> StoreResult<()> {
    tx(c, |tx| {
        if channel(tx, &r.channel)?.is_none() {
            return Err(StoreError::Conflict(format!(
                "no channel named {:?}; add it first",
                r.channel
            )));
        }
        super::alert_rules::add_rule_raw(tx, r)
    })
}

/// [`AlertStore::alert_rules`] on a connection.
pub fn rules(c: &mut dyn Db) -> StoreResult<Vec<RuleRecord>> {
    c.map(
        "SELECT name, condition, for_s, selector, container, severity, channel, created_at, \
         above, count, within_s, repeat_s, quiet_hours, quiet_tz FROM alert_rules ORDER BY name",
        p![],
        rule_row,
    )
}

/// [`AlertStore::remove_alert_rule`] on a connection.
pub fn remove_rule(c: &mut dyn Db, name: &str, at: i64) -> StoreResult<bool> {
    tx(c, |tx| {
        let n = tx.execute("DELETE FROM alert_rules WHERE name = ?1", p![name])?;
        tx.execute(
            "UPDATE alerts SET status = ?2, resolved_at = ?3 WHERE rule = ?1 AND status = 'firing'",
            p![name, AlertStatus::Resolved.as_str(), at],
        )?;
        Ok(n > 0)
    })
}
