//! Alerts in the store, the rule side beyond [`super::alerts`]: the rules'
//! extra settings (threshold, restart window, repeat, quiet hours), rules
//! updated in place and `alert_apply` in one transaction, silences, and the
//! notifications held by a silence or quiet hours (outbox rows in state
//! `held`, released to `pending` or `dropped`).

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alert_rules::SilenceInfo;
use nextdeploy_shared::protocol::alerts::{AlertStatus, Severity};
use nextdeploy_shared::time::rfc3339;

use super::alerts::{add_channel, ChannelRecord, RuleExtra, RuleRecord};
use super::sql::{p, tx, Db, Row};
use super::{StoreError, StoreResult};

/// Schema (applied as a migration after [`super::alerts::SCHEMA`]).
pub const SCHEMA: &str = r#"
ALTER TABLE alert_rules ADD COLUMN above REAL;
ALTER TABLE alert_rules ADD COLUMN count INTEGER;
ALTER TABLE alert_rules ADD COLUMN within_s INTEGER;
ALTER TABLE alert_rules ADD COLUMN repeat_s INTEGER;
ALTER TABLE alert_rules ADD COLUMN quiet_hours TEXT;
ALTER TABLE alert_rules ADD COLUMN quiet_tz TEXT;
CREATE TABLE alert_silences (
    id         TEXT PRIMARY KEY,
    selector   TEXT,
    container  TEXT,
    rule       TEXT,
    comment    TEXT,
    created_by TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL
);
CREATE INDEX alert_silences_by_end ON alert_silences (ends_at);
"#;

/// The store's rule side of alerts (a part of [`super::Store`]).
pub trait AlertRuleStore {
    /// Update a rule in place; false if none.
    fn update_alert_rule(&self, r: &RuleRecord) -> StoreResult<bool>;
    /// Write an `alert_apply` plan at `at`, all or nothing.
    fn apply_alerts(&self, p: &ApplyPlan, at: i64) -> StoreResult<()>;
    /// Add a silence.
    fn add_silence(&self, s: &SilenceRecord) -> StoreResult<()>;
    /// Silences that end after `at`.
    fn silences(&self, at: i64) -> StoreResult<Vec<SilenceRecord>>;
    /// End a silence at `at`; `None` if there is none of that id.
    fn end_silence(&self, id: &str, at: i64) -> StoreResult<Option<SilenceRecord>>;
    /// Held notifications, oldest first.
    fn held_notifications(&self) -> StoreResult<Vec<HeldNote>>;
    /// Release (`send`) or drop a held notification.
    fn release_notification(&self, id: &str, send: bool, at: i64) -> StoreResult<()>;
    /// When each firing alert was last notified.
    fn last_notes(&self) -> StoreResult<Vec<(String, i64)>>;
}

/// [`RuleExtra`] from a row's columns `at..at + 6`.
pub fn extra_of(r: &Row, at: usize) -> StoreResult<RuleExtra> {
    Ok(RuleExtra {
        above: r.get(at)?,
        count: r.get::<Option<i64>>(at + 1)?.map(|n| n.max(0) as u32),
        within_s: r.get::<Option<i64>>(at + 2)?.map(|n| n.max(0) as u64),
        repeat_s: r.get::<Option<i64>>(at + 3)?.map(|n| n.max(0) as u64),
        quiet_hours: r.get(at + 4)?,
        quiet_tz: r.get(at + 5)?,
    })
}

/// Write a rule's [`RuleExtra`].
pub fn set_extra(c: &mut dyn Db, name: &str, x: &RuleExtra) -> StoreResult<()> {
    c.execute(
        "UPDATE alert_rules SET above = ?2, count = ?3, within_s = ?4, repeat_s = ?5, \
         quiet_hours = ?6, quiet_tz = ?7 WHERE name = ?1",
        p![
            name,
            x.above,
            x.count.map(i64::from),
            x.within_s.map(|n| n as i64),
            x.repeat_s.map(|n| n as i64),
            x.quiet_hours,
            x.quiet_tz
        ],
    )?;
    Ok(())
}

/// Update a rule in place (its firing alerts stay); false if none.
pub fn update_rule(c: &mut dyn Db, r: &RuleRecord) -> StoreResult<bool> {
    if super::alerts::channel(c, &r.channel)?.is_none() {
        return Err(StoreError::Conflict(format!(
            "no channel named {:?}; add it first",
            r.channel
        )));
    }
    let n = c.execute(
        "UPDATE alert_rules SET condition = ?2, for_s = ?3, selector = ?4, container = ?5, \
         severity = ?6, channel = ?7 WHERE name = ?1",
        p![
            r.name,
            r.condition.as_str(),
            r.for_s as i64,
            r.selector,
            r.container,
            r.severity.as_str(),
            r.channel
        ],
    )?;
    set_extra(c, &r.name, &r.extra)?;
    Ok(n > 0)
}

/// What `alert_apply` writes, decided by the API.
#[derive(Debug, Default)]
pub struct ApplyPlan {
    /// Channels to add.
    pub add_channels: Vec<ChannelRecord>,
    /// Channels to replace (same name).
    pub replace_channels: Vec<ChannelRecord>,
    /// Rules to add.
    pub add_rules: Vec<RuleRecord>,
    /// Rules to update.
    pub update_rules: Vec<RuleRecord>,
    /// Rules to remove (their firing alerts resolve without a notification).
    pub remove_rules: Vec<String>,
}

/// Write an [`ApplyPlan`] in one transaction: all of it or nothing.
pub fn apply(c: &mut dyn Db, p: &ApplyPlan, at: i64) -> StoreResult<()> {
    tx(c, |tx| {
        for ch in &p.add_channels {
            add_channel(tx, ch)?;
        }
        for ch in &p.replace_channels {
            // Delete and add through the channel code, so every column it
            // knows is written; rules name channels, no foreign key to break.
            tx.execute("DELETE FROM alert_channels WHERE name = ?1", p![ch.name])?;
            add_channel(tx, ch)?;
        }
        for r in &p.remove_rules {
            tx.execute("DELETE FROM alert_rules WHERE name = ?1", p![r])?;
            tx.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = ?2 \
                 WHERE rule = ?1 AND status = 'firing'",
                p![r, at],
            )?;
        }
        for r in &p.update_rules {
            update_rule(tx, r)?;
        }
        for r in &p.add_rules {
            if super::alerts::channel(tx, &r.channel)?.is_none() {
                return Err(StoreError::Conflict(format!(
                    "no channel named {:?}; add it first",
                    r.channel
                )));
            }
            add_rule_raw(tx, r)?;
        }
        Ok(())
    })
}

/// Insert `r` and its settings (inside the caller's transaction); a taken
/// name is a conflict.
pub(crate) fn add_rule_raw(c: &mut dyn Db, r: &RuleRecord) -> StoreResult<()> {
    let n = c.execute(
        "INSERT INTO alert_rules (name, condition, for_s, selector, container, severity, \
         channel, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (name) DO NOTHING",
        p![
            r.name,
            r.condition.as_str(),
            r.for_s as i64,
            r.selector,
            r.container,
            r.severity.as_str(),
            r.channel,
            r.created_at
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "a rule named {:?} exists",
            r.name
        )));
    }
    set_extra(c, &r.name, &r.extra)
}

/// A silence as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRecord {
    /// Its id.
    pub id: String,
    /// Agent selector.
    pub selector: Option<String>,
    /// Container glob.
    pub container: Option<String>,
    /// Rule glob.
    pub rule: Option<String>,
    /// Why.
    pub comment: Option<String>,
    /// Token name.
    pub created_by: String,
    /// Unix time.
    pub starts_at: i64,
    /// Unix time.
    pub ends_at: i64,
}

impl SilenceRecord {
    /// As listed at `now`.
    pub fn info(&self, now: i64) -> SilenceInfo {
        SilenceInfo {
            id: self.id.clone(),
            selector: self.selector.clone(),
            container: self.container.clone(),
            rule: self.rule.clone(),
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
            starts_at: rfc3339(self.starts_at),
            ends_at: rfc3339(self.ends_at),
            active: self.starts_at <= now && now < self.ends_at,
        }
    }
}

/// Add a silence.
pub fn add_silence(c: &mut dyn Db, s: &SilenceRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO alert_silences (id, selector, container, rule, comment, created_by, \
         starts_at, ends_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        p![
            s.id,
            s.selector,
            s.container,
            s.rule,
            s.comment,
            s.created_by,
            s.starts_at,
            s.ends_at
        ],
    )?;
    Ok(())
}

fn silence_row(r: &Row) -> StoreResult<SilenceRecord> {
    Ok(SilenceRecord {
        id: r.get(0)?,
        selector: r.get(1)?,
        container: r.get(2)?,
        rule: r.get(3)?,
        comment: r.get(4)?,
        created_by: r.get(5)?,
        starts_at: r.get(6)?,
        ends_at: r.get(7)?,
    })
}

const SILENCE_COLS: &str = "id, selector, container, rule, comment, created_by, starts_at, ends_at";

/// Silences that end after `at`, soonest end first.
pub fn silences(c: &mut dyn Db, at: i64) -> StoreResult<Vec<SilenceRecord>> {
    let sql = format!(
        "SELECT {SILENCE_COLS} FROM alert_silences WHERE ends_at > ?1 ORDER BY ends_at, id"
    );
    c.map(&sql, p![at], silence_row)
}

/// End a silence at `at` (if it ends later); `None` if there is no such id.
pub fn end_silence(c: &mut dyn Db, id: &str, at: i64) -> StoreResult<Option<SilenceRecord>> {
    c.execute(
        "UPDATE alert_silences SET ends_at = ?2 WHERE id = ?1 AND ends_at > ?2",
        p![id, at],
    )?;
    let sql = format!("SELECT {SILENCE_COLS} FROM alert_silences WHERE id = ?1");
    c.opt(&sql, p![id])?.as_ref().map(silence_row).transpose()
}

/// A held notification and what its alert is now.
#[derive(Debug, Clone)]
pub struct HeldNote {
    /// The notification.
    pub id: String,
    /// Firing or resolved (a repeat is `firing`).
    pub status: AlertStatus,
    /// The alert.
    pub alert: String,
    /// Whether the alert fires still.
    pub alert_firing: bool,
    /// The alert's rule.
    pub rule: String,
    /// Its severity.
    pub severity: Severity,
    /// Its server.
    pub server: String,
    /// Its container (`""` for none).
    pub container: String,
    /// The agent's labels when it fired.
    pub labels: Labels,
}

/// Held notifications, oldest first.
pub fn held(c: &mut dyn Db) -> StoreResult<Vec<HeldNote>> {
    c.map(
        "SELECT o.id, o.status, a.id, a.status, a.rule, a.severity, a.server, a.container, \
         a.labels FROM alert_outbox o JOIN alerts a ON a.id = o.alert \
         WHERE o.state = 'held' ORDER BY o.rowid",
        p![],
        |r| {
            let status: String = r.get(1)?;
            let alert_status: String = r.get(3)?;
            let sev: String = r.get(5)?;
            let labels: String = r.get(8)?;
            Ok(HeldNote {
                id: r.get(0)?,
                status: match status.as_str() {
                    "firing" => AlertStatus::Firing,
                    _ => AlertStatus::Resolved,
                },
                alert: r.get(2)?,
                alert_firing: alert_status == "firing",
                rule: r.get(4)?,
                severity: Severity::parse(&sev).unwrap_or_default(),
                server: r.get(6)?,
                container: r.get(7)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
            })
        },
    )
}

/// Release a held notification (`send`: queue it now, its delivery
/// deadline counting from now; else drop it, recorded as `dropped`, never
/// sent). A resolve whose alert's firing
/// notification was dropped is dropped too.
pub fn release(c: &mut dyn Db, id: &str, send: bool, at: i64) -> StoreResult<()> {
    let (state, done) = if send {
        ("pending", None)
    } else {
        ("dropped", Some(at))
    };
    c.execute(
        "UPDATE alert_outbox SET state = ?2, next_at = ?3, done_at = ?4, \
         created_at = CASE WHEN CAST(?4 AS BIGINT) IS NULL THEN ?3 ELSE created_at END \
         WHERE id = ?1 AND state = 'held'",
        p![id, state, at, done],
    )?;
    Ok(())
}

/// Whether an alert has a firing notification that was dropped or is held.
pub fn firing_withheld(c: &mut dyn Db, alert: &str) -> StoreResult<bool> {
    c.one(
        "SELECT COUNT(*) FROM alert_outbox WHERE alert = ?1 AND status = 'firing' \
         AND state IN ('held', 'dropped') AND id = alert || '-firing'",
        p![alert],
    )?
    .get::<i64>(0)
    .map(|n| n > 0)
}

/// When each firing alert was last notified (for `repeat_s`).
pub fn last_notes(c: &mut dyn Db) -> StoreResult<Vec<(String, i64)>> {
    c.map(
        "SELECT o.alert, MAX(o.created_at) FROM alert_outbox o JOIN alerts a ON a.id = o.alert \
         WHERE a.status = 'firing' AND o.status = 'firing' GROUP BY o.alert",
        p![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
