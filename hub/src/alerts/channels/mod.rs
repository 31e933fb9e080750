//! Each channel kind's message, made at sending time from the webhook body
//! the outbox keeps (so every retry sends the same): one small module per
//! service, each a function from a [`Note`] to the HTTP [`Request`] its API
//! takes. Email is not HTTP: [`super::email`].
//!
//! Layout:
//! - this file: [`Note`] (the webhook body read back, and the lines every
//!   kind shows), [`Request`], [`request`] (the kind -> module table).
//! - [`setup`]: `alert_channel_add`'s checks, per kind, into a stored
//!   channel.
//! - [`discord`], [`teams`], [`ntfy`], [`gotify`], [`pagerduty`],
//!   [`pushover`]: one service's shape each.

pub mod discord;
pub mod gotify;
pub mod ntfy;
pub mod pagerduty;
pub mod pushover;
pub mod setup;
pub mod teams;

use nextdeploy_shared::protocol::alerts::{AlertStatus, ChannelKind, Severity};
use serde::Deserialize;
use serde_json::Value;

use super::body;
use crate::store::alerts::ChannelRecord;

/// A notification as every kind shows it: the webhook body read back.
#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    /// The notification's id (`<alert_id>-firing`, `<alert_id>-resolved`).
    pub id: String,
    /// The alert's id (PagerDuty's `dedup_key`).
    pub alert_id: String,
    /// The rule.
    pub rule: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The rule's condition.
    pub condition: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The agent.
    pub server: String,
    /// The container, where one applies.
    #[serde(default)]
    pub container: Option<String>,
    /// One line for people.
    pub summary: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once resolved.
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// What was seen (`{"exit_code": 3, "signal": null}`).
    #[serde(default)]
    pub value: Value,
}

impl Note {
    /// Read a webhook body.
    pub fn parse(body: &str) -> Result<Note, String> {
        serde_json::from_str(body).map_err(|e| format!("unreadable notification body: {e}"))
    }

    /// Whether it announces an alert that starts firing.
    pub fn firing(&self) -> bool {
        self.status == AlertStatus::Firing
    }

    /// `FIRING` or `RESOLVED`.
    pub fn word(&self) -> &'static str {
        match self.status {
            AlertStatus::Firing => "FIRING",
            AlertStatus::Resolved => "RESOLVED",
        }
    }

    /// `server` or `server/container`.
    pub fn place(&self) -> String {
        match &self.container {
            Some(c) => format!("{}/{c}", self.server),
            None => self.server.clone(),
        }
    }

    /// `[FIRING critical] died on prod-1/web`: status, severity, rule and
    /// where (an email's subject, a push title).
    pub fn title(&self) -> String {
        format!(
            "[{} {}] {} on {}",
            self.word(),
            self.severity.as_str(),
            self.rule,
            self.place()
        )
    }

    /// `exit_code=3, signal=9`: the value's fields that are set.
    pub fn value_text(&self) -> Option<String> {
        let text = match &self.value {
            Value::Null => return None,
            Value::Object(m) => m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        (!text.is_empty()).then_some(text)
    }

    /// The facts every kind lists, in order, those that apply.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("Status", self.status.as_str().to_string()),
            ("Rule", self.rule.clone()),
            ("Severity", self.severity.as_str().to_string()),
            ("Server", self.server.clone()),
        ];
        if let Some(c) = &self.container {
            f.push(("Container", c.clone()));
        }
        f.push(("Condition", self.condition.clone()));
        if let Some(v) = self.value_text() {
            f.push(("Value", v));
        }
        f.push(("Started", self.started_at.clone()));
        if let Some(r) = &self.resolved_at {
            f.push(("Resolved", r.clone()));
        }
        f
    }

    /// The summary, then one `Fact: value` line each: a plain-text body.
    pub fn text(&self) -> String {
        let mut t = format!("{}\n", self.summary);
        for (k, v) in self.facts() {
            t.push_str(&format!("\n{k}: {v}"));
        }
        t
    }
}

/// One HTTP POST to a receiver.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where.
    pub url: String,
    /// Extra headers (a `Content-Type` here replaces the JSON default).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
}

impl Request {
    /// A JSON POST of `body` to `url`.
    pub fn json(url: &str, body: &Value) -> Request {
        Request {
            url: url.to_string(),
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

/// The request an HTTP kind of channel gets for the webhook body `body`.
pub fn request(ch: &ChannelRecord, body: &str) -> Result<Request, String> {
    let note = || Note::parse(body);
    Ok(match ch.kind {
        ChannelKind::Webhook => Request {
            url: ch.url.clone(),
            headers: ch
                .secret
                .as_deref()
                .map(|s| (body::SIGNATURE_HEADER, body::signature(s, body.as_bytes())))
                .into_iter()
                .collect(),
            body: body.to_string(),
        },
        ChannelKind::Slack => Request {
            url: ch.url.clone(),
            headers: Vec::new(),
            body: body::slack(body),
        },
        ChannelKind::Discord => discord::request(ch, &note()?),
        ChannelKind::Teams => teams::request(ch, &note()?),
        ChannelKind::Ntfy => ntfy::request(ch, &note()?),
        ChannelKind::Gotify => gotify::request(ch, &note()?)?,
        ChannelKind::Pagerduty => pagerduty::request(ch, &note()?)?,
        ChannelKind::Pushover => pushover::request(ch, &note()?)?,
        ChannelKind::Email => return Err("an email channel is not reached over HTTP".into()),
    })
}

/// `s` cut to at most `max` characters (services refuse longer fields),
/// with an ellipsis when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// `s` as an HTTP header value: visible ASCII only (others become `?`),
/// at most 256 characters.
pub fn header_text(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// The secret a kind needs, or why it is missing (a record made by
/// [`setup`] always has it).
fn needed<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, String> {
    v.as_deref()
        .ok_or_else(|| format!("the channel has no {what}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn note(status: &str) -> Note {
        let mut v = json!({
            "id": format!("a1-{status}"), "alert_id": "a1", "rule": "died",
            "status": status, "condition": "container_died", "severity": "critical",
            "server": "prod-1", "container": "web", "labels": {}, "summary": "web exited with code 3",
            "started_at": "2026-12-04T10:00:00Z", "resolved_at": null,
            "value": {"exit_code": 3, "signal": null}
        });
        if status == "resolved" {
            v["resolved_at"] = json!("2026-12-04T10:05:00Z");
        }
        Note::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn a_note_says_status_rule_severity_place_and_value() {
        let n = note("firing");
        assert_eq!(n.title(), "[FIRING critical] died on prod-1/web");
        assert_eq!(n.value_text().as_deref(), Some("exit_code=3"));
        let text = n.text();
        for want in [
            "web exited with code 3",
            "Rule: died",
            "Container: web",
            "Value: exit_code=3",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(!text.contains("Resolved:"));
        assert!(note("resolved")
            .text()
            .contains("Resolved: 2026-12-04T10:05:00Z"));
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(header_text("web ✓\r\n"), "web ???");
    }
}
