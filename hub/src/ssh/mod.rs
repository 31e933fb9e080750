//! The SSH side of the hub: agents dial in here.
//!
//! - [`serve`]: our own accept loop (not russh's `run_on_address`), with a cap
//!   on connections still in handshake, a cap per source address and an
//!   absolute authentication deadline ([`deadline`]).
//! - [`handler`]: the thin russh `Handler`: public-key auth against the store,
//!   every channel, request and forwarding refused.
//! - [`session`]: one task per authenticated connection: the control channel
//!   (hello, heartbeats) and registration, or the enrolment exchange.

pub mod deadline;
pub mod handler;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::Services;

/// How often the hub probes a quiet connection with an SSH keepalive, and how
/// many unanswered probes end it: a dead peer is noticed within ~30 s even if
/// the application heartbeat were lost.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_MAX: usize = 3;
/// Nothing at all received for this long ends the connection (the agent
/// heartbeats every 10 s, so only a broken peer gets here).
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(90);
/// Failed authentication attempts allowed per connection; agents need one.
const MAX_AUTH_ATTEMPTS: usize = 3;

/// The russh server configuration of the hub.
pub fn server_config(host_key: PrivateKey) -> russh::server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    russh::server::Config {
        methods,
        // OpenSSH-style clients probe with "none" first: answer at once, but
        // keep russh's constant-time delay for real rejections.
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        ..Default::default()
    }
}

/// Counts connections in handshake per source address.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// Held while a connection is unauthenticated; releases its per-address slot.
pub struct PreAuthSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    ip: IpAddr,
    table: Arc<PerIp>,
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accept agents until `svc.cancel` fires.
pub async fn serve(listener: TcpListener, svc: Arc<Services>, host_key: PrivateKey) {
    let config = Arc::new(server_config(host_key));
    let slots = Arc::new(Semaphore::new(svc.config.max_handshakes));
    let per_ip = Arc::new(PerIp::default());
    loop {
        // Take a handshake slot before accepting: when all are taken, new
        // connections wait in the kernel's backlog instead of costing us memory.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = svc.cancel.cancelled() => break,
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = svc.cancel.cancelled() => break,
        };
        let ip = peer.ip();
        {
            let mut map = per_ip.0.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= svc.config.max_handshakes_per_ip {
                debug!(%peer, "too many connections in handshake from this address; closing");
                continue;
            }
            *n += 1;
        }
        let slot = PreAuthSlot {
            _permit: permit,
            ip,
            table: per_ip.clone(),
        };
        let _ = socket.set_nodelay(true);
        let authenticated = Arc::new(AtomicBool::new(false));
        let stream =
            deadline::DeadlineStream::new(socket, svc.config.auth_deadline, authenticated.clone());
        let handler = handler::SshHandler::new(svc.clone(), peer, slot, authenticated);
        let config = config.clone();
        let span = info_span!("ssh", %peer);
        svc.tracker.spawn(
            async move {
                match russh::server::run_stream(config, stream, handler).await {
                    Ok(session) => {
                        if let Err(e) = session.await {
                            debug!(error = %e, "connection ended");
                        }
                    }
                    Err(e) => debug!(error = %e, "handshake failed"),
                }
            }
            .instrument(span),
        );
    }
    info!("SSH listener stopped");
}
