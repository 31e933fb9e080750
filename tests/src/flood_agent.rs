//! A simulated agent that floods the hub with health snapshots: it logs in
//! with an enrolled agent's key (russh), says hello on the control channel
//! the hub opens, then pushes the same oversized snapshot as fast as the
//! SSH window lets it, with a heartbeat every `HEARTBEAT_INTERVAL`. It runs
//! on a runtime of its own and stops when dropped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use nextdeploy_shared::docker::{ContainerHealth, HealthSnapshot};
use nextdeploy_shared::frame::{self, Decoder};
use nextdeploy_shared::protocol::{
    channel_kind, DockerStatus, Downstream, Hello, Reply, ReplyType, AGENT_USER,
};
use russh::client::{self, Msg, Session};
use russh::{Channel, ChannelMsg};
use serde_json::json;

/// The hello of a simulated agent called `name` (Docker available).
pub fn sim_hello(name: &str, features: Vec<String>) -> Hello {
    Hello {
        hostname: name.into(),
        version: name.into(),
        os: "sim".into(),
        docker: DockerStatus {
            available: true,
            ..Default::default()
        },
        features,
        policy: None,
        buffer: None,
    }
}

/// Counters of a running flood.
#[derive(Default)]
pub struct FloodStats {
    /// Whether the hello was sent.
    pub hello: AtomicBool,
    /// Snapshots sent.
    pub snapshots: AtomicU64,
    /// Bytes of snapshot frames sent.
    pub bytes: AtomicU64,
}

/// The flooding connection; dropping it ends the flood.
pub struct FloodAgent {
    /// Counters.
    pub stats: Arc<FloodStats>,
    _handle: client::Handle<Flooder>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for FloodAgent {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Trusts any host key (the hub under test is ours); serves the control channel.
pub struct Flooder {
    snapshot: Arc<Vec<u8>>,
    stats: Arc<FloodStats>,
}

/// A snapshot of `n` containers whose strings are `pad` bytes long (its time
/// is now), as one control frame.
pub fn snapshot_frame(n: usize, pad: usize) -> Result<Vec<u8>> {
    let s = |prefix: String| format!("{prefix:x<pad$}");
    let snap = HealthSnapshot {
        at: nextdeploy_shared::time::now_unix(),
        docker_available: true,
        docker_error: None,
        sweep_ms: 1,
        containers: (0..n)
            .map(|i| ContainerHealth {
                id: format!("{:064x}", i + 1),
                name: s(format!("flood-{i}-")).into(),
                image: s("registry.example/flood:".into()).into(),
                state: "running".into(),
                health: Some("healthy".into()),
                cpu_percent: Some(1.5),
                mem_usage: 1 << 20,
                mem_limit: 1 << 30,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Ok(frame::encode(&Reply::new(
        Some(0),
        ReplyType::Health,
        json!(snap),
    ))?)
}

impl client::Handler for Flooder {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn server_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(serve(channel, self.snapshot.clone(), self.stats.clone()));
        Ok(())
    }
}

/// Wait for the hub's first request on `channel`; if it opens the control
/// channel, say hello and flood it until a send fails.
async fn serve(channel: Channel<Msg>, snapshot: Arc<Vec<u8>>, stats: Arc<FloodStats>) {
    let (mut read, write) = channel.split();
    let mut dec = Decoder::new();
    let id = loop {
        match dec.next_message::<Downstream>() {
            Ok(Some((Downstream::Request { id, action, .. }, _))) => {
                if action != channel_kind::CONTROL {
                    return;
                }
                break id;
            }
            Ok(Some(_)) | Ok(None) => {}
            Err(_) => return,
        }
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => dec.feed(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    drop(read);
    let hello = sim_hello("flood", vec![]);
    let write = &write;
    let send = |r: Reply| {
        let bytes = frame::encode(&r);
        async move {
            match bytes {
                Ok(b) => write.data_bytes(b).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    if !send(Reply::new(Some(id), ReplyType::Hello, json!(hello))).await {
        return;
    }
    stats.hello.store(true, Ordering::Release);
    // Heartbeats go between snapshots: a write cancelled half-way (as a
    // `select!` would) leaves half a frame on the channel.
    let mut beat_at = tokio::time::Instant::now();
    let mut seq = 0u64;
    loop {
        if beat_at.elapsed() >= nextdeploy_shared::limits::HEARTBEAT_INTERVAL {
            beat_at = tokio::time::Instant::now();
            seq += 1;
            if !send(Reply::new(
                Some(id),
                ReplyType::Heartbeat,
                json!({"seq": seq}),
            ))
            .await
            {
                return;
            }
        }
        if write.data_bytes(snapshot.as_ref().clone()).await.is_err() {
            return;
        }
        stats.snapshots.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(snapshot.len() as u64, Ordering::Relaxed);
    }
}

impl FloodAgent {
    /// Log in to `addr` with the agent key at `key` and flood `snapshot`
    /// (a frame from [`snapshot_frame`]).
    pub fn start(addr: &str, key: &Path, snapshot: Vec<u8>) -> Result<FloodAgent> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let stats = Arc::new(FloodStats::default());
        let handler = Flooder {
            snapshot: Arc::new(snapshot),
            stats: stats.clone(),
        };
        let (handle, ok) = rt.block_on(crate::ssh::key_login(addr, key, AGENT_USER, handler))?;
        anyhow::ensure!(ok, "the hub refused the flood agent's key");
        Ok(FloodAgent {
            stats,
            _handle: handle,
            rt: Some(rt),
        })
    }
}
