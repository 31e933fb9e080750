//! Simulated agents: real SSH connections speaking the agent protocol, with the
//! Docker side replaced by a fixed responder (synthetic containers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nextdeploy_shared::frame::{self, Decoder};
use nextdeploy_shared::protocol::{
    channel_kind, ActionKind, DockerStatus, Downstream, Hello, Reply, ReplyType, AGENT_USER,
};
use nextdeploy_shared::time::now_unix;
use russh::client::{self, Msg, Session};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelId, ChannelMsg};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

mod serve;
pub mod synth;
use serve::{answer, serve};

/// What every simulated agent does.
#[derive(Clone)]
pub struct SimConfig {
    /// The hub's SSH address.
    pub hub: SocketAddr,
    /// Other hubs of its cluster, tried in turn after a failed attempt (as
    /// the real agent goes down its list).
    pub also: Vec<SocketAddr>,
    /// Pinned hub fingerprint.
    pub pin: String,
    /// Synthetic containers per health snapshot (0: no snapshots).
    pub containers: usize,
    /// Between snapshots.
    pub health_interval: Duration,
    /// Counters shared by all simulated agents.
    pub stats: Arc<SimStats>,
}

/// Counters.
#[derive(Default)]
pub struct SimStats {
    /// Connections authenticated.
    pub connected: AtomicU64,
    /// Connection attempts that failed after the TCP connect.
    pub failures: AtomicU64,
    /// Attempts refused at TCP connect (nothing listening: a hub restarting).
    pub refused: AtomicU64,
    /// Connections reset or closed before the hub sent a byte (the listener
    /// of a dying hub: the kernel completed them, nobody served them).
    pub reset: AtomicU64,
    /// Snapshots sent.
    pub snapshots: AtomicU64,
    /// Hellos sent (the hub registers an agent on its hello).
    pub hellos: AtomicU64,
}

struct Handler {
    pin: String,
    name: String,
    cfg: SimConfig,
    /// The control channel's id plus one once its `serve` task said hello
    /// (0 before): from then on its one-shot requests are answered here, in
    /// the session's own task, and its read half is gone.
    control: Arc<AtomicU32>,
    /// Frames of the control channel read here.
    dec: Decoder,
    /// Cancelled when the session (and with it this handler) ends, which
    /// ends the control channel's heartbeat task.
    _gone: tokio_util::sync::DropGuard,
    gone: CancellationToken,
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(
            matches!(key, PublicKeyOrCertificate::PublicKey { key, .. } if nextdeploy_shared::keys::fingerprint(key) == self.pin),
        )
    }

    async fn server_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(serve(
            channel,
            self.name.clone(),
            self.cfg.clone(),
            self.gone.clone(),
            self.control.clone(),
        ));
        Ok(())
    }

    /// One-shot requests on the control channel, answered in line: the
    /// answer leaves with the session's next flush, without a task hop.
    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.control.load(Ordering::Acquire) != channel.number() + 1 {
            return Ok(());
        }
        self.dec.feed(data);
        while let Ok(Some((d, _))) = self.dec.next_message::<Downstream>() {
            if let Downstream::Request {
                id, action: act, ..
            } = d
            {
                if let Ok(f) = frame::encode(&answer(Some(id), &act)) {
                    session.data(channel, f)?;
                }
            }
        }
        Ok(())
    }
}

/// Connect simulated agent `i` (no snapshots) and return the time from the
/// start of its TCP connect to its hello on the control channel the hub
/// opened (the hub registers it online on that hello); disconnected after.
/// Fails after `limit` without a hello.
pub async fn time_connect(i: usize, cfg: &SimConfig, limit: Duration) -> anyhow::Result<Duration> {
    let stats = Arc::new(SimStats::default());
    let cfg = SimConfig {
        containers: 0,
        stats: stats.clone(),
        ..cfg.clone()
    };
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let t0 = std::time::Instant::now();
    let key = Arc::new(crate::fleet::sim_key(i));
    tokio::spawn(run_agent(i, crate::fleet::sim_name(i), key, cfg, cancel));
    while stats.hellos.load(Ordering::Relaxed) == 0 {
        if t0.elapsed() > limit {
            anyhow::bail!("probe agent {i} said no hello within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(t0.elapsed())
}

/// Keep one simulated agent connected until `cancel`, reconnecting with the
/// real agent's policy (`agent/src/connection.rs`): full-jitter exponential
/// backoff from `BACKOFF_MIN`, reset after a connection stable for
/// `BACKOFF_RESET_AFTER`.
pub async fn run_agent(
    idx: usize,
    name: String,
    key: Arc<PrivateKey>,
    cfg: SimConfig,
    cancel: CancellationToken,
) {
    use nextdeploy_shared::limits::{BACKOFF_MAX, BACKOFF_MIN, BACKOFF_RESET_AFTER};
    // Spread source addresses over 127.0.0.2..=127.0.0.201 so ephemeral ports do not run out.
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (idx % 200) as u8));
    let mut attempt: u32 = 0;
    let hubs: Vec<SocketAddr> = std::iter::once(cfg.hub)
        .chain(cfg.also.iter().copied())
        .collect();
    // As the agent's `Rotation`: another hub after a lost connection (at
    // random) or the next after a failed dial; the backoff once every hub
    // failed in a row.
    let (mut at, mut failed_in_row) = (0usize, 0usize);
    loop {
        let started = std::time::Instant::now();
        match connect(
            src,
            hubs[at % hubs.len()],
            &name,
            key.clone(),
            &cfg,
            cancel.clone(),
        )
        .await
        {
            Ok(mut handle) => {
                cfg.stats.connected.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = &mut handle => {}
                    _ = cancel.cancelled() => return,
                }
                cfg.stats.connected.fetch_sub(1, Ordering::Relaxed);
                // One of the other hubs, at random (as the agent).
                let skip = rand::random_range(1..hubs.len().max(2));
                (at, failed_in_row) = (at + skip, 0);
            }
            Err(e) => {
                (at, failed_in_row) = (at + 1, failed_in_row + 1);
                // Only the TCP connect's own errors are io::Error here; the
                // SSH stages wrap theirs in russh::Error.
                let at_connect = e.downcast_ref::<std::io::Error>().map(|e| e.kind());
                match at_connect {
                    Some(std::io::ErrorKind::ConnectionRefused) => {
                        cfg.stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    // A listener that goes away (the killed hub's, as it dies)
                    // resets what it had queued before any byte: nothing served.
                    Some(std::io::ErrorKind::ConnectionReset) => {
                        cfg.stats.reset.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        if cfg.stats.failures.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!(
                                "sim agent {name} at {} ms: {e:#}",
                                nextdeploy_shared::time::now_unix_ms()
                            );
                        }
                    }
                }
                if failed_in_row < hubs.len() {
                    continue;
                }
                failed_in_row = 0;
            }
        }
        if started.elapsed() >= BACKOFF_RESET_AFTER {
            attempt = 0;
        }
        let ceiling = BACKOFF_MIN
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(BACKOFF_MAX);
        let pause = ceiling.mul_f64(rand::random_range(0.0..1.0));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn connect(
    src: IpAddr,
    hub: SocketAddr,
    name: &str,
    key: Arc<PrivateKey>,
    cfg: &SimConfig,
    cancel: CancellationToken,
) -> anyhow::Result<client::Handle<Handler>> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src, 0))?;
    let stream = tokio::time::timeout(Duration::from_secs(20), sock.connect(hub))
        .await
        .context("connect timeout")?
        .context("TCP connect")?;
    stream.set_nodelay(true)?;
    // Wait for the hub's first byte (its SSH banner) before speaking: a
    // connection that the kernel completed for a listener nobody serves (a
    // killed hub's, while the process is torn down) is reset or closed
    // before any byte, and counts as refused, not as a failed handshake.
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await {
        Err(_) => anyhow::bail!("the hub sent nothing within 30 s"),
        Ok(Ok(0)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "closed before the hub sent a byte",
            ))
            .context("TCP connect")
        }
        Ok(Err(e)) => return Err(e).context("TCP connect, before the hub sent a byte"),
        Ok(Ok(_)) => {}
    }
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(120)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        // The real agent's ciphers (`agent/src/connection.rs`).
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(nextdeploy_shared::cipher::agent_ciphers()),
            ..Default::default()
        },
        ..Default::default()
    });
    let gone = cancel.child_token();
    let handler = Handler {
        pin: cfg.pin.clone(),
        name: name.to_string(),
        cfg: cfg.clone(),
        control: Arc::new(AtomicU32::new(0)),
        dec: Decoder::new(),
        _gone: gone.clone().drop_guard(),
        gone,
    };
    let mut handle = tokio::time::timeout(
        Duration::from_secs(30),
        client::connect_stream(
            config,
            nextdeploy_shared::readahead::ReadAhead::new(stream),
            handler,
        ),
    )
    .await
    .context("handshake timeout")?
    .context("SSH handshake")?;
    let ok = handle
        .authenticate_publickey(AGENT_USER, PrivateKeyWithHashAlg::new(key, None))
        .await
        .context("SSH authentication")?;
    match nextdeploy_shared::keys::KeyAnswer::of(&ok) {
        nextdeploy_shared::keys::KeyAnswer::Accepted => {}
        nextdeploy_shared::keys::KeyAnswer::Refused => anyhow::bail!("key refused"),
        nextdeploy_shared::keys::KeyAnswer::Closed => {
            anyhow::bail!("connection closed during authentication")
        }
    }
    Ok(handle)
}

/// The hidden `sim-agents` subcommand: run agents `from..from+count`, a
/// snapshot every `interval`, and print their counters on stdout every
/// [`crate::fleet::REPORT_EVERY`] until the parent kills it; an orphan
/// (parent gone) or a run past four hours stops itself.
pub async fn run_child(
    (hub, also): (SocketAddr, Vec<SocketAddr>),
    pin: String,
    (from, count): (usize, usize),
    containers: usize,
    interval: Duration,
) -> anyhow::Result<()> {
    /// An orphaned child stops on its own after this long.
    /// (Above an hour: `dashboard --part heap` keeps its fleet for 60 minutes
    /// after connecting; at one hour its last checkpoint found them gone.)
    const MAX_LIFETIME: Duration = Duration::from_secs(4 * 3600);
    let stats = Arc::new(SimStats::default());
    let cfg = SimConfig {
        hub,
        also,
        pin,
        containers,
        health_interval: interval,
        stats: stats.clone(),
    };
    let cancel = CancellationToken::new();
    for i in from..from + count {
        let key = Arc::new(crate::fleet::sim_key(i));
        tokio::spawn(run_agent(
            i,
            crate::fleet::sim_name(i),
            key,
            cfg.clone(),
            cancel.clone(),
        ));
    }
    let t0 = std::time::Instant::now();
    let ppid = std::os::unix::process::parent_id();
    while t0.elapsed() < MAX_LIFETIME && std::os::unix::process::parent_id() == ppid {
        println!(
            "connected={} failures={} refused={} reset={} snapshots={}",
            stats.connected.load(Ordering::Relaxed),
            stats.failures.load(Ordering::Relaxed),
            stats.refused.load(Ordering::Relaxed),
            stats.reset.load(Ordering::Relaxed),
            stats.snapshots.load(Ordering::Relaxed)
        );
        tokio::time::sleep(crate::fleet::REPORT_EVERY).await;
    }
    cancel.cancel();
    Ok(())
}
