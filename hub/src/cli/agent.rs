//! `nextdeploy agent ...`: list, ping, info, revoke, containers; install in [`super::install`].

use clap::Subcommand;
use nextdeploy_shared::protocol::containers::{
    ContainerRef, KillRequest, RemoveRequest, StopRequest,
};
use nextdeploy_shared::protocol::streams::{EventsRequest, Since};
use nextdeploy_shared::protocol::Action;
use nextdeploy_shared::secret::Secret;

use super::agent_info;
use super::client::Client;
use super::containers;
use super::output::Output;

/// `nextdeploy agent ...`
#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Every enrolled agent: name, labels, online/offline, last seen, version, address.
    List,
    /// Round trip through hub and tunnel to an agent (or every agent of a selector), in ms.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["server", "selector"])))]
    Ping {
        /// Agent name.
        #[arg(long)]
        server: Option<String>,
        /// Label selector (k=v,...): every matching agent, one fan-out per round.
        #[arg(long)]
        selector: Option<String>,
        /// How many round trips.
        #[arg(long, short = 'c', default_value_t = 4)]
        count: u32,
        /// Pause between round trips, in ms.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// Hostname, OS, kernel, CPUs, memory, agent version, uptime, Docker status.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["server", "selector"])))]
    Info {
        /// Agent name.
        #[arg(long)]
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
        /// Only the container ids, as `docker ps -q`.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// A container's inspect document (JSON).
    Inspect {
        /// Agent name.
        #[arg(long)]
        server: String,
        #[command(flatten)]
        target: OneContainer,
    },
    /// A container's logs, byte for byte as `docker logs` (stderr to stderr).
    Logs {
        /// Agent name.
        #[arg(long)]
        server: String,
        #[command(flatten)]
        target: OneContainer,
        /// Keep streaming new output.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines from the end: a number, or all (the default).
        #[arg(long, short = 'n', allow_hyphen_values = true)]
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
    /// Start containers (operator).
    Start(StartArgs),
    /// Stop containers (operator).
    Stop(StopArgs),
    /// Restart containers (operator).
    Restart(StopArgs),
    /// Kill containers (operator).
    Kill(KillArgs),
    /// Remove containers, like `docker rm` (operator).
    Rm(RmArgs),
    /// Run a command in a container, like `docker exec` (operator; recorded).
    Exec(super::exec::ExecArgs),
    /// The images on an agent, like `docker images`.
    Images {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// Intermediate images too.
        #[arg(long, short = 'a')]
        all: bool,
        /// Only the image ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Pull an image on an agent ahead of a deploy, with progress (operator).
    Pull {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// The image, e.g. myapp:2.1.
        image: String,
    },
    /// Live CPU, memory, network, block IO and pids, like `docker stats`.
    Stats {
        /// Agent name.
        #[arg(long)]
        server: String,
        /// One container, name or id prefix (default: every running one).
        #[arg(value_name = "CONTAINER", conflicts_with = "container")]
        name: Option<String>,
        /// The same, as a flag.
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
        /// First print the events the hub kept from this far back (`10m`,
        /// `1h`; the last 64 per agent, since the hub started).
        #[arg(long)]
        since: Option<String>,
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
        /// Container: name, full id or unique id prefix.
        #[arg(long)]
        container: String,
        /// How far back: 1h, 24h, 30d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Seconds per point: 5s (kept 1h), 1m (kept 24h) or 15m (kept 30d);
        /// default: the finest that covers --since.
        #[arg(long, value_parser = ["5s", "1m", "15m"])]
        resolution: Option<String>,
    },
}

/// One container: positional as docker takes it, or `--container`.
#[derive(Debug, clap::Args)]
pub struct OneContainer {
    /// Container name or id prefix.
    #[arg(value_name = "CONTAINER", required_unless_present = "container")]
    pub name: Option<String>,
    /// The same, as a flag.
    #[arg(long, conflicts_with = "name")]
    pub container: Option<String>,
}

impl OneContainer {
    /// The container named.
    pub fn get(&self) -> &str {
        self.name
            .as_deref()
            .or(self.container.as_deref())
            .unwrap_or_default()
    }
}

/// One or more containers: positional as docker takes them, or `--container` (repeatable).
#[derive(Debug, clap::Args)]
pub struct SomeContainers {
    /// Container names or id prefixes.
    #[arg(value_name = "CONTAINER", required_unless_present = "container")]
    pub names: Vec<String>,
    /// The same, as a flag (repeatable).
    #[arg(long)]
    pub container: Vec<String>,
}

impl SomeContainers {
    /// Every container named, in order.
    pub fn all(&self) -> Vec<String> {
        self.names.iter().chain(&self.container).cloned().collect()
    }
}

/// Arguments of `start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    #[command(flatten)]
    pub targets: SomeContainers,
}

/// Arguments of `stop` and `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    #[command(flatten)]
    pub targets: SomeContainers,
    /// Seconds to wait before killing (docker's -t/--time).
    #[arg(long, short = 't', visible_alias = "time")]
    pub timeout: Option<u64>,
}

/// Arguments of `rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    #[command(flatten)]
    pub targets: SomeContainers,
    /// Remove running containers too.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Remove their anonymous volumes too.
    #[arg(long, short = 'v')]
    pub volumes: bool,
}

/// Arguments of `kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    #[command(flatten)]
    pub targets: SomeContainers,
    /// Signal by name, with or without SIG (KILL, TERM, INT, HUP, QUIT, USR1,
    /// USR2, ...), or number; default KILL.
    #[arg(long, short = 's', value_name = "SIGNAL")]
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
    if let AgentCmd::Exec(args) = cmd {
        return super::exec::exec(c, args).await;
    }
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
            selector,
            count,
            interval_ms,
        } => match (server, selector) {
            (Some(server), _) => agent_info::ping(c, &server, count, interval_ms, out).await,
            (None, Some(sel)) => agent_info::ping_selector(c, &sel, count, interval_ms, out).await,
            (None, None) => anyhow::bail!("ping needs --server NAME or --selector K=V"),
        },
        AgentCmd::Info { server, selector } => {
            agent_info::info(c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::RotateKey { server } => agent_info::rotate_key(c, &server, out).await,
        AgentCmd::Revoke { name } => agent_info::revoke(c, &name, out).await,
        AgentCmd::Deploy(a) => super::deploys::deploy(c, a, out).await,
        AgentCmd::Rollback { server, container } => {
            super::deploys::rollback(c, &server, &container, out).await
        }
        AgentCmd::Start(a) => {
            let each = |container| Action::Start(ContainerRef { container });
            containers::lifecycle(c, &a.server, &a.targets.all(), each, out).await
        }
        AgentCmd::Stop(a) => {
            let each = |container| Action::Stop(stop_request(container, a.timeout));
            containers::lifecycle(c, &a.server, &a.targets.all(), each, out).await
        }
        AgentCmd::Restart(a) => {
            let each = |container| Action::Restart(stop_request(container, a.timeout));
            containers::lifecycle(c, &a.server, &a.targets.all(), each, out).await
        }
        AgentCmd::Kill(a) => {
            let signal = a.signal.clone();
            let each = |container| {
                Action::Kill(KillRequest {
                    container,
                    signal: signal.clone(),
                })
            };
            containers::lifecycle(c, &a.server, &a.targets.all(), each, out).await
        }
        AgentCmd::Rm(a) => {
            let (force, volumes) = (a.force, a.volumes);
            let each = |container| {
                Action::Rm(RemoveRequest {
                    container,
                    force,
                    volumes,
                })
            };
            containers::lifecycle(c, &a.server, &a.targets.all(), each, out).await
        }
        AgentCmd::Pull { server, image } => super::images::pull(c, &server, image, out).await,
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
            quiet,
        } => super::ps::ps(c, &server, all, &filter, quiet, out).await,
        AgentCmd::Images { server, all, quiet } => {
            super::images::images(c, &server, all, quiet, out).await
        }
        AgentCmd::Inspect { server, target } => containers::inspect(c, &server, target.get()).await,
        AgentCmd::Logs {
            server,
            target,
            follow,
            tail,
            since,
            until,
            timestamps,
        } => {
            let a = containers::LogsArgs {
                container: target.get(),
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
            name,
            container,
            no_stream,
        } => {
            let one = name.or(container);
            containers::stats(c, &server, one.as_deref(), no_stream, out).await
        }
        AgentCmd::Events {
            server,
            selector,
            container,
            since,
        } => {
            let (server, selector) = (server.as_deref(), selector.as_deref());
            let payload = EventsRequest {
                container,
                since: since.map(Since::Text),
            };
            super::fleet::events(c, server, selector, payload, out).await
        }
        AgentCmd::Status { server, selector } => {
            super::fleet::status(c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::History {
            server,
            container,
            since,
            resolution,
        } => {
            let resolution = resolution.as_deref();
            super::fleet::history(c, &server, &container, &since, resolution, out).await
        }
        other => anyhow::bail!("not an observe subcommand: {other:?}"),
    }
}

/// The stop/restart payload: container and optional grace period in seconds.
fn stop_request(container: String, timeout: Option<u64>) -> StopRequest {
    StopRequest {
        container,
        timeout: timeout.map(|t| t as i64),
    }
}
