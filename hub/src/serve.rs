//! `nextdeploy hub`: prepare the data dir (host key, store, first admin
//! token), bind the listeners, optionally start a local agent, and run.

use crate::limits;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use nextdeploy_shared::keys;
use nextdeploy_shared::labels::parse_labels;
use nextdeploy_shared::time::parse_duration;
use nix::sys::signal::Signal;
use russh::keys::PrivateKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::admin;
use crate::cli::login::{self, Login};
use crate::store::{Role, SharedStore};
use crate::HubConfig;
use api_tls::{scheme, spawn_reload_on_hup, ApiEndpoint};
use listen::{bind, loopback};

/// Host key file in the data dir.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";
/// Store file in the data dir.
pub const STORE_FILE: &str = "nextdeploy.db";
/// The first admin token, for scripts (0600; see [`initial_token`]).
pub const INITIAL_TOKEN_FILE: &str = "initial-admin-token";

/// Flags of `nextdeploy hub`.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// State directory (store, host key). Default: /var/lib/nextdeploy as root,
    /// ~/.local/share/nextdeploy otherwise.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The store, instead of the data dir's: postgres://user:password@host:port/db
    /// (several hubs on one store), or sqlite:///PATH (a file several hubs on
    /// one machine may share) [default: SQLite in the data dir].
    #[arg(long, env = "NEXTDEPLOY_STORE", hide_env_values = true)]
    pub store: Option<store_url::StoreUrl>,
    /// Join the cluster of hubs sharing --store: a 0600 file holding the
    /// cluster's random secret, the same on every hub.
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// The API URL the other hubs of the cluster reach this hub at (they
    /// forward requests for its agents there; not a load balancer's)
    /// [default: --api-public-url, else the HTTP listen address].
    #[arg(long, requires = "cluster_secret_file")]
    pub cluster_api_url: Option<String>,
    /// SSH listen address for agents [default: 0.0.0.0:2222, 127.0.0.1:2222 with --local-agent].
    #[arg(long)]
    pub ssh_listen: Option<String>,
    /// HTTPS listen address for the API [default: 0.0.0.0:8080, 127.0.0.1:8080 with --local-agent].
    #[arg(long)]
    pub http_listen: Option<String>,
    /// Also run and enrol an agent for this machine (through the SSH tunnel),
    /// and save a CLI login for the local user.
    #[arg(long)]
    pub local_agent: bool,
    /// Extra Origin allowed on WebSocket upgrades (repeatable).
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Time an SSH connection has to authenticate (absolute).
    #[arg(long, default_value_t = DurationArg(limits::DEFAULT_AUTH_DEADLINE))]
    pub auth_deadline: DurationArg,
    /// SSH connections allowed in handshake at once.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_HANDSHAKES)]
    pub max_handshakes: usize,
    /// SSH connections allowed in handshake at once from one address.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_HANDSHAKES_PER_IP)]
    pub max_handshakes_per_ip: usize,
    /// SSH connections allowed in handshake at once from one source prefix.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_HANDSHAKES_PER_PREFIX)]
    pub max_handshakes_per_prefix: usize,
    /// WebSocket connections one API token may hold open at once.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_CONNECTIONS_PER_TOKEN)]
    pub max_connections_per_token: usize,
    /// IPv4 prefix length grouping sources for --max-handshakes-per-prefix.
    #[arg(long, default_value_t = limits::DEFAULT_SOURCE_PREFIX_V4)]
    pub source_prefix_v4: u8,
    /// IPv6 prefix length grouping sources (and penalising them).
    #[arg(long, default_value_t = limits::DEFAULT_SOURCE_PREFIX_V6)]
    pub source_prefix_v6: u8,
    /// Silence after which an agent is marked offline.
    #[arg(long, default_value_t = DurationArg(nextdeploy_shared::limits::HEARTBEAT_TIMEOUT))]
    pub heartbeat_timeout: DurationArg,
    /// HOST:PORT agents dial to reach this hub, used in join-token commands
    /// and `agent install` [default: the SSH listen address unless a wildcard].
    #[arg(long)]
    pub ssh_public_address: Option<String>,
    /// The API's URL as clients reach it (http://host:port)
    /// [default: the HTTP listen address unless a wildcard].
    #[arg(long)]
    pub api_public_url: Option<String>,
    /// Serve the API as plain HTTP, for a TLS-terminating proxy in front
    /// (warned about unless the address is loopback).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "api_names"])]
    pub plain_http: bool,
    /// The API's certificate chain (PEM) instead of the generated one;
    /// read again on SIGHUP.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Another name (DNS name or IP) for the generated certificate, besides
    /// this host's name, localhost and the listen address (repeatable).
    #[arg(long = "api-name")]
    pub api_names: Vec<String>,
    #[command(flatten)]
    pub recording: crate::api::exec::record::RecordingArgs,
    /// Serve /metrics without a token, for a scraper on a trusted network.
    #[arg(long)]
    pub metrics_public: bool,
    /// For tests only: `off` forwards requests an agent's policy forbids, so
    /// the agent's own refusal can be seen.
    #[arg(long, hide = true, env = "NEXTDEPLOY_HUB_POLICY_PRECHECK", default_value = "on", value_parser = ["on", "off"])]
    pub policy_precheck: String,
    /// Instead of serving: back up or restore the data dir.
    #[command(subcommand)]
    pub action: Option<crate::backup::HubAction>,
}

/// A duration flag (`30s`, `15m`, `1h`, `7d`), shown in seconds, so that
/// clap's defaults are the same consts [`HubConfig::default`] uses.
#[derive(Debug, Clone, Copy)]
pub struct DurationArg(pub Duration);

/// A duration flag that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadDuration(String);

impl std::str::FromStr for DurationArg {
    type Err = BadDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(DurationArg).map_err(BadDuration)
    }
}

impl std::fmt::Display for DurationArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

fn default_data_dir() -> PathBuf {
    // Root (the owner of /proc/self is the effective uid) gets the system path.
    if is_root() {
        PathBuf::from("/var/lib/nextdeploy")
    } else if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(d).join("nextdeploy")
    } else {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".local/share/nextdeploy")
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

impl HubArgs {
    fn config(&self) -> anyhow::Result<HubConfig> {
        let cfg = HubConfig {
            data_dir: self.data_dir.clone().unwrap_or_else(default_data_dir),
            auth_deadline: self.auth_deadline.0,
            max_handshakes: self.max_handshakes,
            max_handshakes_per_ip: self.max_handshakes_per_ip,
            max_handshakes_per_prefix: self.max_handshakes_per_prefix,
            source_prefix_v4: self.source_prefix_v4,
            source_prefix_v6: self.source_prefix_v6,
            heartbeat_timeout: self.heartbeat_timeout.0,
            allowed_origins: self.allowed_origins.clone(),
            max_message_bytes: nextdeploy_shared::limits::MAX_FRAME_LEN,
            ssh_public_address: self.ssh_public_address.clone(),
            api_public_url: self.api_public_url.clone(),
            tls: None,
            max_connections_per_token: self.max_connections_per_token,
            exec_recording: self.recording.config(),
            metrics_public: self.metrics_public,
            policy_precheck: self.policy_precheck != "off",
            cluster: None,
        };
        if let Some(a) = &cfg.ssh_public_address {
            match a.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                Some((h, Ok(p))) if !h.is_empty() && p != 0 => {}
                _ => bail!("--ssh-public-address must be HOST:PORT, not {a:?}"),
            }
        }
        if let Some(u) = &cfg.api_public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("--api-public-url must be an http:// or https:// URL, not {u:?}");
            }
        }
        if cfg.auth_deadline.is_zero() || cfg.auth_deadline > limits::MAX_AUTH_DEADLINE {
            bail!("--auth-deadline must be between 1s and 10m");
        }
        if cfg.max_handshakes == 0
            || cfg.max_handshakes_per_ip == 0
            || cfg.max_handshakes_per_prefix == 0
        {
            bail!("--max-handshakes, --max-handshakes-per-ip and --max-handshakes-per-prefix must be at least 1");
        }
        if cfg.max_connections_per_token == 0 {
            bail!("--max-connections-per-token must be at least 1");
        }
        if cfg.source_prefix_v4 > 32 || cfg.source_prefix_v6 > 128 {
            bail!("--source-prefix-v4 must be at most 32 and --source-prefix-v6 at most 128");
        }
        if cfg.heartbeat_timeout < limits::MIN_HEARTBEAT_TIMEOUT {
            bail!("--heartbeat-timeout must be at least 5s");
        }
        if !cfg.policy_precheck {
            warn!("policy precheck off (a test setting): requests agents' policies forbid are sent to them");
        }
        Ok(cfg)
    }
}

/// Load the host key, or create it on the first start of an empty data dir.
/// A store without its key is an error: a new key would orphan every agent.
pub fn host_key(dir: &Path) -> anyhow::Result<(PrivateKey, bool)> {
    let path = dir.join(HOST_KEY_FILE);
    if path.exists() {
        let key = keys::read_private(&path).with_context(|| {
            format!(
                "cannot load the hub host key {}; restore it from a backup",
                path.display()
            )
        })?;
        return Ok((key, false));
    }
    if dir.join(STORE_FILE).exists() {
        bail!(
            "{} holds a store but no host key ({HOST_KEY_FILE}); refusing to create a new key, which would orphan every enrolled agent. Restore the key from a backup, or start with an empty data dir.",
            dir.display()
        );
    }
    let key = keys::generate("nextdeploy-hub")?;
    keys::write_private(&key, &path)?;
    Ok((key, true))
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
    Ok(())
}

/// `hub backup|restore`, `--data-dir` given before (`before`) or after the
/// subcommand.
async fn run_action(
    action: crate::backup::HubAction,
    before: Option<PathBuf>,
    client: &crate::backup::ClientFlags,
    out: crate::cli::output::Output,
) -> anyhow::Result<()> {
    let dir = match (before, action.data_dir()) {
        (Some(a), Some(b)) if a != b => bail!(
            "--data-dir given twice, {} and {}",
            a.display(),
            b.display()
        ),
        (_, Some(d)) => d.to_path_buf(),
        (Some(d), None) => d,
        (None, None) => default_data_dir(),
    };
    if !matches!(action, crate::backup::HubAction::Migrate { .. }) {
        crate::backup::note_local(action.name(), &dir, client);
    }
    let done = tokio::task::spawn_blocking(move || crate::backup::run(action, &dir, out))
        .await
        .context("backup task failed")?;
    Ok(done?)
}

/// Unless told, the listen addresses are the public ones where they name one
/// host (a wildcard does not say how clients reach it).
fn default_public(config: &mut HubConfig, ssh: std::net::SocketAddr, http: std::net::SocketAddr) {
    if config.ssh_public_address.is_none() && !ssh.ip().is_unspecified() {
        config.ssh_public_address = Some(ssh.to_string());
    }
    if config.api_public_url.is_none() && !http.ip().is_unspecified() {
        config.api_public_url = Some(format!("{}://{http}", scheme(config)));
    }
}

/// Run `nextdeploy hub` until SIGINT/SIGTERM, or its `backup`/`restore`.
/// `client`: the CLI's `--hub`/`--token`, which only a backup could be
/// mistaken to use; `out`: how `backup`/`restore` print their result.
pub async fn run_hub(
    mut args: HubArgs,
    client: crate::backup::ClientFlags,
    out: crate::cli::output::Output,
) -> anyhow::Result<()> {
    if let Some(action) = args.action.take() {
        return run_action(action, args.data_dir.take(), &client, out).await;
    }
    let mut config = args.config()?;
    let dir = config.data_dir.clone();
    prepare_dir(&dir)?;
    let (default_ssh, default_http) = listen::defaults(args.local_agent);
    let ssh = bind(args.ssh_listen.as_deref().unwrap_or(default_ssh), "SSH").await?;
    let http = bind(args.http_listen.as_deref().unwrap_or(default_http), "HTTP").await?;
    let ssh_addr = ssh.local_addr()?;
    let http_addr = http.local_addr()?;
    let prepared = identity::prepare(&args, &dir, http_addr).await?;
    let (store, key, created) = (prepared.store, prepared.key, prepared.created);
    let fingerprint = keys::fingerprint(key.public_key());
    config.tls = prepared.tls;
    default_public(&mut config, ssh_addr, http_addr);
    let api = ApiEndpoint {
        url: format!("{}://{}", scheme(&config), loopback(http_addr)),
        pin: config.tls.as_ref().map(|t| t.pin()),
    };
    if let (Some(id), Some(peer_key)) = (prepared.cluster_id, prepared.peer_key) {
        let ssh_public = config.ssh_public_address.clone();
        let api_public = args
            .cluster_api_url
            .clone()
            .or(config.api_public_url.clone());
        let c = identity::cluster(
            id,
            peer_key,
            ssh_public.unwrap_or_else(|| loopback(ssh_addr)),
            api_public.unwrap_or_else(|| api.url.clone()),
        );
        config.cluster = Some(c);
    }

    println!("NextDeploy hub {}", nextdeploy_shared::VERSION);
    println!(
        "Data dir: {}{}",
        dir.display(),
        if created { " (new)" } else { "" }
    );
    if let Some(c) = &config.cluster {
        println!("Cluster: {} (this hub: {})", c.cluster_id, c.me.id);
    }
    println!("SSH listening on {ssh_addr}");
    println!("Host key fingerprint: {fingerprint}");
    if let Some(pin) = &api.pin {
        println!("API certificate pin: {pin}");
    }
    println!("HTTP listening on {}://{http_addr}", scheme(&config));
    println!("API: {0}/ws\nDashboard: {0}/", api.url);

    if prepared.first {
        initial_token::create_first(&store, &dir.join(INITIAL_TOKEN_FILE)).await?;
    }
    if !args.local_agent {
        let pin = api.pin.as_ref().map(|p| format!(" --tls-pin {p}"));
        println!(
            "Next: nextdeploy login --hub {} --token <admin token>{}",
            api.url,
            pin.unwrap_or_default()
        );
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(initial_token::retire_when_replaced(
        store.clone(),
        dir.join(INITIAL_TOKEN_FILE),
        shutdown.clone(),
    ));
    let local_pid = Arc::new(LocalAgentPid::default());
    spawn_signal_handler(shutdown.clone(), local_pid.clone());
    if let Some(tls) = &config.tls {
        spawn_reload_on_hup(tls.clone());
    }
    let mut local = None;
    if args.local_agent {
        let ssh_target = loopback(ssh_addr);
        local = Some(tokio::spawn(crate::serve::local::run(
            store.clone(),
            fingerprint.clone(),
            dir.join("local-agent"),
            ssh_target,
            api,
            shutdown.clone(),
            local_pid,
        )));
    }
    let r = crate::run(config, ssh, http, key, store, shutdown).await;
    if let Some(l) = local {
        let _ = tokio::time::timeout(limits::LOCAL_AGENT_JOIN_WAIT, l).await;
    }
    info!("hub stopped");
    Ok(r?)
}

/// Pid of the `--local-agent` child (0: none yet), shared by the task that
/// spawns it and the signal handler, so that a forced exit (second signal),
/// which skips destructors, still takes the child down with the hub.
#[derive(Debug, Default)]
pub struct LocalAgentPid(std::sync::atomic::AtomicU32);

impl LocalAgentPid {
    /// Remember the child's pid.
    fn set(&self, pid: u32) {
        self.0.store(pid, std::sync::atomic::Ordering::Relaxed);
    }

    /// Send `signal` to the child, if there is one.
    fn signal(&self, signal: Signal) {
        send_signal(self.0.load(std::sync::atomic::Ordering::Relaxed), signal);
    }
}

/// Send `signal` to process `pid` (0, or one that is gone: nothing).
fn send_signal(pid: u32, signal: Signal) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    if pid != 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once, taking the
/// local agent down too.
fn spawn_signal_handler(shutdown: CancellationToken, local_pid: Arc<LocalAgentPid>) {
    let first = move || {
        info!("shutting down (send the signal again to exit at once)");
        shutdown.cancel();
    };
    let force = move || local_pid.signal(Signal::SIGKILL);
    if let Err(e) = nextdeploy_shared::signals::spawn_handler(first, force) {
        warn!(error = %e, "cannot install the signal handlers");
    }
}

/// Save a CLI login for the local user unless a working one is saved.
async fn ensure_local_login(store: &SharedStore, api: &ApiEndpoint) -> anyhow::Result<()> {
    let hub_url = api.url.as_str();
    if let Ok(Some(saved)) = login::load_saved() {
        if saved.hub == hub_url && saved.tls_pin == api.pin {
            if let Ok(p) = nextdeploy_shared::token::parse(&saved.token) {
                let id = p.id.clone();
                if let Ok(Some(rec)) =
                    crate::store::blocking(store, move |s| s.api_token(&id)).await
                {
                    if rec.revoked_at.is_none()
                        && nextdeploy_shared::token::verify_secret(
                            p.secret.expose(),
                            &rec.secret_hash,
                        )
                    {
                        return Ok(());
                    }
                }
            }
        }
    }
    let (_, token) = admin::create_api_token(store, "local-cli", Role::Admin, None, false).await?;
    let path = login::save(&Login {
        hub: hub_url.to_string(),
        token: token.expose().clone(),
        tls_pin: api.pin.clone(),
    })?;
    println!("Saved a CLI login for this user in {}", path.display());
    Ok(())
}

pub mod api_tls;
mod identity;
pub mod initial_token;
mod listen;
pub mod local;
pub mod store_url;
