//! The client subcommands of `nextdeploy`: one file per group, output in
//! [`output`], the WebSocket client in [`client`], the saved login in [`login`].

pub mod agent;
pub mod agent_info;
pub mod client;
pub mod containers;
pub mod deploys;
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
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (SSH server for agents, WebSocket API).
    Hub(HubArgs),
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
    /// Agents: list, ping, info, revoke.
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
}

/// Run a client command (everything but `hub`).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.output;
    match cli.command {
        Command::Hub(_) => unreachable_hub(),
        Command::Login { tls_pin } => {
            let hub = cli
                .hub
                .ok_or_else(|| anyhow::anyhow!("--hub URL is required"))?;
            let token = cli
                .token
                .ok_or_else(|| anyhow::anyhow!("--token TOKEN is required"))?;
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
}
