//! The NextDeploy hub and the `nextdeploy` CLI.
//!
//! Layout:
//! - [`run`]: the hub as a library call, `run(config, listeners, host key,
//!   store, shutdown)`, which `nextdeploy hub` ([`serve::run_hub`]) calls
//!   after preparing the data dir. The end-to-end suites in `tests/` do not
//!   call it: they spawn the built `nextdeploy hub` binary, so they cover the
//!   flags and the data dir too.
//! - [`ssh`]: the SSH server agents dial into (accept loop, handler, sessions).
//! - [`agents`]: registry of connected agents and per-request streams with credit.
//! - [`api`]: the actions of the WebSocket API: auth, roles, routing.
//! - [`http`]: axum router: `/ws`, `/health`, the dashboard (`/`, `/api/session`);
//!   Origin checks, sessions, security headers.
//! - [`store`]: the `Store` interface and its SQLite implementation.
//! - [`telemetry`]: health snapshots (live and history) and the event bus.
//! - [`recent`]: each agent's last events, for `events` with `since`.
//! - [`alerts`]: rules evaluated on events, snapshots and deploy outcomes;
//!   silences and quiet hours; the outbox sender.
//! - [`serve`]: `nextdeploy hub`: data dir, host key, first admin token, local agent.
//! - [`cluster`]: several hubs on one store: the sealed identity, heartbeats
//!   and agents' leases.
//! - [`backup`]: `hub backup` / `hub restore`: store snapshot and host key in one archive.
//! - [`cli`]: the client subcommands.
//! - [`limits`]: every hub-side bound and duration, each with why.
//! - [`sync`]: the one way the hub takes a lock (poison recovered).
//!
//! Errors follow one rule: each module boundary has one `thiserror` enum with
//! a doc line per variant (e.g. [`api::ApiError`], [`ssh::session::SessionError`],
//! [`agents::control::SendError`], [`backup::BackupError`], [`RunError`]), and
//! what a client sees is mapped to the wire `ErrorCode` in one place
//! (`ApiError::code`). No `Result<_, String>`. `anyhow` is for the edges
//! that only report to a person: `cli/`, `serve` (`serve.rs`, `serve/local.rs`)
//! and `main.rs`.

pub mod agents;
pub mod alerts;
pub mod alloc;
pub mod api;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod history;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod recent;
pub mod serve;
pub mod ssh;
pub mod store;
pub mod sync;
pub mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::Registry;
use crate::store::SharedStore;

/// Settings of a running hub (validated by the caller).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where the store and host key live.
    pub data_dir: PathBuf,
    /// Absolute time an SSH connection has to authenticate.
    pub auth_deadline: Duration,
    /// Connections allowed in handshake at once.
    pub max_handshakes: usize,
    /// Connections allowed in handshake at once from one address.
    pub max_handshakes_per_ip: usize,
    /// Connections allowed in handshake at once from one source prefix.
    pub max_handshakes_per_prefix: usize,
    /// IPv4 prefix length of one source prefix.
    pub source_prefix_v4: u8,
    /// IPv6 prefix length of one source prefix.
    pub source_prefix_v6: u8,
    /// Silence after which an agent is marked offline.
    pub heartbeat_timeout: Duration,
    /// Extra origins allowed on WebSocket upgrades (besides the hub's own).
    pub allowed_origins: Vec<String>,
    /// Largest WebSocket message accepted.
    pub max_message_bytes: usize,
    /// `HOST:PORT` agents dial, told to clients (`whoami`, join tokens).
    pub ssh_public_address: Option<String>,
    /// The API's URL as clients reach it, told to clients (`whoami`).
    pub api_public_url: Option<String>,
    /// The API's certificate (None: plain HTTP, `--plain-http`).
    pub tls: Option<Arc<http::tls::ApiTls>>,
    /// WebSocket connections one API token may hold open at once.
    pub max_connections_per_token: usize,
    /// `/metrics` without a token (a scraper on a trusted network).
    pub metrics_public: bool,
    /// How exec sessions are recorded.
    pub exec_recording: api::exec::record::RecordingConfig,
    /// Refuse early what an agent's policy (from its hello) would refuse.
    /// Off only in tests, to see the agent refuse by itself.
    pub policy_precheck: bool,
    /// This hub's place in a cluster of hubs sharing the store (None: alone).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            data_dir: PathBuf::from("/var/lib/nextdeploy"),
            auth_deadline: limits::DEFAULT_AUTH_DEADLINE,
            max_handshakes: limits::DEFAULT_MAX_HANDSHAKES,
            max_handshakes_per_ip: limits::DEFAULT_MAX_HANDSHAKES_PER_IP,
            max_handshakes_per_prefix: limits::DEFAULT_MAX_HANDSHAKES_PER_PREFIX,
            source_prefix_v4: limits::DEFAULT_SOURCE_PREFIX_V4,
            source_prefix_v6: limits::DEFAULT_SOURCE_PREFIX_V6,
            heartbeat_timeout: nextdeploy_shared::limits::HEARTBEAT_TIMEOUT,
            allowed_origins: Vec::new(),
            max_message_bytes: nextdeploy_shared::limits::MAX_FRAME_LEN,
            ssh_public_address: None,
            api_public_url: None,
            tls: None,
            max_connections_per_token: limits::DEFAULT_MAX_CONNECTIONS_PER_TOKEN,
            metrics_public: false,
            exec_recording: Default::default(),
            policy_precheck: true,
            cluster: None,
        }
    }
}

/// What every part of the hub shares, passed explicitly.
pub struct Services {
    /// Settings.
    pub config: HubConfig,
    /// Persistent state.
    pub store: SharedStore,
    /// Connected agents.
    pub registry: Registry,
    /// `SHA256:...` of the host key.
    pub host_fingerprint: String,
    /// The port the SSH server listens on.
    pub ssh_port: u16,
    /// Root of the shutdown tree.
    pub cancel: CancellationToken,
    /// Every spawned connection task, drained at shutdown.
    pub tracker: TaskTracker,
    /// Start time, for uptime.
    pub started: Instant,
    /// Health snapshots and events pushed by agents.
    pub telemetry: Arc<telemetry::Telemetry>,
    /// The hub's own counters (`/metrics`).
    pub metrics: Arc<metrics::HubMetrics>,
    /// Each agent's last events (every event is published through it).
    pub recent: recent::RecentEvents,
    /// Steps of the deploys this hub relays, while they run.
    pub live_deploys: api::deploys::LiveSteps,
    /// Open WebSocket connections per API token, capped.
    pub ws_connections: Arc<http::conns::PerToken>,
    /// Signed-in dashboard browsers.
    pub sessions: http::session::Sessions,
    /// Alert evaluation and delivery.
    pub alerts: alerts::Alerts,
}

/// Why the hub stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP listener failed.
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    /// The HTTP task panicked or was aborted.
    #[error("HTTP task failed: {0}")]
    HttpTask(#[from] tokio::task::JoinError),
}

/// Run the hub until `shutdown` is cancelled, then stop accepting, cut agent
/// connections and WebSocket clients cleanly, and wait (bounded) for tasks.
pub async fn run(
    config: HubConfig,
    ssh_listener: TcpListener,
    http_listener: TcpListener,
    host_key: PrivateKey,
    store: SharedStore,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let unregistered = limits::UNREGISTERED_PER_HANDSHAKE * config.max_handshakes;
    let svc = Arc::new(Services {
        ws_connections: http::conns::PerToken::new(config.max_connections_per_token),
        host_fingerprint: nextdeploy_shared::keys::fingerprint(host_key.public_key()),
        ssh_port: ssh_listener.local_addr().map(|a| a.port()).unwrap_or(0),
        config,
        store,
        registry: Registry::with_unregistered_cap(unregistered),
        cancel: shutdown.clone(),
        tracker: TaskTracker::new(),
        started: Instant::now(),
        telemetry: Arc::new(telemetry::Telemetry::default()),
        metrics: Arc::default(),
        live_deploys: Default::default(),
        recent: Default::default(),
        sessions: Default::default(),
        alerts: Default::default(),
    });
    let alert_tasks = alerts::Alerts::spawn(&svc);
    let presence = svc
        .config
        .cluster
        .clone()
        .map(|c| tokio::spawn(cluster::presence::run(svc.clone(), c)));
    let changes = svc
        .config
        .cluster
        .is_some()
        .then(|| tokio::spawn(cluster::changes::run(svc.clone())));
    let writer = tokio::spawn(
        svc.telemetry
            .clone()
            .run_writer(svc.store.clone(), shutdown.clone()),
    );
    let ssh = tokio::spawn(ssh::serve(ssh_listener, svc.clone(), host_key));
    let tls = svc.config.tls.clone();
    let http = tokio::spawn(http::serve(http_listener, tls, svc.clone()));
    shutdown.cancelled().await;
    let _ = ssh.await;
    // Agent sessions watch child tokens of `shutdown` and disconnect themselves.
    svc.tracker.close();
    if tokio::time::timeout(limits::SHUTDOWN_DRAIN, svc.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            secs = limits::SHUTDOWN_DRAIN.as_secs(),
            "some connections did not close in time"
        );
    }
    let _ = tokio::time::timeout(limits::SHUTDOWN_DRAIN, writer).await;
    for t in alert_tasks.into_iter().chain(presence).chain(changes) {
        let _ = tokio::time::timeout(limits::SHUTDOWN_DRAIN, t).await;
    }
    Ok(http.await??)
}
