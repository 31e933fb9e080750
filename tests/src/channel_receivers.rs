//! The receivers of one hub's alert channels, one of every kind (HTTP
//! receivers for Discord, Teams, ntfy, Gotify, PagerDuty, Pushover and a
//! critical-only webhook; an SMTP server for email), the channels that
//! point at them, and how each service's shape says `firing` or
//! `resolved`. Used by tests/tests/alert_channels.rs. Its helpers panic on
//! a broken receiver or hub: that fails the test that uses them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use crate::hub::Hub;
use crate::receiver::{Received, Receiver};
use crate::smtp::{Mail, SmtpServer};

/// Secrets each channel is given; none may come out of `channel list` or
/// the hub's log.
pub const NTFY_TOKEN: &str = "tk_ntfysecret0001";
pub const GOTIFY_TOKEN: &str = "AgotifyAppTok.0002";
pub const PD_KEY: &str = "R0UTINGKEYsecret00000000000003";
pub const PUSH_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
pub const PUSH_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
pub const SECRETS: [&str; 6] = [
    NTFY_TOKEN,
    GOTIFY_TOKEN,
    PD_KEY,
    PUSH_TOKEN,
    PUSH_USER,
    SmtpServer::PASSWORD,
];

/// `nextdeploy <words> <extra>` as admin, JSON; `words` split on spaces.
pub fn run(hub: &Hub, words: &str, extra: &[&str]) -> Value {
    let mut args: Vec<&str> = words.split_whitespace().collect();
    args.extend(extra);
    hub.cli_json(&args).unwrap()
}

/// The receivers of one hub's channels.
pub struct Receivers {
    pub discord: Receiver,
    pub teams: Receiver,
    pub ntfy: Receiver,
    pub gotify: Receiver,
    pub pagerduty: Receiver,
    pub pushover: Receiver,
    pub picky: Receiver,
    pub smtp: SmtpServer,
}

impl Receivers {
    pub fn start() -> Receivers {
        let r = Receiver::start;
        Receivers {
            discord: r(),
            teams: r(),
            ntfy: r(),
            gotify: r(),
            pagerduty: r(),
            pushover: r(),
            picky: r(),
            smtp: SmtpServer::start(),
        }
    }

    /// A channel of each kind, named after it (`pd`, `push` and `mail` for
    /// PagerDuty, Pushover and email), and `picky`, a webhook for critical
    /// alerts only; `mail` goes to `to`.
    pub fn add_channels(&self, hub: &Hub, to: &str) {
        let loopback = "http://127.0.0.1";
        for line in [
            format!("discord --discord {}", self.discord.url()),
            format!("teams --teams {}", self.teams.url()),
            format!(
                "ntfy --ntfy {} --channel-token {NTFY_TOKEN}",
                self.ntfy.url()
            ),
            format!(
                "gotify --gotify {loopback}:{}/gotify --channel-token {GOTIFY_TOKEN}",
                self.gotify.port
            ),
            format!(
                "pd --pagerduty {PD_KEY} --url {loopback}:{}/v2/enqueue --min-severity critical",
                self.pagerduty.port
            ),
            format!(
                "push --pushover {PUSH_USER} --channel-token {PUSH_TOKEN} \
                 --url {loopback}:{}/1/messages.json",
                self.pushover.port
            ),
            format!(
                "mail --email {to} --smtp {} --smtp-tls none",
                self.smtp.address()
            ),
            format!(
                "picky --webhook {} --min-severity critical",
                self.picky.url()
            ),
        ] {
            run(hub, &format!("alert channel add {line}"), &[]);
        }
    }
}

/// `firing` / `resolved` from a title such as `[FIRING warning] r on s/c`.
pub fn from_title(title: &str) -> String {
    let word = title.strip_prefix('[').and_then(|t| t.split(' ').next());
    word.unwrap_or("").to_ascii_lowercase()
}

pub fn json_str(r: &Received, pointer: &str) -> String {
    let v = r.json();
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Pushover's form field `k`.
pub fn field(r: &Received, k: &str) -> String {
    let mut pairs = form_urlencoded::parse(&r.body);
    pairs
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn discord_status(r: &Received) -> String {
    from_title(&json_str(r, "/content"))
}
pub fn teams_status(r: &Received) -> String {
    from_title(&json_str(r, "/attachments/0/content/body/0/text"))
}
pub fn ntfy_status(r: &Received) -> String {
    from_title(r.header("title"))
}
pub fn gotify_status(r: &Received) -> String {
    from_title(&json_str(r, "/title"))
}
pub fn pagerduty_status(r: &Received) -> String {
    match json_str(r, "/event_action").as_str() {
        "trigger" => "firing".into(),
        "resolve" => "resolved".into(),
        other => other.into(),
    }
}
pub fn pushover_status(r: &Received) -> String {
    from_title(&field(r, "title"))
}
pub fn mail_status(m: &Mail) -> String {
    from_title(&m.header("Subject"))
}

/// Reads `firing` or `resolved` from one service's request.
pub type StatusOf = fn(&Received) -> String;

/// Each HTTP receiver and how its service's shape says firing or resolved.
pub fn kinds(rx: &Receivers) -> [(&str, &Receiver, StatusOf); 6] {
    [
        ("discord", &rx.discord, discord_status),
        ("teams", &rx.teams, teams_status),
        ("ntfy", &rx.ntfy, ntfy_status),
        ("gotify", &rx.gotify, gotify_status),
        ("pagerduty", &rx.pagerduty, pagerduty_status),
        ("pushover", &rx.pushover, pushover_status),
    ]
}
