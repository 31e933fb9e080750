//! `nextdeploy-agent`, the binary: parse flags, start logging, load the config
//! and call into the library (`lib.rs` has the layout and the error rule).
//! Start-up errors (anyhow) end here: one line on stderr and exit status 1.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use nextdeploy_agent::config::{AgentConfig, DEFAULT_CONFIG};
use nextdeploy_agent::keyfile::KeyFile;
use nextdeploy_agent::{enroll, ServeOptions};
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
        /// The hub's SSH address, host:port.
        #[arg(long)]
        hub: String,
        /// The join token (ndj_...).
        #[arg(long, env = "NEXTDEPLOY_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the config (the key goes beside it).
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Enrol again even if a config exists (makes a new key).
        #[arg(long)]
        force: bool,
    },
    /// Connect to the hub and serve it until stopped.
    Run {
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

async fn run(config: PathBuf) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(&config)?;
    let keys = Arc::new(KeyFile::load(&cfg.key_path)?);
    info!(name = %cfg.name, hub = %cfg.hub, pin = %cfg.hub_fingerprint, "starting");
    let shutdown = CancellationToken::new();
    install_signal_handlers(shutdown.clone());
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
        } => enroll::run(&hub, &token, &config, force).await.map(|cfg| {
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
            println!(
                "Start with: nextdeploy-agent run --config {}",
                config.display()
            );
        }),
        Cmd::Run { config } => run(config).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
