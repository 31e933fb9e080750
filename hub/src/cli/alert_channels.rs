//! `nextdeploy alert channel add`: one flag per kind, then what that kind
//! takes, into the `alert_channel_add` action. The channel's own token is
//! `--channel-token`: `--token` is every command's API token (a global
//! flag), and a second `--token` here would take its value.

use clap::{Args, ValueEnum};
use nextdeploy_shared::protocol::alerts::{AlertChannelAdd, ChannelKind, EmailSettings, SmtpTls};
use nextdeploy_shared::protocol::Action;

use super::alerts::{severity, Level};
use super::exit::Usage;

/// `alert channel add`: one kind flag, then what that kind takes.
#[derive(Debug, Args)]
pub struct ChannelAddArgs {
    /// A unique name.
    name: String,
    /// POST the alert as JSON to this URL.
    #[arg(long, value_name = "URL", group = "kind")]
    webhook: Option<String>,
    /// A Slack incoming webhook URL.
    #[arg(long, value_name = "URL", group = "kind")]
    slack: Option<String>,
    /// A Discord webhook URL.
    #[arg(long, value_name = "URL", group = "kind")]
    discord: Option<String>,
    /// A Microsoft Teams workflow (or incoming webhook) URL.
    #[arg(long, value_name = "URL", group = "kind")]
    teams: Option<String>,
    /// An ntfy topic URL (`https://ntfy.sh/mytopic`); --channel-token if it
    /// needs one.
    #[arg(long, value_name = "URL", group = "kind")]
    ntfy: Option<String>,
    /// A Gotify server URL, with the application's --channel-token.
    #[arg(long, value_name = "URL", group = "kind")]
    gotify: Option<String>,
    /// PagerDuty: an Events API v2 integration's routing key.
    #[arg(long, value_name = "ROUTING_KEY", group = "kind")]
    pagerduty: Option<String>,
    /// Pushover: the user (or group) key, with the application's
    /// --channel-token.
    #[arg(long, value_name = "USER_KEY", group = "kind")]
    pushover: Option<String>,
    /// Email these recipients (comma-separated), through --smtp.
    #[arg(long, value_name = "ADDRS", group = "kind", value_delimiter = ',')]
    email: Option<Vec<String>>,
    /// Webhooks: sign each body (`X-NextDeploy-Signature: sha256=<HMAC>`).
    #[arg(long, env = "NEXTDEPLOY_ALERT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// ntfy's access token, Gotify's or Pushover's application token (not
    /// --token, which is the API token of every command).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NEXTDEPLOY_CHANNEL_TOKEN",
        hide_env_values = true
    )]
    channel_token: Option<String>,
    /// PagerDuty, Pushover: another endpoint than the service's.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Email: the SMTP server.
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// Email: how to reach it (default tls on port 465, else starttls).
    #[arg(long, value_enum, value_name = "none|starttls|tls")]
    smtp_tls: Option<Tls>,
    /// Email: the SMTP user.
    #[arg(long, value_name = "USER")]
    smtp_user: Option<String>,
    /// Email: a file whose first line is the SMTP password.
    #[arg(long, value_name = "FILE")]
    smtp_password_file: Option<std::path::PathBuf>,
    /// Email: the sender (default nextdeploy@<the hub's hostname>).
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,
    /// Only alerts at least this severe (default info: all).
    #[arg(long, value_enum, value_name = "info|warning|critical")]
    min_severity: Option<Level>,
}

/// `--smtp-tls`, as the CLI spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tls {
    /// Plain SMTP.
    None,
    /// STARTTLS, required.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// The kind flag given, and its value.
fn kind_of(a: &mut ChannelAddArgs) -> Result<(ChannelKind, Option<String>), Usage> {
    let urls = [
        (ChannelKind::Webhook, a.webhook.take()),
        (ChannelKind::Slack, a.slack.take()),
        (ChannelKind::Discord, a.discord.take()),
        (ChannelKind::Teams, a.teams.take()),
        (ChannelKind::Ntfy, a.ntfy.take()),
        (ChannelKind::Gotify, a.gotify.take()),
        (ChannelKind::Pagerduty, a.pagerduty.take()),
        (ChannelKind::Pushover, a.pushover.take()),
    ];
    if a.email.is_some() {
        return Ok((ChannelKind::Email, None));
    }
    urls.into_iter().find(|(_, v)| v.is_some()).ok_or_else(|| {
        Usage(
            "give one of --webhook, --slack, --discord, --teams, --ntfy, --gotify URL, \
                 --pagerduty ROUTING_KEY, --pushover USER_KEY or --email ADDRS"
                .into(),
        )
    })
}

fn email_settings(a: &mut ChannelAddArgs) -> anyhow::Result<Option<Box<EmailSettings>>> {
    let Some(to) = a.email.take() else {
        return Ok(None);
    };
    let smtp = a
        .smtp
        .take()
        .ok_or_else(|| Usage("--email needs --smtp HOST:PORT".into()))?;
    let password = match &a.smtp_password_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Usage(format!("--smtp-password-file {}: {e}", f.display())))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    Ok(Some(Box::new(EmailSettings {
        to,
        smtp,
        tls: a.smtp_tls.map(|t| match t {
            Tls::None => SmtpTls::None,
            Tls::Starttls => SmtpTls::Starttls,
            Tls::Tls => SmtpTls::Tls,
        }),
        user: a.smtp_user.take(),
        password,
        from: a.from.take(),
    })))
}

pub(super) fn channel_action(mut a: Box<ChannelAddArgs>) -> anyhow::Result<Action> {
    let (kind, value) = kind_of(&mut a)?;
    let email = email_settings(&mut a)?;
    if email.is_none() && (a.smtp.is_some() || a.smtp_user.is_some() || a.from.is_some()) {
        return Err(Usage("--smtp, --smtp-user and --from go with --email".into()).into());
    }
    let (url, routing_key, user_key) = match kind {
        ChannelKind::Pagerduty => (a.url, value, None),
        ChannelKind::Pushover => (a.url, None, value),
        _ if a.url.is_some() => {
            return Err(Usage("--url goes with --pagerduty or --pushover".into()).into())
        }
        _ => (value, None, None),
    };
    Ok(Action::AlertChannelAdd(AlertChannelAdd {
        name: a.name,
        kind,
        url,
        secret: a.secret,
        token: a.channel_token,
        routing_key,
        user_key,
        email,
        min_severity: a.min_severity.map(severity),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::alerts::{AlertCmd, ChannelCmd};
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;
    use nextdeploy_shared::protocol::alerts::Severity;

    fn parse(args: &[&str]) -> (Option<String>, Box<ChannelAddArgs>) {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Alert(AlertCmd::Channel(ChannelCmd::Add(a))) => (cli.token, a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_channels_token_is_not_the_api_token() {
        let (api, a) = parse(&[
            "nextdeploy",
            "--token",
            "nda_api",
            "alert",
            "channel",
            "add",
            "g",
            "--gotify",
            "https://g.example",
            "--channel-token",
            "app",
        ]);
        assert_eq!(api.as_deref(), Some("nda_api"));
        assert_eq!(a.channel_token.as_deref(), Some("app"));
        let Action::AlertChannelAdd(p) = channel_action(a).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.kind, p.token.as_deref()),
            (ChannelKind::Gotify, Some("app"))
        );
        let (_, a) = parse(&[
            "nextdeploy",
            "alert",
            "channel",
            "add",
            "m",
            "--email",
            "a@b.example,c@d.example",
            "--smtp",
            "127.0.0.1:25",
            "--smtp-tls",
            "none",
            "--min-severity",
            "critical",
        ]);
        let Action::AlertChannelAdd(p) = channel_action(a).unwrap() else {
            panic!()
        };
        let e = p.email.unwrap();
        assert_eq!(e.to, ["a@b.example", "c@d.example"]);
        assert_eq!(
            (e.tls, p.min_severity),
            (Some(SmtpTls::None), Some(Severity::Critical))
        );
        let (_, a) = parse(&[
            "nextdeploy",
            "alert",
            "channel",
            "add",
            "p",
            "--pagerduty",
            "KEY",
        ]);
        let Action::AlertChannelAdd(p) = channel_action(a).unwrap() else {
            panic!()
        };
        assert_eq!((p.routing_key.as_deref(), p.url), (Some("KEY"), None));
    }
}
