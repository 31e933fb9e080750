//! What holds a notification: a silence matching its alert (any severity),
//! or its rule's quiet hours (not `critical`). A held notification is
//! recorded in the outbox as `held`, not sent; when nothing holds it any
//! more it is released if still relevant (a firing alert still firing, a
//! resolve whose firing notice went out) and dropped otherwise.

use nextdeploy_shared::labels::{Labels, Selector};
use nextdeploy_shared::protocol::alerts::{AlertStatus, Severity};

use crate::store::alert_rules::{HeldNote, SilenceRecord};

/// A daily window, minutes after midnight in a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub start: u32,
    /// End (exclusive); before `start` when the window crosses midnight.
    pub end: u32,
    /// Local time minus UTC, minutes.
    pub offset: i32,
}

fn hhmm(t: &str) -> Result<u32, String> {
    let (h, m) = t
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{t:?}: expected HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("{t:?}: expected HH:MM"))?,
        m.parse().map_err(|_| format!("{t:?}: expected HH:MM"))?,
    );
    if h > 23 || m > 59 {
        return Err(format!("{t:?}: not a time of day"));
    }
    Ok(h * 60 + m)
}

/// `UTC`, `Z` or `+HH:MM` / `-HH:MM` as minutes east of UTC.
pub fn parse_tz(tz: &str) -> Result<i32, String> {
    let tz = tz.trim();
    if tz.eq_ignore_ascii_case("utc") || tz == "Z" || tz.is_empty() {
        return Ok(0);
    }
    let (sign, rest) = match tz.as_bytes().first() {
        Some(b'+') => (1, &tz[1..]),
        Some(b'-') => (-1, &tz[1..]),
        _ => {
            return Err(format!(
                "time zone {tz:?}: give UTC or an offset like +02:00"
            ))
        }
    };
    let m =
        hhmm(rest).map_err(|_| format!("time zone {tz:?}: give UTC or an offset like +02:00"))?;
    if m > 14 * 60 {
        return Err(format!("time zone {tz:?}: offsets go to ±14:00"));
    }
    Ok(sign * m as i32)
}

impl QuietHours {
    /// `22:00-07:00` in `tz` (default UTC).
    pub fn parse(window: &str, tz: Option<&str>) -> Result<QuietHours, String> {
        let (a, b) = window
            .split_once('-')
            .ok_or_else(|| format!("quiet hours {window:?}: expected HH:MM-HH:MM"))?;
        let (start, end) = (hhmm(a)?, hhmm(b)?);
        if start == end {
            return Err(format!("quiet hours {window:?}: empty window"));
        }
        Ok(QuietHours {
            start,
            end,
            offset: parse_tz(tz.unwrap_or("UTC"))?,
        })
    }

    /// Whether Unix time `t` falls inside the window.
    pub fn contains(&self, t: i64) -> bool {
        let local = (t + self.offset as i64 * 60).rem_euclid(86_400) / 60;
        let m = local as u32;
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

/// A silence ready to match.
#[derive(Debug, Clone)]
pub struct Silence {
    /// As stored.
    pub record: SilenceRecord,
    selector: Option<Selector>,
    container: Option<glob::Pattern>,
    rule: Option<glob::Pattern>,
}

impl Silence {
    /// Parse a stored silence's matchers.
    pub fn compile(record: SilenceRecord) -> Result<Silence, String> {
        let pattern = |p: &Option<String>| {
            p.as_deref()
                .map(glob::Pattern::new)
                .transpose()
                .map_err(|e| e.to_string())
        };
        Ok(Silence {
            selector: record
                .selector
                .as_deref()
                .map(Selector::parse)
                .transpose()?,
            container: pattern(&record.container)?,
            rule: pattern(&record.rule)?,
            record,
        })
    }

    /// Whether it holds, at `now`, an alert of `rule` on a server with
    /// `labels` and `container` (`""` for none).
    pub fn matches(&self, now: i64, rule: &str, labels: &Labels, container: &str) -> bool {
        self.record.starts_at <= now
            && now < self.record.ends_at
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
            && self
                .container
                .as_ref()
                .is_none_or(|p| !container.is_empty() && p.matches(container))
            && self.rule.as_ref().is_none_or(|p| p.matches(rule))
    }
}

/// What an alert's notification is judged on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Rule name.
    pub rule: &'a str,
    /// Severity.
    pub severity: Severity,
    /// The agent's labels.
    pub labels: &'a Labels,
    /// Container, `""` for none.
    pub container: &'a str,
}

/// Whether a notification of `s` is held at `now`: by a silence, or by its
/// rule's quiet hours unless critical.
pub fn is_held(silences: &[Silence], quiet: Option<&QuietHours>, s: Subject<'_>, now: i64) -> bool {
    silences
        .iter()
        .any(|x| x.matches(now, s.rule, s.labels, s.container))
        || (s.severity != Severity::Critical && quiet.is_some_and(|q| q.contains(now)))
}

/// What to do with a held notification nothing holds any more: `true`
/// send it, `false` drop it. A firing notice goes if its alert still
/// fires; a resolve goes unless its alert's firing notice was dropped
/// (`firing_dropped`): a receiver never hears of an alert that fired and
/// resolved while held.
pub fn release(n: &HeldNote, firing_dropped: bool) -> bool {
    match n.status {
        AlertStatus::Firing => n.alert_firing,
        AlertStatus::Resolved => !firing_dropped,
    }
}

/// Whether a repeat of an alert last notified at `last` is due at `now`.
pub fn repeat_due(repeat_s: Option<u64>, last: i64, now: i64) -> bool {
    repeat_s.is_some_and(|r| r > 0 && now - last >= r as i64)
}

#[cfg(test)]
#[path = "hold_tests.rs"]
mod tests;
