//! `nextdeploy agent ...`: list, ping, info, revoke, containers; install in [`super::install`].

use clap::Subcommand;
use nextdeploy_shared::protocol::agents::{RevokeAgent, RotateKey};
use nextdeploy_shared::protocol::containers::{ContainerRef, KillRequest, StopRequest};
use nextdeploy_shared::protocol::Action;
use nextdeploy_shared::secret::Secret;

use super::agent_info;
use super::client::Client;
use super::containers;
use super::output::{self, Output};

/// `nextdeploy agent ...`
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Every enrolled agent: name, labels, online/offline, last seen, version, address.
    List,
    /// Round trip through hub and tunnel to an agent, in ms.
    Ping {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// How many round trips.
        #[arg(long, short = 'c', default_value_t = 4)]
        count: u32,
        /// Pause between round trips, in ms.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// Hostname, OS, kernel, CPUs, memory, agent version, uptime, Docker status.
    Info {
        /// Agent name.
        #[arg(
            long,
            conflicts_with = "selector",
            required_unless_present = "selector"
        )]
        server: Option<String>,
        /// Label selector (k=v,...): every matching agent.
        #[arg(long)]
        selector: Option<String>,
    },
    /// Install an agent on a server over SSH with your key (admin).
    Install(super::install::InstallArgs),
    /// Replace an agent's key; it stays online (admin).
    RotateKey {
        /// Agent name.
        #[arg(long)]
        server: String,
    },
    /// Revoke an agent's key and cut its connection (admin).
    Revoke {
        /// Agent name.
        name: String,
    },
    /// Containers on an agent, like `docker ps`.
    Ps {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Include stopped containers.
        #[arg(long, short = 'a')]
        all: bool,
        /// Docker filter, key=value (label=k=v, status=running, name=web); repeatable.
        #[arg(long)]
        filter: Vec<String>,
    },
    /// A container's inspect document (JSON).
    Inspect {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Container name or id prefix.
        #[arg(long)]
        container: String,
    },
    /// A container's logs, byte for byte as `docker logs` (stderr to stderr).
    Logs {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Container name or id prefix.
        #[arg(long)]
        container: String,
        /// Keep streaming new output.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines from the end (a number or all).
        #[arg(long)]
        tail: Option<String>,
        /// Since a time: 10m, Unix seconds or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// Until a time: 10m, Unix seconds or RFC 3339.
        #[arg(long)]
        until: Option<String>,
        /// Prefix each line with its timestamp.
        #[arg(long, short = 't')]
        timestamps: bool,
    },
    /// Deploy a new image: same container, health-gated, rolled back on failure (operator).
    Deploy(super::deploys::DeployArgs),
    /// Swap back to the container kept by `deploy --keep-previous` (operator).
    Rollback {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Container name.
        #[arg(long)]
        container: String,
    },
    /// Start a container (operator).
    Start(LifecycleArgs),
    /// Stop a container (operator).
    Stop(LifecycleArgs),
    /// Restart a container (operator).
    Restart(LifecycleArgs),
    /// Kill a container (operator).
    Kill(LifecycleArgs),
    /// Live CPU, memory, network, block IO and pids, like `docker stats`.
    Stats {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// One container (default: every running one).
        #[arg(long)]
        container: Option<String>,
        /// One sample and exit.
        #[arg(long)]
        no_stream: bool,
    },
    /// Live events: container create/start/die/oom/kill/restart/health_status, agents online/offline.
    Events {
        /// Only this agent.
        #[arg(long, conflicts_with = "selector")]
        server: Option<String>,
        /// Only agents matching this label selector.
        #[arg(long)]
        selector: Option<String>,
        /// Only this container (name or id prefix).
        #[arg(long)]
        container: Option<String>,
    },
    /// Fleet overview: every agent, every container, state, health, CPU, memory.
    Status {
        /// Only this agent.
        #[arg(long, conflicts_with = "selector")]
        server: Option<String>,
        /// Only agents matching this label selector.
        #[arg(long)]
        selector: Option<String>,
    },
    /// Stored health history of a container.
    History {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Container name.
        #[arg(long)]
        container: String,
        /// How far back: 1h, 24h, 30d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// 5s, 1m or 15m (default: by --since).
        #[arg(long)]
        resolution: Option<String>,
    },
}

/// Arguments of start/stop/restart/kill.
#[derive(Debug, clap::Args)]
pub struct LifecycleArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    /// Container name or id prefix.
    #[arg(long)]
    pub container: String,
    /// Seconds to wait before killing (stop, restart).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Signal (kill), e.g. SIGTERM or HUP.
    #[arg(long)]
    pub signal: Option<String>,
}

/// Run an agent command.
pub async fn run(
    cmd: AgentCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    if let AgentCmd::Install(args) = cmd {
        return super::install::run(args, hub, token, out).await;
    }
    let mut c = Client::connect(hub, token).await?;
    let r = dispatch(&mut c, cmd, out).await;
    c.close().await;
    r
}

/// Route one subcommand (all but install) to its handler over an open client.
async fn dispatch(c: &mut Client, cmd: AgentCmd, out: Output) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::Install(_) => anyhow::bail!("install is handled above"),
        AgentCmd::List => agent_info::list(c, out).await,
        AgentCmd::Ping {
            server,
            count,
            interval_ms,
        } => agent_info::ping(c, &server, count, interval_ms, out).await,
        AgentCmd::Info { server, selector } => {
            agent_info::info(c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::RotateKey { server } => rotate_key(c, &server, out).await,
        AgentCmd::Revoke { name } => revoke(c, &name, out).await,
        AgentCmd::Deploy(a) => super::deploys::deploy(c, a, out).await,
        AgentCmd::Rollback { server, container } => {
            super::deploys::rollback(c, &server, &container, out).await
        }
        AgentCmd::Start(a) => {
            let action = Action::Start(ContainerRef {
                container: a.container.clone(),
            });
            containers::lifecycle(c, &a.server, action, &a.container, out).await
        }
        AgentCmd::Stop(a) => {
            let action = Action::Stop(stop_request(&a));
            containers::lifecycle(c, &a.server, action, &a.container, out).await
        }
        AgentCmd::Restart(a) => {
            let action = Action::Restart(stop_request(&a));
            containers::lifecycle(c, &a.server, action, &a.container, out).await
        }
        AgentCmd::Kill(a) => {
            let action = Action::Kill(KillRequest {
                container: a.container.clone(),
                signal: a.signal.clone(),
            });
            containers::lifecycle(c, &a.server, action, &a.container, out).await
        }
        observe => dispatch_observe(c, observe, out).await,
    }
}

/// Read-only container subcommands: ps, inspect, logs, stats, events, status, history.
async fn dispatch_observe(c: &mut Client, cmd: AgentCmd, out: Output) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::Ps {
            server,
            all,
            filter,
        } => containers::ps(c, &server, all, &filter, out).await,
        AgentCmd::Inspect { server, container } => {
            containers::inspect(c, &server, &container).await
        }
        AgentCmd::Logs {
            server,
            container,
            follow,
            tail,
            since,
            until,
            timestamps,
        } => {
            let a = containers::LogsArgs {
                container: &container,
                follow,
                tail: tail.as_deref(),
                since: since.as_deref(),
                until: until.as_deref(),
                timestamps,
            };
            containers::logs(c, &server, a, out).await
        }
        AgentCmd::Stats {
            server,
            container,
            no_stream,
        } => containers::stats(c, &server, container.as_deref(), no_stream, out).await,
        AgentCmd::Events {
            server,
            selector,
            container,
        } => {
            let (server, selector) = (server.as_deref(), selector.as_deref());
            containers::events(c, server, selector, container.as_deref(), out).await
        }
        AgentCmd::Status { server, selector } => {
            containers::status(c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::History {
            server,
            container,
            since,
            resolution,
        } => {
            let resolution = resolution.as_deref();
            containers::history(c, &server, &container, &since, resolution, out).await
        }
        other => anyhow::bail!("not an observe subcommand: {other:?}"),
    }
}

/// The stop/restart payload: container and optional grace period in seconds.
fn stop_request(a: &LifecycleArgs) -> StopRequest {
    StopRequest {
        container: a.container.clone(),
        timeout: a.timeout.map(|t| t as i64),
    }
}

/// `agent rotate-key`: replace the agent's key, print old and new fingerprints.
async fn rotate_key(c: &mut Client, server: &str, out: Output) -> anyhow::Result<()> {
    let v = c
        .call(Action::RotateKey(RotateKey::default()), Some(server))
        .await?;
    match out {
        Output::Json => output::json(&v),
        Output::Table => {
            println!(
                "rotated the key of {server}: {} -> {}",
                v["old_fingerprint"].as_str().unwrap_or("?"),
                v["new_fingerprint"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

/// `agent revoke`: revoke the agent's key; say whether a live connection was cut.
async fn revoke(c: &mut Client, name: &str, out: Output) -> anyhow::Result<()> {
    let v = c
        .call(
            Action::RevokeAgent(RevokeAgent {
                name: name.to_string(),
            }),
            None,
        )
        .await?;
    match out {
        Output::Json => output::json(&v),
        Output::Table => {
            println!(
                "revoked {name}{}",
                if v["was_online"].as_bool() == Some(true) {
                    "; its connection was cut"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
