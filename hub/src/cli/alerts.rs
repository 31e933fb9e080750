//! `nextdeploy alert ...`: channels and rules (admin), alerts firing now and
//! past (viewer).

use clap::{Args, Subcommand, ValueEnum};
use nextdeploy_shared::protocol::alert_rules::AlertRulePreview;
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
    /// Hold notifications of matching alerts for a while (operator); `list`
    /// and `remove ID` (viewers list).
    Silence(super::alert_rules::SilenceArgs),
    /// Make channels and rules what a TOML file says (admin), idempotent.
    Apply(super::alert_rules::ApplyArgs),
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
    /// How many agents and containers a scope matches now.
    Preview {
        /// Agent labels (`env=prod`).
        #[arg(long)]
        selector: Option<String>,
        /// Container name glob (`web*`).
        #[arg(long)]
        container: Option<String>,
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
    /// A container's CPU percent above --above for --for.
    Cpu,
    /// A container's memory (percent of its limit) above --above for --for.
    Memory,
    /// --count restarts within --within.
    RestartLoop,
    /// The agent's Docker engine unavailable for --for.
    DockerUnavailable,
    /// A deploy or rollback failed or was rolled back.
    DeployFailed,
}

impl On {
    /// The protocol's condition.
    pub fn condition(self) -> Condition {
        match self {
            On::ContainerDied => Condition::ContainerDied,
            On::Oom => Condition::Oom,
            On::Unhealthy => Condition::Unhealthy,
            On::AgentOffline => Condition::AgentOffline,
            On::Cpu => Condition::Cpu,
            On::Memory => Condition::Memory,
            On::RestartLoop => Condition::RestartLoop,
            On::DockerUnavailable => Condition::DockerUnavailable,
            On::DeployFailed => Condition::DeployFailed,
        }
    }
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
    #[arg(long, value_enum, value_name = "CONDITION")]
    on: On,
    /// cpu, memory: the threshold, percent.
    #[arg(long, value_name = "PERCENT")]
    above: Option<f64>,
    /// restart-loop: restarts that fire it (default 3).
    #[arg(long)]
    count: Option<u32>,
    /// restart-loop: within how long (default 10m).
    #[arg(long, value_name = "DURATION")]
    within: Option<String>,
    /// Re-notify a still-firing alert every DURATION (`4h`; default never).
    #[arg(long, value_name = "DURATION")]
    repeat: Option<String>,
    /// Hold non-critical notifications in this daily window (`22:00-07:00`).
    #[arg(long, value_name = "HH:MM-HH:MM")]
    quiet_hours: Option<String>,
    /// The window's time zone: UTC (default) or an offset (`+02:00`).
    #[arg(long, value_name = "TZ", allow_hyphen_values = true)]
    quiet_tz: Option<String>,
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

/// `30s`, `5m` as seconds; a usage error otherwise.
pub fn seconds(d: Option<String>) -> anyhow::Result<Option<u64>> {
    Ok(d.map(|d| parse_duration(&d).map(|d| d.as_secs()))
        .transpose()
        .map_err(Usage)?)
}

fn rule_action(a: RuleAddArgs) -> anyhow::Result<Action> {
    Ok(Action::AlertRuleAdd(AlertRuleAdd {
        name: a.name,
        condition: a.on.condition(),
        for_s: seconds(a.for_)?,
        above: a.above,
        count: a.count,
        within_s: seconds(a.within)?,
        repeat_s: seconds(a.repeat)?,
        quiet_hours: a.quiet_hours,
        quiet_tz: a.quiet_tz,
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
        AlertCmd::Rule(RuleCmd::Preview {
            selector,
            container,
        }) => Action::AlertRulePreview(AlertRulePreview {
            selector,
            container,
        }),
        AlertCmd::Silence(a) => super::alert_rules::silence_action(a)?,
        AlertCmd::Apply(a) => super::alert_rules::apply_action(a)?,
    })
}

fn print(action: &str, v: Value) -> anyhow::Result<()> {
    match action {
        "alert_channel_add" => channels(vec![serde_json::from_value(v)?]),
        "alert_channel_list" => channels(serde_json::from_value(v)?),
        "alert_rule_add" => {
            let r: AlertRuleInfo = serde_json::from_value(v)?;
            let scope = r.scope.clone();
            rules(vec![r]);
            if let Some(p) = scope {
                let (a, c, n) = (p.agents, p.agents_connected, p.containers);
                println!("scope now: {a} agents ({c} connected), {n} containers");
            }
        }
        "alert_rule_list" => rules(serde_json::from_value(v)?),
        "alert_list" | "alert_history" => alerts(serde_json::from_value(v)?),
        "alert_rule_preview"
        | "alert_apply"
        | "alert_silence_add"
        | "alert_silence_list"
        | "alert_silence_remove" => super::alert_rules::print(action, v)?,
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
            let detail = super::alert_rules::rule_detail(&r);
            vec![
                r.name,
                r.condition.as_str().into(),
                format!("{}s", r.for_s),
                dash(r.selector),
                dash(r.container),
                r.severity.as_str().into(),
                r.channel,
                detail,
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
        "DETAIL",
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
