//! `nextdeploy alert ...`: channels and rules (admin), alerts firing now and
//! past (viewer).

use clap::{Args, Subcommand, ValueEnum};
use nextdeploy_shared::protocol::alerts::{
    AlertChannelInfo, AlertHistory, AlertInfo, AlertRuleAdd, AlertRuleInfo, ByName, ChannelTested,
    Condition, Severity,
};
use nextdeploy_shared::protocol::streams::Since;
use nextdeploy_shared::protocol::{Action, Empty};
use nextdeploy_shared::secret::Secret;
use nextdeploy_shared::time::parse_duration;
use serde_json::Value;

use super::alert_channels::{channel_action, ChannelAddArgs};
use super::client::Client;
use super::exit::Usage;
use super::output::{self, printable, Output};

/// `nextdeploy alert ...`
#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// Where notifications go (admin).
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// What fires (admin).
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Alerts firing now.
    List,
    /// Alerts that started recently, with their notifications' delivery.
    History {
        /// How far back (`30m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        since: String,
        /// At most this many (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// `nextdeploy alert channel ...`
#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Add a channel: one of --webhook, --slack, --discord, --teams, --ntfy,
    /// --gotify, --pagerduty, --pushover or --email.
    Add(Box<ChannelAddArgs>),
    /// Channels (never their secrets).
    List,
    /// Remove a channel no rule uses.
    Remove {
        /// The channel.
        name: String,
    },
    /// Send a test message now.
    Test {
        /// The channel.
        name: String,
    },
}

/// `nextdeploy alert rule ...`
#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// Add a rule.
    Add(RuleAddArgs),
    /// Rules.
    List,
    /// Remove a rule (its firing alerts resolve without a notification).
    Remove {
        /// The rule.
        name: String,
    },
}

/// What a rule watches, as the CLI spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum On {
    /// A container died with a non-zero exit code.
    ContainerDied,
    /// A container was OOM-killed.
    Oom,
    /// A container's healthcheck failed for at least --for.
    Unhealthy,
    /// An agent was offline for at least --for.
    AgentOffline,
}

/// A severity, as the CLI spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Someone must act now.
    Critical,
}

/// `alert rule add`.
#[derive(Debug, Args)]
pub struct RuleAddArgs {
    /// A unique name.
    name: String,
    /// The condition.
    #[arg(
        long,
        value_enum,
        value_name = "container-died|oom|unhealthy|agent-offline"
    )]
    on: On,
    /// How long the condition must hold (`30s`, `5m`).
    #[arg(long = "for", value_name = "DURATION")]
    for_: Option<String>,
    /// Only agents with these labels (`env=prod`).
    #[arg(long)]
    selector: Option<String>,
    /// Only containers whose name matches this glob (`web*`).
    #[arg(long)]
    container: Option<String>,
    /// Severity.
    #[arg(
        long,
        value_enum,
        value_name = "info|warning|critical",
        default_value = "warning"
    )]
    severity: Level,
    /// The channel notified.
    #[arg(long)]
    channel: String,
}

/// Run an `alert` command.
pub async fn run(
    cmd: AlertCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    let action = action(cmd)?;
    let kind = action.kind();
    let mut c = Client::connect(hub, token).await?;
    let v = c.call(action, None).await?;
    c.close().await;
    if out == Output::Json {
        return output::json(&v);
    }
    print(kind.name(), v)
}

/// A severity from the CLI.
pub(super) fn severity(l: Level) -> Severity {
    match l {
        Level::Info => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Critical => Severity::Critical,
    }
}

fn rule_action(a: RuleAddArgs) -> anyhow::Result<Action> {
    let for_s = a
        .for_
        .map(|d| parse_duration(&d).map(|d| d.as_secs()))
        .transpose()
        .map_err(Usage)?;
    Ok(Action::AlertRuleAdd(AlertRuleAdd {
        name: a.name,
        condition: match a.on {
            On::ContainerDied => Condition::ContainerDied,
            On::Oom => Condition::Oom,
            On::Unhealthy => Condition::Unhealthy,
            On::AgentOffline => Condition::AgentOffline,
        },
        for_s,
        selector: a.selector,
        container: a.container,
        severity: Some(severity(a.severity)),
        channel: a.channel,
    }))
}

fn action(cmd: AlertCmd) -> anyhow::Result<Action> {
    Ok(match cmd {
        AlertCmd::Channel(ChannelCmd::Add(a)) => channel_action(a)?,
        AlertCmd::Channel(ChannelCmd::List) => Action::AlertChannelList(Empty {}),
        AlertCmd::Channel(ChannelCmd::Remove { name }) => {
            Action::AlertChannelRemove(ByName { name })
        }
        AlertCmd::Channel(ChannelCmd::Test { name }) => Action::AlertChannelTest(ByName { name }),
        AlertCmd::Rule(RuleCmd::Add(a)) => rule_action(a)?,
        AlertCmd::Rule(RuleCmd::List) => Action::AlertRuleList(Empty {}),
        AlertCmd::Rule(RuleCmd::Remove { name }) => Action::AlertRuleRemove(ByName { name }),
        AlertCmd::List => Action::AlertList(Empty {}),
        AlertCmd::History { since, limit } => Action::AlertHistory(AlertHistory {
            since: Some(Since::Text(since)),
            limit,
        }),
    })
}

fn print(action: &str, v: Value) -> anyhow::Result<()> {
    match action {
        "alert_channel_add" => channels(vec![serde_json::from_value(v)?]),
        "alert_channel_list" => channels(serde_json::from_value(v)?),
        "alert_rule_add" => rules(vec![serde_json::from_value(v)?]),
        "alert_rule_list" => rules(serde_json::from_value(v)?),
        "alert_list" | "alert_history" => alerts(serde_json::from_value(v)?),
        "alert_channel_test" => {
            let t: ChannelTested = serde_json::from_value(v)?;
            match (t.delivered, t.status, t.error) {
                (true, Some(s), _) => println!("delivered to {} (answered {s})", t.name),
                (_, _, e) => println!(
                    "not delivered to {}: {}",
                    t.name,
                    printable(&e.unwrap_or_default())
                ),
            }
        }
        _ => println!("removed {}", printable(v["name"].as_str().unwrap_or(""))),
    }
    Ok(())
}

fn channels(list: Vec<AlertChannelInfo>) {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|c| {
            vec![
                c.name,
                c.kind.as_str().into(),
                c.target,
                c.min_severity.as_str().into(),
                yes(c.signed),
                yes(c.has_token),
                c.created_at,
            ]
        })
        .collect();
    let head = [
        "NAME", "KIND", "TARGET", "MIN", "SIGNED", "TOKEN", "CREATED",
    ];
    output::table(&head, &rows);
}

fn rules(list: Vec<AlertRuleInfo>) {
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|r| {
            vec![
                r.name,
                r.condition.as_str().into(),
                format!("{}s", r.for_s),
                dash(r.selector),
                dash(r.container),
                r.severity.as_str().into(),
                r.channel,
            ]
        })
        .collect();
    let head = [
        "NAME",
        "ON",
        "FOR",
        "SELECTOR",
        "CONTAINER",
        "SEVERITY",
        "CHANNEL",
    ];
    output::table(&head, &rows);
}

fn alerts(list: Vec<AlertInfo>) {
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|a| {
            let delivered = a
                .notifications
                .iter()
                .filter(|n| n.state == "delivered")
                .count();
            vec![
                a.started_at,
                a.status.as_str().into(),
                a.severity.as_str().into(),
                a.rule,
                a.server,
                a.container.unwrap_or_else(|| "-".into()),
                a.summary,
                format!("{delivered}/{}", a.notifications.len()),
            ]
        })
        .collect();
    let head = [
        "STARTED",
        "STATUS",
        "SEVERITY",
        "RULE",
        "SERVER",
        "CONTAINER",
        "SUMMARY",
        "SENT",
    ];
    output::table(&head, &rows);
}
