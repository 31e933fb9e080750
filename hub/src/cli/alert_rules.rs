//! `nextdeploy alert silence ...` (operators add and remove, viewers list),
//! `alert apply -f FILE` (admin) and the printing of `alert rule preview`.
//!
//! The file of `alert apply` (TOML): `[[channel]]` tables take what
//! `alert channel add` takes (`name`, `kind`, `url`, `secret` or
//! `secret_file`), `[[rule]]` tables what `alert rule add` takes, durations
//! as text (`for = "5m"`):
//!
//! ```toml
//! [[channel]]
//! name = "ops"
//! kind = "webhook"
//! url = "https://hooks.example.com/nd"
//! secret_file = "/etc/nextdeploy/ops.secret"
//!
//! [[rule]]
//! name = "hot"
//! on = "cpu"
//! above = 90
//! for = "5m"
//! container = "web*"
//! channel = "ops"
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::alert_rules::{
    AlertApplied, AlertApply, AlertSilenceAdd, ScopePreview, SilenceInfo,
};
use nextdeploy_shared::protocol::alerts::{
    AlertChannelAdd, AlertRuleAdd, AlertRuleInfo, Condition, Severity,
};
use nextdeploy_shared::protocol::{Action, Empty};
use serde::Deserialize;
use serde_json::Value;

use super::alerts::seconds;
use super::exit::Usage;
use super::output::{self, printable};

/// `alert silence`: add one (the flags), or `list`, or `remove ID`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SilenceArgs {
    #[command(subcommand)]
    cmd: Option<SilenceCmd>,
    /// Alerts of agents with these labels (`env=staging`).
    #[arg(long)]
    selector: Option<String>,
    /// Alerts of containers whose name matches this glob (`web*`).
    #[arg(long)]
    container: Option<String>,
    /// Alerts of this rule (a glob).
    #[arg(long)]
    rule: Option<String>,
    /// How long (`2h`, at most 30d).
    #[arg(long = "for", value_name = "DURATION")]
    for_: Option<String>,
    /// Why.
    #[arg(long)]
    comment: Option<String>,
}

/// `alert silence list|remove`.
#[derive(Debug, Subcommand)]
pub enum SilenceCmd {
    /// Silences not ended.
    List,
    /// End a silence now: what it held and still fires is announced.
    Remove {
        /// Its id.
        id: String,
    },
}

/// `alert apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The TOML file (`-` for stdin).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Remove the rules the file does not name.
    #[arg(long)]
    prune: bool,
    /// Say what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The action of `alert silence ...`.
pub fn silence_action(a: SilenceArgs) -> anyhow::Result<Action> {
    Ok(match a.cmd {
        Some(SilenceCmd::List) => Action::AlertSilenceList(Empty {}),
        Some(SilenceCmd::Remove { id }) => Action::AlertSilenceRemove(ById { id }),
        None => {
            let for_s =
                seconds(a.for_)?.ok_or_else(|| Usage("give --for DURATION (`2h`)".into()))?;
            Action::AlertSilenceAdd(AlertSilenceAdd {
                selector: a.selector,
                container: a.container,
                rule: a.rule,
                for_s,
                comment: a.comment,
            })
        }
    })
}

/// A `[[rule]]` of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    on: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    above: Option<f64>,
    count: Option<u32>,
    within: Option<String>,
    selector: Option<String>,
    container: Option<String>,
    severity: Option<Severity>,
    channel: String,
    repeat: Option<String>,
    quiet_hours: Option<String>,
    quiet_tz: Option<String>,
}

/// The file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertFile {
    #[serde(default)]
    channel: Vec<toml::Table>,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

fn rule_of(r: RuleEntry) -> anyhow::Result<AlertRuleAdd> {
    let condition = Condition::parse(&r.on.replace('-', "_"))
        .ok_or_else(|| Usage(format!("rule {:?}: unknown condition {:?}", r.name, r.on)))?;
    Ok(AlertRuleAdd {
        name: r.name,
        condition,
        for_s: seconds(r.for_)?,
        above: r.above,
        count: r.count,
        within_s: seconds(r.within)?,
        repeat_s: seconds(r.repeat)?,
        quiet_hours: r.quiet_hours,
        quiet_tz: r.quiet_tz,
        selector: r.selector,
        container: r.container,
        severity: Some(r.severity.unwrap_or_default()),
        channel: r.channel,
    })
}

/// A `[[channel]]`: `secret_file` read (trailing newline dropped), the
/// rest as `alert_channel_add` takes it.
fn channel_of(mut t: toml::Table, dir: &std::path::Path) -> anyhow::Result<AlertChannelAdd> {
    if let Some(f) = t.remove("secret_file") {
        let path = dir.join(
            f.as_str()
                .ok_or_else(|| Usage("secret_file: a path".into()))?,
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Usage(format!("secret_file {}: {e}", path.display())))?;
        t.insert("secret".into(), text.trim_end_matches(['\r', '\n']).into());
    }
    let name = t
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("?")
        .to_string();
    toml::Value::Table(t)
        .try_into()
        .map_err(|e| Usage(format!("channel {name:?}: {e}")).into())
}

/// Parse the text of an alerts file; `dir` resolves relative `secret_file`s.
pub fn parse_file(text: &str, dir: &std::path::Path) -> anyhow::Result<AlertApply> {
    let f: AlertFile = toml::from_str(text).map_err(|e| Usage(format!("alerts file: {e}")))?;
    Ok(AlertApply {
        channels: f
            .channel
            .into_iter()
            .map(|t| channel_of(t, dir))
            .collect::<anyhow::Result<_>>()?,
        rules: f
            .rule
            .into_iter()
            .map(rule_of)
            .collect::<anyhow::Result<_>>()?,
        prune: false,
        dry_run: false,
    })
}

/// The action of `alert apply`.
pub fn apply_action(a: ApplyArgs) -> anyhow::Result<Action> {
    let text = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&a.file).map_err(|e| Usage(format!("{}: {e}", a.file.display())))?
    };
    let dir = a.file.parent().unwrap_or(std::path::Path::new("."));
    let mut p = parse_file(&text, dir)?;
    p.prune = a.prune;
    p.dry_run = a.dry_run;
    Ok(Action::AlertApply(p))
}

/// A rule's settings beyond the common ones, as one column.
pub fn rule_detail(r: &AlertRuleInfo) -> String {
    let mut d = Vec::new();
    if let Some(a) = r.above {
        d.push(format!("above {a}%"));
    }
    if let (Some(c), Some(w)) = (r.count, r.within_s) {
        d.push(format!("{c} in {w}s"));
    }
    if let Some(x) = r.repeat_s {
        d.push(format!("repeat {x}s"));
    }
    if let Some(q) = &r.quiet_hours {
        d.push(format!(
            "quiet {q} {}",
            r.quiet_tz.as_deref().unwrap_or("UTC")
        ));
    }
    if d.is_empty() {
        "-".into()
    } else {
        d.join(", ")
    }
}

fn silences(list: Vec<SilenceInfo>) {
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|s| {
            vec![
                s.id,
                dash(s.selector),
                dash(s.container),
                dash(s.rule),
                s.ends_at,
                s.created_by,
                dash(s.comment.map(|c| printable(&c).into_owned())),
            ]
        })
        .collect();
    let head = [
        "ID",
        "SELECTOR",
        "CONTAINER",
        "RULE",
        "ENDS",
        "BY",
        "COMMENT",
    ];
    output::table(&head, &rows);
}

fn applied(a: AlertApplied) {
    let verb = if a.dry_run { "would be " } else { "" };
    if a.is_noop() {
        println!(
            "nothing to change: {} entries as the file says",
            a.unchanged.len()
        );
        return;
    }
    for (what, list) in [
        ("added", &a.added),
        ("updated", &a.updated),
        ("removed", &a.removed),
    ] {
        for e in list {
            println!("{verb}{what}: {}", printable(e));
        }
    }
    println!("{} unchanged", a.unchanged.len());
}

/// Print the answer of `action` (one of this module's).
pub fn print(action: &str, v: Value) -> anyhow::Result<()> {
    match action {
        "alert_rule_preview" => {
            let p: ScopePreview = serde_json::from_value(v)?;
            println!(
                "{} agents ({} connected), {} containers",
                p.agents, p.agents_connected, p.containers
            );
            for s in p.sample {
                println!("  {}", printable(&s));
            }
        }
        "alert_apply" => applied(serde_json::from_value(v)?),
        "alert_silence_list" => silences(serde_json::from_value(v)?),
        _ => silences(vec![serde_json::from_value(v)?]),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alerts file example of README.md, as printed there.
    fn readme_example() -> String {
        let readme = include_str!("../../../README.md");
        let alerts = &readme[readme.find("## Alerts").unwrap()..];
        let start = alerts.find("```toml\n[[channel]]").unwrap() + "```toml\n".len();
        let len = alerts[start..].find("```").unwrap();
        alerts[start..start + len].to_string()
    }

    #[test]
    fn the_readme_example_parses_and_reads_its_secret_file() {
        let dir = std::env::temp_dir().join(format!("nd-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ops.secret"), "s3cret\n").unwrap();
        let p = parse_file(&readme_example(), &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.channels.len(), 1);
        assert_eq!(p.channels[0].secret.as_deref(), Some("s3cret"));
        assert_eq!(p.rules.len(), 2);
        let hot = &p.rules[0];
        assert_eq!(
            (hot.condition, hot.above, hot.for_s, hot.repeat_s),
            (Condition::Cpu, Some(90.0), Some(300), Some(14_400))
        );
        assert_eq!(p.rules[1].condition, Condition::RestartLoop);
        assert_eq!(p.rules[1].within_s, Some(600));
    }

    #[test]
    fn unknown_keys_and_conditions_are_refused_with_the_entry_named() {
        let here = std::path::Path::new(".");
        let bad_key =
            "[[rule]]\nname = \"r\"\non = \"cpu\"\nabove = 1\nchannel = \"c\"\nfo = \"5m\"\n";
        assert!(parse_file(bad_key, here)
            .unwrap_err()
            .to_string()
            .contains("fo"));
        let bad_on = "[[rule]]\nname = \"r\"\non = \"hot\"\nchannel = \"c\"\n";
        let e = parse_file(bad_on, here).unwrap_err().to_string();
        assert!(e.contains("\"r\"") && e.contains("hot"), "{e}");
        let bad_channel = "[[channel]]\nname = \"c\"\nkind = \"webhook\"\nurl = \"u\"\nsecrt = 1\n";
        let e = parse_file(bad_channel, here).unwrap_err().to_string();
        assert!(e.contains("channel \"c\""), "{e}");
    }
}
