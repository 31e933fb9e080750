//! `nextdeploy-agent`, the binary: parse flags, start logging, load the config
//! and call into the library (`lib.rs` has the layout and the error rule).
//! Start-up errors (anyhow) end here: one line on stderr and exit status 1.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nextdeploy_agent::config::{AgentConfig, DEFAULT_CONFIG};
use nextdeploy_agent::keyfile::KeyFile;
use nextdeploy_agent::limits::PARENT_CHECK_INTERVAL;
use nextdeploy_agent::{enroll, withdraw, ServeOptions};
use nextdeploy_shared::protocol::AgentPolicy;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// NextDeploy agent.
#[derive(Debug, Parser)]
#[command(name = "nextdeploy-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Enrol with a hub using a one-time join token.
    Enroll {
        /// The hub's SSH address, host:port; for a cluster of hubs, each
        /// of them (repeat the flag, or separate with commas): the agent
        /// tries them in turn.
        #[arg(long, required = true, value_delimiter = ',')]
        hub: Vec<String>,
        /// The join token (ndj_...).
        #[arg(long, env = "NEXTDEPLOY_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the config (the key goes beside it).
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Enrol again even if a config exists (makes a new key).
        #[arg(long)]
        force: bool,
        /// Write `[policy] read_only = true`: no start, stop, restart, kill,
        /// rm, pull, deploy, rollback or exec, whatever the hub asks.
        #[arg(long)]
        read_only: bool,
        /// Write `[policy] exec = false`: no exec into containers.
        #[arg(long)]
        no_exec: bool,
    },
    /// Connect to the hub and serve it until stopped.
    Run {
        /// The config written by enroll.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Exit when the process with this pid is no longer our parent
        /// (`nextdeploy hub --local-agent` passes its own pid).
        #[arg(long, hide = true)]
        parent_pid: Option<u32>,
        /// Bound of the on-disk buffer that keeps health snapshots and
        /// events while the hub is out of reach, bytes (default 16 MiB, or
        /// the config's `buffer_max_bytes`); oldest snapshots are thinned first.
        #[arg(long)]
        buffer_max_bytes: Option<u64>,
    },
    /// Undo this agent's recent enrolment on the hub (an install that failed
    /// after enrolling); the hub frees the join token. Local files are kept.
    Withdraw {
        /// The config written by enroll.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// First SIGINT/SIGTERM: graceful. Second: exit at once.
fn install_signal_handlers(shutdown: CancellationToken) {
    let first = move || {
        info!("shutting down (send the signal again to exit at once)");
        shutdown.cancel();
    };
    if let Err(e) = nextdeploy_shared::signals::spawn_handler(first, || {}) {
        warn!(error = %e, "cannot install the signal handlers");
    }
}

/// Take the lock beside `config` (`<config>.lock`) for the life of the
/// process: two agents on one config share one key, and the hub would see
/// them replace each other forever.
fn lock_config(config: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = config.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another nextdeploy-agent is already running with {} (lock {} is held); \
             two agents with one config share one key: stop the other one first",
            config.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Cancel `shutdown` once `parent` is no longer our parent process (it died,
/// `kill -9` included, and we were re-parented).
fn watch_parent(parent: u32, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if std::os::unix::process::parent_id() != parent {
                warn!(parent, "the parent process is gone; exiting");
                shutdown.cancel();
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(PARENT_CHECK_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}

async fn run(
    config: PathBuf,
    parent_pid: Option<u32>,
    buffer_max_bytes: Option<u64>,
) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(&config)?;
    let buffer_max_bytes = cfg.buffer_max_bytes(buffer_max_bytes)?;
    let buffer_dir = cfg.buffer_dir(&config);
    let _lock = lock_config(&config)?;
    let keys = Arc::new(KeyFile::load(&cfg.key_path)?);
    info!(name = %cfg.name, hub = %cfg.hub, pin = %cfg.hub_fingerprint, "starting");
    let shutdown = CancellationToken::new();
    install_signal_handlers(shutdown.clone());
    if let Some(parent) = parent_pid {
        watch_parent(parent, shutdown.clone());
    }
    let scope = match &cfg.scope_label {
        Some(s) => Some(nextdeploy_shared::labels::Selector::parse(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let journal = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("deploys");
    nextdeploy_agent::serve(ServeOptions {
        cfg,
        keys,
        scope,
        journal,
        buffer_dir,
        buffer_max_bytes,
        shutdown,
    })
    .await;
    Ok(())
}

fn main() {
    // Allocator settings before any thread exists (`malloc` module doc).
    nextdeploy_shared::malloc::run(main_async())
}

async fn main_async() {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Cmd::Enroll {
            hub,
            token,
            config,
            force,
            read_only,
            no_exec,
        } => {
            let policy = AgentPolicy {
                read_only,
                exec: !no_exec,
                ..AgentPolicy::default()
            };
            enroll::run(&hub.join(","), &token, &config, force, policy).await
        }
        .map(|cfg| {
            println!(
                "Enrolled as {} (labels: {})",
                cfg.name,
                nextdeploy_shared::labels::format_labels(&cfg.labels)
            );
            println!("Hub {} pinned at {}", cfg.hub, cfg.hub_fingerprint);
            println!("Config: {}", config.display());
            println!(
                "Key: {} (0600, never leaves this machine)",
                cfg.key_path.display()
            );
            let policy = cfg.policy.summary();
            if !policy.is_empty() {
                println!("Policy: {policy}");
            }
            println!(
                "Start with: nextdeploy-agent run --config {}",
                config.display()
            );
        }),
        Cmd::Run {
            config,
            parent_pid,
            buffer_max_bytes,
        } => run(config, parent_pid, buffer_max_bytes).await,
        Cmd::Withdraw { config } => withdraw::run(&config).await.map(|s| println!("{s}")),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
