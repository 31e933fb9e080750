//! The client subcommands of `nextdeploy`: one file per group, output in
//! [`output`], exit codes in [`exit`], the WebSocket client in [`client`],
//! the saved login in [`login`].

pub mod agent;
pub mod agent_info;
pub mod alert_channels;
pub mod alert_rules;
pub mod alerts;
pub mod audit;
pub mod client;
pub mod cluster;
pub mod containers;
pub mod deploys;
pub mod exec;
pub mod exec_sessions;
pub mod exit;
pub mod fleet;
pub mod images;
pub mod install;
pub mod login;
pub mod output;
pub mod pipe;
pub mod progress;
pub mod ps;
pub mod tokens;

use clap::{Parser, Subcommand};

use crate::serve::HubArgs;
use output::Output;

/// NextDeploy: watch and control containers on servers behind NAT, through one hub.
#[derive(Debug, Parser)]
#[command(name = "nextdeploy", version, about)]
pub struct Cli {
    /// Hub URL (https://host:port, or http:// for a hub run with
    /// --plain-http); overrides the saved login.
    #[arg(long, global = true, env = "NEXTDEPLOY_HUB")]
    pub hub: Option<String>,
    /// API token; overrides the saved login.
    #[arg(long, global = true, env = "NEXTDEPLOY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: aligned columns, or JSON for scripts.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        value_name = "table|json",
        default_value_t = Output::Table
    )]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (SSH server for agents, WebSocket API).
    Hub(Box<HubArgs>),
    /// Save the hub URL and token (--hub, --token) for later commands
    /// (~/.config/nextdeploy/login.json, 0600).
    Login {
        /// The hub's API pin (sha256:<hex>, printed by the hub at start), for
        /// a certificate no system root vouches for (the hub's own, by default).
        #[arg(long)]
        tls_pin: Option<String>,
    },
    /// Forget the saved login.
    Logout,
    /// Show who the token is and which hub it talks to.
    Whoami,
    /// Agents and their containers: list, ping, info, ps, logs, start/stop, deploy,
    /// stats, events, status, history (`agent --help` lists them all).
    #[command(subcommand)]
    Agent(agent::AgentCmd),
    /// One-time join tokens for enrolling agents.
    #[command(subcommand, name = "join-token")]
    JoinToken(tokens::JoinTokenCmd),
    /// API tokens for the CLI and other clients.
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// Deploy history.
    #[command(subcommand)]
    Deploys(deploys::DeploysCmd),
    /// Exec sessions and their recordings (admin).
    #[command(subcommand, name = "exec-sessions")]
    ExecSessions(exec_sessions::ExecSessionsCmd),
    /// Alerts: channels and rules (admin), alerts firing now and past.
    #[command(subcommand)]
    Alert(alerts::AlertCmd),
    /// The audit log, newest first (admin): who did what, with which token.
    Audit {
        /// How many entries (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Only entries older than this id (the first column), for the next page.
        #[arg(long)]
        before: Option<i64>,
    },
}

/// Run a client command (everything but `hub`).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Hub(args) => match args.action {
            Some(crate::backup::HubAction::Cluster(cmd)) => {
                let (hub, token) = login::resolve(cli.hub, cli.token)?;
                cluster::run(cmd, &hub, &token, out).await
            }
            _ => unreachable_hub(),
        },
        Command::Login { tls_pin } => {
            let hub = cli
                .hub
                .ok_or_else(|| exit::Usage("login needs --hub URL".into()))?;
            let token = cli
                .token
                .ok_or_else(|| exit::Usage("login needs --token TOKEN".into()))?;
            tokens::login(&hub, token, tls_pin, out).await
        }
        Command::Logout => logout(out),
        Command::Whoami => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            tokens::whoami(&hub, &token, out).await
        }
        Command::Agent(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            agent::run(cmd, &hub, &token, out).await
        }
        Command::JoinToken(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            tokens::join_token(cmd, &hub, &token, out).await
        }
        Command::Deploys(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            deploys::deploys(cmd, &hub, &token, out).await
        }
        Command::Token(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            tokens::token(cmd, &hub, &token, out).await
        }
        Command::ExecSessions(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            exec_sessions::run(cmd, &hub, &token, out).await
        }
        Command::Alert(cmd) => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            alerts::run(cmd, &hub, &token, out).await
        }
        Command::Audit { limit, before } => {
            let (hub, token) = login::resolve(cli.hub, cli.token)?;
            audit::audit(&hub, &token, limit, before, out).await
        }
    }
}

/// `logout`; JSON: `{"logged_out": bool, "removed": PATH or null}`.
fn logout(out: Output) -> anyhow::Result<()> {
    let path = login::login_path()?;
    let removed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot remove {}", path.display())))
        }
    };
    match out {
        Output::Json => output::json(&serde_json::json!({
            "logged_out": removed,
            "removed": removed.then_some(&path),
        })),
        Output::Table if removed => {
            println!("removed {}", path.display());
            Ok(())
        }
        Output::Table => {
            println!("not logged in");
            Ok(())
        }
    }
}

fn unreachable_hub() -> anyhow::Result<()> {
    anyhow::bail!("the hub subcommand is handled by main")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand (walked from clap's tree, so a new one is covered)
    /// and every argument it takes has a description, and an argument with
    /// a fixed set of values lists them in its help.
    #[test]
    fn every_command_and_argument_says_what_it_does() {
        fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
            let help = cmd.render_long_help().to_string();
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path}: argument {id} has no help"));
                }
                for v in a.get_possible_values().iter().filter(|v| !v.is_hide_set()) {
                    if !help.contains(v.get_name()) {
                        missing.push(format!("{path}: {id} does not list {}", v.get_name()));
                    }
                }
            }
            for sub in cmd.get_subcommands_mut() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{p}: no description"));
                }
                walk(sub, &p, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&mut cmd, "nextdeploy", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        let agent = cmd
            .find_subcommand_mut("agent")
            .map(|a| a.render_help().to_string())
            .unwrap_or_default();
        for sub in [
            "list", "ps", "logs", "deploy", "status", "history", "events",
        ] {
            assert!(agent.contains(&format!("  {sub} ")), "{agent}");
        }
        assert!(cmd
            .render_help()
            .to_string()
            .contains("--output <table|json>"));
        let create = cmd
            .find_subcommand_mut("token")
            .and_then(|t| t.find_subcommand_mut("create"))
            .map(|c| c.render_help().to_string())
            .unwrap_or_default();
        assert!(
            create.contains("--role <admin|operator|viewer>"),
            "{create}"
        );
    }
}
