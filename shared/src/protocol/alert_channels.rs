//! Alert channels: where notifications go, each kind with the fields its
//! service needs. Secrets (a webhook's signing key, tokens, routing and user
//! keys, an SMTP password) go in with `alert_channel_add` and never come out:
//! a channel is listed as [`AlertChannelInfo`], and the `Debug` of what
//! carries them prints a mask.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::alerts::Severity;

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A JSON POST of the alert (signed with `secret` when set).
    Webhook,
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// A Discord webhook (`content` and an embed).
    Discord,
    /// A Microsoft Teams workflow or incoming webhook (an Adaptive Card).
    Teams,
    /// An ntfy topic URL (the text as body, `Title`, `Priority`, `Tags`
    /// headers; `token` as a bearer token when set).
    Ntfy,
    /// A Gotify server (`POST /message`, the app `token` as `X-Gotify-Key`).
    Gotify,
    /// PagerDuty's Events API v2 (`routing_key`; the alert's id as
    /// `dedup_key`, so its resolve closes the incident its trigger opened).
    Pagerduty,
    /// Pushover (`token` the application's, `user_key` the recipient's).
    Pushover,
    /// Email over SMTP (`email`).
    Email,
}

impl ChannelKind {
    /// Every kind.
    pub const ALL: [ChannelKind; 9] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Teams,
        ChannelKind::Ntfy,
        ChannelKind::Gotify,
        ChannelKind::Pagerduty,
        ChannelKind::Pushover,
        ChannelKind::Email,
    ];
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Teams => "teams",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Gotify => "gotify",
            ChannelKind::Pagerduty => "pagerduty",
            ChannelKind::Pushover => "pushover",
            ChannelKind::Email => "email",
        }
    }
    /// By wire name.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How the hub talks to an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on localhost or a trusted network only).
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer
    /// (submission, port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl SmtpTls {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// An email channel's recipients and SMTP server.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Recipients (`ops@example.com`), at least one.
    pub to: Vec<String>,
    /// The SMTP server, `host:port`.
    pub smtp: String,
    /// Default `tls` on port 465, else `starttls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    /// The SMTP user, if the server wants AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its password (with `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sender; default `nextdeploy@<the hub's hostname>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSettings")
            .field("to", &self.to)
            .field("smtp", &self.smtp)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("from", &self.from)
            .finish()
    }
}

/// `alert_channel_add` (admin). Which fields a kind takes: `url` (webhook,
/// slack, discord, teams, ntfy, gotify; for pagerduty and pushover it
/// replaces the service's endpoint), `secret` (webhook), `token` (ntfy
/// optional, gotify and pushover required), `routing_key` (pagerduty),
/// `user_key` (pushover), `email` (email). Any other is refused.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelAdd {
    /// A unique name (`ops`).
    pub name: String,
    /// What kind of receiver.
    pub kind: ChannelKind,
    /// The receiver's URL (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhooks: the HMAC-SHA256 key that signs each body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// ntfy: an access token (sent as `Authorization: Bearer`); Gotify: the
    /// application token; Pushover: the application's API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PagerDuty: the Events API v2 integration key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Pushover: the user or group key notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<String>,
    /// Email: recipients and the SMTP server (boxed: most channels have
    /// none, and it would double the size of every `Action`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Box<EmailSettings>>,
    /// Only notifications of alerts at least this severe are queued for it
    /// (default `info`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

impl fmt::Debug for AlertChannelAdd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |o: &Option<String>| o.as_ref().map(|_| "****");
        f.debug_struct("AlertChannelAdd")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(|_| "<url>"))
            .field("secret", &mask(&self.secret))
            .field("token", &mask(&self.token))
            .field("routing_key", &mask(&self.routing_key))
            .field("user_key", &mask(&self.user_key))
            .field("email", &self.email)
            .field("min_severity", &self.min_severity)
            .finish()
    }
}

/// A channel as listed: never a secret; a URL is cut to its origin (its
/// path often holds a token), an email channel shows its recipients and
/// server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertChannelInfo {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ChannelKind,
    /// `scheme://host[:port]/…` of its URL, or for email `a@b, c@d via
    /// host:port (starttls)`.
    pub target: String,
    /// Whether bodies are signed (webhook with a secret).
    pub signed: bool,
    /// Whether a token, routing key, user key or SMTP password is stored.
    #[serde(default)]
    pub has_token: bool,
    /// The least severe alert it is notified of.
    #[serde(default = "least_severe")]
    pub min_severity: Severity,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

fn least_severe() -> Severity {
    Severity::Info
}

/// The answer of `alert_channel_test`: one test message, sent now, not
/// retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelTested {
    /// The channel.
    pub name: String,
    /// Whether the receiver took it (HTTP 2xx, or SMTP 2xx for email).
    pub delivered: bool,
    /// The receiver's answer: the HTTP status, or for email the SMTP
    /// server's reply code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why not, if not (for email the SMTP server's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
