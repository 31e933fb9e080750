//! `nextdeploy agent ...`: list, ping, info, revoke, containers; install in [`super::install`].

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use nextdeploy_shared::protocol::{action, AgentInfo, AgentSummary, ReplyType};
use nextdeploy_shared::secret::Secret;
use serde_json::{json, Value};

use super::client::{error_of, Client};
use super::containers;
use super::output::{self, Output};
use super::tokens::labels_cell;

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
        return super::install::run(args, hub, token).await;
    }
    let mut c = Client::connect(hub, token).await?;
    let r = match cmd {
        AgentCmd::Install(_) => bail!("install is handled above"),
        AgentCmd::List => list(&mut c, out).await,
        AgentCmd::Ping {
            server,
            count,
            interval_ms,
        } => ping(&mut c, &server, count, interval_ms, out).await,
        AgentCmd::Info { server, selector } => {
            info(&mut c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::Ps {
            server,
            all,
            filter,
        } => containers::ps(&mut c, &server, all, &filter, out).await,
        AgentCmd::Inspect { server, container } => {
            containers::inspect(&mut c, &server, &container).await
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
            containers::logs(&mut c, &server, a, out).await
        }
        AgentCmd::Deploy(a) => super::deploys::deploy(&mut c, a, out).await,
        AgentCmd::Rollback { server, container } => {
            super::deploys::rollback(&mut c, &server, &container, out).await
        }
        AgentCmd::Start(a) => {
            containers::lifecycle(
                &mut c,
                &a.server,
                action::START,
                &a.container,
                a.timeout,
                a.signal.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::Stop(a) => {
            containers::lifecycle(
                &mut c,
                &a.server,
                action::STOP,
                &a.container,
                a.timeout,
                a.signal.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::Restart(a) => {
            containers::lifecycle(
                &mut c,
                &a.server,
                action::RESTART,
                &a.container,
                a.timeout,
                a.signal.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::Kill(a) => {
            containers::lifecycle(
                &mut c,
                &a.server,
                action::KILL,
                &a.container,
                a.timeout,
                a.signal.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::Stats {
            server,
            container,
            no_stream,
        } => containers::stats(&mut c, &server, container.as_deref(), no_stream, out).await,
        AgentCmd::Events {
            server,
            selector,
            container,
        } => {
            containers::events(
                &mut c,
                server.as_deref(),
                selector.as_deref(),
                container.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::Status { server, selector } => {
            containers::status(&mut c, server.as_deref(), selector.as_deref(), out).await
        }
        AgentCmd::History {
            server,
            container,
            since,
            resolution,
        } => {
            containers::history(
                &mut c,
                &server,
                &container,
                &since,
                resolution.as_deref(),
                out,
            )
            .await
        }
        AgentCmd::RotateKey { server } => {
            let v = c.call(action::ROTATE_KEY, Some(&server), json!({})).await?;
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
        AgentCmd::Revoke { name } => {
            let v = c
                .call(action::REVOKE_AGENT, None, json!({ "name": name }))
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
    };
    c.close().await;
    r
}

async fn list(c: &mut Client, out: Output) -> anyhow::Result<()> {
    let v = c.call(action::LIST_AGENTS, None, Value::Null).await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let agents: Vec<AgentSummary> = serde_json::from_value(v)?;
    let now = nextdeploy_shared::time::now_unix();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                labels_cell(&json!(a.labels)),
                if a.online {
                    "online".into()
                } else {
                    "offline".into()
                },
                a.last_seen
                    .clone()
                    .map(|t| if a.online { "now".into() } else { t })
                    .unwrap_or_else(|| "never".into()),
                a.version.clone().unwrap_or_else(|| "-".into()),
                a.address.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let _ = now;
    output::table(
        &[
            "NAME",
            "LABELS",
            "STATUS",
            "LAST SEEN",
            "VERSION",
            "ADDRESS",
        ],
        &rows,
    );
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

async fn ping(
    c: &mut Client,
    server: &str,
    count: u32,
    interval_ms: u64,
    out: Output,
) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let mut rtts = Vec::new();
    let mut hub_rtts = Vec::new();
    for seq in 1..=count {
        let start = Instant::now();
        let v = c.call(action::PING, Some(server), Value::Null).await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let hub_ms = v["hub_agent_rtt_ms"].as_f64().unwrap_or(0.0);
        if out == Output::Table {
            println!("{server}: seq={seq} time={ms:.3} ms (hub<->agent {hub_ms:.3} ms)");
        }
        rtts.push(ms);
        hub_rtts.push(hub_ms);
        if seq < count {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    }
    let mut sorted = rtts.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let (min, med, max) = (sorted[0], median(&sorted), sorted[sorted.len() - 1]);
    match out {
        Output::Json => output::json(&json!({
            "server": server, "count": count, "rtt_ms": rtts,
            "min_ms": min, "median_ms": med, "max_ms": max, "hub_agent_rtt_ms": hub_rtts,
        })),
        Output::Table => {
            println!(
                "--- {server}: {count} round trips, min/median/max = {min:.3}/{med:.3}/{max:.3} ms"
            );
            Ok(())
        }
    }
}

async fn info(
    c: &mut Client,
    server: Option<&str>,
    selector: Option<&str>,
    out: Output,
) -> anyhow::Result<()> {
    let id = c.send(action::INFO, server, selector, Value::Null).await?;
    let mut results: Vec<(String, Value)> = Vec::new();
    let mut failures = Vec::new();
    loop {
        let r = c.next().await?;
        if r.id != Some(id) {
            continue;
        }
        let name = r.server.clone().unwrap_or_default();
        match r.kind {
            ReplyType::Result => {
                results.push((name, r.data));
                if selector.is_none() {
                    break;
                }
            }
            ReplyType::Error if selector.is_some() && r.server.is_some() => {
                failures.push(format!("{name}: {}", error_of(&r)));
            }
            ReplyType::Error => return Err(error_of(&r)),
            ReplyType::End => break,
            _ => {}
        }
    }
    match out {
        Output::Json => {
            if selector.is_none() {
                if let Some((_, v)) = results.first() {
                    output::json(v)?;
                }
            } else {
                let all: Vec<Value> = results
                    .iter()
                    .map(|(n, v)| {
                        let mut v = v.clone();
                        v["server"] = json!(n);
                        v
                    })
                    .collect();
                output::json(&all)?;
            }
        }
        Output::Table => {
            for (name, v) in &results {
                let i: AgentInfo = serde_json::from_value(v.clone())?;
                if selector.is_some() {
                    println!("== {name}");
                }
                let docker = if i.docker.available {
                    format!(
                        "available (engine {}, API {})",
                        i.docker.version.clone().unwrap_or_default(),
                        i.docker.api_version.clone().unwrap_or_default()
                    )
                } else {
                    format!(
                        "unavailable: {}",
                        i.docker.error.clone().unwrap_or_default()
                    )
                };
                output::pairs(&[
                    ("hostname", i.hostname.clone()),
                    ("os", i.os.clone()),
                    ("kernel", i.kernel.clone()),
                    ("arch", i.arch.clone()),
                    ("cpus", i.cpus.to_string()),
                    (
                        "memory",
                        format!(
                            "{:.1} GiB total, {:.1} GiB available",
                            gib(i.memory_total_bytes),
                            gib(i.memory_available_bytes)
                        ),
                    ),
                    ("agent version", i.agent_version.clone()),
                    (
                        "agent uptime",
                        nextdeploy_shared::time::human_age(i.agent_uptime_s as i64),
                    ),
                    (
                        "host uptime",
                        nextdeploy_shared::time::human_age(i.host_uptime_s as i64),
                    ),
                    ("docker", docker),
                ]);
            }
        }
    }
    for f in &failures {
        eprintln!("error: {f}");
    }
    if !failures.is_empty() {
        bail!("{} agent(s) did not answer", failures.len());
    }
    Ok(())
}

fn gib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0 * 1024.0)
}
