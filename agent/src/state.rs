//! What the whole agent process shares, across reconnections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nextdeploy_shared::protocol::Reply;
use tokio::sync::broadcast;

use crate::buffer::Recorder;
use crate::docker::deploy::Deployer;
use crate::docker::stats::Sampler;
use crate::docker::Engine;
use crate::keyfile::KeyFile;
use crate::limits::PUSH_QUEUE;
use crate::policy::Policy;

/// Process-wide agent state.
pub struct AgentState {
    /// Process start, for uptime.
    pub started: Instant,
    /// The Docker Engine.
    pub engine: Arc<Engine>,
    /// CPU counters between samples.
    pub sampler: Arc<Sampler>,
    /// Snapshots and events for the hub (and deploy outcomes).
    pub push: broadcast::Sender<Reply>,
    /// Snapshots and events, numbered and kept on disk until the hub has
    /// them, then pushed on `push`.
    pub recorder: Arc<Recorder>,
    /// Between application heartbeats.
    pub heartbeat_interval: Duration,
    /// Deploys (journalled in the state dir).
    pub deployer: Arc<Deployer>,
    /// The key file (absent while enrolling).
    pub keys: Option<Arc<KeyFile>>,
    /// What this agent refuses, whatever the hub asks.
    pub policy: Policy,
}

impl AgentState {
    /// A state with `engine`, deploy journals under `journal_dir`, the key
    /// file (for rotation) and the policy it enforces; no buffer.
    pub fn new(
        engine: Engine,
        heartbeat_interval: Duration,
        journal_dir: PathBuf,
        keys: Option<Arc<KeyFile>>,
        policy: Policy,
    ) -> Arc<Self> {
        Self::with_buffer(engine, heartbeat_interval, journal_dir, keys, policy, None)
    }

    /// [`AgentState::new`] with the buffer in `buffer` (directory, bound).
    pub fn with_buffer(
        engine: Engine,
        heartbeat_interval: Duration,
        journal_dir: PathBuf,
        keys: Option<Arc<KeyFile>>,
        policy: Policy,
        buffer: Option<(&Path, u64)>,
    ) -> Arc<Self> {
        let (push, _) = broadcast::channel(PUSH_QUEUE);
        let engine = Arc::new(engine);
        let recorder = Arc::new(match buffer {
            Some((dir, max)) => Recorder::open(push.clone(), dir, max),
            None => Recorder::new(push.clone(), None),
        });
        Arc::new(AgentState {
            started: Instant::now(),
            deployer: Deployer::new(engine.clone(), journal_dir, push.clone()),
            engine,
            sampler: Arc::new(Sampler::default()),
            push,
            recorder,
            heartbeat_interval,
            keys,
            policy,
        })
    }
}
