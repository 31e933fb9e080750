//! Alert channels as stored: the URL and a webhook's signing key in their
//! own columns, what other kinds need (tokens, keys, an email channel's SMTP
//! settings) as one JSON object, the least severity each is notified of.
//! Secrets stay in here: [`ChannelRecord::info`] lists none, and `Debug`
//! masks them.

use nextdeploy_shared::protocol::alerts::{AlertChannelInfo, ChannelKind, EmailSettings, Severity};
use nextdeploy_shared::time::rfc3339;
use serde::{Deserialize, Serialize};

/// Migration: what each channel kind needs beyond a URL (tokens, keys, an
/// email channel's SMTP settings) as one JSON object, and the least
/// severity a channel is notified of.
pub const CHANNEL_CONFIG: &str = r#"
ALTER TABLE alert_channels ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE alert_channels ADD COLUMN min_severity TEXT NOT NULL DEFAULT 'info';
"#;

/// A channel's settings beyond its URL, stored as JSON (secrets included;
/// `Debug` masks them).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// ntfy's bearer token, Gotify's app token, Pushover's API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PagerDuty's routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Pushover's user key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<String>,
    /// Email's recipients and SMTP server (`tls` and `from` filled in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
}

impl ChannelConfig {
    /// Whether a secret other than a webhook's signing key is stored.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
            || self.routing_key.is_some()
            || self.user_key.is_some()
            || self.email.as_ref().is_some_and(|e| e.password.is_some())
    }
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |o: &Option<String>| o.as_ref().map(|_| "****");
        f.debug_struct("ChannelConfig")
            .field("token", &mask(&self.token))
            .field("routing_key", &mask(&self.routing_key))
            .field("user_key", &mask(&self.user_key))
            .field("email", &self.email)
            .finish()
    }
}

/// A channel as stored, secrets included (`Debug` masks them).
#[derive(Clone, PartialEq)]
pub struct ChannelRecord {
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: ChannelKind,
    /// Receiver URL (`smtp://host:port` for email).
    pub url: String,
    /// Webhook signing key.
    pub secret: Option<String>,
    /// What the kind needs beyond the URL.
    pub config: ChannelConfig,
    /// Notifications of less severe alerts are not queued for it.
    pub min_severity: Severity,
    /// Unix time.
    pub created_at: i64,
}

impl std::fmt::Debug for ChannelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRecord")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target())
            .field("secret", &self.secret.as_ref().map(|_| "****"))
            .field("config", &self.config)
            .field("min_severity", &self.min_severity)
            .finish()
    }
}

impl ChannelRecord {
    /// Where it goes, without secrets: the URL cut to its origin, or an
    /// email channel's recipients and server.
    pub fn target(&self) -> String {
        if let Some(e) = &self.config.email {
            let tls = e.tls.map_or("", |t| t.as_str());
            return format!("{} via {} ({tls})", e.to.join(", "), e.smtp);
        }
        let origin = self
            .url
            .splitn(4, '/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        format!("{origin}/…")
    }

    /// As listed: no secret.
    pub fn info(&self) -> AlertChannelInfo {
        AlertChannelInfo {
            name: self.name.clone(),
            kind: self.kind,
            target: self.target(),
            signed: self.secret.is_some(),
            has_token: self.config.has_token(),
            min_severity: self.min_severity,
            created_at: rfc3339(self.created_at),
        }
    }
}
