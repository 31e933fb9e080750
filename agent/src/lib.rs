//! `nextdeploy-agent` as a library: dials out to the hub over SSH (no
//! listening port) and serves requests about this machine and its Docker
//! Engine. The binary (`src/main.rs`) parses flags, starts logging, loads the
//! config and calls [`serve`] or [`enroll::run`]; everything else lives here so
//! other crates (the bench's simulated agent) can reuse the real channel code.
//!
//! # Layout
//!
//! - [`config`]: the TOML config file written by enrolment.
//! - [`enroll`]: first contact with a join token; writes the config and key.
//! - [`withdraw`]: undo a recent enrolment with the key (a failed install).
//! - [`keyfile`]: the private key and its rotation.
//! - [`connection`]: dial the hub, check its pinned host key, reconnect with backoff.
//! - [`channel`]: the channels the hub opens: control, enrol, and requests
//!   streamed back within the hub's credit.
//! - [`one_shots`]: one-shot requests (ping, info, ps, ...) on the control channel.
//! - [`dispatch`]: one exhaustive match from a typed action to its handler,
//!   after [`policy`]: the agent's own `[policy]`, checked on every request.
//! - [`state`]: what the whole process shares across reconnections.
//! - [`buffer`]: snapshots and events on disk until the hub acknowledges
//!   them; the replay after a reconnection.
//! - [`sysinfo`]: host facts (hostname, OS, memory, ...).
//! - [`host`]: the host's CPU, memory and load for each health snapshot.
//! - [`docker`]: the Docker Engine through bollard (containers, logs, stats,
//!   events, health monitor, deploys).
//! - [`limits`]: every agent-side bound and duration, each with its reason.
//! - [`util`]: small helpers shared by the modules above.
//!
//! # Errors
//!
//! One rule: a fallible library function returns its module's `thiserror`
//! enum, one variant per way it fails and a doc line on each, so a caller can
//! match on it (for example [`connection::DialError::KeyRefused`], which makes
//! the dialler try a pending rotated key). No `Result<_, String>`. `anyhow` is
//! used only on start-up paths whose error goes straight to the person at the
//! terminal and ends the process: `main.rs`, [`config`] (load, validate,
//! save), [`enroll::run`] and [`keyfile::KeyFile::load`]. Errors of requests
//! reach the hub as a wire [`ErrorCode`](nextdeploy_shared::protocol::ErrorCode)
//! through [`docker::DockerError`] or the handler's own reply.

pub mod buffer;
pub mod channel;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod docker;
pub mod enroll;
pub mod host;
pub mod keyfile;
pub mod limits;
pub mod one_shots;
pub mod policy;
pub mod state;
pub mod sysinfo;
pub mod util;
pub mod withdraw;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nextdeploy_shared::labels::Selector;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::channel::Ctx;
use crate::config::AgentConfig;
use crate::docker::Engine;
use crate::keyfile::KeyFile;
use crate::state::AgentState;

/// What [`serve`] needs, read at start-up by the binary.
pub struct ServeOptions {
    /// The loaded and validated config.
    pub cfg: AgentConfig,
    /// The key file named by the config.
    pub keys: Arc<KeyFile>,
    /// The parsed `scope_label`, if any.
    pub scope: Option<Selector>,
    /// Where deploy journals are kept.
    pub journal: PathBuf,
    /// The buffer's directory ([`buffer`]).
    pub buffer_dir: PathBuf,
    /// The buffer's bound, bytes.
    pub buffer_max_bytes: u64,
    /// Cancelled to stop the agent gracefully.
    pub shutdown: CancellationToken,
}

/// Run the agent until `shutdown`: recover unfinished deploys, start the
/// Docker event watcher and the health monitor, and stay connected to the hub.
pub async fn serve(opts: ServeOptions) {
    let ServeOptions {
        cfg,
        keys,
        scope,
        journal,
        buffer_dir,
        buffer_max_bytes,
        shutdown,
    } = opts;
    let state = AgentState::with_buffer(
        Engine::new(scope),
        Duration::from_secs(cfg.heartbeat_interval_s),
        journal,
        Some(keys.clone()),
        policy::Policy::new(cfg.policy.clone()),
        Some((&buffer_dir, buffer_max_bytes)),
    );
    state.deployer.recover().await;
    tokio::spawn(docker::events::watch(
        state.engine.clone(),
        state.recorder.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(docker::monitor::run(
        state.engine.clone(),
        state.sampler.clone(),
        state.recorder.clone(),
        Duration::from_secs(cfg.health_interval_s),
        shutdown.clone(),
    ));
    connection::run(
        cfg.hubs(),
        cfg.hub_fingerprint.clone(),
        keys,
        move |conn_cancel| {
            Arc::new(Ctx {
                state: state.clone(),
                conn_cancel,
                enroll: None,
            })
        },
        shutdown,
    )
    .await;
    info!("stopped");
}
